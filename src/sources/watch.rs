//! Path watches: inotify when it is usable, polling of the path's metadata
//! when it is not (or when a watch cannot be added).
//!
//! The loop owns one inotify fd. Several bindings may watch the same inode;
//! inotify hands out one watch descriptor for it, so watches are kept per
//! descriptor and every event is offered to each binding whose mask it hits.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use super::timer::TimerId;
use super::Target;
use crate::token::{Key, Slab};

/// Handle of a path watch, for [`Core::unwatch`](crate::Core::unwatch).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WatchId(pub(crate) Key);

/// One change of a watched path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened, as inotify reports it. `Q_OVERFLOW` means events were
    /// lost: rescan everything you watch.
    pub mask: EventMask,
    /// Pairs the `MOVED_FROM` and `MOVED_TO` halves of a rename.
    pub cookie: u32,
    /// The entry of a watched directory the event is about.
    pub name: Option<OsString>,
    /// True when the event was synthesised by polling the path's metadata
    /// (no inotify): it says that something changed, not every detail.
    pub polled: bool,
}

/// Metadata compared between two polls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Stat {
    pub(crate) fn of(path: &Path) -> Option<Stat> {
        let m = std::fs::metadata(path).ok()?;
        Some(Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
        })
    }

    /// The inotify-like mask for a change between two polls, empty if none.
    pub(crate) fn change(before: Option<Stat>, after: Option<Stat>) -> EventMask {
        match (before, after) {
            (None, None) => EventMask::empty(),
            (None, Some(_)) => EventMask::CREATE,
            (Some(_), None) => EventMask::DELETE_SELF,
            (Some(a), Some(b)) if (a.dev, a.ino) != (b.dev, b.ino) => EventMask::MOVE_SELF | EventMask::CREATE,
            (Some(a), Some(b)) if a != b => EventMask::MODIFY,
            _ => EventMask::empty(),
        }
    }
}

pub(crate) enum WatchKind {
    Inotify(WatchDescriptor),
    Poll {
        path: PathBuf,
        last: Option<Stat>,
        timer: TimerId,
    },
}

pub(crate) struct WatchSlot {
    pub(crate) target: Target,
    mask: WatchMask,
    pub(crate) kind: WatchKind,
}

/// An event read from the inotify fd, before it is routed.
pub(crate) struct RawEvent {
    wd: i32,
    mask: EventMask,
    cookie: u32,
    name: Option<OsString>,
}

pub(crate) struct Watches {
    pub(crate) inotify: Option<Inotify>,
    pub(crate) slots: Slab<WatchSlot>,
    by_wd: HashMap<i32, Vec<Key>>,
    buffer: Vec<u8>,
}

impl Watches {
    pub(crate) fn new(inotify: Option<Inotify>) -> Watches {
        Watches {
            inotify,
            slots: Slab::default(),
            by_wd: HashMap::new(),
            buffer: vec![0; 64 * 1024],
        }
    }

