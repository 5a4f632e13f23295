//! The administration commands (`user`, `token`, `org`, `member`, `audit`), each working either
//! offline on the database file through the store, or on a running server through its JSON API
//! (`client`), so that an admin never has to stop shelf to add a user.
//!
//! Both ways sit behind one `Backend` trait that speaks in store records; validation of the
//! command line and all output happen once, above it. Offline changes are audited with actor
//! `cli` and address `local`, as the server audits its own.

use crate::auth;
use crate::cli::args::{self, AuditCmd, MemberAction, OrgAction, Target, TokenAction, UserAction};
use crate::cli::client::Client;
use crate::cli::terminal::printable;
use crate::dates::parse_rfc3339;
use crate::names::encode_component as enc;
use crate::names::valid_owner_name;
use crate::store::{
    self, AuditFilter, AuditRecord, Created, NewToken, OwnerKind, Role, Store, TokenOutcome,
    TokenRecord, UserDeleted, UserRecord, Visibility,
};
use serde_json::{json, Map, Value};
use std::io::BufRead;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The JSON API's largest page.
const PAGE: usize = 50;

/// A user to create, validated.
struct NewUser {
    name: String,
    admin: bool,
    password: Option<String>,
    email: Option<String>,
    visibility: Option<Visibility>,
}

/// Changes to a user, validated; `None` leaves a field alone.
#[derive(Default)]
struct UserChange {
    admin: Option<bool>,
    active: Option<bool>,
    visibility: Option<Visibility>,
    password: Option<String>,
}

impl UserChange {
    /// The names of the fields that change (the API's names, for the audit log).
    fn fields(&self) -> String {
        [
            ("admin", self.admin.is_some()),
            ("active", self.active.is_some()),
            ("visibility", self.visibility.is_some()),
            ("password", self.password.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(",")
    }
}

/// What the commands need, offline or remote. Errors are messages for the user.
trait Backend {
    fn add_user(&self, new: &NewUser) -> Result<(), String>;
    fn users(&self) -> Result<Vec<UserRecord>, String>;
    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), String>;
    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), String>;
    /// The token in clear.
    fn create_token(&self, new: NewToken) -> Result<String, String>;
    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, String>;
    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), String>;
    fn create_org(
        &self,
        name: &str,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), String>;
    fn orgs(&self) -> Result<Vec<UserRecord>, String>;
    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), String>;
    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), String>;
    fn remove_member(&self, org: &str, user: &str) -> Result<(), String>;
    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, String>;
    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, String>;
    /// Offline: writes the audit entries and closes the database.
    fn close(self: Box<Self>) -> Result<(), String>;
}

/// Opens the target, runs `f`, and closes the target whether `f` succeeded or not.
fn with_backend(
    target: Target,
    f: impl FnOnce(&dyn Backend) -> Result<(), String>,
) -> Result<(), String> {
    let backend: Box<dyn Backend> = match target {
        Target::Offline(path) => Box::new(Offline {
            store: super::open_store(&path)?,
        }),
        Target::Remote { url, token } => Box::new(Remote {
            client: Client::new(&url, &token).map_err(|e| e.to_string())?,
        }),
    };
    let result = f(&*backend);
    let closed = backend.close();
    result.and(closed)
}

// ------------------------------------------------------------------------------- commands

