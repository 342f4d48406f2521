//! `kill -9` in the middle of a long run, then a restart: every line
//! arrives at least once, and the lines repeated are only those written
//! after the last saved position.
//!
//! Its own binary without the test harness: the child process is this
//! binary again, run with `TAIL_CRASH_CHILD` set. `TAIL_CRASH_LINES` sets
//! the size of the run (default 1,000,000 lines).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use tourbillon::{Escapement, Event, Exit, Train};
use tourbillon_cogs::file::{FileDrain, FileDrainSettings};
use tourbillon_cogs::tail::{saved_positions, Tail, TailSettings};

const CHECKPOINT_MS: u64 = 50;

/// In the child: tail IN in batch mode into OUT, positions in STATE.
fn child(input: &str, output: &str, state: &str) {
    let settings = TailSettings {
        include: vec![input.into()],
        batch: true,
        checkpoint_dir: Some(state.into()),
        checkpoint_interval_ms: CHECKPOINT_MS,
        ..TailSettings::default()
    };
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

fn spawn(input: &Path, output: &Path, state: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .env("TAIL_CRASH_CHILD", "1")
        .args([input, output, state])
        .spawn()
        .unwrap()
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
        return child(&args[0], &args[1], &args[2]);
    }
    let name = "kill_9_during_a_long_run_then_a_restart_loses_no_line";
    match kill_9_during_a_long_run_then_a_restart_loses_no_line() {
        Ok(()) => println!("test {name} ... ok"),
        Err(why) => {
            println!("test {name} ... FAILED: {why}");
            std::process::exit(1);
        }
    }
}
