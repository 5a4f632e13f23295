//! Streaming `multipart/form-data` file extraction (RFC 7578 / RFC 2046).
//!
//! Owns two things: [`boundary`], which pulls the boundary out of a `Content-Type` value, and
//! [`FirstFilePart`], an [`io::Read`] adapter that turns a multipart body into the bytes of its
//! first file part (Go's `Request.FormFile` semantics: the first `form-data` part with a `name`
//! and a non-empty `filename`/`filename*`; other parts are form fields and are skipped).
//!
//! It knows nothing of HTTP types or storage: the body is any `io::Read`, the result is an
//! `io::Read`. Memory is constant: one buffer of 64 KiB + boundary length, whatever the size of
//! the preamble, the skipped parts, the file part or the epilogue. Malformed input is an
//! `io::ErrorKind::InvalidData` error; errors of the underlying reader pass through unchanged.

use std::io::{self, ErrorKind, Read};

/// Bytes read from the body per call (and the bulk of the buffer).
const CHUNK: usize = 64 * 1024;
/// Largest accepted part header block (header lines, without the terminating empty line).
const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most header lines accepted in one part.
const MAX_HEADERS: usize = 50;
/// Most transport padding (spaces/tabs) accepted after a boundary on a delimiter line.
const MAX_PADDING: usize = 1024;
/// RFC 2046: a boundary is 1–70 characters.
const MAX_BOUNDARY: usize = 70;

const NO_DELIMITER: &str = "multipart: no boundary delimiter found in body";
const TRUNCATED: &str = "multipart: body ended before the closing boundary delimiter";
const NO_FILE: &str = "multipart: no file part in body";
const BAD_DELIMITER_LINE: &str = "multipart: malformed boundary delimiter line";
const PADDING_TOO_LONG: &str = "multipart: transport padding after boundary too long";
const BAD_HEADER: &str = "multipart: malformed part header";
const BAD_DISPOSITION: &str = "multipart: malformed Content-Disposition part header";
const HEADERS_TOO_LARGE: &str = "multipart: part header block larger than 8 KiB";
const TOO_MANY_HEADERS: &str = "multipart: more than 50 part headers";
const BAD_BOUNDARY: &str = "multipart: invalid boundary (RFC 2046: 1-70 characters)";
const FIELD_TOO_LARGE: &str = "multipart: a form field before the file is larger than 4 KiB";
const TOO_MANY_FIELDS: &str = "multipart: more than 16 form fields before the file";
/// Largest form field kept, when fields are kept (`FirstFilePart::keeping_fields`).
const MAX_FIELD_BYTES: usize = 4 * 1024;
/// Most form fields kept before the file part.
const MAX_FIELDS: usize = 16;

/// The boundary from a Content-Type header value such as
/// `multipart/form-data; boundary="abc"` (case-insensitive type and parameter name, quoted or
/// token value per RFC 2046: 1–70 chars). None if the type is not multipart/form-data or the
/// boundary is missing/invalid.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = parse_params(content_type.as_bytes())?;
    if !kind.eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let (_, value) = params.into_iter().find(|(name, _)| name == b"boundary")?;
    let value = String::from_utf8(value).ok()?;
    valid_boundary(&value).then_some(value)
}

/// Reads a multipart body and yields the bytes of its first file part.
///
/// `read` returns `Ok(0)` only once the whole body has been consumed and its closing delimiter
/// (`--boundary--`) seen: after the file part, the remaining parts and the epilogue are read and
/// discarded (64 KiB at a time), so a truncated upload never looks complete. (An empty `out`
/// also gets `Ok(0)`, per the `Read` contract.) Preamble and skipped parts are streamed past,
/// never buffered, whatever their size. Unlike Go, a malformed `Content-Disposition` is an
/// error rather than a silently skipped part. Once a malformed body has been reported, every
/// later call returns the same error; underlying-reader errors leave the state intact, so a
/// read can be retried (e.g. after `Interrupted`).
pub struct FirstFilePart<R: Read> {
    inner: R,
    /// Holds `buf[start..end]`, the unconsumed window of the body.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The underlying reader returned `Ok(0)`.
    eof: bool,
    /// `\r\n--` + boundary: what ends every part's content.
    delim: Box<[u8]>,
    state: State,
    /// At least one delimiter line seen (tells "garbage" from "truncated").
    seen_delimiter: bool,
    /// The file part has been found (state is `File` or later).
    found_file: bool,
    filename: Option<String>,
    /// `File`: bytes at the window start known to be file content.
    ready: usize,
    /// `File`: delimiter `(length, is_close)` known to follow the `ready` bytes.
    pending: Option<(usize, bool)>,
    /// `Headers`: window offset up to which complete, non-empty header lines were seen.
    header_scanned: usize,
    /// `Headers`: window offset up to which there is no `\n` after `header_scanned`.
    header_searched: usize,
    /// Keep the text fields that come before the file part (bounded), instead of skipping.
    keep_fields: bool,
    /// The field being read (`Skip` state): its name and bytes so far.
    capture: Option<(String, Vec<u8>)>,
    fields: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Discarding preamble or a non-file part's content, looking for the next delimiter.
    Skip,
    /// At the start of a part's header block.
    Headers,
    /// Inside the file part's content.
    File,
    /// After the closing delimiter: discarding the epilogue up to the end of the body.
    Epilogue,
    /// Whole body consumed.
    Done,
    /// A malformed body was reported; the same error is returned from then on.
    Failed(ErrorKind, &'static str),
}

impl<R: Read> FirstFilePart<R> {
    /// Wraps `body`, whose parts are separated by `boundary` (as returned by [`boundary`]).
    /// An invalid boundary makes every read fail with `InvalidInput`.
    pub fn new(body: R, boundary: &str) -> FirstFilePart<R> {
        let mut delim = Vec::with_capacity(boundary.len() + 4);
        delim.extend_from_slice(b"\r\n--");
        delim.extend_from_slice(boundary.as_bytes());
        let mut buf = vec![0u8; CHUNK + delim.len() + 8].into_boxed_slice();
        // The first delimiter may open the body without a preceding CRLF: pretend there was
        // one, so the preamble is just content to skip before an ordinary `\r\n--boundary`.
        buf[..2].copy_from_slice(b"\r\n");
        let state = if valid_boundary(boundary) {
            State::Skip
        } else {
            State::Failed(ErrorKind::InvalidInput, BAD_BOUNDARY)
        };
        FirstFilePart {
            inner: body,
            buf,
            start: 0,
            end: 2,
            eof: false,
            delim: delim.into_boxed_slice(),
            state,
            seen_delimiter: false,
            found_file: false,
            filename: None,
            ready: 0,
            pending: None,
            header_scanned: 0,
            header_searched: 0,
            keep_fields: false,
            capture: None,
            fields: Vec::new(),
        }
    }

