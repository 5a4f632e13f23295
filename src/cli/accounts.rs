//! The administration commands (`user`, `token`, `org`, `member`, `audit`), each working either
//! offline on the database file through the store, or on a running server through its JSON API
//! (`client`), so that an admin never has to stop shelf to add a user.
//!
//! Both ways sit behind one `Backend` trait that speaks in store records; validation of the
//! command line and all output happen once, above it. Offline changes are audited with actor
//! `cli` and address `local`, as the server audits its own.

use crate::auth;
use crate::cli::args::{self, AuditCmd, MemberAction, OrgAction, Target, TokenAction, UserAction};
use crate::cli::client::{self, Client};
use crate::cli::terminal::printable;
use crate::cli::{Answer, Error, Missing, Open, Taken};
use crate::dates::parse_rfc3339;
use crate::names::encode_component as enc;
use crate::names::Owner;
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
    name: Owner,
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

    /// What changes, for a person: `active false, password`.
    fn describe(&self) -> String {
        let mut out = Vec::new();
        if let Some(a) = self.admin {
            out.push(format!("admin {a}"));
        }
        if let Some(a) = self.active {
            out.push(format!("active {a}"));
        }
        if let Some(v) = self.visibility {
            out.push(format!("visibility {}", v.as_str()));
        }
        if self.password.is_some() {
            out.push("password".to_string());
        }
        out.join(", ")
    }
}

/// What the commands need, offline or remote.
trait Backend {
    fn add_user(&self, new: &NewUser) -> Result<(), Error>;
    fn users(&self) -> Result<Vec<UserRecord>, Error>;
    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), Error>;
    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), Error>;
    /// The token in clear.
    fn create_token(&self, new: NewToken) -> Result<String, Error>;
    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, Error>;
    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), Error>;
    fn create_org(
        &self,
        name: &Owner,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), Error>;
    fn orgs(&self) -> Result<Vec<UserRecord>, Error>;
    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), Error>;
    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), Error>;
    fn remove_member(&self, org: &str, user: &str) -> Result<(), Error>;
    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, Error>;
    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, Error>;
    /// Offline: writes the audit entries and closes the database.
    fn close(self: Box<Self>) -> Result<(), Error>;
}

/// Opens the target (an existing database file, or a server), runs `f`, and closes the
/// target whether `f` succeeded or not.
fn with_backend(
    target: Target,
    f: impl FnOnce(&dyn Backend) -> Result<(), Error>,
) -> Result<(), Error> {
    open_backend(target, Open::Existing, f)
}

/// `with_backend` for the commands that may create the database file (`user add`, `org
/// create`).
fn creating(
    target: Target,
    f: impl FnOnce(&dyn Backend) -> Result<(), Error>,
) -> Result<(), Error> {
    open_backend(target, Open::OrCreate, f)
}

fn open_backend(
    target: Target,
    how: Open,
    f: impl FnOnce(&dyn Backend) -> Result<(), Error>,
) -> Result<(), Error> {
    let backend: Box<dyn Backend> = match target {
        Target::Offline(path) => Box::new(Offline {
            store: super::open_store(&path, how)?,
        }),
        Target::Remote {
            url,
            token,
            ca_cert,
        } => Box::new(Remote {
            client: Client::new(&url, &token, ca_cert.as_deref())?,
        }),
    };
    let result = f(&*backend);
    let closed = backend.close();
    result.and(closed)
}

// ------------------------------------------------------------------------------- commands

