//! The `parse` step: reads the fields out of a line of text in a common
//! log format, or by a regex, and stores them.
//!
//! ```toml
//! [trains.web]
//! cogs = [
//!   { kind = "tail", include = ["/var/log/nginx/access.log"] },
//!   { kind = "parse", format = "nginx_combined", error_output = "unparsed" },
//!   { kind = "json_encode" },
//!   { kind = "file", path = "access.jsonl" },
//! ]
//! [trains.dead]
//! inputs = ["web.unparsed"]
//! cogs = [{ kind = "json_encode" }, { kind = "file", path = "unparsed.jsonl" }]
//! ```
//!
//! The text is read from `source` (default: the raw bytes, as
//! `json_decode` reads them) and the fields go into `target` (default: the
//! top level of the data; fields already there stay, those of the same name
//! are replaced; data that is not an object, such as the `null` of a line
//! just read, is replaced by the fields).
//!
//! # Formats and their fields
//!
//! A field the log writes as `-` (nothing there) is left out, not stored as
//! `"-"`. `status` and `size` are integers; every other field is a string.
//!
//! | `format` | reads | fields |
//! |---|---|---|
//! | `nginx_combined` | `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"` | `client`, `user`, `time`, `request`, `method`, `path`, `protocol`, `status`, `size`, `referer`, `agent` |
//! | `apache_common` | `%h %l %u %t "%r" %>s %b` | `client`, `ident`, `user`, `time`, `request`, `method`, `path`, `protocol`, `status`, `size` |
//! | `apache_combined` | `%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"` | those of `apache_common`, `referer`, `agent` |
//! | `regex` | `pattern`: each named capture group is a field (a group that took no part in the match is left out) | the group names |
//! | `logfmt` | `key=value key="quoted \"value\"" bare`: a bare key is `true`, `key=` an empty string | the keys |
//! | `kv` | like `logfmt`, with the separators and the quote by setting: `field_split`, `value_split`, `quote` | the keys |
//! | `csv` | one RFC 4180 record (the `csv` crate's reader, `csv-core`), `delimiter` by setting | `columns`, in order |
//! | `syslog` | an RFC 5424 or RFC 3164 message, told apart per line (see [`syslog`](crate::step::syslog)) | `priority`, `facility`, `severity`, `timestamp`, `host`, `app`, `procid`, `msgid`, `structured_data`, `message` |
//!
//! Notes per format:
//! - nginx and Apache: `time` is kept as written (`10/Oct/2000:13:55:36
//!   -0700`: the `timestamp` step reads it with the format
//!   `%d/%b/%Y:%H:%M:%S %z`). `request` is the request line as written;
//!   `method`, `path` and `protocol` are its parts when it has the shape
//!   `METHOD TARGET[ PROTOCOL]` (a TLS handshake sent to a plain-HTTP port
//!   has not: then only `request` is there). The escapes the servers write
//!   in quoted fields and the user (nginx `\xHH`, Apache `\"`, `\\`, `\n`,
//!   `\t`, `\xHH`) are decoded, unless the decoded bytes are not UTF-8:
//!   then the field keeps the escaped text as written. Text after the last
//!   field makes the line unparsed (a format with more fields needs `regex`).
//! - `logfmt` and `kv`: inside quotes, `\"` (the quote), `\\`, `\n`, `\r`,
//!   `\t` are decoded; any other backslash is kept. A later key replaces an
//!   earlier one of the same name. A line with no key is unparsed.
//! - `csv`: an empty field is the empty string. The input is a line: a
//!   quoted field that goes on past the end of it (a newline inside quotes
//!   in the file) makes the line unparsed, with its reason; a datum whose
//!   source holds the whole record, newline included, is read whole.
//!
//! # Types
//!
//! `types = { duration = "float", bytes = "int", ok = "bool", ts = "timestamp" }`
//! converts string fields after parsing:
//!
//! | type | reads | writes |
//! |---|---|---|
//! | `int` | a 64-bit integer | a JSON integer |
//! | `float` | a finite number | a JSON number |
//! | `bool` | `true`/`false`, `1`/`0`, `yes`/`no`, any case | `true` or `false` |
//! | `string` | a number or bool | it as text |
//! | `timestamp` | the first of: RFC 3339 (`2000-10-10T13:55:36.5-07:00`), the access logs' `10/Oct/2000:13:55:36 -0700`, RFC 3164 (`Oct 10 13:55:36`: UTC, the year inferred against the clock so that late-December lines read in January stay last year's), epoch seconds (a number or numeric text, fractions allowed) | RFC 3339 in UTC, as the [`timestamp`](crate::step::timestamp) step writes by default: `2000-10-10T20:55:36.500Z`, with the fraction digits the time needs (none, 3, 6 or 9) |
//!
//! A value that does not convert is kept as it was, counted
//! (`unconverted`) and logged (throttled), never changed. For other time
//! formats or a time zone, use a `timestamp` step after `parse`.
//!
//! # Lines that do not parse
//!
//! They are counted (`unparsed`, and as errors in the cog's meter) and
//! logged at most once per `log_interval`. With `error_output = "NAME"`
//! they go to the train's output `NAME` in the shape `json_decode` gives
//! its error output: the reason in `error_field` (default `"error"`) and,
//! when the source is the raw bytes, the line as text in the target's
//! `message`. Without it, `on_error` says: `"keep"` (default) sends the
//! datum on in that same shape, `"drop"` drops it (reported done, counted).
//!
//! Adding a format: a [`Format`] variant, its name in [`Format::NAMES`], and
//! an arm in [`Parser::parse`] calling a function from `&str` to a field map.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tourbillon::accessor::Path;
use tourbillon::{Cog, Context, Event, Finish, Fired, Getter, Next, Output as TrainOutput, Role, Setter, TimerId};

