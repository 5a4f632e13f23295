//! The JSON management API under `/api/v1` (GITEA-COMPAT §11 and §16) against the real binary:
//! auth and JSON errors, the Package / User / PackageFile objects field by field and type by
//! type, paging with `X-Total-Count` and `Link`, filters, case-insensitivity, percent-encoded
//! paths, digests, download counters and deletes.

mod common;
use common::*;

use serde_json::Value;
use std::time::{Duration, Instant};

const P: &str = "/api/packages/admin/generic";
const V1: &str = "/api/v1/packages/admin";
/// `common::send` always sends `Host: test`, so that is the base of every absolute URL.
const BASE: &str = "http://test";
const JSON_CT: &str = "application/json;charset=utf-8";

fn admin_auth() -> String {
    format!("token {ADMIN_TOKEN}")
}

fn get_as(s: &Server, auth: &str, path: &str) -> Resp {
    s.req("GET", path, &[("Authorization", auth)], b"")
}

fn delete_as(s: &Server, auth: &str, path: &str) -> Resp {
    s.req("DELETE", path, &[("Authorization", auth)], b"")
}

/// A GET as the site admin.
fn aget(s: &Server, path: &str) -> Resp {
    get_as(s, &admin_auth(), path)
}

fn json(r: &Resp) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): status {} body {:?}", r.status, r.text()))
}

/// A 200 JSON answer, parsed.
fn ok_json(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(JSON_CT));
    json(r)
}

/// A 200 JSON array answer, parsed.
fn ok_array(r: &Resp) -> Vec<Value> {
    ok_json(r)
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", r.text()))
        .clone()
}

/// Gitea's JSON error shape with this status; returns the parsed body.
fn json_error(r: &Resp, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("content-type"), Some(JSON_CT), "{r:?}");
    let v = json(r);
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message: {v}"
    );
    assert!(v["url"].is_string(), "url: {v}");
    v
}

fn not_found(r: &Resp) {
    let v = json_error(r, 404);
    assert_eq!(v["message"], "The target couldn't be found.");
    assert!(
        v["errors"].as_array().is_some_and(|e| !e.is_empty()),
        "errors: {v}"
    );
}

