//! Running in production: relative paths against the start directory,
//! directories prepared for the user the daemon drops to.

use std::path::Path;
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

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sigterm(child: &mut Reap) {
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

#[test]
fn relative_paths_are_taken_from_the_start_directory_not_the_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.join("conf")).unwrap();
    std::fs::create_dir(d.join("logs")).unwrap();
    append(&d.join("logs/in.log"), "one\ntwo\n");
    std::fs::write(
        d.join("conf/t.toml"),
        format!(
            "[daemon]\nworkdir = {:?}\npidfile = \"run.pid\"\n\n[log]\ntarget = \"file\"\nfile = \"t.log\"\n\n\
             [trains.t]\ncogs = [\n  {{ kind = \"tail\", include = [\"logs/*.log\"], checkpoint_dir = \"state\" }},\n  \
             {{ kind = \"file\", path = \"out/lines.txt\", create_dirs = true }},\n]\n",
            elsewhere.path()
        ),
    )
    .unwrap();
    let mut child = Reap(
        tourbillon(d, &["run", "conf/t.toml"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_for("the lines in out/lines.txt under the start directory", || {
        read(&d.join("out/lines.txt")) == "one\ntwo\n"
    });
    assert!(d.join("run.pid").exists(), "the pidfile is under the start directory");
    assert!(d.join("t.log").exists(), "the log file is under the start directory");
    sigterm(&mut child);
    assert!(
        d.join("state").is_dir(),
        "the checkpoints are under the start directory"
    );
    let left: Vec<_> = std::fs::read_dir(elsewhere.path()).unwrap().collect();
    assert!(left.is_empty(), "nothing was written in the workdir: {left:?}");
}

#[test]
fn the_readme_quotes_the_shipped_unit_as_it_is() {
    let readme = include_str!("../../../README.md");
    let unit = include_str!("../../../dist/tourbillon.service");
    let at = readme.find("### Under systemd").expect("the systemd section");
    let start = at + readme[at..].find("```ini\n").expect("the unit in it") + "```ini\n".len();
    let end = start + readme[start..].find("```\n").unwrap();
    assert_eq!(
        &readme[start..end],
        unit,
        "README's unit differs from dist/tourbillon.service"
    );
    for line in [
        "Type=notify",
        "User=tourbillon",
        "RuntimeDirectory=tourbillon",
        "StateDirectory=tourbillon",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} in the unit");
    }
    assert!(unit.contains("ExecStart=/usr/local/bin/tourbillon run /etc/tourbillon/tourbillon.toml\n"));
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID\n"));
    assert!(unit.contains("WatchdogSec=30\n"));
}

#[test]
fn as_root_with_daemon_user_the_written_directories_are_the_user_s_and_checkpoints_survive() {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("as_root_with_daemon_user_...: skipped: not running as root (cannot drop to nobody)");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // nobody may go through, not write: only what tourbillon gives it.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    append(&d.join("in.log"), "a\nb\n");
    std::fs::set_permissions(d.join("in.log"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(
        d.join("t.toml"),
        "[daemon]\nuser = \"nobody\"\npidfile = \"run/t.pid\"\n\n[trains.t]\ncogs = [\n  \
         { kind = \"tail\", include = [\"in.log\"], checkpoint_dir = \"state/ckpt\", checkpoint_interval_ms = 50 },\n  \
         { kind = \"file\", path = \"out/lines.txt\" },\n]\n",
    )
    .unwrap();
    let start = || {
        Reap(
            tourbillon(d, &["run", "t.toml"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let out = d.join("out/lines.txt");
    let mut child = start();
    wait_for("the two lines", || read(&out) == "a\nb\n");
    std::thread::sleep(Duration::from_millis(200));
    sigterm(&mut child);
    // SAFETY: getpwnam's result is read at once.
    let nobody = unsafe { (*libc::getpwnam(c"nobody".as_ptr())).pw_uid };
    for sub in ["state", "state/ckpt", "out", "run"] {
        let owner = std::fs::metadata(d.join(sub)).unwrap().uid();
        assert_eq!(owner, nobody, "{sub} belongs to nobody");
    }
    append(&d.join("in.log"), "c\n");
    let mut child = start();
    wait_for("the third line", || read(&out).ends_with("c\n"));
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&mut child);
    assert_eq!(read(&out), "a\nb\nc\n", "the restart went on from the checkpoint");
}
