//! Program specs: read from TOML or JSON, validated as a whole, every error
//! listed with the path it is about.
//!
//! The types a validated spec is made of are here; the document as parsed
//! (repeated keys kept) is in [`node`], the validation that turns one into
//! the other in [`check`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::function::Functions;
use node::Node;

mod check;
mod node;

/// The type of an argument or output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A JSON string.
    String,
    /// A whole number.
    Int,
    /// Any number (a whole one too).
    Float,
    /// A JSON array.
    List,
    /// A JSON object.
    Dict,
    /// `true` or `false`.
    Bool,
}

impl ArgType {
    const NAMES: [&'static str; 6] = ["string", "int", "float", "list", "dict", "bool"];

    fn parse(name: &str) -> Option<ArgType> {
        Some(match name {
            "string" => ArgType::String,
            "int" => ArgType::Int,
            "float" => ArgType::Float,
            "list" => ArgType::List,
            "dict" => ArgType::Dict,
            "bool" => ArgType::Bool,
            _ => return None,
        })
    }

    /// True if `v` is of this type.
    pub fn accepts(self, v: &Value) -> bool {
        match self {
            ArgType::String => v.is_string(),
            ArgType::Int => v.is_i64() || v.is_u64(),
            ArgType::Float => v.is_number(),
            ArgType::List => v.is_array(),
            ArgType::Dict => v.is_object(),
            ArgType::Bool => v.is_boolean(),
        }
    }
}

impl fmt::Display for ArgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::NAMES[*self as usize])
    }
}

/// What JSON type a value has, for messages.
pub(crate) fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// One argument (or output) of a program.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgSpec {
    /// Its type.
    pub kind: ArgType,
    /// A run without it is rejected (an output: a run that does not produce it fails).
    pub required: bool,
    /// Used when the request leaves it out.
    pub default: Option<Value>,
    /// What it is.
    pub description: String,
}

/// What a restarted server does with a run a crash interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Run the rectifiers of the steps that were done, and of the one in
    /// flight (rectifiers must tolerate undoing what did not happen). The default.
    Compensate,
    /// Run the step in flight again and go on (steps must be idempotent).
    Complete,
}

/// A step: a registered function with its arguments and what undoes it.
#[derive(Clone, Debug, PartialEq)]
pub struct HookSpec {
    /// The hook's name.
    pub name: String,
    /// The registered function it calls.
    pub reference: String,
    /// What the data pool must hold when the hook runs (after its
    /// dependencies, before its function): checked by type and `required`.
    pub args: BTreeMap<String, ArgSpec>,
    /// Parameters given to the function; strings may hold `${name}`
    /// references into the data pool (and `${metadata.name}` into the
    /// request's metadata).
    pub params: Map<String, Value>,
    /// Hooks that run just before this one (unless they already ran in the run).
    pub dependencies: Vec<String>,
    /// Hooks that undo this one, run in this order.
    pub rectifiers: Vec<String>,
    /// Names this hook adds to the data pool (checked references only).
    pub outputs: Vec<String>,
    /// What it does.
    pub description: String,
    /// Longest one attempt may take; `None`: no limit.
    pub timeout: Option<Duration>,
    /// Attempts after the first one fails.
    pub retries: u32,
    /// Wait between attempts.
    pub retry_delay: Duration,
}

/// One entry of a program's flattened run order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanStep {
    /// The hook run, or `programs.NAME` where a nested program begins.
    pub hook: String,
    /// The program this step belongs to, nested ones after a `/`
    /// (`transfer/audit`).
    pub program: String,
    /// Where a nested program begins: its name (its arguments are checked
    /// against the data pool there).
    pub enter: Option<String>,
}

/// A named sequence of hooks.
#[derive(Clone, Debug, PartialEq)]
pub struct ProgramSpec {
    /// Its name.
    pub name: String,
    /// Its hook list as written (hooks and `programs.NAME`).
    pub hooks: Vec<String>,
    /// Its arguments, checked against a request's data.
    pub args: BTreeMap<String, ArgSpec>,
    /// Its outputs: what of the data pool the response carries.
    pub outputs: BTreeMap<String, ArgSpec>,
    /// What it does.
    pub description: String,
    /// An argument whose value serializes runs: runs with the same value
    /// wait for each other.
    pub lock: Option<String>,
    /// What a restart does with a run a crash interrupted.
    pub recovery: Recovery,
    /// The run order: dependencies placed, nested programs inlined.
    pub plan: Vec<PlanStep>,
}

