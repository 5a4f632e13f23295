//! The `quota` and `cleanup` commands, offline on the database file or on a running server
//! (`--server`) through the JSON API of `api::limits`. Both sides produce the API's JSON, so
//! validation and output happen once. Offline changes are audited as `cli`/`local`.

use crate::api::{
    cleanup_report_json, parse_limit, quota_json, rule_from_json, rule_json, ALL_PACKAGES,
};
use crate::cli::args::{self, CleanupAction, QuotaAction, RuleAction};
use crate::cli::client::Client;
use crate::cli::terminal::printable;
use crate::names::{encode_component as enc, valid_owner_name, valid_package_name};
use crate::store::{self, Limit, QuotaRecord, Store};
use serde_json::{json, Map, Value};
use std::sync::Arc;

enum Backend {
    Offline(Arc<Store>),
    Remote(Client),
}

fn open(target: args::Target) -> Result<Backend, String> {
    Ok(match target {
        args::Target::Offline(path) => Backend::Offline(super::open_store(&path)?),
        args::Target::Remote { url, token } => {
            Backend::Remote(Client::new(&url, &token).map_err(|e| e.to_string())?)
        }
    })
}

/// Runs `f` on the target and closes it whether `f` succeeded or not.
fn with(
    target: args::Target,
    f: impl FnOnce(&Backend) -> Result<(), String>,
) -> Result<(), String> {
    let b = open(target)?;
    let result = f(&b);
    let closed = match b {
        Backend::Offline(s) => s.close().map_err(|e| e.to_string()),
        Backend::Remote(_) => Ok(()),
    };
    result.and(closed)
}

fn record(s: &Store, action: &str, owner: &str, target: &str) {
    super::audit_local(s, action, owner, target);
}

fn owner_name(name: &str) -> Result<String, String> {
    if valid_owner_name(name) {
        Ok(name.to_string())
    } else {
        Err(format!("{name:?} is not a valid user or organization name"))
    }
}

fn no_owner(name: &str) -> String {
    format!("no user or organization named {name:?}")
}

