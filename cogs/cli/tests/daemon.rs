//! The `tourbillon` binary as a daemon, with real files, real signals and
//! real processes: following files, two trains, detach + pidfile + SIGTERM,
//! a second instance refused, SIGHUP reopen after logrotate's rename,
//! privilege drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{append, tourbillon};

/// Polls `cond` every 20 ms for up to 20 s; panics with `what` if it never holds.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: sends a signal to a process this test started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_default_follows_a_real_file_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.log");
    append(&input, "{\"n\":1}\n");
    let child = tourbillon(dir.path(), &["run", "--input", "app.log"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut next = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        serde_json::from_str::<serde_json::Value>(&l).expect("a JSON line")
    };
    assert_eq!(next()["n"], 1);
    append(&input, "{\"n\":2}\nnot json\n");
    assert_eq!(next()["n"], 2);
    assert_eq!(next()["message"], "not json");
    append(&input, "{\"n\":4}"); // no newline yet: held until finish
    std::thread::sleep(Duration::from_millis(100));
    signal(child.0.id() as i32, libc::SIGTERM);
    assert_eq!(next()["n"], 4, "the partial last line is flushed at finish");
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn two_trains_from_one_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("a.log"), "{\"x\":\"a1\"}\n{\"x\":\"a2\"}\n");
    append(&d.join("b.log"), "{\"x\":\"b1\"}\n");
    std::fs::write(
        d.join("two.toml"),
        "[trains.a]\ncogs = [\n  { kind = \"tail\", include = [\"a.log\"], batch = true },\n  { kind = \"json_decode\" },\n  \
         { kind = \"set\", fields = { train = \"a\" } },\n  { kind = \"json_encode\" },\n  { kind = \"file\", path = \"a.out\" },\n]\n\
         [trains.b]\ncogs = [\n  { kind = \"tail\", include = [\"b.log\"], batch = true },\n  { kind = \"json_decode\" },\n  \
         { kind = \"set\", fields = { train = \"b\" } },\n  { kind = \"json_encode\" },\n  { kind = \"file\", path = \"b.out\" },\n]\n",
    )
    .unwrap();
    let out = tourbillon(d, &["run", "two.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        read(&d.join("a.out")),
        "{\"x\":\"a1\",\"train\":\"a\"}\n{\"x\":\"a2\",\"train\":\"a\"}\n"
    );
    assert_eq!(read(&d.join("b.out")), "{\"x\":\"b1\",\"train\":\"b\"}\n");
}

/// A config that follows `in.log` into `out.jsonl`, with a `[daemon]` section.
fn follow_config(dir: &Path, daemon: &str) -> PathBuf {
    let p = dir.join("d.toml");
    std::fs::write(
        &p,
        format!(
            "[log]\ntarget = \"file\"\nfile = {log:?}\n[daemon]\n{daemon}\n[trains.main]\ncogs = [\n  \
             {{ kind = \"tail\", include = [{input:?}] }},\n  {{ kind = \"file\", path = {out:?} }},\n]\n",
            log = dir.join("tourbillon.log").display().to_string(),
            input = dir.join("in.log").display().to_string(),
            out = dir.join("out.jsonl").display().to_string(),
        ),
    )
    .unwrap();
    p
}

#[test]
fn detached_with_a_pidfile_refuses_a_second_instance_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pidfile = d.join("t.pid");
    append(&d.join("in.log"), "one\n");
    let cfg = follow_config(
        d,
        &format!("detach = true\npidfile = {:?}\n", pidfile.display().to_string()),
    );
    let cfg = cfg.to_str().unwrap();

    // The starter returns once the daemon is up, with status 0.
    let started = tourbillon(d, &["run", cfg]).output().unwrap();
    assert_eq!(
        started.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let pid: i32 = read(&pidfile).trim().parse().expect("the pidfile holds a pid");
    assert!(alive(pid));
    wait_for("the first line", || read(&d.join("out.jsonl")) == "one\n");

    // A second instance is refused, and says who holds the pidfile.
    let second = tourbillon(d, &["run", cfg]).output().unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains(&format!("another instance is running as pid {pid}")),
        "{err}"
    );
    assert!(alive(pid), "the first instance is untouched");

    append(&d.join("in.log"), "two\nthree\n");
    wait_for("more lines", || read(&d.join("out.jsonl")) == "one\ntwo\nthree\n");
    signal(pid, libc::SIGTERM);
    wait_for("the daemon to exit", || !alive(pid));
    assert!(!pidfile.exists(), "the pidfile is removed at exit");
    assert_eq!(read(&d.join("out.jsonl")), "one\ntwo\nthree\n");
    assert!(read(&d.join("tourbillon.log")).contains("running trains: main"));
}

