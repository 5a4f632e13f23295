//! Air-gap bundles: a plain tar whose first entry is a JSON manifest (`shelf-manifest.json`),
//! followed by every file under `owner/package/version/file`. Used by `shelf export`,
//! `shelf manifest` and `shelf import`, offline on the database file and on a server through
//! the admin API — the same code either way.
//!
//! Export reads one store snapshot and streams (one chunk in memory); its exact length is
//! known before the first byte, so the API sends it with a Content-Length. Import streams each
//! body into pinned, invisible chunks while hashing it, and publishes only after every entry
//! matched the manifest (size, sha256, order, nothing missing, nothing extra, a clean end);
//! any refusal releases every pin. Files that exist are never overwritten.

pub mod tar;

use crate::dates::{parse_rfc3339, rfc3339};
use crate::names::{valid_owner_name, FileName, PackageName, Version};
use crate::store::{
    self, FileCoords, FileReader, HeldFile, ImportItem, ImportOutcome, Selection, Snapshot, Store,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, UNIX_EPOCH};

/// `format` of every manifest shelf writes.
pub const FORMAT: &str = "shelf-bundle";
pub const FORMAT_VERSION: u32 = 1;
/// Name of the manifest entry, the first of every bundle.
pub const MANIFEST_NAME: &str = "shelf-manifest.json";
/// Largest manifest read (a bundle's first entry, or an `--against` file).
pub const MAX_MANIFEST: u64 = 256 << 20;
/// Files published per durable commit during an import.
const IMPORT_BATCH: usize = 64;

/// What an export or manifest was restricted to.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The manifest the export was made against: its source and creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<String>,
}

/// One file of a bundle or of a manifest.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ManifestFile {
    pub owner: String,
    pub package: String,
    pub version: String,
    pub file: String,
    /// Where it is in the tar.
    pub path: String,
    pub size: u64,
    /// Lower-case hex.
    pub sha256: String,
    /// RFC 3339 UTC.
    pub created: String,
    pub package_created: String,
    pub version_created: String,
}

/// A bundle's first entry, and the output of `shelf manifest` (same schema, `kind` differs).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    /// `bundle` (first entry of a tar) or `holdings` (`shelf manifest`).
    pub kind: String,
    pub created: String,
    /// Where it came from: the database file or the server URL, as the exporter saw it.
    pub source: String,
    #[serde(default)]
    pub filters: Filters,
    pub total_files: u64,
    pub total_bytes: u64,
    /// With `--against`: files left out because the other side has them.
    #[serde(default)]
    pub left_out: u64,
    pub files: Vec<ManifestFile>,
}

fn time_str(secs: u64) -> String {
    rfc3339(UNIX_EPOCH + Duration::from_secs(secs))
}

/// A time that is not an RFC 3339 time; `what` names where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadTime {
    pub what: String,
    pub value: String,
}

impl fmt::Display for BadTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} is not an RFC 3339 time", self.what, self.value)
    }
}

impl std::error::Error for BadTime {}

fn parse_time(s: &str, what: &str) -> Result<u64, BadTime> {
    parse_rfc3339(s)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| BadTime {
            what: what.to_string(),
            value: s.to_string(),
        })
}

/// Parses `--since`: RFC 3339 or YYYY-MM-DD (midnight UTC).
pub fn parse_since(s: &str) -> Result<u64, BadTime> {
    parse_time(s, "--since")
}

