//! Steady-state dispatch allocates nothing per event: a supply and a train
//! of five closures push a million events, and the allocation count over the
//! run stays bounded by a constant, not by the number of events. The same
//! holds for the train cut in two at a junction, with ids (acknowledged
//! across it) or without.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tourbillon::{Cog, Context, Escapement, EventId, Fired, IdGetter, Next, Role, Train};

/// Counts every allocation and reallocation made by this test binary.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: delegates to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One escapement per process, and one count of allocations at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Emits `0..n` in batches of 256 on successive turns, then is exhausted.
struct Numbers {
    next: u64,
    n: u64,
}

impl Cog<u64> for Numbers {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        let end = (self.next + 256).min(self.n);
        while self.next < end {
            ctx.emit(self.next);
            self.next += 1;
        }
        if self.next == self.n {
            ctx.exhausted();
        } else {
            ctx.enqueue(0).unwrap();
        }
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
}

/// Runs `n` events through the train and returns (allocations, sum seen).
fn run(n: u64) -> (u64, u64) {
    let sum = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&sum);
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    esc.add_train(
        Train::new("five")
            .cog(Numbers { next: 0, n })
            .map(|x| x.wrapping_mul(3))
            .filter(|x| x % 2 == 0)
            .map(|x| x / 2)
            .flat_map(|x, emit| {
                emit(x);
                emit(x + 1)
            })
            .map(move |x| {
                s.fetch_add(x, Ordering::Relaxed);
                x
            }),
    );
    let before = ALLOCS.load(Ordering::Relaxed);
    esc.run().unwrap();
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    drop(esc);
    (allocs, sum.load(Ordering::Relaxed))
}

fn expected_sum(n: u64) -> u64 {
    (0..n)
        .map(|x| x * 3)
        .filter(|x| x % 2 == 0)
        .map(|x| x / 2)
        .map(|x| 2 * x + 1)
        .sum()
}

#[test]
fn dispatch_allocations_do_not_grow_with_the_number_of_events() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (small_allocs, small_sum) = run(10_000);
    let (big_allocs, big_sum) = run(1_000_000);
    eprintln!("allocations: {small_allocs} for 10K events, {big_allocs} for 1M");
    assert_eq!(small_sum, expected_sum(10_000), "every event went through the train");
    assert_eq!(big_sum, expected_sum(1_000_000), "every event went through the train");
    // A hundred times the events may cost a few more allocations (a buffer
    // growing once more), never one per event or per batch.
    assert!(
        big_allocs <= small_allocs + 64,
        "1M events made {big_allocs} allocations, 10K made {small_allocs}"
    );
    assert!(big_allocs < 1_000, "1M events made {big_allocs} allocations");
}

/// The same closures in two trains, the second reading the first; with
/// `ids`, a third reads it too and every datum crossing the junction is
/// acknowledged across it through the ledger.
fn run_graph(n: u64, ids: bool) -> (u64, u64) {
    let sum = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&sum);
    let mut esc = Escapement::builder().graceful_signals(false).build().unwrap();
    let mut head = Train::new("head")
        .cog(Numbers { next: 0, n })
        .map(|x| x.wrapping_mul(3))
        .filter(|x| x % 2 == 0)
        .map(|x| x / 2);
    let mut rest = Train::new("rest")
        .input("head")
        .flat_map(|x, emit| {
            emit(x);
            emit(x + 1)
        })
        .map(move |x| {
            s.fetch_add(x, Ordering::Relaxed);
            x
        });
    if ids {
        head = head.ids(IdGetter::new(|x: &u64| Some(EventId(*x))));
        rest = rest.ids(IdGetter::new(|x: &u64| Some(EventId(*x))));
        // A second reader: every datum crossing is counted in the ledger.
        esc.add_train(
            Train::new("spare")
                .ids(IdGetter::new(|x: &u64| Some(EventId(*x))))
                .input("head")
                .filter(|x| x % 3 == 0),
        );
    }
    esc.add_train(head);
    esc.add_train(rest);
    let before = ALLOCS.load(Ordering::Relaxed);
    esc.run().unwrap();
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    assert_eq!(esc.core().in_flight(), 0, "every copy was settled");
    drop(esc);
    (allocs, sum.load(Ordering::Relaxed))
}

#[test]
fn a_junction_allocates_nothing_per_event_either() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for ids in [false, true] {
        let (small_allocs, small_sum) = run_graph(10_000, ids);
        let (big_allocs, big_sum) = run_graph(1_000_000, ids);
        eprintln!("junction (ids: {ids}): {small_allocs} allocations for 10K events, {big_allocs} for 1M");
        assert_eq!(small_sum, expected_sum(10_000));
        assert_eq!(big_sum, expected_sum(1_000_000));
        assert!(
            big_allocs <= small_allocs + 64,
            "ids {ids}: 1M events made {big_allocs} allocations, 10K made {small_allocs}"
        );
    }
}