use crate::access::check_path;
use crate::meter::{Meter, Metered};
use crate::step::json::{event_bytes, message_of, IdText};
use crate::step::route::check_output_name;
use crate::time::{self, Format as TimeFormat, Time, Zone};
use crate::{Error, LogThrottle, Summary, Verdict};

/// The fields a line parses into.
pub type Fields = Map<String, Value>;

/// What [`Parse`] does with a line that does not parse, without an error output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Send it on with the reason in `error_field` (the default).
    #[default]
    Keep,
    /// Drop it (reported done, counted).
    Drop,
}

/// Settings of [`Parse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParseSettings {
    /// The format (see the [module docs](self)): `regex`, `nginx_combined`,
    /// `apache_common`, `apache_combined`, `logfmt`, `kv`, `csv`. Required.
    pub format: String,
    /// With `format = "regex"`: the regex; its named groups are the fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// With `format = "csv"`: the field names, in column order.
    pub columns: Vec<String>,
    /// With `format = "csv"`: the one-byte field delimiter. Default `","`.
    pub delimiter: String,
    /// With `format = "kv"`: what separates pairs. Default `" "` (any run
    /// of it counts as one).
    pub field_split: String,
    /// With `format = "kv"`: what separates a key from its value. Default `"="`.
    pub value_split: String,
    /// With `format = "kv"`: the one character that quotes a value, or
    /// `""` for none. Default `"\""`.
    pub quote: String,
    /// Conversions of fields by name: `int`, `float`, `bool`, `string`, `timestamp`.
    pub types: BTreeMap<String, String>,
    /// Where the text is: `"raw"`, the raw bytes (the default), or a field
    /// path whose string value holds it.
    pub source: String,
    /// Where the fields go: `"data"`, the top level (the default), or a
    /// field path (write `"/data"` for a field named `data`).
    pub target: String,
    /// A line that does not parse, without `error_output`: `"keep"`
    /// (default) or `"drop"`.
    pub on_error: OnError,
    /// The field path that gets why a line did not parse. Default `"error"`.
    pub error_field: String,
    /// The name of this train's output (`TRAIN.NAME`) that gets the lines
    /// that do not parse. Not with `on_error = "drop"`. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_output: Option<String>,
    /// Seconds between log lines about unparsed lines and unconverted
    /// values (the first at once, then one summary per interval). Default 10.
    pub log_interval: u64,
}

impl Default for ParseSettings {
    fn default() -> Self {
        ParseSettings {
            format: String::new(),
            pattern: None,
            columns: Vec::new(),
            delimiter: ",".into(),
            field_split: " ".into(),
            value_split: "=".into(),
            quote: "\"".into(),
            types: BTreeMap::new(),
            source: "raw".into(),
            target: "data".into(),
            on_error: OnError::Keep,
            error_field: "error".into(),
            error_output: None,
            log_interval: 10,
        }
    }
}

/// The formats [`Parse`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Named captures of `pattern`.
    Regex,
    /// nginx's `combined` log format.
    NginxCombined,
    /// Apache's common log format.
    ApacheCommon,
    /// Apache's combined log format.
    ApacheCombined,
    /// `key=value` pairs as logfmt writes them.
    Logfmt,
    /// Key-value pairs with the separators and quote of the settings.
    Kv,
    /// One CSV record, columns named by the settings.
    Csv,
    /// A syslog message, RFC 5424 or RFC 3164 (detected per line).
    Syslog,
}

impl Format {
    /// Every format with its name in the settings.
    pub const NAMES: [(&'static str, Format); 8] = [
        ("regex", Format::Regex),
        ("nginx_combined", Format::NginxCombined),
        ("apache_common", Format::ApacheCommon),
        ("apache_combined", Format::ApacheCombined),
        ("logfmt", Format::Logfmt),
        ("kv", Format::Kv),
        ("csv", Format::Csv),
        ("syslog", Format::Syslog),
    ];

    fn of(name: &str) -> Result<Format, Error> {
        Format::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let known: Vec<&str> = Format::NAMES.iter().map(|(n, _)| *n).collect();
                let what = if name.is_empty() {
                    "required".to_owned()
                } else {
                    format!("unknown format `{name}`")
                };
                Error::setting("format", format!("{what}: one of {}", known.join(", ")))
            })
    }
}

/// A conversion of a field's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Type {
    Int,
    Float,
    Bool,
    Str,
    Timestamp,
}

/// The ways `timestamp` reads a time, in the order tried.
const TIME_FORMATS: [&str; 4] = ["rfc3339", "%d/%b/%Y:%H:%M:%S %z", "rfc3164", "epoch_secs"];

