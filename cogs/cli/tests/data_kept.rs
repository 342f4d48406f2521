//! Data is never changed without a word (issue 12, case 7), through the
//! real `tourbillon` binary: non-object JSON values, numbers as written,
//! undecoded lines, cut lines, and config values no setting can take.

use std::path::{Path, PathBuf};

mod common;
use common::{run_with_stdin, text, tourbillon};

fn write(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

/// The output with the host name and the receive times replaced by `H` and `T`.
fn normalized(out: &[u8]) -> String {
    let host = format!("\"host\":\"{}\"", tourbillon_cogs::step::fields::hostname());
    let mut s = text(out).replace(&host, "\"host\":\"H\"");
    while let Some(i) = s.find("\"received_at\":\"2") {
        let start = i + "\"received_at\":\"".len();
        let end = start + s[start..].find('"').unwrap();
        s.replace_range(start..end, "T");
    }
    s
}

/// Log lines without their time stamps.
fn logged(err: &[u8]) -> Vec<String> {
    text(err)
        .lines()
        .map(|l| l.split_once("Z ").map_or(l, |(_, rest)| rest).to_owned())
        .collect()
}

#[test]
fn the_default_job_keeps_non_objects_and_numbers_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = "42\nnull\n\"text\"\n[1,2]\n{\"z\":1,\"a\":{\"y\":2,\"b\":3}}\n\
                 {\"big\":123456789012345678901234567890,\"neg\":-98765432109876543210987654321,\"d\":1.10,\"zero\":-0,\"e\":1E400}\n";
    let out = run_with_stdin(tourbillon(dir.path(), &["run"]), input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        normalized(&out.stdout),
        "{\"host\":\"H\",\"received_at\":\"T\",\"value\":42}\n\
         {\"host\":\"H\",\"received_at\":\"T\",\"value\":null}\n\
         {\"host\":\"H\",\"received_at\":\"T\",\"value\":\"text\"}\n\
         {\"host\":\"H\",\"received_at\":\"T\",\"value\":[1,2]}\n\
         {\"z\":1,\"a\":{\"y\":2,\"b\":3},\"host\":\"H\",\"received_at\":\"T\"}\n\
         {\"big\":123456789012345678901234567890,\"neg\":-98765432109876543210987654321,\
         \"d\":1.10,\"zero\":-0,\"e\":1E400,\"host\":\"H\",\"received_at\":\"T\"}\n",
        "objects keep their key order and number text as written, new fields after them; \
         other values are wrapped (a tree: keys sorted)"
    );
    let log = logged(&out.stderr);
    assert!(
        log.contains(
            &"WARN  tourbillon_cogs::step::json] -:1: JSON value is a number, not an object: kept as {\"value\": ...} \
              (more within 10s are summarized)"
                .to_owned()
        ),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("3 more non-object JSON value(s) wrapped in the last") && l.ends_with("(4 in all)")),
        "{log:#?}"
    );
}

#[test]
fn set_on_a_non_object_keeps_the_value_under_value_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        b"[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\" }, \
          { kind = \"set\", fields = { \"a.b\" = 1 } }, { kind = \"json_encode\" }, { kind = \"stdout\" }]\n",
    );
    let out = run_with_stdin(
        tourbillon(dir.path(), &["run", "c.toml"]),
        b"\"text\"\n{\"a\":\"x\"}\n{\"a\":{\"c\":2}}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"a\":{\"b\":1},\"value\":\"text\"}\n{\"a\":{\"b\":1,\"value\":\"x\"}}\n{\"a\":{\"b\":1,\"c\":2}}\n"
    );
    let log = logged(&out.stderr);
    assert!(
        log.contains(
            &"WARN  tourbillon_cogs::step::fields] -:1: set a.b: the data was a string, not an object: kept under `value`"
                .to_owned()
        ),
        "{log:#?}"
    );
}

