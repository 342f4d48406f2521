//! A listening stream socket and its clients, shared by the
//! [`listen`](crate::supply::listen) supply and the
//! [program server](crate::program::ProgramServer): binding TCP or a Unix
//! socket (a stale socket file replaced, its mode set), accepting up to
//! `max_clients` under the [`AcceptPause`] (at `ulimit -n`, the waiting
//! clients stay in the backlog), and the slab of clients, each registered
//! with the loop under a key that carries its slot and generation, so a
//! late event of a closed client never reaches the one that took its slot.
//!
//! What a client carries besides its socket (a deframer, request queues)
//! is the cog's: the slab holds it as `C`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tourbillon::{Context, FdId, Interest, Next};

use super::accept::AcceptPause;
use super::Address;
use crate::Counter;

/// The key of the listening socket.
pub(crate) const LISTEN: u64 = 0;
/// The key of the idle sweep's timer.
pub(crate) const SWEEP: u64 = 1;
/// The key of the timer that ends a pause in accepting.
pub(crate) const ACCEPT_AGAIN: u64 = 2;
/// The bit set in the keys of clients (slot in the low 32 bits, generation above).
pub(crate) const CLIENT: u64 = 1 << 61;

/// A listening stream socket.
pub(crate) enum Listener {
    Tcp(TcpListener),
    /// With the socket file, removed at finish.
    Unix(UnixListener, PathBuf),
}

impl Listener {
    /// Binds a TCP address or a Unix socket path (a UDP address is bound
    /// as TCP: the caller refuses it first). A socket file nobody answers
    /// on (left by a process that is gone) is replaced; the new one gets
    /// `unix_mode`.
    pub(crate) fn bind(addr: &Address, unix_mode: u32) -> io::Result<Listener> {
        Ok(match addr {
            Address::Unix(p) => {
                if p.exists() && std::os::unix::net::UnixStream::connect(p).is_err() {
                    let _ = std::fs::remove_file(p);
                }
                let l = UnixListener::bind(p)?;
                std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(unix_mode))?;
                Listener::Unix(l, p.clone())
            }
            Address::Tcp(a) | Address::Udp(a) => Listener::Tcp(TcpListener::bind(*a)?),
        })
    }

    pub(crate) fn raw(&self) -> i32 {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l, _) => l.as_raw_fd(),
        }
    }

    fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), format!("tcp:{a}"))),
            Listener::Unix(l, p) => l
                .accept()
                .map(|(s, _)| (Stream::Unix(s), format!("unix:{}", p.display()))),
        }
    }
}

