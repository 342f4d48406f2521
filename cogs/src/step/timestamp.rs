//! The `timestamp` cog: parses a time out of a field and writes it back as
//! RFC 3339 (UTC) or as epoch seconds or milliseconds.
//!
//! Formats are tried in the order given; the [time](crate::time) module
//! lists what each reads (`rfc3339`, `epoch_secs`, `epoch_millis`, … and
//! strftime-like patterns such as Apache's `%d/%b/%Y:%H:%M:%S %z`).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Getter, Next, Setter};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::time::{format_of, Format, Time};
use crate::Error;

/// How [`Timestamp`] writes the time it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Output {
    /// RFC 3339 in UTC, with the fraction digits the time needs (none, 3,
    /// 6 or 9): `2024-03-01T11:00:00.250Z`. The default.
    #[default]
    Rfc3339,
    /// Whole seconds since the epoch (a JSON integer, rounded down).
    EpochSecs,
    /// Whole milliseconds since the epoch (a JSON integer, rounded down).
    EpochMillis,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Output::Rfc3339 => "rfc3339",
            Output::EpochSecs => "epoch_secs",
            Output::EpochMillis => "epoch_millis",
        })
    }
}

/// What [`Timestamp`] does with a datum whose field holds no time it can
/// read (a missing field is left alone and not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInvalid {
    /// Pass it on untouched (counted as an error). The default.
    #[default]
    Pass,
    /// Drop it (counted as an error and dropped; reported done).
    Drop,
}

/// Settings of [`Timestamp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimestampSettings {
    /// The field path to read. Default `"timestamp"`.
    pub field: String,
    /// The field path to write; default none: `field` itself.
    pub target: Option<String>,
    /// Formats to try in order (see the [module docs](self)). Default
    /// `["rfc3339", "epoch_secs"]`.
    pub formats: Vec<String>,
    /// `"rfc3339"` (default), `"epoch_secs"` or `"epoch_millis"`.
    pub output: Output,
    /// A field that holds no readable time: `"pass"` (default) or `"drop"`.
    pub on_invalid: OnInvalid,
}

impl Default for TimestampSettings {
    fn default() -> Self {
        TimestampSettings {
            field: "timestamp".into(),
            target: None,
            formats: vec!["rfc3339".into(), "epoch_secs".into()],
            output: Output::Rfc3339,
            on_invalid: OnInvalid::Pass,
        }
    }
}

impl TimestampSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<Vec<Format>, Error> {
        check_path("field", &self.field)?;
        if let Some(t) = &self.target {
            check_path("target", t)?;
        }
        if self.formats.is_empty() {
            return Err(Error::setting("formats", "at least one format"));
        }
        self.formats
            .iter()
            .enumerate()
            .map(|(i, f)| format_of(f).map_err(|m| Error::setting(&format!("formats[{i}]"), m)))
            .collect()
    }
}

/// Parses the time in a field; see the [module docs](self) and [`TimestampSettings`].
pub struct Timestamp<D = Event> {
    settings: TimestampSettings,
    formats: Vec<Format>,
    field: Getter<D, Value>,
    target: Setter<D, Option<Value>>,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Timestamp<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timestamp")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Timestamp<Event> {
    /// A `timestamp` cog for events.
    pub fn new(settings: TimestampSettings) -> Result<Self, Error> {
        Timestamp::with_access(settings, Access::event())
    }
}

impl<D: 'static> Timestamp<D> {
    /// A `timestamp` cog reaching fields through `access`.
    pub fn with_access(settings: TimestampSettings, access: Access<D>) -> Result<Self, Error> {
        let formats = settings.compile()?;
        let field = access.getter(&settings.field);
        let target = access.writer(settings.target.as_deref().unwrap_or(&settings.field));
        Ok(Timestamp {
            settings,
            formats,
            field,
            target,
            access,
            meter: Meter::default(),
        })
    }

    /// The time in a value, by the first format that reads it.
    pub fn read(&self, v: &Value) -> Option<Time> {
        self.formats.iter().find_map(|f| f.parse(v))
    }

    fn render(&self, t: Time) -> Value {
        match self.settings.output {
            Output::Rfc3339 => Value::String(t.rfc3339_auto()),
            Output::EpochSecs => Value::from(t.secs),
            Output::EpochMillis => Value::from(t.as_millis()),
        }
    }
}

impl<D: 'static> Metered for Timestamp<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Timestamp<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        let read = self.field.get(&datum).map(|v| self.read(v));
        let datum = match read {
            None => datum,
            Some(Some(t)) => {
                let v = self.render(t);
                self.target.set(datum, Some(v))
            }
            Some(None) => {
                self.meter.error();
                if self.settings.on_invalid == OnInvalid::Drop {
                    return self.meter.discard(&datum, ctx);
                }
                datum
            }
        };
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timestamp {} [{}] -> {} as {}",
            self.settings.field,
            self.settings.formats.join(", "),
            self.settings.target.as_deref().unwrap_or(&self.settings.field),
            self.settings.output
        )?;
        if self.settings.on_invalid == OnInvalid::Drop {
            f.write_str(" on_invalid=drop")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_patterns_are_refused_with_their_position() {
        let s = TimestampSettings {
            formats: vec!["rfc3339".into(), "%Y-%Q".into()],
            ..TimestampSettings::default()
        };
        let e = s.validate().unwrap_err().to_string();
        assert!(e.starts_with("formats[1]: unknown directive `%Q`"), "{e}");
        let s = TimestampSettings {
            formats: vec!["%H:%M".into()],
            ..TimestampSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("needs a year"));
    }
}
