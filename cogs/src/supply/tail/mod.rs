//! [`Tail`]: follows files and emits their lines, without losing one.
//!
//! # What it follows
//!
//! Paths and [glob patterns](TailSettings::include) (`*`, `?`, `[a-z]`,
//! `**`), minus [excludes](TailSettings::exclude). The tail watches each
//! file it reads and the directories its patterns look into through the
//! escapement's inotify, so a file that does not exist yet is read as soon
//! as it appears, and a new file matching a pattern is picked up at once. A
//! path that cannot be watched through inotify (inotify off, or out of
//! watches) is polled every [`poll_interval_ms`](TailSettings::poll_interval_ms)
//! instead.
//!
//! # Which file is which
//!
//! A file is its device and inode, checked against a CRC of its first bytes
//! (so a new file on a reused inode is not mistaken for the old one). Two
//! paths to one inode (hardlinks) are one file, read once.
//!
//! - **Rotation by rename** (logrotate's `create`): the old file, rotated
//!   away, is read to its end before the new file at the path is read from
//!   its start; it is closed once it has been quiet for
//!   [`rotate_wait_ms`](TailSettings::rotate_wait_ms) and all its lines are
//!   delivered. If the rotated name matches a pattern too, it simply stays
//!   followed under that name.
//! - **copytruncate**: a file shorter than the position read, or whose
//!   first bytes changed, was truncated: a warning, and it is read again
//!   from the start. If the copy matches a pattern too, it is recognised
//!   (it begins with the truncated file's first bytes) and read on from
//!   where the original was read to, so the lines written between the last
//!   read and the truncation are not lost and the rest is not read twice.
//!   A new file that begins like a followed file waits for that, at most
//!   [`rotate_wait_ms`](TailSettings::rotate_wait_ms), before it is read
//!   from its start.
//! - **Deletion**: like a rotation; a file of the same name that appears
//!   later is a new file.
//! - **Hardlink swaps** (`ln -f new path`): the path now names another
//!   inode: a rotation.
//! - **Lost events** (`Q_OVERFLOW`): every pattern is expanded again and
//!   every file read to its end.
//!
//! # Descriptors
//!
//! The tail holds at most [`max_open_files`](TailSettings::max_open_files)
//! files open, so the drains, sockets and checkpoint of the process always
//! get a descriptor. When it needs one more, it closes the file read least
//! lately among those read to their end (keeping where it was, the line
//! number and a held partial line); that file is opened again when it
//! grows, and checked to be the same file (device, inode, first bytes): if
//! its path names another file by then, that is a rotation, and the file is
//! looked for by inode in the directory it was in, to be read to its end.
//! Files rotated away with bytes left to read stay open. Files that need a
//! descriptor while none is free wait for one, first come first served.
//!
//! A directory that cannot be listed, or a path that cannot be looked at
//! (out of descriptors, permission, I/O error), is not taken for empty or
//! gone: the files followed there stay followed as they were, and the look
//! is tried again every checkpoint interval. These failures, and files that
//! cannot be opened for want of descriptors, are logged at most once per
//! 10 s, with how often they happened.
//!
//! # Where it starts
//!
//! From the [checkpoint](TailSettings::checkpoint_dir) when it knows the
//! file; else at [`read_from`](TailSettings::read_from) for files present at
//! start, and at the beginning for files that appear while it runs. A
//! checkpoint position advances only over lines the train reported done
//! (`event_done`: written by a drain, or dropped), so a restart after a
//! crash or `kill -9` repeats at most the lines of one
//! [checkpoint interval](TailSettings::checkpoint_interval_ms), and never
//! loses one. This needs an id accessor on the train
//! ([`Train::ids`](tourbillon::Train::ids)); without one, positions advance
//! when lines are read.
//!
//! A file found while the tail runs is in the checkpoint, durably, before
//! its first line goes out. A file rotated while the tail was stopped is
//! looked for by identity where it can have gone: the patterns'
//! directories, the directory it really was in (behind a symlink: the
//! Kubernetes layout, a retargeted symlink) and
//! [`rotated_paths`](TailSettings::rotated_paths) (logrotate's `olddir`);
//! found, it is read to its end from its position; not found, a warning
//! names it and the bytes of it never delivered. A stop (SIGTERM) in the
//! middle of a backlog emits no line cut at the end of a read: only a
//! file's true last line, without its newline, goes out unterminated.
//!
//! # How it reads
//!
//! Files are read in turns, at most
//! [`read_bytes_per_turn`](TailSettings::read_bytes_per_turn) each before
//! the others get theirs, so one busy file cannot starve the rest. While a
//! cog downstream is congested nothing is read (nothing is dropped either),
//! until it says it has room again. Lines are split as the [`lines`](crate::step::lines)
//! cog does (maximum length, `\r\n`, UTF-8 policy); a last line without its
//! newline is held until the newline comes, and emitted at finish or after
//! [`partial_line_idle_ms`](TailSettings::partial_line_idle_ms).
//!
//! In [batch mode](TailSettings::batch) every file is read to its end, then
//! the tail says it is exhausted and the escapement finishes: every line
//! goes through the whole train and is flushed before the process exits.
//!
//! ```no_run
//! use tourbillon::{Escapement, Event, Train};
//! use tourbillon_cogs::drain::stdout::StdoutDrain;
//! use tourbillon_cogs::supply::tail::{Tail, TailSettings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = TailSettings {
//!     include: vec!["/var/log/app/*.log".into()],
//!     exclude: vec!["*.gz".into()],
//!     checkpoint_dir: Some("/var/lib/tourbillon/tail".into()),
//!     ..TailSettings::default()
//! };
//! let mut esc = Escapement::new()?;
//! esc.add_train(
//!     Train::new("follow")
//!         .ids(Event::id_getter())
//!         .cog(Tail::new(settings)?)
//!         .cog(StdoutDrain::new(Default::default())?),
//! );
//! esc.run()?; // until SIGTERM
//! # Ok(()) }
//! ```

mod glob;
mod limits;
mod position;
mod recover;
mod tracked;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::store::{FsyncPolicy, Store, StoreOptions};
use tourbillon::{
    Cog, Context, Core, Event, EventId, EventMask, Finish, Fired, ImmediateId, Next, Role, TimerId, WatchEvent,
    WatchId, WatchMask,
};

use self::glob::{gone, Exclude, Expansion, Pattern};
use self::limits::{out_of_fds, Budget, Pending, Snapshot, Trouble, Want};
pub use self::position::Position;
use self::position::{Acks, Change, Delivered, Mark, Positions, Saved};
use self::tracked::{compatible, read_full_at, Check, Resume, Suspect, Tracked};
use crate::step::lines::{CutLog, LineFlags, LinesSettings};
use crate::{Counter, Error};

/// Where to start reading a file the checkpoint does not know, among those
/// present when the tail starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte (the default: nothing is skipped).
    #[default]
    Beginning,
    /// From the end: only lines written from now on (a last line still
    /// being written is read whole).
    End,
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadFrom::Beginning => "beginning",
            ReadFrom::End => "end",
        })
    }
}

/// The largest [`fingerprint_bytes`](TailSettings::fingerprint_bytes).
pub const MAX_FINGERPRINT_BYTES: usize = 1 << 20;

/// Settings of [`Tail`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSettings {
    /// Files to follow: paths or glob patterns (`*`, `?`, `[a-z]`, `[!a-z]`,
    /// `**` for any number of directories, `\` to escape). Relative ones are
    /// taken from the working directory at construction. At least one; no
    /// default.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub include: Vec<String>,
    /// Files not to follow, among those `include` matches: a pattern without
    /// a `/` matches file names (`"*.gz"`), one with a `/` whole paths.
    /// Default none.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub exclude: Vec<String>,
    /// Where to start in a file the checkpoint does not know, if it is
    /// there when the tail starts: `"beginning"` (default) or `"end"`.
    /// Files that appear later are always read from the beginning.
    pub read_from: ReadFrom,
    /// Read every file to its end, then finish (and exit) instead of
    /// following. Default false.
    pub batch: bool,
    /// Milliseconds between two looks at a path that inotify cannot watch
    /// (inotify unavailable or switched off, or out of watches). At least 1.
    /// Default 1000.
    pub poll_interval_ms: u64,
    /// Bytes read from one file before the other files get their turn. At
    /// least 1. Default 262144 (256 KiB).
    pub read_bytes_per_turn: usize,
    /// Milliseconds a last line without its newline waits for more bytes
    /// before it is emitted as it is; 0 waits until finish. Default 0.
    pub partial_line_idle_ms: u64,
    /// Milliseconds a file rotated away or deleted is kept open, in case
    /// its writer still appends; it is closed after that once it is read to
    /// its end and every line of it is delivered. Default 5000.
    pub rotate_wait_ms: u64,
    /// Directory of the state store that keeps the positions across
    /// restarts (created if missing; one tail per directory). Default none:
    /// nothing is kept, every start goes by `read_from`.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Milliseconds between two saves of the positions: what a restart
    /// after a crash may read again. At least 1. Default 1000.
    pub checkpoint_interval_ms: u64,
    /// First bytes of a file whose checksum tells it from another file on
    /// the same inode. At least 1, at most 1048576 (1 MiB). Default 256.
    pub fingerprint_bytes: usize,
    /// Where files rotated away may go besides the directories the
    /// patterns look into: glob patterns (as `include`) of files, such as
    /// logrotate's `olddir` (`["/var/log/app/old/*"]`). Only used at start,
    /// to find the files the checkpoint knows that were rotated there while
    /// the tail was stopped, and read what is left of them; never followed
    /// otherwise. Default none.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub rotated_paths: Vec<String>,
    /// Files held open at once, at most (see [Descriptors](self#descriptors));
    /// more are followed by closing idle ones and opening them again when
    /// they grow. At least 1. Default 1024, but at most half the soft
    /// `RLIMIT_NOFILE` (`ulimit -n`) of the process when the settings are
    /// made, so the rest of the process keeps descriptors of its own.
    pub max_open_files: usize,
    /// How lines are split (maximum length, `\r\n`, UTF-8).
    pub lines: LinesSettings,
}