pub fn user(action: UserAction) -> Result<(), String> {
    match action {
        UserAction::Add(a) => {
            let target = args::target(a.db, a.server, a.token)?;
            let new = NewUser {
                name: owner_name(&a.name, "user")?,
                admin: a.admin,
                password: if a.password_stdin {
                    Some(read_password()?)
                } else {
                    None
                },
                email: a.email,
                visibility: a.visibility.as_deref().map(visibility).transpose()?,
            };
            with_backend(target, |b| {
                b.add_user(&new)?;
                println!(
                    "created {}user {}",
                    if new.admin { "site admin " } else { "" },
                    printable(&new.name)
                );
                Ok(())
            })
        }
        UserAction::List(l) => with_backend(args::target(l.db, l.server, l.token)?, |b| {
            let users = b.users()?;
            println!(
                "{:<24} {:<5} {:<6} {:<10} EMAIL",
                "LOGIN", "ADMIN", "ACTIVE", "VISIBILITY"
            );
            for u in users {
                println!(
                    "{:<24} {:<5} {:<6} {:<10} {}",
                    printable(&u.login),
                    yes_no(u.is_admin),
                    yes_no(u.active),
                    u.visibility.as_str(),
                    dash(&u.email)
                );
            }
            Ok(())
        }),
        UserAction::Modify(m) => {
            let target = args::target(m.db, m.server, m.token)?;
            let change = UserChange {
                admin: m.admin,
                active: m.active,
                visibility: m.visibility.as_deref().map(visibility).transpose()?,
                password: if m.password_stdin {
                    Some(read_password()?)
                } else {
                    None
                },
            };
            if change.fields().is_empty() {
                return Err(
                    "nothing to change: give --admin, --active, --visibility or --password-stdin"
                        .into(),
                );
            }
            let fields = change.fields();
            with_backend(target, |b| {
                b.modify_user(&m.name, change)?;
                println!("updated user {} ({fields})", printable(&m.name));
                Ok(())
            })
        }
        UserAction::Delete(d) => with_backend(args::target(d.db, d.server, d.token)?, |b| {
            b.delete_owner(&d.name, OwnerKind::User, d.purge)?;
            println!("deleted user {}", printable(&d.name));
            Ok(())
        }),
    }
}

pub fn token(action: TokenAction) -> Result<(), String> {
    match action {
        TokenAction::Create(c) => {
            let target = args::target(c.db, c.server, c.token)?;
            let scopes = if c.scope.is_empty() {
                vec!["all".to_string()]
            } else {
                c.scope
            };
            for s in &scopes {
                if !crate::auth::valid_scope(s) {
                    return Err(format!(
                        "--scope {s:?} is not a scope: all, public-only, or read:/write: with one \
                         of {}",
                        crate::auth::SCOPE_CATEGORIES.join(", ")
                    ));
                }
            }
            if c.package.is_some() && c.owner.is_none() {
                return Err("--package needs --owner (the package's owner)".into());
            }
            let expires = c.expires.as_deref().map(expiry).transpose()?;
            let name = c.name.unwrap_or_else(|| format!("cli-{}", store::now()));
            if name.trim().is_empty() || name.len() > 255 {
                return Err("--name must be 1 to 255 bytes".into());
            }
            let user = c.user;
            with_backend(target, |b| {
                let token = b.create_token(NewToken {
                    user: user.clone(),
                    name: name.clone(),
                    scopes,
                    owner: c.owner,
                    package: c.package,
                    expires,
                    given: None,
                })?;
                println!(
                    "created token {name:?} for {}; it is shown only once:",
                    printable(&user)
                );
                println!("{token}");
                Ok(())
            })
        }
        TokenAction::List(l) => with_backend(args::target(l.db, l.server, l.token)?, |b| {
            let tokens = b.tokens(&l.user)?;
            println!(
                "{:<6} {:<24} {:<10} {:<20} {:<20} {:<20} SCOPES",
                "ID", "NAME", "LAST_EIGHT", "CREATED", "EXPIRES", "LIMITED_TO"
            );
            for t in tokens {
                let limit = match (&t.owner, &t.package) {
                    (Some(o), Some(p)) => format!("{o}/{p}"),
                    (Some(o), None) => o.clone(),
                    _ => "-".into(),
                };
                println!(
                    "{:<6} {:<24} {:<10} {:<20} {:<20} {:<20} {}",
                    t.id,
                    printable(&t.name),
                    printable(&t.last_eight),
                    time(t.created),
                    t.expires.map(time).unwrap_or_else(|| "-".into()),
                    printable(&limit),
                    printable(&t.scopes.join(","))
                );
            }
            Ok(())
        }),
        TokenAction::Revoke(r) => with_backend(args::target(r.db, r.server, r.token)?, |b| {
            b.revoke_token(&r.user, &r.name)?;
            println!("revoked token {:?} of {}", r.name, printable(&r.user));
            Ok(())
        }),
    }
}

