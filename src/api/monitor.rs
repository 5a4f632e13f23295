//! Operations endpoints outside `/api/`: `GET /metrics` (Prometheus text format, optionally
//! behind a bearer token), `GET /healthz` (the process answers; no database access) and
//! `GET /readyz` (the database takes a durable write). HEAD works on each. None of them reads
//! credentials of users, so they never count as failed sign-ins.

use super::routes::Op;
use super::Api;
use crate::http::{Request, Response, ResponseBody};
use crate::metrics::CONTENT_TYPE;

/// Answers an operations path (`routes::Op`).
pub(super) fn serve(api: &Api, req: &Request, op: Op) -> Response {
    let resp = match op {
        Op::Health => Response::text(200, "ok\n"),
        Op::Reference => return super::reference::page(&api.base_url(req)),
        Op::OpenApi => return super::reference::document(&api.base_url(req)),
        Op::Ready => match api.ready.check(&api.store) {
            Ok(()) => Response::text(200, "ready\n"),
            Err(reason) => Response::text(503, &format!("not ready: {reason}\n")),
        },
        Op::Metrics => match &api.metrics {
            None => Response::text(404, "metrics are not enabled\n"),
            Some(m) if !m.authorized(req.header("authorization")) => {
                Response::text(401, "a bearer token is required for /metrics\n")
                    .with_header("WWW-Authenticate", "Bearer realm=\"shelf metrics\"")
            }
            Some(m) => Response {
                headers: vec![("Content-Type".to_string(), CONTENT_TYPE.to_string())],
                body: ResponseBody::Bytes(m.render().into_bytes()),
                ..Response::new(200)
            },
        },
    };
    resp.with_header("Cache-Control", "no-store")
}

/// An operations path with a method other than GET or HEAD.
pub(super) fn not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow)
}
