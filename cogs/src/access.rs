//! Field access, shared by the cogs that reach the fields their settings
//! name: [`Access`] turns a field path into a getter and a writer (for any
//! data shape), [`check_path`] refuses a path that names no field, and
//! [`FieldKey`] renders a few fields as one map key; `kind_name` names the
//! kind of a value for messages.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde_json::Value;
use tourbillon::accessor::{Json, Path};
use tourbillon::{Event, Getter, Setter};

use crate::Error;

type GetFor<D> = dyn Fn(&str) -> Getter<D, Value> + Send + Sync;
type PutFor<D> = dyn Fn(&str) -> Setter<D, Option<Value>> + Send + Sync;
type StrFor<D> = dyn Fn(&str) -> Getter<D, str> + Send + Sync;

/// How a cog built from settings reaches the fields they name: a field
/// path becomes a [`Getter`] and a writer (a [`Setter`] of
/// `Option<Value>`: `Some` writes, `None` removes). Clones share it.
///
/// [`Access::json`] addresses JSON data by dotted path or JSON pointer;
/// [`Access::event`] does the same in an [`Event`]'s `data` and counts its
/// raw bytes for [stats](crate::step::stats). Other data shapes give their own
/// functions to [`Access::new`].
///
/// ```
/// use serde_json::json;
/// use tourbillon_cogs::access::Access;
///
/// let access = Access::<serde_json::Value>::json();
/// let put = access.writer("a.b");
/// let v = put.set(json!({}), Some(json!(1)));
/// assert_eq!(access.getter("a.b").get(&v), Some(&json!(1)));
/// assert_eq!(put.set(v, None), json!({"a": {}}));
/// ```
pub struct Access<D> {
    get: Arc<GetFor<D>>,
    put: Arc<PutFor<D>>,
    text: Option<Arc<StrFor<D>>>,
    bytes: Option<Getter<D, [u8]>>,
}

impl<D> Clone for Access<D> {
    fn clone(&self) -> Self {
        Access {
            get: Arc::clone(&self.get),
            put: Arc::clone(&self.put),
            text: self.text.clone(),
            bytes: self.bytes.clone(),
        }
    }
}

impl<D> fmt::Debug for Access<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Access")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl<D> Access<D> {
    /// Access through these functions from a field path to its accessors.
    pub fn new(
        get: impl Fn(&str) -> Getter<D, Value> + Send + Sync + 'static,
        put: impl Fn(&str) -> Setter<D, Option<Value>> + Send + Sync + 'static,
    ) -> Self {
        Access {
            get: Arc::new(get),
            put: Arc::new(put),
            text: None,
            bytes: None,
        }
    }

    /// Reads string fields through `text` (a field path to a getter of
    /// the string there), which may lend a string without building the
    /// value; without it, [`text_getter`](Self::text_getter) goes through
    /// the value getter.
    pub fn text(mut self, text: impl Fn(&str) -> Getter<D, str> + Send + Sync + 'static) -> Self {
        self.text = Some(Arc::new(text));
        self
    }

    /// Counts the bytes `bytes` reads as the size of a datum (in stats).
    pub fn bytes(mut self, bytes: Getter<D, [u8]>) -> Self {
        self.bytes = Some(bytes);
        self
    }

    /// The getter of a field path.
    pub fn getter(&self, path: &str) -> Getter<D, Value> {
        (self.get)(path)
    }

    /// The getter of the string at a field path (`None` if absent or not a
    /// string): for tests that only ever compare strings.
    pub fn text_getter(&self, path: &str) -> Getter<D, str>
    where
        D: 'static,
    {
        match &self.text {
            Some(text) => text(path),
            None => {
                let get = self.getter(path);
                Getter::new(path, move |d: &D| get.get(d).and_then(Value::as_str))
            }
        }
    }

    /// The writer of a field path: `Some` writes, `None` removes.
    pub fn writer(&self, path: &str) -> Setter<D, Option<Value>> {
        (self.put)(path)
    }

    /// The size of a datum in bytes, as [`bytes`](Self::bytes) says (0 without).
    pub fn size(&self, datum: &D) -> usize {
        self.bytes.as_ref().and_then(|g| g.get(datum)).map_or(0, <[u8]>::len)
    }
}

