//! The bodies of the fuzz targets (issue 11): one function per parser that takes bytes from
//! anyone, each checking what must hold for every input, never trusting it. A panic, or a
//! failed check, is a finding. `fuzz/` (cargo-fuzz, libFuzzer, nightly) calls them with
//! coverage guidance; `tests/fuzz.rs` calls them on stable with a seeded mutator and a fixed
//! budget, so CI runs every target on every change. Not an API: hidden from the docs.

use crate::api::{parse_range, RangeSpec};
use crate::names;
use std::io::Read;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Splits `data` at its first NUL into a small header-ish text and the rest.
fn split(data: &[u8]) -> (String, &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(i) => (
            String::from_utf8_lossy(&data[..i]).into_owned(),
            &data[i + 1..],
        ),
        None => (String::from_utf8_lossy(data).into_owned(), &[]),
    }
}

/// Names and percent-coding: the validators against GITEA-COMPAT §3 written out as Gitea's
/// own regular expressions (a differential target), and decoding against encoding.
pub fn names(data: &[u8]) {
    static GITEA: OnceLock<(regex::Regex, regex::Regex)> = OnceLock::new();
    let (package_re, file_re) = GITEA.get_or_init(|| {
        (
            // Go's \w is ASCII: (?-u).
            regex::Regex::new(r"(?-u)\A[-_+.\w]+\z").expect("package regex"),
            regex::Regex::new(r"(?-u)\A[-_+=:;.()\[\]{}~!@#$%^& \w]+\z").expect("file regex"),
        )
    });
    let s = String::from_utf8_lossy(data);
    let fits = s.len() <= names::MAX_COMPONENT_BYTES;
    // Package name: the regex, no one-character non-alphanumeric, not "..".
    let gitea_package = package_re.is_match(&s)
        && (s.len() != 1 || s.bytes().all(|b| b.is_ascii_alphanumeric()))
        && s != "..";
    assert_eq!(
        names::valid_package_name(&s),
        gitea_package && fits,
        "package name {s:?}"
    );
    // File name: the regex, no surrounding whitespace (Go's TrimSpace), not "." or "..".
    let gitea_file = file_re.is_match(&s) && s.trim() == s && s != "." && s != "..";
    assert_eq!(
        names::valid_file_name(&s),
        gitea_file && fits,
        "file name {s:?}"
    );
    // Version: non-empty and equal to itself trimmed.
    assert_eq!(
        names::valid_version(&s),
        !s.is_empty() && s.trim() == s && fits,
        "version {s:?}"
    );
    // Decoding a segment either fails or gives text that encodes back to something that
    // decodes to the same text.
    if let Some(decoded) = names::percent_decode(&s) {
        let encoded = names::encode_component(&decoded);
        assert_eq!(
            names::percent_decode(&encoded).as_deref(),
            Some(decoded.as_str()),
            "{s:?}"
        );
        assert!(!encoded.contains('/'), "{encoded:?}");
    }
    let _ = names::audit_text(&s);
    let _ = names::percent_encode(&s);
}

/// `Range` against a file size from the first 8 bytes: every part lies inside the file and
/// none is empty.
pub fn range(data: &[u8]) {
    let mut size = [0u8; 8];
    let n = data.len().min(8);
    size[..n].copy_from_slice(&data[..n]);
    // parse_range takes a file of at least one byte.
    let size = (u64::from_le_bytes(size) % (1 << 50)).max(1);
    let header = String::from_utf8_lossy(&data[n..]);
    if let RangeSpec::Parts(parts) = parse_range(&header, size) {
        assert!(!parts.is_empty(), "{header:?}");
        for (start, end) in parts {
            assert!(
                start < end && end <= size,
                "{header:?} on {size}: {start}..{end}"
            );
        }
    }
}

/// `Authorization` and the `token` query parameter: any bytes parse to some credential or to
/// none, and a secret is never longer than what was sent.
pub fn authorization(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    match crate::auth::parse_authorization(Some(&s)) {
        crate::auth::Credentials::Anonymous => {}
        crate::auth::Credentials::Token(t) => assert!(t.len() <= s.len()),
        crate::auth::Credentials::Basic { user, secret } => {
            // Base64 decodes to at most 3/4 of its length.
            assert!(user.len() + secret.len() <= s.len(), "{s:?}");
        }
    }
    if let Some(t) = crate::auth::query_token(&s) {
        assert!(t.len() <= s.len());
    }
}

/// A `multipart/form-data` body: the content type before the first NUL, the body after. The
/// file part read out is never longer than the body.
pub fn multipart(data: &[u8]) {
    let (content_type, body) = split(data);
    let Some(boundary) = crate::multipart::boundary(&content_type) else {
        return;
    };
    let mut part = crate::multipart::FirstFilePart::new(body, &boundary);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match part.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                assert!(out.len() <= body.len(), "more out than in");
            }
        }
    }
}

