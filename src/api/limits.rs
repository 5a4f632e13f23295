//! JSON endpoints for quotas and cleanup rules (README "Quotas", "Cleanup"):
//!
//! - `GET /api/v1/admin/quotas` (site admins): every owner that stores something or has an
//!   override; `GET|PUT|DELETE /api/v1/admin/quotas/{owner}`: one owner (site admins; the
//!   owner's admins may GET their own limits and usage).
//! - `GET /api/v1/cleanup/{owner}/rules`, `PUT|DELETE /api/v1/cleanup/{owner}/rules/{package}`
//!   (`*`: all packages), `POST /api/v1/cleanup/{owner}/run[?dry_run=true]`: site admins and
//!   the owner's admins (the user itself, an organization's admins).
//! - `GET /api/v1/admin/cleanup/rules`, `POST /api/v1/admin/cleanup/run[?dry_run=true]`: every
//!   owner (site admins).
//!
//! JSON errors as the rest of `/api/v1`; a bad pattern or value is 422 (a pattern that would
//! compile too big too). One cleanup run at a time: a run asked for while another is in
//! progress is 409 with `Retry-After`, so runs never occupy more than one request worker.

use super::admin::{read_json, registry_admin, signed_in};
use super::error::{json_response, ApiError};
use super::routes::LimitsRoute;
use super::v1::query_param;
use super::Api;
use crate::auth::{self, Access, Caller};
use crate::http::{Request, Response};
use crate::names::PackageName;
use crate::store::InvalidRule;
use crate::store::{
    CleanupReport, CleanupRule, Limit, OwnerQuota, QuotaRecord, Removal, Role, RuleEntry,
    SkippedRule, UserRecord,
};
use serde_json::{json, Map, Value};
use std::fmt;

type Res = Result<Response, ApiError>;

/// The package segment that names "all packages of the owner".
pub const ALL_PACKAGES: &str = "*";

/// Answers one quota or cleanup route.
pub(super) fn serve(
    api: &Api,
    req: &mut Request,
    route: LimitsRoute,
    query: &str,
    caller: &Option<Caller>,
) -> Res {
    use LimitsRoute as L;
    let dry_run = query_param(query, "dry_run").is_some_and(|v| v == "true" || v == "1");
    match route {
        L::Quotas => {
            registry_admin(caller, Access::Read, None)?;
            let all = api.store.quotas()?;
            Ok(json_response(
                200,
                &Value::Array(all.iter().map(quota_json).collect()),
            ))
        }
        L::Quota(owner) => {
            // A site admin's admin-scoped token reads any owner; owners read their own.
            if registry_admin(caller, Access::Read, None).is_err() {
                owner_admin(api, caller, &owner, Access::Read)?;
            }
            let q = api
                .store
                .owner_quota(&owner)?
                .ok_or_else(|| ApiError::no_account("owner", &owner))?;
            Ok(json_response(200, &quota_json(&q)))
        }
        L::SetQuota(owner) => {
            registry_admin(caller, Access::Write, None)?;
            let body = read_json(req)?;
            let rec = quota_from_json(&body).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
            if !api.store.set_quota(&owner, rec)? {
                return Err(ApiError::no_account("owner", &owner));
            }
            audit(api, req, caller, "quota.set", &owner, "");
            let q = api
                .store
                .owner_quota(&owner)?
                .ok_or_else(|| ApiError::no_account("owner", &owner))?;
            Ok(json_response(200, &quota_json(&q)))
        }
        L::ClearQuota(owner) => {
            registry_admin(caller, Access::Write, None)?;
            if !api.store.set_quota(&owner, QuotaRecord::default())? {
                return Err(ApiError::no_account("owner", &owner));
            }
            audit(api, req, caller, "quota.clear", &owner, "");
            Ok(Response::new(204))
        }
        L::AllRules => {
            registry_admin(caller, Access::Read, None)?;
            let rules = api.store.cleanup_rules(None)?;
            Ok(json_response(
                200,
                &Value::Array(rules.iter().map(rule_json).collect()),
            ))
        }
        L::RunAll => {
            // A real run deletes packages: it needs the package scope too (a dry run reads).
            let package = if dry_run { Access::Read } else { Access::Write };
            registry_admin(caller, Access::Write, Some(package))?;
            run(api, req, caller, None, dry_run)
        }
        L::Rules(owner) => {
            let (_, o) = owner_admin(api, caller, &owner, Access::Read)?;
            let rules = api.store.cleanup_rules(Some(&o.login))?;
            Ok(json_response(
                200,
                &Value::Array(rules.iter().map(rule_json).collect()),
            ))
        }
        L::SetRule(owner, package) => set_rule(api, req, caller, &owner, &package),
        L::RemoveRule(owner, package) => {
            let (_, o) = owner_admin(api, caller, &owner, Access::Write)?;
            let package = package_of(&package)?;
            if !api
                .store
                .remove_cleanup_rule(&o.login, package.as_deref())?
            {
                let target = package.as_deref().unwrap_or(ALL_PACKAGES);
                return Err(ApiError::Missing(format!(
                    "cleanup rule does not exist [owner: {}, package: {target}]",
                    o.login
                )));
            }
            let target = package.as_deref().unwrap_or(ALL_PACKAGES);
            audit(api, req, caller, "cleanup.rule_remove", &o.login, target);
            Ok(Response::new(204))
        }
        L::Run(owner) => {
            let (_, o) = owner_admin(api, caller, &owner, Access::Write)?;
            run(api, req, caller, Some(&o.login), dry_run)
        }
    }
}

