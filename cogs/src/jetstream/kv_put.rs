//! The `kv_put` drain: each event puts (or deletes) a key of a key-value
//! bucket, done on the server's ack; optionally compare-and-set.

use std::collections::VecDeque;
use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tourbillon::{Cog, CogRemote, Context, Event, EventId, Finish, Fired, Getter, Next, Output, Role, Setter};

use super::client::{Auth, Backoff};
use super::kv_bucket::{self, BucketSettings};
use crate::access::Access;
use crate::{Counter, Error, LogThrottle, Verdict};

/// What an event does to its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOperation {
    /// Put the value. The default.
    #[default]
    Put,
    /// Delete the key (a delete marker; history kept).
    Delete,
    /// Purge the key: a marker, and its history is removed.
    Purge,
}

/// Settings of [`KvPutDrain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvPutSettings {
    /// NATS servers to connect to. Default `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// Credentials and TLS, by file names. Default none.
    pub auth: Auth,
    /// The bucket. Required.
    pub bucket: String,
    /// Create the bucket if it does not exist. Default false.
    pub create_bucket: bool,
    /// Revisions kept per key by a bucket this cog creates (1 to 64). Default 64.
    pub history: i64,
    /// Largest value of a bucket this cog creates; -1: the server's limit. Default -1.
    pub max_value_size: i32,
    /// Field holding the key (a string, or a number). Default `"key"`.
    pub key_field: String,
    /// The key of events without `key_field`. Default none: such events
    /// are dropped, counted and logged.
    pub key: Option<String>,
    /// Field holding the value, stored as its JSON text. Default `"value"`.
    /// An event without it puts `null`.
    pub value_field: String,
    /// Field holding the revision the key must be at (compare-and-set):
    /// the put is refused if another came first. A field holding 0 means
    /// "the key must not exist". Default none: plain puts.
    pub revision_field: Option<String>,
    /// What each event does, unless `operation_field` says otherwise:
    /// `"put"` (default), `"delete"`, `"purge"`.
    pub operation: KvOperation,
    /// Field whose value (`"put"`, `"delete"`, `"purge"`) says what each
    /// event does. Default none.
    pub operation_field: Option<String>,
    /// A named output that takes the events refused (a compare-and-set
    /// that failed, a bad key or operation), with why in `error_field`.
    /// Default none: they are dropped, counted and logged.
    pub error_output: Option<String>,
    /// Where the reason goes on the events sent to `error_output`. Default `"error"`.
    pub error_field: String,
    /// Puts waiting for their ack at once; beyond it the drain is congested.
    /// At least 1. Default 1024.
    pub max_in_flight: usize,
    /// Milliseconds to wait for an ack before sending again (the same
    /// message id: the server keeps one). At least 1. Default 5000.
    pub ack_timeout_ms: u64,
    /// The client's name, as the server shows it. Default `"tourbillon"`.
    pub name: String,
}

impl Default for KvPutSettings {
    fn default() -> Self {
        KvPutSettings {
            servers: super::client::default_servers(),
            auth: Auth::default(),
            bucket: String::new(),
            create_bucket: false,
            history: BucketSettings::default().history,
            max_value_size: -1,
            key_field: "key".into(),
            key: None,
            value_field: "value".into(),
            revision_field: None,
            operation: KvOperation::Put,
            operation_field: None,
            error_output: None,
            error_field: "error".into(),
            max_in_flight: 1024,
            ack_timeout_ms: 5000,
            name: "tourbillon".into(),
        }
    }
}

