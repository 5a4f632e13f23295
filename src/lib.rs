//! shelf: a Gitea-compatible generic package registry in one binary and one redb file.
//!
//! Dependencies run one way: `http` → `api` → `auth`/`store` → `chunk`. `manage` (the
//! administration commands) and `maintain` (backup, check, stats, compact) drive `store`
//! offline, or `client` against a running server.
//! `main.rs` wires them.

pub mod api;
pub mod auth;
pub mod chunk;
pub mod client;
pub mod config;
pub mod http;
pub mod maintain;
pub mod manage;
pub mod manage_limits;
pub mod metrics;
pub mod multipart;
pub mod pipe;
pub mod store;
