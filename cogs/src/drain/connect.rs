//! The `connect` drain: writes frames to a TCP or Unix stream peer,
//! reconnecting with backoff, buffering up to a bound while disconnected.
//!
//! An event is reported done once all its bytes were written to the socket
//! (handed to the kernel). A peer that crashes after that may still lose
//! what sat in its receive buffer: TCP gives no application-level
//! acknowledgement. Bytes of an event cut off by a disconnection are sent
//! again, whole, after the reconnection (at least once).

use std::fmt;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UnixStream};
use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, EventId, FdId, Finish, Fired, Getter, Interest, Next, Role, TimerId};

use crate::drain::DrainGauges;
use crate::meter::{Meter, Metered, Probe};
use crate::net::{Address, Framing};
use crate::{Counter, Error};

/// What [`NetDrain`] does when its buffer is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Say it is congested, so supplies stop reading (nothing is lost). The default.
    #[default]
    Block,
    /// Drop the newest data (counted, reported done).
    DropNewest,
}

/// Settings of [`NetDrain`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetDrainSettings {
    /// The peer: `tcp:HOST:PORT` (or `HOST:PORT`) or `unix:PATH`. Required.
    pub connect: String,
    /// `"newline"` (default), `"length"` (4-byte big-endian prefix) or
    /// `"octet_counting"` (syslog's `LEN SP MSG`, RFC 6587).
    pub framing: Framing,
    /// Bytes held while the peer is slow or away. At least 1. Default 8388608 (8 MiB).
    pub buffer_bytes: usize,
    /// When the buffer is full: `"block"` (default) or `"drop_newest"`.
    pub when_full: WhenFull,
    /// First wait before reconnecting, in milliseconds; it doubles on each
    /// failure up to `reconnect_max_ms`. At least 1. Default 100.
    pub reconnect_min_ms: u64,
    /// Longest wait between reconnections. Default 30000.
    pub reconnect_max_ms: u64,
    /// Milliseconds a connection attempt may take. At least 1. Default 5000.
    pub connect_timeout_ms: u64,
}

