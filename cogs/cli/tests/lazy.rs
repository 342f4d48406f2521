//! `json_decode lazy = true` on the standard job (tail, decode, drop
//! `level == "debug"`, add a field, encode, write), through the real
//! binary: every kept line is the input line with the field added, key
//! order, spacing and number text kept; what is kept and what is counted
//! malformed are what serde_json decides.

use std::path::Path;

use serde_json::Value;

mod common;
use common::{text, tourbillon};

/// Deterministic lines: objects in varied spellings (spacing, key order,
/// escapes, numbers serde_json would rewrite, nesting, 10% debug) and, every
/// 7th line, something serde_json refuses or that is not an object.
fn lines(n: usize) -> Vec<Vec<u8>> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bad: [&[u8]; 9] = [
        b"{\"level\":\"info\"",
        b"{\"level\":\"info\",}",
        b"{\"s\":\"\xff\"}",
        b"",
        b"{\"s\":\"\\ud800\"}",
        b"42",
        b"[{\"level\":\"info\"}]",
        b"{\"a\":1} x",
        b"{\"$serde_json::private::Number\":\"5\"}",
    ];
    (0..n)
        .map(|i| {
            let r = next();
            if i % 7 == 3 {
                return bad[(r % bad.len() as u64) as usize].to_vec();
            }
            let level = [
                "info", "warning", "error", "debug", "info", "info", "warning", "info", "info", "info",
            ][(r % 10) as usize];
            let mut fields = [
                format!("\"level\":\"{level}\""),
                format!("\"ts\":\"2026-11-22T10:00:{:02}.{:03}Z\"", r % 60, r % 1000),
                format!("\"bytes\":{}", r % 100_000),
                "\"big\":123456789012345678901234567890".to_owned(),
                "\"f\":1.50e+3".to_owned(),
                "\"msg\":\"say \\\"hi\\\" \\u00e9 \\ud83d\\ude00\"".to_owned(),
                "\"nested\":{\"z\":[1,{\"y\":null}],\"a\":true}".to_owned(),
                format!("\"id\":{i}"),
            ];
            let k = fields.len();
            fields.rotate_left((r >> 8) as usize % k);
            let sep = [",", ", ", " ,\t"][(r >> 16) as usize % 3];
            let body = fields.join(sep);
            match (r >> 20) % 3 {
                0 => format!("{{{body}}}"),
                1 => format!("{{ {body} }}"),
                _ => format!(" \t{{{body}\n }}"),
            }
            .replace('\n', " ")
            .into_bytes()
        })
        .collect()
}

fn run(dir: &Path, input: &Path, lazy: bool, out: &str) -> (Vec<u8>, String) {
    let config = format!(
        "[trains.t]\ncogs = [\n  {{ kind = \"tail\", include = [\"{}\"], batch = true }},\n  \
         {{ kind = \"json_decode\", lazy = {lazy} }},\n  \
         {{ kind = \"filter\", action = \"drop\", conditions = [{{ field = \"level\", equals = \"debug\" }}] }},\n  \
         {{ kind = \"set\", fields = {{ pipeline = \"tourbillon\" }} }},\n  \
         {{ kind = \"json_encode\" }},\n  {{ kind = \"file\", path = \"{out}\" }},\n]\n",
        input.display()
    );
    let name = format!("{out}.toml");
    std::fs::write(dir.join(&name), config).unwrap();
    let run = tourbillon(dir, &["run", &name]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    (std::fs::read(dir.join(out)).unwrap(), text(&run.stderr))
}

/// The line with `"pipeline":"tourbillon"` after its last field.
fn with_field(line: &str) -> String {
    let t = line.trim_matches([' ', '\t']);
    let body = &t[..t.len() - 1];
    let fields = body.trim_end();
    let sep = if fields.ends_with('{') { "" } else { "," };
    format!("{fields}{sep}\"pipeline\":\"tourbillon\"{}}}", &body[fields.len()..])
}

#[test]
fn the_standard_job_lazily_writes_each_kept_line_as_read_with_the_field_added() {
    let dir = tempfile::tempdir().unwrap();
    let input = lines(3000);
    let mut file = input.join(&b"\n"[..]);
    file.push(b'\n');
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, &file).unwrap();

    let mut expected = String::new();
    let mut malformed = 0;
    for line in &input {
        match serde_json::from_slice::<Value>(line) {
            Err(_) => malformed += 1,
            Ok(Value::Object(map)) => {
                if map.get("level").and_then(Value::as_str) != Some("debug") {
                    expected.push_str(&with_field(std::str::from_utf8(line).unwrap()));
                    expected.push('\n');
                }
            }
            // Not an object: kept by the tree path, checked below.
            Ok(_) => {}
        }
    }
    assert!(malformed > 100, "the input has malformed lines: {malformed}");

    let (lazy, lazy_log) = run(dir.path(), &path, true, "lazy.out");
    let (tree, _) = run(dir.path(), &path, false, "tree.out");
    let lazy = text(&lazy);
    let kept_objects: String = lazy
        .lines()
        .filter(|l| !l.starts_with("{\"value\"") && !l.starts_with("{\"pipeline\""))
        .flat_map(|l| [l, "\n"])
        .collect();
    assert_eq!(
        kept_objects, expected,
        "object lines are the input with the field added"
    );
    // Everything (non-objects too) holds what the tree path writes.
    let parse = |s: &str| {
        s.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(parse(&lazy), parse(&text(&tree)));
    // Bad lines are counted as serde_json counts them, and none is kept.
    let all = "malformed JSON input(s) in the last";
    let summary = lazy_log
        .lines()
        .rfind(|l| l.contains(all))
        .unwrap_or_else(|| panic!("{lazy_log}"));
    assert!(summary.ends_with(&format!("({malformed} in all)")), "{summary}");
    assert_eq!(lazy.lines().count(), parse(&text(&tree)).len());
}

#[test]
fn lazy_decoding_is_refused_where_it_does_not_read_raw_into_data() {
    use tourbillon_cogs::step::json::JsonDecodeSettings;
    for (source, target) in [("message", "data"), ("raw", "parsed")] {
        let settings = JsonDecodeSettings {
            lazy: Some(true),
            source: source.into(),
            target: target.into(),
            ..JsonDecodeSettings::default()
        };
        let err = settings.validate().unwrap_err().to_string();
        assert!(
            err.contains("lazy") && err.contains(source) && err.contains(target),
            "{err}"
        );
    }
}
