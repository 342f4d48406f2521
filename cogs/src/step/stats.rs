//! Per-cog counters and the `stats` cog that logs them.
//!
//! A [`Meter`] is the five counts a processing cog keeps about itself:
//! data in, data out, data dropped (filtered out, duplicates, over a rate
//! limit, not sampled, unparsable by setting), errors (a value it could not
//! work with: an invalid address, an unparsable time), and the bytes of the
//! data in (their raw bytes, for [`Event`]s). The cog is the only writer,
//! so counting costs a plain load and store; anyone holding a clone reads.
//!
//! A [`Board`] collects the meters of a process's cogs by train and
//! position. The [registry](crate::registry) puts on it every cog it builds
//! that keeps a meter ([`metered`]); the [`Stats`] cog (kind `stats`) logs
//! what the board holds for its train (or every train) every
//! `interval_secs`, on SIGUSR1, and once more when the escapement is done.
//! Where it sits in the train, it also counts what passes it, so a `stats`
//! cog after a cog that keeps no meter (a supply, a decoder) shows what that
//! cog let through.
//!
//! Why a board and not a wrapper around every cog: what a cog emits goes
//! straight to the next cog through its context, which a wrapper cannot
//! intercept, so only the cog itself knows its `out` and `dropped`.
//!
//! ```
//! use tourbillon_cogs::step::stats::{Board, Meter};
//!
//! let board = Board::default();
//! let meter = Meter::default();
//! board.put("web", 2, "filter", meter.clone());
//! assert_eq!(board.entries(Some("web"))[0].kind, "filter");
//! assert_eq!(board.entries(Some("other")).len(), 0);
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Core, Event, Fired, Next};

use crate::registry::BuildEnv;
use crate::Error;

#[derive(Debug, Default)]
struct Cells {
    input: AtomicU64,
    output: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
}

/// The counters of one cog; clones share them. Only the cog counts (one
/// writer: a load and a store, no locked instruction); anyone reads.
#[derive(Clone, Debug, Default)]
pub struct Meter(Arc<Cells>);

fn bump(cell: &AtomicU64, n: u64) {
    // One writer: no read-modify-write needed.
    cell.store(cell.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

impl Meter {
    /// One datum in, of `bytes` bytes.
    pub fn took(&self, bytes: usize) {
        bump(&self.0.input, 1);
        bump(&self.0.bytes, bytes as u64);
    }

    /// One datum out.
    pub fn emitted(&self) {
        bump(&self.0.output, 1);
    }

    /// One datum dropped.
    pub fn dropped(&self) {
        bump(&self.0.dropped, 1);
    }

    /// Sends `datum` on, counted as out.
    pub fn emit<D, N: Next<D> + ?Sized>(&self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.emitted();
        ctx.emit(datum)
    }

    /// Drops `datum` for good (reported done), counted as dropped.
    pub fn discard<D, N: Next<D> + ?Sized>(&self, datum: &D, ctx: &mut Context<'_, D, N>) {
        self.dropped();
        ctx.discard(datum)
    }

    /// Sends `datum` on if `keep`, else drops it; counted either way.
    pub fn keep_or_drop<D, N: Next<D> + ?Sized>(&self, keep: bool, datum: D, ctx: &mut Context<'_, D, N>) {
        if keep {
            self.emit(datum, ctx)
        } else {
            self.discard(&datum, ctx)
        }
    }

    /// One error.
    pub fn error(&self) {
        bump(&self.0.errors, 1);
    }

    /// The counts now.
    pub fn counts(&self) -> Counts {
        let c = &self.0;
        Counts {
            input: c.input.load(Ordering::Relaxed),
            output: c.output.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
        }
    }
}

/// A reading of a [`Meter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Data in.
    pub input: u64,
    /// Data out (for a cog that merges, the merged data).
    pub output: u64,
    /// Data dropped on purpose.
    pub dropped: u64,
    /// Values the cog could not work with.
    pub errors: u64,
    /// Bytes of the data in.
    pub bytes: u64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "in={} out={} dropped={} errors={} bytes={}",
            self.input, self.output, self.dropped, self.errors, self.bytes
        )
    }
}

