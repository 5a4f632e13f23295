//! The route table: every path shelf answers, turned from (method, path) into a typed `Route`
//! in one place, before any handler runs. It reads like the API list in the README.
//!
//! Rules, the same for every family (GITEA-COMPAT §1):
//! - Routing is done on the **escaped** path, as chi does: each `/` separates a segment, a
//!   literal (`api`, `generic`, `files`, …) matches the segment as sent, and a `{parameter}` is
//!   then percent-decoded (`names::percent_decode`), so `a%2Fb` is the value `a/b`.
//! - A parameter that does not decode (a bad escape, or bytes that are not UTF-8) can name
//!   nothing that exists: the path matches no route, and the family answers its 404 where it
//!   answers unknown paths (the registry before credentials, `/api/v1` after them).
//! - A path that exists with another method is `NotAllowed`: 405 with `Allow` on the registry
//!   and operations paths, JSON 405 on `/api/v1` (Gitea's account routes answer 404 instead).
//!
//! The handlers never look at the path again; they get the decoded parameters from here.

use crate::names::{percent_decode, FileName, Name, PackageName, Segment, Version};
pub use crate::web::PageRoute;

/// Which family a path belongs to: it decides how a 404 or 405 is rendered and when.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `/metrics`, `/healthz`, `/readyz`: plain text, before anything else.
    Ops,
    /// `/api/packages/…` and every other path outside `/api/v1`: plain text, before credentials.
    Registry,
    /// `/api/v1/version`: JSON, before credentials.
    JsonPublic,
    /// The rest of `/api/v1`: JSON, after the credential check.
    Json,
    /// The pages for people (`web/`): HTML.
    Page,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET|HEAD /metrics`, `/healthz`, `/readyz`, `/api/swagger`, `/swagger.v1.json`.
    Ops(Op),
    /// `PUT|GET|HEAD|DELETE /api/packages/{owner}/generic/{name}/{version}/{file}` and
    /// `DELETE /api/packages/{owner}/generic/{name}/{version}` (GITEA-COMPAT §1).
    Generic(Generic),
    /// `GET|HEAD /api/v1/version`.
    ApiVersion,
    /// `/api/v1/packages/{owner}[/{type}/{name}…]` (GITEA-COMPAT §11). `package` is the name
    /// segment when the path has one (whether or not the rest matches a route): the package
    /// permission is checked for it before the route is answered.
    Packages {
        owner: String,
        package: Option<Segment<PackageName>>,
        op: PackageOp,
    },
    /// Quotas and cleanup rules (`api/limits.rs`).
    Limits(LimitsRoute),
    /// Users, tokens, organizations, teams and the audit log (`api/admin.rs`).
    Accounts(AccountRoute),
    /// Backup, check, stats and bundles (`api/ops.rs`, `api/bundles.rs`).
    Maintenance(MaintenanceRoute),
    /// `GET|HEAD` of a page for people, at Gitea's URLs, so that `html_url` resolves (`web/`).
    Page(PageRoute),
    /// The path exists, with other methods (`allow` lists them for the `Allow` header).
    NotAllowed(Family, &'static str),
    /// No route has this path.
    NotFound(Family),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Metrics,
    Health,
    Ready,
    /// `/api/swagger`: the API reference, a page.
    Reference,
    /// `/swagger.v1.json`: the API reference, OpenAPI 3.
    OpenApi,
}

/// One file or one version of the generic registry. The coordinates are decoded and
/// checked against their rules once, here, but an invalid one still routes (`Segment`):
/// uploads refuse it after the permission check (Gitea's order, §2), and reads and deletes
/// find nothing by it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generic {
    /// GET or HEAD of a file.
    Download(FileAt),
    /// PUT of a file.
    Upload(FileAt),
    DeleteFile(FileAt),
    DeleteVersion {
        owner: String,
        name: Segment<PackageName>,
        version: Segment<Version>,
    },
}

/// The owner stays text: it is looked up, never written (accounts are made elsewhere), and a
/// name no account has answers as every unknown owner does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileAt {
    pub owner: String,
    pub name: Segment<PackageName>,
    pub version: Segment<Version>,
    pub file: Segment<FileName>,
}

impl Generic {
    pub fn owner(&self) -> &str {
        match self {
            Generic::Download(f) | Generic::Upload(f) | Generic::DeleteFile(f) => &f.owner,
            Generic::DeleteVersion { owner, .. } => owner,
        }
    }

    pub fn name(&self) -> &Segment<PackageName> {
        match self {
            Generic::Download(f) | Generic::Upload(f) | Generic::DeleteFile(f) => &f.name,
            Generic::DeleteVersion { name, .. } => name,
        }
    }
}

/// A route under `/api/v1/packages/{owner}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PackageOp {
    /// `GET /packages/{owner}`: every version of the owner, paged.
    List,
    /// `GET /packages/{owner}/generic/{name}`: the versions of one package.
    Versions(Segment<PackageName>),
    /// `DELETE /packages/{owner}/generic/{name}`: the whole package.
    DeletePackage(Segment<PackageName>),
    /// `GET /packages/{owner}/generic/{name}/-/latest`.
    Latest(Segment<PackageName>),
    /// `GET /packages/{owner}/generic/{name}/{version}`.
    Version(Segment<PackageName>, Segment<Version>),
    /// `DELETE /packages/{owner}/generic/{name}/{version}`.
    DeleteVersion(Segment<PackageName>, Segment<Version>),
    /// `GET /packages/{owner}/generic/{name}/{version}/files`.
    Files(Segment<PackageName>, Segment<Version>),
    /// One of the shapes above, with another method (405 after the permission checks).
    NotAllowed,
    /// Any other path under the owner (404 after the permission checks).
    NotFound,
}

