//! The handle a cog gets in its callbacks: the loop's core, what follows the
//! cog in its train, and the train's accessors.

use std::fmt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use inotify::WatchMask;
use mio::Interest;

use crate::accessor::IdGetter;
use crate::core::{Broadcast, CogPhase, Core, Notice};
use crate::error::Error;
use crate::event::EventId;
use crate::graph::{Outlet, Output};
use crate::recorder::Tap;
use crate::remote::CogRemote;
use crate::sources::timer::later;
use crate::sources::{CogAddr, FdId, ImmediateId, SignalId, Target, TimerId, WatchId};

/// What follows a cog in its train: where [`Context::emit`] sends data.
///
/// Implemented by the train's links; cogs only name it as a bound.
pub trait Next<D> {
    /// Hands one datum to the rest of the train.
    fn push(&mut self, datum: D, core: &mut Core, train: &TrainShared<D>);
    /// True if a cog in the rest of the train, or a train reading its
    /// outputs, is congested.
    fn congested(&self, train: &TrainShared<D>) -> bool;
}

/// What every cog of a train shares: the train's index, id accessor,
/// outputs and, if it is recorded, the recorder's tap.
pub struct TrainShared<D> {
    pub(crate) index: u32,
    pub(crate) ids: Option<IdGetter<D>>,
    pub(crate) tap: Option<Tap<D>>,
    /// The main output (the train's end) first, then the named ones.
    pub(crate) outputs: Vec<Outlet<D>>,
    /// How a datum is copied for a second reader of an output.
    pub(crate) clone: Option<fn(&D) -> D>,
    /// Some train reads one of its outputs.
    pub(crate) read: bool,
}

impl<D> TrainShared<D> {
    pub(crate) fn id_of(&self, datum: &D) -> Option<EventId> {
        self.ids.as_ref().and_then(|g| g.get(datum))
    }

    /// A datum leaves the train at `output`: to the trains that read it,
    /// or, if none does, it is done.
    #[inline]
    pub(crate) fn send(&self, output: usize, datum: D, core: &mut Core) {
        if self.read {
            return self.cross(output, datum, core);
        }
        self.done(&datum, core)
    }

    /// The datum ends here: it is done in this train.
    #[inline]
    fn done(&self, datum: &D, core: &mut Core) {
        if let Some(id) = self.id_of(datum) {
            core.notices
                .push_back((self.index, Notice::Cast(Broadcast::EventDone(id))));
        }
    }

    /// The datum crosses a junction, if some train reads `output`. Out of
    /// line, so that `emit` stays small enough to inline into the cogs.
    #[inline(never)]
    fn cross(&self, output: usize, datum: D, core: &mut Core) {
        let Some(out) = self.outputs.get(output).filter(|o| !o.readers.is_empty()) else {
            return self.done(&datum, core);
        };
        if let Some(id) = self.id_of(&datum).filter(|_| !out.exclusive) {
            core.graph.sent(self.index, id, &out.readers);
        }
        out.send(datum, self.clone, core);
    }

    /// True if a train reading one of this train's outputs has a full queue.
    #[inline]
    pub(crate) fn outputs_full(&self) -> bool {
        self.read && self.outputs.iter().any(|o| o.is_full())
    }
}

impl<D> std::fmt::Debug for TrainShared<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainShared")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<D, N: ?Sized> std::fmt::Debug for Context<'_, D, N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("train", &self.train.index)
            .field("cog", &self.cog)
            .finish_non_exhaustive()
    }
}

/// A context whose rest-of-train is a trait object (trains built at run time).
pub type DynContext<'a, D> = Context<'a, D, dyn Next<D> + 'a>;

/// The handle a cog gets in every callback.
///
/// Bindings made here are the cog's: their events come back to
/// [`Cog::fire`](crate::Cog::fire) with the `key` given, and the runtime
/// releases them when the cog finishes. New bindings are refused
/// ([`Error::Finishing`]) from the moment the cog gets `finish`.
pub struct Context<'a, D, N: ?Sized> {
    pub(crate) core: &'a mut Core,
    pub(crate) next: &'a mut N,
    pub(crate) train: &'a TrainShared<D>,
    pub(crate) cog: u32,
    /// The recorder's tap, in a supply's own callbacks when the train is
    /// recorded: what it emits there is recorded. `None` everywhere else,
    /// `process` included (a supply passing on what reached it), so the
    /// check in `emit` folds away where nothing is captured.
    tap: Option<&'a Tap<D>>,
}

impl<'a, D, N: Next<D> + ?Sized> Context<'a, D, N> {
    #[inline]
    pub(crate) fn new(core: &'a mut Core, next: &'a mut N, train: &'a TrainShared<D>, cog: u32) -> Self {
        Context {
            core,
            next,
            train,
            cog,
            tap: None,
        }
    }

