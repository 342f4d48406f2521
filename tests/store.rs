//! The state store against real files and real processes: restarts, crashes
//! between a checkpoint and its compaction, `kill -9` at random points,
//! a flipped byte at every offset, two writers, torn tails.

mod common;

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{keep_warnings, warnings_about};
use serde::{Deserialize, Serialize};
use tourbillon::store::{FsyncPolicy, Store, StoreError, StoreOptions};

/// A delta shaped like what a tail cog logs.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Advance {
    file: String,
    pos: u64,
}

/// The state records every delta, so a lost, repeated or reordered delta
/// shows.
type History = Vec<Advance>;

fn replay(history: &mut History, delta: Advance) {
    history.push(delta)
}

fn advance(i: u64) -> Advance {
    Advance {
        file: format!("f{}.log", i % 3),
        pos: i * 1000 + 7,
    }
}

fn open(dir: &Path) -> Store<History, Advance> {
    Store::open(dir, StoreOptions::new()).unwrap()
}

fn recover(dir: &Path) -> Result<History, StoreError> {
    Store::<History, Advance>::open(dir, StoreOptions::new())?.recover(Vec::new, replay)
}

/// A tiny deterministic generator, so a failing run can be repeated.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn empty_store_recovers_what_create_makes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.recover(|| vec![advance(9)], replay).unwrap(), vec![advance(9)]);
    assert_eq!((store.last_seq(), store.checkpoint_seq()), (0, None));
}

#[test]
fn round_trip_survives_many_restarts_and_seqs_keep_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = History::new();
    let mut last = 0;
    for restart in 0..8u64 {
        let mut store = open(dir.path());
        assert_eq!(
            store.recover(Vec::new, replay).unwrap(),
            expected,
            "after restart {restart}"
        );
        assert_eq!(store.last_seq(), last);
        for i in 0..5 {
            let delta = advance(restart * 10 + i);
            let seq = store.log(&delta).unwrap();
            assert_eq!(seq, last + 1);
            last = seq;
            expected.push(delta);
            if restart % 3 == 1 && i == 2 {
                assert_eq!(store.checkpoint(&expected).unwrap(), last);
            }
        }
    }
    assert_eq!(recover(dir.path()).unwrap(), expected);
}

/// The crash comes after the new checkpoint is renamed into place and before
/// the log is replaced: put a copy of the old log back over the new one.
fn crash_between_checkpoint_and_compaction(stale_after: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let mut history = History::new();
    let mut stale = Vec::new();
    for i in 0..5 {
        store.log(&advance(i)).unwrap();
        history.push(advance(i));
        if history.len() == stale_after {
            stale = fs::read(store.log_path()).unwrap();
        }
    }
    assert_eq!(store.checkpoint(&history).unwrap(), 5);
    let log = store.log_path().to_path_buf();
    drop(store);
    fs::write(&log, &stale).unwrap();

    let mut store = open(dir.path());
    assert_eq!(store.recover(Vec::new, replay).unwrap(), history);
    assert_eq!(store.log(&advance(5)).unwrap(), 6);
    history.push(advance(5));
    drop(store);
    assert_eq!(recover(dir.path()).unwrap(), history);
}

#[test]
fn crash_before_compaction_neither_loses_nor_repeats_a_delta() {
    crash_between_checkpoint_and_compaction(5);
}

#[test]
fn crash_before_compaction_with_a_log_missing_covered_records_loses_nothing() {
    // The old log's last records never reached the disk (no fsync under
    // `Never`), but the checkpoint covers them.
    crash_between_checkpoint_and_compaction(3);
}

#[test]
fn a_log_reaching_past_the_checkpoint_replays_only_what_it_does_not_cover() {
    // What a failed compaction leaves: the checkpoint covers records 1..=5
    // and the old log, still appended to, holds 1..=7.
    let history: History = (0..7).map(advance).collect();
    let old = tempfile::tempdir().unwrap();
    let mut store = open(old.path());
    for delta in &history {
        store.log(delta).unwrap();
    }
    drop(store);
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    for delta in &history[..5] {
        store.log(delta).unwrap();
    }
    store.checkpoint(&history[..5].to_vec()).unwrap();
    drop(store);
    fs::copy(old.path().join("log"), dir.path().join("log")).unwrap();

    let mut store = open(dir.path());
    assert_eq!(store.recover(Vec::new, replay).unwrap(), history);
    assert_eq!(store.log(&advance(7)).unwrap(), 8);
}

