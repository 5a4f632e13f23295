//! The readiness poller: one thread that owns the listener and every connection no worker holds,
//! so that no worker ever waits for a client that is not sending (DESIGN.md §5, issue 12).
//!
//! A connection waits here while it is new, idle between requests, or still sending its request
//! head. The poller accepts, reads the bytes of a head as they arrive (a connection's buffer is
//! allocated only when bytes do, and holds only them), enforces the head and idle timeouts, and
//! hands the connection to the worker pool only when its head is complete, already malformed,
//! or at the size limit: [`head_ready`]. The worker serves that request (and any pipelined ones
//! already buffered in full) and gives the connection back, with any bytes of a partial next
//! head, through a channel and the poller's [`Waker`].
//!
//! Sockets stay in blocking mode for the workers; the poller reads them with `MSG_DONTWAIT`. A
//! connection is registered with epoll only while it is here (edge-triggered, through `mio`),
//! and deregistered before it goes to a worker or is closed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::link::{recv_nonblocking, send_nonblocking, Link};
use super::request::{head_end_seen, head_ready};
use super::response::{encode_head, Sent};
use super::{access_log, Ctx, Ticket};

pub(super) const LISTENER: Token = Token(usize::MAX - 1);
/// The plain listener of `--redirect-http`, whose requests get a 308 to https.
pub(super) const REDIRECT: Token = Token(usize::MAX - 2);
pub(super) const WAKER: Token = Token(usize::MAX);
/// Bytes read from a waiting connection per `recv`.
const READ_CHUNK: usize = 16 * 1024;
/// Connections accepted per readiness event before the poller looks at its other connections.
const ACCEPT_BATCH: usize = 256;
/// How long accepting pauses when the process is out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// The poller wakes at least this often (a safety net; shutdown wakes it through the waker).
const MAX_WAIT: Duration = Duration::from_millis(500);

/// A connection no worker holds: new, idle, or with part of its next request head received.
pub(super) struct Parked {
    pub(super) stream: Arc<Link>,
    pub(super) peer: SocketAddr,
    /// Its place in the open-connection counts; given back when the connection closes.
    pub(super) ticket: Ticket,
    /// Received, unconsumed bytes of the next request (empty, and unallocated, until some arrive).
    pub(super) pending: Vec<u8>,
}

/// A parked connection and its timer.
struct Waiting {
    conn: Parked,
    /// Identifies this connection's current timer among stale ones in the heap.
    gen: u64,
    deadline: Instant,
    /// Bytes of a head have arrived, or the connection is new: the head timeout applies. Else
    /// it is idle between requests and the idle timeout applies.
    in_head: bool,
    /// Registered for writability too: TLS output (a handshake flight) waits for the socket.
    writable: bool,
    /// A new TLS connection whose first byte has not been looked at yet.
    sniff: bool,
    /// Came in on the redirect listener: answered here with a 308, never by a worker.
    redirect: bool,
    /// How far `pending` has been searched for the end of a head.
    scanned: usize,
}

/// The poller's state; lives on the thread that called [`super::Server::run`].
pub(super) struct Poller {
    poll: Poll,
    listener: TcpListener,
    /// `--redirect-http`: a plain listener, and the https port its 308s point to.
    redirect: Option<(TcpListener, u16)>,
    slots: Vec<Option<Waiting>>,
    free: Vec<usize>,
    live: usize,
    /// Deadlines as (deadline, slot, gen); entries whose gen no longer matches are stale.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    next_gen: u64,
    /// Accepting resumes at this instant (after running out of descriptors, or a full batch).
    accept_paused_until: Option<Instant>,
    scratch: Box<[u8]>,
}

impl Poller {
    /// `poll` already has the waker registered; the listener is registered here.
    pub(super) fn new(
        poll: Poll,
        listener: TcpListener,
        redirect: Option<TcpListener>,
    ) -> io::Result<Poller> {
        listener.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        let https_port = listener.local_addr()?.port();
        let redirect = match redirect {
            Some(r) => {
                r.set_nonblocking(true)?;
                poll.registry().register(
                    &mut SourceFd(&r.as_raw_fd()),
                    REDIRECT,
                    Interest::READABLE,
                )?;
                Some((r, https_port))
            }
            None => None,
        };
        Ok(Poller {
            poll,
            listener,
            redirect,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            timers: BinaryHeap::new(),
            next_gen: 0,
            accept_paused_until: None,
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
        })
    }

