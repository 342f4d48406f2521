//! The `tick` supply: an event every `interval_ms`, holding the fields of
//! `data`, from the start; after `count` of them (if set) it is exhausted.
//!
//! It drives what must happen on a clock rather than on input: a seed
//! written once at start (`count = 1`), a heartbeat, a poll. A tick that
//! falls while the train is congested is not queued: one tick goes out
//! when the train has room again, and the ones that fell meanwhile are
//! counted (as dropped) and logged, so a slow train is never buried under
//! a backlog of ticks.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tourbillon::{Cog, Context, Event, Finish, Fired, Next, Role, Setter, TimerId};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::{Error, LogThrottle, Verdict};

/// Settings of [`Tick`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TickSettings {
    /// Milliseconds between two ticks; the first is at start. At least 1.
    /// Default 1000.
    pub interval_ms: u64,
    /// How many ticks, then the supply is exhausted. At least 1. Default
    /// none: ticks until the process stops.
    pub count: Option<u64>,
    /// The fields of every event (a table). Default none: `{}`.
    pub data: Map<String, Value>,
    /// A field path that gets the tick's number (1, 2, ...). Default none.
    pub count_field: Option<String>,
}

impl Default for TickSettings {
    fn default() -> Self {
        TickSettings {
            interval_ms: 1000,
            count: None,
            data: Map::new(),
            count_field: None,
        }
    }
}

impl TickSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval_ms == 0 {
            return Err(Error::setting("interval_ms", "must be at least 1"));
        }
        if self.count == Some(0) {
            return Err(Error::setting(
                "count",
                "must be at least 1 (leave it out to tick forever)",
            ));
        }
        match &self.count_field {
            Some(f) => check_path("count_field", f),
            None => Ok(()),
        }
    }
}

const TICK: u64 = 0;

/// Emits an event on a clock; see the [module docs](self).
pub struct Tick {
    settings: TickSettings,
    count_field: Option<Setter<Event, Option<Value>>>,
    origin: Arc<str>,
    /// Ticks emitted.
    emitted: u64,
    timer: Option<TimerId>,
    /// A tick fell while the train was congested: one goes out on resume.
    due: bool,
    skipped_log: LogThrottle,
    meter: Meter,
}

impl fmt::Debug for Tick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tick")
            .field("settings", &self.settings)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl Tick {
    /// A `tick` supply.
    pub fn new(settings: TickSettings) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Tick {
            count_field: settings.count_field.as_deref().map(|p| Access::event().writer(p)),
            settings,
            origin: Arc::from("tick"),
            emitted: 0,
            timer: None,
            due: false,
            skipped_log: LogThrottle::new(Duration::from_secs(10)),
            meter: Meter::default(),
        })
    }

    fn tick<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if self.settings.count.is_some_and(|c| self.emitted >= c) {
            return;
        }
        if ctx.congested() {
            if std::mem::replace(&mut self.due, true) {
                self.meter.dropped();
                if let Verdict::Log { held } = self.skipped_log.hit(ctx.now()) {
                    log::warn!(
                        "tick: the train is congested: a tick skipped (one goes out when it has room){}",
                        crate::Summary::note(held)
                    );
                }
            }
            return;
        }
        self.due = false;
        self.emitted += 1;
        let mut ev = Event::new(ctx.next_event_id(), Value::Object(self.settings.data.clone()));
        ev.origin = Some(Arc::clone(&self.origin));
        ev.line = self.emitted;
        if let Some(set) = &self.count_field {
            ev = set.set(ev, Some(Value::from(self.emitted)));
        }
        self.meter.took(0);
        self.meter.emit(ev, ctx);
        if self.settings.count.is_some_and(|c| self.emitted >= c) {
            if let Some(t) = self.timer.take() {
                ctx.cancel(t);
            }
            ctx.exhausted();
        }
    }
}

/// In and out: ticks emitted; dropped: ticks skipped while congested.
impl Metered for Tick {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl Cog<Event> for Tick {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        let every = Duration::from_millis(self.settings.interval_ms);
        let armed = ctx.enqueue(TICK).is_ok()
            && (self.settings.count == Some(1) || ctx.every(every, TICK).map(|t| self.timer = Some(t)).is_ok());
        if !armed {
            log::error!("tick: cannot bind its timer; no tick will come");
            ctx.exhausted();
        }
    }

    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        self.tick(ctx)
    }

    fn resume<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        if self.due {
            self.tick(ctx)
        }
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, datum: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(datum)
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) -> Finish {
        if let Some(t) = self.timer.take() {
            ctx.cancel(t);
        }
        Finish::Done
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tick interval_ms={}", self.settings.interval_ms)?;
        if let Some(c) = self.settings.count {
            write!(f, " count={c}")?;
        }
        write!(f, " data={}", Value::Object(self.settings.data.clone()))
    }
}
