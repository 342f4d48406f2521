//! Program runs through the `program` cog: compensation order, rectifier
//! failure, nested programs, dependencies, asynchronous steps, timeouts
//! and retries, the per-key lock, many runs at once, input and output checks.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{Cog, Context, Escapement, Event, Fired, Next, Role, Train};
use tourbillon_cogs::program::{Flow, Format, Functions, ProgramCog, Spec};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

/// Emits the requests on the first turn, then stays (never exhausted, so
/// the loop finishes only when every answer is in, or when `.1` asks to
/// finish right after the requests).
struct Feed(Vec<Value>, bool);

impl Cog<Event> for Feed {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        for r in std::mem::take(&mut self.0) {
            let id = ctx.next_event_id();
            ctx.emit(Event::new(id, r));
        }
        if self.1 {
            ctx.finish_all();
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
}

/// Keeps the responses; finishes once it has `until`.
struct Collect {
    seen: Arc<Mutex<Vec<Value>>>,
    until: usize,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(e.value().clone());
        if seen.len() == self.until {
            ctx.finish_all();
        }
    }
}

/// Runs `requests` on `spec` and returns the responses by request id.
fn run(spec: &str, functions: Functions, requests: Vec<Value>) -> BTreeMap<String, Value> {
    let n = requests.len();
    run_with(spec, functions, Feed(requests, false), None, n)
}

/// Runs what `feed` brings, journaled in `state` if given, until `n` answers.
fn run_with(
    spec: &str,
    functions: Functions,
    feed: Feed,
    state: Option<&std::path::Path>,
    n: usize,
) -> BTreeMap<String, Value> {
    let _turn = exclusive();
    let spec = Spec::parse(spec, Format::Toml, &functions).unwrap_or_else(|e| panic!("{e}"));
    let cog = ProgramCog::from_spec(spec, Arc::new(functions), state).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.core()
        .after(Duration::from_secs(20), |core| {
            eprintln!("watchdog: the test took more than 20 s");
            core.finish()
        })
        .unwrap();
    esc.add_train(Train::new("programs").cog(feed).cog(cog).cog(Collect {
        seen: Arc::clone(&seen),
        until: n,
    }));
    esc.run().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), n, "every request is answered: {seen:?}");
    seen.iter()
        .map(|r| (r["id"].as_str().unwrap_or("-").to_owned(), r.clone()))
        .collect()
}

fn request(id: &str, program: &str, data: Value) -> Value {
    json!({ "id": id, "program": program, "data": data })
}

/// The trace as `step`, `step!` (failed), `~rectifier` and `~rectifier!`.
fn trace(response: &Value) -> Vec<String> {
    response["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let failed = if t["status"] == "failed" { "!" } else { "" };
            match t["rectifier"].as_str() {
                Some(r) => format!("~{r}{failed}"),
                None => format!("{}{failed}", t["step"].as_str().unwrap()),
            }
        })
        .collect()
}

/// Five steps s1..s5, each undone by u1..u5; step `fail_at` fails.
fn five_steps() -> String {
    let mut spec = String::from(
        "name = \"five\"\n[programs.five]\nhooks = [\"s1\", \"s2\", \"s3\", \"s4\", \"s5\"]\n\
         args.fail_at = { type = \"int\", default = 0 }\noutputs = {}\n",
    );
    for i in 1..=5 {
        spec.push_str(&format!(
            "[hooks.s{i}]\nreference = \"step\"\nparams = {{ n = {i}, fail_at = \"${{fail_at}}\" }}\n\
             rectifiers = [\"u{i}\"]\n[hooks.u{i}]\nreference = \"set\"\n"
        ));
    }
    spec
}

fn step_fn() -> Functions {
    let mut f = Functions::standard();
    f.add("step", |call| {
        if call.arg("n") == call.arg("fail_at") {
            Flow::Fail(format!("{} failed", call.hook()))
        } else {
            Flow::Done(Value::Null)
        }
    });
    f
}

