//! The key-value cogs in process, against a real `nats-server -js` on a
//! free loopback port: a watcher started after the puts sees every key
//! and every update (or the last of each key, or the keys of a pattern);
//! values of 1 MiB arrive whole; a compare-and-set that loses, and a value
//! over the server's max_payload, are counted and their event done; a watcher with a state directory resumes after the
//! last revision it finished. `kill -9` and a server restart, with the
//! binary: `cogs/cli/tests/kv.rs`.
//!
//! Without `nats-server` on the machine, each test says it is skipped and
//! passes.
#![cfg(feature = "nats")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{from_iter, Cog, Context, Escapement, Event, EventId, Next, Role, Train};
use tourbillon_cogs::jetstream::{KvDeliver, KvPutDrain, KvPutSettings, KvWatchSettings, KvWatchSupply};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;
#[macro_use]
#[path = "common/nats.rs"]
mod nats;
use nats::{block, js, Server};

/// Records the data of what reaches it.
struct Collect(Arc<Mutex<Vec<Value>>>);

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.0.lock().unwrap().push(e.value().clone());
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
        .after(Duration::from_secs(25), |core| {
            eprintln!("watchdog: the test took more than 25 s");
            core.finish()
        })
        .unwrap();
    esc
}

/// Puts these events' data through a `kv_put` train; returns its stats.
fn put(settings: KvPutSettings, data: Vec<Value>) -> tourbillon_cogs::jetstream::KvPutStats {
    let drain = KvPutDrain::new(settings).unwrap();
    let stats = drain.stats();
    let events = data
        .into_iter()
        .enumerate()
        .map(|(i, d)| Event::new(EventId(i as u64 + 1), d));
    let mut esc = escapement();
    esc.add_train(
        Train::new("put")
            .ids(Event::id_getter())
            .cog(from_iter(events))
            .cog(drain),
    );
    esc.run().unwrap();
    stats
}

/// Watches until `n` entries came (or the watchdog): what came.
fn watch(settings: KvWatchSettings, n: usize) -> Vec<Value> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("watch")
            .ids(Event::id_getter())
            .cog(KvWatchSupply::new(settings).unwrap())
            .cog(Collect(Arc::clone(&seen))),
    );
    finish_after(&mut esc, Arc::clone(&seen), n);
    esc.run().unwrap();
    let seen = seen.lock().unwrap().clone();
    seen
}

/// Finishes 300 ms after `n` data came: time for one too many to show.
fn finish_after(esc: &mut Escapement, seen: Arc<Mutex<Vec<Value>>>, n: usize) {
    let mut since = None;
    esc.core()
        .every(Duration::from_millis(10), move |core, _| {
            if seen.lock().unwrap().len() >= n {
                let t = *since.get_or_insert_with(std::time::Instant::now);
                if t.elapsed() > Duration::from_millis(300) {
                    core.finish()
                }
            }
        })
        .unwrap();
}

fn put_settings(server: &Server, bucket: &str) -> KvPutSettings {
    KvPutSettings {
        servers: vec![server.url()],
        bucket: bucket.into(),
        create_bucket: true,
        ..KvPutSettings::default()
    }
}

fn watch_settings(server: &Server, bucket: &str) -> KvWatchSettings {
    KvWatchSettings {
        servers: vec![server.url()],
        bucket: bucket.into(),
        ..KvWatchSettings::default()
    }
}

#[test]
fn a_node_started_late_gets_every_key_and_every_update() {
    let server = server_or_skip!("a_node_started_late_gets_every_key_and_every_update");
    let _g = exclusive();
    let keys = 40;
    let mut data = Vec::new();
    for round in 0..3 {
        for k in 0..keys {
            let group = if k % 2 == 0 { "even" } else { "odd" };
            data.push(json!({"key": format!("{group}.k{k}"), "value": {"k": k, "round": round}}));
        }
    }
    data.push(json!({"key": "even.k0", "operation": "delete"}));
    let puts = data.len();
    let stats = put(
        KvPutSettings {
            operation_field: Some("operation".into()),
            ..put_settings(&server, "nodes")
        },
        data,
    );
    assert_eq!(stats.acked.get(), puts as u64, "every put acknowledged");

    // Every revision, in order.
    let all = watch(watch_settings(&server, "nodes"), puts);
    assert_eq!(all.len(), puts, "{all:?}");
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["revision"], json!(i + 1), "revision order at {i}: {e}");
    }
    assert_eq!(
        all[0],
        json!({"key": "even.k0", "value": {"k": 0, "round": 0}, "revision": 1, "operation": "put"})
    );
    assert_eq!(
        all[puts - 1],
        json!({"key": "even.k0", "value": null, "revision": puts, "operation": "delete"})
    );

    // The last of each key: k0's delete, and the third round of the others.
    let last = watch(
        KvWatchSettings {
            deliver: KvDeliver::LastPerKey,
            ..watch_settings(&server, "nodes")
        },
        keys,
    );
    assert_eq!(last.len(), keys);
    for e in &last {
        if e["key"] == "even.k0" {
            assert_eq!(e["operation"], "delete");
        } else {
            assert_eq!(e["value"]["round"], 2, "{e}");
        }
    }

    // A pattern: the odd keys only.
    let odd = watch(
        KvWatchSettings {
            keys: "odd.*".into(),
            ..watch_settings(&server, "nodes")
        },
        3 * keys / 2,
    );
    assert_eq!(odd.len(), 3 * keys / 2);
    assert!(odd.iter().all(|e| e["key"].as_str().unwrap().starts_with("odd.")));
}

