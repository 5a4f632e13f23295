//! Site admin pages, first step: storage (`/-/admin`, Gitea's path) and the audit log
//! (`/-/admin/audit`). Read-only; only a signed-in site admin sees them, anyone else gets
//! the same 404 as for a page that does not exist.

use std::sync::atomic::Ordering;

use maud::html;

use super::browse::when;
use super::layout::{page, private};
use super::session::Viewer;
use super::{Ctx, PageError};
use crate::http::Response;
use crate::names::query_param as param;
use crate::store::AuditFilter;
use crate::units::human_size;

type Result<T> = std::result::Result<T, PageError>;

/// Audit entries per page.
const AUDIT_PAGE: u64 = 50;

fn site_admin(who: Option<&Viewer>) -> Result<&Viewer> {
    who.filter(|w| w.user.is_admin).ok_or(PageError::NotFound)
}

/// `/-/admin`: logical and physical bytes, dedup, the file and the disk, the scrub, owners.
pub(super) fn storage(ctx: &Ctx, who: Option<&Viewer>) -> Result<Response> {
    let admin = site_admin(who)?;
    let s = ctx.store.stats()?;
    let scrub = ctx.store.scrub_state();
    let last = scrub.last_pass_end.load(Ordering::Relaxed);
    let recent = scrub
        .recent_faults
        .lock()
        .map(|r| r.clone())
        .unwrap_or_default();
    let free = ctx.store.disk_free();
    let body = html! {
        (nav("storage"))
        h1 { "Storage" }
        div.table-wrap {
            table.kv {
                tbody {
                    tr { th scope="row" { "Packages · versions · files" } td { (s.packages) " · " (s.versions) " · " (s.files) } }
                    tr { th scope="row" { "Logical bytes (every file counted)" } td { (human_size(s.logical_bytes)) " " small { "(" (s.logical_bytes) " bytes)" } } }
                    tr { th scope="row" { "Physical bytes (distinct chunks)" } td { (human_size(s.physical_bytes)) " " small { "(" (s.chunks) " chunks)" } } }
                    tr { th scope="row" { "Deduplication" } td { (format!("{:.2}×", s.dedup_ratio)) } }
                    tr { th scope="row" { "Database file" } td { (human_size(s.file_bytes)) ", of which free inside " (human_size(s.free_bytes)) " (" code { "shelf compact" } " gives it back)" } }
                    tr { th scope="row" { "Free on the disk" } td { @match free { Some(f) => { (human_size(f)) }, None => { "unknown" } } } }
                    tr { th scope="row" { "Scrub" } td {
                        @if scrub.running.load(Ordering::Relaxed) {
                            "running, " (format!("{:.0}%", scrub.progress() * 100.0)) " of this pass"
                        } @else { "idle" }
                        " · " (scrub.passes_completed.load(Ordering::Relaxed)) " passes"
                        @if last > 0 { " · last ended " (when(last)) }
                    } }
                    tr { th scope="row" { "Damaged chunks found" } td {
                        (scrub.faults_total.load(Ordering::Relaxed))
                        @if !recent.is_empty() { br; small { "recent: " (recent.join(", ")) } }
                    } }
                }
            }
        }
        h2 { "Owners" }
        @if s.owners.is_empty() {
            p.empty { "No owner holds a package yet." }
        } @else {
            div.table-wrap {
                table {
                    thead { tr {
                        th scope="col" { "Owner" } th.num scope="col" { "Packages" }
                        th.num scope="col" { "Versions" } th.num scope="col" { "Files" }
                        th.num scope="col" { "Bytes" }
                    } }
                    tbody {
                        @for o in &s.owners {
                            tr {
                                td { a href={ "/" (crate::names::percent_encode(&o.owner)) } { (o.owner) } }
                                td.num { (o.packages) } td.num { (o.versions) } td.num { (o.files) }
                                td.num title={ (o.logical_bytes) " bytes" } { (human_size(o.logical_bytes)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(private(page(200, "Storage", None, Some(admin), body)))
}

/// `/-/admin/audit?owner=O&action=A&page=N`: newest first.
pub(super) fn audit(ctx: &Ctx, who: Option<&Viewer>) -> Result<Response> {
    let admin = site_admin(who)?;
    let owner = param(ctx.query, "owner").filter(|o| !o.trim().is_empty());
    let action = param(ctx.query, "action").filter(|a| !a.trim().is_empty());
    let page_no = param(ctx.query, "page")
        .and_then(|p| p.parse::<u64>().ok())
        .filter(|&p| p >= 1)
        .unwrap_or(1);
    let filter = AuditFilter {
        owner: owner.clone(),
        action: action.clone(),
        actor: None,
    };
    let found = ctx.store.list_audit(&filter, page_no, AUDIT_PAGE)?;
    let last = found.total.div_ceil(AUDIT_PAGE).max(1);
    let href = |p: u64| {
        let mut q = Vec::new();
        if let Some(o) = &owner {
            q.push(format!("owner={}", crate::names::percent_encode(o)));
        }
        if let Some(a) = &action {
            q.push(format!("action={}", crate::names::percent_encode(a)));
        }
        q.push(format!("page={p}"));
        format!("/-/admin/audit?{}", q.join("&"))
    };
    let body = html! {
        (nav("audit"))
        h1 { "Audit log" }
        form.filter method="get" action="/-/admin/audit" {
            label for="a-owner" { "Owner" }
            input #a-owner type="search" name="owner" value=[owner.as_deref()] maxlength="100";
            label for="a-action" { "Action " small { "(e.g. package.publish, or package)" } }
            input #a-action type="search" name="action" value=[action.as_deref()] maxlength="100";
            button type="submit" { "Filter" }
        }
        p.count { (found.total) " entries" }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "From" }
                    th scope="col" { "Action" } th scope="col" { "Owner" } th scope="col" { "Target" }
                    th scope="col" { "Outcome" }
                } }
                tbody {
                    @for e in &found.items {
                        tr {
                            td { (when(e.time)) }
                            td { @if e.actor.is_empty() { "anonymous" } @else { (e.actor) } }
                            td { code { (e.addr) } }
                            td { code { (e.action) } }
                            td { (e.owner) }
                            td.hash { (e.target) }
                            td { (e.outcome) }
                        }
                    }
                }
            }
        }
        @if last > 1 {
            nav.pager aria-label="Pages" {
                @if page_no > 1 { a rel="prev" href=(href(page_no.min(last + 1) - 1)) { "← Newer" } }
                span { "Page " (page_no) " of " (last) }
                @if page_no < last { a rel="next" href=(href(page_no + 1)) { "Older →" } }
            }
        }
    };
    Ok(private(page(200, "Audit log", None, Some(admin), body)))
}

fn nav(current: &str) -> maud::Markup {
    html! {
        nav.crumbs aria-label="Site admin" {
            "Site admin: "
            @if current == "storage" { span { "Storage" } } @else { a href="/-/admin" { "Storage" } }
            " · "
            @if current == "audit" { span { "Audit log" } } @else { a href="/-/admin/audit" { "Audit log" } }
        }
    }
}