#[test]
fn a_failure_at_each_position_undoes_the_steps_before_it_in_reverse() {
    let requests = (0..=5)
        .map(|k| request(&k.to_string(), "five", json!({ "fail_at": k })))
        .collect();
    let got = run(&five_steps(), step_fn(), requests);
    assert_eq!(got["0"]["status"], "ok");
    assert_eq!(trace(&got["0"]), ["s1", "s2", "s3", "s4", "s5"]);
    for k in 1..=5usize {
        let r = &got[&k.to_string()];
        let mut want: Vec<String> = (1..k).map(|i| format!("s{i}")).collect();
        want.push(format!("s{k}!"));
        want.extend((1..k).rev().map(|i| format!("~u{i}")));
        assert_eq!(trace(r), want, "failure at s{k}");
        assert_eq!(
            r["status"],
            if k == 1 { "failed" } else { "compensated" },
            "failure at s{k}"
        );
        assert_eq!(
            r["error"],
            json!({ "step": format!("s{k}"), "message": format!("s{k} failed") })
        );
        assert_eq!(r["outputs"], json!({}));
    }
}

#[test]
fn a_failing_rectifier_is_reported_and_the_other_rectifiers_still_run() {
    let spec = r#"
name = "r"
[programs.p]
outputs = {}
hooks = ["a", "b", "c"]
[hooks.a]
reference = "set"
rectifiers = ["undo_a"]
[hooks.b]
reference = "set"
rectifiers = ["undo_b"]
[hooks.c]
reference = "fail"
[hooks.undo_a]
reference = "set"
[hooks.undo_b]
reference = "fail"
params = { message = "cannot undo b" }
"#;
    let got = run(spec, Functions::standard(), vec![request("1", "p", json!({}))]);
    let r = &got["1"];
    assert_eq!(r["status"], "compensation_failed");
    assert_eq!(trace(r), ["a", "b", "c!", "~undo_b!", "~undo_a"]);
    assert_eq!(r["error"]["step"], "c");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("cannot undo b"), "{message}");
}

const NESTED: &str = r#"
name = "nested"
[programs.outer]
hooks = ["a", "programs.inner", "d"]
args.fail = { type = "string", default = "" }
outputs.c_ran = { type = "string" }
[programs.inner]
hooks = ["b", "c"]
args.fail = { type = "string", required = true }
args.tag = { type = "string", default = "inner-default" }
outputs.tag = { type = "string" }
[hooks.a]
reference = "maybe"
rectifiers = ["ua"]
[hooks.b]
reference = "maybe"
rectifiers = ["ub"]
[hooks.c]
reference = "maybe"
params = { tag = "${tag}" }
rectifiers = ["uc"]
[hooks.d]
reference = "maybe"
rectifiers = ["ud"]
[hooks.ua]
reference = "set"
[hooks.ub]
reference = "set"
[hooks.uc]
reference = "set"
[hooks.ud]
reference = "set"
"#;

fn maybe() -> Functions {
    let mut f = Functions::standard();
    f.add("maybe", |call| {
        if call.pool().get("fail").and_then(Value::as_str) == Some(call.hook()) {
            Flow::Fail("asked to".into())
        } else {
            Flow::Done(json!({ format!("{}_ran", call.hook()): call.arg("tag").cloned() }))
        }
    });
    f
}

