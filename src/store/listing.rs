//! Read-side queries for the JSON API: owners' versions newest first with paging, a package's
//! versions, a version's files with all their digests, the newest version; and the computation
//! of md5/sha1/sha512 off the upload's critical path.

use super::*;
use crate::chunk::{ExtraHashers, StreamDigests, Want};
use redb::ReadableDatabase;

/// All digests of a file body (lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
    pub sha512: String,
}

#[derive(Debug, Clone)]
pub struct VersionEntry {
    pub package: PackageRecord,
    pub version: VersionRecord,
}

#[derive(Debug, Clone)]
pub struct FileEntry {
    pub file: FileRecord,
    pub digests: Digests,
}

/// One page of a listing and the number of items in all pages.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub total: u64,
    pub items: Vec<T>,
}

/// How many items come before page `page` (1-based) of `limit` items: saturating, so a huge
/// page from a query string is past the end instead of wrapping to an early page.
pub fn page_offset(page: u64, limit: u64) -> usize {
    usize::try_from(page.saturating_sub(1).saturating_mul(limit)).unwrap_or(usize::MAX)
}

/// The package and version an order index names (owner, name and version folded): both must
/// exist, since the index is written with them.
fn ordered_entry(
    packages: &redb::ReadOnlyTable<super::PackageKey<'static>, &'static [u8]>,
    versions: &redb::ReadOnlyTable<super::VersionKey<'static>, &'static [u8]>,
    o: &str,
    n: &str,
    v: &str,
) -> Result<VersionEntry> {
    let package = packages
        .get((o, GENERIC, n))
        .ctx("reading a package")?
        .ok_or_else(|| Error::Corrupt(format!("version of missing package {n}")))?;
    let version = versions
        .get((o, GENERIC, n, v))
        .ctx("reading a version")?
        .ok_or_else(|| Error::Corrupt(format!("ordered version {n}/{v} is missing")))?;
    Ok(VersionEntry {
        package: decode(package.value())?,
        version: decode(version.value())?,
    })
}

impl Store {
    /// An owner's versions of every package, newest first; `q` keeps packages whose name
    /// contains it (case-insensitive). `page` counts from 1.
    pub fn list_owner_versions(
        &self,
        owner: &str,
        q: Option<&str>,
        page: u64,
        limit: u64,
    ) -> Result<Page<VersionEntry>> {
        let o = fold_case(owner);
        let q = q.map(fold_case).filter(|q| !q.is_empty());
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let order = txn.open_table(VERSION_ORDER).ctx("opening version_order")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        let skip = page_offset(page, limit);
        let o_next = format!("{o}\0");
        let range = (o.as_str(), 0u64, "", "")..(o_next.as_str(), 0u64, "", "");
        let mut keys = Vec::new();
        let mut total = 0u64;
        if q.is_none() {
            total = txn
                .open_table(OWNER_VERSIONS)
                .ctx("opening owner_versions")?
                .get(o.as_str())
                .ctx("counting versions")?
                .map(|g| g.value())
                .unwrap_or(0);
            for row in order.range(range).ctx("listing versions")?.skip(skip) {
                if keys.len() as u64 >= limit {
                    break;
                }
                let (k, _) = row.ctx("listing versions")?;
                let (_, _, n, v) = k.value();
                keys.push((n.to_string(), v.to_string()));
            }
        } else {
            let q = q.unwrap_or_default();
            // Match the owner's package names first (few), then list only their versions:
            // a selective search reads a few index rows, not every version of the owner.
            let mut names = Vec::new();
            let mut all_packages = 0usize;
            let pnext = format!("{o}\0");
            for row in packages
                .range((o.as_str(), GENERIC, "")..(pnext.as_str(), GENERIC, ""))
                .ctx("listing packages")?
            {
                let (k, _) = row.ctx("listing packages")?;
                all_packages += 1;
                let n = k.value().2;
                if n.contains(q.as_str()) {
                    names.push(n.to_string());
                }
            }
            if names.len() * 4 >= all_packages {
                // Most packages match: one pass over the owner's index is cheaper.
                let wanted: std::collections::HashSet<&str> =
                    names.iter().map(String::as_str).collect();
                for row in order.range(range).ctx("listing versions")? {
                    let (k, _) = row.ctx("listing versions")?;
                    let (_, _, n, v) = k.value();
                    if !wanted.contains(n) {
                        continue;
                    }
                    if total >= skip as u64 && (keys.len() as u64) < limit {
                        keys.push((n.to_string(), v.to_string()));
                    }
                    total += 1;
                }
            } else {
                let mut found: Vec<(u64, String, String)> = Vec::new();
                for n in &names {
                    let n_next = format!("{n}\0");
                    for row in versions
                        .range(
                            (o.as_str(), GENERIC, n.as_str(), "")
                                ..(o.as_str(), GENERIC, n_next.as_str(), ""),
                        )
                        .ctx("listing versions")?
                    {
                        let (k, v) = row.ctx("listing versions")?;
                        let id = decode::<VersionRecord>(v.value())?.id;
                        found.push((id, n.clone(), k.value().3.to_string()));
                    }
                }
                found.sort_by_key(|(id, _, _)| std::cmp::Reverse(*id));
                total = found.len() as u64;
                keys = found
                    .into_iter()
                    .skip(skip)
                    .take(usize::try_from(limit).unwrap_or(usize::MAX))
                    .map(|(_, n, v)| (n, v))
                    .collect();
            }
        }
        let mut items = Vec::with_capacity(keys.len());
        for (n, v) in keys {
            items.push(ordered_entry(&packages, &versions, &o, &n, &v)?);
        }
        Ok(Page { total, items })
    }

