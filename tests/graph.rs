//! Trains as a graph: fan-out, fan-in, named outputs, acknowledgements
//! across junctions, bounded queues and the finish order.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{exclusive, number_ids as ids, test_escapement as esc, Collect, Journal, VecSupply};
use tourbillon::{from_iter, Cog, Context, Error, Escapement, EventId, Finish, Fired, Next, Output, Role, Train};

/// A supply of 1..=n (each number its own id) that records every
/// `event_done` it gets in the journal, and how often; an id renamed into
/// another is done when that one is.
struct Acked {
    next: u64,
    last: u64,
    journal: Journal,
    done: Rc<RefCell<BTreeMap<u64, u32>>>,
    waiting: bool,
    /// Renamed into the key: done when it is.
    merged: BTreeMap<u64, Vec<u64>>,
}

impl Acked {
    fn new(n: u64, journal: &Journal) -> (Self, Rc<RefCell<BTreeMap<u64, u32>>>) {
        let done = Rc::new(RefCell::new(BTreeMap::new()));
        let supply = Acked {
            next: 1,
            last: n,
            journal: journal.clone(),
            done: done.clone(),
            waiting: false,
            merged: BTreeMap::new(),
        };
        (supply, done)
    }
}

impl Cog<u64> for Acked {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        for _ in 0..16 {
            if ctx.congested() {
                self.waiting = true;
                return;
            }
            if self.next > self.last {
                return ctx.exhausted();
            }
            ctx.emit(self.next);
            self.next += 1;
        }
        ctx.enqueue(0).unwrap();
    }
    fn resume<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        if std::mem::take(&mut self.waiting) {
            ctx.enqueue(0).unwrap();
        }
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn event_done<N: Next<u64> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, u64, N>) {
        // What merged into `id` is done with it (as a durable supply's
        // ledger would say).
        for n in std::iter::once(id.0).chain(self.merged.remove(&id.0).unwrap_or_default()) {
            self.journal.push(format!("done {n}"));
            *self.done.borrow_mut().entry(n).or_default() += 1;
        }
    }
    fn event_rename<N: Next<u64> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, u64, N>) {
        self.merged.entry(new.0).or_default().push(old.0);
    }
}

/// A step that holds every datum back until a timer releases them all,
/// so that a branch is slower than the other.
struct Hold {
    held: Vec<u64>,
    every: Duration,
}

impl Cog<u64> for Hold {
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.every(self.every, 0).unwrap();
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, _: &mut Context<'_, u64, N>) {
        self.held.push(d)
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        for d in std::mem::take(&mut self.held) {
            ctx.emit(d)
        }
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) -> Finish {
        for d in std::mem::take(&mut self.held) {
            ctx.emit(d)
        }
        Finish::Done
    }
}

fn collect(name: &'static str, journal: &Journal) -> (Collect<u64>, Arc<Mutex<Vec<u64>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Collect {
        name,
        seen: seen.clone(),
        journal: journal.clone(),
    };
    (c, seen)
}

#[test]
fn a_datum_sent_to_two_trains_is_done_once_both_copies_are() {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, done) = Acked::new(200, &journal);
    let (fast, fast_seen) = collect("fast", &journal);
    let (slow, slow_seen) = collect("slow", &journal);
    let mut esc = esc();
    esc.add_train(Train::new("read").ids(ids()).cog(supply));
    esc.add_train(Train::new("fast").ids(ids()).input("read").cog(fast));
    esc.add_train(
        Train::new("slow")
            .ids(ids())
            .input("read")
            .cog(Hold {
                held: Vec::new(),
                every: Duration::from_millis(5),
            })
            .cog(slow),
    );
    assert_eq!(esc.run().unwrap(), tourbillon::Exit::Clean);
    let all: Vec<u64> = (1..=200).collect();
    assert_eq!(
        *fast_seen.lock().unwrap(),
        all,
        "every datum, in order, on the fast branch"
    );
    assert_eq!(*slow_seen.lock().unwrap(), all, "and on the slow one");
    let done = done.borrow();
    assert_eq!(done.len(), 200, "every datum is reported done upstream");
    assert!(done.values().all(|&n| n == 1), "exactly once each: {done:?}");
    for n in 1..=200 {
        let at = journal.position(&format!("done {n}"));
        assert!(
            at > journal.position(&format!("slow:data {n}")),
            "{n} done before the slow branch had it"
        );
        assert!(
            at > journal.position(&format!("fast:data {n}")),
            "{n} done before the fast branch had it"
        );
    }
}

