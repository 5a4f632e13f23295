//! Progress of long commands (backup, export, import, check, compact) on stderr: bytes or
//! items done, the rate and the time left, drawn only when stderr is a terminal. Scripts and
//! logs (stderr a file or a pipe) see nothing of it, only each command's final summary on
//! stdout, as before. The bar is cleared when it ends, so the summary stands alone.

use crate::store::Steps;
pub use crate::store::Unit;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{self, IsTerminal, Read, Write};
use std::time::Duration;

/// One bar (or spinner); hidden when stderr is not a terminal.
pub struct Progress {
    bar: ProgressBar,
}

fn visible() -> bool {
    io::stderr().is_terminal()
}

fn style(unit: Unit, total: Option<u64>) -> ProgressStyle {
    let template = match (unit, total) {
        (Unit::Bytes, Some(_)) => {
            "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left"
        }
        (Unit::Bytes, None) => "{spinner} {msg} {bytes} {binary_bytes_per_sec}, {elapsed}",
        (Unit::Items, Some(_)) => "{msg} {wide_bar} {human_pos}/{human_len} {per_sec}, {eta} left",
        (Unit::Items, None) => "{spinner} {msg} {human_pos}, {elapsed}",
    };
    // The templates are constants; a bad one is a bug, shown as the plain default.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Progress {
    /// A bar for `what`, counting `unit`s up to `total` (`None`: unknown, a counter).
    pub fn new(what: &str, unit: Unit, total: Option<u64>) -> Progress {
        let bar = ProgressBar::with_draw_target(total, target());
        bar.set_style(style(unit, total));
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// A spinner with the time spent, for work that reports no steps (compact, a server's
    /// check).
    pub fn spinner(what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(None, target());
        let style = ProgressStyle::with_template("{spinner} {msg}, {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress { bar }
    }

    /// The next phase of the same work: a new message, total and unit, counted from zero.
    pub fn phase(&self, what: &str, unit: Unit, total: Option<u64>) {
        // The count, the total and the message first, the style last: a draw in between
        // must not show the last phase's count in this phase's unit.
        self.bar.set_position(0);
        match total {
            Some(n) => self.bar.set_length(n),
            None => self.bar.unset_length(),
        }
        self.bar.reset_eta();
        self.bar.set_message(what.to_string());
        self.bar.set_style(style(unit, total));
    }

    pub fn add(&self, n: u64) {
        self.bar.inc(n);
    }

    /// `w`, counting what goes through it on this bar.
    pub fn writer<W: Write>(&self, w: W) -> Counted<W> {
        Counted {
            inner: w,
            bar: self.bar.clone(),
        }
    }

    /// `r`, counting what comes through it on this bar.
    pub fn reader<R: Read>(&self, r: R) -> Counted<R> {
        Counted {
            inner: r,
            bar: self.bar.clone(),
        }
    }
}

/// A store operation's steps, drawn on this bar.
impl Steps for Progress {
    fn phase(&self, what: &'static str, unit: Unit, total: u64) {
        Progress::phase(self, what, unit, Some(total));
    }

    fn step(&self, n: u64) {
        self.add(n);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn target() -> ProgressDrawTarget {
    if visible() {
        ProgressDrawTarget::stderr_with_hz(5)
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// A reader or writer that counts its bytes on a bar.
pub struct Counted<T> {
    inner: T,
    bar: ProgressBar,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_streams_pass_every_byte_and_count_it() {
        let p = Progress::new("copying", Unit::Bytes, Some(10));
        let mut out = Vec::new();
        let mut w = p.writer(&mut out);
        w.write_all(b"hello").expect("write");
        let mut r = p.reader(&b"world"[..]);
        let mut back = Vec::new();
        r.read_to_end(&mut back).expect("read");
        drop(w);
        assert_eq!(out, b"hello");
        assert_eq!(back, b"world");
        assert_eq!(p.bar.position(), 10);
        p.phase("next", Unit::Items, None);
        p.add(3);
        assert_eq!(p.bar.position(), 3);
    }
}
