//! Immediate events: callbacks queued for the next turn of the loop.

use std::collections::VecDeque;

use super::Target;
use crate::token::{Key, Slab};

/// Handle of a queued immediate event, for [`Core::dequeue`](crate::Core::dequeue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImmediateId(pub(crate) Key);

/// FIFO of queued targets. Dequeueing frees the slot in O(1); the queue entry
/// goes stale and is skipped when it comes up.
#[derive(Default)]
pub(crate) struct Immediates {
    pub(crate) slots: Slab<Target>,
    queue: VecDeque<Key>,
}

impl Immediates {
    pub(crate) fn enqueue(&mut self, target: Target) -> ImmediateId {
        let key = self.slots.insert(target);
        self.queue.push_back(key);
        ImmediateId(key)
    }

    pub(crate) fn dequeue(&mut self, id: ImmediateId) -> Option<Target> {
        self.slots.remove(id.0)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// How many queue entries this turn runs: what was queued before it began.
    pub(crate) fn turn_len(&self) -> usize {
        self.queue.len()
    }

    /// Pops one queue entry; `None` inside means it was dequeued (stale).
    pub(crate) fn pop_entry(&mut self) -> Option<Option<(ImmediateId, Target)>> {
        let key = self.queue.pop_front()?;
        Some(self.slots.remove(key).map(|t| (ImmediateId(key), t)))
    }
}