pub fn org(action: OrgAction) -> Result<(), String> {
    match action {
        OrgAction::Create(c) => {
            let target = args::target(c.db, c.server, c.token)?;
            let name = owner_name(&c.name, "organization")?;
            let v = c.visibility.as_deref().map(visibility).transpose()?;
            with_backend(target, |b| {
                b.create_org(&name, c.owner.as_deref(), v)?;
                match &c.owner {
                    Some(o) => println!(
                        "created organization {} (owner {})",
                        printable(&name),
                        printable(o)
                    ),
                    None => println!("created organization {}", printable(&name)),
                }
                Ok(())
            })
        }
        OrgAction::List(l) => with_backend(args::target(l.db, l.server, l.token)?, |b| {
            let orgs = b.orgs()?;
            println!("{:<24} VISIBILITY", "NAME");
            for o in orgs {
                println!("{:<24} {}", printable(&o.login), o.visibility.as_str());
            }
            Ok(())
        }),
        OrgAction::Delete(d) => with_backend(args::target(d.db, d.server, d.token)?, |b| {
            b.delete_owner(&d.name, OwnerKind::Org, d.purge)?;
            println!("deleted organization {}", printable(&d.name));
            Ok(())
        }),
        OrgAction::Visibility(v) => {
            let target = args::target(v.db, v.server, v.token)?;
            let vis = visibility(&v.visibility)?;
            with_backend(target, |b| {
                b.set_org_visibility(&v.name, vis)?;
                println!(
                    "organization {} is now {}",
                    printable(&v.name),
                    vis.as_str()
                );
                Ok(())
            })
        }
    }
}

pub fn member(action: MemberAction) -> Result<(), String> {
    match action {
        MemberAction::Set(s) => {
            let target = args::target(s.db, s.server, s.token)?;
            let role = Role::parse(&s.role)
                .ok_or_else(|| format!("role must be read, write or admin, not {:?}", s.role))?;
            with_backend(target, |b| {
                b.set_member(&s.org, &s.user, role)?;
                println!(
                    "{} is now a {} member of {}",
                    printable(&s.user),
                    role.as_str(),
                    printable(&s.org)
                );
                Ok(())
            })
        }
        MemberAction::Remove(r) => with_backend(args::target(r.db, r.server, r.token)?, |b| {
            b.remove_member(&r.org, &r.user)?;
            println!("removed {} from {}", printable(&r.user), printable(&r.org));
            Ok(())
        }),
        MemberAction::List(l) => with_backend(args::target(l.db, l.server, l.token)?, |b| {
            let members = b.members(&l.org)?;
            println!("{:<24} ROLE", "USER");
            for (login, role) in members {
                println!("{:<24} {}", printable(&login), role.as_str());
            }
            Ok(())
        }),
    }
}

pub fn audit(a: AuditCmd) -> Result<(), String> {
    let target = args::target(a.db, a.server, a.token)?;
    let limit = match a.limit {
        Some(0) => return Err("--limit must be at least 1".into()),
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => PAGE,
    };
    let filter = AuditFilter {
        owner: a.owner,
        action: a.action,
        actor: None,
    };
    with_backend(target, |b| {
        let entries = b.audit(&filter, limit)?;
        println!(
            "{:<20} {:<16} {:<15} {:<20} {:<16} {:<30} OUTCOME",
            "TIME", "ACTOR", "ADDR", "ACTION", "OWNER", "TARGET"
        );
        for e in entries {
            println!(
                "{:<20} {:<16} {:<15} {:<20} {:<16} {:<30} {}",
                time(e.time),
                dash(&e.actor),
                dash(&e.addr),
                printable(&e.action),
                dash(&e.owner),
                dash(&e.target),
                printable(&e.outcome)
            );
        }
        Ok(())
    })
}

// ------------------------------------------------------------------------------ validation

fn owner_name(name: &str, what: &str) -> Result<String, String> {
    if valid_owner_name(name) {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a valid {what} name (letters, digits, '-', '_', '.'; at most 40)"
        ))
    }
}

fn visibility(v: &str) -> Result<Visibility, String> {
    Visibility::parse(v)
        .ok_or_else(|| format!("visibility must be public, limited or private, not {v:?}"))
}

/// `--expires`: an RFC 3339 time, or a date meaning its midnight UTC; unix seconds.
fn expiry(s: &str) -> Result<u64, String> {
    parse_rfc3339(s)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            format!("--expires: {s:?} is not an RFC 3339 time or a date (2026-01-31T12:00:00Z, 2026-01-31)")
        })
}

/// One line of stdin, without its line ending; never empty.
fn read_password() -> Result<String, String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("--password-stdin: cannot read stdin: {e}"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err("--password-stdin: no password on stdin (one line expected)".into());
    }
    Ok(password.to_string())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A value for a table cell: `-` when empty, escaped for the terminal.
