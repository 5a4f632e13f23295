//! The JSON API under `/api/v1` for packages (GITEA-COMPAT §11 and §16): listings with Gitea's
//! paging headers, one version, its files with every digest, the newest version, deletes, and
//! `/api/v1/version`. Errors are JSON `{"message", "url"}` with Gitea's JSON-API statuses
//! (403 where the registry routes say 401; 404 for an owner the caller may not see, as for one
//! that does not exist).

use super::error::{json_response, ApiError, Flavor};
use super::routes::{Family, PackageOp, Route};
use super::Api;
use crate::auth::{self, Access, AuthError, Caller, Denied};
use crate::http::{Request, Response};
use crate::names::{percent_encode, PackageName, Segment, Version};
use crate::store::{self, Deleted, FileEntry, OwnerKind, Page, UserRecord, VersionEntry};
use serde_json::{json, Value};
use std::collections::HashMap;

/// Gitea's `[api] DEFAULT_PAGING_NUM` and `MAX_RESPONSE_ITEMS`.
const DEFAULT_LIMIT: u64 = 30;
const MAX_LIMIT: u64 = 50;
/// The version clients see: Gitea's API level shelf follows, with shelf's own as metadata (a
/// string Go's version parsers accept).
const API_VERSION: &str = concat!("1.22.0+shelf-", env!("CARGO_PKG_VERSION"));

pub(super) fn handle(
    api: &Api,
    req: &mut Request,
    route: Route,
    path: &str,
    query: &str,
    who: &mut Option<String>,
) -> Response {
    let base = api.base_url(req);
    match dispatch(api, req, route, path, query, who, &base) {
        Ok(r) => r,
        Err(e) => e.render(Flavor::Json { base: &base }),
    }
}

pub(super) use crate::names::query_param;

