//! Prometheus metrics: counters, gauges and histograms kept in atomics, and their rendering in the
//! text exposition format 0.0.4 for `GET /metrics`.
//!
//! Recording is on the request path, so it is a handful of relaxed atomic adds into fixed arrays
//! (no lock, no allocation, no map). Labels are bounded by construction: `route` is a template
//! ([`Route`]) chosen from the path's shape, never a path or a name; `method` is one of eight
//! values; `status` is the number sent.
//!
//! Other modules add their own lines with [`Metrics::add_source`]: anything implementing
//! [`MetricsSource`] is asked to append its families (`# HELP`, `# TYPE` and samples) after the
//! built-in ones on every scrape. The store's totals come in that way ([`StoreMetrics`]); a
//! future source (e.g. a background scrub) registers itself the same way in `main.rs`.

use crate::http::{ConnectionGauges, Exchange, Observer};
use crate::store::{StatsCache, Store};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long the store totals that need a table scan are cached.
pub const STATS_MAX_AGE: Duration = Duration::from_secs(30);

/// Anything that appends metric families to a scrape.
pub trait MetricsSource: Send + Sync {
    /// Appends complete families (`# HELP`, `# TYPE`, samples; each line ending in `\n`).
    /// Must not block for long: a scrape waits for it.
    fn render(&self, out: &mut String);
}

// ---------------------------------------------------------------------------------------------
// Labels

/// The route label: which kind of endpoint a request went to. Bounded, and never carries an
/// owner, package, version or file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/api/packages/{owner}/generic/{name}/{version}/{file}`
    GenericFile,
    /// `/api/packages/{owner}/generic/{name}/{version}`
    GenericVersion,
    /// Any other path under `/api/packages/`.
    GenericOther,
    /// `/api/v1/packages/…`
    V1Packages,
    /// `/api/v1/admin/…`
    V1Admin,
    /// Any other path under `/api/v1`.
    V1Other,
    Metrics,
    /// `/healthz` and `/readyz`.
    Health,
    /// Anything else, including heads the HTTP layer rejected.
    Other,
}

const ROUTES: [Route; 9] = [
    Route::GenericFile,
    Route::GenericVersion,
    Route::GenericOther,
    Route::V1Packages,
    Route::V1Admin,
    Route::V1Other,
    Route::Metrics,
    Route::Health,
    Route::Other,
];
const NROUTES: usize = ROUTES.len();

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::GenericFile => "generic_file",
            Route::GenericVersion => "generic_version",
            Route::GenericOther => "generic_other",
            Route::V1Packages => "v1_packages",
            Route::V1Admin => "v1_admin",
            Route::V1Other => "v1_other",
            Route::Metrics => "metrics",
            Route::Health => "health",
            Route::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The route of a request-target (the query is ignored).
    pub fn of(target: &str) -> Route {
        let path = target.split('?').next().unwrap_or("");
        match path {
            "/metrics" => return Route::Metrics,
            "/healthz" | "/readyz" => return Route::Health,
            _ => {}
        }
        if let Some(rest) = path.strip_prefix("/api/packages/") {
            // {owner}/generic/{name}/{version}[/{file}], without allocating.
            let mut segs = rest.split('/');
            let _owner = segs.next();
            let generic = segs.next() == Some("generic");
            return match (generic, segs.count()) {
                (true, 3) => Route::GenericFile,
                (true, 2) => Route::GenericVersion,
                _ => Route::GenericOther,
            };
        }
        if path == "/api/v1" || path.starts_with("/api/v1/") {
            let rest = &path["/api/v1".len()..];
            if rest.starts_with("/packages/") || rest == "/packages" {
                return Route::V1Packages;
            }
            if rest.starts_with("/admin/") || rest == "/admin" {
                return Route::V1Admin;
            }
            return Route::V1Other;
        }
        Route::Other
    }
}

const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "other",
];
const NMETHODS: usize = METHODS.len();

fn method_index(method: &str) -> usize {
    METHODS[..NMETHODS - 1]
        .iter()
        .position(|m| *m == method)
        .unwrap_or(NMETHODS - 1)
}

/// Statuses 100..=599 have their own slot; anything else shares the last one ("other").
const NSTATUS: usize = 501;

