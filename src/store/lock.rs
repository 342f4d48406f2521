//! One writer per store: an exclusive `flock` on a lock file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::StoreError;

/// Lock files held by live stores of this process, by device and inode.
static HELD: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// How long to wait for a lock that a child forked from this process holds.
const INHERITED_GRACE: Duration = Duration::from_millis(500);

/// An exclusive lock held for as long as this value lives.
///
/// `flock` locks belong to the open file description, so the lock goes away
/// with the descriptor when the holder dies, however it dies. The file is
/// left in place: removing it would let a third writer lock a fresh file
/// while the second still holds the old one.
///
/// A child forked from this process shares the description until it execs
/// (the descriptor is close-on-exec), so a store dropped and reopened while
/// another thread spawns a process can find its own old lock still held for
/// a moment: when the lock file names this process and no store here holds
/// it, the lock is retried for a short while.
#[derive(Debug)]
pub(crate) struct Lock {
    id: (u64, u64),
    file: File,
}

impl Lock {
    /// Takes the lock at `path`, creating the file, and writes our pid in it.
    pub(crate) fn acquire(path: &Path) -> Result<Lock, StoreError> {
        let io_err = |op, source| StoreError::Io {
            op,
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io_err("open lock file", e))?;
        let meta = file.metadata().map_err(|e| io_err("stat", e))?;
        let id = (meta.dev(), meta.ino());
        let me = std::process::id();
        let started = Instant::now();
        loop {
            let err = {
                let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
                if held.contains(&id) {
                    return Err(StoreError::Locked {
                        path: path.to_path_buf(),
                        pid: Some(me),
                    });
                }
                // SAFETY: flock on a descriptor we own; no memory is involved.
                if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                    held.push(id);
                    break;
                }
                io::Error::last_os_error()
            };
            match err.raw_os_error() {
                Some(libc::EINTR) => {}
                Some(libc::EWOULDBLOCK) => {
                    let pid = holder(&file);
                    if pid != Some(me) || started.elapsed() >= INHERITED_GRACE {
                        return Err(StoreError::Locked {
                            path: path.to_path_buf(),
                            pid,
                        });
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                _ => return Err(io_err("lock", err)),
            }
        }
        let lock = Lock { id, file };
        let pid = format!("{me}\n");
        lock.file.set_len(0).map_err(|e| io_err("write pid to", e))?;
        lock.file
            .write_all_at(pid.as_bytes(), 0)
            .map_err(|e| io_err("write pid to", e))?;
        Ok(lock)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id| *id != self.id);
    }
}

/// The pid the holder wrote, if it has written it yet.
fn holder(file: &File) -> Option<u32> {
    let mut buf = [0; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}
