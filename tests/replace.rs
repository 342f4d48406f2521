//! Replacing trains while the loop runs (`Core::replace_trains`): the
//! retired trains finish and get `done` before what replaces them starts,
//! the others run on untouched, and a train is never cut off from the
//! trains it is connected to.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{exclusive, test_escapement as esc, Collect, Journal};
use tourbillon::{Cog, Context, Error, Finish, Fired, Next, Role, Train};

/// A supply of 1, 2, 3… one every 2 ms, that notes its finish and done.
struct Ticker {
    name: &'static str,
    next: u64,
    journal: Journal,
}

impl Cog<u64> for Ticker {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
        self.journal.push(format!("{}:start", self.name));
        ctx.every(Duration::from_millis(2), 0).unwrap();
    }
    fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, u64, N>) {
        self.next += 1;
        ctx.emit(self.next);
    }
    fn process<N: Next<u64> + ?Sized>(&mut self, d: u64, ctx: &mut Context<'_, u64, N>) {
        ctx.emit(d)
    }
    fn finish<N: Next<u64> + ?Sized>(&mut self, _: &mut Context<'_, u64, N>) -> Finish {
        self.journal.push(format!("{}:finish", self.name));
        Finish::Done
    }
    fn done(&mut self, _: &mut tourbillon::Core) {
        self.journal.push(format!("{}:done", self.name));
    }
}

fn ticker(name: &'static str, journal: &Journal) -> Ticker {
    Ticker {
        name,
        next: 0,
        journal: journal.clone(),
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
fn a_replaced_train_is_done_before_its_successor_starts_and_the_other_runs_on() {
    let _g = exclusive();
    let j = Journal::default();
    let mut esc = esc();
    let (keep_out, keep_seen) = collect("keep-out", &j);
    esc.add_train(Train::new("keep").cog(ticker("keep-in", &j)).cog(keep_out));
    let (old_out, old_seen) = collect("old-out", &j);
    esc.add_train(Train::new("old").cog(ticker("old-in", &j)).cog(old_out));
    let (new_out, new_seen) = collect("new-out", &j);
    let new_out = Arc::new(Mutex::new(Some(new_out)));
    let retired = Arc::new(Mutex::new(Vec::new()));
    let (jj, r) = (j.clone(), retired.clone());
    esc.core()
        .after(Duration::from_millis(60), move |core| {
            core.replace_trains(vec!["old".into()], move |esc, names| {
                jj.push("then");
                r.lock().unwrap().extend(names.iter().cloned());
                let out = new_out.lock().unwrap().take().unwrap();
                esc.add_train(Train::new("old").cog(ticker("new-in", &jj)).cog(out));
            })
            .unwrap();
        })
        .unwrap();
    esc.core()
        .after(Duration::from_millis(200), |core| core.finish())
        .unwrap();
    esc.run().unwrap();

    assert_eq!(*retired.lock().unwrap(), vec!["old".to_owned()]);
    let p = |l: &str| j.position(l);
    assert!(p("old-in:finish") < p("old-out:finish"), "a train finishes in order");
    assert!(p("old-out:finish") < p("old-in:done"));
    assert!(p("old-in:done") < p("then"), "done before the successor is placed");
    assert!(p("then") < p("new-in:start"));
    assert!(p("new-in:start") < p("new-in:finish"));
    // The other train ran on: it finished once, at the end, and its data
    // are every number in order.
    assert!(p("new-in:start") < p("keep-in:finish"));
    assert_eq!(j.lines().iter().filter(|l| *l == "keep-in:finish").count(), 1);
    let keep = keep_seen.lock().unwrap().clone();
    assert!(keep.len() > 50, "{} data in 200 ms", keep.len());
    assert_eq!(keep, (1..=keep.len() as u64).collect::<Vec<_>>());
    let (old, new) = (old_seen.lock().unwrap().clone(), new_seen.lock().unwrap().clone());
    assert!(
        !old.is_empty() && !new.is_empty(),
        "old {} new {}",
        old.len(),
        new.len()
    );
    assert_eq!(new[0], 1, "the successor starts afresh");
    // Nothing reached the old drain after its finish.
    let after: Vec<String> = j.lines()[p("old-out:finish")..]
        .iter()
        .filter(|l| l.starts_with("old-out:data"))
        .cloned()
        .collect();
    assert!(after.is_empty(), "{after:?}");
}

#[test]
fn trains_connected_to_a_replaced_one_are_replaced_with_it() {
    let _g = exclusive();
    let j = Journal::default();
    let mut esc = esc();
    esc.add_train(Train::new("a").cog(ticker("a-in", &j)));
    let (b_out, _) = collect("b-out", &j);
    esc.add_train(Train::<u64>::new("b").input("a").cog(b_out));
    let (c_out, c_seen) = collect("c-out", &j);
    esc.add_train(Train::new("c").cog(ticker("c-in", &j)).cog(c_out));
    let retired = Arc::new(Mutex::new(Vec::new()));
    let r = retired.clone();
    let jj = j.clone();
    esc.core()
        .after(Duration::from_millis(40), move |core| {
            core.replace_trains(vec!["b".into(), "no-such-train".into()], move |esc, names| {
                r.lock().unwrap().extend(names.iter().cloned());
                // Placed again, upstream first.
                esc.add_train(Train::new("a").cog(ticker("a2-in", &jj)));
                let (out, _) = collect("b2-out", &jj);
                esc.add_train(Train::<u64>::new("b").input("a").cog(out));
            })
            .unwrap();
        })
        .unwrap();
    esc.core()
        .after(Duration::from_millis(150), |core| core.finish())
        .unwrap();
    esc.run().unwrap();
    let mut names = retired.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, vec!["a".to_owned(), "b".to_owned()]);
    let p = |l: &str| j.position(l);
    assert!(
        p("a-in:finish") < p("b-out:finish"),
        "upstream first, as at the end of a run"
    );
    assert!(p("b-out:done") < p("a2-in:start"));
    assert!(
        j.lines().iter().any(|l| l.starts_with("b2-out:data")),
        "the new junction carries data"
    );
    assert_eq!(j.lines().iter().filter(|l| *l == "c-in:finish").count(), 1);
    let c = c_seen.lock().unwrap().clone();
    assert_eq!(
        c,
        (1..=c.len() as u64).collect::<Vec<_>>(),
        "the unconnected train ran on"
    );
}

#[test]
fn no_replacement_once_the_loop_finishes() {
    let _g = exclusive();
    let mut esc = esc();
    let j = Journal::default();
    esc.add_train(Train::new("t").cog(ticker("t-in", &j)));
    let answer = Arc::new(Mutex::new(None));
    let a = answer.clone();
    esc.core()
        .after(Duration::from_millis(10), move |core| {
            core.finish();
            *a.lock().unwrap() = Some(core.replace_trains(vec!["t".into()], |_, _| panic!("never called")));
        })
        .unwrap();
    esc.run().unwrap();
    assert!(matches!(*answer.lock().unwrap(), Some(Err(Error::Finishing))));
}