pub fn user(action: UserAction) -> Result<(), Error> {
    match action {
        UserAction::Add(a) => {
            let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
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
            creating(target, |b| {
                b.add_user(&new)?;
                println!(
                    "created {}user {}",
                    if new.admin { "site admin " } else { "" },
                    printable(&new.name)
                );
                Ok(())
            })
        }
        UserAction::List(l) => {
            with_backend(args::target(l.db, l.server, l.token, l.ca_cert)?, |b| {
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
            })
        }
        UserAction::Modify(m) => {
            let target = args::target(m.db, m.server, m.token, m.ca_cert)?;
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
                return Err(Error::Usage(
                    "nothing to change: give --admin, --active, --visibility or --password-stdin"
                        .into(),
                ));
            }
            let what = change.describe();
            with_backend(target, |b| {
                b.modify_user(&m.name, change)?;
                println!("updated user {} ({what})", printable(&m.name));
                Ok(())
            })
        }
        UserAction::Delete(d) => {
            with_backend(args::target(d.db, d.server, d.token, d.ca_cert)?, |b| {
                b.delete_owner(&d.name, OwnerKind::User, d.purge)?;
                println!("deleted user {}", printable(&d.name));
                Ok(())
            })
        }
    }
}

pub fn token(action: TokenAction) -> Result<(), Error> {
    match action {
        TokenAction::Create(c) => {
            let target = args::target(c.db, c.server, c.token, c.ca_cert)?;
            let scopes = if c.scope.is_empty() {
                vec!["all".to_string()]
            } else {
                c.scope
            };
            for s in &scopes {
                if !crate::auth::valid_scope(s) {
                    return Err(Error::Usage(format!(
                        "--scope {s:?} is not a scope: all, public-only, or read:/write: with one \
                         of {}",
                        crate::auth::SCOPE_CATEGORIES.join(", ")
                    )));
                }
            }
            if c.package.is_some() && c.owner.is_none() {
                return Err(Error::Usage(
                    "--package needs --owner (the package's owner)".into(),
                ));
            }
            let expires = c.expires.as_deref().map(expiry).transpose()?;
            let name = c.name.unwrap_or_else(|| format!("cli-{}", store::now()));
            if name.trim().is_empty() || name.len() > 255 {
                return Err(Error::Usage("--name must be 1 to 255 bytes".into()));
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
        TokenAction::List(l) => {
            with_backend(args::target(l.db, l.server, l.token, l.ca_cert)?, |b| {
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
            })
        }
        TokenAction::Revoke(r) => {
            with_backend(args::target(r.db, r.server, r.token, r.ca_cert)?, |b| {
                b.revoke_token(&r.user, &r.name)?;
                println!("revoked token {:?} of {}", r.name, printable(&r.user));
                Ok(())
            })
        }
    }
}

pub fn org(action: OrgAction) -> Result<(), Error> {
    match action {
        OrgAction::Create(c) => {
            let target = args::target(c.db, c.server, c.token, c.ca_cert)?;
            let name = owner_name(&c.name, "organization")?;
            let v = c.visibility.as_deref().map(visibility).transpose()?;
            creating(target, |b| {
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
        OrgAction::List(l) => {
            with_backend(args::target(l.db, l.server, l.token, l.ca_cert)?, |b| {
                let orgs = b.orgs()?;
                println!("{:<24} VISIBILITY", "NAME");
                for o in orgs {
                    println!("{:<24} {}", printable(&o.login), o.visibility.as_str());
                }
                Ok(())
            })
        }
        OrgAction::Delete(d) => {
            with_backend(args::target(d.db, d.server, d.token, d.ca_cert)?, |b| {
                b.delete_owner(&d.name, OwnerKind::Org, d.purge)?;
                println!("deleted organization {}", printable(&d.name));
                Ok(())
            })
        }
        OrgAction::Visibility(v) => {
            let target = args::target(v.db, v.server, v.token, v.ca_cert)?;
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

pub fn member(action: MemberAction) -> Result<(), Error> {
    match action {
        MemberAction::Set(s) => {
            let target = args::target(s.db, s.server, s.token, s.ca_cert)?;
            let role = Role::parse(&s.role).ok_or_else(|| {
                Error::Usage(format!(
                    "role must be read, write or admin, not {:?}",
                    s.role
                ))
            })?;
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
        MemberAction::Remove(r) => {
            with_backend(args::target(r.db, r.server, r.token, r.ca_cert)?, |b| {
                b.remove_member(&r.org, &r.user)?;
                println!("removed {} from {}", printable(&r.user), printable(&r.org));
                Ok(())
            })
        }
        MemberAction::List(l) => {
            with_backend(args::target(l.db, l.server, l.token, l.ca_cert)?, |b| {
                let members = b.members(&l.org)?;
                println!("{:<24} ROLE", "USER");
                for (login, role) in members {
                    println!("{:<24} {}", printable(&login), role.as_str());
                }
                Ok(())
            })
        }
    }
}

pub fn audit(a: AuditCmd) -> Result<(), Error> {
    let target = args::target(a.db, a.server, a.token, a.ca_cert)?;
    let limit = match a.limit {
        Some(0) => return Err(Error::Usage("--limit must be at least 1".into())),
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

fn owner_name(name: &str, what: &str) -> Result<Owner, Error> {
    Owner::parse(name).ok_or_else(|| {
        Error::Usage(format!(
            "{name:?} is not a valid {what} name (letters, digits, '-', '_', '.'; at most 40)"
        ))
    })
}

fn visibility(v: &str) -> Result<Visibility, Error> {
    Visibility::parse(v).ok_or_else(|| {
        Error::Usage(format!(
            "visibility must be public, limited or private, not {v:?}"
        ))
    })
}

/// `--expires`: an RFC 3339 time, or a date meaning its midnight UTC; unix seconds. A time
/// already past is refused: the token would be dead on arrival.
fn expiry(s: &str) -> Result<u64, Error> {
    let at = parse_rfc3339(s)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .ok_or_else(|| {
            Error::Usage(format!(
                "--expires: {s:?} is not an RFC 3339 time or a date (2026-01-31T12:00:00Z, \
                 2026-01-31)"
            ))
        })?;
    if at <= store::now() {
        return Err(Error::Usage(format!(
            "--expires: {s:?} is already past; give a time to come"
        )));
    }
    Ok(at)
}

/// One line of stdin, without its line ending; never empty.
fn read_password() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(Error::io("--password-stdin: cannot read stdin"))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::Usage(
            "--password-stdin: no password on stdin (one line expected)".into(),
        ));
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

/// The owner of `kind` named `name` is not there.
fn missing_owner(name: &str, kind: OwnerKind) -> Missing {
    match kind {
        OwnerKind::User => Missing::User(name.into()),
        OwnerKind::Org => Missing::Org(name.into()),
    }
}

impl Offline {
    fn record(&self, action: &str, owner: &str, target: &str) {
        super::audit_local(&self.store, action, owner, target);
    }

    /// The owner named `name` if it is of `kind`.
    fn owner_of_kind(&self, name: &str, kind: OwnerKind) -> Result<UserRecord, Error> {
        self.store
            .get_user(name)?
            .filter(|u| u.kind == kind)
            .ok_or_else(|| missing_owner(name, kind).into())
    }
}

impl Backend for Offline {
    fn add_user(&self, new: &NewUser) -> Result<(), Error> {
        let mut rec = UserRecord::new(&new.name, OwnerKind::User);
        rec.is_admin = new.admin;
        rec.email = new.email.clone().unwrap_or_default();
        if let Some(v) = new.visibility {
            rec.visibility = v;
        }
        if let Some(pw) = &new.password {
            rec.password = Some(auth::hash_password(pw)?);
        }
        match self.store.create_owner(rec)? {
            Created::Done(_) => {
                self.record("user.create", &new.name, &new.name);
                Ok(())
            }
            Created::NameTaken => Err(Error::Exists(Taken::User(new.name.to_string()))),
        }
    }

    fn users(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self.store.list_owners(OwnerKind::User, 1, u64::MAX)?.items)
    }

    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), Error> {
        self.owner_of_kind(name, OwnerKind::User)?;
        let fields = change.fields();
        let password = change
            .password
            .as_deref()
            .map(auth::hash_password)
            .transpose()?;
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
            })?
            .ok_or_else(|| Missing::User(name.into()))?;
        self.record("user.update", name, &fields);
        Ok(())
    }

    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), Error> {
        self.owner_of_kind(name, kind)?;
        let what = match kind {
            OwnerKind::User => "user",
            OwnerKind::Org => "org",
        };
        match self.store.delete_owner(name, purge)? {
            UserDeleted::Done => {
                self.record(&format!("{what}.delete"), name, name);
                Ok(())
            }
            // Checked just above, and offline nothing else holds the file: not reached.
            UserDeleted::NotFound => Err(missing_owner(name, kind).into()),
            UserDeleted::OwnsPackages => Err(Error::OwnsPackages(name.into())),
        }
    }

    fn create_token(&self, new: NewToken) -> Result<String, Error> {
        if let Some(o) = &new.owner {
            if self.store.get_user(o)?.is_none() {
                return Err(Missing::TokenOwner(o.clone()).into());
            }
        }
        let (user, name) = (new.user.clone(), new.name.clone());
        match self.store.create_token(new)?.0 {
            TokenOutcome::Created(token) => {
                self.record("token.create", "", &format!("{user}/{name}"));
                Ok(token)
            }
            TokenOutcome::NoSuchUser => Err(Missing::User(user).into()),
            TokenOutcome::NameTaken => Err(Error::Exists(Taken::Token { user, name })),
        }
    }

    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, Error> {
        self.store
            .list_tokens(user)?
            .ok_or_else(|| Missing::User(user.into()).into())
    }

    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), Error> {
        if self.store.revoke_token(user, name_or_id)?.is_none() {
            return Err(Missing::Token {
                user: user.into(),
                name: name_or_id.into(),
            }
            .into());
        }
        self.record("token.revoke", "", &format!("{user}/{name_or_id}"));
        Ok(())
    }

    fn create_org(
        &self,
        name: &Owner,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), Error> {
        if let Some(o) = owner {
            self.owner_of_kind(o, OwnerKind::User)?;
        }
        let mut rec = UserRecord::new(name, OwnerKind::Org);
        if let Some(v) = visibility {
            rec.visibility = v;
        }
        if self.store.create_owner(rec)? == Created::NameTaken {
            return Err(Error::Exists(Taken::Owner(name.to_string())));
        }
        let team = self
            .store
            .create_team(name, "Owners", "", Role::Admin)?
            .ok_or_else(|| Error::Vanished(name.to_string()))?;
        if let Some(o) = owner {
            if !self.store.set_team_member(team.id, o, true)? {
                return Err(Missing::User(o.into()).into());
            }
        }
        self.record("org.create", name, owner.unwrap_or(""));
        Ok(())
    }

    fn orgs(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self.store.list_owners(OwnerKind::Org, 1, u64::MAX)?.items)
    }

    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), Error> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        self.store
            .update_owner(org, move |o| o.visibility = v)?
            .ok_or_else(|| Missing::Org(org.into()))?;
        self.record("org.update", org, &format!("visibility={}", v.as_str()));
        Ok(())
    }

    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), Error> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        self.owner_of_kind(user, OwnerKind::User)?;
        if !self.store.set_member(org, user, role)? {
            return Err(Error::NotMade {
                org: org.into(),
                user: user.into(),
            });
        }
        self.record("member.set", org, &format!("{user}={}", role.as_str()));
        Ok(())
    }

    fn remove_member(&self, org: &str, user: &str) -> Result<(), Error> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        if !self.store.remove_member(org, user)? {
            return Err(Missing::Member {
                org: org.into(),
                user: user.into(),
            }
            .into());
        }
        self.record("member.remove", org, user);
        Ok(())
    }

    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, Error> {
        self.owner_of_kind(org, OwnerKind::Org)?;
        Ok(self
            .store
            .list_members(org)?
            .into_iter()
            .map(|(u, r)| (u.login, r))
            .collect())
    }

    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, Error> {
        Ok(self.store.list_audit(filter, 1, limit as u64)?.items)
    }

    fn close(self: Box<Self>) -> Result<(), Error> {
        Ok(self.store.close()?)
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
    let mut rec = UserRecord::shown(&login, kind);
    rec.id = v.get("id").and_then(Value::as_u64).unwrap_or_default();
    rec.is_admin = v.get("is_admin").and_then(Value::as_bool).unwrap_or(false);
    rec.active = v.get("active").and_then(Value::as_bool).unwrap_or(true);
    rec.visibility = Visibility::parse(&str_of(v, "visibility")).unwrap_or(Visibility::Public);
    rec.email = str_of(v, "email");
    rec.created = time_of(v, "created").unwrap_or_default();
    rec
}

