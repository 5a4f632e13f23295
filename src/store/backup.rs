//! Online backup: a logical copy of every table, taken from one read snapshot while the server
//! keeps serving, streamed in a small framed format and rebuilt into a new redb file that
//! `shelf serve --db` opens directly. (redb forbids copying a live file: its pages are only
//! consistent at commit boundaries, and a copy taken mid-commit is a corrupt database.)
//!
//! Stream format (all integers little-endian):
//! - header: `SHELF-BACKUP\n`, u32 format (1), u32 schema version, u64 chunk size;
//! - rows: u8 table index (see `tables!`), u32 key length, key bytes, u32 value length, value
//!   bytes — the keys and values as redb encodes them;
//! - trailer: u8 `END`, u64 row count, the sha256 of every byte before the trailer.
//!
//! A backup leaves out the pins of uploads in progress and every chunk that only they hold:
//! the copy is the registry as of the snapshot, with exact reference counts.

use super::*;
use redb::{Key, ReadTransaction, ReadableDatabase, ReadableTableMetadata, TableHandle, Value};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};

const MAGIC: &[u8; 13] = b"SHELF-BACKUP\n";
const FORMAT: u32 = 1;
const END: u8 = 0xFF;
/// Bounds on a row, so a hostile or damaged stream cannot make the restore allocate at will.
const MAX_KEY: usize = 1 << 20;
const MAX_VALUE: usize = 16 << 20;
/// Rows written per restore transaction, by bytes.
const RESTORE_BATCH: u64 = 256 << 20;

/// What a backup or a restore moved.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BackupSummary {
    pub rows: u64,
    /// Bytes of the stream.
    pub bytes: u64,
    pub chunks: u64,
    pub files: u64,
}

/// Calls `$m!(index, TABLE)` for every table a backup carries, in stream order. `uploads` is
/// left out on purpose (pins of uploads in progress belong to the running process).
macro_rules! tables {
    ($m:ident) => {
        $m!(0, META);
        $m!(1, USERS);
        $m!(2, TOKENS);
        $m!(3, USER_TOKENS);
        $m!(4, MEMBERS);
        $m!(5, TEAMS);
        $m!(6, TEAM_MEMBERS);
        $m!(7, AUDIT);
        $m!(8, PACKAGES);
        $m!(9, VERSIONS);
        $m!(10, FILES);
        $m!(11, VERSION_ORDER);
        $m!(12, PACKAGE_ORDER);
        $m!(13, PACKAGE_VERSIONS);
        $m!(14, OWNER_VERSIONS);
        $m!(15, CONTENTS);
        $m!(16, CONTENT_OWNERS);
        $m!(17, CHUNK_REFS);
        $m!(18, CHUNKS);
        $m!(19, OWNER_BYTES);
        $m!(20, QUOTAS);
        $m!(21, CLEANUP_RULES);
        $m!(22, VERSION_DOWNLOADS);
        $m!(23, SESSIONS);
    };
}

/// Names of the tables a backup carries (tests compare them with the database's own list).
pub fn backup_table_names() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! name {
        ($i:expr, $t:ident) => {
            names.push($t.name());
        };
    }
    tables!(name);
    names
}

/// Writes frames and keeps the running hash and counts.
struct Framer<'a, W: Write> {
    w: W,
    hash: Sha256,
    summary: BackupSummary,
    /// Set when the store closes: a backup in progress gives way instead of holding it open.
    closing: &'a std::sync::atomic::AtomicBool,
}

impl<W: Write> Framer<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.summary.bytes += bytes.len() as u64;
        self.w.write_all(bytes)
    }

    fn row(&mut self, table: u8, key: &[u8], value: &[u8]) -> Result<()> {
        if self.summary.rows % 64 == 0 && self.closing.load(Ordering::Relaxed) {
            return Err(Error::Closed);
        }
        let io = |e| Error::Body(e);
        self.put(&[table]).map_err(io)?;
        self.put(&(key.len() as u32).to_le_bytes()).map_err(io)?;
        self.put(key).map_err(io)?;
        self.put(&(value.len() as u32).to_le_bytes()).map_err(io)?;
        self.put(value).map_err(io)?;
        self.summary.rows += 1;
        Ok(())
    }
}

