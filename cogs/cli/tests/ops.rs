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

/// `tourbillon check t.toml` in `d`: its exit code and standard error.
fn check(d: &Path, config: &str) -> (Option<i32>, String) {
    std::fs::write(d.join("t.toml"), config).unwrap();
    let out = tourbillon(d, &["check", "t.toml"]).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn check_finds_users_and_groups_that_do_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let train = "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\" }]\n";
    let (code, err) = check(d, &format!("[daemon]\nuser = \"no-such-user-tb\"\n{train}"));
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  file t.toml: daemon.user: no such user `no-such-user-tb`\n"
    );
    let (code, err) = check(
        d,
        &format!("[daemon]\nuser = \"root\"\ngroup = \"no-such-group-tb\"\n{train}"),
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  file t.toml: daemon.group: no such group `no-such-group-tb`\n"
    );
}

#[test]
fn check_finds_missing_directories_and_unreadable_credentials_without_creating_anything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let publish = if cfg!(feature = "nats") {
        "\n[trains.v]\ncogs = [{ kind = \"stdin\" }, { kind = \"jetstream_publish\", subject = \"s\", \
         auth = { credentials_file = \"none.creds\" } }]\n"
    } else {
        ""
    };
    let config = format!(
        "[daemon]\npidfile = \"run/t.pid\"\n\n[trains.t]\ncogs = [\n  \
         {{ kind = \"tail\", include = [\"in.log\"], checkpoint_dir = \"a/b/ckpt\" }},\n  \
         {{ kind = \"file\", path = \"out/x.jsonl\" }},\n]\n\n[trains.u]\ncogs = [\n  {{ kind = \"stdin\" }},\n  \
         {{ kind = \"file\", path = \"made/x.jsonl\", create_dirs = true }}\n]\n{publish}"
    );
    let (code, err) = check(d, &config);
    assert_eq!(code, Some(1), "{err}");
    let mut expected = vec![
        "  file t.toml: daemon.pidfile: the directory run does not exist".to_owned(),
        "  file t.toml: trains.t.cogs[1].path: the directory out does not exist".to_owned(),
    ];
    if cfg!(feature = "nats") {
        expected.push(
            "  file t.toml: trains.v.cogs[1].auth.credentials_file: cannot read none.creds: No such file or directory (os error 2)"
                .to_owned(),
        );
    }
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has {} errors:\n{}\n",
            expected.len(),
            expected.join("\n")
        )
    );
    let made: Vec<_> = std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(made, ["t.toml"], "check created nothing");
}

#[test]
fn check_and_run_refuse_daemon_user_when_already_another_user() {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("check_and_run_refuse_daemon_user_...: skipped: not root (cannot start the binary as nobody)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        d.join("t.toml"),
        "[daemon]\nuser = \"root\"\n\n[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\" }]\n",
    )
    .unwrap();
    // SAFETY: getpwnam's result is read at once.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // As systemd's User= starts it.
    let said = |cmd: &str| {
        let out = tourbillon(d, &[cmd, "t.toml"])
            .uid(uid)
            .gid(gid)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let message = format!(
        "daemon.user: `root` is set but the process already runs as uid {uid} (systemd's User=?): drop daemon.user, or run as root"
    );
    assert_eq!(
        said("check"),
        (
            Some(1),
            format!("tourbillon: the configuration has 1 error:\n  file t.toml: {message}\n")
        )
    );
    assert_eq!(said("run"), (Some(1), format!("tourbillon: {message}\n")));
}

#[test]
fn check_finds_an_output_directory_the_user_cannot_write() {
    // SAFETY: geteuid has no failure mode.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("check_finds_an_output_directory_...: skipped: not root (daemon.user needs root)");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = unsafe { (*libc::getpwnam(c"nobody".as_ptr())).pw_uid };
    let (code, err) = check(
        d,
        "[daemon]\nuser = \"nobody\"\n\n[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"file\", path = \"x.jsonl\" }]\n",
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 1 error:\n  file t.toml: trains.t.cogs[1].path: the directory . is not \
             writable by user `nobody` (uid {nobody})\n"
        )
    );
}
