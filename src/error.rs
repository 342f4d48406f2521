//! The runtime's one error type.

use std::io;
use std::path::PathBuf;

/// What can go wrong in the runtime. Every variant names what it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Signals are process-wide, so one process has one escapement.
    #[error("an Escapement already exists in this process (signals are process-wide: create one and share it)")]
    AlreadyExists,
    /// A binding was attempted after the binder's part of `finish` completed.
    #[error("binding refused: the escapement is finishing and this binder has finished")]
    Finishing,
    /// An id that no longer names a live binding.
    #[error("the binding this id named is gone")]
    Stale,
    /// The loop this handle belonged to has stopped.
    #[error("the escapement this handle belongs to has stopped")]
    LoopGone,
    /// An OS call failed.
    #[error("{what}: {source}")]
    Io {
        /// What the runtime was doing.
        what: String,
        /// The OS error.
        source: io::Error,
    },
    /// A path could not be watched.
    #[error("cannot watch {}: {source}", path.display())]
    Watch {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A signal could not be caught.
    #[error("cannot catch signal {signal}: {source}")]
    Signal {
        /// The signal number.
        signal: i32,
        /// Why.
        source: io::Error,
    },
    /// Logging could not be set up.
    #[error("logging: {0}")]
    Logging(String),
    /// A capture could not be written, or a replayed one read.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
}
