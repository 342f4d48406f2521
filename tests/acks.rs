//! Acknowledgements in batches: the `event_done`s of a train that follow
//! one another reach each cog as one `events_done`, in order, and nothing
//! else queued between them moves; across junctions each copy settles its
//! datum as before. And the pool of byte buffers drains give back.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{exclusive, number_ids as ids, test_escapement as esc, Journal, VecSupply};
use tourbillon::{Cog, Context, EventId, Finish, Fired, Next, Role, Train};

fn list(ids: &[EventId]) -> String {
    ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(",")
}

/// A step that records the batches and renames it gets, in order.
struct Batches {
    name: &'static str,
    journal: Journal,
}

impl Cog<u64> for Batches {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn events_done<N: Next<u64> + ?Sized>(&mut self, ids: &[EventId], _: &mut Context<'_, u64, N>) {
        self.journal.push(format!("{} done [{}]", self.name, list(ids)));
    }
    fn event_rename<N: Next<u64> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, u64, N>) {
        self.journal.push(format!("{} rename {}->{}", self.name, old.0, new.0));
    }
    fn resume<N: Next<u64> + ?Sized>(&mut self, _: &mut Context<'_, u64, N>) {
        self.journal.push(format!("{} resume", self.name));
    }
}

/// A step that handles one done at a time: it gets the batch through the
/// default `events_done`.
struct OneByOne {
    journal: Journal,
}

impl Cog<u64> for OneByOne {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn event_done<N: Next<u64> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, u64, N>) {
        self.journal.push(format!("one done {}", id.0));
    }
    fn event_rename<N: Next<u64> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, u64, N>) {
        self.journal.push(format!("one rename {}->{}", old.0, new.0));
    }
}

/// A drain that holds 1..=6 and, when the last comes, reports them in one
/// callback: two dones, a rename, three dones, a resume, a done.
struct Reporter;

impl Cog<u64> for Reporter {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        if d < 6 {
            return;
        }
        ctx.event_done(EventId(1));
        ctx.event_done(EventId(2));
        ctx.event_rename(EventId(3), EventId(30));
        ctx.event_done(EventId(30));
        ctx.event_done(EventId(4));
        ctx.event_done(EventId(5));
        ctx.resume_upstream();
        ctx.event_done(EventId(6));
    }
}

#[test]
fn dones_in_a_row_come_as_one_batch_and_what_lies_between_them_stays_there() {
    let _g = exclusive();
    let journal = Journal::default();
    let mut e = esc();
    e.add_train(
        Train::new("t")
            .ids(ids())
            .cog(VecSupply::new((1..=6u64).collect(), 16))
            .cog(Batches {
                name: "static",
                journal: journal.clone(),
            })
            .cog(OneByOne {
                journal: journal.clone(),
            })
            .cog(Reporter),
    );
    e.run().unwrap();
    let want = [
        "static done [1,2]",
        "one done 1",
        "one done 2",
        "static rename 3->30",
        "one rename 3->30",
        "static done [30,4,5]",
        "one done 30",
        "one done 4",
        "one done 5",
        "static resume",
        "static done [6]",
        "one done 6",
    ];
    assert_eq!(journal.lines(), want);
    drop(e);

    // The same through a train built at run time (boxed cogs).
    let journal = Journal::default();
    let mut e = esc();
    let mut t = Train::dynamic("d").ids(ids());
    t.push(Box::new(VecSupply::new((1..=6u64).collect(), 16)));
    t.push(Box::new(Batches {
        name: "static",
        journal: journal.clone(),
    }));
    t.push(Box::new(OneByOne {
        journal: journal.clone(),
    }));
    t.push(Box::new(Reporter));
    e.add_train(t);
    e.run().unwrap();
    assert_eq!(journal.lines(), want);
}

/// A supply of 1..=n that counts the dones of each id, and journals them.
struct Counted {
    next: u64,
    last: u64,
    journal: Journal,
    done: Arc<Mutex<BTreeMap<u64, u32>>>,
    batches: Arc<Mutex<Vec<usize>>>,
}

impl Cog<u64> for Counted {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        for _ in 0..64 {
            if self.next > self.last {
                return ctx.exhausted();
            }
            ctx.emit(self.next);
            self.next += 1;
        }
        ctx.enqueue(0).unwrap();
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn events_done<N: Next<u64> + ?Sized>(&mut self, ids: &[EventId], _: &mut Context<'_, u64, N>) {
        self.batches.lock().unwrap().push(ids.len());
        for id in ids {
            self.journal.push(format!("src done {}", id.0));
            *self.done.lock().unwrap().entry(id.0).or_default() += 1;
        }
    }
}

/// A drain that holds what comes and reports it all done at once, every
/// `every` (and at finish): one batch of dones per flush.
struct Flush {
    name: &'static str,
    held: Vec<u64>,
    every: Duration,
    journal: Journal,
}

impl Flush {
    fn report<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        for d in std::mem::take(&mut self.held) {
            self.journal.push(format!("{} done {d}", self.name));
            ctx.event_done(EventId(d));
        }
    }
}

impl Cog<u64> for Flush {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.every(self.every, 0).unwrap();
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, _: &mut Context<'_, u64, N>) {
        self.held.push(d)
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        self.report(ctx)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) -> Finish {
        self.report(ctx);
        Finish::Done
    }
}

/// How often each id was done, and the size of each batch.
type Tally = (Arc<Mutex<BTreeMap<u64, u32>>>, Arc<Mutex<Vec<usize>>>);

fn counted(n: u64, journal: &Journal) -> (Counted, Tally) {
    let done = Arc::new(Mutex::new(BTreeMap::new()));
    let batches = Arc::new(Mutex::new(Vec::new()));
    let c = Counted {
        next: 1,
        last: n,
        journal: journal.clone(),
        done: done.clone(),
        batches: batches.clone(),
    };
    (c, (done, batches))
}