/// One path component in the tar: names are kept as they are (so `tar -t` shows them), except
/// what could change the tree's shape — `/`, `\`, control characters, `%` (the escape itself)
/// and a whole `.` or `..` — which are percent-escaped. Import recomputes paths from the
/// manifest's names, so no tar name is ever used as a path.
pub fn path_component(s: &str) -> String {
    if s == "." || s == ".." {
        return s.replace('.', "%2E");
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '/' | '\\' | '%') || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

pub fn entry_path(owner: &str, package: &str, version: &str, file: &str) -> String {
    [owner, package, version, file]
        .iter()
        .map(|c| path_component(c))
        .collect::<Vec<_>>()
        .join("/")
}

fn manifest_file(f: &HeldFile) -> ManifestFile {
    ManifestFile {
        owner: f.owner.clone(),
        package: f.package.clone(),
        version: f.version.clone(),
        file: f.file.clone(),
        path: entry_path(&f.owner, &f.package, &f.version, &f.file),
        size: f.size,
        sha256: hex::encode(f.sha256),
        created: time_str(f.created),
        package_created: time_str(f.package_created),
        version_created: time_str(f.version_created),
    }
}

/// The lower-cased identity of a file (`owner/package/version/file`, case-insensitive).
fn file_key(owner: &str, package: &str, version: &str, file: &str) -> [String; 4] {
    [owner, package, version, file].map(store::fold_case)
}

/// The coordinates a manifest entry names, when its names are valid (a shelf or Gitea
/// could hold it); `None` otherwise.
fn coords(f: &ManifestFile) -> Option<FileCoords> {
    Some(FileCoords::new(
        &f.owner,
        &PackageName::parse(&f.package)?,
        &Version::parse(&f.version)?,
        &FileName::parse(&f.file)?,
    ))
}

/// Builds a manifest of held files.
/// The manifest's `source`: shelf's version and the database's file name — not its path,
/// which would tell the other side of an air gap how this server's disk is laid out.
pub fn source_name(db: &std::path::Path) -> String {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("shelf {} ({name})", env!("CARGO_PKG_VERSION"))
}

fn manifest_of(files: &[HeldFile], kind: &str, source: &str, filters: Filters) -> Manifest {
    Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        kind: kind.into(),
        created: time_str(store::now()),
        source: source.into(),
        filters,
        total_files: files.len() as u64,
        total_bytes: files.iter().map(|f| f.size).sum(),
        left_out: 0,
        files: files.iter().map(manifest_file).collect(),
    }
}

/// What this side holds (`shelf manifest`).
pub fn holdings(store: &Store, owner: Option<&str>, source: &str) -> store::Result<Manifest> {
    let snap = store.snapshot(&Selection {
        owner: owner.map(str::to_string),
        ..Selection::default()
    })?;
    let filters = Filters {
        owner: owner.map(str::to_string),
        ..Filters::default()
    };
    Ok(manifest_of(&snap.files, "holdings", source, filters))
}

/// Why a manifest is refused.
#[derive(Debug)]
pub enum ManifestError {
    /// Not JSON of the manifest's shape.
    Json(serde_json::Error),
    /// Another `format` than `FORMAT`.
    Format(String),
    /// A `format_version` this build does not read.
    FormatVersion(u32),
    /// An entry (named by its path) with an invalid owner, package, version or file name.
    Names(String),
    /// An entry whose path is not the one its names give.
    Path(String),
    /// An entry whose sha256 is not 64 hex digits.
    Sha256(String),
    /// An entry with a time that is not RFC 3339.
    Time(BadTime),
    /// An entry listed twice (names are case-insensitive).
    Duplicate(String),
    /// The sizes add up to more than a u64.
    SizesOverflow,
    /// `total_files` or `total_bytes` disagree with the files.
    Totals,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Json(e) => write!(f, "the manifest is not valid: {e}"),
            ManifestError::Format(format) => write!(
                f,
                "not a shelf bundle manifest (format {format:?}, expected {FORMAT:?})"
            ),
            ManifestError::FormatVersion(v) => write!(
                f,
                "bundle format version {v} is not supported (this shelf reads {FORMAT_VERSION})"
            ),
            ManifestError::Names(path) => write!(
                f,
                "manifest entry {path:?}: invalid owner, package, version or file name"
            ),
            ManifestError::Path(path) => {
                write!(
                    f,
                    "manifest entry {path:?}: the path does not match its names"
                )
            }
            ManifestError::Sha256(path) => {
                write!(f, "manifest entry {path:?}: sha256 is not 64 hex digits")
            }
            ManifestError::Time(e) => write!(f, "{e}"),
            ManifestError::Duplicate(path) => write!(
                f,
                "manifest entry {path:?}: listed twice (names are case-insensitive)"
            ),
            ManifestError::SizesOverflow => write!(f, "the manifest's sizes overflow"),
            ManifestError::Totals => write!(f, "the manifest's totals do not match its files"),
        }
    }
}

