//! ACLs and authentication: world, digest, auth, ip schemes; each
//! permission; getACL redaction; super digest; invalid ACLs; whoAmI.

mod common;

use std::time::Duration;

use common::raw::{self, err, op, Enc};
use common::*;
use zk::{Acl, AuthId, CreateMode, Error as ZkError, Permission};
use zookeeper_client as zk;

fn acl(perm: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perm, AuthId::new(scheme, id))
}

fn with_acl(acls: &[Acl]) -> zk::CreateOptions<'_> {
    CreateMode::Persistent.with_acls(zk::Acls::new(acls))
}

fn users(v: Vec<zk::AuthUser>) -> Vec<(String, String)> {
    let mut out: Vec<_> = v
        .into_iter()
        .map(|u| (u.scheme().to_string(), u.user().to_string()))
        .collect();
    out.sort();
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = v
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    out.sort();
    out
}

fn sorted_acls(mut v: Vec<Acl>) -> Vec<(i32, String, String)> {
    let mut out: Vec<_> = v
        .drain(..)
        .map(|a| {
            (
                perm_bits(a.permission()),
                a.scheme().to_string(),
                a.id().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn perm_bits(p: Permission) -> i32 {
    [
        (Permission::READ, 1),
        (Permission::WRITE, 2),
        (Permission::CREATE, 4),
        (Permission::DELETE, 8),
        (Permission::ADMIN, 16),
    ]
    .iter()
    .filter(|(q, _)| p.has(*q))
    .map(|(_, b)| b)
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn world_anyone_acls() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let owner = s.client().await;
        let other = s.client().await;
        let (st, _) = owner.create("/open", b"", &anyone()).await.unwrap();
        let (acls, st2) = other.get_acl("/open").await.unwrap();
        assert_eq!(acls, vec![acl(Permission::ALL, "world", "anyone")]);
        assert_eq!(st2, st, "getACL returns the node's stat");

        owner
            .create(
                "/ro",
                b"d",
                &CreateMode::Persistent.with_acls(zk::Acls::anyone_read()),
            )
            .await
            .unwrap();
        assert_eq!(other.get_data("/ro").await.unwrap().0, b"d");
        assert_eq!(
            other.set_data("/ro", b"x", None).await.unwrap_err(),
            ZkError::NoAuth
        );
        assert_eq!(
            owner.set_data("/ro", b"x", None).await.unwrap_err(),
            ZkError::NoAuth,
            "creator gets no special rights"
        );
        assert_eq!(
            other.create("/ro/c", b"", &anyone()).await.unwrap_err(),
            ZkError::NoAuth
        );
        assert_eq!(
            other
                .set_acl("/ro", &[acl(Permission::ALL, "world", "anyone")], None)
                .await
                .unwrap_err(),
            ZkError::NoAuth
        );
        // Deleting a node is governed by its parent's ACL ("/" is open).
        other.delete("/ro", None).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_acl_is_enforced() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let id = digest_id("user", "secret");
        let authed = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"user:secret"),
        )
        .await;
        let anon = s.client().await;
        let wrong = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"user:wrong"),
        )
        .await;
        let acls = [acl(Permission::ALL, "digest", &id)];
        authed.create("/d", b"x", &with_acl(&acls)).await.unwrap();
        authed.create("/d/c", b"", &anyone()).await.unwrap();

        for c in [&anon, &wrong] {
            assert_eq!(c.get_data("/d").await.unwrap_err(), ZkError::NoAuth);
            assert_eq!(
                c.set_data("/d", b"", None).await.unwrap_err(),
                ZkError::NoAuth
            );
            assert_eq!(c.list_children("/d").await.unwrap_err(), ZkError::NoAuth);
            assert_eq!(c.get_children("/d").await.unwrap_err(), ZkError::NoAuth);
            assert_eq!(
                c.count_descendants_number("/d").await.unwrap_err(),
                ZkError::NoAuth
            );
            assert_eq!(
                c.create("/d/x", b"", &anyone()).await.unwrap_err(),
                ZkError::NoAuth
            );
            assert_eq!(c.delete("/d/c", None).await.unwrap_err(), ZkError::NoAuth);
            assert_eq!(c.get_acl("/d").await.unwrap_err(), ZkError::NoAuth);
            assert_eq!(
                c.set_acl("/d", &acls, None).await.unwrap_err(),
                ZkError::NoAuth
            );
            assert!(
                c.check_stat("/d").await.unwrap().is_some(),
                "exists needs no permission"
            );
            c.sync("/d").await.unwrap();
            // Watches can still be set through exists.
            let (st, _w) = c.check_and_watch_stat("/d").await.unwrap();
            assert!(st.is_some());
        }
        assert_eq!(authed.get_data("/d").await.unwrap().0, b"x");
        authed.set_data("/d", b"y", None).await.unwrap();
        assert_eq!(authed.count_descendants_number("/d").await.unwrap(), 1);
        let (got, _) = authed.get_acl("/d").await.unwrap();
        assert_eq!(got, acls.to_vec());

        // Authenticating later on the same session grants access from then on.
        anon.auth("digest", b"user:secret").await.unwrap();
        assert_eq!(anon.get_data("/d").await.unwrap().0, b"y");
        anon.delete("/d/c", None).await.unwrap();
        // The parent's ACL governs deleting /d itself ("/" is open).
        wrong.delete("/d", None).await.unwrap();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scheme_acl_expands_to_the_sessions_digest_ids() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let anon = s.client().await;
        assert_eq!(
            anon.create(
                "/a",
                b"",
                &CreateMode::Persistent.with_acls(zk::Acls::creator_all())
            )
            .await
            .unwrap_err(),
            ZkError::InvalidAcl,
            "auth:: with no authenticated identity (ip does not count)"
        );
        let c = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"u:p"),
        )
        .await;
        c.create(
            "/a",
            b"",
            &CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        )
        .await
        .unwrap();
        let (got, _) = c.get_acl("/a").await.unwrap();
        assert_eq!(
            got,
            vec![acl(Permission::ALL, "digest", &digest_id("u", "p"))]
        );
        assert_eq!(anon.get_data("/a").await.unwrap_err(), ZkError::NoAuth);

        c.auth("digest", b"u2:p2").await.unwrap();
        // The id part of an auth ACL is ignored.
        c.create(
            "/b",
            b"",
            &with_acl(&[acl(
                Permission::READ | Permission::WRITE,
                "auth",
                "whatever",
            )]),
        )
        .await
        .unwrap();
        let (got, _) = c.get_acl("/b").await.unwrap();
        assert_eq!(
            sorted_acls(got),
            vec![
                (3, "digest".to_string(), "u2:x".to_string()),
                (3, "digest".to_string(), "u:x".to_string())
            ],
            "without ADMIN even the creator sees redacted digests"
        );
        c.create(
            "/b2",
            b"",
            &CreateMode::Persistent.with_acls(zk::Acls::creator_all()),
        )
        .await
        .unwrap();
        let (got, _) = c.get_acl("/b2").await.unwrap();
        let mut want = vec![
            (31, "digest".to_string(), digest_id("u", "p")),
            (31, "digest".to_string(), digest_id("u2", "p2")),
        ];
        want.sort();
        assert_eq!(sorted_acls(got), want);
        // Either identity is enough.
        let only_u2 = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"u2:p2"),
        )
        .await;
        only_u2.get_data("/b").await.unwrap();
        only_u2.set_data("/b", b"", None).await.unwrap();
        assert_eq!(
            only_u2
                .set_acl("/b", &[acl(Permission::ALL, "world", "anyone")], None)
                .await
                .unwrap_err(),
            ZkError::NoAuth
        );

        // setACL with auth:: also expands, and fails without identities.
        assert_eq!(
            c.set_acl("/b", &[acl(Permission::ALL, "auth", "")], Some(0))
                .await
                .unwrap_err(),
            ZkError::NoAuth
        );
        c.create("/c", b"", &anyone()).await.unwrap();
        let st = c
            .set_acl("/c", &[acl(Permission::ALL, "auth", "")], Some(0))
            .await
            .unwrap();
        assert_eq!(st.aversion, 1);
        assert_eq!(c.get_acl("/c").await.unwrap().0.len(), 2);
        anon.create("/d", b"", &anyone()).await.unwrap();
        assert_eq!(
            anon.set_acl("/d", &[acl(Permission::ALL, "auth", "")], None)
                .await
                .unwrap_err(),
            ZkError::InvalidAcl
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_acls() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create(
            "/ip1",
            b"1",
            &with_acl(&[acl(Permission::READ, "ip", "127.0.0.1")]),
        )
        .await
        .unwrap();
        c.create(
            "/ip8",
            b"8",
            &with_acl(&[acl(Permission::ALL, "ip", "127.0.0.0/8")]),
        )
        .await
        .unwrap();
        c.create(
            "/ip32",
            b"",
            &with_acl(&[acl(Permission::ALL, "ip", "127.0.0.1/32")]),
        )
        .await
        .unwrap();
        c.create(
            "/ipother",
            b"",
            &with_acl(&[acl(Permission::ALL, "ip", "10.1.2.3")]),
        )
        .await
        .unwrap();
        c.create(
            "/ipothernet",
            b"",
            &with_acl(&[acl(Permission::ALL, "ip", "10.0.0.0/8")]),
        )
        .await
        .unwrap();
        assert_eq!(c.get_data("/ip1").await.unwrap().0, b"1");
        assert_eq!(
            c.set_data("/ip1", b"", None).await.unwrap_err(),
            ZkError::NoAuth
        );
        c.set_data("/ip8", b"x", None).await.unwrap();
        c.create("/ip8/child", b"", &anyone()).await.unwrap();
        c.set_data("/ip32", b"x", None).await.unwrap();
        assert_eq!(c.get_data("/ipother").await.unwrap_err(), ZkError::NoAuth);
        assert_eq!(
            c.get_data("/ipothernet").await.unwrap_err(),
            ZkError::NoAuth
        );
        let (got, _) = c.get_acl("/ip8").await.unwrap();
        assert_eq!(got, vec![acl(Permission::ALL, "ip", "127.0.0.0/8")]);
    })
    .await
}

