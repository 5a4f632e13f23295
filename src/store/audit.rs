//! The audit log: who did what, from where, with what outcome. Entries are queued in memory and
//! written with the counters (every 2 s and at a clean close), keyed by time so retention is a
//! range delete; they live in the same file, so backups carry them.

use super::*;
use redb::ReadableDatabase;
/// The last sequence number handed out.
static LAST_SEQ: AtomicU64 = AtomicU64::new(0);

/// A sequence number that grows across restarts: the wall clock in microseconds, bumped past
/// the last one handed out, so that two entries never share a key.
fn next_seq() -> u64 {
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST_SEQ.load(Ordering::Relaxed);
    loop {
        let next = clock.max(prev + 1);
        match LAST_SEQ.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// Filters for `list_audit`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub owner: Option<String>,
    pub action: Option<String>,
    pub actor: Option<String>,
}

impl Store {
    /// Records an event (written within 2 s, or at close).
    pub fn audit(&self, rec: AuditRecord) {
        if let Ok(mut q) = self.audit_queue.lock() {
            // Bounded: an attack that fails logins faster than they can be written does not
            // grow memory without end; the counts of dropped entries are logged.
            if q.len() < 100_000 {
                q.push(rec);
            } else {
                log::warn!("audit queue full; an entry for {} was dropped", rec.action);
            }
        }
    }

    /// Sets how long entries are kept, in days (at least 1).
    pub fn set_audit_retention_days(&self, days: u64) {
        self.audit_retention
            .store(days.max(1) * 86_400, Ordering::Relaxed);
    }

    /// Entries matching `filter`, newest first, one page; and how many match.
    pub fn list_audit(
        &self,
        filter: &AuditFilter,
        page: u64,
        limit: u64,
    ) -> Result<Page<AuditRecord>> {
        let pending: Vec<AuditRecord> = self
            .audit_queue
            .lock()
            .map(|q| q.clone())
            .unwrap_or_default();
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let table = txn.open_table(AUDIT).ctx("opening audit")?;
        let owner = filter.owner.as_deref().map(fold_case);
        let actor = filter.actor.as_deref().map(fold_case);
        let keep = |r: &AuditRecord| {
            owner.as_deref().is_none_or(|o| r.owner == o)
                && actor.as_deref().is_none_or(|a| fold_case(&r.actor) == a)
                && filter
                    .action
                    .as_deref()
                    .is_none_or(|a| r.action == a || r.action.starts_with(&format!("{a}.")))
        };
        let skip = page.saturating_sub(1).saturating_mul(limit);
        let mut total = 0u64;
        let mut items = Vec::new();
        let mut take = |r: AuditRecord| {
            if keep(&r) {
                if total >= skip && (items.len() as u64) < limit {
                    items.push(r);
                }
                total += 1;
            }
        };
        for r in pending.into_iter().rev() {
            take(r);
        }
        for row in table.iter().ctx("listing audit")?.rev() {
            take(decode(row.ctx("listing audit")?.1.value())?);
        }
        Ok(Page { total, items })
    }
}

/// Writes queued entries and drops those older than `oldest` (unix seconds).
pub(super) fn write_entries(
    txn: &WriteTransaction,
    entries: &[AuditRecord],
    oldest: u64,
) -> Result<()> {
    let mut table = txn.open_table(AUDIT).ctx("opening audit")?;
    for rec in entries {
        table
            .insert((rec.time, next_seq()), encode(rec)?.as_slice())
            .ctx("writing an audit entry")?;
    }
    for row in table
        .extract_from_if((0u64, 0u64)..(oldest, 0u64), |_, _| true)
        .ctx("pruning the audit log")?
    {
        row.ctx("pruning the audit log")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    fn entry(action: &str, owner: &str) -> AuditRecord {
        AuditRecord {
            time: now(),
            actor: "ann".into(),
            addr: "127.0.0.1".into(),
            action: action.into(),
            owner: owner.into(),
            target: "t".into(),
            outcome: "ok".into(),
        }
    }

    #[test]
    fn entries_are_kept_filtered_and_pruned() {
        let t = temp_store();
        let s = &t.store;
        s.audit(entry("package.publish", "acme"));
        s.audit(entry("package.delete", "acme"));
        s.audit(entry("auth.failure", ""));
        // visible before and after the flush
        let f = AuditFilter {
            owner: Some("ACME".into()),
            ..AuditFilter::default()
        };
        assert_eq!(s.list_audit(&f, 1, 50).expect("list").total, 2);
        s.flush_pending().expect("flush");
        assert_eq!(s.list_audit(&f, 1, 50).expect("list").total, 2);
        let f = AuditFilter {
            action: Some("package".into()),
            ..AuditFilter::default()
        };
        let page = s.list_audit(&f, 1, 1).expect("list");
        assert_eq!((page.total, page.items.len()), (2, 1));
        assert_eq!(page.items[0].action, "package.delete", "newest first");
        // an entry older than the retention is dropped at the next write
        let mut old = entry("package.publish", "acme");
        old.time = 1;
        s.audit(old);
        s.flush_pending().expect("flush");
        assert_eq!(
            s.list_audit(&AuditFilter::default(), 1, 50)
                .expect("list")
                .total,
            3
        );
    }
}
