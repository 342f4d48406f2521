//! The `increment` cog: adds `by` to the integer in a field.
//!
//! A missing or `null` field (or one under a `null` object: a deleted
//! key's value) counts as `start`, so the first increment writes
//! `start + by`. A field that holds anything but an integer (a float, a
//! string, an object), one under a value that is not an object, or a sum
//! out of the 64-bit range is never overwritten: the datum goes to
//! `error_output` with why in `error_field`, or, without one, is dropped;
//! counted as an error and logged either way.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Getter, Next, Output, Setter};

use crate::access::{check_path, kind_name, Access};
use crate::meter::{Meter, Metered};
use crate::{Error, LogThrottle, Summary, Verdict};

/// Settings of [`Increment`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncrementSettings {
    /// The field holding the integer (`value.count`, `/a/b`). Required.
    pub field: String,
    /// What is added; may be negative, not 0. Default 1.
    pub by: i64,
    /// What a missing or `null` field counts as. Default 0.
    pub start: i64,
    /// A named output that takes the data that cannot be incremented, with
    /// why in `error_field`. Default none: they are dropped.
    pub error_output: Option<String>,
    /// Where the reason goes on the data sent to `error_output`. Default `"error"`.
    pub error_field: String,
}

impl Default for IncrementSettings {
    fn default() -> Self {
        IncrementSettings {
            field: String::new(),
            by: 1,
            start: 0,
            error_output: None,
            error_field: "error".into(),
        }
    }
}

impl IncrementSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.field.is_empty() {
            return Err(Error::setting("field", "required: the field holding the integer"));
        }
        check_path("field", &self.field)?;
        if self.by == 0 {
            return Err(Error::setting("by", "must not be 0"));
        }
        check_path("error_field", &self.error_field)?;
        if let Some(name) = &self.error_output {
            crate::step::route::check_output_name("error_output", name)?;
        }
        Ok(())
    }
}

/// The paths of the objects a field path goes through: `a` and `a.b` for
/// `a.b.c`, `/a` and `/a/b` for `/a/b/c`.
fn parents(path: &str) -> Vec<String> {
    let (sep, body, lead) = match path.strip_prefix('/') {
        Some(rest) => ('/', rest, "/"),
        None => ('.', path, ""),
    };
    let parts: Vec<&str> = body.split(sep).collect();
    (1..parts.len())
        .map(|n| format!("{lead}{}", parts[..n].join(&sep.to_string())))
        .collect()
}

/// Adds to an integer field; see the [module docs](self).
pub struct Increment<D = Event> {
    settings: IncrementSettings,
    get: Getter<D, Value>,
    set: Setter<D, Option<Value>>,
    parents: Vec<(String, Getter<D, Value>)>,
    error: Setter<D, Option<Value>>,
    output: Option<Output>,
    access: Access<D>,
    log: LogThrottle,
    meter: Meter,
}

impl<D> fmt::Debug for Increment<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Increment")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Increment<Event> {
    /// An `increment` cog for events.
    pub fn new(settings: IncrementSettings) -> Result<Self, Error> {
        Increment::with_access(settings, Access::event())
    }
}

impl<D: 'static> Increment<D> {
    /// An `increment` cog reaching fields through `access`.
    pub fn with_access(settings: IncrementSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(Increment {
            get: access.getter(&settings.field),
            set: access.writer(&settings.field),
            parents: parents(&settings.field)
                .into_iter()
                .map(|p| {
                    let g = access.getter(&p);
                    (p, g)
                })
                .collect(),
            error: access.writer(&settings.error_field),
            output: None,
            log: LogThrottle::new(Duration::from_secs(10)),
            meter: Meter::default(),
            access,
            settings,
        })
    }

    /// The new value of the field, or why there is none.
    fn next(&self, datum: &D) -> Result<i64, String> {
        let field = &self.settings.field;
        let now = match self.get.get(datum) {
            None | Some(Value::Null) => {
                // Setting would replace a non-object on the way by an object.
                for (path, g) in &self.parents {
                    match g.get(datum) {
                        None | Some(Value::Null) => break,
                        Some(Value::Object(_)) => {}
                        Some(v) => return Err(format!("{path} is {}, not an object", kind_name(v))),
                    }
                }
                self.settings.start
            }
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => i,
                None => return Err(format!("{field} is {n}, not a 64-bit integer")),
            },
            Some(v) => return Err(format!("{field} is {}, not an integer", kind_name(v))),
        };
        now.checked_add(self.settings.by)
            .ok_or_else(|| format!("{field} is {now}: adding {} leaves the 64-bit range", self.settings.by))
    }
}

/// In and out: data; errors: data that could not be incremented; dropped:
/// those of them not sent to an error output.
impl<D: 'static> Metered for Increment<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Increment<D> {
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(name) = &self.settings.error_output {
            self.output = ctx.output(name);
        }
    }

    fn outputs(&self) -> Vec<String> {
        self.settings.error_output.iter().cloned().collect()
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        match self.next(&datum) {
            Ok(v) => {
                let d = self.set.set(datum, Some(Value::from(v)));
                self.meter.emit(d, ctx)
            }
            Err(why) => {
                self.meter.error();
                let fate = match self.output {
                    Some(out) => {
                        let d = self.error.set(datum, Some(Value::String(why.clone())));
                        ctx.emit_to(out, d);
                        "sent to the error output"
                    }
                    None => {
                        self.meter.discard(&datum, ctx);
                        "dropped"
                    }
                };
                if let Verdict::Log { held } = self.log.hit(ctx.now()) {
                    log::warn!("increment: {why}: {fate}{}", Summary::note(held));
                }
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(f, "increment field={} by={} start={}", s.field, s.by, s.start)?;
        if let Some(o) = &s.error_output {
            write!(f, " error_output={o}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_of_dotted_and_slashed_paths() {
        assert_eq!(parents("a.b.c"), ["a", "a.b"]);
        assert_eq!(parents("/a/b/c"), ["/a", "/a/b"]);
        assert!(parents("count").is_empty());
    }
}
