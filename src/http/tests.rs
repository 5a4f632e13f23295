//! Socket-level tests of the server: a real [`Server`] on `127.0.0.1:0`, raw requests written by a
//! test client, and the framing, limit, timeout, panic and shutdown behaviour seen from the wire.

use super::response::{encode_head, reason};
use super::*;
use crate::dates::parse_http_date;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::AtomicUsize;

const BIG: u64 = 3 * 1024 * 1024 + 17;

#[derive(Default)]
struct TestState {
    calls: AtomicUsize,
    targets: Mutex<Vec<String>>,
    errors: Mutex<Vec<io::ErrorKind>>,
}

impl TestState {
    fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
    fn errors(&self) -> Vec<io::ErrorKind> {
        self.errors.lock().unwrap().clone()
    }
}

fn handle(st: &TestState, req: &mut Request) -> Response {
    st.calls.fetch_add(1, Ordering::SeqCst);
    st.targets.lock().unwrap().push(req.target.clone());
    match path_of(&req.target) {
        "/" => Response::text(200, "hello"),
        "/echo" => {
            let mut v = Vec::new();
            match req.body.read_to_end(&mut v) {
                Ok(_) => {
                    assert!(req.body.is_finished());
                    assert_eq!(req.body.bytes_read(), v.len() as u64);
                    Response {
                        body: ResponseBody::Bytes(v),
                        ..Response::new(200)
                    }
                    .with_header("X-Chunked", req.body.is_chunked().to_string())
                }
                Err(e) => {
                    st.errors.lock().unwrap().push(e.kind());
                    Response::text(400, "body error")
                }
            }
        }
        "/refuse" => Response::text(413, "too large"),
        "/panic" => panic!("test panic"),
        "/big" => Response {
            body: ResponseBody::Reader {
                len: BIG,
                reader: Box::new(io::repeat(b'x').take(BIG)),
            },
            ..Response::new(200)
        },
        "/short" => Response {
            body: ResponseBody::Reader {
                len: 1_000_000,
                reader: Box::new(io::repeat(b'y').take(10)),
            },
            ..Response::new(200)
        },
        "/short-big" => Response {
            body: ResponseBody::Reader {
                len: 3_000_000,
                reader: Box::new(io::repeat(b'y').take(1_500_000)),
            },
            ..Response::new(200)
        },
        "/nocontent" => Response::new(204),
        _ => Response::text(404, "not found"),
    }
}

fn test_config() -> ServerConfig {
    ServerConfig {
        workers: 4,
        max_connections: 64,
        head_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_secs(5),
        max_head_bytes: 4096,
        max_headers: 16,
        ..ServerConfig::default()
    }
}

struct TestServer {
    addr: SocketAddr,
    state: Arc<TestState>,
    shutdown: ShutdownHandle,
    thread: Option<thread::JoinHandle<io::Result<()>>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.shutdown();
    }
}

fn start(cfg: ServerConfig) -> TestServer {
    let state = Arc::new(TestState::default());
    let server = Server::bind("127.0.0.1:0", cfg).expect("bind");
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let st = Arc::clone(&state);
    let handler: Handler = Arc::new(move |req: &mut Request| handle(&st, req));
    let thread = Some(thread::spawn(move || server.run(handler)));
    TestServer {
        addr,
        state,
        shutdown,
        thread,
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).expect("client write");
    }

    /// Reads more; 0 on EOF or reset.
    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("client read: {e}"),
        }
    }

    /// The next response (a 100 Continue counts as one); None on EOF before a full head.
    fn response(&mut self, head_only: bool) -> Option<Resp> {
        loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            if let httparse::Status::Complete(n) = r.parse(&self.buf).expect("response head") {
                let status = r.code.unwrap();
                let headers: Vec<(String, String)> = r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                self.buf.drain(..n);
                let mut resp = Resp {
                    status,
                    headers,
                    body: Vec::new(),
                };
                if status == 100 || head_only || status == 204 || status == 304 {
                    return Some(resp);
                }
                let cl: usize = resp.header("content-length").unwrap().parse().unwrap();
                while self.buf.len() < cl {
                    if self.fill() == 0 {
                        resp.body = std::mem::take(&mut self.buf);
                        return Some(resp);
                    }
                }
                resp.body = self.buf.drain(..cl).collect();
                return Some(resp);
            }
            if self.fill() == 0 {
                return None;
            }
        }
    }

    /// True if the server closed the connection (and sent nothing more).
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill() == 0
    }
}

