//! Junctions between trains: the bounded queue in front of a train that
//! reads other trains' outputs ([`Inlet`]), the outputs a train hands data
//! to ([`Outlet`]), and the escapement's bookkeeping of the copies in flight
//! below each junction ([`Graph`]).
//!
//! A train's main output is where data fall off its end; cogs may declare
//! named outputs ([`Cog::outputs`](crate::Cog::outputs)) and send data
//! there with [`Context::emit_to`](crate::Context::emit_to). Every train
//! that names an output among its inputs gets each datum sent there: one
//! reader gets the datum itself, several get a copy each. A datum with an
//! id is done in the train that sent it only when every copy is done in
//! the train it went to: the copies are keyed by (reader, id) in one
//! [`Ledger`], which follows the readers' renames and merges too. An
//! output read by one train that reads nothing else needs no ledger: that
//! train's `event_done` and `event_rename` are passed up as they are, as
//! if the two trains were one.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::core::{Broadcast, Core, Notice};
use crate::event::EventId;
use crate::ledger::Ledger;
use crate::train::Entry;

/// A named output of a train, as a cog that sends data there holds it:
/// got once from [`Context::output`](crate::Context::output).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Output(pub(crate) u32);

/// The fill of one train's input queue, as [`Core::queues`](crate::Core::queues) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueFill {
    /// The train the queue feeds.
    pub train: String,
    /// Data waiting now (a datum goes straight into a train that is free
    /// to take it; it waits here only while the train is congested).
    pub len: usize,
    /// Where the queue counts as full: the trains that feed it are
    /// congested from there on (a supply finishes the batch it is in, so
    /// the queue may pass this by one batch, never more).
    pub capacity: usize,
    /// The most data that ever waited at once.
    pub peak: usize,
    /// Data sent to the train, through the queue or straight in.
    pub total: u64,
}

/// The counters of one input queue, shared by the queue and the core.
#[derive(Debug)]
pub(crate) struct Gauge {
    pub(crate) train: String,
    pub(crate) capacity: usize,
    len: Cell<usize>,
    peak: Cell<usize>,
    total: Cell<u64>,
    /// Full since the last resume: the trains feeding it wait for one.
    full: Cell<bool>,
    /// The trains that feed it, resumed when it has room again.
    upstream: RefCell<Vec<u32>>,
}

impl Gauge {
    pub(crate) fn fill(&self) -> QueueFill {
        QueueFill {
            train: self.train.clone(),
            len: self.len.get(),
            capacity: self.capacity,
            peak: self.peak.get(),
            total: self.total.get(),
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len.get() >= self.capacity
    }
}

/// The queue in front of a train that reads other trains: one per train,
/// however many outputs feed it (fan-in merges here).
pub(crate) struct Inlet<D> {
    queue: Rc<RefCell<VecDeque<D>>>,
    pub(crate) gauge: Rc<Gauge>,
}

impl<D> Clone for Inlet<D> {
    fn clone(&self) -> Self {
        Inlet {
            queue: self.queue.clone(),
            gauge: self.gauge.clone(),
        }
    }
}

impl<D> Inlet<D> {
    pub(crate) fn new(train: String, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Inlet {
            queue: Rc::new(RefCell::new(VecDeque::with_capacity(capacity.min(4096)))),
            gauge: Rc::new(Gauge {
                train,
                capacity,
                len: Cell::new(0),
                peak: Cell::new(0),
                total: Cell::new(0),
                full: Cell::new(false),
                upstream: RefCell::new(Vec::new()),
            }),
        }
    }

    /// `train` feeds this queue: it is resumed when the queue has room.
    pub(crate) fn fed_by(&self, train: u32) {
        let mut up = self.gauge.upstream.borrow_mut();
        if !up.contains(&train) {
            up.push(train)
        }
    }

    /// A datum went straight into the train, past the queue.
    #[inline]
    fn passed(&self) {
        self.gauge.total.set(self.gauge.total.get() + 1);
    }

    fn push(&self, datum: D) {
        self.queue.borrow_mut().push_back(datum);
        let g = &self.gauge;
        let len = g.len.get() + 1;
        g.len.set(len);
        g.total.set(g.total.get() + 1);
        if len > g.peak.get() {
            g.peak.set(len);
        }
        if len >= g.capacity {
            g.full.set(true);
        }
    }