/// `PUT /cleanup/{owner}/rules/{package}`.
fn set_rule(
    api: &Api,
    req: &mut Request,
    caller: &Option<Caller>,
    owner: &str,
    package: &str,
) -> Res {
    let (_, o) = owner_admin(api, caller, owner, Access::Write)?;
    let package = package_of(package)?;
    let body = read_json(req)?;
    let rule = rule_from_json(&body).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    match api
        .store
        .set_cleanup_rule(&o.login, package.as_ref(), rule.clone())?
    {
        Err(e) => return Err(ApiError::Unprocessable(e.to_string())),
        Ok(false) => return Err(ApiError::no_account("owner", &o.login)),
        Ok(true) => {}
    }
    let target = package.as_deref().unwrap_or(ALL_PACKAGES);
    audit(api, req, caller, "cleanup.rule_set", &o.login, target);
    let entry = RuleEntry {
        owner: crate::store::fold_case(&o.login),
        package: package.map(|p| crate::store::fold_case(&p)),
        rule,
    };
    Ok(json_response(200, &rule_json(&entry)))
}

fn run(
    api: &Api,
    req: &Request,
    caller: &Option<Caller>,
    owner: Option<&str>,
    dry_run: bool,
) -> Res {
    let Some(report) = api
        .store
        .try_run_cleanup(owner, dry_run, crate::store::now())?
    else {
        return Err(ApiError::Busy(
            "a cleanup run is in progress; try again when it has finished".into(),
        ));
    };
    if !dry_run {
        let target = format!("{} versions", report.removed.len());
        audit(
            api,
            req,
            caller,
            "cleanup.run",
            owner.unwrap_or(""),
            &target,
        );
    }
    Ok(json_response(200, &cleanup_report_json(&report, dry_run)))
}

fn audit(
    api: &Api,
    req: &Request,
    caller: &Option<Caller>,
    action: &str,
    owner: &str,
    target: &str,
) {
    let actor = caller
        .as_ref()
        .map(|c| c.user.login.clone())
        .unwrap_or_default();
    api.audit(req, &actor, action, owner, target, "ok");
}

/// The owner, which the caller administers (itself, an organization it is an admin of, or
/// anything for a site admin). An owner the caller cannot see is 404.
fn owner_admin<'a>(
    api: &Api,
    caller: &'a Option<Caller>,
    owner: &str,
    access: Access,
) -> Result<(&'a Caller, UserRecord), ApiError> {
    let c = signed_in(caller, "package", access)?;
    let missing = || ApiError::no_account("owner", owner);
    let o = api.store.get_user(owner)?.ok_or_else(missing)?;
    // An owner the caller may not see is a missing one, whatever the token.
    if !auth::profile_visible(&api.store, Some(&c.user), &o)? {
        return Err(missing());
    }
    if !c.sees_under_scope(&o) {
        return Err(ApiError::Forbidden(
            "a public-only token cannot manage private owners".into(),
        ));
    }
    match auth::access_level(&api.store, Some(&c.user), &o)? {
        Some(Role::Admin) => Ok((c, o)),
        _ => Err(ApiError::Forbidden(
            "you must be an administrator of this owner or a site administrator".into(),
        )),
    }
}

/// The package a rule path names: `None` for `*` (every package).
fn package_of(segment: &str) -> Result<Option<PackageName>, ApiError> {
    if segment == ALL_PACKAGES {
        return Ok(None);
    }
    PackageName::parse(segment)
        .map(Some)
        .ok_or_else(|| ApiError::Unprocessable("invalid package name".into()))
}

// ------------------------------------------------------------------------------------ JSON

fn limit_json(l: Option<Limit>) -> Value {
    match l {
        None => json!("default"),
        Some(Limit::Unlimited) => json!("unlimited"),
        Some(Limit::Max(n)) => json!(n),
    }
}

/// An owner's quota: effective limits (`null`: unlimited), overrides (`"default"`,
/// `"unlimited"` or a number) and usage.
pub fn quota_json(q: &OwnerQuota) -> Value {
    json!({
        "owner": q.owner,
        "limits": {
            "max_file_size": q.limits.max_file_size,
            "max_bytes": q.limits.max_bytes,
            "max_versions": q.limits.max_versions,
        },
        "overrides": {
            "max_file_size": limit_json(q.overrides.max_file_size),
            "max_bytes": limit_json(q.overrides.max_bytes),
            "max_versions": limit_json(q.overrides.max_versions),
        },
        "usage": { "bytes": q.usage.bytes, "versions": q.usage.versions },
    })
}

