//! Capture and replay: record what a run's supplies bring in, run the same
//! trains again on that record, and compare what came out.
//!
//! A **capture** records, for every captured train, each datum a supply
//! emits in its own callbacks (not what it passes on from upstream in
//! `process`): the datum (serde_json), its event id, which supply, and the
//! loop's clock at that moment. It also records what reaches each drain, so
//! two runs can be compared, and the moment the loop began to finish.
//! Nothing of this costs anything in a train that is not captured: the
//! checks fold away where a cog is neither a supply nor a drain. Its first records describe each train:
//! name, cogs with their settings as they render themselves, and a
//! fingerprint of all that. The file is framed like the
//! [state store](crate::store) (length, sequence number, CRC32C; see
//! [the format](#format)): it can be read while it is written, and a torn
//! last record is ignored.
//!
//! A **replay** runs trains with every supply swapped for a stand-in, and
//! emits the recorded data from the stand-ins' places. The loop's clock is
//! virtual: it reads the recorded time, and timers fire when it passes
//! their deadline, so windows, rate limits and timeouts see the time they
//! saw when the capture was made. It runs as fast as it can or paced at the
//! recorded speed (or a multiple). A replay can itself be captured, and
//! [`compare`] then says whether the drains got the same data.
//!
//! Trains opt in with [`Train::capturable`](crate::Train::capturable),
//! which requires the data to be serde; the escapement captures with
//! [`Builder::capture`](crate::Builder::capture) and replays with
//! [`Builder::replay`](crate::Builder::replay).
//!
//! ```
//! use std::time::Duration;
//! use tourbillon::capture::{compare, CaptureOptions, Comparison, ReplayOptions};
//! use tourbillon::{Cog, Context, Escapement, Fired, Next, Role, Train};
//!
//! /// Emits 1, 2, 3 a tenth of a second apart.
//! struct Ticks(u64);
//! impl Cog<u64> for Ticks {
//!     fn role(&self) -> Role { Role::Supply }
//!     fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
//!         ctx.every(Duration::from_millis(100), 0).unwrap();
//!     }
//!     fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
//!         self.0 += 1;
//!         ctx.emit(self.0);
//!         if self.0 == 3 { ctx.exhausted() }
//!     }
//!     fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, ctx: &mut Context<'_, u64, N>) { ctx.emit(n) }
//! }
//!
//! /// Prints what reaches it.
//! struct Print;
//! impl Cog<u64> for Print {
//!     fn role(&self) -> Role { Role::Drain }
//!     fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, ctx: &mut Context<'_, u64, N>) {
//!         println!("{n}");
//!         ctx.discard(&n)
//!     }
//! }
//!
//! fn train(supply: Ticks) -> Train<u64, impl tourbillon::train::Chain<u64>> {
//!     Train::new("squares").cog(supply).map(|n| n * n).cog(Print).capturable()
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let (live, again) = (dir.path().join("live.tbcap"), dir.path().join("replay.tbcap"));
//!
//! let mut esc = Escapement::builder().capture(CaptureOptions::new(&live)).build()?;
//! esc.add_train(train(Ticks(0)));
//! esc.run()?;
//! drop(esc);
//!
//! // The supply is swapped for the capture: this `Ticks` never runs.
//! let mut esc = Escapement::builder()
//!     .replay(ReplayOptions::new(&live))
//!     .capture(CaptureOptions::new(&again))
//!     .build()?;
//! esc.add_train(train(Ticks(1000)));
//! esc.run()?;
//! assert_eq!(compare(&live, &again)?, Comparison::Same { outputs: 3 });
//! # Ok(()) }
//! ```
//!
//! # What replays alike
//!
//! A cog whose output depends only on the data it gets, their order, the
//! loop's clock and its timers produces the same output in a replay. The
//! rules that make it so hold live too:
//!
//! - The clock is read once per turn of the loop. A turn fires the timers
//!   due first, each seeing the clock at its deadline, then handles fd
//!   readiness and immediate events at the turn's time. A supply emitting
//!   from a timer is recorded at that timer's deadline.
//! - In a replay, virtual time moves to the next recorded datum or timer
//!   deadline, whichever comes first, once the loop has no immediate event
//!   queued (or after a turn budget of busy turns).
//! - A capture notes, with each datum, how many timers had fired at that
//!   very instant (not counting the supplies' own), and a replay fires as
//!   many before it emits the datum: a supply ticking every 100 ms and a
//!   window ticking every second keep their order when their ticks
//!   coincide.
//! - Event ids: before each datum is emitted, the id counter is brought to
//!   where it was when it was captured, so ids minted downstream match.
//! - What supplies emitted while the loop finished is emitted at the point
//!   where the capture says finishing began; then every stand-in is
//!   exhausted.
//!
//! What is not reproduced: the interleaving of immediate events and other
//! fds with data when the live loop was too busy to keep up (or fired more
//! than a turn's budget of 1024 timers at once), and a cog that reads the
//! real time (`Instant::now()`) rather than the loop's clock. Timers armed
//! before [`Escapement::run`](crate::Escapement::run) count from the clock
//! at that moment; arm them in a cog's `start` to have them replay exactly.
//!
//! # Format
//!
//! A 24-byte header with the magic `TBCAPTUR` and the capture format
//! version (now 1), as the store's files have; then frames of length,
//! sequence number (from 1, consecutive) and CRC32C, each holding one record
//! as serde_json, externally tagged (`{"In":{...}}`):
//!
//! | record   | fields                                                         |
//! |----------|----------------------------------------------------------------|
//! | `Begin`  | `started_ms` (Unix time), `by` (the tourbillon version)        |
//! | `Train`  | `tr` (its number in the escapement), `name`, `fingerprint`,    |
//! |          | `cogs` (role and description of each)                          |
//! | `In`     | what supply `c` (position from 0) of train `tr` emitted: `t`   |
//! |          | (the loop's clock, ns since the run began), `id`, `n` (the     |
//! |          | last event id minted then), `k` (timers fired at `t` before,   |
//! |          | if any), `d` (the datum)                                       |
//! | `Out`    | what reached drain `c` of train `tr`: `t`, `id`, `d`           |
//! | `Finish` | the loop began to finish at `t`                                |
//!
//! A `Train` record comes before any record about that train.

