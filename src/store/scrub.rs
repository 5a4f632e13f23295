//! The background scrub: re-reads every chunk at a bounded rate and checks that its bytes
//! still hash to its key, so that a bit flipped on disk is found while a backup still has a
//! good copy, not when a client downloads the file. Findings go to the log (with the files
//! they damage) and to counters that `/metrics` shows.
//!
//! Each step reads a few chunks in its own short read transaction, so the scrub never pins old
//! pages for long and never blocks a writer.

use super::*;
use crate::chunk::ChunkId;
use redb::{ReadableDatabase, ReadableTableMetadata};
use std::ops::Bound;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// Chunks read per step (one short read transaction each).
const STEP_CHUNKS: usize = 8;
/// Damaged chunks remembered for the status (the log has them all).
const KEEP_FAULTS: usize = 32;

/// The scrub's progress, shared with `/metrics` and the stats endpoint.
#[derive(Debug, Default)]
pub struct ScrubState {
    pub running: AtomicBool,
    pub passes_completed: AtomicU64,
    pub chunks_total: AtomicU64,
    pub bytes_total: AtomicU64,
    pub faults_total: AtomicU64,
    /// Chunks in the current pass when it began, and how many it has checked so far.
    pub pass_chunks: AtomicU64,
    pub pass_done: AtomicU64,
    /// Unix time the last complete pass ended (0: none yet).
    pub last_pass_end: AtomicU64,
    /// The most recent damaged chunks (hex ids).
    pub recent_faults: Mutex<Vec<String>>,
}

impl ScrubState {
    /// The current pass's progress in [0, 1] (1 between passes).
    pub fn progress(&self) -> f64 {
        let total = self.pass_chunks.load(Ordering::Relaxed);
        if !self.running.load(Ordering::Relaxed) || total == 0 {
            return 1.0;
        }
        (self.pass_done.load(Ordering::Relaxed) as f64 / total as f64).min(1.0)
    }
}

/// How the scrub runs.
#[derive(Debug, Clone, Copy)]
pub struct ScrubConfig {
    /// Bytes per second read at most.
    pub rate: u64,
    /// Pause between the end of one pass and the start of the next; the first pass starts
    /// after `min(interval, 5 min)`.
    pub interval: Duration,
}

impl Store {
    pub fn scrub_state(&self) -> &ScrubState {
        &self.scrub
    }