/// `YYYY-MM-DDTHH:MM:SSZ` with plausible fields (RFC 3339, UTC offset `Z`).
fn assert_rfc3339(s: &Value) {
    let t = s
        .as_str()
        .unwrap_or_else(|| panic!("time is not a string: {s}"));
    let b = t.as_bytes();
    assert_eq!(b.len(), 20, "{t}");
    for (i, c) in b.iter().enumerate() {
        match i {
            4 | 7 => assert_eq!(*c, b'-', "{t}"),
            10 => assert_eq!(*c, b'T', "{t}"),
            13 | 16 => assert_eq!(*c, b':', "{t}"),
            19 => assert_eq!(*c, b'Z', "{t}"),
            _ => assert!(c.is_ascii_digit(), "{t}"),
        }
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap();
    assert!(num(0..4) >= 1970, "{t}");
    assert!((1..=12).contains(&num(5..7)), "{t}");
    assert!((1..=31).contains(&num(8..10)), "{t}");
    assert!(
        num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 61,
        "{t}"
    );
}

/// Seconds since the epoch of a shape-checked RFC 3339 `Z` time.
fn epoch_secs(t: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| t[r].parse::<i64>().unwrap();
    let (mut y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Howard Hinnant's days_from_civil.
    y -= i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

const USER_FIELDS: &[&str] = &[
    "id",
    "login",
    "login_name",
    "source_id",
    "full_name",
    "email",
    "avatar_url",
    "html_url",
    "language",
    "is_admin",
    "last_login",
    "created",
    "restricted",
    "active",
    "prohibit_login",
    "location",
    "website",
    "description",
    "visibility",
    "followers_count",
    "following_count",
    "starred_repos_count",
    "username",
];

/// Gitea's User object, every field with its type, as `viewer` is shown it: the user itself and
/// site admins (the only one here is `admin`) see every field, anyone else the public profile
/// with the no-reply address and the private fields at their zero values (`convert.ToUser`).
fn check_user(u: &Value, login: &str, is_admin: bool, viewer: &str) {
    let authed = viewer == "admin" || viewer == login;
    let o = u
        .as_object()
        .unwrap_or_else(|| panic!("user is not an object: {u}"));
    for f in USER_FIELDS {
        assert!(o.contains_key(*f), "user lacks {f}: {u}");
    }
    assert!(u["id"].is_i64(), "id: {u}");
    assert!(u["id"].as_i64().unwrap() > 0, "a real user's id: {u}");
    assert_eq!(u["login"], login);
    assert_eq!(u["username"], login, "username copies login");
    assert!(u["login_name"].is_string());
    assert!(u["source_id"].is_i64());
    for f in [
        "full_name",
        "email",
        "language",
        "location",
        "website",
        "description",
    ] {
        assert!(u[f].is_string(), "{f}: {u}");
    }
    let avatar = u["avatar_url"].as_str().expect("avatar_url string");
    assert!(
        avatar.is_empty() || avatar.starts_with("http://") || avatar.starts_with("https://"),
        "avatar_url absolute or empty: {avatar}"
    );
    assert_eq!(u["html_url"], format!("{BASE}/{login}"));
    assert_eq!(
        u["is_admin"],
        is_admin && authed,
        "is_admin as {viewer}: {u}"
    );
    if authed {
        assert_rfc3339(&u["last_login"]);
    } else {
        assert_eq!(u["last_login"], "0001-01-01T00:00:00Z", "as {viewer}: {u}");
        let placeholder = format!("{}@noreply.test", login.to_lowercase());
        assert_eq!(u["email"], placeholder.as_str(), "email as {viewer}: {u}");
        assert_eq!(u["login_name"], "");
        assert_eq!(u["language"], "");
    }
    assert_rfc3339(&u["created"]);
    assert_eq!(u["restricted"], false);
    assert_eq!(u["active"], authed, "active as {viewer}: {u}");
    assert_eq!(u["prohibit_login"], false);
    let vis = u["visibility"].as_str().expect("visibility string");
    assert!(["public", "limited", "private"].contains(&vis), "{vis}");
    assert_eq!(vis, "public");
    for f in ["followers_count", "following_count", "starred_repos_count"] {
        assert!(u[f].is_u64(), "{f}: {u}");
    }
}

/// Gitea's Package object (plus shelf's `downloads`), every field with its type.
fn check_package(p: &Value, owner: &str, creator: &str, name: &str, version: &str, viewer: &str) {
    let o = p
        .as_object()
        .unwrap_or_else(|| panic!("package is not an object: {p}"));
    for f in [
        "id",
        "owner",
        "repository",
        "creator",
        "type",
        "name",
        "version",
        "html_url",
        "created_at",
        "downloads",
    ] {
        assert!(o.contains_key(f), "package lacks {f}: {p}");
    }
    assert!(p["id"].is_u64() && p["id"].as_u64().unwrap() > 0, "id: {p}");
    check_user(&p["owner"], owner, owner == "admin", viewer);
    check_user(&p["creator"], creator, creator == "admin", viewer);
    assert!(p["repository"].is_null(), "repository: {p}");
    assert_eq!(p["type"], "generic");
    assert_eq!(p["name"], name);
    assert_eq!(p["version"], version);
    assert_rfc3339(&p["created_at"]);
    let created = epoch_secs(p["created_at"].as_str().unwrap());
    assert!(
        (created - now_secs()).abs() < 120,
        "created_at is now: {}",
        p["created_at"]
    );
    assert!(p["downloads"].is_u64(), "downloads: {p}");
}

/// `html_url` of a version: lower-case name and version, percent-encoded.
fn html_url(owner: &str, name_enc: &str, version_enc: &str) -> String {
    format!("{BASE}/{owner}/-/packages/generic/{name_enc}/{version_enc}")
}

fn total(r: &Resp) -> u64 {
    r.header("x-total-count")
        .unwrap_or_else(|| panic!("X-Total-Count missing: {r:?}"))
        .parse()
        .expect("X-Total-Count is a number")
}

/// The `Link` header as (rel, url) pairs, in order; empty without the header.
fn links(r: &Resp) -> Vec<(String, String)> {
    let Some(h) = r.header("link") else {
        return Vec::new();
    };
    h.split(',')
        .map(|part| {
            let part = part.trim();
            let (url, rel) = part
                .split_once(';')
                .unwrap_or_else(|| panic!("link part {part:?}"));
            let url = url
                .trim()
                .strip_prefix('<')
                .and_then(|u| u.strip_suffix('>'))
                .unwrap_or_else(|| panic!("link url {url:?}"));
            let rel = rel
                .trim()
                .strip_prefix("rel=\"")
                .and_then(|r| r.strip_suffix('"'))
                .unwrap_or_else(|| panic!("link rel {rel:?}"));
            (rel.to_string(), url.to_string())
        })
        .collect()
}

fn versions_of(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|p| p["version"].as_str().expect("version string").to_string())
        .collect()
}

fn publish(s: &Server, name: &str, version: &str, file: &str, body: &[u8]) {
    let r = s.put(&format!("{P}/{name}/{version}/{file}"), body);
    assert_eq!(r.status, 201, "PUT {name}/{version}/{file}: {}", r.text());
}

#[test]
fn version_endpoint_is_anonymous() {
    let s = Server::start();
    let v = ok_json(&s.get("/api/v1/version"));
    let o = v.as_object().expect("object");
    assert_eq!(o.len(), 1, "{v}");
    let version = v["version"].as_str().expect("version string");
    let (core, meta) = version.split_once('+').expect("x.y.z+shelf-…");
    let parts: Vec<&str> = core.split('.').collect();
    assert_eq!(parts.len(), 3, "{version}");
    assert!(
        parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())),
        "{version}"
    );
    assert!(meta.starts_with("shelf-") && meta.len() > 6, "{version}");
    // With a token it is the same.
    assert_eq!(ok_json(&aget(&s, "/api/v1/version")), v);
}

