//! The `jetstream_publish` drain: one JetStream publish per event, reported
//! done on the server's ack.

use std::fmt;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::jetstream::context::{PublishAckFuture, PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tourbillon::accessor::Json;
use tourbillon::{Cog, CogRemote, Context, Event, EventId, Finish, Fired, Getter, Next, Role};

use super::client::{Auth, Backoff};
use crate::{Counter, Error};

/// Settings of [`JetStreamDrain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishSettings {
    /// NATS servers to connect to (`nats://HOST:PORT`, `tls://HOST:PORT`).
    /// Default `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// Credentials and TLS, by file names. Default none.
    pub auth: Auth,
    /// The subject to publish to (a stream must cover it). Required unless
    /// `subject_field` is set, then the fallback for events without that field.
    pub subject: String,
    /// A field path whose string value is the subject of each event. Default none.
    pub subject_field: Option<String>,
    /// Publishes waiting for their ack at once; beyond it the drain says it
    /// is congested. At least 1. Default 1024. Set 1 to keep the stream's
    /// order exactly the train's, even across failed publishes.
    pub max_in_flight: usize,
    /// Milliseconds to wait for a publish ack before publishing again (with
    /// the same message id). At least 1. Default 5000.
    pub ack_timeout_ms: u64,
    /// Put before each message id: `{prefix}{run}-{event id}`, where `run` is
    /// 16 random hex digits drawn when the process starts, so ids stay
    /// unique across restarts and hosts. Default empty.
    pub msg_id_prefix: String,
    /// A field path whose value (a string or a number) is the message id
    /// instead: JetStream then drops copies of an event published again,
    /// even by another run, within the stream's duplicate window. Default none.
    pub msg_id_field: Option<String>,
    /// The client's name, as the server shows it. Default `"tourbillon"`.
    pub name: String,
}

impl Default for PublishSettings {
    fn default() -> Self {
        PublishSettings {
            servers: super::client::default_servers(),
            auth: Auth::default(),
            subject: String::new(),
            subject_field: None,
            max_in_flight: 1024,
            ack_timeout_ms: 5000,
            msg_id_prefix: String::new(),
            msg_id_field: None,
            name: "tourbillon".into(),
        }
    }
}

