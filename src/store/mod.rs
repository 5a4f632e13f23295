//! The registry's state in one redb file: users, tokens, packages, versions, files, the
//! contents they point at, and the content-addressed chunks that hold the bytes.
//!
//! Owns the schema, the record codec and the group committer (this file), users and tokens
//! (`users.rs`), uploads, downloads and deletes (`files.rs`), listings and extra digests
//! (`listing.rs`), and the integrity check (`check.rs`). Knows nothing about HTTP.
//!
//! Invariants kept here (DESIGN.md §3):
//! - a file row is written only in the durable transaction that publishes it, together with its
//!   package and version rows and the decision whether it conflicts (409);
//! - a `contents` row describes one distinct file body (by sha256): its chunk list, its digests
//!   and how many files show it; it goes with its last file;
//! - `chunk_refs[c]` = references to `c` from `contents` rows + pins from uploads in progress;
//!   a chunk row exists exactly when its count is > 0, and both change in the same transaction;
//! - chunk rows are immutable once written;
//! - no write transaction is held while waiting on the network: the body is read between
//!   transactions, one chunk at a time.

mod audit;
mod backup;
mod bundle;
mod check;
mod files;
mod limits;
mod listing;
mod observe;
mod recovery;
mod scrub;
mod sessions;
mod space;
mod stats;
mod users;

pub use audit::AuditFilter;
pub use backup::{backup_table_names, restore, BackupSummary};
pub use bundle::{HeldFile, ImportItem, ImportOutcome, Selection, Snapshot, Staged};
pub use check::{CheckReport, RepairReport};
pub use files::{Deleted, FileReader, Published};
pub use limits::{
    compile_pattern, CleanupReport, CleanupRule, CompiledRule, InvalidRule, Limit, Limits,
    OwnerQuota, QuotaCheck, QuotaExceeded, QuotaRecord, Removal, RuleEntry, SkippedRule, Usage,
};
/// Schema 2's tables, beside the others for code that lists every table (backup, repair).
use limits::{CLEANUP_RULES, OWNER_BYTES, QUOTAS, VERSION_DOWNLOADS};
pub use listing::{page_offset, Digests, FileEntry, Page, VersionEntry};
pub use observe::{ByteTotals, ReadyProbe, RowCounts, StatsCache};
pub use observe::{Quiet, Steps, Unit};
pub use recovery::Fault;
pub use scrub::{ScrubConfig, ScrubState};
pub use sessions::{random_hex, NewSession, SessionRecord};
pub use stats::{compact, OwnerStats, Stats};
pub use users::{new_token, token_hash, Created, NewToken, UserDeleted};

use crate::chunk::CHUNK_SIZE;
use crate::names::{FileName, Owner, PackageName, Version};
use redb::{Database, Durability, ReadableTable, TableDefinition, WriteTransaction};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Version of the on-disk layout. A change to any table or record bumps it and adds a migration.
pub const SCHEMA_VERSION: u32 = 2;
/// First byte of every bincode record: the record's own format version.
const RECORD_V1: u8 = 1;
/// The only package type shelf serves; part of every package key so other types can follow.
pub const GENERIC: &str = "generic";

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
const TOKENS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tokens");
/// (user, lower token name) → token hash: a user's tokens without a scan of all tokens.
const USER_TOKENS: TableDefinition<(&str, &str), &[u8; 32]> = TableDefinition::new("user_tokens");
/// (org, user) → direct membership role (`Role` as u8).
const MEMBERS: TableDefinition<(&str, &str), u8> = TableDefinition::new("members");
/// team id → `TeamRecord`.
const TEAMS: TableDefinition<u64, &[u8]> = TableDefinition::new("teams");
/// (team id, user) → (): team membership.
const TEAM_MEMBERS: TableDefinition<(u64, &str), ()> = TableDefinition::new("team_members");
/// (unix seconds, sequence) → `AuditRecord`.
const AUDIT: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("audit");
type PackageKey<'a> = (&'a str, &'a str, &'a str);
type VersionKey<'a> = (&'a str, &'a str, &'a str, &'a str);
type FileKey<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
const PACKAGES: TableDefinition<PackageKey, &[u8]> = TableDefinition::new("packages");
const VERSIONS: TableDefinition<VersionKey, &[u8]> = TableDefinition::new("versions");
const FILES: TableDefinition<FileKey, &[u8]> = TableDefinition::new("files");
/// (owner, u64::MAX − version id, name, version): an owner's versions, newest first.
const VERSION_ORDER: TableDefinition<(&str, u64, &str, &str), ()> =
    TableDefinition::new("version_order");
