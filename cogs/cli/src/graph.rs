//! Trains as a graph, as the configuration draws it: which train reads
//! which (`inputs`), checked before anything is built, and drawn for
//! `tourbillon train` (text) and `tourbillon train --dot` (Graphviz).
//!
//! A train's outputs: what falls off its end (read as `TRAIN`; nothing,
//! when it ends in a drain) and its cogs' named outputs (read as
//! `TRAIN.NAME`): the keys of a cog's `outputs` table and the value of its
//! `error_output` setting, read from the checked settings, so the graph is
//! checked without building a cog.

use std::fmt::Write as _;

use serde_json::Value;
use tourbillon::train::split_input;
use tourbillon::Role;
use tourbillon_cogs::net::Framing;

use crate::app::PlannedTrain;
use crate::config::{ConfigError, KeyPath, Layered};

/// A named output of a cog: its name, and the key that declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedOutput {
    /// `errors` in `TRAIN.errors`.
    pub name: String,
    /// Where it is declared (`trains.t.cogs[1].outputs.errors`).
    pub path: KeyPath,
}

/// The named outputs a cog's settings declare.
pub fn named_outputs(cog_path: &KeyPath, settings: &Value) -> Vec<NamedOutput> {
    let mut out = Vec::new();
    if let Some(Value::Object(m)) = settings.get("outputs") {
        for k in m.keys() {
            out.push(NamedOutput {
                name: k.clone(),
                path: cog_path.key("outputs").key(k),
            });
        }
    }
    if let Some(Value::String(name)) = settings.get("error_output") {
        out.push(NamedOutput {
            name: name.clone(),
            path: cog_path.key("error_output"),
        });
    }
    out
}

/// What a train offers to read.
struct Offer<'a> {
    /// The drain it ends in (kind and key path), if it does.
    drain_end: Option<(&'a str, &'a KeyPath)>,
    /// Its named outputs, in train order.
    named: Vec<NamedOutput>,
    /// All its cogs' settings were checked (else named outputs may be missing).
    complete: bool,
}

fn offer(t: &PlannedTrain) -> Offer<'_> {
    let complete = t.cogs.len() == t.config.cogs.len();
    let mut named = Vec::new();
    let mut drain_end = None;
    if complete {
        for (c, p) in t.config.cogs.iter().zip(&t.cogs) {
            named.extend(named_outputs(&c.path, &p.settings));
        }
        if let (Some(c), Some(p)) = (t.config.cogs.last(), t.cogs.last()) {
            if p.role == Role::Drain {
                drain_end = Some((c.kind.as_str(), &c.path));
            }
        }
    }
    Offer {
        drain_end,
        named,
        complete,
    }
}

/// An edge: train `from` (its output `output`, None for its end) is read by
/// train `to`, declared at `path`.
#[derive(Clone, Debug)]
pub struct Edge {
    /// The train read (its index in the plan).
    pub from: usize,
    /// The named output read; None: what falls off its end.
    pub output: Option<String>,
    /// The reading train.
    pub to: usize,
    /// The `inputs` entry.
    pub path: KeyPath,
}

/// Resolves `name` by the runtime's own rule ([`split_input`]).
fn resolve(trains: &[PlannedTrain], name: &str) -> Result<(usize, Option<String>), String> {
    let find = |n: &str| trains.iter().position(|t| t.config.name == n);
    let (train, output) = split_input(name, |n| find(n).is_some()).map_err(|unknown| {
        let names: Vec<&str> = trains.iter().map(|t| t.config.name.as_str()).collect();
        let near = crate::config::nearest(unknown, names.iter().copied());
        format!(
            "no train is named `{unknown}`{} (trains: {})",
            near.map_or(String::new(), |n| format!(": did you mean `{n}`?")),
            names.join(", ")
        )
    })?;
    let t = find(train).unwrap_or_default();
    let Some(output) = output else {
        return Ok((t, None));
    };
    let o = offer(&trains[t]);
    if !o.complete || o.named.iter().any(|n| n.name == output) {
        return Ok((t, Some(output.to_owned())));
    }
    let listed: Vec<&str> = o.named.iter().map(|n| n.name.as_str()).collect();
    Err(if listed.is_empty() {
        format!(
            "train `{train}` has no output `{output}`: it has no named outputs (a `route` step's `outputs`, \
             a cog's `error_output`)"
        )
    } else {
        format!(
            "train `{train}` has no output `{output}` (its outputs: {})",
            listed.join(", ")
        )
    })
}

