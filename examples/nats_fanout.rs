//! Many machines through NATS JetStream: host A tails a file and publishes
//! each line; hosts B and C, separate processes, consume from one durable
//! consumer, enrich each event and write it to a file of their own.
//! Together they write every line exactly once (at least once if one of
//! them crashes: what it had not acked goes to the other).
//!
//! ```sh
//! nats-server -js -sd /tmp/js &                  # any JetStream server
//! cargo run --example nats_fanout -- consume B /tmp/b.jsonl nats://127.0.0.1:4222 &
//! cargo run --example nats_fanout -- consume C /tmp/c.jsonl nats://127.0.0.1:4222 &
//! cargo run --example nats_fanout -- publish /var/log/app.log nats://127.0.0.1:4222
//! ```
//!
//! `publish IN URL` reads `IN` to its end, publishes every line to subject
//! `fanout.lines` (each reported done on the server's ack), and exits.
//! `consume NAME OUT URL` creates the stream `FANOUT` and the durable
//! consumer `workers` if they are missing, and runs until SIGTERM or
//! SIGINT: each line is decoded as JSON (other lines become
//! `{"message": ...}`), gets `worker = NAME`, the host and the time, and is
//! appended to `OUT` as a JSON line.
//!
//! `demo` does it all on this machine: it starts `nats-server` on a free
//! loopback port, runs A, B and C as child processes of this program on
//! 10,000 lines, and checks that B's and C's files hold every line once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tourbillon::{Escapement, Event, Exit, Train};
use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
use tourbillon_cogs::jetstream::{ConsumeSettings, JetStreamDrain, JetStreamSupply, PublishSettings};
use tourbillon_cogs::step::fields::{SetFields, SetSettings};
use tourbillon_cogs::step::json::{JsonDecode, JsonDecodeSettings, JsonEncode, OnError};
use tourbillon_cogs::supply::tail::{Tail, TailSettings};

const USAGE: &str = "usage: nats_fanout publish IN URL | consume NAME OUT URL | demo";
const STREAM: &str = "FANOUT";
const SUBJECT: &str = "fanout.lines";

fn publish(input: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut esc = Escapement::new()?;
    esc.add_train(
        Train::new("a")
            .ids(Event::id_getter())
            .cog(Tail::new(TailSettings {
                include: vec![input.into()],
                batch: true,
                ..TailSettings::default()
            })?)
            .cog(JetStreamDrain::new(PublishSettings {
                servers: vec![url.into()],
                subject: SUBJECT.into(),
                ..PublishSettings::default()
            })?),
    );
    match esc.run()? {
        Exit::Clean => Ok(()),
        other => Err(format!("stopped: {other:?}").into()),
    }
}

fn consume(name: &str, output: &str, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let mut enrich = SetSettings {
        host: Some("host".into()),
        received_at: Some("received_at".into()),
        ..SetSettings::default()
    };
    enrich.fields.insert("worker".into(), Value::from(name));
    let mut esc = Escapement::new()?;
    esc.add_train(
        Train::new(name.to_owned())
            .ids(Event::id_getter())
            .cog(JetStreamSupply::new(ConsumeSettings {
                servers: vec![url.into()],
                stream: STREAM.into(),
                create_stream: true,
                subjects: vec!["fanout.>".into()],
                consumer: "workers".into(),
                batch: 50,
                ..ConsumeSettings::default()
            })?)
            .cog(JsonDecode::new(JsonDecodeSettings {
                on_error: OnError::Wrap,
                ..JsonDecodeSettings::default()
            })?)
            .cog(SetFields::new(enrich)?)
            .cog(JsonEncode::new(Default::default())?)
            .cog(FileDrain::new(FileDrainSettings {
                path: output.into(),
                ..FileDrainSettings::default()
            })?),
    );
    esc.run()?;
    Ok(())
}

/// Every role on this machine, checked.
fn demo() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("nats_fanout.{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut server = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start nats-server ({e}); install it (apt-get install nats-server)"))?;
    let result = demo_with(&dir, &url);
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn demo_with(dir: &Path, url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let n = 10_000;
    let input = dir.join("app.log");
    let lines: String = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!("{{\"n\":{i},\"msg\":\"json line\"}}\n")
            } else {
                format!("plain line {i}\n")
            }
        })
        .collect();
    std::fs::write(&input, lines)?;
    let me = std::env::current_exe()?;
    let run = |args: &[&str]| -> std::io::Result<Child> { Command::new(&me).args(args).spawn() };
    let out: Vec<PathBuf> = ["b", "c"].iter().map(|w| dir.join(format!("{w}.jsonl"))).collect();
    let b = run(&["consume", "B", &out[0].to_string_lossy(), url])?;
    let c = run(&["consume", "C", &out[1].to_string_lossy(), url])?;
    let status = run(&["publish", &input.to_string_lossy(), url])?.wait()?;
    if !status.success() {
        return Err(format!("the publisher failed: {status}").into());
    }
    let count = |p: &Path| std::fs::read_to_string(p).map_or(0, |s| s.lines().count());
    let start = Instant::now();
    while count(&out[0]) + count(&out[1]) < n && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut child in [b, c] {
        // SAFETY: a plain kill(2) of our own child: SIGTERM, a graceful finish.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait()?;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (worker, path) in ["B", "C"].iter().zip(&out) {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        println!("{worker} wrote {} lines", text.lines().count());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)?;
            let key = match (v.get("n"), v.get("message")) {
                (Some(n), _) => format!("json {n}"),
                (_, Some(m)) => m.to_string(),
                _ => return Err(format!("unexpected line: {line}").into()),
            };
            *seen.entry(key).or_default() += 1;
        }
    }
    let once = seen.values().filter(|&&c| c == 1).count();
    println!("{once} of {n} lines written exactly once");
    if once == n && seen.len() == n {
        Ok(())
    } else {
        Err("some lines are missing or repeated".into())
    }
}

fn main() -> ExitCode {
    let _ = tourbillon::logging::init(&Default::default());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args[..] {
        ["publish", input, url] => publish(input, url),
        ["consume", name, output, url] => consume(name, output, url),
        ["demo"] => demo(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nats_fanout: {e}");
            ExitCode::FAILURE
        }
    }
}
