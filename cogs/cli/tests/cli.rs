//! The `tourbillon` binary end to end: the built-in default, config errors
//! with their exact messages, `check`, `train`.

use std::path::{Path, PathBuf};

mod common;
use common::{run_with_stdin, text, tourbillon};

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn the_default_decodes_json_lines_from_stdin_and_wraps_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        tourbillon(dir.path(), &["run"]),
        b"{\"level\":\"info\",\"n\":1}\nplain text\n{\"n\":3}",
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{}", text(&out.stdout));
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(lines[1]["message"], "plain text");
    assert_eq!(lines[2]["n"], 3, "the last line, without its newline, is not lost");
    let host = tourbillon_cogs::step::fields::hostname();
    for l in &lines {
        assert_eq!(l["host"], host.as_str());
        let at = l["received_at"].as_str().unwrap();
        assert!(at.len() == 24 && at.ends_with('Z'), "{at}");
    }
}

#[test]
fn a_config_file_with_overrides_from_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.jsonl");
    let cfg = write(
        dir.path(),
        "t.toml",
        &format!(
            "[log]\nlevel = \"warn\"\n[trains.main]\ncogs = [\n  {{ kind = \"stdin\" }},\n  {{ kind = \"json_decode\" }},\n  \
             {{ kind = \"set\", fields = {{ pipeline = \"file\" }} }},\n  {{ kind = \"json_encode\" }},\n  \
             {{ kind = \"file\", path = {:?} }},\n]\n",
            out_path.display().to_string()
        ),
    );
    let mut c = tourbillon(
        dir.path(),
        &[
            "run",
            cfg.to_str().unwrap(),
            "--set",
            "trains.main.cogs[2].fields.pipeline=\"flag\"",
        ],
    );
    c.env("TOURBILLON__TRAINS__MAIN__COGS__1__ON_ERROR", "wrap");
    let out = run_with_stdin(c, b"{\"a\":1}\nnot json\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let written = std::fs::read_to_string(&out_path).unwrap();
    assert_eq!(
        written, "{\"a\":1,\"pipeline\":\"flag\"}\n{\"message\":\"not json\",\"pipeline\":\"flag\"}\n",
        "the env override wrapped the bad line; the flag won over the file"
    );
}

/// Runs `check` on a file with `body` (and env) and returns (status, stderr).
fn check(body: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", body);
    let mut c = tourbillon(dir.path(), &["check", "c.toml"]);
    c.envs(env.iter().copied());
    let out = c.output().unwrap();
    (out.status.code().unwrap(), text(&out.stderr))
}

const GOOD: &str = "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"stdout\" }]\n";

