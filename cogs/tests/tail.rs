//! The tail supply on real files: rotations, truncation, deletion, late
//! files, globs, partial and long lines, polling, many files, checkpoints,
//! backpressure, and a property test against a model of the file system.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tourbillon::train::{Chain, End};
use tourbillon::{Cog, Context, Escapement, Event, Exit, Finish, Fired, Next, Remote, Role, Train};
use tourbillon_cogs::splitter::{LinesSettings, Utf8};
use tourbillon_cogs::step::json::JsonDecode;
use tourbillon_cogs::supply::tail::{saved_positions, ReadFrom, Tail, TailSettings, TailStats};

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{append, exclusive};

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// A line as it reached the end of the train.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    text: String,
    raw: Vec<u8>,
    origin: String,
    line: u64,
}

/// Records what reaches it and reports it done; notes its finish.
struct Collect {
    seen: Shared<Seen>,
    journal: Shared<String>,
}

impl Cog<Event> for Collect {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.seen.lock().unwrap().push(Seen {
            text: String::from_utf8_lossy(&e.raw).into_owned(),
            raw: e.raw.clone(),
            origin: e.origin.as_deref().unwrap_or("-").to_owned(),
            line: e.line,
        });
        self.journal.lock().unwrap().push("data".into());
        ctx.discard(&e);
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, _: &mut Context<'_, Event, N>) -> Finish {
        self.journal.lock().unwrap().push("finish".into());
        Finish::Done
    }
}

fn escapement(inotify: bool) -> Escapement {
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .inotify(inotify)
        .finish_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    // Ends a test that would otherwise hang.
    esc.core()
        .after(Duration::from_secs(40), |core| {
            eprintln!("watchdog fired");
            core.finish()
        })
        .unwrap();
    esc
}

fn settings(include: &[&Path]) -> TailSettings {
    TailSettings {
        include: include.iter().map(|p| p.display().to_string()).collect(),
        poll_interval_ms: 50,
        rotate_wait_ms: 100,
        checkpoint_interval_ms: 50,
        ..TailSettings::default()
    }
}

/// A tail following files on a loop thread of its own.
struct Running {
    remote: Remote,
    seen: Shared<Seen>,
    stats: TailStats,
    inotify: bool,
    thread: Option<JoinHandle<Exit>>,
}

fn follow(settings: TailSettings) -> Running {
    follow_with(settings, true, |train| train)
}

/// Runs `Tail -> (extra cogs) -> Collect` on a thread; `build` adds the
/// extra cogs.
fn follow_with<C, F>(settings: TailSettings, inotify: bool, build: F) -> Running
where
    C: Chain<Event>,
    F: FnOnce(Train<Event, <End as Chain<Event>>::Append<Tail>>) -> Train<Event, C> + Send + 'static,
{
    let seen = Shared::default();
    let out = Arc::clone(&seen);
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut esc = escapement(inotify);
        let tail = Tail::new(settings).unwrap();
        tx.send((esc.core().remote(), tail.stats(), esc.inotify())).unwrap();
        let train = build(Train::new("tail").ids(Event::id_getter()).cog(tail)).cog(Collect {
            seen: out,
            journal: Shared::default(),
        });
        esc.add_train(train);
        esc.run().unwrap()
    });
    let (remote, stats, inotify) = rx.recv().expect("the loop thread started");
    Running {
        remote,
        seen,
        stats,
        inotify,
        thread: Some(thread),
    }
}

impl Running {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn texts(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.text).collect()
    }

    /// Waits until `ok` holds of the lines seen; panics after 10 s.
    fn wait_for(&self, what: &str, ok: impl Fn(&[Seen]) -> bool) {
        self.wait_within(Duration::from_secs(10), what, ok)
    }

    /// Waits until `ok` holds of the lines seen; panics after `limit`.
    fn wait_within(&self, limit: Duration, what: &str, ok: impl Fn(&[Seen]) -> bool) {
        let start = Instant::now();
        loop {
            if ok(&self.seen.lock().unwrap()) {
                return;
            }
            if start.elapsed() > limit {
                panic!("timed out waiting for {what}; seen: {:?}", self.texts());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn wait_count(&self, n: usize) {
        self.wait_for(&format!("{n} lines"), |s| s.len() >= n);
    }

    /// Finishes the loop and returns every line seen.
    fn stop(mut self) -> Vec<Seen> {
        self.end();
        self.seen()
    }

    /// Ends the loop thread the way `kill -9` ends a process: no cog
    /// finishes, the tail saves nothing more. Returns every line seen.
    fn crash(mut self) -> Vec<Seen> {
        if let Some(thread) = self.thread.take() {
            // resume_unwind: no panic message, nothing runs but drops.
            let _ = self
                .remote
                .send(|_| std::panic::resume_unwind(Box::new("simulated kill -9")));
            assert!(thread.join().is_err(), "the loop thread was to die");
        }
        self.seen()
    }

    fn end(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = self.remote.send(|core| core.finish());
            let exit = thread.join();
            if !std::thread::panicking() {
                assert_eq!(exit.expect("the loop thread panicked"), Exit::Clean);
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.end();
    }
}

/// Runs a batch tail to its end on this thread.
fn batch(mut settings: TailSettings) -> (Vec<Seen>, Vec<String>, Exit) {
    settings.batch = true;
    let seen = Shared::default();
    let journal = Shared::default();
    let mut esc = escapement(true);
    esc.add_train(
        Train::new("tail")
            .ids(Event::id_getter())
            .cog(Tail::new(settings).unwrap())
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Arc::clone(&journal),
            }),
    );
    let exit = esc.run().unwrap();
    let seen = seen.lock().unwrap().clone();
    let journal = journal.lock().unwrap().clone();
    (seen, journal, exit)
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("{prefix}-{i:05}\n")).collect()
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:05}")).collect()
}

