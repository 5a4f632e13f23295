//! Operations endpoints for site admins: an online backup streamed from one snapshot, the
//! integrity check, and storage statistics (what `shelf backup|check|stats --server` call).

use super::admin::registry_admin;
use super::error::{json_response, ApiError};
use super::Api;
use crate::auth::{Access, Caller};
use crate::http::{Request, Response, ResponseBody};
use crate::store::{self, AuditRecord, CheckReport, Stats};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

type Res = Result<Response, ApiError>;

fn time(secs: u64) -> String {
    crate::dates::rfc3339_secs(secs)
}

/// 1 MiB blocks between the backup thread and the connection: enough to keep both busy,
/// bounded so a slow client costs at most this much memory.
const BLOCKS_IN_FLIGHT: usize = 4;

/// `GET /api/v1/admin/backup`: streams a backup of the whole registry (see
/// `store::backup`). It holds every account's password and token hashes and every package,
/// so it takes a site admin's token with `write:admin` and `read:package`, not `public-only`.
pub(super) fn backup(api: &Api, req: &Request, caller: &Option<Caller>) -> Res {
    let c = registry_admin(caller, Access::Write, Some(Access::Read))?;
    let store = Arc::clone(&api.store);
    // A stalled client cannot keep the store open past shutdown: the server cuts its
    // connection after the grace period, the reader goes, and the next write here fails.
    let (mut w, reader) = crate::pipe::pipe(BLOCKS_IN_FLIGHT);
    let actor = c.user.login.clone();
    let addr = api.client_ip(req).to_string();
    std::thread::Builder::new()
        .name("shelf-backup".into())
        .spawn(move || {
            let started = Instant::now();
            let result = store.backup(&mut w);
            let outcome = match &result {
                Ok(s) => {
                    let secs = started.elapsed().as_secs_f64();
                    log::info!(
                        "backup for {actor}: {} rows, {} chunks, {} bytes in {secs:.1} s ({:.0} MB/s)",
                        s.rows,
                        s.chunks,
                        s.bytes,
                        s.bytes as f64 / 1e6 / secs.max(1e-9)
                    );
                    if let Err(e) = w.finish() {
                        log::warn!("backup for {actor} ended early: {e}");
                    }
                    format!("ok: {} files, {} bytes", s.files, s.bytes)
                }
                Err(store::Error::Body(e)) => {
                    log::warn!("backup for {actor} ended early: {e}");
                    // The client must see a cut stream, never a clean end.
                    w.fail(e.to_string());
                    "interrupted".to_string()
                }
                Err(e) => {
                    log::error!("backup for {actor} failed: {e}");
                    w.fail(e.to_string());
                    format!("failed: {e}")
                }
            };
            store.audit(AuditRecord {
                time: store::now(),
                actor,
                addr,
                action: "admin.backup".into(),
                owner: String::new(),
                target: String::new(),
                outcome,
            });
        })
        .map_err(|e| ApiError::Internal(format!("cannot start the backup: {e}")))?;
    let mut r = Response::new(200)
        .with_header("Content-Type", "application/octet-stream")
        .with_header(
            "Content-Disposition",
            format!(
                "attachment; filename=\"shelf-{}.backup\"",
                time(store::now())
                    .replace([':', '-'], "")
                    .trim_end_matches('Z')
            ),
        )
        .with_header("Cache-Control", "no-store");
    r.body = ResponseBody::Stream {
        reader: Box::new(reader),
        chunked: true,
    };
    Ok(r)
}

/// `GET /api/v1/admin/check`: the integrity check, from one snapshot (`read:admin`).
pub(super) fn check(api: &Api, caller: &Option<Caller>) -> Res {
    registry_admin(caller, Access::Read, None)?;
    let started = Instant::now();
    let report = api.store.check()?;
    Ok(json_response(
        200,
        &check_json(&report, started.elapsed().as_secs_f64()),
    ))
}

pub fn check_json(r: &CheckReport, seconds: f64) -> Value {
    json!({
        "files": r.files,
        "contents": r.contents,
        "chunks": r.chunks,
        "pins": r.pins,
        "logical_bytes": r.logical_bytes,
        "physical_bytes": r.physical_bytes,
        "seconds": seconds,
        "faults": r.faults,
    })
}

/// `GET /api/v1/admin/stats`: storage statistics and the scrub's progress (`read:admin`).
pub(super) fn stats(api: &Api, caller: &Option<Caller>) -> Res {
    registry_admin(caller, Access::Read, None)?;
    let stats = api.store.stats()?;
    Ok(json_response(200, &stats_json(&stats, &api.store)))
}

pub fn stats_json(s: &Stats, store: &store::Store) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    let st = store.scrub_state();
    let last = st.last_pass_end.load(Relaxed);
    if let Value::Object(m) = &mut v {
        m.insert(
            "scrub".into(),
            json!({
                "running": st.running.load(Relaxed),
                "progress": st.progress(),
                "passes_completed": st.passes_completed.load(Relaxed),
                "last_pass_end": (last > 0).then(|| time(last)),
                "chunks_checked": st.chunks_total.load(Relaxed),
                "bytes_checked": st.bytes_total.load(Relaxed),
                "damaged_chunks_found": st.faults_total.load(Relaxed),
                "recent_damaged_chunks": st.recent_faults.lock().map(|r| r.clone()).unwrap_or_default(),
            }),
        );
    }
    v
}
