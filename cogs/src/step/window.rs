//! Cogs over time windows: [`Dedup`] drops repeats of a key within a window;
//! [`Aggregate`] merges data into counts and sums by key, one datum per key
//! per window.
//!
//! Both read the loop's clock ([`Context::now`]), so a replay that drives
//! the clock drives them too; their bookkeeping ([`Seen`], [`Sums`]) takes
//! the time as an argument and is testable without a loop.
//!
//! **Acknowledgements.** A durable supply (a tail, a queue consumer) acks
//! what was consumed when it hears `event_done`. A repeat that `dedup`
//! drops is consumed: it is reported done at once. What `aggregate`
//! absorbs lives on in the datum it emits for its key and window: that
//! datum gets a fresh id, every absorbed datum is announced as renamed to
//! it (`event_rename(absorbed, merged)`) when it is absorbed, and when the
//! merged datum is done (written by a drain, or dropped downstream) the
//! supply acks every datum it absorbed — not before. Renames go out before
//! the merged datum does, and broadcasts keep their order, so a supply
//! always knows the rename before the merged datum can be done.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tourbillon::{Cog, Context, Event, EventId, Finish, Fired, Getter, Next, Setter};

use crate::access::{check_path, Access, FieldKey};
use crate::meter::{Meter, Metered};
use crate::Error;

/// The keys seen within a window, oldest first: the bookkeeping of [`Dedup`].
///
/// A key is new if it was not seen in the `window` before `now`; the
/// window runs from a key's first sighting (a key repeated without pause
/// passes once per window). At most `max` keys are remembered: beyond
/// that, the oldest is forgotten early.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tourbillon_cogs::step::window::Seen;
///
/// let mut seen = Seen::new(Duration::from_secs(10), 1000);
/// let t0 = Instant::now();
/// assert!(seen.first("a", t0));
/// assert!(!seen.first("a", t0 + Duration::from_secs(9)));
/// assert!(seen.first("a", t0 + Duration::from_secs(10)), "the window is over");
/// ```
#[derive(Debug)]
pub struct Seen {
    window: Duration,
    max: usize,
    when: HashMap<Box<str>, Instant>,
    order: VecDeque<(Instant, Box<str>)>,
    evicted: u64,
}

impl Seen {
    /// Remembers keys for `window`, at most `max` (at least 1) of them.
    pub fn new(window: Duration, max: usize) -> Seen {
        Seen {
            window,
            max: max.max(1),
            when: HashMap::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// True if `key` was not seen within the window before `now` (and
    /// remembers it from `now`). `now` never goes back.
    pub fn first(&mut self, key: &str, now: Instant) -> bool {
        while let Some((t, _)) = self.order.front() {
            if *t + self.window > now {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.when.remove(&k);
            }
        }
        if self.when.contains_key(key) {
            return false;
        }
        if self.when.len() >= self.max {
            if let Some((_, k)) = self.order.pop_front() {
                self.when.remove(&k);
                self.evicted += 1;
            }
        }
        let key: Box<str> = key.into();
        self.when.insert(key.clone(), now);
        self.order.push_back((now, key));
        true
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.when.len()
    }

    /// True if no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.when.is_empty()
    }

    /// Keys forgotten before their window was over, to stay within `max`.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

/// Settings of [`Dedup`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DedupSettings {
    /// Field paths whose values together are the key (a missing field is a
    /// value of its own). At least one; default none.
    pub key: Vec<String>,
    /// Milliseconds a key is remembered from its first sighting. At least
    /// 1. Default 60000.
    pub window_ms: u64,
    /// Keys remembered at most; past that the oldest is forgotten early. At
    /// least 1. Default 100000.
    pub max_keys: usize,
}

impl Default for DedupSettings {
    fn default() -> Self {
        DedupSettings {
            key: Vec::new(),
            window_ms: 60_000,
            max_keys: 100_000,
        }
    }
}

impl DedupSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.key.is_empty() {
            return Err(Error::setting("key", "required: the field paths that make the key"));
        }
        if self.window_ms == 0 {
            return Err(Error::setting("window_ms", "must be at least 1"));
        }
        if self.max_keys == 0 {
            return Err(Error::setting("max_keys", "must be at least 1"));
        }
        Ok(())
    }
}

/// Drops data whose key was seen within the window; see the [module docs](self).
pub struct Dedup<D = Event> {
    settings: DedupSettings,
    key: FieldKey<D>,
    seen: Seen,
    buf: String,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Dedup<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dedup")
            .field("settings", &self.settings)
            .field("keys", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Dedup<Event> {
    /// A `dedup` cog for events.
    pub fn new(settings: DedupSettings) -> Result<Self, Error> {
        Dedup::with_access(settings, Access::event())
    }
}

impl<D: 'static> Dedup<D> {
    /// A `dedup` cog reaching fields through `access`.
    pub fn with_access(settings: DedupSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Dedup {
            key: FieldKey::new(&access, "key", &settings.key)?,
            seen: Seen::new(Duration::from_millis(settings.window_ms), settings.max_keys),
            settings,
            buf: String::new(),
            access,
            meter: Meter::default(),
        })
    }
}

