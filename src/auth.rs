//! Who is asking and what they may do: parsing credentials (Basic, `token`, `Bearer`, query
//! tokens), resolving them to a caller (tokens by hash, passwords with Argon2id), slowing down
//! repeated failures per address, and the access matrix of GITEA-COMPAT §8 (visibility,
//! organization roles, token scopes and limits).
//!
//! Knows header *values*, never HTTP types; asks `store` for users and tokens. Secrets are never
//! logged, and tokens are looked up by their SHA-256, so no stored secret is compared in clear.

use crate::store::{self, OwnerKind, Role, Store, TokenRecord, UserRecord, Visibility};
use base64::Engine;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Credentials as the client presented them.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Token(String),
    Basic { user: String, secret: String },
}

/// Reads the `Authorization` header the way Gitea does (GITEA-COMPAT §8): the scheme word is
/// case-insensitive and the header must be exactly two space-separated parts. A header that is
/// malformed (unknown scheme, bad base64, no colon) is ignored: the request is anonymous.
pub fn parse_authorization(header: Option<&str>) -> Credentials {
    let Some(value) = header else {
        return Credentials::Anonymous;
    };
    let mut parts = value.trim().split(' ');
    let (Some(scheme), Some(param), None) = (parts.next(), parts.next(), parts.next()) else {
        return Credentials::Anonymous;
    };
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Token(param.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Anonymous;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(param) else {
        return Credentials::Anonymous;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Credentials::Anonymous;
    };
    match decoded.split_once(':') {
        Some((user, secret)) => Credentials::Basic {
            user: user.to_string(),
            secret: secret.to_string(),
        },
        None => Credentials::Anonymous,
    }
}

/// The `token` / `access_token` query parameter (Gitea still accepts it by default).
pub fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" || k == "access_token").then(|| crate::names::percent_decode(v))?
    })
}

#[derive(Debug)]
pub enum AuthError {
    /// Credentials were presented and are wrong (or expired, revoked, deactivated): 401 even
    /// on a public read.
    Invalid,
    /// Too many failed attempts from this address.
    Throttled(Throttle),
    Store(store::Error),
}

/// A signed-in caller: the user, and the token it used (`None`: a password login, which
/// carries no scope restriction, as in Gitea).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRecord,
    pub token: Option<TokenRecord>,
}

/// Gitea's scope categories; every one exists as `read:…` and `write:…`.
pub const SCOPE_CATEGORIES: [&str; 9] = [
    "activitypub",
    "admin",
    "issue",
    "misc",
    "notification",
    "organization",
    "package",
    "repository",
    "user",
];

/// Whether `s` is a token scope Gitea knows: `all`, `public-only`, or `read:`/`write:` with a
/// category.
pub fn valid_scope(s: &str) -> bool {
    s == "all"
        || s == "public-only"
        || s.split_once(':').is_some_and(|(rw, cat)| {
            (rw == "read" || rw == "write") && SCOPE_CATEGORIES.contains(&cat)
        })
}

/// Read or write access to packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why access to an owner's packages is refused. The registry answers 401 (with a challenge)
/// for all but `PublicOnly` (403), as Gitea; the JSON API answers 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No permission (or not signed in).
    NoPermission,
    /// The token's scopes do not cover the operation.
    Scope,
    /// The token is limited to another owner.
    OwnerLimit,
    /// The token is limited to one package, and the request does not name it.
    PackageLimit,
    /// A `public-only` token against a private owner.
    PublicOnly,
}

impl Caller {
    /// Whether the token's scopes cover `access` to packages.
    fn package_scope(&self, access: Access) -> bool {
        self.scope("package", access)
    }

    /// Whether the token's scopes cover `access` in a Gitea scope category (`package`, `admin`,
    /// `user`, `organization`, …). Password logins carry every scope.
    pub fn scope(&self, category: &str, access: Access) -> bool {
        let Some(t) = &self.token else { return true };
        t.scopes.iter().any(|s| {
            s == "all"
                || *s == format!("write:{category}")
                || (access == Access::Read && *s == format!("read:{category}"))
        })
    }

