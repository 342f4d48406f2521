//! [`Multiline`]: joins the lines of one record (a stack trace, a
//! traceback, a message continued on indented lines) into one datum.
//!
//! ```toml
//! [trains.app]
//! cogs = [
//!     { kind = "tail", include = ["/var/log/app/*.log"], checkpoint_dir = "/var/lib/tourbillon" },
//!     { kind = "multiline", preset = "java" },
//!     { kind = "file", path = "/var/log/joined.log" },
//! ]
//! ```
//!
//! # Which lines join
//!
//! Lines are read from `source` (the raw bytes, by default, or a string
//! field) and kept apart by `by`: the lines of two files (two peers, two
//! values of a field) never join. Within one of them, each line either
//! begins a new record or continues the one pending:
//!
//! - `start` alone: a line that matches begins a record; any other line
//!   continues it.
//! - `continue` alone: a line that matches continues the pending record;
//!   any other line begins one.
//! - Both: a line continues the pending record when it matches `continue`
//!   and not `start`; any other line begins one.
//!
//! With `negate = true`, a line "matches" a pattern when the pattern does
//! *not* find it (both patterns). A line that would continue with no
//! record pending (the first line read, or after a timeout) begins one.
//!
//! The patterns are [`regex`](https://docs.rs/regex) patterns over the
//! line's bytes (a line need not be UTF-8); anchor them with `^`.
//!
//! # Presets
//!
//! `preset = "java"`: `continue` is the lines of a JVM stack trace:
//! indented `at …` frames, `... N more` and `... N common frames omitted`,
//! `Caused by:` and `Suppressed:`, and a line that begins with an
//! exception's qualified class name (`java.lang.IllegalStateException: …`),
//! so a log line followed by its trace is one record.
//!
//! `preset = "python"`: `continue` is the lines of a traceback:
//! `Traceback (most recent call last):`, indented lines (frames and code),
//! the chaining lines (`During handling of the above exception…`, `The
//! above exception was the direct cause…`) and empty lines (which chained
//! tracebacks put between their parts; an empty line after any record
//! joins it too); and the exception line, which no pattern can tell from a
//! log line by itself: in a record with a traceback, right after an
//! indented line, a line that begins with a (dotted) name followed by `:`
//! or the end of the line (`KeyError: 'x'`, `app.errors.Boom: custom`,
//! `KeyboardInterrupt`).
//!
//! A preset cannot be given with `start` or `continue`; write the patterns
//! out instead (the presets' patterns are [`JAVA_CONTINUE`] and
//! [`PYTHON_CONTINUE`]; the exception line of Python is the preset's own).
//!
//! # When a record goes out
//!
//! When a line begins the next record of its file; when it has been
//! pending for `timeout_ms` with no new line; at finish; and when it has
//! `max_lines` lines or one more line would make it longer than
//! `max_bytes` bytes. That last is a *cut*: the record goes out as it is,
//! the line goes on as the beginning of a new one, and the cut is counted
//! (`cut`) and logged (at most every 10 s) with the record's file and
//! line. Nothing is dropped.
//!
//! A record of several lines is its first datum (its other fields, its
//! place, its id) with the lines joined by `separator` (default `"\n"`) in
//! `source`. The counts: `joined` (records of two lines or more),
//! `absorbed` (lines that went into another line's record), `cut`,
//! `timed_out` (records sent by the timeout).
//!
//! # Acknowledgements
//!
//! A line absorbed into a record is announced as renamed to the record's
//! first line (`event_rename(line, first)`), so a durable supply (the tail)
//! acks it only when the record is done: a checkpoint never falls inside a
//! record, and a `kill -9` while a record is pending reads the whole record
//! again on restart.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::{Json, Path};
use tourbillon::{Cog, Context, Event, EventId, Finish, Fired, Getter, Next, Setter};

use crate::access::check_path;
use crate::meter::{Meter, Metered};
use crate::step::json::event_bytes;
use crate::{Error, LogThrottle, Verdict};

