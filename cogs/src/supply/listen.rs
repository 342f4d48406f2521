//! The `listen` supply: accepts many clients on a TCP or Unix stream
//! socket, or receives UDP datagrams, and emits one event per frame.

use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::net::UdpSocket;
use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, FdId, Finish, Fired, Interest, Next, Role, TimerId};

use crate::meter::{Figure, Meter, Metered, Probe};
use crate::net::server::{ClientCounters, Clients, Listener, ACCEPT_AGAIN, CLIENT, LISTEN, SWEEP};
use crate::net::{Address, BadFrame, Deframer, Framing};
use crate::{Counter, Error, LogThrottle, Verdict};

/// Settings of [`NetSupply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSupplySettings {
    /// Where to listen: `tcp:HOST:PORT` (or `HOST:PORT`), `unix:PATH` or
    /// `udp:HOST:PORT`. Required.
    pub listen: String,
    /// `"newline"` (default), `"length"` (4-byte big-endian prefix) or
    /// `"octet_counting"` (syslog over TCP, RFC 6587: `LEN SP MSG`; a bad
    /// length closes its client, counted and logged). For UDP, newline
    /// splits a datagram into lines and length takes each datagram whole
    /// (syslog over UDP, RFC 5426: one message per datagram);
    /// octet_counting is refused there.
    pub framing: Framing,
    /// Longest frame, in bytes. A longer one closes its client (logged;
    /// the others are unaffected); a longer datagram is dropped and
    /// counted. At least 1. Default 1048576 (1 MiB).
    pub max_frame_bytes: usize,
    /// Clients connected at once at most; more wait in the listen backlog
    /// until one leaves. At least 1. Default 1024.
    pub max_clients: usize,
    /// Milliseconds without data after which a client is closed; 0 never.
    /// Default 300000 (5 minutes).
    pub idle_timeout_ms: u64,
    /// Bytes read from one client before the others get their turn. At
    /// least 4096. Default 262144 (256 KiB).
    pub read_bytes_per_turn: usize,
    /// For `unix:`: the socket file's permissions, in octal. Default "660".
    pub unix_mode: String,
}

impl Default for NetSupplySettings {
    fn default() -> Self {
        NetSupplySettings {
            listen: String::new(),
            framing: Framing::Newline,
            max_frame_bytes: 1 << 20,
            max_clients: 1024,
            idle_timeout_ms: 300_000,
            read_bytes_per_turn: 256 * 1024,
            unix_mode: "660".into(),
        }
    }
}

/// What a [`NetSupply`] counted; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct NetSupplyStats {
    /// Clients accepted.
    pub accepted: Counter,
    /// Clients closed (by them, by idleness, by an oversized frame, at finish).
    pub closed: Counter,
    /// Frames emitted.
    pub frames: Counter,
    /// Clients closed for an oversized frame, and datagrams dropped for one.
    pub oversized: Counter,
    /// Length-prefixed frames cut short by a client leaving.
    pub truncated: Counter,
    /// Clients closed for an octet-counting length that is not one.
    pub bad_length: Counter,
    /// UDP datagrams dropped because the train was congested.
    pub dropped: Counter,
    /// Clients closed for idleness.
    pub idle_closed: Counter,
    /// Failed `accept` calls (out of descriptors or memory, mostly), each
    /// followed by a pause in accepting.
    pub accept_failed: Counter,
    /// Frames in and out, with their bytes: the supply's meter.
    pub meter: Meter,
}

impl Probe for NetSupplyStats {
    fn read(&self, out: &mut Vec<Figure>) {
        out.push(Figure::gauge(
            "listen_clients",
            "Clients connected to a listen supply now.",
            self.accepted.get().saturating_sub(self.closed.get()) as f64,
        ));
        out.push(Figure::counter(
            "listen_clients_accepted_total",
            "Clients a listen supply accepted.",
            self.accepted.get(),
        ));
        out.push(Figure::counter(
            "listen_refusals_total",
            "Accepts a listen supply could not make (out of descriptors or memory), each followed by a pause.",
            self.accept_failed.get(),
        ));
        out.push(Figure::counter(
            "listen_clients_cut_total",
            "Clients a listen supply closed for an oversized frame or a bad length.",
            self.oversized.get() + self.bad_length.get(),
        ));
    }
}