fn dash(s: &str) -> std::borrow::Cow<'_, str> {
    if s.is_empty() {
        "-".into()
    } else {
        printable(s)
    }
}

fn time(secs: u64) -> String {
    crate::dates::rfc3339_secs(secs)
}

// -------------------------------------------------------------------------------- offline

struct Offline {
    store: Arc<Store>,
}

fn db_err(e: store::Error) -> String {
    e.to_string()
}

impl Offline {
    fn record(&self, action: &str, owner: &str, target: &str) {
        super::audit_local(&self.store, action, owner, target);
    }

    /// The owner named `name` if it is of `kind`.
    fn owner_of_kind(&self, name: &str, kind: OwnerKind) -> Result<UserRecord, String> {
        self.store
            .get_user(name)
            .map_err(db_err)?
            .filter(|u| u.kind == kind)
            .ok_or_else(|| match kind {
                OwnerKind::User => format!("no user named {name:?}"),
                OwnerKind::Org => format!("no organization named {name:?}"),
            })
    }
}

impl Backend for Offline {
    fn add_user(&self, new: &NewUser) -> Result<(), String> {
        let mut rec = UserRecord::new(&new.name, OwnerKind::User);
        rec.is_admin = new.admin;
        rec.email = new.email.clone().unwrap_or_default();
        if let Some(v) = new.visibility {
            rec.visibility = v;
        }
        if let Some(pw) = &new.password {
            rec.password = Some(auth::hash_password(pw).map_err(|e| e.to_string())?);
        }
        match self.store.create_owner(rec).map_err(db_err)? {
            Created::Done(_) => {
                self.record("user.create", &new.name, &new.name);
                Ok(())
            }
            Created::NameTaken => Err(format!("a user named {:?} already exists", new.name)),
        }
    }

