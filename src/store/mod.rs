//! Crash-safe state: a checkpoint plus an incremental log.
//!
//! A durable cog keeps its state (file positions, offsets, acks) in a
//! [`Store`]. It saves the whole state now and then with
//! [`checkpoint`](Store::checkpoint) and every change in between with
//! [`log`](Store::log); after a restart, [`recover`](Store::recover) loads the
//! checkpoint and folds in every delta logged after it.
//!
//! ```
//! use std::collections::BTreeMap;
//! use serde::{Deserialize, Serialize};
//! use tourbillon::store::{FsyncPolicy, Store, StoreOptions};
//!
//! /// Where a tailed file has been read up to.
//! #[derive(Serialize, Deserialize)]
//! struct Advance { file: String, pos: u64 }
//!
//! type Positions = BTreeMap<String, u64>;
//! fn replay(positions: &mut Positions, d: Advance) {
//!     positions.insert(d.file, d.pos);
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let options = StoreOptions::new().fsync(FsyncPolicy::Always);
//! {
//!     let mut store = Store::<Positions, Advance>::open(dir.path(), options.clone())?;
//!     let mut positions = store.recover(Positions::new, replay)?;
//!     assert!(positions.is_empty());
//!     for pos in [100, 250] {
//!         let delta = Advance { file: "a.log".into(), pos };
//!         store.log(&delta)?; // durable once this returns, under `Always`
//!         replay(&mut positions, delta);
//!     }
//!     store.checkpoint(&positions)?; // compacts: the log starts afresh
//!     store.log(&Advance { file: "b.log".into(), pos: 7 })?;
//! } // the process could die anywhere above: nothing acknowledged is lost
//!
//! let store = Store::<Positions, Advance>::open(dir.path(), options)?;
//! let positions = store.recover(Positions::new, replay)?;
//! assert_eq!(positions, Positions::from([("a.log".into(), 250), ("b.log".into(), 7)]));
//! assert_eq!(store.last_seq(), 3);
//! # Ok(()) }
//! ```
//!
//! # Files
//!
//! A store is a directory holding:
//! - `checkpoint`: one record, the whole state, numbered with the last
//!   sequence number it covers;
//! - `log`: the deltas logged since, one record each, numbered
//!   consecutively;
//! - `lock`: `flock`ed by the one writer, holding its pid;
//! - `checkpoint.tmp`, `log.tmp`: transient; a crash can leave them, the next
//!   [`open`](Store::open) removes them.
//!
//! # Format and versioning
//!
//! Each file begins with an 8-byte magic (`TBSTCKPT` or `TBSTLOG\0`), a
//! format version (now 1), a payload encoding (1: serde_json) and a base
//! sequence number, all under a CRC32C. Each record is framed by its length,
//! its sequence number and a CRC32C of both and the payload. Payloads are
//! serde_json text: never a format that can run code when read. A file with
//! another version or encoding is refused with [`StoreError::Version`], so a
//! future format can be introduced without misreading old files. To evolve
//! your own state and delta types, make them serde enums with a variant per
//! version, or give new fields `#[serde(default)]`.
//!
//! # Crash safety
//!
//! - A checkpoint is written to `checkpoint.tmp`, fsynced, renamed over
//!   `checkpoint`, and the directory fsynced. Only then is a fresh, empty log
//!   started the same way. A crash in between leaves the new checkpoint with
//!   the old log: recovery skips the log's records the checkpoint covers, so
//!   no delta is lost or applied twice, and the next open finishes the
//!   compaction.
//! - A record cut short or damaged at the end of the log is what a writer
//!   that died mid-append leaves: open cuts it off with a warning (the file
//!   is truncated and fsynced before appending resumes). Damage followed by
//!   valid records, or anywhere in a checkpoint or file header, is never cut
//!   silently: it is a [`StoreError::Corrupt`] naming the file and byte
//!   offset.
//! - Sequence numbers continue from what is on disk, never from memory, so a
//!   store survives any number of restarts.
//! - A failed fsync leaves the durable contents of a file unknown (Linux may
//!   drop the dirty pages and report success next time), so the store then
//!   refuses all writes with [`StoreError::Poisoned`] until reopened.
//!
//! Under [`FsyncPolicy::Never`], and for the unsynced records of a
//! [`FsyncPolicy::Group`], a machine crash may lose a suffix of the log. The
//! file system may also write back a later page of the log before an earlier
//! one; recovery then finds damage followed by valid records and reports it
//! rather than guess. Use [`FsyncPolicy::Always`] where that matters.

