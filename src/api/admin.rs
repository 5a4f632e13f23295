//! The JSON API for accounts, shaped like Gitea's so provisioning scripts and client libraries
//! work unchanged: who am I, users (site admins), tokens, organizations, members, teams, and the
//! audit log. Errors and statuses as Gitea's JSON API (403 for a missing permission or scope,
//! 422 for invalid input).

use super::error::{json_response, ApiError};
use super::routes::{AccountRoute, MaintenanceRoute};
use super::v1::{link_header, paging, query_param, time, user_json};
use super::Api;
use crate::auth::{self, Access, Caller};
use crate::dates::parse_rfc3339;
use crate::http::{Request, Response};
use crate::names::Owner;
use crate::store::{
    self, AuditFilter, Created, NewToken, OwnerKind, Page, Role, TeamRecord, TokenOutcome,
    TokenRecord, UserDeleted, UserRecord, Visibility,
};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::time::UNIX_EPOCH;

/// Largest JSON request body accepted.
const MAX_JSON_BODY: u64 = 1 << 20;

type Res = Result<Response, ApiError>;

/// A change's answer: 204, or 404 when there was nothing to change.
fn done(ok: bool, missing: impl FnOnce() -> ApiError) -> Res {
    if ok {
        Ok(Response::new(204))
    } else {
        Err(missing())
    }
}

/// The word for an owner of `kind` in a not-found answer.
fn kind_word(kind: Option<OwnerKind>) -> &'static str {
    match kind {
        Some(OwnerKind::Org) => "organization",
        _ => "user",
    }
}

fn forbidden(msg: &str) -> ApiError {
    ApiError::Forbidden(msg.to_string())
}

fn scope_error(category: &str, access: Access) -> ApiError {
    let word = if access == Access::Write {
        "write"
    } else {
        "read"
    };
    ApiError::Forbidden(format!(
        "token does not have at least one of required scope(s): [{word}:{category}]"
    ))
}

/// The caller, who must be signed in and whose token covers `category`.
pub(super) fn signed_in<'a>(
    caller: &'a Option<Caller>,
    category: &str,
    access: Access,
) -> Result<&'a Caller, ApiError> {
    let c = caller
        .as_ref()
        .ok_or(ApiError::Unauthorized("token is required"))?;
    if !c.scope(category, access) {
        return Err(scope_error(category, access));
    }
    // A token limited to one owner or package acts on packages only, never on accounts.
    if c.limited() {
        return Err(forbidden(
            "this token is limited to one owner's packages and cannot manage accounts",
        ));
    }
    Ok(c)
}

/// A `public-only` token sees only public users and organizations.
fn visible_to(c: &Caller, owner: &UserRecord) -> bool {
    c.sees_under_scope(owner)
}

/// A `public-only` token may not act on a user or organization that is not public (Gitea's
/// `checkTokenPublicOnly`, with its messages); on the admin routes too, where Gitea does not
/// check, since they show and change private accounts.
fn public_target(c: &Caller, owner: &UserRecord) -> Result<(), ApiError> {
    if visible_to(c, owner) {
        return Ok(());
    }
    Err(forbidden(match owner.kind {
        OwnerKind::User => "token scope is limited to public users",
        OwnerKind::Org => "token scope is limited to public orgs",
    }))
}

/// A `public-only` token may create (or make) only public accounts.
fn public_creation(c: &Caller, visibility: Visibility) -> Result<(), ApiError> {
    if c.public_only() && visibility != Visibility::Public {
        return Err(forbidden(
            "a public-only token can only create public users and organizations",
        ));
    }
    Ok(())
}

/// The caller, who must be a site admin with the admin scope.
pub(super) fn site_admin(caller: &Option<Caller>, access: Access) -> Result<&Caller, ApiError> {
    let c = signed_in(caller, "admin", access)?;
    if !c.user.is_admin {
        return Err(forbidden("you must be a site administrator"));
    }
    Ok(c)
}

/// The caller, who must be a site admin acting on the whole registry (backup, check, stats,
/// bundles, quotas, cleanup): a `public-only` token is refused, since these routes show or
/// carry every owner's data, private ones too; `package` adds the package scope a route needs
/// besides `admin` (a bundle carries packages).
pub(super) fn registry_admin(
    caller: &Option<Caller>,
    access: Access,
    package: Option<Access>,
) -> Result<&Caller, ApiError> {
    let c = site_admin(caller, access)?;
    if c.public_only() {
        return Err(forbidden(
            "a public-only token cannot act on the whole registry",
        ));
    }
    if let Some(a) = package {
        if !c.scope("package", a) {
            return Err(scope_error("package", a));
        }
    }
    Ok(c)
}

pub(super) fn read_json(req: &mut Request) -> Result<Map<String, Value>, ApiError> {
    let mut body = Vec::new();
    (&mut req.body)
        .take(MAX_JSON_BODY + 1)
        .read_to_end(&mut body)
        .map_err(|e| ApiError::BadRequest(format!("the request body could not be read: {e}")))?;
    if body.len() as u64 > MAX_JSON_BODY {
        return Err(ApiError::BadRequest("JSON body too large".into()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::Unprocessable("expected a JSON object".into())),
        Err(e) => Err(ApiError::Unprocessable(format!("invalid JSON: {e}"))),
    }
}

fn str_field(m: &Map<String, Value>, k: &str) -> Result<Option<String>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::Unprocessable(format!("{k} must be a string"))),
    }
}

