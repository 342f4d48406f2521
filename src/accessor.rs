//! Accessors: how cogs reach into data without knowing its shape.
//!
//! A cog takes a [`Getter`] for what it reads and a [`Setter`] for what it
//! writes (a setter takes the datum and returns it, so immutable data works
//! too). For JSON data ([`serde_json::Value`] or [`Event`]) the defaults
//! address a field by name or dotted path (`"http.status"`, `"tags.0"`), or
//! by JSON pointer (`"/http/status"`).
//!
//! ```
//! use serde_json::json;
//! use tourbillon::accessor::{Getter, Setter};
//!
//! let level: Getter<serde_json::Value, str> = Getter::path_str("log.level");
//! let mark: Setter<serde_json::Value, serde_json::Value> = Setter::path("pipeline");
//! let v = mark.set(json!({"log": {"level": "info"}}), json!("tourbillon"));
//! assert_eq!(level.get(&v), Some("info"));
//! assert_eq!(v["pipeline"], "tourbillon");
//! ```

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::event::{Event, EventId};

type GetFn<D, T> = dyn for<'a> Fn(&'a D) -> Option<&'a T> + Send + Sync;
type SetFn<D, T> = dyn Fn(D, T) -> D + Send + Sync;
type IdFn<D> = dyn Fn(&D) -> Option<EventId> + Send + Sync;

/// Reads a `T` out of a `D` by reference; `None` when it is absent.
pub struct Getter<D, T: ?Sized> {
    f: Arc<GetFn<D, T>>,
    what: Arc<str>,
}

/// Writes a `T` into a `D`: takes the datum and returns it.
pub struct Setter<D, T> {
    f: Arc<SetFn<D, T>>,
    what: Arc<str>,
}

/// Reads the id of a datum.
pub struct IdGetter<D> {
    f: Arc<IdFn<D>>,
}

/// Writes the id of a datum.
pub type IdSetter<D> = Setter<D, EventId>;

impl<D, T: ?Sized> Clone for Getter<D, T> {
    fn clone(&self) -> Self {
        Getter {
            f: Arc::clone(&self.f),
            what: Arc::clone(&self.what),
        }
    }
}

impl<D, T> Clone for Setter<D, T> {
    fn clone(&self) -> Self {
        Setter {
            f: Arc::clone(&self.f),
            what: Arc::clone(&self.what),
        }
    }
}

impl<D> Clone for IdGetter<D> {
    fn clone(&self) -> Self {
        IdGetter { f: Arc::clone(&self.f) }
    }
}

impl<D, T: ?Sized> fmt::Display for Getter<D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}
impl<D, T: ?Sized> fmt::Debug for Getter<D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Getter({})", self.what)
    }
}
impl<D, T> fmt::Display for Setter<D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}
impl<D, T> fmt::Debug for Setter<D, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Setter({})", self.what)
    }
}
impl<D> fmt::Debug for IdGetter<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdGetter")
    }
}

impl<D, T: ?Sized> Getter<D, T> {
    /// A getter from a function; `what` names it in listings (`"field level"`).
    pub fn new(what: impl Into<String>, f: impl for<'a> Fn(&'a D) -> Option<&'a T> + Send + Sync + 'static) -> Self {
        Getter {
            f: Arc::new(f),
            what: what.into().into(),
        }
    }

    /// Reads the value.
    #[inline]
    pub fn get<'a>(&self, datum: &'a D) -> Option<&'a T> {
        (self.f)(datum)
    }
}

impl<D, T> Setter<D, T> {
    /// A setter from a function; `what` names it in listings.
    pub fn new(what: impl Into<String>, f: impl Fn(D, T) -> D + Send + Sync + 'static) -> Self {
        Setter {
            f: Arc::new(f),
            what: what.into().into(),
        }
    }

    /// Writes the value and hands the datum back.
    #[inline]
    pub fn set(&self, datum: D, value: T) -> D {
        (self.f)(datum, value)
    }
}

impl<D> IdGetter<D> {
    /// An id getter from a function.
    pub fn new(f: impl Fn(&D) -> Option<EventId> + Send + Sync + 'static) -> Self {
        IdGetter { f: Arc::new(f) }
    }

    /// Reads the id.
    #[inline]
    pub fn get(&self, datum: &D) -> Option<EventId> {
        (self.f)(datum)
    }
}

