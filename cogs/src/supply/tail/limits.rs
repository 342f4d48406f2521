//! How many descriptors the tail holds, which file gives one back when
//! another needs it, and the throttled log of looks and opens that failed.

use std::collections::{HashSet, VecDeque};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{Counter, LogThrottle, Verdict};

/// The most files the default lets the tail hold open.
const DEFAULT_MAX: u64 = 1024;
/// At most one line per this long about one kind of trouble.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The default `max_open_files`: 1024, but at most half the soft
/// `RLIMIT_NOFILE` of the process, so drains, sockets and the checkpoint
/// keep descriptors of their own.
pub(crate) fn default_max_open_files() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        libc::RLIM_INFINITY
    };
    if soft == libc::RLIM_INFINITY {
        DEFAULT_MAX as usize
    } else {
        (soft / 2).clamp(1, DEFAULT_MAX) as usize
    }
}

/// Whether an error says the process or the system is out of descriptors.
pub(crate) fn out_of_fds(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// What a file looked like when it was closed for the limit: if its path
/// still shows exactly that, and it was read to its end, nothing happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Snapshot {
    pub(crate) fn of(m: &Metadata) -> Snapshot {
        Snapshot {
            len: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Its size then.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Nothing to read: unchanged since the close, and read to `pos`, its end.
    pub(crate) fn unchanged(&self, now: &Metadata, pos: u64) -> bool {
        *self == Snapshot::of(now) && self.len == pos
    }
}

/// A new file that waits for a descriptor.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) path: PathBuf,
    pub(crate) paths: Vec<PathBuf>,
    /// Its device and inode when it was found.
    pub(crate) key: (u64, u64),
    pub(crate) after: Option<u64>,
    pub(crate) startup: bool,
}

/// What waits for a descriptor.
#[derive(Debug)]
pub(crate) enum Want {
    /// A new file, to open.
    Open(Pending),
    /// A followed file closed for the limit, to open again (slot, serial).
    Reopen(u32, u64),
}

/// The descriptors of followed files, against `max_open_files`.
#[derive(Debug)]
pub(crate) struct Budget {
    pub(crate) max: usize,
    /// Followed files holding a descriptor now.
    pub(crate) open: usize,
    /// Files that may be closed (slot, serial, read stamp), least recently
    /// read first. Entries go stale (the file was read again, closed or
    /// rotated): they are checked when taken, a file read since goes to
    /// the back, so each file is in it at most once.
    pub(crate) idle: VecDeque<(u32, u64, u64)>,
    /// Files that need a descriptor, first come first served.
    pub(crate) starved: VecDeque<Want>,
    /// Paths of the new files among `starved`.
    pub(crate) pending: HashSet<PathBuf>,
    /// Files whose reopening failed for another reason than a want of
    /// descriptors (slot, serial): given a turn again at the next tick.
    pub(crate) recheck: Vec<(u32, u64)>,
    /// Counts reads: a file's stamp is the count at its last read.
    pub(crate) clock: u64,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Budget {
        Budget {
            max,
            open: 0,
            idle: VecDeque::new(),
            starved: VecDeque::new(),
            pending: HashSet::new(),
            recheck: Vec::new(),
            clock: 0,
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.open >= self.max
    }

    /// A new file found waits for a descriptor (once: rescans find it again).
    pub(crate) fn wait_open(&mut self, pending: Pending) {
        if self.pending.insert(pending.path.clone()) {
            self.starved.push_back(Want::Open(pending));
        }
    }
}

/// One kind of recurring trouble with paths, logged at most once per
/// interval with how often it happened and the last path and error.
#[derive(Debug)]
pub(crate) struct Trouble {
    /// "cannot look at", "cannot open".
    what: &'static str,
    /// What the tail does about it.
    then: &'static str,
    throttle: LogThrottle,
    last: String,
    count: Counter,
}

impl Trouble {
    pub(crate) fn new(what: &'static str, then: &'static str, count: Counter) -> Trouble {
        Trouble {
            what,
            then,
            throttle: LogThrottle::new(LOG_INTERVAL),
            last: String::new(),
            count,
        }
    }

    /// Counts one occurrence; logs it unless one was logged lately.
    pub(crate) fn hit(&mut self, path: &Path, e: &io::Error, now: Instant) {
        self.count.add(1);
        self.last = format!("{}: {e}", path.display());
        if let Verdict::Log { held } = self.throttle.hit(now) {
            if let Some(s) = held {
                log::warn!("tail: {} more times {} in {:.1?}", s.count, self.what, s.over);
            }
            log::warn!(
                "tail: {} {}; {} ({} times in all)",
                self.what,
                self.last,
                self.then,
                self.throttle.total()
            );
        }
    }

    /// Logs what was held back, once its interval is over.
    pub(crate) fn tick(&mut self, now: Instant) {
        if let Some(s) = self.throttle.summary(now) {
            log::warn!(
                "tail: {} more times {} in {:.1?}, the last {} ({} times in all)",
                s.count,
                self.what,
                s.over,
                self.last,
                self.throttle.total()
            );
        }
    }
}
