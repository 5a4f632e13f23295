//! A minimal HTTP/1.1 client for the command line's `--server` mode: one JSON request per
//! connection (`Connection: close`) to an `http://` or `https://host[:port][/prefix]` URL,
//! authenticated with `Authorization: token T`.
//!
//! `https://` is verified against the system's CA certificates plus an optional `--ca-cert`
//! file (air-gapped sites run their own CA), with rustls. There is no way to skip the check,
//! and never a fallback to plain HTTP.
//!
//! Std, serde_json and rustls; knows nothing of the store or the API's routes.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body read (the API's pages are far smaller).
const MAX_BODY: u64 = 64 << 20;
/// Largest response head read.
const MAX_HEAD: usize = 64 << 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Read timeout of streamed downloads and long server-side operations (a check of a large
/// database answers only when it is done).
const LONG_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug)]
pub enum Error {
    /// The `--server` URL is not one this client can use.
    Url(String),
    /// The TLS setup (the CA file) or the handshake failed; the message says what to do.
    Tls(String),
    /// Connecting to the server failed.
    Connect(String, io::Error),
    /// Sending the request or reading the answer failed.
    Io(io::Error),
    /// The answer is not well-formed HTTP or JSON.
    Protocol(String),
    /// The server answered with an error status; `message` is its JSON `message`.
    Status { status: u16, message: String },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Url(m) => write!(f, "--server: {m}"),
            Error::Tls(m) => write!(f, "{m}"),
            Error::Connect(addr, e) => write!(f, "cannot connect to {addr}: {e}"),
            Error::Io(e) => write!(f, "talking to the server failed: {e}"),
            Error::Protocol(m) => write!(f, "the server's answer is not understood: {m}"),
            Error::Status { status, message } => {
                write!(f, "the server answered {status}: {message}")?;
                match *status {
                    // Gitea's text for every refused credential, whatever the cause.
                    401 => write!(
                        f,
                        " (the token was not accepted: it is wrong, revoked or expired, or its \
                         user is deactivated; check --token or SHELF_TOKEN)"
                    ),
                    403 => write!(
                        f,
                        " (the token is valid but may not do this: is it a site admin's, with \
                         the scopes and owner or package limits the command needs?)"
                    ),
                    _ => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        Error::Io(e)
    }
}

/// A server to send JSON requests to.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port`, for the `Host` header and to connect to.
    authority: String,
    /// For `https://`: the verifying TLS configuration and the name the certificate must carry.
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    /// Path prefix without a trailing slash (`""` when shelf is at the root).
    prefix: String,
    token: String,
    /// How long to wait for the server's answer.
    read_timeout: Duration,
}