#[test]
fn sign_in_is_required_and_errors_are_json() {
    let s = Server::start();
    publish(&s, "pkg", "1", "f", b"x");

    for path in [
        V1.to_string(),
        format!("{V1}/generic/pkg"),
        format!("{V1}/generic/pkg/1"),
        format!("{V1}/generic/pkg/1/files"),
        format!("{V1}/generic/pkg/-/latest"),
        "/api/v1/packages/nobody".to_string(),
    ] {
        let v = json_error(&s.get(&path), 401);
        assert_eq!(v["message"], "token is required", "{path}");
    }
    let r = s.req("DELETE", &format!("{V1}/generic/pkg/1"), &[], b"");
    json_error(&r, 401);

    // Wrong credentials are a JSON 401. (Fewer than 10 failures in all: more from one address
    // are throttled with 429.)
    let wrong = [
        "token 0000000000000000000000000000000000000000".to_string(),
        "Bearer 0000000000000000000000000000000000000000".to_string(),
        basic("admin", "wrong-password"),
        basic("admin", ""),
        "Basic Og==".to_string(),
    ];
    for auth in &wrong {
        json_error(&get_as(&s, auth, V1), 401);
    }
    for auth in &wrong[..2] {
        json_error(&delete_as(&s, auth, &format!("{V1}/generic/pkg/1")), 401);
    }
    // Nothing was deleted by the refused DELETEs.
    ok_json(&aget(&s, &format!("{V1}/generic/pkg/1")));

    // Every sign-in form works.
    for auth in [
        format!("token {ADMIN_TOKEN}"),
        format!("Bearer {ADMIN_TOKEN}"),
        basic("admin", ADMIN_TOKEN),
        // As Gitea: a valid token as the password signs in its owner, whatever the user name.
        basic("nobody", ADMIN_TOKEN),
        basic(ADMIN_TOKEN, ""),
    ] {
        let items = ok_array(&get_as(&s, &auth, V1));
        assert_eq!(items.len(), 1, "{auth}");
    }

    // An unknown owner, package, version or route is a JSON 404.
    not_found(&aget(&s, "/api/v1/packages/nobody"));
    not_found(&aget(&s, "/api/v1/packages/nobody/generic/pkg"));
    not_found(&aget(&s, &format!("{V1}/generic/nope")));
    not_found(&aget(&s, &format!("{V1}/generic/nope/1")));
    not_found(&aget(&s, &format!("{V1}/generic/pkg/2")));
    not_found(&aget(&s, &format!("{V1}/generic/pkg/2/files")));
    not_found(&aget(&s, &format!("{V1}/generic/nope/-/latest")));
    not_found(&s.delete(&format!("{V1}/generic/nope")));
    not_found(&s.delete(&format!("{V1}/generic/pkg/2")));
    not_found(&s.delete("/api/v1/packages/nobody/generic/pkg"));
}

#[test]
fn package_object_field_by_field() {
    let s = Server::start();
    publish(&s, "My.Pkg", "V1.0-RC", "a.txt", b"hello");
    // A later upload in another case keeps the display case of the first.
    publish(&s, "my.pkg", "v2.0", "b.txt", b"world");

    let p = ok_json(&aget(&s, &format!("{V1}/generic/my.pkg/v1.0-rc")));
    check_package(&p, "admin", "admin", "My.Pkg", "V1.0-RC", "admin");
    assert_eq!(p["html_url"], html_url("admin", "my.pkg", "v1.0-rc"));
    assert_eq!(p["downloads"], 0);

    // Owner, name and version are case-insensitive everywhere; the answers are identical.
    for path in [
        "/api/v1/packages/ADMIN/generic/MY.PKG/V1.0-RC",
        "/api/v1/packages/Admin/generic/My.Pkg/V1.0-rc",
    ] {
        assert_eq!(ok_json(&aget(&s, path)), p, "{path}");
    }

    let p2 = ok_json(&aget(&s, &format!("{V1}/generic/MY.PKG/V2.0")));
    check_package(&p2, "admin", "admin", "My.Pkg", "v2.0", "admin");
    assert_eq!(p2["html_url"], html_url("admin", "my.pkg", "v2.0"));
    assert!(p2["id"].as_u64() > p["id"].as_u64(), "ids grow: {p} {p2}");
    assert_ne!(p["id"], p2["id"]);

    // The newest version.
    assert_eq!(
        ok_json(&aget(&s, &format!("{V1}/generic/my.PKG/-/latest"))),
        p2
    );

    // The owner listing (any owner case) and the package listing, newest first.
    for path in [
        V1.to_string(),
        "/api/v1/packages/ADMIN".to_string(),
        format!("{V1}?type=generic"),
        format!("{V1}?type="),
    ] {
        let r = aget(&s, &path);
        let items = ok_array(&r);
        assert_eq!(total(&r), 2, "{path}");
        assert!(links(&r).is_empty(), "one page has no Link: {r:?}");
        assert_eq!(items, vec![p2.clone(), p.clone()], "{path}");
    }
    let r = aget(&s, &format!("{V1}/generic/MY.pkg"));
    assert_eq!(ok_array(&r), vec![p2.clone(), p.clone()]);
    assert_eq!(total(&r), 2);

    // The type segment is case-insensitive too (§11).
    assert_eq!(
        ok_json(&aget(&s, &format!("{V1}/GENERIC/my.pkg/v1.0-rc"))),
        p
    );
    assert_eq!(
        ok_array(&aget(&s, &format!("{V1}/Generic/my.pkg"))),
        vec![p2.clone(), p.clone()]
    );
    assert_eq!(
        ok_json(&aget(&s, &format!("{V1}/Generic/my.pkg/-/latest"))),
        p2
    );
    let files = ok_array(&aget(&s, &format!("{V1}/GENERIC/my.pkg/v1.0-rc/files")));
    assert_eq!(files.len(), 1);
    // Another type in the path has no such package: a JSON 404 (not 405).
    for path in [
        format!("{V1}/npm/my.pkg"),
        format!("{V1}/npm/my.pkg/v1.0-rc"),
        format!("{V1}/npm/my.pkg/v1.0-rc/files"),
        format!("{V1}/npm/my.pkg/-/latest"),
        format!("{V1}/generic/my.pkg/v1.0-rc/nonsense"),
    ] {
        not_found(&aget(&s, &path));
    }
    not_found(&s.delete(&format!("{V1}/npm/my.pkg")));
    // A route that exists answers another method with a JSON 405.
    for (m, path) in [
        ("POST", format!("{V1}/generic/my.pkg/v1.0-rc")),
        ("DELETE", format!("{V1}/generic/my.pkg/v1.0-rc/files")),
        ("PUT", format!("{V1}/generic/my.pkg")),
        ("DELETE", format!("{V1}/generic/my.pkg/-/latest")),
    ] {
        let r = s.req(m, &path, &[("Authorization", &admin_auth())], b"");
        json_error(&r, 405);
    }

    // Another type has nothing.
    for t in ["npm", "maven", "container"] {
        let r = aget(&s, &format!("{V1}?type={t}"));
        assert!(ok_array(&r).is_empty(), "{t}");
        assert_eq!(total(&r), 0, "{t}");
    }
}

