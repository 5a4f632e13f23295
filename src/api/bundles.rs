//! Air-gap bundle endpoints (site admins only; `admin.rs` checks the caller first):
//! `GET /api/v1/admin/manifest?owner=` (what this server holds), `POST /api/v1/admin/export`
//! (JSON filters in, the tar streamed out with its exact Content-Length) and
//! `PUT /api/v1/admin/import` (the tar streamed in, a JSON report out). The work is
//! `crate::bundle`'s, the same code the offline commands run.

use super::error::{json_response, ApiError};
use super::v1::query_param;
use super::Api;
use crate::bundle::{self, ExportRequest, ExportStream, ImportError};
use crate::http::{BodySource, Request, Response, ResponseBody};
use serde_json::{Map, Value};
use std::io::{self, Read};

/// Largest export request (it may carry the other side's whole manifest).
const MAX_EXPORT_BODY: u64 = bundle::MAX_MANIFEST + (1 << 20);

struct Tar(ExportStream);

impl BodySource for Tar {
    fn next_slice(&mut self) -> io::Result<&[u8]> {
        self.0.next_slice()
    }
}

fn source(api: &Api) -> String {
    bundle::source_name(api.store.path())
}

/// Set on a manifest for an owner this side does not have (the manifest is empty).
pub const OWNER_MISSING: &str = "X-Shelf-Owner-Missing";

fn owner_exists(api: &Api, owner: &str) -> Result<(), ApiError> {
    match api.store.get_user(owner)? {
        Some(_) => Ok(()),
        None => Err(ApiError::no_account("owner", owner)),
    }
}

pub(super) fn manifest(api: &Api, query: &str) -> Result<Response, ApiError> {
    let owner = query_param(query, "owner").filter(|o| !o.is_empty());
    // An owner this side does not have yet holds nothing: an empty manifest, so the first
    // export for a fresh side works, and a header that says why it is empty.
    let missing = match &owner {
        Some(o) => api.store.get_user(o)?.is_none(),
        None => false,
    };
    let m = bundle::holdings(&api.store, owner.as_deref(), &source(api))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let value = serde_json::to_value(&m).map_err(|e| ApiError::Internal(e.to_string()))?;
    let r = json_response(200, &value);
    Ok(if missing {
        r.with_header(OWNER_MISSING, "true")
    } else {
        r
    })
}

fn opt_str(m: &Map<String, Value>, k: &str) -> Result<Option<String>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::Unprocessable(format!("{k} must be a string"))),
    }
}

pub(super) fn export(api: &Api, req: &mut Request) -> Result<Response, ApiError> {
    let mut body = Vec::new();
    (&mut req.body)
        .take(MAX_EXPORT_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::BadRequest(format!("the request body could not be read: {e}")))?;
    if body.len() as u64 > MAX_EXPORT_BODY {
        return Err(ApiError::BadRequest("export request too large".into()));
    }
    let m = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(ApiError::Unprocessable("expected a JSON object".into())),
        Err(e) => return Err(ApiError::Unprocessable(format!("invalid JSON: {e}"))),
    };
    drop(body);
    let owner =
        opt_str(&m, "owner")?.ok_or_else(|| ApiError::Unprocessable("owner is required".into()))?;
    let against = match m.get("against") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let bytes = serde_json::to_vec(v).map_err(|e| ApiError::Internal(e.to_string()))?;
            Some(
                bundle::parse_manifest(&bytes)
                    .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
            )
        }
    };
    let request = ExportRequest {
        owner,
        package: opt_str(&m, "package")?,
        version: opt_str(&m, "version")?,
        since: opt_str(&m, "since")?,
        against,
    };
    owner_exists(api, &request.owner)?;
    let export = bundle::Export::prepare(&api.store, &request, &source(api))
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let files = export.manifest.total_files;
    let left_out = export.manifest.left_out;
    let bytes = export.manifest.total_bytes;
    let len = export.len();
    let mut resp = Response::new(200)
        .with_header("Content-Type", "application/x-tar")
        .with_header(
            "Content-Disposition",
            format!("attachment; filename=\"{}.tar\"", request.owner),
        )
        .with_header("X-Shelf-Files", files.to_string())
        .with_header("X-Shelf-Bytes", bytes.to_string())
        .with_header("X-Shelf-Left-Out", left_out.to_string());
    resp.body = ResponseBody::Source {
        len,
        source: Box::new(Tar(export.into_stream())),
    };
    Ok(resp)
}

pub(super) fn import(api: &Api, req: &mut Request, actor: &str) -> Result<Response, ApiError> {
    let addr = api.client_ip(req).to_string();
    let result = bundle::import(
        &api.store,
        &mut req.body,
        bundle::Importer {
            actor,
            addr: &addr,
            background_digests: true,
        },
    );
    match result {
        Ok(report) => {
            let value =
                serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(json_response(200, &value))
        }
        Err(e) => {
            // Read the rest so the client, still sending, gets this answer rather than a reset.
            let _ = io::copy(&mut req.body, &mut io::sink());
            match e {
                ImportError::Store { .. } => Err(ApiError::Internal(e.to_string())),
                refused => Err(ApiError::Unprocessable(refused.to_string())),
            }
        }
    }
}
