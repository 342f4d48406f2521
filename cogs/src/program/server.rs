//! The `program_server` supply: newline-delimited JSON requests over TCP or
//! a Unix socket, each answered on its own connection when its run ends.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Finish, Fired, Interest, Next, Role, TimerId};

use super::cog::engine;
use super::engine::{Answer, Engine, ProgramStats, ENGINE_KEYS};
use super::function::Functions;
use super::wire::{rejection, write_response, Request};
use crate::net::server::{ClientCounters, Clients, Listener, ACCEPT_AGAIN, LISTEN, SWEEP};
use crate::net::Address;
use crate::{Counter, Error};

/// Settings of [`ProgramServer`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramServerSettings {
    /// Where to listen: `tcp:HOST:PORT` (or `HOST:PORT`) or `unix:PATH`. Required.
    pub listen: String,
    /// The spec file: TOML, or JSON if its name ends in `.json`. Required.
    #[serde(deserialize_with = "crate::setting::path")]
    pub spec: PathBuf,
    /// Directory of the run journal; see [`ProgramSettings`](super::ProgramSettings).
    /// Default: none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub state_dir: Option<PathBuf>,
    /// Journal without fsync. Default false.
    pub no_fsync: bool,
    /// Longest request line, in bytes: a longer one is answered `rejected`
    /// (and skipped up to its newline); the connection stays. Default
    /// 1048576 (1 MiB).
    pub max_request_bytes: usize,
    /// Clients connected at once at most; more wait in the listen backlog.
    /// Default 1024.
    pub max_clients: usize,
    /// Milliseconds a client with nothing in flight may stay silent before
    /// it is closed; 0 never. Default 300000 (5 minutes).
    pub idle_timeout_ms: u64,
    /// Requests of one client in flight at once at most: beyond, its
    /// connection is not read until answers go out (the kernel's buffers
    /// then slow the client down). Default 1024.
    pub max_in_flight_per_client: usize,
    /// For `unix:`: the socket file's permissions, in octal. Default "660".
    pub unix_mode: String,
}

impl Default for ProgramServerSettings {
    fn default() -> Self {
        ProgramServerSettings {
            listen: String::new(),
            spec: PathBuf::new(),
            state_dir: None,
            no_fsync: false,
            max_request_bytes: 1 << 20,
            max_clients: 1024,
            idle_timeout_ms: 300_000,
            max_in_flight_per_client: 1024,
            unix_mode: "660".into(),
        }
    }
}

/// What a [`ProgramServer`] counted about connections; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    /// Clients accepted.
    pub accepted: Counter,
    /// Failed `accept` calls (out of descriptors or memory, mostly), each
    /// followed by a pause in accepting.
    pub accept_failed: Counter,
    /// Clients closed.
    pub closed: Counter,
    /// Clients closed for idleness.
    pub idle_closed: Counter,
    /// Requests over `max_request_bytes`.
    pub oversized: Counter,
    /// Responses whose client had gone.
    pub orphaned: Counter,
    /// The most requests one client had in flight at once.
    pub peak_in_flight: Counter,
}

/// What the slab keeps of a client.
#[derive(Default)]
struct State {
    /// The request line read so far.
    line: Vec<u8>,
    /// Skipping the rest of an oversized request.
    skipping: bool,
    out: Vec<u8>,
    /// Requests of this client whose runs are in flight.
    in_flight: usize,
    /// The client closed its end: answer what is in flight, then close.
    ended: bool,
    /// Not read while it has too much queued or unsent.
    paused: bool,
    /// Requests read but not yet run (`Err`: an oversized one, by its size),
    /// waiting for the client's runs in flight to drop below the limit.
    queued: VecDeque<Result<Vec<u8>, usize>>,
}

const READ_BUDGET: usize = 256 * 1024;
/// Unsent response bytes past which a client is not read.
const OUT_LIMIT: usize = 4 << 20;

/// Serves programs over a socket: one request per line
/// (`{"id", "program", "data_pool", "metadata"}`), one response line per request on the same
/// connection (`{"id", "status", "outputs", "error", "trace"}`), in the
/// order runs end. Many clients, many requests per connection; a bad
/// request gets a `rejected` answer and nothing else changes. Responses
/// also go down the train as events (for an audit drain).
pub struct ProgramServer {
    settings: ProgramServerSettings,
    addr: Address,
    unix_mode: u32,
    engine: Engine,
    clients: Clients<State>,
    sweep: Option<TimerId>,
    finishing: bool,
    stats: ServerStats,
}

