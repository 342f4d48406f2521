//! Syslog over the network from a real `logger` (util-linux): RFC 5424 and
//! RFC 3164 over UDP (one message per datagram), RFC 5424 over TCP with
//! octet counting (RFC 6587); what `listen` emits is exactly what logger
//! sent (logger's `--stderr` prints each message it sends), and
//! `syslog::parse` reads it. A bad octet count closes only its client.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{Cog, Context, Escapement, Event, Exit, Next, Role, Train};
use tourbillon_cogs::net::Framing;
use tourbillon_cogs::step::syslog;
use tourbillon_cogs::supply::listen::{NetSupply, NetSupplySettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

fn escapement() -> Escapement {
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    // A test that hangs fails instead, saying so.
    esc.core()
        .after(Duration::from_secs(20), |core| {
            eprintln!("watchdog: the test took more than 20 s");
            core.finish()
        })
        .unwrap();
    esc
}

/// Records the frames that reach it; finishes everything at `until`.
struct Collect {
    seen: Arc<Mutex<Vec<String>>>,
    until: usize,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        let mut seen = self.seen.lock().unwrap();
        seen.push(String::from_utf8(e.raw.to_vec()).unwrap());
        if seen.len() == self.until {
            ctx.finish_all();
        }
        drop(seen);
        ctx.discard(&e);
    }
}

/// Whether util-linux `logger` is here; a test without it says it is skipped.
fn have_logger() -> bool {
    let ok = Command::new("logger")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: no util-linux `logger` on PATH");
    }
    ok
}

/// Runs logger with `args` (and `stdin`), returning the messages it sent,
/// as its `--stderr` prints them (each followed by a newline; with
/// `--octet-count`, after its length).
fn logger(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("logger")
        .arg("--stderr")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "logger {args:?}: {out:?}");
    String::from_utf8(out.stderr).unwrap()
}

fn supply(listen: String, framing: Framing) -> NetSupply {
    NetSupply::new(NetSupplySettings {
        listen,
        framing,
        ..NetSupplySettings::default()
    })
    .unwrap()
}

/// An escapement whose one train passes what `supply` brings to a
/// [`Collect`] that finishes everything at `until` frames; and what it saw.
fn collecting(supply: NetSupply, until: usize) -> (Escapement, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(Train::new("syslog").ids(Event::id_getter()).cog(supply).cog(Collect {
        seen: Arc::clone(&seen),
        until,
    }));
    (esc, seen)
}

fn fields(line: &str) -> Value {
    Value::Object(syslog::parse(line).unwrap_or_else(|e| panic!("{line}: {e}")))
}

#[test]
fn logger_over_udp_one_message_per_datagram() {
    if !have_logger() {
        return;
    }
    let _g = exclusive();
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (mut esc, seen) = collecting(supply(format!("udp:127.0.0.1:{port}"), Framing::Length), 2);
    let sender = thread::spawn(move || {
        // The supply has bound once the port is taken.
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            thread::sleep(Duration::from_millis(5));
        }
        let p = port.to_string();
        let a = logger(
            &[
                "-d",
                "-n",
                "127.0.0.1",
                "-P",
                &p,
                "--rfc5424",
                "-t",
                "myapp",
                "--msgid",
                "ID47",
                "-p",
                "local4.warning",
                "--sd-id",
                "ex@32473",
                "--sd-param",
                r#"k="v\"q\]""#,
                // A newline inside the message: one datagram, one message.
                "two\nlines",
            ],
            "",
        );
        let b = logger(
            &[
                "-d",
                "-n",
                "127.0.0.1",
                "-P",
                &p,
                "--rfc3164",
                "-t",
                "cron",
                "-p",
                "cron.info",
                "job done",
            ],
            "",
        );
        [a, b]
    });
    esc.run().unwrap();
    let [a, b] = sender.join().unwrap();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by_key(|s| !s.starts_with("<164>1 "));
    assert_eq!(seen, [a.strip_suffix('\n').unwrap(), b.strip_suffix('\n').unwrap()]);

    let f = fields(&seen[0]);
    assert_eq!(f["facility"], "local4");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["app"], "myapp");
    assert_eq!(f["msgid"], "ID47");
    assert_eq!(f["structured_data"]["ex@32473"], json!({"k": "v\"q]"}));
    assert_eq!(f["message"], "two\nlines");
    assert!(f.get("procid").is_none(), "{f}");
    let ts = f["timestamp"].as_str().unwrap();
    assert!(
        matches!(tourbillon_cogs::time::parse("rfc3339", ts), Ok(Some(_))),
        "{ts}"
    );

    let f = fields(&seen[1]);
    assert_eq!(f["priority"], 78);
    assert_eq!(
        (f["facility"].as_str(), f["severity"].as_str()),
        (Some("cron"), Some("info"))
    );
    assert_eq!(f["app"], "cron");
    assert_eq!(f["message"], "job done");
    // logger writes the short host name after the date.
    let ts = f["timestamp"].as_str().unwrap();
    assert!(
        matches!(tourbillon_cogs::time::parse("rfc3164", ts), Ok(Some(_))),
        "{ts}"
    );
    assert!(seen[1].contains(&format!("{ts} {} cron: job done", f["host"].as_str().unwrap())));
}

