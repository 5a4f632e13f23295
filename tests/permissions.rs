//! The access matrix of issue 3 (GITEA-COMPAT §2 and §8, with shelf's choices): who may read and
//! write which namespace, with which credential, and with which status. Every expected status is
//! written down below as literal data; the test only looks up users and credentials, it does not
//! re-derive the rules.
//!
//! One server for the whole matrix: users, organizations, memberships and tokens are set up
//! once through the JSON API as the site admin, every target a GET or DELETE needs is published
//! beforehand as the admin, and each row works on its own version (`p/r<row>`), so rows can run
//! in parallel without touching each other.

mod common;
use common::*;

use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// The matrix. Columns: actor, owner visibility, owner kind, credential, then the expected
/// status of `GET` (an existing file), `PUT` (a new file), `DELETE` of a file and `DELETE` of a
/// version, in that order, all on package `p` of that owner.
///
/// Statuses: `401c` is a 401 carrying `WWW-Authenticate: Basic realm="shelf"` (no permission,
/// or a token scope/limit that does not cover the request); `401` is a 401 *without* a
/// challenge (credentials that are invalid: expired token, deactivated user); `403` comes only
/// from a `public-only` token against a private owner; the others carry no challenge either.
///
/// Actors: `owner` is the user itself for user-owned namespaces (`upub`, `ulim`, `upriv`) and
/// `boss`, the admin who created the organizations (`opub`, `olim`, `opriv`), for org-owned
/// ones; `member-*` are direct members with that role (orgs only); `other` has no relation to
/// anything; `site-admin` is a second site admin with a password; `deactivated` is a write
/// member of every organization whose account was then deactivated; `deact-owner` is the
/// deactivated owner of its own public namespace `gone` (rows "public user" mean `gone` there).
///
/// Credentials: `password` (Basic user:password), `token-full` (`all`), `token-read`
/// (`read:package`), `token-public` (`public-only` + `write:package`), `token-pkg-other` and
/// `token-pkg-same` (`write:package`, limited to this owner and to package `q`, resp. `p`),
/// `token-expired` (`all`, expired in 2020). Anonymous requests carry nothing (`-`).
const MATRIX: &str = "
# actor       vis      kind cred            GET  PUT  DELF DELV
anonymous     public   user -               200  401c 401c 401c
other         public   user password        200  401c 401c 401c
other         public   user token-full      200  401c 401c 401c
other         public   user token-read      200  401c 401c 401c
other         public   user token-public    200  401c 401c 401c
other         public   user token-pkg-other 401c 401c 401c 401c
other         public   user token-pkg-same  200  401c 401c 401c
other         public   user token-expired   401  401  401  401
owner         public   user password        200  201  204  204
owner         public   user token-full      200  201  204  204
owner         public   user token-read      200  401c 401c 401c
owner         public   user token-public    200  201  204  204
owner         public   user token-pkg-other 401c 401c 401c 401c
owner         public   user token-pkg-same  200  201  204  204
owner         public   user token-expired   401  401  401  401
site-admin    public   user password        200  201  204  204
site-admin    public   user token-full      200  201  204  204
site-admin    public   user token-read      200  401c 401c 401c
site-admin    public   user token-public    200  201  204  204
site-admin    public   user token-pkg-other 401c 401c 401c 401c
site-admin    public   user token-pkg-same  200  201  204  204
site-admin    public   user token-expired   401  401  401  401
deactivated   public   user password        401  401  401  401
deactivated   public   user token-full      401  401  401  401
deactivated   public   user token-read      401  401  401  401
deactivated   public   user token-public    401  401  401  401
deactivated   public   user token-pkg-other 401  401  401  401
deactivated   public   user token-pkg-same  401  401  401  401
deactivated   public   user token-expired   401  401  401  401

anonymous     limited  user -               401c 401c 401c 401c
other         limited  user password        200  401c 401c 401c
other         limited  user token-full      200  401c 401c 401c
other         limited  user token-read      200  401c 401c 401c
other         limited  user token-public    200  401c 401c 401c
other         limited  user token-pkg-other 401c 401c 401c 401c
other         limited  user token-pkg-same  200  401c 401c 401c
other         limited  user token-expired   401  401  401  401
owner         limited  user password        200  201  204  204
owner         limited  user token-full      200  201  204  204
owner         limited  user token-read      200  401c 401c 401c
owner         limited  user token-public    200  201  204  204
owner         limited  user token-pkg-other 401c 401c 401c 401c
owner         limited  user token-pkg-same  200  201  204  204
owner         limited  user token-expired   401  401  401  401
site-admin    limited  user password        200  201  204  204
site-admin    limited  user token-full      200  201  204  204
site-admin    limited  user token-read      200  401c 401c 401c
site-admin    limited  user token-public    200  201  204  204
site-admin    limited  user token-pkg-other 401c 401c 401c 401c
site-admin    limited  user token-pkg-same  200  201  204  204
site-admin    limited  user token-expired   401  401  401  401
deactivated   limited  user password        401  401  401  401
deactivated   limited  user token-full      401  401  401  401
deactivated   limited  user token-read      401  401  401  401
deactivated   limited  user token-public    401  401  401  401
deactivated   limited  user token-pkg-other 401  401  401  401
deactivated   limited  user token-pkg-same  401  401  401  401
deactivated   limited  user token-expired   401  401  401  401

