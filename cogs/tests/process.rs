//! The processing cogs on a real escapement: what goes through, what is
//! dropped, and that a durable supply hears about every datum it emitted
//! exactly once, merged data only once what they were merged into is done.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{Cog, Context, Escapement, Event, EventId, Exit, Fired, Next, Role, Train};
use tourbillon_cogs::meter::{Board, Metered};
use tourbillon_cogs::step::anonymize::{Anonymize, AnonymizeSettings, Mode, OnInvalid};
use tourbillon_cogs::step::fields::{Remove, Rename};
use tourbillon_cogs::step::filter::Filter;
use tourbillon_cogs::step::json::JsonDecode;
use tourbillon_cogs::step::ratelimit::RateLimit;
use tourbillon_cogs::step::sample::Sample;
use tourbillon_cogs::step::stats::{Stats, StatsSettings};
use tourbillon_cogs::step::timestamp::Timestamp;
use tourbillon_cogs::step::window::{Aggregate, Dedup};
use tourbillon_cogs::supply::tail::{saved_positions, Tail, TailSettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

fn quiet() -> Escapement {
    Escapement::builder().graceful_signals(false).build().unwrap()
}

fn settings<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

/// What a test's supply and drain saw, in order.
#[derive(Debug, Default)]
struct Record {
    emitted: Vec<EventId>,
    /// Acks as a durable supply would send them: an id done, or merged
    /// into one that is done.
    acked: Vec<EventId>,
    merged_into: HashMap<EventId, Vec<EventId>>,
    written: Vec<Event>,
    journal: Vec<String>,
}

type Shared = Arc<Mutex<Record>>;

/// A step of a [`Script`]ed supply.
enum Step {
    Emit(Vec<Value>),
    /// Wait (polling every millisecond, at most ten seconds) until this holds.
    WaitFor(Box<dyn Fn(&Record) -> bool>),
    Raise(i32),
}

/// A supply that plays its steps, then is exhausted; it acks like a
/// durable supply: on `event_done`, the id and whatever was renamed into it.
struct Script {
    steps: VecDeque<Step>,
    record: Shared,
    polls: u32,
}

impl Script {
    fn new(steps: Vec<Step>, record: &Shared) -> Script {
        Script {
            steps: steps.into(),
            record: Arc::clone(record),
            polls: 0,
        }
    }

    fn emitting(items: Vec<Value>, record: &Shared) -> Script {
        Script::new(vec![Step::Emit(items)], record)
    }
}

impl Cog<Event> for Script {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        while let Some(step) = self.steps.pop_front() {
            match step {
                Step::Emit(items) => {
                    for data in items {
                        let id = ctx.next_event_id();
                        self.record.lock().unwrap().emitted.push(id);
                        let raw = data.to_string().into_bytes();
                        let mut event = Event::new(id, data);
                        event.raw = raw;
                        ctx.emit(event);
                    }
                }
                Step::WaitFor(ok) => {
                    if !ok(&self.record.lock().unwrap()) && self.polls < 10_000 {
                        self.polls += 1;
                        self.steps.push_front(Step::WaitFor(ok));
                        ctx.after(Duration::from_millis(1), 0).unwrap();
                        return;
                    }
                }
                Step::Raise(signal) => {
                    // SAFETY: raising a signal the escapement handles.
                    unsafe { libc::raise(signal) };
                }
            }
        }
        ctx.exhausted();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn event_done<N: Next<Event> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, Event, N>) {
        let mut r = self.record.lock().unwrap();
        let mut done = vec![id];
        while let Some(id) = done.pop() {
            if r.emitted.contains(&id) {
                r.acked.push(id);
                r.journal.push(format!("ack {}", id.0));
            }
            done.extend(r.merged_into.remove(&id).unwrap_or_default());
        }
    }
    fn event_rename<N: Next<Event> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, Event, N>) {
        let mut r = self.record.lock().unwrap();
        r.merged_into.entry(new).or_default().push(old);
    }
}

