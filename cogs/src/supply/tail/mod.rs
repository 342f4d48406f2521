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

// The tail is four parts, each with its own state, and this module, which
// holds them and tells the story: what happens on start, on a watch event,
// on a timer, at finish. No part calls back into `Tail`: each returns what
// happened, and the story acts on it.
// - discovery: the patterns, the watched directories, when to rescan;
// - identity (with recover): which file is which, copies, restart search;
// - files (with descriptors and tracked) and reader: the file table, its
//   turns, rotations and descriptors, and the reads that emit lines;
// - checkpoint (over position): the positions saved in the store.
mod checkpoint;
mod descriptors;
mod discovery;
mod files;
mod glob;
mod identity;
mod limits;
mod position;
mod reader;
mod recover;
mod settings;
mod stats;
mod tracked;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tourbillon::{Cog, Context, Core, Event, EventId, EventMask, Finish, Fired, Next, Role, TimerId, WatchEvent};

pub use self::checkpoint::saved_positions;
use self::checkpoint::Checkpoint;
use self::descriptors::Waited;
use self::discovery::{DirNews, Discovery, Rescan, DIR_TAG, FILE_TAG, SERIAL};
use self::files::Files;
use self::limits::Pending;
pub use self::position::Position;
pub use self::reader::TailLine;
use self::reader::{Maker, Reader, PARKED};
pub use self::settings::{ReadFrom, TailSettings, MAX_FINGERPRINT_BYTES};
pub use self::stats::TailStats;
use crate::Error;

/// Immediate and timer keys; watch keys carry a tag and a serial.
const PUMP: u64 = 1;
const RESCAN: u64 = 2;
const TICK: u64 = 3;
const IDLE: u64 = 4;

/// Follows files and emits one datum per line; see the [module docs](self).
pub struct Tail<D = Event> {
    settings: TailSettings,
    /// What to follow: patterns, watched directories.
    discovery: Discovery,
    /// When to look at the patterns again.
    rescan: Rescan,
    /// What is followed: the file table, its turns and descriptors.
    files: Files,
    /// What is read: lines out, and back as delivered.
    reader: Reader<D>,
    /// What is kept: the positions in the store.
    checkpoint: Checkpoint,
    tick: Option<TimerId>,
    exhausted: bool,
    stats: TailStats,
}

impl<D> fmt::Debug for Tail<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tail")
            .field("settings", &self.settings)
            .field("files", &self.files.tracked().collect::<Vec<_>>())
            .field("in_flight", &self.reader.in_flight())
            .finish_non_exhaustive()
    }
}

impl Tail<Event> {
    /// Emits [`Event`]s: `raw` the line's bytes, `origin` the file's path,
    /// `line` its number, a fresh id.
    pub fn new(settings: TailSettings) -> Result<Self, Error> {
        Tail::with_buffers(settings, |line: TailLine<'_>, raw: Vec<u8>| {
            Event::from_raw(line.id, raw, Some(Arc::clone(line.origin)), line.number)
        })
    }
}

