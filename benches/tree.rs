//! DataTree::apply for each txn type, and path lookup at depth.

use std::hint::black_box;
use std::time::{Duration, Instant};

use corral::proto::codes::Code;
use corral::proto::records::Acl;
use corral::tree::DataTree;
use corral::txn::{Txn, TxnOp};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const SESSION: i64 = 0x1234;

struct T {
    tree: DataTree,
    zxid: i64,
}

impl T {
    fn new() -> T {
        let mut t = T {
            tree: DataTree::new(),
            zxid: 0,
        };
        t.apply(
            0,
            TxnOp::CreateSession {
                timeout_ms: 30_000,
                password: [1; 16],
            },
        );
        t.create("/b", 0);
        t
    }

    fn apply(&mut self, session: i64, op: TxnOp) {
        self.zxid += 1;
        let txn = Txn {
            session_id: if session == 0 { SESSION } else { session },
            cxid: 1,
            zxid: self.zxid,
            time_ms: 1_700_000_000_000,
            op,
        };
        black_box(self.tree.apply(&txn));
    }

    fn create_op(&self, path: &str, owner: i64) -> TxnOp {
        let parent = corral::tree::parent_of(path);
        let cv = self.tree.get(parent).map_or(0, |n| n.cversion) + 1;
        TxnOp::Create {
            opcode: 1,
            path: path.to_string(),
            data: Some(corral::txn::Data::from(&[b'x'; 100][..])),
            acl: Acl::open_unsafe(),
            ephemeral_owner: owner,
            parent_cversion: cv,
        }
    }

    fn create(&mut self, path: &str, owner: i64) {
        let op = self.create_op(path, owner);
        self.apply(0, op);
    }
}

/// Times `iters` applications of `timed(i)`, with `before(i)` / `after(i)` untimed around them.
fn custom(
    iters: u64,
    t: &mut T,
    mut before: impl FnMut(&mut T, u64),
    mut timed: impl FnMut(&mut T, u64) -> TxnOp,
    mut after: impl FnMut(&mut T, u64),
) -> Duration {
    for i in 0..iters {
        before(t, i);
    }
    let ops: Vec<TxnOp> = (0..iters).map(|i| timed(t, i)).collect();
    let start = Instant::now();
    for op in ops {
        t.apply(0, op);
    }
    let d = start.elapsed();
    for i in 0..iters {
        after(t, i);
    }
    d
}

fn apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree apply");
    let mut t = T::new();
    let path = |i: u64| format!("/b/n{i}");
    g.bench_function("create (persistent, 100 B)", |b| {
        b.iter_custom(|iters| {
            let mut next_cv = t.tree.get("/b").unwrap().cversion;
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, i| {
                    next_cv += 1;
                    TxnOp::Create {
                        opcode: 1,
                        path: path(i),
                        data: Some(corral::txn::Data::from(&[b'x'; 100][..])),
                        acl: Acl::open_unsafe(),
                        ephemeral_owner: 0,
                        parent_cversion: next_cv,
                    }
                },
                |t, i| t.apply(0, TxnOp::Delete { path: path(i) }),
            )
        })
    });
    g.bench_function("delete", |b| {
        b.iter_custom(|iters| {
            custom(
                iters,
                &mut t,
                |t, i| t.create(&path(i), 0),
                |_, i| TxnOp::Delete { path: path(i) },
                |_, _| {},
            )
        })
    });
    t.create("/b/s", 0);
    g.bench_function("setData (100 B)", |b| {
        let mut v = 0;
        b.iter_custom(|iters| {
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, _| {
                    v += 1;
                    TxnOp::SetData {
                        path: "/b/s".into(),
                        data: Some(corral::txn::Data::from(&[b'y'; 100][..])),
                        version: v,
                    }
                },
                |_, _| {},
            )
        })
    });
    g.bench_function("setACL", |b| {
        let mut v = 0;
        b.iter_custom(|iters| {
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, _| {
                    v += 1;
                    TxnOp::SetAcl {
                        path: "/b/s".into(),
                        acl: Acl::open_unsafe(),
                        version: v,
                    }
                },
                |_, _| {},
            )
        })
    });
    g.bench_function("check", |b| {
        b.iter_custom(|iters| {
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, _| TxnOp::Check {
                    path: "/b/s".into(),
                },
                |_, _| {},
            )
        })
    });
    g.bench_function("error txn", |b| {
        b.iter_custom(|iters| {
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, _| TxnOp::Error(Code::NoNode),
                |_, _| {},
            )
        })
    });
    g.bench_function("multi (create + setData + delete)", |b| {
        b.iter_custom(|iters| {
            let mut cv = t.tree.get("/b").unwrap().cversion;
            let mut v = t.tree.get("/b/s").unwrap().version;
            custom(
                iters,
                &mut t,
                |_, _| {},
                |_, i| {
                    cv += 1;
                    v += 1;
                    TxnOp::Multi(vec![
                        TxnOp::Create {
                            opcode: 1,
                            path: path(i),
                            data: None,
                            acl: Acl::open_unsafe(),
                            ephemeral_owner: 0,
                            parent_cversion: cv,
                        },
                        TxnOp::SetData {
                            path: "/b/s".into(),
                            data: None,
                            version: v,
                        },
                        TxnOp::Delete { path: path(i) },
                    ])
                },
                |_, _| {},
            )
        })
    });
    g.bench_function("createSession + closeSession (2 ephemerals)", |b| {
        let mut sid = 1_000_000i64;
        b.iter(|| {
            sid += 1;
            t.apply(
                sid,
                TxnOp::CreateSession {
                    timeout_ms: 30_000,
                    password: [2; 16],
                },
            );
            let e1 = format!("/b/e{sid}a");
            let e2 = format!("/b/e{sid}b");
            t.create(&e1, sid);
            t.create(&e2, sid);
            t.apply(sid, TxnOp::CloseSession);
        })
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("path lookup");
    let mut t = T::new();
    let mut p = String::new();
    let mut at_depth = Vec::new();
    for d in 1..=64 {
        p.push_str(&format!("/level{d}"));
        t.create(&p, 0);
        if [1, 4, 16, 64].contains(&d) {
            at_depth.push((d, p.clone()));
        }
    }
    for (d, path) in at_depth {
        g.bench_with_input(BenchmarkId::new("get at depth", d), &path, |b, path| {
            b.iter(|| black_box(t.tree.get(black_box(path)).map(|n| n.version)))
        });
    }
    g.finish();
}

criterion_group!(benches, apply, lookup);
criterion_main!(benches);
