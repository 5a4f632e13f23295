//! The registry's HTTP API: route match, the order of checks Gitea uses (GITEA-COMPAT §2), name
//! validation, the one mapping from errors to status codes, and response headers.
//!
//! Works on `http::Request`/`http::Response` values and never touches a socket; asks `auth` who
//! is calling and `store` for data, and knows no redb type.

use crate::auth::{self, AuthError, Credentials};
use crate::http::{http_date, parse_http_date, BodySource, Request, Response, ResponseBody};
use crate::store::{
    self, Deleted, FileCoords, FileReader, FileRecord, Published, Store, UserRecord,
};
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// Longest accepted package name, version or file name, in bytes after percent-decoding.
pub const MAX_COMPONENT_BYTES: usize = 255;
const REALM: &str = "Basic realm=\"shelf\"";
const CACHE_CONTROL: &str = "max-age=0, private, must-revalidate, no-transform";

#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Largest accepted upload in bytes (403 beyond, as Gitea's LIMIT_SIZE_GENERIC).
    pub max_file_size: Option<u64>,
}

pub struct Api {
    store: Arc<Store>,
    config: ApiConfig,
}

/// Every way a registry request can fail, mapped to status and body in exactly one place
/// (`into_response`). Messages are Gitea's, so scripts matching on them keep working.
#[derive(Debug)]
pub enum ApiError {
    NotFound(&'static str),
    MethodNotAllowed(&'static str),
    BadCredentials,
    NoPermission,
    InvalidName,
    InvalidVersion,
    InvalidFileName,
    FileExists,
    TooLarge,
    BadBody(io::Error),
    Internal(String),
}

impl ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound(msg) => Response::text(404, msg),
            ApiError::MethodNotAllowed(allow) => {
                Response::text(405, "method not allowed").with_header("Allow", allow)
            }
            ApiError::BadCredentials => Response::text(401, "Failed to authenticate user"),
            ApiError::NoPermission => Response::text(
                401,
                "user should have specific permission or be a site admin",
            )
            .with_header("WWW-Authenticate", REALM),
            ApiError::InvalidName => Response::text(400, "invalid package name"),
            ApiError::InvalidVersion => Response::text(400, "invalid package version"),
            ApiError::InvalidFileName => Response::text(400, "invalid filename"),
            ApiError::FileExists => Response::text(409, "package file already exists"),
            ApiError::TooLarge => Response::text(403, "maximum allowed package type size exceeded"),
            ApiError::BadBody(e) => {
                Response::text(400, &format!("the request body could not be read: {e}"))
            }
            ApiError::Internal(detail) => {
                log::error!("internal error: {detail}");
                Response::text(500, "internal server error")
            }
        }
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        match e {
            store::Error::Body(io) if is_too_large(&io) => ApiError::TooLarge,
            store::Error::Body(io) => ApiError::BadBody(io),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// The routes of GITEA-COMPAT §1, each `{…}` one percent-decoded path segment. `None` marks a
/// segment that does not decode (bad escape or not UTF-8): it can name nothing.
enum Route {
    File {
        owner: Option<String>,
        name: Option<String>,
        version: Option<String>,
        file: Option<String>,
    },
    Version {
        owner: Option<String>,
        name: Option<String>,
        version: Option<String>,
    },
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').collect();
    match segs.as_slice() {
        ["", "api", "packages", owner, "generic", name, version, file] if !file.is_empty() => {
            Some(Route::File {
                owner: percent_decode(owner),
                name: percent_decode(name),
                version: percent_decode(version),
                file: percent_decode(file),
            })
        }
        ["", "api", "packages", owner, "generic", name, version] if !version.is_empty() => {
            Some(Route::Version {
                owner: percent_decode(owner),
                name: percent_decode(name),
                version: percent_decode(version),
            })
        }
        _ => None,
    }
}

impl Api {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        Api { store, config }
    }

    pub fn handle(&self, req: &mut Request) -> Response {
        let mut user_for_log = None;
        let response = match self.dispatch(req, &mut user_for_log) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        Response {
            user: user_for_log,
            ..response
        }
    }

    fn dispatch(&self, req: &mut Request, who: &mut Option<String>) -> Result<Response, ApiError> {
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (req.target.clone(), String::new()),
        };
        // 1. route (404/405 before anything else)
        let route = route(&path).ok_or(ApiError::NotFound("Not found."))?;
        let method = req.method.as_str();
        match (&route, method) {
            (Route::File { .. }, "GET" | "HEAD" | "PUT" | "DELETE") => {}
            (Route::File { .. }, _) => {
                return Err(ApiError::MethodNotAllowed("GET, HEAD, PUT, DELETE"))
            }
            (Route::Version { .. }, "DELETE") => {}
            (Route::Version { .. }, _) => return Err(ApiError::MethodNotAllowed("DELETE")),
        }
        // 2. credentials: present but wrong is 401 even for a public read
        let mut creds = auth::parse_authorization(req.header("authorization"));
        if creds == Credentials::Anonymous {
            if let Some(t) = auth::query_token(&query) {
                creds = Credentials::Token(t);
            }
        }
        let user = match auth::authenticate(&self.store, &creds) {
            Ok(u) => u,
            Err(AuthError::Invalid) => return Err(ApiError::BadCredentials),
            Err(AuthError::Store(e)) => return Err(e.into()),
        };
        *who = user.as_ref().map(|u| u.login.clone());
        // 3. owner
        let owner_name = match &route {
            Route::File { owner, .. } | Route::Version { owner, .. } => owner.clone(),
        };
        let owner = match owner_name {
            Some(o) => self.store.get_user(&o)?,
            None => None,
        }
        .ok_or(ApiError::NotFound("Not found."))?;
        // 4. read access: every namespace is public until visibility exists.
        // 5. write access
        let writes = matches!(method, "PUT" | "DELETE");
        if writes && !auth::may_write(user.as_ref(), &owner) {
            return Err(ApiError::NoPermission);
        }
        let creator = user.as_ref().map(|u| u.login.as_str()).unwrap_or("");
        match route {
            Route::File {
                name,
                version,
                file,
                ..
            } => match method {
                "PUT" => self.upload(req, &owner, creator, name, version, file),
                _ => {
                    // GET, HEAD and DELETE never validate: an invalid name simply finds nothing.
                    let (Some(name), Some(version), Some(file)) = (name, version, file) else {
                        return Err(ApiError::NotFound("package does not exist"));
                    };
                    let at = FileCoords::new(&owner.login, &name, &version, &file);
                    if method == "DELETE" {
                        self.delete_file(&at)
                    } else {
                        self.download(req, &at)
                    }
                }
            },
            Route::Version { name, version, .. } => {
                let (Some(name), Some(version)) = (name, version) else {
                    return Err(ApiError::NotFound("package does not exist"));
                };
                match self.store.delete_version(&owner.login, &name, &version)? {
                    Deleted::Done => Ok(Response::new(204)),
                    _ => Err(ApiError::NotFound("package does not exist")),
                }
            }
        }
    }

