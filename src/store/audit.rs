//! The audit log: who did what, from where, with what outcome. Entries are queued in memory and
//! written with the counters (every 2 s and at a clean close), keyed by time so retention is a
//! range delete; they live in the same file, so backups carry them.
//!
//! Nothing a client sends may grow the log without bound:
//! - every field of an entry is cut to `MAX_FIELD_BYTES`, and the queue is bounded both in
//!   entries (`MAX_QUEUED`) and in bytes (`MAX_QUEUED_BYTES`);
//! - refusals (failed sign-ins, refused writes: what anyone can cause without an account) go
//!   through `audit_refusal`, which keeps, per minute-long window, the first refusal of each
//!   run — same source, actor, action and outcome — as it is and counts the rest of the run
//!   into one summary entry written when the window closes. A source is an IPv4 address or an
//!   IPv6 /64 (what one host usually holds, as the sign-in limiter counts). One source opens
//!   at most `MAX_RUNS_PER_SOURCE` runs a window (more actors or actions are counted into one
//!   entry for the source), and at most `MAX_REFUSAL_RUNS` runs are tracked in all; refusals
//!   from sources past them are counted per action into one entry each. So one source adds at
//!   most `2 × MAX_RUNS_PER_SOURCE + 1` entries a minute, and all sources together at most
//!   `3 × MAX_REFUSAL_RUNS + actions`, each at most seven capped fields.

use super::*;
use redb::ReadableDatabase;
use std::collections::BTreeMap;

/// Longest field of an entry, in bytes; longer text is cut at a character boundary and marked.
pub const MAX_FIELD_BYTES: usize = 256;
/// Most entries waiting to be written.
const MAX_QUEUED: usize = 100_000;
/// Most bytes (of field text) waiting to be written.
const MAX_QUEUED_BYTES: usize = 8 << 20;
/// Length of a refusal window, in seconds.
pub const REFUSAL_WINDOW_SECS: u64 = 60;
/// Runs of refusals (source, actor, action, outcome) tracked individually per window.
pub const MAX_REFUSAL_RUNS: usize = 64;
/// Runs one source may open per window, so that one host cannot take every slot.
pub const MAX_RUNS_PER_SOURCE: usize = 4;
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

/// The entries waiting to be written, and their size in bytes.
#[derive(Default)]
pub(super) struct AuditQueue {
    entries: Vec<AuditRecord>,
    bytes: usize,
}

impl AuditQueue {
    /// Takes every waiting entry.
    pub(super) fn take(&mut self) -> Vec<AuditRecord> {
        self.bytes = 0;
        std::mem::take(&mut self.entries)
    }
}

/// The bytes an entry holds in memory, roughly: its text plus a fixed overhead.
fn entry_bytes(r: &AuditRecord) -> usize {
    64 + r.actor.len()
        + r.addr.len()
        + r.action.len()
        + r.owner.len()
        + r.target.len()
        + r.outcome.len()
}

/// `s` cut to at most `MAX_FIELD_BYTES` bytes, at a character boundary, with a marker saying how
/// long it was.
fn cap_field(s: &mut String) {
    if s.len() <= MAX_FIELD_BYTES {
        return;
    }
    let marker = format!("…({} bytes)", s.len());
    let mut end = MAX_FIELD_BYTES.saturating_sub(marker.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(&marker);
}

/// `rec` with every field capped.
fn capped(mut rec: AuditRecord) -> AuditRecord {
    for field in [
        &mut rec.actor,
        &mut rec.addr,
        &mut rec.action,
        &mut rec.owner,
        &mut rec.target,
        &mut rec.outcome,
    ] {
        cap_field(field);
    }
    rec
}

/// One run of like refusals within the current window.
struct RefusalRun {
    /// The first refusal, as recorded.
    first: AuditRecord,
    /// Refusals after the first.
    more: u64,
    /// Whether every later refusal had the first one's owner and target.
    same_target: bool,
    /// Whether every later refusal came from the first one's address (not only its /64).
    same_addr: bool,
}

/// One source's share of the window.
#[derive(Default)]
struct SourceCount {
    /// Runs it opened.
    runs: usize,
    /// Refusals past its `MAX_RUNS_PER_SOURCE` runs.
    more: u64,
}

/// The source an address's refusals are counted under: IPv4 as is, IPv6 by its /64.
fn source_of(addr: &str) -> String {
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
        _ => addr.to_string(),
    }
}

/// Refusals of the current window (see the module doc).
#[derive(Default)]
pub(super) struct Refusals {
    /// When the window opened (unix seconds).
    opened: u64,
    /// (source, actor, action, outcome) → its run.
    runs: HashMap<(String, String, String, String), RefusalRun>,
    /// Source → its runs and the refusals past them.
    sources: HashMap<String, SourceCount>,
    /// Refusals from sources that got no run, per action: how many.
    overflow: BTreeMap<String, u64>,
}