fn bool_field(m: &Map<String, Value>, k: &str) -> Result<Option<bool>, ApiError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::Unprocessable(format!("{k} must be a boolean"))),
    }
}

fn visibility_field(m: &Map<String, Value>) -> Result<Option<Visibility>, ApiError> {
    str_field(m, "visibility")?
        .map(|v| {
            Visibility::parse(&v).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "visibility must be public, limited or private, not {v:?}"
                ))
            })
        })
        .transpose()
}

/// The descriptive fields users and organizations share, as sent in a PATCH (absent: unchanged).
struct Profile {
    email: Option<String>,
    full_name: Option<String>,
    website: Option<String>,
    location: Option<String>,
    description: Option<String>,
    visibility: Option<Visibility>,
}

impl Profile {
    fn from_json(m: &Map<String, Value>) -> Result<Profile, ApiError> {
        Ok(Profile {
            email: str_field(m, "email")?,
            full_name: str_field(m, "full_name")?,
            website: str_field(m, "website")?,
            location: str_field(m, "location")?,
            description: str_field(m, "description")?,
            visibility: visibility_field(m)?,
        })
    }

    fn apply(self, rec: &mut UserRecord) {
        let fields = [
            (self.email, &mut rec.email),
            (self.full_name, &mut rec.full_name),
            (self.website, &mut rec.website),
            (self.location, &mut rec.location),
            (self.description, &mut rec.description),
        ];
        for (new, field) in fields {
            if let Some(v) = new {
                *field = v;
            }
        }
        if let Some(v) = self.visibility {
            rec.visibility = v;
        }
    }
}

fn org_json(base: &str, o: &UserRecord) -> Value {
    json!({
        "id": o.id,
        "name": o.login,
        "username": o.login,
        "full_name": o.full_name,
        "email": o.email,
        "avatar_url": "",
        "description": o.description,
        "website": o.website,
        "location": o.location,
        "visibility": o.visibility.as_str(),
        "repo_admin_change_team_access": false,
        "html_url": format!("{base}/{}", o.login),
    })
}

fn gitea_permission(r: Role) -> &'static str {
    match r {
        Role::Read => "read",
        Role::Write => "write",
        Role::Admin => "owner",
    }
}

fn team_json(base: &str, t: &TeamRecord, org: Option<&UserRecord>) -> Value {
    let perm = gitea_permission(t.permission);
    json!({
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "organization": org.map(|o| org_json(base, o)),
        "includes_all_repositories": true,
        "permission": perm,
        "units": ["repo.packages"],
        "units_map": { "repo.packages": perm },
        "can_create_org_repo": false,
    })
}

fn token_json(t: &TokenRecord, clear: Option<&str>) -> Value {
    json!({
        "id": t.id,
        "name": t.name,
        "sha1": clear.unwrap_or(""),
        "token_last_eight": t.last_eight,
        "scopes": t.scopes,
        "created_at": time(t.created),
        "last_used_at": t.last_used.map(time),
        "owner": t.owner,
        "package": t.package,
        "expires_at": t.expires.map(time),
    })
}

fn paged(
    base: &str,
    path: &str,
    query: &str,
    (page, limit): (u64, u64),
    total: u64,
    items: Vec<Value>,
) -> Response {
    let mut resp = json_response(200, &Value::Array(items))
        .with_header("X-Total-Count", total.to_string())
        .with_header("Access-Control-Expose-Headers", "X-Total-Count, Link");
    if let Some(link) = link_header(base, path, query, page, limit, total) {
        resp = resp.with_header("Link", link);
    }
    resp
}

/// The maintenance routes: site admins only, with the admin scope (and the package scope for
/// the bundle routes, which read or write packages).
pub(super) fn maintenance(
    api: &Api,
    req: &mut Request,
    route: MaintenanceRoute,
    query: &str,
    caller: &Option<Caller>,
) -> Res {
    use MaintenanceRoute as M;
    match route {
        M::Backup => super::ops::backup(api, req, caller),
        M::Check => super::ops::check(api, caller),
        M::Stats => super::ops::stats(api, caller),
        M::Manifest => {
            registry_admin(caller, Access::Read, Some(Access::Read))?;
            super::bundles::manifest(api, query)
        }
        M::Export => {
            registry_admin(caller, Access::Read, Some(Access::Read))?;
            super::bundles::export(api, req)
        }
        M::Import => {
            let c = registry_admin(caller, Access::Write, Some(Access::Write))?;
            super::bundles::import(api, req, &c.user.login)
        }
    }
}

