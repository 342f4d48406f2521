//! Trains as a graph with the real `tourbillon` binary: every mistake in
//! `inputs` named by `check` with its exact message, the graph drawn by
//! `train`, a tailed file fanned out to two file drains under `kill -9`
//! (the checkpoint never passes the slower branch), `tail` and `listen`
//! merged into one drain, a captured graph replayed and compared drain by
//! drain.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{append, text, tourbillon, wait_for};
use tourbillon_cogs::supply::tail::saved_positions;

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, body).unwrap();
    p
}

/// `check` of `body`: (status, stdout, stderr).
fn check(body: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", body);
    let out = tourbillon(dir.path(), &["check", "c.toml"]).output().unwrap();
    (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
}

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The whole lines of a file (a line cut by a kill is not one).
fn whole_lines(path: &Path) -> HashSet<String> {
    let t = fs::read_to_string(path).unwrap_or_default();
    let body = match t.rfind('\n') {
        Some(i) => &t[..=i],
        None => "",
    };
    body.lines().map(str::to_owned).collect()
}

#[test]
fn check_names_every_graph_mistake_by_key_path() {
    let (code, out, err) = check(
        "[trains.a]\ncogs = [{ kind = \"tail\", include = [\"/nonexistent/in.log\"] }, \
         { kind = \"file\", path = \"a.log\" }, { kind = \"file\", path = \"b.log\" }]\n\
         [trains.b]\ninputs = [\"nope\", \"a.errors\", \"a\", \"c\", \"c\"]\ncogs = [{ kind = \"stdout\" }]\n\
         [trains.c]\ninputs = [\"d\"]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.d]\ninputs = [\"c\"]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.e]\ninputs = []\ncogs = [{ kind = \"stdout\" }]\n\
         [trains.f]\ninputs = [3, \"d\"]\nqueue = 0\ncogs = [{ kind = \"stdout\" }]\n\
         [trains.g]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.h]\ninputs = \"d\"\ncogs = [{ kind = \"stdout\" }]\n\
         [trains.i]\ninputs = [\"i\"]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.j]\nqueue = 8\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\" }]\n",
    );
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        err,
        "tourbillon: the configuration has 13 errors:\n  \
         file c.toml: trains.e.inputs: an empty list: name the trains this train reads (`inputs = [\"parse\"]`), \
         or leave the key out and give the train a supply\n  \
         file c.toml: trains.f.inputs[0]: expected the name of a train (`parse`) or of a train's output \
         (`parse.errors`), found a number `3`\n  \
         file c.toml: trains.f.queue: expected a whole number from 1 on (how many data its input queue holds), \
         found a number `0`\n  \
         file c.toml: trains.h.inputs: expected a list of train outputs (`inputs = [\"parse\", \"parse.errors\"]`), \
         found a string `\"d\"`\n  \
         file c.toml: trains.j.queue: this train has no `inputs`: `queue` is the capacity of the queue of what a \
         train reads from other trains\n  \
         file c.toml: trains.g.cogs: no supply and no `inputs` in this train: nothing would ever reach it (begin it \
         with a supply: jetstream_consume, kv_watch, listen, program_server, stdin, tail, tick; or read other trains with \
         `inputs = [\"TRAIN\"]`)\n  \
         file c.toml: trains.a.cogs[2]: `file` comes after the drain `file` (trains.a.cogs[1]): a drain ends its \
         train and passes nothing on, so this cog would never get anything; to send the same data to several \
         drains, give each drain a train of its own with `inputs = [\"a\"]`\n  \
         file c.toml: trains.b.inputs[0]: no train is named `nope` (trains: a, b, c, d, e, f, g, h, i, j)\n  \
         file c.toml: trains.b.inputs[1]: train `a` has no output `errors`: it has no named outputs (a `route` \
         step's `outputs`, a cog's `error_output`)\n  \
         file c.toml: trains.b.inputs[2]: train `a` ends in the drain `file` (trains.a.cogs[2]): nothing falls off \
         its end to read (a drain passes nothing on); to read what reaches that drain, end `a` before it and give \
         the drain a train of its own with `inputs = [\"a\"]`\n  \
         file c.toml: trains.b.inputs[4]: `c` is read already (trains.b.inputs[3]): each datum would arrive twice\n  \
         file c.toml: trains.i.inputs[0]: train `i` reads itself: data would go round forever\n  \
         file c.toml: trains.c.inputs[0]: trains read each other in a cycle: c -> d -> c (each arrow goes to a \
         train that reads the one before it): data would go round forever\n",
    );
}

