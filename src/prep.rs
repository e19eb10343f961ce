//! Request -> transaction, on the write core against the authoritative state: the committed
//! tree seen through the overlay of txns not yet applied to it (`overlay::View`; ZooKeeper's
//! PrepRequestProcessor with its outstandingChanges). Pure: that state, the session's auth ids,
//! the zxid and the time come in; a fully determined [`TxnOp`] comes out. Checks run in
//! ZooKeeper's order so the same bad request gets the same error code.
//!
//! A multi records each op in the overlay as it is validated, so later ops see earlier ones
//! (create `/a` then `/a/b`), and rolls them all back afterwards: the caller records the txn
//! it proposes.

use crate::overlay::View;
use crate::proto::codes::{ephemeral_owner, op, perms, Code, CreateMode};
use crate::proto::records::{CreateRequest, Id, MultiOp, Request};
use crate::quota;
use crate::storage::codec::{encoded_len, op_len};
use crate::tree::{acl, parent_of, validate_path};
use crate::txn::TxnOp;

pub struct PrepCtx<'a> {
    pub session_id: i64,
    pub zxid: i64,
    pub ids: &'a [Id],
    pub extended_types: bool,
    /// `zookeeper.enforceQuota`: a write past a hard quota fails with QUOTAEXCEEDED.
    pub enforce_quota: bool,
    /// The largest txn that may come out, encoded (`limits::TXN_MAX`; smaller in tests).
    pub max_txn: usize,
}

