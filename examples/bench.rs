//! `bench`: shelf's own HTTP load generator.
//!
//! It drives any server that takes `PUT`, `GET` and `DELETE` on a URL: shelf
//! (Gitea's generic package API), Gitea itself, nginx WebDAV, dufs, and so on.
//! The HTTP/1.1 client is written here on top of `std::net` (one keep-alive
//! connection per client thread, `TCP_NODELAY`). Upload bodies are streamed
//! from a pseudo-random generator through a 1 MiB buffer, so even a large file
//! never sits in memory.
//!
//! An `https://` URL is served the same way over rustls (ring, as shelf
//! itself: TLS 1.3 or 1.2, ALPN `http/1.1`, SNI and certificate check against
//! the URL's host, a DNS name or an IP address). The handshake is done when the
//! connection opens and the session is kept alive with it. The certificate is
//! verified against the PEM CA certificates of `--ca-cert FILE`, or, without
//! it, the system's (rustls-native-certs); there is no way to skip the check.
//! The `backup` workload hands `--ca-cert` to `shelf backup` as
//! `SHELF_CA_CERT`; `hostile` drives raw sockets and takes `http://` only.
//!
//! ```text
//! # a local shelf, token from the environment, all workloads, 3 rounds
//! SHELF_TOKEN=... cargo run --release --example bench
//!
//! # only the small-file workload, more files and clients
//! cargo run --release --example bench -- --token T --workload small \
//!     --small-count 5000 --concurrency 16
//!
//! # one 256 MiB file, 5 rounds, leave the uploads on the server
//! cargo run --release --example bench -- --token T --workload large \
//!     --large-size 256M --rounds 5 --no-cleanup
//!
//! # the JSON API listing of an owner with 100,000 versions; keep the data
//! # and reuse it in a second run
//! cargo run --release --example bench -- --token T --workload listing \
//!     --rounds 1 --no-cleanup
//! cargo run --release --example bench -- --token T --workload listing \
//!     --rounds 3 --listing-skip-setup
//!
//! # issue 13: the HTML pages over the same 100,000 versions, reused
//! cargo run --release --example bench -- --token T --workload pages \
//!     --rounds 3 --listing-skip-setup --no-cleanup
//!
//! # issue 12: 4 KiB GETs while 10,000 idle keep-alive connections and 1,000
//! # slow heads are held (raise the server's --max-connections and
//! # --idle-timeout first); the server's memory comes from /proc/PID/status
//! cargo run --release --example bench -- --token T --workload hostile \
//!     --server-pid "$(pgrep -x shelf)"
//!
//! # another server: nginx WebDAV with HTTP Basic auth
//! cargo run --release --example bench -- \
//!     --url 'http://127.0.0.1:8081/dav/{pkg}/{ver}/{file}' --basic bench:benchtoken
//!
//! # shelf serving TLS itself (shelf serve --tls-cert chain.pem --tls-key key.pem),
//! # its certificate signed by a private CA
//! cargo run --release --example bench -- --token T --ca-cert ca.pem \
//!     --url 'https://localhost:8443/api/packages/admin/generic/{pkg}/{ver}/{file}'
//! ```
//!
//! Workloads, each run `--rounds` times under a fresh package name
//! (`bench-<pid>-<round>`), so runs never collide:
//!
//! * `large`: PUT one `--large-size` file, then GET it; MB/s for each
//!   (MB = 10^6 bytes). The download is checked byte for byte against a 64-bit
//!   hash of what was sent, computed while reading.
//! * `small`: `--concurrency` clients PUT `--small-count` files of
//!   `--small-size`, GET them all (length and hash checked), then DELETE them;
//!   req/s and p50/p99 latency for each phase.
//! * `listing` (shelf or Gitea only, and not part of `all`): once, before the
//!   rounds, `--concurrency` clients publish `--listing-versions` versions of
//!   one 1-byte file spread over `--listing-packages` packages
//!   (`PUT {base}/api/packages/{owner}/generic/listing-NNNN/1.0.J/f`, with the
//!   base and the owner taken from `--url`); `--listing-skip-setup` reuses
//!   the versions a `--no-cleanup` run left. Each round then times, on one
//!   keep-alive connection after 10 warm-up requests, `--listing-requests`
//!   sequential `GET {base}/api/v1/packages/{owner}` of the first page
//!   (`page=1&limit=50`), of a deep page (`page=versions/50/2`) and of a
//!   search (`q=-NNNN&limit=50`, one package's versions): p50/p99/max
//!   latency, with `X-Total-Count` and the number of array elements checked.
//!   At the end the packages are deleted
//!   (`DELETE {base}/api/v1/packages/{owner}/generic/{pkg}`).
//!
//! * `pages` (shelf only, not part of `all`): the HTML pages (issue 13) over
//!   the `listing` data set, published the same way with the same flags
//!   (`--listing-versions`, `--listing-packages`, `--listing-skip-setup`).
//!   Each round times, on one keep-alive connection without credentials (a
//!   visitor who is not signed in: the owner must be public) after 10 warm-up
//!   requests, `--listing-requests` sequential GETs of each page: the owner's
//!   (`{base}/{owner}`), a deep page of it (`?page=400`, 20 versions a page),
//!   an owner search (`?q=-NNNN`), explore (`{base}/`), an explore search
//!   (`/?q=listing-NNNN`), that package's page
//!   (`/{owner}/-/packages/generic/listing-NNNN`) and its version `1.0.0`:
//!   p50/p99/max latency and the largest HTML body in bytes, flagged when over
//!   issue 13's 100 KB (10^5 bytes). Each answer must be a 200 showing the
//!   version count (`<p class="count">`; explore's counts every owner, so at
//!   least) and the rows of its page (`<a class="row"`), or, for the version,
//!   its files table. The packages are deleted at the end, as by `listing`.
//!
//! * `backup` (shelf only, not part of `all`): once, `--backup-data` bytes are
//!   published as 64 MiB files; each round runs `shelf backup --server` with no
//!   other load (MB/s of the stream), then batches of `--small-count` small PUTs
//!   and GETs alone (req/s), then the same batches during a second backup, and
//!   times `shelf check --db` on the backup. Needs a site admin's token and the
//!   `shelf` binary (`--shelf-bin`, default target/release/shelf).
//!
//! * `hostile` (not part of `all`, `http://` only): each round PUTs one
//!   `--small-size` file, then opens `--idle-conns` connections that each GET it once and then
//!   stay idle (kept alive: the server holds them under its idle timeout),
//!   and keeps `--slow-conns` connections sending a request head (a valid GET
//!   padded to 2 KiB) one byte a second, reopening each one the server closes
//!   (on its head timeout, say) and counting the reopenings. One thread
//!   drives all of those sockets, non-blocking through epoll. Meanwhile
//!   `--concurrency` clients GET the file one request after the other for
//!   `--hostile-secs` (2 s after the slow heads start): req/s, p50/p99/p99.9/
//!   max latency and the requests over 50 ms. Then how many idle connections
//!   are still open (a non-blocking peek at each, which disturbs nothing) and
//!   how many the server closed, and what the slow connections saw. Requests
//!   of this workload time out after 10 s, not 300. With `--server-pid`, the
//!   server's VmRSS and VmHWM (and threads, open descriptors) are printed
//!   before the round and while everything is held. The bench raises its own
//!   RLIMIT_NOFILE soft limit to the hard limit. `--idle-conns 0
//!   --slow-conns 0` is the baseline.
//!
//! At the end of a round the version is deleted (`DELETE` of the URL template
//! with `/{file}` removed; with a trailing slash too when the server asks for
//! one, as nginx does; file by file when the server answers 404 or 405),
//! unless `--no-cleanup`, which also skips the small DELETE phase.
//!
//! Output is plain lines: `round N ...` per round and phase, then a summary of
//! medians over the rounds (`large PUT  <x> MB/s`,
//! `small GET  <x> req/s  p50 <ms> ms  p99 <ms> ms`,
//! `listing deep  p50 <ms> ms  p99 <ms> ms  max <ms> ms`,
//! `pages owner  p50 <ms> ms  p99 <ms> ms  max <ms> ms  html <bytes> B`,
//! `pages html max <bytes> B (<page>)`,
//! `hostile GET  <x> req/s  p50 <ms> ms  p99 <ms> ms ...`, ...), then `errors N`.
//! Any failed request (non-2xx status, short body, hash mismatch, I/O error)
//! is printed to stderr and makes the exit status 1; bad usage exits 2.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argh::FromArgs;
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const DEFAULT_URL: &str = "http://127.0.0.1:8080/api/packages/admin/generic/{pkg}/{ver}/{file}";
/// Size of each connection's read buffer and of the upload write buffer.
const BUF: usize = 1 << 20;
/// Longest status or header line accepted from the server.
const MAX_LINE: u64 = 16 << 10;
/// Socket read/write timeout: a server that stalls this long is an error.
const IO_TIMEOUT: Duration = Duration::from_secs(300);
/// At most this many error lines are printed; all of them are counted.
const MAX_PRINTED_ERRORS: usize = 30;
/// Bytes of an error response's body quoted in the error line.
const SNIPPET: usize = 160;
const MB: f64 = 1e6;

// ------------------------------------------------------------------ CLI

#[derive(FromArgs)]
/// Load generator for shelf, or any server taking PUT/GET/DELETE on a URL.
struct Args {
    /// URL template with {pkg}, {ver} and {file} placeholders, http:// or https://host:port/path
    /// (default http://127.0.0.1:8080/api/packages/admin/generic/{pkg}/{ver}/{file})
    #[argh(option, default = "DEFAULT_URL.to_string()")]
    url: String,

    /// PEM file of CA certificates to trust for an https:// URL, instead of the system's
    #[argh(option)]
    ca_cert: Option<String>,

    /// token sent as `Authorization: token T` (default: $SHELF_TOKEN)
    #[argh(option)]
    token: Option<String>,

    /// HTTP Basic credentials USER:PASS, instead of a token
    #[argh(option)]
    basic: Option<String>,

    /// workload to run: large, small, all (both), listing, pages, backup or hostile (default all)
    #[argh(option, default = "Workload::All", from_str_fn(parse_workload))]
    workload: Workload,

    /// size of the large file; K, M, G suffixes are binary (default 1G)
    #[argh(option, default = "1 << 30", from_str_fn(parse_size))]
    large_size: u64,

    /// size of each small file (default 4K)
    #[argh(option, default = "4 << 10", from_str_fn(parse_size))]
    small_size: u64,

    /// number of small files (default 2000)
    #[argh(option, default = "2000")]
    small_count: usize,

    /// client connections for the small and hostile workloads (default 8)
    #[argh(option, default = "8")]
    concurrency: usize,

    /// rounds per workload; the summary shows their medians (default 3)
    #[argh(option, default = "3")]
    rounds: usize,

    /// leave the uploads on the server (also skips the small DELETE phase)
    #[argh(switch)]
    no_cleanup: bool,

    /// versions the listing and pages workloads publish (default 100000)
    #[argh(option, default = "100_000")]
    listing_versions: usize,

    /// packages the listing versions are spread over (default 100)
    #[argh(option, default = "100")]
    listing_packages: usize,

    /// timed requests per listing query or page, after 10 warm-up ones (default 200)
    #[argh(option, default = "200")]
    listing_requests: usize,

    /// do not publish the listing versions: the owner already has them from a
    /// run with --no-cleanup and the same --listing-versions/--listing-packages
    #[argh(switch)]
    listing_skip_setup: bool,

    /// bytes the backup workload publishes before its rounds, as 64 MiB files (default 2G)
    #[argh(option, default = "2 << 30", from_str_fn(parse_size))]
    backup_data: u64,

    /// pass --limit-rate to the loaded backup of the backup workload, e.g. 50MB
    #[argh(option)]
    backup_limit_rate: Option<String>,

    /// the shelf binary that runs `backup` and `check` (default: `shelf` beside the
    /// examples directory of this bench, i.e. target/release/shelf)
    #[argh(option)]
    shelf_bin: Option<String>,

    /// keep-alive connections the hostile workload holds idle, each after one GET (default 10000)
    #[argh(option, default = "10_000")]
    idle_conns: usize,

    /// connections the hostile workload keeps sending a request head at 1 byte/s (default 1000)
    #[argh(option, default = "1000")]
    slow_conns: usize,

    /// seconds of timed GETs in each hostile round (default 30)
    #[argh(option, default = "30.0")]
    hostile_secs: f64,

    /// the server's process id: the hostile workload prints its VmRSS and VmHWM
    #[argh(option)]
    server_pid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    Large,
    Small,
    All,
    Listing,
    Pages,
    Backup,
    Hostile,
}

