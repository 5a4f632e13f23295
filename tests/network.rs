//! Standing alone on the network (issue 12), against the real binary over raw TCP: slow heads
//! and idle keep-alive connections wait in the poller and hold no worker, and a trickled
//! upload is abandoned at the minimum body rate with nothing stored.
//!
//! No assertion here is on elapsed time. Each test is built so that the old behaviour (a
//! worker per waiting connection) fails it outright: the normal traffic would not be served
//! before the client's read timeout, or the waiting connections would be cut early.

mod common;
use common::*;
use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const P: &str = "/api/packages/admin/generic";

/// Raises this process's open-files soft limit to its hard limit; returns the new soft limit.
fn raise_own_nofile() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) }, 0);
    let want = libc::rlimit {
        rlim_cur: rl.rlim_max,
        rlim_max: rl.rlim_max,
    };
    // SAFETY: `want` is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
        want.rlim_cur
    } else {
        rl.rlim_cur
    }
}

/// True while the server keeps `c` open without having sent anything on it.
fn still_open_and_silent(c: &TcpStream) -> bool {
    c.set_nonblocking(true).expect("nonblocking");
    let r = c.peek(&mut [0u8; 1]);
    c.set_nonblocking(false).expect("blocking");
    matches!(r, Err(e) if e.kind() == ErrorKind::WouldBlock)
}

/// Reads until the server closes `c` (within `limit`); returns what it still sent.
fn read_until_eof(c: &TcpStream, limit: Duration, what: &str) -> Vec<u8> {
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut r = c;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "{what}: not closed within {limit:?}"
                );
            }
            // A reset is a close too (the server closed with our bytes unread).
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// 300 clients trickle request heads that never end, on a server with two workers and a long
/// head timeout: normal requests are still answered at once (before, each slow head held a
/// worker until its head timeout), and the slow clients are neither answered nor cut.
#[test]
fn three_hundred_slow_heads_hold_no_worker_while_normal_requests_are_served() {
    let s = Server::start_with(&[
        "--workers",
        "2",
        "--head-timeout",
        "120",
        "--max-connections-per-ip",
        "0",
    ]);
    let path = format!("{P}/slow/1/f");
    let body = pattern(4096, 1);
    assert_eq!(s.put(&path, &body).status, 201);
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|i| {
            let mut c = s.connect();
            c.write_all(format!("GET {P}/slow/1/f HTTP/1.1\r\nHost: t\r\nX-Slow-{i}: ").as_bytes())
                .expect("slow head");
            c
        })
        .collect();
    for round in 0..5 {
        // every slow client sends one more byte of its endless header value
        for c in slow.iter_mut() {
            c.write_all(b"a").expect("trickle");
        }
        // normal clients: each GET would wait out the 120 s head timeout of a slow head that
        // holds a worker (and fail at the client's 30 s read timeout)
        for _ in 0..4 {
            let r = s.get(&path);
            assert_eq!(r.status, 200, "round {round}");
            assert_eq!(r.body, body);
        }
    }
    let silent = slow.iter().filter(|c| still_open_and_silent(c)).count();
    assert_eq!(
        silent, 300,
        "every slow head is still waited for, unanswered"
    );
    // A slow head that completes is served like any other request.
    let c = &mut slow[0];
    c.write_all(b"\r\n\r\n").expect("end of head");
    let r = read_response(&mut BufReader::new(&*c), false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
}

/// 2,000 keep-alive connections go idle after one request each, on a server with two
/// workers: other clients are served at once, every idle connection stays open (before, idle
/// connections were closed early whenever clients waited for a worker, and beyond 512 open
/// connections new ones got 503), and each is closed at its idle timeout.
#[test]
fn two_thousand_idle_keep_alive_connections_stay_open_until_their_idle_timeout() {
    let limit = raise_own_nofile();
    // Room for the test's other descriptors; the server raises its own limit.
    let n = 2000.min(limit.saturating_sub(200) as usize);
    if n < 2000 {
        eprintln!("open-files hard limit {limit}: testing {n} idle connections, not 2000");
    }
    let s = Server::start_with(&[
        "--workers",
        "2",
        "--idle-timeout",
        "15",
        "--max-connections-per-ip",
        "0",
    ]);
    let path = format!("{P}/idle/1/f");
    let body = pattern(4096, 2);
    assert_eq!(s.put(&path, &body).status, 201);
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = s.connect();
        send(&mut c, "GET", &path, &[], b"");
        let r = read_response(&mut BufReader::new(&c), false);
        assert_eq!(r.status, 200, "idle connection {i}");
        assert_eq!(r.header("connection"), Some("keep-alive"));
        idle.push(c);
    }
    // Other traffic, on fresh connections and on some of the idle ones.
    for round in 0..20 {
        assert_eq!(s.get(&path).body, body, "round {round}");
        let c = &mut idle[round * 97 % n];
        send(c, "GET", &path, &[], b"");
        assert_eq!(read_response(&mut BufReader::new(&*c), false).body, body);
    }
    let open = idle.iter().filter(|c| still_open_and_silent(c)).count();
    assert_eq!(open, n, "every idle connection is still open");
    // Each one is closed at its idle timeout, without a word.
    for (i, c) in idle.iter().enumerate() {
        let rest = read_until_eof(c, Duration::from_secs(60), &format!("idle connection {i}"));
        assert!(rest.is_empty(), "idle connection {i} got {rest:?}");
    }
}

/// An upload that trickles one byte per second is abandoned with 408 once a 10 s window of
/// waiting for it brought less than the minimum rate (1 KiB/s by default), long before its
/// body timeout would: nothing is stored, and the worker is free again.
#[test]
fn a_one_byte_per_second_upload_is_abandoned_with_408_and_nothing_is_stored() {
    let mut s = Server::start_with(&["--workers", "1"]);
    let path = format!("{P}/trickle/1/f");
    let mut c = s.connect();
    c.write_all(
        format!(
            "PUT {path} HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\n\
             Content-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .expect("head");
    let mut writer = c.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        for _ in 0..60 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });
    let r = read_response(&mut BufReader::new(&c), false);
    assert_eq!(r.status, 408, "{r:?}");
    let text = r.text();
    assert!(
        text.contains("slower than the minimum of 1024 bytes/s"),
        "the answer says why: {text:?}"
    );
    drop(c);
    trickle.join().expect("trickle thread");
    // The only worker serves again, and nothing of the upload was kept.
    assert_eq!(s.get(&path).status, 404);
    s.stop();
    let out = cli(&s.db, &["check"]);
    assert!(out.status.success(), "check: {out:?}");
}
