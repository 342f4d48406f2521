//! Helpers shared by the integration tests of every crate: the runtime's
//! (`tests/`), the cogs' (`cogs/tests/`) and the binary's (`cogs/cli/tests/`),
//! which include this file by path.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use tourbillon::{Cog, Context, Escapement, EventId, Finish, Fired, IdGetter, Next, Role};

/// An escapement for a test: signals left to the test harness, 10 s to finish.
pub fn test_escapement() -> Escapement {
    Escapement::builder()
        .graceful_signals(false)
        .finish_deadline(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The ids of numbers: the number itself.
pub fn number_ids() -> IdGetter<u64> {
    IdGetter::new(|n: &u64| Some(EventId(*n)))
}

/// One escapement per process: tests that build one take this first.
pub fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A shared, ordered record of what happened.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    pub fn push(&self, line: impl Into<String>) {
        self.0.lock().unwrap().push(line.into())
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub fn position(&self, line: &str) -> usize {
        self.lines()
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("`{line}` not in journal {:?}", self.lines()))
    }
}

/// A supply that emits `items` in batches on successive turns, then says it is exhausted.
pub struct VecSupply<D> {
    pub items: std::vec::IntoIter<D>,
    pub batch: usize,
    pub journal: Option<Journal>,
}

impl<D> VecSupply<D> {
    pub fn new(items: Vec<D>, batch: usize) -> Self {
        VecSupply {
            items: items.into_iter(),
            batch,
            journal: None,
        }
    }
}

impl<D: 'static> Cog<D> for VecSupply<D> {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<D> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        for _ in 0..self.batch {
            match self.items.next() {
                Some(d) => ctx.emit(d),
                None => {
                    ctx.exhausted();
                    return;
                }
            }
        }
        ctx.enqueue(0).unwrap();
    }
    fn process<N: Next<D> + ?Sized>(&mut self, d: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        if let Some(j) = &self.journal {
            j.push("supply:finish")
        }
        Finish::Done
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        if let Some(j) = &self.journal {
            j.push("supply:done")
        }
    }
}

/// A drain that records what reaches it and reports it done.
pub struct Collect<D> {
    pub name: &'static str,
    pub seen: Arc<Mutex<Vec<D>>>,
    pub journal: Journal,
}

impl<D: Clone + std::fmt::Debug + 'static> Cog<D> for Collect<D> {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<D> + ?Sized>(&mut self, d: D, ctx: &mut Context<'_, D, N>) {
        self.journal.push(format!("{}:data {:?}", self.name, d));
        self.seen.lock().unwrap().push(d.clone());
        ctx.discard(&d);
    }
    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, D, N>) {
        self.journal.push(format!("{}:event_done {}", self.name, id.0));
    }
    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        self.journal.push(format!("{}:finish", self.name));
        Finish::Done
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        self.journal.push(format!("{}:done", self.name));
    }
}

/// Warnings logged by the library, kept so tests can check them. Tests run
/// in parallel, so each looks only for its own paths.
static WARNINGS: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct KeepWarnings;

impl log::Log for KeepWarnings {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            WARNINGS.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

/// Starts keeping warnings; call before the library can warn.
pub fn keep_warnings() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&KeepWarnings).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
    });
}

/// The warnings kept so far that mention `path`.
pub fn warnings_about(path: &Path) -> Vec<String> {
    let path = path.display().to_string();
    WARNINGS
        .lock()
        .unwrap()
        .iter()
        .filter(|w| w.contains(&path))
        .cloned()
        .collect()
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The CPU time (user + system) a process has used so far, from /proc.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Makes `cmd`'s process start with at most `limit` file descriptors
/// (`ulimit -n`, soft and hard).
pub fn limit_descriptors(cmd: &mut Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Appends `text` to the file at `path`, creating it.
pub fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// Line `n` of file number `file` (`f003-00012`): what the tests at the
/// descriptor limit write and count.
pub fn numbered_line(file: usize, n: usize) -> String {
    format!("f{file:03}-{n:05}")
}

/// Polls `cond` every 10 ms for up to `secs`; panics with `what` if it never holds.
pub fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