fn dump_table<K: Key + 'static, V: Value + 'static, W: Write>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
    index: u8,
    out: &mut Framer<W>,
) -> Result<()> {
    let table = txn.open_table(def).ctx("opening a table to back up")?;
    for row in table.iter().ctx("reading a table to back up")? {
        let (k, v) = row.ctx("reading a row to back up")?;
        out.row(
            index,
            K::as_bytes(&k.value()).as_ref(),
            V::as_bytes(&v.value()).as_ref(),
        )?;
    }
    Ok(())
}

impl Store {
    /// Streams a consistent logical copy of the registry into `w` from one read snapshot.
    /// Pending counters and audit entries are written first, so the copy includes them.
    /// Write errors on `w` (a client that went away) end the backup with `Error::Body`.
    pub fn backup(&self, w: impl Write) -> Result<BackupSummary> {
        if let Err(e) = self.flush_pending() {
            log::warn!("backup: writing pending counters first failed: {e}");
        }
        let txn = self
            .db()?
            .begin_read()
            .ctx("beginning the backup snapshot")?;
        // Pins of uploads in progress: their chunks' counts include them, the copy must not.
        let mut pins: HashMap<[u8; 32], u64> = HashMap::new();
        for row in txn
            .open_table(UPLOADS)
            .ctx("opening uploads")?
            .iter()
            .ctx("reading pins")?
        {
            *pins.entry(*row.ctx("reading pins")?.1.value()).or_default() += 1;
        }
        let mut out = Framer {
            w: io::BufWriter::with_capacity(1 << 20, w),
            hash: Sha256::new(),
            summary: BackupSummary::default(),
            closing: &self.closing,
        };
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(&FORMAT.to_le_bytes());
        header.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
        header.extend_from_slice(&(CHUNK_SIZE as u64).to_le_bytes());
        out.put(&header).map_err(Error::Body)?;
        let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
        macro_rules! dump {
            (17, $t:ident) => {
                for row in refs.iter().ctx("reading chunk counts")? {
                    let (k, v) = row.ctx("reading chunk counts")?;
                    let count =
                        v.value() - pins.get(k.value()).copied().unwrap_or(0).min(v.value());
                    if count > 0 {
                        out.row(17, k.value(), &count.to_le_bytes())?;
                    }
                }
            };
            (18, $t:ident) => {
                let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
                for row in chunks.iter().ctx("reading chunks")? {
                    let (k, v) = row.ctx("reading chunks")?;
                    let id = k.value();
                    if !pins.is_empty() {
                        let held = refs
                            .get(id)
                            .ctx("reading a chunk count")?
                            .map(|g| g.value());
                        if held.unwrap_or(0) <= pins.get(id).copied().unwrap_or(0) {
                            continue; // held only by uploads in progress
                        }
                    }
                    out.row(18, id, v.value())?;
                    out.summary.chunks += 1;
                }
            };
            ($i:expr, $t:ident) => {
                dump_table(&txn, $t, $i, &mut out)?;
            };
        }
        tables!(dump);
        out.summary.files = txn
            .open_table(FILES)
            .ctx("opening files")?
            .len()
            .ctx("counting files")?;
        let digest: [u8; 32] = out.hash.clone().finalize().into();
        let mut trailer = vec![END];
        trailer.extend_from_slice(&out.summary.rows.to_le_bytes());
        trailer.extend_from_slice(&digest);
        out.w.write_all(&trailer).map_err(Error::Body)?;
        out.w.flush().map_err(Error::Body)?;
        out.summary.bytes += trailer.len() as u64;
        Ok(out.summary)
    }
}

/// Reads the stream and keeps the running hash.
struct Unframer<R: Read> {
    r: R,
    hash: Sha256,
    bytes: u64,
}

