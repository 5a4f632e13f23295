//! Limits and retention: per-owner quotas (GITEA-COMPAT §10) and cleanup rules (§12).
//!
//! - `owner_bytes` keeps every owner's total file bytes (each file counts, even when its body
//!   is shared), changed in the same transactions that publish and delete files, so a quota
//!   check reads one row; `owner_versions` (mod.rs) already counts versions.
//! - `quotas` holds per-owner overrides of the serve flags' defaults (a value, or "unlimited").
//! - The quota check runs twice: before the body from `Content-Length` (the api), and always
//!   again inside the durable publishing commit, where it is atomic with the totals it reads, so
//!   two uploads racing for the last bytes of a quota cannot both pass.
//! - `cleanup_rules` and `version_downloads` (last download per version, written by the
//!   counter flush) drive cleanup; deletions use the normal version-delete path, one short
//!   durable transaction per version.
//! - Schema v2 added these tables; `migrate_v1` computes the totals of a v1 database at open.

use super::*;
use redb::ReadableDatabase;
use std::collections::BTreeMap;

/// owner → total bytes of the owner's files.
pub(super) const OWNER_BYTES: TableDefinition<&str, u64> = TableDefinition::new("owner_bytes");
/// owner → `QuotaRecord` (overrides of the server's defaults).
pub(super) const QUOTAS: TableDefinition<&str, &[u8]> = TableDefinition::new("quotas");
/// (owner, lower package or "" for all packages) → `CleanupRule`.
pub(super) const CLEANUP_RULES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("cleanup_rules");
/// (owner, name, version) → unix time of the version's last download (GET).
pub(super) const VERSION_DOWNLOADS: TableDefinition<(&str, &str, &str), u64> =
    TableDefinition::new("version_downloads");

/// Longest cleanup pattern accepted.
const MAX_PATTERN: usize = 1000;
/// The most a pattern may compile to (regex's `size_limit`, bytes of its program). Compile
/// time grows with it, about 1 ms per 100 KiB; the former 1 MiB let `\p{Any}{300}` (289 KiB)
/// through. Version patterns people write (`.*-rc\d+`, `v?\d+\.\d+\.\d+`, `(?:\w+[-.])*\w+`
/// at 100 KiB, an alternation of 90 versions at 13 KiB) fit.
const PATTERN_SIZE_LIMIT: usize = 256 << 10;
/// The most codepoints case folding may walk for one pattern (`fold_work`). Case-insensitive
/// compilation folds each class codepoint by codepoint before any size limit applies:
/// `\p{Any}` alone (1.1 M codepoints) costs 6–10 ms in 1 KiB of program, and a 1000-byte
/// pattern holds 142 of them (about 1 s). `\pL` (141 k) fits; the worst accepted pattern
/// compiles in a few milliseconds (README "Cleanup").
const MAX_FOLD_WORK: u64 = 1 << 18;
/// The lazy DFA's cache of one pattern (regex's `dfa_size_limit`): bounds the memory of a
/// match; a match that needs more falls back to a slower engine, still linear in the input.
const PATTERN_DFA_LIMIT: usize = 256 << 10;
/// Rules one owner may have. A run compiles each of its rules (at most a few milliseconds a
/// pattern), so this bounds one owner's run; one rule for all packages plus a few for
/// particular packages is the usual shape (Gitea has one per owner and package type).
pub const MAX_RULES_PER_OWNER: usize = 50;
const DAY: u64 = 86_400;

// ---------------------------------------------------------------------------------- quotas

/// One overridden limit.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Lifts the server's default for this owner.
    Unlimited,
    Max(u64),
}

/// An owner's overrides; `None` keeps the server's default.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaRecord {
    pub max_file_size: Option<Limit>,
    pub max_bytes: Option<Limit>,
    pub max_versions: Option<Limit>,
}

impl QuotaRecord {
    pub fn is_empty(&self) -> bool {
        *self == QuotaRecord::default()
    }
}

/// Effective limits (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_file_size: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_versions: Option<u64>,
}

impl Limits {
    /// These defaults with an owner's overrides applied.
    pub fn with(self, o: &QuotaRecord) -> Limits {
        let pick = |over: Option<Limit>, default: Option<u64>| match over {
            None => default,
            Some(Limit::Unlimited) => None,
            Some(Limit::Max(n)) => Some(n),
        };
        Limits {
            max_file_size: pick(o.max_file_size, self.max_file_size),
            max_bytes: pick(o.max_bytes, self.max_bytes),
            max_versions: pick(o.max_versions, self.max_versions),
        }
    }
}

/// Which quota refused an upload (403 with Gitea's message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaExceeded {
    Count,
    FileSize,
    Total,
}

impl fmt::Display for QuotaExceeded {
    /// For logs and the commands; the wire text is the api's (`registry.rs`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuotaExceeded::Count => "over the owner's version quota",
            QuotaExceeded::FileSize => "over the file size limit",
            QuotaExceeded::Total => "over the owner's storage quota",
        })
    }
}

/// How a publish is checked against the quotas.
#[derive(Debug, Clone, Copy)]
pub struct QuotaCheck {
    pub defaults: Limits,
    /// Site admins are exempt from every limit, the file size too (Gitea's
    /// `CheckCountQuotaExceeded` and `CheckSizeQuotaExceeded` return at once for an admin).
    pub exempt: bool,
}

/// An owner's usage, read in O(1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub versions: u64,
}

/// An owner's quota as shown to admins: overrides, effective limits and usage.
#[derive(Debug, Clone)]
pub struct OwnerQuota {
    pub owner: String,
    pub overrides: QuotaRecord,
    pub limits: Limits,
    pub usage: Usage,
}

/// Gitea's order: the version count (only when a new version is created), then the file size,
/// then the owner's total. `size` is the new file's size.
pub(super) fn refusal(
    txn: &WriteTransaction,
    key: &[String; 4],
    size: u64,
    check: QuotaCheck,
) -> Result<Option<QuotaExceeded>> {
    if check.exempt {
        return Ok(None);
    }
    let [o, n, v, _] = key;
    let over = read_quota(&txn.open_table(QUOTAS).ctx("opening quotas")?, o)?;
    let limits = check.defaults.with(&over);
    if !check.exempt {
        if let Some(max) = limits.max_versions {
            let new_version = txn
                .open_table(VERSIONS)
                .ctx("opening versions")?
                .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
                .ctx("reading a version")?
                .is_none();
            let count = txn
                .open_table(OWNER_VERSIONS)
                .ctx("opening owner_versions")?
                .get(o.as_str())
                .ctx("counting versions")?
                .map(|g| g.value())
                .unwrap_or(0);
            if new_version && count.saturating_add(1) > max {
                return Ok(Some(QuotaExceeded::Count));
            }
        }
    }
    if limits.max_file_size.is_some_and(|max| size > max) {
        return Ok(Some(QuotaExceeded::FileSize));
    }
    if !check.exempt {
        if let Some(max) = limits.max_bytes {
            let bytes = txn
                .open_table(OWNER_BYTES)
                .ctx("opening owner_bytes")?
                .get(o.as_str())
                .ctx("reading owner bytes")?
                .map(|g| g.value())
                .unwrap_or(0);
            if bytes.saturating_add(size) > max {
                return Ok(Some(QuotaExceeded::Total));
            }
        }
    }
    Ok(None)
}

