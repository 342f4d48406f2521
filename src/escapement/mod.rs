//! The escapement: the one event loop of a process.

use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use inotify::Inotify;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::capture::{CaptureError, CaptureOptions, CaptureWriter, Codec, Driver, Due, ReplayOptions, Tap};
use crate::core::{Clock, CogPhase, Notice, Phase};
use crate::sources::remote::{Inbox, RemoteMsg};
use crate::sources::signals::SignalSources;
use crate::sources::timer::later;
use crate::sources::watch::Watches;
use crate::sources::{CogAddr, FdId, Fired, Ready, Remote, Target};
use crate::token::{self, Key};
use crate::train::{AnyTrain, Chain, Placed};
use crate::CogInfo;
use crate::{Core, Error, Finish, Role, Train, TrainShared};

static ALIVE: AtomicBool = AtomicBool::new(false);

/// Work handled per turn before the loop polls again, for fairness; also
/// how many busy turns a replay lets pass before virtual time moves anyway.
const TURN_BUDGET: usize = 1024;

/// How [`Escapement::run`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every cog finished and got `done`.
    Clean,
    /// The finish deadline passed; these cogs (`train NAME cog N (description)`,
    /// counting from 1) had not finished. `done` was still delivered to every cog.
    Deadline(Vec<String>),
}

/// Settings of an [`Escapement`].
#[derive(Clone, Debug)]
pub struct Builder {
    inotify: bool,
    graceful_signals: bool,
    finish_deadline: Duration,
    capture: Option<CaptureOptions>,
    replay: Option<ReplayOptions>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            inotify: std::env::var_os("TOURBILLON_NO_INOTIFY").is_none(),
            graceful_signals: true,
            finish_deadline: Duration::from_secs(60),
            capture: None,
            replay: None,
        }
    }
}

impl Builder {
    /// Use inotify if the system allows (default: yes, unless the
    /// environment variable `TOURBILLON_NO_INOTIFY` is set). Off forces the
    /// polling fallback, for tests and for file systems inotify cannot see.
    pub fn inotify(mut self, on: bool) -> Self {
        self.inotify = on;
        self
    }

    /// SIGTERM and SIGINT start a graceful finish, a second SIGINT exits
    /// at once (default: yes).
    pub fn graceful_signals(mut self, on: bool) -> Self {
        self.graceful_signals = on;
        self
    }

    /// How long `finish` may take before the loop forces `done` (default
    /// 60 s, real time even in a replay).
    pub fn finish_deadline(mut self, deadline: Duration) -> Self {
        self.finish_deadline = deadline;
        self
    }

    /// Captures the [capturable](Train::capturable) trains of this
    /// escapement (default: no). A capture that fails to write stops with
    /// an error logged; the run goes on. See [`capture`](crate::capture).
    pub fn capture(mut self, options: CaptureOptions) -> Self {
        self.capture = Some(options);
        self
    }

    /// Replays a capture (default: no): the loop's clock is virtual, and the
    /// supplies of [capturable](Train::capturable) trains are swapped for
    /// what the capture recorded of the train of the same name. See
    /// [`capture`](crate::capture).
    pub fn replay(mut self, options: ReplayOptions) -> Self {
        self.replay = Some(options);
        self
    }

