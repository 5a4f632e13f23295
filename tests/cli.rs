//! The administration commands (issue 3, "Managing it while the server runs"): users, tokens,
//! organizations, members and the audit log, each offline on the database file and against a
//! running server with `--server`, checked by what the server then allows.

mod common;
use common::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs the CLI with exactly `args`, feeding `stdin`; no `SHELF_*` from the test's environment.
fn run(args: &[&str], stdin: &str, env_token: Option<&str>) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("SHELF_TOKEN")
        .env_remove("SHELF_DB")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = env_token {
        cmd.env("SHELF_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("run shelf cli");
    let mut input = child.stdin.take().expect("stdin piped");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for shelf cli")
}

/// The command against the running server `s`, as its site admin.
fn remote(s: &Server, args: &[&str]) -> Output {
    remote_in(s, args, "")
}

fn remote_in(s: &Server, args: &[&str], stdin: &str) -> Output {
    let url = s.url("");
    let mut all = args.to_vec();
    all.extend(["--server", &url, "--token", ADMIN_TOKEN]);
    run(&all, stdin, None)
}

/// The command offline on `s`'s database (the server must be stopped).
fn offline(s: &Server, args: &[&str]) -> Output {
    offline_in(s, args, "")
}

fn offline_in(s: &Server, args: &[&str], stdin: &str) -> Output {
    let db = s.db.to_str().expect("utf-8 temp path");
    let mut all = args.to_vec();
    all.extend(["--db", db]);
    run(&all, stdin, None)
}

/// Stdout of a command that must succeed.
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr of a command that must fail.
fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The token printed alone on the last line of `token create`.
fn token_of(stdout: String) -> String {
    let token = stdout
        .lines()
        .last()
        .expect("a last line")
        .trim()
        .to_string();
    assert_eq!(
        token.len(),
        40,
        "the token alone on the last line: {stdout:?}"
    );
    token
}

fn put(s: &Server, token: &str, path: &str) -> u16 {
    s.put_as(token, path, b"x").status
}

fn get(s: &Server, token: &str, path: &str) -> u16 {
    let auth = format!("token {token}");
    s.req("GET", path, &[("Authorization", &auth)], b"").status
}

/// The rows of a listing whose first column is `first`.
fn row<'a>(listing: &'a str, first: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
}

