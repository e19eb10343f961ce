//! Moving data between Apache ZooKeeper 3.8 and corral: `corral import-zookeeper` on a real
//! ZooKeeper's data dir, `corral export-zookeeper` read back by a real ZooKeeper. Each side's
//! tree is read through a client, every node with its data, stat and ACL, and compared.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use zk::{Acl, AuthId, CreateMode, Permission};
use zookeeper_client as zk;

/// ZooKeeper takes a snapshot every 5-10 txns, so the import has both a snapshot (often a
/// fuzzy one) and logs after it; TTL nodes need the extended types.
fn opts() -> ServerOpts {
    ServerOpts::new()
        .cfg("snapCount", 10)
        .cfg("extendedTypesEnabled", "true")
}

fn corral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(args)
        .output()
        .expect("run corral")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}stderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn acl(perm: Permission, scheme: &str, id: &str) -> Acl {
    Acl::new(perm, AuthId::new(scheme, id))
}

/// A client that may read the digest-protected nodes.
async fn reader(addr: &str) -> zk::Client {
    connect_with(
        addr,
        zk::Client::connector().with_auth("digest", b"user:secret"),
    )
    .await
}

/// Every node reachable from `/`: its stat, data, ACL and children, or the error a read gave
/// (a node whose ACL lets nobody here read it still has its stat compared, through exists).
async fn dump(c: &zk::Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec!["/".to_string()];
    while let Some(p) = stack.pop() {
        let stat = c.check_stat(&p).await.expect("exists").expect("node");
        let data = c.get_data(&p).await.map(|(d, _)| d);
        let acl = c.get_acl(&p).await.map(|(a, _)| a);
        let kids = c.list_children(&p).await.map(|mut k| {
            k.sort();
            k
        });
        if let Ok(kids) = &kids {
            for k in kids {
                stack.push(if p == "/" {
                    format!("/{k}")
                } else {
                    format!("{p}/{k}")
                });
            }
        }
        out.insert(
            p,
            format!("{stat:?}\ndata {data:?}\nacl {acl:?}\nchildren {kids:?}"),
        );
    }
    out
}

