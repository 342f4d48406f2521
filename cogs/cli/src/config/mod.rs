//! Configuration of the `tourbillon` binary: layered sources, trains built
//! from config sections, errors that name the culprit.
//!
//! Layers, each over the one before: embedded defaults (and every cog's own
//! defaults) < a file (TOML, or JSON by its extension) < the environment
//! (`TOURBILLON__SECTION__KEY`, double underscores between keys, a number
//! for a position in a list: `TOURBILLON__TRAINS__WEB__COGS__2__FSYNC=true`)
//! < `--set section.key=value` flags (`--set trains.web.cogs[2].fsync=true`).
//! The file and the environment are read with the `config` crate; the layers
//! are merged here so every value remembers where it came from.
//!
//! ```toml
//! [log]
//! level = "info"                      # off, error, warn, info, debug, trace
//! filters = { "tourbillon_cogs::supply::tail" = "debug" }
//!
//! [daemon]
//! pidfile = "/run/tourbillon.pid"
//!
//! [trains.web]
//! cogs = [
//!     { kind = "tail", include = ["/var/log/nginx/*.json"] },
//!     { kind = "json_decode", on_error = "wrap" },
//!     { kind = "json_encode" },
//!     { kind = "file", path = "/var/log/out.jsonl" },
//! ]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tourbillon::logging::LogSettings;

use crate::daemon::DaemonSettings;

/// The embedded defaults: the `[log]` and `[daemon]` sections.
pub const DEFAULTS: &str = r#"
[log]
level = "info"
target = "stderr"

[daemon]
detach = false
finish_deadline_secs = 60
"#;

/// The environment variables' prefix (followed by `__`).
pub const ENV_PREFIX: &str = "TOURBILLON";

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A documented default (embedded, or the cog's settings struct).
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A `--set` flag.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(p) => write!(f, "file {}", p.display()),
            Origin::Env(v) => write!(f, "env {v}"),
            Origin::Flag(s) => write!(f, "flag --set {s}"),
        }
    }
}

