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

mod error;
mod key_path;
mod load;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use tourbillon::logging::LogSettings;

use crate::daemon::DaemonSettings;

pub use error::{ConfigError, ConfigErrors, Origin};
pub use key_path::{KeyPath, ENV_PREFIX};
pub use load::{load, Layered, Sources, DEFAULTS};

/// The whole configuration, checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// `[log]`.
    pub log: LogSettings,
    /// `[daemon]`.
    pub daemon: DaemonSettings,
    /// `[api]`.
    pub api: crate::metrics::ApiSettings,
    /// The trains, by name, in name order.
    pub trains: Vec<TrainConfig>,
    /// The layers it was read from.
    pub layered: Layered,
    /// What is suspicious but not wrong (an output nobody reads): printed
    /// by `check`, logged at start.
    pub warnings: Vec<ConfigError>,
}

/// One train's section.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The train's name (`web` in `[trains.web]`).
    pub name: String,
    /// Its cogs in order.
    pub cogs: Vec<CogConfig>,
    /// The outputs it reads (`inputs = ["parse", "parse.errors"]`): `TRAIN`
    /// is what falls off the end of a train, `TRAIN.NAME` its output
    /// `NAME`. None without the key; the names that are strings when some
    /// are not (those are errors).
    pub inputs: Option<Vec<String>>,
    /// The capacity of its input queue (`queue = N`), if set.
    pub queue: Option<usize>,
}

/// One cog of a train, as configured.
#[derive(Clone, Debug)]
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
        layered.error(&p, plainly(&e.into_inner().to_string()))
    })
}

/// The top-level sections of a configuration.
pub const SECTIONS: &[&str] = &["log", "daemon", "api", "trains"];

/// Like [`deserialize_at`], but finds every wrong key of a table, not
/// only the first: each key is tried alone over the defaults. Errors
/// that only a combination of keys makes (none alone is wrong) are
/// reported as [`deserialize_at`] reports them.
pub fn deserialize_all_at<T: DeserializeOwned + Serialize + Default>(
    layered: &Layered,
    path: &KeyPath,
    v: Value,
) -> Result<T, Vec<ConfigError>> {
    let first = match deserialize_at::<T>(layered, path, v.clone()) {
        Ok(t) => return Ok(t),
        Err(e) => e,
    };
    let (Value::Object(given), Ok(Value::Object(defaults))) = (&v, serde_json::to_value(T::default())) else {
        return Err(vec![first]);
    };
    let mut errors = Vec::new();
    for (key, value) in given {
        let mut alone = defaults.clone();
        alone.insert(key.clone(), value.clone());
        if let Err(e) = deserialize_at::<T>(layered, path, Value::Object(alone)) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        errors.push(first);
    }
    Err(errors)
}

/// Serde's messages, said so that a person can act on them: an unknown
/// key names the nearest known one; a table or a text where a list
/// belongs says so.
pub fn plainly(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let word = rest.split('`').next().unwrap_or_default();
        let known: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        if let Some(near) = nearest(word, known.iter().copied()) {
            return format!(
                "unknown field `{word}`: did you mean `{near}`?{}",
                message
                    .split_once(", expected")
                    .map_or(String::new(), |(_, e)| format!(" (expected{e})"))
            );
        }
        return message.to_owned();
    }
    for (what, plain) in [
        (
            "invalid type: map, expected a sequence",
            "a table where a list belongs: write [ ... ], not { ... }",
        ),
        (
            "invalid type: sequence, expected a map",
            "a list where a table belongs: write { key = value, ... }, not [ ... ]",
        ),
    ] {
        if message.starts_with(what) {
            return plain.to_owned();
        }
    }
    if let Some(rest) = message.strip_prefix("invalid type: string ") {
        if rest.ends_with("expected a sequence") {
            let text = rest.trim_end_matches(", expected a sequence");
            return format!("a text where a list belongs: write [{text}]");
        }
    }
    message.to_owned()
}

