//! The loop's shared state and the binding API closures and cogs use.

use std::collections::VecDeque;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use inotify::WatchMask;
use mio::unix::SourceFd;
use mio::Interest;

use crate::accessor::IdGetter;
use crate::error::Error;
use crate::event::EventId;
use crate::graph::{Graph, QueueFill};
use crate::pool::BufferPool;
use crate::recorder::{Recorder, Seen, Tap};
use crate::sources::fd::FdSlot;
use crate::sources::immediate::Immediates;
use crate::sources::inbox::Inbox;
use crate::sources::signals::SignalSources;
use crate::sources::timer::{later, Timers};
use crate::sources::watch::Watches;
use crate::sources::{CogAddr, FdId, Fired, ImmediateId, Ready, SignalId, Target, TimerId, WatchEvent, WatchId};
use crate::token::{Key, Slab};

pub(crate) type Callback = Box<dyn FnMut(&mut Core, Fired)>;

/// What the loop tells about itself, readable from any thread while it
/// runs (a metrics endpoint, a watchdog): clones share the counts, the loop
/// is the only writer.
#[derive(Clone, Debug, Default)]
pub struct LoopGauges(std::sync::Arc<GaugeCells>);

#[derive(Debug, Default)]
struct GaugeCells {
    turns: std::sync::atomic::AtomicU64,
    idle_nanos: std::sync::atomic::AtomicU64,
    finishing: std::sync::atomic::AtomicBool,
}

