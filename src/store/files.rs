//! Uploads (chunk pins and the publishing commit), deploys by checksum, deletes with exact
//! reference counts, and downloads from one snapshot.

use super::*;
use crate::chunk::{ChunkId, Chunker, DigestMismatch, StreamDigests, Want};
use redb::{ReadOnlyTable, ReadableDatabase};
use std::io::Read;

/// What a publish came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Published {
    Created,
    /// A file of that name (in any case) already exists in the version; nothing changed.
    Conflict,
    /// Deploy by checksum only: no readable file has these bytes.
    UnknownContent,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    Done,
    NoVersion,
    NoFile,
}

/// Where a new file's bytes come from when it is published.
pub(super) enum Source {
    /// The file's only chunk (or none for an empty file), written by the publishing commit.
    Inline(Option<(ChunkId, Vec<u8>)>),
    /// Chunks already written and pinned by upload `id`.
    Pinned { upload: u64, chunks: Vec<[u8; 32]> },
    /// Bytes already stored under this sha256 (deploy by checksum).
    Existing,
}

/// Lower-cased keys and display forms of a file being published.
pub(super) struct NewFile {
    pub(super) key: [String; 4],
    pub(super) at: FileCoords,
    pub(super) creator: String,
    pub(super) created: u64,
    pub(super) digests: StreamDigests,
    /// Checked against the quotas in the publishing commit (`None`: not checked).
    pub(super) quota: Option<limits::QuotaCheck>,
}

impl Store {
    pub fn file_exists(&self, at: &FileCoords) -> Result<bool> {
        let [o, n, v, f] = at.lower();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        Ok(files
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
            .ctx("reading a file")?
            .is_some())
    }

    /// Streams `body` into chunks and publishes it at `at`, computing the digests of `want` on
    /// the way. `verify` sees the digests of the whole body before anything is published; its
    /// `Err` refuses the upload. Returns only after the publishing commit is durable. On any
    /// error, refusal or conflict nothing is visible and nothing stays pinned.
    pub fn upload(
        &self,
        at: &FileCoords,
        creator: &str,
        body: impl Read,
        want: Want,
        verify: impl FnOnce(&StreamDigests) -> std::result::Result<(), DigestMismatch>,
    ) -> Result<Published> {
        self.upload_within(at, creator, body, want, verify, None)
    }