/// A response: status, headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Client {
    /// A client for `url` (`http://` or `https://`); `ca_cert` adds CA certificates (PEM) to
    /// the system's for verifying an https server.
    pub fn new(url: &str, token: &str, ca_cert: Option<&Path>) -> Result<Client, Error> {
        let lower = url.to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &url["https://".len()..])
        } else if lower.starts_with("http://") {
            (false, &url["http://".len()..])
        } else {
            return Err(Error::Url(format!(
                "expected an http:// or https:// URL such as http://127.0.0.1:8080, not {url:?}"
            )));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') || path.contains(['?', '#']) {
            return Err(Error::Url(format!(
                "expected http[s]://host[:port][/path], not {url:?}"
            )));
        }
        let (host, has_port) = match authority.rfind(']') {
            Some(end) => (
                authority[..end].trim_start_matches('['),
                authority[end..].contains(':'),
            ),
            None => match authority.split_once(':') {
                Some((h, _)) => (h, true),
                None => (authority, false),
            },
        };
        let host = host.to_string();
        let authority = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        if token.is_empty() || token.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(Error::Url(
                "the token must be printable ASCII without spaces".into(),
            ));
        }
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .map_err(|_| Error::Url(format!("{host:?} is not a valid host name for TLS")))?;
            Some((tls_config(ca_cert)?, name))
        } else {
            if ca_cert.is_some() {
                return Err(Error::Url(format!(
                    "--ca-cert (or SHELF_CA_CERT) is for an https:// server, and {url:?} is \
                     plain http://"
                )));
            }
            None
        };
        Ok(Client {
            authority,
            tls,
            prefix: path.trim_end_matches('/').to_string(),
            token: token.to_string(),
            read_timeout: IO_TIMEOUT,
        })
    }

    /// The same client, waiting up to hours for answers (a check of a large database answers
    /// only when it is done).
    pub fn patient(mut self) -> Client {
        self.read_timeout = LONG_TIMEOUT;
        self
    }

    /// Sends one request; `path` starts with `/` and is already percent-encoded.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, Error> {
        let mut wire = self.connect(self.read_timeout, IO_TIMEOUT)?;
        let payload = match body {
            Some(v) => serde_json::to_vec(v).map_err(|e| Error::Protocol(e.to_string()))?,
            None => Vec::new(),
        };
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-cli/{}\r\n\
             Accept: application/json\r\nConnection: close\r\nAuthorization: token {}\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION"),
            self.token
        );
        if body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        if body.is_some() || method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", payload.len()));
        }
        head.push_str("\r\n");
        let mut request = head.into_bytes();
        request.extend_from_slice(&payload);
        wire.write_all(&request)?;
        wire.flush()?;
        read_reply(&mut BufReader::new(wire), method == "HEAD")
    }

    /// Sends one JSON request and returns the JSON answer (`Null` for an empty body); any
    /// status other than 2xx is an `Error::Status` carrying the server's message.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let reply = self.send(method, path, body)?;
        let json = if reply.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            serde_json::from_slice::<Value>(&reply.body).ok()
        };
        if !(200..300).contains(&reply.status) {
            return Err(status_error(reply.status, &reply.body));
        }
        match json {
            Some(v) => Ok(v),
            None if reply.body.iter().all(u8::is_ascii_whitespace) => Ok(Value::Null),
            None => Err(Error::Protocol(format!(
                "{method} {path}: the {} answer is not JSON",
                reply.status
            ))),
        }
    }
}

impl Client {
    /// GETs `path` and copies the answer's body, of any size, into `out` as it arrives;
    /// returns the bytes copied. A status other than 2xx is an `Error::Status`.
    pub fn download(&self, path: &str, out: &mut dyn Write) -> Result<u64, Error> {
        let mut wire = self.connect(LONG_TIMEOUT, IO_TIMEOUT)?;
        let head = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-cli/{}\r\n\
             Connection: close\r\nAuthorization: token {}\r\n\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION"),
            self.token
        );
        wire.write_all(head.as_bytes())?;
        wire.flush()?;
        let mut r = BufReader::with_capacity(1 << 20, wire);
        let reply = read_head(&mut r)?;
        if !(200..300).contains(&reply.status) {
            // An error answer is read to 1 MiB at most, whatever it declares.
            let mut body = Vec::new();
            let _ = copy_body(&mut (&mut r).take(1 << 20), &reply, &mut body);
            return Err(status_error(reply.status, &body));
        }
        copy_body(&mut r, &reply, out)
    }

    /// A connection to the server with these socket read and write timeouts; for https, with
    /// its certificate verified.
    fn connect(&self, read: Duration, write: Duration) -> Result<Wire, Error> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| Error::Connect(self.authority.clone(), e))?
            .next()
            .ok_or_else(|| {
                Error::Connect(
                    self.authority.clone(),
                    io::Error::new(io::ErrorKind::NotFound, "no address"),
                )
            })?;
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            .map_err(|e| Error::Connect(self.authority.clone(), e))?;
        stream.set_read_timeout(Some(read))?;
        stream.set_write_timeout(Some(write))?;
        let Some((config, name)) = &self.tls else {
            return Ok(Wire::Plain(stream));
        };
        let mut conn = ClientConnection::new(Arc::clone(config), name.clone())
            .map_err(|e| Error::Tls(format!("TLS with {}: {e}", self.authority)))?;
        let mut stream = stream;
        // The handshake now, not inside the first write: its errors are the ones to explain.
        while conn.is_handshaking() {
            conn.complete_io(&mut stream)
                .map_err(|e| handshake_error(&self.authority, name, e))?;
        }
        Ok(Wire::Tls(Box::new(StreamOwned::new(conn, stream))))
    }
}

/// An answer whose body has not been read yet (bundles: too large to hold).
pub struct Streamed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The Content-Length, if the server sent one.
    pub length: Option<u64>,
    /// The body: exactly `length` bytes when known, else up to the end of the connection.
    pub body: Box<dyn Read + Send>,
}

