//! The command-line wing: every command's arguments (`args`, on argh), the account commands
//! (`accounts`: user, token, org, member, audit), the limits commands (`limits`: quota,
//! cleanup), maintenance (`maintenance`: backup, check, stats, compact), air-gap bundles
//! (`bundles`: export, manifest, import), the HTTP client `--server` uses (`client`), the
//! progress bars of long commands on a terminal (`progress`) and the one escape of text for a
//! terminal (`terminal`). Each command runs offline on the database
//! file (`store`) or against a running server through the JSON API; nothing below imports it.

pub mod accounts;
pub mod args;
pub mod bundles;
pub mod client;
mod error;
pub mod limits;
pub mod maintenance;
mod progress;
pub mod terminal;

pub use error::{Answer, Error, Missing, Taken};

use crate::store::{self, AuditRecord, Store};
use std::path::Path;
use std::sync::Arc;

/// Whether an offline command may create the database file it is pointed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Open {
    /// Reading or maintaining: a missing file is a mistake (a typo in `--db`, the wrong
    /// directory), refused before anything is created.
    Existing,
    /// `user add`, `org create`, `import`: a new file is made, and stderr says so.
    OrCreate,
}

/// Opens the database file for an offline command. A file a running server holds says how to
/// reach that server instead (the one "in use" message of every command).
pub fn open_store(path: &Path, how: Open) -> Result<Arc<Store>, Error> {
    let existed = path.exists();
    if !existed && how == Open::Existing {
        return Err(Error::NoDatabase(path.to_path_buf()));
    }
    let store = Store::open(path).map_err(|e| match e {
        store::Error::InUse(path) => Error::InUse(path),
        other => Error::Store(other),
    })?;
    if !existed {
        eprintln!("created a new database at {}", path.display());
    }
    Ok(store)
}

/// Records what an offline command did, as actor `cli` from `local`.
pub fn audit_local(store: &Store, action: &str, owner: &str, target: &str) {
    store.audit(AuditRecord {
        time: store::now(),
        actor: "cli".into(),
        addr: "local".into(),
        action: action.into(),
        owner: store::fold_case(owner),
        target: target.into(),
        outcome: "ok".into(),
    });
}
