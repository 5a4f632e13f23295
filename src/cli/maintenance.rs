//! The maintenance commands: `backup`, `check` (and `--repair`), `stats` and `compact`, on the
//! database file (no server may hold it) or, except repair and compact, against a running
//! server through its admin endpoints.

use crate::cli::args::{self, BackupCmd, CheckCmd, CompactCmd, StatsCmd, Target};
use crate::cli::client::Client;
use crate::cli::progress::{Progress, Unit};
use crate::cli::terminal::{count, printable};
use crate::cli::Error;
use crate::store::{self, Store};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn open(path: &Path) -> Result<Arc<Store>, Error> {
    crate::cli::open_store(path, crate::cli::Open::Existing)
}

fn close(s: Arc<Store>) -> Result<(), Error> {
    Ok(s.close()?)
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// `shelf backup OUT`.
pub fn backup(c: BackupCmd) -> Result<(), Error> {
    let target = args::target(c.db, c.server, c.token, c.ca_cert)?;
    if c.out.exists() {
        return Err(Error::BackupExists(c.out.clone()));
    }
    // Before the server is asked for anything: a directory that is not there would fail the
    // restore only after the server had streamed (and audited) a backup never written.
    let dir = match c.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::Usage(format!(
            "cannot write the backup to {}: the directory {} does not exist",
            printable(&c.out.display().to_string()),
            printable(&dir.display().to_string())
        )));
    }
    let limit = match &c.limit_rate {
        None => None,
        Some(v) => Some(
            crate::units::parse_size(v)
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--limit-rate: cannot read {v:?} as bytes per second (e.g. 50MB)"
                    ))
                })?,
        ),
    };
    let started = Instant::now();
    let (mut w, r) = crate::pipe::pipe(4);
    let out = c.out.clone();
    let restorer = std::thread::Builder::new()
        .name("shelf-restore".into())
        .spawn(move || match limit {
            // Reading slower holds the stream back all the way to the server's snapshot.
            Some(rate) => store::restore(Paced::new(r, rate), &out),
            None => store::restore(r, &out),
        })
        .map_err(Error::io("cannot start the restore thread"))?;
    let sent: Result<(), Error> = match &target {
        Target::Offline(db) => {
            let s = open(db)?;
            // The stream is about the chunk bytes plus a little: a fair total for the bar.
            let total = s.byte_totals().ok().map(|t| t.physical_bytes);
            let bar = Progress::new("backing up", Unit::Bytes, total);
            let r = s.backup(bar.writer(&mut w));
            drop(bar);
            close(s)?;
            r.map(|_| ()).map_err(Error::from)
        }
        Target::Remote {
            url,
            token,
            ca_cert,
        } => {
            let bar = Progress::new("downloading the backup", Unit::Bytes, None);
            Client::new(url, token, ca_cert.as_deref())?
                .download("/api/v1/admin/backup", &mut bar.writer(&mut w))
                .map(|_| ())
                .map_err(Error::from)
        }
    };
    // When the restore failed first (e.g. OUT cannot be created), the transfer only saw the
    // pipe close: the restore's error is the one to show.
    let restore_failed_first = w.reader_gone();
    match &sent {
        Ok(()) => {
            if let Err(e) = w.finish() {
                log::debug!("finishing the backup stream: {e}");
            }
        }
        // The restore stops on this; the transfer's own error is the one shown.
        Err(_) => w.fail("the backup transfer failed"),
    }
    let restored = restorer.join().map_err(|_| Error::RestorePanicked)?;
    let failed = |e: Error| Err(Error::Backup(Box::new(e)));
    let summary = match (sent, restored) {
        (Ok(()), Ok(summary)) => summary,
        (Err(_), Err(restore)) if restore_failed_first => return failed(restore.into()),
        (Err(e), _) => return failed(e),
        (Ok(()), Err(e)) => return failed(e.into()),
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "backup written to {}: {}, {}, {} bytes streamed in {secs:.2} s ({:.0} MB/s)",
        printable(&c.out.display().to_string()),
        count(summary.files, "file", "files"),
        count(summary.chunks, "chunk", "chunks"),
        summary.bytes,
        mb_s(summary.bytes, secs)
    );
    if c.no_verify {
        return Ok(());
    }
    let s = open(&c.out)?;
    let report = s.check_with(&Progress::new("verifying the backup", Unit::Items, None));
    close(s)?;
    let report = report?;
    if report.faults.is_empty() {
        println!("verified: the backup passes `shelf check`");
        Ok(())
    } else {
        for f in &report.faults {
            println!("FAULT {}", printable(f));
        }
        Err(Error::BackupFaults {
            path: c.out.clone(),
            faults: report.faults.len(),
        })
    }
}

/// A reader that delivers at most `rate` bytes per second on average.
struct Paced<R> {
    inner: R,
    rate: u64,
    started: Instant,
    done: u64,
}

impl<R> Paced<R> {
    fn new(inner: R, rate: u64) -> Paced<R> {
        Paced {
            inner,
            rate,
            started: Instant::now(),
            done: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Paced<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let due = std::time::Duration::from_secs_f64(self.done as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
        // Small steps keep the pace smooth (a tenth of a second's worth at most).
        let most = usize::try_from((self.rate / 10).max(4096))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..most])?;
        self.done += n as u64;
        Ok(n)
    }
}

