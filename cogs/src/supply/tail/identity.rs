//! Which file is which: a file is its device and inode, checked against
//! its first bytes ([`Head`]); where an open file or a known inode is now
//! ([`located`], [`find_inode`]); and which new file is a copy of a
//! followed one made by copytruncate ([`Copies`]).
//!
//! The search, at start, for files rotated away while the tail was
//! stopped is in [`recover`](super::recover).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::glob::gone;
use super::position::Mark;

/// Which file: device and inode, plus a checksum of its first bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Head {
    /// The first bytes of the file as read (at most the fingerprint size).
    pub(crate) bytes: Vec<u8>,
    pub(crate) crc: u32,
}

impl Head {
    pub(crate) fn set(&mut self, bytes: &[u8]) {
        self.bytes.clear();
        self.bytes.extend_from_slice(bytes);
        self.crc = crc32c::crc32c(bytes);
    }
}

/// What [`Tracked::check`](super::tracked::Tracked::check) found when a
/// file woke up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// Same file, maybe grown.
    Same,
    /// Shorter than the read position, or its first bytes changed: it was
    /// truncated (copytruncate) or rewritten in place.
    Truncated { size: u64 },
}

/// Whether two files' first bytes can be one file's: one begins with the other.
pub(crate) fn compatible(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Where an open file is now, from `/proc/self/fd` (it follows renames);
/// none if that is unavailable or the file was deleted.
pub(crate) fn located(file: &File) -> Option<PathBuf> {
    let path = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
    (path.is_absolute() && !path.as_os_str().as_encoded_bytes().ends_with(b" (deleted)")).then_some(path)
}

/// The entry of `dir` that is the file `key` (device, inode), if any.
pub(crate) fn find_inode(dir: &Path, (dev, ino): (u64, u64)) -> std::io::Result<Option<PathBuf>> {
    use std::os::unix::fs::DirEntryExt;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.ino() != ino {
            continue;
        }
        let path = entry.path();
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Where a copy made by copytruncate goes on: where its original was read
/// to when it was truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resume {
    pub(crate) mark: Mark,
    pub(crate) origin: Arc<str>,
    /// The original's held partial line went out at the truncation: the
    /// newline that ends it in the copy is not a line of its own.
    pub(crate) skip_newline: bool,
}

/// A new file that begins like a file being followed, or like one
/// truncated a moment ago, may be its copy. It is one once it begins with
/// all the first bytes known of a truncated file: it goes on where that
/// file was read to. It is none once its first bytes differ from every
/// such file's, or after `rotate_wait_ms`: it is read from its start.
#[derive(Debug)]
pub(crate) struct Suspect {
    pub(crate) since: Instant,
}

/// Whether a new file is a copy made by copytruncate.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CopyVerdict {
    No,
    /// It may be: its first bytes are not all there yet, or its original
    /// is not truncated yet.
    Maybe,
    /// It is: it goes on from here.
    Of(Resume),
}

/// A file found truncated: what it began with, and where its copy goes on.
#[derive(Debug)]
struct Truncation {
    head: Vec<u8>,
    resume: Resume,
    at: Instant,
}

/// The files truncated lately (for `rotate_wait_ms`): their copies, made by
/// copytruncate, go on from where they were read to.
#[derive(Debug)]
pub(crate) struct Copies {
    truncations: Vec<Truncation>,
    wait: Duration,
}

impl Copies {
    pub(crate) fn new(wait: Duration) -> Copies {
        Copies {
            truncations: Vec::new(),
            wait,
        }
    }

    /// A file that began with `head` was truncated after it was read to
    /// `resume`.
    pub(crate) fn truncated(&mut self, head: Vec<u8>, resume: Resume, now: Instant) {
        self.expire(now);
        self.truncations.push(Truncation { head, resume, at: now });
    }

    /// Forgets the truncations older than `rotate_wait_ms`.
    pub(crate) fn expire(&mut self, now: Instant) {
        let wait = self.wait;
        self.truncations.retain(|t| now < t.at + wait);
    }

    /// Whether a file that begins with `head` is a copy made by
    /// copytruncate: of a file truncated lately, or maybe of a followed file
    /// (whose first bytes as far as known are among `followed`) that is not
    /// truncated yet.
    pub(crate) fn verdict<'a>(
        &self,
        head: &[u8],
        startup: bool,
        mut followed: impl Iterator<Item = &'a [u8]>,
    ) -> CopyVerdict {
        if !startup {
            for t in &self.truncations {
                if !t.head.is_empty() && head.starts_with(&t.head) {
                    return CopyVerdict::Of(t.resume.clone());
                }
            }
            if self.truncations.iter().any(|t| t.head.starts_with(head)) {
                return CopyVerdict::Maybe;
            }
        }
        if followed.any(|begins| !begins.is_empty() && compatible(head, begins)) {
            CopyVerdict::Maybe
        } else {
            CopyVerdict::No
        }
    }
}