impl<D: Json> Access<D> {
    /// Field paths in JSON data: `a.b.0` or the JSON pointer `/a/b/0`.
    pub fn json() -> Self {
        Access::new(Getter::path, |p| {
            let path = Path::parse(p);
            Setter::new(p, move |mut d: D, v: Option<Value>| {
                match v {
                    Some(v) => d.json_put(&path, v),
                    None => {
                        d.json_remove(&path);
                    }
                }
                d
            })
        })
        .text(Getter::path_str)
    }
}

impl Access<Event> {
    /// Field paths in an event's `data`; its size is that of its `raw` bytes.
    pub fn event() -> Self {
        Access::json().bytes(Getter::<Event, [u8]>::raw())
    }
}

/// Refuses a field path that names no field; the error names `key`.
pub fn check_path(key: &str, path: &str) -> Result<(), Error> {
    if path.is_empty() || path == "/" || (!path.starts_with('/') && path.split('.').any(str::is_empty)) {
        return Err(Error::setting(
            key,
            format!("`{path}` does not name a field (write a.b or /a/b)"),
        ));
    }
    Ok(())
}

/// A few fields of a datum rendered as one string, to key a map: each
/// value's JSON text (a missing field as nothing), one per line; JSON text
/// has no raw newline, so two keys are equal only if every value is.
pub struct FieldKey<D> {
    paths: Vec<String>,
    getters: Vec<Getter<D, Value>>,
}

impl<D> fmt::Debug for FieldKey<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.paths).finish()
    }
}

impl<D> FieldKey<D> {
    /// The key of the fields at `paths` (setting `key` in errors); no
    /// paths make one key for every datum.
    pub fn new(access: &Access<D>, key: &str, paths: &[String]) -> Result<Self, Error> {
        for (i, p) in paths.iter().enumerate() {
            check_path(&format!("{key}[{i}]"), p)?;
        }
        Ok(FieldKey {
            paths: paths.to_vec(),
            getters: paths.iter().map(|p| access.getter(p)).collect(),
        })
    }

    /// Writes the key of `datum` into `out` (cleared first).
    pub fn render(&self, datum: &D, out: &mut String) {
        out.clear();
        for (i, g) in self.getters.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if let Some(v) = g.get(datum) {
                let _ = write!(out, "{v}");
            }
        }
    }

    /// The values of the fields (`None` where missing).
    pub fn values(&self, datum: &D) -> Vec<Option<Value>> {
        self.getters.iter().map(|g| g.get(datum).cloned()).collect()
    }

    /// The field paths.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// True if the key has no field.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }
}

impl<D> fmt::Display for FieldKey<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.paths.join(", "))
    }
}

/// What kind of JSON value `v` is, for messages.
pub(crate) fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_that_name_no_field_are_refused() {
        for bad in ["", "/", "a..b", ".a", "a."] {
            assert!(check_path("k", bad).is_err(), "{bad:?}");
        }
        for good in ["a", "a.b", "/a/b", "/a//b"] {
            assert!(check_path("k", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_key_tells_a_missing_field_from_null_and_strings_from_numbers() {
        let access = Access::<Value>::json();
        let key = FieldKey::new(&access, "key", &["a".into(), "b".into()]).unwrap();
        let render = |v: Value| {
            let mut s = String::new();
            key.render(&v, &mut s);
            s
        };
        assert_ne!(render(json!({"a": null})), render(json!({})));
        assert_ne!(render(json!({"a": "1"})), render(json!({"a": 1})));
        assert_ne!(render(json!({"a": "x\ny"})), render(json!({"a": "x", "b": "y"})));
        assert_eq!(render(json!({"a": 1, "b": 2, "c": 3})), render(json!({"b": 2, "a": 1})));
    }
}