    /// Whether the token is restricted to public owners.
    pub fn public_only(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.scopes.iter().any(|s| s == "public-only"))
    }

    /// Whether a `public-only` token lets the caller see `owner` (always, without one).
    pub fn sees_under_scope(&self, owner: &UserRecord) -> bool {
        !self.public_only() || owner.visibility == Visibility::Public
    }

    /// Whether the token is limited to one owner or package.
    pub fn limited(&self) -> bool {
        self.token
            .as_ref()
            .is_some_and(|t| t.owner.is_some() || t.package.is_some())
    }

    /// Whether this credential may hand out a token with `scopes`: a password login may hand
    /// out any; a token only what its own scopes cover (`all` needs `all` or every category's
    /// write), never dropping `public-only`, and never when it is limited to an owner or
    /// package. A credential that may change a password may do anything (`scopes = ["all"]`).
    pub fn covers(&self, scopes: &[String]) -> bool {
        let Some(t) = &self.token else { return true };
        if self.limited() {
            return false;
        }
        if self.public_only() && !scopes.iter().any(|s| s == "public-only") {
            return false;
        }
        scopes.iter().all(|s| match s.as_str() {
            "public-only" => true,
            "all" => {
                t.scopes.iter().any(|own| own == "all")
                    || SCOPE_CATEGORIES
                        .iter()
                        .all(|cat| self.scope(cat, Access::Write))
            }
            other => match other.split_once(':') {
                Some(("read", cat)) => self.scope(cat, Access::Read),
                Some(("write", cat)) => self.scope(cat, Access::Write),
                _ => false,
            },
        })
    }
}

/// Why a password could not be hashed.
#[derive(Debug)]
pub enum PasswordError {
    /// The system gave no random bytes for the salt.
    NoRandomness(getrandom::Error),
    /// Argon2 refused its cost parameters.
    Params(argon2::Error),
    /// Encoding the salt or hashing failed.
    Hash(argon2::password_hash::Error),
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordError::NoRandomness(e) => write!(f, "no randomness: {e}"),
            PasswordError::Params(e) => write!(f, "{e}"),
            PasswordError::Hash(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Argon2id at one of OWASP's recommended cost settings (m = 7 MiB, t = 5, p = 1): the same
/// strength as 19 MiB × 2, with less memory per concurrent login.
fn argon2() -> Result<argon2::Argon2<'static>, argon2::Error> {
    let params = argon2::Params::new(7 * 1024, 5, 1, None)?;
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

/// The PHC string to store for a password.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(PasswordError::NoRandomness)?;
    let salt = SaltString::encode_b64(&salt).map_err(PasswordError::Hash)?;
    argon2()
        .map_err(PasswordError::Params)?
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(PasswordError::Hash)
}

/// Checks a password against its stored hash (constant time in the comparison).
pub fn verify_password(stored: &str, password: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2().is_ok_and(|a| a.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A hash to verify against when the user does not exist, so that a wrong user name costs as
/// much time as a wrong password (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("shelf-dummy-password").unwrap_or_default())
}

/// Slows down repeated failed sign-ins per client address: a token bucket of `burst` attempts
/// refilled one per `REFILL`. An attempt takes a unit *before* the credentials are checked (so
/// parallel requests cannot all slip past a check) and gives it back when they were right; an
/// empty bucket answers 429 without checking anything. Per address (IPv6 per /64, what one
/// host usually holds), so a third party cannot lock out the real user; bounded in memory.
pub struct Limiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    burst: f64,
}

#[derive(Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
    /// Whether a refusal was already reported since the bucket last had a unit.
    reported: bool,
}

/// Failures allowed in a row from one address before it is slowed down.
pub const DEFAULT_BURST: u32 = 10;
const REFILL: Duration = Duration::from_secs(6);
const MAX_TRACKED: usize = 10_000;

/// Why an attempt was refused unchecked: how long to wait, and whether this is the first
/// refusal of a run (worth an audit entry; the rest of the run is not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub retry_after: u64,
    pub first: bool,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(DEFAULT_BURST)
    }
}

