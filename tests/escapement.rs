//! The escapement's sources and the finish/done protocol, on real fds,
//! real inotify, real threads.

mod common;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{exclusive, Collect, Journal, VecSupply};
use tourbillon::{
    named, Cog, Context, Error, Escapement, EventId, EventMask, Exit, Finish, Fired, IdGetter, Interest, Next, Phase,
    Role, Train, WatchMask,
};

fn quiet() -> Escapement {
    Escapement::builder().graceful_signals(false).build().unwrap()
}

/// Stops a test that would otherwise hang, and says so.
fn watchdog(esc: &mut Escapement, secs: u64) {
    esc.core()
        .after(Duration::from_secs(secs), |core| {
            eprintln!("watchdog fired");
            core.finish()
        })
        .unwrap();
}

#[test]
fn a_second_escapement_in_one_process_is_an_error() {
    let _g = exclusive();
    let first = quiet();
    let err = Escapement::new().unwrap_err();
    assert!(matches!(err, Error::AlreadyExists), "{err}");
    assert!(err.to_string().contains("already exists in this process"));
    drop(first);
    quiet();
}

#[test]
fn immediate_events_run_in_order_and_dequeued_ones_do_not_run() {
    let _g = exclusive();
    let mut esc = quiet();
    let order = Rc::new(RefCell::new(Vec::new()));
    let mut ids = Vec::new();
    for i in 0..10 {
        let o = Rc::clone(&order);
        ids.push(esc.core().enqueue(move |_| o.borrow_mut().push(i)).unwrap());
    }
    assert!(esc.core().dequeue(ids[3]));
    assert!(esc.core().dequeue(ids[7]));
    assert!(!esc.core().dequeue(ids[7]), "a second dequeue finds nothing");
    let o = Rc::clone(&order);
    esc.core()
        .enqueue(move |core| {
            // Queued during a turn: runs on the next one, after everything before it.
            let o2 = Rc::clone(&o);
            core.enqueue(move |core| {
                o2.borrow_mut().push(100);
                core.finish();
            })
            .unwrap();
            o.borrow_mut().push(99);
        })
        .unwrap();
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(*order.borrow(), vec![0, 1, 2, 4, 5, 6, 8, 9, 99, 100]);
}

/// Reads `fd` to `WouldBlock` (or at most `per_turn` bytes, then re-queues).
struct Reader {
    stream: UnixStream,
    per_turn: usize,
    total: usize,
    expect: usize,
    turns: usize,
    result: Arc<AtomicUsize>,
}

impl Cog<u8> for Reader {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u8> + ?Sized>(&mut self, ctx: &mut Context<'_, u8, N>) {
        ctx.register(&self.stream, Interest::READABLE, 1).unwrap();
    }
    fn fire<N: Next<u8> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u8, N>) {
        self.turns += 1;
        let mut buf = [0u8; 4096];
        let mut this_turn = 0;
        loop {
            if this_turn >= self.per_turn {
                // Fairness: stop early, and come back, since no new edge will come.
                ctx.enqueue(2).unwrap();
                return;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    self.total += n;
                    this_turn += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        if self.total >= self.expect {
            self.result.store(self.total, Ordering::SeqCst);
            ctx.exhausted();
        }
    }
    fn process<N: Next<u8> + ?Sized>(&mut self, d: u8, ctx: &mut Context<'_, u8, N>) {
        ctx.emit(d)
    }
}

fn read_burst(per_turn: usize) -> (usize, usize) {
    let _g = exclusive();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    const TOTAL: usize = 4 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..TOTAL / chunk.len() {
            b.write_all(&chunk).unwrap();
        }
        b
    });
    let result = Arc::new(AtomicUsize::new(0));
    let mut esc = quiet();
    watchdog(&mut esc, 20);
    esc.add_train(Train::new("read").cog(Reader {
        stream: a,
        per_turn,
        total: 0,
        expect: TOTAL,
        turns: 0,
        result: Arc::clone(&result),
    }));
    esc.run().unwrap();
    drop(writer.join().unwrap());
    (result.load(Ordering::SeqCst), TOTAL)
}