impl Workload {
    fn large(self) -> bool {
        matches!(self, Workload::Large | Workload::All)
    }
    fn small(self) -> bool {
        matches!(self, Workload::Small | Workload::All)
    }
    fn listing(self) -> bool {
        self == Workload::Listing
    }
    fn pages(self) -> bool {
        self == Workload::Pages
    }
    /// The workloads that publish (or reuse) the listing data set.
    fn listing_data(self) -> bool {
        matches!(self, Workload::Listing | Workload::Pages)
    }
    fn backup(self) -> bool {
        self == Workload::Backup
    }
    fn hostile(self) -> bool {
        self == Workload::Hostile
    }
    fn name(self) -> &'static str {
        match self {
            Workload::Large => "large",
            Workload::Small => "small",
            Workload::All => "all",
            Workload::Listing => "listing",
            Workload::Pages => "pages",
            Workload::Backup => "backup",
            Workload::Hostile => "hostile",
        }
    }
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    match s {
        "large" => Ok(Workload::Large),
        "small" => Ok(Workload::Small),
        "all" => Ok(Workload::All),
        "listing" => Ok(Workload::Listing),
        "pages" => Ok(Workload::Pages),
        "backup" => Ok(Workload::Backup),
        "hostile" => Ok(Workload::Hostile),
        _ => Err(format!(
            "unknown workload {s:?}: use large, small, all, listing, pages, backup or hostile"
        )),
    }
}

/// `123`, `4K`, `1M`, `1G` (binary multiples; a trailing `B`/`iB` is allowed).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix(['B', 'b']))
        .unwrap_or(t);
    let (num, shift) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 10),
        Some((i, 'm' | 'M')) => (&t[..i], 20),
        Some((i, 'g' | 'G')) => (&t[..i], 30),
        Some((i, 't' | 'T')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?}: use a number with an optional K, M or G suffix"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

// ------------------------------------------------------------------ target URL

/// `http[s]://host:port/path-template`, split once at start-up.
struct Target {
    host: String,
    port: u16,
    /// `host:port` as written, for the Host header and messages.
    authority: String,
    /// Path with `{pkg}`, `{ver}`, `{file}` placeholders.
    path: String,
    /// For an `https://` URL: the client configuration and the name the
    /// certificate is checked against (SNI), the URL's host.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl Target {
    /// Splits the URL; for `https://`, builds the TLS client with `ca_cert`'s
    /// certificates as the roots (the system's when `None`).
    fn parse(url: &str, ca_cert: Option<&str>) -> Result<Target, String> {
        let (https, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(format!(
                "{url}: only http:// or https://host:port/path URLs are supported"
            ));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => return Err(format!("{url}: the URL has no path")),
        };
        if authority.is_empty() || authority.contains(['{', '@']) {
            return Err(format!("{url}: bad host {authority:?}"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url}: unclosed [ in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| format!("{url}: bad port {p:?}"))?,
            None if https => 443,
            None => 80,
        };
        for ph in ["{pkg}", "{ver}", "/{file}"] {
            if !path.contains(ph) {
                return Err(format!("{url}: the template needs {ph}"));
            }
        }
        if path.contains(['?', '#']) {
            return Err(format!("{url}: query strings are not supported"));
        }
        let tls = if https {
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| format!("{url}: {host:?} is not a TLS server name: {e}"))?;
            Some((tls_config(ca_cert)?, name))
        } else {
            None
        };
        Ok(Target {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            path: path.to_string(),
            tls,
        })
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn file_path(&self, pkg: &str, ver: &str, file: &str) -> String {
        self.path
            .replace("{pkg}", pkg)
            .replace("{ver}", ver)
            .replace("{file}", file)
    }

    /// The template with `/{file}` removed: the version's URL.
    fn version_path(&self, pkg: &str, ver: &str) -> String {
        self.path
            .replacen("/{file}", "", 1)
            .replace("{pkg}", pkg)
            .replace("{ver}", ver)
    }

    /// `.../{pkg}/` when the template reads `.../{pkg}/{ver}/...`.
    fn package_dir(&self, pkg: &str) -> Option<String> {
        let i = self.path.find("{pkg}/{ver}")?;
        Some(format!(
            "{}/",
            self.path[..i + "{pkg}".len()].replace("{pkg}", pkg)
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme(), self.authority, path)
    }
}

/// The TLS client: TLS 1.3 or 1.2 (rustls with ring, as shelf itself), ALPN
/// http/1.1, verifying against `ca_cert` or else the system's CA certificates.
fn tls_config(ca_cert: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_cert {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| format!("--ca-cert {path}: {e}"))?;
            for cert in CertificateDer::pem_slice_iter(&data) {
                let cert = cert.map_err(|e| format!("--ca-cert {path}: not valid PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--ca-cert {path}: unusable certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "--ca-cert {path}: no \"BEGIN CERTIFICATE\" block in it"
                ));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                return Err(
                    "no system CA certificates for https://; pass the server's CA with --ca-cert"
                        .to_string(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

// ------------------------------------------------------------------ content and hash

const K1: u64 = 0x9E37_79B9_7F4A_7C15;
const K2: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// splitmix64 finaliser.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(K1);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn le64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// Deterministic pseudo-random bytes: four interleaved xorshift64 streams.
/// The output depends only on the seed, never on how `fill` is called.
struct Gen {
    s: [u64; 4],
    spare: [u8; 32],
    spare_pos: usize,
}

impl Gen {
    fn new(seed: u64) -> Gen {
        let mut s = [0u64; 4];
        for (k, v) in s.iter_mut().enumerate() {
            *v = mix64(seed ^ (k as u64).wrapping_mul(K2)) | 1;
        }
        Gen {
            s,
            spare: [0; 32],
            spare_pos: 32,
        }
    }

    fn stripe(&mut self, out: &mut [u8]) {
        for (k, w) in out.chunks_exact_mut(8).enumerate() {
            let mut x = self.s[k];
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.s[k] = x;
            w.copy_from_slice(&x.to_le_bytes());
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        let k = (32 - self.spare_pos).min(out.len());
        out[..k].copy_from_slice(&self.spare[self.spare_pos..self.spare_pos + k]);
        self.spare_pos += k;
        let mut it = out[k..].chunks_exact_mut(32);
        for c in &mut it {
            self.stripe(c);
        }
        let rest = it.into_remainder();
        if !rest.is_empty() {
            let mut sp = [0u8; 32];
            self.stripe(&mut sp);
            rest.copy_from_slice(&sp[..rest.len()]);
            self.spare = sp;
            self.spare_pos = rest.len();
        }
    }
}

/// A cheap streaming 64-bit hash (four multiply lanes over 32-byte stripes);
/// the result does not depend on how the input is split into `update` calls.
struct Hash64 {
    lanes: [u64; 4],
    tail: [u8; 32],
    tail_len: usize,
    total: u64,
}

impl Hash64 {
    fn new() -> Hash64 {
        Hash64 {
            lanes: [K1, K2, K1 ^ K2, K1.rotate_left(32)],
            tail: [0; 32],
            tail_len: 0,
            total: 0,
        }
    }

    fn stripe(lanes: &mut [u64; 4], s: &[u8]) {
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane = (*lane ^ le64(&s[k * 8..])).wrapping_mul(K2).rotate_left(29);
        }
    }

    fn update(&mut self, mut d: &[u8]) {
        self.total += d.len() as u64;
        if self.tail_len > 0 {
            let k = (32 - self.tail_len).min(d.len());
            self.tail[self.tail_len..self.tail_len + k].copy_from_slice(&d[..k]);
            self.tail_len += k;
            d = &d[k..];
            if self.tail_len < 32 {
                return;
            }
            Self::stripe(&mut self.lanes, &self.tail);
            self.tail_len = 0;
        }
        let mut it = d.chunks_exact(32);
        for s in &mut it {
            Self::stripe(&mut self.lanes, s);
        }
        let r = it.remainder();
        self.tail[..r.len()].copy_from_slice(r);
        self.tail_len = r.len();
    }

    fn finish(&self) -> u64 {
        let mut h = self.total.wrapping_mul(K1);
        for l in self.lanes {
            h = mix64(h ^ l);
        }
        for &b in &self.tail[..self.tail_len] {
            h = (h ^ u64::from(b)).wrapping_mul(K2);
        }
        mix64(h)
    }
}

/// Hash of the first `len` bytes of `Gen::new(seed)`, using `scratch` as buffer.
fn content_hash(seed: u64, len: u64, scratch: &mut [u8]) -> u64 {
    let mut g = Gen::new(seed);
    let mut h = Hash64::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(scratch.len() as u64) as usize;
        g.fill(&mut scratch[..n]);
        h.update(&scratch[..n]);
        left -= n as u64;
    }
    h.finish()
}

// ------------------------------------------------------------------ HTTP/1.1 client

/// An upload body: `len` bytes of `Gen::new(seed)`.
#[derive(Clone, Copy)]
struct Body {
    len: u64,
    seed: u64,
}

struct Resp {
    status: u16,
    reason: String,
    /// Body bytes received (and passed to the sink).
    body_len: u64,
    /// The server will not take another request on this connection.
    close: bool,
    /// Start of the body of a 3xx/4xx/5xx answer, for error messages.
    snippet: String,
    /// Hash of the uploaded body, when there was one.
    sent_hash: Option<u64>,
    /// The `X-Total-Count` header (Gitea's JSON API listings), when there was one.
    total_count: Option<u64>,
}

impl Resp {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn short(&self) -> String {
        format!("HTTP {} {}", self.status, self.reason)
    }

    fn describe(&self) -> String {
        let mut s = format!("HTTP {} {}", self.status, self.reason);
        if !self.snippet.is_empty() {
            s.push_str(&format!(" ({})", self.snippet));
        }
        s
    }
}

enum Fail {
    /// Nothing at all came back: on a reused keep-alive connection this means
    /// the server had closed it, and the request is sent again once.
    Stale(io::Error),
    Other(String),
}

fn is_closed_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A blocking TCP connection with `TCP_NODELAY` and read/write timeouts of `timeout`.
fn open(t: &Target, timeout: Duration) -> Result<TcpStream, String> {
    let s = TcpStream::connect((t.host.as_str(), t.port))
        .map_err(|e| format!("connect to {}: {e}", t.authority))?;
    s.set_nodelay(true)
        .and_then(|()| s.set_read_timeout(Some(timeout)))
        .and_then(|()| s.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("socket options for {}: {e}", t.authority))?;
    Ok(s)
}

/// A client's transport: the socket, or a TLS session over it. The HTTP code
/// above it only sees `Read + Write`.
enum Wire {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// [`open`], then for `https://` the TLS handshake, completed here so that a
/// failed handshake is a connection error (not a stale keep-alive).
fn connect(t: &Target, timeout: Duration) -> Result<BufReader<Wire>, String> {
    let tcp = open(t, timeout)?;
    let wire = match &t.tls {
        None => Wire::Plain(tcp),
        Some((config, name)) => {
            let mut tcp = tcp;
            let mut c = ClientConnection::new(Arc::clone(config), name.clone())
                .map_err(|e| format!("TLS session for {}: {e}", t.authority))?;
            // Room for a whole upload buffer per write (rustls's default is 64 KiB).
            c.set_buffer_limit(Some(BUF + (64 << 10)));
            while c.is_handshaking() {
                c.complete_io(&mut tcp)
                    .map_err(|e| format!("TLS handshake with {}: {e}", t.authority))?;
            }
            Wire::Tls(Box::new(StreamOwned::new(c, tcp)))
        }
    };
    Ok(BufReader::with_capacity(BUF, wire))
}

/// One client: one keep-alive connection, opened lazily and reopened when the
/// server closes it.
struct Conn<'a> {
    target: &'a Target,
    /// `Authorization: ...\r\n`, or empty.
    auth: &'a str,
    stream: Option<BufReader<Wire>>,
    wbuf: Vec<u8>,
    /// Socket read/write timeout.
    timeout: Duration,
}

impl<'a> Conn<'a> {
    fn new(target: &'a Target, auth: &'a str) -> Conn<'a> {
        Conn::with_timeout(target, auth, IO_TIMEOUT)
    }

    fn with_timeout(target: &'a Target, auth: &'a str, timeout: Duration) -> Conn<'a> {
        Conn {
            target,
            auth,
            stream: None,
            wbuf: Vec::new(),
            timeout,
        }
    }

    /// Sends one request and reads the whole response, passing body bytes to
    /// `sink`. Errors carry the method and URL.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Body>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Resp, String> {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-bench\r\n{}",
            self.target.authority, self.auth
        );
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len));
        }
        head.push_str("\r\n");
        let want = match body {
            Some(b) => (head.len() as u64).saturating_add(b.len).min(BUF as u64) as usize,
            None => head.len(),
        };
        if self.wbuf.len() < want {
            self.wbuf.resize(want.max(head.len()), 0);
        }
        let what = || format!("{method} {}", self.target.url(path));
        let mut retried = false;
        loop {
            let reused = self.stream.is_some();
            let stream = match &mut self.stream {
                Some(s) => s,
                slot @ None => slot.insert(
                    connect(self.target, self.timeout).map_err(|e| format!("{}: {e}", what()))?,
                ),
            };
            match exchange(stream, &mut self.wbuf, head.as_bytes(), body, method, sink) {
                Ok(r) => {
                    if r.close {
                        self.stream = None;
                    }
                    return Ok(r);
                }
                Err(Fail::Stale(_)) if reused && !retried => {
                    self.stream = None;
                    retried = true;
                }
                Err(Fail::Stale(e)) => {
                    self.stream = None;
                    return Err(format!("{}: no response: {e}", what()));
                }
                Err(Fail::Other(m)) => {
                    self.stream = None;
                    return Err(format!("{}: {m}", what()));
                }
            }
        }
    }
}