/// The key an address is limited under: IPv4 as is, IPv6 by its /64.
fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Limiter {
    /// A limiter allowing `burst` failures in a row (then one more per 6 s).
    pub fn new(burst: u32) -> Limiter {
        Limiter {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst.max(1)),
        }
    }

    fn level(&self, b: &Bucket, now: Instant) -> f64 {
        let refilled = now.duration_since(b.at).as_secs_f64() / REFILL.as_secs_f64();
        (b.level + refilled).min(self.burst)
    }

    /// Takes one attempt for `ip`, or refuses.
    fn reserve(&self, ip: IpAddr) -> Result<(), Throttle> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        let key = limit_key(ip);
        let now = Instant::now();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&key) {
            // Forget addresses that have recovered; if none has, the oldest half.
            let burst = self.burst;
            buckets.retain(|_, b| self.level(b, now) < burst);
            if buckets.len() >= MAX_TRACKED {
                let mut ages: Vec<Instant> = buckets.values().map(|b| b.at).collect();
                ages.sort();
                let cutoff = ages[ages.len() / 2];
                buckets.retain(|_, b| b.at > cutoff);
            }
        }
        let bucket = buckets.get(&key).copied();
        let level = bucket.map(|b| self.level(&b, now)).unwrap_or(self.burst);
        if level < 1.0 {
            let reported = bucket.is_some_and(|b| b.reported);
            if let Some(b) = buckets.get_mut(&key) {
                b.reported = true;
            }
            return Err(Throttle {
                retry_after: ((1.0 - level) * REFILL.as_secs_f64()).ceil().max(1.0) as u64,
                first: !reported,
            });
        }
        buckets.insert(
            key,
            Bucket {
                level: level - 1.0,
                at: now,
                reported: false,
            },
        );
        Ok(())
    }

    /// Gives back the attempt of a sign-in that succeeded.
    fn refund(&self, ip: IpAddr) {
        if let Ok(mut buckets) = self.buckets.lock() {
            let key = limit_key(ip);
            let burst = self.burst;
            let now = Instant::now();
            if let Some(b) = buckets.get(&key).copied() {
                let level = (self.level(&b, now) + 1.0).min(burst);
                if level >= burst {
                    buckets.remove(&key);
                } else {
                    buckets.insert(
                        key,
                        Bucket {
                            level,
                            at: now,
                            reported: false,
                        },
                    );
                }
            }
        }
    }
}

/// Resolves credentials to an active caller. `Ok(None)` is an anonymous request.
///
/// Order as Gitea (GITEA-COMPAT §8): `token`/`Bearer` is a token; Basic with an empty secret or
/// `x-oauth-basic` takes the user name as the token; otherwise the secret is first tried as a
/// token (the token's owner is the caller whatever user name was sent), then as the password
/// of the named user.
pub fn authenticate(
    store: &Store,
    limiter: &Limiter,
    peer: IpAddr,
    creds: &Credentials,
) -> Result<Option<Caller>, AuthError> {
    let (token, password_of) = match creds {
        Credentials::Anonymous => return Ok(None),
        Credentials::Token(t) => (t.as_str(), None),
        Credentials::Basic { user, secret } if secret.is_empty() || secret == "x-oauth-basic" => {
            (user.as_str(), None)
        }
        Credentials::Basic { user, secret } => (secret.as_str(), Some(user.as_str())),
    };
    // A valid token is never throttled: checking one is a cheap lookup, and the real user
    // behind a throttled address (a shared NAT) keeps working.
    if let Some(caller) = resolve_token(store, token)? {
        return Ok(Some(caller));
    }
    // Everything else from an address with no attempts left is refused unchecked, so that an
    // attacker cannot make shelf run Argon2 at will.
    limiter.reserve(peer).map_err(AuthError::Throttled)?;
    let result = match password_of {
        Some(login) => resolve_password(store, login, token),
        None => Err(AuthError::Invalid),
    };
    if result.is_ok() {
        limiter.refund(peer);
    }
    result.map(Some)
}

/// Equality of two secrets in time independent of where they differ and of their lengths
/// (both are hashed first). For the metrics token and the pages' CSRF secrets.
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

/// A sign-in with a password only (the pages' form: a token is no password there), throttled
/// per address like every other failed credential.
pub fn sign_in(
    store: &Store,
    limiter: &Limiter,
    peer: IpAddr,
    login: &str,
    password: &str,
) -> Result<Caller, AuthError> {
    limiter.reserve(peer).map_err(AuthError::Throttled)?;
    let result = resolve_password(store, login, password);
    if result.is_ok() {
        limiter.refund(peer);
    }
    result
}