impl Default for NetDrainSettings {
    fn default() -> Self {
        NetDrainSettings {
            connect: String::new(),
            framing: Framing::Newline,
            buffer_bytes: 8 << 20,
            when_full: WhenFull::Block,
            reconnect_min_ms: 100,
            reconnect_max_ms: 30_000,
            connect_timeout_ms: 5000,
        }
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn raw(&self) -> i32 {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        }
    }
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(b),
            Conn::Unix(s) => s.write(b),
        }
    }
    fn read_discard(&mut self) -> io::Result<usize> {
        use std::io::Read;
        let mut sink = [0u8; 4096];
        match self {
            Conn::Tcp(s) => s.read(&mut sink),
            Conn::Unix(s) => s.read(&mut sink),
        }
    }
    fn connected(&self) -> io::Result<bool> {
        match self {
            Conn::Tcp(s) => {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                match s.peer_addr() {
                    Ok(_) => Ok(true),
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Conn::Unix(s) => {
                if let Some(e) = s.take_error()? {
                    return Err(e);
                }
                Ok(true)
            }
        }
    }
}

const SOCKET: u64 = 0;
const TIMER: u64 = 1;
const FLUSH: u64 = 2;
/// Unwritten bytes that make a write happen at once rather than at the end of the burst.
const WRITE_AT: usize = 64 * 1024;
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Counts of a [`NetDrain`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct NetDrainStats {
    /// Connections made.
    pub connects: Counter,
    /// Connections lost or refused.
    pub failures: Counter,
    /// Data dropped with `when_full = "drop_newest"`.
    pub dropped: Counter,
    /// Bytes written.
    pub bytes: Counter,
    /// The most bytes held at once.
    pub peak_buffered: Counter,
}

/// Writes each datum's bytes, framed, to a peer; see the [module docs](super).
pub struct NetDrain<D = Event> {
    settings: NetDrainSettings,
    addr: Address,
    bytes: Getter<D, [u8]>,
    conn: Option<Conn>,
    fd: Option<FdId>,
    /// Connected (else connecting, or waiting to reconnect when `conn` is none).
    up: bool,
    /// Bytes framed and not yet reported done; `buf[0]` is at offset `base`.
    buf: Vec<u8>,
    base: u64,
    /// Absolute offset written up to, on the current connection.
    written: u64,
    /// End offsets of the events in `buf`, with their ids.
    pending: std::collections::VecDeque<(u64, Option<EventId>)>,
    timer: Option<TimerId>,
    backoff: Duration,
    connecting_since: Option<Instant>,
    congested: bool,
    finishing: bool,
    /// A write at the end of this burst of data is queued.
    flush_queued: bool,
    stats: NetDrainStats,
    meter: Meter,
    gauges: DrainGauges,
}

impl<D> fmt::Debug for NetDrain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetDrain")
            .field("settings", &self.settings)
            .field("up", &self.up)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl NetDrain<Event> {
    /// Writes the `raw` bytes of events.
    pub fn new(settings: NetDrainSettings) -> Result<Self, Error> {
        NetDrain::with_accessor(settings, Getter::<Event, [u8]>::raw())
    }
}

impl<D: 'static> NetDrain<D> {
    /// Writes the bytes `bytes` reads from each datum.
    pub fn with_accessor(settings: NetDrainSettings, bytes: Getter<D, [u8]>) -> Result<Self, Error> {
        if settings.connect.is_empty() {
            return Err(Error::setting(
                "connect",
                "required: the peer (tcp:HOST:PORT or unix:PATH)",
            ));
        }
        let addr = Address::parse("connect", &settings.connect)?;
        if matches!(addr, Address::Udp(_)) {
            return Err(Error::setting(
                "connect",
                "udp: is for listening; connect to tcp: or unix:",
            ));
        }
        for (key, v) in [
            ("buffer_bytes", settings.buffer_bytes as u64),
            ("reconnect_min_ms", settings.reconnect_min_ms),
            ("connect_timeout_ms", settings.connect_timeout_ms),
        ] {
            if v == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        if settings.reconnect_max_ms < settings.reconnect_min_ms {
            return Err(Error::setting("reconnect_max_ms", "must be at least reconnect_min_ms"));
        }
        Ok(NetDrain {
            backoff: Duration::from_millis(settings.reconnect_min_ms),
            settings,
            addr,
            bytes,
            conn: None,
            fd: None,
            up: false,
            buf: Vec::new(),
            base: 0,
            written: 0,
            pending: Default::default(),
            timer: None,
            connecting_since: None,
            congested: false,
            finishing: false,
            flush_queued: false,
            stats: NetDrainStats::default(),
            meter: Meter::default(),
            gauges: DrainGauges::default(),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> NetDrainStats {
        self.stats.clone()
    }

    fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    fn arm<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, after: Duration) {
        if let Some(t) = self.timer {
            let at = ctx.now() + after;
            ctx.reschedule(t, at);
        }
    }

    fn connect<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let attempt = match &self.addr {
            Address::Tcp(a) => TcpStream::connect(*a).map(Conn::Tcp),
            Address::Unix(p) => UnixStream::connect(p).map(Conn::Unix),
            Address::Udp(_) => unreachable!("refused in new"),
        };
        let conn = match attempt {
            Ok(c) => c,
            Err(e) => return self.failed(ctx, &e.to_string()),
        };
        match ctx.register(&conn.raw(), Interest::READABLE | Interest::WRITABLE, SOCKET) {
            Ok(fd) => {
                self.fd = Some(fd);
                self.conn = Some(conn);
                self.connecting_since = Some(ctx.now());
                self.arm(ctx, Duration::from_millis(self.settings.connect_timeout_ms));
            }
            Err(e) if self.finishing => {
                // No new bindings while finishing: flush with blocking writes.
                drop(e);
                self.conn = Some(conn);
                self.flush_blocking(ctx);
            }
            Err(e) => self.failed(ctx, &format!("cannot watch the socket: {e}")),
        }
    }

    fn failed<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, why: &str) {
        self.stats.failures.add(1);
        self.meter.error();
        self.gauges.write_errors.add(1);
        // Each failure schedules a reconnect that writes again.
        self.gauges.retries.add(1);
        if let Some(fd) = self.fd.take() {
            ctx.unregister(fd);
        }
        self.conn = None;
        let was_up = std::mem::take(&mut self.up);
        self.connecting_since = None;
        // Whatever was cut off goes again, whole.
        self.written = self.base;
        let wait = self.backoff;
        if was_up {
            log::warn!("{}: connection lost: {why}; reconnecting in {:?}", self.addr, wait);
        } else {
            log::warn!("{}: cannot connect: {why}; retrying in {:?}", self.addr, wait);
        }
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.settings.reconnect_max_ms));
        self.arm(ctx, wait);
    }

    /// Writes until `WouldBlock` or empty; reports finished events done.
    fn write<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if !self.up {
            return;
        }
        while self.written < self.end() {
            let from = (self.written - self.base) as usize;
            let Some(conn) = self.conn.as_mut() else { return };
            match conn.write(&self.buf[from..]) {
                Ok(0) => return self.failed(ctx, "the peer takes no more bytes"),
                Ok(n) => {
                    self.written += n as u64;
                    self.stats.bytes.add(n as u64);
                    self.acknowledge(ctx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.failed(ctx, &e.to_string()),
            }
        }
        self.after_write(ctx);
    }

    fn acknowledge<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let mut done_to = None;
        while let Some(&(end, id)) = self.pending.front() {
            if end > self.written {
                break;
            }
            self.pending.pop_front();
            self.meter.emitted();
            self.gauges.written.add(1);
            done_to = Some(end);
            if let Some(id) = id {
                ctx.event_done(id);
            }
        }
        if let Some(end) = done_to {
            let cut = (end - self.base) as usize;
            self.buf.drain(..cut);
            self.base = end;
            self.gauges.buffered.set(self.buf.len() as u64);
        }
    }

    fn after_write<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.congested && self.buf.len() <= self.settings.buffer_bytes / 2 {
            self.congested = false;
            ctx.resume_upstream();
        }
        if self.finishing && self.buf.is_empty() {
            ctx.finished();
        }
    }

    /// While finishing, disconnected and unable to bind: connect and write
    /// with blocking calls, bounded by the connect timeout.
    fn flush_blocking<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let timeout = Duration::from_millis(self.settings.connect_timeout_ms);
        let result = (|| -> io::Result<()> {
            let from = (self.written - self.base) as usize;
            match &self.addr {
                Address::Tcp(a) => {
                    let mut s = std::net::TcpStream::connect_timeout(a, timeout)?;
                    s.set_write_timeout(Some(timeout))?;
                    s.write_all(&self.buf[from..])
                }
                Address::Unix(p) => {
                    let mut s = std::os::unix::net::UnixStream::connect(p)?;
                    s.set_write_timeout(Some(timeout))?;
                    s.write_all(&self.buf[from..])
                }
                Address::Udp(_) => Ok(()),
            }
        })();
        self.conn = None;
        match result {
            Ok(()) => {
                self.stats.connects.add(1);
                self.stats.bytes.add(self.end() - self.written);
                self.written = self.end();
                self.acknowledge(ctx);
                self.after_write(ctx);
            }
            Err(e) => {
                self.written = self.base;
                self.failed(ctx, &e.to_string());
            }
        }
    }
}