/// The [`TIME_FORMATS`], compiled once per cog.
fn time_formats() -> Vec<TimeFormat> {
    TIME_FORMATS
        .iter()
        .map(|f| time::format_of(f).expect("the built-in time formats compile"))
        .collect()
}

impl Type {
    fn of(key: &str, name: &str) -> Result<Type, Error> {
        Ok(match name {
            "int" => Type::Int,
            "float" => Type::Float,
            "bool" => Type::Bool,
            "string" => Type::Str,
            "timestamp" => Type::Timestamp,
            _ => {
                return Err(Error::setting(
                    key,
                    format!("unknown type `{name}`: int, float, bool, string or timestamp"),
                ))
            }
        })
    }

    /// The value converted, or `None` if it does not convert; a time is
    /// read by the first of `times` that reads it.
    fn convert(self, v: &Value, times: &[TimeFormat]) -> Option<Value> {
        if self == Type::Timestamp {
            let now = || Time::from_system(SystemTime::now());
            let zone = Zone::default();
            return times
                .iter()
                .find_map(|f| f.parse(v, &zone, now))
                .map(|t| Value::String(t.rfc3339_auto()));
        }
        let text = match v {
            Value::String(s) => s.trim(),
            other if self == Type::Str => return Some(Value::String(other.to_string())),
            Value::Number(n) if self == Type::Int && (n.is_i64() || n.is_u64()) => return Some(v.clone()),
            Value::Number(_) if self == Type::Float => return Some(v.clone()),
            Value::Bool(_) if self == Type::Bool => return Some(v.clone()),
            _ => return None,
        };
        match self {
            Type::Int => text
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .ok(),
            Type::Float => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Type::Bool => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            Type::Str | Type::Timestamp => Some(v.clone()),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Type::Int => "int",
            Type::Float => "float",
            Type::Bool => "bool",
            Type::Str => "string",
            Type::Timestamp => "timestamp",
        }
    }
}

/// A format ready to read lines: the regex compiled, the separators checked.
#[derive(Debug)]
pub enum Parser {
    /// A regex with named groups, and their names.
    Regex(regex::Regex, Vec<String>),
    /// nginx / Apache: with Apache's `%l` field, with referer and agent.
    Access {
        /// Apache's `%l` (ident) field in place of nginx's literal `-`.
        ident: bool,
        /// The referer and user agent fields follow.
        combined: bool,
    },
    /// logfmt.
    Logfmt,
    /// Key-value pairs.
    Kv(Kv),
    /// CSV with these columns and this delimiter.
    Csv(Box<Csv>),
    /// Syslog, either RFC.
    Syslog,
}

/// The separators and quote of the `kv` format.
#[derive(Clone, Debug)]
pub struct Kv {
    field_split: String,
    value_split: String,
    quote: Option<char>,
}

impl Parser {
    /// The parser the settings describe; the error names the setting.
    pub fn new(s: &ParseSettings) -> Result<Parser, Error> {
        let format = Format::of(&s.format)?;
        if format != Format::Regex && s.pattern.is_some() {
            return Err(Error::setting("pattern", "only with format = \"regex\""));
        }
        if format != Format::Csv && !s.columns.is_empty() {
            return Err(Error::setting("columns", "only with format = \"csv\""));
        }
        Ok(match format {
            Format::Regex => {
                let pattern = s
                    .pattern
                    .as_deref()
                    .ok_or_else(|| Error::setting("pattern", "required with format = \"regex\""))?;
                let re = regex::Regex::new(pattern).map_err(|e| Error::setting("pattern", e.to_string()))?;
                let names: Vec<String> = re.capture_names().flatten().map(str::to_owned).collect();
                if names.is_empty() {
                    return Err(Error::setting(
                        "pattern",
                        "has no named group (?P<name>...): it would find no field",
                    ));
                }
                Parser::Regex(re, names)
            }
            Format::NginxCombined => Parser::Access {
                ident: false,
                combined: true,
            },
            Format::ApacheCommon => Parser::Access {
                ident: true,
                combined: false,
            },
            Format::ApacheCombined => Parser::Access {
                ident: true,
                combined: true,
            },
            Format::Logfmt => Parser::Logfmt,
            Format::Kv => {
                if s.field_split.is_empty() {
                    return Err(Error::setting("field_split", "must not be empty"));
                }
                if s.value_split.is_empty() {
                    return Err(Error::setting("value_split", "must not be empty"));
                }
                if s.field_split == s.value_split {
                    return Err(Error::setting("value_split", "must differ from field_split"));
                }
                let mut chars = s.quote.chars();
                let quote = chars.next();
                if chars.next().is_some() {
                    return Err(Error::setting("quote", "one character, or \"\" for none"));
                }
                Parser::Kv(Kv {
                    field_split: s.field_split.clone(),
                    value_split: s.value_split.clone(),
                    quote,
                })
            }
            Format::Csv => {
                if s.columns.is_empty() {
                    return Err(Error::setting(
                        "columns",
                        "required with format = \"csv\": the field names",
                    ));
                }
                for (i, c) in s.columns.iter().enumerate() {
                    if c.is_empty() {
                        return Err(Error::setting(&format!("columns[{i}]"), "must not be empty"));
                    }
                }
                let &[delimiter] = s.delimiter.as_bytes() else {
                    return Err(Error::setting("delimiter", "one byte"));
                };
                if delimiter == b'"' || delimiter == b'\n' || delimiter == b'\r' {
                    return Err(Error::setting("delimiter", "not a quote or a newline"));
                }
                Parser::Csv(Box::new(Csv::new(s.columns.clone(), delimiter)))
            }
            Format::Syslog => Parser::Syslog,
        })
    }

