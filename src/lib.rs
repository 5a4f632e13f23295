//! shelf: a Gitea-compatible generic package registry in one binary and one redb file.
//!
//! Dependencies run one way: `http` → `api` → `auth`/`store` → `chunk`. `main.rs` wires them.

pub mod api;
pub mod auth;
pub mod chunk;
pub mod config;
pub mod http;
pub mod multipart;
pub mod store;
