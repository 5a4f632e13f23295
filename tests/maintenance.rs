//! Running shelf for years: online and offline backups, the integrity check and its repair,
//! the background scrub, stats and compaction — against the real binary.

mod common;

use common::*;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn remote(s: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--server")
        .arg(s.url(""))
        .env("SHELF_TOKEN", token)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run shelf cli")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected failure\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn path(pkg: &str, ver: &str, file: &str) -> String {
    format!("/api/packages/admin/generic/{pkg}/{ver}/{file}")
}

fn json(s: &Server, path: &str) -> serde_json::Value {
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req("GET", path, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("json")
}

/// An upload that got its 201: path, bytes, when.
type Acked = (String, Vec<u8>, Instant);

#[test]
fn a_backup_during_uploads_restores_everything_acknowledged_before_it() {
    let s = Server::start();
    // Something to begin with: a multi-chunk file and duplicates.
    let big = pattern(3 * 1_044_480 + 17, 1);
    assert_eq!(s.put(&path("base", "1", "big.bin"), &big).status, 201);
    assert_eq!(s.put(&path("base", "1", "same.bin"), &big).status, 201);
    assert_eq!(s.put(&path("base", "1", "empty"), b"").status, 201);

    // A stream of uploads that runs before, during and after the backup.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), s.addr);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = pattern(if i % 5 == 0 { 1_500_000 } else { 3000 }, 100 + i);
                let p = path("stream", &format!("v{i}"), "f.bin");
                let mut c = std::net::TcpStream::connect(addr).expect("connect");
                let auth = format!("token {ADMIN_TOKEN}");
                send(&mut c, "PUT", &p, &[("Authorization", &auth)], &body);
                let r = read_response(&mut BufReader::new(c), false);
                assert_eq!(r.status, 201, "{}", r.text());
                acked.lock().expect("lock").push((p, body, Instant::now()));
                i += 1;
            }
        })
    };
    while acked.lock().expect("lock").len() < 10 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = s.dir.join("online.redb");
    let began = Instant::now();
    let report = ok(remote(
        &s,
        ADMIN_TOKEN,
        &["backup", out.to_str().expect("utf-8")],
    ));
    assert!(report.contains("verified"), "{report}");
    // Keep uploading a little after the backup, then stop.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    uploader.join().expect("uploader");
    let acked = acked.lock().expect("lock").clone();
    let before: Vec<_> = acked.iter().filter(|(_, _, t)| *t < began).collect();
    assert!(before.len() >= 10);

    // The backup is a database that check passes and a server serves.
    ok(cli(&out, &["check"]));
    let copy = Server::start_on(temp_dir("restored"), out.clone(), &[]);
    assert_eq!(copy.get(&path("base", "1", "big.bin")).body, big);
    assert_eq!(copy.get(&path("base", "1", "same.bin")).body, big);
    assert_eq!(copy.get(&path("base", "1", "empty")).status, 200);
    for (p, body, _) in &before {
        let r = copy.get(p);
        assert_eq!(r.status, 200, "{p} acknowledged before the backup began");
        assert!(r.body == *body, "{p}: bytes differ");
    }
    // Anything the copy holds beyond that is whole, never partial.
    for (p, body, _) in &acked {
        let r = copy.get(p);
        assert!(r.status == 404 || r.body == *body, "{p}");
    }
    // The admin token works on the copy: accounts came along.
    assert_eq!(json(&copy, "/api/v1/user")["login"], "admin");
}

