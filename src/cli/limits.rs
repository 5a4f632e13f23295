//! The `quota` and `cleanup` commands, offline on the database file or on a running server
//! (`--server`) through the JSON API of `api::limits`. Both sides produce the API's JSON, so
//! validation and output happen once. Offline changes are audited as `cli`/`local`.

use crate::api::{
    cleanup_report_json, parse_limit, quota_json, rule_from_json, rule_json, ALL_PACKAGES,
};
use crate::cli::args::{
    self, CleanupAction, CleanupRun, QuotaAction, RuleAction, RuleAdd, RuleList, RuleRemove,
};
use crate::cli::client::{self, Client};
use crate::cli::terminal::printable;
use crate::cli::{Answer, Error, Missing};
use crate::names::{encode_component as enc, valid_owner_name, PackageName};
use crate::store::{self, Limit, QuotaRecord, Store};
use serde_json::{json, Map, Value};
use std::sync::Arc;

enum Backend {
    Offline(Arc<Store>),
    Remote(Client),
}

fn open(target: args::Target) -> Result<Backend, Error> {
    Ok(match target {
        args::Target::Offline(path) => {
            Backend::Offline(super::open_store(&path, super::Open::Existing)?)
        }
        args::Target::Remote {
            url,
            token,
            ca_cert,
        } => Backend::Remote(Client::new(&url, &token, ca_cert.as_deref())?),
    })
}

/// Runs `f` on the target and closes it whether `f` succeeded or not.
fn with(target: args::Target, f: impl FnOnce(&Backend) -> Result<(), Error>) -> Result<(), Error> {
    let b = open(target)?;
    let result = f(&b);
    let closed = match b {
        Backend::Offline(s) => s.close().map_err(Error::from),
        Backend::Remote(_) => Ok(()),
    };
    result.and(closed)
}

fn record(s: &Store, action: &str, owner: &str, target: &str) {
    super::audit_local(s, action, owner, target);
}

fn owner_name(name: &str) -> Result<String, Error> {
    if valid_owner_name(name) {
        Ok(name.to_string())
    } else {
        Err(Error::Usage(format!(
            "{name:?} is not a valid user or organization name"
        )))
    }
}

fn no_owner(name: &str) -> Missing {
    Missing::Owner(name.into())
}

/// A JSON API call on the server; a 404 becomes `not_found`.
fn remote_or(
    c: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    not_found: impl FnOnce() -> Missing,
) -> Result<Value, Error> {
    match c.call(method, path, body.as_ref()) {
        Err(client::Error::Status { status: 404, .. }) => Err(not_found().into()),
        other => Ok(other?),
    }
}

/// A JSON API call about `owner`: a 404 says there is no such owner.
fn remote(
    c: &Client,
    method: &str,
    path: &str,
    body: Option<Value>,
    owner: &str,
) -> Result<Value, Error> {
    remote_or(c, method, path, body, || no_owner(owner))
}

impl Backend {
    fn quota(&self, owner: &str) -> Result<Value, Error> {
        match self {
            Backend::Offline(s) => {
                let q = s.owner_quota(owner)?.ok_or_else(|| no_owner(owner))?;
                let mut v = quota_json(&q);
                // Offline, the server's flags are unknown: only overrides are certain.
                v["limits"] = Value::Null;
                Ok(v)
            }
            Backend::Remote(c) => remote(
                c,
                "GET",
                &format!("/api/v1/admin/quotas/{}", enc(owner)),
                None,
                owner,
            ),
        }
    }

    fn quotas(&self) -> Result<Vec<Value>, Error> {
        match self {
            Backend::Offline(s) => Ok(s
                .quotas()?
                .iter()
                .map(|q| {
                    let mut v = quota_json(q);
                    v["limits"] = Value::Null;
                    v
                })
                .collect()),
            Backend::Remote(c) => match remote(c, "GET", "/api/v1/admin/quotas", None, "")? {
                Value::Array(a) => Ok(a),
                _ => Err(Error::Answer(Answer::NotAList(
                    "/api/v1/admin/quotas".into(),
                ))),
            },
        }
    }

    fn set_quota(&self, owner: &str, rec: QuotaRecord) -> Result<(), Error> {
        match self {
            Backend::Offline(s) => {
                if !s.set_quota(owner, rec.clone())? {
                    return Err(no_owner(owner).into());
                }
                let action = if rec.is_empty() {
                    "quota.clear"
                } else {
                    "quota.set"
                };
                record(s, action, owner, "");
                Ok(())
            }
            Backend::Remote(c) => {
                let path = format!("/api/v1/admin/quotas/{}", enc(owner));
                if rec.is_empty() {
                    remote(c, "DELETE", &path, None, owner)?;
                } else {
                    let l = |l: Option<Limit>| match l {
                        None => json!("default"),
                        Some(Limit::Unlimited) => json!("unlimited"),
                        Some(Limit::Max(n)) => json!(n),
                    };
                    let body = json!({
                        "max_file_size": l(rec.max_file_size),
                        "max_bytes": l(rec.max_bytes),
                        "max_versions": l(rec.max_versions),
                    });
                    remote(c, "PUT", &path, Some(body), owner)?;
                }
                Ok(())
            }
        }
    }
}