/// Writes the request (streaming the body through `wbuf`) and reads the answer.
fn exchange(
    stream: &mut BufReader<Wire>,
    wbuf: &mut [u8],
    head: &[u8],
    body: Option<Body>,
    method: &str,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<Resp, Fail> {
    match send(stream.get_mut(), wbuf, head, body) {
        Ok(sent_hash) => {
            let mut r = read_response(stream, method, sink)?;
            r.sent_hash = sent_hash;
            Ok(r)
        }
        // The server may have answered early (401, 413, ...) and closed.
        Err(e) => match read_response(stream, method, sink) {
            Ok(mut r) => {
                r.close = true;
                Ok(r)
            }
            Err(Fail::Stale(_)) if is_closed_kind(&e) => Err(Fail::Stale(e)),
            Err(_) => Err(Fail::Other(format!("sending the request: {e}"))),
        },
    }
}

fn send(w: &mut Wire, wbuf: &mut [u8], head: &[u8], body: Option<Body>) -> io::Result<Option<u64>> {
    wbuf[..head.len()].copy_from_slice(head);
    let mut used = head.len();
    let Some(b) = body else {
        w.write_all(&wbuf[..used])?;
        return Ok(None);
    };
    let mut gen = Gen::new(b.seed);
    let mut hash = Hash64::new();
    let mut left = b.len;
    loop {
        let n = left.min((wbuf.len() - used) as u64) as usize;
        let chunk = &mut wbuf[used..used + n];
        gen.fill(chunk);
        hash.update(chunk);
        used += n;
        left -= n as u64;
        w.write_all(&wbuf[..used])?;
        used = 0;
        if left == 0 {
            return Ok(Some(hash.finish()));
        }
    }
}

fn read_line<R: Read>(r: &mut BufReader<R>, line: &mut Vec<u8>) -> io::Result<usize> {
    line.clear();
    r.by_ref().take(MAX_LINE).read_until(b'\n', line)
}

fn closed(what: &str) -> Fail {
    Fail::Other(format!("connection closed {what}"))
}

fn io_fail(what: &str) -> impl Fn(io::Error) -> Fail + '_ {
    move |e| Fail::Other(format!("{what}: {e}"))
}

fn read_response<R: Read>(
    r: &mut BufReader<R>,
    method: &str,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<Resp, Fail> {
    let mut line = Vec::with_capacity(256);
    let mut first = true;
    loop {
        let n = match read_line(r, &mut line) {
            Ok(n) => n,
            Err(e) if first && is_closed_kind(&e) => return Err(Fail::Stale(e)),
            Err(e) => return Err(Fail::Other(format!("reading the status line: {e}"))),
        };
        if n == 0 {
            if first {
                return Err(Fail::Stale(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the response",
                )));
            }
            return Err(closed("before the status line"));
        }
        first = false;
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.trim_end().splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = match (version.starts_with("HTTP/1."), parts.next().map(str::parse)) {
            (true, Some(Ok(s))) => s,
            _ => {
                return Err(Fail::Other(format!(
                    "bad status line {:?}",
                    text.trim_end()
                )))
            }
        };
        let reason = parts.next().unwrap_or("").to_string();
        let mut close = version == "HTTP/1.0";
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut total_count = None;
        loop {
            let n = read_line(r, &mut line).map_err(io_fail("reading headers"))?;
            if n == 0 {
                return Err(closed("in the headers"));
            }
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let Some((name, value)) = text.split_once(':') else {
                return Err(Fail::Other(format!(
                    "bad header line {:?}",
                    text.trim_end()
                )));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let v = value
                    .parse()
                    .map_err(|_| Fail::Other(format!("bad Content-Length {value:?}")))?;
                length = Some(v);
            } else if name.eq_ignore_ascii_case("x-total-count") {
                total_count = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                let v = value.to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
        }
        if (100..200).contains(&status) && status != 101 {
            continue; // 100 Continue and friends: the real answer follows
        }
        let mut snippet = Vec::new();
        let mut body_len = 0u64;
        let mut feed = |b: &[u8]| {
            body_len += b.len() as u64;
            if status >= 300 && snippet.len() < SNIPPET {
                let k = (SNIPPET - snippet.len()).min(b.len());
                snippet.extend_from_slice(&b[..k]);
            }
            sink(b);
        };
        if method == "HEAD" || status == 204 || status == 304 {
            // no body
        } else if chunked {
            read_chunked(r, &mut line, &mut feed)?;
        } else if let Some(n) = length {
            read_exact_body(r, n, &mut feed)?;
        } else {
            // no framing: the body runs to the end of the connection
            close = true;
            loop {
                let buf = r.fill_buf().map_err(io_fail("reading the body"))?;
                if buf.is_empty() {
                    break;
                }
                let k = buf.len();
                feed(buf);
                r.consume(k);
            }
        }
        let snippet = snippet_text(&snippet);
        return Ok(Resp {
            status,
            reason,
            body_len,
            close,
            snippet,
            sent_hash: None,
            total_count,
        });
    }
}

/// The start of an error body as one line, HTML tags dropped.
fn snippet_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if !in_tag => plain.push(ch),
            _ => {}
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read_exact_body<R: Read>(
    r: &mut BufReader<R>,
    n: u64,
    feed: &mut dyn FnMut(&[u8]),
) -> Result<(), Fail> {
    let mut left = n;
    while left > 0 {
        let buf = r.fill_buf().map_err(io_fail("reading the body"))?;
        if buf.is_empty() {
            return Err(Fail::Other(format!(
                "connection closed after {} of {n} body bytes",
                n - left
            )));
        }
        let k = buf.len().min(left.min(usize::MAX as u64) as usize);
        feed(&buf[..k]);
        r.consume(k);
        left -= k as u64;
    }
    Ok(())
}

fn read_chunked<R: Read>(
    r: &mut BufReader<R>,
    line: &mut Vec<u8>,
    feed: &mut dyn FnMut(&[u8]),
) -> Result<(), Fail> {
    loop {
        let n = read_line(r, line).map_err(io_fail("reading a chunk size"))?;
        if n == 0 {
            return Err(closed("in a chunked body"));
        }
        let text = String::from_utf8_lossy(line);
        let hex = text.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(hex, 16)
            .map_err(|_| Fail::Other(format!("bad chunk size {:?}", text.trim_end())))?;
        if size == 0 {
            // trailers, up to the blank line
            loop {
                let n = read_line(r, line).map_err(io_fail("reading trailers"))?;
                if n == 0 || line == b"\r\n" || line == b"\n" {
                    return Ok(());
                }
            }
        }
        read_exact_body(r, size, feed)?;
        let n = read_line(r, line).map_err(io_fail("reading a chunk end"))?;
        if n == 0 || (line != b"\r\n" && line != b"\n") {
            return Err(Fail::Other("missing CRLF after a chunk".to_string()));
        }
    }
}

// ------------------------------------------------------------------ errors and stats

#[derive(Default)]
struct Errors {
    count: AtomicUsize,
}

impl Errors {
    fn report(&self, msg: &str) {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n < MAX_PRINTED_ERRORS {
            eprintln!("error: {msg}");
        } else if n == MAX_PRINTED_ERRORS {
            eprintln!("error: ... more errors (not printed; counted in the summary)");
        }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// Nearest-rank percentile of sorted samples, in ms.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Milliseconds with 3 decimals, or `n/a` when there was no sample.
fn ms(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "n/a".to_string()
    }
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

#[derive(Clone, Copy)]
struct SmallStat {
    rps: f64,
    p50: f64,
    p99: f64,
}

#[derive(Clone, Copy)]
struct ListingStat {
    p50: f64,
    p99: f64,
    max: f64,
}

/// Per-round numbers of phases that had no error, for the medians.
#[derive(Default)]
struct Summary {
    large_put: Vec<f64>,
    large_get: Vec<f64>,
    small: [Vec<SmallStat>; 3],
    listing: [Vec<ListingStat>; 3],
    pages: [Vec<ListingStat>; PAGES.len()],
    /// Largest HTML body of each page over all the rounds, in bytes.
    pages_html: [usize; PAGES.len()],
    backup: Vec<BackupStat>,
    hostile: Vec<HostileStat>,
}

/// One round of the backup workload.
struct BackupStat {
    /// MB/s of the backup stream with no other load, and under the upload/download loop.
    alone: f64,
    loaded: f64,
    /// small PUT and GET req/s without and during the backup.
    put_base: f64,
    put_during: f64,
    get_base: f64,
    get_during: f64,
    /// MB/s of `shelf check --db` on the backup.
    check: f64,
}

const SMALL_PHASES: [&str; 3] = ["PUT", "GET", "DELETE"];

// ------------------------------------------------------------------ workloads

struct Bench<'a> {
    target: &'a Target,
    args: &'a Args,
    errors: Errors,
    pid: u32,
    stamp: u64,
}

impl Bench<'_> {
    fn names(&self, workload: &str, round: usize) -> (String, String) {
        (
            format!("bench-{}-{round}", self.pid),
            format!("{workload}-{}", self.stamp),
        )
    }

    fn seed(&self, round: usize, index: u64, workload: u64) -> u64 {
        mix64(((round as u64) << 40) ^ (workload << 32) ^ index)
    }

    /// PUT then GET one large file.
    fn large_round(&self, conn: &mut Conn, round: usize, sum: &mut Summary) {
        let (pkg, ver) = self.names("large", round);
        let file = "large.bin";
        let path = self.target.file_path(&pkg, &ver, file);
        let url = self.target.url(&path);
        let size = self.args.large_size;
        let body = Body {
            len: size,
            seed: self.seed(round, 0, 1),
        };

        let t = Instant::now();
        let put = conn.request("PUT", &path, Some(body), &mut |_| {});
        let secs = t.elapsed().as_secs_f64();
        let sent_hash = match put {
            Ok(r) if r.ok() => {
                let rate = size as f64 / MB / secs;
                println!(
                    "round {round} large PUT     {size} B  {secs:.3} s  {rate:.1} MB/s  HTTP {}",
                    r.status
                );
                sum.large_put.push(rate);
                r.sent_hash
            }
            Ok(r) => {
                let msg = format!("PUT {url}: {}", r.describe());
                self.fail_line(round, "large PUT", &msg, &r.short());
                None
            }
            Err(e) => {
                self.fail_line(round, "large PUT", &e, "I/O error");
                None
            }
        };
        let Some(sent_hash) = sent_hash else {
            println!("round {round} large GET     skipped (PUT failed)");
            return;
        };

        let mut hash = Hash64::new();
        let t = Instant::now();
        let get = conn.request("GET", &path, None, &mut |b| hash.update(b));
        let secs = t.elapsed().as_secs_f64();
        let got = hash.finish();
        match get {
            Ok(r) if !r.ok() => {
                let msg = format!("GET {url}: {}", r.describe());
                self.fail_line(round, "large GET", &msg, &r.short());
            }
            Ok(r) if r.body_len != size => {
                let msg = format!(
                    "GET {url}: HTTP {}: {} body bytes, {size} uploaded",
                    r.status, r.body_len
                );
                self.fail_line(round, "large GET", &msg, "wrong length");
            }
            Ok(r) if got != sent_hash => {
                let msg = format!(
                    "GET {url}: HTTP {}: content differs from the upload (hash {got:016x}, sent {sent_hash:016x})",
                    r.status
                );
                self.fail_line(round, "large GET", &msg, "content differs");
            }
            Ok(r) => {
                let rate = size as f64 / MB / secs;
                println!(
                    "round {round} large GET     {size} B  {secs:.3} s  {rate:.1} MB/s  HTTP {}  hash ok",
                    r.status
                );
                sum.large_get.push(rate);
            }
            Err(e) => self.fail_line(round, "large GET", &e, "I/O error"),
        }
        if !self.args.no_cleanup {
            self.cleanup_version(conn, &pkg, &ver, &[file.to_string()]);
        }
    }

    fn fail_line(&self, round: usize, what: &str, msg: &str, short: &str) {
        self.errors.report(msg);
        println!("round {round} {what}     failed: {short}");
    }

    /// Many small files: PUT, GET, DELETE, each phase spread over the clients.
    fn small_round(&self, conns: &mut [Conn], round: usize, sum: &mut Summary) {
        let (pkg, ver) = self.names("small", round);
        let size = self.args.small_size;
        let count = self.args.small_count;
        let file = |i: usize| format!("small-{i:06}.bin");
        let seed = |i: usize| self.seed(round, i as u64, 2);
        let all: Vec<usize> = (0..count).collect();

        let put = self.phase(conns, &all, |c, _, i| {
            let path = self.target.file_path(&pkg, &ver, &file(i));
            let r = c.request(
                "PUT",
                &path,
                Some(Body {
                    len: size,
                    seed: seed(i),
                }),
                &mut |_| {},
            )?;
            if r.ok() {
                Ok(())
            } else {
                Err(format!("PUT {}: {}", self.target.url(&path), r.describe()))
            }
        });
        self.small_line(round, 0, &put, sum);
        if put.done.is_empty() {
            println!("round {round} small GET     skipped (no file uploaded)");
            println!("round {round} small DELETE  skipped (no file uploaded)");
            return;
        }

        // GET and DELETE what was uploaded
        let get = self.phase(conns, &put.done, |c, scratch, i| {
            let path = self.target.file_path(&pkg, &ver, &file(i));
            let mut hash = Hash64::new();
            let r = c.request("GET", &path, None, &mut |b| hash.update(b))?;
            let url = || self.target.url(&path);
            if !r.ok() {
                return Err(format!("GET {}: {}", url(), r.describe()));
            }
            if r.body_len != size {
                return Err(format!(
                    "GET {}: HTTP {}: {} body bytes, {size} uploaded",
                    url(),
                    r.status,
                    r.body_len
                ));
            }
            if hash.finish() != content_hash(seed(i), size, scratch) {
                return Err(format!(
                    "GET {}: HTTP {}: content differs from the upload",
                    url(),
                    r.status
                ));
            }
            Ok(())
        });
        self.small_line(round, 1, &get, sum);

        if self.args.no_cleanup {
            println!("round {round} small DELETE  skipped (--no-cleanup)");
            return;
        }
        let del = self.phase(conns, &put.done, |c, _, i| {
            let path = self.target.file_path(&pkg, &ver, &file(i));
            let r = c.request("DELETE", &path, None, &mut |_| {})?;
            if r.ok() {
                Ok(())
            } else {
                Err(format!(
                    "DELETE {}: {}",
                    self.target.url(&path),
                    r.describe()
                ))
            }
        });
        self.small_line(round, 2, &del, sum);
        // Files left over: those whose DELETE failed.
        let left: Vec<String> = put
            .done
            .iter()
            .filter(|i| del.done.binary_search(i).is_err())
            .map(|&i| file(i))
            .collect();
        if let Some(c) = conns.first_mut() {
            self.cleanup_version(c, &pkg, &ver, &left);
        }
    }

    fn small_line(&self, round: usize, phase: usize, p: &Phase, sum: &mut Summary) {
        let secs = p.elapsed.as_secs_f64();
        let n = p.done.len() + p.failed;
        let stat = SmallStat {
            rps: n as f64 / secs,
            p50: percentile_ms(&p.lats, 0.50),
            p99: percentile_ms(&p.lats, 0.99),
        };
        let mut line = format!(
            "round {round} small {:<7} {n} req  {secs:.3} s  {:.1} req/s  p50 {} ms  p99 {} ms",
            SMALL_PHASES[phase],
            stat.rps,
            ms(stat.p50),
            ms(stat.p99)
        );
        if p.failed > 0 {
            line.push_str(&format!("  errors {}", p.failed));
        } else if n > 0 {
            sum.small[phase].push(stat);
        }
        println!("{line}");
    }

    /// Runs `op` on every item, spread over one thread per connection.
    fn phase<F>(&self, conns: &mut [Conn], items: &[usize], op: F) -> Phase
    where
        F: Fn(&mut Conn, &mut [u8], usize) -> Result<(), String> + Sync,
    {
        let next = AtomicUsize::new(0);
        let clients = conns.len().min(items.len()).max(1);
        let scratch_len = self.args.small_size.clamp(1, 64 << 10) as usize;
        let start = Instant::now();
        let per_thread: Vec<(Vec<Duration>, Vec<usize>, usize)> = thread::scope(|s| {
            let handles: Vec<_> = conns
                .iter_mut()
                .take(clients)
                .map(|c| {
                    let (next, op) = (&next, &op);
                    s.spawn(move || {
                        let mut scratch = vec![0u8; scratch_len];
                        let (mut lats, mut done, mut failed) = (Vec::new(), Vec::new(), 0);
                        loop {
                            let k = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&i) = items.get(k) else { break };
                            let t = Instant::now();
                            match op(c, &mut scratch, i) {
                                Ok(()) => {
                                    lats.push(t.elapsed());
                                    done.push(i);
                                }
                                Err(e) => {
                                    self.errors.report(&e);
                                    failed += 1;
                                }
                            }
                        }
                        (lats, done, failed)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        self.errors.report("a client thread panicked");
                        (Vec::new(), Vec::new(), 1)
                    })
                })
                .collect()
        });
        let elapsed = start.elapsed();
        let mut p = Phase {
            elapsed,
            lats: Vec::new(),
            done: Vec::new(),
            failed: 0,
        };
        for (l, d, f) in per_thread {
            p.lats.extend(l);
            p.done.extend(d);
            p.failed += f;
        }
        p.lats.sort_unstable();
        p.done.sort_unstable();
        p
    }

    /// File servers (nginx, dufs) keep the empty `{pkg}/` directory after its
    /// versions are gone: remove it, best effort and silently (a registry
    /// drops the package with its last version and answers 404 or 405 here).
    fn drop_package_dir(&self, conn: &mut Conn, round: usize) {
        if let Some(path) = self
            .target
            .package_dir(&format!("bench-{}-{round}", self.pid))
        {
            let _ = conn.request("DELETE", &path, None, &mut |_| {});
        }
    }

    /// Deletes the version; tolerant of servers that want a trailing slash on
    /// a collection (nginx: 409) and of ones without a version DELETE (404 or
    /// 405: then `files` are deleted one by one).
    fn cleanup_version(&self, conn: &mut Conn, pkg: &str, ver: &str, files: &[String]) {
        let vpath = self.target.version_path(pkg, ver);
        // (status, message) of the last refusal
        let mut last = (0u16, String::new());
        for path in [vpath.clone(), format!("{vpath}/")] {
            let r = match conn.request("DELETE", &path, None, &mut |_| {}) {
                Ok(r) => r,
                Err(e) => return self.errors.report(&format!("cleanup: {e}")),
            };
            if r.ok() {
                return;
            }
            let msg = format!(
                "cleanup: DELETE {}: {}",
                self.target.url(&path),
                r.describe()
            );
            last = (r.status, msg);
            match r.status {
                // nginx answers 409 for a collection without the slash
                409 | 300..=399 => continue,
                404 | 405 => break,
                _ => return self.errors.report(&last.1),
            }
        }
        if files.is_empty() {
            // Nothing is left in it: a registry drops an empty version itself
            // (404), a server without a version DELETE has nothing more (405).
            if !matches!(last.0, 404 | 405) {
                self.errors.report(&last.1);
            }
            return;
        }
        for f in files {
            let path = self.target.file_path(pkg, ver, f);
            match conn.request("DELETE", &path, None, &mut |_| {}) {
                Ok(r) if r.ok() => {}
                Ok(r) => self.errors.report(&format!(
                    "cleanup: DELETE {}: {}",
                    self.target.url(&path),
                    r.describe()
                )),
                Err(e) => self.errors.report(&format!("cleanup: {e}")),
            }
        }
    }
}