#[test]
fn a_cycle_of_three_is_named_in_order_once() {
    let (code, _, err) = check(
        "[trains.x]\ncogs = [{ kind = \"stdin\" }]\n\
         [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.c]\ninputs = [\"b\"]\ncogs = [{ kind = \"json_encode\" }]\n\
         [trains.a]\ninputs = [\"x\", \"c\"]\ncogs = [{ kind = \"json_encode\" }]\n",
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  file c.toml: trains.a.inputs[1]: trains read each other in a \
         cycle: a -> b -> c -> a (each arrow goes to a train that reads the one before it): data would go round \
         forever\n"
    );
}

#[test]
fn a_good_graph_checks_and_is_drawn_in_text_and_dot() {
    let body = "[trains.in]\ncogs = [{ kind = \"tail\", include = [\"/var/log/app.log\"] }, \
                { kind = \"json_decode\", on_error = \"wrap\" }, { kind = \"json_encode\" }]\n\
                [trains.net]\ncogs = [{ kind = \"listen\", listen = \"127.0.0.1:5170\" }]\n\
                [trains.archive]\ninputs = [\"in\", \"net\"]\ncogs = [{ kind = \"file\", path = \"all.log\" }]\n\
                [trains.slow]\ninputs = [\"in\"]\nqueue = 4\ncogs = [{ kind = \"file\", path = \"slow.log\", fsync = true }]\n";
    let (code, out, err) = check(body);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "c.toml: ok (4 trains, 6 cogs)\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", body);
    let out = tourbillon(dir.path(), &["train", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let drawing = listing.split("\n\n").next().unwrap();
    assert_eq!(
        drawing,
        "\
┌─ in ──────────────────────────────────┐
│ tail         include /var/log/app.log │
│ json_decode  on_error wrap            │
│ json_encode                           │
└─┬─────────────────────────────────────┘
  ├──▶ archive
  └──▶ slow
┌─ net ─────────────────────────┐
│ listen  listen 127.0.0.1:5170 │
└─┬─────────────────────────────┘
  └──▶ archive
┌─ archive ◀ in, net ──┐
│ file  path all.log   │
└──────────────────────┘
┌─ slow ◀ in (queue 4) ──┐
│ file  path slow.log    │
└────────────────────────┘"
    );
    assert!(
        listing.contains("train slow (1 cogs), reads in, queue 4\n  0. drain  file    [trains.slow.cogs[0]]\n"),
        "the settings listing follows the drawing: {listing}"
    );
    let out = tourbillon(dir.path(), &["train", "--dot", "c.toml"]).output().unwrap();
    let dot = text(&out.stdout);
    for want in [
        "  \"in\" -> \"archive\";\n",
        "  \"net\" -> \"archive\";\n",
        "  \"in\" -> \"slow\";\n",
        "<tr><td bgcolor=\"lightgrey\"><b>slow</b> (queue 4)</td></tr>",
        "<b>tail</b> <i>supply</i><br align=\"left\"/>  include /var/log/app.log<br align=\"left\"/>",
        "<b>file</b> <i>drain</i><br align=\"left\"/>  path slow.log<br align=\"left\"/>",
    ] {
        assert!(dot.contains(want), "{want:?} not in:\n{dot}");
    }
    assert_eq!(dot.matches(" -> ").count(), 3, "{dot}");
}

#[test]
fn a_tailed_file_fanned_out_to_two_drains_under_kill_9_reaches_both_and_the_checkpoint_waits_for_the_slower() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, fast, slow, state) = (
        d.join("in.log"),
        d.join("fast.log"),
        d.join("slow.log"),
        d.join("state"),
    );
    fs::write(&input, "").unwrap();
    // Both branches write each line as it comes; the slow one also syncs
    // each to disk, behind a queue of 4: it holds the tail back.
    let config = write(
        d,
        "run.toml",
        &format!(
            "[trains.in]\ncogs = [{{ kind = \"tail\", include = [{input:?}], checkpoint_dir = {state:?}, \
             checkpoint_interval_ms = 20, poll_interval_ms = 20 }}]\n\
             [trains.fast]\ninputs = [\"in\"]\ncogs = [{{ kind = \"file\", path = {fast:?}, buffer_bytes = 1, \
             retry_interval_ms = 20 }}]\n\
             [trains.slow]\ninputs = [\"in\"]\nqueue = 4\ncogs = [{{ kind = \"file\", path = {slow:?}, \
             fsync = true, buffer_bytes = 1, retry_interval_ms = 20 }}]\n",
            input = input.display().to_string(),
            state = state.display().to_string(),
            fast = fast.display().to_string(),
            slow = slow.display().to_string(),
        ),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, input) = (stop.clone(), input.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                // 125 lines a second: less than the slow branch can sync
                // on a busy machine, so that it catches up at the end.
                let chunk: String = (n..n + 10).map(|i| format!("line-{i:06}\n")).collect();
                append(&input, &chunk);
                n += 10;
                std::thread::sleep(Duration::from_millis(80));
            }
            n
        })
    };
    let run = || {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("log"))
            .unwrap();
        let mut c = tourbillon(d, &["run", config.to_str().unwrap()]);
        c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        Reap(c.spawn().unwrap())
    };
    let mut lag = 0usize;
    let mut checked = 0usize;
    for round in 0..20u64 {
        let mut child = run();
        std::thread::sleep(Duration::from_millis(150 + (round * 37) % 200));
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        let (f, s) = (whole_lines(&fast), whole_lines(&slow));
        lag = lag.max(f.len().saturating_sub(s.len()));
        // Everything before the saved position is in both outputs.
        let saved = saved_positions(&state).unwrap();
        let Some(p) = saved.iter().find(|p| p.path == input.display().to_string()) else {
            continue;
        };
        let bytes = fs::read(&input).unwrap();
        let below = String::from_utf8_lossy(&bytes[..p.pos as usize]).into_owned();
        for l in below.lines() {
            assert!(
                f.contains(l),
                "round {round}: `{l}` is below the checkpoint ({}) but not in fast.log",
                p.pos
            );
            assert!(
                s.contains(l),
                "round {round}: `{l}` is below the checkpoint ({}) but not in slow.log",
                p.pos
            );
        }
        checked = checked.max(below.lines().count());
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    let all: Vec<String> = (0..written).map(|i| format!("line-{i:06}")).collect();
    let child = run();
    wait_for("every line in both outputs", 25, || {
        let (f, s) = (whole_lines(&fast), whole_lines(&slow));
        all.iter().all(|l| f.contains(l) && s.contains(l))
    });
    drop(child);
    assert!(checked > 0, "the checkpoint never moved: the test proved nothing");
    println!(
        "{written} lines; up to {checked} below a checkpoint after a kill; the slow branch lagged by up to {lag} lines"
    );
}

