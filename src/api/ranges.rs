//! `Range` requests as Go's `http.ServeContent` (which Gitea uses) answers them: one range is a
//! 206 with `Content-Range`, several are a `multipart/byteranges` body, an unsatisfiable set is
//! a 416, and ranges adding up to more than the file are ignored.

use crate::http::BodySource;
use crate::store::FileReader;
use std::io;

/// Most ranges one request may ask for; beyond this the whole file is sent (RFC 9110 §14.2
/// lets a server ignore a Range it considers abusive).
const MAX_RANGES: usize = 100;

#[derive(Debug, PartialEq, Eq)]
pub enum RangeSpec {
    Whole,
    /// Half-open byte ranges `start..end`, in the order asked, at least one.
    Parts(Vec<(u64, u64)>),
    Unsatisfiable,
}

/// Parses a `Range` header against a file of `size` bytes (size > 0). Units other than `bytes`
/// are ignored.
pub fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Whole;
    };
    let digits = |s: &str| {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let mut parts = Vec::new();
    let mut any_valid = false;
    for ra in spec.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let Some((a, b)) = ra.split_once('-') else {
            return RangeSpec::Unsatisfiable;
        };
        let (a, b) = (a.trim(), b.trim());
        if a.is_empty() {
            // suffix: the last N bytes
            let Some(n) = digits(b) else {
                return RangeSpec::Unsatisfiable;
            };
            any_valid = true;
            if n == 0 {
                continue; // an empty suffix selects nothing
            }
            parts.push((size - n.min(size), size));
            continue;
        }
        let Some(start) = digits(a) else {
            return RangeSpec::Unsatisfiable;
        };
        let end = if b.is_empty() {
            size
        } else {
            match digits(b) {
                Some(last) if last >= start => last.min(size - 1) + 1,
                _ => return RangeSpec::Unsatisfiable,
            }
        };
        any_valid = true;
        if start >= size {
            continue; // no overlap: skipped, 416 only if nothing else is satisfiable
        }
        parts.push((start, end));
    }
    if parts.is_empty() {
        // Nothing satisfiable is a 416; no range at all (`bytes=`) is the whole file, as Go.
        return if any_valid {
            RangeSpec::Unsatisfiable
        } else {
            RangeSpec::Whole
        };
    }
    let sum: u64 = parts.iter().map(|(s, e)| e - s).sum();
    if sum > size || parts.len() > MAX_RANGES {
        return RangeSpec::Whole;
    }
    RangeSpec::Parts(parts)
}

/// A `multipart/byteranges` body laid out as Go's `mime/multipart` writer does.
pub struct MultiRange {
    reader: FileReader,
    /// For each part: its header (with the delimiter before it) and its byte range.
    parts: Vec<(Vec<u8>, u64, u64)>,
    closing: Vec<u8>,
    /// Index of the next part to start; `in_part` when its bytes are being sent.
    next: usize,
    in_part: bool,
    closed: bool,
}

impl MultiRange {
    pub fn new(reader: FileReader, ranges: &[(u64, u64)], boundary: &str) -> MultiRange {
        let size = reader.size();
        let parts = ranges
            .iter()
            .enumerate()
            .map(|(i, &(start, end))| {
                let lead = if i == 0 { "" } else { "\r\n" };
                let head = format!(
                    "{lead}--{boundary}\r\nContent-Range: bytes {start}-{}/{size}\r\nContent-Type: application/octet-stream\r\n\r\n",
                    end - 1
                );
                (head.into_bytes(), start, end)
            })
            .collect();
        MultiRange {
            reader,
            parts,
            closing: format!("\r\n--{boundary}--\r\n").into_bytes(),
            next: 0,
            in_part: false,
            closed: false,
        }
    }

    /// The exact length of the whole body.
    pub fn len(&self) -> u64 {
        self.parts
            .iter()
            .map(|(h, s, e)| h.len() as u64 + (e - s))
            .sum::<u64>()
            + self.closing.len() as u64
    }
}

impl BodySource for MultiRange {
    fn next_slice(&mut self) -> io::Result<&[u8]> {
        loop {
            if self.in_part {
                if !self.reader.is_exhausted() {
                    return self.reader.next_slice();
                }
                self.in_part = false;
                continue;
            }
            if self.next < self.parts.len() {
                let (_, start, end) = self.parts[self.next];
                self.reader.set_range(start, end);
                self.next += 1;
                self.in_part = true;
                return Ok(&self.parts[self.next - 1].0);
            }
            if !self.closed {
                self.closed = true;
                return Ok(&self.closing);
            }
            return Ok(&[]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeSpec::*;

    #[test]
    fn single_ranges_as_go() {
        assert_eq!(parse_range("bytes=0-9", 100), Parts(vec![(0, 10)]));
        assert_eq!(parse_range("bytes=90-", 100), Parts(vec![(90, 100)]));
        assert_eq!(parse_range("bytes=-10", 100), Parts(vec![(90, 100)]));
        assert_eq!(parse_range("bytes=-1000", 100), Parts(vec![(0, 100)]));
        assert_eq!(parse_range("bytes=50-1000", 100), Parts(vec![(50, 100)]));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=x-1", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=", 100), Whole);
        assert_eq!(parse_range("items=0-1", 100), Whole);
    }

    #[test]
    fn several_ranges() {
        assert_eq!(
            parse_range("bytes=0-1, 5-6,,-2", 100),
            Parts(vec![(0, 2), (5, 7), (98, 100)])
        );
        // one unsatisfiable part among satisfiable ones is dropped
        assert_eq!(parse_range("bytes=0-1,200-300", 100), Parts(vec![(0, 2)]));
        // more than the file in total: the whole file
        assert_eq!(parse_range("bytes=0-99,0-99", 100), Whole);
        // one malformed part: 416
        assert_eq!(parse_range("bytes=0-1,a", 100), Unsatisfiable);
    }
}
