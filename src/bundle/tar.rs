//! The plain tar shelf writes and reads: POSIX ustar headers, with a PAX extended header (`path`,
//! `size`) in front of an entry whose path is not short ASCII or whose size does not fit the
//! octal field. Small enough to own (no dependency), and the reader accepts only what a bundle
//! needs — regular files, PAX and GNU long-name headers — treating every byte as hostile:
//! checksums are verified, sizes bounded, names must be UTF-8.

use std::io::{self, Read};

pub const BLOCK: usize = 512;
/// Largest PAX or GNU long-name header data accepted.
const MAX_EXTENSION: u64 = 1 << 20;
/// Largest size the octal field holds (11 digits).
const MAX_OCTAL_SIZE: u64 = 0o77777777777;

/// Bytes of padding after `size` bytes of data.
pub fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

fn needs_pax(path: &str, size: u64) -> bool {
    path.len() > 100 || !path.is_ascii() || path.bytes().any(|b| b == 0) || size > MAX_OCTAL_SIZE
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts the whole record.
fn pax_record(key: &str, value: &str) -> String {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

fn pax_data(path: &str, size: u64) -> Vec<u8> {
    let mut data = pax_record("path", path);
    if size > MAX_OCTAL_SIZE {
        data.push_str(&pax_record("size", &size.to_string()));
    }
    data.into_bytes()
}

/// How many bytes the headers of an entry take (data and its padding not included).
pub fn header_len(path: &str, size: u64) -> u64 {
    if needs_pax(path, size) {
        let data = pax_data(path, size).len() as u64;
        2 * BLOCK as u64 + data + padding(data)
    } else {
        BLOCK as u64
    }
}

fn octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    let s = s.as_bytes();
    // A value too wide for the field (only sizes, which PAX then carries) is written as zeros.
    if s.len() <= width {
        field[..width].copy_from_slice(s);
    } else {
        field[..width].fill(b'0');
    }
    field[width] = 0;
}

fn ustar(name: &[u8], size: u64, mtime: u64, kind: u8) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The headers of a regular file entry (exactly `header_len(path, size)` bytes).
pub fn headers(path: &str, size: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(path, size) as usize);
    if needs_pax(path, size) {
        let data = pax_data(path, size);
        out.extend_from_slice(&ustar(b"././@PaxHeader", data.len() as u64, mtime, b'x'));
        out.extend_from_slice(&data);
        out.resize(out.len() + padding(data.len() as u64) as usize, 0);
        // A plain-ASCII stand-in for readers without PAX.
        let fallback: Vec<u8> = path
            .bytes()
            .map(|b| if b.is_ascii() && b != 0 { b } else { b'_' })
            .take(100)
            .collect();
        out.extend_from_slice(&ustar(&fallback, size.min(MAX_OCTAL_SIZE), mtime, b'0'));
    } else {
        out.extend_from_slice(&ustar(path.as_bytes(), size, mtime, b'0'));
    }
    out
}

/// One regular file's header, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub mtime: u64,
}

/// Reads entries one after the other; the caller reads each entry's data (exactly `size`
/// bytes, through `data`) before asking for the next.
pub struct Reader<R> {
    inner: R,
    /// Data bytes of the current entry not yet read, then its padding.
    remaining: u64,
    pad: u64,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn parse_number(field: &[u8]) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // GNU base-256: big-endian, first byte's high bit set.
        let mut v: u64 = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(u64::from(b)))
                .ok_or_else(|| bad("tar number too large"))?;
        }
        return Ok(v);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    let mut v: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return Err(bad("tar header has a malformed number"));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| bad("tar number too large"))?;
    }
    Ok(v)
}