#[test]
fn paging_three_pages_with_links() {
    let s = Server::start();
    for i in 1..=7 {
        publish(
            &s,
            "paged",
            &format!("0.{i}"),
            "f",
            format!("{i}").as_bytes(),
        );
    }
    let newest_first: Vec<String> = (1..=7).rev().map(|i| format!("0.{i}")).collect();

    for list in [V1.to_string(), format!("{V1}/generic/paged")] {
        let url = |p: u64| format!("{BASE}{list}?page={p}&limit=3");
        let mut seen = Vec::new();
        for page in 1..=3u64 {
            let r = aget(&s, &format!("{list}?page={page}&limit=3"));
            let items = ok_array(&r);
            assert_eq!(total(&r), 7, "{list} page {page}");
            assert_eq!(items.len(), if page < 3 { 3 } else { 1 }, "{list} {page}");
            for it in &items {
                check_package(
                    it,
                    "admin",
                    "admin",
                    "paged",
                    it["version"].as_str().unwrap(),
                    "admin",
                );
            }
            seen.extend(versions_of(&items));
            let expected: Vec<(String, String)> = match page {
                1 => vec![("next".into(), url(2)), ("last".into(), url(3))],
                2 => vec![
                    ("next".into(), url(3)),
                    ("last".into(), url(3)),
                    ("first".into(), url(1)),
                    ("prev".into(), url(1)),
                ],
                _ => vec![("first".into(), url(1)), ("prev".into(), url(2))],
            };
            assert_eq!(links(&r), expected, "{list} page {page}");
            assert_eq!(
                r.header("access-control-expose-headers")
                    .map(|h| h.contains("X-Total-Count") && h.contains("Link")),
                Some(true)
            );
        }
        assert_eq!(
            seen, newest_first,
            "{list}: every version once, newest first"
        );

        // A page past the end is an empty 200 with the total.
        let r = aget(&s, &format!("{list}?page=4&limit=3"));
        assert!(ok_array(&r).is_empty(), "{list}");
        assert_eq!(total(&r), 7);
        // Its Link treats it as the last page (Gitea's paginator): no link to another empty page.
        assert_eq!(
            links(&r),
            vec![("first".to_string(), url(1)), ("prev".to_string(), url(2))],
            "{list}"
        );
        let r = aget(&s, &format!("{list}?page=99&limit=3"));
        assert!(ok_array(&r).is_empty(), "{list}");
        assert_eq!(total(&r), 7);
        // One page only, asked past its end: no Link at all.
        let r = aget(&s, &format!("{list}?page=2&limit=50"));
        assert!(ok_array(&r).is_empty(), "{list}");
        assert!(links(&r).is_empty(), "{r:?}");

        // The defaults: page 1, 30 per page; nonsense falls back to them.
        for q in ["", "?page=0", "?page=x&limit=0", "?limit=-3"] {
            let r = aget(&s, &format!("{list}{q}"));
            assert_eq!(versions_of(&ok_array(&r)), newest_first, "{list}{q}");
            assert_eq!(total(&r), 7);
        }
    }

    // Other query parameters survive in the Link URLs.
    let r = aget(&s, &format!("{V1}?type=generic&q=PAG&page=2&limit=2"));
    assert_eq!(versions_of(&ok_array(&r)), ["0.5", "0.4"]);
    assert_eq!(total(&r), 7);
    let url = |p: u64| format!("{BASE}{V1}?type=generic&q=PAG&page={p}&limit=2");
    assert_eq!(
        links(&r),
        vec![
            ("next".to_string(), url(3)),
            ("last".to_string(), url(4)),
            ("first".to_string(), url(1)),
            ("prev".to_string(), url(1)),
        ]
    );
}

#[test]
fn limit_is_capped_at_fifty() {
    let s = Server::start();
    for i in 0..55 {
        publish(&s, "many", &format!("v{i:02}"), "f", b"");
    }
    let newest_first: Vec<String> = (0..55).rev().map(|i| format!("v{i:02}")).collect();
    for list in [V1.to_string(), format!("{V1}/generic/many")] {
        let r = aget(&s, &format!("{list}?limit=500"));
        let items = ok_array(&r);
        assert_eq!(items.len(), 50, "{list}");
        assert_eq!(total(&r), 55);
        assert_eq!(versions_of(&items), newest_first[..50]);
        let l = links(&r);
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(l[0].0, "next");
        assert_eq!(l[0].1, format!("{BASE}{list}?page=2&limit=50"));
        assert_eq!(l[1].0, "last");
        assert_eq!(l[1].1, format!("{BASE}{list}?page=2&limit=50"));

        let r = aget(&s, &format!("{list}?limit=500&page=2"));
        assert_eq!(versions_of(&ok_array(&r)), newest_first[50..]);
        assert_eq!(total(&r), 55);

        let r = aget(&s, &format!("{list}?limit=50"));
        assert_eq!(ok_array(&r).len(), 50);

        // Default 30.
        let r = aget(&s, &list);
        assert_eq!(versions_of(&ok_array(&r)), newest_first[..30]);
        let l = links(&r);
        assert_eq!(
            l[0],
            ("next".into(), format!("{BASE}{list}?page=2&limit=30"))
        );
        assert_eq!(
            l[1],
            ("last".into(), format!("{BASE}{list}?page=2&limit=30"))
        );
    }
}