/// Merges each pair of data into one (the second renamed into the first).
struct Pairs(Option<u64>);

impl Cog<u64> for Pairs {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        match self.0.take() {
            None => self.0 = Some(d),
            Some(first) => {
                ctx.event_rename(EventId(d), EventId(first));
                ctx.emit(first)
            }
        }
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) -> Finish {
        if let Some(d) = self.0.take() {
            ctx.emit(d)
        }
        Finish::Done
    }
}

/// Merges pairs below a junction: read by `pairs` alone (its broadcasts
/// passed up as they are) or by `pairs` and `other` (the ledger counts).
fn merge_below_a_junction(fan_out: bool) {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, done) = Acked::new(101, &journal);
    let (sink, seen) = collect("sink", &journal);
    let (other, _) = collect("other", &journal);
    let mut esc = esc();
    esc.add_train(Train::new("read").ids(ids()).cog(supply));
    esc.add_train(Train::new("pairs").ids(ids()).input("read").cog(Pairs(None)).cog(sink));
    if fan_out {
        esc.add_train(Train::new("other").ids(ids()).input("read").cog(other));
    }
    esc.run().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 51, "50 pairs and the odd one out");
    let done = done.borrow();
    assert_eq!(done.len(), 101, "both data of a merged pair are done: {done:?}");
    assert!(done.values().all(|&n| n == 1));
    for n in (2..=100).step_by(2) {
        // `n` went on as `n - 1`: it is done once that reached the sink.
        assert!(journal.position(&format!("done {n}")) > journal.position(&format!("sink:data {}", n - 1)));
    }
    assert_eq!(esc.core().in_flight(), 0);
}

#[test]
fn a_merge_below_a_junction_settles_both_merged_data() {
    merge_below_a_junction(false);
    merge_below_a_junction(true);
}

/// Sends odd numbers to its output `odd`, even ones on down the train.
struct Odd {
    name: &'static str,
    out: Option<Output>,
}

impl Cog<u64> for Odd {
    fn outputs(&self) -> Vec<String> {
        vec![self.name.to_owned()]
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        self.out = ctx.output(self.name);
        assert!(self.out.is_some(), "a declared output is there");
        assert!(ctx.output("nope").is_none(), "an undeclared one is not");
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        match self.out {
            Some(out) if d % 2 == 1 => ctx.emit_to(out, d),
            _ => ctx.emit(d),
        }
    }
}

#[test]
fn a_named_output_feeds_its_readers_and_the_rest_goes_on() {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, done) = Acked::new(100, &journal);
    let (odds, odd_seen) = collect("odds", &journal);
    let (evens, even_seen) = collect("evens", &journal);
    let mut esc = esc();
    esc.add_train(
        Train::new("nums")
            .ids(ids())
            .cog(supply)
            .cog(Odd { name: "odd", out: None }),
    );
    esc.add_train(Train::new("odds").ids(ids()).input("nums.odd").cog(odds));
    esc.add_train(Train::new("evens").ids(ids()).input("nums").cog(evens));
    esc.run().unwrap();
    assert_eq!(*odd_seen.lock().unwrap(), (1..=100).step_by(2).collect::<Vec<_>>());
    assert_eq!(*even_seen.lock().unwrap(), (2..=100).step_by(2).collect::<Vec<_>>());
    assert_eq!(done.borrow().len(), 100);
}

#[test]
fn a_named_output_nobody_reads_is_done() {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, done) = Acked::new(10, &journal);
    let (evens, even_seen) = collect("evens", &journal);
    let mut esc = esc();
    esc.add_train(
        Train::new("nums")
            .ids(ids())
            .cog(supply)
            .cog(Odd { name: "odd", out: None })
            .cog(evens),
    );
    esc.run().unwrap();
    assert_eq!(*even_seen.lock().unwrap(), vec![2, 4, 6, 8, 10]);
    assert_eq!(done.borrow().len(), 10, "the odd ones are done where they left");
}