/// Each permission bit gates exactly its operations. READ: getData,
/// getChildren(2), getAllChildrenNumber; WRITE: setData; CREATE: create
/// child; DELETE: delete child; ADMIN: setACL; getACL needs READ or ADMIN;
/// exists and sync need nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_permission_is_enforced() {
    timed(90, async {
        let s = TestServer::start_default().await;
        let setup = s.client().await;
        let c = s.client().await;
        let perms = [
            ("read", Permission::READ),
            ("write", Permission::WRITE),
            ("create", Permission::CREATE),
            ("delete", Permission::DELETE),
            ("admin", Permission::ADMIN),
            ("none", Permission::NONE),
        ];
        for (name, perm) in perms {
            let p = format!("/{name}");
            setup.create(&p, b"data", &anyone()).await.unwrap();
            setup
                .create(&format!("{p}/victim"), b"", &anyone())
                .await
                .unwrap();
            setup
                .set_acl(&p, &[acl(perm, "world", "anyone")], Some(0))
                .await
                .unwrap();
        }
        let ok_or_noauth = |allowed: bool, r: Result<(), ZkError>, what: &str| {
            if allowed {
                r.unwrap_or_else(|e| panic!("{what}: expected success, got {e:?}"));
            } else {
                assert_eq!(r.unwrap_err(), ZkError::NoAuth, "{what}");
            }
        };
        for (name, perm) in perms {
            let p = format!("/{name}");
            let read = perm.has(Permission::READ) && perm != Permission::NONE;
            let has = |q: Permission| perm != Permission::NONE && perm.has(q);
            ok_or_noauth(
                read,
                c.get_data(&p).await.map(|_| ()),
                &format!("getData {p}"),
            );
            ok_or_noauth(
                read,
                c.list_children(&p).await.map(|_| ()),
                &format!("getChildren {p}"),
            );
            ok_or_noauth(
                read,
                c.get_children(&p).await.map(|_| ()),
                &format!("getChildren2 {p}"),
            );
            ok_or_noauth(
                read,
                c.count_descendants_number(&p).await.map(|_| ()),
                &format!("getAllChildrenNumber {p}"),
            );
            ok_or_noauth(
                read || has(Permission::ADMIN),
                c.get_acl(&p).await.map(|_| ()),
                &format!("getACL {p}"),
            );
            assert!(c.check_stat(&p).await.unwrap().is_some(), "exists {p}");
            c.sync(&p).await.unwrap();
            ok_or_noauth(
                has(Permission::WRITE),
                c.set_data(&p, b"w", None).await.map(|_| ()),
                &format!("setData {p}"),
            );
            ok_or_noauth(
                has(Permission::CREATE),
                c.create(&format!("{p}/new"), b"", &anyone())
                    .await
                    .map(|_| ()),
                &format!("create child of {p}"),
            );
            ok_or_noauth(
                has(Permission::DELETE),
                c.delete(&format!("{p}/victim"), None).await,
                &format!("delete child of {p}"),
            );
            ok_or_noauth(
                has(Permission::ADMIN),
                c.set_acl(&p, &[acl(perm, "world", "anyone")], None)
                    .await
                    .map(|_| ()),
                &format!("setACL {p}"),
            );
        }
        // Through multi, the ACL failure is reported per op.
        let mut w = c.new_multi_writer();
        w.add_create("/read/x", b"", &anyone()).unwrap();
        assert_eq!(
            w.commit().await.unwrap_err(),
            zk::MultiWriteError::OperationFailed {
                index: 0,
                source: ZkError::NoAuth
            }
        );
        let mut rd = c.new_multi_reader();
        rd.add_get_data("/write").unwrap();
        rd.add_get_data("/read").unwrap();
        let res = rd.commit().await.unwrap();
        assert!(
            matches!(
                &res[0],
                zk::MultiReadResult::Error {
                    err: ZkError::NoAuth
                }
            ),
            "{:?}",
            res[0]
        );
        assert!(
            matches!(&res[1], zk::MultiReadResult::Data { .. }),
            "{:?}",
            res[1]
        );
    })
    .await
}

