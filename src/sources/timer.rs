//! Timers: one-shot and repeating, cancelled in O(1).
//!
//! Deadlines live in a binary heap; a cancelled or re-armed timer leaves its
//! old heap entry behind (lazy deletion), recognised as stale because the
//! slot's sequence number no longer matches. When stale entries outnumber the
//! live ones the heap is rebuilt from the slots, so cancel/re-arm churn never
//! grows memory without bound. No timer costs an fd.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::Target;
use crate::token::{Key, Slab};

/// Handle of an armed timer, for [`Core::cancel`](crate::Core::cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId(pub(crate) Key);

pub(crate) struct TimerSlot {
    deadline: Instant,
    period: Option<Duration>,
    seq: u64,
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

    /// Pops one timer due at `now`; a repeating one is re-armed first.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, Target)> {
        let deadline = self.next_deadline()?;
        if deadline > now {
            return None;
        }
        let Reverse((_, _, key)) = self.heap.pop()?;
        let slot = self.slots.get(key)?;
        let target = slot.target;
        match slot.period {
            Some(period) => {
                // Missed ticks are skipped rather than fired in a burst.
                let mut next = slot.deadline + period;
                if next <= now {
                    next = now + period;
                }
                self.rearm(TimerId(key), next);
            }
            None => {
                self.slots.remove(key);
            }
        }
        Some((TimerId(key), target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(n: u64) -> Target {
        Target::Internal(n)
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
        let order: Vec<_> = std::iter::from_fn(|| timers.pop_due(t))
            .map(|(_, tg)| match tg {
                Target::Internal(n) => n,
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}
