//! The line splitter, the `lines` cog and the JSON cogs, on a real escapement.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tourbillon::{Cog, Context, Escapement, Event, EventId, Exit, Finish, Fired, Next, Role, Train};
use tourbillon_cogs::splitter::{LineFlags, LineSplitter, LinesSettings, Utf8};
use tourbillon_cogs::step::json::{DecodeError, JsonDecode, JsonDecodeSettings, JsonEncode, OnError};
use tourbillon_cogs::step::lines::Lines;
use tourbillon_cogs::{LogThrottle, Summary, Verdict};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

fn quiet() -> Escapement {
    Escapement::builder().graceful_signals(false).build().unwrap()
}

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// Emits one event per item on the first turn (fresh ids, `origin` as
/// given), then says it is exhausted. Journals the ids reported done.
struct Supply {
    items: Vec<(Vec<u8>, &'static str)>,
    ids: Shared<(EventId, &'static str)>,
    done: Shared<EventId>,
    journal: Shared<String>,
}

impl Supply {
    fn new(items: Vec<(Vec<u8>, &'static str)>) -> Supply {
        Supply {
            items,
            ids: Shared::default(),
            done: Shared::default(),
            journal: Shared::default(),
        }
    }
}

impl Cog<Event> for Supply {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        for (raw, origin) in std::mem::take(&mut self.items) {
            let id = ctx.next_event_id();
            self.ids.lock().unwrap().push((id, origin));
            ctx.emit(Event::from_raw(id, raw, Some(origin.into()), 0));
        }
        ctx.exhausted();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn event_done<N: Next<Event> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, Event, N>) {
        self.done.lock().unwrap().push(id);
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, _: &mut Context<'_, Event, N>) -> Finish {
        self.journal.lock().unwrap().push("supply finish".into());
        Finish::Done
    }
}

/// Records what reaches it and reports it done.
struct Collect {
    seen: Shared<Event>,
    journal: Shared<String>,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.journal
            .lock()
            .unwrap()
            .push(format!("line {}", String::from_utf8_lossy(&e.raw)));
        ctx.discard(&e);
        self.seen.lock().unwrap().push(e);
    }
}

/// Keeps everything until finish, then lets it go in reverse order: a cog
/// that does not finish data in the order it got them.
#[derive(Default)]
struct Reverse(Vec<Event>);

impl Cog<Event> for Reverse {
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, _: &mut Context<'_, Event, N>) {
        self.0.push(e)
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        while let Some(e) = self.0.pop() {
            ctx.emit(e)
        }
        Finish::Done
    }
}

fn chunks(items: &[&'static str]) -> Vec<(Vec<u8>, &'static str)> {
    items.iter().map(|s| (s.as_bytes().to_vec(), *s)).collect()
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| String::from_utf8_lossy(&e.raw).into_owned())
        .collect()
}

fn split_all(settings: &LinesSettings, pieces: &[&[u8]]) -> (Vec<(Vec<u8>, LineFlags)>, LineSplitter) {
    let mut split = LineSplitter::new(settings).unwrap();
    let mut out = Vec::new();
    for piece in pieces {
        split.push(piece, |line, flags| out.push((line.to_vec(), flags)));
    }
    split.take_partial(|line, flags| out.push((line.to_vec(), flags)));
    (out, split)
}

fn lines_of(out: &[(Vec<u8>, LineFlags)]) -> Vec<String> {
    out.iter()
        .map(|(l, _)| String::from_utf8_lossy(l).into_owned())
        .collect()
}

// ---- the splitter --------------------------------------------------------

#[test]
fn splitter_finds_the_same_lines_whatever_the_chunk_boundaries() {
    let input: &[u8] = b"first\r\n\nsecond line\nthird\r\n\xce\xbb fourth\nlast";
    let settings = LinesSettings::default();
    let (whole, _) = split_all(&settings, &[input]);
    assert_eq!(
        lines_of(&whole),
        ["first", "", "second line", "third", "λ fourth", "last"]
    );
    for size in 1..input.len() {
        let pieces: Vec<&[u8]> = input.chunks(size).collect();
        let (out, split) = split_all(&settings, &pieces);
        assert_eq!(out, whole, "chunks of {size} bytes");
        assert_eq!(split.lines(), 6);
    }
    for a in 0..input.len() {
        for b in a..input.len() {
            let (out, _) = split_all(&settings, &[&input[..a], &input[a..b], &input[b..]]);
            assert_eq!(out, whole, "cut at {a} and {b}");
        }
    }
}

