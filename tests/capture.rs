//! Capture and replay against real sockets, real files and real time: a
//! deterministic train gives the same bytes, at the same clock readings,
//! live and in a replay.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{exclusive, keep_warnings, warnings_about};
use serde_json::{json, Value};
use tourbillon::capture::{
    compare, CaptureError, CaptureOptions, CaptureReader, Comparison, Entry, Pace, ReplayOptions,
};
use tourbillon::train::Chain;
use tourbillon::{
    from_iter, Builder, Cog, Context, Error, Escapement, Event, EventId, FdId, Finish, Fired, Interest, Next, Role,
    TimerId, Train,
};

// ---- what the tests run ----------------------------------------------------

/// Cuts bytes into lines and emits each as an event with a fresh id.
struct LineCutter {
    origin: Arc<str>,
    partial: Vec<u8>,
    line: u64,
}

impl LineCutter {
    fn new(origin: &str) -> Self {
        LineCutter {
            origin: origin.into(),
            partial: Vec::new(),
            line: 0,
        }
    }

    /// Emits the whole lines in `bytes`; true if one of them was `END`.
    fn feed<N: Next<Event> + ?Sized>(&mut self, bytes: &[u8], ctx: &mut Context<'_, Event, N>) -> bool {
        self.partial.extend_from_slice(bytes);
        let mut end = false;
        while let Some(at) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=at).take(at).collect();
            if line == b"END" {
                end = true;
                continue;
            }
            self.line += 1;
            let id = ctx.next_event_id();
            ctx.emit(Event::from_raw(id, line, Some(Arc::clone(&self.origin)), self.line));
        }
        end
    }
}

/// A supply of the lines sent by the first client of a TCP listener.
struct TcpLines {
    listener: TcpListener,
    conn: Option<(TcpStream, FdId)>,
    lines: LineCutter,
}

const ACCEPT: u64 = 0;
const READ: u64 = 1;

impl TcpLines {
    fn new(listener: TcpListener) -> Self {
        TcpLines {
            listener,
            conn: None,
            lines: LineCutter::new("tcp"),
        }
    }
}

impl Cog<Event> for TcpLines {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.listener.set_nonblocking(true).unwrap();
        ctx.register(&self.listener, Interest::READABLE, ACCEPT).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if key == ACCEPT {
            loop {
                match self.listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true).unwrap();
                        let id = ctx.register(&stream, Interest::READABLE, READ).unwrap();
                        self.conn = Some((stream, id));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) => panic!("accept: {e}"),
                }
            }
        }
        let mut buf = [0; 4096];
        while let Some((stream, id)) = &mut self.conn {
            match stream.read(&mut buf) {
                Ok(0) => {
                    let id = *id;
                    ctx.unregister(id);
                    self.conn = None;
                    ctx.exhausted();
                }
                Ok(n) => {
                    self.lines.feed(&buf[..n], ctx);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read: {e}"),
            }
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tcp lines")
    }
}

/// A supply that follows a growing file, reading what was appended every
/// 25 ms, until a line `END`.
struct TailLines {
    path: PathBuf,
    file: Option<File>,
    lines: LineCutter,
}

impl TailLines {
    fn new(path: &Path) -> Self {
        TailLines {
            path: path.to_path_buf(),
            file: None,
            lines: LineCutter::new("tail"),
        }
    }
}

