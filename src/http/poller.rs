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
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::request::head_ready;
use super::response::{encode_head, Sent};
use super::{access_log, Ctx, Ticket};

pub(super) const LISTENER: Token = Token(usize::MAX - 1);
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
    pub(super) stream: Arc<TcpStream>,
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
}

/// The poller's state; lives on the thread that called [`super::Server::run`].
pub(super) struct Poller {
    poll: Poll,
    listener: TcpListener,
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
    pub(super) fn new(poll: Poll, listener: TcpListener) -> io::Result<Poller> {
        listener.set_nonblocking(true)?;
        poll.registry().register(
            &mut SourceFd(&listener.as_raw_fd()),
            LISTENER,
            Interest::READABLE,
        )?;
        Ok(Poller {
            poll,
            listener,
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
                    LISTENER => self.accept_all(ctx),
                    WAKER => {}
                    Token(i) => self.on_readable(i, ctx, jobs),
                }
            }
            // Connections workers gave back. Cleared before draining, so that a worker that
            // sends after the drain wakes the poller again.
            shared.wake_pending.store(false, Ordering::SeqCst);
            while let Ok(p) = returns.try_recv() {
                self.park(p, ctx, false);
            }
            let now = Instant::now();
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept_all(ctx);
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

    fn accept_all(&mut self, ctx: &Ctx) {
        if self.accept_paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    if ctx.shared.shutting_down() {
                        return;
                    }
                    self.admit(ctx, stream, peer);
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
    fn admit(&mut self, ctx: &Ctx, stream: TcpStream, peer: SocketAddr) {
        let shared = &ctx.shared;
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        let ticket = match Ticket::take(shared, &ctx.cfg, peer) {
            Ok(t) => t,
            Err(body) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                reject_busy(&stream, peer, body);
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
        let conn = Parked {
            stream: Arc::new(stream),
            peer,
            ticket,
            pending: Vec::new(),
        };
        self.park(conn, ctx, true);
    }

    /// Holds `conn` until its next head is ready (or it times out or closes).
    fn park(&mut self, conn: Parked, ctx: &Ctx, new: bool) {
        if ctx.shared.shutting_down() {
            return;
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
            return;
        }
        let in_head = new || !conn.pending.is_empty();
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
        });
        self.live += 1;
        self.prune_timers();
    }

    /// Reads what a connection sent; dispatches it once its head is ready.
    fn on_readable(&mut self, i: usize, ctx: &Ctx, jobs: &Sender<Parked>) {
        let cap = ctx.cfg.read_buf_size();
        loop {
            let Some(Some(w)) = self.slots.get_mut(i) else {
                return;
            };
            let room = cap.saturating_sub(w.conn.pending.len());
            if room == 0 {
                self.dispatch(i, jobs);
                return;
            }
            let want = room.min(self.scratch.len());
            match recv_nonblocking(&w.conn.stream, &mut self.scratch[..want]) {
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
                    // A head can only become complete (or malformed) when a line ends, so
                    // it is parsed once per line, not once per byte.
                    let line_ended = got.contains(&b'\n');
                    if w.conn.pending.len() >= ctx.cfg.max_head_bytes
                        || (line_ended && head_ready(&w.conn.pending, &ctx.cfg))
                    {
                        self.dispatch(i, jobs);
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::debug!("reading from {}: {e}", w.conn.peer);
                    self.close(i, "read error");
                    return;
                }
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

    fn dispatch(&mut self, i: usize, jobs: &Sender<Parked>) {
        if let Some(conn) = self.remove(i) {
            if jobs.send(conn).is_err() {
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

/// One `recv` that never blocks, on a socket the workers use in blocking mode.
fn recv_nonblocking(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
    let r = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// One `send` that never blocks (and raises no SIGPIPE).
fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call.
    let r = unsafe {
        libc::send(
            stream.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
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