/// `page` (≥ 1; all digits but beyond u64: the last possible page, past any end) and `limit`
/// (1 to 50, default 30). Offsets are computed with `store::page_offset`, which saturates.
pub(super) fn paging(query: &str) -> (u64, u64) {
    let page = query_param(query, "page")
        .and_then(|p| match p.parse::<u64>() {
            Err(_) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(u64::MAX),
            parsed => parsed.ok(),
        })
        .filter(|&p| p >= 1)
        .unwrap_or(1);
    let limit = query_param(query, "limit")
        .and_then(|l| l.parse::<u64>().ok())
        .filter(|&l| l >= 1)
        .map(|l| l.min(MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    (page, limit)
}

/// A route of `/api/v1`: `version` before credentials, everything else after them.
fn dispatch(
    api: &Api,
    req: &mut Request,
    route: Route,
    path: &str,
    query: &str,
    who: &mut Option<String>,
    base: &str,
) -> Result<Response, ApiError> {
    match route {
        Route::ApiVersion => return Ok(json_response(200, &json!({ "version": API_VERSION }))),
        Route::NotAllowed(Family::JsonPublic, _) => return Err(ApiError::MethodNotAllowed("")),
        _ => {}
    }
    let caller = match api.caller(req, query) {
        Ok(c) => c,
        Err(AuthError::Invalid) => return Err(ApiError::BadCredentials),
        Err(AuthError::Throttled(t)) => return Err(ApiError::Throttled(t.retry_after)),
        Err(AuthError::Store(e)) => return Err(e.into()),
    };
    *who = caller.as_ref().map(|c| c.user.login.clone());
    match route {
        Route::Packages { owner, package, op } => {
            let Some(caller) = caller else {
                return Err(ApiError::Unauthorized("token is required"));
            };
            let at = Packages {
                api,
                req,
                caller: &caller,
                path,
                query,
                base,
                package: package.as_ref().map(Segment::raw),
            };
            at.serve(&owner, op)
        }
        Route::Limits(r) => super::limits::serve(api, req, r, query, &caller),
        Route::Accounts(r) => super::admin::serve(api, req, r, path, query, caller, base),
        Route::Maintenance(r) => super::admin::maintenance(api, req, r, query, &caller),
        Route::NotAllowed(..) => Err(ApiError::MethodNotAllowed("")),
        // The other routes are answered before `/api/v1` (see `Api::handle`).
        _ => Err(ApiError::Missing(format!(
            "no API route {} {path}; the routes are listed at /api/swagger",
            req.method
        ))),
    }
}

/// One request under `/api/v1/packages/{owner}`, by a signed-in caller.
struct Packages<'a> {
    api: &'a Api,
    req: &'a Request,
    caller: &'a Caller,
    path: &'a str,
    query: &'a str,
    base: &'a str,
    /// The package the path names, if any: its permission is checked before any route.
    package: Option<&'a str>,
}

impl Packages<'_> {
    fn serve(&self, owner: &str, op: PackageOp) -> Result<Response, ApiError> {
        let (api, caller) = (self.api, self.caller);
        let missing = || ApiError::no_account("owner", owner);
        let owner = api.store.get_user(owner)?.ok_or_else(missing)?;
        // An owner the caller may not see is one that does not exist: the same 404, before
        // any check that could answer otherwise (Gitea answers 403 here, from
        // `reqPackageAccess`, which tells a private owner from a missing one; its
        // `/users/{name}` and `/orgs/{org}` answer 404, and so do ours).
        if !auth::profile_visible(&api.store, Some(&caller.user), &owner)? {
            return Err(missing());
        }
        let write_route = self.req.method == "DELETE";
        let scope_access = if write_route {
            Access::Write
        } else {
            Access::Read
        };
        if !caller.scope("package", scope_access) {
            return Err(ApiError::Forbidden(format!(
                "token does not have at least one of required scope(s): [{}:package]",
                if write_route { "write" } else { "read" }
            )));
        }
        self.require(&owner, Access::Read)?;
        match op {
            PackageOp::List => self.list(&owner),
            PackageOp::Versions(name) => self.versions(&owner, name.raw()),
            PackageOp::DeletePackage(name) => self.delete_package(&owner, &name),
            PackageOp::Latest(name) => {
                let entry = api
                    .store
                    .latest_version(&owner.login, name.raw())?
                    .ok_or(ApiError::NOT_FOUND)?;
                self.version_json(&owner, &entry)
            }
            PackageOp::Version(name, version) => {
                let entry = api
                    .store
                    .get_version(&owner.login, name.raw(), version.raw())?
                    .ok_or(ApiError::NOT_FOUND)?;
                self.version_json(&owner, &entry)
            }
            PackageOp::DeleteVersion(name, version) => self.delete_version(&owner, &name, &version),
            PackageOp::Files(name, version) => {
                let files = api
                    .store
                    .list_files(&owner.login, name.raw(), version.raw())?
                    .ok_or(ApiError::NOT_FOUND)?;
                let items: Vec<Value> = files.iter().map(file_json).collect();
                Ok(json_response(200, &Value::Array(items)))
            }
            PackageOp::NotAllowed => Err(ApiError::MethodNotAllowed("")),
            PackageOp::NotFound => Err(ApiError::NOT_FOUND),
        }
    }

    /// The caller's permission on the package of the path (or the owner), at `access`.
    fn require(&self, owner: &UserRecord, access: Access) -> Result<(), ApiError> {
        match auth::package_access(
            &self.api.store,
            Some(self.caller),
            owner,
            self.package,
            access,
        )? {
            Ok(()) => Ok(()),
            Err(denied) => Err(ApiError::Forbidden(denial_message(denied).into())),
        }
    }

    /// The write permission for a delete; a refusal is audited (collapsed per address).
    fn require_delete(
        &self,
        owner: &UserRecord,
        action: &str,
        target: &str,
    ) -> Result<(), ApiError> {
        self.require(owner, Access::Write).inspect_err(|_| {
            let actor = &self.caller.user.login;
            self.api
                .audit_refusal(self.req, actor, action, &owner.login, target, "refused");
        })
    }

    fn list(&self, owner: &UserRecord) -> Result<Response, ApiError> {
        let (page, limit) = paging(self.query);
        let q = query_param(self.query, "q");
        let page_items = match query_param(self.query, "type").as_deref() {
            None | Some("") | Some("generic") => {
                self.api
                    .store
                    .list_owner_versions(&owner.login, q.as_deref(), page, limit)?
            }
            Some(_) => Page {
                total: 0,
                items: Vec::new(),
            },
        };
        self.list_response((page, limit), page_items, owner)
    }

    fn versions(&self, owner: &UserRecord, name: &str) -> Result<Response, ApiError> {
        let (page, limit) = paging(self.query);
        let page_items = self
            .api
            .store
            .list_package_versions(&owner.login, name, page, limit)?
            .ok_or(ApiError::NOT_FOUND)?;
        self.list_response((page, limit), page_items, owner)
    }

    fn version_json(&self, owner: &UserRecord, e: &VersionEntry) -> Result<Response, ApiError> {
        let p = UserLookup::new(self.api, self.base, self.caller).package_json(owner, e)?;
        Ok(json_response(200, &p))
    }

    fn delete_package(
        &self,
        owner: &UserRecord,
        name: &Segment<PackageName>,
    ) -> Result<Response, ApiError> {
        let target = name.audit();
        self.require_delete(owner, "package.delete", &target)?;
        let done = self.api.store.delete_package(&owner.login, name.raw())?;
        self.deleted(owner, "package.delete", &target, done)
    }

    fn delete_version(
        &self,
        owner: &UserRecord,
        name: &Segment<PackageName>,
        version: &Segment<Version>,
    ) -> Result<Response, ApiError> {
        let target = format!("{}/{}", name.audit(), version.audit());
        self.require_delete(owner, "package.delete_version", &target)?;
        let done = self
            .api
            .store
            .delete_version(&owner.login, name.raw(), version.raw())?
            == Deleted::Done;
        self.deleted(owner, "package.delete_version", &target, done)
    }

    /// Audits a delete and answers it: 204, or 404 when there was nothing to delete.
    fn deleted(
        &self,
        owner: &UserRecord,
        action: &str,
        target: &str,
        done: bool,
    ) -> Result<Response, ApiError> {
        let outcome = if done { "ok" } else { "not found" };
        let actor = &self.caller.user.login;
        self.api
            .audit(self.req, actor, action, &owner.login, target, outcome);
        if done {
            Ok(Response::new(204))
        } else {
            Err(ApiError::NOT_FOUND)
        }
    }

    fn list_response(
        &self,
        paging: (u64, u64),
        listing: Page<VersionEntry>,
        owner: &UserRecord,
    ) -> Result<Response, ApiError> {
        let people = UserLookup::new(self.api, self.base, self.caller);
        list_response(people, self.path, self.query, paging, listing, owner)
    }
}