impl Cog<Event> for TailLines {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.file = Some(File::open(&self.path).unwrap());
        ctx.every(Duration::from_millis(25), 0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, fired: Fired, ctx: &mut Context<'_, Event, N>) {
        let Some(file) = &mut self.file else { return };
        let mut appended = Vec::new();
        file.read_to_end(&mut appended).unwrap();
        if self.lines.feed(&appended, ctx) {
            self.file = None;
            if let Fired::Timer(id) = fired {
                ctx.cancel(id);
            }
            ctx.exhausted();
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tail")
    }
}

/// A supply that emits `{"tick": n}` every `every`, `count` times, and
/// notes the loop's clock (from its start) at each.
struct Ticker {
    every: Duration,
    count: u64,
    n: u64,
    start: Option<Instant>,
    clock: Arc<Mutex<Vec<Duration>>>,
}

impl Ticker {
    fn new(every: Duration, count: u64) -> Self {
        Ticker {
            every,
            count,
            n: 0,
            start: None,
            clock: Arc::default(),
        }
    }
}

impl Cog<Event> for Ticker {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.start = Some(ctx.now());
        ctx.every(self.every, 0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, fired: Fired, ctx: &mut Context<'_, Event, N>) {
        self.n += 1;
        self.clock.lock().unwrap().push(ctx.now() - self.start.unwrap());
        let id = ctx.next_event_id();
        ctx.emit(Event::new(id, json!({ "tick": self.n })));
        if self.n == self.count {
            if let Fired::Timer(id) = fired {
                ctx.cancel(id);
            }
            ctx.exhausted();
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ticker")
    }
}

/// A timeout: passes data on, and emits `{"quiet_after": line}` once no
/// datum came for `after`.
struct Quiet {
    after: Duration,
    timer: Option<TimerId>,
    last: u64,
}

impl Quiet {
    fn new(after: Duration) -> Self {
        Quiet {
            after,
            timer: None,
            last: 0,
        }
    }
}

impl Cog<Event> for Quiet {
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.last = e.line;
        let deadline = ctx.now() + self.after;
        match self.timer {
            Some(timer) if ctx.reschedule(timer, deadline) => {}
            _ => self.timer = Some(ctx.at(deadline, 0).unwrap()),
        }
        ctx.emit(e)
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        self.timer = None;
        let id = ctx.next_event_id();
        ctx.emit(Event::new(id, json!({ "quiet_after": self.last })));
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "quiet {:?}", self.after)
    }
}

/// A tumbling window: every `period` (and at finish) emits one event holding
/// every event it got since the last.
struct Window {
    period: Duration,
    n: u64,
    held: Vec<Value>,
}

impl Window {
    fn new(period: Duration) -> Self {
        Window {
            period,
            n: 0,
            held: Vec::new(),
        }
    }

    fn flush<N: Next<Event> + ?Sized>(&mut self, last: bool, ctx: &mut Context<'_, Event, N>) {
        let id = ctx.next_event_id();
        let events = std::mem::take(&mut self.held);
        ctx.emit(Event::new(
            id,
            json!({ "window": self.n, "final": last, "events": events }),
        ));
        self.n += 1;
    }
}

impl Cog<Event> for Window {
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.every(self.period, 0).unwrap();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.held.push(serde_json::to_value(&e).unwrap());
        ctx.discard(&e);
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        self.flush(false, ctx)
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        self.flush(true, ctx);
        Finish::Done
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "window {:?}", self.period)
    }
}

/// What a [`LinesOut`] saw of the clock.
#[derive(Default)]
struct Seen {
    /// The loop's reading at `start`.
    start: Option<Instant>,
    /// For each datum, the loop's reading from `start`, and the real time.
    samples: Vec<(Duration, Instant)>,
}

#[derive(Clone, Default)]
struct Probe(Arc<Mutex<Seen>>);

impl Probe {
    /// The loop's clock at each datum, from the start.
    fn offsets(&self) -> Vec<Duration> {
        self.0.lock().unwrap().samples.iter().map(|(d, _)| *d).collect()
    }
    fn samples(&self) -> Vec<(Duration, Instant)> {
        self.0.lock().unwrap().samples.clone()
    }
}

/// A drain writing each event as a JSON line to a file.
struct LinesOut {
    path: PathBuf,
    file: Option<File>,
    probe: Probe,
}

impl LinesOut {
    fn new(path: &Path, probe: Probe) -> Self {
        LinesOut {
            path: path.to_path_buf(),
            file: None,
            probe,
        }
    }
}

impl Cog<Event> for LinesOut {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.file = Some(File::create(&self.path).unwrap());
        self.probe.0.lock().unwrap().start = Some(ctx.now());
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        let mut line = serde_json::to_vec(&e).unwrap();
        line.push(b'\n');
        self.file.as_mut().unwrap().write_all(&line).unwrap();
        let mut seen = self.probe.0.lock().unwrap();
        let offset = ctx.now() - seen.start.unwrap();
        seen.samples.push((offset, Instant::now()));
        drop(seen);
        ctx.discard(&e);
    }
    fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("lines out")
    }
}