/// The edges of the graph, and every mistake in it: unknown inputs, a
/// train read twice by the same train, the end of a train that ends in a
/// drain, cycles, a cog after a drain.
pub fn check(layered: &Layered, trains: &[PlannedTrain]) -> (Vec<Edge>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut edges = Vec::new();
    for (ti, t) in trains.iter().enumerate() {
        let tp = KeyPath::default().key("trains").key(&t.config.name);
        if t.cogs.len() == t.config.cogs.len() {
            let drain = t.cogs.iter().position(|c| c.role == Role::Drain);
            if let Some(d) = drain.filter(|&d| d + 1 < t.cogs.len()) {
                let (dc, next) = (&t.config.cogs[d], &t.config.cogs[d + 1]);
                let after = t.cogs.len() - d - 2;
                errors.push(layered.error(
                    &next.path,
                    format!(
                        "`{}` comes after the drain `{}` ({}): a drain ends its train and passes nothing on, \
                         so this cog{} would never get anything; to send the same data to several drains, \
                         give each drain a train of its own with `inputs = [\"{}\"]`",
                        next.kind,
                        dc.kind,
                        dc.path,
                        match after {
                            0 => String::new(),
                            1 => " and the one after it".to_owned(),
                            n => format!(" and the {n} after it"),
                        },
                        t.config.name
                    ),
                ));
            }
        }
        let mut seen: Vec<(usize, Option<String>, KeyPath)> = Vec::new();
        for (i, name) in t.config.inputs.iter().flatten().enumerate() {
            let p = tp.key("inputs").index(i);
            let (from, output) = match resolve(trains, name) {
                Ok(r) => r,
                Err(why) => {
                    errors.push(layered.error(&p, why));
                    continue;
                }
            };
            if let Some((_, _, first)) = seen.iter().find(|(f, o, _)| *f == from && *o == output) {
                errors.push(layered.error(
                    &p,
                    format!("`{name}` is read already ({first}): each datum would arrive twice"),
                ));
                continue;
            }
            seen.push((from, output.clone(), p.clone()));
            if from == ti {
                errors.push(layered.error(
                    &p,
                    format!("train `{}` reads itself: data would go round forever", t.config.name),
                ));
                continue;
            }
            if output.is_none() {
                if let Some((kind, at)) = offer(&trains[from]).drain_end {
                    errors.push(layered.error(
                        &p,
                        format!(
                            "train `{name}` ends in the drain `{kind}` ({at}): nothing falls off its end to read \
                             (a drain passes nothing on); to read what reaches that drain, end `{name}` before it \
                             and give the drain a train of its own with `inputs = [\"{name}\"]`"
                        ),
                    ));
                    continue;
                }
            }
            edges.push(Edge {
                from,
                output,
                to: ti,
                path: p,
            });
        }
    }
    errors.extend(cycles(layered, trains, &edges));
    (edges, errors)
}

/// One error per set of trains that read each other round, at the input
/// that closes the ring in its first train by name.
fn cycles(layered: &Layered, trains: &[PlannedTrain], edges: &[Edge]) -> Vec<ConfigError> {
    let n = trains.len();
    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|&a, &b| trains[a].config.name.cmp(&trains[b].config.name));
    let mut reported = vec![false; n];
    let mut errors = Vec::new();
    for &s in &by_name {
        if reported[s] {
            continue;
        }
        // Breadth first along the data's way, for the shortest ring back to s.
        let mut came: Vec<Option<usize>> = vec![None; n];
        let mut queue = std::collections::VecDeque::from([s]);
        let mut closing = None;
        while let Some(u) = queue.pop_front() {
            for e in edges.iter().filter(|e| e.from == u) {
                if e.to == s {
                    closing = Some((u, e));
                    break;
                }
                if came[e.to].is_none() && e.to != s {
                    came[e.to] = Some(u);
                    queue.push_back(e.to);
                }
            }
            if closing.is_some() {
                break;
            }
        }
        let Some((last, edge)) = closing else { continue };
        let mut ring = vec![last];
        while let Some(prev) = came[*ring.last().unwrap()] {
            ring.push(prev);
        }
        if *ring.last().unwrap() != s {
            ring.push(s);
        }
        ring.reverse();
        ring.push(s);
        for &t in &ring {
            reported[t] = true;
        }
        let names: Vec<&str> = ring.iter().map(|&t| trains[t].config.name.as_str()).collect();
        let what = if ring.len() == 2 {
            format!("train `{}` reads itself", names[0])
        } else {
            format!("trains read each other in a cycle: {}", names.join(" -> "))
        };
        errors.push(layered.error(
            &edge.path,
            format!("{what} (each arrow goes to a train that reads the one before it): data would go round forever"),
        ));
    }
    errors
}

