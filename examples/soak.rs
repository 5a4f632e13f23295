//! `soak`: a bounded run of mixed load against a real shelf (issue 11, item 5). Not a test:
//! it takes 20 minutes by default and judges what only a long run shows.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example soak                      # 20 minutes, 6 clients
//! cargo run --release --example soak -- --minutes 3 --clients 4 --sample 30
//! ```
//!
//! It starts `--shelf` (default `target/release/shelf`) on a fresh database in a temporary
//! directory on loopback, and runs `--clients` clients, each on its own package and its own
//! keep-alive connection:
//! - uploads of every size, from 0 bytes to 96 MiB (most small, some across chunk
//!   boundaries, a few large), with 1% of them cut off mid-body on a connection of their own;
//! - whole downloads and ranged downloads, every byte checked against what was sent;
//! - repeated uploads (409), downloads of deleted files (404), deletes of files and of
//!   versions, and JSON listings;
//! - one online backup (`shelf backup --server`, verified) at a third of the run and one
//!   export (`shelf export --server`) at two thirds.
//!
//! Every `--sample` seconds it prints the server's RSS, open fds and threads (from /proc)
//! and the database's space figures (`/api/v1/admin/stats`). At the end it downloads every
//! file it holds, deletes them all, stops the server and runs `shelf check`.
//!
//! It passes (exit 0) when: no request got a status it should not have; RSS, fds and threads
//! are flat (the last sample within bounds of the first after the first minute); the chunk
//! bytes stored never exceed the live data plus what uploads in flight may hold; after
//! everything is deleted no chunk byte is left; and `check` is clean.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const TOKEN: &str = "soak0000000000000000000000000000000000ab";
/// Live data each client keeps at most; above it, it deletes instead of uploading.
const LIVE_PER_CLIENT: u64 = 256 << 20;
/// The largest upload.
const MAX_UPLOAD: u64 = 96 << 20;

#[derive(argh::FromArgs)]
/// Mixed load against a real shelf for a bounded time; judges memory, fds, threads, space
/// and statuses.
struct Args {
    /// minutes of load (default 20)
    #[argh(option, default = "20.0")]
    minutes: f64,
    /// concurrent clients (default 6)
    #[argh(option, default = "6")]
    clients: usize,
    /// seconds between samples (default 60)
    #[argh(option, default = "60")]
    sample: u64,
    /// the shelf binary (default target/release/shelf)
    #[argh(option, default = "PathBuf::from(\"target/release/shelf\")")]
    shelf: PathBuf,
    /// seed of the load (default: from the clock)
    #[argh(option)]
    seed: Option<u64>,
}

// ---------------------------------------------------------------- bytes anyone can recompute

fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The bytes of file `seed` from `offset`, into `out`.
fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let at = offset + i as u64;
        *b = (mix64(seed.wrapping_add(at >> 3)) >> ((at & 7) * 8)) as u8;
    }
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// An upload size: most small, many around the 1 MiB chunk size, a few large.
fn size(rng: &mut Rng) -> u64 {
    match rng.below(1000) {
        0..=19 => 0,
        20..=449 => 1 + rng.below(4096),
        450..=749 => 4096 + rng.below(256 << 10),
        750..=949 => (1 << 20) - 2 + rng.below(4 << 20),
        950..=995 => (4 << 20) + rng.below(28 << 20),
        _ => MAX_UPLOAD - rng.below(1 << 20),
    }
}

// ---------------------------------------------------------------- a small HTTP/1.1 client

struct Conn {
    addr: SocketAddr,
    r: Option<BufReader<TcpStream>>,
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn connect(addr: SocketAddr) -> io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    s.set_write_timeout(Some(Duration::from_secs(120)))?;
    Ok(BufReader::with_capacity(256 << 10, s))
}

fn read_head(r: &mut BufReader<TcpStream>) -> io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not a status line: {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Resp { status, headers })
}

