//! A bounded in-process pipe of byte blocks between two threads (a backup producer and the
//! connection or file that consumes it). The writer learns when the reader went away; the
//! reader learns when the writer failed, so a stream cut short is never taken as complete.

use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

/// Size of the blocks that cross the pipe.
const BLOCK: usize = 1 << 20;

/// A pipe holding at most `blocks` blocks of 1 MiB in flight.
pub fn pipe(blocks: usize) -> (PipeWriter, PipeReader) {
    let (tx, rx) = sync_channel(blocks);
    (
        PipeWriter {
            tx,
            buf: Vec::with_capacity(BLOCK),
        },
        PipeReader {
            rx,
            block: Vec::new(),
            at: 0,
        },
    )
}

pub struct PipeWriter {
    tx: SyncSender<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
}

impl PipeWriter {
    /// Ends the stream with an error: the reader's next read fails with `msg`.
    pub fn fail(mut self, msg: String) {
        self.buf.clear();
        let _ = self.tx.send(Err(msg));
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
        self.tx
            .send(Ok(block))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reading end went away"))
    }
}

pub struct PipeReader {
    rx: Receiver<Result<Vec<u8>, String>>,
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
                Ok(Err(e)) => return Err(io::Error::other(e)),
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
        w.fail("boom".into());
        let mut got = Vec::new();
        assert!(r.read_to_end(&mut got).is_err());

        let (mut w, r) = pipe(1);
        drop(r);
        assert!(w.write_all(&vec![0u8; 3 << 20]).is_err(), "reader gone");
    }
}
