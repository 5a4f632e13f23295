//! Free space on the disk that holds the database, for the reserve `Store::ensure_room` keeps.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How old the estimate of the live chunk bytes may be when the disk is low (a `contents` scan
/// at most this often, and only then; short, so that space freed by deletes counts soon).
pub(crate) const ESTIMATE_AGE: Duration = Duration::from_secs(1);
/// What the file holds besides chunk bytes, for the estimate: this, plus 1/32 of the chunk
/// bytes (indexes, records, partly filled pages).
pub(crate) const METADATA_MARGIN: u64 = 1 << 20;

/// The pieces of the estimate of the free pages inside the database file.
#[derive(Default)]
pub(crate) struct Room {
    /// Live chunk bytes, and when they were counted.
    pub live: Mutex<Option<(u64, Instant)>>,
    /// Bytes let through on the strength of the file's free pages since the count.
    pub written: AtomicU64,
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path` (its
/// directory when the file does not exist yet).
pub(crate) fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent() {
        Some(p) if !path.exists() && !p.as_os_str().is_empty() => p,
        Some(_) if !path.exists() => Path::new("."),
        _ => path,
    };
    let mut c = dir.as_os_str().as_bytes().to_vec();
    c.push(0);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid statvfs to fill.
    let rc = unsafe { libc::statvfs(c.as_ptr().cast(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_temp_directory_has_some_free_space() {
        let free = super::free_bytes(&std::env::temp_dir().join("no-such-file")).expect("statvfs");
        assert!(free > 0);
    }
}