#[test]
fn one_train_reading_two_merges_them_and_settles_each() {
    let _g = exclusive();
    let journal = Journal::default();
    let (low, low_done) = Acked::new(50, &journal);
    let (mut high, high_done) = Acked::new(150, &journal);
    high.next = 101;
    let (sink, seen) = collect("sink", &journal);
    let mut esc = esc();
    esc.add_train(Train::new("low").ids(ids()).cog(low));
    esc.add_train(Train::new("high").ids(ids()).cog(high));
    esc.add_train(Train::new("both").ids(ids()).input("low").input("high").cog(sink));
    esc.run().unwrap();
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    let want: Vec<u64> = (1..=50).chain(101..=150).collect();
    assert_eq!(got, want);
    assert_eq!(
        low_done.borrow().keys().copied().collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>()
    );
    assert_eq!(
        high_done.borrow().keys().copied().collect::<Vec<_>>(),
        (101..=150).collect::<Vec<_>>()
    );
}

/// A step that is congested until a timer lets it go.
struct Stall {
    stalled: Rc<Cell<bool>>,
    seen_while_stalled: Rc<Cell<usize>>,
}

impl Cog<u64> for Stall {
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.after(Duration::from_millis(100), 0).unwrap();
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        if self.stalled.get() {
            self.seen_while_stalled.set(self.seen_while_stalled.get() + 1);
        }
        ctx.emit(d)
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        self.stalled.set(false);
        ctx.resume_upstream();
    }
    fn congested(&self) -> bool {
        self.stalled.get()
    }
}

#[test]
fn a_stalled_branch_slows_the_supply_within_the_queue_bound() {
    let _g = exclusive();
    let stalled = Rc::new(Cell::new(true));
    let seen_while_stalled = Rc::new(Cell::new(0));
    let fast_count = Rc::new(Cell::new(0usize));
    let at_release = Rc::new(Cell::new(usize::MAX));
    let peak = Rc::new(Cell::new(0usize));
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .queue_capacity(8)
        .build()
        .unwrap();
    let (f, s, a) = (fast_count.clone(), stalled.clone(), at_release.clone());
    esc.add_train(Train::new("numbers").cog(from_iter(1..=2000u64)));
    esc.add_train(Train::<u64>::new("fast").input("numbers").map(move |n| {
        f.set(f.get() + 1);
        n
    }));
    let slow = Rc::new(Cell::new(0usize));
    let sl = slow.clone();
    esc.add_train(
        Train::<u64>::new("slow")
            .input("numbers")
            .cog(Stall {
                stalled: stalled.clone(),
                seen_while_stalled: seen_while_stalled.clone(),
            })
            .map(move |n| {
                if !s.get() && a.get() == usize::MAX {
                    a.set(n as usize);
                }
                sl.set(sl.get() + 1);
                n
            }),
    );
    let p = peak.clone();
    esc.core()
        .every(Duration::from_millis(2), move |core, _| {
            for q in core.queues() {
                p.set(p.get().max(q.len));
            }
        })
        .unwrap();
    esc.run().unwrap();
    assert_eq!(seen_while_stalled.get(), 0, "nothing got past the stall");
    assert_eq!(slow.get(), 2000, "the slow branch got every datum");
    assert_eq!(fast_count.get(), 2000, "so did the fast one");
    assert!(peak.get() <= 8, "a queue stayed within its bound: peak {}", peak.get());
    let queues = esc.core().queues();
    assert_eq!(queues.len(), 2, "one input queue per reading train: {queues:?}");
    let slow_q = queues.iter().find(|q| q.train == "slow").unwrap();
    assert_eq!((slow_q.capacity, slow_q.total, slow_q.len), (8, 2000, 0));
    assert!(
        slow_q.peak <= 8 && slow_q.peak >= 4,
        "it filled while stalled: {slow_q:?}"
    );
}

/// A pass-through step that journals its finish, and takes three ticks
/// of its timer to get through it.
struct Mark {
    name: &'static str,
    journal: Journal,
    ticks: Option<u32>,
}

impl Cog<u64> for Mark {
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.every(Duration::from_millis(10), 0).unwrap();
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, _: &mut Context<'_, u64, N>) -> Finish {
        self.journal.push(format!("{}:finish", self.name));
        self.ticks = Some(3);
        Finish::Pending
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        match self.ticks {
            Some(0) | None => {}
            Some(1) => {
                self.ticks = Some(0);
                self.journal.push(format!("{}:finished", self.name));
                ctx.finished();
            }
            Some(n) => self.ticks = Some(n - 1),
        }
    }
}

