//! Replacing trains while the loop runs ([`Core::replace_trains`]): the
//! trains retired finish as at the end of a run, the others run on, and
//! once the retired ones got `done` they are dropped and the caller places
//! what replaces them.
//!
//! A retired train keeps its index (every table of the escapement and of
//! the core is indexed by train) and leaves a [`Retired`] in its place:
//! nameless, without cogs, reading and read by nothing.

use std::any::Any;
use std::rc::Rc;
use std::time::Instant;

use super::Escapement;
use crate::cog::Finish;
use crate::core::{Broadcast, Core, Phase, ReplaceThen, Replacement};
use crate::graph::Gauge;
use crate::role::CogInfo;
use crate::sources::timer::later;
use crate::sources::{CogAddr, Fired};
use crate::train::AnyTrain;

/// A replacement under way.
pub(super) struct Retiring {
    /// The trains finishing, by index.
    trains: Vec<u32>,
    then: ReplaceThen,
    /// When the finish is forced to `done` (real time).
    pub(super) by: Instant,
}

impl Escapement {
    /// Takes the next replacement asked, if none is under way; moves the
    /// one under way along.
    pub(super) fn advance_replacements(&mut self) {
        if self.core.phase != Phase::Running {
            if self.retiring.take().is_some() || !self.core.replacements.is_empty() {
                self.core.replacements.clear();
                log::warn!("the loop finishes: trains being replaced are not placed again");
            }
            return;
        }
        if self.retiring.is_none() {
            let Some(r) = self.core.replacements.pop_front() else {
                return;
            };
            self.begin_retire(r);
        }
        let Some((trains, by)) = self.retiring.as_ref().map(|r| (r.trains.clone(), r.by)) else {
            return;
        };
        // In the loop's order: a train that reads others after them.
        for i in 0..self.order.len() {
            let t = self.order[i];
            if trains.contains(&t) {
                self.advance_train(t as usize);
            }
        }
        let through = trains
            .iter()
            .all(|&t| self.cursors[t as usize] >= self.trains[t as usize].len());
        if through || Instant::now() >= by {
            self.end_retire();
        }
    }

    fn begin_retire(&mut self, r: Replacement) {
        if self.core.recorder.is_some() || self.playback.is_some() {
            log::error!(
                "trains cannot be replaced while the run is captured or replayed: {} left as they are",
                r.trains.join(", ")
            );
            return;
        }
        let mut set: Vec<u32> = r
            .trains
            .iter()
            .filter_map(|n| self.trains.iter().position(|t| !n.is_empty() && t.name() == n))
            .map(|t| t as u32)
            .collect();
        // Close the set over the junctions, both ways.
        let mut i = 0;
        while i < set.len() {
            let t = set[i];
            let mut linked: Vec<u32> = self.upstream[t as usize].clone();
            linked.extend((0..self.upstream.len() as u32).filter(|&u| self.upstream[u as usize].contains(&t)));
            for u in linked {
                if !set.contains(&u) {
                    log::info!(
                        "train `{}` is replaced too: it is connected to `{}`",
                        self.trains[u as usize].name(),
                        self.trains[t as usize].name()
                    );
                    set.push(u);
                }
            }
            i += 1;
        }
        set.sort_unstable();
        let names: Vec<&str> = set.iter().map(|&t| self.trains[t as usize].name()).collect();
        if !names.is_empty() {
            log::info!("finishing trains {} to replace them", names.join(", "));
        }
        self.retiring = Some(Retiring {
            trains: set,
            then: r.then,
            by: later(Instant::now(), self.core.finish_deadline),
        });
    }

    /// The retired trains get `done` and are dropped; the caller's `then`
    /// places what replaces them.
    fn end_retire(&mut self) {
        let Some(r) = self.retiring.take() else { return };
        let mut late = Vec::new();
        for &t in &r.trains {
            let t = t as usize;
            let cogs = self.trains[t].cogs();
            for cog in self.cursors[t]..self.trains[t].len() {
                let text = cogs.get(cog as usize).map_or("", |c| c.text.as_str());
                late.push(format!("train {} cog {} ({text})", self.trains[t].name(), cog + 1));
                self.core.release(CogAddr { train: t as u32, cog });
            }
        }
        if !late.is_empty() {
            log::warn!(
                "finish deadline of {:?} passed while replacing trains; forcing done. Not finished: {}",
                self.core.finish_deadline,
                late.join("; ")
            );
        }
        for &t in &r.trains {
            self.trains[t as usize].done(&mut self.core);
        }
        self.deliver_notices();
        let mut names = Vec::with_capacity(r.trains.len());
        for &t in &r.trains {
            let i = t as usize;
            if let Some(g) = self.trains[i].gauge() {
                self.core.graph.gauges.retain(|x| !Rc::ptr_eq(x, &g));
            }
            let old = std::mem::replace(&mut self.trains[i], Box::new(Retired));
            names.push(old.name().to_owned());
            // Dropped here: its files closed, its locks released, before
            // what replaces it opens them again.
            drop(old);
            self.upstream[i].clear();
            self.cursors[i] = 0;
            self.core.cog_phases[i].clear();
            if let Some(f) = self.core.graph.forward.get_mut(i) {
                *f = None;
            }
            if let Some(f) = self.core.graph.fed.get_mut(i) {
                *f = false;
            }
        }
        let gone = |a: &CogAddr| r.trains.contains(&a.train);
        self.supplies.retain(|a| !gone(a));
        self.exhausted.retain(|a| !gone(a));
        self.swappable.retain(|a| !gone(a));
        self.order.retain(|t| !r.trains.contains(t));
        log::info!("trains {} finished and dropped", names.join(", "));
        (r.then)(self, &names);
    }
}

/// What stays at the index of a retired train.
pub(super) struct Retired;

impl AnyTrain for Retired {
    fn name(&self) -> &str {
        ""
    }
    fn len(&self) -> u32 {
        0
    }
    fn listing(&self) -> String {
        String::new()
    }
    fn cogs(&self) -> Vec<CogInfo> {
        Vec::new()
    }
    fn start(&mut self, _: &mut Core) {}
    fn fire(&mut self, _: u32, _: u64, _: Fired, _: &mut Core) {}
    fn notify(&mut self, _: Broadcast, _: &mut Core) {}
    fn notify_done(&mut self, _: &[crate::event::EventId], _: &mut Core) {}
    fn finish(&mut self, _: u32, _: &mut Core) -> Finish {
        Finish::Done
    }
    fn done(&mut self, _: &mut Core) {}
    fn inject(&mut self, _: u32, _: &[u8], _: &mut Core) -> serde_json::Result<()> {
        Ok(())
    }
    fn inputs(&self) -> &[String] {
        &[]
    }
    fn output_names(&self) -> Vec<String> {
        vec![String::new()]
    }
    fn feed(&mut self, _: usize) -> Box<dyn Any> {
        Box::new(())
    }
    fn attach(&mut self, _: usize, _: Box<dyn Any>) -> bool {
        false
    }
    fn pump(&mut self, _: &mut Core, _: usize) -> bool {
        false
    }
    fn drained(&self) -> bool {
        true
    }
    fn gauge(&self) -> Option<Rc<Gauge>> {
        None
    }
    fn readers(&self, _: usize) -> usize {
        0
    }
    fn set_exclusive(&mut self, _: usize, _: bool) {}
}