fn get(addr: SocketAddr, target: &str) -> Resp {
    let mut c = Client::connect(addr);
    c.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    c.response(false).expect("response")
}

#[test]
fn simple_get() {
    let srv = start(test_config());
    let r = get(srv.addr, "/?token=secret");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    assert!(parse_http_date(r.header("date").unwrap()).is_some());
}

#[test]
fn keep_alive_and_pipelining() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().body, b"hello");
    c.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 404);
    // Two requests (one with a body) in one write: answered in order.
    c.send(
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabcGET /x HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let a = c.response(false).unwrap();
    assert_eq!((a.status, a.body.as_slice()), (200, b"abc".as_slice()));
    assert_eq!(c.response(false).unwrap().status, 404);
    // HTTP/1.0 closes by default.
    c.send(b"GET / HTTP/1.0\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    assert_eq!(srv.state.targets(), ["/", "/nope", "/echo", "/x", "/"]);
}

#[test]
fn connection_close_requested() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.header("connection"), Some("keep-alive"));
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
}

#[test]
fn content_length_echo_large() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let w = {
        let mut s = c.s.try_clone().unwrap();
        let body = body.clone();
        thread::spawn(move || {
            s.write_all(
                format!(
                    "PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
            s.write_all(&body).unwrap();
        })
    };
    let r = c.response(false).unwrap();
    w.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-chunked"), Some("false"));
    assert!(r.body == body);
}

#[test]
fn chunked_echo_with_extensions_and_trailers() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n\
          5;name=value\r\nhello\r\n1 ; x\r\n \r\nA\r\n0123456789\r\n\
          0\r\nX-Checksum: abc\r\nOther: 1\r\n\r\n\
          GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.body, b"hello 0123456789");
    assert_eq!(r.header("x-chunked"), Some("true"));
    assert_eq!(c.response(false).unwrap().body, b"hello");
}

/// Sends `req`, half-closes, and returns the response plus the error kinds the handler saw.
fn body_error(req: &[u8]) -> (Resp, Vec<io::ErrorKind>, usize) {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(req);
    c.s.shutdown(Shutdown::Write).unwrap();
    let r = c.response(false).expect("response");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    (
        r,
        srv.state.errors(),
        srv.state.calls.load(Ordering::SeqCst),
    )
}

#[test]
fn truncated_bodies_are_unexpected_eof() {
    let cases: [&[u8]; 5] = [
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc",
    ];
    for req in cases {
        let (r, errors, _) = body_error(req);
        assert_eq!(r.status, 400);
        assert_eq!(
            errors,
            [io::ErrorKind::UnexpectedEof],
            "{}",
            String::from_utf8_lossy(req)
        );
    }
}

