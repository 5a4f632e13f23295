//! `/metrics`, `/healthz` and `/readyz` on the real binary: counters move by exactly what known
//! requests should add, histograms are cumulative with `_count` = `+Inf`, labels never carry
//! names, the store totals match what was uploaded, and the optional bearer token.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::time::Duration;

const PKG: &str = "zq-hushpkg";
const VERSION: &str = "9.8.7-hush";
const FILE: &str = "hidden-name.bin";

/// Sample key (name with labels, as printed) → value.
type Samples = BTreeMap<String, f64>;

fn parse(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.rsplit_once(' ').expect("sample line: name value");
        let v: f64 = match v {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(out.insert(k.to_string(), v).is_none(), "duplicate {k}");
    }
    out
}

/// A scrape after every earlier exchange has been recorded. A request is counted once its
/// response is written, so a client may read a response before it is counted; when only the
/// scrape's own connection is busy, all earlier ones are done.
fn scrape(s: &Server) -> (String, Samples) {
    scrape_with(s, &[])
}

fn scrape_with(s: &Server, headers: &[(&str, &str)]) -> (String, Samples) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (text, m) = scrape_now(s, headers);
        if get(&m, "shelf_http_connections_busy") == 1.0 {
            return (text, m);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "connections stay busy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A scrape as is (other connections may be busy).
fn scrape_now(s: &Server, headers: &[(&str, &str)]) -> (String, Samples) {
    let r = s.req("GET", "/metrics", headers, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    check_format(&text);
    let samples = parse(&text);
    (text, samples)
}

fn get(m: &Samples, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn requests(m: &Samples, route: &str, method: &str, status: u16) -> f64 {
    get(
        m,
        &format!(
            "shelf_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}}"
        ),
    )
}

/// The exposition rules a Prometheus parser relies on: each family has one HELP and one TYPE
/// before its samples; histogram buckets are cumulative and end in `+Inf` = `_count`; no label
/// carries a name the test used.
fn check_format(text: &str) {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "two TYPE lines for {name}"
            );
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().expect("HELP name");
            assert!(helped.insert(name.to_string()), "two HELP lines for {name}");
        } else if !line.is_empty() {
            let name = line.split(['{', ' ']).next().expect("name");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
                "{line}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|b| typed.get(*b).map(String::as_str) == Some("histogram"))
                })
                .unwrap_or(name);
            assert!(typed.contains_key(family), "sample before TYPE: {line}");
            for secret in [PKG, VERSION, FILE, "hush", "hidden"] {
                assert!(!line.contains(secret), "a name leaked into {line}");
            }
        }
    }
    // Histograms: for each series, buckets rise and +Inf equals _count.
    let samples = parse(text);
    let mut series: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for (k, v) in &samples {
        let Some((name, labels)) = k.split_once("_bucket{") else {
            continue;
        };
        let labels = labels.trim_end_matches('}');
        let mut le = None;
        let mut rest = Vec::new();
        for l in labels.split(',') {
            match l.strip_prefix("le=") {
                Some(x) => {
                    let x = x.trim_matches('"');
                    le = Some(if x == "+Inf" {
                        f64::INFINITY
                    } else {
                        x.parse().expect("le")
                    });
                }
                None => rest.push(l),
            }
        }
        let key = if rest.is_empty() {
            format!("{name}_count")
        } else {
            format!("{name}_count{{{}}}", rest.join(","))
        };
        series
            .entry(key)
            .or_default()
            .push((le.expect("le label"), *v));
    }
    assert!(!series.is_empty(), "no histograms");
    for (count_key, mut buckets) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 16, "{count_key}: 15 bounds and +Inf");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{count_key}");
        let (le, inf) = *buckets.last().expect("buckets");
        assert!(le.is_infinite());
        assert_eq!(samples.get(&count_key), Some(&inf), "{count_key}");
    }
}

fn file_path() -> String {
    format!("/api/packages/admin/generic/{PKG}/{VERSION}/{FILE}")
}

