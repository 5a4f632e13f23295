//! The one error type of the commands: every way a command can fail, named by its outcome and
//! carrying what it is about. `Display` is the line `main` prints after `shelf: ` (escaped for
//! the terminal there); the exit code is 1 for all of them.

use crate::auth::PasswordError;
use crate::bundle::{BadTime, ExportError, ImportError, ManifestError};
use crate::cli::client;
use crate::store::{self, InvalidRule, TokenOutcome};
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// An argument mistake or a refusal of the command line, worded for the user.
    Usage(String),
    /// Offline: a running server holds the database file.
    InUse(PathBuf),
    /// Offline: a command that reads or maintains was pointed at a file that does not exist.
    NoDatabase(PathBuf),
    /// Offline: the store failed.
    Store(store::Error),
    /// `--server`: the request failed, or the server refused it.
    Client(client::Error),
    /// `--server`: the server answered, but not with what the command expects.
    Answer(Answer),
    /// A file, stream or thread failed; `what` says which and doing what.
    Io {
        what: String,
        source: io::Error,
    },
    /// Writing to standard output failed.
    Stdout(io::Error),
    /// Something the command names is not there.
    NotFound(Missing),
    /// The name is taken.
    Exists(Taken),
    /// `user|org delete` without `--purge` of an owner that still owns packages.
    OwnsPackages(String),
    /// `member set`: the store did not make the user a member.
    NotMade {
        org: String,
        user: String,
    },
    /// `org create`: the organization went before its owners' team was made.
    Vanished(String),
    /// `user add --admin` on a server: the user exists, but the admin flag failed.
    AdminFlag {
        user: String,
        source: client::Error,
    },
    Password(PasswordError),
    /// `cleanup rule add`: the store refused the rule.
    Rule(InvalidRule),
    /// `export --since`.
    Since(BadTime),
    /// `export --against FILE`: the file is not a valid manifest.
    Manifest {
        path: PathBuf,
        source: ManifestError,
    },
    /// `export --against FILE`: the file is larger than a manifest may be.
    ManifestTooLarge(PathBuf),
    Export(ExportError),
    Import(ImportError),
    /// `import`: files exist with other bytes and were left alone.
    Conflicts(usize),
    Json(serde_json::Error),
    /// `backup OUT` when OUT exists.
    BackupExists(PathBuf),
    /// Offline maintenance (`compact`) met a full disk; the database is whole.
    DiskFull {
        what: &'static str,
        path: PathBuf,
    },
    /// The backup stopped; nothing was written.
    Backup(Box<Error>),
    /// The restore thread of `backup` panicked.
    RestorePanicked,
    /// `backup`: the new file does not pass `check`.
    BackupFaults {
        path: PathBuf,
        faults: usize,
    },
    /// `check`: the database has faults.
    Faults(usize),
    /// `serve` on an empty database: the bootstrap token was not created.
    AdminToken(TokenOutcome),
}

/// What a command named that does not exist (offline), or that the server answered 404 for.
#[derive(Debug)]
pub enum Missing {
    User(String),
    Org(String),
    /// `--server`: a 404 also answers an organization the token may not see.
    HiddenOrg(String),
    /// A user or an organization.
    Owner(String),
    /// `export`'s owner.
    ExportOwner(String),
    /// `token create --owner`.
    TokenOwner(String),
    Token {
        user: String,
        name: String,
    },
    Member {
        org: String,
        user: String,
    },
    /// `--server`: a 404 of `member remove` does not say which is missing.
    MemberOrOrg {
        org: String,
        user: String,
    },
    /// `--server`: a 404 of `member set` does not say which is missing.
    OrgOrUser {
        org: String,
        user: String,
    },
    CleanupRule {
        owner: String,
        package: String,
    },
}

/// A name already in use.
#[derive(Debug)]
pub enum Taken {
    User(String),
    /// By a user or an organization.
    Owner(String),
    Token {
        user: String,
        name: String,
    },
}

/// An answer of the server a command cannot use.
#[derive(Debug)]
pub enum Answer {
    /// `GET path` did not answer a JSON list.
    NotAList(String),
    /// `token create`: the answer holds no token.
    NoToken,
    /// `import`: the report is not one this build reads.
    BadReport,
    /// The body ended before its announced length.
    Short { got: u64, len: u64 },
}