impl Remote {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, Error> {
        Ok(self.client.call(method, path, body.as_ref())?)
    }

    /// Like `call`, but a 404 becomes `not_found`.
    fn call_or(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        not_found: impl FnOnce() -> Missing,
    ) -> Result<Value, Error> {
        match self.client.call(method, path, body.as_ref()) {
            Err(client::Error::Status { status: 404, .. }) => Err(not_found().into()),
            other => Ok(other?),
        }
    }

    /// Every item of a paged listing, up to `max`; a 404 becomes `not_found` when given (the
    /// site-wide listings have no owner to miss: their 404 is the server's answer).
    fn pages(
        &self,
        path: &str,
        max: usize,
        not_found: Option<&dyn Fn() -> Missing>,
    ) -> Result<Vec<Value>, Error> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let limit = max.clamp(1, PAGE);
        let mut out = Vec::new();
        for page in 1.. {
            let page_path = format!("{path}{sep}page={page}&limit={limit}");
            let v = match not_found {
                Some(not_found) => self.call_or("GET", &page_path, None, not_found)?,
                None => self.call("GET", &page_path, None)?,
            };
            let Value::Array(items) = v else {
                return Err(Error::Answer(Answer::NotAList(path.into())));
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

fn no_user(name: &str) -> impl Fn() -> Missing + '_ {
    move || Missing::User(name.into())
}

fn no_org(name: &str) -> impl Fn() -> Missing + '_ {
    move || Missing::HiddenOrg(name.into())
}

impl Backend for Remote {
    fn add_user(&self, new: &NewUser) -> Result<(), Error> {
        let mut body = Map::new();
        body.insert("username".into(), json!(new.name.as_str()));
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
            .map_err(|e| match e {
                Error::Client(source) => Error::AdminFlag {
                    user: new.name.to_string(),
                    source,
                },
                other => other,
            })?;
        }
        Ok(())
    }