    /// `upload`, refused with `Error::Quota` (nothing stored) when `quota` says so, decided
    /// in the publishing commit itself.
    pub fn upload_within(
        &self,
        at: &FileCoords,
        creator: &str,
        body: impl Read,
        want: Want,
        verify: impl FnOnce(&StreamDigests) -> std::result::Result<(), DigestMismatch>,
        quota: Option<limits::QuotaCheck>,
    ) -> Result<Published> {
        let mut chunker = Chunker::with_digests(body, want);
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
            self.ensure_room(inline.as_ref().map_or(0, |(_, d)| d.len() as u64))?;
            let digests = chunker.finish();
            verify(&digests).map_err(|e| Error::Rejected(e.to_string()))?;
            let new = NewFile {
                quota,
                ..self.new_file(at, creator, digests)
            };
            return self.publish(new, Source::Inline(inline));
        }
        let upload = self.next_upload.fetch_add(1, Ordering::Relaxed);
        let mut chunks = Vec::new();
        let mut current = first;
        let result = loop {
            let Some(chunk) = current else { break Ok(()) };
            if let Err(e) = self.pin_chunk(upload, chunks.len() as u32, chunk.id, chunk.data) {
                break Err(e);
            }
            chunks.push(chunk.id.0);
            current = match chunker.next_chunk() {
                Ok(c) => c,
                Err(e) => break Err(Error::Body(e)),
            };
        };
        let result = result.and_then(|()| {
            let digests = chunker.finish();
            verify(&digests).map_err(|e| Error::Rejected(e.to_string()))?;
            Ok(digests)
        });
        match result {
            Ok(digests) => self.publish(
                NewFile {
                    quota,
                    ..self.new_file(at, creator, digests)
                },
                Source::Pinned { upload, chunks },
            ),
            Err(e) => {
                self.release_upload(upload);
                Err(e)
            }
        }
    }

    /// `publish_existing_within` without quotas (tests).
    #[cfg(test)]
    pub(crate) fn publish_existing(
        &self,
        at: &FileCoords,
        creator: &str,
        sha256: [u8; 32],
        readable: impl Fn(&str) -> bool + Send + 'static,
        check: impl FnOnce(u64) -> Result<()>,
    ) -> Result<Published> {
        self.publish_existing_within(at, creator, sha256, readable, check, None)
    }

    /// Publishes a file whose bytes shelf already holds (Artifactory's deploy by checksum),
    /// looking only at bodies of owners `readable` accepts, so a caller learns nothing about
    /// namespaces it cannot read, under the quotas (`Error::Quota` when refused). `check` sees
    /// the size of the found bytes before anything is published; its error refuses the deploy.
    pub fn publish_existing_within(
        &self,
        at: &FileCoords,
        creator: &str,
        sha256: [u8; 32],
        readable: impl Fn(&str) -> bool + Send + 'static,
        check: impl FnOnce(u64) -> Result<()>,
        quota: Option<limits::QuotaCheck>,
    ) -> Result<Published> {
        let found = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let owners = txn
                .open_table(CONTENT_OWNERS)
                .ctx("opening content_owners")?;
            let mut found = false;
            for row in owners.range((&sha256, "")..).ctx("listing owners")? {
                let (k, _) = row.ctx("listing owners")?;
                let (sha, owner) = k.value();
                if *sha != sha256 {
                    break;
                }
                if readable(owner) {
                    found = true;
                    break;
                }
            }
            found
        };
        if !found {
            return Ok(Published::UnknownContent);
        }
        let size = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
            let content = contents.get(&sha256).ctx("reading a content")?;
            match content {
                Some(c) => decode::<ContentRecord>(c.value())?.size,
                None => return Ok(Published::UnknownContent),
            }
        };
        check(size)?;
        let digests = StreamDigests {
            sha256,
            size,
            ..StreamDigests::default()
        };
        let new = NewFile {
            quota,
            ..self.new_file(at, creator, digests)
        };
        self.publish(new, Source::Existing)
    }

    fn new_file(&self, at: &FileCoords, creator: &str, digests: StreamDigests) -> NewFile {
        NewFile {
            key: at.lower(),
            at: at.clone(),
            creator: creator.to_string(),
            created: now(),
            digests,
            quota: None,
        }
    }

    /// Writes one chunk (unless present) and pins it for `upload`, in its own short transaction.
    pub(super) fn pin_chunk(&self, upload: u64, seq: u32, id: ChunkId, data: &[u8]) -> Result<()> {
        // Before redb meets a full disk: its latch would fail every operation until a reopen.
        self.ensure_room(data.len() as u64)?;
        self.quick_write(|txn| {
            let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
            let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
            ref_chunk(&mut refs, &mut chunks, &id.0, Some(data))?;
            let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
            uploads
                .insert((upload, seq), &id.0)
                .ctx("pinning a chunk")?;
            Ok(())
        })
    }

    /// Drops every pin of an upload that will not be published (errors are logged: a pin left
    /// behind is released by the next startup sweep).
    fn release_upload(&self, upload: u64) {
        // A reopen after a storage fault sweeps every pin: no need to wait for it.
        if self.db.reopening() {
            return;
        }
        if let Err(e) = self.quick_write(|txn| release_pins(txn, upload)) {
            log::error!("releasing the chunks of upload {upload}: {e}");
        }
    }

    fn publish(&self, new: NewFile, source: Source) -> Result<Published> {
        let upload = match &source {
            Source::Pinned { upload, .. } => Some(*upload),
            _ => None,
        };
        let sha256 = new.digests.sha256;
        let result = self.durable(move |txn| {
            // The quotas first (Gitea's order: before the 409), atomic with the totals.
            if let Some(check) = new.quota {
                if let Some(q) = limits::refusal(txn, &new.key, new.digests.size, check)? {
                    if let Source::Pinned { upload, .. } = source {
                        release_pins(txn, upload)?;
                    }
                    return Ok((Err(q), false));
                }
            }
            publish_rows(txn, new, source).map(|(p, d)| (Ok(p), d))
        });
        match result {
            Ok((Err(q), _)) => Err(Error::Quota(q)),
            Ok((Ok(outcome), needs_digests)) => {
                if needs_digests {
                    self.queue_digests(sha256);
                }
                Ok(outcome)
            }
            Err(e) => {
                if let Some(upload) = upload {
                    self.release_upload(upload);
                }
                Err(e)
            }
        }
    }

    /// Deletes one file; the version goes with its last file, the package with its last version.
    pub fn delete_file(&self, at: &FileCoords) -> Result<Deleted> {
        let [o, n, v, f] = at.lower();
        self.durable(move |txn| {
            let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
            if txn
                .open_table(VERSIONS)
                .ctx("opening versions")?
                .get(vkey)
                .ctx("reading a version")?
                .is_none()
            {
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
            let more = files
                .range(version_files(&o, &n, &v).as_range())
                .ctx("listing files")?
                .next()
                .is_some();
            drop(files);
            release_content(txn, &rec.sha256, &o)?;
            if !more {
                remove_version(txn, &o, &n, &v)?;
            }
            Ok(Deleted::Done)
        })
    }

    /// Deletes a version and all its files.
    pub fn delete_version(&self, owner: &str, name: &str, version: &str) -> Result<Deleted> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        self.durable(move |txn| {
            if delete_version_rows(txn, &o, &n, &v)? {
                Ok(Deleted::Done)
            } else {
                Ok(Deleted::NoVersion)
            }
        })
    }

    /// Deletes a package with all its versions; `Ok(false)` when there is no such package.
    pub fn delete_package(&self, owner: &str, name: &str) -> Result<bool> {
        let (o, n) = (fold_case(owner), fold_case(name));
        self.durable(move |txn| delete_package_rows(txn, &o, &n))
    }

    /// Opens a file for reading in one snapshot: the bytes stay readable to the end of the
    /// download even if the file is deleted meanwhile.
    pub fn open_file(&self, at: &FileCoords) -> Result<Option<(FileRecord, FileReader)>> {
        let [o, n, v, f] = at.lower();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let row = files
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str()))
            .ctx("reading a file")?;
        let Some(row) = row else { return Ok(None) };
        let rec: FileRecord = decode(row.value())?;
        let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
        let content: ContentRecord = match contents.get(&rec.sha256).ctx("reading a content")? {
            Some(c) => decode(c.value())?,
            None => {
                return Err(Error::Corrupt(format!(
                    "file {} has no content {}",
                    rec.name,
                    hex::encode(rec.sha256)
                )))
            }
        };
        let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
        Ok(Some((
            rec,
            FileReader::new(chunks, content.chunks, content.size).resumable(&self.db),
        )))
    }

    /// Whether a version exists (to tell "no such version" from "no such file" on a 404).
    pub fn version_exists(&self, owner: &str, name: &str, version: &str) -> Result<bool> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        Ok(versions
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
            .ctx("reading a version")?
            .is_some())
    }
}