/// A cog that keeps a [`Meter`].
pub trait Metered {
    /// A handle on the cog's counters.
    fn meter(&self) -> Meter;
}

/// One meter on a [`Board`].
#[derive(Clone, Debug)]
pub struct Entry {
    /// The train's name.
    pub train: String,
    /// The cog's position in the train, from 0.
    pub index: usize,
    /// The cog's kind (`filter`).
    pub kind: String,
    /// Its counters.
    pub meter: Meter,
}

/// The meters of a process's cogs, by train and position; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Board(Arc<Mutex<BTreeMap<(String, usize), Entry>>>);

impl Board {
    /// Puts the meter of cog `index` of `train` on the board, replacing the
    /// one there (a train built again).
    pub fn put(&self, train: &str, index: usize, kind: &str, meter: Meter) {
        let entry = Entry {
            train: train.to_owned(),
            index,
            kind: kind.to_owned(),
            meter,
        };
        self.lock().insert((train.to_owned(), index), entry);
    }

    /// The meters of `train` (every train's if `None`), by train and position.
    pub fn entries(&self, train: Option<&str>) -> Vec<Entry> {
        self.lock()
            .values()
            .filter(|e| train.map_or(true, |t| e.train == t))
            .cloned()
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, usize), Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Wraps a registry constructor so that the cogs it builds put their meter
/// on `board`, under their train and position:
/// `r.add("filter", "...", metered(&board, "filter", |s, _| Filter::new(s)))`.
pub fn metered<S, C, F>(board: &Board, kind: &'static str, build: F) -> impl Fn(S, &BuildEnv) -> Result<C, Error>
where
    C: Metered,
    F: Fn(S, &BuildEnv) -> Result<C, Error>,
{
    let board = board.clone();
    move |settings, env| {
        let cog = build(settings, env)?;
        board.put(&env.train, env.index, kind, cog.meter());
        Ok(cog)
    }
}

/// The registry constructor of the `stats` kind: a [`Stats`] cog reading
/// `board`, and on it as a probe.
pub fn kind(board: &Board) -> impl Fn(StatsSettings, &BuildEnv) -> Result<Stats, Error> {
    let board = board.clone();
    move |settings, env| {
        let stats = Stats::new(settings)?.board(board.clone(), &env.train);
        board.put(&env.train, env.index, "stats", stats.meter());
        Ok(stats)
    }
}

/// Which meters a [`Stats`] cog logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Those of its own train (the default).
    #[default]
    Train,
    /// Those of every train.
    All,
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Train => "train",
            Scope::All => "all",
        })
    }
}

/// Settings of [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSettings {
    /// Seconds between two reports; 0 reports only on SIGUSR1 and at the
    /// end. Default 60.
    pub interval_secs: u64,
    /// Report on SIGUSR1 too. Default true.
    pub on_sigusr1: bool,
    /// Whose meters: `"train"` (default), this cog's train; `"all"`, every
    /// train's.
    pub scope: Scope,
}

impl Default for StatsSettings {
    fn default() -> Self {
        StatsSettings {
            interval_secs: 60,
            on_sigusr1: true,
            scope: Scope::Train,
        }
    }
}

impl StatsSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval_secs > 366 * 86_400 {
            return Err(Error::setting("interval_secs", "at most a year (31622400)"));
        }
        Ok(())
    }
}

/// Timer key: a report is due.
const TICK: u64 = 1;
/// Signal key: SIGUSR1.
const USR1: u64 = 2;

type Sink = Box<dyn FnMut(&str)>;

/// Logs the meters of a [`Board`] (see the [module docs](self)) and counts
/// what passes it.
pub struct Stats<D = Event> {
    settings: StatsSettings,
    board: Board,
    train: Option<String>,
    bytes: Option<Getter<D, [u8]>>,
    probe: Meter,
    sink: Option<Sink>,
    started: Option<Instant>,
}

