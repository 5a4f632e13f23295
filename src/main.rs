//! The `shelf` binary: parses the command line, starts logging, and wires config → store →
//! api → http for `serve`, and the administration commands to `manage`. All work happens in the
//! library.

use shelf::api::{Api, ApiConfig};
use shelf::cli::args::{self, Cli, Command, Parsed, ServeSettings};
use shelf::cli::{accounts, bundles, limits, maintenance, Error};
use shelf::http::{Server, ServerConfig, Tls};
use shelf::metrics::{Metrics, ScrubMetrics, StoreMetrics};
use shelf::names::Owner;
use shelf::store::{NewToken, Store, TokenOutcome};
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    limit_malloc_retention();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().collect();
    let program = args.first().map_or("shelf", |p| base_name(p));
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cli = match args::parse(program, &rest) {
        Parsed::Run(cli) => *cli,
        Parsed::Exit { text, ok: true } => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Parsed::Exit { text, ok: false } => {
            eprintln!("{text}");
            return ExitCode::FAILURE;
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Errors can carry a server's message or a stored name: escaped for the terminal.
            eprintln!("shelf: {}", shelf::cli::terminal::printable(&e.to_string()));
            ExitCode::FAILURE
        }
    }
}

/// The program's name without its directory, as `--help` shows it.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// glibc raises its mmap threshold after a large buffer is freed, and each thread that
/// allocates gets its own arena: freed 1 MiB chunk buffers then stayed resident in up to one
/// arena per worker (63–79 MiB in the small/medium benchmarks). Two arenas bound that; a fixed
/// 2 MiB threshold keeps the 1 MiB chunk buffers on the heap, where they are reused — a lower
/// threshold mapped and zeroed every chunk afresh and halved GET throughput (0.9 vs 2.0 GB/s).
fn limit_malloc_retention() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 2 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        None => serve(ServeSettings::from_flags(Default::default())?),
        Some(Command::Serve(s)) => serve(ServeSettings::from_flags(s)?),
        Some(Command::User(u)) => accounts::user(u.action),
        Some(Command::Token(t)) => accounts::token(t.action),
        Some(Command::Org(o)) => accounts::org(o.action),
        Some(Command::Member(m)) => accounts::member(m.action),
        Some(Command::Audit(a)) => accounts::audit(a),
        Some(Command::Export(e)) => bundles::export(e),
        Some(Command::Manifest(m)) => bundles::manifest(m),
        Some(Command::Import(i)) => bundles::import(i),
        Some(Command::Quota(q)) => limits::quota(q.action),
        Some(Command::Cleanup(c)) => limits::cleanup(c.action),
        Some(Command::Check(c)) => maintenance::check(c),
        Some(Command::Backup(c)) => maintenance::backup(c),
        Some(Command::Stats(c)) => maintenance::stats(c),
        Some(Command::Compact(c)) => maintenance::compact(c),
    }
}

