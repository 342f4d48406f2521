//! Reloading on SIGHUP with the real binary: 20 reloads while a writer
//! appends about as fast as the binary reads lose no line and duplicate
//! none; a train whose
//! section did not change is never restarted; a broken configuration is
//! logged and changes nothing.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::{append, tourbillon, wait_for};

/// Kills a child that a failed assertion left running.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Train `main` tails `input` into `out`; its file drain's buffer size is
/// `buffer` (what each reload changes). Train `other` tails `other_in`
/// into `other_out` and never changes.
fn write_config(path: &Path, d: &Path, buffer: usize) {
    let body = format!(
        "[trains.main]\ncogs = [\n  {{ kind = \"tail\", include = [{:?}], checkpoint_dir = {:?}, poll_interval_ms = 20 }},\n  \
         {{ kind = \"file\", path = {:?}, buffer_bytes = {buffer} }},\n]\n\
         [trains.other]\ncogs = [\n  {{ kind = \"tail\", include = [{:?}], checkpoint_dir = {:?}, poll_interval_ms = 20 }},\n  \
         {{ kind = \"file\", path = {:?}, buffer_bytes = 1 }},\n]\n",
        s(&d.join("in.log")),
        s(&d.join("state-main")),
        s(&d.join("out.log")),
        s(&d.join("other-in.log")),
        s(&d.join("state-other")),
        s(&d.join("other-out.log")),
    );
    // Written whole, then renamed: the reload never reads half a file.
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, body).unwrap();
    fs::rename(&tmp, path).unwrap();
}

fn log_text(d: &Path) -> String {
    fs::read_to_string(d.join("log")).unwrap_or_default()
}

fn count(d: &Path, what: &str) -> usize {
    log_text(d).matches(what).count()
}

/// How often each line is in `path` (whole lines only).
fn tally(path: &Path) -> HashMap<String, u32> {
    let t = fs::read_to_string(path).unwrap_or_default();
    let body = &t[..t.rfind('\n').map_or(0, |i| i + 1)];
    let mut m = HashMap::new();
    for l in body.lines() {
        *m.entry(l.to_owned()).or_insert(0) += 1;
    }
    m
}

fn hup(child: &Reap) {
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) }, 0);
}

#[test]
fn twenty_reloads_under_a_full_speed_writer_lose_and_repeat_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let (input, other_in) = (d.join("in.log"), d.join("other-in.log"));
    fs::write(&input, "").unwrap();
    fs::write(&other_in, "").unwrap();
    let config: PathBuf = d.join("run.toml");
    write_config(&config, &d, 1);
    let log = fs::File::create(d.join("log")).unwrap();
    let mut c = tourbillon(&d, &["run", config.to_str().unwrap()]);
    c.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let child = Reap(c.spawn().unwrap());
    wait_for("the trains to run", 10, || log_text(&d).contains("running trains"));

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, input) = (stop.clone(), input.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            // As fast as a debug build reads, about: the tail is busy
            // through every reload, and the test ends in bounded time.
            while !stop.load(Ordering::Relaxed) && n < 400_000 {
                let chunk: String = (n..n + 200).map(|i| format!("line-{i:08}\n")).collect();
                append(&input, &chunk);
                n += 200;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    let mut other_lines = 0;
    for round in 0..20 {
        if round == 7 {
            // A broken file: every error logged, the trains run on.
            fs::write(
                &config,
                "[trains.main]\ncogs = [{ kind = \"tail\" }, { kind = \"nope\" }]\n",
            )
            .unwrap();
            hup(&child);
            wait_for("the broken configuration's errors", 10, || {
                count(&d, "reload: the configuration has 2 errors") == 1
            });
        }
        write_config(&config, &d, if round % 2 == 0 { 4096 } else { 1 });
        hup(&child);
        wait_for("the reload", 15, || count(&d, "reload: done") == round + 1);
        append(&other_in, &format!("other-{round}\n"));
        other_lines += 1;
        std::thread::sleep(Duration::from_millis(30));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();

    wait_for("every line written out", 30, || {
        tally(&d.join("out.log")).len() as u64 == written
    });
    wait_for("the other train's lines", 10, || {
        tally(&d.join("other-out.log")).len() == other_lines
    });
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let mut child = child;
    assert!(child.0.wait().unwrap().success());

    let out = tally(&d.join("out.log"));
    let missing: Vec<u64> = (0..written)
        .filter(|i| !out.contains_key(&format!("line-{i:08}")))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {written} lines lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let repeated: Vec<(&String, &u32)> = out.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        repeated.is_empty(),
        "{} lines written twice, e.g. {:?}",
        repeated.len(),
        repeated.first()
    );
    assert!(out.len() as u64 == written);
    let other = tally(&d.join("other-out.log"));
    assert!(other.values().all(|&n| n == 1), "{other:?}");
    let log = log_text(&d);
    assert_eq!(
        log.matches("reload: done; trains placed again: main\n").count(),
        20,
        "{log}"
    );
    assert!(
        !log.contains("finishing trains other"),
        "the unchanged train was restarted:\n{log}"
    );
    println!("{written} lines written during 20 reloads, none lost, none repeated");
}
