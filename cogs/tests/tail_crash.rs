//! `kill -9` and SIGTERM of a real child process, then a restart: every
//! line arrives at least once, whole, and the lines repeated are only those
//! written after the last saved position. With files found just before the
//! kill, files rotated (by rename, into the directory behind a symlink as
//! the kubelet does) while the child is down, and kills in a loop while a
//! writer writes and rotates.
//!
//! Its own binary without the test harness: the child process is this
//! binary again, run with `TAIL_CRASH_CHILD` set; it runs a tail with the
//! settings given (JSON) into a file drain, until its end (batch) or
//! SIGTERM. `TAIL_CRASH_LINES` sets the size of the long run (default
//! 1,000,000 lines).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tourbillon::{Escapement, Event, Exit, Train};
use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
use tourbillon_cogs::supply::tail::{saved_positions, Tail, TailSettings};

const CHECKPOINT_MS: u64 = 50;

/// In the child: a tail with `settings` (JSON) into the file `output`.
fn child(settings: &str, output: &str) {
    let settings: TailSettings = serde_json::from_str(settings).unwrap();
    let out = FileDrainSettings {
        path: output.into(),
        ..FileDrainSettings::default()
    };
    let mut esc = Escapement::new().unwrap();
    esc.add_train(
        Train::new("crash")
            .ids(Event::id_getter())
            .cog(Tail::new(settings).unwrap())
            .cog(FileDrain::new(out).unwrap()),
    );
    assert_eq!(esc.run().unwrap(), Exit::Clean);
}

/// A child process, killed and reaped when dropped (a test that fails
/// early leaves none behind).
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs a tail with `settings` into `output` in a child process.
fn spawn_tail(settings: &TailSettings, output: &Path) -> Proc {
    Proc(
        Command::new(std::env::current_exe().unwrap())
            .env("TAIL_CRASH_CHILD", "1")
            .arg(serde_json::to_string(settings).unwrap())
            .arg(output)
            .spawn()
            .unwrap(),
    )
}

/// A batch tail of `input` into `output`, positions in `state`.
fn spawn(input: &Path, output: &Path, state: &Path) -> Proc {
    let settings = TailSettings {
        include: vec![input.display().to_string()],
        batch: true,
        checkpoint_dir: Some(state.into()),
        checkpoint_interval_ms: CHECKPOINT_MS,
        ..TailSettings::default()
    };
    spawn_tail(&settings, output)
}

fn line(i: usize) -> String {
    format!("{i:07} the quick brown fox jumps over the dog")
}

