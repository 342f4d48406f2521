//! Reloading the configuration on SIGHUP while `tourbillon run` runs.
//!
//! The file (and the environment and `--set` flags given at start) is read
//! and checked again. With an error, the trains run on as they were and
//! every error is logged. Otherwise the trains are compared with the ones
//! running, section by section (their cogs' effective settings, inputs and
//! queue): a train that did not change runs on untouched; a changed,
//! added or removed train, and every train connected to one through
//! inputs (in the old configuration or the new), finishes as at the end of
//! a run (flushed, its checkpoint saved) and the new configuration's
//! trains of those names start again, from the same checkpoints. If a
//! train of the new configuration cannot be built (a lock another process
//! holds), the old configuration's trains are placed again instead.
//!
//! `[log]` and `[daemon]` are read at start only: a change there is logged
//! as waiting for the next start.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use serde_json::{json, Value};
use tourbillon::train::split_input;
use tourbillon::{Core, Escapement};

use crate::app::{build, load_and_plan, place, PlannedTrain};
use crate::config::{Config, Sources};
use crate::registry::Registry;
use crate::systemd;

/// What runs: the configuration and the plan the running trains were built from.
pub struct Running {
    /// Where `tourbillon` was started: what relative paths are taken from.
    start: PathBuf,
    sources: Sources,
    registry: Registry,
    config: Config,
    plan: Vec<PlannedTrain>,
}

impl Running {
    /// What `run` started with, in the directory `start`.
    pub fn new(
        start: &Path,
        mut sources: Sources,
        registry: Registry,
        config: Config,
        plan: Vec<PlannedTrain>,
    ) -> Rc<RefCell<Running>> {
        // Read again after a chdir (`daemon.workdir`, `detach`).
        sources.file = sources.file.map(|f| start.join(f));
        Rc::new(RefCell::new(Running {
            start: start.to_path_buf(),
            sources,
            registry,
            config,
            plan,
        }))
    }
}

/// What identifies a train's section: two equal fingerprints build the
/// same train.
fn fingerprint(t: &PlannedTrain) -> String {
    let cogs: Vec<Value> = t
        .config
        .cogs
        .iter()
        .zip(&t.cogs)
        .map(|(c, p)| json!({ "kind": c.kind, "settings": p.settings }))
        .collect();
    json!({ "inputs": t.config.inputs, "queue": t.config.queue, "cogs": cogs }).to_string()
}

/// The trains each train reads, by name.
fn reads(plan: &[PlannedTrain]) -> BTreeMap<String, Vec<String>> {
    let names: BTreeSet<&str> = plan.iter().map(|t| t.config.name.as_str()).collect();
    plan.iter()
        .map(|t| {
            let ups = t
                .config
                .inputs
                .iter()
                .flatten()
                .filter_map(|i| {
                    split_input(i, |n| names.contains(n))
                        .ok()
                        .map(|(train, _)| train.to_owned())
                })
                .collect();
            (t.config.name.clone(), ups)
        })
        .collect()
}

/// The trains a reload replaces: the changed, added and removed ones, and
/// every train connected to one through inputs, old or new.
fn affected(old: &[PlannedTrain], new: &[PlannedTrain]) -> BTreeSet<String> {
    let before: BTreeMap<&str, String> = old.iter().map(|t| (t.config.name.as_str(), fingerprint(t))).collect();
    let after: BTreeMap<&str, String> = new.iter().map(|t| (t.config.name.as_str(), fingerprint(t))).collect();
    let mut set: BTreeSet<String> = before
        .keys()
        .chain(after.keys())
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| (*n).to_owned())
        .collect();
    let mut edges: Vec<(String, String)> = Vec::new();
    for graph in [reads(old), reads(new)] {
        for (t, ups) in graph {
            edges.extend(ups.into_iter().map(|u| (t.clone(), u)));
        }
    }
    loop {
        let more: Vec<String> = edges
            .iter()
            .filter_map(|(a, b)| match (set.contains(a), set.contains(b)) {
                (true, false) => Some(b.clone()),
                (false, true) => Some(a.clone()),
                _ => None,
            })
            .collect();
        if more.is_empty() {
            return set;
        }
        set.extend(more);
    }
}

/// The trains of `plan` named in `names`, each after the trains it reads.
fn placeable(plan: &[PlannedTrain], names: &BTreeSet<String>) -> Vec<PlannedTrain> {
    let graph = reads(plan);
    let mut left: Vec<PlannedTrain> = plan
        .iter()
        .filter(|t| names.contains(&t.config.name))
        .cloned()
        .collect();
    let mut out: Vec<PlannedTrain> = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let waiting: BTreeSet<String> = left.iter().map(|t| t.config.name.clone()).collect();
        let ready = left
            .iter()
            .position(|t| graph[&t.config.name].iter().all(|u| !waiting.contains(u)))
            // A cycle was refused by the check; keep going rather than loop.
            .unwrap_or(0);
        out.push(left.remove(ready));
    }
    out
}