/// Data that holds a JSON value: what the default accessors work on.
///
/// The `json_*` methods have defaults that go through the whole value;
/// data that hold it another way (an [`Event`] decoded lazily) reach a
/// field without building it.
pub trait Json: 'static {
    /// The JSON value.
    fn json(&self) -> &Value;
    /// The JSON value, to change.
    fn json_mut(&mut self) -> &mut Value;
    /// The value at `path`.
    fn json_at(&self, path: &Path) -> Option<&Value> {
        path.get(self.json())
    }
    /// The string at `path` (`None` if absent or not a string). Data that
    /// hold their text (an [`Event`] decoded lazily) lend a string without
    /// escapes from it, with nothing parsed or allocated.
    fn json_str_at(&self, path: &Path) -> Option<&str> {
        self.json_at(path).and_then(Value::as_str)
    }
    /// Writes `value` at `path`, creating objects on the way (see [`Path::place`]).
    fn json_put(&mut self, path: &Path, value: Value) {
        *path.place(self.json_mut()) = value;
    }
    /// Writes a value shared with the caller at `path`: a cog that sets the
    /// same value on every datum calls this, and data that can keep the
    /// value shared (an [`Event`] decoded lazily) copy a pointer, not it,
    /// and write its text as it was encoded once.
    fn json_put_shared(&mut self, path: &Path, value: &Arc<Encoded>) {
        self.json_put(path, value.value().clone())
    }
    /// Removes and returns the value at `path`.
    fn json_remove(&mut self, path: &Path) -> Option<Value> {
        path.take(self.json_mut())
    }
    /// True when the value is an object.
    fn json_is_object(&self) -> bool {
        self.json().is_object()
    }
}

impl Json for Value {
    fn json(&self) -> &Value {
        self
    }
    fn json_mut(&mut self) -> &mut Value {
        self
    }
}

/// A parsed field path: `a.b.0` or the JSON pointer `/a/b/0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    parts: Vec<String>,
    text: String,
    /// The one part of a one-part path, shared: data that keep keys
    /// (an [`Event`] decoded lazily) copy a pointer, not the key.
    key: Option<Arc<str>>,
}

impl Path {
    /// Parses a dotted path or a JSON pointer (leading `/`, `~1` for `/`, `~0` for `~`).
    pub fn parse(text: &str) -> Path {
        let parts: Vec<String> = match text.strip_prefix('/') {
            Some(pointer) => pointer
                .split('/')
                .map(|p| p.replace("~1", "/").replace("~0", "~"))
                .collect(),
            None => text.split('.').map(str::to_owned).collect(),
        };
        let key = match &parts[..] {
            [one] => Some(Arc::from(one.as_str())),
            _ => None,
        };
        Path {
            parts,
            text: text.to_owned(),
            key,
        }
    }

    /// The key of a path of one part, shared.
    pub(crate) fn shared_key(&self) -> Option<&Arc<str>> {
        self.key.as_ref()
    }