#[test]
fn remote_users_tokens_and_passwords() {
    let s = Server::start();
    let out = ok(remote_in(
        &s,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--email",
            "a@example.com",
        ],
        "s3cret pass\n",
    ));
    assert!(out.contains("created user alice"), "{out}");
    let alice = token_of(ok(remote(
        &s,
        &["token", "create", "alice", "--name", "ci"],
    )));
    assert_eq!(put(&s, &alice, "/api/packages/alice/generic/p/1/f"), 201);
    // the password from stdin signs in
    let r = s.req(
        "PUT",
        "/api/packages/alice/generic/p/1/g",
        &[("Authorization", &basic("alice", "s3cret pass"))],
        b"x",
    );
    assert_eq!(r.status, 201);
    // another user's namespace stays closed
    assert_eq!(put(&s, &alice, "/api/packages/admin/generic/p/1/f"), 401);
    // scopes: read only
    let ro = token_of(ok(remote(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "ro",
            "--scope",
            "read:package",
        ],
    )));
    assert_eq!(put(&s, &ro, "/api/packages/alice/generic/p/1/h"), 401);
    assert_eq!(get(&s, &ro, "/api/packages/alice/generic/p/1/f"), 200);
    // expired: the CLI refuses a time already past, so the API (which takes it, as Gitea's)
    // makes one
    let err = fails(remote(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "old",
            "--expires",
            "2001-02-03",
        ],
    ));
    assert!(err.contains("already past"), "{err}");
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "POST",
        "/api/v1/users/alice/tokens",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        br#"{"name":"old","scopes":["all"],"expires_at":"2001-02-03T00:00:00Z"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let old = serde_json::from_slice::<serde_json::Value>(&r.body).expect("json")["sha1"]
        .as_str()
        .expect("sha1")
        .to_string();
    assert_eq!(get(&s, &old, "/api/packages/alice/generic/p/1/f"), 401);
    // … and one that expires later works until then
    let later = token_of(ok(remote(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "later",
            "--expires",
            "2999-01-01",
        ],
    )));
    assert_eq!(get(&s, &later, "/api/packages/alice/generic/p/1/f"), 200);
    // limited to one owner
    let limited = token_of(ok(remote(
        &s,
        &[
            "token", "create", "alice", "--name", "lim", "--owner", "admin",
        ],
    )));
    assert_eq!(put(&s, &limited, "/api/packages/alice/generic/p/1/i"), 401);

    let listing = ok(remote(&s, &["token", "list", "alice"]));
    for name in ["ci", "ro", "old", "lim"] {
        assert!(listing.contains(&format!(" {name} ")), "{listing}");
    }
    assert!(listing.contains(&alice[32..]) && !listing.contains(&alice));
    assert!(listing.contains("read:package") && listing.contains("2001-02-03T00:00:00Z"));

    ok(remote(&s, &["token", "revoke", "alice", "ci"]));
    assert_eq!(put(&s, &alice, "/api/packages/alice/generic/p/1/j"), 401);
    let err = fails(remote(&s, &["token", "revoke", "alice", "ci"]));
    assert!(err.contains("no token named"), "{err}");

    let said = ok(remote(
        &s,
        &["user", "modify", "alice", "--active", "false"],
    ));
    assert!(said.contains("updated user alice (active false)"), "{said}");
    assert_eq!(get(&s, &ro, "/api/packages/alice/generic/p/1/f"), 401);
    ok(remote(&s, &["user", "modify", "alice", "--active", "true"]));
    assert_eq!(get(&s, &ro, "/api/packages/alice/generic/p/1/f"), 200);
    ok(remote_in(
        &s,
        &["user", "modify", "alice", "--password-stdin"],
        "new one\r\n",
    ));
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[("Authorization", &basic("alice", "new one"))],
        b"",
    );
    assert_eq!(r.status, 200);

    ok(remote(
        &s,
        &["user", "add", "bob", "--admin", "--visibility", "private"],
    ));
    let users = ok(remote(&s, &["user", "list"]));
    let bob = row(&users, "bob").unwrap_or_else(|| panic!("{users}"));
    assert!(bob.contains("yes") && bob.contains("private"), "{bob}");
    assert!(row(&users, "alice").is_some_and(|r| r.contains("a@example.com")));
    ok(remote(&s, &["user", "delete", "bob"]));
    assert!(row(&ok(remote(&s, &["user", "list"])), "bob").is_none());
    let err = fails(remote(&s, &["user", "delete", "bob"]));
    assert!(err.contains("no user named"), "{err}");
    let err = fails(remote(&s, &["user", "add", "ALICE"]));
    assert!(
        err.contains("422") && err.contains("already exists"),
        "{err}"
    );

    let audit = ok(remote(&s, &["audit", "--action", "user"]));
    for action in ["user.create", "user.update", "user.delete"] {
        assert!(audit.contains(action), "{audit}");
    }
    let audit = ok(remote(&s, &["audit", "--action", "token", "--limit", "2"]));
    assert_eq!(
        audit.lines().count(),
        3,
        "a header and two entries: {audit}"
    );
    assert!(audit.contains("token.revoke"), "newest first: {audit}");
}

