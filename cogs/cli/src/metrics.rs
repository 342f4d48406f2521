//! `[api]`: the counters of every cog and of the loop over HTTP, in the
//! Prometheus text format (`GET /metrics`), and whether the process is
//! running or finishing (`GET /health`); `tourbillon top` reads them.
//!
//! ```toml
//! [api]
//! listen = "127.0.0.1:9598"
//! ```
//!
//! The endpoint is served by a thread of its own, not by the loop: what it
//! reads is shared already (the cogs' meters and probes are atomics, the
//! loop's [`LoopGauges`] too), and the tail's lag takes a `stat` of every
//! followed file, which with a thousand files would hold the loop for about
//! a millisecond per scrape. The loop does nothing for a scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::LoopGauges;
use tourbillon_cogs::meter::{Board, Figure, FigureKind};

/// `[api]`: where to serve `/metrics` and `/health`; off without `listen`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// `IP:PORT` to listen on (`127.0.0.1:9598`).
    pub listen: Option<String>,
}

impl ApiSettings {
    /// The address to listen on, if any; the error says what is wrong.
    pub fn addr(&self) -> Result<Option<SocketAddr>, String> {
        match &self.listen {
            None => Ok(None),
            Some(a) => a
                .parse::<SocketAddr>()
                .map(Some)
                .map_err(|_| format!("`{a}` is not an address to listen on: expected IP:PORT, such as 127.0.0.1:9598")),
        }
    }
}

/// At most this many scrapes are answered at once; more get a 503.
const MAX_CLIENTS: usize = 4;
/// A request is at most this long (a GET with a few headers).
const MAX_REQUEST: usize = 8 * 1024;
/// A client that sends its request or reads the answer slower than this is cut.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/metrics` reads.
#[derive(Clone, Debug)]
pub struct Sources {
    /// The cogs' meters and probes.
    pub board: Board,
    /// The loop's turns, idle time and phase.
    pub gauges: LoopGauges,
    /// When the loop started, for the busy fraction.
    pub started: Instant,
}

/// Binds `addr` and serves `/metrics` and `/health` from a thread; returns
/// the address bound (the port, when `addr` asks for any).
pub fn serve(addr: SocketAddr, sources: Sources) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    let sources = Arc::new(sources);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("api".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            if active.load(Ordering::Relaxed) >= MAX_CLIENTS {
                let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
                let _ = answer(&mut stream, 503, "too many clients\n", "text/plain");
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let (sources, done) = (Arc::clone(&sources), Arc::clone(&active));
            let spawned = std::thread::Builder::new().name("api-client".into()).spawn(move || {
                let _ = handle(&mut stream, &sources);
                done.fetch_sub(1, Ordering::Relaxed);
            });
            if spawned.is_err() {
                active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    })?;
    Ok(bound)
}

fn handle(stream: &mut TcpStream, sources: &Sources) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
        if req.len() > MAX_REQUEST {
            return answer(stream, 431, "request too long\n", "text/plain");
        }
    }
    let line = String::from_utf8_lossy(req.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return answer(stream, 405, "only GET\n", "text/plain");
    }
    match path.split('?').next().unwrap_or("") {
        "/metrics" => answer(
            stream,
            200,
            &render(sources),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/health" if sources.gauges.finishing() => answer(stream, 503, "finishing\n", "text/plain"),
        "/health" => answer(stream, 200, "running\n", "text/plain"),
        _ => answer(stream, 404, "not found: /metrics or /health\n", "text/plain"),
    }
}