/// The key range of all files of one version: every key sorts between (…, v, "") and
/// (…, v + "\0", "").
struct VersionFiles {
    o: String,
    n: String,
    v: String,
    v_next: String,
}

fn version_files(o: &str, n: &str, v: &str) -> VersionFiles {
    VersionFiles {
        o: o.to_string(),
        n: n.to_string(),
        v: v.to_string(),
        v_next: format!("{v}\0"),
    }
}

impl VersionFiles {
    fn as_range(&self) -> std::ops::Range<FileKey<'_>> {
        (
            self.o.as_str(),
            GENERIC,
            self.n.as_str(),
            self.v.as_str(),
            "",
        )
            ..(
                self.o.as_str(),
                GENERIC,
                self.n.as_str(),
                self.v_next.as_str(),
                "",
            )
    }
}

/// The body of the publishing transaction. Returns the outcome and whether the body's extra
/// digests still have to be computed.
pub(super) fn publish_rows(
    txn: &WriteTransaction,
    new: NewFile,
    source: Source,
) -> Result<(Published, bool)> {
    let [o, n, v, f] = &new.key;
    let key = (o.as_str(), GENERIC, n.as_str(), v.as_str(), f.as_str());
    let mut files = txn.open_table(FILES).ctx("opening files")?;
    if files.get(key).ctx("reading a file")?.is_some() {
        if let Source::Pinned { upload, .. } = source {
            release_pins(txn, upload)?;
        }
        return Ok((Published::Conflict, false));
    }
    let sha = new.digests.sha256;
    // The content first: deploy by checksum may find it gone since its read.
    let mut contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    let existing = contents
        .get(&sha)
        .ctx("reading a content")?
        .map(|g| decode::<ContentRecord>(g.value()))
        .transpose()?;
    let (size, needs_digests) = match (existing, source) {
        (Some(mut content), source) => {
            content.files += 1;
            content.md5 = content.md5.or(new.digests.md5);
            content.sha1 = content.sha1.or(new.digests.sha1);
            content.sha512 = content.sha512.or(new.digests.sha512.clone());
            contents
                .insert(&sha, encode(&content)?.as_slice())
                .ctx("writing a content")?;
            // The bytes are already counted by the content: an upload's pins are released.
            if let Source::Pinned { upload, .. } = source {
                release_pins(txn, upload)?;
            }
            (content.size, false)
        }
        (None, source) => {
            let chunks = match source {
                Source::Inline(None) => Vec::new(),
                Source::Inline(Some((id, data))) => {
                    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
                    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
                    ref_chunk(&mut refs, &mut chunks, &id.0, Some(&data))?;
                    vec![id.0]
                }
                Source::Pinned { upload, chunks } => {
                    // The upload's pins become the content's references: counts stay.
                    let mut uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
                    let mut pinned = Vec::with_capacity(chunks.len());
                    for row in uploads
                        .extract_from_if((upload, 0)..=(upload, u32::MAX), |_, _| true)
                        .ctx("unpinning")?
                    {
                        pinned.push(*row.ctx("unpinning")?.1.value());
                    }
                    // Pins are non-durable writes: a reopen after a storage fault in the middle
                    // of the upload lost the earlier ones with their chunks. Publishing the
                    // list would reference bytes that are not there: the client retries.
                    if pinned != chunks {
                        log::warn!(
                            "upload {upload}: {} of its {} chunks were lost to a reopen; refused",
                            chunks.len().saturating_sub(pinned.len()),
                            chunks.len()
                        );
                        return Err(Error::Recovering);
                    }
                    chunks
                }
                // The bytes went away since `publish_existing` saw them.
                Source::Existing => return Ok((Published::UnknownContent, false)),
            };
            let content = ContentRecord {
                size: new.digests.size,
                chunks,
                files: 1,
                md5: new.digests.md5,
                sha1: new.digests.sha1,
                sha512: new.digests.sha512.clone(),
            };
            contents
                .insert(&sha, encode(&content)?.as_slice())
                .ctx("writing a content")?;
            let missing =
                content.md5.is_none() || content.sha1.is_none() || content.sha512.is_none();
            (content.size, missing)
        }
    };
    drop(contents);
    let mut owners = txn
        .open_table(CONTENT_OWNERS)
        .ctx("opening content_owners")?;
    let count = owners
        .get((&sha, o.as_str()))
        .ctx("reading content owners")?
        .map(|g| g.value())
        .unwrap_or(0);
    owners
        .insert((&sha, o.as_str()), count + 1)
        .ctx("writing content owners")?;
    drop(owners);

    let mut packages = txn.open_table(PACKAGES).ctx("opening packages")?;
    let pkey = (o.as_str(), GENERIC, n.as_str());
    if packages.get(pkey).ctx("reading a package")?.is_none() {
        let rec = PackageRecord {
            id: Store::next_id(txn)?,
            name: new.at.name.to_string(),
            created: new.created,
            creator: new.creator.clone(),
        };
        packages
            .insert(pkey, encode(&rec)?.as_slice())
            .ctx("writing a package")?;
    }
    let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let vkey = (o.as_str(), GENERIC, n.as_str(), v.as_str());
    if versions.get(vkey).ctx("reading a version")?.is_none() {
        let rec = VersionRecord {
            id: Store::next_id(txn)?,
            version: new.at.version.to_string(),
            created: new.created,
            creator: new.creator.clone(),
            downloads: 0,
        };
        versions
            .insert(vkey, encode(&rec)?.as_slice())
            .ctx("writing a version")?;
        txn.open_table(VERSION_ORDER)
            .ctx("opening version_order")?
            .insert((o.as_str(), u64::MAX - rec.id, n.as_str(), v.as_str()), ())
            .ctx("ordering a version")?;
        txn.open_table(PACKAGE_ORDER)
            .ctx("opening package_order")?
            .insert((o.as_str(), n.as_str(), u64::MAX - rec.id, v.as_str()), ())
            .ctx("ordering a version")?;
        bump(txn, o, n, 1)?;
        let mut counts = txn
            .open_table(OWNER_VERSIONS)
            .ctx("opening owner_versions")?;
        let c = counts
            .get(o.as_str())
            .ctx("counting versions")?
            .map(|g| g.value());
        counts
            .insert(o.as_str(), c.unwrap_or(0) + 1)
            .ctx("counting versions")?;
    }
    let rec = FileRecord {
        id: Store::next_id(txn)?,
        name: new.at.file.to_string(),
        size,
        sha256: sha,
        created: new.created,
        creator: new.creator.clone(),
        downloads: 0,
    };
    files
        .insert(key, encode(&rec)?.as_slice())
        .ctx("writing a file")?;
    drop(files);
    limits::owner_bytes(txn, o, size, true)?;
    Ok((Published::Created, needs_digests))
}