impl Default for TailSettings {
    fn default() -> Self {
        TailSettings {
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            batch: false,
            poll_interval_ms: 1000,
            read_bytes_per_turn: 256 * 1024,
            partial_line_idle_ms: 0,
            rotate_wait_ms: 5000,
            checkpoint_dir: None,
            checkpoint_interval_ms: 1000,
            fingerprint_bytes: 256,
            rotated_paths: Vec::new(),
            max_open_files: limits::default_max_open_files(),
            lines: LinesSettings::default(),
        }
    }
}

impl TailSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.include.is_empty() {
            return Err(Error::setting("include", "required: at least one path or pattern"));
        }
        for (key, value) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("read_bytes_per_turn", self.read_bytes_per_turn as u64),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms),
            ("fingerprint_bytes", self.fingerprint_bytes as u64),
            ("max_open_files", self.max_open_files as u64),
        ] {
            if value == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        if self.fingerprint_bytes > MAX_FINGERPRINT_BYTES {
            return Err(Error::setting(
                "fingerprint_bytes",
                format!("must be at most {MAX_FINGERPRINT_BYTES} (1 MiB): they are read and kept per file"),
            ));
        }
        self.lines.validate().map_err(|e| match e {
            Error::Setting { key, message } => Error::Setting {
                key: format!("lines.{key}"),
                message,
            },
            other => other,
        })
    }
}

impl fmt::Display for TailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "include=[{}]", self.include.join(", "))?;
        if !self.exclude.is_empty() {
            write!(f, " exclude=[{}]", self.exclude.join(", "))?;
        }
        write!(
            f,
            " read_from={} batch={} poll_interval_ms={} read_bytes_per_turn={} partial_line_idle_ms={} \
             rotate_wait_ms={}",
            self.read_from,
            self.batch,
            self.poll_interval_ms,
            self.read_bytes_per_turn,
            self.partial_line_idle_ms,
            self.rotate_wait_ms
        )?;
        match &self.checkpoint_dir {
            Some(dir) => write!(
                f,
                " checkpoint_dir={} checkpoint_interval_ms={}",
                dir.display(),
                self.checkpoint_interval_ms
            )?,
            None => f.write_str(" checkpoint_dir=none")?,
        }
        if !self.rotated_paths.is_empty() {
            write!(f, " rotated_paths=[{}]", self.rotated_paths.join(", "))?;
        }
        write!(
            f,
            " fingerprint_bytes={} max_open_files={} {}",
            self.fingerprint_bytes, self.max_open_files, self.lines
        )
    }
}

/// One line the tail hands to its maker.
#[derive(Clone, Copy, Debug)]
pub struct TailLine<'a> {
    /// A fresh id for the datum made from it.
    pub id: EventId,
    /// The line, without its ending.
    pub bytes: &'a [u8],
    /// The path of the file it was read from (as first found: lines read
    /// from a rotated file keep the name they were written under).
    pub origin: &'a Arc<str>,
    /// Its number in the file, from 1 (with `read_from = "end"`, counted
    /// from where reading started).
    pub number: u64,
    /// What is special about it (cut, replaced UTF-8, no newline).
    pub flags: LineFlags,
}

/// Counters of a [`Tail`], readable while it runs.
#[derive(Clone, Debug, Default)]
pub struct TailStats {
    /// Files holding a descriptor now (at most `max_open_files`).
    pub open: Counter,
    /// Files found and opened, in all.
    pub found: Counter,
    /// Files that lost their path (rotated away, deleted, swapped).
    pub rotated: Counter,
    /// Files found truncated (copytruncate) and read again from the start.
    pub truncated: Counter,
    /// Files closed for good after they were rotated away or deleted.
    pub closed: Counter,
    /// Lines emitted.
    pub lines: Counter,
    /// Bytes read.
    pub bytes: Counter,
    /// Times the patterns were expanded again.
    pub rescans: Counter,
    /// Times inotify lost events (`Q_OVERFLOW`).
    pub overflows: Counter,
    /// Positions saved to the checkpoint (log records and checkpoints).
    pub saves: Counter,
    /// Files read to their end closed to keep within `max_open_files`.
    pub closed_for_limit: Counter,
    /// Files closed for the limit opened again (they grew, or were rotated).
    pub reopened: Counter,
    /// Files and new files waiting for a descriptor now.
    pub waiting_for_descriptor: Counter,
    /// Directories that could not be listed and paths that could not be
    /// looked at (out of descriptors, permission, I/O error), in all.
    pub failed_looks: Counter,
    /// Opens that failed for want of descriptors (EMFILE, ENFILE), in all.
    pub failed_opens: Counter,
    /// Files closed for the limit, then rotated away or deleted out of
    /// reach (not in the directory they were in) before they could be
    /// opened again: bytes written to them meanwhile, if any, were not read.
    pub lost_while_closed: Counter,
}

type Maker<D> = Box<dyn FnMut(TailLine<'_>) -> D>;

/// Immediate and timer keys; watch keys carry a tag and a serial.
const PUMP: u64 = 1;
const RESCAN: u64 = 2;
const TICK: u64 = 3;
const IDLE: u64 = 4;
const FILE_TAG: u64 = 1 << 62;
const DIR_TAG: u64 = 1 << 61;
const SERIAL: u64 = DIR_TAG - 1;

/// How long a parked timer waits.
const PARKED: Duration = Duration::from_secs(24 * 3600);
/// Log records between two compacting checkpoints of the store.
const COMPACT_EVERY: usize = 64;
/// Largest single read.
const READ_CHUNK: usize = 64 * 1024;

fn file_mask() -> WatchMask {
    WatchMask::MODIFY | WatchMask::ATTRIB | WatchMask::MOVE_SELF | WatchMask::DELETE_SELF
}

fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// A watched directory: the (pattern, part) pairs its entries are matched
/// against.
#[derive(Debug)]
struct Dir {
    serial: u64,
    watch: Option<WatchId>,
    parts: BTreeSet<(usize, usize)>,
}

/// A file found truncated: what it began with, and where its copy goes on.
#[derive(Debug)]
struct Truncation {
    head: Vec<u8>,
    resume: Resume,
    at: Instant,
}

/// Whether a new file is a copy made by copytruncate.
#[derive(Debug, PartialEq, Eq)]
enum CopyVerdict {
    No,
    /// It may be: its first bytes are not all there yet, or its original
    /// is not truncated yet.
    Maybe,
    /// It is: it goes on from here.
    Of(Resume),
}

/// What [`Tail::reopen`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reopen {
    /// Open again: to be read.
    Open,
    /// Not opened: unchanged since it was closed at its end.
    AtEnd,
    /// Not opened: unchanged, or gone (a rescan will tell), or to be tried
    /// again later.
    Not,
    /// Waits for a descriptor.
    Starved,
}

/// How a read of one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadEnd {
    /// The turn's budget ran out (or a cog got congested): more to read.
    More,
    /// At the end of the file.
    Eof,
    /// Not read: it waits for another file, or it is gone.
    Skipped,
}

/// Follows files and emits one datum per line; see the [module docs](self).
pub struct Tail<D = Event> {
    settings: TailSettings,
    includes: Vec<Pattern>,
    excludes: Vec<Exclude>,
    /// `rotated_paths`: where a restart also looks for files rotated away.
    rotated: Vec<Pattern>,
    /// Files present at start, unknown to the checkpoint, started at their
    /// end (`read_from = "end"`): one that took the place of a checkpointed
    /// file while the tail was stopped is read from its start instead.
    started_at_end: HashSet<(u64, u64)>,
    /// Files whose identity a save has just made durable: to be read.
    released: Vec<u32>,
    /// Lines cut at `max_line_bytes`: counted and logged.
    cuts: CutLog,
    /// The last save failed (logged once until one succeeds).
    store_failing: bool,
    /// Likewise for the last checkpoint (compaction).
    checkpoint_failing: bool,
    /// Where the matched symlinks point (their directories are watched).
    targets: HashSet<PathBuf>,
    make: Maker<D>,
    files: Vec<Option<Tracked>>,
    free: Vec<u32>,
    by_inode: HashMap<(u64, u64), u32>,
    by_serial: HashMap<u64, u32>,
    /// Files waiting for the one with this serial to be read to its end.
    waiters: HashMap<u64, Vec<u32>>,
    next_serial: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    dir_serials: HashMap<u64, PathBuf>,
    ready: VecDeque<u32>,
    pump: Option<ImmediateId>,
    rescan: Option<ImmediateId>,
    /// A rescan must also read every file (events were lost).
    rescan_all: bool,
    /// Opening a file failed: try again at the next tick.
    retry_rescan: bool,
    /// Paths that could not be opened (logged once each).
    failing: HashSet<PathBuf>,
    /// Files truncated lately: their copy (copytruncate) goes on from there.
    truncations: Vec<Truncation>,
    /// Stopped reading for a congested cog: waiting for `resume`.
    waiting: bool,
    buf: Vec<u8>,
    acks: Acks,
    store: Option<Store<Saved, Change>>,
    saved: Positions,
    forgotten: Vec<(u64, u64)>,
    logged: usize,
    tick: Option<TimerId>,
    idle: Option<TimerId>,
    idle_due: Option<Instant>,
    exhausted: bool,
    finishing: bool,
    stats: TailStats,
    budget: Budget,
    looks: Trouble,
    opens: Trouble,
}

