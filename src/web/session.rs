//! Who is looking at a page (the session cookie), and the checks every state-changing form
//! passes: the same origin, and the session's (or the sign-in form's) CSRF secret.
//!
//! The cookie is only ever read here: `/api/packages` and `/api/v1` authenticate as before
//! and never look at it, so a page visited on another site cannot act through the API.

use std::io::Read;

use super::{Ctx, PageError};
use crate::store::{SessionRecord, UserRecord};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "shelf_session";
/// The sign-in form's CSRF cookie (double submit: the form carries the same value).
pub(crate) const LOGIN_COOKIE: &str = "shelf_login";
/// How long a session lasts.
pub(crate) const SESSION_TTL: u64 = 7 * 24 * 3600;
/// Largest form body read (the forms here are small; uploads come another way).
const MAX_FORM: u64 = 16 * 1024;

/// A signed-in visitor.
pub(crate) struct Viewer {
    pub user: UserRecord,
    pub session: SessionRecord,
}

/// The visitor's session, if its cookie names a live one of an active user.
pub(crate) fn viewer(ctx: &Ctx) -> Result<Option<Viewer>, PageError> {
    let Some(secret) = cookie(ctx, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(ctx
        .store
        .session_auth(&secret)?
        .map(|(user, session)| Viewer { user, session }))
}

/// The value of cookie `name` from the request's `Cookie` headers.
pub(crate) fn cookie(ctx: &Ctx, name: &str) -> Option<String> {
    cookie_of(ctx.req, name)
}

/// The value of cookie `name` in `req`.
pub(crate) fn cookie_of(req: &crate::http::Request, name: &str) -> Option<String> {
    req.headers
        .get_all("cookie")
        .flat_map(|h| h.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, Path=/, and Secure when the site is https.
pub(crate) fn set_cookie(ctx: &Ctx, name: &str, value: &str, max_age: u64) -> String {
    let secure = if ctx.base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}")
}

/// Whether a state-changing request comes from one of our own pages: its `Origin` (or, when a
/// browser sent none, its `Referer`) is this site, and the browser does not call it cross-site.
pub(crate) fn same_origin(ctx: &Ctx) -> bool {
    same_origin_of(ctx.base, ctx.req)
}

/// As [`same_origin`], for a site at `base`.
pub(crate) fn same_origin_of(base: &str, req: &crate::http::Request) -> bool {
    let ours = origin_of(base);
    if req
        .header("sec-fetch-site")
        .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
    {
        return false;
    }
    match (req.header("origin"), req.header("referer")) {
        (Some(o), _) => o.eq_ignore_ascii_case(ours),
        (None, Some(r)) => origin_of(r).eq_ignore_ascii_case(ours),
        // Neither: not a browser's form post; the CSRF secret still has to match.
        (None, None) => true,
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].find('/') {
        Some(i) => &url[..start + i],
        None => url,
    }
}

/// A posted `application/x-www-form-urlencoded` body, read to at most 16 KiB.
pub(crate) fn read_form(
    ctx: &Ctx,
    body: &mut dyn Read,
) -> Result<Vec<(String, String)>, FormError> {
    let form_type = ctx.req.header("content-type").is_some_and(|t| {
        t.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form_type {
        return Err(FormError::Type);
    }
    let mut raw = Vec::new();
    body.take(MAX_FORM + 1)
        .read_to_end(&mut raw)
        .map_err(|_| FormError::Read)?;
    if raw.len() as u64 > MAX_FORM {
        return Err(FormError::TooLarge);
    }
    let text = String::from_utf8(raw).map_err(|_| FormError::Read)?;
    Ok(text
        .split('&')
        .filter(|kv| !kv.is_empty())
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| crate::names::percent_decode(&s.replace('+', " "));
            Some((dec(k)?, dec(v)?))
        })
        .collect())
}

pub(crate) enum FormError {
    Type,
    TooLarge,
    Read,
}

/// The first value of `name` in a form.
pub(crate) fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A form's secret against the one it must match (never an empty one).
pub(crate) fn secret_eq(a: &str, b: &str) -> bool {
    !a.is_empty() && crate::auth::secret_eq(a.as_bytes(), b.as_bytes())
}

/// A fresh random secret (hex) for the sign-in form's CSRF cookie.
pub(crate) fn random_secret() -> Option<String> {
    crate::store::random_hex(32).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_secrets() {
        assert_eq!(origin_of("https://h:8443/a/b"), "https://h:8443");
        assert_eq!(origin_of("http://h"), "http://h");
        assert!(secret_eq("abc", "abc"));
        assert!(!secret_eq("abc", "abd"));
        assert!(!secret_eq("", ""));
    }
}
