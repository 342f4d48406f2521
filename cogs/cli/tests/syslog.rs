//! `listen` + `parse format = "syslog"` is a syslog server: a real
//! `logger` (util-linux) sends RFC 5424 and RFC 3164 messages over UDP to
//! the `tourbillon` binary, which writes each one's fields as a JSON line.
//! Without `logger` on the machine the test says it is skipped.

use std::fs;
use std::net::UdpSocket;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{text, tourbillon, wait_for};

#[test]
fn logger_over_udp_to_listen_and_parse_syslog() {
    if Command::new("logger").arg("--version").output().is_err() {
        println!("skipped: `logger` (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = d.join("syslog.jsonl");
    fs::write(
        d.join("c.toml"),
        format!(
            "[log]\nlevel = \"warn\"\n[trains.syslog]\ncogs = [\n  \
             {{ kind = \"listen\", listen = \"udp:127.0.0.1:{port}\", framing = \"length\" }},\n  \
             {{ kind = \"parse\", format = \"syslog\", error_output = \"bad\" }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?}, buffer_bytes = 1 }},\n]\n\
             [trains.bad]\ninputs = [\"syslog.bad\"]\ncogs = [{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = \"bad.jsonl\" }}]\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let mut child = tourbillon(d, &["run", "c.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the listener to bind", 10, || {
        UdpSocket::bind(("127.0.0.1", port)).is_err()
    });
    let p = port.to_string();
    let send = |args: &[&str]| {
        let mut all = vec!["-d", "-n", "127.0.0.1", "-P", &p];
        all.extend_from_slice(args);
        let s = Command::new("logger").args(&all).status().unwrap();
        assert!(s.success(), "logger {all:?}");
    };
    send(&[
        "--rfc5424",
        "-t",
        "app",
        "--msgid",
        "ID47",
        "-p",
        "local4.warning",
        "hello 5424",
    ]);
    send(&["--rfc3164", "-t", "cron", "-p", "auth.info", "hello 3164"]);
    wait_for("two messages written", 10, || {
        fs::read_to_string(&out).map_or(0, |t| t.lines().count()) >= 2
    });
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    let lines: Vec<Value> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let m5424 = &lines[0];
    assert_eq!(m5424["message"], "hello 5424", "{m5424}");
    assert_eq!(
        (m5424["facility"].as_str(), m5424["severity"].as_str()),
        (Some("local4"), Some("warning"))
    );
    assert_eq!(
        (m5424["app"].as_str(), m5424["msgid"].as_str()),
        (Some("app"), Some("ID47"))
    );
    assert_eq!(m5424["priority"], 20 * 8 + 4);
    let m3164 = &lines[1];
    assert_eq!(m3164["message"], "hello 3164", "{m3164}");
    assert_eq!(
        (m3164["facility"].as_str(), m3164["severity"].as_str()),
        (Some("auth"), Some("info"))
    );
    assert_eq!(m3164["app"], "cron");
    assert!(!d.join("bad.jsonl").exists() || fs::read_to_string(d.join("bad.jsonl")).unwrap().is_empty());
    assert!(!text(err.as_bytes()).contains("ERROR"), "{err}");
}

/// A `listen` that cannot bind its port stops the daemon with an error
/// naming the address, and a non-zero status a service manager acts on.
#[test]
fn a_port_already_taken_is_a_failure_that_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    fs::write(
        d.join("c.toml"),
        format!(
            "[trains.syslog]\ncogs = [\n  {{ kind = \"listen\", listen = \"tcp:127.0.0.1:{port}\" }},\n  \
             {{ kind = \"file\", path = \"out.jsonl\" }},\n]\n"
        ),
    )
    .unwrap();
    let out = tourbillon(d, &["run", "--no-state", "c.toml"]).output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.contains("stopped: failed"))
        .unwrap_or_else(|| panic!("no failure reported: {err}"));
    assert!(
        line.contains(&format!("127.0.0.1:{port}: cannot listen")) && line.contains("train syslog cog 1"),
        "{line}"
    );
    drop(taken);
}