/// The train every test runs: a supply, a 150 ms quiet timeout, a window and
/// a drain into `out`.
fn lines_train<S: Cog<Event>>(
    supply: S,
    window: Duration,
    out: &Path,
    probe: &Probe,
) -> Train<Event, impl Chain<Event>> {
    Train::new("lines")
        .ids(Event::id_getter())
        .cog(supply)
        .cog(Quiet::new(Duration::from_millis(150)))
        .cog(Window::new(window))
        .cog(LinesOut::new(out, probe.clone()))
        .capturable()
}

fn quiet() -> Builder {
    Escapement::builder().graceful_signals(false)
}

/// Replays `capture` as fast as possible into the standard train, capturing
/// the replay to `again`; returns the drain's bytes and clock readings.
/// `supply` never runs: the replay swaps it for the capture.
fn replay<S: Cog<Event>>(
    capture: &Path,
    again: &Path,
    supply: S,
    window: Duration,
    out: &Path,
) -> (Vec<u8>, Vec<Duration>) {
    let probe = Probe::default();
    let mut esc = quiet()
        .replay(ReplayOptions::new(capture).strict(true))
        .capture(CaptureOptions::new(again))
        .build()
        .unwrap();
    esc.add_train(lines_train(supply, window, out, &probe));
    esc.run().unwrap();
    (fs::read(out).unwrap(), probe.offsets())
}

/// How many window events a drain's output holds.
fn windows(output: &[u8]) -> usize {
    String::from_utf8_lossy(output).matches("\"window\"").count()
}

// ---- warnings --------------------------------------------------------------

// ---- the tests -------------------------------------------------------------

#[test]
fn a_train_fed_by_a_socket_gives_the_same_bytes_at_the_same_clock_live_and_in_replay() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    // About 2.6 s of lines at uneven pauses, some two to a write, some
    // pauses longer than the quiet timeout.
    let client = thread::spawn(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        for i in 0..24u64 {
            let text = if i % 7 == 3 {
                format!("line {i}a\nline {i}b\n")
            } else {
                format!("line {i}\n")
            };
            stream.write_all(text.as_bytes()).unwrap();
            thread::sleep(Duration::from_millis([40, 90, 260, 60, 130][i as usize % 5]));
        }
    });
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        TcpLines::new(listener),
        Duration::from_secs(1),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);
    client.join().unwrap();
    let output = fs::read(path("live.out")).unwrap();
    assert!(windows(&output) >= 3, "the run spans two ticks and a final flush");

    let unused = || TcpLines::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let second = Duration::from_secs(1);
    let (replayed, offsets) = replay(
        &path("live.tbcap"),
        &path("replay.tbcap"),
        unused(),
        second,
        &path("replay.out"),
    );
    assert_eq!(String::from_utf8_lossy(&replayed), String::from_utf8_lossy(&output));
    assert_eq!(offsets, live.offsets(), "the drain read the same clock at each datum");
    match compare(path("live.tbcap"), path("replay.tbcap")).unwrap() {
        Comparison::Same { outputs } => assert_eq!(outputs, live.offsets().len() as u64),
        Comparison::Different(d) => panic!("{d}"),
    }

    // The replay's capture replays alike in turn.
    let (again, _) = replay(
        &path("replay.tbcap"),
        &path("again.tbcap"),
        unused(),
        second,
        &path("again.out"),
    );
    assert_eq!(again, output);
    assert!(matches!(
        compare(path("live.tbcap"), path("again.tbcap")).unwrap(),
        Comparison::Same { .. }
    ));
}

