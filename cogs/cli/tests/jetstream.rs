//! The JetStream cogs configured in the `tourbillon` binary, against a
//! real `nats-server -js` on a free loopback port, its store in a temporary
//! directory: a consumer killed with `kill -9` and restarted loses nothing;
//! a server restarted mid-stream loses nothing and stores nothing twice;
//! two processes share one durable consumer; configured cogs are checked
//! without a server; a configured reject terms poison.
//!
//! Without `nats-server` on the machine, each test says it is skipped and
//! passes (CI installs it: `.ci/run`).
#![cfg(feature = "nats")]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;
use common::BIN;
#[macro_use]
#[path = "../../tests/common/nats.rs"]
mod nats;
use nats::{
    block, consumer_backlog, create_stream, js, line, lines, publish, signal, stream_messages, wait_until, Server,
};

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

/// The `tourbillon` binary on a configuration, its log in `log`.
fn tourbillon(config: &Path, log: &Path) -> Proc {
    let log = fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new(BIN)
        .arg("run")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(Some(child))
}

/// A consumer process: the durable `work` of stream `T` into a file.
fn consumer_config(server: &Server, name: &str, out: &Path, extra: &str) -> PathBuf {
    let config = server.path(&format!("{name}.toml"));
    fs::write(
        &config,
        format!(
            "[trains.consume]\ncogs = [\n  {{ kind = \"jetstream_consume\", servers = [\"{}\"], stream = \"T\", \
             consumer = \"work\", ack_wait_ms = 1500, {extra} }},\n  {{ kind = \"file\", path = \"{}\" }},\n]\n",
            server.url(),
            out.display()
        ),
    )
    .unwrap();
    config
}

/// SIGTERM: a graceful finish, and a clean exit.
fn stop(mut p: Proc) {
    let mut c = p.0.take().expect("running");
    signal(&c, libc::SIGTERM);
    let status = c.wait().unwrap();
    assert!(status.success(), "tourbillon exited with {status}");
}

#[test]
fn a_consumer_killed_mid_stream_and_restarted_loses_nothing() {
    let server = server_or_skip!("a_consumer_killed_mid_stream_and_restarted_loses_nothing");
    let n = 20_000;
    let max_in_flight = 200;
    create_stream(&server, "T", "t.>");
    publish(&server, "t.lines", (0..n).map(line));
    let out = server.path("out.log");
    let extra = format!("batch = 50, max_in_flight = {max_in_flight}");
    let config = consumer_config(&server, "consumer", &out, &extra);
    let mut first = tourbillon(&config, &server.path("consumer.log"));
    wait_until("the consumer writes", || !lines(&out).is_empty());
    first.child().kill().unwrap();
    first.child().wait().unwrap();
    let at_kill = lines(&out).len();
    eprintln!("killed with {at_kill} of {n} lines written");

    let second = tourbillon(&config, &server.path("consumer.log"));
    wait_until("every line is written", || {
        lines(&out).into_iter().collect::<BTreeSet<_>>().len() == n
    });
    wait_until("every message is acked", || {
        consumer_backlog(&server, "T", "work") == (0, 0)
    });
    stop(second);
    let got = lines(&out);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &got {
        *count.entry(l).or_default() += 1;
    }
    let want: BTreeSet<String> = (0..n).map(line).collect();
    assert_eq!(count.keys().map(|s| s.to_string()).collect::<BTreeSet<_>>(), want);
    let repeated = got.len() - n;
    assert!(
        repeated <= max_in_flight,
        "{repeated} lines repeated; at most the {max_in_flight} that can be in flight unacked"
    );
}

#[test]
fn a_server_restarted_mid_stream_loses_nothing_and_stores_nothing_twice() {
    let mut server = server_or_skip!("a_server_restarted_mid_stream_loses_nothing_and_stores_nothing_twice");
    let n = 5000;
    let input = server.path("in.log");
    fs::write(&input, (0..n).map(|i| line(i) + "\n").collect::<String>()).unwrap();
    let out = server.path("out.log");
    let consumer = consumer_config(
        &server,
        "consumer",
        &out,
        "create_stream = true, subjects = [\"t.>\"], batch = 20",
    );
    let c = tourbillon(&consumer, &server.path("consumer.log"));
    wait_until("the stream exists", || {
        block(async { js(&server).await.get_stream("T").await.is_ok() })
    });
    let publisher = server.path("publisher.toml");
    fs::write(
        &publisher,
        format!(
            "[trains.publish]\ncogs = [\n  {{ kind = \"tail\", include = [\"{}\"], batch = true, read_bytes_per_turn = 4096 }},\n  \
             {{ kind = \"jetstream_publish\", servers = [\"{}\"], subject = \"t.lines\", max_in_flight = 16, ack_timeout_ms = 1000 }},\n]\n",
            input.display(),
            server.url()
        ),
    )
    .unwrap();
    let mut p = tourbillon(&publisher, &server.path("publisher.log"));
    wait_until("some lines go through", || !lines(&out).is_empty());
    server.stop();
    let during = lines(&out).len();
    eprintln!("server stopped with {during} of {n} lines through");
    std::thread::sleep(Duration::from_millis(500));
    server.run();
    let status = p.child().wait().unwrap();
    assert!(status.success(), "the publisher exited with {status}");
    wait_until("every line is written", || {
        lines(&out).into_iter().collect::<BTreeSet<_>>().len() == n
    });
    stop(c);
    let got: BTreeSet<String> = lines(&out).into_iter().collect();
    assert_eq!(got, (0..n).map(line).collect::<BTreeSet<_>>());
    assert_eq!(
        stream_messages(&server, "T"),
        n as u64,
        "retried publishes are stored once"
    );
}