    /// The fields of one line, or why it does not parse.
    pub fn parse(&self, line: &str) -> Result<Fields, String> {
        match self {
            Parser::Regex(re, names) => {
                let caps = re.captures(line).ok_or("does not match the pattern")?;
                let mut fields = Map::with_capacity(names.len());
                for name in names {
                    if let Some(m) = caps.name(name) {
                        fields.insert(name.clone(), Value::String(m.as_str().to_owned()));
                    }
                }
                Ok(fields)
            }
            Parser::Access { ident, combined } => access_log(line, *ident, *combined),
            Parser::Logfmt => logfmt(line),
            Parser::Kv(k) => kv(line, k),
            Parser::Csv(c) => c.record(line),
            Parser::Syslog => crate::step::syslog::parse(line),
        }
    }
}

/// A cursor over a line of an access log.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn expect(&mut self, what: &str) -> Result<(), String> {
        match self.rest.strip_prefix(what) {
            Some(r) => {
                self.rest = r;
                Ok(())
            }
            None => Err(format!("expected `{what}` at `{}`", excerpt(self.rest))),
        }
    }

    /// Up to (not including) `end`, which is skipped.
    fn until(&mut self, end: &str, what: &str) -> Result<&'a str, String> {
        let at = self
            .rest
            .find(end)
            .ok_or_else(|| format!("no {what} at `{}`", excerpt(self.rest)))?;
        let (token, rest) = self.rest.split_at(at);
        self.rest = &rest[end.len()..];
        Ok(token)
    }

    /// A token up to the next space or the end.
    fn token(&mut self) -> &'a str {
        let at = self.rest.find(' ').unwrap_or(self.rest.len());
        let (token, rest) = self.rest.split_at(at);
        self.rest = rest;
        token
    }

    /// A quoted string whose quote and backslash are escaped by a backslash
    /// (nginx never writes either raw, so this reads its strings too).
    fn quoted(&mut self, what: &str) -> Result<&'a str, String> {
        self.expect("\"")?;
        let bytes = self.rest.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => i += 2,
                b'"' => {
                    let s = &self.rest[..i];
                    self.rest = &self.rest[i + 1..];
                    return Ok(s);
                }
                _ => i += 1,
            }
        }
        Err(format!("{what} has no closing quote"))
    }
}

