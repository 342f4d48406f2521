//! The file drain and the `listen` supply when the system says no, with the
//! real `tourbillon` binary: an output file that ends in the middle of a
//! line, a full disk (a real tmpfs, when root) with and without a `kill -9`,
//! the output deleted while a writer runs at full speed, an output that
//! cannot be opened at all, and `listen` at its descriptor limit.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::wait_for;

/// The binary, run in `dir`, its log (stderr) appended to `dir/log`.
fn tourbillon(dir: &Path, args: &[&str]) -> Command {
    let mut c = common::tourbillon(dir, args);
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("log"))
        .unwrap();
    c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    c
}

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Reap {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to the child this test started.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }

    /// SIGTERM, then the exit status and how long the exit took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let t = Instant::now();
        self.signal(libc::SIGTERM);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return (status, t.elapsed());
            }
            assert!(t.elapsed() < Duration::from_secs(30), "no exit 30 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn log_of(dir: &Path) -> String {
    read(&dir.join("log"))
}

/// A train from a tail of `input` (checkpointed in `dir/state`) to a file
/// drain at `output`, with `drain` added to the drain's settings.
fn tail_to_file(dir: &Path, input: &Path, output: &Path, drain: &str) -> PathBuf {
    let config = dir.join("run.toml");
    fs::write(
        &config,
        format!(
            "[trains.main]\ncogs = [\n  {{ kind = \"tail\", include = [{input:?}], checkpoint_dir = {state:?}, \
             checkpoint_interval_ms = 20 }},\n  {{ kind = \"file\", path = {output:?}, retry_interval_ms = 50{drain} }},\n]\n",
            input = input.display().to_string(),
            state = dir.join("state").display().to_string(),
            output = output.display().to_string(),
        ),
    )
    .unwrap();
    config
}

fn line(i: usize) -> String {
    format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(40))
}

fn lines(n: usize) -> String {
    (0..n).map(|i| line(i) + "\n").collect()
}

/// The output's lines that are not whole input lines, and how many times
/// each input line is there; panics if the output does not end with a newline.
fn audit(output: &str, n: usize) -> (Vec<String>, Vec<usize>) {
    assert!(
        output.is_empty() || output.ends_with('\n'),
        "the output ends in the middle of a line: …{:?}",
        &output[output.len().saturating_sub(80)..]
    );
    let index: HashMap<String, usize> = (0..n).map(|i| (line(i), i)).collect();
    let mut seen = vec![0; n];
    let mut torn = Vec::new();
    for l in output.lines() {
        match index.get(l) {
            Some(&i) => seen[i] += 1,
            None => torn.push(l.to_owned()),
        }
    }
    (torn, seen)
}

// ---- a fragment at the end of the output ------------------------------------

#[test]
fn an_output_ending_in_the_middle_of_a_line_gets_a_new_line_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), d.join("out.log"));
    fs::write(&input, lines(3)).unwrap();
    // What a crash in the middle of a write leaves.
    fs::write(&output, "{\"old\":1}\n{\"old\":2,\"cut").unwrap();
    let config = tail_to_file(d, &input, &output, "");
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    wait_for("the three lines", 20, || read(&output).ends_with(&(line(2) + "\n")));
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}: {}", log_of(d));
    assert_eq!(
        read(&output),
        format!("{{\"old\":1}}\n{{\"old\":2,\"cut\n{}", lines(3)),
        "the fragment is kept whole on a line of its own; nothing is appended to it"
    );
    let log = log_of(d);
    let warning = format!("{}: ends with 13 bytes of an unfinished line", output.display());
    assert!(log.contains(&warning), "the fragment is logged with its size: {log}");

    // A restart finds the file ending with a whole line: nothing to say.
    fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(b"{\"more\":1}\n")
        .unwrap();
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    wait_for("the new line", 20, || read(&output).ends_with("{\"more\":1}\n"));
    let (status, _) = child.terminate();
    assert!(status.success());
    assert_eq!(log_of(d).matches("unfinished line").count(), 1, "{}", log_of(d));
}

// ---- a full disk ------------------------------------------------------------

/// A tmpfs of `bytes` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// The mount, or why there is none (the test is then skipped).
    fn mount(bytes: u64) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root: cannot mount a tmpfs to fill".into());
        }
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// A tmpfs of 2 MiB with a filler file of 1.5 MiB and a bit: room for
/// less than half of the 1.1 MB of input that [`DISK_LINES`] lines make,
/// and a room that the drain's 64 KiB writes do not fill exactly, so that
/// the last one is cut short in the middle of a line.
const DISK: u64 = 2 << 20;
const FILLER: usize = (1536 + 20) << 10;
const DISK_LINES: usize = 20_000;

