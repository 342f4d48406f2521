//! JSON: [`JsonDecode`] parses bytes into a [`serde_json::Value`],
//! [`JsonEncode`] writes a value back out as bytes.
//!
//! Malformed input never stops a train: it is counted, logged at most once
//! per interval (the first at once, in full; then one summary line per
//! interval), and dropped, wrapped or passed on as `on_error` says, or sent
//! to the train's output named by `error_output` (a dead letter):
//!
//! ```toml
//! [trains.parse]
//! cogs = [{ kind = "stdin" }, { kind = "json_decode", error_output = "bad" }, { kind = "stdout" }]
//! [trains.dead]
//! inputs = ["parse.bad"]
//! cogs = [{ kind = "json_encode" }, { kind = "file", path = "bad.jsonl" }]
//! ```
//!
//! What goes to the error output has the shape `on_error = "wrap"` gives:
//! the target holds `{"message": <the input as text>}` and `error_field`
//! (default `"error"` there) the reason, e.g.
//! `{"message": "{oops", "error": "key must be a string at line 1 column 2"}`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::{Getter, Json, Path, Setter};
use tourbillon::{Cog, Context, Event, EventId, Finish, Fired, Next, Output as TrainOutput, Role, TimerId};

use crate::access::kind_name;
use crate::meter::{Meter, Metered};
use crate::step::route::check_output_name;
use crate::{Counter, Error, LogThrottle, Summary, Verdict};

/// What [`JsonDecode`] does with input that is not JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Drop it (reported done, so durable supplies move on). The default,
    /// unless `error_output` names an output to send it to.
    #[default]
    Drop,
    /// Keep it as `{"message": <the input as text>}` (invalid UTF-8 replaced).
    Wrap,
    /// Pass it on with the target untouched.
    Pass,
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Drop => "drop",
            OnError::Wrap => "wrap",
            OnError::Pass => "pass",
        })
    }
}

/// What [`JsonDecode`] does with a value that is not an object (`42`,
/// `null`, `"text"`, `[1, 2]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NonObject {
    /// Store it as it is (the default).
    #[default]
    Keep,
    /// Store `{FIELD: value}`, `FIELD` being `non_object_field`: later cogs
    /// that add fields then keep the value. Counted and logged.
    Wrap,
    /// Treat it as malformed input: `on_error` says what happens to it.
    Error,
}

impl fmt::Display for NonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NonObject::Keep => "keep",
            NonObject::Wrap => "wrap",
            NonObject::Error => "error",
        })
    }
}

/// Settings of [`JsonDecode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonDecodeSettings {
    /// Where the JSON text is, for [`Event`]s: `"raw"`, the raw bytes (the
    /// default), or a field path in `data` whose string value holds it
    /// (`"message"`, `"/payload/body"`).
    pub source: String,
    /// Where the parsed value goes, for [`Event`]s: `"data"`, replacing the
    /// whole data (the default), or a field path in `data` (`"parsed"`;
    /// write `"/data"` for a field named `data`).
    pub target: String,
    /// Input that is not JSON: `"drop"` (default), `"wrap"` or `"pass"`.
    pub on_error: OnError,
    /// A field path in `data` that gets the parse error's text, with
    /// `wrap` and `pass`, and with `error_output` (where it defaults to
    /// `"error"`). Default: none.
    pub error_field: Option<String>,
    /// The name of this train's output (`TRAIN.NAME`) that gets what cannot
    /// be decoded, wrapped as `on_error = "wrap"` does with the reason in
    /// `error_field`, instead of it being dropped (an identifier: letters,
    /// digits, `_`, `-`). Not with `on_error = "wrap"` or `"pass"`.
    /// Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_output: Option<String>,
    /// A value that is not an object: `"keep"` it as it is (default),
    /// `"wrap"` it as `{non_object_field: value}`, or handle it as an
    /// `"error"` (see `on_error`).
    pub non_object: NonObject,
    /// The field a wrapped non-object value goes under. Default `"value"`.
    pub non_object_field: String,
    /// Seconds between log lines about malformed input: the first is logged
    /// at once, those that follow are summarized once per interval; 0 logs
    /// every one. Default 10.
    pub log_interval: u64,
    /// Keep an object read from `raw` into `data` as its bytes and an
    /// index of its fields instead of a tree: cogs read and set top-level
    /// fields in place, `json_encode` writes the bytes read with the edits
    /// spliced in (key order, spacing and number text kept), and a cog
    /// that needs the whole tree builds it. What is accepted and rejected,
    /// and the errors, are serde_json's. `true` only with `source = "raw"`
    /// and `target = "data"`; `false` always builds the tree (serde_json's
    /// map: keys come out sorted). Default: lazy when reading `raw` into
    /// `data`.
    pub lazy: Option<bool>,
}

