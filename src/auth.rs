//! Who is asking: parsing credentials (Basic, `token`, `Bearer`, query tokens) and resolving them
//! to a user, and the permission rules.
//!
//! Knows header *values*, never HTTP types; asks `store` for users and tokens. Secrets are never
//! logged, and tokens are looked up by their SHA-256, so no stored secret is compared in clear.

use crate::store::{self, Store, UserRecord};
use base64::Engine;

/// Credentials as the client presented them.
#[derive(Debug, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Token(String),
    Basic { user: String, secret: String },
}

/// Reads the `Authorization` header the way Gitea does (GITEA-COMPAT §8): the scheme word is
/// case-insensitive and the header must be exactly two space-separated parts. A header that is
/// malformed (unknown scheme, bad base64, no colon) is ignored: the request is anonymous.
pub fn parse_authorization(header: Option<&str>) -> Credentials {
    let Some(value) = header else {
        return Credentials::Anonymous;
    };
    let mut parts = value.trim().split(' ');
    let (Some(scheme), Some(param), None) = (parts.next(), parts.next(), parts.next()) else {
        return Credentials::Anonymous;
    };
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        return Credentials::Token(param.to_string());
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Credentials::Anonymous;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(param) else {
        return Credentials::Anonymous;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return Credentials::Anonymous;
    };
    match decoded.split_once(':') {
        Some((user, secret)) => Credentials::Basic {
            user: user.to_string(),
            secret: secret.to_string(),
        },
        None => Credentials::Anonymous,
    }
}

/// The `token` / `access_token` query parameter (Gitea still accepts it by default).
pub fn query_token(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "token" || k == "access_token").then(|| crate::api::percent_decode(v))?
    })
}

#[derive(Debug)]
pub enum AuthError {
    /// Credentials were presented and are wrong: 401 even on a public read.
    Invalid,
    Store(store::Error),
}

/// Resolves credentials to an active user. `Ok(None)` is an anonymous request.
pub fn authenticate(store: &Store, creds: &Credentials) -> Result<Option<UserRecord>, AuthError> {
    let token = match creds {
        Credentials::Anonymous => return Ok(None),
        Credentials::Token(t) => t.as_str(),
        // Basic with an empty secret or `x-oauth-basic`: the user name is the token.
        Credentials::Basic { user, secret } if secret.is_empty() || secret == "x-oauth-basic" => {
            user.as_str()
        }
        // Otherwise the secret is tried as a token, whatever user name came with it. Passwords
        // are not stored yet, so a secret that is not a token is a failed login.
        Credentials::Basic { secret, .. } => secret.as_str(),
    };
    if token.is_empty() {
        return Err(AuthError::Invalid);
    }
    match store.user_by_token(token).map_err(AuthError::Store)? {
        Some(user) if user.active => Ok(Some(user)),
        _ => Err(AuthError::Invalid),
    }
}

/// Whether `user` (None: anonymous) may read `owner`'s packages. Every namespace is public
/// until visibility exists (accounts issue); callers already ask, so that rule lands in one place.
pub fn may_read(_user: Option<&UserRecord>, _owner: &UserRecord) -> bool {
    true
}

/// `may_read` for an owner known only by its lower-cased name (deploy by checksum looks at every
/// namespace that holds the bytes).
pub fn may_read_owner_name(_user: Option<&UserRecord>, _owner: &str) -> bool {
    true
}

/// Whether `user` may publish or delete in `owner`'s namespace: the owner or a site admin.
pub fn may_write(user: Option<&UserRecord>, owner: &UserRecord) -> bool {
    match user {
        Some(u) => u.is_admin || u.login.eq_ignore_ascii_case(&owner.login),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn schemes_are_case_insensitive() {
        for h in ["token abc", "Token abc", "bearer abc", "BEARER abc"] {
            assert_eq!(
                parse_authorization(Some(h)),
                Credentials::Token("abc".into())
            );
        }
    }

    #[test]
    fn malformed_headers_are_anonymous() {
        for h in [
            "",
            "token",
            "token a b",
            "Digest abc",
            "Basic %%%",
            "Basic YWJj",
        ] {
            assert_eq!(parse_authorization(Some(h)), Credentials::Anonymous, "{h}");
        }
        assert_eq!(parse_authorization(None), Credentials::Anonymous);
    }

    #[test]
    fn basic_splits_at_first_colon() {
        assert_eq!(
            parse_authorization(Some(&basic("u:p:q"))),
            Credentials::Basic {
                user: "u".into(),
                secret: "p:q".into()
            }
        );
        assert_eq!(
            parse_authorization(Some(&basic(":"))),
            Credentials::Basic {
                user: "".into(),
                secret: "".into()
            }
        );
    }

    #[test]
    fn query_tokens() {
        assert_eq!(query_token("a=1&token=abc"), Some("abc".into()));
        assert_eq!(query_token("access_token=x%2By"), Some("x+y".into()));
        assert_eq!(query_token("tokens=1"), None);
    }
}
