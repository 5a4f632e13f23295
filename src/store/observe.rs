//! What the metrics and health endpoints read from the store: row counts (redb keeps each table's
//! length, so they cost no scan), byte totals (one scan of `contents`, cached by [`StatsCache`]),
//! the database file's size, and the readiness probe (a tiny durable write through the group
//! committer, coalesced by [`ReadyProbe`]).

use super::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Row counts, each read in O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub users: u64,
    pub packages: u64,
    pub versions: u64,
    pub files: u64,
    pub contents: u64,
    pub chunks: u64,
    /// Chunks pinned by uploads in progress.
    pub pins: u64,
}

/// Totals that need a scan of `contents`.
#[derive(Debug, Clone, Copy)]
pub struct ByteTotals {
    /// Sum of the sizes of all files (a body shown by n files counts n times).
    pub logical_bytes: u64,
    /// Sum of the sizes of all distinct chunks.
    pub physical_bytes: u64,
    pub computed: Instant,
    /// How long the scan took.
    pub took: Duration,
}

/// What one scan of `contents` gives (`/metrics` and `shelf stats` share it).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ContentTotals {
    pub logical_bytes: u64,
    pub physical_bytes: u64,
    pub contents: u64,
    pub content_bytes: u64,
}

/// Logical and physical bytes by a scan of `contents` (one small record per distinct body;
/// chunk bytes are not read, and memory stays constant). Every chunk but a body's last is
/// full-size; a short last chunk is shared by the `chunk_refs` bodies ending in it, so each of
/// those adds its share. Chunks pinned by uploads in progress count as full-size.
/// What a step of a long operation counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Items,
    Bytes,
}

/// How a long operation (check, backup, import) says how far it is: the CLI draws a bar, the
/// server passes `Quiet`.
pub trait Steps {
    /// A new phase: `total` units of `unit` to go.
    fn phase(&self, _what: &'static str, _unit: Unit, _total: u64) {}
    /// `n` more units done.
    fn step(&self, _n: u64) {}
}

/// Steps that nobody watches.
pub struct Quiet;

impl Steps for Quiet {}

pub(super) fn content_totals(txn: &redb::ReadTransaction) -> Result<ContentTotals> {
    let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let chunk_rows = chunks.len().ctx("counting chunks")?;
    let mut t = ContentTotals::default();
    let mut short_rows = 0f64;
    let mut short_bytes = 0f64;
    for row in contents.iter().ctx("listing contents")? {
        let (_, v) = row.ctx("listing contents")?;
        let content: ContentRecord = decode(v.value())?;
        t.contents += 1;
        t.content_bytes = t.content_bytes.saturating_add(content.size);
        t.logical_bytes = t
            .logical_bytes
            .saturating_add(content.size.saturating_mul(content.files));
        let tail = content.size % CHUNK_SIZE as u64;
        if let (Some(last), true) = (content.chunks.last(), tail != 0) {
            let sharers = refs
                .get(last)
                .ctx("reading a chunk count")?
                .map(|g| g.value())
                .unwrap_or(1)
                .max(1) as f64;
            short_rows += 1.0 / sharers;
            short_bytes += tail as f64 / sharers;
        }
    }
    let full_rows = chunk_rows.saturating_sub(short_rows.round() as u64);
    t.physical_bytes = full_rows
        .saturating_mul(CHUNK_SIZE as u64)
        .saturating_add(short_bytes.round() as u64);
    Ok(t)
}

/// Key of the readiness probe's row in `meta`.
const PROBE_KEY: &str = "ready_probe";

impl Store {
    /// Size of the database file in bytes.
    pub fn database_size(&self) -> io::Result<u64> {
        std::fs::metadata(&self.path).map(|m| m.len())
    }

    /// Row counts of the main tables, from one snapshot, without a scan.
    pub fn row_counts(&self) -> Result<RowCounts> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        Ok(RowCounts {
            users: txn
                .open_table(USERS)
                .ctx("opening users")?
                .len()
                .ctx("counting users")?,
            packages: txn
                .open_table(PACKAGES)
                .ctx("opening packages")?
                .len()
                .ctx("counting packages")?,
            versions: txn
                .open_table(VERSIONS)
                .ctx("opening versions")?
                .len()
                .ctx("counting versions")?,
            files: txn
                .open_table(FILES)
                .ctx("opening files")?
                .len()
                .ctx("counting files")?,
            contents: txn
                .open_table(CONTENTS)
                .ctx("opening contents")?
                .len()
                .ctx("counting contents")?,
            chunks: txn
                .open_table(CHUNKS)
                .ctx("opening chunks")?
                .len()
                .ctx("counting chunks")?,
            pins: txn
                .open_table(UPLOADS)
                .ctx("opening uploads")?
                .len()
                .ctx("counting pins")?,
        })
    }

