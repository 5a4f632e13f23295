//! Users and organizations (one namespace), memberships and teams, and personal access tokens.
//! Tokens are stored only as their SHA-256 and looked up by it, so no stored secret is ever
//! compared byte by byte; passwords only as Argon2id hashes (made by `auth`).

use super::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use sha2::{Digest, Sha256};

/// What creating a user or organization came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    Done(u64),
    /// A user or organization already has that name (in any case).
    NameTaken,
}

/// What deleting a user or organization came to.
#[derive(Debug, PartialEq, Eq)]
pub enum UserDeleted {
    Done,
    NotFound,
    /// It still owns packages (delete them first, or purge).
    OwnsPackages,
}

/// A token to create.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub user: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub package: Option<String>,
    pub expires: Option<u64>,
    /// Use this token instead of drawing one (`SHELF_ADMIN_TOKEN`).
    pub given: Option<String>,
}

fn role_from_u8(v: u8) -> Role {
    match v {
        0 => Role::Read,
        1 => Role::Write,
        _ => Role::Admin,
    }
}

fn role_to_u8(r: Role) -> u8 {
    match r {
        Role::Read => 0,
        Role::Write => 1,
        Role::Admin => 2,
    }
}

impl Store {
    pub fn user_count(&self) -> Result<u64> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        users.len().ctx("counting users")
    }

    /// A user or organization by name (any case).
    pub fn get_user(&self, login: &str) -> Result<Option<UserRecord>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let row = users.get(fold_case(login).as_str()).ctx("reading a user")?;
        row.map(|v| decode(v.value())).transpose()
    }

    /// Creates a user or organization from `rec` (its id is assigned here).
    pub fn create_owner(&self, rec: UserRecord) -> Result<Created> {
        self.durable(move |txn| {
            let mut rec = rec;
            let key = rec.key();
            let mut users = txn.open_table(USERS).ctx("opening users")?;
            if users.get(key.as_str()).ctx("reading a user")?.is_some() {
                return Ok(Created::NameTaken);
            }
            rec.id = Store::next_id(txn)?;
            users
                .insert(key.as_str(), encode(&rec)?.as_slice())
                .ctx("writing a user")?;
            Ok(Created::Done(rec.id))
        })
    }

    /// Creates a plain user; `Ok(false)` when the name is taken.
    pub fn create_user(&self, login: &Owner, is_admin: bool) -> Result<bool> {
        let mut rec = UserRecord::new(login, OwnerKind::User);
        rec.is_admin = is_admin;
        Ok(matches!(self.create_owner(rec)?, Created::Done(_)))
    }

    /// Users or organizations, by name, one page; and how many there are.
    pub fn list_owners(&self, kind: OwnerKind, page: u64, limit: u64) -> Result<Page<UserRecord>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let skip = page.saturating_sub(1).saturating_mul(limit);
        let mut total = 0;
        let mut items = Vec::new();
        for row in users.iter().ctx("listing users")? {
            let (_, v) = row.ctx("listing users")?;
            let rec: UserRecord = decode(v.value())?;
            if rec.kind != kind {
                continue;
            }
            if total >= skip && (items.len() as u64) < limit {
                items.push(rec);
            }
            total += 1;
        }
        Ok(Page { total, items })
    }

    /// Changes a user or organization in one transaction; `None` when it does not exist. The
    /// name and kind cannot change.
    pub fn update_owner(
        &self,
        login: &str,
        change: impl FnOnce(&mut UserRecord) + Send + 'static,
    ) -> Result<Option<UserRecord>> {
        let key = fold_case(login);
        self.durable(move |txn| {
            let mut users = txn.open_table(USERS).ctx("opening users")?;
            let current = users
                .get(key.as_str())
                .ctx("reading a user")?
                .map(|g| decode::<UserRecord>(g.value()))
                .transpose()?;
            let Some(mut rec) = current else {
                return Ok(None);
            };
            let (id, login, kind, created) = (rec.id, rec.login.clone(), rec.kind, rec.created);
            change(&mut rec);
            rec.id = id;
            rec.login = login;
            rec.kind = kind;
            rec.created = created;
            users
                .insert(key.as_str(), encode(&rec)?.as_slice())
                .ctx("writing a user")?;
            Ok(Some(rec))
        })
    }

    /// Deletes a user or organization with its tokens, memberships and teams. Refused while it
    /// owns packages unless `purge`, which deletes them too.
    pub fn delete_owner(&self, login: &str, purge: bool) -> Result<UserDeleted> {
        let key = fold_case(login);
        self.durable(move |txn| {
            let exists = txn
                .open_table(USERS)
                .ctx("opening users")?
                .get(key.as_str())
                .ctx("reading a user")?
                .is_some();
            if !exists {
                return Ok(UserDeleted::NotFound);
            }
            let packages: Vec<String> = {
                let table = txn.open_table(PACKAGES).ctx("opening packages")?;
                let next = format!("{key}\0");
                let mut names = Vec::new();
                for row in table
                    .range((key.as_str(), "", "")..(next.as_str(), "", ""))
                    .ctx("listing packages")?
                {
                    names.push(row.ctx("listing packages")?.0.value().2.to_string());
                }
                names
            };
            if !packages.is_empty() && !purge {
                return Ok(UserDeleted::OwnsPackages);
            }
            for name in &packages {
                files::delete_package_rows(txn, &key, name)?;
            }
            limits::forget_owner(txn, &key)?;
            // tokens
            let hashes: Vec<[u8; 32]> = {
                let mut index = txn.open_table(USER_TOKENS).ctx("opening user_tokens")?;
                let next = format!("{key}\0");
                let mut out = Vec::new();
                for row in index
                    .extract_from_if((key.as_str(), "")..(next.as_str(), ""), |_, _| true)
                    .ctx("deleting tokens")?
                {
                    out.push(*row.ctx("deleting tokens")?.1.value());
                }
                out
            };
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            for h in &hashes {
                tokens.remove(h).ctx("deleting a token")?;
            }
            drop(tokens);
            // memberships of the user, and members of the organization
            let mut members = txn.open_table(MEMBERS).ctx("opening members")?;
            let mut gone = Vec::new();
            for row in members.iter().ctx("listing members")? {
                let (k, _) = row.ctx("listing members")?;
                let (org, user) = k.value();
                if org == key || user == key {
                    gone.push((org.to_string(), user.to_string()));
                }
            }
            for (org, user) in &gone {
                members
                    .remove((org.as_str(), user.as_str()))
                    .ctx("deleting a membership")?;
            }
            drop(members);
            let mut teams = txn.open_table(TEAMS).ctx("opening teams")?;
            let mut team_ids = Vec::new();
            for row in teams.iter().ctx("listing teams")? {
                let (k, v) = row.ctx("listing teams")?;
                if decode::<TeamRecord>(v.value())?.org == key {
                    team_ids.push(k.value());
                }
            }
            for id in &team_ids {
                teams.remove(id).ctx("deleting a team")?;
            }
            drop(teams);
            let mut team_members = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
            let mut gone = Vec::new();
            for row in team_members.iter().ctx("listing team members")? {
                let (k, _) = row.ctx("listing team members")?;
                let (team, user) = k.value();
                if team_ids.contains(&team) || user == key {
                    gone.push((team, user.to_string()));
                }
            }
            for (team, user) in &gone {
                team_members
                    .remove((*team, user.as_str()))
                    .ctx("deleting a team membership")?;
            }
            drop(team_members);
            txn.open_table(USERS)
                .ctx("opening users")?
                .remove(key.as_str())
                .ctx("deleting a user")?;
            Ok(UserDeleted::Done)
        })
    }

    // ----------------------------------------------------------------- organizations

    /// Sets a user's direct role in an organization; `Ok(false)` if either does not exist (or
    /// the organization is not one).
    pub fn set_member(&self, org: &str, user: &str, role: Role) -> Result<bool> {
        let (o, u) = (fold_case(org), fold_case(user));
        self.durable(move |txn| {
            if !is_kind(txn, &o, OwnerKind::Org)? || !is_kind(txn, &u, OwnerKind::User)? {
                return Ok(false);
            }
            txn.open_table(MEMBERS)
                .ctx("opening members")?
                .insert((o.as_str(), u.as_str()), role_to_u8(role))
                .ctx("writing a membership")?;
            Ok(true)
        })
    }

    /// Removes a user from an organization: its direct role and its teams there. `Ok(false)`
    /// when it was not a member.
    pub fn remove_member(&self, org: &str, user: &str) -> Result<bool> {
        let (o, u) = (fold_case(org), fold_case(user));
        self.durable(move |txn| {
            let direct = txn
                .open_table(MEMBERS)
                .ctx("opening members")?
                .remove((o.as_str(), u.as_str()))
                .ctx("deleting a membership")?
                .is_some();
            let teams = org_team_ids(txn, &o)?;
            let mut team_members = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
            let mut in_team = false;
            for id in teams {
                in_team |= team_members
                    .remove((id, u.as_str()))
                    .ctx("deleting a team membership")?
                    .is_some();
            }
            Ok(direct || in_team)
        })
    }

    /// A user's effective role in an organization: the highest of its direct role and its
    /// teams' permissions.
    pub fn role_of(&self, org: &str, user: &str) -> Result<Option<Role>> {
        let (o, u) = (fold_case(org), fold_case(user));
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let members = txn.open_table(MEMBERS).ctx("opening members")?;
        let mut best = members
            .get((o.as_str(), u.as_str()))
            .ctx("reading a membership")?
            .map(|g| role_from_u8(g.value()));
        let teams = txn.open_table(TEAMS).ctx("opening teams")?;
        let team_members = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
        for row in teams.iter().ctx("listing teams")? {
            let (k, v) = row.ctx("listing teams")?;
            let team: TeamRecord = decode(v.value())?;
            if team.org != o {
                continue;
            }
            if team_members
                .get((k.value(), u.as_str()))
                .ctx("reading a team membership")?
                .is_some()
            {
                best = best.max(Some(team.permission));
            }
        }
        Ok(best)
    }

    /// An organization's members with their effective roles, by name.
    pub fn list_members(&self, org: &str) -> Result<Vec<(UserRecord, Role)>> {
        let o = fold_case(org);
        let logins: Vec<String> = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let mut names = std::collections::BTreeSet::new();
            let members = txn.open_table(MEMBERS).ctx("opening members")?;
            let next = format!("{o}\0");
            for row in members
                .range((o.as_str(), "")..(next.as_str(), ""))
                .ctx("listing members")?
            {
                names.insert(row.ctx("listing members")?.0.value().1.to_string());
            }
            let team_members = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
            let teams = txn.open_table(TEAMS).ctx("opening teams")?;
            for row in teams.iter().ctx("listing teams")? {
                let (k, v) = row.ctx("listing teams")?;
                if decode::<TeamRecord>(v.value())?.org != o {
                    continue;
                }
                let id = k.value();
                for row in team_members
                    .range((id, "")..(id + 1, ""))
                    .ctx("listing team members")?
                {
                    names.insert(row.ctx("listing team members")?.0.value().1.to_string());
                }
            }
            names.into_iter().collect()
        };
        let mut out = Vec::new();
        for login in logins {
            if let (Some(user), Some(role)) = (self.get_user(&login)?, self.role_of(&o, &login)?) {
                out.push((user, role));
            }
        }
        Ok(out)
    }

    /// The organizations a user belongs to (directly or through a team).
    pub fn orgs_of(&self, user: &str) -> Result<Vec<UserRecord>> {
        let u = fold_case(user);
        let orgs: std::collections::BTreeSet<String> = {
            let txn = self.db()?.begin_read().ctx("beginning a read")?;
            let mut orgs = std::collections::BTreeSet::new();
            let members = txn.open_table(MEMBERS).ctx("opening members")?;
            for row in members.iter().ctx("listing members")? {
                let (k, _) = row.ctx("listing members")?;
                let (org, member) = k.value();
                if member == u {
                    orgs.insert(org.to_string());
                }
            }
            let teams = txn.open_table(TEAMS).ctx("opening teams")?;
            let team_members = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
            for row in teams.iter().ctx("listing teams")? {
                let (k, v) = row.ctx("listing teams")?;
                if team_members
                    .get((k.value(), u.as_str()))
                    .ctx("reading a team membership")?
                    .is_some()
                {
                    orgs.insert(decode::<TeamRecord>(v.value())?.org);
                }
            }
            orgs
        };
        let mut out = Vec::new();
        for org in orgs {
            if let Some(rec) = self.get_user(&org)? {
                out.push(rec);
            }
        }
        Ok(out)
    }

    // ------------------------------------------------------------------------ teams

    /// Creates a team in an organization; `None` if the organization does not exist or
    /// already has a team of that name (in any case), as Gitea's team names are unique.
    pub fn create_team(
        &self,
        org: &str,
        name: &str,
        description: &str,
        permission: Role,
    ) -> Result<Option<TeamRecord>> {
        let o = fold_case(org);
        let (name, description) = (name.to_string(), description.to_string());
        self.durable(move |txn| {
            if !is_kind(txn, &o, OwnerKind::Org)? {
                return Ok(None);
            }
            {
                let teams = txn.open_table(TEAMS).ctx("opening teams")?;
                for row in teams.iter().ctx("listing teams")? {
                    let team: TeamRecord = decode(row.ctx("listing teams")?.1.value())?;
                    if team.org == o && fold_case(&team.name) == fold_case(&name) {
                        return Ok(None);
                    }
                }
            }
            let rec = TeamRecord {
                id: Store::next_id(txn)?,
                org: o,
                name,
                description,
                permission,
            };
            txn.open_table(TEAMS)
                .ctx("opening teams")?
                .insert(rec.id, encode(&rec)?.as_slice())
                .ctx("writing a team")?;
            Ok(Some(rec))
        })
    }

    pub fn get_team(&self, id: u64) -> Result<Option<TeamRecord>> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let teams = txn.open_table(TEAMS).ctx("opening teams")?;
        let row = teams.get(id).ctx("reading a team")?;
        row.map(|v| decode(v.value())).transpose()
    }

    pub fn list_teams(&self, org: &str) -> Result<Vec<TeamRecord>> {
        let o = fold_case(org);
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let teams = txn.open_table(TEAMS).ctx("opening teams")?;
        let mut out = Vec::new();
        for row in teams.iter().ctx("listing teams")? {
            let team: TeamRecord = decode(row.ctx("listing teams")?.1.value())?;
            if team.org == o {
                out.push(team);
            }
        }
        Ok(out)
    }

    /// Adds or removes a user in a team; `Ok(false)` if the team or user does not exist (or,
    /// for a removal, the user was not in it).
    pub fn set_team_member(&self, team: u64, user: &str, member: bool) -> Result<bool> {
        let u = fold_case(user);
        self.durable(move |txn| {
            let exists = txn
                .open_table(TEAMS)
                .ctx("opening teams")?
                .get(team)
                .ctx("reading a team")?
                .is_some();
            if !exists || !is_kind(txn, &u, OwnerKind::User)? {
                return Ok(false);
            }
            let mut tm = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
            if member {
                tm.insert((team, u.as_str()), ())
                    .ctx("writing a team membership")?;
                Ok(true)
            } else {
                Ok(tm
                    .remove((team, u.as_str()))
                    .ctx("deleting a team membership")?
                    .is_some())
            }
        })
    }

    pub fn team_has_member(&self, team: u64, user: &str) -> Result<bool> {
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let tm = txn.open_table(TEAM_MEMBERS).ctx("opening team_members")?;
        Ok(tm
            .get((team, fold_case(user).as_str()))
            .ctx("reading a team membership")?
            .is_some())
    }

    // ---------------------------------------------------------------------------- tokens

    /// Stores a token given by the caller (`SHELF_ADMIN_TOKEN`) or a fresh random one; only its
    /// SHA-256 is kept. Returns the token in clear, the one time it is ever available.
    pub fn create_token(&self, new: NewToken) -> Result<(TokenOutcome, Option<TokenRecord>)> {
        let token = match new.given {
            Some(t) => t,
            None => new_token().map_err(|e| Error::Db("drawing a token", Box::new(e.into())))?,
        };
        let hash = token_hash(&token);
        let user = fold_case(&new.user);
        let last_eight = token
            .char_indices()
            .rev()
            .nth(7)
            .map(|(i, _)| token[i..].to_string())
            .unwrap_or_else(|| token.clone());
        let mut rec = TokenRecord {
            id: 0,
            user: user.clone(),
            name: new.name.clone(),
            created: now(),
            last_eight,
            scopes: new.scopes,
            owner: new.owner.map(|o| fold_case(&o)),
            package: new.package.map(|p| fold_case(&p)),
            expires: new.expires,
            last_used: None,
        };
        let name_key = fold_case(&new.name);
        self.durable(move |txn| {
            if !is_kind(txn, &user, OwnerKind::User)? {
                return Ok((TokenOutcome::NoSuchUser, None));
            }
            let mut index = txn.open_table(USER_TOKENS).ctx("opening user_tokens")?;
            if index
                .get((user.as_str(), name_key.as_str()))
                .ctx("reading a token name")?
                .is_some()
            {
                return Ok((TokenOutcome::NameTaken, None));
            }
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            if tokens.get(&hash).ctx("reading a token")?.is_some() {
                return Ok((TokenOutcome::NameTaken, None));
            }
            rec.id = Store::next_id(txn)?;
            tokens
                .insert(&hash, encode(&rec)?.as_slice())
                .ctx("writing a token")?;
            index
                .insert((user.as_str(), name_key.as_str()), &hash)
                .ctx("indexing a token")?;
            Ok((TokenOutcome::Created(token), Some(rec)))
        })
    }

    /// A user's tokens (never the tokens themselves), oldest first; `None` if no such user.
    pub fn list_tokens(&self, login: &str) -> Result<Option<Vec<TokenRecord>>> {
        let user = fold_case(login);
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        if users.get(user.as_str()).ctx("reading a user")?.is_none() {
            return Ok(None);
        }
        let index = txn.open_table(USER_TOKENS).ctx("opening user_tokens")?;
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let next = format!("{user}\0");
        let mut out = Vec::new();
        for row in index
            .range((user.as_str(), "")..(next.as_str(), ""))
            .ctx("listing tokens")?
        {
            let (_, hash) = row.ctx("listing tokens")?;
            if let Some(t) = tokens.get(hash.value()).ctx("reading a token")? {
                let mut rec: TokenRecord = decode(t.value())?;
                if let Some(when) = self.pending_last_used(hash.value()) {
                    rec.last_used = Some(when);
                }
                out.push(rec);
            }
        }
        out.sort_by_key(|t| t.id);
        Ok(Some(out))
    }

    /// Deletes the user's token with that name (any case) or id; the revoked record, or `None`.
    pub fn revoke_token(&self, login: &str, name_or_id: &str) -> Result<Option<TokenRecord>> {
        let wanted = name_or_id.to_string();
        self.revoke_token_where(login, move |rec| {
            rec.name.eq_ignore_ascii_case(&wanted) || rec.id.to_string() == wanted
        })
    }

    /// Deletes the user's token with this id (never one whose name happens to be the number).
    pub fn revoke_token_id(&self, login: &str, id: u64) -> Result<Option<TokenRecord>> {
        self.revoke_token_where(login, move |rec| rec.id == id)
    }

    /// Deletes the first of the user's tokens (in name order) that `pick` chooses.
    fn revoke_token_where(
        &self,
        login: &str,
        pick: impl Fn(&TokenRecord) -> bool + Send + 'static,
    ) -> Result<Option<TokenRecord>> {
        let user = fold_case(login);
        self.durable(move |txn| {
            let mut index = txn.open_table(USER_TOKENS).ctx("opening user_tokens")?;
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            let next = format!("{user}\0");
            let mut victim = None;
            for row in index
                .range((user.as_str(), "")..(next.as_str(), ""))
                .ctx("listing tokens")?
            {
                let (k, hash) = row.ctx("listing tokens")?;
                let Some(t) = tokens.get(hash.value()).ctx("reading a token")? else {
                    continue;
                };
                let rec: TokenRecord = decode(t.value())?;
                if pick(&rec) {
                    victim = Some((k.value().1.to_string(), *hash.value(), rec));
                    break;
                }
            }
            let Some((name_key, hash, rec)) = victim else {
                return Ok(None);
            };
            index
                .remove((user.as_str(), name_key.as_str()))
                .ctx("unindexing a token")?;
            tokens.remove(&hash).ctx("deleting a token")?;
            Ok(Some(rec))
        })
    }

    /// The token record and its user for a token in clear. Looked up by the token's hash.
    pub fn token_auth(&self, token: &str) -> Result<Option<(UserRecord, TokenRecord, [u8; 32])>> {
        let hash = token_hash(token);
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let Some(row) = tokens.get(&hash).ctx("reading a token")? else {
            return Ok(None);
        };
        let t: TokenRecord = decode(row.value())?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let Some(user) = users.get(t.user.as_str()).ctx("reading a user")? else {
            return Ok(None);
        };
        Ok(Some((decode(user.value())?, t, hash)))
    }

    /// The active user a token belongs to (tests).
    #[cfg(test)]
    pub(crate) fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>> {
        Ok(self.token_auth(token)?.map(|(u, _, _)| u))
    }

    /// Notes that a token was used now; written with the download counters, so that checking
    /// a token never turns a read into a write transaction.
    pub fn touch_token(&self, hash: [u8; 32]) {
        if let Ok(mut pending) = self.token_uses.lock() {
            pending.insert(hash, now());
        }
    }

    fn pending_last_used(&self, hash: &[u8; 32]) -> Option<u64> {
        self.token_uses.lock().ok()?.get(hash).copied()
    }
}