fn full_disk() -> Option<Tmpfs> {
    match Tmpfs::mount(DISK) {
        Ok(t) => {
            fs::write(t.path().join("filler"), vec![b'f'; FILLER]).unwrap();
            Some(t)
        }
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

#[test]
fn a_full_disk_then_kill_9_then_a_restart_leaves_whole_lines_only_and_loses_none() {
    let Some(disk) = full_disk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), disk.path().join("out.log"));
    fs::write(&input, lines(DISK_LINES)).unwrap();
    let config = tail_to_file(d, &input, &output, "");
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    wait_for("ENOSPC in the log", 20, || log_of(d).contains("No space left"));
    // A few retries at the full disk, then a crash.
    std::thread::sleep(Duration::from_millis(300));
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let at_kill = read(&output);
    // The short write's partial line was cut back at once (unless the kill
    // fell into the microseconds between the two).
    assert!(
        at_kill.ends_with('\n'),
        "a torn line at the kill: …{:?}",
        &at_kill[at_kill.len() - 60..]
    );
    fs::remove_file(disk.path().join("filler")).unwrap();

    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    wait_for("every line after the restart", 20, || {
        let (_, seen) = audit(&read(&output), DISK_LINES);
        seen.iter().all(|&c| c > 0)
    });
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");
    let (torn, seen) = audit(&read(&output), DISK_LINES);
    let duplicates: usize = seen.iter().map(|c| c - 1).sum();
    let log = log_of(d);
    println!(
        "{} bytes written before kill -9 at the full disk; after the restart: {duplicates} duplicates, {} \
         torn",
        at_kill.len(),
        torn.len()
    );
    // A cut is logged; a partial line only if the kill hit between a short
    // write and its cut, and then it is on a line of its own, logged.
    let fragments = log.matches("of an unfinished line").count();
    assert!(torn.len() <= fragments, "torn lines {torn:?}; log:\n{log}");
    assert!(duplicates < DISK_LINES / 2, "{duplicates} duplicates");
}

#[test]
fn a_full_disk_then_space_freed_while_running_loses_nothing_and_tears_no_line() {
    let Some(disk) = full_disk() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), disk.path().join("out.log"));
    fs::write(&input, lines(DISK_LINES)).unwrap();
    let config = tail_to_file(d, &input, &output, "");
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    wait_for("ENOSPC in the log", 20, || log_of(d).contains("No space left"));
    std::thread::sleep(Duration::from_millis(300));
    let held = fs::metadata(&output).unwrap().len();
    assert!(held < 600 << 10, "{held} bytes: the disk was not full");
    fs::remove_file(disk.path().join("filler")).unwrap();
    let all = lines(DISK_LINES);
    wait_for("every line once space is back", 20, || read(&output).len() >= all.len());
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");
    let out = read(&output);
    let (torn, _) = audit(&out, DISK_LINES);
    assert_eq!(torn, Vec::<String>::new());
    assert!(
        out == all,
        "every line exactly once, in order ({} of {} bytes)",
        out.len(),
        all.len()
    );
    let log = log_of(d);
    assert!(log.contains("writing again, after failing"), "{log}");
    assert!(
        log.matches("No space left").count() <= 2,
        "failures are logged once per 10 s: {log}"
    );
}

// ---- the checkpoint's disk full ---------------------------------------------

