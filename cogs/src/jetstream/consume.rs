//! The `jetstream_consume` supply: messages of a durable pull consumer as
//! events, acked when they are done.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use async_nats::jetstream::AckKind;
use async_nats::Subject;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tourbillon::{Cog, Context, Event, EventId, Finish, Fired, Next, Role};

use super::pull_helper::{helper, Command, Incoming, Received};
use super::reject::{Reject, Rejects};
use super::Auth;
use crate::ledger::Ledger;
use crate::{Counter, Error};

/// Where a consumer created by the supply starts reading its stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    /// Every message still in the stream. The default.
    #[default]
    All,
    /// Only messages stored after the consumer is created.
    New,
    /// The last message, then the new ones.
    Last,
}

/// Settings of [`JetStreamSupply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumeSettings {
    /// NATS servers to connect to. Default `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// Credentials and TLS, by file names. Default none.
    pub auth: Auth,
    /// The stream to read. Required.
    pub stream: String,
    /// Create the stream if it does not exist, over `subjects` (file
    /// storage). Default false: it must exist.
    pub create_stream: bool,
    /// The subjects of a stream this supply creates. Default: `[stream + ".>"]`.
    pub subjects: Vec<String>,
    /// The durable pull consumer's name. Processes that name the same
    /// consumer split its messages between them. Required.
    pub consumer: String,
    /// Create the consumer if it does not exist, with the settings below.
    /// Default true. An existing consumer keeps its own settings.
    pub create_consumer: bool,
    /// Only messages on this subject (wildcards allowed) reach a consumer
    /// this supply creates. Default: every subject of the stream.
    pub filter_subject: Option<String>,
    /// Where a created consumer starts: `"all"` (default), `"new"`, `"last"`.
    /// `start_sequence` or `start_time` override it, for replays.
    pub deliver: Deliver,
    /// Start a created consumer at this stream sequence. Default none.
    pub start_sequence: Option<u64>,
    /// Start a created consumer at the first message stored at or after this
    /// time (RFC 3339, `2026-01-02T03:04:05Z`). Default none.
    pub start_time: Option<String>,
    /// Milliseconds the server waits for an ack before delivering a message
    /// again; longer than the train can take with an event. Default 30000.
    pub ack_wait_ms: u64,
    /// Deliveries of a message before it is given up: a message rejected on
    /// its last delivery is termed. 0: no limit. Default 5.
    pub max_deliver: u32,
    /// Messages delivered and not yet acked, for all processes sharing the
    /// consumer: the server's backpressure. At least 1. Default 1000.
    pub max_ack_pending: u32,
    /// Messages asked for per pull request. At least 1. Default 100.
    pub batch: usize,
    /// Messages this process holds unacked at most (in the train and
    /// waiting for it): its own backpressure. At least `batch`. Default 1000.
    pub max_in_flight: usize,
    /// Milliseconds a rejected message waits before it comes back. Default 1000.
    pub nak_delay_ms: u64,
    /// The client's name, as the server shows it. Default `"tourbillon"`.
    pub name: String,
}

impl Default for ConsumeSettings {
    fn default() -> Self {
        ConsumeSettings {
            servers: super::default_servers(),
            auth: Auth::default(),
            stream: String::new(),
            create_stream: false,
            subjects: Vec::new(),
            consumer: String::new(),
            create_consumer: true,
            filter_subject: None,
            deliver: Deliver::All,
            start_sequence: None,
            start_time: None,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            max_ack_pending: 1000,
            batch: 100,
            max_in_flight: 1000,
            nak_delay_ms: 1000,
            name: "tourbillon".into(),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['.', ' ', '\t', '*', '>', '/', '\\'])
}

impl ConsumeSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        super::validate_servers(&self.servers)?;
        self.auth.validate()?;
        if !valid_name(&self.stream) {
            return Err(Error::setting(
                "stream",
                "required: a name without `.`, spaces or wildcards",
            ));
        }
        if !valid_name(&self.consumer) {
            return Err(Error::setting(
                "consumer",
                "required: a name without `.`, spaces or wildcards",
            ));
        }
        if self.start_sequence.is_some() && self.start_time.is_some() {
            return Err(Error::setting(
                "start_time",
                "give start_sequence or start_time, not both",
            ));
        }
        if self.start_sequence == Some(0) {
            return Err(Error::setting("start_sequence", "sequences start at 1"));
        }
        self.start_time()?;
        for (key, v) in [
            ("ack_wait_ms", self.ack_wait_ms),
            ("max_ack_pending", u64::from(self.max_ack_pending)),
            ("batch", self.batch as u64),
        ] {
            if v == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        if self.max_in_flight < self.batch {
            return Err(Error::setting("max_in_flight", "must be at least batch"));
        }
        Ok(())
    }

