//! How a cog rejects an event of the `jetstream_consume` supply: the
//! [`Rejects`] handle, and the `jetstream_reject` step built on it.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tourbillon::accessor::Json;
use tourbillon::{Cog, Context, Event, EventId, Getter, Next};

use crate::{Counter, Error};

/// What becomes of a message whose event a cog rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// Deliver it again after a delay (`None`: the supply's `nak_delay_ms`);
    /// termed instead on its last delivery.
    Nak(Option<Duration>),
    /// Never deliver it again (poison).
    Term,
}

/// The handle through which cogs of the supply's train reject events: mark
/// the event, then report it done (`ctx.event_done(id)` or `ctx.discard`).
/// An event reported done without a mark is acked. Clones share the marks.
#[derive(Clone, Debug, Default)]
pub struct Rejects {
    marks: Arc<Mutex<HashMap<EventId, Reject>>>,
    any: Arc<AtomicBool>,
}

impl Rejects {
    /// Marks event `id` as failed: nak'd with the supply's delay, termed on
    /// its last delivery.
    pub fn nak(&self, id: EventId) {
        self.mark(id, Reject::Nak(None))
    }

    /// Marks event `id` with what becomes of its message.
    pub fn mark(&self, id: EventId, how: Reject) {
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.insert(id, how);
        self.any.store(true, Ordering::Release);
    }

    pub(super) fn take(&self, id: EventId) -> Option<Reject> {
        if !self.any.load(Ordering::Acquire) {
            return None;
        }
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        let r = marks.remove(&id);
        if marks.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        r
    }
}

/// Settings of [`RejectStep`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RejectSettings {
    /// A field path: events that have this field are rejected (for example
    /// the error field a decoder sets). Required.
    pub field: String,
    /// `true`: term them (poison, never delivered again); default false: nak
    /// them (delivered again after the supply's `nak_delay_ms`, termed on
    /// their last delivery).
    pub term: bool,
}

/// The `jetstream_reject` step: rejects the events that have a field,
/// through the [`Rejects`] of the train's `jetstream_consume` supply, and
/// passes the others on.
pub struct RejectStep<D = Event> {
    settings: RejectSettings,
    field: Getter<D, serde_json::Value>,
    rejects: Rejects,
    stats: Counter,
}

impl<D> fmt::Debug for RejectStep<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectStep")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<D: Json> RejectStep<D> {
    /// Rejects through `rejects` (from [`JetStreamSupply::rejects`](super::JetStreamSupply::rejects)).
    pub fn new(settings: RejectSettings, rejects: Rejects) -> Result<Self, Error> {
        if settings.field.is_empty() {
            return Err(Error::setting(
                "field",
                "required: the field whose presence rejects an event",
            ));
        }
        Ok(RejectStep {
            field: Getter::path(&settings.field),
            settings,
            rejects,
            stats: Counter::default(),
        })
    }

    /// Events rejected so far.
    pub fn rejected(&self) -> Counter {
        self.stats.clone()
    }
}

impl<D: 'static> Cog<D> for RejectStep<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        if self.field.get(&datum).is_none() {
            return ctx.emit(datum);
        }
        self.stats.add(1);
        if let Some(id) = ctx.id_of(&datum) {
            let how = if self.settings.term {
                Reject::Term
            } else {
                Reject::Nak(None)
            };
            self.rejects.mark(id, how);
        }
        ctx.discard(&datum)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "jetstream_reject field={} {}",
            self.settings.field,
            if self.settings.term { "term" } else { "nak" }
        )
    }
}
