//! The checkpoint: the positions a tail keeps in its state store (see
//! [`position`](super::position) for their format), what it found there at
//! start and where a file found then begins ([`start_mark`]), and saving
//! them: one log record per save, a compacting
//! checkpoint every so often, failures logged once until a save succeeds.
//!
//! Which positions moved, and which files a save makes durable, is the
//! file table's business: [`Checkpoint::save`] is handed the positions and
//! says whether they were saved.

use std::io;
use std::path::Path;

use tourbillon::store::{FsyncPolicy, Store, StoreOptions};

use super::position::{self, Change, Mark, Position, Positions, Saved};
use super::settings::ReadFrom;
use super::tracked::Tracked;
use crate::{Counter, Error};

/// Log records between two compacting checkpoints of the store.
const COMPACT_EVERY: usize = 64;

/// The positions saved in a tail's checkpoint directory, for inspection;
/// fails while a tail has the directory open.
pub fn saved_positions(dir: impl AsRef<Path>) -> Result<Vec<Position>, Error> {
    let store = Store::<Saved, Change>::open(dir, StoreOptions::new())?;
    let positions = position::recover(&store)?;
    let mut all: Vec<Position> = positions.into_values().collect();
    all.sort_by_key(Position::key);
    Ok(all)
}

/// The store and what is known to be in it.
pub(crate) struct Checkpoint {
    store: Option<Store<Saved, Change>>,
    /// At start, the positions of files not found yet; then every position
    /// saved (what a compacting checkpoint writes).
    saved: Positions,
    /// Files to forget at the next save.
    forgotten: Vec<(u64, u64)>,
    /// Log records since the last compacting checkpoint.
    logged: usize,
    /// The last save failed (logged once until one succeeds).
    store_failing: bool,
    /// Likewise for the last checkpoint (compaction).
    checkpoint_failing: bool,
    saves: Counter,
    last_save_ms: Counter,
}

impl Checkpoint {
    /// Opens the store in `dir` and reads its positions; without a
    /// directory nothing is kept.
    pub(crate) fn open(dir: Option<&Path>, saves: Counter, last_save_ms: Counter) -> Result<Checkpoint, Error> {
        let (store, saved) = match dir {
            Some(dir) => {
                let store = Store::open(dir, StoreOptions::new().fsync(FsyncPolicy::Always))?;
                let saved = position::recover(&store)?;
                (Some(store), saved)
            }
            None => (None, Positions::default()),
        };
        Ok(Checkpoint {
            store,
            saved,
            forgotten: Vec::new(),
            logged: 0,
            store_failing: false,
            checkpoint_failing: false,
            saves,
            last_save_ms,
        })
    }

    /// Whether positions are kept at all.
    pub(crate) fn kept(&self) -> bool {
        self.store.is_some()
    }

    /// The saved position of the file `key`, if any.
    pub(crate) fn saved(&self, key: (u64, u64)) -> Option<&Position> {
        self.saved.get(&key)
    }

    /// Every saved position (at start: those of files not found yet).
    pub(crate) fn positions(&self) -> &Positions {
        &self.saved
    }

    /// The file `key` was found: its saved position is taken up.
    pub(crate) fn found(&mut self, key: (u64, u64)) {
        self.saved.remove(&key);
    }

    /// The saved positions left: those of files not found again, which
    /// are forgotten at the next save.
    pub(crate) fn take_unfound(&mut self) -> Vec<Position> {
        self.saved.drain().map(|(_, p)| p).collect()
    }

    /// The file `key` is to be forgotten at the next save.
    pub(crate) fn forget(&mut self, key: (u64, u64)) {
        self.forgotten.push(key);
    }

