//! The registry's state in one redb file: users, tokens, packages, versions, files and the
//! content-addressed chunks that hold file bytes.
//!
//! Owns the schema, the record codec, uploads (chunk pins and the publishing commit), downloads
//! (one snapshot, chunk by chunk), deletes and reference counts. Knows nothing about HTTP.
//!
//! Invariants kept here (DESIGN.md §3):
//! - a file row is written only in the durable transaction that publishes it, together with its
//!   package and version rows and the decision whether it conflicts (409);
//! - `chunk_refs[c]` = references to `c` from published files + pins from uploads in progress;
//!   a chunk row exists exactly when its count is > 0, and both change in the same transaction;
//! - chunk rows are immutable once written;
//! - no write transaction is held while waiting on the network: the body is read between
//!   transactions, one chunk at a time.

use crate::chunk::{ChunkId, Chunker, CHUNK_SIZE};
use redb::{
    Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition, WriteTransaction,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// Version of the on-disk layout. A change to any table or record bumps it and adds a migration.
pub const SCHEMA_VERSION: u32 = 1;
/// First byte of every bincode record: the record's own format version.
const RECORD_V1: u8 = 1;
/// The only package type shelf serves; part of every package key so other types can follow.
pub const GENERIC: &str = "generic";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens");
type PackageKey<'a> = (&'a str, &'a str, &'a str);
type VersionKey<'a> = (&'a str, &'a str, &'a str, &'a str);
type FileKey<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
const PACKAGES: TableDefinition<PackageKey, &[u8]> = TableDefinition::new("packages");
const VERSIONS: TableDefinition<VersionKey, &[u8]> = TableDefinition::new("versions");
const FILES: TableDefinition<FileKey, &[u8]> = TableDefinition::new("files");
const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
const CHUNK_REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("chunk_refs");
/// (upload id, sequence number) → chunk pinned by that upload in progress.
const UPLOADS: TableDefinition<(u64, u32), &[u8; 32]> = TableDefinition::new("uploads");

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug)]
pub enum Error {
    /// redb failed; the string says what shelf was doing.
    Db(&'static str, Box<redb::Error>),
    /// Another process (a running server) holds the database file.
    InUse(PathBuf),
    /// A record or the schema is not what this build understands.
    Corrupt(String),
    /// Reading the upload body failed (truncated, malformed, too slow, too large): nothing stored.
    Body(io::Error),
    /// The committer thread is gone (only during shutdown).
    Closed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Db(what, e) => write!(f, "database error while {what}: {e}"),
            Error::InUse(p) => write!(
                f,
                "the database {} is in use by another process (a running shelf server?); stop it first",
                p.display()
            ),
            Error::Corrupt(m) => write!(f, "database content not understood: {m}"),
            Error::Body(e) => write!(f, "reading the request body failed: {e}"),
            Error::Closed => write!(f, "the store is shutting down"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches what shelf was doing to any redb error.
trait Context<T> {
    fn ctx(self, what: &'static str) -> Result<T>;
}

impl<T, E: Into<redb::Error>> Context<T> for std::result::Result<T, E> {
    fn ctx(self, what: &'static str) -> Result<T> {
        self.map_err(|e| Error::Db(what, Box::new(e.into())))
    }
}

// ---------------------------------------------------------------------------------------------
// Records

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UserRecord {
    /// Display form of the login, as created.
    pub login: String,
    pub is_admin: bool,
    pub active: bool,
    pub created: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Lower-cased login of the owner.
    pub user: String,
    pub name: String,
    pub created: u64,
    /// Last eight characters of the token, to tell tokens apart in listings.
    pub last_eight: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PackageRecord {
    pub name: String,
    pub created: u64,
    pub creator: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub version: String,
    pub created: u64,
    pub creator: String,
    pub downloads: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub created: u64,
    pub creator: String,
    /// Chunk ids in order; all but the last hold exactly `CHUNK_SIZE` bytes.
    pub chunks: Vec<[u8; 32]>,
}

fn encode<T: Serialize>(rec: &T) -> Result<Vec<u8>> {
    let mut out = vec![RECORD_V1];
    bincode::serialize_into(&mut out, rec)
        .map_err(|e| Error::Corrupt(format!("cannot encode record: {e}")))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&RECORD_V1, rest)) => bincode::deserialize(rest)
            .map_err(|e| Error::Corrupt(format!("cannot decode record: {e}"))),
        Some((v, _)) => Err(Error::Corrupt(format!("unknown record format {v}"))),
        None => Err(Error::Corrupt("empty record".into())),
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Case folding for keys, rune by rune like Go's `strings.ToLower` (which Gitea uses): no
/// context-dependent rules, so a final `Σ` folds to `σ` as in Gitea, not to `ς`.
pub fn fold_case(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

/// The lower-cased key of a file and the display forms to store if the rows are new.
/// Lower-casing is Unicode-aware (versions may be any Unicode), as Gitea's `strings.ToLower`.
#[derive(Clone, Debug)]
pub struct FileCoords {
    pub owner: String,
    pub name: String,
    pub version: String,
    pub file: String,
}

impl FileCoords {
    pub fn new(owner: &str, name: &str, version: &str, file: &str) -> FileCoords {
        FileCoords {
            owner: owner.to_string(),
            name: name.to_string(),
            version: version.to_string(),
            file: file.to_string(),
        }
    }

    fn lower(&self) -> [String; 4] {
        [
            fold_case(&self.owner),
            fold_case(&self.name),
            fold_case(&self.version),
            fold_case(&self.file),
        ]
    }
}

/// What a publish came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    Created,
    /// A file of that name (in any case) already exists in the version; nothing changed.
    Conflict,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NoVersion,
    NoFile,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    Created(String),
    NoSuchUser,
    NameTaken,
}

// ---------------------------------------------------------------------------------------------
// The committer: one thread that runs durable write jobs in batches (group commit).

type Finisher = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&WriteTransaction) -> Option<Finisher> + Send>;

/// Most jobs one durable commit carries; bounds the latency a job can add to its batch-mates.
const MAX_BATCH: usize = 128;

fn run_committer(db: Arc<Database>, jobs: mpsc::Receiver<Job>) {
    let mut pending: Vec<Job> = Vec::new();
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(job) => pending.push(job),
                Err(_) => return,
            }
        }
        while pending.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => pending.push(job),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(mut t) => {
                t.set_quick_repair(true);
                t
            }
            Err(e) => {
                let err = Error::Db("beginning a durable transaction", Box::new(e.into()));
                log::error!("{err}");
                // Fail every waiting job: their callers answer 500 and the client may retry.
                for job in pending.drain(..) {
                    drop(job);
                }
                continue;
            }
        };
        let mut finishers = Vec::with_capacity(pending.len());
        let mut failed = false;
        let mut batch = std::mem::take(&mut pending).into_iter();
        for job in batch.by_ref() {
            match job(&txn) {
                Some(fin) => finishers.push(fin),
                None => {
                    failed = true;
                    break;
                }
            }
        }
        // Jobs not yet run go to the next batch untouched.
        pending.extend(batch);
        let outcome = if failed {
            drop(txn);
            Err(Error::Corrupt(
                "another change in the same commit failed; retry".into(),
            ))
        } else {
            txn.commit().ctx("committing")
        };
        match outcome {
            Ok(()) => finishers.into_iter().for_each(|f| f(Ok(()))),
            Err(e) => {
                log::error!("durable commit failed: {e}");
                let msg = e.to_string();
                for f in finishers {
                    f(Err(Error::Corrupt(msg.clone())));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store

pub struct Store {
    db: Arc<Database>,
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    committer: Mutex<Option<thread::JoinHandle<()>>>,
    next_upload: AtomicU64,
}

/// redb's page cache. Kept small: chunks stream through it, and the bar is a flat RSS whatever
/// the file size (DESIGN.md §6).
const DEFAULT_CACHE_BYTES: usize = 4 << 20;

impl Store {
    /// Opens (or creates) the database, checks its schema, and releases the pins of uploads that
    /// were in progress when the previous process stopped.
    pub fn open(path: &Path) -> Result<Store> {
        let db = redb::Builder::new()
            .set_cache_size(DEFAULT_CACHE_BYTES)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => Error::InUse(path.to_path_buf()),
                other => Error::Db("opening the database", Box::new(other.into())),
            })?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Job>();
        let committer_db = Arc::clone(&db);
        let handle = thread::Builder::new()
            .name("shelf-committer".into())
            .spawn(move || run_committer(committer_db, rx))
            .map_err(|e| Error::Db("starting the committer", Box::new(e.into())))?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            next_upload: AtomicU64::new(1),
        };
        store.init_schema()?;
        store.sweep_abandoned_uploads()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&self) -> Result<()> {
        self.durable(|txn| {
            let mut meta = txn.open_table(META).ctx("opening meta")?;
            let stored = meta
                .get("schema_version")
                .ctx("reading schema version")?
                .map(|v| v.value().to_vec());
            match stored {
                Some(v) => {
                    let found = <[u8; 4]>::try_from(v.as_slice())
                        .map(u32::from_le_bytes)
                        .map_err(|_| Error::Corrupt("schema_version is not a u32".into()))?;
                    if found != SCHEMA_VERSION {
                        return Err(Error::Corrupt(format!(
                            "schema version {found}, this shelf understands {SCHEMA_VERSION}"
                        )));
                    }
                    let chunk = meta
                        .get("chunk_size")
                        .ctx("reading chunk size")?
                        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
                        .map(u64::from_le_bytes);
                    if chunk != Some(CHUNK_SIZE as u64) {
                        return Err(Error::Corrupt(format!(
                            "chunk size {chunk:?}, this shelf uses {CHUNK_SIZE}"
                        )));
                    }
                }
                None => {
                    meta.insert("schema_version", &SCHEMA_VERSION.to_le_bytes()[..])
                        .ctx("writing schema version")?;
                    meta.insert("chunk_size", &(CHUNK_SIZE as u64).to_le_bytes()[..])
                        .ctx("writing chunk size")?;
                    meta.insert("created", &now().to_le_bytes()[..])
                        .ctx("writing creation time")?;
                }
            }
            // Create every table so that read transactions never meet a missing one.
            txn.open_table(USERS).ctx("creating users")?;
            txn.open_table(TOKENS).ctx("creating tokens")?;
            txn.open_table(PACKAGES).ctx("creating packages")?;
            txn.open_table(VERSIONS).ctx("creating versions")?;
            txn.open_table(FILES).ctx("creating files")?;
            txn.open_table(CHUNKS).ctx("creating chunks")?;
            txn.open_table(CHUNK_REFS).ctx("creating chunk_refs")?;
            txn.open_table(UPLOADS).ctx("creating uploads")?;
            Ok(())
        })
    }

    /// Every row of `uploads` belongs to a process that is gone: drop its pins, and with them
    /// any chunk nothing else references. Returns how many pins were released.
    fn sweep_abandoned_uploads(&self) -> Result<u64> {
        let released = self.durable(|txn| {
            let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
            let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
            let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
            let mut released = 0u64;
            let mut max_id = 0u64;
            while let Some((k, v)) = uploads.pop_first().ctx("sweeping uploads")? {
                max_id = max_id.max(k.value().0);
                let id = *v.value();
                drop((k, v));
                unref_chunk(&mut refs, &mut chunks, &id)?;
                released += 1;
            }
            Ok((released, max_id))
        })?;
        self.next_upload.store(released.1 + 1, Ordering::Relaxed);
        if released.0 > 0 {
            log::warn!(
                "released {} chunk pins of uploads interrupted by the last stop",
                released.0
            );
        }
        Ok(released.0)
    }

    /// Runs `f` in the next group commit and returns its result once that commit is durable.
    /// `f` must not mutate anything when it returns `Err` (domain refusals are `Ok` values).
    fn durable<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Result<R>>(1);
        let job: Job = Box::new(move |txn| match f(txn) {
            Ok(r) => Some(Box::new(move |commit: Result<()>| {
                let _ = tx.send(commit.map(|()| r));
            })),
            Err(e) => {
                log::error!("{e}");
                let _ = tx.send(Err(e));
                None
            }
        });
        {
            let guard = self.jobs.lock().map_err(|_| Error::Closed)?;
            let sender = guard.as_ref().ok_or(Error::Closed)?;
            sender.send(job).map_err(|_| Error::Closed)?;
        }
        rx.recv().map_err(|_| Error::Closed)?
    }