    /// As [`FirstFilePart::new`], keeping the form fields before the file part (at most 16 of
    /// at most 4 KiB each; more is an `InvalidData` error), e.g. a form's CSRF secret. Memory
    /// stays bounded.
    pub fn keeping_fields(body: R, boundary: &str) -> FirstFilePart<R> {
        let mut p = FirstFilePart::new(body, boundary);
        p.keep_fields = true;
        p
    }

    /// The fields kept before the file part (see [`FirstFilePart::keeping_fields`]), valid
    /// after `open()`.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The part's filename (available after the first successful read, or call `open()`),
    /// for logs. As sent by the client (`filename*` preferred over `filename`), path included.
    pub fn filename(&self) -> Option<&str> {
        self.filename.as_deref()
    }

    /// Skips the preamble and non-file parts and parses the file part's headers; errors if the
    /// body is malformed or has no file part. Idempotent; `read` calls it.
    pub fn open(&mut self) -> io::Result<()> {
        loop {
            if let State::Failed(kind, msg) = self.state {
                return Err(io::Error::new(kind, msg));
            }
            if self.found_file {
                return Ok(());
            }
            self.step()?;
        }
    }

    /// The underlying reader, e.g. to drain or inspect it after an error.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Records a malformed-body error so that later calls repeat it.
    fn fail(&mut self, kind: ErrorKind, msg: &'static str) -> io::Error {
        self.state = State::Failed(kind, msg);
        io::Error::new(kind, msg)
    }

    /// Reads more of the body into the buffer, after the window. `Ok(false)` at end of body.
    /// Errors of the underlying reader pass through and leave the state intact (retryable).
    fn fill(&mut self) -> io::Result<bool> {
        if self.start > 0 {
            // The window is small whenever we need more (an undecided delimiter prefix or a
            // partial header block), so this copy is cheap.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.eof {
            return Ok(false);
        }
        if self.end == self.buf.len() {
            // Unreachable: an undecided window is at most a delimiter line, a header block is at
            // most 8 KiB. Kept as a guard against unbounded growth.
            return Err(self.fail(ErrorKind::InvalidData, PADDING_TOO_LONG));
        }
        let n = self.inner.read(&mut self.buf[self.end..])?;
        if n == 0 {
            self.eof = true;
            return Ok(false);
        }
        self.end += n;
        Ok(true)
    }

    /// Advances one step in the non-`File` states.
    fn step(&mut self) -> io::Result<()> {
        match self.state {
            State::Skip => self.step_skip(),
            State::Headers => self.step_headers(),
            State::File => self.scan_file(),
            State::Epilogue => {
                self.start = self.end;
                if !self.fill()? {
                    self.state = State::Done;
                }
                Ok(())
            }
            State::Done => Ok(()),
            State::Failed(kind, msg) => Err(io::Error::new(kind, msg)),
        }
    }

    /// Adds skipped content to the field being kept, if any.
    fn keep(&mut self, n: usize) -> io::Result<()> {
        if let Some((_, value)) = &mut self.capture {
            if value.len() + n > MAX_FIELD_BYTES {
                return Err(self.fail(ErrorKind::InvalidData, FIELD_TOO_LARGE));
            }
            value.extend_from_slice(&self.buf[self.start..self.start + n]);
        }
        Ok(())
    }

    fn step_skip(&mut self) -> io::Result<()> {
        match scan(&self.buf[self.start..self.end], &self.delim) {
            Err(msg) => Err(self.fail(ErrorKind::InvalidData, msg)),
            Ok(Scan::Content(n)) => {
                self.keep(n)?;
                self.start += n;
                Ok(())
            }
            Ok(Scan::NeedMore) => {
                if self.fill()? {
                    Ok(())
                } else {
                    let msg = if self.seen_delimiter {
                        TRUNCATED
                    } else {
                        NO_DELIMITER
                    };
                    Err(self.fail(ErrorKind::InvalidData, msg))
                }
            }
            Ok(Scan::Delimiter {
                content,
                len,
                close,
            }) => {
                self.keep(content)?;
                if let Some((name, value)) = self.capture.take() {
                    if self.fields.len() >= MAX_FIELDS {
                        return Err(self.fail(ErrorKind::InvalidData, TOO_MANY_FIELDS));
                    }
                    self.fields
                        .push((name, String::from_utf8_lossy(&value).into_owned()));
                }
                self.start += content + len;
                self.delimiter_seen(close)
            }
        }
    }

    /// Moves past a delimiter line: to the next part's headers, or to the epilogue.
    fn delimiter_seen(&mut self, close: bool) -> io::Result<()> {
        self.seen_delimiter = true;
        if !close {
            self.state = State::Headers;
            self.header_scanned = 0;
            self.header_searched = 0;
        } else if self.found_file {
            self.state = State::Epilogue;
        } else {
            return Err(self.fail(ErrorKind::InvalidData, NO_FILE));
        }
        Ok(())
    }