    /// Saves the positions that moved (`set`) and the files forgotten: one
    /// log record; a whole checkpoint (compacting the log) every so often,
    /// and when `compact`. False if the record could not be written: the
    /// positions are to be handed again at the next save.
    pub(crate) fn save(&mut self, set: Vec<Position>, compact: bool) -> bool {
        let Some(store) = self.store.as_mut() else {
            self.forgotten.clear();
            return true;
        };
        // Forgotten before set, as the store replays a change.
        let forget = std::mem::take(&mut self.forgotten);
        for key in &forget {
            self.saved.remove(key);
        }
        for p in &set {
            self.saved.insert(p.key(), p.clone());
        }
        let mut logged = true;
        if !set.is_empty() || !forget.is_empty() {
            match store.log(&Change::V1 {
                set,
                forget: forget.clone(),
            }) {
                Ok(_) => {
                    self.logged += 1;
                    self.saves.add(1);
                    if std::mem::take(&mut self.store_failing) {
                        log::info!("tail: positions saved again");
                    }
                }
                Err(e) => {
                    // Tried again at the next save, whole.
                    logged = false;
                    self.forgotten.extend(forget);
                    if std::mem::replace(&mut self.store_failing, true) {
                        log::debug!("tail: cannot save positions: {e}");
                    } else {
                        log::error!(
                            "tail: cannot save positions: {e}; trying again every checkpoint interval (a crash now \
                             repeats more lines; files found meanwhile are not read until a save succeeds, so that \
                             a restart knows them)"
                        );
                    }
                }
            }
        }
        if (compact && self.logged > 0) || self.logged >= COMPACT_EVERY {
            match store.checkpoint(&position::save(&self.saved)) {
                Ok(_) => {
                    self.logged = 0;
                    self.saves.add(1);
                    if std::mem::take(&mut self.checkpoint_failing) {
                        log::info!("tail: checkpoint written again");
                    }
                }
                Err(e) if std::mem::replace(&mut self.checkpoint_failing, true) => {
                    log::debug!("tail: cannot write the checkpoint: {e}")
                }
                Err(e) => log::error!(
                    "tail: cannot write the checkpoint: {e}; positions go on into the log, and the checkpoint is \
                     tried again at every save"
                ),
            }
        }
        if logged {
            self.last_save_ms.set(super::stats::unix_ms());
        }
        logged
    }

    /// Closes the store (after the last save).
    pub(crate) fn close(&mut self) {
        if let Some(store) = self.store.take() {
            if let Err(e) = store.close() {
                log::error!("tail: cannot save positions: {e}");
            }
        }
    }
}

/// Where a file present at start begins: its checkpoint, else `read_from`
/// (`truncated` counts the files found shorter than saved).
pub(crate) fn start_mark(
    file: &Tracked,
    saved: Option<&Position>,
    read_from: ReadFrom,
    truncated: &Counter,
) -> io::Result<Mark> {
    match saved {
        Some(saved) if file.is(saved) => {
            let size = file.handle()?.metadata()?.len();
            if size < saved.pos {
                log::warn!(
                    "{}: {size} bytes, shorter than the {} saved: truncated while stopped; reading it from the \
                     start",
                    file.origin,
                    saved.pos
                );
                truncated.add(1);
                return Ok(Mark::default());
            }
            log::debug!("{}: resuming at byte {} (line {})", file.origin, saved.pos, saved.line);
            Ok(saved.mark())
        }
        Some(saved) => {
            if saved.size > saved.pos {
                log::warn!(
                    "{}: the file the checkpoint knew on this inode is gone (deleted while stopped): {} bytes of \
                     it were never delivered; this one (its first bytes differ) is read from the start",
                    saved.path,
                    saved.size - saved.pos
                );
            } else {
                log::info!(
                    "{}: not the file the checkpoint knew on this inode (its first bytes differ); reading it \
                     from the start",
                    file.origin
                );
            }
            Ok(Mark::default())
        }
        None => match read_from {
            ReadFrom::Beginning => Ok(Mark::default()),
            ReadFrom::End => file.end_mark(),
        },
    }
}
