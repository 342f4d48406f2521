//! `tick`, `pace` and `increment` in the `tourbillon` binary: a tick's
//! count and fields; pacing that keeps order, loses nothing (not when
//! congested, not at a stop) and never lets two data through closer than
//! the interval; increments of every kind of field, and what cannot be
//! incremented sent to an error output with why, never overwritten; bad
//! settings named by key path.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{run_with_stdin, tourbillon};
use serde_json::{json, Value};

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn lines(p: &Path) -> Vec<Value> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn write_config(dir: &Path, body: &str) -> String {
    let p = dir.join("run.toml");
    fs::write(&p, body).unwrap();
    s(&p)
}

#[test]
fn a_tick_emits_its_fields_count_times_then_the_run_ends() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "[trains.t]\ncogs = [\n  {{ kind = \"tick\", interval_ms = 40, count = 4, count_field = \"n\", \
             data = {{ key = \"counter\", nested = {{ a = [1, 2] }} }} }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?} }},\n]\n",
            s(&out)
        ),
    );
    let start = Instant::now();
    let status = tourbillon(dir.path(), &["run", &config]).status().unwrap();
    let took = start.elapsed();
    assert!(status.success());
    let got = lines(&out);
    let want: Vec<Value> = (1..=4)
        .map(|n| json!({"key": "counter", "nested": {"a": [1, 2]}, "n": n}))
        .collect();
    assert_eq!(got, want);
    // The first at start, then one an interval: three intervals at least.
    assert!(took >= Duration::from_millis(120), "{took:?}");
}

/// `pace` between stdin and a file that records when each line came.
fn paced(dir: &Path, pace: &str, out: &Path) -> String {
    write_config(
        dir,
        &format!(
            "[trains.t]\ncogs = [\n  {{ kind = \"stdin\" }},\n  {{ kind = \"json_decode\" }},\n  \
             {{ kind = \"pace\", {pace} }},\n  {{ kind = \"set\", received_at = \"at\" }},\n  \
             {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?}, buffer_bytes = 1 }},\n]\n",
            s(out)
        ),
    )
}

fn at(v: &Value) -> chrono_free::Millis {
    chrono_free::parse(v["at"].as_str().unwrap())
}

/// RFC 3339 times as milliseconds, without a date library: the test's
/// data all fall on one day.
mod chrono_free {
    pub type Millis = i64;

    pub fn parse(t: &str) -> Millis {
        // 2026-12-01T00:41:05.123456Z
        let time = &t[11..];
        let h: i64 = time[0..2].parse().unwrap();
        let m: i64 = time[3..5].parse().unwrap();
        let sec: f64 = time[6..].trim_end_matches('Z').parse().unwrap();
        (h * 3600 + m * 60) * 1000 + (sec * 1000.0).round() as i64
    }
}

#[test]
fn pace_keeps_order_loses_nothing_when_congested_and_spaces_by_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    // One held at most: the stdin supply waits while the pace is full.
    let config = paced(dir.path(), "interval_ms = 60, max_held = 1", &out);
    let input: String = (0..8).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let o = run_with_stdin(tourbillon(dir.path(), &["run", &config]), input.as_bytes());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = lines(&out);
    let order: Vec<i64> = got.iter().map(|v| v["i"].as_i64().unwrap()).collect();
    assert_eq!(order, (0..8).collect::<Vec<_>>());
    for w in got.windows(2) {
        // Across midnight, the day's milliseconds start over.
        let gap = (at(&w[1]) - at(&w[0])).rem_euclid(86_400_000);
        // The clock of `set` is the wall clock, the pace's the monotonic
        // one: a millisecond of slack for the rounding.
        assert!(gap >= 59, "{gap} ms between {} and {}", w[0], w[1]);
    }
}

#[test]
fn pace_lets_what_it_holds_go_at_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let config = paced(dir.path(), "interval_ms = 60000", &out);
    let mut c = tourbillon(dir.path(), &["run", &config]);
    c.env("RUST_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            (0..20)
                .map(|i| format!("{{\"i\":{i}}}\n"))
                .collect::<String>()
                .as_bytes(),
        )
        .unwrap();
    let start = Instant::now();
    while lines(&out).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "the first line never came");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Nineteen wait a minute each: let stdin see them all, then stop.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&out).len(), 1, "one at once, the others held");
    // SAFETY: a plain kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    let order: Vec<i64> = lines(&out).iter().map(|v| v["i"].as_i64().unwrap()).collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>(), "{log}");
    assert!(log.contains("pace: finishing: 19 data held go on"), "{log}");
}

