//! The accounts part of the JSON API end to end (issue 3): who am I, users (site admins),
//! password logins, personal access tokens, organizations, members, teams, listings, the shared
//! user/organization namespace, the audit log and the throttling of failed sign-ins. Every JSON
//! answer is also checked never to carry a password or its hash.

mod common;
use common::*;

use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Part of every password in this file: no response may ever contain it.
const MARK: &str = "Sekret!";

fn pw(login: &str) -> String {
    format!("pw-{login}-{MARK}")
}

fn adm() -> String {
    format!("token {ADMIN_TOKEN}")
}

fn bas(login: &str) -> String {
    basic(login, &pw(login))
}

fn tok(t: &str) -> String {
    format!("token {t}")
}

fn has_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| k == key || has_key(v, key)),
        Value::Array(a) => a.iter().any(|v| has_key(v, key)),
        _ => false,
    }
}

/// One request with optional credentials and JSON body. Checks that no password and no
/// password hash is in the answer.
fn call(s: &Server, auth: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = Vec::new();
    if let Some(a) = auth {
        headers.push(("Authorization", a));
    }
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let r = s.req(method, path, &headers, body.as_bytes());
    let text = r.text();
    assert!(
        !text.contains(MARK) && !text.contains("$argon2"),
        "{method} {path} answered a secret: {text}"
    );
    if let Ok(v) = serde_json::from_slice::<Value>(&r.body) {
        assert!(!has_key(&v, "password"), "{method} {path}: {v}");
    }
    r
}

fn json_of(r: &Resp) -> Value {
    serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {} {:?}", r.status, r.text()))
}

/// The answer must have this status; its JSON (or `Null` when empty).
fn expect(r: Resp, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    if r.body.is_empty() {
        Value::Null
    } else {
        json_of(&r)
    }
}

fn get(s: &Server, auth: &str, path: &str) -> Resp {
    call(s, Some(auth), "GET", path, None)
}

fn new_user(s: &Server, login: &str, visibility: &str) -> Value {
    let r = call(
        s,
        Some(&adm()),
        "POST",
        "/api/v1/admin/users",
        Some(json!({"username": login, "password": pw(login),
                    "email": format!("{login}@example.com"), "visibility": visibility})),
    );
    expect(r, 201, &format!("create user {login}"))
}

/// Creates a token for `login` with its password; returns the JSON answer.
fn new_token(s: &Server, login: &str, name: &str, scopes: &[&str]) -> Value {
    let r = call(
        s,
        Some(&bas(login)),
        "POST",
        &format!("/api/v1/users/{login}/tokens"),
        Some(json!({"name": name, "scopes": scopes})),
    );
    expect(r, 201, &format!("token {name} of {login}"))
}

fn pkg(owner: &str, file: &str) -> String {
    format!("/api/packages/{owner}/generic/pkg/1.0/{file}")
}

fn put_file(s: &Server, auth: &str, owner: &str, file: &str) -> Resp {
    s.req(
        "PUT",
        &pkg(owner, file),
        &[("Authorization", auth)],
        file.as_bytes(),
    )
}

fn names(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|o| o[key].as_str().expect("string").to_string())
        .collect()
}

#[test]
fn who_am_i_and_password_logins() {
    let s = Server::start();
    let me = expect(get(&s, &adm(), "/api/v1/user"), 200, "admin");
    assert_eq!(me["login"], "admin");
    assert_eq!(me["is_admin"], true);
    expect(
        call(&s, None, "GET", "/api/v1/user", None),
        401,
        "anonymous",
    );

    let u = new_user(&s, "alice", "public");
    assert_eq!(u["login"], "alice");
    assert_eq!(u["is_admin"], false);
    assert_eq!(u["active"], true);
    // A password login on the JSON API, and on the registry.
    let me = expect(get(&s, &bas("alice"), "/api/v1/user"), 200, "alice");
    assert_eq!(me["login"], "alice");
    assert_eq!(me["email"], "alice@example.com");
    let r = put_file(&s, &bas("alice"), "alice", "a.txt");
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req(
        "GET",
        &pkg("alice", "a.txt"),
        &[("Authorization", &bas("alice"))],
        b"",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, b"a.txt".as_slice()));
    // The user name is case-insensitive; a wrong password is 401 without a challenge, even on
    // a public read.
    expect(
        get(&s, &basic("ALICE", &pw("alice")), "/api/v1/user"),
        200,
        "case",
    );
    let wrong = basic("alice", "not-the-password");
    expect(get(&s, &wrong, "/api/v1/user"), 401, "wrong password");
    let r = s.req(
        "GET",
        &pkg("alice", "a.txt"),
        &[("Authorization", &wrong)],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), None);
    // Someone else's password does not work for alice.
    new_user(&s, "bob", "public");
    expect(
        get(&s, &basic("alice", &pw("bob")), "/api/v1/user"),
        401,
        "bob's password for alice",
    );
    // A token scoped to packages only cannot read the user.
    let t = new_token(&s, "alice", "pkgs", &["write:package"]);
    expect(
        get(&s, &tok(t["sha1"].as_str().unwrap()), "/api/v1/user"),
        403,
        "no user scope",
    );
    // An organization is no account: no password login as it.
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "acme"})),
        ),
        201,
        "org",
    );
    expect(
        get(&s, &basic("acme", "anything"), "/api/v1/user"),
        401,
        "org login",
    );
}