/// Reads the body of `resp`, handing each piece to `sink`.
fn read_body(
    r: &mut BufReader<TcpStream>,
    resp: &Resp,
    head_only: bool,
    mut sink: impl FnMut(&[u8]),
) -> io::Result<()> {
    if head_only || resp.status == 204 || resp.status == 304 {
        return Ok(());
    }
    let mut buf = vec![0u8; 256 << 10];
    if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut line = String::new();
            r.read_line(&mut line)?;
            let n = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| io::Error::other(format!("bad chunk size {line:?}")))?;
            if n == 0 {
                r.read_line(&mut line)?;
                return Ok(());
            }
            copy_exact(r, n, &mut buf, &mut sink)?;
            r.read_line(&mut line)?;
        }
    }
    let len: u64 = resp
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other("a body with no length"))?;
    copy_exact(r, len, &mut buf, &mut sink)
}

fn copy_exact(
    r: &mut impl Read,
    mut n: u64,
    buf: &mut [u8],
    sink: &mut impl FnMut(&[u8]),
) -> io::Result<()> {
    while n > 0 {
        let want = (buf.len() as u64).min(n) as usize;
        let got = r.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        sink(&buf[..got]);
        n -= got as u64;
    }
    Ok(())
}

/// Writes a request head; the body (if any) follows from `body`.
fn write_request(
    w: &mut TcpStream,
    method: &str,
    path: &str,
    extra: &[(&str, String)],
    body: Option<(u64, u64)>,
    cut_at: Option<u64>,
) -> io::Result<()> {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: soak\r\nAuthorization: token {TOKEN}\r\n");
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some((_, len)) = body {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    if let Some((seed, len)) = body {
        let end = cut_at.unwrap_or(len);
        let mut buf = vec![0u8; 256 << 10];
        let mut at = 0;
        while at < end {
            let n = (buf.len() as u64).min(end - at) as usize;
            fill(seed, at, &mut buf[..n]);
            w.write_all(&buf[..n])?;
            at += n as u64;
        }
    }
    w.flush()
}

impl Conn {
    /// One exchange on the keep-alive connection (reconnecting once when the server closed
    /// an idle one); `sink` gets the body.
    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, String)],
        body: Option<(u64, u64)>,
        mut sink: impl FnMut(&[u8]),
    ) -> io::Result<Resp> {
        for attempt in 0..2 {
            if self.r.is_none() {
                self.r = Some(connect(self.addr)?);
            }
            let Some(r) = self.r.as_mut() else { continue };
            let sent = write_request(r.get_mut(), method, path, extra, body, None);
            let resp = sent.and_then(|()| read_head(r));
            match resp {
                Ok(resp) => {
                    let read = read_body(r, &resp, method == "HEAD", &mut sink);
                    if read.is_err()
                        || resp
                            .header("connection")
                            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                    {
                        self.r = None;
                    }
                    read?;
                    return Ok(resp);
                }
                Err(e) if attempt == 0 && is_stale(&e) => self.r = None,
                Err(e) => {
                    self.r = None;
                    return Err(e);
                }
            }
        }
        Err(io::Error::other("the connection closed twice"))
    }
}

fn is_stale(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

// ---------------------------------------------------------------- the clients

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    unexpected: AtomicU64,
    aborted: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Bytes of live files, summed over the clients.
    live: AtomicU64,
    /// The first few unexpected answers, for the report.
    notes: Mutex<Vec<String>>,
}

impl Tally {
    fn unexpected(&self, what: String) {
        self.unexpected.fetch_add(1, Ordering::Relaxed);
        eprintln!("UNEXPECTED: {what}");
        if let Ok(mut n) = self.notes.lock() {
            if n.len() < 20 {
                n.push(what);
            }
        }
    }
}

