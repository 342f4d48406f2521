//! NATS JetStream: the `jetstream_publish` drain ([`JetStreamDrain`]) and the
//! `jetstream_consume` supply ([`JetStreamSupply`]), so trains on several
//! hosts exchange events through an existing engine, at least once end to end;
//! and on JetStream's key-value buckets, the `kv_watch` supply
//! ([`KvWatchSupply`]) and the `kv_put` drain ([`KvPutDrain`]), so nodes
//! share values: a node that starts late catches up on every key.
//!
//! # Threads
//!
//! Each cog runs async-nats on one helper thread of its own, with a
//! current-thread tokio runtime, started in [`Cog::start`](tourbillon::Cog::start).
//! The helper hands what it receives (publish acks, messages) into the loop
//! in batches through a [`CogRemote`](tourbillon::CogRemote) (the escapement's
//! waker); the loop hands work back (publishes, acks) through an unbounded
//! channel that never blocks. The loop never waits on the network.
//!
//! # Delivery
//!
//! - The drain reports an event done only once JetStream acknowledged storing
//!   it; a publish that fails or times out is retried with the same
//!   `Nats-Msg-Id`, so a publish that did land is not stored twice (within
//!   the stream's duplicate window, two minutes by default).
//! - The supply acks a message when its event is reported done: written by a
//!   drain, or dropped on purpose (a filter, a discard). A message whose
//!   event is not done within [`ack_wait_ms`](ConsumeSettings::ack_wait_ms) is
//!   delivered again, to this process or another one sharing the consumer.
//! - A cog that fails on an event says so through the supply's [`Rejects`]
//!   handle (or the `jetstream_reject` step in a configuration) before it
//!   reports the event done: the message is nak'd with a delay and comes
//!   back, up to [`max_deliver`](ConsumeSettings::max_deliver) times, then it
//!   is termed (a poison message stops coming back).
//!
//! A process killed with `kill -9` loses nothing: what the supply had not
//! acked is delivered again; what the drain had not seen acknowledged is
//! published again by its own supply after a restart (a tail's checkpoint
//! only advances over events done).
//!
//! # Key-value buckets
//!
//! - `kv_put` reports an event done once the server acknowledged its put
//!   (or delete, or purge); the value is stored as its JSON text. With
//!   `revision_field` it is a compare-and-set: a put refused because the key
//!   moved on is counted (`conflicts`), logged (throttled) and sent to
//!   `error_output` if set, else dropped.
//! - `kv_watch` hands every entry of the bucket (or of the keys matching a
//!   pattern) in revision order, with its key, value (the JSON it holds,
//!   else its text), revision and operation. It keeps the last revision
//!   whose event, and every one before, is done in its `state_dir` (a
//!   [`Store`](tourbillon::Store), saved once per loop turn at most), and a
//!   restart resumes after it: nothing is lost to a `kill -9` or a server
//!   restart; what was done after the last save comes again (duplicates,
//!   at most a turn's worth plus what was in flight). A bucket keeps
//!   `history` revisions per key: a watcher away longer than that many
//!   updates of one key sees only the ones kept.
//!
//! # Settings shared by the cogs
//!
//! `servers` (default `["nats://127.0.0.1:4222"]`) and [`auth`](Auth):
//! credentials, token, nkey and TLS are given as names of files, never as
//! secrets in the configuration; logs and listings name the files only.

mod client;
mod consume;
mod consume_settings;
mod kv_bucket;
mod kv_put;
mod kv_watch;
mod publish;
mod pull_helper;
mod reject;

pub use client::Auth;
pub use consume::{Delivery, JetStreamSupply, SupplyStats};
pub use consume_settings::{ConsumeSettings, Deliver};
pub use kv_put::{KvOperation, KvPutDrain, KvPutSettings, KvPutStats};
pub use kv_watch::{KvDeliver, KvEntry, KvWatchSettings, KvWatchStats, KvWatchSupply};
pub use publish::{JetStreamDrain, PublishSettings, PublishStats};
pub use reject::{Reject, RejectSettings, RejectStep, Rejects};
