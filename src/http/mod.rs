//! shelf's own strict, synchronous HTTP/1.1 server (DESIGN.md §5).
//!
//! This module owns every socket in the process: the listener, the readiness poller that holds
//! every connection no worker does (new, idle, or still sending its head: `poller.rs`), a
//! bounded pool of worker threads (each serving one request at a time with blocking I/O, taking
//! a connection only once its head is buffered), request-head parsing on
//! `httparse` with size/count limits, request-body framing (Content-Length and strict chunked
//! decoding), `Expect: 100-continue`, keep-alive and pipelining, response framing, the per-request
//! `catch_unwind`, timeouts, graceful shutdown and the access log.
//!
//! It must not know about redb, routes, users or packages: a [`Handler`] receives an owned
//! [`Request`] whose body is an [`io::Read`] and returns a [`Response`].
//!
//! Invariants this layer guarantees to handlers and clients:
//! - a request body never ends early without an error: truncation is `UnexpectedEof`, bad chunked
//!   framing is `InvalidData`, a stall is `WouldBlock`/`TimedOut`;
//! - nothing is allocated from a client-declared size;
//! - an ambiguous or malformed head is answered with an error and the connection is closed, so no
//!   byte of a rejected request is ever parsed as a following request (no smuggling);
//! - a streamed response body either delivers exactly its declared length or the connection is
//!   aborted: never padded, never a short "complete" response;
//! - no request (malformed, slow, panicking) can stop the poller or kill a worker, and no worker
//!   waits for a client that sends nothing (an idle or slow head waits in the poller; a body
//!   below the minimum rate is abandoned).
//!
//! The code is split by what it owns: `conn.rs` (a connection's socket and read buffer),
//! `request.rs` (request heads, headers and body framing decisions), `body.rs` (the request body and
//! its Content-Length and chunked decoders), `response.rs` (response types, head encoding, writing
//! and streaming), `date.rs` (HTTP dates), `link.rs` (a connection's transport: the socket, plain or TLS, blocking
//! for workers and non-blocking for the poller), `tls.rs` (the certificate, key and their
//! reload), `poller.rs` (the listener, accept, the connection caps, waiting connections, TLS
//! handshakes, and their head and idle timeouts); this file holds the configuration,
//! the server, the worker pool and a connection's requests on a worker.

mod body;
mod conn;
mod link;
mod poller;
mod request;
mod response;
#[cfg(test)]
mod tests;
mod tls;

use std::any::Any;
use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener};
use std::os::unix::io::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use body::Body;
pub use request::{Headers, Request};
pub use response::{BodySource, Response, ResponseBody};
pub use tls::{Tls, TlsError};

use body::{BodyRate, BodySrc, ConnBody, Framing, MAX_TRAILER_LINE};
use conn::Conn;
use link::Link;
use poller::{Parked, Poller};
use request::{connection_tokens, head_ready, read_head, request_framing, HeadError};
use response::{layer_error, write_response, Sent, WorkerBufs};

/// After a handler left its request body unread: how much we read and discard to keep the connection.
const DRAIN_BYTES: u64 = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Before closing a connection that may still carry unread input: read and discard at most this much
/// (so the kernel does not answer unread data with a RST that destroys our response in flight).
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);
/// How long `run` waits for in-flight requests after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Limits and timeouts of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Worker threads; each serves one request at a time.
    pub workers: usize,
    /// Open connections (waiting in the poller, queued, or held by a worker) beyond this get
    /// a fast 503 and are closed.
    pub max_connections: usize,
    /// Open connections one client address may hold; beyond it, a fast 503 (0: no cap). So
    /// that one address cannot take every slot of `max_connections`.
    pub max_connections_per_ip: usize,
    /// Addresses the per-address cap does not apply to (trusted reverse proxies, which carry
    /// many clients' connections).
    pub per_ip_exempt: Vec<IpAddr>,
    /// The whole request head must arrive within this (slowloris).
    pub head_timeout: Duration,
    /// Keep-alive wait for the first byte of the next request.
    pub idle_timeout: Duration,
    /// Longest stall between two reads of a request body.
    pub body_timeout: Duration,
    /// Bytes per second a request body must average over each `body_rate_window` of waiting
    /// for it; slower, the body is abandoned (a read error, 408) and nothing is stored. 0: off.
    pub min_body_rate: u64,
    pub body_rate_window: Duration,
    /// Longest stall of a response write.
    pub write_timeout: Duration,
    /// Largest request head (request line + headers); larger → 431.
    pub max_head_bytes: usize,
    /// Most header fields in a request head; more → 431.
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            workers: 32,
            max_connections: 10_000,
            max_connections_per_ip: 0,
            per_ip_exempt: Vec::new(),
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
            min_body_rate: 1024,
            body_rate_window: Duration::from_secs(10),
            write_timeout: Duration::from_secs(60),
            max_head_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