    /// The newest versions across `owners` (logins), newest first, for the explore page; `q`
    /// keeps packages whose name contains it. Returns items `skip..skip+limit` with their
    /// owner's login, and the total. The work is bounded by the owners' package counts (when
    /// searching) plus `skip + limit` rows of a k-way merge of their newest-first indexes,
    /// whatever the registry holds; the totals come from the stored counters.
    pub fn explore_versions(
        &self,
        owners: &[String],
        q: Option<&str>,
        skip: u64,
        limit: u64,
    ) -> Result<Page<(String, VersionEntry)>> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let q = q.map(fold_case).filter(|q| !q.is_empty());
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let order = txn.open_table(VERSION_ORDER).ctx("opening version_order")?;
        let porder = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        let owner_counts = txn
            .open_table(OWNER_VERSIONS)
            .ctx("opening owner_versions")?;
        let package_counts = txn
            .open_table(PACKAGE_VERSIONS)
            .ctx("opening package_versions")?;
        // One newest-first source per owner, or per matching package of each owner.
        type Key = (u64, String, String, String);
        let mut sources: Vec<Box<dyn Iterator<Item = Result<Key>> + '_>> = Vec::new();
        let mut total = 0u64;
        let folded: Vec<String> = owners.iter().map(|o| fold_case(o)).collect();
        for o in &folded {
            let next = format!("{o}\0");
            match &q {
                None => {
                    total += owner_counts
                        .get(o.as_str())
                        .ctx("counting versions")?
                        .map(|g| g.value())
                        .unwrap_or(0);
                    let range = order
                        .range((o.as_str(), 0u64, "", "")..(next.as_str(), 0u64, "", ""))
                        .ctx("listing versions")?;
                    let owner = o.clone();
                    sources.push(Box::new(range.map(move |row| {
                        let (k, _) = row.ctx("listing versions")?;
                        let (_, rank, n, v) = k.value();
                        Ok((rank, owner.clone(), n.to_string(), v.to_string()))
                    })));
                }
                Some(q) => {
                    for row in packages
                        .range((o.as_str(), GENERIC, "")..(next.as_str(), GENERIC, ""))
                        .ctx("listing packages")?
                    {
                        let (k, _) = row.ctx("listing packages")?;
                        let n = k.value().2.to_string();
                        if !n.contains(q.as_str()) {
                            continue;
                        }
                        total += package_counts
                            .get((o.as_str(), n.as_str()))
                            .ctx("counting versions")?
                            .map(|g| g.value())
                            .unwrap_or(0);
                        let n_next = format!("{n}\0");
                        let range = porder
                            .range(
                                (o.as_str(), n.as_str(), 0u64, "")
                                    ..(o.as_str(), n_next.as_str(), 0u64, ""),
                            )
                            .ctx("listing versions")?;
                        let owner = o.clone();
                        sources.push(Box::new(range.map(move |row| {
                            let (k, _) = row.ctx("listing versions")?;
                            let (_, n, rank, v) = k.value();
                            Ok((rank, owner.clone(), n.to_string(), v.to_string()))
                        })));
                    }
                }
            }
        }
        // The k-way merge: a smaller rank is a newer version (ranks are u64::MAX - id).
        let mut heap: BinaryHeap<Reverse<(Key, usize)>> = BinaryHeap::new();
        for (i, src) in sources.iter_mut().enumerate() {
            if let Some(k) = src.next() {
                heap.push(Reverse((k?, i)));
            }
        }
        let want = skip.saturating_add(limit);
        let mut taken = 0u64;
        let mut keys = Vec::new();
        while taken < want {
            let Some(Reverse((key, i))) = heap.pop() else {
                break;
            };
            if taken >= skip {
                keys.push(key);
            }
            taken += 1;
            if let Some(k) = sources[i].next() {
                heap.push(Reverse((k?, i)));
            }
        }
        let mut items = Vec::with_capacity(keys.len());
        for (_, o, n, v) in keys {
            let entry = ordered_entry(&packages, &versions, &o, &n, &v)?;
            items.push((o, entry));
        }
        Ok(Page { total, items })
    }

    /// A package's versions, newest first; `None` when the package does not exist.
    pub fn list_package_versions(
        &self,
        owner: &str,
        name: &str,
        page: u64,
        limit: u64,
    ) -> Result<Option<Page<VersionEntry>>> {
        let (o, n) = (fold_case(owner), fold_case(name));
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        let Some(package) = packages
            .get((o.as_str(), GENERIC, n.as_str()))
            .ctx("reading a package")?
        else {
            return Ok(None);
        };
        let package: PackageRecord = decode(package.value())?;
        let total = txn
            .open_table(PACKAGE_VERSIONS)
            .ctx("opening package_versions")?
            .get((o.as_str(), n.as_str()))
            .ctx("counting versions")?
            .map(|g| g.value())
            .unwrap_or(0);
        let order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let n_next = format!("{n}\0");
        let skip = page_offset(page, limit);
        let mut items = Vec::new();
        for row in order
            .range((o.as_str(), n.as_str(), 0u64, "")..(o.as_str(), n_next.as_str(), 0u64, ""))
            .ctx("listing versions")?
            .skip(skip)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            let (k, _) = row.ctx("listing versions")?;
            let v = k.value().3;
            let version = versions
                .get((o.as_str(), GENERIC, n.as_str(), v))
                .ctx("reading a version")?
                .ok_or_else(|| Error::Corrupt(format!("ordered version {n}/{v} is missing")))?;
            items.push(VersionEntry {
                package: package.clone(),
                version: decode(version.value())?,
            });
        }
        Ok(Some(Page { total, items }))
    }

    pub fn get_version(
        &self,
        owner: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<VersionEntry>> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let Some(version) = versions
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
            .ctx("reading a version")?
        else {
            return Ok(None);
        };
        let package = packages
            .get((o.as_str(), GENERIC, n.as_str()))
            .ctx("reading a package")?
            .ok_or_else(|| Error::Corrupt(format!("version of missing package {n}")))?;
        Ok(Some(VersionEntry {
            package: decode(package.value())?,
            version: decode(version.value())?,
        }))
    }

    /// The newest version of a package (by creation), if any.
    pub fn latest_version(&self, owner: &str, name: &str) -> Result<Option<VersionEntry>> {
        Ok(self
            .list_package_versions(owner, name, 1, 1)?
            .and_then(|p| p.items.into_iter().next()))
    }

    /// The newest version of a package (by creation) that has a file of this name.
    pub fn latest_version_with_file(
        &self,
        owner: &str,
        name: &str,
        file: &str,
    ) -> Result<Option<Version>> {
        let (o, n, f) = (fold_case(owner), fold_case(name), fold_case(file));
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
        let files = txn.open_table(FILES).ctx("opening files")?;
        let n_next = format!("{n}\0");
        // Newest first: the first version holding the file ends the walk.
        for row in order
            .range((o.as_str(), n.as_str(), 0u64, "")..(o.as_str(), n_next.as_str(), 0u64, ""))
            .ctx("listing versions")?
        {
            let (k, _) = row.ctx("listing versions")?;
            let v = k.value().3;
            if files
                .get((o.as_str(), GENERIC, n.as_str(), v, f.as_str()))
                .ctx("reading a file")?
                .is_some()
            {
                return Ok(Some(Version::stored(v.to_string())));
            }
        }
        Ok(None)
    }

    /// A version's files with every digest (computed now for bodies the hasher has not reached);
    /// `None` when the version does not exist.
    pub fn list_files(
        &self,
        owner: &str,
        name: &str,
        version: &str,
    ) -> Result<Option<Vec<FileEntry>>> {
        let (o, n, v) = (fold_case(owner), fold_case(name), fold_case(version));
        let recs = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
            if versions
                .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
                .ctx("reading a version")?
                .is_none()
            {
                return Ok(None);
            }
            let files = txn.open_table(FILES).ctx("opening files")?;
            let v_next = format!("{v}\0");
            let mut recs = Vec::new();
            for row in files
                .range(
                    (o.as_str(), GENERIC, n.as_str(), v.as_str(), "")
                        ..(o.as_str(), GENERIC, n.as_str(), v_next.as_str(), ""),
                )
                .ctx("listing files")?
            {
                let (_, val) = row.ctx("listing files")?;
                recs.push(decode::<FileRecord>(val.value())?);
            }
            recs
        };
        let mut out = Vec::with_capacity(recs.len());
        for file in recs {
            // A file deleted between the listing's snapshot and its digests is left out, as
            // if the listing had come a moment later.
            if let Some(digests) = self.ensure_digests(&file.sha256)? {
                out.push(FileEntry { file, digests });
            }
        }
        out.sort_by_key(|e| e.file.id);
        Ok(Some(out))
    }

    /// All digests of a body, computing and storing md5/sha1/sha512 if they are missing;
    /// `None` when no file has that body any more (it was deleted).
    pub fn ensure_digests(&self, sha256: &[u8; 32]) -> Result<Option<Digests>> {
        let (content, mut reader) = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let contents = txn.open_table(CONTENTS).ctx("opening contents")?;
            let content: ContentRecord = match contents.get(sha256).ctx("reading a content")? {
                Some(c) => decode(c.value())?,
                None => return Ok(None),
            };
            let chunks = txn.open_table(CHUNKS).ctx("opening chunks")?;
            let reader =
                FileReader::new(chunks, content.chunks.clone(), content.size).resumable(&self.db);
            (content, reader)
        };
        let hex_of = |c: &ContentRecord| -> Option<Digests> {
            Some(Digests {
                md5: hex::encode(c.md5?),
                sha1: hex::encode(c.sha1?),
                sha256: hex::encode(sha256),
                sha512: hex::encode(c.sha512.as_ref()?),
            })
        };
        if let Some(d) = hex_of(&content) {
            return Ok(Some(d));
        }
        let want = Want {
            md5: content.md5.is_none(),
            sha1: content.sha1.is_none(),
            sha512: content.sha512.is_none(),
        };
        let mut hashers = ExtraHashers::new(want);
        loop {
            // A large body takes seconds to hash (more at idle priority): give way to a close.
            if self.closing.load(Ordering::Relaxed) {
                return Err(Error::Closed);
            }
            let slice = reader.next_slice().map_err(Error::Body)?;
            if slice.is_empty() {
                break;
            }
            hashers.update(slice);
        }
        let mut computed = StreamDigests::default();
        hashers.finish_into(&mut computed);
        let full = ContentRecord {
            md5: content.md5.or(computed.md5),
            sha1: content.sha1.or(computed.sha1),
            sha512: content.sha512.clone().or(computed.sha512),
            ..content
        };
        let digests = hex_of(&full)
            .ok_or_else(|| Error::Corrupt("digests still missing after hashing".into()))?;
        let sha = *sha256;
        // Store them unless the body went away (or another writer filled them) meanwhile.
        // Not durable: digests can always be computed again, so they need no fsync of their own
        // (the next durable commit persists them).
        self.quick_write(move |txn| {
            let mut contents = txn.open_table(CONTENTS).ctx("opening contents")?;
            let current = contents
                .get(&sha)
                .ctx("reading a content")?
                .map(|g| decode::<ContentRecord>(g.value()))
                .transpose()?;
            if let Some(mut c) = current {
                c.md5 = c.md5.or(full.md5);
                c.sha1 = c.sha1.or(full.sha1);
                c.sha512 = c.sha512.or(full.sha512);
                contents
                    .insert(&sha, encode(&c)?.as_slice())
                    .ctx("writing digests")?;
            }
            Ok(())
        })?;
        Ok(Some(digests))
    }
}

