//! The integrity check: invariant 4 of DESIGN.md §3 and the consistency of every index, read
//! from one snapshot.

use super::*;
use crate::chunk::ChunkId;
use redb::{ReadTransaction, ReadableDatabase, ReadableTableMetadata};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashSet};

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
        self.check_with(&Quiet)
    }

    /// `check`, telling `steps` how far it is: the files (rows), then the bytes of the
    /// contents and of the chunks as they are hashed.
    pub fn check_with(&self, steps: &dyn Steps) -> Result<CheckReport> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let mut report = CheckReport::default();
        let mut faults = Vec::new();
        let rows = |t| -> Result<u64> {
            let table = txn.open_table(t).ctx("opening a table")?;
            table.len().ctx("counting rows")
        };
        steps.phase("checking files", Unit::Items, rows(FILES)?);
        let shown = check_files(&txn, &mut report, &mut faults, steps)?;
        let totals = super::observe::content_totals(&txn)?;
        steps.phase("hashing contents", Unit::Bytes, totals.content_bytes);
        let mut expected = check_contents(&txn, &shown, &mut report, &mut faults, steps)?;
        check_content_owners(&txn, &shown, &mut faults)?;
        steps.phase("hashing chunks", Unit::Bytes, totals.physical_bytes);
        check_chunks(&txn, &mut expected, &mut report, &mut faults, steps)?;
        check_versions(&txn, &mut faults)?;
        limits::check_owner_bytes(&txn, &mut faults)?;
        report.faults = faults;
        Ok(report)
    }

    /// Counts for tests: (chunk rows, sum of chunk_refs, pinned chunks).
    #[cfg(test)]
    pub(crate) fn chunk_stats(&self) -> Result<(u64, u64, u64)> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
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

/// How many files show each content, in all and per owner (the files table's word, against
/// which the counts are checked and repaired).
#[derive(Default)]
struct Shown {
    files: BTreeMap<[u8; 32], u64>,
    per_owner: BTreeMap<([u8; 32], String), u64>,
}

impl Shown {
    fn files_of(&self, sha: &[u8; 32]) -> u64 {
        self.files.get(sha).copied().unwrap_or(0)
    }

