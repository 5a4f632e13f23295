//! Requests as handlers see them ([`Request`], [`Headers`]) and how they are read off a
//! connection: request-head reading and parsing on `httparse` with size/count limits, and the body
//! framing decision (RFC 9112 §6.3: Content-Length, chunked, or a rejection) and Connection tokens.

use std::net::SocketAddr;
use std::time::Instant;

use super::body::{Body, Chunk, Framing};
use super::conn::Conn;
use super::ServerConfig;

// ---------------------------------------------------------------------------------------------
// Headers, Request
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
    /// The request came over TLS (shelf's own; a proxy in front says so in its own headers).
    pub secure: bool,
    pub body: Body,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }
}

// ---------------------------------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------------------------------

pub(super) struct Head {
    pub(super) method: String,
    pub(super) target: String,
    /// HTTP/1.<minor>
    pub(super) minor: u8,
    pub(super) headers: Headers,
}

pub(super) enum HeadError {
    /// Close without a response (peer closed, timeout, socket error).
    Silent,
    /// Respond with this status and message, then close.
    Reject(u16, &'static str),
}

/// httparse's version error covers both a well-formed `HTTP/x.y` with another major version
/// (505, as Go's server and nginx answer) and a request line that is not HTTP at all, such as
/// `THIS IS NOT HTTP AT ALL` (400, as they answer, not 505).
fn version_error(buffered: &[u8]) -> HeadError {
    let line = buffered
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or_default()
        .strip_suffix(b"\r")
        .unwrap_or_default();
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let well_formed = match parts.as_slice() {
        [method, target, version] if !method.is_empty() && !target.is_empty() => {
            matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                if major.is_ascii_digit() && minor.is_ascii_digit() && *major != b'1')
        }
        _ => false,
    };
    if well_formed {
        HeadError::Reject(505, "HTTP version not supported")
    } else {
        HeadError::Reject(400, "malformed request head")
    }
}

/// Whether `bytes` (the start of a request) let [`read_head`] decide without reading more: the
/// head is complete, already malformed, or at the size limit. The poller hands a connection
/// to a worker only then.
pub(super) fn head_ready(bytes: &[u8], cfg: &ServerConfig) -> bool {
    if bytes.len() >= cfg.max_head_bytes || leading_empty_lines(bytes) > MAX_LEADING_EMPTY {
        return true;
    }
    let mut slots = vec![httparse::EMPTY_HEADER; cfg.max_headers.max(1)];
    let mut req = httparse::Request::new(&mut slots);
    !matches!(req.parse(bytes), Ok(httparse::Status::Partial))
}

/// Bytes of empty lines (CR and LF) tolerated before a request line. RFC 9112 §2.2 asks a server
/// to ignore at least one empty line there; more is no client's doing, and without a bound a
/// client could make every look at its head re-read a growing run of them.
const MAX_LEADING_EMPTY: usize = 16;

/// How many CR/LF bytes `bytes` starts with (counted up to just past the bound).
fn leading_empty_lines(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(MAX_LEADING_EMPTY + 1)
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Whether a complete head may have arrived: after the leading empty lines, a line break then
/// an empty line (or too many empty lines: malformed). Searches only from `from` (where the
/// last search ended, less the length of a terminator), so that a head trickled in line by
/// line costs linear time, not quadratic.
pub(super) fn head_end_seen(bytes: &[u8], from: usize) -> bool {
    let leading = leading_empty_lines(bytes);
    if leading > MAX_LEADING_EMPTY {
        return true;
    }
    let start = leading.max(from.saturating_sub(3));
    let rest = bytes.get(start..).unwrap_or(&[]);
    rest.windows(2).any(|w| w == b"\n\n") || rest.windows(3).any(|w| w == b"\n\r\n")
}

/// Reads and parses one request head; consumes exactly its bytes from `conn`.
pub(super) fn read_head(
    conn: &mut Conn,
    cfg: &ServerConfig,
    deadline: Instant,
) -> Result<Head, HeadError> {
    conn.compact();
    let max_headers = cfg.max_headers.max(1);
    loop {
        if leading_empty_lines(conn.unread()) > MAX_LEADING_EMPTY {
            return Err(HeadError::Reject(
                400,
                "too many empty lines before the request line",
            ));
        }
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
                    return Err(version_error(&conn.buf[conn.pos..conn.end]));
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
pub(super) fn request_framing(
    head: &Head,
) -> Result<(Framing, Option<u64>, bool), (u16, &'static str)> {
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
pub(super) fn connection_tokens(headers: &Headers) -> (bool, bool) {
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
