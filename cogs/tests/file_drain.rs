//! The file and stdout drains, writing real files and pipes from a real escapement.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tourbillon::{Cog, Context, Escapement, Event, EventId, Exit, Finish, Fired, Next, Role, Train};
use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
use tourbillon_cogs::drain::stdout::{StdoutDrain, StdoutSettings};

#[path = "../../tests/common/mod.rs"]
mod common;
use common::exclusive;

fn quiet() -> Escapement {
    let mut esc = Escapement::builder()
        .graceful_signals(false)
        .finish_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    watchdog(&mut esc);
    esc
}

/// Ends a test that would otherwise hang.
fn watchdog(esc: &mut Escapement) {
    esc.core()
        .after(Duration::from_secs(20), |core| {
            eprintln!("watchdog fired");
            core.finish()
        })
        .unwrap();
}

type Shared<T> = Arc<Mutex<Vec<T>>>;

/// Emits its batches of lines on successive turns (`pause` apart), with
/// fresh ids; exhausted after the last unless `endless`. On every
/// `event_done` it notes whether the line of that id was in `check` (a
/// file) at that moment.
struct Supply {
    batches: std::vec::IntoIter<Vec<String>>,
    pause: Duration,
    endless: bool,
    sent: Shared<(EventId, String)>,
    done: Shared<(EventId, bool)>,
    check: Option<PathBuf>,
}

impl Supply {
    fn new(batches: Vec<Vec<String>>, check: Option<&Path>) -> Supply {
        Supply {
            batches: batches.into_iter(),
            pause: Duration::ZERO,
            endless: false,
            sent: Shared::default(),
            done: Shared::default(),
            check: check.map(Path::to_path_buf),
        }
    }
}

impl Cog<Event> for Supply {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        ctx.enqueue(0).unwrap();
    }
    fn fire<N: Next<Event> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, Event, N>) {
        if let Some(batch) = self.batches.next() {
            for line in batch {
                let id = ctx.next_event_id();
                self.sent.lock().unwrap().push((id, line.clone()));
                ctx.emit(Event::from_raw(id, line.into_bytes(), None, 0));
            }
        }
        if self.batches.len() > 0 {
            ctx.after(self.pause, 0).unwrap();
        } else if !self.endless {
            ctx.exhausted();
        }
    }
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn event_done<N: Next<Event> + ?Sized>(&mut self, id: EventId, _: &mut Context<'_, Event, N>) {
        let written = match &self.check {
            Some(path) => {
                let line = self
                    .sent
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(i, _)| *i == id)
                    .unwrap()
                    .1
                    .clone();
                let content = std::fs::read_to_string(path).unwrap_or_default();
                content.lines().any(|l| l == line)
            }
            None => true,
        };
        self.done.lock().unwrap().push((id, written));
    }
}

/// Passes data on; notes the file's content when it gets `finish`.
struct Probe {
    path: PathBuf,
    at_finish: Shared<String>,
}

impl Cog<Event> for Probe {
    fn process<N: Next<Event> + ?Sized>(&mut self, e: Event, ctx: &mut Context<'_, Event, N>) {
        ctx.emit(e)
    }
    fn finish<N: Next<Event> + ?Sized>(&mut self, _: &mut Context<'_, Event, N>) -> Finish {
        let content = std::fs::read_to_string(&self.path).unwrap_or_default();
        self.at_finish.lock().unwrap().push(content);
        Finish::Done
    }
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}-{i}")).collect()
}

fn file_settings(path: &Path) -> FileDrainSettings {
    FileDrainSettings {
        path: path.to_path_buf(),
        ..FileDrainSettings::default()
    }
}

fn read(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every line sent, in order.
fn sent_lines(supply: &Shared<(EventId, String)>) -> Vec<String> {
    supply.lock().unwrap().iter().map(|(_, l)| l.clone()).collect()
}

/// Every id sent was reported done once, and its line was in the file then.
fn assert_done_after_written(sent: &Shared<(EventId, String)>, done: &Shared<(EventId, bool)>) {
    let mut sent: Vec<EventId> = sent.lock().unwrap().iter().map(|(id, _)| *id).collect();
    let done = done.lock().unwrap().clone();
    assert!(
        done.iter().all(|(_, written)| *written),
        "reported done before written: {done:?}"
    );
    let mut ids: Vec<EventId> = done.iter().map(|(id, _)| *id).collect();
    sent.sort();
    ids.sort();
    assert_eq!(ids, sent, "each datum reported done exactly once");
}

// ---- file drain ------------------------------------------------------------

#[test]
fn file_drain_writes_every_line_and_reports_done_only_after_writing() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    // A small buffer: some writes because it is full, some at a burst's end.
    let settings = FileDrainSettings {
        buffer_bytes: 40,
        ..file_settings(&path)
    };
    let supply = Supply::new(vec![numbered("a", 25), numbered("b", 1), numbered("c", 7)], Some(&path));
    let (sent, done) = (supply.sent.clone(), supply.done.clone());
    let mut esc = quiet();
    esc.add_train(
        Train::new("file")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(FileDrain::new(settings).unwrap()),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(read(&path), sent_lines(&sent));
    assert_done_after_written(&sent, &done);
}

#[test]
fn file_drain_flushes_what_is_still_buffered_at_finish() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let supply = Supply::new(vec![numbered("line", 5)], Some(&path));
    let (sent, done) = (supply.sent.clone(), supply.done.clone());
    let at_finish = Shared::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("finish")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(Probe {
                path: path.clone(),
                at_finish: Arc::clone(&at_finish),
            })
            .cog(
                FileDrain::new(FileDrainSettings {
                    fsync: true,
                    ..file_settings(&path)
                })
                .unwrap(),
            ),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    // The supply was exhausted in the turn it emitted: the data were still
    // buffered when the finish began (the probe saw an empty file).
    assert_eq!(*at_finish.lock().unwrap(), [String::new()]);
    assert_eq!(read(&path), numbered("line", 5));
    assert_done_after_written(&sent, &done);
}

