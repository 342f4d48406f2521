//! The `listen` supply: accepts many clients on a TCP or Unix stream
//! socket, or receives UDP datagrams, and emits one event per frame.

use std::fmt;
use std::io::{self, Read};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, FdId, Finish, Fired, Interest, Next, Role, TimerId};

use crate::net::accept::AcceptPause;
use crate::net::{Address, Deframer, Framing};
use crate::{Counter, Error, LogThrottle, Verdict};

/// Settings of [`NetSupply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetSupplySettings {
    /// Where to listen: `tcp:HOST:PORT` (or `HOST:PORT`), `unix:PATH` or
    /// `udp:HOST:PORT`. Required.
    pub listen: String,
    /// `"newline"` (default) or `"length"` (4-byte big-endian prefix). For
    /// UDP, newline splits a datagram into lines and length takes each
    /// datagram whole.
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
    /// UDP datagrams dropped because the train was congested.
    pub dropped: Counter,
    /// Clients closed for idleness.
    pub idle_closed: Counter,
    /// Failed `accept` calls (out of descriptors or memory, mostly), each
    /// followed by a pause in accepting.
    pub accept_failed: Counter,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, std::path::PathBuf),
    Udp(UdpSocket),
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
    fn raw(&self) -> i32 {
        match self {
            Conn::Tcp(s) => s.as_raw_fd(),
            Conn::Unix(s) => s.as_raw_fd(),
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

struct Client {
    conn: Conn,
    fd: FdId,
    peer: Arc<str>,
    deframer: Deframer,
    frames: u64,
    last_active: Instant,
    gen: u32,
}

const LISTEN: u64 = 0;
const SWEEP: u64 = 1;
const ACCEPT_AGAIN: u64 = 2;
const CLIENT: u64 = 1 << 63;

/// Listens on a socket and emits each frame as an [`Event`] (`raw` = the
/// frame, `origin` = the peer, `line` = the frame's number on its
/// connection); see the [module docs](super).
pub struct NetSupply {
    settings: NetSupplySettings,
    addr: Address,
    unix_mode: u32,
    listener: Option<Listener>,
    listener_fd: Option<FdId>,
    clients: Vec<Option<Client>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    live: usize,
    buf: Vec<u8>,
    /// Reading stopped because the train is congested.
    paused: bool,
    /// Accepting stopped at `max_clients`.
    full: bool,
    /// Accepting paused after `accept` failed.
    accept_pause: AcceptPause,
    sweep: Option<TimerId>,
    stats: NetSupplyStats,
    throttle: LogThrottle,
}

impl fmt::Debug for NetSupply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetSupply")
            .field("settings", &self.settings)
            .field("clients", &self.live)
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
        Ok(NetSupply {
            addr,
            unix_mode,
            listener: None,
            listener_fd: None,
            clients: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            live: 0,
            buf: vec![0; 64 * 1024],
            paused: false,
            full: false,
            accept_pause: AcceptPause::new(),
            sweep: None,
            stats: NetSupplyStats::default(),
            throttle: LogThrottle::new(Duration::from_secs(10)),
            settings,
        })
    }

    /// Its counters.
    pub fn stats(&self) -> NetSupplyStats {
        self.stats.clone()
    }

    fn bind(&mut self) -> io::Result<Listener> {
        Ok(match &self.addr {
            Address::Tcp(a) => Listener::Tcp(TcpListener::bind(*a)?),
            Address::Udp(a) => Listener::Udp(UdpSocket::bind(*a)?),
            Address::Unix(p) => {
                // A socket file left by a process that is gone: nobody answers on it.
                if p.exists() && std::os::unix::net::UnixStream::connect(p).is_err() {
                    let _ = std::fs::remove_file(p);
                }
                let l = UnixListener::bind(p)?;
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(self.unix_mode))?;
                Listener::Unix(l, p.clone())
            }
        })
    }

    fn key(idx: usize, gen: u32) -> u64 {
        CLIENT | (u64::from(gen) << 32) | idx as u64
    }

    fn accept<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if self.accept_pause.paused() {
            return;
        }
        loop {
            if self.live >= self.settings.max_clients {
                if !self.full {
                    log::warn!(
                        "{}: {} clients connected, the most allowed; others wait",
                        self.addr,
                        self.live
                    );
                }
                self.full = true;
                return;
            }
            let accepted = match &self.listener {
                Some(Listener::Tcp(l)) => l.accept().map(|(s, a)| (Conn::Tcp(s), format!("tcp:{a}"))),
                Some(Listener::Unix(l, p)) => l
                    .accept()
                    .map(|(s, _)| (Conn::Unix(s), format!("unix:{}", p.display()))),
                _ => return,
            };
            match accepted {
                Ok((conn, peer)) => self.add_client(conn, peer, ctx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // That one client gave up before it was accepted.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    let stats = &self.stats.accept_failed;
                    return self
                        .accept_pause
                        .pause(&e, &self.addr, self.live, stats, ACCEPT_AGAIN, ctx);
                }
            }
        }
    }

    fn add_client<N: Next<Event> + ?Sized>(&mut self, conn: Conn, peer: String, ctx: &mut Context<'_, Event, N>) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.clients.push(None);
            self.gens.push(0);
            self.clients.len() - 1
        });
        let gen = self.gens[idx];
        let fd = match ctx.register(&conn.raw(), Interest::READABLE, Self::key(idx, gen)) {
            Ok(fd) => fd,
            Err(e) => {
                log::error!("{}: cannot watch client {peer}: {e}; closing it", self.addr);
                self.free.push(idx);
                return;
            }
        };
        self.stats.accepted.add(1);
        self.live += 1;
        self.clients[idx] = Some(Client {
            conn,
            fd,
            peer: Arc::from(peer),
            deframer: Deframer::new(self.settings.framing, self.settings.max_frame_bytes),
            frames: 0,
            last_active: ctx.now(),
            gen,
        });
        // Data may have arrived with the connection: read it.
        let _ = ctx.enqueue(Self::key(idx, gen));
    }

    fn close<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let Some(mut c) = self.clients[idx].take() else { return };
        ctx.unregister(c.fd);
        match c.deframer.end() {
            Ok(Some(last)) => self.emit(&mut c, last, ctx),
            Ok(None) => {}
            Err(n) => {
                self.stats.truncated.add(1);
                log::warn!(
                    "{}: client {} left in the middle of a frame ({n} bytes dropped)",
                    self.addr,
                    c.peer
                );
            }
        }
        c.conn.shutdown();
        self.stats.closed.add(1);
        self.gens[idx] = self.gens[idx].wrapping_add(1);
        self.free.push(idx);
        self.live -= 1;
        // A descriptor is free again: whoever waits in the backlog may come.
        let waiting = std::mem::take(&mut self.full) | self.accept_pause.end(ctx);
        if waiting {
            let _ = ctx.enqueue(LISTEN);
        }
    }

    fn emit<N: Next<Event> + ?Sized>(&self, c: &mut Client, frame: Vec<u8>, ctx: &mut Context<'_, Event, N>) {
        c.frames += 1;
        self.stats.frames.add(1);
        let id = ctx.next_event_id();
        ctx.emit(Event::from_raw(id, frame, Some(Arc::clone(&c.peer)), c.frames));
    }

    /// Reads one client until `WouldBlock`, its end, the per-turn budget or congestion.
    fn read_client<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let mut budget = self.settings.read_bytes_per_turn;
        let mut buf = std::mem::take(&mut self.buf);
        let mut frames = Vec::new();
        let outcome = loop {
            if ctx.congested() {
                self.paused = true;
                break None;
            }
            let Some(c) = self.clients[idx].as_mut() else {
                break None;
            };
            if budget == 0 {
                let _ = ctx.enqueue(Self::key(idx, c.gen));
                break None;
            }
            let want = buf.len().min(budget);
            match c.conn.read(&mut buf[..want]) {
                Ok(0) => break Some(None),
                Ok(n) => {
                    budget -= n;
                    c.last_active = ctx.now();
                    let pushed = c.deframer.push(&buf[..n], |f| frames.push(f.to_vec()));
                    let mut c = self.clients[idx].take().expect("present");
                    for f in frames.drain(..) {
                        self.emit(&mut c, f, ctx);
                    }
                    self.clients[idx] = Some(c);
                    if let Err(big) = pushed {
                        break Some(Some(big.0));
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
        self.buf = buf;
        match outcome {
            Some(Some(size)) => {
                self.stats.oversized.add(1);
                if let Some(c) = &self.clients[idx] {
                    log::warn!(
                        "{}: client {} sent a frame of {size} bytes or more, over max_frame_bytes = {}; closing it",
                        self.addr,
                        c.peer,
                        self.settings.max_frame_bytes
                    );
                }
                // What it sent after the frame cannot be trusted either.
                if let Some(c) = self.clients[idx].as_mut() {
                    c.deframer = Deframer::new(self.settings.framing, self.settings.max_frame_bytes);
                }
                self.close(idx, ctx);
            }
            Some(None) => self.close(idx, ctx),
            None => {}
        }
    }

    fn read_udp<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let Some(Listener::Udp(sock)) = &self.listener else {
            return;
        };
        let mut budget = self.settings.read_bytes_per_turn;
        let mut buf = std::mem::take(&mut self.buf);
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
                        Framing::Length => frames.push(data),
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
        self.buf = buf;
    }

    fn sweep<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let idle = Duration::from_millis(self.settings.idle_timeout_ms);
        let now = ctx.now();
        for idx in 0..self.clients.len() {
            let stale = self.clients[idx]
                .as_ref()
                .is_some_and(|c| now.duration_since(c.last_active) >= idle);
            if stale {
                if let Some(c) = &self.clients[idx] {
                    log::info!("{}: client {} idle for {:?}; closing it", self.addr, c.peer, idle);
                }
                self.stats.idle_closed.add(1);
                self.close(idx, ctx);
            }
        }
    }
}