    pub(super) fn start_time(&self) -> Result<Option<time::OffsetDateTime>, Error> {
        self.start_time
            .as_deref()
            .map(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| Error::setting("start_time", format!("`{t}`: {e} (expected RFC 3339)")))
            })
            .transpose()
    }

    pub(super) fn subjects(&self) -> Vec<String> {
        if self.subjects.is_empty() {
            vec![format!("{}.>", self.stream)]
        } else {
            self.subjects.clone()
        }
    }

    pub(super) fn consumer_config(&self) -> pull::Config {
        let deliver_policy = match (self.start_sequence, self.start_time().ok().flatten(), self.deliver) {
            (Some(start_sequence), _, _) => DeliverPolicy::ByStartSequence { start_sequence },
            (_, Some(start_time), _) => DeliverPolicy::ByStartTime { start_time },
            (_, _, Deliver::All) => DeliverPolicy::All,
            (_, _, Deliver::New) => DeliverPolicy::New,
            (_, _, Deliver::Last) => DeliverPolicy::Last,
        };
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(self.ack_wait_ms),
            max_deliver: if self.max_deliver == 0 {
                -1
            } else {
                i64::from(self.max_deliver)
            },
            max_ack_pending: i64::from(self.max_ack_pending),
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            deliver_policy,
            ..Default::default()
        }
    }
}

/// One message as the supply hands it to its maker.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The event's id.
    pub id: EventId,
    /// The message's payload.
    pub payload: &'a [u8],
    /// The subject it was published to.
    pub subject: &'a Arc<str>,
    /// Its sequence in the stream.
    pub stream_sequence: u64,
    /// How many times it was delivered, this time included (from 1).
    pub delivered: u64,
}

/// Counts of a [`JetStreamSupply`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct SupplyStats {
    /// Messages received.
    pub received: Counter,
    /// Messages received again (delivered before).
    pub redelivered: Counter,
    /// Acks sent.
    pub acked: Counter,
    /// Naks sent.
    pub naked: Counter,
    /// Messages termed (rejected on their last delivery, or marked `term`).
    pub termed: Counter,
}

/// The remote's key, and the immediate event that flushes acks.
const REMOTE: u64 = 0;
const FLUSH: u64 = 1;

type Maker<D> = Box<dyn FnMut(Delivery<'_>) -> D>;

/// Delivers the messages of a durable JetStream pull consumer into the
/// train; see the [module docs](super).
pub struct JetStreamSupply<D = Event> {
    settings: ConsumeSettings,
    make: Maker<D>,
    tx: Option<UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Messages received and not yet emitted (the train is congested).
    backlog: VecDeque<Received>,
    /// Emitted and not yet done: each event's messages (reply subject, and
    /// how many times it was delivered).
    pending: Ledger<(Subject, u64)>,
    rejects: Rejects,
    /// Acks gathered this turn, and whether their flush is queued.
    acks: Vec<(Subject, AckKind)>,
    flush_queued: bool,
    subject: Option<Arc<str>>,
    waiting: bool,
    finishing: bool,
    stats: SupplyStats,
}

impl<D> fmt::Debug for JetStreamSupply<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JetStreamSupply")
            .field("settings", &self.settings)
            .field("pending", &self.pending.len())
            .field("backlog", &self.backlog.len())
            .finish_non_exhaustive()
    }
}

impl JetStreamSupply<Event> {
    /// Events with the payload as `raw`, the subject as `origin` and the
    /// stream sequence as `line`.
    pub fn new(settings: ConsumeSettings) -> Result<Self, Error> {
        JetStreamSupply::with_maker(settings, |d: Delivery<'_>| {
            Event::from_raw(d.id, d.payload.to_vec(), Some(Arc::clone(d.subject)), d.stream_sequence)
        })
    }
}