/// `shelf check [--repair]`.
pub fn check(c: CheckCmd) -> Result<(), Error> {
    let target = args::target(c.db, c.server, c.token, c.ca_cert)?;
    let (report, repair) = match target {
        Target::Remote {
            url,
            token,
            ca_cert,
        } => {
            if c.repair {
                return Err(Error::Usage(
                    "--repair works on the database file: stop the server, then run \
                     `shelf check --repair --db PATH`"
                        .into(),
                ));
            }
            let bar = Progress::spinner("the server is checking");
            let v = Client::new(&url, &token, ca_cert.as_deref())?
                .patient()
                .call("GET", "/api/v1/admin/check", None)?;
            drop(bar);
            (v, None)
        }
        Target::Offline(db) => {
            let s = open(&db)?;
            let result = (|| {
                let started = Instant::now();
                let report = s.check_with(&Progress::new("checking", Unit::Items, None))?;
                let json = crate::api::check_json(&report, started.elapsed().as_secs_f64());
                if !c.repair || report.faults.is_empty() {
                    return Ok((json, None));
                }
                print_check(&json);
                let fixes = s.repair()?;
                let started = Instant::now();
                let after = s.check_with(&Progress::new("checking again", Unit::Items, None))?;
                let json = crate::api::check_json(&after, started.elapsed().as_secs_f64());
                Ok::<_, Error>((json, Some(fixes)))
            })();
            close(s)?;
            result?
        }
    };
    if let Some(fixes) = &repair {
        println!("repair:");
        for f in &fixes.fixed {
            println!("FIXED {}", printable(f));
        }
        for f in &fixes.unrepairable {
            println!("UNREPAIRABLE {}", printable(f));
        }
        println!("after repair:");
    }
    let faults = print_check(&report);
    if faults == 0 {
        println!("ok");
        Ok(())
    } else {
        Err(Error::Faults(faults))
    }
}

fn print_check(v: &Value) -> usize {
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let secs = v.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
    println!(
        "{}, {} bytes; {}, {} bytes; {}; {}; checked in {secs:.2} s ({:.0} MB/s)",
        count(n("files"), "file", "files"),
        n("logical_bytes"),
        count(n("chunks"), "chunk", "chunks"),
        n("physical_bytes"),
        count(n("pins"), "pin", "pins"),
        count(n("contents"), "distinct content", "distinct contents"),
        mb_s(n("physical_bytes"), secs)
    );
    let faults: Vec<&str> = v
        .get("faults")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for f in &faults {
        println!("FAULT {}", printable(f));
    }
    faults.len()
}

/// `shelf stats`.
pub fn stats(c: StatsCmd) -> Result<(), Error> {
    let v = match args::target(c.db, c.server, c.token, c.ca_cert)? {
        Target::Remote {
            url,
            token,
            ca_cert,
        } => Client::new(&url, &token, ca_cert.as_deref())?
            .patient()
            .call("GET", "/api/v1/admin/stats", None)?,
        Target::Offline(db) => {
            let s = open(&db)?;
            let stats = s.stats();
            let v = stats.map(|st| crate::api::stats_json(&st, &s));
            close(s)?;
            v?
        }
    };
    if c.json {
        println!("{v:#}");
        return Ok(());
    }
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    println!(
        "packages {}  versions {}  files {}",
        n("packages"),
        n("versions"),
        n("files")
    );
    println!(
        "logical  {:>14} bytes (every file counted)\nphysical {:>14} bytes in {} chunks ({} distinct bodies)\ndedup ratio {:.2}",
        n("logical_bytes"),
        n("physical_bytes"),
        n("chunks"),
        n("contents"),
        v.get("dedup_ratio").and_then(Value::as_f64).unwrap_or(1.0)
    );
    println!(
        "file     {:>14} bytes: {} in use, {} free (`shelf compact` returns it)\n\
         in use   {:>14} bytes of data, {} of indexes, {} slack in partly filled pages",
        n("file_bytes"),
        n("allocated_bytes"),
        n("free_bytes"),
        n("stored_bytes"),
        n("metadata_bytes"),
        n("fragmented_bytes")
    );
    if let Some(scrub) = v.get("scrub") {
        let passes = scrub
            .get("passes_completed")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let damaged = scrub
            .get("damaged_chunks_found")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        if passes > 0 || damaged > 0 {
            println!("scrub: {passes} passes, {damaged} damaged chunks found");
        }
    }
    let owners = v
        .get("owners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !owners.is_empty() {
        println!(
            "\n{:<30} {:>9} {:>9} {:>9} {:>16}",
            "OWNER", "PACKAGES", "VERSIONS", "FILES", "BYTES"
        );
        for o in owners {
            let m = |k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
            println!(
                "{:<30} {:>9} {:>9} {:>9} {:>16}",
                printable(o.get("owner").and_then(Value::as_str).unwrap_or("")),
                m("packages"),
                m("versions"),
                m("files"),
                m("logical_bytes")
            );
        }
    }
    Ok(())
}

/// `shelf compact`.
pub fn compact(c: CompactCmd) -> Result<(), Error> {
    let path = args::db_path(c.db);
    if !path.exists() {
        return Err(Error::NoDatabase(path));
    }
    let started = Instant::now();
    let bar = Progress::spinner("compacting");
    let compacted = store::compact(&path);
    drop(bar);
    let (before, after) = compacted.map_err(|e| match e.fault() {
        Some(store::Fault::Full) => Error::DiskFull {
            what: "compaction",
            path: path.clone(),
        },
        _ => Error::Store(e),
    })?;
    println!(
        "compacted {}: {before} → {after} bytes ({} returned to the disk) in {:.2} s",
        printable(&path.display().to_string()),
        before.saturating_sub(after),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