#[test]
fn admin_manages_users() {
    let s = Server::start();
    let u = new_user(&s, "carol", "limited");
    assert_eq!(u["visibility"], "limited");
    assert!(u["id"].as_u64().is_some_and(|id| id > 0), "{u}");

    // Taken (in any case) or invalid names: 422.
    for name in ["carol", "CAROL", "admin"] {
        let r = call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users",
            Some(json!({"username": name, "password": "x", "email": "x@example.com"})),
        );
        expect(r, 422, name);
    }
    for name in [
        "",
        "-lead",
        "trail-",
        "a b",
        "a/b",
        "ümlaut",
        &"x".repeat(41),
    ] {
        let r = call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users",
            Some(json!({"username": name, "password": "x", "email": "x@example.com"})),
        );
        expect(r, 422, &format!("invalid name {name:?}"));
    }
    expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users",
            Some(json!({})),
        ),
        422,
        "no name",
    );

    // Read, list, edit.
    let one = expect(get(&s, &adm(), "/api/v1/admin/users/Carol"), 200, "get");
    assert_eq!(one["login"], "carol");
    let all = expect(get(&s, &adm(), "/api/v1/admin/users"), 200, "list");
    let logins = names(&all, "login");
    assert!(logins.contains(&"carol".to_string()) && logins.contains(&"admin".to_string()));
    let edited = expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/carol",
            Some(
                json!({"full_name": "Carol C", "visibility": "private", "email": "c@example.org"}),
            ),
        ),
        200,
        "patch",
    );
    assert_eq!(edited["full_name"], "Carol C");
    assert_eq!(edited["visibility"], "private");
    assert_eq!(edited["email"], "c@example.org");
    // A new password replaces the old one.
    expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/carol",
            Some(json!({"password": format!("new-{MARK}")})),
        ),
        200,
        "new password",
    );
    expect(get(&s, &bas("carol"), "/api/v1/user"), 401, "old password");
    expect(
        get(&s, &basic("carol", &format!("new-{MARK}")), "/api/v1/user"),
        200,
        "new password",
    );
    // Deactivated: every credential is refused; reactivated: accepted again.
    let token = {
        let r = call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users/carol/tokens",
            Some(json!({"name": "ci", "scopes": ["all"]})),
        );
        expect(r, 201, "admin-made token")["sha1"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let off = expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/carol",
            Some(json!({"active": false})),
        ),
        200,
        "deactivate",
    );
    assert_eq!(
        (off["active"].clone(), off["prohibit_login"].clone()),
        (json!(false), json!(true))
    );
    expect(
        get(&s, &tok(&token), "/api/v1/user"),
        401,
        "deactivated token",
    );
    expect(
        get(&s, &basic("carol", &format!("new-{MARK}")), "/api/v1/user"),
        401,
        "deactivated password",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/carol",
            Some(json!({"active": true})),
        ),
        200,
        "reactivate",
    );
    expect(
        get(&s, &tok(&token), "/api/v1/user"),
        200,
        "reactivated token",
    );

    // Non-admins: 403 on every admin route; anonymous: 401.
    new_user(&s, "dave", "public");
    let dave = bas("dave");
    for (method, path, body) in [
        ("GET", "/api/v1/admin/users", None),
        ("GET", "/api/v1/admin/users/carol", None),
        (
            "POST",
            "/api/v1/admin/users",
            Some(json!({"username": "eve", "password": "x"})),
        ),
        (
            "PATCH",
            "/api/v1/admin/users/carol",
            Some(json!({"admin": true})),
        ),
        (
            "PATCH",
            "/api/v1/admin/users/dave",
            Some(json!({"admin": true})),
        ),
        ("DELETE", "/api/v1/admin/users/carol", None),
        (
            "POST",
            "/api/v1/admin/users/carol/tokens",
            Some(json!({"name": "x", "scopes": ["all"]})),
        ),
        ("GET", "/api/v1/admin/orgs", None),
        ("GET", "/api/v1/admin/audit", None),
    ] {
        expect(
            call(&s, Some(&dave), method, path, body.clone()),
            403,
            &format!("dave {method} {path}"),
        );
        expect(
            call(&s, None, method, path, body),
            401,
            &format!("anonymous {method} {path}"),
        );
    }
    let still = expect(get(&s, &adm(), "/api/v1/admin/users/dave"), 200, "dave");
    assert_eq!(still["is_admin"], false, "dave did not make himself admin");
    // The admin's token needs the admin scope too.
    let weak = expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users/admin/tokens",
            Some(json!({"name": "pkg-only", "scopes": ["write:package"]})),
        ),
        201,
        "admin token without admin scope",
    );
    expect(
        get(
            &s,
            &tok(weak["sha1"].as_str().unwrap()),
            "/api/v1/admin/users",
        ),
        403,
        "no admin scope",
    );

    // Unknown users: 404.
    expect(
        get(&s, &adm(), "/api/v1/admin/users/nobody"),
        404,
        "get unknown",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/nobody",
            Some(json!({"full_name": "x"})),
        ),
        404,
        "patch unknown",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "DELETE",
            "/api/v1/admin/users/nobody",
            None,
        ),
        404,
        "delete unknown",
    );

    // Delete: refused while the user owns packages, unless purged; its tokens die with it.
    assert_eq!(put_file(&s, &tok(&token), "carol", "c.txt").status, 201);
    expect(
        call(
            &s,
            Some(&adm()),
            "DELETE",
            "/api/v1/admin/users/carol",
            None,
        ),
        422,
        "owns packages",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "DELETE",
            "/api/v1/admin/users/carol?purge=true",
            None,
        ),
        204,
        "purge",
    );
    expect(get(&s, &adm(), "/api/v1/admin/users/carol"), 404, "deleted");
    expect(
        get(&s, &tok(&token), "/api/v1/user"),
        401,
        "token of a deleted user",
    );
    assert_eq!(s.get(&pkg("carol", "c.txt")).status, 404);
    expect(
        call(&s, Some(&adm()), "DELETE", "/api/v1/admin/users/dave", None),
        204,
        "delete dave",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "DELETE",
            "/api/v1/admin/users/admin",
            None,
        ),
        422,
        "the admin cannot delete itself",
    );
    // The name is free again, and the new carol inherits nothing from the old one.
    new_user(&s, "carol", "public");
    expect(
        get(&s, &tok(&token), "/api/v1/user"),
        401,
        "old token, new carol",
    );
    let list = expect(
        get(&s, &bas("carol"), "/api/v1/users/carol/tokens"),
        200,
        "tokens",
    );
    assert_eq!(list, json!([]));
}