enum Frame {
    Row {
        table: u8,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    End {
        rows: u64,
        digest: [u8; 32],
    },
}

fn damaged(msg: impl Into<String>) -> Error {
    Error::Rejected(format!("the backup stream is damaged: {}", msg.into()))
}

impl<R: Read> Unframer<R> {
    fn exact(&mut self, buf: &mut [u8], hashed: bool) -> Result<()> {
        self.r.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                damaged("it ends early (an interrupted backup?)")
            } else {
                Error::Body(e)
            }
        })?;
        if hashed {
            self.hash.update(&*buf);
        }
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// The next `n` bytes (hashed), read straight into a new vector: no zeroing of a
    /// megabyte per chunk first (measured: a tenth of the restore's time).
    fn bytes_of(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut v = Vec::with_capacity(n);
        (&mut self.r)
            .take(n as u64)
            .read_to_end(&mut v)
            .map_err(Error::Body)?;
        if v.len() != n {
            return Err(damaged("it ends early (an interrupted backup?)"));
        }
        self.hash.update(&v);
        self.bytes += n as u64;
        Ok(v)
    }

    fn len(&mut self, max: usize, what: &str) -> Result<usize> {
        let mut b = [0u8; 4];
        self.exact(&mut b, true)?;
        let n = u32::from_le_bytes(b) as usize;
        if n > max {
            return Err(damaged(format!("a {what} of {n} bytes")));
        }
        Ok(n)
    }

    fn next(&mut self) -> Result<Frame> {
        let mut tag = [0u8; 1];
        self.exact(&mut tag, false)?;
        if tag[0] == END {
            let mut rows = [0u8; 8];
            let mut digest = [0u8; 32];
            self.exact(&mut rows, false)?;
            self.exact(&mut digest, false)?;
            return Ok(Frame::End {
                rows: u64::from_le_bytes(rows),
                digest,
            });
        }
        self.hash.update(tag);
        let klen = self.len(MAX_KEY, "key")?;
        let key = self.bytes_of(klen)?;
        let vlen = self.len(MAX_VALUE, "value")?;
        let value = self.bytes_of(vlen)?;
        Ok(Frame::Row {
            table: tag[0],
            key,
            value,
        })
    }
}

/// Whether bytes from a stream are a well-formed encoding of a key or value type, checked
/// before redb decodes them: redb's decoders index and `unwrap` (a tuple's length prefix that
/// runs past the end, a `&str` that is not UTF-8), so a hostile stream would panic inside them.
/// Found by the `backup_stream` fuzz target under libFuzzer. The layout is redb's: a tuple of
/// fixed-width elements is their bytes in order; otherwise every element but the last that has
/// no fixed width is preceded, all at the front, by its length as a varint (below 254: one
/// byte; 254: two bytes more, little-endian; 255: four).
pub(super) trait Wire {
    const FIXED: Option<usize>;
    fn well_formed(b: &[u8]) -> bool;
}

impl Wire for &str {
    const FIXED: Option<usize> = None;
    fn well_formed(b: &[u8]) -> bool {
        std::str::from_utf8(b).is_ok()
    }
}

impl Wire for &[u8] {
    const FIXED: Option<usize> = None;
    fn well_formed(_: &[u8]) -> bool {
        true
    }
}

macro_rules! fixed_wire {
    ($($t:ty => $w:expr),*) => {$(
        impl Wire for $t {
            const FIXED: Option<usize> = Some($w);
            fn well_formed(b: &[u8]) -> bool {
                b.len() == $w
            }
        }
    )*};
}
fixed_wire!(u64 => 8, u32 => 4, u8 => 1, () => 0, &[u8; 32] => 32);

/// redb's varint length at the front of `b`: (length, bytes it took), if it is all there.
fn varint(b: &[u8]) -> Option<(usize, usize)> {
    match *b.first()? {
        n @ 0..=253 => Some((usize::from(n), 1)),
        254 => Some((
            usize::from(u16::from_le_bytes(b.get(1..3)?.try_into().ok()?)),
            3,
        )),
        _ => Some((
            usize::try_from(u32::from_le_bytes(b.get(1..5)?.try_into().ok()?)).ok()?,
            5,
        )),
    }
}