#[test]
fn a_train_tailing_a_real_file_gives_the_same_bytes_at_the_same_clock_live_and_in_replay() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let followed = path("app.log");
    File::create(&followed).unwrap();
    let writer = {
        let followed = followed.clone();
        thread::spawn(move || {
            let mut file = OpenOptions::new().append(true).open(followed).unwrap();
            for i in 0..30u64 {
                // Lines cut in two writes now and then: the tail sees halves.
                if i % 6 == 5 {
                    file.write_all(format!("entry {i} fir").as_bytes()).unwrap();
                    thread::sleep(Duration::from_millis(30));
                    file.write_all(b"st half\n").unwrap();
                } else {
                    file.write_all(format!("entry {i}\n").as_bytes()).unwrap();
                }
                thread::sleep(Duration::from_millis([20, 70, 240, 45][i as usize % 4]));
            }
            file.write_all(b"END\n").unwrap();
        })
    };
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    // Its 25 ms polls fall on the window's ticks: a datum and a tick at the
    // same instant.
    esc.add_train(lines_train(
        TailLines::new(&followed),
        Duration::from_secs(1),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);
    writer.join().unwrap();
    let output = fs::read(path("live.out")).unwrap();
    assert!(windows(&output) >= 3, "the run spans two ticks and a final flush");

    let unused = TailLines::new(&path("never-read"));
    let second = Duration::from_secs(1);
    let (replayed, offsets) = replay(
        &path("live.tbcap"),
        &path("replay.tbcap"),
        unused,
        second,
        &path("replay.out"),
    );
    assert_eq!(String::from_utf8_lossy(&replayed), String::from_utf8_lossy(&output));
    assert_eq!(offsets, live.offsets());
    assert!(matches!(
        compare(path("live.tbcap"), path("replay.tbcap")).unwrap(),
        Comparison::Same { .. }
    ));
}

#[test]
fn a_supply_ticking_on_the_window_s_beat_replays_alike() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    // Every tenth tick falls on a window tick: which fired first live is in
    // the capture.
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_millis(20), 60),
        Duration::from_millis(200),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);
    let output = fs::read(path("live.out")).unwrap();

    let unused = Ticker::new(Duration::from_secs(3600), 1);
    let window = Duration::from_millis(200);
    let (replayed, offsets) = replay(
        &path("live.tbcap"),
        &path("replay.tbcap"),
        unused,
        window,
        &path("replay.out"),
    );
    assert_eq!(String::from_utf8_lossy(&replayed), String::from_utf8_lossy(&output));
    assert_eq!(offsets, live.offsets());
}

#[test]
fn a_paced_replay_never_runs_ahead_of_the_recorded_clock() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_millis(50), 16),
        Duration::from_millis(300),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);

    let speed = 4.0;
    let paced = Probe::default();
    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")).pace(Pace::Recorded(speed)))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_secs(3600), 1),
        Duration::from_millis(300),
        &path("paced.out"),
        &paced,
    ));
    let began = Instant::now();
    esc.run().unwrap();
    assert_eq!(
        fs::read(path("paced.out")).unwrap(),
        fs::read(path("live.out")).unwrap()
    );
    let samples = paced.samples();
    assert_eq!(samples.len(), live.offsets().len());
    for (recorded, real) in samples {
        assert!(
            real - began >= recorded.div_f64(speed),
            "a datum recorded at {recorded:?} reached the drain {:?} into a replay at {speed}x",
            real - began
        );
    }
}

#[test]
fn records_hold_the_datum_its_id_its_supply_and_the_clock() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("live.tbcap");
    let probe = Probe::default();
    let ticker = Ticker::new(Duration::from_millis(10), 5);
    let clock = Arc::clone(&ticker.clock);
    let mut esc = quiet().capture(CaptureOptions::new(&capture)).build().unwrap();
    esc.add_train(lines_train(
        ticker,
        Duration::from_secs(60),
        &dir.path().join("out"),
        &probe,
    ));
    esc.run().unwrap();
    drop(esc);

    let mut reader = CaptureReader::open(&capture).unwrap();
    let mut entries = Vec::new();
    while let Some(entry) = reader.next().unwrap() {
        entries.push(entry);
    }
    let inputs: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Input(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(inputs.len(), 5);
    for (i, datum) in inputs.iter().enumerate() {
        let event: Event = datum.decode().unwrap();
        assert_eq!(*event.value(), json!({ "tick": i + 1 }));
        assert_eq!((datum.id, datum.train.as_str()), (Some(event.id), "lines"));
        assert_eq!((datum.cog, datum.name.as_str()), (0, "ticker"));
        assert_eq!(datum.at, clock.lock().unwrap()[i], "the clock the supply read");
    }
    assert_eq!(inputs[4].id, Some(EventId(5)));
    let outputs: Vec<_> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Output(d) => Some((d.cog, d.name.as_str(), d.at)),
            _ => None,
        })
        .collect();
    assert_eq!(outputs.len(), probe.offsets().len());
    assert!(outputs
        .iter()
        .zip(probe.offsets())
        .all(|(&(cog, name, at), offset)| (cog, name, at) == (3, "lines out", offset)));
    // The window's last flush comes after the loop began to finish.
    let finish = entries.iter().position(|e| matches!(e, Entry::Finish(_))).unwrap();
    assert!(entries[finish + 1..].iter().all(|e| matches!(e, Entry::Output(_))));
    assert_eq!(entries.len() - finish - 1, 1);
    let trains: Vec<_> = reader.trains().collect();
    assert_eq!(trains.len(), 1);
    let texts: Vec<_> = trains[0].cogs.iter().map(|c| (c.role, c.text.as_str())).collect();
    assert_eq!(
        texts,
        [
            (Role::Supply, "ticker"),
            (Role::Step, "quiet 150ms"),
            (Role::Step, "window 60s"),
            (Role::Drain, "lines out")
        ]
    );
    assert_eq!(trains[0].fingerprint.len(), 16);
    assert!(reader.written_by().unwrap().starts_with("tourbillon "));
}

