//! Finding the files to follow: the patterns (see [`glob`](super::glob)),
//! the directories watched for new entries, the directories matched
//! symlinks point into, and when to expand the patterns again
//! ([`Rescan`]).
//!
//! [`Discovery::scan`] says what the patterns match now, by device and
//! inode; which of those files are followed already, and which paths
//! moved, is for the file table to tell.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tourbillon::{Context, EventMask, ImmediateId, Next, WatchEvent, WatchId, WatchMask};

use super::glob::{gone, Exclude, Expansion, Pattern};
use super::settings::TailSettings;
use crate::Error;

/// Watch keys carry a tag and a serial: files' serials and directories'
/// are counted apart.
pub(crate) const FILE_TAG: u64 = 1 << 62;
pub(crate) const DIR_TAG: u64 = 1 << 61;
pub(crate) const SERIAL: u64 = DIR_TAG - 1;

/// What a followed file is watched for.
pub(crate) fn file_mask() -> WatchMask {
    WatchMask::MODIFY | WatchMask::ATTRIB | WatchMask::MOVE_SELF | WatchMask::DELETE_SELF
}

fn dir_mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MOVED_FROM
        | WatchMask::MOVED_TO
        | WatchMask::DELETE
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

/// A watched directory: the (pattern, part) pairs its entries are matched
/// against.
#[derive(Debug)]
struct Dir {
    serial: u64,
    watch: Option<WatchId>,
    parts: BTreeSet<(usize, usize)>,
}

/// When the patterns are to be expanded again: at once (an immediate), or
/// at the next tick (a look or an open failed).
#[derive(Debug)]
pub(crate) struct Rescan {
    /// The immediate asked for, not run yet.
    pending: Option<ImmediateId>,
    key: u64,
    /// The next rescan also reads every file (events were lost).
    all: bool,
    /// Try again at the next tick.
    retry: bool,
    /// Finishing: nothing more is asked for.
    closed: bool,
}

impl Rescan {
    /// Rescans run as the immediate `key`.
    pub(crate) fn new(key: u64) -> Rescan {
        Rescan {
            pending: None,
            key,
            all: false,
            retry: false,
            closed: false,
        }
    }

    /// Asks for a rescan as soon as possible.
    pub(crate) fn now<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.pending.is_none() && !self.closed {
            self.pending = ctx.enqueue(self.key).ok();
        }
    }

    /// Asks for a rescan at the next tick.
    pub(crate) fn later(&mut self) {
        self.retry = true;
    }

    /// Whether a rescan at the next tick was asked for (and forgets it).
    pub(crate) fn take_later(&mut self) -> bool {
        std::mem::take(&mut self.retry)
    }

    /// Events were lost: the next rescan reads every file too. False if
    /// that was known already.
    pub(crate) fn lost_events(&mut self) -> bool {
        !std::mem::replace(&mut self.all, true)
    }

    /// Whether the rescan running now is to read every file (and forgets it).
    pub(crate) fn take_all(&mut self) -> bool {
        std::mem::take(&mut self.all)
    }

    /// The immediate fired: the rescan runs now.
    pub(crate) fn fired(&mut self) {
        self.pending = None;
    }

    /// Whether a rescan is asked for and not run yet.
    pub(crate) fn pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Finishing: no more rescans.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }
}

/// What the patterns match now.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Matched files by device and inode, with their paths.
    pub(crate) found: HashMap<(u64, u64), Vec<PathBuf>>,
    /// Followed paths that could not be looked at: they keep naming their
    /// file.
    pub(crate) unknown: HashSet<PathBuf>,
    /// Looks that failed, and why.
    pub(crate) failed: Vec<(PathBuf, io::Error)>,
}

/// What an event on a watched directory means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DirNews {
    /// Nothing that could change what the patterns match.
    Nothing,
    /// The patterns are to be expanded again.
    Rescan,
    /// Only if a followed file has this path.
    IfFollowed(PathBuf),
}