#[test]
fn check_accepts_a_good_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", GOOD);
    let out = tourbillon(dir.path(), &["check", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "c.toml: ok (1 trains, 2 cogs)\n");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = tourbillon(dir.path(), &["check", "nope.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "tourbillon: the configuration has 1 error:\n  file nope.toml: cannot read the file: No such file or directory (os error 2)\n"
    );
}

#[test]
fn a_toml_syntax_error_gives_line_and_column() {
    let (code, err) = check("[trains.t]\ncogs = [{ kind = \"stdin\" }\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("file c.toml: TOML parse error at line 2, column"), "{err}");
}

#[test]
fn an_unknown_key_names_its_full_path_and_the_expected_ones() {
    let (code, err) = check(
        "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"file\", path = \"x\", fsnyc = true }]\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  file c.toml: trains.t.cogs[1].fsnyc: unknown field `fsnyc`: \
         did you mean `fsync`? (expected one of `path`, `buffer_bytes`, `fsync`, `create_dirs`, `retry_interval_ms`)\n"
    );
}

#[test]
fn a_wrong_type_names_the_key_and_the_expected_type() {
    let (code, err) = check(
        "[trains.t]\ncogs = [{ kind = \"stdin\", max_line_bytes = \"big\" }, { kind = \"stdout\" }]\n",
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  file c.toml: trains.t.cogs[0].max_line_bytes: invalid type: \
         string \"big\", expected usize\n"
    );
}

#[test]
fn an_unknown_cog_kind_lists_the_known_ones() {
    let (code, err) = check(
        "[trains.t]\ncogs = [{ kind = \"stdin\" }, { kind = \"sdtout\" }]\n",
        &[],
    );
    assert_eq!(code, 1);
    let kinds = tourbillon_cli::registry::Registry::standard().kinds().join(", ");
    assert_eq!(
        err,
        format!(
            "tourbillon: the configuration has 1 error:\n  file c.toml: trains.t.cogs[1].kind: unknown cog kind \
             `sdtout`: did you mean `stdout`? (known kinds: {kinds})\n"
        )
    );
}

#[test]
fn a_bad_env_override_names_the_variable() {
    let (code, err) = check(GOOD, &[("TOURBILLON__TRAINS__T__COGS__1__BUFFER_BYTES", "lots")]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "tourbillon: the configuration has 1 error:\n  env TOURBILLON__TRAINS__T__COGS__1__BUFFER_BYTES: \
         trains.t.cogs[1].buffer_bytes: invalid type: string \"lots\", expected usize\n"
    );
    let (code, err) = check(GOOD, &[("TOURBILLON__TRAINS__T__COGS__7__FSYNC", "true")]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "env TOURBILLON__TRAINS__T__COGS__7__FSYNC: trains.t.cogs: `7` is not a position in this list of 2"
        ),
        "{err}"
    );
}

#[test]
fn check_lists_every_error_not_only_the_first() {
    let (code, err) = check(
        "[log]\nlevel = \"loud\"\n[daemon]\numask = \"999\"\n[trains.t]\ncogs = [\n  { kind = \"stdin\", utf8 = \"maybe\" },\n  \
         { kind = \"nope\" },\n  { kind = \"file\" },\n]\n[trains.empty]\ncogs = []\n",
        &[],
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], "tourbillon: the configuration has 6 errors:", "{err}");
    for want in [
        "file c.toml: log.level: `loud` is not one of off, error, warn, info, debug, trace",
        "file c.toml: daemon.umask: `999` is not an octal mode between 000 and 777",
        "file c.toml: trains.empty.cogs: a train needs at least one cog",
        "file c.toml: trains.t.cogs[1].kind: unknown cog kind `nope`",
        "file c.toml: trains.t.cogs[0].utf8: unknown variant `maybe`, expected `keep` or `replace`",
        "file c.toml: trains.t.cogs[2].path: required: the file to append to",
    ] {
        assert!(
            lines.iter().any(|l| l.trim_start().starts_with(want)),
            "missing `{want}` in\n{err}"
        );
    }
}

#[test]
fn train_prints_cogs_with_effective_settings_and_their_origins() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "c.toml",
        "[trains.web]\ncogs = [{ kind = \"stdin\", max_line_bytes = 100 }, { kind = \"json_decode\" }, { kind = \"stdout\" }]\n",
    );
    let out = tourbillon(
        dir.path(),
        &["train", "c.toml", "--set", "trains.web.cogs[1].on_error=wrap"],
    )
    .env("TOURBILLON__TRAINS__WEB__COGS__2__STREAM", "stderr")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let has = |cog: &str, want: &str| {
        let mut under = String::new();
        for l in listing.lines() {
            if l.starts_with("  ") && !l.starts_with("   ") {
                under = norm(l);
            } else if under.starts_with(cog) && norm(l) == want {
                return;
            }
        }
        panic!("`{want}` not under `{cog}` in\n{listing}");
    };
    // The graph is drawn first; the settings follow it.
    assert!(listing.starts_with("┌─ web ─"), "{listing}");
    assert!(listing.contains("\n\ntrain web (3 cogs)\n"), "{listing}");
    has("0. supply stdin", "max_line_bytes = 100 (file c.toml)");
    has("0. supply stdin", "strip_cr = true (default)");
    has(
        "1. step json_decode",
        "on_error = \"wrap\" (flag --set trains.web.cogs[1].on_error=wrap)",
    );
    has(
        "2. drain stdout",
        "stream = \"stderr\" (env TOURBILLON__TRAINS__WEB__COGS__2__STREAM)",
    );

    let dot = tourbillon(dir.path(), &["train", "--dot", "c.toml"]).output().unwrap();
    let dot = text(&dot.stdout);
    assert!(dot.starts_with("digraph tourbillon {"), "{dot}");
    // One node per train, its cogs in order inside it.
    let (stdin, decode, stdout) = (
        dot.find("<b>stdin</b> <i>supply</i>").expect(&dot),
        dot.find("<b>json_decode</b> <i>step</i>").expect(&dot),
        dot.find("<b>stdout</b> <i>drain</i>").expect(&dot),
    );
    assert!(
        dot.contains("  \"web\" [label=<<table") && stdin < decode && decode < stdout,
        "{dot}"
    );
}