    pub(crate) fn add_inotify(&mut self, path: &Path, mask: WatchMask, target: Target) -> io::Result<WatchId> {
        let inotify = self
            .inotify
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "inotify is not available"))?;
        // MASK_ADD: another binding may already watch this inode.
        let wd = inotify.watches().add(path, mask | WatchMask::MASK_ADD)?;
        let id = wd.get_watch_descriptor_id();
        let key = self.slots.insert(WatchSlot {
            target,
            mask,
            kind: WatchKind::Inotify(wd),
        });
        self.by_wd.entry(id).or_default().push(key);
        Ok(WatchId(key))
    }

    pub(crate) fn add_poll(
        &mut self,
        path: &Path,
        mask: WatchMask,
        target: Target,
        timer: impl FnOnce(Key) -> TimerId,
    ) -> WatchId {
        let key = self.slots.insert(WatchSlot {
            target,
            mask,
            kind: WatchKind::Poll {
                path: path.to_path_buf(),
                last: Stat::of(path),
                timer: TimerId(Key {
                    index: 0,
                    gen: u32::MAX,
                }),
            },
        });
        let t = timer(key);
        if let Some(WatchSlot {
            kind: WatchKind::Poll { timer, .. },
            ..
        }) = self.slots.get_mut(key)
        {
            *timer = t;
        }
        WatchId(key)
    }

    /// Removes a binding; the inotify watch goes when its last binding does.
    /// Returns the polling timer to cancel, if it was a polled watch.
    pub(crate) fn remove(&mut self, id: WatchId) -> Option<(Target, Option<TimerId>)> {
        let slot = self.slots.remove(id.0)?;
        match slot.kind {
            WatchKind::Inotify(wd) => {
                let n = wd.get_watch_descriptor_id();
                let last = match self.by_wd.get_mut(&n) {
                    Some(keys) => {
                        keys.retain(|k| *k != id.0);
                        keys.is_empty()
                    }
                    None => false,
                };
                if last {
                    self.by_wd.remove(&n);
                    if let Some(inotify) = self.inotify.as_mut() {
                        // EINVAL: the kernel already dropped it (path deleted).
                        let _ = inotify.watches().remove(wd);
                    }
                }
                Some((slot.target, None))
            }
            WatchKind::Poll { timer, .. } => Some((slot.target, Some(timer))),
        }
    }

    /// Reads the inotify fd until `WouldBlock` (edge-triggered).
    pub(crate) fn read_inotify(&mut self) -> Vec<RawEvent> {
        let mut out = Vec::new();
        let Some(inotify) = self.inotify.as_mut() else {
            return out;
        };
        loop {
            match inotify.read_events(&mut self.buffer) {
                Ok(events) => out.extend(events.map(|e| RawEvent {
                    wd: e.wd.get_watch_descriptor_id(),
                    mask: e.mask,
                    cookie: e.cookie,
                    name: e.name.map(|n| n.to_os_string()),
                })),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("reading the inotify fd failed: {e}");
                    break;
                }
            }
        }
        out
    }

    /// Who gets `event`: every binding of its descriptor whose mask it hits;
    /// everyone for `Q_OVERFLOW`. Bindings of a descriptor the kernel dropped
    /// (`IGNORED`) are told, then forgotten.
    pub(crate) fn route(&mut self, raw: RawEvent) -> Vec<(WatchId, Target, WatchEvent)> {
        let event = WatchEvent {
            mask: raw.mask,
            cookie: raw.cookie,
            name: raw.name,
            polled: false,
        };
        let always = EventMask::Q_OVERFLOW | EventMask::IGNORED | EventMask::UNMOUNT;
        let keys: Vec<Key> = if raw.mask.contains(EventMask::Q_OVERFLOW) {
            self.by_wd.values().flatten().copied().collect()
        } else {
            self.by_wd.get(&raw.wd).cloned().unwrap_or_default()
        };
        let out = keys
            .iter()
            .filter_map(|&key| {
                let slot = self.slots.get(key)?;
                let hits = raw.mask.bits() & slot.mask.bits() != 0 || raw.mask.intersects(always);
                hits.then(|| (WatchId(key), slot.target, event.clone()))
            })
            .collect();
        if raw.mask.contains(EventMask::IGNORED) {
            for key in self.by_wd.remove(&raw.wd).unwrap_or_default() {
                self.slots.remove(key);
            }
        }
        out
    }

    /// Polls one polled watch: the event to deliver, if its path changed.
    pub(crate) fn poll(&mut self, key: Key) -> Option<(WatchId, Target, WatchEvent)> {
        let slot = self.slots.get_mut(key)?;
        let WatchKind::Poll { path, last, .. } = &mut slot.kind else {
            return None;
        };
        let now = Stat::of(path);
        let mask = Stat::change(*last, now);
        *last = now;
        if mask.is_empty() {
            return None;
        }
        Some((
            WatchId(key),
            slot.target,
            WatchEvent {
                mask,
                cookie: 0,
                name: None,
                polled: true,
            },
        ))
    }
}
