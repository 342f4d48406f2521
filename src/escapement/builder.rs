//! Settings of an escapement, and building one (one per process).

use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inotify::Inotify;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Waker};

use super::{Escapement, Exit, ALIVE, TURN_BUDGET};
use crate::core::{Clock, Core};
use crate::error::Error;
use crate::recorder::{OpenPlayback, OpenRecorder};
use crate::sources::inbox::Inbox;
use crate::sources::signals::SignalSources;
use crate::sources::watch::Watches;
use crate::token;

/// The default capacity of a train's input queue.
const DEFAULT_QUEUE: usize = 1024;

/// Settings of an [`Escapement`].
#[derive(Clone, Debug)]
pub struct Builder {
    inotify: bool,
    graceful_signals: bool,
    finish_deadline: Duration,
    queue_capacity: usize,
    /// Opens the recorder (see [`Builder::capture`]).
    pub(crate) recorder: Option<Arc<dyn OpenRecorder>>,
    /// Opens the playback (see [`Builder::replay`]).
    pub(crate) playback: Option<Arc<dyn OpenPlayback>>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            inotify: std::env::var_os("TOURBILLON_NO_INOTIFY").is_none(),
            graceful_signals: true,
            finish_deadline: Duration::from_secs(60),
            queue_capacity: DEFAULT_QUEUE,
            recorder: None,
            playback: None,
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

    /// How many data may wait in front of a train that reads other trains
    /// before the trains feeding it are congested (default 1024; a train
    /// may set its own with [`Train::queue`](crate::Train::queue)).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
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
        let waker = Waker::new(&registry, token::WAKER).map_err(io("creating the waker"))?;
        let inbox = Inbox::new(waker);
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
        let (clock, playback) = match &self.playback {
            Some(open) => (Clock::virtual_from(now), Some(open.open(now)?)),
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
        if let Some(open) = &self.recorder {
            core.recorder = Some(open.open(now, playback.as_deref())?);
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
            playback,
            swappable: Vec::new(),
            busy_turns: 0,
            finish_by: None,
            queue_capacity: self.queue_capacity,
            order: Vec::new(),
            upstream: Vec::new(),
            wired: false,
            retiring: None,
            done_ids: Vec::new(),
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

impl Escapement {
    /// An escapement with default settings.
    pub fn new() -> Result<Escapement, Error> {
        Builder::default().build()
    }

    /// Settings for a new escapement.
    pub fn builder() -> Builder {
        Builder::default()
    }
}
