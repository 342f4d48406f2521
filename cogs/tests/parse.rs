//! The `parse` step on a real escapement: nginx and Apache access logs in
//! the servers' own formats, logfmt, kv, CSV, regex with types, and what
//! becomes of a line that does not parse.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tourbillon::{Cog, Context, Escapement, Event, EventId, Exit, Fired, Next, Role, Train};
use tourbillon_cogs::meter::Metered;
use tourbillon_cogs::step::parse::{Format, OnError, Parse, ParseSettings, Parser};
use tourbillon_cogs::time::Time;

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// Emits one event per line (fresh ids, origin `in`, line numbers from 1),
/// then says it is exhausted; records the ids reported done.
struct Supply {
    lines: Vec<Vec<u8>>,
    done: Shared<EventId>,
}

impl Cog<Event> for Supply {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        for (i, raw) in std::mem::take(&mut self.lines).into_iter().enumerate() {
            let id = ctx.next_event_id();
            ctx.emit(Event::from_raw(id, raw, Some("in".into()), i as u64 + 1));
        }
        ctx.exhausted();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn event_done<N: Next<Event> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, Event, N>) {
        self.done.lock().unwrap().push(id);
    }
}

/// Records what reaches it and reports it done.
struct Collect {
    seen: Shared<Event>,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.discard(&e);
        self.seen.lock().unwrap().push(e);
    }
}

/// What a run gives: the data that went on, those on the error output
/// `bad`, the count of ids reported done, and the named counts of the meter.
struct Run {
    good: Vec<Event>,
    bad: Vec<Event>,
    done: usize,
    counts: Vec<(String, u64)>,
    meter: tourbillon_cogs::meter::Counts,
}

impl Run {
    fn data(&self) -> Vec<Value> {
        self.good.iter().map(|e| e.value().clone()).collect()
    }
    fn count(&self, name: &str) -> u64 {
        self.counts.iter().find(|(n, _)| n == name).map(|(_, c)| *c).unwrap()
    }
}

fn settings(v: Value) -> ParseSettings {
    serde_json::from_value(v).unwrap()
}

/// Runs `lines` through a train `t` of a supply, `parse` and a collector;
/// with an error output, a train `dead` reads `t.bad`.
fn run(settings: ParseSettings, lines: Vec<Vec<u8>>) -> Run {
    let _g = exclusive();
    let with_output = settings.error_output.is_some();
    let parse = Parse::new(settings).unwrap();
    let meter = parse.meter();
    let (good, bad, done) = (Shared::default(), Shared::default(), Shared::default());
    let n = lines.len();
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Supply {
                lines,
                done: done.clone(),
            })
            .cog(parse)
            .cog(Collect { seen: good.clone() }),
    );
    if with_output {
        esc.add_train(
            Train::new("dead")
                .input("t.bad")
                .ids(Event::id_getter())
                .cog(Collect { seen: bad.clone() }),
        );
    }
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let done = done.lock().unwrap().len();
    assert_eq!(done, n, "every line is reported done once");
    let run = Run {
        good: good.lock().unwrap().clone(),
        bad: bad.lock().unwrap().clone(),
        done,
        counts: meter.named(),
        meter: meter.counts(),
    };
    assert_eq!(run.meter.input, n as u64);
    run
}

fn lines(text: &str) -> Vec<Vec<u8>> {
    text.lines().map(|l| l.as_bytes().to_vec()).collect()
}

#[test]
fn nginx_combined_lines_as_nginx_writes_them_every_field_exact() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/nginx_combined.log"
    ))
    .unwrap();
    let r = run(settings(json!({"format": "nginx_combined"})), lines(&text));
    assert_eq!(r.count("unparsed"), 0, "{:?}", r.data());
    let expected = [
        json!({"client": "127.0.0.1", "time": "30/Nov/2026:10:15:02 +0000", "request": "GET /index.html HTTP/1.1",
               "method": "GET", "path": "/index.html", "protocol": "HTTP/1.1", "status": 200, "size": 612,
               "agent": "curl/8.5.0"}),
        json!({"client": "2001:db8::1", "user": "alice", "time": "30/Nov/2026:10:15:03 +0100",
               "request": "POST /api/v1/items?id=7&q=%20x HTTP/2.0", "method": "POST",
               "path": "/api/v1/items?id=7&q=%20x", "protocol": "HTTP/2.0", "status": 201, "size": 0,
               "referer": "https://example.com/a\"b", "agent": "Mozilla/5.0 (X11; Linux x86_64) \"quoted\""}),
        // A TLS handshake on a plain-HTTP port: its bytes are not UTF-8, so
        // the request keeps nginx's escapes, and it has no method.
        json!({"client": "::1", "time": "30/Nov/2026:10:15:04 +0000",
               "request": "\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xFC\\x03\\x03", "status": 400, "size": 157}),
        json!({"client": "fe80::1%eth0", "time": "30/Nov/2026:10:15:05 -0500", "status": 400, "size": 0}),
        json!({"client": "10.0.0.2", "user": "bob\\smith", "time": "30/Nov/2026:10:15:06 +0000",
               "request": "GET /café?a=\\b HTTP/1.0", "method": "GET", "path": "/café?a=\\b", "protocol": "HTTP/1.0",
               "status": 304, "size": 0, "agent": "Wget при"}),
        json!({"client": "::ffff:192.0.2.9", "time": "30/Nov/2026:10:15:07 +0000", "request": "GET /",
               "method": "GET", "path": "/", "status": 200, "size": 12}),
    ];
    let data = r.data();
    assert_eq!(data.len(), expected.len());
    for (got, want) in data.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    assert_eq!(
        r.good[1].raw,
        text.lines().nth(1).unwrap().as_bytes(),
        "the line read is kept"
    );
}