    fn step_headers(&mut self) -> io::Result<()> {
        let window = &self.buf[self.start..self.end];
        let mut pos = self.header_scanned;
        let (block, consumed) = loop {
            let from = pos.max(self.header_searched);
            let Some(off) = find_byte(b'\n', &window[from..]) else {
                if window.len() > MAX_HEADER_BYTES + 2 {
                    return Err(self.fail(ErrorKind::InvalidData, HEADERS_TOO_LARGE));
                }
                self.header_scanned = pos;
                self.header_searched = window.len();
                return if self.fill()? {
                    Ok(())
                } else {
                    Err(self.fail(ErrorKind::InvalidData, TRUNCATED))
                };
            };
            let nl = from + off;
            let line = &window[pos..nl];
            if line.is_empty() || line == b"\r" {
                break (&window[..pos], nl + 1);
            }
            pos = nl + 1;
            if pos > MAX_HEADER_BYTES {
                return Err(self.fail(ErrorKind::InvalidData, HEADERS_TOO_LARGE));
            }
        };
        let (file, field) = match parse_part_headers(block) {
            Ok(parsed) => parsed,
            Err(msg) => return Err(self.fail(ErrorKind::InvalidData, msg)),
        };
        self.start += consumed;
        self.header_scanned = 0;
        self.header_searched = 0;
        match file {
            Some(name) if !self.found_file => {
                self.found_file = true;
                self.filename = Some(name);
                self.state = State::File;
                self.ready = 0;
                self.pending = None;
            }
            _ => {
                if self.keep_fields && !self.found_file {
                    self.capture = field.map(|name| (name, Vec::new()));
                }
                self.state = State::Skip;
            }
        }
        Ok(())
    }

    /// `File` state with nothing ready: finds how much of the window is content.
    fn scan_file(&mut self) -> io::Result<()> {
        match scan(&self.buf[self.start..self.end], &self.delim) {
            Err(msg) => Err(self.fail(ErrorKind::InvalidData, msg)),
            Ok(Scan::Content(n)) => {
                self.ready = n;
                Ok(())
            }
            Ok(Scan::Delimiter {
                content,
                len,
                close,
            }) => {
                self.ready = content;
                self.pending = Some((len, close));
                Ok(())
            }
            Ok(Scan::NeedMore) => {
                if self.fill()? {
                    Ok(())
                } else {
                    Err(self.fail(ErrorKind::InvalidData, TRUNCATED))
                }
            }
        }
    }
}

impl<R: Read> Read for FirstFilePart<R> {
    /// Yields the file part's content; `Ok(0)` only after the whole body, closing delimiter
    /// included, has been read.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        self.open()?;
        loop {
            match self.state {
                State::File => {
                    if self.ready > 0 {
                        let n = self.ready.min(out.len());
                        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
                        self.start += n;
                        self.ready -= n;
                        return Ok(n);
                    }
                    if let Some((len, close)) = self.pending.take() {
                        self.start += len;
                        self.delimiter_seen(close)?;
                        continue;
                    }
                    self.scan_file()?;
                }
                State::Done => return Ok(0),
                _ => self.step()?,
            }
        }
    }
}

/// What the start of a window holds, as far as can be told from it.
#[derive(Debug, PartialEq, Eq)]
enum Scan {
    /// The first `n > 0` bytes are content; what follows is undecided (or the window ends).
    Content(usize),
    /// `content` bytes of content, then a delimiter line of `len` bytes (through its CRLF, or
    /// through `--` if `close`).
    Delimiter {
        content: usize,
        len: usize,
        close: bool,
    },
    /// The window is empty or starts with what may be a delimiter: read more.
    NeedMore,
}

/// Scans `window` for the first delimiter `delim` (`\r\n--boundary`). Candidates are found by
/// a word-at-a-time search for `\r`, so content is scanned in linear time at memchr speed.
/// `\r\n--boundary` followed by anything but `--`, transport padding or CRLF is content (as in
/// Go: `--abc` does not match boundary `ab`); followed by padding that does not end in CRLF it
/// is a malformed delimiter line.
fn scan(window: &[u8], delim: &[u8]) -> Result<Scan, &'static str> {
    let undecided = |c: usize| {
        if c == 0 {
            Scan::NeedMore
        } else {
            Scan::Content(c)
        }
    };
    let mut pos = 0;
    while let Some(off) = find_byte(b'\r', &window[pos..]) {
        let c = pos + off;
        let candidate = &window[c..];
        if candidate.len() < delim.len() {
            if delim.starts_with(candidate) {
                return Ok(undecided(c));
            }
            pos = c + 1;
            continue;
        }
        if &candidate[..delim.len()] != delim {
            pos = c + 1;
            continue;
        }
        let after = &candidate[delim.len()..];
        match after.first() {
            None => return Ok(undecided(c)),
            Some(b'-') => match after.get(1) {
                None => return Ok(undecided(c)),
                Some(b'-') => {
                    return Ok(Scan::Delimiter {
                        content: c,
                        len: delim.len() + 2,
                        close: true,
                    })
                }
                Some(_) => pos = c + 1,
            },
            Some(b' ' | b'\t' | b'\r' | b'\n') => {
                let pad = after
                    .iter()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
                if pad > MAX_PADDING {
                    return Err(PADDING_TOO_LONG);
                }
                return match (after.get(pad), after.get(pad + 1)) {
                    (None, _) | (Some(b'\r'), None) => Ok(undecided(c)),
                    (Some(b'\r'), Some(b'\n')) => Ok(Scan::Delimiter {
                        content: c,
                        len: delim.len() + pad + 2,
                        close: false,
                    }),
                    _ => Err(BAD_DELIMITER_LINE),
                };
            }
            Some(_) => pos = c + 1,
        }
    }
    Ok(if window.is_empty() {
        Scan::NeedMore
    } else {
        Scan::Content(window.len())
    })
}

