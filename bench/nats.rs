//! JetStream through the train against a bare async-nats client, in the same
//! run, on loopback: events per second published (every publish ack
//! awaited, at most 1024 in flight) and consumed (every message acked, one
//! by one, from a durable pull consumer).
//!
//! ```sh
//! cargo bench -p tourbillon-cogs --bench nats            # 200,000 events
//! NATS_BENCH_EVENTS=1000000 cargo bench -p tourbillon-cogs --bench nats
//! ```
//!
//! It starts its own `nats-server -js` on a free loopback port, its store
//! in a temporary directory (the same server for every case).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures_util::StreamExt;
use tourbillon::{from_iter, Cog, Context, Escapement, Event, EventId, Next, Role, Train};
use tourbillon_cogs::jetstream::{ConsumeSettings, JetStreamDrain, JetStreamSupply, PublishSettings};

const IN_FLIGHT: usize = 1024;
const BATCH: usize = 256;

fn payload(i: usize) -> Vec<u8> {
    format!("{{\"n\":{i},\"level\":\"info\",\"msg\":\"the quick brown fox jumps over the lazy dog\"}}").into_bytes()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn context(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.unwrap())
}

fn create_stream(url: &str, name: &str) {
    rt().block_on(async {
        context(url)
            .await
            .create_stream(jetstream::stream::Config {
                name: name.into(),
                subjects: vec![format!("{name}.>")],
                ..Default::default()
            })
            .await
            .unwrap();
    });
}

fn bare_publish(url: &str, stream: &str, n: usize) -> Duration {
    rt().block_on(async {
        let js = jetstream::context::ContextBuilder::new()
            .max_ack_inflight(IN_FLIGHT)
            .backpressure_on_inflight(true)
            .build(async_nats::connect(url).await.unwrap());
        let subject = format!("{stream}.events");
        let start = Instant::now();
        let mut acks = std::collections::VecDeque::with_capacity(IN_FLIGHT);
        for i in 0..n {
            if acks.len() == IN_FLIGHT {
                let ack: jetstream::context::PublishAckFuture = acks.pop_front().unwrap();
                ack.await.unwrap();
            }
            let msg = jetstream::message::PublishMessage::build()
                .payload(payload(i).into())
                .message_id(format!("bare-{i}"));
            acks.push_back(js.send_publish(subject.clone(), msg).await.unwrap());
        }
        for ack in acks {
            ack.await.unwrap();
        }
        start.elapsed()
    })
}

fn bare_consume(url: &str, stream: &str, n: usize) -> Duration {
    rt().block_on(async {
        let js = context(url).await;
        let consumer: jetstream::consumer::PullConsumer = js
            .get_stream(stream)
            .await
            .unwrap()
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some("bare".into()),
                max_ack_pending: IN_FLIGHT as i64,
                ..Default::default()
            })
            .await
            .unwrap();
        let start = Instant::now();
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(BATCH)
            .messages()
            .await
            .unwrap();
        for _ in 0..n {
            let m = messages.next().await.unwrap().unwrap();
            std::hint::black_box(&m.payload);
            m.ack().await.unwrap();
        }
        js.client().flush().await.unwrap();
        start.elapsed()
    })
}

fn train_publish(url: &str, stream: &str, n: usize) -> Duration {
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    let events = (0..n).map(|i| Event::from_raw(EventId(i as u64 + 1), payload(i), None, 0));
    let drain = JetStreamDrain::new(PublishSettings {
        servers: vec![url.into()],
        subject: format!("{stream}.events"),
        max_in_flight: IN_FLIGHT,
        ..PublishSettings::default()
    })
    .unwrap();
    let acked = drain.stats().acked;
    esc.add_train(
        Train::new("publish")
            .ids(Event::id_getter())
            .cog(from_iter(events))
            .cog(drain),
    );
    let start = Instant::now();
    esc.run().unwrap();
    let took = start.elapsed();
    assert_eq!(acked.get(), n as u64);
    took
}

/// Counts what reaches it, reports it done, finishes after `n`.
struct Count(Arc<AtomicUsize>, usize);

impl Cog<Event> for Count {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        std::hint::black_box(&e.raw);
        if self.0.fetch_add(1, Ordering::Relaxed) + 1 == self.1 {
            ctx.finish_all();
        }
        ctx.discard(&e);
    }
}

fn train_consume(url: &str, stream: &str, n: usize) -> Duration {
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let supply = JetStreamSupply::new(ConsumeSettings {
        servers: vec![url.into()],
        stream: stream.into(),
        consumer: "train".into(),
        batch: BATCH,
        max_ack_pending: IN_FLIGHT as u32,
        max_in_flight: IN_FLIGHT,
        ..ConsumeSettings::default()
    })
    .unwrap();
    let acked = supply.stats().acked;
    esc.add_train(
        Train::new("consume")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Count(Arc::clone(&seen), n)),
    );
    let start = Instant::now();
    esc.run().unwrap();
    let took = start.elapsed();
    assert_eq!(seen.load(Ordering::Relaxed), n);
    assert_eq!(acked.get(), n as u64);
    took
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: usize = std::env::var("NATS_BENCH_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let child = match Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nats bench: skipped: cannot start nats-server ({e})");
            return;
        }
    };
    let _server = Server(child);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = tourbillon::logging::init(&Default::default());
    create_stream(&url, "BARE");
    create_stream(&url, "TRAIN");
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    // Alternate, so that neither side gets a warmer server.
    let bp = bare_publish(&url, "BARE", n);
    let tp = train_publish(&url, "TRAIN", n);
    let bc = bare_consume(&url, "BARE", n);
    let tc = train_consume(&url, "TRAIN", n);
    println!("events: {n}, in flight: {IN_FLIGHT}, pull batch: {BATCH}, loopback");
    println!(
        "publish  bare async-nats {:>9.0}/s   train (jetstream_publish) {:>9.0}/s   train/bare {:.2}",
        rate(bp),
        rate(tp),
        bp.as_secs_f64() / tp.as_secs_f64()
    );
    println!(
        "consume  bare async-nats {:>9.0}/s   train (jetstream_consume) {:>9.0}/s   train/bare {:.2}",
        rate(bc),
        rate(tc),
        bc.as_secs_f64() / tc.as_secs_f64()
    );
}