anonymous     private  user -               401c 401c 401c 401c
other         private  user password        401c 401c 401c 401c
other         private  user token-full      401c 401c 401c 401c
other         private  user token-read      401c 401c 401c 401c
other         private  user token-public    403  403  403  403
other         private  user token-pkg-other 401c 401c 401c 401c
other         private  user token-pkg-same  401c 401c 401c 401c
other         private  user token-expired   401  401  401  401
owner         private  user password        200  201  204  204
owner         private  user token-full      200  201  204  204
owner         private  user token-read      200  401c 401c 401c
owner         private  user token-public    403  403  403  403
owner         private  user token-pkg-other 401c 401c 401c 401c
owner         private  user token-pkg-same  200  201  204  204
owner         private  user token-expired   401  401  401  401
site-admin    private  user password        200  201  204  204
site-admin    private  user token-full      200  201  204  204
site-admin    private  user token-read      200  401c 401c 401c
site-admin    private  user token-public    403  403  403  403
site-admin    private  user token-pkg-other 401c 401c 401c 401c
site-admin    private  user token-pkg-same  200  201  204  204
site-admin    private  user token-expired   401  401  401  401
deactivated   private  user password        401  401  401  401
deactivated   private  user token-full      401  401  401  401
deactivated   private  user token-read      401  401  401  401
deactivated   private  user token-public    401  401  401  401
deactivated   private  user token-pkg-other 401  401  401  401
deactivated   private  user token-pkg-same  401  401  401  401
deactivated   private  user token-expired   401  401  401  401

anonymous     public   org  -               200  401c 401c 401c
other         public   org  password        200  401c 401c 401c
other         public   org  token-full      200  401c 401c 401c
other         public   org  token-read      200  401c 401c 401c
other         public   org  token-public    200  401c 401c 401c
other         public   org  token-pkg-other 401c 401c 401c 401c
other         public   org  token-pkg-same  200  401c 401c 401c
other         public   org  token-expired   401  401  401  401
member-read   public   org  password        200  401c 401c 401c
member-read   public   org  token-full      200  401c 401c 401c
member-read   public   org  token-read      200  401c 401c 401c
member-read   public   org  token-public    200  401c 401c 401c
member-read   public   org  token-pkg-other 401c 401c 401c 401c
member-read   public   org  token-pkg-same  200  401c 401c 401c
member-read   public   org  token-expired   401  401  401  401
member-write  public   org  password        200  201  204  204
member-write  public   org  token-full      200  201  204  204
member-write  public   org  token-read      200  401c 401c 401c
member-write  public   org  token-public    200  201  204  204
member-write  public   org  token-pkg-other 401c 401c 401c 401c
member-write  public   org  token-pkg-same  200  201  204  204
member-write  public   org  token-expired   401  401  401  401
member-admin  public   org  password        200  201  204  204
member-admin  public   org  token-full      200  201  204  204
member-admin  public   org  token-read      200  401c 401c 401c
member-admin  public   org  token-public    200  201  204  204
member-admin  public   org  token-pkg-other 401c 401c 401c 401c
member-admin  public   org  token-pkg-same  200  201  204  204
member-admin  public   org  token-expired   401  401  401  401
owner         public   org  password        200  201  204  204
owner         public   org  token-full      200  201  204  204
owner         public   org  token-read      200  401c 401c 401c
owner         public   org  token-public    200  201  204  204
owner         public   org  token-pkg-other 401c 401c 401c 401c
owner         public   org  token-pkg-same  200  201  204  204
owner         public   org  token-expired   401  401  401  401
site-admin    public   org  password        200  201  204  204
site-admin    public   org  token-full      200  201  204  204
site-admin    public   org  token-read      200  401c 401c 401c
site-admin    public   org  token-public    200  201  204  204
site-admin    public   org  token-pkg-other 401c 401c 401c 401c
site-admin    public   org  token-pkg-same  200  201  204  204
site-admin    public   org  token-expired   401  401  401  401
deactivated   public   org  password        401  401  401  401
deactivated   public   org  token-full      401  401  401  401
deactivated   public   org  token-read      401  401  401  401
deactivated   public   org  token-public    401  401  401  401
deactivated   public   org  token-pkg-other 401  401  401  401
deactivated   public   org  token-pkg-same  401  401  401  401
deactivated   public   org  token-expired   401  401  401  401

