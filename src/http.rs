//! shelf's own strict, synchronous HTTP/1.1 server (DESIGN.md §5).
//!
//! This module owns every socket in the process: the listener, the accept loop, a bounded pool of
//! worker threads (each serving one connection at a time with blocking I/O), request-head parsing on
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
//! - no request (malformed, slow, panicking) can stop the accept loop or kill a worker.

use std::any::Any;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest accepted chunk size in a chunked request body (1 TiB).
const MAX_CHUNK_SIZE: u64 = 1 << 40;
/// Longest chunk-size line (size + extensions), without CRLF.
const MAX_CHUNK_LINE: usize = 4096;
/// Longest single trailer line, and the whole trailer section.
const MAX_TRAILER_LINE: usize = 8192;
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// After a handler left its request body unread: how much we read and discard to keep the connection.
const DRAIN_BYTES: u64 = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// Before closing a connection that may still carry unread input: read and discard at most this much
/// (so the kernel does not answer unread data with a RST that destroys our response in flight).
const LINGER_BYTES: usize = 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(1);
/// Granularity of the keep-alive idle wait (shutdown and queue pressure are checked this often).
const IDLE_SLICE: Duration = Duration::from_millis(100);
/// How long `run` waits for in-flight requests after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Buffer for streamed response bodies (written straight to the socket).
const STREAM_BUF: usize = 1024 * 1024;
/// Bytes bodies up to this size are sent with the head in one write.
const INLINE_BODY: usize = 64 * 1024;
/// Body reads into a caller buffer at least this large bypass our buffer when it is empty.
const DIRECT_READ_MIN: usize = 8 * 1024;
/// Write timeout of the fast 503 written by the accept thread.
const BUSY_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Limits and timeouts of the server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Worker threads; each serves one connection at a time.
    pub workers: usize,
    /// Accepted connections (queued + active) beyond this get a fast 503 and are closed.
    pub max_connections: usize,
    /// The whole request head must arrive within this (slowloris).
    pub head_timeout: Duration,
    /// Keep-alive wait for the first byte of the next request.
    pub idle_timeout: Duration,
    /// Longest stall between two reads of a request body.
    pub body_timeout: Duration,
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
            max_connections: 512,
            head_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(30),
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

// ---------------------------------------------------------------------------------------------
// Headers, Request, Body
// ---------------------------------------------------------------------------------------------

/// Request header fields in arrival order; names lower-cased, values decoded lossily as UTF-8.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<(String, String)>,
}

impl Headers {
    /// An empty header list (for building requests in tests).
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Appends a field; the name is lower-cased.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.list.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (case-insensitive), in arrival order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields as (lower-case name, value), in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// One parsed request, owned and socket-free from the handler's point of view.
#[derive(Debug)]
pub struct Request {
    /// As sent ("GET", "PUT", ...).
    pub method: String,
    /// Raw request-target as sent, not percent-decoded, query string included.
    pub target: String,
    pub headers: Headers,
    pub peer: SocketAddr,
    pub body: Body,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

/// The request body, an [`io::Read`].
///
/// Reading it the first time sends `HTTP/1.1 100 Continue` if the client sent
/// `Expect: 100-continue` (so a handler that refuses without reading never sends 100).
/// Errors are loud: truncation (peer closed early, inside a chunk or before Content-Length bytes)
/// is `UnexpectedEof`; bad chunked framing is `InvalidData`; a stall longer than `body_timeout` is
/// `TimedOut`/`WouldBlock`. `Ok(0)` is returned only at the real end. Errors are sticky: every
/// read after an error fails the same way.
pub struct Body {
    src: BodySrc,
    content_length: Option<u64>,
    chunked: bool,
    bytes_read: u64,
    /// Set when a `Reader` source returned `Ok(0)`.
    reader_done: bool,
}

enum BodySrc {
    Empty,
    Conn(Box<ConnBody>),
    Reader(Box<dyn Read + Send>),
}

impl Body {
    /// A body with no bytes (`is_finished()` is true).
    pub fn empty() -> Body {
        Body {
            src: BodySrc::Empty,
            content_length: None,
            chunked: false,
            bytes_read: 0,
            reader_done: true,
        }
    }

    /// An in-memory body with a declared Content-Length of `bytes.len()` (for tests and tools).
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        let len = bytes.len() as u64;
        Body::from_reader(Box::new(io::Cursor::new(bytes)), Some(len))
    }

    /// A body read from any reader, with an optional declared Content-Length (for tests and tools).
    pub fn from_reader(reader: Box<dyn Read + Send>, content_length: Option<u64>) -> Body {
        Body {
            src: BodySrc::Reader(reader),
            content_length,
            chunked: false,
            bytes_read: 0,
            reader_done: false,
        }
    }

    fn from_conn(cb: ConnBody, content_length: Option<u64>, chunked: bool) -> Body {
        Body {
            src: BodySrc::Conn(Box::new(cb)),
            content_length,
            chunked,
            bytes_read: 0,
            reader_done: false,
        }
    }

    /// Declared Content-Length (None when chunked or absent).
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// True when the body is sent with `Transfer-Encoding: chunked`.
    pub fn is_chunked(&self) -> bool {
        self.chunked
    }

