//! The API reference: one table of the routes shelf serves (`ENDPOINTS`), rendered as an
//! OpenAPI 3 document at `GET /swagger.v1.json` (Gitea's path) and as a page for people at
//! `GET /api/swagger`, the URL every JSON error's `url` points to. Both are built from the
//! table and nothing else, with no script and no asset from elsewhere (air-gapped sites have
//! no CDN). The unit tests hold the table and the route table (`routes::route`) to each other.

use crate::http::{Response, ResponseBody};
use serde_json::{json, Map, Value};

/// Who may call an endpoint.
#[derive(Clone, Copy)]
enum Who {
    /// Anyone, with no credentials.
    Anyone,
    /// Anyone for public owners; a reader of the owner otherwise (registry reads).
    Reader,
    /// A signed-in caller with the scope named (`read:package`, `write:admin`, …).
    Scope(&'static str),
    /// A site admin, with the scope named.
    Admin(&'static str),
    /// The user itself with its password (Basic), or a site admin's `write:admin` token.
    Password,
    /// A bearer token when `--metrics-token` is set, else anyone.
    Metrics,
}

impl Who {
    fn text(self) -> String {
        match self {
            Who::Anyone => "anyone".into(),
            Who::Reader => {
                "anyone for a public owner; a signed-in reader for a limited or private one".into()
            }
            Who::Scope(s) => format!("a token (or Basic) with the {s} scope"),
            Who::Admin(s) => format!("a site admin, with the {s} scope"),
            Who::Password => {
                "the user with its password (Basic), or a site admin's write:admin token".into()
            }
            Who::Metrics => "the bearer token of --metrics-token when set, else anyone".into(),
        }
    }
}

/// One route: `path` has `{name}` parameters, in the URL's own encoding.
struct Endpoint {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
    /// Query parameters: `(name, description)`.
    query: &'static [(&'static str, &'static str)],
    /// The request body, when it takes one: `(content type, description)`.
    body: Option<(&'static str, &'static str)>,
    /// The success answer: `(status, description)`.
    ok: (u16, &'static str),
}

const PAGING: &[(&str, &str)] = &[
    ("page", "page number, from 1"),
    ("limit", "items per page, at most 50"),
];
const DRY_RUN: &[(&str, &str)] = &[("dry_run", "true: list what would go, remove nothing")];
const JSON: &str = "application/json";

const fn e(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    who: Who,
    ok: (u16, &'static str),
) -> Endpoint {
    Endpoint {
        method,
        path,
        tag,
        summary,
        who,
        query: &[],
        body: None,
        ok,
    }
}

impl Endpoint {
    const fn query(mut self, q: &'static [(&'static str, &'static str)]) -> Endpoint {
        self.query = q;
        self
    }

    const fn body(mut self, content_type: &'static str, what: &'static str) -> Endpoint {
        self.body = Some((content_type, what));
        self
    }
}

/// Every route shelf serves, in the order the page lists them.
static ENDPOINTS: &[Endpoint] = &[
    // ------------------------------------------------------------------ registry
    e("PUT", "/api/packages/{owner}/generic/{name}/{version}/{file}", "registry",
      "Publish a file (409 if the version already has it). Verified with X-Checksum-Sha256, \
       -Sha1, -Md5, Content-MD5 or Content-Digest/Repr-Digest; X-Checksum-Deploy: true \
       publishes stored bytes by their sha256 without sending them.",
      Who::Scope("write:package"), (201, "published"))
        .body("application/octet-stream", "the file's bytes (raw, chunked or multipart/form-data)"),
    e("GET", "/api/packages/{owner}/generic/{name}/{version}/{file}", "registry",
      "Download a file, with Range, If-Range and conditional requests as Go's ServeContent. \
       The version \"latest\" means the newest version that has the file.",
      Who::Reader, (200, "the file (206 for a range, 304 when not modified)")),
    e("HEAD", "/api/packages/{owner}/generic/{name}/{version}/{file}", "registry",
      "A file's headers: Content-Length, ETag, X-Checksum-Sha256, Repr-Digest, Last-Modified.",
      Who::Reader, (200, "the headers of the download")),
    e("DELETE", "/api/packages/{owner}/generic/{name}/{version}/{file}", "registry",
      "Delete a file; the version goes with its last file.",
      Who::Scope("write:package"), (204, "deleted")),
    e("DELETE", "/api/packages/{owner}/generic/{name}/{version}", "registry", "Delete a version and all its files.",
      Who::Scope("write:package"), (204, "deleted")),
    // ------------------------------------------------------------------ packages
    e("GET", "/api/v1/version", "packages", "The API version, as Gitea's.",
      Who::Anyone, (200, "{\"version\"}")),
    e("GET", "/api/v1/packages/{owner}", "packages", "An owner's package versions, newest first.",
      Who::Scope("read:package"), (200, "an array of packages; X-Total-Count and Link"))
        .query(&[
            ("type", "generic (any other type lists nothing)"),
            ("q", "part of the package name"),
            ("page", "page number, from 1"),
            ("limit", "items per page, at most 50"),
        ]),
    e("GET", "/api/v1/packages/{owner}/generic/{name}", "packages",
      "The versions of one package, newest first.",
      Who::Scope("read:package"), (200, "an array of packages; X-Total-Count and Link"))
        .query(PAGING),
    e("DELETE", "/api/v1/packages/{owner}/generic/{name}", "packages",
      "Delete a package: every version and file.",
      Who::Scope("write:package"), (204, "deleted")),
    e("GET", "/api/v1/packages/{owner}/generic/{name}/-/latest", "packages",
      "The newest version of a package (by creation).",
      Who::Scope("read:package"), (200, "a package")),
    e("GET", "/api/v1/packages/{owner}/generic/{name}/{version}", "packages", "One version.",
      Who::Scope("read:package"), (200, "a package")),
    e("DELETE", "/api/v1/packages/{owner}/generic/{name}/{version}", "packages",
      "Delete a version and its files.", Who::Scope("write:package"), (204, "deleted")),
    e("GET", "/api/v1/packages/{owner}/generic/{name}/{version}/files", "packages",
      "A version's files: size, md5, sha1, sha256, sha512, downloads.",
      Who::Scope("read:package"), (200, "an array of package files")),
    // ------------------------------------------------------------------ accounts
    e("GET", "/api/v1/user", "accounts", "The signed-in user.",
      Who::Scope("read:user"), (200, "a user")),
    e("GET", "/api/v1/user/orgs", "accounts", "The organizations the signed-in user is in.",
      Who::Scope("read:organization"), (200, "an array of organizations")).query(PAGING),
    e("GET", "/api/v1/users/{name}", "accounts", "A user or organization profile.",
      Who::Scope("read:user"), (200, "a user")),
    e("GET", "/api/v1/users/{name}/tokens", "accounts", "A user's access tokens (no secrets).",
      Who::Password, (200, "an array of tokens")).query(PAGING),
    e("POST", "/api/v1/users/{name}/tokens", "accounts",
      "Create an access token; its secret is shown once, as sha1.",
      Who::Password, (201, "the token, with sha1"))
        .body(JSON, "{\"name\", \"scopes\": [...], \"owner\", \"package\", \"expires_at\"}"),
    e("DELETE", "/api/v1/users/{name}/tokens/{token}", "accounts",
      "Revoke a token, by name or id.", Who::Password, (204, "revoked")),
    e("GET", "/api/v1/orgs", "accounts", "The organizations the caller may see.",
      Who::Scope("read:organization"), (200, "an array of organizations")).query(PAGING),
    e("POST", "/api/v1/orgs", "accounts", "Create an organization owned by the caller.",
      Who::Scope("write:organization"), (201, "the organization"))
        .body(JSON, "{\"username\", \"full_name\", \"description\", \"visibility\"}"),
    e("GET", "/api/v1/orgs/{org}", "accounts", "An organization.",
      Who::Scope("read:organization"), (200, "an organization")),
    e("PATCH", "/api/v1/orgs/{org}", "accounts", "Edit an organization (its admins).",
      Who::Scope("write:organization"), (200, "the organization"))
        .body(JSON, "{\"full_name\", \"description\", \"visibility\"}"),
    e("DELETE", "/api/v1/orgs/{org}", "accounts",
      "Delete an organization that owns no packages (its admins).",
      Who::Scope("write:organization"), (204, "deleted")),
    e("GET", "/api/v1/orgs/{org}/members", "accounts", "Members, with their roles.",
      Who::Scope("read:organization"), (200, "an array of users with role")).query(PAGING),
    e("GET", "/api/v1/orgs/{org}/members/{user}", "accounts", "Whether a user is a member.",
      Who::Scope("read:organization"), (204, "a member (404: not one)")),
    e("PUT", "/api/v1/orgs/{org}/members/{user}", "accounts",
      "Add a member or change its role (its admins).",
      Who::Scope("write:organization"), (204, "set"))
        .body(JSON, "{\"role\": \"read\" | \"write\" | \"admin\"}"),
    e("DELETE", "/api/v1/orgs/{org}/members/{user}", "accounts",
      "Remove a member, and it from the organization's teams.",
      Who::Scope("write:organization"), (204, "removed")),
    e("GET", "/api/v1/orgs/{org}/teams", "accounts", "An organization's teams.",
      Who::Scope("read:organization"), (200, "an array of teams")).query(PAGING),
    e("POST", "/api/v1/orgs/{org}/teams", "accounts", "Create a team (its admins).",
      Who::Scope("write:organization"), (201, "the team"))
        .body(JSON, "{\"name\", \"description\", \"permission\" or \"units_map\"}"),
    e("GET", "/api/v1/teams/{id}", "accounts", "A team.",
      Who::Scope("read:organization"), (200, "a team")),
    e("GET", "/api/v1/teams/{id}/members", "accounts", "A team's members.",
      Who::Scope("read:organization"), (200, "an array of users")).query(PAGING),
    e("GET", "/api/v1/teams/{id}/members/{user}", "accounts", "One member of a team.",
      Who::Scope("read:organization"), (200, "the user (404: not a member)")),
    e("PUT", "/api/v1/teams/{id}/members/{user}", "accounts", "Add a user to a team.",
      Who::Scope("write:organization"), (204, "added")),
    e("DELETE", "/api/v1/teams/{id}/members/{user}", "accounts", "Remove a user from a team.",
      Who::Scope("write:organization"), (204, "removed")),
    // ------------------------------------------------------------------ site admin
    e("GET", "/api/v1/admin/users", "admin", "Every user.",
      Who::Admin("read:admin"), (200, "an array of users")).query(PAGING),
    e("POST", "/api/v1/admin/users", "admin", "Create a user.",
      Who::Admin("write:admin"), (201, "the user"))
        .body(JSON, "{\"username\", \"password\", \"email\", \"full_name\", \"visibility\", \"admin\"}"),
    e("GET", "/api/v1/admin/users/{name}", "admin", "One user, with its admin fields.",
      Who::Admin("read:admin"), (200, "a user")),
    e("PATCH", "/api/v1/admin/users/{name}", "admin",
      "Edit a user: email, full name, active, admin, password, visibility.",
      Who::Admin("write:admin"), (200, "the user"))
        .body(JSON, "{\"email\", \"full_name\", \"active\", \"admin\", \"password\", \"visibility\", \"prohibit_login\"}"),
    e("DELETE", "/api/v1/admin/users/{name}", "admin",
      "Delete a user; ?purge=true deletes its packages too.",
      Who::Admin("write:admin"), (204, "deleted"))
        .query(&[("purge", "true: delete the user's packages with it")]),
    e("POST", "/api/v1/admin/users/{name}/orgs", "admin",
      "Create an organization owned by that user.",
      Who::Admin("write:admin"), (201, "the organization"))
        .body(JSON, "{\"username\", \"full_name\", \"description\", \"visibility\"}"),
    e("POST", "/api/v1/admin/users/{name}/tokens", "admin", "Create a token for a user.",
      Who::Admin("write:admin"), (201, "the token, with sha1"))
        .body(JSON, "{\"name\", \"scopes\": [...], \"owner\", \"package\", \"expires_at\"}"),
    e("GET", "/api/v1/admin/orgs", "admin", "Every organization.",
      Who::Admin("read:admin"), (200, "an array of organizations")).query(PAGING),
    e("GET", "/api/v1/admin/audit", "admin", "The audit log, newest first.",
      Who::Admin("read:admin"), (200, "an array of audit events"))
        .query(&[
            ("actor", "only this actor"),
            ("owner", "only this owner"),
            ("action", "only this action (user.create, package.delete, …)"),
            ("page", "page number, from 1"),
            ("limit", "items per page, at most 50"),
        ]),
    // ------------------------------------------------------------------ quotas and cleanup
    e("GET", "/api/v1/admin/quotas", "limits", "Every owner with usage or overrides.",
      Who::Admin("read:admin"), (200, "an array of quotas")),
    e("GET", "/api/v1/admin/quotas/{owner}", "limits",
      "An owner's limits, overrides and usage (site admins, and the owner's admins).",
      Who::Scope("read:package"), (200, "a quota")),
    e("PUT", "/api/v1/admin/quotas/{owner}", "limits", "Replace an owner's overrides.",
      Who::Admin("write:admin"), (200, "the quota"))
        .body(JSON, "{\"max_file_size\", \"max_bytes\", \"max_versions\"}: a number, a size such as \"500MB\", \"unlimited\" or \"default\""),
    e("DELETE", "/api/v1/admin/quotas/{owner}", "limits", "Back to the server's defaults.",
      Who::Admin("write:admin"), (204, "cleared")),
    e("GET", "/api/v1/admin/cleanup/rules", "limits", "Every owner's cleanup rules.",
      Who::Admin("read:admin"), (200, "an array of rules")),
    e("POST", "/api/v1/admin/cleanup/run", "limits", "Run every owner's cleanup rules.",
      Who::Admin("write:admin"), (200, "{\"dry_run\", \"removed\", \"skipped\"}")).query(DRY_RUN),
    e("GET", "/api/v1/cleanup/{owner}/rules", "limits", "An owner's cleanup rules.",
      Who::Scope("read:package"), (200, "an array of rules")),
    e("PUT", "/api/v1/cleanup/{owner}/rules/{package}", "limits",
      "Set the rule of one package, or of all of them (\"*\").",
      Who::Scope("write:package"), (200, "the rule"))
        .body(JSON, "{\"enabled\", \"keep_count\", \"keep_pattern\", \"remove_days\", \"remove_pattern\", \"match_full_name\", \"unused_days\"}"),
    e("DELETE", "/api/v1/cleanup/{owner}/rules/{package}", "limits", "Remove a rule.",
      Who::Scope("write:package"), (204, "removed")),
    e("POST", "/api/v1/cleanup/{owner}/run", "limits", "Run an owner's cleanup rules.",
      Who::Scope("write:package"), (200, "{\"dry_run\", \"removed\", \"skipped\"}")).query(DRY_RUN),
    // ------------------------------------------------------------------ maintenance
    e("GET", "/api/v1/admin/backup", "maintenance",
      "A consistent copy of the database, streamed while uploads go on.",
      Who::Admin("write:admin"), (200, "the database file")),
    e("GET", "/api/v1/admin/check", "maintenance", "Check the store's integrity.",
      Who::Admin("read:admin"), (200, "the check report")),
    e("GET", "/api/v1/admin/stats", "maintenance", "Counts, sizes and space use.",
      Who::Admin("read:admin"), (200, "the statistics")),
    e("GET", "/api/v1/admin/manifest", "maintenance", "What an export of an owner would hold.",
      Who::Admin("read:admin"), (200, "a manifest; X-Shelf-Owner-Missing when the owner is not here"))
        .query(&[("owner", "the owner (absent: every owner)")]),
    e("POST", "/api/v1/admin/export", "maintenance",
      "An air-gap bundle (tar) of an owner, less what a manifest says the other side holds.",
      Who::Admin("read:admin"), (200, "the bundle"))
        .body(JSON, "{\"owner\", \"package\", \"version\", \"since\", \"against\": a manifest}"),
    e("PUT", "/api/v1/admin/import", "maintenance",
      "Import a bundle: verified, then published; conflicts are reported, never overwritten.",
      Who::Admin("write:admin"), (200, "the import report"))
        .body("application/x-tar", "a bundle from export"),
    // ------------------------------------------------------------------ operations
    e("GET", "/healthz", "operations", "The process answers (no database access).",
      Who::Anyone, (200, "ok")),
    e("GET", "/readyz", "operations", "The database takes a durable write.",
      Who::Anyone, (200, "ready (503: not ready, and why)")),
    e("GET", "/metrics", "operations", "Prometheus metrics.", Who::Metrics, (200, "text format")),
    e("GET", "/api/swagger", "operations", "This page.", Who::Anyone, (200, "HTML")),
    e("GET", "/swagger.v1.json", "operations", "This reference as OpenAPI 3.",
      Who::Anyone, (200, "JSON")),
];

/// `{name}` parameters of a path template, in order.
fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// The OpenAPI 3 document of `ENDPOINTS`, for clients reaching shelf at `base`.
pub(super) fn openapi(base: &str) -> Value {
    let mut paths = Map::new();
    for ep in ENDPOINTS {
        let mut params: Vec<Value> = path_params(ep.path)
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(ep.query.iter().map(|(name, what)| {
            json!({"name": name, "in": "query", "required": false,
                   "description": what, "schema": {"type": "string"}})
        }));
        let mut op = json!({
            "tags": [ep.tag],
            "summary": ep.summary,
            "description": format!("Who may call: {}.", ep.who.text()),
            "parameters": params,
            "responses": {
                ep.ok.0.to_string(): {"description": ep.ok.1},
                "default": {"$ref": "#/components/responses/Error"},
            },
        });
        if matches!(ep.who, Who::Anyone | Who::Metrics) {
            op["security"] = json!([]);
        }
        if let Some((content_type, what)) = ep.body {
            op["requestBody"] = json!({
                "description": what,
                "content": { content_type: {"schema": {}} },
            });
        }
        let entry = paths
            .entry(ep.path.to_string())
            .or_insert_with(|| json!({}));
        entry[ep.method.to_ascii_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "shelf",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A generic package registry with the HTTP API of Gitea's and \
                Forgejo's generic registry. The registry routes answer errors in plain text; \
                /api/v1 answers Gitea's JSON: {\"message\", \"url\"}, and on a 404 an \
                \"errors\" array naming what was not found.",
        },
        "servers": [{"url": base}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization",
                          "description": "token T (or Bearer T)"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "user:password, or user:token"},
                "query": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "responses": {
                "Error": {
                    "description": "An error: plain text on the registry routes, JSON on /api/v1",
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            "message": {"type": "string"},
                            "url": {"type": "string"},
                            "errors": {"type": "array", "items": {"type": "string"}},
                        }}},
                        "text/plain": {"schema": {"type": "string"}},
                    },
                },
            },
        },
        "security": [{"token": []}, {"basic": []}, {"query": []}],
    })
}