struct Client {
    id: usize,
    rng: Rng,
    conn: Conn,
    /// version → (file → (seed, len)); the client's own package only.
    files: BTreeMap<u64, BTreeMap<String, (u64, u64)>>,
    live: u64,
    next_version: u64,
    /// Paths of cut-off uploads: they must never appear.
    aborted: Vec<String>,
    tally: Arc<Tally>,
}

impl Client {
    fn path(&self, version: u64, file: &str) -> String {
        format!(
            "/api/packages/admin/generic/soak-{}/{version}/{file}",
            self.id
        )
    }

    fn expect(&self, what: &str, got: io::Result<Resp>, want: &[u16]) -> Option<Resp> {
        self.tally.requests.fetch_add(1, Ordering::Relaxed);
        match got {
            Ok(r) if want.contains(&r.status) => Some(r),
            Ok(r) => {
                self.tally
                    .unexpected(format!("{what}: {} (wanted {want:?})", r.status));
                None
            }
            Err(e) => {
                self.tally.unexpected(format!("{what}: {e}"));
                None
            }
        }
    }

    fn step(&mut self) {
        let roll = self.rng.below(100);
        if (roll < 30 || self.files.is_empty()) && self.live < LIVE_PER_CLIENT {
            self.upload();
        } else if roll < 55 {
            self.download(false);
        } else if roll < 70 {
            self.download(true);
        } else if roll < 80 || self.live >= LIVE_PER_CLIENT {
            self.delete();
        } else if roll < 85 {
            self.repeat_upload();
        } else if roll < 90 {
            self.missing();
        } else {
            self.listing();
        }
    }

    fn upload(&mut self) {
        let len = size(&mut self.rng);
        let seed = self.rng.next();
        // New versions mostly; sometimes another file into an existing one.
        let version = match self.files.keys().next_back() {
            Some(&v) if self.rng.chance(30) => v,
            _ => {
                self.next_version += 1;
                self.next_version
            }
        };
        let file = format!("f{}.bin", self.rng.below(1 << 40));
        let path = self.path(version, &file);
        if self.rng.chance(1) {
            return self.cut_off(path, seed, len.max(2));
        }
        let got = self
            .conn
            .exchange("PUT", &path, &[], Some((seed, len)), |_| {});
        if self.expect(&format!("PUT {path}"), got, &[201]).is_some() {
            self.files
                .entry(version)
                .or_default()
                .insert(file, (seed, len));
            self.live += len;
            self.tally.live.fetch_add(len, Ordering::Relaxed);
            self.tally.bytes_up.fetch_add(len, Ordering::Relaxed);
        }
    }

    /// An upload cut off mid-body on a connection of its own: the server must store nothing.
    fn cut_off(&mut self, path: String, seed: u64, len: u64) {
        self.tally.aborted.fetch_add(1, Ordering::Relaxed);
        let cut = 1 + self.rng.below(len - 1);
        match connect(self.conn.addr) {
            Ok(mut r) => {
                let _ = write_request(r.get_mut(), "PUT", &path, &[], Some((seed, len)), Some(cut));
                let _ = r.get_mut().shutdown(std::net::Shutdown::Both);
            }
            Err(e) => self.tally.unexpected(format!("connect: {e}")),
        }
        self.aborted.push(path);
    }

    fn pick(&mut self) -> Option<(u64, String, u64, u64)> {
        let n = self.files.len() as u64;
        let (&v, files) = self.files.iter().nth(self.rng.below(n) as usize)?;
        let (f, &(seed, len)) = files
            .iter()
            .nth(self.rng.below(files.len() as u64) as usize)?;
        Some((v, f.clone(), seed, len))
    }

