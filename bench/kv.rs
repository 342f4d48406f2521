//! Updates per second through a key-value bucket, on loopback: `kv_put` in
//! one `tourbillon` process (stdin, `json_decode`, `kv_put`) to `kv_watch`
//! in another (`kv_watch`, `file`), against a bare async-nats client doing
//! the same job in the same run, alternately.
//!
//! Like with like, on both sides:
//! - the same updates: 100 keys, values `{"n":"000000042"}` (the same
//!   bytes: `kv_put` puts the JSON text of the decoded value);
//! - the same puts: each carries a `Nats-Msg-Id` (what lets a put be sent
//!   again without a second revision: `kv_put` needs it for no loss), at
//!   most 1024 puts in flight, each one's ack awaited before it counts;
//! - the same watch: every revision from the first, each value written as
//!   a line to a file;
//! - the same clock: both sides are connected and have put and watched one
//!   update before the clock starts (no process start, connect or bucket
//!   lookup in the figure); it stops when the watcher has every update.
//!
//! ```sh
//! cargo bench -p tourbillon-cli --bench kv                 # 100,000 updates, 3 rounds
//! KV_BENCH_UPDATES=300000 KV_BENCH_ROUNDS=5 cargo bench -p tourbillon-cli --bench kv
//! ```
//!
//! A third line, for the record, is the bare client without message ids:
//! what they cost the server (it keeps each for the duplicate window).
//!
//! `KV_BENCH_BIN=path` runs another `tourbillon` binary (an earlier build)
//! on the tourbillon side.
//!
//! It starts its own `nats-server -js` on a free loopback port, its store
//! in a temporary directory, a new bucket for each run.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;

const KEYS: usize = 100;
const IN_FLIGHT: usize = 1024;

/// One update: the same width for every `i`, so the watcher's output size
/// says how many came.
fn update(i: usize) -> (String, String) {
    (format!("k{:02}", i % KEYS), format!("{{\"n\":\"{i:09}\"}}"))
}