#[test]
fn two_consumers_share_one_durable_consumer() {
    let server = server_or_skip!("two_consumers_share_one_durable_consumer");
    let n = 4000;
    create_stream(&server, "T", "t.>");
    let (out_b, out_c) = (server.path("b.log"), server.path("c.log"));
    let (log_b, log_c) = (server.path("b.err"), server.path("c.err"));
    let b = tourbillon(&consumer_config(&server, "b", &out_b, "batch = 10"), &log_b);
    let c = tourbillon(&consumer_config(&server, "c", &out_c, "batch = 10"), &log_c);
    let bound = |log: &Path| fs::read_to_string(log).unwrap_or_default().contains("bound to stream");
    wait_until("both consumers are bound", || bound(&log_b) && bound(&log_c));
    publish(&server, "t.lines", (0..n).map(line));
    wait_until("every line is written", || {
        lines(&out_b).len() + lines(&out_c).len() >= n
    });
    wait_until("every message is acked", || {
        consumer_backlog(&server, "T", "work") == (0, 0)
    });
    stop(b);
    stop(c);
    let (got_b, got_c) = (lines(&out_b), lines(&out_c));
    eprintln!("b wrote {}, c wrote {}", got_b.len(), got_c.len());
    let all: BTreeSet<&String> = got_b.iter().chain(&got_c).collect();
    assert_eq!(all.len(), n, "every line");
    assert_eq!(got_b.len() + got_c.len(), n, "each once");
    assert!(!got_b.is_empty() && !got_c.is_empty(), "both took a share");
}

/// `tourbillon check` on a configuration; (exit code, stderr).
fn check(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    fs::write(&path, config).unwrap();
    let out = Command::new(BIN).arg("check").arg(&path).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn configured_jetstream_cogs_are_checked_without_a_server() {
    let good = r#"
[trains.work]
cogs = [
    { kind = "jetstream_consume", servers = ["nats://127.0.0.1:4222"], stream = "LOGS", consumer = "workers",
      create_stream = true, subjects = ["logs.>"], start_time = "2026-01-02T03:04:05Z" },
    { kind = "json_decode", on_error = "pass", error_field = "decode_error" },
    { kind = "jetstream_reject", field = "decode_error" },
    { kind = "jetstream_publish", subject = "logs.clean", auth = { token_file = "TOKEN" } },
]
"#;
    // `check` reads the credential files: this one must be there.
    let token = tempfile::NamedTempFile::new().unwrap();
    let good = good.replace("TOKEN", &token.path().display().to_string());
    assert_eq!(check(&good), (0, String::new()));
    let bad = r#"
[trains.work]
cogs = [
    { kind = "stdin" },
    { kind = "jetstream_reject", field = "error" },
    { kind = "jetstream_publish", subject = "logs.*", max_in_flight = 0 },
    { kind = "jetstream_publish", subject = "x", auth = { token_file = "t", nkey_file = "n" } },
]
"#;
    let (code, err) = check(bad);
    assert_eq!(code, 1, "{err}");
    for want in [
        "trains.work.cogs[1].kind: jetstream_reject needs a jetstream_consume supply before it",
        "trains.work.cogs[2].subject: a subject to publish to has no spaces or wildcards",
        "trains.work.cogs[3].auth: give one of",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
}

/// The same poison, configured: `jetstream_reject` on a field a decoder
/// sets, in the binary.
#[test]
fn a_configured_reject_terms_poison_after_max_deliver() {
    let server = server_or_skip!("a_configured_reject_terms_poison_after_max_deliver");
    create_stream(&server, "T", "t.>");
    let n = 200;
    publish(
        &server,
        "t.lines",
        (0..n).map(|i| {
            if i == 7 {
                "not json".to_owned()
            } else {
                format!("{{\"n\":{i}}}")
            }
        }),
    );
    let out = server.path("out.log");
    let config = server.path("reject.toml");
    fs::write(
        &config,
        format!(
            "[trains.r]\ncogs = [\n  {{ kind = \"jetstream_consume\", servers = [\"{}\"], stream = \"T\", consumer = \"r\", \
             max_deliver = 2, nak_delay_ms = 50 }},\n  {{ kind = \"json_decode\", on_error = \"pass\", error_field = \"bad\" }},\n  \
             {{ kind = \"jetstream_reject\", field = \"bad\" }},\n  {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = \"{}\" }},\n]\n",
            server.url(),
            out.display()
        ),
    )
    .unwrap();
    let c = tourbillon(&config, &server.path("reject.log"));
    wait_until("the good lines are written and nothing is pending", || {
        lines(&out).len() == n - 1 && consumer_backlog(&server, "T", "r") == (0, 0)
    });
    stop(c);
    let log = fs::read_to_string(server.path("reject.log")).unwrap();
    assert!(log.contains("rejected on its delivery 2 (the last) is termed"), "{log}");
    assert_eq!(lines(&out).len(), n - 1, "the others, once each");
}
