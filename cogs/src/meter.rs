//! The counters every processing cog keeps about itself, and the board
//! that collects them.
//!
//! A [`Meter`] is the five counts a processing cog keeps about itself:
//! data in, data out, data dropped (filtered out, duplicates, over a rate
//! limit, not sampled, unparsable by setting), errors (a value it could not
//! work with: an invalid address, an unparsable time), and the bytes of the
//! data in (their raw bytes, for [`Event`](tourbillon::Event)s). The cog is
//! the only writer, so counting costs a plain load and store; anyone holding
//! a clone reads.
//!
//! A [`Counter`] is one count a cog keeps and others read.
//!
//! A [`Board`] collects the meters of a process's cogs by train and
//! position: whoever builds the cogs puts on it those that keep a meter
//! ([`Metered`]), and the [`Stats`](crate::step::stats::Stats) cog logs what
//! it holds.
//!
//! Why a board and not a wrapper around every cog: what a cog emits goes
//! straight to the next cog through its context, which a wrapper cannot
//! intercept, so only the cog itself knows its `out` and `dropped`.
//!
//! ```
//! use tourbillon_cogs::meter::{Board, Meter};
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

use tourbillon::{Context, Next};

#[derive(Debug, Default)]
struct Cells {
    input: AtomicU64,
    output: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    /// Counts of the cog's own, by name (a route's per output).
    named: Vec<(String, AtomicU64)>,
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
    /// A meter that also keeps counts of the cog's own, by name (a
    /// route's data per output); [`count`](Self::count) takes their
    /// position in `names`.
    pub fn with_named<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Meter {
        Meter(Arc::new(Cells {
            named: names.into_iter().map(|n| (n.into(), AtomicU64::new(0))).collect(),
            ..Cells::default()
        }))
    }

    /// One more of the named count at position `i` (ignored if there is none).
    pub fn count(&self, i: usize) {
        if let Some((_, cell)) = self.0.named.get(i) {
            bump(cell, 1);
        }
    }

    /// The named counts now, in the order given.
    pub fn named(&self) -> Vec<(String, u64)> {
        self.0
            .named
            .iter()
            .map(|(n, c)| (n.clone(), c.load(Ordering::Relaxed)))
            .collect()
    }

    /// One datum in, of `bytes` bytes.
    pub fn took(&self, bytes: usize) {
        bump(&self.0.input, 1);
        bump(&self.0.bytes, bytes as u64);
    }

    /// Counts in bulk: `input` data in, `output` out, `bytes` bytes in (a
    /// supply counts lines and the bytes it read apart).
    pub fn counted(&self, input: u64, output: u64, bytes: u64) {
        bump(&self.0.input, input);
        bump(&self.0.output, output);
        bump(&self.0.bytes, bytes);
    }

    /// One datum out.
    pub fn emitted(&self) {
        bump(&self.0.output, 1);
    }

    /// `n` data out (a drain's batch written).
    pub fn emitted_n(&self, n: u64) {
        bump(&self.0.output, n);
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

    /// What the cog tells beyond its meter (a tail's files and lag, a
    /// drain's writes), if anything.
    fn probe(&self) -> Option<Arc<dyn Probe>> {
        None
    }
}

/// Whether a [`Figure`] only grows or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FigureKind {
    /// Only grows (a count since the start); its name ends in `_total`.
    Counter,
    /// Goes up and down (files open now, bytes behind).
    Gauge,
}

/// One figure a [`Probe`] reads: a metric's name (without the
/// `tourbillon_` prefix), what it means, and its value, with at most one
/// label of its own (a tail's `file`).
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// `tail_rotations_total`.
    pub name: &'static str,
    /// What it counts, one line.
    pub help: &'static str,
    /// Counter or gauge.
    pub kind: FigureKind,
    /// A label of its own, as name and value.
    pub label: Option<(&'static str, String)>,
    /// The value now.
    pub value: f64,
}

impl Figure {
    /// A counter.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Figure {
        Figure {
            name,
            help,
            kind: FigureKind::Counter,
            label: None,
            value: value as f64,
        }
    }

    /// A gauge.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Figure {
        Figure {
            name,
            help,
            kind: FigureKind::Gauge,
            label: None,
            value,
        }
    }

    /// The same figure with a label of its own.
    pub fn with_label(mut self, name: &'static str, value: impl Into<String>) -> Figure {
        self.label = Some((name, value.into()));
        self
    }
}

/// Figures a cog keeps beyond its [`Meter`], read from any thread while
/// it runs: whatever it reads must be shared (atomics, a short lock).
pub trait Probe: Send + Sync + fmt::Debug {
    /// Appends the figures now to `out`.
    fn read(&self, out: &mut Vec<Figure>);
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
    /// What it tells beyond them, if anything.
    pub probe: Option<Arc<dyn Probe>>,
}

/// The meters of a process's cogs, by train and position; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Board(Arc<Mutex<BTreeMap<(String, usize), Entry>>>);

impl Board {
    /// Puts the meter of cog `index` of `train` on the board, replacing the
    /// one there (a train built again).
    pub fn put(&self, train: &str, index: usize, kind: &str, meter: Meter) {
        self.put_probed(train, index, kind, meter, None)
    }

    /// Takes the meters of `train` off the board (a train retired).
    pub fn forget(&self, train: &str) {
        self.lock().retain(|(t, _), _| t != train);
    }

    /// Like [`put`](Self::put), with the cog's [`Probe`].
    pub fn put_probed(&self, train: &str, index: usize, kind: &str, meter: Meter, probe: Option<Arc<dyn Probe>>) {
        let entry = Entry {
            train: train.to_owned(),
            index,
            kind: kind.to_owned(),
            meter,
            probe,
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

    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }
}