fn texts(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(|s| s.text.clone()).collect()
}

fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

// ---- batch ---------------------------------------------------------------

#[test]
fn batch_mode_reads_every_file_to_its_end_then_finishes_the_whole_train() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), numbered("a", 0..300)).unwrap();
    fs::write(dir.path().join("b.log"), numbered("b", 0..200)).unwrap();
    fs::write(dir.path().join("c.txt"), numbered("c", 0..10)).unwrap();
    let (seen, journal, exit) = batch(settings(&[&dir.path().join("*.log")]));
    assert_eq!(exit, Exit::Clean);
    let a: Vec<&Seen> = seen.iter().filter(|s| s.origin.ends_with("a.log")).collect();
    assert_eq!(a.iter().map(|s| s.text.clone()).collect::<Vec<_>>(), names("a", 0..300));
    assert_eq!(
        a.iter().map(|s| s.line).collect::<Vec<_>>(),
        (1..=300).collect::<Vec<_>>()
    );
    assert_eq!(seen.len(), 500, "c.txt does not match");
    assert_eq!(
        journal.last().map(String::as_str),
        Some("finish"),
        "the drain finished after the data"
    );
}

#[test]
fn excluded_files_are_not_read() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), numbered("a", 0..3)).unwrap();
    fs::write(dir.path().join("a.log.1.gz"), numbered("gz", 0..3)).unwrap();
    let mut s = settings(&[&dir.path().join("a.log*")]);
    s.exclude = vec!["*.gz".into()];
    let (seen, _, _) = batch(s);
    assert_eq!(texts(&seen), names("a", 0..3));
}

#[test]
fn a_line_longer_than_the_maximum_is_cut_and_the_next_lines_are_intact() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.log");
    fs::write(&path, format!("short\n{}\nafter\n", "x".repeat(100_000))).unwrap();
    let mut s = settings(&[&path]);
    s.lines.max_line_bytes = 16;
    s.read_bytes_per_turn = 4096;
    let (seen, _, _) = batch(s);
    assert_eq!(texts(&seen), ["short", &"x".repeat(16), "after"]);
    assert_eq!(seen[2].line, 3);
}

#[test]
fn invalid_utf8_is_kept_as_bytes_or_replaced_as_set() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bytes.log");
    fs::write(&path, b"ok\n\xff\xfebad\xce\n").unwrap();
    let (kept, _, _) = batch(settings(&[&path]));
    assert_eq!(kept[1].raw, b"\xff\xfebad\xce");
    let mut s = settings(&[&path]);
    s.lines = LinesSettings {
        utf8: Utf8::Replace,
        ..LinesSettings::default()
    };
    let (replaced, _, _) = batch(s);
    assert_eq!(replaced[1].text, "\u{FFFD}\u{FFFD}bad\u{FFFD}");
    assert_eq!(replaced[0].text, "ok");
}

#[test]
fn malformed_json_in_the_middle_is_dropped_and_everything_else_arrives() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let mut text = String::new();
    for i in 0..100 {
        if i == 50 {
            text.push_str("{\"broken\": \n");
        }
        text.push_str(&format!("{{\"n\":{i}}}\n"));
    }
    fs::write(&path, text).unwrap();
    let mut s = settings(&[&path]);
    s.batch = true;
    let decode = JsonDecode::new(Default::default()).unwrap();
    let malformed = decode.malformed();
    let seen = Shared::default();
    let mut esc = escapement(true);
    esc.add_train(
        Train::new("json")
            .ids(Event::id_getter())
            .cog(Tail::new(s).unwrap())
            .cog(decode)
            .cog(Collect {
                seen: Arc::clone(&seen),
                journal: Shared::default(),
            }),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 100);
    assert_eq!(malformed.get(), 1);
    assert_eq!(seen[50].line, 52, "line numbers count the malformed line");
}

#[test]
fn one_busy_file_does_not_starve_the_others() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a-big.log"), numbered("big", 0..50_000)).unwrap();
    fs::write(dir.path().join("b-small.log"), numbered("small", 0..10)).unwrap();
    let mut s = settings(&[&dir.path().join("*.log")]);
    s.read_bytes_per_turn = 16 * 1024;
    let (seen, _, _) = batch(s);
    assert_eq!(seen.len(), 50_010);
    let first_small = seen.iter().position(|s| s.text.starts_with("small")).unwrap();
    let last_small = seen.iter().rposition(|s| s.text.starts_with("small")).unwrap();
    // The small file's turn comes after one share of the big one.
    assert!(first_small < 2000, "small file first read after {first_small} lines");
    assert!(last_small < 2000, "small file finished after {last_small} lines");
}

// ---- following -----------------------------------------------------------

#[test]
fn a_file_that_appears_late_is_read_from_its_start() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later/late.log");
    let run = follow(settings(&[&path]));
    std::thread::sleep(Duration::from_millis(50));
    fs::create_dir(dir.path().join("later")).unwrap();
    fs::write(&path, numbered("late", 0..5)).unwrap();
    run.wait_count(5);
    append(&path, &numbered("late", 5..8));
    run.wait_count(8);
    assert_eq!(texts(&run.stop()), names("late", 0..8));
}