impl Streamed {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The server's JSON `message` of an error answer (bounded read).
    pub fn error(self) -> Error {
        let mut body = Vec::new();
        let _ = self.body.take(1 << 20).read_to_end(&mut body);
        status_error(self.status, &body)
    }
}

impl Client {
    /// Sends one request whose body (exactly `len` bytes of `body`) is streamed, never held,
    /// and returns the answer with its body unread. `timeout` bounds each socket read and
    /// write (an import answers only after the whole bundle is stored and published).
    pub fn stream(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<(&mut dyn Read, u64)>,
        timeout: Duration,
    ) -> Result<Streamed, Error> {
        let mut wire = self.connect(timeout, timeout)?;
        let len = body.as_ref().map(|(_, l)| *l).unwrap_or(0);
        let head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: shelf-cli/{}\r\n\
             Connection: close\r\nAuthorization: token {}\r\nContent-Type: {content_type}\r\n\
             Content-Length: {len}\r\n\r\n",
            self.prefix,
            self.authority,
            env!("CARGO_PKG_VERSION"),
            self.token
        );
        let mut writer = io::BufWriter::with_capacity(1 << 20, &mut wire);
        let sent = writer.write_all(head.as_bytes()).and_then(|()| match body {
            Some((reader, len)) => {
                let copied = io::copy(&mut reader.take(len), &mut writer)?;
                if copied != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the input ended after {copied} of {len} bytes"),
                    ));
                }
                writer.flush()
            }
            None => writer.flush(),
        });
        drop(writer);
        // A server that refused early answered before reading everything: read its answer
        // even when sending failed, and report the sending error only if there is none.
        let mut reader = BufReader::with_capacity(1 << 20, wire);
        let Reply {
            status, headers, ..
        } = match read_head(&mut reader) {
            Ok(r) => r,
            Err(e) => return Err(sent.err().map(Error::Io).unwrap_or(e)),
        };
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if find("transfer-encoding").is_some() {
            return Err(Error::Protocol(
                "a chunked answer where a sized one was expected".into(),
            ));
        }
        let length = match find("content-length") {
            Some(l) => Some(
                l.parse::<u64>()
                    .map_err(|_| Error::Protocol(format!("bad Content-Length {l:?}")))?,
            ),
            None => None,
        };
        let body: Box<dyn Read + Send> = match length {
            Some(n) => Box::new(reader.take(n)),
            None => Box::new(reader),
        };
        Ok(Streamed {
            status,
            headers,
            length,
            body,
        })
    }
}

/// A connection to the server: plain, or TLS over it.
enum Wire {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.read(buf),
            Wire::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Wire::Plain(s) => s.write(buf),
            Wire::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Wire::Plain(s) => s.flush(),
            Wire::Tls(s) => s.flush(),
        }
    }
}

