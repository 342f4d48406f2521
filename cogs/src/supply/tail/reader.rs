//! Reading: each queued file in turn, at most `read_bytes_per_turn` at a
//! time; its bytes split into lines and emitted ([`TailLine`]), each line
//! tracked in flight until the train reports it done; the last line
//! without its newline held until the newline comes, the file ends
//! (`at_end`), or it waited `partial_line_idle_ms`; a file found shorter
//! than what was read, or with other first bytes, read again from its
//! start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tourbillon::{Context, EventId, Next, TimerId};

use super::descriptors::Reopen;
use super::discovery::Rescan;
use super::files::Files;
use super::identity::Check;
use super::position::{Acks, Delivered, Mark};
use super::settings::TailSettings;
use super::stats::TailStats;
use super::tracked::read_full_at;
use crate::splitter::{CutLog, LineFlags};

/// How long a parked timer waits.
pub(crate) const PARKED: Duration = Duration::from_secs(24 * 3600);
/// Largest single read.
const READ_CHUNK: usize = 64 * 1024;

/// One line the tail hands to its maker.
#[derive(Clone, Copy, Debug)]
pub struct TailLine<'a> {
    /// A fresh id for the datum made from it.
    pub id: EventId,
    /// The line, without its ending.
    pub bytes: &'a [u8],
    /// The path of the file it was read from (as first found: lines read
    /// from a rotated file keep the name they were written under).
    pub origin: &'a Arc<str>,
    /// Its number in the file, from 1 (with `read_from = "end"`, counted
    /// from where reading started).
    pub number: u64,
    /// What is special about it (cut, replaced UTF-8, no newline).
    pub flags: LineFlags,
}