impl ServerConfig {
    /// Size of a connection's read buffer: a whole head of `max_head_bytes` must fit in it, as must
    /// the longest chunk-size or trailer line.
    fn read_buf_size(&self) -> usize {
        self.max_head_bytes.max(MAX_TRAILER_LINE) + 8 * 1024
    }
}

/// The request handler shared by all workers.
pub type Handler = Arc<dyn Fn(&mut Request) -> Response + Send + Sync>;

/// What the server saw of one finished exchange, for an [`Observer`].
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The status sent (or that was being sent when the write failed).
    pub status: u16,
    /// Request body bytes the handler read.
    pub request_bytes: u64,
    /// Response body bytes written to the socket.
    pub response_bytes: u64,
    /// From the parsed head to the last byte of the response.
    pub duration: Duration,
    /// False when writing the response failed (client gone, stall, short body reader).
    pub ok: bool,
}

/// Watches requests, e.g. to count them (`metrics`). Called on the worker thread of each request,
/// so both calls must be cheap (a few atomic operations) and never block.
pub trait Observer: Send + Sync {
    /// A request head was read (`method` is `-` for a head this layer rejected). The returned tag
    /// is handed back to [`Observer::end`] for the same request.
    fn begin(&self, method: &str, target: &str) -> u32;
    /// The response to the request `begin` tagged has been written (or failed).
    fn end(&self, tag: u32, exchange: &Exchange);
}

/// Live connection counts of a server, readable from any thread (e.g. for metrics).
#[derive(Clone)]
pub struct ConnectionGauges(Arc<Shared>);

impl ConnectionGauges {
    /// Accepted connections not yet closed (waiting in the poller, queued, or held by a worker).
    pub fn open(&self) -> usize {
        self.0.open.load(Ordering::Relaxed)
    }

    /// Connections held by a worker right now.
    pub fn busy(&self) -> usize {
        self.0.busy.load(Ordering::Relaxed)
    }

    /// The size of the worker pool.
    pub fn workers(&self) -> usize {
        self.0.workers
    }

    /// Connections accepted since the server started.
    pub fn accepted(&self) -> u64 {
        self.0.accepted.load(Ordering::Relaxed)
    }

    /// Connections refused with a fast 503 (over `max_connections`, or over the per-address
    /// cap) since the server started.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// Serving connections
// ---------------------------------------------------------------------------------------------

/// State shared by the poller, the workers and shutdown handles.
struct Shared {
    shutdown: AtomicBool,
    /// Accepted connections not yet closed: in the poller, queued, or held by a worker.
    open: AtomicUsize,
    /// Connections held by a worker.
    busy: AtomicUsize,
    /// Connections the poller has handed to the pool that no worker has taken yet.
    queued: AtomicUsize,
    workers: usize,
    /// Connections accepted since start (for metrics).
    accepted: AtomicU64,
    /// Connections refused with the fast 503 (either cap) since start (for metrics).
    refused: AtomicU64,
    /// Open connections per client address (only while the per-address cap is on).
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Each worker's connection, so that shutdown can cut the ones still busy after the grace
    /// period (a stalled client must not keep the handler, and with it the database, open).
    active: Vec<Mutex<Option<Arc<Link>>>>,
    /// A worker has given a connection back and woken the poller, which has not drained them
    /// yet (so that a burst of returns costs one wake-up).
    wake_pending: AtomicBool,
    /// Wakes the poller (a connection given back, or shutdown).
    waker: mio::Waker,
}

impl Shared {
    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn wake_poller(&self) {
        if !self.wake_pending.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.waker.wake() {
                log::error!("waking the connection poller: {e}");
            }
        }
    }
}

