//! Air-gap bundles, store side: one read snapshot of the files an export selects (their rows
//! and, lazily, their bytes), and imports that stream every body into pinned chunks first and
//! publish only once the whole bundle is verified, with the bundle's original timestamps.
//!
//! The tar format, the manifest and the verification live in `crate::bundle`; this module only
//! knows rows, pins and commits.

use super::files::{publish_rows, release_pins, NewFile, Source};
use super::*;
use crate::chunk::{Chunker, StreamDigests};
use redb::{ReadTransaction, ReadableDatabase};
use std::io::Read;

/// Which files an export or a manifest covers (names in any case).
#[derive(Debug, Default, Clone)]
pub struct Selection {
    pub owner: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
    /// Unix time: only files created at or after it.
    pub since: Option<u64>,
}

/// One file as held, with the display forms of its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldFile {
    pub owner: String,
    pub package: String,
    pub version: String,
    pub file: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub created: u64,
    pub package_created: u64,
    pub version_created: u64,
}

/// The selected files of one read transaction; their bytes are read from the same snapshot, so
/// an export is consistent even while the store changes.
pub struct Snapshot {
    txn: ReadTransaction,
    pub files: Vec<HeldFile>,
}

impl Snapshot {
    /// A reader of one file's bytes (one chunk in memory at a time).
    pub fn open(&self, f: &HeldFile) -> Result<FileReader> {
        let contents = self.txn.open_table(CONTENTS).ctx("opening contents")?;
        let content: ContentRecord = match contents.get(&f.sha256).ctx("reading a content")? {
            Some(c) => decode(c.value())?,
            None => {
                return Err(Error::Corrupt(format!(
                    "file {}/{}/{}/{} has no content {}",
                    f.owner,
                    f.package,
                    f.version,
                    f.file,
                    hex::encode(f.sha256)
                )))
            }
        };
        if content.size != f.size {
            return Err(Error::Corrupt(format!(
                "content {} holds {} bytes, its file says {}",
                hex::encode(f.sha256),
                content.size,
                f.size
            )));
        }
        let chunks = self.txn.open_table(CHUNKS).ctx("opening chunks")?;
        Ok(FileReader::new(chunks, content.chunks, content.size))
    }
}

/// A body streamed into the store for an import: its chunks are pinned, nothing is visible.
#[derive(Debug)]
pub struct Staged {
    /// `None` for an empty body (no chunks, no pins).
    upload: Option<u64>,
    chunks: Vec<[u8; 32]>,
    pub digests: StreamDigests,
}

/// A verified file of a bundle, ready to publish.
#[derive(Debug)]
pub struct ImportItem {
    pub at: FileCoords,
    pub sha256: [u8; 32],
    pub created: u64,
    pub package_created: u64,
    pub version_created: u64,
    /// `None`: the bytes were not stored because the file was already there when read.
    pub staged: Option<Staged>,
}

/// What importing one file came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported,
    /// The file exists with the same bytes.
    AlreadyPresent,
    /// The file exists with other bytes (their sha256); it was left untouched.
    Conflict([u8; 32]),
    /// Its body or its owner was deleted between reading the bundle and the publishing commit.
    Vanished,
}