anonymous     limited  org  -               401c 401c 401c 401c
other         limited  org  password        200  401c 401c 401c
other         limited  org  token-full      200  401c 401c 401c
other         limited  org  token-read      200  401c 401c 401c
other         limited  org  token-public    200  401c 401c 401c
other         limited  org  token-pkg-other 401c 401c 401c 401c
other         limited  org  token-pkg-same  200  401c 401c 401c
other         limited  org  token-expired   401  401  401  401
member-read   limited  org  password        200  401c 401c 401c
member-read   limited  org  token-full      200  401c 401c 401c
member-read   limited  org  token-read      200  401c 401c 401c
member-read   limited  org  token-public    200  401c 401c 401c
member-read   limited  org  token-pkg-other 401c 401c 401c 401c
member-read   limited  org  token-pkg-same  200  401c 401c 401c
member-read   limited  org  token-expired   401  401  401  401
member-write  limited  org  password        200  201  204  204
member-write  limited  org  token-full      200  201  204  204
member-write  limited  org  token-read      200  401c 401c 401c
member-write  limited  org  token-public    200  201  204  204
member-write  limited  org  token-pkg-other 401c 401c 401c 401c
member-write  limited  org  token-pkg-same  200  201  204  204
member-write  limited  org  token-expired   401  401  401  401
member-admin  limited  org  password        200  201  204  204
member-admin  limited  org  token-full      200  201  204  204
member-admin  limited  org  token-read      200  401c 401c 401c
member-admin  limited  org  token-public    200  201  204  204
member-admin  limited  org  token-pkg-other 401c 401c 401c 401c
member-admin  limited  org  token-pkg-same  200  201  204  204
member-admin  limited  org  token-expired   401  401  401  401
owner         limited  org  password        200  201  204  204
owner         limited  org  token-full      200  201  204  204
owner         limited  org  token-read      200  401c 401c 401c
owner         limited  org  token-public    200  201  204  204
owner         limited  org  token-pkg-other 401c 401c 401c 401c
owner         limited  org  token-pkg-same  200  201  204  204
owner         limited  org  token-expired   401  401  401  401
site-admin    limited  org  password        200  201  204  204
site-admin    limited  org  token-full      200  201  204  204
site-admin    limited  org  token-read      200  401c 401c 401c
site-admin    limited  org  token-public    200  201  204  204
site-admin    limited  org  token-pkg-other 401c 401c 401c 401c
site-admin    limited  org  token-pkg-same  200  201  204  204
site-admin    limited  org  token-expired   401  401  401  401
deactivated   limited  org  password        401  401  401  401
deactivated   limited  org  token-full      401  401  401  401
deactivated   limited  org  token-read      401  401  401  401
deactivated   limited  org  token-public    401  401  401  401
deactivated   limited  org  token-pkg-other 401  401  401  401
deactivated   limited  org  token-pkg-same  401  401  401  401
deactivated   limited  org  token-expired   401  401  401  401