impl std::error::Error for ManifestError {}

/// Parses and checks a manifest from untrusted bytes: format, names, digests, times, totals,
/// paths, no duplicate file.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    let m: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
    if m.format != FORMAT {
        return Err(ManifestError::Format(m.format));
    }
    if m.format_version != FORMAT_VERSION {
        return Err(ManifestError::FormatVersion(m.format_version));
    }
    let mut seen = HashSet::new();
    let mut total = 0u64;
    for f in &m.files {
        if !valid_owner_name(&f.owner) || coords(f).is_none() {
            return Err(ManifestError::Names(f.path.clone()));
        }
        if f.path != entry_path(&f.owner, &f.package, &f.version, &f.file) {
            return Err(ManifestError::Path(f.path.clone()));
        }
        if f.sha256.len() != 64 || hex::decode(&f.sha256).is_err() {
            return Err(ManifestError::Sha256(f.path.clone()));
        }
        let label = format!("manifest entry {:?}", f.path);
        for t in [&f.created, &f.package_created, &f.version_created] {
            parse_time(t, &label).map_err(ManifestError::Time)?;
        }
        if !seen.insert(file_key(&f.owner, &f.package, &f.version, &f.file)) {
            return Err(ManifestError::Duplicate(f.path.clone()));
        }
        total = total
            .checked_add(f.size)
            .ok_or(ManifestError::SizesOverflow)?;
    }
    if m.total_files != m.files.len() as u64 || m.total_bytes != total {
        return Err(ManifestError::Totals);
    }
    Ok(m)
}

// ---------------------------------------------------------------------------------- export

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportRequest {
    pub owner: String,
    pub package: Option<String>,
    pub version: Option<String>,
    /// As given (RFC 3339 or YYYY-MM-DD).
    pub since: Option<String>,
    /// What the other side already holds.
    pub against: Option<Manifest>,
}

/// Why an export cannot start.
#[derive(Debug)]
pub enum ExportError {
    InvalidOwner(String),
    /// A version filter without a package filter.
    VersionWithoutPackage,
    Since(BadTime),
    Store(store::Error),
    /// The manifest could not be serialized.
    Manifest(serde_json::Error),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::InvalidOwner(o) => write!(f, "invalid owner name {o:?}"),
            ExportError::VersionWithoutPackage => write!(f, "a version filter needs a package"),
            ExportError::Since(e) => write!(f, "{e}"),
            ExportError::Store(e) => write!(f, "{e}"),
            ExportError::Manifest(e) => write!(f, "cannot write the manifest: {e}"),
        }
    }
}

impl std::error::Error for ExportError {}

impl From<store::Error> for ExportError {
    fn from(e: store::Error) -> ExportError {
        ExportError::Store(e)
    }
}

/// A bundle being written: its manifest and its bytes, from one snapshot.
pub struct Export {
    pub manifest: Manifest,
    stream: ExportStream,
}

impl Export {
    /// Selects the files (one snapshot) and builds the manifest; nothing is read yet.
    pub fn prepare(
        store: &Store,
        req: &ExportRequest,
        source: &str,
    ) -> Result<Export, ExportError> {
        if !valid_owner_name(&req.owner) {
            return Err(ExportError::InvalidOwner(req.owner.clone()));
        }
        if req.version.is_some() && req.package.is_none() {
            return Err(ExportError::VersionWithoutPackage);
        }
        let since = req
            .since
            .as_deref()
            .map(parse_since)
            .transpose()
            .map_err(ExportError::Since)?;
        let mut snap = store.snapshot(&Selection {
            owner: Some(req.owner.clone()),
            package: req.package.clone(),
            version: req.version.clone(),
            since,
        })?;
        let mut left_out = 0u64;
        let mut against_label = None;
        if let Some(other) = &req.against {
            let theirs: HashMap<[String; 4], &str> = other
                .files
                .iter()
                .map(|f| {
                    (
                        file_key(&f.owner, &f.package, &f.version, &f.file),
                        f.sha256.as_str(),
                    )
                })
                .collect();
            let before = snap.files.len();
            snap.files.retain(|f| {
                let key = file_key(&f.owner, &f.package, &f.version, &f.file);
                theirs.get(&key) != Some(&hex::encode(f.sha256).as_str())
            });
            left_out = (before - snap.files.len()) as u64;
            against_label = Some(format!(
                "{} manifest of {} created {}",
                other.kind, other.source, other.created
            ));
        }
        let filters = Filters {
            owner: Some(req.owner.clone()),
            package: req.package.clone(),
            version: req.version.clone(),
            since: req.since.clone(),
            against: against_label,
        };
        let mut manifest = manifest_of(&snap.files, "bundle", source, filters);
        manifest.left_out = left_out;
        let json = serde_json::to_vec_pretty(&manifest).map_err(ExportError::Manifest)?;
        let stream = ExportStream::new(snap, json, store::now());
        Ok(Export { manifest, stream })
    }