    /// Logical and physical bytes from one snapshot (see [`content_totals`]).
    pub fn byte_totals(&self) -> Result<ByteTotals> {
        let started = Instant::now();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let t = content_totals(&txn)?;
        Ok(ByteTotals {
            logical_bytes: t.logical_bytes,
            physical_bytes: t.physical_bytes,
            computed: Instant::now(),
            took: started.elapsed(),
        })
    }

    /// Proves the database takes a durable write: writes the time into `meta` through the group
    /// committer and waits at most `timeout` for the commit.
    pub fn probe_durable_write(&self, timeout: Duration) -> Result<()> {
        // Ready means ready for uploads: with less room than one chunk beyond the reserve the
        // probe fails without a write (which could fail, and with redb's latch make every
        // operation wait for a reopen).
        self.ensure_room(CHUNK_SIZE as u64)?;
        let (tx, rx) = mpsc::sync_channel::<Result<()>>(1);
        let failed = tx.clone();
        let job = Job {
            run: Box::new(move |txn| {
                let written = txn
                    .open_table(META)
                    .ctx("opening meta")
                    .and_then(|mut meta| {
                        meta.insert(PROBE_KEY, &now().to_le_bytes()[..])
                            .ctx("writing the readiness probe")
                            .map(|_| ())
                    });
                match written {
                    Ok(()) => Some(Box::new(move |commit: Result<()>| {
                        let _ = tx.send(commit);
                    })),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        None
                    }
                }
            }),
            fail: Box::new(move |e: Result<()>| {
                let _ = failed.send(e);
            }),
        };
        {
            let guard = self.jobs.lock().map_err(|_| Error::Closed)?;
            let sender = guard.as_ref().ok_or(Error::Closed)?;
            sender.send(job).map_err(|_| Error::Closed)?;
        }
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Corrupt(format!(
                "no durable commit within {} s",
                timeout.as_secs_f64()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }
}

/// Byte totals at most `max_age` old. The first call scans; later calls return the last totals
/// at once and, when they are stale, start one background thread to scan again (never more than
/// one at a time), so a scrape never waits for a scan after the first.
pub struct StatsCache {
    max_age: Duration,
    last: Arc<Mutex<Option<ByteTotals>>>,
    refreshing: Arc<AtomicBool>,
}

impl StatsCache {
    pub fn new(max_age: Duration) -> StatsCache {
        StatsCache {
            max_age,
            last: Arc::new(Mutex::new(None)),
            refreshing: Arc::new(AtomicBool::new(false)),
        }
    }

    fn stored(&self) -> Option<ByteTotals> {
        self.last.lock().ok().and_then(|g| *g)
    }

    /// The cached totals (None only if the very first scan failed).
    pub fn get(&self, store: &Arc<Store>) -> Option<ByteTotals> {
        let current = self.stored();
        match current {
            None => {
                let fresh = match store.byte_totals() {
                    Ok(t) => t,
                    Err(e) => {
                        log::warn!("metrics: computing byte totals: {e}");
                        return None;
                    }
                };
                if let Ok(mut g) = self.last.lock() {
                    *g = Some(fresh);
                }
                Some(fresh)
            }
            Some(t) => {
                if t.computed.elapsed() >= self.max_age
                    && !self.refreshing.swap(true, Ordering::AcqRel)
                {
                    self.refresh_in_background(store);
                }
                Some(t)
            }
        }
    }

    fn refresh_in_background(&self, store: &Arc<Store>) {
        let weak = Arc::downgrade(store);
        let last = Arc::clone(&self.last);
        let refreshing = Arc::clone(&self.refreshing);
        let spawned = thread::Builder::new()
            .name("shelf-stats".into())
            .spawn(move || {
                if let Some(store) = weak.upgrade() {
                    match store.byte_totals() {
                        Ok(t) => {
                            if let Ok(mut g) = last.lock() {
                                *g = Some(t);
                            }
                        }
                        Err(e) => log::warn!("metrics: computing byte totals: {e}"),
                    }
                }
                refreshing.store(false, Ordering::Release);
            });
        if let Err(e) = spawned {
            log::warn!("metrics: cannot start the stats thread: {e}");
            self.refreshing.store(false, Ordering::Release);
        }
    }
}

/// A probe's outcome, shared by the probes that reuse it.
pub type ProbeOutcome = Result<(), Arc<Error>>;

/// Coalesces readiness probes: at most one durable write per `interval`; probes in between
/// (or waiting while one runs) get its outcome.
pub struct ReadyProbe {
    interval: Duration,
    timeout: Duration,
    last: Mutex<Option<(Instant, ProbeOutcome)>>,
}

impl ReadyProbe {
    pub fn new(interval: Duration, timeout: Duration) -> ReadyProbe {
        ReadyProbe {
            interval,
            timeout,
            last: Mutex::new(None),
        }
    }