impl Store {
    /// The files `sel` covers, in key order, from one read snapshot.
    pub fn snapshot(&self, sel: &Selection) -> Result<Snapshot> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let mut out = Vec::new();
        {
            let users = txn.open_table(USERS).ctx("opening users")?;
            let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
            let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            let files = txn.open_table(FILES).ctx("opening files")?;
            let o = sel.owner.as_deref().map(fold_case).unwrap_or_default();
            let n = sel.package.as_deref().map(fold_case).unwrap_or_default();
            let v = sel.version.as_deref().map(fold_case).unwrap_or_default();
            let (o_next, n_next, v_next) = (format!("{o}\0"), format!("{n}\0"), format!("{v}\0"));
            let range = match (&sel.owner, &sel.package, &sel.version) {
                (None, _, _) => files.range::<FileKey>(..),
                (Some(_), None, _) => {
                    files.range((o.as_str(), "", "", "", "")..(o_next.as_str(), "", "", "", ""))
                }
                (Some(_), Some(_), None) => files.range(
                    (o.as_str(), GENERIC, n.as_str(), "", "")
                        ..(o.as_str(), GENERIC, n_next.as_str(), "", ""),
                ),
                (Some(_), Some(_), Some(_)) => files.range(
                    (o.as_str(), GENERIC, n.as_str(), v.as_str(), "")
                        ..(o.as_str(), GENERIC, n.as_str(), v_next.as_str(), ""),
                ),
            }
            .ctx("listing files")?;
            let mut owner_cache: Option<(String, String)> = None;
            let mut package_cache: Option<((String, String), PackageRecord)> = None;
            let mut version_cache: Option<(String, VersionRecord)> = None;
            for row in range {
                let (k, val) = row.ctx("listing files")?;
                let (ko, kt, kn, kv, _) = k.value();
                if kt != GENERIC {
                    continue;
                }
                let rec: FileRecord = decode(val.value())?;
                if sel.since.is_some_and(|s| rec.created < s) {
                    continue;
                }
                if owner_cache.as_ref().is_none_or(|(lo, _)| lo != ko) {
                    let login = match users.get(ko).ctx("reading a user")? {
                        Some(u) => decode::<UserRecord>(u.value())?.login,
                        None => ko.to_string(),
                    };
                    owner_cache = Some((ko.to_string(), login));
                }
                let pk = (ko.to_string(), kn.to_string());
                if package_cache.as_ref().is_none_or(|(k, _)| *k != pk) {
                    let p = packages
                        .get((ko, GENERIC, kn))
                        .ctx("reading a package")?
                        .map(|g| decode::<PackageRecord>(g.value()))
                        .transpose()?
                        .ok_or_else(|| {
                            Error::Corrupt(format!("files of {ko}/{kn} without a package row"))
                        })?;
                    package_cache = Some((pk, p));
                    version_cache = None;
                }
                if version_cache.as_ref().is_none_or(|(lv, _)| lv != kv) {
                    let r = versions
                        .get((ko, GENERIC, kn, kv))
                        .ctx("reading a version")?
                        .map(|g| decode::<VersionRecord>(g.value()))
                        .transpose()?
                        .ok_or_else(|| {
                            Error::Corrupt(format!("files of {ko}/{kn}/{kv} without a version row"))
                        })?;
                    version_cache = Some((kv.to_string(), r));
                }
                let (Some((_, owner)), Some((_, package)), Some((_, version))) =
                    (&owner_cache, &package_cache, &version_cache)
                else {
                    return Err(Error::Corrupt("listing lost its rows".into()));
                };
                out.push(HeldFile {
                    owner: owner.clone(),
                    package: package.name.clone(),
                    version: version.version.clone(),
                    file: rec.name,
                    size: rec.size,
                    sha256: rec.sha256,
                    created: rec.created,
                    package_created: package.created,
                    version_created: version.created,
                });
            }
        }
        Ok(Snapshot { txn, files: out })
    }

    /// The sha256 of a file's bytes, if the file exists.
    pub fn file_sha256(&self, at: &FileCoords) -> Result<Option<[u8; 32]>> {
        let [o, n, v, f] = at.lower();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let row = files
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
            .ctx("reading a file")?;
        row.map(|g| decode::<FileRecord>(g.value()).map(|r| r.sha256))
            .transpose()
    }

    /// Streams `body` into pinned chunks: stored, counted, invisible. On error nothing stays
    /// pinned. Each chunk is its own short non-durable transaction, as for uploads.
    pub fn stage(&self, body: impl Read) -> Result<Staged> {
        let mut chunker = Chunker::new(body);
        let upload = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let mut chunks = Vec::new();
        let result = loop {
            match chunker.next_chunk() {
                Ok(Some(c)) => {
                    let seq = u32::try_from(chunks.len())
                        .map_err(|_| Error::Rejected("a file of too many chunks".into()));
                    if let Err(e) = seq.and_then(|s| self.pin_chunk(upload, s, c.id, c.data)) {
                        break Err(e);
                    }
                    chunks.push(c.id.0);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Error::Body(e)),
            }
        };
        if let Err(e) = result {
            if !chunks.is_empty() {
                self.release_staged(vec![Staged {
                    upload: Some(upload),
                    chunks,
                    digests: StreamDigests::default(),
                }]);
            }
            return Err(e);
        }
        Ok(Staged {
            upload: (!chunks.is_empty()).then_some(upload),
            chunks,
            digests: chunker.finish(),
        })
    }

    /// Releases the pins of bodies that will not be published, in one transaction (a pin left
    /// behind by a failure here is released by the next startup sweep).
    pub fn release_staged(&self, staged: Vec<Staged>) {
        let uploads: Vec<u64> = staged.iter().filter_map(|s| s.upload).collect();
        if uploads.is_empty() {
            return;
        }
        let released = self.quick_write(|txn| {
            for u in &uploads {
                release_pins(txn, *u)?;
            }
            Ok(())
        });
        if let Err(e) = released {
            log::error!("releasing the chunks of a refused import: {e}");
        }
    }

    /// Publishes verified files in one durable commit, keeping the bundle's timestamps: the
    /// file's, and its package's and version's when this creates them. A file that exists is
    /// never touched: same bytes are `AlreadyPresent`, other bytes a `Conflict`. Audited as
    /// `package.import` by `actor` from `addr`. On error nothing of the batch is published and
    /// its pins are released. `digests`: queue new bodies for md5/sha1/sha512 in the background
    /// (a server); a command that closes the store right after leaves them to the listings.
    pub fn publish_imports(
        &self,
        items: Vec<ImportItem>,
        actor: &str,
        addr: &str,
        digests: bool,
    ) -> Result<Vec<ImportOutcome>> {
        let uploads: Vec<u64> = items
            .iter()
            .filter_map(|i| i.staged.as_ref().and_then(|s| s.upload))
            .collect();
        let creator = actor.to_string();
        let result = self.durable(move |txn| {
            let mut out = Vec::with_capacity(items.len());
            let mut audit = Vec::new();
            let mut new_bodies = Vec::new();
            let import_time = now();
            for item in items {
                let key = item.at.lower();
                let [o, n, v, f] = &key;
                // Owners were checked before the bundle was read, which can take hours: one
                // deleted meanwhile gets nothing (its name may go to a new account).
                let owner_gone = txn
                    .open_table(USERS)
                    .ctx("opening users")?
                    .get(o.as_str())
                    .ctx("reading a user")?
                    .is_none();
                if owner_gone {
                    if let Some(u) = item.staged.as_ref().and_then(|s| s.upload) {
                        release_pins(txn, u)?;
                    }
                    out.push(ImportOutcome::Vanished);
                    continue;
                }
                let existing = txn
                    .open_table(FILES)
                    .ctx("opening files")?
                    .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
                    .ctx("reading a file")?
                    .map(|g| decode::<FileRecord>(g.value()))
                    .transpose()?;
                let target = format!("{}/{}/{}", item.at.name, item.at.version, item.at.file);
                if let Some(rec) = existing {
                    if let Some(u) = item.staged.as_ref().and_then(|s| s.upload) {
                        release_pins(txn, u)?;
                    }
                    if rec.sha256 == item.sha256 {
                        out.push(ImportOutcome::AlreadyPresent);
                    } else {
                        out.push(ImportOutcome::Conflict(rec.sha256));
                        audit.push((o.clone(), target, "conflict"));
                    }
                    continue;
                }
                let Some(staged) = item.staged else {
                    out.push(ImportOutcome::Vanished);
                    continue;
                };
                let package_new = txn
                    .open_table(PACKAGES)
                    .ctx("opening packages")?
                    .get((o.as_str(), GENERIC, n.as_str()))
                    .ctx("reading a package")?
                    .is_none();
                let version_new = txn
                    .open_table(VERSIONS)
                    .ctx("opening versions")?
                    .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
                    .ctx("reading a version")?
                    .is_none();
                let source = match staged.upload {
                    Some(upload) => Source::Pinned {
                        upload,
                        chunks: staged.chunks,
                    },
                    None => Source::Inline(None),
                };
                let new = NewFile {
                    quota: None,
                    key: key.clone(),
                    at: item.at.clone(),
                    creator: creator.clone(),
                    created: item.created,
                    digests: staged.digests,
                };
                let (published, needs_digests) = publish_rows(txn, new, source)?;
                if published != Published::Created {
                    return Err(Error::Corrupt(format!(
                        "importing {target}: publish came to {published:?}"
                    )));
                }
                if needs_digests {
                    new_bodies.push(item.sha256);
                }
                if package_new {
                    let mut packages = txn.open_table(PACKAGES).ctx("opening packages")?;
                    let pkey = (o.as_str(), GENERIC, n.as_str());
                    let rec = packages
                        .get(pkey)
                        .ctx("reading a package")?
                        .map(|g| decode::<PackageRecord>(g.value()))
                        .transpose()?;
                    if let Some(mut rec) = rec {
                        rec.created = item.package_created;
                        packages
                            .insert(pkey, encode(&rec)?.as_slice())
                            .ctx("writing a package")?;
                    }
                }
                if version_new {
                    let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
                    let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
                    let rec = versions
                        .get(vkey)
                        .ctx("reading a version")?
                        .map(|g| decode::<VersionRecord>(g.value()))
                        .transpose()?;
                    if let Some(mut rec) = rec {
                        rec.created = item.version_created;
                        versions
                            .insert(vkey, encode(&rec)?.as_slice())
                            .ctx("writing a version")?;
                    }
                    // "Not downloaded for N days" counts from the version's arrival here, not
                    // from its creation on the other side: a weekly transfer of old versions
                    // must not be removed by the next cleanup run.
                    txn.open_table(super::limits::VERSION_DOWNLOADS)
                        .ctx("opening version_downloads")?
                        .insert((o.as_str(), n.as_str(), v.as_str()), import_time)
                        .ctx("writing an arrival time")?;
                }
                out.push(ImportOutcome::Imported);
                audit.push((o.clone(), target, "ok"));
            }
            Ok((out, audit, new_bodies))
        });
        match result {
            Ok((out, audit, new_bodies)) => {
                if digests {
                    for sha in new_bodies {
                        self.queue_digests(sha);
                    }
                }
                let time = now();
                for (owner, target, outcome) in audit {
                    self.audit(AuditRecord {
                        time,
                        actor: actor.to_string(),
                        addr: addr.to_string(),
                        action: "package.import".into(),
                        owner,
                        target,
                        outcome: outcome.into(),
                    });
                }
                Ok(out)
            }
            Err(e) => {
                // The commit did not happen: every pin of the batch is still there.
                let released = self.quick_write(|txn| {
                    for u in &uploads {
                        release_pins(txn, *u)?;
                    }
                    Ok(())
                });
                if let Err(r) = released {
                    log::error!("releasing the chunks of a failed import batch: {r}");
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;

    fn item(s: &Store, file: &str, data: &[u8]) -> ImportItem {
        let staged = s.stage(data).expect("stage");
        ImportItem {
            at: FileCoords::parse("alice", "Pkg", "1.0", file),
            sha256: staged.digests.sha256,
            created: 1_000,
            package_created: 900,
            version_created: 950,
            staged: Some(staged),
        }
    }

    #[test]
    fn staged_bodies_are_invisible_until_published_with_their_times() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("alice"), false).expect("user"));
        let big = vec![3u8; CHUNK_SIZE * 2 + 7];
        let items = vec![
            item(s, "big", &big),
            item(s, "empty", b""),
            item(s, "small", b"x"),
        ];
        assert!(!s.version_exists("alice", "pkg", "1.0").expect("v"));
        assert_eq!(s.chunk_stats().expect("stats").2, 4, "3 + 1 chunks pinned");
        let out = s
            .publish_imports(items, "cli", "local", false)
            .expect("publish");
        assert_eq!(out, vec![ImportOutcome::Imported; 3]);
        let snap = s.snapshot(&Selection::default()).expect("snapshot");
        assert_eq!(snap.files.len(), 3);
        for f in &snap.files {
            assert_eq!(
                (f.created, f.package_created, f.version_created),
                (1_000, 900, 950)
            );
        }
        // "Not downloaded for N days" counts from the arrival, not from the creation in 1970.
        let arrived = s
            .db()
            .expect("db")
            .begin_read()
            .expect("read")
            .open_table(super::super::limits::VERSION_DOWNLOADS)
            .expect("table")
            .get(("alice", "pkg", "1.0"))
            .expect("get")
            .map(|g| g.value());
        assert!(arrived.is_some_and(|t| t + 60 > now()), "{arrived:?}");
        // Again, and with other bytes: never overwritten, pins released.
        let again = vec![item(s, "big", &big), item(s, "SMALL", b"y")];
        let out = s
            .publish_imports(again, "cli", "local", false)
            .expect("publish");
        assert_eq!(out[0], ImportOutcome::AlreadyPresent);
        assert!(matches!(out[1], ImportOutcome::Conflict(_)));
        let (_, mut r) = s
            .open_file(&FileCoords::parse("alice", "pkg", "1.0", "small"))
            .expect("open")
            .expect("exists");
        let mut body = Vec::new();
        r.read_to_end(&mut body).expect("read");
        assert_eq!(body, b"x");
        assert_eq!(s.chunk_stats().expect("stats").2, 0, "no pin left");
        // An owner deleted while the bundle was read gets nothing, and keeps no pin.
        let late = vec![item(s, "late", b"late bytes")];
        s.delete_owner("alice", true).expect("delete");
        let out = s
            .publish_imports(late, "cli", "local", false)
            .expect("publish");
        assert_eq!(out, vec![ImportOutcome::Vanished]);
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
    }

    #[test]
    fn released_stages_leave_nothing() {
        let t = temp_store();
        let s = &t.store;
        let a = s.stage(&vec![1u8; CHUNK_SIZE + 1][..]).expect("stage");
        let b = s.stage(&b"tiny"[..]).expect("stage");
        s.release_staged(vec![a, b]);
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
        // An upload of the same bytes still works after.
        s.upload(
            &FileCoords::parse("alice", "p", "1", "f"),
            "alice",
            &b"tiny"[..],
            Want::default(),
            |_| Ok(()),
        )
        .expect("upload");
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
    }
}