#[test]
fn a_nested_program_is_compensated_as_a_unit() {
    let requests = vec![
        request("ok", "outer", json!({})),
        request("in", "outer", json!({ "fail": "c" })),
        request("after", "outer", json!({ "fail": "d" })),
    ];
    let got = run(NESTED, maybe(), requests);
    assert_eq!(trace(&got["ok"]), ["a", "programs.inner", "b", "c", "d"]);
    assert_eq!(got["ok"]["status"], "ok");
    let programs: Vec<&str> = got["ok"]["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["program"].as_str().unwrap())
        .collect();
    assert_eq!(
        programs,
        ["outer", "outer/inner", "outer/inner", "outer/inner", "outer"]
    );
    assert_eq!(trace(&got["in"]), ["a", "programs.inner", "b", "c!", "~ub", "~ua"]);
    assert_eq!(
        trace(&got["after"]),
        ["a", "programs.inner", "b", "c", "d!", "~uc", "~ub", "~ua"]
    );
}

#[test]
fn a_nested_program_gets_its_defaults_and_its_arguments_are_checked_where_it_begins() {
    let got = run(NESTED, maybe(), vec![request("1", "outer", json!({}))]);
    assert_eq!(
        got["1"]["outputs"],
        json!({ "c_ran": "inner-default" }),
        "the inner program's default reached its hook's arguments"
    );
    let spec = NESTED.replace("args.fail = { type = \"string\", default = \"\" }", "");
    let spec = spec.replace(
        "[programs.inner]",
        "[programs.inner]\nargs.need = { type = \"int\", required = true }",
    );
    let got = run(&spec, maybe(), vec![request("2", "outer", json!({}))]);
    let r = &got["2"];
    assert_eq!(trace(r), ["a", "programs.inner!", "~ua"]);
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("missing required argument `need`"), "{message}");
}

#[test]
fn dependencies_run_just_before_the_hook_that_needs_them_and_only_once() {
    let spec = r#"
name = "deps"
[programs.p]
outputs = {}
hooks = ["c", "b", "e"]
[hooks.a]
reference = "set"
[hooks.b]
reference = "set"
dependencies = ["a"]
[hooks.c]
reference = "set"
dependencies = ["b", "d"]
[hooks.d]
reference = "set"
[hooks.e]
reference = "set"
dependencies = ["d"]
"#;
    let got = run(spec, Functions::standard(), vec![request("1", "p", json!({}))]);
    assert_eq!(trace(&got["1"]), ["a", "b", "d", "c", "e"]);
}

/// ryuso's forms: `hooks.NAME` references everywhere, several rectifiers
/// per hook, a dependency, and `args` required of the data pool by the
/// hook that fails (checked after its dependency ran, before its function).
const RYUSO_ORDER: &str = r#"
name = "ryuso order"
[programs.p]
hooks = ["hooks.a", "hooks.b", "hooks.c"]
args.with_token = { type = "bool", required = true }
outputs.token = { type = "string" }
[hooks.a]
reference = "set"
rectifiers = ["hooks.ua1", "hooks.ua2"]
[hooks.b]
reference = "set"
dependencies = ["hooks.d"]
rectifiers = ["hooks.ub"]
[hooks.d]
reference = "maybe_token"
rectifiers = ["hooks.ud"]
[hooks.c]
reference = "set"
description = "needs a token in the pool, which d puts there only on demand"
args.token = { type = "string", required = true, description = "from d" }
rectifiers = ["hooks.uc"]
[hooks.ua1]
reference = "set"
[hooks.ua2]
reference = "set"
[hooks.ub]
reference = "set"
[hooks.ud]
reference = "set"
[hooks.uc]
reference = "set"
"#;

#[test]
fn a_hook_whose_args_are_missing_from_the_pool_fails_and_the_hooks_before_it_are_undone_in_order() {
    let mut f = Functions::standard();
    f.add("maybe_token", |call| {
        if call.pool()["with_token"] == json!(true) {
            Flow::Done(json!({ "token": "t-1" }))
        } else {
            Flow::Done(Value::Null)
        }
    });
    let got = run(
        RYUSO_ORDER,
        f,
        vec![
            request("ok", "p", json!({ "with_token": true })),
            request("missing", "p", json!({ "with_token": false })),
        ],
    );
    assert_eq!(got["ok"]["status"], "ok", "{}", got["ok"]);
    assert_eq!(got["ok"]["outputs"], json!({ "token": "t-1" }));
    assert_eq!(trace(&got["ok"]), ["a", "d", "b", "c"]);
    let r = &got["missing"];
    assert_eq!(r["status"], "compensated", "{r}");
    assert_eq!(r["error"]["step"], "c");
    let message = r["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("hooks.c.args") && message.contains("missing required argument `token` (string)"),
        "{message}"
    );
    // c failed: not rectified; b, d, a undone in reverse, each hook's
    // rectifiers in their listed order.
    assert_eq!(trace(r), ["a", "d", "b", "c!", "~ub", "~ud", "~ua1", "~ua2"]);
}