impl KvPutSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        super::client::validate_servers(&self.servers)?;
        self.auth.validate()?;
        kv_bucket::validate_bucket(&self.bucket)?;
        self.bucket_settings().validate()?;
        if let Some(k) = &self.key {
            if !kv_bucket::valid_key(k, false) {
                return Err(Error::setting("key", format!("`{k}`: not a key (`[-/_=.a-zA-Z0-9]+`)")));
            }
        }
        for (key, v) in [
            ("key_field", Some(&self.key_field)),
            ("value_field", Some(&self.value_field)),
            ("error_field", Some(&self.error_field)),
            ("revision_field", self.revision_field.as_ref()),
            ("operation_field", self.operation_field.as_ref()),
        ] {
            if v.is_some_and(String::is_empty) {
                return Err(Error::setting(key, "must not be empty"));
            }
        }
        if let Some(name) = &self.error_output {
            crate::step::route::check_output_name("error_output", name)?;
        }
        if self.max_in_flight == 0 {
            return Err(Error::setting("max_in_flight", "must be at least 1"));
        }
        if self.ack_timeout_ms == 0 {
            return Err(Error::setting("ack_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }

    fn bucket_settings(&self) -> BucketSettings {
        BucketSettings {
            create_bucket: self.create_bucket,
            history: self.history,
            max_value_size: self.max_value_size,
        }
    }
}

/// Counts of a [`KvPutDrain`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct KvPutStats {
    /// Puts, deletes and purges acknowledged by the server.
    pub acked: Counter,
    /// Compare-and-set refused: another revision came first.
    pub conflicts: Counter,
    /// Events without a usable key, or with an unknown operation.
    pub invalid: Counter,
    /// Refused events sent to the error output.
    pub to_error_output: Counter,
    /// Sends tried again after a failure or a timeout.
    pub retries: Counter,
}

/// Bytes kept for the headers (message id, operation, expected revision).
const HEADROOM: usize = 256;
const REMOTE: u64 = 0;
const FLUSH: u64 = 1;

/// Loop to helper.
struct Put {
    seq: u64,
    subject: String,
    msg_id: String,
    revision: Option<u64>,
    operation: KvOperation,
    payload: Bytes,
}

/// Helper to loop.
enum Outcome {
    /// Acknowledged: these sends.
    Acked(Vec<u64>),
    /// Refused by the server (compare-and-set, or another refusal that a
    /// send again would not change): a send and why.
    Refused(u64, String, bool),
}

/// The server's answer to one send, inside the helper.
enum Answer {
    Acked(u64),
    Refused(u64, String, bool),
}

/// What the drain keeps of an event in flight.
struct InFlight<D> {
    id: Option<EventId>,
    key: String,
    /// The event itself, kept only with an error output.
    datum: Option<D>,
}

/// The events in flight, by send number: numbers are given in order and
/// mostly answered in order, so a queue from the oldest unanswered one
/// finds each without hashing.
struct Window<T> {
    /// The send number of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<T>>,
    len: usize,
}

impl<T> Window<T> {
    fn new() -> Self {
        Window {
            base: 1,
            slots: VecDeque::new(),
            len: 0,
        }
    }

    /// Keeps `v`; its send number.
    fn push(&mut self, v: T) -> u64 {
        self.slots.push_back(Some(v));
        self.len += 1;
        self.base + self.slots.len() as u64 - 1
    }

    fn remove(&mut self, seq: u64) -> Option<T> {
        let i = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let v = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(v)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Puts each event's value under its key; see the [module docs](super).
pub struct KvPutDrain<D = Event> {
    settings: KvPutSettings,
    key: Getter<D, Value>,
    value: Getter<D, Value>,
    revision: Option<Getter<D, Value>>,
    operation: Option<Getter<D, Value>>,
    error: Setter<D, Option<Value>>,
    output: Option<Output>,
    run: String,
    tx: Option<UnboundedSender<Vec<Put>>>,
    outbox: Vec<Put>,
    in_flight: Window<InFlight<D>>,
    flush_queued: bool,
    congested: bool,
    finishing: bool,
    refused_log: LogThrottle,
    stats: KvPutStats,
}

impl<D> fmt::Debug for KvPutDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvPutDrain")
            .field("settings", &self.settings)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl KvPutDrain<Event> {
    /// Puts from the fields of events' data.
    pub fn new(settings: KvPutSettings) -> Result<Self, Error> {
        KvPutDrain::with_access(settings, &Access::event())
    }
}

impl<D> KvPutDrain<D> {
    /// Puts from the fields the settings name, reached through `access`.
    pub fn with_access(settings: KvPutSettings, access: &Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(KvPutDrain {
            key: access.getter(&settings.key_field),
            value: access.getter(&settings.value_field),
            revision: settings.revision_field.as_deref().map(|p| access.getter(p)),
            operation: settings.operation_field.as_deref().map(|p| access.getter(p)),
            error: access.writer(&settings.error_field),
            output: None,
            run: format!("kv-{:016x}-", super::client::run_nonce()),
            tx: None,
            outbox: Vec::new(),
            in_flight: Window::new(),
            flush_queued: false,
            congested: false,
            finishing: false,
            refused_log: LogThrottle::new(Duration::from_secs(10)),
            stats: KvPutStats::default(),
            settings,
        })
    }

    /// Its counters.
    pub fn stats(&self) -> KvPutStats {
        self.stats.clone()
    }

    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox);
        if self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_err()) {
            log::error!("kv_put: the helper thread is gone; events not put (not reported done)");
        }
    }

    /// The key, the operation and the revision of an event, or why not.
    fn read(&self, datum: &D) -> Result<(String, KvOperation, Option<u64>), String> {
        let key = match self.key.get(datum) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(v) => {
                return Err(format!(
                    "field {} is {}, not a key",
                    self.settings.key_field,
                    crate::access::kind_name(v)
                ))
            }
            None => match &self.settings.key {
                Some(k) => k.clone(),
                None => return Err(format!("no field {} and no `key` setting", self.settings.key_field)),
            },
        };
        if !kv_bucket::valid_key(&key, false) {
            return Err(format!(
                "`{key}` is not a key (`[-/_=.a-zA-Z0-9]+`, no `.` at either end)"
            ));
        }
        let operation = match self.operation.as_ref().and_then(|g| g.get(datum)) {
            None => self.settings.operation,
            Some(v) => match v.as_str() {
                Some("put") => KvOperation::Put,
                Some("delete") => KvOperation::Delete,
                Some("purge") => KvOperation::Purge,
                _ => {
                    return Err(format!(
                        "key {key}: operation {v} is not \"put\", \"delete\" or \"purge\""
                    ))
                }
            },
        };
        let revision = match (
            &self.settings.revision_field,
            self.revision.as_ref().and_then(|g| g.get(datum)),
        ) {
            (_, None) => None,
            (_, Some(v)) if v.as_u64().is_some() => v.as_u64(),
            (Some(f), Some(v)) => return Err(format!("key {key}: field {f} is {v}, not a revision")),
            (None, Some(_)) => None,
        };
        Ok((key, operation, revision))
    }

    /// An event the server or the drain refused: to the error output, or
    /// dropped; counted and logged either way.
    fn refuse<N: Next<D> + ?Sized>(
        &mut self,
        id: Option<EventId>,
        datum: Option<D>,
        why: &str,
        ctx: &mut Context<'_, D, N>,
    ) {
        let fate = match (self.output, datum) {
            (Some(out), Some(d)) => {
                self.stats.to_error_output.add(1);
                let d = self.error.set(d, Some(Value::String(why.to_owned())));
                ctx.emit_to(out, d);
                "sent to the error output"
            }
            _ => {
                if let Some(id) = id {
                    ctx.event_done(id);
                }
                "dropped"
            }
        };
        if let Verdict::Log { held } = self.refused_log.hit(ctx.now()) {
            log::warn!(
                "kv_put: bucket {}: {why}: {fate}{}",
                self.settings.bucket,
                crate::Summary::note(held)
            );
        }
    }
}