/// An override back from the JSON (`"default"`, `"unlimited"` or a number).
fn override_of(v: &Value) -> Option<Limit> {
    match v {
        Value::Number(n) => n.as_u64().map(Limit::Max),
        Value::String(s) if s == "unlimited" => Some(Limit::Unlimited),
        _ => None,
    }
}

pub fn quota(action: QuotaAction) -> Result<(), Error> {
    match action {
        QuotaAction::Show(a) => {
            let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
            with(target, |b| {
                let list = match &a.owner {
                    Some(o) => vec![b.quota(&owner_name(o)?)?],
                    None => b.quotas()?,
                };
                print_quotas(&list);
                Ok(())
            })
        }
        QuotaAction::Clear(a) => {
            let owner = owner_name(&a.owner)?;
            let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
            with(target, |b| {
                b.set_quota(&owner, QuotaRecord::default())?;
                println!("cleared the quota overrides of {}", printable(&owner));
                Ok(())
            })
        }
        QuotaAction::Set(a) => {
            let owner = owner_name(&a.owner)?;
            let parse = |v: &Option<String>, size: bool, flag: &str| {
                v.as_deref()
                    .map(|v| {
                        parse_limit(v, size).map_err(|e| Error::Usage(format!("--{flag}: {e}")))
                    })
                    .transpose()
            };
            let file = parse(&a.max_file_size, true, "max-file-size")?;
            let bytes = parse(&a.max_bytes, true, "max-bytes")?;
            let versions = parse(&a.max_versions, false, "max-versions")?;
            if file.is_none() && bytes.is_none() && versions.is_none() {
                return Err(Error::Usage(
                    "give at least one of --max-file-size, --max-bytes, --max-versions".into(),
                ));
            }
            let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
            with(target, |b| {
                let current = b.quota(&owner)?;
                let o = &current["overrides"];
                let rec = QuotaRecord {
                    max_file_size: file.unwrap_or_else(|| override_of(&o["max_file_size"])),
                    max_bytes: bytes.unwrap_or_else(|| override_of(&o["max_bytes"])),
                    max_versions: versions.unwrap_or_else(|| override_of(&o["max_versions"])),
                };
                b.set_quota(&owner, rec)?;
                print_quotas(&[b.quota(&owner)?]);
                Ok(())
            })
        }
    }
}

fn print_quotas(list: &[Value]) {
    println!(
        "{:<20} {:>14} {:<24} {:>9} {:<24} MAX FILE SIZE",
        "OWNER", "BYTES", "MAX BYTES", "VERSIONS", "MAX VERSIONS"
    );
    for q in list {
        // Sizes for people, with the exact count when it is not plain bytes.
        let number = |k: &str, n: &serde_json::Number| -> String {
            match n.as_u64() {
                Some(b) if k != "max_versions" && b >= 1000 => {
                    format!("{} ({b})", crate::units::human_size(b))
                }
                Some(b) if k != "max_versions" => format!("{b} B"),
                _ => n.to_string(),
            }
        };
        let show = |k: &str| -> String {
            match &q["overrides"][k] {
                Value::Number(n) => number(k, n),
                Value::String(s) if s == "unlimited" => "unlimited".into(),
                _ => match &q["limits"] {
                    Value::Null => "default".into(),
                    l => match &l[k] {
                        Value::Number(n) => format!("{} (default)", number(k, n)),
                        _ => "no limit (default)".into(),
                    },
                },
            }
        };
        println!(
            "{:<20} {:>14} {:<24} {:>9} {:<24} {}",
            printable(q["owner"].as_str().unwrap_or("")),
            q["usage"]["bytes"].as_u64().unwrap_or(0),
            show("max_bytes"),
            q["usage"]["versions"].as_u64().unwrap_or(0),
            show("max_versions"),
            show("max_file_size"),
        );
    }
}

