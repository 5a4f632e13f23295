//! Staying up through storage faults. redb latches the first failed read, write or sync of
//! its file ("Previous I/O error occurred"): from then on every transaction fails until the
//! database is closed and opened again. A full disk is the common case on a small server, so
//! the store does that itself, in process: `DbSlot` holds the open database; when an
//! operation sees the latch (or the watchdog's probe does), it takes the database out, closes
//! it, and opens the file again, while new operations wait for it briefly and then answer
//! "retry shortly". Nothing acknowledged is touched: a failed commit never became durable, and
//! the reopen finds the last durable commit.

use super::{Context, Error, Result, META};
use redb::{Database, ReadableDatabase};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

/// Opens the database file: the store's own opener, or a test's with a failing backend.
pub(crate) type Opener =
    Box<dyn Fn() -> std::result::Result<Database, redb::DatabaseError> + Send + Sync>;

/// How long an operation waits for a reopen in progress before it answers "retry shortly".
#[cfg(not(test))]
const WAIT_FOR_REOPEN: Duration = Duration::from_secs(5);
/// The unit tests fail thousands of writes on purpose: short waits keep them quick.
#[cfg(test)]
const WAIT_FOR_REOPEN: Duration = Duration::from_millis(200);
/// Longest pause between attempts to open the file again (the disk may still be full).
#[cfg(not(test))]
const MAX_PAUSE: Duration = Duration::from_secs(2);
#[cfg(test)]
const MAX_PAUSE: Duration = Duration::from_millis(20);
/// How often the watchdog probes the open database for a latched I/O error.
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// What a storage error means for the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The disk is full (ENOSPC, or a quota: EDQUOT): the write is refused, 507.
    Full,
    /// Another I/O failure, or the latch one left: the database must be reopened.
    Io,
}

/// The fault a redb error shows, if it is one.
pub(crate) fn fault_of(e: &redb::Error) -> Option<Fault> {
    match e {
        redb::Error::Io(io) => Some(io_fault(io)),
        redb::Error::PreviousIo | redb::Error::DatabaseClosed => Some(Fault::Io),
        _ => None,
    }
}

pub(crate) fn io_fault(io: &std::io::Error) -> Fault {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    if io.kind() == std::io::ErrorKind::StorageFull
        || matches!(io.raw_os_error(), Some(ENOSPC | EDQUOT))
    {
        Fault::Full
    } else {
        Fault::Io
    }
}

struct State {
    db: Option<Arc<Database>>,
    /// Incremented by every reopen: a fault seen on an older database is already handled.
    generation: u64,
    /// A reopen is wanted or in progress.
    reopening: bool,
    /// The store is closing: no reopen, and `get` fails.
    closed: bool,
}

/// The open database, reopened in process after a storage fault.
pub(crate) struct DbSlot {
    /// The database file (for the free space on its disk).
    path: std::path::PathBuf,
    state: Mutex<State>,
    changed: Condvar,
    opener: Opener,
    /// Completed reopens (metrics, tests).
    reopens: AtomicU64,
}

/// A database handed out by the slot, with the generation it belongs to.
pub(crate) struct Handle {
    pub db: Arc<Database>,
    pub generation: u64,
}

