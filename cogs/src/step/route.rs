//! The `route` cog: sends each datum to the named outputs whose conditions
//! match; the rest go on down the train.
//!
//! ```toml
//! [trains.web]
//! cogs = [
//!     { kind = "tail", include = ["/var/log/app.log"] },
//!     { kind = "json_decode" },
//!     { kind = "route", mode = "first", outputs = {
//!         errors = [{ field = "level", equals = "error" }],
//!         slow = [{ field = "ms", gte = 1000 }, { field = "path", regex = "^/api" }],
//!     } },
//!     { kind = "file", path = "/var/log/rest.jsonl" },
//! ]
//! ```
//!
//! Each key of `outputs` names an output, `TRAIN.NAME` to the trains that
//! read it (`web.errors`, `web.slow`); its value is a list of
//! [`filter`](crate::step::filter) conditions, *all* of which must hold
//! (as in a filter with `require = "all"`; each condition's tests all
//! hold, `not` turns one over, a missing field fails every test but
//! `exists = false`).
//!
//! - `mode = "first"` (the default): a datum goes to the first output
//!   that matches, in the order the table lists them, and leaves the train
//!   there.
//! - `mode = "all"`: a datum goes to every output that matches, a copy
//!   each, and leaves the train there too: it does **not** go on down the
//!   train when one output matched. (Why: `route` decides where data go;
//!   a datum that should also stay on the train is what a train reading
//!   this train's main output next to the outputs is for, and copying on
//!   by default would double what the rest of the train writes.)
//!
//! A datum no output matches goes on down the train. Nothing is dropped:
//! an output no train reads takes what is sent there as done.
//!
//! **Order of the table.** [`RouteOutputs`] keeps the order its
//! deserializer gives; but TOML tables, and the JSON objects the binary's
//! settings pass through, come with their keys sorted by name. So from
//! configuration, `mode = "first"` tries the outputs in the order of their
//! names: when a datum may match two outputs, name them in the order they
//! should be tried, or write conditions that exclude each other. Built in
//! Rust, the order is the one given.
//!
//! **Acknowledgement.** In `mode = "all"` each copy but a lone one gets a
//! fresh id (through the id setter, [`Route::ids`]): the copies are then
//! finished independently, and the datum they came from is reported done
//! once the last of them is. A datum without an id is copied as it is.
//!
//! **Counts.** The cog's meter counts data in and out, and per output
//! (`to:NAME`) and `unmatched`.

use std::fmt;
use std::time::Duration;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tourbillon::{Cog, Context, Event, EventId, Finish, IdSetter, Next, Output, Role};

use crate::access::Access;
use crate::ledger::Ledger;
use crate::meter::{Meter, Metered};
use crate::step::filter::{Condition, Conditions};
use crate::{Error, LogThrottle, Verdict};

/// Where a [`Route`] sends a datum that matches more than one output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// To the first output that matches only (the default).
    #[default]
    First,
    /// To every output that matches, a copy each.
    All,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::First => "first",
            Mode::All => "all",
        })
    }
}

/// The outputs of a [`Route`], in order: each a name and the conditions
/// that send a datum there. Written as a table (`{ NAME = [conditions…] }`);
/// the order of its keys is kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RouteOutputs(pub Vec<(String, Vec<Condition>)>);

impl Serialize for RouteOutputs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, conditions) in &self.0 {
            map.serialize_entry(name, conditions)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for RouteOutputs {
    fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = RouteOutputs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of output names to lists of conditions")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RouteOutputs, A::Error> {
                let mut out: Vec<(String, Vec<Condition>)> = Vec::new();
                while let Some((name, conditions)) = map.next_entry::<String, Vec<Condition>>()? {
                    if out.iter().any(|(n, _)| *n == name) {
                        return Err(serde::de::Error::custom(format!("output `{name}` given twice")));
                    }
                    out.push((name, conditions));
                }
                Ok(RouteOutputs(out))
            }
        }
        d.deserialize_map(Ordered)
    }
}

/// Settings of [`Route`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteSettings {
    /// The outputs: `{ NAME = [conditions…] }`, at least one; each NAME an
    /// identifier (letters, digits, `_`, `-`), the output `TRAIN.NAME`.
    pub outputs: RouteOutputs,
    /// `"first"` (default): the first output that matches; `"all"`:
    /// every one.
    pub mode: Mode,
}

/// Refuses an output name that cannot follow `TRAIN.` (empty, a `.`, a
/// space…); the error names `key`.
pub fn check_output_name(key: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(Error::setting(
            key,
            format!("`{name}` is not an output name: letters, digits, `_` and `-` only (it becomes TRAIN.{name})"),
        ));
    }
    Ok(())
}

impl RouteSettings {
    /// Checks the values; the error names the key (`outputs.errors[0].field`).
    pub fn validate(&self) -> Result<(), Error> {
        self.compile(&Access::<serde_json::Value>::json()).map(drop)
    }