    fn upload(
        &self,
        req: &mut Request,
        owner: &UserRecord,
        creator: &str,
        name: Option<String>,
        version: Option<String>,
        file: Option<String>,
    ) -> Result<Response, ApiError> {
        // 6. validation, in Gitea's order: name, version, file name
        let name = name
            .filter(|n| valid_package_name(n))
            .ok_or(ApiError::InvalidName)?;
        let version = version
            .filter(|v| valid_version(v))
            .ok_or(ApiError::InvalidVersion)?;
        let file = file
            .filter(|f| valid_file_name(f))
            .ok_or(ApiError::InvalidFileName)?;
        let at = FileCoords::new(&owner.login, &name, &version, &file);
        // Refusals that are known before the body go out before it (and before any
        // `100 Continue`): a declared size over the limit, and an existing file.
        let limit = self.config.max_file_size;
        if let (Some(max), Some(declared)) = (limit, req.body.content_length()) {
            if declared > max {
                return Err(ApiError::TooLarge);
            }
        }
        if self.store.file_exists(&at)? {
            return Err(ApiError::FileExists);
        }
        // 7–8. the body, then the publishing commit (which decides a racing 409 for good)
        let body = LimitedBody {
            inner: &mut req.body,
            left: limit,
        };
        match self.store.upload(&at, creator, body)? {
            Published::Created => Ok(Response::new(201)),
            Published::Conflict => Err(ApiError::FileExists),
        }
    }

    fn delete_file(&self, at: &FileCoords) -> Result<Response, ApiError> {
        match self.store.delete_file(at)? {
            Deleted::Done => Ok(Response::new(204)),
            Deleted::NoVersion => Err(ApiError::NotFound("package does not exist")),
            Deleted::NoFile => Err(ApiError::NotFound("package file does not exist")),
        }
    }