/// A tar stream as bundles use it: entries and their data, never more data out than in.
pub fn tar(data: &[u8]) {
    let mut reader = crate::bundle::tar::Reader::new(data);
    let mut total = 0u64;
    for _ in 0..1000 {
        match reader.next_entry() {
            // A header may claim more than the stream holds: reading its data then fails.
            Ok(Some(_)) => {
                let mut sink = Vec::new();
                match reader.data().read_to_end(&mut sink) {
                    Ok(n) => {
                        total += n as u64;
                        assert!(total <= data.len() as u64);
                    }
                    Err(_) => return,
                }
            }
            Ok(None) | Err(_) => return,
        }
    }
}

/// A bundle manifest: parsed (and checked) or refused; a parsed one serializes and parses
/// again to the same thing.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = crate::bundle::parse_manifest(data) {
        let again = serde_json::to_vec(&m).expect("a parsed manifest serializes");
        let back = crate::bundle::parse_manifest(&again).expect("its own output parses");
        assert_eq!(
            serde_json::to_value(&back).ok(),
            serde_json::to_value(&m).ok()
        );
    }
}

/// JSON bodies of `/api/v1`: quota and cleanup-rule fields, refused with an error or taken.
pub fn json_bodies(data: &[u8]) {
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice(data) {
        crate::api::fuzz_json_bodies(&m);
    }
}