fn read_quota(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    o: &str,
) -> Result<QuotaRecord> {
    table
        .get(o)
        .ctx("reading a quota")?
        .map(|g| decode(g.value()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Adds (`grow`) or removes a file's bytes from its owner's total; the row goes at zero.
pub(super) fn owner_bytes(txn: &WriteTransaction, o: &str, size: u64, grow: bool) -> Result<()> {
    let mut t = txn.open_table(OWNER_BYTES).ctx("opening owner_bytes")?;
    let cur = t.get(o).ctx("reading owner bytes")?.map(|g| g.value());
    let cur = cur.unwrap_or(0);
    let next = if grow {
        cur.saturating_add(size)
    } else {
        // A total that drifted low must not block deletes (every one would fail until an
        // offline repair): clamp, and say so; `check` reports the drift, `--repair` mends it.
        cur.checked_sub(size).unwrap_or_else(|| {
            log::error!("owner {o}: byte total {cur} is below a {size}-byte file; set to 0");
            0
        })
    };
    if next == 0 {
        t.remove(o).ctx("writing owner bytes")?;
    } else {
        t.insert(o, next).ctx("writing owner bytes")?;
    }
    Ok(())
}

/// A version is gone: its last-download time goes with it.
pub(super) fn forget_version(txn: &WriteTransaction, o: &str, n: &str, v: &str) -> Result<()> {
    txn.open_table(VERSION_DOWNLOADS)
        .ctx("opening version_downloads")?
        .remove((o, n, v))
        .ctx("forgetting a download time")?;
    Ok(())
}

/// An owner is deleted: its quota override and cleanup rules go too.
pub(super) fn forget_owner(txn: &WriteTransaction, o: &str) -> Result<()> {
    txn.open_table(QUOTAS)
        .ctx("opening quotas")?
        .remove(o)
        .ctx("deleting a quota")?;
    let next = format!("{o}\0");
    let mut rules = txn.open_table(CLEANUP_RULES).ctx("opening cleanup_rules")?;
    for row in rules
        .extract_from_if((o, "")..(next.as_str(), ""), |_, _| true)
        .ctx("deleting cleanup rules")?
    {
        row.ctx("deleting cleanup rules")?;
    }
    Ok(())
}

/// The counter flush: the versions downloaded in this batch were last used `now`.
pub(super) fn record_downloads(
    txn: &WriteTransaction,
    downloads: &HashMap<[String; 4], u64>,
    now: u64,
) -> Result<()> {
    let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
    let mut used = txn
        .open_table(VERSION_DOWNLOADS)
        .ctx("opening version_downloads")?;
    for [o, n, v, _] in downloads.keys() {
        let exists = versions
            .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
            .ctx("reading a version")?
            .is_some();
        if exists {
            used.insert((o.as_str(), n.as_str(), v.as_str()), now)
                .ctx("writing a download time")?;
        }
    }
    Ok(())
}

/// Schema 1 → 2: the new tables exist (init_schema opened them); compute every owner's total.
pub(super) fn migrate_v1(txn: &WriteTransaction) -> Result<()> {
    let fixed = rebuild_owner_bytes(txn)?;
    log::info!(
        "migrated the database to schema 2: byte totals of {} owners",
        fixed.len()
    );
    Ok(())
}

/// Rewrites `owner_bytes` from the files (the migration, and a repair of the totals);
/// returns one line per total written or dropped.
pub(super) fn rebuild_owner_bytes(txn: &WriteTransaction) -> Result<Vec<String>> {
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    {
        let files = txn.open_table(FILES).ctx("opening files")?;
        for row in files.iter().ctx("listing files")? {
            let (k, v) = row.ctx("listing files")?;
            let rec: FileRecord = decode(v.value())?;
            *totals.entry(k.value().0.to_string()).or_default() += rec.size;
        }
    }
    totals.retain(|_, b| *b > 0);
    let mut t = txn.open_table(OWNER_BYTES).ctx("opening owner_bytes")?;
    let mut fixed = Vec::new();
    let mut stale = Vec::new();
    for row in t.iter().ctx("listing owner bytes")? {
        let (k, v) = row.ctx("listing owner bytes")?;
        if totals.get(k.value()) != Some(&v.value()) {
            stale.push(k.value().to_string());
        }
    }
    for o in stale {
        t.remove(o.as_str()).ctx("dropping owner bytes")?;
        if !totals.contains_key(&o) {
            fixed.push(format!("owner {o}: byte total dropped (no files)"));
        }
    }
    for (o, bytes) in &totals {
        let have = t
            .get(o.as_str())
            .ctx("reading owner bytes")?
            .map(|g| g.value());
        if have != Some(*bytes) {
            t.insert(o.as_str(), *bytes).ctx("writing owner bytes")?;
            fixed.push(format!("owner {o}: byte total set to {bytes}"));
        }
    }
    Ok(fixed)
}

/// The integrity check's part: every owner's byte total equals the sum of its files' sizes.
pub(super) fn check_owner_bytes(
    txn: &redb::ReadTransaction,
    faults: &mut Vec<String>,
) -> Result<()> {
    let files = txn.open_table(FILES).ctx("opening files")?;
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for row in files.iter().ctx("listing files")? {
        let (k, v) = row.ctx("listing files")?;
        let rec: FileRecord = decode(v.value())?;
        *totals.entry(k.value().0.to_string()).or_default() += rec.size;
    }
    totals.retain(|_, b| *b > 0);
    let stored = txn.open_table(OWNER_BYTES).ctx("opening owner_bytes")?;
    let mut seen = 0usize;
    for row in stored.iter().ctx("listing owner bytes")? {
        let (k, v) = row.ctx("listing owner bytes")?;
        let (o, b) = (k.value(), v.value());
        match totals.get(o) {
            Some(t) if *t == b => seen += 1,
            Some(t) => {
                seen += 1;
                faults.push(format!("owner {o}: byte total {b}, its files hold {t}"));
            }
            None => faults.push(format!("owner {o}: byte total {b}, but it has no bytes")),
        }
    }
    if seen != totals.len() {
        faults.push(format!(
            "{} owners with files have no byte total",
            totals.len() - seen
        ));
    }
    Ok(())
}

impl Store {
    /// The server's default limits (serve flags); overrides apply on top.
    pub fn set_quota_defaults(&self, limits: Limits) {
        if let Ok(mut d) = self.quota_defaults.lock() {
            *d = limits;
        }
    }

    pub fn quota_defaults(&self) -> Limits {
        self.quota_defaults.lock().map(|d| *d).unwrap_or_default()
    }

    /// An owner's overrides, effective limits and usage; `None` for an unknown owner.
    pub fn owner_quota(&self, owner: &str) -> Result<Option<OwnerQuota>> {
        let o = fold_case(owner);
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let Some(user) = users.get(o.as_str()).ctx("reading a user")? else {
            return Ok(None);
        };
        let user: UserRecord = decode(user.value())?;
        Ok(Some(self.quota_of(&txn, &o, user.login)?))
    }

    fn quota_of(&self, txn: &redb::ReadTransaction, o: &str, login: String) -> Result<OwnerQuota> {
        let overrides = read_quota(&txn.open_table(QUOTAS).ctx("opening quotas")?, o)?;
        let bytes = txn
            .open_table(OWNER_BYTES)
            .ctx("opening owner_bytes")?
            .get(o)
            .ctx("reading owner bytes")?
            .map(|g| g.value())
            .unwrap_or(0);
        let versions = txn
            .open_table(OWNER_VERSIONS)
            .ctx("opening owner_versions")?
            .get(o)
            .ctx("counting versions")?
            .map(|g| g.value())
            .unwrap_or(0);
        Ok(OwnerQuota {
            owner: login,
            limits: self.quota_defaults().with(&overrides),
            overrides,
            usage: Usage { bytes, versions },
        })
    }

    /// Every owner that has an override or stores something, by name.
    pub fn quotas(&self) -> Result<Vec<OwnerQuota>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let mut out = Vec::new();
        for row in users.iter().ctx("listing users")? {
            let (k, v) = row.ctx("listing users")?;
            let user: UserRecord = decode(v.value())?;
            let q = self.quota_of(&txn, k.value(), user.login)?;
            if !q.overrides.is_empty() || q.usage != Usage::default() {
                out.push(q);
            }
        }
        Ok(out)
    }

    /// Stores an owner's overrides (an empty record clears them); `Ok(false)`: no such owner.
    pub fn set_quota(&self, owner: &str, rec: QuotaRecord) -> Result<bool> {
        let o = fold_case(owner);
        self.durable(move |txn| {
            if txn
                .open_table(USERS)
                .ctx("opening users")?
                .get(o.as_str())
                .ctx("reading a user")?
                .is_none()
            {
                return Ok(false);
            }
            let mut t = txn.open_table(QUOTAS).ctx("opening quotas")?;
            if rec.is_empty() {
                t.remove(o.as_str()).ctx("deleting a quota")?;
            } else {
                t.insert(o.as_str(), encode(&rec)?.as_slice())
                    .ctx("writing a quota")?;
            }
            Ok(true)
        })
    }
}

// --------------------------------------------------------------------------------- cleanup

/// A cleanup rule (GITEA-COMPAT §12, plus `unused_days`). Zero and empty mean "not used".
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CleanupRule {
    pub enabled: bool,
    /// Keep the N newest versions (by creation).
    pub keep_count: u64,
    /// Versions matching it are kept.
    pub keep_pattern: String,
    /// Only versions older than this many days may go.
    pub remove_days: u64,
    /// Only versions matching it may go.
    pub remove_pattern: String,
    /// Patterns see `lowername/lowerversion` instead of the version.
    pub match_full_name: bool,
    /// Beyond Gitea: only versions not downloaded for this many days may go (a version never
    /// downloaded counts from its creation).
    pub unused_days: u64,
}

impl Default for CleanupRule {
    fn default() -> CleanupRule {
        CleanupRule {
            enabled: true,
            keep_count: 0,
            keep_pattern: String::new(),
            remove_days: 0,
            remove_pattern: String::new(),
            match_full_name: false,
            unused_days: 0,
        }
    }
}

/// Why a cleanup rule is refused when saved (or skipped by a run, when it was stored before a
/// limit that now refuses it). `Display` is the message the API and the CLI show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidRule {
    /// A pattern longer than `MAX_PATTERN` bytes.
    PatternTooLong,
    /// A pattern that does not parse; `reason` is the parser's.
    Pattern { pattern: String, reason: String },
    /// Folding a pattern's classes case-insensitively would walk more than `MAX_FOLD_WORK`
    /// codepoints.
    FoldsTooMuch(String),
    /// Compiled, a pattern would exceed `limit` bytes.
    CompilesTooBig { pattern: String, limit: usize },
    /// The owner has `MAX_RULES_PER_OWNER` rules and this one would be another.
    TooManyRules,
}

impl fmt::Display for InvalidRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidRule::PatternTooLong => {
                write!(f, "a pattern may have at most {MAX_PATTERN} bytes")
            }
            InvalidRule::Pattern { pattern, reason } => {
                write!(f, "invalid pattern {pattern:?}: {reason}")
            }
            InvalidRule::FoldsTooMuch(p) => write!(
                f,
                "pattern {p:?} is too complex: its classes cover too many characters to fold \
                 case-insensitively (use narrower classes than \\p{{Any}} or wide ranges)"
            ),
            InvalidRule::CompilesTooBig { pattern, limit } => write!(
                f,
                "pattern {pattern:?} is too complex: compiled, it would exceed {limit} bytes \
                 (use fewer or smaller repetitions, or narrower classes than \\p{{Any}} or \\w)"
            ),
            InvalidRule::TooManyRules => write!(
                f,
                "an owner may have at most {MAX_RULES_PER_OWNER} cleanup rules; remove one \
                 first, or use a rule for all packages (\"*\") with match_full_name"
            ),
        }
    }
}