    /// The context of a callback other than `process`: a supply's emits
    /// are recorded if its train is.
    #[inline]
    pub(crate) fn callback(
        core: &'a mut Core,
        next: &'a mut N,
        train: &'a TrainShared<D>,
        cog: u32,
        supply: bool,
    ) -> Self {
        Context {
            core,
            next,
            train,
            cog,
            tap: if supply { train.tap.as_ref() } else { None },
        }
    }

    /// Sends one datum down the train.
    #[inline(always)]
    pub fn emit(&mut self, datum: D) {
        if let Some(tap) = self.tap {
            self.core.tap(tap, true, self.cog, &datum, self.train.ids.as_ref());
        }
        self.next.push(datum, self.core, self.train)
    }

    /// True while a cog downstream cannot take more: stop reading and wait
    /// for [`Cog::resume`](crate::Cog::resume).
    pub fn congested(&self) -> bool {
        self.next.congested(self.train)
    }

    /// The named output `name` of this train (declared by a cog's
    /// [`outputs`](crate::Cog::outputs)), to [`emit_to`](Self::emit_to).
    pub fn output(&self, name: &str) -> Option<Output> {
        let i = self.train.outputs.iter().skip(1).position(|o| o.name == name)?;
        Some(Output(i as u32 + 1))
    }

    /// Sends one datum out of the train at a named output, past the cogs
    /// after this one: to every train that reads that output, or, if none
    /// does, it is done.
    pub fn emit_to(&mut self, output: Output, datum: D) {
        self.train.send(output.0 as usize, datum, self.core)
    }

    /// Whether a train reading `output` has a full queue (send there
    /// anyway: it is bounded by the batch a supply is in).
    pub fn output_congested(&self, output: Output) -> bool {
        self.train.outputs.get(output.0 as usize).is_some_and(|o| o.is_full())
    }

    /// Drops a datum for good, reporting it done so durable supplies advance.
    pub fn discard(&mut self, datum: &D) {
        if let Some(id) = self.id_of(datum) {
            self.event_done(id)
        }
    }

    /// The datum's id, through the train's id accessor (if it has one).
    #[inline]
    pub fn id_of(&self, datum: &D) -> Option<EventId> {
        self.train.id_of(datum)
    }

    /// Broadcasts `event_done(id)` to every cog of this train (after the
    /// current callback returns).
    pub fn event_done(&mut self, id: EventId) {
        self.notify(Notice::Cast(Broadcast::EventDone(id)))
    }

    /// Broadcasts `event_rename(old, new)` to every cog of this train.
    pub fn event_rename(&mut self, old: EventId, new: EventId) {
        self.notify(Notice::Cast(Broadcast::EventRename(old, new)))
    }

    /// Tells the cogs of this train that this cog has room again (broadcasts `resume`).
    pub fn resume_upstream(&mut self) {
        self.notify(Notice::Cast(Broadcast::Resume))
    }

    fn notify(&mut self, notice: Notice) {
        self.core.notices.push_back((self.train.index, notice))
    }

    /// Where this cog sits.
    pub fn addr(&self) -> CogAddr {
        CogAddr {
            train: self.train.index,
            cog: self.cog,
        }
    }

    /// The loop's core, for what this context does not wrap. Bindings made
    /// on the core directly belong to closures, not to this cog.
    pub fn core(&mut self) -> &mut Core {
        self.core
    }

    /// A fresh event id.
    pub fn next_event_id(&mut self) -> EventId {
        self.core.next_event_id()
    }

    /// An empty byte buffer to fill, reused if a drain gave one back
    /// ([`Core::buffer`]).
    #[inline]
    pub fn buffer(&mut self) -> Vec<u8> {
        self.core.buffer()
    }