#[test]
fn apache_common_and_combined_with_backslash_escapes() {
    let common = r#"192.168.1.20 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326
::ffff:10.0.0.1 ident7 - [10/Oct/2000:13:55:37 -0700] "HEAD / HTTP/1.1" 304 -"#;
    let r = run(settings(json!({"format": "apache_common"})), lines(common));
    assert_eq!(
        r.data(),
        [
            json!({"client": "192.168.1.20", "user": "frank", "time": "10/Oct/2000:13:55:36 -0700",
                   "request": "GET /apache_pb.gif HTTP/1.0", "method": "GET", "path": "/apache_pb.gif",
                   "protocol": "HTTP/1.0", "status": 200, "size": 2326}),
            json!({"client": "::ffff:10.0.0.1", "ident": "ident7", "time": "10/Oct/2000:13:55:37 -0700",
                   "request": "HEAD / HTTP/1.1", "method": "HEAD", "path": "/", "protocol": "HTTP/1.1", "status": 304}),
        ]
    );
    let combined = r#"2001:db8::7 - - [10/Oct/2000:13:55:38 -0700] "GET /q?x=\"y\" HTTP/1.1" 200 5 "http://r/\"a\"" "UA \"x\" \\ end\t"
1.2.3.4 - - [10/Oct/2000:13:55:39 -0700] "GET / HTTP/1.1" 200 5 "-" "-" extra"#;
    let r = run(settings(json!({"format": "apache_combined"})), lines(combined));
    assert_eq!(
        r.data()[0],
        json!({"client": "2001:db8::7", "time": "10/Oct/2000:13:55:38 -0700", "request": "GET /q?x=\"y\" HTTP/1.1",
               "method": "GET", "path": "/q?x=\"y\"", "protocol": "HTTP/1.1", "status": 200, "size": 5,
               "referer": "http://r/\"a\"", "agent": "UA \"x\" \\ end\t"})
    );
    // Text after the last field is not Apache's combined format: unparsed, kept with why.
    assert_eq!(r.count("unparsed"), 1);
    let kept = &r.data()[1];
    assert!(
        kept["error"].as_str().unwrap().contains("after the last field"),
        "{kept}"
    );
    assert_eq!(kept["message"], json!(combined.lines().nth(1).unwrap()));
    assert_eq!(r.meter.errors, 1);
}

#[test]
fn logfmt_quotes_empty_values_bare_keys_and_separators_in_values() {
    let text = r#"level=info msg="hello \"world\" a=b" empty= bare path=/a=b  dur=1.5s
msg="tab\there\\" k=v
msg="no end
=novalue
"#;
    let r = run(settings(json!({"format": "logfmt"})), lines(text));
    let data = r.data();
    assert_eq!(
        data[0],
        json!({"level": "info", "msg": "hello \"world\" a=b", "empty": "", "bare": true, "path": "/a=b", "dur": "1.5s"})
    );
    assert_eq!(data[1], json!({"msg": "tab\there\\", "k": "v"}));
    assert!(
        data[2]["error"].as_str().unwrap().contains("no closing quote"),
        "{}",
        data[2]
    );
    assert_eq!(data[2]["message"], json!("msg=\"no end"));
    assert!(data[3]["error"].as_str().unwrap().contains("no key"), "{}", data[3]);
    assert_eq!(r.count("unparsed"), 2);
}

