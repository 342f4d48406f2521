//! Telling systemd how the daemon is doing (`Type=notify`): `READY=1` once
//! every cog has started, `RELOADING=1`/`READY=1` around a reload,
//! `STOPPING=1` when the trains begin to finish, and `WATCHDOG=1` at half
//! of `WatchdogSec` from a timer on the loop, so that a stuck loop stops
//! pinging and systemd restarts it. Without `NOTIFY_SOCKET` (not started
//! by systemd, or not `Type=notify`) every function here does nothing.
//!
//! The shipped unit is `dist/tourbillon.service`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use sd_notify::NotifyState;
use tourbillon::{Core, Phase};

fn send(state: NotifyState<'_>) {
    // The socket stays in the environment: the watchdog and a later reload
    // send again.
    if let Err(e) = sd_notify::notify(false, &[state]) {
        log::warn!("systemd: cannot notify: {e}");
    }
}

/// Tells systemd the service is up (`READY=1`): after start, and after a reload.
pub fn ready() {
    send(NotifyState::Ready);
}

/// Tells systemd a reload began (`RELOADING=1`); call [`ready`] when it is done.
pub fn reloading() {
    send(NotifyState::Reloading);
}

/// Tells systemd the service is stopping (`STOPPING=1`).
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// Wires the notifications into a loop that has not run yet: `READY=1` on
/// its first turn (queued after what the caller queued before, such as
/// the privilege drop: every cog has started by then), `STOPPING=1` on
/// SIGTERM or SIGINT or when the watchdog's tick sees the loop finishing,
/// and the watchdog's pings when systemd asked for them (`WATCHDOG_USEC`,
/// for this pid when `WATCHDOG_PID` is set). Nothing when `NOTIFY_SOCKET`
/// is unset.
pub fn install(core: &mut Core) -> Result<(), tourbillon::Error> {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return Ok(());
    }
    core.enqueue(|_| ready())?;
    let stopped = Rc::new(Cell::new(false));
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let stopped = Rc::clone(&stopped);
        core.on_signal(signal, move |_, _| {
            if !stopped.replace(true) {
                stopping();
            }
        })?;
    }
    if let Some(limit) = watchdog() {
        // Half the limit, as sd_watchdog_enabled(3) advises: a ping late
        // by a slow turn still arrives in time.
        let period = (limit / 2).max(Duration::from_millis(1));
        core.every(period, move |core, _| {
            send(NotifyState::Watchdog);
            // A finish that no signal began (the supplies ended, a cog asked).
            if core.phase() != Phase::Running && !stopped.replace(true) {
                stopping();
            }
        })?;
    }
    Ok(())
}

/// The watchdog's limit, when systemd asked this process for pings: as
/// sd_watchdog_enabled(3) reads it, `WATCHDOG_USEC` (above 0) applies to
/// us unless `WATCHDOG_PID` names another process (after `detach`, the
/// pid systemd started is gone).
fn watchdog() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok().filter(|u| *u > 0)?;
    match std::env::var("WATCHDOG_PID") {
        Ok(pid) if pid.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}