/// One line of the shared sequence a child appends: value `n` carries a
/// payload whose length depends on `n`, so a torn value cannot pass for a
/// whole one.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Item {
    n: u64,
    pad: String,
}

fn item(n: u64) -> Item {
    Item {
        n,
        pad: "x".repeat((n * 37 % 200) as usize),
    }
}

/// The fsync policies a child writer runs under, by name.
fn policy(name: &str) -> FsyncPolicy {
    match name {
        "always" => FsyncPolicy::Always,
        "group" => FsyncPolicy::Group {
            records: 8,
            interval: Duration::from_millis(20),
        },
        other => panic!("no policy {other}"),
    }
}

/// Run by the `kill_9_...` tests in a child process: appends the sequence
/// under the policy named by `STORE_POLICY` and prints each value once
/// `log` has acknowledged it, until killed. Without `STORE_CHILD` it does
/// nothing.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os("STORE_CHILD") else {
        return;
    };
    let policy = policy(&std::env::var("STORE_POLICY").unwrap());
    // The parent's store of the previous iteration is dropped, but a child
    // that another test of the same process is forking at that moment
    // holds a copy of its lock until it execs: wait that out.
    let since = Instant::now();
    let mut store = loop {
        match Store::<Vec<Item>, Item>::open(&dir, StoreOptions::new().fsync(policy)) {
            Err(StoreError::Locked { .. }) if since.elapsed() < Duration::from_secs(2) => {
                thread::sleep(Duration::from_millis(5))
            }
            other => break other.unwrap(),
        }
    };
    let mut items = store.recover(Vec::new, |items, item| items.push(item)).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", items.len()).unwrap();
    out.flush().unwrap();
    // A bound, should the parent not kill us.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let next = item(items.len() as u64 + 1);
        store.log(&next).unwrap();
        writeln!(out, "ack {}", next.n).unwrap();
        out.flush().unwrap();
        items.push(next);
        if items.len() % 25 == 0 {
            store.checkpoint(&items).unwrap();
        }
    }
}

#[test]
fn kill_9_at_random_points_loses_nothing_acknowledged() {
    kill_9_at_random_points("always", 40, 0x2545_f491_4f6c_dd1d);
}

/// The process dies, not the machine: what `log` wrote is in the page
/// cache whatever the fsync policy, so recovery still gives every
/// acknowledged value, never a torn one.
#[test]
fn kill_9_under_group_commit_loses_nothing_acknowledged_either() {
    kill_9_at_random_points("group", 20, 0x9e37_79b9_7f4a_7c15);
}

