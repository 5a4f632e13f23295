//! The signed-in user's settings: access tokens (`/user/settings/applications`, Gitea's path)
//! and the password (`/user/settings/account`).

use std::io::Read;
use std::time::UNIX_EPOCH;

use maud::{html, Markup};

use super::account::{checked_form, see_other};
use super::layout::page;
use super::session::{field, Viewer, SESSION_COOKIE, SESSION_TTL};
use super::{Ctx, PageError};
use crate::auth::{self, SCOPE_CATEGORIES};
use crate::dates::parse_rfc3339;
use crate::http::Response;
use crate::store::{NewToken, TokenOutcome};

type Result<T> = std::result::Result<T, PageError>;

/// Shortest password the form takes.
const MIN_PASSWORD: usize = 8;

const TOKENS_PATH: &str = "/user/settings/applications";
const ACCOUNT_PATH: &str = "/user/settings/account";

/// `GET|POST /user/settings/applications`: list, create (`action=create`), revoke (`id`).
pub(super) fn tokens(ctx: &Ctx, who: Option<&Viewer>, body: &mut dyn Read) -> Result<Response> {
    let Some(who) = who else {
        return Ok(see_other(
            "/user/login?redirect_to=%2Fuser%2Fsettings%2Fapplications",
        ));
    };
    if ctx.req.method != "POST" {
        return tokens_page(ctx, who, 200, None, None);
    }
    let form = match checked_form(ctx, who, body) {
        Ok(f) => f,
        Err(r) => return Ok(r),
    };
    let login = who.user.login.clone();
    if field(&form, "action") == Some("revoke") {
        let id = field(&form, "id").and_then(|i| i.parse::<u64>().ok());
        let revoked = match id {
            Some(id) => ctx.store.revoke_token_id(&login, id)?,
            None => None,
        };
        if let Some(rec) = revoked {
            (ctx.audit)(&login, "token.revoke", "", "", "ok");
            let msg = format!("Token {} revoked.", rec.name);
            return tokens_page(ctx, who, 200, Some(Ok(msg)), None);
        }
        return tokens_page(ctx, who, 404, Some(Err("No such token.".into())), None);
    }
    let new = match token_from_form(ctx, who, &form) {
        Ok(n) => n,
        Err(msg) => return tokens_page(ctx, who, 422, Some(Err(msg)), None),
    };
    let name = new.name.clone();
    match ctx.store.create_token(new)?.0 {
        TokenOutcome::Created(token) => {
            (ctx.audit)(&login, "token.create", "", "", "ok");
            tokens_page(ctx, who, 201, None, Some((name, token)))
        }
        TokenOutcome::NameTaken => tokens_page(
            ctx,
            who,
            422,
            Some(Err(format!("You already have a token named {name:?}."))),
            None,
        ),
        TokenOutcome::NoSuchUser => Err(PageError::NotFound),
    }
}

/// The token the form asks for, checked as the API checks it.
fn token_from_form(
    ctx: &Ctx,
    who: &Viewer,
    form: &[(String, String)],
) -> std::result::Result<NewToken, String> {
    let name = field(form, "name").unwrap_or("").trim().to_string();
    if name.is_empty() || name.len() > 255 {
        return Err("Give the token a name (at most 255 characters).".into());
    }
    let mut scopes = Vec::new();
    for cat in SCOPE_CATEGORIES {
        match field(form, &format!("scope_{cat}")) {
            Some("read") => scopes.push(format!("read:{cat}")),
            Some("write") => scopes.push(format!("write:{cat}")),
            _ => {}
        }
    }
    if scopes.is_empty() {
        return Err("Choose at least one permission: a token without any can do nothing.".into());
    }
    if let Some(bad) = scopes.iter().find(|s| !auth::valid_scope(s)) {
        return Err(format!("Not a permission: {bad}"));
    }
    let owner = field(form, "owner")
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(str::to_string);
    if let Some(o) = &owner {
        let visible = match ctx.store.get_user(o).map_err(|e| e.to_string())? {
            Some(rec) => auth::profile_visible(ctx.store, Some(&who.user), &rec)
                .map_err(|e| e.to_string())?,
            None => false,
        };
        if !visible {
            return Err(format!("There is no owner named {o:?}."));
        }
    }
    let package = field(form, "package")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    if package.is_some() && owner.is_none() {
        return Err("A token limited to a package needs its owner too.".into());
    }
    let expires = match field(form, "expires")
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        None => None,
        Some(e) => {
            let at = parse_rfc3339(e)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
                .ok_or_else(|| format!("{e:?} is not a date such as 2026-12-31."))?;
            if at <= crate::store::now() {
                return Err("That expiry date has passed; choose one to come.".into());
            }
            Some(at)
        }
    };
    Ok(NewToken {
        user: who.user.login.clone(),
        name,
        scopes,
        owner,
        package,
        expires,
        ..NewToken::default()
    })
}