#[test]
fn remote_orgs_and_members() {
    let s = Server::start();
    ok(remote(&s, &["user", "add", "alice"]));
    ok(remote(&s, &["user", "add", "carol"]));
    let alice = token_of(ok(remote(&s, &["token", "create", "alice"])));
    let carol = token_of(ok(remote(&s, &["token", "create", "carol"])));

    ok(remote(&s, &["org", "create", "acme", "--owner", "alice"]));
    assert_eq!(put(&s, &alice, "/api/packages/acme/generic/p/1/a"), 201);
    assert_eq!(put(&s, &carol, "/api/packages/acme/generic/p/1/b"), 401);

    ok(remote(&s, &["member", "set", "acme", "carol", "write"]));
    assert_eq!(put(&s, &carol, "/api/packages/acme/generic/p/1/c"), 201);
    let members = ok(remote(&s, &["member", "list", "acme"]));
    assert!(
        row(&members, "alice").is_some_and(|r| r.ends_with("admin")),
        "{members}"
    );
    assert!(
        row(&members, "carol").is_some_and(|r| r.ends_with("write")),
        "{members}"
    );
    ok(remote(&s, &["member", "remove", "acme", "carol"]));
    assert_eq!(put(&s, &carol, "/api/packages/acme/generic/p/1/d"), 401);
    let err = fails(remote(&s, &["member", "set", "acme", "nobody", "read"]));
    assert!(err.contains("nobody"), "{err}");

    assert_eq!(s.get("/api/packages/acme/generic/p/1/a").status, 200);
    ok(remote(&s, &["org", "visibility", "acme", "private"]));
    assert_eq!(s.get("/api/packages/acme/generic/p/1/a").status, 401);
    assert_eq!(get(&s, &alice, "/api/packages/acme/generic/p/1/a"), 200);
    let orgs = ok(remote(&s, &["org", "list"]));
    assert!(
        row(&orgs, "acme").is_some_and(|r| r.ends_with("private")),
        "{orgs}"
    );

    // without --owner the token's user owns it
    ok(remote(
        &s,
        &["org", "create", "beta", "--visibility", "limited"],
    ));
    let members = ok(remote(&s, &["member", "list", "beta"]));
    assert!(row(&members, "admin").is_some(), "{members}");
    ok(remote(&s, &["org", "delete", "beta"]));
    let err = fails(remote(&s, &["org", "delete", "acme"]));
    // The CLI names its flag, not the API's query parameter.
    assert!(err.contains("or add --purge"), "{err}");
    assert!(!err.contains("?purge=true"), "{err}");
    ok(remote(&s, &["org", "delete", "acme", "--purge"]));
    assert!(row(&ok(remote(&s, &["org", "list"])), "acme").is_none());

    let audit = ok(remote(&s, &["audit", "--owner", "acme"]));
    for action in [
        "org.create",
        "member.set",
        "member.remove",
        "org.update",
        "org.delete",
    ] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
}

#[test]
fn offline_equivalents_on_a_stopped_server() {
    let mut s = Server::start();
    s.stop();
    ok(offline_in(
        &s,
        &["user", "add", "alice", "--password-stdin"],
        "pw of alice\n",
    ));
    ok(offline(
        &s,
        &["user", "add", "carol", "--email", "c@example.com"],
    ));
    ok(offline(&s, &["user", "add", "dave"]));
    let alice = token_of(ok(offline(&s, &["token", "create", "alice"])));
    let carol = token_of(ok(offline(
        &s,
        &["token", "create", "carol", "--name", "c"],
    )));
    let dave = token_of(ok(offline(&s, &["token", "create", "dave"])));
    let ro = token_of(ok(offline(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "ro",
            "--scope",
            "read:package",
        ],
    )));
    // A time already past is refused (the token would never work); one to come works.
    let err = fails(offline(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "old",
            "--expires",
            "2001-02-03T04:05:06Z",
        ],
    ));
    assert!(err.contains("already past"), "{err}");
    let later = token_of(ok(offline(
        &s,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "later",
            "--expires",
            "2999-02-03T04:05:06Z",
        ],
    )));
    ok(offline(
        &s,
        &[
            "org",
            "create",
            "acme",
            "--owner",
            "alice",
            "--visibility",
            "private",
        ],
    ));
    ok(offline(&s, &["member", "set", "acme", "carol", "write"]));
    ok(offline(
        &s,
        &["user", "modify", "dave", "--active", "false"],
    ));
    let err = fails(offline(&s, &["org", "create", "ACME"]));
    assert!(err.contains("already exists"), "{err}");
    let err = fails(offline(&s, &["org", "create", "x", "--owner", "nobody"]));
    assert!(err.contains("no user"), "{err}");
    assert!(row(&ok(offline(&s, &["org", "list"])), "x").is_none());

    let mut s = s.restart();
    assert_eq!(put(&s, &alice, "/api/packages/acme/generic/p/1/a"), 201);
    assert_eq!(put(&s, &carol, "/api/packages/acme/generic/p/1/b"), 201);
    assert_eq!(s.get("/api/packages/acme/generic/p/1/a").status, 401);
    assert_eq!(put(&s, &ro, "/api/packages/alice/generic/p/1/f"), 401);
    assert_eq!(put(&s, &alice, "/api/packages/alice/generic/p/1/f"), 201);
    assert_eq!(get(&s, &ro, "/api/packages/alice/generic/p/1/f"), 200);
    assert_eq!(get(&s, &later, "/api/packages/alice/generic/p/1/f"), 200);
    assert_eq!(get(&s, &dave, "/api/packages/alice/generic/p/1/f"), 401);
    let r = s.req(
        "PUT",
        "/api/packages/alice/generic/p/1/g",
        &[("Authorization", &basic("alice", "pw of alice"))],
        b"x",
    );
    assert_eq!(r.status, 201);

    s.stop();
    ok(offline(&s, &["member", "remove", "acme", "carol"]));
    let err = fails(offline(&s, &["member", "remove", "acme", "carol"]));
    assert!(err.contains("not a member"), "{err}");
    ok(offline(&s, &["org", "visibility", "acme", "public"]));
    ok(offline(&s, &["token", "revoke", "alice", "ro"]));
    let members = ok(offline(&s, &["member", "list", "acme"]));
    assert!(row(&members, "alice").is_some() && row(&members, "carol").is_none());
    let orgs = ok(offline(&s, &["org", "list"]));
    assert!(
        row(&orgs, "acme").is_some_and(|r| r.ends_with("public")),
        "{orgs}"
    );
    let users = ok(offline(&s, &["user", "list"]));
    assert!(
        row(&users, "dave").is_some_and(|r| r.contains(" no ")),
        "{users}"
    );
    assert!(row(&users, "carol").is_some_and(|r| r.contains("c@example.com")));

    let mut s = s.restart();
    assert_eq!(put(&s, &carol, "/api/packages/acme/generic/p/1/c"), 401);
    assert_eq!(s.get("/api/packages/acme/generic/p/1/a").status, 200);
    assert_eq!(get(&s, &ro, "/api/packages/alice/generic/p/1/f"), 401);

    s.stop();
    let err = fails(offline(&s, &["user", "delete", "alice"]));
    assert!(err.contains("--purge"), "{err}");
    let err = fails(offline(&s, &["user", "delete", "acme"]));
    assert!(
        err.contains("no user"),
        "an organization is not a user: {err}"
    );
    ok(offline(&s, &["org", "delete", "acme", "--purge"]));
    ok(offline(&s, &["user", "delete", "dave"]));
    assert!(row(&ok(offline(&s, &["user", "list"])), "dave").is_none());

    let audit = ok(offline(&s, &["audit"]));
    for action in [
        "user.create",
        "user.update",
        "user.delete",
        "token.create",
        "token.revoke",
        "org.create",
        "org.update",
        "org.delete",
        "member.set",
        "member.remove",
    ] {
        let line = audit
            .lines()
            .find(|l| l.contains(action))
            .unwrap_or_else(|| panic!("{action}: {audit}"));
        assert!(line.contains(" cli ") && line.contains(" local "), "{line}");
    }
    let acme = ok(offline(
        &s,
        &["audit", "--owner", "acme", "--action", "member"],
    ));
    assert_eq!(acme.lines().count(), 3, "member.set and .remove: {acme}");
    assert!(acme
        .lines()
        .nth(1)
        .is_some_and(|l| l.contains("member.remove")));
}