/// Removes a package with all its versions; `Ok(false)` when there is no such package.
pub(super) fn delete_package_rows(txn: &WriteTransaction, o: &str, n: &str) -> Result<bool> {
    let pkey = (o, GENERIC, n);
    if txn
        .open_table(PACKAGES)
        .ctx("opening packages")?
        .get(pkey)
        .ctx("reading a package")?
        .is_none()
    {
        return Ok(false);
    }
    let mut versions = Vec::new();
    {
        let table = txn.open_table(VERSIONS).ctx("opening versions")?;
        let n_next = format!("{n}\0");
        for row in table
            .range((o, GENERIC, n, "")..(o, GENERIC, n_next.as_str(), ""))
            .ctx("listing versions")?
        {
            versions.push(row.ctx("listing versions")?.0.value().3.to_string());
        }
    }
    for v in &versions {
        delete_version_rows(txn, o, n, v)?;
    }
    // A package goes with its last version; this covers one left without versions.
    txn.open_table(PACKAGES)
        .ctx("opening packages")?
        .remove(pkey)
        .ctx("deleting a package")?;
    Ok(true)
}

/// Removes a version's files, its row, its order row and count; the package goes with its last
/// version. `Ok(false)` when the version does not exist.
pub(super) fn delete_version_rows(
    txn: &WriteTransaction,
    o: &str,
    n: &str,
    v: &str,
) -> Result<bool> {
    if txn
        .open_table(VERSIONS)
        .ctx("opening versions")?
        .get((o, GENERIC, n, v))
        .ctx("reading a version")?
        .is_none()
    {
        return Ok(false);
    }
    let mut removed = Vec::new();
    {
        let mut files = txn.open_table(FILES).ctx("opening files")?;
        let range = version_files(o, n, v);
        for row in files
            .extract_from_if(range.as_range(), |_, _| true)
            .ctx("deleting files")?
        {
            let (_, val) = row.ctx("deleting files")?;
            removed.push(decode::<FileRecord>(val.value())?);
        }
    }
    for rec in &removed {
        release_content(txn, &rec.sha256, o)?;
    }
    remove_version(txn, o, n, v)?;
    Ok(true)
}

