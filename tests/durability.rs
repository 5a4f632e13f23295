//! The invariants of DESIGN.md §3 against the real binary: nothing partial is visible, racing
//! PUTs, aborted uploads, crashes (kill -9), exact reference counts, dedup, size limits.

mod common;
use common::*;
use std::io::Write;
use std::time::Duration;

const P: &str = "/api/packages/admin/generic";

fn check_db(s: &Server) -> String {
    let out = s.cli(&["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// "N files, B bytes; C chunks, D bytes; K pins; …" → (files, chunks, physical bytes, pins)
fn check_counts(report: &str) -> (u64, u64, u64, u64) {
    let nums: Vec<u64> = report
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[2], nums[3], nums[4])
}

#[test]
fn racing_puts_of_one_file_one_wins_the_rest_409() {
    let s = Server::start();
    for (label, size) in [("small", 3000usize), ("large", 2_500_000)] {
        let path = format!("{P}/race/1/{label}");
        let results: Vec<(u16, Vec<u8>)> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..8u64)
                .map(|i| {
                    let (s, path) = (&s, path.clone());
                    sc.spawn(move || {
                        let data = pattern(size, 100 + i);
                        (s.put(&path, &data).status, data)
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().expect("put thread"))
                .collect()
        });
        let winners: Vec<_> = results.iter().filter(|(st, _)| *st == 201).collect();
        assert_eq!(winners.len(), 1, "{label}: exactly one 201");
        assert!(
            results.iter().all(|(st, _)| *st == 201 || *st == 409),
            "{label}: the rest are 409"
        );
        let got = s.get(&path);
        assert!(
            got.body == winners[0].1,
            "{label}: stored bytes are the winner's"
        );
    }
    let mut s = s;
    s.stop();
    let (files, _, _, pins) = check_counts(&check_db(&s));
    assert_eq!((files, pins), (2, 0), "losers leave nothing behind");
}

#[test]
fn racing_puts_of_different_files_into_one_new_version_all_succeed() {
    let s = Server::start();
    let statuses: Vec<u16> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let s = &s;
                sc.spawn(move || {
                    s.put(&format!("{P}/fresh/9.9/f{i}"), &pattern(1000, i))
                        .status
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("put thread"))
            .collect()
    });
    assert!(statuses.iter().all(|&st| st == 201), "{statuses:?}");
    for i in 0..12 {
        assert!(s.get(&format!("{P}/fresh/9.9/f{i}")).body == pattern(1000, i));
    }
}

/// Sends a PUT head declaring `declared` bytes, then `sent` bytes, then closes the connection.
fn aborted_put(s: &Server, path: &str, declared: usize, sent: usize) {
    let mut c = s.connect();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\nContent-Length: {declared}\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    c.write_all(&pattern(sent, 7)).expect("partial body");
    drop(c);
}

#[test]
fn aborted_upload_leaves_nothing_and_a_retry_succeeds() {
    let s = Server::start();
    for (name, declared, sent) in [("tiny", 1000, 10), ("big", 5_000_000, 2_500_000)] {
        let path = format!("{P}/abort-{name}/1/{name}");
        aborted_put(&s, &path, declared, sent);
        std::thread::sleep(Duration::from_millis(300));
        let r = s.get(&path);
        assert_eq!(r.status, 404, "{name}: nothing visible");
        assert_eq!(
            r.text(),
            "package does not exist",
            "{name}: no version either"
        );
        let data = pattern(declared, 8);
        assert_eq!(
            s.put(&path, &data).status,
            201,
            "{name}: retry is not a 409"
        );
        assert!(s.get(&path).body == data);
    }
    // a chunked upload cut in the middle of a chunk
    let path = format!("{P}/abort/1/chunked");
    let mut c = s.connect();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    c.write_all(b"100000\r\n").expect("chunk size");
    c.write_all(&pattern(2000, 9)).expect("part of the chunk");
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.get(&path).status, 404);
    assert_eq!(s.put(&path, b"retry").status, 201);
    let mut s = s;
    s.stop();
    let (files, _, _, pins) = check_counts(&check_db(&s));
    assert_eq!((files, pins), (3, 0));
}

#[test]
fn kill_9_during_uploads_leaves_a_consistent_store() {
    let s = Server::start();
    let done: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| {
            let path = format!("{P}/crash/1/done{i}");
            let data = pattern(1_500_000 + i, 20 + i as u64);
            assert_eq!(s.put(&path, &data).status, 201);
            (path, data)
        })
        .collect();
    // several uploads in flight, each several chunks in
    let mut open = Vec::new();
    for i in 0..4 {
        let mut c = s.connect();
        let head = format!(
            "PUT {P}/crash/1/partial{i} HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\nContent-Length: 20000000\r\n\r\n"
        );
        c.write_all(head.as_bytes()).expect("head");
        c.write_all(&pattern(3_300_000, 30 + i)).expect("body part");
        open.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut s = s;
    s.kill9();
    drop(open);
    let s = s.restart();
    for (path, data) in &done {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path} was acknowledged before the crash");
        assert!(&r.body == data);
    }
    for i in 0..4 {
        assert_eq!(s.get(&format!("{P}/crash/1/partial{i}")).status, 404);
    }
    // the interrupted names are free again
    assert_eq!(
        s.put(&format!("{P}/crash/1/partial0"), b"again").status,
        201
    );
    let mut s = s;
    s.stop();
    let report = check_db(&s);
    let (files, _, _, pins) = check_counts(&report);
    assert_eq!((files, pins), (4, 0), "{report}");
}