/// Paths ZooKeeper refuses to delete (`isSpecialPath`).
fn is_special(path: &str) -> bool {
    matches!(
        path,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// Gives znode data its own allocation. A request's data is a slice of the connection's read
/// buffer; keeping that slice would pin the whole buffer for the node's lifetime. One copy here,
/// on the write core; every replica then shares the result.
fn own(data: &Option<bytes::Bytes>) -> Option<crate::txn::Data> {
    data.as_deref().map(crate::txn::Data::from)
}

fn check_version(current: i32, expected: i32) -> Result<i32, Code> {
    if expected != -1 && expected != current {
        return Err(Code::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

fn data_len(data: &Option<bytes::Bytes>) -> i64 {
    data.as_ref().map_or(0, |d| d.len() as i64)
}

/// ZooKeeper's `checkQuota`, against the usage that every txn recorded so far leaves (ZooKeeper
/// reads the committed tree, so writes in flight together can pass a hard limit there; here
/// they cannot, and neither can a multi's ops together). Each limit passed is logged with
/// ZooKeeper's words; a hard one fails the write where quotas are enforced.
fn check_quota(v: &View, path: &str, count: i64, bytes: i64, ctx: &PrepCtx) -> Result<(), Code> {
    let Some(prefix) = v.quota_prefix(path) else {
        return Ok(());
    };
    let read = |p: &str| {
        v.node(p)
            .and_then(|n| quota::StatsTrack::parse(n.data.as_deref()))
    };
    let (Some(limits), Some(usage)) = (
        read(&quota::limit_path(&prefix)),
        read(&quota::stat_path(&prefix)),
    ) else {
        return Ok(());
    };
    for e in quota::check(&prefix, &limits, &usage, count, bytes) {
        tracing::warn!("{}", e.message);
        if e.hard && ctx.enforce_quota {
            return Err(Code::QuotaExceeded);
        }
    }
    Ok(())
}

fn require(v: &View, path: &str, perm: i32, ids: &[Id]) -> Result<(), Code> {
    let node = v.node(path).ok_or(Code::NoNode)?;
    if acl::allowed(&node.acl, perm, ids) {
        Ok(())
    } else {
        Err(Code::NoAuth)
    }
}

fn prep_create(v: &View, c: &CreateRequest, ctx: &PrepCtx) -> Result<TxnOp, Code> {
    let mode = CreateMode::from_flags(c.flags).ok_or(Code::BadArguments)?;
    if mode.is_ttl() && !ctx.extended_types {
        return Err(Code::Unimplemented);
    }
    if mode.is_ttl() {
        if c.ttl <= 0 || c.ttl > ephemeral_owner::TTL_MAX {
            return Err(Code::BadArguments);
        }
    } else if c.ttl >= 0 {
        return Err(Code::BadArguments);
    }
    if !c.path.contains('/') || c.path.contains('\0') {
        return Err(Code::BadArguments);
    }
    let acl = acl::fixup(&c.acl, ctx.ids)?;
    let parent_path = parent_of(&c.path);
    let parent = v.node(parent_path).ok_or(Code::NoNode)?;
    if !acl::allowed(&parent.acl, perms::CREATE, ctx.ids) {
        return Err(Code::NoAuth);
    }
    let mut path = c.path.clone();
    if mode.is_sequential() {
        path.push_str(&format!("{:010}", parent.cversion));
    }
    validate_path(&path)?;
    if v.exists(&path) {
        return Err(Code::NodeExists);
    }
    if parent.is_session_ephemeral() {
        return Err(Code::NoChildrenForEphemerals);
    }
    check_quota(v, &path, 1, data_len(&c.data), ctx)?;
    let owner = match c.opcode {
        op::CREATE_CONTAINER => ephemeral_owner::CONTAINER,
        op::CREATE_TTL => ephemeral_owner::ttl(c.ttl),
        _ if mode.is_ephemeral() => ctx.session_id,
        _ => 0,
    };
    Ok(TxnOp::Create {
        opcode: c.opcode,
        path,
        data: own(&c.data),
        acl,
        ephemeral_owner: owner,
        parent_cversion: parent.cversion.wrapping_add(1),
    })
}

/// ZooKeeper's `getParentPathAndValidate`: deletes check only for a slash, NUL and the
/// special nodes; other malformed paths fall through to NoNode.
fn check_delete_path(path: &str) -> Result<(), Code> {
    if !path.contains('/') || path.contains('\0') || is_special(path) {
        return Err(Code::BadArguments);
    }
    Ok(())
}

fn prep_delete(v: &View, path: &str, version: i32, ctx: &PrepCtx) -> Result<TxnOp, Code> {
    check_delete_path(path)?;
    require(v, parent_of(path), perms::DELETE, ctx.ids)?;
    let node = v.node(path).ok_or(Code::NoNode)?;
    check_version(node.version, version)?;
    if node.children > 0 {
        return Err(Code::NotEmpty);
    }
    Ok(TxnOp::Delete {
        path: path.to_string(),
    })
}

/// `deleteContainer`: used by the write core's reaper for containers and expired TTL nodes.
pub fn prep_delete_container(v: &View, path: &str) -> Result<TxnOp, Code> {
    check_delete_path(path)?;
    let node = v.node(path).ok_or(Code::NoNode)?;
    if node.children > 0 {
        return Err(Code::NotEmpty);
    }
    if node.is_session_ephemeral() {
        return Err(Code::BadVersion);
    }
    Ok(TxnOp::Delete {
        path: path.to_string(),
    })
}

fn prep_set_data(
    v: &View,
    path: &str,
    data: &Option<bytes::Bytes>,
    version: i32,
    ctx: &PrepCtx,
) -> Result<TxnOp, Code> {
    validate_path(path)?;
    require(v, path, perms::WRITE, ctx.ids)?;
    let node = v.node(path).ok_or(Code::NoNode)?;
    let before = node.data.as_ref().map_or(0, |d| d.len() as i64);
    check_quota(v, path, 0, data_len(data) - before, ctx)?;
    Ok(TxnOp::SetData {
        path: path.to_string(),
        data: own(data),
        version: check_version(node.version, version)?,
    })
}

fn prep_check(v: &View, path: &str, version: i32, ctx: &PrepCtx) -> Result<TxnOp, Code> {
    validate_path(path)?;
    require(v, path, perms::READ, ctx.ids)?;
    let node = v.node(path).ok_or(Code::NoNode)?;
    check_version(node.version, version)?;
    Ok(TxnOp::Check {
        path: path.to_string(),
    })
}

fn prep_multi_op(v: &View, o: &MultiOp, ctx: &PrepCtx) -> Result<TxnOp, Code> {
    match o {
        MultiOp::Create(c) => prep_create(v, c, ctx),
        MultiOp::Delete { path, version } => prep_delete(v, path, *version, ctx),
        MultiOp::SetData {
            path,
            data,
            version,
        } => prep_set_data(v, path, data, *version, ctx),
        MultiOp::Check { path, version } => prep_check(v, path, *version, ctx),
    }
}

fn prep_multi(v: &mut View, ops: &[MultiOp], ctx: &PrepCtx) -> TxnOp {
    let mut txns = Vec::with_capacity(ops.len());
    let mut codes = Vec::with_capacity(ops.len());
    let mut failed = false;
    let mark = v.mark();
    // The multi's encoded size so far: the op that would take it past the limit fails, before
    // later ops are built (an `auth` ACL repeated in many creates grows fast).
    let mut size = encoded_len(&TxnOp::Multi(Vec::new()));
    for o in ops {
        if failed {
            codes.push(Code::RuntimeInconsistency);
            continue;
        }
        let prepped = prep_multi_op(v, o, ctx).and_then(|t| {
            size += op_len(&t);
            if size > ctx.max_txn {
                return Err(Code::BadArguments);
            }
            Ok(t)
        });
        match prepped {
            Ok(t) => {
                v.record_op(ctx.zxid, ctx.session_id, &t);
                txns.push(t);
                codes.push(Code::Ok);
            }
            Err(code) => {
                failed = true;
                codes.push(code);
            }
        }
    }
    v.rollback(mark);
    if failed {
        TxnOp::MultiError(codes)
    } else {
        TxnOp::Multi(txns)
    }
}

/// Turns a write request into the transaction every replica will apply. Failures become
/// `TxnOp::Error` (or `MultiError`): like ZooKeeper, a failed write still takes a zxid.
/// A txn that would encode to more than `ctx.max_txn` bytes (more than a log record holds)
/// fails with BadArguments: what is acknowledged must be recoverable (docs/design/storage.md).
pub fn prep(v: &mut View, req: &Request, ctx: &PrepCtx) -> TxnOp {
    let r = match req {
        Request::Create(c) => prep_create(v, c, ctx),
        Request::Delete { path, version } => prep_delete(v, path, *version, ctx),
        Request::SetData {
            path,
            data,
            version,
        } => prep_set_data(v, path, data, *version, ctx),
        Request::SetAcl { path, acl, version } => (|| {
            validate_path(path)?;
            let acl = acl::fixup(acl, ctx.ids)?;
            require(v, path, perms::ADMIN, ctx.ids)?;
            let node = v.node(path).ok_or(Code::NoNode)?;
            Ok(TxnOp::SetAcl {
                path: path.clone(),
                acl,
                version: check_version(node.aversion, *version)?,
            })
        })(),
        Request::Check { path, version } => prep_check(v, path, *version, ctx),
        Request::DeleteContainer { path } => prep_delete_container(v, path),
        Request::Multi(ops) => return prep_multi(v, ops, ctx),
        Request::Reconfig => Err(Code::ReconfigDisabled),
        _ => Err(Code::Unimplemented),
    };
    match r {
        Ok(op) if encoded_len(&op) > ctx.max_txn => TxnOp::Error(Code::BadArguments),
        r => r.unwrap_or_else(TxnOp::Error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::Overlay;
    use crate::proto::records::Acl;
    use crate::tree::DataTree;
    use crate::txn::Txn;
    use bytes::Bytes;

    /// Prep against a tree with nothing outstanding; it leaves no record behind (a multi rolls
    /// its tentative ones back).
    fn prep(t: &mut DataTree, req: &Request, ctx: &PrepCtx) -> TxnOp {
        let mut o = Overlay::default();
        let op = super::prep(&mut View::new(t, &mut o), req, ctx);
        assert!(o.is_empty(), "prep left records in the overlay");
        op
    }

    fn ctx(ids: &[Id]) -> PrepCtx<'_> {
        PrepCtx {
            session_id: 0x100,
            zxid: 10,
            ids,
            extended_types: false,
            enforce_quota: false,
            max_txn: crate::limits::TXN_MAX,
        }
    }

    fn create(path: &str, flags: i32) -> Request {
        Request::Create(CreateRequest {
            opcode: op::CREATE,
            path: path.into(),
            data: Some(Bytes::from_static(b"x")),
            acl: Acl::open_unsafe(),
            flags,
            ttl: -1,
        })
    }

    fn commit(tree: &mut DataTree, zxid: i64, op: TxnOp) {
        tree.apply(&Txn {
            session_id: 0x100,
            cxid: 0,
            zxid,
            time_ms: 5,
            op,
        });
    }

    #[test]
    fn create_errors_in_zookeeper_order() {
        let mut t = DataTree::new();
        let ids = [Id::new("ip", "127.0.0.1")];
        let c = ctx(&ids);
        assert_eq!(
            prep(&mut t, &create("/a/b", 0), &c),
            TxnOp::Error(Code::NoNode)
        );
        assert_eq!(
            prep(&mut t, &create("a", 0), &c),
            TxnOp::Error(Code::BadArguments)
        );
        assert_eq!(
            prep(&mut t, &create("/zookeeper/", 0), &c),
            TxnOp::Error(Code::BadArguments)
        );
        assert_eq!(
            prep(&mut t, &create("/a", 9), &c),
            TxnOp::Error(Code::BadArguments)
        );
        assert_eq!(
            prep(&mut t, &create("/zookeeper", 0), &c),
            TxnOp::Error(Code::NodeExists)
        );
        let e = prep(&mut t, &create("/e", 1), &c);
        commit(&mut t, 2, e);
        assert_eq!(t.get("/e").unwrap().ephemeral_owner, 0x100);
        assert_eq!(
            prep(&mut t, &create("/e/x", 0), &c),
            TxnOp::Error(Code::NoChildrenForEphemerals)
        );
    }

    #[test]
    fn sequential_names_come_from_creations() {
        let mut t = DataTree::new();
        let ids = [];
        let c = ctx(&ids);
        let s0 = prep(&mut t, &create("/s-", 2), &c);
        match &s0 {
            TxnOp::Create { path, .. } => assert_eq!(path, "/s-0000000000"),
            o => panic!("{o:?}"),
        }
        commit(&mut t, 2, s0);
        commit(
            &mut t,
            3,
            TxnOp::Delete {
                path: "/s-0000000000".into(),
            },
        );
        match prep(&mut t, &create("/s-", 2), &c) {
            TxnOp::Create { path, .. } => assert_eq!(path, "/s-0000000001"),
            o => panic!("{o:?}"),
        }
    }

    /// Past 2^31 - 1 creations the parent's counter stays at i32::MAX (a create only ever
    /// raises it, and the next value wraps negative), so every later sequential create names
    /// `...2147483647`: NodeExists while that node exists, the same name again once it is gone.
    /// ZooKeeper does exactly this; docs/decisions.md, "Sequence numbers past 2^31".
    #[test]
    fn sequence_counter_stops_at_i32_max_as_in_zookeeper() {
        let mut t = DataTree::new();
        let ids = [];
        let c = ctx(&ids);
        let q = prep(&mut t, &create("/q", 0), &c);
        commit(&mut t, 2, q);
        // The state 2^31 - 2 creations leave: a create whose txn carries that count.
        commit(
            &mut t,
            3,
            TxnOp::Create {
                opcode: op::CREATE,
                path: "/q/x".into(),
                data: None,
                acl: Acl::open_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: i32::MAX - 1,
            },
        );
        let name = |op: &TxnOp| match op {
            TxnOp::Create { path, .. } => path.clone(),
            o => panic!("{o:?}"),
        };
        let a = prep(&mut t, &create("/q/s-", 2), &c);
        assert_eq!(name(&a), "/q/s-2147483646");
        commit(&mut t, 4, a);
        let b = prep(&mut t, &create("/q/s-", 2), &c);
        assert_eq!(name(&b), "/q/s-2147483647");
        commit(&mut t, 5, b);
        assert_eq!(t.get("/q").unwrap().cversion, i32::MAX);
        for _ in 0..3 {
            assert_eq!(
                prep(&mut t, &create("/q/s-", 2), &c),
                TxnOp::Error(Code::NodeExists)
            );
        }
        let stat = t.get("/q").unwrap().stat();
        assert_eq!(stat.num_children, 3);
        commit(
            &mut t,
            6,
            TxnOp::Delete {
                path: "/q/s-2147483647".into(),
            },
        );
        let again = prep(&mut t, &create("/q/s-", 2), &c);
        assert_eq!(name(&again), "/q/s-2147483647");
    }

    #[test]
    fn multi_is_atomic_with_zookeeper_error_layout() {
        let mut t = DataTree::new();
        let ids = [];
        let c = ctx(&ids);
        let before = t.digest();
        let ops = vec![
            MultiOp::Create(match create("/m", 0) {
                Request::Create(c) => c,
                _ => unreachable!(),
            }),
            MultiOp::Create(match create("/m/n", 0) {
                Request::Create(c) => c,
                _ => unreachable!(),
            }),
            MultiOp::Check {
                path: "/m".into(),
                version: 7,
            },
            MultiOp::Delete {
                path: "/m".into(),
                version: -1,
            },
        ];
        assert_eq!(
            prep(&mut t, &Request::Multi(ops.clone()), &c),
            TxnOp::MultiError(vec![
                Code::Ok,
                Code::Ok,
                Code::BadVersion,
                Code::RuntimeInconsistency
            ])
        );
        assert_eq!(t.digest(), before, "failed multi leaves no trace");
        let ok = prep(&mut t, &Request::Multi(ops[..2].to_vec()), &c);
        assert!(matches!(&ok, TxnOp::Multi(v) if v.len() == 2));
        assert_eq!(t.digest(), before, "prep itself never changes the tree");
    }

    fn create_data(path: &str, data: &'static [u8]) -> CreateRequest {
        CreateRequest {
            opcode: op::CREATE,
            path: path.into(),
            data: Some(Bytes::from_static(data)),
            acl: Acl::open_unsafe(),
            flags: 0,
            ttl: -1,
        }
    }

    /// With enforcement, a create or setData past a hard limit fails with QuotaExceeded,
    /// counting writes proposed and not yet applied and a multi's earlier ops; soft limits and
    /// unenforced hard limits only warn.
    #[test]
    fn hard_quotas_count_pending_writes_and_multi_ops() {
        let mut t = DataTree::new();
        let ids = [];
        // Past the zxids of the txns recorded below (a multi records its ops at this one).
        let enforcing = PrepCtx {
            enforce_quota: true,
            zxid: 60,
            ..ctx(&ids)
        };
        let mut zxid = 1;
        let mut apply = |t: &mut DataTree, r: Request| {
            let op = prep(t, &r, &ctx(&ids));
            assert!(!matches!(op, TxnOp::Error(_)), "{op:?}");
            commit(t, zxid, op);
            zxid += 1;
        };
        apply(&mut t, Request::Create(create_data("/a", b"")));
        apply(
            &mut t,
            Request::Create(create_data("/zookeeper/quota/a", b"")),
        );
        apply(
            &mut t,
            Request::Create(create_data(
                "/zookeeper/quota/a/zookeeper_limits",
                b"count=-1,bytes=-1=;byteHardLimit=6;countHardLimit=3",
            )),
        );
        apply(
            &mut t,
            Request::Create(create_data(
                "/zookeeper/quota/a/zookeeper_stats",
                b"count=0,bytes=0",
            )),
        );
        let stats = t.get("/zookeeper/quota/a/zookeeper_stats").unwrap();
        assert_eq!(stats.data().unwrap(), b"count=1,bytes=0");
        // /a and two creates in flight make 3, the hard count limit: a third create passes it.
        let mut o = Overlay::default();
        let mut v = View::new(&t, &mut o);
        let first = super::prep(
            &mut v,
            &Request::Create(create_data("/a/x", b"12")),
            &enforcing,
        );
        assert!(matches!(first, TxnOp::Create { .. }));
        v.record(&Txn {
            session_id: 0x100,
            cxid: 0,
            zxid: 50,
            time_ms: 5,
            op: first,
        });
        let second = Request::Create(create_data("/a/y", b""));
        let op = super::prep(&mut v, &second, &enforcing);
        assert!(matches!(op, TxnOp::Create { .. }));
        let third = Request::Create(create_data("/a/z", b""));
        v.record(&Txn {
            session_id: 0x100,
            cxid: 1,
            zxid: 51,
            time_ms: 5,
            op,
        });
        assert_eq!(
            super::prep(&mut v, &third, &enforcing),
            TxnOp::Error(Code::QuotaExceeded)
        );
        // Not enforced: the same write passes (with a warning).
        assert!(matches!(
            super::prep(&mut v, &third, &ctx(&ids)),
            TxnOp::Create { .. }
        ));
        // Bytes: 2 used of 6; a setData growing /a/x by 4 fits, a multi's two such do not.
        let grow = |d: &'static [u8]| MultiOp::SetData {
            path: "/a/x".into(),
            data: Some(Bytes::from_static(d)),
            version: -1,
        };
        assert!(matches!(
            super::prep(&mut v, &Request::Multi(vec![grow(b"123456")]), &enforcing),
            TxnOp::Multi(_)
        ));
        assert_eq!(
            super::prep(
                &mut v,
                &Request::Multi(vec![
                    grow(b"123456"),
                    MultiOp::Create(create_data("/a/w", b"1"))
                ]),
                &enforcing
            ),
            TxnOp::MultiError(vec![Code::Ok, Code::QuotaExceeded])
        );
        // Outside the quota nothing is counted.
        assert!(matches!(
            super::prep(
                &mut v,
                &Request::Create(create_data("/b", b"123456789")),
                &enforcing
            ),
            TxnOp::Create { .. }
        ));
    }

    #[test]
    fn ttl_needs_extended_types() {
        let mut t = DataTree::new();
        let ids = [];
        let mut req = match create("/t", 5) {
            Request::Create(c) => c,
            _ => unreachable!(),
        };
        req.opcode = op::CREATE_TTL;
        req.ttl = 1000;
        let r = Request::Create(req);
        assert_eq!(
            prep(&mut t, &r, &ctx(&ids)),
            TxnOp::Error(Code::Unimplemented)
        );
        let c = PrepCtx {
            extended_types: true,
            ..ctx(&ids)
        };
        match prep(&mut t, &r, &c) {
            TxnOp::Create {
                ephemeral_owner, ..
            } => assert_eq!(ephemeral_owner::ttl_of(ephemeral_owner), Some(1000)),
            o => panic!("{o:?}"),
        }
    }

    /// The request bytes of a multi of `n` sequential creates of `/` + `name`, with an empty
    /// data buffer and world:anyone: the smallest create, and the one whose txn grows most
    /// (ten sequence digits, the owner and parent cversion).
    fn small_creates(n: usize, name: &str) -> bytes::Bytes {
        use crate::proto::jute::Writer;
        use bytes::BufMut;
        let mut b = bytes::BytesMut::new();
        for _ in 0..n {
            crate::proto::records::put_multi_header(&mut b, op::CREATE, false, -1);
            b.put_jstring(&format!("/{name}"));
            b.put_jbuffer(b"");
            Acl::encode_list(&Acl::open_unsafe(), &mut b);
            b.put_i32(2); // PERSISTENT_SEQUENTIAL
        }
        crate::proto::records::put_multi_header(&mut b, -1, true, -1);
        b.freeze()
    }

    #[test]
    fn a_txn_stays_within_twice_its_request() {
        // limits::TXN_MAX is twice the largest request: check the worst expansions that do not
        // involve `auth` ACLs (which prep bounds on its own, below).
        for name in ["", "a", "sixteen-chars-ab"] {
            let mut t = DataTree::new();
            let body = small_creates(1000, name);
            let frame = 8 + body.len(); // xid and type precede the body
            let req =
                Request::decode(op::MULTI, &mut crate::proto::jute::Reader::new(body)).unwrap();
            let txn = prep(&mut t, &req, &ctx(&[]));
            assert!(matches!(txn, TxnOp::Multi(_)), "{txn:?}");
            let len = encoded_len(&txn);
            assert!(len <= 2 * frame, "{len} bytes from a {frame}-byte request");
        }
    }

    #[test]
    fn a_txn_over_the_limit_is_refused_before_anything_is_applied() {
        // Many digest ids and `auth` ACLs: a small request, a large txn.
        let ids: Vec<Id> = (0..100)
            .map(|i| Id::new("digest", &format!("user{i}:{}", "h".repeat(28))))
            .collect();
        let auth = vec![Acl {
            perms: perms::ALL,
            id: Id::new("auth", ""),
        }];
        let mut req = CreateRequest {
            opcode: op::CREATE,
            path: "/a".into(),
            data: None,
            acl: auth,
            flags: 0,
            ttl: -1,
        };
        let acl_bytes = crate::storage::codec::acl_len(&acl::fixup(&req.acl, &ids).unwrap());
        let mut t = DataTree::new();
        let roomy = PrepCtx {
            max_txn: 4 * acl_bytes,
            ..ctx(&ids)
        };
        let tight = PrepCtx {
            max_txn: acl_bytes,
            ..ctx(&ids)
        };
        let single = Request::Create(req.clone());
        assert!(matches!(
            prep(&mut t, &single, &roomy),
            TxnOp::Create { .. }
        ));
        assert_eq!(
            prep(&mut t, &single, &tight),
            TxnOp::Error(Code::BadArguments)
        );
        // In a multi, the op that takes the txn past the limit fails, and the ops after it are
        // never built.
        let ops: Vec<MultiOp> = (0..10)
            .map(|i| {
                req.path = format!("/n{i}");
                MultiOp::Create(req.clone())
            })
            .collect();
        match prep(&mut t, &Request::Multi(ops), &roomy) {
            TxnOp::MultiError(codes) => assert_eq!(
                codes,
                [
                    [Code::Ok; 3].as_slice(),
                    &[Code::BadArguments],
                    &[Code::RuntimeInconsistency; 6]
                ]
                .concat()
            ),
            other => panic!("{other:?}"),
        }
        assert!(t.get("/n0").is_none(), "a failed multi left a node behind");
    }
}
