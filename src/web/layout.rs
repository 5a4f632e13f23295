//! The page shell every page shares (header with search, main, footer) and the headers every
//! page carries.

use maud::{html, Markup, DOCTYPE};

use super::session::Viewer;
use crate::http::{Response, ResponseBody};

/// No script at all, styles only from our own stylesheet, no framing, forms only to us.
pub(crate) const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; \
                              form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page: `title` in the tab and as the heading's context, `body` inside `<main>`.
pub(crate) fn page(
    status: u16,
    title: &str,
    search: Option<&str>,
    who: Option<&Viewer>,
    body: Markup,
) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · shelf" }
                link rel="stylesheet" href=(super::style_path());
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav.bar aria-label="Site" {
                        a.brand href="/" { "shelf" }
                        form.search role="search" method="get" action="/" {
                            label.visually-hidden for="q" { "Search packages" }
                            input #q type="search" name="q" placeholder="Search packages"
                                value=[search] maxlength="200";
                            button type="submit" { "Search" }
                        }
                        @if let Some(who) = who {
                            div.me {
                                a href={ "/" (crate::names::percent_encode(&who.user.login)) } { (who.user.login) }
                                a href="/user/settings/applications" { "Tokens" }
                                a href="/user/settings/account" { "Password" }
                                a href="/user/settings/sessions" { "Sessions" }
                                @if who.user.is_admin { a href="/-/admin" { "Site admin" } }
                                form.inline method="post" action="/user/logout" {
                                    input type="hidden" name="_csrf" value=(who.session.csrf);
                                    button type="submit" { "Sign out" }
                                }
                            }
                        } @else {
                            a.signin href="/user/login" { "Sign in" }
                        }
                    }
                }
                main #main { (body) }
                footer.foot {
                    a href="/api/swagger" { "API" }
                    " · "
                    span { "shelf " (env!("CARGO_PKG_VERSION")) }
                }
            }
        }
    };
    html_response(status, doc.into_string())
}

/// A page that shows a secret (a new token) or what only its user may see: kept by no cache.
pub(crate) fn private(mut r: Response) -> Response {
    for (k, v) in r.headers.iter_mut() {
        if k.eq_ignore_ascii_case("cache-control") {
            *v = "no-store".into();
        }
    }
    r
}

pub(crate) fn html_response(status: u16, html: String) -> Response {
    Response {
        status,
        headers: vec![
            ("Content-Type".into(), "text/html; charset=utf-8".into()),
            ("Content-Security-Policy".into(), CSP.into()),
            ("X-Frame-Options".into(), "DENY".into()),
            ("X-Content-Type-Options".into(), "nosniff".into()),
            ("Referrer-Policy".into(), "same-origin".into()),
            // What a page shows depends on who may see what: never kept by a shared cache.
            ("Cache-Control".into(), "private, no-cache".into()),
        ],
        body: ResponseBody::Bytes(html.into_bytes()),
        user: None,
    }
}

pub(crate) fn error_page(status: u16, heading: &str, text: &str) -> Response {
    page(
        status,
        heading,
        None,
        None,
        html! {
            section.empty {
                h1 { (heading) }
                p { (text) }
                p { a href="/" { "Explore packages" } }
            }
        },
    )
}