    /// Its parts: the keys (and list positions) from the top down.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// The value at this path.
    pub fn get<'a>(&self, mut v: &'a Value) -> Option<&'a Value> {
        for part in &self.parts {
            v = match v {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(v)
    }

    /// A mutable place at this path, creating objects on the way (a
    /// non-object in the way is replaced by an object).
    pub fn place<'a>(&self, mut v: &'a mut Value) -> &'a mut Value {
        for part in &self.parts {
            let index = match &*v {
                Value::Array(items) => part.parse::<usize>().ok().filter(|&i| i < items.len()),
                _ => None,
            };
            if !v.is_object() && index.is_none() {
                *v = Value::Object(Map::new());
            }
            v = match (v, index) {
                (Value::Array(items), Some(i)) => &mut items[i],
                (Value::Object(map), _) => map.entry(part.clone()).or_insert(Value::Null),
                _ => unreachable!("made an object above"),
            };
        }
        v
    }

    /// Removes and returns the value at this path.
    pub fn take(&self, v: &mut Value) -> Option<Value> {
        let (last, parents) = self.parts.split_last()?;
        let mut v = v;
        for part in parents {
            v = match v {
                Value::Object(map) => map.get_mut(part)?,
                Value::Array(items) => items.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        match v {
            Value::Object(map) => map.remove(last),
            _ => None,
        }
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<D: Json> Getter<D, Value> {
    /// The JSON value at a field path.
    pub fn path(path: &str) -> Self {
        let p = Path::parse(path);
        Getter::new(path, move |d: &D| d.json_at(&p))
    }
}

impl<D: Json> Getter<D, str> {
    /// The string at a field path (`None` if absent or not a string).
    pub fn path_str(path: &str) -> Self {
        let p = Path::parse(path);
        Getter::new(path, move |d: &D| d.json_str_at(&p))
    }
}

impl<D: Json> Setter<D, Value> {
    /// Writes a JSON value at a field path, creating objects on the way.
    pub fn path(path: &str) -> Self {
        let p = Path::parse(path);
        Setter::new(path, move |mut d: D, v| {
            d.json_put(&p, v);
            d
        })
    }
}

impl<D: Json> Setter<D, Arc<Encoded>> {
    /// Writes a shared JSON value at a field path (see
    /// [`Json::json_put_shared`]): for a value set on every datum.
    pub fn path_shared(path: &str) -> Self {
        let p = Path::parse(path);
        Setter::new(path, move |mut d: D, v: Arc<Encoded>| {
            d.json_put_shared(&p, &v);
            d
        })
    }
}

/// A JSON value and its text (compact, as `serde_json::to_vec` writes it),
/// encoded once: what a cog that sets the same value on every datum holds,
/// so that data kept as bytes splice the text in without encoding it again.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    value: Value,
    text: Box<[u8]>,
}

impl Encoded {
    /// The value, encoded.
    pub fn new(value: Value) -> Encoded {
        // Encoding a Value into a Vec cannot fail.
        let text = serde_json::to_vec(&value).unwrap_or_default().into_boxed_slice();
        Encoded { value, text }
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Its JSON text.
    pub fn text(&self) -> &[u8] {
        &self.text
    }

    /// The value, taken.
    pub fn into_value(self) -> Value {
        self.value
    }
}

impl Event {
    /// The id getter of [`Event`].
    pub fn id_getter() -> IdGetter<Event> {
        IdGetter::new(|e: &Event| Some(e.id))
    }

    /// The id setter of [`Event`].
    pub fn id_setter() -> IdSetter<Event> {
        Setter::new("id", |mut e: Event, id| {
            e.id = id;
            e
        })
    }
}

impl Getter<Event, [u8]> {
    /// The raw bytes of an [`Event`].
    pub fn raw() -> Self {
        Getter::new("raw", |e: &Event| Some(e.raw.as_slice()))
    }
}

impl Setter<Event, Vec<u8>> {
    /// Replaces the raw bytes of an [`Event`].
    pub fn raw() -> Self {
        Setter::new("raw", |mut e: Event, raw| {
            e.raw = raw;
            e
        })
    }
}

/// Id accessors for bare JSON values that keep the id in a field.
pub fn json_id_getter(path: &str) -> IdGetter<Value> {
    let p = Path::parse(path);
    IdGetter::new(move |v: &Value| p.get(v).and_then(Value::as_u64).map(EventId))
}

/// The setter matching [`json_id_getter`].
pub fn json_id_setter(path: &str) -> IdSetter<Value> {
    let p = Path::parse(path);
    Setter::new(path, move |mut v: Value, id: EventId| {
        *p.place(&mut v) = Value::from(id.0);
        v
    })
}

/// Takes the byte buffer out of a datum a drain is through with (it wrote
/// the bytes), so that the buffer can be filled again
/// ([`Context::recycle`](crate::Context::recycle)) rather than freed.
pub struct Recycler<D> {
    f: Arc<dyn Fn(D) -> Option<Vec<u8>> + Send + Sync>,
}

impl<D> Clone for Recycler<D> {
    fn clone(&self) -> Self {
        Recycler { f: Arc::clone(&self.f) }
    }
}

impl<D> fmt::Debug for Recycler<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Recycler")
    }
}

impl<D> Recycler<D> {
    /// A recycler from a function that gives up the datum's buffer.
    pub fn new(f: impl Fn(D) -> Option<Vec<u8>> + Send + Sync + 'static) -> Self {
        Recycler { f: Arc::new(f) }
    }

    /// The datum's buffer, if it has one; the rest of the datum is dropped.
    #[inline]
    pub fn take(&self, datum: D) -> Option<Vec<u8>> {
        (self.f)(datum)
    }
}

impl Recycler<Event> {
    /// The `raw` bytes of an [`Event`].
    pub fn raw() -> Self {
        Recycler::new(|mut e: Event| Some(std::mem::take(&mut e.raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_path_and_pointer_reach_the_same_field() {
        let v = json!({"a": {"b/c": [1, {"d": "x"}]}, "e": 2});
        assert_eq!(Path::parse("/a/b~1c/1/d").get(&v), Some(&json!("x")));
        assert_eq!(Path::parse("e").get(&v), Some(&json!(2)));
        assert_eq!(Path::parse("a.missing").get(&v), None);
    }

    #[test]
    fn setter_creates_objects_and_returns_the_datum() {
        let set = Setter::<Value, Value>::path("a.b");
        let v = set.set(json!({"a": 5}), json!(true));
        assert_eq!(v, json!({"a": {"b": true}}));
    }

    #[test]
    fn take_removes_the_field() {
        let mut v = json!({"a": {"b": 1, "c": 2}});
        assert_eq!(Path::parse("a.b").take(&mut v), Some(json!(1)));
        assert_eq!(v, json!({"a": {"c": 2}}));
    }

    #[test]
    fn event_id_accessors_round_trip() {
        let e = Event::id_setter().set(Event::default(), EventId(9));
        assert_eq!(Event::id_getter().get(&e), Some(EventId(9)));
        let v = json_id_setter("meta.id").set(json!({}), EventId(4));
        assert_eq!(json_id_getter("meta.id").get(&v), Some(EventId(4)));
    }
}