#[test]
fn a_glob_picks_up_a_new_file_while_running() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.log"), numbered("a", 0..3)).unwrap();
    let mut s = settings(&[&dir.path().join("*.log")]);
    s.read_from = ReadFrom::End;
    let run = follow(s);
    wait_until("the tail to open a.log", || run.stats.found.get() == 1);
    fs::write(dir.path().join("b.log"), numbered("b", 0..4)).unwrap();
    fs::write(dir.path().join("b.txt"), numbered("txt", 0..4)).unwrap();
    run.wait_count(4);
    append(&dir.path().join("a.log"), &numbered("a", 3..5));
    run.wait_count(6);
    let mut got = texts(&run.stop());
    got.sort();
    let mut want = names("a", 3..5);
    want.extend(names("b", 0..4));
    assert_eq!(got, want, "read_from=end skips a.log's old lines, not the new file's");
}

#[test]
fn a_double_star_pattern_follows_files_in_directories_made_later() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let run = follow(settings(&[&dir.path().join("**/*.log")]));
    std::thread::sleep(Duration::from_millis(50));
    let deep = dir.path().join("a/b/c");
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("x.log"), numbered("deep", 0..3)).unwrap();
    fs::write(deep.join("x.txt"), numbered("txt", 0..3)).unwrap();
    run.wait_count(3);
    append(&deep.join("x.log"), &numbered("deep", 3..4));
    run.wait_count(4);
    let seen = run.stop();
    assert_eq!(texts(&seen), names("deep", 0..4));
    assert!(seen[0].origin.ends_with("a/b/c/x.log"), "{}", seen[0].origin);
}

#[test]
fn read_from_end_starts_after_the_last_complete_line() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "old-1\nold-2\nbeing-writ").unwrap();
    let mut s = settings(&[&path]);
    s.read_from = ReadFrom::End;
    let run = follow(s);
    wait_until("the tail to open the file", || run.stats.found.get() == 1);
    append(&path, "ten\nnew-1\n");
    run.wait_count(2);
    assert_eq!(texts(&run.stop()), ["being-written", "new-1"]);
}

#[test]
fn rotation_by_rename_and_create_reads_the_old_file_to_its_end_first() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..100)).unwrap();
    let run = follow(settings(&[&path]));
    run.wait_count(100);
    // Written, then rotated, before the tail can have read it.
    append(&path, &numbered("l", 100..150));
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    fs::write(&path, numbered("l", 150..200)).unwrap();
    run.wait_count(200);
    wait_until("the rotated file to be closed", || run.stats.closed.get() == 1);
    let seen = run.stop();
    assert_eq!(
        texts(&seen),
        names("l", 0..200),
        "every line once, the old file's first"
    );
    assert!(seen[149].origin.ends_with("app.log") && seen[150].line == 1);
}

#[test]
fn copytruncate_is_seen_and_the_file_read_again_from_the_start() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("old", 0..50)).unwrap();
    let run = follow(settings(&[&path]));
    run.wait_count(50);
    fs::copy(&path, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    append(&path, &numbered("new", 0..5));
    run.wait_count(55);
    assert_eq!(run.stats.truncated.get(), 1);
    // Truncated again, and rewritten longer than what was read before the
    // tail looks: the first bytes tell.
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&path, &numbered("newer", 0..100));
    run.wait_count(155);
    let seen = run.stop();
    let mut want = names("old", 0..50);
    want.extend(names("new", 0..5));
    want.extend(names("newer", 0..100));
    assert_eq!(texts(&seen), want);
}

#[test]
fn a_copytruncate_copy_goes_on_where_the_original_was_read_to() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..50)).unwrap();
    let mut s = settings(&[&dir.path().join("app.log*")]);
    s.rotate_wait_ms = 3000;
    let run = follow(s);
    run.wait_count(50);
    // Written, copied and truncated before the tail can read it: only the
    // copy has these lines.
    append(&path, &numbered("l", 50..60));
    fs::copy(&path, dir.path().join("app.log.1")).unwrap();
    OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    append(&path, &numbered("m", 0..5));
    run.wait_count(65);
    std::thread::sleep(Duration::from_millis(200));
    let mut got = texts(&run.stop());
    got.sort();
    let mut want = names("l", 0..60);
    want.extend(names("m", 0..5));
    assert_eq!(got, want, "every line once: the copy is not read again from its start");
}

#[test]
fn a_deleted_file_is_read_to_its_end_closed_and_a_new_one_read_from_its_start() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("first", 0..10)).unwrap();
    let run = follow(settings(&[&path]));
    run.wait_count(10);
    append(&path, &numbered("first", 10..12));
    fs::remove_file(&path).unwrap();
    wait_until("the deleted file to be closed", || run.stats.closed.get() == 1);
    fs::write(&path, numbered("second", 0..3)).unwrap();
    run.wait_count(15);
    let mut want = names("first", 0..12);
    want.extend(names("second", 0..3));
    assert_eq!(texts(&run.stop()), want);
}

#[test]
fn a_hardlink_swap_is_a_rotation_and_hardlinks_are_read_once() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("a", 0..10)).unwrap();
    fs::hard_link(&path, dir.path().join("alias.log")).unwrap();
    let run = follow(settings(&[&dir.path().join("*.log")]));
    run.wait_count(10);
    let fresh = dir.path().join("fresh.tmp");
    fs::write(&fresh, numbered("b", 0..10)).unwrap();
    fs::hard_link(&fresh, dir.path().join("swap.tmp")).unwrap();
    fs::rename(dir.path().join("swap.tmp"), &path).unwrap();
    run.wait_count(20);
    // alias.log still names the old file: its new lines are read too.
    append(&dir.path().join("alias.log"), &numbered("a", 10..12));
    run.wait_count(22);
    std::thread::sleep(Duration::from_millis(100));
    let mut got = texts(&run.stop());
    got.sort();
    let mut want = names("a", 0..12);
    want.extend(names("b", 0..10));
    assert_eq!(got, want);
}