#[test]
fn json_decode_can_refuse_non_objects_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        b"[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_decode\", non_object = \"error\", on_error = \"wrap\" }, \
          { kind = \"json_encode\" }, { kind = \"stdout\" }]\n",
    );
    let out = run_with_stdin(tourbillon(dir.path(), &["run", "c.toml"]), b"[1,2]\n{\"a\":1}\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"message\":\"[1,2]\"}\n{\"a\":1}\n");
    assert!(
        text(&out.stderr).contains("-:1: malformed JSON (an array, not an object); wrapped"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn tail_to_json_encode_without_a_decoder_writes_the_lines_as_read() {
    let dir = tempfile::tempdir().unwrap();
    let input = b"{\"b\":1,\"a\":1.10}\nplain text\n42\n\n{\"n\":123456789012345678901234567890}\n";
    let log = write(dir.path(), "in.log", input);
    let config = format!(
        "[trains.t]\ncogs = [{{ kind = \"tail\", include = [\"{}\"], batch = true }}, {{ kind = \"json_encode\" }}, \
         {{ kind = \"file\", path = \"out.log\" }}]\n",
        log.display()
    );
    write(dir.path(), "c.toml", config.as_bytes());
    let out = tourbillon(dir.path(), &["run", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read(dir.path().join("out.log")).unwrap();
    assert_eq!(text(&written), text(input), "every line as it was read, not `null`");
    let log = logged(&out.stderr);
    assert!(
        log.iter()
            .any(|l| l.ends_with("json_encode: 5 undecoded event(s) written as they were read")),
        "{log:#?}"
    );
}

fn tail_config(dir: &Path, file: &Path, max: usize) -> PathBuf {
    let config = format!(
        "[trains.t]\ncogs = [{{ kind = \"tail\", include = [\"{}\"], batch = true, lines = {{ max_line_bytes = {max} }} }}, \
         {{ kind = \"file\", path = \"out.log\" }}]\n",
        file.display()
    );
    write(dir, "c.toml", config.as_bytes())
}

#[test]
fn a_cut_line_is_logged_with_its_file_line_and_bytes_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = b"first\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1000));
    input.extend(b"\nthird\n");
    input.extend(std::iter::repeat_n(b'y', 150));
    input.extend(b"\n");
    let file = write(dir.path(), "in.log", &input);
    tail_config(dir.path(), &file, 100);
    let out = tourbillon(dir.path(), &["run", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = text(&std::fs::read(dir.path().join("out.log")).unwrap());
    assert_eq!(
        written,
        format!("first\n{}\nthird\n{}\n", "x".repeat(100), "y".repeat(100))
    );
    let log = logged(&out.stderr);
    let line = format!(
        "WARN  tourbillon_cogs::splitter] {}:2: line longer than max_line_bytes (100): cut to 100 bytes, 900 bytes dropped \
         (more within 10s are summarized)",
        file.display()
    );
    assert!(log.contains(&line), "{log:#?}");
    // The second cut, within the interval, is not a line of its own.
    assert!(!log.iter().any(|l| l.contains(":4: line longer")), "{log:#?}");
}

#[test]
fn a_real_30_mb_line_is_cut_and_logged_and_the_next_line_is_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Vec::with_capacity(31 << 20);
    input.extend(std::iter::repeat_n(b'z', 30 << 20));
    input.extend(b"\nafter\n");
    let file = write(dir.path(), "in.log", &input);
    tail_config(dir.path(), &file, 1 << 20);
    let out = tourbillon(dir.path(), &["run", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read(dir.path().join("out.log")).unwrap();
    assert_eq!(written.len(), (1 << 20) + 1 + "after\n".len());
    assert!(written.ends_with(b"\nafter\n"));
    let log = logged(&out.stderr);
    let prefix = format!(
        "WARN  tourbillon_cogs::splitter] {}:1: line longer than max_line_bytes (1048576): cut to 1048576 bytes, ",
        file.display()
    );
    assert!(log.iter().any(|l| l.starts_with(&prefix)), "{log:#?}");
}

fn check(dir: &Path, body: &str, env: &[(&str, &str)], sets: &[&str]) -> (i32, String) {
    write(dir, "c.toml", body.as_bytes());
    let mut args = vec!["check", "c.toml"];
    for s in sets {
        args.extend(["--set", s]);
    }
    let mut c = tourbillon(dir, &args);
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    (out.status.code().unwrap(), text(&out.stderr))
}

const RANGE: &str = "is out of range (integers go from -9223372036854775808 to 9223372036854775807)";

#[test]
fn numbers_no_setting_can_take_are_errors_naming_origin_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = check(
        dir.path(),
        "[trains.x]\ncogs = [{ kind = \"stdin\", max_line_bytes = 18446744073709551615 }, \
         { kind = \"rate_limit\", rate = nan, burst = inf }, { kind = \"stdout\" }]\n",
        &[],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 3 errors:\n  \
             file c.toml: trains.x.cogs[0].max_line_bytes: `18446744073709551615` {RANGE}\n  \
             file c.toml: trains.x.cogs[1].burst: `inf` is not a finite number\n  \
             file c.toml: trains.x.cogs[1].rate: `nan` is not a finite number\n"
        )
    );
    let good =
        "[trains.x]\ncogs = [{ kind = \"stdin\" }, { kind = \"rate_limit\", rate = 1.0 }, { kind = \"stdout\" }]\n";
    let (code, err) = check(
        dir.path(),
        good,
        &[
            ("TOURBILLON__TRAINS__X__COGS__0__MAX_LINE_BYTES", "18446744073709551615"),
            ("TOURBILLON__TRAINS__X__COGS__1__RATE", "NaN"),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 2 errors:\n  \
             env TOURBILLON__TRAINS__X__COGS__0__MAX_LINE_BYTES: trains.x.cogs[0].max_line_bytes: `18446744073709551615` {RANGE}\n  \
             env TOURBILLON__TRAINS__X__COGS__1__RATE: trains.x.cogs[1].rate: `NaN` is not a finite number\n"
        )
    );
    let (code, err) = check(
        dir.path(),
        good,
        &[],
        &[
            "trains.x.cogs[0].max_line_bytes=18446744073709551615",
            "trains.x.cogs[1].burst=-inf",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 2 errors:\n  \
             flag --set trains.x.cogs[0].max_line_bytes=18446744073709551615: trains.x.cogs[0].max_line_bytes: \
             `18446744073709551615` {RANGE}\n  \
             flag --set trains.x.cogs[1].burst=-inf: trains.x.cogs[1].burst: `-inf` is not a finite number\n"
        )
    );
}

#[test]
fn empty_paths_and_sizes_no_memory_holds_are_errors_naming_origin_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = check(
        dir.path(),
        "[log]\ntarget = \"file\"\nfile = \"\"\n[daemon]\npidfile = \"\"\n[trains.x]\n\
         cogs = [{ kind = \"stdin\", max_line_bytes = 9223372036854775807 }, \
         { kind = \"anonymize\", fields = [\"ip\"], mode = \"pseudonymize\", key_file = \"\" }, { kind = \"stdout\" }]\n",
        &[],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    let empty = "an empty path: name a file or directory, or leave the key out";
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 4 errors:\n  \
             file c.toml: log.file: {empty}\n  \
             file c.toml: daemon.pidfile: {empty}\n  \
             file c.toml: trains.x.cogs[0].max_line_bytes: must be at most 1073741824 (1 GiB): a line is held in \
             memory whole\n  \
             file c.toml: trains.x.cogs[1].key_file: {empty}\n"
        )
    );
    let (code, err) = check(
        dir.path(),
        "[trains.x]\ncogs = [{ kind = \"stdin\" }, { kind = \"file\", path = \"\" }]\n\
         [trains.y]\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\", buffer_bytes = 4611686018427387904 }]\n",
        &[],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 2 errors:\n  \
             file c.toml: trains.x.cogs[1].path: {empty}\n  \
             file c.toml: trains.y.cogs[1].buffer_bytes: must be at most 1073741824 (1 GiB): the buffer is \
             allocated at start\n"
        )
    );
    let (code, err) = check(
        dir.path(),
        "[trains.x]\ncogs = [{ kind = \"tail\", include = [\"/var/log/*.log\", \"\"] }, { kind = \"stdout\" }]\n\
         [trains.y]\ncogs = [{ kind = \"tail\", include = [\"/var/log/*.log\"], checkpoint_dir = \"\" }, \
         { kind = \"stdout\" }]\n\
         [trains.z]\ncogs = [{ kind = \"tail\", include = [\"/var/log/*.log\"], fingerprint_bytes = 4294967296 }, \
         { kind = \"stdout\" }]\n",
        &[],
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 3 errors:\n  \
             file c.toml: trains.x.cogs[0].include: item 1: {empty}\n  \
             file c.toml: trains.y.cogs[0].checkpoint_dir: {empty}\n  \
             file c.toml: trains.z.cogs[0].fingerprint_bytes: must be at most 1048576 (1 MiB): they are read and \
             kept per file\n"
        )
    );
    let good = "[trains.x]\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\" }]\n";
    let (code, err) = check(dir.path(), good, &[("TOURBILLON__DAEMON__WORKDIR", "")], &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("env TOURBILLON__DAEMON__WORKDIR: daemon.workdir: {empty}")),
        "{err}"
    );
    let (code, err) = check(dir.path(), good, &[], &["daemon.pidfile=\"\""]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("flag --set daemon.pidfile=\"\": daemon.pidfile: {empty}")),
        "{err}"
    );
}

#[test]
fn a_deadline_beyond_the_clock_means_never_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let c = tourbillon(
        dir.path(),
        &["run", "--set", "daemon.finish_deadline_secs=9223372036854775807"],
    );
    let out = run_with_stdin(c, b"{\"a\":1}\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\"a\":1"), "{}", text(&out.stdout));
}

#[test]
fn stdin_logs_a_cut_line_with_its_line_and_bytes_dropped() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "s.toml",
        b"[trains.x]\ncogs = [{ kind = \"stdin\", max_line_bytes = 10 }, { kind = \"stdout\" }]\n",
    );
    let out = run_with_stdin(
        tourbillon(dir.path(), &["run", "s.toml"]),
        b"abcdefghijklmnopqrstuvwxy\nshort\n",
    );
    assert_eq!(text(&out.stdout), "abcdefghij\nshort\n");
    assert!(
        text(&out.stderr).contains("-:1: line longer than max_line_bytes (10): cut to 10 bytes, 15 bytes dropped"),
        "{}",
        text(&out.stderr)
    );
}
