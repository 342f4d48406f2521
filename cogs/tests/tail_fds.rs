//! The tail against the descriptor limit, in process with a small
//! `max_open_files`. The real `tourbillon` process under a low `ulimit -n`
//! is tested in `cogs/cli/tests/tail_fds.rs`.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::{append, numbered_line};

// ---- in process, with a small max_open_files --------------------------------

mod budget {
    use std::collections::HashSet;
    use std::sync::{mpsc, Arc, Mutex};

    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use tourbillon::{Cog, Context, Escapement, Event, Exit, Next, Remote, Role, Train};
    use tourbillon_cogs::supply::tail::{Tail, TailSettings, TailStats};

    use super::*;

    use crate::common::exclusive;

    /// Records the lines that reach it and reports them done.
    struct Collect(Arc<Mutex<Vec<String>>>);

    impl Cog<Event> for Collect {
        fn role(&self) -> Role {
            Role::Drain
        }
        fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
            self.0
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&e.raw).into_owned());
            ctx.discard(&e);
        }
    }

    struct Running {
        remote: Remote,
        seen: Arc<Mutex<Vec<String>>>,
        stats: TailStats,
        thread: Option<std::thread::JoinHandle<Exit>>,
    }

    impl Running {
        fn start(settings: TailSettings, inotify: bool) -> Running {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let out = Arc::clone(&seen);
            let (tx, rx) = mpsc::channel();
            let thread = std::thread::spawn(move || {
                let mut esc = Escapement::builder()
                    .graceful_signals(false)
                    .inotify(inotify)
                    .finish_deadline(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let tail = Tail::new(settings).unwrap();
                tx.send((esc.core().remote(), tail.stats())).unwrap();
                esc.add_train(Train::new("t").ids(Event::id_getter()).cog(tail).cog(Collect(out)));
                esc.run().unwrap()
            });
            let (remote, stats) = rx.recv().unwrap();
            Running {
                remote,
                seen,
                stats,
                thread: Some(thread),
            }
        }

        fn has_all(&self, due: &HashSet<String>) -> bool {
            let seen = self.seen.lock().unwrap();
            let got: HashSet<&str> = seen.iter().map(String::as_str).collect();
            due.iter().all(|l| got.contains(l.as_str()))
        }

        fn wait_all(&self, due: &HashSet<String>) {
            let start = Instant::now();
            while !self.has_all(due) {
                if start.elapsed() > Duration::from_secs(10) {
                    let seen: HashSet<String> = self.seen.lock().unwrap().iter().cloned().collect();
                    let mut missing: Vec<&String> = due.difference(&seen).collect();
                    missing.sort();
                    panic!("timed out; missing {missing:?}; {:?}", self.stats);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }

        fn stop(mut self) -> Vec<String> {
            let _ = self.remote.send(|core| core.finish());
            let exit = self.thread.take().unwrap().join().unwrap();
            assert_eq!(exit, Exit::Clean);
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            if let Some(t) = self.thread.take() {
                let _ = self.remote.send(|core| core.finish());
                let _ = t.join();
            }
        }
    }

    fn settings(dir: &Path, max_open_files: usize) -> TailSettings {
        TailSettings {
            include: vec![dir.join("*.log*").display().to_string()],
            max_open_files,
            poll_interval_ms: 20,
            checkpoint_interval_ms: 50,
            rotate_wait_ms: 200,
            ..TailSettings::default()
        }
    }

    #[test]
    fn max_open_files_is_checked() {
        let s = TailSettings {
            include: vec!["/x".into()],
            max_open_files: 0,
            ..TailSettings::default()
        };
        let e = Tail::new(s).unwrap_err().to_string();
        assert!(e.contains("max_open_files"), "{e}");
        assert!(TailSettings::default().max_open_files >= 1);
        assert!(TailSettings::default().max_open_files <= 1024);
    }

    #[test]
    fn two_descriptors_for_forty_files_each_line_once_and_closed_files_reopened() {
        let _one = exclusive();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut due = HashSet::new();
        for f in 0..40 {
            let text: String = (0..5).map(|n| numbered_line(f, n) + "\n").collect();
            append(&d.join(format!("f{f:03}.log")), &text);
            due.extend((0..5).map(|n| numbered_line(f, n)));
        }
        let run = Running::start(settings(d, 2), true);
        run.wait_all(&due);
        assert!(run.stats.open.get() <= 2, "{} open", run.stats.open.get());
        for f in (0..40).rev() {
            append(&d.join(format!("f{f:03}.log")), &(numbered_line(f, 5) + "\n"));
            due.insert(numbered_line(f, 5));
        }
        run.wait_all(&due);
        let (closed, reopened, open) = (
            run.stats.closed_for_limit.get(),
            run.stats.reopened.get(),
            run.stats.open.get(),
        );
        let seen = run.stop();
        let mut once = HashSet::new();
        for l in &seen {
            assert!(once.insert(l), "{l} arrived twice");
        }
        assert_eq!(once.len(), due.len());
        assert!(closed >= 38 + 38, "{closed} closed for the limit");
        assert!(reopened >= 38, "{reopened} reopened");
        assert!(open <= 2, "{open} open");
    }

    /// What happens to one of a few files.
    #[derive(Clone, Debug)]
    enum Action {
        /// Append lines to file `.0`.
        Write(usize, usize),
        /// Rename file `.0` to a name the pattern still matches.
        RotateKept(usize),
        /// Rename file `.0` to a name the pattern does not match.
        RotateAway(usize),
        /// Wait until the tail has caught up.
        Pause,
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            5 => (0usize..5, 1usize..6).prop_map(|(f, n)| Action::Write(f, n)),
            1 => (0usize..5).prop_map(Action::RotateKept),
            1 => (0usize..5).prop_map(Action::RotateAway),
            1 => Just(Action::Pause),
        ]
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8)
    }

    proptest! {
        #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

        /// Files closed for the limit grow and rotate (to a name still
        /// followed, or out of reach of the pattern) in any order: no line
        /// is lost or read twice.
        #[test]
        fn with_one_or_two_descriptors_no_line_is_lost_or_repeated(
            actions in proptest::collection::vec(action(), 1..25),
            max in 1usize..3,
            polling in proptest::bool::weighted(0.25),
        ) {
            let _one = exclusive();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            let path = |f: usize| d.join(format!("f{f:03}.log"));
            let mut due = HashSet::new();
            let mut next = 0;
            let mut rotated = 0;
            for f in 0..5 {
                append(&path(f), &(numbered_line(f, 0) + "\n"));
                due.insert(numbered_line(f, 0));
            }
            let run = Running::start(settings(d, max), !polling);
            // A file rotated away before the tail saw it is not its to read.
            run.wait_all(&due);
            for a in &actions {
                match *a {
                    Action::Write(f, n) => {
                        let text: String = (0..n).map(|_| { next += 1; numbered_line(f, next) + "\n" }).collect();
                        due.extend(text.lines().map(str::to_owned));
                        append(&path(f), &text);
                    }
                    Action::RotateKept(f) | Action::RotateAway(f) if path(f).exists() => {
                        if let Action::RotateAway(_) = a {
                            // A file renamed out of the pattern before the
                            // tail saw it is not its to read: let it see it.
                            run.wait_all(&due);
                        }
                        rotated += 1;
                        let to = match a {
                            Action::RotateKept(_) => d.join(format!("f{f:03}.log.{rotated}")),
                            _ => d.join(format!("f{f:03}.old{rotated}")),
                        };
                        fs::rename(path(f), to).unwrap();
                    }
                    Action::RotateKept(_) | Action::RotateAway(_) => {}
                    Action::Pause => run.wait_all(&due),
                }
            }
            run.wait_all(&due);
            prop_assert!(run.stats.open.get() <= max as u64);
            std::thread::sleep(Duration::from_millis(30));
            let seen = run.stop();
            let mut once = HashSet::new();
            for l in &seen {
                prop_assert!(once.insert(l.clone()), "{l} arrived twice");
                prop_assert!(due.contains(l), "{l} was never written");
            }
            prop_assert_eq!(once.len(), due.len());
        }
    }
}