/// Warnings: named outputs nobody reads, and trains that end without a
/// drain and that nobody reads (what goes there is done and written
/// nowhere).
pub fn warnings(layered: &Layered, trains: &[PlannedTrain], edges: &[Edge]) -> Vec<ConfigError> {
    let mut out = Vec::new();
    for (ti, t) in trains.iter().enumerate() {
        let ends_in_drain = t.cogs.last().is_some_and(|c| c.role == Role::Drain);
        let read = edges.iter().any(|e| e.from == ti && e.output.is_none());
        if let (false, false, Some(last)) = (ends_in_drain, read, t.config.cogs.last()) {
            out.push(layered.error(
                &last.path,
                format!(
                    "train `{}` ends without a drain and no train reads it: what falls off its end is reported \
                     done and written nowhere (end it with a drain, or name `{}` in another train's `inputs`)",
                    t.config.name, t.config.name
                ),
            ));
        }
        for o in offer(t).named {
            if !edges
                .iter()
                .any(|e| e.from == ti && e.output.as_deref() == Some(o.name.as_str()))
            {
                out.push(layered.error(
                    &o.path,
                    format!(
                        "nobody reads `{}.{}` (no train has it in `inputs`): what goes there is reported done \
                         and written nowhere",
                        t.config.name, o.name
                    ),
                ));
            }
        }
    }
    out
}

