//! The batch-and-flush driver the [file](crate::drain::file) and
//! [stdout](crate::drain::stdout) drains share: data are buffered as lines
//! and written when the buffer is full and at the end of every burst (an
//! immediate event queued by the burst's first datum); a datum is reported
//! `event_done` only once its bytes are written; while writes fail, a
//! retry timer writes, and a full buffer makes the drain congested. What
//! a write is, and what a failure means, stays with each drain.

use crate::drain::DrainGauges;
use crate::meter::Meter;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use tourbillon::{Context, EventId, ImmediateId, Next, TimerId};

/// Lines waiting to be reported done, and the ids of the data they came
/// from. The bytes stay until then, written or not: a file that went away
/// gets all of them again.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    ids: Vec<EventId>,
    lines: usize,
    /// How many bytes of `buf` reached the output.
    written: usize,
}

impl Batch {
    pub(crate) fn with_capacity(bytes: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            ..Batch::default()
        }
    }

    /// Appends `bytes` and a newline.
    pub(crate) fn push(&mut self, bytes: &[u8], id: Option<EventId>) {
        self.buf.reserve(bytes.len() + 1);
        self.buf.extend_from_slice(bytes);
        self.buf.push(b'\n');
        self.lines += 1;
        if let Some(id) = id {
            self.ids.push(id);
        }
    }

    /// Bytes held, written or not.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Lines held.
    pub(crate) fn lines(&self) -> usize {
        self.lines
    }

    /// Bytes not yet written.
    pub(crate) fn unwritten(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Bytes of the last line that were written although the line was not
    /// whole: what a failed write left at the end of the output.
    pub(crate) fn partial(&self) -> usize {
        let head = &self.buf[..self.written];
        head.len() - head.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
    }

    /// Takes back the last `n` written bytes, cut from the output.
    pub(crate) fn unwrite(&mut self, n: usize) {
        self.written -= n;
    }

    /// Everything is to be written again, to a new output.
    pub(crate) fn rewind(&mut self) {
        self.written = 0;
    }

    /// Once every byte is written: forgets them, and gives the ids of their
    /// data for `event_done`.
    pub(crate) fn take_ids(&mut self) -> std::vec::Drain<'_, EventId> {
        debug_assert_eq!(self.written, self.buf.len(), "reported done before written");
        self.buf.clear();
        self.written = 0;
        self.lines = 0;
        self.ids.drain(..)
    }

    /// Forgets everything held.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ids.clear();
        self.lines = 0;
        self.written = 0;
    }

    /// Writes every byte not yet written. On an error the bytes written so
    /// far count as written, so a retry neither loses nor repeats any.
    pub(crate) fn write_to(&mut self, out: &mut impl Write) -> io::Result<()> {
        while self.written < self.buf.len() {
            match out.write(&self.buf[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The immediate key of the end-of-burst flush.
pub(crate) const FLUSH: u64 = 1;
/// The timer key of the retry after a failed write.
pub(crate) const RETRY: u64 = 2;

/// How long the retry timer waits while nothing fails.
const PARKED: Duration = Duration::from_secs(24 * 3600);

/// When a drain writes: at the end of each burst, and after a failure.
///
/// The retry timer is bound once, in `start`, and parked far ahead while
/// writes succeed: a cog may move what it holds while it finishes but not
/// bind anything new, and a write may well fail for the first time then.
#[derive(Debug)]
pub(crate) struct Schedule {
    burst: Option<ImmediateId>,
    retry: Option<TimerId>,
    interval: Duration,
}

impl Schedule {
    pub(crate) fn new(interval: Duration) -> Schedule {
        Schedule {
            burst: None,
            retry: None,
            interval,
        }
    }

    pub(crate) fn start<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, what: &str) {
        match ctx.every(PARKED, RETRY) {
            Ok(id) => self.retry = Some(id),
            Err(e) => log::error!("{what}: cannot bind the retry timer ({e}); failed writes will not be retried"),
        }
    }

    /// A datum was buffered: queues the end-of-burst flush if none is
    /// queued. False if it cannot be queued: flush now.
    pub(crate) fn burst<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> bool {
        if self.burst.is_none() {
            self.burst = ctx.enqueue(FLUSH).ok();
        }
        self.burst.is_some()
    }

    /// The end-of-burst flush came up.
    pub(crate) fn burst_fired(&mut self) {
        self.burst = None;
    }

    pub(crate) fn retry_soon<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.retry_after(ctx, self.interval);
    }

    pub(crate) fn retry_after<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>, delay: Duration) {
        if let Some(id) = self.retry {
            let at = ctx.now() + delay;
            ctx.reschedule(id, at);
        }
    }

    pub(crate) fn park<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if let Some(id) = self.retry {
            let at = ctx.now() + PARKED;
            ctx.reschedule(id, at);
        }
    }

    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }
}