/// A drain: records what reaches it, then reports it done (unless it holds it).
struct Collect {
    record: Shared,
    hold: bool,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        let mut r = self.record.lock().unwrap();
        r.journal.push(format!("write {}", e.id.0));
        if !self.hold {
            ctx.discard(&e);
        }
        r.written.push(e);
    }
}

fn collect(record: &Shared) -> Collect {
    Collect {
        record: Arc::clone(record),
        hold: false,
    }
}

/// Runs supply -> cog -> collect over `items`; the record, afterwards.
fn through<C: Cog<Event>>(cog: C, items: Vec<Value>) -> Record {
    let _one = exclusive();
    let record = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Script::emitting(items, &record))
            .cog(cog)
            .cog(collect(&record)),
    );
    assert!(matches!(esc.run().unwrap(), Exit::Clean));
    drop(esc);
    Arc::try_unwrap(record).unwrap().into_inner().unwrap()
}

fn data(r: &Record) -> Vec<Value> {
    r.written.iter().map(|e| e.value().clone()).collect()
}

/// Every datum emitted is acked exactly once.
fn assert_each_acked_once(r: &Record) {
    let mut acked = r.acked.clone();
    acked.sort();
    let mut emitted = r.emitted.clone();
    emitted.sort();
    assert_eq!(acked, emitted, "acks: {:?}", r.journal);
}

// ---- filter and fields -----------------------------------------------------

#[test]
fn filter_keeps_what_matches_and_acks_what_it_drops() {
    let f = Filter::new(settings(json!({
        "require": "any",
        "conditions": [
            { "field": "status", "gte": 500 },
            { "field": "msg", "regex": "(?i)panic" },
        ],
    })))
    .unwrap();
    let meter = f.meter();
    let r = through(
        f,
        vec![
            json!({"status": 200, "msg": "ok"}),
            json!({"status": 503, "msg": "busy"}),
            json!({"status": 200, "msg": "kernel PANIC"}),
            json!({"msg": "no status"}),
        ],
    );
    assert_eq!(
        data(&r),
        [
            json!({"status": 503, "msg": "busy"}),
            json!({"status": 200, "msg": "kernel PANIC"})
        ]
    );
    assert_each_acked_once(&r);
    let c = meter.counts();
    assert_eq!((c.input, c.output, c.dropped), (4, 2, 2));
    assert!(c.bytes > 0, "raw bytes are counted");
}

#[test]
fn a_drop_filter_drops_what_matches() {
    let f = Filter::new(settings(json!({
        "action": "drop",
        "conditions": [{ "field": "level", "one_of": ["debug", "trace"] }],
    })))
    .unwrap();
    let r = through(f, vec![json!({"level": "debug"}), json!({"level": "info"}), json!({})]);
    assert_eq!(data(&r), [json!({"level": "info"}), json!({})]);
}

#[test]
fn rename_moves_fields_and_remove_deletes_them() {
    let _one = exclusive();
    let record = Shared::default();
    let rename = Rename::new(settings(json!({ "fields": { "msg": "message", "a.b": "c" } }))).unwrap();
    let keep = Rename::new(settings(json!({ "fields": { "x": "y" }, "overwrite": false }))).unwrap();
    let remove = Remove::new(settings(json!({ "fields": ["secret", "a"] }))).unwrap();
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Script::emitting(
                vec![
                    json!({"msg": "hi", "a": {"b": 1}, "secret": "pw", "x": 1, "y": 2}),
                    json!({"other": true, "x": 3}),
                ],
                &record,
            ))
            .cog(rename)
            .cog(keep)
            .cog(remove)
            .cog(collect(&record)),
    );
    esc.run().unwrap();
    let r = record.lock().unwrap();
    assert_eq!(
        data(&r),
        [
            json!({"message": "hi", "c": 1, "x": 1, "y": 2}),
            json!({"other": true, "y": 3}),
        ]
    );
}