fn tokens_page(
    ctx: &Ctx,
    who: &Viewer,
    status: u16,
    note: Option<std::result::Result<String, String>>,
    created: Option<(String, String)>,
) -> Result<Response> {
    let list = ctx
        .store
        .list_tokens(&who.user.login)?
        .ok_or(PageError::NotFound)?;
    let body = html! {
        h1 { "Access tokens" }
        p.count { "Tokens let scripts and CI use the API as " (who.user.login) ". The token is shown once, when it is made." }
        (notice(note))
        @if let Some((name, token)) = &created {
            section.created role="status" {
                h2 { "Token " (name) " created" }
                p { "Copy it now: it will not be shown again." }
                label for="new-token" { "Token" }
                input #new-token.token type="text" readonly value=(token) size="44";
                pre { code { "curl --user " (who.user.login) ":" (token) " --upload-file FILE " (ctx.base) "/api/packages/OWNER/generic/NAME/VERSION/FILE" } }
            }
        }
        h2 { "Your tokens" }
        @if list.is_empty() {
            p.empty { "No tokens yet." }
        } @else {
            ul.list {
                @for t in &list {
                    li {
                        span.name { (t.name) " " small { "…" (t.last_eight) } }
                        span.meta {
                            (t.scopes.join(", "))
                            @if let Some(o) = &t.owner { " · only " (o) @if let Some(p) = &t.package { "/" (p) } }
                            " · created " (super::browse::when(t.created))
                            " · " @match t.last_used { Some(u) => { "last used " (super::browse::when(u)) }, None => { "never used" } }
                            @if let Some(e) = t.expires { " · expires " (super::browse::when(e)) }
                        }
                        form.inline method="post" action=(TOKENS_PATH) {
                            input type="hidden" name="_csrf" value=(who.session.csrf);
                            input type="hidden" name="action" value="revoke";
                            input type="hidden" name="id" value=(t.id);
                            button type="submit" { "Revoke" }
                        }
                    }
                }
            }
        }
        h2 { "New token" }
        form.stack method="post" action=(TOKENS_PATH) {
            input type="hidden" name="_csrf" value=(who.session.csrf);
            input type="hidden" name="action" value="create";
            label for="t-name" { "Name" }
            input #t-name type="text" name="name" required maxlength="255";
            fieldset.scopes {
                legend { "Permissions" }
                @for cat in SCOPE_CATEGORIES {
                    label for={ "scope-" (cat) } { (cat) }
                    select id={ "scope-" (cat) } name={ "scope_" (cat) } {
                        option value="" { "No access" }
                        option value="read" selected[cat == "package"] { "Read" }
                        option value="write" { "Read and write" }
                    }
                }
            }
            label for="t-owner" { "Only this owner " small { "(optional)" } }
            input #t-owner type="text" name="owner" maxlength="100";
            label for="t-package" { "Only this package of it " small { "(optional)" } }
            input #t-package type="text" name="package" maxlength="255";
            label for="t-expires" { "Expires " small { "(optional)" } }
            input #t-expires type="date" name="expires";
            button.primary type="submit" { "Create token" }
        }
    };
    Ok(super::layout::private(page(
        status,
        "Access tokens",
        None,
        Some(who),
        body,
    )))
}

