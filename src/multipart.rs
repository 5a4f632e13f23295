//! PLACEHOLDER until the streaming parser lands: refuses every multipart body.
use std::io::{self, Read};
pub fn boundary(_content_type: &str) -> Option<String> {
    None
}
pub struct FirstFilePart<R: Read> {
    _body: R,
}
impl<R: Read> FirstFilePart<R> {
    pub fn new(body: R, _boundary: &str) -> FirstFilePart<R> {
        FirstFilePart { _body: body }
    }
    pub fn open(&mut self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::InvalidData, "unsupported"))
    }
}
impl<R: Read> Read for FirstFilePart<R> {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::InvalidData, "unsupported"))
    }
}
