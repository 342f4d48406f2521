//! The finish protocol: `finish` goes through each train in order (a
//! train that reads others after them, once its input queue is empty), a cog
//! answering [`Finish::Pending`] holds the rest of its train until it calls
//! `finished`, each finished cog's bindings are released (new ones were
//! refused from its `finish` on), then every cog gets `done`. A deadline
//! bounds it all and names the cogs that were late.

use std::time::Instant;

use super::Escapement;
use crate::cog::Finish;
use crate::core::{CogPhase, Phase};
use crate::sources::timer::later;
use crate::sources::CogAddr;

/// How [`Escapement::run`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every cog finished and got `done`.
    Clean,
    /// The finish deadline passed; these cogs (`train NAME cog N (description)`,
    /// counting from 1) had not finished. `done` was still delivered to every cog.
    Deadline(Vec<String>),
    /// A cog failed in a way the process cannot run on (a socket it could
    /// not listen on) and said so with [`Context::fail`](crate::Context::fail);
    /// these are the reasons (`train NAME cog N (description): why`). The
    /// trains were finished in order and every cog got `done`.
    Failed(Vec<String>),
}

impl Escapement {
    /// The loop begins to finish: tells the recorder, and sets the deadline.
    pub(super) fn begin_finish(&mut self) {
        self.core.phase = Phase::Finishing;
        self.core.gauges.finish_began();
        self.core.finish_requested = false;
        self.finish_by = Some(later(Instant::now(), self.core.finish_deadline));
        if let Some(recorder) = &mut self.core.recorder {
            if recorder.finish(self.core.clock.now()).is_err() {
                self.core.recorder = None;
            }
        }
    }

    /// Moves every train's finish along: cog after cog, waiting on a cog
    /// that answered [`Finish::Pending`] until it calls `finished`.
    pub(super) fn advance_finish(&mut self) {
        for i in 0..self.order.len() {
            let t = self.order[i] as usize;
            self.advance_train(t);
        }
        let all = (0..self.trains.len()).all(|t| self.cursors[t] >= self.trains[t].len());
        if all {
            self.deliver_done();
        }
    }

    /// Moves train `t`'s finish along, as far as it can go now.
    pub(super) fn advance_train(&mut self, t: usize) {
        {
            loop {
                let cog = self.cursors[t];
                if cog >= self.trains[t].len() {
                    break;
                }
                let addr = CogAddr { train: t as u32, cog };
                match self.core.cog_phase(addr) {
                    // A train that reads others waits for them, and for
                    // what they sent, before its first cog finishes.
                    CogPhase::Running if cog == 0 && !self.may_finish(t) => break,
                    CogPhase::Running => {
                        self.core.cog_phases[t][cog as usize] = CogPhase::Pending;
                        let answer = self.trains[t].finish(cog, &mut self.core);
                        if answer == Finish::Done {
                            self.core.cog_phases[t][cog as usize] = CogPhase::Finished;
                        }
                        self.deliver_notices();
                    }
                    CogPhase::Pending => break,
                    CogPhase::Finished => {
                        self.core.release(addr);
                        self.cursors[t] += 1;
                    }
                }
            }
        }
    }

    pub(super) fn deadline_passed(&mut self) {
        self.finish_by = None;
        if self.core.phase != Phase::Finishing {
            return;
        }
        let mut late = Vec::new();
        for t in 0..self.trains.len() {
            let cogs = self.trains[t].cogs();
            for cog in self.cursors[t]..self.trains[t].len() {
                let text = cogs.get(cog as usize).map_or("", |c| c.text.as_str());
                late.push(format!("train {} cog {} ({text})", self.trains[t].name(), cog + 1));
            }
        }
        log::warn!(
            "finish deadline of {:?} passed; forcing done. Not finished: {}",
            self.core.finish_deadline,
            late.join("; ")
        );
        self.exit = Exit::Deadline(late);
        self.deliver_done();
    }

    fn deliver_done(&mut self) {
        for t in 0..self.trains.len() {
            self.trains[t].done(&mut self.core);
        }
        self.core.phase = Phase::Done;
    }
}
