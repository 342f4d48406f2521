//! The `pace` cog: lets data through no faster than one per `interval_ms`,
//! in order, holding the others; nothing is dropped.
//!
//! A datum that comes when the last one passed at least an interval ago
//! goes on at once; the others wait in a queue and leave one per interval.
//! With `max_held` data held the cog is congested, so the supply before it
//! stops reading (a key-value watch stops taking entries, a tail stops
//! reading) until there is room again. At finish, what is held goes on at
//! once (counted and logged): a stop neither loses it nor waits for it.
//!
//! Where `rate_limit` drops what is over its rate, `pace` delays it: a
//! node that must act once a second on what it watches (read, increment,
//! compare-and-set a shared value) paces its watch.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, Finish, Fired, Next, TimerId};

use crate::access::Access;
use crate::meter::{Meter, Metered};
use crate::Error;

/// Settings of [`Pace`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PaceSettings {
    /// Milliseconds between two data let through. At least 1. Default 1000.
    pub interval_ms: u64,
    /// Data held at most; with that many the cog is congested. At least 1.
    /// Default 1000.
    pub max_held: usize,
}

impl Default for PaceSettings {
    fn default() -> Self {
        PaceSettings {
            interval_ms: 1000,
            max_held: 1000,
        }
    }
}

impl PaceSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval_ms == 0 {
            return Err(Error::setting("interval_ms", "must be at least 1"));
        }
        if self.max_held == 0 {
            return Err(Error::setting("max_held", "must be at least 1"));
        }
        Ok(())
    }
}

const RELEASE: u64 = 0;
/// Named count: data that waited.
const DELAYED: usize = 0;

/// Paces data; see the [module docs](self).
pub struct Pace<D = Event> {
    settings: PaceSettings,
    interval: Duration,
    held: VecDeque<D>,
    /// When the last datum went on: the clock read then, not the loop's
    /// time of the turn, which may be earlier (a gap measured from it
    /// would come out short).
    last: Option<Instant>,
    timer: Option<TimerId>,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Pace<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pace")
            .field("settings", &self.settings)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl Pace<Event> {
    /// A `pace` cog for events.
    pub fn new(settings: PaceSettings) -> Result<Self, Error> {
        Pace::with_access(settings, Access::event())
    }
}

impl<D: 'static> Pace<D> {
    /// A `pace` cog measuring data through `access`.
    pub fn with_access(settings: PaceSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Pace {
            interval: Duration::from_millis(settings.interval_ms),
            settings,
            held: VecDeque::new(),
            last: None,
            timer: None,
            access,
            meter: Meter::with_named(["delayed"]),
        })
    }

    /// Data held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn arm<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.timer.is_some() || self.held.is_empty() {
            return;
        }
        let at = self.last.map_or_else(|| ctx.now(), |l| l + self.interval);
        match ctx.at(at, RELEASE) {
            Ok(t) => self.timer = Some(t),
            // Finishing: `finish` lets the held data go.
            Err(e) => log::debug!("pace: cannot arm its timer: {e}"),
        }
    }
}

/// In and out: data; `delayed`: data that waited for their turn.
impl<D: 'static> Metered for Pace<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Pace<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        let now = Instant::now();
        if self.held.is_empty()
            && !self
                .last
                .is_some_and(|l| now.saturating_duration_since(l) < self.interval)
        {
            self.last = Some(now);
            return self.meter.emit(datum, ctx);
        }
        self.meter.count(DELAYED);
        self.held.push_back(datum);
        self.arm(ctx);
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        if key != RELEASE {
            return;
        }
        self.timer = None;
        let now = Instant::now();
        if self.last.is_some_and(|l| now < l + self.interval) {
            // A timer rounded to the loop's clock came early: not yet.
            return self.arm(ctx);
        }
        let was_full = self.congested();
        if let Some(d) = self.held.pop_front() {
            self.last = Some(now);
            self.meter.emit(d, ctx);
        }
        self.arm(ctx);
        if was_full && !self.congested() {
            ctx.resume_upstream();
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        if let Some(t) = self.timer.take() {
            ctx.cancel(t);
        }
        if !self.held.is_empty() {
            log::info!(
                "pace: finishing: {} data held go on without waiting their turn",
                self.held.len()
            );
        }
        while let Some(d) = self.held.pop_front() {
            self.meter.emit(d, ctx);
        }
        Finish::Done
    }

    fn congested(&self) -> bool {
        self.held.len() >= self.settings.max_held
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pace interval_ms={} max_held={}",
            self.settings.interval_ms, self.settings.max_held
        )
    }
}
