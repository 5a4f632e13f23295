//! `shelf export`, `shelf manifest` and `shelf import`: offline on the database file, or on a
//! running server through the admin API (`--server` + a site admin's token), streaming both
//! ways: a bundle is never held in memory.

use super::{open_store, Open};
use crate::bundle::{ExportRequest, ImportReport, Manifest};
use crate::cli::args::{self, ExportCmd, ImportCmd, ManifestCmd, Target};
use crate::cli::client::{Client, Streamed};
use crate::cli::progress::{Progress, Unit};
use crate::cli::terminal::{count, printable};
use crate::cli::{Answer, Error, Missing};
use crate::names::encode_component;
use crate::store::Store;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Socket timeout for bundle transfers: an import answers after its last publishing commit.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(3600);

fn close(store: Arc<Store>) -> Result<(), Error> {
    Ok(store.close()?)
}

fn client(url: &str, token: &str, ca_cert: Option<&Path>) -> Result<Client, Error> {
    Ok(Client::new(url, token, ca_cert)?)
}

/// `FILE.partial`, renamed to `FILE` once complete: a bundle file that exists is whole.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}

/// Writes `out` through `f`, atomically (temp file, fsync, rename); removes the temp on error.
fn write_atomically(
    out: &Path,
    f: impl FnOnce(&mut BufWriter<&File>) -> Result<u64, Error>,
) -> Result<u64, Error> {
    let tmp = partial_path(out);
    let file = File::create(&tmp).map_err(Error::io(format!("cannot create {}", tmp.display())))?;
    let result = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, &file);
        let n = f(&mut w)?;
        w.flush()
            .map_err(Error::io(format!("writing {}", tmp.display())))?;
        drop(w);
        file.sync_all()
            .map_err(Error::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, out).map_err(Error::io(format!(
            "renaming {} to {}",
            tmp.display(),
            out.display()
        )))?;
        Ok(n)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_against(path: &Path) -> Result<Manifest, Error> {
    let file = File::open(path).map_err(Error::io(format!("cannot open {}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(crate::bundle::MAX_MANIFEST + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(format!("reading {}", path.display())))?;
    if bytes.len() as u64 > crate::bundle::MAX_MANIFEST {
        return Err(Error::ManifestTooLarge(path.to_path_buf()));
    }
    crate::bundle::parse_manifest(&bytes).map_err(|source| Error::Manifest {
        path: path.to_path_buf(),
        source,
    })
}

/// Copies exactly the answer's announced length (a short answer is an error, not a bundle).
fn copy_body<W: Write + ?Sized>(mut reply: Streamed, w: &mut W) -> Result<u64, Error> {
    let n = io::copy(&mut reply.body, w).map_err(Error::io("receiving"))?;
    match reply.length {
        Some(len) if len != n => Err(Error::Answer(Answer::Short { got: n, len })),
        _ => Ok(n),
    }
}

fn rate(bytes: u64, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64();
    format!(
        "{secs:.1} s, {:.0} MB/s",
        bytes as f64 / 1e6 / secs.max(1e-9)
    )
}

pub fn export(cmd: ExportCmd) -> Result<(), Error> {
    if cmd.version.is_some() && cmd.package.is_none() {
        return Err(Error::Usage("--version needs --package".into()));
    }
    if let Some(s) = &cmd.since {
        crate::bundle::parse_since(s).map_err(Error::Since)?;
    }
    let against = cmd.against.as_deref().map(read_against).transpose()?;
    let target = args::target(cmd.db, cmd.server, cmd.token, cmd.ca_cert)?;
    let started = Instant::now();
    let (files, bytes, left_out, written) = match target {
        Target::Offline(path) => {
            let store = open_store(&path, Open::Existing)?;
            let result = (|| -> Result<(u64, u64, u64, u64), Error> {
                if store.get_user(&cmd.owner)?.is_none() {
                    return Err(Missing::ExportOwner(cmd.owner.clone()).into());
                }
                let req = ExportRequest {
                    owner: cmd.owner.clone(),
                    package: cmd.package.clone(),
                    version: cmd.version.clone(),
                    since: cmd.since.clone(),
                    against,
                };
                let source = crate::bundle::source_name(&path);
                let export = crate::bundle::Export::prepare(&store, &req, &source)?;
                let m = &export.manifest;
                let (files, bytes, left_out) = (m.total_files, m.total_bytes, m.left_out);
                let mut stream = export.into_stream();
                let bar = Progress::new("exporting", Unit::Bytes, Some(stream.len()));
                let written = write_atomically(&cmd.output, |w| {
                    stream
                        .write_to(&mut bar.writer(w))
                        .map_err(Error::io("writing the bundle"))
                })?;
                Ok((files, bytes, left_out, written))
            })();
            let closed = close(store);
            let r = result?;
            closed?;
            r
        }
        Target::Remote {
            url,
            token,
            ca_cert,
        } => {
            let c = client(&url, &token, ca_cert.as_deref())?;
            let body = json!({
                "owner": cmd.owner,
                "package": cmd.package,
                "version": cmd.version,
                "since": cmd.since,
                "against": against,
            });
            let payload = serde_json::to_vec(&body)?;
            let reply = c.stream(
                "POST",
                "/api/v1/admin/export",
                "application/json",
                Some((&mut &payload[..], payload.len() as u64)),
                TRANSFER_TIMEOUT,
            )?;
            if reply.status != 200 {
                return Err(reply.error().into());
            }
            let num = |h: &str| {
                reply
                    .header(h)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let (files, bytes, left_out) = (
                num("x-shelf-files"),
                num("x-shelf-bytes"),
                num("x-shelf-left-out"),
            );
            let bar = Progress::new("downloading the bundle", Unit::Bytes, reply.length);
            let written = write_atomically(&cmd.output, |w| copy_body(reply, &mut bar.writer(w)))?;
            (files, bytes, left_out, written)
        }
    };
    println!(
        "exported {files} files ({bytes} bytes) of {} to {} ({written} bytes, {})",
        printable(&cmd.owner),
        printable(&cmd.output.display().to_string()),
        rate(written, started)
    );
    if cmd.against.is_some() {
        println!("{left_out} files left out: the other side already has them");
    }
    Ok(())
}

pub fn manifest(cmd: ManifestCmd) -> Result<(), Error> {
    let target = args::target(cmd.db, cmd.server, cmd.token, cmd.ca_cert)?;
    let emit = |f: &mut dyn FnMut(&mut dyn Write) -> Result<u64, Error>| -> Result<(), Error> {
        match &cmd.output {
            Some(out) => write_atomically(out, |w| f(w)).map(|_| ()),
            None => {
                let stdout = io::stdout();
                let mut lock = stdout.lock();
                f(&mut lock)?;
                lock.flush().map_err(Error::Stdout)
            }
        }
    };
    match target {
        Target::Offline(path) => {
            let store = open_store(&path, Open::Existing)?;
            let source = crate::bundle::source_name(&path);
            let missing = match &cmd.owner {
                Some(o) => store.get_user(o).map(|u| u.is_none()),
                None => Ok(false),
            };
            let result = crate::bundle::holdings(&store, cmd.owner.as_deref(), &source);
            let closed = close(store);
            let m = result?;
            closed?;
            if missing? {
                note_owner_missing(cmd.owner.as_deref());
            }
            let bytes = serde_json::to_vec_pretty(&m)?;
            emit(&mut |w| {
                w.write_all(&bytes)
                    .and_then(|()| w.write_all(b"\n"))
                    .map_err(Error::io("writing the manifest"))?;
                Ok(bytes.len() as u64)
            })
        }
        Target::Remote {
            url,
            token,
            ca_cert,
        } => {
            let c = client(&url, &token, ca_cert.as_deref())?;
            let path = match &cmd.owner {
                Some(o) => format!("/api/v1/admin/manifest?owner={}", encode_component(o)),
                None => "/api/v1/admin/manifest".to_string(),
            };
            let reply = c.stream("GET", &path, "application/json", None, TRANSFER_TIMEOUT)?;
            if reply.status != 200 {
                return Err(reply.error().into());
            }
            if reply.header(crate::api::OWNER_MISSING) == Some("true") {
                note_owner_missing(cmd.owner.as_deref());
            }
            let mut reply = Some(reply);
            emit(&mut |w| match reply.take() {
                Some(r) => copy_body(r, w),
                None => Ok(0),
            })
        }
    }
}

/// On stderr: why the manifest is empty (the owner is not on this side yet).
fn note_owner_missing(owner: Option<&str>) {
    if let Some(o) = owner {
        eprintln!(
            "note: owner {} is not here yet: the manifest is empty, so an export against it \
             carries everything",
            printable(o)
        );
    }
}

fn print_report(r: &ImportReport) -> Result<(), Error> {
    println!(
        "{} in the bundle: {} imported ({} bytes), {} already present, {}",
        count(r.files, "file", "files"),
        r.imported,
        r.imported_bytes,
        r.already_present,
        count(r.conflicts.len() as u64, "conflict", "conflicts")
    );
    for c in &r.conflicts {
        println!(
            "CONFLICT {}: exists here with other bytes (sha256 {} here, {} in the bundle); left untouched",
            printable(&c.path),
            printable(&c.existing_sha256),
            printable(&c.bundle_sha256)
        );
    }
    for v in &r.vanished {
        println!(
            "SKIPPED {}: deleted here while the bundle was read; import again to add it",
            printable(v)
        );
    }
    if r.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::Conflicts(r.conflicts.len()))
    }
}

pub fn import(cmd: ImportCmd) -> Result<(), Error> {
    let target = args::target(cmd.db, cmd.server, cmd.token, cmd.ca_cert)?;
    let file =
        File::open(&cmd.file).map_err(Error::io(format!("cannot open {}", cmd.file.display())))?;
    let len = file
        .metadata()
        .map_err(Error::io(cmd.file.display().to_string()))?
        .len();
    let started = Instant::now();
    let report = match target {
        Target::Offline(path) => {
            let store = open_store(&path, Open::OrCreate)?;
            let bar = Progress::new("importing", Unit::Bytes, Some(len));
            let reader = BufReader::with_capacity(1 << 20, bar.reader(file));
            let result = crate::bundle::import(
                &store,
                reader,
                crate::bundle::Importer {
                    actor: "cli",
                    addr: "local",
                    background_digests: false,
                },
            );
            let closed = close(store);
            let r = result?;
            closed?;
            r
        }
        Target::Remote {
            url,
            token,
            ca_cert,
        } => {
            let c = client(&url, &token, ca_cert.as_deref())?;
            let what = "uploading the bundle (then the server verifies and publishes it)";
            let bar = Progress::new(what, Unit::Bytes, Some(len));
            let mut file = bar.reader(file);
            // The server answers once the bundle is verified and published.
            let reply = c.stream(
                "PUT",
                "/api/v1/admin/import",
                "application/x-tar",
                Some((&mut file, len)),
                TRANSFER_TIMEOUT,
            );
            drop(bar);
            let reply = reply?;
            if reply.status != 200 {
                return Err(reply.error().into());
            }
            let mut body = Vec::new();
            let mut reply = reply;
            (&mut reply.body)
                .take(256 << 20)
                .read_to_end(&mut body)
                .map_err(Error::io("receiving the report"))?;
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| serde_json::from_value::<ImportReport>(v).ok())
                .ok_or(Error::Answer(Answer::BadReport))?
        }
    };
    println!(
        "read {} ({len} bytes, {})",
        printable(&cmd.file.display().to_string()),
        rate(len, started)
    );
    print_report(&report)
}