    fn download(&mut self, ranged: bool) {
        let Some((v, f, seed, len)) = self.pick() else {
            return;
        };
        let path = self.path(v, &f);
        let (start, end) = if ranged && len > 0 {
            let a = self.rng.below(len);
            (a, a + self.rng.below((len - a).min(8 << 20)))
        } else {
            (0, len.saturating_sub(1))
        };
        let extra = if ranged && len > 0 {
            vec![("Range", format!("bytes={start}-{end}"))]
        } else {
            Vec::new()
        };
        let mut at = start;
        let mut same = true;
        let mut want = vec![0u8; 256 << 10];
        let got = self.conn.exchange("GET", &path, &extra, None, |piece| {
            fill(seed, at, &mut want[..piece.len()]);
            same &= want[..piece.len()] == *piece;
            at += piece.len() as u64;
        });
        let status = if extra.is_empty() { 200 } else { 206 };
        if let Some(r) = self.expect(&format!("GET {path} {extra:?}"), got, &[status]) {
            let expected_end = if len == 0 { 0 } else { end + 1 };
            if !same || at != expected_end {
                self.tally.unexpected(format!(
                    "GET {path} {extra:?}: wrong bytes ({at} of {start}..={end}, {:?})",
                    r.header("content-range")
                ));
            }
            self.tally
                .bytes_down
                .fetch_add(at - start, Ordering::Relaxed);
        }
    }

    fn delete(&mut self) {
        let Some((v, f, _, _)) = self.pick() else {
            return;
        };
        if self.rng.chance(30) {
            // The whole version.
            let path = format!("/api/packages/admin/generic/soak-{}/{v}", self.id);
            let got = self.conn.exchange("DELETE", &path, &[], None, |_| {});
            if self
                .expect(&format!("DELETE {path}"), got, &[204])
                .is_some()
            {
                let gone: u64 = self
                    .files
                    .remove(&v)
                    .map(|fs| fs.values().map(|&(_, l)| l).sum())
                    .unwrap_or(0);
                self.live -= gone;
                self.tally.live.fetch_sub(gone, Ordering::Relaxed);
            }
            return;
        }
        let path = self.path(v, &f);
        let got = self.conn.exchange("DELETE", &path, &[], None, |_| {});
        if self
            .expect(&format!("DELETE {path}"), got, &[204])
            .is_some()
        {
            if let Some(files) = self.files.get_mut(&v) {
                if let Some((_, len)) = files.remove(&f) {
                    self.live -= len;
                    self.tally.live.fetch_sub(len, Ordering::Relaxed);
                }
                if files.is_empty() {
                    self.files.remove(&v);
                }
            }
        }
    }

    fn repeat_upload(&mut self) {
        let Some((v, f, _, _)) = self.pick() else {
            return;
        };
        let path = self.path(v, &f);
        let got = self.conn.exchange("PUT", &path, &[], Some((1, 10)), |_| {});
        self.expect(&format!("PUT again {path}"), got, &[409]);
    }

    fn missing(&mut self) {
        let path = match self.aborted.last() {
            Some(p) if self.rng.chance(50) => p.clone(),
            _ => self.path(999_999_999, "never"),
        };
        let got = self.conn.exchange("GET", &path, &[], None, |_| {});
        self.expect(&format!("GET missing {path}"), got, &[404]);
    }

    fn listing(&mut self) {
        let page = 1 + self.rng.below(3);
        let path = format!("/api/v1/packages/admin?type=generic&page={page}&limit=50");
        let got = self.conn.exchange("GET", &path, &[], None, |_| {});
        self.expect(&format!("GET {path}"), got, &[200]);
        if let Some(&v) = self.files.keys().next() {
            let path = format!("/api/v1/packages/admin/generic/soak-{}/{v}/files", self.id);
            let got = self.conn.exchange("GET", &path, &[], None, |_| {});
            self.expect(&format!("GET {path}"), got, &[200]);
        }
    }