/// In and out: frames emitted, with their bytes; dropped: datagrams dropped
/// while the train was congested.
impl Metered for NetSupply {
    fn meter(&self) -> Meter {
        self.stats.meter.clone()
    }

    fn probe(&self) -> Option<Arc<dyn Probe>> {
        Some(Arc::new(self.stats.clone()))
    }
}

/// What the slab keeps of a client.
struct Client {
    deframer: Deframer,
    frames: u64,
}

/// Listens on a socket and emits each frame as an [`Event`] (`raw` = the
/// frame, `origin` = the peer, `line` = the frame's number on its
/// connection); see the [module docs](super).
pub struct NetSupply {
    settings: NetSupplySettings,
    addr: Address,
    unix_mode: u32,
    clients: Clients<Client>,
    /// The socket, for `udp:`.
    udp: Option<(UdpSocket, FdId)>,
    /// Reading stopped because the train is congested.
    paused: bool,
    sweep: Option<TimerId>,
    stats: NetSupplyStats,
    throttle: LogThrottle,
}

impl fmt::Debug for NetSupply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetSupply")
            .field("settings", &self.settings)
            .field("clients", &self.clients.live())
            .finish_non_exhaustive()
    }
}

impl NetSupply {
    /// A supply from its settings; errors name the key. Nothing is bound
    /// until the escapement starts it.
    pub fn new(settings: NetSupplySettings) -> Result<Self, Error> {
        if settings.listen.is_empty() {
            return Err(Error::setting(
                "listen",
                "required: where to listen (tcp:127.0.0.1:5140, unix:/run/x.sock, udp:...)",
            ));
        }
        let addr = Address::parse("listen", &settings.listen)?;
        if matches!(addr, Address::Udp(_)) && settings.framing == Framing::OctetCounting {
            return Err(Error::setting(
                "framing",
                "octet_counting is for streams; over UDP a datagram is one message: framing = \"length\" takes each whole",
            ));
        }
        for (key, v, min) in [
            ("max_frame_bytes", settings.max_frame_bytes, 1),
            ("max_clients", settings.max_clients, 1),
            ("read_bytes_per_turn", settings.read_bytes_per_turn, 4096),
        ] {
            if v < min {
                return Err(Error::setting(key, format!("must be at least {min}")));
            }
        }
        let unix_mode = u32::from_str_radix(&settings.unix_mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| Error::setting("unix_mode", format!("`{}` is not an octal mode", settings.unix_mode)))?;
        let stats = NetSupplyStats::default();
        let counters = ClientCounters {
            accepted: stats.accepted.clone(),
            closed: stats.closed.clone(),
            accept_failed: stats.accept_failed.clone(),
        };
        Ok(NetSupply {
            clients: Clients::new(addr.clone(), settings.max_clients, Interest::READABLE, true, counters),
            addr,
            unix_mode,
            udp: None,
            paused: false,
            sweep: None,
            stats,
            throttle: LogThrottle::new(Duration::from_secs(10)),
            settings,
        })
    }

    /// Its counters.
    pub fn stats(&self) -> NetSupplyStats {
        self.stats.clone()
    }