impl Cog<Event> for NetSupply {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let listener = match self.bind() {
            Ok(l) => l,
            Err(e) => {
                log::error!("{}: cannot listen: {e}; finishing", self.addr);
                ctx.finish_all();
                return;
            }
        };
        let raw = match &listener {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
            Listener::Udp(s) => s.as_raw_fd(),
        };
        match ctx.register(&raw, Interest::READABLE, LISTEN) {
            Ok(id) => self.listener_fd = Some(id),
            Err(e) => {
                log::error!("{}: cannot watch the socket: {e}; finishing", self.addr);
                ctx.finish_all();
                return;
            }
        }
        log::info!("{}: listening", self.addr);
        self.listener = Some(listener);
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
            self.accept_pause.expired();
            if !self.paused {
                self.accept(ctx);
            }
            return;
        }
        if self.paused {
            return; // resume reads everything
        }
        if key == LISTEN {
            if matches!(self.listener, Some(Listener::Udp(_))) {
                self.read_udp(ctx)
            } else {
                self.accept(ctx)
            }
        } else if key & CLIENT != 0 {
            let idx = (key & 0xffff_ffff) as usize;
            let gen = ((key & !CLIENT) >> 32) as u32;
            if self
                .clients
                .get(idx)
                .and_then(Option::as_ref)
                .is_some_and(|c| c.gen == gen)
            {
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
        for (idx, c) in self.clients.iter().enumerate() {
            if let Some(c) = c {
                let _ = ctx.enqueue(Self::key(idx, c.gen));
            }
        }
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, datum: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(datum)
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        // Stop accepting; what clients sent completely has gone down the
        // train; a last unterminated line goes now.
        if let Some(id) = self.listener_fd.take() {
            ctx.unregister(id);
        }
        if let Some(Listener::Unix(_, p)) = self.listener.take() {
            let _ = std::fs::remove_file(p);
        }
        if let Some(t) = self.sweep.take() {
            ctx.cancel(t);
        }
        self.accept_pause.end(ctx);
        for idx in 0..self.clients.len() {
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
