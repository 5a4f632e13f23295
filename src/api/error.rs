//! The one error type of the API: every way a request can fail, named by its outcome, and
//! rendered in exactly one place (`ApiError::render`) in the flavour of the route family —
//! plain text with Gitea's package-route messages on the registry routes, Gitea's JSON
//! `{"message", "url"}` on `/api/v1`. There is one `From<store::Error>`, so a storage outcome
//! answers the same on both APIs (`store_errors_answer_the_same_everywhere` pins each).

use crate::http::{Response, ResponseBody};
use crate::store::{self, QuotaExceeded};
use serde_json::{json, Value};
use std::io;

/// The `WWW-Authenticate` challenge of the registry routes.
const REALM: &str = "Basic realm=\"shelf\"";

#[derive(Debug)]
pub(super) enum ApiError {
    /// Not found (404). The registry says the message; `/api/v1` gives Gitea's not-found body, whose
    /// `errors` array holds the message, as Gitea's `APIErrorNotFound(err)` does.
    NotFound(&'static str),
    /// 404 naming what is missing ("user does not exist [name: bob]"): the `errors` entry on
    /// `/api/v1`, the message on the text routes.
    Missing(String),
    /// 405. `Allow` lists the methods the path takes (empty: no header, as Gitea's JSON API).
    MethodNotAllowed(&'static str),
    /// 401: credentials were sent and are wrong (even for a public read).
    BadCredentials,
    /// 401: the route needs a kind of credential the request lacks.
    Unauthorized(&'static str),
    /// 429: too many failed sign-ins from this address; retry after this many seconds.
    Throttled(u64),
    /// The caller may not do this to this package: 401 with a challenge on the registry
    /// routes (Gitea's `reqPackageAccess`), 403 on `/api/v1`.
    NoPermission,
    /// 403: a `public-only` token reached for something private.
    PublicOnly,
    /// 403 with a message (scopes, roles, limits).
    Forbidden(String),
    /// 400: the upload's package name, version or file name is invalid (GITEA-COMPAT §3).
    InvalidName,
    InvalidVersion,
    InvalidFileName,
    /// 409: the file is already published.
    FileExists,
    /// 409 with `Retry-After`: the thing asked for is busy (a cleanup run in progress).
    Busy(String),
    /// 403: the upload is larger than the file size limit.
    TooLarge,
    /// 403: an owner quota refused the upload, with Gitea's message (GITEA-COMPAT §10).
    Quota(QuotaExceeded),
    /// 400 with a message.
    BadRequest(String),
    /// 400: the request body could not be read (truncated, malformed framing); 408 when the
    /// client was too slow (a stall, or below the minimum body rate).
    BadBody(io::Error),
    /// 422: Gitea's answer to input that does not validate.
    Unprocessable(String),
    /// 503: the store is shutting down; a retry reaches the next process.
    Unavailable,
    /// 503: the database is being reopened after a storage fault; a retry soon succeeds.
    Recovering,
    /// 507: the disk holding the database is full (or below its reserve): nothing stored.
    InsufficientStorage,
    /// 500. The detail goes to the log, never to the client.
    Internal(String),
}

/// How a route family renders its errors.
#[derive(Clone, Copy)]
pub(super) enum Flavor<'a> {
    /// Plain text (the registry and operations routes).
    Text,
    /// Gitea's JSON errors; `base` is the URL clients reach shelf at (for `url`).
    Json { base: &'a str },
}

impl ApiError {
    /// The not-found answer of the JSON API (whose body names no resource).
    pub(super) const NOT_FOUND: ApiError = ApiError::NotFound("package does not exist");

    /// 404 for an account of `kind` ("user", "organization", "owner") that does not exist or
    /// that the caller may not see: the two are one answer, so nothing tells them apart.
    pub(super) fn no_account(kind: &str, name: &str) -> ApiError {
        ApiError::Missing(format!("{kind} does not exist [name: {name}]"))
    }

    /// The status this error answers with in `flavor`.
    fn status(&self, flavor: Flavor) -> u16 {
        match self {
            ApiError::NotFound(_) | ApiError::Missing(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::BadCredentials | ApiError::Unauthorized(_) => 401,
            ApiError::Throttled(_) => 429,
            ApiError::NoPermission => match flavor {
                Flavor::Text => 401,
                Flavor::Json { .. } => 403,
            },
            ApiError::PublicOnly
            | ApiError::Forbidden(_)
            | ApiError::TooLarge
            | ApiError::Quota(_) => 403,
            ApiError::InvalidName
            | ApiError::InvalidVersion
            | ApiError::InvalidFileName
            | ApiError::BadRequest(_) => 400,
            // The client was too slow (a stall, or below the minimum body rate).
            ApiError::BadBody(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                408
            }
            ApiError::BadBody(_) => 400,
            ApiError::FileExists | ApiError::Busy(_) => 409,
            ApiError::Unprocessable(_) => 422,
            ApiError::Unavailable | ApiError::Recovering => 503,
            ApiError::InsufficientStorage => 507,
            ApiError::Internal(_) => 500,
        }
    }

    /// The message a client reads. Gitea's exact words where Gitea has the error, so scripts
    /// matching on them keep working.
    fn message(&self, flavor: Flavor) -> String {
        let json = matches!(flavor, Flavor::Json { .. });
        match self {
            ApiError::NotFound(_) | ApiError::Missing(_) if json => {
                "The target couldn't be found.".into()
            }
            ApiError::NotFound(msg) => (*msg).into(),
            ApiError::Missing(what) => what.clone(),
            ApiError::MethodNotAllowed(_) => "method not allowed".into(),
            ApiError::BadCredentials if json => "user does not exist".into(),
            ApiError::BadCredentials => "Failed to authenticate user".into(),
            ApiError::Unauthorized(msg) => (*msg).into(),
            ApiError::Throttled(_) if json => "too many failed authentication attempts".into(),
            ApiError::Throttled(_) => "too many failed authentication attempts; retry later".into(),
            ApiError::NoPermission => {
                "user should have specific permission or be a site admin".into()
            }
            ApiError::PublicOnly => {
                "token with public-only scope cannot access private packages".into()
            }
            ApiError::Forbidden(msg)
            | ApiError::Busy(msg)
            | ApiError::BadRequest(msg)
            | ApiError::Unprocessable(msg) => msg.clone(),
            ApiError::InvalidName => "invalid package name".into(),
            ApiError::InvalidVersion => "invalid package version".into(),
            ApiError::InvalidFileName => "invalid filename".into(),
            ApiError::FileExists => "package file already exists".into(),
            ApiError::TooLarge => quota_message(QuotaExceeded::FileSize).into(),
            ApiError::Quota(q) => quota_message(*q).into(),
            ApiError::BadBody(e) => format!("the request body could not be read: {e}"),
            ApiError::Unavailable => "the server is shutting down; retry shortly".into(),
            ApiError::Recovering => {
                "the database is being reopened after a storage fault; retry shortly".into()
            }
            ApiError::InsufficientStorage => {
                "insufficient storage: the disk holding the registry is full; nothing was stored"
                    .into()
            }
            ApiError::Internal(_) => "internal server error".into(),
        }
    }

    /// The response: status, body and headers, in `flavor`.
    pub(super) fn render(self, flavor: Flavor) -> Response {
        if let ApiError::Internal(detail) = &self {
            log::error!("internal error: {detail}");
        }
        let status = self.status(flavor);
        let message = self.message(flavor);
        let mut resp = match flavor {
            Flavor::Text => Response::text(status, &message),
            Flavor::Json { base } => {
                let url = format!("{base}/api/swagger");
                let body = match &self {
                    ApiError::NotFound(what) => json!({
                        "errors": [what],
                        "message": message,
                        "url": url,
                    }),
                    ApiError::Missing(what) => json!({
                        "errors": [what],
                        "message": message,
                        "url": url,
                    }),
                    _ => json!({ "message": message, "url": url }),
                };
                json_response(status, &body)
            }
        };
        match self {
            ApiError::MethodNotAllowed(allow) if !allow.is_empty() => {
                resp = resp.with_header("Allow", allow);
            }
            ApiError::Throttled(secs) => {
                resp = resp.with_header("Retry-After", secs.to_string());
            }
            ApiError::NoPermission if matches!(flavor, Flavor::Text) => {
                resp = resp.with_header("WWW-Authenticate", REALM);
            }
            ApiError::Busy(_) => resp = resp.with_header("Retry-After", "5"),
            ApiError::Unavailable | ApiError::Recovering => {
                resp = resp.with_header("Retry-After", "1")
            }
            _ => {}
        }
        resp
    }
}

/// A JSON answer as Gitea's API gives it.
pub(super) fn json_response(status: u16, body: &Value) -> Response {
    let mut r = Response::new(status)
        .with_header("Content-Type", "application/json;charset=utf-8")
        .with_header("X-Content-Type-Options", "nosniff");
    r.body = ResponseBody::Bytes(body.to_string().into_bytes());
    r
}

/// Gitea's exact plain-text quota messages (GITEA-COMPAT §9).
fn quota_message(q: QuotaExceeded) -> &'static str {
    match q {
        QuotaExceeded::Count => "maximum allowed package count exceeded",
        QuotaExceeded::FileSize => "maximum allowed package type size exceeded",
        QuotaExceeded::Total => "maximum allowed package storage quota exceeded",
    }
}

/// The one mapping of storage outcomes: what the client did wrong is its 4xx, on every route;
/// a storage failure is a 500 whose detail only the log sees.
impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        match e {
            store::Error::Body(io) => ApiError::BadBody(io),
            store::Error::Rejected(msg) => ApiError::BadRequest(msg),
            // The file size limit is one outcome, whichever check met it first.
            store::Error::Quota(QuotaExceeded::FileSize) => ApiError::TooLarge,
            store::Error::Quota(q) => ApiError::Quota(q),
            store::Error::Closed => ApiError::Unavailable,
            store::Error::Recovering => ApiError::Recovering,
            store::Error::Full => ApiError::InsufficientStorage,
            // redb met the full disk itself (the reserve was off, or another process filled it).
            e if e.fault() == Some(crate::store::Fault::Full) => ApiError::InsufficientStorage,
            // An operation that met the latch of an I/O error, or the database closed under it
            // for the reopen: a retry reaches the reopened database.
            e if e.fault() == Some(crate::store::Fault::Io) => {
                log::warn!("answered 503 while the database is reopened: {e}");
                ApiError::Recovering
            }
            e @ (store::Error::Db(..) | store::Error::InUse(_) | store::Error::Corrupt(_)) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &Response) -> String {
        match &r.body {
            ResponseBody::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        }
    }

    fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every storage outcome, decided once: the same status on the registry routes and on
    /// `/api/v1` (which used to answer every one of them with 500).
    #[test]
    fn store_errors_answer_the_same_everywhere() {
        type Case = (fn() -> store::Error, u16, &'static str);
        let cases: Vec<Case> = vec![
            (
                || store::Error::Body(io::Error::new(io::ErrorKind::UnexpectedEof, "cut")),
                400,
                "the request body could not be read: cut",
            ),
            (
                || store::Error::Body(io::Error::new(io::ErrorKind::TimedOut, "too slow")),
                408,
                "the request body could not be read: too slow",
            ),
            (
                || store::Error::Rejected("checksum mismatch".into()),
                400,
                "checksum mismatch",
            ),
            (
                || store::Error::Quota(QuotaExceeded::Total),
                403,
                "maximum allowed package storage quota exceeded",
            ),
            (
                || store::Error::Quota(QuotaExceeded::FileSize),
                403,
                "maximum allowed package type size exceeded",
            ),
            (
                || store::Error::Quota(QuotaExceeded::Count),
                403,
                "maximum allowed package count exceeded",
            ),
            (
                || store::Error::Closed,
                503,
                "the server is shutting down; retry shortly",
            ),
            (
                || store::Error::Recovering,
                503,
                "the database is being reopened after a storage fault; retry shortly",
            ),
            (
                || store::Error::Full,
                507,
                "insufficient storage: the disk holding the registry is full; nothing was stored",
            ),
            (
                || {
                    store::Error::Db(
                        "committing",
                        Box::new(redb::Error::Io(io::Error::from_raw_os_error(28))),
                    )
                },
                507,
                "insufficient storage: the disk holding the registry is full; nothing was stored",
            ),
            (
                || store::Error::Corrupt("bad record".into()),
                500,
                "internal server error",
            ),
            (
                || store::Error::InUse("/x.redb".into()),
                500,
                "internal server error",
            ),
            (
                || {
                    store::Error::Db(
                        "reading",
                        Box::new(redb::Error::Io(io::Error::other("sector 7 unreadable"))),
                    )
                },
                // redb latches any I/O error: the store reopens the database, and a retry
                // reaches it.
                503,
                "the database is being reopened after a storage fault; retry shortly",
            ),
            (
                || {
                    store::Error::Db(
                        "reading",
                        Box::new(redb::Error::Corrupted("bad page".into())),
                    )
                },
                500,
                "internal server error",
            ),
        ];
        for (make, status, message) in cases {
            let text = ApiError::from(make()).render(Flavor::Text);
            assert_eq!((text.status, body(&text).as_str()), (status, message));
            let json = ApiError::from(make()).render(Flavor::Json { base: "http://h" });
            assert_eq!(json.status, status);
            let v: Value = serde_json::from_str(&body(&json)).expect("JSON");
            assert_eq!(v["message"], message);
            assert_eq!(v["url"], "http://h/api/swagger");
            // Nothing of a storage failure's detail reaches the client.
            assert!(!body(&json).contains("bad record") && !body(&json).contains("sector 7"));
        }
    }

    #[test]
    fn flavours_differ_where_gitea_does() {
        let text = ApiError::NoPermission.render(Flavor::Text);
        assert_eq!(text.status, 401);
        assert_eq!(header(&text, "www-authenticate"), Some(REALM));
        let json = ApiError::NoPermission.render(Flavor::Json { base: "" });
        assert_eq!(json.status, 403);
        assert_eq!(header(&json, "www-authenticate"), None);

        let text = ApiError::NotFound("package file does not exist").render(Flavor::Text);
        assert_eq!(body(&text), "package file does not exist");
        let json = ApiError::NOT_FOUND.render(Flavor::Json { base: "" });
        let v: Value = serde_json::from_str(&body(&json)).expect("JSON");
        assert_eq!(v["message"], "The target couldn't be found.");
        assert_eq!(v["errors"], json!(["package does not exist"]));

        let r = ApiError::MethodNotAllowed("DELETE").render(Flavor::Text);
        assert_eq!((r.status, header(&r, "allow")), (405, Some("DELETE")));
        let r = ApiError::MethodNotAllowed("").render(Flavor::Json { base: "" });
        assert_eq!((r.status, header(&r, "allow")), (405, None));
        let r = ApiError::Busy("later".into()).render(Flavor::Json { base: "" });
        assert_eq!((r.status, header(&r, "retry-after")), (409, Some("5")));
    }
}