struct Ctx {
    cfg: ServerConfig,
    handler: Handler,
    shared: Arc<Shared>,
    observer: Option<Arc<dyn Observer>>,
    /// Set: every connection speaks TLS.
    tls: Option<Arc<Tls>>,
    /// Gives connections back to the poller.
    park_tx: Sender<Parked>,
}

impl Ctx {
    /// Hands a connection back to the poller to wait for its next request (closed instead
    /// when the server is shutting down).
    fn park(&self, conn: Parked) {
        if self.shared.shutting_down() {
            return;
        }
        if self.park_tx.send(conn).is_ok() {
            self.shared.wake_poller();
        }
    }

    fn observe_begin(&self, method: &str, target: &str) -> u32 {
        self.observer
            .as_ref()
            .map_or(0, |o| o.begin(method, target))
    }

    fn observe_end(&self, tag: u32, sent: &Sent, request_bytes: u64, started: Instant) {
        if let Some(o) = &self.observer {
            o.end(
                tag,
                &Exchange {
                    status: sent.status,
                    request_bytes,
                    response_bytes: sent.body_bytes,
                    duration: started.elapsed(),
                    ok: sent.ok,
                },
            );
        }
    }
}

/// One open connection, counted in `open` and against its client address's cap; dropped when
/// the connection is closed, however it ends (served, timed out, or a worker's panic).
struct Ticket {
    shared: Arc<Shared>,
    /// The address whose count this connection holds (None: the address is not capped).
    ip: Option<IpAddr>,
}

