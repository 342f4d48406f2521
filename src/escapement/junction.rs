//! The junctions between trains: resolving the inputs trains name into
//! edges (and refusing unknown names and cycles), ordering the trains so
//! that each comes after the trains it reads, and moving what waits in the
//! input queues into the trains.

use super::{Escapement, TURN_BUDGET};
use crate::core::Phase;
use crate::error::Error;
use crate::train::split_input;

/// One edge: output `output` of train `from` feeds train `to`.
#[derive(Clone, Copy, Debug)]
struct Edge {
    from: u32,
    output: usize,
    to: u32,
}

impl Escapement {
    /// Makes the junctions the trains' inputs name; every mistake is
    /// reported at once.
    pub(super) fn wire(&mut self) -> Result<(), Error> {
        self.wired = true;
        let mut edges = Vec::new();
        let mut errors = Vec::new();
        for t in 0..self.trains.len() {
            for name in self.trains[t].inputs() {
                match self.resolve(name) {
                    Ok((from, output)) => edges.push(Edge {
                        from,
                        output,
                        to: t as u32,
                    }),
                    Err(why) => errors.push(format!("train `{}`: input `{name}`: {why}", self.trains[t].name())),
                }
            }
        }
        if !errors.is_empty() {
            return Err(Error::Graph(errors.join("; ")));
        }
        self.order = self.topological(&edges)?;
        for &edge in &edges {
            self.connect(edge)?;
        }
        // An output one train reads, when that train reads nothing else:
        // one copy per datum, passed up without the ledger.
        self.core.graph.forward = vec![None; self.trains.len()];
        for e in &edges {
            let only_input = edges.iter().filter(|x| x.to == e.to).count() == 1;
            let only_reader = self.trains[e.from as usize].readers(e.output) == 1;
            if only_input && only_reader {
                self.trains[e.from as usize].set_exclusive(e.output, true);
                self.core.graph.forward[e.to as usize] = Some(e.from);
            }
        }
        Ok(())
    }

    /// Makes the junctions of train `t`, placed while the loop runs: it
    /// may read only outputs of trains placed before it that nobody reads
    /// yet (the copies in flight below an output are counted one way or
    /// the other from the start).
    pub(super) fn wire_train(&mut self, t: u32) -> Result<(), Error> {
        let names: Vec<String> = self.trains[t as usize].inputs().to_vec();
        let name = self.trains[t as usize].name().to_owned();
        let mut edges = Vec::new();
        for input in &names {
            let (from, output) = self
                .resolve(input)
                .map_err(|why| Error::Graph(format!("train `{name}`: input `{input}`: {why}")))?;
            if from == t {
                return Err(Error::Graph(format!("train `{name}` reads itself: a cycle")));
            }
            if self.trains[from as usize].readers(output) > 0 {
                return Err(Error::Graph(format!(
                    "train `{name}`: input `{input}`: placed while the loop runs, it may read only an output nobody reads yet"
                )));
            }
            edges.push(Edge { from, output, to: t });
        }
        self.core.graph.forward.resize(self.trains.len(), None);
        for &e in &edges {
            self.connect(e)?;
        }
        if let [e] = edges[..] {
            self.trains[e.from as usize].set_exclusive(e.output, true);
            self.core.graph.forward[t as usize] = Some(e.from);
        }
        Ok(())
    }

    /// The train and output an input names ([`split_input`]).
    fn resolve(&self, name: &str) -> Result<(u32, usize), String> {
        let find = |n: &str| self.trains.iter().position(|t| !n.is_empty() && t.name() == n);
        let (train, output) = split_input(name, |n| find(n).is_some()).map_err(|unknown| {
            let all: Vec<&str> = self.trains.iter().map(|t| t.name()).filter(|n| !n.is_empty()).collect();
            format!("no train is named `{unknown}` (trains: {})", all.join(", "))
        })?;
        let t = find(train).unwrap_or_default();
        let Some(output) = output else {
            return Ok((t as u32, 0));
        };
        let outputs = self.trains[t].output_names();
        match outputs.iter().skip(1).position(|o| o == output) {
            Some(i) => Ok((t as u32, i + 1)),
            None if outputs.len() > 1 => Err(format!(
                "train `{train}` has no output `{output}` (its outputs: {})",
                outputs[1..].join(", ")
            )),
            None => Err(format!("train `{train}` has no named output (read it as `{train}`)")),
        }
    }

