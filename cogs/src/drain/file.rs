//! [`FileDrain`]: appends each datum's bytes, plus a newline, to a file.
//!
//! Writes are buffered and happen when the buffer is full and at the end of
//! every burst of data (an immediate event queued by the first datum of the
//! burst), so a quiet stream is written within a turn of the loop. A datum
//! is reported `event_done` only once its bytes are written (and synced,
//! with `fsync`) to the file the path names: at-least-once. SIGHUP flushes
//! and reopens the path, so logrotate's rename-and-create works.
//!
//! What the drain does when the file misbehaves:
//!
//! - **The file ends in the middle of a line** when the drain opens it (at
//!   start, at a SIGHUP reopen, after the path was deleted): a crash in the
//!   middle of a write, or another writer's unfinished line. The drain
//!   starts a new line after the fragment rather than append to it, and
//!   counts and logs it with its size. It does not cut the fragment: it may
//!   be another writer's bytes, or a file the user keeps, and the drain
//!   cannot tell them from its own; leaving it whole destroys nothing, and
//!   if it was the drain's own, its events were never reported done, so a
//!   supply that checkpoints sends them again whole.
//! - **A write fails** (`ENOSPC`, `EIO`, `EMFILE` at open, a missing
//!   directory): nothing in the buffer is reported done; the error is logged
//!   with the path, at most once per 10 s with a count of the failures in
//!   between; the write is retried on a timer that backs off from
//!   `retry_interval_ms` to 8 times that. A write that stopped in the middle
//!   of a line is cut back to the last whole line (`ftruncate`, when nobody
//!   else wrote after it), so neither a crash nor the retry leaves a torn
//!   line; if it cannot be cut, the retry goes on from the byte where it
//!   stopped. Once the buffer is full the drain says it is congested.
//! - **The file is deleted** while the drain writes to it: each flush,
//!   before anything is reported done, compares the open file's device and
//!   inode with the path's (`fstat` and `stat`, once per flush, not per
//!   line). If the path no longer names it and it has no link left, the
//!   drain logs it (throttled), creates the file at the path anew and
//!   writes there everything not yet reported done. What was reported done
//!   before the deletion went with the deleted file: deleting it was the
//!   user's doing. A file moved away (rotated) still holds what was written
//!   to it: the drain goes on writing there until SIGHUP, or until the path
//!   names a new file, then writes to that.
//! - **At finish** a failing drain retries for at most 1 s (or two retry
//!   intervals, if longer), never the escapement's whole deadline; then it
//!   finishes with an error naming the path and how many lines it could not
//!   write. They were never reported done, so a supply that checkpoints
//!   sends them again at the next start.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Core, Event, EventId, Finish, Fired, ImmediateId, Next, Role, TimerId};

use crate::{Counter, Error, LogThrottle, Verdict};

/// Lines waiting to be reported done, and the ids of the data they came
/// from. The bytes stay until then, written or not: a file that went away
/// gets all of them again.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    ids: Vec<EventId>,
    lines: usize,
    /// How many bytes of `buf` reached the output.
    written: usize,
}