    fn compile<D: 'static>(&self, access: &Access<D>) -> Result<Vec<Branch<D>>, Error> {
        if self.outputs.0.is_empty() {
            return Err(Error::setting(
                "outputs",
                "required: at least one output, NAME = [{ field = ..., equals = ... }, ...]",
            ));
        }
        self.outputs
            .0
            .iter()
            .map(|(name, conditions)| {
                check_output_name("outputs", name)?;
                Ok(Branch {
                    name: name.clone(),
                    conditions: Conditions::compile(&format!("outputs.{name}"), conditions, access)?,
                    output: None,
                })
            })
            .collect()
    }
}

/// One output of a [`Route`].
struct Branch<D> {
    name: String,
    conditions: Conditions<D>,
    /// Looked up at start; `None` before, or if the train did not place it.
    output: Option<Output>,
}

/// Sends each datum to the named outputs whose conditions match; see the
/// [module docs](self).
pub struct Route<D = Event> {
    settings: RouteSettings,
    branches: Vec<Branch<D>>,
    access: Access<D>,
    ids: Option<IdSetter<D>>,
    /// The parents of copies in flight (mode `all`), owed by the copies.
    acks: Ledger<EventId>,
    meter: Meter,
    /// The outputs that match the datum at hand (reused: no allocation per datum).
    hits: Vec<usize>,
    /// Copies that could not be sent for want of an id setter.
    unsent_log: LogThrottle,
}

impl<D> fmt::Debug for Route<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Route<Event> {
    /// A `route` cog for events (copies get fresh ids through [`Event::id_setter`]).
    pub fn new(settings: RouteSettings) -> Result<Self, Error> {
        Ok(Route::with_access(settings, Access::event())?.ids(Event::id_setter()))
    }
}

impl<D: 'static> Route<D> {
    /// A `route` cog reaching fields through `access`. In `mode = "all"`,
    /// on a train with an id accessor, give it an id setter with
    /// [`ids`](Self::ids): without one a datum with an id goes to the first
    /// output that matches only, and the copies not sent are counted as
    /// errors and logged.
    pub fn with_access(settings: RouteSettings, access: Access<D>) -> Result<Self, Error> {
        let branches = settings.compile(&access)?;
        let names = branches
            .iter()
            .map(|b| format!("to:{}", b.name))
            .chain(std::iter::once("unmatched".to_owned()));
        let meter = Meter::with_named(names);
        Ok(Route {
            hits: Vec::with_capacity(branches.len()),
            settings,
            branches,
            access,
            ids: None,
            acks: Ledger::new(),
            meter,
            unsent_log: LogThrottle::new(Duration::from_secs(10)),
        })
    }

    /// How a copy gets its fresh id (`mode = "all"`).
    pub fn ids(mut self, ids: IdSetter<D>) -> Self {
        self.ids = Some(ids);
        self
    }

    /// The names of the outputs, in order.
    pub fn names(&self) -> Vec<String> {
        self.branches.iter().map(|b| b.name.clone()).collect()
    }

    /// Which outputs `datum` goes to, by position (the mode applied; empty
    /// when it goes on down the train).
    pub fn targets(&self, datum: &D) -> Vec<usize> {
        let mut hits = self
            .branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.conditions.all(datum))
            .map(|(i, _)| i);
        match self.settings.mode {
            Mode::First => hits.next().into_iter().collect(),
            Mode::All => hits.collect(),
        }
    }

    /// Sends `datum` out at output `i`, counted.
    fn send<N: Next<D> + ?Sized>(&self, i: usize, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.count(i);
        self.meter.emitted();
        match self.branches[i].output {
            Some(out) => ctx.emit_to(out, datum),
            // Not placed (a wrapper that hides `outputs`): warned at
            // start; the datum stays on the train rather than vanish.
            None => ctx.emit(datum),
        }
    }

    fn unmatched<N: Next<D> + ?Sized>(&self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.count(self.branches.len());
        self.meter.emitted();
        ctx.emit(datum)
    }
}

impl<D: Clone + 'static> Route<D> {
    /// Sends a copy of `datum` to each output in `self.hits` (two or more).
    fn copies<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let hits = std::mem::take(&mut self.hits);
        match (ctx.id_of(&datum), self.ids.clone()) {
            (Some(parent), Some(setter)) => {
                // Held while the copies go out, so a copy finished at
                // once cannot finish the parent before the others exist.
                let t = self.acks.open(parent);
                let (&last, rest) = hits.split_last().expect("two or more outputs");
                for &i in rest {
                    let id = ctx.next_event_id();
                    self.acks.attach(id, t);
                    self.send(i, setter.set(datum.clone(), id), ctx);
                }
                let id = ctx.next_event_id();
                self.acks.attach(id, t);
                self.send(last, setter.set(datum, id), ctx);
                if let Some(p) = self.acks.release(t) {
                    ctx.event_done(p);
                }
            }
            (Some(parent), None) => {
                // Copies sharing the parent's id would each settle it:
                // the first done would ack what others still hold.
                for &i in &hits[1..] {
                    self.meter.error();
                    if let Verdict::Log { held } = self.unsent_log.hit(ctx.now()) {
                        log::error!(
                            "{parent}: route has no id setter for copies (mode = \"all\"): not sent to output `{}`{}",
                            self.branches[i].name,
                            held.map_or(String::new(), |s| format!(" ({} more since the last line)", s.count))
                        );
                    }
                }
                self.send(hits[0], datum, ctx);
            }
            (None, _) => {
                let (&last, rest) = hits.split_last().expect("two or more outputs");
                for &i in rest {
                    self.send(i, datum.clone(), ctx);
                }
                self.send(last, datum, ctx);
            }
        }
        self.hits = hits;
    }
}

