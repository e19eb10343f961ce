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

/// Drives every decoder over arbitrary bytes, as a connection would see them: the first frame as
/// a connect request, the rest as requests of every opcode. Used by the fuzz target
/// (`fuzz/fuzz_targets/decode.rs`) and by the malformed-input tests; it must never panic.
pub fn decode_everything(input: &[u8], max_len: usize) {
    let mut buf = BytesMut::from(input);
    let mut first = true;
    while let Frame::Payload(p) = split_frame(&mut buf, max_len) {
        if first {
            let _ = records::ConnectRequest::decode(p.clone());
            first = false;
        }
        let mut r = jute::Reader::new(p.clone());
        if let (Ok(_xid), Ok(opcode)) = (r.i32(), r.i32()) {
            let _ = records::Request::decode(opcode, &mut r);
        }
        // Every opcode against the same body, to reach every decoder from any input.
        for opcode in [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 17, 18, 19, 21, 22, 100, 101,
        ]
        .into_iter()
        .chain([103, 104, 105, 106])
        {
            let mut r = jute::Reader::new(p.clone());
            let _ = records::Request::decode(opcode, &mut r);
        }
    }
}

#[cfg(test)]
mod fuzz_corpus {
    /// A deterministic stand-in for the fuzzer under `cargo test`: mutated valid frames and
    /// random bytes through every decoder.
    #[test]
    fn decoders_survive_garbage() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let valid: Vec<u8> = {
            let mut b = bytes::BytesMut::new();
            let at = super::start_frame(&mut b);
            b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 14]);
            for _ in 0..3 {
                b.extend_from_slice(&[0, 0, 0, 1, 0, 255, 255, 255, 255]);
                b.extend_from_slice(&[0, 0, 0, 2, b'/', b'a', 0, 0, 0, 0]);
                b.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            super::finish_frame(&mut b, at);
            b.to_vec()
        };
        for _ in 0..20_000 {
            let mut input = valid.clone();
            for _ in 0..(next() % 8) {
                let i = (next() as usize) % input.len();
                input[i] = next() as u8;
            }
            input.truncate((next() as usize) % (input.len() + 1));
            super::decode_everything(&input, 1 << 20);
            let random: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            super::decode_everything(&random, 1 << 20);
        }
    }
}