impl<D: 'static> Tail<D> {
    /// Emits what `make` builds from each line. Give the datum the line's
    /// [`id`](TailLine::id): the tail follows it to know when the line is
    /// delivered.
    pub fn with(settings: TailSettings, make: impl FnMut(TailLine<'_>) -> D + 'static) -> Result<Self, Error> {
        Tail::with_maker(settings, Maker::Borrowed(Box::new(make)))
    }

    /// Emits what `make` builds from each line and a copy of its bytes,
    /// in a buffer a drain gave back for reuse if there is one
    /// ([`Context::buffer`]; the file and stdout drains give back what
    /// [`recycling`](crate::drain::file::FileDrain::recycling) takes): the
    /// datum keeps the buffer rather than allocating its own. As with
    /// [`with`](Self::with), give the datum the line's id.
    pub fn with_buffers(
        settings: TailSettings,
        make: impl FnMut(TailLine<'_>, Vec<u8>) -> D + 'static,
    ) -> Result<Self, Error> {
        Tail::with_maker(settings, Maker::Owned(Box::new(make)))
    }

    fn with_maker(settings: TailSettings, make: Maker<D>) -> Result<Self, Error> {
        settings.validate()?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let discovery = Discovery::new(&settings, &cwd)?;
        let stats = TailStats::default();
        let checkpoint = Checkpoint::open(
            settings.checkpoint_dir.as_deref(),
            stats.saves.clone(),
            stats.last_save_ms.clone(),
        )?;
        Ok(Tail {
            discovery,
            rescan: Rescan::new(RESCAN),
            files: Files::new(&settings, stats.clone(), PUMP),
            reader: Reader::new(&settings, stats.clone(), make),
            checkpoint,
            tick: None,
            exhausted: false,
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

    // ---- finding files ------------------------------------------------------

    /// Expands the patterns and brings the followed files and watched
    /// directories in line with what they match now.
    fn rescan<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, startup: bool) {
        self.stats.rescans.add(1);
        let origins = self.files.origins();
        let scan = self.discovery.scan(&origins, self.files.paths(), &mut self.rescan, ctx);
        if !scan.failed.is_empty() {
            let now = ctx.now();
            for (path, e) in &scan.failed {
                self.files.looks.hit(path, e, now);
            }
            self.rescan.later();
        }
        let fresh = self.files.reconcile(scan.found, &scan.unknown, startup, ctx);
        let found = self.stats.found.get();
        for p in fresh {
            self.offer(p, ctx);
        }
        if self.stats.found.get() != found && !startup {
            // New files are in the checkpoint, durably, before their first
            // line goes out: a crash, then a rotation while stopped, must
            // not make them strangers (one write for all found at once; at
            // start, once the rotated ones are found too).
            self.save(false);
            self.files.release(ctx);
        }
        if self.rescan.take_all() {
            self.files.queue_all(ctx);
        }
    }

    /// A new file found: opened now if a descriptor is free (or can be
    /// freed) and none is waiting for one, else it waits its turn.
    fn offer<N: Next<D> + ?Sized>(&mut self, p: Pending, ctx: &mut Context<'_, D, N>) {
        if let Some(p) = self.files.admit(p) {
            self.add(&p.path, p.paths, p.after, p.startup, ctx);
        }
    }

    /// Opens a file found at `path` (and `paths`), unless it is one already
    /// followed under another name, and starts it where the checkpoint
    /// says (at start) or at its beginning.
    fn add<N: Next<D> + ?Sized>(
        &mut self,
        path: &std::path::Path,
        paths: Vec<PathBuf>,
        after: Option<u64>,
        startup: bool,
        ctx: &mut Context<'_, D, N>,
    ) {
        let Some(file) = self.files.open(path, paths, &mut self.rescan, ctx.now()) else {
            return;
        };
        let key = file.key();
        let saved = self.checkpoint.saved(key);
        let kept = self.checkpoint.kept();
        if self
            .files
            .start(file, path, saved, kept, after, startup, &mut self.rescan, ctx)
        {
            self.checkpoint.found(key);
        }
    }

    /// Opens a new file that waited for a descriptor, where it is now.
    fn add_waited<N: Next<D> + ?Sized>(&mut self, p: Pending, ctx: &mut Context<'_, D, N>) {
        match self.files.locate_waited(&p, &mut self.rescan, ctx) {
            Waited::There => self.add(&p.path, p.paths, p.after, p.startup, ctx),
            Waited::Moved(at) => {
                // No path of its own yet: the rescan says whether a pattern
                // still matches it, or it is read to its end as rotated away.
                self.add(&at, Vec::new(), None, p.startup, ctx);
                self.files.name_orphan(p.key, &p.path);
            }
            Waited::Lost => {}
        }
    }

    /// Gives descriptors to the files waiting for one.
    fn serve<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while let Some(p) = self.files.serve(&mut self.rescan, ctx) {
            self.add_waited(p, ctx);
        }
    }

    /// Files the checkpoint knows that no pattern matches any more were
    /// rotated (or moved, or a symlink retargeted) while the tail was
    /// stopped: look for them where they can have gone (see
    /// [`recover`]), read what is left of them, and say what cannot be
    /// found. Then the positions found at start are saved.
    fn recover_rotated<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let found = recover::search(
            self.checkpoint.positions(),
            self.discovery.dirs(),
            self.discovery.rotated(),
        );
        for (key, paths) in &found.paths {
            let Some(saved) = self.checkpoint.saved(*key).cloned() else {
                continue;
            };
            let Some((file, path, size)) = self.files.find_rotated(*key, paths, &saved) else {
                continue;
            };
            self.checkpoint.found(*key);
            self.files.restart_replacement(&saved.path);
            if size <= saved.pos {
                self.checkpoint.forget(*key);
                continue;
            }
            log::info!(
                "{}: rotated to {} while stopped; reading its last {} bytes",
                saved.path,
                path.display(),
                size - saved.pos
            );
            self.files.adopt_rotated(file, &path, &saved, ctx);
        }
        let mut lost = self.checkpoint.take_unfound();
        lost.sort_by(|a, b| a.path.cmp(&b.path));
        for saved in lost {
            self.files.restart_replacement(&saved.path);
            self.checkpoint.forget(saved.key());
            found.warn_lost(&saved, &self.settings.rotated_paths);
        }
        self.files.started();
        self.save(false);
        self.files.release(ctx);
    }

    fn on_file_event<N: Next<D> + ?Sized>(&mut self, serial: u64, event: &WatchEvent, ctx: &mut Context<'_, D, N>) {
        let Some(slot) = self.files.slot_of(serial) else {
            return;
        };
        if event.mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch (the file is gone for good).
            if let Some(file) = self.files.get(slot) {
                file.watch = None;
            }
            return;
        }
        let moved = EventMask::ATTRIB | EventMask::MOVE_SELF | EventMask::DELETE_SELF | EventMask::CREATE;
        if event.mask.intersects(moved) {
            self.rescan.now(ctx);
        }
        self.files.queue(slot, ctx);
    }

    fn on_dir_event<N: Next<D> + ?Sized>(&mut self, serial: u64, event: &WatchEvent, ctx: &mut Context<'_, D, N>) {
        let rescan = match self.discovery.dir_event(serial, event) {
            DirNews::Nothing => false,
            DirNews::Rescan => true,
            DirNews::IfFollowed(path) => self.files.has_path(&path),
        };
        if rescan {
            self.rescan.now(ctx);
        }
    }

    // ---- reading ------------------------------------------------------------

    /// One turn: each file queued gets to read its share; then what the
    /// train delivered moves the positions, waiting files get descriptors.
    fn pump<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.reader.turn(&mut self.files, &mut self.rescan, ctx);
        self.reader.acks_moved(&mut self.files);
        self.serve(ctx);
        self.files.pump_again(ctx);
        self.maybe_exhausted(ctx);
    }

    /// In batch mode: once every file is read to its end, emit the partial
    /// lines and say so.
    fn maybe_exhausted<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if !self.settings.batch || self.exhausted || !self.files.settled() || self.rescan.pending() {
            return;
        }
        for slot in 0..self.files.len() {
            self.reader.flush_last_line(&mut self.files, slot, ctx);
        }
        self.exhausted = true;
        log::debug!("every file was read to its end");
        ctx.exhausted();
    }

    // ---- housekeeping -------------------------------------------------------

    /// Saves the positions that moved; files a save made durable may be read.
    fn save(&mut self, compact: bool) {
        let (slots, set) = if self.checkpoint.kept() {
            self.files.take_dirty()
        } else {
            Default::default()
        };
        if self.checkpoint.save(set, compact) {
            self.files.saved(&slots);
        } else {
            self.files.not_saved(&slots);
        }
    }

    /// Every checkpoint interval: save, look again at files rotated away,
    /// close those that are through.
    fn tick<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.reader.acks_moved(&mut self.files);
        self.save(false);
        self.files.release(ctx);
        if self.rescan.take_later() {
            self.rescan.now(ctx);
        }
        let now = ctx.now();
        self.files.recheck(ctx);
        self.serve(ctx);
        self.files.expire_truncations(now);
        for slot in 0..self.files.len() {
            if !self.files.through(slot, now, ctx) {
                continue;
            }
            if self.files.get(slot).is_some_and(|f| f.splitter.partial_len() > 0) {
                self.reader.flush_partial(&mut self.files, slot, false, ctx);
            }
            if self.files.get(slot).is_some_and(|f| f.in_flight == 0) {
                self.close(slot, ctx);
            }
        }
    }

    /// Closes a file rotated away for good: it is read and delivered.
    fn close<N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        if let Some(key) = self.files.close(slot, ctx) {
            self.checkpoint.forget(key);
            self.serve(ctx);
        }
    }
}