#[test]
fn fd_readiness_delivers_a_burst_larger_than_one_read() {
    let (got, want) = read_burst(usize::MAX);
    assert_eq!(got, want);
}

#[test]
fn a_reader_that_stops_early_and_requeues_gets_everything() {
    let (got, want) = read_burst(16 * 1024);
    assert_eq!(got, want);
}

#[test]
fn a_stale_readiness_event_never_reaches_a_reused_slot() {
    let _g = exclusive();
    let mut esc = quiet();
    let (p1, mut w1) = UnixStream::pair().unwrap();
    let (p2, mut w2) = UnixStream::pair().unwrap();
    let (p3, _w3) = UnixStream::pair().unwrap();
    w1.write_all(b"x").unwrap();
    w2.write_all(b"x").unwrap();
    let fired = Rc::new(RefCell::new(Vec::<&str>::new()));
    let ids = Rc::new(RefCell::new(Vec::new()));
    let p3 = Rc::new(p3);
    for (name, fd) in [("p1", &p1), ("p2", &p2)] {
        let (fired, all, p3) = (Rc::clone(&fired), Rc::clone(&ids), Rc::clone(&p3));
        let id = esc
            .core()
            .register(fd, Interest::READABLE, move |core, me, _| {
                fired.borrow_mut().push(name);
                // Both fds are ready in the same poll. Whichever runs first
                // unregisters the other and binds a quiet fd, which takes the
                // freed slot: the other's pending event must not reach it.
                let other = *all.borrow().iter().find(|i| **i != me).unwrap();
                if core.unregister(other) {
                    let f = Rc::clone(&fired);
                    core.register(&*p3, Interest::READABLE, move |_, _, _| f.borrow_mut().push("p3"))
                        .unwrap();
                }
                core.finish();
            })
            .unwrap();
        ids.borrow_mut().push(id);
    }
    esc.run().unwrap();
    assert_eq!(fired.borrow().len(), 1, "{:?}", fired.borrow());
}

#[test]
fn inotify_reports_a_file_created_in_a_watched_directory() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let mut esc = quiet();
    assert!(esc.inotify(), "inotify should be usable on this machine");
    watchdog(&mut esc, 10);
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = Rc::clone(&seen);
    esc.core()
        .watch(
            dir.path(),
            WatchMask::CREATE | WatchMask::CLOSE_WRITE,
            move |core, _, ev| {
                s.borrow_mut().push((ev.mask, ev.name.clone(), ev.polled));
                if ev.mask.contains(EventMask::CLOSE_WRITE) {
                    core.finish();
                }
            },
        )
        .unwrap();
    let path = dir.path().join("new.log");
    esc.core()
        .after(Duration::from_millis(20), move |_| {
            std::fs::write(path, b"hello\n").unwrap()
        })
        .unwrap();
    esc.run().unwrap();
    let seen = seen.borrow();
    assert_eq!(seen[0].0, EventMask::CREATE);
    assert_eq!(seen[0].1.as_deref(), Some(std::ffi::OsStr::new("new.log")));
    assert!(!seen[0].2);
    assert!(seen.iter().any(|e| e.0.contains(EventMask::CLOSE_WRITE)));
}