#[test]
fn a_partial_line_is_held_until_its_newline_or_taken_out() {
    let mut split = LineSplitter::new(&LinesSettings::default()).unwrap();
    let mut out = Vec::new();
    split.push(b"one\ntw", |l, _| out.push(l.to_vec()));
    assert_eq!(out, [b"one".to_vec()]);
    assert_eq!(split.partial_len(), 2);
    split.push(b"o", |l, _| out.push(l.to_vec()));
    assert_eq!(out.len(), 1, "still no newline");
    let mut flags = LineFlags::default();
    assert!(split.take_partial(|l, f| {
        out.push(l.to_vec());
        flags = f;
    }));
    assert_eq!(out[1], b"two");
    assert!(flags.unterminated);
    assert!(!split.take_partial(|_, _| panic!("nothing is held any more")));
}

#[test]
fn a_line_longer_than_the_max_is_cut_counted_and_the_next_lines_are_intact() {
    let settings = LinesSettings {
        max_line_bytes: 8,
        ..LinesSettings::default()
    };
    // The long line arrives over three chunks; another fits in one.
    let pieces: &[&[u8]] = &[b"short\n0123456", b"789abcdef", b"ghij\nnext\nABCDEFGHIJKL\nend\n"];
    let (out, split) = split_all(&settings, pieces);
    assert_eq!(lines_of(&out), ["short", "01234567", "next", "ABCDEFGH", "end"]);
    let truncated: Vec<bool> = out.iter().map(|(_, f)| f.truncated).collect();
    assert_eq!(truncated, [false, true, false, true, false]);
    assert_eq!(split.truncated(), 2);
    assert_eq!(split.discarded_bytes(), (20 - 8) + (12 - 8));
    // The second long line came whole in one chunk: its count is exact.
    assert_eq!((out[3].1.dropped, out[3].1.rest_unknown), (4, false));
    // The first was cut before its end arrived: what was dropped by then.
    assert_eq!((out[1].1.dropped, out[1].1.rest_unknown), (8, true));
    for size in 1..10 {
        let joined: Vec<u8> = pieces.concat();
        let pieces: Vec<&[u8]> = joined.chunks(size).collect();
        let (again, split) = split_all(&settings, &pieces);
        // `dropped` and `rest_unknown` say what was known when the cut line
        // went out, which depends on the chunks; the rest does not.
        let same = |v: &[(Vec<u8>, LineFlags)]| -> Vec<(Vec<u8>, bool, bool, bool)> {
            v.iter()
                .map(|(l, f)| (l.clone(), f.truncated, f.replaced, f.unterminated))
                .collect()
        };
        assert_eq!(same(&again), same(&out), "chunks of {size} bytes");
        assert_eq!(split.discarded_bytes(), 16);
    }
}

#[test]
fn a_cut_never_splits_a_utf8_character() {
    let settings = LinesSettings {
        max_line_bytes: 4,
        utf8: Utf8::Replace,
        ..LinesSettings::default()
    };
    let (out, _) = split_all(&settings, &["abλλ\n".as_bytes()]);
    assert_eq!(lines_of(&out), ["abλ"]);
    assert!(out[0].1.truncated && !out[0].1.replaced);
}

#[test]
fn a_line_of_exactly_the_max_before_crlf_is_whole() {
    let settings = LinesSettings {
        max_line_bytes: 4,
        ..LinesSettings::default()
    };
    let (out, split) = split_all(&settings, &[b"abcd\r", b"\nefgh\r", b"\n"]);
    assert_eq!(lines_of(&out), ["abcd", "efgh"]);
    assert_eq!(split.truncated(), 0);
}

#[test]
fn crlf_endings_are_stripped_only_when_asked() {
    let input: &[u8] = b"a\r\nb\r\n";
    let (stripped, _) = split_all(&LinesSettings::default(), &[input]);
    assert_eq!(lines_of(&stripped), ["a", "b"]);
    let keep = LinesSettings {
        strip_cr: false,
        ..LinesSettings::default()
    };
    let (kept, _) = split_all(&keep, &[input]);
    assert_eq!(lines_of(&kept), ["a\r", "b\r"]);
}

#[test]
fn invalid_utf8_is_kept_as_it_is_or_replaced() {
    let input: &[u8] = b"ok \xff\xfe end\nfine\n";
    let (kept, split) = split_all(&LinesSettings::default(), &[input]);
    assert_eq!(kept[0].0, b"ok \xff\xfe end");
    assert!(!kept[0].1.replaced);
    assert_eq!(split.replaced(), 0);

    let replace = LinesSettings {
        utf8: Utf8::Replace,
        ..LinesSettings::default()
    };
    let (replaced, split) = split_all(&replace, &[&input[..4], &input[4..]]);
    assert_eq!(replaced[0].0, "ok \u{FFFD}\u{FFFD} end".as_bytes());
    assert!(replaced[0].1.replaced);
    assert_eq!(replaced[1], (b"fine".to_vec(), LineFlags::default()));
    assert_eq!(split.replaced(), 1);
}