impl LoopGauges {
    /// How many times the loop has polled.
    pub fn turns(&self) -> u64 {
        self.0.turns.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The time the loop spent waiting in poll, in all: the rest of its
    /// life it was busy.
    pub fn idle(&self) -> Duration {
        Duration::from_nanos(self.0.idle_nanos.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Whether the finish began (the loop no longer takes new data in).
    pub fn finishing(&self) -> bool {
        self.0.finishing.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn polled(&self, turns: u64, idle: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.turns.store(turns, Relaxed);
        // One writer: a load and a store, no locked instruction.
        let nanos = self.0.idle_nanos.load(Relaxed).wrapping_add(idle.as_nanos() as u64);
        self.0.idle_nanos.store(nanos, Relaxed);
    }

    pub(crate) fn finish_began(&self) {
        self.0.finishing.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Work another thread hands in through a [`Remote`](crate::Remote).
pub(crate) type Task = Box<dyn FnOnce(&mut Core) + Send>;

/// Where the loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Supplies bring data in; anything may bind.
    Running,
    /// `finish` is going through the trains: cogs flush and release, and a
    /// cog that got `finish` may not bind anything new.
    Finishing,
    /// `done` was delivered; the loop returns.
    Done,
}

/// Where one cog is in the finish protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CogPhase {
    Running,
    /// Its `finish` returned [`Finish::Pending`](crate::Finish::Pending).
    Pending,
    Finished,
}

/// The loop's clock: real time read once per turn, or virtual time that a
/// replay drives. It never goes back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    now: Instant,
    virtual_time: bool,
}

impl Clock {
    /// Real time.
    pub(crate) fn real() -> Clock {
        Clock {
            now: Instant::now(),
            virtual_time: false,
        }
    }

    /// Virtual time, reading `start` until moved.
    pub(crate) fn virtual_from(start: Instant) -> Clock {
        Clock {
            now: start,
            virtual_time: true,
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn is_virtual(&self) -> bool {
        self.virtual_time
    }

    /// Moves the clock to `t` if that is later.
    pub(crate) fn reach(&mut self, t: Instant) {
        self.now = self.now.max(t);
    }

    /// A real clock reads the time; a virtual one stays where it is.
    pub(crate) fn read(&mut self) {
        if !self.virtual_time {
            self.reach(Instant::now())
        }
    }
}

/// A broadcast to every cog of a train that handles it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    /// [`Cog::event_done`](crate::Cog::event_done).
    EventDone(EventId),
    /// [`Cog::event_rename`](crate::Cog::event_rename): old, new.
    EventRename(EventId, EventId),
    /// [`Cog::resume`](crate::Cog::resume).
    Resume,
}

/// What is queued for a train: a broadcast, or the loop's own bookkeeping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notice {
    Cast(Broadcast),
    /// Internal: a pending cog completed its finish.
    Finished(u32),
    /// Internal: a supply has nothing more to bring.
    Exhausted(u32),
}

/// The loop's state apart from the trains: sources, bindings, phase.
///
/// Closures bound to the loop receive `&mut Core`; cogs reach it through
/// their [`Context`](crate::Context). Every binding returns an id that
/// cancels it; ids are generational, so a stale id does nothing.
pub struct Core {
    pub(crate) registry: mio::Registry,
    pub(crate) fds: Slab<FdSlot>,
    pub(crate) timers: Timers,
    pub(crate) immediates: Immediates,
    pub(crate) watches: Watches,
    pub(crate) signals: SignalSources,
    pub(crate) inbox: Inbox<Task>,
    pub(crate) calls: Slab<Option<Callback>>,
    pub(crate) notices: VecDeque<(u32, Notice)>,
    pub(crate) phase: Phase,
    pub(crate) cog_phases: Vec<Vec<CogPhase>>,
    pub(crate) finish_requested: bool,
    /// What cogs said failed ([`Context::fail`](crate::Context::fail)):
    /// train, cog, why.
    pub(crate) failures: Vec<(u32, u32, String)>,
    pub(crate) finish_deadline: Duration,
    pub(crate) clock: Clock,
    /// How many timers fired at one instant (not counting those of supplies
    /// a replay swaps out): a capture records where data fell among them.
    pub(crate) fired: (Instant, u32),
    /// The recorder told of trains and data, if the escapement records.
    pub(crate) recorder: Option<Box<dyn Recorder>>,
    /// The last event id minted.
    pub(crate) next_id: u64,
    /// The junctions between trains.
    pub(crate) graph: Graph,
    /// Trains to replace, one replacement at a time ([`Core::replace_trains`]).
    pub(crate) replacements: VecDeque<Replacement>,
    /// What the wall clock read when the loop's clock read the instant, in
    /// a run that is captured or replayed ([`Core::wall_now`]).
    pub(crate) wall_anchor: Option<(Instant, SystemTime)>,
    /// Turns, idle time and phase, for other threads.
    pub(crate) gauges: LoopGauges,
    /// Byte buffers drains gave back, for supplies to fill again.
    pub(crate) buffers: BufferPool,
}

/// What [`Core::replace_trains`] asked: the trains to finish, and what to
/// do once they are gone.
pub(crate) struct Replacement {
    pub(crate) trains: Vec<String>,
    pub(crate) then: ReplaceThen,
}

/// Called with the escapement and the names of the trains retired, once
/// they are done and dropped.
pub(crate) type ReplaceThen = Box<dyn FnOnce(&mut crate::Escapement, &[String])>;

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("phase", &self.phase)
            .field("fds", &self.fds.len())
            .field("timers", &self.timers.live())
            .field("watches", &self.watches.slots.len())
            .field("inotify", &self.inotify())
            .field("clock", &self.clock)
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl Core {
    pub(crate) fn new(
        registry: mio::Registry,
        watches: Watches,
        signals: SignalSources,
        inbox: Inbox<Task>,
        finish_deadline: Duration,
        clock: Clock,
    ) -> Core {
        Core {
            registry,
            fds: Slab::default(),
            timers: Timers::default(),
            immediates: Immediates::default(),
            watches,
            signals,
            inbox,
            calls: Slab::default(),
            notices: VecDeque::new(),
            phase: Phase::Running,
            cog_phases: Vec::new(),
            finish_requested: false,
            failures: Vec::new(),
            finish_deadline,
            fired: (clock.now(), 0),
            clock,
            recorder: None,
            next_id: 0,
            graph: Graph::default(),
            replacements: VecDeque::new(),
            wall_anchor: None,
            gauges: LoopGauges::default(),
            buffers: BufferPool::default(),
        }
    }

    // ---- state -------------------------------------------------------------

    /// Where the loop is in its life.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The loop's turns, idle time and phase, readable from other threads.
    pub fn gauges(&self) -> LoopGauges {
        self.gauges.clone()
    }

    /// The input queues of trains that read other trains: how full each is.
    pub fn queues(&self) -> Vec<QueueFill> {
        self.graph.gauges.iter().map(|g| g.fill()).collect()
    }

    /// Copies of data in flight below the junctions between trains (sent
    /// to a train that reads another, not yet done there).
    pub fn in_flight(&self) -> usize {
        self.graph.in_flight()
    }

    /// Whether inotify is usable. When false, watch paths with
    /// [`watch_or_poll`](Self::watch_or_poll) or poll them yourself.
    pub fn inotify(&self) -> bool {
        self.watches.inotify.is_some()
    }

    /// The loop's clock, read once per turn: the time the turn began, or,
    /// in a timer's callback, the timer's deadline (never earlier than the
    /// clock read before). In a replay it is virtual: the recorded time.
    /// Timers armed from it (`after`, `every`) keep to it, so they fire at
    /// the same moments live and in a replay.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// True in a replay: the clock is virtual, driven by a capture (see
    /// [`capture`](crate::capture)).
    pub fn virtual_clock(&self) -> bool {
        self.clock.is_virtual()
    }

    /// A fresh event id, unique within this process run.
    pub fn next_event_id(&mut self) -> EventId {
        self.next_id += 1;
        EventId(self.next_id)
    }

    /// The wall-clock time, for cogs that write it into data (a received
    /// time). In a captured run it follows the loop's clock from the time
    /// the run began (which the capture records), so that a replay, whose
    /// clock is virtual, gives every datum the time it got live; otherwise
    /// it is the system's time.
    pub fn wall_now(&self) -> SystemTime {
        match self.wall_anchor {
            Some((at, wall)) => wall + self.clock.now().saturating_duration_since(at),
            None => SystemTime::now(),
        }
    }

    /// An empty byte buffer, one a drain gave back with
    /// [`recycle`](Self::recycle) if there is one: a supply fills it
    /// instead of allocating a new one per datum.
    #[inline]
    pub fn buffer(&mut self) -> Vec<u8> {
        self.buffers.take()
    }

    /// Gives back the byte buffer of a datum that is through (written by a
    /// drain), for [`buffer`](Self::buffer) to hand out again. The pool is
    /// bounded (see [`pool`](crate::pool)): past its caps the buffer is
    /// freed.
    #[inline]
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.buffers.give(buf)
    }

    /// The buffers given back and not yet taken again, and their capacity
    /// in bytes, in all.
    pub fn pooled_buffers(&self) -> (usize, usize) {
        self.buffers.held()
    }

    /// Starts the graceful finish: `finish` through every train in order,
    /// then `done`, then [`Escapement::run`](crate::Escapement::run) returns.
    pub fn finish(&mut self) {
        if self.phase == Phase::Running {
            self.finish_requested = true;
        }
    }

    /// Finishes the named trains while the others run on, and calls `then`
    /// once they are done and dropped (their files closed, their locks
    /// released), with the escapement, to place what replaces them with
    /// [`add_train`](crate::Escapement::add_train), and the names of the
    /// trains retired.
    ///
    /// The trains retired are the ones named and every train connected to
    /// them through inputs, directly or not: a train is never cut off from
    /// the trains it reads or that read it while data cross between them.
    /// Names of no running train are left out (a train a reload adds). They
    /// finish as at the end of a run: `finish` through their cogs in order
    /// (a train that reads others after them), then `done`, within the
    /// finish deadline (late cogs are named in the log and get `done`
    /// anyway). Replacements happen one at a time, in the order asked.
    ///
    /// # Errors
    /// [`Error::Finishing`] once the loop finishes: a finish takes every train.
    pub fn replace_trains(
        &mut self,
        trains: Vec<String>,
        then: impl FnOnce(&mut crate::Escapement, &[String]) + 'static,
    ) -> Result<(), Error> {
        if self.phase != Phase::Running || self.finish_requested {
            return Err(Error::Finishing);
        }
        self.replacements.push_back(Replacement {
            trains,
            then: Box::new(then),
        });
        Ok(())
    }

    // ---- closure bindings ------------------------------------------------

    fn call(&mut self, f: impl FnMut(&mut Core, Fired) + 'static) -> Result<Target, Error> {
        self.check_bind(None)?;
        Ok(Target::Call(self.calls.insert(Some(Box::new(f)))))
    }

    fn call_once(&mut self, f: impl FnOnce(&mut Core) + 'static) -> Result<Target, Error> {
        let mut f = Some(f);
        self.call(move |core, _| {
            if let Some(f) = f.take() {
                f(core)
            }
        })
    }

    /// Runs `f` at the next turn of the loop.
    pub fn enqueue(&mut self, f: impl FnOnce(&mut Core) + 'static) -> Result<ImmediateId, Error> {
        let target = self.call_once(f)?;
        Ok(self.immediates.enqueue(target))
    }

    /// Takes a queued immediate event back; false if it already ran or was dequeued.
    pub fn dequeue(&mut self, id: ImmediateId) -> bool {
        match self.immediates.dequeue(id) {
            Some(target) => {
                self.drop_target(target);
                true
            }
            None => false,
        }
    }

    /// Calls `f` whenever `fd` becomes ready for `interest`. Edge-triggered:
    /// `f` must read or write until `WouldBlock`, or re-queue itself.
    pub fn register(
        &mut self,
        fd: &impl AsRawFd,
        interest: Interest,
        mut f: impl FnMut(&mut Core, FdId, Ready) + 'static,
    ) -> Result<FdId, Error> {
        let target = self.call(move |core, fired| {
            if let Fired::Ready(id, ready) = fired {
                f(core, id, ready)
            }
        })?;
        self.bind_fd(fd.as_raw_fd(), interest, target)
    }

    /// Changes the interest of a registered fd.
    pub fn reregister(&mut self, id: FdId, interest: Interest) -> Result<(), Error> {
        let slot = self.fds.get(id.0).ok_or(Error::Stale)?;
        self.registry
            .reregister(&mut SourceFd(&slot.fd), id.0.token(), interest)
            .map_err(|source| Error::Io {
                what: format!("re-registering fd {}", slot.fd),
                source,
            })
    }

    /// Stops watching an fd (the fd itself stays open); false if it was not registered.
    pub fn unregister(&mut self, id: FdId) -> bool {
        let Some(slot) = self.fds.remove(id.0) else {
            return false;
        };
        // ENOENT/EBADF: the fd was closed first, which removed it from epoll.
        let _ = self.registry.deregister(&mut SourceFd(&slot.fd));
        self.drop_target(slot.target);
        true
    }

    /// Calls `f` for every inotify event on `path` that `mask` selects.
    /// Fails when inotify is not usable; see [`watch_or_poll`](Self::watch_or_poll).
    pub fn watch(
        &mut self,
        path: impl AsRef<Path>,
        mask: WatchMask,
        f: impl FnMut(&mut Core, WatchId, WatchEvent) + 'static,
    ) -> Result<WatchId, Error> {
        let target = self.watch_call(f)?;
        self.bind_watch(path.as_ref(), mask, None, target)
    }

    /// Like [`watch`](Self::watch), but polls the path's metadata every
    /// `interval` when inotify is not usable or the watch cannot be added.
    pub fn watch_or_poll(
        &mut self,
        path: impl AsRef<Path>,
        mask: WatchMask,
        interval: Duration,
        f: impl FnMut(&mut Core, WatchId, WatchEvent) + 'static,
    ) -> Result<WatchId, Error> {
        let target = self.watch_call(f)?;
        self.bind_watch(path.as_ref(), mask, Some(interval), target)
    }

    fn watch_call(&mut self, mut f: impl FnMut(&mut Core, WatchId, WatchEvent) + 'static) -> Result<Target, Error> {
        self.call(move |core, fired| {
            if let Fired::Watch(id, event) = fired {
                f(core, id, event)
            }
        })
    }

    /// Removes a watch; false if it was already gone.
    pub fn unwatch(&mut self, id: WatchId) -> bool {
        match self.watches.remove(id) {
            Some((target, timer)) => {
                if let Some(timer) = timer {
                    self.timers.cancel(timer);
                }
                self.drop_target(target);
                true
            }
            None => false,
        }
    }

    /// Calls `f` each time `signal` is delivered to the process.
    pub fn on_signal(&mut self, signal: i32, mut f: impl FnMut(&mut Core, i32) + 'static) -> Result<SignalId, Error> {
        let target = self.call(move |core, fired| {
            if let Fired::Signal(_, sig) = fired {
                f(core, sig)
            }
        })?;
        self.bind_signal(signal, target)
    }

    /// Removes a signal binding; false if it was already gone.
    pub fn off_signal(&mut self, id: SignalId) -> bool {
        match self.signals.handlers.remove(id.0) {
            Some((_, target)) => {
                self.drop_target(target);
                true
            }
            None => false,
        }
    }

    /// Runs `f` once, `delay` from now.
    pub fn after(&mut self, delay: Duration, f: impl FnOnce(&mut Core) + 'static) -> Result<TimerId, Error> {
        self.at(later(self.now(), delay), f)
    }

    /// Runs `f` once at `deadline`.
    pub fn at(&mut self, deadline: Instant, f: impl FnOnce(&mut Core) + 'static) -> Result<TimerId, Error> {
        let target = self.call_once(f)?;
        Ok(self.timers.arm(deadline, None, target))
    }

    /// Runs `f` every `period`, first `period` from now, until cancelled.
    pub fn every(
        &mut self,
        period: Duration,
        mut f: impl FnMut(&mut Core, TimerId) + 'static,
    ) -> Result<TimerId, Error> {
        let target = self.call(move |core, fired| {
            if let Fired::Timer(id) = fired {
                f(core, id)
            }
        })?;
        Ok(self.timers.arm(later(self.now(), period), Some(period), target))
    }

    /// Cancels a timer in O(1); false if it already fired (one-shot) or was cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        match self.timers.cancel(id) {
            Some(target) => {
                self.drop_target(target);
                true
            }
            None => false,
        }
    }