fn status_index(status: u16) -> usize {
    if (100..=599).contains(&status) {
        usize::from(status - 100)
    } else {
        NSTATUS - 1
    }
}

// ---------------------------------------------------------------------------------------------
// Histograms

/// Upper bounds of the latency buckets, in seconds (from a small file on loopback to a large
/// upload over a slow link).
pub const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// The same bounds in microseconds, for an integer comparison on the request path.
const BUCKET_MICROS: [u64; 15] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
];

/// A latency histogram: one (non-cumulative) counter per bucket plus `+Inf`, and the sum.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BUCKET_MICROS
            .iter()
            .position(|&b| micros <= b)
            .unwrap_or(BUCKET_MICROS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Appends `name_bucket{labels,le=…}` (cumulative), `name_sum` and `name_count`; `_count`
    /// equals the `+Inf` bucket by construction. `labels` is empty or `k="v",…` without braces.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = match BUCKETS.get(i) {
                Some(b) => format_float(*b),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", format_float(sum));
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }

    fn is_empty(&self) -> bool {
        self.counts.iter().all(|c| c.load(Ordering::Relaxed) == 0)
    }
}

/// A float as Prometheus reads it (shortest round-trip form; integers without a fraction).
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Appends one family with a single unlabelled sample.
pub fn single(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

// ---------------------------------------------------------------------------------------------
// The registry of metrics

pub struct Metrics {
    /// Unix time the process started (seconds, with fraction).
    start_time: f64,
    /// Requests by [route][method][status].
    requests: Box<[AtomicU64]>,
    request_bytes: [AtomicU64; NROUTES],
    response_bytes: [AtomicU64; NROUTES],
    /// All requests, by route.
    durations: [Histogram; NROUTES],
    /// Successful (2xx) PUTs of a generic file, head to response.
    upload: Histogram,
    /// Successful (2xx) GETs of a generic file, head to the last byte sent.
    download: Histogram,
    uploads_in_flight: AtomicI64,
    /// Requests whose response could not be written completely (client gone, stall, abort).
    aborted: AtomicU64,
    connections: OnceLock<ConnectionGauges>,
    sources: RwLock<Vec<Arc<dyn MetricsSource>>>,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    token: Option<String>,
}

/// The tag `begin` hands to `end`: route, method and whether it is an upload.
fn tag(route: Route, method: usize) -> u32 {
    (route.index() as u32) << 8 | method as u32
}

fn untag(tag: u32) -> (usize, usize) {
    (
        ((tag >> 8) as usize).min(NROUTES - 1),
        ((tag & 0xff) as usize).min(NMETHODS - 1),
    )
}

const PUT: usize = 2;
const GET: usize = 0;

impl Metrics {
    /// `token`: the bearer token `/metrics` requires (None: open).
    pub fn new(token: Option<String>) -> Metrics {
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Metrics {
            start_time,
            requests: (0..NROUTES * NMETHODS * NSTATUS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            request_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            response_bytes: std::array::from_fn(|_| AtomicU64::new(0)),
            durations: std::array::from_fn(|_| Histogram::default()),
            upload: Histogram::default(),
            download: Histogram::default(),
            uploads_in_flight: AtomicI64::new(0),
            aborted: AtomicU64::new(0),
            connections: OnceLock::new(),
            sources: RwLock::new(Vec::new()),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// Reports the HTTP server's connection counts too.
    pub fn set_connections(&self, gauges: ConnectionGauges) {
        let _ = self.connections.set(gauges);
    }

    /// Appends `source`'s families to every scrape, after the built-in ones.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        match self.sources.write() {
            Ok(mut s) => s.push(source),
            Err(poisoned) => poisoned.into_inner().push(source),
        }
    }

    /// Whether a request with this `Authorization` header may scrape. Compared in constant time
    /// (over sha256 digests, so the length does not leak either).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(want) = &self.token else {
            return true;
        };
        let given = authorization
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .unwrap_or("");
        crate::auth::secret_eq(given.as_bytes(), want.as_bytes()) && !given.is_empty()
    }

    /// Whether `/metrics` needs a token.
    pub fn requires_token(&self) -> bool {
        self.token.is_some()
    }

    /// The whole exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_http(&mut out);
        self.render_process(&mut out);
        let sources = match self.sources.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        for s in sources {
            s.render(&mut out);
        }
        out
    }

    fn render_http(&self, out: &mut String) {
        family(
            out,
            "shelf_http_requests_total",
            "counter",
            "HTTP requests answered, by route template, method and status.",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let base = (r * NMETHODS + m) * NSTATUS;
                for s in 0..NSTATUS {
                    let n = self.requests[base + s].load(Ordering::Relaxed);
                    if n == 0 {
                        continue;
                    }
                    let status = if s == NSTATUS - 1 {
                        "other".to_string()
                    } else {
                        (s + 100).to_string()
                    };
                    let _ = writeln!(
                        out,
                        "shelf_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
                        route.as_str()
                    );
                }
            }
        }
        for (name, help, counters) in [
            (
                "shelf_http_request_bytes_total",
                "Request body bytes received, by route template.",
                &self.request_bytes,
            ),
            (
                "shelf_http_response_bytes_total",
                "Response body bytes sent, by route template.",
                &self.response_bytes,
            ),
        ] {
            family(out, name, "counter", help);
            for (r, route) in ROUTES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}{{route=\"{}\"}} {}",
                    route.as_str(),
                    counters[r].load(Ordering::Relaxed)
                );
            }
        }
        single(
            out,
            "shelf_http_responses_aborted_total",
            "counter",
            "Responses that could not be written completely (client gone, stalled or aborted body).",
            self.aborted.load(Ordering::Relaxed),
        );
        family(
            out,
            "shelf_http_request_duration_seconds",
            "histogram",
            "Time from the request head to the last response byte, by route template.",
        );
        for (r, route) in ROUTES.iter().enumerate() {
            if self.durations[r].is_empty() {
                continue;
            }
            self.durations[r].render(
                out,
                "shelf_http_request_duration_seconds",
                &format!("route=\"{}\"", route.as_str()),
            );
        }
        family(
            out,
            "shelf_upload_duration_seconds",
            "histogram",
            "Successful uploads (PUT of a generic file), from the request head to the response.",
        );
        self.upload.render(out, "shelf_upload_duration_seconds", "");
        family(
            out,
            "shelf_download_duration_seconds",
            "histogram",
            "Successful downloads (GET of a generic file), from the request head to the last byte.",
        );
        self.download
            .render(out, "shelf_download_duration_seconds", "");
        single(
            out,
            "shelf_uploads_in_flight",
            "gauge",
            "Uploads (PUT of a generic file) being received right now.",
            self.uploads_in_flight.load(Ordering::Relaxed).max(0),
        );
        if let Some(c) = self.connections.get() {
            single(
                out,
                "shelf_http_connections_open",
                "gauge",
                "Accepted connections not yet closed (queued or being served).",
                c.open(),
            );
            single(
                out,
                "shelf_http_connections_busy",
                "gauge",
                "Connections held by a worker right now.",
                c.busy(),
            );
            single(
                out,
                "shelf_http_workers",
                "gauge",
                "Size of the worker pool (--workers).",
                c.workers(),
            );
            single(
                out,
                "shelf_http_connections_accepted_total",
                "counter",
                "Connections accepted.",
                c.accepted(),
            );
            single(
                out,
                "shelf_http_connections_refused_total",
                "counter",
                "Connections refused with a fast 503 because --max-connections were open.",
                c.refused(),
            );
        }
    }

    fn render_process(&self, out: &mut String) {
        family(
            out,
            "shelf_build_info",
            "gauge",
            "Always 1; the version of this shelf binary is a label.",
        );
        let _ = writeln!(
            out,
            "shelf_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        single(
            out,
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since the Unix epoch, in seconds.",
            format_float(self.start_time),
        );
        if let Some(rss) = resident_bytes() {
            single(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss,
            );
        }
        if let Some(fds) = open_fds() {
            single(
                out,
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                fds,
            );
        }
    }
}