#[test]
fn a_partial_last_line_is_held_until_its_newline_and_emitted_at_finish() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "one\ntw").unwrap();
    let run = follow(settings(&[&path]));
    run.wait_count(1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(run.texts(), ["one"], "the partial line is held");
    append(&path, "o\nthree");
    run.wait_count(2);
    let seen = run.stop();
    assert_eq!(texts(&seen), ["one", "two", "three"]);
    assert_eq!(seen[2].line, 3);
}

#[test]
fn a_partial_line_is_emitted_after_the_idle_time() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "lonely").unwrap();
    let mut s = settings(&[&path]);
    s.partial_line_idle_ms = 100;
    let run = follow(s);
    let start = Instant::now();
    run.wait_count(1);
    assert!(start.elapsed() >= Duration::from_millis(90));
    // The newline that ends it at last is not an empty line.
    append(&path, "\nnext\n");
    run.wait_count(2);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(texts(&run.stop()), ["lonely", "next"]);
}

#[test]
fn with_inotify_off_files_are_polled() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let run = follow_with(settings(&[&dir.path().join("*.log")]), false, |t| t);
    assert!(!run.inotify, "the escapement was built without inotify");
    fs::write(&path, numbered("p", 0..5)).unwrap();
    run.wait_count(5);
    append(&path, &numbered("p", 5..10));
    run.wait_count(10);
    fs::rename(&path, dir.path().join("app.old")).unwrap();
    fs::write(&path, numbered("p", 10..15)).unwrap();
    run.wait_count(15);
    assert_eq!(texts(&run.stop()), names("p", 0..15));
}

#[test]
fn two_hundred_files_at_once() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    for f in 0..200 {
        fs::write(
            dir.path().join(format!("f{f:03}.log")),
            numbered(&format!("f{f:03}"), 0..50),
        )
        .unwrap();
    }
    let run = follow(settings(&[&dir.path().join("*.log")]));
    run.wait_count(200 * 50);
    for f in 0..200 {
        append(
            &dir.path().join(format!("f{f:03}.log")),
            &numbered(&format!("f{f:03}"), 50..51),
        );
    }
    run.wait_count(200 * 51);
    assert_eq!(run.stats.open.get(), 200);
    let seen = run.stop();
    for f in [0, 99, 199] {
        let prefix = format!("f{f:03}");
        let lines: Vec<String> = seen
            .iter()
            .filter(|s| s.text.starts_with(&prefix))
            .map(|s| s.text.clone())
            .collect();
        assert_eq!(lines, names(&prefix, 0..51));
    }
    assert_eq!(seen.len(), 200 * 51);
}

#[test]
fn lost_inotify_events_are_made_up_for_by_a_rescan() {
    let _one = exclusive();
    let limit: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(16384);
    if limit > 200_000 {
        eprintln!("skipped: max_queued_events is {limit}, too many files to create to overflow it");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    fs::write(&path, numbered("a", 0..1)).unwrap();
    let run = follow(settings(&[&dir.path().join("*.log")]));
    if !run.inotify {
        eprintln!("skipped: inotify is not usable here, so it cannot overflow");
        return;
    }
    run.wait_count(1);
    let noise = dir.path().to_path_buf();
    let (a, b) = (path.clone(), dir.path().join("b.log"));
    // On the loop thread, so nothing reads inotify until the queue overflowed.
    run.remote
        .send(move |_| {
            for i in 0..limit + 100 {
                File::create(noise.join(format!("n{i}.noise"))).unwrap();
            }
            append(&a, &numbered("a", 1..2));
            fs::write(&b, numbered("b", 0..1)).unwrap();
        })
        .unwrap();
    // Creating that many files takes from one second to well over ten on a
    // loaded machine, and the loop sees nothing until it is done.
    run.wait_within(Duration::from_secs(90), "3 lines", |s| s.len() >= 3);
    assert!(run.stats.overflows.get() >= 1);
    let mut got = texts(&run.stop());
    got.sort();
    assert_eq!(got, ["a-00000", "a-00001", "b-00000"]);
}

// ---- checkpoints ---------------------------------------------------------

#[test]
fn a_restart_goes_on_from_the_checkpoint_without_losing_or_repeating_a_line() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..100)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(state.clone());
    s.read_from = ReadFrom::End;
    let first = follow(s.clone());
    wait_until("the tail to open the file", || first.stats.found.get() == 1);
    append(&path, &numbered("l", 100..120));
    first.wait_count(20);
    let first = first.stop();
    let saved = saved_positions(&state).unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].pos, fs::metadata(&path).unwrap().len());
    append(&path, &numbered("l", 120..150));
    let second = follow(s);
    second.wait_count(30);
    std::thread::sleep(Duration::from_millis(100));
    let second = second.stop();
    assert_eq!(texts(&first), names("l", 100..120));
    assert_eq!(
        texts(&second),
        names("l", 120..150),
        "the checkpoint wins over read_from"
    );
    assert_eq!(second[0].line, 21, "line numbers go on from the checkpoint");
}

/// A drain that loses what it gets: it never reports it done.
struct Swallow;

impl Cog<Event> for Swallow {
    fn role(&self) -> Role {
        Role::Drain
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, _: Event, _: &mut Context<'_, Event, N>) {}
}

#[test]
fn positions_advance_only_over_lines_reported_done() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..10)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(state.clone());
    s.batch = true;
    let mut esc = escapement(true);
    esc.add_train(
        Train::new("lossy")
            .ids(Event::id_getter())
            .cog(Tail::new(s.clone()).unwrap())
            .cog(Swallow),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    drop(esc);
    assert_eq!(saved_positions(&state).unwrap()[0].pos, 0, "nothing was delivered");
    let (seen, _, _) = batch(s);
    assert_eq!(texts(&seen), names("l", 0..10), "so everything is read again");
    assert_eq!(
        saved_positions(&state).unwrap()[0].pos,
        fs::metadata(&path).unwrap().len()
    );
}

