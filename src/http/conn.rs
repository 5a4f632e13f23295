//! A connection's socket and its read buffer: buffered and direct reads, CRLF line reads and the
//! per-socket read timeout. Shared by request-head parsing, body decoding and the connection loop;
//! knows nothing of HTTP beyond line endings.

use std::io::{self, Read};
use std::sync::Arc;

use super::link::Link;
use std::time::Duration;

/// Body reads into a caller buffer at least this large bypass our buffer when it is empty.
const DIRECT_READ_MIN: usize = 8 * 1024;

// ---------------------------------------------------------------------------------------------
// Connection buffer
// ---------------------------------------------------------------------------------------------

/// A connection's socket and read buffer. Bytes in `buf[pos..end]` were received but not consumed;
/// they belong to the current request (head/body) or to the next pipelined request.
pub(super) struct Conn {
    pub(super) stream: Arc<Link>,
    pub(super) buf: Box<[u8]>,
    pub(super) pos: usize,
    pub(super) end: usize,
    /// The read timeout currently set on the socket (avoids a setsockopt per read).
    timeout: Option<Duration>,
}

impl Conn {
    pub(super) fn new(stream: Arc<Link>, buf: Box<[u8]>) -> Conn {
        Conn {
            stream,
            buf,
            pos: 0,
            end: 0,
            timeout: None,
        }
    }

    pub(super) fn buffered(&self) -> usize {
        self.end - self.pos
    }

    /// The received bytes not consumed yet.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Puts bytes the poller received into the (empty) buffer; false if they do not fit.
    pub(super) fn load(&mut self, bytes: &[u8]) -> bool {
        if bytes.len() > self.buf.len() {
            return false;
        }
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.pos = 0;
        self.end = bytes.len();
        true
    }

    pub(super) fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        let d = d.max(Duration::from_millis(1));
        if self.timeout != Some(d) {
            self.stream.set_read_timeout(Some(d))?;
            self.timeout = Some(d);
        }
        Ok(())
    }

    pub(super) fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
    }

    /// Reads more bytes from the socket into the buffer. `Ok(0)` means the peer closed.
    pub(super) fn fill(&mut self) -> io::Result<usize> {
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
    pub(super) fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
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
    pub(super) fn read_line(
        &mut self,
        limit: usize,
        what: &str,
    ) -> io::Result<std::ops::Range<usize>> {
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
    pub(super) fn expect_crlf(&mut self) -> io::Result<()> {
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

pub(super) fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}
