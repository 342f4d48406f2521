//! The `filter` cog: keeps or drops data by conditions on their fields.
//!
//! ```toml
//! { kind = "filter", action = "drop", require = "any", conditions = [
//!     { field = "level", equals = "debug" },
//!     { field = "status", gte = 500, lt = 600, not = true },
//!     { field = "path", regex = "^/health" },
//!     { field = "user", exists = false },
//! ] }
//! ```
//!
//! A condition names a field and one or more tests, all of which must hold
//! (`not` turns the result over). `require` says whether all conditions
//! or any of them make a match; `action` whether a match is kept (and the
//! rest dropped) or dropped. Dropped data is reported done, so durable
//! supplies move on.
//!
//! Tests on a field that is missing fail (`exists = false` holds). Numbers
//! compare by value (`1` equals `1.0`); the numeric comparisons also read
//! numeric strings (`"503"`); `regex` matches strings only.

use std::fmt;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Getter, Next};

use crate::access::{check_path, Access};
use crate::meter::{Meter, Metered};
use crate::Error;

/// What [`Filter`] does with data that match.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Keep what matches, drop the rest (the default).
    #[default]
    Keep,
    /// Drop what matches, keep the rest.
    Drop,
}

/// How the conditions of a [`Filter`] combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    /// Every condition must hold (the default).
    #[default]
    All,
    /// One condition is enough.
    Any,
}

/// One condition of a [`Filter`]: a field and the tests it must pass (at
/// least one; all must hold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Condition {
    /// The field path tested. Required.
    pub field: String,
    /// The field equals this value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// The field equals one of these values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<Value>>,
    /// The field is present and not null (`true`), or not (`false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The field is a number (or numeric string) greater than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// ... greater than or equal to this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gte: Option<f64>,
    /// ... less than this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// ... less than or equal to this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lte: Option<f64>,
    /// The field is a string this regular expression matches (anywhere:
    /// anchor with `^` and `$`; syntax of the `regex` crate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Turn the result over. Default false.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not: bool,
}

/// Settings of [`Filter`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterSettings {
    /// `"keep"` (default): keep what matches; `"drop"`: drop it.
    pub action: Action,
    /// `"all"` (default): every condition must hold; `"any"`: one is enough.
    pub require: Require,
    /// The conditions; at least one. Default none.
    pub conditions: Vec<Condition>,
}

impl FilterSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        self.compile().map(|_| ())
    }

    fn compile(&self) -> Result<Vec<Tests>, Error> {
        compile_all("conditions", &self.conditions)
    }
}

/// The tests of one condition, compiled: its field, its tests, `not`.
type Tests = (String, Vec<Test>, bool);

/// Compiles a list of conditions (at least one) found at setting `key`;
/// errors name `key[i].…`.
fn compile_all(key: &str, conditions: &[Condition]) -> Result<Vec<Tests>, Error> {
    if conditions.is_empty() {
        return Err(Error::setting(
            key,
            "required: at least one { field = ..., equals/one_of/exists/gt/gte/lt/lte/regex = ... }",
        ));
    }
    conditions
        .iter()
        .enumerate()
        .map(|(i, c)| c.compile(&format!("{key}[{i}]")).map(|t| (c.field.clone(), t, c.not)))
        .collect()
}

/// One test of a condition, compiled.
#[derive(Clone, Debug)]
enum Test {
    Equals(Value),
    OneOf(Vec<Value>),
    Exists(bool),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
    Regex(Regex),
}