    /// Runs until shutdown: accepts, reads heads, expires timeouts, dispatches complete heads to
    /// `jobs` and takes connections back from `returns`. Every parked connection is closed on
    /// return.
    pub(super) fn run(&mut self, ctx: &Ctx, jobs: &Sender<Parked>, returns: &Receiver<Parked>) {
        let shared = &ctx.shared;
        let mut events = Events::with_capacity(1024);
        loop {
            if shared.shutting_down() {
                return;
            }
            let timeout = self.next_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::warn!("polling connections: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER | REDIRECT => self.accept_all(ctx, jobs),
                    WAKER => {}
                    Token(i) => self.on_ready(i, ctx, jobs),
                }
            }
            // Connections workers gave back. Cleared before draining, so that a worker that
            // sends after the drain wakes the poller again.
            shared.wake_pending.store(false, Ordering::SeqCst);
            while let Ok(p) = returns.try_recv() {
                let _ = self.park(p, ctx, jobs, false);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept_all(ctx, jobs);
            }
            self.expire(now);
        }
    }

    fn next_timeout(&self, now: Instant) -> Duration {
        let mut wait = MAX_WAIT;
        if let Some(Reverse((d, _, _))) = self.timers.peek() {
            wait = wait.min(d.saturating_duration_since(now));
        }
        if let Some(t) = self.accept_paused_until {
            wait = wait.min(t.saturating_duration_since(now));
        }
        wait
    }

    fn accept_all(&mut self, ctx: &Ctx, jobs: &Sender<Parked>) {
        if self.accept_paused_until.is_some() {
            return;
        }
        let mut from_redirect = false;
        let mut batch = 0;
        while batch < ACCEPT_BATCH {
            batch += 1;
            let accepted = match (&self.redirect, from_redirect) {
                (Some((r, _)), true) => r.accept(),
                _ => self.listener.accept(),
            };
            match accepted {
                Ok((stream, peer)) => {
                    if ctx.shared.shutting_down() {
                        return;
                    }
                    self.admit(ctx, jobs, stream, peer, from_redirect);
                }
                // The main listener is drained: on to the redirect listener, if there is one.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !from_redirect => {
                    if self.redirect.is_none() {
                        return;
                    }
                    from_redirect = true;
                    batch = 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    log::debug!("accept: {e}");
                }
                Err(e) => {
                    let out_of_resources = matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    );
                    if out_of_resources {
                        log::warn!(
                            "accept: {e} (out of resources); backing off {ACCEPT_BACKOFF:?}"
                        );
                    } else {
                        log::warn!("accept: {e}");
                    }
                    // The listener is edge-triggered: the pending connections stay in the
                    // backlog, and the timer brings the poller back to them.
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // A full batch: come back to the backlog after one round over the other connections.
        self.accept_paused_until = Some(Instant::now());
    }

    /// Counts a new connection against both caps (or refuses it with a fast 503) and parks it.
    fn admit(
        &mut self,
        ctx: &Ctx,
        jobs: &Sender<Parked>,
        stream: TcpStream,
        peer: SocketAddr,
        redirect: bool,
    ) {
        let shared = &ctx.shared;
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let ticket = match Ticket::take(shared, &ctx.cfg, peer) {
            Ok(t) => t,
            Err(body) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                if ctx.tls.is_some() && !redirect {
                    // Nothing can be said before a handshake: the refusal is the close.
                    log::debug!("connection from {peer} refused: {body}");
                } else {
                    reject_busy(&stream, peer, body);
                }
                return;
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            log::debug!("TCP_NODELAY on connection from {peer}: {e}");
        }
        if let Err(e) = stream.set_write_timeout(Some(ctx.cfg.write_timeout)) {
            log::debug!("write timeout on connection from {peer}: {e}; closing");
            return;
        }
        let link = match &ctx.tls {
            _ if redirect => Link::plain(stream),
            None => Link::plain(stream),
            Some(tls) => match tls.session() {
                Ok(session) => Link::tls(stream, session),
                Err(e) => {
                    log::warn!("TLS session for a connection from {peer}: {e}; closing");
                    return;
                }
            },
        };
        let conn = Parked {
            stream: Arc::new(link),
            peer,
            ticket,
            pending: Vec::new(),
        };
        self.park_new(conn, ctx, jobs, redirect);
    }

    /// Parks a connection just accepted.
    fn park_new(&mut self, conn: Parked, ctx: &Ctx, jobs: &Sender<Parked>, redirect: bool) {
        if let Some(i) = self.park(conn, ctx, jobs, true) {
            if let Some(Some(w)) = self.slots.get_mut(i) {
                w.redirect = redirect;
                w.sniff &= !redirect;
            }
        }
    }

    /// Holds `conn` until its next head is ready (or it times out or closes); its slot.
    fn park(&mut self, conn: Parked, ctx: &Ctx, jobs: &Sender<Parked>, new: bool) -> Option<usize> {
        if ctx.shared.shutting_down() {
            return None;
        }
        let fd = conn.stream.as_raw_fd();
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        // Edge-triggered: bytes that arrived while a worker held the connection are reported
        // at once by this registration.
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut SourceFd(&fd), Token(i), Interest::READABLE)
        {
            log::warn!(
                "registering a connection from {} with the poller: {e}",
                conn.peer
            );
            self.free.push(i);
            return None;
        }
        let in_head = new || !conn.pending.is_empty();
        let tls = conn.stream.is_tls();
        let now = Instant::now();
        let deadline = now
            + if in_head {
                ctx.cfg.head_timeout
            } else {
                ctx.cfg.idle_timeout
            };
        self.next_gen += 1;
        let gen = self.next_gen;
        self.timers.push(Reverse((deadline, i, gen)));
        self.slots[i] = Some(Waiting {
            conn,
            gen,
            deadline,
            in_head,
            writable: false,
            sniff: tls && new,
            scanned: 0,
            redirect: false,
        });
        self.live += 1;
        self.prune_timers();
        if tls && !new {
            // The session may hold decrypted bytes of the next request already: no readiness
            // event would report those.
            self.on_ready(i, ctx, jobs);
        }
        Some(i)
    }

    /// Reads what a connection sent (on TLS, advancing the handshake); dispatches it once its
    /// head is ready.
    fn on_ready(&mut self, i: usize, ctx: &Ctx, jobs: &Sender<Parked>) {
        let cap = ctx.cfg.read_buf_size();
        if !self.sniffed(i) {
            return;
        }
        loop {
            let Some(Some(w)) = self.slots.get_mut(i) else {
                return;
            };
            let room = cap.saturating_sub(w.conn.pending.len());
            if room == 0 {
                self.dispatch(i, jobs, &ctx.shared.queued);
                return;
            }
            let want = room.min(self.scratch.len());
            match w.conn.stream.read_nonblocking(&mut self.scratch[..want]) {
                Ok(0) => {
                    self.close(i, "closed by the client");
                    return;
                }
                Ok(n) => {
                    let got = &self.scratch[..n];
                    w.conn.pending.extend_from_slice(got);
                    if !w.in_head {
                        // The first byte of the next request: its head has head_timeout.
                        w.in_head = true;
                        w.deadline = Instant::now() + ctx.cfg.head_timeout;
                        self.next_gen += 1;
                        w.gen = self.next_gen;
                        self.timers.push(Reverse((w.deadline, i, w.gen)));
                    }
                    // The head is parsed only once its end may be there (an empty line after
                    // the leading ones), or at the size limit: a head trickled in line by line
                    // is searched in linear time, never re-parsed per line. A malformed head
                    // is answered then (or closed at the head timeout).
                    let end_seen = head_end_seen(&w.conn.pending, w.scanned);
                    w.scanned = w.conn.pending.len();
                    if w.conn.pending.len() >= ctx.cfg.max_head_bytes
                        || (end_seen && head_ready(&w.conn.pending, &ctx.cfg))
                    {
                        if w.redirect {
                            self.answer_redirect(i);
                        } else {
                            self.dispatch(i, jobs, &ctx.shared.queued);
                        }
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.await_output(i);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if w.conn.stream.is_tls() {
                        // Scanners fail handshakes all day: not worth more than debug.
                        log::debug!("TLS connection from {}: {e}", w.conn.peer);
                    } else {
                        log::debug!("reading from {}: {e}", w.conn.peer);
                    }
                    self.close(i, "read error");
                    return;
                }
            }
        }
    }

    /// For a new TLS connection: true once its first byte opens a handshake (or is not plain
    /// HTTP). Plain HTTP sent to the TLS port is answered as Go's server does, in plain text,
    /// and closed; false too while no byte has arrived.
    fn sniffed(&mut self, i: usize) -> bool {
        let Some(Some(w)) = self.slots.get_mut(i) else {
            return false;
        };
        if !w.sniff {
            return true;
        }
        match w.conn.stream.first_byte() {
            Ok(Some(b)) if b.is_ascii_uppercase() => {
                let peer = w.conn.peer;
                let started = Instant::now();
                let body = "Client sent an HTTP request to an HTTPS server.\n";
                let answer = format!("HTTP/1.0 400 Bad Request\r\n\r\n{body}");
                let ok =
                    answer_and_close(w.conn.stream.tcp(), answer.as_bytes(), &mut self.scratch);
                let sent = Sent {
                    status: 400,
                    body_bytes: if ok { body.len() as u64 } else { 0 },
                    ok,
                };
                access_log(peer, "-", "-", &sent, started, None);
                self.close(i, "plain HTTP on the TLS port");
                false
            }
            Ok(Some(_)) => {
                w.sniff = false;
                true
            }
            Ok(None) => {
                self.close(i, "closed by the client");
                false
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            Err(e) => {
                log::debug!("reading from {}: {e}", w.conn.peer);
                self.close(i, "read error");
                false
            }
        }
    }

    /// The `--redirect-http` answer, from the poller (no worker, no body read): 308 to the same
    /// host and path on https, or 400 without a usable Host; then the connection closes.
    fn answer_redirect(&mut self, i: usize) {
        let Some(conn) = self.remove(i) else {
            return;
        };
        let started = Instant::now();
        let port = self.redirect.as_ref().map_or(443, |(_, p)| *p);
        let mut slots = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut slots);
        let parsed = matches!(req.parse(&conn.pending), Ok(httparse::Status::Complete(_)));
        let host = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("host"))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
            });
        let (status, head) = match (parsed, host) {
            (true, Some(host)) => {
                // The host without its port (an IPv6 literal keeps its brackets).
                let name = match host.rfind(']') {
                    Some(end) => &host[..=end],
                    None => host.split(':').next().unwrap_or(host),
                };
                let path = req.path.filter(|p| p.starts_with('/')).unwrap_or("/");
                let port = if port == 443 {
                    String::new()
                } else {
                    format!(":{port}")
                };
                let location = format!("https://{name}{port}{path}");
                (
                    308,
                    format!(
                        "HTTP/1.1 308 Permanent Redirect\r\nLocation: {location}\r\n\
                         Content-Length: 0\r\nConnection: close\r\n\r\n"
                    ),
                )
            }
            _ => (
                400,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
                 Content-Length: 28\r\nConnection: close\r\n\r\nmissing or bad Host header\r\n"
                    .to_string(),
            ),
        };
        let ok = answer_and_close(conn.stream.tcp(), head.as_bytes(), &mut self.scratch);
        let sent = Sent {
            status,
            body_bytes: 0,
            ok,
        };
        access_log(
            conn.peer,
            req.method.unwrap_or("-"),
            super::path_of(req.path.unwrap_or("-")),
            &sent,
            started,
            None,
        );
    }

    /// Sends a TLS connection's pending output, and watches for writability while some is left.
    fn await_output(&mut self, i: usize) {
        let Some(Some(w)) = self.slots.get_mut(i) else {
            return;
        };
        if !w.conn.stream.is_tls() {
            return;
        }
        let left = match w.conn.stream.flush_nonblocking() {
            Ok(()) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) => {
                log::debug!("writing to {}: {e}", w.conn.peer);
                self.close(i, "write error");
                return;
            }
        };
        if left == w.writable {
            return;
        }
        let interest = if left {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        let fd = w.conn.stream.as_raw_fd();
        match self
            .poll
            .registry()
            .reregister(&mut SourceFd(&fd), Token(i), interest)
        {
            Ok(()) => w.writable = left,
            Err(e) => {
                log::warn!("re-registering a connection from {}: {e}", w.conn.peer);
                self.close(i, "poller error");
            }
        }
    }

    /// Takes slot `i` out of the poller.
    fn remove(&mut self, i: usize) -> Option<Parked> {
        let w = self.slots.get_mut(i)?.take()?;
        let fd = w.conn.stream.as_raw_fd();
        if let Err(e) = self.poll.registry().deregister(&mut SourceFd(&fd)) {
            log::debug!("deregistering a connection from {}: {e}", w.conn.peer);
        }
        self.free.push(i);
        self.live -= 1;
        Some(w.conn)
    }

    fn dispatch(&mut self, i: usize, jobs: &Sender<Parked>, queued: &AtomicUsize) {
        if let Some(conn) = self.remove(i) {
            queued.fetch_add(1, Ordering::SeqCst);
            if jobs.send(conn).is_err() {
                queued.fetch_sub(1, Ordering::SeqCst);
                log::error!("all HTTP workers are gone; closing a ready connection");
            }
        }
    }

    fn close(&mut self, i: usize, why: &str) {
        if let Some(conn) = self.remove(i) {
            log::debug!("connection from {}: {why}", conn.peer);
        }
    }

    /// Closes every connection whose head or idle timeout has passed: silently, as nginx and
    /// Go's server do.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((deadline, i, gen))) = self.timers.peek() {
            if deadline > now {
                return;
            }
            self.timers.pop();
            let current = matches!(self.slots.get(i), Some(Some(w)) if w.gen == gen);
            if current {
                let why = match &self.slots[i] {
                    Some(w) if w.in_head => "head timeout",
                    _ => "idle timeout",
                };
                self.close(i, why);
            }
        }
    }

    /// Drops stale timer entries once they outnumber the live ones.
    fn prune_timers(&mut self) {
        if self.timers.len() <= 2 * self.live + 1024 {
            return;
        }
        self.timers = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|w| Reverse((w.deadline, i, w.gen))))
            .collect();
    }
}