#[test]
fn timestamps_are_rewritten_and_unreadable_ones_counted() {
    let t = Timestamp::new(settings(json!({
        "field": "time",
        "target": "@timestamp",
        "formats": ["epoch_millis", "%d/%b/%Y:%H:%M:%S %z"],
    })))
    .unwrap();
    let meter = t.meter();
    let r = through(
        t,
        vec![
            json!({"time": 1_700_000_000_123u64}),
            json!({"time": "10/Oct/2000:13:55:36 -0700"}),
            json!({"time": "not a time"}),
            json!({"no_time": 1}),
        ],
    );
    let out = data(&r);
    assert_eq!(out[0]["@timestamp"], "2023-11-14T22:13:20.123Z");
    assert_eq!(out[1]["@timestamp"], "2000-10-10T20:55:36Z");
    assert_eq!(out[2], json!({"time": "not a time"}), "passed on untouched");
    assert_eq!(out[3], json!({"no_time": 1}));
    assert_eq!(meter.counts().errors, 1, "a missing field is no error");
}

#[test]
fn unreadable_timestamps_can_be_dropped_and_are_acked() {
    let t = Timestamp::new(settings(json!({ "on_invalid": "drop", "output": "epoch_secs" }))).unwrap();
    let r = through(
        t,
        vec![json!({"timestamp": "2024-03-01T00:00:00Z"}), json!({"timestamp": "?"})],
    );
    assert_eq!(data(&r), [json!({"timestamp": 1_709_251_200})]);
    assert_each_acked_once(&r);
}

#[test]
fn syslog_dates_get_their_year_and_zone() {
    use tourbillon_cogs::time::Time;
    // A day ago, written as a syslog date at +02:00: read back, it is that
    // instant, this year or last.
    let ago = Time::from_system(std::time::SystemTime::now()).secs - 86_400;
    let local = Time {
        secs: ago + 7200,
        nanos: 0,
    }
    .rfc3339(0);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month: usize = local[5..7].parse().unwrap();
    let day: u32 = local[8..10].parse().unwrap();
    let text = format!("{} {day:>2} {}", months[month - 1], &local[11..19]);
    let t = Timestamp::new(settings(json!({
        "formats": ["rfc3339", "rfc3164", "%F %T"],
        "timezone": "+02:00",
    })))
    .unwrap();
    let paris = Timestamp::new(settings(json!({ "formats": ["%F %T"], "timezone": "Europe/Paris" }))).unwrap();
    let out = data(&through(
        t,
        vec![json!({"timestamp": text}), json!({"timestamp": "2026-01-15 12:00:00"})],
    ));
    assert_eq!(out[0]["timestamp"], Time { secs: ago, nanos: 0 }.rfc3339(0), "{text}");
    assert_eq!(out[1]["timestamp"], "2026-01-15T10:00:00Z");
    let out = data(&through(paris, vec![json!({"timestamp": "2026-07-15 12:00:00"})]));
    assert_eq!(out[0]["timestamp"], "2026-07-15T10:00:00Z");
    let e = Timestamp::new(settings(json!({ "timezone": "Mars/Olympus" })))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("timezone: `Mars/Olympus` is not UTC"), "{e}");
}

// ---- anonymize -------------------------------------------------------------

#[test]
fn addresses_are_truncated_and_junk_is_counted_never_a_panic() {
    let a = Anonymize::new(AnonymizeSettings {
        fields: vec!["client".into(), "xff".into()],
        ipv4_prefix: 16,
        ..AnonymizeSettings::default()
    })
    .unwrap();
    let meter = a.meter();
    let r = through(
        a,
        vec![
            json!({"client": "203.0.113.9", "xff": "198.51.100.7, [2001:db8:aa:bb::1]:443"}),
            json!({"client": "not-an-ip"}),
            json!({"client": 42}),
            json!({"client": "\u{0}\u{ffff}::::::::::::1.2.3.4.5"}),
            json!({}),
        ],
    );
    let out = data(&r);
    assert_eq!(
        out[0],
        json!({"client": "203.0.0.0", "xff": "198.51.0.0, [2001:db8:aa::]:443"})
    );
    assert_eq!(out[1], json!({"client": "not-an-ip"}), "kept as it is by default");
    assert_eq!(out.len(), 5);
    assert_eq!(meter.counts().errors, 3);
}