impl<D> fmt::Debug for Tail<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("settings", &self.settings)
            .field("files", &self.files.iter().flatten().collect::<Vec<_>>())
            .field("in_flight", &self.acks.len())
            .finish_non_exhaustive()
    }
}

impl Tail<Event> {
    /// Emits [`Event`]s: `raw` the line's bytes, `origin` the file's path,
    /// `line` its number, a fresh id.
    pub fn new(settings: TailSettings) -> Result<Self, Error> {
        Tail::with(settings, |line: TailLine<'_>| Event {
            id: line.id,
            data: serde_json::Value::Null,
            raw: line.bytes.to_vec(),
            origin: Some(Arc::clone(line.origin)),
            line: line.number,
        })
    }
}

/// The positions saved in a tail's checkpoint directory, for inspection;
/// fails while a tail has the directory open.
pub fn saved_positions(dir: impl AsRef<Path>) -> Result<Vec<Position>, Error> {
    let store = Store::<Saved, Change>::open(dir, StoreOptions::new())?;
    let positions = position::recover(&store)?;
    let mut all: Vec<Position> = positions.into_values().collect();
    all.sort_by_key(Position::key);
    Ok(all)
}

impl<D: 'static> Tail<D> {
    /// Emits what `make` builds from each line. Give the datum the line's
    /// [`id`](TailLine::id): the tail follows it to know when the line is
    /// delivered.
    pub fn with(settings: TailSettings, make: impl FnMut(TailLine<'_>) -> D + 'static) -> Result<Self, Error> {
        settings.validate()?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let includes = settings
            .include
            .iter()
            .map(|p| Pattern::parse(p, &cwd).map_err(|e| Error::setting("include", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let excludes = settings
            .exclude
            .iter()
            .map(|p| Exclude::parse(p, &cwd).map_err(|e| Error::setting("exclude", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let rotated = settings
            .rotated_paths
            .iter()
            .map(|p| Pattern::parse(p, &cwd).map_err(|e| Error::setting("rotated_paths", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let stats = TailStats::default();
        let (store, saved) = match &settings.checkpoint_dir {
            Some(dir) => {
                let store = Store::open(dir, StoreOptions::new().fsync(FsyncPolicy::Always))?;
                let saved = position::recover(&store)?;
                (Some(store), saved)
            }
            None => (None, Positions::default()),
        };
        Ok(Tail {
            includes,
            excludes,
            rotated,
            started_at_end: HashSet::new(),
            released: Vec::new(),
            cuts: CutLog::new(Duration::from_secs(10), settings.lines.max_line_bytes),
            store_failing: false,
            checkpoint_failing: false,
            targets: HashSet::new(),
            make: Box::new(make),
            files: Vec::new(),
            free: Vec::new(),
            by_inode: HashMap::new(),
            by_serial: HashMap::new(),
            waiters: HashMap::new(),
            next_serial: 0,
            dirs: BTreeMap::new(),
            dir_serials: HashMap::new(),
            ready: VecDeque::new(),
            pump: None,
            rescan: None,
            rescan_all: false,
            retry_rescan: false,
            failing: HashSet::new(),
            truncations: Vec::new(),
            waiting: false,
            buf: vec![0; READ_CHUNK.min(settings.read_bytes_per_turn)],
            acks: Acks::default(),
            store,
            saved,
            forgotten: Vec::new(),
            logged: 0,
            tick: None,
            idle: None,
            idle_due: None,
            exhausted: false,
            finishing: false,
            budget: Budget::new(settings.max_open_files),
            looks: Trouble::new(
                "cannot look at",
                "what is followed there is kept as it was; trying again every checkpoint interval",
                stats.failed_looks.clone(),
            ),
            opens: Trouble::new(
                "cannot open",
                "trying again when a file is closed or every checkpoint interval",
                stats.failed_opens.clone(),
            ),
            stats,
            settings,
        })
    }

    /// Its counters, shared: read them while the train runs.
    pub fn stats(&self) -> TailStats {
        self.stats.clone()
    }

    /// Its settings.
    pub fn settings(&self) -> &TailSettings {
        &self.settings
    }

    fn file(&mut self, slot: u32) -> Option<&mut Tracked> {
        self.files.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.settings.poll_interval_ms)
    }

    // ---- finding files ------------------------------------------------------

    fn expand(&mut self) -> Expansion {
        let mut exp = Expansion::default();
        for (i, p) in self.includes.iter().enumerate() {
            p.expand(i, &mut exp);
        }
        exp.files.retain(|f| !self.excludes.iter().any(|e| e.matches(f)));
        self.watch_targets(&mut exp);
        exp
    }

    /// The directories the matched symlinks point into are watched too: a
    /// file renamed there and a new one made in its place (the kubelet's
    /// rotation behind `/var/log/containers/*.log`) change nothing in the
    /// symlink's own directory. Followed files' first paths count even
    /// while their symlink dangles, between the rename and the creation.
    fn watch_targets(&mut self, exp: &mut Expansion) {
        self.targets.clear();
        let origins = self.files.iter().flatten().map(|f| PathBuf::from(f.origin.as_ref()));
        let links: BTreeSet<PathBuf> = exp.files.iter().cloned().chain(origins).collect();
        for link in links {
            if !std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let (Ok(to), Some(parent)) = (std::fs::read_link(&link), link.parent()) else {
                continue;
            };
            let to = parent.join(to);
            let (Some(name), Some(dir)) = (to.file_name(), to.parent()) else {
                continue;
            };
            if let Ok(dir) = std::fs::canonicalize(dir) {
                self.targets.insert(dir.join(name));
                exp.dirs.entry(dir).or_default();
            }
        }
    }

    /// Expands the patterns and brings the followed files and watched
    /// directories in line with what they match now.
    fn rescan<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, startup: bool) {
        self.stats.rescans.add(1);
        let mut exp = self.expand();
        if !self.settings.batch {
            // A directory is watched before its entries count: an entry
            // made between the listing and the watch would go unseen.
            for _ in 0..8 {
                if self.sync_dirs(&exp, ctx) == 0 {
                    break;
                }
                exp = self.expand();
            }
        }
        let now = ctx.now();
        let mut found: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
        let mut looked: HashSet<PathBuf> = HashSet::new();
        for path in &exp.files {
            match std::fs::metadata(path) {
                Ok(m) => {
                    found.entry((m.dev(), m.ino())).or_default().push(path.clone());
                    looked.insert(path.clone());
                }
                Err(e) if !gone(&e) => exp.failed.push((path.clone(), e)),
                Err(_) => {}
            }
        }
        // Where a look failed, each path followed there is looked at on its
        // own; if that fails too, it keeps naming its file: a failed look
        // says nothing about what is there.
        let mut unknown: HashSet<PathBuf> = HashSet::new();
        if !exp.failed.is_empty() {
            let old: Vec<PathBuf> = self
                .files
                .iter()
                .flatten()
                .flat_map(|f| f.paths.iter())
                .filter(|p| !looked.contains(*p) && exp.covers(p))
                .cloned()
                .collect();
            for path in old {
                match std::fs::metadata(&path) {
                    Ok(m) => found.entry((m.dev(), m.ino())).or_default().push(path),
                    Err(e) if gone(&e) => {}
                    Err(_) => {
                        unknown.insert(path);
                    }
                }
            }
            for (path, e) in &exp.failed {
                self.looks.hit(path, e, now);
            }
            self.retry_rescan = true;
        }
        // Paths that moved from one file to another: the new file waits
        // until the old one is read to its end.
        let mut lost: HashMap<PathBuf, u64> = HashMap::new();
        for slot in 0..self.files.len() as u32 {
            let Some(file) = self.file(slot) else { continue };
            let mut paths = found.remove(&file.key()).unwrap_or_default();
            for old in &file.paths {
                if unknown.contains(old) {
                    paths.push(old.clone());
                } else if !paths.contains(old) {
                    lost.insert(old.clone(), file.serial);
                }
            }
            paths.sort();
            paths.dedup();
            let was_orphan = file.is_orphan();
            let former = file.paths.first().cloned();
            // A closed file could not be reopened by a path it lost: its
            // turn comes now, by the path it has.
            let moved = file.file.is_none() && !paths.is_empty() && file.paths != paths;
            file.paths = paths;
            if moved {
                self.queue(slot, ctx);
            }
            let Some(file) = self.file(slot) else { continue };
            if file.paths.is_empty() && !was_orphan {
                file.orphan_since = Some(now);
                // Saved again, with where it went.
                file.dirty = true;
                if file.file.is_none() {
                    // Closed for the limit: it is to be found by inode
                    // where it was, and read to its end.
                    file.former = former;
                    file.at_eof = false;
                }
                log::info!(
                    "{}: rotated away or deleted; reading it to its end before closing it",
                    file.origin
                );
                self.stats.rotated.add(1);
                self.queue(slot, ctx);
            } else if !file.paths.is_empty() && was_orphan {
                file.orphan_since = None;
            }
        }
        let mut fresh: Vec<(PathBuf, Vec<PathBuf>, (u64, u64))> = found
            .into_iter()
            .map(|(key, mut paths)| {
                paths.sort();
                (paths[0].clone(), paths, key)
            })
            .collect();
        fresh.sort();
        let found = self.stats.found.get();
        for (path, paths, key) in fresh {
            let after = paths.iter().find_map(|p| lost.get(p).copied());
            self.offer(
                Pending {
                    path,
                    paths,
                    key,
                    after,
                    startup,
                },
                ctx,
            );
        }
        if self.stats.found.get() != found && !startup {
            // New files are in the checkpoint, durably, before their first
            // line goes out: a crash, then a rotation while stopped, must
            // not make them strangers (one write for all found at once; at
            // start, once the rotated ones are found too).
            self.save(false);
            self.release(ctx);
        }
        if std::mem::take(&mut self.rescan_all) {
            for slot in 0..self.files.len() as u32 {
                self.queue(slot, ctx);
            }
        }
    }

    /// A new file found: opened now if a descriptor is free (or can be
    /// freed) and none is waiting for one, else it waits its turn.
    fn offer<N: Next<D> + ?Sized>(&mut self, p: Pending, ctx: &mut Context<'_, D, N>) {
        if self.budget.pending.contains(&p.path) {
            return;
        }
        if self.budget.starved.is_empty() && self.reserve() {
            self.add(&p.path, p.paths, p.after, p.startup, ctx);
        } else {
            log::debug!("{}: waits for a descriptor", p.path.display());
            self.budget.wait_open(p);
            self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
        }
    }

    /// Opens a file found at `path` (and `paths`), unless it is one already
    /// followed under another name.
    fn add<N: Next<D> + ?Sized>(
        &mut self,
        path: &Path,
        paths: Vec<PathBuf>,
        after: Option<u64>,
        startup: bool,
        ctx: &mut Context<'_, D, N>,
    ) {
        let serial = self.next_serial;
        let mut file = match Tracked::open(path, serial, self.settings.fingerprint_bytes, &self.settings.lines) {
            Ok(file) => file,
            Err(e) if gone(&e) => return,
            Err(e) if out_of_fds(&e) => {
                self.opens.hit(path, &e, ctx.now());
                self.retry_rescan = true;
                return;
            }
            Err(e) => {
                // Once per path, not once per retry (too many open files).
                if self.failing.insert(path.to_path_buf()) {
                    log::error!(
                        "{}: cannot open: {e}; trying again every checkpoint interval",
                        path.display()
                    );
                } else {
                    log::debug!("{}: cannot open: {e}", path.display());
                }
                self.retry_rescan = true;
                return;
            }
        };
        if self.failing.remove(path) {
            log::info!("{}: opened at last", path.display());
        }
        if let Some(&slot) = self.by_inode.get(&file.key()) {
            // Renamed between the stat and the open, onto a file we have.
            if let Some(known) = self.file(slot) {
                known.paths.extend(paths);
                known.paths.sort();
                known.paths.dedup();
                known.orphan_since = None;
            }
            return;
        }
        self.next_serial += 1;
        file.paths = paths;
        // A copy can only be told from its original while following, and
        // the checkpoint knows its own files.
        let suspect = (!self.settings.batch
            && !self.saved.contains_key(&file.key())
            && self.copy_of(&file.head.bytes, None, startup) != CopyVerdict::No)
            .then(|| Suspect { since: ctx.now() });
        let start = if suspect.is_some() {
            log::debug!(
                "{}: begins like a file followed: maybe its copy (copytruncate)",
                file.origin
            );
            Ok(Mark::default())
        } else if startup {
            let start = self.start_mark(&file);
            if self.settings.read_from == ReadFrom::End && !self.saved.contains_key(&file.key()) {
                self.started_at_end.insert(file.key());
            }
            start
        } else {
            log::info!("{}: new file, reading it from the start", file.origin);
            Ok(Mark::default())
        };
        file.copy_of = suspect;
        match start {
            Ok(mark) => file.start_at(mark),
            Err(e) => {
                log::error!("{}: cannot read: {e}; trying again in a while", path.display());
                self.retry_rescan = true;
                return;
            }
        }
        file.durable = self.store.is_none() || self.saved.get(&file.key()).is_some_and(|saved| file.is(saved));
        self.saved.remove(&file.key());
        if let Some(s) = after.filter(|s| self.by_serial.contains_key(s)) {
            file.after = Some(s);
        }
        let watch = file.path();
        self.insert(file, &watch, ctx);
    }

    /// Where a file present at start begins: its checkpoint, else `read_from`.
    fn start_mark(&self, file: &Tracked) -> std::io::Result<Mark> {
        match self.saved.get(&file.key()) {
            Some(saved) if file.is(saved) => {
                let size = file.handle()?.metadata()?.len();
                if size < saved.pos {
                    log::warn!(
                        "{}: {size} bytes, shorter than the {} saved: truncated while stopped; reading it from the \
                         start",
                        file.origin,
                        saved.pos
                    );
                    self.stats.truncated.add(1);
                    return Ok(Mark::default());
                }
                log::debug!("{}: resuming at byte {} (line {})", file.origin, saved.pos, saved.line);
                Ok(saved.mark())
            }
            Some(saved) => {
                if saved.size > saved.pos {
                    log::warn!(
                        "{}: the file the checkpoint knew on this inode is gone (deleted while stopped): {} bytes of \
                         it were never delivered; this one (its first bytes differ) is read from the start",
                        saved.path,
                        saved.size - saved.pos
                    );
                } else {
                    log::info!(
                        "{}: not the file the checkpoint knew on this inode (its first bytes differ); reading it \
                         from the start",
                        file.origin
                    );
                }
                Ok(Mark::default())
            }
            None => match self.settings.read_from {
                ReadFrom::Beginning => Ok(Mark::default()),
                ReadFrom::End => file.end_mark(),
            },
        }
    }

    /// Takes a file in: a slot, a watch (through `path`), a turn to be read.
    fn insert<N: Next<D> + ?Sized>(&mut self, mut file: Tracked, path: &Path, ctx: &mut Context<'_, D, N>) {
        if !self.settings.batch {
            match ctx.watch_or_poll(path, file_mask(), self.poll_interval(), FILE_TAG | file.serial) {
                Ok(id) => file.watch = Some(id),
                Err(e) => log::error!("{}: cannot watch: {e}", path.display()),
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.files.push(None);
                self.files.len() as u32 - 1
            }
        };
        self.by_inode.insert(file.key(), slot);
        self.by_serial.insert(file.serial, slot);
        let after = file.after;
        let serial = file.serial;
        self.files[slot as usize] = Some(file);
        if let Some(s) = after {
            self.waiters.entry(s).or_default().push(slot);
            // A turn for the file waited for, whose end releases this one.
            if let Some(&old) = self.by_serial.get(&s) {
                self.queue(old, ctx);
            }
            // Waiting, it may give its descriptor to the file it waits for.
            self.budget.idle.push_back((slot, serial, 0));
            if let Some(f) = self.file(slot) {
                f.in_idle = true;
            }
        }
        self.stats.found.add(1);
        self.budget.open += 1;
        // Files found rotated at start come in open, budget or not.
        while self.budget.open > self.budget.max && self.evict_one() {}
        self.stats.open.set(self.budget.open as u64);
        self.queue(slot, ctx);
    }

    /// Files the checkpoint knows that no pattern matches any more were
    /// rotated (or moved, or a symlink retargeted) while the tail was
    /// stopped: look for them where they can have gone (see
    /// [`recover`]), read what is left of them, and say what cannot be
    /// found. Then the positions found at start are saved.
    fn recover_rotated<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let found = recover::search(&self.saved, self.dirs.keys().cloned(), &self.rotated);
        for (key, paths) in found.paths {
            let Some(saved) = self.saved.get(&key).cloned() else {
                continue;
            };
            if self.by_inode.contains_key(&key) {
                continue;
            }
            let serial = self.next_serial;
            let opened = paths.iter().find_map(|path| {
                let file = Tracked::open(path, serial, self.settings.fingerprint_bytes, &self.settings.lines).ok()?;
                (file.key() == key && file.is(&saved)).then(|| (file, path.clone()))
            });
            let Some((mut file, path)) = opened else { continue };
            let size = file.handle().and_then(|f| f.metadata()).map(|m| m.len()).unwrap_or(0);
            self.saved.remove(&key);
            self.restart_replacement(&saved.path);
            if size <= saved.pos {
                self.forgotten.push(key);
                continue;
            }
            log::info!(
                "{}: rotated to {} while stopped; reading its last {} bytes",
                saved.path,
                path.display(),
                size - saved.pos
            );
            self.next_serial += 1;
            file.origin = Arc::from(saved.path.as_str());
            file.durable = true;
            file.start_at(saved.mark());
            file.paths.clear();
            file.orphan_since = Some(ctx.now());
            self.stats.rotated.add(1);
            self.insert(file, &path, ctx);
            // The file now at its old path comes after it.
            let former = PathBuf::from(&saved.path);
            for slot in 0..self.files.len() as u32 {
                let Some(f) = self.file(slot) else { continue };
                if f.serial != serial && f.after.is_none() && f.paths.contains(&former) {
                    f.after = Some(serial);
                    self.waiters.entry(serial).or_default().push(slot);
                }
            }
        }
        let mut lost: Vec<Position> = self.saved.drain().map(|(_, p)| p).collect();
        lost.sort_by(|a, b| a.path.cmp(&b.path));
        for saved in lost {
            self.restart_replacement(&saved.path);
            self.forgotten.push(saved.key());
            let mut looked: Vec<String> = found.dirs.iter().map(|d| d.display().to_string()).collect();
            looked.extend(self.settings.rotated_paths.iter().cloned());
            let mut failed = String::new();
            for (dir, e) in &found.failed {
                failed.push_str(&format!("; {} could not be listed: {e}", dir.display()));
            }
            let never = if saved.size >= saved.pos {
                format!("{} bytes", saved.size - saved.pos)
            } else {
                "an unknown number of bytes (the checkpoint predates sizes)".to_owned()
            };
            log::warn!(
                "{}: in the checkpoint (delivered up to byte {}, {} bytes when last saved) but not found again in {}{}: \
                 {never} of it were never delivered, and whatever was written to it after that (rotated away \
                 twice, compressed or deleted while stopped? name where rotated files go in `rotated_paths`)",
                saved.path,
                saved.pos,
                saved.size,
                looked.join(", "),
                failed,
            );
        }
        self.started_at_end.clear();
        self.save(false);
        self.release(ctx);
    }

    /// Queues the files a save has just made durable.
    fn release<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        for slot in std::mem::take(&mut self.released) {
            self.queue(slot, ctx);
        }
    }

    /// A file the checkpoint knew at `former` was rotated away while the
    /// tail was stopped: the file at that path now is new since, so it is
    /// read from its start even with `read_from = "end"`.
    fn restart_replacement(&mut self, former: &str) {
        let former = Path::new(former);
        for file in self.files.iter_mut().flatten() {
            if file.pos > 0 && file.paths.iter().any(|p| p == former) && self.started_at_end.remove(&file.key()) {
                log::info!(
                    "{}: took the place of a file rotated away while stopped: reading it from the start",
                    file.origin
                );
                file.start_at(Mark::default());
            }
        }
    }

    /// Watches the directories the expansion wants, and no others but
    /// those under a failed look; returns how many watches it added.
    fn sync_dirs<N: Next<D> + ?Sized>(&mut self, exp: &Expansion, ctx: &mut Context<'_, D, N>) -> usize {
        let wanted = &exp.dirs;
        let mut added = 0;
        // A directory under a failed look may still be there: kept.
        let unwanted: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| !wanted.contains_key(*d) && !exp.covers(d))
            .cloned()
            .collect();
        for dir in unwanted {
            if let Some(d) = self.dirs.remove(&dir) {
                self.dir_serials.remove(&d.serial);
                if let Some(id) = d.watch {
                    ctx.unwatch(id);
                }
            }
        }
        for (dir, parts) in wanted {
            let parts = parts.clone();
            if let Some(d) = self.dirs.get_mut(dir) {
                if d.watch.is_some() {
                    d.parts = parts;
                    continue;
                }
            }
            let serial = match self.dirs.get(dir) {
                Some(d) => d.serial,
                None => {
                    self.next_serial += 1;
                    self.next_serial
                }
            };
            let watch = match ctx.watch_or_poll(dir, dir_mask(), self.poll_interval(), DIR_TAG | serial) {
                Ok(id) => {
                    added += 1;
                    Some(id)
                }
                Err(e) => {
                    log::warn!("{}: cannot watch this directory: {e}", dir.display());
                    self.retry_rescan = true;
                    None
                }
            };
            self.dir_serials.insert(serial, dir.clone());
            self.dirs.insert(dir.clone(), Dir { serial, watch, parts });
        }
        added
    }

    fn request_rescan<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.rescan.is_none() && !self.finishing {
            self.rescan = ctx.enqueue(RESCAN).ok();
        }
    }

    /// Whether the entry `name` of the watched `dir` could change what the
    /// patterns match.
    fn matters(&self, dir: &Path, name: &std::ffi::OsStr) -> bool {
        let Some(d) = self.dirs.get(dir) else { return true };
        let path = dir.join(name);
        self.targets.contains(&path)
            || d.parts
                .iter()
                .any(|&(p, part)| self.includes[p].entry_matters(part, name))
            || self.by_inode.values().any(|&slot| {
                self.files[slot as usize]
                    .as_ref()
                    .is_some_and(|f| f.paths.contains(&path))
            })
    }

    // ---- reading ------------------------------------------------------------

    /// Gives a file a turn to be read.
    fn queue<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.file(slot) else { return };
        if file.queued || file.after.is_some() {
            return;
        }
        file.queued = true;
        self.ready.push_back(slot);
        if !self.waiting {
            self.schedule_pump(ctx);
        }
    }

    fn schedule_pump<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.pump.is_none() && !self.finishing {
            self.pump = ctx.enqueue(PUMP).ok();
        }
    }

    /// One turn: each file queued gets to read its share.
    fn pump<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        for _ in 0..self.ready.len() {
            if ctx.congested() {
                self.waiting = true;
                break;
            }
            let Some(slot) = self.ready.pop_front() else { break };
            let Some(file) = self.file(slot) else { continue };
            file.queued = false;
            match self.read(slot, ctx) {
                ReadEnd::More => {
                    if let Some(file) = self.file(slot) {
                        file.queued = true;
                        self.ready.push_back(slot);
                    }
                }
                ReadEnd::Eof => self.reached_eof(slot, ctx),
                ReadEnd::Skipped => {}
            }
        }
        self.acks_moved();
        self.serve(ctx);
        if !self.ready.is_empty() && !self.waiting {
            self.schedule_pump(ctx);
        }
        self.maybe_exhausted(ctx);
    }

    /// Reads one file for one turn, emitting its lines.
    fn read<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) -> ReadEnd {
        let Some(file) = self.file(slot) else {
            return ReadEnd::Skipped;
        };
        if file.after.is_some() || !file.durable {
            return ReadEnd::Skipped;
        }
        if file.copy_of.is_some() && !self.judge(slot) {
            return ReadEnd::Skipped;
        }
        if let Some(file) = self.file(slot).filter(|f| f.file.is_none()) {
            // Closed, rotated away and not found again: nothing to read.
            if file.is_orphan() && file.at_eof {
                return ReadEnd::Skipped;
            }
            match self.reopen(slot, false, ctx) {
                Reopen::Open => {}
                // Files waiting for it to be read to its end may go on.
                Reopen::AtEnd => return ReadEnd::Eof,
                Reopen::Not | Reopen::Starved => return ReadEnd::Skipped,
            }
        }
        self.budget.clock += 1;
        let clock = self.budget.clock;
        let Some(file) = self.file(slot) else {
            return ReadEnd::Skipped;
        };
        file.stamp = clock;
        if std::mem::take(&mut file.at_eof) | std::mem::take(&mut file.verify) {
            // Woken after reaching the end, or read for the first time from
            // a saved position: is it still the file we read?
            match file.check() {
                Ok(Check::Same) => {}
                Ok(Check::Truncated { size }) => self.truncated(slot, size, ctx),
                Err(e) => {
                    log::error!("{}: cannot read: {e}", file.origin);
                    return ReadEnd::Skipped;
                }
            }
        }
        let mut budget = self.settings.read_bytes_per_turn;
        loop {
            let Some(file) = self.files[slot as usize].as_mut() else {
                return ReadEnd::Skipped;
            };
            let want = budget.min(self.buf.len());
            let Some(fd) = file.file.as_ref() else {
                return ReadEnd::Skipped;
            };
            let n = match read_full_at(fd, &mut self.buf[..want], file.pos) {
                Ok(n) => n,
                Err(e) => {
                    log::error!("{}: cannot read: {e}", file.origin);
                    return ReadEnd::Skipped;
                }
            };
            if n == 0 {
                match fd.metadata() {
                    Ok(m) if m.len() < file.pos => {
                        let size = m.len();
                        self.truncated(slot, size, ctx);
                        continue;
                    }
                    _ => return ReadEnd::Eof,
                }
            }
            self.feed(slot, n, ctx);
            budget -= n;
            if n < want {
                return ReadEnd::Eof;
            }
            if budget == 0 || ctx.congested() {
                return ReadEnd::More;
            }
        }
    }

    /// Splits the `n` bytes just read into `buf` and emits the lines.
    fn feed<N: Next<D> + ?Sized>(&mut self, slot: u32, n: usize, ctx: &mut Context<'_, D, N>) {
        let fingerprint = self.settings.fingerprint_bytes;
        let Tail {
            files,
            buf,
            make,
            acks,
            stats,
            cuts,
            ..
        } = self;
        let Some(file) = files[slot as usize].as_mut() else {
            return;
        };
        let mut data = &buf[..n];
        let mut start = file.pos;
        file.consumed(start, data, fingerprint);
        file.pos += n as u64;
        stats.bytes.add(n as u64);
        if std::mem::take(&mut file.skip_newline) && data.first() == Some(&b'\n') {
            data = &data[1..];
            start += 1;
        }
        let before = file.line;
        // The lines up to the last newline end where it does; what follows
        // it is held (or cut, if too long) and restarts from there.
        let (complete, rest) = match data.iter().rposition(|&b| b == b'\n') {
            Some(i) => data.split_at(i + 1),
            None => (&data[..0], data),
        };
        let mut emit = Emitter {
            slot,
            file_line: &mut file.line,
            epoch: file.epoch,
            origin: &file.origin,
            last_seq: &mut file.last_seq,
            in_flight: &mut file.in_flight,
            make,
            acks,
            cuts,
            ctx,
        };
        if !complete.is_empty() {
            file.splitter.push(complete, |bytes, flags| emit.line(bytes, flags));
            let mark = Mark::at(start + complete.len() as u64, *emit.file_line);
            if !emit.mark(mark) {
                file.committed = mark;
                file.dirty = true;
            }
        }
        if !rest.is_empty() {
            file.splitter.push(rest, |bytes, flags| emit.line(bytes, flags));
        }
        stats.lines.add(file.line - before);
        file.partial_since = (file.splitter.partial_len() > 0).then(Instant::now);
        if file.partial_since.is_some() && self.settings.partial_line_idle_ms > 0 {
            self.arm_idle(ctx);
        }
    }

    /// Emits the line a file holds without its newline if it is the file's
    /// last line: the file ends there now. Else it is only the end of the
    /// last chunk read: it is left out, and the checkpoint stays at the
    /// line before it, so a restart reads it whole.
    fn flush_last_line<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.file(slot) else { return };
        if file.splitter.partial_len() == 0 {
            return;
        }
        if file.at_end() {
            self.flush_partial(slot, false, ctx);
        } else {
            log::debug!(
                "{}: stopping in the middle of a line (byte {}): it is read whole after a restart",
                file.origin,
                file.pos
            );
        }
    }

    /// Emits the line a file holds without its newline, if any; `idle`:
    /// because no byte came for a while (the newline may still come).
    fn flush_partial<N: Next<D> + ?Sized>(&mut self, slot: u32, idle: bool, ctx: &mut Context<'_, D, N>) {
        let Tail {
            files,
            make,
            acks,
            stats,
            cuts,
            ..
        } = self;
        let Some(file) = files[slot as usize].as_mut() else {
            return;
        };
        file.partial_since = None;
        let mut emit = Emitter {
            slot,
            file_line: &mut file.line,
            epoch: file.epoch,
            origin: &file.origin,
            last_seq: &mut file.last_seq,
            in_flight: &mut file.in_flight,
            make,
            acks,
            cuts,
            ctx,
        };
        let had = file.splitter.take_partial(|bytes, flags| emit.line(bytes, flags));
        if had {
            file.skip_newline = idle;
            stats.lines.add(1);
            let mark = Mark {
                pos: file.pos,
                line: *emit.file_line,
                open: true,
            };
            if !emit.mark(mark) {
                file.committed = mark;
                file.dirty = true;
            }
        }
    }

    /// Whether a file that begins with `head` is a copy made by
    /// copytruncate: of a file truncated lately, or maybe of a followed file
    /// (other than `except`) that is not truncated yet.
    fn copy_of(&self, head: &[u8], except: Option<u64>, startup: bool) -> CopyVerdict {
        if !startup {
            for t in &self.truncations {
                if !t.head.is_empty() && head.starts_with(&t.head) {
                    return CopyVerdict::Of(t.resume.clone());
                }
            }
            if self.truncations.iter().any(|t| t.head.starts_with(head)) {
                return CopyVerdict::Maybe;
            }
        }
        let maybe = self.files.iter().flatten().any(|f| {
            Some(f.serial) != except && f.copy_of.is_none() && !f.begins().is_empty() && compatible(head, f.begins())
        });
        if maybe {
            CopyVerdict::Maybe
        } else {
            CopyVerdict::No
        }
    }

    /// Settles, if it can, whether a file is a copy made by copytruncate:
    /// true when it is to be read now (from where its original was read
    /// to, or from its start if it is no copy).
    fn judge(&mut self, slot: u32) -> bool {
        let fingerprint = self.settings.fingerprint_bytes;
        let Some(file) = self.file(slot) else { return false };
        let serial = file.serial;
        let mut head = vec![0; fingerprint];
        let Ok(n) = file.handle().and_then(|fd| read_full_at(fd, &mut head, 0)) else {
            return false;
        };
        match self.copy_of(&head[..n], Some(serial), false) {
            CopyVerdict::Maybe => false,
            CopyVerdict::No => {
                let Some(file) = self.file(slot) else { return false };
                log::info!("{}: new file, reading it from the start", file.origin);
                file.copy_of = None;
                true
            }
            CopyVerdict::Of(resume) => {
                let Some(file) = self.file(slot) else { return false };
                log::info!(
                    "{}: a copy of {} made by copytruncate: reading it from byte {}",
                    file.origin,
                    resume.origin,
                    resume.mark.pos
                );
                file.copy_of = None;
                file.origin = resume.origin;
                file.head.set(&head[..n]);
                file.start_at(resume.mark);
                file.skip_newline = resume.skip_newline;
                true
            }
        }
    }

    /// A file is shorter than what was read, or its first bytes changed.
    fn truncated<N: Next<D> + ?Sized>(&mut self, slot: u32, size: u64, ctx: &mut Context<'_, D, N>) {
        // The held partial line was the end of the old contents.
        let Some(file) = self.file(slot) else { return };
        // Or the line before the read position went out without its newline
        // (idle, or the last line at a stop) and the newline is still to come.
        let had_partial = file.splitter.partial_len() > 0 || file.skip_newline;
        self.flush_partial(slot, false, ctx);
        let Some(file) = self.files[slot as usize].as_ref() else {
            return;
        };
        let resume = Resume {
            mark: Mark::at(file.pos, file.line),
            origin: Arc::clone(&file.origin),
            skip_newline: had_partial,
        };
        let now = ctx.now();
        let wait = Duration::from_millis(self.settings.rotate_wait_ms);
        self.truncations.retain(|t| now < t.at + wait);
        self.truncations.push(Truncation {
            head: file.head.bytes.clone(),
            resume: resume.clone(),
            at: now,
        });
        // Its copy (copytruncate), if one was seen, goes on from here.
        for c in 0..self.files.len() as u32 {
            if self.file(c).is_some_and(|f| f.copy_of.is_some()) {
                self.queue(c, ctx);
            }
        }
        let Some(file) = self.file(slot) else { return };
        log::warn!(
            "{}: truncated ({size} bytes, {} were read): reading it again from the start",
            file.origin,
            file.pos
        );
        file.restart();
        self.stats.truncated.add(1);
    }

    /// A file was read to its end: files waiting for it may start; a file
    /// rotated away may be closed.
    fn reached_eof<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.file(slot) else { return };
        file.at_eof = true;
        let serial = file.serial;
        if file.closable() && !file.in_idle {
            file.in_idle = true;
            let stamp = file.stamp;
            self.budget.idle.push_back((slot, serial, stamp));
        }
        if let Some(waiting) = self.waiters.remove(&serial) {
            for w in waiting {
                if let Some(f) = self.file(w) {
                    f.after = None;
                }
                self.queue(w, ctx);
            }
        }
    }

    /// Moves committed positions over what the train delivered.
    fn acks_moved(&mut self) {
        let files = &mut self.files;
        self.acks.pop(|Delivered { slot, epoch, mark }| {
            let Some(file) = files.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            file.in_flight -= 1;
            if let Some(mark) = mark.filter(|_| epoch == file.epoch) {
                file.committed = mark;
                file.dirty = true;
            }
        });
    }

    /// In batch mode: once every file is read to its end, emit the partial
    /// lines and say so.
    fn maybe_exhausted<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if !self.settings.batch
            || self.exhausted
            || !self.ready.is_empty()
            || self.rescan.is_some()
            || !self.budget.starved.is_empty()
        {
            return;
        }
        for slot in 0..self.files.len() as u32 {
            self.flush_last_line(slot, ctx);
        }
        self.exhausted = true;
        log::debug!("every file was read to its end");
        ctx.exhausted();
    }

    fn arm_idle<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let due = ctx.now() + Duration::from_millis(self.settings.partial_line_idle_ms);
        if self.idle_due.is_some_and(|d| d <= due) {
            return;
        }
        if let Some(id) = self.idle {
            if ctx.reschedule(id, due) {
                self.idle_due = Some(due);
            }
        }
    }

    /// Emits the partial lines that waited long enough.
    fn idle_fired<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let idle = Duration::from_millis(self.settings.partial_line_idle_ms);
        let now = ctx.now();
        self.idle_due = None;
        let mut next: Option<Instant> = None;
        for slot in 0..self.files.len() as u32 {
            let Some(since) = self.file(slot).and_then(|f| f.partial_since) else {
                continue;
            };
            if since + idle <= now {
                if self.file(slot).is_some_and(|f| f.at_end()) {
                    self.flush_partial(slot, true, ctx);
                } else {
                    // Only the end of what was read so far (a backlog):
                    // the rest of the line is there to read.
                    if let Some(f) = self.file(slot) {
                        f.partial_since = None;
                    }
                    self.queue(slot, ctx);
                }
            } else {
                next = Some(next.map_or(since + idle, |n: Instant| n.min(since + idle)));
            }
        }
        if let Some(id) = self.idle {
            let due = next.unwrap_or(now + PARKED);
            ctx.reschedule(id, due);
            self.idle_due = next;
        }
    }

    // ---- housekeeping -------------------------------------------------------

    /// Saves the positions that moved: one log record; a whole checkpoint
    /// (compacting the log) every so often, and when `compact`.
    fn save(&mut self, compact: bool) {
        let Some(store) = self.store.as_mut() else {
            self.forgotten.clear();
            return;
        };
        // Forgotten before set, as the store replays a change.
        let forget = std::mem::take(&mut self.forgotten);
        for key in &forget {
            self.saved.remove(key);
        }
        let mut set = Vec::new();
        let mut slots = Vec::new();
        for (slot, file) in self.files.iter_mut().enumerate() {
            let Some(file) = file else { continue };
            if std::mem::take(&mut file.dirty) {
                let p = file.position();
                self.saved.insert(p.key(), p.clone());
                set.push(p);
                slots.push(slot);
            }
        }
        if !set.is_empty() || !forget.is_empty() {
            match store.log(&Change::V1 {
                set,
                forget: forget.clone(),
            }) {
                Ok(_) => {
                    self.logged += 1;
                    self.stats.saves.add(1);
                    for &slot in &slots {
                        if let Some(file) = self.files[slot].as_mut().filter(|f| !f.durable) {
                            file.durable = true;
                            self.released.push(slot as u32);
                        }
                    }
                    if std::mem::take(&mut self.store_failing) {
                        log::info!("tail: positions saved again");
                    }
                }
                Err(e) => {
                    // Tried again at the next save, whole.
                    for &slot in &slots {
                        if let Some(file) = self.files[slot].as_mut() {
                            file.dirty = true;
                        }
                    }
                    self.forgotten.extend(forget);
                    if std::mem::replace(&mut self.store_failing, true) {
                        log::debug!("tail: cannot save positions: {e}");
                    } else {
                        log::error!(
                            "tail: cannot save positions: {e}; trying again every checkpoint interval (a crash now \
                             repeats more lines; files found meanwhile are not read until a save succeeds, so that \
                             a restart knows them)"
                        );
                    }
                }
            }
        }
        if (compact && self.logged > 0) || self.logged >= COMPACT_EVERY {
            match store.checkpoint(&position::save(&self.saved)) {
                Ok(_) => {
                    self.logged = 0;
                    self.stats.saves.add(1);
                    if std::mem::take(&mut self.checkpoint_failing) {
                        log::info!("tail: checkpoint written again");
                    }
                }
                Err(e) if std::mem::replace(&mut self.checkpoint_failing, true) => {
                    log::debug!("tail: cannot write the checkpoint: {e}")
                }
                Err(e) => log::error!(
                    "tail: cannot write the checkpoint: {e}; positions go on into the log, and the checkpoint is \
                     tried again at every save"
                ),
            }
        }
    }

    /// Every checkpoint interval: save, look again at files rotated away,
    /// close those that are through.
    fn tick<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.acks_moved();
        self.save(false);
        self.release(ctx);
        if std::mem::take(&mut self.retry_rescan) {
            self.request_rescan(ctx);
        }
        let wait = Duration::from_millis(self.settings.rotate_wait_ms);
        let now = ctx.now();
        self.looks.tick(now);
        self.opens.tick(now);
        for (slot, serial) in std::mem::take(&mut self.budget.recheck) {
            if self.file(slot).is_some_and(|f| f.serial == serial) {
                self.queue(slot, ctx);
            }
        }
        self.serve(ctx);
        self.truncations.retain(|t| now < t.at + wait);
        for slot in 0..self.files.len() as u32 {
            let Some(file) = self.file(slot) else { continue };
            if let Some(since) = file.copy_of.as_ref().map(|s| s.since) {
                if now >= since + wait {
                    log::info!("{}: not a copy after all: reading it from the start", file.origin);
                    file.copy_of = None;
                    self.queue(slot, ctx);
                }
                continue;
            }
            let Some(since) = file.orphan_since else { continue };
            if !file.at_eof || now < since + wait {
                // Polling cannot see writes to a file no path names: look.
                self.queue(slot, ctx);
                continue;
            }
            if file.splitter.partial_len() > 0 {
                self.flush_partial(slot, false, ctx);
            }
            if self.file(slot).is_some_and(|f| f.in_flight == 0) {
                self.close(slot, ctx);
            }
        }
    }

    /// Closes a file rotated away for good: it is read and delivered.
    fn close<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.files[slot as usize].take() else {
            return;
        };
        if let Some(id) = file.watch {
            ctx.unwatch(id);
        }
        self.by_inode.remove(&file.key());
        self.by_serial.remove(&file.serial);
        if let Some(waiting) = self.waiters.remove(&file.serial) {
            for w in waiting {
                if let Some(f) = self.file(w) {
                    f.after = None;
                }
                self.queue(w, ctx);
            }
        }
        self.forgotten.push(file.key());
        self.free.push(slot);
        if file.file.is_some() {
            self.budget.open -= 1;
            self.stats.open.set(self.budget.open as u64);
        }
        self.stats.closed.add(1);
        log::info!("{}: closed after rotation, every line delivered", file.origin);
        self.serve(ctx);
    }

    // ---- descriptors --------------------------------------------------------

    /// Makes room for one more open file, closing the least recently read
    /// idle one if need be; false if none can be closed.
    fn reserve(&mut self) -> bool {
        while self.budget.full() {
            if !self.evict_one() {
                return false;
            }
        }
        true
    }

    /// Closes the least recently read file that may be closed; false if
    /// none may.
    fn evict_one(&mut self) -> bool {
        while let Some((slot, serial, stamp)) = self.budget.idle.pop_front() {
            let Some(file) = self.files.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            if file.serial != serial {
                continue;
            }
            file.in_idle = false;
            if !file.closable() {
                continue;
            }
            if file.stamp != stamp {
                // Read since it was queued: its turn comes later.
                file.in_idle = true;
                self.budget.idle.push_back((slot, serial, file.stamp));
                continue;
            }
            self.close_for_limit(slot);
            return true;
        }
        // A file can become closable without reaching its end (a possible
        // copy settled, a file waiting behind another): look at them all.
        let lru = self
            .files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().filter(|f| f.closable()).map(|f| (f.stamp, i as u32)))
            .min();
        match lru {
            Some((_, slot)) => {
                self.close_for_limit(slot);
                true
            }
            None => false,
        }
    }

    /// Closes a file to give its descriptor to another; what it was read
    /// to, and how it looked, are kept to open it again.
    fn close_for_limit(&mut self, slot: u32) {
        let Some(file) = self.file(slot) else { return };
        file.closed = file
            .file
            .take()
            .and_then(|fd| fd.metadata().ok())
            .map(|m| Snapshot::of(&m));
        log::debug!("{}: closed for the descriptor limit at byte {}", file.origin, file.pos);
        self.budget.open -= 1;
        self.stats.open.set(self.budget.open as u64);
        self.stats.closed_for_limit.add(1);
    }

    /// Queues a file for a descriptor (at the front: its turn came, and
    /// it still has to wait).
    fn starve(&mut self, slot: u32, front: bool) {
        let Some(file) = self.file(slot) else { return };
        if std::mem::replace(&mut file.starved, true) {
            return;
        }
        let want = Want::Reopen(slot, file.serial);
        if front {
            self.budget.starved.push_front(want);
        } else {
            self.budget.starved.push_back(want);
        }
        self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
    }

    /// Gives descriptors to the files waiting for one, in turn, as long as
    /// there are some to give.
    fn serve<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while let Some(want) = self.budget.starved.pop_front() {
            match want {
                Want::Open(p) => {
                    if !self.reserve() {
                        self.budget.starved.push_front(Want::Open(p));
                        break;
                    }
                    self.budget.pending.remove(&p.path);
                    self.add_waited(p, ctx);
                }
                Want::Reopen(slot, serial) => {
                    let Some(file) = self.file(slot).filter(|f| f.serial == serial) else {
                        continue;
                    };
                    file.starved = false;
                    if file.file.is_some() {
                        continue;
                    }
                    match self.reopen(slot, true, ctx) {
                        Reopen::Open => self.queue(slot, ctx),
                        Reopen::AtEnd => self.reached_eof(slot, ctx),
                        Reopen::Starved => break,
                        Reopen::Not => {}
                    }
                }
            }
        }
        self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
    }

    /// Opens a new file that waited for a descriptor. If it was renamed or
    /// deleted meanwhile, it is looked for by inode in its directory, and
    /// read there to its end like a file rotated away.
    fn add_waited<N: Next<D> + ?Sized>(&mut self, p: Pending, ctx: &mut Context<'_, D, N>) {
        let moved = match std::fs::metadata(&p.path) {
            Ok(m) => (m.dev(), m.ino()) != p.key,
            Err(e) => gone(&e),
        };
        if !moved {
            return self.add(&p.path, p.paths, p.after, p.startup, ctx);
        }
        self.request_rescan(ctx);
        let dir = p.path.parent().unwrap_or(Path::new("/"));
        let at = match find_inode(dir, p.key) {
            Ok(Some(at)) => at,
            Ok(None) => {
                log::warn!(
                    "{}: rotated away or deleted while it waited for a descriptor, and not in {} any more: its \
                     lines were not read",
                    p.path.display(),
                    dir.display()
                );
                self.stats.lost_while_closed.add(1);
                return;
            }
            Err(e) => {
                self.looks.hit(dir, &e, ctx.now());
                self.retry_rescan = true;
                return;
            }
        };
        log::info!(
            "{}: renamed to {} while it waited for a descriptor: reading it there",
            p.path.display(),
            at.display()
        );
        // No path of its own yet: the rescan says whether a pattern still
        // matches it, or it is read to its end as rotated away.
        self.add(&at, Vec::new(), None, p.startup, ctx);
        if let Some(file) = self.by_inode.get(&p.key).copied().and_then(|slot| self.file(slot)) {
            if file.paths.is_empty() {
                file.origin = Arc::from(p.path.to_string_lossy().as_ref());
            }
        }
    }

    /// Opens again a file closed for the limit, if it changed: by its
    /// path, checked to be the same file; if it was rotated away meanwhile,
    /// by its inode in the directory it was in. `served`: its turn for a
    /// descriptor came.
    fn reopen<N: Next<D> + ?Sized>(&mut self, slot: u32, served: bool, ctx: &mut Context<'_, D, N>) -> Reopen {
        let now = ctx.now();
        let Some(file) = self.file(slot) else {
            return Reopen::Not;
        };
        let key = file.key();
        let orphan = file.paths.is_empty();
        let path = if orphan {
            let former = file
                .former
                .clone()
                .unwrap_or_else(|| PathBuf::from(file.origin.as_ref()));
            let dir = former.parent().unwrap_or(Path::new("/")).to_path_buf();
            match find_inode(&dir, key) {
                Ok(Some(path)) => path,
                Ok(None) => {
                    log::warn!(
                        "{}: rotated away or deleted while closed for the descriptor limit, and not in {} any \
                         more: bytes written to it after byte {} (if any) were not read",
                        file.origin,
                        dir.display(),
                        file.pos
                    );
                    self.stats.lost_while_closed.add(1);
                    self.reached_eof(slot, ctx);
                    return Reopen::Not;
                }
                Err(e) => {
                    // Not at its end: the tick looks again.
                    self.looks.hit(&dir, &e, now);
                    return Reopen::Not;
                }
            }
        } else {
            file.path()
        };
        let serial = file.serial;
        let m = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if gone(&e) => {
                self.request_rescan(ctx);
                return Reopen::Not;
            }
            Err(e) => {
                self.looks.hit(&path, &e, now);
                self.budget.recheck.push((slot, serial));
                return Reopen::Not;
            }
        };
        if (m.dev(), m.ino()) != key {
            // Its path names another file now: a rotation, for the rescan.
            self.request_rescan(ctx);
            return Reopen::Not;
        }
        if !orphan && file.closed.is_some_and(|c| c.unchanged(&m, file.pos)) {
            return Reopen::AtEnd;
        }
        if !((served || self.budget.starved.is_empty()) && self.reserve()) {
            self.starve(slot, served);
            return Reopen::Starved;
        }
        let fd = match std::fs::File::open(&path) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => {
                self.request_rescan(ctx);
                return Reopen::Not;
            }
            Err(e) => {
                self.opens.hit(&path, &e, now);
                if out_of_fds(&e) {
                    self.starve(slot, served);
                    return Reopen::Starved;
                }
                self.budget.recheck.push((slot, serial));
                return Reopen::Not;
            }
        };
        if !fd.metadata().is_ok_and(|m| (m.dev(), m.ino()) == key) {
            // Replaced between the look and the open.
            self.request_rescan(ctx);
            return Reopen::Not;
        }
        let Some(file) = self.file(slot) else {
            return Reopen::Not;
        };
        log::debug!("{}: opened again at byte {}", file.origin, file.pos);
        file.file = Some(fd);
        file.closed = None;
        // Its first bytes are checked before it is read on.
        file.at_eof = true;
        self.budget.open += 1;
        self.stats.open.set(self.budget.open as u64);
        self.stats.reopened.add(1);
        Reopen::Open
    }

    fn on_file_event<N: Next<D> + ?Sized>(&mut self, serial: u64, event: &WatchEvent, ctx: &mut Context<'_, D, N>) {
        let Some(&slot) = self.by_serial.get(&serial) else {
            return;
        };
        if event.mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch (the file is gone for good).
            if let Some(file) = self.file(slot) {
                file.watch = None;
            }
            return;
        }
        let moved = EventMask::ATTRIB | EventMask::MOVE_SELF | EventMask::DELETE_SELF | EventMask::CREATE;
        if event.mask.intersects(moved) {
            self.request_rescan(ctx);
        }
        self.queue(slot, ctx);
    }

    fn on_dir_event<N: Next<D> + ?Sized>(&mut self, serial: u64, event: &WatchEvent, ctx: &mut Context<'_, D, N>) {
        let Some(dir) = self.dir_serials.get(&serial).cloned() else {
            return;
        };
        if event.mask.contains(EventMask::IGNORED) {
            if let Some(d) = self.dirs.get_mut(&dir) {
                d.watch = None;
            }
            self.request_rescan(ctx);
            return;
        }
        let relevant = match &event.name {
            Some(name) if !event.polled => self.matters(&dir, name),
            _ => true,
        };
        if relevant {
            self.request_rescan(ctx);
        }
    }
}