struct Phase {
    elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    lats: Vec<Duration>,
    /// Items that succeeded, sorted.
    done: Vec<usize>,
    failed: usize,
}

// ------------------------------------------------------------------ backup workload

impl Bench<'_> {
    fn backup_seed_pkg(&self) -> String {
        format!("bench-{}-backup-seed", self.pid)
    }

    /// Publishes `--backup-data` bytes as 64 MiB files, so a backup has something to stream.
    fn backup_setup(&self, conns: &mut [Conn]) {
        const FILE: u64 = 64 << 20;
        let count = self.args.backup_data.div_ceil(FILE) as usize;
        let pkg = self.backup_seed_pkg();
        let all: Vec<usize> = (0..count).collect();
        let t = Instant::now();
        let two = conns.len().min(2);
        let put = self.phase(&mut conns[..two], &all, |c, _, i| {
            let path = self
                .target
                .file_path(&pkg, "1", &format!("seed-{i:04}.bin"));
            let r = c.request(
                "PUT",
                &path,
                Some(Body {
                    len: FILE,
                    seed: self.seed(0, i as u64, 7),
                }),
                &mut |_| {},
            )?;
            if r.ok() {
                Ok(())
            } else {
                Err(format!("PUT {}: {}", self.target.url(&path), r.describe()))
            }
        });
        println!(
            "backup setup  {} files of 64 MiB in {:.1} s",
            put.done.len(),
            t.elapsed().as_secs_f64()
        );
    }

    fn backup_cleanup(&self, conn: &mut Conn) {
        let pkg = self.backup_seed_pkg();
        let path = self.target.version_path(&pkg, "1");
        if let Err(e) = conn.request("DELETE", &path, None, &mut |_| {}) {
            self.errors.report(&format!("DELETE {path}: {e}"));
        }
    }

    fn shelf_bin(&self) -> std::path::PathBuf {
        match &self.args.shelf_bin {
            Some(p) => p.into(),
            None => std::env::current_exe()
                .ok()
                .and_then(|p| Some(p.parent()?.parent()?.join("shelf")))
                .unwrap_or_else(|| "shelf".into()),
        }
    }

    /// Runs `shelf backup OUT --server URL`; returns (MB/s of the stream, seconds).
    fn run_backup(&self, out: &std::path::Path, limit: Option<&str>) -> Result<(f64, f64), String> {
        let token = self
            .args
            .token
            .clone()
            .or_else(|| std::env::var("SHELF_TOKEN").ok())
            .ok_or("the backup workload needs --token or SHELF_TOKEN (a site admin's)")?;
        let _ = std::fs::remove_file(out);
        let t = Instant::now();
        let o = std::process::Command::new(self.shelf_bin())
            .arg("backup")
            .arg(out)
            .args(["--no-verify", "--server", &self.target.url("")])
            .args(limit.map(|l| ["--limit-rate", l]).iter().flatten())
            .env("SHELF_TOKEN", token)
            .envs(self.args.ca_cert.as_ref().map(|c| ("SHELF_CA_CERT", c)))
            .output()
            .map_err(|e| format!("running {}: {e}", self.shelf_bin().display()))?;
        let secs = t.elapsed().as_secs_f64();
        if !o.status.success() {
            return Err(format!(
                "shelf backup failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
        Ok((bytes as f64 / MB / secs, secs))
    }

    /// Small PUTs then GETs of the same files, in batches, until `until` says stop (at least
    /// one batch); returns (PUT req/s, GET req/s).
    fn backup_load(
        &self,
        conns: &mut [Conn],
        tag: &str,
        round: usize,
        until: &dyn Fn(usize) -> bool,
    ) -> (f64, f64) {
        let (pkg, ver) = self.names(&format!("backup-{tag}"), round);
        let size = self.args.small_size;
        let batch = self.args.small_count.max(1);
        let (mut put_n, mut put_t, mut get_n, mut get_t) = (0usize, 0f64, 0usize, 0f64);
        let mut k = 0;
        loop {
            let items: Vec<usize> = (k * batch..(k + 1) * batch).collect();
            let file = |i: usize| format!("b-{i:07}.bin");
            let put = self.phase(conns, &items, |c, _, i| {
                let path = self.target.file_path(&pkg, &ver, &file(i));
                let r = c.request(
                    "PUT",
                    &path,
                    Some(Body {
                        len: size,
                        seed: self.seed(round, i as u64, 8),
                    }),
                    &mut |_| {},
                )?;
                if r.ok() {
                    Ok(())
                } else {
                    Err(format!("PUT {}: {}", self.target.url(&path), r.describe()))
                }
            });
            put_n += put.done.len();
            put_t += put.elapsed.as_secs_f64();
            let get = self.phase(conns, &put.done, |c, _, i| {
                let path = self.target.file_path(&pkg, &ver, &file(i));
                let r = c.request("GET", &path, None, &mut |_| {})?;
                if r.ok() && r.body_len == size {
                    Ok(())
                } else {
                    Err(format!("GET {}: {}", self.target.url(&path), r.describe()))
                }
            });
            get_n += get.done.len();
            get_t += get.elapsed.as_secs_f64();
            k += 1;
            if until(k) {
                break;
            }
        }
        if !self.args.no_cleanup {
            let path = self.target.version_path(&pkg, &ver);
            if let Some(c) = conns.first_mut() {
                let _ = c.request("DELETE", &path, None, &mut |_| {});
            }
        }
        (
            put_n as f64 / put_t.max(1e-9),
            get_n as f64 / get_t.max(1e-9),
        )
    }

    /// A backup with no other load; small PUT/GET throughput alone; the same load during a
    /// second backup; and `shelf check` of the backup.
    fn backup_round(&self, conns: &mut [Conn], round: usize, sum: &mut Summary) {
        let out = std::env::temp_dir().join(format!("shelf-bench-backup-{}.redb", self.pid));
        let alone = match self.run_backup(&out, None) {
            Ok((rate, secs)) => {
                println!("round {round} backup alone  {rate:.1} MB/s  {secs:.2} s");
                rate
            }
            Err(e) => return self.fail_line(round, "backup", &e, "failed"),
        };
        let (put_base, get_base) = self.backup_load(conns, "base", round, &|k| k >= 3);
        println!("round {round} backup base   PUT {put_base:.1} req/s  GET {get_base:.1} req/s");
        let done = std::sync::atomic::AtomicBool::new(false);
        let (loaded, (put_during, get_during)) = thread::scope(|s| {
            let h = s.spawn(|| {
                let r = self.run_backup(&out, self.args.backup_limit_rate.as_deref());
                done.store(true, Ordering::Relaxed);
                r
            });
            let load = self.backup_load(conns, "during", round, &|_| done.load(Ordering::Relaxed));
            (
                h.join()
                    .unwrap_or_else(|_| Err("backup thread panicked".into())),
                load,
            )
        });
        let loaded = match loaded {
            Ok((rate, secs)) => {
                println!(
                    "round {round} backup loaded {rate:.1} MB/s  {secs:.2} s  PUT {put_during:.1} req/s  GET {get_during:.1} req/s"
                );
                rate
            }
            Err(e) => return self.fail_line(round, "backup", &e, "failed"),
        };
        let t = Instant::now();
        let check = std::process::Command::new(self.shelf_bin())
            .arg("check")
            .arg("--db")
            .arg(&out)
            .output();
        let secs = t.elapsed().as_secs_f64();
        let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
        let check = match check {
            Ok(o) if o.status.success() => size as f64 / MB / secs,
            Ok(o) => {
                let msg = format!(
                    "check of the backup: {}",
                    String::from_utf8_lossy(&o.stdout)
                );
                self.fail_line(round, "backup check", &msg, "faults");
                f64::NAN
            }
            Err(e) => {
                self.fail_line(round, "backup check", &e.to_string(), "failed");
                f64::NAN
            }
        };
        println!("round {round} backup check  {check:.1} MB/s of file  {secs:.2} s");
        let _ = std::fs::remove_file(&out);
        sum.backup.push(BackupStat {
            alone,
            loaded,
            put_base,
            put_during,
            get_base,
            get_during,
            check,
        });
    }
}

// ------------------------------------------------------------------ hostile workload

/// Bytes of the request head each slow connection trickles: a valid GET of the test file,
/// padded so that at 1 byte/s it would take this many seconds to complete.
const SLOW_HEAD_LEN: usize = 2048;
/// Socket timeout of the hostile workload's GETs and idle-connection setup: a request that
/// stalls this long is an error (the target p99 is 50 ms).
const HOSTILE_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout of a slow connection (the driver thread waits for it).
const SLOW_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time the slow connections get to connect (spread over the first second) before the timed
/// GETs start.
const HOSTILE_WARMUP: Duration = Duration::from_secs(2);
/// The driver thread checks its stop flag at least this often.
const DRIVER_TICK: Duration = Duration::from_millis(50);
const SECOND: Duration = Duration::from_secs(1);

/// Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns (soft, hard).
fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid `rlimit` for the call to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max;
        // SAFETY: `rl` is a valid `rlimit` for the call to read.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// The memory figures of a process, from /proc/PID/status (kB), and its open descriptors.
#[derive(Clone, Copy)]
struct ProcMem {
    rss_kb: u64,
    hwm_kb: u64,
    threads: u64,
    fds: usize,
}

impl ProcMem {
    fn read(pid: u32) -> Result<ProcMem, String> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let field = |name: &str| -> Result<u64, String> {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| format!("{path}: no {name} line"))
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        Ok(ProcMem {
            rss_kb: field("VmRSS:")?,
            hwm_kb: field("VmHWM:")?,
            threads: field("Threads:")?,
            fds,
        })
    }

    fn line(&self) -> String {
        format!(
            "VmRSS {} kB ({:.1} MiB)  VmHWM {} kB ({:.1} MiB)  threads {}  fds {}",
            self.rss_kb,
            self.rss_kb as f64 / 1024.0,
            self.hwm_kb,
            self.hwm_kb as f64 / 1024.0,
            self.threads,
            self.fds
        )
    }
}

/// One round of the hostile workload.
struct HostileStat {
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    idle_open: usize,
    slow_reconnects: usize,
    /// The server's VmRSS while everything was held, and its VmHWM then (kB).
    rss_kb: Option<u64>,
    hwm_kb: Option<u64>,
}

/// What a non-blocking peek says about a connection the bench is not using.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PeekState {
    /// Nothing to read: the server still holds it.
    Open,
    /// End of stream or reset: the server closed it.
    Closed,
    /// The server sent bytes nobody asked for.
    Data,
}

