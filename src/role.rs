//! What a cog is for ([`Role`]), and how it shows in a train's listing
//! ([`CogInfo`](crate::train::CogInfo)): what the kernel, and a
//! [recorder](crate::recorder), know of a cog without its type.

use std::fmt;

/// What a cog is for; the train counts supplies to know when all are exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Brings data in by binding to loop events (files, sockets, timers).
    Supply,
    /// Takes one datum and yields none, one or many.
    Step,
    /// Writes data out; reports `event_done` once it is written.
    Drain,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Role::Supply => "supply",
            Role::Step => "step",
            Role::Drain => "drain",
        })
    }
}

/// One line of a train's listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CogInfo {
    /// What the cog is for.
    pub role: Role,
    /// The cog as it renders itself, with its settings.
    pub text: String,
}
