//! Browser sessions (the pages' sign-in, issue 13): kept by the SHA-256 of their secret, as
//! tokens are, so that a copy of the database signs nobody in. A session expires, can be
//! listed and revoked by its user, and ends when its user is deactivated, deleted (a new
//! account of the same name has another id) or given a new password by anyone (the session
//! holds a tag of the password hash it was made under).

use super::{decode, encode, fold_case, now, Context, Result, Store, SESSIONS, USERS};
use crate::store::UserRecord;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

/// One signed-in browser.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub id: u64,
    /// The user's login, case-folded.
    pub user: String,
    /// The account's id: a later account of the same name is another one.
    pub user_id: u64,
    /// A tag of the password hash the session was made under.
    pub password_tag: String,
    pub created: u64,
    pub expires: u64,
    /// The address it signed in from, and the browser's `User-Agent` (first 200 characters).
    pub addr: String,
    pub agent: String,
    /// The secret every state-changing form of this session must carry.
    pub csrf: String,
}

/// A session's secret in clear: the cookie's value, shown to nobody else.
pub struct NewSession {
    pub secret: String,
    pub record: SessionRecord,
}

impl Store {
    /// Opens a session for `user` lasting `ttl_secs`. Expired sessions of every user are
    /// dropped in the same commit, so the table never grows past the live ones.
    pub fn create_session(
        &self,
        user: &UserRecord,
        ttl_secs: u64,
        addr: &str,
        agent: &str,
    ) -> Result<NewSession> {
        let secret = random_hex(32)?;
        let csrf = random_hex(32)?;
        let hash = super::token_hash(&secret);
        let created = now();
        let mut record = SessionRecord {
            id: 0,
            user: fold_case(&user.login),
            user_id: user.id,
            password_tag: password_tag(user),
            created,
            expires: created.saturating_add(ttl_secs),
            addr: addr.to_string(),
            agent: agent.chars().take(200).collect(),
            csrf,
        };
        let rec = record.clone();
        record.id = self.durable(move |txn| {
            let mut rec = rec;
            rec.id = Store::next_id(txn)?;
            let mut sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
            let mut expired = Vec::new();
            for row in sessions.iter().ctx("listing sessions")? {
                let (k, v) = row.ctx("listing sessions")?;
                // A row that no longer decodes is no session anyone can use: dropped too.
                if readable(v.value()).is_none_or(|s| s.expires <= created) {
                    expired.push(*k.value());
                }
            }
            for k in &expired {
                sessions.remove(k).ctx("dropping an expired session")?;
            }
            sessions
                .insert(&hash, encode(&rec)?.as_slice())
                .ctx("writing a session")?;
            Ok(rec.id)
        })?;
        Ok(NewSession { secret, record })
    }

    /// The live session with this secret and its (active) user.
    pub fn session_auth(&self, secret: &str) -> Result<Option<(UserRecord, SessionRecord)>> {
        if secret.is_empty() || secret.len() > 128 {
            return Ok(None);
        }
        let hash = super::token_hash(secret);
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
        let Some(row) = sessions.get(&hash).ctx("reading a session")? else {
            return Ok(None);
        };
        let Some(s) = readable(row.value()) else {
            return Ok(None);
        };
        if s.expires <= now() {
            return Ok(None);
        }
        let users = txn.open_table(USERS).ctx("opening users")?;
        let Some(u) = users.get(s.user.as_str()).ctx("reading a user")? else {
            return Ok(None);
        };
        let user: UserRecord = decode(u.value())?;
        if !belongs(&s, &user) {
            return Ok(None);
        }
        Ok(Some((user, s)))
    }

    /// A user's live sessions, newest first.
    pub fn list_sessions(&self, owner: &UserRecord) -> Result<Vec<SessionRecord>> {
        let user = fold_case(&owner.login);
        let t = now();
        let txn = self.db()?.begin_read().ctx("beginning a read")?;
        let sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
        let mut out = Vec::new();
        for row in sessions.iter().ctx("listing sessions")? {
            let (_, v) = row.ctx("listing sessions")?;
            let Some(s) = readable(v.value()) else {
                continue;
            };
            if s.user == user && s.expires > t && belongs(&s, owner) {
                out.push(s);
            }
        }
        out.sort_by_key(|s| std::cmp::Reverse(s.id));
        Ok(out)
    }

