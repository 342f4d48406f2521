//! [`TailStats`]: the counters a [`Tail`](super::Tail) keeps, shared with
//! whoever reads them while it runs (each part of the tail holds a clone).

use crate::Counter;

/// Counters of a [`Tail`](super::Tail), readable while it runs.
#[derive(Clone, Debug, Default)]
pub struct TailStats {
    /// Files holding a descriptor now (at most `max_open_files`).
    pub open: Counter,
    /// Files found and opened, in all.
    pub found: Counter,
    /// Files that lost their path (rotated away, deleted, swapped).
    pub rotated: Counter,
    /// Files found truncated (copytruncate) and read again from the start.
    pub truncated: Counter,
    /// Files closed for good after they were rotated away or deleted.
    pub closed: Counter,
    /// Lines emitted.
    pub lines: Counter,
    /// Bytes read.
    pub bytes: Counter,
    /// Times the patterns were expanded again.
    pub rescans: Counter,
    /// Times inotify lost events (`Q_OVERFLOW`).
    pub overflows: Counter,
    /// Positions saved to the checkpoint (log records and checkpoints).
    pub saves: Counter,
    /// Files read to their end closed to keep within `max_open_files`.
    pub closed_for_limit: Counter,
    /// Files closed for the limit opened again (they grew, or were rotated).
    pub reopened: Counter,
    /// Files and new files waiting for a descriptor now.
    pub waiting_for_descriptor: Counter,
    /// Directories that could not be listed and paths that could not be
    /// looked at (out of descriptors, permission, I/O error), in all.
    pub failed_looks: Counter,
    /// Opens that failed for want of descriptors (EMFILE, ENFILE), in all.
    pub failed_opens: Counter,
    /// Files closed for the limit, then rotated away or deleted out of
    /// reach (not in the directory they were in) before they could be
    /// opened again: bytes written to them meanwhile, if any, were not read.
    pub lost_while_closed: Counter,
}