/// getACL without ADMIN (but with READ) redacts digest ids to `user:x`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_acl_redacts_digests_without_admin() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let id = digest_id("u", "p");
        let owner = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"u:p"),
        )
        .await;
        let acls = [
            acl(Permission::READ, "world", "anyone"),
            acl(Permission::ALL, "digest", &id),
        ];
        owner.create("/n", b"", &with_acl(&acls)).await.unwrap();
        let anon = s.client().await;
        let (got, _) = anon.get_acl("/n").await.unwrap();
        assert_eq!(
            got,
            vec![
                acl(Permission::READ, "world", "anyone"),
                acl(Permission::ALL, "digest", "u:x")
            ]
        );
        let (got, _) = owner.get_acl("/n").await.unwrap();
        assert_eq!(got, acls.to_vec());
        // ADMIN alone is enough to see everything.
        let acls2 = [
            acl(Permission::ADMIN, "world", "anyone"),
            acl(Permission::ALL, "digest", &id),
        ];
        owner.create("/m", b"", &with_acl(&acls2)).await.unwrap();
        assert_eq!(anon.get_acl("/m").await.unwrap().0, acls2.to_vec());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn super_digest_bypasses_acls() {
    timed(60, async {
        let s = TestServer::start(ServerOpts::new().cfg(
            "DigestAuthenticationProvider.superDigest",
            digest_id("super", "test"),
        ))
        .await;
        let owner = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"u:p"),
        )
        .await;
        let locked = [acl(Permission::ALL, "digest", &digest_id("u", "p"))];
        owner
            .create("/locked", b"secret", &with_acl(&locked))
            .await
            .unwrap();
        owner.create("/locked/c", b"", &anyone()).await.unwrap();
        owner
            .create(
                "/nothing",
                b"",
                &with_acl(&[acl(Permission::NONE, "world", "anyone")]),
            )
            .await
            .unwrap();

        let sup = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"super:test"),
        )
        .await;
        assert_eq!(
            users(sup.list_auth_users().await.unwrap()),
            pairs(&[("digest", "super"), ("ip", "127.0.0.1"), ("super", "")])
        );
        assert_eq!(sup.get_data("/locked").await.unwrap().0, b"secret");
        assert_eq!(
            sup.get_acl("/locked").await.unwrap().0,
            locked.to_vec(),
            "super sees unredacted ids"
        );
        sup.set_data("/locked", b"mine", None).await.unwrap();
        sup.create("/locked/new", b"", &anyone()).await.unwrap();
        sup.delete("/locked/c", None).await.unwrap();
        sup.get_data("/nothing").await.unwrap();
        sup.set_acl("/nothing", &[acl(Permission::ALL, "world", "anyone")], None)
            .await
            .unwrap();

        let not_super = connect_with(
            &s.addr(),
            zk::Client::connector().with_auth("digest", b"super:wrong"),
        )
        .await;
        assert_eq!(
            not_super.get_data("/locked").await.unwrap_err(),
            ZkError::NoAuth
        );
        assert_eq!(
            users(not_super.list_auth_users().await.unwrap()),
            pairs(&[("digest", "super"), ("ip", "127.0.0.1")])
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acls_are_rejected() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        c.create("/n", b"", &anyone()).await.unwrap();
        for (scheme, id) in [
            ("world", "foo"),
            ("digest", "nocolon"),
            ("ip", "300.1.1.1"),
            ("ip", "127.0.0.1/33"),
            ("ip", "not-an-ip"),
            ("foo", "bar"),
            ("super", "x"),
            ("sasl", "x"),
            ("auth", ""), // no authenticated ids
        ] {
            let a = [acl(Permission::ALL, scheme, id)];
            assert_eq!(
                c.create("/x", b"", &with_acl(&a)).await.unwrap_err(),
                ZkError::InvalidAcl,
                "create {scheme}:{id}"
            );
            assert_eq!(
                c.set_acl("/n", &a, None).await.unwrap_err(),
                ZkError::InvalidAcl,
                "setACL {scheme}:{id}"
            );
            // One bad entry spoils the whole list.
            let mixed = [
                acl(Permission::ALL, "world", "anyone"),
                acl(Permission::ALL, scheme, id),
            ];
            assert_eq!(
                c.create("/x", b"", &with_acl(&mixed)).await.unwrap_err(),
                ZkError::InvalidAcl
            );
        }
        assert_eq!(c.check_stat("/x").await.unwrap(), None);
        assert_eq!(
            c.get_acl("/n").await.unwrap().1.aversion,
            0,
            "failed setACLs changed nothing"
        );
        // Odd-but-valid entries.
        c.create(
            "/digest-any",
            b"",
            &with_acl(&[acl(Permission::ALL, "digest", "x:y")]),
        )
        .await
        .unwrap();

        // Raw: empty ACL list is InvalidACL server-side; permission bits are stored as given.
        let mut r = s.raw().await;
        let body = Enc::new()
            .str("/empty")
            .buf(Some(b""))
            .acls(&[])
            .i32(0)
            .finish();
        assert_eq!(
            r.call(op::CREATE, &body).await.unwrap().err,
            err::INVALID_ACL
        );
        let rep = r
            .call(
                op::SET_ACL,
                &Enc::new().str("/n").acls(&[]).i32(-1).finish(),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::INVALID_ACL);
        let body = Enc::new()
            .str("/odd")
            .buf(Some(b""))
            .acls(&[(65, "world", "anyone")])
            .i32(0)
            .finish();
        assert_eq!(r.call(op::CREATE, &body).await.unwrap().err, err::OK);
        let rep = r
            .call(op::GET_ACL, &Enc::new().str("/odd").finish())
            .await
            .unwrap();
        assert_eq!(
            rep.dec().acls(),
            vec![(65, "world".to_string(), "anyone".to_string())]
        );
        let body = Enc::new()
            .str("/zero")
            .buf(Some(b""))
            .acls(&[(0, "world", "anyone")])
            .i32(0)
            .finish();
        assert_eq!(r.call(op::CREATE, &body).await.unwrap().err, err::OK);
        assert_eq!(r.get_data("/zero", false).await.err, err::NO_AUTH);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_acl_versions() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        let (st0, _) = c.create("/n", b"d", &anyone()).await.unwrap();
        let all = [acl(Permission::ALL, "world", "anyone")];
        assert_eq!(
            c.set_acl("/missing", &all, None).await.unwrap_err(),
            ZkError::NoNode
        );
        assert_eq!(
            c.set_acl("/n", &all, Some(1)).await.unwrap_err(),
            ZkError::BadVersion
        );
        let st1 = c.set_acl("/n", &all, Some(0)).await.unwrap();
        assert_eq!(st1.aversion, 1);
        assert_eq!(
            (st1.version, st1.cversion, st1.mzxid, st1.mtime, st1.czxid),
            (0, 0, st0.mzxid, st0.mtime, st0.czxid)
        );
        assert_eq!(st1.pzxid, st0.pzxid, "setACL leaves data/child stat alone");
        let st2 = c
            .set_acl(
                "/n",
                &[acl(Permission::READ | Permission::ADMIN, "world", "anyone")],
                None,
            )
            .await
            .unwrap();
        assert_eq!(st2.aversion, 2);
        assert_eq!(
            c.set_acl("/n", &all, Some(1)).await.unwrap_err(),
            ZkError::BadVersion
        );
        let (got, st) = c.get_acl("/n").await.unwrap();
        assert_eq!(
            got,
            vec![acl(Permission::READ | Permission::ADMIN, "world", "anyone")]
        );
        assert_eq!(st.aversion, 2);
        assert_eq!(
            c.set_data("/n", b"", None).await.unwrap_err(),
            ZkError::NoAuth
        );
        // The node's data version is unaffected by ACL changes.
        assert_eq!(c.check_stat("/n").await.unwrap().unwrap().version, 0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_unknown_scheme_fails_the_session() {
    timed(60, async {
        let s = TestServer::start_default().await;
        // Raw: reply AuthFailed (-115), then the connection is closed.
        let mut r = s.raw().await;
        let rep = r
            .call(
                op::AUTH,
                &Enc::new().i32(0).str("foo").buf(Some(b"bar")).finish(),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::AUTH_FAILED);
        let (_, closed) = read_until_closed(&mut r.stream, Duration::from_secs(5)).await;
        assert!(closed);

        // Crate: AuthFailed is terminal for the client.
        let c = s.client().await;
        let mut st = c.state_watcher();
        assert_eq!(
            c.auth("foo", b"bar").await.unwrap_err(),
            ZkError::AuthFailed
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while st.peek_state() != zk::SessionState::AuthFailed
            && std::time::Instant::now() < deadline
        {
            let _ = tokio::time::timeout(Duration::from_millis(200), st.changed()).await;
        }
        assert_eq!(st.peek_state(), zk::SessionState::AuthFailed);
        assert_eq!(c.get_data("/").await.unwrap_err(), ZkError::AuthFailed);

        // Well-formed-but-odd digest credentials are accepted (and simply match nothing).
        let mut r = s.raw().await;
        for cred in [&b"nocolon"[..], b"a:b:c", b""] {
            let rep = r
                .call(
                    op::AUTH,
                    &Enc::new().i32(0).str("digest").buf(Some(cred)).finish(),
                )
                .await
                .unwrap();
            assert_eq!(
                (rep.err, rep.zxid),
                (err::OK, 0),
                "digest {:?}",
                String::from_utf8_lossy(cred)
            );
        }
        assert_eq!(r.ping().await.unwrap().err, err::OK);
        // ip auth packets are accepted too.
        let rep = r
            .call(
                op::AUTH,
                &Enc::new().i32(0).str("ip").buf(Some(b"127.0.0.1")).finish(),
            )
            .await
            .unwrap();
        assert_eq!(rep.err, err::OK);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_am_i_lists_session_identities() {
    timed(60, async {
        let s = TestServer::start_default().await;
        let c = s.client().await;
        assert_eq!(
            users(c.list_auth_users().await.unwrap()),
            pairs(&[("ip", "127.0.0.1")])
        );
        c.auth("digest", b"alice:pw").await.unwrap();
        assert_eq!(
            users(c.list_auth_users().await.unwrap()),
            pairs(&[("digest", "alice"), ("ip", "127.0.0.1")])
        );
        c.auth("digest", b"bob:pw").await.unwrap();
        assert_eq!(
            users(c.list_auth_users().await.unwrap()),
            pairs(&[("digest", "alice"), ("digest", "bob"), ("ip", "127.0.0.1")])
        );
        // The same identity twice is listed once.
        c.auth("digest", b"bob:pw").await.unwrap();
        assert_eq!(users(c.list_auth_users().await.unwrap()).len(), 3);
        let other = s.client().await;
        assert_eq!(
            users(other.list_auth_users().await.unwrap()),
            pairs(&[("ip", "127.0.0.1")]),
            "per session"
        );
        // Raw: whoAmI needs no body and does not advance the zxid.
        let mut r = s.raw().await;
        let z = r.get_data("/", false).await.zxid;
        let rep = r.call(op::WHO_AM_I, &[]).await.unwrap();
        assert_eq!((rep.err, rep.zxid), (err::OK, z));
        let mut d = rep.dec();
        assert_eq!(d.i32(), 1);
        assert_eq!(
            (d.str(), d.str()),
            ("ip".to_string(), "127.0.0.1".to_string())
        );
        let _ = raw::PERM_ALL;
    })
    .await
}
