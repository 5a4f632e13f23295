//! Air-gap bundles (issue "Running shelf for years"): export → carry → import between two real
//! servers, byte for byte with timestamps; idempotent re-import; conflicts reported, never
//! overwritten; damaged and truncated bundles refused with nothing published and a clean
//! `check`; incremental export against the other side's manifest; offline `--db` mode; and
//! site-admin-only endpoints.

mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("SHELF_TOKEN")
        .env_remove("SHELF_DB")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run shelf cli")
}

fn remote(s: &Server, args: &[&str]) -> Output {
    let url = s.url("");
    let mut all = args.to_vec();
    all.extend(["--server", &url, "--token", ADMIN_TOKEN]);
    run(&all)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `shelf check`, which must find no fault; returns its counts (files, bytes, chunks,
/// pins, contents).
fn check_clean(db: &Path) -> String {
    let out = run(&["check", "--db", db.to_str().expect("utf-8 path")]);
    let text = ok(&out);
    assert!(text.contains("\nok"), "{text}");
    text.split("; checked in")
        .next()
        .unwrap_or_default()
        .to_string()
}

fn manifest_of(s: &Server, owner: &str) -> Value {
    let out = remote(s, &["manifest", "--owner", owner]);
    serde_json::from_str(&ok(&out)).expect("manifest JSON")
}

/// (path, size, sha256, created, package_created, version_created) of every file.
fn entries(m: &Value) -> Vec<Vec<String>> {
    let mut v: Vec<Vec<String>> = m["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            [
                "path",
                "size",
                "sha256",
                "created",
                "package_created",
                "version_created",
            ]
            .iter()
            // The owner's display casing is each side's own.
            .map(|k| f[*k].to_string().to_lowercase())
            .collect()
        })
        .collect();
    v.sort();
    v
}

const LONG_FILE: &str = "a-very-long-file-name-that-does-not-fit-the-hundred-bytes-of-a-ustar-name-field-so-it-needs-pax-0123456789-0123456789.bin";
const UNICODE_VERSION: &str = "Ωμέγα-版本";

struct Sample {
    path: String,
    body: Vec<u8>,
}

fn samples() -> Vec<Sample> {
    let big = pattern(2 * 1024 * 1024 + 12345, 7);
    let uni = UNICODE_VERSION
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect::<String>();
    vec![
        Sample {
            path: "/api/packages/admin/generic/pkg/1.0/empty.bin".into(),
            body: Vec::new(),
        },
        Sample {
            path: "/api/packages/admin/generic/pkg/1.0/big.bin".into(),
            body: big.clone(),
        },
        Sample {
            path: "/api/packages/admin/generic/pkg/2.0/Readme.TXT".into(),
            body: b"hello".to_vec(),
        },
        Sample {
            path: "/api/packages/admin/generic/pkg/2.0/same-as-big.bin".into(),
            body: big,
        },
        Sample {
            path: format!("/api/packages/admin/generic/Other/{uni}/{LONG_FILE}"),
            body: pattern(70_000, 9),
        },
        Sample {
            path: "/api/packages/Acme/generic/tools/3.1/tool.tar.gz".into(),
            body: pattern(5000, 11),
        },
    ]
}

fn publish(s: &Server, samples: &[Sample]) {
    for x in samples {
        let r = s.put(&x.path, &x.body);
        assert_eq!(r.status, 201, "{} {}", x.path, r.text());
    }
}

fn assert_has(s: &Server, samples: &[Sample]) {
    for x in samples {
        let r = s.get(&x.path);
        assert_eq!(r.status, 200, "{}", x.path);
        assert!(r.body == x.body, "{}: bytes differ", x.path);
    }
}