impl Observer for Metrics {
    fn begin(&self, method: &str, target: &str) -> u32 {
        let route = Route::of(target);
        let m = method_index(method);
        if route == Route::GenericFile && m == PUT {
            self.uploads_in_flight.fetch_add(1, Ordering::Relaxed);
        }
        tag(route, m)
    }

    fn end(&self, tag: u32, ex: &Exchange) {
        let (r, m) = untag(tag);
        let i = (r * NMETHODS + m) * NSTATUS + status_index(ex.status);
        if let Some(c) = self.requests.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.request_bytes[r].fetch_add(ex.request_bytes, Ordering::Relaxed);
        self.response_bytes[r].fetch_add(ex.response_bytes, Ordering::Relaxed);
        self.durations[r].observe(ex.duration);
        if !ex.ok {
            self.aborted.fetch_add(1, Ordering::Relaxed);
        }
        if r == Route::GenericFile.index() {
            let success = (200..300).contains(&ex.status) && ex.ok;
            if m == PUT {
                self.uploads_in_flight.fetch_sub(1, Ordering::Relaxed);
                if success {
                    self.upload.observe(ex.duration);
                }
            } else if m == GET && success {
                self.download.observe(ex.duration);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|p| p * pages)
}

#[cfg(not(target_os = "linux"))]
fn resident_bytes() -> Option<u64> {
    None
}

#[cfg(target_os = "linux")]
fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

#[cfg(not(target_os = "linux"))]
fn open_fds() -> Option<u64> {
    None
}

// ---------------------------------------------------------------------------------------------
// The store's totals

/// The database's size and contents as metrics. Counts of rows are read at every scrape (redb
/// keeps table lengths, so they cost no scan); byte totals need a scan of the `contents` table
/// and come from a [`StatsCache`] at most [`STATS_MAX_AGE`] old, refreshed in the background.
pub struct StoreMetrics {
    store: Weak<Store>,
    cache: StatsCache,
}

impl StoreMetrics {
    /// Holds the store weakly, so that it can still be closed while metrics live on.
    pub fn new(store: &Arc<Store>) -> StoreMetrics {
        StoreMetrics {
            store: Arc::downgrade(store),
            cache: StatsCache::new(STATS_MAX_AGE),
        }
    }
}

impl MetricsSource for StoreMetrics {
    fn render(&self, out: &mut String) {
        let Some(store) = self.store.upgrade() else {
            return;
        };
        if let Ok(size) = store.database_size() {
            single(
                out,
                "shelf_database_size_bytes",
                "gauge",
                "Size of the database file in bytes.",
                size,
            );
        }
        single(
            out,
            "shelf_storage_reopens_total",
            "counter",
            "Times the database was reopened in process after a storage fault (a full disk, an I/O error).",
            store.reopens(),
        );
        if let Some(free) = store.disk_free() {
            single(
                out,
                "shelf_disk_free_bytes",
                "gauge",
                "Free bytes on the filesystem that holds the database (uploads get 507 below --min-free-space).",
                free,
            );
        }
        match store.row_counts() {
            Ok(c) => {
                single(out, "shelf_packages", "gauge", "Packages.", c.packages);
                single(
                    out,
                    "shelf_versions",
                    "gauge",
                    "Package versions.",
                    c.versions,
                );
                single(out, "shelf_files", "gauge", "Files (published).", c.files);
                single(
                    out,
                    "shelf_contents",
                    "gauge",
                    "Distinct file bodies (files with the same bytes share one).",
                    c.contents,
                );
                single(
                    out,
                    "shelf_chunks",
                    "gauge",
                    "Stored chunks (content-addressed, each stored once).",
                    c.chunks,
                );
                single(
                    out,
                    "shelf_upload_pins",
                    "gauge",
                    "Chunks pinned by uploads in progress.",
                    c.pins,
                );
                single(
                    out,
                    "shelf_users",
                    "gauge",
                    "Users and organizations.",
                    c.users,
                );
            }
            Err(e) => log::warn!("metrics: counting rows: {e}"),
        }
        if let Some(t) = self.cache.get(&store) {
            single(
                out,
                "shelf_logical_bytes",
                "gauge",
                "Bytes of all published files, as clients see them (cached, see shelf_stats_age_seconds).",
                t.logical_bytes,
            );
            single(
                out,
                "shelf_physical_bytes",
                "gauge",
                "Bytes of all distinct chunks stored (cached, see shelf_stats_age_seconds).",
                t.physical_bytes,
            );
            let ratio = if t.physical_bytes == 0 {
                1.0
            } else {
                t.logical_bytes as f64 / t.physical_bytes as f64
            };
            single(
                out,
                "shelf_dedup_ratio",
                "gauge",
                "Logical bytes / physical bytes (1 without deduplication).",
                format_float(ratio),
            );
            single(
                out,
                "shelf_stats_age_seconds",
                "gauge",
                "Age of the cached byte totals.",
                format_float(t.computed.elapsed().as_secs_f64()),
            );
            single(
                out,
                "shelf_stats_scan_seconds",
                "gauge",
                "How long the last scan for the byte totals took.",
                format_float(t.took.as_secs_f64()),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The background scrub

/// The scrub's progress and findings (`store::ScrubState`) as metrics.
pub struct ScrubMetrics {
    store: Weak<Store>,
}

impl ScrubMetrics {
    pub fn new(store: &Arc<Store>) -> ScrubMetrics {
        ScrubMetrics {
            store: Arc::downgrade(store),
        }
    }
}

impl MetricsSource for ScrubMetrics {
    fn render(&self, out: &mut String) {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(store) = self.store.upgrade() else {
            return;
        };
        let st = store.scrub_state();
        single(
            out,
            "shelf_scrub_running",
            "gauge",
            "1 while a scrub pass is running.",
            u8::from(st.running.load(Relaxed)),
        );
        single(
            out,
            "shelf_scrub_progress_ratio",
            "gauge",
            "Share of the current scrub pass done (1 between passes).",
            st.progress(),
        );
        single(
            out,
            "shelf_scrub_passes_total",
            "counter",
            "Complete scrub passes since start.",
            st.passes_completed.load(Relaxed),
        );
        single(
            out,
            "shelf_scrub_chunks_total",
            "counter",
            "Chunks the scrub has re-read and verified since start.",
            st.chunks_total.load(Relaxed),
        );
        single(
            out,
            "shelf_scrub_bytes_total",
            "counter",
            "Bytes the scrub has re-read and verified since start.",
            st.bytes_total.load(Relaxed),
        );
        single(
            out,
            "shelf_scrub_damaged_chunks_total",
            "counter",
            "Chunks whose bytes no longer hash to their id, found by the scrub (alert on any).",
            st.faults_total.load(Relaxed),
        );
        single(
            out,
            "shelf_scrub_last_pass_end_timestamp_seconds",
            "gauge",
            "Unix time the last complete scrub pass ended (0: none yet).",
            st.last_pass_end.load(Relaxed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(status: u16, req: u64, resp: u64, ms: u64) -> Exchange {
        Exchange {
            status,
            request_bytes: req,
            response_bytes: resp,
            duration: Duration::from_millis(ms),
            ok: true,
        }
    }

    /// (name with labels) → value, for every sample line.
    fn samples(text: &str) -> Vec<(String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').expect("sample line");
                (k.to_string(), v.parse().expect("number"))
            })
            .collect()
    }

    fn value(text: &str, key: &str) -> f64 {
        samples(text)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no sample {key} in\n{text}"))
    }

    #[test]
    fn routes_are_templates() {
        let cases = [
            ("/api/packages/acme/generic/app/1.0/app.tgz", "generic_file"),
            (
                "/api/packages/acme/generic/app/1.0/app.tgz?token=x",
                "generic_file",
            ),
            ("/api/packages/acme/generic/app/1.0", "generic_version"),
            ("/api/packages/acme/generic/app", "generic_other"),
            ("/api/packages/acme/npm/x/y/z", "generic_other"),
            ("/api/v1/packages/acme", "v1_packages"),
            ("/api/v1/admin/users", "v1_admin"),
            ("/api/v1/user", "v1_other"),
            ("/api/v1", "v1_other"),
            ("/api/v10", "other"),
            ("/metrics", "metrics"),
            ("/healthz", "health"),
            ("/readyz?x", "health"),
            ("/", "other"),
            ("-", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(Route::of(path).as_str(), want, "{path}");
        }
    }

    #[test]
    fn counts_by_labels_and_histograms_are_cumulative() {
        let m = Metrics::new(None);
        let file = "/api/packages/acme/generic/app/1.0/f.bin";
        let t = m.begin("PUT", file);
        assert!(m.render().contains("shelf_uploads_in_flight 1\n"));
        m.end(t, &ex(201, 1000, 0, 3));
        let t = m.begin("GET", file);
        m.end(t, &ex(200, 0, 1000, 700));
        let t = m.begin("GET", file);
        m.end(t, &ex(404, 0, 10, 1));
        let t = m.begin("BREW", "/x");
        m.end(t, &ex(405, 0, 5, 1));
        let text = m.render();
        assert_eq!(value(&text, "shelf_uploads_in_flight"), 0.0);
        let req = |labels: &str| value(&text, &format!("shelf_http_requests_total{{{labels}}}"));
        assert_eq!(
            req(r#"route="generic_file",method="PUT",status="201""#),
            1.0
        );
        assert_eq!(
            req(r#"route="generic_file",method="GET",status="200""#),
            1.0
        );
        assert_eq!(
            req(r#"route="generic_file",method="GET",status="404""#),
            1.0
        );
        assert_eq!(req(r#"route="other",method="other",status="405""#), 1.0);
        assert_eq!(
            value(
                &text,
                r#"shelf_http_request_bytes_total{route="generic_file"}"#
            ),
            1000.0
        );
        assert_eq!(
            value(
                &text,
                r#"shelf_http_response_bytes_total{route="generic_file"}"#
            ),
            1010.0
        );
        // Only successful GETs are downloads: one, of 0.7 s.
        assert_eq!(value(&text, "shelf_download_duration_seconds_count"), 1.0);
        assert_eq!(
            value(&text, r#"shelf_download_duration_seconds_bucket{le="0.5"}"#),
            0.0
        );
        assert_eq!(
            value(&text, r#"shelf_download_duration_seconds_bucket{le="1"}"#),
            1.0
        );
        assert!((value(&text, "shelf_download_duration_seconds_sum") - 0.7).abs() < 1e-9);
        assert_eq!(
            value(&text, r#"shelf_upload_duration_seconds_bucket{le="0.005"}"#),
            1.0
        );
        // Every histogram: cumulative buckets, +Inf = _count.
        let all = samples(&text);
        let mut last: Option<(String, f64)> = None;
        for (k, v) in &all {
            if let Some((series, _)) = k.split_once("_bucket{") {
                if let Some((prev_series, prev)) = &last {
                    if prev_series == series && !k.contains("le=\"0.005\"") {
                        assert!(*v >= *prev, "{k} not cumulative");
                    }
                }
                last = Some((series.to_string(), *v));
                if k.contains("le=\"+Inf\"") {
                    let count_key = k
                        .replace("_bucket{", "_count{")
                        .replace(",le=\"+Inf\"", "")
                        .replace("{le=\"+Inf\"}", "");
                    let count_key = count_key.replace("_count{}", "_count");
                    assert_eq!(value(&text, &count_key), *v, "{count_key}");
                }
            }
        }
        assert_eq!(
            value(
                &text,
                r#"shelf_http_request_duration_seconds_count{route="generic_file"}"#
            ),
            3.0
        );
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let m = Metrics::new(None);
        let t = m.begin("GET", "/healthz");
        m.end(t, &ex(200, 0, 3, 0));
        let text = m.render();
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().expect("name");
                assert!(typed.insert(name.to_string()), "TYPE twice for {name}");
                assert!(
                    text.contains(&format!("# HELP {name} ")),
                    "no HELP for {name}"
                );
            }
        }
        for (k, _) in samples(&text) {
            let name = k.split('{').next().expect("name");
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
                .unwrap_or(name);
            assert!(typed.contains(base), "sample {k} without TYPE");
        }
    }

    #[test]
    fn sources_append() {
        struct Extra;
        impl MetricsSource for Extra {
            fn render(&self, out: &mut String) {
                single(out, "shelf_extra", "gauge", "An extra.", 7);
            }
        }
        let m = Metrics::new(None);
        m.add_source(Arc::new(Extra));
        assert_eq!(value(&m.render(), "shelf_extra"), 7.0);
    }

    #[test]
    fn token_check() {
        let open = Metrics::new(None);
        assert!(open.authorized(None));
        let m = Metrics::new(Some("s3cret".into()));
        assert!(m.authorized(Some("Bearer s3cret")));
        assert!(m.authorized(Some("bearer  s3cret ")));
        assert!(!m.authorized(Some("Bearer s3cre")));
        assert!(!m.authorized(Some("token s3cret")));
        assert!(!m.authorized(Some("Bearer ")));
        assert!(!m.authorized(None));
    }
}
