//! The HTTP API: the generic registry routes (`registry.rs`, plain-text errors as Gitea's
//! package routes) and the JSON API under `/api/v1` (`v1.rs`, JSON errors), with name rules
//! (`names.rs`) and Range handling (`ranges.rs`).
//!
//! Works on `http::Request`/`http::Response` values and never touches a socket; asks `auth` who
//! is calling and `store` for data, and knows no redb type.

mod names;
mod ranges;
mod registry;
mod v1;

pub use names::{
    percent_decode, percent_encode, valid_file_name, valid_owner_name, valid_package_name,
    valid_version, MAX_COMPONENT_BYTES,
};

use crate::auth::{self, AuthError, Credentials};
use crate::http::{Request, Response};
use crate::store::{Store, UserRecord};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// Largest accepted upload in bytes (403 beyond, as Gitea's LIMIT_SIZE_GENERIC).
    pub max_file_size: Option<u64>,
    /// The URL clients reach shelf at (for `html_url` and `Link`); else taken from `Host`.
    pub external_url: Option<String>,
}

pub struct Api {
    store: Arc<Store>,
    config: ApiConfig,
}

impl Api {
    pub fn new(store: Arc<Store>, config: ApiConfig) -> Api {
        Api { store, config }
    }

    pub fn handle(&self, req: &mut Request) -> Response {
        let (path, query) = match req.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (req.target.clone(), String::new()),
        };
        let mut who = None;
        let response = if path == "/api/v1" || path.starts_with("/api/v1/") {
            v1::handle(self, req, &path, &query, &mut who)
        } else {
            registry::handle(self, req, &path, &query, &mut who)
        };
        Response {
            user: who,
            ..response
        }
    }

    /// Who is calling: credentials from `Authorization`, else the `token`/`access_token` query
    /// parameter. `Ok(None)` is anonymous; present but wrong credentials are an error.
    fn caller(&self, req: &Request, query: &str) -> Result<Option<UserRecord>, AuthError> {
        let mut creds = auth::parse_authorization(req.header("authorization"));
        if creds == Credentials::Anonymous {
            if let Some(t) = auth::query_token(query) {
                creds = Credentials::Token(t);
            }
        }
        auth::authenticate(&self.store, &creds)
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
                format!("http://{host}")
            }
        }
    }
}
