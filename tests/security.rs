//! Regressions from the security review of this session: limited and public-only tokens on
//! account routes and in deploy by checksum, audited JSON deletes, request-controlled panics,
//! and the size limit on multipart file parts.

mod common;
use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn admin() -> String {
    format!("token {ADMIN_TOKEN}")
}

fn send_json(s: &Server, method: &str, auth: &str, path: &str, body: &Value) -> Resp {
    let body = body.to_string();
    s.req(
        method,
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// A token for `user` created by the admin with these extra fields.
fn token(s: &Server, user: &str, name: &str, extra: Value) -> String {
    let mut body = json!({ "name": name, "scopes": ["all"] });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = send_json(
        s,
        "POST",
        &admin(),
        &format!("/api/v1/admin/users/{user}/tokens"),
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v["sha1"].as_str().expect("token").to_string()
}

/// A private organization `sec` owned by admin, holding one secret file; returns its bytes.
fn private_org_with_secret(s: &Server) -> Vec<u8> {
    let r = send_json(
        s,
        "POST",
        &admin(),
        "/api/v1/orgs",
        &json!({"username": "sec", "visibility": "private"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let secret = pattern(3000, 501);
    let auth = admin();
    let r = s.req(
        "PUT",
        "/api/packages/sec/generic/s/1/secret.bin",
        &[("Authorization", &auth)],
        &secret,
    );
    assert_eq!(r.status, 201);
    secret
}

#[test]
fn limited_and_public_only_tokens_cannot_deploy_bytes_they_cannot_read() {
    let s = Server::start();
    let secret = private_org_with_secret(&s);
    let sha = hex::encode(Sha256::digest(&secret));
    let limited = token(
        &s,
        "admin",
        "lim",
        json!({"owner": "admin", "package": "pk"}),
    );
    let owner_limited = token(&s, "admin", "own", json!({"owner": "admin"}));
    let public_only = token(
        &s,
        "admin",
        "pub",
        json!({"scopes": ["public-only", "write:package"]}),
    );
    for (label, t) in [
        ("package-limited", &limited),
        ("owner-limited", &owner_limited),
        ("public-only", &public_only),
    ] {
        let auth = format!("token {t}");
        let r = s.req(
            "PUT",
            "/api/packages/admin/generic/pk/1/copy.bin",
            &[
                ("Authorization", &auth),
                ("X-Checksum-Deploy", "true"),
                ("X-Checksum-Sha256", &sha),
            ],
            b"",
        );
        assert_eq!(
            r.status, 404,
            "{label}: the private bytes must stay unknown"
        );
        assert_eq!(
            s.get("/api/packages/admin/generic/pk/1/copy.bin").status,
            404
        );
    }
    // the full token of the same admin may
    let auth = admin();
    let r = s.req(
        "PUT",
        "/api/packages/admin/generic/pk/1/copy.bin",
        &[
            ("Authorization", &auth),
            ("X-Checksum-Deploy", "true"),
            ("X-Checksum-Sha256", &sha),
        ],
        b"",
    );
    assert_eq!(r.status, 201);
}

#[test]
fn deploy_by_checksum_verifies_other_digests_and_the_size_limit() {
    let s = Server::start_with(&["--max-file-size", "2000"]);
    let auth = admin();
    let small = pattern(1500, 502);
    assert_eq!(
        s.put("/api/packages/admin/generic/d/1/a", &small).status,
        201
    );
    let sha = hex::encode(Sha256::digest(&small));
    let r = s.req(
        "PUT",
        "/api/packages/admin/generic/d/1/b",
        &[
            ("Authorization", &auth),
            ("X-Checksum-Deploy", "true"),
            ("X-Checksum-Sha256", &sha),
            ("X-Checksum-Md5", "00000000000000000000000000000000"),
        ],
        b"",
    );
    assert_eq!(r.status, 400, "a contradicting md5: {}", r.text());
    assert_eq!(s.get("/api/packages/admin/generic/d/1/b").status, 404);
}

#[test]
fn limited_tokens_cannot_manage_accounts_and_public_only_sees_no_private_orgs() {
    let s = Server::start();
    private_org_with_secret(&s);
    let limited = token(
        &s,
        "admin",
        "lim",
        json!({"owner": "admin", "package": "pk"}),
    );
    let auth = format!("token {limited}");
    for (method, path, body) in [
        (
            "PUT",
            "/api/v1/orgs/sec/members/admin",
            json!({"role": "admin"}),
        ),
        ("PATCH", "/api/v1/orgs/sec", json!({"visibility": "public"})),
        ("DELETE", "/api/v1/orgs/sec?purge=true", json!({})),
        ("PATCH", "/api/v1/admin/users/admin", json!({"admin": true})),
        ("POST", "/api/v1/orgs", json!({"username": "newco"})),
        (
            "POST",
            "/api/v1/admin/users/admin/tokens",
            json!({"name": "x", "scopes": ["all"]}),
        ),
    ] {
        let r = send_json(&s, method, &auth, path, &body);
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
    }
    // the org and its secret are untouched
    let r = s.req(
        "GET",
        "/api/packages/sec/generic/s/1/secret.bin",
        &[("Authorization", &admin())],
        b"",
    );
    assert_eq!(r.status, 200);
    // who-am-I still answers for a limited token
    assert_eq!(
        s.req("GET", "/api/v1/user", &[("Authorization", &auth)], b"")
            .status,
        200
    );
    // and it cannot list its owner's other packages
    let r = s.req(
        "GET",
        "/api/v1/packages/admin",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 403);

    let public_only = token(
        &s,
        "admin",
        "pub",
        json!({"scopes": ["public-only", "all"]}),
    );
    let auth = format!("token {public_only}");
    for path in ["/api/v1/orgs/sec", "/api/v1/orgs/sec/members"] {
        let r = s.req("GET", path, &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 403, "{path}");
    }
    let r = s.req("GET", "/api/v1/user/orgs", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body, b"[]",
        "a private org is not listed to a public-only token"
    );
}

#[test]
fn json_api_deletes_and_refused_writes_are_audited() {
    let s = Server::start();
    assert_eq!(
        s.put("/api/packages/admin/generic/gone/1/f", b"x").status,
        201
    );
    assert_eq!(
        s.put("/api/packages/admin/generic/gone2/1/f", b"x").status,
        201
    );
    let auth = admin();
    let r = s.req(
        "DELETE",
        "/api/v1/packages/admin/generic/gone/1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 204);
    let r = s.req(
        "DELETE",
        "/api/v1/packages/admin/generic/gone2",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 204);
    // an anonymous refused publish
    assert_eq!(
        s.req("PUT", "/api/packages/admin/generic/x/1/f", &[], b"x")
            .status,
        401
    );
    // entries are written within 2 s
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(6);
    loop {
        let r = s.req(
            "GET",
            "/api/v1/admin/audit?action=package&limit=50",
            &[("Authorization", &auth)],
            b"",
        );
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        let seen: Vec<(String, String)> = v
            .as_array()
            .expect("array")
            .iter()
            .map(|e| {
                (
                    e["action"].as_str().unwrap_or("").to_string(),
                    e["outcome"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let has = |a: &str, o: &str| seen.iter().any(|(x, y)| x == a && y == o);
        if has("package.delete_version", "ok")
            && has("package.delete", "ok")
            && has("package.publish", "refused")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing audit entries: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_non_ascii_expiry_is_a_clean_422_not_a_panic() {
    let s = Server::start();
    let r = send_json(
        &s,
        "POST",
        &admin(),
        "/api/v1/admin/users/admin/tokens",
        &json!({"name": "t", "scopes": ["all"], "expires_at": "2026-01-3é1"}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
}

#[test]
fn the_size_limit_applies_to_the_multipart_file_part() {
    let s = Server::start_with(&["--max-file-size", "1000"]);
    // Site admins are exempt from the limit (as in Gitea): a plain user uploads.
    let r = send_json(
        &s,
        "POST",
        &admin(),
        "/api/v1/admin/users",
        &json!({"username": "mp", "email": "mp@example.com", "password": "a long passphrase", "must_change_password": false}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let user = token(&s, "mp", "t", json!({}));
    let boundary = "XyZ";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&pattern(1000, 503));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(
        body.len() > 1000,
        "the form is larger than the limit, the file is not"
    );
    let auth = format!("token {user}");
    let ct = format!("multipart/form-data; boundary={boundary}");
    let r = s.req(
        "PUT",
        "/api/packages/mp/generic/mp/1/f",
        &[("Authorization", &auth), ("Content-Type", &ct)],
        &body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let mut big = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"g\"\r\n\r\n"
    )
    .into_bytes();
    big.extend_from_slice(&pattern(1001, 504));
    big.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = s.req(
        "PUT",
        "/api/packages/mp/generic/mp/1/g",
        &[("Authorization", &auth), ("Content-Type", &ct)],
        &big,
    );
    assert_eq!(r.status, 403);
    // the same form from a site admin is accepted
    let r = s.req(
        "PUT",
        "/api/packages/admin/generic/mp/1/g",
        &[("Authorization", &admin()), ("Content-Type", &ct)],
        &big,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

#[test]
fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let wrong = "token 0000000000000000000000000000000000000000";
    // behind a trusted proxy, each client has its own budget of failures
    let s = Server::start_with(&["--trusted-proxies", "127.0.0.1"]);
    for _ in 0..10 {
        let r = s.req(
            "GET",
            "/api/v1/user",
            &[("Authorization", wrong), ("X-Forwarded-For", "10.9.9.1")],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[("Authorization", wrong), ("X-Forwarded-For", "10.9.9.1")],
        b"",
    );
    assert_eq!(r.status, 429, "the attacker behind the proxy is throttled");
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[("Authorization", wrong), ("X-Forwarded-For", "10.9.9.2")],
        b"",
    );
    assert_eq!(r.status, 401, "another client behind the same proxy is not");
    // a spoofed left-hand entry does not help: the proxy's own entry is the rightmost
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[
            ("Authorization", wrong),
            ("X-Forwarded-For", "10.9.9.3, 10.9.9.1"),
        ],
        b"",
    );
    assert_eq!(r.status, 429);

    // without the option, the header is ignored: varying it does not escape the limit
    let s = Server::start();
    for i in 0..10 {
        let xff = format!("10.8.8.{i}");
        let r = s.req(
            "GET",
            "/api/v1/user",
            &[("Authorization", wrong), ("X-Forwarded-For", &xff)],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[("Authorization", wrong), ("X-Forwarded-For", "10.8.8.99")],
        b"",
    );
    assert_eq!(r.status, 429);
}

#[test]
fn whole_registry_routes_need_full_admin_tokens() {
    let s = Server::start();
    private_org_with_secret(&s);
    let read_admin = format!(
        "token {}",
        token(&s, "admin", "ra", json!({"scopes": ["read:admin"]}))
    );
    let public_only = format!(
        "token {}",
        token(&s, "admin", "po", json!({"scopes": ["all", "public-only"]}))
    );
    // read:admin alone may read the admin API but not carry packages out.
    for (method, path, body) in [
        ("GET", "/api/v1/admin/manifest?owner=sec", json!(null)),
        ("POST", "/api/v1/admin/export", json!({"owner": "sec"})),
        ("GET", "/api/v1/admin/backup", json!(null)),
    ] {
        let r = send_json(&s, method, &read_admin, path, &body);
        assert_eq!(
            r.status,
            403,
            "{method} {path} with read:admin: {}",
            r.text()
        );
    }
    let r = send_json(&s, "GET", &read_admin, "/api/v1/admin/stats", &json!(null));
    assert_eq!(r.status, 200, "{}", r.text());
    // A public-only token sees no private owner, so none of the whole-registry routes.
    for (method, path, body) in [
        ("GET", "/api/v1/admin/manifest?owner=sec", json!(null)),
        ("POST", "/api/v1/admin/export", json!({"owner": "sec"})),
        ("GET", "/api/v1/admin/backup", json!(null)),
        ("GET", "/api/v1/admin/stats", json!(null)),
        ("GET", "/api/v1/admin/check", json!(null)),
        ("GET", "/api/v1/admin/quotas", json!(null)),
        ("GET", "/api/v1/admin/quotas/sec", json!(null)),
        ("GET", "/api/v1/admin/cleanup/rules", json!(null)),
    ] {
        let r = send_json(&s, method, &public_only, path, &body);
        assert_eq!(
            r.status,
            403,
            "{method} {path} with public-only: {}",
            r.text()
        );
        assert!(!r.text().contains("secret"), "{}", r.text());
    }
}

/// Issue 9, finding 1: every refused write used to be one audit entry holding the raw package
/// segment (up to the 64 KiB head limit), so anonymous 401s grew the database by ~140 KB each.
/// Refusals are now counted per address and minute, names are recorded only when valid, and
/// the file grows by at most a few pages however many refusals arrive.
#[test]
fn issue9_anonymous_refusals_cannot_grow_the_database() {
    use std::io::BufReader;
    let mut s = Server::start();
    // The baseline: a database that has been opened, written and closed once.
    s.stop();
    let before = std::fs::metadata(&s.db).expect("db").len();
    let mut s = s.restart();
    let long = "A".repeat(60_000);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let conn = s.connect();
            let long = long.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::new(conn);
                for i in 0..750 {
                    let (method, path) = match (t + i) % 3 {
                        0 => ("DELETE", format!("/api/packages/admin/generic/{long}/1")),
                        1 => ("DELETE", format!("/api/packages/admin/generic/{long}/1/f")),
                        _ => ("PUT", format!("/api/packages/admin/generic/{long}/1/f")),
                    };
                    send(&mut w, method, &path, &[], b"");
                    let resp = read_response(&mut r, false);
                    assert_eq!(resp.status, 401, "{}", resp.text());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("flood thread");
    }
    // Failed sign-ins too (throttled after the burst, as before).
    let mut statuses = Vec::new();
    for i in 0..300 {
        let auth = format!("token wrong{i}");
        let path = format!("/api/packages/admin/generic/{}/1/f", &long[..1000]);
        statuses.push(s.req("PUT", &path, &[("Authorization", &auth)], b"").status);
    }
    assert!(
        statuses.iter().all(|&c| c == 401 || c == 429),
        "{statuses:?}"
    );
    s.stop();
    let after = std::fs::metadata(&s.db).expect("db").len();
    let grown = after.saturating_sub(before);
    eprintln!("3,300 refusals grew the database by {grown} bytes");
    assert!(
        grown <= 256 * 1024,
        "3,300 refusals grew the database by {grown} bytes ({before} → {after})"
    );
    // What the log says: one entry for the first refusal of each kind, one counted summary.
    let s = s.restart();
    let r = s.req(
        "GET",
        "/api/v1/admin/audit?limit=50",
        &[("Authorization", &admin())],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let entries: Vec<Value> = serde_json::from_slice(&r.body).expect("json");
    assert!(entries.len() <= 12, "{entries:#?}");
    let mut counted = 0u64;
    for e in &entries {
        let target = e["target"].as_str().unwrap_or("");
        assert!(target.len() <= 256, "{target}");
        assert!(!target.contains(&long[..300]), "raw name recorded: {e}");
        let outcome = e["outcome"].as_str().unwrap_or("");
        if e["action"]
            .as_str()
            .is_some_and(|a| a.starts_with("package."))
        {
            // The first refusal as it is; the rest as "refused, N more like it within S s".
            counted += match outcome.strip_prefix("refused, ") {
                Some(rest) => rest
                    .split(' ')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("a counted summary: {e}")),
                None => {
                    assert_eq!(outcome, "refused", "{e}");
                    1
                }
            };
        }
    }
    assert_eq!(
        counted, 3000,
        "every refused write is counted: {entries:#?}"
    );
}

/// Issue 9, from the review of its fixes: packages are deleted only with the package scope,
/// passwords are handed out only by full credentials, `public-only` hides private members and
/// creators, token limits tell no hidden owners, and a far-future expiry is refused (it broke
/// every later token listing with a 500).
#[test]
fn issue9_review_scopes_on_purges_runs_passwords_and_members() {
    let s = Server::start();
    let adm = admin();
    for (login, vis) in [("alice", "public"), ("privy", "private")] {
        let r = send_json(
            &s,
            "POST",
            &adm,
            "/api/v1/admin/users",
            &json!({"username": login, "password": format!("pw-{login}-Secret!"), "visibility": vis}),
        );
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = send_json(
        &s,
        "POST",
        &adm,
        "/api/v1/admin/users/alice/orgs",
        &json!({"username": "club"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = send_json(
        &s,
        "PUT",
        &adm,
        "/api/v1/orgs/club/members/privy",
        &json!({"role": "write"}),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let r = send_json(
        &s,
        "POST",
        &adm,
        "/api/v1/orgs",
        &json!({"username": "hidden", "visibility": "private"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let privy = basic("privy", "pw-privy-Secret!");
    let r = s.req(
        "PUT",
        "/api/packages/club/generic/app/1/f",
        &[("Authorization", &privy)],
        b"x",
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Purging an organization deletes its packages: write:organization alone is not enough.
    let org_only = format!(
        "token {}",
        token(
            &s,
            "alice",
            "org",
            json!({"scopes": ["write:organization"]})
        )
    );
    let r = s.req(
        "DELETE",
        "/api/v1/orgs/club?purge=true",
        &[("Authorization", &org_only)],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("write:package"), "{}", r.text());

    // A whole-registry cleanup run deletes packages too.
    let wa = format!(
        "token {}",
        token(
            &s,
            "admin",
            "wa",
            json!({"scopes": ["write:admin", "read:package"]})
        )
    );
    let r = s.req(
        "POST",
        "/api/v1/admin/cleanup/run",
        &[("Authorization", &wa)],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = s.req(
        "POST",
        "/api/v1/admin/cleanup/run?dry_run=true",
        &[("Authorization", &wa)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // A new user with a password is an unscoped sign-in: not from write:admin alone.
    let r = send_json(
        &s,
        "POST",
        &wa,
        "/api/v1/admin/users",
        &json!({"username": "mallory", "password": "pw-mallory-Secret!"}),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = send_json(
        &s,
        "POST",
        &wa,
        "/api/v1/admin/users",
        &json!({"username": "nopass"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // public-only: private members and creators stay hidden.
    let public = format!(
        "token {}",
        token(
            &s,
            "admin",
            "pub",
            json!({"scopes": ["all", "public-only"]})
        )
    );
    let r = s.req(
        "GET",
        "/api/v1/orgs/club/members",
        &[("Authorization", &public)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("privy"), "{}", r.text());
    let r = s.req(
        "GET",
        "/api/v1/orgs/club/members",
        &[("Authorization", &adm)],
        b"",
    );
    assert!(r.text().contains("privy"), "{}", r.text());
    let r = s.req(
        "GET",
        "/api/v1/packages/club",
        &[("Authorization", &public)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v[0]["creator"]["login"], "Ghost", "{v}");
    assert!(!r.text().contains("privy"), "{}", r.text());

    // Limiting a token to an owner the caller may not see answers as for a missing owner.
    let alice = basic("alice", "pw-alice-Secret!");
    let answer = |owner: &str| {
        let r = send_json(
            &s,
            "POST",
            &alice,
            "/api/v1/users/alice/tokens",
            &json!({"name": format!("t-{owner}"), "scopes": ["read:package"], "owner": owner}),
        );
        (r.status, r.text().replace(owner, "OWNER"))
    };
    let hidden = answer("hidden");
    assert_eq!(hidden.0, 422, "{}", hidden.1);
    assert_eq!(hidden, answer("nosuchowner"));

    // An expiry past year 9999 is refused; listings keep working.
    let r = send_json(
        &s,
        "POST",
        &alice,
        "/api/v1/users/alice/tokens",
        &json!({"name": "forever", "scopes": ["read:package"], "expires_at": 9_223_372_036_854_775_808u64}),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let r = s.req(
        "GET",
        "/api/v1/users/alice/tokens",
        &[("Authorization", &alice)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A refusal that a token's owner or package limit causes says so on `/api/v1` (issue 17,
/// item 9), while the registry keeps Gitea's one text.
#[test]
fn limit_refusals_name_the_limit() {
    let s = Server::start();
    assert_eq!(
        s.put("/api/packages/admin/generic/other/1/f", b"x").status,
        201
    );
    let pkg = token(
        &s,
        "admin",
        "lim",
        json!({"owner": "admin", "package": "pk"}),
    );
    let admin_auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "POST",
        "/api/v1/admin/users",
        &[
            ("Authorization", &admin_auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"username":"someone"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let own = token(&s, "admin", "own", json!({"owner": "someone"}));
    for (t, path, says) in [
        (&pkg, "/api/v1/packages/admin", "limited to one package"),
        (
            &pkg,
            "/api/v1/packages/admin/generic/other",
            "limited to one package",
        ),
        (&own, "/api/v1/packages/admin", "limited to another owner"),
    ] {
        let auth = format!("token {t}");
        let r = s.req("GET", path, &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains(says), "{path}: {}", r.text());
    }
    let auth = format!("token {pkg}");
    let r = s.req(
        "GET",
        "/api/packages/admin/generic/other/1/f",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(
        (r.status, r.text().trim()),
        (
            401,
            "user should have specific permission or be a site admin"
        )
    );
}

/// Deploy by checksum takes no body, but the limits hold as for an upload of those bytes: a
/// user who is not exempt cannot publish a file over the size limit, or over its owner's total,
/// by naming the checksum of bytes an exempt admin stored.
#[test]
fn deploy_by_checksum_keeps_a_non_exempt_user_to_the_limits() {
    let mut s = Server::start_with(&["--max-file-size", "2000", "--owner-max-bytes", "4000"]);
    let alice = user_with_token(&mut s, "alice", false);
    let s = s.restart();
    let big = pattern(3000, 601);
    let small = pattern(1500, 602);
    // The site admin is exempt, and its owner is public: alice may read both.
    assert_eq!(
        s.put("/api/packages/admin/generic/d/1/big", &big).status,
        201
    );
    assert_eq!(
        s.put("/api/packages/admin/generic/d/1/small", &small)
            .status,
        201
    );
    let deploy = |file: &str, body: &[u8]| {
        let sha = hex::encode(Sha256::digest(body));
        s.req(
            "PUT",
            &format!("/api/packages/alice/generic/d/1/{file}"),
            &[
                ("Authorization", &format!("token {alice}")),
                ("X-Checksum-Deploy", "true"),
                ("X-Checksum-Sha256", &sha),
            ],
            b"",
        )
    };
    let r = deploy("big", &big);
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "maximum allowed package type size exceeded")
    );
    assert_eq!(deploy("a", &small).status, 201);
    assert_eq!(deploy("b", &small).status, 201);
    let r = deploy("c", &small);
    assert_eq!(
        (r.status, r.text().as_str()),
        (403, "maximum allowed package storage quota exceeded"),
        "3 x 1500 > 4000"
    );
    for (file, status) in [("big", 404), ("a", 200), ("b", 200), ("c", 404)] {
        let r = s.get(&format!("/api/packages/alice/generic/d/1/{file}"));
        assert_eq!(r.status, status, "{file}");
    }
}
