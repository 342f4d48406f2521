//! The tail against the descriptor limit, in a real `tourbillon` process
//! started with a low `ulimit -n`: more files than descriptors, files that
//! grow and rotate after they were closed for the limit, and directory
//! listings that fail with EMFILE.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use tourbillon_cogs::supply::tail::saved_positions;

mod common;
use common::{append, numbered_line, BIN};

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
        append(
            &path(f),
            &(0..LINES).map(|n| numbered_line(f, n) + "\n").collect::<String>(),
        );
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
        append(&path(f), &(numbered_line(f, LINES) + "\n"));
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
    append(&path(5), &(numbered_line(5, LINES + 1) + "\n"));
    std::fs::rename(path(5), d.join("logs/f005.log.1")).unwrap();
    append(&path(5), "f005-new\n");
    child.signal(libc::SIGCONT);
    wait_for(
        "the rotated file's last line and its successor",
        Duration::from_secs(20),
        || {
            let c = counts(&d.join("out.txt"));
            c.contains_key(&numbered_line(5, LINES + 1)) && c.contains_key("f005-new")
        },
    );

    let (status, took) = child.terminate();
    let log = std::fs::read_to_string(d.join("tourbillon.log")).unwrap_or_default();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(took < Duration::from_secs(10), "SIGTERM took {took:?}");

    let seen = counts(&d.join("out.txt"));
    let mut expected: Vec<String> = (0..FILES)
        .flat_map(|f| (0..=LINES).map(move |n| numbered_line(f, n)))
        .collect();
    expected.push(numbered_line(5, LINES + 1));
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
        append(
            &path(f),
            &(0..LINES).map(|n| numbered_line(f, n) + "\n").collect::<String>(),
        );
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
        (0..FILES).filter(|&f| c.contains_key(&numbered_line(f, 0))).collect()
    };
    wait_for("the opened files' lines", Duration::from_secs(10), || {
        let c = counts(&out);
        let o = opened();
        !o.is_empty()
            && o.iter()
                .all(|&f| (0..LINES).all(|n| c.contains_key(&numbered_line(f, n))))
    });
    // Many failed rescans later (a rotation would be closed after 100 ms,
    // and its file read again once a listing works), each file grows.
    std::thread::sleep(Duration::from_millis(1500));
    let opened = opened();
    for f in 0..FILES {
        append(&path(f), &(numbered_line(f, LINES) + "\n"));
    }
    wait_for(
        "the appended lines of the opened files",
        Duration::from_secs(10),
        || {
            let c = counts(&out);
            opened.iter().all(|&f| c.contains_key(&numbered_line(f, LINES)))
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
            assert_eq!(seen.get(&numbered_line(f, n)), Some(&1), "{}", numbered_line(f, n));
        }
    }
    assert!(!log.contains("rotated away"), "{log}");
    assert!(log.contains("Too many open files"), "{log}");
    // Throttled: the rescans failed some 30 times, one line per 10 s.
    assert!(failed_looks <= 2, "{log}");
}