/// `GET /swagger.v1.json`.
pub(super) fn document(base: &str) -> Response {
    super::error::json_response(200, &openapi(base))
}

/// HTML-escapes `s` (everything a page shows goes through here).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const TAGS: &[(&str, &str)] = &[
    (
        "registry",
        "The generic registry (Gitea's /api/packages routes)",
    ),
    ("packages", "Packages in the JSON API"),
    ("accounts", "Users, tokens, organizations and teams"),
    ("admin", "Site administration"),
    ("limits", "Quotas and cleanup rules"),
    (
        "maintenance",
        "Backup, check, statistics and air-gap bundles",
    ),
    (
        "operations",
        "Health, readiness, metrics and this reference",
    ),
];

/// `GET /api/swagger`: the reference as a page, with no script.
pub(super) fn page(base: &str) -> Response {
    let mut h = String::from(concat!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>shelf API reference</title><style>",
        "body{font:15px/1.5 system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}",
        "h2{margin-top:2.2rem;border-bottom:1px solid #ddd}",
        "table{border-collapse:collapse;width:100%}td{padding:.45rem .5rem;vertical-align:top;border-bottom:1px solid #eee}",
        "code{font:13px ui-monospace,monospace}.m{font-weight:700;width:4.5rem}",
        ".GET{color:#1565c0}.PUT{color:#6a1b9a}.POST{color:#2e7d32}.DELETE{color:#c62828}",
        ".PATCH{color:#ef6c00}.HEAD{color:#455a64}.who,.q{color:#555;font-size:13px}",
        "</style></head><body><h1>shelf API reference</h1>",
    ));
    h.push_str(&format!(
        "<p>shelf {} answers the generic registry routes of Gitea and Forgejo, byte for byte \
         where a client can see it, and the parts of Gitea's <code>/api/v1</code> listed below. \
         The machine-readable document: <a href=\"/swagger.v1.json\"><code>/swagger.v1.json</code></a> \
         (OpenAPI 3). Clients reach this server at <code>{}</code>.</p>\
         <p>Credentials: <code>Authorization: token T</code>, <code>Bearer T</code>, Basic \
         <code>user:password</code> or <code>user:T</code>, or <code>?token=T</code>. Errors are \
         plain text on the registry routes and <code>{{\"message\", \"url\"}}</code> JSON on \
         <code>/api/v1</code>; a 404 there adds <code>\"errors\"</code>, naming what was not \
         found.</p>",
        esc(env!("CARGO_PKG_VERSION")),
        esc(base),
    ));
    for (tag, title) in TAGS {
        h.push_str(&format!(
            "<h2 id=\"{0}\">{1}</h2><table>",
            esc(tag),
            esc(title)
        ));
        for ep in ENDPOINTS.iter().filter(|e| e.tag == *tag) {
            h.push_str(&format!(
                "<tr><td class=\"m {0}\">{0}</td><td><code>{1}</code><div>{2}</div>",
                esc(ep.method),
                esc(ep.path),
                esc(ep.summary)
            ));
            if !ep.query.is_empty() {
                let q: Vec<String> = ep
                    .query
                    .iter()
                    .map(|(n, w)| format!("<code>{}</code>: {}", esc(n), esc(w)))
                    .collect();
                h.push_str(&format!("<div class=\"q\">Query: {}</div>", q.join("; ")));
            }
            if let Some((ct, what)) = ep.body {
                h.push_str(&format!(
                    "<div class=\"q\">Body (<code>{}</code>): <code>{}</code></div>",
                    esc(ct),
                    esc(what)
                ));
            }
            h.push_str(&format!(
                "<div class=\"who\">{} {} · who: {}</div></td></tr>",
                ep.ok.0,
                esc(ep.ok.1),
                esc(&ep.who.text())
            ));
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    let mut r = Response::new(200)
        .with_header("Content-Type", "text/html; charset=utf-8")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        );
    r.body = ResponseBody::Bytes(h.into_bytes());
    r
}