#[test]
fn modes_are_chosen_clearly() {
    let s = Server::start();
    let url = s.url("");
    let db = s.db.to_str().expect("utf-8 temp path");

    let err = fails(run(
        &[
            "user",
            "list",
            "--db",
            db,
            "--server",
            &url,
            "--token",
            ADMIN_TOKEN,
        ],
        "",
        None,
    ));
    assert!(err.contains("not both"), "{err}");
    let err = fails(run(&["user", "list", "--server", &url], "", None));
    assert!(err.contains("SHELF_TOKEN"), "{err}");
    let err = fails(run(&["user", "list", "--db", db, "--token", "t"], "", None));
    assert!(err.contains("--token is for --server"), "{err}");
    let err = fails(run(
        &[
            "user",
            "list",
            "--server",
            "https://shelf.example",
            "--token",
            "t",
        ],
        "",
        None,
    ));
    // https:// is spoken now (tests/tls.rs); its default port is 443.
    assert!(err.contains("cannot connect to shelf.example:443"), "{err}");
    let err = fails(run(
        &[
            "user",
            "list",
            "--server",
            "http://shelf.example",
            "--token",
            "t",
            "--ca-cert",
            "ca.pem",
        ],
        "",
        None,
    ));
    assert!(
        err.contains("--ca-cert (or SHELF_CA_CERT) is for an https://"),
        "{err}"
    );

    // the token from the environment
    let users = ok(run(
        &["user", "list", "--server", &url],
        "",
        Some(ADMIN_TOKEN),
    ));
    assert!(row(&users, "admin").is_some(), "{users}");
    // a wrong token: the status and the server's message
    let err = fails(run(
        &["user", "list", "--server", &url, "--token", "wrong"],
        "",
        None,
    ));
    assert!(
        err.contains("401") && err.contains("user does not exist"),
        "{err}"
    );

    // offline on a database the server holds: in use, and the way out
    let err = fails(offline(&s, &["user", "add", "dave"]));
    assert!(err.contains("in use") && err.contains("--server"), "{err}");

    // a password never comes from argv, and an empty one is refused
    let err = fails(remote_in(
        &s,
        &["user", "add", "erin", "--password-stdin"],
        "\n",
    ));
    assert!(err.contains("no password"), "{err}");
    assert!(row(&ok(remote(&s, &["user", "list"])), "erin").is_none());

    let err = fails(remote(&s, &["member", "set", "x", "y", "owner-ish"]));
    assert!(err.contains("read, write or admin"), "{err}");
    let err = fails(remote(
        &s,
        &["token", "create", "admin", "--scope", "read:packages"],
    ));
    assert!(err.contains("not a scope"), "{err}");
    let err = fails(remote(
        &s,
        &["token", "create", "admin", "--expires", "soon"],
    ));
    assert!(err.contains("RFC 3339"), "{err}");
    let err = fails(remote(&s, &["user", "add", "bad name"]));
    assert!(err.contains("not a valid user name"), "{err}");
}