/// One element of a tuple: its fixed width (`None`: variable) and its check.
type Part = (Option<usize>, fn(&[u8]) -> bool);

/// Checks a tuple of these elements.
fn tuple_well_formed(b: &[u8], parts: &[Part]) -> bool {
    if let Some(total) = parts.iter().map(|p| p.0).sum::<Option<usize>>() {
        // All fixed: the elements back to back.
        if b.len() != total {
            return false;
        }
        let mut at = 0;
        return parts.iter().all(|(w, ok)| {
            let w = w.unwrap_or(0);
            let piece = &b[at..at + w];
            at += w;
            ok(piece)
        });
    }
    let Some((last, init)) = parts.split_last() else {
        return b.is_empty();
    };
    let mut lens = Vec::with_capacity(init.len());
    let mut at = 0;
    for (w, _) in init {
        match w {
            Some(w) => lens.push(*w),
            None => match b.get(at..).and_then(varint) {
                Some((len, took)) => {
                    lens.push(len);
                    at += took;
                }
                None => return false,
            },
        }
    }
    for ((_, ok), len) in init.iter().zip(lens) {
        match at.checked_add(len).and_then(|end| b.get(at..end)) {
            Some(piece) if ok(piece) => at += len,
            _ => return false,
        }
    }
    let rest = &b[at..];
    last.0.is_none_or(|w| rest.len() == w) && (last.1)(rest)
}

macro_rules! tuple_wire {
    ($($t:ident),+) => {
        impl<$($t: Wire),+> Wire for ($($t,)+) {
            const FIXED: Option<usize> = None;
            fn well_formed(b: &[u8]) -> bool {
                let parts: &[Part] = &[$(($t::FIXED, $t::well_formed)),+];
                tuple_well_formed(b, parts)
            }
        }
    };
}
tuple_wire!(A, B);
tuple_wire!(A, B, C);
tuple_wire!(A, B, C, D);
tuple_wire!(A, B, C, D, E);

/// Inserts `first` and the rows after it that belong to the same table, until the batch budget
/// is spent; returns the frame that ends the run.
fn restore_run<K: Key + Wire + 'static, V: Value + Wire + 'static, R: Read>(
    txn: &WriteTransaction,
    def: TableDefinition<K, V>,
    index: u8,
    first: (Vec<u8>, Vec<u8>),
    input: &mut Unframer<R>,
    budget: &mut u64,
    rows: &mut u64,
) -> Result<Option<Frame>> {
    let mut table = txn.open_table(def).ctx("creating a restored table")?;
    let (mut key, mut value) = first;
    loop {
        if K::fixed_width().is_some_and(|w| w != key.len())
            || V::fixed_width().is_some_and(|w| w != value.len())
            || !K::well_formed(&key)
            || !V::well_formed(&value)
        {
            return Err(damaged(format!("a row of {} is malformed", def.name())));
        }
        table
            .insert(K::from_bytes(&key), V::from_bytes(&value))
            .ctx("writing a restored row")?;
        *rows += 1;
        *budget = budget.saturating_sub((key.len() + value.len()) as u64);
        if *budget == 0 {
            return Ok(None);
        }
        match input.next()? {
            Frame::Row {
                table: t,
                key: k,
                value: v,
            } if t == index => {
                key = k;
                value = v;
            }
            other => return Ok(Some(other)),
        }
    }
}

/// Rebuilds a database at `out` (which must not exist) from a backup stream. The file is
/// written as `out.partial` and renamed into place only once the whole stream is in and its
/// checksum matches; on any error the partial file is removed.
pub fn restore(input: impl Read, out: &Path) -> Result<BackupSummary> {
    restore_with(input, out, &|path| {
        redb::Builder::new()
            .set_cache_size(DEFAULT_CACHE_BYTES)
            .create(path)
    })
}