#[cfg(test)]
mod tests {
    use crate::chunk::Want;
    use crate::names::Owner;
    use crate::store::tests::temp_store;
    use crate::store::FileCoords;

    #[test]
    fn explore_merges_owners_newest_first_with_search_and_paging() {
        let t = temp_store();
        let s = &t.store;
        for o in ["alice", "bob"] {
            assert!(s.create_user(&Owner::of(o), false).expect("user"));
        }
        // Interleaved arrivals: alice/app 1, bob/tool 1, alice/app 2, bob/app 1, alice/lib 1.
        for (o, n, v) in [
            ("alice", "app", "1"),
            ("bob", "tool", "1"),
            ("alice", "app", "2"),
            ("bob", "app", "1"),
            ("alice", "lib", "1"),
        ] {
            s.upload(
                &FileCoords::parse(o, n, v, "f"),
                o,
                &b"x"[..],
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        let owners = vec!["alice".to_string(), "Bob".to_string()];
        let names = |p: &super::Page<(String, super::VersionEntry)>| -> Vec<String> {
            p.items
                .iter()
                .map(|(o, e)| format!("{o}/{}/{}", e.package.name, e.version.version))
                .collect()
        };
        let all = s.explore_versions(&owners, None, 0, 10).expect("all");
        assert_eq!(all.total, 5);
        assert_eq!(
            names(&all),
            [
                "alice/lib/1",
                "bob/app/1",
                "alice/app/2",
                "bob/tool/1",
                "alice/app/1"
            ]
        );
        let page2 = s.explore_versions(&owners, None, 2, 2).expect("page 2");
        assert_eq!(names(&page2), ["alice/app/2", "bob/tool/1"]);
        let apps = s.explore_versions(&owners, Some("APP"), 0, 10).expect("q");
        assert_eq!(apps.total, 3);
        assert_eq!(names(&apps), ["bob/app/1", "alice/app/2", "alice/app/1"]);
        let only_bob = s
            .explore_versions(&owners[1..], Some("o"), 0, 10)
            .expect("bob");
        assert_eq!(names(&only_bob), ["bob/tool/1"]);
        assert!(s
            .explore_versions(&[], None, 0, 10)
            .expect("none")
            .items
            .is_empty());
    }
}
