//! shelf: a Gitea-compatible generic package registry in one binary and one redb file.
//!
//! Dependencies run one way: `http` → `api` → `auth`/`store` → `chunk`. `manage` (the
//! administration commands) and `maintain` (backup, check, stats, compact) drive `store`
//! offline, or `client` against a running server.
//! `bundle` (air-gap export, manifest, import) works the same two ways.
//! `main.rs` wires them. `names`, `dates` and `units` are leaves below every layer that uses
//! them; no module imports one above itself.

pub mod api;
pub mod auth;
pub mod bundle;
pub mod chunk;
pub mod client;
pub mod config;
pub mod dates;
pub mod http;
pub mod maintain;
pub mod manage;
pub mod manage_limits;
pub mod metrics;
pub mod multipart;
pub mod names;
pub mod pipe;
pub mod store;
pub mod terminal;
pub mod units;