/// One thing wrong with the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the culprit is: the file, variable or flag it came from.
    pub origin: Option<Origin>,
    /// The full key path (`trains.web.cogs[2].max_line_bytes`), empty for the whole source.
    pub path: String,
    /// What is wrong, and what was expected.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(o) = &self.origin {
            write!(f, "{o}: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// All the errors of one configuration, reported together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A key path: `trains.web.cogs[2].fsync`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(Vec<Seg>);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// This path and then `key`.
    pub fn key(&self, key: &str) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path and then position `i` of a list.
    pub fn index(&self, i: usize) -> KeyPath {
        let mut p = self.clone();
        p.0.push(Seg::Index(i));
        p
    }

    /// Parses `a.b[2].c`.
    pub fn parse(text: &str) -> Result<KeyPath, String> {
        let mut p = KeyPath::default();
        for part in text.split('.') {
            let (name, mut rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if name.is_empty() {
                return Err(format!("`{text}` is not a key path (expected section.key, key[2].key)"));
            }
            p.0.push(Seg::Key(name.to_owned()));
            while !rest.is_empty() {
                let close = rest.find(']').ok_or_else(|| format!("`{text}`: `[` without `]`"))?;
                let i = rest[1..close]
                    .parse()
                    .map_err(|_| format!("`{text}`: `{}` is not a list position", &rest[1..close]))?;
                p.0.push(Seg::Index(i));
                rest = &rest[close + 1..];
            }
        }
        Ok(p)
    }

    /// The environment variable that sets this path.
    pub fn env_var(&self) -> String {
        let mut s = String::from(ENV_PREFIX);
        for seg in &self.0 {
            s.push_str("__");
            match seg {
                Seg::Key(k) => s.push_str(&k.to_uppercase()),
                Seg::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The merged configuration, with the origin of every value.
#[derive(Clone, Debug)]
pub struct Layered {
    /// The merged tree.
    pub value: Value,
    origins: BTreeMap<KeyPath, Origin>,
    /// The configuration file, if any.
    pub file: Option<PathBuf>,
}

impl Layered {
    /// Where the value at `path` (or the nearest enclosing one) came from.
    pub fn origin(&self, path: &KeyPath) -> Origin {
        let mut p = path.clone();
        loop {
            if let Some(o) = self.origins.get(&p) {
                return o.clone();
            }
            if p.0.pop().is_none() {
                return Origin::Default;
            }
        }
    }

    /// The origins of every value set below `path` (not defaults).
    fn origins_below(&self, path: &KeyPath) -> impl Iterator<Item = (&KeyPath, &Origin)> {
        let path = path.clone();
        self.origins.iter().filter(move |(k, _)| k.0.starts_with(&path.0))
    }

    fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        let origin = self
            .origins
            .get(path)
            .cloned()
            .or_else(|| self.origins_below(path).next().map(|(_, o)| o.clone()))
            .or_else(|| Some(self.origin(path)))
            .filter(|o| *o != Origin::Default)
            .or_else(|| self.file.clone().map(Origin::File));
        ConfigError {
            origin,
            path: path.to_string(),
            message: message.into(),
        }
    }
}

/// What the configuration is made of, before it is read.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Embedded defaults to start from (TOML); [`DEFAULTS`] is always under them.
    pub embedded: Option<String>,
    /// The configuration file.
    pub file: Option<PathBuf>,
    /// Read `TOURBILLON__*` variables from this list (normally `std::env::vars()`).
    pub env: Vec<(String, String)>,
    /// `--set key=value` flags, in order.
    pub sets: Vec<String>,
}

fn to_json(c: config::Config) -> Result<Value, String> {
    c.try_deserialize::<Value>().map_err(|e| e.to_string())
}

fn parse_toml(text: &str) -> Result<Value, String> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .map_err(|e| e.to_string())
        .and_then(to_json)
}

/// Finds the numbers of a TOML text that a setting cannot take: integers
/// outside the 64-bit signed range (TOML's: the config reader would fail
/// on the whole file without naming the key) and `nan`/`inf` (which would
/// read as nothing). Each with its key path below `at` and why; none if
/// the text does not parse (the reader then says why).
fn unfit_numbers(text: &str, at: &KeyPath) -> Vec<(KeyPath, String)> {
    let found = std::cell::RefCell::new(Vec::new());
    if let Ok(de) = toml::de::Deserializer::parse(text) {
        let seed = Scan {
            path: at.clone(),
            found: &found,
        };
        // A parse error is the config reader's to report.
        let _ = serde::de::DeserializeSeed::deserialize(seed, de);
    }
    found.into_inner()
}

/// Walks a parsed TOML value, noting the numbers no setting can take.
struct Scan<'a> {
    path: KeyPath,
    found: &'a std::cell::RefCell<Vec<(KeyPath, String)>>,
}

const OUT_OF_RANGE: &str = "is out of range (integers go from -9223372036854775808 to 9223372036854775807)";

impl Scan<'_> {
    fn note(&self, what: String) {
        self.found.borrow_mut().push((self.path.clone(), what));
    }
    fn at(&self, path: KeyPath) -> Scan<'_> {
        Scan {
            path,
            found: self.found,
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Scan<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Scan<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        if i64::try_from(n).is_err() {
            self.note(format!("`{n}` {OUT_OF_RANGE}"));
        }
        Ok(())
    }
    fn visit_i128<E>(self, n: i128) -> Result<(), E> {
        self.note(format!("`{n}` {OUT_OF_RANGE}"));
        Ok(())
    }
    fn visit_u128<E>(self, n: u128) -> Result<(), E> {
        self.note(format!("`{n}` {OUT_OF_RANGE}"));
        Ok(())
    }
    fn visit_f64<E>(self, x: f64) -> Result<(), E> {
        if !x.is_finite() {
            let text = match x {
                x if x.is_nan() => "nan",
                x if x > 0.0 => "inf",
                _ => "-inf",
            };
            self.note(format!("`{text}` is not a finite number"));
        }
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        while seq.next_element_seed(self.at(self.path.index(i)))?.is_some() {
            i += 1;
        }
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(k) = map.next_key::<String>()? {
            map.next_value_seed(self.at(self.path.key(&k)))?;
        }
        Ok(())
    }
}

/// The number an environment variable's text reads as, if no setting can
/// take it (see [`unfit_numbers`]): what the config reader would make of
/// it is a float, or nothing.
fn unfit_env_number(text: &str) -> Option<String> {
    let t = text.trim();
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse::<i64>().is_err().then(|| format!("`{t}` {OUT_OF_RANGE}"));
    }
    match t.parse::<f64>() {
        Ok(x) if !x.is_finite() => Some(format!("`{t}` is not a finite number")),
        _ => None,
    }
}

