//! [`FileDrain`]: appends each datum's bytes, plus a newline, to a file.
//!
//! Writes are buffered and happen when the buffer is full and at the end of
//! every burst of data (an immediate event queued by the first datum of the
//! burst), so a quiet stream is written within a turn of the loop. A datum
//! is reported `event_done` only once its bytes are written (and synced,
//! with `fsync`): at-least-once. A failed write or open is logged with the
//! file's path and retried on a timer; nothing buffered is lost meanwhile,
//! and the drain says it is congested once its buffer is full. SIGHUP
//! flushes and reopens the path, so logrotate's rename-and-create works.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Core, Event, EventId, Finish, Fired, ImmediateId, Next, Role, TimerId};

use crate::Error;

/// Lines waiting to be written, and the ids of the data they came from.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    ids: Vec<EventId>,
}

impl Batch {
    pub(crate) fn with_capacity(bytes: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            ids: Vec::new(),
        }
    }

    /// Appends `bytes` and a newline.
    pub(crate) fn push(&mut self, bytes: &[u8], id: Option<EventId>) {
        self.buf.reserve(bytes.len() + 1);
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'\n');
        if let Some(id) = id {
            self.ids.push(id);
        }
    }

    /// Bytes buffered.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Ids of the data whose bytes were pushed (and written, once the
    /// buffer is empty), for `event_done`.
    pub(crate) fn take_ids(&mut self) -> std::vec::Drain<'_, EventId> {
        self.ids.drain(..)
    }

    /// Forgets everything buffered.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ids.clear();
    }

    /// Writes every buffered byte. On an error the bytes already written
    /// leave the buffer and the others stay, so a retry neither loses nor
    /// repeats any.
    pub(crate) fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        let mut written = 0;
        let result = loop {
            if written == self.buf.len() {
                break Ok(());
            }
            match out.write(&self.buf[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..written);
        result
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
        if let Some(id) = self.retry {
            let at = ctx.now() + self.interval;
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
    pub path: PathBuf,
    /// Bytes buffered before they are written; they are also written at the
    /// end of every burst of data. At least 1. Default 65536 (64 KiB).
    pub buffer_bytes: usize,
    /// Sync the data to disk (fdatasync) after each write, before the data
    /// are reported done. Default false.
    pub fsync: bool,
    /// Create the file's missing parent directories. Default false.
    pub create_dirs: bool,
    /// Milliseconds between attempts after a failed write or open. At
    /// least 1. Default 1000.
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
        if self.buffer_bytes == 0 {
            return Err(Error::setting("buffer_bytes", "must be at least 1"));
        }
        if self.retry_interval_ms == 0 {
            return Err(Error::setting("retry_interval_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// Appends each datum's bytes and a newline to a file; see the [module docs](self).
pub struct FileDrain<D = Event> {
    settings: FileDrainSettings,
    bytes: Getter<D, [u8]>,
    file: Option<File>,
    batch: Batch,
    schedule: Schedule,
    /// Since when writes fail, if they do.
    failing: Option<Instant>,
    /// Written but not yet synced (with `fsync`).
    unsynced: bool,
    /// SIGHUP came but the path could not be reopened yet.
    reopen_wanted: bool,
    congested: bool,
    finishing: bool,
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
            unsynced: false,
            reopen_wanted: false,
            congested: false,
            finishing: false,
        })
    }

    fn open(&self) -> io::Result<File> {
        let path = &self.settings.path;
        if self.settings.create_dirs {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
        }
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Writes and syncs what is buffered, opening the file if need be.
    fn write(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(self.open()?),
        };
        if !self.batch.is_empty() {
            self.batch.write_to(file)?;
            self.unsynced = self.settings.fsync;
        }
        if self.unsynced {
            file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Writes what is buffered and reports it done; true if all of it is.
    fn flush<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.batch.is_empty() && !self.unsynced {
            return true;
        }
        match self.write() {
            Ok(()) => {
                for id in self.batch.take_ids() {
                    ctx.event_done(id);
                }
                if let Some(since) = self.failing.take() {
                    log::info!(
                        "{}: writing again, after failing for {:.1}s",
                        self.settings.path.display(),
                        since.elapsed().as_secs_f64()
                    );
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
                if self.failing.is_none() {
                    self.failing = Some(ctx.now());
                    log::error!(
                        "{}: {what}: {e}; holding {} bytes, retrying every {:?}",
                        self.settings.path.display(),
                        self.batch.len(),
                        self.schedule.interval()
                    );
                } else {
                    log::debug!("{}: {what}: {e}; retrying", self.settings.path.display());
                }
                self.schedule.retry_soon(ctx);
                false
            }
        }
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
            Ok(file) => {
                self.file = Some(file);
                self.reopen_wanted = false;
                log::info!("{}: reopened", self.settings.path.display());
                if self.failing.is_none() {
                    self.schedule.park(ctx);
                }
            }
            Err(e) => {
                // Writing on to the old file beats holding everything.
                log::error!(
                    "{}: cannot reopen: {e}; writing on to the file as it was, retrying every {:?}",
                    self.settings.path.display(),
                    self.schedule.interval()
                );
                self.reopen_wanted = true;
                self.schedule.retry_soon(ctx);
            }
        }
    }
}

impl<D: 'static> Cog<D> for FileDrain<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let path = self.settings.path.display().to_string();
        self.schedule.start(ctx, &path);
        if let Err(e) = ctx.on_signal(libc::SIGHUP, REOPEN) {
            log::error!("{path}: cannot catch SIGHUP ({e}); the file will not be reopened after rotation");
        }
        match self.open() {
            Ok(file) => self.file = Some(file),
            Err(e) => {
                self.failing = Some(ctx.now());
                log::error!(
                    "{path}: cannot open: {e}; holding what comes, retrying every {:?}",
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
                if flushed && self.finishing {
                    ctx.finished();
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
        self.finishing = true;
        if self.flush(ctx) {
            Finish::Done
        } else {
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut Core) {
        if !self.batch.is_empty() {
            log::error!(
                "{}: {} bytes could not be written before the end; their data were not reported done",
                self.settings.path.display(),
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
