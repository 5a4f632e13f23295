//! DESIGN.md §5 rule by rule against the real binary, over raw TCP: truncated and malformed
//! bodies, smuggling attempts, header floods, slow clients, `Expect: 100-continue`, keep-alive and
//! pipelining, the connection limit, a bounded fuzz of request heads and chunked framing, and
//! interrupted or outlived downloads.
//!
//! Where a test must know that the server has finished with a connection before it looks at the
//! store, it either reads the server's answer to a half-closed request (the server sees the same
//! FIN as from a full close) or runs the server with one worker, so the next request can only be
//! served once that worker has let go of the previous connection. No test sleeps for a guessed
//! time to let the server finish something; sleeps only pace a deliberately slow client, and
//! waits for the server are polls with a deadline.

mod common;
use common::*;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

const P: &str = "/api/packages/admin/generic";

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

fn auth() -> String {
    format!("Authorization: token {ADMIN_TOKEN}\r\n")
}

/// A PUT head for `path` with `extra` header lines (each ending in CRLF).
fn put_head(path: &str, extra: &str) -> String {
    format!("PUT {path} HTTP/1.1\r\nHost: t\r\n{}{extra}\r\n", auth())
}

/// `data` as one chunk plus the last chunk.
fn chunked(data: &[u8]) -> Vec<u8> {
    let mut b = format!("{:x}\r\n", data.len()).into_bytes();
    b.extend_from_slice(data);
    b.extend_from_slice(b"\r\n0\r\n\r\n");
    b
}

/// Connects and writes `bytes` in one write.
fn open_with(s: &Server, bytes: &[u8]) -> TcpStream {
    let mut c = s.connect();
    c.write_all(bytes).expect("write request");
    c
}

/// Reads until EOF (or `limit` passes, which fails the test): everything the server still sent.
/// How long a test waits for something the server does promptly (a close, an answer) before
/// calling it a hang: generous, because tests share a small machine and run in parallel. What
/// a test proves is that it happens, or that it happens before a much longer timeout would.
const PROMPTLY: Duration = Duration::from_secs(20);

fn read_until_eof(r: &mut impl Read, limit: Duration, what: &str) -> Vec<u8> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: the server did not close the connection within {limit:?}"
                );
            }
            Err(e) => panic!("{what}: reading until the server closes: {e}"),
        }
    }
}

/// One response, then the server must close the connection with nothing after it.
fn response_then_eof(c: TcpStream, what: &str) -> Resp {
    let mut rd = BufReader::new(c);
    let r = read_one(&mut rd, what);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "{what}: the server announces the close ({r:?})"
    );
    let rest = read_until_eof(&mut rd, PROMPTLY, what);
    assert!(
        rest.is_empty(),
        "{what}: nothing may follow the response, got {:?}",
        String::from_utf8_lossy(&rest)
    );
    r
}

/// One response (within 5 s); leaves a 200 ms read timeout for polling the close after it.
fn read_one(rd: &mut BufReader<TcpStream>, what: &str) -> Resp {
    rd.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let r = try_read_response(rd, false).unwrap_or_else(|e| panic!("{what}: no response: {e}"));
    rd.get_ref()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    r
}