#[test]
fn a_file_rotated_while_stopped_is_found_by_inode_and_finished() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..10)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(state);
    let first = follow(s.clone());
    first.wait_count(10);
    drop(first.stop());
    append(&path, &numbered("l", 10..15));
    fs::rename(&path, dir.path().join("app.log.1")).unwrap();
    fs::write(&path, numbered("l", 15..20)).unwrap();
    let second = follow(s);
    second.wait_count(10);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(texts(&second.stop()), names("l", 10..20));
}

#[test]
fn a_checkpoint_directory_has_one_tail_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(&[&dir.path().join("x.log")]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    let _first = Tail::new(s.clone()).unwrap();
    let err = Tail::new(s).unwrap_err().to_string();
    assert!(err.contains("state store"), "{err}");
}

// ---- rotated while stopped -------------------------------------------------

/// Makes (or points again) the symlink `link` at `target`, atomically.
fn point(link: &Path, target: &Path) {
    let tmp = link.with_extension("tmp-link");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    fs::rename(&tmp, link).unwrap();
}

#[test]
fn kubernetes_layout_a_container_log_renamed_while_stopped_is_found_beside_its_target() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (containers, pod) = (dir.path().join("containers"), dir.path().join("pods/ns_app_1/app"));
    fs::create_dir_all(&containers).unwrap();
    fs::create_dir_all(&pod).unwrap();
    let log = pod.join("0.log");
    fs::write(&log, numbered("l", 0..10)).unwrap();
    // As the kubelet makes it: a relative symlink into the pods directory.
    point(
        &containers.join("app_ns_app-1.log"),
        Path::new("../pods/ns_app_1/app/0.log"),
    );
    let mut s = settings(&[&containers.join("*.log")]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    let first = follow(s.clone());
    first.wait_count(10);
    drop(first.stop());
    let saved = saved_positions(dir.path().join("state")).unwrap();
    assert_eq!(saved[0].real_path.as_deref(), Some(log.to_str().unwrap()), "{saved:?}");
    // While stopped: more lines, then the kubelet's rotation.
    append(&log, &numbered("l", 10..15));
    fs::rename(&log, pod.join("0.log.20250101-000000")).unwrap();
    fs::write(&log, numbered("l", 15..20)).unwrap();
    let second = follow(s);
    second.wait_count(10);
    std::thread::sleep(Duration::from_millis(100));
    let seen = second.stop();
    assert_eq!(
        texts(&seen),
        names("l", 10..20),
        "the rotated file's last lines first, once"
    );
    assert!(seen.iter().all(|l| l.origin.ends_with("containers/app_ns_app-1.log")));
    assert_eq!(seen[0].line, 11, "line numbers go on");
}

#[test]
fn a_symlink_pointed_elsewhere_while_stopped_finishes_its_old_target_first() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    for d in ["a", "b", "links"] {
        fs::create_dir(dir.path().join(d)).unwrap();
    }
    let (old, new, link) = (
        dir.path().join("a/current.log"),
        dir.path().join("b/current.log"),
        dir.path().join("links/app.log"),
    );
    fs::write(&old, numbered("l", 0..10)).unwrap();
    point(&link, &old);
    let mut s = settings(&[&link]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    let first = follow(s.clone());
    first.wait_count(10);
    drop(first.stop());
    append(&old, &numbered("l", 10..15));
    fs::write(&new, numbered("l", 15..20)).unwrap();
    point(&link, &new);
    let second = follow(s);
    second.wait_count(10);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(texts(&second.stop()), names("l", 10..20));
}

#[test]
fn a_file_moved_to_an_olddir_while_stopped_is_found_through_rotated_paths() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = (dir.path().join("app.log"), dir.path().join("old"));
    fs::create_dir(&old).unwrap();
    fs::write(&path, numbered("l", 0..10)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    s.rotated_paths = vec![format!("{}/app.log.*", old.display())];
    let first = follow(s.clone());
    first.wait_count(10);
    drop(first.stop());
    // logrotate with `olddir old` and `create`.
    append(&path, &numbered("l", 10..15));
    fs::rename(&path, old.join("app.log.1")).unwrap();
    fs::write(&path, numbered("l", 15..20)).unwrap();
    let second = follow(s);
    second.wait_count(10);
    wait_until("the rotated file to be read and closed", || {
        second.stats.closed.get() == 1
    });
    assert_eq!(texts(&second.stop()), names("l", 10..20));
}

#[test]
fn a_file_that_cannot_be_found_again_is_a_warning_with_the_bytes_never_delivered() {
    let _one = exclusive();
    common::keep_warnings();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..10)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    s.batch = true;
    // Read, never delivered: the checkpoint knows 80 bytes, delivered none.
    let mut esc = escapement(true);
    esc.add_train(
        Train::new("lossy")
            .ids(Event::id_getter())
            .cog(Tail::new(s.clone()).unwrap())
            .cog(Swallow),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    drop(esc);
    let saved = saved_positions(dir.path().join("state")).unwrap();
    assert_eq!((saved[0].pos, saved[0].size), (0, 80));
    // Rotated where nothing says to look, and compressed.
    let elsewhere = tempfile::tempdir().unwrap();
    fs::rename(&path, elsewhere.path().join("app.log.1")).unwrap();
    fs::write(&path, numbered("m", 0..2)).unwrap();
    let (seen, _, _) = batch(s);
    assert_eq!(texts(&seen), names("m", 0..2));
    let warnings = common::warnings_about(&path);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not found again") && w.contains("80 bytes of it were never delivered")),
        "{warnings:?}"
    );
}