/// The caller a token stands for; `Ok(None)` when it is no valid token. An expired token or
/// a deactivated user's token is an error, not "no token".
fn resolve_token(store: &Store, token: &str) -> Result<Option<Caller>, AuthError> {
    if token.is_empty() {
        return Ok(None);
    }
    let Some((user, rec, hash)) = store.token_auth(token).map_err(AuthError::Store)? else {
        return Ok(None);
    };
    if rec.expires.is_some_and(|e| e <= store::now()) || !user.active {
        return Ok(None);
    }
    store.touch_token(hash);
    Ok(Some(Caller {
        user,
        token: Some(rec),
    }))
}

fn resolve_password(store: &Store, login: &str, password: &str) -> Result<Caller, AuthError> {
    let user = store.get_user(login).map_err(AuthError::Store)?;
    let stored = user
        .as_ref()
        .and_then(|u| u.password.clone())
        .unwrap_or_else(|| dummy_hash().to_string());
    let ok = verify_password(&stored, password);
    match user {
        Some(u) if ok && u.active && u.password.is_some() && u.kind == OwnerKind::User => {
            Ok(Caller {
                user: u,
                token: None,
            })
        }
        _ => Err(AuthError::Invalid),
    }
}

/// The access matrix of GITEA-COMPAT §8 for `owner`'s packages (`package`: the package the
/// request names, for package-limited tokens). Site admins may do everything their token
/// allows; deactivated users never get here (their credentials are invalid).
pub fn package_access(
    store: &Store,
    caller: Option<&Caller>,
    owner: &UserRecord,
    package: Option<&str>,
    access: Access,
) -> Result<Result<(), Denied>, store::Error> {
    if let Some(c) = caller {
        if let Some(t) = &c.token {
            // Gitea checks the read scope on every request and the write scope on writes.
            if !c.package_scope(Access::Read) || !c.package_scope(access) {
                return Ok(Err(Denied::Scope));
            }
            if t.owner.as_ref().is_some_and(|o| *o != owner.key()) {
                return Ok(Err(Denied::OwnerLimit));
            }
            // A package-limited token acts only where the request names that package (an
            // owner-wide listing would show the owner's other packages).
            if let Some(limit) = &t.package {
                if package.is_none_or(|p| *limit != store::fold_case(p)) {
                    return Ok(Err(Denied::PackageLimit));
                }
            }
        }
        if c.public_only() && owner.visibility == Visibility::Private {
            return Ok(Err(Denied::PublicOnly));
        }
    }
    let user = caller.map(|c| &c.user);
    // A read that visibility already allows needs no membership lookup (the common GET of a
    // public package stays two key reads: the token and the owner).
    if access == Access::Read && visibility_allows(owner, user.is_some()) {
        return Ok(Ok(()));
    }
    let level = access_level(store, user, owner)?;
    let allowed = match access {
        Access::Read => level.is_some(),
        Access::Write => level >= Some(Role::Write),
    };
    Ok(if allowed {
        Ok(())
    } else {
        Err(Denied::NoPermission)
    })
}

/// What `user` (None: anonymous) may do in `owner`'s namespace: `Admin` for the user itself and
/// site admins, the member's role in an organization, `Read` where visibility allows, else
/// nothing.
pub fn access_level(
    store: &Store,
    user: Option<&UserRecord>,
    owner: &UserRecord,
) -> Result<Option<Role>, store::Error> {
    let by_visibility = visibility_allows(owner, user.is_some()).then_some(Role::Read);
    let Some(user) = user else {
        return Ok(by_visibility);
    };
    if user.is_admin || (owner.kind == OwnerKind::User && user.key() == owner.key()) {
        return Ok(Some(Role::Admin));
    }
    let role = match owner.kind {
        OwnerKind::Org => store.role_of(&owner.login, &user.login)?,
        OwnerKind::User => None,
    };
    Ok(role.max(by_visibility))
}

