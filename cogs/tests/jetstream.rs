//! The JetStream supply and drain, in process, against a real
//! `nats-server -js` on a free loopback port, its store in a temporary
//! directory: every event arrives; a poison event is termed after
//! `max_deliver` while the others flow; a consumer created at a sequence or
//! a time replays from there; a message fanned out to two trains is acked
//! only once both copies are done. The cogs configured in the binary (kill -9,
//! a server restart, a shared consumer) are tested in `cogs/cli/tests/jetstream.rs`.
//!
//! Without `nats-server` on the machine, each test says it is skipped and
//! passes (CI installs it: `.ci/run`).
#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::cell::Cell;
use std::rc::Rc;

use tourbillon::{from_iter, Cog, Context, Escapement, Event, EventId, Fired, Next, Role, Train};
use tourbillon_cogs::jetstream::{
    ConsumeSettings, JetStreamDrain, JetStreamSupply, PublishSettings, Rejects, SupplyStats,
};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;
#[macro_use]
#[path = "common/nats.rs"]
mod nats;
use nats::{consumer_backlog, create_stream, line, publish, stream_messages, wait_until, Server};

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

/// Holds every event back until `open` is set, then lets them all go.
struct Gate {
    open: Rc<Cell<bool>>,
    held: Vec<Event>,
}

impl Cog<Event> for Gate {
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.every(Duration::from_millis(10), 0).unwrap();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, _: &mut Context<'_, Event, N>) {
        self.held.push(e)
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if self.open.get() {
            for e in std::mem::take(&mut self.held) {
                ctx.emit(e)
            }
        }
    }
}

#[test]
fn a_message_fanned_out_to_two_trains_is_acked_once_both_copies_are_done() {
    let server = server_or_skip!("a_message_fanned_out_to_two_trains_is_acked_once_both_copies_are_done");
    let _g = exclusive();
    create_stream(&server, "T", "t.>");
    let n = 300;
    publish(&server, "t.lines", (0..n).map(line));
    let supply = JetStreamSupply::new(ConsumeSettings {
        servers: vec![server.url()],
        stream: "T".into(),
        consumer: "both".into(),
        ack_wait_ms: 60_000,
        ..ConsumeSettings::default()
    })
    .unwrap();
    let acked = supply.stats().acked;
    let (fast, slow) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let open = Rc::new(Cell::new(false));
    let mut esc = escapement();
    esc.add_train(Train::new("consume").ids(Event::id_getter()).cog(supply));
    esc.add_train(
        Train::new("fast")
            .ids(Event::id_getter())
            .input("consume")
            .cog(Collect(Arc::clone(&fast))),
    );
    esc.add_train(
        Train::new("slow")
            .ids(Event::id_getter())
            .input("consume")
            .cog(Gate {
                open: open.clone(),
                held: Vec::new(),
            })
            .cog(Collect(Arc::clone(&slow))),
    );
    // While the slow branch holds every copy, nothing may be acked; once
    // it lets them go, everything is.
    let acked_while_held = Rc::new(Cell::new(None));
    let (seen, done, a, w) = (
        Arc::clone(&fast),
        Arc::clone(&slow),
        acked.clone(),
        acked_while_held.clone(),
    );
    let mut since = None;
    finish_when(&mut esc, move || {
        if !open.get() && seen.lock().unwrap().len() == n {
            // A moment for acks that should not exist to show up.
            let t = *since.get_or_insert_with(std::time::Instant::now);
            if t.elapsed() > Duration::from_millis(300) {
                w.set(Some(a.get()));
                open.set(true);
            }
        }
        open.get() && done.lock().unwrap().len() == n && a.get() == n as u64
    });
    esc.run().unwrap();
    assert_eq!(
        acked_while_held.get(),
        Some(0),
        "acked while the slow branch held every copy"
    );
    assert_eq!(acked.get(), n as u64, "every message acked once both copies were done");
    let want: Vec<String> = (0..n).map(line).collect();
    assert!(
        *fast.lock().unwrap() == want,
        "the fast branch got every message once, in order"
    );
    assert!(*slow.lock().unwrap() == want, "so did the slow one");
    wait_until("the acks reach the server", || {
        consumer_backlog(&server, "T", "both") == (0, 0)
    });
}
