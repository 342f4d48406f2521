//! The event sources an [`Escapement`](crate::Escapement) multiplexes, one
//! module each, and what a binding receives when its source fires.

use std::any::Any;
use std::fmt;

use crate::token::Key;

pub mod fd;
pub mod immediate;
pub(crate) mod inbox;
pub mod signals;
pub mod timer;
pub mod watch;

pub use fd::{FdId, Ready};
pub use immediate::ImmediateId;
pub use signals::SignalId;
pub use timer::TimerId;
pub use watch::{WatchEvent, WatchId};

/// Where a cog sits: its train and its position in that train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CogAddr {
    /// Index of the train in its escapement.
    pub train: u32,
    /// Position of the cog in its train, from 0.
    pub cog: u32,
}

/// Who is told when a source fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// A closure stored in the core's callback slab.
    Call(Key),
    /// A cog, with the key it chose when it bound the source.
    Cog { addr: CogAddr, key: u64 },
    /// The loop's own polling of a path (inotify fallback).
    PollWatch(Key),
}

impl Target {
    pub(crate) fn is_cog(&self, addr: CogAddr) -> bool {
        matches!(self, Target::Cog { addr: a, .. } if *a == addr)
    }
}

/// What a bound source reports when it fires.
pub enum Fired {
    /// An fd became ready. mio is edge-triggered: read or write until
    /// `WouldBlock`, or re-queue yourself with an immediate event.
    Ready(FdId, Ready),
    /// A timer expired.
    Timer(TimerId),
    /// A signal was delivered to the process.
    Signal(SignalId, i32),
    /// A watched path changed (inotify, or the polling fallback).
    Watch(WatchId, WatchEvent),
    /// An immediate event queued with `enqueue` came up.
    Immediate(ImmediateId),
    /// A message sent from another thread through a [`CogRemote`](crate::CogRemote).
    Message(Box<dyn Any + Send>),
}

impl fmt::Debug for Fired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fired::Ready(id, r) => f.debug_tuple("Ready").field(id).field(r).finish(),
            Fired::Timer(id) => f.debug_tuple("Timer").field(id).finish(),
            Fired::Signal(id, s) => f.debug_tuple("Signal").field(id).field(s).finish(),
            Fired::Watch(id, w) => f.debug_tuple("Watch").field(id).field(w).finish(),
            Fired::Immediate(id) => f.debug_tuple("Immediate").field(id).finish(),
            Fired::Message(_) => f.write_str("Message(..)"),
        }
    }
}