/// The patterns and the directories watched for them.
pub(crate) struct Discovery {
    includes: Vec<Pattern>,
    excludes: Vec<Exclude>,
    /// `rotated_paths`: where a restart also looks for files rotated away.
    rotated: Vec<Pattern>,
    /// Where the matched symlinks point (their directories are watched).
    targets: HashSet<PathBuf>,
    dirs: BTreeMap<PathBuf, Dir>,
    dir_serials: HashMap<u64, PathBuf>,
    next_serial: u64,
    /// Batch mode: nothing is watched.
    batch: bool,
    poll_interval: Duration,
}

impl Discovery {
    /// Parses the patterns of `settings`, relative ones from `cwd`; the
    /// error names the key.
    pub(crate) fn new(settings: &TailSettings, cwd: &Path) -> Result<Discovery, Error> {
        let patterns = |key: &str, list: &[String]| {
            list.iter()
                .map(|p| Pattern::parse(p, cwd).map_err(|e| Error::setting(key, e)))
                .collect::<Result<Vec<_>, _>>()
        };
        let includes = patterns("include", &settings.include)?;
        let excludes = settings
            .exclude
            .iter()
            .map(|p| Exclude::parse(p, cwd).map_err(|e| Error::setting("exclude", e)))
            .collect::<Result<Vec<_>, _>>()?;
        let rotated = patterns("rotated_paths", &settings.rotated_paths)?;
        Ok(Discovery {
            includes,
            excludes,
            rotated,
            targets: HashSet::new(),
            dirs: BTreeMap::new(),
            dir_serials: HashMap::new(),
            next_serial: 0,
            batch: settings.batch,
            poll_interval: Duration::from_millis(settings.poll_interval_ms),
        })
    }

    /// The directories the patterns look into.
    pub(crate) fn dirs(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.keys().cloned()
    }

    /// The `rotated_paths` patterns.
    pub(crate) fn rotated(&self) -> &[Pattern] {
        &self.rotated
    }