#[test]
fn pseudonyms_preserve_prefixes_and_invalid_data_can_be_dropped() {
    let a = Anonymize::new(AnonymizeSettings {
        fields: vec!["ip".into()],
        mode: Mode::Pseudonymize,
        key: Some("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into()),
        on_invalid: OnInvalid::Drop,
        ..AnonymizeSettings::default()
    })
    .unwrap();
    let r = through(
        a,
        vec![
            json!({"ip": "192.0.2.10"}),
            json!({"ip": "192.0.2.200"}),
            json!({"ip": "bogus"}),
            json!({"ip": "192.0.2.10"}),
        ],
    );
    let ips: Vec<std::net::Ipv4Addr> = data(&r)
        .iter()
        .map(|d| d["ip"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ips.len(), 3, "the bogus one is dropped");
    assert_ne!(ips[0].to_string(), "192.0.2.10");
    assert_eq!(ips[0].octets()[..3], ips[1].octets()[..3], "same /24 in, same /24 out");
    assert_ne!(ips[0], ips[1]);
    assert_eq!(ips[0], ips[2], "the same address, the same pseudonym");
    assert_each_acked_once(&r);
}

// ---- dedup, rate limit, sample --------------------------------------------

#[test]
fn dedup_passes_the_first_of_each_key_and_acks_the_repeats_at_once() {
    let d = Dedup::new(settings(json!({ "key": ["user", "msg"] }))).unwrap();
    let r = through(
        d,
        vec![
            json!({"user": "a", "msg": "x", "n": 1}),
            json!({"user": "a", "msg": "x", "n": 2}),
            json!({"user": "a", "msg": "y", "n": 3}),
            json!({"user": "b", "msg": "x", "n": 4}),
            json!({"msg": "x", "n": 5}),
            json!({"user": "a", "msg": "x", "n": 6}),
            json!({"msg": "x", "n": 7}),
        ],
    );
    let kept: Vec<Value> = data(&r).iter().map(|d| d["n"].clone()).collect();
    assert_eq!(kept, [json!(1), json!(3), json!(4), json!(5)]);
    assert_each_acked_once(&r);
}

#[test]
fn rate_limit_lets_a_burst_through_per_key_and_drops_the_rest() {
    // So slow a refill that no token comes back while the test runs.
    let l = RateLimit::new(settings(json!({ "key": ["user"], "rate": 0.0001, "burst": 3 }))).unwrap();
    let meter = l.meter();
    let mut items: Vec<Value> = (0..10).map(|n| json!({"user": "a", "n": n})).collect();
    items.extend((0..2).map(|n| json!({"user": "b", "n": n})));
    let r = through(l, items);
    let users: Vec<Value> = data(&r).iter().map(|d| d["user"].clone()).collect();
    assert_eq!(users, ["a", "a", "a", "b", "b"]);
    assert_each_acked_once(&r);
    assert_eq!(meter.counts().dropped, 7);
}

#[test]
fn sample_keeps_one_in_n_and_marks_the_rate() {
    let s = Sample::new(settings(json!({ "one_in": 3, "rate_field": "sample_rate" }))).unwrap();
    let r = through(s, (0..9).map(|n| json!({"n": n})).collect());
    assert_eq!(
        data(&r),
        [
            json!({"n": 0, "sample_rate": 3.0}),
            json!({"n": 3, "sample_rate": 3.0}),
            json!({"n": 6, "sample_rate": 3.0})
        ]
    );
    assert_each_acked_once(&r);
}

// ---- aggregate -------------------------------------------------------------

fn web_hits() -> Vec<Value> {
    vec![
        json!({"host": "a", "bytes": 100, "path": "/"}),
        json!({"host": "b", "bytes": 5}),
        json!({"host": "a", "bytes": "20"}),
        json!({"host": "a", "bytes": "many"}),
        json!({"host": "b"}),
    ]
}

#[test]
fn aggregate_counts_and_sums_by_key_and_emits_at_finish() {
    let a = Aggregate::new(settings(json!({ "by": ["host"], "sum": ["bytes"] }))).unwrap();
    let meter = a.meter();
    let r = through(a, web_hits());
    assert_eq!(
        data(&r),
        [
            json!({"host": "a", "count": 3, "bytes": 120}),
            json!({"host": "b", "count": 2, "bytes": 5}),
        ]
    );
    let c = meter.counts();
    assert_eq!((c.input, c.output, c.errors), (5, 2, 1), "`many` is no number");
}

#[test]
fn a_window_with_too_many_keys_goes_out_early_and_nothing_is_lost() {
    let a = Aggregate::new(settings(json!({ "by": ["k"], "max_groups": 2 }))).unwrap();
    let items = ["a", "b", "a", "c", "a"].iter().map(|k| json!({ "k": k })).collect();
    let r = through(a, items);
    assert_eq!(
        data(&r),
        [
            json!({"k": "a", "count": 2}),
            json!({"k": "b", "count": 1}),
            json!({"k": "c", "count": 1}),
            json!({"k": "a", "count": 1}),
        ]
    );
    assert_each_acked_once(&r);
}

#[test]
fn without_a_key_a_window_is_one_count() {
    let a = Aggregate::new(settings(json!({ "sum": ["n"] }))).unwrap();
    let r = through(a, (1..=4).map(|n| json!({ "n": n, "other": "dropped" })).collect());
    assert_eq!(data(&r), [json!({"count": 4, "n": 10})]);
}

#[test]
fn merged_data_are_acked_exactly_once_and_only_after_their_merge_is_written() {
    let a = Aggregate::new(settings(json!({ "by": ["host"] }))).unwrap();
    let r = through(a, web_hits());
    assert_each_acked_once(&r);
    let at = |what: String| r.journal.iter().position(|j| *j == what).unwrap();
    let by_host: HashMap<&str, EventId> = r
        .written
        .iter()
        .map(|e| (e.value()["host"].as_str().unwrap(), e.id))
        .collect();
    for (i, input) in web_hits().iter().enumerate() {
        let out = by_host[input["host"].as_str().unwrap()];
        assert!(!r.emitted.contains(&out), "a merged datum has an id of its own");
        assert!(
            at(format!("ack {}", r.emitted[i].0)) > at(format!("write {}", out.0)),
            "input {i} acked before its merge was written: {:?}",
            r.journal
        );
    }
}

#[test]
fn nothing_merged_is_acked_while_the_merge_is_not_done() {
    let _one = exclusive();
    let record = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Script::emitting(web_hits(), &record))
            .cog(Aggregate::new(settings(json!({ "by": ["host"] }))).unwrap())
            .cog(Collect {
                record: Arc::clone(&record),
                hold: true,
            }),
    );
    esc.run().unwrap();
    let r = record.lock().unwrap();
    assert_eq!(r.written.len(), 2);
    assert_eq!(r.acked, [], "the drain never wrote the merged data");
}