anonymous     private  org  -               401c 401c 401c 401c
other         private  org  password        401c 401c 401c 401c
other         private  org  token-full      401c 401c 401c 401c
other         private  org  token-read      401c 401c 401c 401c
other         private  org  token-public    403  403  403  403
other         private  org  token-pkg-other 401c 401c 401c 401c
other         private  org  token-pkg-same  401c 401c 401c 401c
other         private  org  token-expired   401  401  401  401
member-read   private  org  password        200  401c 401c 401c
member-read   private  org  token-full      200  401c 401c 401c
member-read   private  org  token-read      200  401c 401c 401c
member-read   private  org  token-public    403  403  403  403
member-read   private  org  token-pkg-other 401c 401c 401c 401c
member-read   private  org  token-pkg-same  200  401c 401c 401c
member-read   private  org  token-expired   401  401  401  401
member-write  private  org  password        200  201  204  204
member-write  private  org  token-full      200  201  204  204
member-write  private  org  token-read      200  401c 401c 401c
member-write  private  org  token-public    403  403  403  403
member-write  private  org  token-pkg-other 401c 401c 401c 401c
member-write  private  org  token-pkg-same  200  201  204  204
member-write  private  org  token-expired   401  401  401  401
member-admin  private  org  password        200  201  204  204
member-admin  private  org  token-full      200  201  204  204
member-admin  private  org  token-read      200  401c 401c 401c
member-admin  private  org  token-public    403  403  403  403
member-admin  private  org  token-pkg-other 401c 401c 401c 401c
member-admin  private  org  token-pkg-same  200  201  204  204
member-admin  private  org  token-expired   401  401  401  401
owner         private  org  password        200  201  204  204
owner         private  org  token-full      200  201  204  204
owner         private  org  token-read      200  401c 401c 401c
owner         private  org  token-public    403  403  403  403
owner         private  org  token-pkg-other 401c 401c 401c 401c
owner         private  org  token-pkg-same  200  201  204  204
owner         private  org  token-expired   401  401  401  401
site-admin    private  org  password        200  201  204  204
site-admin    private  org  token-full      200  201  204  204
site-admin    private  org  token-read      200  401c 401c 401c
site-admin    private  org  token-public    403  403  403  403
site-admin    private  org  token-pkg-other 401c 401c 401c 401c
site-admin    private  org  token-pkg-same  200  201  204  204
site-admin    private  org  token-expired   401  401  401  401
deactivated   private  org  password        401  401  401  401
deactivated   private  org  token-full      401  401  401  401
deactivated   private  org  token-read      401  401  401  401
deactivated   private  org  token-public    401  401  401  401
deactivated   private  org  token-pkg-other 401  401  401  401
deactivated   private  org  token-pkg-same  401  401  401  401
deactivated   private  org  token-expired   401  401  401  401

deact-owner   public   user password        401  401  401  401
deact-owner   public   user token-full      401  401  401  401
deact-owner   public   user token-read      401  401  401  401
deact-owner   public   user token-public    401  401  401  401
deact-owner   public   user token-pkg-other 401  401  401  401
deact-owner   public   user token-pkg-same  401  401  401  401
deact-owner   public   user token-expired   401  401  401  401
";

const CREDENTIALS: [&str; 7] = [
    "password",
    "token-full",
    "token-read",
    "token-public",
    "token-pkg-other",
    "token-pkg-same",
    "token-expired",
];
const THREADS: usize = 8;

/// One parsed row of `MATRIX`.
struct Row {
    line: String,
    namespace: String,
    /// The login whose credential is used (`None`: anonymous).
    login: Option<String>,
    cred: String,
    expected: [(u16, bool); 4],
}

fn namespace(actor: &str, vis: &str, kind: &str) -> String {
    if actor == "deact-owner" {
        assert_eq!((vis, kind), ("public", "user"), "deact-owner owns `gone`");
        return "gone".into();
    }
    let v = match vis {
        "public" => "pub",
        "limited" => "lim",
        "private" => "priv",
        other => panic!("unknown visibility {other:?}"),
    };
    match kind {
        "user" => format!("u{v}"),
        "org" => format!("o{v}"),
        other => panic!("unknown kind {other:?}"),
    }
}

fn login_of(actor: &str, namespace: &str, kind: &str) -> Option<String> {
    let login = match actor {
        "anonymous" => return None,
        "other" => "stranger",
        "member-read" => "mread",
        "member-write" => "mwrite",
        "member-admin" => "madmin",
        "owner" if kind == "user" => namespace,
        "owner" => "boss",
        "site-admin" => "root",
        "deactivated" => "deact",
        "deact-owner" => "gone",
        other => panic!("unknown actor {other:?}"),
    };
    Some(login.to_string())
}

fn status(cell: &str) -> (u16, bool) {
    match cell.strip_suffix('c') {
        Some(code) => (code.parse().expect("status"), true),
        None => (cell.parse().expect("status"), false),
    }
}

fn parse_matrix() -> Vec<Row> {
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for line in MATRIX.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 8, "malformed row {line:?}");
        let (actor, vis, kind, cred) = (f[0], f[1], f[2], f[3]);
        assert!(
            seen.insert((actor, vis, kind, cred)),
            "duplicate row {line:?}"
        );
        let ns = namespace(actor, vis, kind);
        let login = login_of(actor, &ns, kind);
        assert_eq!(
            login.is_none(),
            cred == "-",
            "anonymous and only anonymous has no credential: {line:?}"
        );
        assert!(
            cred == "-" || CREDENTIALS.contains(&cred),
            "unknown credential in {line:?}"
        );
        assert!(
            kind == "org" || !actor.starts_with("member-"),
            "members exist only in organizations: {line:?}"
        );
        rows.push(Row {
            line: line.to_string(),
            namespace: ns,
            login,
            cred: cred.to_string(),
            expected: [status(f[4]), status(f[5]), status(f[6]), status(f[7])],
        });
    }
    rows
}