    fn of_owner(&self, sha: &[u8; 32], owner: &str) -> u64 {
        self.per_owner
            .get(&(*sha, owner.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// Every file has a version row; tallies the files per content.
fn check_files(
    txn: &ReadTransaction,
    report: &mut CheckReport,
    faults: &mut Vec<String>,
    steps: &dyn Steps,
) -> Result<Shown> {
    let files = txn.open_table(FILES).ctx("opening files")?;
    let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let mut shown = Shown::default();
    for row in files.iter().ctx("listing files")? {
        let (k, v) = row.ctx("listing files")?;
        let key = k.value();
        let rec: FileRecord = decode(v.value())?;
        steps.step(1);
        report.files += 1;
        report.logical_bytes += rec.size;
        *shown.files.entry(rec.sha256).or_default() += 1;
        *shown
            .per_owner
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
    Ok(shown)
}

/// Every content counts the files that show it, its chunks exist and hash (in order) to its
/// sha256 and size, and every file's content exists. Returns the chunk references the
/// contents hold.
fn check_contents(
    txn: &ReadTransaction,
    shown: &Shown,
    report: &mut CheckReport,
    faults: &mut Vec<String>,
    steps: &dyn Steps,
) -> Result<BTreeMap<[u8; 32], u64>> {
    let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    for row in contents.iter().ctx("listing contents")? {
        let (k, v) = row.ctx("listing contents")?;
        let sha = *k.value();
        let content: ContentRecord = decode(v.value())?;
        report.contents += 1;
        let name = hex::encode(sha);
        if shown.files_of(&sha) != content.files {
            faults.push(format!(
                "content {name}: counts {} files but {} show it",
                content.files,
                shown.files_of(&sha)
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
                    steps.step(data.len() as u64);
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
    for sha in shown.files.keys() {
        if contents.get(sha).ctx("reading a content")?.is_none() {
            faults.push(format!("content {} is missing", hex::encode(sha)));
        }
    }
    Ok(expected)
}

/// Each (content, owner) count equals the owner's files that show the content, with no row
/// for a pair that has none.
fn check_content_owners(
    txn: &ReadTransaction,
    shown: &Shown,
    faults: &mut Vec<String>,
) -> Result<()> {
    let content_owners = txn
        .open_table(CONTENT_OWNERS)
        .ctx("opening content_owners")?;
    let mut seen_owner_rows = 0u64;
    for row in content_owners.iter().ctx("listing content owners")? {
        let (k, v) = row.ctx("listing content owners")?;
        let (sha, owner) = k.value();
        seen_owner_rows += 1;
        let want = shown.of_owner(sha, owner);
        if v.value() != want {
            faults.push(format!(
                "content {} of {owner}: counts {} files but {want} exist",
                hex::encode(sha),
                v.value()
            ));
        }
    }
    if seen_owner_rows != shown.per_owner.len() as u64 {
        faults.push(format!(
            "{} content owner rows for {} (content, owner) pairs",
            seen_owner_rows,
            shown.per_owner.len()
        ));
    }
    Ok(())
}

/// Invariant 4: every chunk's bytes hash to its key, something references it, and its count
/// equals its references from contents (`expected`) plus pins.
fn check_chunks(
    txn: &ReadTransaction,
    expected: &mut BTreeMap<[u8; 32], u64>,
    report: &mut CheckReport,
    faults: &mut Vec<String>,
    steps: &dyn Steps,
) -> Result<()> {
    let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    let refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
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
        steps.step(v.value().len() as u64);
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
    Ok(())
}

/// Every version is in both order indexes, which hold nothing else, and the per-owner and
/// per-package version counts are exact.
fn check_versions(txn: &ReadTransaction, faults: &mut Vec<String>) -> Result<()> {
    let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let order = txn.open_table(VERSION_ORDER).ctx("opening version_order")?;
    let owner_versions = txn
        .open_table(OWNER_VERSIONS)
        .ctx("opening owner_versions")?;
    let package_order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
    let package_versions = txn
        .open_table(PACKAGE_VERSIONS)
        .ctx("opening package_versions")?;
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
    Ok(())
}

/// What `Store::repair` changed, and what it could not mend.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// One line per change made.
    pub fixed: Vec<String>,
    /// Faults repair cannot mend without bytes it does not have (a missing or damaged chunk):
    /// the files that show them are listed; re-upload them (after deleting) to heal them.
    pub unrepairable: Vec<String>,
}

impl Store {
    /// Mends what can be mended from the data itself, in one durable transaction: counts of
    /// files per body and per owner, bodies no file shows, chunk reference counts, chunks
    /// nothing references (reclaimed), the version order and count indexes, and the owners'
    /// byte totals. Never invents
    /// or alters bytes: a body whose chunks are missing or damaged is reported, not touched.
    pub fn repair(&self) -> Result<RepairReport> {
        self.durable(|txn| {
            let mut report = RepairReport::default();
            let (shown, names) = files_shown(txn)?;
            let mut expected = repair_contents(txn, &shown, &names, &mut report)?;
            repair_content_owners(txn, &shown, &mut report)?;
            repair_chunks(txn, &mut expected, &mut report)?;
            name_damaged_files(txn, &names, &mut report)?;
            rebuild_version_indexes(txn, &mut report)?;
            report.fixed.extend(limits::rebuild_owner_bytes(txn)?);
            Ok(report)
        })
    }
}

/// The files behind each content, by name (at most 20 each), for repair's report.
type FileNames = BTreeMap<[u8; 32], Vec<String>>;

/// What the files say, in a write transaction: the counts, and the names behind each content.
fn files_shown(txn: &WriteTransaction) -> Result<(Shown, FileNames)> {
    let files = txn.open_table(FILES).ctx("opening files")?;
    let mut shown = Shown::default();
    let mut names = FileNames::new();
    for row in files.iter().ctx("listing files")? {
        let (k, v) = row.ctx("listing files")?;
        let key = k.value();
        let rec: FileRecord = decode(v.value())?;
        *shown.files.entry(rec.sha256).or_default() += 1;
        *shown
            .per_owner
            .entry((rec.sha256, key.0.to_string()))
            .or_default() += 1;
        let list = names.entry(rec.sha256).or_default();
        if list.len() < 20 {
            list.push(format!("{}/{}/{}/{}", key.0, key.2, key.3, key.4));
        }
    }
    Ok((shown, names))
}

fn shown_by(names: &FileNames, sha: &[u8; 32]) -> String {
    names.get(sha).map(|l| l.join(", ")).unwrap_or_default()
}

/// Bodies: drops those no file shows, fixes their file counts, reports missing ones. Returns
/// the chunk references the remaining bodies hold.
fn repair_contents(
    txn: &WriteTransaction,
    shown: &Shown,
    names: &FileNames,
    report: &mut RepairReport,
) -> Result<BTreeMap<[u8; 32], u64>> {
    let mut contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    let mut expected: BTreeMap<[u8; 32], u64> = BTreeMap::new();
    let mut drop_contents = Vec::new();
    let mut recount = Vec::new();
    for row in contents.iter().ctx("listing contents")? {
        let (k, v) = row.ctx("listing contents")?;
        let sha = *k.value();
        let content: ContentRecord = decode(v.value())?;
        let want = shown.files_of(&sha);
        if want == 0 {
            drop_contents.push(sha);
            continue;
        }
        for id in &content.chunks {
            *expected.entry(*id).or_default() += 1;
        }
        if content.files != want {
            recount.push((sha, content, want));
        }
    }
    for sha in drop_contents {
        contents.remove(&sha).ctx("dropping an unused body")?;
        report.fixed.push(format!(
            "body {}: no file shows it, removed",
            hex::encode(sha)
        ));
    }
    for (sha, mut content, want) in recount {
        report.fixed.push(format!(
            "body {}: file count {} set to {want}",
            hex::encode(sha),
            content.files
        ));
        content.files = want;
        contents
            .insert(&sha, encode(&content)?.as_slice())
            .ctx("writing a body's count")?;
    }
    for sha in shown.files.keys() {
        if contents.get(sha).ctx("reading a body")?.is_none() {
            report.unrepairable.push(format!(
                "body {} is missing; files that show it: {}",
                hex::encode(sha),
                shown_by(names, sha)
            ));
        }
    }
    Ok(expected)
}

/// Per-owner counts: rewritten from the files.
fn repair_content_owners(
    txn: &WriteTransaction,
    shown: &Shown,
    report: &mut RepairReport,
) -> Result<()> {
    let mut content_owners = txn
        .open_table(CONTENT_OWNERS)
        .ctx("opening content_owners")?;
    let mut stale = Vec::new();
    for row in content_owners.iter().ctx("listing content owners")? {
        let (k, v) = row.ctx("listing content owners")?;
        let (sha, owner) = k.value();
        if v.value() != shown.of_owner(sha, owner) {
            stale.push((*sha, owner.to_string()));
        }
    }
    for (sha, owner) in stale {
        content_owners
            .remove((&sha, owner.as_str()))
            .ctx("dropping a content owner count")?;
    }
    for ((sha, owner), n) in &shown.per_owner {
        let have = content_owners
            .get((sha, owner.as_str()))
            .ctx("reading a content owner count")?
            .map(|g| g.value());
        if have != Some(*n) {
            content_owners
                .insert((sha, owner.as_str()), *n)
                .ctx("writing a content owner count")?;
            report.fixed.push(format!(
                "body {} of {owner}: owner count set to {n}",
                hex::encode(sha)
            ));
        }
    }
    Ok(())
}

/// Chunks: pins count too; reclaims what nothing references, fixes counts, and reports
/// chunks that are damaged or missing.
fn repair_chunks(
    txn: &WriteTransaction,
    expected: &mut BTreeMap<[u8; 32], u64>,
    report: &mut RepairReport,
) -> Result<()> {
    let mut chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
    let mut refs = txn.open_table(CHUNK_REFS).ctx("opening chunk_refs")?;
    let uploads = txn.open_table(UPLOADS).ctx("opening uploads")?;
    for row in uploads.iter().ctx("listing pins")? {
        let (_, v) = row.ctx("listing pins")?;
        *expected.entry(*v.value()).or_default() += 1;
    }
    let mut orphans = Vec::new();
    let mut present = HashSet::new();
    for row in chunks.iter().ctx("listing chunks")? {
        let (k, v) = row.ctx("listing chunks")?;
        let id = *k.value();
        if !expected.contains_key(&id) {
            orphans.push(id);
        } else {
            present.insert(id);
            if ChunkId::of(v.value()).0 != id {
                report
                    .unrepairable
                    .push(format!("chunk {}: its bytes are damaged", hex::encode(id)));
            }
        }
    }
    for id in &orphans {
        chunks.remove(id).ctx("reclaiming a chunk")?;
        report.fixed.push(format!(
            "chunk {}: nothing references it, reclaimed",
            hex::encode(id)
        ));
    }
    let mut wrong = Vec::new();
    for row in refs.iter().ctx("listing counts")? {
        let (k, v) = row.ctx("listing counts")?;
        let id = *k.value();
        let want = if present.contains(&id) {
            expected.get(&id).copied().unwrap_or(0)
        } else {
            0
        };
        if v.value() != want {
            wrong.push((id, v.value(), want));
        }
    }
    for (id, had, want) in wrong {
        if want == 0 {
            refs.remove(&id).ctx("dropping a count")?;
        } else {
            refs.insert(&id, want).ctx("fixing a count")?;
        }
        report.fixed.push(format!(
            "chunk {}: count {had} set to {want}",
            hex::encode(id)
        ));
    }
    for (id, want) in expected.iter() {
        if !present.contains(id) {
            report.unrepairable.push(format!(
                "chunk {} is missing ({want} references)",
                hex::encode(id)
            ));
        } else if refs.get(id).ctx("reading a count")?.is_none() {
            refs.insert(id, *want).ctx("writing a count")?;
            report
                .fixed
                .push(format!("chunk {}: count set to {want}", hex::encode(id)));
        }
    }
    Ok(())
}

/// Names the files behind the damaged or missing chunks repair reported.
fn name_damaged_files(
    txn: &WriteTransaction,
    names: &FileNames,
    report: &mut RepairReport,
) -> Result<()> {
    if report.unrepairable.is_empty() {
        return Ok(());
    }
    let bad: HashSet<String> = report
        .unrepairable
        .iter()
        .filter_map(|l| {
            l.strip_prefix("chunk ")?
                .split([' ', ':'])
                .next()
                .map(String::from)
        })
        .collect();
    let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
    for row in contents.iter().ctx("listing contents")? {
        let (k, v) = row.ctx("listing contents")?;
        let content: ContentRecord = decode(v.value())?;
        if content.chunks.iter().any(|c| bad.contains(&hex::encode(c))) {
            report.unrepairable.push(format!(
                "files with damaged bytes: {}",
                shown_by(names, k.value())
            ));
        }
    }
    Ok(())
}

/// Rewrites the version order indexes and the per-owner and per-package version counts from
/// the versions table.
fn rebuild_version_indexes(txn: &WriteTransaction, report: &mut RepairReport) -> Result<()> {
    let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let mut order = txn.open_table(VERSION_ORDER).ctx("opening version_order")?;
    let mut package_order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
    let mut owner_versions = txn
        .open_table(OWNER_VERSIONS)
        .ctx("opening owner_versions")?;
    let mut package_versions = txn
        .open_table(PACKAGE_VERSIONS)
        .ctx("opening package_versions")?;
    let mut want_order = BTreeSet::new();
    let mut want_package_order = BTreeSet::new();
    let mut per_owner: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_package: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in versions.iter().ctx("listing versions")? {
        let (k, v) = row.ctx("listing versions")?;
        let (o, _, n, ver) = k.value();
        let rec: VersionRecord = decode(v.value())?;
        want_order.insert((
            o.to_string(),
            u64::MAX - rec.id,
            n.to_string(),
            ver.to_string(),
        ));
        want_package_order.insert((
            o.to_string(),
            n.to_string(),
            u64::MAX - rec.id,
            ver.to_string(),
        ));
        *per_owner.entry(o.to_string()).or_default() += 1;
        *per_package
            .entry((o.to_string(), n.to_string()))
            .or_default() += 1;
    }
    let mut have = BTreeSet::new();
    for row in order.iter().ctx("listing version order")? {
        let (k, _) = row.ctx("listing version order")?;
        let (o, id, n, v) = k.value();
        have.insert((o.to_string(), id, n.to_string(), v.to_string()));
    }
    for k in have.difference(&want_order) {
        order
            .remove((k.0.as_str(), k.1, k.2.as_str(), k.3.as_str()))
            .ctx("dropping a stale order row")?;
        report
            .fixed
            .push(format!("version order: dropped {}/{}/{}", k.0, k.2, k.3));
    }
    for k in want_order.difference(&have) {
        order
            .insert((k.0.as_str(), k.1, k.2.as_str(), k.3.as_str()), ())
            .ctx("adding an order row")?;
        report
            .fixed
            .push(format!("version order: added {}/{}/{}", k.0, k.2, k.3));
    }
    let mut have = BTreeSet::new();
    for row in package_order.iter().ctx("listing package order")? {
        let (k, _) = row.ctx("listing package order")?;
        let (o, n, id, v) = k.value();
        have.insert((o.to_string(), n.to_string(), id, v.to_string()));
    }
    for k in have.difference(&want_package_order) {
        package_order
            .remove((k.0.as_str(), k.1.as_str(), k.2, k.3.as_str()))
            .ctx("dropping a stale package order row")?;
        report
            .fixed
            .push(format!("package order: dropped {}/{}/{}", k.0, k.1, k.3));
    }
    for k in want_package_order.difference(&have) {
        package_order
            .insert((k.0.as_str(), k.1.as_str(), k.2, k.3.as_str()), ())
            .ctx("adding a package order row")?;
        report
            .fixed
            .push(format!("package order: added {}/{}/{}", k.0, k.1, k.3));
    }
    let mut stale = Vec::new();
    for row in owner_versions.iter().ctx("listing owner counts")? {
        let (k, v) = row.ctx("listing owner counts")?;
        if per_owner.get(k.value()) != Some(&v.value()) {
            stale.push(k.value().to_string());
        }
    }
    for o in &stale {
        owner_versions
            .remove(o.as_str())
            .ctx("dropping an owner count")?;
    }
    for (o, n) in &per_owner {
        let have = owner_versions
            .get(o.as_str())
            .ctx("reading an owner count")?
            .map(|g| g.value());
        if have != Some(*n) {
            owner_versions
                .insert(o.as_str(), *n)
                .ctx("writing an owner count")?;
            report
                .fixed
                .push(format!("owner {o}: version count set to {n}"));
        }
    }
    let mut stale = Vec::new();
    for row in package_versions.iter().ctx("listing package counts")? {
        let (k, v) = row.ctx("listing package counts")?;
        let (o, n) = k.value();
        if per_package.get(&(o.to_string(), n.to_string())) != Some(&v.value()) {
            stale.push((o.to_string(), n.to_string()));
        }
    }
    for (o, n) in &stale {
        package_versions
            .remove((o.as_str(), n.as_str()))
            .ctx("dropping a package count")?;
    }
    for ((o, n), c) in &per_package {
        let have = package_versions
            .get((o.as_str(), n.as_str()))
            .ctx("reading a package count")?
            .map(|g| g.value());
        if have != Some(*c) {
            package_versions
                .insert((o.as_str(), n.as_str()), *c)
                .ctx("writing a package count")?;
            report
                .fixed
                .push(format!("package {o}/{n}: version count set to {c}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;
    use std::io::Read;

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

    #[test]
    fn repair_mends_counts_orphans_and_indexes_and_keeps_bytes() {
        let t = temp_store();
        let s = &t.store;
        let big: Vec<u8> = (0..CHUNK_SIZE + 99).map(|i| (i % 239) as u8).collect();
        up(s, "big", &big);
        up(s, "small", b"small");
        assert!(s.check().expect("check").faults.is_empty());
        let first = crate::chunk::ChunkId::of(&big[..CHUNK_SIZE]).0;
        let orphan = crate::chunk::ChunkId::of(b"orphan").0;
        s.quick_write(|txn| {
            let mut chunks = txn.open_table(CHUNKS).ctx("chunks")?;
            chunks.insert(&orphan, b"orphan".as_slice()).ctx("orphan")?;
            let mut refs = txn.open_table(CHUNK_REFS).ctx("refs")?;
            refs.insert(&orphan, 3).ctx("orphan count")?;
            refs.insert(&first, 7).ctx("wrong count")?;
            let mut ov = txn.open_table(OWNER_VERSIONS).ctx("ov")?;
            ov.remove("alice").ctx("drop owner count")?;
            let mut order = txn.open_table(VERSION_ORDER).ctx("order")?;
            order.insert(("alice", 5, "ghost", "9"), ()).ctx("stale")?;
            let mut co = txn.open_table(CONTENT_OWNERS).ctx("co")?;
            co.insert((&ChunkId::of(b"nothing").0, "bob"), 2)
                .ctx("stale owner")?;
            Ok(())
        })
        .expect("damage");
        let before = s.check().expect("check");
        assert!(before.faults.len() >= 5, "{:?}", before.faults);
        let report = s.repair().expect("repair");
        assert!(report.unrepairable.is_empty(), "{:?}", report.unrepairable);
        assert!(report.fixed.len() >= 5, "{:?}", report.fixed);
        let after = s.check().expect("check");
        assert!(after.faults.is_empty(), "{:?}", after.faults);
        assert_eq!(
            s.chunk_stats().expect("stats").0,
            3,
            "the orphan was reclaimed"
        );
        let (_, mut r) = s
            .open_file(&FileCoords::parse("alice", "pkg", "1.0", "big"))
            .expect("open")
            .expect("exists");
        let mut got = Vec::new();
        r.read_to_end(&mut got).expect("read");
        assert_eq!(got, big);
        // A second repair has nothing to do.
        let again = s.repair().expect("repair");
        assert!(again.fixed.is_empty(), "{:?}", again.fixed);
    }

    #[test]
    fn repair_reports_damaged_bytes_and_leaves_them() {
        let t = temp_store();
        let s = &t.store;
        up(s, "f", b"precious bytes");
        let id = ChunkId::of(b"precious bytes").0;
        s.quick_write(|txn| {
            txn.open_table(CHUNKS)
                .ctx("chunks")?
                .insert(&id, b"precious bytez".as_slice())
                .ctx("damage")?;
            Ok(())
        })
        .expect("damage");
        assert!(!s.check().expect("check").faults.is_empty());
        let report = s.repair().expect("repair");
        assert!(report.fixed.is_empty(), "{:?}", report.fixed);
        let text = report.unrepairable.join("\n");
        assert!(text.contains("damaged"), "{text}");
        assert!(text.contains("alice/pkg/1.0/f"), "{text}");
        assert!(
            !s.check().expect("check").faults.is_empty(),
            "still reported"
        );
    }
}