#[test]
fn version_and_help_with_examples() {
    let dir = tempfile::tempdir().unwrap();
    let v = tourbillon(dir.path(), &["--version"]).output().unwrap();
    assert_eq!(text(&v.stdout), format!("tourbillon {}\n", env!("CARGO_PKG_VERSION")));
    let h = tourbillon(dir.path(), &["--help"]).output().unwrap();
    assert!(
        text(&h.stdout).contains("Examples:\n  tourbillon run --input"),
        "{}",
        text(&h.stdout)
    );
}

#[test]
fn a_captured_run_replays_to_the_same_output_and_a_changed_train_differs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let body = "[log]\nlevel = \"error\"\n[trains.main]\ncogs = [\n  { kind = \"stdin\" },\n  \
                { kind = \"json_decode\", on_error = \"wrap\" },\n  { kind = \"set\", fields = { p = \"cap\" } },\n  \
                { kind = \"json_encode\" },\n  { kind = \"file\", path = \"out.jsonl\" },\n]\n";
    write(d, "c.toml", body);
    let live = run_with_stdin(
        tourbillon(d, &["run", "c.toml", "--capture", "live.tbcap"]),
        b"{\"a\":1}\nnot json\n{\"b\":2}\n",
    );
    assert_eq!(live.status.code(), Some(0), "{}", text(&live.stderr));
    assert_eq!(
        std::fs::read_to_string(d.join("out.jsonl")).unwrap(),
        "{\"a\":1,\"p\":\"cap\"}\n{\"message\":\"not json\",\"p\":\"cap\"}\n{\"b\":2,\"p\":\"cap\"}\n"
    );

    let same = tourbillon(d, &["replay", "live.tbcap", "c.toml", "--compare"])
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    let out = text(&same.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("same       train main drain 5 (") && lines[0].ends_with("): 3 data"),
        "{out}"
    );
    assert_eq!(lines[1], "same: every drain got the same data (3 in 1 drains)");
    assert!(
        text(&same.stderr).contains("replayed live.tbcap (3 inputs, 3 outputs"),
        "{}",
        text(&same.stderr)
    );

    let changed = [
        "replay",
        "live.tbcap",
        "c.toml",
        "--compare",
        "--set",
        "trains.main.cogs[2].fields.p=\"x\"",
    ];
    let diff = tourbillon(d, &changed).output().unwrap();
    assert_eq!(diff.status.code(), Some(1));
    let out = text(&diff.stdout);
    assert!(out.starts_with("different  train main drain 5 ("), "{out}");
    assert!(
        out.contains("): 3 vs 3 data; first at datum 1: {\"id\":1,\"data\":{\"a\":1,\"p\":\"cap\"},")
            && out.contains(" vs {\"id\":1,\"data\":{\"a\":1,\"p\":\"x\"},"),
        "{out}"
    );
    assert!(out.ends_with("different: 1 of 1 drains got other data\n"), "{out}");

    let strict = [
        "replay",
        "live.tbcap",
        "c.toml",
        "--strict",
        "--set",
        "trains.main.cogs[2].fields.p=\"x\"",
    ];
    let refused = tourbillon(d, &strict).output().unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("captured with another train"),
        "{}",
        text(&refused.stderr)
    );
}

