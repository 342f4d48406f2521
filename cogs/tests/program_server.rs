//! The program server on real sockets: many clients at once, bad requests
//! mixed with good ones, Unix sockets, idle clients, clients that leave
//! before their answer.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{Escapement, Event, Train};
use tourbillon_cogs::program::{Functions, ProgramServer, ProgramServerSettings, ProgramStats, ServerStats};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

const SPEC: &str = r#"
name = "echo"
[programs.echo]
hooks = ["wait", "copy"]
args.n = { type = "int", required = true }
args.ms = { type = "int", default = 2 }
outputs.n = { type = "int", required = true }
[programs.boom]
outputs = {}
hooks = ["copy", "fail"]
args.n = { type = "int", required = true }
[hooks.wait]
reference = "sleep"
params = { ms = "${ms}" }
[hooks.copy]
reference = "set"
params = { n = "${n}" }
rectifiers = ["undo"]
[hooks.undo]
reference = "set"
[hooks.fail]
reference = "fail"
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Serves SPEC at `listen` (changed by `tune`) while `client` runs on
/// another thread; returns the counters once the client is through.
fn serve(
    dir: &Path,
    listen: &str,
    tune: impl FnOnce(&mut ProgramServerSettings),
    client: impl FnOnce() + Send + 'static,
) -> (ProgramStats, ServerStats) {
    let _turn = exclusive();
    let spec = dir.join("spec.toml");
    std::fs::write(&spec, SPEC).unwrap();
    let mut settings = ProgramServerSettings {
        listen: listen.to_owned(),
        spec,
        ..ProgramServerSettings::default()
    };
    tune(&mut settings);
    let server = ProgramServer::new(settings, Arc::new(Functions::standard())).unwrap();
    let stats = (server.program_stats(), server.stats());
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.core()
        .after(Duration::from_secs(20), |core| {
            eprintln!("watchdog: the test took more than 20 s");
            core.finish()
        })
        .unwrap();
    esc.add_train(Train::new("server").ids(Event::id_getter()).cog(server));
    let remote = esc.core().remote();
    let worker = thread::spawn(move || {
        client();
        remote.send(|core| core.finish()).unwrap();
    });
    esc.run().unwrap();
    worker.join().expect("the client's assertions hold");
    stats
}

/// Connects, retrying while the server has not bound yet.
fn connect(port: u16) -> TcpStream {
    for _ in 0..1000 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            return s;
        }
        thread::sleep(Duration::from_millis(5));
    }
    panic!("the server never listened on {port}");
}

fn read_responses(r: &mut impl BufRead, n: usize) -> Vec<Value> {
    (0..n)
        .map(|_| {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
        })
        .collect()
}

#[test]
fn a_hundred_clients_at_once_are_each_answered_on_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (stats, server) = serve(
        dir.path(),
        &format!("tcp:127.0.0.1:{port}"),
        |_| {},
        move || {
            let clients: Vec<_> = (0..100)
                .map(|i| {
                    thread::spawn(move || {
                        let mut s = connect(port);
                        let mut lines = String::new();
                        for k in 0..3 {
                            lines.push_str(&format!(
                                "{}\n",
                                json!({ "id": format!("{i}-{k}"), "program": "echo", "data": { "n": i * 10 + k } })
                            ));
                        }
                        lines.push_str("{ not json\n");
                        s.write_all(lines.as_bytes()).unwrap();
                        let mut r = BufReader::new(s);
                        let mut got = read_responses(&mut r, 4);
                        let rejected: Vec<Value> = got.iter().filter(|v| v["status"] == "rejected").cloned().collect();
                        assert_eq!(rejected.len(), 1, "{got:?}");
                        assert_eq!(rejected[0]["id"], Value::Null);
                        got.retain(|v| v["status"] == "ok");
                        got.sort_by_key(|v| v["id"].as_str().unwrap().to_owned());
                        for (k, v) in got.iter().enumerate() {
                            assert_eq!(v["id"], format!("{i}-{k}"));
                            assert_eq!(v["outputs"], json!({ "n": i * 10 + k }));
                        }
                        assert_eq!(got.len(), 3);
                    })
                })
                .collect();
            for c in clients {
                c.join().unwrap();
            }
        },
    );
    assert_eq!((stats.ok.get(), stats.rejected.get()), (300, 100));
    assert_eq!(server.accepted.get(), 100);
    assert_eq!(server.peak_in_flight.get(), 3, "a client's requests run side by side");
}

