//! Users and personal access tokens. Tokens are stored only as their SHA-256 and looked up by
//! it, so no stored secret is ever compared byte by byte.

use super::*;
use redb::{ReadableDatabase, ReadableTableMetadata};
use sha2::{Digest, Sha256};

impl Store {
    pub fn user_count(&self) -> Result<u64> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        users.len().ctx("counting users")
    }

    pub fn get_user(&self, login: &str) -> Result<Option<UserRecord>> {
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let row = users.get(fold_case(login).as_str()).ctx("reading a user")?;
        row.map(|v| decode(v.value())).transpose()
    }

    /// Creates a user; `Ok(false)` when the login (in any case) is taken.
    pub fn create_user(&self, login: &str, is_admin: bool) -> Result<bool> {
        let mut rec = UserRecord {
            id: 0,
            login: login.to_string(),
            is_admin,
            active: true,
            created: now(),
        };
        let key = fold_case(login);
        self.durable(move |txn| {
            let mut users = txn.open_table(USERS).ctx("opening users")?;
            if users.get(key.as_str()).ctx("reading a user")?.is_some() {
                return Ok(false);
            }
            rec.id = Store::next_id(txn)?;
            users
                .insert(key.as_str(), encode(&rec)?.as_slice())
                .ctx("writing a user")?;
            Ok(true)
        })
    }

    // ---------------------------------------------------------------------------- tokens

    /// Stores a token given by the caller (`SHELF_ADMIN_TOKEN`) or a fresh random one; only its
    /// SHA-256 is kept. Returns the token in clear, the one time it is ever available.
    pub fn create_token(
        &self,
        login: &str,
        name: &str,
        given: Option<String>,
    ) -> Result<TokenOutcome> {
        let token = match given {
            Some(t) => t,
            None => new_token().map_err(|e| Error::Db("drawing a token", Box::new(e.into())))?,
        };
        let hash = token_hash(&token);
        let user = fold_case(login);
        let rec = TokenRecord {
            user: user.clone(),
            name: name.to_string(),
            created: now(),
            last_eight: token
                .chars()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        };
        let bytes = encode(&rec)?;
        let name = name.to_string();
        self.durable(move |txn| {
            let users = txn.open_table(USERS).ctx("opening users")?;
            if users.get(user.as_str()).ctx("reading a user")?.is_none() {
                return Ok(TokenOutcome::NoSuchUser);
            }
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            for row in tokens.iter().ctx("listing tokens")? {
                let (_, v) = row.ctx("listing tokens")?;
                let t: TokenRecord = decode(v.value())?;
                if t.user == user && t.name.eq_ignore_ascii_case(&name) {
                    return Ok(TokenOutcome::NameTaken);
                }
            }
            if tokens.get(&hash).ctx("reading a token")?.is_some() {
                return Ok(TokenOutcome::NameTaken);
            }
            tokens
                .insert(&hash, bytes.as_slice())
                .ctx("writing a token")?;
            Ok(TokenOutcome::Created(token))
        })
    }

    pub fn list_tokens(&self, login: &str) -> Result<Option<Vec<TokenRecord>>> {
        let user = fold_case(login);
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        if users.get(user.as_str()).ctx("reading a user")?.is_none() {
            return Ok(None);
        }
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let mut out = Vec::new();
        for row in tokens.iter().ctx("listing tokens")? {
            let (_, v) = row.ctx("listing tokens")?;
            let t: TokenRecord = decode(v.value())?;
            if t.user == user {
                out.push(t);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(Some(out))
    }

    /// Deletes the user's token of that name; `Ok(false)` when there is none.
    pub fn revoke_token(&self, login: &str, name: &str) -> Result<bool> {
        let user = fold_case(login);
        let name = name.to_string();
        self.durable(move |txn| {
            let mut tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
            let mut victim = None;
            for row in tokens.iter().ctx("listing tokens")? {
                let (k, v) = row.ctx("listing tokens")?;
                let t: TokenRecord = decode(v.value())?;
                if t.user == user && t.name.eq_ignore_ascii_case(&name) {
                    victim = Some(*k.value());
                    break;
                }
            }
            match victim {
                Some(h) => {
                    tokens.remove(&h).ctx("deleting a token")?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// The active user a token belongs to. Looked up by the token's hash, so no stored secret is
    /// ever compared byte by byte.
    pub fn user_by_token(&self, token: &str) -> Result<Option<UserRecord>> {
        let hash = token_hash(token);
        let txn = self.db.begin_read().ctx("beginning a read")?;
        let tokens = txn.open_table(TOKENS).ctx("opening tokens")?;
        let Some(row) = tokens.get(&hash).ctx("reading a token")? else {
            return Ok(None);
        };
        let t: TokenRecord = decode(row.value())?;
        let users = txn.open_table(USERS).ctx("opening users")?;
        let user = users.get(t.user.as_str()).ctx("reading a user")?;
        user.map(|v| decode(v.value())).transpose()
    }
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

    #[test]
    fn tokens_are_hashed_and_revocable() {
        let t = temp_store();
        let s = &t.store;
        assert!(s.create_user("Bob", false).expect("user"));
        assert!(!s.create_user("bob", false).expect("user"));
        let TokenOutcome::Created(tok) = s.create_token("bob", "ci", None).expect("token") else {
            panic!("token not created");
        };
        assert_eq!(tok.len(), 40);
        assert_eq!(
            s.create_token("BOB", "CI", None).expect("t"),
            TokenOutcome::NameTaken
        );
        assert_eq!(
            s.user_by_token(&tok).expect("lookup").expect("found").login,
            "Bob"
        );
        assert!(s.revoke_token("bob", "ci").expect("revoke"));
        assert!(s.user_by_token(&tok).expect("lookup").is_none());
    }
}
