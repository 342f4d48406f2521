//! Field cogs: `set` writes fixed values, the host name and the time an
//! event was received into fields; `rename` moves fields; `remove` deletes
//! them; all through [accessors](crate::access).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::{Encoded, Json, Path};
use tourbillon::{Cog, Context, Event, Getter, Next, Setter};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::Error;

/// Settings of [`SetFields`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SetSettings {
    /// Field paths and the values written there (`{ pipeline = "web" }`).
    /// Default none.
    pub fields: BTreeMap<String, Value>,
    /// A field path that gets this machine's host name. Default none.
    pub host: Option<String>,
    /// A field path that gets the time the event went through this cog, as
    /// RFC 3339 UTC with milliseconds (`2026-11-23T14:05:09.120Z`). Default none.
    pub received_at: Option<String>,
    /// Replace fields that already have a value. Default true; false keeps
    /// what the event has.
    pub overwrite: bool,
}

impl Default for SetSettings {
    fn default() -> Self {
        SetSettings {
            fields: BTreeMap::new(),
            host: None,
            received_at: None,
            overwrite: true,
        }
    }
}

struct Field<D> {
    get: Getter<D, Value>,
    /// Values are shared with the data (see `Json::json_put_shared`).
    set: Setter<D, Arc<Encoded>>,
    path: Path,
}

/// The field a value goes under when `set` needs an object where it is.
pub const KEPT_UNDER: &str = "value";

/// Writes fields into each datum; see [`SetSettings`].
///
/// Where a field path needs an object and the datum has another value (the
/// data is `42`, or `a` is `"x"` when setting `a.b`), that value is not
/// replaced: it is kept as `{"value": it}` and the field is added beside
/// it, counted ([`kept`](Self::kept)) and logged (one line per 10 s, the
/// rest summarized).
pub struct SetFields<D = Event> {
    settings: SetSettings,
    fixed: Vec<(Field<D>, Arc<Encoded>)>,
    host: Option<(Field<D>, Arc<Encoded>)>,
    received_at: Option<Field<D>>,
    place: Box<dyn Fn(&D) -> String>,
    kept: crate::Counter,
    kept_log: crate::LogThrottle,
    meter: Meter,
}

impl<D> fmt::Debug for SetFields<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetFields").field("settings", &self.settings).finish()
    }
}

fn field<D: Json>(key: &str, path: &str) -> Result<Field<D>, Error> {
    if path.is_empty() || path == "/" {
        return Err(Error::setting(key, "a field path must name a field"));
    }
    Ok(Field {
        get: Getter::path(path),
        set: Setter::path_shared(path),
        path: Path::parse(path),
    })
}

/// This machine's host name (`gethostname`), or `"localhost"` if it has none.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc != 0 || end == 0 {
        return "localhost".into();
    }
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Formats a time as RFC 3339 UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    crate::time::Time::from_system(t).rfc3339(3)
}

impl<D: Json> SetFields<D> {
    /// A `set` cog from its settings; errors name the key.
    pub fn new(settings: SetSettings) -> Result<Self, Error> {
        let mut fixed = Vec::new();
        for (path, value) in &settings.fields {
            fixed.push((
                field(&format!("fields.{path}"), path)?,
                Arc::new(Encoded::new(value.clone())),
            ));
        }
        let host = match &settings.host {
            Some(p) => Some((field("host", p)?, Arc::new(Encoded::new(Value::String(hostname()))))),
            None => None,
        };
        let received_at = settings
            .received_at
            .as_deref()
            .map(|p| field("received_at", p))
            .transpose()?;
        Ok(SetFields {
            settings,
            fixed,
            host,
            received_at,
            place: Box::new(|_| "-".into()),
            kept: crate::Counter::default(),
            kept_log: crate::LogThrottle::new(std::time::Duration::from_secs(10)),
            meter: Meter::default(),
        })
    }