impl<D: 'static> Metered for Route<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: Clone + 'static> Cog<D> for Route<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        match self.settings.mode {
            Mode::First => match self.branches.iter().position(|b| b.conditions.all(&datum)) {
                Some(i) => self.send(i, datum, ctx),
                None => self.unmatched(datum, ctx),
            },
            Mode::All => {
                self.hits.clear();
                let Route { branches, hits, .. } = self;
                hits.extend((0..branches.len()).filter(|&i| branches[i].conditions.all(&datum)));
                match self.hits[..] {
                    [] => self.unmatched(datum, ctx),
                    [i] => self.send(i, datum, ctx),
                    _ => self.copies(datum, ctx),
                }
            }
        }
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        for b in &mut self.branches {
            b.output = ctx.output(&b.name);
            if b.output.is_none() {
                log::error!(
                    "route: the train has no output `{}` (its cogs' outputs were not asked): what matches it goes on down the train",
                    b.name
                );
            }
        }
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        self.acks.done(id, |p| ctx.event_done(p));
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.acks.rename(old, new);
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        if let Some(s) = self.unsent_log.flush(ctx.now()) {
            log::error!(
                "route: {} more copies not sent for want of an id setter ({} in all)",
                s.count,
                self.unsent_log.total()
            );
        }
        Finish::Done
    }

    fn role(&self) -> Role {
        Role::Step
    }

    fn outputs(&self) -> Vec<String> {
        self.names()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route mode={}", self.settings.mode)?;
        for b in &self.branches {
            write!(f, "; {} if ", b.name)?;
            b.conditions.describe(f, " and ")?;
        }
        f.write_str("; else on")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn settings(v: Value) -> RouteSettings {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_table_keeps_its_order_and_round_trips() {
        let s: RouteSettings = serde_json::from_str(
            r#"{"mode": "all", "outputs": {"zeta": [{"field": "a", "equals": 1}], "alpha": [{"field": "b", "exists": true}]}}"#,
        )
        .unwrap();
        let names: Vec<&str> = s.outputs.0.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(s.mode, Mode::All);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["outputs"]["zeta"][0]["equals"], json!(1));
        assert!(serde_json::from_value::<RouteSettings>(json!({"output": {}})).is_err());
    }

    #[test]
    fn first_takes_the_first_match_and_all_takes_every_one() {
        let outputs = json!({ "errors": [{ "field": "level", "equals": "error" }],
                              "web": [{ "field": "path", "regex": "^/" }, { "field": "status", "gte": 500 }] });
        let first = Route::with_access(settings(json!({ "outputs": outputs })), Access::json()).unwrap();
        let all = Route::with_access(settings(json!({ "outputs": outputs, "mode": "all" })), Access::json()).unwrap();
        let both = json!({"level": "error", "path": "/x", "status": 503});
        assert_eq!(first.targets(&both), [0]);
        assert_eq!(all.targets(&both), [0, 1]);
        let one_fails = json!({"level": "info", "path": "/x", "status": 200});
        assert!(
            all.targets(&one_fails).is_empty(),
            "every condition of a list must hold"
        );
        assert_eq!(all.names(), ["errors", "web"]);
    }

    #[test]
    fn bad_settings_are_refused_by_key_path() {
        let err = |v: Value| settings(v).validate().unwrap_err().to_string();
        assert!(err(json!({})).starts_with("outputs: required"));
        assert!(
            err(json!({ "outputs": { "errors": [{ "field": "", "equals": 1 }] } }))
                .starts_with("outputs.errors[0].field: "),
            "{}",
            err(json!({ "outputs": { "errors": [{ "field": "", "equals": 1 }] } }))
        );
        assert!(
            err(json!({ "outputs": { "e": [{ "field": "a" }, { "field": "b", "regex": "(" }] } }))
                .starts_with("outputs.e[0]: a condition needs a test")
        );
        assert!(err(json!({ "outputs": { "e": [] } })).starts_with("outputs.e: required"));
        assert!(err(json!({ "outputs": { "a.b": [{ "field": "a", "equals": 1 }] } }))
            .starts_with("outputs: `a.b` is not an output name"));
        assert!(err(json!({ "outputs": { "": [{ "field": "a", "equals": 1 }] } })).contains("is not an output name"));
    }
}
