//! Command line and settings: flags (argh), their `SHELF_*` environment fallbacks, defaults, and
//! validation with messages a user can act on. Knows nothing about HTTP or redb.

use crate::cli::Error;
use crate::units::{human_duration, parse_duration, parse_size};
use argh::FromArgs;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DB: &str = "./shelf.redb";

/// shelf: a Gitea-compatible generic package registry in one binary and one file.
/// With no subcommand it runs `serve`; `shelf --listen …` is `shelf serve --listen …`.
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Option<Command>,
}

/// What parsing the command line came to: a command to run, or text to print and the
/// process's exit (help: 0, a mistake: 1).
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Cli>),
    Exit { text: String, ok: bool },
}

/// Parses `args` (without the program name). Flags before any subcommand are serve's, as the
/// synopsis `shelf [serve] [--listen …]` says; a mistake in serve's flags points to the help
/// that lists them.
pub fn parse(program: &str, args: &[&str]) -> Parsed {
    let mut args = args.to_vec();
    if args
        .first()
        .is_some_and(|a| a.starts_with('-') && !matches!(*a, "--help" | "-h"))
    {
        args.insert(0, "serve");
    }
    match Cli::from_args(&[program], &args) {
        Ok(cli) => Parsed::Run(Box::new(cli)),
        Err(argh::EarlyExit { output, status }) => {
            let mut text = output.trim_end().to_string();
            if status.is_err() && args.first() == Some(&"serve") {
                text.push_str("\nRun `shelf serve --help` for the flags serve takes.");
            }
            Parsed::Exit {
                text,
                ok: status.is_ok(),
            }
        }
    }
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
// Parsed once at start-up: the size of the largest variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Serve(Serve),
    User(UserCmd),
    Token(TokenCmd),
    Org(OrgCmd),
    Member(MemberCmd),
    Audit(AuditCmd),
    Check(CheckCmd),
    Quota(QuotaCmd),
    Cleanup(CleanupCmd),
    Backup(BackupCmd),
    Stats(StatsCmd),
    Compact(CompactCmd),
    Export(ExportCmd),
    Manifest(ManifestCmd),
    Import(ImportCmd),
}

/// Verify the database: every chunk's hash, every file's bytes, exact reference counts, every
/// index. Exits non-zero on any fault. On the file (no server may hold it) or with --server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckCmd {
    /// mend what the data itself allows (counts, orphan chunks, indexes; never bytes); offline
    /// only
    #[argh(switch)]
    pub repair: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to check instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Back up the registry into OUT, a new database file that `shelf serve --db OUT` opens
