//! Browsing: explore, an owner's packages, a package's versions, a version's files.

use maud::{html, Markup};

use super::layout::page;
use super::session::Viewer;
use super::{Ctx, PageError, MAX_DEPTH, PAGE_SIZE};
use crate::auth::{self, Access, Caller};
use crate::http::Response;
use crate::names::{percent_encode, query_param as param};
use crate::store::{fold_case, OwnerKind, Page, UserRecord, VersionEntry};
use crate::units::human_size;

type Result<T> = std::result::Result<T, PageError>;

/// `/`: every package version the visitor may see, newest first, filtered by `q`.
pub(super) fn explore(ctx: &Ctx, who: Option<&Viewer>) -> Result<Response> {
    let q = search(ctx.query);
    let page_no = page_number(ctx.query);
    let depth = page_no.saturating_mul(PAGE_SIZE);
    let body = if depth > MAX_DEPTH {
        too_deep()
    } else {
        // The visible owners' newest-first indexes, merged: a page costs their package counts
        // (when searching) plus the rows up to its depth, whatever the registry holds.
        let mut visible: Vec<UserRecord> = Vec::new();
        for kind in [OwnerKind::User, OwnerKind::Org] {
            for owner in ctx.store.list_owners(kind, 1, u64::MAX)?.items {
                if readable(ctx, who, &owner)? {
                    visible.push(owner);
                }
            }
        }
        let logins: Vec<String> = visible.iter().map(|o| o.login.clone()).collect();
        let found = ctx.store.explore_versions(
            &logins,
            q.as_deref(),
            (page_no - 1) * PAGE_SIZE,
            PAGE_SIZE,
        )?;
        let total = found.total;
        // Owners by their folded login, for their display form.
        let display: std::collections::HashMap<String, &str> = visible
            .iter()
            .map(|o| (fold_case(&o.login), o.login.as_str()))
            .collect();
        let shown: Vec<(String, VersionEntry)> = found
            .items
            .into_iter()
            .map(|(o, e)| (display.get(&o).map_or(o.clone(), |d| d.to_string()), e))
            .collect();
        html! {
            h1 { @if let Some(q) = &q { "Packages matching “" (q) "”" } @else { "Packages" } }
            p.count { (count(total, "version")) }
            @if shown.is_empty() {
                p.empty { @if q.is_some() { "Nothing matches." } @else { "Nothing has been published yet, or nothing you may see." } }
            } @else {
                ul.list {
                    @for (owner, e) in &shown { li { (version_row(owner, e, true)) } }
                }
            }
            (pager("/", ctx.query, page_no, total))
        }
    };
    Ok(page(200, "Explore", q.as_deref(), who, body))
}

/// `/{owner}` and `/{owner}/-/packages`.
pub(super) fn owner(ctx: &Ctx, who: Option<&Viewer>, owner: &str) -> Result<Response> {
    let owner = visible_owner(ctx, who, owner)?;
    let q = search(ctx.query);
    let page_no = page_number(ctx.query);
    let body = if page_no.saturating_mul(PAGE_SIZE) > MAX_DEPTH {
        too_deep()
    } else {
        let found =
            ctx.store
                .list_owner_versions(&owner.login, q.as_deref(), page_no, PAGE_SIZE)?;
        let path = format!("/{}/-/packages", percent_encode(&owner.login));
        let can_upload = super::manage::may_delete(ctx, who, &owner, "")?;
        html! {
            nav.crumbs aria-label="Breadcrumb" { a href="/" { "Explore" } " / " span { (owner.login) } }
            h1 { (owner.login) }
            @if can_upload { p { a href={ "/" (percent_encode(&owner.login)) "/-/upload" } { "Upload a file…" } } }
            @if !owner.full_name.is_empty() { p.sub { (owner.full_name) } }
            @if !owner.description.is_empty() { p.desc { (owner.description) } }
            form.filter method="get" action=(path) {
                label for="oq" { "Filter packages" }
                input #oq type="search" name="q" value=[q.as_deref()] maxlength="200";
                button type="submit" { "Filter" }
            }
            p.count { (count(found.total, "version")) }
            (version_list(&owner.login, &found, false))
            (pager(&path, ctx.query, page_no, found.total))
        }
    };
    Ok(page(200, &owner.login, None, who, body))
}