#[test]
fn file_drain_reopens_its_path_on_sighup_after_rotation() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let mut supply = Supply::new(vec![numbered("before", 3), numbered("after", 3)], None);
    supply.pause = Duration::from_millis(400);
    let done = supply.done.clone();
    let mut esc = Escapement::builder()
        .finish_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    watchdog(&mut esc);
    esc.add_train(
        Train::new("rotate")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(FileDrain::new(file_settings(&path)).unwrap()),
    );
    let (from, to) = (path.clone(), rotated.clone());
    esc.core()
        .after(Duration::from_millis(150), move |_| {
            // What logrotate does: rename, then signal.
            std::fs::rename(&from, &to).unwrap();
            // SAFETY: kill with our own pid and a signal the drain catches.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
        })
        .unwrap();
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert_eq!(
        read(&rotated),
        numbered("before", 3),
        "the old file has the lines before"
    );
    assert_eq!(read(&path), numbered("after", 3), "the new file the lines after");
    assert_eq!(done.lock().unwrap().len(), 6);
}

#[test]
fn file_drain_starts_a_new_line_after_a_fragment_another_writer_left_when_it_reopens() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.log");
    let mut supply = Supply::new(vec![numbered("before", 3), numbered("after", 3)], None);
    supply.pause = Duration::from_millis(400);
    let done = supply.done.clone();
    let mut esc = Escapement::builder()
        .finish_deadline(Duration::from_secs(10))
        .build()
        .unwrap();
    watchdog(&mut esc);
    let drain = FileDrain::new(file_settings(&path)).unwrap();
    let stats = drain.stats();
    esc.add_train(Train::new("shared").ids(Event::id_getter()).cog(supply).cog(drain));
    let p = path.clone();
    esc.core()
        .after(Duration::from_millis(150), move |_| {
            // Another writer's unfinished line, then a reopen.
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(b"foreign, unfinished").unwrap();
            // SAFETY: kill with our own pid and a signal the drain catches.
            assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
        })
        .unwrap();
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let mut want = numbered("before", 3);
    want.push("foreign, unfinished".into());
    want.extend(numbered("after", 3));
    assert_eq!(read(&path), want, "the fragment is kept, on a line of its own");
    assert_eq!(stats.fragments.get(), 1);
    assert_eq!(stats.lines.get(), 6);
    assert_eq!(done.lock().unwrap().len(), 6);
}

#[test]
fn file_drain_follows_a_rotation_without_sighup_and_writes_nothing_twice() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let batches = vec![numbered("a", 3), numbered("b", 3), numbered("c", 3), numbered("d", 3)];
    let mut supply = Supply::new(batches, None);
    supply.pause = Duration::from_millis(300);
    let done = supply.done.clone();
    let mut esc = quiet();
    let drain = FileDrain::new(file_settings(&path)).unwrap();
    let stats = drain.stats();
    esc.add_train(Train::new("rotate").ids(Event::id_getter()).cog(supply).cog(drain));
    let (from, to) = (path.clone(), rotated.clone());
    esc.core()
        .after(Duration::from_millis(150), move |_| {
            std::fs::rename(&from, &to).unwrap()
        })
        .unwrap();
    let p = path.clone();
    esc.core()
        .after(Duration::from_millis(450), move |_| {
            std::fs::File::create(&p).unwrap();
        })
        .unwrap();
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    // Moved away, the file is written on; the flush that finds a new file
    // at the path (c) leaves its lines in the old one, the next goes to it.
    let old: Vec<String> = ["a", "b", "c"].iter().flat_map(|p| numbered(p, 3)).collect();
    assert_eq!(read(&rotated), old);
    assert_eq!(read(&path), numbered("d", 3));
    assert_eq!((stats.deleted.get(), stats.lines.get()), (0, 12));
    assert_eq!(done.lock().unwrap().len(), 12);
}