fn list_response(
    mut people: UserLookup,
    path: &str,
    query: &str,
    (page, limit): (u64, u64),
    listing: Page<VersionEntry>,
    owner: &UserRecord,
) -> Result<Response, ApiError> {
    let items = listing
        .items
        .iter()
        .map(|e| people.package_json(owner, e))
        .collect::<Result<Vec<Value>, ApiError>>()?;
    let base = people.base;
    let mut resp = json_response(200, &Value::Array(items))
        .with_header("X-Total-Count", listing.total.to_string())
        .with_header("Access-Control-Expose-Headers", "X-Total-Count, Link");
    if let Some(link) = link_header(base, path, query, page, limit, listing.total) {
        resp = resp.with_header("Link", link);
    }
    Ok(resp)
}

/// Gitea's `Link` header: absolute URLs, the caller's other query parameters kept, in the order
/// next, last, first, prev.
pub(super) fn link_header(
    base: &str,
    path: &str,
    query: &str,
    page: u64,
    limit: u64,
    total: u64,
) -> Option<String> {
    let pages = total.div_ceil(limit.max(1)).max(1);
    // Gitea's paginator treats a page past the end as the last page; so `page + 1` and
    // `page - 1` below stay within 1..=pages.
    let page = page.clamp(1, pages);
    let others: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("page=") && !p.starts_with("limit="))
        .collect();
    let url = |p: u64| {
        let mut q = others.join("&");
        if !q.is_empty() {
            q.push('&');
        }
        format!("<{base}{path}?{q}page={p}&limit={limit}>")
    };
    let mut links = Vec::new();
    if page < pages {
        links.push(format!("{}; rel=\"next\"", url(page + 1)));
        links.push(format!("{}; rel=\"last\"", url(pages)));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"first\"", url(1)));
        links.push(format!("{}; rel=\"prev\"", url(page - 1)));
    }
    (!links.is_empty()).then(|| links.join(","))
}

fn denial_message(d: Denied) -> &'static str {
    match d {
        Denied::NoPermission => "user should have specific permission or be a site admin",
        Denied::Scope => "token does not have the required scope for this package",
        Denied::OwnerLimit => "token is limited to another owner",
        Denied::PackageLimit => {
            "token is limited to one package: it works only on routes that name that package"
        }
        Denied::PublicOnly => "token with public-only scope cannot access private packages",
    }
}