impl Condition {
    fn compile(&self, key: &str) -> Result<Vec<Test>, Error> {
        check_path(&format!("{key}.field"), &self.field)?;
        let mut tests = Vec::new();
        if let Some(v) = &self.equals {
            tests.push(Test::Equals(v.clone()));
        }
        if let Some(vs) = &self.one_of {
            tests.push(Test::OneOf(vs.clone()));
        }
        if let Some(e) = self.exists {
            tests.push(Test::Exists(e));
        }
        for (name, bound, make) in [
            ("gt", self.gt, Test::Gt as fn(f64) -> Test),
            ("gte", self.gte, Test::Gte),
            ("lt", self.lt, Test::Lt),
            ("lte", self.lte, Test::Lte),
        ] {
            if let Some(b) = bound {
                if !b.is_finite() {
                    return Err(Error::setting(&format!("{key}.{name}"), "must be a finite number"));
                }
                tests.push(make(b));
            }
        }
        if let Some(r) = &self.regex {
            let re = Regex::new(r).map_err(|e| Error::setting(&format!("{key}.regex"), e.to_string()))?;
            tests.push(Test::Regex(re));
        }
        if tests.is_empty() {
            return Err(Error::setting(
                key,
                "a condition needs a test: equals, one_of, exists, gt, gte, lt, lte or regex",
            ));
        }
        Ok(tests)
    }
}

/// Two JSON values are equal, numbers by value.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        _ => a == b,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Test {
    fn holds(&self, v: Option<&Value>) -> bool {
        match (self, v) {
            (Test::Exists(want), v) => *want == v.is_some_and(|v| !v.is_null()),
            (_, None) => false,
            (Test::Equals(x), Some(v)) => same(v, x),
            (Test::OneOf(xs), Some(v)) => xs.iter().any(|x| same(v, x)),
            (Test::Gt(b), Some(v)) => number(v).is_some_and(|n| n > *b),
            (Test::Gte(b), Some(v)) => number(v).is_some_and(|n| n >= *b),
            (Test::Lt(b), Some(v)) => number(v).is_some_and(|n| n < *b),
            (Test::Lte(b), Some(v)) => number(v).is_some_and(|n| n <= *b),
            (Test::Regex(re), Some(v)) => v.as_str().is_some_and(|s| re.is_match(s)),
        }
    }
}

impl Test {
    /// True when the test only ever holds for a string: it can read the
    /// field as text ([`holds_str`](Self::holds_str)), not as a value.
    fn on_strings(&self) -> bool {
        match self {
            Test::Equals(v) => v.is_string(),
            Test::OneOf(vs) => vs.iter().all(Value::is_string),
            Test::Regex(_) => true,
            _ => false,
        }
    }

    /// [`holds`](Self::holds) for a test [`on_strings`](Self::on_strings),
    /// given the field's string (`None`: absent or not a string).
    fn holds_str(&self, s: Option<&str>) -> bool {
        match (self, s) {
            (_, None) => false,
            (Test::Equals(x), Some(s)) => x.as_str() == Some(s),
            (Test::OneOf(xs), Some(s)) => xs.iter().any(|x| x.as_str() == Some(s)),
            (Test::Regex(re), Some(s)) => re.is_match(s),
            _ => unreachable!("not a test on strings"),
        }
    }
}

impl fmt::Display for Test {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Test::Equals(v) => write!(f, "== {v}"),
            Test::OneOf(vs) => write!(f, "in {}", Value::Array(vs.clone())),
            Test::Exists(true) => f.write_str("exists"),
            Test::Exists(false) => f.write_str("missing"),
            Test::Gt(b) => write!(f, "> {b}"),
            Test::Gte(b) => write!(f, ">= {b}"),
            Test::Lt(b) => write!(f, "< {b}"),
            Test::Lte(b) => write!(f, "<= {b}"),
            Test::Regex(re) => write!(f, "=~ /{re}/"),
        }
    }
}

/// How a condition reads its field.
enum Field<D> {
    /// As a value.
    Value(Getter<D, Value>),
    /// As text, when every test is on strings: read without building the
    /// value.
    Text(Getter<D, str>),
}

struct Compiled<D> {
    path: String,
    field: Field<D>,
    tests: Vec<Test>,
    not: bool,
}

