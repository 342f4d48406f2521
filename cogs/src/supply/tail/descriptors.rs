//! Descriptors for the file table, within `max_open_files` (the
//! [`Budget`](super::limits::Budget)): which file gives its descriptor back
//! when another needs one (closed for the limit, least lately read first),
//! opening such a file again when it grows (checked to be the same file, or
//! found by inode where it was if it was rotated meanwhile), and the files
//! waiting for a descriptor, first come first served.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tourbillon::{Context, Next};

use super::discovery::Rescan;
use super::files::Files;
use super::glob::gone;
use super::identity::find_inode;
use super::limits::{out_of_fds, Pending, Snapshot, Want};

/// What [`Files::reopen`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reopen {
    /// Open again: to be read.
    Open,
    /// Not opened: unchanged since it was closed at its end.
    AtEnd,
    /// Not opened: unchanged, or gone (a rescan will tell), or to be tried
    /// again later.
    Not,
    /// Waits for a descriptor.
    Starved,
}

/// Where a new file that waited for a descriptor is now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Waited {
    /// Where it was found.
    There,
    /// Renamed meanwhile: here, in the same directory.
    Moved(PathBuf),
    /// Not to be found (logged).
    Lost,
}

impl Files {
    /// A new file found: true if it may be opened now (a descriptor is
    /// free, or can be freed, and none is waiting for one); else it waits
    /// its turn.
    pub(crate) fn admit(&mut self, p: Pending) -> Option<Pending> {
        if self.budget.pending.contains(&p.path) {
            return None;
        }
        if self.budget.starved.is_empty() && self.reserve() {
            Some(p)
        } else {
            log::debug!("{}: waits for a descriptor", p.path.display());
            self.budget.wait_open(p);
            self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
            None
        }
    }

    /// Makes room for one more open file, closing the least recently read
    /// idle one if need be; false if none can be closed.
    pub(crate) fn reserve(&mut self) -> bool {
        while self.budget.full() {
            if !self.evict_one() {
                return false;
            }
        }
        true
    }

    /// Closes the least recently read file that may be closed; false if
    /// none may.
    pub(crate) fn evict_one(&mut self) -> bool {
        while let Some((slot, serial, stamp)) = self.budget.idle.pop_front() {
            let Some(file) = self.get(slot) else {
                continue;
            };
            if file.serial != serial {
                continue;
            }
            file.in_idle = false;
            if !file.closable() {
                continue;
            }
            if file.stamp != stamp {
                // Read since it was queued: its turn comes later.
                file.in_idle = true;
                let stamp = file.stamp;
                self.budget.idle.push_back((slot, serial, stamp));
                continue;
            }
            self.close_for_limit(slot);
            return true;
        }
        // A file can become closable without reaching its end (a possible
        // copy settled, a file waiting behind another): look at them all.
        let lru = (0..self.len())
            .filter_map(|slot| self.peek(slot).filter(|f| f.closable()).map(|f| (f.stamp, slot)))
            .min();
        match lru {
            Some((_, slot)) => {
                self.close_for_limit(slot);
                true
            }
            None => false,
        }
    }

    /// Closes a file to give its descriptor to another; what it was read
    /// to, and how it looked, are kept to open it again.
    fn close_for_limit(&mut self, slot: u32) {
        let Some(file) = self.get(slot) else { return };
        file.closed = file
            .file
            .take()
            .and_then(|fd| fd.metadata().ok())
            .map(|m| Snapshot::of(&m));
        log::debug!("{}: closed for the descriptor limit at byte {}", file.origin, file.pos);
        self.budget.open -= 1;
        self.stats.open.set(self.budget.open as u64);
        self.stats.closed_for_limit.add(1);
    }

    /// Queues a file for a descriptor (at the front: its turn came, and
    /// it still has to wait).
    fn starve(&mut self, slot: u32, front: bool) {
        let Some(file) = self.get(slot) else { return };
        if std::mem::replace(&mut file.starved, true) {
            return;
        }
        let want = Want::Reopen(slot, file.serial);
        if front {
            self.budget.starved.push_front(want);
        } else {
            self.budget.starved.push_back(want);
        }
        self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
    }