#[test]
fn bad_chunked_framing_is_invalid_data() {
    let cases: [&[u8]; 7] = [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXY0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        b"10000000001\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
    ];
    for body in cases {
        let mut req =
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        req.extend_from_slice(body);
        req.extend_from_slice(b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n");
        let (r, errors, calls) = body_error(&req);
        assert_eq!(r.status, 400);
        assert_eq!(
            errors,
            [io::ErrorKind::InvalidData],
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(calls, 1, "smuggled request executed");
    }
    // A huge chunk extension is refused, not buffered.
    let mut req = b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
    req.extend(std::iter::repeat_n(b'x', 10_000));
    let (_, errors, _) = body_error(&req);
    assert_eq!(errors, [io::ErrorKind::InvalidData]);
}

#[test]
fn smuggling_attempts_are_rejected() {
    let cases: [(&str, u16); 11] = [
        ("Content-Length: abc\r\n", 400),
        ("Content-Length: -5\r\n", 400),
        ("Content-Length: +5\r\n", 400),
        ("Content-Length: 5\r\nContent-Length: 5\r\n", 400),
        ("Content-Length: 5, 5\r\n", 400),
        ("Content-Length: 0x5\r\n", 400),
        ("Content-Length: 99999999999999999999\r\n", 400),
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
        ("Transfer-Encoding: gzip, chunked\r\n", 501),
        ("Transfer-Encoding: chunked, identity\r\n", 501),
    ];
    for (headers, status) in cases {
        let srv = start(test_config());
        let mut c = Client::connect(srv.addr);
        c.send(
            format!(
                "PUT /echo HTTP/1.1\r\nHost: t\r\n{headers}\r\nhelloGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = c.response(false).unwrap();
        assert_eq!(r.status, status, "{headers}");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed(), "{headers}");
        assert_eq!(srv.state.calls.load(Ordering::SeqCst), 0, "{headers}");
    }
}

#[test]
fn bad_heads() {
    let srv = start(test_config());
    let cases: [(&[u8], u16); 11] = [
        (b"GET / HTTP/1.1\r\n\r\n", 400),                       // no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
        (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET / HTTP/3.1\r\nHost: t\r\n\r\n", 505),
        (b"THIS IS NOT HTTP AT ALL\r\n\r\n", 400), // not HTTP: 400, as Go and nginx
        (b"GET / HTTPS/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET / HTTP/1.x\r\nHost: t\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400), // HTTP/0.9
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400), // TLS hello
        (b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400), // space before colon
        (b"GET / HTTP/1.1\r\nHost: t\r\n folded\r\n\r\n", 400), // obs-fold
    ];
    for (req, status) in cases {
        let mut c = Client::connect(srv.addr);
        c.send(req);
        let r = c.response(false).unwrap();
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(req));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert!(c.closed());
    }
    assert_eq!(srv.state.calls.load(Ordering::SeqCst), 0);
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test]
fn head_limits_give_431() {
    let srv = start(test_config());
    // Too large (max_head_bytes = 4096), sent in pieces.
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n");
    for _ in 0..10 {
        c.send(format!("X-Filler: {}\r\n", "a".repeat(500)).as_bytes());
    }
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 431);
    assert!(c.closed());
    // Too many fields (max_headers = 16).
    let mut c = Client::connect(srv.addr);
    let mut req = "GET / HTTP/1.1\r\nHost: t\r\n".to_string();
    for i in 0..20 {
        req.push_str(&format!("X-{i}: v\r\n"));
    }
    req.push_str("\r\n");
    c.send(req.as_bytes());
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 431);
    assert!(c.closed());
    assert_eq!(srv.state.calls.load(Ordering::SeqCst), 0);
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test]
fn huge_content_length_refused_without_reading() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000\r\n\r\nsome");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test]
fn small_unread_body_is_drained_and_connection_kept() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
    c.send(b"PUT /refuse HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
    for _ in 0..2 {
        let r = c.response(false).unwrap();
        assert_eq!(r.status, 413);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().body, b"hello");
    assert_eq!(srv.state.targets(), ["/refuse", "/refuse", "/"]);
}

#[test]
fn stalled_head_is_closed_while_others_are_served() {
    let srv = start(test_config());
    let t0 = Instant::now();
    let mut slow = Client::connect(srv.addr);
    slow.send(b"GET / HTTP/1.1\r\nHost:");
    let mut silent = Client::connect(srv.addr);
    assert_eq!(get(srv.addr, "/").status, 200);
    assert!(t0.elapsed() < Duration::from_millis(250));
    assert!(slow.closed());
    assert!(silent.closed());
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    assert_eq!(srv.state.calls.load(Ordering::SeqCst), 1);
}

#[test]
fn stalled_body_is_a_read_error() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    let errors = srv.state.errors();
    assert!(
        matches!(
            errors.as_slice(),
            [io::ErrorKind::WouldBlock] | [io::ErrorKind::TimedOut]
        ),
        "{errors:?}"
    );
}