impl Default for JsonDecodeSettings {
    fn default() -> Self {
        JsonDecodeSettings {
            source: "raw".into(),
            target: "data".into(),
            on_error: OnError::Drop,
            error_field: None,
            error_output: None,
            non_object: NonObject::Keep,
            non_object_field: "value".into(),
            log_interval: 10,
            lazy: None,
        }
    }
}

/// Why input could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The source accessor found nothing (a missing field, not a string).
    #[error("nothing to decode at `{0}`")]
    Missing(String),
    /// The bytes are not one JSON value.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// The value is not an object, and `non_object = "error"`.
    #[error("{0}, not an object")]
    NotObject(&'static str),
}

type Watch<D> = Box<dyn FnMut(&D, &DecodeError)>;
type Place<D> = Box<dyn Fn(&D) -> String>;

/// Timer key: the summary of held-back log lines is due.
const SUMMARY: u64 = 1;

/// Parses the bytes of each datum as one JSON value and stores it.
///
/// For [`Event`] ([`JsonDecode::new`]) the bytes and the value's place come
/// from the settings' `source` and `target`; for other data
/// ([`JsonDecode::with_accessors`]) from accessors. Malformed input: see
/// the [module docs](self) and [`OnError`]. Watch malformed data with
/// [`watch_malformed`](Self::watch_malformed); read the count with
/// [`malformed`](Self::malformed).
pub struct JsonDecode<D = Event> {
    settings: JsonDecodeSettings,
    source: Getter<D, [u8]>,
    target: Setter<D, Value>,
    error_field: Option<Setter<D, Value>>,
    place: Place<D>,
    errors: Option<Watch<D>>,
    /// The error output (`error_output`), looked up at start.
    output: Option<TrainOutput>,
    throttle: LogThrottle,
    summary_timer: Option<TimerId>,
    /// Decodes a datum lazily in place (`lazy`); false leaves it to serde_json.
    index: Option<fn(&mut D) -> bool>,
    malformed: Counter,
    wrapped: Counter,
    to_error_output: Counter,
    wrap_log: LogThrottle,
    meter: Meter,
}

impl<D> fmt::Debug for JsonDecode<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonDecode")
            .field("source", &self.source)
            .field("target", &self.target)
            .field("settings", &self.settings)
            .field("malformed", &self.malformed.get())
            .field("wrapped", &self.wrapped.get())
            .field("to_error_output", &self.to_error_output.get())
            .finish_non_exhaustive()
    }
}

/// The bytes of an [`Event`] that a `source` setting names.
pub(crate) fn event_bytes(source: &str) -> Getter<Event, [u8]> {
    if source == "raw" {
        return Getter::<Event, [u8]>::raw();
    }
    let path = Path::parse(source);
    Getter::new(source, move |e: &Event| {
        e.json_at(&path).and_then(Value::as_str).map(str::as_bytes)
    })
}

/// The value of an [`Event`] that a `source` setting names.
fn event_value(source: &str) -> Getter<Event, Value> {
    if source == "data" {
        return Getter::new("data", |e: &Event| Some(e.value()));
    }
    Getter::path(source)
}

/// The place in an [`Event`] that a `target` setting names.
fn event_value_setter(target: &str) -> Setter<Event, Value> {
    if target == "data" {
        return Setter::new("data", |mut e: Event, v| {
            e.set_data(v);
            e
        });
    }
    Setter::path(target)
}

fn non_empty(key: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::setting(key, "must not be empty"));
    }
    Ok(())
}

impl JsonDecodeSettings {
    fn raw_into_data(&self) -> bool {
        self.source == "raw" && self.target == "data"
    }