impl DbSlot {
    /// Opens the database with `opener` and starts the watchdog.
    pub(crate) fn open(
        path: &std::path::Path,
        opener: Opener,
    ) -> std::result::Result<Arc<DbSlot>, redb::DatabaseError> {
        let db = opener()?;
        let slot = Arc::new(DbSlot {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                db: Some(Arc::new(db)),
                generation: 0,
                reopening: false,
                closed: false,
            }),
            changed: Condvar::new(),
            opener,
            reopens: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&slot);
        // A slot without its watchdog still reopens when an operation reports a fault.
        if let Err(e) = thread::Builder::new()
            .name("shelf-recovery".into())
            .spawn(move || watchdog(weak))
        {
            log::error!("starting the storage watchdog: {e}");
        }
        Ok(slot)
    }

    /// The open database; while a reopen is in progress, waits for it up to
    /// `WAIT_FOR_REOPEN`, then fails with `Error::Recovering`.
    pub(crate) fn get(&self) -> Result<Handle> {
        let deadline = Instant::now() + WAIT_FOR_REOPEN;
        let mut st = self.state.lock().map_err(|_| Error::Closed)?;
        loop {
            if st.closed {
                return Err(Error::Closed);
            }
            if let (Some(db), false) = (&st.db, st.reopening) {
                return Ok(Handle {
                    db: Arc::clone(db),
                    generation: st.generation,
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Recovering);
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .map_err(|_| Error::Closed)?
                .0;
        }
    }

    /// Reports that an operation on the database of `generation` met a storage fault: the
    /// watchdog reopens it (once per generation, however many report it).
    pub(crate) fn report(&self, generation: u64, fault: Fault) {
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.closed || st.generation != generation || st.reopening {
            return;
        }
        log::warn!(
            "storage fault ({}): reopening the database in process",
            match fault {
                Fault::Full => "the disk is full",
                Fault::Io => "an I/O error",
            }
        );
        st.reopening = true;
        self.changed.notify_all();
    }

    /// Whether a reopen is wanted or in progress (its sweep releases every pin, or, on a disk
    /// with no room, the next start's).
    pub(crate) fn reopening(&self) -> bool {
        self.state.lock().map(|st| st.reopening).unwrap_or(true)
    }

    /// Completed reopens since the store opened.
    pub(crate) fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Takes the database out for good (the store's close): `None` when a reopen left none.
    pub(crate) fn take(&self) -> Option<Arc<Database>> {
        let mut st = self.state.lock().ok()?;
        st.closed = true;
        self.changed.notify_all();
        st.db.take()
    }

    /// Closes the faulted database and opens the file again, retrying until it opens: while
    /// the disk is still full the open may fail too, and operations answer "retry shortly"
    /// meanwhile.
    fn reopen(&self) {
        let started = Instant::now();
        let old = match self.state.lock() {
            Ok(mut st) => st.db.take(),
            Err(_) => return,
        };
        if let Some(old) = old {
            // Operations in flight hold it for one transaction at most, and theirs fail at
            // once on the latch; then the last reference is ours.
            let mut arc = old;
            let db = loop {
                match Arc::try_unwrap(arc) {
                    Ok(db) => break Some(db),
                    Err(shared) if started.elapsed() < Duration::from_secs(30) => {
                        arc = shared;
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => {
                        log::error!("reopening: the faulted database is still held; dropping it");
                        break None;
                    }
                }
            };
            if let Some(db) = db {
                if let Err(e) = db.close() {
                    log::warn!("closing the faulted database: {e}");
                }
            }
            log::info!(
                "reopening: closed the faulted database after {:?}",
                started.elapsed()
            );
        }
        let mut pause = Duration::from_millis(20);
        let db = loop {
            if self.state.lock().map(|st| st.closed).unwrap_or(true) {
                return;
            }
            match (self.opener)() {
                Ok(db) => break db,
                // A live write transaction delays the old database's close to its end.
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    log::info!("reopening: the file is still open; retrying");
                }
                Err(e) => log::error!("reopening the database: {e}; retrying"),
            }
            thread::sleep(pause);
            pause = (pause * 2).min(MAX_PAUSE);
        };
        // Before anything else gets the database: the pins of uploads the fault interrupted
        // (those a later durable commit had carried to disk) go, as at a start. Not on a disk
        // with no room left: the sweep's commit would fail, latch the new database too, and
        // cost a full repair at the next reopen; the pins then wait for the next start (an
        // upload in progress across the reopen is refused at publish either way).
        let pinned = (|| -> std::result::Result<u64, redb::Error> {
            use redb::ReadableTableMetadata;
            Ok(db.begin_read()?.open_table(super::UPLOADS)?.len()?)
        })()
        .unwrap_or(0);
        let room = super::space::free_bytes(&self.path).map_or(true, |free| free >= 16 << 20);
        if pinned > 0 && room {
            let swept = (|| -> Result<u64> {
                let txn = db.begin_write().ctx("beginning the sweep after a reopen")?;
                let (released, _) = super::sweep_pins(&txn)?;
                txn.commit().ctx("committing the sweep after a reopen")?;
                Ok(released)
            })();
            match swept {
                Ok(0) => {}
                Ok(n) => {
                    log::warn!("released {n} chunk pins of uploads the storage fault interrupted")
                }
                // They stay until the next start's sweep; nothing references them.
                Err(e) => log::warn!("releasing pins after the reopen: {e}"),
            }
        } else if pinned > 0 {
            log::warn!("{pinned} chunk pins stay until the next start: the disk has no room to release them");
        }
        let took = started.elapsed();
        if let Ok(mut st) = self.state.lock() {
            if st.closed {
                return;
            }
            st.db = Some(Arc::new(db));
            st.generation += 1;
            st.reopening = false;
            self.reopens.fetch_add(1, Ordering::Relaxed);
            self.changed.notify_all();
        }
        log::warn!(
            "the database is open again after a storage fault ({:.0} ms)",
            took.as_secs_f64() * 1000.0
        );
    }
}

/// Whether the database has latched an I/O error: one small read that touches its file.
fn latched(db: &Database) -> Option<Fault> {
    let probe = || -> std::result::Result<(), redb::Error> {
        let txn = db.begin_read()?;
        let meta = txn.open_table(META)?;
        meta.get("schema_version")?;
        Ok(())
    };
    probe().err().and_then(|e| fault_of(&e))
}

/// Reopens the database when a fault is reported, and probes it between reports, so that a
/// fault met by a read (which reports nothing) is found too.
fn watchdog(slot: Weak<DbSlot>) {
    loop {
        let Some(s) = slot.upgrade() else { return };
        let wanted = {
            let Ok(st) = s.state.lock() else { return };
            if st.closed {
                return;
            }
            let st = if st.reopening {
                st
            } else {
                match s.changed.wait_timeout(st, PROBE_EVERY) {
                    Ok((st, _)) => st,
                    Err(_) => return,
                }
            };
            if st.closed {
                return;
            }
            match (&st.db, st.reopening) {
                (_, true) => true,
                (Some(db), false) => {
                    let (db, generation) = (Arc::clone(db), st.generation);
                    drop(st);
                    let fault = latched(&db);
                    drop(db);
                    if let Some(f) = fault {
                        s.report(generation, f);
                    }
                    continue;
                }
                (None, false) => false,
            }
        };
        if wanted {
            s.reopen();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::*;
    use super::Opener;
    use redb::backends::FileBackend;
    use redb::{BackendError, StorageBackend};
    use std::io;
    use std::ops::Bound;
    use std::sync::atomic::{AtomicBool, AtomicI32};
    use std::time::Instant;

    /// What the faulty backend does to writes, syncs and growth: nothing (0), or fail them
    /// with this errno (ENOSPC 28, EIO 5).
    #[derive(Debug)]
    pub(crate) struct Faults {
        pub errno: AtomicI32,
        /// Fail only syncs (a write that reached the cache, a flush that did not).
        pub syncs_only: AtomicBool,
        /// Writes, growths and syncs let through before `armed_errno` starts failing them
        /// (negative: not armed).
        pub countdown: std::sync::atomic::AtomicI64,
        pub armed_errno: AtomicI32,
        /// Writes, growths and syncs seen.
        pub points: AtomicU64,
    }

    impl Default for Faults {
        fn default() -> Faults {
            Faults {
                errno: AtomicI32::new(0),
                syncs_only: AtomicBool::new(false),
                countdown: std::sync::atomic::AtomicI64::new(-1),
                armed_errno: AtomicI32::new(0),
                points: AtomicU64::new(0),
            }
        }
    }

    impl Faults {
        pub fn fail(&self, errno: i32) {
            self.errno.store(errno, Ordering::SeqCst);
        }

        /// Lets `n` more points through, then fails every one with `errno` until `heal`.
        pub fn fail_after(&self, n: i64, errno: i32) {
            self.armed_errno.store(errno, Ordering::SeqCst);
            self.countdown.store(n, Ordering::SeqCst);
        }

        pub fn heal(&self) {
            self.errno.store(0, Ordering::SeqCst);
            self.countdown.store(-1, Ordering::SeqCst);
        }

        fn check(&self, sync: bool) -> io::Result<()> {
            self.points.fetch_add(1, Ordering::SeqCst);
            if self.countdown.load(Ordering::SeqCst) >= 0
                && self.countdown.fetch_sub(1, Ordering::SeqCst) == 0
            {
                self.errno
                    .store(self.armed_errno.load(Ordering::SeqCst), Ordering::SeqCst);
            }
            match self.errno.load(Ordering::SeqCst) {
                0 => Ok(()),
                _ if !sync && self.syncs_only.load(Ordering::SeqCst) => Ok(()),
                e => Err(io::Error::from_raw_os_error(e)),
            }
        }
    }

    /// redb's file backend with faults injected where `Faults` says.
    #[derive(Debug)]
    struct Faulty {
        inner: FileBackend,
        faults: Arc<Faults>,
    }

    impl StorageBackend for Faulty {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            let grows = self.inner.len()? < len;
            if grows {
                self.faults.check(false)?;
            }
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.faults.check(true)?;
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.faults.check(false)?;
            self.inner.write(offset, data)
        }
        fn close(&self) -> io::Result<()> {
            self.inner.close()
        }
        fn try_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(s, e)
        }
        fn try_lock_shared_range(
            &self,
            s: Bound<u64>,
            e: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(s, e)
        }
        fn lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(s, e)
        }
        fn lock_shared_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_shared_range(s, e)
        }
        fn unlock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(s, e)
        }
        fn query_lock_range(&self, s: Bound<u64>, e: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.query_lock_range(s, e)
        }
    }

    /// Opens (or creates) the database at a path through a backend that fails as `faults`
    /// says.
    fn open_faulty(
        file: &Path,
        faults: &Arc<Faults>,
    ) -> std::result::Result<Database, redb::DatabaseError> {
        let handle = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(file)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        let inner = FileBackend::new(handle)?;
        redb::Builder::new().create_with_backend(Faulty {
            inner,
            faults: Arc::clone(faults),
        })
    }

    /// A store on `dir/t.redb` whose every open (the first and each reopen) goes through a
    /// backend that fails as `faults` says.
    pub(crate) fn faulty_store(dir: &Path) -> (Arc<Store>, Arc<Faults>) {
        let path = dir.join("t.redb");
        crate::store::create_private(&path).expect("create");
        let faults = Arc::new(Faults::default());
        let f = Arc::clone(&faults);
        let file = path.clone();
        let opener: Opener = Box::new(move || open_faulty(&file, &f));
        (Store::open_with(&path, opener).expect("open"), faults)
    }

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "shelf-recovery-{tag}-{}-{}",
            std::process::id(),
            new_token().expect("randomness")
        ));
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn put(s: &Store, version: &str, body: &[u8]) -> Result<Published> {
        let at = FileCoords::parse("alice", "pkg", version, "f");
        s.upload(
            &at,
            "alice",
            body,
            crate::chunk::Want::default(),
            |_| Ok(()),
        )
    }

    fn body(seed: u8, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect()
    }

    fn read(s: &Store, version: &str) -> Option<Vec<u8>> {
        let at = FileCoords::parse("alice", "pkg", version, "f");
        let (_, mut r) = s.open_file(&at).ok()??;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut r, &mut out).ok()?;
        Some(out)
    }

    fn wait_for_reopens(s: &Store, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.reopens() < n {
            assert!(Instant::now() < deadline, "no reopen after the fault");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Each fault (a full disk, an I/O error, on writes or only on syncs): the upload that met
    /// it fails with nothing partial, the store reopens itself, reads work again without a
    /// restart, the next upload after the fault clears succeeds, and the file checks clean.
    #[test]
    fn the_store_recovers_in_process_from_each_fault() {
        for (errno, syncs_only) in [(28, false), (5, false), (28, true), (5, true)] {
            let d = dir("each");
            let (s, faults) = faulty_store(&d);
            let kept = body(1, CHUNK_SIZE * 2 + 5);
            assert_eq!(put(&s, "1", &kept).expect("first"), Published::Created);
            faults.syncs_only.store(syncs_only, Ordering::SeqCst);
            faults.fail(errno);
            let r = put(&s, "2", &body(2, CHUNK_SIZE * 3));
            let e = r.expect_err("an upload on a failing disk");
            // A full disk is 507; any other I/O fault is "retry shortly" (503), whichever
            // path met it (a chunk write, a durable commit): never a 500.
            if errno == 28 {
                assert!(matches!(e, Error::Full), "{errno} {syncs_only}: {e}");
            } else {
                assert!(matches!(e, Error::Recovering), "{errno} {syncs_only}: {e}");
            }
            faults.heal();
            wait_for_reopens(&s, 1);
            assert_eq!(read(&s, "1").as_deref(), Some(&kept[..]), "{errno}");
            assert_eq!(read(&s, "2"), None, "nothing of the failed upload");
            assert_eq!(
                put(&s, "3", &body(3, 1000)).expect("after"),
                Published::Created
            );
            let report = s.check().expect("check");
            assert!(
                report.faults.is_empty(),
                "{errno} {syncs_only}: {:?}",
                report.faults
            );
            assert_eq!(report.files, 2);
            s.close().expect("close");
            let _ = std::fs::remove_dir_all(d);
        }
    }

    /// A download in flight when a fault makes the store reopen the database carries on from
    /// the reopened file (it failed with "Database has been closed", a 500 before its first
    /// byte, or a cut connection after it).
    #[test]
    fn a_download_across_a_reopen_carries_on() {
        let d = dir("download");
        let (s, faults) = faulty_store(&d);
        let data = body(7, CHUNK_SIZE * 3 + 11);
        assert_eq!(put(&s, "1", &data).expect("put"), Published::Created);
        let at = FileCoords::parse("alice", "pkg", "1", "f");
        let (_, mut r) = s.open_file(&at).expect("open").expect("exists");
        let mut got = vec![0u8; CHUNK_SIZE + 5];
        io::Read::read_exact(&mut r, &mut got).expect("the first part");
        faults.fail(5);
        let _ = s.probe_durable_write(Duration::from_secs(10));
        faults.heal();
        wait_for_reopens(&s, 1);
        io::Read::read_to_end(&mut r, &mut got).expect("the rest, after the reopen");
        assert!(got == data, "the download is whole");
        s.close().expect("close");
        let _ = std::fs::remove_dir_all(d);
    }

    /// An upload whose early chunks were written before a reopen (non-durable, so the reopen
    /// lost them) is refused at publish instead of referencing bytes that are not there.
    #[test]
    fn an_upload_across_a_reopen_is_refused_not_published_broken() {
        let d = dir("across");
        let (s, faults) = faulty_store(&d);
        assert_eq!(
            put(&s, "1", &body(1, 10)).expect("first"),
            Published::Created
        );
        // A body that makes the store fail and reopen after its first chunk is pinned.
        struct Midway<'a> {
            data: Vec<u8>,
            at: usize,
            store: &'a Store,
            faults: &'a Faults,
        }
        impl io::Read for Midway<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                // Past the middle of the second chunk the first one is pinned: a fault
                // elsewhere (a durable write) and its reopen happen now, once.
                if self.at >= CHUNK_SIZE + CHUNK_SIZE / 2 && self.store.reopens() == 0 {
                    self.faults.fail(5);
                    let _ = self.store.probe_durable_write(Duration::from_secs(10));
                    self.faults.heal();
                    wait_for_reopens(self.store, 1);
                }
                let n = buf.len().min(64 << 10).min(self.data.len() - self.at);
                buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
                self.at += n;
                Ok(n)
            }
        }
        let data = body(9, CHUNK_SIZE * 3);
        let at = FileCoords::parse("alice", "pkg", "2", "f");
        let mid = Midway {
            data: data.clone(),
            at: 0,
            store: &s,
            faults: &faults,
        };
        let r = s.upload(&at, "alice", mid, crate::chunk::Want::default(), |_| Ok(()));
        assert!(matches!(r, Err(Error::Recovering)), "{r:?}");
        assert_eq!(read(&s, "2"), None);
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        assert_eq!((report.files, report.pins), (1, 0));
        // The retry succeeds.
        assert_eq!(put(&s, "2", &data).expect("retry"), Published::Created);
        assert_eq!(read(&s, "2").as_deref(), Some(&data[..]));
        s.close().expect("close");
        let _ = std::fs::remove_dir_all(d);
    }

    /// The operations of the fault matrix, on `s` (the fixture of `fixture`).
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Publish,
        DeleteFile,
        DeleteVersion,
        Cleanup,
        Import,
        /// `check --repair`, on a fixture with damage for it to mend.
        Repair,
    }

    /// Files every fixture holds: (version, body).
    fn fixture_files() -> Vec<(String, Vec<u8>)> {
        vec![
            ("1.0".into(), body(11, 700)),
            ("2.0".into(), body(12, CHUNK_SIZE * 2 + 3)),
            ("3.0".into(), body(13, 40)),
        ]
    }

    /// A bundle of bob's two files, exported from a healthy store.
    fn bob_bundle() -> Vec<u8> {
        let d = dir("bundle-src");
        let s = Store::open(&d.join("b.redb")).expect("open");
        s.create_user(&Owner::of("bob"), false).expect("bob");
        for (v, b) in [("1", body(21, 900)), ("2", body(22, CHUNK_SIZE + 9))] {
            let at = FileCoords::parse("bob", "tool", v, "t.bin");
            s.upload(
                &at,
                "bob",
                b.as_slice(),
                crate::chunk::Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        let req = crate::bundle::ExportRequest {
            owner: "bob".into(),
            package: None,
            version: None,
            since: None,
            against: None,
        };
        let export = crate::bundle::Export::prepare(&s, &req, "src").expect("prepare");
        let mut out = Vec::new();
        export.into_stream().write_to(&mut out).expect("export");
        s.close().expect("close");
        let _ = std::fs::remove_dir_all(d);
        out
    }

    /// Damage repair mends (an orphan chunk, a wrong reference count, a lost owner count),
    /// made in `s` before the faults are armed.
    fn damage(s: &Store) {
        let big = &fixture_files()[1].1;
        let first = crate::chunk::ChunkId::of(&big[..CHUNK_SIZE]).0;
        let orphan = crate::chunk::ChunkId::of(b"orphan").0;
        // Durable: a reopen after a fault must find the damage still there.
        s.durable(move |txn| {
            let mut chunks = txn.open_table(CHUNKS).ctx("chunks")?;
            chunks.insert(&orphan, b"orphan".as_slice()).ctx("orphan")?;
            let mut refs = txn.open_table(CHUNK_REFS).ctx("refs")?;
            refs.insert(&orphan, 3).ctx("orphan count")?;
            refs.insert(&first, 7).ctx("wrong count")?;
            let mut ov = txn.open_table(OWNER_VERSIONS).ctx("ov")?;
            ov.remove("alice").ctx("drop owner count")?;
            Ok(())
        })
        .expect("damage");
        assert!(settled(|| s.check()).faults.len() >= 3, "damaged");
    }

    fn fixture(d: &Path) -> (Arc<Store>, Arc<Faults>) {
        let (s, faults) = faulty_store(d);
        s.create_user(&Owner::of("alice"), false).expect("alice");
        s.create_user(&Owner::of("bob"), false).expect("bob");
        for (v, b) in fixture_files() {
            assert_eq!(put(&s, &v, &b).expect("fixture"), Published::Created);
        }
        let rule = crate::store::CleanupRule {
            enabled: true,
            keep_count: 1,
            ..Default::default()
        };
        let set = s.set_cleanup_rule("alice", None, rule).expect("rule");
        assert_eq!(set.ok(), Some(true), "the rule is set");
        (s, faults)
    }

    fn run_op(s: &Store, op: Op, bundle: &[u8]) -> bool {
        match op {
            Op::Publish => put(s, "4.0", &body(14, CHUNK_SIZE + 77)).is_ok(),
            Op::DeleteFile => s
                .delete_file(&FileCoords::parse("alice", "pkg", "2.0", "f"))
                .is_ok(),
            Op::DeleteVersion => s.delete_version("alice", "pkg", "1.0").is_ok(),
            Op::Cleanup => s.run_cleanup(Some("alice"), false, now()).is_ok(),
            Op::Repair => s.repair().is_ok(),
            Op::Import => crate::bundle::import(
                s,
                bundle,
                crate::bundle::Importer {
                    actor: "test",
                    addr: "local",
                    background_digests: false,
                },
            )
            .is_ok(),
        }
    }

    /// Runs `f` until the store answers again (a fault makes it reopen; at most 30 s).
    fn settled<T>(f: impl Fn() -> Result<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match f() {
                Ok(r) => return r,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("the store never came back: {e}"),
            }
        }
    }

    fn settled_check(s: &Store) -> CheckReport {
        settled(|| s.check())
    }

    /// Item 3 of issue 11: every write, growth and sync point of publish, delete (file and
    /// version), cleanup, import and repair fails in turn (EIO, then ENOSPC), from that point
    /// on until healed. After each: the store reopens itself, `check` is clean (after repair,
    /// once a rerun of it has completed), every file the fixture holds is intact unless the
    /// operation removed it, and a file is whole or absent.
    #[test]
    fn every_write_and_sync_point_leaves_a_consistent_store() {
        let bundle = bob_bundle();
        let mut cases = 0;
        for op in [
            Op::Publish,
            Op::DeleteFile,
            Op::DeleteVersion,
            Op::Cleanup,
            Op::Import,
            Op::Repair,
        ] {
            // How many points the operation has, on a healthy store.
            let d = dir("points");
            let (s, faults) = fixture(&d);
            if matches!(op, Op::Repair) {
                damage(&s);
            }
            let before = faults.points.load(Ordering::SeqCst);
            assert!(run_op(&s, op, &bundle), "{op:?} on a healthy store");
            let points = faults.points.load(Ordering::SeqCst) - before;
            s.close().expect("close");
            let _ = std::fs::remove_dir_all(d);
            assert!(points > 0, "{op:?} wrote nothing");
            eprintln!("fault matrix: {op:?} has {points} write/growth/sync points");
            // At most 8 points per operation and errno, spread over all of them (every one
            // with SHELF_FAULT_POINTS=all).
            let every = std::env::var("SHELF_FAULT_POINTS").is_ok_and(|v| v == "all");
            let step = if every { 1 } else { points.div_ceil(8).max(1) };
            for k in (0..points).step_by(step as usize) {
                for errno in [5, 28] {
                    let d = dir("matrix");
                    let (s, faults) = fixture(&d);
                    if matches!(op, Op::Repair) {
                        damage(&s);
                    }
                    faults.fail_after(k as i64, errno);
                    let ok = run_op(&s, op, &bundle);
                    faults.heal();
                    if matches!(op, Op::Repair) {
                        let rerun = settled(|| s.repair());
                        assert!(rerun.unrepairable.is_empty(), "{:?}", rerun.unrepairable);
                    }
                    let report = settled_check(&s);
                    assert!(
                        report.faults.is_empty(),
                        "{op:?} failing at point {k}/{points} with {errno} (ok: {ok}): {:?}",
                        report.faults
                    );
                    for (v, b) in fixture_files() {
                        match read(&s, &v) {
                            Some(got) => assert!(got == b, "{op:?} {k} {errno}: {v} damaged"),
                            None => assert!(
                                matches!(op, Op::DeleteFile | Op::DeleteVersion | Op::Cleanup),
                                "{op:?} {k} {errno}: {v} lost"
                            ),
                        }
                    }
                    if let Some(got) = read(&s, "4.0") {
                        assert!(got == body(14, CHUNK_SIZE + 77), "a partial 4.0");
                    }
                    assert_eq!(report.pins, 0, "{op:?} {k} {errno}: pins left");
                    s.close().expect("close");
                    let _ = std::fs::remove_dir_all(d);
                    cases += 1;
                }
            }
        }
        assert!(cases >= 20, "{cases} cases");
    }

    /// The fixture's files in a plain store at `path` (closed again), with one version
    /// deleted so that compaction has free pages to give back.
    fn plain_fixture(path: &Path) {
        let s = Store::open(path).expect("open");
        s.create_user(&Owner::of("alice"), false).expect("alice");
        for (v, b) in fixture_files() {
            assert_eq!(put(&s, &v, &b).expect("fixture"), Published::Created);
        }
        assert_eq!(
            put(&s, "gone", &body(15, CHUNK_SIZE * 2)).expect("put"),
            Published::Created
        );
        assert_eq!(
            s.delete_version("alice", "pkg", "gone").expect("delete"),
            Deleted::Done
        );
        s.close().expect("close");
    }

    /// Opens the store at `path` plainly: it opens, checks clean and holds every fixture file.
    fn whole(path: &Path, what: &str) {
        let s = Store::open(path).unwrap_or_else(|e| panic!("{what}: it does not open: {e}"));
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{what}: {:?}", report.faults);
        assert_eq!(report.files, 3, "{what}");
        for (v, b) in fixture_files() {
            assert!(read(&s, &v).as_deref() == Some(&b[..]), "{what}: {v}");
        }
        s.close().expect("close");
    }

    /// Which of `points` fault points to try: 8 spread over them, or all with
    /// SHELF_FAULT_POINTS=all.
    fn chosen(points: u64) -> impl Iterator<Item = u64> {
        let every = std::env::var("SHELF_FAULT_POINTS").is_ok_and(|v| v == "all");
        let step = if every { 1 } else { points.div_ceil(8).max(1) };
        (0..points).step_by(step as usize)
    }

    /// Item 3 for restore: every write and sync of a restore fails in turn. The restore fails
    /// cleanly (an error, no panic), leaves nothing under the final name and no partial file,
    /// and a rerun completes into a store that checks clean with every file.
    #[test]
    fn a_restore_failing_at_any_point_leaves_nothing_and_a_rerun_completes() {
        let d = dir("restore");
        let src = d.join("src.redb");
        plain_fixture(&src);
        let stream = {
            let s = Store::open(&src).expect("open");
            let mut out = Vec::new();
            s.backup(&mut out).expect("backup");
            s.close().expect("close");
            out
        };
        let faults = Arc::new(Faults::default());
        let open = |p: &Path| open_faulty(p, &faults);
        let healthy = d.join("healthy.redb");
        crate::store::backup::restore_with(&stream[..], &healthy, &open).expect("restore");
        let points = faults.points.load(Ordering::SeqCst);
        whole(&healthy, "a healthy restore");
        eprintln!("fault matrix: Restore has {points} write/growth/sync points");
        let mut cases = 0;
        for k in chosen(points) {
            for errno in [5, 28] {
                let what = format!("restore failing at point {k}/{points} with {errno}");
                let out = d.join(format!("r-{k}-{errno}.redb"));
                let partial = d.join(format!("r-{k}-{errno}.redb.partial"));
                faults.fail_after(k as i64, errno);
                let r = crate::store::backup::restore_with(&stream[..], &out, &open);
                faults.heal();
                assert!(!partial.exists(), "{what}: the partial file was left");
                // The last points come after the final durable commit (closing the file):
                // a failure there costs nothing, and the restore stands.
                if let Err(e) = r {
                    assert!(
                        !e.to_string().contains("not what its table holds"),
                        "{what}: a panic inside redb: {e}"
                    );
                    assert!(
                        !out.exists(),
                        "{what}: a failed restore stands under its name"
                    );
                    crate::store::restore(&stream[..], &out).expect("the rerun");
                }
                whole(&out, &what);
                cases += 1;
            }
        }
        assert!(cases >= 8, "{cases} cases");
        let _ = std::fs::remove_dir_all(d);
    }

    /// Item 3 for compact: every write and sync of a compaction fails in turn. The database
    /// still opens, checks clean and holds every file; a rerun of compact completes and gives
    /// the space back.
    #[test]
    fn a_compaction_failing_at_any_point_leaves_the_database_whole() {
        let d = dir("compact");
        let template = d.join("template.redb");
        plain_fixture(&template);
        let faults = Arc::new(Faults::default());
        let open = |p: &Path| open_faulty(p, &faults);
        let healthy = d.join("healthy.redb");
        std::fs::copy(&template, &healthy).expect("copy");
        let before = faults.points.load(Ordering::SeqCst);
        let (was, now) = crate::store::stats::compact_with(&healthy, &open).expect("compact");
        let points = faults.points.load(Ordering::SeqCst) - before;
        assert!(now < was, "nothing given back: {was} -> {now}");
        whole(&healthy, "a healthy compaction");
        eprintln!("fault matrix: Compact has {points} write/growth/sync points");
        let mut cases = 0;
        for k in chosen(points) {
            for errno in [5, 28] {
                let what = format!("compact failing at point {k}/{points} with {errno}");
                let db = d.join(format!("c-{k}-{errno}.redb"));
                std::fs::copy(&template, &db).expect("copy");
                faults.fail_after(k as i64, errno);
                // Whether it failed or (at the points after its last commit) succeeded.
                let _ = crate::store::stats::compact_with(&db, &open);
                faults.heal();
                whole(&db, &what);
                let (_, after) = crate::store::compact(&db).expect("the rerun");
                assert!(after <= was, "{what}: {after} > {was}");
                whole(&db, &what);
                cases += 1;
            }
        }
        assert!(cases >= 8, "{cases} cases");
        let _ = std::fs::remove_dir_all(d);
    }
}