/// Quotas and cleanup rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitsRoute {
    /// `GET /admin/quotas`.
    Quotas,
    /// `GET /admin/quotas/{owner}`.
    Quota(String),
    /// `PUT /admin/quotas/{owner}`.
    SetQuota(String),
    /// `DELETE /admin/quotas/{owner}`.
    ClearQuota(String),
    /// `GET /admin/cleanup/rules`: every owner's rules.
    AllRules,
    /// `POST /admin/cleanup/run`: every owner's rules.
    RunAll,
    /// `GET /cleanup/{owner}/rules`.
    Rules(String),
    /// `PUT /cleanup/{owner}/rules/{package}` (`*`: all packages).
    SetRule(String, String),
    /// `DELETE /cleanup/{owner}/rules/{package}`.
    RemoveRule(String, String),
    /// `POST /cleanup/{owner}/run`.
    Run(String),
}

/// Accounts, as Gitea's API has them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRoute {
    /// `GET /user`.
    Me,
    /// `GET /user/orgs`.
    MyOrgs,
    /// `GET /admin/users`.
    AdminUsers,
    /// `POST /admin/users`.
    CreateUser,
    /// `GET /admin/users/{name}`.
    AdminUser(String),
    /// `PATCH /admin/users/{name}`.
    EditUser(String),
    /// `DELETE /admin/users/{name}`.
    DeleteUser(String),
    /// `POST /admin/users/{name}/orgs`.
    CreateOrgFor(String),
    /// `POST /admin/users/{name}/tokens`.
    CreateTokenFor(String),
    /// `GET /admin/orgs`.
    AdminOrgs,
    /// `GET /admin/audit`.
    Audit,
    /// `GET /users/{name}`.
    User(String),
    /// `GET /users/{name}/tokens`.
    Tokens(String),
    /// `POST /users/{name}/tokens`.
    CreateToken(String),
    /// `DELETE /users/{name}/tokens/{token}`.
    RevokeToken(String, String),
    /// `GET /orgs`.
    Orgs,
    /// `POST /orgs`.
    CreateOrg,
    /// `GET /orgs/{org}`.
    Org(String),
    /// `PATCH /orgs/{org}`.
    EditOrg(String),
    /// `DELETE /orgs/{org}`.
    DeleteOrg(String),
    /// `GET /orgs/{org}/members`.
    Members(String),
    /// `PUT /orgs/{org}/members/{user}`.
    SetMember(String, String),
    /// `DELETE /orgs/{org}/members/{user}`.
    RemoveMember(String, String),
    /// `GET /orgs/{org}/members/{user}`: 204 when the user is a member.
    Member(String, String),
    /// `GET /orgs/{org}/teams`.
    Teams(String),
    /// `POST /orgs/{org}/teams`.
    CreateTeam(String),
    /// `GET /teams/{id}`.
    Team(String),
    /// `GET /teams/{id}/members`.
    TeamMembers(String),
    /// `GET /teams/{id}/members/{user}`: the member, or 404.
    TeamMember(String, String),
    /// `PUT /teams/{id}/members/{user}`.
    AddTeamMember(String, String),
    /// `DELETE /teams/{id}/members/{user}`.
    RemoveTeamMember(String, String),
}

/// The whole registry at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaintenanceRoute {
    /// `GET /admin/backup`: a consistent copy of the database, streamed.
    Backup,
    /// `GET /admin/check`.
    Check,
    /// `GET /admin/stats`.
    Stats,
    /// `GET /admin/manifest`: what an export would hold.
    Manifest,
    /// `POST /admin/export`: a bundle.
    Export,
    /// `PUT /admin/import`: a bundle.
    Import,
}

const REGISTRY_FILE_METHODS: &str = "GET, HEAD, PUT, DELETE";
const REGISTRY_VERSION_METHODS: &str = "DELETE";
const READ_METHODS: &str = "GET, HEAD";

