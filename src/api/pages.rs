//! The one page form the API serves itself: the upload form's POST (`/{owner}/-/upload`),
//! because it must publish through the registry's own upload path (`registry.rs`) — the same
//! checks, quotas, streaming and messages as a PUT — which the pages (`web/`) cannot reach.

use super::error::Flavor;
use super::registry;
use super::Api;
use crate::auth::{self, Caller};
use crate::http::{Request, Response, ResponseBody};
use crate::multipart::{self, FirstFilePart};
use crate::names::percent_encode;
use crate::store::fold_case;
use crate::web;

/// `POST /{owner}/-/upload` (multipart: `_csrf`, `package`, `version`, then the file).
pub(super) fn upload(api: &Api, req: &mut Request, owner: &str) -> Response {
    let base = api.base_url(req);
    let o = percent_encode(owner);
    let (user, csrf) = match web::signed_in(&api.store, req) {
        Ok(Some(w)) => w,
        Ok(None) => {
            return Response::new(303).with_header(
                "Location",
                format!("/user/login?redirect_to=%2F{o}%2F-%2Fupload"),
            )
        }
        Err(e) => return unreadable(&e),
    };
    if !web::from_this_site(&base, req) {
        return expired();
    }
    let boundary = req.header("content-type").and_then(multipart::boundary);
    let Some(boundary) = boundary else {
        return web::refusal_page(
            415,
            "Not a form upload",
            "Send the form as multipart/form-data.",
        );
    };
    // The body is read here, not by a handler that holds the request: it goes back afterwards,
    // so that the connection can carry the next request.
    let mut body = std::mem::take(&mut req.body);
    let mut response = {
        let mut part = FirstFilePart::keeping_fields(&mut body, &boundary);
        publish(api, req, &user, &csrf, owner, &mut part)
    };
    req.body = body;
    response.user = Some(user.login);
    response
}

fn publish<R: std::io::Read>(
    api: &Api,
    req: &Request,
    user: &crate::store::UserRecord,
    csrf: &str,
    owner: &str,
    part: &mut FirstFilePart<R>,
) -> Response {
    if let Err(e) = part.open() {
        return web::refusal_page(
            400,
            "Upload refused",
            &format!("The form could not be read: {e}."),
        );
    }
    let field = |name: &str| {
        part.fields()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    if !web::secret_matches(&field("_csrf"), csrf) {
        return expired();
    }
    let (package, version) = (field("package"), field("version"));
    // Browsers send the base name; anything with a path keeps only its last part.
    let file = part
        .filename()
        .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string())
        .unwrap_or_default();
    let owner_rec = match api.store.get_user(owner) {
        Ok(Some(rec)) => rec,
        Ok(None) => return not_found(),
        Err(e) => return unreadable(&e),
    };
    match auth::profile_visible(&api.store, Some(user), &owner_rec) {
        Ok(true) => {}
        Ok(false) => return not_found(),
        Err(e) => return unreadable(&e),
    }
    let caller = Caller {
        user: user.clone(),
        token: None,
    };
    let coords = (package.as_str(), version.as_str(), file.as_str());
    match registry::upload_from_form(api, req, &caller, &owner_rec, coords, part) {
        Ok(_) => Response::new(303)
            .with_header(
                "Location",
                format!(
                    "/{}/-/packages/generic/{}/{}",
                    percent_encode(&owner_rec.login),
                    percent_encode(&fold_case(&package)),
                    percent_encode(&fold_case(&version))
                ),
            )
            .with_header("Cache-Control", "no-store"),
        Err(e) => {
            // The registry's own status and message, as a page.
            let r = e.render(Flavor::Text);
            let text = match &r.body {
                ResponseBody::Bytes(b) => String::from_utf8_lossy(b).trim().to_string(),
                _ => String::new(),
            };
            // The registry's 401 asks for credentials; this visitor is signed in and may not.
            let status = if r.status == 401 { 403 } else { r.status };
            web::refusal_page(status, "Upload refused", &text)
        }
    }
}

fn expired() -> Response {
    web::refusal_page(
        403,
        "Form expired",
        "This form was not sent from this site, or it is too old. Go back, reload the page and try again.",
    )
}

/// The store could not be read: logged, and a 500 page.
fn unreadable(e: &crate::store::Error) -> Response {
    log::error!("upload form: {e}");
    web::refusal_page(
        500,
        "Something went wrong",
        "The server could not read the registry. Try again later; the log says more.",
    )
}

fn not_found() -> Response {
    web::refusal_page(
        404,
        "Not found",
        "There is nothing here, or you may not see it.",
    )
}