#[test]
fn without_inotify_watched_paths_are_polled() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.log");
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .inotify(false)
        .build()
        .unwrap();
    assert!(!esc.inotify());
    watchdog(&mut esc, 10);
    assert!(matches!(
        esc.core().watch(&path, WatchMask::MODIFY, |_, _, _| {}),
        Err(Error::Watch { .. })
    ));
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = Rc::clone(&seen);
    let p = path.clone();
    esc.core()
        .watch_or_poll(
            &path,
            WatchMask::MODIFY | WatchMask::CREATE,
            Duration::from_millis(10),
            move |core, _, ev| {
                assert!(ev.polled);
                s.borrow_mut().push(ev.mask);
                if ev.mask == EventMask::CREATE {
                    let p = p.clone();
                    core.after(Duration::from_millis(30), move |_| {
                        std::fs::OpenOptions::new()
                            .append(true)
                            .open(p)
                            .unwrap()
                            .write_all(b"more\n")
                            .unwrap()
                    })
                    .unwrap();
                } else {
                    core.finish();
                }
            },
        )
        .unwrap();
    esc.core()
        .after(Duration::from_millis(30), move |_| {
            std::fs::write(path, b"first\n").unwrap()
        })
        .unwrap();
    esc.run().unwrap();
    assert_eq!(*seen.borrow(), vec![EventMask::CREATE, EventMask::MODIFY]);
}

#[test]
fn timers_fire_in_deadline_order_and_cancelled_ones_never_fire() {
    let _g = exclusive();
    let mut esc = quiet();
    let order = Rc::new(RefCell::new(Vec::new()));
    for ms in [30u64, 10, 20] {
        let o = Rc::clone(&order);
        esc.core()
            .after(Duration::from_millis(ms), move |_| o.borrow_mut().push(ms))
            .unwrap();
    }
    let o = Rc::clone(&order);
    let cancelled = esc
        .core()
        .after(Duration::from_millis(15), move |_| o.borrow_mut().push(15))
        .unwrap();
    assert!(esc.core().cancel(cancelled));
    assert!(!esc.core().cancel(cancelled));
    let o = Rc::clone(&order);
    let at = Instant::now() + Duration::from_millis(40);
    esc.core().at(at, move |_| o.borrow_mut().push(40)).unwrap();
    let ticks = Rc::new(RefCell::new(0));
    let t = Rc::clone(&ticks);
    esc.core()
        .every(Duration::from_millis(5), move |core, me| {
            *t.borrow_mut() += 1;
            if *t.borrow() == 3 {
                core.cancel(me);
            }
        })
        .unwrap();
    esc.core()
        .after(Duration::from_millis(60), |core| core.finish())
        .unwrap();
    let start = Instant::now();
    esc.run().unwrap();
    assert_eq!(*order.borrow(), vec![10, 20, 30, 40]);
    assert_eq!(*ticks.borrow(), 3);
    assert!(start.elapsed() >= Duration::from_millis(60));
}

#[test]
fn timer_churn_of_100k_rearms_does_not_grow_memory() {
    let _g = exclusive();
    let mut esc = quiet();
    let far = Duration::from_secs(3600);
    let mut live = Vec::new();
    for _ in 0..100 {
        live.push(esc.core().after(far, |_| {}).unwrap());
    }
    let mut worst = 0;
    for i in 0..100_000usize {
        let slot = i % live.len();
        assert!(esc.core().cancel(live[slot]));
        live[slot] = esc
            .core()
            .after(far + Duration::from_millis(i as u64 % 1000), |_| {})
            .unwrap();
        let (n, heap) = esc.core().timer_counts();
        assert_eq!(n, 100);
        worst = worst.max(heap);
    }
    assert!(
        worst <= 64 + 2 * 100 + 1,
        "timer heap grew to {worst} entries for 100 live timers"
    );
}

#[test]
fn an_idle_escapement_blocks_until_its_next_timer() {
    let _g = exclusive();
    let mut esc = quiet();
    let ticks = Rc::new(RefCell::new(0));
    let t = Rc::clone(&ticks);
    esc.core()
        .every(Duration::from_millis(50), move |core, _| {
            *t.borrow_mut() += 1;
            if *t.borrow() == 10 {
                core.finish()
            }
        })
        .unwrap();
    esc.run().unwrap();
    // One poll per tick (plus start and finish), not a spin.
    assert!(esc.turns() <= 10 + 5, "{} polls for 10 ticks", esc.turns());
}

