//! Pacing: how long the loop may wait for the next turn, and, in a
//! playback, where its virtual clock moves and when each recorded datum is
//! emitted (as fast as possible, or at the recorded speed).

use std::time::{Duration, Instant};

use super::{Escapement, TURN_BUDGET};
use crate::core::Notice;
use crate::error::Error;
use crate::recorder::Due;

/// Where a replay's virtual clock moves in a turn: to `at`, once the real
/// time is `real` when the replay is paced.
pub(super) struct Step {
    pub(super) at: Instant,
    pub(super) real: Option<Instant>,
}

impl Escapement {
    /// How long the next poll may wait and, in a replay, where the clock
    /// moves this turn.
    pub(super) fn plan(&mut self) -> Result<(Option<Duration>, Option<Step>), Error> {
        let busy = !self.core.immediates.is_empty()
            || !self.core.notices.is_empty()
            || self.core.finish_requested
            || self.core.graph.queued;
        let mut timeout = busy.then_some(Duration::ZERO);
        let mut wait = |until: Instant| {
            // Round up: waking a hair early would spin until the deadline.
            let left = ceil_ms(until.saturating_duration_since(Instant::now()));
            timeout = Some(timeout.map_or(left, |t| t.min(left)));
        };
        let mut step = None;
        if self.core.clock.is_virtual() {
            let now = self.core.now();
            let recorded = match &mut self.playback {
                Some(playback) => playback.next_time(now)?,
                None => None,
            };
            let timer = self.core.timers.next_deadline();
            let next = match (recorded, timer) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if let Some(next) = next.filter(|_| !busy || self.busy_turns >= TURN_BUDGET) {
                let real = self.playback.as_ref().and_then(|p| p.real_time(next));
                wait(real.unwrap_or_else(Instant::now));
                step = Some(Step { at: next, real });
            }
        } else if let Some(deadline) = self.core.timers.next_deadline() {
            wait(deadline);
        }
        if let Some(by) = self.finish_by {
            wait(by);
        }
        if let Some(r) = &self.retiring {
            wait(r.by);
        }
        if !self.core.replacements.is_empty() {
            timeout = Some(Duration::ZERO);
        }
        Ok((timeout, step))
    }

    /// Emits what a playback recorded up to `limit`, each datum at its time,
    /// after the timers that fired before it at that instant live.
    pub(super) fn dispatch_replay(&mut self, limit: Instant) -> Result<(), Error> {
        // Set when this replay has fewer timers at an instant than the live
        // run had: the datum waits no longer.
        let mut short = false;
        loop {
            let Some(playback) = self.playback.as_mut() else {
                return Ok(());
            };
            let due = playback.due(limit)?;
            match due {
                None => return Ok(()),
                Some(Due::Datum { at, ties, .. }) if !short && ties > 0 && self.core.fired < (at, ties) => {
                    short = !self.fire_timer(at);
                    continue;
                }
                Some(Due::Datum {
                    train,
                    cog,
                    at,
                    ids,
                    json,
                    ..
                }) => {
                    self.core.clock.reach(at);
                    self.core.next_id = self.core.next_id.max(ids);
                    if let Some(t) = self.trains.get_mut(train as usize) {
                        if let Err(source) = t.inject(cog, json, &mut self.core) {
                            return Err(playback.decode_error(source));
                        }
                    }
                    playback.consumed();
                    short = false;
                }
                Some(Due::End(stand_ins)) => {
                    for addr in stand_ins {
                        self.core.notices.push_back((addr.train, Notice::Exhausted(addr.cog)));
                    }
                }
            }
            self.deliver_notices();
        }
    }
}

/// epoll counts in milliseconds: round up so the timer is due on wake-up
/// instead of spinning through zero-timeout polls until it is.
fn ceil_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_nanos().div_ceil(1_000_000) as u64)
}
