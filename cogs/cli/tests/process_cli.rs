//! The processing cogs built from configuration by the `tourbillon` binary.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

mod common;
use common::{run_with_stdin, text, tourbillon};

fn config(dir: &Path, cogs: &str) -> PathBuf {
    let p = dir.join("t.toml");
    std::fs::write(&p, format!("[trains.main]\ncogs = [\n{cogs}]\n")).unwrap();
    p
}

fn run(cogs: &str, input: &str) -> (Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), cogs);
    let out = run_with_stdin(
        tourbillon(dir.path(), &["run", cfg.to_str().unwrap()]),
        input.as_bytes(),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines out"))
        .collect();
    (lines, stderr)
}

#[test]
fn a_configured_pipeline_filters_renames_parses_anonymizes_and_dedups() {
    let (out, stderr) = run(
        r#"  { kind = "stdin" },
  { kind = "json_decode" },
  { kind = "filter", action = "drop", conditions = [{ field = "level", equals = "debug" }] },
  { kind = "rename", fields = { msg = "message" } },
  { kind = "remove", fields = ["password"] },
  { kind = "timestamp", field = "time", target = "@timestamp", formats = ["epoch_secs"] },
  { kind = "anonymize", fields = ["ip"], ipv4_prefix = 8 },
  { kind = "dedup", key = ["message"] },
  { kind = "rate_limit", rate = 1000 },
  { kind = "sample", one_in = 1 },
  { kind = "stats", interval_secs = 0 },
  { kind = "json_encode" },
  { kind = "stdout" },
"#,
        concat!(
            r#"{"level":"info","msg":"hello","password":"pw","time":0,"ip":"10.20.30.40"}"#,
            "\n",
            r#"{"level":"debug","msg":"noise"}"#,
            "\n",
            r#"{"level":"info","msg":"hello","ip":"nope"}"#,
            "\n",
            r#"{"level":"warn","msg":"bye","ip":"2001:db8::1"}"#,
            "\n",
        ),
    );
    assert_eq!(
        out,
        [
            json!({"level": "info", "message": "hello", "time": 0, "@timestamp": "1970-01-01T00:00:00Z", "ip": "10.0.0.0"}),
            json!({"level": "warn", "message": "bye", "ip": "2001:db8::"}),
        ]
    );
    for line in [
        "main[2] filter: in=4 out=3 dropped=1 errors=0",
        "main[6] anonymize: in=3 out=3 dropped=0 errors=1",
        "main[7] dedup: in=3 out=2 dropped=1 errors=0",
        "main[10] stats: in=2 out=2 dropped=0 errors=0",
    ] {
        assert!(stderr.contains(line), "no `{line}` in:\n{stderr}");
    }
}

#[test]
fn a_configured_aggregate_emits_its_sums_when_the_input_ends() {
    let (out, _) = run(
        r#"  { kind = "stdin" },
  { kind = "json_decode" },
  { kind = "aggregate", by = ["host"], sum = ["bytes"], count_field = "hits" },
  { kind = "json_encode" },
  { kind = "stdout" },
"#,
        "{\"host\":\"a\",\"bytes\":1}\n{\"host\":\"b\",\"bytes\":2}\n{\"host\":\"a\",\"bytes\":3}\n",
    );
    assert_eq!(
        out,
        [
            json!({"host": "a", "hits": 2, "bytes": 4}),
            json!({"host": "b", "hits": 1, "bytes": 2}),
        ]
    );
}

fn check(cogs: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), cogs);
    let out = tourbillon(dir.path(), &["check", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code().unwrap(), text(&out.stderr))
}

#[test]
fn bad_settings_are_named_by_their_full_key_path() {
    let (code, err) = check(
        r#"  { kind = "stdin" },
  { kind = "filter", conditions = [{ field = "a", regex = "(" }] },
  { kind = "anonymize", fields = ["ip"], mode = "pseudonymize" },
  { kind = "sample" },
  { kind = "timestamp", formats = ["%Q"] },
  { kind = "dedup", key = ["k"], windw_ms = 5 },
  { kind = "stdout" },
"#,
    );
    assert_eq!(code, 1);
    for want in [
        "trains.main.cogs[1].conditions[0].regex: regex parse error",
        "trains.main.cogs[2].key: required with mode = \"pseudonymize\"",
        "trains.main.cogs[3].one_in: give `one_in` (keep 1 in N) or `probability`",
        "trains.main.cogs[4].formats[0]: unknown directive `%Q`",
        "trains.main.cogs[5].windw_ms: unknown field `windw_ms`",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
}

#[test]
fn the_listing_shows_every_setting_but_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = "c0ffee".repeat(10) + "abcd";
    let cfg = config(
        dir.path(),
        &format!(
            "  {{ kind = \"stdin\" }},\n  {{ kind = \"anonymize\", fields = [\"ip\"], mode = \"pseudonymize\", key = \
             \"{key}\" }},\n  {{ kind = \"stdout\" }},\n"
        ),
    );
    let out = tourbillon(dir.path(), &["train", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let listing = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(listing.contains("key = \"<secret>\""), "{listing}");
    assert!(listing.contains("cache_size = 65536 "), "{listing}");
    assert!(!listing.contains(&key), "{listing}");
}