    fn users(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self
            .pages("/api/v1/admin/users", usize::MAX, None)?
            .iter()
            .map(|v| owner_from_json(v, OwnerKind::User))
            .collect())
    }

    fn modify_user(&self, name: &str, change: UserChange) -> Result<(), Error> {
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

    fn delete_owner(&self, name: &str, kind: OwnerKind, purge: bool) -> Result<(), Error> {
        let path = match kind {
            OwnerKind::User => format!("/api/v1/admin/users/{}", enc(name)),
            OwnerKind::Org => format!("/api/v1/orgs/{}", enc(name)),
        };
        let path = if purge {
            format!("{path}?purge=true")
        } else {
            path
        };
        match self.call_or("DELETE", &path, None, || missing_owner(name, kind)) {
            // The API's text names its query parameter; the CLI's is a flag.
            Err(Error::Client(client::Error::Status {
                status: 422,
                message,
            })) if message.contains("still owns packages") => {
                Err(Error::OwnsPackages(name.to_string()))
            }
            other => other.map(|_| ()),
        }
    }

    fn create_token(&self, new: NewToken) -> Result<String, Error> {
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
            .ok_or(Error::Answer(Answer::NoToken))
    }

    fn tokens(&self, user: &str) -> Result<Vec<TokenRecord>, Error> {
        let items = self.pages(
            &format!("/api/v1/users/{}/tokens", enc(user)),
            usize::MAX,
            Some(&no_user(user)),
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

    fn revoke_token(&self, user: &str, name_or_id: &str) -> Result<(), Error> {
        self.call_or(
            "DELETE",
            &format!("/api/v1/users/{}/tokens/{}", enc(user), enc(name_or_id)),
            None,
            || Missing::Token {
                user: user.into(),
                name: name_or_id.into(),
            },
        )?;
        Ok(())
    }

    fn create_org(
        &self,
        name: &Owner,
        owner: Option<&str>,
        visibility: Option<Visibility>,
    ) -> Result<(), Error> {
        let mut body = Map::new();
        body.insert("username".into(), json!(name.as_str()));
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

    fn orgs(&self) -> Result<Vec<UserRecord>, Error> {
        Ok(self
            .pages("/api/v1/admin/orgs", usize::MAX, None)?
            .iter()
            .map(|v| owner_from_json(v, OwnerKind::Org))
            .collect())
    }

    fn set_org_visibility(&self, org: &str, v: Visibility) -> Result<(), Error> {
        self.call_or(
            "PATCH",
            &format!("/api/v1/orgs/{}", enc(org)),
            Some(json!({ "visibility": v.as_str() })),
            no_org(org),
        )?;
        Ok(())
    }

    fn set_member(&self, org: &str, user: &str, role: Role) -> Result<(), Error> {
        self.call_or(
            "PUT",
            &format!("/api/v1/orgs/{}/members/{}", enc(org), enc(user)),
            Some(json!({ "role": role.as_str() })),
            || Missing::OrgOrUser {
                org: org.into(),
                user: user.into(),
            },
        )?;
        Ok(())
    }

    fn remove_member(&self, org: &str, user: &str) -> Result<(), Error> {
        self.call_or(
            "DELETE",
            &format!("/api/v1/orgs/{}/members/{}", enc(org), enc(user)),
            None,
            || Missing::MemberOrOrg {
                org: org.into(),
                user: user.into(),
            },
        )?;
        Ok(())
    }

    fn members(&self, org: &str) -> Result<Vec<(String, Role)>, Error> {
        let items = self.pages(
            &format!("/api/v1/orgs/{}/members", enc(org)),
            usize::MAX,
            Some(&no_org(org)),
        )?;
        Ok(items
            .iter()
            .map(|v| {
                let role = Role::parse(&str_of(v, "role")).unwrap_or(Role::Read);
                (str_of(v, "login"), role)
            })
            .collect())
    }

    fn audit(&self, filter: &AuditFilter, limit: usize) -> Result<Vec<AuditRecord>, Error> {
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
            .pages(&path, limit, None)?
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

    fn close(self: Box<Self>) -> Result<(), Error> {
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
        assert_eq!(expiry("2999-01-02").ok(), Some(32_472_230_400));
        assert_eq!(expiry("2999-01-01T00:01:00Z").ok(), Some(32_472_144_060));
        assert!(expiry("tomorrow").is_err());
        // A time already past makes a token that never works: refused.
        let past = expiry("1970-01-02").map_err(|e| e.to_string());
        assert!(past.is_err_and(|e| e.contains("already past")));
    }

    #[test]
    fn changes_name_their_fields() {
        let c = UserChange {
            active: Some(false),
            password: Some("x".into()),
            ..UserChange::default()
        };
        assert_eq!(c.fields(), "active,password");
        assert_eq!(c.describe(), "active false, password");
        assert_eq!(UserChange::default().fields(), "");
    }
}
