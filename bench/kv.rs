//! Updates per second through a key-value bucket, on loopback: `kv_put` in
//! one `tourbillon` process (stdin, `json_decode`, `kv_put`) to `kv_watch`
//! in another (`kv_watch`, `file`), against a bare async-nats client in the
//! same run (one thread puts, at most 1024 acks in flight; another watches
//! and counts). Each side's time runs from the first put until the watcher
//! has every update.
//!
//! ```sh
//! cargo bench -p tourbillon-cli --bench kv                 # 100,000 updates
//! KV_BENCH_UPDATES=300000 cargo bench -p tourbillon-cli --bench kv
//! ```
//!
//! It starts its own `nats-server -js` on a free loopback port, its store
//! in a temporary directory.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;

const KEYS: usize = 100;

/// One update: the same width for every `i`, so the watcher's output size
/// says how many came.
fn update(i: usize) -> (String, String) {
    (format!("k{:02}", i % KEYS), format!("{{\"n\":\"{i:09}\"}}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A bucket's stream, as `nats kv add` makes it.
fn create_bucket(url: &str, bucket: &str) {
    rt().block_on(async {
        let js = jetstream::new(async_nats::connect(url).await.unwrap());
        js.create_stream(jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 64,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: jetstream::stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .unwrap();
    });
}

fn bare(url: &str, n: usize) -> Duration {
    create_bucket(url, "bare");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let watch_url = url.to_owned();
    let watcher = std::thread::spawn(move || {
        rt().block_on(async {
            let js = jetstream::new(async_nats::connect(&watch_url).await.unwrap());
            let kv = js.get_key_value("bare").await.unwrap();
            let mut w = kv.watch_all_from_revision(1).await.unwrap();
            ready_tx.send(()).unwrap();
            let mut seen = 0;
            while let Some(e) = w.next().await {
                e.unwrap();
                seen += 1;
                if seen == n {
                    return Instant::now();
                }
            }
            panic!("the watch ended after {seen}");
        })
    });
    ready_rx.recv().unwrap();
    let start = Instant::now();
    rt().block_on(async {
        let js = jetstream::context::ContextBuilder::new()
            .max_ack_inflight(1024)
            .backpressure_on_inflight(true)
            .build(async_nats::connect(url).await.unwrap());
        let mut acks = Vec::with_capacity(512);
        for i in 0..n {
            let (k, v) = update(i);
            acks.push(js.publish(format!("$KV.bare.{k}"), v.into()).await.unwrap());
            if acks.len() == 512 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    });
    watcher.join().unwrap() - start
}

fn tourbillon(config: &Path, stdin: Stdio, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tourbillon"))
        .arg("run")
        .arg(config)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

fn train(url: &str, dir: &Path, n: usize) -> Duration {
    create_bucket(url, "tb");
    let input = dir.join("updates.jsonl");
    let mut f = std::io::BufWriter::new(fs::File::create(&input).unwrap());
    for i in 0..n {
        let (k, v) = update(i);
        writeln!(f, "{{\"key\":\"{k}\",\"value\":{v}}}").unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let out = dir.join("seen");
    let watch = dir.join("watch.toml");
    fs::write(
        &watch,
        format!(
            "[trains.w]\ncogs = [{{ kind = \"kv_watch\", servers = [\"{url}\"], bucket = \"tb\" }}, \
             {{ kind = \"file\", path = {:?} }}]\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let put = dir.join("put.toml");
    fs::write(
        &put,
        format!(
            "[trains.p]\ncogs = [{{ kind = \"stdin\" }}, {{ kind = \"json_decode\" }}, \
             {{ kind = \"kv_put\", servers = [\"{url}\"], bucket = \"tb\" }}]\n"
        ),
    )
    .unwrap();
    let mut watcher = tourbillon(&watch, Stdio::null(), &dir.join("watch.log"));
    // The watcher is up once its empty output file is there.
    let up = Instant::now();
    while !out.exists() && up.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    let want = (n * (update(0).1.len() + 1)) as u64;
    let start = Instant::now();
    let mut putter = tourbillon(&put, Stdio::from(fs::File::open(&input).unwrap()), &dir.join("put.log"));
    while fs::metadata(&out).map_or(0, |m| m.len()) < want {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the watcher did not get every update"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    assert!(putter.wait().unwrap().success());
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGTERM) };
    watcher.wait().unwrap();
    took
}

fn main() {
    let n: usize = std::env::var("KV_BENCH_UPDATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let Some(bin) = [
        "/usr/sbin/nats-server",
        "/usr/local/bin/nats-server",
        "/usr/bin/nats-server",
    ]
    .into_iter()
    .find(|p| Path::new(p).is_file()) else {
        return eprintln!("kv bench: skipped: no nats-server");
    };
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path().join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = format!("nats://127.0.0.1:{port}");
    let bare = bare(&url, n);
    let train = train(&url, dir.path(), n);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("kv updates, put in one process and watched in another ({n} updates, {KEYS} keys):");
    println!("  bare async-nats      {:>10.0} updates/s", rate(bare));
    println!("  kv_put -> kv_watch   {:>10.0} updates/s", rate(train));
    println!("  ratio                {:>10.2}x", rate(train) / rate(bare));
    let _ = server.kill();
    let _ = server.wait();
}
