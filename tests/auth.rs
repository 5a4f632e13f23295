//! Users, tokens and every credential form (GITEA-COMPAT §8, §16 item 10), through the CLI and
//! the real server.

mod common;
use common::*;

#[test]
fn every_credential_form() {
    let mut s = Server::start();
    let token = user_with_token(&mut s, "alice", false);
    let s = s.restart();
    let path = "/api/packages/alice/generic/p/1/f";
    let forms = [
        format!("token {token}"),
        format!("Token {token}"),
        format!("Bearer {token}"),
        format!("bearer {token}"),
        basic("alice", &token),
        basic("whoever", &token),
        basic(&token, ""),
        basic(&token, "x-oauth-basic"),
    ];
    for (i, auth) in forms.iter().enumerate() {
        let p = format!("{path}{i}");
        let r = s.req("PUT", &p, &[("Authorization", auth)], b"x");
        assert_eq!(r.status, 201, "form {i}: {auth}");
        let r = s.req("DELETE", &p, &[("Authorization", auth)], b"");
        assert_eq!(r.status, 204, "form {i}");
    }
    // query token
    let r = s.req("PUT", &format!("{path}q?token={token}"), &[], b"x");
    assert_eq!(r.status, 201);
    let r = s.req("PUT", &format!("{path}q2?access_token={token}"), &[], b"x");
    assert_eq!(r.status, 201);
}

#[test]
fn wrong_or_empty_credentials_are_401_even_on_reads() {
    let s = Server::start();
    assert_eq!(s.put("/api/packages/admin/generic/p/1/f", b"x").status, 201);
    let path = "/api/packages/admin/generic/p/1/f";
    assert_eq!(
        s.get(path).status,
        200,
        "anonymous read of a public package"
    );
    for auth in [
        "token wrong".to_string(),
        "Bearer 0000000000000000000000000000000000000000".to_string(),
        basic("admin", "not-the-password"),
        basic("", ""), // `Basic Og==`: one client library always sends it
        basic("nobody", ""),
    ] {
        let r = s.req("GET", path, &[("Authorization", &auth)], b"");
        assert_eq!(r.status, 401, "{auth}");
        assert_eq!(r.header("www-authenticate"), None);
    }
    // malformed headers are ignored: anonymous
    for auth in ["Digest abc", "token a b", "Basic !!!", "Bearer"] {
        let r = s.req("GET", path, &[("Authorization", auth)], b"");
        assert_eq!(r.status, 200, "{auth}");
    }
}

#[test]
fn namespaces_are_written_by_their_owner_or_a_site_admin() {
    let mut s = Server::start();
    let alice = user_with_token(&mut s, "alice", false);
    let bob = user_with_token(&mut s, "Bob", false);
    let s = s.restart();
    // alice into her own namespace, admin into hers
    assert_eq!(
        s.put_as(&alice, "/api/packages/alice/generic/p/1/a", b"a")
            .status,
        201
    );
    assert_eq!(s.put("/api/packages/ALICE/generic/p/1/b", b"b").status, 201);
    // bob into alice's: 401 with a challenge, and nothing stored
    let r = s.put_as(&bob, "/api/packages/alice/generic/p/1/c", b"c");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"shelf\""));
    assert_eq!(s.get("/api/packages/alice/generic/p/1/c").status, 404);
    let auth = format!("token {bob}");
    let r = s.req(
        "DELETE",
        "/api/packages/alice/generic/p/1/a",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = s.req(
        "DELETE",
        "/api/packages/alice/generic/p/1",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 401);
    // anonymous writes: 401
    let r = s.req("PUT", "/api/packages/alice/generic/p/1/d", &[], b"d");
    assert_eq!(r.status, 401);
    // bob reads alice's packages (public)
    let r = s.req(
        "GET",
        "/api/packages/alice/generic/p/1/a",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"a"[..]));
    // bob's own namespace, with the casing of his login
    assert_eq!(
        s.put_as(&bob, "/api/packages/bob/generic/p/1/x", b"x")
            .status,
        201
    );
}

#[test]
fn token_cli_list_and_revoke() {
    let mut s = Server::start();
    let token = user_with_token(&mut s, "carol", false);
    let out = s.cli(&["token", "list", "carol"]);
    assert!(out.status.success());
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("ci"), "{listing}");
    assert!(!listing.contains(&token), "a listing never shows the token");
    assert!(
        listing.contains(&token[32..]),
        "but its last eight characters"
    );

    let s = s.restart();
    assert_eq!(
        s.put_as(&token, "/api/packages/carol/generic/p/1/f", b"x")
            .status,
        201
    );
    let mut s = s;
    s.stop();
    let out = s.cli(&["token", "revoke", "carol", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&["token", "revoke", "carol", "ci"]);
    assert!(!out.status.success(), "revoking twice fails");
    let s = s.restart();
    let r = s.put_as(&token, "/api/packages/carol/generic/p/1/g", b"x");
    assert_eq!(r.status, 401, "a revoked token is refused");
}

#[test]
fn cli_refuses_a_database_held_by_a_server() {
    let s = Server::start();
    let out = s.cli(&["user", "add", "dave"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn cli_errors_are_clear() {
    let dir = temp_dir("cli");
    let db = dir.join("x.redb");
    let out = cli(&db, &["user", "add", "erin"]);
    assert!(out.status.success());
    let out = cli(&db, &["user", "add", "ERIN"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = cli(&db, &["user", "add", "bad name"]);
    assert!(!out.status.success());
    let out = cli(&db, &["token", "create", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn first_start_prints_a_random_admin_token_once() {
    let dir = temp_dir("boot");
    let db = dir.join("shelf.redb");
    let run = |db: &std::path::Path| {
        let mut child = std::process::Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(db)
            .env_remove("SHELF_ADMIN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        std::io::BufRead::read_line(&mut out, &mut line).expect("listening line");
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let output = child.wait_with_output().expect("wait");
        assert!(output.status.success(), "clean exit on SIGTERM");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let first = run(&db);
    let token = first
        .lines()
        .find(|l| l.len() == 40 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no token printed: {first}"));
    let second = run(&db);
    assert!(!second.contains(token), "the token is printed only once");
    let _ = std::fs::remove_dir_all(dir);
}