#[test]
fn aggregate_emits_each_window_on_its_timer() {
    let _one = exclusive();
    let record = Shared::default();
    let mut esc = quiet();
    let steps = vec![
        Step::Emit(vec![json!({"k": 1}), json!({"k": 1}), json!({"k": 2})]),
        // The first window is over when its data reach the drain.
        Step::WaitFor(Box::new(|r: &Record| r.written.len() >= 2)),
        Step::Emit(vec![json!({"k": 1})]),
    ];
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Script::new(steps, &record))
            .cog(Aggregate::new(settings(json!({ "by": ["k"], "window_ms": 5 }))).unwrap())
            .cog(collect(&record)),
    );
    esc.run().unwrap();
    let r = record.lock().unwrap();
    assert_eq!(
        data(&r),
        [
            json!({"k": 1, "count": 2}),
            json!({"k": 2, "count": 1}),
            json!({"k": 1, "count": 1})
        ],
        "two windows: the timer's, then finish's"
    );
    assert_each_acked_once(&r);
}

#[test]
fn a_tail_checkpoint_covers_every_line_merged_once_the_merge_is_written() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hits.jsonl");
    let mut text = String::new();
    for i in 0..50 {
        text.push_str(&format!("{{\"host\": \"h{}\", \"bytes\": {i}}}\n", i % 3));
    }
    fs::write(&path, &text).unwrap();
    let state = dir.path().join("state");
    let record = Shared::default();
    let tail = Tail::new(TailSettings {
        include: vec![path.display().to_string()],
        batch: true,
        checkpoint_dir: Some(state.clone()),
        ..TailSettings::default()
    })
    .unwrap();
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(tail)
            .cog(JsonDecode::new(Default::default()).unwrap())
            .cog(Aggregate::new(settings(json!({ "by": ["host"], "sum": ["bytes"] }))).unwrap())
            .cog(collect(&record)),
    );
    assert!(matches!(esc.run().unwrap(), Exit::Clean));
    drop(esc);
    let r = record.lock().unwrap();
    let total: i64 = r.written.iter().map(|e| e.value()["bytes"].as_i64().unwrap()).sum();
    assert_eq!(total, (0..50).sum::<i64>());
    let saved = saved_positions(&state).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].pos, text.len() as u64, "every merged line is acked");
}