#[test]
fn a_stale_pidfile_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pidfile = d.join("t.pid");
    std::fs::write(&pidfile, "2147483646\n").unwrap();
    append(&d.join("in.log"), "x\n");
    let cfg = follow_config(d, &format!("pidfile = {:?}\n", pidfile.display().to_string()));
    let mut child = Reap(tourbillon(d, &["run", cfg.to_str().unwrap()]).spawn().unwrap());
    let pid = child.0.id() as i32;
    wait_for("the pidfile to name the new process", || {
        read(&pidfile).trim() == pid.to_string()
    });
    wait_for("the loop to run", || {
        read(&d.join("tourbillon.log")).contains("running trains")
    });
    signal(pid, libc::SIGTERM);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    assert!(!pidfile.exists());
    assert!(read(&d.join("tourbillon.log")).contains("replacing a stale pidfile of pid 2147483646"));
}

#[test]
fn sighup_reopens_the_output_after_logrotate_renamed_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    append(&d.join("in.log"), "before\n");
    let cfg = follow_config(d, "");
    let mut child = Reap(tourbillon(d, &["run", cfg.to_str().unwrap()]).spawn().unwrap());
    let pid = child.0.id() as i32;
    let out = d.join("out.jsonl");
    wait_for("the first line", || read(&out) == "before\n");
    // SIGUSR1 (a stats report, when there is a stats cog) must not end it.
    signal(pid, libc::SIGUSR1);
    std::thread::sleep(Duration::from_millis(50));
    assert!(child.0.try_wait().unwrap().is_none(), "SIGUSR1 ended the process");
    std::fs::rename(&out, d.join("out.jsonl.1")).unwrap();
    std::fs::rename(d.join("tourbillon.log"), d.join("tourbillon.log.1")).unwrap();
    signal(pid, libc::SIGHUP);
    // The reopen happens on the loop; give the signal a moment before writing.
    wait_for("the reopened log file", || d.join("tourbillon.log").exists());
    append(&d.join("in.log"), "after\n");
    wait_for("the line after rotation in the new file", || read(&out) == "after\n");
    assert_eq!(read(&d.join("out.jsonl.1")), "before\n");
    signal(pid, libc::SIGTERM);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

#[test]
fn privileges_are_dropped_to_nobody_when_run_as_root() {
    // SAFETY: getuid has no failure mode.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("privileges_are_dropped_to_nobody_when_run_as_root: skipped, the test is not running as root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // nobody must be able to write here and read the input.
    std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    append(&d.join("in.log"), "x\n");
    let cfg = follow_config(d, "user = \"nobody\"\n");
    let mut child = Reap(tourbillon(d, &["run", cfg.to_str().unwrap()]).spawn().unwrap());
    let pid = child.0.id() as i32;
    let out = d.join("out.jsonl");
    wait_for("the line", || read(&out) == "x\n");
    wait_for("the drop", || {
        read(&d.join("tourbillon.log")).contains("running as uid")
    });
    let status = read(Path::new(&format!("/proc/{pid}/status")));
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap().to_owned();
    // SAFETY: getpwnam's result is read at once.
    let nobody = unsafe { (*libc::getpwnam(c"nobody".as_ptr())).pw_uid };
    let uids: Vec<u32> = uid_line
        .split_whitespace()
        .skip(1)
        .map(|u| u.parse().unwrap())
        .collect();
    assert_eq!(uids, vec![nobody; 4], "real, effective, saved and fs uid: {uid_line}");
    assert!(read(&d.join("tourbillon.log")).contains(&format!("running as uid {nobody}")));
    signal(pid, libc::SIGTERM);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

/// A program spec with one program, for the `program_server` cogs below.
const SPEC: &str =
    "name = \"t\"\n[programs.p]\noutputs = {}\nhooks = [\"mark\"]\n[hooks.mark]\nreference = \"set\"\nparams = { done = true }\n";

/// A config following `in.log` into `out.jsonl` with a tail checkpoint in
/// `checkpoint_dir`, and a program server journaling into `state_dir`.
fn stateful_config(dir: &Path, name: &str, daemon: &str, checkpoint_dir: &str, state_dir: &str) -> PathBuf {
    std::fs::write(dir.join("spec.toml"), SPEC).unwrap();
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "[log]\ntarget = \"file\"\nfile = {log:?}\n[daemon]\n{daemon}\n[trains.main]\ncogs = [\n  \
             {{ kind = \"tail\", include = [{input:?}], checkpoint_dir = {checkpoint_dir:?} }},\n  \
             {{ kind = \"file\", path = {out:?} }},\n]\n[trains.programs]\ncogs = [\n  \
             {{ kind = \"program_server\", listen = {listen:?}, spec = {spec:?}, state_dir = {state_dir:?} }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"stdout\" }},\n]\n",
            log = dir.join("tourbillon.log").display().to_string(),
            input = dir.join("in.log").display().to_string(),
            out = dir.join("out.jsonl").display().to_string(),
            listen = format!("unix:{}", dir.join("p.sock").display()),
            spec = dir.join("spec.toml").display().to_string(),
        ),
    )
    .unwrap();
    p
}

