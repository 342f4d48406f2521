//! The key-value cogs configured in the `tourbillon` binary, against a real
//! `nats-server -js` on a free loopback port: a watcher killed with
//! `kill -9`, restarted, and then a server restart lose no update (the
//! watcher resumes after the last revision in its state directory); a
//! compare-and-set that loses goes to the error output with why.
//!
//! Without `nats-server` on the machine, each test says it is skipped and
//! passes.
#![cfg(feature = "nats")]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use serde_json::Value;

mod common;
use common::BIN;
#[macro_use]
#[path = "../../tests/common/nats.rs"]
mod nats;
use nats::{block, js, lines, signal, wait_until, Server};

/// A child process, killed if a failing test leaves it running.
struct Proc(Option<Child>);

impl Proc {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tourbillon(config: &Path, log: &Path, stdin: Stdio) -> Proc {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg(config)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// SIGTERM: a graceful finish, and a clean exit.
fn stop(mut p: Proc) {
    let mut c = p.0.take().expect("running");
    signal(&c, libc::SIGTERM);
    let status = c.wait().unwrap();
    assert!(status.success(), "tourbillon exited with {status}");
}

/// Puts `{"n": i}` for each `i` to keys `k0`..`k29` with a bare client,
/// every ack awaited.
fn put(server: &Server, range: std::ops::Range<usize>) {
    block(async {
        let js = jetstream::context::ContextBuilder::new()
            .max_ack_inflight(512)
            .backpressure_on_inflight(true)
            .build(async_nats::connect(server.url()).await.unwrap());
        let mut acks = Vec::new();
        for i in range {
            let subject = format!("$KV.shared.k{}", i % 30);
            acks.push(js.publish(subject, format!("{{\"n\":{i}}}").into()).await.unwrap());
            // Acks not awaited hold their place in the 512 in flight.
            if acks.len() == 256 {
                for a in acks.drain(..) {
                    a.await.unwrap();
                }
            }
        }
        for a in acks {
            a.await.unwrap();
        }
    })
}

/// The revisions in a file of JSON lines, each with how many times it came.
fn revisions(out: &Path) -> BTreeMap<u64, usize> {
    let mut count = BTreeMap::new();
    for l in lines(out) {
        let v: Value = serde_json::from_str(&l).unwrap_or_else(|e| panic!("{l}: {e}"));
        *count.entry(v["revision"].as_u64().unwrap()).or_default() += 1;
    }
    count
}

#[test]
fn a_watcher_killed_and_a_server_restarted_lose_no_update() {
    let mut server = server_or_skip!("a_watcher_killed_and_a_server_restarted_lose_no_update");
    let n = 20_000;
    let max_in_flight = 200;
    let out = server.path("out.jsonl");
    let config = server.path("watch.toml");
    fs::write(
        &config,
        format!(
            "[trains.watch]\ncogs = [\n  {{ kind = \"kv_watch\", servers = [\"{}\"], bucket = \"shared\", \
             create_bucket = true, state_dir = {:?}, max_in_flight = {max_in_flight} }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?} }},\n]\n",
            server.url(),
            server.path("state").display().to_string(),
            out.display().to_string()
        ),
    )
    .unwrap();
    let log = server.path("watch.log");
    let mut first = tourbillon(&config, &log, Stdio::null());
    wait_until("the watcher made the bucket", || {
        block(async { js(&server).await.get_key_value("shared").await.is_ok() })
    });
    put(&server, 0..n);
    wait_until("the watcher writes", || lines(&out).len() > 100);
    first.child().kill().unwrap();
    first.child().wait().unwrap();
    let at_kill = lines(&out).len();
    eprintln!("killed with {at_kill} of {n} updates written");

    let second = tourbillon(&config, &log, Stdio::null());
    wait_until("every update is written", || revisions(&out).len() == n);

    // The server goes away and comes back; updates made after it are seen.
    server.stop();
    std::thread::sleep(Duration::from_millis(300));
    server.run();
    put(&server, n..n + 1000);
    wait_until("the updates after the server restart are written", || {
        revisions(&out).len() == n + 1000
    });
    stop(second);

    let got = revisions(&out);
    let want: Vec<u64> = (1..=(n as u64 + 1000)).collect();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), want, "every revision");
    let repeated: usize = got.values().map(|c| c - 1).sum();
    eprintln!("{repeated} updates written twice");
    assert!(
        repeated <= 2 * max_in_flight,
        "{repeated} repeated; at most what was in flight or done and not yet saved"
    );
    let log = fs::read_to_string(&log).unwrap();
    assert!(log.contains("resuming after revision"), "{log}");
}