impl<D: 'static> JetStreamSupply<D> {
    /// Data made by `make` from each message.
    pub fn with_maker(settings: ConsumeSettings, make: impl FnMut(Delivery<'_>) -> D + 'static) -> Result<Self, Error> {
        settings.validate()?;
        Ok(JetStreamSupply {
            settings,
            make: Box::new(make),
            tx: None,
            thread: None,
            backlog: VecDeque::new(),
            pending: Ledger::new(),
            rejects: Rejects::default(),
            acks: Vec::new(),
            flush_queued: false,
            subject: None,
            waiting: false,
            finishing: false,
            stats: SupplyStats::default(),
        })
    }

    /// The handle cogs of this train reject events through.
    pub fn rejects(&self) -> Rejects {
        self.rejects.clone()
    }

    /// Its counters.
    pub fn stats(&self) -> SupplyStats {
        self.stats.clone()
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c);
        }
    }

    fn settle(&mut self, reply: Subject, delivered: u64, reject: Option<Reject>) {
        let last = self.settings.max_deliver > 0 && delivered >= u64::from(self.settings.max_deliver);
        let kind = match reject {
            None => {
                self.stats.acked.add(1);
                AckKind::Ack
            }
            Some(Reject::Nak(_)) if last => {
                self.stats.termed.add(1);
                log::warn!("jetstream_consume: a message rejected on its delivery {delivered} (the last) is termed");
                AckKind::Term
            }
            Some(Reject::Term) => {
                self.stats.termed.add(1);
                AckKind::Term
            }
            Some(Reject::Nak(delay)) => {
                self.stats.naked.add(1);
                AckKind::Nak(Some(delay.unwrap_or(Duration::from_millis(self.settings.nak_delay_ms))))
            }
        };
        self.acks.push((reply, kind));
    }

    /// Sends the acks gathered at the next turn, in one message: one wake
    /// of the helper for all the events a turn finished. While finishing
    /// (no new bindings) they go at once.
    fn flush_soon<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.acks.is_empty() || self.flush_queued {
            return;
        }
        if ctx.enqueue(FLUSH).is_ok() {
            self.flush_queued = true;
        } else {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.acks.is_empty() {
            let acks = std::mem::take(&mut self.acks);
            self.send(Command::Acks(acks));
        }
    }

    /// Emits the backlog while the train takes it.
    fn pump<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while let Some(r) = self.backlog.front() {
            if ctx.congested() {
                self.waiting = true;
                return;
            }
            let id = ctx.next_event_id();
            let subject = match &self.subject {
                Some(s) if **s == *r.subject.as_str() => Arc::clone(s),
                _ => {
                    let s: Arc<str> = Arc::from(r.subject.as_str());
                    self.subject = Some(Arc::clone(&s));
                    s
                }
            };
            let datum = (self.make)(Delivery {
                id,
                payload: &r.payload,
                subject: &subject,
                stream_sequence: r.stream_sequence,
                delivered: r.delivered,
            });
            let Some(r) = self.backlog.pop_front() else { break };
            match ctx.id_of(&datum) {
                Some(id) => {
                    self.pending.track(id, (r.reply, r.delivered));
                }
                // No id accessor: nothing will say it is done; ack now (at most once).
                None => self.settle(r.reply, r.delivered, None),
            }
            ctx.emit(datum);
        }
        self.flush_soon(ctx);
    }

    /// Finishing: what was received and not emitted goes back to the server
    /// at once, for another process to take.
    fn return_backlog(&mut self) {
        for r in std::mem::take(&mut self.backlog) {
            self.stats.naked.add(1);
            self.acks.push((r.reply, AckKind::Nak(None)));
        }
        self.flush();
    }
}

impl<D: 'static> Cog<D> for JetStreamSupply<D> {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let (tx, rx) = unbounded_channel();
        let remote = ctx.remote(REMOTE);
        let settings = self.settings.clone();
        match std::thread::Builder::new()
            .name("jetstream-consume".into())
            .spawn(move || helper(settings, rx, remote))
        {
            Ok(t) => {
                self.tx = Some(tx);
                self.thread = Some(t);
            }
            Err(e) => {
                log::error!("jetstream_consume: cannot start its thread: {e}");
                ctx.exhausted();
            }
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        if key == FLUSH {
            self.flush_queued = false;
            return self.flush();
        }
        let Fired::Message(m) = fired else { return };
        let Ok(incoming) = m.downcast::<Incoming>() else { return };
        match *incoming {
            Incoming::Messages(batch) => {
                for r in &batch {
                    self.stats.received.add(1);
                    if r.delivered > 1 {
                        self.stats.redelivered.add(1);
                    }
                }
                self.backlog.extend(batch);
                if self.finishing {
                    self.return_backlog();
                } else if !self.waiting {
                    self.pump(ctx);
                }
            }
            Incoming::Fatal(why) => {
                log::error!("jetstream_consume: {why}; this supply stops");
                ctx.exhausted();
            }
        }
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        let mut finished = Vec::new();
        if !self.pending.done(id, |m| finished.push(m)) {
            return;
        }
        let reject = self.rejects.take(id);
        for (reply, delivered) in finished {
            self.settle(reply, delivered, reject);
        }
        self.flush_soon(ctx);
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.pending.rename(old, new);
    }

    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.waiting && !ctx.congested() {
            self.waiting = false;
            self.pump(ctx);
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        self.send(Command::Stop);
        // Flushes the acks gathered too: a queued flush may not fire now.
        self.return_backlog();
        self.flush_queued = false;
        // The events in the train are acked as the cogs after this one
        // finish; the helper sends those acks before the process ends (done).
        Finish::Done
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        if !self.pending.is_empty() {
            log::info!(
                "jetstream_consume: {} messages not done at the end: the server delivers them again",
                self.pending.payloads()
            );
        }
        self.flush();
        // Closing the channel tells the helper to flush its acks and end;
        // wait for that, briefly: the acks are small and the server near.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::warn!("jetstream_consume: acks may not have reached the server before the end");
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "jetstream_consume servers={} {} stream={} consumer={} batch={} max_ack_pending={} ack_wait_ms={} max_deliver={}",
            s.servers.join(","),
            s.auth,
            s.stream,
            s.consumer,
            s.batch,
            s.max_ack_pending,
            s.ack_wait_ms,
            s.max_deliver
        )
    }
}