#[test]
fn offline_backup_and_refusals() {
    let mut s = Server::start();
    let data = pattern(2_500_000, 7);
    assert_eq!(s.put(&path("p", "1", "a.bin"), &data).status, 201);
    let user = user_with_token(&mut s, "alice", false);
    // The offline backup of a stopped server.
    let out = s.dir.join("offline.redb");
    let report = ok(s.cli(&["backup", out.to_str().expect("utf-8")]));
    assert!(report.contains("1 file,"), "{report}");
    assert!(report.contains("verified"), "{report}");
    // Never over an existing file.
    let again = fails(s.cli(&["backup", out.to_str().expect("utf-8")]));
    assert!(again.contains("exists"), "{again}");
    // Paced: 2.5 MB at 20 MB/s is still a whole, verified backup.
    let paced = s.dir.join("paced.redb");
    let report = ok(s.cli(&[
        "backup",
        paced.to_str().expect("utf-8"),
        "--limit-rate",
        "20MB",
    ]));
    assert!(report.contains("verified"), "{report}");
    let bad = fails(s.cli(&["backup", "x.redb", "--limit-rate", "fast"]));
    assert!(bad.contains("--limit-rate"), "{bad}");
    let s = s.restart();
    let copy = Server::start_on(temp_dir("offline-copy"), out, &[]);
    assert_eq!(copy.get(&path("p", "1", "a.bin")).body, data);

    // Only a site admin with write:admin may take a backup.
    let r = s.req(
        "GET",
        "/api/v1/admin/backup",
        &[("Authorization", &format!("token {user}"))],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(s.get("/api/v1/admin/backup").status, 401);
    let denied = fails(remote(
        &s,
        &user,
        &["backup", s.dir.join("x.redb").to_str().expect("utf-8")],
    ));
    assert!(denied.contains("403"), "{denied}");
    // A backup into a directory that does not exist says which, before the server is asked
    // (it streamed, and audited as done, a backup that was never written).
    let nowhere = fails(remote(
        &s,
        ADMIN_TOKEN,
        &["backup", "/nonexistent-shelf-dir/x.redb"],
    ));
    assert!(
        nowhere.contains("the directory /nonexistent-shelf-dir does not exist"),
        "{nowhere}"
    );
    let audit = s.req(
        "GET",
        "/api/v1/admin/audit?action=admin.backup",
        &[("Authorization", &format!("token {ADMIN_TOKEN}"))],
        b"",
    );
    assert_eq!(audit.text(), "[]", "no backup was taken");
    // A backup file that cannot be created otherwise says so (not that the pipe closed).
    let unwritable = s.dir.join("not-a-dir");
    std::fs::write(&unwritable, b"a file").expect("write");
    let inside = unwritable.join("x.redb");
    let blocked = fails(remote(
        &s,
        ADMIN_TOKEN,
        &["backup", inside.to_str().expect("utf-8")],
    ));
    assert!(blocked.contains("does not exist"), "{blocked}");
    assert!(!s.dir.join("x.redb").exists());
    assert!(!s.dir.join("x.redb.partial").exists());
}

#[test]
fn backup_streams_chunked_and_to_http10_clients() {
    let s = Server::start();
    assert_eq!(s.put(&path("p", "1", "a"), b"hello").status, 201);
    let auth = format!("token {ADMIN_TOKEN}");
    let r = s.req(
        "GET",
        "/api/v1/admin/backup",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body.starts_with(b"SHELF-BACKUP\n"));
    // HTTP/1.0: no chunked coding; the body ends with the connection.
    let mut c = s.connect();
    use std::io::Write;
    c.write_all(
        format!("GET /api/v1/admin/backup HTTP/1.0\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .expect("send");
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A whole stream (the audit entry of the first backup makes it differ): magic to trailer.
    let body = &raw[split + 4..];
    assert!(body.starts_with(b"SHELF-BACKUP\n"));
    assert_eq!(body[body.len() - 41], 0xFF, "ends with the trailer");
    assert_eq!(r.body[r.body.len() - 41], 0xFF, "ends with the trailer");
}

/// Offset of `needle` in the file at `p`.
fn find_in_file(p: &Path, needle: &[u8]) -> Option<usize> {
    let bytes = std::fs::read(p).expect("read db");
    bytes.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn check_finds_a_flipped_byte_in_a_copy_and_repair_keeps_bytes() {
    let mut s = Server::start();
    let marker = b"SHELF-CHECK-MARKER-0123456789".repeat(40);
    assert_eq!(s.put(&path("p", "1", "marked.txt"), &marker).status, 201);
    assert_eq!(
        s.put(&path("p", "1", "other.bin"), &pattern(100_000, 3))
            .status,
        201
    );
    ok(remote(&s, ADMIN_TOKEN, &["check"]));
    s.stop();
    ok(s.cli(&["check"]));
    let copy = s.dir.join("copy.redb");
    std::fs::copy(&s.db, &copy).expect("copy a stopped database");
    let at = find_in_file(&copy, &marker[..64]).expect("the chunk's bytes are in the file");
    let mut bytes = std::fs::read(&copy).expect("read");
    bytes[at + 10] ^= 0x20;
    std::fs::write(&copy, &bytes).expect("write");
    let report = fails(cli(&copy, &["check"]));
    assert!(report.contains("FAULT"), "{report}");
    assert!(report.contains("do not hash"), "{report}");
    // Repair cannot invent the bytes: it says which file is damaged and still fails.
    let report = fails(cli(&copy, &["check", "--repair"]));
    assert!(report.contains("UNREPAIRABLE"), "{report}");
    assert!(report.contains("admin/p/1/marked.txt"), "{report}");
    // --repair needs the file.
    let s = s.restart();
    let msg = fails(remote(&s, ADMIN_TOKEN, &["check", "--repair"]));
    assert!(msg.contains("--db"), "{msg}");
}

#[test]
fn the_scrub_finds_damage_on_a_running_server() {
    let mut s = Server::start();
    let marker = b"SCRUB-ME-PLEASE-abcdefghijklmnopqrstuvwxyz".repeat(30);
    assert_eq!(s.put(&path("p", "1", "m.txt"), &marker).status, 201);
    s.stop();
    let at = find_in_file(&s.db, &marker[..64]).expect("bytes in the file");
    let mut bytes = std::fs::read(&s.db).expect("read");
    bytes[at + 5] ^= 0x01;
    std::fs::write(&s.db, &bytes).expect("write");
    let s = Server::start_on(
        s.dir.clone(),
        s.db.clone(),
        &["--scrub-rate", "1GB", "--scrub-interval", "1s"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = json(&s, "/api/v1/admin/stats");
        let scrub = &v["scrub"];
        if scrub["passes_completed"].as_u64().unwrap_or(0) >= 1 {
            assert!(
                scrub["damaged_chunks_found"].as_u64().unwrap_or(0) >= 1,
                "{v:#}"
            );
            assert_eq!(
                scrub["recent_damaged_chunks"].as_array().map(Vec::len),
                Some(1)
            );
            break;
        }
        assert!(Instant::now() < deadline, "no scrub pass in 30 s: {v:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn stats_and_compact() {
    let mut s = Server::start();
    let big = pattern(4 * 1_044_480, 9);
    // What will be deleted goes in first, so its pages are not at the file's end (redb gives
    // a free tail back by itself at commit; free pages before live ones need compaction).
    for v in 0..5 {
        let body = pattern(3 * 1_044_480, 20 + v);
        assert_eq!(
            s.put(&path("gone", &v.to_string(), "x.bin"), &body).status,
            201
        );
    }
    for f in ["a.bin", "b.bin", "c.bin"] {
        assert_eq!(s.put(&path("dup", "1", f), &big).status, 201);
    }
    let out = ok(remote(&s, ADMIN_TOKEN, &["stats", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["files"], 8);
    assert_eq!(v["versions"], 6);
    assert_eq!(v["packages"], 2);
    assert_eq!(v["logical_bytes"], 3 * 4 * 1_044_480 + 5 * 3 * 1_044_480);
    assert_eq!(v["physical_bytes"], 4 * 1_044_480 + 5 * 3 * 1_044_480);
    let ratio = v["dedup_ratio"].as_f64().expect("ratio");
    assert!((ratio - 27.0 / 19.0).abs() < 1e-9, "{ratio}");
    assert_eq!(v["owners"][0]["owner"], "admin");
    assert_eq!(v["owners"][0]["files"], 8);
    assert!(
        v["file_bytes"].as_u64().expect("size") >= v["allocated_bytes"].as_u64().expect("alloc")
    );
    for ver in 0..5 {
        let auth = format!("token {ADMIN_TOKEN}");
        let r = s.req(
            "DELETE",
            &format!("/api/packages/admin/generic/gone/{ver}"),
            &[("Authorization", &auth)],
            b"",
        );
        assert_eq!(r.status, 204);
    }
    s.stop();
    let table = ok(s.cli(&["stats"]));
    assert!(table.contains("dedup ratio 3.00"), "{table}");
    let before = std::fs::metadata(&s.db).expect("size").len();
    let report = ok(s.cli(&["compact"]));
    let after = std::fs::metadata(&s.db).expect("size").len();
    assert!(after < before, "{report}: {before} → {after}");
    assert!(
        after < 4 * 1_044_480 + (3 << 20),
        "4 MiB of live chunks and metadata remain: {before} → {after}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(s.cli(&["stats", "--json"]))).expect("json");
    assert!(
        v["free_bytes"].as_u64().expect("free") < 1 << 20,
        "compacted: {v:#}"
    );
    ok(s.cli(&["check"]));
    let s = s.restart();
    assert_eq!(s.get(&path("dup", "1", "b.bin")).body, big);
    // compact refuses a database in use.
    let busy = fails(s.cli(&["compact"]));
    assert!(busy.contains("in use"), "{busy}");
}

#[test]
fn a_stalled_backup_download_does_not_keep_the_database_open_at_shutdown() {
    let mut s = Server::start();
    for i in 0..4 {
        let body = pattern(8 * 1_044_480, 60 + i);
        assert_eq!(
            s.put(&path("big", "1", &format!("{i}.bin")), &body).status,
            201
        );
    }
    // A client that asks for a backup and then reads nothing.
    let mut c = s.connect();
    send(
        &mut c,
        "GET",
        "/api/v1/admin/backup",
        &[("Authorization", &format!("token {ADMIN_TOKEN}"))],
        b"",
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(s.child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(st) = s.child.try_wait().expect("wait") {
            break st;
        }
        assert!(Instant::now() < deadline, "shelf did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Before: "the store is still in use at close", a non-zero exit, no clean close.
    assert!(status.success(), "{status:?}");
    drop(c);
    ok(s.cli(&["check"]));
}

/// The long commands draw progress on stderr only when it is a terminal: piped, stderr stays
/// empty and stdout has the summary; on a terminal (`script` gives the command a pty) the bar
/// is drawn, then cleared before the same summary.
#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let mut s = Server::start();
    assert_eq!(
        s.put("/api/packages/admin/generic/p/1/f", &pattern(300_000, 3))
            .status,
        201
    );
    s.stop();
    let db = s.db.to_str().expect("utf-8 path").to_string();
    let dir = temp_dir("progress");
    let out = dir.join("b.redb");
    let out = out.to_str().expect("utf-8 path");
    for args in [vec!["check"], vec!["backup", out], vec!["compact"]] {
        let r = s.cli(&args);
        let stdout = String::from_utf8_lossy(&r.stdout).into_owned();
        assert!(r.status.success(), "{args:?}: {stdout}");
        assert!(!stdout.is_empty(), "{args:?}: no summary");
        assert!(
            r.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    // `script` is util-linux's; a machine without it cannot show a terminal here.
    let line = format!("{} check --db {db}", bin());
    let Ok(tty) = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("RUST_LOG", "warn")
        .output()
    else {
        eprintln!("SKIPPED: no `script` to run the command on a terminal");
        return;
    };
    let text = String::from_utf8_lossy(&tty.stdout).into_owned();
    assert!(tty.status.success(), "{text}");
    assert!(text.contains("checking files"), "no bar drawn: {text:?}");
    let summary = text.rsplit("\u{1b}[2K").next().unwrap_or("");
    assert!(summary.contains("1 file, 300000 bytes"), "{summary:?}");
    assert!(summary.trim_end().ends_with("ok"), "{summary:?}");
}