    /// Body bytes returned by `read` so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// True when the whole body has been consumed (true for no body).
    pub fn is_finished(&self) -> bool {
        match &self.src {
            BodySrc::Empty => true,
            BodySrc::Conn(cb) => cb.is_done(),
            BodySrc::Reader(_) => self.reader_done,
        }
    }
}

impl Default for Body {
    fn default() -> Body {
        Body::empty()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("content_length", &self.content_length)
            .field("chunked", &self.chunked)
            .field("bytes_read", &self.bytes_read)
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl Read for Body {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let n = match &mut self.src {
            BodySrc::Empty => 0,
            BodySrc::Conn(cb) => cb.read(out)?,
            BodySrc::Reader(r) => {
                let n = r.read(out)?;
                if n == 0 {
                    self.reader_done = true;
                }
                n
            }
        };
        self.bytes_read += n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Connection buffer and body decoding
// ---------------------------------------------------------------------------------------------

/// A connection's socket and read buffer. Bytes in `buf[pos..end]` were received but not consumed;
/// they belong to the current request (head/body) or to the next pipelined request.
struct Conn {
    stream: Arc<TcpStream>,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// The read timeout currently set on the socket (avoids a setsockopt per read).
    timeout: Option<Duration>,
}

impl Conn {
    fn new(stream: Arc<TcpStream>, buf: Box<[u8]>) -> Conn {
        Conn {
            stream,
            buf,
            pos: 0,
            end: 0,
            timeout: None,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.pos
    }

    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        let d = d.max(Duration::from_millis(1));
        if self.timeout != Some(d) {
            self.stream.set_read_timeout(Some(d))?;
            self.timeout = Some(d);
        }
        Ok(())
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
    }

    /// Reads more bytes from the socket into the buffer. `Ok(0)` means the peer closed.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.compact();
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "connection read buffer full",
            ));
        }
        loop {
            match (&*self.stream).read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads up to `out.len()` bytes: buffered bytes first, else straight from the socket.
    fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.end {
            if out.len() >= DIRECT_READ_MIN {
                loop {
                    match (&*self.stream).read(out) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        r => return r,
                    }
                }
            }
            if self.fill()? == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buffered());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    /// Consumes one CRLF-terminated line of at most `limit` bytes (CRLF excluded) and returns the
    /// range of its content in `buf`. A bare LF is `InvalidData`; EOF is `UnexpectedEof`.
    fn read_line(&mut self, limit: usize, what: &str) -> io::Result<std::ops::Range<usize>> {
        let mut scanned = 0;
        loop {
            if let Some(i) = self.buf[self.pos + scanned..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let nl = self.pos + scanned + i;
                if nl == self.pos || self.buf[nl - 1] != b'\r' {
                    return Err(invalid(format!("{what} not terminated by CRLF")));
                }
                if nl - 1 - self.pos > limit {
                    return Err(invalid(format!("{what} longer than {limit} bytes")));
                }
                let range = self.pos..nl - 1;
                self.pos = nl + 1;
                return Ok(range);
            }
            scanned = self.buffered();
            if scanned > limit + 1 {
                return Err(invalid(format!("{what} longer than {limit} bytes")));
            }
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("request body truncated: connection closed inside a {what}"),
                ));
            }
        }
    }

    /// Consumes exactly "\r\n".
    fn expect_crlf(&mut self) -> io::Result<()> {
        while self.buffered() < 2 {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request body truncated: connection closed before the CRLF after chunk data",
                ));
            }
        }
        if &self.buf[self.pos..self.pos + 2] != b"\r\n" {
            return Err(invalid("missing CRLF after chunk data".to_string()));
        }
        self.pos += 2;
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// Content-Length body with this many bytes still to come (> 0).
    Length {
        remaining: u64,
        declared: u64,
    },
    Chunked(Chunk),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside chunk data, this many bytes to go (> 0).
    Data(u64),
    /// Chunk data complete, expecting its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty line; bytes of trailers seen so far.
    Trailers(usize),
}

/// The body reader of a request that came in on a connection; owns the connection while the
/// handler runs and gives it back afterwards.
struct ConnBody {
    conn: Conn,
    framing: Framing,
    /// The client sent `Expect: 100-continue` (HTTP/1.1, with a body).
    expect_continue: bool,
    continue_sent: bool,
    /// The first error; every later read returns it again.
    error: Option<(io::ErrorKind, String)>,
    /// Read timeout for body reads (body_timeout, shortened while draining).
    timeout: Duration,
    body_timeout: Duration,
}

