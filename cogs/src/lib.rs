//! The standard cogs of tourbillon: a library of cogs only. The `tourbillon`
//! binary, which builds trains of these cogs from a configuration file (the
//! registry of cog kinds, the configuration, the daemon), is the
//! `tourbillon-cli` crate in `cogs/cli`; a program that only wants a
//! [`Tail`](supply::tail::Tail) compiles none of it.
//!
//! Each cog has a settings struct (serde, `deny_unknown_fields`, every field
//! defaulted and documented with its unit): the "base insert" a config file
//! fills in. Cogs reach into data through [accessors](tourbillon::accessor),
//! with defaults for [`tourbillon::Event`].
//!
//! The modules follow the roles: [`supply`] brings data in, [`step`] works
//! on it, [`drain`] writes it out; subsystems with cogs in several roles
//! ([`program`], `jetstream`) and the machinery the cogs share ([`net`],
//! [`setting`], [`access`], [`time`], [`meter`]) have modules of their own.
//!
//! | module | cogs | role |
//! |---|---|---|
//! | [`supply::tail`] | [`Tail`](supply::tail::Tail): follows files through rotations, checkpointed | supply |
//! | [`supply::stdin`] | [`StdinSupply`](supply::stdin::StdinSupply): lines of standard input | supply |
//! | [`supply::listen`] | [`NetSupply`](supply::listen::NetSupply): TCP, Unix stream and UDP sockets | supply |
//! | [`step::lines`] | [`LineSplitter`](step::lines::LineSplitter) (the splitting itself, for supplies too), [`Lines`](step::lines::Lines) | step |
//! | [`step::json`] | [`JsonDecode`](step::json::JsonDecode), [`JsonEncode`](step::json::JsonEncode) | step |
//! | [`step::fields`] | [`SetFields`](step::fields::SetFields), [`Rename`](step::fields::Rename), [`Remove`](step::fields::Remove) | step |
//! | [`step::filter`] | [`Filter`](step::filter::Filter): keeps or drops by field conditions | step |
//! | [`step::timestamp`] | [`Timestamp`](step::timestamp::Timestamp): parses a time into RFC 3339 or epoch | step |
//! | [`step::anonymize`] | [`Anonymize`](step::anonymize::Anonymize): truncates or pseudonymizes IP addresses | step |
//! | [`step::window`] | [`Dedup`](step::window::Dedup), [`Aggregate`](step::window::Aggregate): per key, per time window | step |
//! | [`step::ratelimit`] | [`RateLimit`](step::ratelimit::RateLimit): token bucket per key | step |
//! | [`step::sample`] | [`Sample`](step::sample::Sample): one in N, or with a probability | step |
//! | [`step::rdns`] | [`ReverseDns`](step::rdns::ReverseDns): host names for addresses | step |
//! | [`step::stats`] | [`Stats`](step::stats::Stats): logs per-cog counters | step |
//! | [`drain::file`] | [`FileDrain`](drain::file::FileDrain): appends lines to a file | drain |
//! | [`drain::stdout`] | [`StdoutDrain`](drain::stdout::StdoutDrain): writes lines to stdout | drain |
//! | [`drain::connect`] | [`NetDrain`](drain::connect::NetDrain): writes to a TCP or Unix stream socket | drain |
//! | [`program`] | [`ProgramCog`](program::ProgramCog), [`ProgramServer`](program::ProgramServer): sequences of steps with rectifiers | step, supply |
//! | `jetstream` (feature `nats`) | `JetStreamSupply`, `JetStreamDrain`, `RejectStep`: NATS JetStream, at least once | supply, drain, step |
//!
//! A tail pipeline by hand: follow files of JSON lines, drop the debug
//! events, write the others out (the tail emits one event per line and keeps
//! its read positions in `checkpoint_dir`):
//!
//! ```no_run
//! use tourbillon::{Escapement, Event, Train};
//! use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
//! use tourbillon_cogs::step::json::{JsonDecode, JsonEncode};
//! use tourbillon_cogs::supply::tail::{Tail, TailSettings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tail = TailSettings {
//!     include: vec!["/var/log/app/*.jsonl".into()],
//!     checkpoint_dir: Some("/var/lib/tourbillon/app".into()),
//!     ..Default::default()
//! };
//! let out = FileDrainSettings { path: "/var/log/out.jsonl".into(), ..Default::default() };
//! let mut esc = Escapement::new()?;
//! esc.add_train(
//!     Train::new("tail")
//!         .ids(Event::id_getter())
//!         .cog(Tail::new(tail)?)
//!         .cog(JsonDecode::new(Default::default())?)
//!         .filter(|e: &Event| e.data["level"] != "debug")
//!         .cog(JsonEncode::new(Default::default())?)
//!         .cog(FileDrain::new(out)?),
//! );
//! esc.run()?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod access;
pub mod drain;
#[cfg(feature = "nats")]
pub mod jetstream;
pub mod ledger;
pub mod meter;
pub mod net;
pub mod program;
pub mod setting;
pub mod step;
pub mod supply;
pub mod time;

