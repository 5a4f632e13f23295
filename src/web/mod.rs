//! The pages for people (issue 13), at Gitea's URLs so that every `html_url` the JSON API
//! returns resolves: `/`, `/{owner}`, `/{owner}/-/packages`,
//! `/{owner}/-/packages/generic/{name}` and `/{owner}/-/packages/generic/{name}/{version}`.
//!
//! Rendered on the server with `maud`, whose `html!` escapes every value unless it is wrapped
//! in `PreEscaped` (used here only for the compiled-in stylesheet's URL-free markup, never for
//! data); it is checked at compile time and needs no template files to ship, where askama
//! would read templates at build time and escape by file extension. Every asset is compiled
//! into the binary (`/-/static/…`); no page has a script, so the Content-Security-Policy allows
//! none.
//!
//! This first step shows what an anonymous visitor may read (the same rules as the API:
//! `auth::profile_visible` and `auth::package_access`): a private or limited owner is a 404,
//! exactly like one that does not exist, and never appears in a list, a search or a count.
//! Sign-in, sessions and the forms come next.

mod account;
mod admin;
mod browse;
mod layout;
mod manage;
mod session;
mod settings;

use std::io::Read;
use std::net::IpAddr;

use crate::auth::Limiter;
use crate::http::{Request, Response, ResponseBody};
use crate::store::Store;

/// The stylesheet, served at [`style_path`].
const STYLE: &str = include_str!("style.css");
/// FNV-1a of the stylesheet, computed at compile time.
const STYLE_HASH: u64 = {
    let b = STYLE.as_bytes();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < b.len() {
        h ^= b[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
};

/// The stylesheet's URL: it carries a hash of the bytes, so that browsers may cache it for good.
pub(crate) fn style_path() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| format!("/-/static/shelf-{STYLE_HASH:016x}.css"))
}

/// Items per listing page (Gitea's UI pages by 20 as well).
const PAGE_SIZE: u64 = 20;
/// Deepest item a listing shows (page × size): deeper pages ask for a narrower search, so that
/// no anonymous request walks an unbounded part of the index.
const MAX_DEPTH: u64 = 10_000;

/// A page for people. Parameters are decoded; one that names nothing is a 404 page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRoute {
    /// `/`: the packages the visitor may see, newest first, with search.
    Explore,
    /// `/{owner}` and `/{owner}/-/packages`.
    Owner(String),
    /// `/{owner}/-/packages/generic/{name}`: its versions.
    Package(String, String),
    /// `/{owner}/-/packages/generic/{name}/{version}`: its files.
    Version(String, String, String),
    /// `/-/static/{file}`: an asset compiled into the binary.
    Asset(String),
    /// `GET|POST /user/login`: the sign-in form (Gitea's path).
    SignIn,
    /// `POST /user/logout`.
    SignOut,
    /// `GET|POST /user/settings/sessions`: the signed-in user's sessions; revoke one.
    Sessions,
    /// `GET|POST /user/settings/applications`: access tokens (Gitea's path).
    Tokens,
    /// `GET|POST /user/settings/account`: the password.
    Account,
    /// `GET|POST /{owner}/-/packages/generic/{name}/{version}/-/delete[?file=F]`: confirm, then
    /// delete the version or one file.
    Delete(String, String, String),
    /// `GET /{owner}/-/upload[?package=P&version=V]`: the upload form. Its POST (multipart) is
    /// taken by the API, which publishes through the registry's own upload path.
    Upload(String),
    /// `/-/admin`: storage, for site admins.
    AdminStorage,
    /// `/-/admin/audit`: the audit log, for site admins.
    AdminAudit,
}

/// What a page needs from the API around it.
pub struct Ctx<'a> {
    pub store: &'a Store,
    /// The URL clients reach shelf at, without a trailing slash (for the curl lines).
    pub base: &'a str,
    pub req: &'a Request,
    pub query: &'a str,
    /// The failed-sign-in limiter the API's credentials share.
    pub limiter: &'a Limiter,
    /// The client's address (the proxy's `X-Forwarded-For` when it is trusted).
    pub ip: IpAddr,
    /// Records an audit entry: (actor, action, owner, target, outcome); an outcome other than
    /// "ok" is a refusal, collapsed per address as the API's are.
    pub audit: &'a dyn Fn(&str, &str, &str, &str, &str),
}