    /// The exact size of the tar.
    pub fn len(&self) -> u64 {
        self.stream.len
    }

    pub fn is_empty(&self) -> bool {
        self.stream.len == 0
    }

    pub fn into_stream(self) -> ExportStream {
        self.stream
    }
}

/// The tar's bytes, lent slice by slice (file bytes straight from the store's chunk pages).
pub struct ExportStream {
    snap: Snapshot,
    manifest: Vec<u8>,
    created: u64,
    len: u64,
    /// Headers or padding not yet lent, and how far they were.
    pending: Vec<u8>,
    pending_at: usize,
    /// Next file (0 is before the manifest entry has been queued).
    next: usize,
    started: bool,
    ended: bool,
    reader: Option<FileReader>,
}

impl ExportStream {
    fn new(snap: Snapshot, manifest: Vec<u8>, created: u64) -> ExportStream {
        let m = manifest.len() as u64;
        let mut len = tar::header_len(MANIFEST_NAME, m) + m + tar::padding(m);
        for f in &snap.files {
            let path = entry_path(&f.owner, &f.package, &f.version, &f.file);
            len += tar::header_len(&path, f.size) + f.size + tar::padding(f.size);
        }
        len += 2 * tar::BLOCK as u64;
        ExportStream {
            snap,
            manifest,
            created,
            len,
            pending: Vec::new(),
            pending_at: 0,
            next: 0,
            started: false,
            ended: false,
            reader: None,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next bytes of the tar; an empty slice at its end.
    pub fn next_slice(&mut self) -> io::Result<&[u8]> {
        loop {
            if self.pending_at < self.pending.len() {
                let at = self.pending_at;
                self.pending_at = self.pending.len();
                return Ok(&self.pending[at..]);
            }
            match self.reader.as_ref().map(|r| (r.is_exhausted(), r.size())) {
                Some((false, _)) => break,
                Some((true, size)) => {
                    self.reader = None;
                    self.pending = vec![0; tar::padding(size) as usize];
                    self.pending_at = 0;
                    continue;
                }
                None => {}
            }
            if !self.started {
                self.started = true;
                let m = self.manifest.len() as u64;
                let mut p = tar::headers(MANIFEST_NAME, m, self.created);
                p.extend_from_slice(&self.manifest);
                p.resize(p.len() + tar::padding(m) as usize, 0);
                self.pending = p;
                self.pending_at = 0;
                continue;
            }
            if let Some(f) = self.snap.files.get(self.next) {
                self.next += 1;
                let path = entry_path(&f.owner, &f.package, &f.version, &f.file);
                self.pending = tar::headers(&path, f.size, f.created);
                self.pending_at = 0;
                let reader = self
                    .snap
                    .open(f)
                    .map_err(|e| io::Error::other(format!("reading {path}: {e}")))?;
                self.reader = Some(reader);
                continue;
            }
            if !self.ended {
                self.ended = true;
                self.pending = vec![0; 2 * tar::BLOCK];
                self.pending_at = 0;
                continue;
            }
            return Ok(&[]);
        }
        // Only reached with a file being read.
        match self.reader.as_mut() {
            Some(r) => r.next_slice(),
            None => Ok(&[]),
        }
    }

    /// Writes the whole tar to `out`; returns the bytes written.
    pub fn write_to(&mut self, out: &mut impl io::Write) -> io::Result<u64> {
        let mut written = 0u64;
        loop {
            let s = self.next_slice()?;
            if s.is_empty() {
                break;
            }
            out.write_all(s)?;
            written += s.len() as u64;
        }
        if written != self.len {
            return Err(io::Error::other(format!(
                "wrote {written} bytes, expected {}",
                self.len
            )));
        }
        Ok(written)
    }
}

// ---------------------------------------------------------------------------------- import

/// How an import went.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub files: u64,
    pub imported: u64,
    pub imported_bytes: u64,
    pub already_present: u64,
    /// Files that exist here with other bytes: left untouched.
    pub conflicts: Vec<Conflict>,
    /// Files that were present when read and deleted before publishing (not imported).
    #[serde(default)]
    pub vanished: Vec<String>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub bundle_sha256: String,
    pub existing_sha256: String,
}

/// Why an import stopped.
#[derive(Debug)]
pub enum ImportError {
    /// The bundle is damaged, does not match its manifest, or names missing owners; nothing
    /// was imported.
    Refused(String),
    /// The bundle's manifest is not valid; nothing was imported.
    Manifest(ManifestError),
    /// A time of the bundle's manifest is not RFC 3339; nothing was imported.
    Time(BadTime),
    /// The store failed: before publishing (`imported` is `None`: nothing was imported), or
    /// after `imported` files were published (importing the bundle again completes it).
    Store {
        source: store::Error,
        imported: Option<u64>,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Refused(m) => write!(f, "bundle refused, nothing imported: {m}"),
            ImportError::Manifest(e) => write!(f, "bundle refused, nothing imported: {e}"),
            ImportError::Time(e) => write!(f, "bundle refused, nothing imported: {e}"),
            ImportError::Store {
                source,
                imported: None,
            } => write!(f, "import failed: {source}"),
            ImportError::Store {
                source,
                imported: Some(n),
            } => write!(
                f,
                "import failed: {source} (after {n} files were imported; importing the bundle \
                 again completes it)"
            ),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<store::Error> for ImportError {
    /// A store failure before anything was published.
    fn from(source: store::Error) -> ImportError {
        ImportError::Store {
            source,
            imported: None,
        }
    }
}

/// Reads a body through, hashing it (for files already present: nothing is stored).
fn hash_through(mut body: impl Read) -> io::Result<(u64, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok((total, h.finalize().into()))
}

fn refused(e: io::Error) -> ImportError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ImportError::Refused(format!("the bundle is truncated ({e})"))
    } else {
        ImportError::Refused(format!("the bundle cannot be read: {e}"))
    }
}

/// Who imports, for the audit log, and where.
#[derive(Debug, Clone, Copy)]
pub struct Importer<'a> {
    pub actor: &'a str,
    pub addr: &'a str,
    /// A running server computes new bodies' md5/sha1/sha512 in the background; the offline
    /// command, which closes the store at once, leaves them to the first listing.
    pub background_digests: bool,
}