impl Ticket {
    /// Counts a new connection from `peer`, or the body of the 503 when it is over a cap.
    fn take(
        shared: &Arc<Shared>,
        cfg: &ServerConfig,
        peer: SocketAddr,
    ) -> Result<Ticket, &'static str> {
        // Only the poller thread takes tickets, so the check and the increment cannot race
        // with another take.
        if shared.open.load(Ordering::SeqCst) >= cfg.max_connections.max(1) {
            return Err("server busy, retry later\n");
        }
        let ip = canonical_ip(peer.ip());
        let counted = cfg.max_connections_per_ip > 0 && !cfg.per_ip_exempt.contains(&ip);
        if counted {
            let mut map = shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(ip).or_insert(0);
            if *n >= cfg.max_connections_per_ip {
                return Err("too many connections from your address, retry later\n");
            }
            *n += 1;
        }
        shared.open.fetch_add(1, Ordering::SeqCst);
        Ok(Ticket {
            shared: Arc::clone(shared),
            ip: counted.then_some(ip),
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        let Some(ip) = self.ip else { return };
        let mut map = self.shared.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// An IPv4 client seen on an IPv6 socket (`::ffff:a.b.c.d`) counts as the IPv4 address.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Counts a connection as busy while a worker holds it.
struct BusyGuard<'a>(&'a Shared);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker_loop(ctx: &Ctx, rx: &Mutex<Receiver<Parked>>, index: usize) {
    let mut bufs = WorkerBufs::default();
    loop {
        let job = {
            let guard = match rx.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            guard.recv()
        };
        let Ok(job) = job else { return };
        ctx.shared.queued.fetch_sub(1, Ordering::SeqCst);
        ctx.shared.busy.fetch_add(1, Ordering::SeqCst);
        let guard = BusyGuard(&ctx.shared);
        let peer = job.peer;
        let slot = &ctx.shared.active[index];
        let served = catch_unwind(AssertUnwindSafe(|| {
            serve_connection(ctx, job, &mut bufs, slot)
        }));
        if let Ok(mut s) = slot.lock() {
            s.take();
        }
        drop(guard);
        match served {
            Ok(Some(parked)) => ctx.park(parked),
            Ok(None) => {}
            Err(_) => {
                log::error!("panic while serving a connection from {peer}; connection dropped");
                bufs = WorkerBufs::default();
            }
        }
    }
}

/// Serves the requests of a connection whose head the poller found ready: the first, then
/// any pipelined ones already buffered in full. Returns the connection to park until its next
/// request, or None when it was closed.
fn serve_connection(
    ctx: &Ctx,
    job: Parked,
    bufs: &mut WorkerBufs,
    slot: &Mutex<Option<Arc<Link>>>,
) -> Option<Parked> {
    let Parked {
        stream,
        peer,
        ticket,
        pending,
    } = job;
    if let Ok(mut s) = slot.lock() {
        *s = Some(Arc::clone(&stream));
    }
    let mut conn = Conn::new(
        Arc::clone(&stream),
        bufs.take_read_buf(ctx.cfg.read_buf_size()),
    );
    if !conn.load(&pending) {
        log::error!("connection from {peer}: more bytes pending than a read buffer holds");
        return None;
    }
    drop(pending);
    loop {
        // The head is ready (see `head_ready`), so this deadline is only a bound.
        let deadline = Instant::now() + ctx.cfg.head_timeout;
        match serve_request(ctx, conn, &stream, peer, deadline, bufs) {
            Next::Keep(c) => conn = c,
            Next::Close(buf) => {
                if let Some(buf) = buf {
                    bufs.read = Some(buf);
                }
                return None;
            }
        }
        if conn.buffered() > 0 && head_ready(conn.unread(), &ctx.cfg) {
            continue;
        }
        if next_request_soon(ctx, &mut conn) && head_ready(conn.unread(), &ctx.cfg) {
            continue;
        }
        // Idle, or part of the next head received: wait in the poller, not here.
        let pending = conn.unread().to_vec();
        bufs.read = Some(conn.buf);
        return Some(Parked {
            stream,
            peer,
            ticket,
            pending,
        });
    }
}

/// How long a worker with nothing else to do waits for a keep-alive client's next request
/// before it parks the connection, in milliseconds (poll(2)'s unit).
const KEEPALIVE_GRACE_MS: i32 = 1;

/// After a response: whether the client's next bytes arrived within [`KEEPALIVE_GRACE_MS`]
/// (read into `conn`). A client that sends its next request at once, as a busy keep-alive
/// client does, is then served on the same worker, without the two thread hand-offs of a park
/// (measured: they made a 4 KiB GET loop 0.68× as fast). It waits only while no connection
/// waits for a worker, so it never delays another client; else the connection parks at once.
fn next_request_soon(ctx: &Ctx, conn: &mut Conn) -> bool {
    let shared = &ctx.shared;
    // A TLS connection parks at once: its next record may carry no data, and the poller,
    // not a worker, is where that waits (and where its session is pumped on return).
    if conn.stream.is_tls() || shared.queued.load(Ordering::SeqCst) > 0 || shared.shutting_down() {
        return false;
    }
    let mut pfd = libc::pollfd {
        fd: conn.stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call.
    if unsafe { libc::poll(&mut pfd, 1, KEEPALIVE_GRACE_MS) } <= 0 {
        return false;
    }
    // Readable: a plain read returns at once.
    matches!(conn.fill(), Ok(n) if n > 0)
}

enum Next {
    Keep(Conn),
    /// Connection closed; the read buffer for reuse if it was recovered.
    Close(Option<Box<[u8]>>),
}

/// Reads one request, runs the handler, writes the response.
fn serve_request(
    ctx: &Ctx,
    mut conn: Conn,
    stream: &Arc<Link>,
    peer: SocketAddr,
    deadline: Instant,
    bufs: &mut WorkerBufs,
) -> Next {
    let head = match read_head(&mut conn, &ctx.cfg, deadline) {
        Ok(h) => h,
        Err(HeadError::Silent) => return Next::Close(Some(conn.buf)),
        Err(HeadError::Reject(status, msg)) => {
            let started = Instant::now();
            let tag = ctx.observe_begin("-", "-");
            let refusal = Refusal {
                method: "-",
                target: "-",
                head_only: false,
                peer,
                started,
                tag,
            };
            return refusal.send(ctx, stream, bufs, conn, status, msg);
        }
    };
    let started = Instant::now();
    let head_only = head.method == "HEAD";
    let tag = ctx.observe_begin(&head.method, &head.target);

    let host_count = head.headers.get_all("host").count();
    let framing = if host_count > 1 || (head.minor == 1 && host_count == 0) {
        Err((400, "missing or repeated Host header"))
    } else {
        request_framing(&head)
    };
    let (framing, content_length, chunked) = match framing {
        Ok(f) => f,
        Err((status, msg)) => {
            let refusal = Refusal {
                method: &head.method,
                target: &head.target,
                head_only,
                peer,
                started,
                tag,
            };
            return refusal.send(ctx, stream, bufs, conn, status, msg);
        }
    };

    let minor = head.minor;
    let (asks_close, asks_keep_alive) = connection_tokens(&head.headers);
    let keep_requested = if head.minor == 0 {
        asks_keep_alive && !asks_close
    } else {
        !asks_close
    };
    let expect_continue = head.minor == 1
        && framing != Framing::Done
        && head.headers.get_all("expect").any(|v| {
            v.trim_matches([' ', '\t'])
                .eq_ignore_ascii_case("100-continue")
        });

    let body = Body::from_conn(
        ConnBody {
            conn,
            framing,
            expect_continue,
            continue_sent: false,
            error: None,
            timeout: ctx.cfg.body_timeout,
            body_timeout: ctx.cfg.body_timeout,
            rate: BodyRate::new(ctx.cfg.min_body_rate, ctx.cfg.body_rate_window),
        },
        content_length,
        chunked,
    );
    let mut req = Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        peer,
        secure: stream.is_tls(),
        body,
    };

    let (mut resp, panicked) = run_handler(&ctx.handler, &mut req);
    let request_bytes = req.body.bytes_read();
    let keep_requested = keep_requested && !panicked && !ctx.shared.shutting_down();
    let Reclaimed {
        conn: cb,
        mut keep,
        unread_input,
    } = reclaim(std::mem::take(&mut req.body), keep_requested);

    let user = resp.user.clone();
    if let ResponseBody::Stream { chunked, .. } = &mut resp.body {
        // HTTP/1.0 has no chunked coding: the body ends with the connection.
        if minor == 0 {
            *chunked = false;
            keep = false;
        }
    }
    let sent = write_response(stream, bufs, resp, head_only, keep);
    access_log(
        peer,
        &req.method,
        &req.target,
        &sent,
        started,
        user.as_deref(),
    );
    ctx.observe_end(tag, &sent, request_bytes, started);

    match cb {
        Some(cb) if keep && sent.ok => Next::Keep(cb.conn),
        cb => {
            if sent.ok && unread_input {
                linger_close(stream);
            } else if cb.is_none() {
                // The body (holding a handle to the socket) may live on in the handler's hands.
                stream.abort();
            } else if sent.ok {
                // A TLS client reading to the end of the connection sees a clean end.
                stream.close_notify();
            }
            Next::Close(cb.map(|cb| cb.conn.buf))
        }
    }
}

/// A request the layer refuses before any handler sees it (a bad head or framing): the error
/// response, logged and observed, then the connection closed.
struct Refusal<'a> {
    method: &'a str,
    target: &'a str,
    head_only: bool,
    peer: SocketAddr,
    started: Instant,
    tag: u32,
}

impl Refusal<'_> {
    fn send(
        self,
        ctx: &Ctx,
        stream: &Arc<Link>,
        bufs: &mut WorkerBufs,
        conn: Conn,
        status: u16,
        msg: &str,
    ) -> Next {
        let resp = layer_error(status, msg);
        let sent = write_response(stream, bufs, resp, self.head_only, false);
        access_log(
            self.peer,
            self.method,
            self.target,
            &sent,
            self.started,
            None,
        );
        ctx.observe_end(self.tag, &sent, 0, self.started);
        if sent.ok {
            linger_close(stream);
        }
        Next::Close(Some(conn.buf))
    }
}

