//! Dispatch cost of the escapement.
//!
//! - `train/5-closures` against `train/plain-loop`: ten million events
//!   through five trivial closures, in a train driven by the loop and in a
//!   plain `for` loop calling the same five functions, in the same run. The
//!   figure that matters is the ratio. `train/5-closures-junction` cuts the
//!   same train in two, the second reading the first (`Train::input`): what
//!   a junction between trains adds per event.
//! - `timers/arm-cancel`: a million arm/cancel pairs, and `timers/rearm` a
//!   million re-arms of live timers, against the cost of a `BinaryHeap`
//!   push/pop pair measured in the same run.
//!
//! Run with `cargo bench --bench dispatch`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tourbillon::{Cog, Context, Escapement, Fired, Next, Role, Train};

const EVENTS: u64 = 10_000_000;
const TIMERS: u64 = 1_000_000;

/// Emits `0..n` in batches on successive turns, then is exhausted.
struct Numbers {
    next: u64,
    n: u64,
}

impl Cog<u64> for Numbers {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        let end = (self.next + 1024).min(self.n);
        for n in self.next..end {
            ctx.emit(n);
        }
        self.next = end;
        if self.next == self.n {
            ctx.exhausted();
        } else {
            ctx.enqueue(0).unwrap();
        }
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
}

fn c1(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
fn c2(x: &u64) -> bool {
    x & 7 != 0
}
fn c3(x: u64) -> u64 {
    x.rotate_left(17)
}
fn c4(x: u64) -> u64 {
    x ^ (x >> 29)
}
/// The sink: the same opaque use of the value in both versions.
fn c5(x: u64) -> u64 {
    black_box(x)
}

fn train(c: &mut Criterion) {
    let mut g = c.benchmark_group("train");
    g.sample_size(10).throughput(Throughput::Elements(EVENTS));
    g.bench_function("plain-loop", |b| {
        b.iter(|| {
            for x in 0..black_box(EVENTS) {
                let x = c1(x);
                if !c2(&x) {
                    continue;
                }
                c5(c4(c3(x)));
            }
        })
    });
    g.bench_function("5-closures", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
                esc.add_train(
                    Train::new("bench")
                        .cog(Numbers { next: 0, n: EVENTS })
                        .map(c1)
                        .filter(c2)
                        .map(c3)
                        .map(c4)
                        .map(c5),
                );
                let start = Instant::now();
                esc.run().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("5-closures-junction", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
                esc.add_train(
                    Train::new("head")
                        .cog(Numbers { next: 0, n: EVENTS })
                        .map(c1)
                        .filter(c2),
                );
                esc.add_train(Train::new("tail").input("head").map(c3).map(c4).map(c5));
                let start = Instant::now();
                esc.run().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers");
    g.sample_size(10).throughput(Throughput::Elements(TIMERS));
    g.bench_function("binary-heap-push-pop", |b| {
        b.iter(|| {
            let mut heap = BinaryHeap::new();
            let now = Instant::now();
            for i in 0..TIMERS {
                heap.push(Reverse((now + Duration::from_micros(i % 977), i)));
                black_box(heap.pop());
            }
        })
    });
    g.bench_function("arm-cancel", |b| {
        b.iter_custom(|iters| {
            let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
            let core = esc.core();
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..TIMERS {
                    let id = core.after(Duration::from_micros(1_000_000 + i % 977), |_| {}).unwrap();
                    black_box(core.cancel(id));
                }
            }
            let spent = start.elapsed();
            let (live, heap) = core.timer_counts();
            assert_eq!(live, 0);
            assert!(heap < 1_000, "cancelled timers piled up: {heap}");
            spent
        })
    });
    g.bench_function("rearm", |b| {
        b.iter_custom(|iters| {
            let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
            let core = esc.core();
            let ids: Vec<_> = (0..100)
                .map(|_| core.after(Duration::from_secs(3600), |_| {}).unwrap())
                .collect();
            let far = Instant::now() + Duration::from_secs(3600);
            let start = Instant::now();
            for _ in 0..iters {
                for i in 0..TIMERS {
                    let id = ids[(i % 100) as usize];
                    black_box(core.reschedule(id, far + Duration::from_micros(i % 977)));
                }
            }
            let spent = start.elapsed();
            let (live, heap) = core.timer_counts();
            assert_eq!(live, 100);
            assert!(heap < 1_000, "re-armed timers piled up: {heap}");
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, train, timers);
criterion_main!(benches);
