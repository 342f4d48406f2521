//! The JetStream supply and drain against a real `nats-server -js` on a free
//! loopback port, its store in a temporary directory: every event arrives;
//! a consumer killed with `kill -9` and restarted loses nothing; a server
//! restarted mid-stream loses nothing and stores nothing twice; two
//! processes share one durable consumer; a poison event is termed after
//! `max_deliver` while the others flow.
//!
//! Without `nats-server` on the machine, each test says it is skipped and
//! passes (CI installs it: `.ci/run`).
#![cfg(feature = "nats")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use tourbillon::{from_iter, Cog, Context, Escapement, Event, EventId, Next, Role, Train};
use tourbillon_cogs::jetstream::{
    ConsumeSettings, JetStreamDrain, JetStreamSupply, PublishSettings, Rejects, SupplyStats,
};

const BIN: &str = env!("CARGO_BIN_EXE_tourbillon");

mod common;
use common::exclusive;

/// Where `nats-server` is, or why the test is skipped.
fn nats_server() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/usr/local/bin", "/usr/bin"].map(PathBuf::from));
    for d in dirs {
        let p = d.join("nats-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

macro_rules! server_or_skip {
    ($name:expr) => {
        match Server::start() {
            Some(s) => s,
            None => {
                eprintln!(
                    "{}: skipped: no nats-server on this machine (apt-get install nats-server)",
                    $name
                );
                return;
            }
        }
    };
}

/// A `nats-server -js` of this test, killed when dropped.
struct Server {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Option<Server> {
        let bin = nats_server()?;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut s = Server {
            bin,
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
        };
        s.run();
        Some(s)
    }

    fn run(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        wait_until("nats-server listens", || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    /// Stops it gracefully (SIGTERM), keeping its store.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(&c, libc::SIGTERM);
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn signal(c: &Child, sig: i32) {
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(c.id() as i32, sig) };
}

/// Polls `cond` until it holds; a minute without it fails the test.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "waited a minute for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

async fn js(server: &Server) -> jetstream::Context {
    jetstream::new(async_nats::connect(server.url()).await.unwrap())
}

fn create_stream(server: &Server, name: &str, subject: &str) {
    block(async {
        js(server)
            .await
            .create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                ..Default::default()
            })
            .await
            .unwrap();
    })
}

/// Publishes with a bare client, every ack awaited.
fn publish(server: &Server, subject: &str, payloads: impl IntoIterator<Item = String>) {
    block(async {
        let js = js(server).await;
        let mut acks = Vec::new();
        for p in payloads {
            acks.push(js.publish(subject.to_owned(), p.into()).await.unwrap());
            if acks.len() == 512 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    })
}

fn stream_messages(server: &Server, name: &str) -> u64 {
    block(async {
        js(server)
            .await
            .get_stream(name)
            .await
            .unwrap()
            .info()
            .await
            .unwrap()
            .state
            .messages
    })
}

/// (delivered and not acked, not yet delivered) of a consumer.
fn consumer_backlog(server: &Server, stream: &str, consumer: &str) -> (usize, u64) {
    block(async {
        let mut c: jetstream::consumer::PullConsumer = js(server)
            .await
            .get_stream(stream)
            .await
            .unwrap()
            .get_consumer(consumer)
            .await
            .unwrap();
        let i = c.info().await.unwrap();
        (i.num_ack_pending, i.num_pending)
    })
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn line(i: usize) -> String {
    format!("{i:06} the quick brown fox")
}

/// A child process, killed if a failing test leaves it running.
struct Proc(Option<Child>);

impl Proc {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `tourbillon` binary on a configuration, its log in `log`.
fn tourbillon(config: &Path, log: &Path) -> Proc {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// A consumer process: the durable `work` of stream `T` into a file.
fn consumer_config(server: &Server, name: &str, out: &Path, extra: &str) -> PathBuf {
    let config = server.path(&format!("{name}.toml"));
    fs::write(
        &config,
        format!(
            "[trains.consume]\ncogs = [\n  {{ kind = \"jetstream_consume\", servers = [\"{}\"], stream = \"T\", \
             consumer = \"work\", ack_wait_ms = 1500, {extra} }},\n  {{ kind = \"file\", path = \"{}\" }},\n]\n",
            server.url(),
            out.display()
        ),
    )
    .unwrap();
    config
}

/// SIGTERM: a graceful finish, and a clean exit.
fn stop(mut p: Proc) {
    let mut c = p.0.take().expect("running");
    signal(&c, libc::SIGTERM);
    let status = c.wait().unwrap();
    assert!(status.success(), "tourbillon exited with {status}");
}

/// Records the raw text of what reaches it.
struct Collect(Arc<Mutex<Vec<String>>>);

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.0
            .lock()
            .unwrap()
            .push(String::from_utf8_lossy(&e.raw).into_owned());
        ctx.discard(&e);
    }
}

fn escapement() -> Escapement {
    static LOG: std::sync::Once = std::sync::Once::new();
    LOG.call_once(|| {
        let _ = tourbillon::logging::init(&Default::default());
    });
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.core()
        .after(Duration::from_secs(60), |core| {
            eprintln!("watchdog: the test took more than 60 s");
            core.finish()
        })
        .unwrap();
    esc
}

/// Finishes the escapement once `done` says so, looking every 10 ms.
fn finish_when(esc: &mut Escapement, mut done: impl FnMut() -> bool + 'static) {
    esc.core()
        .every(Duration::from_millis(10), move |core, _| {
            if done() {
                core.finish()
            }
        })
        .unwrap();
}

#[test]
fn every_event_published_through_the_train_is_consumed_once() {
    let server = server_or_skip!("every_event_published_through_the_train_is_consumed_once");
    let _g = exclusive();
    create_stream(&server, "T", "t.>");
    let n = 2000;
    let mut esc = escapement();
    let drain = JetStreamDrain::new(PublishSettings {
        servers: vec![server.url()],
        subject: "t.lines".into(),
        max_in_flight: 64,
        ..PublishSettings::default()
    })
    .unwrap();
    let acked = drain.stats().acked;
    let events = (0..n).map(|i| Event::from_raw(EventId(i as u64 + 1), line(i).into_bytes(), None, 0));
    esc.add_train(
        Train::new("publish")
            .ids(Event::id_getter())
            .cog(from_iter(events))
            .cog(drain),
    );
    esc.run().unwrap();
    drop(esc);
    assert_eq!(acked.get(), n as u64, "every event acked before the end");
    assert_eq!(stream_messages(&server, "T"), n as u64);

    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("consume")
            .ids(Event::id_getter())
            .cog(
                JetStreamSupply::new(ConsumeSettings {
                    servers: vec![server.url()],
                    stream: "T".into(),
                    consumer: "all".into(),
                    ..ConsumeSettings::default()
                })
                .unwrap(),
            )
            .cog(Collect(Arc::clone(&seen))),
    );
    let count = Arc::clone(&seen);
    finish_when(&mut esc, move || count.lock().unwrap().len() >= n);
    esc.run().unwrap();
    let want: Vec<String> = (0..n).map(line).collect();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n, "as many as published");
    assert!(*seen == want, "all of them, once, in order");
    wait_until("the acks reach the server", || {
        consumer_backlog(&server, "T", "all") == (0, 0)
    });
}

#[test]
fn a_consumer_killed_mid_stream_and_restarted_loses_nothing() {
    let server = server_or_skip!("a_consumer_killed_mid_stream_and_restarted_loses_nothing");
    let n = 20_000;
    let max_in_flight = 200;
    create_stream(&server, "T", "t.>");
    publish(&server, "t.lines", (0..n).map(line));
    let out = server.path("out.log");
    let extra = format!("batch = 50, max_in_flight = {max_in_flight}");
    let config = consumer_config(&server, "consumer", &out, &extra);
    let mut first = tourbillon(&config, &server.path("consumer.log"));
    wait_until("the consumer writes", || !lines(&out).is_empty());
    first.child().kill().unwrap();
    first.child().wait().unwrap();
    let at_kill = lines(&out).len();
    eprintln!("killed with {at_kill} of {n} lines written");

    let second = tourbillon(&config, &server.path("consumer.log"));
    wait_until("every line is written", || {
        lines(&out).into_iter().collect::<BTreeSet<_>>().len() == n
    });
    wait_until("every message is acked", || {
        consumer_backlog(&server, "T", "work") == (0, 0)
    });
    stop(second);
    let got = lines(&out);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &got {
        *count.entry(l).or_default() += 1;
    }
    let want: BTreeSet<String> = (0..n).map(line).collect();
    assert_eq!(count.keys().map(|s| s.to_string()).collect::<BTreeSet<_>>(), want);
    let repeated = got.len() - n;
    assert!(
        repeated <= max_in_flight,
        "{repeated} lines repeated; at most the {max_in_flight} that can be in flight unacked"
    );
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let mut server = server_or_skip!("a_server_restarted_mid_stream_loses_nothing_and_stores_nothing_twice");
    let n = 5000;
    let input = server.path("in.log");
    fs::write(&input, (0..n).map(|i| line(i) + "\n").collect::<String>()).unwrap();
    let out = server.path("out.log");
    let consumer = consumer_config(
        &server,
        "consumer",
        &out,
        "create_stream = true, subjects = [\"t.>\"], batch = 20",
    );
    let c = tourbillon(&consumer, &server.path("consumer.log"));
    wait_until("the stream exists", || {
        block(async { js(&server).await.get_stream("T").await.is_ok() })
    });
    let publisher = server.path("publisher.toml");
    fs::write(
        &publisher,
        format!(
            "[trains.publish]\ncogs = [\n  {{ kind = \"tail\", include = [\"{}\"], batch = true, read_bytes_per_turn = 4096 }},\n  \
             {{ kind = \"jetstream_publish\", servers = [\"{}\"], subject = \"t.lines\", max_in_flight = 16, ack_timeout_ms = 1000 }},\n]\n",
            input.display(),
            server.url()
        ),
    )
    .unwrap();
    let mut p = tourbillon(&publisher, &server.path("publisher.log"));
    wait_until("some lines go through", || !lines(&out).is_empty());
    server.stop();
    let during = lines(&out).len();
    eprintln!("server stopped with {during} of {n} lines through");
    std::thread::sleep(Duration::from_millis(500));
    server.run();
    let status = p.child().wait().unwrap();
    assert!(status.success(), "the publisher exited with {status}");
    wait_until("every line is written", || {
        lines(&out).into_iter().collect::<BTreeSet<_>>().len() == n
    });
    stop(c);
    let got: BTreeSet<String> = lines(&out).into_iter().collect();
    assert_eq!(got, (0..n).map(line).collect::<BTreeSet<_>>());
    assert_eq!(
        stream_messages(&server, "T"),
        n as u64,
        "retried publishes are stored once"
    );
}

#[test]
fn two_consumers_share_one_durable_consumer() {
    let server = server_or_skip!("two_consumers_share_one_durable_consumer");
    let n = 4000;
    create_stream(&server, "T", "t.>");
    let (out_b, out_c) = (server.path("b.log"), server.path("c.log"));
    let (log_b, log_c) = (server.path("b.err"), server.path("c.err"));
    let b = tourbillon(&consumer_config(&server, "b", &out_b, "batch = 10"), &log_b);
    let c = tourbillon(&consumer_config(&server, "c", &out_c, "batch = 10"), &log_c);
    let bound = |log: &Path| fs::read_to_string(log).unwrap_or_default().contains("bound to stream");
    wait_until("both consumers are bound", || bound(&log_b) && bound(&log_c));
    publish(&server, "t.lines", (0..n).map(line));
    wait_until("every line is written", || {
        lines(&out_b).len() + lines(&out_c).len() >= n
    });
    wait_until("every message is acked", || {
        consumer_backlog(&server, "T", "work") == (0, 0)
    });
    stop(b);
    stop(c);
    let (got_b, got_c) = (lines(&out_b), lines(&out_c));
    eprintln!("b wrote {}, c wrote {}", got_b.len(), got_c.len());
    let all: BTreeSet<&String> = got_b.iter().chain(&got_c).collect();
    assert_eq!(all.len(), n, "every line");
    assert_eq!(got_b.len() + got_c.len(), n, "each once");
    assert!(!got_b.is_empty() && !got_c.is_empty(), "both took a share");
}

/// Rejects the events whose text is `poison`, counting their deliveries;
/// collects the others.
struct Picky {
    rejects: Rejects,
    poison_seen: Arc<Mutex<usize>>,
    good: Arc<Mutex<Vec<String>>>,
}

impl Cog<Event> for Picky {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        if e.raw == b"poison" {
            *self.poison_seen.lock().unwrap() += 1;
            self.rejects.nak(e.id);
        } else {
            self.good
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&e.raw).into_owned());
        }
        ctx.discard(&e);
    }
}