#[test]
fn visibility_edits_take_effect() {
    let s = Server::start();
    new_user(&s, "vic", "private");
    new_user(&s, "wen", "public");
    assert_eq!(put_file(&s, &bas("vic"), "vic", "v.txt").status, 201);
    let read = |auth: Option<&str>| {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
        s.req("GET", &pkg("vic", "v.txt"), &headers, b"").status
    };
    let wen = bas("wen");
    assert_eq!((read(None), read(Some(&wen))), (401, 401), "private");
    let edit = |vis: &str| {
        let u = expect(
            call(
                &s,
                Some(&adm()),
                "PATCH",
                "/api/v1/admin/users/vic",
                Some(json!({ "visibility": vis })),
            ),
            200,
            vis,
        );
        assert_eq!(u["visibility"], vis);
    };
    edit("limited");
    assert_eq!((read(None), read(Some(&wen))), (401, 200), "limited");
    edit("public");
    assert_eq!((read(None), read(Some(&wen))), (200, 200), "public");
    expect(
        call(
            &s,
            Some(&adm()),
            "PATCH",
            "/api/v1/admin/users/vic",
            Some(json!({"visibility": "secret"})),
        ),
        422,
        "unknown visibility",
    );
    // Organizations too, by their admin.
    new_org(&s, "vic", "vorg", "public");
    assert_eq!(put_file(&s, &bas("vic"), "vorg", "o.txt").status, 201);
    let r = s.get(&pkg("vorg", "o.txt"));
    assert_eq!(r.status, 200);
    expect(
        call(
            &s,
            Some(&bas("vic")),
            "PATCH",
            "/api/v1/orgs/vorg",
            Some(json!({"visibility": "private"})),
        ),
        200,
        "org private",
    );
    assert_eq!(s.get(&pkg("vorg", "o.txt")).status, 401);
    let r = s.req(
        "GET",
        &pkg("vorg", "o.txt"),
        &[("Authorization", &wen)],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "GET",
        &pkg("vorg", "o.txt"),
        &[("Authorization", &bas("vic"))],
        b"",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn tokens_are_made_with_a_password() {
    let s = Server::start();
    new_user(&s, "alice", "public");
    new_user(&s, "bob", "public");

    let t = new_token(&s, "alice", "ci", &["write:package", "read:user"]);
    let secret = t["sha1"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 40);
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
    assert_eq!(t["token_last_eight"], secret[32..]);
    assert_eq!(t["scopes"], json!(["write:package", "read:user"]));
    assert_eq!(t["name"], "ci");
    let id = t["id"].as_u64().expect("id");
    // The token works, as `token`, `Bearer` and Basic.
    let me = expect(get(&s, &tok(&secret), "/api/v1/user"), 200, "token");
    assert_eq!(me["login"], "alice");
    expect(
        get(&s, &format!("Bearer {secret}"), "/api/v1/user"),
        200,
        "bearer",
    );
    assert_eq!(put_file(&s, &tok(&secret), "alice", "t.txt").status, 201);

    // A token is no password: it cannot make tokens, list or revoke them.
    for auth in [tok(&secret), basic("alice", &secret)] {
        expect(
            call(
                &s,
                Some(&auth),
                "POST",
                "/api/v1/users/alice/tokens",
                Some(json!({"name": "more", "scopes": ["all"]})),
            ),
            401,
            "token instead of password",
        );
        expect(
            get(&s, &auth, "/api/v1/users/alice/tokens"),
            401,
            "list with a token",
        );
        expect(
            call(
                &s,
                Some(&auth),
                "DELETE",
                "/api/v1/users/alice/tokens/ci",
                None,
            ),
            401,
            "revoke with a token",
        );
    }
    expect(
        call(
            &s,
            None,
            "POST",
            "/api/v1/users/alice/tokens",
            Some(json!({"name": "more", "scopes": ["all"]})),
        ),
        401,
        "anonymous",
    );
    // Bob's password does not manage alice's tokens.
    expect(
        call(
            &s,
            Some(&bas("bob")),
            "POST",
            "/api/v1/users/alice/tokens",
            Some(json!({"name": "more", "scopes": ["all"]})),
        ),
        403,
        "someone else",
    );
    expect(
        get(&s, &bas("bob"), "/api/v1/users/alice/tokens"),
        403,
        "list other",
    );
    expect(
        call(
            &s,
            Some(&bas("bob")),
            "DELETE",
            "/api/v1/users/alice/tokens/ci",
            None,
        ),
        403,
        "revoke other",
    );

    // Scopes are required and must be known; names are unique per user.
    for (body, status) in [
        (json!({"name": "x", "scopes": []}), 400),
        (json!({"name": "x"}), 400),
        (json!({"name": "x", "scopes": ["write:everything"]}), 400),
        (
            json!({"name": "x", "scopes": ["read:package", "sudo"]}),
            400,
        ),
        (json!({"name": "x", "scopes": "all"}), 422),
        (json!({"scopes": ["all"]}), 422),
        (json!({"name": "CI", "scopes": ["all"]}), 422),
    ] {
        expect(
            call(
                &s,
                Some(&bas("alice")),
                "POST",
                "/api/v1/users/alice/tokens",
                Some(body.clone()),
            ),
            status,
            &body.to_string(),
        );
    }
    let second = new_token(&s, "alice", "second", &["read:package"]);
    let third = new_token(&s, "alice", "third", &["all"]);
    // The site admin may make tokens for anyone.
    let by_admin = expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/users/alice/tokens",
            Some(json!({"name": "by-admin", "scopes": ["read:package"]})),
        ),
        201,
        "admin",
    );
    assert_eq!(by_admin["sha1"].as_str().map(str::len), Some(40));

    // Listing never shows a token.
    let list = expect(
        get(&s, &bas("alice"), "/api/v1/users/alice/tokens"),
        200,
        "list",
    );
    assert_eq!(names(&list, "name"), ["ci", "second", "third", "by-admin"]);
    for t in list.as_array().unwrap() {
        assert_eq!(t["sha1"], "", "{t}");
        assert_eq!(t["token_last_eight"].as_str().map(str::len), Some(8), "{t}");
    }
    let listed_text = get(&s, &bas("alice"), "/api/v1/users/alice/tokens").text();
    for t in [
        &secret,
        second["sha1"].as_str().unwrap(),
        third["sha1"].as_str().unwrap(),
    ] {
        assert!(!listed_text.contains(t), "a token in the listing");
    }
    let by_admin_list = expect(
        get(&s, &adm(), "/api/v1/users/alice/tokens"),
        200,
        "admin list",
    );
    assert_eq!(by_admin_list.as_array().map(Vec::len), Some(4));

    // Revoke by name (any case) and by id: 204, then the token is refused.
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "DELETE",
            "/api/v1/users/alice/tokens/CI",
            None,
        ),
        204,
        "revoke by name",
    );
    expect(get(&s, &tok(&secret), "/api/v1/user"), 401, "revoked");
    assert_eq!(put_file(&s, &tok(&secret), "alice", "u.txt").status, 401);
    let third_id = third["id"].as_u64().unwrap();
    assert_ne!(third_id, id);
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "DELETE",
            &format!("/api/v1/users/alice/tokens/{third_id}"),
            None,
        ),
        204,
        "revoke by id",
    );
    expect(
        get(&s, &tok(third["sha1"].as_str().unwrap()), "/api/v1/user"),
        401,
        "revoked by id",
    );
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "DELETE",
            "/api/v1/users/alice/tokens/ci",
            None,
        ),
        404,
        "already revoked",
    );
    // The others still work.
    expect(
        get(
            &s,
            &tok(second["sha1"].as_str().unwrap()),
            "/api/v1/packages/alice",
        ),
        200,
        "second",
    );
    let list = expect(
        get(&s, &bas("alice"), "/api/v1/users/alice/tokens"),
        200,
        "list",
    );
    assert_eq!(names(&list, "name"), ["second", "by-admin"]);
    // Another user's token cannot be revoked through one's own route, even by id.
    let bobs = new_token(&s, "bob", "bobs", &["read:package"]);
    let bobs_id = bobs["id"].as_u64().unwrap();
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "DELETE",
            &format!("/api/v1/users/alice/tokens/{bobs_id}"),
            None,
        ),
        404,
        "bob's token id on alice's route",
    );
    expect(
        get(
            &s,
            &tok(bobs["sha1"].as_str().unwrap()),
            "/api/v1/packages/bob",
        ),
        200,
        "bob's token still works",
    );
    // A name can be reused once revoked.
    new_token(&s, "alice", "ci", &["all"]);
}

/// Creates org `org` as `login` (with its password) through `POST /api/v1/orgs`.
fn new_org(s: &Server, login: &str, org: &str, visibility: &str) -> Value {
    let r = call(
        s,
        Some(&bas(login)),
        "POST",
        "/api/v1/orgs",
        Some(json!({"username": org, "visibility": visibility})),
    );
    expect(r, 201, &format!("org {org}"))
}