impl fmt::Debug for ProgramServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramServer")
            .field("listen", &self.settings.listen)
            .field("engine", &self.engine)
            .field("clients", &self.clients.live())
            .finish_non_exhaustive()
    }
}

impl ProgramServerSettings {
    /// The address and the socket mode, or the first error of the settings
    /// other than the spec.
    fn checked(&self) -> Result<(Address, u32), Error> {
        if self.listen.is_empty() {
            return Err(Error::setting(
                "listen",
                "required: where to listen (tcp:127.0.0.1:7070, unix:/run/programs.sock)",
            ));
        }
        let addr = Address::parse("listen", &self.listen)?;
        if matches!(addr, Address::Udp(_)) {
            return Err(Error::setting(
                "listen",
                "programs are served over TCP or a Unix socket, not UDP",
            ));
        }
        for (key, v) in [
            ("max_request_bytes", self.max_request_bytes),
            ("max_clients", self.max_clients),
            ("max_in_flight_per_client", self.max_in_flight_per_client),
        ] {
            if v == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        let unix_mode = u32::from_str_radix(&self.unix_mode, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| Error::setting("unix_mode", format!("`{}` is not an octal mode", self.unix_mode)))?;
        Ok((addr, unix_mode))
    }

    /// Every error the server's constructor finds, without opening the
    /// state directory or binding anything (the spec is read).
    pub fn check(&self, functions: &Functions) -> Result<(), Error> {
        self.checked()?;
        super::cog::load_spec(&self.spec, functions).map(drop)
    }
}

impl ProgramServer {
    /// The server from its settings and the functions hooks may name; the
    /// spec is loaded and checked now, the socket bound when the loop starts.
    pub fn new(settings: ProgramServerSettings, functions: Arc<Functions>) -> Result<ProgramServer, Error> {
        let (addr, unix_mode) = settings.checked()?;
        let engine = engine(
            &settings.spec,
            settings.state_dir.as_deref(),
            settings.no_fsync,
            functions,
        )?;
        let stats = ServerStats::default();
        let counters = ClientCounters {
            accepted: stats.accepted.clone(),
            closed: stats.closed.clone(),
            accept_failed: stats.accept_failed.clone(),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        Ok(ProgramServer {
            clients: Clients::new(addr.clone(), settings.max_clients, interest, false, counters),
            addr,
            unix_mode,
            engine,
            sweep: None,
            finishing: false,
            stats,
            settings,
        })
    }

    /// The counters of its runs.
    pub fn program_stats(&self) -> ProgramStats {
        self.engine.stats.clone()
    }

    /// The counters of its connections.
    pub fn stats(&self) -> ServerStats {
        self.stats.clone()
    }

    fn accept<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.clients.accept(ctx, State::default);
    }

    fn close<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        self.clients.close(idx, ctx);
    }

