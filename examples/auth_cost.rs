//! What a sign-in costs on this machine: a token check and a password (Argon2id) check through
//! `auth::authenticate`, median of many, against a fresh temporary store.
//!
//! `cargo run --release --example auth_cost [-- ROUNDS]` (default 200 tokens, 20 passwords × 10)

use shelf::auth::{self, Credentials, Limiter};
use shelf::names::Owner;
use shelf::store::{NewToken, OwnerKind, Store, TokenOutcome, UserRecord};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn run() -> Result<(), String> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().map_err(|e| format!("ROUNDS: {e}")))
        .transpose()?
        .unwrap_or(200);
    let dir = std::env::temp_dir().join(format!("shelf-auth-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = Store::open(&dir.join("a.redb")).map_err(|e| e.to_string())?;
    let alice = Owner::parse("alice").ok_or("invalid owner name")?;
    let mut user = UserRecord::new(&alice, OwnerKind::User);
    user.password =
        Some(auth::hash_password("correct horse battery staple").map_err(|e| e.to_string())?);
    store.create_owner(user).map_err(|e| e.to_string())?;
    let (outcome, _) = store
        .create_token(NewToken {
            user: "alice".into(),
            name: "t".into(),
            scopes: vec!["all".into()],
            ..NewToken::default()
        })
        .map_err(|e| e.to_string())?;
    let TokenOutcome::Created(token) = outcome else {
        return Err("token not created".into());
    };
    let limiter = Limiter::new(u32::MAX);
    let peer = [127, 0, 0, 1].into();
    let time = |creds: &Credentials, n: usize| -> Result<Vec<Duration>, String> {
        (0..n)
            .map(|_| {
                let t = Instant::now();
                auth::authenticate(&store, &limiter, peer, creds)
                    .map_err(|e| format!("{e:?}"))?
                    .ok_or("anonymous")?;
                Ok(t.elapsed())
            })
            .collect()
    };
    let token_times = time(&Credentials::Token(token), rounds)?;
    let password = Credentials::Basic {
        user: "alice".into(),
        secret: "correct horse battery staple".into(),
    };
    let password_times = time(&password, (rounds / 10).max(5))?;
    println!(
        "token check     median {:>9.3} ms  ({} runs)",
        median(token_times.clone()).as_secs_f64() * 1e3,
        token_times.len()
    );
    println!(
        "password check  median {:>9.3} ms  ({} runs, Argon2id m=7 MiB t=5 p=1)",
        median(password_times.clone()).as_secs_f64() * 1e3,
        password_times.len()
    );
    store.close().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth_cost: {e}");
            ExitCode::FAILURE
        }
    }
}