fn field_str(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

fn read_block<R: Read>(r: &mut R, at_start: &mut bool) -> io::Result<Option<[u8; BLOCK]>> {
    let mut block = [0u8; BLOCK];
    let mut filled = 0;
    while filled < BLOCK {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 && *at_start => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tar truncated",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        *at_start = false;
    }
    Ok(Some(block))
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader {
            inner,
            remaining: 0,
            pad: 0,
        }
    }

    /// The current entry's data; reads end at its last byte.
    pub fn data(&mut self) -> Data<'_, R> {
        Data { reader: self }
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = [0u8; BLOCK];
        while n > 0 {
            let want = n.min(BLOCK as u64) as usize;
            self.inner.read_exact(&mut buf[..want]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "tar truncated")
                } else {
                    e
                }
            })?;
            n -= want as u64;
        }
        Ok(())
    }

    fn read_extension(&mut self, size: u64) -> io::Result<Vec<u8>> {
        if size > MAX_EXTENSION {
            return Err(bad(format!(
                "a {size}-byte tar extension header is too large"
            )));
        }
        let mut data = vec![0u8; size as usize];
        self.inner.read_exact(&mut data).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(io::ErrorKind::UnexpectedEof, "tar truncated")
            } else {
                e
            }
        })?;
        self.skip(padding(size))?;
        Ok(data)
    }

    /// The next regular file, or `None` at the end-of-archive marker (two zero blocks). A
    /// stream that ends anywhere else is truncated.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        // Whatever the caller left of the previous entry.
        self.skip(self.remaining + self.pad)?;
        self.remaining = 0;
        self.pad = 0;
        let mut long_path: Option<String> = None;
        let mut long_size: Option<u64> = None;
        loop {
            let mut at_start = false;
            let Some(h) = read_block(&mut self.inner, &mut at_start)? else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "tar truncated",
                ));
            };
            if h.iter().all(|&b| b == 0) {
                if long_path.is_some() || long_size.is_some() {
                    return Err(bad("tar extension header without its entry"));
                }
                let mut at_start = false;
                match read_block(&mut self.inner, &mut at_start)? {
                    Some(b) if b.iter().all(|&b| b == 0) => return Ok(None),
                    _ => return Err(bad("tar end-of-archive marker is damaged")),
                }
            }
            let stored = parse_number(&h[148..156])?;
            let mut copy = h;
            copy[148..156].fill(b' ');
            let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
            if sum != stored {
                return Err(bad("tar header checksum mismatch (the bundle is damaged)"));
            }
            let size = parse_number(&h[124..136])?;
            let mtime = parse_number(&h[136..148])?;
            match h[156] {
                b'x' => {
                    let data = self.read_extension(size)?;
                    for (k, v) in parse_pax(&data)? {
                        match k.as_str() {
                            "path" => long_path = Some(v),
                            "size" => {
                                long_size =
                                    Some(v.parse().map_err(|_| bad("PAX size is not a number"))?)
                            }
                            _ => {}
                        }
                    }
                }
                b'g' => {
                    self.read_extension(size)?;
                }
                b'L' => {
                    let data = self.read_extension(size)?;
                    let name = String::from_utf8(field_str(&data).to_vec())
                        .map_err(|_| bad("tar long name is not UTF-8"))?;
                    long_path = Some(name);
                }
                b'0' | 0 => {
                    let path = match long_path.take() {
                        Some(p) => p,
                        None => {
                            let name = field_str(&h[..100]);
                            let prefix = if &h[257..262] == b"ustar" {
                                field_str(&h[345..500])
                            } else {
                                &[]
                            };
                            let joined = if prefix.is_empty() {
                                name.to_vec()
                            } else {
                                [prefix, b"/", name].concat()
                            };
                            String::from_utf8(joined)
                                .map_err(|_| bad("tar entry name is not UTF-8"))?
                        }
                    };
                    let size = long_size.take().unwrap_or(size);
                    self.remaining = size;
                    self.pad = padding(size);
                    return Ok(Some(Entry { path, size, mtime }));
                }
                other => {
                    return Err(bad(format!(
                        "tar entry of type {:?} is not supported in a bundle",
                        other as char
                    )))
                }
            }
        }
    }
}

fn parse_pax(mut data: &[u8]) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let space = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("malformed PAX record"));
        }
        let record = std::str::from_utf8(&data[space + 1..len - 1])
            .map_err(|_| bad("PAX record is not UTF-8"))?;
        let (k, v) = record
            .split_once('=')
            .ok_or_else(|| bad("malformed PAX record"))?;
        out.push((k.to_string(), v.to_string()));
        data = &data[len..];
    }
    Ok(out)
}

/// The current entry's data.
pub struct Data<'a, R> {
    reader: &'a mut Reader<R>,
}

impl<R: Read> Read for Data<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(r.remaining).unwrap_or(usize::MAX));
        let n = r.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar truncated",
            ));
        }
        r.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (p, d) in entries {
            let h = headers(p, d.len() as u64, 1_700_000_000);
            assert_eq!(h.len() as u64, header_len(p, d.len() as u64));
            out.extend_from_slice(&h);
            out.extend_from_slice(d);
            out.resize(out.len() + padding(d.len() as u64) as usize, 0);
        }
        out.resize(out.len() + 2 * BLOCK, 0);
        out
    }

    #[test]
    fn pax_record_lengths() {
        for v in [
            "",
            "a",
            &"x".repeat(90),
            &"y".repeat(995),
            &"z".repeat(9990),
        ] {
            let r = pax_record("path", v);
            let (len, _) = r.split_once(' ').expect("space");
            assert_eq!(len.parse::<usize>().expect("num"), r.len());
        }
    }

    #[test]
    fn round_trip_long_and_unicode() {
        let long = format!("o/p/{}/f", "v".repeat(300));
        let uni = "o/p/Ωμέγα-版本/file.bin";
        let data = archive(&[("a/b", b"hello"), (&long, b""), (uni, &[7u8; 1000])]);
        let mut r = Reader::new(&data[..]);
        let e = r.next_entry().expect("ok").expect("entry");
        assert_eq!((e.path.as_str(), e.size), ("a/b", 5));
        let mut s = String::new();
        r.data().read_to_string(&mut s).expect("data");
        assert_eq!(s, "hello");
        let e = r.next_entry().expect("ok").expect("entry");
        assert_eq!(e.path, long);
        // skipping unread data works
        let e = r.next_entry().expect("ok").expect("entry");
        assert_eq!(
            (e.path.as_str(), e.size, e.mtime),
            (uni, 1000, 1_700_000_000)
        );
        assert!(r.next_entry().expect("ok").is_none());
    }

    #[test]
    fn damage_is_refused() {
        let data = archive(&[("a/b", b"hello")]);
        for cut in [0, 100, 512, 515, 1024, 1500] {
            let mut r = Reader::new(&data[..cut]);
            let res = (|| {
                while r.next_entry()?.is_some() {
                    io::copy(&mut r.data(), &mut io::sink())?;
                }
                Ok::<_, io::Error>(())
            })();
            assert!(res.is_err(), "cut at {cut}");
        }
        let mut flipped = data.clone();
        flipped[3] ^= 1;
        assert!(Reader::new(&flipped[..]).next_entry().is_err());
    }
}