/// Answers one page request; `body` is the request's (read by the forms only).
pub fn serve(ctx: &Ctx, route: PageRoute, body: &mut dyn Read) -> Response {
    if let PageRoute::Asset(name) = &route {
        return asset(name);
    }
    let mut signed_in = None;
    let result = session::viewer(ctx).and_then(|who| {
        signed_in = who.as_ref().map(|w| w.user.login.clone());
        let who = who.as_ref();
        match route {
            PageRoute::Asset(_) => Err(PageError::NotFound),
            PageRoute::Explore => browse::explore(ctx, who),
            PageRoute::Owner(owner) => browse::owner(ctx, who, &owner),
            PageRoute::Package(owner, name) => browse::package(ctx, who, &owner, &name),
            PageRoute::Version(owner, name, version) => {
                browse::version(ctx, who, &owner, &name, &version)
            }
            PageRoute::SignIn => account::sign_in(ctx, who, body),
            PageRoute::SignOut => account::sign_out(ctx, who, body),
            PageRoute::Sessions => account::sessions(ctx, who, body),
            PageRoute::Tokens => settings::tokens(ctx, who, body),
            PageRoute::Account => settings::account(ctx, who, body),
            PageRoute::Upload(owner) => manage::upload_form(ctx, who, &owner),
            PageRoute::AdminStorage => admin::storage(ctx, who),
            PageRoute::AdminAudit => admin::audit(ctx, who),
            PageRoute::Delete(owner, name, version) => {
                manage::delete(ctx, who, &owner, &name, &version, body)
            }
        }
    });
    // The access log names the signed-in user, as it names a token's.
    let mut response = match result {
        Ok(page) => page,
        Err(PageError::NotFound) => layout::error_page(
            404,
            "Not found",
            "There is nothing here, or you may not see it.",
        ),
        Err(PageError::Internal(e)) => {
            log::error!("page {}: {e}", crate::http::path_of(&ctx.req.target));
            layout::error_page(
                500,
                "Something went wrong",
                "The server could not do this. Try again later; the log says more.",
            )
        }
        Err(PageError::Store(e)) => {
            log::error!("page {}: {e}", crate::http::path_of(&ctx.req.target));
            layout::error_page(
                500,
                "Something went wrong",
                "The server could not read the registry. Try again later; the log says more.",
            )
        }
    };
    response.user = signed_in;
    response
}

/// For the upload form's POST, which the API serves: the signed-in user and the session's CSRF
/// secret, from the cookie.
pub(crate) fn signed_in(
    store: &Store,
    req: &Request,
) -> Result<Option<(crate::store::UserRecord, String)>, crate::store::Error> {
    let Some(secret) = session::cookie_of(req, session::SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(store
        .session_auth(&secret)?
        .map(|(user, session)| (user, session.csrf)))
}

/// Whether a posted form comes from this site (see `session::same_origin`).
pub(crate) fn from_this_site(base: &str, req: &Request) -> bool {
    session::same_origin_of(base, req)
}

/// Constant-time comparison of a form's secret.
pub(crate) fn secret_matches(given: &str, want: &str) -> bool {
    session::secret_eq(given, want)
}

/// A page saying why something was refused (for the API's answers to page forms).
pub(crate) fn refusal_page(status: u16, heading: &str, text: &str) -> Response {
    layout::error_page(status, heading, text)
}

/// The 405 for a page path with a method it does not take.
pub fn not_allowed(allow: &str) -> Response {
    let mut r = layout::error_page(405, "Method not allowed", "This page can only be read.");
    r.headers.push(("Allow".to_string(), allow.to_string()));
    r
}

pub(crate) enum PageError {
    /// Missing, or hidden from this visitor: the same answer.
    NotFound,
    Store(crate::store::Error),
    /// Anything else that is not the visitor's doing.
    Internal(String),
}

impl From<crate::store::Error> for PageError {
    fn from(e: crate::store::Error) -> PageError {
        PageError::Store(e)
    }
}

fn asset(name: &str) -> Response {
    if format!("/-/static/{name}") != style_path() {
        return layout::error_page(404, "Not found", "There is no such file.");
    }
    Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/css; charset=utf-8".into()),
            (
                "Cache-Control".into(),
                "public, max-age=31536000, immutable".into(),
            ),
            ("X-Content-Type-Options".into(), "nosniff".into()),
        ],
        body: ResponseBody::Bytes(STYLE.as_bytes().to_vec()),
        user: None,
    }
}
