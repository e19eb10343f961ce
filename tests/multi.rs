//! multi (transactions), check, multiRead.

mod common;

use std::time::Duration;

use common::raw::{self, err, op, Enc, MultiOp, MultiResult};
use common::*;
use zk::{CreateMode, Error as ZkError, MultiReadResult, MultiWriteError, MultiWriteResult};
use zookeeper_client as zk;

/// Adds ops to a multi under test.
type FillMulti = Box<dyn Fn(&mut zk::MultiWriter)>;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_commits_all_ops_with_per_op_results() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/m", b"", &anyone()).await.unwrap();
        c.create("/m/old", b"", &anyone()).await.unwrap();

        let mut w = c.new_multi_writer();
        w.add_create("/m/a", b"A", &anyone()).unwrap();
        w.add_check_version("/m", 0).unwrap();
        w.add_set_data("/m", b"x", Some(0)).unwrap();
        w.add_create("/m/s-", b"", &mode(CreateMode::PersistentSequential))
            .unwrap();
        w.add_delete("/m/old", Some(0)).unwrap();
        w.add_create("/m/e", b"", &mode(CreateMode::Ephemeral))
            .unwrap();
        let results = w.commit().await.unwrap();
        assert_eq!(results.len(), 6);

        let MultiWriteResult::Create { path, stat } = &results[0] else {
            panic!("{:?}", results[0])
        };
        assert_eq!(path, "/m/a");
        // ZooKeeper 3.8.0 answers a create2 inside multi with a plain create
        // result (no stat; the crate then reports an invalid stat, see
        // ZOOKEEPER-4026). A server returning the real stat is also accepted.
        let zxid = if stat.is_invalid() {
            None
        } else {
            assert_eq!((stat.version, stat.data_length), (0, 1));
            Some(stat.czxid)
        };
        assert_eq!(results[1], MultiWriteResult::Check);
        let MultiWriteResult::SetData { stat } = &results[2] else {
            panic!("{:?}", results[2])
        };
        assert_eq!((stat.version, stat.data_length), (1, 1));
        assert_eq!(
            stat.cversion, 2,
            "/m saw /m/old and /m/a created before the setData"
        );
        assert_eq!(stat.num_children, 2);
        if let Some(z) = zxid {
            assert_eq!(stat.mzxid, z, "all ops of a multi share one zxid");
        }
        let multi_zxid = stat.mzxid;
        let MultiWriteResult::Create { path, .. } = &results[3] else {
            panic!("{:?}", results[3])
        };
        assert_eq!(path, "/m/s-0000000002");
        assert_eq!(results[4], MultiWriteResult::Delete);
        let MultiWriteResult::Create { path, .. } = &results[5] else {
            panic!("{:?}", results[5])
        };
        assert_eq!(path, "/m/e");

        // Everything is visible and stamped with the same zxid.
        let (data, a) = c.get_data("/m/a").await.unwrap();
        assert_eq!((data.as_slice(), a.czxid), (&b"A"[..], multi_zxid));
        assert_eq!(
            c.check_stat("/m/s-0000000002")
                .await
                .unwrap()
                .unwrap()
                .czxid,
            multi_zxid
        );
        assert_eq!(c.check_stat("/m/old").await.unwrap(), None);
        let e = c.check_stat("/m/e").await.unwrap().unwrap();
        assert_eq!((e.czxid, e.ephemeral_owner), (multi_zxid, c.session_id().0));
        let m = c.check_stat("/m").await.unwrap().unwrap();
        assert_eq!(m.pzxid, multi_zxid);
        let mut kids = c.list_children("/m").await.unwrap();
        kids.sort();
        assert_eq!(kids, vec!["a", "e", "s-0000000002"]);

        // An empty multi is answered by the crate without a round trip.
        assert_eq!(c.new_multi_writer().commit().await.unwrap(), vec![]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_is_all_or_nothing() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/m", b"orig", &anyone()).await.unwrap();
        let before = c.check_stat("/m").await.unwrap().unwrap();

        let mut w = c.new_multi_writer();
        w.add_create("/m/a", b"", &anyone()).unwrap();
        w.add_set_data("/m", b"changed", None).unwrap();
        w.add_create("/m", b"", &anyone()).unwrap(); // NodeExists
        w.add_delete("/m/a", None).unwrap();
        let e = w.commit().await.unwrap_err();
        assert_eq!(
            e,
            MultiWriteError::OperationFailed {
                index: 2,
                source: ZkError::NodeExists
            }
        );

        assert_eq!(
            c.check_stat("/m/a").await.unwrap(),
            None,
            "first create rolled back"
        );
        let (data, after) = c.get_data("/m").await.unwrap();
        assert_eq!(data, b"orig");
        assert_eq!(after, before, "setData rolled back, parent stat untouched");

        // Failures of each kind, and the index reported is the failing op.
        let cases: Vec<(FillMulti, usize, ZkError)> = vec![
            (
                Box::new(|w| w.add_check_version("/m", 5).unwrap()),
                0,
                ZkError::BadVersion,
            ),
            (
                Box::new(|w| w.add_check_version("/nope", 0).unwrap()),
                0,
                ZkError::NoNode,
            ),
            (
                Box::new(|w| w.add_delete("/nope", None).unwrap()),
                0,
                ZkError::NoNode,
            ),
            (
                Box::new(|w| w.add_set_data("/m", b"", Some(9)).unwrap()),
                0,
                ZkError::BadVersion,
            ),
            (
                Box::new(|w| w.add_create("/nope/x", b"", &anyone()).unwrap()),
                0,
                ZkError::NoNode,
            ),
        ];
        for (i, (add, idx, want)) in cases.into_iter().enumerate() {
            let mut w = c.new_multi_writer();
            add(&mut w);
            w.add_create(&format!("/side-{i}"), b"", &anyone()).unwrap();
            assert_eq!(
                w.commit().await.unwrap_err(),
                MultiWriteError::OperationFailed {
                    index: idx,
                    source: want
                }
            );
            assert_eq!(c.check_stat(&format!("/side-{i}")).await.unwrap(), None);
        }
        let mut w = c.new_multi_writer();
        w.add_create("/m/child", b"", &anyone()).unwrap();
        w.add_delete("/m", None).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            MultiWriteError::OperationFailed {
                index: 1,
                source: ZkError::NotEmpty
            },
            "ops see the effects of earlier ops in the same multi"
        );
        c.create("/eph", b"", &mode(CreateMode::Ephemeral))
            .await
            .unwrap();
        let mut w = c.new_multi_writer();
        w.add_create("/eph/x", b"", &anyone()).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            MultiWriteError::OperationFailed {
                index: 0,
                source: ZkError::NoChildrenForEphemerals
            }
        );
    })
    .await
}

