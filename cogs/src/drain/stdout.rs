//! [`StdoutDrain`]: writes each datum's bytes, plus a newline, to standard
//! output (or standard error, or any writer).
//!
//! Buffered like the [file drain](crate::drain::file): written when the buffer is
//! full and at the end of every burst, taking the stream's lock once per
//! write rather than per datum; a datum is reported `event_done` once its
//! bytes are written. A broken pipe (the reader went away: `| head`) is
//! logged once and finishes the escapement; what could not be written is
//! not reported done. Other errors are logged and retried on a timer.

use std::fmt;
use std::io::{self, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tourbillon::accessor::{Getter, Recycler};
use tourbillon::{Cog, Context, Event, Finish, Fired, Next, Role};

use crate::drain::batch::{Batch, Driver, FLUSH, RETRY};
use crate::Error;

/// Which standard stream [`StdoutDrain`] writes to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (the default).
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// Settings of [`StdoutDrain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdoutSettings {
    /// `"stdout"` (default) or `"stderr"`.
    pub stream: Stream,
    /// Bytes buffered before they are written; they are also written at the
    /// end of every burst of data. At least 1, at most 1 GiB. Default 65536
    /// (64 KiB).
    pub buffer_bytes: usize,
    /// Milliseconds between attempts after a failed write (other than a
    /// broken pipe). At least 1. Default 1000.
    pub retry_interval_ms: u64,
}

impl Default for StdoutSettings {
    fn default() -> Self {
        StdoutSettings {
            stream: Stream::Stdout,
            buffer_bytes: 64 * 1024,
            retry_interval_ms: 1000,
        }
    }
}

impl StdoutSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        crate::setting::buffer_bytes(self.buffer_bytes)?;
        if self.retry_interval_ms == 0 {
            return Err(Error::setting("retry_interval_ms", "must be at least 1"));
        }
        Ok(())
    }
}

enum Output {
    Stream(Stream),
    Writer(Box<dyn Write>),
}

/// Writes each datum's bytes and a newline to standard output; see the [module docs](self).
pub struct StdoutDrain<D = Event> {
    settings: StdoutSettings,
    bytes: Getter<D, [u8]>,
    /// Gives the buffer of a datum written back for reuse, if set.
    recycler: Option<Recycler<D>>,
    output: Output,
    driver: Driver,
    /// The reader went away: nothing more is written.
    broken: bool,
    finishing: bool,
}

impl<D: 'static> fmt::Debug for StdoutDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdoutDrain")
            .field("stream", &self.name())
            .field("settings", &self.settings)
            .field("buffered", &self.driver.batch.len())
            .finish_non_exhaustive()
    }
}

impl StdoutDrain<Event> {
    /// Writes the `raw` bytes of events.
    pub fn new(settings: StdoutSettings) -> Result<Self, Error> {
        StdoutDrain::with_accessor(settings, Getter::<Event, [u8]>::raw()).map(|d| d.recycling(Recycler::raw()))
    }
}

impl<D: 'static> StdoutDrain<D> {
    /// Writes the bytes `bytes` reads (a datum without any is an empty line).
    pub fn with_accessor(settings: StdoutSettings, bytes: Getter<D, [u8]>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(StdoutDrain {
            output: Output::Stream(settings.stream),
            driver: Driver::new(settings.buffer_bytes, Duration::from_millis(settings.retry_interval_ms)),
            settings,
            bytes,
            recycler: None,
            broken: false,
            finishing: false,
        })
    }

    /// Gives each datum's byte buffer back for reuse once its bytes are
    /// copied for writing ([`Context::recycle`](tourbillon::Context::recycle)),
    /// through `recycler`; `new` does it for the `raw` bytes of events.
    pub fn recycling(mut self, recycler: Recycler<D>) -> Self {
        self.recycler = Some(recycler);
        self
    }

    /// Writes to `writer` instead of the standard stream (a pipe, a socket,
    /// a test's buffer); it is flushed after every write.
    pub fn writer(mut self, writer: impl Write + 'static) -> Self {
        self.output = Output::Writer(Box::new(writer));
        self
    }

    fn name(&self) -> &'static str {
        match self.output {
            Output::Stream(Stream::Stderr) => "stderr",
            Output::Stream(Stream::Stdout) => "stdout",
            Output::Writer(_) => "writer",
        }
    }

    fn write(&mut self) -> io::Result<()> {
        fn all(batch: &mut Batch, mut out: impl Write) -> io::Result<()> {
            batch.write_to(&mut out)?;
            out.flush()
        }
        match &mut self.output {
            Output::Stream(Stream::Stdout) => all(&mut self.driver.batch, io::stdout().lock()),
            Output::Stream(Stream::Stderr) => all(&mut self.driver.batch, io::stderr().lock()),
            Output::Writer(w) => all(&mut self.driver.batch, w),
        }
    }

    /// Writes what is buffered and reports it done; true if all of it is
    /// (or nothing will ever be: the pipe is broken).
    fn flush<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.broken {
            return true;
        }
        if self.driver.batch.is_empty() {
            return true;
        }
        match self.write() {
            Ok(()) => {
                if let Some(since) = self.driver.written(ctx) {
                    log::info!(
                        "{}: writing again, after failing for {:.1}s",
                        self.name(),
                        since.elapsed().as_secs_f64()
                    );
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                log::warn!(
                    "{} is closed (broken pipe): finishing; {} buffered bytes not written, their data not reported done",
                    self.name(),
                    self.driver.batch.len()
                );
                self.broken = true;
                self.driver.batch.clear();
                ctx.finish_all();
                true
            }
            Err(e) => {
                if self.driver.failed(ctx.now()) {
                    log::error!(
                        "{}: cannot write: {e}; holding {} bytes, retrying every {:?}",
                        self.name(),
                        self.driver.batch.len(),
                        self.driver.schedule.interval()
                    );
                } else {
                    log::debug!("{}: cannot write: {e}; retrying", self.name());
                }
                self.driver.schedule.retry_soon(ctx);
                false
            }
        }
    }
}

/// In: data taken, with their bytes; out: lines written and reported
/// done; errors: failed writes.
impl<D: 'static> crate::meter::Metered for StdoutDrain<D> {
    fn meter(&self) -> crate::meter::Meter {
        self.driver.meter.clone()
    }

    fn probe(&self) -> Option<std::sync::Arc<dyn crate::meter::Probe>> {
        Some(std::sync::Arc::new(self.driver.gauges.clone()))
    }
}

impl<D: 'static> Cog<D> for StdoutDrain<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let name = self.name();
        self.driver.schedule.start(ctx, name);
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        if self.broken {
            // Nowhere to write: not done, and not kept either.
            return;
        }
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
                if flushed && self.finishing {
                    ctx.finished();
                }
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

    fn congested(&self) -> bool {
        self.driver.congested()
    }

    fn role(&self) -> Role {
        Role::Drain
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "stdout stream={} source={} buffer_bytes={} retry_interval_ms={}",
            self.name(),
            self.bytes,
            self.settings.buffer_bytes,
            self.settings.retry_interval_ms
        )
    }
}
