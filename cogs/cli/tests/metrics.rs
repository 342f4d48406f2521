//! `[api]` with the real binary: `/metrics` numbers against what a run did,
//! `promtool check metrics` on them, the tail's lag while a drain holds
//! back, `/health` across the finish, `tourbillon top --once`.

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{text, tourbillon, BIN};
use tourbillon_cli::metrics::scrape;

/// A port free now: bound to port 0, then let go.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, config: &str) -> Reap {
    std::fs::write(dir.join("c.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("log.txt")).unwrap();
    let child = tourbillon(dir, &["run", "c.toml"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Reap(child)
}

/// The value of `name` with these labels (a subset of its labels), if any.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (head, v) = l.rsplit_once(' ')?;
        let (n, rest) = head.split_once('{').unwrap_or((head, ""));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (n == name && all).then(|| v.parse().ok())?
    })
}

fn cog(text: &str, name: &str, index: &str) -> f64 {
    value(text, name, &[("train", "t"), ("cog", index)]).unwrap_or_else(|| panic!("no {name} of cog {index}:\n{text}"))
}

/// Scrapes `/metrics` until `done` holds (20 s at most); the last text.
fn scrape_until(addr: &str, dir: &Path, mut done: impl FnMut(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        if let Ok((200, body)) = scrape(addr, "/metrics") {
            if done(&body) {
                return body;
            }
            if t.elapsed() > Duration::from_secs(20) {
                panic!(
                    "not reached in 20 s; last scrape:\n{body}\nlog:\n{}",
                    std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default()
                );
            }
        } else if t.elapsed() > Duration::from_secs(20) {
            panic!(
                "no answer from {addr}; log:\n{}",
                std::fs::read_to_string(dir.join("log.txt")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn promtool(metrics: &str) {
    let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        println!("skipped: promtool not installed (Debian package prometheus)");
        return;
    };
    child.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{metrics}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn metrics_count_what_the_run_did_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    let (good, bad) = (500u64, 7u64);
    let mut body = String::new();
    for i in 0..good {
        body.push_str(&format!("{{\"n\":{i}}}\n"));
        if i % 70 == 0 && i / 70 < bad {
            body.push_str("not json\n");
        }
    }
    std::fs::write(&input, &body).unwrap();
    let output = dir.path().join("out.log");
    let addr = format!("127.0.0.1:{}", free_port());
    let _child = start(
        dir.path(),
        &format!(
            "[api]\nlisten = \"{addr}\"\n[trains.t]\ncogs = [\n  {{ kind = \"tail\", include = [{input:?}], checkpoint_dir = {:?} }},\n  \
             {{ kind = \"json_decode\", on_error = \"drop\" }},\n  {{ kind = \"set\", fields = {{ a = 1 }} }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {output:?} }},\n]\n",
            dir.path().join("ck")
        ),
    );
    let metrics = scrape_until(&addr, dir.path(), |m| {
        value(m, "tourbillon_drain_written_total", &[("cog", "4")]) == Some(good as f64)
    });
    let lines = good + bad;
    assert_eq!(cog(&metrics, "tourbillon_cog_out_total", "0"), lines as f64, "tail out");
    assert_eq!(
        cog(&metrics, "tourbillon_cog_bytes_total", "0"),
        body.len() as f64,
        "tail bytes read"
    );
    assert_eq!(
        cog(&metrics, "tourbillon_cog_in_total", "1"),
        lines as f64,
        "json_decode in"
    );
    assert_eq!(
        cog(&metrics, "tourbillon_cog_out_total", "1"),
        good as f64,
        "json_decode out"
    );
    assert_eq!(
        cog(&metrics, "tourbillon_cog_errors_total", "1"),
        bad as f64,
        "json_decode errors"
    );
    assert_eq!(
        cog(&metrics, "tourbillon_cog_dropped_total", "1"),
        bad as f64,
        "json_decode dropped"
    );
    assert_eq!(cog(&metrics, "tourbillon_cog_out_total", "2"), good as f64, "set out");
    assert_eq!(
        cog(&metrics, "tourbillon_cog_out_total", "3"),
        good as f64,
        "json_encode out"
    );
    assert_eq!(cog(&metrics, "tourbillon_cog_out_total", "4"), good as f64, "file out");
    let written = std::fs::read_to_string(&output).unwrap();
    assert_eq!(written.lines().count() as u64, good);
    assert_eq!(
        cog(&metrics, "tourbillon_cog_bytes_total", "4"),
        (written.len() as u64 - good) as f64,
        "drain bytes: the lines it took, without their newlines"
    );
    assert_eq!(cog(&metrics, "tourbillon_drain_buffered_bytes", "4"), 0.0);
    assert_eq!(cog(&metrics, "tourbillon_drain_write_errors_total", "4"), 0.0);
    assert_eq!(cog(&metrics, "tourbillon_tail_files_followed", "0"), 1.0);
    let file = input.to_str().unwrap();
    assert_eq!(
        value(&metrics, "tourbillon_tail_lag_bytes", &[("file", file)]),
        Some(0.0),
        "caught up: no lag\n{metrics}"
    );
    assert!(value(&metrics, "tourbillon_loop_turns_total", &[]).unwrap() > 0.0);
    assert!(value(&metrics, "tourbillon_process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&metrics, "tourbillon_process_open_fds", &[]).unwrap() > 0.0);
    let age = scrape_until(&addr, dir.path(), |m| {
        value(m, "tourbillon_tail_checkpoint_age_seconds", &[]).is_some()
    });
    assert!(value(&age, "tourbillon_tail_checkpoint_age_seconds", &[]).unwrap() < 10.0);
    promtool(&metrics);
    assert_eq!(scrape(&addr, "/health").unwrap(), (200, "running\n".to_owned()));
    assert_eq!(scrape(&addr, "/nothing").unwrap().0, 404);

    // `top --once`: a row per cog, with rates of the lines written meanwhile.
    let top = std::thread::spawn({
        let addr = addr.clone();
        move || {
            std::process::Command::new(BIN)
                .args(["top", "--once", &addr])
                .output()
                .unwrap()
        }
    });
    let mut f = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
    for i in 0..200 {
        writeln!(f, "{{\"more\":{i}}}").unwrap();
    }
    let out = top.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for kind in ["tail", "json_decode", "set", "json_encode", "file"] {
        assert!(
            table.lines().any(|l| l.starts_with("t ") && l.contains(kind)),
            "no row of {kind}:\n{table}"
        );
    }
    assert!(
        table.contains("IN/S") && table.contains("LAG") && table.contains("turns/s"),
        "{table}"
    );
}

#[test]
fn lag_shows_while_a_drain_holds_back_and_health_is_503_while_finishing() {
    let dir = tempfile::tempdir().unwrap();
    // Every write to /dev/full fails (ENOSPC): the drain holds its buffer
    // and retries, the full buffer congests the train, the tail stops
    // reading; at the finish the drain cannot flush, so the finish lasts
    // until its deadline.
    if std::fs::OpenOptions::new().append(true).open("/dev/full").is_err() {
        println!("skipped: /dev/full cannot be opened for writing here");
        return;
    }
    let input = dir.path().join("big.log");
    let line = "x".repeat(99);
    let mut body = String::with_capacity(8 << 20);
    for _ in 0..(64 * 1024) {
        body.push_str(&line);
        body.push('\n');
    }
    std::fs::write(&input, &body).unwrap();
    let size = body.len() as f64;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = start(
        dir.path(),
        &format!(
            "[api]\nlisten = \"{addr}\"\n[daemon]\nfinish_deadline_secs = 2\n[trains.t]\ncogs = [\n  \
             {{ kind = \"tail\", include = [{input:?}] }},\n  \
             {{ kind = \"file\", path = \"/dev/full\", buffer_bytes = 65536, retry_interval_ms = 50 }},\n]\n"
        ),
    );
    let file = input.to_str().unwrap().to_owned();
    let lag = |m: &str| value(m, "tourbillon_tail_lag_bytes", &[("file", &file)]);
    let metrics = scrape_until(&addr, dir.path(), |m| {
        cog(m, "tourbillon_drain_retries_total", "1") >= 2.0 && lag(m).is_some_and(|l| l > 0.0)
    });
    let read = cog(&metrics, "tourbillon_cog_bytes_total", "0");
    assert_eq!(
        lag(&metrics).unwrap() + read,
        size,
        "lag is what is not read yet\n{metrics}"
    );
    assert!(
        read < size / 2.0,
        "the tail stopped reading: {read} of {size} bytes read\n{metrics}"
    );
    assert!(
        cog(&metrics, "tourbillon_drain_buffered_bytes", "1") >= 65536.0,
        "{metrics}"
    );
    assert!(
        cog(&metrics, "tourbillon_drain_write_errors_total", "1") >= 1.0,
        "{metrics}"
    );
    assert!(cog(&metrics, "tourbillon_cog_errors_total", "1") >= 1.0, "{metrics}");
    assert_eq!(cog(&metrics, "tourbillon_drain_written_total", "1"), 0.0, "{metrics}");
    assert_eq!(scrape(&addr, "/health").unwrap(), (200, "running\n".to_owned()));
    promtool(&metrics);

    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let t = Instant::now();
    let health = loop {
        let h = scrape(&addr, "/health").unwrap();
        if h.0 == 503 || t.elapsed() > Duration::from_secs(2) {
            break h;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(health, (503, "finishing\n".to_owned()));
    let m = scrape(&addr, "/metrics").unwrap().1;
    assert_eq!(value(&m, "tourbillon_finishing", &[]), Some(1.0), "{m}");
    let status = child.0.wait().unwrap();
    let took = t.elapsed();
    // The drain held the finish (it gives up on an unwritable file after
    // a second of finishing, and says so): /health said 503 all along.
    assert!(took >= Duration::from_millis(500), "exited {took:?} after SIGTERM");
    assert!(took < Duration::from_secs(15), "exited {took:?} after SIGTERM");
    assert!(status.code().is_some(), "ended by a signal: {status:?}");
    let log = std::fs::read_to_string(dir.path().join("log.txt")).unwrap();
    assert!(log.contains("finishing without writing"), "{log}");
}