/// Adds `delta` to a package's version count (the row goes at zero).
fn bump(txn: &WriteTransaction, o: &str, n: &str, delta: i64) -> Result<()> {
    let mut counts = txn
        .open_table(PACKAGE_VERSIONS)
        .ctx("opening package_versions")?;
    let c = counts
        .get((o, n))
        .ctx("counting versions")?
        .map(|g| g.value())
        .unwrap_or(0);
    let next = c.saturating_add_signed(delta);
    if next == 0 {
        counts.remove((o, n)).ctx("counting versions")?;
    } else {
        counts.insert((o, n), next).ctx("counting versions")?;
    }
    Ok(())
}

/// Removes a (now empty) version's row, order row and count, and its package if it was the last.
fn remove_version(txn: &WriteTransaction, o: &str, n: &str, v: &str) -> Result<()> {
    let mut versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let removed = versions
        .remove((o, GENERIC, n, v))
        .ctx("deleting a version")?
        .map(|g| decode::<VersionRecord>(g.value()))
        .transpose()?;
    let Some(rec) = removed else { return Ok(()) };
    limits::forget_version(txn, o, n, v)?;
    txn.open_table(VERSION_ORDER)
        .ctx("opening version_order")?
        .remove((o, u64::MAX - rec.id, n, v))
        .ctx("unordering a version")?;
    txn.open_table(PACKAGE_ORDER)
        .ctx("opening package_order")?
        .remove((o, n, u64::MAX - rec.id, v))
        .ctx("unordering a version")?;
    bump(txn, o, n, -1)?;
    let mut counts = txn
        .open_table(OWNER_VERSIONS)
        .ctx("opening owner_versions")?;
    let c = counts.get(o).ctx("counting versions")?.map(|g| g.value());
    match c {
        Some(c) if c > 1 => counts.insert(o, c - 1).map(|_| ()),
        _ => counts.remove(o).map(|_| ()),
    }
    .ctx("counting versions")?;
    drop(counts);
    let n_next = format!("{n}\0");
    let more = versions
        .range((o, GENERIC, n, "")..(o, GENERIC, n_next.as_str(), ""))
        .ctx("listing versions")?
        .next()
        .is_some();
    if !more {
        txn.open_table(PACKAGES)
            .ctx("opening packages")?
            .remove((o, GENERIC, n))
            .ctx("deleting a package")?;
    }
    Ok(())
}