/// Kills a child appending under `policy` `iterations` times, at random
/// points; after each, recovery must give exactly a prefix of the sequence
/// holding every value acknowledged so far.
fn kill_9_at_random_points(policy: &str, iterations: usize, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = XorShift(seed);
    // Everything known durable so far: the previous recovery.
    let mut floor = 0;
    let mut killed_mid_run = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args(["--exact", "child_writer", "--nocapture", "--test-threads=1", "-q"])
            .env("STORE_CHILD", dir.path())
            .env("STORE_POLICY", policy)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map(Result::unwrap);
        let mut acked = floor;
        let mut note = |line: &str| {
            if let Some(n) = line.strip_prefix("ack ") {
                acked = acked.max(n.parse().unwrap());
            }
        };
        // Most kills land while appending or checkpointing, a random number
        // of records in; some while the child opens and recovers (it may be
        // finishing a compaction then).
        if iteration % 5 != 4 {
            let wanted = rng.below(40);
            let (mut ready, mut seen) = (false, 0);
            for line in lines.by_ref() {
                note(&line);
                ready |= line.starts_with("ready");
                seen += u64::from(line.starts_with("ack "));
                if ready && seen >= wanted {
                    break;
                }
            }
        }
        thread::sleep(Duration::from_micros(rng.below(3_000)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        lines.for_each(|line| note(&line));
        if status.signal() != Some(libc::SIGKILL) {
            let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
            panic!("iteration {iteration}: child ended by itself ({status}):\n{stderr}");
        }
        if acked > floor {
            killed_mid_run += 1;
        }

        let store = Store::<Vec<Item>, Item>::open(dir.path(), StoreOptions::new()).unwrap();
        let items = store.recover(Vec::new, |items, item| items.push(item)).unwrap();
        let n = items.len() as u64;
        assert!(
            acked <= n && n <= acked + 1,
            "iteration {iteration}: recovered {n} values, {acked} were acknowledged"
        );
        assert!(
            items.iter().zip(1..).all(|(got, n)| *got == item(n)),
            "iteration {iteration}: not a prefix"
        );
        assert_eq!(store.last_seq(), n, "iteration {iteration}");
        floor = n;
    }
    assert!(
        killed_mid_run >= iterations / 2,
        "only {killed_mid_run} children were killed while appending"
    );
}

/// A flipped byte anywhere in a checkpoint, a log header or a log record
/// followed by others is an error naming the file and the offset of what it
/// hit; in the last record it is a torn tail, cut off. Never a wrong value.
#[test]
fn a_flipped_byte_at_any_offset_is_reported_or_cut_never_misread() {
    keep_warnings();
    let pristine = tempfile::tempdir().unwrap();
    let mut store = open(pristine.path());
    let mut history = History::new();
    for i in 0..2 {
        store.log(&advance(i)).unwrap();
        history.push(advance(i));
    }
    store.checkpoint(&history).unwrap();
    // Where each log record starts, and where the log ends.
    let mut bounds = vec![fs::metadata(store.log_path()).unwrap().len()];
    for i in 2..6 {
        store.log(&advance(i)).unwrap();
        history.push(advance(i));
        bounds.push(fs::metadata(store.log_path()).unwrap().len());
    }
    drop(store);
    let files = ["checkpoint", "log"].map(|name| (name, fs::read(pristine.path().join(name)).unwrap()));

    for (name, bytes) in &files {
        for offset in 0..bytes.len() {
            for mask in [0x01u8, 0xff] {
                let dir = tempfile::tempdir().unwrap();
                for (other, other_bytes) in &files {
                    fs::write(dir.path().join(other), other_bytes).unwrap();
                }
                let mut damaged = bytes.clone();
                damaged[offset] ^= mask;
                let target = dir.path().join(name);
                fs::write(&target, &damaged).unwrap();

                let case = format!("{name} byte {offset} ^ {mask:#04x}");
                let record = bounds.iter().rposition(|&start| start <= offset as u64);
                let in_last_record = *name == "log" && record == Some(bounds.len() - 2);
                match recover(dir.path()) {
                    Ok(got) => {
                        assert!(in_last_record, "{case}: recovered {got:?}");
                        assert_eq!(got, history[..history.len() - 1], "{case}");
                        assert_eq!(fs::metadata(&target).unwrap().len(), bounds[bounds.len() - 2], "{case}");
                        assert!(!warnings_about(&target).is_empty(), "{case}: cut without a warning");
                    }
                    Err(err) => {
                        assert!(!in_last_record, "{case}: a torn tail was not cut: {err}");
                        let expected = match (*name, record) {
                            ("checkpoint", _) if offset < 24 => 0,
                            ("checkpoint", _) => 24,
                            (_, None) => 0,
                            (_, Some(record)) => bounds[record],
                        };
                        match &err {
                            StoreError::Corrupt { path, offset, .. } => {
                                assert_eq!((path, *offset), (&target, expected), "{case}: {err}")
                            }
                            other => panic!("{case}: {other}"),
                        }
                        let message = err.to_string();
                        assert!(message.contains(&target.display().to_string()), "{case}: {message}");
                        assert!(message.contains(&format!("byte {expected}")), "{case}: {message}");
                        assert_eq!(fs::read(&target).unwrap(), damaged, "{case}: damaged file was changed");
                    }
                }
            }
        }
    }
}

#[test]
fn a_second_writer_is_refused_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = open(dir.path());
    let err = Store::<History, Advance>::open(dir.path(), StoreOptions::new()).unwrap_err();
    match &err {
        StoreError::Locked { path, pid } => {
            assert_eq!(path, &dir.path().join("lock"));
            assert_eq!(*pid, Some(std::process::id()));
        }
        other => panic!("expected a lock error, got {other}"),
    }
    assert!(
        err.to_string().contains(&dir.path().join("lock").display().to_string()),
        "{err}"
    );
    drop(first);
    open(dir.path());
}