fn password(login: &str) -> String {
    format!("pw-{login}-Secret!")
}

/// A JSON API call as `auth`.
fn call(s: &Server, auth: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", auth)];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    s.req(method, path, &headers, body.as_bytes())
}

fn admin(s: &Server, method: &str, path: &str, body: Value) -> Value {
    let r = call(
        s,
        &format!("token {ADMIN_TOKEN}"),
        method,
        path,
        Some(&body),
    );
    assert!(
        (200..300).contains(&r.status),
        "{method} {path} {body}: {} {}",
        r.status,
        r.text()
    );
    if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).expect("JSON")
    }
}

/// Runs `f(i)` for `i` in `0..n` on `THREADS` threads.
fn parallel(n: usize, f: impl Fn(usize) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                f(i);
            });
        }
    });
}

/// Sets up every account, organization, membership and token the rows need; returns the
/// tokens by (login, credential, namespace).
fn set_up(s: &Server, rows: &[Row]) -> HashMap<(String, String, String), String> {
    let users = [
        ("upub", "public"),
        ("ulim", "limited"),
        ("upriv", "private"),
        ("boss", "public"),
        ("stranger", "public"),
        ("mread", "public"),
        ("mwrite", "public"),
        ("madmin", "public"),
        ("root", "public"),
        ("deact", "public"),
        ("gone", "public"),
    ];
    for (login, vis) in users {
        admin(
            s,
            "POST",
            "/api/v1/admin/users",
            json!({"username": login, "password": password(login),
                   "email": format!("{login}@example.com"), "visibility": vis}),
        );
    }
    let root = admin(
        s,
        "PATCH",
        "/api/v1/admin/users/root",
        json!({"admin": true}),
    );
    assert_eq!(root["is_admin"], true);
    for (org, vis) in [
        ("opub", "public"),
        ("olim", "limited"),
        ("opriv", "private"),
    ] {
        let o = admin(
            s,
            "POST",
            "/api/v1/admin/users/boss/orgs",
            json!({"username": org, "visibility": vis}),
        );
        assert_eq!(o["visibility"], vis);
        for (user, role) in [
            ("mread", "read"),
            ("mwrite", "write"),
            ("madmin", "admin"),
            ("deact", "write"),
        ] {
            admin(
                s,
                "PUT",
                &format!("/api/v1/orgs/{org}/members/{user}"),
                json!({ "role": role }),
            );
        }
    }
    // Tokens: every (login, credential, namespace) a row uses.
    let wanted: BTreeSet<(String, String, String)> = rows
        .iter()
        .filter(|r| r.cred.starts_with("token-"))
        .map(|r| {
            let login = r.login.clone().expect("signed in");
            (login, r.cred.clone(), r.namespace.clone())
        })
        .collect();
    let mut tokens = HashMap::new();
    for (login, cred, ns) in wanted {
        let (name, body) = match cred.as_str() {
            "token-full" => ("full".to_string(), json!({"scopes": ["all"]})),
            "token-read" => ("read".to_string(), json!({"scopes": ["read:package"]})),
            "token-public" => (
                "public".to_string(),
                json!({"scopes": ["public-only", "write:package"]}),
            ),
            "token-pkg-other" => (
                format!("pkg-q-{ns}"),
                json!({"scopes": ["write:package"], "owner": ns, "package": "q"}),
            ),
            "token-pkg-same" => (
                format!("pkg-p-{ns}"),
                json!({"scopes": ["write:package"], "owner": ns, "package": "p"}),
            ),
            "token-expired" => (
                "expired".to_string(),
                json!({"scopes": ["all"], "expires_at": "2020-01-01T00:00:00Z"}),
            ),
            other => panic!("unknown credential {other}"),
        };
        // Tokens that do not depend on the namespace are made once per user.
        let key_ns = if name.starts_with("pkg-") {
            ns.clone()
        } else {
            String::new()
        };
        if let Some(t) = tokens.get(&(login.clone(), cred.clone(), key_ns.clone())) {
            let t: String = Clone::clone(t);
            tokens.insert((login, cred, ns), t);
            continue;
        }
        let mut body = body;
        body["name"] = json!(name);
        let t = admin(
            s,
            "POST",
            &format!("/api/v1/admin/users/{login}/tokens"),
            body,
        );
        let token = t["sha1"].as_str().expect("sha1").to_string();
        assert_eq!(token.len(), 40, "{t}");
        tokens.insert((login.clone(), cred.clone(), key_ns), token.clone());
        tokens.insert((login, cred, ns), token);
    }
    // Deactivate last: their tokens were made while they were active.
    for login in ["deact", "gone"] {
        let u = admin(
            s,
            "PATCH",
            &format!("/api/v1/admin/users/{login}"),
            json!({"active": false}),
        );
        assert_eq!(u["active"], false);
    }
    tokens
}