/// What builds a datum from a line and a buffer holding a copy of it.
type OwnedMaker<D> = Box<dyn FnMut(TailLine<'_>, Vec<u8>) -> D>;

/// What builds a datum from a line.
pub(crate) enum Maker<D> {
    /// From the line as it lies in the read buffer.
    Borrowed(Box<dyn FnMut(TailLine<'_>) -> D>),
    /// From the line and a copy of its bytes in a buffer of its own, one
    /// a drain gave back if there is one ([`Context::buffer`]).
    Owned(OwnedMaker<D>),
}

/// How a read of one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadEnd {
    /// The turn's budget ran out (or a cog got congested): more to read.
    More,
    /// At the end of the file.
    Eof,
    /// Not read: it waits for another file, or it is gone.
    Skipped,
}

/// Turns files' bytes into data, and follows them until delivered.
pub(crate) struct Reader<D> {
    make: Maker<D>,
    buf: Vec<u8>,
    /// Lines in flight, and where each lets its file restart once done.
    acks: Acks,
    /// Lines cut at `max_line_bytes`: counted and logged.
    cuts: CutLog,
    /// The timer that emits partial lines gone idle, and when it is due.
    idle: Option<TimerId>,
    idle_due: Option<Instant>,
    per_turn: usize,
    fingerprint: usize,
    partial_idle_ms: u64,
    stats: TailStats,
}

impl<D> Reader<D> {
    /// A reader that builds each datum with `make`.
    pub(crate) fn new(settings: &TailSettings, stats: TailStats, make: Maker<D>) -> Reader<D> {
        Reader {
            make,
            buf: vec![0; READ_CHUNK.min(settings.read_bytes_per_turn)],
            acks: Acks::default(),
            cuts: CutLog::new(Duration::from_secs(10), settings.lines.max_line_bytes),
            idle: None,
            idle_due: None,
            per_turn: settings.read_bytes_per_turn,
            fingerprint: settings.fingerprint_bytes,
            partial_idle_ms: settings.partial_line_idle_ms,
            stats,
        }
    }

    /// Partial lines gone idle are emitted when `timer` fires (a repeating
    /// timer parked far ahead, moved to each due time).
    pub(crate) fn set_idle_timer(&mut self, timer: Option<TimerId>) {
        self.idle = timer;
    }

    /// Lines in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.acks.len()
    }

    /// Line `id` is delivered: false if it is none of ours.
    pub(crate) fn done(&mut self, id: EventId) -> bool {
        self.acks.done(id)
    }

    /// Line `old` lives on as `new`.
    pub(crate) fn rename(&mut self, old: EventId, new: EventId) {
        self.acks.rename(old, new);
    }

    /// Logs the cuts held back.
    pub(crate) fn flush_cuts(&mut self, now: Instant) {
        self.cuts.flush(now);
    }

    /// Moves committed positions over what the train delivered.
    pub(crate) fn acks_moved(&mut self, files: &mut Files) {
        self.acks.pop(|Delivered { slot, epoch, mark }| {
            let Some(file) = files.get(slot) else {
                return;
            };
            file.in_flight -= 1;
            if let Some(mark) = mark.filter(|_| epoch == file.epoch) {
                file.committed = mark;
                file.dirty = true;
            }
        });
    }
}

impl<D: 'static> Reader<D> {
    /// One turn: each file queued gets to read its share, until a cog
    /// downstream is congested.
    pub(crate) fn turn<N: Next<D> + ?Sized>(
        &mut self,
        files: &mut Files,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) {
        for _ in 0..files.ready_len() {
            if ctx.congested() {
                files.wait();
                break;
            }
            let Some(slot) = files.pop_ready() else { break };
            if !files.unqueue(slot) {
                continue;
            }
            match self.read(files, slot, rescan, ctx) {
                ReadEnd::More => files.requeue(slot),
                ReadEnd::Eof => files.reached_eof(slot, ctx),
                ReadEnd::Skipped => {}
            }
        }
    }

    /// Reads one file for one turn, emitting its lines.
    fn read<N: Next<D> + ?Sized>(
        &mut self,
        files: &mut Files,
        slot: u32,
        rescan: &mut Rescan,
        ctx: &mut Context<'_, D, N>,
    ) -> ReadEnd {
        let Some(file) = files.get(slot) else {
            return ReadEnd::Skipped;
        };
        if file.after.is_some() || !file.durable {
            return ReadEnd::Skipped;
        }
        if file.copy_of.is_some() && !files.judge(slot) {
            return ReadEnd::Skipped;
        }
        if let Some(file) = files.get(slot).filter(|f| f.file.is_none()) {
            // Closed, rotated away and not found again: nothing to read.
            if file.is_orphan() && file.at_eof {
                return ReadEnd::Skipped;
            }
            match files.reopen(slot, false, rescan, ctx) {
                Reopen::Open => {}
                // Files waiting for it to be read to its end may go on.
                Reopen::AtEnd => return ReadEnd::Eof,
                Reopen::Not | Reopen::Starved => return ReadEnd::Skipped,
            }
        }
        files.budget.clock += 1;
        let clock = files.budget.clock;
        let Some(file) = files.get(slot) else {
            return ReadEnd::Skipped;
        };
        file.stamp = clock;
        if std::mem::take(&mut file.at_eof) | std::mem::take(&mut file.verify) {
            // Woken after reaching the end, or read for the first time from
            // a saved position: is it still the file we read?
            match file.check() {
                Ok(Check::Same) => {}
                Ok(Check::Truncated { size }) => self.truncated(files, slot, size, ctx),
                Err(e) => {
                    log::error!("{}: cannot read: {e}", file.origin);
                    return ReadEnd::Skipped;
                }
            }
        }
        let mut budget = self.per_turn;
        loop {
            let Some(file) = files.get(slot) else {
                return ReadEnd::Skipped;
            };
            let want = budget.min(self.buf.len());
            let Some(fd) = file.file.as_ref() else {
                return ReadEnd::Skipped;
            };
            let n = match read_full_at(fd, &mut self.buf[..want], file.pos) {
                Ok(n) => n,
                Err(e) => {
                    log::error!("{}: cannot read: {e}", file.origin);
                    return ReadEnd::Skipped;
                }
            };
            if n == 0 {
                match fd.metadata() {
                    Ok(m) if m.len() < file.pos => {
                        let size = m.len();
                        self.truncated(files, slot, size, ctx);
                        continue;
                    }
                    _ => return ReadEnd::Eof,
                }
            }
            self.feed(files, slot, n, ctx);
            budget -= n;
            if n < want {
                return ReadEnd::Eof;
            }
            if budget == 0 || ctx.congested() {
                return ReadEnd::More;
            }
        }
    }

    /// Splits the `n` bytes just read into `buf` and emits the lines.
    fn feed<N: Next<D> + ?Sized>(&mut self, files: &mut Files, slot: u32, n: usize, ctx: &mut Context<'_, D, N>) {
        let Some(file) = files.get(slot) else {
            return;
        };
        let mut data = &self.buf[..n];
        let mut start = file.pos;
        file.consumed(start, data, self.fingerprint);
        file.pos += n as u64;
        file.read.at(file.pos);
        self.stats.bytes.add(n as u64);
        self.stats.meter.counted(0, 0, n as u64);
        if std::mem::take(&mut file.skip_newline) && data.first() == Some(&b'\n') {
            data = &data[1..];
            start += 1;
        }
        let before = file.line;
        // The lines up to the last newline end where it does; what follows
        // it is held (or cut, if too long) and restarts from there.
        let (complete, rest) = match data.iter().rposition(|&b| b == b'\n') {
            Some(i) => data.split_at(i + 1),
            None => (&data[..0], data),
        };
        let mut emit = Emitter {
            slot,
            file_line: &mut file.line,
            epoch: file.epoch,
            origin: &file.origin,
            last_seq: &mut file.last_seq,
            in_flight: &mut file.in_flight,
            make: &mut self.make,
            acks: &mut self.acks,
            cuts: &mut self.cuts,
            ctx,
        };
        if !complete.is_empty() {
            file.splitter.push(complete, |bytes, flags| emit.line(bytes, flags));
            let mark = Mark::at(start + complete.len() as u64, *emit.file_line);
            if !emit.mark(mark) {
                file.committed = mark;
                file.dirty = true;
            }
        }
        if !rest.is_empty() {
            file.splitter.push(rest, |bytes, flags| emit.line(bytes, flags));
        }
        self.stats.lines.add(file.line - before);
        self.stats.meter.counted(file.line - before, file.line - before, 0);
        file.partial_since = (file.splitter.partial_len() > 0).then(Instant::now);
        if file.partial_since.is_some() && self.partial_idle_ms > 0 {
            self.arm_idle(ctx);
        }
    }

    /// A file is shorter than what was read, or its first bytes changed.
    fn truncated<N: Next<D> + ?Sized>(&mut self, files: &mut Files, slot: u32, size: u64, ctx: &mut Context<'_, D, N>) {
        // The held partial line was the end of the old contents.
        let Some(file) = files.get(slot) else { return };
        // Or the line before the read position went out without its newline
        // (idle, or the last line at a stop) and the newline is still to come.
        let had_partial = file.splitter.partial_len() > 0 || file.skip_newline;
        self.flush_partial(files, slot, false, ctx);
        files.truncated(slot, size, had_partial, ctx);
    }

    /// Emits the line a file holds without its newline if it is the file's
    /// last line: the file ends there now. Else it is only the end of the
    /// last chunk read: it is left out, and the checkpoint stays at the
    /// line before it, so a restart reads it whole.
    pub(crate) fn flush_last_line<N: Next<D> + ?Sized>(
        &mut self,
        files: &mut Files,
        slot: u32,
        ctx: &mut Context<'_, D, N>,
    ) {
        let Some(file) = files.get(slot) else { return };
        if file.splitter.partial_len() == 0 {
            return;
        }
        if file.at_end() {
            self.flush_partial(files, slot, false, ctx);
        } else {
            log::debug!(
                "{}: stopping in the middle of a line (byte {}): it is read whole after a restart",
                file.origin,
                file.pos
            );
        }
    }

    /// Emits the line a file holds without its newline, if any; `idle`:
    /// because no byte came for a while (the newline may still come).
    pub(crate) fn flush_partial<N: Next<D> + ?Sized>(
        &mut self,
        files: &mut Files,
        slot: u32,
        idle: bool,
        ctx: &mut Context<'_, D, N>,
    ) {
        let Some(file) = files.get(slot) else {
            return;
        };
        file.partial_since = None;
        let mut emit = Emitter {
            slot,
            file_line: &mut file.line,
            epoch: file.epoch,
            origin: &file.origin,
            last_seq: &mut file.last_seq,
            in_flight: &mut file.in_flight,
            make: &mut self.make,
            acks: &mut self.acks,
            cuts: &mut self.cuts,
            ctx,
        };
        let had = file.splitter.take_partial(|bytes, flags| emit.line(bytes, flags));
        if had {
            file.skip_newline = idle;
            self.stats.lines.add(1);
            self.stats.meter.counted(1, 1, 0);
            let mark = Mark {
                pos: file.pos,
                line: *emit.file_line,
                open: true,
            };
            if !emit.mark(mark) {
                file.committed = mark;
                file.dirty = true;
            }
        }
    }

    fn arm_idle<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let due = ctx.now() + Duration::from_millis(self.partial_idle_ms);
        if self.idle_due.is_some_and(|d| d <= due) {
            return;
        }
        if let Some(id) = self.idle {
            if ctx.reschedule(id, due) {
                self.idle_due = Some(due);
            }
        }
    }

    /// Emits the partial lines that waited long enough.
    pub(crate) fn idle_fired<N: Next<D> + ?Sized>(&mut self, files: &mut Files, ctx: &mut Context<'_, D, N>) {
        let idle = Duration::from_millis(self.partial_idle_ms);
        let now = ctx.now();
        self.idle_due = None;
        let mut next: Option<Instant> = None;
        for slot in 0..files.len() {
            let Some(since) = files.get(slot).and_then(|f| f.partial_since) else {
                continue;
            };
            if since + idle <= now {
                if files.get(slot).is_some_and(|f| f.at_end()) {
                    self.flush_partial(files, slot, true, ctx);
                } else {
                    // Only the end of what was read so far (a backlog):
                    // the rest of the line is there to read.
                    if let Some(f) = files.get(slot) {
                        f.partial_since = None;
                    }
                    files.queue(slot, ctx);
                }
            } else {
                next = Some(next.map_or(since + idle, |n: Instant| n.min(since + idle)));
            }
        }
        if let Some(id) = self.idle {
            let due = next.unwrap_or(now + PARKED);
            ctx.reschedule(id, due);
            self.idle_due = next;
        }
    }
}