    /// Every train, each after the trains it reads (in the order they were
    /// placed where that leaves a choice); a cycle is an error naming it.
    fn topological(&self, edges: &[Edge]) -> Result<Vec<u32>, Error> {
        let n = self.trains.len();
        let mut reads = vec![Vec::new(); n];
        for e in edges {
            if !reads[e.to as usize].contains(&e.from) {
                reads[e.to as usize].push(e.from);
            }
        }
        let mut order = Vec::with_capacity(n);
        let mut placed = vec![false; n];
        while order.len() < n {
            let next = (0..n).find(|&t| !placed[t] && reads[t].iter().all(|&u| placed[u as usize]));
            match next {
                Some(t) => {
                    placed[t] = true;
                    order.push(t as u32);
                }
                None => return Err(Error::Graph(self.cycle(&reads, &placed))),
            }
        }
        Ok(order)
    }

    /// Names one cycle among the trains not placed.
    fn cycle(&self, reads: &[Vec<u32>], placed: &[bool]) -> String {
        // Every train left reads another train left: walking back along
        // reads must come round.
        let mut path: Vec<u32> = Vec::new();
        let mut t = (0..placed.len()).find(|&t| !placed[t]).unwrap_or(0) as u32;
        while !path.contains(&t) {
            path.push(t);
            t = reads[t as usize]
                .iter()
                .copied()
                .find(|&u| !placed[u as usize])
                .unwrap_or(t);
        }
        // `path` runs against the data: from `t`, each train reads the
        // next. Named the way data flow, from `t` back to it.
        let start = path.iter().position(|&x| x == t).unwrap_or(0);
        let name = |x: u32| self.trains[x as usize].name();
        let mut ring = vec![name(t)];
        ring.extend(path[start + 1..].iter().rev().map(|&x| name(x)));
        ring.push(name(t));
        format!("trains read each other in a cycle: {}", ring.join(" -> "))
    }

    fn connect(&mut self, e: Edge) -> Result<(), Error> {
        let feed = self.trains[e.to as usize].feed(self.queue_capacity);
        if !self.trains[e.from as usize].attach(e.output, feed) {
            return Err(Error::Graph(format!(
                "train `{}` reads train `{}`, whose data are of another type",
                self.trains[e.to as usize].name(),
                self.trains[e.from as usize].name()
            )));
        }
        let up = &mut self.upstream[e.to as usize];
        if !up.contains(&e.from) {
            up.push(e.from);
        }
        let graph = &mut self.core.graph;
        graph.active = true;
        graph.fed.resize(self.trains.len(), false);
        if !graph.fed[e.to as usize] {
            graph.fed[e.to as usize] = true;
            if let Some(g) = self.trains[e.to as usize].gauge() {
                graph.gauges.push(g);
            }
        }
        Ok(())
    }

    /// Moves what waits in the input queues into their trains, upstream
    /// first, so that a datum crosses every junction in one pass.
    pub(super) fn pump(&mut self) {
        self.core.graph.queued = false;
        let mut again = false;
        for i in 0..self.order.len() {
            if self.core.phase == Phase::Done {
                return;
            }
            let t = self.order[i] as usize;
            if self.trains[t].drained() {
                continue;
            }
            again |= self.trains[t].pump(&mut self.core, TURN_BUDGET);
            self.deliver_casts();
        }
        if again {
            self.core.graph.queued = true;
        }
    }

    /// Whether train `t` may begin to finish: every train it reads is
    /// through, and nothing waits in its input queue.
    pub(super) fn may_finish(&self, t: usize) -> bool {
        self.upstream[t]
            .iter()
            .all(|&u| self.cursors[u as usize] >= self.trains[u as usize].len())
            && self.trains[t].drained()
    }
}
