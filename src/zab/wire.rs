//! The bytes of `peer::Msg` between ensemble members: frames as on the client port (a 4-byte
//! big-endian length, then the payload), each payload a one-byte type and jute fields.
//!
//! Type numbers are ZooKeeper's `Leader` packet constants where one exists (PROPOSAL 2, ACK 3,
//! ...), so a packet dump reads the same; election votes, which ZooKeeper sends on another port,
//! are type 100 here. Every link starts with a `Hello` from each side: a magic, the protocol
//! version and the sender's sid. Decoding is pure and never panics: a frame that does not decode,
//! or has bytes left over, is an error and the owner closes the link (docs/design/replication.md).

use bytes::{BufMut, Bytes, BytesMut};

use super::election::{Notification, PeerState, Vote};
use super::peer::Msg;
use super::Sid;
use crate::proto::jute::{DecodeError, DecodeResult, Reader, Writer};
use crate::proto::{finish_frame, split_frame, start_frame, Frame};

/// The first bytes of every link, from both ends.
pub const MAGIC: &[u8; 8] = b"corralQ1";
/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The greeting each end of a link sends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello {
    pub version: u32,
    pub sid: Sid,
}

const REQUEST: u8 = 1;
const PROPOSAL: u8 = 2;
const ACK: u8 = 3;
const COMMIT: u8 = 4;
const PING: u8 = 5;
const SYNC: u8 = 7;
const INFORM: u8 = 8;
const NEWLEADER: u8 = 10;
const FOLLOWERINFO: u8 = 11;
const UPTODATE: u8 = 12;
const DIFF: u8 = 13;
const TRUNC: u8 = 14;
const SNAP: u8 = 15;
const LEADERINFO: u8 = 17;
const ACKEPOCH: u8 = 18;
/// corral's own: ZooKeeper's leader has no answer for a request it cannot log.
const REFUSED: u8 = 64;
const VOTE: u8 = 100;

/// Appends `hello` as one frame.
pub fn encode_hello(hello: Hello, out: &mut BytesMut) {
    let at = start_frame(out);
    out.put_slice(MAGIC);
    out.put_u32(hello.version);
    out.put_u64(hello.sid);
    finish_frame(out, at);
}

/// A greeting's payload (the frame's length removed).
pub fn decode_hello(payload: Bytes) -> DecodeResult<Hello> {
    let mut r = Reader::new(payload);
    let mut magic = [0u8; 8];
    for b in &mut magic {
        *b = r.u8()?;
    }
    if &magic != MAGIC {
        return Err(DecodeError::Invalid("not a corral quorum link"));
    }
    let hello = Hello {
        version: r.i32()? as u32,
        sid: r.i64()? as u64,
    };
    done(&r)?;
    Ok(hello)
}

/// Appends `msg` as one frame.
pub fn encode(msg: &Msg, out: &mut BytesMut) {
    let at = start_frame(out);
    match msg {
        Msg::Vote(n) => {
            out.put_u8(VOTE);
            out.put_u64(n.vote.leader);
            out.put_u64(n.vote.zxid);
            out.put_u32(n.vote.peer_epoch);
            out.put_u64(n.round);
            out.put_u8(match n.state {
                PeerState::Looking => 0,
                PeerState::Following => 1,
                PeerState::Leading => 2,
                PeerState::Observing => 3,
            });
        }
        Msg::FollowerInfo {
            accepted_epoch,
            last_zxid,
        } => {
            out.put_u8(FOLLOWERINFO);
            out.put_u32(*accepted_epoch);
            out.put_u64(*last_zxid);
        }
        Msg::LeaderInfo { epoch } => {
            out.put_u8(LEADERINFO);
            out.put_u32(*epoch);
        }
        Msg::AckEpoch {
            current_epoch,
            last_zxid,
        } => {
            out.put_u8(ACKEPOCH);
            out.put_u32(*current_epoch);
            out.put_u64(*last_zxid);
        }
        Msg::Diff { zxid } => zxid_only(out, DIFF, *zxid),
        Msg::Trunc { zxid } => zxid_only(out, TRUNC, *zxid),
        Msg::Commit { zxid } => zxid_only(out, COMMIT, *zxid),
        Msg::NewLeader { zxid } => zxid_only(out, NEWLEADER, *zxid),
        Msg::Ack { zxid } => zxid_only(out, ACK, *zxid),
        Msg::Snap { zxid, data } => with_bytes(out, SNAP, *zxid, data),
        Msg::Proposal { zxid, txn } => with_bytes(out, PROPOSAL, *zxid, txn),
        Msg::Inform { zxid, txn } => with_bytes(out, INFORM, *zxid, txn),
        Msg::UpToDate => out.put_u8(UPTODATE),
        Msg::Ping => out.put_u8(PING),
        Msg::Request { data } => {
            out.put_u8(REQUEST);
            out.put_jbuffer(data);
        }
        Msg::Sync { id } => {
            out.put_u8(SYNC);
            out.put_u64(*id);
        }
        Msg::Refused { data } => {
            out.put_u8(REFUSED);
            out.put_jbuffer(data);
        }
    }
    finish_frame(out, at);
}