#[test]
fn the_remote_handle_runs_work_from_other_threads() {
    let _g = exclusive();
    let mut esc = quiet();
    watchdog(&mut esc, 10);
    let remote = esc.core().remote();
    let count = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let remote = remote.clone();
            let count = Arc::clone(&count);
            std::thread::spawn(move || {
                for _ in 0..2500 {
                    let count = Arc::clone(&count);
                    remote
                        .send(move |core| {
                            if count.fetch_add(1, Ordering::SeqCst) + 1 == 10_000 {
                                core.finish()
                            }
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    esc.run().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(count.load(Ordering::SeqCst), 10_000);
    drop(esc);
    assert!(matches!(remote.send(|_| {}), Err(Error::LoopGone)));
}

/// Holds every datum until `finish`, then flushes them down the train.
struct Holder {
    held: Vec<u64>,
    journal: Journal,
}

impl Cog<u64> for Holder {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, _: &mut Context<'_, u64, N>) {
        self.held.push(d)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) -> Finish {
        self.journal.push("holder:finish");
        for d in self.held.drain(..) {
            ctx.emit(d)
        }
        Finish::Done
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        self.journal.push("holder:done");
    }
}

/// Records `finish` and `done`, and tries to bind during finish.
struct Pass {
    journal: Journal,
}

impl Cog<u64> for Pass {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) -> Finish {
        self.journal.push("pass:finish");
        let refused = matches!(ctx.after(Duration::from_millis(1), 0), Err(Error::Finishing));
        self.journal.push(format!("pass:bind refused={refused}"));
        let refused = matches!(
            ctx.core().after(Duration::from_millis(1), |_| {}),
            Err(Error::Finishing)
        );
        self.journal.push(format!("pass:closure bind refused={refused}"));
        Finish::Done
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        self.journal.push("pass:done");
    }
}

#[test]
fn finish_goes_through_the_train_in_order_then_done() {
    let _g = exclusive();
    let journal = Journal::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = quiet();
    watchdog(&mut esc, 10);
    let mut supply = VecSupply::new((1..=6).collect(), 4);
    supply.journal = Some(journal.clone());
    esc.add_train(
        Train::new("four")
            .cog(supply)
            .cog(Holder {
                held: Vec::new(),
                journal: journal.clone(),
            })
            .cog(Pass {
                journal: journal.clone(),
            })
            .cog(Collect {
                name: "drain",
                seen: Arc::clone(&seen),
                journal: journal.clone(),
            }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(esc.core().phase(), Phase::Done);
    let lines = journal.lines();
    let expected = [
        "supply:finish",
        "holder:finish",
        "drain:data 1",
        "drain:data 6",
        "pass:finish",
        "pass:bind refused=true",
        "pass:closure bind refused=true",
        "drain:finish",
        "supply:done",
        "holder:done",
        "pass:done",
        "drain:done",
    ];
    let positions: Vec<usize> = expected.iter().map(|l| journal.position(l)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "out of order: {lines:#?}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 2, 3, 4, 5, 6],
        "held data flushed at finish"
    );
}

/// Answers `finish` with `Pending` and completes on its next timer tick (or never).
struct Slow {
    complete: bool,
    journal: Journal,
    ticks: usize,
}

impl Cog<u64> for Slow {
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        ctx.every(Duration::from_millis(10), 0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        self.ticks += 1;
        if self.complete && ctx.core().phase() == Phase::Finishing {
            self.journal.push("slow:finished");
            ctx.finished();
        }
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, _: &mut Context<'_, u64, N>) -> Finish {
        self.journal.push("slow:finish");
        Finish::Pending
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        self.journal.push("slow:done");
    }
}

#[test]
fn a_pending_cog_holds_the_rest_of_its_train_until_it_is_through() {
    let _g = exclusive();
    let journal = Journal::default();
    let mut esc = quiet();
    watchdog(&mut esc, 10);
    esc.add_train(
        Train::new("slow")
            .cog(VecSupply::new(vec![1u64, 2], 1))
            .cog(Slow {
                complete: true,
                journal: journal.clone(),
                ticks: 0,
            })
            .cog(Collect {
                name: "drain",
                seen: Arc::default(),
                journal: journal.clone(),
            }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert!(journal.position("slow:finish") < journal.position("slow:finished"));
    assert!(journal.position("slow:finished") < journal.position("drain:finish"));
    assert!(journal.position("drain:finish") < journal.position("slow:done"));
}

#[test]
fn the_finish_deadline_forces_done_and_names_the_late_cog() {
    let _g = exclusive();
    let journal = Journal::default();
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .finish_deadline(Duration::from_millis(100))
        .build()
        .unwrap();
    esc.add_train(Train::new("stuck").cog(VecSupply::new(vec![1u64], 1)).cog(named(
        "never-finishes",
        Slow {
            complete: false,
            journal: journal.clone(),
            ticks: 0,
        },
    )));
    let start = Instant::now();
    let exit = esc.run().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(100));
    match exit {
        Exit::Deadline(late) => assert_eq!(late, vec!["train stuck cog 2 (never-finishes)".to_string()]),
        other => panic!("expected a deadline exit, got {other:?}"),
    }
    assert!(journal.lines().contains(&"slow:done".to_string()));
}

/// Asks the escapement to finish when it sees `stop_at`.
struct StopAt(u64);

impl Cog<u64> for StopAt {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        if d == self.0 {
            ctx.finish_all()
        }
        ctx.emit(d)
    }
}

#[test]
fn a_cog_can_ask_the_escapement_to_finish() {
    let _g = exclusive();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut esc = quiet();
    esc.add_train(
        Train::new("stop")
            .cog(VecSupply::new((1..=1_000_000u64).collect(), 10))
            .cog(StopAt(25))
            .cog(Collect {
                name: "drain",
                seen: Arc::clone(&seen),
                journal: Journal::default(),
            }),
    );
    esc.run().unwrap();
    // The batch in progress completes; no further batch starts.
    assert_eq!(seen.lock().unwrap().len(), 30);
}

/// Fails when it sees `at`.
struct FailAt(u64);

impl Cog<u64> for FailAt {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        if d == self.0 {
            ctx.fail(format_args!("cannot go on after {d}"))
        }
        ctx.emit(d)
    }
}

#[test]
fn a_cog_that_fails_finishes_everything_and_the_run_says_why() {
    let _g = exclusive();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let journal = Journal::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("failing")
            .cog(VecSupply::new((1..=1_000_000u64).collect(), 10))
            .cog(named("fail-at-25", FailAt(25)))
            .cog(Collect {
                name: "drain",
                seen: Arc::clone(&seen),
                journal: journal.clone(),
            }),
    );
    let exit = esc.run().unwrap();
    assert_eq!(
        exit,
        Exit::Failed(vec!["train failing cog 2 (fail-at-25): cannot go on after 25".into()])
    );
    // Finished in order, as when a cog asks to finish: the batch in
    // progress completes, and every cog got `done`.
    assert_eq!(seen.lock().unwrap().len(), 30);
    assert!(
        journal.lines().contains(&"drain:done".to_string()),
        "{:?}",
        journal.lines()
    );
}

/// Records every `event_done` and `event_rename` it hears.
struct Ears {
    heard: Arc<Mutex<Vec<String>>>,
    renames: bool,
}

impl Cog<u64> for Ears {
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        if d == 4 && self.renames {
            ctx.event_rename(EventId(4), EventId(40));
        }
        ctx.emit(d)
    }
    fn event_done<N: Next<u64> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, u64, N>) {
        self.heard.lock().unwrap().push(format!("done {}", id.0));
    }
    fn event_rename<N: Next<u64> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, u64, N>) {
        self.heard.lock().unwrap().push(format!("rename {} {}", old.0, new.0));
    }
}