#[test]
fn q_filters_names_case_insensitively() {
    let s = Server::start();
    publish(&s, "AlphaTool", "1", "f", b"a");
    publish(&s, "beta-TOOL", "1", "f", b"b");
    publish(&s, "gamma", "1", "f", b"c");
    publish(&s, "AlphaTool", "2", "f", b"d");

    let names = |items: &[Value]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["version"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |n: &str, v: &str| (n.to_string(), v.to_string());

    let r = aget(&s, &format!("{V1}?q=tOoL"));
    assert_eq!(
        names(&ok_array(&r)),
        [
            pair("AlphaTool", "2"),
            pair("beta-TOOL", "1"),
            pair("AlphaTool", "1")
        ]
    );
    assert_eq!(total(&r), 3);

    let r = aget(&s, &format!("{V1}?type=generic&q=ALPHA"));
    assert_eq!(
        names(&ok_array(&r)),
        [pair("AlphaTool", "2"), pair("AlphaTool", "1")]
    );
    assert_eq!(total(&r), 2);

    // A substring anywhere in the name.
    let r = aget(&s, &format!("{V1}?q=a-t"));
    assert_eq!(names(&ok_array(&r)), [pair("beta-TOOL", "1")]);

    let r = aget(&s, &format!("{V1}?q=zzz"));
    assert!(ok_array(&r).is_empty());
    assert_eq!(total(&r), 0);

    // An empty q is no filter.
    let r = aget(&s, &format!("{V1}?q="));
    assert_eq!(ok_array(&r).len(), 4);
    assert_eq!(total(&r), 4);

    // q with paging: the total counts matches only.
    let r = aget(&s, &format!("{V1}?q=tool&limit=2&page=2"));
    assert_eq!(names(&ok_array(&r)), [pair("AlphaTool", "1")]);
    assert_eq!(total(&r), 3);

    // q and another type.
    let r = aget(&s, &format!("{V1}?q=tool&type=npm"));
    assert!(ok_array(&r).is_empty());
    assert_eq!(total(&r), 0);
}

#[test]
fn percent_encoded_names_and_versions() {
    let s = Server::start();
    publish(&s, "Spaced", "1.0%20Beta", "f.bin", b"abc");
    publish(&s, "plus+name", "1.0+build.5", "g.bin", b"def");

    let p = ok_json(&aget(&s, &format!("{V1}/generic/spaced/1.0%20beta")));
    check_package(&p, "admin", "admin", "Spaced", "1.0 Beta", "admin");
    assert_eq!(p["html_url"], html_url("admin", "spaced", "1.0%20beta"));
    let files = ok_array(&aget(&s, &format!("{V1}/generic/Spaced/1.0%20Beta/files")));
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["name"], "f.bin");

    // `+` in a path is a plus, encoded or not.
    for path in [
        format!("{V1}/generic/plus+name/1.0+build.5"),
        format!("{V1}/generic/plus%2Bname/1.0%2Bbuild.5"),
    ] {
        let p = ok_json(&aget(&s, &path));
        check_package(&p, "admin", "admin", "plus+name", "1.0+build.5", "admin");
        assert_eq!(p["html_url"], html_url("admin", "plus+name", "1.0+build.5"));
    }
    // `%2F` stays inside its segment and decodes to `/`.
    publish(&s, "slashed", "a%2Fb", "f", b"s");
    let p = ok_json(&aget(&s, &format!("{V1}/generic/slashed/A%2FB")));
    check_package(&p, "admin", "admin", "slashed", "a/b", "admin");
    assert_eq!(p["html_url"], html_url("admin", "slashed", "a%2Fb"));
    assert_eq!(
        ok_array(&aget(&s, &format!("{V1}/generic/slashed/a%2fb/files"))).len(),
        1
    );
    let r = aget(&s, &format!("{V1}/generic/slashed/-/latest"));
    assert_eq!(ok_json(&r)["version"], "a/b");
    // A bad escape finds nothing, in every family of `/api/v1`, for every method.
    not_found(&aget(&s, &format!("{V1}/generic/slashed/%ZZ")));
    for (method, path) in [
        ("GET", "/api/v1/packages/%ZZ"),
        ("DELETE", "/api/v1/packages/admin/generic/slashed/%C3%28"),
        ("GET", "/api/v1/admin/quotas/%ff"),
        ("PUT", "/api/v1/cleanup/admin/rules/%"),
        ("GET", "/api/v1/cleanup/%zz/rules"),
        ("GET", "/api/v1/users/%zz"),
        ("DELETE", "/api/v1/orgs/%zz/members/admin"),
    ] {
        not_found(&s.req(method, path, &[("Authorization", &admin_auth())], b"{}"));
    }
    // An encoded owner works too.
    ok_json(&aget(
        &s,
        "/api/v1/packages/%61dmin/generic/spaced/1.0%20beta",
    ));

    let r = s.delete(&format!("{V1}/generic/spaced/1.0%20BETA"));
    assert_eq!(r.status, 204, "{}", r.text());
    not_found(&aget(&s, &format!("{V1}/generic/spaced/1.0%20beta")));
    assert_eq!(
        aget(&s, &format!("{P}/spaced/1.0%20Beta/f.bin")).status,
        404
    );
}

