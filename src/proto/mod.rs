//! The ZooKeeper client wire protocol: length-prefixed frames carrying jute records. Pure: no
//! I/O, no allocation beyond what a frame's bytes justify.

pub mod codes;
pub mod jute;
pub mod records;

use bytes::{Buf, Bytes, BytesMut};

/// What the frame decoder found at the front of a connection's read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete frame payload (the length prefix removed).
    Payload(Bytes),
    /// More bytes are needed.
    Incomplete,
    /// The length prefix is negative or larger than `jute.maxbuffer`: ZooKeeper closes the
    /// connection ("Len error").
    TooLarge(i32),
}

/// Splits one frame off `buf` if a whole one is there. `max_len` is jute.maxbuffer; ZooKeeper
/// allows payloads up to and including it.
pub fn split_frame(buf: &mut BytesMut, max_len: usize) -> Frame {
    if buf.len() < 4 {
        return Frame::Incomplete;
    }
    let len = i32::from_be_bytes(buf[..4].try_into().unwrap());
    if len < 0 || len as usize > max_len {
        return Frame::TooLarge(len);
    }
    let len = len as usize;
    if buf.len() < 4 + len {
        return Frame::Incomplete;
    }
    buf.advance(4);
    Frame::Payload(buf.split_to(len).freeze())
}

/// Reserves a 4-byte length slot at the end of `b`; [`finish_frame`] fills it in.
pub fn start_frame(b: &mut BytesMut) -> usize {
    let at = b.len();
    b.extend_from_slice(&[0; 4]);
    at
}

pub fn finish_frame(b: &mut BytesMut, at: usize) {
    let len = (b.len() - at - 4) as i32;
    b[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_bound() {
        let mut b = BytesMut::new();
        let at = start_frame(&mut b);
        b.extend_from_slice(b"hello");
        finish_frame(&mut b, at);
        b.extend_from_slice(&[0, 0]);
        assert_eq!(
            split_frame(&mut b, 100),
            Frame::Payload(Bytes::from_static(b"hello"))
        );
        assert_eq!(split_frame(&mut b, 100), Frame::Incomplete);
        let mut big = BytesMut::from(&101i32.to_be_bytes()[..]);
        assert_eq!(split_frame(&mut big, 100), Frame::TooLarge(101));
        let mut neg = BytesMut::from(&(-5i32).to_be_bytes()[..]);
        assert_eq!(split_frame(&mut neg, 100), Frame::TooLarge(-5));
    }
}