pub(super) fn time(secs: u64) -> String {
    crate::dates::rfc3339_secs(secs)
}

/// Gitea's `last_login` for a viewer not shown it: Go's zero `time.Time`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Gitea's User object (modules/structs/user.go), with `username` as a copy of `login`, as
/// `viewer` (None: anonymous) is shown it (Gitea's `convert.ToUser(user, doer)`). The user
/// itself and site admins see every field; anyone else sees the public profile, the address
/// replaced by the user's no-reply one (as Gitea with `KEEP_EMAIL_PRIVATE` on every account),
/// and `is_admin`, `login_name`, `last_login`, `language`, `active` and `prohibit_login` at
/// their zero values. Whether the viewer may see the profile at all is the caller's question
/// (`auth::profile_visible`; `UserLookup` asks it for package objects).
pub(super) fn user_json(base: &str, u: &UserRecord, viewer: Option<&UserRecord>) -> Value {
    let authed = viewer.is_some_and(|v| v.is_admin || v.key() == u.key());
    json!({
        "id": u.id,
        "login": u.login,
        "login_name": "",
        "source_id": 0,
        "full_name": u.full_name,
        "email": if authed { u.email.clone() } else { no_reply_address(base, u) },
        "avatar_url": "",
        "html_url": format!("{base}/{}", u.login),
        "language": "",
        "is_admin": authed && u.is_admin,
        "last_login": if authed { time(u.created) } else { ZERO_TIME.to_string() },
        "created": time(u.created),
        "restricted": false,
        "active": authed && u.active,
        "prohibit_login": authed && !u.active,
        "location": u.location,
        "website": u.website,
        "description": u.description,
        "visibility": u.visibility.as_str(),
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
        "username": u.login,
    })
}

/// Gitea's `GetPlaceholderEmail`: `<lower-case login>@<NO_REPLY_ADDRESS>`, whose default is
/// `noreply.<DOMAIN>`; shelf's domain is the host of its base URL.
fn no_reply_address(base: &str, u: &UserRecord) -> String {
    let authority = base.split_once("://").map_or(base, |(_, rest)| rest);
    let authority = authority.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    format!("{}@noreply.{host}", u.key())
}

/// Gitea's stand-in for a deleted user (`NewGhostUser`), also shown for a creator whose profile
/// the viewer may not see, so that one reads as a deleted account.
fn ghost_json(base: &str) -> Value {
    let mut ghost = UserRecord::shown("Ghost", OwnerKind::User);
    ghost.active = false;
    ghost.created = 0;
    let mut v = user_json(base, &ghost, None);
    v["id"] = json!(-1);
    v
}

/// The User objects of one answer for one viewer, each creator looked up (and its visibility
/// decided) once per answer.
struct UserLookup<'a> {
    api: &'a Api,
    base: &'a str,
    /// The caller: a `public-only` token sees only public creators; the others are the Ghost.
    caller: &'a Caller,
    viewer: &'a UserRecord,
    seen: HashMap<String, Value>,
}