/// `/{owner}/-/packages/generic/{name}`: the versions, newest first, with download counts.
pub(super) fn package(
    ctx: &Ctx,
    who: Option<&Viewer>,
    owner: &str,
    name: &str,
) -> Result<Response> {
    let owner = visible_owner(ctx, who, owner)?;
    let page_no = page_number(ctx.query);
    if page_no.saturating_mul(PAGE_SIZE) > MAX_DEPTH {
        return Ok(page(200, name, None, who, too_deep()));
    }
    let found = ctx
        .store
        .list_package_versions(&owner.login, name, page_no, PAGE_SIZE)?
        .ok_or(PageError::NotFound)?;
    let name = found
        .items
        .first()
        .map_or_else(|| name.to_string(), |e| e.package.name.clone());
    let o = percent_encode(&owner.login);
    let n = percent_encode(&fold_case(&name));
    let path = format!("/{o}/-/packages/generic/{n}");
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Explore" } " / " a href={ "/" (o) } { (owner.login) } " / " span { (name) }
        }
        h1 { (name) span.kind { "generic" } }
        p.count { (count(found.total, "version")) }
        (version_list(&owner.login, &found, false))
        (pager(&path, ctx.query, page_no, found.total))
    };
    Ok(page(200, &name, None, who, body))
}