/// `continue` of `preset = "java"`: the lines of a JVM stack trace.
pub const JAVA_CONTINUE: &str = r"^(?:[ \t]+at[ \t]|[ \t]+\.\.\. \d+ (?:more|common frames omitted)|[ \t]*Caused by:|[ \t]*Suppressed:|(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?::|$))";

/// `continue` of `preset = "python"`: the lines of a traceback.
pub const PYTHON_CONTINUE: &str = r"^(?:Traceback \(most recent call last\):|[ \t]|During handling of the above exception|The above exception was the direct cause|$)";

/// The exception line of a Python traceback, after its last frame.
const PYTHON_EXCEPTION: &str = r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?::|$)";

/// The first line of a Python traceback.
const PYTHON_TRACEBACK: &[u8] = b"Traceback (most recent call last):";

/// The built-in patterns of [`MultilineSettings::preset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// JVM stack traces ([`JAVA_CONTINUE`]).
    Java,
    /// Python tracebacks ([`PYTHON_CONTINUE`]).
    Python,
}

impl Preset {
    fn pattern(self) -> &'static str {
        match self {
            Preset::Java => JAVA_CONTINUE,
            Preset::Python => PYTHON_CONTINUE,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Preset::Java => "java",
            Preset::Python => "python",
        })
    }
}

/// Settings of [`Multiline`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MultilineSettings {
    /// Built-in patterns: `"java"` or `"python"`; see the [module docs](self).
    pub preset: Option<Preset>,
    /// A line that matches begins a record.
    pub start: Option<String>,
    /// A line that matches continues the pending record.
    #[serde(rename = "continue")]
    pub continue_: Option<String>,
    /// A line matches a pattern when the pattern does not find it. Default false.
    pub negate: bool,
    /// Where the line is: `"raw"`, the raw bytes (the default), or the
    /// path of a string field. The joined lines are written back there.
    pub source: String,
    /// What keeps lines apart: `"origin"`, where the datum was read (the
    /// file, the peer; the default), or the path of a field (a missing
    /// field is one more stream of its own), or `""`: all lines are one
    /// stream.
    pub by: String,
    /// Put between two joined lines. Default `"\n"`.
    pub separator: String,
    /// Lines per record at most; see cuts in the [module docs](self). At
    /// least 1. Default 1000.
    pub max_lines: usize,
    /// Bytes per record at most (separators included). At least 1.
    /// Default 1048576 (1 MiB).
    pub max_bytes: usize,
    /// Milliseconds a record waits for its next line before it goes out.
    /// At least 1. Default 1000.
    pub timeout_ms: u64,
}

impl Default for MultilineSettings {
    fn default() -> Self {
        MultilineSettings {
            preset: None,
            start: None,
            continue_: None,
            negate: false,
            source: "raw".into(),
            by: "origin".into(),
            separator: "\n".into(),
            max_lines: 1000,
            max_bytes: 1 << 20,
            timeout_ms: 1000,
        }
    }
}

impl MultilineSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.rule().map(drop)
    }

    fn rule(&self) -> Result<Rule, Error> {
        if self.source != "raw" {
            check_path("source", &self.source)?;
        }
        if !self.by.is_empty() && self.by != "origin" {
            check_path("by", &self.by)?;
        }
        if self.max_lines == 0 {
            return Err(Error::setting("max_lines", "must be at least 1"));
        }
        if self.max_bytes == 0 {
            return Err(Error::setting("max_bytes", "must be at least 1"));
        }
        if self.timeout_ms == 0 {
            return Err(Error::setting("timeout_ms", "must be at least 1"));
        }
        let compile = |key: &str, p: &str| {
            Regex::new(p).map_err(|e| Error::setting(key, format!("not a regular expression: {e}")))
        };
        let (start, cont) = match (self.preset, &self.start, &self.continue_) {
            (Some(p), None, None) => {
                let exception = (p == Preset::Python)
                    .then(|| compile("preset", PYTHON_EXCEPTION))
                    .transpose()?;
                return Ok(Rule {
                    start: None,
                    cont: Some(compile("preset", p.pattern())?),
                    exception,
                    negate: false,
                });
            }
            (Some(_), _, _) => {
                return Err(Error::setting(
                    "preset",
                    "sets the patterns itself: give either a preset or start/continue",
                ))
            }
            (None, None, None) => {
                return Err(Error::setting(
                    "start",
                    "required: a `start` or `continue` pattern, or a `preset` (java, python)",
                ))
            }
            (None, s, c) => (
                s.as_deref().map(|p| compile("start", p)).transpose()?,
                c.as_deref().map(|p| compile("continue", p)).transpose()?,
            ),
        };
        Ok(Rule {
            start,
            cont,
            exception: None,
            negate: self.negate,
        })
    }
}