#[test]
fn steps_wait_on_timers_worker_threads_and_fds_without_blocking_each_other() {
    let spec = r#"
name = "async"
[programs.p]
hooks = ["timer", "thread", "fd"]
outputs.line = { type = "string", required = true }
[hooks.timer]
reference = "sleep"
params = { ms = 5 }
[hooks.thread]
reference = "sleep"
params = { ms = 5, thread = true }
[hooks.fd]
reference = "read_socket"
"#;
    let mut f = Functions::standard();
    f.add("read_socket", |_| {
        let (mut ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(5));
            theirs.write_all(b"hello from a socket").unwrap();
        });
        let fd = ours.as_raw_fd();
        Flow::Readable(
            fd,
            Box::new(move |_| {
                let mut buf = [0; 64];
                match ours.read(&mut buf) {
                    Ok(n) => Flow::Done(json!({ "line": String::from_utf8_lossy(&buf[..n]) })),
                    Err(e) => Flow::Fail(e.to_string()),
                }
            }),
        )
    });
    let requests = (0..20).map(|i| request(&i.to_string(), "p", json!({}))).collect();
    let got = run(spec, f, requests);
    for r in got.values() {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["outputs"], json!({ "line": "hello from a socket" }));
    }
}

#[test]
fn a_step_that_times_out_is_retried_then_fails_and_one_that_recovers_succeeds() {
    let spec = r#"
name = "retry"
[programs.slow]
outputs = {}
hooks = ["first", "slow"]
[programs.flaky]
outputs = {}
hooks = ["flaky"]
[hooks.first]
reference = "set"
rectifiers = ["undo"]
[hooks.undo]
reference = "set"
[hooks.slow]
reference = "sleep"
params = { ms = 60000 }
timeout_ms = 10
retries = 1
[hooks.flaky]
reference = "fail"
params = { attempts = 2 }
retries = 3
retry_delay_ms = 1
"#;
    let got = run(
        spec,
        Functions::standard(),
        vec![request("slow", "slow", json!({})), request("flaky", "flaky", json!({}))],
    );
    let slow = &got["slow"];
    assert_eq!(slow["status"], "compensated");
    assert_eq!(slow["error"]["message"], "timed out after 10 ms");
    assert_eq!(slow["trace"][1]["attempts"], 2);
    assert_eq!(trace(slow), ["first", "slow!", "~undo"]);
    let flaky = &got["flaky"];
    assert_eq!(flaky["status"], "ok");
    assert_eq!(flaky["trace"][0]["attempts"], 3);
}

#[test]
fn runs_with_the_same_key_wait_for_each_other_and_other_keys_do_not() {
    let spec = r#"
name = "lock"
[programs.p]
outputs = {}
hooks = ["enter", "leave"]
lock = "account"
args.account = { type = "string", required = true }
[hooks.enter]
reference = "mark"
params = { what = "enter ${account}" }
[hooks.leave]
reference = "mark"
params = { what = "leave ${account}" }
"#;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut f = Functions::standard();
    let marks = Arc::clone(&log);
    f.add("mark", move |call| {
        marks.lock().unwrap().push(call.str_arg("what").unwrap().to_owned());
        Flow::After(Duration::from_millis(3), Box::new(|_| Flow::Done(Value::Null)))
    });
    let requests = (0..6)
        .map(|i| {
            request(
                &i.to_string(),
                "p",
                json!({ "account": if i % 2 == 0 { "A" } else { "B" } }),
            )
        })
        .collect();
    let got = run(spec, f, requests);
    assert!(got.values().all(|r| r["status"] == "ok"));
    let log = log.lock().unwrap();
    for account in ["A", "B"] {
        let mine: Vec<&str> = log
            .iter()
            .filter(|m| m.ends_with(account))
            .map(|m| m.split(' ').next().unwrap())
            .collect();
        assert_eq!(mine, ["enter", "leave"].repeat(3), "runs on {account} never overlap");
    }
    assert_eq!(&log[..2], ["enter A", "enter B"], "different keys run side by side");
}

