//! `Type=notify`: the real binary talks to a real unix datagram socket
//! standing in for systemd's `NOTIFY_SOCKET`.

use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::tourbillon;

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next notification, within 10 s.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

#[test]
fn ready_after_the_trains_started_then_watchdog_pings_reloading_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let notify = d.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = d.join("t.toml");
    std::fs::write(
        &cfg,
        format!(
            "[trains.t]\ncogs = [{{ kind = \"listen\", listen = \"tcp:127.0.0.1:{port}\" }}, {{ kind = \"stdout\" }}]\n"
        ),
    )
    .unwrap();
    let mut child = tourbillon(d, &["run", "t.toml"]);
    child
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Reap(child.spawn().unwrap());
    assert_eq!(next(&sock), "READY=1");
    // READY comes once the supplies have started: the port takes clients.
    TcpStream::connect(("127.0.0.1", port)).expect("the listen cog accepts once READY=1 is sent");
    let start = Instant::now();
    let mut pings = 0;
    while pings < 5 {
        assert_eq!(next(&sock), "WATCHDOG=1");
        pings += 1;
    }
    // Five pings at 100 ms: not much faster (a busy loop) nor far slower.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(350), "5 pings in {took:?}");
    // A reload that changes the train: RELOADING=1, then READY=1 once
    // the train runs again (pings may come between).
    std::fs::write(
        &cfg,
        format!(
            "[trains.t]\ncogs = [{{ kind = \"listen\", listen = \"tcp:127.0.0.1:{port}\" }}, {{ kind = \"json_encode\" }}, {{ kind = \"stdout\" }}]\n"
        ),
    )
    .unwrap();
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) }, 0);
    let after = |want: &str| loop {
        let n = next(&sock);
        if n == want {
            break;
        }
        assert_eq!(n, "WATCHDOG=1", "waiting for {want}");
    };
    after("RELOADING=1");
    after("READY=1");
    TcpStream::connect(("127.0.0.1", port)).expect("the replaced listen cog accepts once READY=1 is sent");
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let mut seen = Vec::new();
    loop {
        let n = next(&sock);
        if n == "STOPPING=1" {
            break;
        }
        assert_eq!(n, "WATCHDOG=1", "after SIGTERM: {seen:?}");
        seen.push(n);
    }
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

#[test]
fn nothing_is_sent_without_notify_socket_and_watchdog_for_another_pid_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let notify = d.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    // WATCHDOG_PID names another process: no pings, only READY and STOPPING.
    let mut c = tourbillon(d, &["run"]);
    c.env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "20000")
        .env("WATCHDOG_PID", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = Reap(c.spawn().unwrap());
    let mut buf = [0; 256];
    let n = sock.recv(&mut buf).expect("READY=1");
    assert_eq!(&buf[..n], b"READY=1\n");
    assert!(sock.recv(&mut buf).is_err(), "no ping for another pid's watchdog");
    drop(child.0.stdin.take());
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    // Without NOTIFY_SOCKET, the same run sends nothing anywhere.
    let mut c = tourbillon(d, &["run"]);
    c.env_remove("NOTIFY_SOCKET")
        .env("WATCHDOG_USEC", "20000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    assert_eq!(c.status().unwrap().code(), Some(0));
    assert!(sock.recv(&mut buf).is_err(), "nothing sent without NOTIFY_SOCKET");
}