/// Whether a line continues the pending record.
#[derive(Debug)]
struct Rule {
    start: Option<Regex>,
    cont: Option<Regex>,
    /// Python's exception line, which continues a record with a traceback
    /// whose last line is indented.
    exception: Option<Regex>,
    negate: bool,
}

/// What the Python preset knows of a record's lines.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    traceback: bool,
    indented: bool,
}

impl Shape {
    fn of(line: &[u8]) -> Shape {
        Shape::default().then(line)
    }

    fn then(self, line: &[u8]) -> Shape {
        Shape {
            traceback: self.traceback || line.starts_with(PYTHON_TRACEBACK),
            indented: matches!(line.first(), Some(b' ' | b'\t')),
        }
    }
}

impl Rule {
    fn matches(&self, re: &Regex, line: &[u8]) -> bool {
        re.is_match(line) != self.negate
    }

    fn continues(&self, line: &[u8], shape: Shape) -> bool {
        if let Some(re) = &self.exception {
            if shape.traceback && shape.indented && re.is_match(line) {
                return true;
            }
        }
        let starts = self.start.as_ref().is_some_and(|re| self.matches(re, line));
        match &self.cont {
            Some(re) => !starts && self.matches(re, line),
            None => !starts,
        }
    }
}

/// Timer key: look for records that waited long enough.
const TICK: u64 = 1;

/// A record waiting for its next line.
struct Pending<D> {
    /// The first line's datum (its bytes are in `text` once a second line joins).
    datum: D,
    id: Option<EventId>,
    /// The joined lines, when there are two or more.
    text: Vec<u8>,
    lines: usize,
    bytes: usize,
    shape: Shape,
    /// When its last line came.
    last: Instant,
    /// Its place in the order records began (timeouts and finish send
    /// records in that order, whatever the map's).
    seq: u64,
}

/// How a datum names the stream it belongs to.
type KeyOf<D> = Box<dyn Fn(&D) -> Option<&str>>;

/// Joins lines into records; see the [module docs](self).
pub struct Multiline<D = Event> {
    settings: MultilineSettings,
    rule: Rule,
    source: Getter<D, [u8]>,
    put: Setter<D, Vec<u8>>,
    key: KeyOf<D>,
    size: Box<dyn Fn(&D) -> usize>,
    place: Box<dyn Fn(&D) -> String>,
    pending: HashMap<Box<str>, Pending<D>>,
    seq: u64,
    /// The key of the datum at hand (reused).
    buf: String,
    meter: Meter,
    cut_log: LogThrottle,
}

impl<D> fmt::Debug for Multiline<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multiline")
            .field("settings", &self.settings)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// Positions of the named counts.
const JOINED: usize = 0;
const ABSORBED: usize = 1;
const CUT: usize = 2;
const TIMED_OUT: usize = 3;

impl Multiline<Event> {
    /// A `multiline` cog for events: `source` and `by` as the settings say.
    pub fn new(settings: MultilineSettings) -> Result<Self, Error> {
        settings.validate()?;
        let source = event_bytes(&settings.source);
        let put = if settings.source == "raw" {
            Setter::<Event, Vec<u8>>::raw()
        } else {
            let path = Path::parse(&settings.source);
            Setter::new(settings.source.clone(), move |mut e: Event, bytes: Vec<u8>| {
                // The joined lines of string fields, and a separator from a
                // TOML string: UTF-8, so nothing is replaced here.
                let text =
                    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                *path.place(e.data_mut()) = Value::String(text);
                e
            })
        };
        let key: KeyOf<Event> = match settings.by.as_str() {
            "" => Box::new(|_| Some("")),
            "origin" => Box::new(|e: &Event| e.origin.as_deref()),
            by => {
                let path = Path::parse(by);
                Box::new(move |e: &Event| e.json_at(&path).and_then(Value::as_str))
            }
        };
        Ok(Multiline::with_accessors(settings, source, put, key)?
            .size(|e: &Event| e.raw.len())
            .place(Event::place))
    }
}