/// Peeks at a non-blocking socket without consuming anything.
fn peek_state(s: &TcpStream) -> PeekState {
    let mut b = [0u8; 1];
    match s.peek(&mut b) {
        Ok(0) => PeekState::Closed,
        Ok(_) => PeekState::Data,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            PeekState::Open
        }
        Err(_) => PeekState::Closed,
    }
}

/// What the driver thread saw of the idle and slow connections.
#[derive(Default)]
struct DriverStats {
    /// Idle connections still open at the end, by a peek at each.
    idle_open: usize,
    /// Idle connections the server closed (end of stream or reset), and the first such close,
    /// counted from the start of the driver.
    idle_closed: usize,
    idle_first_close: Option<Duration>,
    /// Idle connections on which the server sent bytes.
    idle_data: usize,
    /// Head bytes the slow connections sent.
    slow_bytes: u64,
    /// Slow connections the server closed (then reopened), and how long each had lived.
    slow_reconnects: usize,
    slow_lifetimes: Vec<Duration>,
    /// Slow connections the server answered (it sent bytes); they are closed and reopened.
    slow_answered: usize,
    slow_connect_failed: usize,
    /// Slow connections open at the end.
    slow_open: usize,
}

/// One slow connection: the head goes out one byte per second.
struct Slow {
    stream: Option<TcpStream>,
    /// Head bytes sent on this connection.
    pos: usize,
    since: Instant,
    /// When its next byte (or reconnect) is due: the one current entry of the timer heap.
    due: Instant,
}

/// Drives the idle and slow connections from one thread until `stop` is set: watches the idle
/// ones (epoll, so an idle connection costs nothing until the server closes it), sends each slow
/// one its next head byte every second and reopens those the server closes.
fn drive_hostile(
    addr: std::net::SocketAddr,
    idle: &[TcpStream],
    slow_n: usize,
    head: &[u8],
    stop: &std::sync::atomic::AtomicBool,
) -> Result<DriverStats, String> {
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};
    use std::cmp::Reverse;
    use std::os::unix::io::AsRawFd;

    let mut poll = Poll::new().map_err(|e| format!("epoll: {e}"))?;
    let mut events = Events::with_capacity(1024);
    let mut st = DriverStats::default();
    let start = Instant::now();
    let mut idle_state = vec![PeekState::Open; idle.len()];
    for (i, s) in idle.iter().enumerate() {
        poll.registry()
            .register(&mut SourceFd(&s.as_raw_fd()), Token(i), Interest::READABLE)
            .map_err(|e| format!("registering an idle connection: {e}"))?;
    }
    let slow_token = |k: usize| Token(idle.len() + k);
    let mut slow: Vec<Slow> = (0..slow_n)
        .map(|k| Slow {
            stream: None,
            pos: 0,
            since: start,
            // The connections start spread over the first second.
            due: start + SECOND.mul_f64(k as f64 / slow_n as f64),
        })
        .collect();
    // (due, connection); an entry whose instant is no longer the connection's `due` is stale.
    let mut due: std::collections::BinaryHeap<Reverse<(Instant, usize)>> = slow
        .iter()
        .enumerate()
        .map(|(k, c)| Reverse((c.due, k)))
        .collect();
    let mut rbuf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while let Some(&Reverse((at, k))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let c = &mut slow[k];
            if c.due != at {
                continue;
            }
            if c.stream.is_none() {
                match TcpStream::connect_timeout(&addr, SLOW_CONNECT_TIMEOUT)
                    .and_then(|s| s.set_nodelay(true).map(|()| s))
                    .and_then(|s| s.set_nonblocking(true).map(|()| s))
                {
                    Ok(s) => {
                        poll.registry()
                            .register(
                                &mut SourceFd(&s.as_raw_fd()),
                                slow_token(k),
                                Interest::READABLE,
                            )
                            .map_err(|e| format!("registering a slow connection: {e}"))?;
                        c.stream = Some(s);
                        c.pos = 0;
                        c.since = Instant::now();
                    }
                    Err(_) => st.slow_connect_failed += 1,
                }
            }
            let mut reopen = false;
            if let Some(s) = &c.stream {
                if c.pos < head.len() {
                    match (&*s).write(&head[c.pos..c.pos + 1]) {
                        Ok(n) => {
                            c.pos += n;
                            st.slow_bytes += n as u64;
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => {
                            // closed by the server: reopened right away
                            let _ = poll.registry().deregister(&mut SourceFd(&s.as_raw_fd()));
                            st.slow_reconnects += 1;
                            st.slow_lifetimes.push(c.since.elapsed());
                            c.stream = None;
                            reopen = true;
                        }
                    }
                }
            }
            // One byte a second, without drift; a driver that fell behind does not burst.
            c.due = if reopen { now } else { (at + SECOND).max(now) };
            due.push(Reverse((c.due, k)));
        }
        let wait = due
            .peek()
            .map_or(DRIVER_TICK, |Reverse((at, _))| {
                at.saturating_duration_since(Instant::now())
            })
            .min(DRIVER_TICK);
        if let Err(e) = poll.poll(&mut events, Some(wait)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("epoll_wait: {e}"));
        }
        for ev in events.iter() {
            let i = ev.token().0;
            if let Some(s) = idle.get(i) {
                if idle_state[i] != PeekState::Open {
                    continue;
                }
                let p = peek_state(s);
                match p {
                    PeekState::Open => continue,
                    PeekState::Closed => {
                        st.idle_closed += 1;
                        st.idle_first_close.get_or_insert(start.elapsed());
                    }
                    PeekState::Data => st.idle_data += 1,
                }
                idle_state[i] = p;
                let _ = poll.registry().deregister(&mut SourceFd(&s.as_raw_fd()));
                continue;
            }
            let k = i - idle.len();
            let Some(c) = slow.get_mut(k) else { continue };
            let Some(s) = &c.stream else { continue };
            let (mut closed, mut answered) = (false, false);
            loop {
                match (&*s).read(&mut rbuf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(_) => answered = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            if closed || answered {
                // An answer (say, 408 or 400) ends this connection's head too. Reopen it now.
                let _ = poll.registry().deregister(&mut SourceFd(&s.as_raw_fd()));
                if answered {
                    st.slow_answered += 1;
                } else {
                    st.slow_reconnects += 1;
                    st.slow_lifetimes.push(c.since.elapsed());
                }
                c.stream = None;
                c.due = Instant::now();
                due.push(Reverse((c.due, k)));
            }
        }
    }
    // The end: a last look at every idle connection believed open, without disturbing it.
    for (i, s) in idle.iter().enumerate() {
        if idle_state[i] != PeekState::Open {
            continue;
        }
        match peek_state(s) {
            PeekState::Open => st.idle_open += 1,
            PeekState::Closed => {
                st.idle_closed += 1;
                st.idle_first_close.get_or_insert(start.elapsed());
            }
            PeekState::Data => st.idle_data += 1,
        }
    }
    st.slow_open = slow.iter().filter(|c| c.stream.is_some()).count();
    st.slow_lifetimes.sort_unstable();
    Ok(st)
}