/// (owner, name, u64::MAX − version id, version): a package's versions, newest first.
const PACKAGE_ORDER: TableDefinition<(&str, &str, u64, &str), ()> =
    TableDefinition::new("package_order");
/// (owner, name) → number of the package's versions.
const PACKAGE_VERSIONS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("package_versions");
/// owner → number of versions (X-Total-Count without a scan).
const OWNER_VERSIONS: TableDefinition<&str, u64> = TableDefinition::new("owner_versions");
/// sha256 of a file body → `ContentRecord`.
const CONTENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("contents");
/// (sha256, owner) → number of the owner's files with that body (deploy by checksum looks
/// only in namespaces the caller may read).
const CONTENT_OWNERS: TableDefinition<(&[u8; 32], &str), u64> =
    TableDefinition::new("content_owners");
const CHUNKS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("chunks");
const CHUNK_REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("chunk_refs");
/// (upload id, sequence number) → chunk pinned by that upload in progress.
const UPLOADS: TableDefinition<(u64, u32), &[u8; 32]> = TableDefinition::new("uploads");
/// Browser sessions by the SHA-256 of their secret (`sessions.rs`).
const SESSIONS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("sessions");

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
    /// The body was read but refused (a checksum the client sent did not match): nothing stored.
    Rejected(String),
    /// The committer thread is gone (only during shutdown).
    Closed,
    /// A quota refused the upload (403 with Gitea's message): nothing stored.
    Quota(QuotaExceeded),
    /// The disk holding the database is full, or below the free space kept in reserve (507):
    /// nothing stored.
    Full,
    /// The database is being reopened after a storage fault (503 with Retry-After).
    Recovering,
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
            Error::Rejected(m) => write!(f, "upload refused: {m}"),
            Error::Closed => write!(f, "the store is shutting down"),
            Error::Quota(q) => write!(f, "{q}"),
            Error::Full => write!(f, "the disk holding the database is full"),
            Error::Recovering => write!(
                f,
                "the database is being reopened after a storage fault; retry shortly"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The storage fault this error shows, if any.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            Error::Db(_, e) => recovery::fault_of(e),
            Error::Full => Some(recovery::Fault::Full),
            _ => None,
        }
    }
}

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

/// Who may read an owner's packages (Gitea's three levels).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Public,
    /// Any signed-in user.
    Limited,
    /// The owner, its members and site admins.
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Limited => "limited",
            Visibility::Private => "private",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s.to_ascii_lowercase().as_str() {
            "public" => Some(Visibility::Public),
            "limited" => Some(Visibility::Limited),
            "private" => Some(Visibility::Private),
            _ => None,
        }
    }
}

/// Users and organizations share one namespace of names.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerKind {
    User,
    Org,
}

/// A member's role in an organization; ordered: a higher role includes the lower ones.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read the organization's packages, even when it is private.
    Read,
    /// Publish and delete.
    Write,
    /// Manage members, teams and settings.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// shelf's names, and Gitea's team permissions (`owner` is `admin`).
    pub fn parse(s: &str) -> Option<Role> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Some(Role::Read),
            "write" => Some(Role::Write),
            "admin" | "owner" => Some(Role::Admin),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: u64,
    /// Display form of the login, as created.
    pub login: String,
    pub kind: OwnerKind,
    pub is_admin: bool,
    /// A deactivated user's credentials are refused everywhere, even on its own namespace.
    pub active: bool,
    pub visibility: Visibility,
    pub created: u64,
    /// Argon2id PHC string; `None`: no password login (tokens only).
    pub password: Option<String>,
    pub email: String,
    pub full_name: String,
    pub description: String,
    pub website: String,
    pub location: String,
}

impl UserRecord {
    /// A new account's record: its login is an `Owner`, validated where it came in.
    pub fn new(login: &Owner, kind: OwnerKind) -> UserRecord {
        UserRecord::shown(login, kind)
    }

    /// A record only shown, never created: a copy read from a server's JSON, or Gitea's
    /// ghost user.
    pub fn shown(login: &str, kind: OwnerKind) -> UserRecord {
        UserRecord {
            id: 0,
            login: login.to_string(),
            kind,
            is_admin: false,
            active: true,
            visibility: Visibility::Public,
            created: now(),
            password: None,
            email: String::new(),
            full_name: String::new(),
            description: String::new(),
            website: String::new(),
            location: String::new(),
        }
    }

