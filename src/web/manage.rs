//! Deleting a file or a version from the browser: a confirmation page (GET, which changes
//! nothing), then the form's POST with the session's CSRF secret. The permission is the API's:
//! write access to the owner's package, for the signed-in user without a token.

use std::io::Read;

use maud::html;

use super::account::{checked_form, see_other};
use super::layout::{error_page, page};
use super::session::{field, Viewer};
use super::{Ctx, PageError};
use crate::auth::{self, Access, Caller};
use crate::http::Response;
use crate::names::{percent_encode, FileName, PackageName, Version};
use crate::store::{fold_case, Deleted, FileCoords, UserRecord};

type Result<T> = std::result::Result<T, PageError>;

/// Whether the visitor may delete in `owner`'s package `name`.
pub(super) fn may_delete(
    ctx: &Ctx,
    who: Option<&Viewer>,
    owner: &UserRecord,
    name: &str,
) -> Result<bool> {
    let Some(who) = who else {
        return Ok(false);
    };
    let caller = Caller {
        user: who.user.clone(),
        token: None,
    };
    Ok(auth::package_access(ctx.store, Some(&caller), owner, Some(name), Access::Write)?.is_ok())
}

/// `GET|POST /{owner}/-/packages/generic/{name}/{version}/-/delete[?file=F]`.
pub(super) fn delete(
    ctx: &Ctx,
    who: Option<&Viewer>,
    owner: &str,
    name: &str,
    version: &str,
    body: &mut dyn Read,
) -> Result<Response> {
    let owner = super::browse::visible_owner(ctx, who, owner)?;
    let entry = ctx
        .store
        .get_version(&owner.login, name, version)?
        .ok_or(PageError::NotFound)?;
    let Some(viewer) = who else {
        let back = format!(
            "/{}/-/packages/generic/{}/{}",
            percent_encode(&owner.login),
            percent_encode(&fold_case(name)),
            percent_encode(&fold_case(version))
        );
        return Ok(see_other(&format!(
            "/user/login?redirect_to={}",
            percent_encode(&back)
        )));
    };
    if !may_delete(ctx, who, &owner, name)? {
        return Ok(error_page(
            403,
            "Not allowed",
            "You may read this package but not delete from it.",
        ));
    }
    let (pname, vname) = (&entry.package.name, &entry.version.version);
    let o = percent_encode(&owner.login);
    let n = percent_encode(&fold_case(pname));
    let v = percent_encode(&fold_case(vname));
    let version_page = format!("/{o}/-/packages/generic/{n}/{v}");
    let file = crate::names::query_param(ctx.query, "file");
    if let Some(f) = &file {
        let files = ctx
            .store
            .list_files(&owner.login, pname, vname)?
            .unwrap_or_default();
        if !files.iter().any(|x| x.file.name.eq_ignore_ascii_case(f)) {
            return Err(PageError::NotFound);
        }
    }
    let action = match &file {
        Some(f) => format!("{version_page}/-/delete?file={}", percent_encode(f)),
        None => format!("{version_page}/-/delete"),
    };
    if ctx.req.method != "POST" {
        let body = html! {
            section.narrow {
                h1 { "Delete?" }
                @match &file {
                    Some(f) => p { "Delete the file " strong { (f) } " of " (pname) " " (vname) "? "
                        "A version goes with its last file. This cannot be undone." },
                    None => p { "Delete " strong { (pname) " " (vname) } " with all its files? This cannot be undone." },
                }
                form.stack method="post" action=(action) {
                    input type="hidden" name="_csrf" value=(viewer.session.csrf);
                    input type="hidden" name="confirm" value="yes";
                    button.danger type="submit" { "Delete" }
                }
                p { a href=(version_page) { "Cancel" } }
            }
        };
        return Ok(page(200, "Delete?", None, who, body));
    }
    let form = match checked_form(ctx, viewer, body) {
        Ok(f) => f,
        Err(r) => return Ok(r),
    };
    if field(&form, "confirm") != Some("yes") {
        return Ok(see_other(&version_page));
    }
    let actor = viewer.user.login.clone();
    let target = format!("{pname}/{vname}");
    match file {
        Some(f) => {
            let coords = match (
                PackageName::parse(pname),
                Version::parse(vname),
                FileName::parse(&f),
            ) {
                (Some(pn), Some(vn), Some(fname)) => {
                    FileCoords::new(&owner.login, &pn, &vn, &fname)
                }
                _ => return Err(PageError::NotFound),
            };
            let done = ctx.store.delete_file(&coords)? == Deleted::Done;
            let outcome = if done { "ok" } else { "not found" };
            (ctx.audit)(
                &actor,
                "package.delete_file",
                &owner.login,
                &format!("{target}/{f}"),
                outcome,
            );
            // The version went with its last file: back to the package, or to the owner.
            if ctx.store.get_version(&owner.login, pname, vname)?.is_some() {
                Ok(see_other(&version_page))
            } else {
                Ok(see_other(&after_version(ctx, &owner, pname)?))
            }
        }
        None => {
            let done = ctx.store.delete_version(&owner.login, pname, vname)? == Deleted::Done;
            let outcome = if done { "ok" } else { "not found" };
            (ctx.audit)(
                &actor,
                "package.delete_version",
                &owner.login,
                &target,
                outcome,
            );
            Ok(see_other(&after_version(ctx, &owner, pname)?))
        }
    }
}

/// Where to go once a version is gone: its package while it has versions, else the owner.
fn after_version(ctx: &Ctx, owner: &UserRecord, name: &str) -> Result<String> {
    let o = percent_encode(&owner.login);
    Ok(
        match ctx.store.list_package_versions(&owner.login, name, 1, 1)? {
            Some(p) if p.total > 0 => format!(
                "/{o}/-/packages/generic/{}",
                percent_encode(&fold_case(name))
            ),
            _ => format!("/{o}"),
        },
    )
}

/// `GET /{owner}/-/upload[?package=P&version=V]`: the upload form. Its fields come before the
/// file in the form, so that the server reads the CSRF secret and the names first and then
/// streams the file (the POST is served by the API, through the registry's upload path).
pub(super) fn upload_form(ctx: &Ctx, who: Option<&Viewer>, owner: &str) -> Result<Response> {
    let owner = super::browse::visible_owner(ctx, who, owner)?;
    let o = percent_encode(&owner.login);
    let Some(viewer) = who else {
        let back = format!("/{o}/-/upload");
        return Ok(see_other(&format!(
            "/user/login?redirect_to={}",
            percent_encode(&back)
        )));
    };
    let package = crate::names::query_param(ctx.query, "package").unwrap_or_default();
    let version = crate::names::query_param(ctx.query, "version").unwrap_or_default();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href="/" { "Explore" } " / " a href={ "/" (o) } { (owner.login) } " / " span { "Upload" } }
        section.narrow {
            h1 { "Upload to " (owner.login) }
            form.stack method="post" action={ "/" (o) "/-/upload" } enctype="multipart/form-data" {
                input type="hidden" name="_csrf" value=(viewer.session.csrf);
                label for="u-package" { "Package" }
                input #u-package type="text" name="package" value=(package) required maxlength="255";
                label for="u-version" { "Version " small { "(new or existing)" } }
                input #u-version type="text" name="version" value=(version) required maxlength="255";
                label for="u-file" { "File" }
                input #u-file type="file" name="file" required;
                button.primary type="submit" { "Upload" }
            }
            p.note { "The same limits apply as to an upload with curl: the file size limit, the owner's quota, and no replacing a file that exists." }
        }
    };
    Ok(page(200, "Upload", None, who, body))
}