/// Every path under `dir` with its length, sorted.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut all = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            }
            all.push((e.path(), if meta.is_dir() { 0 } else { meta.len() }));
        }
    }
    all.sort();
    all
}

#[test]
fn check_and_train_work_on_the_config_of_a_running_instance_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ck, state) = (d.join("ck"), d.join("state"));
    stateful_config(
        d,
        "run.toml",
        "",
        &ck.display().to_string(),
        &state.display().to_string(),
    );
    append(&d.join("in.log"), "one\n");
    let child = tourbillon(d, &["run", "run.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    wait_for("the first line to be written", || read(&d.join("out.jsonl")) == "one\n");
    assert!(ck.join("lock").exists() && state.exists(), "{:?}", tree(d));
    let before = tree(d);
    let lock = read(&ck.join("lock"));

    let check = tourbillon(d, &["check", "run.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(
        check.status.code(),
        Some(0),
        "check of a running instance's config: {stderr}"
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("ok (2 trains, 5 cogs)"));
    let train = tourbillon(d, &["train", "run.toml"]).output().unwrap();
    assert_eq!(
        train.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    let listing = String::from_utf8_lossy(&train.stdout);
    assert!(
        listing.contains("supply tail") && listing.contains("checkpoint_dir"),
        "{listing}"
    );
    assert!(listing.contains("supply program_server"), "{listing}");
    let dot = tourbillon(d, &["train", "--dot", "run.toml"]).output().unwrap();
    assert_eq!(dot.status.code(), Some(0), "{}", String::from_utf8_lossy(&dot.stderr));
    assert_eq!(tree(d), before, "check and train changed nothing");
    assert_eq!(read(&ck.join("lock")), lock, "the lock file still names the instance");

    // The instance is unaffected: it still follows and checkpoints.
    append(&d.join("in.log"), "two\n");
    wait_for("the second line", || read(&d.join("out.jsonl")) == "one\ntwo\n");

    // A config whose directories do not exist yet: still nothing created.
    let (fresh_ck, fresh_state) = (d.join("fresh-ck"), d.join("fresh-state"));
    stateful_config(
        d,
        "fresh.toml",
        "",
        &fresh_ck.display().to_string(),
        &fresh_state.display().to_string(),
    );
    for args in [["check", "fresh.toml"], ["train", "fresh.toml"]] {
        let out = tourbillon(d, &args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!fresh_ck.exists(), "check/train created the checkpoint_dir");
    assert!(!fresh_state.exists(), "check/train created the state_dir");

    signal(child.0.id() as i32, libc::SIGTERM);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

#[test]
fn run_builds_its_cogs_once_with_paths_from_the_start_directory() {
    // Relative directories are taken from the directory `run` was started
    // in (issue 16), not from `daemon.workdir`: the cogs are built once,
    // and nothing lands in the working directory.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (caller, work) = (d.join("caller"), d.join("work"));
    std::fs::create_dir(&caller).unwrap();
    std::fs::create_dir(&work).unwrap();
    let cfg = stateful_config(
        d,
        "run.toml",
        &format!("workdir = {:?}\n", work.display().to_string()),
        "ck",
        "state",
    );
    append(&d.join("in.log"), "one\n");
    let child = tourbillon(&caller, &["run", cfg.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reap(child);
    wait_for("the first line to be written", || read(&d.join("out.jsonl")) == "one\n");
    assert!(caller.join("ck").join("lock").exists(), "{:?}", tree(&caller));
    assert!(caller.join("state").exists(), "{:?}", tree(&caller));
    signal(child.0.id() as i32, libc::SIGTERM);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    assert_eq!(tree(&work), [], "nothing is built in the working directory");
}