impl Error {
    /// An I/O failure, with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => f.write_str(m),
            Error::InUse(path) => write!(
                f,
                "{}, or work on it while it runs with --server http://HOST:PORT \
                 (and --token or SHELF_TOKEN)",
                store::Error::InUse(path.clone())
            ),
            Error::NoDatabase(path) => write!(
                f,
                "no database at {}: check --db (or the directory you are in); only serve, \
                 user add, org create and import create one",
                path.display()
            ),
            Error::Store(e) => write!(f, "{e}"),
            Error::DiskFull { what, path } => write!(
                f,
                "the disk holding {} is full: {what} needs free space to work in. Nothing is \
                 lost (the database is whole); free some space on that disk and run it again",
                path.display()
            ),
            Error::Client(e) => write!(f, "{e}"),
            Error::Answer(a) => write!(f, "{a}"),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Stdout(e) => write!(f, "{e}"),
            Error::NotFound(m) => write!(f, "{m}"),
            Error::Exists(t) => write!(f, "{t}"),
            Error::OwnsPackages(name) => write!(
                f,
                "{name} still owns packages: delete them first, or add --purge"
            ),
            Error::NotMade { org, user } => write!(f, "cannot make {user} a member of {org}"),
            Error::Vanished(org) => write!(f, "organization {org} vanished while being created"),
            Error::AdminFlag { user, source } => write!(
                f,
                "created user {user}, but making it a site admin failed: {source}"
            ),
            Error::Password(e) => write!(f, "{e}"),
            Error::Rule(e) => write!(f, "{e}"),
            Error::Since(e) => write!(f, "{e}"),
            Error::Manifest { path, source } => write!(f, "{}: {source}", path.display()),
            Error::ManifestTooLarge(path) => {
                write!(f, "{} is larger than a manifest may be", path.display())
            }
            Error::Export(e) => write!(f, "{e}"),
            Error::Import(e) => write!(f, "{e}"),
            Error::Conflicts(n) => write!(
                f,
                "{} here with other bytes and {} not imported (everything else was)",
                crate::cli::terminal::count(*n as u64, "file exists", "files exist"),
                if *n == 1 { "was" } else { "were" }
            ),
            Error::Json(e) => write!(f, "{e}"),
            Error::BackupExists(path) => write!(
                f,
                "{} exists already; a backup never overwrites a file",
                path.display()
            ),
            Error::Backup(e) => write!(f, "backup failed, nothing written: {e}"),
            Error::RestorePanicked => write!(f, "the restore thread panicked"),
            Error::BackupFaults { path, faults } => {
                write!(f, "the backup in {} has {faults} faults", path.display())
            }
            Error::Faults(n) => write!(f, "{n} faults found"),
            Error::AdminToken(outcome) => {
                write!(f, "cannot create the admin token: {outcome:?}")
            }
        }
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::User(name) => write!(f, "no user named {name:?}"),
            Missing::Org(name) => write!(f, "no organization named {name:?}"),
            Missing::HiddenOrg(name) => write!(
                f,
                "no organization named {name:?} (or the token may not see it)"
            ),
            Missing::Owner(name) => write!(f, "no user or organization named {name:?}"),
            Missing::ExportOwner(name) => write!(f, "no owner named {name:?}"),
            Missing::TokenOwner(name) => {
                write!(f, "--owner: no user or organization named {name:?}")
            }
            Missing::Token { user, name } => write!(f, "{user} has no token named {name:?}"),
            Missing::Member { org, user } => write!(f, "{user} is not a member of {org}"),
            Missing::MemberOrOrg { org, user } => write!(
                f,
                "{user} is not a member of {org} (or there is no such organization)"
            ),
            Missing::OrgOrUser { org, user } => {
                write!(f, "no organization {org:?} or no user {user:?}")
            }
            Missing::CleanupRule { owner, package } => {
                write!(f, "{owner} has no cleanup rule for {package}")
            }
        }
    }
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Taken::User(name) => write!(f, "a user named {name:?} already exists"),
            Taken::Owner(name) => {
                write!(f, "a user or organization named {name:?} already exists")
            }
            Taken::Token { user, name } => write!(f, "{user} already has a token named {name:?}"),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::NotAList(path) => write!(f, "GET {path}: expected a JSON list"),
            Answer::NoToken => write!(f, "the server created the token but did not return it"),
            Answer::BadReport => write!(f, "the server's import report is not understood"),
            Answer::Short { got, len } => {
                write!(f, "the server's answer ended after {got} of {len} bytes")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Store(e) => Some(e),
            Error::Client(e) | Error::AdminFlag { source: e, .. } => Some(e),
            Error::Io { source, .. } | Error::Stdout(source) => Some(source),
            Error::Password(e) => Some(e),
            Error::Rule(e) => Some(e),
            Error::Since(e) => Some(e),
            Error::Manifest { source, .. } => Some(source),
            Error::Export(e) => Some(e),
            Error::Import(e) => Some(e),
            Error::Json(e) => Some(e),
            Error::Backup(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Error {
        Error::Store(e)
    }
}

impl From<client::Error> for Error {
    fn from(e: client::Error) -> Error {
        Error::Client(e)
    }
}

impl From<Missing> for Error {
    fn from(m: Missing) -> Error {
        Error::NotFound(m)
    }
}

impl From<PasswordError> for Error {
    fn from(e: PasswordError) -> Error {
        Error::Password(e)
    }
}

impl From<ExportError> for Error {
    fn from(e: ExportError) -> Error {
        Error::Export(e)
    }
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Error {
        Error::Import(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::Json(e)
    }
}