    /// Creates the escapement; fails if one already exists in this process,
    /// or if the capture cannot be created or the replayed one read.
    pub fn build(self) -> Result<Escapement, Error> {
        if ALIVE.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyExists);
        }
        let guard = AliveGuard;
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| Error::Io { what, source }
        };
        let poll = Poll::new().map_err(io("creating the poll instance"))?;
        let registry = poll.registry().try_clone().map_err(io("cloning the registry"))?;
        let waker = Arc::new(Waker::new(&registry, token::WAKER).map_err(io("creating the waker"))?);
        let (tx, rx) = mpsc::channel();
        let inbox = Inbox {
            rx,
            remote: Remote::new(tx, waker),
        };
        let inotify = if self.inotify {
            match Inotify::init() {
                Ok(inotify) => {
                    registry
                        .register(&mut SourceFd(&inotify.as_raw_fd()), token::INOTIFY, Interest::READABLE)
                        .map_err(io("registering the inotify fd"))?;
                    Some(inotify)
                }
                Err(e) => {
                    log::warn!("inotify is not usable ({e}); watched paths will be polled");
                    None
                }
            }
        } else {
            None
        };
        let mut signals = SignalSources::new(self.graceful_signals).map_err(io("setting up signal handling"))?;
        registry
            .register(&mut signals.signals, token::SIGNALS, Interest::READABLE)
            .map_err(io("registering the signal source"))?;
        let now = Instant::now();
        let (clock, replay) = match &self.replay {
            Some(options) => (Clock::virtual_from(now), Some(Driver::open(options, now)?)),
            None => (Clock::real(), None),
        };
        let mut core = Core::new(
            registry,
            Watches::new(inotify),
            signals,
            inbox,
            self.finish_deadline,
            clock,
        );
        if let Some(options) = &self.capture {
            if let Some(replay) = &replay {
                if same_file(replay.path(), options.path()) {
                    let path = options.path().to_path_buf();
                    return Err(CaptureError::SameFile { path }.into());
                }
            }
            core.capture = Some(CaptureWriter::create(options, now)?);
        }
        std::mem::forget(guard);
        Ok(Escapement {
            poll,
            events: Events::with_capacity(TURN_BUDGET),
            ready: Vec::with_capacity(TURN_BUDGET),
            core,
            trains: Vec::new(),
            started: false,
            supplies: Vec::new(),
            exhausted: Vec::new(),
            cursors: Vec::new(),
            exit: Exit::Clean,
            turns: 0,
            replay,
            swappable: Vec::new(),
            busy_turns: 0,
            finish_by: None,
        })
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Where a replay's virtual clock moves in a turn: to `at`, once the real
/// time is `real` when the replay is paced.
struct Step {
    at: Instant,
    real: Option<Instant>,
}

/// Releases the one-per-process slot if building fails half way.
struct AliveGuard;

impl Drop for AliveGuard {
    fn drop(&mut self) {
        ALIVE.store(false, Ordering::SeqCst);
    }
}

/// The event loop: multiplexes immediate events, fd readiness, inotify,
/// signals, timers and cross-thread work, and drives trains of cogs through
/// their life: `start`, data, `finish` in train order, `done`.
///
/// One per process (signals are process-wide); a second is
/// [`Error::AlreadyExists`].
///
/// ```no_run
/// use std::time::Duration;
/// use tourbillon::Escapement;
///
/// # fn main() -> Result<(), tourbillon::Error> {
/// let mut esc = Escapement::new()?;
/// esc.core().every(Duration::from_secs(1), |_, _| println!("tick"))?;
/// esc.run()?; // until SIGTERM or SIGINT
/// # Ok(()) }
/// ```
pub struct Escapement {
    poll: Poll,
    events: Events,
    ready: Vec<(Token, Ready)>,
    core: Core,
    trains: Vec<Box<dyn AnyTrain>>,
    started: bool,
    /// Supplies of all trains, and which of them said they are exhausted.
    supplies: Vec<CogAddr>,
    exhausted: Vec<CogAddr>,
    /// Per train: the next cog to receive `finish`.
    cursors: Vec<u32>,
    exit: Exit,
    turns: u64,
    /// The capture replayed, if this is a replay.
    replay: Option<Driver>,
    /// The supplies of capturable trains: what a replay swaps out.
    swappable: Vec<CogAddr>,
    /// Turns in a row a replay's clock stood still; after a turn budget of
    /// them, it moves even while immediate events keep coming.
    busy_turns: usize,
    /// When a finish that began is forced to `done` (real time).
    finish_by: Option<Instant>,
}