    fn accept<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let (framing, max) = (self.settings.framing, self.settings.max_frame_bytes);
        self.clients.accept(ctx, || Client {
            deframer: Deframer::new(framing, max),
            frames: 0,
        });
    }

    fn close<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let Some((peer, mut c)) = self.clients.close(idx, ctx) else {
            return;
        };
        match c.deframer.end() {
            Ok(Some(last)) => Self::emit(&self.stats, &peer, &mut c, last, ctx),
            Ok(None) => {}
            Err(n) => {
                self.stats.truncated.add(1);
                log::warn!(
                    "{}: client {peer} left in the middle of a frame ({n} bytes dropped)",
                    self.addr
                );
            }
        }
    }

    fn emit<N: Next<Event> + ?Sized>(
        stats: &NetSupplyStats,
        peer: &Arc<str>,
        c: &mut Client,
        frame: Vec<u8>,
        ctx: &mut Context<'_, Event, N>,
    ) {
        c.frames += 1;
        stats.frames.add(1);
        stats.meter.counted(1, 1, frame.len() as u64);
        let id = ctx.next_event_id();
        ctx.emit(Event::from_raw(id, frame, Some(Arc::clone(peer)), c.frames));
    }

    /// Reads one client until `WouldBlock`, its end, the per-turn budget or congestion.
    fn read_client<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let mut budget = self.settings.read_bytes_per_turn;
        let mut buf = self.clients.take_buf();
        let mut frames = Vec::new();
        let outcome = loop {
            if ctx.congested() {
                self.paused = true;
                break None;
            }
            let Some(c) = self.clients.get_mut(idx) else {
                break None;
            };
            if budget == 0 {
                let _ = ctx.enqueue(c.key(idx));
                break None;
            }
            let want = buf.len().min(budget);
            match c.stream.read(&mut buf[..want]) {
                Ok(0) => break Some(None),
                Ok(n) => {
                    budget -= n;
                    c.last_active = ctx.now();
                    let pushed = c.state.deframer.push(&buf[..n], |f| frames.push(f.to_vec()));
                    for f in frames.drain(..) {
                        Self::emit(&self.stats, &c.peer, &mut c.state, f, ctx);
                    }
                    if let Err(bad) = pushed {
                        break Some(Some(bad));
                    }
                    if n < want {
                        // A short read: the socket is drained (no need to see WouldBlock).
                        break None;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::info!("{}: client {}: {e}", self.addr, c.peer);
                    break Some(None);
                }
            }
        };
        self.clients.put_buf(buf);
        match outcome {
            Some(Some(bad)) => {
                if let Some(c) = self.clients.get_mut(idx) {
                    match &bad {
                        BadFrame::Oversized(_) => {
                            self.stats.oversized.add(1);
                            log::warn!(
                                "{}: client {} sent {bad}, over max_frame_bytes = {}; closing it",
                                self.addr,
                                c.peer,
                                self.settings.max_frame_bytes
                            );
                        }
                        BadFrame::Length(_) => {
                            self.stats.bad_length.add(1);
                            log::warn!(
                                "{}: client {} sent {bad} after its frame {}; closing it",
                                self.addr,
                                c.peer,
                                c.state.frames
                            );
                        }
                    }
                    // What it sent after the frame cannot be trusted either.
                    c.state.deframer = Deframer::new(self.settings.framing, self.settings.max_frame_bytes);
                }
                self.close(idx, ctx);
            }
            Some(None) => self.close(idx, ctx),
            None => {}
        }
    }

    fn read_udp<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let Some((sock, _)) = &self.udp else {
            return;
        };
        let mut budget = self.settings.read_bytes_per_turn;
        let mut buf = self.clients.take_buf();
        loop {
            if budget == 0 {
                let _ = ctx.enqueue(LISTEN);
                break;
            }
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    budget = budget.saturating_sub(n.max(1));
                    if ctx.congested() {
                        self.stats.dropped.add(1);
                        self.stats.meter.dropped();
                        if let Verdict::Log { held } = self.throttle.hit(ctx.now()) {
                            let before = held.map_or(0, |h| h.count);
                            log::warn!(
                                "{}: the train is congested: dropping datagrams ({} dropped so far)",
                                self.addr,
                                self.stats.dropped.get().max(before)
                            );
                        }
                        continue;
                    }
                    let peer: Arc<str> = Arc::from(format!("udp:{from}"));
                    let data = &buf[..n];
                    let mut frames: Vec<&[u8]> = Vec::new();
                    match self.settings.framing {
                        Framing::Length | Framing::OctetCounting => frames.push(data),
                        Framing::Newline => {
                            frames.extend(data.split(|&b| b == b'\n').map(crate::net::strip_cr));
                            if data.ends_with(b"\n") {
                                frames.pop();
                            }
                        }
                    }
                    for (i, f) in frames.into_iter().enumerate() {
                        if f.len() > self.settings.max_frame_bytes {
                            self.stats.oversized.add(1);
                            continue;
                        }
                        self.stats.frames.add(1);
                        self.stats.meter.counted(1, 1, f.len() as u64);
                        let id = ctx.next_event_id();
                        ctx.emit(Event::from_raw(id, f.to_vec(), Some(Arc::clone(&peer)), i as u64 + 1));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("{}: receive failed: {e}", self.addr);
                    break;
                }
            }
        }
        self.clients.put_buf(buf);
    }

    fn sweep<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let idle = Duration::from_millis(self.settings.idle_timeout_ms);
        let now = ctx.now();
        for idx in 0..self.clients.slots() {
            let Some(c) = self.clients.get(idx) else { continue };
            if now.duration_since(c.last_active) >= idle {
                log::info!("{}: client {} idle for {:?}; closing it", self.addr, c.peer, idle);
                self.stats.idle_closed.add(1);
                self.close(idx, ctx);
            }
        }
    }

    /// Binds and watches the socket; the error says which failed.
    fn bind<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Result<(), String> {
        if let Address::Udp(a) = &self.addr {
            let sock = UdpSocket::bind(*a).map_err(|e| format!("cannot listen: {e}"))?;
            let fd = ctx
                .register(&sock.as_raw_fd(), Interest::READABLE, LISTEN)
                .map_err(|e| format!("cannot watch the socket: {e}"))?;
            self.udp = Some((sock, fd));
            return Ok(());
        }
        let listener = Listener::bind(&self.addr, self.unix_mode).map_err(|e| format!("cannot listen: {e}"))?;
        self.clients
            .listen(listener, ctx)
            .map_err(|e| format!("cannot watch the socket: {e}"))
    }
}