/// `--package`: the package a rule is for (`None`: every package) and its path segment.
/// The cleanup rules of `owner` (or of every owner), as the JSON API shows them.
fn rules_of(b: &Backend, owner: Option<&str>) -> Result<Vec<Value>, Error> {
    Ok(match b {
        Backend::Offline(s) => s.cleanup_rules(owner)?.iter().map(rule_json).collect(),
        Backend::Remote(c) => {
            let path = match owner {
                Some(o) => format!("/api/v1/cleanup/{}/rules", enc(o)),
                None => "/api/v1/admin/cleanup/rules".into(),
            };
            match remote(c, "GET", &path, None, owner.unwrap_or(""))? {
                Value::Array(a) => a,
                _ => return Err(Error::Answer(Answer::NotAList(path))),
            }
        }
    })
}

/// Whether the rule `r` (JSON) is the one for the package segment `seg` (`*`: every package).
fn rule_is_for(r: &Value, seg: &str) -> bool {
    match r["package"].as_str() {
        None | Some("") | Some(ALL_PACKAGES) => seg == ALL_PACKAGES,
        Some(p) => p.eq_ignore_ascii_case(seg),
    }
}

/// A rule's settings in words: `enabled, keep 3 newest, remove after 30 days`.
fn describe_rule(r: &Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or(0);
    let t = |k: &str| r[k].as_str().unwrap_or("").to_string();
    let mut out = vec![if r["enabled"].as_bool().unwrap_or(true) {
        "enabled".to_string()
    } else {
        "disabled".to_string()
    }];
    if n("keep_count") > 0 {
        out.push(format!("keep {} newest", n("keep_count")));
    }
    if !t("keep_pattern").is_empty() {
        out.push(format!("keep {}", printable(&t("keep_pattern"))));
    }
    if n("remove_days") > 0 {
        out.push(format!("remove after {} days", n("remove_days")));
    }
    if !t("remove_pattern").is_empty() {
        out.push(format!("remove {}", printable(&t("remove_pattern"))));
    }
    if n("unused_days") > 0 {
        out.push(format!("unused for {} days", n("unused_days")));
    }
    if r["match_full_name"].as_bool().unwrap_or(false) {
        out.push("patterns match package/version".to_string());
    }
    out.join(", ")
}

fn package_segment(p: &Option<String>) -> Result<(Option<PackageName>, String), Error> {
    match p {
        None => Ok((None, ALL_PACKAGES.to_string())),
        Some(p) => match PackageName::parse(p) {
            Some(name) => Ok((Some(name), p.clone())),
            None => Err(Error::Usage(format!(
                "--package: {p:?} is not a valid package name"
            ))),
        },
    }
}

pub fn cleanup(action: CleanupAction) -> Result<(), Error> {
    match action {
        CleanupAction::Rule(r) => match r.action {
            RuleAction::Add(a) => rule_add(a),
            RuleAction::Remove(a) => rule_remove(a),
            RuleAction::List(a) => rule_list(a),
        },
        CleanupAction::Run(a) => run(a),
    }
}

/// `shelf cleanup rule add`: sets an owner's rule for one package or all (replacing the
/// one there, and saying what it was).
fn rule_add(a: RuleAdd) -> Result<(), Error> {
    let owner = owner_name(&a.owner)?;
    let (package, seg) = package_segment(&a.package)?;
    let mut m = Map::new();
    m.insert("enabled".into(), json!(!a.disabled));
    m.insert("keep_count".into(), json!(a.keep_count.unwrap_or(0)));
    m.insert(
        "keep_pattern".into(),
        json!(a.keep_pattern.unwrap_or_default()),
    );
    m.insert("remove_days".into(), json!(a.remove_days.unwrap_or(0)));
    m.insert(
        "remove_pattern".into(),
        json!(a.remove_pattern.unwrap_or_default()),
    );
    m.insert("match_full_name".into(), json!(a.match_full_name));
    m.insert("unused_days".into(), json!(a.unused_days.unwrap_or(0)));
    // Validated here too, so a bad pattern is a clear error before anything opens.
    let rule = rule_from_json(&m).map_err(|e| Error::Usage(e.to_string()))?;
    let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
    with(target, |b| {
        // Adding replaces the package's rule whole: say what it was.
        let before = rules_of(b, Some(&owner))?
            .into_iter()
            .find(|r| rule_is_for(r, &seg));
        match b {
            Backend::Offline(s) => match s.set_cleanup_rule(&owner, package.as_ref(), rule)? {
                Err(e) => return Err(Error::Rule(e)),
                Ok(false) => return Err(no_owner(&owner).into()),
                Ok(true) => record(s, "cleanup.rule_set", &owner, &seg),
            },
            Backend::Remote(c) => {
                let path = format!("/api/v1/cleanup/{}/rules/{}", enc(&owner), enc(&seg));
                remote(c, "PUT", &path, Some(Value::Object(m)), &owner)?;
            }
        }
        println!(
            "cleanup rule for {}/{} saved",
            printable(&owner),
            printable(&seg)
        );
        if let Some(old) = before {
            println!("it replaced the rule that was: {}", describe_rule(&old));
        }
        Ok(())
    })
}