#[test]
fn many_runs_are_in_flight_at_once() {
    let spec = r#"
name = "many"
[programs.p]
hooks = ["wait", "echo"]
args.n = { type = "int", required = true }
outputs.n = { type = "int", required = true }
[hooks.wait]
reference = "sleep"
params = { ms = 20 }
[hooks.echo]
reference = "set"
params = { n = "${n}" }
"#;
    let inside = Arc::new(Mutex::new((0usize, 0usize)));
    let mut f = Functions::standard();
    let count = Arc::clone(&inside);
    f.add("sleep", move |call| {
        let ms = call.int_arg("ms", 0).unwrap() as u64;
        let mut c = count.lock().unwrap();
        c.0 += 1;
        c.1 = c.1.max(c.0);
        let count = Arc::clone(&count);
        Flow::After(
            Duration::from_millis(ms),
            Box::new(move |_| {
                count.lock().unwrap().0 -= 1;
                Flow::Done(Value::Null)
            }),
        )
    });
    let requests = (0..300)
        .map(|i| request(&i.to_string(), "p", json!({ "n": i })))
        .collect();
    let got = run(spec, f, requests);
    for (id, r) in &got {
        assert_eq!(r["outputs"]["n"].to_string(), *id);
    }
    assert_eq!(inside.lock().unwrap().1, 300, "every run was waiting at the same time");
}

#[test]
fn invalid_requests_are_rejected_and_run_nothing() {
    let spec = r#"
name = "inputs"
[programs.p]
outputs = {}
hooks = ["mark"]
args.n = { type = "int", required = true }
args.tags = { type = "list" }
[hooks.mark]
reference = "mark"
"#;
    let ran = Arc::new(Mutex::new(0));
    let mut f = Functions::standard();
    let r2 = Arc::clone(&ran);
    f.add("mark", move |_| {
        *r2.lock().unwrap() += 1;
        Flow::Done(Value::Null)
    });
    let requests = vec![
        request("missing", "p", json!({})),
        request("type", "p", json!({ "n": 1.5, "tags": "x" })),
        request("unknown", "p", json!({ "n": 1, "m": 2 })),
        request("program", "q", json!({ "n": 1 })),
        request("data", "p", json!([1])),
        json!({ "id": "field", "program": "p", "data": { "n": 1 }, "extra": true }),
        json!({ "id": "no-program", "data": { "n": 1 } }),
    ];
    let got = run(spec, f, requests);
    let message = |id: &str| {
        assert_eq!(got[id]["status"], "rejected", "{id}");
        assert_eq!(got[id]["trace"], json!([]));
        got[id]["error"]["message"].as_str().unwrap().to_owned()
    };
    assert!(message("missing").contains("missing required argument `n`"));
    let m = message("type");
    assert!(
        m.contains("`n` must be int, not float") && m.contains("`tags` must be list, not string"),
        "{m}"
    );
    assert!(message("unknown").contains("unknown argument `m`"));
    assert!(message("program").contains("unknown program `q` (programs: p)"));
    assert!(message("data").contains("`data` must be a dict"));
    assert!(message("field").contains("unknown request field `extra`"));
    assert!(message("no-program").contains("`program` is required"));
    assert_eq!(*ran.lock().unwrap(), 0);
}