fn subject(bucket: &str, key: &str) -> String {
    format!("$KV.{bucket}.{key}")
}

impl<D: 'static> Cog<D> for KvPutDrain<D> {
    fn role(&self) -> Role {
        Role::Drain
    }

    fn outputs(&self) -> Vec<String> {
        self.settings.error_output.iter().cloned().collect()
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(name) = &self.settings.error_output {
            self.output = ctx.output(name);
        }
        let (tx, rx) = unbounded_channel();
        let remote = ctx.remote(REMOTE);
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        match std::thread::Builder::new()
            .name("kv-put".into())
            .spawn(move || helper(settings, rx, remote, stats))
        {
            Ok(_) => self.tx = Some(tx),
            Err(e) => log::error!("kv_put: cannot start its thread: {e}; nothing will be put"),
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let id = ctx.id_of(&datum);
        let (key, operation, revision) = match self.read(&datum) {
            Ok(r) => r,
            Err(why) => {
                self.stats.invalid.add(1);
                return self.refuse(id, Some(datum), &why, ctx);
            }
        };
        let payload = match operation {
            KvOperation::Put => {
                let v = self.value.get(&datum).unwrap_or(&Value::Null);
                Bytes::from(serde_json::to_vec(v).unwrap_or_default())
            }
            _ => Bytes::new(),
        };
        let subject = subject(&self.settings.bucket, &key);
        let datum = self.output.is_some().then_some(datum);
        let seq = self.in_flight.push(InFlight { id, key, datum });
        self.outbox.push(Put {
            seq,
            subject,
            msg_id: format!("{}{seq}", self.run),
            revision,
            operation,
            payload,
        });
        if self.in_flight.len() >= self.settings.max_in_flight {
            self.congested = true;
        }
        if !self.flush_queued {
            if ctx.enqueue(FLUSH).is_ok() {
                self.flush_queued = true;
            } else {
                self.flush();
            }
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        if key == FLUSH {
            self.flush_queued = false;
            return self.flush();
        }
        let Fired::Message(m) = fired else { return };
        let Ok(outcome) = m.downcast::<Outcome>() else { return };
        match *outcome {
            Outcome::Acked(seqs) => {
                self.stats.acked.add(seqs.len() as u64);
                for s in seqs {
                    if let Some(InFlight { id: Some(id), .. }) = self.in_flight.remove(s) {
                        ctx.event_done(id);
                    }
                }
            }
            Outcome::Refused(s, why, conflict) => {
                if let Some(f) = self.in_flight.remove(s) {
                    if conflict {
                        self.stats.conflicts.add(1);
                    } else {
                        self.stats.invalid.add(1);
                    }
                    self.refuse(f.id, f.datum, &format!("key {}: {why}", f.key), ctx);
                }
            }
        }
        if self.congested && self.in_flight.len() <= self.settings.max_in_flight / 2 {
            self.congested = false;
            ctx.resume_upstream();
        }
        if self.finishing && self.in_flight.is_empty() {
            self.tx = None;
            ctx.finished();
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        self.flush();
        self.flush_queued = false;
        if self.in_flight.is_empty() {
            self.tx = None;
            Finish::Done
        } else {
            log::info!("kv_put: finishing: waiting for {} acks", self.in_flight.len());
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        let s = &self.stats;
        log::info!(
            "kv_put: bucket {}: {} acknowledged, {} refused by compare-and-set, {} invalid, {} sends retried",
            self.settings.bucket,
            s.acked.get(),
            s.conflicts.get(),
            s.invalid.get(),
            s.retries.get()
        );
        if !self.in_flight.is_empty() {
            log::error!(
                "kv_put: {} events were not acknowledged before the end; they were not reported done",
                self.in_flight.len()
            );
        }
        self.tx = None;
    }

    fn congested(&self) -> bool {
        self.congested
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "kv_put servers={} {} bucket={} key_field={} value_field={} operation={:?}",
            s.servers.join(","),
            s.auth,
            s.bucket,
            s.key_field,
            s.value_field,
            s.operation
        )?;
        if let Some(r) = &s.revision_field {
            write!(f, " revision_field={r}")?;
        }
        if let Some(o) = &s.error_output {
            write!(f, " error_output={o}")?;
        }
        write!(f, " max_in_flight={}", s.max_in_flight)
    }
}

fn message(p: &Put) -> PublishMessage {
    let mut m = PublishMessage::build().payload(p.payload.clone()).message_id(&p.msg_id);
    match p.operation {
        KvOperation::Put => {}
        KvOperation::Delete => m = m.header("KV-Operation", "DEL"),
        KvOperation::Purge => m = m.header("KV-Operation", "PURGE").header("Nats-Rollup", "sub"),
    }
    if let Some(r) = p.revision {
        m = m.expected_last_subject_sequence(r);
    }
    m
}

/// Whether a send again cannot change the server's answer: the revision
/// did not match, or the server refuses the message itself.
fn refused(e: &PublishError) -> Option<bool> {
    match e.kind() {
        PublishErrorKind::WrongLastSequence => Some(true),
        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe => None,
        // The server answered with an error of its own (too big...).
        PublishErrorKind::Other
            if std::error::Error::source(e).is_some_and(|s| s.is::<async_nats::jetstream::Error>()) =>
        {
            Some(false)
        }
        _ => None,
    }
}

fn helper(settings: KvPutSettings, rx: UnboundedReceiver<Vec<Put>>, remote: CogRemote, stats: KvPutStats) {
    let rt = match super::client::runtime() {
        Ok(rt) => rt,
        Err(e) => return log::error!("kv_put: cannot start its runtime: {e}"),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(settings, rx, remote, stats));
}

async fn run(settings: KvPutSettings, mut rx: UnboundedReceiver<Vec<Put>>, remote: CogRemote, stats: KvPutStats) {
    let client = loop {
        match super::client::connect(&settings.servers, &settings.auth, &settings.name).await {
            Ok(c) => break c,
            Err(e) => {
                log::error!("kv_put: cannot connect: {e}; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let timeout = Duration::from_millis(settings.ack_timeout_ms);
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(settings.max_in_flight)
        .backpressure_on_inflight(true)
        .build(client.clone());
    // The bucket must exist (or be made) before the first put: a put to a
    // bucket not there would be refused (no stream has its subject).
    kv_bucket::bind(&js, &settings.bucket, &settings.bucket_settings(), "kv_put").await;
    let (out_tx, mut out_rx) = unbounded_channel::<Answer>();
    // Acks go to the loop in batches: one wake for all that came meanwhile.
    tokio::task::spawn_local(async move {
        let mut batch = Vec::new();
        while out_rx.recv_many(&mut batch, 4096).await > 0 {
            let mut acked = Vec::with_capacity(batch.len());
            for o in batch.drain(..) {
                match o {
                    Answer::Acked(s) => acked.push(s),
                    Answer::Refused(s, why, conflict) => {
                        if !acked.is_empty() && remote.send(Outcome::Acked(std::mem::take(&mut acked))).is_err() {
                            return;
                        }
                        if remote.send(Outcome::Refused(s, why, conflict)).is_err() {
                            return;
                        }
                    }
                }
            }
            if !acked.is_empty() && remote.send(Outcome::Acked(acked)).is_err() {
                return;
            }
        }
    });
    // Sends go out in order and their acks are awaited in order by a
    // second task, each until `ack_timeout_ms` after its send.
    let (ack_tx, mut ack_rx) = unbounded_channel::<(Put, PublishAckFuture, tokio::time::Instant)>();
    {
        let (js, out, stats) = (js.clone(), out_tx.clone(), stats.clone());
        tokio::task::spawn_local(async move {
            while let Some((p, ack, deadline)) = ack_rx.recv().await {
                match tokio::time::timeout_at(deadline, ack.into_future()).await {
                    Ok(Ok(_)) => drop(out.send(Answer::Acked(p.seq))),
                    Ok(Err(e)) => match refused(&e) {
                        Some(conflict) => drop(out.send(Answer::Refused(p.seq, e.to_string(), conflict))),
                        None => retry(js.clone(), p, Some(e), out.clone(), stats.clone()),
                    },
                    Err(_) => retry(js.clone(), p, None, out.clone(), stats.clone()),
                }
            }
        });
    }
    let mut batches = Vec::with_capacity(16);
    while rx.recv_many(&mut batches, 16).await > 0 {
        // Once per batch: it copies the whole server info.
        let max = client.server_info().max_payload;
        for p in batches.drain(..).flatten() {
            // Too big for the server: no send would ever land.
            if max > 0 && p.payload.len() + p.subject.len() + HEADROOM > max {
                let why = format!(
                    "a value of {} bytes is more than the server's max_payload ({max} bytes) allows",
                    p.payload.len()
                );
                let _ = out_tx.send(Answer::Refused(p.seq, why, false));
                continue;
            }
            match js.send_publish(p.subject.clone(), message(&p)).await {
                Ok(ack) => {
                    let _ = ack_tx.send((p, ack, tokio::time::Instant::now() + timeout));
                }
                Err(e) => retry(js.clone(), p, Some(e), out_tx.clone(), stats.clone()),
            }
        }
    }
}

/// Sends `p` again (same message id) until the server answers; `first` is
/// why it failed (none: no ack in time).
fn retry(
    js: async_nats::jetstream::Context,
    p: Put,
    first: Option<PublishError>,
    out: UnboundedSender<Answer>,
    stats: KvPutStats,
) {
    tokio::task::spawn_local(async move {
        let mut backoff = Backoff::new();
        let mut failures = 0u32;
        let mut throttle = LogThrottle::new(Duration::from_secs(10));
        let mut error = first;
        loop {
            failures += 1;
            stats.retries.add(1);
            if failures > 1 {
                if let Verdict::Log { held } = throttle.hit(std::time::Instant::now()) {
                    let why = error
                        .as_ref()
                        .map_or_else(|| "no ack in time".to_owned(), |e| e.to_string());
                    log::warn!(
                        "kv_put: {} failed {failures} times: {why}; retrying{}",
                        p.subject,
                        crate::Summary::note(held)
                    );
                }
            }
            backoff.wait().await;
            let result = match js.send_publish(p.subject.clone(), message(&p)).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(_) => return drop(out.send(Answer::Acked(p.seq))),
                Err(e) => {
                    if let Some(conflict) = refused(&e) {
                        return drop(out.send(Answer::Refused(p.seq, e.to_string(), conflict)));
                    }
                    error = Some(e);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn a_window_finds_answers_in_any_order_and_forgets_the_answered() {
        let mut w = Window::new();
        let seqs: Vec<u64> = (0..5).map(|i| w.push(i * 10)).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(w.remove(3), Some(20));
        assert_eq!(w.remove(3), None, "answered once");
        assert_eq!(w.remove(1), Some(0));
        assert_eq!(w.remove(2), Some(10));
        assert_eq!(
            (w.len(), w.base, w.slots.len()),
            (2, 4, 2),
            "the answered front is dropped"
        );
        assert_eq!(w.remove(0), None);
        assert_eq!(w.remove(9), None);
        assert_eq!(w.push(60), 6);
        assert_eq!(w.remove(5), Some(40));
        assert_eq!(w.remove(4), Some(30));
        assert_eq!(w.remove(6), Some(60));
        assert!(w.is_empty() && w.slots.is_empty());
        assert_eq!(w.push(70), 7);
    }
}