fn zxid_only(out: &mut BytesMut, kind: u8, zxid: u64) {
    out.put_u8(kind);
    out.put_u64(zxid);
}

fn with_bytes(out: &mut BytesMut, kind: u8, zxid: u64, b: &[u8]) {
    out.put_u8(kind);
    out.put_u64(zxid);
    out.put_jbuffer(b);
}

/// A message's payload (the frame's length removed). Buffers are zero-copy slices of it.
pub fn decode(payload: Bytes) -> DecodeResult<Msg> {
    let mut r = Reader::new(payload);
    let u32_ = |r: &mut Reader| r.i32().map(|v| v as u32);
    let u64_ = |r: &mut Reader| r.i64().map(|v| v as u64);
    let msg = match r.u8()? {
        VOTE => {
            let vote = Vote {
                leader: u64_(&mut r)?,
                zxid: u64_(&mut r)?,
                peer_epoch: u32_(&mut r)?,
            };
            let round = u64_(&mut r)?;
            let state = match r.u8()? {
                0 => PeerState::Looking,
                1 => PeerState::Following,
                2 => PeerState::Leading,
                3 => PeerState::Observing,
                _ => return Err(DecodeError::Invalid("unknown peer state")),
            };
            Msg::Vote(Notification { vote, round, state })
        }
        FOLLOWERINFO => Msg::FollowerInfo {
            accepted_epoch: u32_(&mut r)?,
            last_zxid: u64_(&mut r)?,
        },
        LEADERINFO => Msg::LeaderInfo {
            epoch: u32_(&mut r)?,
        },
        ACKEPOCH => Msg::AckEpoch {
            current_epoch: u32_(&mut r)?,
            last_zxid: u64_(&mut r)?,
        },
        DIFF => Msg::Diff {
            zxid: u64_(&mut r)?,
        },
        TRUNC => Msg::Trunc {
            zxid: u64_(&mut r)?,
        },
        COMMIT => Msg::Commit {
            zxid: u64_(&mut r)?,
        },
        NEWLEADER => Msg::NewLeader {
            zxid: u64_(&mut r)?,
        },
        ACK => Msg::Ack {
            zxid: u64_(&mut r)?,
        },
        SNAP => Msg::Snap {
            zxid: u64_(&mut r)?,
            data: r.buffer()?,
        },
        PROPOSAL => Msg::Proposal {
            zxid: u64_(&mut r)?,
            txn: r.buffer()?,
        },
        INFORM => Msg::Inform {
            zxid: u64_(&mut r)?,
            txn: r.buffer()?,
        },
        UPTODATE => Msg::UpToDate,
        PING => Msg::Ping,
        REQUEST => Msg::Request { data: r.buffer()? },
        SYNC => Msg::Sync { id: u64_(&mut r)? },
        REFUSED => Msg::Refused { data: r.buffer()? },
        _ => return Err(DecodeError::Invalid("unknown quorum message type")),
    };
    done(&r)?;
    Ok(msg)
}

fn done(r: &Reader) -> DecodeResult<()> {
    match r.remaining() {
        0 => Ok(()),
        _ => Err(DecodeError::Invalid("bytes after the message")),
    }
}