fn members(s: &Server, auth: &str, org: &str) -> Vec<(String, String)> {
    let v = expect(
        get(s, auth, &format!("/api/v1/orgs/{org}/members")),
        200,
        "members",
    );
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["login"].as_str().unwrap().to_string(),
                m["role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn organizations_members_and_teams() {
    let s = Server::start();
    for u in ["bob", "carol", "dave"] {
        new_user(&s, u, "public");
    }
    let bob = bas("bob");
    let carol = bas("carol");
    let dave = bas("dave");

    // A token without the organization scope may not create one.
    let t = new_token(&s, "bob", "pkg", &["write:package"]);
    expect(
        call(
            &s,
            Some(&tok(t["sha1"].as_str().unwrap())),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "nope"})),
        ),
        403,
        "no organization scope",
    );
    expect(
        call(
            &s,
            None,
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "nope"})),
        ),
        401,
        "anonymous",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "bad name"})),
        ),
        422,
        "invalid name",
    );

    // The creator becomes its admin and can publish.
    let o = new_org(&s, "bob", "acme", "public");
    assert_eq!(
        (o["username"].clone(), o["visibility"].clone()),
        (json!("acme"), json!("public"))
    );
    assert_eq!(
        members(&s, &bob, "acme"),
        [("bob".to_string(), "admin".to_string())]
    );
    assert_eq!(put_file(&s, &bob, "acme", "bob.txt").status, 201);
    let got = expect(get(&s, &carol, "/api/v1/orgs/ACME"), 200, "public org");
    assert_eq!(got["username"], "acme");

    // Only its admins edit it.
    expect(
        call(
            &s,
            Some(&carol),
            "PATCH",
            "/api/v1/orgs/acme",
            Some(json!({"description": "x"})),
        ),
        403,
        "non-member edits",
    );
    let edited = expect(
        call(
            &s,
            Some(&bob),
            "PATCH",
            "/api/v1/orgs/acme",
            Some(json!({"description": "Acme Inc.", "visibility": "private"})),
        ),
        200,
        "admin edits",
    );
    assert_eq!(edited["description"], "Acme Inc.");
    assert_eq!(edited["visibility"], "private");
    // Private now: hidden from non-members (404), its packages refused (401).
    expect(get(&s, &carol, "/api/v1/orgs/acme"), 404, "private org");
    expect(
        get(&s, &carol, "/api/v1/orgs/acme/members"),
        404,
        "private members",
    );
    expect(
        call(
            &s,
            Some(&carol),
            "PATCH",
            "/api/v1/orgs/acme",
            Some(json!({"description": "x"})),
        ),
        404,
        "private org edit",
    );
    let r = s.req(
        "GET",
        &pkg("acme", "bob.txt"),
        &[("Authorization", &carol)],
        b"",
    );
    assert_eq!(r.status, 401);

    // Members: PUT with a role, listed with it, removed with DELETE.
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            "/api/v1/orgs/acme/members/carol",
            Some(json!({"role": "read"})),
        ),
        204,
        "add carol",
    );
    let mut m = members(&s, &carol, "acme");
    m.sort();
    assert_eq!(
        m,
        [
            ("bob".to_string(), "admin".to_string()),
            ("carol".to_string(), "read".to_string())
        ]
    );
    let r = s.req(
        "GET",
        &pkg("acme", "bob.txt"),
        &[("Authorization", &carol)],
        b"",
    );
    assert_eq!(r.status, 200, "a read member reads the private org");
    let r = put_file(&s, &carol, "acme", "carol.txt");
    assert_eq!(r.status, 401, "a read member does not write");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"shelf\""));
    // A read member may not manage members.
    expect(
        call(
            &s,
            Some(&carol),
            "PUT",
            "/api/v1/orgs/acme/members/dave",
            Some(json!({"role": "write"})),
        ),
        403,
        "read member adds",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            "/api/v1/orgs/acme/members/carol",
            Some(json!({"role": "boss"})),
        ),
        422,
        "unknown role",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            "/api/v1/orgs/acme/members/nobody",
            Some(json!({"role": "read"})),
        ),
        404,
        "unknown user",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            "/api/v1/orgs/acme/members/carol",
            Some(json!({"role": "write"})),
        ),
        204,
        "promote carol",
    );
    assert_eq!(put_file(&s, &carol, "acme", "carol.txt").status, 201);
    expect(
        call(
            &s,
            Some(&bob),
            "DELETE",
            "/api/v1/orgs/acme/members/carol",
            None,
        ),
        204,
        "remove carol",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "DELETE",
            "/api/v1/orgs/acme/members/carol",
            None,
        ),
        404,
        "remove again",
    );
    let r = s.req(
        "GET",
        &pkg("acme", "bob.txt"),
        &[("Authorization", &carol)],
        b"",
    );
    assert_eq!(r.status, 401, "removed: no more access");

    // Teams: a write team lets its members publish, until they leave it.
    let team = expect(
        call(
            &s,
            Some(&bob),
            "POST",
            "/api/v1/orgs/acme/teams",
            Some(json!({"name": "devs", "permission": "write"})),
        ),
        201,
        "team",
    );
    assert_eq!(team["name"], "devs");
    assert_eq!(team["permission"], "write");
    let id = team["id"].as_u64().expect("team id");
    expect(
        call(
            &s,
            Some(&dave),
            "POST",
            "/api/v1/orgs/acme/teams",
            Some(json!({"name": "mine", "permission": "admin"})),
        ),
        404,
        "non-member of a private org makes a team",
    );
    // Team names are unique in an organization (Gitea: 422), in any case.
    for name in ["devs", "DEVS", "Owners"] {
        expect(
            call(
                &s,
                Some(&bob),
                "POST",
                "/api/v1/orgs/acme/teams",
                Some(json!({"name": name, "permission": "admin"})),
            ),
            422,
            &format!("duplicate team {name}"),
        );
    }
    let teams = expect(get(&s, &bob, "/api/v1/orgs/acme/teams"), 200, "teams");
    let mut team_names = names(&teams, "name");
    team_names.sort();
    assert_eq!(team_names, ["Owners", "devs"]);
    let r = put_file(&s, &dave, "acme", "dave.txt");
    assert_eq!(r.status, 401);
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            &format!("/api/v1/teams/{id}/members/dave"),
            None,
        ),
        204,
        "join",
    );
    assert_eq!(put_file(&s, &dave, "acme", "dave.txt").status, 201);
    assert!(members(&s, &dave, "acme").contains(&("dave".to_string(), "write".to_string())));
    let tm = expect(
        get(&s, &dave, &format!("/api/v1/teams/{id}/members")),
        200,
        "team members",
    );
    assert_eq!(names(&tm, "login"), ["dave"]);
    expect(
        call(
            &s,
            Some(&dave),
            "PUT",
            &format!("/api/v1/teams/{id}/members/carol"),
            None,
        ),
        403,
        "a write member does not manage teams",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "DELETE",
            &format!("/api/v1/teams/{id}/members/dave"),
            None,
        ),
        204,
        "leave",
    );
    let r = put_file(&s, &dave, "acme", "dave2.txt");
    assert_eq!(r.status, 401, "left the team: no more writing");
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"shelf\""));
    expect(
        call(
            &s,
            Some(&bob),
            "PUT",
            "/api/v1/teams/999999/members/dave",
            None,
        ),
        404,
        "unknown team",
    );

    // Delete: refused while it owns packages, unless purged; only by its admins.
    expect(
        call(&s, Some(&dave), "DELETE", "/api/v1/orgs/acme", None),
        404,
        "non-member",
    );
    expect(
        call(&s, Some(&bob), "DELETE", "/api/v1/orgs/acme", None),
        422,
        "owns packages",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "DELETE",
            "/api/v1/orgs/acme?purge=true",
            None,
        ),
        204,
        "purge",
    );
    expect(get(&s, &bob, "/api/v1/orgs/acme"), 404, "gone");
    assert_eq!(s.get(&pkg("acme", "bob.txt")).status, 404);
    // A new organization of the same name inherits no member, team or package.
    new_org(&s, "carol", "acme", "public");
    assert_eq!(
        members(&s, &carol, "acme"),
        [("carol".to_string(), "admin".to_string())]
    );
    let teams = expect(get(&s, &carol, "/api/v1/orgs/acme/teams"), 200, "teams");
    assert_eq!(names(&teams, "name"), ["Owners"]);
    assert_eq!(
        put_file(&s, &bob, "acme", "bob.txt").status,
        401,
        "bob was admin of the old one"
    );
    assert_eq!(s.get(&pkg("acme", "bob.txt")).status, 404);
    // A deleted user that is re-created is no member any more.
    expect(
        call(
            &s,
            Some(&carol),
            "PUT",
            "/api/v1/orgs/acme/members/dave",
            Some(json!({"role": "admin"})),
        ),
        204,
        "dave admin",
    );
    // A direct admin member manages members too; no role given means read.
    expect(
        call(
            &s,
            Some(&dave),
            "PUT",
            "/api/v1/orgs/acme/members/bob",
            None,
        ),
        204,
        "admin member adds bob",
    );
    assert!(members(&s, &dave, "acme").contains(&("bob".to_string(), "read".to_string())));
    expect(
        call(&s, Some(&adm()), "DELETE", "/api/v1/admin/users/dave", None),
        204,
        "delete dave",
    );
    new_user(&s, "dave", "public");
    assert!(
        !members(&s, &carol, "acme").iter().any(|(u, _)| u == "dave"),
        "the new dave is no member"
    );
    assert_eq!(put_file(&s, &dave, "acme", "d.txt").status, 401);
    // An empty org needs no purge; the site admin may delete any.
    new_org(&s, "bob", "empty", "public");
    expect(
        call(&s, Some(&adm()), "DELETE", "/api/v1/orgs/empty", None),
        204,
        "empty",
    );
    expect(
        call(&s, Some(&adm()), "DELETE", "/api/v1/orgs/empty", None),
        404,
        "again",
    );
}

