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
use tourbillon::accessor::{Getter, Recycler};
use tourbillon::{Cog, Context, Core, Event, Finish, Fired, Next, Role};

use crate::drain::batch::{Driver, FLUSH, RETRY};
use crate::{Counter, Error, LogThrottle, Verdict};

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

/// The signal key of SIGHUP: reopen the path.
const REOPEN: u64 = 3;

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
    /// Gives the buffer of a datum written back for reuse, if set.
    recycler: Option<Recycler<D>>,
    file: Option<Open>,
    driver: Driver,
    /// How many attempts failed since writes last succeeded.
    failures: u32,
    failure_log: LogThrottle,
    deleted_log: LogThrottle,
    /// The open file ended with a fragment: a newline goes before the next line.
    owe_newline: bool,
    /// Written but not yet synced (with `fsync`).
    unsynced: bool,
    /// SIGHUP came but the path could not be reopened yet.
    reopen_wanted: bool,
    /// Finishing: when to give up on a failing write.
    finish_by: Option<Instant>,
    stats: FileDrainStats,
}

impl<D> fmt::Debug for FileDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDrain")
            .field("settings", &self.settings)
            .field("buffered", &self.driver.batch.len())
            .field("failing", &self.driver.failing())
            .finish_non_exhaustive()
    }
}

impl FileDrain<Event> {
    /// Appends the `raw` bytes of events.
    pub fn new(settings: FileDrainSettings) -> Result<Self, Error> {
        FileDrain::with_accessor(settings, Getter::<Event, [u8]>::raw()).map(|d| d.recycling(Recycler::raw()))
    }
}

impl<D: 'static> FileDrain<D> {
    /// Appends the bytes `bytes` reads (a datum without any is an empty line).
    pub fn with_accessor(settings: FileDrainSettings, bytes: Getter<D, [u8]>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(FileDrain {
            driver: Driver::new(settings.buffer_bytes, Duration::from_millis(settings.retry_interval_ms)),
            settings,
            bytes,
            recycler: None,
            file: None,
            failures: 0,
            failure_log: LogThrottle::new(LOG_INTERVAL),
            deleted_log: LogThrottle::new(LOG_INTERVAL),
            owe_newline: false,
            unsynced: false,
            reopen_wanted: false,
            finish_by: None,
            stats: FileDrainStats::default(),
        })
    }

    /// Gives each datum's byte buffer back for reuse once its bytes are
    /// copied for writing ([`Context::recycle`](tourbillon::Context::recycle)),
    /// through `recycler`; `new` does it for the `raw` bytes of events.
    pub fn recycling(mut self, recycler: Recycler<D>) -> Self {
        self.recycler = Some(recycler);
        self
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
            self.driver.batch.rewind();
            self.unsynced = false;
        }
        let ours = same && self.driver.batch.partial() > 0;
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
        if self.driver.batch.unwritten() > 0 {
            if let Err(e) = self.driver.batch.write_to(&mut open.file) {
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
        let partial = self.driver.batch.partial() as u64;
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
                self.driver.batch.unwrite(partial as usize);
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
                    self.driver.batch.lines()
                );
            }
            self.file = None;
            self.write()?;
        }
        Err(io::Error::other("the file was deleted three times during one flush"))
    }

    /// Writes what is buffered and reports it done; true if all of it is.
    fn flush<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.driver.batch.is_empty() && !self.unsynced {
            return true;
        }
        let now = ctx.now();
        match self.write().and_then(|()| self.follow_path(now)) {
            Ok(()) => {
                self.stats.lines.add(self.driver.batch.lines() as u64);
                if let Some(since) = self.driver.written(ctx) {
                    log::info!(
                        "{}: writing again, after failing for {:.1}s ({} failed attempts)",
                        self.path(),
                        now.saturating_duration_since(since).as_secs_f64(),
                        self.failures
                    );
                    self.failures = 0;
                    self.failure_log.flush(now);
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
                self.driver.failed(now);
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
                        self.driver.batch.lines(),
                        self.driver.batch.len()
                    );
                }
                self.driver.schedule.retry_after(ctx, delay);
                false
            }
        }
    }

    /// The wait before the next retry: doubling from the retry interval,
    /// up to [`BACKOFF_FACTOR`] times it; while finishing, the interval.
    fn backoff(&self) -> Duration {
        let base = self.driver.schedule.interval();
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
                if !self.driver.failing() {
                    self.driver.schedule.park(ctx);
                }
            }
            Err(e) => {
                // Writing on to the old file beats holding everything.
                log::error!(
                    "{}: cannot reopen: {e}; writing on to the file as it was, retrying every {:?}",
                    self.path(),
                    self.driver.schedule.interval()
                );
                self.reopen_wanted = true;
                self.driver.schedule.retry_soon(ctx);
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
            self.driver.batch.lines(),
            self.driver.batch.len()
        );
        self.driver.batch.clear();
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

/// In: data taken, with their bytes; out: lines written and reported
/// done; errors: failed writes.
impl<D: 'static> crate::meter::Metered for FileDrain<D> {
    fn meter(&self) -> crate::meter::Meter {
        self.driver.meter.clone()
    }

    fn probe(&self) -> Option<std::sync::Arc<dyn crate::meter::Probe>> {
        Some(std::sync::Arc::new(self.driver.gauges.clone()))
    }
}

impl<D: 'static> Cog<D> for FileDrain<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let path = self.path().to_string();
        self.driver.schedule.start(ctx, &path);
        if let Err(e) = ctx.on_signal(libc::SIGHUP, REOPEN) {
            log::error!("{path}: cannot catch SIGHUP ({e}); the file will not be reopened after rotation");
        }
        match self.open() {
            Ok(open) => self.adopt(open),
            Err(e) => {
                self.driver.failed(ctx.now());
                self.failures = 1;
                self.stats.failures.add(1);
                self.failure_log.hit(ctx.now());
                log::error!(
                    "{path}: cannot open: {e}; holding what comes, not reported written; retrying in {:?}",
                    self.driver.schedule.interval()
                );
                self.driver.schedule.retry_soon(ctx);
            }
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let id = ctx.id_of(&datum);
        let now = self.driver.push(self.bytes.get(&datum).unwrap_or_default(), id, ctx);
        // The bytes are copied into the batch: their buffer can be filled again.
        if let Some(buf) = self.recycler.as_ref().and_then(|r| r.take(datum)) {
            ctx.recycle(buf);
        }
        if now {
            self.flush(ctx);
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        match key {
            FLUSH => {
                let write = self.driver.burst_fired();
                if write {
                    self.flush(ctx);
                }
            }
            RETRY => {
                let flushed = !self.driver.failing() || self.flush(ctx);
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
        let grace = FINISH_GRACE.max(self.driver.schedule.interval() * 2);
        self.finish_by = Some(ctx.now() + grace);
        if self.flush(ctx) {
            self.finish_by = None;
            Finish::Done
        } else {
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut Core) {
        if !self.driver.batch.is_empty() {
            log::error!(
                "{}: {} lines ({} bytes) could not be written before the end; their data were not reported done",
                self.path(),
                self.driver.batch.lines(),
                self.driver.batch.len()
            );
        }
        self.file = None;
    }

    fn congested(&self) -> bool {
        self.driver.congested()
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
}