/// The timed GETs of a hostile round.
struct Timed {
    elapsed: Duration,
    /// Latencies of the successful requests, sorted.
    lats: Vec<Duration>,
    failed: usize,
}

impl Bench<'_> {
    /// Reads the server's memory figures, when `--server-pid` was given.
    fn server_mem(&self) -> Option<ProcMem> {
        let pid = self.args.server_pid?;
        match ProcMem::read(pid) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("warning: {e}");
                None
            }
        }
    }

    /// Opens one connection, GETs the test file on it and keeps it: a kept-alive connection the
    /// server now holds idle. Returned non-blocking.
    fn idle_conn(&self, head: &[u8], size: u64) -> Result<TcpStream, String> {
        let mut r = BufReader::with_capacity(16 << 10, open(self.target, HOSTILE_IO_TIMEOUT)?);
        r.get_mut()
            .write_all(head)
            .map_err(|e| format!("sending the GET: {e}"))?;
        let resp = match read_response(&mut r, "GET", &mut |_| {}) {
            Ok(resp) => resp,
            Err(Fail::Stale(e)) => return Err(format!("no response: {e}")),
            Err(Fail::Other(m)) => return Err(m),
        };
        if !resp.ok() {
            return Err(resp.describe());
        }
        if resp.body_len != size {
            return Err(format!(
                "HTTP {}: {} body bytes, {size} uploaded",
                resp.status, resp.body_len
            ));
        }
        if resp.close {
            return Err(format!(
                "HTTP {}: the server closed the connection after it",
                resp.status
            ));
        }
        if !r.buffer().is_empty() {
            return Err("bytes after the response".to_string());
        }
        let s = r.into_inner();
        s.set_nonblocking(true)
            .map_err(|e| format!("making the connection non-blocking: {e}"))?;
        Ok(s)
    }

    /// `--idle-conns` kept-alive connections, opened by `--concurrency` threads; (connections,
    /// failures).
    fn idle_setup(&self, head: &[u8], size: u64) -> (Vec<TcpStream>, usize) {
        let n = self.args.idle_conns;
        let next = AtomicUsize::new(0);
        let per_thread: Vec<(Vec<TcpStream>, usize)> = thread::scope(|s| {
            let handles: Vec<_> = (0..self.args.concurrency.min(n))
                .map(|_| {
                    let next = &next;
                    s.spawn(move || {
                        let (mut conns, mut failed) = (Vec::new(), 0);
                        while next.fetch_add(1, Ordering::Relaxed) < n {
                            match self.idle_conn(head, size) {
                                Ok(c) => conns.push(c),
                                Err(e) => {
                                    self.errors.report(&format!(
                                        "idle connection to {}: {e}",
                                        self.target.authority
                                    ));
                                    failed += 1;
                                }
                            }
                        }
                        (conns, failed)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        self.errors.report("an idle-setup thread panicked");
                        (Vec::new(), 1)
                    })
                })
                .collect()
        });
        let mut conns = Vec::with_capacity(n);
        let mut failed = 0;
        for (c, f) in per_thread {
            conns.extend(c);
            failed += f;
        }
        (conns, failed)
    }

    /// `--concurrency` clients GET `path` one request after the other for `--hostile-secs`.
    fn timed_gets(&self, auth: &str, path: &str, size: u64, hash: u64) -> Timed {
        let secs = Duration::from_secs_f64(self.args.hostile_secs);
        let url = self.target.url(path);
        let start = Instant::now();
        let end = start + secs;
        let per_thread: Vec<(Vec<Duration>, usize)> = thread::scope(|s| {
            let handles: Vec<_> = (0..self.args.concurrency)
                .map(|_| {
                    let url = &url;
                    s.spawn(move || {
                        let mut c = Conn::with_timeout(self.target, auth, HOSTILE_IO_TIMEOUT);
                        let (mut lats, mut failed) = (Vec::new(), 0);
                        while Instant::now() < end {
                            let mut h = Hash64::new();
                            let t = Instant::now();
                            let r = c.request("GET", path, None, &mut |b| h.update(b));
                            let lat = t.elapsed();
                            let err = match r {
                                Ok(r) if !r.ok() => Some(format!("GET {url}: {}", r.describe())),
                                Ok(r) if r.body_len != size => Some(format!(
                                    "GET {url}: HTTP {}: {} body bytes, {size} uploaded",
                                    r.status, r.body_len
                                )),
                                Ok(r) if h.finish() != hash => Some(format!(
                                    "GET {url}: HTTP {}: content differs from the upload",
                                    r.status
                                )),
                                Ok(_) => None,
                                Err(e) => Some(e),
                            };
                            match err {
                                None => lats.push(lat),
                                Some(e) => {
                                    self.errors
                                        .report(&format!("{e} (after {:.3} s)", lat.as_secs_f64()));
                                    failed += 1;
                                }
                            }
                        }
                        (lats, failed)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        self.errors.report("a client thread panicked");
                        (Vec::new(), 1)
                    })
                })
                .collect()
        });
        let mut t = Timed {
            elapsed: start.elapsed(),
            lats: Vec::new(),
            failed: 0,
        };
        for (l, f) in per_thread {
            t.lats.extend(l);
            t.failed += f;
        }
        t.lats.sort_unstable();
        t
    }

    /// Idle keep-alive connections and slow heads held open while normal GETs are timed.
    fn hostile_round(&self, auth: &str, round: usize, sum: &mut Summary) {
        let (pkg, ver) = self.names("hostile", round);
        let file = "hostile.bin";
        let path = self.target.file_path(&pkg, &ver, file);
        let url = self.target.url(&path);
        let size = self.args.small_size;
        let seed = self.seed(round, 0, 9);
        let mut conn = Conn::new(self.target, auth);
        match conn.request("PUT", &path, Some(Body { len: size, seed }), &mut |_| {}) {
            Ok(r) if r.ok() => {}
            Ok(r) => {
                let msg = format!("PUT {url}: {}", r.describe());
                return self.fail_line(round, "hostile PUT", &msg, &r.short());
            }
            Err(e) => return self.fail_line(round, "hostile PUT", &e, "I/O error"),
        }
        let hash = content_hash(seed, size, &mut vec![0u8; size.clamp(1, 64 << 10) as usize]);
        let addr = match std::net::ToSocketAddrs::to_socket_addrs(&(
            self.target.host.as_str(),
            self.target.port,
        ))
        .map(|mut a| a.next())
        {
            Ok(Some(a)) => a,
            Ok(None) | Err(_) => {
                let msg = format!("{}: cannot resolve the host", self.target.authority);
                return self.fail_line(round, "hostile", &msg, "no address");
            }
        };
        let mem_before = self.server_mem();
        if let Some(m) = &mem_before {
            println!("round {round} hostile server  before  {}", m.line());
        }

        let get_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-bench\r\n{auth}\r\n",
            self.target.authority
        );
        let t = Instant::now();
        let (idle, idle_failed) = self.idle_setup(get_head.as_bytes(), size);
        if self.args.idle_conns > 0 {
            let mut line = format!(
                "round {round} hostile idle    {} connections set up, one keep-alive GET each  {:.2} s",
                idle.len(),
                t.elapsed().as_secs_f64()
            );
            if idle_failed > 0 {
                line.push_str(&format!("  setup errors {idle_failed}"));
            }
            println!("{line}");
        }
        // The slow head: a valid GET of the file, with a padding header that makes it
        // SLOW_HEAD_LEN bytes long; at one byte a second it never completes in a head timeout.
        let mut slow_head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-bench-slow\r\nX-Pad: ",
            self.target.authority
        );
        let pad = SLOW_HEAD_LEN.saturating_sub(slow_head.len() + 4);
        slow_head.push_str(&"a".repeat(pad));
        slow_head.push_str("\r\n\r\n");

        let stop = std::sync::atomic::AtomicBool::new(false);
        let slow_n = self.args.slow_conns;
        let (get, mem_held, driven) = thread::scope(|s| {
            let driver =
                s.spawn(|| drive_hostile(addr, &idle, slow_n, slow_head.as_bytes(), &stop));
            if slow_n > 0 {
                thread::sleep(HOSTILE_WARMUP);
            }
            let get = self.timed_gets(auth, &path, size, hash);
            let mem_held = self.server_mem();
            stop.store(true, Ordering::Relaxed);
            let driven = driver
                .join()
                .unwrap_or_else(|_| Err("the driver thread panicked".to_string()));
            (get, mem_held, driven)
        });
        drop(idle);

        let secs = get.elapsed.as_secs_f64();
        let n = get.lats.len() + get.failed;
        let max = get.lats.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        let (p50, p99) = (
            percentile_ms(&get.lats, 0.50),
            percentile_ms(&get.lats, 0.99),
        );
        let p999 = percentile_ms(&get.lats, 0.999);
        let fast = get
            .lats
            .partition_point(|d| *d <= Duration::from_millis(50));
        let mut line = format!(
            "round {round} hostile GET     {n} req  {secs:.3} s  {:.1} req/s  p50 {} ms  p99 {} ms  p99.9 {} ms  max {} ms  over 50 ms {}",
            n as f64 / secs,
            ms(p50),
            ms(p99),
            ms(p999),
            ms(max),
            get.lats.len() - fast
        );
        if get.failed > 0 {
            line.push_str(&format!("  errors {}", get.failed));
        }
        println!("{line}");
        let st = match driven {
            Ok(st) => st,
            Err(e) => return self.fail_line(round, "hostile driver", &e, "failed"),
        };
        if self.args.idle_conns > 0 {
            let first = st.idle_first_close.map_or(String::new(), |d| {
                format!(" (the first after {:.1} s)", d.as_secs_f64())
            });
            println!(
                "round {round} hostile idle    {} of {} still open at the end  closed by the server {}{first}  sent data {}",
                st.idle_open, self.args.idle_conns, st.idle_closed, st.idle_data
            );
        }
        if slow_n > 0 {
            println!(
                "round {round} hostile slow    {slow_n} conns  {} head bytes sent  reconnects {} (closed after p50 {} ms  max {} ms)  answered {}  connect failures {}  open at the end {}",
                st.slow_bytes,
                st.slow_reconnects,
                ms(percentile_ms(&st.slow_lifetimes, 0.50)),
                ms(st.slow_lifetimes.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)),
                st.slow_answered,
                st.slow_connect_failed,
                st.slow_open
            );
        }
        if let Some(m) = &mem_held {
            println!("round {round} hostile server  held    {}", m.line());
        }
        if get.failed == 0 && idle_failed == 0 && !get.lats.is_empty() {
            sum.hostile.push(HostileStat {
                rps: n as f64 / secs,
                p50,
                p99,
                p999,
                max,
                idle_open: st.idle_open,
                slow_reconnects: st.slow_reconnects,
                rss_kb: mem_held.map(|m| m.rss_kb),
                hwm_kb: mem_held.map(|m| m.hwm_kb),
            });
        }
        if !self.args.no_cleanup {
            self.cleanup_version(&mut conn, &pkg, &ver, &[file.to_string()]);
        }
    }
}

// ------------------------------------------------------------------ listing workload

/// Untimed requests before each timed listing query.
const LISTING_WARMUP: usize = 10;
/// Page size of the listing queries: Gitea's `MAX_RESPONSE_ITEMS`.
const LISTING_LIMIT: u64 = 50;
const LISTING_QUERIES: [&str; 3] = ["first", "deep", "search"];

/// Where the listing workload's requests go, taken from the URL template
/// `http://host:port{prefix}/api/packages/{owner}/...`. Version `i` of the
/// data set is `1.0.{i / P}` of package `listing-{i % P}` (P packages, the
/// number zero-padded), with one 1-byte file `f`.
struct Listing {
    /// The path before `/api/packages/`: where the server is mounted.
    prefix: String,
    /// The owner segment, as written in the template.
    owner: String,
    packages: usize,
    /// Digits of the package numbers: every name has the same length, so the
    /// search fragment `-NNNN` matches one package only.
    width: usize,
}

impl Listing {
    fn new(t: &Target, packages: usize) -> Result<Listing, String> {
        let bad = || {
            format!(
                "{}: the listing and pages workloads need a shelf or Gitea URL, .../api/packages/{{owner}}/...",
                t.url(&t.path)
            )
        };
        let (prefix, rest) = t.path.split_once("/api/packages/").ok_or_else(bad)?;
        let owner = rest.split('/').next().unwrap_or("");
        if owner.is_empty() || owner.contains(['{', '}']) {
            return Err(bad());
        }
        Ok(Listing {
            prefix: prefix.to_string(),
            owner: owner.to_string(),
            packages,
            width: packages.saturating_sub(1).to_string().len().max(4),
        })
    }

