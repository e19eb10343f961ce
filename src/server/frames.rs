//! Every frame a shard sends, in ZooKeeper's layouts: replies to reads and writes, header-only
//! replies (auth) and the SASL one, watch notifications, connect responses; and the sizes of
//! the variable replies, so a read can be refused before its reply is built (docs/decisions.md,
//! "Replies too large to hold"). Four-letter answers are the one unframed output: plain text,
//! then the connection closes (`four_letter_text`). Pure.

use bytes::{BufMut, BytesMut};

use crate::proto::codes::{op, state, xid, Code};
use crate::proto::jute::Writer;
use crate::proto::records::{
    put_multi_header, put_reply_header, put_watcher_event, ConnectResponse,
};
use crate::proto::{finish_frame, start_frame};
use crate::tree::OpResult;
use crate::txn::TxnOp;

/// A reply frame's length prefix and header (xid, zxid, err).
pub(super) const FRAME_HEADER_BYTES: usize = 4 + 16;
/// A multi result's header (type, done, err).
pub(super) const MULTI_HEADER_BYTES: usize = 9;
/// An encoded `Stat`: six i64 and five i32.
pub(super) const STAT_BYTES: usize = 6 * 8 + 5 * 4;

/// Encoded size of a jute vector of strings.
pub(super) fn strings_bytes<S: AsRef<str>>(v: impl IntoIterator<Item = S>) -> usize {
    v.into_iter().fold(4, |n, s| n + 4 + s.as_ref().len())
}

/// Encoded size of a jute buffer (null: just its -1 length).
pub(super) fn buffer_bytes(b: Option<&[u8]>) -> usize {
    4 + b.map_or(0, <[u8]>::len)
}

/// Writes a reply frame whose body is produced by `body`; if `body` fails, the frame carries
/// only the header with the error code, as ZooKeeper sends it.
pub(super) fn reply(
    out: &mut BytesMut,
    xid: i32,
    zxid: i64,
    body: impl FnOnce(&mut BytesMut) -> Result<(), Code>,
) {
    let at = start_frame(out);
    put_reply_header(out, xid, zxid, Code::Ok);
    if let Err(code) = body(out) {
        out.truncate(at + 4 + 16);
        out[at + 4 + 12..at + 4 + 16].copy_from_slice(&code.as_i32().to_be_bytes());
    }
    finish_frame(out, at);
}

/// A reply that is its header alone: `code` in the err field (auth's answer).
pub(super) fn header_only(out: &mut BytesMut, xid: i32, zxid: i64, code: Code) {
    let at = start_frame(out);
    put_reply_header(out, xid, zxid, code);
    finish_frame(out, at);
}

/// The answer to a SASL packet when no SASL is configured: OK with a null token, as ZooKeeper.
pub(super) fn sasl_none(out: &mut BytesMut, xid: i32) {
    sasl_reply(out, xid, Code::Ok, None);
}

/// A SetSASLResponse: `code` in the header (a failed login's too) and the server's token.
pub(super) fn sasl_reply(out: &mut BytesMut, xid: i32, code: Code, token: Option<&[u8]>) {
    let at = start_frame(out);
    put_reply_header(out, xid, 0, code);
    out.put_jbuffer_opt(token);
    finish_frame(out, at);
}

/// A watch notification: event `kind` on `path`, in the connected state.
#[inline]
pub(super) fn notification(out: &mut BytesMut, kind: i32, path: &str) {
    let at = start_frame(out);
    put_reply_header(out, xid::NOTIFICATION, -1, Code::Ok);
    put_watcher_event(out, kind, state::SYNC_CONNECTED, path);
    finish_frame(out, at);
}

/// The response to a connect request.
pub(super) fn connect_response(out: &mut BytesMut, resp: &ConnectResponse) {
    let at = start_frame(out);
    resp.encode(out);
    finish_frame(out, at);
}

/// A four-letter word's answer: its text as is, no length prefix (ZooKeeper writes the text and
/// closes the connection).
pub(super) fn four_letter_text(out: &mut BytesMut, text: &str) {
    out.extend_from_slice(text.as_bytes());
}

/// The reply to a write, from the txn and what applying it produced.
pub(super) fn encode_write_reply(
    out: &mut BytesMut,
    opcode: i32,
    xid: i32,
    zxid: i64,
    txn_op: &TxnOp,
    results: &[OpResult],
) {
    match (txn_op, opcode) {
        (TxnOp::Multi(ops), _) => reply(out, xid, zxid, |b| {
            for (o, r) in ops.iter().zip(results) {
                match (o, r) {
                    (TxnOp::Create { opcode, .. }, OpResult::Created { path, stat }) => {
                        if *opcode == op::CREATE {
                            put_multi_header(b, op::CREATE, false, 0);
                            b.put_jstring(path);
                        } else {
                            put_multi_header(b, op::CREATE2, false, 0);
                            b.put_jstring(path);
                            stat.encode(b);
                        }
                    }
                    (_, OpResult::Deleted) => put_multi_header(b, op::DELETE, false, 0),
                    (_, OpResult::SetData(stat)) => {
                        put_multi_header(b, op::SET_DATA, false, 0);
                        stat.encode(b);
                    }
                    (_, OpResult::Checked) => put_multi_header(b, op::CHECK, false, 0),
                    _ => unreachable!("multi op result mismatch"),
                }
            }
            put_multi_header(b, -1, true, -1);
            Ok(())
        }),
        (TxnOp::MultiError(codes), _) => reply(out, xid, zxid, |b| {
            for code in codes {
                put_multi_header(b, op::ERROR, false, code.as_i32());
                b.put_i32(code.as_i32());
            }
            put_multi_header(b, -1, true, -1);
            Ok(())
        }),
        _ => reply(out, xid, zxid, |b| match results.first() {
            Some(OpResult::Error(code)) => Err(*code),
            Some(OpResult::Created { path, stat }) => {
                b.put_jstring(path);
                if opcode != op::CREATE {
                    stat.encode(b);
                }
                Ok(())
            }
            Some(OpResult::SetData(stat)) | Some(OpResult::SetAcl(stat)) => {
                stat.encode(b);
                Ok(())
            }
            _ => Ok(()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::records::Stat;

    #[test]
    fn sizes_match_the_encoding() {
        let mut b = BytesMut::new();
        reply(&mut b, 1, 2, |b| {
            b.put_jstrings(&["a", "bcd"]);
            b.put_jbuffer_opt(Some(b"xyz"));
            b.put_jbuffer_opt(None);
            put_multi_header(b, 1, false, 0);
            Stat::default().encode(b);
            Ok(())
        });
        let expected = FRAME_HEADER_BYTES
            + strings_bytes(["a", "bcd"])
            + buffer_bytes(Some(b"xyz"))
            + buffer_bytes(None)
            + MULTI_HEADER_BYTES
            + STAT_BYTES;
        assert_eq!(b.len(), expected);
    }
}