/// Runs `esc`, whose supply listens on a port picked free beforehand:
/// false when another socket took the port first (the supply could not
/// listen, and the run failed saying so), for the test to try another; a
/// third port taken in a row fails the test. `tries` counts them.
fn ran(esc: &mut Escapement, tries: &mut u32) -> bool {
    match esc.run().unwrap() {
        Exit::Clean => true,
        Exit::Failed(why) if why.iter().all(|w| w.contains("cannot listen")) => {
            *tries += 1;
            assert!(*tries < 3, "{tries} ports taken before the supply bound them: {why:?}");
            eprintln!("{why:?}: trying another port");
            false
        }
        exit => panic!("{exit:?}"),
    }
}

/// Connects, retrying while the escapement has not bound yet.
fn connect(port: u16) -> TcpStream {
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on {port}");
}

#[test]
fn logger_over_tcp_with_octet_counting_and_a_bad_count_closes_only_its_client() {
    if !have_logger() {
        return;
    }
    let _g = exclusive();
    let mut tries = 0;
    let (sender, seen, stats) = loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s = supply(format!("127.0.0.1:{port}"), Framing::OctetCounting);
        let stats = s.stats();
        let (mut esc, seen) = collecting(s, 4);
        let sender = thread::spawn(move || {
            drop(connect(port));
            // A client whose second frame has a bad length: its first arrives,
            // then it is closed.
            let mut bad = connect(port);
            bad.write_all(b"5 first05 x").unwrap();
            bad.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let closed = matches!(bad.read(&mut [0u8; 1]), Ok(0) | Err(_));
            let p = port.to_string();
            // Three lines on stdin: three messages on one connection.
            let sent = logger(
                &[
                    "-T",
                    "-n",
                    "127.0.0.1",
                    "-P",
                    &p,
                    "--octet-count",
                    "--rfc5424",
                    "-t",
                    "app",
                    "-i",
                ],
                "one\n\u{e9}t\u{e9} [x]\nthree \"quoted\"\n",
            );
            (sent, closed)
        });
        if ran(&mut esc, &mut tries) {
            break (sender, seen, stats);
        }
    };
    let (sent, closed) = sender.join().unwrap();
    assert!(closed, "the client with a bad length was closed");
    let seen = seen.lock().unwrap().clone();
    // logger prints what it sends with octet counting: `LEN MSG`.
    let sent: Vec<&str> = sent
        .lines()
        .map(|l| {
            let (len, msg) = l.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), msg.len(), "{l}");
            msg
        })
        .collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(seen[0], "first");
    assert_eq!(seen[1..], sent[..], "exactly the messages logger sent");
    let messages: Vec<Value> = seen[1..].iter().map(|l| fields(l)["message"].clone()).collect();
    assert_eq!(messages, ["one", "\u{e9}t\u{e9} [x]", "three \"quoted\""]);
    let f = fields(&seen[1]);
    assert_eq!((f["app"].as_str(), f["facility"].as_str()), (Some("app"), Some("user")));
    assert!(f["procid"].as_str().unwrap().parse::<u32>().is_ok(), "{f}");
    assert_eq!(stats.bad_length.get(), 1);
    assert_eq!(stats.oversized.get(), 0);
}

#[test]
fn logger_over_tcp_with_newlines() {
    if !have_logger() {
        return;
    }
    let _g = exclusive();
    let mut tries = 0;
    let (sender, seen) = loop {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (mut esc, seen) = collecting(supply(format!("127.0.0.1:{port}"), Framing::Newline), 2);
        let sender = thread::spawn(move || {
            drop(connect(port));
            let p = port.to_string();
            logger(
                &["-T", "-n", "127.0.0.1", "-P", &p, "--rfc3164", "-t", "sshd", "-i"],
                "a\nb c\n",
            )
        });
        if ran(&mut esc, &mut tries) {
            break (sender, seen);
        }
    };
    let sent = sender.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, sent.lines().collect::<Vec<_>>());
    let f = fields(&seen[1]);
    assert_eq!((f["app"].as_str(), f["message"].as_str()), (Some("sshd"), Some("b c")));
    assert!(f["procid"].as_str().unwrap().parse::<u32>().is_ok(), "{f}");
}

#[test]
fn octet_counting_over_udp_is_refused_with_the_key() {
    let e = NetSupply::new(NetSupplySettings {
        listen: "udp:127.0.0.1:5514".into(),
        framing: Framing::OctetCounting,
        ..NetSupplySettings::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("framing: octet_counting is for streams"), "{e}");
}
