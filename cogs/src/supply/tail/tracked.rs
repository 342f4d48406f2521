//! One file the tail follows: which file it is, how far it has been read,
//! and the line it holds that no newline has ended yet.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tourbillon::WatchId;

use super::identity::{located, Check, Head, Suspect};
use super::limits::Snapshot;
use super::position::{Mark, Position};
use crate::splitter::{LineSplitter, LinesSettings};

/// How far back from the end `read_from = "end"` looks for the last newline.
const END_SCAN: u64 = 64 * 1024;

pub(crate) struct Tracked {
    /// Never reused: names the file in watch keys and `after`.
    pub(crate) serial: u64,
    /// None while closed for the descriptor limit: it is opened again by
    /// its path (or, rotated away meanwhile, by its inode) when it grows.
    pub(crate) file: Option<File>,
    /// How it looked when it was closed for the limit.
    pub(crate) closed: Option<Snapshot>,
    /// The path it had when it lost its last one while closed: where to
    /// look for it by inode.
    pub(crate) former: Option<PathBuf>,
    /// The read count at its last read (least recently read closes first).
    pub(crate) stamp: u64,
    /// In the budget's queue of files that may be closed.
    pub(crate) in_idle: bool,
    /// In the budget's queue of files waiting for a descriptor.
    pub(crate) starved: bool,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    /// The path it was first found under: the origin of its lines.
    pub(crate) origin: Arc<str>,
    /// Where it is read up to, for the lag figure.
    pub(crate) read: Arc<super::stats::FileRead>,
    /// The paths that match it now (hardlinks: more than one); none once it
    /// was rotated away or deleted.
    pub(crate) paths: Vec<PathBuf>,
    /// Where the file itself is, as last seen: symlinks resolved, renames
    /// followed. Saved, so a restart can look for it there.
    pub(crate) real: Option<PathBuf>,
    /// Read up to here.
    pub(crate) pos: u64,
    /// Lines handed out: the number of the last one.
    pub(crate) line: u64,
    /// Bumped on truncation: lines in flight from before do not move the
    /// committed position any more.
    pub(crate) epoch: u32,
    pub(crate) head: Head,
    /// The first bytes as found when it was opened, before any was read.
    pub(crate) probe: Vec<u8>,
    pub(crate) splitter: LineSplitter,
    /// Every line before this was delivered.
    pub(crate) committed: Mark,
    /// Committed moved since the last save.
    pub(crate) dirty: bool,
    /// Its identity is in the checkpoint, durably (or there is no
    /// checkpoint): until then no line of it goes out, so that a crash
    /// cannot make it a stranger to the next start.
    pub(crate) durable: bool,
    /// The last line handed out that is still tracked in flight.
    pub(crate) last_seq: Option<u64>,
    pub(crate) in_flight: u64,
    pub(crate) watch: Option<WatchId>,
    /// In the ready queue.
    pub(crate) queued: bool,
    /// The last read reached the end of the file.
    pub(crate) at_eof: bool,
    /// Started inside the file (from the checkpoint): before the first
    /// read, check it is still what was read (it may have been truncated
    /// and written again since it was opened).
    pub(crate) verify: bool,
    /// Not read before the file with this serial (the one that held its
    /// path before a rotation) has been read to its end.
    pub(crate) after: Option<u64>,
    /// Since when no path matches it (rotated away, deleted).
    pub(crate) orphan_since: Option<Instant>,
    /// Since when it holds a partial line without new bytes.
    pub(crate) partial_since: Option<Instant>,
    /// A partial line went out for being idle: the newline that ends it
    /// later is not a line of its own.
    pub(crate) skip_newline: bool,
    /// Maybe a copy made by copytruncate: not read until that is settled.
    pub(crate) copy_of: Option<Suspect>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked")
            .field("origin", &self.origin)
            .field("dev", &self.dev)
            .field("ino", &self.ino)
            .field("pos", &self.pos)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl Tracked {
    /// Opens `path` and reads its first bytes.
    pub(crate) fn open(path: &Path, serial: u64, fingerprint: usize, lines: &LinesSettings) -> io::Result<Tracked> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        let mut head = Head::default();
        let mut buf = vec![0; fingerprint];
        let n = read_full_at(&file, &mut buf, 0)?;
        head.set(&buf[..n]);
        buf.truncate(n);
        let real = located(&file).or_else(|| std::fs::canonicalize(path).ok());
        Ok(Tracked {
            serial,
            file: Some(file),
            closed: None,
            former: None,
            stamp: 0,
            in_idle: false,
            starved: false,
            dev: meta.dev(),
            ino: meta.ino(),
            origin: Arc::from(path.to_string_lossy().as_ref()),
            read: Arc::new(super::stats::FileRead::new(
                Arc::from(path.to_string_lossy().as_ref()),
                (meta.dev(), meta.ino()),
            )),
            paths: vec![path.to_path_buf()],
            real,
            pos: 0,
            line: 0,
            epoch: 0,
            head,
            probe: buf,
            splitter: LineSplitter::new(lines).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            committed: Mark::default(),
            dirty: true,
            durable: false,
            last_seq: None,
            in_flight: 0,
            watch: None,
            queued: false,
            at_eof: false,
            verify: false,
            after: None,
            orphan_since: None,
            partial_since: None,
            skip_newline: false,
            copy_of: None,
        })
    }

