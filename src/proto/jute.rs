//! Jute, ZooKeeper's record encoding: big-endian integers, `i32`-length-prefixed buffers and
//! strings (length -1 means null), `i32`-count-prefixed vectors, one-byte booleans.
//!
//! Decoding is pure and bounded: a reader never reads past its slice, never allocates more than
//! the bytes it was given, and reports a short input as [`DecodeError::Truncated`] so a caller can
//! tell "need more bytes" from "invalid data".
//!
//! Lengths follow ZooKeeper's `BinaryInputArchive`: -1 is null, any other negative length is
//! invalid (ZooKeeper throws "Unreasonable length"). Strings from clients are decoded as Java
//! decodes them (`new String(bytes, UTF_8)`): invalid UTF-8 becomes U+FFFD rather than an error,
//! so a bad path meets the same checks (BadArguments, NoNode) it meets in ZooKeeper. Strings
//! from our own files stay strict ([`Reader::string`]), where bad UTF-8 means corruption.

use bytes::{BufMut, Bytes, BytesMut};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The record ends before the bytes do.
    Truncated,
    /// The bytes cannot be a valid record (bad length, bad UTF-8, unknown enum value).
    Invalid(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => write!(f, "record truncated"),
            DecodeError::Invalid(why) => write!(f, "invalid record: {why}"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub type DecodeResult<T> = Result<T, DecodeError>;

/// A cursor over one frame's payload. Buffers are returned as zero-copy slices of the frame.
pub struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> DecodeResult<&[u8]> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn bool(&mut self) -> DecodeResult<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A buffer; null (-1) decodes as empty, as ZooKeeper's server treats it.
    pub fn buffer(&mut self) -> DecodeResult<Bytes> {
        Ok(self.buffer_opt()?.unwrap_or_default())
    }

    /// A buffer that may be null (-1): znode data keeps the difference, as ZooKeeper does.
    pub fn buffer_opt(&mut self) -> DecodeResult<Option<Bytes>> {
        let len = self.i32()?;
        if len == -1 {
            return Ok(None);
        }
        if len < 0 {
            return Err(DecodeError::Invalid("negative length"));
        }
        let len = len as usize;
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let b = self.buf.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(Some(b))
    }

    /// A UTF-8 string; null (-1) decodes as empty.
    pub fn string(&mut self) -> DecodeResult<String> {
        let b = self.buffer()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::Invalid("string is not UTF-8"))
    }

    /// A client's string, None when null; invalid UTF-8 sequences become U+FFFD, as in Java.
    pub fn string_lossy_opt(&mut self) -> DecodeResult<Option<String>> {
        Ok(self
            .buffer_opt()?
            .map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// A client's string; null decodes as empty.
    pub fn string_lossy(&mut self) -> DecodeResult<String> {
        Ok(self.string_lossy_opt()?.unwrap_or_default())
    }

    /// A client's path where ZooKeeper dereferences it before any check, so a null one fails
    /// with a NullPointerException that it answers as MarshallingError.
    pub fn path(&mut self) -> DecodeResult<String> {
        self.string_lossy_opt()?
            .ok_or(DecodeError::Invalid("null path"))
    }

    /// A vector count; -1 (null) is an empty vector. The count is checked against the bytes left
    /// (every element takes at least `min_elem_bytes`) so a hostile count cannot make us allocate.
    pub fn vec_len(&mut self, min_elem_bytes: usize) -> DecodeResult<usize> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        if n.saturating_mul(min_elem_bytes.max(1)) > self.remaining() {
            return Err(DecodeError::Truncated);
        }
        Ok(n)
    }

    pub fn strings(&mut self) -> DecodeResult<Vec<String>> {
        let n = self.vec_len(4)?;
        (0..n).map(|_| self.string()).collect()
    }

    /// A vector of client strings, decoded as [`Reader::string_lossy`].
    pub fn strings_lossy(&mut self) -> DecodeResult<Vec<String>> {
        let n = self.vec_len(4)?;
        (0..n).map(|_| self.string_lossy()).collect()
    }
}

/// Encoding helpers on `BytesMut`.
pub trait Writer {
    fn put_jbool(&mut self, v: bool);
    fn put_jbuffer(&mut self, b: &[u8]);
    fn put_jbuffer_opt(&mut self, b: Option<&[u8]>);
    fn put_jstring(&mut self, s: &str);
    fn put_jstrings<S: AsRef<str>>(&mut self, v: &[S]);
}

impl Writer for BytesMut {
    fn put_jbool(&mut self, v: bool) {
        self.put_u8(v as u8);
    }

    fn put_jbuffer(&mut self, b: &[u8]) {
        self.put_i32(b.len() as i32);
        self.put_slice(b);
    }

    fn put_jbuffer_opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.put_jbuffer(b),
            None => self.put_i32(-1),
        }
    }

    fn put_jstring(&mut self, s: &str) {
        self.put_jbuffer(s.as_bytes());
    }

    fn put_jstrings<S: AsRef<str>>(&mut self, v: &[S]) {
        self.put_i32(v.len() as i32);
        for s in v {
            self.put_jstring(s.as_ref());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut b = BytesMut::new();
        b.put_i32(7);
        b.put_i64(-2);
        b.put_jstring("/a");
        b.put_jbool(true);
        b.put_jstrings(&["x", "yz"]);
        let bytes = b.freeze();
        let mut r = Reader::new(bytes.clone());
        assert_eq!(r.i32(), Ok(7));
        assert_eq!(r.i64(), Ok(-2));
        assert_eq!(r.string().unwrap(), "/a");
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.strings().unwrap(), vec!["x", "yz"]);
        assert_eq!(r.remaining(), 0);
        for cut in 0..bytes.len() {
            let mut r = Reader::new(bytes.slice(..cut));
            let res = (|| {
                r.i32()?;
                r.i64()?;
                r.string()?;
                r.bool()?;
                r.strings()
            })();
            assert_eq!(res, Err(DecodeError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_vector_count_does_not_allocate() {
        let mut b = BytesMut::new();
        b.put_i32(i32::MAX);
        let mut r = Reader::new(b.freeze());
        assert_eq!(r.strings(), Err(DecodeError::Truncated));
    }

    #[test]
    fn negative_lengths_other_than_null_are_invalid() {
        for len in [-2, -5, i32::MIN] {
            let mut b = BytesMut::new();
            b.put_i32(len);
            let bytes = b.freeze();
            assert!(matches!(
                Reader::new(bytes.clone()).buffer_opt(),
                Err(DecodeError::Invalid(_))
            ));
            assert!(matches!(
                Reader::new(bytes).string_lossy(),
                Err(DecodeError::Invalid(_))
            ));
        }
    }

    #[test]
    fn client_strings_decode_as_java_does() {
        let mut b = BytesMut::new();
        b.put_jbuffer(b"/p\xff");
        b.put_i32(-1);
        b.put_i32(-1);
        let mut r = Reader::new(b.freeze());
        assert_eq!(r.string_lossy().unwrap(), "/p\u{fffd}");
        assert_eq!(r.string_lossy().unwrap(), "");
        assert_eq!(r.path(), Err(DecodeError::Invalid("null path")));
    }

    #[test]
    fn null_buffer_is_empty() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        assert_eq!(Reader::new(b.freeze()).buffer().unwrap().len(), 0);
    }
}