/// What can go wrong when building the cogs of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value the cog cannot work with.
    #[error("{key}: {message}")]
    Setting {
        /// The setting's key, as in the settings struct (`max_line_bytes`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The state store that keeps a cog's positions could not be opened or read.
    #[error("state store: {0}")]
    Store(#[from] tourbillon::StoreError),
}

impl Error {
    pub(crate) fn setting(key: &str, message: impl Into<String>) -> Error {
        Error::Setting {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// A count a cog keeps and others read (tests, metrics): cheap to clone,
/// shared between the clones.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}

/// Occurrences held back by a [`LogThrottle`], to log as one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many were held back.
    pub count: u64,
    /// Over how long: since the last line logged about them.
    pub over: Duration,
}

/// What to do about one occurrence, says [`LogThrottle::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log this one in full. `held` is what an expired window still held
    /// back: log its summary first.
    Log {
        /// Occurrences held back before this one, not yet summarized.
        held: Option<Summary>,
    },
    /// Held back: counted for a summary that [`LogThrottle::summary`] gives
    /// at `due` (arm a timer for it).
    Hold {
        /// When the summary is due.
        due: Instant,
    },
}

/// Keeps a recurring problem (malformed input, failed writes) to at most one
/// log line per interval: the first occurrence is logged in full at once,
/// the ones that follow within the interval are counted and summarized
/// ("N more ... in the last 10s") when it ends.
///
/// The clock is passed in, so the logic is testable without sleeping.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tourbillon_cogs::{LogThrottle, Summary, Verdict};
///
/// let mut t = LogThrottle::new(Duration::from_secs(10));
/// let t0 = Instant::now();
/// assert_eq!(t.hit(t0), Verdict::Log { held: None });
/// assert!(matches!(t.hit(t0 + Duration::from_secs(1)), Verdict::Hold { .. }));
/// assert_eq!(t.summary(t0 + Duration::from_secs(5)), None, "not due yet");
/// let s = t.summary(t0 + Duration::from_secs(10)).unwrap();
/// assert_eq!(s, Summary { count: 1, over: Duration::from_secs(10) });
/// ```
#[derive(Clone, Debug)]
pub struct LogThrottle {
    interval: Duration,
    /// When the current window opened: the last line logged (in full or as
    /// a summary). `None`: no window, the next occurrence is logged in full.
    opened: Option<Instant>,
    held: u64,
    total: u64,
}

impl LogThrottle {
    /// At most one line per `interval` (at most a century: a longer one
    /// would overflow the clock's arithmetic, and means "never again" anyway).
    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval: interval.min(Duration::from_secs(100 * 365 * 86_400)),
            opened: None,
            held: 0,
            total: 0,
        }
    }

    /// Counts one occurrence at `now` and says whether to log it.
    pub fn hit(&mut self, now: Instant) -> Verdict {
        self.total += 1;
        match self.opened {
            Some(opened) if now < opened + self.interval => {
                self.held += 1;
                Verdict::Hold {
                    due: opened + self.interval,
                }
            }
            _ => {
                let held = self.take(now);
                self.opened = Some(now);
                Verdict::Log { held }
            }
        }
    }

    /// The occurrences held back, once the window that held them is over at
    /// `now`; the summary then counts as the window's line, so the next
    /// occurrence within an interval of it is held back too.
    pub fn summary(&mut self, now: Instant) -> Option<Summary> {
        let opened = self.opened?;
        if self.held == 0 {
            if now >= opened + self.interval {
                self.opened = None;
            }
            return None;
        }
        if now < opened + self.interval {
            return None;
        }
        let s = self.take(now);
        self.opened = Some(now);
        s
    }

    /// The occurrences held back, whatever the time (at finish).
    pub fn flush(&mut self, now: Instant) -> Option<Summary> {
        let s = self.take(now);
        self.opened = None;
        s
    }

    /// When [`summary`](Self::summary) will have something to say, if ever.
    pub fn due(&self) -> Option<Instant> {
        match self.opened {
            Some(opened) if self.held > 0 => Some(opened + self.interval),
            _ => None,
        }
    }

    /// The interval it keeps between log lines.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Every occurrence counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn take(&mut self, now: Instant) -> Option<Summary> {
        let opened = self.opened?;
        let count = std::mem::take(&mut self.held);
        (count > 0).then(|| Summary {
            count,
            over: now.saturating_duration_since(opened),
        })
    }
}