/// Run by `a_writer_in_another_process_holds_the_lock_until_it_dies` in a
/// child process: opens the store, logs one delta, says so, and waits to be
/// killed. Without `STORE_HOLDER` it does nothing.
#[test]
fn child_holder() {
    let Some(dir) = std::env::var_os("STORE_HOLDER") else {
        return;
    };
    let mut store = open(Path::new(&dir));
    store.log(&advance(1)).unwrap();
    println!("holding");
    std::io::stdout().flush().unwrap();
    // A bound, should the parent not kill us.
    thread::sleep(Duration::from_secs(10));
}

#[test]
fn a_writer_in_another_process_holds_the_lock_until_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_holder", "--nocapture", "--test-threads=1", "-q"])
        .env("STORE_HOLDER", dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.unwrap() == "holding"),
        "the child never held the store"
    );

    let err = Store::<History, Advance>::open(dir.path(), StoreOptions::new()).unwrap_err();
    match &err {
        StoreError::Locked { path, pid } => {
            assert_eq!((path, *pid), (&dir.path().join("lock"), Some(child.id())), "{err}")
        }
        other => panic!("expected a lock error, got {other}"),
    }
    assert!(err.to_string().contains(&format!("pid {}", child.id())), "{err}");

    child.kill().unwrap();
    child.wait().unwrap();
    // The lock went with the process; what it logged is there.
    assert_eq!(recover(dir.path()).unwrap(), vec![advance(1)]);
}

#[test]
fn temporary_files_left_by_a_crash_mid_checkpoint_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    let history: History = (0..3).map(advance).collect();
    for delta in &history {
        store.log(delta).unwrap();
    }
    drop(store);
    // What a writer killed while writing a checkpoint and a fresh log leaves.
    let leftovers = ["checkpoint.tmp", "log.tmp"].map(|name| dir.path().join(name));
    for (i, path) in leftovers.iter().enumerate() {
        fs::write(path, &b"TBSTCKPT half a header"[..10 + i]).unwrap();
    }

    let mut store = open(dir.path());
    assert!(leftovers.iter().all(|p| !p.exists()), "leftovers were not removed");
    assert_eq!(store.recover(Vec::new, replay).unwrap(), history);
    assert_eq!(store.log(&advance(3)).unwrap(), 4);
}

#[test]
fn a_store_reopened_hundreds_of_times_keeps_every_delta_and_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = XorShift(0x6a09_e667_f3bc_c908);
    let mut expected = History::new();
    for restart in 0..300u64 {
        let mut store = open(dir.path());
        assert_eq!(store.last_seq(), expected.len() as u64, "restart {restart}");
        // Some runs write nothing; some end right after a checkpoint.
        for _ in 0..rng.below(4) {
            let delta = advance(expected.len() as u64);
            assert_eq!(
                store.log(&delta).unwrap(),
                expected.len() as u64 + 1,
                "restart {restart}"
            );
            expected.push(delta);
        }
        if rng.below(5) == 0 {
            assert_eq!(store.checkpoint(&expected).unwrap(), expected.len() as u64);
        }
        if rng.below(7) == 0 {
            assert_eq!(store.recover(Vec::new, replay).unwrap(), expected, "restart {restart}");
        }
    }
    assert!(expected.len() > 300, "only {} deltas in 300 runs", expected.len());
    assert_eq!(recover(dir.path()).unwrap(), expected);
}