    fn download(&self, req: &Request, at: &FileCoords) -> Result<Response, ApiError> {
        let Some((rec, reader)) = self.store.open_file(at)? else {
            return Err(
                if self
                    .store
                    .version_exists(&at.owner, &at.name, &at.version)?
                {
                    ApiError::NotFound("package file does not exist")
                } else {
                    ApiError::NotFound("package does not exist")
                },
            );
        };
        let etag = format!("\"{}\"", hex::encode(rec.sha256));
        let modified = UNIX_EPOCH + Duration::from_secs(rec.created);
        let base = file_headers(&rec, &etag, &http_date(modified));

        // Conditional requests, in the order of RFC 9110 §13.2.2 (as Go's ServeContent).
        if let Some(im) = req.header("if-match") {
            if !etag_list_matches(im, &etag) {
                return Ok(with_headers(Response::new(412), &base));
            }
        } else if let Some(t) = req.header("if-unmodified-since").and_then(parse_http_date) {
            if modified > t {
                return Ok(with_headers(Response::new(412), &base));
            }
        }
        if let Some(inm) = req.header("if-none-match") {
            if etag_list_matches(inm, &etag) {
                return Ok(with_headers(Response::new(304), &base));
            }
        } else if let Some(t) = req.header("if-modified-since").and_then(parse_http_date) {
            if modified <= t {
                return Ok(with_headers(Response::new(304), &base));
            }
        }

        let range_applies = match req.header("if-range") {
            None => true,
            Some(v) if v.starts_with('"') => v == etag,
            Some(v) => parse_http_date(v) == Some(modified),
        };
        let range = match req.header("range") {
            Some(r) if range_applies && rec.size > 0 => parse_range(r, rec.size),
            _ => RangeSpec::Whole,
        };
        match range {
            RangeSpec::Whole => {
                let mut resp = with_headers(Response::new(200), &base);
                resp.body = ResponseBody::Source {
                    len: rec.size,
                    source: Box::new(Download(reader)),
                };
                Ok(resp)
            }
            RangeSpec::Part(start, end) => {
                let mut resp = with_headers(Response::new(206), &base).with_header(
                    "Content-Range",
                    format!("bytes {}-{}/{}", start, end - 1, rec.size),
                );
                resp.body = ResponseBody::Source {
                    len: end - start,
                    source: Box::new(Download(reader.with_range(start, end))),
                };
                Ok(resp)
            }
            RangeSpec::Unsatisfiable => Ok(Response::text(416, "invalid range")
                .with_header("Content-Range", format!("bytes */{}", rec.size))),
        }
    }
}

/// A file download, lent to the HTTP layer page by page.
struct Download(FileReader);

impl BodySource for Download {
    fn next_slice(&mut self) -> io::Result<&[u8]> {
        self.0.next_slice()
    }
}

fn file_headers(rec: &FileRecord, etag: &str, last_modified: &str) -> Vec<(String, String)> {
    let pairs = [
        ("Content-Type", "application/octet-stream".to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("Last-Modified", last_modified.to_string()),
        ("ETag", etag.to_string()),
        ("X-Checksum-Sha256", hex::encode(rec.sha256)),
        (
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}\"; filename*=UTF-8''{}",
                rec.name,
                percent_encode(&rec.name)
            ),
        ),
        (
            "Access-Control-Expose-Headers",
            "Content-Disposition".to_string(),
        ),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Cache-Control", CACHE_CONTROL.to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn with_headers(mut resp: Response, headers: &[(String, String)]) -> Response {
    resp.headers.extend(headers.iter().cloned());
    resp
}

