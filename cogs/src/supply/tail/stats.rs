//! [`TailStats`]: the counters a [`Tail`](super::Tail) keeps, shared with
//! whoever reads them while it runs (each part of the tail holds a clone).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::meter::{Figure, Meter, Probe};
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
    /// Files followed now (open or waiting for a descriptor).
    pub followed: Counter,
    /// When the positions were last saved (milliseconds since the Unix
    /// epoch; 0 before the first save or without `checkpoint_dir`).
    pub last_save_ms: Counter,
    /// Lines in and out, bytes read: the tail's meter.
    pub meter: Meter,
    /// Where each followed file is read up to, by serial.
    pub files: FileTable,
}

/// Where each followed file is read up to, shared with whoever reads the
/// lag: one short lock when a file comes and goes, none per read.
#[derive(Clone, Debug, Default)]
pub struct FileTable(Arc<Mutex<BTreeMap<u64, Arc<FileRead>>>>);

/// One followed file: its identity and the bytes read from it.
#[derive(Debug)]
pub struct FileRead {
    /// The path it was found under.
    pub origin: Arc<str>,
    /// Its device and inode.
    pub key: (u64, u64),
    /// Bytes read (its offset).
    pub pos: AtomicU64,
}

impl FileRead {
    pub(crate) fn new(origin: Arc<str>, key: (u64, u64)) -> FileRead {
        FileRead {
            origin,
            key,
            pos: AtomicU64::new(0),
        }
    }

    /// Read up to `pos` now.
    pub(crate) fn at(&self, pos: u64) {
        self.pos.store(pos, Ordering::Relaxed);
    }
}

impl FileTable {
    pub(crate) fn put(&self, serial: u64, file: Arc<FileRead>) {
        self.lock().insert(serial, file);
    }

    pub(crate) fn remove(&self, serial: u64) {
        self.lock().remove(&serial);
    }

    /// The files followed now.
    pub fn files(&self) -> Vec<Arc<FileRead>> {
        self.lock().values().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<FileRead>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Milliseconds since the Unix epoch now.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The tail's figures. Its lag is the bytes between where a file is read
/// up to and its size now, for each file still at its path (one `stat`
/// per file, taken by the reader of the figures, not by the loop); a file
/// rotated away has no path to look at and is left out until it is closed.
impl Probe for TailStats {
    fn read(&self, out: &mut Vec<Figure>) {
        out.push(Figure::gauge(
            "tail_files_followed",
            "Files a tail follows now.",
            self.followed.get() as f64,
        ));
        out.push(Figure::gauge(
            "tail_files_open",
            "Files a tail holds a descriptor for now.",
            self.open.get() as f64,
        ));
        out.push(Figure::counter(
            "tail_rotations_total",
            "Files a tail saw lose their path (rotated, deleted, swapped).",
            self.rotated.get(),
        ));
        out.push(Figure::counter(
            "tail_truncations_total",
            "Files a tail found truncated and read again from the start.",
            self.truncated.get(),
        ));
        let last = self.last_save_ms.get();
        if last > 0 {
            out.push(Figure::gauge(
                "tail_checkpoint_age_seconds",
                "Seconds since a tail last saved its positions.",
                unix_ms().saturating_sub(last) as f64 / 1000.0,
            ));
        }
        for f in self.files.files() {
            let Ok(meta) = std::fs::metadata(&*f.origin) else {
                continue;
            };
            if (meta.dev(), meta.ino()) != f.key {
                continue;
            }
            let lag = meta.len().saturating_sub(f.pos.load(Ordering::Relaxed));
            out.push(
                Figure::gauge("tail_lag_bytes", "Bytes of a followed file not read yet.", lag as f64)
                    .with_label("file", f.origin.to_string()),
            );
        }
    }
}
