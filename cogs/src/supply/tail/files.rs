//! The file table: every followed file ([`Tracked`]) in a slot, found by
//! inode and by serial; their turns to be read (the ready queue and the
//! pump); taking files in, and letting them go; how paths move between
//! files (rotation by rename, deletion, hardlink swaps) and which new file
//! is a copy made by copytruncate.
//!
//! What gives a file its descriptor, and takes it back, is in
//! [`descriptors`](super::descriptors); how its bytes become lines, in
//! [`reader`](super::reader).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tourbillon::{Context, ImmediateId, Next};

use super::checkpoint::start_mark;
use super::discovery::{file_mask, Rescan, FILE_TAG};
use super::glob::gone;
use super::identity::{Copies, CopyVerdict, Resume, Suspect};
use super::limits::{out_of_fds, Budget, Pending, Trouble};
use super::position::{Mark, Position};
use super::settings::{ReadFrom, TailSettings};
use super::stats::TailStats;
use super::tracked::{read_full_at, Tracked};
use crate::splitter::LinesSettings;

/// The followed files.
pub(crate) struct Files {
    slots: Vec<Option<Tracked>>,
    free: Vec<u32>,
    by_inode: HashMap<(u64, u64), u32>,
    by_serial: HashMap<u64, u32>,
    /// Files waiting for the one with this serial to be read to its end.
    waiters: HashMap<u64, Vec<u32>>,
    next_serial: u64,
    /// Files whose turn to be read has come, in order.
    ready: VecDeque<u32>,
    /// The immediate that reads them, asked for and not run yet.
    pump: Option<ImmediateId>,
    pump_key: u64,
    /// Stopped reading for a congested cog: waiting for `resume`.
    waiting: bool,
    /// Finishing: no more turns.
    closed: bool,
    /// Files whose identity a save has just made durable: to be read.
    released: Vec<u32>,
    /// Files present at start, unknown to the checkpoint, started at their
    /// end (`read_from = "end"`): one that took the place of a checkpointed
    /// file while the tail was stopped is read from its start instead.
    started_at_end: HashSet<(u64, u64)>,
    /// Paths that could not be opened (logged once each).
    failing: HashSet<PathBuf>,
    /// Files truncated lately: their copy (copytruncate) goes on from there.
    copies: Copies,
    /// The descriptors held, and the files waiting for one.
    pub(crate) budget: Budget,
    /// Looks at paths that failed.
    pub(crate) looks: Trouble,
    /// Opens that failed.
    pub(crate) opens: Trouble,
    pub(crate) stats: TailStats,
    batch: bool,
    poll_interval: Duration,
    rotate_wait: Duration,
    fingerprint: usize,
    read_from: ReadFrom,
    lines: LinesSettings,
}

impl Files {
    /// An empty table; its reads run as the immediate `pump_key`.
    pub(crate) fn new(settings: &TailSettings, stats: TailStats, pump_key: u64) -> Files {
        let rotate_wait = Duration::from_millis(settings.rotate_wait_ms);
        Files {
            slots: Vec::new(),
            free: Vec::new(),
            by_inode: HashMap::new(),
            by_serial: HashMap::new(),
            waiters: HashMap::new(),
            next_serial: 0,
            ready: VecDeque::new(),
            pump: None,
            pump_key,
            waiting: false,
            closed: false,
            released: Vec::new(),
            started_at_end: HashSet::new(),
            failing: HashSet::new(),
            copies: Copies::new(rotate_wait),
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
            batch: settings.batch,
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
            rotate_wait,
            fingerprint: settings.fingerprint_bytes,
            read_from: settings.read_from,
            lines: settings.lines.clone(),
        }
    }

    /// The file in `slot`.
    pub(crate) fn get(&mut self, slot: u32) -> Option<&mut Tracked> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Slots in the table (some may be free): files are `0..len()`.
    pub(crate) fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Whether no file was ever followed.
    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The file in `slot`, to look at.
    pub(crate) fn peek(&self, slot: u32) -> Option<&Tracked> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The followed files.
    pub(crate) fn tracked(&self) -> impl Iterator<Item = &Tracked> {
        self.slots.iter().flatten()
    }

    /// The slot of the file with this serial.
    pub(crate) fn slot_of(&self, serial: u64) -> Option<u32> {
        self.by_serial.get(&serial).copied()
    }

    /// The first path of every followed file.
    pub(crate) fn origins(&self) -> Vec<PathBuf> {
        self.tracked().map(|f| PathBuf::from(f.origin.as_ref())).collect()
    }