impl ConnBody {
    fn is_done(&self) -> bool {
        self.framing == Framing::Done
    }

    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if self.framing == Framing::Done {
            return Ok(0);
        }
        let r = self.read_inner(out);
        if let Err(e) = &r {
            self.error = Some((e.kind(), e.to_string()));
        }
        r
    }

    fn read_inner(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.expect_continue && !self.continue_sent {
            self.continue_sent = true;
            (&*self.conn.stream)
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|e| io::Error::new(e.kind(), format!("sending 100 Continue: {e}")))?;
        }
        self.conn.set_timeout(self.timeout)?;
        let timeout = self.timeout;
        let stalled = move |e: io::Error| -> io::Error {
            match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
                    e.kind(),
                    format!("request body stalled for more than {timeout:?}"),
                ),
                _ => e,
            }
        };
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::Length {
                    remaining,
                    declared,
                } => {
                    let want = out.len().min(remaining.min(usize::MAX as u64) as usize);
                    let n = self.conn.read_some(&mut out[..want]).map_err(stalled)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "request body truncated: connection closed with {remaining} of \
                                 {declared} bytes missing"
                            ),
                        ));
                    }
                    let remaining = remaining - n as u64;
                    self.framing = if remaining == 0 {
                        Framing::Done
                    } else {
                        Framing::Length {
                            remaining,
                            declared,
                        }
                    };
                    return Ok(n);
                }
                Framing::Chunked(Chunk::Size) => {
                    let range = self
                        .conn
                        .read_line(MAX_CHUNK_LINE, "chunk-size line")
                        .map_err(stalled)?;
                    let size = parse_chunk_size(&self.conn.buf[range])?;
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let want = out.len().min(left.min(usize::MAX as u64) as usize);
                    let n = self.conn.read_some(&mut out[..want]).map_err(stalled)?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "request body truncated: connection closed with {left} bytes of \
                                 a chunk missing"
                            ),
                        ));
                    }
                    let left = left - n as u64;
                    self.framing = Framing::Chunked(if left == 0 {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left)
                    });
                    return Ok(n);
                }
                Framing::Chunked(Chunk::DataEnd) => {
                    self.conn.expect_crlf().map_err(stalled)?;
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let range = self
                        .conn
                        .read_line(MAX_TRAILER_LINE, "trailer line")
                        .map_err(stalled)?;
                    if range.is_empty() {
                        self.framing = Framing::Done;
                        return Ok(0);
                    }
                    let line = &self.conn.buf[range.clone()];
                    let seen = seen + range.len() + 2;
                    if seen > MAX_TRAILER_BYTES {
                        return Err(invalid(format!(
                            "trailer section longer than {MAX_TRAILER_BYTES} bytes"
                        )));
                    }
                    let colon = line.iter().position(|&b| b == b':');
                    let valid_name =
                        colon.is_some_and(|c| c > 0 && line[..c].iter().all(|&b| is_tchar(b)));
                    if !valid_name || line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                        return Err(invalid("malformed trailer field".to_string()));
                    }
                    self.framing = Framing::Chunked(Chunk::Trailers(seen));
                }
            }
        }
    }

    /// Reads and discards the rest of the body within `max_bytes` and `deadline`; true if the body
    /// ended cleanly within that budget (the connection can then serve the next request).
    fn drain(&mut self, max_bytes: u64, deadline: Instant) -> bool {
        if let Framing::Length { remaining, .. } = self.framing {
            if remaining > max_bytes {
                return false;
            }
        }
        let mut scratch = [0u8; 16 * 1024];
        let mut total = 0u64;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            self.timeout = self.body_timeout.min(deadline - now);
            match self.read(&mut scratch) {
                Ok(0) => return true,
                Ok(n) => {
                    total += n as u64;
                    if total > max_bytes {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }
}

/// Parses a chunk-size line: `1*HEXDIG [ BWS ";" ext ]`. Rejects sizes above [`MAX_CHUNK_SIZE`].
fn parse_chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(invalid("invalid chunk size: no hex digits".to_string()));
    }
    let mut size: u64 = 0;
    for &b in &line[..digits] {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        size = size * 16 + d;
        if size > MAX_CHUNK_SIZE {
            return Err(invalid(format!(
                "chunk size larger than {MAX_CHUNK_SIZE} bytes"
            )));
        }
    }
    let rest = &line[digits..];
    let ws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let rest = &rest[ws..];
    if !rest.is_empty() {
        if rest[0] != b';' {
            return Err(invalid("invalid chunk size line".to_string()));
        }
        if rest.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(invalid("control character in chunk extension".to_string()));
        }
    } else if ws > 0 {
        return Err(invalid("trailing whitespace after chunk size".to_string()));
    }
    Ok(size)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A body that lends its bytes slice by slice, so they go to the socket without being copied
/// through a buffer (a file download hands out redb's chunk pages directly).
pub trait BodySource: Send {
    /// The next bytes of the body; an empty slice once it is exhausted.
    fn next_slice(&mut self) -> io::Result<&[u8]>;
}

/// A response body.
pub enum ResponseBody {
    Empty,
    Bytes(Vec<u8>),
    /// Streamed from a `BodySource`; exactly `len` bytes are expected, with the same abort rule
    /// as `Reader`.
    Source {
        len: u64,
        source: Box<dyn BodySource>,
    },
    /// Streamed: exactly `len` bytes are expected from `reader`; if the reader errors or ends early,
    /// the connection is aborted (closed) — never padded, never a short "complete" response.
    Reader {
        len: u64,
        reader: Box<dyn Read + Send>,
    },
}

impl ResponseBody {
    /// The Content-Length this body announces.
    pub fn len(&self) -> u64 {
        match self {
            ResponseBody::Empty => 0,
            ResponseBody::Bytes(b) => b.len() as u64,
            ResponseBody::Reader { len, .. } | ResponseBody::Source { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseBody::Empty => f.write_str("Empty"),
            ResponseBody::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            ResponseBody::Reader { len, .. } => write!(f, "Reader({len} bytes)"),
            ResponseBody::Source { len, .. } => write!(f, "Source({len} bytes)"),
        }
    }
}

/// A handler's answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Set by the handler; must not contain Content-Length, Transfer-Encoding or Connection
    /// (this layer owns framing and drops them).
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
    /// Who made the request, for the access log only.
    pub user: Option<String>,
}

impl Response {
    /// A response with an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: ResponseBody::Empty,
            user: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A `text/plain; charset=utf-8` response with `X-Content-Type-Options: nosniff` and body `msg`.
    pub fn text(status: u16, msg: &str) -> Response {
        Response {
            status,
            headers: vec![
                (
                    "Content-Type".to_string(),
                    "text/plain; charset=utf-8".to_string(),
                ),
                ("X-Content-Type-Options".to_string(), "nosniff".to_string()),
            ],
            body: ResponseBody::Bytes(msg.as_bytes().to_vec()),
            user: None,
        }
    }
}