#[test]
fn outputs_are_filtered_and_a_missing_one_is_a_compensated_failure() {
    let spec = r#"
name = "outputs"
[programs.p]
hooks = ["a"]
args.status = { type = "string", default = "ok" }
args.id = { type = "string", default = "forged" }
args.want = { type = "bool", default = true }
outputs.made = { type = "int", required = true }
[hooks.a]
reference = "produce"
rectifiers = ["undo"]
[hooks.undo]
reference = "set"
"#;
    let mut f = Functions::standard();
    f.add("produce", |call| {
        if call.pool()["want"] == true {
            Flow::Done(json!({ "made": 7, "secret": "internal" }))
        } else {
            Flow::Done(json!({ "secret": "internal" }))
        }
    });
    let requests = vec![
        request("good", "p", json!({ "status": "ok", "id": "forged" })),
        request("bad", "p", json!({ "want": false, "status": "ok" })),
    ];
    let got = run(spec, f, requests);
    assert_eq!(got["good"]["outputs"], json!({ "made": 7 }));
    assert_eq!(got["good"]["id"], "good", "the id comes from the request, not the data");
    let bad = &got["bad"];
    assert_eq!(bad["status"], "compensated", "control fields never come from the data");
    assert_eq!(bad["error"]["step"], "outputs");
    assert_eq!(trace(bad), ["a", "~undo"]);
}

#[test]
fn a_step_that_panics_fails_and_the_run_is_compensated() {
    let spec = r#"
name = "panic"
[programs.p]
outputs = {}
hooks = ["a", "boom"]
[hooks.a]
reference = "set"
rectifiers = ["undo"]
[hooks.undo]
reference = "set"
[hooks.boom]
reference = "boom"
"#;
    let mut f = Functions::standard();
    f.add("boom", |_| panic!("out of cheese"));
    let got = run(
        spec,
        f,
        vec![request("1", "p", json!({})), request("2", "p", json!({}))],
    );
    for r in got.values() {
        assert_eq!(r["status"], "compensated");
        assert_eq!(r["error"]["message"], "the step panicked: out of cheese");
    }
}

const CUT_SHORT: &str = r#"
name = "finish"
[programs.p]
outputs = {}
hooks = ["a", "w1", "w2"]
args.ledger = { type = "string", required = true }
[hooks.a]
reference = "append_file"
params = { path = "${ledger}", line = "a" }
rectifiers = ["undo_a"]
[hooks.undo_a]
reference = "append_file"
params = { path = "${ledger}", line = "undo a" }
[hooks.w1]
reference = "sleep"
params = { ms = 5 }
[hooks.w2]
reference = "sleep"
params = { ms = 5 }
"#;

/// Runs CUT_SHORT until finish leaves its run in the journal, then starts
/// again with `restart_spec`; returns the ledger's path and the answer.
fn cut_short_then_restart(restart_spec: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ledger");
    let state = dir.path().join("state");
    let req = request("1", "p", json!({ "ledger": ledger.display().to_string() }));
    let got = run_with(CUT_SHORT, Functions::standard(), Feed(vec![req], true), Some(&state), 0);
    assert!(got.is_empty(), "no answer: the run waits for the next start");
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "a\n");
    let mut got = run_with(
        restart_spec,
        Functions::standard(),
        Feed(vec![], false),
        Some(&state),
        1,
    );
    (dir, got.remove("1").unwrap())
}

#[test]
fn a_journaled_run_cut_short_by_finish_is_compensated_at_the_next_start() {
    let (dir, r) = cut_short_then_restart(CUT_SHORT);
    let ledger = dir.path().join("ledger");
    assert_eq!(r["status"], "compensated", "{r}");
    assert_eq!(r["trace"][0], json!({ "restart": true }));
    assert_eq!(std::fs::read_to_string(&ledger).unwrap(), "a\nundo a\n");
}

#[test]
fn a_run_whose_program_changed_meanwhile_is_undone_by_the_hooks_it_ran() {
    let reordered = CUT_SHORT.replace(r#"hooks = ["a", "w1", "w2"]"#, r#"hooks = ["w1", "w2"]"#);
    assert_ne!(reordered, CUT_SHORT);
    let (dir, r) = cut_short_then_restart(&reordered);
    assert_eq!(r["status"], "compensated", "{r}");
    let ledger = std::fs::read_to_string(dir.path().join("ledger")).unwrap();
    assert_eq!(ledger, "a\nundo a\n");
}