#[test]
fn a_compare_and_set_that_loses_goes_to_the_error_output() {
    let server = server_or_skip!("a_compare_and_set_that_loses_goes_to_the_error_output");
    let lost = server.path("lost.jsonl");
    let config = server.path("put.toml");
    fs::write(
        &config,
        format!(
            "[trains.put]\ncogs = [\n  {{ kind = \"stdin\" }},\n  {{ kind = \"json_decode\" }},\n  \
             {{ kind = \"kv_put\", servers = [\"{}\"], bucket = \"cas\", create_bucket = true, \
             revision_field = \"rev\", error_output = \"conflicts\" }},\n]\n\
             [trains.lost]\ninputs = [\"put.conflicts\"]\ncogs = [{{ kind = \"json_encode\" }}, \
             {{ kind = \"file\", path = {:?} }}]\n",
            server.url(),
            lost.display().to_string()
        ),
    )
    .unwrap();
    let log = server.path("put.log");
    let mut p = tourbillon(&config, &log, Stdio::piped());
    let mut stdin = p.child().stdin.take().unwrap();
    // Both expect the key not to exist: the second loses.
    stdin
        .write_all(
            b"{\"key\":\"c\",\"value\":{\"who\":1},\"rev\":0}\n{\"key\":\"c\",\"value\":{\"who\":2},\"rev\":0}\n",
        )
        .unwrap();
    drop(stdin);
    let status = p.child().wait().unwrap();
    p.0 = None;
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
    let lost = lines(&lost);
    assert_eq!(lost.len(), 1, "{lost:?}");
    let v: Value = serde_json::from_str(&lost[0]).unwrap();
    assert_eq!(v["value"]["who"], 2);
    assert!(v["error"].as_str().unwrap().contains("wrong last sequence"), "{v}");
    let value = block(async {
        js(&server)
            .await
            .get_key_value("cas")
            .await
            .unwrap()
            .get("c")
            .await
            .unwrap()
    });
    assert_eq!(value.as_deref(), Some(&b"{\"who\":1}"[..]));
    let log = fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("key c:") && log.contains("sent to the error output"),
        "{log}"
    );
}

/// An example node's configuration in `dir`, talking to `server`, its pace
/// `interval_ms` instead of a second.
fn example(server: &Server, name: &str, dir: &Path, interval_ms: u64) -> std::path::PathBuf {
    let text = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/kv_nodes")
            .join(name),
    )
    .unwrap()
    .replace("nats://127.0.0.1:4222", &server.url());
    assert!(text.contains(&server.url()), "{name} names no server");
    let paced = text.replace("interval_ms = 1000", &format!("interval_ms = {interval_ms}"));
    assert!(
        name != "counter.toml" || paced != text,
        "the counter is paced by interval_ms = 1000"
    );
    let path = dir.join(name);
    fs::write(&path, paced).unwrap();
    path
}

