//! The tail against the descriptor limit, in a real `tourbillon` process
//! started with a low `ulimit -n`: more files than descriptors, files that
//! grow and rotate after they were closed for the limit, and directory
//! listings that fail with EMFILE.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use tourbillon_cogs::supply::tail::saved_positions;

mod common;

const BIN: &str = env!("CARGO_BIN_EXE_tourbillon");

/// Runs `tourbillon run cfg.toml` in `dir` under `ulimit -n nofile`, its
/// stdout into `stdout`.
fn spawn(dir: &Path, nofile: u32, stdout: &str) -> Reap {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" run cfg.toml >{stdout}"))
        .arg(BIN)
        .current_dir(dir)
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("TOURBILLON") {
            c.env_remove(k);
        }
    }
    Reap(Some(c.spawn().unwrap()))
}

/// Kills a child that a failed assertion left running.
struct Reap(Option<Child>);

impl Reap {
    fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sends a signal to a process this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// SIGTERM, then the exit status and how long it took.
    fn terminate(mut self) -> (ExitStatus, Duration) {
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        let mut child = self.0.take().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("still running 20 s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn line(file: usize, n: usize) -> String {
    format!("f{file:03}-{n:05}")
}

/// How many times each line was written to `path`.
fn counts(path: &Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for l in std::fs::read_to_string(path).unwrap_or_default().lines() {
        *seen.entry(l.to_owned()).or_default() += 1;
    }
    seen
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(dir: &Path, tail: &str, drain: &str) {
    std::fs::write(
        dir.join("cfg.toml"),
        format!(
            "[log]\ntarget = \"file\"\nfile = \"tourbillon.log\"\nlevel = \"info\"\n[trains.main]\ncogs = [\n  {{ kind = \
             \"tail\", include = [\"logs/*.log\"], {tail} }},\n  {drain},\n]\n"
        ),
    )
    .unwrap();
}

#[test]
fn more_files_than_descriptors_are_all_read_once_and_reopened_when_they_grow_or_rotate() {
    const FILES: usize = 300;
    const LINES: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("logs")).unwrap();
    let path = |f: usize| d.join(format!("logs/f{f:03}.log"));
    for f in 0..FILES {
        append(&path(f), &(0..LINES).map(|n| line(f, n) + "\n").collect::<String>());
    }
    // 64 descriptors for the process: the tail may hold half of them (the
    // default), the file drain and the checkpoint need theirs.
    config(
        d,
        "checkpoint_dir = \"state\", checkpoint_interval_ms = 100",
        "{ kind = \"file\", path = \"out.txt\" }",
    );
    let child = spawn(d, 64, "/dev/null");
    let out = d.join("out.txt");
    let total = |n: usize| {
        let out = out.clone();
        move || counts(&out).values().sum::<usize>() >= n
    };
    wait_for("every first line", Duration::from_secs(20), total(FILES * LINES));

    // Most files are closed by now: each grows by a line.
    for f in 0..FILES {
        append(&path(f), &(line(f, LINES) + "\n"));
    }
    wait_for(
        "every appended line",
        Duration::from_secs(20),
        total(FILES * (LINES + 1)),
    );

    // One closed file grows and is rotated away while the process is
    // stopped: it is found by inode and read to its end, then its
    // successor from its start.
    child.signal(libc::SIGSTOP);
    append(&path(5), &(line(5, LINES + 1) + "\n"));
    std::fs::rename(path(5), d.join("logs/f005.log.1")).unwrap();
    append(&path(5), "f005-new\n");
    child.signal(libc::SIGCONT);
    wait_for(
        "the rotated file's last line and its successor",
        Duration::from_secs(20),
        || {
            let c = counts(&d.join("out.txt"));
            c.contains_key(&line(5, LINES + 1)) && c.contains_key("f005-new")
        },
    );

    let (status, took) = child.terminate();
    let log = std::fs::read_to_string(d.join("tourbillon.log")).unwrap_or_default();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");

    let seen = counts(&d.join("out.txt"));
    let mut expected: Vec<String> = (0..FILES).flat_map(|f| (0..=LINES).map(move |n| line(f, n))).collect();
    expected.push(line(5, LINES + 1));
    expected.push("f005-new".into());
    let missing: Vec<&String> = expected.iter().filter(|l| !seen.contains_key(*l)).collect();
    let repeated: Vec<(&String, &usize)> = seen.iter().filter(|(_, &n)| n > 1).collect();
    let unexpected = seen.len() + missing.len() - expected.len();
    println!(
        "{} lines expected: {} missing, {} repeated, {unexpected} unexpected; SIGTERM took {took:?}",
        expected.len(),
        missing.len(),
        repeated.len()
    );
    assert!(missing.is_empty(), "missing: {missing:?}\nlog:\n{log}");
    assert!(repeated.is_empty(), "repeated: {repeated:?}");
    assert_eq!(unexpected, 0);
    assert!(!log.contains("cannot open"), "{log}");

    // The checkpoint got its descriptors too: every file's end is saved.
    let positions = saved_positions(d.join("state")).unwrap();
    let at_end = positions.iter().filter(|p| p.line == LINES as u64 + 1).count();
    assert!(
        at_end >= FILES - 1,
        "{at_end} of {FILES} positions at the end: {positions:?}"
    );
}

#[test]
fn a_directory_listing_failing_with_emfile_declares_nothing_rotated_and_reads_nothing_twice() {
    const FILES: usize = 100;
    const LINES: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("logs")).unwrap();
    let path = |f: usize| d.join(format!("logs/f{f:03}.log"));
    for f in 0..FILES {
        append(&path(f), &(0..LINES).map(|n| line(f, n) + "\n").collect::<String>());
    }
    // Allowed more files than the process may open: the tail takes every
    // descriptor, so its rescans (every 50 ms, to retry the opens) cannot
    // list the directory. Lines go to stdout, open before it starts.
    config(
        d,
        "max_open_files = 1000, checkpoint_interval_ms = 50, rotate_wait_ms = 100",
        "{ kind = \"stdout\" }",
    );
    let child = spawn(d, 40, "out.txt");
    let out = d.join("out.txt");
    let log_has = |what: &str| {
        std::fs::read_to_string(d.join("tourbillon.log"))
            .unwrap_or_default()
            .contains(what)
    };
    wait_for("a failed listing", Duration::from_secs(10), || {
        log_has("cannot look at")
    });
    // Files the tail opened: those whose lines came out.
    let opened = || -> Vec<usize> {
        let c = counts(&out);
        (0..FILES).filter(|&f| c.contains_key(&line(f, 0))).collect()
    };
    wait_for("the opened files' lines", Duration::from_secs(10), || {
        let c = counts(&out);
        let o = opened();
        !o.is_empty() && o.iter().all(|&f| (0..LINES).all(|n| c.contains_key(&line(f, n))))
    });
    // Many failed rescans later (a rotation would be closed after 100 ms,
    // and its file read again once a listing works), each file grows.
    std::thread::sleep(Duration::from_millis(1500));
    let opened = opened();
    for f in 0..FILES {
        append(&path(f), &(line(f, LINES) + "\n"));
    }
    wait_for(
        "the appended lines of the opened files",
        Duration::from_secs(10),
        || {
            let c = counts(&out);
            opened.iter().all(|&f| c.contains_key(&line(f, LINES)))
        },
    );
    std::thread::sleep(Duration::from_millis(300));

    let (status, took) = child.terminate();
    let log = std::fs::read_to_string(d.join("tourbillon.log")).unwrap_or_default();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");
    let seen = counts(&out);
    let repeated: Vec<(&String, &usize)> = seen.iter().filter(|(_, &n)| n > 1).collect();
    let failed_looks = log.lines().filter(|l| l.contains("cannot look at")).count();
    println!(
        "{} of {FILES} files opened under the limit, {} lines out, {} repeated; {failed_looks} lines about failed \
         looks; SIGTERM took {took:?}",
        opened.len(),
        seen.values().sum::<usize>(),
        repeated.len()
    );
    assert!(
        opened.len() >= 5 && opened.len() < FILES,
        "{} files opened: the limit was not what the test needs",
        opened.len()
    );
    assert!(repeated.is_empty(), "read twice: {repeated:?}");
    for &f in &opened {
        for n in 0..=LINES {
            assert_eq!(seen.get(&line(f, n)), Some(&1), "{}", line(f, n));
        }
    }
    assert!(!log.contains("rotated away"), "{log}");
    assert!(log.contains("Too many open files"), "{log}");
    // Throttled: the rescans failed some 30 times, one line per 10 s.
    assert!(failed_looks <= 2, "{log}");
}

// ---- in process, with a small max_open_files --------------------------------

mod budget {
    use std::collections::HashSet;
    use std::sync::{mpsc, Arc, Mutex};

    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use tourbillon::{Cog, Context, Escapement, Event, Exit, Next, Remote, Role, Train};
    use tourbillon_cogs::supply::tail::{Tail, TailSettings, TailStats};

