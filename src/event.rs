//! Event ids and the JSON event type the config-driven binary uses.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The id of one event, unique within a process run (see
/// [`Core::next_event_id`](crate::Core::next_event_id)). Broadcasts such as
/// `event_done` name events by id; log lines about an event start with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ev{}", self.0)
    }
}

/// A JSON event: an id and a JSON value (usually an object).
///
/// Cogs do not touch its fields directly: they take [accessors](crate::accessor),
/// whose defaults for this type address fields by name or dotted path.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id.
    pub id: EventId,
    /// The event's data.
    pub data: Value,
}

impl Default for EventId {
    fn default() -> Self {
        EventId(0)
    }
}

impl Event {
    /// An event with this id and data.
    pub fn new(id: EventId, data: Value) -> Event {
        Event { id, data }
    }
}
