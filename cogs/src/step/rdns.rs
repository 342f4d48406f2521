//! The `reverse_dns` cog: adds the host name of an IP address field,
//! without ever blocking the loop.
//!
//! Lookups run on a small pool of worker threads and come back through the
//! escapement's waker. Answers are cached (with a TTL, negative answers
//! too); lookups in flight are bounded, and past the bound events wait, in
//! order. Events leave in the order they came, each after its lookup
//! answered or timed out (then without the name). Lookups go to the system
//! resolver (`getnameinfo`: `/etc/hosts`, then DNS as configured) or, with
//! `server`, straight to one DNS server over UDP.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::Json;
use tourbillon::{Cog, CogRemote, Context, Finish, Fired, Getter, Next, Setter, TimerId};

use crate::{Counter, Error};

/// Settings of [`ReverseDns`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReverseDnsSettings {
    /// The field holding the address (`"client_ip"`; a port after it is ignored). Default `"ip"`.
    pub field: String,
    /// The field that gets the name. Default `"hostname"`.
    pub target: String,
    /// A DNS server to ask directly over UDP (`"127.0.0.1:53"`). Default
    /// none: the system resolver.
    pub server: Option<String>,
    /// Worker threads doing lookups. At least 1. Default 4.
    pub workers: usize,
    /// Distinct lookups in flight at most; past that, events wait. At least 1. Default 64.
    pub max_in_flight: usize,
    /// Events held waiting for answers at most; past that the cog says it
    /// is congested (supplies pause). At least 1. Default 10000.
    pub max_waiting: usize,
    /// Milliseconds an event waits for its answer before it goes on without
    /// the name. At least 1. Default 2000.
    pub timeout_ms: u64,
    /// Names kept in the cache at most. Default 10000 (0: no cache).
    pub cache_size: usize,
    /// Seconds a name stays cached. Default 300.
    pub cache_ttl_secs: u64,
    /// Seconds an address without a name stays cached as such. Default 60.
    pub negative_ttl_secs: u64,
}

impl Default for ReverseDnsSettings {
    fn default() -> Self {
        ReverseDnsSettings {
            field: "ip".into(),
            target: "hostname".into(),
            server: None,
            workers: 4,
            max_in_flight: 64,
            max_waiting: 10_000,
            timeout_ms: 2000,
            cache_size: 10_000,
            cache_ttl_secs: 300,
            negative_ttl_secs: 60,
        }
    }
}

/// Counts of a [`ReverseDns`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct ReverseDnsStats {
    /// Answers taken from the cache.
    pub cache_hits: Counter,
    /// Lookups sent to the workers.
    pub lookups: Counter,
    /// Events that went on without a name because their lookup timed out.
    pub timeouts: Counter,
    /// Values that are not an IP address (passed on untouched).
    pub invalid: Counter,
}

/// One lookup's answer.
type Answer = (IpAddr, Option<String>);

struct Waiting<D> {
    datum: D,
    ip: Option<IpAddr>,
    deadline: Instant,
    /// The answer, once it came.
    answer: Option<Option<String>>,
}

/// Adds host names; see the [module docs](self).
pub struct ReverseDns<D> {
    settings: ReverseDnsSettings,
    server: Option<SocketAddr>,
    get: Getter<D, str>,
    set: Setter<D, Value>,
    queue: VecDeque<Waiting<D>>,
    /// Lookups sent and not answered, with the events waiting for each.
    in_flight: HashMap<IpAddr, usize>,
    /// Addresses waiting for a free lookup slot, in order.
    backlog: VecDeque<IpAddr>,
    cache: HashMap<IpAddr, (Option<String>, Instant)>,
    jobs: Option<Sender<IpAddr>>,
    timer: Option<TimerId>,
    congested: bool,
    finishing: bool,
    stats: ReverseDnsStats,
}

impl<D> fmt::Debug for ReverseDns<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseDns")
            .field("settings", &self.settings)
            .field("waiting", &self.queue.len())
            .finish_non_exhaustive()
    }
}

