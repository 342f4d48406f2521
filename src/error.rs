//! The runtime's errors: [`Error`], and the [`CaptureError`] of a capture
//! or replay that it wraps.

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
    /// The trains do not make a graph: an input names no train or output,
    /// trains read each other in a cycle, or a train reads data of another type.
    #[error("{0}")]
    Graph(String),
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
    Capture(#[from] CaptureError),
    /// A cog could not be made (from a crate of cogs: `tourbillon_cogs`
    /// converts its errors into this one, so `?` works in a `main` that
    /// returns this type).
    #[error(transparent)]
    Cog(Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// What can go wrong in writing, reading or replaying a capture. Every
/// variant names the file (and, for damage, the byte offset) or the train it
/// is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// An OS call failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `"create"`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is damaged where it cannot be a torn tail: its header, or a
    /// record followed by valid records.
    #[error("{} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where the damaged header or record starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// The file is a capture of a format version or encoding this build
    /// does not read.
    #[error(
        "{} is a capture of format version {version}, encoding {encoding}; this build reads version {}, encoding {}",
        path.display(),
        crate::store::record::CAPTURE_VERSION,
        crate::store::record::ENCODING_JSON
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The format version in its header.
        version: u16,
        /// The payload encoding in its header.
        encoding: u16,
    },
    /// A record is intact but does not decode: as a capture record, or its
    /// datum as the data type of the train it is replayed into.
    #[error("cannot decode record {seq} of {} at byte {offset}: {source}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The record's sequence number.
        seq: u64,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A record could not be serialized, or is larger than a record may be.
    #[error("cannot capture {what}: {reason}")]
    Encode {
        /// What: `a datum of train NAME, cog N` (counting from 1), or a record
        /// of the capture's own.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// The capture was made with another train than the one replayed (a
    /// strict replay refuses it; others warn).
    #[error("replaying {}: train {train}: {reason}", path.display())]
    Mismatch {
        /// The capture.
        path: PathBuf,
        /// The train's name.
        train: String,
        /// What differs.
        reason: String,
    },
    /// A replay's capture would overwrite the capture it replays.
    #[error("{} is the capture being replayed: capture the replay to another file", path.display())]
    SameFile {
        /// The file.
        path: PathBuf,
    },
    /// A replay speed that is not a positive, finite multiple.
    #[error("replay speed must be a positive, finite multiple of the recorded speed, not {0}")]
    Speed(f64),
}
