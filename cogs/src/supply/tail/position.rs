//! Where to restart: the positions the tail saves, and the lines in flight
//! that hold them back.
//!
//! A file's saved position advances only over lines reported done
//! (`event_done`): lines go out in order and are tracked in one queue; when
//! the oldest ones are done they leave it, and the place in the file the
//! last of them ends at becomes the file's committed position. Lines that
//! finish out of order wait in the queue until those before them are done.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use tourbillon::store::{Store, StoreError};
use tourbillon::EventId;

use crate::ledger::Ledger;

/// A place in a file: a byte offset, and how many lines lie before it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) pos: u64,
    pub(crate) line: u64,
    /// The line before `pos` went out without its newline (it was the
    /// file's last line then): a newline at `pos` ends it, and is no line
    /// of its own.
    pub(crate) open: bool,
}

impl Mark {
    /// The place after `line` complete lines, `pos` bytes in.
    pub(crate) fn at(pos: u64, line: u64) -> Mark {
        Mark { pos, line, open: false }
    }
}

/// Where one file stands in a tail's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Device of the file.
    pub dev: u64,
    /// Inode of the file.
    pub ino: u64,
    /// The path it was found under (for messages and for finding it again
    /// after a rotation while the tail was stopped).
    pub path: String,
    /// Bytes from the start of the file up to which every line was
    /// delivered: a restart reads from here.
    pub pos: u64,
    /// Lines before `pos`: the line number of the last one delivered.
    pub line: u64,
    /// How many first bytes of the file `head_crc` covers.
    pub head_len: u32,
    /// CRC-32C of the file's first `head_len` bytes: a file with the same
    /// device and inode but other first bytes is another file.
    pub head_crc: u32,
    /// Where the file itself was when the position was saved (symlinks
    /// resolved, and after any rename the tail saw while it ran): a restart
    /// looks for it there and among its siblings. None in checkpoints
    /// written before version 2.
    #[serde(default)]
    pub real_path: Option<String>,
    /// Its size when the position was saved: a file that cannot be found
    /// again had at least `size - pos` bytes never delivered. 0 in
    /// checkpoints written before version 2.
    #[serde(default)]
    pub size: u64,
    /// The line before `pos` went out without its newline, as the file's
    /// last line then: a newline at `pos` only ends it.
    #[serde(default)]
    pub open: bool,
}

impl Position {
    pub(crate) fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark {
            pos: self.pos,
            line: self.line,
            open: self.open,
        }
    }
}

/// The checkpoint: every file's position. Versioned, so a later format can
/// read this one: version 1 (without `real_path`, `size`, `open`) still
/// loads; what is written is version 2.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Saved {
    V1(Vec<Position>),
    V2(Vec<Position>),
}

/// A change logged between two checkpoints.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Change {
    V1 {
        /// Positions that moved (or files that are new).
        set: Vec<Position>,
        /// Files forgotten: closed for good, or gone.
        forget: Vec<(u64, u64)>,
    },
    /// As `V1`, with positions of version 2.
    V2 {
        /// Positions that moved (or files that are new).
        set: Vec<Position>,
        /// Files forgotten: closed for good, or gone.
        forget: Vec<(u64, u64)>,
    },
}

pub(crate) type Positions = HashMap<(u64, u64), Position>;

pub(crate) fn load(saved: Saved) -> Positions {
    match saved {
        Saved::V1(all) | Saved::V2(all) => all.into_iter().map(|p| (p.key(), p)).collect(),
    }
}

pub(crate) fn replay(positions: &mut Positions, change: Change) {
    match change {
        Change::V1 { set, forget } | Change::V2 { set, forget } => {
            for key in forget {
                positions.remove(&key);
            }
            for p in set {
                positions.insert(p.key(), p);
            }
        }
    }
}

/// Reads the positions a store holds: its checkpoint and the changes since.
pub(crate) fn recover(store: &Store<Saved, Change>) -> Result<Positions, StoreError> {
    let mut folded: Option<Positions> = None;
    let base = store.recover(
        || Saved::V1(Vec::new()),
        |saved, change| {
            let positions = folded.get_or_insert_with(|| load(std::mem::replace(saved, Saved::V1(Vec::new()))));
            replay(positions, change);
        },
    )?;
    Ok(match folded {
        Some(positions) => positions,
        None => load(base),
    })
}