fn excerpt(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `field` decoded and stored, unless it is `-`.
fn put_text(fields: &mut Fields, name: &str, text: &str) {
    if text != "-" {
        fields.insert(name.to_owned(), Value::String(unescape(text)));
    }
}

/// The text with the escapes nginx and Apache write decoded; as written if
/// it has none, or if the bytes they stand for are not UTF-8.
fn unescape(text: &str) -> String {
    if !text.contains('\\') {
        return text.to_owned();
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 == b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let decoded = match b[i + 1] {
            b'"' => Some((b'"', 2)),
            b'\\' => Some((b'\\', 2)),
            b'n' => Some((b'\n', 2)),
            b'r' => Some((b'\r', 2)),
            b't' => Some((b'\t', 2)),
            b'x' => {
                let hex = b.get(i + 2..i + 4).and_then(|h| std::str::from_utf8(h).ok());
                hex.and_then(|h| u8::from_str_radix(h, 16).ok()).map(|v| (v, 4))
            }
            _ => None,
        };
        match decoded {
            Some((byte, n)) => {
                out.push(byte);
                i += n;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| text.to_owned())
}

/// A line of nginx's or Apache's access log.
fn access_log(line: &str, ident: bool, combined: bool) -> Result<Fields, String> {
    let mut fields = Map::with_capacity(12);
    let mut c = Cursor { rest: line };
    let client = c.token();
    if client.is_empty() {
        return Err("no client address".into());
    }
    put_text(&mut fields, "client", client);
    c.expect(" ")?;
    if ident {
        let id = c.token();
        put_text(&mut fields, "ident", id);
        c.expect(" ")?;
    } else {
        c.expect("- ")?;
    }
    let user = c.until(" [", "`[` before the time")?;
    put_text(&mut fields, "user", user);
    let time = c.until("] ", "`]` after the time")?;
    put_text(&mut fields, "time", time);
    let request = c.quoted("the request")?;
    request_fields(&mut fields, request);
    c.expect(" ")?;
    let status = c.token();
    match status.parse::<u16>() {
        Ok(n) => {
            fields.insert("status".into(), Value::from(n));
        }
        Err(_) if status == "-" => {}
        Err(_) => return Err(format!("status `{}` is not a number", excerpt(status))),
    }
    c.expect(" ")?;
    let size = c.token();
    match size.parse::<u64>() {
        Ok(n) => {
            fields.insert("size".into(), Value::from(n));
        }
        Err(_) if size == "-" => {}
        Err(_) => return Err(format!("size `{}` is not a number", excerpt(size))),
    }
    if combined {
        c.expect(" ")?;
        let referer = c.quoted("the referer")?;
        put_text(&mut fields, "referer", referer);
        c.expect(" ")?;
        let agent = c.quoted("the user agent")?;
        put_text(&mut fields, "agent", agent);
    }
    if !c.rest.is_empty() {
        return Err(format!("unexpected text after the last field: `{}`", excerpt(c.rest)));
    }
    Ok(fields)
}

/// `request`, and `method`, `path`, `protocol` when it has that shape.
fn request_fields(fields: &mut Fields, request: &str) {
    if request == "-" || request.is_empty() {
        return;
    }
    let request = unescape(request);
    let mut parts = request.split(' ');
    if let (Some(method), Some(path), protocol, None) = (parts.next(), parts.next(), parts.next(), parts.next()) {
        let is_method = !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase() || b == b'_' || b == b'-');
        if is_method && !path.is_empty() && protocol.map_or(true, |p| p.starts_with("HTTP/")) {
            fields.insert("method".into(), Value::String(method.to_owned()));
            fields.insert("path".into(), Value::String(path.to_owned()));
            if let Some(p) = protocol {
                fields.insert("protocol".into(), Value::String(p.to_owned()));
            }
        }
    }
    fields.insert("request".into(), Value::String(request));
}

/// Key-value pairs (logfmt is `kv` with its defaults, read by [`logfmt`]).
fn kv(line: &str, k: &Kv) -> Result<Fields, String> {
    let (fs, vs) = (k.field_split.as_str(), k.value_split.as_str());
    let blank_split = fs.trim().is_empty();
    let mut fields = Map::new();
    let mut rest = line;
    loop {
        // Runs of the separator (and blanks around a visible one) count as one.
        loop {
            let trimmed = if blank_split {
                rest.trim_start()
            } else {
                rest.trim_start_matches(' ')
            };
            match trimmed.strip_prefix(fs) {
                Some(r) => rest = r,
                None => {
                    rest = trimmed;
                    break;
                }
            }
        }
        if rest.is_empty() {
            break;
        }
        let key_end = [rest.find(vs), rest.find(fs)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let key = rest[..key_end].trim_end_matches(' ');
        if key.is_empty() {
            return Err(format!("a value with no key at `{}`", excerpt(rest)));
        }
        if k.quote.is_some_and(|q| key.contains(q)) {
            return Err(format!("a quote in the key `{}`", excerpt(key)));
        }
        rest = &rest[key_end..];
        let Some(after) = rest.strip_prefix(vs) else {
            fields.insert(key.to_owned(), Value::Bool(true));
            continue;
        };
        let after = if blank_split {
            after
        } else {
            after.trim_start_matches(' ')
        };
        let value = match k.quote.filter(|q| after.starts_with(*q)) {
            Some(q) => {
                let (value, r) = quoted_value(&after[q.len_utf8()..], q)
                    .ok_or_else(|| format!("the value of `{}` has no closing quote", excerpt(key)))?;
                if !(r.is_empty() || r.starts_with(fs) || (!blank_split && r.trim_start().starts_with(fs))) {
                    return Err(format!("text after the closing quote of `{}`", excerpt(key)));
                }
                rest = r;
                value
            }
            None => {
                let end = after.find(fs).unwrap_or(after.len());
                rest = &after[end..];
                let v = &after[..end];
                (if blank_split { v } else { v.trim_end_matches(' ') }).to_owned()
            }
        };
        fields.insert(key.to_owned(), Value::String(value));
    }
    if fields.is_empty() {
        return Err("no key=value pair".into());
    }
    Ok(fields)
}

/// logfmt: what [`kv`] reads with its default separators and quote, in
/// one pass over the bytes, each key and value copied once (the bytes it
/// looks for are ASCII, so every cut falls between characters).
fn logfmt(line: &str) -> Result<Fields, String> {
    let mut fields = Map::new();
    let mut rest = line;
    loop {
        // As `kv` does: any whitespace (`trim_start`) before a key.
        let start = rest.bytes().position(|b| b != b' ').unwrap_or(rest.len());
        rest = &rest[start..];
        if rest
            .as_bytes()
            .first()
            .is_some_and(|&b| b >= 0x80 || char::from(b).is_whitespace())
        {
            rest = rest.trim_start();
        }
        if rest.is_empty() {
            break;
        }
        let b = rest.as_bytes();
        let mut key_end = 0;
        let mut quote_in_key = false;
        while let Some(&c) = b.get(key_end) {
            if c == b'=' || c == b' ' {
                break;
            }
            quote_in_key |= c == b'"';
            key_end += 1;
        }
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(format!("a value with no key at `{}`", excerpt(rest)));
        }
        if quote_in_key {
            return Err(format!("a quote in the key `{}`", excerpt(key)));
        }
        if b.get(key_end) != Some(&b'=') {
            rest = &rest[key_end..];
            fields.insert(key.to_owned(), Value::Bool(true));
            continue;
        }
        let after = &rest[key_end + 1..];
        let value = if let Some(quoted) = after.strip_prefix('"') {
            let q = quoted.as_bytes();
            let (value, r) = match q.iter().position(|&c| c == b'"' || c == b'\\') {
                Some(end) if q[end] == b'"' => (quoted[..end].to_owned(), &quoted[end + 1..]),
                _ => quoted_value(quoted, '"')
                    .ok_or_else(|| format!("the value of `{}` has no closing quote", excerpt(key)))?,
            };
            if !(r.is_empty() || r.starts_with(' ')) {
                return Err(format!("text after the closing quote of `{}`", excerpt(key)));
            }
            rest = r;
            value
        } else {
            let end = after.bytes().position(|c| c == b' ').unwrap_or(after.len());
            rest = &after[end..];
            after[..end].to_owned()
        };
        fields.insert(key.to_owned(), Value::String(value));
    }
    if fields.is_empty() {
        return Err("no key=value pair".into());
    }
    Ok(fields)
}

/// The value up to the closing quote `q` (escapes decoded), and what follows it.
fn quoted_value(s: &str, q: char) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Some((out, &s[i + c.len_utf8()..]));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some((_, e)) if e == q || e == '\\' => out.push(e),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 'r')) => out.push('\r'),
            Some((_, 't')) => out.push('\t'),
            Some((_, e)) => {
                out.push('\\');
                out.push(e);
            }
            None => return None,
        }
    }
    None
}