#[test]
fn broadcasts_reach_every_cog_including_the_supply_upstream() {
    let _g = exclusive();
    let first = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new(Vec::new()));
    let mut esc = quiet();
    esc.add_train(
        Train::new("ids")
            .ids(IdGetter::new(|n: &u64| Some(EventId(*n))))
            .cog(VecSupply::new((1..=5u64).collect(), 5))
            .cog(Ears {
                heard: Arc::clone(&first),
                renames: true,
            })
            .filter(|n| n % 2 == 0)
            .cog(Ears {
                heard: Arc::clone(&last),
                renames: false,
            }),
    );
    esc.run().unwrap();
    let mut heard = first.lock().unwrap().clone();
    let rename = heard.iter().position(|h| h == "rename 4 40").expect("rename heard");
    heard.remove(rename);
    heard.sort();
    // Odd ones dropped by the filter, even ones fell off the end: all done.
    assert_eq!(heard, vec!["done 1", "done 2", "done 3", "done 4", "done 5"]);
    assert_eq!(first.lock().unwrap().len(), last.lock().unwrap().len());
}

#[test]
fn a_train_built_at_run_time_behaves_like_a_static_one() {
    let _g = exclusive();
    let journal = Journal::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut train = Train::<u64, _>::dynamic("dyn");
    train.push(Box::new(VecSupply::new((1..=5u64).collect(), 2)));
    train.push(Box::new(Holder {
        held: Vec::new(),
        journal: journal.clone(),
    }));
    train.push(Box::new(|n: u64| (n != 3).then_some(n * 10)));
    train.push(Box::new(Collect {
        name: "drain",
        seen: Arc::clone(&seen),
        journal: journal.clone(),
    }));
    let listing = train.to_string();
    let mut esc = quiet();
    esc.add_train(train);
    esc.run().unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![10, 20, 40, 50]);
    assert!(journal.position("holder:finish") < journal.position("drain:finish"));
    assert!(listing.contains("2. step    Holder"), "{listing}");
}