impl<D> fmt::Debug for Stats<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stats")
            .field("settings", &self.settings)
            .field("train", &self.train)
            .field("probe", &self.probe.counts())
            .finish_non_exhaustive()
    }
}

impl Stats<Event> {
    /// A `stats` cog counting the raw bytes of events; its board is empty
    /// until [`board`](Self::board) gives one.
    pub fn new(settings: StatsSettings) -> Result<Self, Error> {
        Stats::with_bytes(settings, Some(Getter::<Event, [u8]>::raw()))
    }
}

impl<D: 'static> Stats<D> {
    /// A `stats` cog for any data, counting the bytes `bytes` reads (none
    /// without one).
    pub fn with_bytes(settings: StatsSettings, bytes: Option<Getter<D, [u8]>>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Stats {
            settings,
            board: Board::default(),
            train: None,
            bytes,
            probe: Meter::default(),
            sink: None,
            started: None,
        })
    }

    /// Reads `board`; `train` is this cog's train (for `scope = "train"`).
    pub fn board(mut self, board: Board, train: &str) -> Self {
        self.board = board;
        self.train = Some(train.to_owned());
        self
    }

    /// Hands every report line to `sink` as well as to the log.
    pub fn sink(mut self, sink: impl FnMut(&str) + 'static) -> Self {
        self.sink = Some(Box::new(sink));
        self
    }

    /// The report, one line per meter: `train[index] kind: in=.. out=.. ..`.
    pub fn report(&self) -> Vec<String> {
        let train = match self.settings.scope {
            Scope::Train => self.train.as_deref(),
            Scope::All => None,
        };
        self.board
            .entries(train)
            .into_iter()
            .map(|e| format!("{}[{}] {}: {}", e.train, e.index, e.kind, e.meter.counts()))
            .collect()
    }

    fn log(&mut self, why: &str, now: Instant) {
        let up = self
            .started
            .map_or(0.0, |s| now.saturating_duration_since(s).as_secs_f64());
        let mut lines = self.report();
        if lines.is_empty() {
            // Not on a board: the probe is all there is to say.
            lines.push(format!(
                "{}: {}",
                self.train.as_deref().unwrap_or("stats"),
                self.probe.counts()
            ));
        }
        for line in lines {
            log::info!("stats ({why}, after {up:.1}s): {line}");
            if let Some(sink) = &mut self.sink {
                sink(&format!("{why}: {line}"));
            }
        }
    }
}

impl<D: 'static> Metered for Stats<D> {
    fn meter(&self) -> Meter {
        self.probe.clone()
    }
}

impl<D: 'static> Cog<D> for Stats<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let bytes = self.bytes.as_ref().and_then(|g| g.get(&datum)).map_or(0, <[u8]>::len);
        self.probe.took(bytes);
        self.probe.emitted();
        ctx.emit(datum)
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.started = Some(ctx.now());
        if self.settings.interval_secs > 0 {
            if let Err(e) = ctx.every(Duration::from_secs(self.settings.interval_secs), TICK) {
                log::error!("stats: cannot bind its timer ({e}); reporting only at the end");
            }
        }
        if self.settings.on_sigusr1 {
            if let Err(e) = ctx.on_signal(libc::SIGUSR1, USR1) {
                log::error!("stats: cannot bind SIGUSR1 ({e})");
            }
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        let why = if key == USR1 { "SIGUSR1" } else { "interval" };
        self.log(why, ctx.now());
    }

    fn done(&mut self, core: &mut Core) {
        // After every cog finished: the counts are final.
        self.log("final", core.now());
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stats scope={}", self.settings.scope)?;
        match self.settings.interval_secs {
            0 => f.write_str(" interval=off")?,
            n => write!(f, " interval={n}s")?,
        }
        if self.settings.on_sigusr1 {
            f.write_str(" +SIGUSR1")?;
        }
        Ok(())
    }
}