/// In and out: lines read and emitted; bytes: bytes read. Its probe
/// ([`TailStats`]) tells files followed, rotations, lag per file and the
/// age of the last save.
impl<D: 'static> crate::meter::Metered for Tail<D> {
    fn meter(&self) -> crate::meter::Meter {
        self.stats.meter.clone()
    }

    fn probe(&self) -> Option<std::sync::Arc<dyn crate::meter::Probe>> {
        Some(std::sync::Arc::new(self.stats.clone()))
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
            self.reader.set_idle_timer(ctx.every(PARKED, IDLE).ok());
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
        self.files.schedule_pump(ctx);
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        match (key, fired) {
            (PUMP, _) => {
                self.files.pump_fired();
                self.pump(ctx);
            }
            (RESCAN, _) => {
                self.rescan.fired();
                self.rescan(ctx, false);
                self.maybe_exhausted(ctx);
            }
            (TICK, _) => self.tick(ctx),
            (IDLE, _) => self.reader.idle_fired(&mut self.files, ctx),
            (key, Fired::Watch(_, event)) => {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    if self.rescan.lost_events() {
                        log::warn!("tail: inotify lost events (queue overflow): looking at every file again");
                        self.stats.overflows.add(1);
                    }
                    self.rescan.now(ctx);
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
        if self.reader.done(id) {
            self.reader.acks_moved(&mut self.files);
        }
    }

    fn events_done<N: Next<D> + ?Sized>(&mut self, ids: &[EventId], _: &mut Context<'_, D, N>) {
        // Positions move once for the whole batch.
        let mut ours = false;
        for &id in ids {
            ours |= self.reader.done(id);
        }
        if ours {
            self.reader.acks_moved(&mut self.files);
        }
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.reader.rename(old, new);
    }

    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.files.resume(ctx);
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.files.close_pump();
        self.rescan.close();
        for slot in 0..self.files.len() {
            self.reader.flush_last_line(&mut self.files, slot, ctx);
        }
        Finish::Done
    }

    fn done(&mut self, core: &mut Core) {
        self.reader.flush_cuts(core.now());
        // Every cog has finished: what the drains wrote is reported done.
        self.reader.acks_moved(&mut self.files);
        self.save(true);
        self.checkpoint.close();
    }

    fn role(&self) -> Role {
        Role::Supply
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tail {}", self.settings)
    }
}