#[test]
fn a_file_found_while_running_is_in_the_checkpoint_before_its_first_line() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut s = settings(&[&dir.path().join("*.log")]);
    s.checkpoint_dir = Some(state.clone());
    s.checkpoint_interval_ms = 3_600_000;
    let run = follow(s.clone());
    std::thread::sleep(Duration::from_millis(50));
    fs::write(dir.path().join("new.log"), numbered("n", 0..5)).unwrap();
    run.wait_count(5);
    let seen = run.crash();
    assert_eq!(texts(&seen), names("n", 0..5));
    let saved = saved_positions(&state).unwrap();
    assert_eq!(saved.len(), 1, "the new file is known: {saved:?}");
    assert_eq!(saved[0].pos, 0, "from where it started; no periodic save came");
    // Rotated away while the tail is down: found by its identity.
    fs::rename(dir.path().join("new.log"), dir.path().join("new.old")).unwrap();
    let again = follow(s);
    again.wait_count(5);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        texts(&again.stop()),
        names("n", 0..5),
        "read again from the start, not lost"
    );
}

#[test]
fn at_finish_a_line_cut_by_the_read_budget_is_left_whole_for_the_restart() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..20_000)).unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(state.clone());
    // Lines are 8 bytes: turns end in the middle of one.
    s.read_bytes_per_turn = 13;
    let run = follow(s.clone());
    run.wait_count(100);
    let first = run.stop();
    assert!(first.len() < 20_000, "stopped in the backlog");
    let saved = saved_positions(&state).unwrap();
    assert_eq!(saved[0].pos % 8, 0, "the checkpoint is at a line's end: {saved:?}");
    s.batch = true;
    s.read_bytes_per_turn = 1 << 16;
    let (second, _, _) = batch(s);
    let mut all = texts(&first);
    all.extend(texts(&second));
    assert_eq!(all, names("l", 0..20_000), "no line torn, lost or repeated");
}

#[test]
fn a_last_line_emitted_unterminated_at_finish_is_not_followed_by_an_empty_line() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, "one\ntwo").unwrap();
    let mut s = settings(&[&path]);
    s.checkpoint_dir = Some(dir.path().join("state"));
    s.batch = true;
    let (first, _, _) = batch(s.clone());
    assert_eq!(texts(&first), ["one", "two"]);
    append(&path, "\nthree\n");
    let (second, _, _) = batch(s);
    assert_eq!(texts(&second), ["three"], "the newline only ended `two`");
    assert_eq!(second[0].line, 3);
}

// ---- backpressure --------------------------------------------------------

/// Says it is congested every `every` lines, for 30 ms; counts the lines
/// that reach it meanwhile.
struct Gate {
    every: usize,
    count: usize,
    congested: bool,
    while_congested: Arc<Mutex<Vec<usize>>>,
}

impl Cog<Event> for Gate {
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        self.count += 1;
        if self.congested {
            *self.while_congested.lock().unwrap().last_mut().unwrap() += 1;
        } else if self.count % self.every == 0 {
            self.congested = true;
            self.while_congested.lock().unwrap().push(0);
            ctx.after(Duration::from_millis(30), 0).unwrap();
        }
        ctx.emit(e);
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        self.congested = false;
        ctx.resume_upstream();
    }
    fn congested(&self) -> bool {
        self.congested
    }
}

#[test]
fn nothing_is_read_while_the_train_is_congested_and_nothing_is_dropped() {
    let _one = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    fs::write(&path, numbered("l", 0..5000)).unwrap();
    let mut s = settings(&[&path]);
    s.read_bytes_per_turn = 1000;
    let episodes = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::clone(&episodes);
    let run = follow_with(s, true, move |t| {
        t.cog(Gate {
            every: 1000,
            count: 0,
            congested: false,
            while_congested: e,
        })
    });
    run.wait_count(5000);
    let seen = run.stop();
    assert_eq!(texts(&seen), names("l", 0..5000));
    let episodes = episodes.lock().unwrap().clone();
    assert_eq!(episodes.len(), 5);
    // At most the rest of one read (1000 bytes, 8 bytes a line) gets through.
    assert!(
        episodes.iter().all(|&n| n <= 125),
        "lines through while congested: {episodes:?}"
    );
}

// ---- settings ------------------------------------------------------------