/// directly. Online with --server (a site admin's token with write:admin; uploads and
/// downloads carry on), or on the database file when no server runs.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "backup")]
pub struct BackupCmd {
    /// the backup file to write (must not exist)
    #[argh(positional)]
    pub out: PathBuf,
    /// skip the `check` of the written backup
    #[argh(switch)]
    pub no_verify: bool,
    /// at most this many bytes per second, e.g. 50MB, to spare a busy server's disk and CPU
    /// (default: as fast as it goes)
    #[argh(option)]
    pub limit_rate: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to back up, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Show what the registry holds and how the file's space is used: logical and physical bytes,
/// dedup ratio, counts per owner, the space in use (data, indexes, slack) and free.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "stats")]
pub struct StatsCmd {
    /// print JSON instead of a table
    #[argh(switch)]
    pub json: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to ask instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Give the database file's free space back to the disk (offline: no server may hold it).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "compact")]
pub struct CompactCmd {
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Write an air-gap bundle: a plain tar of an owner's files with a JSON manifest first.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "export")]
pub struct ExportCmd {
    /// the owner (user or organization) whose files go into the bundle
    #[argh(option)]
    pub owner: String,
    /// only this package
    #[argh(option)]
    pub package: Option<String>,
    /// only this version (needs --package)
    #[argh(option)]
    pub version: Option<String>,
    /// only files created at or after this time (RFC 3339 or YYYY-MM-DD, UTC)
    #[argh(option)]
    pub since: Option<String>,
    /// the other side's manifest (`shelf manifest`): leave out what it already holds
    #[argh(option)]
    pub against: Option<PathBuf>,
    /// the bundle file to write
    #[argh(option, short = 'o')]
    pub output: PathBuf,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to export from instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Print (or write) the manifest of the files held here: the input of `export --against`.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "manifest")]
pub struct ManifestCmd {
    /// only this owner's files
    #[argh(option)]
    pub owner: Option<String>,
    /// write to this file instead of stdout
    #[argh(option, short = 'o')]
    pub output: Option<PathBuf>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to ask instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Import a bundle: verifies every file before publishing any, skips files already present,
/// reports (never overwrites) files that exist with other bytes. Exits non-zero on a refused
/// bundle and when there were conflicts.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "import")]
pub struct ImportCmd {
    /// the bundle file (written by `shelf export`)
    #[argh(positional)]
    pub file: PathBuf,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to import into instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Run the registry.
#[derive(FromArgs, Debug, Default)]
#[argh(subcommand, name = "serve")]
pub struct Serve {
    /// address to listen on (default 127.0.0.1:8080, env SHELF_LISTEN; port 0 picks a free one)
    #[argh(option)]
    pub listen: Option<String>,
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// worker threads, each serving one connection at a time (default 32, env SHELF_WORKERS)
    #[argh(option)]
    pub workers: Option<usize>,
    /// open connections beyond which new ones get 503 (default 10000, env SHELF_MAX_CONNECTIONS)
    #[argh(option)]
    pub max_connections: Option<usize>,
    /// most open connections from one client address; more get 503 (default 256; 0: no
    /// cap; trusted proxies are exempt; env SHELF_MAX_CONNECTIONS_PER_IP)
    #[argh(option)]
    pub max_connections_per_ip: Option<usize>,
    /// largest accepted upload, e.g. 500000000, 500MB or 2GiB (default: no limit; site
    /// admins are exempt, as in Gitea; env SHELF_MAX_FILE_SIZE)
    #[argh(option)]
    pub max_file_size: Option<String>,
    /// seconds a client may take to send a request head (default 10, env SHELF_HEAD_TIMEOUT)
    #[argh(option)]
    pub head_timeout: Option<f64>,
    /// seconds an idle keep-alive connection is kept (default 15, env SHELF_IDLE_TIMEOUT)
    #[argh(option)]
    pub idle_timeout: Option<f64>,
    /// seconds a request body may stall before the upload is abandoned (default 30, env
    /// SHELF_BODY_TIMEOUT)
    #[argh(option)]
    pub body_timeout: Option<f64>,
    /// slowest upload kept, per second, over each 10 s of waiting for it, e.g. 1KiB
    /// (default 1KiB; 0: no minimum; env SHELF_MIN_BODY_RATE); slower ones are abandoned
    /// with 408
    #[argh(option)]
    pub min_body_rate: Option<String>,
    /// the URL clients reach shelf at, for links in JSON answers (default: from the Host
    /// header; env SHELF_EXTERNAL_URL)
    #[argh(option)]
    pub external_url: Option<String>,
    /// serve HTTPS with this PEM certificate chain (server certificate first; with
    /// --tls-key; env SHELF_TLS_CERT); SIGHUP reloads it and the key
    #[argh(option)]
    pub tls_cert: Option<PathBuf>,
    /// the PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1; env SHELF_TLS_KEY)
    #[argh(option)]
    pub tls_key: Option<PathBuf>,
    /// with TLS: also listen on this address in plain HTTP and answer every request there with
    /// a 308 to https, e.g. 0.0.0.0:80 (env SHELF_REDIRECT_HTTP)
    #[argh(option)]
    pub redirect_http: Option<String>,
    /// failed sign-ins in a row one address may make before it is answered 429 (default 10;
    /// one more is allowed every 6 s; env SHELF_AUTH_FAILURE_BURST)
    #[argh(option)]
    pub auth_failure_burst: Option<u32>,
    /// days the audit log is kept (default 90, env SHELF_AUDIT_RETENTION_DAYS)
    #[argh(option)]
    pub audit_retention_days: Option<u64>,
    /// comma-separated addresses of reverse proxies whose X-Forwarded-For names the client
    /// (e.g. 127.0.0.1 behind a local nginx; env SHELF_TRUSTED_PROXIES)
    #[argh(option)]
    pub trusted_proxies: Option<String>,
    /// a token GET /metrics then requires as `Authorization: Bearer <token>` (default: /metrics
    /// is open; env SHELF_METRICS_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub metrics_token: Option<String>,
    /// total bytes one owner's package files may take, e.g. 10GiB; every file counts, even
    /// deduplicated ones (default: no limit; env SHELF_OWNER_MAX_BYTES)
    #[argh(option)]
    pub owner_max_bytes: Option<String>,
    /// versions one owner may have (default: no limit; env SHELF_OWNER_MAX_VERSIONS)
    #[argh(option)]
    pub owner_max_versions: Option<String>,
    /// hours between runs of the cleanup rules, fractions allowed (default 24; the first run
    /// is a minute after start, or sooner for shorter intervals; 0 disables; env
    /// SHELF_CLEANUP_INTERVAL)
    #[argh(option)]
    pub cleanup_interval: Option<f64>,
    /// bytes per second the background scrub re-reads and verifies, e.g. 8MB (the default);
    /// 0 turns it off (env SHELF_SCRUB_RATE)
    #[argh(option)]
    pub scrub_rate: Option<String>,
    /// pause between scrub passes, e.g. 24h (the default), 7d, 30m, 90s (env
    /// SHELF_SCRUB_INTERVAL)
    #[argh(option)]
    pub scrub_interval: Option<String>,
    /// free space kept on the database's disk: an upload that would leave less is refused
    /// with 507, and /readyz says not ready (default 64MiB; 0 turns it off; env
    /// SHELF_MIN_FREE_SPACE)
    #[argh(option)]
    pub min_free_space: Option<String>,
}

/// Manage users: offline on the database file (no server may hold it), or with --server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "user")]
pub struct UserCmd {
    #[argh(subcommand)]
    pub action: UserAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum UserAction {
    Add(UserAdd),
    List(UserList),
    Modify(UserModify),
    Delete(UserDelete),
}

/// Create a user.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
pub struct UserAdd {
    /// login name
    #[argh(positional)]
    pub name: String,
    /// make the user a site admin
    #[argh(switch)]
    pub admin: bool,
    /// read the user's password from one line of stdin (never from the command line)
    #[argh(switch)]
    pub password_stdin: bool,
    /// e-mail address
    #[argh(option)]
    pub email: Option<String>,
    /// who may read the user's packages: public (default), limited or private
    #[argh(option)]
    pub visibility: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// List users.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct UserList {
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Change a user.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "modify")]
pub struct UserModify {
    /// login name
    #[argh(positional)]
    pub name: String,
    /// site admin or not: true or false
    #[argh(option)]
    pub admin: Option<bool>,
    /// false deactivates the user: its password and tokens are refused everywhere
    #[argh(option)]
    pub active: Option<bool>,
    /// public, limited or private
    #[argh(option)]
    pub visibility: Option<String>,
    /// read a new password from one line of stdin
    #[argh(switch)]
    pub password_stdin: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Delete a user with its tokens and memberships.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "delete")]
pub struct UserDelete {
    /// login name
    #[argh(positional)]
    pub name: String,
    /// also delete the packages the user owns (refused without)
    #[argh(switch)]
    pub purge: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Manage personal access tokens: offline on the database file, or with --server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "token")]
pub struct TokenCmd {
    #[argh(subcommand)]
    pub action: TokenAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum TokenAction {
    Create(TokenCreate),
    List(TokenList),
    Revoke(TokenRevoke),
}

/// Create a token; the token alone is printed on the last line of stdout, once.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create")]
pub struct TokenCreate {
    /// the user the token belongs to
    #[argh(positional)]
    pub user: String,
    /// a name to tell the token apart (default "cli-<unix time>")
    #[argh(option)]
    pub name: Option<String>,
    /// a Gitea scope (all, public-only, read:package, write:package, …); repeatable;
    /// default all
    #[argh(option)]
    pub scope: Vec<String>,
    /// limit the token to this owner's packages
    #[argh(option)]
    pub owner: Option<String>,
    /// limit the token to this package of --owner
    #[argh(option)]
    pub package: Option<String>,
    /// when the token stops working: an RFC 3339 time or a date (UTC midnight)
    #[argh(option)]
    pub expires: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// List a user's tokens (names and last eight characters, never the token).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct TokenList {
    /// the user
    #[argh(positional)]
    pub user: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Revoke a user's token by name or id.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "revoke")]
pub struct TokenRevoke {
    /// the user
    #[argh(positional)]
    pub user: String,
    /// the token's name or id
    #[argh(positional)]
    pub name: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Manage organizations: offline on the database file, or with --server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "org")]
pub struct OrgCmd {
    #[argh(subcommand)]
    pub action: OrgAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum OrgAction {
    Create(OrgCreate),
    List(OrgList),
    Delete(OrgDelete),
    Visibility(OrgVisibility),
}

/// Create an organization with an "Owners" team (admin permission).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "create")]
pub struct OrgCreate {
    /// the organization's name
    #[argh(positional)]
    pub name: String,
    /// a user to put in the Owners team (with --server: default the token's user)
    #[argh(option)]
    pub owner: Option<String>,
    /// public (default), limited or private
    #[argh(option)]
    pub visibility: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// List organizations.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct OrgList {
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Delete an organization with its teams and memberships.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "delete")]
pub struct OrgDelete {
    /// the organization's name
    #[argh(positional)]
    pub name: String,
    /// also delete its packages (refused without)
    #[argh(switch)]
    pub purge: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Set who may read an organization's packages.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "visibility")]
pub struct OrgVisibility {
    /// the organization's name
    #[argh(positional)]
    pub name: String,
    /// public, limited or private
    #[argh(positional)]
    pub visibility: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Manage organization members: offline on the database file, or with --server.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "member")]
pub struct MemberCmd {
    #[argh(subcommand)]
    pub action: MemberAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum MemberAction {
    Set(MemberSet),
    Remove(MemberRemove),
    List(MemberList),
}

/// Give a user a role in an organization: read, write (publish) or admin.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "set")]
pub struct MemberSet {
    /// the organization
    #[argh(positional)]
    pub org: String,
    /// the user
    #[argh(positional)]
    pub user: String,
    /// read, write or admin (Gitea's team permission `owner` is taken as admin)
    #[argh(positional)]
    pub role: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Remove a user from an organization (its direct role and its teams there).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
pub struct MemberRemove {
    /// the organization
    #[argh(positional)]
    pub org: String,
    /// the user
    #[argh(positional)]
    pub user: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// List an organization's members with their effective roles.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct MemberList {
    /// the organization
    #[argh(positional)]
    pub org: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Show the audit log, newest first.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "audit")]
pub struct AuditCmd {
    /// only entries about this owner
    #[argh(option)]
    pub owner: Option<String>,
    /// only this action, or a family of them (e.g. token, user.create)
    #[argh(option)]
    pub action: Option<String>,
    /// at most this many entries (default 50)
    #[argh(option)]
    pub limit: Option<u64>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Per-owner quotas: show limits and usage, override the server's defaults, or clear the
/// overrides (site admins; offline with --db or on a running server with --server).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "quota")]
pub struct QuotaCmd {
    #[argh(subcommand)]
    pub action: QuotaAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum QuotaAction {
    Set(QuotaSet),
    Show(QuotaShow),
    Clear(QuotaClear),
}

/// Override an owner's limits; each value is a size (or a count), `unlimited`, or `default`
/// (the server's flag again). Limits not given keep their current override.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "set")]
pub struct QuotaSet {
    /// the user or organization
    #[argh(positional)]
    pub owner: String,
    /// largest file, e.g. 500MB, unlimited or default
    #[argh(option)]
    pub max_file_size: Option<String>,
    /// total bytes of the owner's files, e.g. 10GiB, unlimited or default
    #[argh(option)]
    pub max_bytes: Option<String>,
    /// number of versions, e.g. 1000, unlimited or default
    #[argh(option)]
    pub max_versions: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Show limits and current usage of one owner, or of every owner that stores something or
/// has an override.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "show")]
pub struct QuotaShow {
    /// the user or organization (default: all)
    #[argh(positional)]
    pub owner: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Remove an owner's overrides: the server's defaults apply again.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "clear")]
pub struct QuotaClear {
    /// the user or organization
    #[argh(positional)]
    pub owner: String,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a site admin's token for --server (env SHELF_TOKEN, which keeps it out of `ps`)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Cleanup rules (Gitea's, plus unused days) and runs (offline with --db or with --server).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "cleanup")]
pub struct CleanupCmd {
    #[argh(subcommand)]
    pub action: CleanupAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum CleanupAction {
    Rule(CleanupRuleCmd),
    Run(CleanupRun),
}

/// Add, list or remove cleanup rules.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "rule")]
pub struct CleanupRuleCmd {
    #[argh(subcommand)]
    pub action: RuleAction,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum RuleAction {
    Add(RuleAdd),
    List(RuleList),
    Remove(RuleRemove),
}

/// Add (or replace) the rule of an owner, for one package or all of them. A version goes
/// only when it passes every test: not among the --keep-count newest, not matching
/// --keep-pattern, older than --remove-days, matching --remove-pattern, not downloaded for
/// --unused-days. Patterns are regexes, anchored and case-insensitive.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "add")]
pub struct RuleAdd {
    /// the user or organization
    #[argh(positional)]
    pub owner: String,
    /// the package the rule is for (default: all packages of the owner)
    #[argh(option)]
    pub package: Option<String>,
    /// store the rule disabled
    #[argh(switch)]
    pub disabled: bool,
    /// keep this many newest versions
    #[argh(option)]
    pub keep_count: Option<u64>,
    /// versions matching this are kept
    #[argh(option)]
    pub keep_pattern: Option<String>,
    /// only versions older than this many days go
    #[argh(option)]
    pub remove_days: Option<u64>,
    /// only versions matching this go
    #[argh(option)]
    pub remove_pattern: Option<String>,
    /// patterns match `package/version` instead of the version
    #[argh(switch)]
    pub match_full_name: bool,
    /// only versions not downloaded for this many days go
    #[argh(option)]
    pub unused_days: Option<u64>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a token of a site admin or of the owner's admin for --server (env SHELF_TOKEN)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// List cleanup rules.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct RuleList {
    /// only this owner's rules (required with --server unless the token is a site admin's)
    #[argh(option)]
    pub owner: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a token of a site admin or of the owner's admin for --server (env SHELF_TOKEN)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Remove a cleanup rule.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "remove")]
pub struct RuleRemove {
    /// the user or organization
    #[argh(positional)]
    pub owner: String,
    /// the package the rule is for (default: the rule for all packages)
    #[argh(option)]
    pub package: Option<String>,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a token of a site admin or of the owner's admin for --server (env SHELF_TOKEN)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Run the enabled cleanup rules now (of one owner, or of all), or show what they would remove.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "run")]
pub struct CleanupRun {
    /// only this owner's rules
    #[argh(option)]
    pub owner: Option<String>,
    /// list what would go, delete nothing
    #[argh(switch)]
    pub dry_run: bool,
    /// database file, to work offline (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
    /// a running shelf to manage instead, e.g. http://127.0.0.1:8080
    #[argh(option)]
    pub server: Option<String>,
    /// a token of a site admin or of the owner's admin for --server (env SHELF_TOKEN)
    #[argh(option)]
    pub token: Option<String>,
    /// PEM CA certificates to trust for an https:// --server, besides the system's (env
    /// SHELF_CA_CERT)
    #[argh(option)]
    pub ca_cert: Option<PathBuf>,
}

/// Where an administration command acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The database file, opened directly (no server may hold it).
    Offline(PathBuf),
    /// A running server, through its JSON API with a site admin's token (and, for https://,
    /// the CA file to trust besides the system's).
    Remote {
        url: String,
        token: String,
        ca_cert: Option<PathBuf>,
    },
}

/// The target of an administration command from its `--db`, `--server` and `--token` flags:
/// `--server` with a token (flag, else `SHELF_TOKEN`), or else the database file.
pub fn target(
    db: Option<PathBuf>,
    server: Option<String>,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
) -> Result<Target, Error> {
    match (db, server) {
        (Some(_), Some(_)) => Err(Error::Usage(
            "use either --db (offline, on the database file) or --server (a running shelf), not both"
                .into(),
        )),
        (db, None) => {
            if token.is_some() {
                return Err(Error::Usage(
                    "--token is for --server; offline commands need no token".into(),
                ));
            }
            if ca_cert.is_some() {
                return Err(Error::Usage(
                    "--ca-cert is for an https:// --server; offline commands need none".into(),
                ));
            }
            Ok(Target::Offline(db_path(db)))
        }
        (None, Some(url)) => {
            let token = token
                .or_else(|| std::env::var("SHELF_TOKEN").ok())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    Error::Usage("--server needs a site admin's token: --token T or SHELF_TOKEN".into())
                })?;
            let ca_cert = ca_cert.or_else(|| {
                std::env::var_os("SHELF_CA_CERT")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            });
            Ok(Target::Remote {
                url,
                token,
                ca_cert,
            })
        }
    }
}

/// The database path: flag, then `SHELF_DB`, then `./shelf.redb`.
pub fn db_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("SHELF_DB").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DB))
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub listen: String,
    pub db: PathBuf,
    pub workers: usize,
    pub max_connections: usize,
    /// Open connections per client address (0: no cap).
    pub max_connections_per_ip: usize,
    pub max_file_size: Option<u64>,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    /// Bytes per second (0: no minimum).
    pub min_body_rate: u64,
    pub external_url: Option<String>,
    /// The certificate chain and key files, when serving HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A plain address whose requests are redirected to https.
    pub redirect_http: Option<String>,
    pub auth_failure_burst: u32,
    pub audit_retention_days: u64,
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Required by `/metrics` when set.
    pub metrics_token: Option<String>,
    pub owner_max_bytes: Option<u64>,
    pub owner_max_versions: Option<u64>,
    /// `None`: scheduled cleanup disabled.
    pub cleanup_interval: Option<Duration>,
    /// Bytes per second of the background scrub (0: off).
    pub scrub_rate: u64,
    pub scrub_interval: Duration,
    /// Bytes kept free on the database's disk (0: none).
    pub min_free_space: u64,
}

impl ServeSettings {
    /// The settings in effect, for the start-up log: an operator sees what the flags and the
    /// `SHELF_*` variables came to (the metrics token only as set or not).
    pub fn describe(&self) -> String {
        let size = |v: Option<u64>| match v {
            Some(n) => crate::units::human_size(n),
            None => "no limit".into(),
        };
        let proxies: Vec<String> = self.trusted_proxies.iter().map(|a| a.to_string()).collect();
        format!(
            "settings: workers {}, max connections {} ({} per address), timeouts head {} idle {} body {}, \
             min body rate {}; \
             max file size {}, owner max bytes {}, owner max versions {}; cleanup {}; \
             scrub {}; min free space {}; audit kept {} days; auth failure burst {}; \
             trusted proxies {}; external url {}; tls {}; metrics token {}",
            self.workers,
            self.max_connections,
            match self.max_connections_per_ip {
                0 => "no cap".to_string(),
                n => n.to_string(),
            },
            human_duration(self.head_timeout),
            human_duration(self.idle_timeout),
            human_duration(self.body_timeout),
            match self.min_body_rate {
                0 => "off".to_string(),
                n => format!("{}/s", crate::units::human_size(n)),
            },
            size(self.max_file_size),
            size(self.owner_max_bytes),
            self.owner_max_versions
                .map_or("no limit".into(), |n| n.to_string()),
            self.cleanup_interval
                .map_or("off".into(), |d| format!("every {}", human_duration(d))),
            if self.scrub_rate == 0 {
                "off".to_string()
            } else {
                format!(
                    "{}/s every {}",
                    crate::units::human_size(self.scrub_rate),
                    human_duration(self.scrub_interval)
                )
            },
            if self.min_free_space == 0 {
                "off".to_string()
            } else {
                crate::units::human_size(self.min_free_space)
            },
            self.audit_retention_days,
            self.auth_failure_burst,
            if proxies.is_empty() {
                "none".to_string()
            } else {
                proxies.join(",")
            },
            self.external_url
                .as_deref()
                .unwrap_or("none (the request's Host)"),
            match &self.tls {
                Some((cert, _)) => cert.display().to_string(),
                None => "off".to_string(),
            },
            if self.metrics_token.is_some() {
                "set"
            } else {
                "not set"
            },
        )
    }
}

/// A number from its flag, else from the environment variable `env` (a value there that is
/// not a number is refused, naming the variable).
fn flag_or_env<T: std::str::FromStr>(flag: Option<T>, env: &str) -> Result<Option<T>, Error> {
    if flag.is_some() {
        return Ok(flag);
    }
    match std::env::var(env).ok().filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Usage(format!("{env}: {v:?} is not a number"))),
    }
}

