//! The `stdin` supply: reads standard input as lines until end of input,
//! then says it is exhausted (so the escapement finishes when it is the last
//! supply).
//!
//! A pipe or terminal is read when the loop reports it readable (non-blocking,
//! until `WouldBlock`); a regular file or `/dev/null`, which epoll cannot
//! watch, is read a bounded amount per loop turn. Lines go out as [`Event`]s
//! with `raw` set, `origin = "-"` and the line number.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, Finish, Fired, Interest, Next, Role};

use crate::meter::{Meter, Metered};
use crate::splitter::{CutLog, LineFlags, LineSplitter, LinesSettings, Utf8};
use crate::Error;

/// Settings of [`StdinSupply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StdinSettings {
    /// Longest line kept whole, in bytes; longer ones are cut and counted.
    /// At least 1. Default 1048576 (1 MiB).
    pub max_line_bytes: usize,
    /// Treat `\r\n` as a line ending too. Default true.
    pub strip_cr: bool,
    /// Invalid UTF-8: `"keep"` the bytes (default) or `"replace"` them.
    pub utf8: Utf8,
    /// Bytes read per loop turn at most, for fairness. At least 4096. Default 262144.
    pub read_bytes: usize,
}

impl Default for StdinSettings {
    fn default() -> Self {
        let lines = LinesSettings::default();
        StdinSettings {
            max_line_bytes: lines.max_line_bytes,
            strip_cr: lines.strip_cr,
            utf8: lines.utf8,
            read_bytes: 256 * 1024,
        }
    }
}

impl StdinSettings {
    /// The line-splitting part.
    pub fn lines(&self) -> LinesSettings {
        LinesSettings {
            max_line_bytes: self.max_line_bytes,
            strip_cr: self.strip_cr,
            utf8: self.utf8,
        }
    }
}

/// Reads lines from standard input; see the [module docs](self).
pub struct StdinSupply {
    settings: StdinSettings,
    fd: RawFd,
    splitter: LineSplitter,
    cuts: CutLog,
    buf: Vec<u8>,
    origin: Arc<str>,
    line: u64,
    /// Watched by the loop (else read on immediate turns).
    polled: bool,
    eof: bool,
    waiting: bool,
    meter: Meter,
}

impl fmt::Debug for StdinSupply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdinSupply")
            .field("settings", &self.settings)
            .field("line", &self.line)
            .finish_non_exhaustive()
    }
}

const READ: u64 = 0;

impl StdinSupply {
    /// A supply over file descriptor 0.
    pub fn new(settings: StdinSettings) -> Result<Self, Error> {
        Self::from_fd(settings, 0)
    }

    /// A supply over any readable fd (a pipe end in tests); it is not closed.
    pub fn from_fd(settings: StdinSettings, fd: RawFd) -> Result<Self, Error> {
        if settings.read_bytes < 4096 {
            return Err(Error::setting("read_bytes", "must be at least 4096"));
        }
        let splitter = LineSplitter::new(&settings.lines())?;
        Ok(StdinSupply {
            cuts: CutLog::new(std::time::Duration::from_secs(10), settings.max_line_bytes),
            buf: vec![0; settings.read_bytes.min(64 * 1024)],
            settings,
            fd,
            splitter,
            origin: Arc::from("-"),
            line: 0,
            polled: false,
            eof: false,
            waiting: false,
            meter: Meter::default(),
        })
    }

    fn emit_line<N: Next<Event> + ?Sized>(&mut self, bytes: &[u8], flags: LineFlags, ctx: &mut Context<'_, Event, N>) {
        self.line += 1;
        if flags.truncated {
            let place = format_args!("{}:{}", self.origin, self.line);
            self.cuts.note(place, bytes.len(), flags, ctx.now());
        }
        let id = ctx.next_event_id();
        self.meter.took(bytes.len());
        self.meter.emitted();
        ctx.emit(Event::from_raw(
            id,
            bytes.to_vec(),
            Some(Arc::clone(&self.origin)),
            self.line,
        ));
    }

    /// Reads until `WouldBlock`, end of input, the per-turn budget, or congestion.
    fn read<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let mut budget = self.settings.read_bytes;
        while budget > 0 && !self.eof {
            if ctx.congested() {
                self.waiting = true;
                return;
            }
            let want = self.buf.len().min(budget);
            match read_fd(self.fd, &mut self.buf[..want]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    budget -= n;
                    let chunk = std::mem::take(&mut self.buf);
                    let mut lines = Vec::new();
                    self.splitter
                        .push(&chunk[..n], |l, flags| lines.push((l.to_vec(), flags)));
                    self.buf = chunk;
                    for (l, flags) in lines {
                        self.emit_line(&l, flags, ctx);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("stdin: read failed, treating it as the end of input: {e}");
                    self.eof = true;
                }
            }
        }
        if self.eof {
            self.end(ctx);
        } else if !self.polled || budget == 0 {
            // Budget spent (or not pollable): come back next turn.
            let _ = ctx.enqueue(READ);
        }
    }

    fn emit_partial<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let mut last = None;
        self.splitter.take_partial(|l, flags| last = Some((l.to_vec(), flags)));
        if let Some((l, flags)) = last {
            self.emit_line(&l, flags, ctx);
        }
        self.cuts.flush(ctx.now());
    }

    fn end<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.emit_partial(ctx);
        ctx.exhausted();
    }
}

fn read_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reads into a buffer we own, from an fd that stays open for the
    // life of the process (stdin) or of the test that lent it.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we were given.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// In and out: lines read and emitted, with their bytes.
impl Metered for StdinSupply {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl Cog<Event> for StdinSupply {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.polled = set_nonblocking(self.fd).is_ok() && ctx.register(&self.fd, Interest::READABLE, READ).is_ok();
        let _ = ctx.enqueue(READ);
    }

    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if !self.eof && !self.waiting {
            self.read(ctx)
        }
    }

    fn resume<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if std::mem::take(&mut self.waiting) {
            self.read(ctx)
        }
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, datum: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(datum)
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        // A graceful stop: what was read is flushed; unread input stays unread.
        self.emit_partial(ctx);
        Finish::Done
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stdin ({})", self.settings.lines())
    }
}
