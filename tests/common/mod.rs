//! Shared by the integration tests: start the real `shelf` binary on an ephemeral loopback port
//! with a fresh database, and talk raw HTTP/1.1 to it (so every byte on the wire is the test's).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const ADMIN_TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";

/// A running shelf with its own temp directory; killed and cleaned up on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: PathBuf,
    pub db: PathBuf,
    args: Vec<String>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "shelf-it-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_shelf")
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Server {
        let dir = temp_dir("srv");
        let db = dir.join("shelf.redb");
        Server::start_on(dir, db, extra)
    }

    /// Starts shelf on an existing directory/database (used for restarts).
    pub fn start_on(dir: PathBuf, db: PathBuf, extra: &[&str]) -> Server {
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut child = Command::new(bin())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--db")
            .arg(&db)
            .args(&args)
            .env("SHELF_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shelf");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("shelf exited before printing its address")
                .expect("read shelf stdout");
            // "shelf listening on http://ADDR (database …)", or https:// with TLS.
            if let Some(rest) = line
                .strip_prefix("shelf listening on ")
                .and_then(|l| l.split("://").nth(1))
            {
                let addr = rest.split_whitespace().next().expect("address");
                break addr.parse().expect("parse listen address");
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            dir,
            db,
            args,
        }
    }

    /// A server the test spawned itself (with its own flags or environment), listening at
    /// `addr`; killed and its `dir` removed on drop, as the others.
    pub fn adopt(child: Child, addr: SocketAddr, dir: PathBuf, db: PathBuf) -> Server {
        Server {
            child,
            addr,
            dir,
            db,
            args: Vec::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }

    /// One request on a fresh connection.
    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut s = self.connect();
        send(&mut s, method, path, headers, body);
        read_response(&mut BufReader::new(s), method == "HEAD")
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req("GET", path, &[], b"")
    }

    pub fn put_as(&self, token: &str, path: &str, body: &[u8]) -> Resp {
        let auth = format!("token {token}");
        self.req("PUT", path, &[("Authorization", &auth)], body)
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Resp {
        self.put_as(ADMIN_TOKEN, path, body)
    }

    pub fn delete(&self, path: &str) -> Resp {
        let auth = format!("token {ADMIN_TOKEN}");
        self.req("DELETE", path, &[("Authorization", &auth)], b"")
    }

    /// Runs a CLI subcommand against this server's database (the server must be stopped).
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli(&self.db, args)
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!("shelf did not stop within 20 s of SIGTERM");
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a new server process on the same database (after stop or kill9).
    pub fn restart(mut self) -> Server {
        let dir = std::mem::take(&mut self.dir);
        let db = self.db.clone();
        let args = self.args.clone();
        let extra: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let _ = self.child.kill();
        let _ = self.child.wait();
        Server::start_on(dir, db, &extra)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Creates user `name` and a token for it with the offline CLI; returns the token.
pub fn user_with_token(s: &mut Server, name: &str, admin: bool) -> String {
    s.stop();
    let mut args = vec!["user", "add", name];
    if admin {
        args.push("--admin");
    }
    let out = s.cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = s.cli(&["token", "create", name, "--name", "ci"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout
        .lines()
        .last()
        .expect("token line")
        .trim()
        .to_string();
    assert_eq!(token.len(), 40, "token alone on the last line: {stdout:?}");
    token
}

pub fn cli(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run shelf cli")
}

pub fn send(s: &mut TcpStream, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n");
    let mut has_len = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            has_len = true;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_len && (!body.is_empty() || method == "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    s.write_all(&buf).expect("send request");
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response (Content-Length or chunked; HEAD has no body).
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> Resp {
    try_read_response(r, head_only).expect("read response")
}

pub fn try_read_response<R: BufRead>(r: &mut R, head_only: bool) -> std::io::Result<Resp> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        if status == 100 {
            continue;
        }
        let find = |n: &str| {
            headers
                .iter()
                .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
        };
        let mut body = Vec::new();
        if !head_only && status != 204 && status != 304 {
            if let Some(len) = find("content-length") {
                let len: usize = len.parse().map_err(std::io::Error::other)?;
                body.resize(len, 0);
                r.read_exact(&mut body)?;
            } else if find("transfer-encoding").is_some() {
                loop {
                    let mut size = String::new();
                    r.read_line(&mut size)?;
                    let n =
                        usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
                    let mut chunk = vec![0; n + 2];
                    r.read_exact(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
            }
        }
        return Ok(Resp {
            status,
            headers,
            body,
        });
    }
}

/// Deterministic, incompressible test bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// xorshift64*: a deterministic, dependency-free generator for the tests that fuzz (the raw
/// HTTP requests of `http_layer.rs`, the mutations of `fuzz.rs`).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough below `n` (0 for `n` = 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.below(items.len())]
    }
}