    /// Whether objects are kept lazily (see [`lazy`](Self::lazy)).
    pub fn is_lazy(&self) -> bool {
        self.lazy.unwrap_or_else(|| self.raw_into_data())
    }

    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        non_empty("source", &self.source)?;
        non_empty("target", &self.target)?;
        non_empty("non_object_field", &self.non_object_field)?;
        if let Some(field) = &self.error_field {
            non_empty("error_field", field)?;
        }
        if self.lazy == Some(true) && !self.raw_into_data() {
            return Err(Error::setting(
                "lazy",
                format!(
                    "reads `raw` into `data` only, not source = \"{}\", target = \"{}\"",
                    self.source, self.target
                ),
            ));
        }
        if let Some(name) = &self.error_output {
            check_output_name("error_output", name)?;
            if self.on_error != OnError::Drop {
                return Err(Error::setting(
                    "error_output",
                    format!(
                        "sends what cannot be decoded to output `{name}`, but on_error = \"{}\" keeps it on the train: set one of error_output and on_error",
                        self.on_error
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Where the reason goes: `error_field`, or `"error"` with an error output.
    fn reason_field(&self) -> Option<&str> {
        match (&self.error_field, &self.error_output) {
            (Some(f), _) => Some(f),
            (None, Some(_)) => Some("error"),
            (None, None) => None,
        }
    }
}

impl JsonDecode<Event> {
    /// Decodes events as the settings say.
    pub fn new(settings: JsonDecodeSettings) -> Result<Self, Error> {
        settings.validate()?;
        let source = event_bytes(&settings.source);
        let target = event_value_setter(&settings.target);
        let error_field = settings.reason_field().map(Setter::path);
        let lazy = settings.is_lazy();
        let mut decode = JsonDecode::with_accessors(settings, source, target).place(Event::place);
        decode.error_field = error_field;
        if lazy {
            decode.index = Some(Event::index_raw);
        }
        Ok(decode)
    }
}

impl<D: 'static> JsonDecode<D> {
    /// Decodes what `source` reads into what `target` writes; the settings'
    /// `source`, `target` and `error_field` are not used (see
    /// [`error_field`](Self::error_field)); `error_output` is.
    pub fn with_accessors(settings: JsonDecodeSettings, source: Getter<D, [u8]>, target: Setter<D, Value>) -> Self {
        JsonDecode {
            throttle: LogThrottle::new(Duration::from_secs(settings.log_interval)),
            wrap_log: LogThrottle::new(Duration::from_secs(settings.log_interval)),
            settings,
            source,
            target,
            error_field: None,
            place: Box::new(|_| "-".into()),
            errors: None,
            output: None,
            summary_timer: None,
            index: None,
            malformed: Counter::default(),
            wrapped: Counter::default(),
            to_error_output: Counter::default(),
            meter: Meter::default(),
        }
    }

    /// Where the parse error's text goes, with `wrap`, `pass` and an error output.
    pub fn error_field(mut self, field: Setter<D, Value>) -> Self {
        self.error_field = Some(field);
        self
    }

    /// How log lines name where a datum came from (for [`Event`]: `origin:line`).
    pub fn place(mut self, place: impl Fn(&D) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// Shows every malformed datum to `watch`, with why, before it is
    /// dropped, wrapped, passed on or sent to the error output (clone it to
    /// keep it).
    pub fn watch_malformed(mut self, watch: impl FnMut(&D, &DecodeError) + 'static) -> Self {
        self.errors = Some(Box::new(watch));
        self
    }

    /// The count of data sent to the error output, shared.
    pub fn to_error_output(&self) -> Counter {
        self.to_error_output.clone()
    }

    /// The count of malformed data, shared: read it while the train runs.
    pub fn malformed(&self) -> Counter {
        self.malformed.clone()
    }

    /// The count of non-object values wrapped (`non_object = "wrap"`), shared.
    pub fn wrapped(&self) -> Counter {
        self.wrapped.clone()
    }

    /// Wraps a non-object value as `{non_object_field: value}`, counted
    /// and logged (at most one line per interval, the rest summarized).
    fn wrap(&mut self, datum: &D, value: Value, now: std::time::Instant) -> Value {
        self.wrapped.add(1);
        if let Verdict::Log { held } = self.wrap_log.hit(now) {
            if let Some(s) = held {
                log_wrap_summary(s, self.wrap_log.total());
            }
            log::warn!(
                "{}: JSON value is {}, not an object: kept as {{\"{}\": ...}}{}",
                (self.place)(datum),
                kind_name(&value),
                self.settings.non_object_field,
                match self.settings.log_interval {
                    0 => String::new(),
                    n => format!(" (more within {n}s are summarized)"),
                }
            );
        }
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(self.settings.non_object_field.clone(), value);
        Value::Object(map)
    }

    fn log_summary(&self, s: Summary) {
        log::warn!(
            "{} more malformed JSON input(s) in the last {:.1}s ({} in all)",
            s.count,
            s.over.as_secs_f64(),
            self.throttle.total()
        );
    }

    fn reject<N: Next<D> + ?Sized>(&mut self, datum: D, err: DecodeError, ctx: &mut Context<'_, D, N>) {
        self.malformed.add(1);
        self.meter.error();
        match self.throttle.hit(ctx.now()) {
            Verdict::Log { held } => {
                if let Some(s) = held {
                    self.log_summary(s);
                }
                let id = ctx.id_of(&datum);
                tourbillon::event_warn!(
                    IdText(id),
                    "{}: malformed JSON ({err}); {}{}",
                    (self.place)(&datum),
                    match (&self.settings.error_output, self.output, self.settings.on_error) {
                        (Some(name), Some(_), _) => format!("sent to output `{name}`"),
                        (_, _, OnError::Drop) => "dropped".into(),
                        (_, _, OnError::Wrap) => "wrapped".into(),
                        (_, _, OnError::Pass) => "passed on".into(),
                    },
                    match self.settings.log_interval {
                        0 => String::new(),
                        n => format!(" (more within {n}s are summarized)"),
                    }
                );
            }
            Verdict::Hold { due } => {
                if self.summary_timer.is_none() {
                    // Refused only while finishing, and finish logs the summary.
                    self.summary_timer = ctx.at(due, SUMMARY).ok();
                }
            }
        }
        if let Some(output) = &mut self.errors {
            output(&datum, &err);
        }
        let datum = match (self.output, self.settings.on_error) {
            (Some(_), _) | (None, OnError::Wrap) => self.wrap_malformed(datum),
            (None, OnError::Drop) => return self.meter.discard(&datum, ctx),
            (None, OnError::Pass) => datum,
        };
        let datum = match &self.error_field {
            Some(field) => field.set(datum, Value::String(err.to_string())),
            None => datum,
        };
        match self.output {
            Some(out) => {
                self.to_error_output.add(1);
                self.meter.emitted();
                ctx.emit_to(out, datum)
            }
            None => self.meter.emit(datum, ctx),
        }
    }

    /// The datum with `{"message": <its input as text>}` as the target.
    fn wrap_malformed(&self, datum: D) -> D {
        let message = message_of(self.source.get(&datum).unwrap_or_default());
        self.target.set(datum, Value::Object(message))
    }
}

/// `{"message": <input as text>}` (invalid UTF-8 replaced): how what a
/// decoder could not read is kept, here and in [`parse`](crate::step::parse).
pub(crate) fn message_of(input: &[u8]) -> serde_json::Map<String, Value> {
    let mut message = serde_json::Map::with_capacity(1);
    message.insert(
        "message".into(),
        Value::String(String::from_utf8_lossy(input).into_owned()),
    );
    message
}

fn log_wrap_summary(s: Summary, total: u64) {
    log::warn!(
        "{} more non-object JSON value(s) wrapped in the last {:.1}s ({total} in all)",
        s.count,
        s.over.as_secs_f64(),
    );
}

/// An event id for log lines, `-` when the datum has none.
pub(crate) struct IdText(pub(crate) Option<EventId>);

impl fmt::Display for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl<D: 'static> Cog<D> for JsonDecode<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        if let Some(index) = self.index {
            // Bytes that are not one plain object (invalid ones included)
            // go the serde_json way below: same values, errors and counts.
            if index(&mut datum) {
                self.meter.took(self.source.get(&datum).map_or(0, <[u8]>::len));
                return self.meter.emit(datum, ctx);
            }
        }
        let parsed = match self.source.get(&datum) {
            Some(bytes) => {
                self.meter.took(bytes.len());
                serde_json::from_slice::<Value>(bytes).map_err(DecodeError::Json)
            }
            None => {
                self.meter.took(0);
                Err(DecodeError::Missing(self.source.to_string()))
            }
        };
        match parsed {
            Ok(value) if value.is_object() || self.settings.non_object == NonObject::Keep => {
                self.meter.emit(self.target.set(datum, value), ctx)
            }
            Ok(value) if self.settings.non_object == NonObject::Wrap => {
                let value = self.wrap(&datum, value, ctx.now());
                self.meter.emit(self.target.set(datum, value), ctx)
            }
            Ok(value) => self.reject(datum, DecodeError::NotObject(kind_name(&value)), ctx),
            Err(err) => self.reject(datum, err, ctx),
        }
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(name) = &self.settings.error_output {
            self.output = ctx.output(name);
            if self.output.is_none() {
                log::error!(
                    "json_decode: the train has no output `{name}` (its cogs' outputs were not asked): what cannot be decoded is dropped"
                );
            }
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        if key == SUMMARY {
            self.summary_timer = None;
            if let Some(s) = self.throttle.summary(ctx.now()) {
                self.log_summary(s);
            }
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        if let Some(s) = self.throttle.flush(ctx.now()) {
            self.log_summary(s);
        }
        if let Some(s) = self.wrap_log.flush(ctx.now()) {
            log_wrap_summary(s, self.wrap_log.total());
        }
        Finish::Done
    }

    fn role(&self) -> Role {
        Role::Step
    }

    fn outputs(&self) -> Vec<String> {
        self.settings.error_output.iter().cloned().collect()
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "json_decode source={} target={} on_error={}",
            self.source, self.target, self.settings.on_error
        )?;
        if let Some(field) = &self.error_field {
            write!(f, " error_field={field}")?;
        }
        if let Some(name) = &self.settings.error_output {
            write!(f, " error_output={name}")?;
        }
        write!(
            f,
            " non_object={} non_object_field={}",
            self.settings.non_object, self.settings.non_object_field
        )?;
        write!(f, " log_interval={}s", self.settings.log_interval)?;
        if self.settings.is_lazy() {
            f.write_str(" lazy")?;
        }
        Ok(())
    }
}

/// Settings of [`JsonEncode`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonEncodeSettings {
    /// The value to encode, for [`Event`]s: `"data"`, the whole data (the
    /// default), or a field path in `data`. An absent value encodes as `null`.
    /// The bytes always go to the event's `raw`. An event never decoded
    /// (with the default source: its `data` is `null`; `raw` holds the line
    /// read, or the text `null` it was decoded from) keeps its `raw` bytes as they are: the line is already
    /// text, and encoding its empty data would replace it with `null`.
    pub source: String,
}

impl Default for JsonEncodeSettings {
    fn default() -> Self {
        JsonEncodeSettings { source: "data".into() }
    }
}

/// Where [`JsonEncode`] puts the bytes.
enum Output<D> {
    /// A buffer inside the datum, cleared and written again: once it has
    /// grown to fit, encoding allocates nothing.
    InPlace {
        what: String,
        buffer: fn(&mut D) -> &mut Vec<u8>,
    },
    /// A new buffer per datum, sized like the last one, handed to a setter.
    Setter { target: Setter<D, Vec<u8>>, size: usize },
}

/// Writes a JSON value of each datum out as compact JSON bytes.
///
/// For [`Event`] ([`JsonEncode::new`]) the bytes go to `raw`, reusing its
/// buffer: decoding leaves the line there and encoding overwrites it, so a
/// decode-change-encode train allocates no buffer per event.
pub struct JsonEncode<D = Event> {
    source: Getter<D, Value>,
    /// Writes a datum's bytes itself when its data are held lazily.
    splice: Option<fn(&mut D) -> bool>,
    output: Output<D>,
    /// Leave the in-place buffer as it is when the value is null: the datum
    /// was never decoded and the buffer holds what was read (an empty line
    /// stays empty).
    keep_undecoded: bool,
    undecoded: Counter,
    meter: Meter,
}

impl<D> fmt::Debug for JsonEncode<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonEncode")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl JsonEncode<Event> {
    /// Encodes the value the settings name into the event's `raw` bytes.
    pub fn new(settings: JsonEncodeSettings) -> Result<Self, Error> {
        non_empty("source", &settings.source)?;
        let mut encode = JsonEncode::in_place(event_value(&settings.source), "raw", |e: &mut Event| &mut e.raw);
        encode.keep_undecoded = settings.source == "data";
        if settings.source == "data" {
            encode.splice = Some(Event::encode_lazy);
        }
        Ok(encode)
    }
}

impl<D: 'static> JsonEncode<D> {
    /// Encodes what `source` reads into the buffer `buffer` points at,
    /// reusing it (`what` names it in listings).
    pub fn in_place(source: Getter<D, Value>, what: &str, buffer: fn(&mut D) -> &mut Vec<u8>) -> Self {
        JsonEncode {
            source,
            output: Output::InPlace {
                what: what.to_owned(),
                buffer,
            },
            splice: None,
            keep_undecoded: false,
            undecoded: Counter::default(),
            meter: Meter::default(),
        }
    }

