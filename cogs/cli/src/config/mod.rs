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