    /// Moves an armed timer to a new deadline without re-binding it; a
    /// one-shot timer's own callback may re-arm it so. False if it is gone
    /// (cancelled, or a one-shot timer whose callback returned).
    pub fn reschedule(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.timers.rearm(id, deadline)
    }

    /// Live timers, and the entries of the timer heap (live and stale):
    /// the second stays within a constant factor of the first.
    pub fn timer_counts(&self) -> (usize, usize) {
        (self.timers.live(), self.timers.heap_len())
    }

    // ---- recording -------------------------------------------------------

    /// Tells the recorder of a datum that a recorded train's supply `cog`
    /// emitted (`input`) or that reached its drain `cog`. Out of line: only
    /// recorded trains call it.
    #[inline(never)]
    pub(crate) fn tap<D>(&mut self, tap: &Tap<D>, input: bool, cog: u32, datum: &D, ids: Option<&IdGetter<D>>) {
        if !(if input { tap.wants.inputs } else { tap.wants.outputs }) {
            return;
        }
        let Some(recorder) = self.recorder.as_mut() else { return };
        let at = self.clock.now();
        let (instant, fired) = self.fired;
        let seen = Seen {
            input,
            train: tap.train,
            cog,
            at,
            id: ids.and_then(|g| g.get(datum)),
            minted: self.next_id,
            ties: if input && instant == at { fired } else { 0 },
        };
        if recorder.datum(&seen, &mut |buf| (tap.encode)(datum, buf)).is_err() {
            self.recorder = None;
        }
    }

