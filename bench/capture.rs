//! What capturing costs, and how fast a capture replays.
//!
//! The same capturable train (a supply of numbers, a map, a drain) runs
//! 200 000 events:
//! - `capture/off`: not captured (the tap is absent: this is the runtime's
//!   own cost, the baseline);
//! - `capture/on`: capturing what the supply emits and what reaches the
//!   drain, to a file;
//! - `capture/replay`: replaying that capture as fast as possible into the
//!   same train.
//!
//! Run with `cargo bench --bench capture`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tourbillon::capture::{CaptureOptions, ReplayOptions};
use tourbillon::train::Chain;
use tourbillon::{from_iter, Builder, Cog, Context, Escapement, Next, Role, Train};

const EVENTS: u64 = 200_000;

/// A drain that keeps a sum, so nothing is optimized away.
struct Sum(u64);

impl Cog<u64> for Sum {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, _: &mut Context<'_, u64, N>) {
        self.0 = self.0.wrapping_add(black_box(n));
    }
}

fn train() -> Train<u64, impl Chain<u64>> {
    Train::new("numbers")
        .cog(from_iter(0..EVENTS))
        .map(|n| n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20)
        .cog(Sum(0))
        .capturable()
}

fn run(builder: Builder) {
    let mut esc = builder.graceful_signals(false).build().unwrap();
    esc.add_train(train());
    esc.run().unwrap();
}

fn capture(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| dir.path().join(name);
    let mut g = c.benchmark_group("capture");
    g.throughput(Throughput::Elements(EVENTS));
    g.sample_size(10);
    g.bench_function("off", |b| b.iter(|| run(Escapement::builder())));
    g.bench_function("on", |b| {
        b.iter(|| run(Escapement::builder().capture(CaptureOptions::new(file("live.tbcap")))))
    });
    let recorded: &Path = &file("live.tbcap");
    g.bench_function("replay", |b| {
        b.iter(|| run(Escapement::builder().replay(ReplayOptions::new(recorded))))
    });
    g.finish();
}

criterion_group!(benches, capture);
criterion_main!(benches);