    fn package(&self, k: usize) -> String {
        format!("listing-{k:0w$}", w = self.width)
    }

    /// The search fragment: the number of the middle package, with its dash.
    fn fragment(&self) -> String {
        format!("-{:0w$}", self.search_package(), w = self.width)
    }

    fn search_package(&self) -> usize {
        self.packages / 2
    }

    fn upload_path(&self, i: usize) -> String {
        format!(
            "{}/api/packages/{}/generic/{}/1.0.{}/f",
            self.prefix,
            self.owner,
            self.package(i % self.packages),
            i / self.packages
        )
    }

    fn list_path(&self, query: &str) -> String {
        format!("{}/api/v1/packages/{}?{query}", self.prefix, self.owner)
    }

    fn package_path(&self, k: usize) -> String {
        format!(
            "{}/api/v1/packages/{}/generic/{}",
            self.prefix,
            self.owner,
            self.package(k)
        )
    }

    /// The HTML page of the owner (`/{owner}`), with `query` when not empty.
    fn owner_page(&self, query: &str) -> String {
        let q = if query.is_empty() { "" } else { "?" };
        format!("{}/{}{q}{query}", self.prefix, self.owner)
    }

    /// The HTML page of package `k` (its versions), or of its version `ver`.
    fn package_page(&self, k: usize, ver: Option<&str>) -> String {
        let mut p = format!(
            "{}/{}/-/packages/generic/{}",
            self.prefix,
            self.owner,
            self.package(k)
        );
        if let Some(v) = ver {
            p.push('/');
            p.push_str(v);
        }
        p
    }
}

/// What the listings should report: versions of the owner, and of the
/// package the search query finds.
struct ListingExpect {
    total: u64,
    search: u64,
}

/// p50, p99 and max of sorted latencies, in ms (NaN when there is none).
fn latency_stat(sorted: &[Duration]) -> ListingStat {
    ListingStat {
        p50: percentile_ms(sorted, 0.50),
        p99: percentile_ms(sorted, 0.99),
        max: sorted.last().map_or(f64::NAN, |d| d.as_secs_f64() * 1e3),
    }
}

/// Number of elements of the JSON array `body`, or `None` when it is not one.
/// Only the structure is looked at (brackets, braces, strings), not the values.
fn json_array_len(body: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let (mut in_str, mut esc) = (false, false);
    let (mut started, mut ended) = (false, false);
    let mut count = 0;
    for &b in body {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if depth == 0 {
            if started || b != b'[' {
                return None; // not an array, or something after it
            }
            started = true;
            depth = 1;
            continue;
        }
        if depth == 1 && count == 0 && b != b']' {
            count = 1; // the first element
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    if b != b']' {
                        return None;
                    }
                    ended = true;
                }
            }
            b',' if depth == 1 => count += 1,
            _ => {}
        }
    }
    ended.then_some(count)
}

impl Bench<'_> {
    /// Publishes the listing data set with all the clients; `None` when the
    /// owner ends up with no version of it.
    fn listing_setup(&self, conns: &mut [Conn], l: &Listing) -> Option<ListingExpect> {
        let n = self.args.listing_versions;
        let k = l.search_package();
        if self.args.listing_skip_setup {
            println!("listing setup   skipped (--listing-skip-setup)");
            let p = self.args.listing_packages;
            return Some(ListingExpect {
                total: n as u64,
                search: (n / p + usize::from(k < n % p)) as u64,
            });
        }
        let all: Vec<usize> = (0..n).collect();
        let put = self.phase(conns, &all, |c, _, i| {
            let path = l.upload_path(i);
            let r = c.request(
                "PUT",
                &path,
                Some(Body {
                    len: 1,
                    seed: self.seed(0, i as u64, 3),
                }),
                &mut |_| {},
            )?;
            if r.ok() {
                Ok(())
            } else {
                Err(format!("PUT {}: {}", self.target.url(&path), r.describe()))
            }
        });
        let secs = put.elapsed.as_secs_f64();
        let reqs = put.done.len() + put.failed;
        let mut line = format!(
            "listing setup   PUT {reqs} req  {secs:.3} s  {:.1} req/s  p50 {} ms  p99 {} ms",
            reqs as f64 / secs,
            ms(percentile_ms(&put.lats, 0.50)),
            ms(percentile_ms(&put.lats, 0.99))
        );
        if put.failed > 0 {
            line.push_str(&format!("  errors {}", put.failed));
        }
        println!("{line}");
        let exp = ListingExpect {
            total: put.done.len() as u64,
            search: put
                .done
                .iter()
                .filter(|&&i| i % self.args.listing_packages == k)
                .count() as u64,
        };
        (exp.total > 0).then_some(exp)
    }

    /// Times the three listing queries, one after the other on `conn`.
    fn listing_round(
        &self,
        conn: &mut Conn,
        l: &Listing,
        exp: &ListingExpect,
        round: usize,
        sum: &mut Summary,
    ) {
        let deep = (self.args.listing_versions as u64 / LISTING_LIMIT / 2).max(1);
        let page_len = |page: u64| {
            exp.total
                .saturating_sub((page - 1) * LISTING_LIMIT)
                .min(LISTING_LIMIT)
        };
        let queries = [
            (
                format!("page=1&limit={LISTING_LIMIT}"),
                exp.total,
                page_len(1),
            ),
            (
                format!("page={deep}&limit={LISTING_LIMIT}"),
                exp.total,
                page_len(deep),
            ),
            (
                format!("q={}&limit={LISTING_LIMIT}", l.fragment()),
                exp.search,
                exp.search.min(LISTING_LIMIT),
            ),
        ];
        for (q, (query, want_total, want_len)) in queries.iter().enumerate() {
            let path = l.list_path(query);
            let mut seen = None;
            let (lats, failed) = self.sequential_gets(conn, &path, &mut |r, body| {
                seen = r.total_count;
                match (r.total_count, json_array_len(body)) {
                    (None, _) => Some("no X-Total-Count header".to_string()),
                    (Some(t), _) if t != *want_total => {
                        Some(format!("X-Total-Count {t}, expected {want_total}"))
                    }
                    (_, None) => Some("the body is not a JSON array".to_string()),
                    (_, Some(n)) if n as u64 != *want_len => {
                        Some(format!("{n} items, expected {want_len}"))
                    }
                    _ => None,
                }
            });
            let stat = latency_stat(&lats);
            let seen = seen.map_or("none".to_string(), |t| t.to_string());
            let mut line = format!(
                "round {round} listing {:<7} {} req  p50 {} ms  p99 {} ms  max {} ms  X-Total-Count {seen}  ?{query}",
                LISTING_QUERIES[q],
                lats.len(),
                ms(stat.p50),
                ms(stat.p99),
                ms(stat.max)
            );
            if failed > 0 {
                line.push_str(&format!("  errors {failed}"));
            } else if !lats.is_empty() {
                sum.listing[q].push(stat);
            }
            println!("{line}");
        }
    }

    /// `LISTING_WARMUP` untimed GETs of `path` on `conn`, then `--listing-requests`
    /// timed ones: their latencies, sorted (of the 2xx answers), and how many
    /// requests failed: an I/O error, a non-2xx status, or an answer `check`
    /// finds wrong (it sees the response and its whole body, and says why).
    fn sequential_gets(
        &self,
        conn: &mut Conn,
        path: &str,
        check: &mut dyn FnMut(&Resp, &[u8]) -> Option<String>,
    ) -> (Vec<Duration>, usize) {
        let url = self.target.url(path);
        let mut body = Vec::new();
        let mut lats = Vec::with_capacity(self.args.listing_requests);
        let mut failed = 0usize;
        for k in 0..LISTING_WARMUP + self.args.listing_requests {
            body.clear();
            let t = Instant::now();
            let r = conn.request("GET", path, None, &mut |b| body.extend_from_slice(b));
            let lat = t.elapsed();
            let r = match r {
                Ok(r) if r.ok() => r,
                Ok(r) => {
                    self.errors.report(&format!("GET {url}: {}", r.describe()));
                    failed += 1;
                    continue;
                }
                Err(e) => {
                    self.errors.report(&e);
                    failed += 1;
                    continue;
                }
            };
            if k >= LISTING_WARMUP {
                lats.push(lat);
            }
            if let Some(w) = check(&r, &body) {
                self.errors
                    .report(&format!("GET {url}: HTTP {}: {w}", r.status));
                failed += 1;
            }
        }
        lats.sort_unstable();
        (lats, failed)
    }

    /// Deletes the listing packages through the JSON API.
    fn listing_cleanup(&self, conn: &mut Conn, l: &Listing) {
        let t = Instant::now();
        let mut deleted = 0;
        for k in 0..l.packages.min(self.args.listing_versions) {
            let path = l.package_path(k);
            match conn.request("DELETE", &path, None, &mut |_| {}) {
                Ok(r) if r.status == 204 => deleted += 1,
                Ok(r) => self.errors.report(&format!(
                    "cleanup: DELETE {}: {}",
                    self.target.url(&path),
                    r.describe()
                )),
                Err(e) => self.errors.report(&format!("cleanup: {e}")),
            }
        }
        println!(
            "listing cleanup DELETE {deleted} packages  {:.3} s",
            t.elapsed().as_secs_f64()
        );
    }
}

// ------------------------------------------------------------------ pages workload

/// Versions per page of shelf's HTML lists (Gitea's UI pages by 20 as well).
const PAGE_ITEMS: u64 = 20;
/// The deep owner page; shelf lists up to 10,000 versions deep (page 500).
const PAGES_DEEP: u64 = 400;
/// Issue 13's budget for the HTML of one page (KB = 10^3 bytes, as MB here).
const PAGES_HTML_BUDGET: usize = 100_000;
const PAGES: [&str; 7] = [
    "owner",
    "deep",
    "search",
    "explore",
    "explore-search",
    "package",
    "version",
];

/// What a page's HTML should show.
enum PageWant {
    /// A version list: `<p class="count">N versions</p>` with N `total` (or,
    /// `at_least`, no fewer: explore counts every owner's versions) and the
    /// rows (`<a class="row"`) of page `page` of N.
    List {
        total: u64,
        at_least: bool,
        page: u64,
    },
    /// A version: its files table.
    Files,
}

/// Why `body` is not the page `want` describes, when it is not.
fn check_page(body: &[u8], want: &PageWant) -> Option<String> {
    let (total, at_least, page) = match *want {
        PageWant::Files => {
            return find(body, b"<table class=\"files\"")
                .is_none()
                .then(|| "no files table".to_string())
        }
        PageWant::List {
            total,
            at_least,
            page,
        } => (total, at_least, page),
    };
    let Some(n) = html_count(body) else {
        return Some("no version count".to_string());
    };
    if n != total && !(at_least && n > total) {
        let least = if at_least { "at least " } else { "" };
        return Some(format!("{n} versions, expected {least}{total}"));
    }
    let rows = occurrences(body, b"<a class=\"row\"") as u64;
    let want_rows = n.saturating_sub((page - 1) * PAGE_ITEMS).min(PAGE_ITEMS);
    (rows != want_rows).then(|| format!("{rows} rows, expected {want_rows}"))
}

/// The number of `<p class="count">N versions</p>`.
fn html_count(body: &[u8]) -> Option<u64> {
    const TAG: &[u8] = b"<p class=\"count\">";
    let start = find(body, TAG)? + TAG.len();
    let digits = body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&body[start..start + digits])
        .ok()?
        .parse()
        .ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