impl<D: 'static> Multiline<D> {
    /// A `multiline` cog reading lines through `source`, writing a joined
    /// record through `put`, and keeping lines apart by what `key` says (a
    /// datum whose key is `None` is in the stream of the empty key).
    /// `settings.source` and `settings.by` are not used.
    pub fn with_accessors(
        settings: MultilineSettings,
        source: Getter<D, [u8]>,
        put: Setter<D, Vec<u8>>,
        key: impl Fn(&D) -> Option<&str> + 'static,
    ) -> Result<Self, Error> {
        let rule = settings.rule()?;
        Ok(Multiline {
            settings,
            rule,
            source,
            put,
            key: Box::new(key),
            size: Box::new(|_| 0),
            place: Box::new(|_| "-".into()),
            pending: HashMap::new(),
            seq: 0,
            buf: String::new(),
            meter: Meter::with_named(["joined", "absorbed", "cut", "timed_out"]),
            cut_log: LogThrottle::new(Duration::from_secs(10)),
        })
    }

    /// How log lines name where a datum came from (for [`Event`]: `origin:line`).
    pub fn place(mut self, place: impl Fn(&D) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// How many bytes a datum counts for in the meter.
    pub fn size(mut self, size: impl Fn(&D) -> usize + 'static) -> Self {
        self.size = Box::new(size);
        self
    }

    /// Records waiting for their next line.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A record beginning with `datum`.
    fn begin<N: Next<D> + ?Sized>(&mut self, datum: D, len: usize, ctx: &mut Context<'_, D, N>) -> Pending<D> {
        self.seq += 1;
        Pending {
            id: ctx.id_of(&datum),
            shape: Shape::of(self.source.get(&datum).unwrap_or_default()),
            datum,
            text: Vec::new(),
            lines: 1,
            bytes: len,
            last: ctx.now(),
            seq: self.seq,
        }
    }

    /// Sends a record on, its lines joined.
    fn send<N: Next<D> + ?Sized>(&self, p: Pending<D>, ctx: &mut Context<'_, D, N>) {
        let datum = if p.lines > 1 {
            self.meter.count(JOINED);
            self.put.set(p.datum, p.text)
        } else {
            p.datum
        };
        self.meter.emit(datum, ctx);
    }

    /// Sends the records `which` picks, in the order they began.
    fn flush<N: Next<D> + ?Sized>(
        &mut self,
        which: impl Fn(&Pending<D>) -> bool,
        ctx: &mut Context<'_, D, N>,
    ) -> usize {
        let mut keys: Vec<(u64, Box<str>)> = self
            .pending
            .iter()
            .filter(|(_, p)| which(p))
            .map(|(k, p)| (p.seq, k.clone()))
            .collect();
        keys.sort_unstable();
        for (_, k) in &keys {
            if let Some(p) = self.pending.remove(k) {
                self.send(p, ctx);
            }
        }
        keys.len()
    }

    fn log_cut<N: Next<D> + ?Sized>(&mut self, at: &str, lines: usize, bytes: usize, ctx: &mut Context<'_, D, N>) {
        self.meter.count(CUT);
        if let Verdict::Log { held } = self.cut_log.hit(ctx.now()) {
            log::warn!(
                "{at}: multiline record cut at {lines} lines, {bytes} bytes (max_lines = {}, max_bytes = {}): the next line goes on as a new record{}",
                self.settings.max_lines,
                self.settings.max_bytes,
                held.map_or(String::new(), |s| format!(" ({} more since the last line)", s.count))
            );
        }
    }
}