    /// Expands the patterns and watches the directories they look into;
    /// `origins`: the first paths of the followed files (symlinks among
    /// them have their targets' directories watched), `followed`: every
    /// path they have (looked at one by one where a look failed).
    pub(crate) fn scan<'a, D, N: Next<D> + ?Sized>(
        &mut self,
        origins: &[PathBuf],
        followed: impl Iterator<Item = &'a PathBuf>,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> Scan {
        let mut exp = self.expand(origins);
        if !self.batch {
            // A directory is watched before its entries count: an entry
            // made between the listing and the watch would go unseen.
            for _ in 0..8 {
                if self.sync_dirs(&exp, rescan, ctx) == 0 {
                    break;
                }
                exp = self.expand(origins);
            }
        }
        let mut scan = Scan::default();
        let mut looked: HashSet<PathBuf> = HashSet::new();
        for path in &exp.files {
            match std::fs::metadata(path) {
                Ok(m) => {
                    scan.found.entry((m.dev(), m.ino())).or_default().push(path.clone());
                    looked.insert(path.clone());
                }
                Err(e) if !gone(&e) => exp.failed.push((path.clone(), e)),
                Err(_) => {}
            }
        }
        // Where a look failed, each path followed there is looked at on its
        // own; if that fails too, it keeps naming its file: a failed look
        // says nothing about what is there.
        if !exp.failed.is_empty() {
            let old: Vec<PathBuf> = followed
                .filter(|p| !looked.contains(*p) && exp.covers(p))
                .cloned()
                .collect();
            for path in old {
                match std::fs::metadata(&path) {
                    Ok(m) => scan.found.entry((m.dev(), m.ino())).or_default().push(path),
                    Err(e) if gone(&e) => {}
                    Err(_) => {
                        scan.unknown.insert(path);
                    }
                }
            }
        }
        scan.failed = exp.failed;
        scan
    }

    fn expand(&mut self, origins: &[PathBuf]) -> Expansion {
        let mut exp = Expansion::default();
        for (i, p) in self.includes.iter().enumerate() {
            p.expand(i, &mut exp);
        }
        exp.files.retain(|f| !self.excludes.iter().any(|e| e.matches(f)));
        self.watch_targets(&mut exp, origins);
        exp
    }

    /// The directories the matched symlinks point into are watched too: a
    /// file renamed there and a new one made in its place (the kubelet's
    /// rotation behind `/var/log/containers/*.log`) change nothing in the
    /// symlink's own directory. Followed files' first paths count even
    /// while their symlink dangles, between the rename and the creation.
    fn watch_targets(&mut self, exp: &mut Expansion, origins: &[PathBuf]) {
        self.targets.clear();
        let links: BTreeSet<PathBuf> = exp.files.iter().chain(origins).cloned().collect();
        for link in links {
            if !std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
                continue;
            }
            let (Ok(to), Some(parent)) = (std::fs::read_link(&link), link.parent()) else {
                continue;
            };
            let to = parent.join(to);
            let (Some(name), Some(dir)) = (to.file_name(), to.parent()) else {
                continue;
            };
            if let Ok(dir) = std::fs::canonicalize(dir) {
                self.targets.insert(dir.join(name));
                exp.dirs.entry(dir).or_default();
            }
        }
    }

    /// Watches the directories the expansion wants, and no others but
    /// those under a failed look; returns how many watches it added.
    fn sync_dirs<D, N: Next<D> + ?Sized>(
        &mut self,
        exp: &Expansion,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> usize {
        let wanted = &exp.dirs;
        let mut added = 0;
        // A directory under a failed look may still be there: kept.
        let unwanted: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| !wanted.contains_key(*d) && !exp.covers(d))
            .cloned()
            .collect();
        for dir in unwanted {
            if let Some(d) = self.dirs.remove(&dir) {
                self.dir_serials.remove(&d.serial);
                if let Some(id) = d.watch {
                    ctx.unwatch(id);
                }
            }
        }
        for (dir, parts) in wanted {
            let parts = parts.clone();
            if let Some(d) = self.dirs.get_mut(dir) {
                if d.watch.is_some() {
                    d.parts = parts;
                    continue;
                }
            }
            let serial = match self.dirs.get(dir) {
                Some(d) => d.serial,
                None => {
                    self.next_serial += 1;
                    self.next_serial
                }
            };
            let watch = match ctx.watch_or_poll(dir, dir_mask(), self.poll_interval, DIR_TAG | serial) {
                Ok(id) => {
                    added += 1;
                    Some(id)
                }
                Err(e) => {
                    log::warn!("{}: cannot watch this directory: {e}", dir.display());
                    rescan.later();
                    None
                }
            };
            self.dir_serials.insert(serial, dir.clone());
            self.dirs.insert(dir.clone(), Dir { serial, watch, parts });
        }
        added
    }

    /// What an event on the directory watched as `serial` means.
    pub(crate) fn dir_event(&mut self, serial: u64, event: &WatchEvent) -> DirNews {
        let Some(dir) = self.dir_serials.get(&serial).cloned() else {
            return DirNews::Nothing;
        };
        if event.mask.contains(EventMask::IGNORED) {
            if let Some(d) = self.dirs.get_mut(&dir) {
                d.watch = None;
            }
            return DirNews::Rescan;
        }
        match &event.name {
            Some(name) if !event.polled => self.matters(&dir, name),
            _ => DirNews::Rescan,
        }
    }

    /// Whether the entry `name` of the watched `dir` could change what the
    /// patterns match.
    fn matters(&self, dir: &Path, name: &OsStr) -> DirNews {
        let Some(d) = self.dirs.get(dir) else {
            return DirNews::Rescan;
        };
        let path = dir.join(name);
        if self.targets.contains(&path)
            || d.parts
                .iter()
                .any(|&(p, part)| self.includes[p].entry_matters(part, name))
        {
            DirNews::Rescan
        } else {
            DirNews::IfFollowed(path)
        }
    }
}
