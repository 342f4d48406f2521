//! The JetStream cog kinds (feature `nats`): `jetstream_consume`,
//! `jetstream_publish`, and `jetstream_reject`, which rejects through the
//! consume supply of its own train; `kv_watch` and `kv_put` on key-value
//! buckets.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tourbillon::{Event, Role};
use tourbillon_cogs::jetstream::{
    ConsumeSettings, JetStreamDrain, JetStreamSupply, KvPutDrain, KvPutSettings, KvWatchSettings, KvWatchSupply,
    PublishSettings, RejectSettings, RejectStep, Rejects,
};
use tourbillon_cogs::Error;

use crate::registry::{BuildEnv, Registry};

/// Adds `jetstream_consume`, `jetstream_publish`, `jetstream_reject`,
/// `kv_watch` and `kv_put` to a registry. A `jetstream_reject` step rejects through the
/// `jetstream_consume` supply built before it in the same train.
pub fn register(r: &mut Registry) {
    let supplies: Arc<Mutex<HashMap<String, Rejects>>> = Arc::default();
    let by_train = Arc::clone(&supplies);
    // The trains whose consume supply has been checked, for the reject
    // step's check (which runs without building anything).
    let checked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let checked_by = Arc::clone(&checked);
    r.add(
        "jetstream_consume",
        "supply: messages of a durable JetStream pull consumer, acked when done",
        Role::Supply,
        move |s: &ConsumeSettings, env: &BuildEnv| {
            s.validate()?;
            checked_by
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(env.train.clone());
            Ok(())
        },
        move |s, env| {
            let supply = JetStreamSupply::new(s)?;
            let mut map = by_train.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(env.train.clone(), supply.rejects());
            Ok(supply)
        },
    );
    r.add(
        "jetstream_publish",
        "drain: publish to JetStream, done on the server's ack",
        Role::Drain,
        |s: &PublishSettings, _: &BuildEnv| s.validate(),
        |s, _| JetStreamDrain::new(s),
    );
    r.add(
        "kv_watch",
        "supply: every put and delete of a JetStream key-value bucket, resumed after the last revision done",
        Role::Supply,
        |s: &KvWatchSettings, _: &BuildEnv| s.validate(),
        |s, _| KvWatchSupply::new(s),
    );
    r.add(
        "kv_put",
        "drain: put (or delete) a key of a JetStream key-value bucket, done on the server's ack",
        Role::Drain,
        |s: &KvPutSettings, _: &BuildEnv| s.validate(),
        |s, _| KvPutDrain::new(s),
    );
    let needs_consume = || Error::Setting {
        key: "kind".into(),
        message: "jetstream_reject needs a jetstream_consume supply before it in its train".into(),
    };
    r.add(
        "jetstream_reject",
        "nak (or term) events that have a field, through the train's jetstream_consume",
        Role::Step,
        move |s: &RejectSettings, env: &BuildEnv| {
            if !checked.lock().unwrap_or_else(|e| e.into_inner()).contains(&env.train) {
                return Err(needs_consume());
            }
            RejectStep::<Event>::new(s.clone(), Rejects::default()).map(drop)
        },
        move |s, env| {
            let map = supplies.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(&env.train) {
                Some(rejects) => RejectStep::new(s, rejects.clone()),
                None => Err(needs_consume()),
            }
        },
    );
}
