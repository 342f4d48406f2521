//! What can go wrong in a state store.

use std::io;
use std::path::PathBuf;

/// What can go wrong in a [`Store`](super::Store). Every variant names the
/// file (and, for damage, the byte offset) it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An OS call failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What the store was doing, e.g. `"fsync"`.
        op: &'static str,
        /// The file or directory it was doing it to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Another writer holds the store's lock file.
    #[error("store is in use: {} is locked by another writer{}", path.display(), holder(pid))]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, as it wrote it into the lock file.
        pid: Option<u32>,
    },
    /// A file is damaged where it cannot be a torn tail: a checkpoint, a file
    /// header, or a log record followed by valid records. Nothing is cut
    /// away; the files are left as they are for inspection.
    #[error("{} is corrupt at byte {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where the damaged header or record starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// A file was written in a format version or encoding this build does
    /// not read.
    #[error(
        "{} has store format version {version}, encoding {encoding}; this build reads version {}, encoding {}",
        path.display(),
        super::record::FORMAT_VERSION,
        super::record::ENCODING_JSON
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The format version in its header.
        version: u16,
        /// The payload encoding in its header.
        encoding: u16,
    },
    /// A record is intact but does not decode as the state or delta type.
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
    /// A state or delta could not be serialized.
    #[error("cannot encode {what} {seq}: {source}")]
    Encode {
        /// `"state"` or `"delta"`.
        what: &'static str,
        /// The sequence number it would have had.
        seq: u64,
        /// What serde_json said.
        source: serde_json::Error,
    },
    /// A serialized state or delta is larger than a record may be.
    #[error("{what} of {len} bytes is larger than the {max} byte record limit")]
    TooLarge {
        /// `"state"` or `"delta"`.
        what: &'static str,
        /// Its serialized length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier write or fsync failed in a way that leaves the files'
    /// durable contents unknown. The store refuses further writes; reopening
    /// it recovers what is on disk.
    #[error("store in {} is unusable after an earlier write or fsync failure: reopen it", dir.display())]
    Poisoned {
        /// The store's directory.
        dir: PathBuf,
    },
}

fn holder(pid: &Option<u32>) -> String {
    pid.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
}