/// What emitting one line needs, split off the reader's and the file's
/// fields.
struct Emitter<'a, 'c, D, N: ?Sized> {
    slot: u32,
    file_line: &'a mut u64,
    epoch: u32,
    origin: &'a Arc<str>,
    last_seq: &'a mut Option<u64>,
    in_flight: &'a mut u64,
    make: &'a mut Maker<D>,
    acks: &'a mut Acks,
    cuts: &'a mut CutLog,
    ctx: &'a mut Context<'c, D, N>,
}

impl<D, N: Next<D> + ?Sized> Emitter<'_, '_, D, N> {
    fn line(&mut self, bytes: &[u8], flags: LineFlags) {
        *self.file_line += 1;
        if flags.truncated {
            let place = format_args!("{}:{}", self.origin, *self.file_line);
            self.cuts.note(place, bytes.len(), flags, self.ctx.now());
        }
        let line = TailLine {
            id: self.ctx.next_event_id(),
            bytes,
            origin: self.origin,
            number: *self.file_line,
            flags,
        };
        let datum = match self.make {
            Maker::Borrowed(make) => make(line),
            Maker::Owned(make) => {
                let mut buf = self.ctx.buffer();
                buf.extend_from_slice(bytes);
                make(line, buf)
            }
        };
        if let Some(id) = self.ctx.id_of(&datum) {
            *self.last_seq = Some(self.acks.push(id, self.slot, self.epoch));
            *self.in_flight += 1;
        }
        self.ctx.emit(datum);
    }

    /// Sets the file's restart mark on its last line in flight; false if
    /// none is (then the mark holds now).
    fn mark(&mut self, mark: Mark) -> bool {
        self.last_seq.is_some_and(|seq| self.acks.mark(seq, mark))
    }
}