#[test]
fn tail_and_listen_merge_into_one_drain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), d.join("out.log"));
    fs::write(&input, "from-tail-1\nfrom-tail-2\n").unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write(
        d,
        "run.toml",
        &format!(
            "[trains.files]\ncogs = [{{ kind = \"tail\", include = [{input:?}], poll_interval_ms = 20 }}]\n\
             [trains.net]\ncogs = [{{ kind = \"listen\", listen = \"127.0.0.1:{port}\" }}]\n\
             [trains.out]\ninputs = [\"files\", \"net\"]\ncogs = [{{ kind = \"file\", path = {output:?} }}]\n",
            input = input.display().to_string(),
            output = output.display().to_string(),
        ),
    );
    let mut c = tourbillon(d, &["run", config.to_str().unwrap()]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = Reap(c.spawn().unwrap());
    let mut sock = None;
    wait_for("the listener", 10, || {
        sock = TcpStream::connect(("127.0.0.1", port)).ok();
        sock.is_some()
    });
    let mut sock = sock.unwrap();
    sock.write_all(b"from-net-1\nfrom-net-2\n").unwrap();
    append(&input, "from-tail-3\n");
    let want = ["from-tail-1", "from-tail-2", "from-tail-3", "from-net-1", "from-net-2"];
    wait_for("both sources' lines in the one output", 10, || {
        let got = whole_lines(&output);
        want.iter().all(|w| got.contains(*w))
    });
    drop(sock);
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    let out = fs::read_to_string(&output).unwrap();
    assert_eq!(out.lines().count(), 5, "each line once: {out}\n{err}");
}