mod error;
mod lock;
pub(crate) mod record;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::error::StoreError;
use self::lock::Lock;
use self::record::{
    decode_header, encode_frame, encode_header, find_later_frame, Found, FrameReader, Kind, HEADER_LEN,
};

const CHECKPOINT: &str = "checkpoint";
const LOG: &str = "log";
const LOCK: &str = "lock";

/// A log buffer grown past this by one big delta is given back afterwards.
const KEEP_BUFFER: usize = 1 << 20;

/// When the store fsyncs the log. Checkpoints are always fsynced, whatever
/// the policy: a torn checkpoint would lose everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync every record before [`Store::log`] returns: a record is durable
    /// once acknowledged. The default.
    #[default]
    Always,
    /// Group commit: fsync once `records` records are unsynced, or on the
    /// first append once `interval` has passed since the oldest unsynced
    /// record. The loop should also call [`Store::sync`] from a timer (see
    /// [`Store::sync_deadline`]) so a quiet store is synced too.
    /// [`Store::synced_seq`] says what is durable.
    Group {
        /// Unsynced records that force an fsync; 0 counts as 1.
        records: usize,
        /// Longest a record stays unsynced while appends keep coming.
        interval: Duration,
    },
    /// Never fsync the log unless [`Store::sync`] or [`Store::close`] is
    /// called: records survive the process dying, not the machine.
    Never,
}

/// How to open a [`Store`].
#[derive(Clone, Debug, Default)]
pub struct StoreOptions {
    fsync: FsyncPolicy,
}

impl StoreOptions {
    /// The defaults: [`FsyncPolicy::Always`].
    pub fn new() -> Self {
        Self::default()
    }

    /// When to fsync the log (default [`FsyncPolicy::Always`]).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }
}

/// A crash-safe store of a state `S` changed by deltas `D`: a checkpoint
/// plus an incremental log in one directory, with one writer at a time.
///
/// See the [module documentation](self) for an example, the files and the
/// guarantees.
pub struct Store<S, D> {
    dir: PathBuf,
    checkpoint_path: PathBuf,
    log_path: PathBuf,
    log: File,
    /// Where the next record goes: the end of the last whole record.
    end: u64,
    /// The last sequence number logged or covered by the checkpoint.
    last_seq: u64,
    /// The sequence number the checkpoint on disk covers.
    checkpoint_seq: Option<u64>,
    synced_seq: u64,
    unsynced: usize,
    first_unsynced: Option<Instant>,
    policy: FsyncPolicy,
    poisoned: bool,
    buf: Vec<u8>,
    _lock: Lock,
    _types: PhantomData<fn() -> (S, D)>,
}