/// True while the server keeps `c` open without having sent anything on it.
fn still_open_and_silent(c: &TcpStream) -> bool {
    c.set_nonblocking(true).expect("nonblocking");
    let r = c.peek(&mut [0u8; 1]);
    c.set_nonblocking(false).expect("blocking");
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Stops the server cleanly and runs `shelf check`: (files, chunks, pins); fails on any fault.
fn stop_and_check(s: &mut Server) -> (u64, u64, u64) {
    s.stop();
    let out = s.cli(&["check"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "check failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "N files, B bytes; C chunks, D bytes; K pins; ..."
    let nums: Vec<u64> = report
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[0], nums[2], nums[4])
}

// ---------------------------------------------------------------------------------------------
// 1. truncated chunked uploads
// ---------------------------------------------------------------------------------------------

#[test]
fn chunked_upload_cut_anywhere_stores_nothing_and_the_retry_is_201() {
    // One worker: the GET after each cut is served only once the worker is done with the cut
    // upload, so "404" cannot be a race with a late publish.
    let mut s = Server::start_with(&["--workers", "1"]);
    let data = pattern(5000, 1);
    let full = chunked(&data);
    let size_line = format!("{:x}\r\n", data.len()).len();
    let cuts: [(&str, usize); 6] = [
        ("inside the first chunk-size line", 2),
        ("after the chunk-size line", size_line),
        ("in the middle of the chunk data", size_line + 2000),
        ("after the data, before its CRLF", size_line + data.len()),
        ("before the last chunk", size_line + data.len() + 2),
        (
            "after the last chunk, before the final CRLF",
            full.len() - 2,
        ),
    ];
    for (i, (label, at)) in cuts.iter().enumerate() {
        let path = format!("{P}/cut/{i}/f");
        let mut req = put_head(&path, "Transfer-Encoding: chunked\r\n").into_bytes();
        req.extend_from_slice(&full[..*at]);
        drop(open_with(&s, &req)); // the client goes away
        let r = s.get(&path);
        assert_eq!(r.status, 404, "cut {label}: nothing is visible");
        assert_eq!(
            r.text(),
            "package does not exist",
            "cut {label}: no version"
        );
        assert_eq!(s.put(&path, &data).status, 201, "cut {label}: retry");
        assert!(s.get(&path).body == data, "cut {label}: retried bytes");
    }
    // A multi-chunk upload (several MB, so store chunks were already written) cut in its middle
    let big = pattern(3_000_000, 2);
    let path = format!("{P}/cut/1/big");
    let mut req = put_head(&path, "Transfer-Encoding: chunked\r\n").into_bytes();
    for part in big[..2_500_000].chunks(300_000) {
        req.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        req.extend_from_slice(part);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"100000\r\n");
    req.extend_from_slice(&big[..1000]);
    drop(open_with(&s, &req));
    assert_eq!(s.get(&path).status, 404);
    assert_eq!(s.put(&path, &big).status, 201);
    assert!(s.get(&path).body == big);
    let (files, _, pins) = stop_and_check(&mut s);
    assert_eq!(
        (files, pins),
        (7, 0),
        "the cut uploads left no file and no pin"
    );
}

#[test]
fn bad_chunked_framing_is_400_closes_and_stores_nothing() {
    let mut s = Server::start();
    let cases: [(&str, &[u8]); 8] = [
        ("bad hex", b"zz\r\nabc\r\n0\r\n\r\n"),
        ("sign before size", b"+3\r\nabc\r\n0\r\n\r\n"),
        ("no CRLF after data", b"3\r\nabcX\r\n0\r\n\r\n"),
        ("bare LF after size", b"3\nabc\r\n0\r\n\r\n"),
        ("data longer than size", b"3\r\nabcdef\r\n0\r\n\r\n"),
        (
            "size overflows u64",
            b"10000000000000000000003\r\nabc\r\n0\r\n\r\n",
        ),
        ("space inside size", b"0 3\r\nabc\r\n0\r\n\r\n"),
        (
            "malformed trailer",
            b"3\r\nabc\r\n0\r\nno colon here\r\n\r\n",
        ),
    ];
    for (i, (label, body)) in cases.iter().enumerate() {
        let path = format!("{P}/badchunk/1/f{i}");
        let mut req = put_head(&path, "Transfer-Encoding: chunked\r\n").into_bytes();
        req.extend_from_slice(body);
        let c = open_with(&s, &req);
        c.shutdown(Shutdown::Write).expect("half-close"); // so a short stream ends at once
        let r = response_then_eof(c, label);
        assert_eq!(r.status, 400, "{label}: {}", r.text());
        assert_eq!(s.get(&path).status, 404, "{label}: nothing stored");
    }
    // the same framing, valid, is accepted (the cases above fail for their one defect)
    let path = format!("{P}/badchunk/1/ok");
    let mut req = put_head(&path, "Transfer-Encoding: chunked\r\n").into_bytes();
    req.extend_from_slice(b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: v\r\n\r\n");
    let mut rd = BufReader::new(open_with(&s, &req));
    assert_eq!(read_response(&mut rd, false).status, 201);
    assert_eq!(s.get(&path).body, b"abc");
    let (files, _, pins) = stop_and_check(&mut s);
    assert_eq!((files, pins), (1, 0));
}

// ---------------------------------------------------------------------------------------------
// 2. a huge declared Content-Length
// ---------------------------------------------------------------------------------------------

#[test]
fn huge_declared_length_allocates_nothing_and_the_server_carries_on() {
    let mut s = Server::start();
    let pid = s.child.id();
    assert_eq!(s.put(&format!("{P}/huge/1/warm"), b"warm").status, 201);
    let before = rss_kib(pid);
    let path = format!("{P}/huge/1/f");
    let head = put_head(&path, "Content-Length: 100000000000\r\n");
    let mut c = open_with(&s, head.as_bytes());
    // a few MB of the promised 100 GB: the server is now streaming them into the store
    c.write_all(&pattern(2_500_000, 3)).expect("body part");
    // meanwhile others are served
    let other = pattern(10_000, 4);
    assert_eq!(s.put(&format!("{P}/huge/1/other"), &other).status, 201);
    assert!(s.get(&format!("{P}/huge/1/other")).body == other);
    let during = rss_kib(pid);
    // the client gives up
    c.shutdown(Shutdown::Write).expect("half-close");
    let r = response_then_eof(c, "truncated 100 GB upload");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("truncated"), "{}", r.text());
    let after = rss_kib(pid);
    for (when, rss) in [("during", during), ("after", after)] {
        assert!(
            rss < before + 50 * 1024,
            "RSS {when} the upload: {rss} KiB, before: {before} KiB"
        );
    }
    assert_eq!(s.get(&path).status, 404);
    assert_eq!(s.put(&path, b"small").status, 201, "the name is free");
    let (files, _, pins) = stop_and_check(&mut s);
    assert_eq!((files, pins), (3, 0));
}

#[test]
fn huge_declared_length_over_the_limit_is_403_before_the_body() {
    let mut s = Server::start_with(&["--max-file-size", "1GB"]);
    // site admins are exempt from the limit (as in Gitea): a plain user uploads
    let tok = user_with_token(&mut s, "u", false);
    let s = s.restart();
    let pid = s.child.id();
    let before = rss_kib(pid);
    let path = "/api/packages/u/generic/huge/1/f";
    // no Expect: the client starts sending its body right away
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: token {tok}\r\nContent-Length: 100000000000\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(&pattern(100_000, 5));
    let r = response_then_eof(open_with(&s, &req), "over the limit");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "maximum allowed package type size exceeded");
    assert!(rss_kib(pid) < before + 50 * 1024);
    assert_eq!(s.get(path).status, 404);
    assert_eq!(
        s.put_as(&tok, path, b"fits").status,
        201,
        "the server carries on"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. ambiguous framing and smuggling
// ---------------------------------------------------------------------------------------------

#[test]
fn ambiguous_or_malformed_framing_is_400_closes_and_never_runs_a_smuggled_request() {
    let s = Server::start();
    let cases: [(&str, &str); 13] = [
        ("garbage length", "Content-Length: abc\r\n"),
        ("negative length", "Content-Length: -1\r\n"),
        ("signed length", "Content-Length: +5\r\n"),
        ("hex length", "Content-Length: 0x10\r\n"),
        (
            "length overflowing u64",
            "Content-Length: 18446744073709551616\r\n",
        ),
        ("two values in one field", "Content-Length: 5, 6\r\n"),
        ("two equal values in one field", "Content-Length: 5, 5\r\n"),
        (
            "two different fields",
            "Content-Length: 5\r\nContent-Length: 6\r\n",
        ),
        (
            "two equal fields (one value only, §5)",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
        ),
        (
            "length and chunked",
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "chunked and length",
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
        ),
        ("empty length", "Content-Length: \r\n"),
        ("space before the colon", "Content-Length : 5\r\n"),
    ];
    for (i, (label, framing)) in cases.iter().enumerate() {
        let hidden = format!("{P}/smuggled/{i}/hidden");
        // whatever the framing header is taken to mean, the body carries a whole second request;
        // "0\r\n\r\n" is both an empty chunked body and exactly 5 bytes, so a server that took
        // the first (or any) of the lengths, or the chunked framing, would then run the hidden PUT
        let smuggled = format!("{}abc", put_head(&hidden, "Content-Length: 3\r\n"));
        let req = format!(
            "{}0\r\n\r\n{smuggled}",
            put_head(&format!("{P}/smuggled/{i}/outer"), framing)
        );
        let r = response_then_eof(open_with(&s, req.as_bytes()), label);
        assert_eq!(r.status, 400, "{label}: {}", r.text());
        assert_eq!(s.get(&hidden).status, 404, "{label}: smuggled PUT not run");
        assert_eq!(
            s.get(&format!("{P}/smuggled/{i}/outer")).status,
            404,
            "{label}: rejected PUT not run"
        );
    }
    // transfer codings other than chunked alone are not supported: refused, also closed
    for (i, te) in ["gzip, chunked", "chunked, chunked", "identity"]
        .iter()
        .enumerate()
    {
        let hidden = format!("{P}/smuggled/te{i}/hidden");
        let req = format!(
            "{}0\r\n\r\n{}abc",
            put_head(
                &format!("{P}/smuggled/te{i}/outer"),
                &format!("Transfer-Encoding: {te}\r\n")
            ),
            put_head(&hidden, "Content-Length: 3\r\n")
        );
        let r = response_then_eof(open_with(&s, req.as_bytes()), te);
        assert!(matches!(r.status, 400 | 501), "{te}: {}", r.status);
        assert_eq!(s.get(&hidden).status, 404, "{te}: smuggled PUT not run");
    }
    // chunked in an HTTP/1.0 request (RFC 9112 §6.1: the framing is faulty)
    let hidden = format!("{P}/smuggled/h10/hidden");
    let req = format!(
        "PUT {P}/smuggled/h10/outer HTTP/1.0\r\nHost: t\r\n{}Transfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\n{}abc",
        auth(),
        put_head(&hidden, "Content-Length: 3\r\n")
    );
    let r = response_then_eof(open_with(&s, req.as_bytes()), "HTTP/1.0 chunked");
    assert_eq!(r.status, 400);
    assert_eq!(
        s.get(&hidden).status,
        404,
        "HTTP/1.0 chunked: smuggled PUT not run"
    );
}

#[test]
fn a_bad_request_line_is_refused_and_closes_the_connection() {
    let s = Server::start();
    let cases: [(&str, &[u8], u16); 7] = [
        ("double space", b"GET  /x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        ("extra token", b"GET /x HTTP/1.1 x\r\nHost: t\r\n\r\n", 400),
        ("no version", b"GET /x\r\nHost: t\r\n\r\n", 400),
        ("bad method", b"G@T /x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (
            "control byte in target",
            b"GET /x\x01y HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        (
            "TLS handshake",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            400,
        ),
        ("HTTP/2.0", b"GET /x HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    ];
    for (i, (label, line, want)) in cases.iter().enumerate() {
        let hidden = format!("{P}/badline/{i}/hidden");
        let mut req = line.to_vec();
        req.extend_from_slice(
            format!("{}abc", put_head(&hidden, "Content-Length: 3\r\n")).as_bytes(),
        );
        let r = response_then_eof(open_with(&s, &req), label);
        assert_eq!(r.status, *want, "{label}");
        assert_eq!(
            s.get(&hidden).status,
            404,
            "{label}: the request after it is not run"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. header limits
// ---------------------------------------------------------------------------------------------

#[test]
fn oversized_head_and_header_flood_get_431_and_the_server_carries_on() {
    let s = Server::start();
    let data = pattern(1000, 6);
    let path = format!("{P}/hdr/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    let get = |extra: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n");
    let big = format!("X-Big: {}\r\n", "a".repeat(100 * 1024));
    let flood: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let long_target = format!(
        "GET {P}/hdr/1/{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "x".repeat(100 * 1024)
    );
    for (label, req) in [
        ("100 KiB header", get(&big)),
        ("200 headers", get(&flood)),
        ("many small headers, 100 KiB", get(&flood.repeat(40))),
    ] {
        let r = response_then_eof(open_with(&s, req.as_bytes()), label);
        assert_eq!(r.status, 431, "{label}");
    }
    let r = response_then_eof(open_with(&s, long_target.as_bytes()), "long target");
    assert!(
        matches!(r.status, 414 | 431),
        "100 KiB target: {}",
        r.status
    );
    // below the limits a request is served
    let near: String = (0..90).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_ok = format!("X-Big: {}\r\n", "a".repeat(60 * 1024));
    for (label, req) in [("90 headers", get(&near)), ("60 KiB header", get(&big_ok))] {
        let mut rd = BufReader::new(open_with(&s, req.as_bytes()));
        let r = read_response(&mut rd, false);
        assert_eq!(r.status, 200, "{label}");
        assert!(r.body == data, "{label}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. slow clients
// ---------------------------------------------------------------------------------------------

#[test]
fn stalled_head_and_stalled_body_are_cut_off_while_others_are_served() {
    let mut s = Server::start_with(&[
        "--workers",
        "3",
        "--head-timeout",
        "0.5",
        "--body-timeout",
        "0.5",
    ]);
    let path = format!("{P}/stall/1/body");
    let t0 = Instant::now();
    let head_staller = open_with(
        &s,
        format!("PUT {path} HTTP/1.1\r\nHost: t\r\nAuth").as_bytes(),
    );
    let mut req = put_head(&path, "Content-Length: 1000\r\n").into_bytes();
    req.extend_from_slice(&pattern(100, 7));
    let body_staller = open_with(&s, &req);
    // another client is served in the meantime
    let other = pattern(50_000, 8);
    assert_eq!(s.put(&format!("{P}/stall/1/other"), &other).status, 201);
    assert!(s.get(&format!("{P}/stall/1/other")).body == other);
    assert!(
        still_open_and_silent(&head_staller) && still_open_and_silent(&body_staller),
        "the other client was served while both stallers were still being waited for ({:?})",
        t0.elapsed()
    );
    // the stalled head: closed without an answer once the head timeout passed
    let mut h = head_staller;
    h.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let got = read_until_eof(&mut h, PROMPTLY, "stalled head");
    let cut = t0.elapsed();
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
        "stalled head: {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(cut >= Duration::from_millis(450), "cut after {cut:?}");
    // the stalled body: refused once the body stalled for the body timeout, and closed
    let r = response_then_eof(body_staller, "stalled body");
    let cut = t0.elapsed();
    assert!(matches!(r.status, 400 | 408), "stalled body: {r:?}");
    assert!(
        cut >= Duration::from_millis(450) && cut < PROMPTLY,
        "cut after {cut:?}"
    );
    assert_eq!(
        s.get(&path).status,
        404,
        "the stalled upload stored nothing"
    );
    let (files, _, pins) = stop_and_check(&mut s);
    assert_eq!((files, pins), (1, 0));
}

#[test]
fn a_trickled_head_is_cut_at_the_head_deadline_but_a_trickled_body_is_not() {
    let s = Server::start_with(&["--head-timeout", "0.5", "--body-timeout", "0.5"]);
    // slowloris: the head keeps coming, one byte per 50 ms, but is never complete
    let t0 = Instant::now();
    let mut c = open_with(
        &s,
        format!("GET {P}/t/1/f HTTP/1.1\r\nHost: t\r\nX-Slow: ").as_bytes(),
    );
    c.set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut got = Vec::new();
    let closed_after = loop {
        assert!(t0.elapsed() < PROMPTLY, "never cut off");
        if c.write_all(b"a").is_err() {
            break t0.elapsed();
        }
        let mut buf = [0u8; 1024];
        match c.read(&mut buf) {
            Ok(0) => break t0.elapsed(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break t0.elapsed(),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(450),
        "cut after {closed_after:?}"
    );
    assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408 "));
    // a body may arrive slowly as long as it never stalls for the body timeout
    let data = b"0123456789abcdef";
    let path = format!("{P}/t/1/slow-body");
    let mut c = open_with(&s, put_head(&path, "Content-Length: 16\r\n").as_bytes());
    let t0 = Instant::now();
    for b in data {
        std::thread::sleep(Duration::from_millis(60));
        c.write_all(&[*b]).expect("body byte");
    }
    assert!(
        t0.elapsed() > Duration::from_millis(900),
        "longer than the timeout"
    );
    let r = read_response(&mut BufReader::new(c), false);
    assert_eq!(r.status, 201);
    assert_eq!(s.get(&path).body, data);
}

// ---------------------------------------------------------------------------------------------
// 6. Expect: 100-continue refusals (what tests/durability.rs does not already pin)
// ---------------------------------------------------------------------------------------------

#[test]
fn expect_continue_refusals_send_no_100_and_close_the_connection() {
    let mut s = Server::start_with(&["--max-file-size", "1MB"]);
    // site admins are exempt from the size limit (as in Gitea): a plain user meets it
    let tok = user_with_token(&mut s, "u", false);
    let s = s.restart();
    assert_eq!(s.put(&format!("{P}/exp/1/f"), b"x").status, 201);
    let cases = [
        (
            "anonymous",
            String::new(),
            format!("{P}/exp/1/g"),
            401,
            1000,
        ),
        ("existing file", auth(), format!("{P}/exp/1/F"), 409, 1000),
        (
            "too large",
            format!("Authorization: token {tok}\r\n"),
            "/api/packages/u/generic/exp/1/h".to_string(),
            403,
            1_000_001,
        ),
    ];
    for (label, auth, path, want, len) in cases {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: t\r\n{auth}Content-Length: {len}\r\nExpect: 100-continue\r\n\r\n"
        );
        let c = open_with(&s, head.as_bytes());
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        // the very first bytes are the refusal, not an interim 100
        let mut first = [0u8; 12];
        (&c).read_exact(&mut first).expect("first bytes");
        assert_eq!(
            &first,
            format!("HTTP/1.1 {want}").as_bytes(),
            "{label}: {:?}",
            String::from_utf8_lossy(&first)
        );
        // the client still holds its body back, so the connection cannot carry on: closed
        let rest = read_until_eof(&mut &c, PROMPTLY, label);
        let text = String::from_utf8_lossy(&rest);
        assert!(
            text.to_ascii_lowercase().contains("connection: close\r\n"),
            "{label}: {text}"
        );
    }
    // a refusal of a request whose (small) body was sent in full keeps the connection usable:
    // the unread body is drained up to its exact end, and the pipelined GET after it is answered
    let mut req = put_head(&format!("{P}/exp/1/f"), "Content-Length: 10000\r\n").into_bytes();
    req.extend_from_slice(&pattern(10_000, 9));
    req.extend_from_slice(format!("GET {P}/exp/1/f HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    let mut rd = BufReader::new(open_with(&s, &req));
    let r = read_response(&mut rd, false);
    assert_eq!(r.status, 409);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = read_response(&mut rd, false);
    assert_eq!((r.status, r.body.as_slice()), (200, b"x".as_slice()));
    // a refusal of a request that declared more than is worth draining closes instead
    let head = put_head(&format!("{P}/exp/1/f"), "Content-Length: 900000\r\n");
    let r = response_then_eof(open_with(&s, head.as_bytes()), "409, 900 kB unsent");
    assert_eq!(r.status, 409);
}

// ---------------------------------------------------------------------------------------------
// 7. keep-alive, pipelining, Connection
// ---------------------------------------------------------------------------------------------

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let s = Server::start_with(&["--idle-timeout", "0.3"]);
    let a = pattern(70_000, 10);
    let b = pattern(3000, 11);
    let cc = pattern(5000, 12);
    let tok = format!("token {ADMIN_TOKEN}");
    // keep-alive: three requests, one after the other, on one connection
    let mut c = s.connect();
    let mut rd = BufReader::new(c.try_clone().expect("clone"));
    send(
        &mut c,
        "PUT",
        &format!("{P}/ka/1/a"),
        &[("Authorization", &tok)],
        &a,
    );
    let r1 = read_response(&mut rd, false);
    send(&mut c, "GET", &format!("{P}/ka/1/a"), &[], b"");
    let r2 = read_response(&mut rd, false);
    send(&mut c, "HEAD", &format!("{P}/ka/1/a"), &[], b"");
    let r3 = read_response(&mut rd, true);
    assert_eq!((r1.status, r2.status, r3.status), (201, 200, 200));
    assert!(r2.body == a);
    assert_eq!(r3.header("content-length"), Some("70000"));
    for r in [&r1, &r2, &r3] {
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // an idle keep-alive connection is closed after the idle timeout
    let t0 = Instant::now();
    let rest = read_until_eof(&mut rd, PROMPTLY, "idle keep-alive");
    assert!(rest.is_empty(), "HEAD sent no body, nothing else came");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );

    // pipelining: every request in one write, a PUT body in the middle, a HEAD whose response
    // has a Content-Length but no body, a chunked PUT, and a last request asking to close
    let mut pipe = format!("GET {P}/ka/1/a HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes();
    pipe.extend_from_slice(
        put_head(
            &format!("{P}/ka/1/b"),
            &format!("Content-Length: {}\r\n", b.len()),
        )
        .as_bytes(),
    );
    pipe.extend_from_slice(&b);
    pipe.extend_from_slice(format!("HEAD {P}/ka/1/b HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    pipe.extend_from_slice(
        put_head(&format!("{P}/ka/1/c"), "Transfer-Encoding: chunked\r\n").as_bytes(),
    );
    pipe.extend_from_slice(&chunked(&cc));
    pipe.extend_from_slice(format!("GET {P}/ka/1/b HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    pipe.extend_from_slice(
        format!("GET {P}/ka/1/c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let c = open_with(&s, &pipe);
    let mut rd = BufReader::new(c);
    let got: Vec<Resp> = [false, false, true, false, false, false]
        .iter()
        .map(|&head| read_response(&mut rd, head))
        .collect();
    let statuses: Vec<u16> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 201, 200, 201, 200, 200]);
    assert!(got[0].body == a);
    assert_eq!(got[2].header("content-length"), Some("3000"));
    assert!(got[4].body == b);
    assert!(got[5].body == cc);
    assert_eq!(got[5].header("connection"), Some("close"));
    let rest = read_until_eof(&mut rd, PROMPTLY, "after Connection: close");
    assert!(rest.is_empty());

    // HTTP/1.0 without keep-alive: one request, then closed
    let c = open_with(&s, format!("GET {P}/ka/1/b HTTP/1.0\r\n\r\n").as_bytes());
    let r = response_then_eof(c, "HTTP/1.0");
    assert_eq!(r.status, 200);
    assert!(r.body == b);
}

// ---------------------------------------------------------------------------------------------
// 8. the connection limit
// ---------------------------------------------------------------------------------------------

#[test]
fn beyond_max_connections_a_fast_503_and_service_resumes() {
    let s = Server::start_with(&["--max-connections", "2", "--workers", "2"]);
    let path = format!("{P}/busy/1/f");
    let tok = format!("token {ADMIN_TOKEN}");
    // two connections held open (keep-alive), each known to be accepted; the first uploads (a
    // third connection for that could still count as open when the second one arrives)
    let held: Vec<(TcpStream, BufReader<TcpStream>)> = (0..2)
        .map(|i| {
            let mut c = s.connect();
            let mut rd = BufReader::new(c.try_clone().expect("clone"));
            if i == 0 {
                send(&mut c, "PUT", &path, &[("Authorization", &tok)], b"busy");
                assert_eq!(read_response(&mut rd, false).status, 201);
            } else {
                send(&mut c, "GET", &path, &[], b"");
                assert_eq!(read_response(&mut rd, false).status, 200);
            }
            (c, rd)
        })
        .collect();
    // a third gets 503 at once, without even sending a request
    let t0 = Instant::now();
    let third = s.connect();
    let r = response_then_eof(third, "third connection");
    // Waiting for a worker would take until a held connection idles out (15 s).
    assert!(
        t0.elapsed() < Duration::from_secs(7),
        "503 took {:?}",
        t0.elapsed()
    );
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    // also when the client sends its request at once (its unread bytes must not cost it the 503)
    let mut third = s.connect();
    send(&mut third, "GET", &path, &[], b"");
    let r = read_response(&mut BufReader::new(third), false);
    assert_eq!(r.status, 503);
    // the held connections are still served
    let mut held = held;
    for (c, rd) in held.iter_mut() {
        send(c, "GET", &path, &[], b"");
        assert_eq!(read_response(rd, false).body, b"busy");
    }
    drop(held);
    // once they are closed, the server serves again (the poller notices the close promptly)
    assert_eq!(served_again(&s, &path).body, b"busy");
}

/// GETs `path` on fresh connections until one is served (200), as long as the others get the
/// fast 503; fails when that takes longer than PROMPTLY.
fn served_again(s: &Server, path: &str) -> Resp {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let mut c = s.connect();
        let mut rd = BufReader::new(c.try_clone().expect("clone"));
        send(&mut c, "GET", path, &[], b"");
        let r = read_response(&mut rd, false);
        if r.status == 200 {
            return r;
        }
        assert_eq!(r.status, 503);
        assert!(
            Instant::now() < deadline,
            "still 503 after the others closed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Holds `n` keep-alive connections open on `s`, each known to be accepted and served.
fn held_connections(s: &Server, n: usize, path: &str) -> Vec<(TcpStream, BufReader<TcpStream>)> {
    (0..n)
        .map(|_| {
            let mut c = s.connect();
            let mut rd = BufReader::new(c.try_clone().expect("clone"));
            send(&mut c, "GET", path, &[], b"");
            assert_eq!(read_response(&mut rd, false).status, 200);
            (c, rd)
        })
        .collect()
}

/// One address may hold at most `--max-connections-per-ip` connections: beyond it, a fast
/// 503 that says why, while the server keeps slots for everyone else; a closed connection
/// gives its place back.
#[test]
fn one_address_beyond_its_cap_gets_a_fast_503_and_its_place_comes_back() {
    let s = Server::start_with(&["--max-connections-per-ip", "3"]);
    let path = format!("{P}/per-ip/1/f");
    assert_eq!(s.put(&path, b"mine").status, 201);
    let mut held = held_connections(&s, 3, &path);
    let r = response_then_eof(s.connect(), "a fourth connection");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        r.text(),
        "too many connections from your address, retry later\n"
    );
    // The three are still served.
    for (c, rd) in held.iter_mut() {
        send(c, "GET", &path, &[], b"");
        assert_eq!(read_response(rd, false).body, b"mine");
    }
    // One closes: its place comes back (once the poller has seen the close).
    drop(held.pop());
    assert_eq!(served_again(&s, &path).body, b"mine");
}

/// A trusted proxy carries many clients' connections: the per-address cap does not apply to it.
#[test]
fn a_trusted_proxy_is_exempt_from_the_per_address_cap() {
    let s = Server::start_with(&[
        "--max-connections-per-ip",
        "2",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    let path = format!("{P}/per-ip/1/f");
    assert_eq!(s.put(&path, b"proxied").status, 201);
    let held = held_connections(&s, 5, &path);
    assert_eq!(held.len(), 5);
    assert_eq!(s.get(&path).body, b"proxied");
}

/// An idle keep-alive connection waits in the poller, not in a worker: with one worker,
/// another client is served while it idles, and it stays open for its next request (it used
/// to be closed early whenever another client waited for the worker).
#[test]
fn an_idle_keep_alive_connection_holds_no_worker_and_stays_open() {
    // idle timeout 15 s (default), one worker
    let s = Server::start_with(&["--workers", "1"]);
    let path = format!("{P}/yield/1/f");
    assert_eq!(s.put(&path, b"yield").status, 201);
    let mut idle = s.connect();
    let mut rd = BufReader::new(idle.try_clone().expect("clone"));
    send(&mut idle, "GET", &path, &[], b"");
    let r = read_response(&mut rd, false);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    for _ in 0..3 {
        assert_eq!(s.get(&path).body, b"yield");
    }
    assert!(still_open_and_silent(&idle), "the idle connection is kept");
    send(&mut idle, "GET", &path, &[], b"");
    assert_eq!(read_response(&mut rd, false).body, b"yield");
}

/// The RLIMIT_NOFILE (soft, hard) of process `pid` (0: this process).
fn nofile(pid: u32) -> (u64, u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: reading limits into a valid rlimit; no new limit is set.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Sets the RLIMIT_NOFILE soft limit of process `pid` (0: this process), keeping the hard one.
fn set_nofile_soft(pid: u32, soft: u64) {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile(pid).1,
    };
    // SAFETY: `new` is a valid rlimit; the old limits are not asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn descriptor_pressure_does_not_stop_the_accept_loop() {
    // started with a soft limit below the hard one, shelf raises it to the hard limit
    let (soft, hard) = nofile(0);
    set_nofile_soft(0, soft.min(hard / 2).min(4096));
    let mut s = Server::start();
    set_nofile_soft(0, soft);
    let pid = s.child.id();
    let (server_soft, server_hard) = nofile(pid);
    assert_eq!(
        server_soft, server_hard,
        "RLIMIT_NOFILE raised to its hard limit"
    );

    let path = format!("{P}/fd/1/f");
    assert_eq!(s.put(&path, b"fd").status, 201);
    let mut held = s.connect();
    let mut held_rd = BufReader::new(held.try_clone().expect("clone"));
    send(&mut held, "GET", &path, &[], b"");
    assert_eq!(read_response(&mut held_rd, false).status, 200);
    // leave the server room for two more descriptors only (new ones take the lowest free
    // numbers below the soft limit; inherited ones may sit far above)
    let open: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let limit = (1u64..)
        .find(|&l| l - open.iter().filter(|&&fd| fd < l).count() as u64 == 2)
        .expect("a limit");
    set_nofile_soft(pid, limit);
    let mut clients: Vec<Option<BufReader<TcpStream>>> = (0..12)
        .map(|_| {
            let mut c = s.connect();
            c.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            send(&mut c, "GET", &path, &[], b"");
            Some(BufReader::new(c))
        })
        .collect();
    // the connection accepted before is still served meanwhile
    send(&mut held, "GET", &path, &[], b"");
    assert_eq!(read_response(&mut held_rd, false).body, b"fd");
    // Each client gets its answer once the server has a descriptor for it. Answered clients
    // are first kept open (keep-alive holds their descriptors), for 300 ms: only a few get in;
    // then each answered client is closed, freeing a descriptor for the next.
    let mut answered = Vec::new();
    let started = Instant::now();
    let mut answered_while_held = None;
    while answered.len() < clients.len() {
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(30),
            "{} of {} clients never answered",
            clients.len() - answered.len(),
            clients.len()
        );
        if answered_while_held.is_none() && elapsed >= Duration::from_millis(300) {
            answered_while_held = Some(answered.len());
        }
        for (i, slot) in clients.iter_mut().enumerate() {
            let Some(rd) = slot else { continue };
            if answered.contains(&i) {
                if answered_while_held.is_some() {
                    *slot = None; // frees the server's descriptor for the next one
                }
                continue;
            }
            match rd.fill_buf() {
                Ok([]) => panic!("client {i} closed without an answer"),
                Ok(_) => {
                    rd.get_ref()
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    assert_eq!(read_response(rd, false).body, b"fd");
                    answered.push(i);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("client {i}: {e}"),
            }
        }
    }
    let held_back = answered_while_held.expect("the first phase ended");
    assert!(
        held_back < clients.len() / 2,
        "the descriptor limit really held clients back ({held_back} of {} answered)",
        clients.len()
    );
    set_nofile_soft(pid, server_soft);
    assert_eq!(s.get(&path).body, b"fd");
    assert!(
        s.child.try_wait().expect("wait").is_none(),
        "shelf is alive"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. fuzz
// ---------------------------------------------------------------------------------------------

fn fuzz_request(rng: &mut Rng, i: usize) -> Vec<u8> {
    let tok = auth();
    let base = match rng.below(6) {
        0 => format!("GET {P}/fz/1/probe HTTP/1.1\r\nHost: t\r\n\r\n"),
        1 => format!("HEAD {P}/fz/1/probe HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n"),
        2 => format!(
            "PUT {P}/fz/{i}/f HTTP/1.1\r\nHost: t\r\n{tok}Content-Length: 10\r\n\r\n0123456789"
        ),
        3 => format!(
            "PUT {P}/fz/{i}/c HTTP/1.1\r\nHost: t\r\n{tok}Transfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n3;x=1\r\nabc\r\n0\r\nX-T: v\r\n\r\n"
        ),
        4 => format!("DELETE {P}/fz/{}/f HTTP/1.1\r\nHost: t\r\n{tok}\r\n", i / 2),
        _ => format!(
            "PUT {P}/fz/{i}/e HTTP/1.1\r\nHost: t\r\n{tok}Expect: 100-continue\r\n\
             Content-Length: 4\r\n\r\nabcd"
        ),
    };
    let mut req = base.into_bytes();
    let names = [
        "Content-Length",
        "Transfer-Encoding",
        "Host",
        "Expect",
        "Connection",
        "Authorization",
        "Range",
        "If-None-Match",
        "X-\u{0}Y",
        "",
        "Bad Name",
    ];
    let values = [
        "0",
        "7",
        "-1",
        "abc",
        "100000000000",
        "99999999999999999999",
        "chunked",
        "gzip, chunked",
        "chunked, identity",
        "100-continue",
        "close",
        "keep-alive",
        "bytes=5-1",
        "token nope",
        " \t ",
        "\u{7f}",
    ];
    let interesting = b"\r\n:; \t0123456789abcdefABCDEF\x00\x7f\xff-+,\"";
    for _ in 0..1 + rng.below(4) {
        if req.is_empty() {
            break;
        }
        let at = rng.below(req.len() + 1);
        match rng.below(9) {
            0 => {
                let j = rng.below(req.len());
                req[j] ^= 1 << rng.below(8);
            }
            1 => {
                let b = if rng.below(2) == 0 {
                    interesting[rng.below(interesting.len())]
                } else {
                    rng.next() as u8
                };
                req.insert(at, b);
            }
            2 => {
                let len = 1 + rng.below(8);
                let end = (at + len).min(req.len());
                req.drain(at..end);
            }
            3 | 4 => {
                // a header line at a line boundary
                let lines: Vec<usize> = req
                    .windows(2)
                    .enumerate()
                    .filter(|(_, w)| w == b"\r\n")
                    .map(|(k, _)| k + 2)
                    .collect();
                if let Some(&pos) = lines.get(rng.below(lines.len().max(1))) {
                    let line = format!("{}: {}\r\n", rng.pick(&names), rng.pick(&values));
                    req.splice(pos..pos, line.into_bytes());
                }
            }
            5 => {
                // chunked framing: a random chunk-size line somewhere
                let size = match rng.below(4) {
                    0 => format!("{:x}", rng.below(64)),
                    1 => format!("{:x}", rng.next()),
                    2 => "fffffffffffffffffff".to_string(),
                    _ => format!("{:x};{}", rng.below(16), rng.pick(&values)),
                };
                req.splice(at..at, format!("{size}\r\n").into_bytes());
            }
            6 => req.truncate(at),
            7 => {
                // a line duplicated
                let start = req[..at]
                    .windows(2)
                    .rposition(|w| w == b"\r\n")
                    .map_or(0, |k| k + 2);
                let end = req[at..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(req.len(), |k| at + k + 2);
                let line = req[start..end].to_vec();
                req.splice(start..start, line);
            }
            _ => {
                // random bytes
                let n = 1 + rng.below(32);
                let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                req.splice(at..at, junk);
            }
        }
    }
    req
}

/// Splits what the server sent on one connection into responses; each must be complete and
/// correctly framed, with nothing after the last. `head_first`: the first answers a HEAD.
fn parse_responses(mut buf: &[u8], head_first: bool) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    while !buf.is_empty() {
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut r = httparse::Response::new(&mut slots);
        let n = match r.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err("truncated response head".into()),
            Err(e) => return Err(format!("malformed response head: {e}")),
        };
        if r.version != Some(1) {
            return Err("not an HTTP/1.1 response".into());
        }
        let status = r.code.unwrap_or(0);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        let len = header("content-length");
        let te = header("transfer-encoding");
        buf = &buf[n..];
        if status == 100 {
            continue;
        }
        let no_body = status == 204 || status == 304 || (statuses.is_empty() && head_first);
        if !no_body {
            if let Some(len) = len {
                let len: usize = len.parse().map_err(|_| format!("bad length {len:?}"))?;
                if buf.len() < len {
                    return Err(format!("body of {} bytes, {len} announced", buf.len()));
                }
                buf = &buf[len..];
            } else if te.is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
                loop {
                    let eol = buf
                        .windows(2)
                        .position(|w| w == b"\r\n")
                        .ok_or("truncated chunk size")?;
                    let size = usize::from_str_radix(&String::from_utf8_lossy(&buf[..eol]), 16)
                        .map_err(|e| format!("bad chunk size: {e}"))?;
                    if buf.len() < eol + 2 + size + 2 {
                        return Err("truncated chunk".into());
                    }
                    buf = &buf[eol + 2 + size + 2..];
                    if size == 0 {
                        break;
                    }
                }
            } else {
                return Err(format!("response {status} without framing"));
            }
        }
        statuses.push(status);
    }
    Ok(statuses)
}

#[test]
fn fuzzed_requests_never_break_the_server() {
    let mut s = Server::start_with(&[
        "--head-timeout",
        "2",
        "--body-timeout",
        "2",
        "--idle-timeout",
        "2",
    ]);
    // the fuzz reads (and may delete) the probe; the keeper is out of its reach
    let seed = pattern(3000, 13);
    assert_eq!(s.put(&format!("{P}/fz/1/probe"), &seed).status, 201);
    assert_eq!(s.put(&format!("{P}/keep/1/seed"), &seed).status, 201);
    let mut rng = Rng(0x005E_ED0F_5E1F);
    let mut tally = std::collections::BTreeMap::<u16, usize>::new();
    let started = Instant::now();
    for i in 0..300 {
        let req = fuzz_request(&mut rng, i);
        let mut c = s.connect();
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        // the server may refuse and close before all is written: not an error here
        let _ = c.write_all(&req);
        // the client's FIN ends whatever the server still waits for (head, body, next request)
        let _ = c.shutdown(Shutdown::Write);
        let shown = String::from_utf8_lossy(&req).into_owned();
        let got = read_until_eof(&mut c, PROMPTLY, &format!("fuzz #{i} {shown:?}"));
        // a HEAD the server could not parse is answered with a body: either reading will do
        let statuses = parse_responses(&got, req.starts_with(b"HEAD "))
            .or_else(|_| parse_responses(&got, false))
            .unwrap_or_else(|e| {
                panic!(
                    "fuzz #{i} {shown:?}: {e}: {:?}",
                    String::from_utf8_lossy(&got)
                )
            });
        for st in statuses {
            assert!(
                st != 500 && (200..600).contains(&st),
                "fuzz #{i} {shown:?}: status {st}"
            );
            *tally.entry(st).or_default() += 1;
        }
    }
    let elapsed = started.elapsed();
    let ok = tally.range(200..300).map(|(_, n)| n).sum::<usize>();
    let refused = tally.range(400..500).map(|(_, n)| n).sum::<usize>();
    assert!(
        ok >= 20 && refused >= 20,
        "the fuzz reaches both paths: {tally:?}"
    );
    assert!(
        s.child.try_wait().expect("wait").is_none(),
        "shelf is alive"
    );
    let r = s.get(&format!("{P}/keep/1/seed"));
    assert_eq!(r.status, 200);
    assert!(r.body == seed, "the keeper is intact");
    let (_, _, pins) = stop_and_check(&mut s);
    assert_eq!(pins, 0, "no upload left pinned ({tally:?}, {elapsed:?})");
}

// ---------------------------------------------------------------------------------------------
// 10. downloads
// ---------------------------------------------------------------------------------------------

/// Sends a GET and reads its head plus the first `n` body bytes; returns the reader.
fn start_download(s: &Server, path: &str, n: usize) -> (BufReader<TcpStream>, Vec<u8>) {
    let mut c = s.connect();
    send(&mut c, "GET", path, &[], b"");
    let mut rd = BufReader::new(c);
    let mut line = String::new();
    rd.read_line(&mut line).expect("status line");
    assert!(line.starts_with("HTTP/1.1 200 "), "{line}");
    let mut len = None;
    loop {
        line.clear();
        rd.read_line(&mut line).expect("head line");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = Some(v.trim().parse::<usize>().expect("length"));
        }
        assert!(!line.is_empty(), "connection closed in the head");
    }
    assert!(len.is_some_and(|l| l > n), "a long enough download");
    let mut part = vec![0u8; n];
    rd.read_exact(&mut part).expect("first part");
    (rd, part)
}

#[test]
fn an_interrupted_download_frees_its_worker() {
    // one worker: every later request needs that worker to have let go of the aborted one
    let s = Server::start_with(&["--workers", "1"]);
    let data = pattern(5_000_000, 14);
    let path = format!("{P}/dl/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    for _ in 0..2 {
        let (rd, part) = start_download(&s, &path, 1_000_000);
        assert!(part == data[..1_000_000]);
        drop(rd); // 4 MB unread
        let r = s.get(&path);
        assert_eq!(r.status, 200);
        assert!(r.body == data, "a full download after the interrupted one");
    }
    assert_eq!(s.put(&format!("{P}/dl/1/g"), b"still writable").status, 201);
}

#[test]
fn a_slow_download_keeps_its_snapshot_when_the_file_is_deleted() {
    let mut s = Server::start_with(&["--workers", "2"]);
    let data = pattern(5_000_000, 15);
    let path = format!("{P}/snap/1/f");
    assert_eq!(s.put(&path, &data).status, 201);
    let (mut rd, part) = start_download(&s, &path, 1_000_000);
    assert!(part == data[..1_000_000]);
    // Deleted on another connection while the download is under way. The server is at most its
    // 1 MB stream buffer plus the socket buffers ahead of the client (measured here: ~50 kB
    // queued), so most of the 5 chunks are read from the snapshot after the delete committed.
    assert_eq!(s.delete(&path).status, 204);
    assert_eq!(s.get(&path).status, 404, "deleted for everyone else");
    let mut rest = vec![0u8; 4_000_000];
    rd.read_exact(&mut rest).expect("the rest of the download");
    assert!(rest == data[1_000_000..], "its bytes are the original ones");
    let (files, chunks, pins) = stop_and_check(&mut s);
    assert_eq!(
        (files, chunks, pins),
        (0, 0, 0),
        "the deleted file's chunks are reclaimed once the download is over"
    );
}