/// Whether the reference lists `method path` (the route table's tests hold it to that); a
/// HEAD is listed with its GET.
#[cfg(test)]
pub(super) fn listed(method: &str, path: &str) -> bool {
    ENDPOINTS.iter().any(|e| {
        (e.method == method || (method == "HEAD" && e.method == "GET"))
            && tests::instance(e.path, path)
    })
}

#[cfg(test)]
mod tests {
    use super::super::routes::{route, PackageOp, Route};
    use super::*;

    /// The path of a template with every parameter filled in.
    fn sample(path: &str) -> String {
        path.split('/')
            .map(|s| match s {
                "{id}" => "7",
                s if s.starts_with('{') => "x1",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// Whether `path` is an instance of the template `tpl`.
    pub(super) fn instance(tpl: &str, path: &str) -> bool {
        let (t, p): (Vec<&str>, Vec<&str>) = (tpl.split('/').collect(), path.split('/').collect());
        t.len() == p.len()
            && t.iter()
                .zip(&p)
                .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
    }

    #[test]
    fn every_endpoint_is_a_route() {
        for ep in ENDPOINTS {
            let path = sample(ep.path);
            let r = route(ep.method, &path);
            let real = !matches!(
                r,
                Route::NotFound(_)
                    | Route::NotAllowed(..)
                    | Route::Packages {
                        op: PackageOp::NotFound | PackageOp::NotAllowed,
                        ..
                    }
            );
            assert!(real, "{} {} routes to {r:?}", ep.method, ep.path);
        }
    }

    #[test]
    fn no_endpoint_is_listed_twice() {
        for (i, a) in ENDPOINTS.iter().enumerate() {
            for b in &ENDPOINTS[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {}",
                    a.method,
                    a.path
                );
            }
            assert!(TAGS.iter().any(|(t, _)| *t == a.tag), "tag {}", a.tag);
        }
    }

    #[test]
    fn the_document_is_openapi_with_every_endpoint() {
        let v = openapi("http://h");
        assert_eq!(v["openapi"], "3.0.3");
        let n: usize = v["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|p| p.as_object().expect("operations").len())
            .sum();
        assert_eq!(n, ENDPOINTS.len());
        let op = &v["paths"]["/api/v1/users/{name}/tokens/{token}"]["delete"];
        assert_eq!(op["parameters"][1]["name"], "token", "{op}");
    }

    #[test]
    fn the_page_escapes_what_it_shows() {
        let Response { body, .. } = page("http://h/<x>");
        let ResponseBody::Bytes(b) = body else {
            panic!("a page is bytes")
        };
        let text = String::from_utf8(b).expect("utf-8");
        assert!(text.contains("http://h/&lt;x&gt;"), "{text}");
        assert!(!text.contains("<script"));
        assert!(text.contains("<code>/api/v1/teams/{id}/members/{user}</code>"));
    }
}
