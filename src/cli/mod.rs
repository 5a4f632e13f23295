//! The command-line wing: every command's arguments (`args`, on argh), the account commands
//! (`accounts`: user, token, org, member, audit), the limits commands (`limits`: quota,
//! cleanup), maintenance (`maintenance`: backup, check, stats, compact), air-gap bundles
//! (`bundles`: export, manifest, import), the HTTP client `--server` uses (`client`) and the
//! one escape of text for a terminal (`terminal`). Each command runs offline on the database
//! file (`store`) or against a running server through the JSON API; nothing below imports it.

pub mod accounts;
pub mod args;
pub mod bundles;
pub mod client;
pub mod limits;
pub mod maintenance;
pub mod terminal;