#[test]
fn a_file_found_while_the_checkpoint_cannot_be_saved_waits_and_survives_a_crash_and_a_rotation() {
    let disk = match Tmpfs::mount(1 << 20) {
        Ok(t) => t,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let logs = d.join("logs");
    fs::create_dir(&logs).unwrap();
    let output = d.join("out.log");
    fs::write(logs.join("a.log"), "a-1\na-2\n").unwrap();
    let config = d.join("run.toml");
    fs::write(
        &config,
        format!(
            "[trains.main]\ncogs = [\n  {{ kind = \"tail\", include = [{pattern:?}], checkpoint_dir = {state:?}, \
             checkpoint_interval_ms = 50 }},\n  {{ kind = \"file\", path = {output:?} }},\n]\n",
            pattern = logs.join("*.log").display().to_string(),
            state = disk.path().join("state").display().to_string(),
            output = output.display().to_string(),
        ),
    )
    .unwrap();
    let run = || Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    let mut child = run();
    wait_for("a's lines", 20, || read(&output) == "a-1\na-2\n");
    // Fill the checkpoint's disk to the last byte.
    let mut filler = File::create(disk.path().join("filler")).unwrap();
    while filler.write_all(&[b'f'; 4096]).is_ok() {}
    while filler.write_all(b"f").is_ok() {}
    drop(filler);
    // The store's last page still has room: lines of a move its position
    // until a save needs a page the disk does not have.
    let mut a = fs::OpenOptions::new().append(true).open(logs.join("a.log")).unwrap();
    let mut k = 3;
    wait_for("the failed save in the log", 30, || {
        a.write_all(format!("a-{k}\n").as_bytes()).unwrap();
        k += 1;
        std::thread::sleep(Duration::from_millis(60));
        log_of(d).contains("cannot save positions")
    });
    let b: String = (1..=20).map(|i| format!("b-{i}\n")).collect();
    fs::write(logs.join("b.log"), &b).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !read(&output).contains("b-1\n"),
        "a file the checkpoint does not know yet was read: {}",
        read(&output)
    );
    fs::remove_file(disk.path().join("filler")).unwrap();
    wait_for("b's lines once a save succeeds", 20, || {
        read(&output).contains("b-20\n")
    });
    assert!(log_of(d).contains("positions saved again"), "{}", log_of(d));
    // b is known to the checkpoint now: lines appended, a crash, then b
    // rotated away while stopped (and a new b.log), and nothing is lost.
    fs::OpenOptions::new()
        .append(true)
        .open(logs.join("b.log"))
        .unwrap()
        .write_all(b"b-21\nb-22\n")
        .unwrap();
    child.signal(libc::SIGKILL);
    let _ = child.0.wait();
    fs::rename(logs.join("b.log"), logs.join("b.log.1")).unwrap();
    fs::write(logs.join("b.log"), "c-1\n").unwrap();
    let mut child = run();
    wait_for("every line after the restart", 20, || {
        let out = read(&output);
        out.contains("b-22\n") && out.contains("c-1\n")
    });
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");
    let out = read(&output);
    for want in ["a-1", "a-2", "b-1", "b-20", "b-21", "b-22", "c-1"] {
        assert!(out.lines().any(|l| l == want), "{want} missing: {out}");
    }
    assert_eq!(
        log_of(d).matches("cannot save positions").count(),
        1,
        "the failure is logged once until a save succeeds: {}",
        log_of(d)
    );
}

// ---- the output deleted -----------------------------------------------------

#[test]
fn deleting_the_output_mid_run_loses_no_line_that_was_not_yet_reported_done() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), d.join("out.log"));
    File::create(&input).unwrap();
    let config = tail_to_file(d, &input, &output, "");
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    const MAX: usize = 300_000;
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            let mut f = fs::OpenOptions::new().append(true).open(input).unwrap();
            let start = Instant::now();
            let mut n = 0;
            while n < MAX && start.elapsed() < Duration::from_millis(1500) {
                let chunk: String = (n..n + 500).map(|i| line(i) + "\n").collect();
                f.write_all(chunk.as_bytes()).unwrap();
                n += 500;
                // Paced so that the writer outlasts the three deletions
                // (unpaced, a quiet machine wrote everything before the first).
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    // Deleted three times while the writer runs; each deleted file is kept
    // open to read what went into it, and `mark` is its size just after the
    // deletion: what is beyond was written into a file already deleted.
    let mut deleted = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(350));
        wait_for("the output at its path", 20, || output.exists());
        let held = File::open(&output).unwrap();
        fs::remove_file(&output).unwrap();
        let mark = held.metadata().unwrap().len() as usize;
        deleted.push((held, mark));
    }
    let n = writer.join().unwrap();
    wait_for("the last line", 20, || read(&output).contains(&line(n - 1)));
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");

    let mut files: Vec<String> = deleted
        .iter_mut()
        .map(|(f, _)| {
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            s
        })
        .collect();
    files.push(read(&output));
    let every: HashSet<&str> = files.iter().flat_map(|f| f.lines()).collect();
    let missing = (0..n).filter(|&i| !every.contains(line(i).as_str())).count();
    assert_eq!(missing, 0, "lines in no file, deleted or not, of {n}");
    for (k, (_, mark)) in deleted.iter().enumerate() {
        // Skip the line the mark falls into: it may have been written before.
        let after = &files[k][*mark..];
        let after = after.find('\n').map_or("", |i| &after[i + 1..]);
        let later: HashSet<&str> = files[k + 1..].iter().flat_map(|f| f.lines()).collect();
        let lost: Vec<&str> = after.lines().filter(|l| !later.contains(l)).collect();
        println!(
            "deletion {}: {} lines went into the deleted file after it, {} of them nowhere else",
            k + 1,
            after.lines().count(),
            lost.len()
        );
        assert!(
            lost.is_empty(),
            "deletion {}: lines written only to the deleted file: {:?}…",
            k + 1,
            &lost[..lost.len().min(3)]
        );
    }
    let log = log_of(d);
    assert!(
        log.contains(&format!("{}: deleted while", output.display())),
        "the deletion is logged: {log}"
    );
    println!("{n} lines written by the writer");
}