fn version_created(s: &Server, owner: &str, pkg: &str, version: &str) -> String {
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "GET",
        &format!("/api/v1/packages/{owner}/generic/{pkg}/{version}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v["created_at"].as_str().expect("created_at").to_string()
}

#[test]
fn round_trip_between_two_servers() {
    let a = Server::start();
    let b = Server::start();
    ok(&remote(&a, &["org", "create", "Acme"]));
    ok(&remote(&b, &["org", "create", "acme"]));
    let files = samples();
    publish(&a, &files);
    // Imports happen at least a second later: preserved times are then visibly the originals.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let dir = temp_dir("bundles");
    let admin_tar = dir.join("admin.tar");
    let acme_tar = dir.join("acme.tar");
    let out = ok(&remote(
        &a,
        &[
            "export",
            "--owner",
            "admin",
            "-o",
            admin_tar.to_str().expect("p"),
        ],
    ));
    assert!(out.contains("exported 5 files"), "{out}");
    ok(&remote(
        &a,
        &[
            "export",
            "--owner",
            "ACME",
            "-o",
            acme_tar.to_str().expect("p"),
        ],
    ));

    // A plain tar, the manifest first, display casing, long and unicode names intact.
    if let Ok(t) = Command::new("tar").arg("-tf").arg(&admin_tar).output() {
        if t.status.success() {
            let listed = String::from_utf8_lossy(&t.stdout);
            let paths: Vec<&str> = listed.lines().collect();
            assert_eq!(paths[0], "shelf-manifest.json");
            for p in [
                "admin/pkg/1.0/empty.bin",
                "admin/pkg/1.0/big.bin",
                "admin/pkg/2.0/Readme.TXT",
                &format!("admin/Other/{UNICODE_VERSION}/{LONG_FILE}"),
            ] {
                assert!(paths.contains(&p), "{p} not in {paths:?}");
            }
            assert_eq!(paths.len(), 6);
        }
    }

    let out = ok(&remote(&b, &["import", admin_tar.to_str().expect("p")]));
    assert!(out.contains("5 imported"), "{out}");
    let out = ok(&remote(&b, &["import", acme_tar.to_str().expect("p")]));
    assert!(out.contains("1 imported"), "{out}");
    assert_has(&b, &files);
    // Timestamps: every file's, package's and version's, to the second.
    assert_eq!(
        entries(&manifest_of(&a, "admin")),
        entries(&manifest_of(&b, "admin"))
    );
    assert_eq!(
        entries(&manifest_of(&a, "acme")),
        entries(&manifest_of(&b, "acme"))
    );
    assert_eq!(
        version_created(&a, "admin", "pkg", "1.0"),
        version_created(&b, "admin", "pkg", "1.0")
    );

    // Again: nothing to do.
    let out = ok(&remote(&b, &["import", admin_tar.to_str().expect("p")]));
    assert!(
        out.contains("0 imported") && out.contains("5 already present"),
        "{out}"
    );

    // Incremental: B's manifest → export against it → only what is new or different.
    let r = b.put("/api/packages/admin/generic/pkg/3.0/c.txt", b"b-side bytes");
    assert_eq!(r.status, 201);
    let newer = [
        Sample {
            path: "/api/packages/admin/generic/pkg/3.0/c.txt".into(),
            body: b"a-side bytes".to_vec(),
        },
        Sample {
            path: "/api/packages/admin/generic/pkg/3.0/d.txt".into(),
            body: b"new".to_vec(),
        },
    ];
    publish(&a, &newer);
    let held = dir.join("b-manifest.json");
    ok(&remote(
        &b,
        &[
            "manifest",
            "--owner",
            "admin",
            "-o",
            held.to_str().expect("p"),
        ],
    ));
    let inc = dir.join("inc.tar");
    let out = ok(&remote(
        &a,
        &[
            "export",
            "--owner",
            "admin",
            "--against",
            held.to_str().expect("p"),
            "-o",
            inc.to_str().expect("p"),
        ],
    ));
    assert!(out.contains("exported 2 files"), "{out}");
    assert!(out.contains("5 files left out"), "{out}");
    let out = failed(&remote(&b, &["import", inc.to_str().expect("p")]));
    assert!(
        out.contains("1 imported") && out.contains("1 conflict\n"),
        "{out}"
    );
    assert!(out.contains("CONFLICT admin/pkg/3.0/c.txt"), "{out}");
    assert_eq!(
        b.get("/api/packages/admin/generic/pkg/3.0/c.txt").body,
        b"b-side bytes"
    );
    assert_eq!(
        b.get("/api/packages/admin/generic/pkg/3.0/d.txt").body,
        b"new"
    );

    // --since: only files created at or after it.
    let since = dir.join("since.tar");
    let out = ok(&remote(
        &a,
        &[
            "export",
            "--owner",
            "admin",
            "--since",
            "2999-01-01",
            "-o",
            since.to_str().expect("p"),
        ],
    ));
    assert!(out.contains("exported 0 files"), "{out}");

    // Audit entries for imported files.
    let out = ok(&remote(&b, &["audit", "--action", "package.import"]));
    assert!(out.contains("package.import"), "{out}");

    // Only site admins.
    ok(&remote(&a, &["user", "add", "bob"]));
    let out = ok(&remote(&a, &["token", "create", "bob", "--name", "t"]));
    let bob = out.lines().last().expect("token").trim().to_string();
    let auth = format!("token {bob}");
    let h = [("Authorization", auth.as_str())];
    assert_eq!(a.req("GET", "/api/v1/admin/manifest", &h, b"").status, 403);
    assert_eq!(
        a.req("POST", "/api/v1/admin/export", &h, br#"{"owner":"bob"}"#)
            .status,
        403
    );
    let r = a.req("PUT", "/api/v1/admin/import", &h, b"x");
    assert_eq!(r.status, 403);
    assert!(r.text().contains("message"), "JSON error: {}", r.text());
    assert_eq!(a.req("GET", "/api/v1/admin/manifest", &[], b"").status, 401);

    let (mut a, mut b) = (a, b);
    a.stop();
    b.stop();
    // Same files on both sides (c.txt differs but has the same size), the same bytes
    // deduplicated into the same chunks, no pin left.
    let counts = check_clean(&a.db);
    assert!(counts.contains(" 0 pins"), "{counts}");
    assert_eq!(counts, check_clean(&b.db));
    let _ = std::fs::remove_dir_all(dir);
}

fn listing_len(s: &Server, owner: &str) -> usize {
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "GET",
        &format!("/api/v1/packages/{owner}"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    v.as_array().expect("array").len()
}

#[test]
fn damaged_bundles_publish_nothing_offline() {
    let mut a = Server::start();
    let mut b = Server::start();
    let big = pattern(3 * 1024 * 1024 + 5, 21);
    let files = [
        Sample {
            path: "/api/packages/admin/generic/p/1/small.txt".into(),
            body: b"small".to_vec(),
        },
        Sample {
            path: "/api/packages/admin/generic/p/1/big.bin".into(),
            body: big.clone(),
        },
        Sample {
            path: "/api/packages/admin/generic/q/2/z.txt".into(),
            body: b"last".to_vec(),
        },
    ];
    publish(&a, &files);
    a.stop();
    b.stop();
    let dir = temp_dir("bundles-bad");
    let tar = dir.join("a.tar");
    let adb = a.db.to_str().expect("p").to_string();
    let bdb = b.db.to_str().expect("p").to_string();
    let out = ok(&run(&[
        "export",
        "--owner",
        "admin",
        "--db",
        &adb,
        "-o",
        tar.to_str().expect("p"),
    ]));
    assert!(out.contains("exported 3 files"), "{out}");
    let good = std::fs::read(&tar).expect("bundle");

    // One flipped byte inside the big body: refused, nothing published, no pins left.
    let at = good
        .windows(64)
        .position(|w| w == &big[..64])
        .expect("big body in the tar")
        + 2_000_000;
    let mut flipped = good.clone();
    flipped[at] ^= 0x01;
    let bad = dir.join("flipped.tar");
    std::fs::write(&bad, &flipped).expect("write");
    let out = failed(&run(&["import", bad.to_str().expect("p"), "--db", &bdb]));
    assert!(
        out.contains("sha256") && out.contains("nothing imported"),
        "{out}"
    );
    check_clean(&b.db);

    // Truncated (in the big body, and just before the end marker): refused likewise.
    for cut in [at, good.len() - 700] {
        let short = dir.join("short.tar");
        std::fs::write(&short, &good[..cut]).expect("write");
        let out = failed(&run(&["import", short.to_str().expect("p"), "--db", &bdb]));
        assert!(out.contains("nothing imported"), "{out}");
        check_clean(&b.db);
    }

    // A path that disagrees with the manifest (as a hand-made `../` entry would) is refused.
    let evil_at = good
        .windows(b"admin/q/2/z.txt".len())
        .position(|w| w == b"admin/q/2/z.txt")
        .expect("path in the tar");
    let mut evil = good.clone();
    evil[evil_at..evil_at + 6].copy_from_slice(b"../../");
    let evil_path = dir.join("evil.tar");
    std::fs::write(&evil_path, &evil).expect("write");
    let out = failed(&run(&[
        "import",
        evil_path.to_str().expect("p"),
        "--db",
        &bdb,
    ]));
    assert!(out.contains("nothing imported"), "{out}");
    check_clean(&b.db);

    let b = b.restart();
    // Through the server too: refused late (after the big body) and early (a foreign
    // manifest, with megabytes still unsent), the answer reaches the client either way.
    let out = failed(&remote(&b, &["import", bad.to_str().expect("p")]));
    assert!(
        out.contains("sha256") && out.contains("nothing imported"),
        "{out}"
    );
    let mut foreign = good.clone();
    let f_at = foreign
        .windows(b"shelf-bundle".len())
        .position(|w| w == b"shelf-bundle")
        .expect("format in the manifest");
    foreign[f_at] = b'S';
    let foreign_path = dir.join("foreign.tar");
    std::fs::write(&foreign_path, &foreign).expect("write");
    let out = failed(&remote(&b, &["import", foreign_path.to_str().expect("p")]));
    assert!(out.contains("not a shelf bundle manifest"), "{out}");
    assert_eq!(listing_len(&b, "admin"), 0, "nothing was published");
    let mut b = b;
    b.stop();
    check_clean(&b.db);

    // The good bundle, offline.
    let out = ok(&run(&["import", tar.to_str().expect("p"), "--db", &bdb]));
    assert!(out.contains("3 imported"), "{out}");
    check_clean(&b.db);
    let b = b.restart();
    assert_has(&b, &files);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn import_needs_existing_owners() {
    let a = Server::start();
    let b = Server::start();
    ok(&remote(&a, &["org", "create", "Acme"]));
    publish(&a, &samples()[5..]);
    let dir = temp_dir("bundles-owner");
    let tar = dir.join("acme.tar");
    ok(&remote(
        &a,
        &["export", "--owner", "acme", "-o", tar.to_str().expect("p")],
    ));
    let out = failed(&remote(&b, &["import", tar.to_str().expect("p")]));
    assert!(
        out.contains("Acme") && out.contains("do not exist"),
        "{out}"
    );
    // Only site admins import, and they are exempt from --max-file-size as from uploads'
    // limits (as in Gitea).
    let c = Server::start_with(&["--max-file-size", "1000"]);
    ok(&remote(&c, &["org", "create", "Acme"]));
    ok(&remote(&c, &["import", tar.to_str().expect("p")]));
    for mut s in [b, c] {
        s.stop();
        check_clean(&s.db);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Air-gap step 1 on a fresh side: the owner is not there yet. The manifest is empty (so the
/// export carries everything) and the CLI says why, online and offline (issue 17, trap 6:
/// it was a 404 online and a silent empty manifest offline).
#[test]
fn a_manifest_for_an_owner_not_there_yet_is_empty_and_says_so() {
    let mut s = Server::start();
    let out = remote(&s, &["manifest", "--owner", "acme"]);
    let m: Value = serde_json::from_str(&ok(&out)).expect("manifest JSON");
    assert_eq!(m["files"], json!([]), "{m}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("owner acme is not here yet"), "{stderr}");
    // An owner that exists says nothing of the kind.
    let out = remote(&s, &["manifest", "--owner", "admin"]);
    ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not here yet"));
    s.stop();
    let db = s.db.to_str().expect("utf-8 path").to_string();
    let out = run(&["manifest", "--owner", "acme", "--db", &db]);
    let m: Value = serde_json::from_str(&ok(&out)).expect("manifest JSON");
    assert_eq!(m["files"], json!([]), "{m}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner acme is not here yet"));
}

#[test]
fn exporting_an_owner_that_does_not_exist_names_it() {
    let s = Server::start();
    let dir = temp_dir("bundles-missing-owner");
    let out = dir.join("x.tar");
    let out = out.to_str().expect("utf-8 path");
    let text = failed(&remote(&s, &["export", "--owner", "nobody", "-o", out]));
    assert!(
        text.contains("404") && text.contains("owner does not exist [name: nobody]"),
        "{text}"
    );
    let mut s = s;
    s.stop();
    let text = failed(&s.cli(&["export", "--owner", "nobody", "-o", out]));
    assert!(text.contains("nobody"), "{text}");
}