/// Bytes a watcher writes for the first `n` updates (a line each).
fn written(n: usize) -> u64 {
    (n * (update(0).1.len() + 1)) as u64
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

/// Waits until `path` holds `bytes` bytes.
fn wait_for(path: &Path, bytes: u64, what: &str) {
    let start = Instant::now();
    while fs::metadata(path).map_or(0, |m| m.len()) < bytes {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{what}: not every update came"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The bare client: one thread puts (a `Nats-Msg-Id` each if `msg_id`, at
/// most `IN_FLIGHT` acks pending), another watches and writes each value.
fn bare_client(url: &str, dir: &Path, bucket: &str, n: usize, msg_id: bool) -> Duration {
    create_bucket(url, bucket);
    let out = dir.join(format!("{bucket}.seen"));
    let watch_url = url.to_owned();
    let (watch_bucket, watch_out) = (bucket.to_owned(), out.clone());
    let watcher = std::thread::spawn(move || {
        rt().block_on(async {
            let js = jetstream::new(async_nats::connect(&watch_url).await.unwrap());
            let kv = js.get_key_value(&watch_bucket).await.unwrap();
            let mut w = kv.watch_all_from_revision(1).await.unwrap();
            let mut f = std::io::BufWriter::new(fs::File::create(&watch_out).unwrap());
            let mut seen = 0;
            while let Some(e) = w.next().await {
                let e = e.unwrap();
                f.write_all(&e.value).unwrap();
                f.write_all(b"\n").unwrap();
                seen += 1;
                // The warm-up, and the end, are seen at once.
                if seen == 1 || seen == n + 1 {
                    f.flush().unwrap();
                }
                if seen == n + 1 {
                    return;
                }
            }
            panic!("the watch ended after {seen}");
        })
    });
    let subject = |k: &str| format!("$KV.{bucket}.{k}");
    let took = rt().block_on(async {
        let js = jetstream::context::ContextBuilder::new()
            .max_ack_inflight(IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(async_nats::connect(url).await.unwrap());
        let put = |i: usize| {
            let (k, v) = update(i);
            let mut m = jetstream::message::PublishMessage::build().payload(v.into());
            if msg_id {
                m = m.message_id(format!("bare-{i}"));
            }
            js.send_publish(subject(&k), m)
        };
        put(0).await.unwrap().await.unwrap();
        wait_for(&out, written(1), "bare warm-up");
        let start = Instant::now();
        // Acks awaited in order as they come, while later puts go out.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<jetstream::context::PublishAckFuture>();
        let acks = async move {
            while let Some(a) = rx.recv().await {
                a.await.unwrap();
            }
        };
        let sends = async move {
            for i in 1..=n {
                tx.send(put(i).await.unwrap()).unwrap();
            }
        };
        tokio::join!(acks, sends);
        start
    });
    wait_for(&out, written(n + 1), "bare");
    let took = took.elapsed();
    watcher.join().unwrap();
    took
}

fn tourbillon(config: &Path, stdin: Stdio, log: &Path) -> Child {
    // KV_BENCH_BIN: another build to compare (a copy of an earlier one).
    let bin = std::env::var("KV_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tourbillon").to_owned());
    Command::new(bin)
        .arg("run")
        .arg(config)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap()
}

/// `kv_put` (max_in_flight 1024) in one process, `kv_watch` in another.
fn train(url: &str, dir: &Path, bucket: &str, n: usize) -> Duration {
    create_bucket(url, bucket);
    let out = dir.join(format!("{bucket}.seen"));
    let watch = dir.join(format!("{bucket}-watch.toml"));
    fs::write(
        &watch,
        format!(
            "[trains.w]\ncogs = [{{ kind = \"kv_watch\", servers = [\"{url}\"], bucket = \"{bucket}\" }}, \
             {{ kind = \"file\", path = {:?} }}]\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let put = dir.join(format!("{bucket}-put.toml"));
    fs::write(
        &put,
        format!(
            "[trains.p]\ncogs = [{{ kind = \"stdin\" }}, {{ kind = \"json_decode\" }}, \
             {{ kind = \"kv_put\", servers = [\"{url}\"], bucket = \"{bucket}\", max_in_flight = {IN_FLIGHT} }}]\n"
        ),
    )
    .unwrap();
    let mut watcher = tourbillon(&watch, Stdio::null(), &dir.join(format!("{bucket}-watch.log")));
    let mut putter = tourbillon(&put, Stdio::piped(), &dir.join(format!("{bucket}-put.log")));
    let mut stdin = putter.stdin.take().unwrap();
    let line = |i: usize| {
        let (k, v) = update(i);
        format!("{{\"key\":\"{k}\",\"value\":{v}}}\n")
    };
    stdin.write_all(line(0).as_bytes()).unwrap();
    wait_for(&out, written(1), "tourbillon warm-up");
    let mut rest = Vec::with_capacity(n * line(0).len());
    for i in 1..=n {
        rest.extend_from_slice(line(i).as_bytes());
    }
    let start = Instant::now();
    let feeder = std::thread::spawn(move || {
        stdin.write_all(&rest).unwrap();
    });
    wait_for(&out, written(n + 1), "tourbillon");
    let took = start.elapsed();
    feeder.join().unwrap();
    assert!(putter.wait().unwrap().success());
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(watcher.id() as i32, libc::SIGTERM) };
    watcher.wait().unwrap();
    took
}

/// CPU seconds (user and system) of this process, or of its children
/// waited for.
fn cpu(who: i32) -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut u) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// CPU seconds of the server so far.
fn server_cpu(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: fields 3...; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|w| w.parse().unwrap_or(0.0)).collect();
    // SAFETY: a plain sysconf.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    f.get(11).zip(f.get(12)).map_or(0.0, |(u, s)| (u + s) / tick)
}

/// Wall time, the clients' CPU seconds and the server's, of one side.
struct Side {
    wall: Duration,
    client: f64,
    server: f64,
}

fn measure(server: u32, run: impl FnOnce() -> Duration) -> Side {
    let (me, children, srv) = (cpu(libc::RUSAGE_SELF), cpu(libc::RUSAGE_CHILDREN), server_cpu(server));
    let wall = run();
    Side {
        wall,
        client: cpu(libc::RUSAGE_SELF) - me + cpu(libc::RUSAGE_CHILDREN) - children,
        server: server_cpu(server) - srv,
    }
}

fn main() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let n = env("KV_BENCH_UPDATES", 100_000);
    let rounds = env("KV_BENCH_ROUNDS", 3);
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
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let pid = server.id();
    println!(
        "kv updates, put in one process and watched in another ({n} updates, {KEYS} keys, {IN_FLIGHT} in flight):"
    );
    println!("  (client CPU: the putting and watching processes or threads, and this bench's feeding and polling)");
    let mut ratios = Vec::new();
    let mut cpu_ratios = Vec::new();
    for round in 0..rounds {
        let run_bare = || measure(pid, || bare_client(&url, dir.path(), &format!("bare{round}"), n, true));
        let run_train = || measure(pid, || train(&url, dir.path(), &format!("tb{round}"), n));
        // Alternately first, so that neither always runs on a fresher server.
        let (bare, train) = if round % 2 == 0 {
            let b = run_bare();
            (b, run_train())
        } else {
            let t = run_train();
            (run_bare(), t)
        };
        // What the message ids cost the server, for the record.
        let no_id = measure(pid, || bare_client(&url, dir.path(), &format!("noid{round}"), n, false));
        let ratio = rate(train.wall) / rate(bare.wall);
        ratios.push(ratio);
        cpu_ratios.push(train.client / bare.client);
        for (name, side) in [
            ("bare async-nats   ", &bare),
            ("kv_put -> kv_watch", &train),
            ("bare, no msg ids  ", &no_id),
        ] {
            println!(
                "  round {round}: {name} {:>8.0} updates/s   client CPU {:>5.2} s   server CPU {:>5.2} s",
                rate(side.wall),
                side.client,
                side.server
            );
        }
        println!(
            "  round {round}: ratio {ratio:.2}x (updates/s), client CPU {:.2}x",
            train.client / bare.client
        );
    }
    ratios.sort_by(f64::total_cmp);
    cpu_ratios.sort_by(f64::total_cmp);
    println!(
        "  median ratio {:.2}x (updates/s; target >= 0.8x), client CPU {:.2}x",
        ratios[ratios.len() / 2],
        cpu_ratios[cpu_ratios.len() / 2]
    );
    let _ = server.kill();
    let _ = server.wait();
}