#[test]
fn a_poison_event_is_termed_after_max_deliver_while_the_others_flow() {
    let server = server_or_skip!("a_poison_event_is_termed_after_max_deliver_while_the_others_flow");
    let _g = exclusive();
    create_stream(&server, "T", "t.>");
    let n = 300;
    publish(
        &server,
        "t.lines",
        (0..n).map(|i| if i == 10 { "poison".to_owned() } else { line(i) }),
    );
    let supply = JetStreamSupply::new(ConsumeSettings {
        servers: vec![server.url()],
        stream: "T".into(),
        consumer: "picky".into(),
        max_deliver: 3,
        nak_delay_ms: 50,
        ..ConsumeSettings::default()
    })
    .unwrap();
    let stats: SupplyStats = supply.stats();
    let (poison_seen, good) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(Vec::new())));
    let picky = Picky {
        rejects: supply.rejects(),
        poison_seen: Arc::clone(&poison_seen),
        good: Arc::clone(&good),
    };
    let mut esc = escapement();
    esc.add_train(Train::new("poison").ids(Event::id_getter()).cog(supply).cog(picky));
    let (termed, count) = (stats.termed.clone(), Arc::clone(&good));
    finish_when(&mut esc, move || {
        termed.get() == 1 && count.lock().unwrap().len() == n - 1
    });
    esc.run().unwrap();
    assert_eq!(*poison_seen.lock().unwrap(), 3, "delivered max_deliver times");
    assert_eq!(
        stats.naked.get(),
        2,
        "nak'd on the first two deliveries, termed on the last"
    );
    assert_eq!(good.lock().unwrap().len(), n - 1, "the others, each once");
    wait_until("nothing is pending on the server", || {
        consumer_backlog(&server, "T", "picky") == (0, 0)
    });
}