impl<'a> UserLookup<'a> {
    fn new(api: &'a Api, base: &'a str, caller: &'a Caller) -> UserLookup<'a> {
        UserLookup {
            api,
            base,
            caller,
            viewer: &caller.user,
            seen: HashMap::new(),
        }
    }

    /// The creator `login` as the viewer is shown it: the Ghost when deleted or not visible.
    fn creator(&mut self, login: &str) -> Result<Value, ApiError> {
        let key = store::fold_case(login);
        if let Some(v) = self.seen.get(&key) {
            return Ok(v.clone());
        }
        let v = match self.api.store.get_user(login)? {
            Some(u)
                if self.caller.sees_under_scope(&u)
                    && auth::profile_visible(&self.api.store, Some(self.viewer), &u)? =>
            {
                user_json(self.base, &u, Some(self.viewer))
            }
            _ => ghost_json(self.base),
        };
        self.seen.insert(key, v.clone());
        Ok(v)
    }

    /// Gitea's Package object (modules/structs/package.go) for one version of `owner`, which
    /// the viewer may see; `downloads` is shelf's.
    fn package_json(&mut self, owner: &UserRecord, e: &VersionEntry) -> Result<Value, ApiError> {
        let base = self.base;
        Ok(json!({
            "id": e.version.id,
            "owner": user_json(base, owner, Some(self.viewer)),
            "repository": null,
            "creator": self.creator(&e.version.creator)?,
            "type": "generic",
            "name": e.package.name,
            "version": e.version.version,
            "html_url": format!(
                "{base}/{}/-/packages/generic/{}/{}",
                owner.login,
                percent_encode(&store::fold_case(&e.package.name)),
                percent_encode(&store::fold_case(&e.version.version)),
            ),
            "created_at": time(e.version.created),
            "downloads": e.version.downloads,
        }))
    }
}

/// Gitea's PackageFile object, with the size under both names clients use (§16.1).
fn file_json(f: &FileEntry) -> Value {
    json!({
        "id": f.file.id,
        "size": f.file.size,
        "Size": f.file.size,
        "name": f.file.name,
        "md5": f.digests.md5,
        "sha1": f.digests.sha1,
        "sha256": f.digests.sha256,
        "sha512": f.digests.sha512,
        "downloads": f.file.downloads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_caps() {
        assert_eq!(paging(""), (1, 30));
        assert_eq!(paging("page=3&limit=10"), (3, 10));
        assert_eq!(paging("page=0&limit=500"), (1, 50));
        assert_eq!(paging("limit=x"), (1, 30));
        // Finding 7: huge pages are far past the end, never a wrapped-around early page.
        assert_eq!(
            paging("page=9223372036854775809&limit=2"),
            (9223372036854775809, 2)
        );
        assert_eq!(paging("page=18446744073709551615"), (u64::MAX, 30));
        assert_eq!(
            paging("page=99999999999999999999999&limit=50"),
            (u64::MAX, 50)
        );
        assert_eq!(paging("page=-1"), (1, 30));
        assert_eq!(paging("page=1e9"), (1, 30));
        for (page, limit) in [(u64::MAX, 50), (9223372036854775809, 2)] {
            assert_eq!(crate::store::page_offset(page, limit), usize::MAX);
        }
        assert_eq!(crate::store::page_offset(1, 50), 0);
        assert_eq!(crate::store::page_offset(3, 10), 20);
    }

    #[test]
    fn links_of_huge_pages_and_totals_do_not_overflow() {
        let l = link_header("http://h", "/p", "", u64::MAX, 1, u64::MAX).expect("links");
        assert_eq!(
            l,
            format!(
                "<http://h/p?page=1&limit=1>; rel=\"first\",<http://h/p?page={}&limit=1>; rel=\"prev\"",
                u64::MAX - 1
            )
        );
        let l = link_header("http://h", "/p", "", 1, 50, u64::MAX).expect("links");
        assert!(l.contains(&format!(
            "page={}&limit=50>; rel=\"last\"",
            u64::MAX.div_ceil(50)
        )));
        assert_eq!(link_header("http://h", "/p", "", u64::MAX, 50, 0), None);
        // No division by zero, and page 0 is page 1.
        assert!(link_header("http://h", "/p", "", 0, 0, 3).is_some_and(|l| !l.contains("prev")));
    }

    #[test]
    fn links_keep_other_parameters() {
        let l = link_header(
            "http://h",
            "/api/v1/packages/a",
            "type=generic&page=2&limit=10",
            2,
            10,
            35,
        )
        .expect("links");
        assert_eq!(
            l,
            "<http://h/api/v1/packages/a?type=generic&page=3&limit=10>; rel=\"next\",\
             <http://h/api/v1/packages/a?type=generic&page=4&limit=10>; rel=\"last\",\
             <http://h/api/v1/packages/a?type=generic&page=1&limit=10>; rel=\"first\",\
             <http://h/api/v1/packages/a?type=generic&page=1&limit=10>; rel=\"prev\""
        );
        assert_eq!(link_header("http://h", "/p", "", 1, 30, 5), None);
        // A page past the end is the last page, as Gitea's paginator has it.
        assert_eq!(link_header("http://h", "/p", "", 5, 1, 1), None);
        assert_eq!(
            link_header("http://h", "/p", "", 9, 3, 7).as_deref(),
            Some("<http://h/p?page=1&limit=3>; rel=\"first\",<http://h/p?page=2&limit=3>; rel=\"prev\"")
        );
    }

    #[test]
    fn form_decoded_query() {
        assert_eq!(query_param("q=a+b%2B&x=1", "q").as_deref(), Some("a b+"));
        assert_eq!(query_param("q", "q").as_deref(), Some(""));
    }
}