impl std::error::Error for InvalidRule {}

/// The message, for validators whose errors are still messages (the API's JSON field checks).
impl From<InvalidRule> for String {
    fn from(e: InvalidRule) -> String {
        e.to_string()
    }
}

/// A pattern as Gitea compiles it: anchored at both ends, case-insensitive. Empty: none.
/// Refused: longer than `MAX_PATTERN`, invalid, or compiling to more than
/// `PATTERN_SIZE_LIMIT` bytes (when a rule is saved; a rule stored before the limit is
/// skipped by a run).
pub fn compile_pattern(p: &str) -> std::result::Result<Option<regex::Regex>, InvalidRule> {
    if p.is_empty() {
        return Ok(None);
    }
    if p.len() > MAX_PATTERN {
        return Err(InvalidRule::PatternTooLong);
    }
    if fold_work(p)? > MAX_FOLD_WORK {
        return Err(InvalidRule::FoldsTooMuch(p.to_string()));
    }
    #[cfg(test)]
    tests::COMPILATIONS.with(|n| n.set(n.get() + 1));
    regex::RegexBuilder::new(&format!("^(?:{p})$"))
        .case_insensitive(true)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_DFA_LIMIT)
        .build()
        .map(Some)
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => InvalidRule::CompilesTooBig {
                pattern: p.to_string(),
                limit,
            },
            e => InvalidRule::Pattern {
                pattern: p.to_string(),
                reason: e.to_string(),
            },
        })
}

/// An estimate (from above, in the usual cases) of the codepoints regex's case-insensitive
/// translation walks for `p`: it folds a `\p{..}` class as written (before its negation),
/// and a bracketed class once per bracket, over its own items; a repetition folds once.
/// Measured without case folding, so cheap (microseconds).
fn fold_work(p: &str) -> std::result::Result<u64, InvalidRule> {
    use regex_syntax::ast::{self, Ast, ClassSet, ClassSetItem};
    let invalid = |e: &dyn fmt::Display| InvalidRule::Pattern {
        pattern: p.to_string(),
        reason: e.to_string(),
    };
    let size = |ast: &Ast| -> std::result::Result<u64, InvalidRule> {
        let hir = regex_syntax::hir::translate::Translator::new()
            .translate(p, ast)
            .map_err(|e| invalid(&e))?;
        Ok(match hir.kind() {
            regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(c)) => c
                .ranges()
                .iter()
                .map(|r| u64::from(r.end()) - u64::from(r.start()) + 1)
                .sum(),
            _ => 0,
        })
    };
    let unicode = |c: &ast::ClassUnicode| {
        let mut c = c.clone();
        c.negated = false;
        size(&Ast::class_unicode(c))
    };
    fn bracket(
        b: &ast::ClassBracketed,
        size: &dyn Fn(&Ast) -> std::result::Result<u64, InvalidRule>,
        unicode: &dyn Fn(&ast::ClassUnicode) -> std::result::Result<u64, InvalidRule>,
    ) -> std::result::Result<u64, InvalidRule> {
        let mut own = b.clone();
        own.negated = false;
        let mut work = size(&Ast::class_bracketed(own))?;
        let mut sets = vec![&b.kind];
        while let Some(set) = sets.pop() {
            let mut items = match set {
                ClassSet::BinaryOp(op) => {
                    // regex folds each operand of `&&`, `--`, `~~` on its own, before the
                    // operation shrinks it, and a range or `\S` there is not counted below:
                    // count every set operation as the whole codepoint space (such operations
                    // have no place in version patterns; issue 9 review: `[\S&&a]` × 142
                    // folded 156M codepoints).
                    work = work.saturating_add(0x11_0000);
                    sets.push(&op.lhs);
                    sets.push(&op.rhs);
                    continue;
                }
                ClassSet::Item(i) => vec![i],
            };
            while let Some(item) = items.pop() {
                match item {
                    ClassSetItem::Unicode(c) => work = work.saturating_add(unicode(c)?),
                    ClassSetItem::Bracketed(b) => {
                        work = work.saturating_add(bracket(b, size, unicode)?)
                    }
                    ClassSetItem::Union(u) => items.extend(&u.items),
                    _ => {}
                }
            }
        }
        Ok(work)
    }
    let ast = ast::parse::Parser::new()
        .parse(p)
        .map_err(|e| invalid(&e))?;
    let mut work = 0u64;
    let mut todo = vec![&ast];
    while let Some(node) = todo.pop() {
        match node {
            Ast::ClassUnicode(c) => work = work.saturating_add(unicode(c)?),
            Ast::ClassBracketed(b) => work = work.saturating_add(bracket(b, &size, &unicode)?),
            Ast::Repetition(r) => todo.push(&r.ast),
            Ast::Group(g) => todo.push(&g.ast),
            Ast::Alternation(a) => todo.extend(&a.asts),
            Ast::Concat(c) => todo.extend(&c.asts),
            _ => {}
        }
    }
    Ok(work)
}

