//! Command line and settings: flags (argh), their `SHELF_*` environment fallbacks, defaults, and
//! validation with messages a user can act on. Knows nothing about HTTP or redb.

use argh::FromArgs;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DB: &str = "./shelf.redb";

/// shelf: a Gitea-compatible generic package registry in one binary and one file.
/// With no subcommand it runs `serve` with its defaults.
#[derive(FromArgs, Debug)]
pub struct Cli {
    #[argh(subcommand)]
    pub command: Option<Command>,
}

#[derive(FromArgs, Debug)]
#[argh(subcommand)]
pub enum Command {
    Serve(Serve),
    User(UserCmd),
    Token(TokenCmd),
    Check(CheckCmd),
}

/// Verify the database: every chunk's hash, every file's bytes, exact reference counts. Exits
/// non-zero on any fault (works on the file while no server holds it).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "check")]
pub struct CheckCmd {
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
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
    /// worker threads, each serving one connection at a time (default 32)
    #[argh(option)]
    pub workers: Option<usize>,
    /// open connections beyond which new ones get 503 (default 512)
    #[argh(option)]
    pub max_connections: Option<usize>,
    /// largest accepted upload, e.g. 500000000, 500MB or 2GiB (default: no limit)
    #[argh(option)]
    pub max_file_size: Option<String>,
    /// seconds a client may take to send a request head (default 10)
    #[argh(option)]
    pub head_timeout: Option<f64>,
    /// seconds an idle keep-alive connection is kept (default 15)
    #[argh(option)]
    pub idle_timeout: Option<f64>,
    /// seconds a request body may stall before the upload is abandoned (default 30)
    #[argh(option)]
    pub body_timeout: Option<f64>,
    /// the URL clients reach shelf at, for links in JSON answers (default: from the Host
    /// header; env SHELF_EXTERNAL_URL)
    #[argh(option)]
    pub external_url: Option<String>,
    /// failed sign-ins in a row one address may make before it is answered 429 (default 10;
    /// one more is allowed every 6 s)
    #[argh(option)]
    pub auth_failure_burst: Option<u32>,
    /// days the audit log is kept (default 90)
    #[argh(option)]
    pub audit_retention_days: Option<u64>,
}

/// Manage users (works on the database file while no server holds it).
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
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Manage personal access tokens (works on the database file while no server holds it).
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
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// List a user's tokens (names and last eight characters, never the token).
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "list")]
pub struct TokenList {
    /// the user
    #[argh(positional)]
    pub user: String,
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
}

/// Revoke a user's token by name.
#[derive(FromArgs, Debug)]
#[argh(subcommand, name = "revoke")]
pub struct TokenRevoke {
    /// the user
    #[argh(positional)]
    pub user: String,
    /// the token's name
    #[argh(positional)]
    pub name: String,
    /// database file (default ./shelf.redb, env SHELF_DB)
    #[argh(option)]
    pub db: Option<PathBuf>,
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
    pub max_file_size: Option<u64>,
    pub head_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub external_url: Option<String>,
    pub auth_failure_burst: u32,
    pub audit_retention_days: u64,
}

impl ServeSettings {
    pub fn from_flags(s: Serve) -> Result<ServeSettings, String> {
        let env_or = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let listen = s
            .listen
            .or_else(|| env_or("SHELF_LISTEN"))
            .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
        let workers = s.workers.unwrap_or(32);
        if !(1..=4096).contains(&workers) {
            return Err(format!(
                "--workers must be between 1 and 4096, not {workers}"
            ));
        }
        let max_connections = s.max_connections.unwrap_or(512);
        if max_connections < 1 {
            return Err("--max-connections must be at least 1".into());
        }
        let max_file_size = match s.max_file_size.or_else(|| env_or("SHELF_MAX_FILE_SIZE")) {
            Some(v) => Some(parse_size(&v).ok_or_else(|| {
                format!("--max-file-size: cannot read {v:?} as a size (e.g. 1000000, 500MB, 2GiB)")
            })?),
            None => None,
        };
        let secs = |v: Option<f64>, default: f64, flag: &str| -> Result<Duration, String> {
            let v = v.unwrap_or(default);
            if v.is_finite() && v > 0.0 && v <= 86_400.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "--{flag} must be a number of seconds between 0 and 86400"
                ))
            }
        };
        Ok(ServeSettings {
            listen,
            db: db_path(s.db),
            workers,
            max_connections,
            max_file_size,
            head_timeout: secs(s.head_timeout, 10.0, "head-timeout")?,
            idle_timeout: secs(s.idle_timeout, 15.0, "idle-timeout")?,
            body_timeout: secs(s.body_timeout, 30.0, "body-timeout")?,
            external_url: match s.external_url.or_else(|| env_or("SHELF_EXTERNAL_URL")) {
                Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                    Some(u.trim_end_matches('/').to_string())
                }
                Some(u) => {
                    return Err(format!(
                        "--external-url must start with http:// or https://, not {u:?}"
                    ))
                }
                None => None,
            },
            auth_failure_burst: match s.auth_failure_burst {
                Some(0) => return Err("--auth-failure-burst must be at least 1".into()),
                Some(n) => n,
                None => 10, // auth::DEFAULT_BURST
            },
            audit_retention_days: match s.audit_retention_days {
                Some(0) => return Err("--audit-retention-days must be at least 1".into()),
                Some(n) => n,
                None => 90,
            },
        })
    }
}

/// A byte count with an optional unit: `1000`, `1kB`/`1K` (10^3), `1MB`, `1GB`, `1TB`,
/// `1KiB` (2^10), `1MiB`, `1GiB`, `1TiB`; spaces and case are ignored (as go-humanize, which
/// Gitea uses for its limits).
pub fn parse_size(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "t" | "tb" => 1_000_000_000_000,
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("1 MB"), Some(1_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("5k"), Some(5000));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1 parsec"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
    }
}