/// A body that keeps arriving, but below the minimum rate, fails with TimedOut once a window
/// of waiting for it is over, well before its stall timeout would.
#[test]
fn a_body_below_the_minimum_rate_is_a_timed_out_read_error() {
    let srv = start(ServerConfig {
        body_timeout: Duration::from_secs(3),
        min_body_rate: 1000,
        body_rate_window: Duration::from_millis(400),
        ..test_config()
    });
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n");
    let mut w = c.s.try_clone().unwrap();
    let trickle = thread::spawn(move || {
        for _ in 0..100 {
            if w.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
    });
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(srv.state.errors(), [io::ErrorKind::TimedOut]);
    drop(c);
    trickle.join().unwrap();
    // A body at full speed is unaffected by the same minimum.
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
}

/// With one worker: a client that pipelines a whole request and the start of the next one
/// gets its first answer, then waits in the poller for the rest of its head, holding no
/// worker, so another client is served meanwhile; the rest of the head completes it.
#[test]
fn a_partial_pipelined_head_waits_without_a_worker() {
    let srv = start(ServerConfig {
        workers: 1,
        head_timeout: Duration::from_secs(30),
        ..test_config()
    });
    let mut a = Client::connect(srv.addr);
    a.send(b"GET /one HTTP/1.1\r\nHost: t\r\n\r\nGET /two HT");
    let r = a.response(false).unwrap();
    assert_eq!(r.status, 404);
    // Another client, served by the only worker (the client's 5 s read timeout is far below
    // the 30 s head timeout a waiting worker would sit out).
    let mut b = Client::connect(srv.addr);
    b.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(b.response(false).unwrap().body, b"hello");
    a.send(b"TP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.response(false).unwrap().status, 404);
    assert_eq!(srv.state.targets(), ["/one", "/", "/two"]);
}

#[test]
fn idle_keep_alive_is_closed_after_idle_timeout() {
    let srv = start(ServerConfig {
        idle_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
    let t0 = Instant::now();
    assert!(c.closed());
    assert!(t0.elapsed() >= Duration::from_millis(250));
}

#[test]
fn expect_continue() {
    let srv = start(test_config());
    // A reading handler: 100 Continue, then the final response.
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 100);
    c.send(b"hello");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // A refusing handler: no 100, final response, connection closed.
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn head_and_no_content() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"HEAD /big HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(BIG.to_string().as_str()));
    c.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(true).unwrap();
    assert_eq!(r.header("content-length"), Some("5"));
    c.send(b"GET /nocontent HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    // No stray body bytes were sent: the next response parses.
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().body, b"hello");
}

#[test]
fn streamed_bodies() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.body.len() as u64, BIG);
    assert!(r.body.iter().all(|&b| b == b'x'));
    assert_eq!(c.response(false).unwrap().body, b"hello");
    // A reader that ends early before anything was sent: 500 instead, connection closed.
    let mut c = Client::connect(srv.addr);
    c.send(b"GET /short HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // A reader that ends early after bytes went out aborts the connection: short body + EOF.
    let mut c = Client::connect(srv.addr);
    c.send(b"GET /short-big HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("3000000"));
    assert!(r.body.len() < 3_000_000);
    assert!(c.closed());
}

#[test]
fn panic_gives_500_and_server_lives_on() {
    let srv = start(ServerConfig {
        workers: 1,
        ..test_config()
    });
    for _ in 0..3 {
        let mut c = Client::connect(srv.addr);
        c.send(b"GET /panic HTTP/1.1\r\nHost: t\r\n\r\n");
        let r = c.response(false).unwrap();
        assert_eq!(r.status, 500);
        assert_eq!(r.body, b"internal server error");
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.closed());
    }
    assert_eq!(get(srv.addr, "/").status, 200);
}

#[test]
fn max_connections_gives_503() {
    let srv = start(ServerConfig {
        workers: 1,
        max_connections: 2,
        ..test_config()
    });
    let mut a = Client::connect(srv.addr);
    a.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(a.response(false).unwrap().status, 200);
    // `a` holds the only worker (keep-alive); `b` is queued; `c` is one too many.
    let mut b = Client::connect(srv.addr);
    let mut c = Client::connect(srv.addr);
    let r = c.response(false).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // Queue pressure makes the idle keep-alive connection give its worker to `b`.
    b.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(b.response(false).unwrap().status, 200);
    assert!(a.closed());
}

#[test]
fn shutdown_finishes_in_flight_and_returns() {
    let mut srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhe");
    thread::sleep(Duration::from_millis(50));
    srv.shutdown.shutdown();
    c.send(b"llo");
    let r = c.response(false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    let t0 = Instant::now();
    srv.thread.take().unwrap().join().unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(TcpStream::connect(srv.addr).is_err());
}

#[test]
fn idle_connections_close_on_shutdown() {
    let mut srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
    let t0 = Instant::now();
    srv.shutdown.shutdown();
    assert!(c.closed());
    srv.thread.take().unwrap().join().unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(1));
}

#[test]
fn types_and_log_helpers() {
    fn assert_send<T: Send>() {}
    assert_send::<Request>();
    assert_send::<Response>();
    assert_send::<ShutdownHandle>();
    assert_eq!(path_of("/a/b?token=x"), "/a/b");
    assert_eq!(path_of("/a%20b"), "/a%20b");
    assert_eq!(log_safe("a b\nc"), "a_b_c");
    assert_eq!(reason(431), "Request Header Fields Too Large");
    let mut head = Vec::new();
    encode_head(
        &mut head,
        201,
        &[
            ("Content-Length".into(), "5".into()),
            ("X-Ok".into(), "yes".into()),
            ("X-Bad".into(), "a\r\nInjected: 1".into()),
        ],
        Some(0),
        true,
    );
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 201 Created\r\nX-Ok: yes\r\nDate: "));
    assert!(head.ends_with("\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!head.contains("Injected") && !head.contains("Length: 5"));
}

#[test]
fn the_end_of_a_head_is_searched_from_where_the_last_search_stopped() {
    use super::request::head_end_seen;
    let head = b"GET / HTTP/1.1\r\nHost: x\r\n";
    assert!(!head_end_seen(head, 0));
    let mut whole = head.to_vec();
    whole.extend_from_slice(b"\r\n");
    // Found whether the terminator arrived whole or split across two reads.
    assert!(head_end_seen(&whole, 0));
    assert!(head_end_seen(&whole, head.len()));
    assert!(head_end_seen(&whole, head.len() - 1));
    assert!(head_end_seen(b"GET / HTTP/1.0\n\n", 15));
    // Empty lines before the request line are no end; too many of them are malformed.
    assert!(!head_end_seen(b"\r\n\r\nGET / HTTP/1.1\r\n", 0));
    assert!(head_end_seen(&[b'\n'; 17], 16));
    assert!(head_ready(&[b'\n'; 17], &test_config()));
}

#[test]
fn too_many_empty_lines_before_the_request_line_are_a_400() {
    let srv = start(test_config());
    let mut c = Client::connect(srv.addr);
    let mut req = b"\r\n".repeat(20);
    req.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    c.send(&req);
    assert_eq!(c.response(false).unwrap().status, 400);
    // One empty line is ignored (RFC 9112 §2.2).
    let mut c = Client::connect(srv.addr);
    c.send(b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response(false).unwrap().status, 200);
}