/// Runs `config` in `dir` until `done` holds (10 s at most), then SIGTERM;
/// the exit status must be 0.
fn run_until(dir: &Path, config: &Path, what: &str, done: impl FnMut() -> bool) {
    let mut c = tourbillon(dir, &["run", config.to_str().unwrap()]);
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = Reap(c.spawn().unwrap());
    wait_for(what, 10, done);
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    assert!(child.0.wait().unwrap().success());
}

#[test]
fn a_route_sends_each_level_to_its_own_file_and_the_rest_to_a_third() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("in.log");
    let levels = ["error", "warn", "info", "debug"];
    let body: String = (0..40)
        .map(|i| format!("{{\"level\":\"{}\",\"n\":{i}}}\n", levels[i % 4]))
        .collect();
    fs::write(&input, body).unwrap();
    let drain = |name: &str| {
        format!(
            "[{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = {:?} }}]",
            d.join(name).display().to_string()
        )
    };
    let config = write(
        d,
        "run.toml",
        &format!(
            "[trains.in]\ncogs = [{{ kind = \"tail\", include = [{input:?}], poll_interval_ms = 20 }}, \
             {{ kind = \"json_decode\" }}, {{ kind = \"route\", mode = \"first\", outputs = {{ \
             errors = [{{ field = \"level\", equals = \"error\" }}], warnings = [{{ field = \"level\", equals = \"warn\" }}] }} }}]\n\
             [trains.errors]\ninputs = [\"in.errors\"]\ncogs = {}\n\
             [trains.warnings]\ninputs = [\"in.warnings\"]\ncogs = {}\n\
             [trains.rest]\ninputs = [\"in\"]\ncogs = {}\n",
            drain("errors.log"),
            drain("warnings.log"),
            drain("rest.log"),
            input = input.display().to_string(),
        ),
    );
    let count = |name: &str| whole_lines(&d.join(name)).len();
    run_until(d, &config, "40 lines in the three files", || {
        count("errors.log") + count("warnings.log") + count("rest.log") == 40
    });
    let levels_in = |name: &str| -> Vec<String> {
        fs::read_to_string(d.join(name))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["level"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    assert_eq!(levels_in("errors.log"), vec!["error"; 10]);
    assert_eq!(levels_in("warnings.log"), vec!["warn"; 10]);
    let rest = levels_in("rest.log");
    assert_eq!(rest.len(), 20);
    assert!(rest.iter().all(|l| l == "info" || l == "debug"), "{rest:?}");
}

#[test]
fn malformed_json_goes_to_a_dead_letter_file_with_the_reason_and_the_rest_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, good, bad) = (d.join("in.log"), d.join("good.log"), d.join("bad.log"));
    fs::write(&input, "{\"n\":1}\n{\"n\":2,\nnot json at all\n{\"n\":3}\n").unwrap();
    let config = write(
        d,
        "run.toml",
        &format!(
            "[trains.in]\ncogs = [{{ kind = \"tail\", include = [{input:?}], poll_interval_ms = 20 }}, \
             {{ kind = \"json_decode\", error_output = \"bad\" }}]\n\
             [trains.good]\ninputs = [\"in\"]\ncogs = [{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = {good:?} }}]\n\
             [trains.dead]\ninputs = [\"in.bad\"]\ncogs = [{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = {bad:?} }}]\n",
            input = input.display().to_string(),
            good = good.display().to_string(),
            bad = bad.display().to_string(),
        ),
    );
    run_until(d, &config, "2 dead letters and 2 good lines", || {
        whole_lines(&good).len() == 2 && whole_lines(&bad).len() == 2
    });
    assert_eq!(fs::read_to_string(&good).unwrap(), "{\"n\":1}\n{\"n\":3}\n");
    let dead = fs::read_to_string(&bad).unwrap();
    for (line, raw) in dead.lines().zip(["{\"n\":2,", "not json at all"]) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let fields = v.as_object().expect("a dead letter is an object");
        assert!(
            fields.values().any(|x| x.as_str() == Some(raw)),
            "the line as read is kept: {line}"
        );
        assert!(
            fields
                .values()
                .any(|x| x.as_str().is_some_and(|s| s != raw && !s.is_empty())),
            "with the reason: {line}"
        );
    }
}