    use super::*;

    use crate::common::exclusive;

    /// Records the lines that reach it and reports them done.
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl Cog<Event> for Collect {
        fn role(&self) -> Role {
            Role::Drain
        }
        fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&e.raw).into_owned());
            ctx.discard(&e);
        }
    }

    struct Running {
        remote: Remote,
        seen: Arc<Mutex<Vec<String>>>,
        stats: TailStats,
        thread: Option<std::thread::JoinHandle<Exit>>,
    }

    impl Running {
        fn start(settings: TailSettings, inotify: bool) -> Running {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let out = Arc::clone(&seen);
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                let mut esc = Escapement::builder()
                    .graceful_signals(false)
                    .inotify(inotify)
                    .finish_deadline(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let tail = Tail::new(settings).unwrap();
                tx.send((esc.core().remote(), tail.stats())).unwrap();
                esc.add_train(Train::new("t").ids(Event::id_getter()).cog(tail).cog(Collect(out)));
                esc.run().unwrap()
            });
            let (remote, stats) = rx.recv().unwrap();
            Running {
                remote,
                seen,
                stats,
                thread: Some(thread),
            }
        }

        fn has_all(&self, due: &HashSet<String>) -> bool {
            let seen = self.seen.lock().unwrap();
            let got: HashSet<&str> = seen.iter().map(String::as_str).collect();
            due.iter().all(|l| got.contains(l.as_str()))
        }

        fn wait_all(&self, due: &HashSet<String>) {
            let start = Instant::now();
            while !self.has_all(due) {
                if start.elapsed() > Duration::from_secs(10) {
                    let seen: HashSet<String> = self.seen.lock().unwrap().iter().cloned().collect();
                    let mut missing: Vec<&String> = due.difference(&seen).collect();
                    missing.sort();
                    panic!("timed out; missing {missing:?}; {:?}", self.stats);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn stop(mut self) -> Vec<String> {
            let _ = self.remote.send(|core| core.finish());
            let exit = self.thread.take().unwrap().join().unwrap();
            assert_eq!(exit, Exit::Clean);
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(t) = self.thread.take() {
                let _ = self.remote.send(|core| core.finish());
                let _ = t.join();
            }
        }
    }

    fn settings(dir: &Path, max_open_files: usize) -> TailSettings {
        TailSettings {
            include: vec![dir.join("*.log*").display().to_string()],
            max_open_files,
            poll_interval_ms: 20,
            checkpoint_interval_ms: 50,
            rotate_wait_ms: 200,
            ..TailSettings::default()
        }
    }

    #[test]
    fn max_open_files_is_checked() {
        let s = TailSettings {
            include: vec!["/x".into()],
            max_open_files: 0,
            ..TailSettings::default()
        };
        let e = Tail::new(s).unwrap_err().to_string();
        assert!(e.contains("max_open_files"), "{e}");
        assert!(TailSettings::default().max_open_files >= 1);
        assert!(TailSettings::default().max_open_files <= 1024);
    }

    #[test]
    fn two_descriptors_for_forty_files_each_line_once_and_closed_files_reopened() {
        let _one = exclusive();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut due = HashSet::new();
        for f in 0..40 {
            let text: String = (0..5).map(|n| line(f, n) + "\n").collect();
            append(&d.join(format!("f{f:03}.log")), &text);
            due.extend((0..5).map(|n| line(f, n)));
        }
        let run = Running::start(settings(d, 2), true);
        run.wait_all(&due);
        assert!(run.stats.open.get() <= 2, "{} open", run.stats.open.get());
        for f in (0..40).rev() {
            append(&d.join(format!("f{f:03}.log")), &(line(f, 5) + "\n"));
            due.insert(line(f, 5));
        }
        run.wait_all(&due);
        let (closed, reopened, open) = (
            run.stats.closed_for_limit.get(),
            run.stats.reopened.get(),
            run.stats.open.get(),
        );
        let seen = run.stop();
        let mut once = HashSet::new();
        for l in &seen {
            assert!(once.insert(l), "{l} arrived twice");
        }
        assert_eq!(once.len(), due.len());
        assert!(closed >= 38 + 38, "{closed} closed for the limit");
        assert!(reopened >= 38, "{reopened} reopened");
        assert!(open <= 2, "{open} open");
    }

    /// What happens to one of a few files.
    #[derive(Clone, Debug)]
    enum Action {
        /// Append lines to file `.0`.
        Write(usize, usize),
        /// Rename file `.0` to a name the pattern still matches.
        RotateKept(usize),
        /// Rename file `.0` to a name the pattern does not match.
        RotateAway(usize),
        /// Wait until the tail has caught up.
        Pause,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            5 => (0usize..5, 1usize..6).prop_map(|(f, n)| Action::Write(f, n)),
            1 => (0usize..5).prop_map(Action::RotateKept),
            1 => (0usize..5).prop_map(Action::RotateAway),
            1 => Just(Action::Pause),
        ]
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8)
    }

    proptest! {
        #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

        /// Files closed for the limit grow and rotate (to a name still
        /// followed, or out of reach of the pattern) in any order: no line
        /// is lost or read twice.
        #[test]
        fn with_one_or_two_descriptors_no_line_is_lost_or_repeated(
            actions in proptest::collection::vec(action(), 1..25),
            max in 1usize..3,
            polling in proptest::bool::weighted(0.25),
        ) {
            let _one = exclusive();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let path = |f: usize| d.join(format!("f{f:03}.log"));
            let mut due = HashSet::new();
            let mut next = 0;
            let mut rotated = 0;
            for f in 0..5 {
                append(&path(f), &(line(f, 0) + "\n"));
                due.insert(line(f, 0));
            }
            let run = Running::start(settings(d, max), !polling);
            // A file rotated away before the tail saw it is not its to read.
            run.wait_all(&due);
            for a in &actions {
                match *a {
                    Action::Write(f, n) => {
                        let text: String = (0..n).map(|_| { next += 1; line(f, next) + "\n" }).collect();
                        due.extend(text.lines().map(str::to_owned));
                        append(&path(f), &text);
                    }
                    Action::RotateKept(f) | Action::RotateAway(f) if path(f).exists() => {
                        if let Action::RotateAway(_) = a {
                            // A file renamed out of the pattern before the
                            // tail saw it is not its to read: let it see it.
                            run.wait_all(&due);
                        }
                        rotated += 1;
                        let to = match a {
                            Action::RotateKept(_) => d.join(format!("f{f:03}.log.{rotated}")),
                            _ => d.join(format!("f{f:03}.old{rotated}")),
                        };
                        fs::rename(path(f), to).unwrap();
                    }
                    Action::RotateKept(_) | Action::RotateAway(_) => {}
                    Action::Pause => run.wait_all(&due),
                }
            }
            run.wait_all(&due);
            prop_assert!(run.stats.open.get() <= max as u64);
            std::thread::sleep(Duration::from_millis(30));
            let seen = run.stop();
            let mut once = HashSet::new();
            for l in &seen {
                prop_assert!(once.insert(l.clone()), "{l} arrived twice");
                prop_assert!(due.contains(l), "{l} was never written");
            }
            prop_assert_eq!(once.len(), due.len());
        }
    }
}