/// Security probe finding 5: the target of a refused publish is the caller's text; `shelf audit`
/// printed it raw, so a newline forged a second audit line and `ESC[2J` cleared the screen.
/// Every field is now escaped, offline and with --server: one line per entry, no raw controls.
#[test]
fn finding_5_audit_escapes_control_characters_in_targets() {
    let mut s = Server::start();
    let alice = user_with_token(&mut s, "alice", false);
    let mut s = s.restart();
    // Within the 32 characters of an invalid name the log keeps (issue 9, finding 1).
    let evil = "/api/packages/alice/generic/app%0A2026-01-01%20admin%1B%5B2J%E2%80%AE%C2%9B/1.0/f";
    let r = s.put_as(&alice, evil, b"x");
    assert_eq!(r.status, 400, "{}", r.text());
    let check = |out: &str, how: &str| {
        assert!(
            !out.chars().any(|c| (c.is_control() && c != '\n')
                || matches!(c, '\u{202e}' | '\u{2028}' | '\u{2029}')),
            "{how}: raw control characters in {out:?}"
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("TIME"), "{how}: {out}");
        for line in &lines[1..] {
            assert!(
                line.starts_with("20"),
                "{how}: a forged line {line:?} in\n{out}"
            );
        }
        let refused = lines
            .iter()
            .find(|l| l.contains("package.publish"))
            .unwrap_or_else(|| panic!("{how}: no refused publish in\n{out}"));
        assert!(
            refused.contains(r"app\n2026-01-01 admin")
                && refused.contains(r"\x1b[2J")
                && refused.contains(r"\u{202e}")
                && refused.contains(r"\u{9b}"),
            "{how}: {refused}"
        );
    };
    check(&ok(remote(&s, &["audit"])), "--server");
    s.stop();
    check(&ok(offline(&s, &["audit"])), "offline");
}

