//! A connection's transport: the TCP socket, plain or carrying TLS (rustls). Workers read and
//! write it in blocking mode with the socket's timeouts; the poller drives it without blocking
//! (`recv`/`send` with `MSG_DONTWAIT`), including the whole TLS handshake, so that a handshake
//! never holds a worker.
//!
//! A TLS session is behind a `Mutex` only so that the link can be shared (`Arc`) between the
//! connection buffer, a request body and the response writer; one thread at a time uses it, so
//! the lock is never contended. Shutdown reaches the raw socket without it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustls::ServerConnection;

/// Records read in one call that yield no application data before the call gives up. rustls
/// bounds empty records and KeyUpdates only per run, and alternating them resets both counts:
/// a client could otherwise keep a read going forever on records that carry nothing.
const MAX_RECORDS_WITHOUT_DATA: usize = 64;

fn no_data() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "TLS: too many records without application data",
    )
}

/// A connection's socket, and its TLS session when it has one.
pub(super) struct Link {
    tcp: TcpStream,
    tls: Option<Mutex<ServerConnection>>,
}

impl Link {
    pub(super) fn plain(tcp: TcpStream) -> Link {
        Link { tcp, tls: None }
    }

    pub(super) fn tls(tcp: TcpStream, session: ServerConnection) -> Link {
        Link {
            tcp,
            tls: Some(Mutex::new(session)),
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub(super) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    pub(super) fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.tcp.set_read_timeout(d)
    }

    /// Closes the socket in `how`. Before a write shutdown, a TLS session says close_notify
    /// (best effort), so that a client reading to the end can tell the end from a cut.
    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            if let Some(mut s) = self.session() {
                s.send_close_notify();
                let _ = flush_blocking(&self.tcp, &mut s);
            }
        }
        self.tcp.shutdown(how)
    }

    /// Ends a TLS session with close_notify (best effort, bounded by the write timeout), so that
    /// a client reading to the end of the connection sees a clean end. Nothing on a plain link.
    pub(super) fn close_notify(&self) {
        if let Some(mut s) = self.session() {
            s.send_close_notify();
            let _ = flush_blocking(&self.tcp, &mut s);
        }
    }

    /// On a new TLS link: whether the client's first byte opens a TLS handshake record. Plain
    /// HTTP sent to the TLS port starts with a method's letter instead. `WouldBlock` until a
    /// byte is there; `Ok(None)` when the client closed.
    pub(super) fn first_byte(&self) -> io::Result<Option<u8>> {
        let mut b = [0u8; 1];
        loop {
            // SAFETY: `b` is valid for writes of 1 byte for the duration of the call.
            let r = unsafe {
                libc::recv(
                    self.tcp.as_raw_fd(),
                    b.as_mut_ptr().cast(),
                    1,
                    libc::MSG_DONTWAIT | libc::MSG_PEEK,
                )
            };
            return match r {
                0 => Ok(None),
                r if r > 0 => Ok(Some(b[0])),
                _ => match io::Error::last_os_error() {
                    e if e.kind() == io::ErrorKind::Interrupted => continue,
                    e => Err(e),
                },
            };
        }
    }

    /// Cuts the connection at once (no close_notify): for shutdown and aborted responses.
    pub(super) fn abort(&self) {
        let _ = self.tcp.shutdown(Shutdown::Both);
    }

    fn session(&self) -> Option<MutexGuard<'_, ServerConnection>> {
        // A poisoned session (a panic mid-record) is unusable: treated as gone.
        self.tls.as_ref().and_then(|m| m.lock().ok())
    }

    /// Reads without blocking: `WouldBlock` when nothing is there. For the poller. On a TLS
    /// link this also advances the handshake and sends its replies (see [`Link::flush_nonblocking`]).
    pub(super) fn read_nonblocking(&self, out: &mut [u8]) -> io::Result<usize> {
        let Some(m) = &self.tls else {
            return recv_nonblocking(&self.tcp, out);
        };
        let mut s = m.lock().map_err(|_| poisoned())?;
        for _ in 0..MAX_RECORDS_WITHOUT_DATA {
            match s.reader().read(out) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // Closed without close_notify: HTTP framing tells a cut body from a whole one.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match flush_nonblocking(&self.tcp, &mut s) {
                Ok(()) => {}
                // The reply waits for the socket to drain; reading goes on meanwhile.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if s.read_tls(&mut NonBlocking(&self.tcp))? == 0 {
                return Ok(0);
            }
            process(&self.tcp, &mut s, true)?;
        }
        Err(no_data())
    }

    /// Sends pending TLS output without blocking; `WouldBlock` if some is left.
    pub(super) fn flush_nonblocking(&self) -> io::Result<()> {
        match self.session() {
            Some(mut s) => flush_nonblocking(&self.tcp, &mut s),
            None => Ok(()),
        }
    }
}

