//! The `jetstream_consume` supply: messages of a durable pull consumer as
//! events, acked when they are done.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::Subject;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tourbillon::{Cog, Context, Event, EventId, Finish, Fired, Next, Role};

use super::consume_settings::ConsumeSettings;
use super::pull_helper::{helper, Command, Incoming, Received};
use super::reject::{Reject, Rejects};
use crate::ledger::Ledger;
use crate::{Counter, Error};

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