impl<D> Compiled<D> {
    fn holds(&self, datum: &D) -> bool {
        let held = match &self.field {
            Field::Text(text) => {
                let s = text.get(datum);
                self.tests.iter().all(|t| t.holds_str(s))
            }
            Field::Value(value) => {
                let v = value.get(datum);
                self.tests.iter().all(|t| t.holds(v))
            }
        };
        held != self.not
    }
}

/// A list of [`Condition`]s compiled against a data shape: what `filter`
/// and [`route`](crate::step::route) test data with.
pub(crate) struct Conditions<D> {
    compiled: Vec<Compiled<D>>,
}

impl<D: 'static> Conditions<D> {
    /// Compiles `conditions` (at least one), found at setting `key`, to
    /// reach fields through `access`; errors name `key[i].…`.
    pub(crate) fn compile(key: &str, conditions: &[Condition], access: &Access<D>) -> Result<Self, Error> {
        let compiled = compile_all(key, conditions)?
            .into_iter()
            .map(|(path, tests, not)| Compiled {
                field: match tests.iter().all(Test::on_strings) {
                    true => Field::Text(access.text_getter(&path)),
                    false => Field::Value(access.getter(&path)),
                },
                path,
                tests,
                not,
            })
            .collect();
        Ok(Conditions { compiled })
    }

    /// Whether every condition holds.
    pub(crate) fn all(&self, datum: &D) -> bool {
        self.compiled.iter().all(|c| c.holds(datum))
    }

    /// Whether one condition holds.
    pub(crate) fn any(&self, datum: &D) -> bool {
        self.compiled.iter().any(|c| c.holds(datum))
    }
}