fn answer(stream: &mut TcpStream, status: u16, body: &str, content_type: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.0 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric: its help, its type, its samples (labels, value).
struct Family {
    help: &'static str,
    kind: FigureKind,
    samples: Vec<(String, f64)>,
}

#[derive(Default)]
struct Families(BTreeMap<&'static str, Family>);

impl Families {
    fn add(&mut self, figure: Figure, labels: &str) {
        let family = self.0.entry(figure.name).or_insert_with(|| Family {
            help: figure.help,
            kind: figure.kind,
            samples: Vec::new(),
        });
        let labels = match &figure.label {
            Some((k, v)) if labels.is_empty() => format!("{k}=\"{}\"", escape(v)),
            Some((k, v)) => format!("{labels},{k}=\"{}\"", escape(v)),
            None => labels.to_owned(),
        };
        family.samples.push((labels, figure.value));
    }

    fn render(self) -> String {
        let mut out = String::new();
        for (name, f) in self.0 {
            let kind = match f.kind {
                FigureKind::Counter => "counter",
                FigureKind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP tourbillon_{name} {}", f.help);
            let _ = writeln!(out, "# TYPE tourbillon_{name} {kind}");
            for (labels, value) in f.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "tourbillon_{name} {value}");
                } else {
                    let _ = writeln!(out, "tourbillon_{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

/// The metrics now, in the Prometheus text format 0.0.4.
pub fn render(sources: &Sources) -> String {
    let mut families = Families::default();
    let mut figures = Vec::new();
    for e in sources.board.entries(None) {
        let labels = format!(
            "train=\"{}\",cog=\"{}\",kind=\"{}\"",
            escape(&e.train),
            e.index,
            escape(&e.kind)
        );
        let c = e.meter.counts();
        for f in [
            Figure::counter("cog_in_total", "Data a cog took in.", c.input),
            Figure::counter("cog_out_total", "Data a cog sent on.", c.output),
            Figure::counter("cog_dropped_total", "Data a cog dropped on purpose.", c.dropped),
            Figure::counter("cog_errors_total", "Values a cog could not work with.", c.errors),
            Figure::counter("cog_bytes_total", "Bytes of the data a cog took in.", c.bytes),
        ] {
            families.add(f, &labels);
        }
        if let Some(probe) = &e.probe {
            figures.clear();
            probe.read(&mut figures);
            for f in figures.drain(..) {
                families.add(f, &labels);
            }
        }
    }
    let g = &sources.gauges;
    let wall = sources.started.elapsed().as_secs_f64();
    let idle = g.idle().as_secs_f64();
    for f in [
        Figure::counter("loop_turns_total", "Times the loop polled.", g.turns()),
        Figure {
            value: idle,
            ..Figure::counter("loop_idle_seconds_total", "Seconds the loop spent waiting in poll.", 0)
        },
        Figure::gauge(
            "loop_busy_ratio",
            "Share of the time since start the loop was not waiting in poll.",
            if wall > 0.0 {
                (1.0 - idle / wall).clamp(0.0, 1.0)
            } else {
                0.0
            },
        ),
        Figure::gauge(
            "finishing",
            "1 once the finish began (no new data are taken in), else 0.",
            if g.finishing() { 1.0 } else { 0.0 },
        ),
    ] {
        families.add(f, "");
    }
    if let Some(rss) = rss_bytes() {
        families.add(
            Figure::gauge(
                "process_resident_memory_bytes",
                "Resident memory of the process.",
                rss as f64,
            ),
            "",
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        // The listing's own descriptor is among them.
        let n = dir.count().saturating_sub(1);
        families.add(
            Figure::gauge("process_open_fds", "File descriptors the process holds.", n as f64),
            "",
        );
    }
    families.render()
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// Serves `[api]` if it names an address, reading the meters of the cogs
/// `registry` built and the loop of `core`; logs the address bound.
pub fn start(api: &ApiSettings, registry: &crate::registry::Registry, core: &tourbillon::Core) -> Result<(), String> {
    let Some(addr) = api.addr()? else { return Ok(()) };
    let sources = Sources {
        board: registry.board().clone(),
        gauges: core.gauges(),
        started: Instant::now(),
    };
    let bound = serve(addr, sources).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    log::info!("api: /metrics and /health on http://{bound}");
    Ok(())
}

/// One scrape of `/metrics` at `addr`: its text.
pub fn scrape(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let to = addr
        .to_socket_addrs_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("`{addr}`: not HOST:PORT")))?;
    let mut stream = TcpStream::connect_timeout(&to, CLIENT_TIMEOUT)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
    Ok((status, body))
}

trait FirstAddr {
    fn to_socket_addrs_first(&self) -> Option<SocketAddr>;
}

impl FirstAddr for str {
    fn to_socket_addrs_first(&self) -> Option<SocketAddr> {
        std::net::ToSocketAddrs::to_socket_addrs(self).ok()?.next()
    }
}

/// The samples of a scrape: name, labels, value.
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let Some((head, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else { continue };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (head, BTreeMap::new()),
        };
        out.push((name.to_owned(), labels, value));
    }
    out
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_owned(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    labels
}

/// A cog's row: train, position, kind.
type CogKey = (String, u64, String);

#[derive(Default)]
struct Reading {
    cogs: BTreeMap<CogKey, BTreeMap<String, f64>>,
    process: BTreeMap<String, f64>,
}

fn reading(text: &str) -> Reading {
    let mut r = Reading::default();
    for (name, labels, value) in samples(text) {
        let name = name.trim_start_matches("tourbillon_").to_owned();
        match (labels.get("train"), labels.get("cog"), labels.get("kind")) {
            (Some(t), Some(c), Some(k)) => {
                let key = (t.clone(), c.parse().unwrap_or(0), k.clone());
                *r.cogs.entry(key).or_default().entry(name).or_default() += value;
            }
            _ => {
                r.process.insert(name, value);
            }
        }
    }
    r
}

fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1}G", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e4 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// The table `top` prints for two readings `dt` apart.
fn table(before: &Reading, now: &Reading, dt: f64) -> String {
    let rate = |key: &CogKey, name: &str| {
        let a = before.cogs.get(key).and_then(|m| m.get(name)).copied().unwrap_or(0.0);
        let b = now.cogs.get(key).and_then(|m| m.get(name)).copied().unwrap_or(0.0);
        (b - a).max(0.0) / dt
    };
    let p = |name: &str| now.process.get(name).copied().unwrap_or(0.0);
    let idle = p("loop_idle_seconds_total") - before.process.get("loop_idle_seconds_total").copied().unwrap_or(0.0);
    let turns = p("loop_turns_total") - before.process.get("loop_turns_total").copied().unwrap_or(0.0);
    let mut out = format!(
        "loop: {} turns/s, busy {:.1}%   rss {}B   fds {}   {}\n\n",
        si(turns / dt),
        (100.0 * (1.0 - idle / dt)).clamp(0.0, 100.0),
        si(p("process_resident_memory_bytes")),
        p("process_open_fds"),
        if p("finishing") > 0.0 { "FINISHING" } else { "running" }
    );
    let _ = writeln!(
        out,
        "{:<16} {:>3} {:<14} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "TRAIN", "COG", "KIND", "IN/S", "OUT/S", "ERRORS", "BYTES/S", "LAG"
    );
    for (key, figures) in &now.cogs {
        let lag = figures
            .get("tail_lag_bytes")
            .map_or_else(|| "-".to_owned(), |l| format!("{}B", si(*l)));
        let _ = writeln!(
            out,
            "{:<16} {:>3} {:<14} {:>10} {:>10} {:>8} {:>10} {:>10}",
            key.0,
            key.1,
            key.2,
            si(rate(key, "cog_in_total")),
            si(rate(key, "cog_out_total")),
            figures.get("cog_errors_total").copied().unwrap_or(0.0),
            si(rate(key, "cog_bytes_total")),
            lag
        );
    }
    out
}

/// `tourbillon top ADDR`: the table, redrawn each second (once with
/// `once`); the exit status.
pub fn top(addr: &str, once: bool) -> i32 {
    let read = || match scrape(addr, "/metrics") {
        Ok((200, body)) => Ok((Instant::now(), reading(&body))),
        Ok((status, _)) => Err(format!("{addr}/metrics answered {status}")),
        Err(e) => Err(format!("{addr}: {e}")),
    };
    let mut last = match read() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tourbillon top: {e}");
            return 1;
        }
    };
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = match read() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tourbillon top: {e}");
                return 1;
            }
        };
        let text = table(&last.1, &now.1, now.0.duration_since(last.0).as_secs_f64());
        if once {
            print!("{text}");
            return 0;
        }
        // Cleared and drawn from the top left, like `top`.
        print!("\x1b[2J\x1b[H{addr}\n{text}");
        let _ = io::stdout().flush();
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tourbillon_cogs::meter::Meter;

    #[test]
    fn labels_are_escaped_and_families_typed_once() {
        let board = Board::default();
        board.put("we\"b\\\n", 0, "filter", Meter::default());
        board.put("b", 1, "filter", Meter::default());
        let text = render(&Sources {
            board,
            gauges: LoopGauges::default(),
            started: Instant::now(),
        });
        assert!(
            text.contains(r#"tourbillon_cog_in_total{train="we\"b\\\n",cog="0",kind="filter"} 0"#),
            "{text}"
        );
        assert_eq!(
            text.matches("# TYPE tourbillon_cog_in_total counter").count(),
            1,
            "{text}"
        );
        assert!(text.contains("# TYPE tourbillon_loop_busy_ratio gauge"), "{text}");
        let r = reading(&text);
        assert!(
            r.cogs.contains_key(&("we\"b\\\n".to_owned(), 0, "filter".to_owned())),
            "{:?}",
            r.cogs.keys()
        );
        assert!(r.process.contains_key("loop_turns_total"));
    }
}