/// Position of the first `needle` in `hay`, 16 bytes per step (SWAR "has zero byte").
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    fn load(b: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[..8]);
        u64::from_le_bytes(w)
    }
    let pattern = LO * u64::from(needle);
    let mut chunks = hay.chunks_exact(16);
    let mut base = 0;
    for chunk in &mut chunks {
        let x = load(&chunk[..8]) ^ pattern;
        let y = load(&chunk[8..]) ^ pattern;
        let zx = x.wrapping_sub(LO) & !x & HI;
        let zy = y.wrapping_sub(LO) & !y & HI;
        if zx | zy != 0 {
            // Little-endian: the lowest flagged byte is the first match (borrows only create
            // false flags above a true zero byte).
            return Some(if zx != 0 {
                base + (zx.trailing_zeros() / 8) as usize
            } else {
                base + 8 + (zy.trailing_zeros() / 8) as usize
            });
        }
        base += 16;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

/// Parses a part's header lines (CRLF or LF, obs-fold continuations allowed) and returns the
/// filename if the part is a file part (`Content-Disposition: form-data` with a non-empty
/// `name` and a non-empty `filename*` or `filename`), else the field name of a form field.
type PartHeaders = (Option<String>, Option<String>);
fn parse_part_headers(block: &[u8]) -> Result<PartHeaders, &'static str> {
    let mut count = 0;
    let mut disposition: Option<Vec<u8>> = None;
    let mut in_disposition = false;
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(&first) = line.first() else {
            continue; // after the last line's LF
        };
        if first == b' ' || first == b'\t' {
            if count == 0 {
                return Err(BAD_HEADER);
            }
            if let (true, Some(value)) = (in_disposition, disposition.as_mut()) {
                value.push(b' ');
                value.extend_from_slice(trim(line));
            }
            continue;
        }
        count += 1;
        if count > MAX_HEADERS {
            return Err(TOO_MANY_HEADERS);
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(BAD_HEADER)?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Err(BAD_HEADER);
        }
        in_disposition = disposition.is_none() && name.eq_ignore_ascii_case(b"content-disposition");
        if in_disposition {
            disposition = Some(trim(&line[colon + 1..]).to_vec());
        }
    }
    let Some(value) = disposition else {
        return Ok((None, None));
    };
    let (kind, params) = parse_params(&value).ok_or(BAD_DISPOSITION)?;
    let param = |name: &[u8]| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    if !kind.eq_ignore_ascii_case(b"form-data") || param(b"name").is_none_or(<[u8]>::is_empty) {
        return Ok((None, None));
    }
    let field = param(b"name").map(|n| String::from_utf8_lossy(n).into_owned());
    let filename = match (param(b"filename*"), param(b"filename")) {
        (Some(ext), plain) => match decode_ext_value(ext) {
            Some(name) if !name.is_empty() => Some(name),
            _ => plain
                .filter(|p| !p.is_empty())
                .or(Some(ext))
                .map(|v| String::from_utf8_lossy(v).into_owned()),
        },
        (None, plain) => plain.map(|v| String::from_utf8_lossy(v).into_owned()),
    };
    let filename = filename.filter(|name| !name.is_empty());
    let field =
        if filename.is_none() && param(b"filename").is_none() && param(b"filename*").is_none() {
            field
        } else {
            None
        };
    Ok((filename, field))
}