mod format;
mod reader;
mod replay;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

pub use self::reader::{
    compare, compare_drains, CaptureReader, Comparison, Datum, Difference, DrainComparison, Entry, TrainInfo,
};
pub use crate::error::CaptureError;
use crate::escapement::Builder;
pub use crate::stand_in::{StandIn, Swapped};

impl Builder {
    /// Captures the [capturable](crate::Train::capturable) trains of this
    /// escapement (default: no). A capture that fails to write stops with
    /// an error logged; the run goes on. See [`capture`](crate::capture).
    pub fn capture(mut self, options: CaptureOptions) -> Self {
        self.recorder = Some(Arc::new(options));
        self
    }

    /// Replays a capture (default: no): the loop's clock is virtual, and the
    /// supplies of [capturable](crate::Train::capturable) trains are swapped
    /// for what the capture recorded of the train of the same name. See
    /// [`capture`](crate::capture).
    pub fn replay(mut self, options: ReplayOptions) -> Self {
        self.playback = Some(Arc::new(options));
        self
    }
}

/// What to capture, and where.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    path: PathBuf,
    inputs: bool,
    outputs: bool,
}

impl CaptureOptions {
    /// Capture to `path` (created, or truncated), data in and out.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CaptureOptions {
            path: path.into(),
            inputs: true,
            outputs: true,
        }
    }

    /// Record what supplies emit, to replay it (default: yes).
    pub fn inputs(mut self, on: bool) -> Self {
        self.inputs = on;
        self
    }

    /// Record what reaches drains, to [`compare`] runs (default: yes).
    pub fn outputs(mut self, on: bool) -> Self {
        self.outputs = on;
        self
    }

    /// The capture file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// How fast a replay goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Pace {
    /// As fast as it can: virtual time jumps to the next datum or timer as
    /// soon as the loop has nothing else to do. The default.
    #[default]
    Fastest,
    /// At the recorded speed times this multiple: `1.0` takes as long as the
    /// recorded run, `10.0` a tenth of it. Never ahead of it.
    Recorded(f64),
}

/// What to replay, and how.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    path: PathBuf,
    pace: Pace,
    strict: bool,
}

impl ReplayOptions {
    /// Replay the capture at `path`, as fast as possible, warning of a
    /// train that differs from the captured one.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReplayOptions {
            path: path.into(),
            pace: Pace::Fastest,
            strict: false,
        }
    }

    /// How fast (default [`Pace::Fastest`]).
    pub fn pace(mut self, pace: Pace) -> Self {
        self.pace = pace;
        self
    }

    /// Refuse to replay into a train whose fingerprint differs from the
    /// captured one, or that the capture does not have (default: warn and
    /// go on).
    pub fn strict(mut self, on: bool) -> Self {
        self.strict = on;
        self
    }

    /// The capture replayed.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