/// One limit as written by a user: a number, a size (`500MB`, sizes only), `unlimited`, or
/// `default` (`None`).
pub fn parse_limit(v: &str, size: bool) -> Result<Option<Limit>, BadLimit> {
    let t = v.trim();
    if t.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    if t.eq_ignore_ascii_case("unlimited") {
        return Ok(Some(Limit::Unlimited));
    }
    let n = if size {
        crate::units::parse_size(t)
    } else {
        t.parse::<u64>().ok()
    };
    n.map(|n| Some(Limit::Max(n))).ok_or_else(|| BadLimit {
        value: v.to_string(),
        size,
    })
}

/// A limit that is none of the forms `parse_limit` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLimit {
    pub value: String,
    /// Whether a size was asked for (which takes units).
    pub size: bool,
}

impl fmt::Display for BadLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.value;
        if self.size {
            write!(
                f,
                "{v:?} is not a size (e.g. 1000000, 500MB, 2GiB), unlimited or default"
            )
        } else {
            write!(f, "{v:?} is not a whole number, unlimited or default")
        }
    }
}

/// Why a quota or cleanup-rule body was refused; its text is the 422's message (and the
/// CLI's, which builds the same body from its flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    Unknown(String),
    /// The field holds a JSON value of another kind than `want` ("a whole number", …).
    Kind {
        field: String,
        want: &'static str,
    },
    Limit {
        field: String,
        bad: BadLimit,
    },
    Rule(InvalidRule),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Unknown(k) => write!(f, "unknown field {k:?}"),
            FieldError::Kind { field, want } => write!(f, "{field} must be {want}"),
            FieldError::Limit { field, bad } => write!(f, "{field}: {bad}"),
            FieldError::Rule(e) => e.fmt(f),
        }
    }
}

fn kind(field: &str, want: &'static str) -> FieldError {
    FieldError::Kind {
        field: field.to_string(),
        want,
    }
}

fn limit_field(m: &Map<String, Value>, k: &str, size: bool) -> Result<Option<Limit>, FieldError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| Some(Limit::Max(n)))
            .ok_or_else(|| kind(k, "a whole number")),
        Some(Value::String(s)) => parse_limit(s, size).map_err(|bad| FieldError::Limit {
            field: k.to_string(),
            bad,
        }),
        Some(_) => Err(kind(k, "a number or a string")),
    }
}

/// The body of `PUT /api/v1/admin/quotas/{owner}`: the whole override (absent: default).
pub fn quota_from_json(m: &Map<String, Value>) -> Result<QuotaRecord, FieldError> {
    for k in m.keys() {
        if !["max_file_size", "max_bytes", "max_versions"].contains(&k.as_str()) {
            return Err(FieldError::Unknown(k.clone()));
        }
    }
    Ok(QuotaRecord {
        max_file_size: limit_field(m, "max_file_size", true)?,
        max_bytes: limit_field(m, "max_bytes", true)?,
        max_versions: limit_field(m, "max_versions", false)?,
    })
}

pub fn rule_json(e: &RuleEntry) -> Value {
    let r = &e.rule;
    json!({
        "owner": e.owner,
        "package": e.package,
        "enabled": r.enabled,
        "keep_count": r.keep_count,
        "keep_pattern": r.keep_pattern,
        "remove_days": r.remove_days,
        "remove_pattern": r.remove_pattern,
        "match_full_name": r.match_full_name,
        "unused_days": r.unused_days,
    })
}

/// A rule from JSON (absent fields: enabled, everything else unused); patterns validated.
pub fn rule_from_json(m: &Map<String, Value>) -> Result<CleanupRule, FieldError> {
    let mut r = CleanupRule::default();
    for (k, v) in m {
        let num = || v.as_u64().ok_or_else(|| kind(k, "a whole number"));
        let text = || {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| kind(k, "a string"))
        };
        let flag = || v.as_bool().ok_or_else(|| kind(k, "a boolean"));
        match k.as_str() {
            "enabled" => r.enabled = flag()?,
            "keep_count" => r.keep_count = num()?,
            "keep_pattern" => r.keep_pattern = text()?,
            "remove_days" => r.remove_days = num()?,
            "remove_pattern" => r.remove_pattern = text()?,
            "match_full_name" => r.match_full_name = flag()?,
            "unused_days" => r.unused_days = num()?,
            // Echoed by a GET; ignored on the way back.
            "owner" | "package" => {}
            _ => return Err(FieldError::Unknown(k.clone())),
        }
    }
    r.validate().map_err(FieldError::Rule)?;
    Ok(r)
}

/// The answer of a run: what went (would go), and the rules skipped (`package` null: all).
pub fn cleanup_report_json(report: &CleanupReport, dry_run: bool) -> Value {
    json!({
        "dry_run": dry_run,
        "removed": report.removed.iter().map(removal_json).collect::<Vec<_>>(),
        "skipped": report.skipped.iter().map(skipped_json).collect::<Vec<_>>(),
    })
}

fn skipped_json(r: &SkippedRule) -> Value {
    json!({ "owner": r.owner, "package": r.package, "error": r.error })
}

fn removal_json(r: &Removal) -> Value {
    json!({
        "owner": r.owner,
        "package": r.package,
        "version": r.version,
        "reason": r.reason,
    })
}