    /// At the end: every file whole, every cut-off upload absent, then everything deleted.
    fn finish(&mut self) {
        let all: Vec<(u64, String, u64, u64)> = self
            .files
            .iter()
            .flat_map(|(&v, fs)| fs.iter().map(move |(f, &(s, l))| (v, f.clone(), s, l)))
            .collect();
        for (v, f, seed, len) in all {
            let path = self.path(v, &f);
            let mut at = 0u64;
            let mut same = true;
            let mut want = vec![0u8; 256 << 10];
            let got = self.conn.exchange("GET", &path, &[], None, |piece| {
                fill(seed, at, &mut want[..piece.len()]);
                same &= want[..piece.len()] == *piece;
                at += piece.len() as u64;
            });
            if self
                .expect(&format!("final GET {path}"), got, &[200])
                .is_some()
                && (!same || at != len)
            {
                self.tally
                    .unexpected(format!("final GET {path}: wrong bytes"));
            }
        }
        for path in self.aborted.clone() {
            let got = self.conn.exchange("GET", &path, &[], None, |_| {});
            self.expect(&format!("cut-off upload {path}"), got, &[404]);
        }
        for v in self.files.keys().copied().collect::<Vec<_>>() {
            let path = format!("/api/packages/admin/generic/soak-{}/{v}", self.id);
            let got = self.conn.exchange("DELETE", &path, &[], None, |_| {});
            self.expect(&format!("final DELETE {path}"), got, &[204]);
        }
        self.tally.live.fetch_sub(self.live, Ordering::Relaxed);
        self.files.clear();
        self.live = 0;
    }
}

// ---------------------------------------------------------------- the server and its samples

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn start(shelf: &Path, db: &Path) -> Result<Server, String> {
    let mut child = Command::new(shelf)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("SHELF_ADMIN_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", shelf.display()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(out).lines();
    let addr = loop {
        let line = lines
            .next()
            .ok_or("shelf exited before it listened")?
            .map_err(|e| e.to_string())?;
        if let Some(rest) = line.split("http://").nth(1) {
            let a = rest.split_whitespace().next().unwrap_or("");
            break a.parse().map_err(|e| format!("{a:?}: {e}"))?;
        }
    };
    thread::spawn(move || for _ in lines {});
    Ok(Server { child, addr })
}

#[derive(Clone, Debug, Default)]
struct Sample {
    at: f64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    file: u64,
    allocated: u64,
    free: u64,
    physical: u64,
    chunks: u64,
    live: u64,
}

fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            })
        })
        .unwrap_or(0)
}

/// A number field of a flat JSON object (enough for the stats answer).
fn json_u64(body: &str, key: &str) -> u64 {
    body.split(&format!("\"{key}\":"))
        .nth(1)
        .and_then(|r| {
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse().ok()
        })
        .unwrap_or(0)
}

fn sample(server: &Server, t0: Instant, tally: &Tally) -> Sample {
    let pid = server.child.id();
    let mut conn = Conn {
        addr: server.addr,
        r: None,
    };
    let mut body = Vec::new();
    let _ = conn.exchange("GET", "/api/v1/admin/stats", &[], None, |p| {
        body.extend_from_slice(p)
    });
    let body = String::from_utf8_lossy(&body);
    Sample {
        at: t0.elapsed().as_secs_f64(),
        rss_kib: status_field(pid, "VmRSS:"),
        threads: status_field(pid, "Threads:"),
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count() as u64)
            .unwrap_or(0),
        file: json_u64(&body, "file_bytes"),
        allocated: json_u64(&body, "allocated_bytes"),
        free: json_u64(&body, "free_bytes"),
        physical: json_u64(&body, "physical_bytes"),
        chunks: json_u64(&body, "chunks"),
        live: tally.live.load(Ordering::Relaxed),
    }
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1u64 << 20) as f64)
}

fn print_sample(s: &Sample, tally: &Tally) {
    println!(
        "{:>6.0}s  rss {:>6} MiB  fds {:>4}  threads {:>3}  db {:>7} MiB (allocated {:>7}, free {:>7})  \
         chunk bytes {:>7} MiB  live {:>7} MiB  requests {:>7}  unexpected {}",
        s.at,
        mib(s.rss_kib << 10),
        s.fds,
        s.threads,
        mib(s.file),
        mib(s.allocated),
        mib(s.free),
        mib(s.physical),
        mib(s.live),
        tally.requests.load(Ordering::Relaxed),
        tally.unexpected.load(Ordering::Relaxed),
    );
}