#[test]
fn a_fingerprint_mismatch_warns_by_default_and_fails_when_strict() {
    let _g = exclusive();
    keep_warnings();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let probe = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_millis(15), 12),
        Duration::from_millis(100),
        &path("live.out"),
        &probe,
    ));
    esc.run().unwrap();
    drop(esc);

    // The window is twice as long in the train replayed.
    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")))
        .capture(CaptureOptions::new(path("loose.tbcap")))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_secs(1), 1),
        Duration::from_millis(200),
        &path("loose.out"),
        &probe,
    ));
    esc.run().unwrap();
    drop(esc);
    let warnings = warnings_about(&path("live.tbcap"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("cog 3 was step `window 100ms`, is step `window 200ms`"),
        "{}",
        warnings[0]
    );
    match compare(path("live.tbcap"), path("loose.tbcap")).unwrap() {
        Comparison::Different(d) => assert_eq!((d.train.as_str(), d.drain), ("lines", 3)),
        same => panic!("a longer window gave the same output: {same:?}"),
    }

    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")).strict(true))
        .build()
        .unwrap();
    esc.add_train(lines_train(
        Ticker::new(Duration::from_secs(1), 1),
        Duration::from_millis(200),
        &path("strict.out"),
        &probe,
    ));
    match esc.run() {
        Err(Error::Capture(CaptureError::Mismatch { train, reason, .. })) => {
            assert_eq!(train, "lines");
            assert!(reason.contains("window 200ms"), "{reason}");
        }
        other => panic!("expected a mismatch error, got {other:?}"),
    }
    assert!(!path("strict.out").exists(), "no cog started");
}

/// A supply that emits five events, then five more once a byte arrives on
/// its socket.
struct Gate {
    socket: UnixStream,
    sent: u64,
}

impl Gate {
    fn emit_five<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        for _ in 0..5 {
            self.sent += 1;
            let id = ctx.next_event_id();
            ctx.emit(Event::new(id, json!({ "n": self.sent })));
        }
    }
}

impl Cog<Event> for Gate {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.socket.set_nonblocking(true).unwrap();
        ctx.register(&self.socket, Interest::READABLE, 1).unwrap();
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if key == 0 {
            return self.emit_five(ctx);
        }
        let mut byte = [0];
        if let Ok(1) = self.socket.read(&mut byte) {
            self.emit_five(ctx);
            ctx.exhausted();
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
}

/// Where each frame of a capture starts, and where the file ends.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = vec![24];
    while let Some(&at) = starts.last().filter(|&&at| at < bytes.len()) {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        starts.push(at + 16 + len);
    }
    starts
}

fn read_all(path: &Path) -> Result<Vec<Entry>, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let mut entries = Vec::new();
    while let Some(entry) = reader.next()? {
        entries.push(entry);
    }
    Ok(entries)
}