impl std::fmt::Debug for Escapement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Escapement")
            .field("core", &self.core)
            .field("trains", &self.trains.iter().map(|t| t.name()).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Drop for Escapement {
    fn drop(&mut self) {
        ALIVE.store(false, Ordering::SeqCst);
    }
}

impl Escapement {
    /// An escapement with default settings.
    pub fn new() -> Result<Escapement, Error> {
        Builder::default().build()
    }

    /// Settings for a new escapement.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The loop's core: bind closures, read the phase, get a [`Remote`].
    /// Outside [`run`](Self::run) its clock reads the time anew on each call.
    pub fn core(&mut self) -> &mut Core {
        self.core.clock.read();
        &mut self.core
    }

    /// Whether inotify is usable (see [`Core::inotify`]).
    pub fn inotify(&self) -> bool {
        self.core.inotify()
    }

    /// Adds a train; its cogs start when [`run`](Self::run) begins.
    /// Returns the train's index.
    ///
    /// If the train is [capturable](Train::capturable), a capturing
    /// escapement captures it, and a replaying one swaps its supplies for
    /// [stand-ins](crate::capture::StandIn) fed from the capture.
    pub fn add_train<D: 'static, C: Chain<D>>(&mut self, mut train: Train<D, C>) -> u32 {
        let index = self.trains.len() as u32;
        let cogs = train.cogs();
        for (cog, info) in cogs.iter().enumerate() {
            if info.role == Role::Supply {
                self.supplies.push(CogAddr {
                    train: index,
                    cog: cog as u32,
                });
            }
        }
        self.core.cog_phases.push(vec![CogPhase::Running; cogs.len()]);
        self.cursors.push(0);
        let ids = train.take_ids();
        let codec = train.take_codec();
        if codec.is_some() {
            let supplies = self.supplies.iter().filter(|a| a.train == index);
            self.swappable.extend(supplies);
        }
        let tap = codec.and_then(|codec| self.tap(index, train.name(), &cogs, codec));
        let shared = TrainShared { index, ids, tap };
        let placed: Box<dyn AnyTrain> = match (&mut self.replay, codec) {
            (Some(replay), Some(_)) => {
                replay.add_train(index, train.name(), cogs);
                Box::new(Placed {
                    train: train.replayed(),
                    shared,
                    codec,
                })
            }
            _ => Box::new(Placed { train, shared, codec }),
        };
        self.trains.push(placed);
        if self.started {
            self.trains[index as usize].start(&mut self.core);
        }
        index
    }

    /// Declares a train to the capture, if there is one.
    fn tap<D>(&mut self, index: u32, name: &str, cogs: &[CogInfo], codec: Codec<D>) -> Option<Tap<D>> {
        let writer = self.core.capture.as_mut()?;
        match writer.train(index, name, cogs, codec) {
            Ok(tap) => tap,
            Err(e) => {
                log::error!("capture to {} stops: {e}", writer.path().display());
                self.core.capture = None;
                None
            }
        }
    }

    /// How many times the loop has polled: an idle loop polls once per
    /// timer deadline, not in a spin.
    pub fn turns(&self) -> u64 {
        self.turns
    }

    /// The trains as readable lists of cogs.
    pub fn listing(&self) -> String {
        self.trains.iter().map(|t| t.listing()).collect::<Vec<_>>().join("\n")
    }

    /// Runs until every train has finished (a signal, all supplies
    /// exhausted, or a cog or closure asked) and `done` was delivered.
    ///
    /// # Errors
    /// [`Error::Io`] if polling fails; in a replay, [`Error::Capture`] if the
    /// capture is damaged, a datum does not decode, or (when strict) the
    /// trains differ from the captured ones.
    pub fn run(&mut self) -> Result<Exit, Error> {
        if !self.started {
            self.started = true;
            self.core.clock.read();
            let origin = self.core.now();
            if let Some(writer) = &mut self.core.capture {
                writer.set_origin(origin);
            }
            if let Some(replay) = &mut self.replay {
                replay.begin(origin)?;
            }
            for t in 0..self.trains.len() {
                self.trains[t].start(&mut self.core);
                self.deliver_notices();
            }
        }
        loop {
            self.deliver_notices();
            if self.core.finish_requested && self.core.phase == Phase::Running {
                self.begin_finish();
            }
            if self.core.phase == Phase::Finishing {
                self.advance_finish();
            }
            if self.core.phase == Phase::Done {
                self.close_capture();
                return Ok(std::mem::replace(&mut self.exit, Exit::Clean));
            }
            let (timeout, step) = self.plan()?;
            self.poll(timeout)?;
            // A turn: the timers due, each at its deadline, then fds and
            // immediate events at the turn's time. A replay first emits what
            // was recorded up to that time.
            let limit = match step {
                _ if !self.core.clock.is_virtual() => Instant::now(),
                Some(Step { at, real }) if real.map_or(true, |real| Instant::now() >= real) => {
                    self.busy_turns = 0;
                    at
                }
                _ => {
                    self.busy_turns += 1;
                    self.core.now()
                }
            };
            self.dispatch_replay(limit)?;
            self.dispatch_timers(limit);
            self.core.clock.reach(limit);
            if self.finish_by.is_some_and(|by| Instant::now() >= by) {
                self.deadline_passed();
            }
            self.dispatch_io();
            self.dispatch_immediates();
            self.flush_capture();
        }
    }

    /// How long the next poll may wait and, in a replay, where the clock
    /// moves this turn.
    fn plan(&mut self) -> Result<(Option<Duration>, Option<Step>), Error> {
        let busy = !self.core.immediates.is_empty() || !self.core.notices.is_empty() || self.core.finish_requested;
        let mut timeout = busy.then_some(Duration::ZERO);
        let mut wait = |until: Instant| {
            // Round up: waking a hair early would spin until the deadline.
            let left = ceil_ms(until.saturating_duration_since(Instant::now()));
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        };
        let mut step = None;
        if self.core.clock.is_virtual() {
            let now = self.core.now();
            let recorded = match &mut self.replay {
                Some(replay) => replay.next_time(now)?,
                None => None,
            };
            let timer = self.core.timers.next_deadline();
            let next = match (recorded, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(next) = next.filter(|_| !busy || self.busy_turns >= TURN_BUDGET) {
                let real = self.replay.as_ref().and_then(|r| r.real_time(next));
                wait(real.unwrap_or_else(Instant::now));
                step = Some(Step { at: next, real });
            }
        } else if let Some(deadline) = self.core.timers.next_deadline() {
            wait(deadline);
        }
        if let Some(by) = self.finish_by {
            wait(by);
        }
        Ok((timeout, step))
    }

    fn poll(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.turns += 1;
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(Error::Io {
                        what: "polling".into(),
                        source,
                    })
                }
            }
        }
        self.ready.clear();
        self.ready
            .extend(self.events.iter().map(|e| (e.token(), Ready::from_event(e))));
        Ok(())
    }

    fn dispatch_io(&mut self) {
        for i in 0..self.ready.len() {
            let (token, ready) = self.ready[i];
            match token {
                token::WAKER => self.drain_inbox(),
                token::SIGNALS => self.handle_signals(),
                token::INOTIFY => {
                    let raws = self.core.watches.read_inotify();
                    for raw in raws {
                        for (id, target, event) in self.core.watches.route(raw) {
                            self.dispatch(target, Fired::Watch(id, event));
                        }
                    }
                }
                _ => {
                    let Some(key) = Key::from_token(token) else { continue };
                    // A stale token (fd unregistered earlier this turn, slot
                    // reused) fails the generation check here.
                    if let Some(target) = self.core.fds.get(key).map(|s| s.target) {
                        self.dispatch(target, Fired::Ready(FdId(key), ready));
                    }
                }
            }
        }
    }

    fn drain_inbox(&mut self) {
        for _ in 0..TURN_BUDGET {
            let Ok(msg) = self.core.inbox.rx.try_recv() else { return };
            match msg {
                RemoteMsg::Task(task) => {
                    task(&mut self.core);
                    self.deliver_notices();
                }
                RemoteMsg::Cog { addr, key, msg } => self.dispatch(Target::Cog { addr, key }, Fired::Message(msg)),
            }
        }
        // Budget spent with messages left: come back next turn.
        self.core.inbox.remote.wake();
    }

    fn handle_signals(&mut self) {
        let pending: Vec<i32> = self.core.signals.signals.pending().collect();
        for signal in pending {
            for (id, target) in self.core.signals.targets(signal) {
                self.dispatch(target, Fired::Signal(id, signal));
            }
            if self.core.signals.graceful && (signal == SIGTERM || signal == SIGINT) {
                log::info!(
                    "signal {} received: finishing{}",
                    if signal == SIGTERM { "SIGTERM" } else { "SIGINT" },
                    if signal == SIGINT {
                        " (SIGINT again exits at once)"
                    } else {
                        ""
                    }
                );
                self.core.finish();
            }
        }
    }

    /// Emits what a replay recorded up to `limit`, each datum at its time,
    /// after the timers that fired before it at that instant live.
    fn dispatch_replay(&mut self, limit: Instant) -> Result<(), Error> {
        // Set when this replay has fewer timers at an instant than the live
        // run had: the datum waits no longer.
        let mut short = false;
        loop {
            let Some(replay) = self.replay.as_mut() else {
                return Ok(());
            };
            let due = replay.due(limit)?;
            match due {
                None => return Ok(()),
                Some(Due::Datum { at, ties, .. }) if !short && ties > 0 && self.core.fired < (at, ties) => {
                    short = !self.fire_timer(at);
                    continue;
                }
                Some(Due::Datum {
                    train,
                    cog,
                    at,
                    ids,
                    json,
                    ..
                }) => {
                    self.core.clock.reach(at);
                    self.core.next_id = self.core.next_id.max(ids);
                    if let Some(t) = self.trains.get_mut(train as usize) {
                        if let Err(source) = t.inject(cog, json, &mut self.core) {
                            return Err(replay.decode_error(source).into());
                        }
                    }
                    replay.consumed();
                    short = false;
                }
                Some(Due::End(stand_ins)) => {
                    for addr in stand_ins {
                        self.core.notices.push_back((addr.train, Notice::Exhausted(addr.cog)));
                    }
                }
            }
            self.deliver_notices();
        }
    }

    fn dispatch_timers(&mut self, limit: Instant) {
        for _ in 0..TURN_BUDGET {
            if !self.fire_timer(limit) {
                return;
            }
        }
    }

    /// Fires the next timer due by `limit`, at its deadline; false if none is.
    fn fire_timer(&mut self, limit: Instant) -> bool {
        let Some((id, target, deadline)) = self.core.timers.pop_due(limit) else {
            return false;
        };
        self.core.clock.reach(deadline);
        let owner = match target {
            Target::PollWatch(key) => self.core.watches.slots.get(key).map(|w| w.target),
            target => Some(target),
        };
        let swapped = matches!(owner, Some(Target::Cog { addr, .. }) if self.swappable.contains(&addr));
        if !swapped {
            self.core.fired = match self.core.fired {
                (at, n) if at == deadline => (at, n + 1),
                _ => (deadline, 1),
            };
        }
        match target {
            Target::PollWatch(key) => {
                if let Some((wid, target, event)) = self.core.watches.poll(key) {
                    self.dispatch(target, Fired::Watch(wid, event));
                }
            }
            target => {
                self.dispatch(target, Fired::Timer(id));
                if let Some(target) = self.core.timers.retire(id) {
                    self.core.drop_target(target);
                }
            }
        }
        true
    }

    fn dispatch_immediates(&mut self) {
        // Only what was queued before this turn: work queued now runs next turn.
        for _ in 0..self.core.immediates.turn_len() {
            match self.core.immediates.pop_entry() {
                Some(Some((id, target))) => {
                    self.dispatch(target, Fired::Immediate(id));
                    self.core.drop_target(target);
                }
                Some(None) => {}
                None => break,
            }
        }
    }

    fn dispatch(&mut self, target: Target, fired: Fired) {
        match target {
            Target::Call(key) => {
                if let Some(mut f) = self.core.take_call(key) {
                    f(&mut self.core, fired);
                    self.core.restore_call(key, f);
                }
            }
            Target::Cog { addr, key } => {
                if self.core.phase != Phase::Done {
                    if let Some(train) = self.trains.get_mut(addr.train as usize) {
                        train.fire(addr.cog, key, fired, &mut self.core);
                    }
                }
            }
            Target::PollWatch(_) => {}
        }
        self.deliver_notices();
    }

    /// Delivers queued broadcasts; a cog handling one may queue more.
    fn deliver_notices(&mut self) {
        while let Some((train, notice)) = self.core.notices.pop_front() {
            match notice {
                Notice::Finished(_) => {}
                Notice::Exhausted(cog) => {
                    let addr = CogAddr { train, cog };
                    if self.supplies.contains(&addr) && !self.exhausted.contains(&addr) {
                        self.exhausted.push(addr);
                        if self.exhausted.len() == self.supplies.len() {
                            log::info!("every supply is exhausted: finishing");
                            self.core.finish();
                        }
                    }
                }
                Notice::Cast(cast) => {
                    if let Some(t) = self.trains.get_mut(train as usize) {
                        t.notify(cast, &mut self.core);
                    }
                }
            }
        }
    }

    fn begin_finish(&mut self) {
        self.core.phase = Phase::Finishing;
        self.core.finish_requested = false;
        self.finish_by = Some(later(Instant::now(), self.core.finish_deadline));
        if let Some(writer) = &mut self.core.capture {
            if let Err(e) = writer.finish(self.core.clock.now()) {
                log::error!("capture to {} stops: {e}", writer.path().display());
                self.core.capture = None;
            }
        }
    }

    /// Writes out what the capture holds, once per turn.
    fn flush_capture(&mut self) {
        if let Some(writer) = &mut self.core.capture {
            if let Err(e) = writer.flush() {
                log::error!("capture to {} stops: {e}", writer.path().display());
                self.core.capture = None;
            }
        }
    }

    fn close_capture(&mut self) {
        if let Some(mut writer) = self.core.capture.take() {
            if let Err(e) = writer.close() {
                log::error!("capture to {}: {e}", writer.path().display());
            }
        }
    }

    /// Moves every train's finish along: cog after cog, waiting on a cog
    /// that answered [`Finish::Pending`] until it calls `finished`.
    fn advance_finish(&mut self) {
        for t in 0..self.trains.len() {
            loop {
                let cog = self.cursors[t];
                if cog >= self.trains[t].len() {
                    break;
                }
                let addr = CogAddr { train: t as u32, cog };
                match self.core.cog_phase(addr) {
                    CogPhase::Running => {
                        self.core.cog_phases[t][cog as usize] = CogPhase::Pending;
                        let answer = self.trains[t].finish(cog, &mut self.core);
                        if answer == Finish::Done {
                            self.core.cog_phases[t][cog as usize] = CogPhase::Finished;
                        }
                        self.deliver_notices();
                    }
                    CogPhase::Pending => break,
                    CogPhase::Finished => {
                        self.core.release(addr);
                        self.cursors[t] += 1;
                    }
                }
            }
        }
        let all = (0..self.trains.len()).all(|t| self.cursors[t] >= self.trains[t].len());
        if all {
            self.deliver_done();
        }
    }

    fn deadline_passed(&mut self) {
        self.finish_by = None;
        if self.core.phase != Phase::Finishing {
            return;
        }
        let mut late = Vec::new();
        for t in 0..self.trains.len() {
            let cogs = self.trains[t].cogs();
            for cog in self.cursors[t]..self.trains[t].len() {
                let text = cogs.get(cog as usize).map_or("", |c| c.text.as_str());
                late.push(format!("train {} cog {} ({text})", self.trains[t].name(), cog + 1));
            }
        }
        log::warn!(
            "finish deadline of {:?} passed; forcing done. Not finished: {}",
            self.core.finish_deadline,
            late.join("; ")
        );
        self.exit = Exit::Deadline(late);
        self.deliver_done();
    }

    fn deliver_done(&mut self) {
        for t in 0..self.trains.len() {
            self.trains[t].done(&mut self.core);
        }
        self.core.phase = Phase::Done;
    }
}

/// epoll counts in milliseconds: round up so the timer is due on wake-up
/// instead of spinning through zero-timeout polls until it is.
fn ceil_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64)
}