/// The wire layout of a failed multi: ops before the failing one report
/// error 0, the failing op its error, later ops RuntimeInconsistency (-2);
/// the reply header's err is 0 and a zxid is consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_multi_result_layout_on_the_wire() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let mut r = s.raw().await;
        assert_eq!(r.create("/m", b"", 0).await.err, err::OK);

        let rep = r
            .call(
                op::MULTI,
                &raw::multi_body(&[
                    MultiOp::Create {
                        path: "/m/a",
                        data: b"",
                        flags: 0,
                    },
                    MultiOp::Check {
                        path: "/m",
                        version: 0,
                    },
                    MultiOp::Create {
                        path: "/m",
                        data: b"",
                        flags: 0,
                    },
                    MultiOp::SetData {
                        path: "/m",
                        data: b"x",
                        version: -1,
                    },
                    MultiOp::Delete {
                        path: "/m/a",
                        version: -1,
                    },
                ]),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK, "multi reply header carries no error");
        assert_eq!(
            raw::parse_multi(&rep.body),
            vec![
                MultiResult::Error(err::OK),
                MultiResult::Error(err::OK),
                MultiResult::Error(err::NODE_EXISTS),
                MultiResult::Error(err::RUNTIME_INCONSISTENCY),
                MultiResult::Error(err::RUNTIME_INCONSISTENCY),
            ]
        );
        let failed_zxid = rep.zxid;

        let rep = r
            .call(
                op::MULTI,
                &raw::multi_body(&[
                    MultiOp::Check {
                        path: "/nope",
                        version: 0,
                    },
                    MultiOp::Create {
                        path: "/x",
                        data: b"",
                        flags: 0,
                    },
                ]),
            )
            .await
            .unwrap();
        assert_eq!(rep.zxid, failed_zxid + 1, "a failed multi consumes a zxid");
        assert_eq!(
            raw::parse_multi(&rep.body),
            vec![
                MultiResult::Error(err::NO_NODE),
                MultiResult::Error(err::RUNTIME_INCONSISTENCY)
            ]
        );

        // Successful multi with plain create (op 1) returns path-only results.
        let rep = r
            .call(
                op::MULTI,
                &raw::multi_body(&[
                    MultiOp::Create {
                        path: "/x",
                        data: b"",
                        flags: 0,
                    },
                    MultiOp::Delete {
                        path: "/x",
                        version: 0,
                    },
                    MultiOp::Create {
                        path: "/x",
                        data: b"z",
                        flags: 0,
                    },
                    MultiOp::Check {
                        path: "/x",
                        version: 0,
                    },
                    MultiOp::Create {
                        path: "/x/s-",
                        data: b"",
                        flags: 2,
                    },
                ]),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(
            raw::parse_multi(&rep.body),
            vec![
                MultiResult::Create("/x".into()),
                MultiResult::Delete,
                MultiResult::Create("/x".into()),
                MultiResult::Check,
                MultiResult::Create("/x/s-0000000000".into()),
            ]
        );
        let st = r.exists("/x", false).await.dec().stat();
        assert_eq!(
            (st.czxid, st.data_length, st.cversion, st.num_children),
            (rep.zxid, 1, 1, 1)
        );

        // Empty multi: just the terminating header.
        let rep = r.call(op::MULTI, &raw::multi_body(&[])).await.unwrap();
        assert_eq!(rep.err, err::OK);
        assert_eq!(raw::parse_multi(&rep.body), vec![]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writer_reports_check_failures_separately() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/lock", b"", &anyone()).await.unwrap();
        let mut w = c.new_check_writer("/lock", Some(0)).unwrap();
        w.add_create("/guarded", b"", &anyone()).unwrap();
        let res = w.commit().await.unwrap();
        assert!(matches!(&res[0], MultiWriteResult::Create { path, .. } if path == "/guarded"));

        c.set_data("/lock", b"", None).await.unwrap();
        let mut w = c.new_check_writer("/lock", Some(0)).unwrap();
        w.add_create("/guarded2", b"", &anyone()).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::CheckWriteError::CheckFailed {
                source: ZkError::BadVersion
            }
        );
        assert_eq!(c.check_stat("/guarded2").await.unwrap(), None);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_read_returns_per_op_results() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/r", b"data", &anyone()).await.unwrap();
        c.create("/r/k1", b"", &anyone()).await.unwrap();
        c.create("/r/k2", b"", &anyone()).await.unwrap();
        let st = c.check_stat("/r").await.unwrap().unwrap();

        let mut rd = c.new_multi_reader();
        rd.add_get_data("/r").unwrap();
        rd.add_get_children("/r").unwrap();
        rd.add_get_data("/missing").unwrap();
        rd.add_get_children("/missing").unwrap();
        rd.add_get_data("/r/k1").unwrap();
        let res = rd.commit().await.unwrap();
        assert_eq!(res.len(), 5);
        match &res[0] {
            MultiReadResult::Data { data, stat } => {
                assert_eq!(data, b"data");
                assert_eq!(*stat, st);
            }
            other => panic!("{other:?}"),
        }
        match &res[1] {
            MultiReadResult::Children { children } => {
                let mut ch = children.clone();
                ch.sort();
                assert_eq!(ch, vec!["k1", "k2"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                &res[2],
                MultiReadResult::Error {
                    err: ZkError::NoNode
                }
            ),
            "{:?}",
            res[2]
        );
        assert!(
            matches!(
                &res[3],
                MultiReadResult::Error {
                    err: ZkError::NoNode
                }
            ),
            "{:?}",
            res[3]
        );
        assert!(matches!(&res[4], MultiReadResult::Data { data, .. } if data.is_empty()));

        // multiRead does not consume a zxid.
        let mut r = s.raw().await;
        let z0 = r.get_data("/r", false).await.zxid;
        let body = Enc::new()
            .i32(op::GET_DATA)
            .bool(false)
            .i32(-1)
            .str("/r")
            .bool(false)
            .i32(op::GET_CHILDREN)
            .bool(false)
            .i32(-1)
            .str("/nope")
            .bool(false)
            .i32(-1)
            .bool(true)
            .i32(-1)
            .finish();
        let rep = r.call(op::MULTI_READ, &body).await.unwrap();
        assert_eq!((rep.err, rep.zxid), (err::OK, z0));
        let parsed = raw::parse_multi(&rep.body);
        assert_eq!(parsed[1], MultiResult::Error(err::NO_NODE));
        assert!(matches!(&parsed[0], MultiResult::GetData(d, _) if d == b"data"));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_triggers_watches_once_committed() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let watcher_client = s.client().await;
        c.create("/w", b"", &anyone()).await.unwrap();
        let (_, _, data_w) = watcher_client.get_and_watch_data("/w").await.unwrap();
        let (_, child_w) = watcher_client.list_and_watch_children("/w").await.unwrap();
        let (_, exist_w) = watcher_client.check_and_watch_stat("/w/new").await.unwrap();

        // A failing multi fires nothing.
        let mut w = c.new_multi_writer();
        w.add_set_data("/w", b"x", None).unwrap();
        w.add_create("/w/new", b"", &anyone()).unwrap();
        w.add_check_version("/w", 42).unwrap();
        assert!(w.commit().await.is_err());

        let mut w = c.new_multi_writer();
        w.add_set_data("/w", b"x", None).unwrap();
        w.add_create("/w/new", b"", &anyone()).unwrap();
        w.commit().await.unwrap();
        let d = within(Duration::from_secs(5), "data watch", data_w.changed()).await;
        assert_eq!(
            (d.event_type, d.path.as_str()),
            (zk::EventType::NodeDataChanged, "/w")
        );
        let ch = within(Duration::from_secs(5), "child watch", child_w.changed()).await;
        assert_eq!(
            (ch.event_type, ch.path.as_str()),
            (zk::EventType::NodeChildrenChanged, "/w")
        );
        let ex = within(Duration::from_secs(5), "exists watch", exist_w.changed()).await;
        assert_eq!(
            (ex.event_type, ex.path.as_str()),
            (zk::EventType::NodeCreated, "/w/new")
        );
    })
    .await
}