/// The key path an environment variable sets (`TOURBILLON__TRAINS__WEB__COGS__2__FSYNC`
/// sets `trains.web.cogs[2].fsync`).
fn env_key_path(var: &str) -> KeyPath {
    let mut p = KeyPath::default();
    for part in var.split("__").skip(1) {
        match part.parse::<usize>() {
            Ok(i) if !p.0.is_empty() => p = p.index(i),
            _ => p = p.key(&part.to_lowercase()),
        }
    }
    p
}

/// Reads and merges the sources; every problem is returned, not only the first.
pub fn load(sources: &Sources) -> Result<Layered, ConfigErrors> {
    let mut errors = Vec::new();
    let mut layered = Layered {
        value: parse_toml(DEFAULTS).expect("the embedded defaults parse"),
        origins: BTreeMap::new(),
        file: sources.file.clone(),
    };
    if let Some(text) = &sources.embedded {
        match parse_toml(text) {
            Ok(v) => merge(&mut layered, v, KeyPath::default(), &|_| Origin::Default, &mut errors),
            Err(e) => errors.push(ConfigError {
                origin: Some(Origin::Default),
                path: String::new(),
                message: e,
            }),
        }
    }
    if let Some(path) = &sources.file {
        match read_file(path) {
            Ok(v) => {
                let o = Origin::File(path.clone());
                merge(&mut layered, v, KeyPath::default(), &|_| o.clone(), &mut errors)
            }
            Err(e) => errors.extend(e),
        }
    }
    let env: Vec<_> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .filter(|(k, v)| match unfit_env_number(v) {
            Some(message) => {
                errors.push(ConfigError {
                    origin: Some(Origin::Env(k.clone())),
                    path: env_key_path(k).to_string(),
                    message,
                });
                false
            }
            None => true,
        })
        .cloned()
        .collect();
    if !env.is_empty() {
        let source = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env.iter().cloned().collect()));
        match config::Config::builder()
            .add_source(source)
            .build()
            .map_err(|e| e.to_string())
            .and_then(to_json)
        {
            Ok(v) => {
                // The variable that set `p` (or, for an error above a leaf, the first below it).
                let var = |p: &KeyPath| {
                    let want = p.env_var();
                    let found = env.iter().map(|(k, _)| k).find(|k| {
                        let k = k.to_uppercase();
                        k == want || k.starts_with(&format!("{want}__"))
                    });
                    Origin::Env(found.cloned().unwrap_or(want))
                };
                merge(&mut layered, v, KeyPath::default(), &var, &mut errors)
            }
            Err(e) => errors.push(ConfigError {
                origin: Some(Origin::Env(
                    env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", "),
                )),
                path: String::new(),
                message: e,
            }),
        }
    }
    for set in &sources.sets {
        match parse_set(set) {
            Ok((path, value)) => {
                let mut tree = value;
                for seg in path.0.iter().rev() {
                    tree = match seg {
                        Seg::Key(k) => Value::Object(Map::from_iter([(k.clone(), tree)])),
                        Seg::Index(i) => Value::Object(Map::from_iter([(i.to_string(), tree)])),
                    };
                }
                let o = Origin::Flag(set.clone());
                merge(&mut layered, tree, KeyPath::default(), &|_| o.clone(), &mut errors)
            }
            Err(message) => errors.push(ConfigError {
                origin: Some(Origin::Flag(set.clone())),
                path: String::new(),
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(layered)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read_file(path: &Path) -> Result<Value, Vec<ConfigError>> {
    let fail = |message: String| {
        vec![ConfigError {
            origin: Some(Origin::File(path.to_owned())),
            path: String::new(),
            message,
        }]
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the file: {e}")))?;
    let format = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => config::FileFormat::Json,
        _ => config::FileFormat::Toml,
    };
    if format == config::FileFormat::Toml {
        let unfit = unfit_numbers(&text, &KeyPath::default());
        if !unfit.is_empty() {
            return Err(unfit
                .into_iter()
                .map(|(p, message)| ConfigError {
                    origin: Some(Origin::File(path.to_owned())),
                    path: p.to_string(),
                    message,
                })
                .collect());
        }
    }
    config::Config::builder()
        .add_source(config::File::from_str(&text, format))
        .build()
        .map_err(|e| fail(e.to_string().trim_end().to_owned()))
        .and_then(|c| to_json(c).map_err(fail))
}

/// Parses `section.key=value`: the value as a TOML value (`true`, `5`,
/// `"text"`, `["a", "b"]`), else as plain text.
fn parse_set(set: &str) -> Result<(KeyPath, Value), String> {
    let (key, value) = set
        .split_once('=')
        .ok_or_else(|| format!("`{set}` is not key=value (e.g. --set log.level=debug)"))?;
    let path = KeyPath::parse(key.trim())?;
    let text = format!("v = {value}");
    if let Some((_, why)) = unfit_numbers(&text, &KeyPath::default()).into_iter().next() {
        return Err(format!("{path}: {why}"));
    }
    let value = match parse_toml(&text) {
        Ok(Value::Object(mut m)) => m.remove("v").unwrap_or(Value::Null),
        _ => Value::String(value.to_owned()),
    };
    Ok((path, value))
}

/// Lays `over` on `layered.value` at `path`, recording origins of leaves.
fn merge(
    layered: &mut Layered,
    over: Value,
    path: KeyPath,
    origin: &dyn Fn(&KeyPath) -> Origin,
    errors: &mut Vec<ConfigError>,
) {
    fn at<'a>(root: &'a mut Value, path: &KeyPath) -> &'a mut Value {
        let mut v = root;
        for seg in &path.0 {
            v = match seg {
                Seg::Key(k) => {
                    if !v.is_object() {
                        *v = Value::Object(Map::new());
                    }
                    v.as_object_mut().unwrap().entry(k.clone()).or_insert(Value::Null)
                }
                Seg::Index(i) => &mut v.as_array_mut().expect("an index only follows a list")[*i],
            }
        }
        v
    }
    match over {
        Value::Object(map) => {
            let base_is_list = at(&mut layered.value, &path).is_array();
            for (k, v) in map {
                let child = if base_is_list {
                    let len = at(&mut layered.value, &path).as_array().map_or(0, Vec::len);
                    match k.parse::<usize>() {
                        Ok(i) if i < len => path.index(i),
                        _ => {
                            let p = path.key(&k);
                            errors.push(ConfigError {
                                origin: Some(origin(&p)),
                                path: path.to_string(),
                                message: format!(
                                    "`{k}` is not a position in this list of {len} (0 to {})",
                                    len.max(1) - 1
                                ),
                            });
                            continue;
                        }
                    }
                } else {
                    path.key(&k)
                };
                merge(layered, v, child, origin, errors);
            }
        }
        leaf => {
            // A list replaces the list below it whole; so does any value.
            layered
                .origins
                .retain(|k, _| !(k.0.starts_with(&path.0) && k.0.len() > path.0.len()));
            layered.origins.insert(path.clone(), origin(&path));
            *at(&mut layered.value, &path) = leaf;
        }
    }
}

/// The whole configuration, checked.
#[derive(Debug)]
pub struct Config {
    /// `[log]`.
    pub log: LogSettings,
    /// `[daemon]`.
    pub daemon: DaemonSettings,
    /// The trains, by name, in name order.
    pub trains: Vec<TrainConfig>,
    /// The layers it was read from.
    pub layered: Layered,
}

/// One train's section.
#[derive(Debug)]
pub struct TrainConfig {
    /// The train's name (`web` in `[trains.web]`).
    pub name: String,
    /// Its cogs in order.
    pub cogs: Vec<CogConfig>,
}

/// One cog of a train, as configured.
#[derive(Debug)]
pub struct CogConfig {
    /// Its kind (`tail`).
    pub kind: String,
    /// Its key path (`trains.web.cogs[0]`).
    pub path: KeyPath,
    /// Its settings as given (without `kind`), before the cog's defaults.
    pub settings: Value,
}

fn take<T: DeserializeOwned>(layered: &Layered, path: &KeyPath, v: Value, errors: &mut Vec<ConfigError>) -> Option<T> {
    deserialize_at(layered, path, v).map_err(|e| errors.push(e)).ok()
}

/// Deserializes `v` (found at `path`), naming the exact key of an error.
pub fn deserialize_at<T: DeserializeOwned>(layered: &Layered, path: &KeyPath, v: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(|e| {
        let mut p = path.clone();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Map { key } => p = p.key(key),
                serde_path_to_error::Segment::Seq { index } => p = p.index(*index),
                serde_path_to_error::Segment::Enum { variant } => p = p.key(variant),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        layered.error(&p, e.into_inner().to_string())
    })
}

impl Config {
    /// Checks the structure (sections, trains, cog kinds against `known`);
    /// the cogs' own settings are checked when they are built.
    pub fn from_layers(layered: Layered, known: &[&str]) -> Result<Config, ConfigErrors> {
        let (config, errors) = Config::checked(layered, known);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Like [`from_layers`](Self::from_layers), but returns what could be
    /// read along with every error, so that the cogs can be checked too
    /// (sections in error are replaced by their defaults).
    pub fn checked(layered: Layered, known: &[&str]) -> (Config, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let root = KeyPath::default();
        let mut top = match &layered.value {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        let log: Option<LogSettings> = take(
            &layered,
            &root.key("log"),
            top.remove("log").unwrap_or_default(),
            &mut errors,
        );
        if let Some(log) = &log {
            let lp = root.key("log");
            if log.level.parse::<log::LevelFilter>().is_err() {
                errors.push(layered.error(
                    &lp.key("level"),
                    format!("`{}` is not one of off, error, warn, info, debug, trace", log.level),
                ));
            }
            for (module, level) in &log.filters {
                if level.parse::<log::LevelFilter>().is_err() {
                    errors.push(layered.error(
                        &lp.key("filters").key(module),
                        format!("`{level}` is not one of off, error, warn, info, debug, trace"),
                    ));
                }
            }
            if log.target == tourbillon::logging::LogTarget::File && log.file.is_none() {
                errors.push(layered.error(&lp.key("file"), "required with target = \"file\": the log file"));
            }
            if log.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
                errors.push(layered.error(
                    &lp.key("file"),
                    "an empty path: name a file or directory, or leave the key out",
                ));
            }
        }
        let daemon = take(
            &layered,
            &root.key("daemon"),
            top.remove("daemon").unwrap_or_default(),
            &mut errors,
        );
        if let Some(DaemonSettings { umask: Some(m), .. }) = &daemon {
            if let Err(crate::daemon::DaemonError::Setting { message, .. }) = crate::daemon::parse_umask(m) {
                errors.push(layered.error(&root.key("daemon").key("umask"), message));
            }
        }
        let trains_v = top.remove("trains").unwrap_or(Value::Object(Map::new()));
        for (k, _) in top {
            errors.push(layered.error(
                &root.key(&k),
                "unknown section (expected one of `log`, `daemon`, `trains`)".to_owned(),
            ));
        }
        let mut trains = Vec::new();
        let tp = root.key("trains");
        match trains_v {
            Value::Object(m) => {
                for (name, t) in m {
                    let p = tp.key(&name);
                    if let Some(train) = train_config(&layered, &p, name, t, known, &mut errors) {
                        trains.push(train);
                    }
                }
            }
            other => errors.push(layered.error(&tp, format!("expected a table of trains, found {}", kind_of(&other)))),
        }
        if trains.is_empty() && errors.is_empty() {
            errors.push(layered.error(&tp, "no train is configured (add a [trains.NAME] section with `cogs`)"));
        }
        let config = Config {
            log: log.unwrap_or_default(),
            daemon: daemon.unwrap_or_default(),
            trains,
            layered,
        };
        (config, errors)
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn train_config(
    layered: &Layered,
    p: &KeyPath,
    name: String,
    t: Value,
    known: &[&str],
    errors: &mut Vec<ConfigError>,
) -> Option<TrainConfig> {
    let Value::Object(mut t) = t else {
        errors.push(layered.error(p, format!("expected a table with `cogs`, found {}", kind_of(&t))));
        return None;
    };
    let cogs_v = t.remove("cogs");
    for (k, _) in t {
        errors.push(layered.error(&p.key(&k), "unknown key in a train (expected `cogs`)"));
    }
    let cp = p.key("cogs");
    let list = match cogs_v {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) | None => {
            errors.push(layered.error(&cp, "a train needs at least one cog: cogs = [{ kind = \"...\" }, ...]"));
            return None;
        }
        Some(other) => {
            errors.push(layered.error(&cp, format!("expected a list of cogs, found {}", kind_of(&other))));
            return None;
        }
    };
    let mut cogs = Vec::new();
    for (i, c) in list.into_iter().enumerate() {
        let path = cp.index(i);
        let Value::Object(mut c) = c else {
            errors.push(layered.error(&path, format!("expected a table with `kind`, found {}", kind_of(&c))));
            continue;
        };
        let kind = match c.remove("kind") {
            Some(Value::String(k)) if known.contains(&k.as_str()) => k,
            Some(Value::String(k)) => {
                errors.push(layered.error(
                    &path.key("kind"),
                    format!("unknown cog kind `{k}` (known kinds: {})", known.join(", ")),
                ));
                continue;
            }
            Some(other) => {
                errors.push(layered.error(
                    &path.key("kind"),
                    format!("expected a string, found {}", kind_of(&other)),
                ));
                continue;
            }
            None => {
                errors.push(layered.error(&path, format!("a cog needs `kind` (known kinds: {})", known.join(", "))));
                continue;
            }
        };
        cogs.push(CogConfig {
            kind,
            path,
            settings: Value::Object(c),
        });
    }
    Some(TrainConfig { name, cogs })
}

/// Renders the effective settings of a cog, each with where it came from:
/// a key the configuration gives has the origin of the layer that set it
/// last; the others are defaults.
pub fn describe_settings(layered: &Layered, cog: &CogConfig, effective: &Value) -> Vec<(String, String, Origin)> {
    let mut out = Vec::new();
    if let Value::Object(m) = effective {
        for (k, v) in m {
            let given = cog.settings.get(k).is_some();
            let origin = if given {
                layered.origin(&cog.path.key(k))
            } else {
                Origin::Default
            };
            out.push((k.clone(), v.to_string(), origin));
        }
    }
    out
}

/// Settings that carry their own defaults: what a registry entry needs.
pub trait CogSettings: Serialize + DeserializeOwned + Default + 'static {}
impl<T: Serialize + DeserializeOwned + Default + 'static> CogSettings for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_parse_and_print() {
        let p = KeyPath::parse("trains.web.cogs[2].max_line_bytes").unwrap();
        assert_eq!(p.to_string(), "trains.web.cogs[2].max_line_bytes");
        assert_eq!(p.env_var(), "TOURBILLON__TRAINS__WEB__COGS__2__MAX_LINE_BYTES");
        assert!(KeyPath::parse("a..b").is_err());
        assert!(KeyPath::parse("a[x]").is_err());
    }

    #[test]
    fn layers_override_in_order_and_remember_origins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[trains.a]\ncogs = [{ kind = \"x\", n = 1 }, { kind = \"y\", m = 2 }]\n[log]\nlevel = \"warn\"\n",
        )
        .unwrap();
        let l = load(&Sources {
            file: Some(file.clone()),
            env: vec![("TOURBILLON__TRAINS__A__COGS__1__M".into(), "5".into())],
            sets: vec!["trains.a.cogs[0].n=7".into(), "log.level=debug".into()],
            ..Sources::default()
        })
        .unwrap();
        assert_eq!(l.value["trains"]["a"]["cogs"][0]["n"], 7);
        assert_eq!(l.value["trains"]["a"]["cogs"][1]["m"], 5);
        assert_eq!(l.value["log"]["level"], "debug");
        assert_eq!(l.value["log"]["target"], "stderr");
        let o = |p: &str| l.origin(&KeyPath::parse(p).unwrap());
        assert_eq!(o("trains.a.cogs[1].kind"), Origin::File(file));
        assert_eq!(
            o("trains.a.cogs[1].m"),
            Origin::Env("TOURBILLON__TRAINS__A__COGS__1__M".into())
        );
        assert_eq!(o("trains.a.cogs[0].n"), Origin::Flag("trains.a.cogs[0].n=7".into()));
        assert_eq!(o("log.target"), Origin::Default);
    }

    #[test]
    fn an_index_past_the_list_is_an_error_naming_the_variable() {
        let err = load(&Sources {
            embedded: Some("[trains.a]\ncogs = [{ kind = \"x\" }]".into()),
            env: vec![("TOURBILLON__TRAINS__A__COGS__3__M".into(), "5".into())],
            ..Sources::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("env TOURBILLON__TRAINS__A__COGS__3"), "{text}");
        assert!(
            text.contains("trains.a.cogs: `3` is not a position in this list of 1"),
            "{text}"
        );
    }
}