/// Imports a bundle: verifies everything while storing it invisibly, then publishes.
pub fn import(
    store: &Store,
    input: impl Read,
    by: Importer<'_>,
) -> Result<ImportReport, ImportError> {
    let mut staged: Vec<ImportItem> = Vec::new();
    match read_and_stage(store, input, &mut staged) {
        Ok(()) => {}
        Err(e) => {
            store.release_staged(staged.into_iter().filter_map(|i| i.staged).collect());
            return Err(e);
        }
    }
    // New versions get ids (the "newest first" order) as they are created: create them in
    // their original order, not the bundle's key order ("10.0" sorts before "9.0").
    staged.sort_by_key(|i| (i.version_created, i.package_created, i.created));
    let mut report = ImportReport {
        files: staged.len() as u64,
        ..ImportReport::default()
    };
    let mut items = staged.into_iter();
    loop {
        let batch: Vec<ImportItem> = items.by_ref().take(IMPORT_BATCH).collect();
        if batch.is_empty() {
            break;
        }
        let info: Vec<(String, u64, [u8; 32])> = batch
            .iter()
            .map(|i| {
                (
                    entry_path(&i.at.owner, &i.at.name, &i.at.version, &i.at.file),
                    i.staged.as_ref().map(|s| s.digests.size).unwrap_or(0),
                    i.sha256,
                )
            })
            .collect();
        let outcomes = match store.publish_imports(batch, by.actor, by.addr, by.background_digests)
        {
            Ok(o) => o,
            Err(e) => {
                store.release_staged(items.filter_map(|i| i.staged).collect());
                return Err(ImportError::Store {
                    source: e,
                    imported: Some(report.imported),
                });
            }
        };
        for ((path, size, sha), outcome) in info.into_iter().zip(outcomes) {
            match outcome {
                ImportOutcome::Imported => {
                    report.imported += 1;
                    report.imported_bytes += size;
                }
                ImportOutcome::AlreadyPresent => report.already_present += 1,
                ImportOutcome::Conflict(existing) => report.conflicts.push(Conflict {
                    path,
                    bundle_sha256: hex::encode(sha),
                    existing_sha256: hex::encode(existing),
                }),
                ImportOutcome::Vanished => report.vanished.push(path),
            }
        }
    }
    Ok(report)
}