impl<S, D> fmt::Debug for Store<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.dir)
            .field("last_seq", &self.last_seq)
            .field("synced_seq", &self.synced_seq)
            .field("checkpoint_seq", &self.checkpoint_seq)
            .field("policy", &self.policy)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl<S: Serialize + DeserializeOwned, D: Serialize + DeserializeOwned> Store<S, D> {
    /// Opens the store in `dir`, creating the directory if needed, and takes
    /// its lock.
    ///
    /// Checks the checkpoint and every log record against their checksums,
    /// cuts a torn tail off the log (with a warning), finishes a compaction
    /// a crash interrupted, and fsyncs the log so new records build on a
    /// durable prefix. Payloads are decoded later, by
    /// [`recover`](Self::recover).
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another writer has the store open (in this
    /// process or another); [`StoreError::Corrupt`] or
    /// [`StoreError::Version`] if a file cannot be trusted;
    /// [`StoreError::Io`] if the OS refuses.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_path_buf();
        ensure_dir(&dir)?;
        let lock = Lock::acquire(&dir.join(LOCK))?;
        let checkpoint_path = dir.join(CHECKPOINT);
        let log_path = dir.join(LOG);
        for path in [&checkpoint_path, &log_path] {
            let tmp = tmp_path(path);
            match fs::remove_file(&tmp) {
                Ok(()) => debug!("store: removed {}, left by an interrupted write", tmp.display()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        op: "remove",
                        path: tmp,
                        source,
                    })
                }
            }
        }
        let checkpoint_seq = read_checkpoint(&checkpoint_path)?.map(|c| c.seq);
        let (log, end, last_seq) = open_log(&dir, &log_path, checkpoint_seq)?;
        Ok(Store {
            dir,
            checkpoint_path,
            log_path,
            log,
            end,
            last_seq,
            checkpoint_seq,
            synced_seq: last_seq,
            unsynced: 0,
            first_unsynced: None,
            policy: options.fsync,
            poisoned: false,
            buf: Vec::new(),
            _lock: lock,
            _types: PhantomData,
        })
    }

    /// The stored state: `create()` if nothing was ever stored, else the
    /// checkpoint (or `create()` if none was taken) with every delta logged
    /// after it folded in by `replay`, in order.
    ///
    /// # Errors
    /// [`StoreError::Decode`] if a record does not decode as `S` or `D`,
    /// naming its file and offset; [`StoreError::Corrupt`] if a file changed
    /// under the store since [`open`](Self::open).
    pub fn recover(&self, create: impl FnOnce() -> S, mut replay: impl FnMut(&mut S, D)) -> Result<S, StoreError> {
        let (mut state, covered) = match read_checkpoint(&self.checkpoint_path)? {
            Some(checkpoint) => {
                let state = serde_json::from_slice(&checkpoint.payload).map_err(|source| StoreError::Decode {
                    path: self.checkpoint_path.clone(),
                    offset: HEADER_LEN as u64,
                    seq: checkpoint.seq,
                    source,
                })?;
                (state, checkpoint.seq)
            }
            None => (create(), 0),
        };
        let mut reader = FrameReader::new(&self.log, HEADER_LEN as u64, self.end);
        loop {
            match reader.next().map_err(|source| self.io_error("read", source))? {
                Found::End => return Ok(state),
                Found::Frame { seq, .. } if seq <= covered => {}
                Found::Frame { offset, seq } => {
                    let delta = serde_json::from_slice(reader.payload()).map_err(|source| StoreError::Decode {
                        path: self.log_path.clone(),
                        offset,
                        seq,
                        source,
                    })?;
                    replay(&mut state, delta);
                }
                Found::Bad { offset, reason } => {
                    return Err(StoreError::Corrupt {
                        path: self.log_path.clone(),
                        offset,
                        reason,
                    })
                }
            }
        }
    }

    /// Saves `state` whole, which must include every delta logged so far,
    /// then starts a fresh log: the old one is dropped once the checkpoint
    /// is durable. Returns the last sequence number the checkpoint covers.
    ///
    /// # Errors
    /// [`StoreError::Encode`] or [`StoreError::TooLarge`] if `state` cannot
    /// be written (nothing changes on disk); [`StoreError::Io`] if the OS
    /// refuses (the store is poisoned if that leaves the files' durability
    /// unknown); [`StoreError::Poisoned`] after an earlier failure.
    pub fn checkpoint(&mut self, state: &S) -> Result<u64, StoreError> {
        self.usable()?;
        let seq = self.last_seq;
        let mut frame = Vec::new();
        encode_frame(&mut frame, seq, state, "state")?;
        write_temp(&self.checkpoint_path, &encode_header(Kind::Checkpoint, seq), &frame)?;
        self.install(Kind::Checkpoint)?;
        self.checkpoint_seq = Some(seq);
        // Everything logged so far is durable through the checkpoint now.
        self.synced_seq = seq;
        self.unsynced = 0;
        self.first_unsynced = None;

        let fresh = write_temp(&self.log_path, &encode_header(Kind::Log, seq), &[]);
        match fresh.and_then(|fresh| self.install(Kind::Log).map(|()| fresh)) {
            Ok(fresh) => self.log = fresh,
            Err(e) if !self.poisoned => {
                // The old log holds every record up to `seq`, so appending to
                // it stays consistent; the next checkpoint or open compacts.
                warn!("store: checkpoint {seq} is durable but the log was not compacted: {e}");
                return Ok(seq);
            }
            Err(e) => return Err(e),
        }
        self.end = HEADER_LEN as u64;
        debug!("store: checkpoint {seq} written in {}", self.dir.display());
        Ok(seq)
    }

    /// Appends `delta` to the log and returns its sequence number. Under
    /// [`FsyncPolicy::Always`] the record is durable when this returns `Ok`.
    ///
    /// # Errors
    /// [`StoreError::Encode`] or [`StoreError::TooLarge`] if `delta` cannot
    /// be written; [`StoreError::Io`] if the OS refuses (the sequence number
    /// is not used up unless the failure was an fsync, which poisons the
    /// store); [`StoreError::Poisoned`] after an earlier failure.
    pub fn log(&mut self, delta: &D) -> Result<u64, StoreError> {
        self.usable()?;
        let seq = self.last_seq + 1;
        encode_frame(&mut self.buf, seq, delta, "delta")?;
        if let Err(source) = self.log.write_all_at(&self.buf, self.end) {
            // Take back any part of the record that reached the file, so the
            // next append lands where this one should have.
            if self.log.set_len(self.end).is_err() {
                self.poisoned = true;
            }
            return Err(self.io_error("append to", source));
        }
        self.end += self.buf.len() as u64;
        self.last_seq = seq;
        self.unsynced += 1;
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        match self.policy {
            FsyncPolicy::Always => self.sync_log()?,
            FsyncPolicy::Group { records, interval } => {
                let oldest = *self.first_unsynced.get_or_insert_with(Instant::now);
                if self.unsynced >= records.max(1) || oldest.elapsed() >= interval {
                    self.sync_log()?;
                }
            }
            FsyncPolicy::Never => {}
        }
        Ok(seq)
    }
}

