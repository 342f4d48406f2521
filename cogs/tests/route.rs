//! The `route` cog and `json_decode`'s error output on real escapements
//! whose trains read each other's outputs: who gets what, and when the
//! supply hears that an event is done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tourbillon::{Cog, Context, DynCog, Escapement, Event, EventId, Exit, Finish, Fired, Next, Role, Train};
use tourbillon_cogs::meter::Metered;
use tourbillon_cogs::step::json::{JsonDecode, JsonDecodeSettings};
use tourbillon_cogs::step::route::{Route, RouteSettings};
use tourbillon_cogs::step::stats::{Stats, StatsSettings};
use tourbillon_cogs::step::timestamp::{Timestamp, TimestampSettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{exclusive, Journal};

type Shared<T> = Arc<Mutex<Vec<T>>>;

fn quiet() -> Escapement {
    Escapement::builder().graceful_signals(false).build().unwrap()
}

/// Emits one event per item (fresh ids), then says it is exhausted;
/// journals every `event_done` it hears as `done N`.
struct Supply {
    items: Vec<Event>,
    ids: Shared<EventId>,
    journal: Journal,
}

impl Cog<Event> for Supply {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        for mut e in std::mem::take(&mut self.items) {
            e.id = ctx.next_event_id();
            self.ids.lock().unwrap().push(e.id);
            ctx.emit(e);
        }
        ctx.exhausted();
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn event_done<N: Next<Event> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, Event, N>) {
        self.journal.push(format!("done {}", id.0));
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

/// Holds everything back until finish, then lets it go (journaled as
/// `release N` before each): a branch slower than the others.
struct Hold {
    held: Vec<Event>,
    journal: Journal,
}

impl Cog<Event> for Hold {
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, _: &mut Context<'_, Event, N>) {
        self.held.push(e)
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        for e in self.held.drain(..) {
            self.journal.push(format!("release {}", e.id.0));
            ctx.emit(e);
        }
        Finish::Done
    }
}

fn event(data: Value) -> Event {
    Event::new(EventId(0), data)
}

fn raw(line: &str) -> Event {
    Event::from_raw(EventId(0), line.as_bytes().to_vec(), Some("in".into()), 0)
}

/// A route from settings in JSON text: unlike a `json!` value, the text
/// keeps the order of the outputs.
fn route(text: &str) -> Route {
    Route::new(serde_json::from_str::<RouteSettings>(text).unwrap()).unwrap()
}

fn names(seen: &Shared<Event>) -> Vec<String> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|e| e.value()["n"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// How often the supply heard each of `ids` done.
fn done_counts(journal: &Journal, ids: &[EventId]) -> Vec<usize> {
    let lines = journal.lines();
    ids.iter()
        .map(|id| lines.iter().filter(|l| **l == format!("done {}", id.0)).count())
        .collect()
}

/// Two outputs, `errors` tried before `api`, and `more`.
fn outputs(more: &str) -> String {
    format!(
        r#"{{"errors": [{{ "field": "level", "equals": "error" }}],
            "api": [{{ "field": "path", "regex": "^/api" }}, {{ "field": "status", "gte": 500 }}]{more}}}"#
    )
}

fn sample() -> Vec<Event> {
    vec![
        event(json!({"n": "both", "level": "error", "path": "/api/x", "status": 503})),
        event(json!({"n": "err", "level": "error"})),
        event(json!({"n": "api", "level": "info", "path": "/api/y", "status": 500})),
        event(json!({"n": "api-ok", "level": "info", "path": "/api/z", "status": 200})),
        event(json!({"n": "plain", "level": "info"})),
    ]
}