    /// Every path of every followed file.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.tracked().flat_map(|f| f.paths.iter())
    }

    /// Whether a followed file has `path`.
    pub(crate) fn has_path(&self, path: &Path) -> bool {
        self.tracked().any(|f| f.paths.iter().any(|p| p == path))
    }

    // ---- turns ----------------------------------------------------------------

    /// Gives a file a turn to be read.
    pub(crate) fn queue<D, N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.get(slot) else { return };
        if file.queued || file.after.is_some() {
            return;
        }
        file.queued = true;
        self.ready.push_back(slot);
        if !self.waiting {
            self.schedule_pump(ctx);
        }
    }

    /// Gives every file a turn.
    pub(crate) fn queue_all<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        for slot in 0..self.len() {
            self.queue(slot, ctx);
        }
    }

    /// Asks for the files queued to be read.
    pub(crate) fn schedule_pump<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.pump.is_none() && !self.closed {
            self.pump = ctx.enqueue(self.pump_key).ok();
        }
    }

    /// The pump's immediate fired.
    pub(crate) fn pump_fired(&mut self) {
        self.pump = None;
    }

    /// After a turn: the pump again if files are still queued.
    pub(crate) fn pump_again<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if !self.ready.is_empty() && !self.waiting {
            self.schedule_pump(ctx);
        }
    }

    /// Files queued now.
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// The next file whose turn it is, taken off the queue (it may be gone).
    pub(crate) fn pop_ready(&mut self) -> Option<u32> {
        self.ready.pop_front()
    }

    /// Its turn begins: false if the file is gone.
    pub(crate) fn unqueue(&mut self, slot: u32) -> bool {
        let Some(file) = self.get(slot) else { return false };
        file.queued = false;
        true
    }

    /// It has more to read: back in the queue.
    pub(crate) fn requeue(&mut self, slot: u32) {
        if let Some(file) = self.get(slot) {
            file.queued = true;
            self.ready.push_back(slot);
        }
    }

    /// A cog downstream is congested: no more reads until it has room.
    pub(crate) fn wait(&mut self) {
        self.waiting = true;
    }

    /// A cog downstream may have room again.
    pub(crate) fn resume<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.waiting && !ctx.congested() {
            self.waiting = false;
            self.schedule_pump(ctx);
        }
    }

    /// Finishing: no more turns.
    pub(crate) fn close_pump(&mut self) {
        self.closed = true;
    }

    /// Nothing queued, nothing waiting for a descriptor.
    pub(crate) fn settled(&self) -> bool {
        self.ready.is_empty() && self.budget.starved.is_empty()
    }

    // ---- taking files in --------------------------------------------------------

    /// What the patterns match now (`found`, by inode; `unknown`: paths
    /// that could not be looked at, which keep their file): followed files
    /// get their paths, files that lost their last one are rotated away
    /// (read to their end, then closed), and the files not followed yet
    /// are returned, each to wait for the file that had its path.
    pub(crate) fn reconcile<D, N: Next<D> + ?Sized>(
        &mut self,
        mut found: HashMap<(u64, u64), Vec<PathBuf>>,
        unknown: &HashSet<PathBuf>,
        startup: bool,
        ctx: &mut Context<'_, D, N>,
    ) -> Vec<Pending> {
        let now = ctx.now();
        // Paths that moved from one file to another: the new file waits
        // until the old one is read to its end.
        let mut lost: HashMap<PathBuf, u64> = HashMap::new();
        for slot in 0..self.len() {
            let Some(file) = self.get(slot) else { continue };
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
            let Some(file) = self.get(slot) else { continue };
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
        fresh
            .into_iter()
            .map(|(path, paths, key)| Pending {
                after: paths.iter().find_map(|p| lost.get(p).copied()),
                path,
                paths,
                key,
                startup,
            })
            .collect()
    }

    /// Opens a file found at `path` (and `paths`), unless it is one already
    /// followed under another name: the file, not in the table yet.
    pub(crate) fn open(
        &mut self,
        path: &Path,
        paths: Vec<PathBuf>,
        rescan: &mut Rescan,
        now: Instant,
    ) -> Option<Tracked> {
        let mut file = match Tracked::open(path, self.next_serial, self.fingerprint, &self.lines) {
            Ok(file) => file,
            Err(e) if gone(&e) => return None,
            Err(e) if out_of_fds(&e) => {
                self.opens.hit(path, &e, now);
                rescan.later();
                return None;
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
                rescan.later();
                return None;
            }
        };
        if self.failing.remove(path) {
            log::info!("{}: opened at last", path.display());
        }
        if let Some(&slot) = self.by_inode.get(&file.key()) {
            // Renamed between the stat and the open, onto a file we have.
            if let Some(known) = self.get(slot) {
                known.paths.extend(paths);
                known.paths.sort();
                known.paths.dedup();
                known.orphan_since = None;
            }
            return None;
        }
        self.next_serial += 1;
        file.paths = paths;
        Some(file)
    }

    /// Takes in a file just opened at `path`: where it starts (`saved`: its
    /// position in the checkpoint, if any; `kept`: whether there is a
    /// checkpoint), whether it may be a copy, whose end it waits for. False
    /// if it could not be started (tried again at the next tick).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn start<D, N: Next<D> + ?Sized>(
        &mut self,
        mut file: Tracked,
        path: &Path,
        saved: Option<&Position>,
        kept: bool,
        after: Option<u64>,
        startup: bool,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> bool {
        // A copy can only be told from its original while following, and
        // the checkpoint knows its own files.
        let suspect =
            (!self.batch && saved.is_none() && self.copy_of(&file.head.bytes, None, startup) != CopyVerdict::No)
                .then(|| Suspect { since: ctx.now() });
        let start = if suspect.is_some() {
            log::debug!(
                "{}: begins like a file followed: maybe its copy (copytruncate)",
                file.origin
            );
            Ok(Mark::default())
        } else if startup {
            let start = start_mark(&file, saved, self.read_from, &self.stats.truncated);
            if self.read_from == ReadFrom::End && saved.is_none() {
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
                rescan.later();
                return false;
            }
        }
        file.durable = !kept || saved.is_some_and(|saved| file.is(saved));
        if let Some(s) = after.filter(|s| self.by_serial.contains_key(s)) {
            file.after = Some(s);
        }
        let watch = file.path();
        self.insert(file, &watch, ctx);
        true
    }

    /// Takes a file in: a slot, a watch (through `path`), a turn to be read.
    pub(crate) fn insert<D, N: Next<D> + ?Sized>(
        &mut self,
        mut file: Tracked,
        path: &Path,
        ctx: &mut Context<'_, D, N>,
    ) {
        if !self.batch {
            match ctx.watch_or_poll(path, file_mask(), self.poll_interval, FILE_TAG | file.serial) {
                Ok(id) => file.watch = Some(id),
                Err(e) => log::error!("{}: cannot watch: {e}", path.display()),
            }
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() as u32 - 1
            }
        };
        self.by_inode.insert(file.key(), slot);
        self.by_serial.insert(file.serial, slot);
        let after = file.after;
        let serial = file.serial;
        self.stats.files.put(serial, file.read.clone());
        self.stats.followed.add(1);
        self.slots[slot as usize] = Some(file);
        if let Some(s) = after {
            self.waiters.entry(s).or_default().push(slot);
            // A turn for the file waited for, whose end releases this one.
            if let Some(&old) = self.by_serial.get(&s) {
                self.queue(old, ctx);
            }
            // Waiting, it may give its descriptor to the file it waits for.
            self.budget.idle.push_back((slot, serial, 0));
            if let Some(f) = self.get(slot) {
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

    /// A file opened by a path other than its own (it was renamed while it
    /// waited for a descriptor) keeps `path` as its origin if no pattern
    /// matches it.
    pub(crate) fn name_orphan(&mut self, key: (u64, u64), path: &Path) {
        if let Some(file) = self.by_inode.get(&key).copied().and_then(|slot| self.get(slot)) {
            if file.paths.is_empty() {
                file.origin = Arc::from(path.to_string_lossy().as_ref());
            }
        }
    }

    // ---- rotated while stopped ------------------------------------------------------

    /// The file `saved` describes (device and inode `key`), opened at one of
    /// `paths` where its first bytes check out, with the path and its size;
    /// none if it is followed already or none of them is it.
    pub(crate) fn find_rotated(
        &self,
        key: (u64, u64),
        paths: &[PathBuf],
        saved: &Position,
    ) -> Option<(Tracked, PathBuf, u64)> {
        if self.by_inode.contains_key(&key) {
            return None;
        }
        let opened = paths.iter().find_map(|path| {
            let file = Tracked::open(path, self.next_serial, self.fingerprint, &self.lines).ok()?;
            (file.key() == key && file.is(saved)).then(|| (file, path.clone()))
        });
        let (file, path) = opened?;
        let size = file.handle().and_then(|f| f.metadata()).map(|m| m.len()).unwrap_or(0);
        Some((file, path, size))
    }

    /// Takes in a file the checkpoint knew, found rotated to `path` while
    /// the tail was stopped: read from its saved position to its end, as
    /// rotated away; the file now at its old path comes after it.
    pub(crate) fn adopt_rotated<D, N: Next<D> + ?Sized>(
        &mut self,
        mut file: Tracked,
        path: &Path,
        saved: &Position,
        ctx: &mut Context<'_, D, N>,
    ) {
        let serial = file.serial;
        self.next_serial += 1;
        file.origin = Arc::from(saved.path.as_str());
        file.durable = true;
        file.start_at(saved.mark());
        file.paths.clear();
        file.orphan_since = Some(ctx.now());
        self.stats.rotated.add(1);
        self.insert(file, path, ctx);
        let former = PathBuf::from(&saved.path);
        for slot in 0..self.len() {
            let Some(f) = self.get(slot) else { continue };
            if f.serial != serial && f.after.is_none() && f.paths.contains(&former) {
                f.after = Some(serial);
                self.waiters.entry(serial).or_default().push(slot);
            }
        }
    }

    /// A file the checkpoint knew at `former` was rotated away while the
    /// tail was stopped: the file at that path now is new since, so it is
    /// read from its start even with `read_from = "end"`.
    pub(crate) fn restart_replacement(&mut self, former: &str) {
        let former = Path::new(former);
        for file in self.slots.iter_mut().flatten() {
            if file.pos > 0 && file.paths.iter().any(|p| p == former) && self.started_at_end.remove(&file.key()) {
                log::info!(
                    "{}: took the place of a file rotated away while stopped: reading it from the start",
                    file.origin
                );
                file.start_at(Mark::default());
            }
        }
    }

    /// The start is over: files rotated while stopped were looked for.
    pub(crate) fn started(&mut self) {
        self.started_at_end.clear();
    }

    // ---- copytruncate -------------------------------------------------------------------

    /// Whether a file that begins with `head` is a copy made by
    /// copytruncate: of a file truncated lately, or maybe of a followed file
    /// (other than `except`) that is not truncated yet.
    fn copy_of(&self, head: &[u8], except: Option<u64>, startup: bool) -> CopyVerdict {
        let followed = self
            .tracked()
            .filter(|f| Some(f.serial) != except && f.copy_of.is_none())
            .map(Tracked::begins);
        self.copies.verdict(head, startup, followed)
    }

    /// Settles, if it can, whether a file is a copy made by copytruncate:
    /// true when it is to be read now (from where its original was read
    /// to, or from its start if it is no copy).
    pub(crate) fn judge(&mut self, slot: u32) -> bool {
        let fingerprint = self.fingerprint;
        let Some(file) = self.get(slot) else { return false };
        let serial = file.serial;
        let mut head = vec![0; fingerprint];
        let Ok(n) = file.handle().and_then(|fd| read_full_at(fd, &mut head, 0)) else {
            return false;
        };
        match self.copy_of(&head[..n], Some(serial), false) {
            CopyVerdict::Maybe => false,
            CopyVerdict::No => {
                let Some(file) = self.get(slot) else { return false };
                log::info!("{}: new file, reading it from the start", file.origin);
                file.copy_of = None;
                true
            }
            CopyVerdict::Of(resume) => {
                let Some(file) = self.get(slot) else { return false };
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

    /// A file is shorter than what was read, or its first bytes changed
    /// (its held partial line is out already; `had_partial`: it had one,
    /// or its last line went out without its newline): it starts over, and
    /// its copy, if one was seen, goes on from where it was read to.
    pub(crate) fn truncated<D, N: Next<D> + ?Sized>(
        &mut self,
        slot: u32,
        size: u64,
        had_partial: bool,
        ctx: &mut Context<'_, D, N>,
    ) {
        let Some(file) = self.slots[slot as usize].as_ref() else {
            return;
        };
        let resume = Resume {
            mark: Mark::at(file.pos, file.line),
            origin: Arc::clone(&file.origin),
            skip_newline: had_partial,
        };
        self.copies.truncated(file.head.bytes.clone(), resume, ctx.now());
        // Its copy (copytruncate), if one was seen, goes on from here.
        for c in 0..self.len() {
            if self.get(c).is_some_and(|f| f.copy_of.is_some()) {
                self.queue(c, ctx);
            }
        }
        let Some(file) = self.get(slot) else { return };
        log::warn!(
            "{}: truncated ({size} bytes, {} were read): reading it again from the start",
            file.origin,
            file.pos
        );
        file.restart();
        self.stats.truncated.add(1);
    }

    // ---- letting files go ------------------------------------------------------------------

    /// Forgets the truncations older than `rotate_wait_ms`.
    pub(crate) fn expire_truncations(&mut self, now: Instant) {
        self.copies.expire(now);
    }

    /// At a tick, for the file in `slot`: a possible copy that waited
    /// `rotate_wait_ms` is none; a file rotated away gets a turn (polling
    /// cannot see writes to a file no path names). True if it was rotated
    /// away `rotate_wait_ms` ago and is read to its end: through.
    pub(crate) fn through<D, N: Next<D> + ?Sized>(
        &mut self,
        slot: u32,
        now: Instant,
        ctx: &mut Context<'_, D, N>,
    ) -> bool {
        let wait = self.rotate_wait;
        let Some(file) = self.get(slot) else { return false };
        if let Some(since) = file.copy_of.as_ref().map(|s| s.since) {
            if now >= since + wait {
                log::info!("{}: not a copy after all: reading it from the start", file.origin);
                file.copy_of = None;
                self.queue(slot, ctx);
            }
            return false;
        }
        let Some(since) = file.orphan_since else { return false };
        if !file.at_eof || now < since + wait {
            self.queue(slot, ctx);
            return false;
        }
        true
    }

    /// A file was read to its end: files waiting for it may start; a file
    /// rotated away may be closed.
    pub(crate) fn reached_eof<D, N: Next<D> + ?Sized>(&mut self, slot: u32, ctx: &mut Context<'_, D, N>) {
        let Some(file) = self.get(slot) else { return };
        file.at_eof = true;
        let serial = file.serial;
        if file.closable() && !file.in_idle {
            file.in_idle = true;
            let stamp = file.stamp;
            self.budget.idle.push_back((slot, serial, stamp));
        }
        self.wake_waiters(serial, ctx);
    }

    /// The files waiting for the one with `serial` go on.
    fn wake_waiters<D, N: Next<D> + ?Sized>(&mut self, serial: u64, ctx: &mut Context<'_, D, N>) {
        if let Some(waiting) = self.waiters.remove(&serial) {
            for w in waiting {
                if let Some(f) = self.get(w) {
                    f.after = None;
                }
                self.queue(w, ctx);
            }
        }
    }

    /// Closes a file rotated away for good: it is read and delivered.
    /// Returns its device and inode, to be forgotten.
    pub(crate) fn close<D, N: Next<D> + ?Sized>(
        &mut self,
        slot: u32,
        ctx: &mut Context<'_, D, N>,
    ) -> Option<(u64, u64)> {
        let file = self.slots[slot as usize].take()?;
        if let Some(id) = file.watch {
            ctx.unwatch(id);
        }
        self.by_inode.remove(&file.key());
        self.by_serial.remove(&file.serial);
        self.stats.files.remove(file.serial);
        self.stats.followed.sub(1);
        self.wake_waiters(file.serial, ctx);
        self.free.push(slot);
        if file.file.is_some() {
            self.budget.open -= 1;
            self.stats.open.set(self.budget.open as u64);
        }
        self.stats.closed.add(1);
        log::info!("{}: closed after rotation, every line delivered", file.origin);
        Some(file.key())
    }

    // ---- saves -----------------------------------------------------------------------------------

    /// The positions that moved since the last save, and their slots.
    pub(crate) fn take_dirty(&mut self) -> (Vec<u32>, Vec<Position>) {
        let mut slots = Vec::new();
        let mut set = Vec::new();
        for (slot, file) in self.slots.iter_mut().enumerate() {
            let Some(file) = file else { continue };
            if std::mem::take(&mut file.dirty) {
                set.push(file.position());
                slots.push(slot as u32);
            }
        }
        (slots, set)
    }

    /// The positions of these files are saved: those new are durable now,
    /// and may be read.
    pub(crate) fn saved(&mut self, slots: &[u32]) {
        for &slot in slots {
            if let Some(file) = self.get(slot).filter(|f| !f.durable) {
                file.durable = true;
                self.released.push(slot);
            }
        }
    }

    /// The positions of these files could not be saved: at the next save.
    pub(crate) fn not_saved(&mut self, slots: &[u32]) {
        for &slot in slots {
            if let Some(file) = self.get(slot) {
                file.dirty = true;
            }
        }
    }

    /// Queues the files a save has just made durable.
    pub(crate) fn release<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        for slot in std::mem::take(&mut self.released) {
            self.queue(slot, ctx);
        }
    }
}
