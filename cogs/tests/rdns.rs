//! Reverse DNS against a tiny DNS server started by the test (answers,
//! silence, NXDOMAIN), and against the system resolver (`/etc/hosts`).

use std::net::UdpSocket;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{from_iter, Escapement, Event, EventId, Train};
use tourbillon_cogs::step::rdns::{ReverseDns, ReverseDnsSettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

/// What the test DNS server saw.
#[derive(Default)]
struct Seen {
    asked: Mutex<Vec<String>>,
    outstanding: AtomicUsize,
    most_outstanding: AtomicUsize,
}

/// Answers PTR queries after `delay`: 127.0.0.1 → test-host.example,
/// 127.0.0.4-9 → host-N.example; 127.0.0.3 → NXDOMAIN; anything else →
/// silence. Records the queries and how many were unanswered at once.
fn dns_server(delay: Duration) -> (u16, Arc<Seen>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let seen = Arc::new(Seen::default());
    let s2 = Arc::clone(&seen);
    thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            // The question's name, label by label, from offset 12.
            let (mut at, mut labels) = (12, Vec::new());
            while q[at] != 0 {
                let len = q[at] as usize;
                labels.push(String::from_utf8_lossy(&q[at + 1..at + 1 + len]).into_owned());
                at += 1 + len;
            }
            let question_end = at + 5;
            let name = labels.join(".");
            s2.asked.lock().unwrap().push(name.clone());
            let mut r = q[..question_end].to_vec();
            r[2] = 0x81; // response, RD
            let host = match labels[0].parse::<u8>() {
                Ok(1) if name.ends_with(".0.0.127.in-addr.arpa") => Some("test-host".to_owned()),
                Ok(n @ 4..=9) if name.ends_with(".0.0.127.in-addr.arpa") => Some(format!("host-{n}")),
                _ => None,
            };
            match (host, name.as_str()) {
                (Some(host), _) => {
                    r[3] = 0x80; // RA, rcode 0
                    r[6..8].copy_from_slice(&1u16.to_be_bytes());
                    r.extend_from_slice(&[0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60]);
                    let mut rdata = Vec::new();
                    for l in [host.as_str(), "example"] {
                        rdata.push(l.len() as u8);
                        rdata.extend_from_slice(l.as_bytes());
                    }
                    rdata.push(0);
                    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
                    r.extend_from_slice(&rdata);
                }
                (None, "3.0.0.127.in-addr.arpa") => r[3] = 0x83, // NXDOMAIN
                _ => continue,                                   // silence: the client times out
            }
            let now = s2.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
            s2.most_outstanding.fetch_max(now, Ordering::SeqCst);
            let (sock, s3) = (sock.try_clone().unwrap(), Arc::clone(&s2));
            thread::spawn(move || {
                thread::sleep(delay);
                s3.outstanding.fetch_sub(1, Ordering::SeqCst);
                let _ = sock.send_to(&r, from);
            });
        }
    });
    (port, seen)
}

fn run(settings: ReverseDnsSettings, ips: &[&str]) -> (Vec<Value>, tourbillon_cogs::step::rdns::ReverseDnsStats) {
    let events: Vec<Event> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| Event::new(EventId(i as u64 + 1), json!({ "n": i, "ip": ip })))
        .collect();
    let cog = ReverseDns::new(settings).unwrap();
    let stats = cog.stats();
    let out = Arc::new(Mutex::new(Vec::new()));
    let o2 = Arc::clone(&out);
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.add_train(
        Train::new("rdns")
            .ids(Event::id_getter())
            .cog(from_iter(events).batch(1))
            .cog(cog)
            .map(move |e: Event| {
                o2.lock().unwrap().push(e.value().clone());
                e
            }),
    );
    esc.core()
        .after(Duration::from_secs(30), |core| {
            eprintln!("watchdog: more than 30 s");
            core.finish()
        })
        .unwrap();
    esc.run().unwrap();
    let out = out.lock().unwrap().clone();
    (out, stats)
}

#[test]
fn names_come_in_order_from_a_dns_server_with_cache_and_timeouts() {
    let _g = exclusive();
    let (port, seen) = dns_server(Duration::ZERO);
    let settings = ReverseDnsSettings {
        server: Some(format!("127.0.0.1:{port}")),
        timeout_ms: 300,
        workers: 2,
        ..ReverseDnsSettings::default()
    };
    let ips = [
        "127.0.0.2",
        "127.0.0.1",
        "127.0.0.1:8080",
        "nope",
        "127.0.0.3",
        "127.0.0.1",
    ];
    let (out, stats) = run(settings, &ips);
    let order: Vec<u64> = out.iter().map(|v| v["n"].as_u64().unwrap()).collect();
    assert_eq!(order, [0, 1, 2, 3, 4, 5], "events leave in the order they came");
    let names: Vec<Option<&str>> = out.iter().map(|v| v["hostname"].as_str()).collect();
    assert_eq!(
        names,
        [
            None, // silence: timed out
            Some("test-host.example"),
            Some("test-host.example"),
            None, // not an address
            None, // NXDOMAIN
            Some("test-host.example"),
        ]
    );
    let asked = seen.asked.lock().unwrap().clone();
    let for_one = asked.iter().filter(|n| *n == "1.0.0.127.in-addr.arpa").count();
    assert_eq!(for_one, 1, "one query for three events of 127.0.0.1: {asked:?}");
    assert_eq!(stats.invalid.get(), 1);
    assert!(stats.timeouts.get() >= 1, "the silent server's event timed out");
}

#[test]
fn at_most_max_in_flight_lookups_while_the_others_wait_in_order() {
    let _g = exclusive();
    let (port, seen) = dns_server(Duration::from_millis(30));
    let settings = ReverseDnsSettings {
        server: Some(format!("127.0.0.1:{port}")),
        timeout_ms: 5000,
        max_in_flight: 1,
        workers: 4,
        cache_size: 0,
        ..ReverseDnsSettings::default()
    };
    let ips: Vec<String> = (4..10).rev().map(|i| format!("127.0.0.{i}")).collect();
    let refs: Vec<&str> = ips.iter().map(String::as_str).collect();
    let (out, stats) = run(settings, &refs);
    let names: Vec<&str> = out.iter().map(|v| v["hostname"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "host-9.example",
            "host-8.example",
            "host-7.example",
            "host-6.example",
            "host-5.example",
            "host-4.example"
        ],
        "every name, in the order the events came"
    );
    assert_eq!(
        seen.most_outstanding.load(Ordering::SeqCst),
        1,
        "never two lookups at once"
    );
    assert_eq!(stats.lookups.get(), 6);
}

#[test]
fn the_system_resolver_reads_etc_hosts() {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    let localhost = hosts.lines().any(|l| {
        let mut w = l.split_whitespace();
        w.next() == Some("127.0.0.1") && w.any(|n| n == "localhost")
    });
    if !localhost {
        eprintln!("the_system_resolver_reads_etc_hosts: skipped, /etc/hosts has no `127.0.0.1 localhost` line");
        return;
    }
    let _g = exclusive();
    let (out, _) = run(ReverseDnsSettings::default(), &["127.0.0.1"]);
    assert_eq!(out[0]["hostname"], "localhost");
}