    fn users(&self) -> Result<Vec<UserRecord>, String> {
        Ok(self
            .store
            .list_owners(OwnerKind::User, 1, u64::MAX)
            .map_err(db_err)?
            .items)
    }

    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), String> {
        self.owner_of_kind(name, OwnerKind::User)?;
        let fields = change.fields();
        let password = change
            .password
            .as_deref()
            .map(auth::hash_password)
            .transpose()
            .map_err(|e| e.to_string())?;
        let UserChange {
            admin,
            active,
            visibility,
            ..
        } = change;
        self.store
            .update_owner(name, move |u| {
                if let Some(v) = admin {
                    u.is_admin = v;
                }
                if let Some(v) = active {
                    u.active = v;
                }
                if let Some(v) = visibility {
                    u.visibility = v;
                }
                if password.is_some() {
                    u.password = password;
                }
            })
            .map_err(db_err)?
            .ok_or_else(|| format!("no user named {name:?}"))?;
        self.record("user.update", name, &fields);
        Ok(())
    }

    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), String> {
        self.owner_of_kind(name, kind)?;
        let what = match kind {
            OwnerKind::User => "user",
            OwnerKind::Org => "org",
        };
        match self.store.delete_owner(name, purge).map_err(db_err)? {
            UserDeleted::Done => {
                self.record(&format!("{what}.delete"), name, name);
                Ok(())
            }
            UserDeleted::NotFound => Err(format!("no {what} named {name:?}")),
            UserDeleted::OwnsPackages => Err(format!(
                "{name} still owns packages: delete them first, or add --purge"
            )),
        }
    }

    fn create_token(&self, new: NewToken) -> Result<String, String> {
        if let Some(o) = &new.owner {
            if self.store.get_user(o).map_err(db_err)?.is_none() {
                return Err(format!("--owner: no user or organization named {o:?}"));
            }
        }
        let (user, name) = (new.user.clone(), new.name.clone());
        match self.store.create_token(new).map_err(db_err)?.0 {
            TokenOutcome::Created(token) => {
                self.record("token.create", "", &format!("{user}/{name}"));
                Ok(token)
            }
            TokenOutcome::NoSuchUser => Err(format!("no user named {user:?}")),
            TokenOutcome::NameTaken => Err(format!("{user} already has a token named {name:?}")),
        }
    }

    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, String> {
        self.store
            .list_tokens(user)
            .map_err(db_err)?
            .ok_or_else(|| format!("no user named {user:?}"))
    }

    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), String> {
        if self
            .store
            .revoke_token(user, name_or_id)
            .map_err(db_err)?
            .is_none()
        {
            return Err(format!("{user} has no token named {name_or_id:?}"));
        }
        self.record("token.revoke", "", &format!("{user}/{name_or_id}"));
        Ok(())
    }

    fn create_org(
        &self,
        name: &str,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), String> {
        if let Some(o) = owner {
            self.owner_of_kind(o, OwnerKind::User)?;
        }
        let mut rec = UserRecord::new(name, OwnerKind::Org);
        if let Some(v) = visibility {
            rec.visibility = v;
        }
        if self.store.create_owner(rec).map_err(db_err)? == Created::NameTaken {
            return Err(format!(
                "a user or organization named {name:?} already exists"
            ));
        }
        let team = self
            .store
            .create_team(name, "Owners", "", Role::Admin)
            .map_err(db_err)?
            .ok_or_else(|| format!("organization {name} vanished while being created"))?;
        if let Some(o) = owner {
            if !self
                .store
                .set_team_member(team.id, o, true)
                .map_err(db_err)?
            {
                return Err(format!("no user named {o:?}"));
            }
        }
        self.record("org.create", name, owner.unwrap_or(""));
        Ok(())
    }

    fn orgs(&self) -> Result<Vec<UserRecord>, String> {
        Ok(self
            .store
            .list_owners(OwnerKind::Org, 1, u64::MAX)
            .map_err(db_err)?
            .items)
    }

    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), String> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        self.store
            .update_owner(org, move |o| o.visibility = v)
            .map_err(db_err)?
            .ok_or_else(|| format!("no organization named {org:?}"))?;
        self.record("org.update", org, &format!("visibility={}", v.as_str()));
        Ok(())
    }

    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), String> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        self.owner_of_kind(user, OwnerKind::User)?;
        if !self.store.set_member(org, user, role).map_err(db_err)? {
            return Err(format!("cannot make {user} a member of {org}"));
        }
        self.record("member.set", org, &format!("{user}={}", role.as_str()));
        Ok(())
    }

    fn remove_member(&self, org: &str, user: &str) -> Result<(), String> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        if !self.store.remove_member(org, user).map_err(db_err)? {
            return Err(format!("{user} is not a member of {org}"));
        }
        self.record("member.remove", org, user);
        Ok(())
    }

    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, String> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        Ok(self
            .store
            .list_members(org)
            .map_err(db_err)?
            .into_iter()
            .map(|(u, r)| (u.login, r))
            .collect())
    }

    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, String> {
        Ok(self
            .store
            .list_audit(filter, 1, limit as u64)
            .map_err(db_err)?
            .items)
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        self.store.close().map_err(db_err)
    }
}

// --------------------------------------------------------------------------------- remote

struct Remote {
    client: Client,
}

fn str_of(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().into()
}

fn opt_str(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn time_of(v: &Value, k: &str) -> Option<u64> {
    v.get(k)
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

fn owner_from_json(v: &Value, kind: OwnerKind) -> UserRecord {
    let login = opt_str(v, "login").unwrap_or_else(|| str_of(v, "username"));
    let mut rec = UserRecord::new(&login, kind);
    rec.id = v.get("id").and_then(Value::as_u64).unwrap_or_default();
    rec.is_admin = v.get("is_admin").and_then(Value::as_bool).unwrap_or(false);
    rec.active = v.get("active").and_then(Value::as_bool).unwrap_or(true);
    rec.visibility = Visibility::parse(&str_of(v, "visibility")).unwrap_or(Visibility::Public);
    rec.email = str_of(v, "email");
    rec.created = time_of(v, "created").unwrap_or_default();
    rec
}

impl Remote {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        self.client
            .call(method, path, body.as_ref())
            .map_err(|e| e.to_string())
    }

    /// Like `call`, but a 404 becomes `not_found`.
    fn call_or(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        not_found: impl FnOnce() -> String,
    ) -> Result<Value, String> {
        match self.client.call(method, path, body.as_ref()) {
            Err(crate::cli::client::Error::Status { status: 404, .. }) => Err(not_found()),
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// Every item of a paged listing, up to `max`.
    fn pages(
        &self,
        path: &str,
        max: usize,
        not_found: impl Fn() -> String,
    ) -> Result<Vec<Value>, String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let limit = max.clamp(1, PAGE);
        let mut out = Vec::new();
        for page in 1.. {
            let v = self.call_or(
                "GET",
                &format!("{path}{sep}page={page}&limit={limit}"),
                None,
                &not_found,
            )?;
            let Value::Array(items) = v else {
                return Err(format!("GET {path}: expected a JSON list"));
            };
            let n = items.len();
            out.extend(items);
            if n < limit || out.len() >= max {
                break;
            }
        }
        out.truncate(max);
        Ok(out)
    }
}

fn no_user(name: &str) -> impl Fn() -> String + '_ {
    move || format!("no user named {name:?}")
}

fn no_org(name: &str) -> impl Fn() -> String + '_ {
    move || format!("no organization named {name:?} (or the token may not see it)")
}

