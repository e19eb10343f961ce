//! A cross-core message hop as the server makes one: two glommio executors pinned to two CPUs,
//! bounded async-channels between them; a round trip is two hops (the figure is per round trip).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use glommio::{LocalExecutorBuilder, Placement};

fn cpus() -> (usize, usize) {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    (0, if n > 1 { 1 } else { 0 })
}

fn bench(c: &mut Criterion) {
    // glommio locks memory for io_uring; allow as much as the hard limit does.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut l);
        l.rlim_cur = l.rlim_max;
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &l);
    }
    let (a_cpu, b_cpu) = cpus();
    let (to_b, b_rx) = async_channel::bounded::<u64>(1024);
    let (to_a, a_rx) = async_channel::bounded::<u64>(1024);
    // Commands from the benchmark thread to executor A: run `iters` round trips, report time.
    let (cmd_tx, cmd_rx) = async_channel::bounded::<u64>(1);
    let (res_tx, res_rx) = async_channel::bounded::<Duration>(1);
    let b = LocalExecutorBuilder::new(Placement::Fixed(b_cpu))
        .name("hop-b")
        .io_memory(512 * 1024)
        .spawn(move || async move {
            while let Ok(x) = b_rx.recv().await {
                if to_a.send(x + 1).await.is_err() {
                    break;
                }
            }
        })
        .expect("executor b");
    let a = LocalExecutorBuilder::new(Placement::Fixed(a_cpu))
        .name("hop-a")
        .io_memory(512 * 1024)
        .spawn(move || async move {
            while let Ok(iters) = cmd_rx.recv().await {
                let t = Instant::now();
                for i in 0..iters {
                    to_b.send(i).await.unwrap();
                    let r = a_rx.recv().await.unwrap();
                    assert_eq!(r, i + 1);
                }
                res_tx.send(t.elapsed()).await.unwrap();
            }
        })
        .expect("executor a");
    c.bench_function("cross-core round trip (async-channel, glommio)", |bch| {
        bch.iter_custom(|iters| {
            cmd_tx.send_blocking(iters).unwrap();
            res_rx.recv_blocking().unwrap()
        })
    });
    drop(cmd_tx);
    a.join().unwrap();
    b.join().unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
