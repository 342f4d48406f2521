//! Program specs: read from TOML or JSON, validated as a whole, every error
//! listed with the path it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::function::Functions;

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
    /// Arguments given to the function; strings may hold `${name}`
    /// references into the data pool.
    pub args: Map<String, Value>,
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
            other => return Err(vec![format!("`data` must be a dict, not {}", type_of(other))]),
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
        let mut errors = Vec::new();
        for (name, arg) in &self.args {
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

/// A document as parsed, keeping every key of a table even when repeated,
/// so duplicates can be reported (JSON parsers keep only the last).
#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    List(Vec<Node>),
    Dict(Vec<(String, Node)>),
}

impl Node {
    fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Num(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.clone()),
            Node::List(l) => Value::Array(l.iter().map(Node::to_value).collect()),
            Node::Dict(d) => Value::Object(d.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "bool",
            Node::Num(n) if n.is_f64() => "float",
            Node::Num(_) => "int",
            Node::Str(_) => "string",
            Node::List(_) => "list",
            Node::Dict(_) => "dict",
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Node, E> {
                Ok(Node::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Node, E> {
                Ok(Node::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Node, E> {
                Ok(Node::Num(n.into()))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node, E> {
                serde_json::Number::from_f64(n)
                    .map(Node::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, s: &str) -> Result<Node, E> {
                Ok(Node::Str(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<Node, E> {
                Ok(Node::Str(s))
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
                Node::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element()? {
                    out.push(n);
                }
                Ok(Node::List(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Node>()? {
                    out.push((k, v));
                }
                Ok(Node::Dict(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// The spec's text format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

/// Collects errors while walking a document.
struct Check<'f> {
    errors: Vec<SpecError>,
    functions: &'f Functions,
}

impl Check<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(SpecError {
            path: path.into(),
            message: message.into(),
        })
    }

    /// The entries of a dict, reporting repeated keys and keys not in `known`.
    fn entries<'n>(&mut self, path: &str, node: &'n Node, known: Option<&[&str]>) -> Vec<(&'n str, &'n Node)> {
        let Node::Dict(entries) = node else {
            self.err(path, format!("must be a dict, not {}", node.kind()));
            return Vec::new();
        };
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for (k, v) in entries {
            let p = join(path, k);
            if !seen.insert(k.as_str()) {
                self.err(p, "duplicate name");
                continue;
            }
            if let Some(known) = known {
                if !known.contains(&k.as_str()) {
                    self.err(p, format!("unknown key (expected one of: {})", known.join(", ")));
                    continue;
                }
            }
            out.push((k.as_str(), v));
        }
        out
    }

    fn string(&mut self, path: &str, node: &Node) -> Option<String> {
        match node {
            Node::Str(s) => Some(s.clone()),
            other => {
                self.err(path, format!("must be a string, not {}", other.kind()));
                None
            }
        }
    }

    fn strings(&mut self, path: &str, node: &Node) -> Vec<String> {
        let Node::List(items) = node else {
            self.err(path, format!("must be a list of strings, not {}", node.kind()));
            return Vec::new();
        };
        let mut out: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if let Some(s) = self.string(&p, item) {
                if out.contains(&s) {
                    self.err(p, format!("duplicate name `{s}`"));
                } else {
                    out.push(s);
                }
            }
        }
        out
    }

    fn uint(&mut self, path: &str, node: &Node) -> Option<u64> {
        match node {
            Node::Num(n) if n.as_u64().is_some() => n.as_u64(),
            other => {
                self.err(
                    path,
                    format!("must be a whole number of at least 0, not {}", other.kind()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, node: &Node) -> Option<bool> {
        match node {
            Node::Bool(b) => Some(*b),
            other => {
                self.err(path, format!("must be a bool, not {}", other.kind()));
                None
            }
        }
    }

    fn args(&mut self, path: &str, node: &Node) -> BTreeMap<String, ArgSpec> {
        let mut out = BTreeMap::new();
        for (name, def) in self.entries(path, node, None) {
            let p = join(path, name);
            let mut arg = ArgSpec {
                kind: ArgType::String,
                required: false,
                default: None,
                description: String::new(),
            };
            let mut kind = None;
            let mut default = None;
            for (k, v) in self.entries(&p, def, Some(&["type", "required", "default", "description"])) {
                let kp = join(&p, k);
                match k {
                    "type" => {
                        if let Some(t) = self.string(&kp, v) {
                            match ArgType::parse(&t) {
                                Some(t) => kind = Some(t),
                                None => {
                                    let known = ArgType::NAMES.join(", ");
                                    self.err(kp, format!("unknown type `{t}` (one of: {known})"))
                                }
                            }
                        }
                    }
                    "required" => arg.required = self.boolean(&kp, v).unwrap_or(false),
                    "default" => default = Some((kp, v.to_value())),
                    _ => arg.description = self.string(&kp, v).unwrap_or_default(),
                }
            }
            match kind {
                Some(kind) => arg.kind = kind,
                None => {
                    if !self.errors.iter().any(|e| e.path == join(&p, "type")) {
                        self.err(join(&p, "type"), "required");
                    }
                    continue;
                }
            }
            if let Some((kp, d)) = default {
                if arg.kind.accepts(&d) {
                    arg.default = Some(d);
                } else {
                    self.err(kp, format!("default must be {}, not {}", arg.kind, type_of(&d)));
                }
            }
            out.insert(name.to_owned(), arg);
        }
        out
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

const PROGRAM_REF: &str = "programs.";

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
        let mut check = Check {
            errors: Vec::new(),
            functions,
        };
        let spec = check.spec(&root);
        if check.errors.is_empty() {
            Ok(spec)
        } else {
            Err(SpecErrors {
                source: "<text>".into(),
                errors: check.errors,
            })
        }
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

impl Check<'_> {
    fn spec(&mut self, root: &Node) -> Spec {
        let mut spec = Spec {
            name: String::new(),
            version: String::new(),
            description: String::new(),
            programs: BTreeMap::new(),
            hooks: BTreeMap::new(),
        };
        let mut programs = Vec::new();
        let mut hooks = Vec::new();
        let top = ["name", "version", "description", "programs", "hooks"];
        let mut named = false;
        for (k, v) in self.entries("", root, Some(&top)) {
            match k {
                "name" => {
                    spec.name = self.string(k, v).unwrap_or_default();
                    named = true;
                }
                "version" => match v {
                    Node::Str(s) => spec.version = s.clone(),
                    Node::Num(n) => spec.version = n.to_string(),
                    other => self.err(k, format!("must be a string or a number, not {}", other.kind())),
                },
                "description" => spec.description = self.string(k, v).unwrap_or_default(),
                "programs" => programs = self.entries(k, v, None),
                _ => hooks = self.entries(k, v, None),
            }
        }
        if !named {
            self.err("name", "required");
        }
        if programs.is_empty() && !self.errors.iter().any(|e| e.path.starts_with("programs")) {
            self.err("programs", "required: at least one program");
        }
        for (name, node) in hooks {
            if let Some(h) = self.hook(name, node) {
                spec.hooks.insert(name.to_owned(), Arc::new(h));
            }
        }
        let mut defs = BTreeMap::new();
        for (name, node) in programs {
            if let Some(p) = self.program(name, node) {
                defs.insert(name.to_owned(), p);
            }
        }
        self.references(&spec.hooks, &defs);
        let hook_cycle = self.hook_cycles(&spec.hooks);
        let program_cycle = self.program_cycles(&defs);
        if hook_cycle || program_cycle {
            return spec;
        }
        let plans: BTreeMap<String, Vec<PlanStep>> = defs
            .keys()
            .map(|name| {
                let mut out = Vec::new();
                plan(name, name, &defs, &spec.hooks, &mut out);
                (name.clone(), out)
            })
            .collect();
        for (name, p) in &defs {
            self.templates(name, p, &plans[name], &defs, &spec.hooks);
        }
        for (name, mut p) in defs {
            p.plan = plans[&name].clone();
            spec.programs.insert(name, Arc::new(p));
        }
        spec
    }

    fn hook(&mut self, name: &str, node: &Node) -> Option<HookSpec> {
        let path = join("hooks", name);
        let known = [
            "reference",
            "args",
            "dependencies",
            "rectifiers",
            "outputs",
            "description",
            "timeout_ms",
            "retries",
            "retry_delay_ms",
        ];
        let mut hook = HookSpec {
            name: name.to_owned(),
            reference: String::new(),
            args: Map::new(),
            dependencies: Vec::new(),
            rectifiers: Vec::new(),
            outputs: Vec::new(),
            description: String::new(),
            timeout: None,
            retries: 0,
            retry_delay: Duration::ZERO,
        };
        let mut referenced = false;
        for (k, v) in self.entries(&path, node, Some(&known)) {
            let p = join(&path, k);
            match k {
                "reference" => {
                    referenced = true;
                    if let Some(r) = self.string(&p, v) {
                        if !self.functions.contains(&r) {
                            self.err(
                                &p,
                                format!(
                                    "function `{r}` is not registered (registered: {})",
                                    self.functions.names().join(", ")
                                ),
                            );
                        }
                        hook.reference = r;
                    }
                }
                "args" => {
                    for (a, v) in self.entries(&p, v, None) {
                        hook.args.insert(a.to_owned(), v.to_value());
                    }
                }
                "dependencies" => hook.dependencies = self.strings(&p, v),
                "rectifiers" => hook.rectifiers = self.strings(&p, v),
                "outputs" => hook.outputs = self.strings(&p, v),
                "description" => hook.description = self.string(&p, v).unwrap_or_default(),
                "timeout_ms" => hook.timeout = self.uint(&p, v).filter(|t| *t > 0).map(Duration::from_millis),
                "retries" => hook.retries = self.uint(&p, v).unwrap_or(0).min(u32::MAX as u64) as u32,
                _ => hook.retry_delay = Duration::from_millis(self.uint(&p, v).unwrap_or(0)),
            }
        }
        if !referenced {
            self.err(join(&path, "reference"), "required: the name of a registered function");
        }
        Some(hook)
    }

    fn program(&mut self, name: &str, node: &Node) -> Option<ProgramSpec> {
        let path = join("programs", name);
        let known = ["hooks", "args", "outputs", "description", "lock", "recovery"];
        let mut p = ProgramSpec {
            name: name.to_owned(),
            hooks: Vec::new(),
            args: BTreeMap::new(),
            outputs: BTreeMap::new(),
            description: String::new(),
            lock: None,
            recovery: Recovery::Compensate,
            plan: Vec::new(),
        };
        let mut listed = false;
        let mut lock_path = String::new();
        for (k, v) in self.entries(&path, node, Some(&known)) {
            let kp = join(&path, k);
            match k {
                "hooks" => {
                    listed = true;
                    p.hooks = self.strings(&kp, v);
                    if p.hooks.is_empty() && matches!(v, Node::List(_)) {
                        self.err(&kp, "a program needs at least one hook");
                    }
                }
                "args" => p.args = self.args(&kp, v),
                "outputs" => p.outputs = self.args(&kp, v),
                "description" => p.description = self.string(&kp, v).unwrap_or_default(),
                "lock" => {
                    p.lock = self.string(&kp, v);
                    lock_path = kp;
                }
                _ => match self.string(&kp, v).as_deref() {
                    Some("compensate") => p.recovery = Recovery::Compensate,
                    Some("complete") => p.recovery = Recovery::Complete,
                    Some(other) => self.err(kp, format!("`{other}`: expected `compensate` or `complete`")),
                    None => {}
                },
            }
        }
        if !listed {
            self.err(join(&path, "hooks"), "required: the hooks to run, in order");
        }
        if let Some(lock) = &p.lock {
            if !p.args.contains_key(lock) {
                self.err(lock_path, format!("`{lock}` is not an argument of the program"));
            }
        }
        Some(p)
    }

    /// Every name a hook list, a dependency or a rectifier refers to exists.
    fn references(&mut self, hooks: &BTreeMap<String, Arc<HookSpec>>, programs: &BTreeMap<String, ProgramSpec>) {
        for (name, p) in programs {
            for (i, h) in p.hooks.iter().enumerate() {
                let path = format!("programs.{name}.hooks[{i}]");
                match h.strip_prefix(PROGRAM_REF) {
                    Some(q) if !programs.contains_key(q) => self.err(path, format!("unknown program `{q}`")),
                    Some(_) => {}
                    None if !hooks.contains_key(h) => self.err(path, format!("unknown hook `{h}`")),
                    None => {}
                }
            }
        }
        for (name, h) in hooks {
            for (what, list) in [("dependencies", &h.dependencies), ("rectifiers", &h.rectifiers)] {
                for (i, r) in list.iter().enumerate() {
                    if !hooks.contains_key(r) {
                        let hint = if r.starts_with(PROGRAM_REF) {
                            " (only hooks can be named here)"
                        } else {
                            ""
                        };
                        self.err(format!("hooks.{name}.{what}[{i}]"), format!("unknown hook `{r}`{hint}"));
                    }
                }
            }
        }
    }

    /// Reports dependency cycles; true if there is one.
    fn hook_cycles(&mut self, hooks: &BTreeMap<String, Arc<HookSpec>>) -> bool {
        let edges = |h: &str| -> Vec<String> {
            hooks
                .get(h)
                .map(|h| {
                    h.dependencies
                        .iter()
                        .filter(|d| hooks.contains_key(*d))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        };
        let cycles = cycles(hooks.keys().cloned().collect(), edges);
        for c in &cycles {
            self.err(
                format!("hooks.{}.dependencies", c[0]),
                format!("dependency cycle: {}", c.join(" -> ")),
            );
        }
        !cycles.is_empty()
    }

    /// Reports programs that contain themselves; true if one does.
    fn program_cycles(&mut self, programs: &BTreeMap<String, ProgramSpec>) -> bool {
        let edges = |p: &str| -> Vec<String> {
            programs
                .get(p)
                .map(|p| {
                    p.hooks
                        .iter()
                        .filter_map(|h| h.strip_prefix(PROGRAM_REF))
                        .filter(|q| programs.contains_key(*q))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let cycles = cycles(programs.keys().cloned().collect(), edges);
        for c in &cycles {
            self.err(
                format!("programs.{}.hooks", c[0]),
                format!("program cycle: {}", c.join(" -> ")),
            );
        }
        !cycles.is_empty()
    }

    /// Every `${name}` in the arguments of the hooks a program runs (and of
    /// their rectifiers) names an argument of the program (or of a nested
    /// one) or an output a hook of the run declares.
    fn templates(
        &mut self,
        name: &str,
        program: &ProgramSpec,
        plan: &[PlanStep],
        programs: &BTreeMap<String, ProgramSpec>,
        hooks: &BTreeMap<String, Arc<HookSpec>>,
    ) {
        let mut known: BTreeSet<&str> = program.args.keys().map(String::as_str).collect();
        let mut used = Vec::new();
        for step in plan {
            if let Some(q) = &step.enter {
                if let Some(q) = programs.get(q) {
                    known.extend(q.args.keys().map(String::as_str));
                }
                continue;
            }
            let Some(h) = hooks.get(&step.hook) else { continue };
            used.push(h);
            used.extend(h.rectifiers.iter().filter_map(|r| hooks.get(r)));
        }
        for h in &used {
            known.extend(h.outputs.iter().map(String::as_str));
        }
        let mut reported = BTreeSet::new();
        for h in used {
            for (arg, v) in &h.args {
                let mut refs = Vec::new();
                template_refs(v, &mut refs);
                for r in refs {
                    let head = r.split('.').next().unwrap_or_default();
                    if !known.contains(head) && reported.insert((h.name.clone(), arg.clone(), r.clone())) {
                        self.err(
                            format!("hooks.{}.args.{arg}", h.name),
                            format!("`${{{r}}}` is neither an argument of program `{name}` nor an output of its hooks"),
                        );
                    }
                }
            }
        }
    }
}

/// The cycles of a directed graph, each once, as `a -> b -> a`.
fn cycles(nodes: Vec<String>, edges: impl Fn(&str) -> Vec<String>) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Closed,
    }
    fn visit(
        n: &str,
        marks: &mut BTreeMap<String, Mark>,
        stack: &mut Vec<String>,
        edges: &dyn Fn(&str) -> Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        marks.insert(n.to_owned(), Mark::Open);
        stack.push(n.to_owned());
        for m in edges(n) {
            match marks.get(&m).copied().unwrap_or(Mark::New) {
                Mark::New => visit(&m, marks, stack, edges, out),
                Mark::Open => {
                    let at = stack.iter().position(|s| *s == m).unwrap_or(0);
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    out.push(c);
                }
                Mark::Closed => {}
            }
        }
        stack.pop();
        marks.insert(n.to_owned(), Mark::Closed);
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for n in &nodes {
        if marks.get(n).copied().unwrap_or(Mark::New) == Mark::New {
            visit(n, &mut marks, &mut Vec::new(), &edges, &mut out);
        }
    }
    out
}

/// Flattens program `name` into `out`: dependencies before the hooks that
/// need them (once per program), nested programs inline after a marker.
fn plan(
    name: &str,
    path: &str,
    programs: &BTreeMap<String, ProgramSpec>,
    hooks: &BTreeMap<String, Arc<HookSpec>>,
    out: &mut Vec<PlanStep>,
) {
    fn place(
        h: &str,
        path: &str,
        hooks: &BTreeMap<String, Arc<HookSpec>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<PlanStep>,
    ) {
        if seen.contains(h) {
            return;
        }
        seen.insert(h.to_owned());
        let Some(hook) = hooks.get(h) else { return };
        for d in &hook.dependencies {
            place(d, path, hooks, seen, out);
        }
        out.push(PlanStep {
            hook: h.to_owned(),
            program: path.to_owned(),
            enter: None,
        });
    }
    let Some(p) = programs.get(name) else { return };
    let mut seen = BTreeSet::new();
    for h in &p.hooks {
        match h.strip_prefix(PROGRAM_REF) {
            Some(q) => {
                let inner = format!("{path}/{q}");
                out.push(PlanStep {
                    hook: h.clone(),
                    program: inner.clone(),
                    enter: Some(q.to_owned()),
                });
                plan(q, &inner, programs, hooks, out);
            }
            None => place(h, path, hooks, &mut seen, out),
        }
    }
}

/// The `${name}` references in a hook argument.
fn template_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            for piece in pieces(s) {
                if let Piece::Ref(r) = piece {
                    out.push(r.to_owned());
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| template_refs(v, out)),
        Value::Object(m) => m.values().for_each(|v| template_refs(v, out)),
        _ => {}
    }
}

enum Piece<'a> {
    Text(&'a str),
    Ref(&'a str),
}

/// Splits a string into text and `${name}` references; `$${` is a literal `${`.
fn pieces(s: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push(Piece::Text(&rest[..i - 1]));
            out.push(Piece::Text("${"));
            rest = &rest[i + 2..];
            continue;
        }
        let Some(end) = rest[i + 2..].find('}') else { break };
        if i > 0 {
            out.push(Piece::Text(&rest[..i]));
        }
        out.push(Piece::Ref(rest[i + 2..i + 2 + end].trim()));
        rest = &rest[i + 3 + end..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

fn lookup<'v>(pool: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut parts = path.split('.');
    let mut v = pool.get(parts.next()?)?;
    for p in parts {
        v = match v {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Resolves the `${name}` references of hook arguments against the data
/// pool: a string that is one reference takes the referenced value as it
/// is (an int stays an int); references within text are rendered into it.
pub(crate) fn resolve(args: &Map<String, Value>, pool: &Map<String, Value>) -> Result<Map<String, Value>, String> {
    fn one(v: &Value, pool: &Map<String, Value>) -> Result<Value, String> {
        match v {
            Value::String(s) if s.contains("${") => {
                let pieces = pieces(s);
                if let [Piece::Ref(r)] = pieces.as_slice() {
                    return lookup(pool, r)
                        .cloned()
                        .ok_or_else(|| format!("`${{{r}}}` is not in the data pool"));
                }
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(r) => match lookup(pool, r) {
                            Some(Value::String(s)) => out.push_str(s),
                            Some(v) => out.push_str(&v.to_string()),
                            None => return Err(format!("`${{{r}}}` is not in the data pool")),
                        },
                    }
                }
                Ok(Value::String(out))
            }
            Value::Array(a) => a
                .iter()
                .map(|v| one(v, pool))
                .collect::<Result<_, _>>()
                .map(Value::Array),
            Value::Object(m) => m
                .iter()
                .map(|(k, v)| one(v, pool).map(|v| (k.clone(), v)))
                .collect::<Result<_, _>>()
                .map(Value::Object),
            other => Ok(other.clone()),
        }
    }
    args.iter()
        .map(|(k, v)| {
            one(v, pool)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("argument `{k}`: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_keep_types_alone_and_render_within_text() {
        let pool = json!({"n": 5, "who": "ann", "d": {"x": [1, 2]}});
        let pool = pool.as_object().unwrap();
        let args = json!({"a": "${n}", "b": "to ${who}: ${n}", "c": ["${d.x.1}"], "e": "$${who}"});
        let got = resolve(args.as_object().unwrap(), pool).unwrap();
        assert_eq!(
            Value::Object(got),
            json!({"a": 5, "b": "to ann: 5", "c": [2], "e": "${who}"})
        );
        let missing = json!({"a": "${nope}"});
        assert!(resolve(missing.as_object().unwrap(), pool)
            .unwrap_err()
            .contains("nope"));
    }
}