#[test]
fn trains_finish_upstream_first_across_four_trains() {
    let _g = exclusive();
    let journal = Journal::default();
    let mut supply = VecSupply::new((1..=300u64).collect(), 7);
    supply.journal = Some(journal.clone());
    let (c, c_seen) = collect("c", &journal);
    let (d, d_seen) = collect("d", &journal);
    let mut esc = esc();
    // Placed out of order on purpose: the order comes from the inputs.
    esc.add_train(Train::new("c").input("b").cog(c));
    esc.add_train(Train::new("d").input("a").cog(d));
    esc.add_train(Train::new("b").input("a").cog(Mark {
        name: "b",
        journal: journal.clone(),
        ticks: None,
    }));
    esc.add_train(Train::new("a").cog(supply));
    assert_eq!(esc.run().unwrap(), tourbillon::Exit::Clean);
    assert_eq!(c_seen.lock().unwrap().len(), 300);
    assert_eq!(d_seen.lock().unwrap().len(), 300);
    let at = |l: &str| journal.position(l);
    assert!(at("supply:finish") < at("b:finish"));
    assert!(at("supply:finish") < at("d:finish"));
    assert!(at("b:finished") < at("c:finish"), "c waits for b's pending finish");
    assert!(
        at("c:data 300") < at("c:finish"),
        "everything reached c before it flushed"
    );
    assert!(at("d:data 300") < at("d:finish"));
    let first_done = at("supply:done").min(at("c:done")).min(at("d:done"));
    assert!(
        first_done > at("c:finish") && first_done > at("d:finish"),
        "done comes after every finish"
    );
}

fn graph_error(build: impl FnOnce(&mut Escapement)) -> String {
    let _g = exclusive();
    let mut esc = esc();
    build(&mut esc);
    match esc.run() {
        Err(Error::Graph(m)) => m,
        other => panic!("expected a graph error, got {other:?}"),
    }
}

#[test]
fn graph_mistakes_are_named() {
    let m = graph_error(|esc| {
        esc.add_train(Train::new("a").cog(from_iter(0..1u64)));
        esc.add_train(Train::<u64>::new("b").input("nope"));
    });
    assert_eq!(m, "train `b`: input `nope`: no train is named `nope` (trains: a, b)");
    let m = graph_error(|esc| {
        esc.add_train(Train::new("a").cog(from_iter(0..1u64)));
        esc.add_train(Train::<u64>::new("b").input("a.errors"));
    });
    assert_eq!(
        m,
        "train `b`: input `a.errors`: train `a` has no named output (read it as `a`)"
    );
    let m = graph_error(|esc| {
        esc.add_train(
            Train::new("a")
                .cog(from_iter(0..1u64))
                .cog(Odd { name: "odd", out: None }),
        );
        esc.add_train(Train::<u64>::new("b").input("a.even"));
    });
    assert_eq!(
        m,
        "train `b`: input `a.even`: train `a` has no output `even` (its outputs: odd)"
    );
    let m = graph_error(|esc| {
        esc.add_train(Train::new("src").cog(from_iter(0..1u64)));
        esc.add_train(Train::<u64>::new("x").input("src").input("z"));
        esc.add_train(Train::<u64>::new("y").input("x"));
        esc.add_train(Train::<u64>::new("z").input("y"));
    });
    assert_eq!(m, "trains read each other in a cycle: x -> y -> z -> x");
    let m = graph_error(|esc| {
        esc.add_train(Train::new("a").cog(from_iter(0..1u64)));
        esc.add_train(Train::<String>::new("b").input("a"));
    });
    assert_eq!(m, "train `b` reads train `a`, whose data are of another type");
}

#[test]
fn a_train_reading_another_lists_its_inputs() {
    let t = Train::<u64>::new("b").input("a").input("c.errors").filter(|_| true);
    assert_eq!(t.inputs(), ["a", "c.errors"]);
    assert_eq!(t.to_string(), "train b:\n  reads a, c.errors\n   1. step    filter\n");
}