    /// How log lines name where a datum came from (for [`Event`]: `origin:line`).
    pub fn place(mut self, place: impl Fn(&D) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// The count of values kept under `value` to make room for a field, shared.
    pub fn kept(&self) -> crate::Counter {
        self.kept.clone()
    }
}

/// Wraps, as `{"value": it}`, each value in the way of `path` that is
/// neither an object nor null (nor a list that the next part indexes), so
/// setting the path replaces nothing; says what the first one was and where.
fn make_room(mut v: &mut Value, path: &Path) -> Option<String> {
    let mut found = None;
    for (depth, part) in path.parts().iter().enumerate() {
        let index = match &*v {
            Value::Array(items) => part.parse::<usize>().ok().filter(|&i| i < items.len()),
            _ => None,
        };
        if index.is_none() && !v.is_object() && !v.is_null() {
            let old = std::mem::take(v);
            if found.is_none() {
                let what = match depth {
                    0 => "the data".to_owned(),
                    n => format!("`{}`", path.parts()[..n].join(".")),
                };
                found = Some(format!("{what} was {}", crate::access::kind_name(&old)));
            }
            *v = Value::Object(serde_json::Map::from_iter([(KEPT_UNDER.to_owned(), old)]));
        }
        v = match (v, index) {
            (Value::Array(items), Some(i)) => &mut items[i],
            (Value::Object(map), _) => match map.get_mut(part) {
                Some(next) => next,
                None => return found,
            },
            // Null, or a missing key: the setter makes the objects on the way.
            _ => return found,
        };
    }
    found
}

/// In and out: data set (no bytes: its data are values).
impl<D: 'static> Metered for SetFields<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: Json> Cog<D> for SetFields<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        let overwrite = self.settings.overwrite;
        let now = ctx.now();
        // Its data are values: no bytes to count.
        self.meter.took(0);
        let SetFields {
            fixed,
            host,
            received_at,
            place,
            kept,
            kept_log,
            ..
        } = self;
        let mut put = |mut d: D, f: &Field<D>, v: &Arc<Encoded>| {
            if !overwrite && f.get.get(&d).is_some_and(|x| !x.is_null()) {
                return d;
            }
            // A top-level field of an object needs no room made: asking
            // would build the whole tree of data held lazily.
            let room = match f.path.parts().len() == 1 && d.json_is_object() {
                true => None,
                false => make_room(d.json_mut(), &f.path),
            };
            if let Some(what) = room {
                kept.add(1);
                if let crate::Verdict::Log { held } = kept_log.hit(now) {
                    let more = held.map_or(String::new(), |s| {
                        format!(" ({} more in the last {:.1}s)", s.count, s.over.as_secs_f64())
                    });
                    log::warn!(
                        "{}: set {}: {what}, not an object: kept under `{KEPT_UNDER}`{more}",
                        place(&d),
                        f.path
                    );
                }
            }
            f.set.set(d, Arc::clone(v))
        };
        for (f, v) in fixed.iter() {
            datum = put(datum, f, v);
        }
        if let Some((f, v)) = host {
            datum = put(datum, f, v);
        }
        if let Some(f) = received_at {
            // The wall clock is read only here: otherwise a system call per
            // datum, for a field most configurations do not set.
            let wall = ctx.wall_now();
            datum = put(datum, f, &Arc::new(Encoded::new(Value::String(rfc3339(wall)))));
        }
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("set")?;
        for (k, v) in &self.settings.fields {
            write!(f, " {k}={v}")?;
        }
        if let Some(h) = &self.settings.host {
            write!(f, " {h}=<host>")?;
        }
        if let Some(t) = &self.settings.received_at {
            write!(f, " {t}=<received_at>")?;
        }
        Ok(())
    }
}

/// Settings of [`Rename`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenameSettings {
    /// Field paths and the paths they move to (`{ msg = "message", "a.b" =
    /// "c" }`), applied in the order of the old paths. A field that is
    /// missing is left alone. Default none.
    pub fields: BTreeMap<String, String>,
    /// Replace a field already at the new path. Default true; false leaves
    /// both fields as they are.
    pub overwrite: bool,
}