/// A client's connection.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }

    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn raw(&self) -> i32 {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

/// One connected client.
pub(crate) struct Client<C> {
    pub(crate) stream: Stream,
    fd: FdId,
    /// `tcp:ADDR` or `unix:PATH`, for messages and events' `origin`.
    pub(crate) peer: Arc<str>,
    pub(crate) last_active: Instant,
    gen: u32,
    /// What the cog keeps of it.
    pub(crate) state: C,
}

impl<C> Client<C> {
    /// Its key in the loop.
    pub(crate) fn key(&self, idx: usize) -> u64 {
        key(idx, self.gen)
    }
}

fn key(idx: usize, gen: u32) -> u64 {
    CLIENT | (u64::from(gen) << 32) | idx as u64
}

/// The counters the slab keeps; clones of the cog's own.
pub(crate) struct ClientCounters {
    pub(crate) accepted: Counter,
    pub(crate) closed: Counter,
    pub(crate) accept_failed: Counter,
}

/// The listener and its clients.
pub(crate) struct Clients<C> {
    addr: Address,
    listener: Option<Listener>,
    listener_fd: Option<FdId>,
    slots: Vec<Option<Client<C>>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    live: usize,
    max: usize,
    /// What clients are registered for.
    interest: Interest,
    /// Say so in the log when `max` clients are connected.
    log_full: bool,
    /// Accepting stopped at `max`.
    full: bool,
    /// Accepting paused after `accept` failed.
    accept_pause: AcceptPause,
    counters: ClientCounters,
    /// The read buffer all clients share (one reads at a time).
    buf: Vec<u8>,
}

impl<C> fmt::Debug for Clients<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Clients")
            .field("addr", &self.addr)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl<C> Clients<C> {
    /// No listener yet; at most `max` clients, registered for `interest`.
    pub(crate) fn new(addr: Address, max: usize, interest: Interest, log_full: bool, counters: ClientCounters) -> Self {
        Clients {
            addr,
            listener: None,
            listener_fd: None,
            slots: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            live: 0,
            max,
            interest,
            log_full,
            full: false,
            accept_pause: AcceptPause::new(),
            counters,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Clients connected.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Slots, some empty: indices for [`get`](Clients::get) run below this.
    pub(crate) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Watches `listener` (key [`LISTEN`]) and keeps it.
    pub(crate) fn listen<D, N: Next<D> + ?Sized>(
        &mut self,
        listener: Listener,
        ctx: &mut Context<'_, D, N>,
    ) -> Result<(), tourbillon::Error> {
        self.listener_fd = Some(ctx.register(&listener.raw(), Interest::READABLE, LISTEN)?);
        self.listener = Some(listener);
        Ok(())
    }

    /// Stops listening (a Unix socket's file is removed) and ends a pause
    /// in accepting; the clients stay.
    pub(crate) fn stop<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(id) = self.listener_fd.take() {
            ctx.unregister(id);
        }
        if let Some(Listener::Unix(_, p)) = self.listener.take() {
            let _ = std::fs::remove_file(p);
        }
        self.accept_pause.end(ctx);
    }

    /// The accept pause's timer ([`ACCEPT_AGAIN`]) fired.
    pub(crate) fn pause_expired(&mut self) {
        self.accept_pause.expired();
    }

    /// Accepts clients until `WouldBlock`, `max` or an error (which pauses
    /// accepting); each gets the state `state` makes and is enqueued, so
    /// data that came with the connection are read.
    pub(crate) fn accept<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, mut state: impl FnMut() -> C) {
        if self.accept_pause.paused() {
            return;
        }
        loop {
            if self.live >= self.max {
                if self.log_full && !self.full {
                    log::warn!(
                        "{}: {} clients connected, the most allowed; others wait",
                        self.addr,
                        self.live
                    );
                }
                self.full = true;
                return;
            }
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, peer)) => self.add(stream, peer, state(), ctx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // That one client gave up before it was accepted.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    let failed = &self.counters.accept_failed;
                    return self
                        .accept_pause
                        .pause(&e, &self.addr, self.live, failed, ACCEPT_AGAIN, ctx);
                }
            }
        }
    }

    fn add<D, N: Next<D> + ?Sized>(&mut self, stream: Stream, peer: String, state: C, ctx: &mut Context<'_, D, N>) {
        let idx = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.gens.push(0);
            self.slots.len() - 1
        });
        let gen = self.gens[idx];
        let fd = match ctx.register(&stream.raw(), self.interest, key(idx, gen)) {
            Ok(fd) => fd,
            Err(e) => {
                log::error!("{}: cannot watch client {peer}: {e}; closing it", self.addr);
                self.free.push(idx);
                return;
            }
        };
        self.counters.accepted.add(1);
        self.live += 1;
        self.slots[idx] = Some(Client {
            stream,
            fd,
            peer: Arc::from(peer),
            last_active: ctx.now(),
            gen,
            state,
        });
        let _ = ctx.enqueue(key(idx, gen));
    }

    /// The slot of the client a key with [`CLIENT`] set names, if it is
    /// still connected.
    pub(crate) fn find(&self, key: u64) -> Option<usize> {
        let idx = (key & 0xffff_ffff) as usize;
        let gen = ((key & !CLIENT) >> 32) as u32;
        self.get(idx).filter(|c| c.gen == gen).map(|_| idx)
    }

    /// The key a client in slot `idx` has, or will have.
    pub(crate) fn key(&self, idx: usize) -> u64 {
        key(idx, self.gens[idx])
    }

    pub(crate) fn get(&self, idx: usize) -> Option<&Client<C>> {
        self.slots.get(idx).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, idx: usize) -> Option<&mut Client<C>> {
        self.slots.get_mut(idx).and_then(Option::as_mut)
    }

    /// The connected clients, with their slots.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &Client<C>)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((i, c.as_ref()?)))
    }

    /// Takes the shared read buffer (give it back with [`put_buf`](Clients::put_buf)).
    pub(crate) fn take_buf(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    pub(crate) fn put_buf(&mut self, buf: Vec<u8>) {
        self.buf = buf;
    }

    /// Closes the client in slot `idx`, if any: unwatched, shut down,
    /// counted; its state goes back to the cog (with its peer). Whoever
    /// waits in the backlog may come now.
    pub(crate) fn close<D, N: Next<D> + ?Sized>(
        &mut self,
        idx: usize,
        ctx: &mut Context<'_, D, N>,
    ) -> Option<(Arc<str>, C)> {
        let c = self.slots.get_mut(idx)?.take()?;
        ctx.unregister(c.fd);
        c.stream.shutdown();
        self.counters.closed.add(1);
        self.gens[idx] = self.gens[idx].wrapping_add(1);
        self.free.push(idx);
        self.live -= 1;
        // A descriptor is free again.
        let waiting = std::mem::take(&mut self.full) | self.accept_pause.end(ctx);
        if waiting {
            let _ = ctx.enqueue(LISTEN);
        }
        Some((c.peer, c.state))
    }
}
