//! Timers: one-shot and repeating, cancelled in O(1).
//!
//! Deadlines live in a binary heap; a cancelled or re-armed timer leaves its
//! old heap entry behind (lazy deletion), recognised as stale because the
//! slot's sequence number no longer matches. When stale entries outnumber the
//! live ones the heap is rebuilt from the slots, so cancel/re-arm churn never
//! grows memory without bound. No timer costs an fd.
//!
//! A one-shot timer stays bound while its callback runs, so the callback
//! can re-arm it with [`Core::reschedule`](crate::Core::reschedule); it is
//! freed when the callback returns without doing so.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::Target;
use crate::token::{Key, Slab};

/// `from + delay`, or a century from `from` where that sum would overflow
/// the clock: a delay taken from a setting (`u64::MAX` seconds) must mean
/// "practically never", not a panic.
pub(crate) fn later(from: Instant, delay: Duration) -> Instant {
    from.checked_add(delay)
        .or_else(|| from.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(from)
}

/// Handle of an armed timer, for [`Core::cancel`](crate::Core::cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) Key);

pub(crate) struct TimerSlot {
    deadline: Instant,
    period: Option<Duration>,
    seq: u64,
    /// A one-shot timer whose callback is running: not in the heap.
    fired: bool,
    pub(crate) target: Target,
}

/// `(deadline, seq)` orders equal deadlines first-armed-first-fired.
type Entry = Reverse<(Instant, u64, Key)>;

#[derive(Default)]
pub(crate) struct Timers {
    pub(crate) slots: Slab<TimerSlot>,
    heap: BinaryHeap<Entry>,
    seq: u64,
}

impl Timers {
    pub(crate) fn arm(&mut self, deadline: Instant, period: Option<Duration>, target: Target) -> TimerId {
        self.seq += 1;
        let seq = self.seq;
        let key = self.slots.insert(TimerSlot {
            deadline,
            period,
            seq,
            fired: false,
            target,
        });
        self.heap.push(Reverse((deadline, seq, key)));
        self.compact_if_needed();
        TimerId(key)
    }

    /// Moves an armed timer to a new deadline; false if it is gone.
    pub(crate) fn rearm(&mut self, id: TimerId, deadline: Instant) -> bool {
        self.seq += 1;
        let seq = self.seq;
        let Some(slot) = self.slots.get_mut(id.0) else {
            return false;
        };
        slot.deadline = deadline;
        slot.seq = seq;
        slot.fired = false;
        self.heap.push(Reverse((deadline, seq, id.0)));
        self.compact_if_needed();
        true
    }

    /// O(1): the heap entry goes stale and is skipped or compacted later.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<Target> {
        self.slots.remove(id.0).map(|slot| slot.target)
    }

    pub(crate) fn live(&self) -> usize {
        self.slots.len()
    }

    /// Number of heap entries, live and stale: bounded by a constant factor of [`live`](Self::live).
    pub(crate) fn heap_len(&self) -> usize {
        self.heap.len()
    }

    fn is_live(&self, entry: &Entry) -> bool {
        let Reverse((_, seq, key)) = *entry;
        self.slots.get(key).is_some_and(|slot| slot.seq == seq)
    }

    fn compact_if_needed(&mut self) {
        if self.heap.len() > 64 + 2 * self.slots.len() {
            let live: Vec<Entry> = self
                .slots
                .iter()
                .filter(|(_, slot)| !slot.fired)
                .map(|(key, slot)| Reverse((slot.deadline, slot.seq, key)))
                .collect();
            self.heap = BinaryHeap::from(live);
        }
    }

    /// The earliest live deadline, dropping stale entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(top) = self.heap.peek() {
            if self.is_live(top) {
                return Some(top.0 .0);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops one timer due at `now`, with its deadline; a repeating one is
    /// re-armed first. Call [`retire`](Self::retire) after its callback.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, Target, Instant)> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let Reverse((_, _, key)) = self.heap.pop()?;
        let slot = self.slots.get_mut(key)?;
        let target = slot.target;
        match slot.period {
            Some(period) => {
                // Missed ticks are skipped rather than fired in a burst.
                let mut next = later(slot.deadline, period);
                if next <= now {
                    next = later(now, period);
                }
                self.rearm(TimerId(key), next);
            }
            None => slot.fired = true,
        }
        Some((TimerId(key), target, deadline))
    }

    /// After the callback of a popped timer: frees a one-shot timer its
    /// callback did not re-arm, and returns its target.
    pub(crate) fn retire(&mut self, id: TimerId) -> Option<Target> {
        if self.slots.get(id.0)?.fired {
            return self.slots.remove(id.0).map(|slot| slot.target);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: u64) -> Target {
        Target::Cog {
            addr: crate::sources::CogAddr { train: 0, cog: 0 },
            key: n,
        }
    }

    #[test]
    fn a_delay_past_the_clock_s_range_is_a_century_not_a_panic() {
        let now = Instant::now();
        let far = later(now, Duration::from_secs(u64::MAX));
        assert!(far >= now + Duration::from_secs(99 * 365 * 24 * 3600));
        assert_eq!(later(now, Duration::from_millis(5)), now + Duration::from_millis(5));
    }

    #[test]
    fn churn_keeps_heap_bounded() {
        let mut timers = Timers::default();
        let now = Instant::now();
        let mut id = timers.arm(now + Duration::from_secs(5), None, target(0));
        for i in 0..100_000u64 {
            timers.cancel(id);
            id = timers.arm(now + Duration::from_millis(i % 977), None, target(i));
            assert!(timers.heap_len() <= 64 + 2 * timers.live() + 1);
        }
        assert_eq!(timers.live(), 1);
    }

    #[test]
    fn equal_deadlines_fire_in_arming_order() {
        let mut timers = Timers::default();
        let t = Instant::now();
        for i in 0..10 {
            timers.arm(t, None, target(i));
        }
        let mut order = Vec::new();
        while let Some((id, tg, _)) = timers.pop_due(t) {
            timers.retire(id);
            match tg {
                Target::Cog { key, .. } => order.push(key),
                _ => unreachable!(),
            }
        }
        assert_eq!(order, (0..10).collect::<Vec<_>>());
        assert_eq!(timers.live(), 0);
    }

    #[test]
    fn a_one_shot_timer_re_armed_by_its_callback_fires_again() {
        let mut timers = Timers::default();
        let t = Instant::now();
        let id = timers.arm(t, None, target(1));
        let (fired, _, _) = timers.pop_due(t).unwrap();
        assert!(
            timers.rearm(fired, t + Duration::from_millis(5)),
            "bound during its callback"
        );
        assert_eq!(timers.retire(fired), None);
        assert!(timers.pop_due(t).is_none());
        let (again, _, at) = timers.pop_due(t + Duration::from_millis(5)).unwrap();
        assert_eq!((again, at), (id, t + Duration::from_millis(5)));
        assert!(timers.retire(again).is_some());
        assert!(!timers.rearm(again, t), "gone once its callback returned");
    }
}