/// Issue 17, trap 2: when the listen address is busy, the first start must fail before it
/// creates the admin, so the next start (on a free address) still creates it and shows its
/// token; before, the token was printed by the failed start and lost.
#[test]
fn a_busy_address_does_not_use_up_the_first_start() {
    let dir = temp_dir("busy-first-start");
    let db = dir.join("shelf.redb");
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(bin())
        .args(["serve", "--listen", &addr, "--db"])
        .arg(&db)
        .env_remove("SHELF_ADMIN_TOKEN")
        .output()
        .expect("run shelf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started on a busy port: {stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("created site admin"), "{stderr}");
    drop(busy);
    // Nothing was created: no account, not even the database file.
    assert!(!db.exists(), "a failed start left {}", db.display());
}

/// A typo in `--db` must not pass for an empty registry: commands that read or maintain refuse
/// a missing file and create nothing; commands that create say so (issue 17, trap 1).
#[test]
fn offline_commands_refuse_a_missing_database_and_creating_ones_say_so() {
    let dir = temp_dir("missing-db");
    let db = dir.join("tpyo.redb");
    let out_file = dir.join("out.redb");
    let out_str = out_file.to_string_lossy().to_string();
    let manifest = dir.join("m.json").to_string_lossy().to_string();
    for args in [
        &["check"][..],
        &["check", "--repair"],
        &["stats"],
        &["compact"],
        &["backup", &out_str],
        &["manifest", "-o", &manifest],
        &["audit"],
        &["user", "list"],
        &["org", "list"],
        &["token", "list", "admin"],
        &["member", "list", "acme"],
        &["quota", "show"],
        &["cleanup", "rule", "list"],
        &["cleanup", "run"],
    ] {
        let out = cli(&db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains(&format!("no database at {}", db.display())),
            "{args:?}: {stderr}"
        );
        assert!(!db.exists(), "{args:?} created {}", db.display());
        assert!(!out_file.exists(), "{args:?} wrote a backup");
    }
    // user add creates it, and says where.
    let out = cli(&db, &["user", "add", "alice"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("created a new database at {}", db.display())),
        "{stderr}"
    );
    // … once: the next command finds it, and says nothing of the kind.
    let out = cli(&db, &["user", "list"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created"));
    let org_db = dir.join("org.redb");
    let out = cli(&org_db, &["org", "create", "acme"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("created a new database at"));
}

/// `shelf [serve] [--listen …]`: serve's flags work without the word `serve`, and a mistake in
/// them points to the help that lists them (issue 17, trap 5).
#[test]
fn serve_flags_work_without_serve_and_typos_point_to_its_help() {
    let dir = temp_dir("implicit-serve");
    let db = dir.join("shelf.redb");
    // A busy address makes the server fail right after parsing, with serve's own message.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    let out = Command::new(bin())
        .args(["--listen", &addr, "--db"])
        .arg(&db)
        .output()
        .expect("run shelf");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!stderr.contains("Unrecognized"), "{stderr}");
    drop(busy);
    for args in [&["serve", "--lisen", "x"][..], &["--lisen", "x"][..]] {
        let out = Command::new(bin()).args(args).output().expect("run shelf");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("Unrecognized argument: --lisen"),
            "{stderr}"
        );
        assert!(stderr.contains("shelf serve --help"), "{stderr}");
    }
    // Help is still help, on stdout, exit 0.
    let out = Command::new(bin())
        .arg("--help")
        .output()
        .expect("run shelf");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("serve"));
}

/// The database and its backups hold password and token hashes: created 0600, while an existing
/// file keeps the mode it was given (issue 17: both were created 0644).
#[cfg(unix)]
#[test]
fn databases_and_backups_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = temp_dir("private-files");
    let db = dir.join("shelf.redb");
    let out = cli(&db, &["user", "add", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&db), 0o600);
    let backup = dir.join("backup.redb");
    let out = cli(&db, &["backup", backup.to_str().expect("utf-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&backup), 0o600);
    // A mode the operator chose stays.
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let out = cli(&db, &["user", "add", "bob"]);
    assert!(out.status.success());
    assert_eq!(mode(&db), 0o640);
}

/// A refused token: the server keeps Gitea's text ("user does not exist"), the CLI says what it
/// can mean (issue 17, item 7).
#[test]
fn a_refused_token_is_explained() {
    let s = Server::start();
    let url = s.url("");
    let out = run(
        &[
            "user",
            "list",
            "--server",
            &url,
            "--token",
            "0123456789abcdef",
        ],
        "",
        None,
    );
    let err = fails(out);
    assert!(err.contains("401"), "{err}");
    assert!(err.contains("wrong, revoked or expired"), "{err}");
    assert!(err.contains("deactivated"), "{err}");
}

/// `serve --help` names an environment variable for every flag (the README says each has one).
#[test]
fn every_serve_flag_has_an_environment_variable() {
    let help = run(&["serve", "--help"], "", None);
    let text = String::from_utf8_lossy(&help.stdout).into_owned();
    let flags: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| f.trim_end_matches(','))
        .filter(|f| *f != "help")
        .collect();
    assert!(flags.len() >= 18, "{text}");
    for flag in flags {
        let env = format!("SHELF_{}", flag.replace('-', "_").to_uppercase());
        assert!(text.contains(&env), "--{flag}: no {env} in serve --help");
    }
    // A variable that does not read is refused by name, before anything is created.
    let dir = temp_dir("env-bad");
    let db = dir.join("never.redb");
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("SHELF_DB", &db)
        .env("SHELF_AUDIT_RETENTION_DAYS", "a week")
        .output()
        .expect("run shelf");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("SHELF_AUDIT_RETENTION_DAYS: \"a week\" is not a number"),
        "{err}"
    );
    assert!(!db.exists());
}

/// Every `SHELF_*` variable of `serve` takes effect: the start-up `settings:` line shows each,
/// and the ones a client can see are checked by what the server then does.
#[test]
fn serve_takes_every_setting_from_the_environment() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("env");
    let db = dir.join("from-env.redb");
    let db_text = db.to_str().expect("utf-8 path").to_string();
    let vars = [
        ("SHELF_LISTEN", "127.0.0.1:0"),
        ("SHELF_DB", db_text.as_str()),
        ("SHELF_WORKERS", "3"),
        ("SHELF_MAX_CONNECTIONS", "77"),
        ("SHELF_MAX_CONNECTIONS_PER_IP", "9"),
        ("SHELF_HEAD_TIMEOUT", "4"),
        ("SHELF_IDLE_TIMEOUT", "5"),
        ("SHELF_BODY_TIMEOUT", "6"),
        ("SHELF_MIN_BODY_RATE", "2KiB"),
        ("SHELF_MAX_FILE_SIZE", "1000"),
        ("SHELF_OWNER_MAX_BYTES", "5KiB"),
        ("SHELF_OWNER_MAX_VERSIONS", "7"),
        ("SHELF_CLEANUP_INTERVAL", "0"),
        ("SHELF_SCRUB_RATE", "1MiB"),
        ("SHELF_SCRUB_INTERVAL", "2h"),
        ("SHELF_AUDIT_RETENTION_DAYS", "3"),
        ("SHELF_AUTH_FAILURE_BURST", "2"),
        ("SHELF_TRUSTED_PROXIES", "127.0.0.1"),
        ("SHELF_EXTERNAL_URL", "https://pk.example"),
        ("SHELF_METRICS_TOKEN", "metrics-secret"),
        ("SHELF_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let mut child = Command::new(bin())
        .arg("serve")
        .envs(vars)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shelf");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut out_lines = BufReader::new(stdout).lines();
    let first = out_lines.next().expect("a line").expect("stdout");
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("address")
        .to_string();
    assert!(first.contains("from-env.redb"), "{first}");
    std::thread::spawn(move || for _ in out_lines {});
    let settings = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("settings:"))
        .expect("a settings line");
    for want in [
        "workers 3,",
        "max connections 77 (9 per address),",
        "head 4s idle 5s body 6s, min body rate 2 KiB/s;",
        "max file size 1 kB",
        "owner max bytes 5 KiB",
        "owner max versions 7",
        "cleanup off",
        "scrub 1 MiB/s every 2h",
        "audit kept 3 days",
        "auth failure burst 2",
        "trusted proxies 127.0.0.1",
        "external url https://pk.example",
        "metrics token set",
    ] {
        assert!(settings.contains(want), "{want:?} not in {settings}");
    }
    assert!(!settings.contains("metrics-secret"), "{settings}");
    assert!(db.exists(), "SHELF_DB not used");
    // What a client sees of them.
    let s = Server::adopt(child, addr.parse().expect("addr"), dir, db);
    assert_eq!(s.get("/metrics").status, 401);
    let m = s.req(
        "GET",
        "/metrics",
        &[("Authorization", "Bearer metrics-secret")],
        b"",
    );
    assert_eq!(m.status, 200);
    let admin = format!("token {ADMIN_TOKEN}");
    let me = s.req("GET", "/api/v1/user", &[("Authorization", &admin)], b"");
    let me: serde_json::Value = serde_json::from_slice(&me.body).expect("json");
    assert_eq!(me["html_url"], "https://pk.example/admin", "{me}");
    let q = s.req(
        "GET",
        "/api/v1/admin/quotas/admin",
        &[("Authorization", &admin)],
        b"",
    );
    let q: serde_json::Value = serde_json::from_slice(&q.body).expect("json");
    assert_eq!(q["limits"]["max_file_size"], 1000, "{q}");
    assert_eq!(q["limits"]["max_bytes"], 5120, "{q}");
    assert_eq!(q["limits"]["max_versions"], 7, "{q}");
    for _ in 0..2 {
        let r = s.req(
            "GET",
            "/api/v1/user",
            &[("Authorization", "token wrong")],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let r = s.req(
        "GET",
        "/api/v1/user",
        &[("Authorization", "token wrong")],
        b"",
    );
    assert_eq!(r.status, 429, "a burst of 2: {}", r.text());
}