// ---- an output that cannot be opened ----------------------------------------

#[test]
fn an_output_that_cannot_be_opened_holds_everything_and_finish_does_not_wait_out_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (input, output) = (d.join("in.log"), d.join("later/out.log"));
    fs::write(&input, lines(100)).unwrap();
    let config = tail_to_file(d, &input, &output, "");
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    let cannot = format!("{}: cannot open: No such file or directory", output.display());
    wait_for("the failure in the log", 20, || log_of(d).contains(&cannot));
    // Retries every 50 ms and more: logged once, not each time.
    std::thread::sleep(Duration::from_millis(1000));
    let (status, took) = child.terminate();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_secs(10), "finish took {took:?}");
    let log = log_of(d);
    assert_eq!(log.matches(&cannot).count(), 1, "{log}");
    let gave_up = format!("{}: finishing without writing 100 lines", output.display());
    assert!(log.contains(&gave_up), "{log}");

    // Nothing was reported done, so the checkpoint sends everything again.
    fs::create_dir(d.join("later")).unwrap();
    let mut child = Reap(tourbillon(d, &["run", config.to_str().unwrap()]).spawn().unwrap());
    let all = lines(100);
    wait_for("every line after the restart", 20, || read(&output) == all);
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");
    assert_eq!(read(&output), all);
}

// ---- listen at its descriptor limit -----------------------------------------

#[test]
fn listen_at_its_descriptor_limit_does_not_spin_and_serves_the_waiting_clients() {
    const LIMIT: u64 = 24;
    const HOLDERS: usize = 30;
    const LEAVERS: usize = 20;
    const LINES: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let output = d.join("out.log");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = d.join("listen.toml");
    fs::write(
        &config,
        format!(
            "[trains.main]\ncogs = [\n  {{ kind = \"listen\", listen = \"tcp:127.0.0.1:{port}\" }},\n  \
             {{ kind = \"file\", path = {:?} }},\n]\n",
            output.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = tourbillon(d, &["run", config.to_str().unwrap()]);
    common::limit_descriptors(&mut cmd, LIMIT);
    let mut child = Reap(cmd.spawn().unwrap());
    let connect = || {
        for _ in 0..500 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("nobody listens on {port}");
    };
    let send = |s: &mut TcpStream, who: &str| {
        let text: String = (0..LINES).map(|i| format!("{who} {i}\n")).collect();
        s.write_all(text.as_bytes()).unwrap();
    };
    // More clients than descriptors stay connected: the limit is reached.
    let mut holders: Vec<TcpStream> = (0..HOLDERS)
        .map(|h| {
            let mut s = connect();
            send(&mut s, &format!("holder-{h}"));
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // These send everything and leave at once; they wait in the backlog.
    for l in 0..LEAVERS {
        let mut s = connect();
        send(&mut s, &format!("leaver-{l}"));
        s.shutdown(Shutdown::Write).unwrap();
    }
    wait_for("accept failing in the log", 20, || log_of(d).contains("accept failed"));
    let (cpu0, t0) = (common::cpu_time(child.pid() as u32), Instant::now());
    std::thread::sleep(Duration::from_millis(2000));
    let (cpu, wall) = (common::cpu_time(child.pid() as u32) - cpu0, t0.elapsed());
    let log_bytes = log_of(d).len();
    println!("at the descriptor limit: {cpu:?} CPU in {wall:?}; {log_bytes} bytes of log");
    assert!(
        cpu.as_secs_f64() < 0.3 * wall.as_secs_f64(),
        "{cpu:?} CPU in {wall:?}: accept spins"
    );
    assert!(log_bytes < 4096, "the log grows: {}", log_of(d));

    for s in &mut holders {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let want = (HOLDERS + LEAVERS) * LINES;
    wait_for("every client's lines", 20, || read(&output).lines().count() >= want);
    drop(holders);
    let (status, _) = child.terminate();
    assert!(status.success(), "{status}");
    let out = read(&output);
    let got: HashSet<&str> = out.lines().collect();
    assert_eq!(got.len(), want, "every line once");
    for who in (0..HOLDERS)
        .map(|h| format!("holder-{h}"))
        .chain((0..LEAVERS).map(|l| format!("leaver-{l}")))
    {
        for i in 0..LINES {
            assert!(got.contains(format!("{who} {i}").as_str()), "{who} {i} is missing");
        }
    }
}