/// The entry of `dir` that is the file `key` (device, inode), if any.
fn find_inode(dir: &Path, (dev, ino): (u64, u64)) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::DirEntryExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.ino() != ino {
            continue;
        }
        let path = entry.path();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// What emitting one line needs, split off the tail's fields.
struct Emitter<'a, 'c, D, N: ?Sized> {
    slot: u32,
    file_line: &'a mut u64,
    epoch: u32,
    origin: &'a Arc<str>,
    last_seq: &'a mut Option<u64>,
    in_flight: &'a mut u64,
    make: &'a mut Maker<D>,
    acks: &'a mut Acks,
    cuts: &'a mut CutLog,
    ctx: &'a mut Context<'c, D, N>,
}

impl<D, N: Next<D> + ?Sized> Emitter<'_, '_, D, N> {
    fn line(&mut self, bytes: &[u8], flags: LineFlags) {
        *self.file_line += 1;
        if flags.truncated {
            let place = format_args!("{}:{}", self.origin, *self.file_line);
            self.cuts.note(place, bytes.len(), flags, self.ctx.now());
        }
        let id = self.ctx.next_event_id();
        let datum = (self.make)(TailLine {
            id,
            bytes,
            origin: self.origin,
            number: *self.file_line,
            flags,
        });
        if let Some(id) = self.ctx.id_of(&datum) {
            *self.last_seq = Some(self.acks.push(id, self.slot, self.epoch));
            *self.in_flight += 1;
        }
        self.ctx.emit(datum);
    }