impl<D> Conditions<D> {
    /// Renders the conditions joined by `join` (`" and "`):
    /// `(level == "error") and not (status >= 500, status < 600)`.
    pub(crate) fn describe(&self, f: &mut fmt::Formatter<'_>, join: &str) -> fmt::Result {
        for (i, c) in self.compiled.iter().enumerate() {
            if i > 0 {
                f.write_str(join)?;
            }
            if c.not {
                f.write_str("not ")?;
            }
            f.write_str("(")?;
            for (j, t) in c.tests.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} {t}", c.path)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Keeps or drops data by conditions on their fields; see the [module docs](self).
pub struct Filter<D = Event> {
    settings: FilterSettings,
    conditions: Conditions<D>,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Filter<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Filter<Event> {
    /// A `filter` cog for events.
    pub fn new(settings: FilterSettings) -> Result<Self, Error> {
        Filter::with_access(settings, Access::event())
    }
}

impl<D: 'static> Filter<D> {
    /// A `filter` cog reaching fields through `access`.
    pub fn with_access(settings: FilterSettings, access: Access<D>) -> Result<Self, Error> {
        let conditions = Conditions::compile("conditions", &settings.conditions, &access)?;
        Ok(Filter {
            settings,
            conditions,
            access,
            meter: Meter::default(),
        })
    }

    /// True if `datum` matches the conditions (whatever the action).
    pub fn matches(&self, datum: &D) -> bool {
        match self.settings.require {
            Require::All => self.conditions.all(datum),
            Require::Any => self.conditions.any(datum),
        }
    }
}

impl<D: 'static> Metered for Filter<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Filter<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        let keep = self.matches(&datum) == (self.settings.action == Action::Keep);
        self.meter.keep_or_drop(keep, datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match self.settings.action {
            Action::Keep => "keep",
            Action::Drop => "drop",
        };
        let join = match self.settings.require {
            Require::All => " and ",
            Require::Any => " or ",
        };
        write!(f, "filter {action} if ")?;
        self.conditions.describe(f, join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn filter(conditions: Value, require: Require) -> Filter<Value> {
        let conditions = serde_json::from_value(conditions).unwrap();
        let s = FilterSettings {
            require,
            conditions,
            ..FilterSettings::default()
        };
        Filter::with_access(s, Access::json()).unwrap()
    }

    #[test]
    fn numbers_compare_by_value_and_numeric_strings_count_for_comparisons() {
        let f = filter(json!([{ "field": "status", "gte": 500, "lt": 600 }]), Require::All);
        assert!(f.matches(&json!({"status": 503})));
        assert!(f.matches(&json!({"status": "500"})));
        assert!(!f.matches(&json!({"status": 600.0})));
        assert!(!f.matches(&json!({"status": "n/a"})));
        assert!(!f.matches(&json!({})));
        let eq = filter(json!([{ "field": "n", "equals": 1 }]), Require::All);
        assert!(eq.matches(&json!({"n": 1.0})));
        assert!(!eq.matches(&json!({"n": "1"})), "a string is not a number for equals");
    }

    #[test]
    fn exists_regex_one_of_and_not() {
        let f = filter(
            json!([
                { "field": "user", "exists": false },
                { "field": "path", "regex": "^/health" },
                { "field": "level", "one_of": ["debug", "trace"], "not": true },
            ]),
            Require::Any,
        );
        assert!(
            f.matches(&json!({"user": null, "level": "debug"})),
            "null counts as missing"
        );
        assert!(f.matches(&json!({"user": "u", "path": "/healthz", "level": "debug"})));
        assert!(f.matches(&json!({"user": "u", "level": "info"})));
        assert!(!f.matches(&json!({"user": "u", "path": "/x", "level": "trace"})));
    }

    #[test]
    fn string_tests_read_a_lazy_event_as_the_tree_reads_it() {
        let conditions = json!([
            { "field": "level", "equals": "debug" },
            { "field": "user", "one_of": ["é", "a\"b"] },
            { "field": "path", "regex": "^/h" },
            { "field": "n", "equals": "1", "not": true },
        ]);
        let lines = [
            r#"{"level":"debug","user":"x","path":"/x","n":"1"}"#,
            r#"{"level":"de\u0062ug","user":"\u00e9","path":"/h","n":1}"#,
            r#"{"level":"info","user":"a\"b","path":"/y","n":"1"}"#,
            r#"{"level":1,"user":["é"],"path":{"p":"/h"},"n":null}"#,
            r#"{"level":"debug","level":"info","user":"é"}"#,
            r#"{"level":"info","user":"y","path":"/x","n":"1"}"#,
            r#"{}"#,
        ];
        for require in [Require::All, Require::Any] {
            let on_values = filter(conditions.clone(), require);
            let s = FilterSettings {
                require,
                conditions: serde_json::from_value(conditions.clone()).unwrap(),
                ..FilterSettings::default()
            };
            let on_events = Filter::new(s).unwrap();
            let mut seen = [0; 2];
            for line in lines {
                let value: Value = serde_json::from_str(line).unwrap();
                let mut lazy = Event::from_raw(tourbillon::EventId(1), line.as_bytes().to_vec(), None, 1);
                assert!(lazy.index_raw(), "{line}");
                let tree = Event::new(tourbillon::EventId(2), value.clone());
                let want = on_values.matches(&value);
                assert_eq!(on_events.matches(&lazy), want, "{require:?} lazily: {line}");
                assert_eq!(on_events.matches(&tree), want, "{require:?} as a tree: {line}");
                seen[want as usize] += 1;
            }
            assert!(seen[0] > 0 && seen[1] > 0, "{require:?}: both outcomes tried: {seen:?}");
        }
    }

    #[test]
    fn a_bad_regex_and_an_empty_condition_are_refused_with_their_key() {
        let bad: FilterSettings = serde_json::from_value(json!({
            "conditions": [{ "field": "a", "equals": 1 }, { "field": "b", "regex": "(" }]
        }))
        .unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("conditions[1].regex: "));
        let empty: FilterSettings = serde_json::from_value(json!({ "conditions": [{ "field": "a" }] })).unwrap();
        assert!(empty
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("conditions[0]: a condition needs a test"));
        assert!(FilterSettings::default().validate().is_err());
    }
}