/// `tourbillon check` on a configuration; (exit code, stderr).
fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    fs::write(&path, config).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configured_jetstream_cogs_are_checked_without_a_server() {
    let good = r#"
[trains.work]
cogs = [
    { kind = "jetstream_consume", servers = ["nats://127.0.0.1:4222"], stream = "LOGS", consumer = "workers",
      create_stream = true, subjects = ["logs.>"], start_time = "2026-01-02T03:04:05Z" },
    { kind = "json_decode", on_error = "pass", error_field = "decode_error" },
    { kind = "jetstream_reject", field = "decode_error" },
    { kind = "jetstream_publish", subject = "logs.clean", auth = { token_file = "/etc/nats/token" } },
]
"#;
    assert_eq!(check(good), (0, String::new()));
    let bad = r#"
[trains.work]
cogs = [
    { kind = "stdin" },
    { kind = "jetstream_reject", field = "error" },
    { kind = "jetstream_publish", subject = "logs.*", max_in_flight = 0 },
    { kind = "jetstream_publish", subject = "x", auth = { token_file = "t", nkey_file = "n" } },
]
"#;
    let (code, err) = check(bad);
    assert_eq!(code, 1, "{err}");
    for want in [
        "trains.work.cogs[1].kind: jetstream_reject needs a jetstream_consume supply before it",
        "trains.work.cogs[2].subject: a subject to publish to has no spaces or wildcards",
        "trains.work.cogs[3].auth: give one of",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
}

/// The same poison, configured: `jetstream_reject` on a field a decoder
/// sets, in the binary.
#[test]
fn a_configured_reject_terms_poison_after_max_deliver() {
    let server = server_or_skip!("a_configured_reject_terms_poison_after_max_deliver");
    create_stream(&server, "T", "t.>");
    let n = 200;
    publish(
        &server,
        "t.lines",
        (0..n).map(|i| {
            if i == 7 {
                "not json".to_owned()
            } else {
                format!("{{\"n\":{i}}}")
            }
        }),
    );
    let out = server.path("out.log");
    let config = server.path("reject.toml");
    fs::write(
        &config,
        format!(
            "[trains.r]\ncogs = [\n  {{ kind = \"jetstream_consume\", servers = [\"{}\"], stream = \"T\", consumer = \"r\", \
             max_deliver = 2, nak_delay_ms = 50 }},\n  {{ kind = \"json_decode\", on_error = \"pass\", error_field = \"bad\" }},\n  \
             {{ kind = \"jetstream_reject\", field = \"bad\" }},\n  {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = \"{}\" }},\n]\n",
            server.url(),
            out.display()
        ),
    )
    .unwrap();
    let c = tourbillon(&config, &server.path("reject.log"));
    wait_until("the good lines are written and nothing is pending", || {
        lines(&out).len() == n - 1 && consumer_backlog(&server, "T", "r") == (0, 0)
    });
    stop(c);
    let log = fs::read_to_string(server.path("reject.log")).unwrap();
    assert!(log.contains("rejected on its delivery 2 (the last) is termed"), "{log}");
    assert_eq!(lines(&out).len(), n - 1, "the others, once each");
}

/// Consumes with a consumer created by `settings` until `n` events came;
/// what came, in order.
fn consume_n(server: &Server, settings: ConsumeSettings, n: usize) -> Vec<String> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("consume")
            .ids(Event::id_getter())
            .cog(
                JetStreamSupply::new(ConsumeSettings {
                    servers: vec![server.url()],
                    stream: "T".into(),
                    ..settings
                })
                .unwrap(),
            )
            .cog(Collect(Arc::clone(&seen))),
    );
    let count = Arc::clone(&seen);
    finish_when(&mut esc, move || count.lock().unwrap().len() >= n);
    esc.run().unwrap();
    let seen = seen.lock().unwrap().clone();
    seen
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond()
    )
}

#[test]
fn a_consumer_created_at_a_sequence_or_a_time_replays_from_there() {
    let server = server_or_skip!("a_consumer_created_at_a_sequence_or_a_time_replays_from_there");
    let _g = exclusive();
    create_stream(&server, "T", "t.>");
    publish(&server, "t.lines", (0..10).map(line));
    std::thread::sleep(Duration::from_millis(20));
    let between = rfc3339(time::OffsetDateTime::now_utc());
    std::thread::sleep(Duration::from_millis(20));
    publish(&server, "t.lines", (10..15).map(line));

    let from_seq = consume_n(
        &server,
        ConsumeSettings {
            consumer: "seq".into(),
            start_sequence: Some(8),
            ..ConsumeSettings::default()
        },
        8,
    );
    assert_eq!(
        from_seq,
        (7..15).map(line).collect::<Vec<_>>(),
        "sequence 8 is the 8th line"
    );
    let from_time = consume_n(
        &server,
        ConsumeSettings {
            consumer: "time".into(),
            start_time: Some(between),
            ..ConsumeSettings::default()
        },
        5,
    );
    assert_eq!(from_time, (10..15).map(line).collect::<Vec<_>>());
}