impl<S, D> Store<S, D> {
    /// fsyncs the log if any record is unsynced, whatever the policy.
    ///
    /// # Errors
    /// [`StoreError::Io`] if the fsync fails, which poisons the store;
    /// [`StoreError::Poisoned`] after an earlier failure.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        self.usable()?;
        if self.unsynced > 0 {
            self.sync_log()?;
        }
        Ok(())
    }

    /// Syncs what is unsynced and closes the store, reporting what dropping
    /// it would only log.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.sync()
    }

    /// The last sequence number logged, or covered by the checkpoint;
    /// 0 for a new store. The next [`log`](Store::log) returns one more.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The last sequence number known durable: everything up to it survives
    /// a machine crash.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// The last sequence number the checkpoint on disk covers, if there is
    /// one.
    pub fn checkpoint_seq(&self) -> Option<u64> {
        self.checkpoint_seq
    }

    /// Under [`FsyncPolicy::Group`], when the oldest unsynced record is due
    /// to be synced: arm a timer for then and call [`sync`](Store::sync).
    /// `None` when nothing is waiting or under the other policies.
    pub fn sync_deadline(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::Group { interval, .. } => self.first_unsynced.map(|t| t + interval),
            _ => None,
        }
    }

    /// The fsync policy the store was opened with.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The checkpoint file (which may not exist yet).
    pub fn checkpoint_path(&self) -> &Path {
        &self.checkpoint_path
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn usable(&self) -> Result<(), StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned { dir: self.dir.clone() });
        }
        Ok(())
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: self.log_path.clone(),
            source,
        }
    }

    fn sync_log(&mut self) -> Result<(), StoreError> {
        if let Err(source) = self.log.sync_data() {
            self.poisoned = true;
            return Err(self.io_error("fsync", source));
        }
        self.synced_seq = self.last_seq;
        self.unsynced = 0;
        self.first_unsynced = None;
        Ok(())
    }

    /// Renames the temporary file of `kind` (the checkpoint or the log) over
    /// it and fsyncs the directory. If the rename happened but its
    /// durability is unknown, the store is poisoned.
    fn install(&mut self, kind: Kind) -> Result<(), StoreError> {
        let path = if kind == Kind::Checkpoint {
            &self.checkpoint_path
        } else {
            &self.log_path
        };
        let tmp = tmp_path(path);
        if let Err(source) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(StoreError::Io {
                op: "rename over",
                path: path.to_path_buf(),
                source,
            });
        }
        sync_dir(&self.dir).inspect_err(|_| self.poisoned = true)
    }
}