#[test]
fn mode_first_sends_each_event_to_its_first_match_and_the_rest_on() {
    let _g = exclusive();
    let journal = Journal::default();
    let ids = Shared::default();
    let (main, errors, api) = (Shared::default(), Shared::default(), Shared::default());
    let report = Shared::default();
    let sink = Arc::clone(&report);
    let r = route(&format!(r#"{{"outputs": {}}}"#, outputs("")));
    let meter = r.meter();
    let mut esc = quiet();
    esc.add_train(
        Train::new("src")
            .ids(Event::id_getter())
            .cog(Supply {
                items: sample(),
                ids: Arc::clone(&ids),
                journal: journal.clone(),
            })
            .cog(r)
            .cog(
                Stats::new(StatsSettings {
                    interval_secs: 0,
                    on_sigusr1: false,
                    ..StatsSettings::default()
                })
                .unwrap()
                .sink(move |l| sink.lock().unwrap().push(l.to_owned())),
            )
            .cog(Collect { seen: main.clone() }),
    );
    for (name, seen) in [("errors", &errors), ("api", &api)] {
        esc.add_train(
            Train::new(name)
                .input(format!("src.{name}"))
                .ids(Event::id_getter())
                .cog(Collect { seen: seen.clone() }),
        );
    }
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(names(&errors), ["both", "err"], "the first match only");
    assert_eq!(names(&api), ["api"]);
    assert_eq!(names(&main), ["api-ok", "plain"], "unmatched events go on");
    let ids = ids.lock().unwrap().clone();
    assert_eq!(done_counts(&journal, &ids), [1; 5], "{:?}", journal.lines());
    let counts: HashMap<String, u64> = meter.named().into_iter().collect();
    assert_eq!((counts["to:errors"], counts["to:api"], counts["unmatched"]), (2, 1, 2));
    assert_eq!((meter.counts().input, meter.counts().output), (5, 5));
    let report = report.lock().unwrap();
    assert!(
        report
            .iter()
            .any(|l| l.starts_with("final: queues: ") && l.contains("errors 0/1024 peak=")),
        "{report:?}"
    );
}

#[test]
fn mode_all_copies_with_fresh_ids_and_acks_the_parent_once_after_every_copy() {
    let _g = exclusive();
    let journal = Journal::default();
    let ids = Shared::default();
    let (main, errors, api) = (Shared::default(), Shared::default(), Shared::default());
    // An output nobody reads: what goes there is done at once.
    let outs = outputs(r#", "nowhere": [{ "field": "level", "exists": true }]"#);
    let r = route(&format!(r#"{{"mode": "all", "outputs": {outs}}}"#));
    let meter = r.meter();
    let mut esc = quiet();
    // Built at run time, as the binary builds them.
    let mut src = Train::dynamic("src").ids(Event::id_getter());
    src.push(Box::new(Supply {
        items: sample(),
        ids: Arc::clone(&ids),
        journal: journal.clone(),
    }) as Box<dyn DynCog<Event>>);
    src.push(Box::new(r));
    src.push(Box::new(Collect { seen: main.clone() }));
    esc.add_train(src);
    let mut slow = Train::dynamic("errors").input("src.errors").ids(Event::id_getter());
    slow.push(Box::new(Hold {
        held: Vec::new(),
        journal: journal.clone(),
    }));
    slow.push(Box::new(Collect { seen: errors.clone() }));
    esc.add_train(slow);
    let mut fast = Train::dynamic("api").input("src.api").ids(Event::id_getter());
    fast.push(Box::new(Collect { seen: api.clone() }));
    esc.add_train(fast);
    assert_eq!(esc.run().unwrap(), Exit::Clean);

    assert_eq!(names(&errors), ["both", "err"]);
    assert_eq!(names(&api), ["both", "api"]);
    assert!(names(&main).is_empty(), "every event has a level: none goes on");
    let ids = ids.lock().unwrap().clone();
    // Every copy of "both" (three outputs) has an id of its own, none its parent's.
    let (e0, a0) = (errors.lock().unwrap()[0].id, api.lock().unwrap()[0].id);
    assert!(
        e0 != a0 && !ids.contains(&e0) && !ids.contains(&a0),
        "{e0} {a0} {ids:?}"
    );
    assert_eq!(done_counts(&journal, &ids), [1; 5], "{:?}", journal.lines());
    // The slow branch held its copies: each parent it holds is done only
    // after its copy was let go.
    for (parent, copy) in [(ids[0], e0), (ids[1], errors.lock().unwrap()[1].id)] {
        let released = journal.position(&format!("release {}", copy.0));
        let done = journal.position(&format!("done {}", parent.0));
        assert!(
            released < done,
            "parent {parent} done before its copy {copy}: {:?}",
            journal.lines()
        );
    }
    let counts: HashMap<String, u64> = meter.named().into_iter().collect();
    assert_eq!(
        (
            counts["to:errors"],
            counts["to:api"],
            counts["to:nowhere"],
            counts["unmatched"]
        ),
        (2, 2, 5, 0)
    );
    assert_eq!(meter.counts().output, 9, "one count per copy sent");
}

#[test]
fn json_decode_sends_what_it_cannot_read_to_its_error_output_with_the_reason() {
    let _g = exclusive();
    let journal = Journal::default();
    let ids = Shared::default();
    let (good, bad) = (Shared::default(), Shared::default());
    let decode = JsonDecode::new(JsonDecodeSettings {
        error_output: Some("bad".into()),
        ..JsonDecodeSettings::default()
    })
    .unwrap();
    let (malformed, sent) = (decode.malformed(), decode.to_error_output());
    assert_eq!(Cog::<Event>::outputs(&decode), ["bad"]);
    let mut esc = quiet();
    esc.add_train(
        Train::new("parse")
            .ids(Event::id_getter())
            .cog(Supply {
                items: vec![raw(r#"{"n":1}"#), raw(r#"{"n": oops}"#), raw(r#"{"n":3}"#), raw("")],
                ids: Arc::clone(&ids),
                journal: journal.clone(),
            })
            .cog(decode)
            .cog(Collect { seen: good.clone() }),
    );
    esc.add_train(
        Train::new("dead")
            .input("parse.bad")
            .ids(Event::id_getter())
            .cog(Collect { seen: bad.clone() }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let good: Vec<Value> = good.lock().unwrap().iter().map(|e| e.value().clone()).collect();
    assert_eq!(good, [json!({"n": 1}), json!({"n": 3})], "the good lines go on");
    let bad = bad.lock().unwrap().clone();
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].value()["message"], json!(r#"{"n": oops}"#));
    assert_eq!(bad[0].raw, br#"{"n": oops}"#, "the line read is kept");
    let reason = bad[0].value()["error"].as_str().unwrap();
    assert!(reason.contains("line 1 column"), "{reason}");
    assert_eq!(bad[1].value()["message"], json!(""));
    assert!(
        bad[1].value()["error"].as_str().unwrap().contains("EOF"),
        "{:?}",
        bad[1].value()
    );
    assert_eq!((malformed.get(), sent.get()), (2, 2));
    let ids = ids.lock().unwrap().clone();
    assert_eq!(done_counts(&journal, &ids), [1; 4], "{:?}", journal.lines());
}

#[test]
fn timestamp_sends_a_time_it_cannot_read_to_its_error_output() {
    let _g = exclusive();
    let journal = Journal::default();
    let ids = Shared::default();
    let (good, bad) = (Shared::default(), Shared::default());
    let ts = Timestamp::new(TimestampSettings {
        error_output: Some("late".into()),
        error_field: Some("why".into()),
        ..TimestampSettings::default()
    })
    .unwrap();
    let sent = ts.to_error_output();
    let mut esc = quiet();
    esc.add_train(
        Train::new("t")
            .ids(Event::id_getter())
            .cog(Supply {
                items: vec![
                    event(json!({"n": "ok", "timestamp": 0})),
                    event(json!({"n": "bad", "timestamp": "yesterday"})),
                    event(json!({"n": "none"})),
                ],
                ids: Arc::clone(&ids),
                journal: journal.clone(),
            })
            .cog(ts)
            .cog(Collect { seen: good.clone() }),
    );
    esc.add_train(
        Train::new("dead")
            .input("t.late")
            .ids(Event::id_getter())
            .cog(Collect { seen: bad.clone() }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(names(&good), ["ok", "none"], "a missing field is left alone");
    assert_eq!(names(&bad), ["bad"]);
    let why = bad.lock().unwrap()[0].value()["why"].as_str().unwrap().to_owned();
    assert!(why.contains("`timestamp` holds no time"), "{why}");
    assert_eq!(sent.get(), 1);
    let ids = ids.lock().unwrap().clone();
    assert_eq!(done_counts(&journal, &ids), [1; 3], "{:?}", journal.lines());
}
