//! The HTTP API: the generic registry routes (`registry.rs`, plain-text errors as Gitea's
//! package routes) and the JSON API under `/api/v1` (`v1.rs`, JSON errors), with name rules
//! (`names.rs`) and Range handling (`ranges.rs`).
//!
//! Works on `http::Request`/`http::Response` values and never touches a socket; asks `auth` who
//! is calling and `store` for data, and knows no redb type.

mod admin;
mod bundles;
mod error;
mod limits;
mod monitor;
mod ops;
mod pages;
mod ranges;
mod reference;
mod registry;
pub mod routes;
mod v1;

pub use bundles::OWNER_MISSING;
pub use limits::{
    cleanup_report_json, parse_limit, quota_json, rule_from_json, rule_json, ALL_PACKAGES,
};
pub use ops::{check_json, stats_json};
#[doc(hidden)]
pub use ranges::{parse_range, RangeSpec};

/// For the fuzz targets (`fuzzing.rs`): the JSON body readers of quotas and cleanup rules.
#[doc(hidden)]
pub fn fuzz_json_bodies(m: &serde_json::Map<String, serde_json::Value>) {
    let _ = limits::quota_from_json(m);
    let _ = limits::rule_from_json(m);
}

use crate::auth::{self, AuthError, Caller, Credentials, Limiter};
use crate::http::{Request, Response};
use crate::metrics::Metrics;
use crate::store::{self, AuditRecord, ReadyProbe, Store};
use routes::{Family, Route};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Largest accepted upload in bytes (403 beyond, as Gitea's LIMIT_SIZE_GENERIC).
    pub max_file_size: Option<u64>,
    /// The URL clients reach shelf at (for `html_url` and `Link`); else taken from `Host`.
    pub external_url: Option<String>,
    /// Failed sign-ins in a row one address may make before it gets 429 (0: the default).
    pub auth_failure_burst: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the real client (for throttling and the
    /// audit log); for any other peer the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

pub struct Api {
    store: Arc<Store>,
    config: ApiConfig,
    limiter: Limiter,
    /// Served at `/metrics` when set.
    metrics: Option<Arc<Metrics>>,
    /// `/readyz`: at most one durable write per second, whatever the probe rate.
    ready: ReadyProbe,
}

impl Api {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        Api {
            store,
            limiter: if config.auth_failure_burst == 0 {
                Limiter::default()
            } else {
                Limiter::new(config.auth_failure_burst)
            },
            config,
            metrics: None,
            ready: ReadyProbe::new(Duration::from_secs(1), Duration::from_secs(5)),
        }
    }

    /// Serves `metrics` at `GET /metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Api {
        self.metrics = Some(metrics);
        self
    }

    pub fn handle(&self, req: &mut Request) -> Response {
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (req.target.clone(), String::new()),
        };
        let mut who = None;
        let response = match routes::route(&req.method, &path) {
            Route::Ops(op) => monitor::serve(self, req, op),
            Route::NotAllowed(Family::Ops, allow) => monitor::not_allowed(allow),
            Route::Generic(route) => registry::handle(self, req, route, &query, &mut who),
            Route::NotAllowed(Family::Registry, allow) => registry::not_allowed(allow),
            Route::NotFound(Family::Registry | Family::Ops) => registry::not_found(),
            Route::Page(crate::web::PageRoute::Upload(owner)) if req.method == "POST" => {
                pages::upload(self, req, &owner)
            }
            Route::Page(page) => {
                let base = self.base_url(req);
                // The forms read the body; it goes back afterwards, so that the connection
                // can carry the next request.
                let mut body = std::mem::take(&mut req.body);
                let seen: &Request = req;
                let audit =
                    |actor: &str, action: &str, owner: &str, target: &str, outcome: &str| {
                        if outcome == "ok" {
                            self.audit(seen, actor, action, owner, target, outcome);
                        } else {
                            self.audit_refusal(seen, actor, action, owner, target, outcome);
                        }
                    };
                let ctx = crate::web::Ctx {
                    store: &self.store,
                    base: &base,
                    req: seen,
                    query: &query,
                    limiter: &self.limiter,
                    ip: self.client_ip(seen),
                    audit: &audit,
                };
                let response = crate::web::serve(&ctx, page, &mut body);
                req.body = body;
                response
            }
            Route::NotAllowed(Family::Page, allow) => crate::web::not_allowed(allow),
            route => v1::handle(self, req, route, &path, &query, &mut who),
        };
        // A page names its signed-in user itself.
        let user = who.or_else(|| response.user.clone());
        Response { user, ..response }
    }

    /// Who is calling: credentials from `Authorization`, else the `token`/`access_token` query
    /// parameter. `Ok(None)` is anonymous; present but wrong credentials are an error (and an
    /// audit entry; the secret itself is never recorded).
    fn caller(&self, req: &Request, query: &str) -> Result<Option<Caller>, AuthError> {
        let mut creds = auth::parse_authorization(req.header("authorization"));
        if creds == Credentials::Anonymous {
            if let Some(t) = auth::query_token(query) {
                creds = Credentials::Token(t);
            }
        }
        let result = auth::authenticate(&self.store, &self.limiter, self.client_ip(req), &creds);
        let outcome = match &result {
            Err(AuthError::Invalid) => Some("invalid credentials"),
            // One entry per run of refusals, not one per request of a flood.
            Err(AuthError::Throttled(t)) if t.first => Some("throttled"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            // The user name of a failed Basic login is recorded only when it names an account:
            // a client that swapped user and secret must not leave the secret in the log.
            let actor = match &creds {
                Credentials::Basic { user, secret }
                    if !secret.is_empty() && secret != "x-oauth-basic" =>
                {
                    match self.store.get_user(user) {
                        Ok(Some(u)) => u.login,
                        _ => "(unknown user)".to_string(),
                    }
                }
                _ => String::new(),
            };
            self.audit_refusal(req, &actor, "auth.failure", "", "", outcome);
        }
        result
    }

    /// Records a refusal of this request: counted with like refusals from the same address
    /// (`Store::audit_refusal`), so that a flood of them cannot grow the log.
    fn audit_refusal(
        &self,
        req: &Request,
        actor: &str,
        action: &str,
        owner: &str,
        target: &str,
        outcome: &str,
    ) {
        self.store
            .audit_refusal(self.audit_record(req, actor, action, owner, target, outcome));
    }

    /// Records an audit entry for this request.
    fn audit(
        &self,
        req: &Request,
        actor: &str,
        action: &str,
        owner: &str,
        target: &str,
        outcome: &str,
    ) {
        self.store
            .audit(self.audit_record(req, actor, action, owner, target, outcome));
    }

    fn audit_record(
        &self,
        req: &Request,
        actor: &str,
        action: &str,
        owner: &str,
        target: &str,
        outcome: &str,
    ) -> AuditRecord {
        AuditRecord {
            time: store::now(),
            actor: actor.to_string(),
            addr: self.client_ip(req).to_string(),
            action: action.to_string(),
            owner: store::fold_case(owner),
            target: target.to_string(),
            outcome: outcome.to_string(),
        }
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left were
    /// written by the client and prove nothing).
    fn client_ip(&self, req: &Request) -> std::net::IpAddr {
        let peer = req.peer.ip();
        if !self.config.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<&str> = req
            .headers
            .get_all("x-forwarded-for")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        forwarded
            .iter()
            .rev()
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .find(|ip| !self.config.trusted_proxies.contains(ip))
            .unwrap_or(peer)
    }

    /// The base URL clients use, without a trailing slash.
    fn base_url(&self, req: &Request) -> String {
        match &self.config.external_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => {
                let host = req
                    .header("host")
                    .filter(|h| {
                        h.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
                    })
                    .unwrap_or("localhost");
                let scheme = if req.secure { "https" } else { "http" };
                format!("{scheme}://{host}")
            }
        }
    }
}