#[test]
fn kv_with_separators_and_quote_by_setting() {
    let s = settings(json!({"format": "kv", "field_split": ",", "value_split": ":", "quote": "'"}));
    let text = "a: 1, b:'x, y: \\'z\\'', c:, d\nuser:'open";
    let r = run(s, lines(text));
    let data = r.data();
    assert_eq!(data[0], json!({"a": "1", "b": "x, y: 'z'", "c": "", "d": true}));
    assert!(data[1]["error"].as_str().unwrap().contains("no closing quote"));
    assert_eq!(r.count("unparsed"), 1);
}

#[test]
fn csv_quotes_empty_fields_wrong_counts_and_a_newline_in_quotes() {
    let s = json!({"format": "csv", "columns": ["a", "b", "c"]});
    let text = "1,\"x,y\",\"say \"\"hi\"\"\"\n,,\n1,2\n1,\"cut at a newline\n";
    let r = run(settings(s.clone()), lines(text));
    let data = r.data();
    assert_eq!(data[0], json!({"a": "1", "b": "x,y", "c": "say \"hi\""}));
    assert_eq!(data[1], json!({"a": "", "b": "", "c": ""}));
    assert_eq!(data[2]["error"], json!("2 fields, 3 columns"));
    assert!(data[3]["error"].as_str().unwrap().contains("not closed"), "{}", data[3]);
    assert_eq!(r.count("unparsed"), 2);
    // A datum holding the whole record (joined before parse, or one
    // datagram) is read whole, newline and all.
    let r = run(settings(s), vec![b"7,\"two\nlines\",z".to_vec()]);
    assert_eq!(r.data(), [json!({"a": "7", "b": "two\nlines", "c": "z"})]);
    let s = settings(json!({"format": "csv", "columns": ["x", "y"], "delimiter": ";"}));
    assert_eq!(run(s, lines("1;\"a;b\"")).data(), [json!({"x": "1", "y": "a;b"})]);
}

#[test]
fn regex_with_typed_fields_keeps_a_value_that_does_not_convert() {
    let events = [
        "2026-11-30T10:00:00Z info took=1.5 ok=true n=3",
        "2026-11-30T10:00:01Z warn took=fast ok=no",
        "not this",
    ];
    let s = settings(json!({
        "format": "regex",
        "pattern": r"^(?P<ts>\S+) (?P<level>\w+) took=(?P<ms>\S+) ok=(?P<ok>\S+)(?: n=(?P<n>\d+))?$",
        "types": {"ms": "float", "ok": "bool", "n": "int"},
    }));
    let r = run(s, events.iter().map(|l| l.as_bytes().to_vec()).collect());
    let data = r.data();
    assert_eq!(
        data[0],
        json!({"ts": "2026-11-30T10:00:00Z", "level": "info", "ms": 1.5, "ok": true, "n": 3})
    );
    assert_eq!(
        data[1],
        json!({"ts": "2026-11-30T10:00:01Z", "level": "warn", "ms": "fast", "ok": false}),
        "the value that is not a float is kept as it was"
    );
    assert_eq!(data[2]["error"], json!("does not match the pattern"));
    assert_eq!((r.count("unconverted"), r.count("unparsed")), (1, 1));
    assert_eq!(r.meter.errors, 2);
}

#[test]
fn timestamp_type_reads_the_known_formats_and_keeps_what_it_cannot_read() {
    let events = [
        "1 2000-10-10T13:55:36.5-07:00",
        "2 10/Oct/2000:13:55:36 -0700",
        "3 Nov 30 20:13:01",
        "4 971186136",
        "5 971186136.25",
        "6 yesterday",
        "7 2000-02-30T00:00:00Z",
    ];
    let s = settings(json!({
        "format": "regex",
        "pattern": r"^(?P<n>\d+) (?P<ts>.+)$",
        "types": {"ts": "timestamp", "n": "int"},
    }));
    let r = run(s, events.iter().map(|l| l.as_bytes().to_vec()).collect());
    let ts: Vec<Value> = r.data().iter().map(|d| d["ts"].clone()).collect();
    assert_eq!(ts[0], json!("2000-10-10T20:55:36.500Z"));
    assert_eq!(ts[1], json!("2000-10-10T20:55:36Z"));
    // RFC 3164 has no year: this one or the last, never in the future.
    let now = Time::from_system(SystemTime::now()).rfc3339(0);
    let this_year: i64 = now[..4].parse().unwrap();
    let bsd = ts[2].as_str().unwrap();
    assert!(bsd.ends_with("-11-30T20:13:01Z"), "{bsd}");
    let year: i64 = bsd[..4].parse().unwrap();
    assert!(year == this_year || year == this_year - 1, "{bsd}");
    assert!(bsd <= now.as_str() || year == this_year - 1, "{bsd} after {now}");
    assert_eq!(ts[3], json!("2000-10-10T13:55:36Z"));
    assert_eq!(ts[4], json!("2000-10-10T13:55:36.250Z"));
    assert_eq!(ts[5], json!("yesterday"), "kept as it was");
    assert_eq!(ts[6], json!("2000-02-30T00:00:00Z"), "no such day: kept as it was");
    assert_eq!(r.data()[0]["n"], json!(1));
    assert_eq!((r.count("unconverted"), r.count("unparsed")), (2, 0));
}