#[test]
fn an_error_output_nobody_reads_is_a_warning_not_an_error() {
    let (code, out, err) = check(
        "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\", error_output = \"bad\" }, \
         { kind = \"stdout\" }]\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "c.toml: ok (1 trains, 3 cogs)\n");
    assert_eq!(
        err,
        "tourbillon: warning: file c.toml: trains.t.cogs[1].error_output: nobody reads `t.bad` (no train has it in \
         `inputs`): what goes there is reported done and written nowhere\n"
    );
}

#[test]
fn a_train_ending_without_a_drain_that_nobody_reads_is_a_warning() {
    let (code, out, err) = check(
        "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\" }]\n\
         [trains.u]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\" }]\n\
         [trains.v]\ninputs = [\"u\"]\ncogs = [{ kind = \"stdout\" }]\n",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "c.toml: ok (3 trains, 5 cogs)\n");
    assert_eq!(
        err,
        "tourbillon: warning: file c.toml: trains.t.cogs[1]: train `t` ends without a drain and no train reads it: \
         what falls off its end is reported done and written nowhere (end it with a drain, or name `t` in another \
         train's `inputs`)\n",
        "`u` is read by `v`: no warning for it"
    );
}

#[test]
fn a_captured_graph_replays_and_is_compared_drain_by_drain() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body = "[log]\nlevel = \"error\"\n\
                [trains.in]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\", on_error = \"wrap\" }]\n\
                [trains.all]\ninputs = [\"in\"]\ncogs = [{ kind = \"json_encode\" }, { kind = \"file\", path = \"all.jsonl\" }]\n\
                [trains.some]\ninputs = [\"in\"]\ncogs = [\n  \
                { kind = \"filter\", conditions = [{ field = \"keep\", equals = true }] },\n  \
                { kind = \"set\", fields = { p = \"a\" } },\n  \
                { kind = \"json_encode\" },\n  { kind = \"file\", path = \"some.jsonl\" },\n]\n";
    write(d, "c.toml", body);
    let live = common::run_with_stdin(
        tourbillon(d, &["run", "c.toml", "--capture", "live.tbcap"]),
        b"{\"keep\":true,\"n\":1}\n{\"keep\":false,\"n\":2}\n{\"keep\":true,\"n\":3}\n",
    );
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    assert_eq!(fs::read_to_string(d.join("all.jsonl")).unwrap().lines().count(), 3);
    assert_eq!(fs::read_to_string(d.join("some.jsonl")).unwrap().lines().count(), 2);

    let same = tourbillon(d, &["replay", "live.tbcap", "c.toml", "--compare"])
        .output()
        .unwrap();
    let out = text(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{out}{}", text(&same.stderr));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("same       train all drain 2 (") && lines[0].ends_with("): 3 data"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("same       train some drain 4 (") && lines[1].ends_with("): 2 data"),
        "{out}"
    );
    assert_eq!(lines[2], "same: every drain got the same data (5 in 2 drains)");

    // One branch changed: only its drain differs.
    let diff = tourbillon(
        d,
        &[
            "replay",
            "live.tbcap",
            "c.toml",
            "--compare",
            "--set",
            "trains.some.cogs[1].fields.p=\"b\"",
        ],
    )
    .output()
    .unwrap();
    let out = text(&diff.stdout);
    assert_eq!(diff.status.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("same       train all drain 2 ("), "{out}");
    assert!(lines[1].starts_with("different  train some drain 4 ("), "{out}");
    assert!(lines[1].contains("2 vs 2 data; first at datum 1:"), "{out}");
    assert_eq!(lines[2], "different: 1 of 2 drains got other data");
}

#[test]
fn a_listen_shows_its_framing_when_it_is_not_newline() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        "[trains.tcp]\ncogs = [{ kind = \"listen\", listen = \"127.0.0.1:5514\", framing = \"octet_counting\" }, \
         { kind = \"file\", path = \"a.log\" }]\n\
         [trains.lines]\ncogs = [{ kind = \"listen\", listen = \"127.0.0.1:5170\" }, { kind = \"file\", path = \"b.log\" }]\n",
    );
    let out = tourbillon(dir.path(), &["train", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let drawing = listing.split("\n\n").next().unwrap();
    assert!(
        drawing.contains("│ listen  listen 127.0.0.1:5514; framing octet_counting │"),
        "{drawing}"
    );
    assert!(drawing.contains("│ listen  listen 127.0.0.1:5170 │"), "{drawing}");
    assert!(!drawing.contains("newline"), "{drawing}");
}
