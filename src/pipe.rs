//! A bounded in-process pipe of byte blocks between two threads (a backup producer and the
//! connection or file that consumes it). The writer learns when the reader went away; the
//! reader learns when the writer failed, so a stream cut short is never taken as complete.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// What the writer sees once the reader went away (inside an `io::Error` of kind
/// `BrokenPipe`).
#[derive(Debug)]
pub struct ReaderGone;

impl std::fmt::Display for ReaderGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the reading end went away")
    }
}

impl std::error::Error for ReaderGone {}

/// Size of the blocks that cross the pipe.
const BLOCK: usize = 1 << 20;

/// A pipe holding at most `blocks` blocks of 1 MiB in flight.
pub fn pipe(blocks: usize) -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(blocks);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(BLOCK),
            reader_gone: false,
        },
        PipeReader {
            rx,
            block: Vec::new(),
            at: 0,
        },
    )
}

pub struct PipeWriter {
    tx: SyncSender<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    reader_gone: bool,
}

impl PipeWriter {
    /// Ends the stream with an error: the reader's next read fails with `error` (an
    /// `io::Error` of kind `Other` around it).
    pub fn fail(mut self, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) {
        self.buf.clear();
        let _ = self.tx.send(Err(io::Error::other(error)));
    }

    /// Whether a write failed because the reader went away (then the reader's own error,
    /// if it has one, says why the stream stopped).
    pub fn reader_gone(&self) -> bool {
        self.reader_gone
    }

    /// Ends the stream cleanly, with the last bytes flushed. (Dropping the writer also ends
    /// it, losing unflushed bytes: the reader's format must detect a short stream.)
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()
    }
}

impl Write for PipeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BLOCK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let block = std::mem::replace(&mut self.buf, Vec::with_capacity(BLOCK));
        self.tx.send(Ok(block)).map_err(|_| {
            self.reader_gone = true;
            io::Error::new(io::ErrorKind::BrokenPipe, ReaderGone)
        })
    }
}

pub struct PipeReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    block: Vec<u8>,
    at: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            match self.rx.recv() {
                Ok(Ok(block)) => {
                    self.block = block;
                    self.at = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_cross_in_order_and_errors_reach_the_reader() {
        let (mut w, mut r) = pipe(2);
        let t = std::thread::spawn(move || {
            for i in 0..3000u32 {
                w.write_all(&i.to_le_bytes().repeat(500)).expect("write");
            }
            w.finish().expect("finish");
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).expect("read");
        t.join().expect("join");
        assert_eq!(got.len(), 3000 * 2000);
        assert_eq!(&got[got.len() - 4..], &2999u32.to_le_bytes());

        let (mut w, mut r) = pipe(2);
        w.write_all(b"partial").expect("write");
        w.flush().expect("flush");
        w.fail("boom");
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).expect_err("failed");
        assert_eq!(e.to_string(), "boom");

        let (mut w, r) = pipe(1);
        drop(r);
        assert!(!w.reader_gone());
        let e = w.write_all(&vec![0u8; 3 << 20]).expect_err("reader gone");
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(e.to_string(), "the reading end went away");
        assert!(w.reader_gone());
    }
}