/// Whether `viewer` (None: anonymous) may see `u`'s profile at all, as Gitea's
/// `IsUserVisibleToViewer` and `HasOrgOrUserVisible`: the user itself and site admins always;
/// a public account anyone, a limited one anyone signed in; a private organization its members;
/// a private user those who share an organization with it (shelf has no follows). The JSON API
/// answers an owner that is not visible exactly as one that does not exist.
pub fn profile_visible(
    store: &Store,
    viewer: Option<&UserRecord>,
    u: &UserRecord,
) -> Result<bool, store::Error> {
    if visibility_allows(u, viewer.is_some()) {
        return Ok(true);
    }
    let Some(viewer) = viewer else {
        return Ok(false);
    };
    if viewer.is_admin || viewer.key() == u.key() {
        return Ok(true);
    }
    match u.kind {
        OwnerKind::Org => Ok(store.role_of(&u.login, &viewer.login)?.is_some()),
        OwnerKind::User => {
            let theirs = store.orgs_of(&u.login)?;
            if theirs.is_empty() {
                return Ok(false);
            }
            let mine = store.orgs_of(&viewer.login)?;
            Ok(theirs
                .iter()
                .any(|o| mine.iter().any(|m| m.key() == o.key())))
        }
    }
}

/// Whether `owner`'s visibility alone lets a caller (signed in or not) read its packages.
fn visibility_allows(owner: &UserRecord, signed_in: bool) -> bool {
    match owner.visibility {
        Visibility::Public => true,
        Visibility::Limited => signed_in,
        Visibility::Private => false,
    }
}