/// Runs the frame splitter, the greeting and the message decoder over arbitrary bytes; for the
/// fuzz target (`fuzz/fuzz_targets/quorum.rs`) and the tests. Never panics.
pub fn decode_stream(input: &[u8]) {
    let mut buf = BytesMut::from(input);
    let _ = decode_hello(Bytes::copy_from_slice(input));
    let _ = decode(Bytes::copy_from_slice(input));
    while let Frame::Payload(p) = split_frame(&mut buf, 1 << 20) {
        let _ = decode_hello(p.clone());
        let _ = decode(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn every_kind() -> Vec<Msg> {
        let b = Bytes::from_static(b"payload");
        vec![
            Msg::Vote(Notification {
                vote: Vote {
                    leader: 3,
                    zxid: 0x1_0000_0002,
                    peer_epoch: 1,
                },
                round: 9,
                state: PeerState::Observing,
            }),
            Msg::FollowerInfo {
                accepted_epoch: 4,
                last_zxid: u64::MAX,
            },
            Msg::LeaderInfo { epoch: u32::MAX },
            Msg::AckEpoch {
                current_epoch: 2,
                last_zxid: 7,
            },
            Msg::Diff { zxid: 1 },
            Msg::Trunc { zxid: 2 },
            Msg::Snap {
                zxid: 3,
                data: b.clone(),
            },
            Msg::Proposal {
                zxid: 4,
                txn: b.clone(),
            },
            Msg::Commit { zxid: 5 },
            Msg::Inform {
                zxid: 6,
                txn: Bytes::new(),
            },
            Msg::NewLeader { zxid: 1 << 32 },
            Msg::UpToDate,
            Msg::Ack { zxid: 8 },
            Msg::Ping,
            Msg::Request { data: b.clone() },
            Msg::Sync { id: 77 },
            Msg::Refused { data: b },
        ]
    }

    #[test]
    fn every_message_round_trips_through_one_stream() {
        let mut out = BytesMut::new();
        encode_hello(
            Hello {
                version: 1,
                sid: 42,
            },
            &mut out,
        );
        for m in every_kind() {
            encode(&m, &mut out);
        }
        let Frame::Payload(p) = split_frame(&mut out, 1 << 20) else {
            panic!("no hello frame");
        };
        assert_eq!(
            decode_hello(p),
            Ok(Hello {
                version: 1,
                sid: 42
            })
        );
        for m in every_kind() {
            let Frame::Payload(p) = split_frame(&mut out, 1 << 20) else {
                panic!("no frame for {m:?}");
            };
            assert_eq!(decode(p).as_ref(), Ok(&m));
        }
        assert!(out.is_empty());
    }

    #[test]
    fn short_long_and_unknown_payloads_are_errors() {
        for m in every_kind() {
            let mut out = BytesMut::new();
            encode(&m, &mut out);
            let payload = out.freeze().slice(4..);
            for cut in 0..payload.len() {
                assert!(decode(payload.slice(..cut)).is_err(), "{m:?} cut at {cut}");
            }
            let mut long = BytesMut::from(&payload[..]);
            long.put_u8(0);
            assert_eq!(
                decode(long.freeze()),
                Err(DecodeError::Invalid("bytes after the message")),
                "{m:?}"
            );
        }
        assert!(decode(Bytes::from_static(&[99])).is_err());
        assert!(decode(Bytes::from_static(&[VOTE, 0, 0, 0, 0, 0, 0, 0, 1])).is_err());
        let mut bad_state = BytesMut::new();
        bad_state.put_u8(VOTE);
        bad_state.put_slice(&[0; 28]);
        bad_state.put_u8(4);
        assert_eq!(
            decode(bad_state.freeze()),
            Err(DecodeError::Invalid("unknown peer state"))
        );
        assert!(decode_hello(Bytes::from_static(b"zookeeper-and-more")).is_err());
    }

    /// Random bytes and mutated valid frames never panic the decoders (the fuzz target
    /// `quorum` runs the same, longer).
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = StdRng::seed_from_u64(7);
        let valid: Vec<Bytes> = every_kind()
            .iter()
            .map(|m| {
                let mut out = BytesMut::new();
                encode(m, &mut out);
                out.freeze().slice(4..)
            })
            .collect();
        for i in 0..20_000 {
            let bytes: Vec<u8> = if i % 2 == 0 {
                (0..rng.gen_range(0..48)).map(|_| rng.gen()).collect()
            } else {
                let mut v = valid[rng.gen_range(0..valid.len())].to_vec();
                if !v.is_empty() {
                    let k = rng.gen_range(0..v.len());
                    v[k] = rng.gen();
                }
                v
            };
            decode_stream(&bytes);
        }
    }
}