impl Default for RenameSettings {
    fn default() -> Self {
        RenameSettings {
            fields: BTreeMap::new(),
            overwrite: true,
        }
    }
}

impl RenameSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.fields.is_empty() {
            return Err(Error::setting("fields", "required: { old = \"new\" } pairs"));
        }
        for (from, to) in &self.fields {
            check_path("fields", from)?;
            check_path(&format!("fields.{from}"), to)?;
            if from == to {
                return Err(Error::setting(&format!("fields.{from}"), "renames the field to itself"));
            }
        }
        Ok(())
    }
}

struct Move<D> {
    from: Getter<D, Value>,
    clear: Setter<D, Option<Value>>,
    to: Getter<D, Value>,
    put: Setter<D, Option<Value>>,
}

/// Moves fields to new paths; see [`RenameSettings`].
pub struct Rename<D = Event> {
    settings: RenameSettings,
    moves: Vec<Move<D>>,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Rename<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rename")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Rename<Event> {
    /// A `rename` cog for events.
    pub fn new(settings: RenameSettings) -> Result<Self, Error> {
        Rename::with_access(settings, Access::event())
    }
}

impl<D: 'static> Rename<D> {
    /// A `rename` cog reaching fields through `access`.
    pub fn with_access(settings: RenameSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        let moves = settings
            .fields
            .iter()
            .map(|(from, to)| Move {
                from: access.getter(from),
                clear: access.writer(from),
                to: access.getter(to),
                put: access.writer(to),
            })
            .collect();
        Ok(Rename {
            settings,
            moves,
            access,
            meter: Meter::default(),
        })
    }
}

impl<D: 'static> Metered for Rename<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Rename<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        for m in &self.moves {
            let Some(v) = m.from.get(&datum).cloned() else { continue };
            if !self.settings.overwrite && m.to.get(&datum).is_some() {
                continue;
            }
            datum = m.clear.set(datum, None);
            datum = m.put.set(datum, Some(v));
        }
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rename")?;
        for (from, to) in &self.settings.fields {
            write!(f, " {from}->{to}")?;
        }
        if !self.settings.overwrite {
            f.write_str(" overwrite=false")?;
        }
        Ok(())
    }
}

/// Settings of [`Remove`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoveSettings {
    /// Field paths to remove (`["password", "headers.cookie"]`). Default none.
    pub fields: Vec<String>,
}

impl RemoveSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.fields.is_empty() {
            return Err(Error::setting("fields", "required: the field paths to remove"));
        }
        for (i, p) in self.fields.iter().enumerate() {
            check_path(&format!("fields[{i}]"), p)?;
        }
        Ok(())
    }
}

/// Removes fields; see [`RemoveSettings`].
pub struct Remove<D = Event> {
    settings: RemoveSettings,
    clear: Vec<Setter<D, Option<Value>>>,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Remove<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remove")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Remove<Event> {
    /// A `remove` cog for events.
    pub fn new(settings: RemoveSettings) -> Result<Self, Error> {
        Remove::with_access(settings, Access::event())
    }
}

impl<D: 'static> Remove<D> {
    /// A `remove` cog reaching fields through `access`.
    pub fn with_access(settings: RemoveSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        let clear = settings.fields.iter().map(|p| access.writer(p)).collect();
        Ok(Remove {
            settings,
            clear,
            access,
            meter: Meter::default(),
        })
    }
}

impl<D: 'static> Metered for Remove<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Remove<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        for c in &self.clear {
            datum = c.set(datum, None);
        }
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "remove {}", self.settings.fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_442_709_120);
        assert_eq!(rfc3339(t), "2026-11-23T14:05:09.120Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn empty_paths_are_refused_with_their_key() {
        let s = SetSettings {
            host: Some(String::new()),
            ..SetSettings::default()
        };
        let err = SetFields::<Event>::new(s).unwrap_err();
        assert_eq!(err.to_string(), "host: a field path must name a field");
    }
}