    /// Ok when the database took a durable write within the last `interval`; else why not.
    pub fn check(&self, store: &Store) -> ProbeOutcome {
        // Held across the write: concurrent probes wait for it and reuse its outcome.
        let mut last = match self.last.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((at, outcome)) = last.as_ref() {
            if at.elapsed() < self.interval {
                return outcome.clone();
            }
        }
        let outcome = store.probe_durable_write(self.timeout).map_err(Arc::new);
        if let Err(e) = &outcome {
            log::warn!("readiness probe: {e}");
        }
        *last = Some((Instant::now(), outcome.clone()));
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;

    fn put(store: &Store, owner: &str, version: &str, file: &str, body: &[u8]) {
        let coords = FileCoords::parse(owner, "pkg", version, file);
        store
            .upload(&coords, "tester", body, Want::default(), |_| Ok(()))
            .expect("upload");
    }

    #[test]
    fn counts_and_totals_follow_uploads_and_dedup() {
        let t = temp_store();
        let s = &t.store;
        let empty = s.byte_totals().expect("totals");
        assert_eq!((empty.logical_bytes, empty.physical_bytes), (0, 0));
        let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 100).map(|i| (i % 251) as u8).collect();
        put(s, "o", "1", "a.bin", &big);
        put(s, "o", "1", "b.bin", &big); // same bytes: deduplicated
        put(s, "o", "2", "small.txt", b"hello");
        let c = s.row_counts().expect("counts");
        assert_eq!(c.files, 3);
        assert_eq!(c.versions, 2);
        assert_eq!(c.packages, 1);
        assert_eq!(c.contents, 2);
        assert_eq!(c.chunks, 4);
        assert_eq!(c.pins, 0);
        let b = s.byte_totals().expect("totals");
        assert_eq!(b.logical_bytes, 2 * big.len() as u64 + 5);
        assert_eq!(b.physical_bytes, big.len() as u64 + 5);
    }

    #[test]
    fn probe_writes_and_coalesces() {
        let t = temp_store();
        let probe = ReadyProbe::new(Duration::from_secs(60), Duration::from_secs(5));
        assert!(probe.check(&t.store).is_ok());
        // Within the interval the outcome is reused: no second write.
        let started = Instant::now();
        for _ in 0..1000 {
            assert!(probe.check(&t.store).is_ok());
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn probe_fails_without_a_committer_and_retries_after_the_interval() {
        let t = temp_store();
        let probe = ReadyProbe::new(Duration::from_millis(100), Duration::from_secs(5));
        let sender = t.store.jobs.lock().expect("jobs").take();
        let err = probe.check(&t.store).expect_err("no committer");
        assert!(matches!(*err, Error::Closed), "{err}");
        // The committer is back: within the interval the failure is reused, then it recovers.
        *t.store.jobs.lock().expect("jobs") = sender;
        assert!(probe.check(&t.store).is_err());
        std::thread::sleep(Duration::from_millis(150));
        assert!(probe.check(&t.store).is_ok());
    }

    #[test]
    fn cache_serves_the_first_scan_and_refreshes_in_background() {
        let t = temp_store();
        let cache = StatsCache::new(Duration::from_millis(50));
        assert_eq!(cache.get(&t.store).expect("first").logical_bytes, 0);
        put(&t.store, "o", "1", "f", b"12345");
        // Fresh enough: the cached value is served.
        let stale = cache.get(&t.store).expect("cached");
        assert!(stale.logical_bytes == 0 || stale.computed.elapsed() < Duration::from_millis(50));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            std::thread::sleep(Duration::from_millis(60));
            if cache.get(&t.store).expect("cached").logical_bytes == 5 {
                break;
            }
            assert!(Instant::now() < deadline, "never refreshed");
        }
    }
}