impl Batch {
    pub(crate) fn with_capacity(bytes: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            ..Batch::default()
        }
    }

    /// Appends `bytes` and a newline.
    pub(crate) fn push(&mut self, bytes: &[u8], id: Option<EventId>) {
        self.buf.reserve(bytes.len() + 1);
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'\n');
        self.lines += 1;
        if let Some(id) = id {
            self.ids.push(id);
        }
    }

    /// Bytes held, written or not.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Lines held.
    pub(crate) fn lines(&self) -> usize {
        self.lines
    }

    /// Bytes not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Bytes of the last line that were written although the line was not
    /// whole: what a failed write left at the end of the output.
    pub(crate) fn partial(&self) -> usize {
        let head = &self.buf[..self.written];
        head.len() - head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    }

    /// Takes back the last `n` written bytes, cut from the output.
    pub(crate) fn unwrite(&mut self, n: usize) {
        self.written -= n;
    }

    /// Everything is to be written again, to a new output.
    pub(crate) fn rewind(&mut self) {
        self.written = 0;
    }

    /// Once every byte is written: forgets them, and gives the ids of their
    /// data for `event_done`.
    pub(crate) fn take_ids(&mut self) -> std::vec::Drain<'_, EventId> {
        debug_assert_eq!(self.written, self.buf.len(), "reported done before written");
        self.buf.clear();
        self.written = 0;
        self.lines = 0;
        self.ids.drain(..)
    }

    /// Forgets everything held.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ids.clear();
        self.lines = 0;
        self.written = 0;
    }

    /// Writes every byte not yet written. On an error the bytes written so
    /// far count as written, so a retry neither loses nor repeats any.
    pub(crate) fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        while self.written < self.buf.len() {
            match out.write(&self.buf[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Timer and immediate keys of the drains.
pub(crate) const FLUSH: u64 = 1;
pub(crate) const RETRY: u64 = 2;
pub(crate) const REOPEN: u64 = 3;

/// How long the retry timer waits while nothing fails.
const PARKED: Duration = Duration::from_secs(24 * 3600);

/// When a drain writes: at the end of each burst, and after a failure.
///
/// The retry timer is bound once, in `start`, and parked far ahead while
/// writes succeed: a cog may move what it holds while it finishes but not
/// bind anything new, and a write may well fail for the first time then.
#[derive(Debug)]
pub(crate) struct Schedule {
    burst: Option<ImmediateId>,
    retry: Option<TimerId>,
    interval: Duration,
}

impl Schedule {
    pub(crate) fn new(interval: Duration) -> Schedule {
        Schedule {
            burst: None,
            retry: None,
            interval,
        }
    }

    pub(crate) fn start<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, what: &str) {
        match ctx.every(PARKED, RETRY) {
            Ok(id) => self.retry = Some(id),
            Err(e) => log::error!("{what}: cannot bind the retry timer ({e}); failed writes will not be retried"),
        }
    }

    /// A datum was buffered: queues the end-of-burst flush if none is
    /// queued. False if it cannot be queued: flush now.
    pub(crate) fn burst<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.burst.is_none() {
            self.burst = ctx.enqueue(FLUSH).ok();
        }
        self.burst.is_some()
    }

    /// The end-of-burst flush came up.
    pub(crate) fn burst_fired(&mut self) {
        self.burst = None;
    }

    pub(crate) fn retry_soon<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.retry_after(ctx, self.interval);
    }

    pub(crate) fn retry_after<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, delay: Duration) {
        if let Some(id) = self.retry {
            let at = ctx.now() + delay;
            ctx.reschedule(id, at);
        }
    }

    pub(crate) fn park<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(id) = self.retry {
            let at = ctx.now() + PARKED;
            ctx.reschedule(id, at);
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }
}

/// Settings of [`FileDrain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileDrainSettings {
    /// The file to append to; created if missing. Required.
    #[serde(deserialize_with = "crate::setting::path")]
    pub path: PathBuf,
    /// Bytes buffered before they are written; they are also written at the
    /// end of every burst of data. At least 1, at most 1 GiB. Default 65536
    /// (64 KiB).
    pub buffer_bytes: usize,
    /// Sync the data to disk (fdatasync) after each write, before the data
    /// are reported done. Default false.
    pub fsync: bool,
    /// Create the file's missing parent directories. Default false.
    pub create_dirs: bool,
    /// Milliseconds before the first retry after a failed write or open;
    /// each further failure doubles the wait, up to 8 times this. At least
    /// 1. Default 1000.
    pub retry_interval_ms: u64,
}

impl Default for FileDrainSettings {
    fn default() -> Self {
        FileDrainSettings {
            path: PathBuf::new(),
            buffer_bytes: 64 * 1024,
            fsync: false,
            create_dirs: false,
            retry_interval_ms: 1000,
        }
    }
}