#[test]
fn metrics_count_requests_bytes_latency_and_store_totals() {
    let s = Server::start();
    // Two files with the same 3 MiB + 5 bytes (stored once) and a small one, before the first
    // scrape (whose byte totals are computed then, and cached for 30 s).
    let big = pattern(3 * 1024 * 1024 + 5, 7);
    assert_eq!(s.put(&file_path(), &big).status, 201);
    let copy = format!("/api/packages/admin/generic/{PKG}/{VERSION}/copy.bin");
    assert_eq!(s.put(&copy, &big).status, 201);
    let small = format!("/api/packages/admin/generic/{PKG}/1.0/small.txt");
    assert_eq!(s.put(&small, b"hello").status, 201);

    let (_, m0) = scrape(&s);
    assert_eq!(get(&m0, "shelf_files"), 3.0);
    assert_eq!(get(&m0, "shelf_versions"), 2.0);
    assert_eq!(get(&m0, "shelf_packages"), 1.0);
    assert_eq!(get(&m0, "shelf_contents"), 2.0);
    // 3 MiB + 5 in 1,044,480-byte chunks: 4 chunks, + 1 for "hello".
    assert_eq!(get(&m0, "shelf_chunks"), 5.0);
    assert_eq!(get(&m0, "shelf_upload_pins"), 0.0);
    assert_eq!(get(&m0, "shelf_logical_bytes"), (2 * big.len() + 5) as f64);
    assert_eq!(get(&m0, "shelf_physical_bytes"), (big.len() + 5) as f64);
    let ratio = get(&m0, "shelf_dedup_ratio");
    let want = (2 * big.len() + 5) as f64 / (big.len() + 5) as f64;
    assert!((ratio - want).abs() < 1e-9, "{ratio} vs {want}");
    let db_size = std::fs::metadata(&s.db).expect("db file").len() as f64;
    assert!(get(&m0, "shelf_database_size_bytes") >= big.len() as f64);
    assert!(get(&m0, "shelf_database_size_bytes") <= db_size * 2.0);
    assert_eq!(
        get(
            &m0,
            &format!(
                "shelf_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let start = get(&m0, "process_start_time_seconds");
    // The kernel's boot time is whole seconds and the start time in clock ticks: a start
    // reads up to a few seconds off on a loaded machine.
    assert!(
        start > now - 600.0 && start <= now + 5.0,
        "{start} vs {now}"
    );
    assert!(get(&m0, "shelf_http_connections_open") >= 1.0);
    assert!(get(&m0, "shelf_http_workers") >= 1.0);
    assert_eq!(requests(&m0, "generic_file", "PUT", 201), 3.0);
    assert_eq!(get(&m0, "shelf_upload_duration_seconds_count"), 3.0);
    assert_eq!(
        get(
            &m0,
            "shelf_http_request_bytes_total{route=\"generic_file\"}"
        ),
        (2 * big.len() + 5) as f64
    );

    // Known requests between two scrapes.
    assert_eq!(s.put(&file_path(), &big).status, 409);
    let r = s.get(&file_path());
    assert_eq!(r.status, 200);
    assert_eq!(r.body, big);
    let r = s.req("GET", &file_path(), &[("Range", "bytes=0-99")], b"");
    assert_eq!(r.status, 206);
    assert_eq!(
        s.get(&format!("/api/packages/admin/generic/{PKG}/{VERSION}/nope"))
            .status,
        404
    );
    assert_eq!(s.req("HEAD", &file_path(), &[], b"").status, 200);
    assert_eq!(
        s.get(&format!("/api/v1/packages/admin?token={ADMIN_TOKEN}"))
            .status,
        200
    );
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(
        s.get(&format!("/api/packages/admin/generic/{PKG}/1.0"))
            .status,
        405
    );

    let (_, m1) = scrape(&s);
    let moved = |route: &str, method: &str, status: u16| {
        requests(&m1, route, method, status) - requests(&m0, route, method, status)
    };
    assert_eq!(moved("generic_file", "PUT", 409), 1.0);
    assert_eq!(moved("generic_file", "PUT", 201), 0.0);
    assert_eq!(moved("generic_file", "GET", 200), 1.0);
    assert_eq!(moved("generic_file", "GET", 206), 1.0);
    assert_eq!(moved("generic_file", "GET", 404), 1.0);
    assert_eq!(moved("generic_file", "HEAD", 200), 1.0);
    assert_eq!(moved("v1_packages", "GET", 200), 1.0);
    assert_eq!(moved("health", "GET", 200), 1.0);
    assert_eq!(moved("generic_version", "GET", 405), 1.0);
    // The first scrape is counted by the second (and any retry of `scrape` waiting for the
    // earlier exchanges to be recorded).
    assert!(moved("metrics", "GET", 200) >= 1.0);
    // The 409 was refused before its body was read: no request bytes.
    let req_bytes = |m: &Samples| get(m, "shelf_http_request_bytes_total{route=\"generic_file\"}");
    assert_eq!(req_bytes(&m1) - req_bytes(&m0), 0.0);
    let resp_bytes =
        |m: &Samples| get(m, "shelf_http_response_bytes_total{route=\"generic_file\"}");
    let sent = resp_bytes(&m1) - resp_bytes(&m0);
    // The whole file, the 100-byte range, and the short texts of the 404 and the 409.
    assert!(
        sent >= (big.len() + 100) as f64 && sent < (big.len() + 100 + 500) as f64,
        "response bytes moved by {sent}"
    );
    // Downloads: the GET 200 and the 206 (HEAD and 404 are not downloads).
    let count = |m: &Samples, n: &str| get(m, &format!("{n}_count"));
    assert_eq!(
        count(&m1, "shelf_download_duration_seconds")
            - count(&m0, "shelf_download_duration_seconds"),
        2.0
    );
    assert_eq!(
        count(&m1, "shelf_upload_duration_seconds") - count(&m0, "shelf_upload_duration_seconds"),
        0.0
    );
    assert!(get(&m1, "shelf_download_duration_seconds_sum") > 0.0);
    let all = |m: &Samples| {
        get(
            m,
            "shelf_http_request_duration_seconds_count{route=\"generic_file\"}",
        )
    };
    assert_eq!(all(&m1) - all(&m0), 5.0); // 409, 200, 206, 404, HEAD
    assert_eq!(get(&m1, "shelf_uploads_in_flight"), 0.0);
}

#[test]
fn uploads_in_flight_gauge_follows_a_slow_upload() {
    let s = Server::start();
    let body = pattern(200_000, 3);
    let mut c = s.connect();
    let head = format!(
        "PUT {} HTTP/1.1\r\nHost: t\r\nAuthorization: token {ADMIN_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        file_path(),
        body.len()
    );
    c.write_all(head.as_bytes()).expect("head");
    c.write_all(&body[..1000]).expect("part");
    let mut seen = 0.0;
    for _ in 0..100 {
        let (_, m) = scrape_now(&s, &[]);
        seen = get(&m, "shelf_uploads_in_flight");
        if seen == 1.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, 1.0, "the upload is in flight");
    c.write_all(&body[1000..]).expect("rest");
    let r = read_response(&mut BufReader::new(c), false);
    assert_eq!(r.status, 201);
    let (_, m) = scrape(&s);
    assert_eq!(get(&m, "shelf_uploads_in_flight"), 0.0);
    assert_eq!(get(&m, "shelf_upload_duration_seconds_count"), 1.0);
}

#[test]
fn metrics_token_is_required_when_set_and_not_a_sign_in_failure() {
    let secret = "metrics-secret-0123456789";
    let s = Server::start_with(&["--metrics-token", secret]);
    // More refusals than the sign-in failure burst (10).
    for auth in [
        "",
        "Bearer wrong",
        "token metrics-secret-0123456789",
        "Bearer ",
    ] {
        for _ in 0..4 {
            let headers: Vec<(&str, &str)> = if auth.is_empty() {
                vec![]
            } else {
                vec![("Authorization", auth)]
            };
            let r = s.req("GET", "/metrics", &headers, b"");
            assert_eq!(r.status, 401, "{auth:?}");
            assert!(r.header("www-authenticate").is_some());
            assert!(!r.text().contains("shelf_"));
        }
    }
    let bearer = format!("Bearer {secret}");
    let (_, m) = scrape_with(&s, &[("Authorization", &bearer)]);
    assert_eq!(requests(&m, "metrics", "GET", 401), 16.0);
    // The 16 refusals were not failed sign-ins: a wrong registry token is still 401, not 429.
    let r = s.put_as("wrong-token", &file_path(), b"x");
    assert_eq!(r.status, 401);
    // Health endpoints need no token.
    assert_eq!(s.get("/healthz").status, 200);
    assert_eq!(s.get("/readyz").status, 200);
}

#[test]
fn health_and_readiness() {
    let s = Server::start();
    let r = s.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = s.get("/readyz");
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = s.req("HEAD", path, &[], b"");
        assert_eq!(r.status, 200, "{path}");
        assert!(r.body.is_empty());
        assert!(r.header("content-length").is_some());
        let r = s.req("POST", path, &[], b"x");
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // A flood of probes on keep-alive connections: all ready (their durable writes are
    // coalesced; the bound only catches a hang, not a speed, on a shared machine).
    let started = std::time::Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = s.addr;
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(addr).expect("connect");
                let mut r = BufReader::new(c.try_clone().expect("clone"));
                for _ in 0..50 {
                    send(&mut c, "GET", "/readyz", &[], b"");
                    assert_eq!(read_response(&mut r, false).status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("probe thread");
    }
    assert!(started.elapsed() < Duration::from_secs(60));
    // The registry routes are untouched: an owner called "metrics" or "healthz" still works.
    assert_eq!(
        s.get("/api/packages/metrics/generic/healthz/1/readyz")
            .status,
        404
    );
}

#[test]
fn requests_the_http_layer_rejects_are_counted_too() {
    let s = Server::start();
    let (_, m0) = scrape(&s);
    // A request line httparse refuses (400), and a head with too many headers (431).
    let mut c = s.connect();
    c.write_all(b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("send");
    assert_eq!(read_response(&mut BufReader::new(c), false).status, 400);
    let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: t\r\n");
    for i in 0..200 {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    head.push_str("\r\n");
    let mut c = s.connect();
    c.write_all(head.as_bytes()).expect("send");
    assert_eq!(read_response(&mut BufReader::new(c), false).status, 431);
    let (_, m1) = scrape(&s);
    for status in [400, 431] {
        assert_eq!(
            requests(&m1, "other", "other", status) - requests(&m0, "other", "other", status),
            1.0,
            "{status}"
        );
    }
}