#[test]
fn zero_max_line_bytes_is_refused_naming_the_key() {
    let err = LineSplitter::new(&LinesSettings {
        max_line_bytes: 0,
        ..LinesSettings::default()
    })
    .unwrap_err();
    assert!(err.to_string().starts_with("max_line_bytes:"), "{err}");
}

#[test]
fn settings_refuse_unknown_fields_and_fill_in_defaults() {
    let s: LinesSettings = serde_json::from_str(r#"{"utf8": "replace"}"#).unwrap();
    assert_eq!(s.utf8, Utf8::Replace);
    assert_eq!(s.max_line_bytes, 1 << 20);
    assert!(serde_json::from_str::<LinesSettings>(r#"{"max_line": 5}"#).is_err());
    let d: JsonDecodeSettings = serde_json::from_str(r#"{"on_error": "wrap"}"#).unwrap();
    assert_eq!((d.on_error, d.log_interval), (OnError::Wrap, 10));
    assert!(serde_json::from_str::<JsonDecodeSettings>(r#"{"on_errors": "wrap"}"#).is_err());
}

// ---- the lines cog -------------------------------------------------------

/// Runs `supply -> lines -> collect`; returns what was collected and the
/// order of things.
fn run_lines(settings: LinesSettings, supply: Supply) -> (Vec<Event>, Vec<String>, Supply) {
    let _g = exclusive();
    let seen = Shared::default();
    let journal = supply.journal.clone();
    let probe = Supply {
        items: Vec::new(),
        ids: supply.ids.clone(),
        done: supply.done.clone(),
        journal: journal.clone(),
    };
    let mut esc = quiet();
    esc.add_train(
        Train::new("lines")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Lines::new(settings).unwrap())
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: journal.clone(),
            }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let seen = seen.lock().unwrap().clone();
    let journal = journal.lock().unwrap().clone();
    (seen, journal, probe)
}

#[test]
fn lines_cog_joins_lines_split_across_data() {
    let supply = Supply::new(chunks(&["alpha\nbe", "ta\ngam", "ma\ndelta\n"]));
    let (seen, _, _) = run_lines(LinesSettings::default(), supply);
    assert_eq!(texts(&seen), ["alpha", "beta", "gamma", "delta"]);
    let numbers: Vec<u64> = seen.iter().map(|e| e.line).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    // A line takes its origin from the datum that completed it.
    assert_eq!(seen[1].origin.as_deref(), Some("ta\ngam"));
}

#[test]
fn the_partial_last_line_is_held_then_emitted_at_finish() {
    let supply = Supply::new(chunks(&["one\ntwo\nthr", "ee (no newline)"]));
    let (seen, journal, _) = run_lines(LinesSettings::default(), supply);
    assert_eq!(texts(&seen), ["one", "two", "three (no newline)"]);
    assert_eq!(
        journal,
        ["line one", "line two", "supply finish", "line three (no newline)"],
        "the last line waits for finish"
    );
}

#[test]
fn lines_cog_counts_truncated_lines_and_keeps_the_rest() {
    let _g = exclusive();
    let seen = Shared::default();
    let lines = Lines::new(LinesSettings {
        max_line_bytes: 5,
        ..LinesSettings::default()
    })
    .unwrap();
    let stats = lines.stats();
    let mut esc = quiet();
    esc.add_train(
        Train::new("long")
            .cog(Supply::new(chunks(&["ok\nmuch too lo", "ng\nfine\n"])))
            .cog(lines)
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    esc.run().unwrap();
    assert_eq!(texts(&seen.lock().unwrap()), ["ok", "much ", "fine"]);
    assert_eq!(stats.lines.get(), 3);
    assert_eq!(stats.truncated.get(), 1);
    assert_eq!(stats.discarded_bytes.get(), "too long".len() as u64);
}

#[test]
fn a_datum_is_done_only_after_every_line_cut_from_it() {
    let _g = exclusive();
    // "a3" starts in the first datum and ends in the second; "b2" is the
    // partial line emitted at finish.
    let supply = Supply::new(vec![
        (b"a1\na2\na".to_vec(), "p1"),
        (b"3\nb1\n".to_vec(), "p2"),
        (b"b2".to_vec(), "p3"),
    ]);
    let (ids, done) = (supply.ids.clone(), supply.done.clone());
    let seen = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("acks")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Lines::new(LinesSettings::default()).unwrap())
            .cog(Reverse::default())
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    esc.run().unwrap();
    let parent: HashMap<&str, EventId> = ids.lock().unwrap().iter().map(|(id, o)| (*o, *id)).collect();
    let line: HashMap<String, EventId> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|e| (String::from_utf8_lossy(&e.raw).into_owned(), e.id))
        .collect();
    let done = done.lock().unwrap().clone();
    let at = |id: EventId| {
        let hits: Vec<usize> = (0..done.len()).filter(|&i| done[i] == id).collect();
        assert_eq!(hits.len(), 1, "{id} reported done once, in {done:?}");
        hits[0]
    };
    let made_of = [
        ("a1", vec!["p1"]),
        ("a2", vec!["p1"]),
        ("a3", vec!["p1", "p2"]),
        ("b1", vec!["p2"]),
        ("b2", vec!["p3"]),
    ];
    for (text, parents) in made_of {
        for p in parents {
            assert!(
                at(line[text]) < at(parent[p]),
                "{p} is done after its line {text}: {done:?}"
            );
        }
    }
    assert_eq!(done.len(), 8, "five lines and three parents: {done:?}");
}

// ---- JSON ------------------------------------------------------------------

/// Runs `supply -> decode -> collect` over these lines.
fn run_decode(lines: &[&'static str], decode: JsonDecode) -> (Vec<Event>, Supply) {
    let _g = exclusive();
    let supply = Supply::new(chunks(lines));
    let probe = Supply {
        items: Vec::new(),
        ids: supply.ids.clone(),
        done: supply.done.clone(),
        journal: supply.journal.clone(),
    };
    let seen = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("decode")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(decode)
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let seen = seen.lock().unwrap().clone();
    (seen, probe)
}

#[test]
fn a_malformed_line_in_the_middle_is_counted_shown_to_the_error_output_and_dropped() {
    let errors: Shared<(Event, String)> = Shared::default();
    let sink = Arc::clone(&errors);
    let decode = JsonDecode::new(JsonDecodeSettings::default())
        .unwrap()
        .watch_malformed(move |e: &Event, err: &DecodeError| sink.lock().unwrap().push((e.clone(), err.to_string())));
    let malformed = decode.malformed();
    let (seen, supply) = run_decode(
        &[r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n": oops}"#, r#"{"n":4}"#, "[5]"],
        decode,
    );
    let data: Vec<&Value> = seen.iter().map(|e| e.value()).collect();
    assert_eq!(data, [&json!({"n":1}), &json!({"n":2}), &json!({"n":4}), &json!([5])]);
    assert_eq!(malformed.get(), 1);
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0.raw, br#"{"n": oops}"#);
    assert!(errors[0].1.contains("line 1 column"), "{}", errors[0].1);
    let bad = supply.ids.lock().unwrap()[2].0;
    assert!(
        supply.done.lock().unwrap().contains(&bad),
        "the dropped line is reported done"
    );
}

#[test]
fn wrap_keeps_a_non_json_line_as_a_message_with_the_error() {
    let decode = JsonDecode::new(JsonDecodeSettings {
        on_error: OnError::Wrap,
        error_field: Some("error".into()),
        ..JsonDecodeSettings::default()
    })
    .unwrap();
    let (seen, _) = run_decode(&["plain text", r#"{"ok":true}"#], decode);
    assert_eq!(seen[0].value()["message"], "plain text");
    assert!(seen[0].value()["error"].as_str().unwrap().contains("expected"));
    assert_eq!(*seen[1].value(), json!({"ok": true}));
}

#[test]
fn pass_leaves_the_target_untouched_and_invalid_utf8_wraps_lossily() {
    let decode = JsonDecode::new(JsonDecodeSettings {
        on_error: OnError::Pass,
        ..JsonDecodeSettings::default()
    })
    .unwrap();
    let (seen, _) = run_decode(&["nope"], decode);
    assert_eq!(*seen[0].value(), Value::Null);
    assert_eq!(seen[0].raw, b"nope");

    let _g = exclusive();
    let seen = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("utf8")
            .cog(Supply::new(vec![(b"caf\xe9\n".to_vec(), "latin1")]))
            .cog(Lines::new(LinesSettings::default()).unwrap())
            .cog(
                JsonDecode::new(JsonDecodeSettings {
                    on_error: OnError::Wrap,
                    ..JsonDecodeSettings::default()
                })
                .unwrap(),
            )
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    esc.run().unwrap();
    assert_eq!(*seen.lock().unwrap()[0].value(), json!({"message": "caf\u{FFFD}"}));
}

#[test]
fn decode_reads_a_string_field_and_writes_to_a_path() {
    let _g = exclusive();
    let seen = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("nested")
            .cog(Supply::new(chunks(&[r#"{"a":[1,2]}"#])))
            .map(|mut e: Event| {
                let body = String::from_utf8(std::mem::take(&mut e.raw)).unwrap();
                e.set_data(json!({ "body": body }));
                e
            })
            .cog(
                JsonDecode::new(JsonDecodeSettings {
                    source: "body".into(),
                    target: "parsed".into(),
                    ..JsonDecodeSettings::default()
                })
                .unwrap(),
            )
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    esc.run().unwrap();
    assert_eq!(seen.lock().unwrap()[0].value()["parsed"], json!({"a": [1, 2]}));
}

#[test]
fn log_throttle_logs_the_first_at_once_then_one_summary_per_interval() {
    let ten = Duration::from_secs(10);
    let s = |n: u64| Duration::from_secs(n);
    let t0 = Instant::now();
    let mut t = LogThrottle::new(ten);
    assert_eq!(t.hit(t0), Verdict::Log { held: None });
    for n in 1..=4 {
        assert_eq!(t.hit(t0 + s(n)), Verdict::Hold { due: t0 + ten });
    }
    assert_eq!(t.due(), Some(t0 + ten));
    assert_eq!(t.summary(t0 + s(9)), None, "not before the interval is over");
    assert_eq!(t.summary(t0 + ten), Some(Summary { count: 4, over: ten }));
    // The summary was this window's line: the next one within 10 s is held too.
    assert_eq!(t.hit(t0 + s(12)), Verdict::Hold { due: t0 + s(20) });
    // Its window ran out unsummarized: the next one logs both.
    assert_eq!(
        t.hit(t0 + s(25)),
        Verdict::Log {
            held: Some(Summary { count: 1, over: s(15) })
        }
    );
    assert_eq!(t.summary(t0 + s(40)), None, "nothing held back");
    assert_eq!(
        t.hit(t0 + s(41)),
        Verdict::Log { held: None },
        "quiet for long: in full again"
    );
    t.hit(t0 + s(42));
    assert_eq!(t.flush(t0 + s(43)), Some(Summary { count: 1, over: s(2) }));
    assert_eq!(t.total(), 9);
}

#[test]
fn encode_writes_compact_json_into_the_raw_buffer_it_reuses() {
    let _g = exclusive();
    let seen = Shared::default();
    let before: Shared<(usize, usize)> = Shared::default();
    let record = Arc::clone(&before);
    let mut esc = quiet();
    esc.add_train(
        Train::new("encode")
            .cog(Supply::new(chunks(&[
                r#"{ "level" : "info", "n" : 1 }"#,
                r#"{"n": 2}"#,
            ])))
            .cog(JsonDecode::new(JsonDecodeSettings::default()).unwrap())
            .map(move |mut e: Event| {
                e.data_mut()["added"] = json!("yes");
                e.raw.reserve(256);
                record.lock().unwrap().push((e.raw.as_ptr() as usize, e.raw.capacity()));
                e
            })
            .cog(JsonEncode::new(Default::default()).unwrap())
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    esc.run().unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        texts(&seen),
        [r#"{"added":"yes","level":"info","n":1}"#, r#"{"added":"yes","n":2}"#]
    );
    let after: Vec<(usize, usize)> = seen
        .iter()
        .map(|e| (e.raw.as_ptr() as usize, e.raw.capacity()))
        .collect();
    assert_eq!(after, *before.lock().unwrap(), "same buffer, same capacity");
}

#[test]
fn cogs_describe_themselves_with_their_settings() {
    let train = Train::<Event>::new("listing")
        .cog(Lines::new(LinesSettings::default()).unwrap())
        .cog(
            JsonDecode::new(JsonDecodeSettings {
                error_field: Some("err".into()),
                ..JsonDecodeSettings::default()
            })
            .unwrap(),
        )
        .cog(JsonEncode::new(Default::default()).unwrap());
    let texts: Vec<String> = train.cogs().into_iter().map(|c| c.text).collect();
    assert_eq!(
        texts,
        [
            "lines source=raw max_line_bytes=1048576 strip_cr=true utf8=keep",
            "json_decode source=raw target=data on_error=drop error_field=err non_object=keep non_object_field=value \
             log_interval=10s lazy",
            "json_encode source=data target=raw",
        ]
    );
}