impl Backend for Remote {
    fn add_user(&self, new: &NewUser) -> Result<(), String> {
        let mut body = Map::new();
        body.insert("username".into(), json!(new.name));
        body.insert("must_change_password".into(), json!(false));
        if let Some(e) = &new.email {
            body.insert("email".into(), json!(e));
        }
        if let Some(v) = new.visibility {
            body.insert("visibility".into(), json!(v.as_str()));
        }
        if let Some(pw) = &new.password {
            body.insert("password".into(), json!(pw));
        }
        self.call("POST", "/api/v1/admin/users", Some(Value::Object(body)))?;
        if new.admin {
            self.call(
                "PATCH",
                &format!("/api/v1/admin/users/{}", enc(&new.name)),
                Some(json!({ "admin": true })),
            )
            .map_err(|e| {
                format!(
                    "created user {}, but making it a site admin failed: {e}",
                    new.name
                )
            })?;
        }
        Ok(())
    }

    fn users(&self) -> Result<Vec<UserRecord>, String> {
        Ok(self
            .pages("/api/v1/admin/users", usize::MAX, String::new)?
            .iter()
            .map(|v| owner_from_json(v, OwnerKind::User))
            .collect())
    }

    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), String> {
        let mut body = Map::new();
        if let Some(v) = change.admin {
            body.insert("admin".into(), json!(v));
        }
        if let Some(v) = change.active {
            body.insert("active".into(), json!(v));
        }
        if let Some(v) = change.visibility {
            body.insert("visibility".into(), json!(v.as_str()));
        }
        if let Some(pw) = change.password {
            body.insert("password".into(), json!(pw));
        }
        self.call_or(
            "PATCH",
            &format!("/api/v1/admin/users/{}", enc(name)),
            Some(Value::Object(body)),
            no_user(name),
        )?;
        Ok(())
    }

    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), String> {
        let path = match kind {
            OwnerKind::User => format!("/api/v1/admin/users/{}", enc(name)),
            OwnerKind::Org => format!("/api/v1/orgs/{}", enc(name)),
        };
        let path = if purge {
            format!("{path}?purge=true")
        } else {
            path
        };
        let not_found = match kind {
            OwnerKind::User => format!("no user named {name:?}"),
            OwnerKind::Org => format!("no organization named {name:?}"),
        };
        self.call_or("DELETE", &path, None, || not_found)?;
        Ok(())
    }

    fn create_token(&self, new: NewToken) -> Result<String, String> {
        let mut body = Map::new();
        body.insert("name".into(), json!(new.name));
        body.insert("scopes".into(), json!(new.scopes));
        if let Some(o) = new.owner {
            body.insert("owner".into(), json!(o));
        }
        if let Some(p) = new.package {
            body.insert("package".into(), json!(p));
        }
        if let Some(t) = new.expires {
            body.insert("expires_at".into(), json!(t));
        }
        let v = self.call_or(
            "POST",
            &format!("/api/v1/admin/users/{}/tokens", enc(&new.user)),
            Some(Value::Object(body)),
            no_user(&new.user),
        )?;
        opt_str(&v, "sha1")
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "the server created the token but did not return it".to_string())
    }

    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, String> {
        let items = self.pages(
            &format!("/api/v1/users/{}/tokens", enc(user)),
            usize::MAX,
            no_user(user),
        )?;
        Ok(items
            .iter()
            .map(|v| TokenRecord {
                id: v.get("id").and_then(Value::as_u64).unwrap_or_default(),
                user: store::fold_case(user),
                name: str_of(v, "name"),
                created: time_of(v, "created_at").unwrap_or_default(),
                last_eight: str_of(v, "token_last_eight"),
                scopes: v
                    .get("scopes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                owner: opt_str(v, "owner"),
                package: opt_str(v, "package"),
                expires: time_of(v, "expires_at"),
                last_used: time_of(v, "last_used_at"),
            })
            .collect())
    }

    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), String> {
        self.call_or(
            "DELETE",
            &format!("/api/v1/users/{}/tokens/{}", enc(user), enc(name_or_id)),
            None,
            || format!("{user} has no token named {name_or_id:?}"),
        )?;
        Ok(())
    }

    fn create_org(
        &self,
        name: &str,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), String> {
        let mut body = Map::new();
        body.insert("username".into(), json!(name));
        if let Some(v) = visibility {
            body.insert("visibility".into(), json!(v.as_str()));
        }
        let body = Some(Value::Object(body));
        match owner {
            Some(o) => self.call_or(
                "POST",
                &format!("/api/v1/admin/users/{}/orgs", enc(o)),
                body,
                no_user(o),
            )?,
            None => self.call("POST", "/api/v1/orgs", body)?,
        };
        Ok(())
    }

    fn orgs(&self) -> Result<Vec<UserRecord>, String> {
        Ok(self
            .pages("/api/v1/admin/orgs", usize::MAX, String::new)?
            .iter()
            .map(|v| owner_from_json(v, OwnerKind::Org))
            .collect())
    }

    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), String> {
        self.call_or(
            "PATCH",
            &format!("/api/v1/orgs/{}", enc(org)),
            Some(json!({ "visibility": v.as_str() })),
            no_org(org),
        )?;
        Ok(())
    }

    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), String> {
        self.call_or(
            "PUT",
            &format!("/api/v1/orgs/{}/members/{}", enc(org), enc(user)),
            Some(json!({ "role": role.as_str() })),
            || format!("no organization {org:?} or no user {user:?}"),
        )?;
        Ok(())
    }

    fn remove_member(&self, org: &str, user: &str) -> Result<(), String> {
        self.call_or(
            "DELETE",
            &format!("/api/v1/orgs/{}/members/{}", enc(org), enc(user)),
            None,
            || format!("{user} is not a member of {org} (or there is no such organization)"),
        )?;
        Ok(())
    }

    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, String> {
        let items = self.pages(
            &format!("/api/v1/orgs/{}/members", enc(org)),
            usize::MAX,
            no_org(org),
        )?;
        Ok(items
            .iter()
            .map(|v| {
                let role = Role::parse(&str_of(v, "role")).unwrap_or(Role::Read);
                (str_of(v, "login"), role)
            })
            .collect())
    }

    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, String> {
        let mut query = Vec::new();
        if let Some(o) = &filter.owner {
            query.push(format!("owner={}", enc(o)));
        }
        if let Some(a) = &filter.action {
            query.push(format!("action={}", enc(a)));
        }
        let path = if query.is_empty() {
            "/api/v1/admin/audit".to_string()
        } else {
            format!("/api/v1/admin/audit?{}", query.join("&"))
        };
        Ok(self
            .pages(&path, limit, String::new)?
            .iter()
            .map(|v| AuditRecord {
                time: time_of(v, "time").unwrap_or_default(),
                actor: str_of(v, "actor"),
                addr: str_of(v, "addr"),
                action: str_of(v, "action"),
                owner: str_of(v, "owner"),
                target: str_of(v, "target"),
                outcome: str_of(v, "outcome"),
            })
            .collect())
    }

    fn close(self: Box<Self>) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_and_expiry() {
        for s in ["all", "public-only", "read:package", "write:admin"] {
            assert!(crate::auth::valid_scope(s), "{s}");
        }
        for s in ["", "read", "read:packages", "admin:write", "WRITE:package"] {
            assert!(!crate::auth::valid_scope(s), "{s}");
        }
        assert_eq!(expiry("1970-01-02"), Ok(86_400));
        assert_eq!(expiry("1970-01-01T00:01:00Z"), Ok(60));
        assert!(expiry("tomorrow").is_err());
    }

    #[test]
    fn changes_name_their_fields() {
        let c = UserChange {
            active: Some(false),
            password: Some("x".into()),
            ..UserChange::default()
        };
        assert_eq!(c.fields(), "active,password");
        assert_eq!(UserChange::default().fields(), "");
    }
}