impl<D: 'static> Metered for Dedup<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Dedup<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        self.key.render(&datum, &mut self.buf);
        let keep = self.seen.first(&self.buf, ctx.now());
        self.meter.keep_or_drop(keep, datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dedup key={} window={}ms max_keys={}",
            self.key, self.settings.window_ms, self.settings.max_keys
        )
    }
}

/// A sum of numbers: an integer while every number is one and it does not
/// overflow, a float otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Sum {
    int: Option<i64>,
    float: f64,
}

impl Default for Sum {
    fn default() -> Self {
        Sum {
            int: Some(0),
            float: 0.0,
        }
    }
}

impl Sum {
    /// Adds a number or numeric string; false (and nothing added) for
    /// anything else.
    pub fn add(&mut self, v: &Value) -> bool {
        let (int, float) = match v {
            Value::Number(n) => (n.as_i64(), n.as_f64()),
            Value::String(s) => (s.trim().parse().ok(), s.trim().parse::<f64>().ok()),
            _ => (None, None),
        };
        let Some(float) = float.filter(|f| f.is_finite()) else {
            return false;
        };
        self.int = match (self.int, int) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => None,
        };
        self.float += float;
        true
    }

    /// The sum as JSON.
    pub fn value(&self) -> Value {
        match self.int {
            Some(i) => Value::from(i),
            None => Value::from(self.float),
        }
    }
}

/// Settings of [`Aggregate`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AggregateSettings {
    /// Field paths whose values together are the key; the merged datum
    /// carries them (from the first datum of its key). Default none: one
    /// merged datum per window.
    pub by: Vec<String>,
    /// Field paths of numbers (or numeric strings) summed per key; each sum
    /// is written at its path in the merged datum. A value that is no
    /// number is counted as an error and left out of the sum. Default none.
    pub sum: Vec<String>,
    /// The field path of the count in the merged datum. Default `"count"`.
    pub count_field: String,
    /// Milliseconds per window: the merged data go out at the end of each
    /// window, and at finish. At least 1. Default 60000.
    pub window_ms: u64,
    /// Keys per window at most: a datum with one more key makes the window
    /// go out early. At least 1. Default 10000.
    pub max_groups: usize,
}

impl Default for AggregateSettings {
    fn default() -> Self {
        AggregateSettings {
            by: Vec::new(),
            sum: Vec::new(),
            count_field: "count".into(),
            window_ms: 60_000,
            max_groups: 10_000,
        }
    }
}

impl AggregateSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        check_path("count_field", &self.count_field)?;
        for (i, p) in self.sum.iter().enumerate() {
            check_path(&format!("sum[{i}]"), p)?;
            if *p == self.count_field || self.by.contains(p) {
                return Err(Error::setting(
                    &format!("sum[{i}]"),
                    format!("`{p}` is also the count or a key field"),
                ));
            }
        }
        if self.by.contains(&self.count_field) {
            return Err(Error::setting("count_field", "is also a key field"));
        }
        if self.window_ms == 0 {
            return Err(Error::setting("window_ms", "must be at least 1"));
        }
        if self.max_groups == 0 {
            return Err(Error::setting("max_groups", "must be at least 1"));
        }
        Ok(())
    }
}

/// One key's merge within a window.
#[derive(Debug)]
struct Group {
    id: EventId,
    values: Vec<Option<Value>>,
    count: u64,
    sums: Vec<Sum>,
}

/// The groups of one window, in order of first appearance: the
/// bookkeeping of [`Aggregate`].
#[derive(Debug, Default)]
pub struct Sums {
    index: HashMap<Box<str>, usize>,
    groups: Vec<Group>,
}

impl Sums {
    /// Keys in this window.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// True if nothing was merged in this window.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// Timer key: the window is over.
const TICK: u64 = 1;

type Make<D> = Box<dyn Fn(EventId) -> D>;

/// Merges data into counts and sums by key per window; see the [module docs](self).
pub struct Aggregate<D = Event> {
    settings: AggregateSettings,
    key: FieldKey<D>,
    sums: Vec<Getter<D, Value>>,
    by_out: Vec<Setter<D, Option<Value>>>,
    sum_out: Vec<Setter<D, Option<Value>>>,
    count_out: Setter<D, Option<Value>>,
    make: Make<D>,
    window: Sums,
    buf: String,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Aggregate<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregate")
            .field("settings", &self.settings)
            .field("groups", &self.window.len())
            .finish_non_exhaustive()
    }
}

impl Aggregate<Event> {
    /// An `aggregate` cog for events: a merged event has the fresh id and
    /// an object of the key fields, the count and the sums.
    pub fn new(settings: AggregateSettings) -> Result<Self, Error> {
        Aggregate::with_access(settings, Access::event(), |id| {
            Event::new(id, Value::Object(Map::new()))
        })
    }
}