/// The verifying TLS configuration: the system's CA certificates plus those of `ca_cert`.
fn tls_config(ca_cert: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates only narrow what is trusted; the handshake then says so.
    let (added, _) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let mut own = 0;
    if let Some(path) = ca_cert {
        let data = std::fs::read(path)
            .map_err(|e| Error::Tls(format!("cannot read the CA file {}: {e}", path.display())))?;
        for cert in CertificateDer::pem_slice_iter(&data) {
            let cert = cert.map_err(|e| {
                Error::Tls(format!(
                    "the CA file {} is not valid PEM: {e}",
                    path.display()
                ))
            })?;
            roots.add(cert).map_err(|e| {
                Error::Tls(format!(
                    "the CA file {}: a certificate in it is not usable: {e}",
                    path.display()
                ))
            })?;
            own += 1;
        }
        if own == 0 {
            return Err(Error::Tls(format!(
                "the CA file {} holds no \"BEGIN CERTIFICATE\" block",
                path.display()
            )));
        }
    }
    if added + own == 0 {
        return Err(Error::Tls(
            "no CA certificates to verify an https:// server with: the system has none \
             (install ca-certificates), so pass the server's CA with --ca-cert FILE or \
             SHELF_CA_CERT"
                .into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A failed handshake, said so that the reader knows what to change.
fn handshake_error(authority: &str, name: &ServerName<'_>, e: io::Error) -> Error {
    use rustls::CertificateError as C;
    let host = name.to_str();
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let why = match tls {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            C::BadSignature => format!(
                "the certificate of {host} does not verify: its signature is bad (a damaged \
                 or forged certificate)"
            ),
            C::UnknownIssuer => format!(
                "the certificate of {host} is not signed by a CA this client trusts (unknown \
                 issuer); if your site runs its own CA, pass its certificate with --ca-cert \
                 FILE or SHELF_CA_CERT"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the certificate the server at {authority} presented is not valid for the \
                 name {host:?}; use the host name the certificate was made for"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the certificate of {host} has expired")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the certificate of {host} is not valid yet (check the clocks)")
            }
            C::Revoked => format!("the certificate of {host} is revoked"),
            C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => format!(
                "the server at {authority} presents a CA certificate as its own (a \
                 self-signed certificate with CA:TRUE); give the server a certificate signed \
                 by that CA, and this client the CA with --ca-cert"
            ),
            other => format!("the certificate of {host} is not accepted: {other:?}"),
        },
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => {
            format!(
                "the server at {authority} did not answer with TLS: is it serving plain http:// \
                 (then use an http:// URL)?"
            )
        }
        Some(other) => format!("{other}"),
        None => format!("{e}"),
    };
    Error::Tls(format!("TLS handshake with {authority} failed: {why}"))
}

/// The error for a non-2xx answer: what the server's JSON `errors` name (Gitea's not-found
/// answers put the missing thing there, under a generic `message`), else its `message`, else
/// the start of its text.
fn status_error(status: u16, body: &[u8]) -> Error {
    let json = serde_json::from_slice::<Value>(body).ok();
    let named = json.as_ref().and_then(|v| {
        let errors: Vec<&str> = v
            .get("errors")?
            .as_array()?
            .iter()
            .filter_map(Value::as_str)
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    });
    let message = named
        .or_else(|| {
            json.as_ref()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
        })
        .unwrap_or_else(|| {
            String::from_utf8_lossy(body)
                .trim()
                .chars()
                .take(200)
                .collect()
        });
    Error::Status { status, message }
}

fn read_line_limited<R: BufRead>(r: &mut R, budget: &mut usize) -> Result<String, Error> {
    let mut line = Vec::new();
    let n = r
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(Error::Io)?;
    if n == 0 {
        return Err(Error::Protocol(
            "the connection closed before the answer".into(),
        ));
    }
    if n > *budget {
        return Err(Error::Protocol("response head too large".into()));
    }
    *budget -= n;
    let line = String::from_utf8(line)
        .map_err(|_| Error::Protocol("response head is not UTF-8".into()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a response head: status line and headers, skipping 1xx answers.
fn read_head<R: BufRead>(r: &mut R) -> Result<Reply, Error> {
    let mut budget = MAX_HEAD;
    loop {
        if r.fill_buf()
            .map_err(Error::Io)?
            .first()
            .is_some_and(|&b| b == 0x15 || b == 0x16)
        {
            return Err(Error::Protocol(
                "the server answered with TLS: use an https:// URL".into(),
            ));
        }
        let status_line = read_line_limited(r, &mut budget)?;
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| Error::Protocol(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line_limited(r, &mut budget)?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| Error::Protocol(format!("bad header line {line:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        return Ok(Reply {
            status,
            headers,
            body: Vec::new(),
        });
    }
}

/// Reads one response: its head, then a body framed by Content-Length, chunked coding, or the
/// end of the connection.
fn read_reply<R: BufRead>(r: &mut R, head_only: bool) -> Result<Reply, Error> {
    let mut reply = read_head(r)?;
    if head_only || reply.status == 204 || reply.status == 304 {
        return Ok(reply);
    }
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        reply.body = read_chunked(r)?;
    } else if let Some(len) = reply.header("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| Error::Protocol(format!("bad Content-Length {len:?}")))?;
        if len > MAX_BODY {
            return Err(Error::Protocol(format!("a {len}-byte answer is too large")));
        }
        reply.body = vec![0; len as usize];
        r.read_exact(&mut reply.body)?;
    } else {
        r.take(MAX_BODY + 1).read_to_end(&mut reply.body)?;
        if reply.body.len() as u64 > MAX_BODY {
            return Err(Error::Protocol("the answer is too large".into()));
        }
    }
    Ok(reply)
}

/// Copies a response body of any size to `out` as it arrives: chunked, by Content-Length, or
/// to the end of the connection. A body cut short is an error, never a short success.
fn copy_body<R: BufRead>(r: &mut R, reply: &Reply, out: &mut dyn Write) -> Result<u64, Error> {
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let cut = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Error::Protocol("the server's answer ended early (connection lost?)".into())
        } else {
            Error::Io(e)
        }
    };
    if chunked {
        let mut total = 0u64;
        let mut budget = MAX_HEAD;
        loop {
            let line = read_line_limited(r, &mut budget)
                .map_err(|_| Error::Protocol("the server's answer ended early".into()))?;
            budget = MAX_HEAD;
            let size = line.split(';').next().unwrap_or_default().trim();
            let n = u64::from_str_radix(size, 16)
                .map_err(|_| Error::Protocol(format!("bad chunk size {line:?}")))?;
            if n == 0 {
                while !read_line_limited(r, &mut budget)?.is_empty() {}
                return Ok(total);
            }
            let copied = io::copy(&mut r.take(n), out).map_err(Error::Io)?;
            if copied != n {
                return Err(Error::Protocol("the server's answer ended early".into()));
            }
            total += n;
            if !read_line_limited(r, &mut budget)?.is_empty() {
                return Err(Error::Protocol("chunk not followed by CRLF".into()));
            }
        }
    } else if let Some(len) = reply.header("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| Error::Protocol(format!("bad Content-Length {len:?}")))?;
        let copied = io::copy(&mut r.take(len), out).map_err(cut)?;
        if copied != len {
            return Err(Error::Protocol("the server's answer ended early".into()));
        }
        Ok(len)
    } else {
        io::copy(r, out).map_err(cut)
    }
}

fn read_chunked<R: BufRead>(r: &mut R) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line_limited(r, &mut budget)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let n = u64::from_str_radix(size, 16)
            .map_err(|_| Error::Protocol(format!("bad chunk size {line:?}")))?;
        if n == 0 {
            // trailers, up to the empty line
            while !read_line_limited(r, &mut budget)?.is_empty() {}
            return Ok(body);
        }
        if body.len() as u64 + n > MAX_BODY {
            return Err(Error::Protocol("the answer is too large".into()));
        }
        let start = body.len();
        body.resize(start + n as usize, 0);
        r.read_exact(&mut body[start..])?;
        if !read_line_limited(r, &mut budget)?.is_empty() {
            return Err(Error::Protocol("chunk not followed by CRLF".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let new = |url: &str, token: &str| Client::new(url, token, None);
        assert!(matches!(new("h:80", "t"), Err(Error::Url(_))));
        assert!(matches!(new("ftp://h", "t"), Err(Error::Url(_))));
        assert!(matches!(new("http://u:p@h", "t"), Err(Error::Url(_))));
        assert!(matches!(new("http://h", "a b"), Err(Error::Url(_))));
        let c = new("http://h", "t").expect("plain");
        assert_eq!((c.authority.as_str(), c.prefix.as_str()), ("h:80", ""));
        assert!(c.tls.is_none());
        let c = new("http://[::1]:9/shelf/", "t").expect("v6 with prefix");
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("[::1]:9", "/shelf")
        );
        let c = new("http://[::1]", "t").expect("v6");
        assert_eq!(c.authority, "[::1]:80");
        let missing = Path::new("/nonexistent/ca.pem");
        let e = Client::new("https://h", "t", Some(missing)).map(|_| ());
        assert!(
            matches!(&e, Err(Error::Tls(m)) if m.starts_with("cannot read the CA file")),
            "{e:?}"
        );
        let e = Client::new("http://h", "t", Some(missing)).map(|_| ());
        assert!(
            matches!(&e, Err(Error::Url(m)) if m.contains("plain http://")),
            "{e:?}"
        );
    }

    #[test]
    fn replies() {
        let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let r = read_reply(&mut &raw[..], false).expect("length");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let raw = b"HTTP/1.1 422 X\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n2\r\n\":\r\n2\r\n1}\r\n0\r\nT: v\r\n\r\n";
        let r = read_reply(&mut &raw[..], false).expect("chunked");
        assert_eq!((r.status, r.body.as_slice()), (422, &b"{\"a\":1}"[..]));
        let raw = b"HTTP/1.0 200 OK\r\n\r\nuntil eof";
        let r = read_reply(&mut &raw[..], false).expect("eof");
        assert_eq!(r.body, b"until eof");
        assert!(read_reply(&mut &b"garbage\r\n\r\n"[..], false).is_err());
        assert!(read_reply(
            &mut &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"[..],
            false
        )
        .is_err());
    }
}