#[test]
fn identical_uploads_are_stored_once() {
    let s = Server::start();
    let data = pattern(5_000_000, 40);
    for i in 0..10 {
        assert_eq!(s.put(&format!("{P}/dedup/{i}/same.bin"), &data).status, 201);
    }
    let mut s = s;
    s.stop();
    let (files, chunks, physical, _) = check_counts(&check_db(&s));
    assert_eq!(files, 10);
    assert_eq!(chunks, 5, "5 MB is five chunks, stored once");
    assert_eq!(physical, 5_000_000);
    // and deleting all but one keeps the bytes intact
    let s = s.restart();
    for i in 1..10 {
        assert_eq!(s.delete(&format!("{P}/dedup/{i}")).status, 204);
    }
    assert!(s.get(&format!("{P}/dedup/0/same.bin")).body == data);
    for i in 0..1 {
        assert_eq!(s.delete(&format!("{P}/dedup/{i}/same.bin")).status, 204);
    }
    let mut s = s;
    s.stop();
    let (files, chunks, physical, pins) = check_counts(&check_db(&s));
    assert_eq!(
        (files, chunks, physical, pins),
        (0, 0, 0, 0),
        "space is reclaimed at once"
    );
}

#[test]
fn max_file_size_is_403_and_stores_nothing() {
    let mut s = Server::start_with(&["--max-file-size", "1MB"]);
    let tok = user_with_token(&mut s, "u", false);
    let s = s.restart();
    let path = "/api/packages/u/generic/limit/1/f".to_string();
    // declared too large: refused before the body, without a 100 Continue
    let mut c = s.connect();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: token {tok}\r\nContent-Length: 1000001\r\nExpect: 100-continue\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    let r = read_response(&mut std::io::BufReader::new(c), false);
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "maximum allowed package type size exceeded");
    // chunked, found too large while counting
    let auth = format!("token {tok}");
    let data = pattern(1_000_001, 50);
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(&data);
    body.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = s.req(
        "PUT",
        &path,
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        &body,
    );
    assert_eq!(r.status, 403);
    assert_eq!(s.get(&path).status, 404);
    // exactly the limit is fine
    assert_eq!(s.put_as(&tok, &path, &data[..1_000_000]).status, 201);
    // site admins are exempt, as in Gitea (CheckSizeQuotaExceeded returns for an admin)
    assert_eq!(s.put(&format!("{P}/limit/1/big"), &data).status, 201);
    let mut s = s;
    s.stop();
    let (files, _, _, pins) = check_counts(&check_db(&s));
    assert_eq!((files, pins), (2, 0));
}

#[test]
fn expect_100_continue_refusals_come_before_the_body() {
    let s = Server::start();
    assert_eq!(s.put(&format!("{P}/exp/1/f"), b"x").status, 201);
    for (auth, path, want) in [
        (String::new(), format!("{P}/exp/1/g"), 401),
        (
            format!("Authorization: token {ADMIN_TOKEN}\r\n"),
            format!("{P}/exp/1/F"),
            409,
        ),
    ] {
        let mut c = s.connect();
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n"
        );
        c.write_all(head.as_bytes()).expect("head");
        let r = read_response(&mut std::io::BufReader::new(c), false);
        assert_eq!(r.status, want, "no 100 Continue, the refusal at once");
    }
    // an accepted one gets 100 Continue first, then 201
    let mut c = s.connect();
    let head = format!(
        "PUT {P}/exp/1/ok HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    );
    c.write_all(head.as_bytes()).expect("head");
    let mut rd = std::io::BufReader::new(c.try_clone().expect("clone"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut rd, &mut line).expect("interim");
    assert!(line.starts_with("HTTP/1.1 100"), "{line}");
    let mut blank = String::new();
    std::io::BufRead::read_line(&mut rd, &mut blank).expect("blank");
    c.write_all(b"abc").expect("body");
    assert_eq!(read_response(&mut rd, false).status, 201);
}

#[test]
fn sigterm_closes_the_database_cleanly() {
    let mut s = Server::start();
    assert_eq!(
        s.put(&format!("{P}/term/1/f"), &pattern(2_000_000, 60))
            .status,
        201
    );
    s.stop();
    assert!(s
        .child
        .try_wait()
        .expect("wait")
        .is_some_and(|st| st.success()));
    let s = s.restart();
    assert!(s.get(&format!("{P}/term/1/f")).body == pattern(2_000_000, 60));
}
