//! `kill -9` of a program server in the middle of runs, then a restart:
//! the interrupted run of a `compensate` program is compensated (its step
//! in flight included), the one of a `complete` program is completed (with
//! the request's metadata, which only the journal kept), and
//! a further restart does nothing more.
//!
//! Its own binary without the test harness: the child is this binary again,
//! run with `PROGRAM_CRASH_CHILD` set, and it is a `tourbillon` binary with
//! a step function of its own, registered as the docs say a user's is.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tourbillon_cli::kinds::program;
use tourbillon_cli::registry::Registry;
use tourbillon_cogs::program::{Call, Flow, Functions};

const SPEC: &str = r#"
name = "crash"
[programs.undo]
outputs = {}
hooks = ["debit", "hold"]
args.dir = { type = "string", required = true }
[programs.finish]
outputs = {}
hooks = ["one", "hold_b", "two"]
recovery = "complete"
args.dir = { type = "string", required = true }

[hooks.debit]
reference = "append_file"
params = { path = "${dir}/a.ledger", line = "debit" }
rectifiers = ["undo_debit"]
[hooks.undo_debit]
reference = "append_file"
params = { path = "${dir}/a.ledger", line = "undo debit" }
[hooks.hold]
reference = "wait_for"
params = { path = "${dir}/never", mark = "${dir}/a.ledger" }
rectifiers = ["undo_hold"]
[hooks.undo_hold]
reference = "append_file"
params = { path = "${dir}/a.ledger", line = "undo hold" }

[hooks.one]
reference = "append_file"
params = { path = "${dir}/b.ledger", line = "one" }
[hooks.hold_b]
reference = "wait_for"
params = { path = "${dir}/go", mark = "${dir}/b.ledger" }
[hooks.two]
reference = "append_file"
# From the request's metadata: after the restart, only the journal has it.
params = { path = "${dir}/b.ledger", line = "${metadata.last_line}" }
"#;

/// A step that appends "waiting" to `mark`, then waits (on timers, never
/// blocking the loop) until `path` exists.
fn wait_for(call: &mut Call<'_>) -> Flow {
    let (path, mark) = match (call.str_arg("path"), call.str_arg("mark")) {
        (Ok(p), Ok(m)) => (p.to_owned(), m.to_owned()),
        (Err(e), _) | (_, Err(e)) => return Flow::Fail(e),
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&mark)
        .unwrap();
    f.write_all(b"waiting\n").unwrap();
    poll(path)
}

fn poll(path: String) -> Flow {
    if Path::new(&path).exists() {
        return Flow::Done(Value::Null);
    }
    Flow::After(Duration::from_millis(5), Box::new(move |_| poll(path)))
}

fn child(spec: &str, addr: &str, state: &str) -> i32 {
    let mut functions = Functions::standard();
    functions.add("wait_for", wait_for);
    let mut registry = Registry::standard();
    program::register(&mut registry, functions);
    let args = ["tourbillon", "serve", spec, "--listen", addr, "--state-dir", state];
    tourbillon_cli::app::main(args, &registry)
}

/// A server process, killed when dropped (a failed check must not leave it running).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(spec: &Path, addr: &str, state: &Path) -> Server {
    Server(
        Command::new(std::env::current_exe().unwrap())
            .env("PROGRAM_CRASH_CHILD", "1")
            .arg(spec)
            .arg(addr)
            .arg(state)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits until `f` holds, or fails saying what was awaited.
fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > Duration::from_secs(20) {
            return Err(format!("waited 20 s for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Calls a program that ends at once: proves the server is up, and so that
/// recovery at its start is through.
fn ping(addr: &str, dir: &Path) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let data = json!({ "dir": dir.display().to_string() });
        match tourbillon_cli::program::call(addr, "nope", data, json!({}), json!("ping"), Duration::from_secs(10)) {
            Ok(r) if r["status"] == "rejected" => return Ok(()),
            Ok(r) => return Err(format!("unexpected answer {r}")),
            Err(_) if start.elapsed() < Duration::from_secs(20) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e),
        }
    }
}

fn kill_9_during_runs_then_restarts() -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ledger"), dir.path().join("b.ledger"));
    let spec = dir.path().join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let state = dir.path().join("state");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("tcp:127.0.0.1:{port}");

    let mut server = spawn(&spec, &addr, &state);
    ping(&addr, dir.path())?;
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    for program in ["undo", "finish"] {
        let r = json!({
            "id": program, "program": program,
            "data_pool": { "dir": dir.path().display().to_string() },
            "metadata": { "last_line": "two" },
        });
        writeln!(conn, "{r}").map_err(|e| e.to_string())?;
    }
    wait_until("both runs to wait", || {
        lines(&a).last().map(String::as_str) == Some("waiting")
            && lines(&b).last().map(String::as_str) == Some("waiting")
    })?;
    server.0.kill().map_err(|e| e.to_string())?; // SIGKILL
    server.0.wait().map_err(|e| e.to_string())?;
    assert_eq!(lines(&a), ["debit", "waiting"]);
    assert_eq!(lines(&b), ["one", "waiting"]);

    std::fs::write(dir.path().join("go"), "").unwrap();
    let mut server = spawn(&spec, &addr, &state);
    wait_until("the runs to be taken up", || {
        lines(&a).len() == 4 && lines(&b).len() == 4
    })?;
    assert_eq!(
        lines(&a),
        ["debit", "waiting", "undo hold", "undo debit"],
        "compensated, the step in flight included"
    );
    assert_eq!(lines(&b), ["one", "waiting", "waiting", "two"], "completed");
    ping(&addr, dir.path())?;
    unsafe { libc::kill(server.0.id() as i32, libc::SIGTERM) };
    let status = server.0.wait().map_err(|e| e.to_string())?;
    assert_eq!(status.code(), Some(0));

    let mut server = spawn(&spec, &addr, &state);
    ping(&addr, dir.path())?;
    server.0.kill().map_err(|e| e.to_string())?;
    server.0.wait().map_err(|e| e.to_string())?;
    assert_eq!(lines(&a).len(), 4, "nothing left to take up");
    assert_eq!(lines(&b).len(), 4, "nothing left to take up");
    Ok(())
}

fn main() {
    if std::env::var_os("PROGRAM_CRASH_CHILD").is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        std::process::exit(child(&args[0], &args[1], &args[2]));
    }
    match kill_9_during_runs_then_restarts() {
        Ok(()) => println!("test kill_9_during_runs_then_restarts ... ok"),
        Err(e) => {
            eprintln!("test kill_9_during_runs_then_restarts ... FAILED: {e}");
            std::process::exit(1);
        }
    }
}