#[test]
fn malformed_oversized_unknown_and_invalid_requests_get_answers_between_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (stats, server) = serve(
        dir.path(),
        &format!("tcp:127.0.0.1:{port}"),
        |s| s.max_request_bytes = 200,
        move || {
            let mut s = connect(port);
            let good = |id: &str, n: i64| format!("{}\n", json!({ "id": id, "program": "echo", "data": { "n": n } }));
            let huge = format!("{{\"id\": \"huge\", \"pad\": \"{}\"}}\n", "x".repeat(5000));
            let mut wire = String::new();
            wire.push_str(&good("g1", 1));
            wire.push_str("[1, 2]\n");
            wire.push_str(&huge[..2500]);
            let wire2 = format!(
                "{}{}\n\r\n{}{}{}{}",
                &huge[2500..],
                r#"{"id": "u", "program": "nope"}"#,
                r#"{"id": "i", "program": "echo", "data": {"n": "one"}}"#.to_owned() + "\n",
                good("g2", 2),
                r#"{"id": "b", "program": "boom", "data": {"n": 5}}"#.to_owned() + "\n",
                good("g3", 3),
            );
            s.write_all(wire.as_bytes()).unwrap();
            s.flush().unwrap();
            thread::sleep(Duration::from_millis(20));
            s.write_all(wire2.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            let got = read_responses(&mut r, 8);
            let by_id = |id: &str| {
                got.iter()
                    .find(|v| v["id"] == id)
                    .unwrap_or_else(|| panic!("{id}: {got:?}"))
            };
            for (id, n) in [("g1", 1), ("g2", 2), ("g3", 3)] {
                assert_eq!(by_id(id)["status"], "ok");
                assert_eq!(by_id(id)["outputs"]["n"], n);
            }
            assert!(by_id("u")["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown program `nope`"));
            assert!(by_id("i")["error"]["message"]
                .as_str()
                .unwrap()
                .contains("`n` must be int"));
            assert_eq!(by_id("b")["status"], "compensated");
            let nulls: Vec<&str> = got
                .iter()
                .filter(|v| v["id"].is_null())
                .map(|v| v["error"]["message"].as_str().unwrap())
                .collect();
            assert_eq!(nulls.len(), 2, "{got:?}");
            assert!(nulls.iter().any(|m| m.contains("must be a JSON object")), "{nulls:?}");
            assert!(
                nulls.iter().any(|m| m.contains("over the limit of 200 bytes")),
                "{nulls:?}"
            );
        },
    );
    assert_eq!(stats.rejected.get(), 4);
    assert_eq!(server.oversized.get(), 1);
}

#[test]
fn a_unix_socket_serves_and_an_idle_client_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("programs.sock");
    let p = path.clone();
    let (_, server) = serve(
        dir.path(),
        &format!("unix:{}", path.display()),
        |s| s.idle_timeout_ms = 40,
        move || {
            let mut s = (0..1000)
                .find_map(|_| {
                    std::os::unix::net::UnixStream::connect(&p)
                        .inspect_err(|_| thread::sleep(Duration::from_millis(5)))
                        .ok()
                })
                .expect("the server listens");
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"{\"id\": 7, \"program\": \"echo\", \"data\": {\"n\": 7}}\n")
                .unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let got = read_responses(&mut r, 1);
            assert_eq!(
                (got[0]["id"].clone(), got[0]["status"].clone()),
                (json!(7), json!("ok"))
            );
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).expect("closed by the server, not timed out");
            assert!(rest.is_empty());
        },
    );
    assert_eq!(server.idle_closed.get(), 1);
    assert!(!path.exists(), "the socket file is removed at finish");
}

#[test]
fn a_client_that_leaves_before_its_answer_does_not_disturb_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (stats, server) = serve(
        dir.path(),
        &format!("tcp:127.0.0.1:{port}"),
        |_| {},
        move || {
            let mut gone = connect(port);
            gone.write_all(b"{\"id\": \"gone\", \"program\": \"echo\", \"data\": {\"n\": 1, \"ms\": 30}}\n")
                .unwrap();
            drop(gone);
            let mut s = connect(port);
            s.write_all(b"{\"id\": \"stay\", \"program\": \"echo\", \"data\": {\"n\": 2, \"ms\": 60}}\n")
                .unwrap();
            let got = read_responses(&mut BufReader::new(s), 1);
            assert_eq!(got[0]["outputs"]["n"], 2);
        },
    );
    assert_eq!(stats.ok.get(), 2, "the run of the client that left still ran");
    assert_eq!(server.accepted.get(), 2);
}

#[test]
fn a_client_with_too_much_in_flight_is_read_again_once_answers_go_out() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (stats, server) = serve(
        dir.path(),
        &format!("tcp:127.0.0.1:{port}"),
        |s| s.max_in_flight_per_client = 2,
        move || {
            let mut s = connect(port);
            let wire: String = (0..200)
                .map(|n| {
                    format!(
                        "{}\n",
                        json!({ "id": n, "program": "echo", "data": { "n": n, "ms": 1 } })
                    )
                })
                .collect();
            s.write_all(wire.as_bytes()).unwrap();
            let got = read_responses(&mut BufReader::new(s), 200);
            let mut ids: Vec<i64> = got.iter().map(|v| v["id"].as_i64().unwrap()).collect();
            ids.sort();
            assert_eq!(ids, (0..200).collect::<Vec<_>>());
        },
    );
    assert_eq!(stats.ok.get(), 200);
    assert_eq!(server.peak_in_flight.get(), 2);
}