    /// The next datum; once a full queue is down to half, the trains that
    /// feed it are told to resume.
    pub(crate) fn pop(&self, notices: &mut VecDeque<(u32, Notice)>) -> Option<D> {
        let datum = self.queue.borrow_mut().pop_front()?;
        let g = &self.gauge;
        let len = g.len.get() - 1;
        g.len.set(len);
        if g.full.get() && len <= g.capacity / 2 {
            g.full.set(false);
            for &u in g.upstream.borrow().iter() {
                notices.push_back((u, Notice::Cast(Broadcast::Resume)));
            }
        }
        Some(datum)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.gauge.len.get() == 0
    }
}

/// A train reading an output: its index, its input queue and its way in.
pub(crate) struct Reader<D> {
    pub(crate) train: u32,
    pub(crate) inlet: Inlet<D>,
    pub(crate) entry: Rc<RefCell<dyn Entry<D>>>,
}

impl<D> Reader<D> {
    /// Hands `datum` to the train: straight down it when nothing waits in
    /// its queue and it is free to take it (not congested, not running
    /// already), or into its queue, for the escapement to pump.
    #[inline]
    fn deliver(&self, datum: D, core: &mut Core) {
        let datum = match self.entry.try_borrow_mut() {
            Ok(mut entry) if self.inlet.is_empty() => match entry.offer(datum, core) {
                None => return self.inlet.passed(),
                Some(datum) => datum,
            },
            _ => datum,
        };
        self.inlet.push(datum);
        core.graph.queued = true;
    }
}

/// One output of a train and the trains that read it.
pub(crate) struct Outlet<D> {
    /// Empty for the train's main output.
    pub(crate) name: String,
    pub(crate) readers: Vec<Reader<D>>,
    /// One train reads it, and nothing else: a datum sent here has one
    /// copy, in that train, whose broadcasts are simply passed up (no
    /// ledger needed).
    pub(crate) exclusive: bool,
}

impl<D> Outlet<D> {
    pub(crate) fn new(name: String) -> Self {
        Outlet {
            name,
            readers: Vec::new(),
            exclusive: false,
        }
    }

    /// Hands `datum` to every reader (a copy each but the last); false if
    /// nobody reads this output.
    #[inline]
    pub(crate) fn send(&self, datum: D, clone: Option<fn(&D) -> D>, core: &mut Core) -> bool {
        let Some((last, rest)) = self.readers.split_last() else {
            return false;
        };
        if let Some(clone) = clone {
            for r in rest {
                r.deliver(clone(&datum), core);
            }
        }
        last.deliver(datum, core);
        true
    }

    pub(crate) fn is_full(&self) -> bool {
        self.readers.iter().any(|r| r.inlet.gauge.is_full())
    }
}

/// What a copy owes when it is done: `event_done(id)` in `train`, the
/// train that sent it through the junction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Settle {
    train: u32,
    id: EventId,
}

/// The escapement's view of the junctions, kept in the core.
#[derive(Default)]
pub(crate) struct Graph {
    /// Some junction exists: broadcasts are followed.
    pub(crate) active: bool,
    /// Copies in flight below the junctions, keyed by (reader, id).
    ledger: Ledger<Settle, (u32, EventId)>,
    /// Data wait in some inlet: the escapement pumps them.
    pub(crate) queued: bool,
    /// Per train, whether it has an inlet.
    pub(crate) fed: Vec<bool>,
    /// Per train, the train it reads if it reads one exclusive output and
    /// nothing else: its `event_done` and `event_rename` are passed there
    /// as they are.
    pub(crate) forward: Vec<Option<u32>>,
    pub(crate) gauges: Vec<Rc<Gauge>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("active", &self.active)
            .field("in_flight", &self.ledger.len())
            .finish_non_exhaustive()
    }
}

impl Graph {
    /// Datum `id` left train `from` for `readers`: one copy each, all
    /// owing its `event_done` in `from`.
    pub(crate) fn sent(&mut self, from: u32, id: EventId, readers: &[Reader<impl Sized>]) {
        let t = self.ledger.open(Settle { train: from, id });
        for r in readers {
            let key = (r.train, id);
            // A second copy of the same id in one train (two paths into
            // it): both copies now owe both settlements, which is late,
            // never early.
            if self.ledger.contains(key) {
                self.ledger.split(key, 2);
            }
            self.ledger.attach(key, t);
        }
        let owed = self.ledger.release(t);
        debug_assert!(owed.is_none());
    }

    /// Follows a broadcast in `train` below the junctions: a copy done
    /// there may settle the datum upstream; a rename carries the copy on.
    pub(crate) fn follow(&mut self, train: u32, cast: Broadcast, notices: &mut VecDeque<(u32, Notice)>) {
        if let (Some(&Some(up)), Broadcast::EventDone(_) | Broadcast::EventRename(..)) =
            (self.forward.get(train as usize), cast)
        {
            return notices.push_back((up, Notice::Cast(cast)));
        }
        match cast {
            Broadcast::EventDone(id) => {
                self.ledger.done((train, id), |s| {
                    notices.push_back((s.train, Notice::Cast(Broadcast::EventDone(s.id))))
                });
            }
            Broadcast::EventRename(old, new) => {
                self.ledger.rename((train, old), (train, new));
            }
            Broadcast::Resume => {
                if self.fed.get(train as usize).copied().unwrap_or(false) {
                    self.queued = true;
                }
            }
        }
    }

    /// Copies in flight below the junctions.
    pub(crate) fn in_flight(&self) -> usize {
        self.ledger.len()
    }
}