#[test]
fn a_cog_remote_delivers_messages_from_a_worker_thread() {
    struct Asker {
        answers: Arc<Mutex<Vec<String>>>,
    }
    impl Cog<u64> for Asker {
        fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
            let remote = ctx.remote(7);
            std::thread::spawn(move || {
                for i in 0..3 {
                    remote.send(format!("answer {i}")).unwrap();
                }
            });
        }
        fn fire<N: Next<u64> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, u64, N>) {
            if let Fired::Message(msg) = fired {
                let text = *msg.downcast::<String>().unwrap();
                let mut answers = self.answers.lock().unwrap();
                answers.push(format!("{key}: {text}"));
                if answers.len() == 3 {
                    ctx.finish_all();
                }
            }
        }
        fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
            ctx.emit(d)
        }
    }
    let _g = exclusive();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut esc = quiet();
    watchdog(&mut esc, 10);
    esc.add_train(Train::new("ask").cog(Asker {
        answers: Arc::clone(&answers),
    }));
    esc.run().unwrap();
    assert_eq!(
        *answers.lock().unwrap(),
        vec!["7: answer 0", "7: answer 1", "7: answer 2"]
    );
}

#[test]
fn a_train_prints_as_a_readable_list() {
    let train = Train::<u64>::new("numbers")
        .cog(VecSupply::new(vec![], 1))
        .filter(|n| *n > 1)
        .cog(named("times-ten", |n: u64| Some(n * 10)))
        .cog(Collect {
            name: "drain",
            seen: Arc::default(),
            journal: Journal::default(),
        });
    let text = train.to_string();
    assert_eq!(
        text,
        "train numbers:\n   1. supply  VecSupply<u64>\n   2. step    filter\n   3. step    times-ten\n   4. drain   Collect<u64>\n"
    );
}