#[test]
fn nginx_time_typed_as_timestamp() {
    let line = r#"192.0.2.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 3 "-" "-""#;
    let s = settings(json!({"format": "nginx_combined", "types": {"time": "timestamp"}}));
    let r = run(s, lines(line));
    assert_eq!(r.data()[0]["time"], json!("2000-10-10T20:55:36Z"));
    assert_eq!(r.count("unconverted"), 0);
}

#[test]
fn source_and_target_fields() {
    // The source field holds the text; the fields go under the target,
    // next to what the data already had.
    let s = settings(json!({"format": "logfmt", "source": "msg", "target": "kv"}));
    let e = Event::new(EventId(1), json!({"msg": "a=1 b=\"two\"", "host": "h"}));
    let fields = parse_one(Parse::new(s).unwrap(), e);
    assert_eq!(
        fields,
        json!({"msg": "a=1 b=\"two\"", "host": "h", "kv": {"a": "1", "b": "two"}})
    );
}

/// One event through `parse` in a train of its own; the data that comes out.
fn parse_one(parse: Parse, event: Event) -> Value {
    let _g = exclusive();
    let seen = Shared::default();
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.add_train(
        Train::new("one")
            .ids(Event::id_getter())
            .cog(common::VecSupply::new(vec![event], 1))
            .cog(parse)
            .cog(Collect { seen: seen.clone() }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    seen[0].value().clone()
}

#[test]
fn a_line_that_does_not_parse_goes_to_the_error_output_with_the_reason() {
    let good = r#"127.0.0.1 - - [30/Nov/2026:10:15:02 +0000] "GET / HTTP/1.1" 200 1 "-" "-""#;
    let lines = vec![
        good.as_bytes().to_vec(),
        b"garbage here".to_vec(),
        b"\xff\xfe".to_vec(),
        good.as_bytes().to_vec(),
    ];
    let r = run(
        settings(json!({"format": "nginx_combined", "error_output": "bad"})),
        lines,
    );
    assert_eq!(r.good.len(), 2, "the rest goes on");
    assert!(r.data().iter().all(|d| d["status"] == json!(200)));
    assert_eq!(r.bad.len(), 2);
    assert_eq!(r.bad[0].value()["message"], json!("garbage here"));
    assert_eq!(r.bad[0].raw, b"garbage here", "the line read is kept");
    assert!(
        r.bad[0].value()["error"].as_str().unwrap().contains("expected `- `"),
        "{}",
        r.bad[0].value()
    );
    assert!(r.bad[1].value()["error"].as_str().unwrap().starts_with("not UTF-8"));
    assert_eq!((r.count("unparsed"), r.count("to_error_output")), (2, 2));
    assert_eq!((r.meter.output, r.meter.dropped, r.done), (4, 0, 4));

    // on_error = "drop": counted, dropped, reported done.
    let r = run(
        settings(json!({"format": "logfmt", "on_error": "drop", "error_field": "why"})),
        vec![b"a=1".to_vec(), b"=".to_vec()],
    );
    assert_eq!(r.data(), [json!({"a": "1"})]);
    assert_eq!((r.count("unparsed"), r.meter.dropped, r.done), (1, 1, 2));
    assert!(r.bad.is_empty());
}

#[test]
fn settings_are_checked_by_key() {
    let err = |v: Value| Parse::new(settings(v)).unwrap_err().to_string();
    assert!(err(json!({"format": "regex", "pattern": "("})).starts_with("pattern: regex parse error"));
    assert!(err(json!({"format": "regex", "pattern": "a(b)"})).starts_with("pattern: has no named group"));
    assert!(err(json!({"format": "nginx"})).starts_with("format: unknown format `nginx`: one of regex, nginx_combined"));
    assert!(err(json!({})).starts_with("format: required"));
    assert!(err(json!({"format": "logfmt", "types": {"ok": "boolean"}})).starts_with("types.ok: unknown type"));
    assert!(err(json!({"format": "csv"})).starts_with("columns: required"));
    assert!(err(json!({"format": "kv", "quote": "''"})).starts_with("quote:"));
    assert!(err(json!({"format": "logfmt", "error_output": "bad", "on_error": "drop"})).starts_with("error_output:"));
    assert_eq!(settings(json!({"format": "logfmt"})).on_error, OnError::Keep);
}

/// Text built from the characters the formats care about, so that the
/// parsers get far into their lines.
fn tricky() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(" "),
            Just("\""),
            Just("\\"),
            Just("="),
            Just(","),
            Just("["),
            Just("]"),
            Just("-"),
            Just("\\x"),
            Just("\\x2"),
            Just("\\xC3"),
            Just("200"),
            Just("GET / HTTP/1.1"),
            Just("'"),
            Just(":"),
            Just("é"),
            Just("\n"),
            Just("a"),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn all_parsers() -> Vec<Parser> {
    Format::NAMES
        .iter()
        .map(|(name, _)| {
            let s = settings(json!({
                "format": name,
                "pattern": (*name == "regex").then_some(r#"^(?P<a>\S+) "(?P<b>[^"]*)"(?: (?P<c>\d+))?"#),
                "columns": if *name == "csv" { json!(["a", "b", "c"]) } else { json!([]) },
            }));
            Parser::new(&s).unwrap()
        })
        .collect()
}

thread_local! {
    static PARSERS: Arc<Vec<Parser>> = Arc::new(all_parsers());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn no_format_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), text in tricky()) {
        for parser in PARSERS.with(|p| p.clone()).iter() {
            let lossy = String::from_utf8_lossy(&bytes);
            for line in [&*lossy, &*text] {
                if let Ok(fields) = parser.parse(line) {
                    prop_assert!(!fields.is_empty() || line.is_empty() || matches!(parser, Parser::Regex(..)));
                }
            }
        }
    }
}

/// Text of what logfmt reads, and every kind of whitespace around it.
fn logfmt_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(" "),
            Just("  "),
            Just("\t"),
            Just("\u{0B}"),
            Just("\u{A0}"),
            Just("\u{3000}"),
            Just("\""),
            Just("\\"),
            Just("\\\""),
            Just("\\n"),
            Just("="),
            Just("k"),
            Just("é"),
            Just("v1"),
        ],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// logfmt has its own fast reader: it reads every line as `kv` with
    /// the default separators and quote does, errors included.
    #[test]
    fn logfmt_reads_what_kv_with_its_defaults_reads(text in logfmt_like()) {
        let logfmt = Parser::new(&settings(json!({"format": "logfmt"}))).unwrap();
        let kv = Parser::new(&settings(json!({"format": "kv"}))).unwrap();
        prop_assert_eq!(logfmt.parse(&text), kv.parse(&text), "{:?}", text);
    }
}