/// RFC 5987 / RFC 2231 `charset'language'percent-encoded` (UTF-8, ISO-8859-1, US-ASCII).
fn decode_ext_value(value: &[u8]) -> Option<String> {
    let mut fields = value.splitn(3, |&b| b == b'\'');
    let (charset, _language, encoded) = (fields.next()?, fields.next()?, fields.next()?);
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        if encoded[i] == b'%' {
            let hex = std::str::from_utf8(encoded.get(i + 1..i + 3)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            bytes.push(encoded[i]);
            i += 1;
        }
    }
    if charset.eq_ignore_ascii_case(b"utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1")
        || charset.eq_ignore_ascii_case(b"us-ascii")
    {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

/// Splits `type; name=value; name="quoted value"` into the (trimmed) type and its parameters
/// (names lower-cased, values unquoted). None on syntax errors and duplicate parameters.
type Params = Vec<(Vec<u8>, Vec<u8>)>;
fn parse_params(s: &[u8]) -> Option<(&[u8], Params)> {
    let split = s.iter().position(|&b| b == b';').unwrap_or(s.len());
    let kind = trim(&s[..split]);
    let mut rest = s.get(split + 1..).unwrap_or_default();
    let mut params: Params = Vec::new();
    loop {
        rest = rest.trim_ascii_start();
        if rest.is_empty() {
            break;
        }
        let eq = rest.iter().position(|&b| b == b'=')?;
        let name = rest[..eq].trim_ascii_end();
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return None;
        }
        rest = rest[eq + 1..].trim_ascii_start();
        let value = if rest.first() == Some(&b'"') {
            let mut value = Vec::new();
            let mut i = 1;
            loop {
                match *rest.get(i)? {
                    b'"' => break,
                    // As Go's mime package: a backslash escapes only a tspecial, so unescaped
                    // Windows paths survive.
                    b'\\' if rest.get(i + 1).is_some_and(|&c| is_tspecial(c)) => {
                        value.push(rest[i + 1]);
                        i += 2;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
            rest = &rest[i + 1..];
            value
        } else {
            let end = rest
                .iter()
                .position(|&b| !is_token(b))
                .unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            let value = rest[..end].to_vec();
            rest = &rest[end..];
            value
        };
        rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b";") {
            rest = after;
        } else if !rest.is_empty() {
            return None;
        }
        let name = name.to_ascii_lowercase();
        if params.iter().any(|(n, _)| *n == name) {
            return None;
        }
        params.push((name, value));
    }
    Some((kind, params))
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// RFC 2045 tspecials.
fn is_tspecial(b: u8) -> bool {
    b"()<>@,;:\\\"/[]?=".contains(&b)
}

/// RFC 2045 token character.
fn is_token(b: u8) -> bool {
    b.is_ascii_graphic() && !is_tspecial(b)
}

/// RFC 2046: `0*69<bchars> bcharsnospace`.
fn valid_boundary(b: &str) -> bool {
    let bytes = b.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_BOUNDARY
        && !bytes.ends_with(b" ")
        && bytes
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const B: &str = "------------------------d74496d66958873e";

    /// xorshift64*, for reproducible "random" sizes and contents.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Returns at most `max` bytes per read: 1 for byte-at-a-time, random sizes if `rng`.
    struct Trickle<R> {
        inner: R,
        max: usize,
        rng: Option<Rng>,
    }
    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut n = buf.len().min(self.max);
            if let Some(rng) = &mut self.rng {
                n = 1 + rng.below(n);
            }
            self.inner.read(&mut buf[..n])
        }
    }

    /// Yields `data`, then fails with `kind` (a truncated HTTP body, an interrupted read...).
    struct ThenFail {
        data: Cursor<Vec<u8>>,
        kind: ErrorKind,
        interrupt_every_other: bool,
        calls: usize,
    }
    impl Read for ThenFail {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.interrupt_every_other && self.calls % 2 == 0 {
                return Err(io::Error::new(ErrorKind::Interrupted, "interrupted"));
            }
            let max = buf.len().min(7);
            let n = self.data.read(&mut buf[..max])?;
            if n == 0 {
                return Err(io::Error::new(self.kind, "underlying"));
            }
            Ok(n)
        }
    }

    /// Reads `r` to the end with an output buffer of `chunk` bytes, retrying `Interrupted`.
    fn drain(mut r: impl Read, chunk: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; chunk];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(out),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Extracts the file part of `body` with many reader shapes and output sizes, checks they
    /// all agree (same bytes, or same error kind and message) and returns the result.
    fn extract(body: &[u8], boundary: &str) -> io::Result<Vec<u8>> {
        let whole = drain(FirstFilePart::new(body, boundary), 1 << 20);
        let mut shapes: Vec<(String, io::Result<Vec<u8>>)> = Vec::new();
        for chunk in [1, 3, 8192] {
            let one = Trickle {
                inner: body,
                max: 1,
                rng: None,
            };
            shapes.push((
                format!("1-byte reads, out {chunk}"),
                drain(FirstFilePart::new(one, boundary), chunk),
            ));
            for seed in 1..4u64 {
                let r = Trickle {
                    inner: body,
                    max: 97,
                    rng: Some(Rng(seed)),
                };
                shapes.push((
                    format!("random reads seed {seed}, out {chunk}"),
                    drain(FirstFilePart::new(r, boundary), chunk),
                ));
            }
        }
        for (shape, got) in shapes {
            match (&whole, &got) {
                (Ok(a), Ok(b)) => assert!(a == b, "{shape}: content differs"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{shape}");
                    assert_eq!(a.to_string(), b.to_string(), "{shape}");
                }
                _ => panic!("{shape}: {got:?} vs whole-body {whole:?}"),
            }
        }
        whole
    }

    fn file_body(boundary: &str, content: &[u8]) -> Vec<u8> {
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        body
    }

    fn invalid(result: io::Result<Vec<u8>>, message: &str) {
        let err = result.expect_err("must fail");
        assert_eq!(err.kind(), ErrorKind::InvalidData, "{err}");
        assert_eq!(err.to_string(), message);
    }

    #[test]
    fn curl_style_body() {
        // Shape of `curl -F file=@hello.txt`.
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nhello world\n\r\n--{B}--\r\n"
        );
        assert_eq!(extract(body.as_bytes(), B).unwrap(), b"hello world\n");
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        assert_eq!(r.filename(), None);
        r.open().unwrap();
        assert_eq!(r.filename(), Some("hello.txt"));
    }

    #[test]
    fn field_part_before_file_part_and_parts_after() {
        let body = format!(
            "preamble, ignored\r\n--{B}  \t\r\ncontent-disposition: form-data; name=\"note\"\r\n\r\n\
             a field value\r\n--{B}\r\nCONTENT-DISPOSITION: Form-Data; Name=file; FileName=\"a.bin\"\r\n\r\n\
             payload\r\n--{B}\r\nContent-Disposition: form-data; name=\"other\"; filename=\"b.bin\"\r\n\r\n\
             second file, skipped\r\n--{B}-- \r\nepilogue, ignored\r\n--{B}\r\nmore epilogue"
        );
        assert_eq!(extract(body.as_bytes(), B).unwrap(), b"payload");
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        r.open().unwrap();
        assert_eq!(r.filename(), Some("a.bin"));
    }

    #[test]
    fn first_part_without_filename_or_name_is_a_field() {
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"a\"; filename=\"\"\r\n\r\nempty filename\r\n\
             --{B}\r\nContent-Disposition: form-data; filename=\"noname\"\r\n\r\nno name\r\n\
             --{B}\r\nContent-Disposition: attachment; name=\"x\"; filename=\"att\"\r\n\r\nnot form-data\r\n\
             --{B}\r\nContent-Type: text/plain\r\n\r\nno disposition\r\n\
             --{B}\r\n\r\nno headers\r\n\
             --{B}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\dir\\real.bin\"\r\n\r\nreal\r\n--{B}--"
        );
        assert_eq!(extract(body.as_bytes(), B).unwrap(), b"real");
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        r.open().unwrap();
        assert_eq!(r.filename(), Some("C:\\dir\\real.bin"));
    }

    #[test]
    fn filename_star_and_folded_header() {
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"file\";\n\tfilename=\"fallback\";\r\n filename*=UTF-8''na%C3%AFve%20%E2%82%AC.txt\n\nx\r\n--{B}--"
        );
        assert_eq!(extract(body.as_bytes(), B).unwrap(), b"x");
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        r.open().unwrap();
        assert_eq!(r.filename(), Some("naïve €.txt"));
    }

    #[test]
    fn crlf_and_boundary_fragments_inside_content() {
        let mut content = Vec::new();
        for piece in [
            "\r".to_string(),
            "\r\n".to_string(),
            "\r\n--".to_string(),
            format!("\r\n--{}", &B[..B.len() - 1]),
            format!("\r\n--{B}x"),
            format!("\r\n--{B}-x"),
            format!("\r\n-{B}"),
            format!("\r--{B}--"),
            format!("\n--{B}--\r\n"),
            format!("--{B}\r\n"),
            "\r\n\r\n\r\r\n\n".to_string(),
        ] {
            content.extend_from_slice(b"abc");
            content.extend_from_slice(piece.as_bytes());
        }
        for tail in ["", "\r", "\r\n", "\r\n-", "\r\n--", "\r\n--------"] {
            let mut c = content.clone();
            c.extend_from_slice(tail.as_bytes());
            assert_eq!(extract(&file_body(B, &c), B).unwrap(), c);
            // The same content as first bytes of the part.
            let mut c2 = c.clone();
            c2.splice(0..3, []);
            assert_eq!(extract(&file_body(B, &c2), B).unwrap(), c2);
        }
        // A short boundary that is a prefix of dashes.
        let c = b"\r\n---\r\n----x\r\n--\r\n-- -".to_vec();
        assert_eq!(extract(&file_body("--", &c), "--").unwrap(), c);
    }

    #[test]
    fn content_exactly_at_buffer_edges() {
        let mut rng = Rng(7);
        let base: Vec<u8> = (0..CHUNK + 200)
            .map(|_| {
                if rng.below(8) == 0 {
                    b'\r'
                } else {
                    rng.next() as u8
                }
            })
            .collect();
        let header_len = file_body(B, b"").len() - format!("\r\n--{B}--\r\n").len();
        // Move the end of the content (and so the delimiter) across the 64 KiB read edge
        // and the end of the internal buffer.
        // Content length whose end lands at the edge of a 64 KiB read (the first read goes
        // after the 2-byte virtual CRLF); a whole-slice reader fills the buffer instead
        // (`CHUNK + delimiter + 8` bytes): sweep across both.
        let edge = CHUNK - 2 - header_len;
        for len in edge - 60..edge + 80 {
            let body = file_body(B, &base[..len]);
            let got = drain(FirstFilePart::new(body.as_slice(), B), 1 << 20).unwrap();
            assert!(got == base[..len], "len {len}");
            let chunked = Trickle {
                inner: body.as_slice(),
                max: CHUNK,
                rng: None,
            };
            let got = drain(FirstFilePart::new(chunked, B), 4096).unwrap();
            assert!(got == base[..len], "len {len}, 64 KiB reads");
        }
        // And with delimiter fragments straddling the edge inside the content.
        for shift in 0..B.len() + 60 {
            let mut c = base[..edge - shift].to_vec();
            c.extend_from_slice(format!("\r\n--{}", &B[..B.len() - 1]).as_bytes());
            c.extend_from_slice(&base[..100]);
            let body = file_body(B, &c);
            let full = Trickle {
                inner: body.as_slice(),
                max: CHUNK,
                rng: None,
            };
            let got = drain(FirstFilePart::new(full, B), 1 << 20).unwrap();
            assert!(got == c, "shift {shift}");
            let random = Trickle {
                inner: body.as_slice(),
                max: 4000,
                rng: Some(Rng(shift as u64 + 1)),
            };
            let got = drain(FirstFilePart::new(random, B), 777).unwrap();
            assert!(got == c, "shift {shift}, random reads");
        }
    }

    #[test]
    fn empty_file_part() {
        assert_eq!(extract(&file_body(B, b""), B).unwrap(), b"");
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=f; filename=e\r\n\r\n\r\n--{B}--"
        );
        assert_eq!(extract(body.as_bytes(), B).unwrap(), b"");
    }

    #[test]
    fn no_file_part() {
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nvalue\r\n--{B}--\r\n"
        );
        invalid(extract(body.as_bytes(), B), NO_FILE);
        invalid(extract(format!("--{B}--\r\n").as_bytes(), B), NO_FILE);
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        assert_eq!(r.open().unwrap_err().kind(), ErrorKind::InvalidData);
        // The error sticks.
        assert_eq!(r.read(&mut [0; 8]).unwrap_err().to_string(), NO_FILE);
    }

    #[test]
    fn missing_final_delimiter() {
        let full = file_body(B, b"some content");
        let close = format!("\r\n--{B}--\r\n").len();
        // Cut anywhere before the closing `--boundary--` is complete.
        for cut in 0..full.len() - close + 2 + B.len() + 2 {
            let result = extract(&full[..cut], B);
            let err = result.expect_err("truncated body must fail");
            assert_eq!(err.kind(), ErrorKind::InvalidData, "cut {cut}: {err}");
        }
        // Complete once the `--` after the boundary is there (CRLF after it is optional).
        let end = full.len() - 2;
        assert_eq!(extract(&full[..end], B).unwrap(), b"some content");
        // File part followed by another part that is cut off.
        let body = format!(
            "--{B}\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nabc\r\n--{B}\r\n\
             Content-Disposition: form-data; name=g\r\n\r\nvalue"
        );
        let mut r = FirstFilePart::new(body.as_bytes(), B);
        let mut buf = [0u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 3);
        assert_eq!(r.read(&mut buf).unwrap_err().to_string(), TRUNCATED);
        invalid(extract(body.as_bytes(), B), TRUNCATED);
    }

    #[test]
    fn underlying_errors_pass_through() {
        let body = file_body(B, &[b'z'; 1000]);
        for cut in [0, 10, 200, body.len() - 5, body.len()] {
            let r = ThenFail {
                data: Cursor::new(body[..cut].to_vec()),
                kind: ErrorKind::UnexpectedEof,
                interrupt_every_other: false,
                calls: 0,
            };
            let err = drain(FirstFilePart::new(r, B), 64).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnexpectedEof, "cut {cut}");
            assert_eq!(err.to_string(), "underlying");
        }
        // Interrupted is passed through too, and reading can resume after it.
        let r = ThenFail {
            data: Cursor::new(body.clone()),
            kind: ErrorKind::UnexpectedEof,
            interrupt_every_other: true,
            calls: 0,
        };
        let mut r = FirstFilePart::new(r, B);
        let mut interrupted = 0;
        let mut out = Vec::new();
        let mut buf = [0u8; 5];
        loop {
            match r.read(&mut buf) {
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => interrupted += 1,
                Err(e) => {
                    // Body fully delivered; only the underlying EOF error remains. It must not
                    // come before the content is complete.
                    assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
                    break;
                }
            }
        }
        assert!(interrupted > 10);
        assert_eq!(out, vec![b'z'; 1000]);
    }

    #[test]
    fn garbage_and_malformed_bodies() {
        invalid(extract(b"", B), NO_DELIMITER);
        invalid(
            extract(b"hello world, not multipart at all", B),
            NO_DELIMITER,
        );
        invalid(
            extract(format!("x--{B}\r\n\r\n").as_bytes(), B),
            NO_DELIMITER,
        );
        invalid(extract(format!("--{B}x\r\n").as_bytes(), B), NO_DELIMITER);
        invalid(
            extract(format!("--{B} x\r\n").as_bytes(), B),
            BAD_DELIMITER_LINE,
        );
        invalid(
            extract(format!("--{B}\n").as_bytes(), B),
            BAD_DELIMITER_LINE,
        );
        invalid(
            extract(format!("--{B}\r\nno colon\r\n\r\n").as_bytes(), B),
            BAD_HEADER,
        );
        invalid(
            extract(
                format!("--{B}\r\n continuation first\r\n\r\n").as_bytes(),
                B,
            ),
            BAD_HEADER,
        );
        invalid(
            extract(format!("--{B}\r\nBad Name: x\r\n\r\n").as_bytes(), B),
            BAD_HEADER,
        );
        invalid(
            extract(
                format!("--{B}\r\nContent-Disposition: form-data; name=\"x\r\n\r\n").as_bytes(),
                B,
            ),
            BAD_DISPOSITION,
        );
        invalid(
            extract(
                format!("--{B}\r\nContent-Disposition: form-data; name=a; name=b\r\n\r\n")
                    .as_bytes(),
                B,
            ),
            BAD_DISPOSITION,
        );
        // Headers never ending.
        invalid(
            extract(format!("--{B}\r\nX-A: b\r\n").as_bytes(), B),
            TRUNCATED,
        );
        // A malformed delimiter line after the file content.
        let body = format!("--{B}\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nabc\r\n--{B}\t!\r\n");
        invalid(extract(body.as_bytes(), B), BAD_DELIMITER_LINE);
        // Invalid boundary given to `new`.
        let err = FirstFilePart::new(&b""[..], "").open().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn header_limits() {
        let mut many = format!("--{B}\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-H{i}: v\r\n"));
        }
        let ok = format!("{many}\r\n\r\n--{B}--");
        invalid(extract(ok.as_bytes(), B), NO_FILE); // 50 headers are fine
        let too_many = format!("{many}X-Last: v\r\n\r\n\r\n--{B}--");
        invalid(extract(too_many.as_bytes(), B), TOO_MANY_HEADERS);

        let disposition = "Content-Disposition: form-data; name=f; filename=a\r\n";
        let filler = |n: usize| format!("X-Pad: {}\r\n", "p".repeat(n - 9));
        let block = MAX_HEADER_BYTES - disposition.len();
        let at_limit = format!("--{B}\r\n{disposition}{}\r\nok\r\n--{B}--", filler(block));
        assert_eq!(extract(at_limit.as_bytes(), B).unwrap(), b"ok");
        let over = format!(
            "--{B}\r\n{disposition}{}\r\nok\r\n--{B}--",
            filler(block + 1)
        );
        invalid(extract(over.as_bytes(), B), HEADERS_TOO_LARGE);
        let endless = format!("--{B}\r\nX-Pad: {}", "p".repeat(10_000));
        invalid(extract(endless.as_bytes(), B), HEADERS_TOO_LARGE);
        // Endless transport padding on a delimiter line.
        let padded = format!("--{B}{}\r\n", " \t".repeat(35_000));
        invalid(extract(padded.as_bytes(), B), PADDING_TOO_LONG);
        let padded = format!(
            "--{B}{}\r\nContent-Disposition: form-data; name=f; filename=a\r\n\r\nok\r\n--{B}--",
            " ".repeat(MAX_PADDING)
        );
        assert_eq!(extract(padded.as_bytes(), B).unwrap(), b"ok");
    }

    /// `left` pseudo-random bytes (rich in `\r`, `\n` and `-`), generated on the fly; byte `i`
    /// depends only on `seed` and `i`, whatever the read sizes.
    struct Generated {
        seed: u64,
        pos: u64,
        left: u64,
    }
    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            for dst in &mut buf[..n] {
                let word = Rng((self.pos / 8 + 1) ^ self.seed.rotate_left(32)).next();
                let src = word.to_le_bytes()[(self.pos % 8) as usize];
                *dst = match src {
                    0..=3 => b'\r',
                    4..=5 => b'\n',
                    6..=7 => b'-',
                    _ => src,
                };
                self.pos += 1;
            }
            self.left -= n as u64;
            Ok(n)
        }
    }

    fn generated_body(len: u64, seed: u64) -> impl Read {
        let head = format!(
            "--{B}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n"
        );
        let tail = format!("\r\n--{B}--\r\n");
        Cursor::new(head.into_bytes())
            .chain(Generated {
                seed,
                pos: 0,
                left: len,
            })
            .chain(Cursor::new(tail.into_bytes()))
    }

    #[test]
    fn large_part_streams_in_constant_memory() {
        const LEN: u64 = 20 << 20;
        let body = Trickle {
            inner: generated_body(LEN, 42),
            max: 50_000,
            rng: Some(Rng(3)),
        };
        let mut r = FirstFilePart::new(body, B);
        assert!(r.buf.len() <= 64 * 1024 + B.len() + 16);
        let mut expected = Generated {
            seed: 42,
            pos: 0,
            left: LEN,
        };
        let mut got = vec![0u8; 10_007];
        let mut want = vec![0u8; 10_007];
        let mut total = 0u64;
        loop {
            let n = r.read(&mut got).unwrap();
            if n == 0 {
                break;
            }
            expected.read_exact(&mut want[..n]).unwrap();
            assert!(got[..n] == want[..n], "differs near offset {total}");
            total += n as u64;
        }
        assert_eq!(total, LEN);
        assert_eq!(r.filename(), Some("big.bin"));
        assert!(r.buf.len() <= 64 * 1024 + B.len() + 16);
    }

    /// `cargo test --release -- --ignored --nocapture throughput`
    #[test]
    #[ignore]
    fn throughput_1gib() {
        const LEN: u64 = 1 << 30;
        // Pre-generate a 1 MiB block and repeat it, so that generation costs little.
        let mut block = Vec::new();
        Generated {
            seed: 9,
            pos: 0,
            left: 1 << 20,
        }
        .read_to_end(&mut block)
        .unwrap();
        struct Repeat {
            block: Vec<u8>,
            pos: usize,
            left: u64,
        }
        impl Read for Repeat {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf
                    .len()
                    .min(self.block.len() - self.pos)
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
                self.pos = (self.pos + n) % self.block.len();
                self.left -= n as u64;
                Ok(n)
            }
        }
        for (name, block) in [
            ("random bytes, 1.6% each of \\r \\n -", block),
            ("uniform random bytes", {
                let mut rng = Rng(11);
                (0..1 << 20).map(|_| rng.next() as u8).collect()
            }),
            ("text lines (CRLF every 64 bytes)", {
                let mut line = vec![b'a'; 62];
                line.extend_from_slice(b"\r\n");
                line.repeat(1 << 14)
            }),
        ] {
            let head =
                format!("--{B}\r\nContent-Disposition: form-data; name=f; filename=x\r\n\r\n");
            let body = Cursor::new(head.into_bytes())
                .chain(Repeat {
                    block,
                    pos: 0,
                    left: LEN,
                })
                .chain(Cursor::new(format!("\r\n--{B}--\r\n").into_bytes()));
            let start = std::time::Instant::now();
            let n = io::copy(&mut FirstFilePart::new(body, B), &mut io::sink()).unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(n, LEN);
            println!(
                "{name}: 1 GiB in {secs:.3} s = {:.2} GB/s",
                LEN as f64 / secs / 1e9
            );
        }
    }

    #[test]
    fn boundary_parsing() {
        let b = |s: &str| boundary(s);
        assert_eq!(
            b("multipart/form-data; boundary=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("Multipart/Form-Data;BOUNDARY=abc").as_deref(),
            Some("abc")
        );
        assert_eq!(
            b("multipart/form-data; boundary=\"a b:c?\"").as_deref(),
            Some("a b:c?")
        );
        assert_eq!(
            b("multipart/form-data; charset=utf-8; boundary=\"----WebKitFormBoundary7MA4YWxk\";")
                .as_deref(),
            Some("----WebKitFormBoundary7MA4YWxk")
        );
        assert_eq!(
            b(&format!("multipart/form-data; boundary={B}")).as_deref(),
            Some(B)
        );
        assert_eq!(
            b("  multipart/form-data ; boundary = x ").as_deref(),
            Some("x")
        );
        let seventy = "a".repeat(70);
        assert_eq!(
            b(&format!("multipart/form-data; boundary={seventy}")),
            Some(seventy.clone())
        );
        // Wrong type, missing, empty, too long, invalid characters, malformed parameters.
        assert_eq!(b("multipart/mixed; boundary=abc"), None);
        assert_eq!(b("application/octet-stream"), None);
        assert_eq!(b("multipart/form-data"), None);
        assert_eq!(b("multipart/form-data; boundary="), None);
        assert_eq!(b("multipart/form-data; boundary=\"\""), None);
        assert_eq!(
            b(&format!("multipart/form-data; boundary={seventy}a")),
            None
        );
        assert_eq!(
            b("multipart/form-data; boundary=\"ends with space \""),
            None
        );
        assert_eq!(b("multipart/form-data; boundary=\"a\r\nb\""), None);
        assert_eq!(b("multipart/form-data; boundary=\"unterminated"), None);
        assert_eq!(b("multipart/form-data; boundary=a b"), None);
        assert_eq!(b("multipart/form-data; boundary=a; boundary=b"), None);
        assert_eq!(b("multipart/form-data; junk; boundary=a"), None);
    }

    #[test]
    fn find_byte_matches_naive_search() {
        let mut rng = Rng(5);
        for len in 0..100 {
            let mut hay: Vec<u8> = (0..len).map(|_| rng.next() as u8 | 0x80).collect();
            assert_eq!(find_byte(b'\r', &hay), None);
            for _ in 0..3 {
                if len > 0 {
                    let at = rng.below(len);
                    hay[at] = b'\r';
                    // Neighbours that trip a naive SWAR carry (0x0e just above 0x0d).
                    if at + 1 < len {
                        hay[at + 1] = b'\x0e';
                    }
                }
                assert_eq!(find_byte(b'\r', &hay), hay.iter().position(|&b| b == b'\r'));
            }
        }
    }
}

