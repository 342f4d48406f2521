//! `tourbillon serve` and `tourbillon call` through the binary.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{cpu_time, tourbillon};

const SPEC: &str = r#"
name = "ledger"
[programs.transfer]
hooks = ["debit", "credit"]
args.from = { type = "string", required = true }
args.to = { type = "string", required = true }
args.fail = { type = "bool", default = false }
outputs.done = { type = "bool", required = true }
[hooks.debit]
reference = "append_file"
params = { path = "${from}", line = "debit" }
rectifiers = ["undo_debit"]
[hooks.undo_debit]
reference = "append_file"
params = { path = "${from}", line = "undo debit" }
[hooks.credit]
reference = "fail"
params = { when = "${fail}", message = "credit refused" }
dependencies = ["mark"]
[hooks.mark]
reference = "set"
params = { done = true }
"#;

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn call(dir: &Path, addr: &str, program: &str, data: &str) -> (i32, Value, String) {
    let out: Output = tourbillon(dir, &["call", addr, program, "--data", data, "--timeout", "10"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let response = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        response,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_and_call_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let mut server = Server(
        tourbillon(dir.path(), &["serve", "spec.toml", "--listen", &addr])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Until it listens, `call` cannot connect (exit status 6).
    let mut first = call(dir.path(), &addr, "transfer", r#"{"from": "a", "to": "b"}"#);
    for _ in 0..1000 {
        if first.0 != 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        first = call(dir.path(), &addr, "transfer", r#"{"from": "a", "to": "b"}"#);
    }
    let (code, response, _) = first;
    assert_eq!((code, response["status"].as_str()), (0, Some("ok")), "{response}");
    assert_eq!(response["outputs"], serde_json::json!({ "done": true }));

    let (code, response, _) = call(
        dir.path(),
        &addr,
        "transfer",
        r#"{"from": "c", "to": "d", "fail": true}"#,
    );
    assert_eq!(
        (code, response["status"].as_str()),
        (3, Some("compensated")),
        "{response}"
    );
    assert_eq!(response["error"]["message"], "credit refused");
    let ledger = std::fs::read_to_string(dir.path().join("c")).unwrap();
    assert_eq!(ledger, "debit\nundo debit\n");

    let (code, response, _) = call(dir.path(), &addr, "transfer", r#"{"from": 1}"#);
    assert_eq!((code, response["status"].as_str()), (5, Some("rejected")), "{response}");

    let (code, _, stderr) = call(dir.path(), &addr, "transfer", "{not json");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--data is not valid JSON"), "{stderr}");

    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let status = server.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "a clean finish on SIGTERM");
}

#[test]
fn serve_refuses_a_bad_spec_listing_every_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "name = \"x\"\n[programs.p]\nhooks = [\"nope\"]\nargs.n = { type = \"number\" }\n",
    )
    .unwrap();
    let out = tourbillon(dir.path(), &["serve", "bad.toml", "--listen", "tcp:127.0.0.1:1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("programs.p.hooks[0]: unknown hook `nope`"), "{stderr}");
    assert!(
        stderr.contains("programs.p.args.n.type: unknown type `number`"),
        "{stderr}"
    );
}

#[test]
fn call_without_a_server_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("none.sock");
    let (code, _, stderr) = call(dir.path(), &format!("unix:{}", sock.display()), "p", "{}");
    assert_eq!(code, 6);
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

#[test]
fn a_config_train_runs_programs_on_request_events_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    std::fs::write(
        dir.path().join("train.toml"),
        "[trains.t]\ncogs = [\n  { kind = \"stdin\" },\n  { kind = \"json_decode\" },\n  \
         { kind = \"program\", spec = \"spec.toml\" },\n  { kind = \"json_encode\" },\n  { kind = \"stdout\" },\n]\n",
    )
    .unwrap();
    let mut child = tourbillon(dir.path(), &["run", "train.toml"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"id\": 1, \"program\": \"transfer\", \"data\": {\"from\": \"x\", \"to\": \"y\"}}\n\
              {\"id\": 2, \"program\": \"transfer\", \"data\": {\"from\": \"z\", \"to\": \"y\", \"fail\": true}}\n\
              {\"id\": 3, \"program\": \"missing\"}\n",
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let statuses: Vec<(i64, String)> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["id"].as_i64().unwrap(), v["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        statuses,
        [(1, "ok".into()), (2, "compensated".into()), (3, "rejected".into())],
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("z")).unwrap(),
        "debit\nundo debit\n"
    );
}

#[test]
fn serve_at_its_descriptor_limit_does_not_spin_and_answers_once_a_client_leaves() {
    use std::net::TcpStream;
    const LIMIT: u64 = 24;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let log = dir.path().join("log");
    let mut cmd = tourbillon(dir.path(), &["serve", "spec.toml", "--listen", &addr]);
    cmd.stderr(std::fs::File::create(&log).unwrap());
    common::limit_descriptors(&mut cmd, LIMIT);
    let server = Server(cmd.spawn().unwrap());
    let connect = || {
        for _ in 0..500 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("nobody listens on {port}");
    };
    // More idle clients than descriptors: accepting fails.
    let mut holders: Vec<TcpStream> = (0..30).map(|_| connect()).collect();
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    for _ in 0..2000 {
        if read_log().contains("accept failed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(read_log().contains("accept failed"), "{}", read_log());
    let (cpu0, t0) = (cpu_time(server.0.id()), std::time::Instant::now());
    std::thread::sleep(Duration::from_millis(1500));
    let (cpu, wall) = (cpu_time(server.0.id()) - cpu0, t0.elapsed());
    assert!(
        cpu.as_secs_f64() < 0.3 * wall.as_secs_f64(),
        "{cpu:?} CPU in {wall:?}: accept spins"
    );
    assert!(read_log().len() < 4096, "the log grows: {}", read_log());
    // Clients leave: the server accepts again and answers.
    holders.truncate(5);
    let (code, response, stderr) = call(dir.path(), &addr, "transfer", r#"{"from": "a", "to": "b"}"#);
    assert_eq!(
        (code, response["status"].as_str()),
        (0, Some("ok")),
        "{response} {stderr}"
    );
    drop(holders);
}