/// The `csv` format: its columns, and the reader and buffers every line
/// reuses (building a reader compiles its state machine).
#[derive(Debug)]
pub struct Csv {
    columns: Vec<String>,
    delimiter: u8,
    /// Behind a lock so that a [`Parser`] stays `Sync`; a cog never waits on it.
    scratch: Mutex<CsvScratch>,
}

#[derive(Debug)]
struct CsvScratch {
    reader: csv_core::Reader,
    /// The unquoted bytes of the fields, one after the other.
    out: Vec<u8>,
    /// Where each field ends in `out`.
    ends: Vec<usize>,
}

impl Csv {
    fn new(columns: Vec<String>, delimiter: u8) -> Csv {
        let reader = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
        let ends = vec![0; columns.len() + 1];
        Csv {
            columns,
            delimiter,
            scratch: Mutex::new(CsvScratch {
                reader,
                out: Vec::new(),
                ends,
            }),
        }
    }

    /// One RFC 4180 record, its fields named by the columns.
    fn record(&self, line: &str) -> Result<Fields, String> {
        check_quotes(line.as_bytes(), self.delimiter)?;
        // A panic while it was held left nothing that `reset` does not clear.
        let mut scratch = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        let CsvScratch { reader, out, ends } = &mut *scratch;
        reader.reset();
        // Unquoting only shortens: the fields fit in the line's length.
        out.resize(line.len().max(1), 0);
        let mut input = line.as_bytes();
        let (mut nout, mut nend) = (0, 0);
        loop {
            let (res, nin, o, e) = reader.read_record(input, &mut out[nout..], &mut ends[nend..]);
            input = &input[nin..];
            nout += o;
            nend += e;
            match res {
                // An empty input tells the reader the line is over.
                csv_core::ReadRecordResult::InputEmpty => {}
                csv_core::ReadRecordResult::OutputFull => out.resize(out.len() * 2, 0),
                csv_core::ReadRecordResult::OutputEndsFull => ends.resize(ends.len() * 2, 0),
                csv_core::ReadRecordResult::Record => break,
                csv_core::ReadRecordResult::End => return Err("no record".into()),
            }
        }
        // What follows the record: only blank lines, which the reader skips.
        let (mut o, mut e) = ([0u8; 16], [0usize; 4]);
        loop {
            let last = input.is_empty();
            let (res, nin, ..) = reader.read_record(input, &mut o, &mut e);
            input = &input[nin..];
            match res {
                csv_core::ReadRecordResult::End => break,
                csv_core::ReadRecordResult::InputEmpty if !last => {}
                _ => return Err("more than one record (a newline outside quotes)".into()),
            }
        }
        if nend != self.columns.len() {
            return Err(format!("{nend} fields, {} columns", self.columns.len()));
        }
        let mut fields = Map::new();
        let mut start = 0;
        for (column, &end) in self.columns.iter().zip(&ends[..nend]) {
            // The line is UTF-8 and the reader cuts only at ASCII bytes.
            let value = std::str::from_utf8(&out[start..end]).map_err(|e| e.to_string())?;
            fields.insert(column.clone(), Value::String(value.to_owned()));
            start = end;
        }
        Ok(fields)
    }
}

/// Refuses a quoted field that is not closed (the csv reader reads one to
/// the end of its input without a word, which would hide a record cut at
/// a newline inside quotes).
fn check_quotes(line: &[u8], delimiter: u8) -> Result<(), String> {
    let mut i = 0;
    let mut field_start = true;
    while i < line.len() {
        if field_start && line[i] == b'"' {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err("a quoted field is not closed (a newline inside quotes?)".into()),
                    Some(b'"') if line.get(i + 1) == Some(&b'"') => i += 2,
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            field_start = false;
            continue;
        }
        field_start = line[i] == delimiter || line[i] == b'\n';
        i += 1;
    }
    Ok(())
}

type Place<D> = Box<dyn Fn(&D) -> String>;

