//! The socket supply and drain on real loopback sockets: many clients,
//! backpressure from a slow peer, peers leaving mid-frame, oversized
//! frames, a drain peer that restarts, UDP, Unix sockets, idle clients.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tourbillon::{Cog, Context, Escapement, Event, Next, Role, Train};
use tourbillon_cogs::drain::connect::{NetDrain, NetDrainSettings};
use tourbillon_cogs::net::Framing;
use tourbillon_cogs::supply::listen::{NetSupply, NetSupplySettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn escapement() -> Escapement {
    static LOG: std::sync::Once = std::sync::Once::new();
    LOG.call_once(|| {
        let _ = tourbillon::logging::init(&Default::default());
    });
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    // A test that hangs fails instead, saying so.
    esc.core()
        .after(Duration::from_secs(30), |core| {
            eprintln!("watchdog: the test took more than 30 s");
            core.finish()
        })
        .unwrap();
    esc
}

/// Records (origin, raw) of what reaches it; finishes everything once it
/// has seen `until` events.
struct Collect {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    until: usize,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        let mut seen = self.seen.lock().unwrap();
        seen.push((
            e.origin.as_deref().unwrap_or("").to_owned(),
            String::from_utf8_lossy(&e.raw).into_owned(),
        ));
        if seen.len() == self.until {
            ctx.finish_all();
        }
        drop(seen);
        ctx.discard(&e);
    }
}

fn listen(addr: &str, f: impl FnOnce(&mut NetSupplySettings)) -> NetSupply {
    let mut s = NetSupplySettings {
        listen: addr.to_owned(),
        ..NetSupplySettings::default()
    };
    f(&mut s);
    NetSupply::new(s).unwrap()
}

/// Connects, retrying while the escapement has not bound yet.
fn connect(port: u16) -> TcpStream {
    for _ in 0..500 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            return s;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("nobody listens on {port}");
}

#[test]
fn two_hundred_concurrent_clients_lose_nothing_and_keep_their_order() {
    let _g = exclusive();
    let port = free_port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("tcp")
            .ids(Event::id_getter())
            .cog(listen(&format!("127.0.0.1:{port}"), |_| {}))
            .cog(Collect {
                seen: Arc::clone(&seen),
                until: 200 * 50,
            }),
    );
    let clients = thread::spawn(move || {
        let streams: Vec<TcpStream> = (0..200).map(|_| connect(port)).collect();
        // Interleave the clients' writes, in small pieces, some cut mid-line.
        for round in 0..50 {
            for (c, mut s) in streams.iter().enumerate() {
                let line = format!("client {c} line {round}\n");
                let (a, b) = line.as_bytes().split_at(line.len() / 2);
                s.write_all(a).unwrap();
                s.write_all(b).unwrap();
            }
        }
        streams
    });
    esc.run().unwrap();
    let _streams = clients.join().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 200 * 50);
    let mut per_client: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (origin, raw) in seen.iter() {
        assert!(origin.starts_with("tcp:127.0.0.1:"), "{origin}");
        per_client.entry(origin.clone()).or_default().push(raw.clone());
    }
    assert_eq!(per_client.len(), 200, "one origin per client");
    for lines in per_client.values() {
        let c = lines[0].split(' ').nth(1).unwrap().to_owned();
        let want: Vec<String> = (0..50).map(|r| format!("client {c} line {r}")).collect();
        assert_eq!(lines, &want);
    }
}

/// A peer that accepts one connection at a time and records the lines,
/// reading slowly if asked. Returns its port and what it received.
fn peer(port: u16, slow: bool, stop_after: Option<usize>) -> thread::JoinHandle<Vec<String>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        drop(listener);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut lines = Vec::new();
        let mut r = BufReader::with_capacity(1024, s);
        let mut line = String::new();
        while r
            .read_line(&mut line)
            .expect("the drain closes its connection, or sends")
            > 0
        {
            if !line.ends_with('\n') {
                break; // cut off by a restart
            }
            lines.push(line.trim_end().to_owned());
            line.clear();
            if slow && lines.len() % 500 == 0 {
                thread::sleep(Duration::from_millis(5));
            }
            if stop_after == Some(lines.len()) {
                break;
            }
        }
        lines
    })
}