/// The route of `method` on `path` (the request target without its query).
pub fn route(method: &str, path: &str) -> Route {
    match path {
        "/metrics" => return ops(method, Op::Metrics),
        "/healthz" => return ops(method, Op::Health),
        "/readyz" => return ops(method, Op::Ready),
        "/api/swagger" => return ops(method, Op::Reference),
        "/swagger.v1.json" => return ops(method, Op::OpenApi),
        _ => {}
    }
    let segs: Vec<&str> = path.split('/').collect();
    match segs.as_slice() {
        ["", "api", "v1", rest @ ..] => v1(method, rest).unwrap_or(Route::NotFound(Family::Json)),
        ["", "api", ..] => generic(method, &segs).unwrap_or(Route::NotFound(Family::Registry)),
        _ => page(method, &segs).unwrap_or(Route::NotFound(Family::Registry)),
    }
}

/// The pages for people, at Gitea's paths (`web/`). `None`: not a page path.
fn page(method: &str, segs: &[&str]) -> Option<Route> {
    let (route, methods) = match segs {
        ["", "user", "login"] => (PageRoute::SignIn, "GET, HEAD, POST"),
        ["", "user", "logout"] => (PageRoute::SignOut, "POST"),
        ["", "user", "settings", "sessions"] => (PageRoute::Sessions, "GET, HEAD, POST"),
        ["", "user", "settings", "applications"] => (PageRoute::Tokens, "GET, HEAD, POST"),
        ["", "user", "settings", "account"] => (PageRoute::Account, "GET, HEAD, POST"),
        ["", owner, "-", "upload"] if *owner != "-" => {
            let d = |s: &str| percent_decode(s).filter(|v| !v.is_empty());
            (PageRoute::Upload(d(owner)?), "GET, HEAD, POST")
        }
        ["", owner, "-", "packages", "generic", name, version, "-", "delete"] => {
            let d = |s: &str| percent_decode(s).filter(|v| !v.is_empty());
            (
                PageRoute::Delete(d(owner)?, d(name)?, d(version)?),
                "GET, HEAD, POST",
            )
        }
        _ => (page_read(segs)?, READ_METHODS),
    };
    let allowed = methods.split(", ").any(|m| m == method);
    Some(if allowed {
        Route::Page(route)
    } else {
        Route::NotAllowed(Family::Page, methods)
    })
}

/// The pages that are only read.
fn page_read(segs: &[&str]) -> Option<PageRoute> {
    let d = |s: &str| percent_decode(s).filter(|v| !v.is_empty());
    let route = match segs {
        ["", ""] => PageRoute::Explore,
        ["", "-", "static", file] => PageRoute::Asset(d(file)?),
        ["", "-", "admin"] => PageRoute::AdminStorage,
        ["", "-", "admin", "audit"] => PageRoute::AdminAudit,
        ["", owner] | ["", owner, "-", "packages"] if *owner != "-" => PageRoute::Owner(d(owner)?),
        ["", owner, "-", "packages", "generic", name] => PageRoute::Package(d(owner)?, d(name)?),
        ["", owner, "-", "packages", "generic", name, version] => {
            PageRoute::Version(d(owner)?, d(name)?, d(version)?)
        }
        _ => return None,
    };
    Some(route)
}

fn ops(method: &str, op: Op) -> Route {
    match method {
        "GET" | "HEAD" => Route::Ops(op),
        _ => Route::NotAllowed(Family::Ops, READ_METHODS),
    }
}

/// One decoded parameter; `None` when it does not decode (see the module rules).
fn param(raw: &str) -> Option<String> {
    percent_decode(raw)
}

/// One decoded parameter that names a `T`, checked against `T`'s rule.
fn named<T: Name>(raw: &str) -> Option<Segment<T>> {
    param(raw).map(Segment::new)
}

/// GITEA-COMPAT §1. `None`: no route.
fn generic(method: &str, segs: &[&str]) -> Option<Route> {
    Some(match *segs {
        ["", "api", "packages", owner, "generic", name, version, file] if !file.is_empty() => {
            let at = FileAt {
                owner: param(owner)?,
                name: named(name)?,
                version: named(version)?,
                file: named(file)?,
            };
            Route::Generic(match method {
                "GET" | "HEAD" => Generic::Download(at),
                "PUT" => Generic::Upload(at),
                "DELETE" => Generic::DeleteFile(at),
                _ => return Some(Route::NotAllowed(Family::Registry, REGISTRY_FILE_METHODS)),
            })
        }
        ["", "api", "packages", owner, "generic", name, version] if !version.is_empty() => {
            let (owner, name, version) = (param(owner)?, named(name)?, named(version)?);
            match method {
                "DELETE" => Route::Generic(Generic::DeleteVersion {
                    owner,
                    name,
                    version,
                }),
                _ => Route::NotAllowed(Family::Registry, REGISTRY_VERSION_METHODS),
            }
        }
        _ => return None,
    })
}