#[test]
fn organization_listings_and_one_namespace() {
    let s = Server::start();
    for u in ["bob", "carol"] {
        new_user(&s, u, "public");
    }
    let bob = bas("bob");
    let carol = bas("carol");
    new_org(&s, "bob", "open", "public");
    new_org(&s, "bob", "inner", "limited");
    new_org(&s, "bob", "secret", "private");
    // The site admin creates one owned by carol.
    expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users/carol/orgs",
            Some(json!({"username": "carols", "visibility": "private"})),
        ),
        201,
        "admin creates for carol",
    );
    assert_eq!(
        members(&s, &carol, "carols"),
        [("carol".to_string(), "admin".to_string())]
    );

    let sorted = |v: Value| {
        let mut n = names(&v, "username");
        n.sort();
        n
    };
    assert_eq!(
        sorted(expect(
            get(&s, &adm(), "/api/v1/admin/orgs"),
            200,
            "admin orgs"
        )),
        ["carols", "inner", "open", "secret"]
    );
    let r = get(&s, &adm(), "/api/v1/admin/orgs?limit=2");
    assert_eq!(r.header("x-total-count"), Some("4"));
    assert_eq!(json_of(&r).as_array().map(Vec::len), Some(2));
    assert_eq!(
        sorted(expect(get(&s, &bob, "/api/v1/user/orgs"), 200, "bob's")),
        ["inner", "open", "secret"]
    );
    assert_eq!(
        sorted(expect(get(&s, &carol, "/api/v1/user/orgs"), 200, "carol's")),
        ["carols"]
    );
    // Private organizations are hidden from non-members.
    assert_eq!(
        sorted(expect(get(&s, &carol, "/api/v1/orgs"), 200, "carol sees")),
        ["carols", "inner", "open"]
    );
    assert_eq!(
        sorted(expect(get(&s, &bob, "/api/v1/orgs"), 200, "bob sees")),
        ["inner", "open", "secret"]
    );
    assert_eq!(
        sorted(expect(get(&s, &adm(), "/api/v1/orgs"), 200, "admin sees")),
        ["carols", "inner", "open", "secret"]
    );
    expect(
        call(&s, None, "GET", "/api/v1/orgs", None),
        401,
        "anonymous",
    );
    expect(get(&s, &carol, "/api/v1/orgs/secret"), 404, "private org");
    expect(get(&s, &carol, "/api/v1/orgs/inner"), 200, "limited org");
    expect(
        get(&s, &carol, "/api/v1/users/secret"),
        404,
        "private org as a user",
    );

    // One namespace: no org named like a user, no user named like an org (any case).
    expect(
        call(
            &s,
            Some(&bob),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "Carol"})),
        ),
        422,
        "org named like a user",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "admin"})),
        ),
        422,
        "org named like the admin",
    );
    expect(
        call(
            &s,
            Some(&bob),
            "POST",
            "/api/v1/orgs",
            Some(json!({"username": "OPEN"})),
        ),
        422,
        "org named like an org",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users",
            Some(json!({"username": "Secret", "password": "x", "email": "x@example.com"})),
        ),
        422,
        "user named like an org",
    );
    // Users and orgs are told apart on the routes that name one kind.
    expect(
        get(&s, &adm(), "/api/v1/admin/users/open"),
        404,
        "an org is no user",
    );
    expect(get(&s, &adm(), "/api/v1/orgs/bob"), 404, "a user is no org");
    expect(
        call(&s, Some(&adm()), "DELETE", "/api/v1/admin/users/open", None),
        404,
        "delete an org as a user",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "PUT",
            "/api/v1/orgs/open/members/inner",
            Some(json!({"role": "read"})),
        ),
        404,
        "an org as a member",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users/open/tokens",
            Some(json!({"name": "x", "scopes": ["all"]})),
        ),
        404,
        "a token for an org",
    );
}

fn audit(s: &Server, query: &str) -> Vec<Value> {
    let v = expect(
        get(s, &adm(), &format!("/api/v1/admin/audit?{query}")),
        200,
        query,
    );
    v.as_array().unwrap().clone()
}