    /// Gives descriptors to the files waiting for one, in turn, as long as
    /// there are some to give. Stops at a new file that gets one: it is
    /// returned, to be opened before the next call.
    pub(crate) fn serve<D, N: Next<D> + ?Sized>(
        &mut self,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> Option<Pending> {
        while let Some(want) = self.budget.starved.pop_front() {
            match want {
                Want::Open(p) => {
                    if !self.reserve() {
                        self.budget.starved.push_front(Want::Open(p));
                        break;
                    }
                    self.budget.pending.remove(&p.path);
                    return Some(p);
                }
                Want::Reopen(slot, serial) => {
                    let Some(file) = self.get(slot).filter(|f| f.serial == serial) else {
                        continue;
                    };
                    file.starved = false;
                    if file.file.is_some() {
                        continue;
                    }
                    match self.reopen(slot, true, rescan, ctx) {
                        Reopen::Open => self.queue(slot, ctx),
                        Reopen::AtEnd => self.reached_eof(slot, ctx),
                        Reopen::Starved => break,
                        Reopen::Not => {}
                    }
                }
            }
        }
        self.stats.waiting_for_descriptor.set(self.budget.starved.len() as u64);
        None
    }

    /// Where a new file that waited for a descriptor is now. If it was
    /// renamed or deleted meanwhile, it is looked for by inode in its
    /// directory, to be read there to its end like a file rotated away.
    pub(crate) fn locate_waited<D, N: Next<D> + ?Sized>(
        &mut self,
        p: &Pending,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> Waited {
        let moved = match std::fs::metadata(&p.path) {
            Ok(m) => (m.dev(), m.ino()) != p.key,
            Err(e) => gone(&e),
        };
        if !moved {
            return Waited::There;
        }
        rescan.now(ctx);
        let dir = p.path.parent().unwrap_or(Path::new("/"));
        let at = match find_inode(dir, p.key) {
            Ok(Some(at)) => at,
            Ok(None) => {
                log::warn!(
                    "{}: rotated away or deleted while it waited for a descriptor, and not in {} any more: its \
                     lines were not read",
                    p.path.display(),
                    dir.display()
                );
                self.stats.lost_while_closed.add(1);
                return Waited::Lost;
            }
            Err(e) => {
                self.looks.hit(dir, &e, ctx.now());
                rescan.later();
                return Waited::Lost;
            }
        };
        log::info!(
            "{}: renamed to {} while it waited for a descriptor: reading it there",
            p.path.display(),
            at.display()
        );
        Waited::Moved(at)
    }

    /// Opens again a file closed for the limit, if it changed: by its
    /// path, checked to be the same file; if it was rotated away meanwhile,
    /// by its inode in the directory it was in. `served`: its turn for a
    /// descriptor came.
    pub(crate) fn reopen<D, N: Next<D> + ?Sized>(
        &mut self,
        slot: u32,
        served: bool,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> Reopen {
        let now = ctx.now();
        let Some(file) = self.get(slot) else {
            return Reopen::Not;
        };
        let key = file.key();
        let orphan = file.paths.is_empty();
        let path = if orphan {
            let former = file
                .former
                .clone()
                .unwrap_or_else(|| PathBuf::from(file.origin.as_ref()));
            let dir = former.parent().unwrap_or(Path::new("/")).to_path_buf();
            match find_inode(&dir, key) {
                Ok(Some(path)) => path,
                Ok(None) => {
                    log::warn!(
                        "{}: rotated away or deleted while closed for the descriptor limit, and not in {} any \
                         more: bytes written to it after byte {} (if any) were not read",
                        file.origin,
                        dir.display(),
                        file.pos
                    );
                    self.stats.lost_while_closed.add(1);
                    self.reached_eof(slot, ctx);
                    return Reopen::Not;
                }
                Err(e) => {
                    // Not at its end: the tick looks again.
                    self.looks.hit(&dir, &e, now);
                    return Reopen::Not;
                }
            }
        } else {
            file.path()
        };
        let serial = file.serial;
        let m = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if gone(&e) => {
                rescan.now(ctx);
                return Reopen::Not;
            }
            Err(e) => {
                self.looks.hit(&path, &e, now);
                self.budget.recheck.push((slot, serial));
                return Reopen::Not;
            }
        };
        if (m.dev(), m.ino()) != key {
            // Its path names another file now: a rotation, for the rescan.
            rescan.now(ctx);
            return Reopen::Not;
        }
        if !orphan && file.closed.is_some_and(|c| c.unchanged(&m, file.pos)) {
            return Reopen::AtEnd;
        }
        if !((served || self.budget.starved.is_empty()) && self.reserve()) {
            self.starve(slot, served);
            return Reopen::Starved;
        }
        let fd = match std::fs::File::open(&path) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => {
                rescan.now(ctx);
                return Reopen::Not;
            }
            Err(e) => {
                self.opens.hit(&path, &e, now);
                if out_of_fds(&e) {
                    self.starve(slot, served);
                    return Reopen::Starved;
                }
                self.budget.recheck.push((slot, serial));
                return Reopen::Not;
            }
        };
        if !fd.metadata().is_ok_and(|m| (m.dev(), m.ino()) == key) {
            // Replaced between the look and the open.
            rescan.now(ctx);
            return Reopen::Not;
        }
        let Some(file) = self.get(slot) else {
            return Reopen::Not;
        };
        log::debug!("{}: opened again at byte {}", file.origin, file.pos);
        file.file = Some(fd);
        file.closed = None;
        // Its first bytes are checked before it is read on.
        file.at_eof = true;
        self.budget.open += 1;
        self.stats.open.set(self.budget.open as u64);
        self.stats.reopened.add(1);
        Reopen::Open
    }

    /// At a tick: the files whose reopening failed for another reason than
    /// a want of descriptors get a turn again; the throttled logs of failed
    /// looks and opens say what they held back.
    pub(crate) fn recheck<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let now = ctx.now();
        self.looks.tick(now);
        self.opens.tick(now);
        for (slot, serial) in std::mem::take(&mut self.budget.recheck) {
            if self.get(slot).is_some_and(|f| f.serial == serial) {
                self.queue(slot, ctx);
            }
        }
    }
}