    pub(crate) fn key(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    /// Starts reading at `mark`.
    pub(crate) fn start_at(&mut self, mark: Mark) {
        self.pos = mark.pos;
        self.read.at(self.pos);
        self.line = mark.line;
        self.committed = mark;
        self.skip_newline = mark.open;
        self.verify = mark.pos > 0;
        self.dirty = true;
        // The head is what is consumed of the first bytes: what follows
        // may still change before it is read.
        let keep = self.head.bytes.len().min(mark.pos as usize);
        if keep < self.head.bytes.len() {
            let consumed = self.head.bytes[..keep].to_vec();
            self.head.set(&consumed);
        }
    }

    /// Bytes `data`, read at `at`, are consumed: those among the first
    /// `fingerprint` bytes join the head.
    pub(crate) fn consumed(&mut self, at: u64, data: &[u8], fingerprint: usize) {
        let at = at as usize;
        if at >= fingerprint || at != self.head.bytes.len() {
            return;
        }
        let take = data.len().min(fingerprint - at);
        let mut head = std::mem::take(&mut self.head.bytes);
        head.extend_from_slice(&data[..take]);
        self.head.set(&head);
        self.dirty = true;
    }

    /// What it begins with, as far as is known: what was read of it, or
    /// else what it held when it was opened.
    pub(crate) fn begins(&self) -> &[u8] {
        if self.head.bytes.is_empty() {
            &self.probe
        } else {
            &self.head.bytes
        }
    }

    /// Whether this is the file `saved` describes: its first bytes check out.
    pub(crate) fn is(&self, saved: &Position) -> bool {
        let len = saved.head_len as usize;
        self.head.bytes.len() >= len && crc32c::crc32c(&self.head.bytes[..len]) == saved.head_crc
    }

    /// Where `read_from = "end"` starts: after the last newline (a line
    /// being written is read whole), else at the end.
    pub(crate) fn end_mark(&self) -> io::Result<Mark> {
        let size = self.handle()?.metadata()?.len();
        let from = size.saturating_sub(END_SCAN);
        let mut buf = vec![0; (size - from) as usize];
        let n = read_full_at(self.handle()?, &mut buf, from)?;
        let pos = match buf[..n].iter().rposition(|&b| b == b'\n') {
            Some(i) => from + i as u64 + 1,
            None if from == 0 => 0,
            None => size,
        };
        Ok(Mark::at(pos, 0))
    }

    /// A woken file: is it still what was read?
    pub(crate) fn check(&mut self) -> io::Result<Check> {
        let size = self.handle()?.metadata()?.len();
        if size < self.pos {
            return Ok(Check::Truncated { size });
        }
        let known = self.head.bytes.len();
        let mut buf = vec![0; known];
        let n = read_full_at(self.handle()?, &mut buf, 0)?;
        if n < known || crc32c::crc32c(&buf) != self.head.crc {
            return Ok(Check::Truncated { size });
        }
        Ok(Check::Same)
    }

    /// Forgets what was read: the file starts over (truncated).
    pub(crate) fn restart(&mut self) {
        self.splitter.reset();
        self.epoch += 1;
        self.pos = 0;
        self.read.at(0);
        self.line = 0;
        self.committed = Mark::default();
        self.dirty = true;
        self.partial_since = None;
        self.skip_newline = false;
        self.head = Head::default();
    }

    /// The file's entry in the checkpoint, with where the file is now and
    /// its size.
    pub(crate) fn position(&mut self) -> Position {
        // Closed for the limit: where it was last seen.
        if let Some(real) = self.file.as_ref().and_then(located) {
            self.real = Some(real);
        }
        // Before any byte is read, the first bytes found at opening tell
        // this file from another on the same inode (not after a truncation:
        // they are gone).
        let (head_len, head_crc) = if self.head.bytes.is_empty() && self.epoch == 0 {
            (self.probe.len() as u32, crc32c::crc32c(&self.probe))
        } else {
            (self.head.bytes.len() as u32, self.head.crc)
        };
        Position {
            dev: self.dev,
            ino: self.ino,
            path: self.origin.to_string(),
            pos: self.committed.pos,
            line: self.committed.line,
            head_len,
            head_crc,
            real_path: self.real.as_ref().map(|p| p.to_string_lossy().into_owned()),
            size: match &self.file {
                Some(fd) => fd.metadata().map_or(self.pos, |m| m.len()),
                None => self.closed.map_or(self.pos, |c| c.len()),
            }
            .max(self.pos),
            open: self.committed.open,
        }
    }

    /// Whether everything in the file was read: the file ends at the read
    /// position now. Not if that cannot be told.
    pub(crate) fn at_end(&self) -> bool {
        let meta = match (&self.file, self.paths.first()) {
            (Some(fd), _) => fd.metadata(),
            // Closed for the limit: its path tells, if it still names it.
            (None, Some(path)) => std::fs::metadata(path),
            (None, None) => return false,
        };
        meta.is_ok_and(|m| (m.dev(), m.ino()) == self.key() && m.len() <= self.pos)
    }

    /// Its descriptor; an error while it is closed for the limit.
    pub(crate) fn handle(&self) -> io::Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("closed for the descriptor limit"))
    }

    /// Whether it may be closed for the limit and opened again later by
    /// its path: read to its end (or not yet to be read, waiting for the
    /// file rotated away before it), no turn pending, a path that names it,
    /// not a possible copy being told from its original.
    pub(crate) fn closable(&self) -> bool {
        self.file.is_some()
            && (self.at_eof || self.after.is_some())
            && !self.queued
            && !self.paths.is_empty()
            && !self.is_orphan()
            && self.copy_of.is_none()
    }

    pub(crate) fn is_orphan(&self) -> bool {
        self.orphan_since.is_some()
    }

    /// The path to watch it by.
    pub(crate) fn path(&self) -> PathBuf {
        self.paths
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(self.origin.as_ref()))
    }
}

/// Reads from `offset` until `buf` is full or the file ends.
pub(crate) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