/// The account routes. `path` is the request path, for the paging `Link` header.
pub(super) fn serve(
    api: &Api,
    req: &mut Request,
    route: AccountRoute,
    path: &str,
    query: &str,
    caller: Option<Caller>,
    base: &str,
) -> Res {
    use AccountRoute as A;
    // `Link` names the path decoded, as Gitea's `ctx.Req.URL.Path`.
    let path = path
        .split('/')
        .map(|s| crate::names::percent_decode(s).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/");
    let ctx = Ctx {
        api,
        base,
        query,
        path: &path,
        caller: &caller,
    };
    match &route {
        A::Me => ctx.me(),
        A::MyOrgs => ctx.my_orgs(),
        A::AdminUsers => ctx.list_owners(OwnerKind::User, true),
        A::CreateUser => ctx.create_user(req),
        A::AdminUser(name) => ctx.admin_user(name),
        A::EditUser(name) => ctx.edit_user(req, name),
        A::DeleteUser(name) => ctx.delete_owner(req, name, OwnerKind::User),
        A::CreateOrgFor(name) => ctx.create_org_for(req, name),
        A::CreateTokenFor(name) => ctx.create_token_for(req, name),
        A::AdminOrgs => ctx.list_owners(OwnerKind::Org, true),
        A::Audit => ctx.audit(),
        A::User(name) => ctx.user(name),
        A::Tokens(name) => ctx.tokens(name),
        A::CreateToken(name) => {
            let c = ctx.token_owner(name)?;
            ctx.create_token(req, c, name)
        }
        A::RevokeToken(name, token) => ctx.revoke_token(req, name, token),
        A::Orgs => ctx.list_owners(OwnerKind::Org, false),
        A::CreateOrg => {
            let c = signed_in(&caller, "organization", Access::Write)?;
            let owner = c.user.clone();
            ctx.create_org(req, c, &owner)
        }
        A::Org(org) => {
            let o = ctx.readable_org(org)?;
            Ok(json_response(200, &org_json(base, &o)))
        }
        A::EditOrg(org) => ctx.edit_org(req, org),
        A::DeleteOrg(org) => {
            ctx.org_admin(org)?;
            ctx.delete_owner(req, org, OwnerKind::Org)
        }
        A::Members(org) => ctx.members(org),
        A::SetMember(org, user) => ctx.set_member(req, org, user),
        A::RemoveMember(org, user) => ctx.remove_member(req, org, user),
        A::Teams(org) => ctx.teams(org),
        A::CreateTeam(org) => ctx.create_team(req, org),
        A::Team(id) => {
            let (team, org) = ctx.team(id)?;
            ctx.readable_org(&org.login)?;
            Ok(json_response(200, &team_json(base, &team, Some(&org))))
        }
        A::TeamMembers(id) => ctx.team_members(id),
        A::TeamMember(id, user) => ctx.team_member(id, user),
        A::Member(org, user) => ctx.member(org, user),
        A::AddTeamMember(id, user) | A::RemoveTeamMember(id, user) => {
            ctx.set_team_member(req, id, user)
        }
    }
}

struct Ctx<'a> {
    api: &'a Api,
    base: &'a str,
    query: &'a str,
    path: &'a str,
    caller: &'a Option<Caller>,
}

