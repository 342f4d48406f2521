//! The in-flight ledger: what a cog that tracks acknowledgements owes when
//! the events it sent down the train are done.
//!
//! A cog that must act once an event it emitted is finished (a supply that
//! acks a message or moves a checkpoint, a step that finishes a datum once
//! every line cut from it is finished) records a *payload* (a message's
//! reply subject, a place in a file, a parent event's id) against the
//! event's id, and hands it back when the event is done. Downstream cogs
//! may split, merge and rename events on the way; the ledger follows them
//! with one rule:
//!
//! - **Copies.** An id in flight has a number of copies, each of which is
//!   reported done once (1 at first). Every copy of an id owes the same
//!   payloads.
//! - **Split** (`split(id, n)`): one copy of `id` becomes `n` copies of the
//!   same id (fan-out to `n` trains). Its payloads wait for all of them.
//! - **Rename** (`rename(old, new)`, the runtime's `event_rename`): one
//!   copy of `old` goes on as `new`. If `new` is in flight already (a
//!   *merge*: several events absorbed into one), every copy of `new` now
//!   owes `old`'s payloads too; otherwise `new` starts with one copy. A
//!   copy renamed away is no longer `old`'s: a later `done(old)` counts
//!   only the copies left.
//! - **Done** (`done(id)`): one copy of `id` is finished. A payload is
//!   handed back when the last copy that owes it is done (and the cog that
//!   recorded it holds it no longer, see [`Ledger::open`]). Ids the ledger
//!   does not know (not ours, or finished already) are ignored.
//!
//! A payload owed twice by the same copy (two lines of one parent merged
//! into one event) is handed back once, when that copy is done.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use crate::event::EventId;

/// A payload recorded in a [`Ledger`] and not yet handed back: what
/// [`Ledger::attach`], [`Ledger::hold`] and [`Ledger::release`] name.
/// Valid while the payload is owed or held; its number is reused after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u32);

/// The payloads each id in flight owes; see the [module docs](self).
///
/// Keyed by [`EventId`]; `K` may be any small key naming a copy in flight
/// (the escapement's junctions key copies by the train they went to and
/// their id).
pub struct Ledger<P, K = EventId> {
    ids: HashMap<K, Piece, IdHash>,
    slots: Vec<Slot<P>>,
    free: Vec<u32>,
}

/// One id in flight.
#[derive(Debug)]
struct Piece {
    copies: u32,
    owes: Owes,
}

/// The tickets one id owes: almost always one.
#[derive(Debug)]
enum Owes {
    One(Ticket),
    Many(Vec<Ticket>),
}

impl Owes {
    fn as_slice(&self) -> &[Ticket] {
        match self {
            Owes::One(t) => std::slice::from_ref(t),
            Owes::Many(v) => v,
        }
    }

    fn push(&mut self, t: Ticket) {
        match self {
            Owes::One(first) => *self = Owes::Many(vec![*first, t]),
            Owes::Many(v) => v.push(t),
        }
    }
}

/// A payload, and how many copies in flight (and holds) it waits for.
struct Slot<P> {
    payload: Option<P>,
    refs: u32,
}

impl<P, K> Default for Ledger<P, K> {
    fn default() -> Self {
        Ledger {
            ids: HashMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<P, K> fmt::Debug for Ledger<P, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("ids", &self.ids.len())
            .field("payloads", &(self.slots.len() - self.free.len()))
            .finish()
    }
}

impl<P, K: Copy + Eq + Hash> Ledger<P, K> {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// Event `id` owes `payload`: it is handed back when `id` is done. If
    /// `id` is in flight already, every copy of it owes `payload` too.
    pub fn track(&mut self, id: K, payload: P) {
        let t = self.open(payload);
        self.attach(id, t);
        // Attached, so still owed: the hold was the only other reference.
        let none = self.release(t);
        debug_assert!(none.is_none());
    }

    /// Records `payload` without an id yet, held by the caller: it is not
    /// handed back before [`release`](Ledger::release), however many ids
    /// that owe it are done meanwhile (a datum being split, whose lines
    /// may finish before the last one is cut).
    pub fn open(&mut self, payload: P) -> Ticket {
        let slot = Slot {
            payload: Some(payload),
            refs: 1,
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                Ticket(i)
            }
            None => {
                self.slots.push(slot);
                Ticket((self.slots.len() - 1) as u32)
            }
        }
    }

    /// One more hold on `t`, dropped with [`release`](Ledger::release).
    pub fn hold(&mut self, t: Ticket) {
        self.slots[t.0 as usize].refs += 1;
    }

    /// Drops one hold on `t`; its payload if nothing owes or holds it now.
    pub fn release(&mut self, t: Ticket) -> Option<P> {
        self.unref(t, 1)
    }

    /// Event `id` owes the payload of `t` (tracked with one copy if it is
    /// not in flight yet).
    pub fn attach(&mut self, id: K, t: Ticket) {
        let copies = match self.ids.get_mut(&id) {
            Some(piece) => {
                piece.owes.push(t);
                piece.copies
            }
            None => {
                self.ids.insert(
                    id,
                    Piece {
                        copies: 1,
                        owes: Owes::One(t),
                    },
                );
                1
            }
        };
        self.slots[t.0 as usize].refs += copies;
    }