#[test]
fn file_drain_holds_data_while_the_file_cannot_be_opened_and_writes_them_on_retry() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let later = dir.path().join("later");
    let path = later.join("out.log");
    let supply = Supply::new(vec![numbered("held", 4)], Some(&path));
    let (sent, done) = (supply.sent.clone(), supply.done.clone());
    let mut esc = quiet();
    esc.add_train(
        Train::new("retry").ids(Event::id_getter()).cog(supply).cog(
            FileDrain::new(FileDrainSettings {
                retry_interval_ms: 20,
                ..file_settings(&path)
            })
            .unwrap(),
        ),
    );
    let created = Arc::new(Mutex::new(None));
    let mark = Arc::clone(&created);
    esc.core()
        .after(Duration::from_millis(200), move |_| {
            std::fs::create_dir(&later).unwrap();
            *mark.lock().unwrap() = Some(Instant::now());
        })
        .unwrap();
    assert_eq!(esc.run().unwrap(), Exit::Clean, "finish waited for the retry");
    assert!(created.lock().unwrap().is_some());
    assert_eq!(read(&path), numbered("held", 4));
    assert_done_after_written(&sent, &done);
}

#[test]
fn file_drain_creates_missing_directories_when_asked() {
    let _g = exclusive();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/out.log");
    let mut esc = quiet();
    esc.add_train(
        Train::new("dirs")
            .ids(Event::id_getter())
            .cog(Supply::new(vec![numbered("x", 2)], None))
            .cog(
                FileDrain::new(FileDrainSettings {
                    create_dirs: true,
                    ..file_settings(&path)
                })
                .unwrap(),
            ),
    );
    esc.run().unwrap();
    assert_eq!(read(&path), numbered("x", 2));
}

#[test]
fn file_drain_settings_are_checked_and_described() {
    let err = FileDrain::new(FileDrainSettings::default()).err().unwrap();
    assert!(err.to_string().starts_with("path: required"), "{err}");
    let s: FileDrainSettings = serde_json::from_str(r#"{"path": "/tmp/x.log", "fsync": true}"#).unwrap();
    assert_eq!((s.buffer_bytes, s.fsync), (65536, true));
    assert!(serde_json::from_str::<FileDrainSettings>(r#"{"path": "/x", "sync": true}"#).is_err());
    let train = Train::<Event>::new("t").cog(FileDrain::new(s).unwrap());
    let cog = &train.cogs()[0];
    assert_eq!(cog.role, Role::Drain);
    assert_eq!(
        cog.text,
        "file path=/tmp/x.log source=raw buffer_bytes=65536 fsync=true create_dirs=false retry_interval_ms=1000"
    );
}

// ---- stdout drain ----------------------------------------------------------

/// A writer that records every `write` call.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn stdout_drain_writes_a_burst_in_one_write_and_reports_it_done() {
    let _g = exclusive();
    let supply = Supply::new(vec![numbered("out", 50)], None);
    let (sent, done) = (supply.sent.clone(), supply.done.clone());
    let out = Recorder::default();
    let mut esc = quiet();
    esc.add_train(
        Train::new("stdout")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(StdoutDrain::new(StdoutSettings::default()).unwrap().writer(out.clone())),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    let writes = out.0.lock().unwrap();
    assert_eq!(writes.len(), 1, "one write for the whole burst");
    let text = String::from_utf8(writes.concat()).unwrap();
    assert_eq!(text.lines().collect::<Vec<_>>(), sent_lines(&sent));
    assert_eq!(done.lock().unwrap().len(), 50);
}

#[test]
fn stdout_drain_finishes_the_escapement_on_a_broken_pipe() {
    let _g = exclusive();
    let (ours, theirs) = UnixStream::pair().unwrap();
    drop(theirs);
    // Never exhausted: only the drain can end this run (or the watchdog).
    let mut supply = Supply::new(vec![numbered("lost", 3), numbered("more", 3)], None);
    supply.endless = true;
    supply.pause = Duration::from_millis(50);
    let done = supply.done.clone();
    let mut esc = quiet();
    esc.add_train(
        Train::new("epipe")
            .ids(Event::id_getter())
            .cog(supply)
            .cog(StdoutDrain::new(StdoutSettings::default()).unwrap().writer(ours)),
    );
    let started = Instant::now();
    assert_eq!(esc.run().unwrap(), Exit::Clean);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "finished by the drain, not the watchdog"
    );
    assert!(done.lock().unwrap().is_empty(), "nothing written, nothing done");
}

#[test]
fn stdout_drain_writes_to_a_pipe_reader() {
    let _g = exclusive();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut esc = quiet();
    esc.add_train(
        Train::new("pipe")
            .ids(Event::id_getter())
            .cog(Supply::new(vec![numbered("p", 3), numbered("q", 2)], None))
            .cog(StdoutDrain::new(StdoutSettings::default()).unwrap().writer(ours)),
    );
    esc.run().unwrap();
    drop(esc);
    let mut text = String::new();
    theirs.read_to_string(&mut text).unwrap();
    assert_eq!(text, "p-1\np-2\np-3\nq-1\nq-2\n");
}
