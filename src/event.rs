//! Event ids and the JSON event type the config-driven binary uses.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::accessor::{Encoded, Json, Path};
use crate::lazy::{Lazy, Pooled};

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
///
/// A lazy decoder ([`index_raw`](Self::index_raw), what `json_decode`
/// does by default) keeps the data as its bytes and an index of its fields
/// ([`Lazy`]) instead of a tree. The data are read with
/// [`value`](Self::value) (which builds the whole tree, once) or, better,
/// through accessors ([`Getter::path`](crate::Getter::path) and the
/// [`Json`] methods under them), which read and edit fields in place.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(into = "EventText", from = "EventText")]
pub struct Event {
    /// The event's id.
    pub id: EventId,
    /// The event's data as a tree (usually a JSON object; `Null` before
    /// decoding, and while the data are held lazily). Read with
    /// [`value`](Self::value), which sees both. Shared by the copies a
    /// fan-out makes (a train's output read by several trains): a copy is
    /// a count, not a tree, until a cog changes the data of one of them
    /// ([`data_mut`](Self::data_mut) copies it then).
    data: Arc<Value>,
    /// The bytes the event was read as (a line without its newline), or
    /// encoded to.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "raw_text")]
    pub raw: Vec<u8>,
    /// Where it came from: a file path, a peer address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
    /// Its line number in `origin`, from 1 (0 when not line-based).
    pub line: u64,
    /// The data as bytes and an index, when decoded lazily (then `data` is `Null`).
    lazy: Option<Pooled>,
}

/// How an [`Event`] is written and read (captures, remote trains): its data
/// as a tree.
#[derive(Serialize, Deserialize)]
struct EventText {
    id: EventId,
    data: Arc<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "raw_text")]
    raw: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Arc<str>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    line: u64,
}

impl From<Event> for EventText {
    fn from(mut e: Event) -> EventText {
        e.materialize();
        EventText {
            id: e.id,
            data: e.data,
            raw: e.raw,
            origin: e.origin,
            line: e.line,
        }
    }
}