#[cfg(test)]
mod field_tests {
    use super::*;

    fn body(parts: &[(&str, Option<&str>, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, file, value) in parts {
            b.extend_from_slice(b"--XyZ\r\n");
            match file {
                Some(f) => b.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => b.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            b.extend_from_slice(value.as_bytes());
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--XyZ--\r\n");
        b
    }

    #[test]
    fn fields_before_the_file_are_kept_only_when_asked_and_bounded() {
        let raw = body(&[
            ("_csrf", None, "abc"),
            ("version", None, "1.0"),
            ("file", Some("a.bin"), "DATA"),
            ("after", None, "ignored"),
        ]);
        let mut p = FirstFilePart::keeping_fields(&raw[..], "XyZ");
        p.open().expect("open");
        assert_eq!(
            p.fields(),
            [
                ("_csrf".to_string(), "abc".to_string()),
                ("version".to_string(), "1.0".to_string())
            ]
        );
        let mut data = Vec::new();
        p.read_to_end(&mut data).expect("read");
        assert_eq!(data, b"DATA");
        assert_eq!(p.filename(), Some("a.bin"));
        // Not asked: skipped, whatever their size.
        let big = "x".repeat(10_000);
        let raw = body(&[("big", None, &big), ("file", Some("a"), "D")]);
        let mut p = FirstFilePart::new(&raw[..], "XyZ");
        p.open().expect("open");
        assert!(p.fields().is_empty());
        // Asked: a field over 4 KiB, or a 17th, is an error.
        let mut p = FirstFilePart::keeping_fields(&raw[..], "XyZ");
        assert_eq!(p.open().map_err(|e| e.kind()), Err(ErrorKind::InvalidData));
        let many: Vec<(String, Option<&str>, &str)> =
            (0..17).map(|i| (format!("f{i}"), None, "v")).collect();
        let mut parts: Vec<(&str, Option<&str>, &str)> =
            many.iter().map(|(n, f, v)| (n.as_str(), *f, *v)).collect();
        parts.push(("file", Some("a"), "D"));
        let raw = body(&parts);
        let mut p = FirstFilePart::keeping_fields(&raw[..], "XyZ");
        assert_eq!(p.open().map_err(|e| e.kind()), Err(ErrorKind::InvalidData));
    }
}
