//! What a listening socket does when `accept` fails (EMFILE, ENFILE,
//! ENOBUFS, ENOMEM, mostly): nobody is gone, the waiting clients stay in
//! the listen backlog, and accepting pauses until a client leaves (freeing
//! a descriptor) or [`ACCEPT_PAUSE`] passes, so the loop never spins on the
//! error. Shared by the `listen` supply and the program server.

use std::fmt;
use std::io;
use std::time::Duration;

use tourbillon::{Context, Next, TimerId};

use crate::{Counter, LogThrottle, Verdict};

/// How long accepting pauses after a failed `accept`, at most.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// A listener's pause after a failed `accept`.
pub(crate) struct AcceptPause {
    timer: Option<TimerId>,
    log: LogThrottle,
}

impl AcceptPause {
    pub(crate) fn new() -> AcceptPause {
        AcceptPause {
            timer: None,
            log: LogThrottle::new(Duration::from_secs(10)),
        }
    }

    /// Accepting is paused.
    pub(crate) fn paused(&self) -> bool {
        self.timer.is_some()
    }

    /// `accept` on `addr` failed with `e` while `live` clients are
    /// connected: counts it in `failed`, pauses (the timer fires `key`) and
    /// logs, at most once per 10 s.
    pub(crate) fn pause<D, N: Next<D> + ?Sized>(
        &mut self,
        e: &io::Error,
        addr: &dyn fmt::Display,
        live: usize,
        failed: &Counter,
        key: u64,
        ctx: &mut Context<'_, D, N>,
    ) {
        failed.add(1);
        match ctx.after(ACCEPT_PAUSE, key) {
            Ok(id) => self.timer = Some(id),
            // Finishing: no new timer, and no more accepting either.
            Err(_) => return,
        }
        if let Verdict::Log { held } = self.log.hit(ctx.now()) {
            let also = held.map_or(String::new(), |h| {
                format!(" ({} more failures in the last {:.0?})", h.count, h.over)
            });
            log::warn!(
                "{addr}: accept failed: {e}; {live} clients connected, the others wait; accepting again when one \
                 leaves or in {ACCEPT_PAUSE:?}{also}"
            );
        }
    }

    /// The pause's timer fired.
    pub(crate) fn expired(&mut self) {
        self.timer = None;
    }

    /// Ends the pause (a client left, or the listener finishes); whether
    /// there was one.
    pub(crate) fn end<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        match self.timer.take() {
            Some(t) => {
                ctx.cancel(t);
                true
            }
            None => false,
        }
    }
}