fn file_path(ns: &str, version: &str, file: &str) -> String {
    format!("/api/packages/{ns}/generic/p/{version}/{file}")
}

#[test]
fn access_matrix() {
    let started = Instant::now();
    let s = Server::start_with(&["--auth-failure-burst", "100000"]);
    let rows = parse_matrix();
    let tokens = set_up(&s, &rows);

    // Targets, published by the site admin: one shared file per namespace for the GETs, and per
    // row a version with the file to delete and one to keep (so the version survives DELF).
    let namespaces: BTreeSet<String> = rows.iter().map(|r| r.namespace.clone()).collect();
    for ns in &namespaces {
        let r = s.put(&file_path(ns, "shared", "get.bin"), ns.as_bytes());
        assert_eq!(r.status, 201, "{}", r.text());
    }
    parallel(rows.len(), |i| {
        let ns = &rows[i].namespace;
        for f in ["delf.bin", "keep.bin"] {
            let r = s.put(&file_path(ns, &format!("r{i}"), f), f.as_bytes());
            assert_eq!(r.status, 201, "{}", r.text());
        }
    });
    let setup = started.elapsed();

    let failures = Mutex::new(Vec::new());
    let cells = AtomicUsize::new(0);
    parallel(rows.len(), |i| {
        let row = &rows[i];
        let auth = match (&row.login, row.cred.as_str()) {
            (None, _) => None,
            (Some(login), "password") => Some(basic(login, &password(login))),
            (Some(login), cred) => {
                let key = (login.clone(), cred.to_string(), row.namespace.clone());
                Some(format!("token {}", tokens[&key]))
            }
        };
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let ns = &row.namespace;
        let version = format!("r{i}");
        let put_body = format!("put by {}", row.line);
        let ops: [(&str, &str, String, &[u8]); 4] = [
            ("GET", "GET", file_path(ns, "shared", "get.bin"), b""),
            (
                "PUT",
                "PUT",
                file_path(ns, &version, "put.bin"),
                put_body.as_bytes(),
            ),
            ("DELF", "DELETE", file_path(ns, &version, "delf.bin"), b""),
            (
                "DELV",
                "DELETE",
                format!("/api/packages/{ns}/generic/p/{version}"),
                b"",
            ),
        ];
        let mut got = Vec::new();
        for ((label, method, path, body), (want, challenge)) in ops.iter().zip(row.expected) {
            let r = s.req(method, path, &headers, body);
            cells.fetch_add(1, Ordering::Relaxed);
            let header = r.header("www-authenticate");
            let mut ok = r.status == want;
            if challenge {
                ok &= header == Some("Basic realm=\"shelf\"");
            } else {
                ok &= header.is_none();
            }
            if want == 200 {
                ok &= r.body == ns.as_bytes();
            }
            let shown = format!(
                "{label} {}{}",
                r.status,
                if header.is_some() { "c" } else { "" }
            );
            if !ok {
                got.push(format!("{shown} ({})", r.text().trim()));
            }
        }
        if !got.is_empty() {
            failures.lock().expect("lock").push(format!(
                "{}\n      got: {}",
                row.line,
                got.join(", ")
            ));
            return;
        }
        // Refusals have no effect, and successes did what they said (checked as the admin).
        let [_, (put, _), (delf, _), (delv, _)] = row.expected;
        let exists = |file: &str| {
            let r = s.req(
                "GET",
                &file_path(ns, &version, file),
                &[("Authorization", &format!("token {ADMIN_TOKEN}"))],
                b"",
            );
            assert!(matches!(r.status, 200 | 404), "{}", r.text());
            r.status == 200
        };
        let state = (exists("put.bin"), exists("delf.bin"), exists("keep.bin"));
        let want = if delv == 204 {
            (false, false, false)
        } else {
            (put == 201, delf != 204, true)
        };
        if state != want {
            failures.lock().expect("lock").push(format!(
                "{}\n      afterwards (put.bin, delf.bin, keep.bin) exist: {state:?}, expected {want:?}",
                row.line
            ));
        }
    });

    // A missing file where reading is allowed is 404; where it is not, still 401.
    let missing = |auth: Option<String>, ns: &str| {
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        s.req(
            "GET",
            &file_path(ns, "shared", "missing.bin"),
            &headers,
            b"",
        )
        .status
    };
    let tok = |login: &str, cred: &str, ns: &str| {
        Some(format!(
            "token {}",
            tokens[&(login.to_string(), cred.to_string(), ns.to_string())]
        ))
    };
    assert_eq!(missing(None, "upub"), 404);
    assert_eq!(missing(None, "opub"), 404);
    assert_eq!(missing(None, "olim"), 401);
    assert_eq!(missing(tok("mread", "token-read", "opriv"), "opriv"), 404);
    assert_eq!(missing(tok("stranger", "token-full", "olim"), "olim"), 404);
    assert_eq!(
        missing(tok("stranger", "token-full", "opriv"), "opriv"),
        401
    );
    assert_eq!(missing(tok("root", "token-full", "upriv"), "upriv"), 404);
    assert_eq!(
        missing(Some(basic("upriv", &password("upriv"))), "upriv"),
        404
    );

    let failures = failures.into_inner().expect("lock");
    let cells = cells.into_inner();
    println!(
        "access matrix: {} rows, {cells} cells in {:.1} s (set-up {:.1} s)",
        rows.len(),
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} rows differ from the matrix:\n  {}",
        failures.len(),
        rows.len(),
        failures.join("\n  ")
    );
    assert_eq!(cells, rows.len() * 4);
}