// ---- stats -----------------------------------------------------------------

#[test]
fn stats_reports_every_meter_of_its_train_on_sigusr1_and_at_the_end() {
    let _one = exclusive();
    let record = Shared::default();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let board = Board::default();
    let filter = Filter::new(settings(json!({ "conditions": [{ "field": "keep", "equals": true }] }))).unwrap();
    board.put("t", 1, "filter", filter.meter());
    let sink = Arc::clone(&lines);
    let stats = Stats::new(StatsSettings {
        interval_secs: 0,
        ..StatsSettings::default()
    })
    .unwrap()
    .board(board.clone(), "t")
    .sink(move |l| sink.lock().unwrap().push(l.to_owned()));
    board.put("t", 2, "stats", stats.meter());
    board.put("elsewhere", 0, "filter", Default::default());
    let seen = Arc::clone(&lines);
    let steps = vec![
        Step::Emit(vec![
            json!({"keep": true}),
            json!({"keep": false}),
            json!({"keep": true}),
        ]),
        Step::Raise(libc::SIGUSR1),
        Step::WaitFor(Box::new(move |_| seen.lock().unwrap().len() >= 2)),
        Step::Emit(vec![json!({"keep": true})]),
    ];
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Script::new(steps, &record))
            .cog(filter)
            .cog(stats)
            .cog(collect(&record)),
    );
    esc.run().unwrap();
    let lines = lines.lock().unwrap();
    let (t, f) = (r#"{"keep":true}"#.len(), r#"{"keep":false}"#.len());
    assert_eq!(
        *lines,
        [
            format!(
                "SIGUSR1: t[1] filter: in=3 out=2 dropped=1 errors=0 bytes={}",
                2 * t + f
            ),
            format!("SIGUSR1: t[2] stats: in=2 out=2 dropped=0 errors=0 bytes={}", 2 * t),
            format!("final: t[1] filter: in=4 out=3 dropped=1 errors=0 bytes={}", 3 * t + f),
            format!("final: t[2] stats: in=3 out=3 dropped=0 errors=0 bytes={}", 3 * t),
        ]
    );
}
