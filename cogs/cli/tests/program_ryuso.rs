//! ryuso's spec and request body, as its documentation writes them,
//! through the binary: `tourbillon check` and `tourbillon serve` take the
//! spec in `tests/ryuso/spec.json` (every key of ryuso's spec table), and a
//! plain Python client (`tests/ryuso/client.py`, standard library only)
//! sends ryuso's request bodies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::tourbillon;

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ryuso").join(name)
}

#[test]
fn check_recognizes_a_program_spec_and_lists_every_error_by_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fixture("spec.json");
    let out = tourbillon(dir.path(), &["check", spec.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok (a program spec: 2 programs, 6 hooks)"), "{stdout}");

    // A tourbillon spec from before `params`, and other mistakes.
    std::fs::write(
        dir.path().join("old.toml"),
        "name = \"old spec!\"\n[programs.p]\nhooks = [\"hooks.a\", \"hooks.b\"]\n\
         [hooks.a]\nreference = \"append_file\"\nargs = { path = \"/tmp/x\", line = \"a\" }\nrectifiers = [\"hooks.nope\"]\n",
    )
    .unwrap();
    let out = tourbillon(dir.path(), &["check", "old.toml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for line in [
        "the spec has 5 errors",
        "name: `old spec!`: a name holds letters, digits, spaces, `_` and `-` only",
        "programs.p.hooks[1]: unknown hook `b`",
        "programs.p.outputs: required",
        "hooks.a.args.line: `args` lists what the hook requires of the data pool",
        "rename this hook's `args` to `params`",
        "hooks.a.rectifiers[0]: unknown hook `nope`",
    ] {
        assert!(stderr.contains(line), "no `{line}` in:\n{stderr}");
    }
}

#[test]
fn a_plain_python_client_runs_ryuso_requests_against_serve() {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("skipped: python3 is not installed, and the client this test runs is a Python script");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let spec = fixture("spec.json");
    let _server = Server(
        tourbillon(dir.path(), &["serve", spec.to_str().unwrap(), "--listen", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server does not listen on {port}");
        std::thread::sleep(Duration::from_millis(10));
    }
    let ledger = dir.path().join("ann.ledger");
    let out = Command::new("python3")
        .arg(fixture("client.py"))
        .arg(port.to_string())
        .arg(&ledger)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the client failed:\n{stdout}\n{stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("ok: ")).count(), 9, "{stdout}");
    // The metadata reached the hooks; the refused run was undone by the
    // debit's rectifiers, in their order.
    assert_eq!(
        std::fs::read_to_string(&ledger).unwrap(),
        "debit 5 by ann\ndebit 5 by cy\nundo debit 5\nnoted for cy\n"
    );
}
