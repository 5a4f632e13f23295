//! shelf: a Gitea-compatible generic package registry in one binary and one redb file.
//!
//! Dependencies run one way: `http` → `api` → `auth`/`store` → `chunk`. `cli` (every command:
//! accounts, limits, maintenance, bundles) drives `store` offline, or its `client` against a
//! running server; `bundle` holds the air-gap format both sides use. `main.rs` wires them. `names`, `dates` and `units` are leaves below every layer that uses
//! them; no module imports one above itself.

pub mod api;
pub mod auth;
pub mod bundle;
pub mod chunk;
pub mod cli;
pub mod dates;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod multipart;
pub mod names;
pub mod pipe;
pub mod store;
pub mod units;
pub mod web;