#[test]
fn file_objects_and_digests() {
    use md5::{Digest, Md5};
    use sha1::Sha1;
    use sha2::{Sha256, Sha512};

    let s = Server::start();
    let big = pattern(3 * 1024 * 1024, 77);
    // Listed immediately after the upload: the digests are there, computed or not yet.
    publish(&s, "digests", "1", "big.bin", &big);
    let files = ok_array(&aget(&s, &format!("{V1}/generic/digests/1/files")));
    publish(&s, "digests", "1", "empty", b"");
    publish(&s, "digests", "1", "Abc.TXT", b"abc");

    assert_eq!(files.len(), 1);
    let expect_big = [
        ("md5", hex::encode(Md5::digest(&big))),
        ("sha1", hex::encode(Sha1::digest(&big))),
        ("sha256", hex::encode(Sha256::digest(&big))),
        ("sha512", hex::encode(Sha512::digest(&big))),
    ];
    let check_file = |f: &Value, name: &str, size: u64, digests: &[(&str, String)]| {
        let o = f.as_object().expect("file object");
        for k in [
            "id",
            "size",
            "Size",
            "name",
            "md5",
            "sha1",
            "sha256",
            "sha512",
            "downloads",
        ] {
            assert!(o.contains_key(k), "file lacks {k}: {f}");
        }
        assert!(f["id"].is_u64() && f["id"].as_u64().unwrap() > 0, "id: {f}");
        assert_eq!(f["size"].as_u64(), Some(size), "{f}");
        assert_eq!(f["Size"].as_u64(), Some(size), "{f}");
        assert_eq!(f["name"], name);
        assert!(f["downloads"].is_u64(), "{f}");
        for (k, want) in digests {
            let got = f[*k].as_str().unwrap_or_else(|| panic!("{k} missing: {f}"));
            assert_eq!(got, want, "{name} {k}");
            assert!(
                got.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "lower-case hex: {got}"
            );
        }
    };
    check_file(&files[0], "big.bin", big.len() as u64, &expect_big);

    let empty = [
        ("md5", "d41d8cd98f00b204e9800998ecf8427e".to_string()),
        (
            "sha1",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709".to_string(),
        ),
        (
            "sha256",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_string(),
        ),
        (
            "sha512",
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce\
             47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
                .to_string(),
        ),
    ];
    let abc = [
        ("md5", "900150983cd24fb0d6963f7d28e17f72".to_string()),
        (
            "sha1",
            "a9993e364706816aba3e25717850c26c9cd0d89d".to_string(),
        ),
        (
            "sha256",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".to_string(),
        ),
        (
            "sha512",
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
                .to_string(),
        ),
    ];

    let files = ok_array(&aget(&s, &format!("{V1}/generic/DIGESTS/1/files")));
    assert_eq!(files.len(), 3, "{files:?}");
    let by_name = |n: &str| {
        files
            .iter()
            .find(|f| f["name"] == n)
            .unwrap_or_else(|| panic!("{n} not listed: {files:?}"))
    };
    check_file(by_name("big.bin"), "big.bin", big.len() as u64, &expect_big);
    check_file(by_name("empty"), "empty", 0, &empty);
    check_file(by_name("Abc.TXT"), "Abc.TXT", 3, &abc);
    let mut ids: Vec<u64> = files.iter().map(|f| f["id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct file ids: {files:?}");

    // The same body under another name: same digests, another id.
    publish(&s, "digests", "2", "copy.bin", &big);
    let copy = ok_array(&aget(&s, &format!("{V1}/generic/digests/2/files")));
    assert_eq!(copy.len(), 1);
    check_file(&copy[0], "copy.bin", big.len() as u64, &expect_big);
    assert_ne!(copy[0]["id"], by_name("big.bin")["id"]);

    // The sha256 agrees with what the download route says.
    let r = aget(&s, &format!("{P}/digests/1/big.bin"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-checksum-sha256"),
        Some(sha256_hex(&big).as_str())
    );
}

/// Polls the version's JSON until `pred` holds or 5 s pass; returns the last version and files.
fn poll_counts(
    s: &Server,
    version_path: &str,
    pred: impl Fn(&Value, &[Value]) -> bool,
) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = ok_json(&aget(s, version_path));
        let files = ok_array(&aget(s, &format!("{version_path}/files")));
        if pred(&v, &files) || Instant::now() >= deadline {
            return (v, files);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn download_counters() {
    let mut s = Server::start();
    publish(&s, "counted", "1", "a.bin", b"aaaa");
    publish(&s, "counted", "1", "b.bin", b"bb");
    let vpath = format!("{V1}/generic/counted/1");

    // HEAD first, so that once both GETs are written a counted HEAD would be too.
    let r = s.req(
        "HEAD",
        &format!("{P}/counted/1/a.bin"),
        &[("Authorization", &admin_auth())],
        b"",
    );
    assert_eq!(r.status, 200);
    for _ in 0..2 {
        let r = aget(&s, &format!("{P}/counted/1/a.bin"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"aaaa");
    }
    let file_dl = |files: &[Value], n: &str| {
        files
            .iter()
            .find(|f| f["name"] == n)
            .unwrap_or_else(|| panic!("{n}: {files:?}"))["downloads"]
            .as_u64()
            .expect("downloads integer")
    };
    let (v, files) = poll_counts(&s, &vpath, |v, f| {
        v["downloads"].as_u64() >= Some(2) && file_dl(f, "a.bin") >= 2
    });
    assert_eq!(v["downloads"], 2, "version downloads within 5 s: {v}");
    assert_eq!(file_dl(&files, "a.bin"), 2, "{files:?}");
    assert_eq!(file_dl(&files, "b.bin"), 0, "{files:?}");

    // A clean stop writes anything pending: the counts are exact, and survive a restart.
    s.stop();
    let s = s.restart();
    let v = ok_json(&aget(&s, &vpath));
    assert_eq!(v["downloads"], 2, "HEAD is not a download: {v}");
    let files = ok_array(&aget(&s, &format!("{vpath}/files")));
    assert_eq!(file_dl(&files, "a.bin"), 2);
    assert_eq!(file_dl(&files, "b.bin"), 0);
    // Listings carry the same count.
    let items = ok_array(&aget(&s, V1));
    assert_eq!(items[0]["downloads"], 2);
    assert_eq!(
        ok_json(&aget(&s, &format!("{V1}/generic/counted/-/latest")))["downloads"],
        2
    );

    // A GET of the other file counts on the version too.
    assert_eq!(aget(&s, &format!("{P}/counted/1/b.bin")).status, 200);
    let (v, files) = poll_counts(&s, &vpath, |v, _| v["downloads"].as_u64() >= Some(3));
    assert_eq!(v["downloads"], 3, "{v}");
    assert_eq!(file_dl(&files, "b.bin"), 1);
    assert_eq!(file_dl(&files, "a.bin"), 2);
}

#[test]
fn deletes() {
    let s = Server::start();
    publish(&s, "Doomed", "1", "f", b"1");
    publish(&s, "doomed", "2", "f", b"2");
    publish(&s, "doomed", "3", "f", b"3");
    publish(&s, "kept", "1", "f", b"k");

    // The newest version, then without it.
    let latest = ok_json(&aget(&s, &format!("{V1}/generic/doomed/-/latest")));
    check_package(&latest, "admin", "admin", "Doomed", "3", "admin");
    let r = s.delete(&format!("{V1}/generic/DOOMED/3"));
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    not_found(&aget(&s, &format!("{V1}/generic/doomed/3")));
    not_found(&aget(&s, &format!("{V1}/generic/doomed/3/files")));
    assert_eq!(aget(&s, &format!("{P}/doomed/3/f")).status, 404);
    not_found(&s.delete(&format!("{V1}/generic/doomed/3")));
    let latest = ok_json(&aget(&s, &format!("{V1}/generic/doomed/-/latest")));
    assert_eq!(latest["version"], "2");
    let r = aget(&s, &format!("{V1}/generic/doomed"));
    assert_eq!(versions_of(&ok_array(&r)), ["2", "1"]);
    assert_eq!(total(&r), 2);
    assert_eq!(total(&aget(&s, V1)), 3);

    // A DELETE with a JSON body (as generated clients send it) on a keep-alive connection.
    let r = s.req(
        "DELETE",
        &format!("{V1}/generic/doomed"),
        &[
            ("Authorization", &admin_auth()),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert!(r.body.is_empty());
    for v in ["1", "2"] {
        assert_eq!(aget(&s, &format!("{P}/doomed/{v}/f")).status, 404, "{v}");
        not_found(&aget(&s, &format!("{V1}/generic/doomed/{v}")));
    }
    not_found(&aget(&s, &format!("{V1}/generic/doomed")));
    not_found(&aget(&s, &format!("{V1}/generic/doomed/-/latest")));
    not_found(&s.delete(&format!("{V1}/generic/doomed")));
    let r = aget(&s, V1);
    let items = ok_array(&r);
    assert_eq!(total(&r), 1);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["name"], "kept");

    // Deleting the last version of a package leaves nothing to list.
    let r = s.delete(&format!("{V1}/generic/kept/1"));
    assert_eq!(r.status, 204);
    let r = aget(&s, V1);
    assert!(ok_array(&r).is_empty());
    assert_eq!(total(&r), 0);
    not_found(&aget(&s, &format!("{V1}/generic/kept/-/latest")));
}

#[test]
fn another_user_may_read_but_not_delete() {
    let mut s = Server::start();
    publish(&s, "owned", "1", "f", b"1");
    let bob = user_with_token(&mut s, "bob", false);
    let s = s.restart();
    let bob_auth = format!("token {bob}");

    // Bob reads the admin's public packages.
    let items = ok_array(&get_as(&s, &bob_auth, V1));
    assert_eq!(items.len(), 1);
    check_package(&items[0], "admin", "admin", "owned", "1", "bob");
    ok_json(&get_as(
        &s,
        &basic("bob", &bob),
        &format!("{V1}/generic/owned/1"),
    ));

    // …but may not delete them.
    for (auth, path) in [
        (bob_auth.clone(), format!("{V1}/generic/owned/1")),
        (bob_auth.clone(), format!("{V1}/generic/owned")),
        (basic("bob", &bob), format!("{V1}/generic/OWNED")),
        (bob_auth.clone(), format!("{V1}/generic/nope")),
    ] {
        json_error(&delete_as(&s, &auth, &path), 403);
    }
    let r = aget(&s, &format!("{V1}/generic/owned"));
    assert_eq!(versions_of(&ok_array(&r)), ["1"], "nothing deleted");
    assert_eq!(aget(&s, &format!("{P}/owned/1/f")).body, b"1");

    // Bob publishes his own; the objects name him as owner and creator, not an admin.
    let r = s.put_as(&bob, "/api/packages/bob/generic/mine/1.0/f", b"bob");
    assert_eq!(r.status, 201, "{}", r.text());
    let p = ok_json(&get_as(
        &s,
        &bob_auth,
        "/api/v1/packages/BOB/generic/mine/1.0",
    ));
    check_package(&p, "bob", "bob", "mine", "1.0", "bob");
    assert_eq!(p["html_url"], html_url("bob", "mine", "1.0"));
    assert_ne!(p["owner"]["id"], items[0]["owner"]["id"]);
    // The admin may delete it; first bob deletes his own version.
    assert_eq!(
        delete_as(&s, &bob_auth, "/api/v1/packages/bob/generic/mine/1.0").status,
        204
    );
    assert_eq!(
        s.req(
            "GET",
            "/api/packages/bob/generic/mine/1.0/f",
            &[("Authorization", &bob_auth)],
            b""
        )
        .status,
        404
    );
    let r = s.put_as(&bob, "/api/packages/bob/generic/mine/2.0/f", b"bob");
    assert_eq!(r.status, 201);
    assert_eq!(s.delete("/api/v1/packages/bob/generic/mine").status, 204);
    not_found(&get_as(&s, &bob_auth, "/api/v1/packages/bob/generic/mine"));
}

/// Security probe finding 7: `(page - 1) * limit` wrapped in release builds, so
/// `page=9223372036854775809&limit=2` served page 1 again (and panicked with overflow checks);
/// some in-memory listings ignored the page altogether. Every listing now answers a huge page
/// with 200 `[]`, the true total, and `Link`s within the real pages.
#[test]
fn finding_7_huge_pages_are_empty_on_every_listing() {
    let s = Server::start();
    let json_body = [
        ("Authorization", admin_auth()),
        ("Content-Type", "application/json".to_string()),
    ];
    let headers: Vec<(&str, &str)> = json_body.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for org in ["pg1", "pg2", "pg3"] {
        let body = format!("{{\"username\":\"{org}\"}}");
        let r = s.req("POST", "/api/v1/orgs", &headers, body.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
    }
    for v in ["1", "2", "3"] {
        publish(&s, "pg", v, "f", b"x");
    }
    let r = s.req(
        "POST",
        "/api/v1/users/admin/tokens",
        &headers,
        br#"{"name":"second","scopes":["all"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    for list in [
        "/api/v1/orgs",
        "/api/v1/user/orgs",
        "/api/v1/admin/orgs",
        "/api/v1/admin/users",
        "/api/v1/admin/audit",
        V1,
        &format!("{V1}/generic/pg"),
        "/api/v1/users/admin/tokens",
        "/api/v1/orgs/pg1/members",
        "/api/v1/orgs/pg1/teams",
    ] {
        let first = aget(&s, &format!("{list}?limit=2"));
        let all = total(&first);
        assert!(!ok_array(&first).is_empty(), "{list}: something to page");
        for page in [
            "9223372036854775809",
            "18446744073709551615",
            "99999999999999999999999999",
        ] {
            let r = aget(&s, &format!("{list}?page={page}&limit=2"));
            assert_eq!(ok_array(&r), Vec::<Value>::new(), "{list} page {page}");
            assert_eq!(total(&r), all, "{list} page {page}");
            let last = all.div_ceil(2).max(1);
            for (rel, url) in links(&r) {
                let p: u64 = url
                    .split("page=")
                    .nth(1)
                    .and_then(|t| t.split('&').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{list}: page in {url}"));
                assert!((1..=last).contains(&p), "{list}: {rel} {url}");
            }
        }
    }
}

/// Every JSON error's `url` names `/api/swagger`: it answers, with no credentials, a page
/// that lists the routes, and `/swagger.v1.json` is the same reference as OpenAPI 3.
#[test]
fn the_api_reference_that_errors_point_to_answers() {
    let s = Server::start();
    let v = json_error(&get_as(&s, &admin_auth(), "/api/v1/packages/nobody"), 404);
    let url = v["url"].as_str().expect("url").to_string();
    assert_eq!(url, format!("{BASE}/api/swagger"));
    let page = s.get("/api/swagger");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    for route in [
        "/api/packages/{owner}/generic/{name}/{version}/{file}",
        "/api/v1/packages/{owner}/generic/{name}/-/latest",
        "/api/v1/users/{name}/tokens",
        "/api/v1/admin/import",
    ] {
        assert!(html.contains(&format!("<code>{route}</code>")), "{route}");
    }
    let doc = s.get("/swagger.v1.json");
    assert_eq!(doc.status, 200);
    assert_eq!(doc.header("content-type"), Some(JSON_CT));
    let d = json(&doc);
    assert_eq!(d["openapi"], "3.0.3");
    assert_eq!(d["servers"][0]["url"], BASE);
    let put = &d["paths"]["/api/packages/{owner}/generic/{name}/{version}/{file}"]["put"];
    assert_eq!(put["responses"]["201"]["description"], "published", "{put}");
    let head = s.req("HEAD", "/api/swagger", &[], b"");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = s.req("POST", "/swagger.v1.json", &[], b"");
    assert_eq!(post.status, 405);
}