    /// Reads a client until `WouldBlock`, its end or the per-turn budget,
    /// submitting each request line.
    fn read_client<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let mut budget = READ_BUDGET;
        let mut buf = self.clients.take_buf();
        let max = self.settings.max_request_bytes;
        let max_in_flight = self.settings.max_in_flight_per_client;
        while let Some(c) = self.clients.get_mut(idx) {
            if c.state.ended || self.finishing {
                break;
            }
            if c.state.queued.len() >= max_in_flight || c.state.out.len() >= OUT_LIMIT {
                c.state.paused = true;
                break;
            }
            if budget == 0 {
                let _ = ctx.enqueue(c.key(idx));
                break;
            }
            match c.stream.read(&mut buf) {
                Ok(0) => {
                    c.state.ended = true;
                    if !c.state.line.is_empty() && !c.state.skipping {
                        let last = std::mem::take(&mut c.state.line);
                        c.state.queued.push_back(Ok(last));
                    }
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    c.last_active = ctx.now();
                    split_lines(&mut c.state, &buf[..n], max);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::info!("{}: client {}: {e}", self.addr, c.peer);
                    c.state.ended = true;
                    c.state.out.clear();
                    break;
                }
            }
        }
        self.clients.put_buf(buf);
        self.submit_queued(idx, ctx);
        self.answer(ctx);
        self.settle(idx, ctx);
    }

    /// Runs the client's queued requests while it has room in flight.
    fn submit_queued<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let max = self.settings.max_request_bytes;
        let tag = self.clients.key(idx);
        loop {
            let Some(c) = self.clients.get_mut(idx) else { return };
            if c.state.in_flight >= self.settings.max_in_flight_per_client {
                return;
            }
            match c.state.queued.pop_front() {
                None => return,
                Some(Ok(line)) => self.request(idx, tag, &line, ctx),
                Some(Err(size)) => {
                    self.stats.oversized.add(1);
                    self.engine.stats.rejected.add(1);
                    let message = format!("request of {size} bytes or more, over the limit of {max} bytes");
                    self.reply(idx, rejection(Value::Null, message));
                }
            }
        }
    }

    fn request<N: Next<Event> + ?Sized>(&mut self, idx: usize, tag: u64, line: &[u8], ctx: &mut Context<'_, Event, N>) {
        match Request::decode(line) {
            Ok(request) => {
                if let Some(c) = self.clients.get_mut(idx) {
                    c.state.in_flight += 1;
                    if c.state.in_flight as u64 > self.stats.peak_in_flight.get() {
                        self.stats.peak_in_flight.set(c.state.in_flight as u64);
                    }
                }
                self.engine.submit(request, tag, ctx);
            }
            Err((id, message)) => {
                self.engine.stats.rejected.add(1);
                self.reply(idx, rejection(id, message));
            }
        }
    }

    /// Queues a response line for a client.
    fn reply(&mut self, idx: usize, response: Value) {
        if let Some(c) = self.clients.get_mut(idx) {
            write_response(&mut c.state.out, &response);
        }
    }

    /// Routes the engine's answers to their clients and down the train.
    fn answer<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let mut touched = Vec::new();
        loop {
            let answers = self.engine.take_answers();
            if answers.is_empty() {
                break;
            }
            let from = touched.len();
            self.route(answers, &mut touched, ctx);
            // Room in flight again: run what the clients queued meanwhile.
            let fresh: Vec<usize> = touched[from..].to_vec();
            for idx in fresh {
                self.submit_queued(idx, ctx);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for idx in touched {
            self.settle(idx, ctx);
        }
        self.check_finished(ctx);
    }

    fn route<N: Next<Event> + ?Sized>(
        &mut self,
        answers: Vec<Answer>,
        touched: &mut Vec<usize>,
        ctx: &mut Context<'_, Event, N>,
    ) {
        for Answer { tag, response } in answers {
            let mut origin = None;
            if let Some(tag) = tag {
                let found = self.clients.find(tag);
                match found.and_then(|idx| Some((idx, self.clients.get_mut(idx)?))) {
                    Some((idx, c)) => {
                        c.state.in_flight -= 1;
                        c.last_active = ctx.now();
                        write_response(&mut c.state.out, &response);
                        origin = Some(Arc::clone(&c.peer));
                        touched.push(idx);
                    }
                    _ => self.stats.orphaned.add(1),
                }
            }
            let mut event = Event::new(ctx.next_event_id(), response);
            event.origin = origin;
            ctx.emit(event);
        }
    }

    /// Writes what a client is owed; closes it once it ended and has all its answers.
    fn settle<N: Next<Event> + ?Sized>(&mut self, idx: usize, ctx: &mut Context<'_, Event, N>) {
        let Some(c) = self.clients.get_mut(idx) else { return };
        let mut written = 0;
        let mut broken = false;
        while written < c.state.out.len() {
            match c.stream.write(&c.state.out[written..]) {
                Ok(0) => {
                    broken = true;
                    break;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::info!("{}: client {}: {e}", self.addr, c.peer);
                    broken = true;
                    break;
                }
            }
        }
        c.state.out.drain(..written);
        if broken {
            c.state.out.clear();
            c.state.ended = true;
        }
        if c.state.paused
            && c.state.queued.len() < self.settings.max_in_flight_per_client
            && c.state.out.len() < OUT_LIMIT
        {
            c.state.paused = false;
            let _ = ctx.enqueue(c.key(idx));
        }
        if c.state.ended && c.state.in_flight == 0 && c.state.out.is_empty() && c.state.queued.is_empty() {
            self.close(idx, ctx);
        }
    }

    fn sweep<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let idle = Duration::from_millis(self.settings.idle_timeout_ms);
        let now = ctx.now();
        for idx in 0..self.clients.slots() {
            let stale = self.clients.get(idx).is_some_and(|c| {
                c.state.in_flight == 0
                    && c.state.queued.is_empty()
                    && c.state.out.is_empty()
                    && now.duration_since(c.last_active) >= idle
            });
            if stale {
                self.stats.idle_closed.add(1);
                self.close(idx, ctx);
            }
        }
    }

    fn check_finished<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if !self.finishing || self.engine.in_flight() > 0 {
            return;
        }
        if self.clients.iter().any(|(_, c)| !c.state.out.is_empty()) {
            return;
        }
        for idx in 0..self.clients.slots() {
            self.close(idx, ctx);
        }
        self.finishing = false;
        ctx.finished();
    }
}

