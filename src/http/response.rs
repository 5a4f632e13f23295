//! Responses ([`Response`], [`ResponseBody`], [`BodySource`]) and how they go out: reason phrases,
//! head encoding (this layer owns Content-Length, Connection and Date), per-worker write buffers, and
//! writing or streaming a body with the exact-length-or-abort rule.

use std::fmt;
use std::io::{self, Read, Write};
use std::time::SystemTime;

use super::body::is_tchar;
use super::link::Link;
use crate::dates::http_date;

/// Buffer for streamed response bodies (written straight to the socket).
const STREAM_BUF: usize = 1024 * 1024;
/// Bytes bodies up to this size are sent with the head in one write.
const INLINE_BODY: usize = 64 * 1024;

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
    /// Streamed with a length not known in advance: `Transfer-Encoding: chunked` (or, for an
    /// HTTP/1.0 client, delimited by closing the connection). The body ends when `reader`
    /// returns 0; if it errors after the first byte, the connection is aborted without the
    /// closing chunk, so the client sees a truncated body, never a short complete one.
    Stream {
        reader: Box<dyn Read + Send>,
        /// False for an HTTP/1.0 request (set by the connection layer).
        chunked: bool,
    },
}

impl ResponseBody {
    /// The Content-Length this body announces.
    pub fn len(&self) -> u64 {
        match self {
            ResponseBody::Empty | ResponseBody::Stream { .. } => 0,
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
            ResponseBody::Stream { chunked, .. } => write!(f, "Stream(chunked: {chunked})"),
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

pub(super) fn reason(status: u16) -> &'static str {
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
pub(super) fn layer_error(status: u16, msg: &str) -> Response {
    Response::text(status, msg)
}

fn valid_header_name(n: &str) -> bool {
    !n.is_empty() && n.bytes().all(is_tchar)
}

fn valid_header_value(v: &str) -> bool {
    v.bytes().all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Encodes status line and headers into `out` (cleared first).
pub(super) fn encode_head(
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
pub(super) struct WorkerBufs {
    pub(super) read: Option<Box<[u8]>>,
    head: Vec<u8>,
    stream: Vec<u8>,
}

impl WorkerBufs {
    pub(super) fn take_read_buf(&mut self, size: usize) -> Box<[u8]> {
        match self.read.take() {
            Some(b) if b.len() == size => b,
            _ => vec![0u8; size].into_boxed_slice(),
        }
    }
}

/// What `write_response` did.
pub(super) struct Sent {
    pub(super) status: u16,
    pub(super) body_bytes: u64,
    /// False if the write failed or the body was aborted: the connection is unusable.
    pub(super) ok: bool,
}

/// Writes one response. `keep` decides the Connection header.
pub(super) fn write_response(
    stream: &Link,
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
    let streamed = matches!(resp.body, ResponseBody::Stream { .. });
    let content_length = if no_body_status || streamed {
        None
    } else {
        Some(len)
    };
    let mut head = std::mem::take(&mut bufs.head);
    encode_head(&mut head, status, &resp.headers, content_length, keep);
    if let ResponseBody::Stream { chunked: true, .. } = &resp.body {
        if !no_body_status {
            head.truncate(head.len() - 2);
            head.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        }
    }
    let mut w = stream;
    let result = match resp.body {
        ResponseBody::Stream { reader, chunked } if send_body => {
            let r = stream_unsized(stream, bufs, &head, reader, chunked);
            bufs.head = head;
            return streamed_outcome(stream, bufs, r, status, len, head_only);
        }
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
    stream: &Link,
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
            stream.abort();
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
    stream: &Link,
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

/// Streams `head` and then `reader` to its end, as chunks of the chunked coding or (for
/// HTTP/1.0) raw bytes up to the close; returns the body bytes written.
fn stream_unsized(
    stream: &Link,
    bufs: &mut WorkerBufs,
    head: &[u8],
    mut reader: Box<dyn Read + Send>,
    chunked: bool,
) -> Result<u64, StreamError> {
    const FRAME: usize = 16; // room for "{len:x}\r\n"
    let size = STREAM_BUF.max(head.len() + FRAME + 2 + 1);
    if bufs.stream.len() < size {
        bufs.stream.resize(size, 0);
    }
    let buf = &mut bufs.stream[..];
    let mut w = stream;
    let mut written = 0u64;
    let mut pending_head = Some(head);
    loop {
        // The head (first time only), then room for a chunk's size line, then the data.
        let start = pending_head.map_or(0, |h| h.len());
        if let Some(h) = pending_head {
            buf[..h.len()].copy_from_slice(h);
        }
        let data_at = start + if chunked { FRAME } else { 0 };
        let cap = buf.len() - data_at - 2;
        let n = loop {
            match reader.read(&mut buf[data_at..data_at + cap]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if pending_head.is_some() => return Err(StreamError::Reader(err)),
                Err(err) => return Err(StreamError::Aborted { written, err }),
            }
        };
        let out: &[u8] = if chunked {
            let line = if n == 0 {
                "0\r\n\r\n".to_string()
            } else {
                format!("{n:x}\r\n")
            };
            let line_at = data_at - line.len();
            buf[line_at..data_at].copy_from_slice(line.as_bytes());
            let mut end = data_at + n;
            if n > 0 {
                buf[end..end + 2].copy_from_slice(b"\r\n");
                end += 2;
            }
            // The head sits before the size line: move the line next to it.
            if start > 0 {
                buf.copy_within(line_at..end, start);
                &buf[..start + (end - line_at)]
            } else {
                &buf[line_at..end]
            }
        } else {
            &buf[..data_at + n]
        };
        if let Err(err) = w.write_all(out) {
            return Err(StreamError::Aborted { written, err });
        }
        pending_head = None;
        written += n as u64;
        if n == 0 {
            return Ok(written);
        }
    }
}

enum StreamError {
    /// The body reader failed before anything was written: the head can still be replaced.
    Reader(io::Error),
    /// Something was written already; the connection must be aborted.
    Aborted { written: u64, err: io::Error },
}

/// Streams `head` followed by exactly `len` bytes of `reader`; returns the body bytes written.
fn stream_body(
    stream: &Link,
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
