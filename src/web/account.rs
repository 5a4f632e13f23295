//! Signing in and out with a password, and the signed-in user's sessions.

use std::io::Read;

use maud::html;

use super::layout::{error_page, page};
use super::session::{
    cookie, field, random_secret, read_form, same_origin, secret_eq, set_cookie, FormError, Viewer,
    LOGIN_COOKIE, SESSION_COOKIE, SESSION_TTL,
};
use super::{Ctx, PageError};
use crate::auth::{self, AuthError};
use crate::http::Response;

type Result<T> = std::result::Result<T, PageError>;

/// `GET|POST /user/login`.
pub(super) fn sign_in(ctx: &Ctx, who: Option<&Viewer>, body: &mut dyn Read) -> Result<Response> {
    let back = redirect_target(ctx);
    if who.is_some() {
        return Ok(see_other(&back));
    }
    if ctx.req.method != "POST" {
        return Ok(sign_in_form(ctx, 200, "", None, &back));
    }
    let form = match read_form(ctx, body) {
        Ok(f) => f,
        Err(e) => return Ok(form_error(e)),
    };
    let login = field(&form, "user_name").unwrap_or("").trim().to_string();
    let password = field(&form, "password").unwrap_or("");
    let csrf_ok = match (cookie(ctx, LOGIN_COOKIE), field(&form, "_csrf")) {
        (Some(c), Some(f)) => secret_eq(&c, f),
        _ => false,
    };
    if !csrf_ok || !same_origin(ctx) {
        return Ok(forbidden_form());
    }
    match auth::sign_in(ctx.store, ctx.limiter, ctx.ip, &login, password) {
        Ok(caller) => {
            let agent = ctx.req.header("user-agent").unwrap_or("");
            let s =
                ctx.store
                    .create_session(&caller.user, SESSION_TTL, &ctx.ip.to_string(), agent)?;
            (ctx.audit)(&caller.user.login, "session.create", "", "", "ok");
            Ok(see_other(&back)
                .with_header(
                    "Set-Cookie",
                    set_cookie(ctx, SESSION_COOKIE, &s.secret, SESSION_TTL),
                )
                .with_header("Set-Cookie", set_cookie(ctx, LOGIN_COOKIE, "", 0)))
        }
        Err(AuthError::Invalid) => {
            (ctx.audit)(
                &actor(ctx, &login),
                "auth.failure",
                "",
                "",
                "invalid credentials",
            );
            Ok(sign_in_form(
                ctx,
                401,
                &login,
                Some("The username or password is incorrect."),
                &back,
            ))
        }
        Err(AuthError::Throttled(t)) => {
            if t.first {
                (ctx.audit)(&actor(ctx, &login), "auth.failure", "", "", "throttled");
            }
            let msg = format!(
                "Too many failed sign-ins from your address. Try again in {} s.",
                t.retry_after
            );
            Ok(sign_in_form(ctx, 429, &login, Some(&msg), &back)
                .with_header("Retry-After", t.retry_after.to_string()))
        }
        Err(AuthError::Store(e)) => Err(e.into()),
    }
}

fn sign_in_form(ctx: &Ctx, status: u16, login: &str, error: Option<&str>, back: &str) -> Response {
    // A fresh double-submit secret with each form; the cookie is HttpOnly.
    let Some(csrf) = random_secret() else {
        return error_page(
            500,
            "Something went wrong",
            "No randomness for the form's secret.",
        );
    };
    let action = if back == "/" {
        "/user/login".to_string()
    } else {
        format!(
            "/user/login?redirect_to={}",
            crate::names::percent_encode(back)
        )
    };
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.stack method="post" action=(action) {
                input type="hidden" name="_csrf" value=(csrf);
                label for="user_name" { "Username" }
                input #user_name type="text" name="user_name" value=(login) required
                    autocomplete="username" autocapitalize="none" spellcheck="false" maxlength="100";
                label for="password" { "Password" }
                input #password type="password" name="password" required
                    autocomplete="current-password" maxlength="1000";
                button.primary type="submit" { "Sign in" }
            }
            p.note { "Scripts and CI keep using tokens; this signs in this browser only." }
        }
    };
    page(status, "Sign in", None, None, body)
        .with_header("Set-Cookie", set_cookie(ctx, LOGIN_COOKIE, &csrf, 3600))
}