/// Timer key: the summaries of held-back log lines are due.
const SUMMARY: u64 = 1;

/// Positions of the named counts in the meter.
const UNPARSED: usize = 0;
const UNCONVERTED: usize = 1;
const TO_ERROR_OUTPUT: usize = 2;

/// Reads fields out of text; see the [module docs](self) and [`ParseSettings`].
pub struct Parse<D = Event> {
    settings: ParseSettings,
    parser: Parser,
    /// The conversions of `types`.
    types: Vec<(String, Type)>,
    /// How a `timestamp` type reads a time.
    times: Vec<TimeFormat>,
    source: Getter<D, [u8]>,
    /// Whether the source is the raw bytes: unparsed data then get the text as `message`.
    raw_source: bool,
    target: Setter<D, Fields>,
    error_field: Setter<D, Value>,
    place: Place<D>,
    output: Option<TrainOutput>,
    meter: Meter,
    unparsed_log: LogThrottle,
    unconverted_log: LogThrottle,
    summary_timer: Option<TimerId>,
}

impl<D> fmt::Debug for Parse<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parse")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Merges fields into the object at `path` of an event's data (the top
/// level for `"data"`), replacing what is there if it is not an object.
fn event_target(target: &str) -> Setter<Event, Fields> {
    let path = (target != "data").then(|| Path::parse(target));
    Setter::new(target, move |mut e: Event, fields: Fields| {
        let data = e.data_mut();
        let place = match &path {
            Some(p) => p.place(data),
            None => data,
        };
        match place {
            Value::Object(map) => map.extend(fields),
            other => *other = Value::Object(fields),
        }
        e
    })
}

impl ParseSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        Parser::new(self)?;
        self.types()?;
        if self.source != "raw" {
            check_path("source", &self.source)?;
        }
        if self.target != "data" {
            check_path("target", &self.target)?;
        }
        check_path("error_field", &self.error_field)?;
        if let Some(name) = &self.error_output {
            check_output_name("error_output", name)?;
            if self.on_error == OnError::Drop {
                return Err(Error::setting(
                    "error_output",
                    format!("sends what does not parse to output `{name}`, but on_error = \"drop\" drops it: set one of error_output and on_error"),
                ));
            }
        }
        Ok(())
    }

    fn types(&self) -> Result<Vec<(String, Type)>, Error> {
        self.types
            .iter()
            .map(|(field, t)| {
                if field.is_empty() {
                    return Err(Error::setting("types", "a field name must not be empty"));
                }
                Ok((field.clone(), Type::of(&format!("types.{field}"), t)?))
            })
            .collect()
    }
}

impl Parse<Event> {
    /// Parses events as the settings say.
    pub fn new(settings: ParseSettings) -> Result<Self, Error> {
        settings.validate()?;
        let source = event_bytes(&settings.source);
        let target = event_target(&settings.target);
        let error_field = Setter::path(&settings.error_field);
        Ok(Parse::with_accessors(settings, source, target, error_field)?.place(Event::place))
    }
}