/// In: data taken, with their bytes; out: data written and reported
/// done; dropped: `when_full = "drop_newest"`; errors: connections lost or
/// refused.
impl<D: 'static> Metered for NetDrain<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }

    fn probe(&self) -> Option<std::sync::Arc<dyn Probe>> {
        Some(std::sync::Arc::new(self.gauges.clone()))
    }
}

impl<D: 'static> Cog<D> for NetDrain<D> {
    fn role(&self) -> Role {
        Role::Drain
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        // One timer for the life of the cog (connect timeout, reconnect),
        // moved rather than re-bound: it must work while finishing too.
        // A periodic timer, so that it outlives each firing.
        match ctx.every(FAR, TIMER) {
            Ok(t) => self.timer = Some(t),
            Err(e) => log::error!("{}: cannot bind its timer ({e}); it will not reconnect", self.addr),
        }
        self.connect(ctx);
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.bytes.get(&datum).map_or(0, <[u8]>::len));
        if self.buf.len() >= self.settings.buffer_bytes && self.settings.when_full == WhenFull::DropNewest {
            self.stats.dropped.add(1);
            self.meter.discard(&datum, ctx);
            return;
        }
        // Framed straight into the buffer the socket writes from.
        let framing = self.settings.framing;
        framing.frame(self.bytes.get(&datum).unwrap_or_default(), &mut self.buf);
        let id = ctx.id_of(&datum);
        self.pending.push_back((self.end(), id));
        self.gauges.buffered.set(self.buf.len() as u64);
        if self.buf.len() as u64 > self.stats.peak_buffered.get() {
            self.stats.peak_buffered.set(self.buf.len() as u64);
        }
        if self.buf.len() >= self.settings.buffer_bytes && self.settings.when_full == WhenFull::Block {
            self.congested = true;
        }
        // One write per burst of data (or per 64 KiB), not one per datum.
        let unwritten = (self.end() - self.written) as usize;
        if unwritten >= WRITE_AT || self.finishing {
            self.write(ctx);
        } else if !self.flush_queued {
            self.flush_queued = ctx.enqueue(FLUSH).is_ok();
            if !self.flush_queued {
                self.write(ctx);
            }
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        match (key, fired) {
            (SOCKET, Fired::Ready(_, ready)) => {
                if !self.up {
                    let state = self.conn.as_ref().map(Conn::connected);
                    match state {
                        Some(Ok(true)) => {
                            self.up = true;
                            self.connecting_since = None;
                            self.stats.connects.add(1);
                            self.backoff = Duration::from_millis(self.settings.reconnect_min_ms);
                            self.arm(ctx, FAR);
                            log::info!("{}: connected", self.addr);
                        }
                        Some(Ok(false)) if !ready.error && !ready.write_closed => return,
                        Some(Err(e)) => return self.failed(ctx, &e.to_string()),
                        _ => return self.failed(ctx, "connection refused"),
                    }
                }
                if ready.readable || ready.read_closed {
                    // The peer says nothing we want; a read of 0 means it left.
                    loop {
                        let Some(c) = self.conn.as_mut() else { return };
                        match c.read_discard() {
                            Ok(0) => return self.failed(ctx, "closed by the peer"),
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return self.failed(ctx, &e.to_string()),
                        }
                    }
                }
                self.write(ctx);
            }
            (FLUSH, _) => {
                self.flush_queued = false;
                self.write(ctx);
            }
            (TIMER, _) => {
                if self.connecting_since.is_some() {
                    self.failed(ctx, "timed out");
                } else if self.conn.is_none() {
                    self.connect(ctx);
                } else {
                    self.arm(ctx, FAR);
                }
            }
            _ => {}
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        self.write(ctx);
        if self.buf.is_empty() {
            Finish::Done
        } else {
            log::info!("{}: finishing: {} bytes still to write", self.addr, self.buf.len());
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        if !self.buf.is_empty() {
            log::error!(
                "{}: {} bytes ({} data) could not be written before the end; they were not reported done",
                self.addr,
                self.buf.len(),
                self.pending.len()
            );
        }
        self.conn = None;
    }

    fn congested(&self) -> bool {
        self.congested
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "connect {} framing={} buffer_bytes={} when_full={:?} reconnect={}..{}ms",
            self.addr, s.framing, s.buffer_bytes, s.when_full, s.reconnect_min_ms, s.reconnect_max_ms
        )
    }
}