/// One file fewer shows `sha` in `owner`'s namespace; the content and its chunks go with the
/// last file anywhere.
fn release_content(txn: &WriteTransaction, sha: &[u8; 32], owner: &str) -> Result<()> {
    {
        let mut owners = txn
            .open_table(CONTENT_OWNERS)
            .ctx("opening content_owners")?;
        let c = owners
            .get((sha, owner))
            .ctx("reading content owners")?
            .map(|g| g.value());
        match c {
            Some(c) if c > 1 => owners.insert((sha, owner), c - 1).map(|_| ()),
            _ => owners.remove((sha, owner)).map(|_| ()),
        }
        .ctx("writing content owners")?;
    }
    let mut contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    let content = contents
        .get(sha)
        .ctx("reading a content")?
        .map(|g| decode::<ContentRecord>(g.value()))
        .transpose()?
        .ok_or_else(|| Error::Corrupt(format!("content {} is missing", hex::encode(sha))))?;
    limits::owner_bytes(txn, owner, content.size, false)?;
    if content.files > 1 {
        let content = ContentRecord {
            files: content.files - 1,
            ..content
        };
        contents
            .insert(sha, encode(&content)?.as_slice())
            .ctx("writing a content")?;
        return Ok(());
    }
    contents.remove(sha).ctx("deleting a content")?;
    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    for id in &content.chunks {
        unref_chunk(&mut refs, &mut chunks, id)?;
    }
    Ok(())
}