#[test]
fn a_capture_is_readable_while_written_and_a_torn_tail_is_no_error() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("live.tbcap");
    let (gate, go) = UnixStream::pair().unwrap();
    // Opens the gate however this test ends, so the run always ends too.
    struct Opener(UnixStream);
    impl Drop for Opener {
        fn drop(&mut self) {
            let _ = self.0.write_all(b"g");
        }
    }
    let go = Opener(go);
    let run = {
        let capture = capture.clone();
        let out = dir.path().join("out");
        thread::spawn(move || {
            let mut esc = quiet().capture(CaptureOptions::new(capture)).build().unwrap();
            esc.add_train(
                Train::new("gated")
                    .ids(Event::id_getter())
                    .cog(Gate { socket: gate, sent: 0 })
                    .cog(LinesOut::new(&out, Probe::default()))
                    .capturable(),
            );
            esc.run().unwrap();
        })
    };

    // The first five are readable while the run waits for the gate.
    let waited = Instant::now();
    while !capture.exists() {
        assert!(waited.elapsed() < Duration::from_secs(30), "no capture appeared");
        thread::sleep(Duration::from_millis(2));
    }
    let mut reader = CaptureReader::open(&capture).unwrap();
    let mut entries = Vec::new();
    while entries.len() < 10 {
        match reader.next().unwrap() {
            Some(entry) => entries.push(entry),
            None => {
                assert!(waited.elapsed() < Duration::from_secs(30), "only {entries:?} appeared");
                thread::sleep(Duration::from_millis(2));
            }
        }
    }
    assert!(!run.is_finished());
    assert_eq!(reader.next().unwrap(), None, "nothing more before the gate opens");
    drop(go);
    run.join().unwrap();
    while let Some(entry) = reader.next().unwrap() {
        entries.push(entry);
    }
    let count = |input: bool| {
        entries
            .iter()
            .filter(|e| matches!((e, input), (Entry::Input(_), true) | (Entry::Output(_), false)))
            .count()
    };
    assert_eq!((count(true), count(false)), (10, 10));
    assert!(matches!(entries.last(), Some(Entry::Finish(_))));
    assert_eq!(read_all(&capture).unwrap(), entries);

    // Cut anywhere in its last three records, it reads as what is whole.
    let bytes = fs::read(&capture).unwrap();
    let starts = frame_starts(&bytes);
    assert_eq!(*starts.last().unwrap(), bytes.len());
    let first_entry = starts.len() - 1 - entries.len();
    let torn = dir.path().join("torn.tbcap");
    for cut in starts[starts.len() - 4]..bytes.len() {
        fs::write(&torn, &bytes[..cut]).unwrap();
        let whole = starts.iter().filter(|&&end| end <= cut).count() - 1 - first_entry;
        assert_eq!(read_all(&torn).unwrap(), entries[..whole], "cut at {cut}");
    }

    // A damaged record with whole ones after it is an error naming it.
    let third = starts[first_entry + 2];
    let mut damaged = bytes.clone();
    damaged[third + 20] ^= 0x01;
    fs::write(&torn, &damaged).unwrap();
    match read_all(&torn) {
        Err(CaptureError::Corrupt { path, offset, .. }) => assert_eq!((path, offset), (torn.clone(), third as u64)),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_datum_of_another_type_is_an_error_naming_its_record() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("numbers.tbcap");
    let mut esc = quiet().capture(CaptureOptions::new(&capture)).build().unwrap();
    esc.add_train(Train::new("numbers").cog(from_iter(1..=3u64)).capturable());
    esc.run().unwrap();
    drop(esc);
    let first = read_all(&capture)
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            Entry::Input(d) => Some(d),
            _ => None,
        })
        .unwrap();

    let mut esc = quiet().replay(ReplayOptions::new(&capture)).build().unwrap();
    esc.add_train(Train::new("numbers").cog(from_iter(["x".to_string()])).capturable());
    match esc.run() {
        Err(Error::Capture(CaptureError::Decode { path, seq, .. })) => assert_eq!((path, seq), (capture, first.seq)),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_replay_may_not_capture_over_its_own_capture() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("run.tbcap");
    drop(quiet().capture(CaptureOptions::new(&capture)).build().unwrap());
    let before = fs::read(&capture).unwrap();
    let err = quiet()
        .replay(ReplayOptions::new(&capture))
        .capture(CaptureOptions::new(&capture))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Capture(CaptureError::SameFile { .. })), "{err}");
    assert_eq!(fs::read(&capture).unwrap(), before);
}

