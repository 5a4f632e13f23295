//! The integrity check: invariant 4 of DESIGN.md §3 and the consistency of every index, read
//! from one snapshot.

use super::*;
use crate::chunk::ChunkId;
use redb::{ReadableDatabase, ReadableTableMetadata};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What `Store::check` found.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub files: u64,
    pub contents: u64,
    pub chunks: u64,
    pub pins: u64,
    pub logical_bytes: u64,
    pub physical_bytes: u64,
    pub faults: Vec<String>,
}

impl Store {
    /// Verifies from one snapshot: every chunk's bytes hash to its key; every content's chunks
    /// exist and hash (in order) to its sha256 and size; every file has its content, and each
    /// content's file count and per-owner counts are exact; each chunk's count equals its
    /// references from contents plus pins; versions, their order index and owner counts agree.
    pub fn check(&self) -> Result<CheckReport> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let order = txn.open_table(VERSION_ORDER).ctx("opening version_order")?;
        let owner_versions = txn
            .open_table(OWNER_VERSIONS)
            .ctx("opening owner_versions")?;
        let package_order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
        let package_versions = txn
            .open_table(PACKAGE_VERSIONS)
            .ctx("opening package_versions")?;
        let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
        let content_owners = txn
            .open_table(CONTENT_OWNERS)
            .ctx("opening content_owners")?;
        let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
        let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
        let uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
        let mut report = CheckReport::default();
        let mut faults = Vec::new();

        // files → expected content file counts and owner counts
        let mut file_counts: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        let mut owner_counts: BTreeMap<([u8; 32], String), u64> = BTreeMap::new();
        for row in files.iter().ctx("listing files")? {
            let (k, v) = row.ctx("listing files")?;
            let key = k.value();
            let rec: FileRecord = decode(v.value())?;
            report.files += 1;
            report.logical_bytes += rec.size;
            *file_counts.entry(rec.sha256).or_default() += 1;
            *owner_counts
                .entry((rec.sha256, key.0.to_string()))
                .or_default() += 1;
            if versions
                .get((key.0, key.1, key.2, key.3))
                .ctx("reading a version")?
                .is_none()
            {
                faults.push(format!(
                    "{}/{}/{}/{}: no version row",
                    key.0, key.2, key.3, key.4
                ));
            }
        }

        // contents → expected chunk references; their bytes
        let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        for row in contents.iter().ctx("listing contents")? {
            let (k, v) = row.ctx("listing contents")?;
            let sha = *k.value();
            let content: ContentRecord = decode(v.value())?;
            report.contents += 1;
            let name = hex::encode(sha);
            if file_counts.get(&sha).copied().unwrap_or(0) != content.files {
                faults.push(format!(
                    "content {name}: counts {} files but {} show it",
                    content.files,
                    file_counts.get(&sha).copied().unwrap_or(0)
                ));
            }
            let mut hasher = Sha256::new();
            let mut size = 0u64;
            for (i, id) in content.chunks.iter().enumerate() {
                *expected.entry(*id).or_default() += 1;
                match chunks.get(id).ctx("reading a chunk")? {
                    Some(data) => {
                        let data = data.value();
                        if i + 1 < content.chunks.len() && data.len() != CHUNK_SIZE {
                            faults.push(format!("content {name}: chunk {i} is not full-size"));
                        }
                        hasher.update(data);
                        size += data.len() as u64;
                    }
                    None => faults.push(format!(
                        "content {name}: chunk {} is missing",
                        hex::encode(id)
                    )),
                }
            }
            if size != content.size || <[u8; 32]>::from(hasher.finalize()) != sha {
                faults.push(format!(
                    "content {name}: bytes do not match its size and sha256"
                ));
            }
        }
        for sha in file_counts.keys() {
            if contents.get(sha).ctx("reading a content")?.is_none() {
                faults.push(format!("content {} is missing", hex::encode(sha)));
            }
        }
        let mut seen_owner_rows = 0u64;
        for row in content_owners.iter().ctx("listing content owners")? {
            let (k, v) = row.ctx("listing content owners")?;
            let (sha, owner) = k.value();
            seen_owner_rows += 1;
            let want = owner_counts
                .get(&(*sha, owner.to_string()))
                .copied()
                .unwrap_or(0);
            if v.value() != want {
                faults.push(format!(
                    "content {} of {owner}: counts {} files but {want} exist",
                    hex::encode(sha),
                    v.value()
                ));
            }
        }
        if seen_owner_rows != owner_counts.len() as u64 {
            faults.push(format!(
                "{} content owner rows for {} (content, owner) pairs",
                seen_owner_rows,
                owner_counts.len()
            ));
        }