/// Runs the handler; a panic is logged and answered with 500 (and `true`: the connection
/// cannot be trusted for another request).
fn run_handler(handler: &Handler, req: &mut Request) -> (Response, bool) {
    match catch_unwind(AssertUnwindSafe(|| handler(req))) {
        Ok(r) => (r, false),
        Err(payload) => {
            log::error!(
                "handler panicked on {} {}: {}",
                req.method,
                path_of(&req.target),
                panic_message(payload.as_ref())
            );
            (layer_error(500, "internal server error"), true)
        }
    }
}

/// The connection taken back from a request's body after the handler.
struct Reclaimed {
    /// `None` when the handler swapped the body out: the connection's input position is
    /// unknown, so it cannot carry another request.
    conn: Option<Box<ConnBody>>,
    /// Whether the connection may carry another request.
    keep: bool,
    /// Request bytes remain unread (the close must linger so the client reads the answer).
    unread_input: bool,
}

/// Takes the connection back from `body`, draining a bounded rest of an unread body when the
/// connection is to be kept (`keep_requested`).
fn reclaim(body: Body, keep_requested: bool) -> Reclaimed {
    let mut cb = match body.src {
        BodySrc::Conn(cb) => cb,
        _ => {
            return Reclaimed {
                conn: None,
                keep: false,
                unread_input: true,
            }
        }
    };
    let mut keep = keep_requested;
    let mut unread_input = false;
    if cb.error.is_some() {
        keep = false;
        unread_input = true;
    } else if !cb.is_done() {
        unread_input = true;
        if cb.expect_continue && !cb.continue_sent {
            // The client waits for 100 before sending the body: close instead of draining.
            keep = false;
        } else if keep {
            keep = cb.drain(DRAIN_BYTES, Instant::now() + DRAIN_TIME);
            unread_input = !keep;
        }
    }
    Reclaimed {
        conn: Some(cb),
        keep,
        unread_input,
    }
}