const RESULT: u64 = 0;
const TIMER: u64 = 1;
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    let t = text.trim();
    t.parse::<IpAddr>()
        .ok()
        .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

impl<D: Json> ReverseDns<D> {
    /// A cog from its settings; errors name the key.
    pub fn new(settings: ReverseDnsSettings) -> Result<Self, Error> {
        for (key, v) in [
            ("workers", settings.workers as u64),
            ("max_in_flight", settings.max_in_flight as u64),
            ("max_waiting", settings.max_waiting as u64),
            ("timeout_ms", settings.timeout_ms),
        ] {
            if v == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        for (key, v) in [("field", &settings.field), ("target", &settings.target)] {
            if v.is_empty() {
                return Err(Error::setting(key, "must name a field"));
            }
        }
        let server = match &settings.server {
            Some(s) => Some(
                s.parse::<SocketAddr>()
                    .map_err(|e| Error::setting("server", format!("`{s}`: {e} (expected IP:PORT)")))?,
            ),
            None => None,
        };
        Ok(ReverseDns {
            get: Getter::path_str(&settings.field),
            set: Setter::path(&settings.target),
            server,
            settings,
            queue: VecDeque::new(),
            in_flight: HashMap::new(),
            backlog: VecDeque::new(),
            cache: HashMap::new(),
            jobs: None,
            timer: None,
            congested: false,
            finishing: false,
            stats: ReverseDnsStats::default(),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> ReverseDnsStats {
        self.stats.clone()
    }

    fn cached(&mut self, ip: &IpAddr, now: Instant) -> Option<Option<String>> {
        match self.cache.get(ip) {
            Some((name, until)) if *until > now => Some(name.clone()),
            Some(_) => {
                self.cache.remove(ip);
                None
            }
            None => None,
        }
    }

    fn remember(&mut self, ip: IpAddr, name: Option<String>, now: Instant) {
        if self.settings.cache_size == 0 {
            return;
        }
        if self.cache.len() >= self.settings.cache_size {
            // Expired first; else any one (a bounded cache, not an LRU).
            self.cache.retain(|_, (_, until)| *until > now);
            if self.cache.len() >= self.settings.cache_size {
                if let Some(k) = self.cache.keys().next().copied() {
                    self.cache.remove(&k);
                }
            }
        }
        let ttl = if name.is_some() {
            self.settings.cache_ttl_secs
        } else {
            self.settings.negative_ttl_secs
        };
        self.cache.insert(ip, (name, now + Duration::from_secs(ttl)));
    }

    fn ask(&mut self, ip: IpAddr) {
        if let Some(n) = self.in_flight.get_mut(&ip) {
            *n += 1;
            return;
        }
        if self.in_flight.len() >= self.settings.max_in_flight {
            if !self.backlog.contains(&ip) {
                self.backlog.push_back(ip);
            }
            return;
        }
        if let Some(jobs) = &self.jobs {
            if jobs.send(ip).is_ok() {
                self.stats.lookups.add(1);
                self.in_flight.insert(ip, 1);
            }
        }
    }

    /// Sends on every event at the head whose name is known or whose time is up.
    fn release<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let now = ctx.now();
        while let Some(head) = self.queue.front() {
            let (ip, deadline, known) = (head.ip, head.deadline, head.answer.clone());
            let answer = match (ip, known) {
                (None, _) => Some(None),
                (Some(_), Some(a)) => Some(a),
                (Some(ip), None) => match self.cached(&ip, now) {
                    Some(a) => Some(a),
                    None if deadline <= now => {
                        self.stats.timeouts.add(1);
                        Some(None)
                    }
                    None => None,
                },
            };
            let Some(name) = answer else { break };
            let w = self.queue.pop_front().expect("a head");
            let datum = match name {
                Some(n) => self.set.set(w.datum, Value::String(n)),
                None => w.datum,
            };
            ctx.emit(datum);
        }
        while self.in_flight.len() < self.settings.max_in_flight {
            let Some(ip) = self.backlog.pop_front() else { break };
            self.ask(ip);
        }
        if self.congested && self.queue.len() < self.settings.max_waiting / 2 {
            self.congested = false;
            ctx.resume_upstream();
        }
        if let (Some(t), Some(head)) = (self.timer, self.queue.front()) {
            ctx.reschedule(t, head.deadline);
        }
        if self.finishing && self.queue.is_empty() {
            ctx.finished();
        }
    }
}

/// Asks the system resolver for the name of `ip` (`getnameinfo`, name required).
pub fn system_lookup(ip: IpAddr) -> Option<String> {
    let sa: socket2_free::Sockaddr = ip.into();
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: the sockaddr and host buffer are valid for the lengths given.
    let rc = unsafe {
        libc::getnameinfo(
            sa.ptr(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates on success.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

mod socket2_free {
    use std::net::IpAddr;

    /// A `sockaddr_in` or `sockaddr_in6` for an address, port 0.
    pub(super) enum Sockaddr {
        V4(libc::sockaddr_in),
        V6(libc::sockaddr_in6),
    }

    impl From<IpAddr> for Sockaddr {
        fn from(ip: IpAddr) -> Sockaddr {
            // SAFETY: all-zero is a valid sockaddr_in / sockaddr_in6.
            match ip {
                IpAddr::V4(v4) => {
                    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                    sa.sin_family = libc::AF_INET as libc::sa_family_t;
                    sa.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
                    Sockaddr::V4(sa)
                }
                IpAddr::V6(v6) => {
                    let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                    sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                    sa.sin6_addr.s6_addr = v6.octets();
                    Sockaddr::V6(sa)
                }
            }
        }
    }

    impl Sockaddr {
        pub(super) fn ptr(&self) -> *const libc::sockaddr {
            match self {
                Sockaddr::V4(s) => (s as *const libc::sockaddr_in).cast(),
                Sockaddr::V6(s) => (s as *const libc::sockaddr_in6).cast(),
            }
        }
        pub(super) fn len(&self) -> libc::socklen_t {
            match self {
                Sockaddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                Sockaddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            }
        }
    }
}

/// The PTR name of an address: `4.3.2.1.in-addr.arpa`, or nibbles under `ip6.arpa`.
pub fn ptr_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa"
        }
    }
}

/// Asks `server` for the PTR record of `ip` over UDP, waiting up to `timeout`.
pub fn dns_lookup(server: SocketAddr, ip: IpAddr, timeout: Duration) -> Option<String> {
    let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().ok()?;
    let sock = UdpSocket::bind(bind).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let id = (std::process::id() as u16) ^ (Instant::now().elapsed().subsec_nanos() as u16) ^ 0x5a5a;
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
    for label in ptr_name(ip).split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 12, 0, 1]); // root, QTYPE PTR, QCLASS IN
    sock.send_to(&q, server).ok()?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + timeout;
    loop {
        let (n, from) = sock.recv_from(&mut buf).ok()?;
        if from == server && n >= 12 && buf[..2] == id.to_be_bytes() {
            return parse_ptr_answer(&buf[..n]);
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// Reads a name at `at` (with compression); returns it and the offset after it.
fn read_name(msg: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            return Some((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let ptr = ((len & 0x3f) << 8) | *msg.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            at = ptr;
            continue;
        }
        labels.push(String::from_utf8_lossy(msg.get(at + 1..at + 1 + len)?).into_owned());
        at += 1 + len;
    }
    None
}

fn parse_ptr_answer(msg: &[u8]) -> Option<String> {
    let rcode = msg[3] & 0x0f;
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    if rcode != 0 || an == 0 {
        return None;
    }
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(msg, at)?.1 + 4;
    }
    for _ in 0..an {
        let after = read_name(msg, at)?.1;
        let rtype = u16::from_be_bytes([*msg.get(after)?, *msg.get(after + 1)?]);
        let rdlen = u16::from_be_bytes([*msg.get(after + 8)?, *msg.get(after + 9)?]) as usize;
        let rdata = after + 10;
        if rtype == 12 {
            return read_name(msg, rdata).map(|(n, _)| n);
        }
        at = rdata + rdlen;
    }
    None
}

fn spawn_workers(n: usize, server: Option<SocketAddr>, timeout: Duration, remote: CogRemote) -> Sender<IpAddr> {
    let (tx, rx) = channel::<IpAddr>();
    let rx: Arc<Mutex<Receiver<IpAddr>>> = Arc::new(Mutex::new(rx));
    for i in 0..n {
        let rx = Arc::clone(&rx);
        let remote = remote.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("rdns-{i}"))
            .spawn(move || loop {
                let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(ip) = job else { return };
                let name = match server {
                    Some(s) => dns_lookup(s, ip, timeout),
                    None => system_lookup(ip),
                };
                let answer: Answer = (ip, name);
                if remote.send(answer).is_err() {
                    return;
                }
            });
        if let Err(e) = spawned {
            log::error!("reverse_dns: cannot start worker {i}: {e}");
        }
    }
    tx
}

impl<D: Json> Cog<D> for ReverseDns<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let remote = ctx.remote(RESULT);
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        self.jobs = Some(spawn_workers(self.settings.workers, self.server, timeout, remote));
        match ctx.every(FAR, TIMER) {
            Ok(t) => self.timer = Some(t),
            Err(e) => log::error!("reverse_dns: cannot bind its timer ({e}); lookups will not time out"),
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let ip = match self.get.get(&datum) {
            Some(text) => match parse_ip(text) {
                Some(ip) => Some(ip),
                None => {
                    self.stats.invalid.add(1);
                    None
                }
            },
            None => None,
        };
        let now = ctx.now();
        if let Some(ip) = ip {
            if let Some(name) = self.cached(&ip, now) {
                self.stats.cache_hits.add(1);
                if self.queue.is_empty() {
                    let d = match name {
                        Some(n) => self.set.set(datum, Value::String(n)),
                        None => datum,
                    };
                    return ctx.emit(d);
                }
            } else {
                self.ask(ip);
            }
        } else if self.queue.is_empty() {
            return ctx.emit(datum);
        }
        let first = self.queue.is_empty();
        self.queue.push_back(Waiting {
            datum,
            ip,
            deadline: now + Duration::from_millis(self.settings.timeout_ms),
            answer: None,
        });
        if first {
            if let (Some(t), Some(head)) = (self.timer, self.queue.front()) {
                ctx.reschedule(t, head.deadline);
            }
        }
        if self.queue.len() >= self.settings.max_waiting {
            self.congested = true;
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        match (key, fired) {
            (RESULT, Fired::Message(m)) => {
                if let Ok(answer) = m.downcast::<Answer>() {
                    let (ip, name) = *answer;
                    self.in_flight.remove(&ip);
                    let now = ctx.now();
                    for w in self.queue.iter_mut().filter(|w| w.ip == Some(ip) && w.answer.is_none()) {
                        w.answer = Some(name.clone());
                    }
                    self.remember(ip, name, now);
                }
                self.release(ctx)
            }
            (TIMER, _) => {
                self.release(ctx);
                if self.queue.is_empty() {
                    if let Some(t) = self.timer {
                        let at = ctx.now() + FAR;
                        ctx.reschedule(t, at);
                    }
                }
            }
            _ => {}
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        self.release(ctx);
        if self.queue.is_empty() {
            Finish::Done
        } else {
            Finish::Pending
        }
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        self.jobs = None; // workers see the channel close and exit
    }

    fn congested(&self) -> bool {
        self.congested
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "reverse_dns {} -> {} via {} workers={} max_in_flight={} timeout_ms={} cache={}x{}s",
            s.field,
            s.target,
            s.server.as_deref().unwrap_or("system resolver"),
            s.workers,
            s.max_in_flight,
            s.timeout_ms,
            s.cache_size,
            s.cache_ttl_secs
        )
    }
}
