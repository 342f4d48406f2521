//! Safe defaults with the real binary: the default job keeps checkpoints
//! (a second run emits nothing again; `--no-state` does), a replay leaves
//! the live outputs alone, reproduces `received_at`, and shows its
//! differences as text.

use std::fs;
use std::path::Path;

mod common;
use common::{text, tourbillon};

fn run_default(d: &Path, extra: &[&str]) -> String {
    let mut args = vec!["run", "--input", "in.log"];
    args.extend_from_slice(extra);
    let out = tourbillon(d, &args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn the_default_job_goes_on_where_it_stopped_and_no_state_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("in.log"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    // The input is read to its end; the job does not end by itself, so
    // `--set` makes the tail stop there (batch), as a test needs.
    let batch = ["--set", "trains.main.cogs[0].batch=true"];
    assert_eq!(run_default(d, &batch).lines().count(), 2);
    assert_eq!(run_default(d, &batch), "", "the second run repeated lines");
    fs::write(d.join("in.log"), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    let third = run_default(d, &batch);
    assert_eq!(third.lines().count(), 1, "{third}");
    assert!(third.contains("\"n\":3"), "{third}");
    let fresh = run_default(d, &["--no-state", "--set", "trains.main.cogs[0].batch=true"]);
    assert_eq!(fresh.lines().count(), 3, "{fresh}");
    let state = d.join(".state/tourbillon");
    let dirs: Vec<_> = fs::read_dir(&state).unwrap().collect();
    assert_eq!(dirs.len(), 1, "one state directory for one set of inputs");
    let listing = text(&tourbillon(d, &["train", "--input", "in.log"]).output().unwrap().stdout);
    assert!(
        listing.contains(&format!("checkpoint_dir = \"{}", state.display())),
        "{listing}"
    );
}

#[test]
fn a_replay_leaves_live_outputs_alone_reproduces_received_at_and_shows_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config =
        "[trains.t]\ncogs = [\n  { kind = \"stdin\" },\n  { kind = \"json_decode\", on_error = \"wrap\" },\n  \
                  { kind = \"set\", received_at = \"at\" },\n  { kind = \"json_encode\" },\n  \
                  { kind = \"file\", path = \"live.jsonl\" },\n]\n";
    fs::write(d.join("c.toml"), config).unwrap();
    let live = common::run_with_stdin(
        tourbillon(d, &["run", "c.toml", "--capture", "live.tbcap"]),
        b"{\"n\":1}\nnot json \"quoted\"\n{\"n\":3}\n",
    );
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    let before = fs::read(d.join("live.jsonl")).unwrap();

    let same = tourbillon(d, &["replay", "live.tbcap", "c.toml", "--compare"])
        .output()
        .unwrap();
    let out = text(&same.stdout);
    assert_eq!(same.status.code(), Some(0), "{out}{}", text(&same.stderr));
    assert!(
        out.ends_with("same: every drain got the same data (3 in 1 drains)\n"),
        "{out}"
    );
    assert_eq!(
        fs::read(d.join("live.jsonl")).unwrap(),
        before,
        "the replay wrote into the live output"
    );
    let replayed = fs::read(d.join("live.tbcap.replay/t.5.live.jsonl")).unwrap();
    assert_eq!(replayed, before, "the replay's own output, received_at included");

    // A change shows as text.
    let diff = tourbillon(
        d,
        &[
            "replay",
            "live.tbcap",
            "c.toml",
            "--compare",
            "--output-dir",
            "other",
            "--set",
            "trains.t.cogs[2].received_at=\"then\"",
        ],
    )
    .output()
    .unwrap();
    let out = text(&diff.stdout);
    assert_eq!(diff.status.code(), Some(1), "{out}");
    assert!(out.contains(r#""raw":"{\"n\":1,\"at\":"#), "the datum as text: {out}");
    assert!(!out.contains("[123,"), "bytes as numbers: {out}");
    assert!(d.join("other/t.5.live.jsonl").exists());
}

#[test]
fn a_replay_refuses_to_send_to_live_peers_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(
        d.join("c.toml"),
        "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"connect\", connect = \"127.0.0.1:9\" }]\n",
    )
    .unwrap();
    let live = common::run_with_stdin(tourbillon(d, &["run", "c.toml", "--capture", "c.tbcap"]), b"");
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    let out = tourbillon(d, &["replay", "c.tbcap", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("trains.t.cogs[1]: a `connect` drain sends to live peers; replay with --in-place to let it"),
        "{}",
        text(&out.stderr)
    );
}