#[test]
fn a_timer_reads_the_loop_s_clock_at_its_deadline_and_the_clock_never_goes_back() {
    let _g = exclusive();
    let mut esc = quiet().build().unwrap();
    let readings = Arc::new(Mutex::new(Vec::new()));
    let base = esc.core().now();
    for ms in [30u64, 10, 20, 10] {
        let deadline = base + Duration::from_millis(ms);
        let readings = Arc::clone(&readings);
        esc.core()
            .at(deadline, move |core| {
                readings.lock().unwrap().push((deadline, core.now()));
                // Immediate work runs at the turn's time: not before the
                // deadline of a timer that already fired.
                let readings = Arc::clone(&readings);
                core.enqueue(move |core| readings.lock().unwrap().push((deadline, core.now())))
                    .unwrap();
            })
            .unwrap();
    }
    esc.core()
        .after(Duration::from_millis(40), |core| core.finish())
        .unwrap();
    esc.run().unwrap();
    let readings = readings.lock().unwrap();
    assert_eq!(readings.len(), 8);
    let mut last = base;
    for (i, &(deadline, now)) in readings.iter().enumerate() {
        assert!(now >= last, "reading {i} went back");
        last = now;
        // Timer callbacks come first in a turn, so a reading at exactly the
        // deadline is the timer's own; the immediate reads at or after it.
        assert!(now >= deadline, "reading {i} is before its timer's deadline");
    }
    let at_deadline: Vec<u64> = readings
        .iter()
        .filter(|(deadline, now)| deadline == now)
        .map(|(deadline, _)| (*deadline - base).as_millis() as u64)
        .collect();
    assert_eq!(at_deadline, [10, 10, 20, 30], "each timer read its own deadline");
}

#[test]
fn a_train_built_at_run_time_is_captured_and_replayed_like_a_static_one() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let train = |supply: Box<dyn tourbillon::DynCog<Event>>, out: &Path, probe: &Probe| {
        let mut train = Train::dynamic("lines").ids(Event::id_getter());
        train.push(supply);
        train.push(Box::new(Quiet::new(Duration::from_millis(30))));
        train.push(Box::new(Window::new(Duration::from_millis(100))));
        train.push(Box::new(LinesOut::new(out, probe.clone())));
        train.capturable()
    };
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(train(
        Box::new(Ticker::new(Duration::from_millis(7), 50)),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);

    let replayed = Probe::default();
    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")).strict(true))
        .capture(CaptureOptions::new(path("replay.tbcap")))
        .build()
        .unwrap();
    esc.add_train(train(
        Box::new(Ticker::new(Duration::from_secs(3600), 1)),
        &path("replay.out"),
        &replayed,
    ));
    assert!(esc.listing().contains("supply  ticker"), "{}", esc.listing());
    esc.run().unwrap();
    assert_eq!(
        fs::read(path("replay.out")).unwrap(),
        fs::read(path("live.out")).unwrap()
    );
    assert_eq!(replayed.offsets(), live.offsets());
    match compare(path("live.tbcap"), path("replay.tbcap")).unwrap() {
        Comparison::Same { outputs } => assert_eq!(outputs, live.offsets().len() as u64),
        Comparison::Different(d) => panic!("{d}"),
    }
}

/// Passes data on, and keeps the loop busy: it re-queues itself on every
/// turn until the escapement finishes.
struct Spinner;

impl Cog<Event> for Spinner {
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        // Refused once this cog got `finish`: then it stops.
        let _ = ctx.enqueue(0);
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
}

#[test]
fn a_cog_that_keeps_the_loop_busy_does_not_stall_a_replay() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let train = |supply: Ticker, out: &Path, probe: &Probe| {
        Train::new("busy")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Spinner)
            .cog(Window::new(Duration::from_millis(50)))
            .cog(LinesOut::new(out, probe.clone()))
            .capturable()
    };
    let live = Probe::default();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    esc.add_train(train(
        Ticker::new(Duration::from_millis(10), 20),
        &path("live.out"),
        &live,
    ));
    esc.run().unwrap();
    drop(esc);

    let replayed = Probe::default();
    let mut esc = quiet().replay(ReplayOptions::new(path("live.tbcap"))).build().unwrap();
    esc.add_train(train(
        Ticker::new(Duration::from_secs(3600), 1),
        &path("replay.out"),
        &replayed,
    ));
    // Should virtual time stand still, this ends the replay early.
    let remote = esc.core().remote();
    thread::spawn(move || {
        thread::sleep(Duration::from_secs(30));
        let _ = remote.send(|core| core.finish());
    });
    esc.run().unwrap();
    assert_eq!(
        fs::read(path("replay.out")).unwrap(),
        fs::read(path("live.out")).unwrap()
    );
    assert_eq!(replayed.offsets(), live.offsets());
}