#[test]
fn values_of_one_mib_arrive_whole() {
    // The server's max_payload is 1 MiB by default: a 1 MiB value and its
    // headers need more.
    let server = server_or_skip!("values_of_one_mib_arrive_whole", Some("max_payload: 4194304\n"));
    let _g = exclusive();
    let mib = 1 << 20;
    let big: Vec<Value> = (0..3)
        .map(|i| {
            let s: String = std::iter::repeat(char::from(b'a' + i as u8)).take(mib).collect();
            json!({"key": format!("big{i}"), "value": s})
        })
        .collect();
    let stats = put(put_settings(&server, "big"), big.clone());
    assert_eq!(stats.acked.get(), 3);
    // Values that are not JSON, put by another client: text, and bytes
    // that are not UTF-8 either (replaced, counted).
    block(async {
        let kv = js(&server).await.get_key_value("big").await.unwrap();
        kv.put("text", "plain words".into()).await.unwrap();
        kv.put("binary", vec![0xff, 0xfe, b'x'].into()).await.unwrap();
    });
    let supply = KvWatchSupply::new(watch_settings(&server, "big")).unwrap();
    let stats = supply.stats();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("watch")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Collect(Arc::clone(&seen))),
    );
    finish_after(&mut esc, Arc::clone(&seen), 5);
    esc.run().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 5);
    for (i, want) in big.iter().enumerate() {
        let got = seen[i]["value"].as_str().unwrap();
        assert_eq!(got.len(), mib, "value {i} whole");
        assert_eq!(got, want["value"].as_str().unwrap());
    }
    assert_eq!(seen[3]["value"], "plain words");
    assert_eq!(seen[4]["value"], "\u{fffd}\u{fffd}x");
    assert_eq!(stats.text_values.get(), 2);
    assert_eq!(stats.lossy_values.get(), 1);
}

#[test]
fn a_compare_and_set_that_loses_is_counted_and_its_event_done() {
    let server = server_or_skip!("a_compare_and_set_that_loses_is_counted_and_its_event_done");
    let _g = exclusive();
    put(put_settings(&server, "cas"), vec![json!({"key": "c", "value": 0})]);
    let rev = block(async {
        let kv = js(&server).await.get_key_value("cas").await.unwrap();
        kv.entry("c").await.unwrap().unwrap().revision
    });
    // Two nodes read revision `rev` and both try to move it on: one wins.
    // A key that is not a key, and a put that the key must not exist yet.
    let stats = put(
        KvPutSettings {
            revision_field: Some("rev".into()),
            ..put_settings(&server, "cas")
        },
        vec![
            json!({"key": "c", "value": 1, "rev": rev}),
            json!({"key": "c", "value": 2, "rev": rev}),
            json!({"key": "bad key", "value": 3}),
            json!({"key": "fresh", "value": 4, "rev": 0}),
            json!({"key": "c", "value": 5, "rev": 0}),
            // More than the server's max_payload (1 MiB): refused at once.
            json!({"key": "huge", "value": "x".repeat(2 << 20)}),
        ],
    );
    // The train ended: every event was done, the refused ones too.
    assert_eq!(stats.acked.get(), 2, "the winner and the new key");
    assert_eq!(stats.conflicts.get(), 2, "the loser, and a put on a key that exists");
    assert_eq!(stats.invalid.get(), 2, "the bad key, the value too big");
    let (c, fresh) = block(async {
        let kv = js(&server).await.get_key_value("cas").await.unwrap();
        (
            kv.get("c").await.unwrap().unwrap(),
            kv.get("fresh").await.unwrap().unwrap(),
        )
    });
    assert_eq!(&c[..], b"1");
    assert_eq!(&fresh[..], b"4");
}

#[test]
fn a_watcher_resumes_after_the_last_revision_it_finished() {
    let server = server_or_skip!("a_watcher_resumes_after_the_last_revision_it_finished");
    let _g = exclusive();
    let state = tempfile::tempdir().unwrap();
    let values = |from: usize| {
        (from..from + 50)
            .map(|i| json!({"key": "x", "value": i}))
            .collect::<Vec<_>>()
    };
    put(put_settings(&server, "resume"), values(0));
    let settings = KvWatchSettings {
        state_dir: Some(state.path().join("w")),
        ..watch_settings(&server, "resume")
    };
    let first = watch(settings.clone(), 50);
    assert_eq!(first.len(), 50);
    put(put_settings(&server, "resume"), values(50));
    // Not one more than the second 50 (a graceful end saved the last).
    let second = watch(settings, 50);
    let revisions: Vec<u64> = second.iter().map(|e| e["revision"].as_u64().unwrap()).collect();
    assert_eq!(revisions, (51..=100).collect::<Vec<_>>());
    assert_eq!(second[0]["value"], 50);
}