fn serve(s: ServeSettings) -> Result<(), Error> {
    let server_config = ServerConfig {
        workers: s.workers,
        max_connections: s.max_connections,
        max_connections_per_ip: s.max_connections_per_ip,
        per_ip_exempt: s.trusted_proxies.clone(),
        head_timeout: s.head_timeout,
        idle_timeout: s.idle_timeout,
        body_timeout: s.body_timeout,
        min_body_rate: s.min_body_rate,
        ..ServerConfig::default()
    };
    // The certificate and the address first: a start that cannot serve creates nothing,
    // neither a database file nor the admin whose token the first start shows once.
    let tls = match &s.tls {
        Some((cert, key)) => Some(Arc::new(
            Tls::load(cert, key).map_err(|e| Error::Usage(e.to_string()))?,
        )),
        None => None,
    };
    let mut server = Server::bind(&s.listen, server_config)
        .map_err(Error::io(format!("cannot listen on {}", s.listen)))?;
    if let Some(tls) = &tls {
        server.set_tls(Arc::clone(tls));
    }
    if let Some(addr) = &s.redirect_http {
        let at = server.add_redirect_http(addr).map_err(Error::io(format!(
            "cannot listen on {addr} (--redirect-http)"
        )))?;
        log::info!("redirecting http://{at} to https");
    }
    // Not cli::open_store: `serve` is the server, and its "in use" needs no --server hint.
    let existed = s.db.exists();
    let store = Store::open(&s.db)?;
    if !existed {
        eprintln!("created a new database at {}", s.db.display());
    }
    store.set_audit_retention_days(s.audit_retention_days);
    store.set_min_free_space(s.min_free_space);
    store.set_quota_defaults(shelf::store::Limits {
        max_file_size: s.max_file_size,
        max_bytes: s.owner_max_bytes,
        max_versions: s.owner_max_versions,
    });
    if let Some(every) = s.cleanup_interval {
        store.start_cleanup_schedule(every.min(std::time::Duration::from_secs(60)), every)?;
    }
    store.start_scrub(shelf::store::ScrubConfig {
        rate: s.scrub_rate,
        interval: s.scrub_interval,
    })?;
    bootstrap_admin(&store)?;
    // Metrics: the HTTP layer reports each request; the store's totals are read at scrape time.
    // Other sources (e.g. a background job's counters) register here with `add_source`.
    let metrics = Arc::new(Metrics::new(s.metrics_token.clone()));
    metrics.set_connections(server.connection_gauges());
    metrics.add_source(Arc::new(StoreMetrics::new(&store)));
    metrics.add_source(Arc::new(ScrubMetrics::new(&store)));
    server.set_observer(Arc::clone(&metrics) as _);
    let addr = server.local_addr();
    let shutdown = server.shutdown_handle();
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    // SIGHUP reloads the certificate; without TLS it keeps its default (it ends the process).
    let mut wanted = vec![SIGINT, SIGTERM];
    if tls.is_some() {
        wanted.push(SIGHUP);
    }
    let mut signals = signal_hook::iterator::Signals::new(wanted)
        .map_err(Error::io("cannot install signal handlers"))?;
    let reload = tls.clone();
    std::thread::Builder::new()
        .name("shelf-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    if let Some(tls) = &reload {
                        reload_tls(tls);
                    }
                    continue;
                }
                log::info!("signal {sig}: finishing in-flight requests, then closing the database");
                shutdown.shutdown();
                return;
            }
        })
        .map_err(Error::io("cannot start the signal thread"))?;
    let api = Api::new(
        Arc::clone(&store),
        ApiConfig {
            max_file_size: s.max_file_size,
            external_url: s.external_url.clone(),
            auth_failure_burst: s.auth_failure_burst,
            trusted_proxies: s.trusted_proxies.clone(),
        },
    )
    .with_metrics(metrics);
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "shelf listening on {scheme}://{addr} (database {})",
        s.db.display()
    );
    let _ = std::io::stdout().flush();
    log::info!("listening on {scheme}://{addr}");
    log::info!("{}", s.describe());
    server
        .run(Arc::new(move |req| api.handle(req)))
        .map_err(Error::io("server stopped"))?;
    store.close()?;
    log::info!("database closed cleanly");
    Ok(())
}

/// SIGHUP: new handshakes use the pair now in the files; connections keep their sessions. A
/// pair that does not load is refused, and the one in use stays.
fn reload_tls(tls: &Tls) {
    match tls.reload() {
        Ok(()) => log::info!(
            "SIGHUP: reloaded the TLS certificate {} and its key",
            tls.cert_path().display()
        ),
        Err(e) => log::error!("SIGHUP: {e}; still serving the certificate loaded before"),
    }
}

/// On an empty database: create the site admin `admin` and its first token, taken from
/// `SHELF_ADMIN_TOKEN` when set, else random and printed once on stderr.
fn bootstrap_admin(store: &Store) -> Result<(), Error> {
    if store.user_count()? > 0 {
        if std::env::var_os("SHELF_ADMIN_TOKEN").is_some_and(|t| !t.is_empty()) {
            log::warn!(
                "SHELF_ADMIN_TOKEN is set but not used: it only seeds the admin of an empty \
                 database, and this one has accounts (make a token with `shelf token create`)"
            );
        }
        return Ok(());
    }
    store.create_user(&Owner::site_admin(), true)?;
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
        })?
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
        other => Err(Error::AdminToken(other)),
    }
}