impl CleanupRule {
    /// Both patterns compile (checked when a rule is saved).
    pub fn validate(&self) -> std::result::Result<(), InvalidRule> {
        CompiledRule::new(self).map(|_| ())
    }
}

/// A rule with its patterns compiled, once per run and not per package or version
/// (compiling is what costs: a match of a compiled pattern on a version is microseconds).
#[derive(Debug)]
pub struct CompiledRule {
    rule: CleanupRule,
    keep: Option<regex::Regex>,
    remove: Option<regex::Regex>,
    /// Why a version the rule selects goes.
    reason: String,
}

impl CompiledRule {
    pub fn new(rule: &CleanupRule) -> std::result::Result<CompiledRule, InvalidRule> {
        let keep = compile_pattern(&rule.keep_pattern)?;
        let remove = compile_pattern(&rule.remove_pattern)?;
        let mut reasons = Vec::new();
        if rule.keep_count > 0 {
            reasons.push(format!("not among the {} newest", rule.keep_count));
        }
        if rule.remove_days > 0 {
            reasons.push(format!("older than {} days", rule.remove_days));
        }
        if remove.is_some() {
            reasons.push(format!("matches {:?}", rule.remove_pattern));
        }
        if rule.unused_days > 0 {
            reasons.push(format!("not downloaded for {} days", rule.unused_days));
        }
        let reason = if reasons.is_empty() {
            "the rule removes every version".to_string()
        } else {
            reasons.join(", ")
        };
        Ok(CompiledRule {
            rule: rule.clone(),
            keep,
            remove,
            reason,
        })
    }

    /// Gitea's evaluation of the rule over one package's versions, newest first: keep-count,
    /// then keep-pattern, then age, then remove-pattern, then (beyond Gitea) unused days.
    /// Returns the indexes of the versions that pass every test, with the reason.
    pub fn select(&self, versions: &[VersionFacts], now: u64) -> Vec<(usize, String)> {
        let rule = &self.rule;
        let mut out = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            if (i as u64) < rule.keep_count {
                continue;
            }
            let full;
            let subject = if rule.match_full_name {
                full = format!("{}/{}", v.lower_name, v.lower_version);
                full.as_str()
            } else {
                v.lower_version.as_str()
            };
            if self.keep.as_ref().is_some_and(|k| k.is_match(subject)) {
                continue;
            }
            if rule.remove_days > 0
                && v.created > now.saturating_sub(rule.remove_days.saturating_mul(DAY))
            {
                continue;
            }
            if self.remove.as_ref().is_some_and(|r| !r.is_match(subject)) {
                continue;
            }
            if rule.unused_days > 0 {
                let used = v.last_download.unwrap_or(0).max(v.created);
                if used > now.saturating_sub(rule.unused_days.saturating_mul(DAY)) {
                    continue;
                }
            }
            out.push((i, self.reason.clone()));
        }
        out
    }
}

/// A stored rule: `package` is the lower-cased package name, or `None` for all packages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleEntry {
    pub owner: String,
    pub package: Option<String>,
    pub rule: CleanupRule,
}

/// What a rule sees of one version.
#[derive(Debug, Clone)]
pub struct VersionFacts {
    pub lower_name: String,
    pub lower_version: String,
    pub created: u64,
    pub last_download: Option<u64>,
}

/// A version a cleanup removes (or would, in a dry run), and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub owner: String,
    pub package: String,
    pub version: String,
    pub reason: String,
    key: (String, String, String),
    id: u64,
}

/// An enabled rule a run could not use (a pattern stored before today's limits that they
/// refuse), and why; the run goes on with the other rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    pub owner: String,
    /// Lower-cased package, or `None` for all packages.
    pub package: Option<String>,
    pub error: String,
}

/// What a cleanup run removed (a dry run: would remove), and the rules it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub removed: Vec<Removal>,
    pub skipped: Vec<SkippedRule>,
}

impl Store {
    /// Stores a rule (patterns are validated first: `Err` with the reason); `Ok(false)`: no
    /// such owner.
    pub fn set_cleanup_rule(
        &self,
        owner: &str,
        package: Option<&PackageName>,
        rule: CleanupRule,
    ) -> Result<std::result::Result<bool, InvalidRule>> {
        if let Err(e) = rule.validate() {
            return Ok(Err(e));
        }
        let o = fold_case(owner);
        let p = package.map(|p| fold_case(p)).unwrap_or_default();
        self.durable(move |txn| {
            if txn
                .open_table(USERS)
                .ctx("opening users")?
                .get(o.as_str())
                .ctx("reading a user")?
                .is_none()
            {
                return Ok(Ok(false));
            }
            let mut rules = txn.open_table(CLEANUP_RULES).ctx("opening cleanup_rules")?;
            let replaces = rules
                .get((o.as_str(), p.as_str()))
                .ctx("reading a cleanup rule")?
                .is_some();
            let next = format!("{o}\0");
            let count = rules
                .range((o.as_str(), "")..(next.as_str(), ""))
                .ctx("counting cleanup rules")?
                .count();
            if !replaces && count >= MAX_RULES_PER_OWNER {
                return Ok(Err(InvalidRule::TooManyRules));
            }
            rules
                .insert((o.as_str(), p.as_str()), encode(&rule)?.as_slice())
                .ctx("writing a cleanup rule")?;
            Ok(Ok(true))
        })
    }

    /// Removes a rule; `Ok(false)` when there was none.
    pub fn remove_cleanup_rule(&self, owner: &str, package: Option<&str>) -> Result<bool> {
        let o = fold_case(owner);
        let p = package.map(fold_case).unwrap_or_default();
        self.durable(move |txn| {
            Ok(txn
                .open_table(CLEANUP_RULES)
                .ctx("opening cleanup_rules")?
                .remove((o.as_str(), p.as_str()))
                .ctx("deleting a cleanup rule")?
                .is_some())
        })
    }