impl Refusals {
    /// Closes the window if it is over (or `all`), returning its summary entries.
    fn close_if_due(&mut self, now: u64, all: bool) -> Vec<AuditRecord> {
        if !all && now < self.opened.saturating_add(REFUSAL_WINDOW_SECS) {
            return Vec::new();
        }
        let secs = now.saturating_sub(self.opened).max(1);
        let mut out = Vec::new();
        for (_, run) in self.runs.drain() {
            if run.more == 0 {
                continue;
            }
            let mut rec = run.first;
            rec.time = now;
            if !run.same_target {
                rec.target = "(various)".into();
            }
            if !run.same_addr {
                rec.addr = source_of(&rec.addr);
            }
            rec.outcome = format!("{}, {} more like it within {secs} s", rec.outcome, run.more);
            out.push(rec);
        }
        for (source, count) in self.sources.drain() {
            if count.more == 0 {
                continue;
            }
            out.push(AuditRecord {
                time: now,
                actor: String::new(),
                addr: source,
                action: "refusal.more".into(),
                owner: String::new(),
                target: String::new(),
                outcome: format!(
                    "refused {} more times within {secs} s, past this source's first \
                     {MAX_RUNS_PER_SOURCE} kinds of refusal",
                    count.more
                ),
            });
        }
        for (action, count) in std::mem::take(&mut self.overflow) {
            out.push(AuditRecord {
                time: now,
                actor: String::new(),
                addr: "(other addresses)".into(),
                action,
                owner: String::new(),
                target: String::new(),
                outcome: format!(
                    "refused {count} times within {secs} s, past the first \
                     {MAX_REFUSAL_RUNS} sources of the window"
                ),
            });
        }
        self.opened = now;
        out
    }
}

impl Store {
    /// Records an event (written within 2 s, or at close). Fields are capped; when the queue is
    /// full (in entries or bytes) the entry is dropped and that is logged.
    pub fn audit(&self, rec: AuditRecord) {
        self.enqueue(capped(rec));
    }

    /// Queues an entry whose fields are already capped.
    fn enqueue(&self, rec: AuditRecord) {
        if let Ok(mut q) = self.audit_queue.lock() {
            let size = entry_bytes(&rec);
            if q.entries.len() < MAX_QUEUED && q.bytes + size <= MAX_QUEUED_BYTES {
                q.bytes += size;
                q.entries.push(rec);
            } else {
                log::warn!("audit queue full; an entry for {} was dropped", rec.action);
            }
        }
    }

    /// Records a refusal (a failed sign-in, a refused write): the first of its run in this
    /// window as it is, the rest counted into one summary entry when the window closes.
    pub fn audit_refusal(&self, rec: AuditRecord) {
        let rec = capped(rec);
        let mut due = Vec::new();
        let record = match self.refusals.lock() {
            Ok(mut r) => {
                due = r.close_if_due(rec.time, false);
                let source = source_of(&rec.addr);
                let key = (
                    source.clone(),
                    rec.actor.clone(),
                    rec.action.clone(),
                    rec.outcome.clone(),
                );
                let source_runs = r.sources.get(&source).map_or(0, |c| c.runs);
                if let Some(run) = r.runs.get_mut(&key) {
                    run.more += 1;
                    run.same_target &=
                        run.first.owner == rec.owner && run.first.target == rec.target;
                    run.same_addr &= run.first.addr == rec.addr;
                    false
                } else if source_runs < MAX_RUNS_PER_SOURCE && r.runs.len() < MAX_REFUSAL_RUNS {
                    r.runs.insert(
                        key,
                        RefusalRun {
                            first: rec.clone(),
                            more: 0,
                            same_target: true,
                            same_addr: true,
                        },
                    );
                    r.sources.entry(source).or_default().runs += 1;
                    true
                } else if let Some(count) = r.sources.get_mut(&source) {
                    count.more += 1;
                    false
                } else {
                    *r.overflow.entry(rec.action.clone()).or_default() += 1;
                    false
                }
            }
            // A poisoned lock: keep the log bounded rather than complete.
            Err(_) => false,
        };
        for summary in due {
            self.audit(summary);
        }
        if record {
            self.enqueue(rec);
        }
    }