#[test]
fn kinds_lists_every_registered_cog_kind() {
    let dir = tempfile::tempdir().unwrap();
    let out = tourbillon(dir.path(), &["kinds"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let listed: Vec<String> = text(&out.stdout)
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, tourbillon_cli::registry::Registry::standard().kinds());
}

#[test]
fn the_config_module_docs_example_passes_check() {
    // The example a reader copies from: a renamed key must fail here, not
    // in their deployment.
    let source = include_str!("../src/config/mod.rs");
    let start = source.find("//! ```toml\n").expect("config.rs has a TOML example") + "//! ```toml\n".len();
    let end = start + source[start..].find("//! ```\n").expect("the example ends");
    let example: String = source[start..end]
        .lines()
        .map(|l| l.strip_prefix("//! ").or_else(|| l.strip_prefix("//!")).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(example.contains("kind = \"tail\""), "{example}");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "c.toml", &example);
    let out = tourbillon(dir.path(), &["check", "c.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{example}\n{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("ok (1 trains, 4 cogs)"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn the_readme_s_sample_errors_are_what_check_says() {
    let readme = include_str!("../../../README.md");
    let at = readme
        .find("`tourbillon check web.toml` on")
        .expect("the README's sample");
    let block = |from: usize, fence: &str| {
        let start = from + readme[from..].find(fence).unwrap() + fence.len();
        let end = start + readme[start..].find("\n```").unwrap() + 1;
        (&readme[start..end], end)
    };
    let (config, after) = block(at, "```toml\n");
    let (said, _) = block(after, "```text\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "web.toml", config);
    let out = tourbillon(dir.path(), &["check", "web.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), said);
}

/// Every configuration in the README passes `check`, but the one shown
/// failing on purpose; one that reads a key from `/etc` fails only for
/// want of the file on a test machine.
#[test]
fn every_readme_configuration_checks() {
    let readme = include_str!("../../../README.md");
    let mistake = readme
        .find("`tourbillon check web.toml` on")
        .expect("the README's sample");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut from = 0;
    while let Some(i) = readme[from..].find("```toml\n") {
        let start = from + i + "```toml\n".len();
        let end = start + readme[start..].find("\n```").unwrap() + 1;
        from = end;
        let config = &readme[start..end];
        if !config.contains("[trains.") || (mistake..mistake + 100).contains(&start) {
            continue;
        }
        write(dir.path(), "c.toml", config);
        let out = tourbillon(dir.path(), &["check", "c.toml"]).output().unwrap();
        let err = text(&out.stderr);
        // What the machine lacks: a key in /etc, the directories the
        // shipped unit has systemd create.
        let machine = |l: &str| {
            l.contains(": cannot read /etc/")
                || ["/run/tourbillon ", "/var/log/tourbillon ", "/var/lib/tourbillon "]
                    .iter()
                    .any(|d| l.ends_with(&format!("the directory {}does not exist", d)))
        };
        let missing_etc_file = err.lines().skip(1).all(machine) && err.starts_with("tourbillon: the configuration has");
        assert!(
            out.status.success() || missing_etc_file,
            "README line {}: {err}\n{config}",
            readme[..start].lines().count()
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} configurations found in the README");
}

/// Every error of a cog is listed, not only its first, each with the
/// nearest known name where one is near; a text or a table where a list
/// belongs says so.
#[test]
fn every_error_is_listed_with_the_name_it_was_likely_meant_to_be() {
    let (code, err) = check(
        "[deamon]\nuser = \"x\"\n\
         [trains.web]\ncogs = [\n  { kind = \"tail\", inlcude = [\"/x\"], checkpoint_dri = \"/tmp/s\", poll_interval_ms = \"fast\" },\n  \
         { kind = \"file\", path = \"o\" },\n]\n\
         [trains.out]\ninputs = [\"wbe\"]\ncogs = [{ kind = \"stdout\" }]\n\
         [trains.t3]\ncogs = [{ kind = \"tail\", include = \"/var/log/x.log\", exclude = { a = 1 } }, { kind = \"stdout\" }]\n",
        &[],
    );
    assert_eq!(code, 1);
    for want in [
        "deamon: unknown section: did you mean `daemon`?",
        "trains.web.cogs[0].inlcude: unknown field `inlcude`: did you mean `include`?",
        "trains.web.cogs[0].checkpoint_dri: unknown field `checkpoint_dri`: did you mean `checkpoint_dir`?",
        "trains.web.cogs[0].poll_interval_ms: invalid type: string \"fast\", expected u64",
        "trains.out.inputs[0]: no train is named `wbe`: did you mean `web`?",
        "trains.t3.cogs[0].include: a text where a list belongs: write [\"/var/log/x.log\"]",
        "trains.t3.cogs[0].exclude: a table where a list belongs: write [ ... ], not { ... }",
    ] {
        assert!(err.contains(want), "no `{want}` in:\n{err}");
    }
    assert!(err.starts_with("tourbillon: the configuration has 7 errors:"), "{err}");
}