#[test]
fn settings_refuse_unknown_fields_fill_in_defaults_and_describe_themselves() {
    let s: TailSettings =
        serde_json::from_str(r#"{"include": ["/var/log/*.log"], "lines": {"max_line_bytes": 10}}"#).unwrap();
    assert_eq!(s.read_from, ReadFrom::Beginning);
    assert_eq!(s.poll_interval_ms, 1000);
    assert_eq!(s.lines.max_line_bytes, 10);
    let err = serde_json::from_str::<TailSettings>(r#"{"include": [], "inlcude": []}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `inlcude`"), "{err}");
    let err = Tail::new(TailSettings::default()).unwrap_err().to_string();
    assert!(err.starts_with("include:"), "{err}");
    let bad = TailSettings {
        include: vec!["/a/[b".into()],
        ..TailSettings::default()
    };
    assert!(Tail::new(bad).unwrap_err().to_string().contains("without its `]`"));
    let zero = TailSettings {
        include: vec!["/a".into()],
        lines: LinesSettings {
            max_line_bytes: 0,
            ..LinesSettings::default()
        },
        ..TailSettings::default()
    };
    assert!(Tail::new(zero)
        .unwrap_err()
        .to_string()
        .starts_with("lines.max_line_bytes"));
    let train = Train::<Event>::new("t").cog(Tail::new(s).unwrap());
    let listing = train.to_string();
    assert!(
        listing.contains("supply  tail include=[/var/log/*.log] read_from=beginning batch=false"),
        "{listing}"
    );
    assert!(listing.contains("max_line_bytes=10"), "{listing}");
}

// ---- real logrotate --------------------------------------------------------

#[test]
fn logrotate_create_and_copytruncate_lose_no_line() {
    let _one = exclusive();
    let found = std::process::Command::new("logrotate").arg("--version").output();
    if !found.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: logrotate is not installed (Debian: apt-get install logrotate)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (created, copied) = (dir.path().join("app.log"), dir.path().join("ct.log"));
    let conf = dir.path().join("logrotate.conf");
    fs::write(
        &conf,
        format!(
            "{} {{\n  rotate 5\n  create\n  nocompress\n}}\n{} {{\n  rotate 5\n  copytruncate\n  nocompress\n}}\n",
            created.display(),
            copied.display()
        ),
    )
    .unwrap();
    let rotate = || {
        let out = std::process::Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(dir.path().join("status"))
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let write = |range: std::ops::Range<usize>| {
        append(&created, &numbered("create", range.clone()));
        append(&copied, &numbered("copy", range));
    };
    write(0..100);
    let run = follow(settings(&[&created, &copied]));
    run.wait_count(200);
    rotate();
    write(100..200);
    run.wait_count(400);
    rotate();
    write(200..250);
    run.wait_count(500);
    assert!(dir.path().join("app.log.2").exists(), "logrotate rotated twice");
    assert!(run.stats.truncated.get() >= 2, "copytruncate seen");
    assert!(run.stats.rotated.get() >= 2, "create rotations seen");
    std::thread::sleep(Duration::from_millis(100));
    let seen = run.stop();
    for prefix in ["create", "copy"] {
        let lines: Vec<String> = seen
            .iter()
            .filter(|s| s.text.starts_with(prefix))
            .map(|s| s.text.clone())
            .collect();
        assert_eq!(lines, names(prefix, 0..250), "{prefix}");
    }
}

// ---- a model of the file system --------------------------------------------

mod model {
    use std::collections::HashSet;

    use proptest::prelude::*;
    use proptest::test_runner::Config;
    use proptest::test_runner::TestCaseError;

    use super::*;

    /// What happens to the followed file `app.log` (pattern `app.log*`).
    #[derive(Clone, Debug)]
    enum Action {
        /// Append this many lines (creating the file if it is gone).
        Write(usize),
        /// Append a line without its newline (the next write ends it).
        Partial,
        /// Rename to `app.log.N` and create an empty `app.log`.
        Rotate,
        /// Truncate to 0 in place.
        Truncate,
        /// logrotate's copytruncate: copy to `app.log.N`, then truncate.
        CopyTruncate,
        /// Unlink it.
        Delete,
        /// Wait until the tail has caught up.
        Pause,
        /// Wait until the tail has caught up, stop it (SIGTERM), move the
        /// file while it is stopped, start it again.
        Restart(Move),
        /// Wait until the tail has emitted what is due, kill it (no final
        /// save: with slow saves, before any periodic one), move the file
        /// while it is down, start it again.
        Crash(Move),
    }

    /// What happens to `app.log` while the tail is stopped.
    #[derive(Clone, Copy, Debug)]
    enum Move {
        Stay,
        /// Renamed to `app.log.N` (the pattern matches it), a new `app.log`.
        Rename,
        /// Moved to `old/app.log.N` (only `rotated_paths` names it), a new
        /// `app.log`.
        Away,
    }

    fn moved() -> impl Strategy<Value = Move> {
        prop_oneof![Just(Move::Stay), Just(Move::Rename), Just(Move::Away)]
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![
            4 => (1usize..40).prop_map(Action::Write),
            1 => Just(Action::Partial),
            1 => Just(Action::Rotate),
            1 => Just(Action::Truncate),
            1 => Just(Action::CopyTruncate),
            1 => Just(Action::Delete),
            2 => Just(Action::Pause),
            1 => moved().prop_map(Action::Restart),
            1 => moved().prop_map(Action::Crash),
        ]
    }

    /// What was written, and what may be lost: lines not yet read when
    /// their file was truncated or deleted, and lines still without
    /// their newline.
    #[derive(Default)]
    struct Model {
        written: Vec<String>,
        at_risk: HashSet<String>,
        unterminated: HashSet<String>,
        /// Lines of the current file written since the tail last caught up.
        unsynced: Vec<String>,
        /// The current file's line without its newline.
        partial: Option<String>,
        exists: bool,
        generation: usize,
        next: usize,
        rotated: usize,
        /// Lines written before a crash: they may arrive twice.
        may_repeat: HashSet<String>,
    }

    impl Model {
        fn name(&mut self) -> String {
            self.next += 1;
            format!("g{}-{}", self.generation, self.next)
        }

        /// The current file's unread lines may be lost.
        fn risk_current(&mut self) {
            self.at_risk.extend(self.unsynced.drain(..));
            if let Some(p) = self.partial.take() {
                self.at_risk.insert(p);
            }
        }

        fn apply(&mut self, action: &Action, path: &Path) {
            match action {
                Action::Write(n) => {
                    let mut text = String::new();
                    if let Some(p) = self.partial.take() {
                        // Due only once its newline is written.
                        self.unterminated.remove(&p);
                        self.unsynced.push(p);
                        text.push('\n');
                    }
                    for _ in 0..*n {
                        let name = self.name();
                        text.push_str(&name);
                        text.push('\n');
                        self.written.push(name.clone());
                        self.unsynced.push(name);
                    }
                    append(path, &text);
                    self.exists = true;
                }
                Action::Partial if self.partial.is_none() => {
                    let name = self.name();
                    append(path, &name);
                    self.exists = true;
                    self.written.push(name.clone());
                    self.unsynced.push(name.clone());
                    self.unterminated.insert(name.clone());
                    self.partial = Some(name);
                }
                Action::Partial => {}
                Action::Rotate if self.exists => {
                    self.rotated += 1;
                    fs::rename(path, path.with_extension(format!("log.{}", self.rotated))).unwrap();
                    File::create(path).unwrap();
                    // Lines stay in the rotated file, which still matches.
                    self.unsynced.clear();
                    self.partial = None;
                    self.generation += 1;
                }
                Action::Truncate if self.exists => {
                    self.risk_current();
                    OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
                }
                Action::CopyTruncate if self.exists => {
                    self.rotated += 1;
                    fs::copy(path, path.with_extension(format!("log.{}", self.rotated))).unwrap();
                    OpenOptions::new().write(true).open(path).unwrap().set_len(0).unwrap();
                    // Every line is in the copy, which matches too.
                    self.unsynced.clear();
                    self.partial = None;
                    self.generation += 1;
                }
                Action::Delete if self.exists => {
                    self.risk_current();
                    fs::remove_file(path).unwrap();
                    self.exists = false;
                    self.generation += 1;
                }
                Action::Rotate | Action::Truncate | Action::CopyTruncate | Action::Delete => {}
                Action::Pause | Action::Restart(_) | Action::Crash(_) => {}
            }
        }

        /// The tail is stopped: rotate the file as `how` says.
        fn relocate(&mut self, how: Move, path: &Path) {
            if !self.exists {
                return;
            }
            let to = match how {
                Move::Stay => return,
                Move::Rename => path.with_extension(format!("log.{}", self.rotated + 1)),
                Move::Away => path.with_file_name("old").join(format!("app.log.{}", self.rotated + 1)),
            };
            self.rotated += 1;
            fs::rename(path, to).unwrap();
            File::create(path).unwrap();
            // Every line stays in the rotated file, which the restart finds.
            self.unsynced.clear();
            self.partial = None;
            self.generation += 1;
        }

        /// Lines that must have arrived by now.
        fn due(&self) -> HashSet<String> {
            self.written
                .iter()
                .filter(|l| !self.at_risk.contains(*l) && !self.unterminated.contains(*l))
                .cloned()
                .collect()
        }
    }

    fn cases() -> u32 {
        std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12)
    }

    /// Waits until every line due was seen, by this run or an `earlier` one.
    fn caught_up(run: &Running, model: &Model, earlier: &[String]) {
        let mut due = model.due();
        for line in earlier {
            due.remove(line);
        }
        run.wait_for("the tail to catch up", |seen| {
            let got: HashSet<&str> = seen.iter().map(|s| s.text.as_str()).collect();
            due.iter().all(|l| got.contains(l.as_str()))
        });
    }

    /// Runs `actions` against a tail and checks what it delivered.
    fn check(actions: &[Action], polling: bool, slow_saves: bool) -> Result<(), TestCaseError> {
        let _one = exclusive();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        fs::create_dir(dir.path().join("old")).unwrap();
        let mut model = Model::default();
        let mut s = settings(&[&dir.path().join("app.log*")]);
        // A copy waits this long for its original's truncation.
        s.rotate_wait_ms = 3000;
        s.checkpoint_dir = Some(dir.path().join("state"));
        s.rotated_paths = vec![format!("{}/old/*", dir.path().display())];
        // Slow: a crash mostly comes before the first periodic save, so
        // only the saves made when files are found count. (Not slower: the
        // same tick ends the wait of a file that only may be a copy.)
        s.checkpoint_interval_ms = if slow_saves { 2000 } else { 50 };
        let start = |s: &TailSettings| follow_with(s.clone(), !polling, |t| t);
        let mut run = start(&s);
        let mut seen = Vec::new();
        for action in actions {
            model.apply(action, &path);
            match action {
                Action::Pause => {
                    caught_up(&run, &model, &seen);
                    model.unsynced.clear();
                }
                Action::Restart(how) | Action::Crash(how) => {
                    caught_up(&run, &model, &seen);
                    model.unsynced.clear();
                    let stopped = if let Action::Crash(_) = action {
                        model.may_repeat.extend(model.written.iter().cloned());
                        run.crash()
                    } else {
                        // Time to see what the last actions did (a copy).
                        std::thread::sleep(Duration::from_millis(150));
                        run.stop()
                    };
                    seen.extend(texts(&stopped));
                    model.relocate(*how, &path);
                    run = start(&s);
                }
                _ => {}
            }
        }
        caught_up(&run, &model, &seen);
        std::thread::sleep(Duration::from_millis(30));
        seen.extend(texts(&run.stop()));
        let mut once = HashSet::new();
        for line in &seen {
            prop_assert!(
                once.insert(line.clone()) || model.may_repeat.contains(line),
                "{line} arrived twice"
            );
        }
        let written: HashSet<String> = model.written.iter().cloned().collect();
        for line in &seen {
            prop_assert!(written.contains(line), "{line} was never written");
        }
        for line in model.due() {
            prop_assert!(once.contains(&line), "{line} was lost");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(Config { cases: cases(), failure_persistence: None, ..Config::default() })]

        #[test]
        fn no_line_is_lost_or_invented_whatever_happens_to_the_file(
            actions in proptest::collection::vec(action(), 1..14),
            polling in proptest::bool::weighted(0.25),
            slow_saves in proptest::bool::ANY,
        ) {
            check(&actions, polling, slow_saves)?;
        }
    }
}