impl PublishSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        super::client::validate_servers(&self.servers)?;
        self.auth.validate()?;
        if self.subject.is_empty() && self.subject_field.is_none() {
            return Err(Error::setting("subject", "required (or subject_field)"));
        }
        if self.subject.contains([' ', '*', '>']) {
            return Err(Error::setting(
                "subject",
                "a subject to publish to has no spaces or wildcards",
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::setting("max_in_flight", "must be at least 1"));
        }
        if self.ack_timeout_ms == 0 {
            return Err(Error::setting("ack_timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// Counts of a [`JetStreamDrain`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct PublishStats {
    /// Events stored by JetStream (acked).
    pub acked: Counter,
    /// Publishes tried again after a failure or a timeout.
    pub retries: Counter,
    /// Acks that said the message was a duplicate (a retry that had landed).
    pub duplicates: Counter,
    /// Events without a subject (no field and no fallback): dropped.
    pub no_subject: Counter,
}

/// The remote's key, and the immediate event that flushes the outbox.
const REMOTE: u64 = 0;
const FLUSH: u64 = 1;

/// What the loop sends the helper.
struct Publish {
    id: Option<EventId>,
    subject: String,
    msg_id: String,
    payload: Bytes,
}

/// What the helper sends the loop: the events acked since the last batch.
struct Acked(Vec<Option<EventId>>);

/// Publishes each event's bytes to JetStream; see the [module docs](super).
pub struct JetStreamDrain<D = Event> {
    settings: PublishSettings,
    bytes: Getter<D, [u8]>,
    subject: Option<Getter<D, str>>,
    msg_id: Option<Getter<D, Value>>,
    run: String,
    seq: u64,
    tx: Option<UnboundedSender<Vec<Publish>>>,
    /// Publishes gathered this turn, and whether their flush is queued.
    outbox: Vec<Publish>,
    flush_queued: bool,
    in_flight: usize,
    congested: bool,
    finishing: bool,
    stats: PublishStats,
}

impl<D> fmt::Debug for JetStreamDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamDrain")
            .field("settings", &self.settings)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl JetStreamDrain<Event> {
    /// Publishes the `raw` bytes of events.
    pub fn new(settings: PublishSettings) -> Result<Self, Error> {
        JetStreamDrain::with_accessor(settings, Getter::<Event, [u8]>::raw())
    }
}

impl<D: Json> JetStreamDrain<D> {
    /// Publishes the bytes `bytes` reads from each datum; the subject and
    /// message id fields, if set, are read from its JSON.
    pub fn with_accessor(settings: PublishSettings, bytes: Getter<D, [u8]>) -> Result<Self, Error> {
        settings.validate()?;
        let subject = settings.subject_field.as_deref().map(Getter::<D, str>::path_str);
        let msg_id = settings.msg_id_field.as_deref().map(Getter::<D, Value>::path);
        Ok(JetStreamDrain {
            run: format!("{}{:016x}-", settings.msg_id_prefix, super::client::run_nonce()),
            settings,
            bytes,
            subject,
            msg_id,
            seq: 0,
            tx: None,
            outbox: Vec::new(),
            flush_queued: false,
            in_flight: 0,
            congested: false,
            finishing: false,
            stats: PublishStats::default(),
        })
    }
}

impl<D> JetStreamDrain<D> {
    /// Its counters.
    pub fn stats(&self) -> PublishStats {
        self.stats.clone()
    }

    fn msg_id(&mut self, datum: &D, id: Option<EventId>) -> String {
        if let Some(v) = self.msg_id.as_ref().and_then(|g| g.get(datum)) {
            match v {
                Value::String(s) if !s.is_empty() => return s.clone(),
                Value::Number(n) => return n.to_string(),
                _ => {}
            }
        }
        // Without an event id, a counter of this drain: unique in this run too.
        let n = id.map_or_else(
            || {
                self.seq += 1;
                format!("s{}", self.seq)
            },
            |id| id.0.to_string(),
        );
        format!("{}{n}", self.run)
    }

    /// Hands the publishes gathered to the helper: one wake of it for all
    /// the events of a loop turn.
    fn flush(&mut self) {
        if self.outbox.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.outbox);
        let n = batch.len();
        if self.tx.as_ref().is_some_and(|tx| tx.send(batch).is_err()) {
            log::error!("jetstream_publish: the helper thread is gone; {n} events not published");
        }
    }

    fn acked<N: Next<D> + ?Sized>(&mut self, ids: Vec<Option<EventId>>, ctx: &mut Context<'_, D, N>) {
        self.in_flight -= ids.len();
        self.stats.acked.add(ids.len() as u64);
        for id in ids.into_iter().flatten() {
            ctx.event_done(id);
        }
        if self.congested && self.in_flight <= self.settings.max_in_flight / 2 {
            self.congested = false;
            ctx.resume_upstream();
        }
        if self.finishing && self.in_flight == 0 {
            self.tx = None;
            ctx.finished();
        }
    }
}

impl<D: 'static> Cog<D> for JetStreamDrain<D> {
    fn role(&self) -> Role {
        Role::Drain
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let (tx, rx) = unbounded_channel();
        let remote = ctx.remote(REMOTE);
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        let spawned = std::thread::Builder::new()
            .name("jetstream-publish".into())
            .spawn(move || helper(settings, rx, remote, stats));
        match spawned {
            Ok(_) => self.tx = Some(tx),
            Err(e) => log::error!("jetstream_publish: cannot start its thread: {e}; nothing will be published"),
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let subject = match self.subject.as_ref().and_then(|g| g.get(&datum)) {
            Some(s) if !s.is_empty() => s.to_owned(),
            _ if !self.settings.subject.is_empty() => self.settings.subject.clone(),
            _ => {
                self.stats.no_subject.add(1);
                if self.stats.no_subject.get() == 1 {
                    log::warn!("jetstream_publish: an event has no subject field and there is no fallback: dropped");
                }
                return ctx.discard(&datum);
            }
        };
        let id = ctx.id_of(&datum);
        let msg_id = self.msg_id(&datum, id);
        let payload = Bytes::copy_from_slice(self.bytes.get(&datum).unwrap_or_default());
        if self.tx.is_none() {
            log::error!("jetstream_publish: no helper thread; event not published");
            return;
        }
        self.outbox.push(Publish {
            id,
            subject,
            msg_id,
            payload,
        });
        self.in_flight += 1;
        if self.in_flight >= self.settings.max_in_flight {
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
        if let Fired::Message(m) = fired {
            if let Ok(acked) = m.downcast::<Acked>() {
                self.acked(acked.0, ctx);
            }
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        // A queued flush may not fire now; from here on, each goes at once.
        self.flush();
        self.flush_queued = false;
        if self.in_flight == 0 {
            self.tx = None;
            Finish::Done
        } else {
            log::info!(
                "jetstream_publish: finishing: waiting for {} publish acks",
                self.in_flight
            );
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        if self.in_flight > 0 {
            log::error!(
                "jetstream_publish: {} events were not acknowledged by JetStream before the end; they were not reported done",
                self.in_flight
            );
        }
        self.tx = None;
    }

    fn congested(&self) -> bool {
        self.congested
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(f, "jetstream_publish servers={} {}", s.servers.join(","), s.auth)?;
        match &s.subject_field {
            Some(field) => write!(f, " subject_field={field} subject={}", s.subject)?,
            None => write!(f, " subject={}", s.subject)?,
        }
        write!(
            f,
            " max_in_flight={} ack_timeout_ms={}",
            s.max_in_flight, s.ack_timeout_ms
        )
    }
}

/// The helper thread: publishes, awaits acks, retries, reports acks in batches.
fn helper(settings: PublishSettings, rx: UnboundedReceiver<Vec<Publish>>, remote: CogRemote, stats: PublishStats) {
    let rt = match super::client::runtime() {
        Ok(rt) => rt,
        Err(e) => return log::error!("jetstream_publish: cannot start its runtime: {e}"),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(settings, rx, remote, stats));
}

async fn run(
    settings: PublishSettings,
    mut rx: UnboundedReceiver<Vec<Publish>>,
    remote: CogRemote,
    stats: PublishStats,
) {
    let client = loop {
        match super::client::connect(&settings.servers, &settings.auth, &settings.name).await {
            Ok(c) => break c,
            Err(e) => {
                log::error!("jetstream_publish: cannot connect: {e}; retrying in 5 s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    };
    let timeout = Duration::from_millis(settings.ack_timeout_ms);
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(settings.max_in_flight)
        .backpressure_on_inflight(true)
        .build(client);
    let (done_tx, mut done_rx) = unbounded_channel::<Option<EventId>>();
    // Reports acks in batches: one wake of the loop for all the acks that
    // came in while it was busy.
    tokio::task::spawn_local(async move {
        let mut batch = Vec::new();
        while done_rx.recv_many(&mut batch, 4096).await > 0 {
            if remote.send(Acked(std::mem::take(&mut batch))).is_err() {
                return;
            }
        }
    });
    // Publishes go out in order and their acks are awaited in order by a
    // second task, as a bare client pipelines them; a publish that fails
    // goes to a task of its own that retries it (same message id).
    // Each ack is awaited until `ack_timeout_ms` after its publish (not
    // after the acks before it): a server gone away costs one timeout.
    let (ack_tx, mut ack_rx) = unbounded_channel::<(Publish, PublishAckFuture, tokio::time::Instant)>();
    {
        let (js, done, stats) = (js.clone(), done_tx.clone(), stats.clone());
        tokio::task::spawn_local(async move {
            while let Some((p, ack, deadline)) = ack_rx.recv().await {
                match tokio::time::timeout_at(deadline, ack.into_future()).await {
                    Ok(Ok(ack)) => {
                        if ack.duplicate {
                            stats.duplicates.add(1);
                        }
                        let _ = done.send(p.id);
                    }
                    Ok(Err(e)) => retry(js.clone(), p, Some(e), done.clone(), stats.clone()),
                    Err(_) => retry(js.clone(), p, None, done.clone(), stats.clone()),
                }
            }
        });
    }
    let mut batches = Vec::with_capacity(16);
    while rx.recv_many(&mut batches, 16).await > 0 {
        for p in batches.drain(..).flatten() {
            let message = PublishMessage::build().payload(p.payload.clone()).message_id(&p.msg_id);
            match js.send_publish(p.subject.clone(), message).await {
                Ok(ack) => {
                    let _ = ack_tx.send((p, ack, tokio::time::Instant::now() + timeout));
                }
                Err(e) => retry(js.clone(), p, Some(e), done_tx.clone(), stats.clone()),
            }
        }
    }
    // The loop let go: it is through (every ack came) or past its deadline.
}

/// Publishes `p` again until JetStream acks it, backing off between tries;
/// `first` is why it failed (none: no ack in time).
fn retry(
    js: async_nats::jetstream::Context,
    p: Publish,
    first: Option<PublishError>,
    done: UnboundedSender<Option<EventId>>,
    stats: PublishStats,
) {
    tokio::task::spawn_local(async move {
        let mut backoff = Backoff::new();
        let mut failures = 0u32;
        let mut throttle = crate::LogThrottle::new(Duration::from_secs(10));
        let mut error = first;
        loop {
            failures += 1;
            stats.retries.add(1);
            let why = error
                .as_ref()
                .map_or_else(|| "no ack in time".to_owned(), |e| e.to_string());
            let quiet = match &error {
                None => true,
                Some(e) => matches!(e.kind(), PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe),
            };
            // Timeouts are quiet at first (a server restarting); after
            // that, one line per 10 s with how many were held back.
            if failures > 1 || !quiet {
                if let crate::Verdict::Log { held } = throttle.hit(std::time::Instant::now()) {
                    log::warn!(
                        "jetstream_publish: publish to {} failed {failures} time{}: {why}; retrying{}",
                        p.subject,
                        if failures == 1 { "" } else { "s" },
                        crate::Summary::note(held)
                    );
                }
            }
            backoff.wait().await;
            let message = PublishMessage::build().payload(p.payload.clone()).message_id(&p.msg_id);
            let result = match js.send_publish(p.subject.clone(), message).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => {
                    if ack.duplicate {
                        stats.duplicates.add(1);
                    }
                    let _ = done.send(p.id);
                    return;
                }
                Err(e) => error = Some(e),
            }
        }
    });
}