    /// A short, non-durable write transaction (chunk writes). A crash rolls it back unless a
    /// later durable commit persisted it, and then the startup sweep reclaims what it pinned.
    fn quick_write<R>(&self, f: impl FnOnce(&WriteTransaction) -> Result<R>) -> Result<R> {
        let mut txn = self.db.begin_write().ctx("beginning a chunk transaction")?;
        txn.set_durability(Durability::None)
            .ctx("setting chunk durability")?;
        let r = f(&txn)?;
        txn.commit().ctx("committing a chunk")?;
        Ok(r)
    }

    /// Closes the database cleanly: waits for queued commits, then releases the file.
    pub fn close(self) -> Result<()> {
        if let Ok(mut g) = self.jobs.lock() {
            g.take();
        }
        if let Some(h) = self.committer.lock().ok().and_then(|mut g| g.take()) {
            let _ = h.join();
        }
        match Arc::try_unwrap(self.db) {
            Ok(db) => db.close().ctx("closing the database"),
            Err(_) => Err(Error::Corrupt("database still in use at close".into())),
        }
    }

    // ----------------------------------------------------------------------------- users

    pub fn user_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        users.len().ctx("counting users")
    }

    pub fn get_user(&self, login: &str) -> Result<Option<UserRecord>> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let row = users.get(fold_case(login).as_str()).ctx("reading a user")?;
        row.map(|v| decode(v.value())).transpose()
    }

    /// Creates a user; `Ok(false)` when the login (in any case) is taken.
    pub fn create_user(&self, login: &str, is_admin: bool) -> Result<bool> {
        let rec = UserRecord {
            login: login.to_string(),
            is_admin,
            active: true,
            created: now(),
        };
        let bytes = encode(&rec)?;
        let key = fold_case(login);
        self.durable(move |txn| {
            let mut users = txn.open_table(USERS).ctx("opening users")?;
            if users.get(key.as_str()).ctx("reading a user")?.is_some() {
                return Ok(false);
            }
            users
                .insert(key.as_str(), bytes.as_slice())
                .ctx("writing a user")?;
            Ok(true)
        })
    }

    // ---------------------------------------------------------------------------- tokens

    /// Stores a token given by the caller (`SHELF_ADMIN_TOKEN`) or a fresh random one; only its
    /// SHA-256 is kept. Returns the token in clear, the one time it is ever available.
    pub fn create_token(
        &self,
        login: &str,
        name: &str,
        given: Option<String>,
    ) -> Result<TokenOutcome> {
        let token = match given {
            Some(t) => t,
            None => new_token().map_err(|e| Error::Db("drawing a token", Box::new(e.into())))?,
        };
        let hash = token_hash(&token);
        let user = fold_case(login);
        let rec = TokenRecord {
            user: user.clone(),
            name: name.to_string(),
            created: now(),
            last_eight: token
                .chars()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        };
        let bytes = encode(&rec)?;
        let name = name.to_string();
        self.durable(move |txn| {
            let users = txn.open_table(USERS).ctx("opening users")?;
            if users.get(user.as_str()).ctx("reading a user")?.is_none() {
                return Ok(TokenOutcome::NoSuchUser);
            }
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            for row in tokens.iter().ctx("listing tokens")? {
                let (_, v) = row.ctx("listing tokens")?;
                let t: TokenRecord = decode(v.value())?;
                if t.user == user && t.name.eq_ignore_ascii_case(&name) {
                    return Ok(TokenOutcome::NameTaken);
                }
            }
            if tokens.get(&hash).ctx("reading a token")?.is_some() {
                return Ok(TokenOutcome::NameTaken);
            }
            tokens
                .insert(&hash, bytes.as_slice())
                .ctx("writing a token")?;
            Ok(TokenOutcome::Created(token))
        })
    }

    pub fn list_tokens(&self, login: &str) -> Result<Option<Vec<TokenRecord>>> {
        let user = fold_case(login);
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        if users.get(user.as_str()).ctx("reading a user")?.is_none() {
            return Ok(None);
        }
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let mut out = Vec::new();
        for row in tokens.iter().ctx("listing tokens")? {
            let (_, v) = row.ctx("listing tokens")?;
            let t: TokenRecord = decode(v.value())?;
            if t.user == user {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(Some(out))
    }

    /// Deletes the user's token of that name; `Ok(false)` when there is none.
    pub fn revoke_token(&self, login: &str, name: &str) -> Result<bool> {
        let user = fold_case(login);
        let name = name.to_string();
        self.durable(move |txn| {
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            let mut victim = None;
            for row in tokens.iter().ctx("listing tokens")? {
                let (k, v) = row.ctx("listing tokens")?;
                let t: TokenRecord = decode(v.value())?;
                if t.user == user && t.name.eq_ignore_ascii_case(&name) {
                    victim = Some(*k.value());
                    break;
                }
            }
            match victim {
                Some(h) => {
                    tokens.remove(&h).ctx("deleting a token")?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// The active user a token belongs to. Looked up by the token's hash, so no stored secret is
    /// ever compared byte by byte.
    pub fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>> {
        let hash = token_hash(token);
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let Some(row) = tokens.get(&hash).ctx("reading a token")? else {
            return Ok(None);
        };
        let t: TokenRecord = decode(row.value())?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let user = users.get(t.user.as_str()).ctx("reading a user")?;
        user.map(|v| decode(v.value())).transpose()
    }

    // ---------------------------------------------------------------------------- files

    pub fn file_exists(&self, at: &FileCoords) -> Result<bool> {
        let [o, n, v, f] = at.lower();
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        Ok(files
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
            .ctx("reading a file")?
            .is_some())
    }

    /// Streams `body` into chunks and publishes it at `at`. Returns only after the publishing
    /// commit is durable. On any error or conflict nothing is visible and nothing stays pinned.
    pub fn upload(&self, at: &FileCoords, creator: &str, body: impl Read) -> Result<Published> {
        let mut chunker = Chunker::new(body);
        let first = chunker.next_chunk().map_err(Error::Body)?;
        // A file of one short chunk (the common small file) is written in the publishing commit
        // itself: one transaction, no pin.
        let inline = match &first {
            None => Some(None),
            Some(c) if c.is_last && c.data.len() < CHUNK_SIZE => {
                Some(Some((c.id, c.data.to_vec())))
            }
            Some(_) => None,
        };
        if let Some(inline) = inline {
            let (size, sha256) = chunker.finish();
            let chunks = inline.iter().map(|(id, _)| id.0).collect();
            let rec = self.new_file_record(at, creator, size, sha256, chunks);
            return self.publish(at, creator, rec, PublishChunks::Inline(inline), None);
        }
        let upload = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let mut ids = Vec::new();
        let mut current = first;
        let result = loop {
            let Some(chunk) = current else { break Ok(()) };
            if let Err(e) = self.pin_chunk(upload, ids.len() as u32, chunk.id, chunk.data) {
                break Err(e);
            }
            ids.push(chunk.id.0);
            current = match chunker.next_chunk() {
                Ok(c) => c,
                Err(e) => break Err(Error::Body(e)),
            };
        };
        if let Err(e) = result {
            if let Err(release) = self.release_upload(upload) {
                log::error!("releasing upload {upload} after a failure: {release}");
            }
            return Err(e);
        }
        let (size, sha256) = chunker.finish();
        let rec = self.new_file_record(at, creator, size, sha256, ids);
        self.publish(at, creator, rec, PublishChunks::Pinned, Some(upload))
    }

    fn new_file_record(
        &self,
        at: &FileCoords,
        creator: &str,
        size: u64,
        sha256: [u8; 32],
        chunks: Vec<[u8; 32]>,
    ) -> FileRecord {
        FileRecord {
            name: at.file.clone(),
            size,
            sha256,
            created: now(),
            creator: creator.to_string(),
            chunks,
        }
    }

    /// Writes one chunk (unless present) and pins it for `upload`, in its own short transaction.
    fn pin_chunk(&self, upload: u64, seq: u32, id: ChunkId, data: &[u8]) -> Result<()> {
        self.quick_write(|txn| {
            let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
            let count = refs
                .get(&id.0)
                .ctx("reading a chunk count")?
                .map(|v| v.value());
            let count = match count {
                Some(c) => c,
                None => {
                    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
                    chunks.insert(&id.0, data).ctx("writing a chunk")?;
                    0
                }
            };
            refs.insert(&id.0, count + 1).ctx("counting a chunk")?;
            let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
            uploads
                .insert((upload, seq), &id.0)
                .ctx("pinning a chunk")?;
            Ok(())
        })
    }

    /// Drops every pin of an upload that will not be published.
    fn release_upload(&self, upload: u64) -> Result<()> {
        self.quick_write(|txn| release_pins(txn, upload))
    }

    fn publish(
        &self,
        at: &FileCoords,
        creator: &str,
        rec: FileRecord,
        chunks: PublishChunks,
        upload: Option<u64>,
    ) -> Result<Published> {
        let [o, n, v, f] = at.lower();
        let package = encode(&PackageRecord {
            name: at.name.clone(),
            created: rec.created,
            creator: creator.to_string(),
        })?;
        let version = encode(&VersionRecord {
            version: at.version.clone(),
            created: rec.created,
            creator: creator.to_string(),
            downloads: 0,
        })?;
        let file = encode(&rec)?;
        let result = self.durable(move |txn| {
            let mut files = txn.open_table(FILES).ctx("opening files")?;
            let key = (o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str());
            if files.get(key).ctx("reading a file")?.is_some() {
                if let Some(upload) = upload {
                    release_pins(txn, upload)?;
                }
                return Ok(Published::Conflict);
            }
            let mut packages = txn.open_table(PACKAGES).ctx("opening packages")?;
            let pkey = (o.as_str(), GENERIC, n.as_str());
            if packages.get(pkey).ctx("reading a package")?.is_none() {
                packages
                    .insert(pkey, package.as_slice())
                    .ctx("writing a package")?;
            }
            let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
            if versions.get(vkey).ctx("reading a version")?.is_none() {
                versions
                    .insert(vkey, version.as_slice())
                    .ctx("writing a version")?;
            }
            match chunks {
                PublishChunks::Inline(Some((id, data))) => {
                    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
                    let count = refs
                        .get(&id.0)
                        .ctx("reading a chunk count")?
                        .map(|c| c.value());
                    if count.is_none() {
                        let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
                        chunks
                            .insert(&id.0, data.as_slice())
                            .ctx("writing a chunk")?;
                    }
                    refs.insert(&id.0, count.unwrap_or(0) + 1)
                        .ctx("counting a chunk")?;
                }
                PublishChunks::Inline(None) => {}
                PublishChunks::Pinned => {
                    // The upload's pins become the file's references: counts stay as they are.
                    let upload =
                        upload.ok_or_else(|| Error::Corrupt("pinned without id".into()))?;
                    let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
                    uploads
                        .extract_from_if((upload, 0)..=(upload, u32::MAX), |_, _| true)
                        .ctx("unpinning")?
                        .try_for_each(|r| r.map(|_| ()))
                        .ctx("unpinning")?;
                }
            }
            files.insert(key, file.as_slice()).ctx("writing a file")?;
            Ok(Published::Created)
        });
        if result.is_err() {
            if let Some(upload) = upload {
                if let Err(e) = self.release_upload(upload) {
                    log::error!("releasing upload {upload} after a failed publish: {e}");
                }
            }
        }
        result
    }

    /// Deletes one file; the version goes with its last file, the package with its last version.
    pub fn delete_file(&self, at: &FileCoords) -> Result<Deleted> {
        let [o, n, v, f] = at.lower();
        self.durable(move |txn| {
            let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
            if versions.get(vkey).ctx("reading a version")?.is_none() {
                return Ok(Deleted::NoVersion);
            }
            let mut files = txn.open_table(FILES).ctx("opening files")?;
            let removed = files
                .remove((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
                .ctx("deleting a file")?
                .map(|g| decode::<FileRecord>(g.value()));
            let Some(rec) = removed.transpose()? else {
                return Ok(Deleted::NoFile);
            };
            unref_file(txn, &rec)?;
            let lo = (o.as_str(), GENERIC, n.as_str(), v.as_str(), "");
            let more = files
                .range(lo..)
                .ctx("listing files")?
                .next()
                .transpose()
                .ctx("listing files")?
                .is_some_and(|(k, _)| {
                    let k = k.value();
                    (k.0, k.1, k.2, k.3) == vkey
                });
            if !more {
                versions.remove(vkey).ctx("deleting a version")?;
                drop_package_if_empty(txn, &mut versions, &o, &n)?;
            }
            Ok(Deleted::Done)
        })
    }

    /// Deletes a version and all its files.
    pub fn delete_version(&self, owner: &str, name: &str, version: &str) -> Result<Deleted> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        self.durable(move |txn| {
            let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
            if versions.remove(vkey).ctx("deleting a version")?.is_none() {
                return Ok(Deleted::NoVersion);
            }
            let mut files = txn.open_table(FILES).ctx("opening files")?;
            // Every file key of this version sorts between (…, v, "") and (…, v + "\0", "").
            let v_next = format!("{v}\0");
            let lo = (o.as_str(), GENERIC, n.as_str(), v.as_str(), "");
            let hi = (o.as_str(), GENERIC, n.as_str(), v_next.as_str(), "");
            let mut recs = Vec::new();
            for row in files
                .extract_from_if(lo..hi, |_, _| true)
                .ctx("deleting files")?
            {
                let (_, val) = row.ctx("deleting files")?;
                recs.push(decode::<FileRecord>(val.value())?);
            }
            for rec in &recs {
                unref_file(txn, rec)?;
            }
            drop_package_if_empty(txn, &mut versions, &o, &n)?;
            Ok(Deleted::Done)
        })
    }

    /// Opens a file for reading in one snapshot: the bytes stay readable to the end of the
    /// download even if the file is deleted meanwhile.
    pub fn open_file(&self, at: &FileCoords) -> Result<Option<(FileRecord, FileReader)>> {
        let [o, n, v, f] = at.lower();
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let row = files
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
            .ctx("reading a file")?;
        let Some(row) = row else { return Ok(None) };
        let rec: FileRecord = decode(row.value())?;
        let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
        let reader = FileReader {
            table: chunks,
            ids: rec.chunks.clone(),
            size: rec.size,
            pos: 0,
            end: rec.size,
            current: None,
        };
        Ok(Some((rec, reader)))
    }

    /// Whether a version exists (to tell "no such version" from "no such file" on a 404).
    pub fn version_exists(&self, owner: &str, name: &str, version: &str) -> Result<bool> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        Ok(versions
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
            .ctx("reading a version")?
            .is_some())
    }

    /// Verifies invariant 4 of DESIGN.md §3 from one snapshot: every chunk's bytes hash to its
    /// key, every file's chunks exist and hash (in order) to the file's sha256 and size, and each
    /// chunk's count equals its references from files plus pins. Returns the faults found.
    pub fn check(&self) -> Result<CheckReport> {
        use sha2::{Digest, Sha256};
        use std::collections::BTreeMap;
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
        let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
        let uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
        let mut report = CheckReport::default();
        let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        for row in files.iter().ctx("listing files")? {
            let (k, v) = row.ctx("listing files")?;
            let key = k.value();
            let where_ = format!("{}/{}/{}/{}", key.0, key.2, key.3, key.4);
            let rec: FileRecord = decode(v.value())?;
            report.files += 1;
            report.logical_bytes += rec.size;
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            for (i, id) in rec.chunks.iter().enumerate() {
                *expected.entry(*id).or_default() += 1;
                match chunks.get(id).ctx("reading a chunk")? {
                    Some(data) => {
                        let data = data.value();
                        if i + 1 < rec.chunks.len() && data.len() != CHUNK_SIZE {
                            report
                                .faults
                                .push(format!("{where_}: chunk {i} is not full-size"));
                        }
                        hasher.update(data);
                        size += data.len() as u64;
                    }
                    None => report
                        .faults
                        .push(format!("{where_}: chunk {} is missing", hex::encode(id))),
                }
            }
            if size != rec.size || <[u8; 32]>::from(hasher.finalize()) != rec.sha256 {
                report.faults.push(format!(
                    "{where_}: bytes do not match the recorded size and sha256"
                ));
            }
        }
        for row in uploads.iter().ctx("listing pins")? {
            let (_, v) = row.ctx("listing pins")?;
            *expected.entry(*v.value()).or_default() += 1;
            report.pins += 1;
        }
        for row in chunks.iter().ctx("listing chunks")? {
            let (k, v) = row.ctx("listing chunks")?;
            let id = *k.value();
            report.chunks += 1;
            report.physical_bytes += v.value().len() as u64;
            if ChunkId::of(v.value()).0 != id {
                report.faults.push(format!(
                    "chunk {}: bytes do not hash to its key",
                    hex::encode(id)
                ));
            }
            if !expected.contains_key(&id) {
                report
                    .faults
                    .push(format!("chunk {}: nothing references it", hex::encode(id)));
            }
        }
        let mut counted = 0u64;
        for row in refs.iter().ctx("listing counts")? {
            let (k, v) = row.ctx("listing counts")?;
            let id = *k.value();
            counted += 1;
            let want = expected.get(&id).copied().unwrap_or(0);
            if v.value() != want {
                report.faults.push(format!(
                    "chunk {}: count {} but {want} references",
                    hex::encode(id),
                    v.value()
                ));
            }
        }
        if counted != expected.len() as u64 {
            report.faults.push(format!(
                "{} chunks are referenced but {counted} are counted",
                expected.len()
            ));
        }
        Ok(report)
    }

    /// Counts for tests and `check`: (chunk rows, sum of chunk_refs, pinned chunks).
    pub fn chunk_stats(&self) -> Result<(u64, u64, u64)> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let chunks = txn
            .open_table(CHUNKS)
            .ctx("opening chunks")?
            .len()
            .ctx("counting")?;
        let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
        let mut total = 0;
        for row in refs.iter().ctx("reading counts")? {
            total += row.ctx("reading counts")?.1.value();
        }
        let pins = txn
            .open_table(UPLOADS)
            .ctx("opening uploads")?
            .len()
            .ctx("counting")?;
        Ok((chunks, total, pins))
    }
}

/// What `Store::check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub files: u64,
    pub chunks: u64,
    pub pins: u64,
    pub logical_bytes: u64,
    pub physical_bytes: u64,
    pub faults: Vec<String>,
}

enum PublishChunks {
    /// The file's only chunk (or none for an empty file), written by the publishing commit.
    Inline(Option<(ChunkId, Vec<u8>)>),
    /// Chunks already written and pinned by the upload.
    Pinned,
}

fn release_pins(txn: &WriteTransaction, upload: u64) -> Result<()> {
    let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
    let mut ids = Vec::new();
    for row in uploads
        .extract_from_if((upload, 0)..=(upload, u32::MAX), |_, _| true)
        .ctx("unpinning")?
    {
        ids.push(*row.ctx("unpinning")?.1.value());
    }
    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    for id in &ids {
        unref_chunk(&mut refs, &mut chunks, id)?;
    }
    Ok(())
}

fn unref_file(txn: &WriteTransaction, rec: &FileRecord) -> Result<()> {
    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    for id in &rec.chunks {
        unref_chunk(&mut refs, &mut chunks, id)?;
    }
    Ok(())
}

/// One reference fewer; the chunk goes when the last one does.
fn unref_chunk(
    refs: &mut redb::Table<&[u8; 32], u64>,
    chunks: &mut redb::Table<&[u8; 32], &[u8]>,
    id: &[u8; 32],
) -> Result<()> {
    let count = refs
        .get(id)
        .ctx("reading a chunk count")?
        .map(|v| v.value());
    match count {
        Some(c) if c > 1 => {
            refs.insert(id, c - 1).ctx("counting a chunk")?;
        }
        Some(_) => {
            refs.remove(id).ctx("dropping a chunk count")?;
            chunks.remove(id).ctx("dropping a chunk")?;
        }
        None => {
            return Err(Error::Corrupt(format!(
                "chunk {} referenced but not counted",
                hex::encode(id)
            )))
        }
    }
    Ok(())
}

fn drop_package_if_empty(
    txn: &WriteTransaction,
    versions: &mut redb::Table<VersionKey, &[u8]>,
    o: &str,
    n: &str,
) -> Result<()> {
    let more = versions
        .range((o, GENERIC, n, "")..)
        .ctx("listing versions")?
        .next()
        .transpose()
        .ctx("listing versions")?
        .is_some_and(|(k, _)| {
            let k = k.value();
            k.0 == o && k.1 == GENERIC && k.2 == n
        });
    if !more {
        let mut packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        packages.remove((o, GENERIC, n)).ctx("deleting a package")?;
    }
    Ok(())
}

/// A file's bytes from one read snapshot, one chunk in memory at a time.
pub struct FileReader {
    table: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    ids: Vec<[u8; 32]>,
    size: u64,
    pos: u64,
    end: u64,
    /// The chunk under `pos`: (its index, its bytes).
    current: Option<(usize, redb::OwnedAccessGuard<&'static [u8]>)>,
}

impl FileReader {
    /// Restricts the reader to `start..end` (a Range request); locating the start is O(1).
    pub fn with_range(mut self, start: u64, end: u64) -> FileReader {
        self.pos = start.min(self.size);
        self.end = end.clamp(self.pos, self.size);
        self
    }
}

impl FileReader {
    /// The next bytes of the file (or range), lent straight from the chunk's page: an empty
    /// slice at the end. Loads at most one chunk at a time.
    pub fn next_slice(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.end {
            return Ok(&[]);
        }
        let index = (self.pos / CHUNK_SIZE as u64) as usize;
        if self.current.as_ref().map(|c| c.0) != Some(index) {
            // Release the previous page before loading the next: one chunk in memory.
            self.current = None;
            let id = self.ids.get(index).ok_or_else(|| {
                io::Error::other(format!("file has no chunk {index} for offset {}", self.pos))
            })?;
            let guard = self
                .table
                .get_owned(id)
                .map_err(|e| io::Error::other(format!("reading chunk: {e}")))?
                .ok_or_else(|| io::Error::other(format!("chunk {} is missing", hex::encode(id))))?;
            self.current = Some((index, guard));
        }
        let Some((_, guard)) = &self.current else {
            return Err(io::Error::other("chunk vanished"));
        };
        let data = guard.value();
        let within = (self.pos - index as u64 * CHUNK_SIZE as u64) as usize;
        let avail = data
            .len()
            .saturating_sub(within)
            .min((self.end - self.pos) as usize);
        if avail == 0 {
            return Err(io::Error::other(format!(
                "chunk {index} is shorter than the file record says"
            )));
        }
        self.pos += avail as u64;
        Ok(&data[within..within + avail])
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let before = self.pos;
        let slice = self.next_slice()?;
        let n = slice.len().min(buf.len());
        buf[..n].copy_from_slice(&slice[..n]);
        // Give back what did not fit: the next call lends it again.
        self.pos = before + n as u64;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// A new personal access token: 160 random bits as 40 hex digits (the shape of Gitea's tokens).
pub fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

pub fn token_hash(token: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> (Store, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "shelf-store-test-{}-{}",
            std::process::id(),
            new_token().expect("randomness")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.redb");
        (Store::open(&path).expect("open"), dir)
    }

    fn at(file: &str) -> FileCoords {
        FileCoords::new("Alice", "Pkg", "1.0", file)
    }

    fn read_all(store: &Store, c: &FileCoords) -> Option<Vec<u8>> {
        let (_, mut r) = store.open_file(c).expect("open file")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        Some(out)
    }

    #[test]
    fn round_trip_sizes_and_dedup() {
        let (s, dir) = temp_store();
        let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 123)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        for (i, size) in [0usize, 1, 4096, CHUNK_SIZE, big.len()].iter().enumerate() {
            let c = at(&format!("f{i}"));
            assert_eq!(
                s.upload(&c, "alice", &big[..*size]).expect("upload"),
                Published::Created
            );
            assert_eq!(read_all(&s, &c).expect("exists"), &big[..*size]);
        }
        // the same bytes again under another name store nothing new
        let before = s.chunk_stats().expect("stats").0;
        assert_eq!(
            s.upload(&at("copy"), "alice", &big[..]).expect("upload"),
            Published::Created
        );
        assert_eq!(s.chunk_stats().expect("stats").0, before);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn conflict_is_case_insensitive_and_keeps_first_bytes() {
        let (s, dir) = temp_store();
        let big = vec![1u8; CHUNK_SIZE + 5];
        assert_eq!(
            s.upload(&at("file.bin"), "a", &b"one"[..]).expect("up"),
            Published::Created
        );
        assert_eq!(
            s.upload(&at("FILE.BIN"), "a", &big[..]).expect("up"),
            Published::Conflict
        );
        assert_eq!(read_all(&s, &at("File.Bin")).expect("exists"), b"one");
        let (chunks, refs, pins) = s.chunk_stats().expect("stats");
        assert_eq!(
            (chunks, refs, pins),
            (1, 1, 0),
            "the loser's chunks are reclaimed"
        );
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn delete_last_file_drops_version_and_chunks() {
        let (s, dir) = temp_store();
        s.upload(&at("a"), "a", &b"x"[..]).expect("up");
        s.upload(&at("b"), "a", &b"x"[..]).expect("up");
        assert_eq!(s.delete_file(&at("A")).expect("del"), Deleted::Done);
        assert!(s.version_exists("alice", "pkg", "1.0").expect("v"));
        assert_eq!(s.delete_file(&at("a")).expect("del"), Deleted::NoFile);
        assert_eq!(s.delete_file(&at("b")).expect("del"), Deleted::Done);
        assert!(!s.version_exists("alice", "pkg", "1.0").expect("v"));
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
        assert_eq!(
            s.delete_version("alice", "pkg", "1.0").expect("del"),
            Deleted::NoVersion
        );
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn truncated_upload_leaves_nothing() {
        struct Cut(usize);
        impl Read for Cut {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(9);
                self.0 -= n;
                Ok(n)
            }
        }
        let (s, dir) = temp_store();
        assert!(matches!(
            s.upload(&at("t"), "a", Cut(CHUNK_SIZE * 2 + 10)),
            Err(Error::Body(_))
        ));
        assert!(read_all(&s, &at("t")).is_none());
        assert!(!s.version_exists("alice", "pkg", "1.0").expect("v"));
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ranged_reader() {
        let (s, dir) = temp_store();
        let data: Vec<u8> = (0..CHUNK_SIZE + 100).map(|i| (i % 256) as u8).collect();
        s.upload(&at("r"), "a", &data[..]).expect("up");
        let (_, r) = s.open_file(&at("r")).expect("open").expect("exists");
        let mut out = Vec::new();
        let start = CHUNK_SIZE as u64 - 3;
        r.with_range(start, start + 10)
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, &data[start as usize..start as usize + 10]);
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn case_folding_is_per_rune_as_go() {
        assert_eq!(fold_case("ΟΔΟΣ"), "οδοσ");
        assert_eq!(fold_case("V1.0-RC"), "v1.0-rc");
    }

    #[test]
    fn tokens_are_hashed_and_revocable() {
        let (s, dir) = temp_store();
        assert!(s.create_user("Bob", false).expect("user"));
        assert!(!s.create_user("bob", false).expect("user"));
        let TokenOutcome::Created(t) = s.create_token("bob", "ci", None).expect("token") else {
            panic!("token not created");
        };
        assert_eq!(t.len(), 40);
        assert_eq!(
            s.create_token("BOB", "CI", None).expect("t"),
            TokenOutcome::NameTaken
        );
        assert_eq!(
            s.user_by_token(&t).expect("lookup").expect("found").login,
            "Bob"
        );
        assert!(s.revoke_token("bob", "ci").expect("revoke"));
        assert!(s.user_by_token(&t).expect("lookup").is_none());
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
}