/// `/api/v1/…`; `segs` come after `v1`. `None`: no route.
fn v1(method: &str, segs: &[&str]) -> Option<Route> {
    match segs {
        ["version"] => Some(match method {
            "GET" | "HEAD" => Route::ApiVersion,
            _ => Route::NotAllowed(Family::JsonPublic, READ_METHODS),
        }),
        ["packages", owner, rest @ ..] => packages(method, owner, rest),
        ["admin", "quotas", ..] | ["admin", "cleanup", ..] | ["cleanup", ..] => {
            limits(method, segs)
        }
        ["admin", "backup" | "check" | "stats" | "manifest" | "export" | "import"] => {
            maintenance(method, segs)
        }
        _ => accounts(method, segs),
    }
}

/// `/api/v1/packages/{owner}/…` (GITEA-COMPAT §11); `rest` comes after the owner.
fn packages(method: &str, owner: &str, rest: &[&str]) -> Option<Route> {
    let owner = param(owner)?;
    let package = match rest.get(1) {
        Some(name) => Some(named(name)?),
        None => None,
    };
    // The type is case-insensitive like the other path parameters (§11); only `generic` exists.
    let generic = rest
        .first()
        .is_some_and(|t| t.eq_ignore_ascii_case("generic"));
    let op = match (method, rest) {
        ("GET", []) => PackageOp::List,
        (_, []) => PackageOp::NotAllowed,
        (_, [_, _, ..]) if !generic => PackageOp::NotFound,
        ("GET", [_, name]) => PackageOp::Versions(named(name)?),
        ("DELETE", [_, name]) => PackageOp::DeletePackage(named(name)?),
        (_, [_, _]) => PackageOp::NotAllowed,
        ("GET", [_, name, "-", "latest"]) => PackageOp::Latest(named(name)?),
        (_, [_, _, "-", "latest"]) => PackageOp::NotAllowed,
        ("GET", [_, name, version]) => PackageOp::Version(named(name)?, named(version)?),
        ("DELETE", [_, name, version]) => PackageOp::DeleteVersion(named(name)?, named(version)?),
        (_, [_, _, _]) => PackageOp::NotAllowed,
        ("GET", [_, name, version, "files"]) => PackageOp::Files(named(name)?, named(version)?),
        (_, [_, _, _, "files"]) => PackageOp::NotAllowed,
        _ => PackageOp::NotFound,
    };
    Some(Route::Packages { owner, package, op })
}

/// Quotas and cleanup rules; `segs` come after `/api/v1`.
fn limits(method: &str, segs: &[&str]) -> Option<Route> {
    use LimitsRoute as L;
    let r = match (method, segs) {
        ("GET", ["admin", "quotas"]) => L::Quotas,
        ("GET", ["admin", "quotas", owner]) => L::Quota(param(owner)?),
        ("PUT", ["admin", "quotas", owner]) => L::SetQuota(param(owner)?),
        ("DELETE", ["admin", "quotas", owner]) => L::ClearQuota(param(owner)?),
        ("GET", ["admin", "cleanup", "rules"]) => L::AllRules,
        ("POST", ["admin", "cleanup", "run"]) => L::RunAll,
        ("GET", ["cleanup", owner, "rules"]) => L::Rules(param(owner)?),
        ("PUT", ["cleanup", owner, "rules", package]) => L::SetRule(param(owner)?, param(package)?),
        ("DELETE", ["cleanup", owner, "rules", package]) => {
            L::RemoveRule(param(owner)?, param(package)?)
        }
        ("POST", ["cleanup", owner, "run"]) => L::Run(param(owner)?),
        (_, ["admin", "quotas", ..] | ["admin", "cleanup", ..])
        | (_, ["cleanup", _, "rules", ..] | ["cleanup", _, "run"]) => {
            return Some(Route::NotAllowed(Family::Json, ""))
        }
        // Not a limits path after all (`/cleanup/x`): the account routes have none either.
        _ => return None,
    };
    Some(Route::Limits(r))
}

/// Backup, check, stats and bundles; `segs` come after `/api/v1`.
fn maintenance(method: &str, segs: &[&str]) -> Option<Route> {
    use MaintenanceRoute as M;
    let r = match (method, segs) {
        ("GET", ["admin", "backup"]) => M::Backup,
        ("GET", ["admin", "check"]) => M::Check,
        ("GET", ["admin", "stats"]) => M::Stats,
        ("GET", ["admin", "manifest"]) => M::Manifest,
        ("POST", ["admin", "export"]) => M::Export,
        ("PUT", ["admin", "import"]) => M::Import,
        // Gitea's admin routes answer another method with 404.
        _ => return None,
    };
    Some(Route::Maintenance(r))
}