        // pins, chunks and counts
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
                faults.push(format!(
                    "chunk {}: bytes do not hash to its key",
                    hex::encode(id)
                ));
            }
            if !expected.contains_key(&id) {
                faults.push(format!("chunk {}: nothing references it", hex::encode(id)));
            }
        }
        let mut counted = 0u64;
        for row in refs.iter().ctx("listing counts")? {
            let (k, v) = row.ctx("listing counts")?;
            let id = *k.value();
            counted += 1;
            let want = expected.get(&id).copied().unwrap_or(0);
            if v.value() != want {
                faults.push(format!(
                    "chunk {}: count {} but {want} references",
                    hex::encode(id),
                    v.value()
                ));
            }
        }
        if counted != expected.len() as u64 {
            faults.push(format!(
                "{} chunks are referenced but {counted} are counted",
                expected.len()
            ));
        }

        // versions against their order index and per-owner counts
        let mut per_owner: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_package: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut total_versions = 0u64;
        for row in versions.iter().ctx("listing versions")? {
            let (k, v) = row.ctx("listing versions")?;
            let key = k.value();
            let rec: VersionRecord = decode(v.value())?;
            *per_owner.entry(key.0.to_string()).or_default() += 1;
            *per_package
                .entry((key.0.to_string(), key.2.to_string()))
                .or_default() += 1;
            total_versions += 1;
            if package_order
                .get((key.0, key.2, u64::MAX - rec.id, key.3))
                .ctx("reading package order")?
                .is_none()
            {
                faults.push(format!(
                    "version {}/{}/{}: not in the package order index",
                    key.0, key.2, key.3
                ));
            }
            if order
                .get((key.0, u64::MAX - rec.id, key.2, key.3))
                .ctx("reading version order")?
                .is_none()
            {
                faults.push(format!(
                    "version {}/{}/{}: not in the order index",
                    key.0, key.2, key.3
                ));
            }
        }
        if order.len().ctx("counting version order")? != per_owner.values().sum::<u64>() {
            faults.push("the version order index has rows for no version".into());
        }
        for row in owner_versions.iter().ctx("listing owner counts")? {
            let (k, v) = row.ctx("listing owner counts")?;
            if per_owner.remove(k.value()).unwrap_or(0) != v.value() {
                faults.push(format!(
                    "owner {}: version count {} is wrong",
                    k.value(),
                    v.value()
                ));
            }
        }
        if package_order.len().ctx("counting package order")? != total_versions {
            faults.push("the package order index has rows for no version".into());
        }
        for row in package_versions.iter().ctx("listing package counts")? {
            let (k, v) = row.ctx("listing package counts")?;
            let (o, n) = k.value();
            if per_package
                .remove(&(o.to_string(), n.to_string()))
                .unwrap_or(0)
                != v.value()
            {
                faults.push(format!(
                    "package {o}/{n}: version count {} is wrong",
                    v.value()
                ));
            }
        }
        for (o, n) in per_package.keys() {
            faults.push(format!("package {o}/{n}: versions without a count"));
        }
        for owner in per_owner.keys() {
            faults.push(format!("owner {owner}: versions without a count"));
        }
        limits::check_owner_bytes(&txn, &mut faults)?;
        report.faults = faults;
        Ok(report)
    }

    /// Counts for tests: (chunk rows, sum of chunk_refs, pinned chunks).
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