impl Ctx<'_> {
    /// The page of `items` (a whole listing held in memory) the query asks for, with the
    /// paging headers.
    fn paged_all(&self, items: Vec<Value>) -> Response {
        let (page, limit) = paging(self.query);
        let total = items.len() as u64;
        let items = items
            .into_iter()
            .skip(store::page_offset(page, limit))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        paged(
            self.base,
            self.path,
            self.query,
            (page, limit),
            total,
            items,
        )
    }

    fn me(&self) -> Res {
        // Who am I: any signed-in caller, including a limited token, may ask.
        let c = self
            .caller
            .as_ref()
            .ok_or(ApiError::Unauthorized("token is required"))?;
        if !c.scope("user", Access::Read) {
            return Err(scope_error("user", Access::Read));
        }
        Ok(json_response(
            200,
            &user_json(self.base, &c.user, Some(&c.user)),
        ))
    }

    fn my_orgs(&self) -> Res {
        let c = signed_in(self.caller, "organization", Access::Read)?;
        let mut orgs = self.api.store.orgs_of(&c.user.login)?;
        orgs.retain(|o| visible_to(c, o));
        let items = orgs
            .iter()
            .map(|o| org_json(self.base, o))
            .collect::<Vec<_>>();
        Ok(self.paged_all(items))
    }

    fn admin_user(&self, name: &str) -> Res {
        let c = site_admin(self.caller, Access::Read)?;
        let u = self.owner(name, Some(OwnerKind::User))?;
        public_target(c, &u)?;
        Ok(json_response(200, &user_json(self.base, &u, Some(&c.user))))
    }

    fn create_org_for(&self, req: &mut Request, name: &str) -> Res {
        let c = site_admin(self.caller, Access::Write)?;
        let owner = self.owner(name, Some(OwnerKind::User))?;
        public_target(c, &owner)?;
        self.create_org(req, c, &owner)
    }

    fn create_token_for(&self, req: &mut Request, name: &str) -> Res {
        let c = site_admin(self.caller, Access::Write)?;
        if let Some(u) = self.api.store.get_user(name)? {
            public_target(c, &u)?;
        }
        self.create_token(req, c, name)
    }

    fn user(&self, name: &str) -> Res {
        let c = signed_in(self.caller, "user", Access::Read)?;
        let u = self.owner(name, None)?;
        // Gitea's `GetInfo`: a profile the caller may not see is a user that does not exist.
        if !auth::profile_visible(&self.api.store, Some(&c.user), &u)? {
            return Err(ApiError::no_account("user", name));
        }
        if !visible_to(c, &u) {
            return Err(forbidden("a public-only token cannot see private accounts"));
        }
        Ok(json_response(200, &user_json(self.base, &u, Some(&c.user))))
    }

    fn tokens(&self, name: &str) -> Res {
        self.token_owner(name)?;
        let tokens = self
            .api
            .store
            .list_tokens(name)?
            .ok_or_else(|| ApiError::no_account("user", name))?;
        let items = tokens
            .iter()
            .map(|t| token_json(t, None))
            .collect::<Vec<_>>();
        Ok(self.paged_all(items))
    }

    fn revoke_token(&self, req: &mut Request, name: &str, token: &str) -> Res {
        self.token_owner(name)?;
        let revoked = self.api.store.revoke_token(name, token)?;
        let outcome = if revoked.is_some() { "ok" } else { "not found" };
        self.audit_event(
            req,
            "token.revoke",
            name,
            &format!("{name}/{token}"),
            outcome,
        );
        revoked.map(|_| Response::new(204)).ok_or_else(|| {
            ApiError::Missing(format!(
                "access token does not exist [user: {name}, name: {token}]"
            ))
        })
    }

    fn members(&self, org: &str) -> Res {
        let o = self.readable_org(org)?;
        let mut items = Vec::new();
        for (u, role) in self.visible_members(&o)? {
            let mut v = user_json(self.base, &u, self.viewer());
            v["role"] = json!(role.as_str());
            items.push(v);
        }
        Ok(self.paged_all(items))
    }

    fn set_member(&self, req: &mut Request, org: &str, user: &str) -> Res {
        self.org_admin(org)?;
        let body = read_json(req)?;
        let role = match str_field(&body, "role")? {
            None => Role::Read,
            Some(r) => Role::parse(&r).ok_or_else(|| {
                ApiError::Unprocessable(format!("role must be read, write or admin, not {r:?}"))
            })?,
        };
        self.owner(user, Some(OwnerKind::User))?;
        let ok = self.api.store.set_member(org, user, role)?;
        self.audit_event(
            req,
            "member.set",
            org,
            &format!("{user}={}", role.as_str()),
            if ok { "ok" } else { "not found" },
        );
        done(ok, || ApiError::no_account("user", user))
    }

    fn remove_member(&self, req: &mut Request, org: &str, user: &str) -> Res {
        self.org_admin(org)?;
        let ok = self.api.store.remove_member(org, user)?;
        self.audit_event(
            req,
            "member.remove",
            org,
            user,
            if ok { "ok" } else { "not found" },
        );
        done(ok, || {
            ApiError::Missing(format!("user {user} is not a member of organization {org}"))
        })
    }

    fn teams(&self, org: &str) -> Res {
        let o = self.readable_org(org)?;
        let teams = self.api.store.list_teams(&o.login)?;
        let items = teams
            .iter()
            .map(|t| team_json(self.base, t, Some(&o)))
            .collect::<Vec<_>>();
        Ok(self.paged_all(items))
    }

    fn create_team(&self, req: &mut Request, org: &str) -> Res {
        let o = self.org_admin(org)?;
        let body = read_json(req)?;
        let name = str_field(&body, "name")?
            .filter(|n| !n.trim().is_empty() && n.len() <= 255)
            .ok_or_else(|| ApiError::Unprocessable("name is required".into()))?;
        // Gitea ≥ 1.20 scripts send the packages unit's level in `units_map`.
        let from_units = body
            .get("units_map")
            .and_then(|m| m.get("repo.packages"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let permission = match from_units.or(str_field(&body, "permission")?) {
            None => Role::Read,
            Some(p) if p == "none" => Role::Read,
            Some(p) => Role::parse(&p)
                .ok_or_else(|| ApiError::Unprocessable(format!("invalid permission {p:?}")))?,
        };
        let description = str_field(&body, "description")?.unwrap_or_default();
        let team = self
            .api
            .store
            .create_team(&o.login, &name, &description, permission)?
            // The organization exists (`org_admin`): the name is taken.
            .ok_or_else(|| ApiError::Unprocessable("team already exists".into()))?;
        self.audit_event(req, "team.create", &o.login, &name, "ok");
        Ok(json_response(201, &team_json(self.base, &team, Some(&o))))
    }

    fn team_members(&self, id: &str) -> Res {
        let (team, org) = self.team(id)?;
        self.readable_org(&org.login)?;
        let mut items = Vec::new();
        for (u, _) in self.visible_members(&org)? {
            if self.in_team(team.id, &u.login)? {
                items.push(user_json(self.base, &u, self.viewer()));
            }
        }
        Ok(self.paged_all(items))
    }

    /// Gitea's `GetTeamMember`: the user when it is in the team and visible to the caller.
    fn team_member(&self, id: &str, user: &str) -> Res {
        let (team, org) = self.team(id)?;
        self.readable_org(&org.login)?;
        let not_member = || {
            ApiError::Missing(format!(
                "user {user} is not a member of team {} [id: {}]",
                team.name, team.id
            ))
        };
        let key = store::fold_case(user);
        let found = self
            .visible_members(&org)?
            .into_iter()
            .find(|(u, _)| u.key() == key);
        match found {
            Some((u, _)) if self.in_team(team.id, &u.login)? => {
                Ok(json_response(200, &user_json(self.base, &u, self.viewer())))
            }
            _ => Err(not_member()),
        }
    }

    /// Gitea's `IsMember`: 204 when the user is a member the caller may see, else 404.
    fn member(&self, org: &str, user: &str) -> Res {
        let o = self.readable_org(org)?;
        let key = store::fold_case(user);
        let found = self
            .visible_members(&o)?
            .into_iter()
            .any(|(u, _)| u.key() == key);
        done(found, || {
            ApiError::Missing(format!(
                "user {user} is not a member of organization {}",
                o.login
            ))
        })
    }

    fn set_team_member(&self, req: &mut Request, id: &str, user: &str) -> Res {
        let (team, org) = self.team(id)?;
        self.org_admin(&org.login)?;
        let add = req.method == "PUT";
        self.owner(user, Some(OwnerKind::User))?;
        let ok = self.api.store.set_team_member(team.id, user, add)?;
        let action = if add {
            "team.member_add"
        } else {
            "team.member_remove"
        };
        self.audit_event(
            req,
            action,
            &org.login,
            &format!("{}:{user}", team.name),
            if ok { "ok" } else { "not found" },
        );
        done(ok, || {
            ApiError::Missing(format!(
                "user {user} is not a member of team {} [id: {}]",
                team.name, team.id
            ))
        })
    }

    fn actor(&self) -> String {
        self.caller
            .as_ref()
            .map(|c| c.user.login.clone())
            .unwrap_or_default()
    }

    fn audit_event(&self, req: &Request, action: &str, owner: &str, target: &str, outcome: &str) {
        self.api
            .audit(req, &self.actor(), action, owner, target, outcome);
    }

    /// An owner by name, of `kind` when given; 404 otherwise.
    fn owner(&self, name: &str, kind: Option<OwnerKind>) -> Result<UserRecord, ApiError> {
        self.api
            .store
            .get_user(name)?
            .filter(|u| kind.is_none_or(|k| u.kind == k))
            .ok_or_else(|| ApiError::no_account(kind_word(kind), name))
    }

    /// An organization the caller may see (404 when it may not, as Gitea hides private orgs).
    fn readable_org(&self, org: &str) -> Result<UserRecord, ApiError> {
        let c = signed_in(self.caller, "organization", Access::Read)?;
        let o = self.owner(org, Some(OwnerKind::Org))?;
        if auth::access_level(&self.api.store, Some(&c.user), &o)?.is_none() {
            return Err(ApiError::no_account("organization", org));
        }
        if !visible_to(c, &o) {
            return Err(forbidden(
                "a public-only token cannot see private organizations",
            ));
        }
        Ok(o)
    }

    /// An organization the caller administers (its admin role, or a site admin).
    fn org_admin(&self, org: &str) -> Result<UserRecord, ApiError> {
        let c = signed_in(self.caller, "organization", Access::Write)?;
        let o = self.owner(org, Some(OwnerKind::Org))?;
        // An organization the caller may not see is a missing one, whatever the token.
        let level = auth::access_level(&self.api.store, Some(&c.user), &o)?;
        if level.is_none() {
            return Err(ApiError::no_account("organization", org));
        }
        if !visible_to(c, &o) {
            return Err(forbidden(
                "a public-only token cannot manage private organizations",
            ));
        }
        match level {
            Some(Role::Admin) => Ok(o),
            _ => Err(forbidden(
                "you must be an administrator of this organization",
            )),
        }
    }

    /// The signed-in user the answer is for, who decides which fields of a User object show.
    fn viewer(&self) -> Option<&UserRecord> {
        self.caller.as_ref().map(|c| &c.user)
    }

    /// The members of `org` whose profile the caller may see (a private user only to those
    /// sharing an organization with it, so to every fellow member), with their roles.
    fn visible_members(&self, org: &UserRecord) -> Result<Vec<(UserRecord, Role)>, ApiError> {
        // A fellow member (or a site admin) sees every member; only others need asking.
        let sees_all = match self.viewer() {
            Some(v) => v.is_admin || self.api.store.role_of(&org.login, &v.login)?.is_some(),
            None => false,
        };
        let mut out = Vec::new();
        for (u, role) in self.api.store.list_members(&org.login)? {
            if self
                .caller
                .as_ref()
                .is_some_and(|c| !c.sees_under_scope(&u))
            {
                continue;
            }
            if sees_all || auth::profile_visible(&self.api.store, self.viewer(), &u)? {
                out.push((u, role));
            }
        }
        Ok(out)
    }

    fn team(&self, id: &str) -> Result<(TeamRecord, UserRecord), ApiError> {
        let missing = || ApiError::Missing(format!("team does not exist [id: {id}]"));
        let n: u64 = id.parse().map_err(|_| missing())?;
        let team = self.api.store.get_team(n)?.ok_or_else(missing)?;
        let org = self.owner(&team.org, Some(OwnerKind::Org))?;
        Ok((team, org))
    }

    fn in_team(&self, team: u64, user: &str) -> Result<bool, ApiError> {
        Ok(self.api.store.team_has_member(team, user)?)
    }

    /// Token routes: as Gitea, the user itself signed in with its password (Basic), or a site
    /// admin with the admin scope (a `public-only` one only for public users), whose token
    /// `create_token` then holds to its own scopes.
    fn token_owner(&self, name: &str) -> Result<&Caller, ApiError> {
        let c = self
            .caller
            .as_ref()
            .ok_or(ApiError::Unauthorized("basic authentication is required"))?;
        let own = c.user.key() == store::fold_case(name);
        if own && c.token.is_none() {
            return Ok(c);
        }
        if c.user.is_admin && c.scope("admin", Access::Write) && !c.limited() {
            if let Some(u) = self.api.store.get_user(name)? {
                public_target(c, &u)?;
            }
            return Ok(c);
        }
        if own {
            return Err(ApiError::Unauthorized(
                "basic authentication with a password is required",
            ));
        }
        Err(forbidden("you may only manage your own tokens"))
    }

    /// Creates a token for `user` on behalf of `c`, who may be allowed to create tokens there
    /// (`token_owner`, or a site admin on the admin route) but never one broader than its own
    /// credential: scopes it does not hold, or a life beyond its own expiry (issue 9).
    fn create_token(&self, req: &mut Request, c: &Caller, user: &str) -> Res {
        let body = read_json(req)?;
        let name = str_field(&body, "name")?
            .filter(|n| !n.trim().is_empty() && n.len() <= 255)
            .ok_or_else(|| ApiError::Unprocessable("name is required".into()))?;
        let scopes: Vec<String> = match body.get("scopes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::Unprocessable("scopes must be strings".into()))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ApiError::Unprocessable("scopes must be a list".into())),
        };
        if scopes.is_empty() {
            return Err(ApiError::BadRequest(
                "access token must have a scope".into(),
            ));
        }
        for s in &scopes {
            if !auth::valid_scope(s) {
                return Err(ApiError::BadRequest(format!(
                    "invalid access token scope: {s}"
                )));
            }
        }
        let owner = str_field(&body, "owner")?;
        if let Some(o) = &owner {
            // An owner the caller may not see is as missing, so that tokens tell no names.
            let visible = match self.api.store.get_user(o)? {
                Some(rec) => auth::profile_visible(&self.api.store, Some(&c.user), &rec)?,
                None => false,
            };
            if !visible {
                return Err(ApiError::Unprocessable(format!("no owner named {o:?}")));
            }
        }
        let package = str_field(&body, "package")?;
        if package.is_some() && owner.is_none() {
            return Err(ApiError::Unprocessable(
                "a package-limited token needs its owner too".into(),
            ));
        }
        let expires = match body.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(
                parse_rfc3339(s)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .ok_or_else(|| {
                        ApiError::Unprocessable(format!("expires_at is not an RFC 3339 time: {s}"))
                    })?,
            ),
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
                ApiError::Unprocessable("expires_at must be a positive unix time".into())
            })?),
            Some(_) => return Err(ApiError::Unprocessable("invalid expires_at".into())),
        };
        if expires.is_some_and(|e| e > crate::dates::MAX_RFC3339_SECS) {
            return Err(ApiError::Unprocessable(
                "expires_at must be before the year 10000".into(),
            ));
        }
        if !c.covers(&scopes) {
            return Err(forbidden(
                "a token cannot create a token with scopes it does not have itself: \
                 sign in with a password (Basic) or use a token that has them",
            ));
        }
        // A token cannot extend its own life through a new one: without an expiry the new
        // token expires with it.
        let expires = match (c.token.as_ref().and_then(|t| t.expires), expires) {
            (Some(limit), None) => Some(limit),
            (Some(limit), Some(e)) if e > limit => {
                return Err(forbidden(
                    "a token cannot create a token that expires after it does",
                ))
            }
            (_, e) => e,
        };
        let (outcome, rec) = self.api.store.create_token(NewToken {
            user: user.to_string(),
            name: name.clone(),
            scopes,
            owner,
            package,
            expires,
            given: None,
        })?;
        let result = match (outcome, rec) {
            (TokenOutcome::Created(token), Some(rec)) => {
                Ok(json_response(201, &token_json(&rec, Some(&token))))
            }
            (TokenOutcome::NoSuchUser, _) => Err(ApiError::no_account("user", user)),
            (TokenOutcome::NameTaken, _) => Err(ApiError::Unprocessable(
                "access token name has been used already".into(),
            )),
            _ => Err(ApiError::Internal("token created without a record".into())),
        };
        let outcome = if result.is_ok() { "ok" } else { "refused" };
        self.audit_event(
            req,
            "token.create",
            user,
            &format!("{user}/{name}"),
            outcome,
        );
        result
    }

    fn list_owners(&self, kind: OwnerKind, admin_route: bool) -> Res {
        let c = if admin_route {
            site_admin(self.caller, Access::Read)?
        } else {
            signed_in(self.caller, "organization", Access::Read)?
        };
        let (page, limit) = paging(self.query);
        let render = |u: &UserRecord| match kind {
            OwnerKind::User => user_json(self.base, u, Some(&c.user)),
            OwnerKind::Org => org_json(self.base, u),
        };
        let items: Vec<Value>;
        let total;
        if admin_route && !c.public_only() {
            let listing: Page<UserRecord> = self.api.store.list_owners(kind, page, limit)?;
            total = listing.total;
            items = listing.items.iter().map(render).collect();
        } else {
            // Owners the caller may see: a public-only token only public ones, and off the
            // admin route only those the caller may read.
            let all = self.api.store.list_owners(kind, 1, u64::MAX)?;
            let mut visible = Vec::new();
            for o in all.items {
                if visible_to(c, &o)
                    && (admin_route
                        || auth::access_level(&self.api.store, Some(&c.user), &o)?.is_some())
                {
                    visible.push(o);
                }
            }
            total = visible.len() as u64;
            items = visible
                .iter()
                .skip(store::page_offset(page, limit))
                .take(limit as usize)
                .map(render)
                .collect();
        }
        Ok(paged(
            self.base,
            self.path,
            self.query,
            (page, limit),
            total,
            items,
        ))
    }

    fn create_user(&self, req: &mut Request) -> Res {
        let c = site_admin(self.caller, Access::Write)?;
        let body = read_json(req)?;
        let login = str_field(&body, "username")?
            .ok_or_else(|| ApiError::Unprocessable("username is required".into()))?;
        let Some(login) = Owner::parse(&login) else {
            return Err(ApiError::Unprocessable(format!(
                "invalid username {login:?}"
            )));
        };
        let mut rec = UserRecord::new(&login, OwnerKind::User);
        rec.email = str_field(&body, "email")?.unwrap_or_default();
        rec.full_name = str_field(&body, "full_name")?.unwrap_or_default();
        if let Some(v) = visibility_field(&body)? {
            rec.visibility = v;
        }
        public_creation(c, rec.visibility)?;
        if let Some(pw) = str_field(&body, "password")? {
            // A password is an unscoped sign-in (then made an org admin, say): as for a reset,
            // only a credential that covers everything may hand one out.
            if !c.covers(&["all".to_string()]) {
                return Err(forbidden(
                    "creating a user with a password needs a password sign-in \
                     or a token with the all scope",
                ));
            }
            if pw.is_empty() {
                return Err(ApiError::Unprocessable("password must not be empty".into()));
            }
            rec.password =
                Some(auth::hash_password(&pw).map_err(|e| ApiError::Internal(e.to_string()))?);
        }
        match self.api.store.create_owner(rec)? {
            Created::Done(_) => {
                self.audit_event(req, "user.create", &login, &login, "ok");
                let u = self.owner(&login, Some(OwnerKind::User))?;
                Ok(json_response(201, &user_json(self.base, &u, self.viewer())))
            }
            Created::NameTaken => Err(ApiError::Unprocessable("user already exists".into())),
        }
    }

    fn edit_user(&self, req: &mut Request, name: &str) -> Res {
        let c = site_admin(self.caller, Access::Write)?;
        let target = self.owner(name, Some(OwnerKind::User))?;
        public_target(c, &target)?;
        let body = read_json(req)?;
        // A new password or admin flag hands out everything an unscoped sign-in can do, so it
        // needs a credential that covers everything (issue 9: `write:admin` reset passwords).
        let sets_password = matches!(body.get("password"), Some(Value::String(p)) if !p.is_empty());
        if (sets_password || body.contains_key("admin")) && !c.covers(&["all".to_string()]) {
            return Err(forbidden(
                "changing a password or the admin flag needs a password sign-in \
                 or a token with the all scope",
            ));
        }
        let profile = Profile::from_json(&body)?;
        if let Some(v) = profile.visibility {
            public_creation(c, v)?;
        }
        let active = bool_field(&body, "active")?;
        let admin = bool_field(&body, "admin")?;
        let prohibit = bool_field(&body, "prohibit_login")?;
        let password = match str_field(&body, "password")? {
            Some(pw) if !pw.is_empty() => {
                Some(auth::hash_password(&pw).map_err(|e| ApiError::Internal(e.to_string()))?)
            }
            _ => None,
        };
        let updated = self.api.store.update_owner(name, move |u| {
            profile.apply(u);
            if let Some(v) = active {
                u.active = v;
            }
            if prohibit == Some(true) {
                u.active = false;
            }
            if let Some(v) = admin {
                u.is_admin = v;
            }
            if password.is_some() {
                u.password = password;
            }
        })?;
        let u = updated.ok_or_else(|| ApiError::no_account("user", name))?;
        let what: Vec<&str> = [
            "email",
            "full_name",
            "active",
            "admin",
            "prohibit_login",
            "visibility",
            "password",
        ]
        .into_iter()
        .filter(|k| body.contains_key(*k))
        .collect();
        self.audit_event(req, "user.update", name, &what.join(","), "ok");
        Ok(json_response(200, &user_json(self.base, &u, self.viewer())))
    }

    fn delete_owner(&self, req: &mut Request, name: &str, kind: OwnerKind) -> Res {
        if kind == OwnerKind::User {
            site_admin(self.caller, Access::Write)?;
        }
        let o = self.owner(name, Some(kind))?;
        if let Some(c) = self.caller {
            public_target(c, &o)?;
        }
        if self
            .caller
            .as_ref()
            .is_some_and(|c| c.user.key() == o.key())
        {
            return Err(ApiError::Unprocessable("you cannot delete yourself".into()));
        }
        let purge = query_param(self.query, "purge").as_deref() == Some("true");
        // Purging deletes the owner's packages: that needs the package scope as well.
        if let Some(c) = self.caller.as_ref().filter(|_| purge) {
            if !c.scope("package", Access::Write) {
                return Err(scope_error("package", Access::Write));
            }
        }
        let action = if kind == OwnerKind::User {
            "user.delete"
        } else {
            "org.delete"
        };
        match self.api.store.delete_owner(name, purge)? {
            UserDeleted::Done => {
                self.audit_event(req, action, name, name, "ok");
                Ok(Response::new(204))
            }
            UserDeleted::NotFound => Err(ApiError::no_account(kind_word(Some(kind)), name)),
            UserDeleted::OwnsPackages => Err(ApiError::Unprocessable(
                "it still owns packages: delete them first, or add ?purge=true".into(),
            )),
        }
    }

    /// Creates an organization owned by `owner` (its admin, through an "Owners" team as Gitea).
    fn create_org(&self, req: &mut Request, c: &Caller, owner: &UserRecord) -> Res {
        let body = read_json(req)?;
        let name = str_field(&body, "username")?
            .or(str_field(&body, "name")?)
            .ok_or_else(|| ApiError::Unprocessable("username is required".into()))?;
        let Some(name) = Owner::parse(&name) else {
            return Err(ApiError::Unprocessable(format!(
                "invalid organization name {name:?}"
            )));
        };
        let mut rec = UserRecord::new(&name, OwnerKind::Org);
        rec.full_name = str_field(&body, "full_name")?.unwrap_or_default();
        rec.email = str_field(&body, "email")?.unwrap_or_default();
        rec.description = str_field(&body, "description")?.unwrap_or_default();
        rec.website = str_field(&body, "website")?.unwrap_or_default();
        rec.location = str_field(&body, "location")?.unwrap_or_default();
        if let Some(v) = visibility_field(&body)? {
            rec.visibility = v;
        }
        public_creation(c, rec.visibility)?;
        match self.api.store.create_owner(rec)? {
            Created::NameTaken => {
                return Err(ApiError::Unprocessable("user already exists".into()))
            }
            Created::Done(_) => {}
        }
        if let Some(team) = self
            .api
            .store
            .create_team(&name, "Owners", "", Role::Admin)?
        {
            self.api
                .store
                .set_team_member(team.id, &owner.login, true)?;
        }
        self.audit_event(req, "org.create", &name, &owner.login, "ok");
        let o = self.owner(&name, Some(OwnerKind::Org))?;
        Ok(json_response(201, &org_json(self.base, &o)))
    }

    fn edit_org(&self, req: &mut Request, org: &str) -> Res {
        self.org_admin(org)?;
        let body = read_json(req)?;
        let profile = Profile::from_json(&body)?;
        if let (Some(c), Some(v)) = (self.caller, profile.visibility) {
            public_creation(c, v)?;
        }
        let visibility = profile.visibility;
        let updated = self
            .api
            .store
            .update_owner(org, move |o| profile.apply(o))?;
        let o = updated.ok_or_else(|| ApiError::no_account("organization", org))?;
        let target = visibility
            .map(|v| format!("visibility={}", v.as_str()))
            .unwrap_or_default();
        self.audit_event(req, "org.update", org, &target, "ok");
        Ok(json_response(200, &org_json(self.base, &o)))
    }

    fn audit(&self) -> Res {
        // The log names every owner's packages, private ones too: not for public-only tokens.
        registry_admin(self.caller, Access::Read, None)?;
        let (page, limit) = paging(self.query);
        let filter = AuditFilter {
            owner: query_param(self.query, "owner").filter(|s| !s.is_empty()),
            action: query_param(self.query, "action").filter(|s| !s.is_empty()),
            actor: query_param(self.query, "actor").filter(|s| !s.is_empty()),
        };
        let listing = self.api.store.list_audit(&filter, page, limit)?;
        let items = listing
            .items
            .iter()
            .map(|a| {
                json!({
                    "time": time(a.time),
                    "actor": a.actor,
                    "addr": a.addr,
                    "action": a.action,
                    "owner": a.owner,
                    "target": a.target,
                    "outcome": a.outcome,
                })
            })
            .collect();
        Ok(paged(
            self.base,
            self.path,
            self.query,
            (page, limit),
            listing.total,
            items,
        ))
    }
}