impl ServeSettings {
    pub fn from_flags(s: Serve) -> Result<ServeSettings, Error> {
        let env_or = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = s
            .listen
            .or_else(|| env_or("SHELF_LISTEN"))
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let workers = flag_or_env(s.workers, "SHELF_WORKERS")?.unwrap_or(32);
        if !(1..=4096).contains(&workers) {
            return Err(Error::Usage(format!(
                "--workers must be between 1 and 4096, not {workers}"
            )));
        }
        let max_connections =
            flag_or_env(s.max_connections, "SHELF_MAX_CONNECTIONS")?.unwrap_or(10_000);
        if max_connections < 1 {
            return Err(Error::Usage("--max-connections must be at least 1".into()));
        }
        let max_connections_per_ip =
            flag_or_env(s.max_connections_per_ip, "SHELF_MAX_CONNECTIONS_PER_IP")?.unwrap_or(256);
        let min_body_rate = match s.min_body_rate.or_else(|| env_or("SHELF_MIN_BODY_RATE")) {
            Some(v) => parse_size(v.strip_suffix("/s").unwrap_or(&v)).ok_or_else(|| {
                Error::Usage(format!(
                    "--min-body-rate: cannot read {v:?} as bytes per second (e.g. 1KiB, 500, 0)"
                ))
            })?,
            None => 1024,
        };
        let max_file_size = match s.max_file_size.or_else(|| env_or("SHELF_MAX_FILE_SIZE")) {
            Some(v) => Some(parse_size(&v).ok_or_else(|| {
                Error::Usage(format!(
                    "--max-file-size: cannot read {v:?} as a size (e.g. 1000000, 500MB, 2GiB)"
                ))
            })?),
            None => None,
        };
        let owner_max_bytes = match s
            .owner_max_bytes
            .or_else(|| env_or("SHELF_OWNER_MAX_BYTES"))
        {
            Some(v) => Some(parse_size(&v).ok_or_else(|| {
                Error::Usage(format!(
                    "--owner-max-bytes: cannot read {v:?} as a size (e.g. 1000000, 500MB, 2GiB)"
                ))
            })?),
            None => None,
        };
        let owner_max_versions = match s
            .owner_max_versions
            .or_else(|| env_or("SHELF_OWNER_MAX_VERSIONS"))
        {
            Some(v) => Some(v.trim().parse::<u64>().map_err(|_| {
                Error::Usage(format!(
                    "--owner-max-versions: {v:?} is not a whole number of versions"
                ))
            })?),
            None => None,
        };
        let cleanup_hours = match s.cleanup_interval {
            Some(h) => h,
            None => match env_or("SHELF_CLEANUP_INTERVAL") {
                Some(v) => v.trim().parse::<f64>().map_err(|_| {
                    Error::Usage(format!(
                        "SHELF_CLEANUP_INTERVAL: {v:?} is not a number of hours"
                    ))
                })?,
                None => 24.0,
            },
        };
        if !(cleanup_hours.is_finite() && (0.0..=8760.0).contains(&cleanup_hours)) {
            return Err(Error::Usage(
                "--cleanup-interval must be a number of hours between 0 and 8760".into(),
            ));
        }
        let cleanup_interval =
            (cleanup_hours > 0.0).then(|| Duration::from_secs_f64(cleanup_hours * 3600.0));
        let secs = |v: Option<f64>, default: f64, flag: &str| -> Result<Duration, Error> {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(Error::Usage(format!(
                    "--{flag} must be a number of seconds between 0 and 86400"
                )))
            }
        };
        let path_or_env =
            |flag: Option<PathBuf>, name: &str| flag.or_else(|| env_or(name).map(PathBuf::from));
        let tls = match (
            path_or_env(s.tls_cert, "SHELF_TLS_CERT"),
            path_or_env(s.tls_key, "SHELF_TLS_KEY"),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::Usage(
                    "--tls-cert needs --tls-key (or SHELF_TLS_KEY): the certificate's private key"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Usage(
                    "--tls-key needs --tls-cert (or SHELF_TLS_CERT): the certificate chain".into(),
                ))
            }
        };
        let redirect_http = s.redirect_http.or_else(|| env_or("SHELF_REDIRECT_HTTP"));
        if redirect_http.is_some() && tls.is_none() {
            return Err(Error::Usage(
                "--redirect-http redirects to https: it needs --tls-cert and --tls-key".into(),
            ));
        }
        Ok(ServeSettings {
            listen,
            db: db_path(s.db),
            tls,
            redirect_http,
            workers,
            max_connections,
            max_connections_per_ip,
            max_file_size,
            head_timeout: secs(
                flag_or_env(s.head_timeout, "SHELF_HEAD_TIMEOUT")?,
                10.0,
                "head-timeout",
            )?,
            idle_timeout: secs(
                flag_or_env(s.idle_timeout, "SHELF_IDLE_TIMEOUT")?,
                15.0,
                "idle-timeout",
            )?,
            body_timeout: secs(
                flag_or_env(s.body_timeout, "SHELF_BODY_TIMEOUT")?,
                30.0,
                "body-timeout",
            )?,
            min_body_rate,
            external_url: match s.external_url.or_else(|| env_or("SHELF_EXTERNAL_URL")) {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Some(u.trim_end_matches('/').to_string())
                }
                Some(u) => {
                    return Err(Error::Usage(format!(
                        "--external-url must start with http:// or https://, not {u:?}"
                    )))
                }
                None => None,
            },
            auth_failure_burst: match flag_or_env(s.auth_failure_burst, "SHELF_AUTH_FAILURE_BURST")?
            {
                Some(0) => {
                    return Err(Error::Usage(
                        "--auth-failure-burst must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => 10, // auth::DEFAULT_BURST
            },
            trusted_proxies: match s
                .trusted_proxies
                .or_else(|| env_or("SHELF_TRUSTED_PROXIES"))
            {
                None => Vec::new(),
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        a.parse().map_err(|_| {
                            Error::Usage(format!("--trusted-proxies: {a:?} is not an IP address"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            metrics_token: s.metrics_token.or_else(|| env_or("SHELF_METRICS_TOKEN")),
            owner_max_bytes,
            owner_max_versions,
            cleanup_interval,
            scrub_rate: match s.scrub_rate.or_else(|| env_or("SHELF_SCRUB_RATE")) {
                None => 8_000_000,
                Some(v) => parse_size(&v).ok_or_else(|| {
                    Error::Usage(format!(
                        "--scrub-rate: cannot read {v:?} as bytes per second (e.g. 8MB, 0)"
                    ))
                })?,
            },
            scrub_interval: match s.scrub_interval.or_else(|| env_or("SHELF_SCRUB_INTERVAL")) {
                None => Duration::from_secs(86_400),
                Some(v) => parse_duration(&v).ok_or_else(|| {
                    Error::Usage(format!(
                        "--scrub-interval: cannot read {v:?} as a duration (e.g. 24h, 7d, 30m)"
                    ))
                })?,
            },
            min_free_space: match s.min_free_space.or_else(|| env_or("SHELF_MIN_FREE_SPACE")) {
                None => 64 << 20,
                Some(v) => parse_size(&v).ok_or_else(|| {
                    Error::Usage(format!(
                        "--min-free-space: cannot read {v:?} as a size (e.g. 64MiB, 1GB, 0)"
                    ))
                })?,
            },
            audit_retention_days: match flag_or_env(
                s.audit_retention_days,
                "SHELF_AUDIT_RETENTION_DAYS",
            )? {
                Some(0) => {
                    return Err(Error::Usage(
                        "--audit-retention-days must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => 90,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_before_a_subcommand_are_serves() {
        let Parsed::Run(cli) = parse("shelf", &["--listen", "127.0.0.1:9"]) else {
            panic!("not parsed");
        };
        assert!(
            matches!(cli.command, Some(Command::Serve(s)) if s.listen.as_deref() == Some("127.0.0.1:9"))
        );
        assert!(matches!(
            parse("shelf", &[]),
            Parsed::Run(c) if c.command.is_none()
        ));
        assert!(matches!(
            parse("shelf", &["--help"]),
            Parsed::Exit { ok: true, .. }
        ));
        let Parsed::Exit { text, ok: false } = parse("shelf", &["serve", "--nope"]) else {
            panic!("accepted --nope");
        };
        assert!(text.contains("shelf serve --help"), "{text}");
        let Parsed::Exit { text, ok: false } = parse("shelf", &["user", "--nope"]) else {
            panic!("accepted --nope");
        };
        assert!(!text.contains("shelf serve --help"), "{text}");
    }

    #[test]
    fn one_target() {
        let db = || Some(PathBuf::from("x.redb"));
        let url = || Some("http://h:1".to_string());
        let tok = || Some("t".to_string());
        assert_eq!(
            target(db(), None, None, None).ok(),
            Some(Target::Offline(PathBuf::from("x.redb")))
        );
        assert_eq!(
            target(None, url(), tok(), Some(PathBuf::from("ca.pem"))).ok(),
            Some(Target::Remote {
                url: "http://h:1".into(),
                token: "t".into(),
                ca_cert: Some(PathBuf::from("ca.pem")),
            })
        );
        assert!(target(db(), url(), tok(), None).is_err(), "both");
        assert!(target(db(), None, tok(), None).is_err(), "a token offline");
        assert!(
            target(db(), None, None, Some(PathBuf::from("ca.pem"))).is_err(),
            "a CA offline"
        );
    }
}
