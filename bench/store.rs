//! Deltas per second the state store logs under each fsync policy.
//!
//! The store lives under Cargo's target directory rather than `/tmp`, which
//! may be a tmpfs where fsync costs nothing.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use tourbillon::store::{FsyncPolicy, Store, StoreOptions};

/// What a tail cog logs as it reads.
#[derive(Serialize, Deserialize)]
struct Advance {
    file: String,
    pos: u64,
}

fn log_deltas(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_log");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    let policies = [
        ("always", FsyncPolicy::Always),
        (
            "group_64_10ms",
            FsyncPolicy::Group {
                records: 64,
                interval: Duration::from_millis(10),
            },
        ),
        ("never", FsyncPolicy::Never),
    ];
    for (name, policy) in policies {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let options = StoreOptions::new().fsync(policy);
        let mut store = Store::<BTreeMap<String, u64>, Advance>::open(dir.path(), options).unwrap();
        let delta = Advance {
            file: "a.log".into(),
            pos: 12345,
        };
        group.bench_function(name, |b| b.iter(|| store.log(black_box(&delta)).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, log_deltas);
criterion_main!(benches);
