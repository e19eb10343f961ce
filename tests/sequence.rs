//! Sequential names past 2^31 creations under one parent, on the real server: the state is
//! restored from a snapshot written with corral's own snapshot writer, the tree in it reached by
//! applying the create txn that 2^31 - 2 creations would have ended with (replaying 2^31
//! creates would take days). corral answers as ZooKeeper does (docs/decisions.md, "Sequence
//! numbers past 2^31").

mod common;

use common::raw::{self, err};
use common::*;
use corral::proto::records::Acl;
use corral::storage::snapshot::{snapshot_name, Cursor};
use corral::tree::DataTree;
use corral::txn::{Txn, TxnOp};

fn create(zxid: i64, path: &str, parent_cversion: i32) -> Txn {
    Txn {
        session_id: 0,
        cxid: 0,
        zxid,
        time_ms: 1,
        op: TxnOp::Create {
            opcode: raw::op::CREATE,
            path: path.into(),
            data: None,
            acl: Acl::open_unsafe(),
            ephemeral_owner: 0,
            parent_cversion,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_creates_past_the_counter_limit_answer_node_exists() {
    timed(120, async {
        let mut s = TestServer::start_default().await;
        s.stop();
        let data = s.data_dir();
        std::fs::remove_dir_all(&data).unwrap();
        std::fs::create_dir_all(data.join("snapshots")).unwrap();
        let mut tree = DataTree::new();
        tree.apply(&create(1, "/q", 0));
        tree.apply(&create(2, "/q/x", i32::MAX - 1));
        let mut snap = Vec::new();
        let mut cursor = Cursor::new();
        cursor.begin(&tree, &mut snap);
        while !cursor.step(&tree, 1000, &mut snap) {}
        std::fs::write(data.join("snapshots").join(snapshot_name(2)), snap).unwrap();
        s.start_again().await;

        let mut c = s.raw().await;
        let r = c.create("/q/s-", b"", 2).await;
        assert_eq!((r.err, r.dec().str()), (0, "/q/s-2147483646".to_string()));
        let r = c.create("/q/s-", b"", 2).await;
        assert_eq!((r.err, r.dec().str()), (0, "/q/s-2147483647".to_string()));
        for _ in 0..3 {
            assert_eq!(c.create("/q/s-", b"", 2).await.err, err::NODE_EXISTS);
        }
        // Once the last name is free it is handed out again, as in ZooKeeper.
        assert_eq!(c.delete("/q/s-2147483647", -1).await.err, 0);
        let r = c.create("/q/s-", b"", 2).await;
        assert_eq!((r.err, r.dec().str()), (0, "/q/s-2147483647".to_string()));
        // Survives a restart (log replay on top of the snapshot).
        s.restart().await;
        let mut c = s.raw().await;
        assert_eq!(c.create("/q/s-", b"", 2).await.err, err::NODE_EXISTS);
        assert_eq!(c.get_data("/q/s-2147483646", false).await.err, 0);
    })
    .await
}