/// The request handler shared by all workers.
pub type Handler = Arc<dyn Fn(&mut Request) -> Response + Send + Sync>;

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => match status / 100 {
            1 => "Informational",
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// Response of this layer itself (400/431/500/501/503/505): short text, always closing.
fn layer_error(status: u16, msg: &str) -> Response {
    Response::text(status, msg)
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(is_tchar)
}

fn valid_header_value(v: &str) -> bool {
    v.bytes().all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Encodes status line and headers into `out` (cleared first).
fn encode_head(
    out: &mut Vec<u8>,
    status: u16,
    headers: &[(String, String)],
    content_length: Option<u64>,
    keep: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("connection")
            || name.eq_ignore_ascii_case("date")
        {
            log::warn!("handler set the {name:?} header; this layer owns it, dropped");
            continue;
        }
        if !valid_header_name(name) || !valid_header_value(value) {
            log::warn!("handler set an invalid response header {name:?}; dropped");
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(http_date(SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(len) = content_length {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if keep {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"Connection: close\r\n\r\n".as_slice()
    });
}

/// Per-worker reusable buffers.
#[derive(Default)]
struct WorkerBufs {
    read: Option<Box<[u8]>>,
    head: Vec<u8>,
    stream: Vec<u8>,
}

impl WorkerBufs {
    fn take_read_buf(&mut self, size: usize) -> Box<[u8]> {
        match self.read.take() {
            Some(b) if b.len() == size => b,
            _ => vec![0u8; size].into_boxed_slice(),
        }
    }
}

/// What `write_response` did.
struct Sent {
    status: u16,
    body_bytes: u64,
    /// False if the write failed or the body was aborted: the connection is unusable.
    ok: bool,
}

/// Writes one response. `keep` decides the Connection header.
fn write_response(
    stream: &TcpStream,
    bufs: &mut WorkerBufs,
    resp: Response,
    head_only: bool,
    keep: bool,
) -> Sent {
    let mut resp = resp;
    if !(100..=999).contains(&resp.status) || resp.status == 101 {
        log::error!(
            "handler returned invalid status {}; sending 500",
            resp.status
        );
        resp = layer_error(500, "internal server error");
    }
    let status = resp.status;
    let no_body_status = status < 200 || status == 204 || status == 304;
    let send_body = !head_only && !no_body_status;
    let len = resp.body.len();
    let content_length = if no_body_status { None } else { Some(len) };
    let mut head = std::mem::take(&mut bufs.head);
    encode_head(&mut head, status, &resp.headers, content_length, keep);
    let mut w = stream;
    let result = match resp.body {
        ResponseBody::Bytes(b) if send_body => {
            let r = if b.len() <= INLINE_BODY {
                head.extend_from_slice(&b);
                w.write_all(&head)
            } else {
                w.write_all(&head).and_then(|()| w.write_all(&b))
            };
            r.map(|()| b.len() as u64)
        }
        ResponseBody::Reader { len, reader } if send_body && len > 0 => {
            let r = stream_body(stream, bufs, &head, len, reader);
            bufs.head = head;
            return streamed_outcome(stream, bufs, r, status, len, head_only);
        }
        ResponseBody::Source { len, source } if send_body && len > 0 => {
            let r = stream_source(stream, &mut head, len, source);
            bufs.head = head;
            return streamed_outcome(stream, bufs, r, status, len, head_only);
        }
        _ => w.write_all(&head).map(|()| 0),
    };
    bufs.head = head;
    match result {
        Ok(n) => Sent {
            status,
            body_bytes: n,
            ok: true,
        },
        Err(e) => {
            log::debug!("writing response failed: {e}");
            Sent {
                status,
                body_bytes: 0,
                ok: false,
            }
        }
    }
}

/// Turns the result of streaming a body into what was sent: a reader that failed before the
/// first byte becomes a 500; a failure after it aborts the connection.
fn streamed_outcome(
    stream: &TcpStream,
    bufs: &mut WorkerBufs,
    r: Result<u64, StreamError>,
    status: u16,
    len: u64,
    head_only: bool,
) -> Sent {
    match r {
        Ok(n) => Sent {
            status,
            body_bytes: n,
            ok: true,
        },
        Err(StreamError::Reader(e)) => {
            log::error!("response body reader failed before any byte was sent: {e}");
            let sent = write_response(
                stream,
                bufs,
                layer_error(500, "internal server error"),
                head_only,
                false,
            );
            Sent { ok: false, ..sent }
        }
        Err(StreamError::Aborted { written, err }) => {
            log::warn!(
                "response body aborted after {written} of {len} bytes; closing connection: {err}"
            );
            let _ = stream.shutdown(Shutdown::Both);
            Sent {
                status,
                body_bytes: written,
                ok: false,
            }
        }
    }
}

/// Streams `head` and exactly `len` bytes lent by `source`, without an intermediate buffer
/// (a small body still goes out in the same write as the head).
fn stream_source(
    stream: &TcpStream,
    head: &mut Vec<u8>,
    len: u64,
    mut source: Box<dyn BodySource>,
) -> Result<u64, StreamError> {
    let mut w = stream;
    let mut written = 0u64;
    let mut head_sent = false;
    while written < len {
        let slice = match source.next_slice() {
            Ok([]) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("response body source ended {} bytes early", len - written),
            )),
            Ok(s) => Ok(s),
            Err(e) => Err(e),
        };
        let slice = match slice {
            Ok(s) => &s[..s.len().min((len - written) as usize)],
            Err(err) if !head_sent => return Err(StreamError::Reader(err)),
            Err(err) => return Err(StreamError::Aborted { written, err }),
        };
        let result = if !head_sent && slice.len() <= INLINE_BODY {
            head.extend_from_slice(slice);
            w.write_all(head)
        } else if !head_sent {
            w.write_all(head).and_then(|()| w.write_all(slice))
        } else {
            w.write_all(slice)
        };
        head_sent = true;
        if let Err(err) = result {
            return Err(StreamError::Aborted { written, err });
        }
        written += slice.len() as u64;
    }
    Ok(written)
}

enum StreamError {
    /// The body reader failed before anything was written: the head can still be replaced.
    Reader(io::Error),
    /// Something was written already; the connection must be aborted.
    Aborted { written: u64, err: io::Error },
}

/// Streams `head` followed by exactly `len` bytes of `reader`; returns the body bytes written.
fn stream_body(
    stream: &TcpStream,
    bufs: &mut WorkerBufs,
    head: &[u8],
    len: u64,
    mut reader: Box<dyn Read + Send>,
) -> Result<u64, StreamError> {
    let want = (head.len() as u64 + len).min(STREAM_BUF as u64) as usize;
    let want = want.max(head.len());
    if bufs.stream.len() < want {
        bufs.stream.resize(want, 0);
    }
    let buf = &mut bufs.stream[..];
    buf[..head.len()].copy_from_slice(head);
    let mut fill = head.len();
    let mut remaining = len;
    let mut written_body = 0u64;
    let mut wrote_any = false;
    let mut w = stream;
    loop {
        let mut body_in_buf = 0u64;
        while fill < buf.len() && remaining > 0 {
            let cap = (buf.len() - fill).min(remaining.min(usize::MAX as u64) as usize);
            let err = match reader.read(&mut buf[fill..fill + cap]) {
                Ok(0) => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("response body reader ended {remaining} bytes early"),
                ),
                Ok(n) => {
                    fill += n;
                    remaining -= n as u64;
                    body_in_buf += n as u64;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            return Err(if wrote_any {
                StreamError::Aborted {
                    written: written_body,
                    err,
                }
            } else {
                StreamError::Reader(err)
            });
        }
        if let Err(err) = w.write_all(&buf[..fill]) {
            return Err(StreamError::Aborted {
                written: written_body,
                err,
            });
        }
        wrote_any = true;
        written_body += body_in_buf;
        fill = 0;
        if remaining == 0 {
            return Ok(written_body);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------------

struct Head {
    method: String,
    target: String,
    /// HTTP/1.<minor>
    minor: u8,
    headers: Headers,
}

enum HeadError {
    /// Close without a response (peer closed, timeout, socket error).
    Silent,
    /// Respond with this status and message, then close.
    Reject(u16, &'static str),
}

/// Reads and parses one request head; consumes exactly its bytes from `conn`.
fn read_head(conn: &mut Conn, cfg: &ServerConfig, deadline: Instant) -> Result<Head, HeadError> {
    conn.compact();
    let max_headers = cfg.max_headers.max(1);
    loop {
        if conn.buffered() > 0 {
            let mut slots = vec![httparse::EMPTY_HEADER; max_headers];
            let mut req = httparse::Request::new(&mut slots);
            match req.parse(&conn.buf[conn.pos..conn.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    if n > cfg.max_head_bytes {
                        return Err(HeadError::Reject(431, "request head too large"));
                    }
                    let mut headers = Headers {
                        list: Vec::with_capacity(req.headers.len()),
                    };
                    for h in req.headers.iter() {
                        headers.list.push((
                            h.name.to_ascii_lowercase(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        ));
                    }
                    let head = Head {
                        method: req.method.unwrap_or("").to_string(),
                        target: req.path.unwrap_or("").to_string(),
                        minor: req.version.unwrap_or(1),
                        headers,
                    };
                    conn.pos += n;
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {
                    if conn.buffered() >= cfg.max_head_bytes {
                        return Err(HeadError::Reject(431, "request head too large"));
                    }
                }
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(HeadError::Reject(431, "too many header fields"));
                }
                Err(httparse::Error::Version) => {
                    return Err(HeadError::Reject(505, "HTTP version not supported"));
                }
                Err(_) => return Err(HeadError::Reject(400, "malformed request head")),
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HeadError::Silent);
        }
        if conn.set_timeout(deadline - now).is_err() {
            return Err(HeadError::Silent);
        }
        match conn.fill() {
            Ok(0) => return Err(HeadError::Silent),
            Ok(_) => {}
            Err(e) => {
                log::debug!("reading request head: {e}");
                return Err(HeadError::Silent);
            }
        }
    }
}

/// How the request body is framed (RFC 9112 §6.3), or the status to reject the request with.
fn request_framing(head: &Head) -> Result<(Framing, Option<u64>, bool), (u16, &'static str)> {
    let te: Vec<&str> = head.headers.get_all("transfer-encoding").collect();
    let cl: Vec<&str> = head.headers.get_all("content-length").collect();
    if !te.is_empty() {
        if !cl.is_empty() {
            return Err((400, "both Transfer-Encoding and Content-Length"));
        }
        if head.minor == 0 {
            return Err((400, "Transfer-Encoding in an HTTP/1.0 request"));
        }
        let codings: Vec<&str> = te
            .iter()
            .flat_map(|v| v.split(','))
            .map(|c| c.trim_matches([' ', '\t']))
            .filter(|c| !c.is_empty())
            .collect();
        return match codings.as_slice() {
            [] => Err((400, "empty Transfer-Encoding")),
            [c] if c.eq_ignore_ascii_case("chunked") => {
                Ok((Framing::Chunked(Chunk::Size), None, true))
            }
            _ => Err((501, "unsupported Transfer-Encoding")),
        };
    }
    match cl.as_slice() {
        [] => Ok((Framing::Done, None, false)),
        [v] => {
            let v = v.trim_matches([' ', '\t']);
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err((400, "invalid Content-Length"));
            }
            let n: u64 = v.parse().map_err(|_| (400, "invalid Content-Length"))?;
            let framing = if n == 0 {
                Framing::Done
            } else {
                Framing::Length {
                    remaining: n,
                    declared: n,
                }
            };
            Ok((framing, Some(n), false))
        }
        _ => Err((400, "multiple Content-Length fields")),
    }
}

/// (the request asks to close, the request asks for keep-alive) from its Connection fields.
fn connection_tokens(headers: &Headers) -> (bool, bool) {
    let mut close = false;
    let mut keep_alive = false;
    for v in headers.get_all("connection") {
        for t in v.split(',') {
            let t = t.trim_matches([' ', '\t']);
            close |= t.eq_ignore_ascii_case("close");
            keep_alive |= t.eq_ignore_ascii_case("keep-alive");
        }
    }
    (close, keep_alive)
}

// ---------------------------------------------------------------------------------------------
// Serving connections
// ---------------------------------------------------------------------------------------------

/// State shared by the accept loop, the workers and shutdown handles.
struct Shared {
    shutdown: AtomicBool,
    /// Accepted connections not yet closed: queued + held by a worker.
    open: AtomicUsize,
    /// Connections held by a worker.
    busy: AtomicUsize,
    workers: usize,
}

impl Shared {
    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Connections wait in the queue while every worker is busy.
    fn under_pressure(&self) -> bool {
        let open = self.open.load(Ordering::SeqCst);
        let busy = self.busy.load(Ordering::SeqCst);
        busy >= self.workers && open > busy
    }
}

struct Ctx {
    cfg: ServerConfig,
    handler: Handler,
    shared: Arc<Shared>,
}

struct Job {
    stream: TcpStream,
    peer: SocketAddr,
}

/// Decrements the connection counters when a worker is done with a connection.
struct ConnGuard<'a>(&'a Shared);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

fn worker_loop(ctx: &Ctx, rx: &Mutex<Receiver<Job>>) {
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
        ctx.shared.busy.fetch_add(1, Ordering::SeqCst);
        let _guard = ConnGuard(&ctx.shared);
        let peer = job.peer;
        let served = catch_unwind(AssertUnwindSafe(|| serve_connection(ctx, job, &mut bufs)));
        if served.is_err() {
            log::error!("panic while serving a connection from {peer}; connection dropped");
            bufs = WorkerBufs::default();
        }
    }
}

fn serve_connection(ctx: &Ctx, job: Job, bufs: &mut WorkerBufs) {
    let Job { stream, peer } = job;
    if let Err(e) = stream.set_nodelay(true) {
        log::debug!("TCP_NODELAY on connection from {peer}: {e}");
    }
    if let Err(e) = stream.set_write_timeout(Some(ctx.cfg.write_timeout)) {
        log::debug!("write timeout on connection from {peer}: {e}; closing");
        return;
    }
    let stream = Arc::new(stream);
    let mut conn = Conn::new(
        Arc::clone(&stream),
        bufs.take_read_buf(ctx.cfg.read_buf_size()),
    );
    // The first request's head (including its first byte) must arrive within head_timeout.
    let mut deadline = Instant::now() + ctx.cfg.head_timeout;
    loop {
        match serve_request(ctx, conn, &stream, peer, deadline, bufs) {
            Next::Keep(c) => conn = c,
            Next::Close(buf) => {
                if let Some(buf) = buf {
                    bufs.read = Some(buf);
                }
                return;
            }
        }
        if !wait_for_request(&mut conn, &ctx.shared, ctx.cfg.idle_timeout) {
            bufs.read = Some(conn.buf);
            return;
        }
        deadline = Instant::now() + ctx.cfg.head_timeout;
    }
}

/// Waits (keep-alive idle) until the next request's first byte is buffered. False: close silently
/// (peer closed, idle timeout, shutdown, or other connections are waiting for a worker).
fn wait_for_request(conn: &mut Conn, shared: &Shared, idle: Duration) -> bool {
    if conn.buffered() > 0 {
        return true;
    }
    let deadline = Instant::now() + idle;
    loop {
        let now = Instant::now();
        if now >= deadline || shared.shutting_down() {
            return false;
        }
        if conn.set_timeout(IDLE_SLICE.min(deadline - now)).is_err() {
            return false;
        }
        match conn.fill() {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if shared.under_pressure() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
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
    stream: &Arc<TcpStream>,
    peer: SocketAddr,
    deadline: Instant,
    bufs: &mut WorkerBufs,
) -> Next {
    let head = match read_head(&mut conn, &ctx.cfg, deadline) {
        Ok(h) => h,
        Err(HeadError::Silent) => return Next::Close(Some(conn.buf)),
        Err(HeadError::Reject(status, msg)) => {
            let started = Instant::now();
            let sent = write_response(stream, bufs, layer_error(status, msg), false, false);
            access_log(peer, "-", "-", &sent, started, None);
            if sent.ok {
                linger_close(stream);
            }
            return Next::Close(Some(conn.buf));
        }
    };
    let started = Instant::now();
    let head_only = head.method == "HEAD";

    let host_count = head.headers.get_all("host").count();
    let framing = if host_count > 1 || (head.minor == 1 && host_count == 0) {
        Err((400, "missing or repeated Host header"))
    } else {
        request_framing(&head)
    };
    let (framing, content_length, chunked) = match framing {
        Ok(f) => f,
        Err((status, msg)) => {
            let sent = write_response(stream, bufs, layer_error(status, msg), head_only, false);
            access_log(peer, &head.method, &head.target, &sent, started, None);
            if sent.ok {
                linger_close(stream);
            }
            return Next::Close(Some(conn.buf));
        }
    };

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
        },
        content_length,
        chunked,
    );
    let mut req = Request {
        method: head.method,
        target: head.target,
        headers: head.headers,
        peer,
        body,
    };

    let handler = &ctx.handler;
    let (resp, panicked) = match catch_unwind(AssertUnwindSafe(|| handler(&mut req))) {
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
    };

    // Take the connection back from the body. If the handler swapped the body out, the
    // connection's input position is unknown: it cannot carry another request.
    let body = std::mem::take(&mut req.body);
    let mut cb = match body.src {
        BodySrc::Conn(cb) => Some(cb),
        _ => None,
    };
    let mut keep = keep_requested && !panicked && !ctx.shared.shutting_down();
    let mut unread_input = false;
    match cb.as_mut() {
        None => {
            keep = false;
            unread_input = true;
        }
        Some(cb) => {
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
        }
    }

    let user = resp.user.clone();
    let sent = write_response(stream, bufs, resp, head_only, keep);
    access_log(
        peer,
        &req.method,
        &req.target,
        &sent,
        started,
        user.as_deref(),
    );

    match cb {
        Some(cb) if keep && sent.ok => Next::Keep(cb.conn),
        cb => {
            if sent.ok && unread_input {
                linger_close(stream);
            } else if cb.is_none() {
                // The body (holding a handle to the socket) may live on in the handler's hands.
                let _ = stream.shutdown(Shutdown::Both);
            }
            Next::Close(cb.map(|cb| cb.conn.buf))
        }
    }
}

/// Half-closes, then reads and discards input for a bounded time, so that unread request bytes do
/// not make the kernel reset the connection before the client has read our response.
fn linger_close(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut scratch = [0u8; 16 * 1024];
    let mut total = 0;
    let mut r = stream;
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
fn path_of(target: &str) -> &str {
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
    config: ServerConfig,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
}

/// Stops a running [`Server`]; `Clone + Send`.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
    wake_addr: SocketAddr,
}

impl ShutdownHandle {
    /// Stops accepting; in-flight requests finish, keep-alive connections are closed.
    pub fn shutdown(&self) {
        if !self.shared.shutdown.swap(true, Ordering::SeqCst) {
            // Wake the accept loop now rather than at its next poll timeout.
            let _ = TcpStream::connect_timeout(&self.wake_addr, Duration::from_millis(500));
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
        let workers = config.workers.max(1);
        Ok(Server {
            listener,
            config,
            local_addr,
            shared: Arc::new(Shared {
                shutdown: AtomicBool::new(false),
                open: AtomicUsize::new(0),
                busy: AtomicUsize::new(0),
                workers,
            }),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        let mut wake_addr = self.local_addr;
        if wake_addr.ip().is_unspecified() {
            wake_addr.set_ip(match wake_addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
            wake_addr,
        }
    }

    /// Blocks: accept loop + worker pool, until shutdown; then stops accepting, lets in-flight
    /// requests finish (bounded by a grace period of ~10 s), and returns.
    pub fn run(self, handler: Handler) -> io::Result<()> {
        let Server {
            listener,
            config,
            local_addr,
            shared,
        } = self;
        let workers = shared.workers;
        let (tx, rx) = sync_channel::<Job>(config.max_connections.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let ctx = Arc::new(Ctx {
            cfg: config,
            handler,
            shared: Arc::clone(&shared),
        });
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers {
            let rx = Arc::clone(&rx);
            let ctx = Arc::clone(&ctx);
            let spawned = thread::Builder::new()
                .name(format!("shelf-http-{i}"))
                .spawn(move || worker_loop(&ctx, &rx));
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
        log::info!("listening on http://{local_addr} with {workers} workers");
        accept_loop(&listener, &ctx, &tx);
        drop(listener);
        drop(tx);

        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while handles.iter().any(|h| !h.is_finished()) {
            if Instant::now() >= deadline {
                log::warn!(
                    "shutdown: grace period of {SHUTDOWN_GRACE:?} over with requests still in flight"
                );
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

fn accept_loop(listener: &TcpListener, ctx: &Ctx, tx: &SyncSender<Job>) {
    let shared = &ctx.shared;
    let max = ctx.cfg.max_connections.max(1);
    let fd = listener.as_raw_fd();
    loop {
        if shared.shutting_down() {
            return;
        }
        match wait_readable(fd, 250) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("poll on listener: {e}");
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if shared.shutting_down() {
                    return;
                }
                if shared.open.load(Ordering::SeqCst) >= max {
                    reject_busy(stream, peer);
                    continue;
                }
                shared.open.fetch_add(1, Ordering::SeqCst);
                match tx.try_send(Job { stream, peer }) {
                    Ok(()) => {}
                    Err(TrySendError::Full(job)) => {
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        reject_busy(job.stream, job.peer);
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        shared.open.fetch_sub(1, Ordering::SeqCst);
                        log::error!("all HTTP workers are gone; stopping the accept loop");
                        return;
                    }
                }
            }
            Err(e) => {
                let code = e.raw_os_error();
                if matches!(
                    code,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    log::warn!("accept: {e} (out of resources); backing off 100 ms");
                    thread::sleep(Duration::from_millis(100));
                } else if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                ) {
                    log::debug!("accept: {e}");
                } else {
                    log::warn!("accept: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
}

/// Waits until `fd` is readable or `timeout_ms` passes; Ok(false) on timeout.
fn wait_readable(fd: std::os::unix::io::RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call and nfds is 1.
    let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r > 0)
    }
}

/// The fast 503 from the accept thread: one non-blocking-ish write, then close.
fn reject_busy(stream: TcpStream, peer: SocketAddr) {
    let started = Instant::now();
    let body = "server busy, retry later\n";
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
    let _ = stream.set_write_timeout(Some(BUSY_WRITE_TIMEOUT));
    let ok = (&stream).write_all(&out).is_ok();
    let _ = stream.shutdown(Shutdown::Write);
    let sent = Sent {
        status: 503,
        body_bytes: if ok { body.len() as u64 } else { 0 },
        ok,
    };
    access_log(peer, "-", "-", &sent, started, None);
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
            log::debug!("RLIMIT_NOFILE raised from {} to {want}", rl.rlim_cur);
            return;
        }
    }
    log::warn!(
        "could not raise RLIMIT_NOFILE from {}: {}",
        rl.rlim_cur,
        io::Error::last_os_error()
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP dates
// ---------------------------------------------------------------------------------------------

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const WEEKDAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month 1..=12, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT". Times before 1970 format as the epoch.
pub fn http_date(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let wd = (days + 4).rem_euclid(7) as usize;
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[wd],
        d,
        MONTHS[m as usize - 1],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an HTTP date: IMF-fixdate, and the obsolete RFC 850 and asctime forms.
pub fn parse_http_date(s: &str) -> Option<SystemTime> {
    let s = s.trim_matches([' ', '\t']);
    let parts: Vec<&str> = s.split(' ').filter(|p| !p.is_empty()).collect();
    let (year, month, day, time) = match parts.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [wd, d, mon, y, time, "GMT"] => {
            let wd = wd.strip_suffix(',')?;
            if !WEEKDAYS.contains(&wd) || d.len() != 2 || y.len() != 4 {
                return None;
            }
            (num(y)?, month_of(mon)?, num(d)?, *time)
        }
        // Sunday, 06-Nov-94 08:49:37 GMT
        [wd, date, time, "GMT"] => {
            let wd = wd.strip_suffix(',')?;
            if !WEEKDAYS_LONG.contains(&wd) {
                return None;
            }
            let mut it = date.split('-');
            let (d, mon, y) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || d.len() != 2 || y.len() != 2 {
                return None;
            }
            let y = num(y)?;
            let y = if y < 70 { 2000 + y } else { 1900 + y };
            (y, month_of(mon)?, num(d)?, *time)
        }
        // Sun Nov  6 08:49:37 1994
        [wd, mon, d, time, y] => {
            if !WEEKDAYS.contains(wd) || d.is_empty() || d.len() > 2 || y.len() != 4 {
                return None;
            }
            (num(y)?, month_of(mon)?, num(d)?, *time)
        }
        _ => return None,
    };
    let mut hms = time.split(':');
    let (h, mi, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() || h.len() != 2 || mi.len() != 2 || sec.len() != 2 {
        return None;
    }
    let (h, mi, sec) = (num(h)?, num(mi)?, num(sec)?);
    let day = u32::try_from(day).ok()?;
    if h > 23 || mi > 59 || sec > 60 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec;
    if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    }
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_of(s: &str) -> Option<u32> {
    MONTHS.iter().position(|m| *m == s).map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut req =
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;".to_vec();
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
        let cases: [(&[u8], u16); 7] = [
            (b"GET / HTTP/1.1\r\n\r\n", 400),                       // no Host
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400), // two Hosts
            (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
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
        c.send(
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        );
        let r = c.response(false).unwrap();
        assert_eq!(r.status, 100);
        c.send(b"hello");
        let r = c.response(false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
        assert_eq!(r.header("connection"), Some("keep-alive"));
        // A refusing handler: no 100, final response, connection closed.
        let mut c = Client::connect(srv.addr);
        c.send(
            b"PUT /refuse HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        );
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
    fn chunk_size_parser() {
        assert_eq!(parse_chunk_size(b"0").unwrap(), 0);
        assert_eq!(parse_chunk_size(b"1a").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0000000000000000000000FF").unwrap(), 255);
        assert_eq!(parse_chunk_size(b"A;x=1;y=\"q\"").unwrap(), 10);
        assert_eq!(parse_chunk_size(b"A ;x").unwrap(), 10);
        assert_eq!(parse_chunk_size(b"10000000000").unwrap(), 1 << 40);
        for bad in [
            &b""[..],
            b";x",
            b"g",
            b"-1",
            b"1 ",
            b"1x",
            b"10000000001",
            b"1;\x00",
        ] {
            assert_eq!(
                parse_chunk_size(bad).unwrap_err().kind(),
                io::ErrorKind::InvalidData,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn socket_free_bodies_and_headers() {
        let mut b = Body::from_bytes(b"abc".to_vec());
        assert_eq!(b.content_length(), Some(3));
        assert!(!b.is_finished());
        let mut v = Vec::new();
        b.read_to_end(&mut v).unwrap();
        assert_eq!(v, b"abc");
        assert!(b.is_finished());
        assert_eq!(b.bytes_read(), 3);
        assert!(Body::empty().is_finished());
        let mut h = Headers::new();
        h.push("X-A", "1");
        h.push("x-a", "2");
        assert_eq!(h.get("x-A"), Some("1"));
        assert_eq!(h.get_all("X-a").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(h.iter().next(), Some(("x-a", "1")));
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
    fn http_dates() {
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(t));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(t));
        assert_eq!(http_date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        for secs in [
            0u64,
            59,
            86_399,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
            253_402_300_799,
        ] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_http_date(&http_date(t)), Some(t), "{secs}");
        }
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 29 Feb 1900 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