impl<S, D> Drop for Store<S, D> {
    fn drop(&mut self) {
        if matches!(self.policy, FsyncPolicy::Group { .. }) && self.unsynced > 0 && !self.poisoned {
            if let Err(e) = self.sync_log() {
                warn!(
                    "store: records {}..={} may be lost: {e}",
                    self.synced_seq + 1,
                    self.last_seq
                );
            }
        }
    }
}

/// A checkpoint read and checked, not yet decoded.
struct Checkpoint {
    seq: u64,
    payload: Vec<u8>,
}

/// Reads and checks the checkpoint at `path`; `None` if there is none. Any
/// damage is an error: a checkpoint is written whole or not at all.
fn read_checkpoint(path: &Path) -> Result<Option<Checkpoint>, StoreError> {
    let io_error = |op, source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |offset, reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("open", e)),
    };
    let len = file.metadata().map_err(|e| io_error("stat", e))?.len();
    let seq = decode_header(
        Kind::Checkpoint,
        &read_header(&file).map_err(|e| io_error("read", e))?,
        path,
    )?;
    let mut reader = FrameReader::new(&file, HEADER_LEN as u64, len);
    match reader.next().map_err(|e| io_error("read", e))? {
        Found::Frame { offset, seq: framed } if framed != seq => {
            return Err(corrupt(
                offset,
                format!("record {framed} in a checkpoint of record {seq}"),
            ));
        }
        Found::Frame { .. } => {}
        Found::Bad { offset, reason } => return Err(corrupt(offset, reason)),
        Found::End => return Err(corrupt(HEADER_LEN as u64, "checkpoint has no record".into())),
    }
    let payload = reader.payload().to_vec();
    match reader.next().map_err(|e| io_error("read", e))? {
        Found::End => Ok(Some(Checkpoint { seq, payload })),
        Found::Frame { offset, .. } | Found::Bad { offset, .. } => {
            Err(corrupt(offset, "unexpected bytes after the checkpoint record".into()))
        }
    }
}

/// Opens the log at `path`, checks it, cuts a torn tail and finishes an
/// interrupted compaction. Returns the file, where the next record goes and
/// the last sequence number on disk (the log's or the checkpoint's).
fn open_log(dir: &Path, path: &Path, checkpoint: Option<u64>) -> Result<(File, u64, u64), StoreError> {
    let io_error = |op, source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason,
    };
    let covered = checkpoint.unwrap_or(0);
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(covered) = checkpoint {
                // A store always has a log once opened, and logs are only
                // ever renamed over: someone removed it.
                warn!(
                    "store: {} is missing; starting a new one after checkpoint {covered} (any deltas logged after \
                     the checkpoint are lost)",
                    path.display()
                );
            }
            return Ok((new_log(dir, path, covered)?, HEADER_LEN as u64, covered));
        }
        Err(e) => return Err(io_error("open", e)),
    };
    let len = file.metadata().map_err(|e| io_error("stat", e))?.len();
    let base = decode_header(Kind::Log, &read_header(&file).map_err(|e| io_error("read", e))?, path)?;
    match checkpoint {
        None if base > 0 => {
            return Err(corrupt(format!(
                "the log starts after record {base} but there is no checkpoint"
            )));
        }
        Some(covered) if base > covered => {
            return Err(corrupt(format!(
                "the log starts after record {base} but the checkpoint covers only up to record {covered}"
            )));
        }
        _ => {}
    }
    let (end, last, torn) = scan_log(&file, path, len, base)?;
    if let Some(reason) = torn {
        warn!(
            "store: cutting the torn tail off {} at byte {end}, after record {last}: {reason} ({} bytes dropped)",
            path.display(),
            len - end
        );
        file.set_len(end).map_err(|e| io_error("truncate", e))?;
    }
    if base < covered && last <= covered {
        info!(
            "store: finishing the compaction of {} interrupted after checkpoint {covered}",
            path.display()
        );
        drop(file);
        return Ok((new_log(dir, path, covered)?, HEADER_LEN as u64, covered));
    }
    // What a killed writer left in the page cache, and the cut, become
    // durable before new records are built on them.
    file.sync_all().map_err(|e| io_error("fsync", e))?;
    Ok((file, end, last.max(covered)))
}