/// The poller's own answers (plain HTTP on the TLS port, the redirect): one send that never
/// blocks, a write shutdown, then the request bytes that are here are read, so that closing
/// with them unread does not make the kernel reset the connection before the answer is read.
/// Whether the whole answer went out.
fn answer_and_close(tcp: &TcpStream, answer: &[u8], scratch: &mut [u8]) -> bool {
    let ok = send_nonblocking(tcp, answer).is_ok_and(|n| n == answer.len());
    let _ = tcp.shutdown(Shutdown::Write);
    let mut drained = 0;
    while drained < 4 * READ_CHUNK {
        match recv_nonblocking(tcp, scratch) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
    ok
}

/// The fast 503 for a connection over a cap: one write that never blocks (a new connection's
/// send buffer is empty, so the few hundred bytes fit), then close.
fn reject_busy(stream: &TcpStream, peer: SocketAddr, body: &str) {
    let started = Instant::now();
    let mut out = Vec::with_capacity(256);
    encode_head(
        &mut out,
        503,
        &[
            (
                "Content-Type".to_string(),
                "text/plain; charset=utf-8".to_string(),
            ),
            ("Retry-After".to_string(), "1".to_string()),
        ],
        Some(body.len() as u64),
        false,
    );
    out.extend_from_slice(body.as_bytes());
    let ok = send_nonblocking(stream, &out).is_ok_and(|n| n == out.len());
    let _ = stream.shutdown(Shutdown::Write);
    let sent = Sent {
        status: 503,
        body_bytes: if ok { body.len() as u64 } else { 0 },
        ok,
    };
    access_log(peer, "-", "-", &sent, started, None);
}