    /// The rules of one owner, or of every owner.
    pub fn cleanup_rules(&self, owner: Option<&str>) -> Result<Vec<RuleEntry>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let t = txn.open_table(CLEANUP_RULES).ctx("opening cleanup_rules")?;
        let mut out = Vec::new();
        let o = owner.map(fold_case);
        let next = o.as_ref().map(|o| format!("{o}\0"));
        let rows = match (&o, &next) {
            (Some(o), Some(n)) => t.range((o.as_str(), "")..(n.as_str(), "")),
            _ => t.range::<(&str, &str)>(..),
        }
        .ctx("listing cleanup rules")?;
        for row in rows {
            let (k, v) = row.ctx("listing cleanup rules")?;
            let (owner, package) = k.value();
            out.push(RuleEntry {
                owner: owner.to_string(),
                package: (!package.is_empty()).then(|| package.to_string()),
                rule: decode(v.value())?,
            });
        }
        Ok(out)
    }

    /// What the enabled rules (of `owner`, or of everyone) remove at time `now`. Each rule is
    /// compiled once, before any package is read; a rule that no longer compiles (stored
    /// before a limit that now refuses it) is skipped and reported.
    pub fn cleanup_plan(&self, owner: Option<&str>, now: u64) -> Result<CleanupReport> {
        let mut skipped = Vec::new();
        let mut rules = Vec::new();
        for entry in self.cleanup_rules(owner)? {
            if !entry.rule.enabled {
                continue;
            }
            match CompiledRule::new(&entry.rule) {
                Ok(compiled) => rules.push((entry, compiled)),
                Err(error) => {
                    let scope = entry.package.as_deref().unwrap_or("*");
                    log::warn!("cleanup rule {}/{scope} skipped: {error}", entry.owner);
                    skipped.push(SkippedRule {
                        owner: entry.owner,
                        package: entry.package,
                        error: error.to_string(),
                    });
                }
            }
        }
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let packages = txn.open_table(PACKAGES).ctx("opening packages")?;
        let versions = txn.open_table(VERSIONS).ctx("opening versions")?;
        let order = txn.open_table(PACKAGE_ORDER).ctx("opening package_order")?;
        let used = txn
            .open_table(VERSION_DOWNLOADS)
            .ctx("opening version_downloads")?;
        let mut plan: BTreeMap<(String, String, String), Removal> = BTreeMap::new();
        for (entry, compiled) in &rules {
            let o = entry.owner.as_str();
            let names: Vec<(String, String)> = {
                let mut names = Vec::new();
                let next = format!("{o}\0");
                let range = match &entry.package {
                    Some(p) => packages.range((o, GENERIC, p.as_str())..=(o, GENERIC, p.as_str())),
                    None => packages.range((o, GENERIC, "")..(next.as_str(), GENERIC, "")),
                }
                .ctx("listing packages")?;
                for row in range {
                    let (k, v) = row.ctx("listing packages")?;
                    let rec: PackageRecord = decode(v.value())?;
                    names.push((k.value().2.to_string(), rec.name));
                }
                names
            };
            for (n, display) in names {
                let mut facts = Vec::new();
                let mut recs = Vec::new();
                for row in order
                    .range((o, n.as_str(), 0u64, "")..=(o, n.as_str(), u64::MAX, "\u{10FFFF}"))
                    .ctx("listing versions")?
                {
                    let (k, _) = row.ctx("listing versions")?;
                    let v = k.value().3.to_string();
                    let Some(rec) = versions
                        .get((o, GENERIC, n.as_str(), v.as_str()))
                        .ctx("reading a version")?
                    else {
                        continue;
                    };
                    let rec: VersionRecord = decode(rec.value())?;
                    let last = used
                        .get((o, n.as_str(), v.as_str()))
                        .ctx("reading a download time")?
                        .map(|g| g.value());
                    facts.push(VersionFacts {
                        lower_name: n.clone(),
                        lower_version: v.clone(),
                        created: rec.created,
                        last_download: last,
                    });
                    recs.push(rec);
                }
                // Newest first by creation time, as Gitea orders for keep-count: the order index
                // is by id, which is arrival order, and an import brings old versions late.
                let mut pairs: Vec<(VersionFacts, VersionRecord)> =
                    facts.into_iter().zip(recs).collect();
                pairs.sort_by_key(|p| std::cmp::Reverse(p.0.created));
                let (facts, recs): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
                let chosen = compiled.select(&facts, now);
                let scope = entry.package.as_deref().unwrap_or("*");
                for (i, reason) in chosen {
                    let (f, rec) = (&facts[i], &recs[i]);
                    let key = (o.to_string(), n.clone(), f.lower_version.clone());
                    plan.entry(key.clone()).or_insert_with(|| Removal {
                        owner: o.to_string(),
                        package: display.clone(),
                        version: rec.version.clone(),
                        reason: format!("rule {o}/{scope}: {reason}"),
                        key,
                        id: rec.id,
                    });
                }
            }
        }
        Ok(CleanupReport {
            removed: plan.into_values().collect(),
            skipped,
        })
    }

    /// Runs the enabled rules (of `owner`, or of everyone): the plan, then one short durable
    /// transaction per version through the normal delete path (chunks freed at once), each
    /// audited as `package.cleanup` by `cleanup`. A version re-created since the plan was made
    /// is left alone. Returns what went (a dry run: what would go). Waits for a run in
    /// progress (the schedule, the offline CLI).
    pub fn run_cleanup(
        &self,
        owner: Option<&str>,
        dry_run: bool,
        now: u64,
    ) -> Result<CleanupReport> {
        // The gate guards no data: a run that panicked leaves nothing to repair.
        let _gate = self
            .cleanup_gate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.cleanup_now(owner, dry_run, now)
    }

    /// `run_cleanup`, or `None` at once when another run is in progress (a request: it must not
    /// hold a worker waiting, nor let runs pile up on the workers).
    pub fn try_run_cleanup(
        &self,
        owner: Option<&str>,
        dry_run: bool,
        now: u64,
    ) -> Result<Option<CleanupReport>> {
        let _gate = match self.cleanup_gate.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        self.cleanup_now(owner, dry_run, now).map(Some)
    }

    fn cleanup_now(&self, owner: Option<&str>, dry_run: bool, now: u64) -> Result<CleanupReport> {
        let plan = self.cleanup_plan(owner, now)?;
        if dry_run {
            return Ok(plan);
        }
        let mut done = Vec::new();
        for r in plan.removed {
            if self.closing.load(std::sync::atomic::Ordering::Relaxed) {
                log::info!("cleanup stopped early: the store is closing");
                break;
            }
            let (o, n, v) = r.key.clone();
            let id = r.id;
            let deleted = self.durable(move |txn| {
                let current = txn
                    .open_table(VERSIONS)
                    .ctx("opening versions")?
                    .get((o.as_str(), GENERIC, n.as_str(), v.as_str()))
                    .ctx("reading a version")?
                    .map(|g| decode::<VersionRecord>(g.value()))
                    .transpose()?;
                if current.map(|c| c.id) != Some(id) {
                    return Ok(false);
                }
                files::delete_version_rows(txn, &o, &n, &v)
            })?;
            if deleted {
                self.audit(AuditRecord {
                    time: super::now(),
                    actor: "cleanup".into(),
                    addr: "local".into(),
                    action: "package.cleanup".into(),
                    owner: r.owner.clone(),
                    target: format!("{}/{}", r.package, r.version),
                    outcome: r.reason.clone(),
                });
                done.push(r);
            }
        }
        Ok(CleanupReport {
            removed: done,
            skipped: plan.skipped,
        })
    }

    /// Runs every owner's rules every `interval`, first after `first`; the thread holds only a
    /// `Weak` reference and ends with the store.
    pub fn start_cleanup_schedule(
        self: &Arc<Store>,
        first: Duration,
        interval: Duration,
    ) -> Result<()> {
        let weak = Arc::downgrade(self);
        thread::Builder::new()
            .name("shelf-cleanup".into())
            .spawn(move || {
                let mut wait = first;
                loop {
                    // Sleep in short steps so the thread notices the store closing.
                    let until = std::time::Instant::now() + wait;
                    while std::time::Instant::now() < until {
                        thread::sleep(Duration::from_millis(200).min(wait));
                        if weak.strong_count() == 0 {
                            return;
                        }
                    }
                    let Some(store) = weak.upgrade() else { return };
                    match store.run_cleanup(None, false, now()) {
                        Ok(done) if !done.removed.is_empty() => {
                            log::info!("cleanup removed {} versions", done.removed.len())
                        }
                        Ok(_) => {}
                        Err(e) => log::error!("cleanup: {e}"),
                    }
                    drop(store);
                    wait = interval;
                }
            })
            .map_err(|e| Error::Db("starting the cleanup thread", Box::new(e.into())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;
    use std::cell::Cell;

    thread_local! {
        /// Patterns compiled on this thread (`compile_pattern` counts them in tests).
        pub(super) static COMPILATIONS: Cell<usize> = const { Cell::new(0) };
    }

    fn facts(versions: &[(&str, u64, Option<u64>)]) -> Vec<VersionFacts> {
        versions
            .iter()
            .map(|(v, created, dl)| VersionFacts {
                lower_name: "pkg".into(),
                lower_version: v.to_string(),
                created: *created,
                last_download: *dl,
            })
            .collect()
    }

    fn picked(rule: &CleanupRule, f: &[VersionFacts], now: u64) -> Vec<String> {
        CompiledRule::new(rule)
            .expect("valid")
            .select(f, now)
            .into_iter()
            .map(|(i, _)| f[i].lower_version.clone())
            .collect()
    }

    const NOW: u64 = 100 * DAY;

    /// Newest first, as the package order index gives them.
    fn sample() -> Vec<VersionFacts> {
        facts(&[
            ("3.0", NOW - DAY, None),
            ("2.0-rc1", NOW - 10 * DAY, None),
            ("2.0", NOW - 20 * DAY, Some(NOW - DAY)),
            ("1.0", NOW - 30 * DAY, None),
        ])
    }

    #[test]
    fn huge_day_counts_do_not_wrap_around() {
        let rule = CleanupRule {
            remove_days: 144_115_188_075_855_872,
            ..CleanupRule::default()
        };
        assert!(
            picked(&rule, &sample(), NOW).is_empty(),
            "nothing is that old (the product once wrapped to a few seconds)"
        );
    }

    #[test]
    fn empty_rule_removes_everything() {
        assert_eq!(
            picked(&CleanupRule::default(), &sample(), NOW),
            ["3.0", "2.0-rc1", "2.0", "1.0"]
        );
    }

    #[test]
    fn keep_count_keeps_the_newest() {
        let r = CleanupRule {
            keep_count: 2,
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["2.0", "1.0"]);
    }

    #[test]
    fn keep_pattern_is_anchored_and_case_insensitive() {
        let r = CleanupRule {
            keep_pattern: "2\\.0".into(),
            ..CleanupRule::default()
        };
        // "2.0-rc1" is not kept: the pattern is anchored at both ends
        assert_eq!(picked(&r, &sample(), NOW), ["3.0", "2.0-rc1", "1.0"]);
        let r = CleanupRule {
            keep_pattern: ".*-RC\\d".into(),
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["3.0", "2.0", "1.0"]);
    }

    #[test]
    fn remove_days_spares_young_versions() {
        let r = CleanupRule {
            remove_days: 15,
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["2.0", "1.0"]);
    }

    #[test]
    fn remove_pattern_limits_what_goes() {
        let r = CleanupRule {
            remove_pattern: ".*-rc.*".into(),
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["2.0-rc1"]);
    }

    #[test]
    fn match_full_name_sees_name_slash_version() {
        let r = CleanupRule {
            remove_pattern: "PKG/1\\..*".into(),
            match_full_name: true,
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["1.0"]);
        let r = CleanupRule {
            remove_pattern: "PKG/1\\..*".into(),
            ..CleanupRule::default()
        };
        assert!(picked(&r, &sample(), NOW).is_empty());
    }

    #[test]
    fn unused_days_counts_from_last_download_or_creation() {
        let r = CleanupRule {
            unused_days: 5,
            ..CleanupRule::default()
        };
        // 3.0 is young, 2.0 was downloaded yesterday
        assert_eq!(picked(&r, &sample(), NOW), ["2.0-rc1", "1.0"]);
    }

    #[test]
    fn all_tests_must_pass_in_gitea_order() {
        let r = CleanupRule {
            keep_count: 1,
            keep_pattern: "1\\.0".into(),
            remove_days: 5,
            remove_pattern: "2\\..*".into(),
            unused_days: 5,
            ..CleanupRule::default()
        };
        assert_eq!(picked(&r, &sample(), NOW), ["2.0-rc1"]);
    }

    #[test]
    fn bad_patterns_are_refused() {
        let r = CleanupRule {
            keep_pattern: "(".into(),
            ..CleanupRule::default()
        };
        assert!(r.validate().is_err());
        assert!(compile_pattern(&"a".repeat(MAX_PATTERN + 1)).is_err());
    }

    /// Finding 3: patterns within the length limit that took 30–100 ms to compile are refused
    /// when saved; patterns people write for versions still fit.
    #[test]
    fn patterns_that_compile_too_big_are_refused() {
        let many_any = r"\p{Any}".repeat(142);
        for p in [
            r"\p{Any}{300}",
            r"\p{Any}",
            r"[\x{0}-\x{10FFFF}]",
            r"\w{100}",
            many_any.as_str(),
            &r"[\S&&a]".repeat(142),
            r"[\x{0}-\x{10FFFF}&&a]",
            r"[a&&\W]",
            r"[\S--a]",
            r"[[^a]~~b]",
        ] {
            let e = compile_pattern(p).expect_err(p).to_string();
            assert!(e.contains("too complex"), "{p}: {e}");
            let r = CleanupRule {
                remove_pattern: p.into(),
                ..CleanupRule::default()
            };
            assert!(r.validate().is_err(), "{p}");
        }
        let ninety: Vec<String> = (0..90).map(|i| format!("1\\.{i}\\.0")).collect();
        for p in [
            r".*-rc\d+",
            r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?",
            r"[a-z0-9._-]+/1\..*",
            r"(?:\w+[-.])*\w+",
            r".*-snapshot.*",
            r"[^/]+",
            r"\pL+",
            r"\P{Lu}",
            &ninety.join("|"),
            ACCEPTED_WORST,
        ] {
            assert!(compile_pattern(p).is_ok_and(|r| r.is_some()), "{p}");
        }
    }

    /// The heaviest pattern measured that still compiles (README "Cleanup" gives its time).
    const ACCEPTED_WORST: &str = r"[\x{0}-\x{3FFFF}](?s:.){200}";

    #[test]
    fn a_run_compiles_each_rule_once_not_per_package() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("pat"), false).expect("user");
        for p in 0..20 {
            for v in ["1.0", "2.0-rc1"] {
                s.upload(
                    &FileCoords::parse("pat", &format!("p{p}"), v, "f"),
                    "pat",
                    v.as_bytes(),
                    Want::default(),
                    |_| Ok(()),
                )
                .expect("upload");
            }
        }
        let rule = CleanupRule {
            keep_pattern: r"1\..*".into(),
            remove_pattern: r".*-rc\d+".into(),
            ..CleanupRule::default()
        };
        assert_eq!(
            s.set_cleanup_rule("pat", None, rule).expect("set"),
            Ok(true)
        );
        COMPILATIONS.with(|n| n.set(0));
        let plan = s.cleanup_plan(Some("pat"), now()).expect("plan");
        assert_eq!(plan.removed.len(), 20, "every package's rc goes");
        assert_eq!(
            COMPILATIONS.with(Cell::get),
            2,
            "two patterns, compiled once for 20 packages (40 times before)"
        );
        COMPILATIONS.with(|n| n.set(0));
        let dry = s.run_cleanup(Some("pat"), true, now()).expect("dry run");
        assert_eq!(dry.removed.len(), 20);
        assert_eq!(COMPILATIONS.with(Cell::get), 2);
    }

    #[test]
    fn a_stored_rule_over_todays_limit_is_skipped_and_the_others_run() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("old"), false).expect("user");
        for p in ["a", "b"] {
            s.upload(
                &FileCoords::parse("old", p, "1", "f"),
                "old",
                &b"x"[..],
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        // As a rule saved by an earlier build, which accepted it.
        let heavy = CleanupRule {
            remove_pattern: r"\p{Any}{300}".into(),
            ..CleanupRule::default()
        };
        s.durable(move |txn| {
            txn.open_table(CLEANUP_RULES)
                .ctx("open")?
                .insert(("old", "a"), encode(&heavy)?.as_slice())
                .ctx("write")?;
            Ok(())
        })
        .expect("store the old rule");
        assert_eq!(
            s.set_cleanup_rule("old", Some(&PackageName::of("b")), CleanupRule::default())
                .expect("set"),
            Ok(true)
        );
        let report = s.run_cleanup(Some("old"), false, now()).expect("run");
        let gone: Vec<_> = report.removed.iter().map(|r| r.package.as_str()).collect();
        assert_eq!(gone, ["b"]);
        assert_eq!(report.skipped.len(), 1, "{report:?}");
        assert_eq!(report.skipped[0].package.as_deref(), Some("a"));
        assert!(report.skipped[0].error.contains("too complex"));
        assert!(s.version_exists("old", "a", "1").expect("v"));
    }

    #[test]
    fn an_owner_has_at_most_max_rules() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("many"), false).expect("user");
        for i in 0..MAX_RULES_PER_OWNER {
            let p = format!("p{i}");
            assert_eq!(
                s.set_cleanup_rule("many", Some(&PackageName::of(&p)), CleanupRule::default())
                    .expect("set"),
                Ok(true)
            );
        }
        let refused = s
            .set_cleanup_rule("many", None, CleanupRule::default())
            .expect("set");
        assert_eq!(refused, Err(InvalidRule::TooManyRules));
        assert!(InvalidRule::TooManyRules.to_string().contains("at most"));
        // Replacing an existing rule is not a new one.
        let keep = CleanupRule {
            keep_count: 3,
            ..CleanupRule::default()
        };
        assert_eq!(
            s.set_cleanup_rule("many", Some(&PackageName::of("P0")), keep)
                .expect("set"),
            Ok(true)
        );
        assert_eq!(
            s.cleanup_rules(Some("many")).expect("rules").len(),
            MAX_RULES_PER_OWNER
        );
    }

    #[test]
    fn one_run_at_a_time_a_request_is_refused_while_one_runs() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("q"), false).expect("user");
        let held = s.cleanup_gate.lock().expect("gate");
        assert_eq!(
            s.try_run_cleanup(Some("q"), true, now()).expect("try"),
            None
        );
        drop(held);
        assert_eq!(
            s.try_run_cleanup(Some("q"), true, now()).expect("try"),
            Some(CleanupReport::default())
        );
    }

    #[test]
    fn owner_bytes_follow_publish_and_delete_and_the_check_agrees() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("alice"), false).expect("user");
        let up = |v: &str, f: &str, data: &[u8]| {
            s.upload(
                &FileCoords::parse("alice", "p", v, f),
                "alice",
                data,
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload")
        };
        up("1", "a", &[1u8; 100]);
        up("1", "b", &[1u8; 100]); // the same body counts again
        up("2", "a", &vec![2u8; CHUNK_SIZE + 10]);
        let q = s.owner_quota("ALICE").expect("quota").expect("owner");
        assert_eq!(q.usage.bytes, 200 + CHUNK_SIZE as u64 + 10);
        assert_eq!(q.usage.versions, 2);
        assert!(s.check().expect("check").faults.is_empty());
        s.delete_version("alice", "p", "2").expect("delete");
        s.delete_file(&FileCoords::parse("alice", "p", "1", "a"))
            .expect("delete");
        let q = s.owner_quota("alice").expect("quota").expect("owner");
        assert_eq!(
            q.usage,
            Usage {
                bytes: 100,
                versions: 1
            }
        );
        assert!(s.check().expect("check").faults.is_empty());
    }

    #[test]
    fn rules_apply_to_their_package_or_all_and_disabled_ones_do_nothing() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("carol"), false).expect("user");
        for (p, v) in [("a", "1"), ("a", "2"), ("b", "1"), ("b", "2")] {
            s.upload(
                &FileCoords::parse("carol", p, v, "f"),
                "carol",
                v.as_bytes(),
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        let keep_one = CleanupRule {
            keep_count: 1,
            ..CleanupRule::default()
        };
        let off = CleanupRule {
            enabled: false,
            ..CleanupRule::default()
        };
        assert_eq!(
            s.set_cleanup_rule("carol", None, off).expect("set"),
            Ok(true)
        );
        assert!(s
            .cleanup_plan(None, now())
            .expect("plan")
            .removed
            .is_empty());
        assert_eq!(
            s.set_cleanup_rule("carol", Some(&PackageName::of("A")), keep_one.clone())
                .expect("set"),
            Ok(true)
        );
        let plan = s.cleanup_plan(Some("CAROL"), now()).expect("plan").removed;
        let got: Vec<_> = plan
            .iter()
            .map(|r| (r.package.as_str(), r.version.as_str()))
            .collect();
        assert_eq!(got, [("a", "1")]);
        assert_eq!(
            s.set_cleanup_rule("carol", None, keep_one).expect("set"),
            Ok(true)
        );
        let plan = s.cleanup_plan(None, now()).expect("plan").removed;
        assert_eq!(
            plan.len(),
            2,
            "either rule selecting a version is enough: {plan:?}"
        );
        assert!(!s
            .set_cleanup_rule("nobody", None, CleanupRule::default())
            .expect("set")
            .unwrap_or(true));
        assert!(s.remove_cleanup_rule("carol", Some("a")).expect("remove"));
        assert!(!s.remove_cleanup_rule("carol", Some("a")).expect("remove"));
        assert_eq!(s.cleanup_rules(Some("carol")).expect("rules").len(), 1);
        s.delete_owner("carol", true).expect("delete");
        assert!(
            s.cleanup_rules(None).expect("rules").is_empty(),
            "rules go with the owner"
        );
        assert!(s.check().expect("check").faults.is_empty());
    }

    #[test]
    fn a_drifted_byte_total_does_not_block_deletes() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("eve"), false).expect("user");
        let at = FileCoords::parse("eve", "p", "1", "f");
        s.upload(&at, "eve", &[5u8; 100][..], Want::default(), |_| Ok(()))
            .expect("upload");
        s.durable(|txn| {
            txn.open_table(OWNER_BYTES)
                .ctx("open")?
                .insert("eve", 10)
                .ctx("drift")?;
            Ok(())
        })
        .expect("drift");
        // Before: every delete of eve's failed with 500 until an offline repair.
        s.delete_file(&at).expect("delete");
        assert!(!s.version_exists("eve", "p", "1").expect("v"));
        assert!(s.check().expect("check").faults.is_empty());
    }

    #[test]
    fn keep_count_goes_by_creation_time_not_arrival() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("dee"), false).expect("user");
        // "2.0" arrives first, then "1.5" with an older creation time (as an import of a
        // backfill brings it).
        for v in ["2.0", "1.5"] {
            s.upload(
                &FileCoords::parse("dee", "app", v, "f"),
                "dee",
                v.as_bytes(),
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        s.durable(|txn| {
            let mut versions = txn.open_table(VERSIONS).ctx("versions")?;
            let key = ("dee", GENERIC, "app", "1.5");
            let bytes = versions
                .get(key)
                .ctx("read")?
                .map(|g| g.value().to_vec())
                .ok_or_else(|| Error::Corrupt("missing".into()))?;
            let mut rec: VersionRecord = decode(&bytes)?;
            rec.created -= 30 * DAY;
            versions
                .insert(key, encode(&rec)?.as_slice())
                .ctx("write")?;
            Ok(())
        })
        .expect("backdate");
        let rule = CleanupRule {
            keep_count: 1,
            ..CleanupRule::default()
        };
        assert_eq!(
            s.set_cleanup_rule("dee", Some(&PackageName::of("app")), rule)
                .expect("set"),
            Ok(true)
        );
        let plan = s.cleanup_plan(Some("dee"), now()).expect("plan").removed;
        let gone: Vec<_> = plan.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(
            gone,
            ["1.5"],
            "the older by creation goes, not the earlier arrival"
        );
    }

    #[test]
    fn cleanup_uses_download_times_and_reclaims_chunks() {
        let t = temp_store();
        let s = &t.store;
        s.create_user(&Owner::of("bob"), false).expect("user");
        for v in ["1", "2", "3"] {
            s.upload(
                &FileCoords::parse("bob", "p", v, "f"),
                "bob",
                &vec![v.as_bytes()[0]; CHUNK_SIZE + 1][..],
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        s.count_download(&FileCoords::parse("bob", "p", "1", "f"));
        s.flush_pending().expect("flush");
        let rule = CleanupRule {
            unused_days: 3,
            ..CleanupRule::default()
        };
        assert_eq!(
            s.set_cleanup_rule("bob", Some(&PackageName::of("P")), rule)
                .expect("set"),
            Ok(true)
        );
        // Now: nothing is unused yet.
        assert_eq!(
            s.run_cleanup(None, false, now()).expect("run"),
            CleanupReport::default()
        );
        // Ten days on, every version is unused (the flush wrote "1"'s download at about now).
        let later = now() + 10 * DAY;
        let dry = s
            .run_cleanup(Some("bob"), true, later)
            .expect("dry")
            .removed;
        assert_eq!(dry.len(), 3);
        assert!(
            s.version_exists("bob", "p", "3").expect("v"),
            "a dry run deletes nothing"
        );
        // "1" downloaded on that later day: it stays.
        s.durable(move |txn| {
            txn.open_table(VERSION_DOWNLOADS)
                .ctx("open")?
                .insert(("bob", "p", "1"), later)
                .ctx("write")?;
            Ok(())
        })
        .expect("write");
        let (chunks_before, _, _) = s.chunk_stats().expect("stats");
        let done = s
            .run_cleanup(Some("bob"), false, later)
            .expect("run")
            .removed;
        let gone: Vec<_> = done.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(gone, ["2", "3"]);
        assert!(s.version_exists("bob", "p", "1").expect("v"));
        assert_eq!(s.chunk_stats().expect("stats").0, chunks_before - 4);
        assert!(s.check().expect("check").faults.is_empty());
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;
    use crate::chunk::Want;

    /// A database written by this build, turned back into schema 1 (version byte and the new
    /// tables gone), opens as schema 2 with the right totals and a clean check.
    #[test]
    fn schema_1_migrates_to_2_with_exact_totals() {
        let dir = std::env::temp_dir().join(format!(
            "shelf-migrate-{}-{}",
            std::process::id(),
            new_token().expect("randomness")
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("m.redb");
        let s = Store::open(&path).expect("open");
        for (owner, v, f, len) in [
            ("alice", "1", "a", 10usize),
            ("alice", "1", "b", 10),
            ("alice", "2", "a", CHUNK_SIZE + 7),
            ("bob", "1", "a", 10),
            ("bob", "1", "e", 0),
        ] {
            s.create_user(&Owner::of(owner), false).expect("user");
            s.upload(
                &FileCoords::parse(owner, "p", v, f),
                owner,
                &vec![7u8; len][..],
                Want::default(),
                |_| Ok(()),
            )
            .expect("upload");
        }
        s.close().expect("close");
        {
            let db = Database::create(&path).expect("raw open");
            let txn = db.begin_write().expect("write");
            txn.open_table(META)
                .expect("meta")
                .insert("schema_version", &1u32.to_le_bytes()[..])
                .expect("downgrade");
            for t in [
                "owner_bytes",
                "quotas",
                "cleanup_rules",
                "version_downloads",
            ] {
                let dropped = txn
                    .delete_table(redb::TableDefinition::<&str, u64>::new(t))
                    .expect("drop table");
                assert!(dropped || t != "owner_bytes", "{t} existed");
            }
            txn.commit().expect("commit");
        }
        let s = Store::open(&path).expect("reopen migrates");
        let alice = s.owner_quota("alice").expect("q").expect("alice");
        assert_eq!(alice.usage.bytes, 20 + CHUNK_SIZE as u64 + 7);
        assert_eq!(alice.usage.versions, 2);
        let bob = s.owner_quota("bob").expect("q").expect("bob");
        assert_eq!(bob.usage.bytes, 10);
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        s.close().expect("close");
        let db = Database::create(&path).expect("raw open");
        let txn = db.begin_read().expect("read");
        let v = txn
            .open_table(META)
            .expect("meta")
            .get("schema_version")
            .expect("get")
            .map(|g| g.value().to_vec());
        assert_eq!(v, Some(SCHEMA_VERSION.to_le_bytes().to_vec()));
        drop(txn);
        drop(db);
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[cfg(test)]
mod rebuild_tests {
    use super::super::tests::temp_store;
    use super::*;
    use crate::chunk::Want;

    #[test]
    fn check_sees_wrong_totals_and_rebuild_mends_them() {
        let t = temp_store();
        let s = &t.store;
        s.upload(
            &FileCoords::parse("alice", "p", "1", "f"),
            "alice",
            &[1u8; 42][..],
            Want::default(),
            |_| Ok(()),
        )
        .expect("upload");
        s.durable(|txn| {
            let mut t = txn.open_table(OWNER_BYTES).ctx("open")?;
            t.insert("alice", 7).ctx("write")?;
            t.insert("ghost", 9).ctx("write")?;
            Ok(())
        })
        .expect("damage");
        let faults = s.check().expect("check").faults;
        assert_eq!(faults.len(), 2, "{faults:?}");
        let fixed = s.durable(rebuild_owner_bytes).expect("rebuild");
        assert_eq!(fixed.len(), 2, "{fixed:?}");
        assert!(s.check().expect("check").faults.is_empty());
        assert_eq!(
            s.durable(rebuild_owner_bytes).expect("again"),
            Vec::<String>::new()
        );
    }
}