pub(crate) fn save(positions: &Positions) -> Saved {
    let mut all: Vec<Position> = positions.values().cloned().collect();
    all.sort_by_key(Position::key);
    Saved::V2(all)
}

/// One line in flight.
#[derive(Debug)]
struct Entry {
    id: EventId,
    /// The file's slot in the tail, and its truncation epoch then.
    slot: u32,
    epoch: u32,
    /// Where the file may restart once this line and all before it are done.
    mark: Option<Mark>,
    done: bool,
    /// Renamed or merged downstream: the ledger says when it is done.
    moved: bool,
}

/// A line that left the queue: done, with all before it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Delivered {
    pub(crate) slot: u32,
    pub(crate) epoch: u32,
    pub(crate) mark: Option<Mark>,
}

/// The lines in flight, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    entries: VecDeque<Entry>,
    /// Sequence number of the first entry.
    head: u64,
    /// Ids were pushed in increasing order (they are, unless a maker gives
    /// its own): find them by binary search.
    unsorted: bool,
    /// The lines that were renamed or merged downstream, by sequence
    /// number: the [`Ledger`] follows them; the others (almost all) are
    /// found in the queue directly, with no bookkeeping per line.
    moved: Ledger<u64>,
}

impl Acks {
    /// Tracks line `id` of the file in `slot`; returns its sequence number.
    pub(crate) fn push(&mut self, id: EventId, slot: u32, epoch: u32) -> u64 {
        if self.entries.back().is_some_and(|last| last.id >= id) {
            self.unsorted = true;
        }
        self.entries.push_back(Entry {
            id,
            slot,
            epoch,
            mark: None,
            done: false,
            moved: false,
        });
        self.head + self.entries.len() as u64 - 1
    }

    /// Sets where the file may restart once line `seq` is delivered; false
    /// if it already was (then the mark holds now).
    pub(crate) fn mark(&mut self, seq: u64, mark: Mark) -> bool {
        match seq.checked_sub(self.head) {
            Some(i) => match self.entries.get_mut(i as usize) {
                Some(entry) => {
                    entry.mark = Some(mark);
                    true
                }
                None => false,
            },
            None => false,
        }
    }

    fn find(&self, id: EventId) -> Option<usize> {
        // Ids are dense when the tail is the only cog drawing them: the
        // offset from the first one is then the index.
        let first = self.entries.front()?.id.0;
        let guess = id.0.wrapping_sub(first) as usize;
        if self.entries.get(guess).is_some_and(|e| e.id == id) {
            return Some(guess);
        }
        if self.unsorted {
            self.entries.iter().position(|e| e.id == id)
        } else {
            self.entries.binary_search_by_key(&id, |e| e.id).ok()
        }
    }

    /// Line `id` is finished (and whatever was merged into it). False if
    /// it is none of ours. A line renamed away is done only as what it
    /// became (the [ledger](crate::ledger)'s rule).
    pub(crate) fn done(&mut self, id: EventId) -> bool {
        let (head, entries) = (self.head, &mut self.entries);
        // Almost no line is renamed: skip the ledger's lookup then.
        let known = !self.moved.is_empty()
            && self.moved.done(id, |seq| {
                if let Some(e) = seq.checked_sub(head).and_then(|i| entries.get_mut(i as usize)) {
                    e.done = true;
                }
            });
        if known {
            return true;
        }
        match self.find(id) {
            Some(i) if !self.entries[i].moved => {
                self.entries[i].done = true;
                true
            }
            _ => false,
        }
    }

    /// Line `old` lives on as `new`: it is done when `new` is.
    pub(crate) fn rename(&mut self, old: EventId, new: EventId) {
        if old == new {
            return;
        }
        // Both go to the ledger, so that `new` (one of ours, or not) owes
        // its own line and `old`'s.
        self.adopt(old);
        self.adopt(new);
        self.moved.rename(old, new);
    }

    /// Hands line `id`, if it is one of ours still in flight, to the ledger.
    fn adopt(&mut self, id: EventId) {
        if self.moved.contains(id) {
            return;
        }
        let Some(i) = self.find(id) else { return };
        let e = &mut self.entries[i];
        if e.done || e.moved {
            return;
        }
        e.moved = true;
        self.moved.track(id, self.head + i as u64);
    }