#[test]
fn a_slow_drain_peer_holds_memory_bounded_and_loses_nothing() {
    let _g = exclusive();
    let (in_port, out_port) = (free_port(), free_port());
    let received = peer(out_port, true, None);
    let drain = NetDrain::new(NetDrainSettings {
        connect: format!("127.0.0.1:{out_port}"),
        buffer_bytes: 64 * 1024,
        ..NetDrainSettings::default()
    })
    .unwrap();
    let stats = drain.stats();
    let supply = listen(&format!("127.0.0.1:{in_port}"), |s| s.read_bytes_per_turn = 16 * 1024);
    let supply_stats = supply.stats();
    let mut esc = escapement();
    esc.add_train(Train::new("relay").ids(Event::id_getter()).cog(supply).cog(drain));
    const N: usize = 100_000;
    let sender = thread::spawn(move || {
        let mut s = connect(in_port);
        let mut text = String::new();
        for i in 0..N {
            text.push_str(&format!("event {i:06} padding padding padding padding padding\n"));
        }
        s.write_all(text.as_bytes()).unwrap();
    });
    // Finish once the sender is through and the peer has everything.
    let stop = Arc::new(Mutex::new(false));
    let s2 = Arc::clone(&stop);
    esc.core()
        .every(Duration::from_millis(20), move |core, _| {
            if *s2.lock().unwrap() {
                core.finish()
            }
        })
        .unwrap();
    let waiter = thread::spawn(move || {
        sender.join().unwrap();
        while supply_stats.frames.get() < N as u64 {
            thread::sleep(Duration::from_millis(10));
        }
        *stop.lock().unwrap() = true;
    });
    esc.run().unwrap();
    waiter.join().unwrap();
    let lines = received.join().unwrap();
    assert_eq!(lines.len(), N, "every line reached the slow peer");
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with(&format!("event {i:06} ")), "line {i}: {l}");
    }
    // Bounded: the buffer limit plus what one turn of reading may add.
    let peak = stats.peak_buffered.get();
    assert!(peak <= 64 * 1024 + 16 * 1024 + 4096, "peak buffer {peak} bytes");
    eprintln!("slow peer: peak drain buffer {peak} bytes for {N} lines");
}

#[test]
fn a_peer_leaving_mid_frame_and_an_oversized_frame_affect_only_that_client() {
    let _g = exclusive();
    let port = free_port();
    let supply = listen(&format!("127.0.0.1:{port}"), |s| {
        s.framing = Framing::Length;
        s.max_frame_bytes = 100;
    });
    let stats = supply.stats();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(Train::new("len").ids(Event::id_getter()).cog(supply).cog(Collect {
        seen: Arc::clone(&seen),
        until: 4,
    }));
    let frame = |b: &[u8]| {
        let mut v = Vec::new();
        Framing::Length.frame(b, &mut v);
        v
    };
    let clients = thread::spawn(move || {
        let mut good = connect(port);
        good.write_all(&frame(b"good 1")).unwrap();
        // Leaves in the middle of its second frame.
        let mut leaver = connect(port);
        leaver.write_all(&frame(b"leaver 1")).unwrap();
        leaver.write_all(&frame(b"leaver 2")[..5]).unwrap();
        drop(leaver);
        // Announces a frame over the maximum: closed.
        let mut big = connect(port);
        big.write_all(&frame(&[b'x'; 500])).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 1];
        let closed = matches!(big.read(&mut buf), Ok(0) | Err(_));
        good.write_all(&frame(b"good 2")).unwrap();
        good.write_all(&frame(b"good 3")).unwrap();
        closed
    });
    esc.run().unwrap();
    assert!(clients.join().unwrap(), "the oversized client was closed");
    let raws: Vec<String> = seen.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
    let mut sorted = raws.clone();
    sorted.sort();
    assert_eq!(sorted, ["good 1", "good 2", "good 3", "leaver 1"]);
    assert_eq!(stats.truncated.get(), 1);
    assert_eq!(stats.oversized.get(), 1);
}