/// Whether `key` names an existing owner of that kind.
fn is_kind(txn: &WriteTransaction, key: &str, kind: OwnerKind) -> Result<bool> {
    let users = txn.open_table(USERS).ctx("opening users")?;
    let rec = users
        .get(key)
        .ctx("reading a user")?
        .map(|g| decode::<UserRecord>(g.value()))
        .transpose()?;
    Ok(rec.is_some_and(|r| r.kind == kind))
}

fn org_team_ids(txn: &WriteTransaction, org: &str) -> Result<Vec<u64>> {
    let teams = txn.open_table(TEAMS).ctx("opening teams")?;
    let mut ids = Vec::new();
    for row in teams.iter().ctx("listing teams")? {
        let (k, v) = row.ctx("listing teams")?;
        if decode::<TeamRecord>(v.value())?.org == org {
            ids.push(k.value());
        }
    }
    Ok(ids)
}

/// A new personal access token: 160 random bits as 40 hex digits (the shape of Gitea's tokens).
pub fn new_token() -> io::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::super::tests::temp_store;
    use super::*;

    fn token(s: &Store, user: &str, name: &str) -> (TokenOutcome, Option<TokenRecord>) {
        s.create_token(NewToken {
            user: user.into(),
            name: name.into(),
            scopes: vec!["all".into()],
            ..NewToken::default()
        })
        .expect("token")
    }

    #[test]
    fn tokens_are_hashed_and_revocable() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("Bob"), false).expect("user"));
        assert!(!s.create_user(&Owner::of("bob"), false).expect("user"));
        let (TokenOutcome::Created(tok), Some(rec)) = token(s, "bob", "ci") else {
            panic!("token not created");
        };
        assert_eq!(tok.len(), 40);
        assert_eq!(rec.last_eight, tok[32..]);
        assert_eq!(token(s, "BOB", "CI").0, TokenOutcome::NameTaken);
        assert_eq!(token(s, "nobody", "x").0, TokenOutcome::NoSuchUser);
        assert_eq!(
            s.user_by_token(&tok).expect("lookup").expect("found").login,
            "Bob"
        );
        assert_eq!(s.list_tokens("bob").expect("list").expect("user").len(), 1);
        assert!(s.revoke_token("bob", "ci").expect("revoke").is_some());
        assert!(s.user_by_token(&tok).expect("lookup").is_none());
        assert!(s.revoke_token("bob", "ci").expect("revoke").is_none());
    }

    #[test]
    fn roles_combine_direct_membership_and_teams() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("ann"), false).expect("user"));
        assert!(matches!(
            s.create_owner(UserRecord::new(&Owner::of("Acme"), OwnerKind::Org))
                .expect("org"),
            Created::Done(_)
        ));
        assert_eq!(
            s.create_owner(UserRecord::new(&Owner::of("ACME"), OwnerKind::User))
                .expect("u"),
            Created::NameTaken,
            "users and organizations share one namespace"
        );
        assert_eq!(s.role_of("acme", "ann").expect("role"), None);
        assert!(s.set_member("acme", "ann", Role::Read).expect("member"));
        assert_eq!(s.role_of("acme", "ann").expect("role"), Some(Role::Read));
        let team = s
            .create_team("acme", "publishers", "", Role::Write)
            .expect("team")
            .expect("org exists");
        assert!(
            s.create_team("ACME", "Publishers", "", Role::Read)
                .expect("team")
                .is_none(),
            "team names are unique in an organization"
        );
        assert!(s
            .set_team_member(team.id, "ann", true)
            .expect("team member"));
        assert_eq!(s.role_of("ACME", "Ann").expect("role"), Some(Role::Write));
        assert_eq!(s.orgs_of("ann").expect("orgs").len(), 1);
        assert_eq!(s.list_members("acme").expect("members").len(), 1);
        assert!(!s.set_member("ann", "acme", Role::Read).expect("not an org"));
        assert!(s.remove_member("acme", "ann").expect("remove"));
        assert_eq!(s.role_of("acme", "ann").expect("role"), None);
        assert_eq!(
            s.delete_owner("acme", false).expect("delete"),
            UserDeleted::Done
        );
        assert!(s.list_teams("acme").expect("teams").is_empty());
    }

    #[test]
    fn owners_with_packages_are_kept_unless_purged() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("carl"), false).expect("user"));
        let at = FileCoords::parse("carl", "p", "1", "f");
        s.upload(
            &at,
            "carl",
            &b"x"[..],
            crate::chunk::Want::default(),
            |_| Ok(()),
        )
        .expect("upload");
        assert_eq!(
            s.delete_owner("carl", false).expect("d"),
            UserDeleted::OwnsPackages
        );
        assert_eq!(s.delete_owner("carl", true).expect("d"), UserDeleted::Done);
        assert!(s.get_user("carl").expect("get").is_none());
        let report = s.check().expect("check");
        assert!(report.faults.is_empty(), "{:?}", report.faults);
        assert_eq!(report.chunks, 0);
    }
}