/// One record as the `csv` crate's own `Reader` reads it, one reader per
/// line: what the reused reader of the `csv` format must match.
fn csv_reference(line: &str, columns: &[&str]) -> Result<Map<String, Value>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(line.as_bytes());
    let mut record = csv::StringRecord::new();
    if !reader.read_record(&mut record).map_err(|e| e.to_string())? {
        return Err("no record".into());
    }
    if reader
        .read_record(&mut csv::StringRecord::new())
        .map_err(|e| e.to_string())?
    {
        return Err("more than one record (a newline outside quotes)".into());
    }
    if record.len() != columns.len() {
        return Err(format!("{} fields, {} columns", record.len(), columns.len()));
    }
    Ok(columns
        .iter()
        .zip(record.iter())
        .map(|(c, v)| (c.to_string(), Value::String(v.to_owned())))
        .collect())
}

fn csv_like() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(","),
            Just("\""),
            Just("\"\""),
            Just("a"),
            Just("é"),
            Just(" "),
            Just("\n"),
            Just("\r"),
            Just("\r\n"),
            Just("\u{feff}"),
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    /// The `csv` format reuses one reader for every line: each line reads
    /// as a fresh `csv::Reader` reads it, whatever the lines before it
    /// left behind (an unclosed quote is refused before either reads).
    #[test]
    fn csv_reads_each_line_as_a_fresh_csv_reader_does(lines in proptest::collection::vec(csv_like(), 1..6)) {
        let columns = ["a", "b", "c"];
        let parser = Parser::new(&settings(json!({"format": "csv", "columns": columns}))).unwrap();
        for line in &lines {
            let got = parser.parse(line);
            if got.as_ref().is_err_and(|e| e.contains("not closed")) {
                continue;
            }
            prop_assert_eq!(got, csv_reference(line, &columns), "{:?}", line);
        }
    }
}
