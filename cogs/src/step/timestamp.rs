//! The `timestamp` cog: parses a time out of a field and writes it back as
//! RFC 3339 (UTC) or as epoch seconds or milliseconds.
//!
//! Formats are tried in the order given; the [time](crate::time) module
//! lists what each reads (`rfc3339`, `epoch_secs`, `epoch_millis`, … and
//! strftime-like patterns such as Apache's `%d/%b/%Y:%H:%M:%S %z`), and
//! syslog's `rfc3164` (`Nov 30 20:13:01`: no year, it is inferred against
//! the clock). A time without an offset is read in `timezone`:
//!
//! ```toml
//! { kind = "timestamp", field = "timestamp", formats = ["rfc3339", "rfc3164"], timezone = "Europe/Paris" }
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Finish, Getter, Next, Output as TrainOutput, Setter};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::step::route::check_output_name;
use crate::time::{format_of, Format, Time, Zone};
use crate::{Counter, Error, LogThrottle, Summary, Verdict};

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
    /// The zone of times read without an offset (`rfc3164`, patterns
    /// without `%z`): `"UTC"`, an offset (`"+02:00"`) or a named zone of
    /// the system's database (`"Europe/Paris"`). Default: none, UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// A field that holds no readable time: `"pass"` (default) or `"drop"`.
    pub on_invalid: OnInvalid,
    /// The name of this train's output (`TRAIN.NAME`) that gets a datum
    /// whose field holds no readable time, with the reason in
    /// `error_field`, instead of it being passed on (an identifier: letters,
    /// digits, `_`, `-`). Not with `on_invalid = "drop"`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_output: Option<String>,
    /// With `error_output`: the field path that gets the reason. Default
    /// `"error"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_field: Option<String>,
}

impl Default for TimestampSettings {
    fn default() -> Self {
        TimestampSettings {
            field: "timestamp".into(),
            target: None,
            formats: vec!["rfc3339".into(), "epoch_secs".into()],
            output: Output::Rfc3339,
            timezone: None,
            on_invalid: OnInvalid::Pass,
            error_output: None,
            error_field: None,
        }
    }
}

impl TimestampSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<(Vec<Format>, Zone), Error> {
        let zone = match &self.timezone {
            Some(name) => Zone::named(name).map_err(|m| Error::setting("timezone", m))?,
            None => Zone::default(),
        };
        check_path("field", &self.field)?;
        if let Some(t) = &self.target {
            check_path("target", t)?;
        }
        if let Some(f) = &self.error_field {
            check_path("error_field", f)?;
        }
        if let Some(name) = &self.error_output {
            check_output_name("error_output", name)?;
            if self.on_invalid == OnInvalid::Drop {
                return Err(Error::setting(
                    "error_output",
                    format!(
                        "sends what holds no readable time to output `{name}`, but on_invalid = \"drop\" drops it: set one of error_output and on_invalid"
                    ),
                ));
            }
        } else if self.error_field.is_some() {
            return Err(Error::setting("error_field", "only with error_output"));
        }
        if self.formats.is_empty() {
            return Err(Error::setting("formats", "at least one format"));
        }
        self.formats
            .iter()
            .enumerate()
            .map(|(i, f)| format_of(f).map_err(|m| Error::setting(&format!("formats[{i}]"), m)))
            .collect::<Result<_, _>>()
            .map(|formats| (formats, zone))
    }
}

/// Parses the time in a field; see the [module docs](self) and [`TimestampSettings`].
pub struct Timestamp<D = Event> {
    settings: TimestampSettings,
    formats: Vec<Format>,
    zone: Zone,
    field: Getter<D, Value>,
    target: Setter<D, Option<Value>>,
    access: Access<D>,
    meter: Meter,
    /// The error output and the reason's field, looked up at start.
    output: Option<TrainOutput>,
    error_field: Setter<D, Option<Value>>,
    to_error_output: Counter,
    log: LogThrottle,
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
        let (formats, zone) = settings.compile()?;
        let field = access.getter(&settings.field);
        let target = access.writer(settings.target.as_deref().unwrap_or(&settings.field));
        let error_field = access.writer(settings.error_field.as_deref().unwrap_or("error"));
        Ok(Timestamp {
            settings,
            formats,
            zone,
            field,
            target,
            access,
            meter: Meter::default(),
            output: None,
            error_field,
            to_error_output: Counter::default(),
            log: LogThrottle::new(Duration::from_secs(10)),
        })
    }

    /// The count of data sent to the error output, shared.
    pub fn to_error_output(&self) -> Counter {
        self.to_error_output.clone()
    }

    /// The time in a value, by the first format that reads it.
    pub fn read(&self, v: &Value) -> Option<Time> {
        self.formats
            .iter()
            .find_map(|f| f.parse(v, &self.zone, || Time::from_system(SystemTime::now())))
    }

    fn render(&self, t: Time) -> Value {
        match self.settings.output {
            Output::Rfc3339 => Value::String(t.rfc3339_auto()),
            Output::EpochSecs => Value::from(t.secs),
            Output::EpochMillis => Value::from(t.as_millis()),
        }
    }
}

impl<D: 'static> Timestamp<D> {
    /// Sends `datum`, whose field holds no readable time, to the error
    /// output with the reason; counted and logged (at most one line per
    /// interval, the rest summarized).
    fn send_unreadable<N: Next<D> + ?Sized>(&mut self, out: TrainOutput, datum: D, ctx: &mut Context<'_, D, N>) {
        let reason = format!(
            "`{}` holds no time in the formats {}",
            self.settings.field,
            self.settings.formats.join(", ")
        );
        if let Verdict::Log { held } = self.log.hit(ctx.now()) {
            if let Some(s) = held {
                self.log_summary(s);
            }
            let name = self.settings.error_output.as_deref().unwrap_or_default();
            match ctx.id_of(&datum) {
                Some(id) => log::warn!("{id}: {reason}: sent to output `{name}` (more within 10s are summarized)"),
                None => log::warn!("{reason}: sent to output `{name}` (more within 10s are summarized)"),
            }
        }
        self.to_error_output.add(1);
        self.meter.emitted();
        let datum = self.error_field.set(datum, Some(Value::String(reason)));
        ctx.emit_to(out, datum)
    }

    fn log_summary(&self, s: Summary) {
        log::warn!(
            "timestamp: {} more data with no readable time sent to the error output in the last {:.1}s ({} in all)",
            s.count,
            s.over.as_secs_f64(),
            self.log.total()
        );
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
                if let Some(out) = self.output {
                    return self.send_unreadable(out, datum, ctx);
                }
                datum
            }
        };
        self.meter.emit(datum, ctx)
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(name) = &self.settings.error_output {
            self.output = ctx.output(name);
            if self.output.is_none() {
                log::error!(
                    "timestamp: the train has no output `{name}` (its cogs' outputs were not asked): what holds no readable time is passed on"
                );
            }
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        if let Some(s) = self.log.flush(ctx.now()) {
            self.log_summary(s);
        }
        Finish::Done
    }

    fn outputs(&self) -> Vec<String> {
        self.settings.error_output.iter().cloned().collect()
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
        if let Some(zone) = &self.settings.timezone {
            write!(f, " timezone={zone}")?;
        }
        if self.settings.on_invalid == OnInvalid::Drop {
            f.write_str(" on_invalid=drop")?;
        }
        if let Some(name) = &self.settings.error_output {
            write!(
                f,
                " error_output={name} error_field={}",
                self.settings.error_field.as_deref().unwrap_or("error")
            )?;
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