#[test]
fn increment_adds_to_integers_and_sends_the_rest_to_its_error_output_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let (out, bad) = (dir.path().join("out.jsonl"), dir.path().join("bad.jsonl"));
    let config = write_config(
        dir.path(),
        &format!(
            "[trains.t]\ncogs = [\n  {{ kind = \"stdin\" }},\n  {{ kind = \"json_decode\" }},\n  \
             {{ kind = \"increment\", field = \"value.count\", by = 2, start = 10, error_output = \"bad\", \
             error_field = \"why\" }},\n  {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = {:?} }},\n]\n\
             [trains.bad]\ninputs = [\"t.bad\"]\ncogs = [{{ kind = \"json_encode\" }}, {{ kind = \"file\", path = {:?} }}]\n",
            s(&out),
            s(&bad)
        ),
    );
    let input = [
        r#"{"id":1,"value":{"count":5}}"#,
        r#"{"id":2,"value":{"count":-7}}"#,
        r#"{"id":3}"#,
        r#"{"id":4,"value":null}"#,
        r#"{"id":5,"value":{"count":null,"other":"kept"}}"#,
        r#"{"id":6,"value":{"count":"5"}}"#,
        r#"{"id":7,"value":{"count":1.5}}"#,
        r#"{"id":8,"value":{"count":9223372036854775806}}"#,
        r#"{"id":9,"value":7}"#,
        r#"{"id":10,"value":{"count":18446744073709551615}}"#,
    ]
    .join("\n");
    let o = run_with_stdin(tourbillon(dir.path(), &["run", &config]), input.as_bytes());
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert_eq!(
        lines(&out),
        vec![
            json!({"id": 1, "value": {"count": 7}}),
            json!({"id": 2, "value": {"count": -5}}),
            json!({"id": 3, "value": {"count": 12}}),
            json!({"id": 4, "value": {"count": 12}}),
            json!({"id": 5, "value": {"count": 12, "other": "kept"}}),
        ]
    );
    let bad = lines(&bad);
    let why: Vec<(i64, &str)> = bad
        .iter()
        .map(|v| (v["id"].as_i64().unwrap(), v["why"].as_str().unwrap()))
        .collect();
    assert_eq!(
        why,
        vec![
            (6, "value.count is a string, not an integer"),
            (7, "value.count is 1.5, not a 64-bit integer"),
            (
                8,
                "value.count is 9223372036854775806: adding 2 leaves the 64-bit range"
            ),
            (9, "value is a number, not an object"),
            (10, "value.count is 18446744073709551615, not a 64-bit integer"),
        ]
    );
    // Never overwritten: the values go on as they came.
    assert_eq!(bad[0]["value"], json!({"count": "5"}));
    assert_eq!(bad[3]["value"], json!(7));
    assert!(
        log.contains("increment: value.count is a string, not an integer: sent to the error output"),
        "{log}"
    );
}

#[test]
fn bad_settings_of_tick_pace_and_increment_are_named_by_key_path() {
    let dir = tempfile::tempdir().unwrap();
    for (cogs, path, message) in [
        (
            r#"{ kind = "tick", interval_ms = 0 }, { kind = "stdout" }"#,
            "trains.t.cogs[0].interval_ms",
            "must be at least 1",
        ),
        (
            r#"{ kind = "tick", count = 0 }, { kind = "stdout" }"#,
            "trains.t.cogs[0].count",
            "must be at least 1",
        ),
        (
            r#"{ kind = "tick", count_field = "a..b" }, { kind = "stdout" }"#,
            "trains.t.cogs[0].count_field",
            "does not name a field",
        ),
        (
            r#"{ kind = "tick", every = 5 }, { kind = "stdout" }"#,
            "trains.t.cogs[0].every",
            "unknown field",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "pace", interval_ms = 0 }, { kind = "stdout" }"#,
            "trains.t.cogs[1].interval_ms",
            "must be at least 1",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "pace", max_held = 0 }, { kind = "stdout" }"#,
            "trains.t.cogs[1].max_held",
            "must be at least 1",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "increment" }, { kind = "stdout" }"#,
            "trains.t.cogs[1].field",
            "required",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "increment", field = "n", by = 0 }, { kind = "stdout" }"#,
            "trains.t.cogs[1].by",
            "must not be 0",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "increment", field = "n", by = 1.5 }, { kind = "stdout" }"#,
            "trains.t.cogs[1].by",
            "invalid number",
        ),
        (
            r#"{ kind = "stdin" }, { kind = "increment", field = "n", error_output = "a.b" }, { kind = "stdout" }"#,
            "trains.t.cogs[1].error_output",
            "not an output name",
        ),
    ] {
        let config = write_config(dir.path(), &format!("[trains.t]\ncogs = [{cogs}]\n"));
        let o = tourbillon(dir.path(), &["check", &config]).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cogs}: accepted");
        assert!(
            err.contains(&format!("{path}: ")) && err.contains(message),
            "{cogs}: {err}"
        );
    }
}