    /// Sets the file's restart mark on its last line in flight; false if
    /// none is (then the mark holds now).
    fn mark(&mut self, mark: Mark) -> bool {
        self.last_seq.is_some_and(|seq| self.acks.mark(seq, mark))
    }
}

impl<D: 'static> Cog<D> for Tail<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let interval = Duration::from_millis(self.settings.checkpoint_interval_ms);
        match ctx.every(interval, TICK) {
            Ok(id) => self.tick = Some(id),
            Err(e) => log::error!("tail: cannot bind its timer ({e}); positions will be saved only at the end"),
        }
        if self.settings.partial_line_idle_ms > 0 {
            // Repeating and parked far ahead, moved to each due time: a
            // timer bound once, as nothing may be bound while finishing.
            self.idle = ctx.every(PARKED, IDLE).ok();
        }
        if !self.settings.batch && !ctx.core().inotify() {
            log::info!(
                "tail: inotify is not usable; polling every {} ms",
                self.settings.poll_interval_ms
            );
        }
        self.rescan(ctx, true);
        self.recover_rotated(ctx);
        if self.files.is_empty() && !self.settings.batch {
            log::info!(
                "tail: no file matches {} yet; waiting for one",
                self.settings.include.join(", ")
            );
        }
        self.schedule_pump(ctx);
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        match (key, fired) {
            (PUMP, _) => {
                self.pump = None;
                self.pump(ctx);
            }
            (RESCAN, _) => {
                self.rescan = None;
                self.rescan(ctx, false);
                self.maybe_exhausted(ctx);
            }
            (TICK, _) => self.tick(ctx),
            (IDLE, _) => self.idle_fired(ctx),
            (key, Fired::Watch(_, event)) => {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    if !self.rescan_all {
                        log::warn!("tail: inotify lost events (queue overflow): looking at every file again");
                        self.stats.overflows.add(1);
                    }
                    self.rescan_all = true;
                    self.request_rescan(ctx);
                } else if key & FILE_TAG != 0 {
                    self.on_file_event(key & SERIAL, &event, ctx);
                } else if key & DIR_TAG != 0 {
                    self.on_dir_event(key & SERIAL, &event, ctx);
                }
            }
            _ => {}
        }
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, D, N>) {
        if self.acks.done(id) {
            self.acks_moved();
        }
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.acks.rename(old, new);
    }

    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.waiting && !ctx.congested() {
            self.waiting = false;
            self.schedule_pump(ctx);
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        for slot in 0..self.files.len() as u32 {
            self.flush_last_line(slot, ctx);
        }
        Finish::Done
    }

    fn done(&mut self, core: &mut Core) {
        self.cuts.flush(core.now());
        // Every cog has finished: what the drains wrote is reported done.
        self.acks_moved();
        self.save(true);
        if let Some(store) = self.store.take() {
            if let Err(e) = store.close() {
                log::error!("tail: cannot save positions: {e}");
            }
        }
    }

    fn role(&self) -> Role {
        Role::Supply
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tail {}", self.settings)
    }
}