fn kill_9_during_a_long_run_then_a_restart_loses_no_line() -> Result<(), String> {
    let n: usize = std::env::var("TAIL_CRASH_LINES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (input, output, state) = (
        dir.path().join("in.log"),
        dir.path().join("out.log"),
        dir.path().join("state"),
    );
    let mut text = String::with_capacity(n * 48);
    for i in 0..n {
        text.push_str(&line(i));
        text.push('\n');
    }
    fs::File::create(&input)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    let size = text.len() as u64;

    let started = Instant::now();
    let mut first = spawn(&input, &output, &state);
    // Killed once about 40% is through, whatever the build's speed.
    loop {
        let written = fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
        if written >= size * 2 / 5 {
            break;
        }
        if let Ok(Some(status)) = first.try_wait() {
            return Err(format!(
                "the child ended ({status}) before it could be killed: raise TAIL_CRASH_LINES"
            ));
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = first.kill();
            return Err("the child wrote too little in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    first.kill().map_err(|e| e.to_string())?; // SIGKILL
    first.wait().map_err(|e| e.to_string())?;
    let killed_at = started.elapsed();
    let out = fs::read(&output).map_err(|e| e.to_string())?;
    let written = out.iter().filter(|&&b| b == b'\n').count();
    let positions = saved_positions(&state).map_err(|e| e.to_string())?;
    let saved = positions.first().map_or(0, |p| p.line) as usize;

    let status = spawn(&input, &output, &state).wait().map_err(|e| e.to_string())?;
    check(status.success(), format!("the restarted child failed: {status}"))?;

    let out = fs::read_to_string(&output).map_err(|e| e.to_string())?;
    let mut count = vec![0u32; n];
    let mut torn = 0;
    for l in out.lines() {
        match l.get(..7).and_then(|k| k.parse::<usize>().ok()) {
            Some(i) if i < n && l == line(i) => count[i] += 1,
            _ => torn += 1,
        }
    }
    let missing = count.iter().filter(|&&c| c == 0).count();
    let duplicates: u32 = count.iter().map(|&c| c.saturating_sub(1)).sum();
    println!(
        "kill -9 after {killed_at:.2?}: {written} of {n} lines written, checkpoint at line {saved}; after the \
         restart: {missing} missing, {duplicates} duplicates (bound: {} written after the checkpoint), {torn} torn",
        written - saved.min(written)
    );
    check(missing == 0, format!("{missing} lines lost"))?;
    check(saved > 0, "no position was saved before the kill".into())?;
    check(
        duplicates as usize <= written.saturating_sub(saved),
        format!("{duplicates} duplicates, more than the {written} - {saved} lines written after the checkpoint"),
    )?;
    // A write cut by the kill leaves at most one partial line.
    check(torn <= 1, format!("{torn} torn lines"))
}

fn check(ok: bool, why: String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why)
    }
}

fn main() {
    if std::env::var_os("TAIL_CRASH_CHILD").is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        return child(&args[0], &args[1]);
    }
    type Test = fn() -> Result<(), String>;
    let tests: [(&str, Test); 6] = [
        (
            "kill_9_during_a_long_run_then_a_restart_loses_no_line",
            kill_9_during_a_long_run_then_a_restart_loses_no_line,
        ),
        (
            "kill_9_right_after_a_new_file_was_found_then_its_rotation_while_down_loses_no_line",
            kill_9_right_after_a_new_file_was_found_then_its_rotation_while_down_loses_no_line,
        ),
        (
            "sigterm_in_a_backlog_tears_no_line_and_the_restart_loses_none",
            sigterm_in_a_backlog_tears_no_line_and_the_restart_loses_none,
        ),
        (
            "twenty_kill_9s_while_writing_and_rotating_by_rename_lose_no_line",
            || kill_loop(Layout::Plain),
        ),
        ("twenty_kill_9s_on_the_kubernetes_layout_lose_no_line", || {
            kill_loop(Layout::Kubernetes)
        }),
        (
            "twenty_kill_9s_with_logrotate_olddir_and_rotated_paths_lose_no_line",
            || kill_loop(Layout::Olddir),
        ),
    ];
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        match test() {
            Ok(()) => println!("test {name} ... ok ({:.1?})", started.elapsed()),
            Err(why) => {
                println!("test {name} ... FAILED: {why}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        std::process::exit(1);
    }
}

// ---- helpers for the tests below ---------------------------------------------

fn sigterm(child: &Child) -> Result<(), String> {
    // SAFETY: kill(2) on the pid of a child this process started and has
    // not reaped yet.
    if unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) } != 0 {
        return Err(format!("kill -TERM: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Waits until `ok`, at most `secs`.
fn wait(what: &str, secs: u64, mut ok: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !ok() {
        if start.elapsed() > Duration::from_secs(secs) {
            return Err(format!("timed out after {secs} s waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Numbered lines as the writers below write them.
fn numbered(i: u64) -> String {
    format!("{i:09} lorem ipsum dolor sit amet")
}

/// What the output holds: how often each numbered line, and the lines that
/// are none (torn, merged).
#[derive(Debug, Default)]
struct Tally {
    count: HashMap<u64, u32>,
    torn: Vec<String>,
}

impl Tally {
    fn of(output: &Path) -> Tally {
        let text = fs::read(output).unwrap_or_default();
        let mut tally = Tally::default();
        for l in String::from_utf8_lossy(&text).lines() {
            match l.get(..9).and_then(|k| k.parse::<u64>().ok()) {
                Some(i) if l == numbered(i) => *tally.count.entry(i).or_default() += 1,
                _ => tally.torn.push(l.to_owned()),
            }
        }
        tally
    }

    fn missing(&self, n: u64) -> Vec<u64> {
        (0..n).filter(|i| !self.count.contains_key(i)).collect()
    }

    fn duplicates(&self) -> u32 {
        self.count.values().map(|&c| c - 1).sum()
    }
}

fn write_lines(path: &Path, range: std::ops::Range<u64>) {
    let mut f = fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut text = String::new();
    for i in range {
        text.push_str(&numbered(i));
        text.push('\n');
    }
    f.write_all(text.as_bytes()).unwrap();
}

// ---- a file found just before the kill -----------------------------------------

fn kill_9_right_after_a_new_file_was_found_then_its_rotation_while_down_loses_no_line() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (path, output) = (dir.path().join("app.log"), dir.path().join("out.log"));
    let settings = TailSettings {
        include: vec![path.display().to_string()],
        checkpoint_dir: Some(dir.path().join("state")),
        // No periodic save comes before the kill.
        checkpoint_interval_ms: 3_600_000,
        ..TailSettings::default()
    };
    let mut first = spawn_tail(&settings, &output);
    wait("the child to open its checkpoint", 10, || {
        dir.path().join("state/lock").exists()
    })?;
    std::thread::sleep(Duration::from_millis(100));
    write_lines(&path, 0..1000);
    wait("the first lines of the new file", 10, || size(&output) > 0)?;
    first.kill().map_err(|e| e.to_string())?; // SIGKILL
    first.wait().map_err(|e| e.to_string())?;
    let before = Tally::of(&output).count.len();
    // While it is down: more lines, then a rotation by rename.
    write_lines(&path, 1000..1500);
    fs::rename(&path, dir.path().join("app.log.1")).map_err(|e| e.to_string())?;
    write_lines(&path, 1500..1700);
    let mut second = spawn_tail(&settings, &output);
    let done = wait("every line after the restart", 15, || {
        Tally::of(&output).missing(1700).is_empty()
    });
    sigterm(&second)?;
    second.wait().map_err(|e| e.to_string())?;
    let tally = Tally::of(&output);
    println!(
        "  {before} lines out before the kill; after the restart: {} missing, {} duplicates, {} torn",
        tally.missing(1700).len(),
        tally.duplicates(),
        tally.torn.len()
    );
    done.map_err(|e| {
        format!(
            "{e}: missing {:?}",
            &tally.missing(1700)[..5.min(tally.missing(1700).len())]
        )
    })?;
    check(tally.torn.is_empty(), format!("torn lines: {:?}", tally.torn))
}

// ---- SIGTERM in a backlog ------------------------------------------------------

fn sigterm_in_a_backlog_tears_no_line_and_the_restart_loses_none() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (path, output) = (dir.path().join("app.log"), dir.path().join("out.log"));
    let n = 200_000;
    write_lines(&path, 0..n);
    let total = size(&path);
    let mut settings = TailSettings {
        include: vec![path.display().to_string()],
        checkpoint_dir: Some(dir.path().join("state")),
        // Lines are 37 bytes: nearly every turn ends inside one.
        read_bytes_per_turn: 1000,
        ..TailSettings::default()
    };
    let mut stopped = 0;
    // Stopped three times in the middle of the backlog.
    for _ in 0..3 {
        let mut child = spawn_tail(&settings, &output);
        let from = size(&output);
        wait("the child to read on", 20, || size(&output) > from + total / 10)?;
        sigterm(&child)?;
        let status = child.wait().map_err(|e| e.to_string())?;
        check(status.success(), format!("the child ended with {status} on SIGTERM"))?;
        stopped += 1;
        let torn = Tally::of(&output).torn;
        check(
            torn.is_empty(),
            format!("after SIGTERM {stopped}, torn lines: {:?}", &torn[..torn.len().min(3)]),
        )?;
    }
    settings.batch = true;
    let status = spawn_tail(&settings, &output).wait().map_err(|e| e.to_string())?;
    check(status.success(), format!("the last child failed: {status}"))?;
    let tally = Tally::of(&output);
    let missing = tally.missing(n);
    println!(
        "  {stopped} SIGTERMs in the backlog: {} lines out, {} missing, {} duplicates, {} torn",
        tally.count.values().sum::<u32>(),
        missing.len(),
        tally.duplicates(),
        tally.torn.len()
    );
    check(tally.torn.is_empty(), format!("torn lines: {:?}", tally.torn))?;
    check(missing.is_empty(), format!("{} lines lost", missing.len()))?;
    check(tally.duplicates() == 0, "a graceful stop repeats nothing".into())
}

// ---- kill loops ------------------------------------------------------------------

/// Where the writer writes, and how it rotates.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// `app.log`, renamed to `app.log.N`; the pattern names `app.log` only.
    Plain,
    /// `containers/app.log` a symlink to `../pods/p/0.log`, renamed to
    /// `0.log.N` beside it (the kubelet); the pattern is `containers/*.log`.
    Kubernetes,
    /// `app.log`, moved to `old/app.log.N` (logrotate's `olddir`), found
    /// through `rotated_paths`.
    Olddir,
}

/// Writes numbered lines to a file and rotates it on demand.
struct Writer {
    file: fs::File,
    path: PathBuf,
    next: u64,
    rotations: u32,
    layout: Layout,
}

impl Writer {
    fn rotate(&mut self) {
        self.rotations += 1;
        let to = match self.layout {
            Layout::Plain => self.path.with_file_name(format!("app.log.{}", self.rotations)),
            Layout::Kubernetes => self.path.with_file_name(format!("0.log.{}", self.rotations)),
            Layout::Olddir => self.path.with_file_name(format!("old/app.log.{}", self.rotations)),
        };
        fs::rename(&self.path, to).unwrap();
        self.file = fs::File::create(&self.path).unwrap();
    }

    fn write(&mut self, lines: u64) {
        let mut text = String::new();
        for _ in 0..lines {
            text.push_str(&numbered(self.next));
            text.push('\n');
            self.next += 1;
        }
        self.file.write_all(text.as_bytes()).unwrap();
    }
}

/// 20 rounds of: start the child, let it read, rotate while it runs,
/// `kill -9` it, rotate while it is down; a writer writes all along. Then
/// a last child runs until every line is out.
fn kill_loop(layout: Layout) -> Result<(), String> {
    const KILLS: usize = 20;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let output = dir.path().join("out.log");
    let mut settings = TailSettings {
        checkpoint_dir: Some(dir.path().join("state")),
        // The default: a kill loses up to a second of saves.
        checkpoint_interval_ms: 1000,
        ..TailSettings::default()
    };
    let written = match layout {
        Layout::Plain => {
            let path = dir.path().join("app.log");
            settings.include = vec![path.display().to_string()];
            path
        }
        Layout::Kubernetes => {
            let (containers, pod) = (dir.path().join("containers"), dir.path().join("pods/p"));
            fs::create_dir_all(&containers).map_err(|e| e.to_string())?;
            fs::create_dir_all(&pod).map_err(|e| e.to_string())?;
            std::os::unix::fs::symlink("../pods/p/0.log", containers.join("app.log")).map_err(|e| e.to_string())?;
            settings.include = vec![format!("{}/*.log", containers.display())];
            pod.join("0.log")
        }
        Layout::Olddir => {
            let path = dir.path().join("app.log");
            fs::create_dir(dir.path().join("old")).map_err(|e| e.to_string())?;
            settings.include = vec![path.display().to_string()];
            settings.rotated_paths = vec![format!("{}/old/app.log.*", dir.path().display())];
            path
        }
    };
    let writer = Arc::new(Mutex::new(Writer {
        file: fs::File::create(&written).map_err(|e| e.to_string())?,
        path: written,
        next: 0,
        rotations: 0,
        layout,
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let writing = {
        let (writer, stop) = (Arc::clone(&writer), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                writer.lock().unwrap().write(10);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let rotate = || writer.lock().unwrap().rotate();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random_ms = |from: u64, to: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        Duration::from_millis(from + seed % (to - from))
    };
    let started = Instant::now();
    for round in 0..KILLS {
        let from = size(&output);
        let mut child = spawn_tail(&settings, &output);
        wait(&format!("the child of round {round} to deliver"), 10, || {
            size(&output) > from
        })?;
        std::thread::sleep(random_ms(20, 150));
        rotate();
        std::thread::sleep(random_ms(30, 200));
        child.kill().map_err(|e| e.to_string())?; // SIGKILL
        child.wait().map_err(|e| e.to_string())?;
        rotate();
        std::thread::sleep(random_ms(5, 50));
    }
    stop.store(true, Ordering::Relaxed);
    writing.join().map_err(|_| "the writer panicked".to_owned())?;
    let n = writer.lock().unwrap().next;
    let mut last = spawn_tail(&settings, &output);
    let done = wait("every line from the last child", 20, || {
        Tally::of(&output).missing(n).is_empty()
    });
    sigterm(&last)?;
    last.wait().map_err(|e| e.to_string())?;
    let tally = Tally::of(&output);
    let missing = tally.missing(n);
    println!(
        "  {layout:?}: {KILLS} kill -9s and {} rotations in {:.1?}: {n} lines written, {} missing, {} duplicates, {} \
         torn",
        writer.lock().unwrap().rotations,
        started.elapsed(),
        missing.len(),
        tally.duplicates(),
        tally.torn.len()
    );
    done.map_err(|e| {
        format!(
            "{e}: {} lines lost, the first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        )
    })?;
    // A kill can cut the drain's last write: at most one fragment each.
    check(
        tally.torn.len() <= KILLS,
        format!("{} torn lines: {:?}", tally.torn.len(), tally.torn),
    )
}
