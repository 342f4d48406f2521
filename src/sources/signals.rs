//! POSIX signals through signal-hook-mio on a reserved token.
//!
//! SIGTERM and SIGINT start a graceful finish unless the builder turned that
//! off. A second SIGINT exits the process at once (status 130), from the
//! signal handler itself, so it works even if a cog is stuck.

use std::collections::HashSet;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::SigId;
use signal_hook_mio::v1_0::Signals;

use super::Target;
use crate::token::{Key, Slab};

/// Handle of a signal binding, for [`Core::off_signal`](crate::Core::off_signal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SignalId(pub(crate) Key);

pub(crate) struct SignalSources {
    pub(crate) signals: Signals,
    pub(crate) handlers: Slab<(i32, Target)>,
    added: HashSet<i32>,
    pub(crate) graceful: bool,
    hard_exit: Vec<SigId>,
}

impl SignalSources {
    pub(crate) fn new(graceful: bool) -> io::Result<SignalSources> {
        let signals = Signals::new(std::iter::empty::<i32>())?;
        let mut sources = SignalSources {
            signals,
            handlers: Slab::default(),
            added: HashSet::new(),
            graceful,
            hard_exit: Vec::new(),
        };
        if graceful {
            sources.ensure(SIGTERM)?;
            sources.ensure(SIGINT)?;
            // Order matters: the conditional exit runs before the flag is set,
            // so it fires on the second SIGINT, not the first.
            let second = Arc::new(AtomicBool::new(false));
            sources.hard_exit.push(signal_hook::flag::register_conditional_shutdown(
                SIGINT,
                130,
                Arc::clone(&second),
            )?);
            sources.hard_exit.push(signal_hook::flag::register(SIGINT, second)?);
        }
        Ok(sources)
    }

    /// Makes sure signal-hook catches `signal`.
    pub(crate) fn ensure(&mut self, signal: i32) -> io::Result<()> {
        if self.added.insert(signal) {
            if let Err(e) = self.signals.add_signal(signal) {
                self.added.remove(&signal);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bindings for `signal`, in the order they were made.
    pub(crate) fn targets(&self, signal: i32) -> Vec<(SignalId, Target)> {
        self.handlers
            .iter()
            .filter(|(_, (s, _))| *s == signal)
            .map(|(k, (_, t))| (SignalId(k), *t))
            .collect()
    }
}

impl Drop for SignalSources {
    fn drop(&mut self) {
        for id in self.hard_exit.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}