/// Cuts request lines out of `bytes`: `Ok(line)` for each whole one,
/// `Err(size)` for one over `max` (skipped up to its newline).
fn split_lines(c: &mut State, mut bytes: &[u8], max: usize) {
    let out = &mut c.queued;
    while !bytes.is_empty() {
        let nl = bytes.iter().position(|&b| b == b'\n');
        let (chunk, rest, whole) = match nl {
            Some(i) => (&bytes[..i], &bytes[i + 1..], true),
            None => (bytes, &[][..], false),
        };
        bytes = rest;
        if c.skipping {
            if whole {
                c.skipping = false;
            }
            continue;
        }
        if c.line.len() + chunk.len() > max + 1 {
            out.push_back(Err(c.line.len() + chunk.len()));
            c.line.clear();
            c.skipping = !whole;
            continue;
        }
        c.line.extend_from_slice(chunk);
        if whole {
            let mut line = std::mem::take(&mut c.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > max {
                out.push_back(Err(line.len()));
            } else if !line.iter().all(u8::is_ascii_whitespace) {
                out.push_back(Ok(line));
            }
        }
    }
}

impl Cog<Event> for ProgramServer {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        match Listener::bind(&self.addr, self.unix_mode) {
            Ok(listener) => match self.clients.listen(listener, ctx) {
                Ok(()) => log::info!("serving programs on {}", self.addr),
                Err(e) => {
                    log::error!("{}: cannot watch the listener: {e}; finishing", self.addr);
                    ctx.fail(format_args!("{}: cannot watch the listener: {e}", self.addr));
                }
            },
            Err(e) => {
                log::error!("{}: cannot listen: {e}; finishing", self.addr);
                ctx.fail(format_args!("{}: cannot listen: {e}", self.addr));
            }
        }
        if self.settings.idle_timeout_ms > 0 {
            let period = Duration::from_millis((self.settings.idle_timeout_ms / 4).clamp(10, 10_000));
            self.sweep = ctx.every(period, SWEEP).ok();
        }
        self.engine.start(ctx);
        self.answer(ctx);
    }

    fn fire<N: Next<Event> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, Event, N>) {
        if key & ENGINE_KEYS != 0 {
            self.engine.fire(key, fired, ctx);
            return self.answer(ctx);
        }
        match key {
            LISTEN => self.accept(ctx),
            SWEEP => self.sweep(ctx),
            ACCEPT_AGAIN => {
                self.clients.pause_expired();
                self.accept(ctx)
            }
            _ => {
                if let Some(idx) = self.clients.find(key) {
                    self.read_client(idx, ctx);
                }
            }
        }
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, event: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(event)
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        self.engine.close();
        self.clients.stop(ctx);
        if let Some(t) = self.sweep.take() {
            ctx.cancel(t);
        }
        self.finishing = true;
        // Read but not run: the engine, closed, answers them `rejected`.
        for idx in 0..self.clients.slots() {
            let queued = self.clients.get_mut(idx).map(|c| std::mem::take(&mut c.state.queued));
            let tag = self.clients.key(idx);
            for line in queued.into_iter().flatten().flatten() {
                self.request(idx, tag, &line, ctx);
            }
        }
        self.answer(ctx);
        self.check_finished(ctx);
        if self.finishing {
            Finish::Pending
        } else {
            Finish::Done
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program_server {} ({})", self.addr, self.settings.spec.display())
    }
}