    /// Queues the summaries of a refusal window that is over (every window at `all`).
    pub(super) fn close_refusal_window(&self, now: u64, all: bool) {
        let due = match self.refusals.lock() {
            Ok(mut r) => r.close_if_due(now, all),
            Err(_) => Vec::new(),
        };
        for summary in due {
            self.audit(summary);
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
            .map(|q| q.entries.clone())
            .unwrap_or_default();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
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

    /// `--audit-retention-days`: an entry older than the setting goes at the next write, one
    /// within it stays; a longer setting keeps what a shorter one would drop.
    #[test]
    fn the_retention_setting_decides_what_is_pruned() {
        let t = temp_store();
        let s = &t.store;
        let aged = |days: u64| {
            let mut e = entry("package.publish", &format!("aged{days}"));
            e.time = now() - days * 86_400 - 60;
            e
        };
        s.set_audit_retention_days(5);
        for days in [1, 3, 7] {
            s.audit(aged(days));
        }
        s.flush_pending().expect("flush");
        let owners = |s: &Store| -> Vec<String> {
            let all = s.list_audit(&AuditFilter::default(), 1, 50).expect("list");
            let mut o: Vec<String> = all.items.into_iter().map(|e| e.owner).collect();
            o.sort();
            o
        };
        assert_eq!(owners(s), ["aged1", "aged3"], "7 days > 5");
        s.set_audit_retention_days(2);
        s.audit(aged(0));
        s.flush_pending().expect("flush");
        assert_eq!(owners(s), ["aged0", "aged1"], "3 days > 2");
    }

    fn refusal(addr: &str) -> AuditRecord {
        AuditRecord {
            actor: String::new(),
            addr: addr.into(),
            outcome: "refused".into(),
            ..entry("package.publish", "acme")
        }
    }

    fn queued(s: &Store) -> Vec<AuditRecord> {
        s.audit_queue.lock().expect("queue").entries.clone()
    }

    #[test]
    fn refusals_are_one_entry_per_source_and_window_plus_a_count() {
        let t = temp_store();
        let s = &t.store;
        for _ in 0..1000 {
            s.audit_refusal(refusal("10.0.0.1"));
        }
        assert_eq!(queued(s).len(), 1, "only the first is recorded at once");
        // Many sources: the first MAX_REFUSAL_RUNS get an entry, the rest only a count.
        for i in 0..200 {
            s.audit_refusal(refusal(&format!("10.1.0.{i}")));
        }
        assert_eq!(queued(s).len(), MAX_REFUSAL_RUNS);
        let opened = s.refusals.lock().expect("refusals").opened;
        s.close_refusal_window(opened + REFUSAL_WINDOW_SECS - 1, false);
        assert_eq!(
            queued(s).len(),
            MAX_REFUSAL_RUNS,
            "the window is still open"
        );
        s.close_refusal_window(opened + REFUSAL_WINDOW_SECS, false);
        let q = queued(s);
        assert_eq!(q.len(), MAX_REFUSAL_RUNS + 2, "{q:#?}");
        let summary = q
            .iter()
            .find(|r| r.addr == "10.0.0.1" && r.outcome != "refused")
            .expect("the counted summary");
        assert_eq!(summary.outcome, "refused, 999 more like it within 60 s");
        let overflow = q
            .iter()
            .find(|r| r.addr == "(other addresses)")
            .expect("the overflow count");
        assert!(
            overflow.outcome.starts_with("refused 137 times"),
            "{overflow:?}"
        );
        // A new window starts afresh.
        s.audit_refusal(refusal("10.0.0.1"));
        assert_eq!(queued(s).len(), MAX_REFUSAL_RUNS + 3);
    }

    #[test]
    fn the_queue_is_bounded_in_bytes_and_fields_are_capped() {
        let t = temp_store();
        let s = &t.store;
        let big = "x".repeat(10_000);
        for _ in 0..8_000 {
            s.audit(AuditRecord {
                actor: big.clone(),
                addr: big.clone(),
                action: big.clone(),
                owner: big.clone(),
                target: big.clone(),
                outcome: big.clone(),
                time: now(),
            });
        }
        let q = s.audit_queue.lock().expect("queue");
        assert!(q.bytes <= MAX_QUEUED_BYTES, "{}", q.bytes);
        assert!(q.entries.len() < 8_000);
        let e = &q.entries[0];
        assert!(e.target.len() <= MAX_FIELD_BYTES, "{}", e.target.len());
        assert!(e.target.ends_with("…(10000 bytes)"), "{}", e.target);
    }

    #[test]
    fn one_host_cannot_take_every_slot_of_a_window() {
        let t = temp_store();
        let s = &t.store;
        // One IPv6 /64, many addresses and actors: four runs, the rest counted for the source.
        for i in 0..500 {
            let mut r = refusal(&format!("2001:db8:1:2::{i:x}"));
            r.actor = format!("user{i}");
            s.audit_refusal(r);
        }
        assert_eq!(queued(s).len(), MAX_RUNS_PER_SOURCE);
        // Everyone else still gets their own entries.
        s.audit_refusal(refusal("192.0.2.7"));
        s.audit_refusal(refusal("2001:db8:9::1"));
        assert_eq!(queued(s).len(), MAX_RUNS_PER_SOURCE + 2);
        let opened = s.refusals.lock().expect("refusals").opened;
        s.close_refusal_window(opened + REFUSAL_WINDOW_SECS, false);
        let q = queued(s);
        let more = q
            .iter()
            .find(|r| r.action == "refusal.more")
            .expect("the source's count");
        assert_eq!(more.addr, "2001:db8:1:2::/64");
        assert!(
            more.outcome.starts_with("refused 496 more times"),
            "{more:?}"
        );
    }
}
