//! The `set` cog: writes fixed values, the host name and the time an event
//! was received into fields, through setters.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::Json;
use tourbillon::{Cog, Context, Event, Getter, Next, Setter};

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
    set: Setter<D, Value>,
}

/// Writes fields into each datum; see [`SetSettings`].
pub struct SetFields<D = Event> {
    settings: SetSettings,
    fixed: Vec<(Field<D>, Value)>,
    host: Option<(Field<D>, Value)>,
    received_at: Option<Field<D>>,
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
        set: Setter::path(path),
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
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl<D: Json> SetFields<D> {
    /// A `set` cog from its settings; errors name the key.
    pub fn new(settings: SetSettings) -> Result<Self, Error> {
        let mut fixed = Vec::new();
        for (path, value) in &settings.fields {
            fixed.push((field(&format!("fields.{path}"), path)?, value.clone()));
        }
        let host = match &settings.host {
            Some(p) => Some((field("host", p)?, Value::String(hostname()))),
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
        })
    }
}

impl<D: Json> Cog<D> for SetFields<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        let overwrite = self.settings.overwrite;
        let put = |d: D, f: &Field<D>, v: Value| {
            if !overwrite && f.get.get(&d).is_some_and(|x| !x.is_null()) {
                d
            } else {
                f.set.set(d, v)
            }
        };
        for (f, v) in &self.fixed {
            datum = put(datum, f, v.clone());
        }
        if let Some((f, v)) = &self.host {
            datum = put(datum, f, v.clone());
        }
        if let Some(f) = &self.received_at {
            datum = put(datum, f, Value::String(rfc3339(SystemTime::now())));
        }
        ctx.emit(datum)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