/// Whether an `If-Match`/`If-None-Match` list names our (strong) ETag; `*` matches any file.
fn etag_list_matches(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    Whole,
    /// Half-open byte range `start..end`.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range as Go's `ServeContent` reads it; several ranges are answered with the
/// whole file for now (RFC 9110 lets a server ignore Range). Other units are ignored.
fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    if spec.contains(',') {
        return RangeSpec::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if a.is_empty() {
        // suffix: the last N bytes
        let Some(n) = digits(b).then(|| b.parse::<u64>().ok()).flatten() else {
            return RangeSpec::Unsatisfiable;
        };
        if n == 0 {
            return RangeSpec::Unsatisfiable;
        }
        return RangeSpec::Part(size - n.min(size), size);
    }
    let Some(start) = digits(a).then(|| a.parse::<u64>().ok()).flatten() else {
        return RangeSpec::Unsatisfiable;
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    if b.is_empty() {
        return RangeSpec::Part(start, size);
    }
    match digits(b).then(|| b.parse::<u64>().ok()).flatten() {
        Some(last) if last >= start => RangeSpec::Part(start, last.min(size - 1) + 1),
        _ => RangeSpec::Unsatisfiable,
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Gitea's `\A[-_+.\w]+\z` (ASCII `\w`), minus one-character non-alphanumerics and `..`.
pub fn valid_package_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'))
        && (name.len() > 1 || name.bytes().all(|b| b.is_ascii_alphanumeric()))
        && name != ".."
}

/// Gitea ≥ 1.22's file name charset, no surrounding whitespace, not `.` or `..`.
pub fn valid_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_COMPONENT_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" -_+=:;.()[]{}~!@#$%^&".contains(&b))
        && name.trim() == name
        && name != "."
        && name != ".."
}

/// Any string that equals itself after Unicode whitespace trimming (Go's `strings.TrimSpace`
/// and Rust's `char::is_whitespace` agree on the White_Space property), non-empty.
pub fn valid_version(version: &str) -> bool {
    !version.is_empty() && version.len() <= MAX_COMPONENT_BYTES && version.trim() == version
}

/// A user (owner) name: 1–40 of `A-Z a-z 0-9 - _ .`, starting and ending alphanumeric (a
/// subset of what Gitea accepts, so every shelf owner is also a valid Gitea owner).
pub fn valid_owner_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=40).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Decodes `%XX` escapes of one path segment (`+` stays `+`). `None` for a bad escape or a
/// result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hi = (hex[0] as char).to_digit(16)?;
            let lo = (hex[1] as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// RFC 5987 `attr-char` encoding for `filename*`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Upload size limit

/// Marks the io::Error a `LimitedBody` returns, so it maps to 403 and not to a bad body.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upload larger than the configured maximum file size")
    }
}

impl std::error::Error for TooLarge {}

fn is_too_large(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<TooLarge>())
}

/// Counts body bytes against `--max-file-size`; exceeding it is an error, never a short file.
struct LimitedBody<'a, R> {
    inner: &'a mut R,
    left: Option<u64>,
}

impl<R: Read> Read for LimitedBody<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(left) = &mut self.left {
            if n as u64 > *left {
                return Err(io::Error::other(TooLarge));
            }
            *left -= n as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_names_as_gitea() {
        for bad in [
            "",
            ".",
            "..",
            "-",
            "_",
            "+",
            "a?b",
            "a b",
            "a/b",
            "é",
            &"a".repeat(256),
        ] {
            assert!(!valid_package_name(bad), "{bad:?} must be invalid");
        }
        for good in [
            "a",
            "1",
            "a-",
            "a_b",
            "c.d+",
            "...",
            ".a",
            "-a",
            &"a".repeat(255),
        ] {
            assert!(valid_package_name(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn file_names_as_gitea_1_22() {
        for bad in [
            "", ".", "..", "a?b", "a/b", " a", "a ", "a\tb", "a\"b", "a,b", "é",
        ] {
            assert!(!valid_file_name(bad), "{bad:?} must be invalid");
        }
        for good in [
            "-",
            "a",
            "1",
            "a-",
            "a_b",
            "a b",
            "c.d+",
            "-_+=:;.()[]{}~!@#$%^& aA1",
            ".hidden",
            "...",
        ] {
            assert!(valid_file_name(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn versions_reject_unicode_padding_only() {
        for bad in [
            "",
            " 1",
            "1 ",
            "\t1",
            "1\n",
            "\u{a0}1",
            "1\u{3000}",
            "\u{2028}1",
            "\u{85}1",
        ] {
            assert!(!valid_version(bad), "{bad:?} must be invalid");
        }
        for good in ["1.0", "1.0.3-te st", "v/1", "日本", "a\u{1}b"] {
            assert!(valid_version(good), "{good:?} must be valid");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb").as_deref(), Some("a/b"));
        assert_eq!(percent_decode("a+b%20c").as_deref(), Some("a+b c"));
        assert_eq!(percent_decode("%e6%97%a5").as_deref(), Some("日"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn ranges_as_go_serve_content() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part(0, 10));
        assert_eq!(parse_range("bytes=90-", 100), Part(90, 100));
        assert_eq!(parse_range("bytes=-10", 100), Part(90, 100));
        assert_eq!(parse_range("bytes=-1000", 100), Part(0, 100));
        assert_eq!(parse_range("bytes=50-1000", 100), Part(50, 100));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=x-1", 100), Unsatisfiable);
        assert_eq!(parse_range("items=0-1", 100), Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Whole);
    }

    #[test]
    fn disposition_encoding() {
        assert_eq!(percent_encode("a b[1].bin"), "a%20b%5B1%5D.bin");
    }
}
