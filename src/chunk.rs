//! Fixed-size chunking of a byte stream, with a SHA-256 per chunk and one for the whole stream.
//!
//! Owns nothing but its reader and one chunk buffer, so memory stays at one chunk however long the
//! stream is. Knows nothing about where chunks go (that is `store`).

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
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

/// Which digests beyond SHA-256 to compute while reading (only when a client asked to have
/// them verified: SHA-512 alone runs at ~0.3 GB/s, so they stay off the common path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub md5: bool,
    pub sha1: bool,
    pub sha512: bool,
}

impl Want {
    pub fn any(&self) -> bool {
        self.md5 || self.sha1 || self.sha512
    }
}

/// A digest a client sent that the body does not have: the upload is refused (400).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DigestMismatch {
    /// `sha256`, `sha1`, `md5` or `sha512`.
    pub algorithm: &'static str,
    pub expected: Vec<u8>,
    pub got: Vec<u8>,
}

impl fmt::Display for DigestMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checksum mismatch: the request says {} {}, the body has {}",
            self.algorithm,
            hex::encode(&self.expected),
            hex::encode(&self.got)
        )
    }
}

/// The digests of a whole stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamDigests {
    pub size: u64,
    pub sha256: [u8; 32],
    pub md5: Option<[u8; 16]>,
    pub sha1: Option<[u8; 20]>,
    pub sha512: Option<Vec<u8>>,
}

/// The optional hashers of `Want`.
#[derive(Default)]
pub struct ExtraHashers {
    md5: Option<Md5>,
    sha1: Option<Sha1>,
    sha512: Option<Sha512>,
}

impl ExtraHashers {
    pub fn new(want: Want) -> ExtraHashers {
        ExtraHashers {
            md5: want.md5.then(Md5::new),
            sha1: want.sha1.then(Sha1::new),
            sha512: want.sha512.then(Sha512::new),
        }
    }

    fn is_empty(&self) -> bool {
        self.md5.is_none() && self.sha1.is_none() && self.sha512.is_none()
    }

    pub fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.md5 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    /// Fills the digests that were computed into `out`.
    pub fn finish_into(self, out: &mut StreamDigests) {
        out.md5 = self.md5.map(|h| h.finalize().into());
        out.sha1 = self.sha1.map(|h| h.finalize().into());
        out.sha512 = self.sha512.map(|h| h.finalize().to_vec());
    }
}

/// Splits a reader into `CHUNK_SIZE` pieces. A read error is returned as is and ends the stream:
/// a truncated body never looks like a complete one.
pub struct Chunker<R> {
    reader: R,
    buf: Vec<u8>,
    file_hash: Sha256,
    extra: ExtraHashers,
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
        Chunker::with_digests(reader, Want::default())
    }

    /// A chunker that also computes the digests of `want` over the whole stream.
    pub fn with_digests(reader: R, want: Want) -> Chunker<R> {
        Chunker {
            reader,
            buf: Vec::new(),
            file_hash: Sha256::new(),
            extra: ExtraHashers::new(want),
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
        // The chunk hash, the file hash and any extra digests are independent: compute them on
        // separate cores, which keeps hashing off the upload's critical path for large chunks.
        let file_hash = &mut self.file_hash;
        let extra = &mut self.extra;
        let id = if filled >= 256 * 1024 {
            std::thread::scope(|s| {
                let chunk_hash = s.spawn(|| ChunkId::of(data));
                let extras = (!extra.is_empty()).then(|| s.spawn(|| extra.update(data)));
                file_hash.update(data);
                if let Some(h) = extras {
                    h.join().map_err(|_| ())?;
                }
                chunk_hash.join().map_err(|_| ())
            })
            .map_err(|()| io::Error::other("a hashing thread panicked"))?
        } else {
            file_hash.update(data);
            extra.update(data);
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
    pub fn finish(self) -> StreamDigests {
        let mut out = StreamDigests {
            size: self.total,
            sha256: self.file_hash.finalize().into(),
            ..StreamDigests::default()
        };
        self.extra.finish_into(&mut out);
        out
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
        let d = c.finish();
        (out, d.size, d.sha256)
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

    #[test]
    fn extra_digests_when_wanted() {
        let data = vec![3u8; CHUNK_SIZE + 7];
        let want = Want {
            md5: true,
            sha1: true,
            sha512: true,
        };
        let mut c = Chunker::with_digests(&data[..], want);
        while c.next_chunk().expect("read").is_some() {}
        let d = c.finish();
        assert_eq!(d.md5, Some(<[u8; 16]>::from(Md5::digest(&data))));
        assert_eq!(d.sha1, Some(<[u8; 20]>::from(Sha1::digest(&data))));
        assert_eq!(d.sha512, Some(Sha512::digest(&data).to_vec()));
        let mut plain = Chunker::new(&data[..]);
        while plain.next_chunk().expect("read").is_some() {}
        assert_eq!(plain.finish().md5, None);
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