impl Bench<'_> {
    /// Times the pages, one after the other on `conn` (anonymous, as a
    /// visitor who is not signed in).
    fn pages_round(
        &self,
        conn: &mut Conn,
        l: &Listing,
        exp: &ListingExpect,
        round: usize,
        sum: &mut Summary,
    ) {
        let k = l.search_package();
        let list = |total, at_least, page| PageWant::List {
            total,
            at_least,
            page,
        };
        let pages = [
            (l.owner_page(""), list(exp.total, false, 1)),
            (
                l.owner_page(&format!("page={PAGES_DEEP}")),
                list(exp.total, false, PAGES_DEEP),
            ),
            (
                l.owner_page(&format!("q={}", l.fragment())),
                list(exp.search, false, 1),
            ),
            (format!("{}/", l.prefix), list(exp.total, true, 1)),
            (
                format!("{}/?q={}", l.prefix, l.package(k)),
                list(exp.search, true, 1),
            ),
            (l.package_page(k, None), list(exp.search, false, 1)),
            (l.package_page(k, Some("1.0.0")), PageWant::Files),
        ];
        for (p, (path, want)) in pages.iter().enumerate() {
            if exp.search == 0 && matches!(PAGES[p], "package" | "version") {
                println!(
                    "round {round} pages {} skipped ({} has no version)",
                    PAGES[p],
                    l.package(k)
                );
                continue;
            }
            let mut html = 0usize;
            let (lats, failed) = self.sequential_gets(conn, path, &mut |r, body| {
                if r.status != 200 {
                    return Some("not 200".to_string());
                }
                html = html.max(body.len());
                check_page(body, want)
            });
            let stat = latency_stat(&lats);
            sum.pages_html[p] = sum.pages_html[p].max(html);
            let mut line = format!(
                "round {round} pages {:<14} {} req  p50 {} ms  p99 {} ms  max {} ms  html {html} B  {path}",
                PAGES[p],
                lats.len(),
                ms(stat.p50),
                ms(stat.p99),
                ms(stat.max)
            );
            if html > PAGES_HTML_BUDGET {
                line.push_str("  over 100 KB");
            }
            if failed > 0 {
                line.push_str(&format!("  errors {failed}"));
            } else if !lats.is_empty() {
                sum.pages[p].push(stat);
            }
            println!("{line}");
        }
    }
}

// ------------------------------------------------------------------ main

fn auth_header(args: &Args) -> Result<(String, &'static str), String> {
    let bad = |s: &Option<String>| s.as_deref().is_some_and(|v| v.contains(['\r', '\n']));
    if bad(&args.token) || bad(&args.basic) {
        return Err("the credentials contain a line break".to_string());
    }
    match (&args.token, &args.basic) {
        (Some(_), Some(_)) => Err("give --token or --basic, not both".to_string()),
        (_, Some(b)) => {
            if !b.contains(':') {
                return Err("--basic takes USER:PASS".to_string());
            }
            let enc = base64::engine::general_purpose::STANDARD.encode(b);
            Ok((format!("Authorization: Basic {enc}\r\n"), "basic"))
        }
        (Some(t), None) => Ok((format!("Authorization: token {t}\r\n"), "token")),
        (None, None) => match std::env::var("SHELF_TOKEN") {
            Ok(t) if !t.is_empty() => Ok((
                format!("Authorization: token {t}\r\n"),
                "token ($SHELF_TOKEN)",
            )),
            _ => Ok((String::new(), "none")),
        },
    }
}

fn main() -> ExitCode {
    let args: Args = argh::from_env();
    let target = match Target::parse(&args.url, args.ca_cert.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if args.ca_cert.is_some() && target.tls.is_none() {
        eprintln!("bench: --ca-cert is for an https:// URL");
        return ExitCode::from(2);
    }
    if args.workload.hostile() && target.tls.is_some() {
        eprintln!("bench: the hostile workload drives plain sockets: http:// URLs only");
        return ExitCode::from(2);
    }
    let (auth, auth_kind) = match auth_header(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    if args.rounds == 0 || args.concurrency == 0 {
        eprintln!("bench: --rounds and --concurrency must be at least 1");
        return ExitCode::from(2);
    }
    let listing = if args.workload.listing_data() {
        if args.listing_versions == 0 || args.listing_packages == 0 || args.listing_requests == 0 {
            eprintln!(
                "bench: --listing-versions, --listing-packages and --listing-requests must be at least 1"
            );
            return ExitCode::from(2);
        }
        match Listing::new(&target, args.listing_packages) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("bench: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if let Err(e) = connect(&target, IO_TIMEOUT) {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }

    let bench = Bench {
        target: &target,
        args: &args,
        errors: Errors::default(),
        pid: std::process::id(),
        stamp: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    if args.workload.hostile() {
        match raise_nofile_limit() {
            Ok((soft, _)) if (soft as usize) < args.idle_conns + args.slow_conns + 256 => {
                eprintln!(
                    "warning: RLIMIT_NOFILE is {soft}, too few descriptors for --idle-conns {} and --slow-conns {}",
                    args.idle_conns, args.slow_conns
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("warning: raising RLIMIT_NOFILE: {e}"),
        }
        println!(
            "bench url {} auth {auth_kind} workload hostile rounds {} small-size {} idle-conns {} slow-conns {} hostile-secs {} concurrency {}",
            args.url,
            args.rounds,
            args.small_size,
            args.idle_conns,
            args.slow_conns,
            args.hostile_secs,
            args.concurrency
        );
    } else if listing.is_some() {
        println!(
            "bench url {} auth {auth_kind} workload {} rounds {} listing-versions {} listing-packages {} listing-requests {} concurrency {}",
            args.url,
            args.workload.name(),
            args.rounds,
            args.listing_versions,
            args.listing_packages,
            args.listing_requests,
            args.concurrency
        );
    } else {
        println!(
            "bench url {} auth {auth_kind} workload {} rounds {} large-size {} small-size {} small-count {} concurrency {}",
            args.url,
            args.workload.name(),
            args.rounds,
            args.large_size,
            args.small_size,
            args.small_count,
            args.concurrency
        );
    }

    let mut sum = Summary::default();
    let mut large_conn = Conn::new(&target, &auth);
    // The pages are timed as a visitor who is not signed in sees them.
    let mut page_conn = Conn::new(&target, "");
    let mut small_conns: Vec<Conn> = (0..args.concurrency.min(args.small_count.max(1)))
        .map(|_| Conn::new(&target, &auth))
        .collect();
    if args.workload.backup() {
        bench.backup_setup(&mut small_conns);
    }
    let expect = listing.as_ref().and_then(|l| {
        let mut conns: Vec<Conn> = (0..args.concurrency.min(args.listing_versions))
            .map(|_| Conn::new(&target, &auth))
            .collect();
        bench.listing_setup(&mut conns, l)
    });
    for round in 1..=args.rounds {
        if args.workload.large() {
            bench.large_round(&mut large_conn, round, &mut sum);
        }
        if args.workload.small() && args.small_count > 0 {
            bench.small_round(&mut small_conns, round, &mut sum);
        }
        if args.workload.backup() {
            bench.backup_round(&mut small_conns, round, &mut sum);
        }
        if args.workload.hostile() {
            bench.hostile_round(&auth, round, &mut sum);
        }
        if let Some(l) = &listing {
            match &expect {
                Some(exp) if args.workload.pages() => {
                    bench.pages_round(&mut page_conn, l, exp, round, &mut sum)
                }
                Some(exp) => bench.listing_round(&mut large_conn, l, exp, round, &mut sum),
                None => println!(
                    "round {round} {} skipped (no version published)",
                    args.workload.name()
                ),
            }
        }
        if !args.no_cleanup && (args.workload.large() || args.workload.small()) {
            bench.drop_package_dir(&mut large_conn, round);
        }
    }
    if let Some(l) = &listing {
        if args.no_cleanup {
            println!("listing cleanup skipped (--no-cleanup)");
        } else {
            bench.listing_cleanup(&mut large_conn, l);
        }
    }

    println!("summary median of {} rounds", args.rounds);
    if args.workload.large() {
        for (name, v) in [("PUT", &sum.large_put), ("GET", &sum.large_get)] {
            match median(v) {
                Some(m) => println!("large {name}  {m:.1} MB/s"),
                None => println!("large {name}  n/a (no round without errors)"),
            }
        }
    }
    if args.workload.small() && args.small_count > 0 {
        for (k, name) in SMALL_PHASES.iter().enumerate() {
            let v = &sum.small[k];
            if k == 2 && args.no_cleanup {
                println!("small {name}  skipped (--no-cleanup)");
                continue;
            }
            let rps: Vec<f64> = v.iter().map(|s| s.rps).collect();
            let p50: Vec<f64> = v.iter().map(|s| s.p50).collect();
            let p99: Vec<f64> = v.iter().map(|s| s.p99).collect();
            match (median(&rps), median(&p50), median(&p99)) {
                (Some(r), Some(a), Some(b)) => {
                    println!("small {name}  {r:.1} req/s  p50 {a:.3} ms  p99 {b:.3} ms")
                }
                _ => println!("small {name}  n/a (no round without errors)"),
            }
        }
    }
    if args.workload.backup() {
        let m = |f: fn(&BackupStat) -> f64| {
            median(&sum.backup.iter().map(f).collect::<Vec<_>>()).unwrap_or(f64::NAN)
        };
        println!(
            "backup alone {:.1} MB/s  under load {:.1} MB/s  check {:.1} MB/s",
            m(|b| b.alone),
            m(|b| b.loaded),
            m(|b| b.check)
        );
        println!(
            "backup small PUT {:.1} → {:.1} req/s during ({:.2}×)  GET {:.1} → {:.1} req/s ({:.2}×)",
            m(|b| b.put_base),
            m(|b| b.put_during),
            m(|b| b.put_during / b.put_base),
            m(|b| b.get_base),
            m(|b| b.get_during),
            m(|b| b.get_during / b.get_base)
        );
        if !args.no_cleanup {
            bench.backup_cleanup(&mut large_conn);
        }
    }
    if args.workload.hostile() {
        let v = &sum.hostile;
        let m = |f: fn(&HostileStat) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
        let q = (m(|h| h.p50), m(|h| h.p99), m(|h| h.p999), m(|h| h.max));
        match (m(|h| h.rps), q) {
            (Some(r), (Some(a), Some(b), Some(b2), Some(c))) => println!(
                "hostile GET  {r:.1} req/s  p50 {a:.3} ms  p99 {b:.3} ms  p99.9 {b2:.3} ms  max {c:.3} ms  idle open {:.0} of {}  slow reconnects {:.0}",
                m(|h| h.idle_open as f64).unwrap_or(f64::NAN),
                args.idle_conns,
                m(|h| h.slow_reconnects as f64).unwrap_or(f64::NAN)
            ),
            _ => println!("hostile GET  n/a (no round without errors)"),
        }
        let kb = |f: fn(&HostileStat) -> Option<u64>| {
            median(
                &v.iter()
                    .filter_map(|h| f(h).map(|x| x as f64))
                    .collect::<Vec<_>>(),
            )
        };
        if let (Some(rss), Some(hwm)) = (kb(|h| h.rss_kb), kb(|h| h.hwm_kb)) {
            println!(
                "hostile server  VmRSS {:.1} MiB  VmHWM {:.1} MiB (while held)",
                rss / 1024.0,
                hwm / 1024.0
            );
        }
    }
    if args.workload.listing() {
        for (k, name) in LISTING_QUERIES.iter().enumerate() {
            let v = &sum.listing[k];
            let p50: Vec<f64> = v.iter().map(|s| s.p50).collect();
            let p99: Vec<f64> = v.iter().map(|s| s.p99).collect();
            let max: Vec<f64> = v.iter().map(|s| s.max).collect();
            match (median(&p50), median(&p99), median(&max)) {
                (Some(a), Some(b), Some(c)) => {
                    println!("listing {name}  p50 {a:.3} ms  p99 {b:.3} ms  max {c:.3} ms")
                }
                _ => println!("listing {name}  n/a (no round without errors)"),
            }
        }
    }
    if args.workload.pages() {
        for (k, name) in PAGES.iter().enumerate() {
            let v = &sum.pages[k];
            let p50: Vec<f64> = v.iter().map(|s| s.p50).collect();
            let p99: Vec<f64> = v.iter().map(|s| s.p99).collect();
            let max: Vec<f64> = v.iter().map(|s| s.max).collect();
            match (median(&p50), median(&p99), median(&max)) {
                (Some(a), Some(b), Some(c)) => println!(
                    "pages {name}  p50 {a:.3} ms  p99 {b:.3} ms  max {c:.3} ms  html {} B",
                    sum.pages_html[k]
                ),
                _ => println!("pages {name}  n/a (no round without errors)"),
            }
        }
        let (p, most) = sum
            .pages_html
            .iter()
            .enumerate()
            .max_by_key(|&(_, b)| *b)
            .map_or(("none", 0), |(p, b)| (PAGES[p], *b));
        let over = if most > PAGES_HTML_BUDGET {
            "  over 100 KB"
        } else {
            ""
        };
        println!("pages html max {most} B ({p}){over}");
    }
    if let (true, Some(l)) = (args.no_cleanup, &listing) {
        println!(
            "note: --no-cleanup: the listing data is left under {}'s listing-* packages; \
             reuse it with --listing-skip-setup",
            l.owner
        );
    } else if args.no_cleanup {
        println!(
            "note: --no-cleanup: uploads left under bench-{}-*",
            bench.pid
        );
    }
    let errors = bench.errors.count();
    println!("errors {errors}");
    if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