fn read_and_stage(
    store: &Store,
    input: impl Read,
    staged: &mut Vec<ImportItem>,
) -> Result<(), ImportError> {
    let mut tar = tar::Reader::new(input);
    let first = tar
        .next_entry()
        .map_err(refused)?
        .ok_or_else(|| ImportError::Refused("the bundle is empty".into()))?;
    if first.path != MANIFEST_NAME {
        return Err(ImportError::Refused(format!(
            "the first entry is {:?}, not {MANIFEST_NAME}: not a shelf bundle",
            first.path
        )));
    }
    if first.size > MAX_MANIFEST {
        return Err(ImportError::Refused(format!(
            "a {}-byte manifest is larger than the {MAX_MANIFEST}-byte limit",
            first.size
        )));
    }
    let mut json = Vec::with_capacity(first.size as usize);
    tar.data().read_to_end(&mut json).map_err(refused)?;
    let manifest = parse_manifest(&json).map_err(ImportError::Manifest)?;
    drop(json);
    if manifest.kind != "bundle" {
        return Err(ImportError::Refused(format!(
            "this is a {:?} manifest, not a bundle",
            manifest.kind
        )));
    }
    // Every owner must exist before anything is stored.
    let mut owners: Vec<&str> = Vec::new();
    let mut checked = HashSet::new();
    for f in &manifest.files {
        if checked.insert(store::fold_case(&f.owner)) {
            let exists = store.get_user(&f.owner)?.is_some();
            if !exists {
                owners.push(&f.owner);
            }
        }
    }
    if !owners.is_empty() {
        return Err(ImportError::Refused(format!(
            "these owners do not exist here: {} (create them first, e.g. shelf org create NAME)",
            owners.join(", ")
        )));
    }
    for f in &manifest.files {
        let entry = tar.next_entry().map_err(refused)?.ok_or_else(|| {
            ImportError::Refused(format!(
                "the bundle ends before {:?}, which its manifest lists",
                f.path
            ))
        })?;
        if entry.path != f.path {
            return Err(ImportError::Refused(format!(
                "found entry {:?} where the manifest lists {:?}",
                entry.path, f.path
            )));
        }
        if entry.size != f.size {
            return Err(ImportError::Refused(format!(
                "{}: the tar says {} bytes, the manifest {}",
                f.path, entry.size, f.size
            )));
        }
        // The manifest was validated when it was read; this cannot fail on a bundle that
        // got this far, but an entry with invalid names is refused all the same.
        let at =
            coords(f).ok_or_else(|| ImportError::Refused(format!("{}: invalid names", f.path)))?;
        let mut want = [0u8; 32];
        hex::decode_to_slice(&f.sha256, &mut want)
            .map_err(|_| ImportError::Refused(format!("{}: bad sha256", f.path)))?;
        let created = parse_time(&f.created, "created").map_err(ImportError::Time)?;
        let package_created =
            parse_time(&f.package_created, "package_created").map_err(ImportError::Time)?;
        let version_created =
            parse_time(&f.version_created, "version_created").map_err(ImportError::Time)?;
        let present = store.file_sha256(&at)?.is_some();
        let (size, sha, body) = if present {
            // Verified all the same (a damaged bundle is refused whole), but not stored.
            let (size, sha) = hash_through(tar.data()).map_err(refused)?;
            (size, sha, None)
        } else {
            let s = store.stage(tar.data()).map_err(|e| match e {
                store::Error::Body(io) => refused(io),
                other => other.into(),
            })?;
            (s.digests.size, s.digests.sha256, Some(s))
        };
        let mismatch = size != f.size || sha != want;
        staged.push(ImportItem {
            at,
            sha256: want,
            created,
            package_created,
            version_created,
            staged: body,
        });
        if mismatch {
            return Err(ImportError::Refused(format!(
                "{}: the body's sha256 is {}, the manifest says {} (the bundle is damaged)",
                f.path,
                hex::encode(sha),
                f.sha256
            )));
        }
    }
    match tar.next_entry().map_err(refused)? {
        None => Ok(()),
        Some(extra) => Err(ImportError::Refused(format!(
            "the bundle holds {:?}, which its manifest does not list",
            extra.path
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_tree() {
        assert_eq!(entry_path("o", "p", "..", "f"), "o/p/%2E%2E/f");
        assert_eq!(entry_path("o", "p", ".", "f"), "o/p/%2E/f");
        assert_eq!(
            entry_path("o", "p", "1/../../x", "f"),
            "o/p/1%2F..%2F..%2Fx/f"
        );
        assert_eq!(entry_path("o", "p", "a\\b%", "f"), "o/p/a%5Cb%25/f");
        assert_eq!(entry_path("o", "p", "Ωμέγα", "f"), "o/p/Ωμέγα/f");
    }

    fn sample() -> Manifest {
        let f = ManifestFile {
            owner: "o".into(),
            package: "p".into(),
            version: "1".into(),
            file: "f".into(),
            path: "o/p/1/f".into(),
            size: 3,
            sha256: "a".repeat(64),
            created: "2026-01-01T00:00:00Z".into(),
            package_created: "2026-01-01T00:00:00Z".into(),
            version_created: "2026-01-01T00:00:00Z".into(),
        };
        Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            kind: "bundle".into(),
            created: "2026-01-01T00:00:00Z".into(),
            source: "t".into(),
            filters: Filters::default(),
            total_files: 1,
            total_bytes: 3,
            left_out: 0,
            files: vec![f],
        }
    }

    #[test]
    fn hostile_manifests_are_refused() {
        let ok = sample();
        let bytes = serde_json::to_vec(&ok).expect("json");
        assert_eq!(parse_manifest(&bytes).expect("valid"), ok);
        let mut bad: Vec<Manifest> = Vec::new();
        let mut m = sample();
        m.files[0].path = "../../etc/passwd".into();
        bad.push(m);
        let mut m = sample();
        m.files[0].file = "..".into();
        m.files[0].path = "o/p/1/%2E%2E".into();
        bad.push(m);
        let mut m = sample();
        m.files[0].sha256 = "zz".into();
        bad.push(m);
        let mut m = sample();
        m.total_bytes = 4;
        bad.push(m);
        let mut m = sample();
        let mut dup = m.files[0].clone();
        dup.file = "F".into();
        dup.path = "o/p/1/F".into();
        m.files.push(dup);
        m.total_files = 2;
        m.total_bytes = 6;
        bad.push(m);
        let mut m = sample();
        m.files[0].created = "yesterday".into();
        bad.push(m);
        let mut m = sample();
        m.format_version = 2;
        bad.push(m);
        for m in bad {
            let bytes = serde_json::to_vec(&m).expect("json");
            assert!(parse_manifest(&bytes).is_err(), "{m:?}");
        }
        assert!(parse_manifest(b"{").is_err());
        assert!(parse_manifest(b"[]").is_err());
    }
}
