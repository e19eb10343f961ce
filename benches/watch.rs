//! WatchManager::trigger with many watchers on one path (the fan-out a setData causes).

use std::hint::black_box;

use corral::proto::codes::event;
use corral::watch::{Kind, WatchManager};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("watch trigger");
    for n in [1u64, 100, 10_000] {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("data watchers", n), &n, |b, &n| {
            b.iter_batched(
                || {
                    let mut w = WatchManager::default();
                    for conn in 0..n {
                        w.add(Kind::Data, "/app/config", conn);
                    }
                    // Unrelated watches the trigger must not visit.
                    for conn in 0..n.min(1000) {
                        w.add(Kind::Data, &format!("/other/{conn}"), conn);
                    }
                    w
                },
                |mut w| black_box(w.trigger("/app/config", event::NODE_DATA_CHANGED)),
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