/// Checks every record of the log: returns the end of the last whole record,
/// its sequence number, and what is wrong with the bytes after it if any. A
/// bad record with nothing valid after it is a torn tail; with valid records
/// after it, it is an error.
fn scan_log(file: &File, path: &Path, len: u64, base: u64) -> Result<(u64, u64, Option<String>), StoreError> {
    let io_error = |source| StoreError::Io {
        op: "read",
        path: path.to_path_buf(),
        source,
    };
    let corrupt = |offset, reason| StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let mut reader = FrameReader::new(file, HEADER_LEN as u64, len);
    let mut last = base;
    loop {
        match reader.next().map_err(io_error)? {
            Found::End => return Ok((len, last, None)),
            Found::Frame { offset, seq } if seq != last + 1 => {
                return Err(corrupt(
                    offset,
                    format!("record {seq} where record {} should be", last + 1),
                ));
            }
            Found::Frame { seq, .. } => last = seq,
            Found::Bad { offset, reason } => {
                if let Some(later) = find_later_frame(file, offset + 1, len, last).map_err(io_error)? {
                    return Err(corrupt(
                        offset,
                        format!("{reason}, yet a valid record follows at byte {later}: not a torn tail"),
                    ));
                }
                return Ok((offset, last, Some(reason)));
            }
        }
    }
}

/// Creates an empty log at `path` starting after record `base`.
fn new_log(dir: &Path, path: &Path, base: u64) -> Result<File, StoreError> {
    let file = write_temp(path, &encode_header(Kind::Log, base), &[])?;
    let tmp = tmp_path(path);
    fs::rename(&tmp, path).map_err(|source| StoreError::Io {
        op: "rename over",
        path: path.to_path_buf(),
        source,
    })?;
    sync_dir(dir)?;
    Ok(file)
}

/// Writes `header` and `body` to the temporary file of `path` and fsyncs it.
/// On failure the temporary file is removed.
fn write_temp(path: &Path, header: &[u8], body: &[u8]) -> Result<File, StoreError> {
    let tmp = tmp_path(path);
    let write = || -> Result<File, (&'static str, io::Error)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| ("create", e))?;
        file.write_all_at(header, 0).map_err(|e| ("write", e))?;
        file.write_all_at(body, header.len() as u64).map_err(|e| ("write", e))?;
        file.sync_all().map_err(|e| ("fsync", e))?;
        Ok(file)
    };
    write().map_err(|(op, source)| {
        let _ = fs::remove_file(&tmp);
        StoreError::Io {
            op,
            path: tmp.clone(),
            source,
        }
    })
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Up to a header's worth of bytes from the start of `file`.
fn read_header(file: &File) -> io::Result<Vec<u8>> {
    let mut header = vec![0; HEADER_LEN];
    let mut filled = 0;
    while filled < HEADER_LEN {
        match file.read_at(&mut header[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    header.truncate(filled);
    Ok(header)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Creates `dir` if it is missing, durably.
fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        op: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}
