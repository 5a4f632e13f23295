//! The `shelf` binary: parses the command line, starts logging, and wires config → store →
//! api → http. All work happens in the library.

use shelf::api::{Api, ApiConfig};
use shelf::config::{self, Cli, Command, ServeSettings, TokenAction, UserAction};
use shelf::http::{self, Server, ServerConfig};
use shelf::store::{NewToken, Store, TokenOutcome};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    limit_malloc_retention();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli: Cli = argh::from_env();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shelf: {e}");
            ExitCode::FAILURE
        }
    }
}

/// glibc raises its mmap threshold after a large buffer is freed, so later 1 MiB chunk
/// buffers come from per-thread arenas and stay resident: RSS grew with the number of workers
/// that ever handled an upload (63–79 MiB in the small/medium benchmarks). A fixed threshold
/// keeps large buffers in mmap, returned to the system on free; two arenas bound the rest.
fn limit_malloc_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        None => serve(ServeSettings::from_flags(Default::default())?),
        Some(Command::Serve(s)) => serve(ServeSettings::from_flags(s)?),
        Some(Command::User(u)) => match u.action {
            UserAction::Add(a) => {
                let store = open_store(&config::db_path(a.db))?;
                if !shelf::api::valid_owner_name(&a.name) {
                    return Err(format!(
                        "{:?} is not a valid user name (letters, digits, '-', '_', '.'; at most 40)",
                        a.name
                    ));
                }
                if !store
                    .create_user(&a.name, a.admin)
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("a user named {:?} already exists", a.name));
                }
                println!(
                    "created {}user {}",
                    if a.admin { "site admin " } else { "" },
                    a.name
                );
                close(store)
            }
        },
        Some(Command::Check(c)) => {
            let store = open_store(&config::db_path(c.db))?;
            let started = std::time::Instant::now();
            let report = store.check().map_err(|e| e.to_string())?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{} files, {} bytes; {} chunks, {} bytes; {} pins; {} distinct contents; checked in {secs:.2} s ({:.0} MB/s)",
                report.files,
                report.logical_bytes,
                report.chunks,
                report.physical_bytes,
                report.pins,
                report.contents,
                report.physical_bytes as f64 / 1e6 / secs.max(1e-9)
            );
            for f in &report.faults {
                println!("FAULT {f}");
            }
            close(store)?;
            if report.faults.is_empty() {
                println!("ok");
                Ok(())
            } else {
                Err(format!("{} faults found", report.faults.len()))
            }
        }
        Some(Command::Token(t)) => match t.action {
            TokenAction::Create(c) => {
                let store = open_store(&config::db_path(c.db))?;
                let name = c
                    .name
                    .unwrap_or_else(|| format!("cli-{}", shelf::store::now()));
                match store
                    .create_token(NewToken {
                        user: c.user.clone(),
                        name: name.clone(),
                        scopes: vec!["all".into()],
                        ..NewToken::default()
                    })
                    .map_err(|e| e.to_string())?
                    .0
                {
                    TokenOutcome::Created(token) => {
                        println!(
                            "created token {name:?} for {}; it is shown only once:",
                            c.user
                        );
                        println!("{token}");
                        close(store)
                    }
                    TokenOutcome::NoSuchUser => Err(format!("no user named {:?}", c.user)),
                    TokenOutcome::NameTaken => {
                        Err(format!("{} already has a token named {name:?}", c.user))
                    }
                }
            }
            TokenAction::List(l) => {
                let store = open_store(&config::db_path(l.db))?;
                let tokens = store
                    .list_tokens(&l.user)
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no user named {:?}", l.user))?;
                println!("{:<24} {:<10} CREATED", "NAME", "LAST EIGHT");
                for t in tokens {
                    println!(
                        "{:<24} {:<10} {}",
                        t.name,
                        t.last_eight,
                        http::http_date(
                            std::time::UNIX_EPOCH + std::time::Duration::from_secs(t.created)
                        )
                    );
                }
                close(store)
            }
            TokenAction::Revoke(r) => {
                let store = open_store(&config::db_path(r.db))?;
                if store
                    .revoke_token(&r.user, &r.name)
                    .map_err(|e| e.to_string())?
                    .is_none()
                {
                    return Err(format!("{} has no token named {:?}", r.user, r.name));
                }
                println!("revoked token {:?} of {}", r.name, r.user);
                close(store)
            }
        },
    }
}

fn open_store(path: &Path) -> Result<Arc<Store>, String> {
    Store::open(path).map_err(|e| e.to_string())
}

fn close(store: Arc<Store>) -> Result<(), String> {
    store.close().map_err(|e| e.to_string())
}

fn serve(s: ServeSettings) -> Result<(), String> {
    let store = open_store(&s.db)?;
    store.set_audit_retention_days(s.audit_retention_days);
    bootstrap_admin(&store)?;
    let server_config = ServerConfig {
        workers: s.workers,
        max_connections: s.max_connections,
        head_timeout: s.head_timeout,
        idle_timeout: s.idle_timeout,
        body_timeout: s.body_timeout,
        ..ServerConfig::default()
    };
    let server = Server::bind(&s.listen, server_config)
        .map_err(|e| format!("cannot listen on {}: {e}", s.listen))?;
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    std::thread::Builder::new()
        .name("shelf-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: finishing in-flight requests, then closing the database");
                shutdown.shutdown();
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let api = Api::new(
        Arc::clone(&store),
        ApiConfig {
            max_file_size: s.max_file_size,
            external_url: s.external_url.clone(),
            auth_failure_burst: s.auth_failure_burst,
        },
    );
    println!(
        "shelf listening on http://{addr} (database {})",
        s.db.display()
    );
    let _ = std::io::stdout().flush();
    log::info!("listening on http://{addr}");
    server
        .run(Arc::new(move |req| api.handle(req)))
        .map_err(|e| format!("server stopped: {e}"))?;
    close(store)?;
    log::info!("database closed cleanly");
    Ok(())
}

/// On an empty database: create the site admin `admin` and its first token, taken from
/// `SHELF_ADMIN_TOKEN` when set, else random and printed once on stderr.
fn bootstrap_admin(store: &Store) -> Result<(), String> {
    if store.user_count().map_err(|e| e.to_string())? > 0 {
        return Ok(());
    }
    store
        .create_user("admin", true)
        .map_err(|e| e.to_string())?;
    let given = std::env::var("SHELF_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let from_env = given.is_some();
    match store
        .create_token(NewToken {
            user: "admin".into(),
            name: "bootstrap".into(),
            scopes: vec!["all".into()],
            given,
            ..NewToken::default()
        })
        .map_err(|e| e.to_string())?
        .0
    {
        TokenOutcome::Created(token) => {
            if from_env {
                eprintln!("created site admin \"admin\" with the token from SHELF_ADMIN_TOKEN");
            } else {
                eprintln!(
                    "created site admin \"admin\"; its token (shown only this once):\n{token}"
                );
            }
            Ok(())
        }
        other => Err(format!("cannot create the admin token: {other:?}")),
    }
}
