//! The escapement: the one event loop of a process. This file drives it
//! (turns, dispatch of what fired to closures and cogs, broadcasts);
//! [`builder`] builds it, [`finish`] is the finish protocol, [`pacing`]
//! says how long a turn waits and how a playback's clock moves.

mod builder;
mod finish;
mod junction;
mod pacing;
mod retire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Poll, Token};
use signal_hook::consts::{SIGINT, SIGTERM};

pub use self::builder::Builder;
pub use self::finish::Exit;
use self::pacing::Step;
use crate::context::TrainShared;
use crate::core::{Broadcast, CogPhase, Core, Notice, Phase};
use crate::error::Error;
use crate::event::EventId;
use crate::graph::Outlet;
use crate::recorder::{Playback, Tap};
use crate::role::{CogInfo, Role};
use crate::sources::inbox::RemoteMsg;
use crate::sources::{CogAddr, FdId, Fired, Ready, Target};
use crate::token::{self, Key};
use crate::train::{AnyTrain, Chain, Placed, Train};

static ALIVE: AtomicBool = AtomicBool::new(false);

/// Work handled per turn before the loop polls again, for fairness; also
/// how many busy turns a replay lets pass before virtual time moves anyway.
const TURN_BUDGET: usize = 1024;

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
    /// The recording played back, if this is a replay.
    playback: Option<Box<dyn Playback>>,
    /// The supplies of capturable trains: what a replay swaps out.
    swappable: Vec<CogAddr>,
    /// Turns in a row a replay's clock stood still; after a turn budget of
    /// them, it moves even while immediate events keep coming.
    busy_turns: usize,
    /// When a finish that began is forced to `done` (real time).
    finish_by: Option<Instant>,
    /// The default capacity of a train's input queue.
    queue_capacity: usize,
    /// Every train, each after the trains it reads.
    order: Vec<u32>,
    /// Per train, the trains it reads.
    upstream: Vec<Vec<u32>>,
    /// The junctions are made (at the start of `run`).
    wired: bool,
    /// The trains being replaced ([`Core::replace_trains`]), if any.
    retiring: Option<retire::Retiring>,
    /// The batch of `event_done`s being delivered (kept for its capacity).
    done_ids: Vec<EventId>,
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
    /// The loop's core: bind closures, read the phase, get a [`Remote`](crate::Remote).
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
        let wiring = train.take_wiring();
        let outputs = std::iter::once(String::new())
            .chain(train.outputs())
            .map(Outlet::new)
            .collect();
        if codec.is_some() {
            let supplies = self.supplies.iter().filter(|a| a.train == index);
            self.swappable.extend(supplies);
        }
        let tap = codec.and_then(|codec| self.tap(index, train.name(), &cogs, codec.encode));
        let shared = TrainShared {
            index,
            ids,
            tap,
            outputs,
            clone: None,
            read: false,
        };
        let placed: Box<dyn AnyTrain> = match (&mut self.playback, codec) {
            (Some(playback), Some(_)) => {
                playback.add_train(index, train.name(), cogs);
                Box::new(Placed::new(train.replayed(), shared, codec, wiring))
            }
            _ => Box::new(Placed::new(train, shared, codec, wiring)),
        };
        self.trains.push(placed);
        self.upstream.push(Vec::new());
        self.order.push(index);
        if self.started {
            // Too late for `run` to report a bad input: it is logged.
            if let Err(e) = self.wire_train(index) {
                log::error!("{e}");
            }
            self.trains[index as usize].start(&mut self.core);
        }
        index
    }

    /// Declares a train to the recorder, if there is one; the tap its
    /// contexts call, if the recorder wants any of its data.
    fn tap<D>(
        &mut self,
        index: u32,
        name: &str,
        cogs: &[CogInfo],
        encode: fn(&D, &mut Vec<u8>) -> serde_json::Result<()>,
    ) -> Option<Tap<D>> {
        let recorder = self.core.recorder.as_mut()?;
        match recorder.train(index, name, cogs) {
            Ok(wants) if wants.inputs || wants.outputs => Some(Tap {
                train: index,
                wants,
                encode,
            }),
            Ok(_) => None,
            Err(_) => {
                self.core.recorder = None;
                None
            }
        }
    }

    /// Tells the recorder a turn ended (it writes out what it holds).
    fn end_turn(&mut self) {
        if let Some(recorder) = &mut self.core.recorder {
            if recorder.end_turn().is_err() {
                self.core.recorder = None;
            }
        }
    }

    /// What cogs said failed, taken: `train NAME cog N (description): why`.
    fn failures(&mut self) -> Vec<String> {
        std::mem::take(&mut self.core.failures)
            .into_iter()
            .map(|(t, cog, why)| match self.trains.get(t as usize) {
                Some(train) => {
                    let text = train
                        .cogs()
                        .get(cog as usize)
                        .map_or("", |c| c.text.as_str())
                        .to_owned();
                    format!("train {} cog {} ({text}): {why}", train.name(), cog + 1)
                }
                None => format!("cog {}: {why}", cog + 1),
            })
            .collect()
    }

    fn close_recorder(&mut self) {
        if let Some(mut recorder) = self.core.recorder.take() {
            recorder.close();
        }
    }

    /// How many times the loop has polled: an idle loop polls once per
    /// timer deadline, not in a spin.
    pub fn turns(&self) -> u64 {
        self.turns
    }

    /// The trains as readable lists of cogs.
    pub fn listing(&self) -> String {
        self.trains
            .iter()
            .map(|t| t.listing())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Runs until every train has finished (a signal, all supplies
    /// exhausted, or a cog or closure asked) and `done` was delivered.
    ///
    /// # Errors
    /// [`Error::Io`] if polling fails; in a replay, [`Error::Capture`] if the
    /// capture is damaged, a datum does not decode, or (when strict) the
    /// trains differ from the captured ones.
    pub fn run(&mut self) -> Result<Exit, Error> {
        if !self.wired {
            self.wire()?;
        }
        if !self.started {
            self.started = true;
            self.core.clock.read();
            let origin = self.core.now();
            if let Some(recorder) = &mut self.core.recorder {
                // Whole milliseconds: what the capture keeps.
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let wall = UNIX_EPOCH + Duration::from_millis(ms);
                self.core.wall_anchor = Some((origin, wall));
                recorder.begin(origin, wall);
            }
            if let Some(playback) = &mut self.playback {
                playback.begin(origin)?;
                let wall = playback.started().unwrap_or_else(SystemTime::now);
                self.core.wall_anchor = Some((origin, wall));
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
            if self.retiring.is_some() || !self.core.replacements.is_empty() {
                self.advance_replacements();
            }
            if self.core.phase == Phase::Finishing {
                self.advance_finish();
            }
            if self.core.phase == Phase::Done {
                self.close_recorder();
                let exit = std::mem::replace(&mut self.exit, Exit::Clean);
                // A deadline passed says more than the failure that led
                // to it (logged when it happened).
                let failures = self.failures();
                return Ok(match exit {
                    Exit::Clean if !failures.is_empty() => Exit::Failed(failures),
                    exit => exit,
                });
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
            self.end_turn();
        }
    }

    fn poll(&mut self, timeout: Option<Duration>) -> Result<(), Error> {
        self.turns += 1;
        let began = Instant::now();
        loop {
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {
                    self.core.gauges.polled(self.turns, began.elapsed());
                    break;
                }
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
        let _ = self.core.inbox.wake();
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

    /// Delivers queued broadcasts (a cog handling one may queue more), and
    /// moves what waits in the junctions between trains.
    fn deliver_notices(&mut self) {
        self.deliver_casts();
        if self.core.graph.queued {
            self.pump();
            self.deliver_casts();
        }
    }

    /// Delivers `event_done(first)` in `train` together with the dones of
    /// that train queued right after it, as one batch per cog: the cogs
    /// see the same dones in the same order, and any other notice (a
    /// rename, a resume, another train's) ends the batch, so it stays
    /// between the dones it came between.
    fn deliver_dones(&mut self, train: u32, first: EventId) {
        let mut ids = std::mem::take(&mut self.done_ids);
        ids.clear();
        ids.push(first);
        while let Some(&(t, Notice::Cast(Broadcast::EventDone(id)))) = self.core.notices.front() {
            if t != train {
                break;
            }
            ids.push(id);
            self.core.notices.pop_front();
        }
        if let Some(t) = self.trains.get_mut(train as usize) {
            t.notify_done(&ids, &mut self.core);
        }
        if self.core.graph.active {
            let core = &mut self.core;
            for &id in &ids {
                core.graph.follow(train, Broadcast::EventDone(id), &mut core.notices);
            }
        }
        self.done_ids = ids;
    }

    fn deliver_casts(&mut self) {
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
                Notice::Cast(Broadcast::EventDone(id)) => self.deliver_dones(train, id),
                Notice::Cast(cast) => {
                    if let Some(t) = self.trains.get_mut(train as usize) {
                        t.notify(cast, &mut self.core);
                    }
                    if self.core.graph.active {
                        let core = &mut self.core;
                        core.graph.follow(train, cast, &mut core.notices);
                    }
                }
            }
        }
    }
}
