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

#[test]
fn the_example_nodes_pass_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kv_nodes");
    for name in ["counter.toml", "node.toml", "writer.toml"] {
        let out = Command::new(BIN).arg("check").arg(dir.join(name)).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
