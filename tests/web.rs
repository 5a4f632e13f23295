//! The pages for people (issue 13): Gitea's URLs, escaping, what an anonymous visitor may see,
//! paging and the security headers.

mod common;

use common::*;
use serde_json::{json, Value};

fn admin_json(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let auth = format!("token {ADMIN_TOKEN}");
    let bytes = serde_json::to_vec(&body).expect("json");
    let r = s.req(
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &bytes,
    );
    assert!(
        r.status / 100 == 2,
        "{method} {path}: {} {}",
        r.status,
        r.text()
    );
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn publish(s: &Server, owner: &str, name: &str, version: &str, file: &str, body: &[u8]) {
    let r = s.put(
        &format!(
            "/api/packages/{owner}/generic/{}/{}/{}",
            enc(name),
            enc(version),
            enc(file)
        ),
        body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn page(s: &Server, path: &str) -> (u16, String) {
    let r = s.get(path);
    if r.status != 304 {
        assert_eq!(
            r.header("content-type"),
            Some(if path.starts_with("/-/static/") && r.status == 200 {
                "text/css; charset=utf-8"
            } else {
                "text/html; charset=utf-8"
            }),
            "{path}"
        );
    }
    (r.status, r.text())
}

/// An owner of each visibility, each with a package, and a version whose name needs escaping.
fn registry() -> Server {
    let s = Server::start();
    admin_json(
        &s,
        "POST",
        "/api/v1/admin/users",
        json!({"username": "alice", "password": "correct horse battery", "email": "a@example.com"}),
    );
    for (org, vis) in [
        ("opub", "public"),
        ("olim", "limited"),
        ("opriv", "private"),
    ] {
        admin_json(
            &s,
            "POST",
            "/api/v1/admin/users/alice/orgs",
            json!({"username": org, "visibility": vis}),
        );
        publish(&s, org, &format!("{org}-tool"), "1.0", "tool.bin", b"tool");
    }
    publish(&s, "opub", "app", "1.0.0", "app.tar.gz", b"one");
    publish(&s, "opub", "app", "2.0<b>\"x'", "a&b{c}.txt", b"two two");
    s
}

#[test]
fn pages_answer_at_gitea_urls_with_security_headers() {
    let s = registry();
    for path in [
        "/",
        "/opub",
        "/opub/-/packages",
        "/opub/-/packages/generic/app",
        "/opub/-/packages/generic/app/1.0.0",
        "/OPUB/-/packages/generic/APP/1.0.0",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let csp = r.header("content-security-policy").expect("CSP");
        assert!(
            csp.contains("default-src 'none'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("same-origin"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let html = r.text();
        assert!(html.starts_with("<!DOCTYPE html>"), "{path}");
        assert!(!html.contains("<script"), "{path}: no script at all");
        assert!(html.len() < 100_000, "{path}: {} bytes", html.len());
    }
    // The stylesheet: compiled in, under a hashed name that may be cached for good.
    let (_, home) = page(&s, "/");
    let css = home
        .split("href=\"/-/static/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("stylesheet link");
    let r = s.get(&format!("/-/static/{css}"));
    assert_eq!(r.status, 200);
    assert!(r
        .header("cache-control")
        .is_some_and(|c| c.contains("immutable")));
    assert!(r.text().contains("prefers-color-scheme: dark"));
    assert_eq!(s.get("/-/static/other.css").status, 404);
    // Every html_url of the JSON API is a page.
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "GET",
        "/api/v1/packages/opub",
        &[("Authorization", &auth)],
        b"",
    );
    let list: Value = serde_json::from_slice(&r.body).expect("json");
    for p in list.as_array().expect("array") {
        let url = p["html_url"].as_str().expect("html_url");
        let path = url
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .expect("path");
        assert_eq!(s.get(path).status, 200, "{url}");
    }
    // Pages are read-only; the registry's paths keep their plain-text answers.
    let r = s.req("POST", "/opub", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = s.get("/api/nothing");
    assert_eq!((r.status, r.text().as_str()), (404, "Not found."));
    let r = s.req("HEAD", "/opub", &[], b"");
    assert_eq!(r.status, 200);
}

#[test]
fn every_value_is_escaped() {
    let s = registry();
    let (status, html) = page(&s, "/opub/-/packages/generic/app");
    assert_eq!(status, 200);
    assert!(html.contains("2.0&lt;b&gt;&quot;x'"), "{html}");
    assert!(!html.contains("<b>"), "raw markup from a version name");
    let (status, html) = page(
        &s,
        &format!("/opub/-/packages/generic/app/{}", enc("2.0<b>\"x'")),
    );
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("a&amp;b{c}.txt"), "{html}");
    // The search term goes back into the page escaped, too.
    let (_, html) = page(&s, "/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E%22");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;"),
        "{html}"
    );
    assert!(!html.contains("<script>"));
    // The version page shows sizes, the sha256 and the curl lines.
    let (_, html) = page(&s, "/opub/-/packages/generic/app/1.0.0");
    assert!(html.contains(&sha256_hex(b"one")), "{html}");
    assert!(html.contains("3 B"), "size: {html}");
    assert!(
        html.contains("/api/packages/opub/generic/app/1.0.0/app.tar.gz"),
        "{html}"
    );
    assert!(
        html.contains("/api/packages/opub/generic/app/latest/app.tar.gz"),
        "{html}"
    );
    assert!(html.contains("--upload-file"), "{html}");
}

#[test]
fn an_anonymous_visitor_sees_no_private_or_limited_owner_anywhere() {
    let s = registry();
    let missing = page(&s, "/nobody");
    assert_eq!(missing.0, 404);
    for owner in ["olim", "opriv"] {
        for path in [
            format!("/{owner}"),
            format!("/{owner}/-/packages"),
            format!("/{owner}/-/packages/generic/{owner}-tool"),
            format!("/{owner}/-/packages/generic/{owner}-tool/1.0"),
        ] {
            let got = page(&s, &path);
            // The same answer as for an owner that does not exist: no 404-vs-403 difference.
            assert_eq!(got, missing, "{path}");
        }
    }
    let (_, home) = page(&s, "/");
    assert!(
        home.contains("opub-tool") && home.contains(">app<"),
        "{home}"
    );
    assert!(!home.contains("olim") && !home.contains("opriv"), "{home}");
    let (_, html) = page(&s, "/?q=opriv");
    assert!(html.contains("0 versions"), "{html}");
    // Counted without them: opub's three versions and nothing else (alice has none).
    assert!(home.contains("3 versions"), "{home}");
    for q in ["tool", "olim", "opriv-tool"] {
        let (_, html) = page(&s, &format!("/?q={q}"));
        // (The search term itself is echoed in the search box.)
        assert!(
            !html.contains("href=\"/olim") && !html.contains("href=\"/opriv"),
            "q={q}: {html}"
        );
    }
    let (_, html) = page(&s, "/?q=tool");
    assert!(
        html.contains("1 version") && html.contains("opub-tool"),
        "{html}"
    );
}

#[test]
fn long_listings_are_paged_newest_first() {
    let s = Server::start();
    for i in 0..45 {
        publish(&s, "admin", "many", &format!("1.{i}"), "f", b"x");
    }
    let (_, p1) = page(&s, "/admin/-/packages/generic/many");
    assert!(p1.contains("45 versions"), "{p1}");
    assert_eq!(p1.matches("class=\"row\"").count(), 20);
    let first = p1.find(">1.44<").expect("newest first");
    let later = p1.find(">1.25<").expect("20th");
    assert!(first < later);
    assert!(!p1.contains(">1.24<"));
    assert!(
        p1.contains("rel=\"next\" href=\"/admin/-/packages/generic/many?page=2\""),
        "{p1}"
    );
    let (_, p3) = page(&s, "/admin/-/packages/generic/many?page=3");
    assert_eq!(p3.matches("class=\"row\"").count(), 5);
    assert!(p3.contains(">1.0<") && p3.contains("Page 3 of 3"), "{p3}");
    let (_, home) = page(&s, "/?q=many&page=2");
    assert_eq!(home.matches("class=\"row\"").count(), 20);
    assert!(
        home.contains("rel=\"prev\" href=\"/?q=many&amp;page=1\""),
        "{home}"
    );
    // A page too deep to list says so, without walking the index.
    let (status, deep) = page(&s, "/?page=99999999999");
    assert_eq!(status, 200);
    assert!(deep.contains("too far back"), "{deep}");
}

/// The token a tokens page shows once, after it was made.
fn new_token(html: &str) -> String {
    html.split("id=\"new-token\"")
        .nth(1)
        .and_then(|r| r.split("value=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("the new token")
        .to_string()
}

/// The user `rita` (password "reader password"), with the read role in `opub`.
fn add_reader_rita(s: &Server) {
    admin_json(
        s,
        "POST",
        "/api/v1/admin/users",
        json!({"username": "rita", "password": "reader password", "email": "r@example.com"}),
    );
    admin_json(
        s,
        "PUT",
        "/api/v1/orgs/opub/members/rita",
        json!({"role": "read"}),
    );
}

/// The `name=value` of a response's `Set-Cookie` for `name`.
fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.clone())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn hidden_csrf(html: &str) -> String {
    html.split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a _csrf field")
        .to_string()
}

fn post_form(s: &Server, path: &str, cookie: &str, origin: Option<&str>, form: &str) -> Resp {
    let mut headers = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Cookie", cookie),
    ];
    if let Some(o) = origin {
        headers.push(("Origin", o));
    }
    s.req("POST", path, &headers, form.as_bytes())
}

/// Signs in through the form; the session cookie (`shelf_session=…`).
fn sign_in(s: &Server, user: &str, password: &str) -> Result<String, Resp> {
    let form = s.get("/user/login");
    assert_eq!(form.status, 200);
    let login_cookie = set_cookie(&form, "shelf_login").expect("login cookie");
    let pair = login_cookie.split(';').next().expect("pair").to_string();
    let csrf = hidden_csrf(&form.text());
    let r = post_form(
        s,
        "/user/login",
        &pair,
        Some("http://test"),
        &format!("_csrf={csrf}&user_name={user}&password={}", enc(password)),
    );
    if r.status != 303 {
        return Err(r);
    }
    let c = set_cookie(&r, "shelf_session").expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(c.contains(attr), "{c}");
    }
    assert!(!c.contains("Secure"), "plain http: no Secure flag: {c}");
    Ok(c.split(';').next().expect("pair").to_string())
}

#[test]
fn signing_in_shows_what_the_user_may_read_and_the_api_ignores_the_cookie() {
    let s = registry();
    let alice = sign_in(&s, "alice", "correct horse battery").expect("signed in");
    let as_alice = |path: &str| s.req("GET", path, &[("Cookie", &alice)], b"");
    // alice owns all three organizations: each is hers to see.
    for org in ["opub", "olim", "opriv"] {
        let r = as_alice(&format!("/{org}/-/packages/generic/{org}-tool/1.0"));
        assert_eq!(r.status, 200, "{org}: {}", r.text());
    }
    let home = as_alice("/").text();
    assert!(
        home.contains("opriv-tool") && home.contains("olim-tool"),
        "{home}"
    );
    assert!(
        home.contains("Sign out") && home.contains(">alice<"),
        "{home}"
    );
    // The session cookie is no credential for the API.
    let r = s.req(
        "GET",
        "/api/packages/opriv/generic/opriv-tool/1.0/tool.bin",
        &[("Cookie", &alice)],
        b"",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = s.req("GET", "/api/v1/packages/opriv", &[("Cookie", &alice)], b"");
    assert_eq!(r.status, 401, "{}", r.text());

    // The sessions page lists this browser; signing out ends the session.
    let page = as_alice("/user/settings/sessions");
    assert_eq!(page.status, 200);
    let text = page.text();
    assert!(text.contains("this browser"), "{text}");
    let csrf = hidden_csrf(&text);
    let r = post_form(
        &s,
        "/user/logout",
        &alice,
        Some("http://test"),
        &format!("_csrf={csrf}"),
    );
    assert_eq!(r.status, 303);
    assert!(set_cookie(&r, "shelf_session").is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(as_alice("/opriv").status, 404, "signed out: private again");
}

#[test]
fn forms_refuse_a_missing_csrf_secret_a_foreign_origin_and_bad_passwords() {
    let s = registry();
    // The sign-in form without its secret, with another's, or from another site.
    let form = s.get("/user/login");
    let pair = set_cookie(&form, "shelf_login").expect("cookie");
    let pair = pair.split(';').next().expect("pair");
    let csrf = hidden_csrf(&form.text());
    let good = format!("_csrf={csrf}&user_name=alice&password=correct+horse+battery");
    for (cookie, origin, body) in [
        ("", Some("http://test"), good.clone()),
        (
            pair,
            Some("http://test"),
            "user_name=alice&password=correct+horse+battery".to_string(),
        ),
        (pair, Some("http://evil.example"), good.clone()),
    ] {
        let r = post_form(&s, "/user/login", cookie, origin, &body);
        assert_eq!(r.status, 403, "{cookie:?} {origin:?}: {}", r.text());
        assert!(set_cookie(&r, "shelf_session").is_none());
    }
    // A wrong password: 401 and the form again, escaped, with no session.
    let r = post_form(
        &s,
        "/user/login",
        pair,
        Some("http://test"),
        &format!("_csrf={csrf}&user_name=%3Cb%3Ealice&password=nope"),
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains("incorrect") && r.text().contains("&lt;b&gt;alice"));
    assert!(set_cookie(&r, "shelf_session").is_none());
    // A token is no password here.
    let r = sign_in(&s, "admin", ADMIN_TOKEN).expect_err("a token signs nobody in");
    assert_eq!(r.status, 401);
    // Signed in: the session's forms need its own secret, from this site.
    let alice = sign_in(&s, "alice", "correct horse battery").expect("signed in");
    let csrf = hidden_csrf(&s.req("GET", "/", &[("Cookie", &alice)], b"").text());
    for (origin, body) in [
        (Some("http://test"), "_csrf=0000".to_string()),
        (Some("http://other"), format!("_csrf={csrf}")),
    ] {
        let r = post_form(&s, "/user/logout", &alice, origin, &body);
        assert_eq!(r.status, 403, "{origin:?}");
    }
    assert_eq!(
        s.req("GET", "/opriv", &[("Cookie", &alice)], b"").status,
        200,
        "still in"
    );
    // GET never changes state: the sign-out path does not take it.
    assert_eq!(
        s.req("GET", "/user/logout", &[("Cookie", &alice)], b"")
            .status,
        405
    );
    // After the burst of failures, sign-ins from this address are throttled.
    let mut throttled = false;
    for _ in 0..12 {
        let form = s.get("/user/login");
        let pair = set_cookie(&form, "shelf_login").expect("cookie");
        let csrf = hidden_csrf(&form.text());
        let r = post_form(
            &s,
            "/user/login",
            pair.split(';').next().expect("pair"),
            Some("http://test"),
            &format!("_csrf={csrf}&user_name=alice&password=wrong"),
        );
        if r.status == 429 {
            assert!(r.header("retry-after").is_some());
            throttled = true;
            break;
        }
        assert_eq!(r.status, 401);
    }
    assert!(throttled, "never throttled");
}

#[test]
fn a_session_can_be_revoked_from_another() {
    let s = registry();
    let one = sign_in(&s, "alice", "correct horse battery").expect("first");
    let two = sign_in(&s, "alice", "correct horse battery").expect("second");
    let page = s
        .req("GET", "/user/settings/sessions", &[("Cookie", &two)], b"")
        .text();
    assert_eq!(page.matches("Revoke").count(), 2, "{page}");
    let csrf = hidden_csrf(&page);
    // The other session's id: the item that is not marked "this browser".
    let other = page
        .split("<li>")
        .skip(1)
        .find(|li| !li.contains("this browser"))
        .and_then(|li| li.split("name=\"id\" value=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("the other session")
        .to_string();
    let r = post_form(
        &s,
        "/user/settings/sessions",
        &two,
        Some("http://test"),
        &format!("_csrf={csrf}&id={other}"),
    );
    assert_eq!(r.status, 303);
    let revoked = s.req("GET", "/opriv", &[("Cookie", &one)], b"").status == 404;
    assert!(revoked, "the first session still works");
    assert_eq!(s.req("GET", "/opriv", &[("Cookie", &two)], b"").status, 200);
    // Without a session, the page sends you to sign in first.
    let r = s.get("/user/settings/sessions");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/user/login?redirect_to=%2Fuser%2Fsettings%2Fsessions")
    );
}

#[test]
fn tokens_are_made_shown_once_used_and_revoked_from_the_page() {
    let s = registry();
    let alice = sign_in(&s, "alice", "correct horse battery").expect("signed in");
    let page = s.req(
        "GET",
        "/user/settings/applications",
        &[("Cookie", &alice)],
        b"",
    );
    assert_eq!(page.status, 200);
    let csrf = hidden_csrf(&page.text());
    let make = |form: &str| {
        post_form(
            &s,
            "/user/settings/applications",
            &alice,
            Some("http://test"),
            &format!("_csrf={csrf}&action=create&{form}"),
        )
    };
    // Refusals say why and make nothing.
    for (form, why) in [
        ("name=ci", "at least one permission"),
        ("name=&scope_package=write", "Give the token a name"),
        (
            "name=ci&scope_package=write&package=tool",
            "needs its owner too",
        ),
        ("name=ci&scope_package=write&owner=nobody", "no owner named"),
        (
            "name=ci&scope_package=write&expires=2001-01-01",
            "has passed",
        ),
        ("name=ci&scope_package=write&expires=soon", "is not a date"),
    ] {
        let r = make(form);
        assert_eq!(r.status, 422, "{form}");
        assert!(r.text().contains(why), "{form}: {}", r.text());
    }
    // A token limited to opub's packages, with write access, expiring in 2099.
    let r = make("name=ci&scope_package=write&owner=opub&expires=2099-12-31");
    assert_eq!(r.status, 201, "{}", r.text());
    let token = new_token(&r.text());
    assert_eq!(token.len(), 40);
    // It works on the API, within its limits, and the list shows its use but never the token.
    assert_eq!(
        s.put_as(&token, "/api/packages/opub/generic/cli/1/f", b"x")
            .status,
        201
    );
    let other = s
        .put_as(&token, "/api/packages/olim/generic/cli/1/f", b"x")
        .status;
    assert!(matches!(other, 401 | 403), "{other}");
    let list = s
        .req(
            "GET",
            "/user/settings/applications",
            &[("Cookie", &alice)],
            b"",
        )
        .text();
    assert!(!list.contains(&token), "a token is shown only once");
    assert!(list.contains(&token[32..]), "its last eight: {list}");
    assert!(
        list.contains("write:package") && list.contains("only opub"),
        "{list}"
    );
    // The same name again is refused; revoking ends it.
    assert_eq!(make("name=CI&scope_package=read").status, 422);
    let id = list
        .split("name=\"action\" value=\"revoke\"")
        .nth(1)
        .and_then(|r| r.split("name=\"id\" value=\"").nth(1))
        .and_then(|r| r.split('"').next())
        .expect("a revoke form")
        .to_string();
    let r = post_form(
        &s,
        "/user/settings/applications",
        &alice,
        Some("http://test"),
        &format!("_csrf={csrf}&action=revoke&id={id}"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.put_as(&token, "/api/packages/opub/generic/cli/2/f", b"x")
            .status,
        401
    );
    // Without the session's secret nothing is made.
    let r = post_form(
        &s,
        "/user/settings/applications",
        &alice,
        Some("http://test"),
        "action=create&name=sneaky&scope_package=write",
    );
    assert_eq!(r.status, 403);
}

#[test]
fn changing_the_password_signs_out_the_other_browsers() {
    let s = registry();
    let one = sign_in(&s, "alice", "correct horse battery").expect("first");
    let two = sign_in(&s, "alice", "correct horse battery").expect("second");
    let csrf = hidden_csrf(
        &s.req("GET", "/user/settings/account", &[("Cookie", &two)], b"")
            .text(),
    );
    let change = |old: &str, new: &str, again: &str| {
        post_form(
            &s,
            "/user/settings/account",
            &two,
            Some("http://test"),
            &format!(
                "_csrf={csrf}&old_password={}&password={}&retype={}",
                enc(old),
                enc(new),
                enc(again)
            ),
        )
    };
    assert_eq!(change("wrong", "a new secret", "a new secret").status, 422);
    assert_eq!(
        change("correct horse battery", "short", "short").status,
        422
    );
    assert_eq!(
        change("correct horse battery", "a new secret", "another").status,
        422
    );
    let r = change("correct horse battery", "a new secret", "a new secret");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Password changed"));
    assert_eq!(
        s.req("GET", "/opriv", &[("Cookie", &one)], b"").status,
        404,
        "signed out"
    );
    // Every session made under the old password is over; this browser got a new one.
    let fresh = set_cookie(&r, "shelf_session").expect("a new session");
    let fresh = fresh.split(';').next().expect("pair");
    assert_eq!(
        s.req("GET", "/opriv", &[("Cookie", &two)], b"").status,
        404,
        "old cookie"
    );
    assert_eq!(
        s.req("GET", "/opriv", &[("Cookie", fresh)], b"").status,
        200,
        "still in"
    );
    assert_eq!(
        sign_in(&s, "alice", "correct horse battery")
            .map(|_| ())
            .map_err(|r| r.status),
        Err(401)
    );
    assert!(sign_in(&s, "alice", "a new secret").is_ok());
    // An admin's password reset ends sessions too.
    admin_json(
        &s,
        "PATCH",
        "/api/v1/admin/users/alice",
        json!({"password": "reset by the admin"}),
    );
    assert_eq!(
        s.req("GET", "/opriv", &[("Cookie", fresh)], b"").status,
        404,
        "after a reset"
    );
}

#[test]
fn files_and_versions_are_deleted_after_a_confirmation_by_those_who_may() {
    let s = registry();
    add_reader_rita(&s);
    let version = "/opub/-/packages/generic/app/1.0.0";
    let confirm = format!("{version}/-/delete?file=app.tar.gz");
    // Anonymous: sent to sign in. A reader: no buttons, and the confirmation is refused.
    let r = s.get(&confirm);
    assert_eq!(r.status, 303);
    assert!(r
        .header("location")
        .is_some_and(|l| l.starts_with("/user/login?redirect_to=")));
    let rita = sign_in(&s, "rita", "reader password").expect("rita");
    let page = s.req("GET", version, &[("Cookie", &rita)], b"").text();
    assert!(
        !page.contains("/-/delete"),
        "a reader sees no delete: {page}"
    );
    assert_eq!(
        s.req("GET", &confirm, &[("Cookie", &rita)], b"").status,
        403
    );
    // The owner's admin sees them; the confirmation page changes nothing.
    let alice = sign_in(&s, "alice", "correct horse battery").expect("alice");
    let page = s.req("GET", version, &[("Cookie", &alice)], b"").text();
    assert!(page.contains(&format!("href=\"{confirm}\"")), "{page}");
    let ask = s.req("GET", &confirm, &[("Cookie", &alice)], b"");
    assert_eq!(ask.status, 200);
    assert!(ask.text().contains("cannot be undone"));
    let file = "/api/packages/opub/generic/app/1.0.0/app.tar.gz";
    assert_eq!(
        s.get(file).status,
        200,
        "still there after the confirmation page"
    );
    // The POST needs the session's secret, then deletes; the version went with its last file.
    let csrf = hidden_csrf(&ask.text());
    let r = post_form(&s, &confirm, &alice, Some("http://test"), "confirm=yes");
    assert_eq!(r.status, 403);
    let r = post_form(
        &s,
        &confirm,
        &alice,
        Some("http://test"),
        &format!("_csrf={csrf}&confirm=yes"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/opub/-/packages/generic/app"));
    assert_eq!(s.get(file).status, 404);
    // A whole version, from its own link.
    let other = format!("/opub/-/packages/generic/app/{}", enc("2.0<b>\"x'"));
    let r = post_form(
        &s,
        &format!("{other}/-/delete"),
        &alice,
        Some("http://test"),
        &format!("_csrf={csrf}&confirm=yes"),
    );
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/opub"),
        "the package went with its last version"
    );
    assert_eq!(s.get(&other).status, 404);
    // Both deletes are in the audit log, by alice.
    let auth = format!("token {ADMIN_TOKEN}");
    let log = s
        .req(
            "GET",
            "/api/v1/admin/audit?owner=opub",
            &[("Authorization", &auth)],
            b"",
        )
        .text();
    assert!(
        log.contains("package.delete_file") && log.contains("package.delete_version"),
        "{log}"
    );
}

#[test]
fn a_creator_the_visitor_may_not_see_is_shown_as_the_ghost() {
    let s = registry();
    admin_json(
        &s,
        "POST",
        "/api/v1/admin/users",
        json!({"username": "hidden", "password": "hidden password", "email": "h@example.com",
               "visibility": "private"}),
    );
    admin_json(
        &s,
        "PUT",
        "/api/v1/orgs/opub/members/hidden",
        json!({"role": "write"}),
    );
    let hidden = sign_in(&s, "hidden", "hidden password").expect("hidden");
    // hidden publishes with a token made on its own page.
    let page_html = s
        .req(
            "GET",
            "/user/settings/applications",
            &[("Cookie", &hidden)],
            b"",
        )
        .text();
    let csrf = hidden_csrf(&page_html);
    let r = post_form(
        &s,
        "/user/settings/applications",
        &hidden,
        Some("http://test"),
        &format!("_csrf={csrf}&action=create&name=ci&scope_package=write"),
    );
    let token = new_token(&r.text());
    assert_eq!(
        s.put_as(&token, "/api/packages/opub/generic/secret/1/f", b"x")
            .status,
        201
    );
    let (_, anon) = page(&s, "/opub/-/packages/generic/secret/1");
    assert!(
        !anon.contains("by hidden") && anon.contains("by Ghost"),
        "{anon}"
    );
    let own = s.req(
        "GET",
        "/opub/-/packages/generic/secret/1",
        &[("Cookie", &hidden)],
        b"",
    );
    assert!(own.text().contains("by hidden"), "{}", own.text());
}

#[test]
fn the_site_admin_pages_show_storage_and_the_audit_log_to_site_admins_only() {
    let s = registry();
    admin_json(
        &s,
        "POST",
        "/api/v1/admin/users",
        json!({"username": "root", "password": "root password", "email": "root@example.com"}),
    );
    admin_json(
        &s,
        "PATCH",
        "/api/v1/admin/users/root",
        json!({"admin": true}),
    );
    let root = sign_in(&s, "root", "root password").expect("root");
    let alice = sign_in(&s, "alice", "correct horse battery").expect("alice");
    let (missing_status, missing_body) = page(&s, "/nobody");
    for path in ["/-/admin", "/-/admin/audit"] {
        // Anyone but a site admin: the same 404 as for a page that does not exist.
        assert_eq!(
            page(&s, path),
            (missing_status, missing_body.clone()),
            "{path}"
        );
        let r = s.req("GET", path, &[("Cookie", &alice)], b"");
        assert_eq!(r.status, 404, "{path} for alice");
        let r = s.req("GET", path, &[("Cookie", &root)], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    let storage = s.req("GET", "/-/admin", &[("Cookie", &root)], b"").text();
    assert!(
        storage.contains("Deduplication") && storage.contains("href=\"/opriv\""),
        "{storage}"
    );
    let log = s
        .req(
            "GET",
            "/-/admin/audit?action=session",
            &[("Cookie", &root)],
            b"",
        )
        .text();
    assert!(
        log.contains("session.create") && log.contains("alice"),
        "{log}"
    );
    assert!(
        !log.contains("<code>package.publish</code>"),
        "filtered: {log}"
    );
    // Targets are escaped like everything else.
    let log = s
        .req(
            "GET",
            "/-/admin/audit?owner=opub",
            &[("Cookie", &root)],
            b"",
        )
        .text();
    assert!(
        log.contains("<code>package.publish</code>") && log.contains("app/2.0&lt;b&gt;"),
        "{log}"
    );
    assert!(!log.contains("2.0<b>"));
    let home = s.req("GET", "/", &[("Cookie", &root)], b"").text();
    assert!(
        home.contains("href=\"/-/admin\""),
        "the header links the admin pages"
    );
}

fn multipart(fields: &[(&str, &str)], file: (&str, &[u8])) -> (String, Vec<u8>) {
    let boundary = "----shelfTestBoundary7MA4YWxkTrZu0gW";
    let mut b = Vec::new();
    for (k, v) in fields {
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    b.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            file.0
        )
        .as_bytes(),
    );
    b.extend_from_slice(file.1);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), b)
}

#[test]
fn a_file_is_published_through_the_upload_form_with_the_registrys_checks() {
    let s = registry();
    add_reader_rita(&s);
    let alice = sign_in(&s, "alice", "correct horse battery").expect("alice");
    let form = s.req(
        "GET",
        "/opub/-/upload?package=app&version=3.0",
        &[("Cookie", &alice)],
        b"",
    );
    assert_eq!(form.status, 200);
    let html = form.text();
    assert!(html.contains("enctype=\"multipart/form-data\"") && html.contains("value=\"3.0\""));
    let csrf = hidden_csrf(&html);
    let data = pattern(3 << 20, 11);
    let post = |cookie: &str, fields: &[(&str, &str)], file: (&str, &[u8])| {
        let (ct, body) = multipart(fields, file);
        s.req(
            "POST",
            "/opub/-/upload",
            &[
                ("Content-Type", &ct),
                ("Cookie", cookie),
                ("Origin", "http://test"),
            ],
            &body,
        )
    };
    let fields = [
        ("_csrf", csrf.as_str()),
        ("package", "app"),
        ("version", "3.0"),
    ];
    let r = post(&alice, &fields, ("app-3.0.tar.gz", &data));
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/opub/-/packages/generic/app/3.0")
    );
    let got = s.get("/api/packages/opub/generic/app/3.0/app-3.0.tar.gz");
    assert!(
        got.status == 200 && got.body == data,
        "the bytes, as uploaded"
    );
    // The registry's refusals, as pages: the same file again, a bad version, a reader.
    let r = post(&alice, &fields, ("app-3.0.tar.gz", b"other"));
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("Upload refused"));
    let r = post(&alice, &fields, ("bad|name", b"x"));
    assert_eq!(r.status, 400, "an invalid file name: {}", r.text());
    let empty = [
        ("_csrf", csrf.as_str()),
        ("package", "app"),
        ("version", ""),
    ];
    assert_eq!(post(&alice, &empty, ("f", b"x")).status, 400, "no version");
    let rita = sign_in(&s, "rita", "reader password").expect("rita");
    let rita_csrf = hidden_csrf(
        &s.req("GET", "/opub/-/upload", &[("Cookie", &rita)], b"")
            .text(),
    );
    let r = post(
        &rita,
        &[
            ("_csrf", rita_csrf.as_str()),
            ("package", "app"),
            ("version", "4.0"),
        ],
        ("f", b"x"),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    // Without the session's secret, or signed out: nothing is published.
    let none = [("_csrf", "0000"), ("package", "app"), ("version", "5.0")];
    assert_eq!(post(&alice, &none, ("f", b"x")).status, 403);
    assert_eq!(post("", &fields, ("g", b"x")).status, 303);
    assert_eq!(s.get("/api/packages/opub/generic/app/5.0/f").status, 404);
    assert_eq!(s.get("/api/packages/opub/generic/app/3.0/g").status, 404);
}