impl<D: 'static> Metered for Multiline<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Multiline<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took((self.size)(&datum));
        let Some(line) = self.source.get(&datum) else {
            // Nothing to join (a datum without the field): it is a record
            // of its own, and ends none.
            self.meter.emit(datum, ctx);
            return;
        };
        let len = line.len();
        self.buf.clear();
        self.buf.push_str((self.key)(&datum).unwrap_or(""));
        let sep = self.settings.separator.len();
        let (max_lines, max_bytes) = (self.settings.max_lines, self.settings.max_bytes);
        let Some(p) = self.pending.get_mut(self.buf.as_str()) else {
            let p = self.begin(datum, len, ctx);
            self.pending.insert(self.buf.as_str().into(), p);
            return;
        };
        let continues = self.rule.continues(line, p.shape);
        let fits = p.lines < max_lines && p.bytes + sep + len <= max_bytes;
        if continues && fits {
            p.shape = p.shape.then(line);
            if p.lines == 1 {
                p.text.reserve(p.bytes + sep + len);
                p.text.extend_from_slice(self.source.get(&p.datum).unwrap_or_default());
            }
            p.text.extend_from_slice(self.settings.separator.as_bytes());
            p.text.extend_from_slice(line);
            p.lines += 1;
            p.bytes += sep + len;
            p.last = ctx.now();
            self.meter.count(ABSORBED);
            if let (Some(old), Some(new)) = (ctx.id_of(&datum), p.id) {
                ctx.event_rename(old, new);
            }
            return;
        }
        if continues {
            let (at, lines, bytes) = ((self.place)(&p.datum), p.lines, p.bytes);
            self.log_cut(&at, lines, bytes, ctx);
        }
        let next = self.begin(datum, len, ctx);
        let p = self.pending.get_mut(self.buf.as_str()).expect("looked up above");
        let done = std::mem::replace(p, next);
        self.send(done, ctx);
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        // A quarter of the timeout: a record goes out at most a quarter late.
        let tick = Duration::from_millis((self.settings.timeout_ms / 4).max(1));
        if let Err(e) = ctx.every(tick, TICK) {
            log::error!("multiline: cannot bind its timer ({e}); pending records go out with their file's next record or at finish");
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        if self.pending.is_empty() {
            return;
        }
        let now = ctx.now();
        let timeout = Duration::from_millis(self.settings.timeout_ms);
        let n = self.flush(|p| now.saturating_duration_since(p.last) >= timeout, ctx);
        for _ in 0..n {
            self.meter.count(TIMED_OUT);
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.flush(|_| true, ctx);
        Finish::Done
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("multiline")?;
        if let Some(p) = self.settings.preset {
            write!(f, " preset={p}")?;
        }
        if let Some(s) = &self.settings.start {
            write!(f, " start={s:?}")?;
        }
        if let Some(c) = &self.settings.continue_ {
            write!(f, " continue={c:?}")?;
        }
        if self.settings.negate {
            f.write_str(" negate")?;
        }
        write!(
            f,
            " source={} by={} max_lines={} max_bytes={} timeout={}ms",
            self.source,
            if self.settings.by.is_empty() {
                "\"\""
            } else {
                &self.settings.by
            },
            self.settings.max_lines,
            self.settings.max_bytes,
            self.settings.timeout_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: MultilineSettings) -> Rule {
        s.rule().unwrap()
    }

    /// Which lines begin records under `r`: the records as line counts.
    fn records(r: &Rule, text: &str) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        let mut shape = Shape::default();
        for line in text.lines().map(str::as_bytes) {
            match out.last_mut() {
                Some(n) if r.continues(line, shape) => {
                    *n += 1;
                    shape = shape.then(line);
                }
                _ => {
                    out.push(1);
                    shape = Shape::of(line);
                }
            }
        }
        out
    }

    #[test]
    fn java_traces_join_with_the_line_that_logged_them() {
        let r = rule(MultilineSettings {
            preset: Some(Preset::Java),
            ..MultilineSettings::default()
        });
        let text = "2026-11-30 12:00:00 INFO started\n\
2026-11-30 12:00:01 ERROR request failed\n\
java.lang.IllegalStateException: boom\n\
\tat com.example.Foo.bar(Foo.java:10)\n\
\tat com.example.Main.main(Main.java:5)\n\
Caused by: java.io.IOException: disk\n\
\tat java.base/java.io.FileInputStream.open(FileInputStream.java:1)\n\
\t... 2 more\n\
\tSuppressed: java.lang.RuntimeException\n\
\t\t... 4 common frames omitted\n\
2026-11-30 12:00:02 INFO next\n\
Exception in thread \"main\" java.lang.Error: no log line before it\n\
\tat Main.main(Main.java:1)\n";
        assert_eq!(records(&r, text), vec![1, 9, 1, 2]);
    }

    #[test]
    fn python_tracebacks_join_chained_ones_included() {
        let r = rule(MultilineSettings {
            preset: Some(Preset::Python),
            ..MultilineSettings::default()
        });
        let text = [
            "INFO:root:started",
            "ERROR:root:failed",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 3, in <module>",
            "    d[\"x\"]",
            "KeyError: 'x'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 5, in <module>",
            "    1 / 0",
            "ZeroDivisionError: division by zero",
            "INFO:root:next",
            "Traceback (most recent call last):",
            "  File \"b.py\", line 1, in <module>",
            "KeyboardInterrupt",
            "mymod.errors.ParseError: not after a frame: a record of its own",
            "ERROR:root:custom",
            "Traceback (most recent call last):",
            "  File \"c.py\", line 14, in <module>",
            "    raise Boom(\"custom\")",
            "app.errors.Boom: custom",
            "WARNING: no traceback, after an indented line",
            "  indented",
            "Note: a name and a colon, but no traceback",
        ]
        .join("\n");
        let text = text.as_str();
        assert_eq!(records(&r, text), vec![1, 12, 4, 1, 5, 2, 1]);
    }

    #[test]
    fn start_continue_and_negate_say_which_lines_continue() {
        let start = rule(MultilineSettings {
            start: Some(r"^\d".into()),
            ..MultilineSettings::default()
        });
        assert_eq!(records(&start, "1 a\n b\nc\n2 d\n3 e\n f\n"), vec![3, 1, 2]);
        let negated = rule(MultilineSettings {
            continue_: Some(r"^\d".into()),
            negate: true,
            ..MultilineSettings::default()
        });
        assert_eq!(records(&negated, "1 a\n b\nc\n2 d\n3 e\n f\n"), vec![3, 1, 2]);
        let both = rule(MultilineSettings {
            start: Some("^BEGIN".into()),
            continue_: Some("^ ".into()),
            ..MultilineSettings::default()
        });
        assert_eq!(
            records(&both, "BEGIN\n a\n b\nother\n c\nBEGIN\nBEGIN\n"),
            vec![3, 2, 1, 1]
        );
    }

    #[test]
    fn settings_errors_name_the_key() {
        let e = |s: MultilineSettings| s.validate().unwrap_err().to_string();
        assert!(e(MultilineSettings::default()).contains("start"));
        assert!(e(MultilineSettings {
            preset: Some(Preset::Java),
            start: Some("^x".into()),
            ..MultilineSettings::default()
        })
        .contains("preset"));
        assert!(e(MultilineSettings {
            continue_: Some("(".into()),
            ..MultilineSettings::default()
        })
        .contains("continue"));
        for (key, s) in [
            (
                "max_lines",
                MultilineSettings {
                    max_lines: 0,
                    ..MultilineSettings::default()
                },
            ),
            (
                "max_bytes",
                MultilineSettings {
                    max_bytes: 0,
                    ..MultilineSettings::default()
                },
            ),
            (
                "timeout_ms",
                MultilineSettings {
                    timeout_ms: 0,
                    ..MultilineSettings::default()
                },
            ),
        ] {
            let s = MultilineSettings {
                start: Some("^x".into()),
                ..s
            };
            assert!(e(s).contains(key), "{key}");
        }
    }
}