    pub fn key(&self) -> String {
        fold_case(&self.login)
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub id: u64,
    /// Lower-cased login of the owner.
    pub user: String,
    pub name: String,
    pub created: u64,
    /// Last eight characters of the token, to tell tokens apart in listings.
    pub last_eight: String,
    /// Gitea's scope names (`read:package`, `write:package`, `all`, `public-only`, …).
    pub scopes: Vec<String>,
    /// Beyond Gitea: the only owner (lower-cased) this token may act on.
    pub owner: Option<String>,
    /// Beyond Gitea: the only package (lower-cased) of `owner` this token may act on.
    pub package: Option<String>,
    /// Unix time after which the token is refused.
    pub expires: Option<u64>,
    pub last_used: Option<u64>,
}

/// A Gitea team: a named group of an organization's members with one permission.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub id: u64,
    /// Lower-cased organization.
    pub org: String,
    pub name: String,
    pub description: String,
    pub permission: Role,
}

/// One entry of the audit log.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub time: u64,
    /// Login of whoever acted (empty: anonymous).
    pub actor: String,
    /// The client's address.
    pub addr: String,
    /// e.g. `package.publish`, `auth.failure`, `token.create`.
    pub action: String,
    /// Lower-cased owner the action concerns (empty if none).
    pub owner: String,
    /// What it acted on, e.g. `pkg/1.0/file.bin` or a token name.
    pub target: String,
    /// `ok` or what went wrong.
    pub outcome: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PackageRecord {
    pub id: u64,
    pub name: String,
    pub created: u64,
    pub creator: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct VersionRecord {
    /// Also orders versions: a larger id was created later.
    pub id: u64,
    pub version: String,
    pub created: u64,
    pub creator: String,
    /// GETs of any of its files (HEAD does not count), as Gitea counts.
    pub downloads: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FileRecord {
    pub id: u64,
    pub name: String,
    pub size: u64,
    /// Key of the file's `ContentRecord`.
    pub sha256: [u8; 32],
    pub created: u64,
    pub creator: String,
    pub downloads: u64,
}

/// One distinct file body, shared by every file with these bytes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ContentRecord {
    pub size: u64,
    /// Chunk ids in order; all but the last hold exactly `CHUNK_SIZE` bytes.
    pub chunks: Vec<[u8; 32]>,
    /// How many file rows show this body.
    pub files: u64,
    /// Computed off the upload's critical path (or during it, when the client sent them to be
    /// verified); `None` until then.
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub sha512: Option<Vec<u8>>,
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
/// The package coordinates are typed: only validated names reach the store, so the store
/// never writes a name Gitea would refuse. `owner` is an existing account's login, which was
/// an `Owner` when the account was made.
#[derive(Clone, Debug)]
pub struct FileCoords {
    pub owner: String,
    pub name: PackageName,
    pub version: Version,
    pub file: FileName,
}

impl FileCoords {
    pub fn new(owner: &str, name: &PackageName, version: &Version, file: &FileName) -> FileCoords {
        FileCoords {
            owner: owner.to_string(),
            name: name.clone(),
            version: version.clone(),
            file: file.clone(),
        }
    }

    /// Coordinates from text, for tests. Panics on an invalid name.
    #[cfg(test)]
    pub(crate) fn parse(owner: &str, name: &str, version: &str, file: &str) -> FileCoords {
        FileCoords::new(
            owner,
            &PackageName::of(name),
            &Version::of(version),
            &FileName::of(file),
        )
    }

    pub(crate) fn lower(&self) -> [String; 4] {
        [
            fold_case(&self.owner),
            fold_case(&self.name),
            fold_case(&self.version),
            fold_case(&self.file),
        ]
    }
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
/// A change to make in the batch's transaction (see `Job`).
type Change = Box<dyn FnOnce(&WriteTransaction) -> Option<Finisher> + Send>;

/// One durable change: `run` adds it to the batch's transaction (and returns what to call
/// with the commit's outcome, or `None` when it failed and said so itself); `fail` tells its
/// caller when it never ran (the database could not be had).
struct Job {
    run: Change,
    fail: Finisher,
}

/// Most jobs one durable commit carries; bounds the latency a job can add to its batch-mates.
const MAX_BATCH: usize = 128;

fn run_committer(slot: Arc<recovery::DbSlot>, jobs: mpsc::Receiver<Job>) {
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
        let handle = match slot.get() {
            Ok(h) => h,
            Err(e) => {
                // Reopening (or closing): every waiting job's caller hears why.
                let msg = e.to_string();
                for job in pending.drain(..) {
                    (job.fail)(Err(same_error(&e, &msg)));
                }
                continue;
            }
        };
        let txn = match handle.db.begin_write() {
            Ok(mut t) => {
                t.set_quick_repair(true);
                t
            }
            Err(e) => {
                let err = Error::Db("beginning a durable transaction", Box::new(e.into()));
                log::error!("{err}");
                if let Some(fault) = err.fault() {
                    slot.report(handle.generation, fault);
                }
                let msg = err.to_string();
                for job in pending.drain(..) {
                    (job.fail)(Err(same_error(&err, &msg)));
                }
                continue;
            }
        };
        let mut finishers = Vec::with_capacity(pending.len());
        let mut failed = false;
        let mut batch = std::mem::take(&mut pending).into_iter();
        for job in batch.by_ref() {
            match (job.run)(&txn) {
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
        drop(handle.db);
        match outcome {
            Ok(()) => finishers.into_iter().for_each(|f| f(Ok(()))),
            Err(e) => {
                log::error!("durable commit failed: {e}");
                if let Some(fault) = e.fault() {
                    slot.report(handle.generation, fault);
                }
                let msg = e.to_string();
                for f in finishers {
                    f(Err(same_error(&e, &msg)));
                }
            }
        }
    }
}

/// Releases every chunk pin: those of uploads a stop or a reopen interrupted (an upload in
/// progress across a reopen is refused at publish, so none is live). Returns how many were
/// released and the highest upload id seen.
fn sweep_pins(txn: &WriteTransaction) -> Result<(u64, u64)> {
    let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    let mut released = 0u64;
    let mut max_id = 0u64;
    while let Some((k, v)) = uploads.pop_first().ctx("sweeping uploads")? {
        max_id = max_id.max(k.value().0);
        let id = *v.value();
        drop((k, v));
        files::unref_chunk(&mut refs, &mut chunks, &id)?;
        released += 1;
    }
    Ok((released, max_id))
}

/// One failure told to each caller of a batch: the outcome (disk full, reopening) where it is
/// one they answer differently, else the message.
fn same_error(e: &Error, msg: &str) -> Error {
    match e {
        Error::Closed => Error::Closed,
        Error::Recovering => Error::Recovering,
        e => match e.fault() {
            Some(recovery::Fault::Full) => Error::Full,
            // The fault has been reported: the database is reopened, and a retry reaches it.
            Some(recovery::Fault::Io) => Error::Recovering,
            None => Error::Corrupt(msg.to_string()),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// The store

pub struct Store {
    /// The open database, reopened in process after a storage fault (`recovery.rs`).
    db: Arc<recovery::DbSlot>,
    /// Free bytes the disk keeps beyond what a write needs: an upload that would leave less
    /// is refused with `Error::Full` before redb meets a full disk.
    min_free: AtomicU64,
    /// The estimate of the free pages inside the file (`free_inside_file`).
    room: space::Room,
    path: PathBuf,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    committer: Mutex<Option<thread::JoinHandle<()>>>,
    next_upload: AtomicU64,
    /// Downloads not yet written: (owner, name, version, file) lower-cased → count. Flushed in
    /// batches so that a GET never waits for a durable write.
    downloads: Mutex<HashMap<[String; 4], u64>>,
    /// Bodies whose md5/sha1/sha512 are still to be computed by the hasher thread.
    digest_queue: Mutex<Option<mpsc::Sender<[u8; 32]>>>,
    /// Token hash → when it was last used, not yet written.
    token_uses: Mutex<HashMap<[u8; 32], u64>>,
    /// Audit entries not yet written.
    audit_queue: Mutex<audit::AuditQueue>,
    /// Refusals of the current window, collapsed into counted entries (`audit.rs`).
    refusals: Mutex<audit::Refusals>,
    /// How long audit entries are kept, in seconds.
    audit_retention: AtomicU64,
    /// The serve flags' quota limits (per-owner overrides apply on top).
    quota_defaults: Mutex<Limits>,
    /// Set when `close` starts: long background work (a cleanup run) stops early.
    closing: std::sync::atomic::AtomicBool,
    /// Held by the cleanup run in progress: one at a time, so runs never take more than one
    /// request worker (the others are refused) and the schedule waits its turn.
    cleanup_gate: Mutex<()>,
    /// The background scrub's progress.
    scrub: scrub::ScrubState,
}

/// How often pending download counts, token uses and audit entries are written.
const COUNTER_FLUSH: Duration = Duration::from_secs(2);
/// Audit entries older than this (seconds) are dropped: 90 days unless configured.
const DEFAULT_AUDIT_RETENTION: u64 = 90 * 86_400;

/// redb's page cache. Kept small: chunks stream through it, and the bar is a flat RSS whatever
/// the file size (DESIGN.md §6).
const DEFAULT_CACHE_BYTES: usize = 4 << 20;

/// Creates `path` empty and readable by its owner only (0600) when it does not exist: the
/// database holds password and token hashes. redb initialises an empty file as a new database.
/// An existing file keeps its mode.
pub(crate) fn create_private(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

impl Store {
    /// Opens (or creates) the database, checks its schema, and releases the pins of uploads that
    /// were in progress when the previous process stopped.
    pub fn open(path: &Path) -> Result<Arc<Store>> {
        create_private(path)
            .map_err(|e| Error::Db("creating the database file", Box::new(e.into())))?;
        let file = path.to_path_buf();
        let opener: recovery::Opener = Box::new(move || {
            redb::Builder::new()
                .set_cache_size(DEFAULT_CACHE_BYTES)
                .create(&file)
        });
        Store::open_with(path, opener)
    }

    /// `open`, with the database opened (and reopened after a fault) by `opener`: tests give
    /// it a backend that fails at chosen points.
    pub(crate) fn open_with(path: &Path, opener: recovery::Opener) -> Result<Arc<Store>> {
        let db = recovery::DbSlot::open(path, opener).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => Error::InUse(path.to_path_buf()),
            other => Error::Db("opening the database", Box::new(other.into())),
        })?;
        let (tx, rx) = mpsc::channel::<Job>();
        let committer_db = Arc::clone(&db);
        let handle = thread::Builder::new()
            .name("shelf-committer".into())
            .spawn(move || run_committer(committer_db, rx))
            .map_err(|e| Error::Db("starting the committer", Box::new(e.into())))?;
        let store = Arc::new(Store {
            db,
            min_free: AtomicU64::new(0),
            room: space::Room::default(),
            path: path.to_path_buf(),
            jobs: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            next_upload: AtomicU64::new(1),
            downloads: Mutex::new(HashMap::new()),
            digest_queue: Mutex::new(None),
            token_uses: Mutex::new(HashMap::new()),
            audit_queue: Mutex::new(audit::AuditQueue::default()),
            refusals: Mutex::new(audit::Refusals::default()),
            audit_retention: AtomicU64::new(DEFAULT_AUDIT_RETENTION),
            quota_defaults: Mutex::new(Limits::default()),
            closing: std::sync::atomic::AtomicBool::new(false),
            cleanup_gate: Mutex::new(()),
            scrub: scrub::ScrubState::default(),
        });
        store.init_schema()?;
        store.sweep_abandoned_uploads()?;
        store.start_background()?;
        Ok(store)
    }

    /// The counter flusher and the digest hasher. Both hold only a `Weak` reference, so they end
    /// when the store is closed.
    fn start_background(self: &Arc<Store>) -> Result<()> {
        let weak = Arc::downgrade(self);
        thread::Builder::new()
            .name("shelf-counters".into())
            .spawn(move || loop {
                thread::sleep(COUNTER_FLUSH);
                let Some(store) = weak.upgrade() else { return };
                if let Err(e) = store.flush_pending() {
                    log::error!("writing counters and the audit log: {e}");
                }
            })
            .map_err(|e| Error::Db("starting the counter thread", Box::new(e.into())))?;
        let (tx, rx) = mpsc::channel::<[u8; 32]>();
        if let Ok(mut q) = self.digest_queue.lock() {
            *q = Some(tx);
        }
        let weak = Arc::downgrade(self);
        thread::Builder::new()
            .name("shelf-digests".into())
            .spawn(move || {
                run_only_when_idle();
                while let Ok(sha256) = rx.recv() {
                    let Some(store) = weak.upgrade() else { return };
                    match store.ensure_digests(&sha256) {
                        // A body deleted before its turn is `Ok(None)`, not an error.
                        Ok(_) => {}
                        // Closing: the digests are computed again by the first listing.
                        Err(Error::Closed) => return,
                        Err(e) => log::error!("computing digests of {}: {e}", hex::encode(sha256)),
                    }
                }
            })
            .map_err(|e| Error::Db("starting the digest thread", Box::new(e.into())))?;
        Ok(())
    }

    /// Queues a body for md5/sha1/sha512 (best effort: a listing computes what is missing).
    /// The digest thread runs only on otherwise idle CPU, so it never slows uploads or
    /// downloads (measured: hashing a fresh 1 GiB body at normal priority took the 1 GiB GET
    /// that followed from 1.8 GB/s to 0.7 GB/s on 2 cores).
    fn queue_digests(&self, sha256: [u8; 32]) {
        if let Some(q) = self
            .digest_queue
            .lock()
            .ok()
            .as_ref()
            .and_then(|q| q.as_ref())
        {
            let _ = q.send(sha256);
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&self) -> Result<()> {
        self.durable(|txn| {
            let mut migrate_from = None;
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
                    if found == 1 {
                        migrate_from = Some(1);
                    } else if found != SCHEMA_VERSION {
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
            txn.open_table(USER_TOKENS).ctx("creating user_tokens")?;
            txn.open_table(MEMBERS).ctx("creating members")?;
            txn.open_table(TEAMS).ctx("creating teams")?;
            txn.open_table(TEAM_MEMBERS).ctx("creating team_members")?;
            txn.open_table(AUDIT).ctx("creating audit")?;
            txn.open_table(PACKAGES).ctx("creating packages")?;
            txn.open_table(VERSIONS).ctx("creating versions")?;
            txn.open_table(FILES).ctx("creating files")?;
            txn.open_table(VERSION_ORDER)
                .ctx("creating version_order")?;
            txn.open_table(OWNER_VERSIONS)
                .ctx("creating owner_versions")?;
            txn.open_table(CONTENTS).ctx("creating contents")?;
            txn.open_table(CONTENT_OWNERS)
                .ctx("creating content_owners")?;
            txn.open_table(PACKAGE_ORDER)
                .ctx("creating package_order")?;
            txn.open_table(PACKAGE_VERSIONS)
                .ctx("creating package_versions")?;
            txn.open_table(CHUNKS).ctx("creating chunks")?;
            txn.open_table(CHUNK_REFS).ctx("creating chunk_refs")?;
            txn.open_table(UPLOADS).ctx("creating uploads")?;
            txn.open_table(OWNER_BYTES).ctx("creating owner_bytes")?;
            txn.open_table(QUOTAS).ctx("creating quotas")?;
            txn.open_table(CLEANUP_RULES)
                .ctx("creating cleanup_rules")?;
            txn.open_table(VERSION_DOWNLOADS)
                .ctx("creating version_downloads")?;
            txn.open_table(SESSIONS).ctx("creating sessions")?;
            if migrate_from == Some(1) {
                limits::migrate_v1(txn)?;
                meta.insert("schema_version", &SCHEMA_VERSION.to_le_bytes()[..])
                    .ctx("writing schema version")?;
            }
            Ok(())
        })
    }

    /// Every row of `uploads` belongs to a process that is gone: drop its pins, and with them
    /// any chunk nothing else references. Returns how many pins were released.
    fn sweep_abandoned_uploads(&self) -> Result<u64> {
        let released = self.durable(sweep_pins)?;
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
        let failed = tx.clone();
        let job = Job {
            run: Box::new(move |txn| match f(txn) {
                Ok(r) => Some(Box::new(move |commit: Result<()>| {
                    let _ = tx.send(commit.map(|()| r));
                })),
                Err(e) => {
                    log::error!("{e}");
                    let _ = tx.send(Err(e));
                    None
                }
            }),
            fail: Box::new(move |e: Result<()>| {
                if let Err(e) = e {
                    let _ = failed.send(Err(e));
                }
            }),
        };
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
        let handle = self.db.get()?;
        let result = (|| {
            let mut txn = handle
                .db
                .begin_write()
                .ctx("beginning a chunk transaction")?;
            txn.set_durability(Durability::None)
                .ctx("setting chunk durability")?;
            let r = f(&txn)?;
            txn.commit().ctx("committing a chunk")?;
            Ok(r)
        })();
        drop(handle.db);
        result.map_err(|e: Error| match e.fault() {
            Some(fault) => {
                log::error!("{e}");
                self.db.report(handle.generation, fault);
                same_error(&e, &e.to_string())
            }
            None => e,
        })
    }

    /// The open database (waiting briefly while it is reopened after a storage fault).
    fn db(&self) -> Result<Arc<Database>> {
        self.db.get().map(|h| h.db)
    }

    /// Free bytes on the filesystem that holds the database (`None`: cannot tell).
    pub fn disk_free(&self) -> Option<u64> {
        space::free_bytes(&self.path).ok()
    }

    /// Completed in-process reopens after storage faults.
    pub fn reopens(&self) -> u64 {
        self.db.reopens()
    }

    /// Keeps `bytes` free on the database's disk: writes that would leave less are refused
    /// with `Error::Full` (0: no reserve; redb's own ENOSPC is still handled).
    pub fn set_min_free_space(&self, bytes: u64) {
        self.min_free.store(bytes, Ordering::Relaxed);
    }

    /// Refuses with `Error::Full` a write of about `bytes` that would leave less than the
    /// reserve free: free on the database's disk, plus (when the disk is low) the free pages
    /// inside the file, which redb fills first. An unreadable figure refuses nothing.
    pub(crate) fn ensure_room(&self, bytes: u64) -> Result<()> {
        let reserve = self.min_free.load(Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let need = reserve.saturating_add(bytes);
        let Ok(free) = space::free_bytes(&self.path) else {
            return Ok(());
        };
        if free >= need {
            return Ok(());
        }
        let inside = self.free_inside_file();
        if free.saturating_add(inside) >= need {
            self.room.written.fetch_add(bytes, Ordering::Relaxed);
            Ok(())
        } else {
            log::warn!(
                "refusing a write of {bytes} bytes: {free} bytes free on the disk and about \
                 {inside} inside the database file, with {reserve} kept in reserve"
            );
            Err(Error::Full)
        }
    }

    /// An estimate of the free pages inside the database file: its blocks less the chunk bytes
    /// it holds (a `contents` scan at most `space::ESTIMATE_AGE` old, less what was written
    /// since) and a margin for indexes and metadata. Low rather than high: too high, and redb
    /// meets the full disk itself (handled, but every operation then waits for a reopen).
    fn free_inside_file(&self) -> u64 {
        // The blocks the file has on disk, not its length: redb grows the file ahead of use,
        // and pages never written are holes that need new blocks as much as a new file does.
        let file = std::fs::metadata(&self.path)
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m).saturating_mul(512))
            .unwrap_or(0);
        let Ok(mut last) = self.room.live.lock() else {
            return 0;
        };
        let stale = last.is_none_or(|(_, at)| at.elapsed() >= space::ESTIMATE_AGE);
        if stale {
            match self.byte_totals() {
                Ok(t) => {
                    *last = Some((t.physical_bytes, std::time::Instant::now()));
                    self.room.written.store(0, Ordering::Relaxed);
                }
                Err(e) => {
                    log::warn!("estimating the free space inside the database: {e}");
                    return 0;
                }
            }
        }
        let live = last.map_or(u64::MAX, |(live, _)| live);
        let used = live
            .saturating_add(live / 32)
            .saturating_add(space::METADATA_MARGIN)
            .saturating_add(self.room.written.load(Ordering::Relaxed));
        file.saturating_sub(used)
    }

    /// Closes the database cleanly: writes pending counters, waits for queued commits, then
    /// releases the file. Fails if requests still hold the store.
    pub fn close(self: Arc<Store>) -> Result<()> {
        self.closing.store(true, Ordering::Relaxed);
        if let Err(e) = self.flush_pending() {
            log::error!("writing counters and the audit log at close: {e}");
        }
        // The background threads hold the store only for the moment of one flush or hash.
        let mut arc = self;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let store = loop {
            match Arc::try_unwrap(arc) {
                Ok(store) => break store,
                Err(still_shared) if std::time::Instant::now() < deadline => {
                    arc = still_shared;
                    thread::sleep(Duration::from_millis(10));
                }
                Err(_) => return Err(Error::Corrupt("the store is still in use at close".into())),
            }
        };
        if let Ok(mut q) = store.digest_queue.lock() {
            q.take();
        }
        if let Ok(mut g) = store.jobs.lock() {
            g.take();
        }
        if let Some(h) = store.committer.lock().ok().and_then(|mut g| g.take()) {
            let _ = h.join();
        }
        // A reopen after a fault in progress leaves nothing open.
        let Some(mut db) = store.db.take() else {
            return Ok(());
        };
        // The watchdog may hold it for the moment of one probe.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            match Arc::try_unwrap(db) {
                Ok(db) => return db.close().ctx("closing the database"),
                Err(shared) if std::time::Instant::now() < deadline => {
                    db = shared;
                    thread::sleep(Duration::from_millis(2));
                }
                Err(_) => return Err(Error::Corrupt("database still in use at close".into())),
            }
        }
    }

    /// Allocates an id (users, packages, versions, files) inside a write transaction.
    fn next_id(txn: &WriteTransaction) -> Result<u64> {
        let mut meta = txn.open_table(META).ctx("opening meta")?;
        let current = meta
            .get("next_id")
            .ctx("reading next id")?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(1);
        meta.insert("next_id", &(current + 1).to_le_bytes()[..])
            .ctx("writing next id")?;
        Ok(current)
    }

    /// Counts a download (GET, not HEAD) of a file; written within `COUNTER_FLUSH`.
    pub fn count_download(&self, at: &FileCoords) {
        if let Ok(mut pending) = self.downloads.lock() {
            *pending.entry(at.lower()).or_default() += 1;
        }
    }

    /// Writes pending download counts, token uses and audit entries in one commit, and drops
    /// audit entries past their retention.
    pub fn flush_pending(&self) -> Result<()> {
        let downloads = self
            .downloads
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let uses = self
            .token_uses
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        let now_secs = now();
        self.close_refusal_window(now_secs, self.closing.load(Ordering::Relaxed));
        let audit = self
            .audit_queue
            .lock()
            .map(|mut p| p.take())
            .unwrap_or_default();
        let retention = self.audit_retention.load(Ordering::Relaxed);
        if downloads.is_empty() && uses.is_empty() && audit.is_empty() {
            return Ok(());
        }
        self.durable(move |txn| {
            let mut files = txn.open_table(FILES).ctx("opening files")?;
            let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            for ([o, n, v, f], count) in &downloads {
                let fkey = (o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str());
                let file = files
                    .get(fkey)
                    .ctx("reading a file")?
                    .map(|g| g.value().to_vec());
                if let Some(bytes) = file {
                    let mut rec: FileRecord = decode(&bytes)?;
                    rec.downloads += count;
                    files
                        .insert(fkey, encode(&rec)?.as_slice())
                        .ctx("counting")?;
                }
                let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
                let version = versions
                    .get(vkey)
                    .ctx("reading a version")?
                    .map(|g| g.value().to_vec());
                if let Some(bytes) = version {
                    let mut rec: VersionRecord = decode(&bytes)?;
                    rec.downloads += count;
                    versions
                        .insert(vkey, encode(&rec)?.as_slice())
                        .ctx("counting")?;
                }
            }
            drop((files, versions));
            limits::record_downloads(txn, &downloads, now_secs)?;
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            for (hash, when) in &uses {
                let current = tokens
                    .get(hash)
                    .ctx("reading a token")?
                    .map(|g| g.value().to_vec());
                if let Some(bytes) = current {
                    let mut rec: TokenRecord = decode(&bytes)?;
                    rec.last_used = Some(*when);
                    tokens
                        .insert(hash, encode(&rec)?.as_slice())
                        .ctx("writing token use")?;
                }
            }
            audit::write_entries(txn, &audit, now_secs.saturating_sub(retention))?;
            Ok(())
        })
    }
}

/// Lowers the calling thread to `SCHED_IDLE` (Linux): it gets the CPU only when nothing else
/// wants it. Elsewhere, or if refused, the thread runs at normal priority.
fn run_only_when_idle() {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler on the calling thread (tid 0) with a valid param struct.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
        if r != 0 {
            log::debug!(
                "digest thread keeps normal priority: {}",
                io::Error::last_os_error()
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sha2::Digest;

    /// A store in a fresh temp directory; the directory is removed with the guard.
    pub(crate) struct TempStore {
        pub store: Arc<Store>,
        dir: PathBuf,
    }

    impl Drop for TempStore {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    pub(crate) fn temp_store() -> TempStore {
        let dir = std::env::temp_dir().join(format!(
            "shelf-store-test-{}-{}",
            std::process::id(),
            new_token().expect("randomness")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let store = Store::open(&dir.join("t.redb")).expect("open");
        TempStore { store, dir }
    }

    #[test]
    fn case_folding_is_per_rune_as_go() {
        assert_eq!(fold_case("ΟΔΟΣ"), "οδοσ");
        assert_eq!(fold_case("V1.0-RC"), "v1.0-rc");
    }

    #[test]
    fn long_background_work_gives_way_to_a_close() {
        let t = temp_store();
        let s = &t.store;
        let body: Vec<u8> = (0..CHUNK_SIZE * 3).map(|i| (i % 251) as u8).collect();
        let at = FileCoords::parse("alice", "pkg", "1.0", "f");
        s.upload(
            &at,
            "alice",
            body.as_slice(),
            crate::chunk::Want::default(),
            |_| Ok(()),
        )
        .expect("upload");
        let sha: [u8; 32] = sha2::Sha256::digest(&body).into();
        s.closing.store(true, Ordering::Relaxed);
        // Before: the digest thread hashed a 1 GiB body to its end (seconds at idle priority)
        // while close waited, and close gave up with "the store is still in use".
        assert!(matches!(s.ensure_digests(&sha), Err(Error::Closed)));
        // A backup in progress (an admin's download) stops too.
        assert!(matches!(s.backup(io::sink()), Err(Error::Closed)));
        s.closing.store(false, Ordering::Relaxed);
        assert!(s.ensure_digests(&sha).expect("digests").is_some());
    }

    #[test]
    fn reopen_keeps_schema_and_ids() {
        let dir = std::env::temp_dir().join(format!("shelf-reopen-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("r.redb");
        let s = Store::open(&path).expect("open");
        assert!(s.create_user(&Owner::of("u1"), false).expect("user"));
        let first = s.get_user("u1").expect("get").expect("exists").id;
        s.close().expect("close");
        let s = Store::open(&path).expect("reopen");
        assert!(s.create_user(&Owner::of("u2"), false).expect("user"));
        let second = s.get_user("u2").expect("get").expect("exists").id;
        assert!(second > first);
        s.close().expect("close");
        let _ = std::fs::remove_dir_all(dir);
    }
}
