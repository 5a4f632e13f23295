//! Fixed-size chunking of a byte stream, with a SHA-256 per chunk and one for the whole stream.
//!
//! Owns nothing but its reader and one chunk buffer, so memory stays at one chunk however long the
//! stream is. Knows nothing about where chunks go (that is `store`).

use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, Read};

/// Bytes per chunk: 1 MiB − 4 KiB. redb rounds a large value's page up to a power of two, so an
/// exact 1 MiB chunk would cost 2× disk; this size measured 1.00× (DESIGN.md §4). Every chunk of a
/// file but the last is exactly this long, which makes locating a byte offset O(1).
pub const CHUNK_SIZE: usize = 1_044_480;

/// The chunk buffer starts this small and grows to `CHUNK_SIZE` as data arrives.
const FIRST_BUFFER: usize = 64 * 1024;

/// The SHA-256 of a chunk's bytes: its key in the content-addressed chunk table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    pub fn of(data: &[u8]) -> ChunkId {
        ChunkId(Sha256::digest(data).into())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", hex::encode(&self.0[..8]))
    }
}

/// Splits a reader into `CHUNK_SIZE` pieces. A read error is returned as is and ends the stream:
/// a truncated body never looks like a complete one.
pub struct Chunker<R> {
    reader: R,
    buf: Vec<u8>,
    file_hash: Sha256,
    total: u64,
    at_end: bool,
}

/// One chunk, borrowed from the chunker's buffer until the next call.
pub struct Chunk<'a> {
    pub id: ChunkId,
    pub data: &'a [u8],
    /// True when the stream ended inside (or right after) this chunk.
    pub is_last: bool,
}

impl<R: Read> Chunker<R> {
    pub fn new(reader: R) -> Chunker<R> {
        Chunker {
            reader,
            buf: Vec::new(),
            file_hash: Sha256::new(),
            total: 0,
            at_end: false,
        }
    }

    /// The next chunk, or `None` once the stream is exhausted. Fills the whole buffer before
    /// returning, so only the final chunk can be shorter than `CHUNK_SIZE`.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        if self.at_end {
            return Ok(None);
        }
        let mut filled = 0;
        while filled < CHUNK_SIZE {
            if filled == self.buf.len() {
                // Grow on demand: a 4 KiB upload must not allocate and zero a whole chunk.
                let grown = (self.buf.len() * 4).clamp(FIRST_BUFFER, CHUNK_SIZE);
                self.buf.resize(grown, 0);
            }
            match self.reader.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.at_end = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.at_end = true;
                    return Err(e);
                }
            }
        }
        if filled == 0 {
            return Ok(None);
        }
        let data = &self.buf[..filled];
        // The chunk hash and the file hash are independent: compute them on two cores at once,
        // which keeps hashing off the upload's critical path for large chunks.
        let file_hash = &mut self.file_hash;
        let id = if filled >= 256 * 1024 {
            std::thread::scope(|s| {
                let chunk_hash = s.spawn(|| ChunkId::of(data));
                file_hash.update(data);
                chunk_hash.join()
            })
            .map_err(|_| io::Error::other("chunk hashing thread panicked"))?
        } else {
            file_hash.update(data);
            ChunkId::of(data)
        };
        self.total += filled as u64;
        Ok(Some(Chunk {
            id,
            data,
            is_last: self.at_end,
        }))
    }

    /// Total size and SHA-256 of everything read so far (the whole stream once `next_chunk`
    /// returned `None` or a chunk with `is_last`).
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.total, self.file_hash.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(data: &[u8]) -> (Vec<(ChunkId, usize, bool)>, u64, [u8; 32]) {
        let mut c = Chunker::new(data);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().expect("in-memory read") {
            out.push((ch.id, ch.data.len(), ch.is_last));
        }
        let (n, h) = c.finish();
        (out, n, h)
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        let (chunks, n, h) = collect(&[]);
        assert!(chunks.is_empty());
        assert_eq!(n, 0);
        assert_eq!(
            hex::encode(h),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn splits_at_chunk_size_and_hashes_whole_stream() {
        let data: Vec<u8> = (0..CHUNK_SIZE * 2 + 10).map(|i| (i % 251) as u8).collect();
        let (chunks, n, h) = collect(&data);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].1, CHUNK_SIZE);
        assert_eq!(chunks[1].1, CHUNK_SIZE);
        assert_eq!(chunks[2].1, 10);
        assert!(chunks[2].2 && !chunks[0].2);
        assert_eq!(chunks[0].0, ChunkId::of(&data[..CHUNK_SIZE]));
        assert_eq!(n, data.len() as u64);
        assert_eq!(h, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    #[test]
    fn exact_multiple_ends_with_none() {
        let data = vec![7u8; CHUNK_SIZE];
        let (chunks, n, _) = collect(&data);
        assert_eq!(chunks.len(), 1);
        assert_eq!(n, CHUNK_SIZE as u64);
    }

    struct FailAfter(usize);
    impl Read for FailAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "cut"));
            }
            let n = buf.len().min(self.0);
            self.0 -= n;
            Ok(n)
        }
    }

    #[test]
    fn read_error_is_not_a_short_chunk() {
        let mut c = Chunker::new(FailAfter(100));
        let err = c.next_chunk().err().expect("truncation must be an error");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(c.next_chunk().expect("ended").is_none());
    }
}
