//! File descriptors registered for readiness.

use std::os::unix::io::RawFd;

use super::Target;
use crate::token::Key;

/// Handle of a registered fd, for [`Core::unregister`](crate::Core::unregister).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FdId(pub(crate) Key);

pub(crate) struct FdSlot {
    pub(crate) fd: RawFd,
    pub(crate) target: Target,
}

/// Readiness of an fd as reported by one poll.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Data can be read (or a connection accepted) without blocking.
    pub readable: bool,
    /// Data can be written without blocking.
    pub writable: bool,
    /// The peer closed its writing half: reads will hit end of file once drained.
    pub read_closed: bool,
    /// The writing half is closed: writes will fail.
    pub write_closed: bool,
    /// The fd reported an error.
    pub error: bool,
}

impl Ready {
    pub(crate) fn from_event(event: &mio::event::Event) -> Ready {
        Ready {
            readable: event.is_readable(),
            writable: event.is_writable(),
            read_closed: event.is_read_closed(),
            write_closed: event.is_write_closed(),
            error: event.is_error(),
        }
    }
}