/// `/{owner}/-/packages/generic/{name}/{version}`: the files, with curl lines.
pub(super) fn version(
    ctx: &Ctx,
    who: Option<&Viewer>,
    owner: &str,
    name: &str,
    version: &str,
) -> Result<Response> {
    let owner = visible_owner(ctx, who, owner)?;
    let entry = ctx
        .store
        .get_version(&owner.login, name, version)?
        .ok_or(PageError::NotFound)?;
    let files = ctx
        .store
        .list_files(&owner.login, name, version)?
        .ok_or(PageError::NotFound)?;
    let (name, version) = (&entry.package.name, &entry.version.version);
    let o = percent_encode(&owner.login);
    let n = percent_encode(&fold_case(name));
    let v = percent_encode(&fold_case(version));
    let api = format!("{}/api/packages/{o}/generic/{n}", ctx.base);
    let first = files.first().map(|f| f.file.name.clone());
    let example = first.clone().unwrap_or_else(|| "FILE".to_string());
    let fe = percent_encode(&example);
    let size: u64 = files.iter().map(|f| f.file.size).sum();
    let can_delete = super::manage::may_delete(ctx, who, &owner, name)?;
    // Creators as the API shows them: the Ghost when deleted or not visible to this visitor.
    let mut shown = std::collections::HashMap::new();
    let mut creator = |login: &str| -> Result<String> {
        let key = fold_case(login);
        if let Some(v) = shown.get(&key) {
            return Ok(String::clone(v));
        }
        let v = match ctx.store.get_user(login)? {
            Some(u) if auth::profile_visible(ctx.store, who.map(|w| &w.user), &u)? => u.login,
            _ => "Ghost".to_string(),
        };
        shown.insert(key, v.clone());
        Ok(v)
    };
    let version_creator = creator(&entry.version.creator)?;
    let file_creators = files
        .iter()
        .map(|f| creator(&f.file.creator))
        .collect::<Result<Vec<String>>>()?;
    let delete_url = format!("/{o}/-/packages/generic/{n}/{v}/-/delete");
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href="/" { "Explore" } " / " a href={ "/" (o) } { (owner.login) } " / "
            a href={ "/" (o) "/-/packages/generic/" (n) } { (name) } " / " span { (version) }
        }
        h1 { (name) " " span.ver { (version) } }
        p.meta {
            "Published " (when(entry.version.created)) " by " (version_creator)
            " · " (count(files.len() as u64, "file")) ", " (human_size(size))
            " · " (count(entry.version.downloads, "download"))
        }
        @if files.is_empty() {
            p.empty { "This version has no files." }
        } @else {
            div.table-wrap {
                table.files {
                    caption.visually-hidden { "Files of " (name) " " (version) }
                    thead { tr {
                        th scope="col" { "File" } th scope="col" { "Size" }
                        th scope="col" { "SHA-256" } th scope="col" { "Published" }
                        th scope="col" { "Downloads" }
                        @if can_delete { th scope="col" { span.visually-hidden { "Actions" } } }
                    } }
                    tbody {
                        @for (f, by) in files.iter().zip(&file_creators) {
                            tr {
                                td data-label="File" { a href={ (api) "/" (v) "/" (percent_encode(&f.file.name)) } { (f.file.name) } }
                                td.num data-label="Size" title={ (f.file.size) " bytes" } {
                                    (human_size(f.file.size))
                                    @if f.file.size >= 1024 { br; small { (f.file.size) " bytes" } }
                                }
                                td.hash data-label="SHA-256" { code { (f.digests.sha256) } }
                                td data-label="Published" { (when(f.file.created)) br; small { "by " (by) } }
                                td.num data-label="Downloads" { (f.file.downloads) }
                                @if can_delete {
                                    td { a.danger-link href={ (delete_url) "?file=" (percent_encode(&f.file.name)) } { "Delete" span.visually-hidden { " " (f.file.name) } } }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if can_delete {
            p {
                a href={ "/" (o) "/-/upload?package=" (percent_encode(name)) "&version=" (percent_encode(version)) } { "Upload a file to this version" }
                " · "
                a.danger-link href=(delete_url) { "Delete this version…" }
            }
        }
        section.howto {
            h2 { "Use it" }
            h3 { "Download" }
            pre { code { "curl -fLO " (api) "/" (v) "/" (fe) } }
            h3 { "Download the newest version of this file" }
            pre { code { "curl -fLO " (api) "/latest/" (fe) } }
            h3 { "Publish a file to this version" }
            pre { code { "curl -f --user USER:TOKEN --upload-file FILE \\\n  " (api) "/" (v) "/FILE" } }
        }
    };
    Ok(page(200, &format!("{name} {version}"), None, who, body))
}

/// The owner, when this visitor may see it; else the same 404 as for no such owner.
pub(super) fn visible_owner(ctx: &Ctx, who: Option<&Viewer>, login: &str) -> Result<UserRecord> {
    let owner = ctx.store.get_user(login)?.ok_or(PageError::NotFound)?;
    if !readable(ctx, who, &owner)? {
        return Err(PageError::NotFound);
    }
    Ok(owner)
}

/// Whether the visitor (signed in or not) may see `owner` and read its packages: the API's
/// rules for a caller without a token.
fn readable(ctx: &Ctx, who: Option<&Viewer>, owner: &UserRecord) -> Result<bool> {
    let caller = who.map(|w| Caller {
        user: w.user.clone(),
        token: None,
    });
    Ok(
        auth::profile_visible(ctx.store, who.map(|w| &w.user), owner)?
            && auth::package_access(ctx.store, caller.as_ref(), owner, None, Access::Read)?.is_ok(),
    )
}

fn version_list(owner: &str, found: &Page<VersionEntry>, with_owner: bool) -> Markup {
    html! {
        @if found.items.is_empty() {
            p.empty { "No packages here." }
        } @else {
            ul.list { @for e in &found.items { li { (version_row(owner, e, with_owner)) } } }
        }
    }
}

fn version_row(owner: &str, e: &VersionEntry, with_owner: bool) -> Markup {
    let o = percent_encode(owner);
    let n = percent_encode(&fold_case(&e.package.name));
    let v = percent_encode(&fold_case(&e.version.version));
    html! {
        a.row href={ "/" (o) "/-/packages/generic/" (n) "/" (v) } {
            span.name {
                @if with_owner { span.owner { (owner) " / " } }
                (e.package.name)
            }
            " "
            span.ver { (e.version.version) }
        }
        span.meta {
            (when(e.version.created)) " · " (count(e.version.downloads, "download"))
        }
    }
}

/// Previous / next links that keep the other query parameters.
fn pager(path: &str, query: &str, page_no: u64, total: u64) -> Markup {
    let last = total.div_ceil(PAGE_SIZE).clamp(1, MAX_DEPTH / PAGE_SIZE);
    let href = |p: u64| {
        let mut parts: Vec<String> = query
            .split('&')
            .filter(|kv| !kv.is_empty() && !kv.starts_with("page="))
            .map(str::to_string)
            .collect();
        parts.push(format!("page={p}"));
        format!("{path}?{}", parts.join("&"))
    };
    html! {
        @if last > 1 {
            nav.pager aria-label="Pages" {
                @if page_no > 1 { a rel="prev" href=(href(page_no.min(last + 1) - 1)) { "← Newer" } }
                span { "Page " (page_no) " of " (last) }
                @if page_no < last { a rel="next" href=(href(page_no + 1)) { "Older →" } }
            }
        }
    }
}

fn too_deep() -> Markup {
    html! {
        p.empty { "That page is too far back to list. Narrow the search instead." }
    }
}

fn search(query: &str) -> Option<String> {
    param(query, "q")
        .map(|q| q.trim().chars().take(200).collect::<String>())
        .filter(|q| !q.is_empty())
}

fn page_number(query: &str) -> u64 {
    param(query, "page")
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|&p| p >= 1)
        .unwrap_or(1)
}

fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A date for people, with the exact time as a tooltip.
pub(super) fn when(secs: u64) -> Markup {
    let full = crate::dates::rfc3339_secs(secs);
    let day = full.get(..10).unwrap_or(&full).to_string();
    html! { time datetime=(full) title=(full) { (day) } }
}