/// Opens the file a restore or a compaction writes: redb's file, or in tests one whose
/// writes and syncs fail at chosen points.
pub(crate) type FileOpener<'a> =
    &'a dyn Fn(&Path) -> std::result::Result<Database, redb::DatabaseError>;

/// `restore`, with the new database opened by `open`.
pub(crate) fn restore_with(
    input: impl Read,
    out: &Path,
    open: FileOpener<'_>,
) -> Result<BackupSummary> {
    if out.exists() {
        return Err(Error::Rejected(format!(
            "{} exists already; a backup never overwrites a file",
            out.display()
        )));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    // redb decodes keys with `unwrap` (a `&str` key that is not UTF-8 panics inside it): a
    // damaged or hostile stream must be an error that removes the partial file, not a panic.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        restore_into(input, &partial, open)
    }))
    .unwrap_or_else(|_| Err(damaged("a row is not what its table holds")));
    match result {
        Ok(summary) => {
            std::fs::rename(&partial, out).map_err(|e| {
                Error::Body(io::Error::new(
                    e.kind(),
                    format!("renaming {} into place: {e}", partial.display()),
                ))
            })?;
            Ok(summary)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn restore_into(input: impl Read, path: &Path, open: FileOpener<'_>) -> Result<BackupSummary> {
    let mut input = Unframer {
        // Small: reads of a whole chunk bypass the buffer instead of being copied through it.
        r: io::BufReader::with_capacity(64 << 10, input),
        hash: Sha256::new(),
        bytes: 0,
    };
    let mut header = [0u8; 13 + 4 + 4 + 8];
    input.exact(&mut header, true)?;
    if &header[..13] != MAGIC {
        return Err(damaged("it does not start like a shelf backup"));
    }
    let word =
        |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if word(13) != FORMAT {
        return Err(Error::Rejected(format!(
            "backup format {} is not one this shelf reads ({FORMAT})",
            word(13)
        )));
    }
    // Older schemas restore as they were; `Store::open` migrates them.
    if !(1..=SCHEMA_VERSION).contains(&word(17)) {
        return Err(Error::Rejected(format!(
            "the backup has schema version {}, this shelf writes {SCHEMA_VERSION}; restore it with \
             the shelf version that made it",
            word(17)
        )));
    }
    create_private(path).map_err(|e| Error::Db("creating the backup file", Box::new(e.into())))?;
    let db = open(path).map_err(|e| Error::Db("creating the backup file", Box::new(e.into())))?;
    let mut summary = BackupSummary::default();
    let mut pending = Some(input.next()?);
    loop {
        let mut txn = db.begin_write().ctx("beginning a restore transaction")?;
        // Batches are not synced on their own: the file is not in place until the final,
        // durable commit below, and one sync at the end competes less with a live server's
        // commits on the same disk than one per batch.
        txn.set_durability(Durability::None)
            .ctx("setting restore durability")?;
        let mut budget = RESTORE_BATCH;
        let mut finished = None;
        while let Some(frame) = pending.take() {
            match frame {
                Frame::End { rows, digest } => {
                    finished = Some((rows, digest));
                    break;
                }
                Frame::Row { table, key, value } => {
                    macro_rules! restore {
                        ($i:expr, $t:ident) => {
                            if table == $i {
                                pending = restore_run(
                                    &txn,
                                    $t,
                                    $i,
                                    (key, value),
                                    &mut input,
                                    &mut budget,
                                    &mut summary.rows,
                                )?;
                                if budget == 0 {
                                    break;
                                }
                                continue;
                            }
                        };
                    }
                    tables!(restore);
                    return Err(damaged(format!("unknown table {table}")));
                }
            }
        }
        txn.commit().ctx("committing restored rows")?;
        if let Some((rows, digest)) = finished {
            let got: [u8; 32] = input.hash.clone().finalize().into();
            if rows != summary.rows || got != digest {
                return Err(damaged("its checksum does not match"));
            }
            summary.bytes = input.bytes;
            break;
        }
        if pending.is_none() {
            pending = Some(input.next()?);
        }
    }
    // Tables a backup leaves out still exist in a database shelf opens.
    let txn = db.begin_write().ctx("beginning a restore transaction")?;
    txn.open_table(UPLOADS).ctx("creating uploads")?;
    summary.chunks = txn
        .open_table(CHUNKS)
        .ctx("opening chunks")?
        .len()
        .ctx("counting chunks")?;
    summary.files = txn
        .open_table(FILES)
        .ctx("opening files")?
        .len()
        .ctx("counting files")?;
    txn.commit().ctx("committing the restore")?;
    drop(db);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;

    fn up(s: &Store, file: &str, data: &[u8]) {
        s.upload(
            &FileCoords::parse("alice", "pkg", "1.0", file),
            "alice",
            data,
            Want::default(),
            |_| Ok(()),
        )
        .expect("upload");
    }

    fn read_all(s: &Store, file: &str) -> Vec<u8> {
        let (_, mut r) = s
            .open_file(&FileCoords::parse("alice", "pkg", "1.0", file))
            .expect("open")
            .expect("exists");
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        out
    }

    #[test]
    fn every_table_is_carried_but_pins() {
        let t = temp_store();
        let txn = t.store.db().expect("db").begin_read().expect("read");
        let mut have: Vec<String> = txn
            .list_tables()
            .expect("tables")
            .map(|h| h.name().to_string())
            .filter(|n| n != "uploads")
            .collect();
        have.sort();
        let mut carried: Vec<String> = backup_table_names().iter().map(|s| s.to_string()).collect();
        carried.sort();
        assert_eq!(have, carried, "a table is missing from the backup's list");
    }

    #[test]
    fn round_trip_without_pins() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("alice"), false).expect("user"));
        let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 77)
            .map(|i| (i * 13 % 251) as u8)
            .collect();
        up(s, "big.bin", &big);
        up(s, "copy.bin", &big);
        up(s, "empty", b"");
        up(s, "small.txt", b"hello");
        // A chunk held only by an upload in progress stays out of the copy.
        let orphan = crate::chunk::ChunkId::of(b"in flight").0;
        s.quick_write(|txn| {
            txn.open_table(CHUNKS)
                .ctx("chunks")?
                .insert(&orphan, b"in flight".as_slice())
                .ctx("chunk")?;
            txn.open_table(CHUNK_REFS)
                .ctx("refs")?
                .insert(&orphan, 1)
                .ctx("ref")?;
            txn.open_table(UPLOADS)
                .ctx("uploads")?
                .insert((999, 0), &orphan)
                .ctx("pin")?;
            Ok(())
        })
        .expect("pin");
        let mut stream = Vec::new();
        let made = s.backup(&mut stream).expect("backup");
        assert_eq!(made.files, 4);
        assert_eq!(made.bytes, stream.len() as u64);
        let out = s.path().with_file_name("copy.redb");
        let restored = restore(stream.as_slice(), &out).expect("restore");
        assert_eq!(restored.rows, made.rows);
        assert_eq!(restored.chunks, made.chunks);
        assert_eq!(
            restored.chunks, 4,
            "two full chunks, a tail, hello; no pinned chunk"
        );
        let copy = Store::open(&out).expect("open the copy");
        let report = copy.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        assert_eq!(report.pins, 0);
        assert_eq!(read_all(&copy, "big.bin"), big);
        assert_eq!(read_all(&copy, "copy.bin"), big);
        assert_eq!(read_all(&copy, "small.txt"), b"hello");
        assert!(copy.get_user("alice").expect("get").is_some());
        copy.close().expect("close");
        // Never over an existing file.
        assert!(restore(stream.as_slice(), &out).is_err());
    }

    #[test]
    fn a_hostile_row_is_an_error_not_a_panic() {
        // A well-formed stream with a correct checksum whose users key is not UTF-8 (redb
        // unwraps inside `from_bytes`).
        let mut stream = MAGIC.to_vec();
        stream.extend_from_slice(&FORMAT.to_le_bytes());
        stream.extend_from_slice(&SCHEMA_VERSION.to_le_bytes());
        stream.extend_from_slice(&(CHUNK_SIZE as u64).to_le_bytes());
        stream.push(1);
        stream.extend_from_slice(&1u32.to_le_bytes());
        stream.push(0xFF);
        stream.extend_from_slice(&1u32.to_le_bytes());
        stream.push(1);
        let digest: [u8; 32] = Sha256::digest(&stream).into();
        stream.push(END);
        stream.extend_from_slice(&1u64.to_le_bytes());
        stream.extend_from_slice(&digest);
        let t = temp_store();
        let out = t.store.path().with_file_name("evil.redb");
        let err = restore(stream.as_slice(), &out).expect_err("refused");
        assert!(err.to_string().contains("damaged"), "{err}");
        assert!(!out.exists());
        assert!(!t.store.path().with_file_name("evil.redb.partial").exists());
    }

    #[test]
    fn a_damaged_stream_leaves_no_file() {
        let t = temp_store();
        let s = &t.store;
        up(s, "a", &vec![7u8; CHUNK_SIZE + 10]);
        let mut stream = Vec::new();
        s.backup(&mut stream).expect("backup");
        let dir = s.path().parent().expect("dir").to_path_buf();
        for (i, damage) in [
            Box::new(|v: &mut Vec<u8>| {
                let at = v.len() / 2;
                v[at] ^= 1;
            }) as Box<dyn Fn(&mut Vec<u8>)>,
            Box::new(|v: &mut Vec<u8>| v.truncate(v.len() - 40)),
            Box::new(|v: &mut Vec<u8>| v.truncate(v.len() / 3)),
            Box::new(|v: &mut Vec<u8>| v[0] = b'X'),
        ]
        .iter()
        .enumerate()
        {
            let mut bad = stream.clone();
            damage(&mut bad);
            let out = dir.join(format!("bad{i}.redb"));
            let err = restore(bad.as_slice(), &out).expect_err("damage found");
            assert!(err.to_string().contains("damaged"), "{err}");
            assert!(!out.exists());
            assert!(!dir.join(format!("bad{i}.redb.partial")).exists());
        }
    }

    /// Found by libFuzzer (`cargo +nightly fuzz run backup_stream`): a row whose tuple key's
    /// length prefix runs past its end made redb's decoder index out of bounds. `restore`
    /// caught the panic, but a panic is no way to refuse hostile bytes; now the row is checked
    /// first and refused as damaged.
    #[test]
    fn a_malformed_row_is_refused_before_redb_decodes_it() {
        let input = include_bytes!("../../fuzz/corpus/backup_stream/regression-redb-varint");
        let dir = std::env::temp_dir().join(format!(
            "shelf-restore-varint-{}-{}",
            std::process::id(),
            new_token().expect("randomness")
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let out = dir.join("r.redb");
        // No catch_unwind here: a panic fails the test.
        let r = restore_into(&input[..], &out, &|p| redb::Database::create(p));
        assert!(matches!(r, Err(Error::Rejected(_))), "{r:?}");
        let _ = std::fs::remove_dir_all(dir);
        // And the well-formedness checks by hand.
        assert!(<(&str, &str)>::well_formed(b"\x01ab"));
        assert!(
            !<(&str, &str)>::well_formed(b"\x05ab"),
            "a length past the end"
        );
        assert!(!<(&str, &str)>::well_formed(b"\xfe\x01"), "a cut varint");
        assert!(!<&str>::well_formed(b"\xff"), "not UTF-8");
        assert!(<(u64, u64)>::well_formed(&[0; 16]));
        assert!(!<(u64, u64)>::well_formed(&[0; 15]));
        assert!(<(u64, &str)>::well_formed(b"\0\0\0\0\0\0\0\0bob"));
    }
}