/// A scratch directory of this process and thread for targets that need files.
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shelf-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A backup stream restored: refused, or a database that opens and checks clean (the stream
/// carries its own sha256, so a damaged one must never restore).
pub fn backup_stream(data: &[u8]) {
    let dir = scratch();
    let out = dir.join("restored.redb");
    let _ = std::fs::remove_file(&out);
    if crate::store::restore(data, &out).is_ok() {
        let store = crate::store::Store::open(&out).expect("a restored backup opens");
        let report = store.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        store.close().expect("close");
    }
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(dir.join("restored.redb.partial"));
}

/// One HTTP/1.1 exchange of raw bytes with shelf's HTTP layer on loopback (a handler that
/// reads the whole body): every answer is a well-formed status line, and never a 500.
pub fn http(data: &[u8]) {
    use std::io::Write;
    use std::net::{Shutdown, TcpStream};
    use std::time::Duration;
    static SERVER: OnceLock<std::net::SocketAddr> = OnceLock::new();
    let addr = *SERVER.get_or_init(|| {
        let config = crate::http::ServerConfig {
            workers: 4,
            head_timeout: Duration::from_millis(500),
            idle_timeout: Duration::from_millis(500),
            body_timeout: Duration::from_millis(500),
            ..crate::http::ServerConfig::default()
        };
        let server = crate::http::Server::bind("127.0.0.1:0", config).expect("bind");
        let addr = server.local_addr();
        std::thread::spawn(move || {
            let _ = server.run(std::sync::Arc::new(|req: &mut crate::http::Request| {
                let mut sink = Vec::new();
                match req.body.read_to_end(&mut sink) {
                    Ok(n) => crate::http::Response::text(200, &format!("{n}\n")),
                    Err(_) => crate::http::Response::text(400, "bad body\n"),
                }
            }));
        });
        addr
    });
    let Ok(mut c) = TcpStream::connect(addr) else {
        return;
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = c.write_all(data);
    let _ = c.shutdown(Shutdown::Write);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let mut rest = &got[..];
    while !rest.is_empty() {
        assert!(
            rest.starts_with(b"HTTP/1.1 ") && rest.len() >= 12,
            "not a status line: {:?}",
            String::from_utf8_lossy(&rest[..rest.len().min(64)])
        );
        let code = &rest[9..12];
        assert!(code.iter().all(u8::is_ascii_digit), "{code:?}");
        assert_ne!(
            code,
            b"500",
            "a 500 for {:?}",
            String::from_utf8_lossy(data)
        );
        // The next response, if the connection carried several.
        match rest[1..].windows(9).position(|w| w == b"HTTP/1.1 ") {
            Some(i) => rest = &rest[i + 1..],
            None => break,
        }
    }
}

/// A session against the API handler over a fresh store: the bytes choose each request's
/// method, route, names (valid, invalid, differently cased, escaped), credentials, headers and
/// body. No request a client makes may get a 5xx (the store is healthy), nothing panics, and
/// the store checks clean afterwards.
pub fn api_sequence(data: &[u8]) {
    use crate::http::{Body, Headers, Request};
    use std::sync::atomic::{AtomicU64, Ordering};
    const TOKEN: &str = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = scratch().join(format!("api-{}", RUN.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::create_dir_all(&dir);
    let store = crate::store::Store::open(&dir.join("f.redb")).expect("open");
    store
        .create_user(&names::Owner::site_admin(), true)
        .expect("admin");
    store
        .create_token(crate::store::NewToken {
            user: "admin".into(),
            name: "fuzz".into(),
            scopes: vec!["all".into()],
            given: Some(TOKEN.into()),
            ..crate::store::NewToken::default()
        })
        .expect("token");
    let api = crate::api::Api::new(
        std::sync::Arc::clone(&store),
        crate::api::ApiConfig {
            max_file_size: Some(1 << 20),
            external_url: None,
            auth_failure_burst: 0,
            trusted_proxies: Vec::new(),
        },
    );
    const OWNERS: [&str; 4] = ["admin", "ADMIN", "nobody", "a%20b"];
    const NAMES: [&str; 6] = ["app", "App", "..", "a%2Fb", "x+y", "%ZZ"];
    const VERSIONS: [&str; 6] = ["1.0", "1.0", "latest", "%201", "2", "v%C3%A9"];
    const FILES: [&str; 6] = ["f", "F", "a%20b", ".", "f.tar.gz", "%00"];
    let mut rest = data;
    while rest.len() >= 6 {
        let (op, tail) = rest.split_at(6);
        let len = usize::from(op[5] % 64).min(tail.len());
        let (body, tail) = tail.split_at(len);
        rest = tail;
        let pick = |i: usize, n: usize| usize::from(op[i]) % n;
        let (owner, name) = (OWNERS[pick(1, 4)], NAMES[pick(2, 6)]);
        let (version, file) = (VERSIONS[pick(3, 6)], FILES[pick(4, 6)]);
        let (method, target) = match op[0] % 8 {
            0 => (
                "PUT",
                format!("/api/packages/{owner}/generic/{name}/{version}/{file}"),
            ),
            1 => (
                "GET",
                format!("/api/packages/{owner}/generic/{name}/{version}/{file}"),
            ),
            2 => (
                "HEAD",
                format!("/api/packages/{owner}/generic/{name}/{version}/{file}"),
            ),
            3 => (
                "DELETE",
                format!("/api/packages/{owner}/generic/{name}/{version}/{file}"),
            ),
            4 => (
                "DELETE",
                format!("/api/packages/{owner}/generic/{name}/{version}"),
            ),
            5 => (
                "GET",
                format!("/api/v1/packages/{owner}?q={name}&page={version}"),
            ),
            6 => (
                "GET",
                format!("/api/v1/packages/{owner}/generic/{name}/{version}/files"),
            ),
            _ => ("DELETE", format!("/api/v1/packages/{owner}/generic/{name}")),
        };
        let mut headers = Headers::new();
        headers.push("host", "fuzz");
        match op[1] >> 5 {
            0 => {}
            1 => headers.push("authorization", "token wrong"),
            2 => headers.push("authorization", String::from_utf8_lossy(body).into_owned()),
            _ => headers.push("authorization", format!("token {TOKEN}")),
        }
        match op[2] >> 5 {
            1 => headers.push("range", String::from_utf8_lossy(body).into_owned()),
            2 => headers.push(
                "x-checksum-sha256",
                hex::encode(&body[..body.len().min(32)]),
            ),
            3 => headers.push("content-type", "multipart/form-data; boundary=b"),
            4 => {
                headers.push("x-checksum-deploy", "true");
                headers.push("x-checksum-sha256", hex::encode([op[3]; 32]));
            }
            5 => headers.push("if-none-match", String::from_utf8_lossy(body).into_owned()),
            _ => {}
        }
        let mut req = Request {
            method: method.into(),
            target,
            headers,
            peer: "127.0.0.1:1".parse().expect("addr"),
            secure: false,
            body: Body::from_bytes(body.to_vec()),
        };
        let resp = api.handle(&mut req);
        assert!(
            resp.status < 500,
            "{} {} answered {}",
            req.method,
            req.target,
            resp.status
        );
    }
    drop(api);
    let report = store.check().expect("check");
    assert!(report.faults.is_empty(), "{:?}", report.faults);
    store.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A target's body.
pub type Target = fn(&[u8]);

/// Every target, by name (the stable harness runs each; cargo-fuzz has one file per target).
pub const TARGETS: &[(&str, Target)] = &[
    ("names", names),
    ("range", range),
    ("authorization", authorization),
    ("multipart", multipart),
    ("tar", tar),
    ("manifest", manifest),
    ("json_bodies", json_bodies),
    ("backup_stream", backup_stream),
    ("http", http),
    ("api_sequence", api_sequence),
];