/// Half-closes, then reads and discards input for a bounded time, so that unread request bytes do
/// not make the kernel reset the connection before the client has read our response.
fn linger_close(stream: &Link) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut scratch = [0u8; 16 * 1024];
    let mut total = 0;
    // The raw socket: what is discarded need not be decrypted.
    let mut r = stream.tcp();
    loop {
        let now = Instant::now();
        if now >= deadline || total > LINGER_BYTES {
            return;
        }
        if stream
            .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))
            .is_err()
        {
            return;
        }
        match r.read(&mut scratch) {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The request-target without its query string (which may carry tokens).
pub fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or("")
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

/// Replaces control characters so a log line stays one line.
fn log_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if s.chars().any(|c| c.is_control() || c == ' ') {
        s.chars()
            .map(|c| if c.is_control() || c == ' ' { '_' } else { c })
            .collect::<String>()
            .into()
    } else {
        s.into()
    }
}

/// One line per request: peer ip, method, path (no query), status, body bytes, ms, user.
fn access_log(
    peer: SocketAddr,
    method: &str,
    target: &str,
    sent: &Sent,
    started: Instant,
    user: Option<&str>,
) {
    if !log::log_enabled!(target: "shelf::access", log::Level::Info) {
        return;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    log::info!(
        target: "shelf::access",
        "{} {} {} {} {} {:.1}ms {}",
        peer.ip(),
        log_safe(method),
        log_safe(path_of(target)),
        sent.status,
        sent.body_bytes,
        ms,
        log_safe(user.unwrap_or("-"))
    );
}

// ---------------------------------------------------------------------------------------------
// Server, accept loop, shutdown
// ---------------------------------------------------------------------------------------------

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    poll: mio::Poll,
    config: ServerConfig,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    observer: Option<Arc<dyn Observer>>,
    tls: Option<Arc<Tls>>,
    /// `--redirect-http`: a plain listener whose requests get a 308 to https.
    redirect: Option<TcpListener>,
}

/// Stops a running [`Server`]; `Clone + Send`.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops accepting; in-flight requests finish, keep-alive connections are closed.
    pub fn shutdown(&self) {
        if !self.shared.shutdown.swap(true, Ordering::SeqCst) {
            if let Err(e) = self.shared.waker.wake() {
                log::error!("waking the connection poller for shutdown: {e}");
            }
        }
    }
}