pub(super) fn release_pins(txn: &WriteTransaction, upload: u64) -> Result<()> {
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

/// One reference more; the chunk's bytes are written when it is new (`data` must be given then).
fn ref_chunk(
    refs: &mut redb::Table<&[u8; 32], u64>,
    chunks: &mut redb::Table<&[u8; 32], &[u8]>,
    id: &[u8; 32],
    data: Option<&[u8]>,
) -> Result<()> {
    let count = refs
        .get(id)
        .ctx("reading a chunk count")?
        .map(|v| v.value());
    if count.is_none() {
        let data = data.ok_or_else(|| Error::Corrupt("a new chunk without bytes".into()))?;
        chunks.insert(id, data).ctx("writing a chunk")?;
    }
    refs.insert(id, count.unwrap_or(0) + 1)
        .ctx("counting a chunk")?;
    Ok(())
}

/// One reference fewer; the chunk goes when the last one does.
pub(super) fn unref_chunk(
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

/// A file's bytes from one read snapshot, one chunk in memory at a time.
pub struct FileReader {
    table: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
    ids: Vec<[u8; 32]>,
    size: u64,
    pos: u64,
    end: u64,
    /// The chunk under `pos`: (its index, its bytes).
    current: Option<(usize, redb::OwnedAccessGuard<&'static [u8]>)>,
    /// Where to find the database again when a storage fault made the store reopen it under
    /// this reader (a download in flight then carries on: chunks never change).
    slot: Option<Arc<recovery::DbSlot>>,
}

impl FileReader {
    pub(super) fn new(
        table: ReadOnlyTable<&'static [u8; 32], &'static [u8]>,
        ids: Vec<[u8; 32]>,
        size: u64,
    ) -> FileReader {
        FileReader {
            table,
            ids,
            size,
            pos: 0,
            end: size,
            current: None,
            slot: None,
        }
    }

    /// Lets the reader carry on through an in-process reopen of the database.
    pub(super) fn resumable(mut self, slot: &Arc<recovery::DbSlot>) -> FileReader {
        self.slot = Some(Arc::clone(slot));
        self
    }

    /// The chunk `id`, from the reader's table; after a failure, once more from the database
    /// as reopened (waiting for the reopen briefly, as every operation does).
    fn load(&mut self, id: &[u8; 32]) -> io::Result<redb::OwnedAccessGuard<&'static [u8]>> {
        let missing = || io::Error::other(format!("chunk {} is missing", hex::encode(id)));
        let first = match self.table.get_owned(id) {
            Ok(g) => return g.ok_or_else(missing),
            Err(e) => e,
        };
        let Some(slot) = &self.slot else {
            return Err(io::Error::other(format!("reading chunk: {first}")));
        };
        let table = slot
            .get()
            .and_then(|h| {
                let txn = h.db.begin_read().ctx("beginning a read")?;
                txn.open_table(CHUNKS).ctx("opening chunks")
            })
            .map_err(|e| io::Error::other(format!("reading chunk: {first}; again: {e}")))?;
        self.table = table;
        self.table
            .get_owned(id)
            .map_err(|e| io::Error::other(format!("reading chunk: {e}")))?
            .ok_or_else(missing)
    }

    /// The file's size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether every byte of the current range has been lent.
    pub fn is_exhausted(&self) -> bool {
        self.pos >= self.end
    }

    /// Restricts the reader to `start..end` (a Range request); locating the start is O(1).
    pub fn with_range(mut self, start: u64, end: u64) -> FileReader {
        self.set_range(start, end);
        self
    }

    /// Moves the reader to `start..end` (the next part of a multi-range response).
    pub fn set_range(&mut self, start: u64, end: u64) {
        self.pos = start.min(self.size);
        self.end = end.clamp(self.pos, self.size);
    }

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
            let id = *self.ids.get(index).ok_or_else(|| {
                io::Error::other(format!("file has no chunk {index} for offset {}", self.pos))
            })?;
            let guard = self.load(&id)?;
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

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    fn at(file: &str) -> FileCoords {
        FileCoords::parse("Alice", "Pkg", "1.0", file)
    }

    fn up(s: &Store, c: &FileCoords, data: &[u8]) -> Published {
        s.upload(c, "alice", data, Want::default(), |_| Ok(()))
            .expect("upload")
    }

    fn read_all(store: &Store, c: &FileCoords) -> Option<Vec<u8>> {
        let (_, mut r) = store.open_file(c).expect("open file")?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).expect("read");
        Some(out)
    }

    fn assert_clean(s: &Store) {
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
    }

    #[test]
    fn round_trip_sizes_and_dedup() {
        let t = temp_store();
        let s = &t.store;
        let big: Vec<u8> = (0..CHUNK_SIZE * 2 + 123)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        for (i, size) in [0usize, 1, 4096, CHUNK_SIZE, big.len()].iter().enumerate() {
            let c = at(&format!("f{i}"));
            assert_eq!(up(s, &c, &big[..*size]), Published::Created);
            assert_eq!(read_all(s, &c).expect("exists"), &big[..*size]);
        }
        // the same bytes again under another name store nothing new
        let before = s.chunk_stats().expect("stats").0;
        assert_eq!(up(s, &at("copy"), &big[..]), Published::Created);
        assert_eq!(s.chunk_stats().expect("stats").0, before);
        assert_clean(s);
    }

    #[test]
    fn conflict_is_case_insensitive_and_keeps_first_bytes() {
        let t = temp_store();
        let s = &t.store;
        let big = vec![1u8; CHUNK_SIZE + 5];
        assert_eq!(up(s, &at("file.bin"), b"one"), Published::Created);
        assert_eq!(up(s, &at("FILE.BIN"), &big), Published::Conflict);
        assert_eq!(read_all(s, &at("File.Bin")).expect("exists"), b"one");
        let (chunks, refs, pins) = s.chunk_stats().expect("stats");
        assert_eq!(
            (chunks, refs, pins),
            (1, 1, 0),
            "the loser's chunks are reclaimed"
        );
        assert_clean(s);
    }

    #[test]
    fn refused_verification_stores_nothing() {
        let t = temp_store();
        let s = &t.store;
        for data in [vec![5u8; 10], vec![6u8; CHUNK_SIZE * 2]] {
            let r = s.upload(&at("v"), "a", &data[..], Want::default(), |d| {
                Err(DigestMismatch {
                    algorithm: "sha256",
                    expected: vec![0; 32],
                    got: d.sha256.to_vec(),
                })
            });
            assert!(matches!(r, Err(Error::Rejected(_))));
        }
        assert!(read_all(s, &at("v")).is_none());
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
        assert_clean(s);
    }

    #[test]
    fn delete_last_file_drops_version_and_chunks() {
        let t = temp_store();
        let s = &t.store;
        up(s, &at("a"), b"x");
        up(s, &at("b"), b"x");
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
        assert_clean(s);
    }

    #[test]
    fn delete_package_removes_every_version() {
        let t = temp_store();
        let s = &t.store;
        for v in ["1", "2", "3"] {
            let c = FileCoords::parse("alice", "pkg", v, "f");
            up(s, &c, v.as_bytes());
        }
        up(s, &FileCoords::parse("alice", "pkg2", "1", "f"), b"1");
        assert!(s.delete_package("ALICE", "Pkg").expect("del"));
        assert!(!s.delete_package("alice", "pkg").expect("del"));
        assert!(!s.version_exists("alice", "pkg", "2").expect("v"));
        assert!(s.version_exists("alice", "pkg2", "1").expect("v"));
        assert_clean(s);
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
        let t = temp_store();
        let s = &t.store;
        let r = s.upload(
            &at("t"),
            "a",
            Cut(CHUNK_SIZE * 2 + 10),
            Want::default(),
            |_| Ok(()),
        );
        assert!(matches!(r, Err(Error::Body(_))));
        assert!(read_all(s, &at("t")).is_none());
        assert!(!s.version_exists("alice", "pkg", "1.0").expect("v"));
        assert_eq!(s.chunk_stats().expect("stats"), (0, 0, 0));
    }

    #[test]
    fn ranged_reader() {
        let t = temp_store();
        let s = &t.store;
        let data: Vec<u8> = (0..CHUNK_SIZE + 100).map(|i| (i % 256) as u8).collect();
        up(s, &at("r"), &data);
        let (_, r) = s.open_file(&at("r")).expect("open").expect("exists");
        let mut out = Vec::new();
        let start = CHUNK_SIZE as u64 - 3;
        r.with_range(start, start + 10)
            .read_to_end(&mut out)
            .expect("read");
        assert_eq!(out, &data[start as usize..start as usize + 10]);
    }

    #[test]
    fn deploy_by_checksum_reuses_readable_bytes_only() {
        let t = temp_store();
        let s = &t.store;
        let data = vec![4u8; CHUNK_SIZE + 1];
        up(s, &at("orig"), &data);
        let sha = s.open_file(&at("orig")).expect("o").expect("e").0.sha256;
        let other = FileCoords::parse("bob", "p", "1", "copy");
        assert_eq!(
            s.publish_existing(&other, "bob", sha, |o| o != "alice", |_| Ok(()))
                .expect("deploy"),
            Published::UnknownContent,
            "alice's bytes are not visible to this caller"
        );
        assert_eq!(
            s.publish_existing(&other, "bob", sha, |_| true, |_| Ok(()))
                .expect("deploy"),
            Published::Created
        );
        assert_eq!(
            s.publish_existing(&other, "bob", sha, |_| true, |_| Ok(()))
                .expect("deploy"),
            Published::Conflict
        );
        assert_eq!(read_all(s, &other).expect("exists"), data);
        assert_eq!(
            s.publish_existing(&at("x"), "a", [0; 32], |_| true, |_| Ok(()))
                .expect("deploy"),
            Published::UnknownContent
        );
        s.delete_file(&at("orig")).expect("del");
        assert_eq!(read_all(s, &other).expect("still there"), data);
        assert_clean(s);
    }
}