    /// Starts the scrub thread; it holds only a `Weak` reference and ends with the store.
    pub fn start_scrub(self: &Arc<Store>, cfg: ScrubConfig) -> Result<()> {
        if cfg.rate == 0 {
            return Ok(());
        }
        let weak = Arc::downgrade(self);
        thread::Builder::new()
            .name("shelf-scrub".into())
            .spawn(move || {
                let mut wait = cfg.interval.min(Duration::from_secs(300));
                loop {
                    if !sleep_while_alive(&weak, wait) {
                        return;
                    }
                    wait = cfg.interval;
                    match scrub_pass(&weak, cfg.rate) {
                        Ok(true) => {}
                        Ok(false) => return, // the store closed
                        Err(e) => {
                            log::error!("scrub: {e}");
                            if let Some(s) = weak.upgrade() {
                                s.scrub.running.store(false, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
            .map_err(|e| Error::Db("starting the scrub thread", Box::new(e.into())))?;
        Ok(())
    }

    /// The files (owner/package/version/file) whose bodies use chunk `id` (a slow scan, run
    /// only when the scrub finds damage).
    fn files_using_chunk(&self, id: &[u8; 32]) -> Result<Vec<String>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
        let mut bodies = Vec::new();
        for row in contents.iter().ctx("listing contents")? {
            let (k, v) = row.ctx("listing contents")?;
            let c: ContentRecord = decode(v.value())?;
            if c.chunks.contains(id) {
                bodies.push(*k.value());
            }
        }
        let mut names = Vec::new();
        if bodies.is_empty() {
            return Ok(names);
        }
        let files = txn.open_table(FILES).ctx("opening files")?;
        for row in files.iter().ctx("listing files")? {
            let (k, v) = row.ctx("listing files")?;
            let rec: FileRecord = decode(v.value())?;
            if bodies.contains(&rec.sha256) {
                let (o, _, n, ver, f) = k.value();
                names.push(format!("{o}/{n}/{ver}/{f}"));
            }
        }
        Ok(names)
    }
}

/// Sleeps up to `d` in short steps; false once the store is gone.
fn sleep_while_alive(weak: &std::sync::Weak<Store>, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if weak.strong_count() == 0 {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(Duration::from_millis(250)));
    }
}

/// One pass over every chunk; false if the store closed meanwhile.
fn scrub_pass(weak: &std::sync::Weak<Store>, rate: u64) -> Result<bool> {
    let started = Instant::now();
    let mut cursor: Option<[u8; 32]> = None;
    let mut bytes = 0u64;
    let mut chunks = 0u64;
    let mut faults = 0u64;
    {
        let Some(store) = weak.upgrade() else {
            return Ok(false);
        };
        let total = store
            .db()?
            .begin_read()
            .ctx("beginning a read")?
            .open_table(CHUNKS)
            .ctx("opening chunks")?
            .len()
            .ctx("counting chunks")?;
        let st = &store.scrub;
        st.pass_chunks.store(total, Ordering::Relaxed);
        st.pass_done.store(0, Ordering::Relaxed);
        st.running.store(true, Ordering::Relaxed);
        log::info!("scrub: pass started over {total} chunks at up to {rate} bytes/s");
    }
    loop {
        let Some(store) = weak.upgrade() else {
            return Ok(false);
        };
        let mut damaged = Vec::new();
        let mut step_bytes = 0u64;
        let mut step_chunks = 0u64;
        let mut last = None;
        {
            let txn = store.db()?.begin_read().ctx("beginning a scrub read")?;
            let table = txn.open_table(CHUNKS).ctx("opening chunks")?;
            let lower = match &cursor {
                Some(c) => Bound::Excluded(c),
                None => Bound::Unbounded,
            };
            let range = table
                .range::<&[u8; 32]>((lower, Bound::Unbounded))
                .ctx("reading chunks")?;
            for row in range.take(STEP_CHUNKS) {
                let (k, v) = row.ctx("reading a chunk")?;
                let id = *k.value();
                let data = v.value();
                step_bytes += data.len() as u64;
                step_chunks += 1;
                if ChunkId::of(data).0 != id {
                    damaged.push(id);
                }
                last = Some(id);
            }
        }
        let st = &store.scrub;
        if last.is_none() {
            st.running.store(false, Ordering::Relaxed);
            st.passes_completed.fetch_add(1, Ordering::Relaxed);
            st.last_pass_end.store(now(), Ordering::Relaxed);
            let level = if faults > 0 {
                log::Level::Error
            } else {
                log::Level::Info
            };
            log::log!(
                level,
                "scrub: pass done: {chunks} chunks, {bytes} bytes, {faults} damaged, in {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return Ok(true);
        }
        cursor = last;
        for id in damaged {
            faults += 1;
            st.faults_total.fetch_add(1, Ordering::Relaxed);
            let name = hex::encode(id);
            let users = store.files_using_chunk(&id).unwrap_or_default();
            log::error!(
                "scrub: chunk {name} is damaged (its bytes no longer hash to its id); files that \
                 use it: {}; restore them from a backup or re-upload them",
                if users.is_empty() {
                    "none".to_string()
                } else {
                    users.join(", ")
                }
            );
            if let Ok(mut recent) = st.recent_faults.lock() {
                if recent.len() == KEEP_FAULTS {
                    recent.remove(0);
                }
                recent.push(name);
            }
        }
        bytes += step_bytes;
        chunks += step_chunks;
        st.bytes_total.fetch_add(step_bytes, Ordering::Relaxed);
        st.chunks_total.fetch_add(step_chunks, Ordering::Relaxed);
        st.pass_done.fetch_add(step_chunks, Ordering::Relaxed);
        drop(store);
        // Stay under the rate: the pass so far should have taken bytes / rate seconds.
        let due = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let spent = started.elapsed();
        if due > spent && !sleep_while_alive(weak, due - spent) {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;

    #[test]
    fn a_pass_finds_a_damaged_chunk_and_counts_everything() {
        let t = temp_store();
        let s = &t.store;
        let big: Vec<u8> = (0..CHUNK_SIZE * 3 + 5).map(|i| (i % 199) as u8).collect();
        for (name, data) in [("big", big.as_slice()), ("small", b"small".as_slice())] {
            s.upload(
                &FileCoords::parse("alice", "pkg", "1.0", name),
                "alice",
                data,
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        let id = ChunkId::of(b"small").0;
        s.quick_write(|txn| {
            txn.open_table(CHUNKS)
                .ctx("chunks")?
                .insert(&id, b"smalL".as_slice())
                .ctx("damage")?;
            Ok(())
        })
        .expect("damage");
        s.start_scrub(ScrubConfig {
            rate: 1 << 40,
            interval: Duration::from_millis(20),
        })
        .expect("scrub");
        let st = s.scrub_state();
        let deadline = Instant::now() + Duration::from_secs(20);
        while st.passes_completed.load(Ordering::Relaxed) < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(st.passes_completed.load(Ordering::Relaxed) >= 2);
        let passes = st.passes_completed.load(Ordering::Relaxed);
        assert!(st.faults_total.load(Ordering::Relaxed) >= passes);
        assert!(st.chunks_total.load(Ordering::Relaxed) >= 5 * passes);
        assert!(st.bytes_total.load(Ordering::Relaxed) >= big.len() as u64 * passes);
        let recent = st.recent_faults.lock().expect("lock").clone();
        assert_eq!(recent.first(), Some(&hex::encode(id)));
        assert_eq!(
            s.files_using_chunk(&id).expect("files"),
            vec!["alice/pkg/1.0/small".to_string()]
        );
    }
}