/// A graph: a ticking supply read by two trains, each with its own drain;
/// `odd_only` drops the even ticks on the second branch.
fn graph(esc: &mut Escapement, supply: Box<dyn tourbillon::DynCog<Event>>, dir: &Path, odd_only: bool) {
    let mut src = Train::dynamic("src").ids(Event::id_getter());
    src.push(supply);
    esc.add_train(src.capturable());
    let mut all = Train::dynamic("all").ids(Event::id_getter()).input("src");
    all.push(Box::new(LinesOut::new(&dir.join("all.out"), Probe::default())));
    esc.add_train(all.capturable());
    let mut some = Train::dynamic("some").ids(Event::id_getter()).input("src");
    let mut n = 0u64;
    some.push(Box::new(move |e: Event| {
        n += 1;
        (!odd_only || n % 2 == 1).then_some(e)
    }));
    some.push(Box::new(LinesOut::new(&dir.join("some.out"), Probe::default())));
    esc.add_train(some.capturable());
}

#[test]
fn a_graph_is_captured_and_replayed_and_compared_drain_by_drain() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let live = tempfile::tempdir().unwrap();
    let mut esc = quiet()
        .capture(CaptureOptions::new(path("live.tbcap")))
        .build()
        .unwrap();
    graph(
        &mut esc,
        Box::new(Ticker::new(Duration::from_millis(3), 40)),
        live.path(),
        false,
    );
    esc.run().unwrap();
    drop(esc);

    // The same graph again: every drain the same.
    let again = tempfile::tempdir().unwrap();
    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")).strict(true))
        .capture(CaptureOptions::new(path("same.tbcap")))
        .build()
        .unwrap();
    graph(
        &mut esc,
        Box::new(Ticker::new(Duration::from_secs(3600), 1)),
        again.path(),
        false,
    );
    esc.run().unwrap();
    drop(esc);
    for out in ["all.out", "some.out"] {
        let bytes = fs::read(live.path().join(out)).unwrap();
        assert_eq!(fs::read(again.path().join(out)).unwrap(), bytes, "{out}");
        assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 40, "{out}");
    }
    let report = tourbillon::capture::compare_drains(path("live.tbcap"), path("same.tbcap")).unwrap();
    let lines: Vec<String> = report.iter().map(|d| d.to_string()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("same       train all drain 1 (") && lines[0].ends_with("): 40 data"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("same       train some drain 2 ("), "{lines:?}");

    // One branch changed: that drain differs, the other is the same.
    let changed = tempfile::tempdir().unwrap();
    let mut esc = quiet()
        .replay(ReplayOptions::new(path("live.tbcap")))
        .capture(CaptureOptions::new(path("changed.tbcap")))
        .build()
        .unwrap();
    graph(
        &mut esc,
        Box::new(Ticker::new(Duration::from_secs(3600), 1)),
        changed.path(),
        true,
    );
    esc.run().unwrap();
    let report = tourbillon::capture::compare_drains(path("live.tbcap"), path("changed.tbcap")).unwrap();
    assert!(report[0].difference.is_none(), "{}", report[0]);
    let d = &report[1];
    assert_eq!((d.train.as_str(), d.left, d.right), ("some", 40, 20));
    assert_eq!(
        d.difference.as_ref().map(|x| x.index),
        Some(1),
        "the second datum is the first gone"
    );
    assert!(d.to_string().starts_with("different  train some drain 2 ("), "{d}");
    assert!(matches!(
        compare(path("live.tbcap"), path("changed.tbcap")).unwrap(),
        Comparison::Different(_)
    ));
}
