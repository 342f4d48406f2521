//! Event ids and the JSON event type the config-driven binary uses.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The id of one event, unique within a process run (see
/// [`Core::next_event_id`](crate::Core::next_event_id)). Broadcasts such as
/// `event_done` name events by id; log lines about an event start with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ev{}", self.0)
    }
}

/// The event type of config-built trains: an id, JSON data, the raw bytes
/// it came from or goes to, and where it came from.
///
/// Cogs do not touch its fields directly: they take [accessors](crate::accessor),
/// whose defaults for this type address `data` by field name or dotted path
/// and `raw` as bytes. `raw` is reused: a decoder reads it, an encoder
/// writes into it, a drain writes it out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id.
    pub id: EventId,
    /// The event's data (usually a JSON object; `Null` before decoding).
    /// Shared by the copies a fan-out makes (a train's output read by
    /// several trains): a copy is a count, not a tree, until a cog changes
    /// the data of one of them ([`data_mut`](Self::data_mut) copies it then).
    pub data: Arc<Value>,
    /// The bytes the event was read as (a line without its newline), or
    /// encoded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "raw_text")]
    pub raw: Vec<u8>,
    /// Where it came from: a file path, a peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
    /// Its line number in `origin`, from 1 (0 when not line-based).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Event {
    /// An event with this id and data.
    pub fn new(id: EventId, data: Value) -> Event {
        Event {
            id,
            data: Arc::new(data),
            ..Event::default()
        }
    }

    /// An event read as `raw` bytes from line `line` of `origin`.
    pub fn from_raw(id: EventId, raw: Vec<u8>, origin: Option<Arc<str>>, line: u64) -> Event {
        Event {
            id,
            data: Event::null(),
            raw,
            origin,
            line,
        }
    }

    /// `Null` data, shared: what an event read as bytes holds before it is
    /// decoded, without an allocation per event.
    pub fn null() -> Arc<Value> {
        static NULL: OnceLock<Arc<Value>> = OnceLock::new();
        Arc::clone(NULL.get_or_init(|| Arc::new(Value::Null)))
    }

    /// The data, to change: copied first if another event shares it.
    pub fn data_mut(&mut self) -> &mut Value {
        Arc::make_mut(&mut self.data)
    }

    /// Replaces the data (in place when no other event shares it).
    pub fn set_data(&mut self, data: Value) {
        match Arc::get_mut(&mut self.data) {
            Some(d) => *d = data,
            None => self.data = Arc::new(data),
        }
    }

    /// Takes the data out, leaving `Null` (copied first if shared).
    pub fn take_data(&mut self) -> Value {
        match Arc::get_mut(&mut self.data) {
            Some(d) => std::mem::take(d),
            None => std::mem::replace(&mut self.data, Event::null()).as_ref().clone(),
        }
    }

    /// `origin:line` for messages about this event (`-` when unknown).
    pub fn place(&self) -> String {
        match (&self.origin, self.line) {
            (Some(o), 0) => o.to_string(),
            (Some(o), n) => format!("{o}:{n}"),
            (None, _) => "-".into(),
        }
    }
}

/// `raw` as text when it is UTF-8 (captures read as what was written, and
/// compare as text), else as an array of bytes; both are read back.
mod raw_text {
    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(raw: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(raw) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_seq(raw),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Raw;
        impl<'de> Visitor<'de> for Raw {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_any(Raw)
    }

    #[cfg(test)]
    mod tests {
        use crate::{Event, EventId};

        #[test]
        fn raw_is_text_when_it_can_be_and_bytes_otherwise_and_both_read_back() {
            let text = Event::from_raw(EventId(1), b"a \"line\"".to_vec(), None, 0);
            let json = serde_json::to_string(&text).unwrap();
            assert!(json.contains(r#""raw":"a \"line\"""#), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), text);
            let bytes = Event::from_raw(EventId(2), vec![0xff, b'a'], None, 0);
            let json = serde_json::to_string(&bytes).unwrap();
            assert!(json.contains(r#""raw":[255,97]"#), "{json}");
            assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), bytes);
        }
    }
}
