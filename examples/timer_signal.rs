//! Timers and signals on one escapement.
//!
//! Ticks every 500 ms, counts SIGUSR1s, prints a summary on SIGHUP, and
//! finishes gracefully on SIGTERM or Ctrl-C (a second Ctrl-C exits at once).
//! With `--for SECS` it also finishes by itself after that many seconds.
//!
//! ```sh
//! cargo run --example timer_signal -- --for 3
//! kill -USR1 <pid>; kill -HUP <pid>; kill -TERM <pid>
//! ```

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tourbillon::Escapement;

fn main() -> Result<(), tourbillon::Error> {
    let limit = std::env::args()
        .skip_while(|a| a != "--for")
        .nth(1)
        .map(|s| s.parse::<f64>().expect("--for takes a number of seconds"));
    let mut esc = Escapement::new()?;
    let core = esc.core();
    let started = Instant::now();
    let ticks = Rc::new(Cell::new(0u64));
    let usr1 = Rc::new(Cell::new(0u64));

    let t = Rc::clone(&ticks);
    core.every(Duration::from_millis(500), move |_, _| {
        t.set(t.get() + 1);
        println!("tick {} at {:.1}s", t.get(), started.elapsed().as_secs_f64());
    })?;
    let u = Rc::clone(&usr1);
    core.on_signal(libc::SIGUSR1, move |_, _| u.set(u.get() + 1))?;
    let (t, u) = (Rc::clone(&ticks), Rc::clone(&usr1));
    core.on_signal(libc::SIGHUP, move |_, _| {
        println!("{} ticks, {} SIGUSR1", t.get(), u.get())
    })?;
    if let Some(secs) = limit {
        core.after(Duration::from_secs_f64(secs), |core| core.finish())?;
    }
    println!(
        "pid {}: SIGUSR1 counts, SIGHUP reports, SIGTERM or Ctrl-C stops",
        std::process::id()
    );

    let exit = esc.run()?;
    println!("{exit:?} after {} ticks and {} SIGUSR1", ticks.get(), usr1.get());
    Ok(())
}