    /// One copy of `id` became `n` (at least 1): its payloads wait for
    /// every one. False if `id` is not in flight.
    pub fn split(&mut self, id: K, n: u32) -> bool {
        assert!(n >= 1, "a split makes at least one copy (a copy dropped is done)");
        let Some(piece) = self.ids.get_mut(&id) else {
            return false;
        };
        piece.copies += n - 1;
        for t in piece.owes.as_slice() {
            self.slots[t.0 as usize].refs += n - 1;
        }
        true
    }

    /// One copy of `old` goes on as `new` (renamed, or merged into `new`).
    /// False if `old` is not in flight.
    pub fn rename(&mut self, old: K, new: K) -> bool {
        if old == new {
            return self.ids.contains_key(&old);
        }
        let Some(moved) = self.ids.get(&old) else { return false };
        let moved: Vec<Ticket> = moved.owes.as_slice().to_vec();
        // Owed by `new` first, so that dropping the copy from `old` below
        // cannot bring a payload to nothing.
        for &t in &moved {
            self.attach(new, t);
        }
        let released = self.drop_copy(old, |_| {});
        debug_assert!(released == 0);
        true
    }

    /// One copy of `id` is done: `finished` gets each payload nothing owes
    /// any more. False if `id` is not in flight.
    pub fn done(&mut self, id: K, finished: impl FnMut(P)) -> bool {
        if !self.ids.contains_key(&id) {
            return false;
        }
        self.drop_copy(id, finished);
        true
    }

    /// Whether `id` is in flight.
    pub fn contains(&self, id: K) -> bool {
        self.ids.contains_key(&id)
    }