/// Whether `caller` may read the packages of the owner named `owner`, token limits included
/// (deploy by checksum looks at every namespace holding the bytes). A package-limited token
/// reads no other namespace's bytes this way: which package holds them is not known here.
pub fn may_read_owner_name(store: &Store, caller: Option<&Caller>, owner: &str) -> bool {
    if caller
        .and_then(|c| c.token.as_ref())
        .is_some_and(|t| t.package.is_some())
    {
        return false;
    }
    match store.get_user(owner) {
        Ok(Some(o)) => matches!(
            package_access(store, caller, &o, None, Access::Read),
            Ok(Ok(()))
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::Owner;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn schemes_are_case_insensitive() {
        for h in ["token abc", "Token abc", "bearer abc", "BEARER abc"] {
            assert_eq!(
                parse_authorization(Some(h)),
                Credentials::Token("abc".into())
            );
        }
    }

    #[test]
    fn malformed_headers_are_anonymous() {
        for h in [
            "",
            "token",
            "token a b",
            "Digest abc",
            "Basic %%%",
            "Basic YWJj",
        ] {
            assert_eq!(parse_authorization(Some(h)), Credentials::Anonymous, "{h}");
        }
        assert_eq!(parse_authorization(None), Credentials::Anonymous);
    }

    #[test]
    fn basic_splits_at_first_colon() {
        assert_eq!(
            parse_authorization(Some(&basic("u:p:q"))),
            Credentials::Basic {
                user: "u".into(),
                secret: "p:q".into()
            }
        );
        assert_eq!(
            parse_authorization(Some(&basic(":"))),
            Credentials::Basic {
                user: "".into(),
                secret: "".into()
            }
        );
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("s3cret").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "s3cret"));
        assert!(!verify_password(&h, "S3cret"));
        assert!(!verify_password("garbage", "s3cret"));
        assert_ne!(h, hash_password("s3cret").expect("hash"), "salted");
    }

    #[test]
    fn limiter_allows_a_burst_then_throttles_one_address_only() {
        let l = Limiter::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        for _ in 0..10 {
            assert!(l.reserve(a).is_ok());
        }
        let t = l
            .reserve(a)
            .expect_err("eleventh attempt in a row is throttled");
        assert!(t.first && t.retry_after >= 1);
        assert!(
            !l.reserve(a).expect_err("still throttled").first,
            "reported once"
        );
        assert!(l.reserve(b).is_ok(), "another address is not affected");
        // a success gives its attempt back
        let c: IpAddr = [10, 0, 0, 3].into();
        for _ in 0..20 {
            assert!(l.reserve(c).is_ok());
            l.refund(c);
        }
        // IPv6 neighbours in one /64 share a bucket
        let v6a: IpAddr = "2001:db8::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8::2".parse().expect("ip");
        for _ in 0..10 {
            assert!(l.reserve(v6a).is_ok());
        }
        assert!(l.reserve(v6b).is_err());
    }

    #[test]
    fn a_valid_token_is_never_throttled_but_passwords_are() {
        let t = crate::store::tests::temp_store();
        let s = &t.store;
        let mut u = UserRecord::new(&Owner::of("ann"), OwnerKind::User);
        u.password = Some(hash_password("pw").expect("hash"));
        s.create_owner(u).expect("user");
        let (outcome, _) = s
            .create_token(store::NewToken {
                user: "ann".into(),
                name: "t".into(),
                scopes: vec!["all".into()],
                ..store::NewToken::default()
            })
            .expect("token");
        let store::TokenOutcome::Created(token) = outcome else {
            panic!("no token");
        };
        let l = Limiter::new(2);
        let ip: IpAddr = [10, 1, 1, 1].into();
        let bad = Credentials::Token("0".repeat(40));
        for _ in 0..2 {
            assert!(matches!(
                authenticate(s, &l, ip, &bad),
                Err(AuthError::Invalid)
            ));
        }
        assert!(matches!(
            authenticate(s, &l, ip, &bad),
            Err(AuthError::Throttled(_))
        ));
        let good = Credentials::Token(token);
        assert!(authenticate(s, &l, ip, &good)
            .expect("token works")
            .is_some());
        let pw = Credentials::Basic {
            user: "ann".into(),
            secret: "pw".into(),
        };
        assert!(
            matches!(authenticate(s, &l, ip, &pw), Err(AuthError::Throttled(_))),
            "no Argon2 runs for a throttled address"
        );
        let other: IpAddr = [10, 1, 1, 2].into();
        assert!(authenticate(s, &l, other, &pw)
            .expect("password works")
            .is_some());
    }

    #[test]
    fn query_tokens() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc".into()));
        assert_eq!(query_token("access_token=x%2By"), Some("x+y".into()));
        assert_eq!(query_token("tokens=1"), None);
    }

    fn token_caller(scopes: &[&str], owner: Option<&str>) -> Caller {
        Caller {
            user: UserRecord::new(&Owner::of("ann"), OwnerKind::User),
            token: Some(TokenRecord {
                id: 1,
                user: "ann".into(),
                name: "t".into(),
                created: 0,
                last_eight: "00000000".into(),
                scopes: scopes.iter().map(|s| s.to_string()).collect(),
                owner: owner.map(str::to_string),
                package: None,
                expires: None,
                last_used: None,
            }),
        }
    }

    fn scopes(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_token_covers_only_what_it_holds_itself() {
        let password = Caller {
            user: UserRecord::new(&Owner::of("ann"), OwnerKind::User),
            token: None,
        };
        assert!(password.covers(&scopes(&["all"])));
        let all = token_caller(&["all"], None);
        assert!(all.covers(&scopes(&["all"])));
        assert!(all.covers(&scopes(&["read:package", "public-only"])));
        let admin = token_caller(&["write:admin"], None);
        assert!(
            !admin.covers(&scopes(&["all"])),
            "issue 9: write:admin minted all"
        );
        assert!(!admin.covers(&scopes(&["read:package"])));
        assert!(admin.covers(&scopes(&["read:admin"])));
        assert!(admin.covers(&scopes(&["write:admin"])));
        let reader = token_caller(&["read:admin"], None);
        assert!(!reader.covers(&scopes(&["write:admin"])));
        let public = token_caller(&["all", "public-only"], None);
        assert!(
            !public.covers(&scopes(&["all"])),
            "public-only cannot be dropped"
        );
        assert!(!public.covers(&scopes(&["read:package"])));
        assert!(public.covers(&scopes(&["read:package", "public-only"])));
        let every: Vec<String> = SCOPE_CATEGORIES
            .iter()
            .map(|c| format!("write:{c}"))
            .collect();
        let every: Vec<&str> = every.iter().map(String::as_str).collect();
        assert!(token_caller(&every, None).covers(&scopes(&["all"])));
        let limited = token_caller(&["all"], Some("acme"));
        assert!(!limited.covers(&scopes(&["read:package"])));
    }
}
