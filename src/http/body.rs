//! The request body handed to handlers ([`Body`], an [`io::Read`]) and the decoders behind it: the
//! Content-Length reader and the strict chunked decoder (chunk-size lines, extensions, trailers), with
//! their limits, sticky errors, `100-continue` and draining. Framing *decisions* live in `request.rs`.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use super::conn::{invalid, Conn};

/// Largest accepted chunk size in a chunked request body (1 TiB).
const MAX_CHUNK_SIZE: u64 = 1 << 40;
/// Longest chunk-size line (size + extensions), without CRLF.
const MAX_CHUNK_LINE: usize = 4096;
/// Longest single trailer line, and the whole trailer section.
pub(super) const MAX_TRAILER_LINE: usize = 8192;
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The request body, an [`io::Read`].
///
/// Reading it the first time sends `HTTP/1.1 100 Continue` if the client sent
/// `Expect: 100-continue` (so a handler that refuses without reading never sends 100).
/// Errors are loud: truncation (peer closed early, inside a chunk or before Content-Length bytes)
/// is `UnexpectedEof`; bad chunked framing is `InvalidData`; a stall longer than `body_timeout` is
/// `TimedOut`/`WouldBlock`. `Ok(0)` is returned only at the real end. Errors are sticky: every
/// read after an error fails the same way.
pub struct Body {
    pub(super) src: BodySrc,
    content_length: Option<u64>,
    chunked: bool,
    bytes_read: u64,
    /// Set when a `Reader` source returned `Ok(0)`.
    reader_done: bool,
}

pub(super) enum BodySrc {
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

    pub(super) fn from_conn(cb: ConnBody, content_length: Option<u64>, chunked: bool) -> Body {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// Content-Length body with this many bytes still to come (> 0).
    Length {
        remaining: u64,
        declared: u64,
    },
    Chunked(Chunk),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Chunk {
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
pub(super) struct ConnBody {
    pub(super) conn: Conn,
    pub(super) framing: Framing,
    /// The client sent `Expect: 100-continue` (HTTP/1.1, with a body).
    pub(super) expect_continue: bool,
    pub(super) continue_sent: bool,
    /// The first error; every later read returns it again.
    pub(super) error: Option<(io::ErrorKind, String)>,
    /// Longest wait of one read for body bytes (body_timeout, shortened while draining).
    pub(super) timeout: Duration,
    pub(super) body_timeout: Duration,
    /// The minimum rate the body must arrive at (None: no minimum).
    pub(super) rate: Option<BodyRate>,
}

/// A minimum body rate: over every `window` of time spent waiting for the client, at least
/// `per_sec` bytes per second must arrive (so a trickle cannot hold a worker for long). Only
/// the time reads wait counts, not the handler's own work between reads, so a slow disk
/// never makes a fast client look slow.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyRate {
    pub(super) per_sec: u64,
    pub(super) window: Duration,
    /// Time reads have waited in the current window, and the bytes they brought.
    pub(super) waited: Duration,
    pub(super) bytes: u64,
}

impl BodyRate {
    pub(super) fn new(per_sec: u64, window: Duration) -> Option<BodyRate> {
        (per_sec > 0 && !window.is_zero()).then_some(BodyRate {
            per_sec,
            window,
            waited: Duration::ZERO,
            bytes: 0,
        })
    }

    /// Accounts one read; an error once a window has passed below the rate.
    fn account(&mut self, waited: Duration, bytes: usize) -> io::Result<()> {
        self.waited += waited;
        self.bytes += bytes as u64;
        if self.waited < self.window {
            return Ok(());
        }
        let needed = (self.per_sec as u128 * self.waited.as_millis()) / 1000;
        if (self.bytes as u128) < needed {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "request body arrived slower than the minimum of {} bytes/s ({} bytes in {:.1} s)",
                    self.per_sec,
                    self.bytes,
                    self.waited.as_secs_f64()
                ),
            ));
        }
        self.waited = Duration::ZERO;
        self.bytes = 0;
        Ok(())
    }

    /// How long the next read may wait before the window is judged.
    fn left(&self) -> Duration {
        self.window.saturating_sub(self.waited)
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl ConnBody {
    pub(super) fn is_done(&self) -> bool {
        self.framing == Framing::Done
    }

    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some((kind, msg)) = &self.error {
            return Err(io::Error::new(*kind, msg.clone()));
        }
        if self.framing == Framing::Done {
            return Ok(0);
        }
        let r = self.read_timed(out);
        if let Err(e) = &r {
            self.error = Some((e.kind(), e.to_string()));
        }
        r
    }

    /// One read that fails if no byte arrives within `timeout`, or if the body falls below its
    /// minimum rate. A read cut short to judge the rate window resumes where it stopped:
    /// `read_inner` consumes nothing from the buffer when it fails.
    fn read_timed(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let started = Instant::now();
        loop {
            let stall_left = self.timeout.saturating_sub(started.elapsed());
            if stall_left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("request body stalled for more than {:?}", self.timeout),
                ));
            }
            let wait = match &self.rate {
                Some(rate) => stall_left.min(rate.left()),
                None => stall_left,
            };
            let t = Instant::now();
            let r = self.read_inner(out, wait);
            if let Some(rate) = &mut self.rate {
                rate.account(t.elapsed(), *r.as_ref().unwrap_or(&0))?;
            }
            match r {
                Err(e) if is_timeout(&e) => {}
                r => return r,
            }
        }
    }

    fn read_inner(&mut self, out: &mut [u8], wait: Duration) -> io::Result<usize> {
        if self.expect_continue && !self.continue_sent {
            self.continue_sent = true;
            (&*self.conn.stream)
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .map_err(|e| io::Error::new(e.kind(), format!("sending 100 Continue: {e}")))?;
        }
        self.conn.set_timeout(wait)?;
        loop {
            match self.framing {
                Framing::Done => return Ok(0),
                Framing::Length {
                    remaining,
                    declared,
                } => {
                    let want = out.len().min(remaining.min(usize::MAX as u64) as usize);
                    let n = self.conn.read_some(&mut out[..want])?;
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
                    let range = self.conn.read_line(MAX_CHUNK_LINE, "chunk-size line")?;
                    let size = parse_chunk_size(&self.conn.buf[range])?;
                    self.framing = Framing::Chunked(if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    });
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let want = out.len().min(left.min(usize::MAX as u64) as usize);
                    let n = self.conn.read_some(&mut out[..want])?;
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
                    self.conn.expect_crlf()?;
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers(seen)) => {
                    let range = self.conn.read_line(MAX_TRAILER_LINE, "trailer line")?;
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
    pub(super) fn drain(&mut self, max_bytes: u64, deadline: Instant) -> bool {
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

pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Headers;

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
}