    /// Ids in flight.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is in flight (payloads may still be held).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Payloads owed or held, not yet handed back.
    pub fn payloads(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Takes one copy of `id` (which is in flight); returns how many
    /// payloads it handed to `finished`.
    fn drop_copy(&mut self, id: K, mut finished: impl FnMut(P)) -> usize {
        let Some(piece) = self.ids.get_mut(&id) else { return 0 };
        piece.copies -= 1;
        let gone = piece.copies == 0;
        let owes = if gone {
            self.ids.remove(&id).map(|p| p.owes)
        } else {
            None
        };
        let mut released = 0;
        let mut unref = |ledger: &mut Self, t: Ticket| {
            if let Some(p) = ledger.unref(t, 1) {
                released += 1;
                finished(p);
            }
        };
        match owes {
            Some(Owes::One(t)) => unref(self, t),
            Some(Owes::Many(all)) => all.into_iter().for_each(|t| unref(self, t)),
            None => {
                let owes: Vec<Ticket> = self.ids[&id].owes.as_slice().to_vec();
                owes.into_iter().for_each(|t| unref(self, t));
            }
        }
        released
    }

    fn unref(&mut self, t: Ticket, n: u32) -> Option<P> {
        let slot = &mut self.slots[t.0 as usize];
        debug_assert!(slot.refs >= n, "a ticket released more often than held");
        slot.refs -= n;
        if slot.refs > 0 {
            return None;
        }
        self.free.push(t.0);
        slot.payload.take()
    }
}

/// Event ids are distinct integers: one multiplication spreads them well
/// enough, where SipHash would cost more than the rest of the bookkeeping.
type IdHash = BuildHasherDefault<IdHasher>;

#[derive(Debug, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(l: &mut Ledger<&'static str>, id: u64) -> Vec<&'static str> {
        let mut out = Vec::new();
        l.done(EventId(id), |p| out.push(p));
        out.sort_unstable();
        out
    }

    #[test]
    fn a_payload_comes_back_when_its_event_is_done() {
        let mut l = Ledger::new();
        l.track(EventId(1), "a");
        assert_eq!(done(&mut l, 2), Vec::<&str>::new(), "not ours");
        assert_eq!(done(&mut l, 1), ["a"]);
        assert_eq!(done(&mut l, 1), Vec::<&str>::new(), "done once only");
        assert!(l.is_empty());
        assert_eq!(l.payloads(), 0);
    }

    #[test]
    fn a_split_event_is_done_when_every_copy_is() {
        let mut l = Ledger::new();
        l.track(EventId(1), "a");
        assert!(l.split(EventId(1), 3));
        assert!(done(&mut l, 1).is_empty());
        assert!(done(&mut l, 1).is_empty());
        assert_eq!(done(&mut l, 1), ["a"]);
        assert!(!l.split(EventId(1), 2), "no longer in flight");
    }

    #[test]
    fn merged_events_are_done_with_what_they_merged_into() {
        let mut l = Ledger::new();
        l.track(EventId(1), "a");
        l.track(EventId(2), "b");
        l.track(EventId(3), "c");
        assert!(l.rename(EventId(1), EventId(3)));
        assert!(l.rename(EventId(2), EventId(3)));
        assert!(!l.rename(EventId(1), EventId(9)), "renamed away already");
        assert!(done(&mut l, 1).is_empty(), "a copy renamed away is not old's any more");
        assert_eq!(done(&mut l, 3), ["a", "b", "c"]);
        assert!(l.is_empty());
    }

    #[test]
    fn a_renamed_copy_of_a_split_event_leaves_the_others() {
        let mut l = Ledger::new();
        l.track(EventId(1), "a");
        l.split(EventId(1), 2);
        l.rename(EventId(1), EventId(7));
        assert!(done(&mut l, 7).is_empty(), "the other copy of 1 is in flight");
        assert_eq!(done(&mut l, 1), ["a"]);
    }

    #[test]
    fn a_held_payload_waits_for_its_release() {
        let mut l = Ledger::new();
        let t = l.open("parent");
        l.attach(EventId(1), t);
        l.attach(EventId(2), t);
        assert!(done(&mut l, 1).is_empty());
        assert!(done(&mut l, 2).is_empty(), "still held");
        assert_eq!(l.release(t), Some("parent"));
        let t = l.open("p2");
        assert_eq!(l.release(t), Some("p2"), "nothing else owes it");
    }

    #[test]
    fn two_pieces_of_one_payload_merged_release_it_once() {
        let mut l = Ledger::new();
        let t = l.open("parent");
        l.attach(EventId(1), t);
        l.attach(EventId(2), t);
        assert_eq!(l.release(t), None);
        l.rename(EventId(1), EventId(2));
        assert_eq!(done(&mut l, 2), ["parent"]);
        assert_eq!(l.payloads(), 0);
    }

    /// The ledger's rule, written the slow and obvious way: every copy in
    /// flight listed with the payloads it owes.
    #[derive(Default)]
    struct Model {
        copies: Vec<(u64, Vec<usize>)>,
        live: Vec<usize>,
    }

    impl Model {
        fn track(&mut self, id: u64, p: usize) {
            self.live.push(p);
            let mut any = false;
            for (i, owes) in &mut self.copies {
                if *i == id {
                    owes.push(p);
                    any = true;
                }
            }
            if !any {
                self.copies.push((id, vec![p]));
            }
        }
        fn take(&mut self, id: u64) -> Option<Vec<usize>> {
            let at = self.copies.iter().position(|(i, _)| *i == id)?;
            Some(self.copies.remove(at).1)
        }
        fn split(&mut self, id: u64, n: u32) {
            if let Some(owes) = self.take(id) {
                for _ in 0..n {
                    self.copies.push((id, owes.clone()));
                }
            }
        }
        fn rename(&mut self, old: u64, new: u64) {
            if old == new {
                return;
            }
            let Some(owes) = self.take(old) else { return };
            let mut any = false;
            for (i, o) in &mut self.copies {
                if *i == new {
                    o.extend(&owes);
                    any = true;
                }
            }
            if !any {
                self.copies.push((new, owes));
            }
        }
        fn done(&mut self, id: u64) -> Vec<usize> {
            if self.take(id).is_none() {
                return Vec::new();
            }
            let still: Vec<usize> = self.copies.iter().flat_map(|(_, o)| o.iter().copied()).collect();
            let (gone, kept): (Vec<usize>, Vec<usize>) = self.live.iter().partition(|p| !still.contains(p));
            self.live = kept;
            let mut gone = gone;
            gone.sort_unstable();
            gone
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Track(u64),
        Split(u64, u32),
        Rename(u64, u64),
        Done(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..6u64).prop_map(Op::Track),
            1 => (0..6u64, 1..4u32).prop_map(|(i, n)| Op::Split(i, n)),
            2 => (0..6u64, 0..6u64).prop_map(|(a, b)| Op::Rename(a, b)),
            3 => (0..6u64).prop_map(Op::Done),
        ]
    }

    proptest! {
        #[test]
        fn the_ledger_hands_back_what_the_model_does(ops in proptest::collection::vec(op(), 1..60)) {
            let mut ledger: Ledger<usize> = Ledger::new();
            let mut model = Model::default();
            for (n, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Track(id) => {
                        ledger.track(EventId(id), n);
                        model.track(id, n);
                    }
                    Op::Split(id, k) => {
                        ledger.split(EventId(id), k);
                        model.split(id, k);
                    }
                    Op::Rename(a, b) => {
                        ledger.rename(EventId(a), EventId(b));
                        model.rename(a, b);
                    }
                    Op::Done(id) => {
                        let mut got = Vec::new();
                        ledger.done(EventId(id), |p| got.push(p));
                        got.sort_unstable();
                        prop_assert_eq!(got, model.done(id), "done({})", id);
                    }
                }
                prop_assert_eq!(ledger.payloads(), model.live.len());
            }
            // Finishing every copy left hands back every payload left.
            let ids: Vec<u64> = model.copies.iter().map(|(i, _)| *i).collect();
            let mut got = Vec::new();
            for id in ids {
                ledger.done(EventId(id), |p| got.push(p));
            }
            got.sort_unstable();
            let mut want = std::mem::take(&mut model.live);
            want.sort_unstable();
            prop_assert_eq!(got, want);
            prop_assert!(ledger.is_empty());
        }
    }
}