impl<D: 'static> Aggregate<D> {
    /// An `aggregate` cog reaching fields through `access`; `make` makes an
    /// empty datum with the given id (which the train's id getter must
    /// read back) for the fields to be written into.
    pub fn with_access(
        settings: AggregateSettings,
        access: Access<D>,
        make: impl Fn(EventId) -> D + 'static,
    ) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Aggregate {
            key: FieldKey::new(&access, "by", &settings.by)?,
            sums: settings.sum.iter().map(|p| access.getter(p)).collect(),
            by_out: settings.by.iter().map(|p| access.writer(p)).collect(),
            sum_out: settings.sum.iter().map(|p| access.writer(p)).collect(),
            count_out: access.writer(&settings.count_field),
            make: Box::new(make),
            window: Sums::default(),
            buf: String::new(),
            settings,
            access,
            meter: Meter::default(),
        })
    }

    /// Sends every group of the window down the train, in order of first
    /// appearance, and opens a new window.
    fn flush<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.window.index.clear();
        for g in std::mem::take(&mut self.window.groups) {
            let mut d = (self.make)(g.id);
            for (put, v) in self.by_out.iter().zip(g.values) {
                if v.is_some() {
                    d = put.set(d, v);
                }
            }
            d = self.count_out.set(d, Some(Value::from(g.count)));
            for (put, s) in self.sum_out.iter().zip(&g.sums) {
                d = put.set(d, Some(s.value()));
            }
            self.meter.emit(d, ctx);
        }
    }
}

impl<D: 'static> Metered for Aggregate<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Aggregate<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        self.key.render(&datum, &mut self.buf);
        let at = match self.window.index.get(self.buf.as_str()) {
            Some(&i) => i,
            None => {
                if self.window.len() >= self.settings.max_groups {
                    log::debug!(
                        "aggregate: {} keys in this window, the most allowed: it goes out early",
                        self.window.len()
                    );
                    self.flush(ctx);
                }
                let group = Group {
                    id: ctx.next_event_id(),
                    values: self.key.values(&datum),
                    count: 0,
                    sums: vec![Sum::default(); self.sums.len()],
                };
                self.window.groups.push(group);
                self.window
                    .index
                    .insert(self.buf.as_str().into(), self.window.groups.len() - 1);
                self.window.groups.len() - 1
            }
        };
        let group = &mut self.window.groups[at];
        group.count += 1;
        for (get, sum) in self.sums.iter().zip(&mut group.sums) {
            if let Some(v) = get.get(&datum) {
                if !sum.add(v) {
                    self.meter.error();
                }
            }
        }
        if let Some(id) = ctx.id_of(&datum) {
            ctx.event_rename(id, group.id);
        }
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Err(e) = ctx.every(Duration::from_millis(self.settings.window_ms), TICK) {
            log::error!("aggregate: cannot bind its timer ({e}); everything goes out at finish");
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        self.flush(ctx);
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.flush(ctx);
        Finish::Done
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "aggregate by={} count_field={}", self.key, self.settings.count_field)?;
        if !self.settings.sum.is_empty() {
            write!(f, " sum=[{}]", self.settings.sum.join(", "))?;
        }
        write!(
            f,
            " window={}ms max_groups={}",
            self.settings.window_ms, self.settings.max_groups
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_oldest_key_is_forgotten_past_the_bound() {
        let mut seen = Seen::new(Duration::from_secs(60), 2);
        let t = Instant::now();
        assert!(seen.first("a", t));
        assert!(seen.first("b", t));
        assert!(seen.first("c", t), "a third key fits by forgetting the first");
        assert_eq!((seen.len(), seen.evicted()), (2, 1));
        assert!(seen.first("a", t), "a was forgotten");
        assert!(!seen.first("c", t));
    }

    #[test]
    fn expired_keys_leave_memory_as_time_goes_on() {
        let mut seen = Seen::new(Duration::from_millis(10), 100);
        let t = Instant::now();
        for i in 0..50 {
            seen.first(&i.to_string(), t);
        }
        assert!(seen.first("late", t + Duration::from_millis(10)));
        assert_eq!(seen.len(), 1, "only the key of the new window is left");
    }

    #[test]
    fn sums_stay_integers_until_a_float_or_an_overflow() {
        let mut s = Sum::default();
        assert!(s.add(&json!(2)) && s.add(&json!("3")));
        assert_eq!(s.value(), json!(5));
        assert!(!s.add(&json!("x")) && !s.add(&json!(null)));
        assert!(s.add(&json!(0.5)));
        assert_eq!(s.value(), json!(5.5));
        let mut big = Sum::default();
        big.add(&json!(i64::MAX));
        big.add(&json!(1));
        assert_eq!(big.value(), json!(i64::MAX as f64 + 1.0));
    }

    #[test]
    fn a_sum_field_that_is_also_the_count_is_refused() {
        let s = AggregateSettings {
            sum: vec!["count".into()],
            ..AggregateSettings::default()
        };
        assert_eq!(
            s.validate().unwrap_err().to_string(),
            "sum[0]: `count` is also the count or a key field"
        );
    }
}