    /// Encodes what `source` reads into a new buffer per datum, given to `target`.
    pub fn with_setter(source: Getter<D, Value>, target: Setter<D, Vec<u8>>) -> Self {
        JsonEncode {
            source,
            output: Output::Setter { target, size: 64 },
            splice: None,
            keep_undecoded: false,
            undecoded: Counter::default(),
            meter: Meter::default(),
        }
    }

    /// The count of data written as read because they were never decoded, shared.
    pub fn undecoded(&self) -> Counter {
        self.undecoded.clone()
    }
}

fn encode(value: Option<&Value>, buf: &mut Vec<u8>) {
    // Writing a `Value` into a `Vec` cannot fail: keys are strings, numbers finite.
    let _ = serde_json::to_writer(buf, value.unwrap_or(&Value::Null));
}

impl<D: 'static> Cog<D> for JsonEncode<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, mut datum: D, ctx: &mut Context<'_, D, N>) {
        match &mut self.output {
            Output::InPlace { buffer, .. } => {
                if self.splice.is_some_and(|splice| splice(&mut datum)) {
                    self.meter.took(buffer(&mut datum).len());
                    return self.meter.emit(datum, ctx);
                }
                let value = self.source.get(&datum);
                if self.keep_undecoded && matches!(value, None | Some(Value::Null)) {
                    if self.undecoded.get() == 0 {
                        log::warn!(
                            "json_encode: an event reached it undecoded (no json_decode before it?): its line is \
                             written as it was read, not as null; the count of such events is logged at the end"
                        );
                    }
                    self.undecoded.add(1);
                    self.meter.took(buffer(&mut datum).len());
                    return self.meter.emit(datum, ctx);
                }
                let mut buf = std::mem::take(buffer(&mut datum));
                buf.clear();
                encode(self.source.get(&datum), &mut buf);
                self.meter.took(buf.len());
                *buffer(&mut datum) = buf;
            }
            Output::Setter { target, size } => {
                let mut buf = Vec::with_capacity(*size);
                encode(self.source.get(&datum), &mut buf);
                *size = buf.len();
                self.meter.took(buf.len());
                datum = target.set(datum, buf);
            }
        }
        self.meter.emit(datum, ctx)
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        if self.undecoded.get() > 0 {
            log::warn!(
                "json_encode: {} undecoded event(s) written as they were read",
                self.undecoded.get()
            );
        }
        Finish::Done
    }

    fn role(&self) -> Role {
        Role::Step
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "json_encode source={} target=", self.source)?;
        match &self.output {
            Output::InPlace { what, .. } => f.write_str(what),
            Output::Setter { target, .. } => write!(f, "{target}"),
        }
    }
}

/// In: data decoded, with the bytes of their text; out: data sent on
/// (wrapped ones too); dropped: malformed data dropped by `on_error`;
/// errors: data that could not be decoded.
impl<D: 'static> Metered for JsonDecode<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

/// In and out: data encoded; bytes: the JSON text written (the data in
/// are values, not bytes).
impl<D: 'static> Metered for JsonEncode<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}