/// Runs a CLI command of `shelf` against the server; true when it succeeded.
fn cli(shelf: &Path, what: &str, args: &[&str], server: &Server) -> bool {
    let t = Instant::now();
    let out = Command::new(shelf)
        .args(args)
        .args(["--server", &format!("http://{}", server.addr)])
        .env("SHELF_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            println!(
                "{what} done in {:.1} s: {}",
                t.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .replace('\n', "; ")
            );
            true
        }
        Ok(o) => {
            println!(
                "{what} FAILED: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            println!("{what} FAILED to start: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    match run(&args) {
        Ok(true) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("FAIL");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<bool, String> {
    if !args.shelf.exists() {
        return Err(format!(
            "{} does not exist: build it first (cargo build --release) or name it with --shelf",
            args.shelf.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("shelf-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let db = dir.join("soak.redb");
    let mut server = start(&args.shelf, &db)?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    println!(
        "soak: {} clients for {} min against {} (database {}), seed {seed}",
        args.clients,
        args.minutes,
        server.addr,
        db.display()
    );
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let clients: Vec<_> = (0..args.clients)
        .map(|id| {
            let stop = Arc::clone(&stop);
            let tally = Arc::clone(&tally);
            let addr = server.addr;
            thread::spawn(move || {
                let mut c = Client {
                    id,
                    rng: Rng(seed ^ mix64(id as u64 + 1)),
                    conn: Conn { addr, r: None },
                    files: BTreeMap::new(),
                    live: 0,
                    next_version: 0,
                    aborted: Vec::new(),
                    tally,
                };
                while !stop.load(Ordering::Relaxed) {
                    c.step();
                }
                c.finish();
            })
        })
        .collect();
    let mut samples = vec![sample(&server, t0, &tally)];
    print_sample(&samples[0], &tally);
    let (mut backed_up, mut exported) = (None, None);
    let mut over_bound = Vec::new();
    let every = Duration::from_secs(args.sample.max(1));
    let mut next = t0 + every;
    while t0.elapsed() < total {
        thread::sleep(Duration::from_millis(200));
        let el = t0.elapsed();
        if backed_up.is_none() && el >= total / 3 {
            let out = dir.join("backup.redb");
            let ok = cli(
                &args.shelf,
                "backup",
                &["backup", out.to_str().unwrap_or_default()],
                &server,
            );
            backed_up = Some(ok);
            let _ = std::fs::remove_file(out);
        }
        if exported.is_none() && el >= total * 2 / 3 {
            let out = dir.join("export.tar");
            let ok = cli(
                &args.shelf,
                "export",
                &[
                    "export",
                    "--owner",
                    "admin",
                    "-o",
                    out.to_str().unwrap_or_default(),
                ],
                &server,
            );
            exported = Some(ok);
            let _ = std::fs::remove_file(out);
        }
        if Instant::now() >= next {
            next += every;
            let s = sample(&server, t0, &tally);
            print_sample(&s, &tally);
            // Chunk bytes stored beyond the live files: at most what uploads in flight hold.
            let bound = s.live + args.clients as u64 * MAX_UPLOAD;
            if s.physical > bound {
                over_bound.push(format!(
                    "at {:.0}s chunk bytes {} > live {} + in flight",
                    s.at, s.physical, s.live
                ));
            }
            samples.push(s);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        if c.join().is_err() {
            tally.unexpected("a client thread panicked".into());
        }
    }
    // Give the server a moment to drop the connections the clients closed.
    thread::sleep(Duration::from_secs(2));
    let end = sample(&server, t0, &tally);
    print_sample(&end, &tally);
    let _ = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status();
    let stopped = server.child.wait().map(|s| s.success()).unwrap_or(false);
    let check = Command::new(&args.shelf)
        .args(["check", "--db"])
        .arg(&db)
        .output()
        .map_err(|e| format!("check: {e}"))?;
    let check_text = String::from_utf8_lossy(&check.stdout).into_owned();
    let check_ok = check.status.success() && check_text.contains("\nok");

    // The judgement.
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.at >= 60.0).collect();
    let first = warm.first().copied().unwrap_or(&samples[0]);
    let last = samples.last().unwrap_or(&samples[0]);
    let range = |f: fn(&Sample) -> u64| {
        let v: Vec<u64> = warm.iter().map(|s| f(s)).collect();
        (
            v.iter().min().copied().unwrap_or(0),
            v.iter().max().copied().unwrap_or(0),
        )
    };
    let (rss_lo, rss_hi) = range(|s| s.rss_kib);
    let (fd_lo, fd_hi) = range(|s| s.fds);
    let (th_lo, th_hi) = range(|s| s.threads);
    let rss_flat = last.rss_kib <= first.rss_kib + first.rss_kib / 4 + 8 * 1024;
    let fds_flat = last.fds <= first.fds + 4;
    let threads_flat = last.threads <= first.threads + 2;
    let secs = t0.elapsed().as_secs_f64();
    println!();
    println!(
        "requests {} ({:.0}/s), uploads {} MiB, downloads {} MiB, cut-off uploads {}",
        tally.requests.load(Ordering::Relaxed),
        tally.requests.load(Ordering::Relaxed) as f64 / secs,
        mib(tally.bytes_up.load(Ordering::Relaxed)),
        mib(tally.bytes_down.load(Ordering::Relaxed)),
        tally.aborted.load(Ordering::Relaxed)
    );
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    println!("unexpected statuses: {unexpected}");
    if let Ok(n) = tally.notes.lock() {
        for x in n.iter() {
            println!("  {x}");
        }
    }
    println!(
        "after the first minute: rss {}..{} MiB (first {}, last {}) {}; fds {fd_lo}..{fd_hi} \
         (first {}, last {}) {}; threads {th_lo}..{th_hi} (first {}, last {}) {}",
        mib(rss_lo << 10),
        mib(rss_hi << 10),
        mib(first.rss_kib << 10),
        mib(last.rss_kib << 10),
        if rss_flat { "flat" } else { "GROWING" },
        first.fds,
        last.fds,
        if fds_flat { "flat" } else { "GROWING" },
        first.threads,
        last.threads,
        if threads_flat { "flat" } else { "GROWING" },
    );
    let emptied = end.physical == 0 && end.chunks == 0;
    println!(
        "space: chunk bytes within live data + in flight at every sample: {}; after deleting \
         everything: {} chunks, {} chunk bytes, database {} MiB of which {} MiB free",
        if over_bound.is_empty() { "yes" } else { "NO" },
        end.chunks,
        end.physical,
        mib(end.file),
        mib(end.free)
    );
    for x in &over_bound {
        println!("  {x}");
    }
    println!(
        "backup during the load: {}; export during the load: {}; clean stop: {stopped}; check: {}",
        backed_up.map_or("not run", |ok| if ok { "ok" } else { "FAILED" }),
        exported.map_or("not run", |ok| if ok { "ok" } else { "FAILED" }),
        if check_ok { "clean" } else { "NOT CLEAN" }
    );
    if !check_ok {
        println!("{check_text}");
    }
    let pass = unexpected == 0
        && rss_flat
        && fds_flat
        && threads_flat
        && over_bound.is_empty()
        && emptied
        && backed_up == Some(true)
        && exported == Some(true)
        && stopped
        && check_ok;
    if pass {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("kept {} for a look", dir.display());
    }
    Ok(pass)
}