impl<D: 'static> Parse<D> {
    /// Parses what `source` reads, merging the fields with `target` and
    /// the reason a line does not parse with `error_field`; the settings'
    /// `source`, `target` and `error_field` are not used (`"raw"` as
    /// `source` still says unparsed data get their text as `message`).
    pub fn with_accessors(
        settings: ParseSettings,
        source: Getter<D, [u8]>,
        target: Setter<D, Fields>,
        error_field: Setter<D, Value>,
    ) -> Result<Self, Error> {
        let parser = Parser::new(&settings)?;
        let types = settings.types()?;
        let interval = Duration::from_secs(settings.log_interval);
        Ok(Parse {
            raw_source: settings.source == "raw",
            parser,
            times: if types.iter().any(|(_, t)| *t == Type::Timestamp) {
                time_formats()
            } else {
                Vec::new()
            },
            types,
            source,
            target,
            error_field,
            place: Box::new(|_| "-".into()),
            output: None,
            meter: Meter::with_named(["unparsed", "unconverted", "to_error_output"]),
            unparsed_log: LogThrottle::new(interval),
            unconverted_log: LogThrottle::new(interval),
            summary_timer: None,
            settings,
        })
    }

    /// How log lines name where a datum came from (for [`Event`]: `origin:line`).
    pub fn place(mut self, place: impl Fn(&D) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// Converts the fields `types` names; a value that does not convert
    /// stays as it is, counted and logged.
    fn convert<N: Next<D> + ?Sized>(&mut self, fields: &mut Fields, datum: &D, ctx: &mut Context<'_, D, N>) {
        for (name, t) in &self.types {
            let Some(v) = fields.get_mut(name) else { continue };
            match t.convert(v, &self.times) {
                Some(c) => *v = c,
                None => {
                    self.meter.count(UNCONVERTED);
                    self.meter.error();
                    match self.unconverted_log.hit(ctx.now()) {
                        Verdict::Log { held } => {
                            if let Some(s) = held {
                                log_unconverted(s, self.unconverted_log.total());
                            }
                            log::warn!(
                                "{}: parse: field `{name}` = {} is not a {}: kept as it is{}",
                                (self.place)(datum),
                                excerpt(&v.to_string()),
                                t.name(),
                                more(self.settings.log_interval)
                            );
                        }
                        Verdict::Hold { due } => {
                            if self.summary_timer.is_none() {
                                self.summary_timer = ctx.at(due, SUMMARY).ok();
                            }
                        }
                    }
                }
            }
        }
    }

    fn summary_at<N: Next<D> + ?Sized>(&mut self, due: std::time::Instant, ctx: &mut Context<'_, D, N>) {
        if self.summary_timer.is_none() {
            // Refused only while finishing, and finish logs the summaries.
            self.summary_timer = ctx.at(due, SUMMARY).ok();
        }
    }

    fn log_unparsed(&self, s: Summary) {
        log::warn!(
            "parse: {} more line(s) that do not parse as {} in the last {:.1}s ({} in all)",
            s.count,
            self.settings.format,
            s.over.as_secs_f64(),
            self.unparsed_log.total()
        );
    }

    fn reject<N: Next<D> + ?Sized>(&mut self, datum: D, reason: String, ctx: &mut Context<'_, D, N>) {
        self.meter.count(UNPARSED);
        self.meter.error();
        match self.unparsed_log.hit(ctx.now()) {
            Verdict::Log { held } => {
                if let Some(s) = held {
                    self.log_unparsed(s);
                }
                tourbillon::event_warn!(
                    IdText(ctx.id_of(&datum)),
                    "{}: does not parse as {}: {reason}; {}{}",
                    (self.place)(&datum),
                    self.settings.format,
                    match (&self.settings.error_output, self.output, self.settings.on_error) {
                        (Some(name), Some(_), _) => format!("sent to output `{name}`"),
                        (_, _, OnError::Drop) => "dropped".into(),
                        (_, _, OnError::Keep) => format!("kept with the reason in `{}`", self.settings.error_field),
                    },
                    more(self.settings.log_interval)
                );
            }
            Verdict::Hold { due } => self.summary_at(due, ctx),
        }
        if self.output.is_none() && self.settings.on_error == OnError::Drop {
            return self.meter.discard(&datum, ctx);
        }
        let datum = if self.raw_source {
            let message = message_of(self.source.get(&datum).unwrap_or_default());
            self.target.set(datum, message)
        } else {
            datum
        };
        let datum = self.error_field.set(datum, Value::String(reason));
        self.meter.emitted();
        match self.output {
            Some(out) => {
                self.meter.count(TO_ERROR_OUTPUT);
                ctx.emit_to(out, datum)
            }
            None => ctx.emit(datum),
        }
    }
}

fn more(interval: u64) -> String {
    match interval {
        0 => String::new(),
        n => format!(" (more within {n}s are summarized)"),
    }
}

fn log_unconverted(s: Summary, total: u64) {
    log::warn!(
        "parse: {} more value(s) that do not convert to their type in the last {:.1}s ({total} in all)",
        s.count,
        s.over.as_secs_f64(),
    );
}

impl<D: 'static> Metered for Parse<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Parse<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let parsed = match self.source.get(&datum) {
            Some(bytes) => {
                self.meter.took(bytes.len());
                match std::str::from_utf8(bytes) {
                    Ok(text) => self.parser.parse(text),
                    Err(e) => Err(format!("not UTF-8 text ({e})")),
                }
            }
            None => {
                self.meter.took(0);
                Err(format!("nothing to parse at `{}`", self.source))
            }
        };
        match parsed {
            Ok(mut fields) => {
                if !self.types.is_empty() {
                    self.convert(&mut fields, &datum, ctx);
                }
                let datum = self.target.set(datum, fields);
                self.meter.emit(datum, ctx)
            }
            Err(reason) => self.reject(datum, reason, ctx),
        }
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(name) = &self.settings.error_output {
            self.output = ctx.output(name);
            if self.output.is_none() {
                log::error!(
                    "parse: the train has no output `{name}` (its cogs' outputs were not asked): what does not parse is kept on the train with the reason in `{}`",
                    self.settings.error_field
                );
            }
        }
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        if key == SUMMARY {
            self.summary_timer = None;
            if let Some(s) = self.unparsed_log.summary(ctx.now()) {
                self.log_unparsed(s);
            }
            if let Some(s) = self.unconverted_log.summary(ctx.now()) {
                log_unconverted(s, self.unconverted_log.total());
            }
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        if let Some(s) = self.unparsed_log.flush(ctx.now()) {
            self.log_unparsed(s);
        }
        if let Some(s) = self.unconverted_log.flush(ctx.now()) {
            log_unconverted(s, self.unconverted_log.total());
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
            "parse format={} source={} target={} error_field={}",
            self.settings.format, self.source, self.target, self.settings.error_field
        )?;
        if let Some(p) = &self.settings.pattern {
            write!(f, " pattern={p:?}")?;
        }
        if !self.types.is_empty() {
            let types: Vec<String> = self.types.iter().map(|(n, t)| format!("{n}={}", t.name())).collect();
            write!(f, " types={}", types.join(","))?;
        }
        match (&self.settings.error_output, self.settings.on_error) {
            (Some(name), _) => write!(f, " error_output={name}"),
            (None, OnError::Keep) => f.write_str(" on_error=keep"),
            (None, OnError::Drop) => f.write_str(" on_error=drop"),
        }
    }
}