impl Cog<Event> for NetSupply {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if let Err(e) = self.bind(ctx) {
            log::error!("{}: {e}; finishing", self.addr);
            ctx.fail(format_args!("{}: {e}", self.addr));
            return;
        }
        log::info!("{}: listening", self.addr);
        if self.settings.idle_timeout_ms > 0 && !matches!(self.addr, Address::Udp(_)) {
            let every = Duration::from_millis((self.settings.idle_timeout_ms / 4).max(10));
            self.sweep = ctx.every(every, SWEEP).ok();
        }
    }

    fn fire<N: Next<Event> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if key == SWEEP {
            return self.sweep(ctx);
        }
        if key == ACCEPT_AGAIN {
            self.clients.pause_expired();
            if !self.paused {
                self.accept(ctx);
            }
            return;
        }
        if self.paused {
            return; // resume reads everything
        }
        if key == LISTEN {
            if self.udp.is_some() {
                self.read_udp(ctx)
            } else {
                self.accept(ctx)
            }
        } else if key & CLIENT != 0 {
            if let Some(idx) = self.clients.find(key) {
                self.read_client(idx, ctx)
            }
        }
    }

    fn resume<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if !std::mem::take(&mut self.paused) {
            return;
        }
        // Edge-triggered: what arrived while paused raises no new edge.
        let _ = ctx.enqueue(LISTEN);
        for (idx, c) in self.clients.iter() {
            let _ = ctx.enqueue(c.key(idx));
        }
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, datum: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(datum)
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        // Stop accepting; what clients sent completely has gone down the
        // train; a last unterminated line goes now.
        if let Some((_, fd)) = self.udp.take() {
            ctx.unregister(fd);
        }
        self.clients.stop(ctx);
        if let Some(t) = self.sweep.take() {
            ctx.cancel(t);
        }
        for idx in 0..self.clients.slots() {
            self.close(idx, ctx);
        }
        Finish::Done
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "listen {} framing={} max_frame_bytes={} max_clients={} idle_timeout_ms={}",
            self.addr, s.framing, s.max_frame_bytes, s.max_clients, s.idle_timeout_ms
        )
    }
}