impl Backend {
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        owner: &str,
    ) -> Result<Value, String> {
        let Backend::Remote(c) = self else {
            return Err("internal: a remote call offline".into());
        };
        match c.call(method, path, body.as_ref()) {
            Err(crate::cli::client::Error::Status { status: 404, .. }) => Err(no_owner(owner)),
            other => other.map_err(|e| e.to_string()),
        }
    }

    fn quota(&self, owner: &str) -> Result<Value, String> {
        match self {
            Backend::Offline(s) => {
                let q = s
                    .owner_quota(owner)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| no_owner(owner))?;
                let mut v = quota_json(&q);
                // Offline, the server's flags are unknown: only overrides are certain.
                v["limits"] = Value::Null;
                Ok(v)
            }
            Backend::Remote(_) => self.call(
                "GET",
                &format!("/api/v1/admin/quotas/{}", enc(owner)),
                None,
                owner,
            ),
        }
    }

    fn quotas(&self) -> Result<Vec<Value>, String> {
        match self {
            Backend::Offline(s) => Ok(s
                .quotas()
                .map_err(|e| e.to_string())?
                .iter()
                .map(|q| {
                    let mut v = quota_json(q);
                    v["limits"] = Value::Null;
                    v
                })
                .collect()),
            Backend::Remote(_) => match self.call("GET", "/api/v1/admin/quotas", None, "")? {
                Value::Array(a) => Ok(a),
                _ => Err("GET /api/v1/admin/quotas: expected a JSON list".into()),
            },
        }
    }

    fn set_quota(&self, owner: &str, rec: QuotaRecord) -> Result<(), String> {
        match self {
            Backend::Offline(s) => {
                if !s.set_quota(owner, rec.clone()).map_err(|e| e.to_string())? {
                    return Err(no_owner(owner));
                }
                let action = if rec.is_empty() {
                    "quota.clear"
                } else {
                    "quota.set"
                };
                record(s, action, owner, "");
                Ok(())
            }
            Backend::Remote(_) => {
                let path = format!("/api/v1/admin/quotas/{}", enc(owner));
                if rec.is_empty() {
                    self.call("DELETE", &path, None, owner)?;
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
                    self.call("PUT", &path, Some(body), owner)?;
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

pub fn quota(action: QuotaAction) -> Result<(), String> {
    match action {
        QuotaAction::Show(a) => {
            let target = args::target(a.db, a.server, a.token)?;
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
            let target = args::target(a.db, a.server, a.token)?;
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
                    .map(|v| parse_limit(v, size).map_err(|e| format!("--{flag}: {e}")))
                    .transpose()
            };
            let file = parse(&a.max_file_size, true, "max-file-size")?;
            let bytes = parse(&a.max_bytes, true, "max-bytes")?;
            let versions = parse(&a.max_versions, false, "max-versions")?;
            if file.is_none() && bytes.is_none() && versions.is_none() {
                return Err(
                    "give at least one of --max-file-size, --max-bytes, --max-versions".into(),
                );
            }
            let target = args::target(a.db, a.server, a.token)?;
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
        let show = |k: &str| -> String {
            match &q["overrides"][k] {
                Value::Number(n) => n.to_string(),
                Value::String(s) if s == "unlimited" => "unlimited".into(),
                _ => match &q["limits"] {
                    Value::Null => "default".into(),
                    l => match &l[k] {
                        Value::Number(n) => format!("{n} (default)"),
                        _ => "unlimited (default)".into(),
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

fn package_segment(p: &Option<String>) -> Result<String, String> {
    match p {
        None => Ok(ALL_PACKAGES.to_string()),
        Some(p) if valid_package_name(p) => Ok(p.clone()),
        Some(p) => Err(format!("--package: {p:?} is not a valid package name")),
    }
}

pub fn cleanup(action: CleanupAction) -> Result<(), String> {
    match action {
        CleanupAction::Rule(r) => match r.action {
            RuleAction::Add(a) => {
                let owner = owner_name(&a.owner)?;
                let seg = package_segment(&a.package)?;
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
                let rule = rule_from_json(&m)?;
                let target = args::target(a.db, a.server, a.token)?;
                with(target, |b| {
                    match b {
                        Backend::Offline(s) => {
                            let package = (seg != ALL_PACKAGES).then_some(seg.as_str());
                            match s
                                .set_cleanup_rule(&owner, package, rule)
                                .map_err(|e| e.to_string())?
                            {
                                Err(e) => return Err(e.into()),
                                Ok(false) => return Err(no_owner(&owner)),
                                Ok(true) => record(s, "cleanup.rule_set", &owner, &seg),
                            }
                        }
                        Backend::Remote(_) => {
                            let path =
                                format!("/api/v1/cleanup/{}/rules/{}", enc(&owner), enc(&seg));
                            b.call("PUT", &path, Some(Value::Object(m)), &owner)?;
                        }
                    }
                    println!(
                        "cleanup rule for {}/{} saved",
                        printable(&owner),
                        printable(&seg)
                    );
                    Ok(())
                })
            }
            RuleAction::Remove(a) => {
                let owner = owner_name(&a.owner)?;
                let seg = package_segment(&a.package)?;
                let target = args::target(a.db, a.server, a.token)?;
                with(target, |b| {
                    let missing = || format!("{owner} has no cleanup rule for {seg}");
                    match b {
                        Backend::Offline(s) => {
                            let package = (seg != ALL_PACKAGES).then_some(seg.as_str());
                            if !s
                                .remove_cleanup_rule(&owner, package)
                                .map_err(|e| e.to_string())?
                            {
                                return Err(missing());
                            }
                            record(s, "cleanup.rule_remove", &owner, &seg);
                        }
                        Backend::Remote(_) => {
                            let path =
                                format!("/api/v1/cleanup/{}/rules/{}", enc(&owner), enc(&seg));
                            b.call("DELETE", &path, None, &owner).map_err(|e| {
                                if e == no_owner(&owner) {
                                    missing()
                                } else {
                                    e
                                }
                            })?;
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
            RuleAction::List(a) => {
                let owner = a.owner.as_deref().map(owner_name).transpose()?;
                let target = args::target(a.db, a.server, a.token)?;
                with(target, |b| {
                    let rules: Vec<Value> = match b {
                        Backend::Offline(s) => s
                            .cleanup_rules(owner.as_deref())
                            .map_err(|e| e.to_string())?
                            .iter()
                            .map(rule_json)
                            .collect(),
                        Backend::Remote(_) => {
                            let path = match &owner {
                                Some(o) => format!("/api/v1/cleanup/{}/rules", enc(o)),
                                None => "/api/v1/admin/cleanup/rules".into(),
                            };
                            match b.call("GET", &path, None, owner.as_deref().unwrap_or(""))? {
                                Value::Array(a) => a,
                                _ => return Err(format!("GET {path}: expected a JSON list")),
                            }
                        }
                    };
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
        },
        CleanupAction::Run(a) => {
            let owner = a.owner.as_deref().map(owner_name).transpose()?;
            let target = args::target(a.db, a.server, a.token)?;
            let dry = a.dry_run;
            with(target, |b| {
                let report: Value = match b {
                    Backend::Offline(s) => {
                        if let Some(o) = &owner {
                            if s.get_user(o).map_err(|e| e.to_string())?.is_none() {
                                return Err(no_owner(o));
                            }
                        }
                        let report = s
                            .run_cleanup(owner.as_deref(), dry, store::now())
                            .map_err(|e| e.to_string())?;
                        cleanup_report_json(&report, dry)
                    }
                    Backend::Remote(_) => {
                        let q = if dry { "?dry_run=true" } else { "" };
                        let path = match &owner {
                            Some(o) => format!("/api/v1/cleanup/{}/run{q}", enc(o)),
                            None => format!("/api/v1/admin/cleanup/run{q}"),
                        };
                        b.call("POST", &path, None, owner.as_deref().unwrap_or(""))?
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
                println!("{} versions {verb}", removed.len());
                Ok(())
            })
        }
    }
}