#[test]
fn a_torn_tail_is_cut_with_a_warning_and_appending_continues() {
    keep_warnings();
    let pristine = tempfile::tempdir().unwrap();
    let mut store = open(pristine.path());
    let mut sizes = Vec::new();
    for i in 0..4 {
        store.log(&advance(i)).unwrap();
        sizes.push(fs::metadata(store.log_path()).unwrap().len());
    }
    drop(store);
    let log = fs::read(pristine.path().join("log")).unwrap();
    let (last_start, end) = (sizes[2], sizes[3]);

    for cut in last_start + 1..end {
        let dir = tempfile::tempdir().unwrap();
        let path: PathBuf = dir.path().join("log");
        fs::write(&path, &log[..cut as usize]).unwrap();

        let mut store = open(dir.path());
        assert_eq!(warnings_about(&path).len(), 1, "cut at {cut}");
        assert_eq!(fs::metadata(&path).unwrap().len(), last_start, "cut at {cut}");
        let expected: History = (0..3).map(advance).collect();
        assert_eq!(store.recover(Vec::new, replay).unwrap(), expected, "cut at {cut}");
        assert_eq!(store.log(&advance(100)).unwrap(), 4, "cut at {cut}");
        drop(store);

        let store = open(dir.path());
        let mut expected = expected;
        expected.push(advance(100));
        assert_eq!(store.recover(Vec::new, replay).unwrap(), expected, "cut at {cut}");
        assert_eq!(
            warnings_about(&path).len(),
            1,
            "cut at {cut}: warned again after a clean append"
        );
    }
}

#[test]
fn group_commit_syncs_after_n_records_or_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let group = FsyncPolicy::Group {
        records: 3,
        interval: Duration::from_secs(3600),
    };
    let mut store = Store::<History, Advance>::open(dir.path(), StoreOptions::new().fsync(group)).unwrap();
    store.log(&advance(1)).unwrap();
    store.log(&advance(2)).unwrap();
    assert_eq!(store.synced_seq(), 0);
    assert!(store.sync_deadline().is_some());
    store.log(&advance(3)).unwrap();
    assert_eq!((store.synced_seq(), store.sync_deadline()), (3, None));
    store.log(&advance(4)).unwrap();
    store.sync().unwrap();
    assert_eq!(store.synced_seq(), 4);
    drop(store);

    let group = FsyncPolicy::Group {
        records: 1000,
        interval: Duration::from_millis(20),
    };
    let mut store = Store::<History, Advance>::open(dir.path(), StoreOptions::new().fsync(group)).unwrap();
    store.log(&advance(5)).unwrap();
    assert_eq!(store.synced_seq(), 4);
    thread::sleep(Duration::from_millis(30));
    store.log(&advance(6)).unwrap();
    assert_eq!(store.synced_seq(), 6);
}

#[test]
fn a_file_of_another_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let path = dir.path().join("log");
    let mut log = fs::read(&path).unwrap();
    log[8..10].copy_from_slice(&2u16.to_le_bytes());
    let crc = crc32c::crc32c(&log[0..20]);
    log[20..24].copy_from_slice(&crc.to_le_bytes());
    fs::write(&path, &log).unwrap();
    match recover(dir.path()) {
        Err(StoreError::Version {
            path: p, version: 2, ..
        }) => assert_eq!(p, path),
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[test]
fn a_delta_of_the_wrong_type_is_a_decode_error_naming_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::<Vec<String>, String>::open(dir.path(), StoreOptions::new()).unwrap();
    store.log(&"not an advance".to_string()).unwrap();
    drop(store);
    match recover(dir.path()) {
        Err(StoreError::Decode {
            path,
            offset: 24,
            seq: 1,
            ..
        }) => assert_eq!(path, dir.path().join("log")),
        other => panic!("expected a decode error, got {other:?}"),
    }
}