/// `GET|POST /user/settings/account`: change the password.
pub(super) fn account(ctx: &Ctx, who: Option<&Viewer>, body: &mut dyn Read) -> Result<Response> {
    let Some(who) = who else {
        return Ok(see_other(
            "/user/login?redirect_to=%2Fuser%2Fsettings%2Faccount",
        ));
    };
    if ctx.req.method != "POST" {
        return Ok(account_page(who, 200, None));
    }
    let form = match checked_form(ctx, who, body) {
        Ok(f) => f,
        Err(r) => return Ok(r),
    };
    let old = field(&form, "old_password").unwrap_or("");
    let new = field(&form, "password").unwrap_or("");
    let again = field(&form, "retype").unwrap_or("");
    let refuse = |msg: &str| Ok(account_page(who, 422, Some(Err(msg.to_string()))));
    // Checked as a sign-in is, with the same per-address limiter: a stolen session is no
    // unthrottled way to guess the password.
    match auth::sign_in(ctx.store, ctx.limiter, ctx.ip, &who.user.login, old) {
        Ok(_) => {}
        Err(auth::AuthError::Invalid) => {
            (ctx.audit)(&who.user.login, "password.change", "", "", "wrong password");
            return refuse("The current password is not right.");
        }
        Err(auth::AuthError::Throttled(t)) => {
            let msg = format!(
                "Too many wrong passwords. Try again in {} s.",
                t.retry_after
            );
            return Ok(account_page(who, 429, Some(Err(msg)))
                .with_header("Retry-After", t.retry_after.to_string()));
        }
        Err(auth::AuthError::Store(e)) => return Err(e.into()),
    }
    if new.chars().count() < MIN_PASSWORD {
        return refuse("The new password needs at least 8 characters.");
    }
    if new != again {
        return refuse("The two new passwords differ.");
    }
    let hash = auth::hash_password(new)
        .map_err(|e| PageError::Internal(format!("hashing a new password: {e}")))?;
    let user = ctx
        .store
        .update_owner(&who.user.login, move |u| u.password = Some(hash))?
        .ok_or(PageError::NotFound)?;
    // Every session made under the old password is over (none matches it any more); this
    // browser gets a new one.
    ctx.store.end_sessions_of(&user.login)?;
    let agent = ctx.req.header("user-agent").unwrap_or("");
    let fresh = ctx
        .store
        .create_session(&user, SESSION_TTL, &ctx.ip.to_string(), agent)?;
    (ctx.audit)(&user.login, "password.change", "", "", "ok");
    let cookie = super::session::set_cookie(ctx, SESSION_COOKIE, &fresh.secret, SESSION_TTL);
    let now_who = Viewer {
        user,
        session: fresh.record,
    };
    Ok(account_page(
        &now_who,
        200,
        Some(Ok(
            "Password changed. Other browsers were signed out.".into()
        )),
    )
    .with_header("Set-Cookie", cookie))
}

fn account_page(
    who: &Viewer,
    status: u16,
    note: Option<std::result::Result<String, String>>,
) -> Response {
    let body = html! {
        section.narrow {
            h1 { "Password" }
            (notice(note))
            form.stack method="post" action=(ACCOUNT_PATH) {
                input type="hidden" name="_csrf" value=(who.session.csrf);
                input type="text" name="username" value=(who.user.login) autocomplete="username" hidden;
                label for="old_password" { "Current password" }
                input #old_password type="password" name="old_password" required autocomplete="current-password";
                label for="password" { "New password " small { "(at least 8 characters)" } }
                input #password type="password" name="password" required minlength="8" autocomplete="new-password";
                label for="retype" { "New password again" }
                input #retype type="password" name="retype" required minlength="8" autocomplete="new-password";
                button.primary type="submit" { "Change password" }
            }
        }
    };
    page(status, "Password", None, Some(who), body)
}

fn notice(note: Option<std::result::Result<String, String>>) -> Markup {
    html! {
        @match note {
            Some(Ok(m)) => { p.ok role="status" { (m) } },
            Some(Err(m)) => { p.error role="alert" { (m) } },
            None => {},
        }
    }
}
