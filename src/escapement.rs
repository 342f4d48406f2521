//! The escapement: the one event loop of a process.

use std::os::unix::io::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use inotify::Inotify;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::core::{CogPhase, Notice, Phase};
use crate::sources::remote::{Inbox, RemoteMsg};
use crate::sources::signals::SignalSources;
use crate::sources::watch::Watches;
use crate::sources::{CogAddr, FdId, Fired, Ready, Remote, Target};
use crate::token::{self, Key};
use crate::train::{AnyTrain, Chain, Placed};
use crate::{Core, Error, Finish, Role, Train, TrainShared};

static ALIVE: AtomicBool = AtomicBool::new(false);

/// Work handled per turn before the loop polls again, for fairness.
const TURN_BUDGET: usize = 1024;
/// Internal timer: the finish deadline.
const DEADLINE: u64 = 1;

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
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            inotify: std::env::var_os("TOURBILLON_NO_INOTIFY").is_none(),
            graceful_signals: true,
            finish_deadline: Duration::from_secs(60),
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

    /// How long `finish` may take before the loop forces `done` (default 60 s).
    pub fn finish_deadline(mut self, deadline: Duration) -> Self {
        self.finish_deadline = deadline;
        self
    }

    /// Creates the escapement; fails if one already exists in this process.
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
        let core = Core::new(registry, Watches::new(inotify), signals, inbox, self.finish_deadline);
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
        })
    }
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
    pub fn core(&mut self) -> &mut Core {
        &mut self.core
    }

    /// Whether inotify is usable (see [`Core::inotify`]).
    pub fn inotify(&self) -> bool {
        self.core.inotify()
    }

    /// Adds a train; its cogs start when [`run`](Self::run) begins.
    /// Returns the train's index.
    pub fn add_train<D: 'static, C: Chain<D>>(&mut self, mut train: Train<D, C>) -> u32 {
        let index = self.trains.len() as u32;
        let roles = train.cogs().into_iter().map(|c| c.role).collect::<Vec<_>>();
        for (cog, role) in roles.iter().enumerate() {
            if *role == Role::Supply {
                self.supplies.push(CogAddr {
                    train: index,
                    cog: cog as u32,
                });
            }
        }
        self.core.cog_phases.push(vec![CogPhase::Running; roles.len()]);
        self.cursors.push(0);
        let ids = train.take_ids();
        self.trains.push(Box::new(Placed {
            train,
            shared: TrainShared { index, ids },
        }));
        if self.started {
            self.trains[index as usize].start(&mut self.core);
        }
        index
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
    pub fn run(&mut self) -> Result<Exit, Error> {
        if !self.started {
            self.started = true;
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
                return Ok(std::mem::replace(&mut self.exit, Exit::Clean));
            }
            let timeout = self.timeout();
            self.poll(timeout)?;
            self.dispatch_io();
            self.dispatch_timers();
            self.dispatch_immediates();
        }
    }

    fn timeout(&mut self) -> Option<Duration> {
        if !self.core.immediates.is_empty() || !self.core.notices.is_empty() || self.core.finish_requested {
            return Some(Duration::ZERO);
        }
        let deadline = self.core.timers.next_deadline()?;
        // Round up: waking a hair early would spin until the deadline.
        let left = deadline.saturating_duration_since(Instant::now());
        Some(ceil_ms(left))
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

    fn dispatch_timers(&mut self) {
        let now = Instant::now();
        for _ in 0..TURN_BUDGET {
            let Some((id, target)) = self.core.timers.pop_due(now) else {
                return;
            };
            match target {
                Target::PollWatch(key) => {
                    if let Some((wid, target, event)) = self.core.watches.poll(key) {
                        self.dispatch(target, Fired::Watch(wid, event));
                    }
                }
                Target::Internal(DEADLINE) => self.deadline_passed(),
                target => {
                    self.dispatch(target, Fired::Timer(id));
                    if !self.core.timers.slots.contains(id.0) {
                        self.core.drop_target(target);
                    }
                }
            }
        }
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
            Target::PollWatch(_) | Target::Internal(_) => {}
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
        let deadline = Instant::now() + self.core.finish_deadline;
        self.core.timers.arm(deadline, None, Target::Internal(DEADLINE));
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