fn flush(name: &'static str, ms: u64, journal: &Journal) -> Flush {
    Flush {
        name,
        held: Vec::new(),
        every: Duration::from_millis(ms),
        journal: journal.clone(),
    }
}

#[test]
fn a_batch_split_across_two_trains_settles_each_datum_once_both_copies_are_done() {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, (done, batches)) = counted(500, &journal);
    let mut e = esc();
    e.add_train(Train::new("src").ids(ids()).cog(supply));
    e.add_train(
        Train::<u64>::new("fast")
            .input("src")
            .ids(ids())
            .cog(flush("fast", 1, &journal)),
    );
    e.add_train(
        Train::<u64>::new("slow")
            .input("src")
            .ids(ids())
            .cog(flush("slow", 7, &journal)),
    );
    e.run().unwrap();
    let done = done.lock().unwrap();
    assert_eq!(done.len(), 500, "every datum is done in its train");
    assert!(done.values().all(|&n| n == 1), "and once: {done:?}");
    for n in 1..=500 {
        let at = journal.position(&format!("src done {n}"));
        assert!(
            journal.position(&format!("fast done {n}")) < at,
            "{n}: done before the fast copy"
        );
        assert!(
            journal.position(&format!("slow done {n}")) < at,
            "{n}: done before the slow copy"
        );
    }
    let batches = batches.lock().unwrap();
    assert!(
        batches.iter().any(|&b| b > 1),
        "the junction's settlements came in batches too: {batches:?}"
    );
    assert_eq!(e.core().in_flight(), 0);
}

#[test]
fn a_batch_in_a_train_that_alone_reads_another_is_passed_up_whole() {
    let _g = exclusive();
    let journal = Journal::default();
    let (supply, (done, batches)) = counted(300, &journal);
    let mut e = esc();
    e.add_train(Train::new("src").ids(ids()).cog(supply));
    e.add_train(
        Train::<u64>::new("only")
            .input("src")
            .ids(ids())
            .cog(flush("only", 2, &journal)),
    );
    e.run().unwrap();
    let done = done.lock().unwrap();
    assert_eq!(done.len(), 300);
    assert!(done.values().all(|&n| n == 1), "once each: {done:?}");
    for n in 1..=300 {
        assert!(journal.position(&format!("only done {n}")) < journal.position(&format!("src done {n}")));
    }
    let batches = batches.lock().unwrap();
    assert!(batches.iter().any(|&b| b > 1), "forwarded as batches: {batches:?}");
}

/// A supply of byte buffers from the pool, each filled with its number:
/// it records each buffer's address.
struct Filler {
    next: u8,
    addrs: Arc<Mutex<Vec<usize>>>,
}

impl Cog<Vec<u8>> for Filler {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Vec<u8>> + ?Sized>(&mut self, ctx: &mut Context<'_, Vec<u8>, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Vec<u8>> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Vec<u8>, N>) {
        if self.next == 100 {
            return ctx.exhausted();
        }
        let mut buf = ctx.buffer();
        assert!(buf.is_empty(), "a buffer from the pool comes empty");
        buf.extend_from_slice(&[self.next; 40]);
        self.addrs.lock().unwrap().push(buf.as_ptr() as usize);
        self.next += 1;
        ctx.emit(buf);
        ctx.enqueue(0).unwrap();
    }
    fn process<N: Next<Vec<u8>> + ?Sized>(&mut self, d: Vec<u8>, ctx: &mut Context<'_, Vec<u8>, N>) {
        ctx.emit(d)
    }
}

/// A drain that checks each buffer's bytes and gives it back.
struct GiveBack {
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Cog<Vec<u8>> for GiveBack {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Vec<u8>> + ?Sized>(&mut self, d: Vec<u8>, ctx: &mut Context<'_, Vec<u8>, N>) {
        assert!(
            d.iter().all(|&b| b == d[0]) && d.len() == 40,
            "no bytes of an earlier datum left"
        );
        self.seen.lock().unwrap().push(d[0]);
        ctx.recycle(d);
    }
}

#[test]
fn a_buffer_a_drain_gives_back_is_the_next_one_a_supply_fills() {
    let _g = exclusive();
    let addrs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut e = esc();
    e.add_train(
        Train::new("bytes")
            .cog(Filler {
                next: 0,
                addrs: addrs.clone(),
            })
            .cog(GiveBack { seen: seen.clone() }),
    );
    e.run().unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<u8>>());
    let addrs = addrs.lock().unwrap();
    assert!(
        addrs.iter().skip(1).all(|&a| a == addrs[1]),
        "one buffer goes round and round: {addrs:?}"
    );
    let (held, bytes) = e.core().pooled_buffers();
    assert_eq!(held, 1, "the last one waits in the pool");
    assert!(bytes >= 40);
}

#[test]
fn the_pool_keeps_no_more_than_its_caps_however_much_is_given_back() {
    let _g = exclusive();
    let mut e = esc();
    let core = e.core();
    for _ in 0..tourbillon::pool::MAX_BUFFERS * 4 {
        core.recycle(Vec::with_capacity(tourbillon::pool::MAX_BUFFER_BYTES / 2));
    }
    core.recycle(Vec::with_capacity(tourbillon::pool::MAX_BUFFER_BYTES * 2));
    let (held, bytes) = core.pooled_buffers();
    assert!(held <= tourbillon::pool::MAX_BUFFERS, "{held} buffers");
    assert!(bytes <= tourbillon::pool::MAX_POOLED_BYTES, "{bytes} bytes");
    assert!(held > 0, "it keeps what fits");
}