/// Re-reads the configuration and replaces the trains that changed; see
/// the [module docs](self).
pub fn reload(core: &mut Core, running: &Rc<RefCell<Running>>) {
    systemd::reloading();
    let (config, plan) = {
        let r = running.borrow();
        match load_and_plan(&r.sources, &r.registry) {
            Ok((mut config, mut plan)) => {
                crate::paths::resolve(&mut config, &mut plan, &r.start);
                (config, plan)
            }
            Err(errors) => {
                log::error!(
                    "reload: the configuration has {} error{}; the trains run on as they were:",
                    errors.0.len(),
                    if errors.0.len() == 1 { "" } else { "s" }
                );
                for e in &errors.0 {
                    log::error!("reload: {e}");
                }
                systemd::ready();
                return;
            }
        }
    };
    let r = running.borrow();
    if config.daemon != r.config.daemon {
        log::warn!("reload: [daemon] changed: it takes effect at the next start");
    }
    if config.log != r.config.log {
        log::warn!("reload: [log] changed: it takes effect at the next start");
    }
    if serde_json::to_value(&config.api).ok() != serde_json::to_value(&r.config.api).ok() {
        log::warn!("reload: [api] changed: it takes effect at the next start");
    }
    let set = affected(&r.plan, &plan);
    if set.is_empty() {
        log::info!("reload: no train changed");
        systemd::ready();
        return;
    }
    let retire: Vec<String> = r
        .plan
        .iter()
        .map(|t| t.config.name.clone())
        .filter(|n| set.contains(n))
        .collect();
    log::info!(
        "reload: replacing trains {} (changed, added, removed or connected to one)",
        set.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    drop(r);
    let running = running.clone();
    let asked = core.replace_trains(retire, move |esc, retired| {
        let mut names = set;
        names.extend(retired.iter().cloned());
        let mut r = running.borrow_mut();
        // Their meters go with them; the new trains put theirs.
        for n in retired {
            r.registry.board().forget(n);
        }
        let wanted = placeable(&plan, &names);
        match build(&config, wanted, &r.registry) {
            Ok(built) => {
                let placed: Vec<String> = built.iter().map(|t| t.config.name.clone()).collect();
                place(esc, built);
                log::info!("reload: done; trains placed again: {}", placed.join(", "));
                r.config = config;
                r.plan = plan;
            }
            Err(errors) => {
                for e in &errors.0 {
                    log::error!("reload: {e}");
                }
                log::error!("reload: the new trains cannot be built; placing the trains as they were");
                restore(esc, &r, &names);
            }
        }
        systemd::ready();
    });
    if let Err(e) = asked {
        log::warn!("reload: {e}; not reloaded");
        systemd::ready();
    }
}

/// Places again the trains of the running configuration named in `names`.
fn restore(esc: &mut Escapement, r: &Running, names: &BTreeSet<String>) {
    match build(&r.config, placeable(&r.plan, names), &r.registry) {
        Ok(built) => place(esc, built),
        Err(errors) => {
            for e in &errors.0 {
                log::error!("reload: the trains as they were cannot be built either: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(toml: &str) -> Vec<PlannedTrain> {
        let sources = Sources {
            embedded: Some(toml.to_owned()),
            ..Sources::default()
        };
        load_and_plan(&sources, &Registry::standard()).unwrap().1
    }

    #[test]
    fn a_change_replaces_the_train_and_what_it_is_connected_to_and_nothing_else() {
        let old = plan(
            "[trains.a]\ncogs = [{ kind = \"stdin\" }]\n\
             [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"stdout\" }]\n\
             [trains.c]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_encode\" }]\n",
        );
        let same = plan(
            "[trains.c]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_encode\" }]\n\
             [trains.a]\ncogs = [{ kind = \"stdin\" }]\n\
             [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"stdout\" }]\n",
        );
        assert!(affected(&old, &same).is_empty(), "the order of sections is no change");
        let changed = plan(
            "[trains.a]\ncogs = [{ kind = \"stdin\" }]\n\
             [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"json_encode\" }, { kind = \"stdout\" }]\n\
             [trains.c]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_encode\" }]\n",
        );
        let names: Vec<String> = affected(&old, &changed).into_iter().collect();
        assert_eq!(names, vec!["a", "b"]);
        let defaults = plan(
            "[trains.a]\ncogs = [{ kind = \"stdin\" }]\n\
             [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"stdout\" }]\n\
             [trains.c]\ncogs = [{ kind = \"stdin\", max_line_bytes = 1048576 }, { kind = \"json_encode\" }]\n",
        );
        assert!(
            affected(&old, &defaults).is_empty(),
            "a default written out is no change"
        );
        // A new train reading `c` connects it; `d` is new.
        let added = plan(
            "[trains.a]\ncogs = [{ kind = \"stdin\" }]\n\
             [trains.b]\ninputs = [\"a\"]\ncogs = [{ kind = \"stdout\" }]\n\
             [trains.c]\ncogs = [{ kind = \"stdin\" }, { kind = \"json_encode\" }]\n\
             [trains.d]\ninputs = [\"c\"]\ncogs = [{ kind = \"stdout\" }]\n",
        );
        let names: Vec<String> = affected(&old, &added).into_iter().collect();
        assert_eq!(names, vec!["c", "d"]);
        let order: Vec<String> = placeable(&added, &affected(&old, &added))
            .into_iter()
            .map(|t| t.config.name)
            .collect();
        assert_eq!(order, vec!["c", "d"], "upstream first");
    }
}
