//! The `stats` cog: logs the meters of a [`Board`] per train.
//!
//! The processing cogs keep [`Meter`]s (see [`meter`](crate::meter)); whoever
//! builds the cogs puts them on a [`Board`] (the `tourbillon` binary does,
//! for every cog it builds from configuration). The [`Stats`] cog (kind
//! `stats`) logs what the board holds for its train (or every train) every
//! `interval_secs`, on SIGUSR1, and once more when the escapement is done.
//! Where it sits in the train, it also counts what passes it, so a `stats`
//! cog after a cog that keeps no meter (a supply, a decoder) shows what that
//! cog let through. When trains read other trains, each report ends with
//! the fill of their input queues (data waiting, capacity, peak).

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Core, Event, Fired, Next, QueueFill};

use crate::meter::{Board, Meter, Metered};
use crate::Error;

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
            .map(|e| {
                let mut line = format!("{}[{}] {}: {}", e.train, e.index, e.kind, e.meter.counts());
                for (name, n) in e.meter.named() {
                    line.push_str(&format!(" {name}={n}"));
                }
                line
            })
            .collect()
    }

    /// The report line of the input queues between trains (`None` when no
    /// train reads another): `queues: TRAIN len/capacity peak=N, …`.
    pub fn queue_line(queues: &[QueueFill]) -> Option<String> {
        if queues.is_empty() {
            return None;
        }
        let fills: Vec<String> = queues
            .iter()
            .map(|q| format!("{} {}/{} peak={}", q.train, q.len, q.capacity, q.peak))
            .collect();
        Some(format!("queues: {}", fills.join(", ")))
    }

    fn log(&mut self, why: &str, now: Instant, queues: &[QueueFill]) {
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
        lines.extend(Self::queue_line(queues));
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
        let queues = ctx.core().queues();
        self.log(why, ctx.now(), &queues);
    }

    fn done(&mut self, core: &mut Core) {
        // After every cog finished: the counts are final.
        let queues = core.queues();
        self.log("final", core.now(), &queues);
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