/// The word of `known` nearest to `word`, if it is near enough to be a
/// slip of the keyboard (one edit in short words, two in longer ones).
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let most = if word.chars().count() < 5 { 1 } else { 2 };
    known
        .into_iter()
        .map(|k| (edits(word, k), k))
        .filter(|&(d, k)| d <= most && k != word)
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counting once.
fn edits(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
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
        let api: Option<crate::metrics::ApiSettings> = take(
            &layered,
            &root.key("api"),
            top.remove("api").unwrap_or_else(|| Value::Object(Map::new())),
            &mut errors,
        );
        if let Some(Err(message)) = api.as_ref().map(|a| a.addr()) {
            errors.push(layered.error(&root.key("api").key("listen"), message));
        }
        let trains_v = top.remove("trains").unwrap_or(Value::Object(Map::new()));
        for (k, _) in top {
            let near =
                nearest(&k, SECTIONS.iter().copied()).map_or(String::new(), |n| format!(": did you mean `{n}`?"));
            let all: Vec<String> = SECTIONS.iter().map(|s| format!("`{s}`")).collect();
            errors.push(layered.error(
                &root.key(&k),
                format!("unknown section{near} (expected one of {})", all.join(", ")),
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
            api: api.unwrap_or_default(),
            trains,
            layered,
            warnings: Vec::new(),
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
    let inputs = t
        .remove("inputs")
        .map(|v| inputs_of(layered, &p.key("inputs"), v, errors));
    let queue = t.remove("queue").and_then(|v| match v.as_u64() {
        Some(n) if n >= 1 && usize::try_from(n).is_ok() => Some(n as usize),
        _ => {
            errors.push(layered.error(
                &p.key("queue"),
                format!(
                    "expected a whole number from 1 on (how many data its input queue holds), found {}",
                    shown(&v)
                ),
            ));
            None
        }
    });
    if queue.is_some() && inputs.is_none() {
        errors.push(layered.error(
            &p.key("queue"),
            "this train has no `inputs`: `queue` is the capacity of the queue of what a train reads from other trains",
        ));
    }
    for (k, _) in t {
        errors.push(layered.error(
            &p.key(&k),
            "unknown key in a train (expected `cogs`, `inputs`, `queue`)",
        ));
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
                    format!(
                        "unknown cog kind `{k}`{} (known kinds: {})",
                        nearest(&k, known.iter().copied()).map_or(String::new(), |n| format!(": did you mean `{n}`?")),
                        known.join(", ")
                    ),
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
    Some(TrainConfig {
        name,
        cogs,
        inputs,
        queue,
    })
}

/// The names of `inputs`, each a string; every other value is an error.
fn inputs_of(layered: &Layered, p: &KeyPath, v: Value, errors: &mut Vec<ConfigError>) -> Vec<String> {
    let list = match v {
        Value::Array(list) if !list.is_empty() => list,
        Value::Array(_) => {
            errors.push(layered.error(
                p,
                "an empty list: name the trains this train reads (`inputs = [\"parse\"]`), \
                 or leave the key out and give the train a supply",
            ));
            return Vec::new();
        }
        other => {
            errors.push(layered.error(
                p,
                format!(
                    "expected a list of train outputs (`inputs = [\"parse\", \"parse.errors\"]`), found {}",
                    shown(&other)
                ),
            ));
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for (i, v) in list.into_iter().enumerate() {
        match v {
            Value::String(s) if !s.is_empty() => names.push(s),
            other => errors.push(layered.error(
                &p.index(i),
                format!(
                    "expected the name of a train (`parse`) or of a train's output (`parse.errors`), found {}",
                    shown(&other)
                ),
            )),
        }
    }
    names
}

/// A value for a message: what kind it is, and the value when short.
fn shown(v: &Value) -> String {
    match v {
        Value::Bool(_) | Value::Number(_) | Value::String(_) => format!("{} `{v}`", kind_of(v)),
        _ => kind_of(v).to_owned(),
    }
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
mod plain_tests {
    use super::{nearest, plainly};

    #[test]
    fn a_slip_finds_its_word_and_a_stranger_finds_none() {
        let keys = ["include", "exclude", "checkpoint_dir", "batch"];
        assert_eq!(nearest("inlcude", keys), Some("include"));
        assert_eq!(nearest("checkpoint_dri", keys), Some("checkpoint_dir"));
        assert_eq!(nearest("bacth", keys), Some("batch"));
        assert_eq!(nearest("colour", keys), None);
    }

    #[test]
    fn serde_messages_are_said_plainly() {
        assert_eq!(
            plainly("unknown field `fsnyc`, expected one of `path`, `fsync`"),
            "unknown field `fsnyc`: did you mean `fsync`? (expected one of `path`, `fsync`)"
        );
        assert_eq!(
            plainly("unknown field `zzz`, expected `a` or `b`"),
            "unknown field `zzz`, expected `a` or `b`"
        );
        assert_eq!(
            plainly("invalid type: string \"x\", expected a sequence"),
            "a text where a list belongs: write [\"x\"]"
        );
    }
}