impl Server {
    /// Binds the listener and raises the RLIMIT_NOFILE soft limit to the hard limit.
    pub fn bind(addr: &str, config: ServerConfig) -> io::Result<Server> {
        raise_nofile_limit();
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
        let local_addr = listener.local_addr().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("local address of listener on {addr}: {e}"),
            )
        })?;
        let poll = mio::Poll::new()
            .map_err(|e| io::Error::new(e.kind(), format!("creating the poller: {e}")))?;
        let waker = mio::Waker::new(poll.registry(), poller::WAKER)
            .map_err(|e| io::Error::new(e.kind(), format!("creating the poller's waker: {e}")))?;
        let workers = config.workers.max(1);
        Ok(Server {
            listener,
            poll,
            config,
            local_addr,
            shared: Arc::new(Shared {
                shutdown: AtomicBool::new(false),
                open: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                queued: AtomicUsize::new(0),
                workers,
                accepted: AtomicU64::new(0),
                refused: AtomicU64::new(0),
                per_ip: Mutex::new(HashMap::new()),
                active: (0..workers).map(|_| Mutex::new(None)).collect(),
                wake_pending: AtomicBool::new(false),
                waker,
            }),
            observer: None,
            tls: None,
            redirect: None,
        })
    }

    /// Also listens on `addr` in plain HTTP, answering every request there with a 308 to the
    /// same host and path over https (`--redirect-http`); the address it listens on.
    pub fn add_redirect_http(&mut self, addr: &str) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("binding {addr}: {e}")))?;
        let local = listener.local_addr()?;
        self.redirect = Some(listener);
        Ok(local)
    }

    /// Serves TLS on every connection, with the pair `tls` holds (and reloads).
    pub fn set_tls(&mut self, tls: Arc<Tls>) {
        self.tls = Some(tls);
    }

    /// Has every request reported to `observer` (see [`Observer`]).
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// A handle on the live connection counts.
    pub fn connection_gauges(&self) -> ConnectionGauges {
        ConnectionGauges(Arc::clone(&self.shared))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Blocks: the poller (on this thread) and the worker pool, until shutdown; then stops
    /// accepting, closes waiting connections, lets in-flight requests finish (bounded by a
    /// grace period of ~10 s), and returns.
    pub fn run(self, handler: Handler) -> io::Result<()> {
        let Server {
            listener,
            poll,
            config,
            local_addr,
            shared,
            observer,
            tls,
            redirect,
        } = self;
        let workers = shared.workers;
        let mut poller = Poller::new(poll, listener, redirect).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("registering the listener with the poller: {e}"),
            )
        })?;
        let (job_tx, job_rx) = channel::<Parked>();
        let (park_tx, park_rx) = channel::<Parked>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let ctx = Arc::new(Ctx {
            cfg: config,
            handler,
            shared: Arc::clone(&shared),
            observer,
            tls,
            park_tx,
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&job_rx);
            let ctx = Arc::clone(&ctx);
            let spawned = thread::Builder::new()
                .name(format!("shelf-http-{i}"))
                .spawn(move || worker_loop(&ctx, &rx, i));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.shutdown.store(true, Ordering::SeqCst);
                    return Err(io::Error::new(
                        e.kind(),
                        format!("spawning HTTP worker thread {i}: {e}"),
                    ));
                }
            }
        }
        let scheme = if ctx.tls.is_some() { "https" } else { "http" };
        log::info!("listening on {scheme}://{local_addr} with {workers} workers");
        poller.run(&ctx, &job_tx, &park_rx);
        // Closes the listener and every waiting connection; queued ones are still served.
        drop(poller);
        drop(job_tx);
        drop(park_rx);

        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while handles.iter().any(|h| !h.is_finished()) {
            if Instant::now() >= deadline {
                log::warn!(
                    "shutdown: grace period of {SHUTDOWN_GRACE:?} over with requests still in flight; \
                     closing their connections"
                );
                for slot in &shared.active {
                    if let Some(s) = slot.lock().ok().and_then(|s| s.clone()) {
                        s.abort();
                    }
                }
                // Workers blocked on those sockets now fail and end, dropping the handler.
                let cut = Instant::now() + Duration::from_secs(2);
                while handles.iter().any(|h| !h.is_finished()) && Instant::now() < cut {
                    thread::sleep(Duration::from_millis(10));
                }
                return Ok(());
            }
            thread::sleep(Duration::from_millis(10));
        }
        for h in handles {
            let _ = h.join();
        }
        log::info!("HTTP server on {local_addr} stopped");
        Ok(())
    }
}

fn raise_nofile_limit() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        log::warn!("getrlimit(RLIMIT_NOFILE): {}", io::Error::last_os_error());
        return;
    }
    if rl.rlim_cur >= rl.rlim_max {
        log::info!(
            "open files limit (RLIMIT_NOFILE) {} (already the hard limit)",
            rl.rlim_cur
        );
        return;
    }
    for want in [rl.rlim_max, 1 << 20] {
        if want <= rl.rlim_cur || want > rl.rlim_max {
            continue;
        }
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: `new` is a valid rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
            log::info!(
                "open files limit (RLIMIT_NOFILE) raised from {} to {want}",
                rl.rlim_cur
            );
            return;
        }
    }
    log::warn!(
        "could not raise RLIMIT_NOFILE from {}: {}",
        rl.rlim_cur,
        io::Error::last_os_error()
    );
}