/// `shelf cleanup rule remove`.
fn rule_remove(a: RuleRemove) -> Result<(), Error> {
    let owner = owner_name(&a.owner)?;
    let (package, seg) = package_segment(&a.package)?;
    let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
    with(target, |b| {
        let missing = || Missing::CleanupRule {
            owner: owner.clone(),
            package: seg.clone(),
        };
        match b {
            Backend::Offline(s) => {
                let package = package.as_deref();
                if !s.remove_cleanup_rule(&owner, package)? {
                    return Err(missing().into());
                }
                record(s, "cleanup.rule_remove", &owner, &seg);
            }
            Backend::Remote(c) => {
                let path = format!("/api/v1/cleanup/{}/rules/{}", enc(&owner), enc(&seg));
                remote_or(c, "DELETE", &path, None, missing)?;
            }
        }
        println!(
            "cleanup rule for {}/{} removed",
            printable(&owner),
            printable(&seg)
        );
        Ok(())
    })
}

/// `shelf cleanup rule list`.
fn rule_list(a: RuleList) -> Result<(), Error> {
    let owner = a.owner.as_deref().map(owner_name).transpose()?;
    let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
    with(target, |b| {
        let rules = rules_of(b, owner.as_deref())?;
        println!(
            "{:<16} {:<20} {:<8} {:>5} {:<16} {:>5} {:<16} {:<5} {:>6}",
            "OWNER",
            "PACKAGE",
            "ENABLED",
            "KEEP",
            "KEEP PATTERN",
            "DAYS",
            "REMOVE PATTERN",
            "FULL",
            "UNUSED"
        );
        for r in rules {
            let s = |k: &str| printable(r[k].as_str().unwrap_or("")).into_owned();
            let n = |k: &str| r[k].as_u64().unwrap_or(0);
            let yes = |k: &str| {
                if r[k].as_bool().unwrap_or(false) {
                    "yes"
                } else {
                    "no"
                }
            };
            println!(
                "{:<16} {:<20} {:<8} {:>5} {:<16} {:>5} {:<16} {:<5} {:>6}",
                s("owner"),
                printable(r["package"].as_str().unwrap_or(ALL_PACKAGES)),
                yes("enabled"),
                n("keep_count"),
                if s("keep_pattern").is_empty() {
                    "-".into()
                } else {
                    s("keep_pattern")
                },
                n("remove_days"),
                if s("remove_pattern").is_empty() {
                    "-".into()
                } else {
                    s("remove_pattern")
                },
                yes("match_full_name"),
                n("unused_days"),
            );
        }
        Ok(())
    })
}

/// `shelf cleanup run`: the enabled rules now, or what they would remove (`--dry-run`).
fn run(a: CleanupRun) -> Result<(), Error> {
    let owner = a.owner.as_deref().map(owner_name).transpose()?;
    let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
    let dry = a.dry_run;
    with(target, |b| {
        let report: Value = match b {
            Backend::Offline(s) => {
                if let Some(o) = &owner {
                    if s.get_user(o)?.is_none() {
                        return Err(no_owner(o).into());
                    }
                }
                let report = s.run_cleanup(owner.as_deref(), dry, store::now())?;
                cleanup_report_json(&report, dry)
            }
            Backend::Remote(c) => {
                let q = if dry { "?dry_run=true" } else { "" };
                let path = match &owner {
                    Some(o) => format!("/api/v1/cleanup/{}/run{q}", enc(o)),
                    None => format!("/api/v1/admin/cleanup/run{q}"),
                };
                remote(c, "POST", &path, None, owner.as_deref().unwrap_or(""))?
            }
        };
        let list = |k: &str| report[k].as_array().cloned().unwrap_or_default();
        let (removed, skipped) = (list("removed"), list("skipped"));
        for r in &skipped {
            println!(
                "skipped the rule for {}/{}: {}",
                printable(r["owner"].as_str().unwrap_or("")),
                printable(r["package"].as_str().unwrap_or(ALL_PACKAGES)),
                printable(r["error"].as_str().unwrap_or(""))
            );
        }
        let verb = if dry { "would remove" } else { "removed" };
        for r in &removed {
            println!(
                "{verb} {}/{}/{}: {}",
                printable(r["owner"].as_str().unwrap_or("")),
                printable(r["package"].as_str().unwrap_or("")),
                printable(r["version"].as_str().unwrap_or("")),
                printable(r["reason"].as_str().unwrap_or(""))
            );
        }
        println!(
            "{verb} {}",
            crate::cli::terminal::count(removed.len() as u64, "version", "versions")
        );
        Ok(())
    })
}