#[test]
fn a_drain_peer_that_restarts_gets_everything() {
    let _g = exclusive();
    let (in_port, out_port) = (free_port(), free_port());
    // The first peer reads 300 lines and goes away; lines sent while it is
    // away wait in the drain's buffer; the second peer, on the same port a
    // little later, gets them.
    let first = peer(out_port, false, Some(300));
    let drain = NetDrain::new(NetDrainSettings {
        connect: format!("127.0.0.1:{out_port}"),
        reconnect_min_ms: 20,
        reconnect_max_ms: 100,
        ..NetDrainSettings::default()
    })
    .unwrap();
    let stats = drain.stats();
    let supply = listen(&format!("127.0.0.1:{in_port}"), |_| {});
    let supplied = supply.stats();
    let mut esc = escapement();
    esc.add_train(Train::new("relay").ids(Event::id_getter()).cog(supply).cog(drain));
    const N: usize = 2000;
    let ready = Arc::new(Mutex::new(false));
    let r2 = Arc::clone(&ready);
    let s2 = stats.clone();
    let driver = thread::spawn(move || {
        let mut s = connect(in_port);
        for i in 0..300 {
            s.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        let got_first = first.join().unwrap();
        // Wait until the drain noticed the peer left, then send the rest.
        while s2.failures.get() == 0 {
            thread::sleep(Duration::from_millis(5));
        }
        for i in 300..N {
            s.write_all(format!("line {i}\n").as_bytes()).unwrap();
        }
        while supplied.frames.get() < N as u64 {
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(100));
        let second = peer(out_port, false, None);
        *r2.lock().unwrap() = true;
        (got_first, second)
    });
    let s3 = stats.clone();
    esc.core()
        .every(Duration::from_millis(20), move |core, _| {
            if *ready.lock().unwrap() && s3.connects.get() >= 2 {
                core.finish() // the drain flushes what it holds to the second peer
            }
        })
        .unwrap();
    esc.run().unwrap();
    drop(esc);
    let (got_first, second) = driver.join().unwrap();
    let got_second = second.join().unwrap();
    assert_eq!(got_first.len(), 300);
    let mut all: Vec<usize> = got_first
        .iter()
        .chain(&got_second)
        .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
        .collect();
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "every line arrived at least once");
    eprintln!("drain peer restart: {} lines sent twice", total - N);
}

#[test]
fn udp_datagrams_and_unix_clients_arrive() {
    let _g = exclusive();
    let port = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.sock");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = escapement();
    esc.add_train(
        Train::new("udp")
            .ids(Event::id_getter())
            .cog(listen(&format!("udp:127.0.0.1:{port}"), |_| {}))
            .cog(Collect {
                seen: Arc::clone(&seen),
                until: usize::MAX,
            }),
    );
    esc.add_train(
        Train::new("unix")
            .ids(Event::id_getter())
            .cog(listen(&format!("unix:{}", path.display()), |_| {}))
            .cog(Collect {
                seen: Arc::clone(&seen),
                until: usize::MAX,
            }),
    );
    let seen2 = Arc::clone(&seen);
    esc.core()
        .every(Duration::from_millis(10), move |core, _| {
            if seen2.lock().unwrap().len() == 5 {
                core.finish()
            }
        })
        .unwrap();
    let p2 = path.clone();
    let t = thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Datagrams may be sent before the supply binds: resend until seen.
        let mut unix = loop {
            if let Ok(s) = std::os::unix::net::UnixStream::connect(&p2) {
                break s;
            }
            thread::sleep(Duration::from_millis(10));
        };
        sock.send_to(b"one\ntwo\n", ("127.0.0.1", port)).unwrap();
        sock.send_to(b"three", ("127.0.0.1", port)).unwrap();
        unix.write_all(b"u1\nu2\n").unwrap();
    });
    esc.run().unwrap();
    t.join().unwrap();
    let mut raws: Vec<String> = seen.lock().unwrap().iter().map(|(_, r)| r.clone()).collect();
    raws.sort();
    assert_eq!(raws, ["one", "three", "two", "u1", "u2"]);
    assert!(!path.exists(), "the socket file is removed at finish");
}

#[test]
fn an_idle_client_is_closed() {
    let _g = exclusive();
    let port = free_port();
    let mut esc = escapement();
    let supply = listen(&format!("127.0.0.1:{port}"), |s| s.idle_timeout_ms = 100);
    let stats = supply.stats();
    esc.add_train(Train::new("idle").cog(supply).cog(Collect {
        seen: Arc::default(),
        until: usize::MAX,
    }));
    let s2 = stats.clone();
    esc.core()
        .every(Duration::from_millis(10), move |core, _| {
            if s2.idle_closed.get() == 1 {
                core.finish()
            }
        })
        .unwrap();
    let t = thread::spawn(move || {
        let mut s = connect(port);
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut b = [0u8; 1];
        matches!(s.read(&mut b), Ok(0))
    });
    esc.run().unwrap();
    assert!(t.join().unwrap(), "the client saw its connection closed");
    assert_eq!(stats.idle_closed.get(), 1);
}
