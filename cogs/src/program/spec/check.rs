//! Validation: walks a parsed document, collects every error with its path,
//! and builds the [`Spec`]: hooks and programs checked against the
//! functions, references resolved, cycles found, each program's plan laid
//! out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Map;

use super::node::Node;
use super::{type_of, ArgSpec, ArgType, HookSpec, PlanStep, ProgramSpec, Recovery, Spec, SpecError};
use crate::program::function::Functions;
use crate::program::template::template_refs;

/// Validates a parsed document: the spec, or every error found.
pub(super) fn check(root: &Node, functions: &Functions) -> Result<Spec, Vec<SpecError>> {
    let mut check = Check {
        errors: Vec::new(),
        functions,
        hook_names: BTreeSet::new(),
        program_names: BTreeSet::new(),
    };
    let spec = check.spec(root);
    if check.errors.is_empty() {
        Ok(spec)
    } else {
        Err(check.errors)
    }
}

/// Collects errors while walking a document.
struct Check<'f> {
    errors: Vec<SpecError>,
    functions: &'f Functions,
    /// The names under `hooks` and `programs`, for checking references
    /// where they are written.
    hook_names: BTreeSet<String>,
    program_names: BTreeSet<String>,
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

    /// References to hooks (`hooks.NAME`, or a bare `NAME`) and, in a
    /// program's hook list (`programs`), to programs (`programs.NAME`):
    /// hook references come back bare, program references as written.
    /// Each is checked against the names in the spec.
    fn refs(&mut self, path: &str, node: &Node, programs: bool) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let Node::List(items) = node else {
            self.err(path, format!("must be a list of strings, not {}", node.kind()));
            return out;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(s) = self.string(&p, item) else { continue };
            let r = s.strip_prefix(HOOK_REF).unwrap_or(&s).to_owned();
            if out.contains(&r) {
                self.err(p, format!("duplicate name `{s}`"));
                continue;
            }
            match r.strip_prefix(PROGRAM_REF) {
                Some(_) if !programs => self.err(&p, format!("unknown hook `{s}` (only hooks can be named here)")),
                Some(q) if !self.program_names.contains(q) => self.err(&p, format!("unknown program `{q}`")),
                None if !self.hook_names.contains(&r) => self.err(&p, format!("unknown hook `{r}`")),
                _ => {}
            }
            out.push(r);
        }
        out
    }

    /// A table of arguments (`{type, required, description}`, and
    /// `default` where `defaults`): a program's args and outputs, or what a
    /// hook requires of the data pool.
    fn args(&mut self, path: &str, node: &Node, defaults: bool) -> BTreeMap<String, ArgSpec> {
        let mut out = BTreeMap::new();
        let keys: &[&str] = if defaults {
            &["type", "required", "default", "description"]
        } else {
            &["type", "required", "description"]
        };
        for (name, def) in self.entries(path, node, None) {
            let p = join(path, name);
            if name == METADATA {
                self.err(
                    &p,
                    "`metadata` is reserved: `${metadata.NAME}` refers to the request's metadata",
                );
                continue;
            }
            let mut arg = ArgSpec {
                kind: ArgType::String,
                required: false,
                default: None,
                description: String::new(),
            };
            let mut kind = None;
            let mut default = None;
            for (k, v) in self.entries(&p, def, Some(keys)) {
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
const HOOK_REF: &str = "hooks.";
/// The name `${metadata.NAME}` templates read the request's metadata by.
const METADATA: &str = "metadata";

/// ryuso's rule for a spec's name: letters, digits, spaces, `_` and `-`.
fn valid_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '_' | '-'))
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
                    if matches!(v, Node::Str(_)) && !valid_name(&spec.name) {
                        self.err(
                            k,
                            format!(
                                "`{}`: a name holds letters, digits, spaces, `_` and `-` only (and is not empty)",
                                spec.name
                            ),
                        );
                    }
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
        self.hook_names = hooks.iter().map(|(n, _)| (*n).to_owned()).collect();
        self.program_names = programs.iter().map(|(n, _)| (*n).to_owned()).collect();
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
            "params",
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
            args: BTreeMap::new(),
            params: Map::new(),
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
                    if self.old_style_args(&p, v) {
                        continue;
                    }
                    hook.args = self.args(&p, v, false);
                }
                "params" => {
                    for (a, v) in self.entries(&p, v, None) {
                        hook.params.insert(a.to_owned(), v.to_value());
                    }
                }
                "dependencies" => hook.dependencies = self.refs(&p, v, false),
                "rectifiers" => hook.rectifiers = self.refs(&p, v, false),
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

    /// True (and reported) if a hook's `args` is written the way it was
    /// before `params` existed: the function's parameters, not a table of
    /// `{type, required, description}`.
    fn old_style_args(&mut self, path: &str, node: &Node) -> bool {
        let Node::Dict(entries) = node else { return false };
        let old = entries.iter().find(|(_, v)| match v {
            Node::Dict(d) => !d.iter().any(|(k, _)| k == "type"),
            _ => true,
        });
        let Some((name, _)) = old else { return false };
        self.err(
            join(path, name),
            "`args` lists what the hook requires of the data pool ({ type, required, description }); \
             the function's parameters are `params` now: rename this hook's `args` to `params`",
        );
        true
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
        let mut has_outputs = false;
        let mut lock_path = String::new();
        for (k, v) in self.entries(&path, node, Some(&known)) {
            let kp = join(&path, k);
            match k {
                "hooks" => {
                    listed = true;
                    p.hooks = self.refs(&kp, v, true);
                    if p.hooks.is_empty() && matches!(v, Node::List(_)) {
                        self.err(&kp, "a program needs at least one hook");
                    }
                }
                "args" => p.args = self.args(&kp, v, true),
                "outputs" => {
                    has_outputs = true;
                    p.outputs = self.args(&kp, v, true);
                }
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
        if !has_outputs {
            self.err(
                join(&path, "outputs"),
                "required: what of the data pool the answer carries (`outputs = {}` for nothing)",
            );
        }
        if let Some(lock) = &p.lock {
            if !p.args.contains_key(lock) {
                self.err(lock_path, format!("`{lock}` is not an argument of the program"));
            }
        }
        Some(p)
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
        known.insert(METADATA);
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
            known.extend(h.args.keys().map(String::as_str));
        }
        let mut reported = BTreeSet::new();
        for h in used {
            for (arg, v) in &h.params {
                let mut refs = Vec::new();
                template_refs(v, &mut refs);
                for r in refs {
                    let head = r.split('.').next().unwrap_or_default();
                    if !known.contains(head) && reported.insert((h.name.clone(), arg.clone(), r.clone())) {
                        self.err(
                            format!("hooks.{}.params.{arg}", h.name),
                            format!(
                                "`${{{r}}}` is neither an argument of program `{name}`, nor an output or an arg of its hooks"
                            ),
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