impl AsRawFd for Link {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}

impl Read for &Link {
    /// Blocking, and as a plain `recv` bounded by the socket's read timeout as a whole: records
    /// that carry no data (or a record trickled in byte by byte) cannot stretch one call past
    /// it. A TLS close without close_notify reads as the end of input.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let Some(m) = &self.tls else {
            return (&self.tcp).read(out);
        };
        let mut s = m.lock().map_err(|_| poisoned())?;
        let timeout = self.tcp.read_timeout()?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut shortened = false;
        let result = (|| {
            for _ in 0..MAX_RECORDS_WITHOUT_DATA {
                match s.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                flush_blocking(&self.tcp, &mut s)?;
                if let Some(d) = deadline {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "TLS: no application data within the read timeout",
                        ));
                    }
                    if shortened || Some(left) != timeout {
                        self.tcp
                            .set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
                        shortened = true;
                    }
                }
                // A timeout here leaves the session intact: the bytes of a partial record stay
                // buffered in it, and the next read goes on from them.
                if s.read_tls(&mut &self.tcp)? == 0 {
                    return Ok(0);
                }
                process(&self.tcp, &mut s, false)?;
            }
            Err(no_data())
        })();
        if shortened {
            // The connection buffer caches the timeout it set: put that one back.
            self.tcp.set_read_timeout(timeout)?;
        }
        result
    }
}

impl Write for &Link {
    /// Blocking, bounded by the socket's write timeout: the bytes are encrypted into records
    /// and the records written out before it returns.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(m) = &self.tls else {
            return (&self.tcp).write(buf);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let mut s = m.lock().map_err(|_| poisoned())?;
        loop {
            // Takes what fits under the session's buffer limit (0 when it is full).
            let n = s.writer().write(buf)?;
            flush_blocking(&self.tcp, &mut s)?;
            if n > 0 {
                return Ok(n);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.session() {
            Some(mut s) => flush_blocking(&self.tcp, &mut s),
            None => Ok(()),
        }
    }
}

/// Processes received TLS records. On a protocol error, the alert rustls queued is sent (best
/// effort) and the error returned as `InvalidData`.
fn process(tcp: &TcpStream, s: &mut ServerConnection, nonblocking: bool) -> io::Result<()> {
    if let Err(e) = s.process_new_packets() {
        let _ = if nonblocking {
            flush_nonblocking(tcp, s)
        } else {
            flush_blocking(tcp, s)
        };
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("TLS: {e}"),
        ));
    }
    Ok(())
}

fn flush_blocking(tcp: &TcpStream, s: &mut ServerConnection) -> io::Result<()> {
    while s.wants_write() {
        match s.write_tls(&mut &*tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn flush_nonblocking(tcp: &TcpStream, s: &mut ServerConnection) -> io::Result<()> {
    while s.wants_write() {
        match s.write_tls(&mut NonBlocking(tcp)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn poisoned() -> io::Error {
    io::Error::other("TLS session unusable after a panic")
}

/// The socket seen through `recv`/`send` with `MSG_DONTWAIT`, so that rustls can be driven
/// without blocking on a socket the workers use in blocking mode.
struct NonBlocking<'a>(&'a TcpStream);

impl Read for NonBlocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_nonblocking(self.0, buf)
    }
}

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_nonblocking(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One `recv` that never blocks, on a socket the workers use in blocking mode.
pub(super) fn recv_nonblocking(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
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
pub(super) fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
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