impl ProgramSpec {
    /// Checks a request's data against the arguments: the data pool the
    /// run starts with (defaults filled in), or every problem found.
    pub fn check_input(&self, data: &Value) -> Result<Map<String, Value>, Vec<String>> {
        let mut pool = match data {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            other => {
                return Err(vec![format!(
                    "`data_pool`/`data` must be a dict, not {}",
                    type_of(other)
                )])
            }
        };
        let mut errors: Vec<String> = pool
            .keys()
            .filter(|k| !self.args.contains_key(*k))
            .map(|k| format!("unknown argument `{k}`"))
            .collect();
        if let Err(more) = self.apply_args(&mut pool) {
            errors.extend(more);
        }
        if errors.is_empty() {
            Ok(pool)
        } else {
            Err(errors)
        }
    }

    /// Fills in defaults and checks required arguments and types in `pool`.
    pub(crate) fn apply_args(&self, pool: &mut Map<String, Value>) -> Result<(), Vec<String>> {
        apply_args(&self.args, pool)
    }

    /// The outputs taken from the final data pool, checked.
    pub fn outputs_of(&self, pool: &Map<String, Value>) -> Result<Map<String, Value>, Vec<String>> {
        let mut out = Map::new();
        let mut errors = Vec::new();
        for (name, spec) in &self.outputs {
            match pool.get(name) {
                Some(v) if spec.kind.accepts(v) => {
                    out.insert(name.clone(), v.clone());
                }
                Some(v) => errors.push(format!("output `{name}` must be {}, not {}", spec.kind, type_of(v))),
                None if spec.required => errors.push(format!("required output `{name}` was not produced")),
                None => {}
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

/// Fills in the defaults of `args` and checks required ones and types in `pool`.
pub(crate) fn apply_args(args: &BTreeMap<String, ArgSpec>, pool: &mut Map<String, Value>) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    for (name, arg) in args {
        match pool.get(name) {
            None | Some(Value::Null) => match &arg.default {
                Some(d) => {
                    pool.insert(name.clone(), d.clone());
                }
                None if arg.required => errors.push(format!("missing required argument `{name}` ({})", arg.kind)),
                None => {}
            },
            Some(v) if !arg.kind.accepts(v) => {
                errors.push(format!("argument `{name}` must be {}, not {}", arg.kind, type_of(v)))
            }
            Some(_) => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// A validated spec: programs and hooks by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// The spec's name.
    pub name: String,
    /// Its version, as written.
    pub version: String,
    /// What it is for.
    pub description: String,
    /// Its programs.
    pub programs: BTreeMap<String, Arc<ProgramSpec>>,
    /// Its hooks.
    pub hooks: BTreeMap<String, Arc<HookSpec>>,
}

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError {
    /// Where: `programs.transfer.args.amount.default`.
    pub path: String,
    /// What.
    pub message: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecErrors {
    /// The file (or `<text>`).
    pub source: String,
    /// The problems, in the order found.
    pub errors: Vec<SpecError>,
}

impl SpecErrors {
    /// True if one of the errors is at `path` and its message contains `needle`.
    pub fn has(&self, path: &str, needle: &str) -> bool {
        self.errors.iter().any(|e| e.path == path && e.message.contains(needle))
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(f, "{}: {n} error{}", self.source, if n == 1 { "" } else { "s" })?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// The spec's text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl Spec {
    /// Reads and validates a spec file: JSON if its name ends in `.json`, TOML otherwise.
    pub fn load(path: impl AsRef<Path>, functions: &Functions) -> Result<Spec, SpecErrors> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecErrors {
            source: source.clone(),
            errors: vec![SpecError {
                path: String::new(),
                message: format!("cannot read: {e}"),
            }],
        })?;
        let format = if path.extension().is_some_and(|e| e == "json") {
            Format::Json
        } else {
            Format::Toml
        };
        Spec::parse(&text, format, functions).map_err(|mut e| {
            e.source = source;
            e
        })
    }

    /// Parses and validates a spec from text.
    pub fn parse(text: &str, format: Format, functions: &Functions) -> Result<Spec, SpecErrors> {
        let fail = |message: String| SpecErrors {
            source: "<text>".into(),
            errors: vec![SpecError {
                path: String::new(),
                message,
            }],
        };
        let root: Node = match format {
            Format::Json => serde_json::from_str(text).map_err(|e| fail(format!("not valid JSON: {e}")))?,
            Format::Toml => toml::from_str(text).map_err(|e| fail(format!("not valid TOML: {e}")))?,
        };
        check::check(&root, functions).map_err(|errors| SpecErrors {
            source: "<text>".into(),
            errors,
        })
    }

    /// A program by name.
    pub fn program(&self, name: &str) -> Option<&Arc<ProgramSpec>> {
        self.programs.get(name)
    }

    /// A hook by name.
    pub fn hook(&self, name: &str) -> Option<&Arc<HookSpec>> {
        self.hooks.get(name)
    }
}