    /// Ends `user`'s session `id`; false when there is none.
    pub fn revoke_session(&self, user: &str, id: u64) -> Result<bool> {
        let user = fold_case(user);
        self.durable(move |txn| {
            let mut sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
            let mut victim = None;
            for row in sessions.iter().ctx("listing sessions")? {
                let (k, v) = row.ctx("listing sessions")?;
                let Some(s) = readable(v.value()) else {
                    continue;
                };
                if s.user == user && s.id == id {
                    victim = Some(*k.value());
                    break;
                }
            }
            match victim {
                Some(k) => {
                    sessions.remove(&k).ctx("ending a session")?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Ends every session of `login` (a password change from the pages); how many there were.
    pub fn end_sessions_of(&self, login: &str) -> Result<u64> {
        let user = fold_case(login);
        self.durable(move |txn| {
            let mut sessions = txn.open_table(SESSIONS).ctx("opening sessions")?;
            let mut victims = Vec::new();
            for row in sessions.iter().ctx("listing sessions")? {
                let (k, v) = row.ctx("listing sessions")?;
                if readable(v.value()).is_none_or(|s| s.user == user) {
                    victims.push(*k.value());
                }
            }
            for k in &victims {
                sessions.remove(k).ctx("ending a session")?;
            }
            Ok(victims.len() as u64)
        })
    }

    /// Ends the session with this secret (sign-out).
    pub fn end_session(&self, secret: &str) -> Result<()> {
        let hash = super::token_hash(secret);
        self.durable(move |txn| {
            txn.open_table(SESSIONS)
                .ctx("opening sessions")?
                .remove(&hash)
                .ctx("ending a session")?;
            Ok(())
        })
    }
}

/// A stored session, or `None` for a row that does not decode (written by another version):
/// sessions are disposable, so such a row signs nobody in and is dropped, instead of making
/// every sign-in fail.
fn readable(bytes: &[u8]) -> Option<SessionRecord> {
    decode(bytes).ok()
}

/// Whether `s` is a live session of this very account, as it is now.
fn belongs(s: &SessionRecord, user: &UserRecord) -> bool {
    user.active
        && user.kind == crate::store::OwnerKind::User
        && user.id == s.user_id
        && s.password_tag == password_tag(user)
}

/// The first 8 bytes of the SHA-256 of the account's password hash, in hex.
fn password_tag(user: &UserRecord) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(user.password.as_deref().unwrap_or("").as_bytes());
    hex::encode(&d[..8])
}

/// `bytes` random bytes as hex (session secrets, CSRF secrets).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut b = vec![0u8; bytes];
    getrandom::fill(&mut b).map_err(|e| {
        let e = std::io::Error::other(format!("no randomness: {e}"));
        super::Error::Db("drawing a session secret", Box::new(e.into()))
    })?;
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use crate::names::Owner;
    use crate::store::tests::temp_store;

    #[test]
    fn sessions_live_expire_list_and_end() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("alice"), false).expect("user"));
        let alice = s.get_user("alice").expect("read").expect("alice");
        let a = s
            .create_session(&alice, 3600, "10.0.0.1", "test")
            .expect("session");
        let b = s
            .create_session(&alice, 3600, "10.0.0.2", "test")
            .expect("session");
        let (user, rec) = s.session_auth(&a.secret).expect("read").expect("live");
        assert_eq!((user.login.as_str(), rec.id), ("alice", a.record.id));
        assert_eq!(rec.csrf.len(), 64);
        assert!(s.session_auth("not a session").expect("read").is_none());
        let listed: Vec<u64> = s
            .list_sessions(&alice)
            .expect("list")
            .iter()
            .map(|x| x.id)
            .collect();
        assert_eq!(listed, vec![b.record.id, a.record.id]);
        assert!(s.revoke_session("alice", a.record.id).expect("revoke"));
        assert!(!s.revoke_session("alice", a.record.id).expect("again"));
        assert!(s.session_auth(&a.secret).expect("read").is_none());
        s.end_session(&b.secret).expect("end");
        assert!(s.session_auth(&b.secret).expect("read").is_none());
        // An expired one is gone for reading at once, and from the table at the next sign-in.
        let old = s.create_session(&alice, 0, "", "").expect("session");
        assert!(s.session_auth(&old.secret).expect("read").is_none());
        assert!(s.list_sessions(&alice).expect("list").is_empty());
        // A new password (set anywhere) or a new account of the same name ends a session.
        let c = s.create_session(&alice, 3600, "", "").expect("session");
        s.update_owner("alice", |u| u.password = Some("$argon2id$other".into()))
            .expect("update");
        assert!(s.session_auth(&c.secret).expect("read").is_none());
        let alice = s.get_user("alice").expect("read").expect("alice");
        let d = s.create_session(&alice, 3600, "", "").expect("session");
        assert!(s.session_auth(&d.secret).expect("read").is_some());
        s.delete_owner("alice", true).expect("delete");
        assert!(s.create_user(&Owner::of("alice"), false).expect("again"));
        assert!(s.session_auth(&d.secret).expect("read").is_none());
        assert_eq!(s.end_sessions_of("alice").expect("end"), 2);
    }

    #[test]
    fn a_row_that_does_not_decode_signs_nobody_in_and_breaks_no_sign_in() {
        use crate::store::{Context, SESSIONS};
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user(&Owner::of("alice"), false).expect("user"));
        let junk = crate::store::token_hash("junk");
        s.quick_write(|txn| {
            txn.open_table(SESSIONS)
                .ctx("sessions")?
                .insert(&junk, b"not a session record".as_slice())
                .ctx("junk")?;
            Ok(())
        })
        .expect("junk row");
        assert!(s.session_auth("junk").expect("read").is_none());
        let alice = s.get_user("alice").expect("read").expect("alice");
        assert!(s.list_sessions(&alice).expect("list").is_empty());
        let a = s
            .create_session(&alice, 3600, "", "")
            .expect("a sign-in still works");
        assert!(s.session_auth(&a.secret).expect("read").is_some());
    }
}