/// `POST /user/logout`.
pub(super) fn sign_out(ctx: &Ctx, who: Option<&Viewer>, body: &mut dyn Read) -> Result<Response> {
    let Some(who) = who else {
        return Ok(see_other("/"));
    };
    let form = match read_form(ctx, body) {
        Ok(f) => f,
        Err(e) => return Ok(form_error(e)),
    };
    if !checked(ctx, who, &form) {
        return Ok(forbidden_form());
    }
    if let Some(secret) = cookie(ctx, SESSION_COOKIE) {
        ctx.store.end_session(&secret)?;
    }
    (ctx.audit)(&who.user.login, "session.end", "", "", "ok");
    Ok(see_other("/").with_header("Set-Cookie", set_cookie(ctx, SESSION_COOKIE, "", 0)))
}

/// `GET|POST /user/settings/sessions`: the list, and revoking one (`id`).
pub(super) fn sessions(ctx: &Ctx, who: Option<&Viewer>, body: &mut dyn Read) -> Result<Response> {
    let Some(who) = who else {
        return Ok(see_other(
            "/user/login?redirect_to=%2Fuser%2Fsettings%2Fsessions",
        ));
    };
    if ctx.req.method == "POST" {
        let form = match read_form(ctx, body) {
            Ok(f) => f,
            Err(e) => return Ok(form_error(e)),
        };
        if !checked(ctx, who, &form) {
            return Ok(forbidden_form());
        }
        let id = field(&form, "id").and_then(|i| i.parse::<u64>().ok());
        if let Some(id) = id {
            if ctx.store.revoke_session(&who.user.login, id)? {
                (ctx.audit)(&who.user.login, "session.revoke", "", "", "ok");
            }
        }
        if id == Some(who.session.id) {
            return Ok(
                see_other("/").with_header("Set-Cookie", set_cookie(ctx, SESSION_COOKIE, "", 0))
            );
        }
        return Ok(see_other("/user/settings/sessions"));
    }
    let list = ctx.store.list_sessions(&who.user)?;
    let body = html! {
        h1 { "Sessions" }
        p.count { "Browsers signed in as " (who.user.login) ". Revoking one signs it out at once." }
        ul.list {
            @for s in &list {
                li {
                    span.name {
                        (s.agent.chars().take(80).collect::<String>())
                        @if s.id == who.session.id { " " span.kind { "this browser" } }
                    }
                    span.meta {
                        "from " (s.addr) " · signed in " (super::browse::when(s.created))
                        " · until " (super::browse::when(s.expires))
                    }
                    form.inline method="post" action="/user/settings/sessions" {
                        input type="hidden" name="_csrf" value=(who.session.csrf);
                        input type="hidden" name="id" value=(s.id);
                        button type="submit" { "Revoke" }
                    }
                }
            }
        }
    };
    Ok(super::layout::private(page(
        200,
        "Sessions",
        None,
        Some(who),
        body,
    )))
}

/// The user name of a failed sign-in as the audit log records it: only when it names an
/// account, so that a password typed into the wrong field never lands in the log.
fn actor(ctx: &Ctx, login: &str) -> String {
    match ctx.store.get_user(login) {
        Ok(Some(u)) => u.login,
        _ => "(unknown user)".to_string(),
    }
}

/// A posted form of this session, from our page: its fields, or the answer refusing it.
pub(super) fn checked_form(
    ctx: &Ctx,
    who: &Viewer,
    body: &mut dyn Read,
) -> std::result::Result<Vec<(String, String)>, Response> {
    let form = read_form(ctx, body).map_err(form_error)?;
    if !checked(ctx, who, &form) {
        return Err(forbidden_form());
    }
    Ok(form)
}

/// The form came from our page, in this session.
fn checked(ctx: &Ctx, who: &Viewer, form: &[(String, String)]) -> bool {
    same_origin(ctx) && field(form, "_csrf").is_some_and(|t| secret_eq(t, &who.session.csrf))
}

/// Where to go after signing in: a path on this site only (never `//host` or a URL).
fn redirect_target(ctx: &Ctx) -> String {
    crate::names::query_param(ctx.query, "redirect_to")
        .filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.contains('\\'))
        .filter(|p| !p.bytes().any(|b| b.is_ascii_control()))
        .unwrap_or_else(|| "/".to_string())
}

pub(super) fn see_other(to: &str) -> Response {
    Response::new(303)
        .with_header("Location", to)
        .with_header("Cache-Control", "no-store")
}

fn forbidden_form() -> Response {
    error_page(
        403,
        "Form expired",
        "This form was not sent from this site, or it is too old. Go back, reload the page and try again.",
    )
}

fn form_error(e: FormError) -> Response {
    match e {
        FormError::Type => error_page(
            415,
            "Not a form",
            "Send the form as application/x-www-form-urlencoded.",
        ),
        FormError::TooLarge => error_page(413, "Form too large", "The form is larger than 16 KiB."),
        FormError::Read => error_page(400, "Bad form", "The form could not be read."),
    }
}