    /// Gives back the byte buffer of a datum this cog is through with (it
    /// wrote the bytes), for a supply to fill again ([`Core::recycle`]).
    #[inline]
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.core.recycle(buf)
    }

    /// The loop's clock.
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// The wall-clock time, replayed as it was live ([`Core::wall_now`]).
    pub fn wall_now(&self) -> std::time::SystemTime {
        self.core.wall_now()
    }

    /// Asks the whole escapement to finish (every train, in order).
    pub fn finish_all(&mut self) {
        self.core.finish()
    }

    /// This cog cannot do its work and the process should not run on
    /// without it (a supply that cannot listen on its socket): finishes the
    /// whole escapement, in order, and [`Escapement::run`](crate::Escapement::run)
    /// returns [`Exit::Failed`](crate::Exit::Failed) with `why`, so that a
    /// daemon exits with an error rather than as if all went well.
    pub fn fail(&mut self, why: impl fmt::Display) {
        self.core.failures.push((self.train.index, self.cog, why.to_string()));
        self.core.finish()
    }

    /// A supply says it has nothing more to bring; when every supply of the
    /// escapement has said so, the escapement finishes (batch mode).
    pub fn exhausted(&mut self) {
        self.notify(Notice::Exhausted(self.cog))
    }

    /// Ends a [`Finish::Pending`](crate::Finish::Pending): this cog is through.
    pub fn finished(&mut self) {
        let addr = self.addr();
        if let Some(phase) = self
            .core
            .cog_phases
            .get_mut(addr.train as usize)
            .and_then(|t| t.get_mut(addr.cog as usize))
        {
            if *phase == CogPhase::Pending {
                *phase = CogPhase::Finished;
                self.notify(Notice::Finished(addr.cog));
            }
        }
    }

    fn target(&self, key: u64) -> Result<Target, Error> {
        let addr = self.addr();
        self.core.check_bind(Some(addr))?;
        Ok(Target::Cog { addr, key })
    }

    /// Queues an immediate event for the next turn.
    pub fn enqueue(&mut self, key: u64) -> Result<ImmediateId, Error> {
        let target = self.target(key)?;
        Ok(self.core.immediates.enqueue(target))
    }

    /// Takes a queued immediate event back.
    pub fn dequeue(&mut self, id: ImmediateId) -> bool {
        self.core.dequeue(id)
    }

    /// Watches `fd` for `interest` (edge-triggered: drain until `WouldBlock`).
    pub fn register(&mut self, fd: &impl AsRawFd, interest: Interest, key: u64) -> Result<FdId, Error> {
        let target = self.target(key)?;
        self.core.bind_fd(fd.as_raw_fd(), interest, target)
    }

    /// Changes the interest of a registered fd.
    pub fn reregister(&mut self, id: FdId, interest: Interest) -> Result<(), Error> {
        self.core.reregister(id, interest)
    }

    /// Stops watching an fd.
    pub fn unregister(&mut self, id: FdId) -> bool {
        self.core.unregister(id)
    }

    /// Watches a path through inotify; fails if inotify is not usable.
    pub fn watch(&mut self, path: impl AsRef<Path>, mask: WatchMask, key: u64) -> Result<WatchId, Error> {
        let target = self.target(key)?;
        self.core.bind_watch(path.as_ref(), mask, None, target)
    }

    /// Watches a path through inotify, or by polling every `interval`.
    pub fn watch_or_poll(
        &mut self,
        path: impl AsRef<Path>,
        mask: WatchMask,
        interval: Duration,
        key: u64,
    ) -> Result<WatchId, Error> {
        let target = self.target(key)?;
        self.core.bind_watch(path.as_ref(), mask, Some(interval), target)
    }

    /// Removes a watch.
    pub fn unwatch(&mut self, id: WatchId) -> bool {
        self.core.unwatch(id)
    }

    /// Fires on each delivery of `signal`.
    pub fn on_signal(&mut self, signal: i32, key: u64) -> Result<SignalId, Error> {
        let target = self.target(key)?;
        self.core.bind_signal(signal, target)
    }

    /// Removes a signal binding.
    pub fn off_signal(&mut self, id: SignalId) -> bool {
        self.core.off_signal(id)
    }

    /// Fires once, `delay` from now.
    pub fn after(&mut self, delay: Duration, key: u64) -> Result<TimerId, Error> {
        let deadline = later(self.now(), delay);
        self.at(deadline, key)
    }

    /// Fires once at `deadline`.
    pub fn at(&mut self, deadline: Instant, key: u64) -> Result<TimerId, Error> {
        let target = self.target(key)?;
        Ok(self.core.timers.arm(deadline, None, target))
    }

    /// Fires every `period` until cancelled.
    pub fn every(&mut self, period: Duration, key: u64) -> Result<TimerId, Error> {
        let target = self.target(key)?;
        let first = later(self.now(), period);
        Ok(self.core.timers.arm(first, Some(period), target))
    }

    /// Cancels a timer in O(1).
    pub fn cancel(&mut self, id: TimerId) -> bool {
        self.core.cancel(id)
    }

    /// Moves a timer to a new deadline; a one-shot timer firing may re-arm
    /// itself so. False if it is gone.
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.core.reschedule(id, deadline)
    }

    /// A handle other threads use to send messages to this cog; they arrive
    /// as [`Fired::Message`](crate::Fired::Message) with `key`.
    pub fn remote(&self, key: u64) -> CogRemote {
        CogRemote::new(self.core.remote(), self.addr(), key)
    }
}