/// The newest mzxid in a [`dump`] (the last write to data).
fn max_zxid(d: &BTreeMap<String, String>) -> i64 {
    d.values()
        .filter_map(|v| {
            v.split("mzxid: ")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .max()
        .expect("stats in the dump")
}

fn assert_same(want: &BTreeMap<String, String>, got: &BTreeMap<String, String>, what: &str) {
    let wk: Vec<_> = want.keys().collect();
    let gk: Vec<_> = got.keys().collect();
    assert_eq!(wk, gk, "{what}: the paths differ");
    for (p, w) in want {
        let g = &got[p];
        if w != g {
            let cut = |s: &str| s.chars().take(1500).collect::<String>();
            panic!("{what}: {p} differs\nwant {}\ngot  {}", cut(w), cut(g));
        }
    }
}

/// A varied tree; `keep` and `lose` own one ephemeral each. Ends with deletions and setData,
/// which with a low snapCount land after the last snapshot (in the logs).
async fn fill(addr: &str, c: &zk::Client, keep: &zk::Client, lose: &zk::Client) {
    let open = anyone();
    c.create("/app", b"hello", &open).await.unwrap();
    for _ in 0..4 {
        c.create("/app/seq-", b"s", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
    }
    let bin: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    c.create("/app/bin", &bin, &open).await.unwrap();
    c.create("/app/empty", b"", &open).await.unwrap();
    c.create("/app/big", &vec![b'z'; 200_000], &open)
        .await
        .unwrap();
    c.mkdir("/deep/a/b/c/d/e/f/g/h/i/j/k/l/m", &open)
        .await
        .unwrap();
    c.create("/deep/a/b/c/d/e/f/g/h/i/j/k/l/m/leaf", b"far", &open)
        .await
        .unwrap();
    keep.create("/eph-keep", b"k", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    lose.create("/eph-lose", b"l", &mode(CreateMode::Ephemeral))
        .await
        .unwrap();
    lose.create("/app/eph-", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    c.create("/box", b"", &mode(CreateMode::Container))
        .await
        .unwrap();
    c.create("/box/item", b"i", &open).await.unwrap();
    let ttl = CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    c.create("/ttl", b"t", &ttl).await.unwrap();
    c.create("/acl", b"", &open).await.unwrap();
    let digest = [acl(Permission::ALL, "digest", &digest_id("user", "secret"))];
    c.create(
        "/acl/digest",
        b"secret data",
        &CreateMode::Persistent.with_acls(zk::Acls::new(&digest)),
    )
    .await
    .unwrap();
    let read_only = [acl(Permission::READ, "world", "anyone")];
    c.create(
        "/acl/world-read",
        b"r",
        &CreateMode::Persistent.with_acls(zk::Acls::new(&read_only)),
    )
    .await
    .unwrap();
    let ip = [
        acl(Permission::ALL, "ip", "127.0.0.1"),
        acl(Permission::READ | Permission::ADMIN, "ip", "10.0.0.0/8"),
    ];
    c.create(
        "/acl/ip",
        b"ip",
        &CreateMode::Persistent.with_acls(zk::Acls::new(&ip)),
    )
    .await
    .unwrap();
    let elsewhere = [acl(Permission::ALL, "ip", "10.1.2.3")];
    c.create(
        "/acl/nobody-here",
        b"hidden",
        &CreateMode::Persistent.with_acls(zk::Acls::new(&elsewhere)),
    )
    .await
    .unwrap();
    // A multi that commits and one that fails (an error txn in the log).
    let mut m = c.new_multi_writer();
    m.add_create("/multi", b"m", &open).unwrap();
    m.add_set_data("/app", b"from a multi", None).unwrap();
    m.commit().await.unwrap();
    let mut m = c.new_multi_writer();
    m.add_create("/multi-failed", b"", &open).unwrap();
    m.add_check_version("/app", 99).unwrap();
    assert!(m.commit().await.is_err());
    let ip_and_world = [
        acl(Permission::ALL, "ip", "127.0.0.1"),
        acl(Permission::READ, "world", "anyone"),
    ];
    c.set_acl("/acl/ip", &ip_and_world, None).await.unwrap();
    // The last changes: deletions (cversion and pzxid of the parents) and setData.
    for i in 0..3 {
        c.set_data("/app/bin", &[i; 10], None).await.unwrap();
    }
    c.delete("/app/seq-0000000001", None).await.unwrap();
    c.delete("/deep/a/b/c/d/e/f/g/h/i/j/k/l/m/leaf", None)
        .await
        .unwrap();
    // A session closed by its client (closeSession) takes its ephemeral with it.
    let short = connect(addr).await;
    short
        .create("/app/closed-", b"", &mode(CreateMode::EphemeralSequential))
        .await
        .unwrap();
    drop(short);
    eventually(
        Duration::from_secs(20),
        "the closed session's ephemeral goes",
        || {
            let c = c.clone();
            async move {
                let kids = c.list_children("/app").await.unwrap();
                !kids.iter().any(|k| k.starts_with("closed-"))
            }
        },
    )
    .await;
    c.create("/last", b"after everything", &open).await.unwrap();
}

/// Owners of the ephemerals: detached, so dropping them closes nothing.
async fn owner(addr: &str, timeout: Duration) -> zk::Client {
    connect_with(
        addr,
        zk::Client::connector()
            .with_session_timeout(timeout)
            .with_detached(),
    )
    .await
}

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{prefix}."))
        })
        .collect();
    // By zxid, as the names' hex says.
    v.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().into_owned();
        u64::from_str_radix(n.split('.').nth(1).unwrap(), 16).unwrap()
    });
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Imports `from` into `to`, which must succeed and leave one corral snapshot and nothing
/// else in `to/snapshots`: the tool's output and that snapshot's bytes.
fn imported(from: &Path, to: &Path) -> (Output, Vec<u8>) {
    let o = corral(&[
        "import-zookeeper",
        "--from",
        from.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let mut v: Vec<_> = std::fs::read_dir(to.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    assert_eq!(v.len(), 1, "files in {}", to.join("snapshots").display());
    (o, v.pop().unwrap())
}

/// Starts corral on what `import-zookeeper <args> --to <its dataDir> --force` makes, and
/// compares its tree with `want` through a client.
async fn serve_import(args: &[&str], want: &BTreeMap<String, String>, what: &str) -> TestServer {
    let mut cs = TestServer::start_target(Target::Corral, opts()).await;
    cs.stop();
    let to = cs.data_dir();
    let mut all = vec!["import-zookeeper"];
    all.extend_from_slice(args);
    all.extend(["--to", to.to_str().unwrap(), "--force"]);
    let o = corral(&all);
    assert!(o.status.success(), "{}", text(&o));
    cs.start_again().await;
    let got = dump(&reader(&cs.addr()).await).await;
    assert_same(want, &got, what);
    cs
}

/// Imports `from` into a fresh dir under `scratch`; the import must be refused with a message
/// naming `needle`, and nothing may be left at the target.
fn refused(from: &Path, scratch: &Path, needle: &str) {
    let to = scratch.join(format!("refused-{}", needle.replace('.', "_")));
    let o = corral(&[
        "import-zookeeper",
        "--from",
        from.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(needle), "{}", text(&o));
    assert!(!to.exists(), "a refused import left {}", to.display());
    let leftovers: Vec<_> = std::fs::read_dir(scratch)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("corral-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp dirs left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_from_zookeeper_keeps_every_node_stat_acl_and_session() {
    timed(240, async {
        let mut zks = TestServer::start_target(Target::ZooKeeper, opts()).await;
        let c = zks.client().await;
        let keep = owner(&zks.addr(), Duration::from_secs(30)).await;
        let lose = owner(&zks.addr(), Duration::from_secs(12)).await;
        fill(&zks.addr(), &c, &keep, &lose).await;
        let want = dump(&reader(&zks.addr()).await).await;
        let keep_session = keep.session().clone();
        // A crash, not a clean stop: everything acknowledged is in the log, and the sessions
        // are alive at the end.
        zks.kill9();
        drop((c, keep, lose));

        let v2 = zks.data_dir().join("version-2");
        let snaps = files(&v2, "snapshot");
        let logs = files(&v2, "log");
        assert!(!snaps.is_empty() && !logs.is_empty(), "{snaps:?} {logs:?}");

        // Into a corral data dir that is not empty: refused without --force, then replaced.
        let mut cs = TestServer::start_target(Target::Corral, opts()).await;
        cs.stop();
        let to = cs.data_dir();
        let from = zks.data_dir();
        let o = corral(&[
            "import-zookeeper",
            "--from",
            from.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
        let o = corral(&[
            "import-zookeeper",
            "--from",
            from.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "--force",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!("{out}");
        let replayed: usize = out
            .split(" txns replayed")
            .next()
            .and_then(|s| s.rsplit('(').next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no replay count in {out}"));
        assert!(
            replayed > 0,
            "the logs after the snapshot were not used: {out}"
        );

        cs.start_again().await;
        let got = dump(&reader(&cs.addr()).await).await;
        assert_same(&want, &got, "corral after the import");
        assert!(got.len() > 30, "{got:?}");

        // The session kept alive resumes on corral with ZooKeeper's password, and its
        // ephemeral stays; the other session expires and takes its ephemerals with it.
        let resumed = connect_with(
            &cs.addr(),
            zk::Client::connector()
                .with_session(keep_session)
                .with_detached(),
        )
        .await;
        assert!(resumed.check_stat("/eph-keep").await.unwrap().is_some());
        let c = cs.client().await;
        eventually(Duration::from_secs(40), "the lost session expires", || {
            let c = c.clone();
            async move { c.check_stat("/eph-lose").await.unwrap().is_none() }
        })
        .await;
        assert!(c
            .list_children("/app")
            .await
            .unwrap()
            .iter()
            .all(|k| !k.starts_with("eph-")));
        assert!(c.check_stat("/eph-keep").await.unwrap().is_some());
        // A new write continues the zxids.
        let stat = c.create("/new", b"", &anyone()).await.unwrap().0;
        assert!(stat.czxid > max_zxid(&want), "{stat:?}");
        // Sequential names go on from ZooKeeper's counter: the stored cversion, which a client
        // sees as 2 * created - children.
        let field = |s: &str, f: &str| -> i64 {
            s.split(&format!("{f}: "))
                .nth(1)
                .unwrap()
                .split([',', ' '])
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let app = &want["/app"];
        let next = (field(app, "cversion") + field(app, "num_children")) / 2;
        let (_, seq) = c
            .create("/app/seq-", b"", &mode(CreateMode::PersistentSequential))
            .await
            .unwrap();
        assert_eq!(seq.into_i64(), next, "{app}");
        // A failed multi after the imported snapshot, then a restart: recovery replays it.
        let mut m = c.new_multi_writer();
        m.add_create("/never", b"", &anyone()).unwrap();
        m.add_check_version("/app", 1234).unwrap();
        assert!(m.commit().await.is_err());
        drop((c, resumed));
        cs.restart().await;
        let c = cs.client().await;
        assert!(c.check_stat("/never").await.unwrap().is_none());
        assert!(c.check_stat("/new").await.unwrap().is_some());
        drop(c);

        // Damaged input is refused, and nothing is written.
        let scratch = make_temp_dir();
        // The newest complete snapshot (a crash can leave a newer one cut short).
        let newest_snap = snaps
            .iter()
            .rev()
            .find(|p| std::fs::read(p).unwrap().ends_with(&[0, 0, 0, 1, b'/']))
            .unwrap();
        let newest_log = logs.last().unwrap();
        let damaged = |name: &str, edit: &dyn Fn(&Path)| {
            let d = scratch.join(name);
            copy_dir(&zks.data_dir(), &d);
            edit(&d.join("version-2"));
            d
        };
        let flip = |p: &Path, at: usize| {
            let mut b = std::fs::read(p).unwrap();
            b[at] ^= 0x01;
            std::fs::write(p, b).unwrap();
        };
        let snap_name = newest_snap.file_name().unwrap().to_owned();
        let snap_len = std::fs::metadata(newest_snap).unwrap().len() as usize;
        let d = damaged("snap-flip", &|v2| flip(&v2.join(&snap_name), snap_len / 2));
        refused(&d, &scratch, &snap_name.to_string_lossy());
        // One cut short is what a crash while writing it leaves: skipped for the snapshot
        // before it, as ZooKeeper does, and the logs bring the same tree.
        let (_, clean) = imported(&zks.data_dir(), &scratch.join("clean"));
        if snaps.len() > 1 {
            let d = damaged("snap-cut", &|v2| {
                let p = v2.join(&snap_name);
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() - 20]).unwrap();
            });
            let (o, cut) = imported(&d, &scratch.join("from-cut"));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("incomplete"),
                "{}",
                text(&o)
            );
            assert!(
                cut == clean,
                "the older snapshot and the logs gave another tree"
            );
        }
        let log_name = newest_log.file_name().unwrap().to_owned();
        let log_bytes = std::fs::read(newest_log).unwrap();
        // The last record ends with its 'B' at the last non-zero byte of the file.
        let end = log_bytes.iter().rposition(|&b| b != 0).unwrap();
        let d = damaged("log-flip", &|v2| flip(&v2.join(&log_name), end - 5));
        refused(&d, &scratch, &log_name.to_string_lossy());
        let d = damaged("log-cut", &|v2| {
            std::fs::write(v2.join(&log_name), &log_bytes[..end - 3]).unwrap();
        });
        refused(&d, &scratch, &log_name.to_string_lossy());
        // A plain snapshot named as a snappy one is not a snappy stream.
        let d = damaged("snappy", &|v2| {
            std::fs::rename(
                v2.join(&snap_name),
                v2.join(format!("{}.snappy", snap_name.to_string_lossy())),
            )
            .unwrap();
        });
        refused(&d, &scratch, "snappy");
        let o = corral(&[
            "import-zookeeper",
            "--from",
            scratch.to_str().unwrap(),
            "--to",
            "/nonexistent/x",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains("no ZooKeeper data"));
        let _ = std::fs::remove_dir_all(&scratch);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_zookeeper_keeps_every_node_stat_and_acl() {
    timed(240, async {
        let mut cs = TestServer::start_target(Target::Corral, opts()).await;
        let c = cs.client().await;
        let keep = owner(&cs.addr(), Duration::from_secs(30)).await;
        let lose = owner(&cs.addr(), Duration::from_secs(30)).await;
        fill(&cs.addr(), &c, &keep, &lose).await;
        let want = dump(&reader(&cs.addr()).await).await;
        // Not from under a running server.
        let scratch = make_temp_dir();
        let o = corral(&[
            "export-zookeeper",
            "--from",
            cs.data_dir().to_str().unwrap(),
            "--to",
            scratch.join("zk").to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("in use"),
            "{}",
            text(&o)
        );
        assert!(!scratch.join("zk").exists());
        cs.stop();
        // Nor into the directory it reads.
        let o = corral(&[
            "export-zookeeper",
            "--from",
            cs.data_dir().to_str().unwrap(),
            "--to",
            cs.dir.to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(cs.data_dir().join("snapshots").is_dir());
        let _ = std::fs::remove_dir_all(&scratch);
        drop((c, keep, lose));

        let mut zks = TestServer::start_target(Target::ZooKeeper, opts()).await;
        zks.stop();
        let from = cs.data_dir();
        let to = zks.data_dir();
        let o = corral(&[
            "export-zookeeper",
            "--from",
            from.to_str().unwrap(),
            "--to",
            to.to_str().unwrap(),
            "--force",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        zks.start_again().await;
        let got = dump(&reader(&zks.addr()).await).await;
        assert_same(&want, &got, "ZooKeeper after the export");
        // ZooKeeper carries on from the exported zxid.
        let c = zks.client().await;
        let (stat, _) = c.create("/after", b"", &anyone()).await.unwrap();
        assert!(stat.czxid > max_zxid(&got), "{stat:?}");
        drop(c);
        zks.stop();

        // And back again: ZooKeeper's files of the export import as the same tree.
        let mut back = TestServer::start_target(Target::Corral, opts()).await;
        back.stop();
        let o = corral(&[
            "import-zookeeper",
            "--from",
            zks.data_dir().to_str().unwrap(),
            "--to",
            back.data_dir().to_str().unwrap(),
            "--force",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        back.start_again().await;
        let again = dump(&reader(&back.addr()).await).await;
        assert!(again.contains_key("/after"));
        for (p, w) in &want {
            if p != "/" {
                assert_eq!(Some(w), again.get(p), "{p} after export and import");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_snapshots_and_a_separate_data_log_dir_import() {
    compressed_snapshots_import("gz").await;
}

/// ZooKeeper's snappy snapshots (snappy-java's stream, its jar in Debian's classpath).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_snapshots_import() {
    compressed_snapshots_import("snappy").await;
}

async fn compressed_snapshots_import(method: &'static str) {
    timed(180, async {
        let logs = make_temp_dir();
        let zk_opts = opts()
            .cfg("snapshot.compression.method", method)
            .cfg("dataLogDir", logs.display());
        let mut zks = TestServer::start_target(Target::ZooKeeper, zk_opts).await;
        let c = zks.client().await;
        let keep = owner(&zks.addr(), Duration::from_secs(30)).await;
        let lose = owner(&zks.addr(), Duration::from_secs(30)).await;
        fill(&zks.addr(), &c, &keep, &lose).await;
        let want = dump(&reader(&zks.addr()).await).await;
        zks.kill9();
        drop((c, keep, lose));
        let snaps = files(&zks.data_dir().join("version-2"), "snapshot");
        let suffix = format!(".{method}");
        assert!(
            snaps.iter().all(|p| p.to_string_lossy().ends_with(&suffix)) && !snaps.is_empty(),
            "{snaps:?}"
        );
        assert!(!files(&logs.join("version-2"), "log").is_empty());

        let mut cs = TestServer::start_target(Target::Corral, opts()).await;
        cs.stop();
        // Without the log dir the logs are missing: the import warns that it has the snapshot
        // alone. With it, everything.
        let o = corral(&[
            "import-zookeeper",
            "--from",
            zks.data_dir().to_str().unwrap(),
            "--to",
            cs.data_dir().to_str().unwrap(),
            "--force",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("--from-log"),
            "{}",
            text(&o)
        );
        drop(cs);
        serve_import(
            &[
                "--from",
                zks.data_dir().to_str().unwrap(),
                "--from-log",
                logs.to_str().unwrap(),
            ],
            &want,
            &format!("corral after importing {method} snapshots"),
        )
        .await;
        let _ = std::fs::remove_dir_all(&logs);
    })
    .await;
}

/// A dir whose version-2 holds `snapshot` and every log of `v2` (hard links: ZooKeeper's logs
/// are preallocated to 64 MiB).
fn with_snapshot(v2: &Path, snapshot: &Path, to: &Path) -> PathBuf {
    let dst = to.join("version-2");
    std::fs::create_dir_all(&dst).unwrap();
    for p in files(v2, "log").iter().chain([&snapshot.to_path_buf()]) {
        std::fs::hard_link(p, dst.join(p.file_name().unwrap())).unwrap();
    }
    to.to_path_buf()
}

/// ZooKeeper writes a snapshot's ACL map before its nodes while writes go on, so a node
/// created with a new ACL list during the walk names an index the map lacks; ZooKeeper's own
/// replay of the log gives it its list. Snapshots taken under a stream of creates, each with
/// its own ACL, hold such nodes: alone they are refused, and with the logs after them they
/// import to ZooKeeper's tree, the same as the newest snapshot does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzy_snapshots_take_new_acls_from_the_log() {
    timed(240, async {
        let mut zks = TestServer::start_target(Target::ZooKeeper, opts()).await;
        let c = zks.client().await;
        let open = anyone();
        c.create("/f", b"", &open).await.unwrap();
        for p in 0..32 {
            c.create(&format!("/f/p{p:02}"), b"", &open).await.unwrap();
        }
        let scratch = make_temp_dir();
        let v2 = zks.data_dir().join("version-2");
        let complete = |p: &Path| std::fs::read(p).unwrap().ends_with(&[0, 0, 0, 1, b'/']);
        // Rounds of 800 creates, 8 in flight, until a snapshot names an ACL its map lacks
        // (the first round nearly always makes several). A snapshot is probed alone, which a
        // running ZooKeeper does not disturb: such a one is refused without its logs.
        let mut fuzzy = None;
        let mut fuzzy_count = 0;
        let mut probed = std::collections::BTreeSet::new();
        for round in 0..5 {
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for i in 0..100 {
                            let n = round * 10_000 + t * 1000 + i;
                            let acls = [
                                acl(Permission::READ, "world", "anyone"),
                                acl(Permission::ALL, "digest", &format!("u{n}:x")),
                            ];
                            let path = format!("/f/p{:02}/n{n}", n % 32);
                            let mode = CreateMode::Persistent.with_acls(zk::Acls::new(&acls));
                            c.create(&path, &[b'v'; 300], &mode).await.unwrap();
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            for snap in files(&v2, "snapshot") {
                if !complete(&snap) || !probed.insert(snap.clone()) {
                    continue;
                }
                let alone = scratch.join(format!("alone-{}", probed.len()));
                std::fs::create_dir_all(alone.join("version-2")).unwrap();
                std::fs::copy(
                    &snap,
                    alone.join("version-2").join(snap.file_name().unwrap()),
                )
                .unwrap();
                let to = scratch.join(format!("alone-to-{}", probed.len()));
                let o = corral(&[
                    "import-zookeeper",
                    "--from",
                    alone.to_str().unwrap(),
                    "--to",
                    to.to_str().unwrap(),
                ]);
                let err = String::from_utf8_lossy(&o.stderr);
                if o.status.code() == Some(1) && err.contains("which neither the snapshot lists") {
                    assert!(!to.exists());
                    fuzzy_count += 1;
                    // The newest such one: the fewer logs after it, the quicker the import.
                    fuzzy = Some(snap.clone());
                } else {
                    assert!(o.status.success(), "{}", text(&o));
                }
            }
            if fuzzy.is_some() {
                break;
            }
        }
        let fuzzy = fuzzy.unwrap_or_else(|| {
            panic!("no snapshot of {probed:?} holds a node created with a new ACL during its walk")
        });
        let want = dump(&reader(&zks.addr()).await).await;
        zks.kill9();
        drop(c);

        // With the logs: imported, saying so, and the same tree as from the newest snapshot.
        let from_fuzzy = with_snapshot(&v2, &fuzzy, &scratch.join("fuzzy"));
        let (o, bytes) = imported(&from_fuzzy, &scratch.join("fuzzy-to"));
        let out = String::from_utf8_lossy(&o.stdout);
        eprintln!(
            "{fuzzy_count} of {} snapshots name ACLs their maps lack; {}: {out}",
            probed.len(),
            fuzzy.display()
        );
        assert!(out.contains("got a new ACL while ZooKeeper wrote"), "{out}");
        let (_, newest) = imported(&zks.data_dir(), &scratch.join("newest-to"));
        assert!(
            bytes == newest,
            "{} and the logs gave another tree than the newest snapshot",
            fuzzy.display()
        );
        serve_import(
            &["--from", from_fuzzy.to_str().unwrap()],
            &want,
            "corral after importing a fuzzy snapshot",
        )
        .await;
        let _ = std::fs::remove_dir_all(&scratch);
    })
    .await;
}

#[test]
fn usage_errors_exit_2_with_the_usage() {
    for tool in ["import-zookeeper", "export-zookeeper"] {
        for args in [vec![], vec!["--from", "/x"], vec!["--to"], vec!["--bogus"]] {
            let mut all = vec![tool];
            all.extend(args.iter().copied());
            let o = corral(&all);
            assert_eq!(o.status.code(), Some(2), "{all:?}: {}", text(&o));
            assert!(
                String::from_utf8_lossy(&o.stderr).contains(&format!("usage: corral {tool}")),
                "{all:?}: {}",
                text(&o)
            );
        }
        let o = corral(&[tool, "--help"]);
        assert!(o.status.success(), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("--force"));
    }
}