    /// Takes the lines at the front that are done, oldest first.
    pub(crate) fn pop(&mut self, mut delivered: impl FnMut(Delivered)) {
        while self.entries.front().is_some_and(|e| e.done) {
            let Some(e) = self.entries.pop_front() else { break };
            self.head += 1;
            delivered(Delivered {
                slot: e.slot,
                epoch: e.epoch,
                mark: e.mark,
            });
        }
    }

    /// Lines in flight.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(acks: &mut Acks) -> Vec<Delivered> {
        let mut out = Vec::new();
        acks.pop(|d| out.push(d));
        out
    }

    #[test]
    fn a_mark_is_delivered_only_when_every_line_before_it_is_done() {
        let mut acks = Acks::default();
        let a = acks.push(EventId(1), 0, 0);
        let b = acks.push(EventId(2), 0, 0);
        assert!(acks.mark(b, Mark::at(20, 2)));
        assert!(acks.mark(a, Mark::at(10, 1)));
        assert!(acks.done(EventId(2)));
        assert!(delivered(&mut acks).is_empty(), "line 1 is still in flight");
        acks.done(EventId(1));
        let out = delivered(&mut acks);
        assert_eq!(out.last().unwrap().mark, Some(Mark::at(20, 2)));
        assert_eq!(acks.len(), 0);
        assert!(!acks.mark(b, Mark::at(30, 3)), "already delivered");
    }

    #[test]
    fn a_renamed_line_is_done_when_what_it_became_is() {
        let mut acks = Acks::default();
        acks.push(EventId(5), 1, 0);
        acks.rename(EventId(5), EventId(99));
        assert!(!acks.done(EventId(7)));
        assert!(acks.done(EventId(99)));
        assert_eq!(delivered(&mut acks).len(), 1);
    }

    #[test]
    fn lines_merged_into_one_of_ours_are_done_with_it() {
        let mut acks = Acks::default();
        acks.push(EventId(1), 0, 0);
        acks.push(EventId(2), 0, 0);
        acks.push(EventId(3), 0, 0);
        // 1 and 2 absorbed into 3, then 3 into an event of another supply.
        acks.rename(EventId(1), EventId(3));
        acks.rename(EventId(2), EventId(3));
        assert!(!acks.done(EventId(1)), "renamed away: done only as what it became");
        acks.rename(EventId(3), EventId(50));
        assert!(!acks.done(EventId(3)));
        assert!(delivered(&mut acks).is_empty());
        assert!(acks.done(EventId(50)));
        assert_eq!(delivered(&mut acks).len(), 3);
    }

    #[test]
    fn ids_out_of_order_are_still_found() {
        let mut acks = Acks::default();
        acks.push(EventId(9), 0, 0);
        acks.push(EventId(3), 0, 0);
        assert!(acks.done(EventId(3)));
        assert!(acks.done(EventId(9)));
        assert_eq!(delivered(&mut acks).len(), 2);
    }

    #[test]
    fn saved_positions_replay_changes_in_order() {
        let p = |ino, pos| Position {
            dev: 1,
            ino,
            path: "a".into(),
            pos,
            line: 0,
            head_len: 0,
            head_crc: 0,
            real_path: None,
            size: 0,
            open: false,
        };
        let mut positions = load(Saved::V1(vec![p(1, 10), p(2, 5)]));
        replay(
            &mut positions,
            Change::V1 {
                set: vec![p(1, 30)],
                forget: vec![(1, 2)],
            },
        );
        let Saved::V2(all) = save(&positions) else {
            panic!("positions are saved as version 2")
        };
        assert_eq!(all, vec![p(1, 30)]);
    }

    #[test]
    fn a_version_1_checkpoint_still_loads() {
        let v1 = r#"{"V1":[{"dev":1,"ino":2,"path":"/a.log","pos":10,"line":1,"head_len":3,"head_crc":7}]}"#;
        let positions = load(serde_json::from_str(v1).unwrap());
        let p = &positions[&(1, 2)];
        assert_eq!((p.pos, p.size, p.real_path.as_deref(), p.open), (10, 0, None, false));
        let change = r#"{"V1":{"set":[],"forget":[[1,2]]}}"#;
        let mut positions = positions;
        replay(&mut positions, serde_json::from_str(change).unwrap());
        assert!(positions.is_empty());
    }
}