impl FileDrainSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.path.as_os_str().is_empty() {
            return Err(Error::setting("path", "required: the file to append to"));
        }
        crate::setting::buffer_bytes(self.buffer_bytes)?;
        if self.retry_interval_ms == 0 {
            return Err(Error::setting("retry_interval_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// What a [`FileDrain`] counted; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct FileDrainStats {
    /// Lines written and reported done.
    pub lines: Counter,
    /// Files found ending in the middle of a line when opened: a new line
    /// was started after the fragment.
    pub fragments: Counter,
    /// Times the file was found deleted at a flush, so that what was not
    /// yet reported done was written again to a new file at the path.
    pub deleted: Counter,
    /// Failed writes whose partial last line was cut back from the file.
    pub cut: Counter,
    /// Failed attempts to open, write or sync.
    pub failures: Counter,
}

/// The longest fragment looked for at the end of a file when it is opened.
const FRAGMENT_LOOK_BACK: u64 = 1 << 20;

/// Backoff of retries: at most this many times `retry_interval_ms`.
const BACKOFF_FACTOR: u32 = 8;

/// Failures are logged at most once per this.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The shortest time a failing drain keeps retrying once it is asked to finish.
const FINISH_GRACE: Duration = Duration::from_secs(1);

/// The file open at the path, and who it is.
#[derive(Debug)]
struct Open {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes after the file's last newline when it was opened (0: none);
    /// `more`: the look-back gave up before the line's start.
    fragment: u64,
    more: bool,
}

/// Appends each datum's bytes and a newline to a file; see the [module docs](self).
pub struct FileDrain<D = Event> {
    settings: FileDrainSettings,
    bytes: Getter<D, [u8]>,
    file: Option<Open>,
    batch: Batch,
    schedule: Schedule,
    /// Since when writes fail, if they do, and how many attempts failed.
    failing: Option<Instant>,
    failures: u32,
    failure_log: LogThrottle,
    deleted_log: LogThrottle,
    /// The open file ended with a fragment: a newline goes before the next line.
    owe_newline: bool,
    /// Written but not yet synced (with `fsync`).
    unsynced: bool,
    /// SIGHUP came but the path could not be reopened yet.
    reopen_wanted: bool,
    congested: bool,
    /// Finishing: when to give up on a failing write.
    finish_by: Option<Instant>,
    stats: FileDrainStats,
}

impl<D> fmt::Debug for FileDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDrain")
            .field("settings", &self.settings)
            .field("buffered", &self.batch.len())
            .field("failing", &self.failing.is_some())
            .finish_non_exhaustive()
    }
}

impl FileDrain<Event> {
    /// Appends the `raw` bytes of events.
    pub fn new(settings: FileDrainSettings) -> Result<Self, Error> {
        FileDrain::with_accessor(settings, Getter::<Event, [u8]>::raw())
    }
}