/// The driver: the batch, when to write it, and whether writes fail.
///
/// A drain asks it what to do with each datum ([`push`](Driver::push)),
/// at the end of a burst ([`burst_fired`](Driver::burst_fired)), and tells
/// it how a write went ([`written`](Driver::written),
/// [`failed`](Driver::failed)).
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) batch: Batch,
    pub(crate) schedule: Schedule,
    buffer_bytes: usize,
    /// Since when writes fail, if they do.
    failing: Option<Instant>,
    congested: bool,
    pub(crate) meter: Meter,
    pub(crate) gauges: DrainGauges,
}

impl Driver {
    /// A driver that writes once `buffer_bytes` are held, and retries a
    /// failed write after `retry` (the drain may wait longer).
    pub(crate) fn new(buffer_bytes: usize, retry: Duration) -> Driver {
        Driver {
            batch: Batch::with_capacity(buffer_bytes),
            schedule: Schedule::new(retry),
            buffer_bytes,
            failing: None,
            congested: false,
            meter: Meter::default(),
            gauges: DrainGauges::default(),
        }
    }

    /// Buffers `bytes` (a line) of the datum `id`; true if the drain
    /// writes now. While writes fail the retry timer writes, and a full
    /// buffer makes the drain congested: it asks for no more until then.
    pub(crate) fn push<D, N: Next<D> + ?Sized>(
        &mut self,
        bytes: &[u8],
        id: Option<EventId>,
        ctx: &mut Context<'_, D, N>,
    ) -> bool {
        self.batch.push(bytes, id);
        self.meter.took(bytes.len());
        self.gauges.buffered.set(self.batch.len() as u64);
        if self.batch.len() >= self.buffer_bytes {
            if self.failing.is_some() {
                self.congested = true;
                return false;
            }
            return true;
        }
        !self.schedule.burst(ctx) && self.failing.is_none()
    }

    /// The end-of-burst flush came up; true if the drain writes now.
    pub(crate) fn burst_fired(&mut self) -> bool {
        self.schedule.burst_fired();
        self.failing.is_none()
    }

    /// Everything buffered is written: reports it done, parks the retry
    /// timer and resumes the train if it was congested. Since when writes
    /// had failed, if they had (for the drain's "writing again" line).
    pub(crate) fn written<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Option<Instant> {
        let lines = self.batch.lines() as u64;
        self.gauges.written.add(lines);
        self.meter.emitted_n(lines);
        self.gauges.buffered.set(0);
        for id in self.batch.take_ids() {
            ctx.event_done(id);
        }
        let since = self.failing.take();
        if since.is_some() {
            self.gauges.retries.add(1);
            self.schedule.park(ctx);
        }
        if self.congested {
            self.congested = false;
            ctx.resume_upstream();
        }
        since
    }

    /// A write failed at `now`; true if it is the first since writes last
    /// succeeded. The drain sets the retry timer.
    pub(crate) fn failed(&mut self, now: Instant) -> bool {
        let first = self.failing.is_none();
        self.meter.error();
        self.gauges.write_errors.add(1);
        if !first {
            self.gauges.retries.add(1);
        }
        self.failing.get_or_insert(now);
        first
    }

    /// Writes fail.
    pub(crate) fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// The buffer is full while writes fail.
    pub(crate) fn congested(&self) -> bool {
        self.congested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_knows_its_partly_written_last_line() {
        let mut b = Batch::with_capacity(64);
        b.push(b"one", None);
        b.push(b"two", None);
        let mut out: Vec<u8> = Vec::new();
        // A writer that takes 6 bytes, then fails.
        struct Short<'a>(&'a mut Vec<u8>, usize);
        impl Write for Short<'_> {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.1 == 0 {
                    return Err(io::ErrorKind::StorageFull.into());
                }
                let n = buf.len().min(self.1);
                self.0.extend_from_slice(&buf[..n]);
                self.1 -= n;
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(b.write_to(&mut Short(&mut out, 6)).is_err());
        assert_eq!((out.as_slice(), b.partial(), b.unwritten()), (&b"one\ntw"[..], 2, 2));
        b.unwrite(2);
        out.truncate(4);
        assert_eq!((b.partial(), b.unwritten()), (0, 4));
        b.write_to(&mut Short(&mut out, 100)).unwrap();
        assert_eq!(out, b"one\ntwo\n");
        assert_eq!(b.lines(), 2);
        assert_eq!(b.take_ids().count(), 0);
        assert!(b.is_empty());
        b.push(b"three", None);
        b.write_to(&mut Vec::new()).unwrap();
        b.rewind();
        assert_eq!(b.unwritten(), 6, "a new file gets the whole batch again");
    }
}