impl From<EventText> for Event {
    fn from(e: EventText) -> Event {
        Event {
            id: e.id,
            data: e.data,
            raw: e.raw,
            origin: e.origin,
            line: e.line,
            lazy: None,
        }
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.id == other.id
            && self.raw == other.raw
            && self.origin == other.origin
            && self.line == other.line
            && self.value() == other.value()
    }
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
            lazy: None,
        }
    }

    /// `Null` data, shared: what an event read as bytes holds before it is
    /// decoded, without an allocation per event.
    pub fn null() -> Arc<Value> {
        static NULL: OnceLock<Arc<Value>> = OnceLock::new();
        Arc::clone(NULL.get_or_init(|| Arc::new(Value::Null)))
    }

    /// The data, whichever way they are held (a lazily decoded event
    /// builds its tree on the first call).
    pub fn value(&self) -> &Value {
        match &self.lazy {
            Some(lazy) => lazy.value(),
            None => &self.data,
        }
    }

    /// Decodes `raw` lazily: when it is one JSON object (as serde_json
    /// reads it), keeps it as bytes and an index and returns true; else
    /// changes nothing and returns false (parse it with serde_json then:
    /// it is not JSON, not an object, or an object serde_json reads as
    /// something else).
    pub fn index_raw(&mut self) -> bool {
        match Lazy::index_pooled(&self.raw) {
            Ok(lazy) => {
                self.lazy = Some(lazy);
                self.data = Event::null();
                true
            }
            Err(_) => false,
        }
    }

    /// True when the data are held lazily (see [`index_raw`](Self::index_raw)).
    pub fn is_lazy(&self) -> bool {
        self.lazy.is_some()
    }

    /// Writes the data as JSON into `raw` (replacing it) if they are held
    /// lazily: the bytes read with the edits spliced in. False (nothing
    /// done) when they are a tree.
    pub fn encode_lazy(&mut self) -> bool {
        let Some(lazy) = &self.lazy else {
            return false;
        };
        // A buffer of the size needed rather than regrowing `raw` (read as
        // one line, to its length): growing would copy the old bytes.
        let need = lazy.len_hint();
        if self.raw.capacity() < need {
            self.raw = Vec::with_capacity(need);
        }
        self.raw.clear();
        lazy.write(&mut self.raw);
        true
    }

    /// Turns lazily held data into a tree in `data`.
    fn materialize(&mut self) {
        if let Some(lazy) = self.lazy.take() {
            self.data = Arc::new(lazy.into_value());
        }
    }

    /// The data, to change: copied first if another event shares it.
    pub fn data_mut(&mut self) -> &mut Value {
        self.materialize();
        Arc::make_mut(&mut self.data)
    }

    /// Replaces the data (in place when no other event shares it).
    pub fn set_data(&mut self, data: Value) {
        self.lazy = None;
        match Arc::get_mut(&mut self.data) {
            Some(d) => *d = data,
            None => self.data = Arc::new(data),
        }
    }

    /// Takes the data out, leaving `Null` (copied first if shared).
    pub fn take_data(&mut self) -> Value {
        if let Some(lazy) = self.lazy.take() {
            return lazy.into_value();
        }
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

impl Json for Event {
    fn json(&self) -> &Value {
        self.value()
    }

    fn json_mut(&mut self) -> &mut Value {
        self.data_mut()
    }

    fn json_at(&self, path: &Path) -> Option<&Value> {
        match (&self.lazy, path.parts().split_first()) {
            (Some(lazy), Some((first, rest))) => {
                let mut v = lazy.get(first)?;
                for part in rest {
                    v = match v {
                        Value::Object(map) => map.get(part)?,
                        Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                Some(v)
            }
            _ => path.get(&self.data),
        }
    }

    fn json_str_at(&self, path: &Path) -> Option<&str> {
        match (&self.lazy, path.parts()) {
            (Some(lazy), [key]) => lazy.get_str(key),
            _ => self.json_at(path).and_then(Value::as_str),
        }
    }

    fn json_put(&mut self, path: &Path, value: Value) {
        if let (Some(lazy), [key]) = (&mut self.lazy, path.parts()) {
            return lazy.set(key, value);
        }
        *path.place(self.data_mut()) = value;
    }

    fn json_put_shared(&mut self, path: &Path, value: &Arc<Encoded>) {
        if let (Some(lazy), Some(key)) = (&mut self.lazy, path.shared_key()) {
            return lazy.set_shared(key, value);
        }
        *path.place(self.data_mut()) = value.value().clone();
    }

    fn json_remove(&mut self, path: &Path) -> Option<Value> {
        if let (Some(lazy), [key]) = (&mut self.lazy, path.parts()) {
            return lazy.remove(key);
        }
        path.take(self.data_mut())
    }

    fn json_is_object(&self) -> bool {
        self.lazy.is_some() || self.data.is_object()
    }
}

#[cfg(test)]
mod lazy_tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::accessor::{Encoded, Json, Path};
    use crate::{Event, EventId};

    fn lazy(text: &str) -> Event {
        let mut e = Event::from_raw(EventId(1), text.as_bytes().to_vec(), None, 3);
        assert!(e.index_raw());
        e
    }

    #[test]
    fn a_string_getter_reads_a_lazy_event_without_parsing() {
        let e = lazy(r#"{"level":"debug","esc":"a\nb","n":1,"o":{"k":"v"}}"#);
        let level = crate::Getter::<Event, str>::path_str("level");
        let got = level.get(&e).unwrap();
        assert_eq!(got, "debug");
        assert!(e.lazy.as_ref().unwrap().lends(got), "lent from the bytes, not parsed");
        let get = |p: &str| e.json_str_at(&Path::parse(p));
        assert_eq!(
            (get("esc"), get("n"), get("o.k"), get("none")),
            (Some("a\nb"), None, Some("v"), None)
        );
        let tree = Event::new(EventId(2), json!({"level": "debug"}));
        assert_eq!(level.get(&tree), Some("debug"));
    }

    #[test]
    fn fields_are_read_and_set_in_place_and_deeper_edits_build_the_tree() {
        let mut e = lazy(r#"{"b":{"c":[1,{"d":"x"}]},"a":2}"#);
        assert_eq!(e.data, Event::null(), "no tree in data");
        assert_eq!(e.json_at(&Path::parse("b.c.1.d")), Some(&json!("x")));
        assert_eq!(e.json_at(&Path::parse("/a")), Some(&json!(2)));
        assert_eq!(e.json_at(&Path::parse("zz")), None);
        e.json_put(&Path::parse("n"), json!("new"));
        assert_eq!(e.json_remove(&Path::parse("a")), Some(json!(2)));
        assert!(e.is_lazy() && e.json_is_object());
        let copy = e.clone();
        assert!(e.encode_lazy());
        assert_eq!(e.raw, br#"{"b":{"c":[1,{"d":"x"}]},"n":"new"}"#);
        // Whoever asks for the whole value gets the edited tree.
        assert_eq!(copy.value(), &json!({"b": {"c": [1, {"d": "x"}]}, "n": "new"}));
        let text = serde_json::to_string(&copy).unwrap();
        let back: Event = serde_json::from_str(&text).unwrap();
        assert!(!back.is_lazy());
        assert_eq!(back, copy);
        let mut deep = copy;
        deep.json_put(&Path::parse("b.c.0"), json!(9));
        assert!(!deep.is_lazy(), "a nested edit works on the tree");
        assert_eq!(deep.data["b"]["c"][0], json!(9));
        assert!(!deep.encode_lazy());
    }

    #[test]
    fn a_shared_value_is_kept_shared_and_spliced_as_it_was_encoded() {
        let v = Arc::new(Encoded::new(json!({"k": "x\"y", "n": 1})));
        let mut e = lazy(r#"{"a":1}"#);
        e.json_put_shared(&Path::parse("mark"), &v);
        e.json_put_shared(&Path::parse("a"), &v);
        assert_eq!(Arc::strong_count(&v), 3, "the event holds the value, not a copy");
        assert_eq!(e.json_at(&Path::parse("mark.k")), Some(&json!("x\"y")));
        assert!(e.encode_lazy());
        assert_eq!(e.raw, br#"{"a":{"k":"x\"y","n":1},"mark":{"k":"x\"y","n":1}}"#);
        // A tree takes a copy.
        let mut tree = Event::new(EventId(2), json!({"a": 1}));
        tree.json_put_shared(&Path::parse("b.c"), &v);
        assert_eq!(tree.value(), &json!({"a": 1, "b": {"c": {"k": "x\"y", "n": 1}}}));
    }

    #[test]
    fn set_and_take_data_leave_no_stale_index() {
        let mut e = lazy(r#"{"a":1}"#);
        assert_eq!(e.take_data(), json!({"a": 1}));
        assert!(!e.is_lazy());
        let mut e = lazy(r#"{"a":1}"#);
        e.set_data(json!(5));
        assert_eq!(e.value(), &json!(5));
        let mut e = lazy(r#"{"a":1}"#);
        e.data_mut()["b"] = json!(2);
        assert_eq!(e.value(), &json!({"a": 1, "b": 2}));
        let mut not = Event::from_raw(EventId(2), b"[1]".to_vec(), None, 0);
        assert!(!not.index_raw(), "only objects are indexed");
        let mut bad = Event::from_raw(EventId(2), b"{".to_vec(), None, 0);
        assert!(!bad.index_raw());
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