impl<D: 'static> FileDrain<D> {
    /// Appends the bytes `bytes` reads (a datum without any is an empty line).
    pub fn with_accessor(settings: FileDrainSettings, bytes: Getter<D, [u8]>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(FileDrain {
            batch: Batch::with_capacity(settings.buffer_bytes),
            schedule: Schedule::new(Duration::from_millis(settings.retry_interval_ms)),
            settings,
            bytes,
            file: None,
            failing: None,
            failures: 0,
            failure_log: LogThrottle::new(LOG_INTERVAL),
            deleted_log: LogThrottle::new(LOG_INTERVAL),
            owe_newline: false,
            unsynced: false,
            reopen_wanted: false,
            congested: false,
            finish_by: None,
            stats: FileDrainStats::default(),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> FileDrainStats {
        self.stats.clone()
    }

    fn path(&self) -> std::path::Display<'_> {
        self.settings.path.display()
    }

    /// Opens the path for appending, and looks at how the file ends.
    fn open(&self) -> io::Result<Open> {
        let path = &self.settings.path;
        if self.settings.create_dirs {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
        }
        let (file, readable) = match OpenOptions::new().read(true).create(true).append(true).open(path) {
            Ok(file) => (file, true),
            // A write-only file: its end cannot be looked at.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                (OpenOptions::new().create(true).append(true).open(path)?, false)
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let (fragment, more) = if readable {
            fragment(&file, meta.len())?
        } else {
            log::debug!(
                "{}: not readable: cannot check that it ends with a whole line",
                path.display()
            );
            (0, false)
        };
        Ok(Open {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            fragment,
            more,
        })
    }

    /// Makes `open` the file written to. A file other than the one open
    /// gets the whole batch. A fragment at its end gets a newline after it,
    /// unless it is this drain's own line, partly written to this same file.
    fn adopt(&mut self, open: Open) {
        let same = self
            .file
            .as_ref()
            .is_some_and(|old| (old.dev, old.ino) == (open.dev, open.ino));
        if !same {
            self.batch.rewind();
            self.unsynced = false;
        }
        let ours = same && self.batch.partial() > 0;
        self.owe_newline = open.fragment > 0 && !ours;
        if self.owe_newline {
            self.stats.fragments.add(1);
            log::warn!(
                "{}: ends with {}{} bytes of an unfinished line (no newline at the end); starting a new line \
                 after it rather than appending to it",
                self.path(),
                if open.more { "more than " } else { "" },
                open.fragment
            );
        }
        self.file = Some(open);
    }

    /// Writes and syncs what is not yet, opening the file if need be.
    fn write(&mut self) -> io::Result<()> {
        if self.file.is_none() {
            let open = self.open()?;
            self.adopt(open);
        }
        let Some(open) = self.file.as_mut() else {
            unreachable!("opened above")
        };
        if self.owe_newline {
            if open.file.write(b"\n")? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.owe_newline = false;
        }
        if self.batch.unwritten() > 0 {
            if let Err(e) = self.batch.write_to(&mut open.file) {
                self.cut_back();
                return Err(e);
            }
            self.unsynced = self.settings.fsync;
        }
        if self.unsynced {
            open.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// After a failed write: cuts the partial last line it left off the
    /// end of the file, so that a crash before the retry leaves no torn
    /// line. Only when the file still ends where this drain's write ended:
    /// bytes someone else wrote since are not cut.
    fn cut_back(&mut self) {
        let partial = self.batch.partial() as u64;
        let Some(open) = self.file.as_mut().filter(|_| partial > 0) else {
            return;
        };
        // With O_APPEND, the offset is where this drain's last write ended.
        let cut = open.file.stream_position().and_then(|end| {
            if open.file.metadata()?.len() != end || end < partial {
                return Ok(false);
            }
            open.file.set_len(end - partial)?;
            Ok(true)
        });
        match cut {
            Ok(true) => {
                self.batch.unwrite(partial as usize);
                self.stats.cut.add(1);
                log::debug!("{}: cut the {partial} bytes of a partly written line", self.path());
            }
            // The retry goes on from where the write stopped.
            Ok(false) => {}
            Err(e) => log::debug!("{}: cannot cut a partly written line: {e}", self.path()),
        }
    }

    /// Whether the lines just written are in a file that still exists, at
    /// the path or where it was moved to. A deleted file is replaced by a
    /// new one at the path, which gets everything not yet reported done.
    /// Errors are failures to verify: nothing is reported done on them.
    fn follow_path(&mut self, now: Instant) -> io::Result<()> {
        // A file deleted again and again while we write: retry later.
        for _ in 0..3 {
            let Some(open) = &self.file else { return Ok(()) };
            let elsewhere = match fs::metadata(&self.settings.path) {
                Ok(m) if (m.dev(), m.ino()) == (open.dev, open.ino) => return Ok(()),
                Ok(_) => true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => false,
                Err(e) => return Err(e),
            };
            if open.file.metadata()?.nlink() > 0 {
                // Moved away (rotated): what it holds is kept there. Go on
                // writing to it until a SIGHUP, or until the path names a
                // new file (logrotate's `create`); creating the path here
                // would race logrotate's own creation.
                if elsewhere {
                    log::info!("{}: the path names a new file: writing there from now on", self.path());
                    self.file = None;
                }
                return Ok(());
            }
            self.stats.deleted.add(1);
            if let Verdict::Log { held } = self.deleted_log.hit(now) {
                let also = held.map_or(String::new(), |h| {
                    format!(" ({} more times in the last {:.0?})", h.count, h.over)
                });
                log::warn!(
                    "{}: deleted while {} lines were being written to it: writing them again to a new file at \
                     the path; the lines written before the deletion went with the deleted file{also}",
                    self.path(),
                    self.batch.lines()
                );
            }
            self.file = None;
            self.write()?;
        }
        Err(io::Error::other("the file was deleted three times during one flush"))
    }

    /// Writes what is buffered and reports it done; true if all of it is.
    fn flush<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.batch.is_empty() && !self.unsynced {
            return true;
        }
        let now = ctx.now();
        match self.write().and_then(|()| self.follow_path(now)) {
            Ok(()) => {
                self.stats.lines.add(self.batch.lines() as u64);
                for id in self.batch.take_ids() {
                    ctx.event_done(id);
                }
                if let Some(since) = self.failing.take() {
                    log::info!(
                        "{}: writing again, after failing for {:.1}s ({} failed attempts)",
                        self.path(),
                        now.saturating_duration_since(since).as_secs_f64(),
                        self.failures
                    );
                    self.failures = 0;
                    self.failure_log.flush(now);
                    self.schedule.park(ctx);
                }
                if self.congested {
                    self.congested = false;
                    ctx.resume_upstream();
                }
                true
            }
            Err(e) => {
                let what = if self.file.is_none() {
                    "cannot open"
                } else {
                    "cannot write"
                };
                self.stats.failures.add(1);
                self.failing.get_or_insert(now);
                self.failures = self.failures.saturating_add(1);
                let delay = self.backoff();
                if let Verdict::Log { held } = self.failure_log.hit(now) {
                    let also = held.map_or(String::new(), |h| {
                        format!(" ({} more failures in the last {:.0?})", h.count, h.over)
                    });
                    log::error!(
                        "{}: {what}: {e}; holding {} lines ({} bytes), not reported written; retrying in \
                         {delay:?}{also}",
                        self.path(),
                        self.batch.lines(),
                        self.batch.len()
                    );
                }
                self.schedule.retry_after(ctx, delay);
                false
            }
        }
    }

    /// The wait before the next retry: doubling from the retry interval,
    /// up to [`BACKOFF_FACTOR`] times it; while finishing, the interval.
    fn backoff(&self) -> Duration {
        let base = self.schedule.interval();
        if self.finish_by.is_some() {
            return base;
        }
        let factor = 1u32 << self.failures.saturating_sub(1).min(BACKOFF_FACTOR.trailing_zeros());
        base * factor
    }

    /// Opens the path anew (after logrotate moved the file away).
    fn reopen<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.file.is_none() {
            // Not open at all: the next write opens the path.
            self.reopen_wanted = false;
            return;
        }
        if self.unsynced {
            // Data written to the old file are reported done only once
            // synced there; keep it until then.
            self.reopen_wanted = true;
            return;
        }
        match self.open() {
            Ok(open) => {
                self.adopt(open);
                self.reopen_wanted = false;
                log::info!("{}: reopened", self.path());
                if self.failing.is_none() {
                    self.schedule.park(ctx);
                }
            }
            Err(e) => {
                // Writing on to the old file beats holding everything.
                log::error!(
                    "{}: cannot reopen: {e}; writing on to the file as it was, retrying every {:?}",
                    self.path(),
                    self.schedule.interval()
                );
                self.reopen_wanted = true;
                self.schedule.retry_soon(ctx);
            }
        }
    }

    /// Finishing and still failing: what could not be written stays not
    /// done, and the drain is through.
    fn give_up(&mut self) {
        log::error!(
            "{}: finishing without writing {} lines ({} bytes): the file cannot be written; they were not \
             reported done, so a supply that checkpoints sends them again at the next start",
            self.path(),
            self.batch.lines(),
            self.batch.len()
        );
        self.batch.clear();
    }
}

/// How many bytes follow the last newline of `file`, which is `len` bytes
/// long, looking back at most [`FRAGMENT_LOOK_BACK`] bytes; true if it gave
/// up before finding the line's start.
fn fragment(file: &File, len: u64) -> io::Result<(u64, bool)> {
    let mut block = [0u8; 8192];
    let floor = len.saturating_sub(FRAGMENT_LOOK_BACK);
    let mut end = len;
    while end > floor {
        let start = end.saturating_sub(block.len() as u64).max(floor);
        let part = &mut block[..(end - start) as usize];
        file.read_exact_at(part, start)?;
        if let Some(i) = part.iter().rposition(|&b| b == b'\n') {
            return Ok((len - (start + i as u64 + 1), false));
        }
        end = start;
    }
    Ok((len - floor, floor > 0))
}

impl<D: 'static> Cog<D> for FileDrain<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let path = self.path().to_string();
        self.schedule.start(ctx, &path);
        if let Err(e) = ctx.on_signal(libc::SIGHUP, REOPEN) {
            log::error!("{path}: cannot catch SIGHUP ({e}); the file will not be reopened after rotation");
        }
        match self.open() {
            Ok(open) => self.adopt(open),
            Err(e) => {
                self.failing = Some(ctx.now());
                self.failures = 1;
                self.stats.failures.add(1);
                self.failure_log.hit(ctx.now());
                log::error!(
                    "{path}: cannot open: {e}; holding what comes, not reported written; retrying in {:?}",
                    self.schedule.interval()
                );
                self.schedule.retry_soon(ctx);
            }
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let id = ctx.id_of(&datum);
        self.batch.push(self.bytes.get(&datum).unwrap_or_default(), id);
        drop(datum);
        if self.batch.len() >= self.settings.buffer_bytes {
            if self.failing.is_some() {
                // The retry timer writes; until then, ask for no more.
                self.congested = true;
            } else {
                self.flush(ctx);
            }
        } else if !self.schedule.burst(ctx) && self.failing.is_none() {
            self.flush(ctx);
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        match key {
            FLUSH => {
                self.schedule.burst_fired();
                if self.failing.is_none() {
                    self.flush(ctx);
                }
            }
            RETRY => {
                let flushed = self.failing.is_none() || self.flush(ctx);
                if self.reopen_wanted {
                    self.reopen(ctx);
                }
                if let Some(by) = self.finish_by {
                    if !flushed && ctx.now() >= by {
                        self.give_up();
                    }
                    if flushed || ctx.now() >= by {
                        self.finish_by = None;
                        ctx.finished();
                    }
                }
            }
            REOPEN => {
                // What is buffered was meant for the file as it was.
                self.flush(ctx);
                self.reopen(ctx);
            }
            _ => {}
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        // The grace period first, so that a failure here retries at the
        // interval rather than after a long backoff.
        let grace = FINISH_GRACE.max(self.schedule.interval() * 2);
        self.finish_by = Some(ctx.now() + grace);
        if self.flush(ctx) {
            self.finish_by = None;
            Finish::Done
        } else {
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut Core) {
        if !self.batch.is_empty() {
            log::error!(
                "{}: {} lines ({} bytes) could not be written before the end; their data were not reported done",
                self.path(),
                self.batch.lines(),
                self.batch.len()
            );
        }
        self.file = None;
    }

    fn congested(&self) -> bool {
        self.congested
    }

    fn role(&self) -> Role {
        Role::Drain
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "file path={} source={} buffer_bytes={} fsync={} create_dirs={} retry_interval_ms={}",
            s.path.display(),
            self.bytes,
            s.buffer_bytes,
            s.fsync,
            s.create_dirs,
            s.retry_interval_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment_of(content: &[u8]) -> (u64, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, content).unwrap();
        let file = File::open(&path).unwrap();
        fragment(&file, content.len() as u64).unwrap()
    }

    #[test]
    fn a_fragment_is_what_follows_the_last_newline() {
        assert_eq!(fragment_of(b""), (0, false));
        assert_eq!(fragment_of(b"a\nb\n"), (0, false));
        assert_eq!(fragment_of(b"a\nbc"), (2, false));
        assert_eq!(fragment_of(b"no newline at all"), (17, false));
        // Across the 8 KiB blocks it reads backwards.
        let mut long = b"head\n".to_vec();
        long.extend(std::iter::repeat_n(b'x', 20_000));
        assert_eq!(fragment_of(&long), (20_000, false));
        // It gives up after 1 MiB, and says so.
        let huge = vec![b'x'; (FRAGMENT_LOOK_BACK + 10) as usize];
        assert_eq!(fragment_of(&huge), (FRAGMENT_LOOK_BACK, true));
    }

    #[test]
    fn a_batch_knows_its_partly_written_last_line() {
        let mut b = Batch::with_capacity(64);
        b.push(b"one", None);
        b.push(b"two", None);
        let mut out: Vec<u8> = Vec::new();
        // A writer that takes 6 bytes, then fails.
        struct Short<'a>(&'a mut Vec<u8>, usize);
        impl Write for Short<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.1 == 0 {
                    return Err(io::ErrorKind::StorageFull.into());
                }
                let n = buf.len().min(self.1);
                self.0.extend_from_slice(&buf[..n]);
                self.1 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(b.write_to(&mut Short(&mut out, 6)).is_err());
        assert_eq!((out.as_slice(), b.partial(), b.unwritten()), (&b"one\ntw"[..], 2, 2));
        b.unwrite(2);
        out.truncate(4);
        assert_eq!((b.partial(), b.unwritten()), (0, 4));
        b.write_to(&mut Short(&mut out, 100)).unwrap();
        assert_eq!(out, b"one\ntwo\n");
        assert_eq!(b.lines(), 2);
        assert_eq!(b.take_ids().count(), 0);
        assert!(b.is_empty());
        b.push(b"three", None);
        b.write_to(&mut Vec::new()).unwrap();
        b.rewind();
        assert_eq!(b.unwritten(), 6, "a new file gets the whole batch again");
    }
}