    // ---- bindings for any target ----------------------------------------

    /// Refuses new bindings once finishing reached the binder: closures as
    /// soon as the loop finishes, a cog from the moment it gets `finish`
    /// (it may keep using, re-arming and re-registering what it holds).
    pub(crate) fn check_bind(&self, cog: Option<CogAddr>) -> Result<(), Error> {
        let ok = match (self.phase, cog) {
            // A train being replaced finishes while the loop runs.
            (Phase::Running, Some(addr)) => self.cog_phase(addr) == CogPhase::Running,
            (Phase::Running, None) => true,
            (Phase::Finishing, Some(addr)) => self.cog_phase(addr) == CogPhase::Running,
            (Phase::Finishing, None) | (Phase::Done, _) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Finishing)
        }
    }

    pub(crate) fn cog_phase(&self, addr: CogAddr) -> CogPhase {
        self.cog_phases
            .get(addr.train as usize)
            .and_then(|t| t.get(addr.cog as usize))
            .copied()
            .unwrap_or(CogPhase::Running)
    }

    pub(crate) fn bind_fd(&mut self, fd: RawFd, interest: Interest, target: Target) -> Result<FdId, Error> {
        let key = self.fds.insert(FdSlot { fd, target });
        match self.registry.register(&mut SourceFd(&fd), key.token(), interest) {
            Ok(()) => Ok(FdId(key)),
            Err(source) => {
                self.fds.remove(key);
                self.drop_target(target);
                Err(Error::Io {
                    what: format!("registering fd {fd}"),
                    source,
                })
            }
        }
    }

    pub(crate) fn bind_watch(
        &mut self,
        path: &Path,
        mask: WatchMask,
        poll: Option<Duration>,
        target: Target,
    ) -> Result<WatchId, Error> {
        let err = match self.watches.add_inotify(path, mask, target) {
            Ok(id) => return Ok(id),
            Err(e) => e,
        };
        match poll {
            Some(interval) => {
                if self.inotify() {
                    log::debug!("watching {} by polling: {err}", path.display());
                }
                let now = self.now();
                let timers = &mut self.timers;
                Ok(self.watches.add_poll(path, mask, target, |key| {
                    timers.arm(later(now, interval), Some(interval), Target::PollWatch(key))
                }))
            }
            None => {
                self.drop_target(target);
                Err(Error::Watch {
                    path: path.to_path_buf(),
                    source: err,
                })
            }
        }
    }

    pub(crate) fn bind_signal(&mut self, signal: i32, target: Target) -> Result<SignalId, Error> {
        if let Err(source) = self.signals.ensure(signal) {
            self.drop_target(target);
            return Err(Error::Signal { signal, source });
        }
        Ok(SignalId(self.signals.handlers.insert((signal, target))))
    }

    /// Frees the callback behind a target that no binding uses any more.
    pub(crate) fn drop_target(&mut self, target: Target) {
        if let Target::Call(key) = target {
            self.calls.remove(key);
        }
    }

    /// Removes every binding a cog holds: it finished.
    pub(crate) fn release(&mut self, addr: CogAddr) {
        for key in self.fds.keys_where(|s| s.target.is_cog(addr)) {
            self.unregister(FdId(key));
        }
        for key in self.timers.slots.keys_where(|s| s.target.is_cog(addr)) {
            self.timers.cancel(TimerId(key));
        }
        for key in self.immediates.slots.keys_where(|t| t.is_cog(addr)) {
            self.immediates.dequeue(ImmediateId(key));
        }
        for key in self.watches.slots.keys_where(|s| s.target.is_cog(addr)) {
            self.unwatch(WatchId(key));
        }
        for key in self.signals.handlers.keys_where(|(_, t)| t.is_cog(addr)) {
            self.signals.handlers.remove(key);
        }
    }

    pub(crate) fn take_call(&mut self, key: Key) -> Option<Callback> {
        self.calls.get_mut(key).and_then(Option::take)
    }

    /// Puts a callback back after it ran, unless its binding went meanwhile.
    pub(crate) fn restore_call(&mut self, key: Key, f: Callback) {
        if let Some(slot) = self.calls.get_mut(key) {
            *slot = Some(f);
        }
    }
}
