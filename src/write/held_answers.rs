//! The order of a learner's answers to one connection when some are decided on the learner
//! (`Machine::deferred`) and held behind what the connection sent the leader before them:
//! the events of the ensemble simulator's seed 154 (3 voters and an observer), replayed on one
//! follower's machine without the simulator's randomness. The shard fills the oldest
//! unanswered request's reply with whatever answer comes next, so the answers must leave the
//! machine in the order of the requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::BytesMut;

use super::{Base, Effect, Machine, Now, Origin, Recent, ToCore, ToShard};
use crate::config::{Config, PeerRole, ServerSpec};
use crate::proto::codes::Code;
use crate::session::Local;
use crate::storage::codec::encode_txn;
use crate::txn::{Txn, TxnOp};
use crate::zab::Zxid;

const CONN: Origin = Origin { shard: 1, conn: 57 };
const SESSION: i64 = 0x200_000f_447f_0000;

/// Member 2 of three voters, with local sessions that are not upgraded; it has not joined a
/// leader (the test plays the leader's part by hand).
fn follower() -> Machine {
    let servers: BTreeMap<_, _> = (1..=3)
        .map(|id| {
            let spec = ServerSpec {
                id,
                host: "127.0.0.1".to_string(),
                quorum_port: 2880 + id as u16,
                election_port: 3880 + id as u16,
                role: PeerRole::Participant,
                client: None,
            };
            (id, spec)
        })
        .collect();
    let cfg = Config {
        servers,
        my_id: Some(2),
        local_sessions_enabled: true,
        local_sessions_upgrading_enabled: false,
        ..Config::default()
    };
    let mut effects = Vec::new();
    Machine::new(
        Arc::new(cfg),
        Base::Own(Box::default()),
        Recent::default(),
        (1, 1),
        2,
        at(0),
        Box::new(|| [7; 16]),
        &mut effects,
    )
}

fn at(mono_ms: u64) -> Now {
    Now {
        mono_ms,
        wall_ms: 1_000_000 + mono_ms as i64,
    }
}

/// The connection's request `cxid` forwarded to the leader as request number `n`.
fn forward(m: &mut Machine, cxid: i32, n: u64) {
    m.next_request = n;
    m.forwarded.insert((SESSION, cxid), (CONN, n));
}

/// The leader's proposal of the connection's request `cxid` (a failed create: it changes
/// nothing) arrives.
fn learn(m: &mut Machine, zxid: Zxid, cxid: i32) {
    let txn = Txn {
        session_id: SESSION,
        cxid,
        zxid: zxid as i64,
        time_ms: 1_000_000,
        op: TxnOp::Error(Code::NodeExists),
    };
    let mut b = BytesMut::new();
    encode_txn(&txn, &mut b);
    m.learned(zxid, b.freeze());
}

/// What reaches the connection, in order: `W<cxid>` for a commit that answers it.
fn answers(m: &mut Machine) -> Vec<String> {
    let mut out = Vec::new();
    m.release(&mut out);
    let mut seen = Vec::new();
    for e in out {
        let Effect::Send { shard, msg } = e else {
            continue;
        };
        match msg {
            // Every shard gets the commits; the connection's is the one that answers.
            ToShard::Commits(batch) if shard == CONN.shard => seen.extend(
                batch
                    .iter()
                    .filter(|c| c.origin == Some(CONN))
                    .map(|c| format!("W{}", c.txn.cxid)),
            ),
            ToShard::Synced { conn, .. } if (shard, conn) == (CONN.shard, CONN.conn) => {
                seen.push("Sync".into())
            }
            ToShard::Refused { conn, code } if (shard, conn) == (CONN.shard, CONN.conn) => {
                seen.push(format!("Refused({code:?})"))
            }
            ToShard::Close { conn } if (shard, conn) == (CONN.shard, CONN.conn) => {
                seen.push("Close".into())
            }
            _ => {}
        }
    }
    seen
}

/// Sync (27), create (28), ephemeral create (29: EPHEMERALONLOCALSESSION, decided here and held
/// behind the sync and 28), create (30); both creates are proposed; the local session expires
/// (its connection must close); then the sync's answer comes, and the commits. The refusal
/// must answer 29, between 28's and 30's replies; the close comes last. Before the fix the
/// close went ahead of the held refusal, which then followed 30's commit: the shard gave 29
/// the reply of 30.
#[test]
fn a_close_waits_behind_the_answer_held_before_it() {
    let mut m = follower();
    // The connection's local session, as its handshake left it; the member serves.
    let local = Local {
        password: [7; 16],
        timeout_ms: 1000,
    };
    m.local.add(SESSION, local, 0);
    m.owners.insert(SESSION, CONN);
    m.serving = true;
    m.next_request = 9;
    m.syncs.insert(9, (CONN, "/".to_string(), 27));
    forward(&mut m, 28, 10);
    let refused = ToShard::Refused {
        conn: CONN.conn,
        code: Code::EphemeralOnLocalSession,
    };
    m.answer_in_turn(CONN, refused);
    assert_eq!(m.deferred.len(), 1, "held behind the sync and 28");
    forward(&mut m, 30, 11);
    learn(&mut m, 0x1_0000_009a, 28);
    learn(&mut m, 0x1_0000_009c, 30);
    // The local session expires on a tick (its client silent past its timeout): its
    // connection closes.
    let mut effects = Vec::new();
    m.handle::<()>(at(5_000), ToCore::Tick, &mut effects);
    assert!(m.local.get(SESSION).is_none(), "the local session expired");
    m.sync_done(9);
    m.commit_upto(0x1_0000_009c);
    m.release_deferred();
    assert_eq!(
        answers(&mut m),
        [
            "Sync",
            "W28",
            "Refused(EphemeralOnLocalSession)",
            "W30",
            "Close"
        ]
    );
}