/// Issue 9, finding 2: the admin and account routes × the site admin's credentials. A scoped
/// token used to escape its scopes there: `write:admin` minted `all` tokens and reset
/// passwords, and `public-only` read private accounts and the audit log.
///
/// Columns: the route, then the expected status for each of the site admin `boss`'s
/// credentials, in this order: Basic password, `all`, `write:admin`,
/// `write:admin` + `public-only`, `read:admin`, `all` + `public-only`, `write:user`,
/// `write:package`. `pubu` is a public user, `privu` a private one, `root` another site admin;
/// `{i}` makes each cell's names unique.
const ACCOUNT_MATRIX: &str = r#"
# route                                                       pw   all  wadm wadmP radm allP wusr wpkg
GET    /api/v1/admin/users                                   | 200  200  200  200   200  200  403  403
GET    /api/v1/admin/users/privu                             | 200  200  200  403   200  403  403  403
POST   /api/v1/admin/users {"username":"n{i}"}               | 201  201  201  201   403  201  403  403
POST   /api/v1/admin/users {"username":"m{i}","visibility":"private"} | 201  201  201  403   403  403  403  403
PATCH  /api/v1/admin/users/privu {"full_name":"x"}           | 200  200  200  403   403  403  403  403
PATCH  /api/v1/admin/users/pubu {"password":"pw-{i}-Secret!"} | 200  200  403  403   403  403  403  403
PATCH  /api/v1/admin/users/pubu {"admin":false}              | 200  200  403  403   403  403  403  403
PATCH  /api/v1/admin/users/pubu {"visibility":"private"}     | 200  200  200  403   403  403  403  403
PATCH  /api/v1/admin/users/pubu {"visibility":"public"}      | 200  200  200  200   403  200  403  403
POST   /api/v1/admin/users/root/tokens {"name":"t{i}","scopes":["all"]} | 201  201  403  403   403  403  403  403
POST   /api/v1/admin/users/pubu/tokens {"name":"t{i}","scopes":["read:package"]} | 201  201  403  403   403  403  403  403
POST   /api/v1/admin/users/pubu/tokens {"name":"t{i}","scopes":["read:admin"]} | 201  201  201  403   403  403  403  403
POST   /api/v1/admin/users/pubu/tokens {"name":"t{i}","scopes":["read:admin","public-only"]} | 201  201  201  201   403  201  403  403
POST   /api/v1/admin/users/privu/tokens {"name":"t{i}","scopes":["read:admin","public-only"]} | 201  201  201  403   403  403  403  403
POST   /api/v1/users/boss/tokens {"name":"t{i}","scopes":["all"]} | 201  201  403  403   401  403  401  401
POST   /api/v1/users/root/tokens {"name":"t{i}","scopes":["write:admin"]} | 201  201  201  403   403  403  403  403
GET    /api/v1/users/privu/tokens                            | 200  200  200  403   403  403  403  403
GET    /api/v1/admin/audit                                   | 200  200  200  403   200  403  403  403
GET    /api/v1/users/privu                                   | 200  200  403  403   403  403  200  403
GET    /api/v1/user                                          | 200  200  403  403   403  200  200  403
DELETE /api/v1/admin/users/ghost                             | 404  404  404  404   403  404  403  403
GET    /api/v1/admin/orgs                                    | 200  200  200  200   200  200  403  403
POST   /api/v1/admin/users/privu/orgs {"username":"o{i}"}    | 201  201  201  403   403  403  403  403
"#;