#[test]
fn audit_log() {
    let s = Server::start_with(&["--auth-failure-burst", "100000"]);
    new_user(&s, "alice", "public");
    new_user(&s, "bob", "public");
    let t = new_token(&s, "alice", "ci", &["all"]);
    let secret = t["sha1"].as_str().unwrap().to_string();
    // A refused creation (name taken) is recorded too.
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "POST",
            "/api/v1/users/alice/tokens",
            Some(json!({"name": "ci", "scopes": ["all"]})),
        ),
        422,
        "taken",
    );
    expect(
        call(
            &s,
            Some(&bas("alice")),
            "DELETE",
            "/api/v1/users/alice/tokens/ci",
            None,
        ),
        204,
        "revoke",
    );
    expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/admin/users/bob/tokens",
            Some(json!({"name": "deploy", "scopes": ["write:package"]})),
        ),
        201,
        "admin makes bob's",
    );
    new_org(&s, "bob", "acme", "public");
    assert_eq!(put_file(&s, &bas("bob"), "acme", "f.txt").status, 201);
    assert_eq!(put_file(&s, &bas("alice"), "alice", "g.txt").status, 201);

    let events = audit(&s, "action=token");
    let summary: Vec<(String, String, String, String)> = events
        .iter()
        .map(|e| {
            for k in [
                "time", "actor", "addr", "action", "owner", "target", "outcome",
            ] {
                assert!(e[k].is_string(), "{k} in {e}");
            }
            assert_eq!(e["addr"], "127.0.0.1");
            (
                e["action"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["target"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = [
        ("token.create", "admin", "bob/deploy", "ok"),
        ("token.revoke", "alice", "alice/ci", "ok"),
        ("token.create", "alice", "alice/ci", "refused"),
        ("token.create", "alice", "alice/ci", "ok"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(summary, want, "newest first");
    // No token in clear in the log.
    let all = get(&s, &adm(), "/api/v1/admin/audit?limit=50").text();
    assert!(!all.contains(&secret), "a token in the audit log");

    // Filters: owner, actor, action family.
    let acme = audit(&s, "owner=ACME");
    assert!(!acme.is_empty());
    assert!(acme.iter().all(|e| e["owner"] == "acme"), "{acme:?}");
    let acme_actions: Vec<&str> = acme.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(acme_actions.contains(&"org.create"), "{acme_actions:?}");
    assert!(
        acme_actions.contains(&"package.publish"),
        "{acme_actions:?}"
    );
    let by_alice = audit(&s, "actor=alice");
    assert!(by_alice.iter().all(|e| e["actor"] == "alice"));
    assert!(by_alice
        .iter()
        .any(|e| e["action"] == "package.publish" && e["owner"] == "alice"));
    assert!(
        audit(&s, "action=tok").is_empty(),
        "action filters by family, not prefix"
    );
    let r = get(&s, &adm(), "/api/v1/admin/audit?action=token&limit=1");
    assert_eq!(r.header("x-total-count"), Some("4"));
    assert_eq!(json_of(&r).as_array().map(Vec::len), Some(1));

    // Only site admins read it.
    expect(
        get(&s, &bas("alice"), "/api/v1/admin/audit"),
        403,
        "non-admin",
    );
    expect(
        call(&s, None, "GET", "/api/v1/admin/audit", None),
        401,
        "anonymous",
    );

    // Failed sign-ins are recorded, never with the secret that was tried.
    let wrong_pw = format!("wrong-{MARK}");
    let wrong_token = "feedfacefeedfacefeedfacefeedfacefeedface";
    expect(
        get(&s, &basic("alice", &wrong_pw), "/api/v1/user"),
        401,
        "wrong password",
    );
    let r = s.req(
        "GET",
        &pkg("alice", "g.txt"),
        &[("Authorization", &tok(wrong_token))],
        b"",
    );
    assert_eq!(r.status, 401);
    expect(
        get(&s, &basic("nobody", "whatever-pw"), "/api/v1/user"),
        401,
        "unknown user",
    );
    let failures = audit(&s, "action=auth.failure");
    assert_eq!(failures.len(), 3, "{failures:?}");
    let actors: Vec<&str> = failures
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    // An unknown user name is not recorded: it may be a secret typed in the wrong field.
    assert_eq!(actors, ["(unknown user)", "", "alice"]);
    assert!(failures
        .iter()
        .all(|e| e["outcome"] == "invalid credentials"));
    let text = get(&s, &adm(), "/api/v1/admin/audit?action=auth&limit=50").text();
    for secret in [wrong_pw.as_str(), wrong_token, "whatever-pw"] {
        assert!(
            !text.contains(secret),
            "the tried secret {secret} is in the log"
        );
    }
}

#[test]
fn failed_sign_ins_are_throttled_per_address() {
    // The default burst (10): no --auth-failure-burst here.
    let s = Server::start();
    new_user(&s, "alice", "public");
    let path = "/api/packages/admin/generic/p/1/f";
    assert_eq!(s.put(path, b"x").status, 201);
    let wrong = tok("0000000000000000000000000000000000000bad");
    for i in 1..=10 {
        let r = s.req("GET", path, &[("Authorization", &wrong)], b"");
        assert_eq!(r.status, 401, "failure {i}: {}", r.text());
    }
    let r = s.req("GET", path, &[("Authorization", &wrong)], b"");
    assert_eq!(r.status, 429, "the 11th failure in a row: {}", r.text());
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=6).contains(&retry), "Retry-After {retry}");
    let throttled_at = Instant::now();

    // While the address is throttled: wrong credentials and *passwords* (even the right one:
    // no Argon2 is run for a throttled address) get 429, on the registry and the JSON API.
    let r = call(&s, Some(&wrong), "GET", "/api/v1/user", None);
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(json_of(&r)["message"].is_string());
    let r = call(&s, Some(&bas("alice")), "GET", "/api/v1/user", None);
    assert_eq!(r.status, 429, "the right password from a throttled address");
    let r = s.req("GET", path, &[("Authorization", &bas("alice"))], b"");
    assert_eq!(r.status, 429);
    // A valid token is looked up before the limiter and is never throttled (so the real user
    // behind a shared address keeps working).
    let r = s.req("GET", path, &[("Authorization", &adm())], b"");
    assert_eq!(r.status, 200, "a good token from a throttled address");
    let me = expect(get(&s, &adm(), "/api/v1/user"), 200, "good token on JSON");
    assert_eq!(me["login"], "admin");
    // Requests without credentials are not throttled.
    let r = s.get(path);
    assert_eq!((r.status, r.body.as_slice()), (200, b"x".as_slice()));
    assert_eq!(s.get("/api/v1/version").status, 200);

    // Once Retry-After has passed, the password works again.
    let wait = Duration::from_secs(retry) + Duration::from_millis(300);
    if let Some(left) = wait.checked_sub(throttled_at.elapsed()) {
        std::thread::sleep(left);
    }
    let me = expect(
        get(&s, &bas("alice"), "/api/v1/user"),
        200,
        "after Retry-After",
    );
    assert_eq!(me["login"], "alice");
    // Like refusals from one address are one entry per minute, and a count of the rest when
    // the minute ends (or the server stops: issue 9).
    let mut s = s;
    s.stop();
    let s = s.restart();
    let failures = audit(&s, "action=auth.failure&limit=50");
    let outcomes: Vec<&str> = failures
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "throttled").count(),
        1,
        "one entry per run of refusals, not one per refused request: {outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "invalid credentials")
            .count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.starts_with("invalid credentials, 9 more like it within")),
        "the rest are counted: {outcomes:?}"
    );
}

/// Sets fields of `login` as the site admin.
fn edit_user(s: &Server, login: &str, fields: Value) {
    expect(
        call(
            s,
            Some(&adm()),
            "PATCH",
            &format!("/api/v1/admin/users/{login}"),
            Some(fields),
        ),
        200,
        &format!("edit {login}"),
    );
}

/// Adds `user` to `org` with `role`, as `by` (an admin of `org`).
fn add_member(s: &Server, by: &str, org: &str, user: &str, role: &str) {
    expect(
        call(
            s,
            Some(&bas(by)),
            "PUT",
            &format!("/api/v1/orgs/{org}/members/{user}"),
            Some(json!({ "role": role })),
        ),
        204,
        &format!("{user} into {org}"),
    );
}

/// A 200 JSON answer and its text.
fn ok_with_text(r: Resp, what: &str) -> (Value, String) {
    let text = r.text();
    (expect(r, 200, what), text)
}

/// Security probe, finding 4: package objects showed a private creator's email, full name,
/// is_admin and visibility to anyone who may read the package. As Gitea's `convert.ToUser`, the
/// address and the admin flag now go only to the user itself and site admins, and a creator the
/// viewer may not see (`IsUserVisibleToViewer`) is shown as the Ghost, like a deleted account.
#[test]
fn private_creators_are_hidden_from_those_who_may_not_see_them() {
    let s = Server::start();
    new_user(&s, "pia", "private");
    edit_user(
        &s,
        "pia",
        json!({"full_name": "Pia Private", "admin": true}),
    );
    new_user(&s, "bob", "public");
    new_user(&s, "carl", "public");
    new_org(&s, "pia", "pubco", "public");
    add_member(&s, "pia", "pubco", "carl", "read");
    assert_eq!(put_file(&s, &bas("pia"), "pubco", "p.txt").status, 201);
    let leaks = |text: &str| {
        [
            "pia@example.com",
            "Pia Private",
            "\"is_admin\":true",
            "private",
        ]
        .into_iter()
        .filter(|secret| text.contains(secret))
        .collect::<Vec<_>>()
    };
    let routes = [
        "/api/v1/packages/pubco",
        "/api/v1/packages/pubco/generic/pkg",
        "/api/v1/packages/pubco/generic/pkg/1.0",
        "/api/v1/packages/pubco/generic/pkg/-/latest",
    ];
    let creator = |v: &Value| {
        let p = if v.is_array() { &v[0] } else { v };
        p["creator"].clone()
    };

    // A stranger reads the public org's packages; pia is the Ghost to him.
    let bob_token = new_token(&s, "bob", "r", &["read:package"]);
    for auth in [bas("bob"), tok(bob_token["sha1"].as_str().unwrap())] {
        for route in routes {
            let (v, text) = ok_with_text(get(&s, &auth, route), route);
            assert_eq!(leaks(&text), Vec::<&str>::new(), "{route}: {text}");
            let c = creator(&v);
            assert_eq!(
                (c["id"].clone(), c["login"].clone()),
                (json!(-1), json!("Ghost"))
            );
            assert_eq!(c["email"], "ghost@noreply.test", "{c}");
            // The owner object is the public org, with its address hidden too.
            let o = if v.is_array() {
                &v[0]["owner"]
            } else {
                &v["owner"]
            };
            assert_eq!(o["email"], "pubco@noreply.test", "{o}");
        }
    }
    expect(get(&s, &bas("bob"), "/api/v1/users/pia"), 404, "pia to bob");

    // A fellow member may see pia's profile (Gitea: they share an organization), but not her
    // address or that she is a site admin.
    for route in routes {
        let (v, text) = ok_with_text(get(&s, &bas("carl"), route), route);
        assert!(!text.contains("pia@example.com"), "{route}: {text}");
        let c = creator(&v);
        assert_eq!(c["login"], "pia");
        assert_eq!(c["full_name"], "Pia Private");
        assert_eq!(c["visibility"], "private");
        assert_eq!(c["email"], "pia@noreply.test");
        assert_eq!(c["is_admin"], false);
        assert_eq!(c["active"], false);
        assert_eq!(c["last_login"], "0001-01-01T00:00:00Z");
    }
    let (u, _) = ok_with_text(get(&s, &bas("carl"), "/api/v1/users/pia"), "pia to carl");
    assert_eq!(
        (u["email"].clone(), u["is_admin"].clone()),
        (json!("pia@noreply.test"), json!(false))
    );

    // Pia herself and the site admin see everything.
    for auth in [bas("pia"), adm()] {
        for route in routes {
            let (v, _) = ok_with_text(get(&s, &auth, route), route);
            let c = creator(&v);
            assert_eq!(c["email"], "pia@example.com", "{route}: {c}");
            assert_eq!(c["is_admin"], true, "{route}: {c}");
            assert_eq!(c["active"], true, "{route}: {c}");
        }
        let (u, _) = ok_with_text(get(&s, &auth, "/api/v1/users/pia"), "pia");
        assert_eq!(
            (u["email"].clone(), u["is_admin"].clone()),
            (json!("pia@example.com"), json!(true))
        );
    }
    let (me, _) = ok_with_text(get(&s, &bas("pia"), "/api/v1/user"), "who am I");
    assert_eq!(me["email"], "pia@example.com");
    // Bob sees his own address.
    let (me, _) = ok_with_text(get(&s, &bas("bob"), "/api/v1/users/bob"), "bob");
    assert_eq!(me["email"], "bob@example.com");
}

/// Security probe, finding 4, in member listings: a plain member sees the other members'
/// public profiles, not their addresses or admin flags; a private member is not listed to a
/// non-member at all.
#[test]
fn member_listings_hide_other_members_private_fields() {
    let s = Server::start();
    for (u, vis) in [
        ("bob", "public"),
        ("carol", "public"),
        ("dave", "private"),
        ("erin", "public"),
    ] {
        new_user(&s, u, vis);
    }
    edit_user(&s, "bob", json!({"admin": true}));
    new_org(&s, "bob", "acme", "public");
    add_member(&s, "bob", "acme", "carol", "read");
    add_member(&s, "bob", "acme", "dave", "read");
    let teams = expect(
        get(&s, &bas("bob"), "/api/v1/orgs/acme/teams"),
        200,
        "teams",
    );
    let owners = teams[0]["id"].as_u64().expect("team id");
    let team_route = format!("/api/v1/teams/{owners}/members");

    let by_login = |v: &Value| -> Vec<(String, String, bool)> {
        let mut out: Vec<_> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|m| {
                (
                    m["login"].as_str().unwrap().to_string(),
                    m["email"].as_str().unwrap().to_string(),
                    m["is_admin"].as_bool().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    };
    let row = |l: &str, e: &str, a: bool| (l.to_string(), e.to_string(), a);

    // Carol, a plain member: her own address, the others' no-reply ones, nobody an admin.
    let (v, text) = ok_with_text(get(&s, &bas("carol"), "/api/v1/orgs/acme/members"), "carol");
    assert_eq!(
        by_login(&v),
        [
            row("bob", "bob@noreply.test", false),
            row("carol", "carol@example.com", false),
            row("dave", "dave@noreply.test", false),
        ]
    );
    assert!(
        !text.contains("bob@example.com") && !text.contains("dave@example.com"),
        "{text}"
    );
    let (v, _) = ok_with_text(get(&s, &bas("carol"), &team_route), "carol: team");
    assert_eq!(by_login(&v), [row("bob", "bob@noreply.test", false)]);

    // Erin, no member of the public org: private dave is not listed.
    let (v, text) = ok_with_text(get(&s, &bas("erin"), "/api/v1/orgs/acme/members"), "erin");
    assert_eq!(
        by_login(&v),
        [
            row("bob", "bob@noreply.test", false),
            row("carol", "carol@noreply.test", false),
        ]
    );
    assert!(!text.contains("dave"), "{text}");

    // A site admin sees every field of everyone.
    let (v, _) = ok_with_text(get(&s, &adm(), "/api/v1/orgs/acme/members"), "admin");
    assert_eq!(
        by_login(&v),
        [
            row("bob", "bob@example.com", true),
            row("carol", "carol@example.com", false),
            row("dave", "dave@example.com", false),
        ]
    );
}

/// Security probe, finding 6: the JSON API told a private owner (403) from a missing one (404).
/// An owner the caller may not see now gets the very same 404 as one that does not exist, as
/// Gitea's `/users/{name}` and `/orgs/{org}` do. The registry routes keep Gitea's 401 for a
/// private owner (README, "Access").
/// A 404's body for the hidden owner `name`, with the name it names replaced by `nobody`:
/// what the same request for an owner that does not exist answers, byte for byte.
fn as_missing(r: &Resp, name: &str) -> String {
    r.text()
        .replace(&format!("[name: {name}]"), "[name: nobody]")
}

#[test]
fn owners_the_caller_may_not_see_answer_as_missing_ones() {
    let s = Server::start();
    new_user(&s, "vic", "private");
    new_user(&s, "bob", "public");
    new_user(&s, "carl", "public");
    assert_eq!(put_file(&s, &bas("vic"), "vic", "v.txt").status, 201);
    new_org(&s, "vic", "vorg", "private");
    assert_eq!(put_file(&s, &bas("vic"), "vorg", "o.txt").status, 201);
    let all = new_token(&s, "bob", "all", &["all"]);
    let public_only = new_token(
        &s,
        "bob",
        "pub",
        &[
            "public-only",
            "write:package",
            "read:user",
            "read:organization",
        ],
    );
    let pairs = |hidden: &str| {
        let mut out = Vec::new();
        for (prefix, missing) in [
            ("/api/v1/packages/", "nobody"),
            ("/api/v1/users/", "nobody"),
        ] {
            for suffix in [
                "",
                "/generic/pkg",
                "/generic/pkg/1.0",
                "/generic/pkg/1.0/files",
                "/generic/pkg/-/latest",
            ] {
                if prefix == "/api/v1/users/" && !suffix.is_empty() {
                    continue;
                }
                out.push((
                    format!("{prefix}{hidden}{suffix}"),
                    format!("{prefix}{missing}{suffix}"),
                ));
            }
        }
        out
    };
    let mut cases = pairs("vic");
    cases.extend(pairs("vorg"));
    for suffix in ["", "/members", "/teams"] {
        cases.push((
            format!("/api/v1/orgs/vorg{suffix}"),
            format!("/api/v1/orgs/nobody{suffix}"),
        ));
    }
    for auth in [
        bas("bob"),
        tok(all["sha1"].as_str().unwrap()),
        tok(public_only["sha1"].as_str().unwrap()),
    ] {
        for (hidden, missing) in &cases {
            if hidden == "/api/v1/users/vorg" {
                continue; // below, with the organizations
            }
            for method in ["GET", "DELETE"] {
                if method == "DELETE" && !hidden.starts_with("/api/v1/packages/") {
                    continue;
                }
                let a = call(&s, Some(&auth), method, hidden, None);
                let b = call(&s, Some(&auth), method, missing, None);
                assert_eq!(a.status, 404, "{method} {hidden}: {}", a.text());
                let name = if hidden.contains("vorg") {
                    "vorg"
                } else {
                    "vic"
                };
                assert_eq!(
                    (a.status, a.header("content-type"), as_missing(&a, name)),
                    (b.status, b.header("content-type"), b.text()),
                    "{method} {hidden} vs {missing}"
                );
            }
        }
    }
    // Nothing was deleted; the owner and the site admin still read everything.
    for auth in [bas("vic"), adm()] {
        for route in [
            "/api/v1/packages/vic/generic/pkg/1.0",
            "/api/v1/packages/vorg/generic/pkg/1.0",
            "/api/v1/users/vic",
            "/api/v1/orgs/vorg",
        ] {
            expect(get(&s, &auth, route), 200, route);
        }
    }
    // The registry route keeps Gitea's 401 for a private owner: its existence shows there.
    let r = s.req(
        "GET",
        &pkg("vic", "v.txt"),
        &[("Authorization", &bas("bob"))],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "GET",
        &pkg("nobody", "v.txt"),
        &[("Authorization", &bas("bob"))],
        b"",
    );
    assert_eq!(r.status, 404);
    // Someone who may see vic (a fellow member of vorg) but not read her packages gets Gitea's
    // 403; so does vic's own public-only token on her private namespace (GITEA-COMPAT §8).
    add_member(&s, "vic", "vorg", "carl", "read");
    expect(
        get(&s, &bas("carl"), "/api/v1/users/vic"),
        200,
        "vic to carl",
    );
    expect(
        get(&s, &bas("carl"), "/api/v1/packages/vic"),
        403,
        "vic's packages to carl",
    );
    expect(
        get(&s, &bas("carl"), "/api/v1/packages/vorg"),
        200,
        "vorg's packages to carl",
    );
    let own = new_token(&s, "vic", "pub", &["public-only", "read:package"]);
    expect(
        get(
            &s,
            &tok(own["sha1"].as_str().unwrap()),
            "/api/v1/packages/vic",
        ),
        403,
        "public-only",
    );
}

/// Security probe, finding 6, on the management routes: a `public-only` token was told "cannot
/// manage private organizations/owners" (403) for a private name and 404 for a missing one. An
/// owner the caller may not see is now missing first, whatever the token; the 403 stays for
/// the owner's own public-only token.
#[test]
fn management_routes_do_not_tell_hidden_owners_from_missing_ones() {
    let s = Server::start();
    new_user(&s, "vic", "private");
    new_user(&s, "bob", "public");
    new_org(&s, "vic", "vorg", "private");
    let scopes = ["public-only", "write:package", "write:organization"];
    let bob = new_token(&s, "bob", "pub", &scopes);
    let bob = tok(bob["sha1"].as_str().unwrap());
    let routes = |owner: &str| {
        vec![
            (
                "PATCH",
                format!("/api/v1/orgs/{owner}"),
                Some(json!({"description": "x"})),
            ),
            ("DELETE", format!("/api/v1/orgs/{owner}"), None),
            (
                "PUT",
                format!("/api/v1/orgs/{owner}/members/bob"),
                Some(json!({"role": "read"})),
            ),
            ("DELETE", format!("/api/v1/orgs/{owner}/members/bob"), None),
            (
                "POST",
                format!("/api/v1/orgs/{owner}/teams"),
                Some(json!({"name": "t"})),
            ),
            ("GET", format!("/api/v1/cleanup/{owner}/rules"), None),
            ("POST", format!("/api/v1/cleanup/{owner}/run"), None),
            ("GET", format!("/api/v1/admin/quotas/{owner}"), None),
        ]
    };
    for hidden in ["vic", "vorg"] {
        for ((method, path, body), (_, missing, _)) in
            routes(hidden).into_iter().zip(routes("nobody"))
        {
            if hidden == "vic" && path.starts_with("/api/v1/orgs/") {
                continue; // a user is no organization: 404 anyway
            }
            let a = call(&s, Some(&bob), method, &path, body.clone());
            let b = call(&s, Some(&bob), method, &missing, body);
            assert_eq!(a.status, 404, "{method} {path}: {}", a.text());
            assert_eq!(
                (a.status, as_missing(&a, hidden)),
                (b.status, b.text()),
                "{method} {path} vs {missing}"
            );
        }
    }
    // Vic's own public-only token on her private namespace: Gitea's 403.
    let own = new_token(&s, "vic", "pub", &scopes);
    let own = tok(own["sha1"].as_str().unwrap());
    expect(
        get(&s, &own, "/api/v1/cleanup/vic/rules"),
        403,
        "own public-only",
    );
    expect(
        call(
            &s,
            Some(&own),
            "PATCH",
            "/api/v1/orgs/vorg",
            Some(json!({"description": "x"})),
        ),
        403,
        "own public-only org",
    );
}

/// Gitea names what a 404 did not find in its `errors` array, under its one `message`; so
/// does shelf, for each kind of thing `/api/v1` looks up.
#[test]
fn not_found_answers_name_what_is_missing() {
    let s = Server::start();
    new_user(&s, "bob", "public");
    new_user(&s, "carol", "public");
    new_org(&s, "carol", "acme", "public");
    let team = expect(
        call(
            &s,
            Some(&adm()),
            "POST",
            "/api/v1/orgs/acme/teams",
            Some(json!({"name": "ops"})),
        ),
        201,
        "team",
    );
    let id = team["id"].as_u64().expect("team id");
    let not_in_team = format!("user bob is not a member of team ops [id: {id}]");
    let cases = [
        (
            "GET",
            "/api/v1/users/nosuch/tokens".to_string(),
            "user does not exist [name: nosuch]",
        ),
        (
            "GET",
            "/api/v1/users/nosuch".into(),
            "user does not exist [name: nosuch]",
        ),
        (
            "GET",
            "/api/v1/orgs/nosuch".into(),
            "organization does not exist [name: nosuch]",
        ),
        (
            "GET",
            "/api/v1/orgs/bob".into(),
            "organization does not exist [name: bob]",
        ),
        (
            "GET",
            "/api/v1/teams/999".into(),
            "team does not exist [id: 999]",
        ),
        (
            "GET",
            "/api/v1/teams/x".into(),
            "team does not exist [id: x]",
        ),
        (
            "GET",
            format!("/api/v1/teams/{id}/members/bob"),
            &not_in_team,
        ),
        (
            "GET",
            "/api/v1/orgs/acme/members/bob".into(),
            "user bob is not a member of organization acme",
        ),
        (
            "DELETE",
            "/api/v1/orgs/acme/members/bob".into(),
            "user bob is not a member of organization acme",
        ),
        (
            "DELETE",
            "/api/v1/users/admin/tokens/nosuch".into(),
            "access token does not exist [user: admin, name: nosuch]",
        ),
        (
            "GET",
            "/api/v1/packages/nosuch".into(),
            "owner does not exist [name: nosuch]",
        ),
        (
            "GET",
            "/api/v1/packages/bob/generic/nosuch".into(),
            "package does not exist",
        ),
        (
            "GET",
            "/api/v1/admin/quotas/nosuch".into(),
            "owner does not exist [name: nosuch]",
        ),
        (
            "DELETE",
            "/api/v1/cleanup/bob/rules/pkg".into(),
            "cleanup rule does not exist [owner: bob, package: pkg]",
        ),
        (
            "GET",
            "/api/v1/nosuch".into(),
            "no API route GET /api/v1/nosuch; the routes are listed at /api/swagger",
        ),
    ];
    for (method, path, named) in cases {
        let v = expect(call(&s, Some(&adm()), method, &path, None), 404, &path);
        assert_eq!(v["message"], "The target couldn't be found.", "{path}: {v}");
        assert_eq!(v["errors"], json!([named]), "{method} {path}");
    }
    // A member is found, and answered as Gitea does.
    expect(
        call(
            &s,
            Some(&adm()),
            "PUT",
            &format!("/api/v1/teams/{id}/members/bob"),
            None,
        ),
        204,
        "add bob",
    );
    let v = expect(
        get(&s, &adm(), &format!("/api/v1/teams/{id}/members/BOB")),
        200,
        "member",
    );
    assert_eq!(v["login"], "bob");
    expect(
        get(&s, &adm(), "/api/v1/orgs/acme/members/bob"),
        204,
        "org member",
    );
}