/// The trains in the order data go through them: by depth (a train
/// without inputs is at 0, a reader one deeper than the deepest train it
/// reads), then by name (the plan has no cycle).
pub fn order(trains: &[PlannedTrain], edges: &[Edge]) -> Vec<usize> {
    let n = trains.len();
    let mut depth = vec![0usize; n];
    // n rounds settle every depth of an acyclic graph; a cycle (only when
    // drawing a plan in error) stops there.
    for _ in 0..n {
        let mut moved = false;
        for e in edges.iter().filter(|e| e.from != e.to) {
            if depth[e.to] < depth[e.from] + 1 {
                depth[e.to] = depth[e.from] + 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| (depth[a], &trains[a].config.name).cmp(&(depth[b], &trains[b].config.name)));
    order
}

/// The settings worth showing for a cog in a drawing, in this order.
const KEY_SETTINGS: &[&str] = &[
    "include",
    "listen",
    "connect",
    "framing",
    "path",
    "field",
    "fields",
    "outputs",
    "mode",
    "error_output",
    "on_error",
    "key",
    "rate",
    "subject",
    "stream",
];

/// A cog's key settings, each as `key value`, values cut at `width` chars.
fn key_settings(settings: &Value, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for &k in KEY_SETTINGS {
        let Some(v) = settings.get(k) else { continue };
        // Every stream is newline-framed unless it says otherwise: only
        // another framing tells the reader something.
        if k == "framing" && v.as_str() == Some(&Framing::default().to_string()) {
            continue;
        }
        let shown = match v {
            Value::Null => continue,
            Value::Array(a) if a.is_empty() => continue,
            Value::Object(m) if m.is_empty() => continue,
            // A table (a route's outputs): its keys are what the graph is about.
            Value::Object(m) => m.keys().cloned().collect::<Vec<_>>().join(", "),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
            other => other.to_string(),
        };
        let shown = if shown.chars().count() > width {
            let cut: String = shown.chars().take(width.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            shown
        };
        out.push(format!("{k} {shown}"));
    }
    out
}

/// The graph in text: each train a box with its cogs (kind and key
/// settings), the trains it reads on its title line, and under it an arrow
/// to each train that reads it, labelled with the output read.
pub fn draw(trains: &[PlannedTrain], edges: &[Edge]) -> String {
    let mut out = String::new();
    for t in order(trains, edges) {
        let train = &trains[t];
        let mut title = format!(" {} ", train.config.name);
        let ins: Vec<&str> = train.config.inputs.iter().flatten().map(String::as_str).collect();
        if !ins.is_empty() {
            let _ = write!(title, "◀ {} ", ins.join(", "));
        }
        if let Some(q) = train.config.queue {
            let _ = write!(title, "(queue {q}) ");
        }
        let kw = train
            .config
            .cogs
            .iter()
            .map(|c| c.kind.chars().count())
            .max()
            .unwrap_or(0);
        let rows: Vec<String> = train
            .config
            .cogs
            .iter()
            .zip(&train.cogs)
            .map(|(c, p)| {
                let ks = key_settings(&p.settings, 40);
                let line = format!(
                    "{:<kw$}  {}",
                    c.kind,
                    ks.into_iter().take(2).collect::<Vec<_>>().join("; ")
                );
                line.trim_end().to_owned()
            })
            .collect();
        let inner = rows
            .iter()
            .map(|r| r.chars().count())
            .chain([title.chars().count() + 1])
            .max()
            .unwrap_or(0)
            + 2;
        let readers: Vec<&Edge> = {
            let mut r: Vec<&Edge> = edges.iter().filter(|e| e.from == t).collect();
            r.sort_by(|a, b| (&a.output, &trains[a.to].config.name).cmp(&(&b.output, &trains[b.to].config.name)));
            r
        };
        let _ = writeln!(out, "┌─{title}{}┐", "─".repeat(inner - title.chars().count() - 1));
        for r in &rows {
            let _ = writeln!(out, "│ {r}{} │", " ".repeat(inner - 2 - r.chars().count()));
        }
        if readers.is_empty() {
            let _ = writeln!(out, "└{}┘", "─".repeat(inner));
        } else {
            let _ = writeln!(out, "└─┬{}┘", "─".repeat(inner - 2));
            for (i, e) in readers.iter().enumerate() {
                let branch = if i + 1 == readers.len() { "└" } else { "├" };
                let label = match &e.output {
                    None => "──".to_owned(),
                    Some(o) => format!("─ {o} ─"),
                };
                let _ = writeln!(out, "  {branch}{label}▶ {}", trains[e.to].config.name);
            }
        }
    }
    out
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The graph as Graphviz `dot`: one node per train (a table of its cogs,
/// each with its kind and a few key settings), an edge for each input,
/// labelled with the output read.
pub fn dot(trains: &[PlannedTrain], edges: &[Edge]) -> String {
    let mut out = String::from(
        "digraph tourbillon {\n  rankdir=LR;\n  node [shape=plain, fontname=\"monospace\"];\n  \
         edge [fontname=\"monospace\"];\n",
    );
    for t in order(trains, edges) {
        let train = &trains[t];
        let mut head = format!("<b>{}</b>", html(&train.config.name));
        if let Some(q) = train.config.queue {
            let _ = write!(head, " (queue {q})");
        }
        let _ = writeln!(
            out,
            "  {} [label=<<table border=\"1\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"4\">",
            dot_id(&train.config.name)
        );
        let _ = writeln!(out, "    <tr><td bgcolor=\"lightgrey\">{head}</td></tr>");
        for (c, p) in train.config.cogs.iter().zip(&train.cogs) {
            let role = match p.role {
                Role::Supply => "supply",
                Role::Step => "step",
                Role::Drain => "drain",
            };
            let mut cell = format!("<b>{}</b> <i>{role}</i>", html(&c.kind));
            for s in key_settings(&p.settings, 48).into_iter().take(3) {
                let _ = write!(cell, "<br align=\"left\"/>  {}", html(&s));
            }
            let _ = writeln!(
                out,
                "    <tr><td align=\"left\" sides=\"t\">{cell}<br align=\"left\"/></td></tr>"
            );
        }
        out.push_str("  </table>>];\n");
    }
    let mut sorted: Vec<&Edge> = edges.iter().collect();
    sorted.sort_by_key(|e| (e.from, e.to, e.output.clone()));
    for e in sorted {
        let from = &trains[e.from].config.name;
        let _ = match &e.output {
            Some(o) => writeln!(
                out,
                "  {} -> {} [label={}];",
                dot_id(from),
                dot_id(&trains[e.to].config.name),
                dot_id(o)
            ),
            None => writeln!(out, "  {} -> {};", dot_id(from), dot_id(&trains[e.to].config.name)),
        };
    }
    out.push_str("}\n");
    out
}