const ACCOUNT_CREDENTIALS: [&[&str]; 8] = [
    &[],
    &["all"],
    &["write:admin"],
    &["write:admin", "public-only"],
    &["read:admin"],
    &["all", "public-only"],
    &["write:user"],
    &["write:package"],
];

#[test]
fn issue9_account_routes_hold_every_token_to_its_scopes() {
    let s = Server::start();
    for (login, vis, is_admin) in [
        ("boss", "public", true),
        ("root", "public", true),
        ("pubu", "public", false),
        ("privu", "private", false),
    ] {
        admin(
            &s,
            "POST",
            "/api/v1/admin/users",
            json!({"username": login, "password": password(login), "visibility": vis}),
        );
        if is_admin {
            admin(
                &s,
                "PATCH",
                &format!("/api/v1/admin/users/{login}"),
                json!({"admin": true}),
            );
        }
    }
    let creds: Vec<String> = ACCOUNT_CREDENTIALS
        .iter()
        .enumerate()
        .map(|(i, scopes)| {
            if scopes.is_empty() {
                return basic("boss", &password("boss"));
            }
            let t = admin(
                &s,
                "POST",
                "/api/v1/admin/users/boss/tokens",
                json!({"name": format!("cred{i}"), "scopes": scopes}),
            );
            format!("token {}", t["sha1"].as_str().expect("token"))
        })
        .collect();
    let mut failures = Vec::new();
    let mut cell = 0;
    for line in ACCOUNT_MATRIX.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (request, statuses) = line.split_once('|').expect("route | statuses");
        let (method, rest) = request.trim().split_once(' ').expect("method");
        let (path, body) = match rest.trim().split_once(' ') {
            Some((p, b)) => (p, Some(b.trim())),
            None => (rest.trim(), None),
        };
        let expected: Vec<u16> = statuses
            .split_whitespace()
            .map(|c| c.parse().expect("status"))
            .collect();
        assert_eq!(expected.len(), creds.len(), "{line}");
        for (cred, want) in creds.iter().zip(&expected) {
            cell += 1;
            let body: Option<Value> = body.map(|b| {
                serde_json::from_str(&b.replace("{i}", &cell.to_string())).expect("body JSON")
            });
            let r = call(&s, cred, method, path, body.as_ref());
            if r.status != *want {
                let scopes = ACCOUNT_CREDENTIALS[creds.iter().position(|c| c == cred).unwrap_or(0)];
                failures.push(format!(
                    "{method} {path} as {scopes:?}: {} (want {want}) {}",
                    r.status,
                    r.text()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A public-only admin token lists public accounts only.
    let r = call(&s, &creds[3], "GET", "/api/v1/admin/users?limit=50", None);
    let logins: Vec<String> = serde_json::from_slice::<Vec<Value>>(&r.body)
        .expect("JSON")
        .iter()
        .filter_map(|u| u["login"].as_str().map(str::to_string))
        .collect();
    assert!(logins.contains(&"pubu".to_string()), "{logins:?}");
    assert!(!logins.contains(&"privu".to_string()), "{logins:?}");
    assert_eq!(
        r.header("x-total-count"),
        Some(logins.len().to_string().as_str())
    );

    // A token that expires cannot make one that lives longer; without an expiry the new one
    // expires with it.
    let soon = admin(
        &s,
        "POST",
        "/api/v1/admin/users/boss/tokens",
        json!({"name": "soon", "scopes": ["all"], "expires_at": "2099-01-01T00:00:00Z"}),
    );
    let soon = format!("token {}", soon["sha1"].as_str().expect("token"));
    let r = call(
        &s,
        &soon,
        "POST",
        "/api/v1/admin/users/pubu/tokens",
        Some(
            &json!({"name": "later", "scopes": ["read:package"], "expires_at": "2100-01-01T00:00:00Z"}),
        ),
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call(
        &s,
        &soon,
        "POST",
        "/api/v1/admin/users/pubu/tokens",
        Some(&json!({"name": "inherits", "scopes": ["read:package"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let made: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(made["expires_at"], "2099-01-01T00:00:00Z", "{made}");
}
