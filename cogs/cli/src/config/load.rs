//! The layers of a configuration, read and merged: embedded defaults, a
//! file, the environment, `--set` flags; every value remembers its layer.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ConfigError, ConfigErrors, Origin};
use super::key_path::{KeyPath, Seg, ENV_PREFIX};

/// The embedded defaults: the `[log]` and `[daemon]` sections.
pub const DEFAULTS: &str = r#"
[log]
level = "info"
target = "stderr"

[daemon]
detach = false
finish_deadline_secs = 60
"#;

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

    /// An error about the value at `path`, with the layer it came from.
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
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
    let ours = |k: &String| k.starts_with(&format!("{ENV_PREFIX}__"));
    // A list or a table (`["a", "b"]`, `{ x = 1 }`) is read as `--set`
    // reads its value; the config crate would take it for a string.
    let (structured, plain): (Vec<_>, Vec<_>) = sources
        .env
        .iter()
        .filter(|(k, _)| ours(k))
        .partition(|(_, v)| v.trim_start().starts_with(['[', '{']));
    for (k, v) in structured {
        let path = env_key_path(k);
        let parsed = match parse_toml(&format!("v = {v}")) {
            Ok(Value::Object(mut m)) => Ok((path.clone(), m.remove("v").unwrap_or(Value::Null))),
            Ok(_) => Err(format!("`{v}` is not a value")),
            Err(e) => Err(format!(
                "`{v}` begins like a list or a table but does not read as one: {e}"
            )),
        };
        match parsed {
            Ok((path, value)) => {
                let tree = tree_at(&path, value);
                let o = Origin::Env(k.clone());
                merge(&mut layered, tree, KeyPath::default(), &|_| o.clone(), &mut errors)
            }
            Err(message) => errors.push(ConfigError {
                origin: Some(Origin::Env(k.clone())),
                path: path.to_string(),
                message,
            }),
        }
    }
    let env: Vec<_> = plain
        .into_iter()
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
                let tree = tree_at(&path, value);
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

/// `value` under `path`, as nested tables (a list position as a key, which
/// [`merge`] lays on the list's item).
fn tree_at(path: &KeyPath, value: Value) -> Value {
    path.0.iter().rev().fold(value, |tree, seg| match seg {
        Seg::Key(k) => Value::Object(Map::from_iter([(k.clone(), tree)])),
        Seg::Index(i) => Value::Object(Map::from_iter([(i.to_string(), tree)])),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn an_environment_variable_takes_a_list_as_set_does() {
        let sources = Sources {
            embedded: Some("[trains.a]\ncogs = [{ kind = \"tail\", include = [\"x\"] }]\n".into()),
            env: vec![(
                "TOURBILLON__TRAINS__A__COGS__0__INCLUDE".into(),
                "[\"/var/log/a.log\", \"/var/log/b.log\"]".into(),
            )],
            ..Sources::default()
        };
        let layered = load(&sources).unwrap();
        assert_eq!(
            layered.value["trains"]["a"]["cogs"][0]["include"],
            serde_json::json!(["/var/log/a.log", "/var/log/b.log"])
        );
        let bad = Sources {
            env: vec![("TOURBILLON__LOG__X".into(), "[1, ".into())],
            ..Sources::default()
        };
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("env TOURBILLON__LOG__X"), "{e}");
    }
}