/// A node of `examples/kv_nodes/` started in `dir` (its relative paths are
/// there), its stdout to `out` and its log (at info) to `log`.
fn node(config: &Path, dir: &Path, out: &Path, log: &Path) -> Proc {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg(config)
        .current_dir(dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(fs::File::create(out).unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// `(revision, count)` of each line of a node's output, in file order.
fn counts(path: &Path) -> Vec<(u64, i64)> {
    lines(path)
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
            assert_eq!(v["key"], "counter", "{l}");
            (v["revision"].as_u64().unwrap(), v["value"]["count"].as_i64().unwrap())
        })
        .collect()
}

/// The `kv_put` summaries in a counter's log: (acknowledged, refused by
/// compare-and-set), summed over its trains.
fn put_summary(log: &Path) -> (u64, u64) {
    let log = fs::read_to_string(log).unwrap();
    let mut sum = (0, 0);
    let mut found = 0;
    for l in log
        .lines()
        .filter(|l| l.contains("kv_put: bucket shared: ") && l.contains(" acknowledged, "))
    {
        let n: Vec<u64> = l
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .map(|w| w.parse().unwrap())
            .collect();
        // ... acknowledged, refused ..., invalid, retried: the last four numbers.
        let n = &n[n.len() - 4..];
        sum.0 += n[0];
        sum.1 += n[1];
        found += 1;
    }
    assert_eq!(found, 2, "a summary per kv_put (start, count): {log}");
    sum
}

/// The three nodes of `examples/kv_nodes/`, two counters at once: every
/// update is seen by the watcher node and written once by the writer, in
/// order, and the racing counters lose no increment: the value is the
/// number of puts that succeeded, each count from 1 up once, and every
/// put that lost its compare-and-set is counted and shown.
#[test]
fn two_counters_racing_lose_no_increment_and_every_node_sees_each_update() {
    let server = server_or_skip!("two_counters_racing_lose_no_increment_and_every_node_sees_each_update");
    let dir = server.path("nodes");
    fs::create_dir_all(&dir).unwrap();
    let node_config = example(&server, "node.toml", &dir, 1000);
    let writer_config = example(&server, "writer.toml", &dir, 1000);
    let counter_config = example(&server, "counter.toml", &dir, 50);
    let seen = dir.join("seen.jsonl");
    let written = dir.join("shared.jsonl");
    let watcher = node(&node_config, &dir, &seen, &dir.join("node.log"));
    let writer = node(&writer_config, &dir, &dir.join("writer.out"), &dir.join("writer.log"));
    wait_until("the nodes made the bucket", || {
        block(async { js(&server).await.get_key_value("shared").await.is_ok() })
    });
    let mut counters: Vec<Proc> = ["a", "b"]
        .iter()
        .map(|c| {
            node(
                &counter_config,
                &dir,
                &dir.join(format!("lost-{c}.jsonl")),
                &dir.join(format!("counter-{c}.log")),
            )
        })
        .collect();
    let want = 40;
    wait_until("the counters counted", || lines(&written).len() >= want);
    for c in &counters {
        signal(c.0.as_ref().unwrap(), libc::SIGTERM);
    }
    for (c, name) in counters.iter_mut().zip(["a", "b"]) {
        let status = c.child().wait().unwrap();
        c.0 = None;
        let log = dir.join(format!("counter-{name}.log"));
        assert!(status.success(), "counter {name}: {}", fs::read_to_string(log).unwrap());
    }

    // The counters are gone: the value they leave.
    let last = block(async {
        js(&server)
            .await
            .get_key_value("shared")
            .await
            .unwrap()
            .entry("counter")
            .await
            .unwrap()
            .expect("the key exists")
    });
    let value: Value = serde_json::from_slice(&last.value).unwrap();
    let final_count = value["count"].as_i64().unwrap();
    wait_until("the writer has the last update", || {
        counts(&written).last().map(|&(r, _)| r) == Some(last.revision)
    });
    wait_until("the watcher node has the last update", || {
        counts(&seen).last().map(|&(r, _)| r) == Some(last.revision)
    });
    stop(writer);
    stop(watcher);

    let written = counts(&written);
    let n = written.len() as i64;
    assert!(n >= want as i64, "{n} updates");
    let each: Vec<i64> = written.iter().map(|&(_, c)| c).collect();
    assert_eq!(each, (1..=n).collect::<Vec<_>>(), "each count once, in order, no gap");
    assert!(
        written.windows(2).all(|w| w[0].0 < w[1].0),
        "revisions in order: {written:?}"
    );
    assert_eq!(final_count, n, "the value is the number of updates");
    assert_eq!(counts(&seen), written, "the watcher node saw every update, in order");

    let (a, b) = (
        put_summary(&dir.join("counter-a.log")),
        put_summary(&dir.join("counter-b.log")),
    );
    eprintln!("counter a: {a:?}, counter b: {b:?} (acknowledged, lost)");
    assert_eq!(
        (a.0 + b.0) as i64,
        final_count,
        "the value is the number of increments that succeeded"
    );
    let lost = lines(&dir.join("lost-a.jsonl")).len() + lines(&dir.join("lost-b.jsonl")).len();
    assert_eq!(
        (a.1 + b.1) as usize,
        lost,
        "every lost compare-and-set is counted and shown"
    );
    // Both start trains try to make the key: one of them loses at least.
    assert!(lost >= 1, "racing counters conflict");
    for l in lines(&dir.join("lost-a.jsonl"))
        .iter()
        .chain(&lines(&dir.join("lost-b.jsonl")))
    {
        assert!(l.contains("wrong last sequence"), "{l}");
    }
}

#[test]
fn the_example_nodes_pass_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kv_nodes");
    for name in ["counter.toml", "node.toml", "writer.toml"] {
        let out = Command::new(BIN).arg("check").arg(dir.join(name)).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