/// Accounts; `segs` come after `/api/v1`. Another method is a 404, as in Gitea.
fn accounts(method: &str, segs: &[&str]) -> Option<Route> {
    use AccountRoute as A;
    let r = match (method, segs) {
        ("GET", ["user"]) => A::Me,
        ("GET", ["user", "orgs"]) => A::MyOrgs,
        ("GET", ["admin", "users"]) => A::AdminUsers,
        ("POST", ["admin", "users"]) => A::CreateUser,
        ("GET", ["admin", "users", name]) => A::AdminUser(param(name)?),
        ("PATCH", ["admin", "users", name]) => A::EditUser(param(name)?),
        ("DELETE", ["admin", "users", name]) => A::DeleteUser(param(name)?),
        ("POST", ["admin", "users", name, "orgs"]) => A::CreateOrgFor(param(name)?),
        ("POST", ["admin", "users", name, "tokens"]) => A::CreateTokenFor(param(name)?),
        ("GET", ["admin", "orgs"]) => A::AdminOrgs,
        ("GET", ["admin", "audit"]) => A::Audit,
        ("GET", ["users", name]) => A::User(param(name)?),
        ("GET", ["users", name, "tokens"]) => A::Tokens(param(name)?),
        ("POST", ["users", name, "tokens"]) => A::CreateToken(param(name)?),
        ("DELETE", ["users", name, "tokens", token]) => A::RevokeToken(param(name)?, param(token)?),
        ("GET", ["orgs"]) => A::Orgs,
        ("POST", ["orgs"]) => A::CreateOrg,
        ("GET", ["orgs", org]) => A::Org(param(org)?),
        ("PATCH", ["orgs", org]) => A::EditOrg(param(org)?),
        ("DELETE", ["orgs", org]) => A::DeleteOrg(param(org)?),
        ("GET", ["orgs", org, "members"]) => A::Members(param(org)?),
        ("GET", ["orgs", org, "members", user]) => A::Member(param(org)?, param(user)?),
        ("PUT", ["orgs", org, "members", user]) => A::SetMember(param(org)?, param(user)?),
        ("DELETE", ["orgs", org, "members", user]) => A::RemoveMember(param(org)?, param(user)?),
        ("GET", ["orgs", org, "teams"]) => A::Teams(param(org)?),
        ("POST", ["orgs", org, "teams"]) => A::CreateTeam(param(org)?),
        ("GET", ["teams", id]) => A::Team(param(id)?),
        ("GET", ["teams", id, "members"]) => A::TeamMembers(param(id)?),
        ("GET", ["teams", id, "members", user]) => A::TeamMember(param(id)?, param(user)?),
        ("PUT", ["teams", id, "members", user]) => A::AddTeamMember(param(id)?, param(user)?),
        ("DELETE", ["teams", id, "members", user]) => A::RemoveTeamMember(param(id)?, param(user)?),
        _ => return None,
    };
    Some(Route::Accounts(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> String {
        v.to_string()
    }

    fn seg<T: Name>(v: &str) -> Segment<T> {
        Segment::new(s(v))
    }

    fn at(owner: &str, name: &str, version: &str, file: &str) -> FileAt {
        FileAt {
            owner: s(owner),
            name: seg(name),
            version: seg(version),
            file: seg(file),
        }
    }

    fn pkgs(owner: &str, package: Option<&str>, op: PackageOp) -> Route {
        Route::Packages {
            owner: s(owner),
            package: package.map(seg),
            op,
        }
    }

    /// Every route, as the README lists them.
    #[test]
    fn every_route() {
        use AccountRoute as A;
        use LimitsRoute as L;
        use MaintenanceRoute as M;
        let g = "/api/packages/o/generic";
        let v = "/api/v1";
        let cases: Vec<(&str, String, Route)> = vec![
            ("GET", s("/metrics"), Route::Ops(Op::Metrics)),
            ("HEAD", s("/healthz"), Route::Ops(Op::Health)),
            ("GET", s("/readyz"), Route::Ops(Op::Ready)),
            ("GET", s("/api/swagger"), Route::Ops(Op::Reference)),
            ("GET", s("/swagger.v1.json"), Route::Ops(Op::OpenApi)),
            (
                "GET",
                format!("{g}/n/1/f"),
                Route::Generic(Generic::Download(at("o", "n", "1", "f"))),
            ),
            (
                "HEAD",
                format!("{g}/n/1/f"),
                Route::Generic(Generic::Download(at("o", "n", "1", "f"))),
            ),
            (
                "PUT",
                format!("{g}/n/1/f"),
                Route::Generic(Generic::Upload(at("o", "n", "1", "f"))),
            ),
            (
                "DELETE",
                format!("{g}/n/1/f"),
                Route::Generic(Generic::DeleteFile(at("o", "n", "1", "f"))),
            ),
            (
                "DELETE",
                format!("{g}/n/1"),
                Route::Generic(Generic::DeleteVersion {
                    owner: s("o"),
                    name: seg("n"),
                    version: seg("1"),
                }),
            ),
            ("GET", format!("{v}/version"), Route::ApiVersion),
            ("HEAD", format!("{v}/version"), Route::ApiVersion),
            (
                "GET",
                format!("{v}/packages/o"),
                pkgs("o", None, PackageOp::List),
            ),
            (
                "GET",
                format!("{v}/packages/o/generic/n"),
                pkgs("o", Some("n"), PackageOp::Versions(seg("n"))),
            ),
            (
                "DELETE",
                format!("{v}/packages/o/generic/n"),
                pkgs("o", Some("n"), PackageOp::DeletePackage(seg("n"))),
            ),
            (
                "GET",
                format!("{v}/packages/o/generic/n/-/latest"),
                pkgs("o", Some("n"), PackageOp::Latest(seg("n"))),
            ),
            (
                "GET",
                format!("{v}/packages/o/generic/n/1"),
                pkgs("o", Some("n"), PackageOp::Version(seg("n"), seg("1"))),
            ),
            (
                "DELETE",
                format!("{v}/packages/o/generic/n/1"),
                pkgs("o", Some("n"), PackageOp::DeleteVersion(seg("n"), seg("1"))),
            ),
            (
                "GET",
                format!("{v}/packages/o/generic/n/1/files"),
                pkgs("o", Some("n"), PackageOp::Files(seg("n"), seg("1"))),
            ),
            ("GET", format!("{v}/admin/quotas"), Route::Limits(L::Quotas)),
            (
                "GET",
                format!("{v}/admin/quotas/o"),
                Route::Limits(L::Quota(s("o"))),
            ),
            (
                "PUT",
                format!("{v}/admin/quotas/o"),
                Route::Limits(L::SetQuota(s("o"))),
            ),
            (
                "DELETE",
                format!("{v}/admin/quotas/o"),
                Route::Limits(L::ClearQuota(s("o"))),
            ),
            (
                "GET",
                format!("{v}/admin/cleanup/rules"),
                Route::Limits(L::AllRules),
            ),
            (
                "POST",
                format!("{v}/admin/cleanup/run"),
                Route::Limits(L::RunAll),
            ),
            (
                "GET",
                format!("{v}/cleanup/o/rules"),
                Route::Limits(L::Rules(s("o"))),
            ),
            (
                "PUT",
                format!("{v}/cleanup/o/rules/*"),
                Route::Limits(L::SetRule(s("o"), s("*"))),
            ),
            (
                "DELETE",
                format!("{v}/cleanup/o/rules/p"),
                Route::Limits(L::RemoveRule(s("o"), s("p"))),
            ),
            (
                "POST",
                format!("{v}/cleanup/o/run"),
                Route::Limits(L::Run(s("o"))),
            ),
            ("GET", format!("{v}/user"), Route::Accounts(A::Me)),
            ("GET", format!("{v}/user/orgs"), Route::Accounts(A::MyOrgs)),
            (
                "GET",
                format!("{v}/admin/users"),
                Route::Accounts(A::AdminUsers),
            ),
            (
                "POST",
                format!("{v}/admin/users"),
                Route::Accounts(A::CreateUser),
            ),
            (
                "GET",
                format!("{v}/admin/users/u"),
                Route::Accounts(A::AdminUser(s("u"))),
            ),
            (
                "PATCH",
                format!("{v}/admin/users/u"),
                Route::Accounts(A::EditUser(s("u"))),
            ),
            (
                "DELETE",
                format!("{v}/admin/users/u"),
                Route::Accounts(A::DeleteUser(s("u"))),
            ),
            (
                "POST",
                format!("{v}/admin/users/u/orgs"),
                Route::Accounts(A::CreateOrgFor(s("u"))),
            ),
            (
                "POST",
                format!("{v}/admin/users/u/tokens"),
                Route::Accounts(A::CreateTokenFor(s("u"))),
            ),
            (
                "GET",
                format!("{v}/admin/orgs"),
                Route::Accounts(A::AdminOrgs),
            ),
            ("GET", format!("{v}/admin/audit"), Route::Accounts(A::Audit)),
            (
                "GET",
                format!("{v}/admin/backup"),
                Route::Maintenance(M::Backup),
            ),
            (
                "GET",
                format!("{v}/admin/check"),
                Route::Maintenance(M::Check),
            ),
            (
                "GET",
                format!("{v}/admin/stats"),
                Route::Maintenance(M::Stats),
            ),
            (
                "GET",
                format!("{v}/admin/manifest"),
                Route::Maintenance(M::Manifest),
            ),
            (
                "POST",
                format!("{v}/admin/export"),
                Route::Maintenance(M::Export),
            ),
            (
                "PUT",
                format!("{v}/admin/import"),
                Route::Maintenance(M::Import),
            ),
            (
                "GET",
                format!("{v}/users/u"),
                Route::Accounts(A::User(s("u"))),
            ),
            (
                "GET",
                format!("{v}/users/u/tokens"),
                Route::Accounts(A::Tokens(s("u"))),
            ),
            (
                "POST",
                format!("{v}/users/u/tokens"),
                Route::Accounts(A::CreateToken(s("u"))),
            ),
            (
                "DELETE",
                format!("{v}/users/u/tokens/t"),
                Route::Accounts(A::RevokeToken(s("u"), s("t"))),
            ),
            ("GET", format!("{v}/orgs"), Route::Accounts(A::Orgs)),
            ("POST", format!("{v}/orgs"), Route::Accounts(A::CreateOrg)),
            (
                "GET",
                format!("{v}/orgs/x"),
                Route::Accounts(A::Org(s("x"))),
            ),
            (
                "PATCH",
                format!("{v}/orgs/x"),
                Route::Accounts(A::EditOrg(s("x"))),
            ),
            (
                "DELETE",
                format!("{v}/orgs/x"),
                Route::Accounts(A::DeleteOrg(s("x"))),
            ),
            (
                "GET",
                format!("{v}/orgs/x/members"),
                Route::Accounts(A::Members(s("x"))),
            ),
            (
                "PUT",
                format!("{v}/orgs/x/members/u"),
                Route::Accounts(A::SetMember(s("x"), s("u"))),
            ),
            (
                "DELETE",
                format!("{v}/orgs/x/members/u"),
                Route::Accounts(A::RemoveMember(s("x"), s("u"))),
            ),
            (
                "GET",
                format!("{v}/orgs/x/teams"),
                Route::Accounts(A::Teams(s("x"))),
            ),
            (
                "POST",
                format!("{v}/orgs/x/teams"),
                Route::Accounts(A::CreateTeam(s("x"))),
            ),
            (
                "GET",
                format!("{v}/teams/7"),
                Route::Accounts(A::Team(s("7"))),
            ),
            (
                "GET",
                format!("{v}/teams/7/members"),
                Route::Accounts(A::TeamMembers(s("7"))),
            ),
            (
                "GET",
                format!("{v}/teams/7/members/u"),
                Route::Accounts(A::TeamMember(s("7"), s("u"))),
            ),
            (
                "GET",
                format!("{v}/orgs/o/members/u"),
                Route::Accounts(A::Member(s("o"), s("u"))),
            ),
            (
                "PUT",
                format!("{v}/teams/7/members/u"),
                Route::Accounts(A::AddTeamMember(s("7"), s("u"))),
            ),
            (
                "DELETE",
                format!("{v}/teams/7/members/u"),
                Route::Accounts(A::RemoveTeamMember(s("7"), s("u"))),
            ),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, &path), want, "{method} {path}");
            // The API reference lists every route (`api/reference.rs`).
            let listed = super::super::reference::listed(method, &path);
            assert!(listed, "{method} {path} is missing from the API reference");
        }
    }

    #[test]
    fn other_methods() {
        use Family::*;
        let cases = [
            ("POST", "/metrics", Route::NotAllowed(Ops, "GET, HEAD")),
            ("PUT", "/readyz", Route::NotAllowed(Ops, "GET, HEAD")),
            (
                "POST",
                "/api/packages/o/generic/n/1/f",
                Route::NotAllowed(Registry, "GET, HEAD, PUT, DELETE"),
            ),
            (
                "GET",
                "/api/packages/o/generic/n/1",
                Route::NotAllowed(Registry, "DELETE"),
            ),
            (
                "POST",
                "/api/v1/version",
                Route::NotAllowed(JsonPublic, "GET, HEAD"),
            ),
            (
                "PUT",
                "/api/v1/packages/o",
                pkgs("o", None, PackageOp::NotAllowed),
            ),
            (
                "PUT",
                "/api/v1/packages/o/generic/n/1",
                pkgs("o", Some("n"), PackageOp::NotAllowed),
            ),
            (
                "POST",
                "/api/v1/packages/o/generic/n/-/latest",
                pkgs("o", Some("n"), PackageOp::NotAllowed),
            ),
            (
                "DELETE",
                "/api/v1/packages/o/generic/n/1/files",
                pkgs("o", Some("n"), PackageOp::NotAllowed),
            ),
            ("POST", "/api/v1/admin/quotas", Route::NotAllowed(Json, "")),
            (
                "GET",
                "/api/v1/admin/quotas/a/b",
                Route::NotAllowed(Json, ""),
            ),
            (
                "PUT",
                "/api/v1/admin/cleanup/run",
                Route::NotAllowed(Json, ""),
            ),
            ("GET", "/api/v1/cleanup/o/run", Route::NotAllowed(Json, "")),
            (
                "POST",
                "/api/v1/cleanup/o/rules/p",
                Route::NotAllowed(Json, ""),
            ),
            // Gitea's account and admin routes answer another method with 404.
            ("DELETE", "/api/v1/user", Route::NotFound(Json)),
            ("POST", "/api/v1/admin/backup", Route::NotFound(Json)),
            ("PATCH", "/api/v1/teams/1", Route::NotFound(Json)),
        ];
        for (method, path, want) in cases {
            assert_eq!(route(method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn no_route() {
        for path in [
            "/a/b",
            "/o/-/packages/npm/n",
            "/api/packages/o/generic/n/1/",
            "/api/packages/o/generic/n/",
            "/api/packages/o/generic/n/1/f/g",
            "/api/packages/o/npm/n/1/f",
            "/api/packages/o/GENERIC/n/1/f",
            "/api/v2/version",
            "/metrics/",
        ] {
            assert_eq!(
                route("GET", path),
                Route::NotFound(Family::Registry),
                "{path}"
            );
        }
        for path in [
            "/api/v1",
            "/api/v1/",
            "/api/v1/packages",
            "/api/v1/nothing",
            "/api/v1/cleanup/o",
            "/api/v1/users/u/tokens/t/x",
        ] {
            assert_eq!(route("GET", path), Route::NotFound(Family::Json), "{path}");
        }
        // Under an owner the permission check comes first; the route answers 404 after it.
        assert_eq!(
            route("GET", "/api/v1/packages/o/npm/n"),
            pkgs("o", Some("n"), PackageOp::NotFound)
        );
        assert_eq!(
            route("GET", "/api/v1/packages/o/generic/n/1/files/x"),
            pkgs("o", Some("n"), PackageOp::NotFound)
        );
    }

    #[test]
    fn pages() {
        let page = |r: PageRoute| Route::Page(r);
        assert_eq!(route("GET", "/"), page(PageRoute::Explore));
        assert_eq!(route("HEAD", "/o"), page(PageRoute::Owner("o".into())));
        assert_eq!(
            route("GET", "/o/-/packages"),
            page(PageRoute::Owner("o".into()))
        );
        assert_eq!(
            route("GET", "/o/-/packages/generic/a%2Fb"),
            page(PageRoute::Package("o".into(), "a/b".into()))
        );
        assert_eq!(
            route("GET", "/o/-/packages/generic/n/1%3C2"),
            page(PageRoute::Version("o".into(), "n".into(), "1<2".into()))
        );
        assert_eq!(
            route("GET", "/-/static/x.css"),
            page(PageRoute::Asset("x.css".into()))
        );
        assert_eq!(
            route("POST", "/o"),
            Route::NotAllowed(Family::Page, READ_METHODS)
        );
        // Not pages: the registry's 404 as before.
        for path in ["/api", "/-", "/%zz", "/o/-/packages/generic/%zz", "/o/x"] {
            assert_eq!(
                route("GET", path),
                Route::NotFound(Family::Registry),
                "{path}"
            );
        }
    }

    /// Literals match as sent; parameters are decoded; one that does not decode (a bad escape,
    /// or not UTF-8) names nothing, in every family.
    #[test]
    fn escapes() {
        assert_eq!(
            route("PUT", "/api/packages/%61/generic/a%2Fb/1%201/f%25"),
            Route::Generic(Generic::Upload(at("a", "a/b", "1 1", "f%")))
        );
        assert_eq!(
            route("GET", "/api/v1/packages/o/GeNeRiC/n%2B"),
            pkgs("o", Some("n+"), PackageOp::Versions(seg("n+")))
        );
        assert_eq!(
            route("GET", "/api/packages/o/%67eneric/n/1/f"),
            Route::NotFound(Family::Registry)
        );
        assert_eq!(
            route("GET", "/api/v1/%75ser"),
            Route::NotFound(Family::Json)
        );
        for bad in ["%zz", "%f", "%ff", "%C3%28", "%"] {
            for method in ["GET", "PUT", "DELETE"] {
                assert_eq!(
                    route(method, &format!("/api/packages/{bad}/generic/n/1/f")),
                    Route::NotFound(Family::Registry)
                );
                assert_eq!(
                    route(method, &format!("/api/packages/o/generic/n/{bad}/f")),
                    Route::NotFound(Family::Registry)
                );
            }
            assert_eq!(
                route("DELETE", &format!("/api/packages/o/generic/n/{bad}")),
                Route::NotFound(Family::Registry)
            );
            for path in [
                format!("/api/v1/packages/{bad}"),
                format!("/api/v1/packages/o/generic/{bad}"),
                format!("/api/v1/packages/o/generic/n/{bad}/files"),
                format!("/api/v1/admin/quotas/{bad}"),
                format!("/api/v1/cleanup/{bad}/rules"),
                format!("/api/v1/users/{bad}"),
                format!("/api/v1/orgs/o/members/{bad}"),
            ] {
                assert_eq!(route("GET", &path), Route::NotFound(Family::Json), "{path}");
            }
        }
    }
}
