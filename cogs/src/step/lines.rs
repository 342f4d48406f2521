//! Splitting byte streams into lines: [`LineSplitter`] does the splitting
//! (supplies that read bytes use it directly), [`Lines`] is the cog that
//! splits the bytes of each datum it gets.
//!
//! A line ends at `\n` (with `strip_cr`, an `\r` before it is part of the
//! ending). A line longer than `max_line_bytes` is cut: its first bytes go
//! out as one line flagged [`truncated`](LineFlags::truncated) and the rest,
//! up to the next newline, is counted and dropped, so memory stays bounded
//! whatever the input. Bytes after the last newline are held until more
//! arrive, or until they are taken out with
//! [`take_partial`](LineSplitter::take_partial) (at finish, or when a file
//! has been idle). Invalid UTF-8 is kept as it is or replaced with U+FFFD;
//! it never stops anything.

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Event, EventId, Finish, Next, Role};

use crate::ledger::{Ledger, Ticket};
use crate::{Counter, Error, LogThrottle, Summary, Verdict};

/// What to do with bytes that are not valid UTF-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Utf8 {
    /// Keep the bytes as they are (the default: costs nothing, loses nothing).
    #[default]
    Keep,
    /// Replace each invalid sequence with U+FFFD, so lines are valid UTF-8.
    Replace,
}

impl fmt::Display for Utf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Utf8::Keep => "keep",
            Utf8::Replace => "replace",
        })
    }
}

/// How lines are split: the settings of [`LineSplitter`] and of the
/// [`Lines`] cog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinesSettings {
    /// Longest line kept whole, in bytes, not counting its ending; longer
    /// lines are cut to this length and the rest is dropped. At least 1.
    /// Default 1048576 (1 MiB).
    pub max_line_bytes: usize,
    /// Treat `\r\n` as a line ending too: an `\r` right before the `\n` is
    /// removed. Default true.
    pub strip_cr: bool,
    /// Invalid UTF-8: `"keep"` the bytes (default) or `"replace"` them with U+FFFD.
    pub utf8: Utf8,
}

impl Default for LinesSettings {
    fn default() -> Self {
        LinesSettings {
            max_line_bytes: 1 << 20,
            strip_cr: true,
            utf8: Utf8::Keep,
        }
    }
}

/// The largest `max_line_bytes` accepted.
pub const MAX_LINE_LIMIT: usize = 1 << 30;

impl LinesSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.max_line_bytes == 0 {
            return Err(Error::setting("max_line_bytes", "must be at least 1"));
        }
        if self.max_line_bytes > MAX_LINE_LIMIT {
            return Err(Error::setting(
                "max_line_bytes",
                format!("must be at most {MAX_LINE_LIMIT} (1 GiB): a line is held in memory whole"),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for LinesSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max_line_bytes={} strip_cr={} utf8={}",
            self.max_line_bytes, self.strip_cr, self.utf8
        )
    }
}

/// What is special about one line a [`LineSplitter`] hands out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineFlags {
    /// The line was longer than the maximum: this is its beginning; the rest
    /// was dropped (see [`LineSplitter::discarded_bytes`]).
    pub truncated: bool,
    /// Invalid UTF-8 in it was replaced with U+FFFD.
    pub replaced: bool,
    /// No newline ended it: it was taken out with
    /// [`take_partial`](LineSplitter::take_partial).
    pub unterminated: bool,
    /// With `truncated`: the bytes of the line dropped. Exact when the
    /// line's newline was in the bytes pushed with it; otherwise what was
    /// dropped by then, the rest being dropped as it arrives (and counted
    /// in [`LineSplitter::discarded_bytes`]); see [`LineFlags::rest_unknown`].
    pub dropped: u64,
    /// With `truncated`: the line's end had not arrived yet when it was
    /// handed out, so more than `dropped` bytes may be dropped.
    pub rest_unknown: bool,
}

/// Logs lines cut for being too long, with where they came from and how
/// many bytes were dropped: the first at once, then at most one line per
/// interval, the others summarized in it. Every cut is counted.
///
/// Supplies that split lines call [`note`](Self::note) with each line's
/// flags where they know its file and line number.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tourbillon_cogs::step::lines::{CutLog, LineSplitter, LinesSettings};
///
/// let settings = LinesSettings { max_line_bytes: 4, ..LinesSettings::default() };
/// let mut split = LineSplitter::new(&settings).unwrap();
/// let mut log = CutLog::new(Duration::from_secs(10), settings.max_line_bytes);
/// split.push(b"abcdefgh\n", |line, flags| log.note("app.log:1", line.len(), flags, Instant::now()));
/// assert_eq!(log.cut().get(), 1);
/// ```
#[derive(Debug)]
pub struct CutLog {
    throttle: LogThrottle,
    max: usize,
    cut: Counter,
    dropped: u64,
}

impl CutLog {
    /// At most one log line per `interval`; `max` is the `max_line_bytes` cut at.
    pub fn new(interval: Duration, max: usize) -> CutLog {
        CutLog {
            throttle: LogThrottle::new(interval),
            max,
            cut: Counter::default(),
            dropped: 0,
        }
    }

    /// Counts and logs the line at `place` (`file:line`) if it was cut;
    /// `kept` is the length handed out.
    pub fn note(&mut self, place: impl fmt::Display, kept: usize, flags: LineFlags, now: Instant) {
        if !flags.truncated {
            return;
        }
        self.cut.add(1);
        self.dropped += flags.dropped;
        if let Verdict::Log { held } = self.throttle.hit(now) {
            if let Some(s) = held {
                self.summary(s);
            }
            log::warn!(
                "{place}: line longer than max_line_bytes ({}): cut to {kept} bytes, {} dropped{}",
                self.max,
                match flags.rest_unknown {
                    true => format!("{} bytes and the rest of the line as it arrives", flags.dropped),
                    false => format!("{} bytes", flags.dropped),
                },
                match self.throttle.interval().as_secs() {
                    0 => String::new(),
                    n => format!(" (more within {n}s are summarized)"),
                }
            );
        }
    }

    /// Logs what is held back, at finish.
    pub fn flush(&mut self, now: Instant) {
        if let Some(s) = self.throttle.flush(now) {
            self.summary(s);
        }
    }

    /// The count of lines cut, shared.
    pub fn cut(&self) -> Counter {
        self.cut.clone()
    }

    fn summary(&self, s: Summary) {
        log::warn!(
            "{} more line(s) cut at max_line_bytes ({}) in the last {:.1}s ({} cut in all, {} bytes dropped by then)",
            s.count,
            self.max,
            s.over.as_secs_f64(),
            self.throttle.total(),
            self.dropped
        );
    }
}

/// Splits a stream of byte chunks into lines, with bounded memory.
///
/// Feed it chunks in order with [`push`](Self::push); it calls back with
/// each complete line (without its ending) as soon as the chunk completes
/// it. Lines that lie wholly inside one chunk are handed out as slices of
/// that chunk, without copying; only the bytes after the last newline are
/// copied, to be held until the next chunk.
///
/// ```
/// use tourbillon_cogs::step::lines::{LineSplitter, LinesSettings};
///
/// let mut split = LineSplitter::new(&LinesSettings::default()).unwrap();
/// let mut lines = Vec::new();
/// split.push(b"one\r\ntw", |line, _| lines.push(line.to_vec()));
/// split.push(b"o\nthr", |line, _| lines.push(line.to_vec()));
/// assert_eq!(lines, [b"one".to_vec(), b"two".to_vec()]);
/// assert!(split.take_partial(|line, flags| {
///     assert!(flags.unterminated);
///     lines.push(line.to_vec())
/// }));
/// assert_eq!(lines[2], b"thr");
/// assert_eq!(split.lines(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct LineSplitter {
    settings: LinesSettings,
    /// Bytes after the last newline; never more than `max_line_bytes + 1`.
    partial: Vec<u8>,
    /// Reused for lines whose invalid UTF-8 is replaced.
    scratch: Vec<u8>,
    /// Dropping the rest of a truncated line until its newline.
    discarding: bool,
    lines: u64,
    truncated: u64,
    replaced: u64,
    discarded: u64,
}

impl LineSplitter {
    /// A splitter with these settings; fails if they are not valid.
    pub fn new(settings: &LinesSettings) -> Result<LineSplitter, Error> {
        settings.validate()?;
        Ok(LineSplitter {
            settings: settings.clone(),
            partial: Vec::new(),
            scratch: Vec::new(),
            discarding: false,
            lines: 0,
            truncated: 0,
            replaced: 0,
            discarded: 0,
        })
    }

    /// The settings it splits by.
    pub fn settings(&self) -> &LinesSettings {
        &self.settings
    }

    /// Feeds the next chunk of the stream; `out` gets every line it completes, in order.
    pub fn push(&mut self, mut bytes: &[u8], mut out: impl FnMut(&[u8], LineFlags)) {
        while !bytes.is_empty() {
            let newline = find_newline(bytes);
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.discarded += i as u64;
                        self.discarding = false;
                        bytes = &bytes[i + 1..];
                    }
                    None => {
                        self.discarded += bytes.len() as u64;
                        return;
                    }
                }
                continue;
            }
            let Some(i) = newline else {
                self.hold(bytes, &mut out);
                return;
            };
            let line = &bytes[..i];
            bytes = &bytes[i + 1..];
            if self.partial.is_empty() {
                self.complete(line, &mut out);
            } else {
                let mut joined = std::mem::take(&mut self.partial);
                // The partial holds at most max + 1 bytes; copy no more of
                // the line than it takes to know where to cut it.
                let room = (self.settings.max_line_bytes + 2).saturating_sub(joined.len());
                let taken = line.len().min(room);
                joined.extend_from_slice(&line[..taken]);
                let dropped = line.len() - taken;
                if dropped > 0 {
                    self.discarded += dropped as u64;
                    self.cut(&joined, dropped as u64, false, &mut out);
                } else {
                    self.complete(&joined, &mut out);
                }
                joined.clear();
                self.partial = joined;
            }
        }
    }

    /// Hands out the held partial line (bytes after the last newline), if
    /// any, flagged [`unterminated`](LineFlags::unterminated); true if there
    /// was one. For finish, or a stream that has been idle long enough.
    pub fn take_partial(&mut self, mut out: impl FnMut(&[u8], LineFlags)) -> bool {
        if self.partial.is_empty() {
            return false;
        }
        let partial = std::mem::take(&mut self.partial);
        let mut line = &partial[..];
        // With `strip_cr`, a last `\r` is the beginning of the line ending.
        if self.settings.strip_cr && line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        self.emit(
            line,
            LineFlags {
                unterminated: true,
                ..LineFlags::default()
            },
            &mut out,
        );
        self.partial = partial;
        self.partial.clear();
        true
    }

    /// Bytes held after the last newline, waiting for the rest of their line.
    pub fn partial_len(&self) -> usize {
        self.partial.len()
    }

    /// Lines handed out so far (truncated and unterminated ones included).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Lines handed out truncated because they were longer than the maximum.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Lines handed out with invalid UTF-8 replaced.
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    /// Bytes dropped from the ends of lines that were too long.
    pub fn discarded_bytes(&self) -> u64 {
        self.discarded
    }

    /// Forgets the held partial line and any line being dropped (the
    /// stream was truncated or replaced); the counters stay.
    pub fn reset(&mut self) {
        self.partial.clear();
        self.discarding = false;
    }

    /// Holds bytes that no newline ends yet, cutting the line once it is
    /// certainly too long.
    fn hold(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8], LineFlags)) {
        let max = self.settings.max_line_bytes;
        let total = self.partial.len() + bytes.len();
        // A last `\r` may turn out to be part of the line ending.
        let ending = usize::from(self.settings.strip_cr && bytes.last() == Some(&b'\r'));
        if total - ending <= max {
            self.partial.extend_from_slice(bytes);
            return;
        }
        let taken = (max + 1).saturating_sub(self.partial.len()).min(bytes.len());
        let mut line = std::mem::take(&mut self.partial);
        line.extend_from_slice(&bytes[..taken]);
        let dropped = (bytes.len() - taken) as u64;
        self.discarded += dropped;
        self.cut(&line, dropped, true, out);
        line.clear();
        self.partial = line;
        self.discarding = true;
    }

    /// A line whose newline was found.
    fn complete(&mut self, mut line: &[u8], out: &mut impl FnMut(&[u8], LineFlags)) {
        if self.settings.strip_cr && line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.len() > self.settings.max_line_bytes {
            self.cut(line, 0, false, out)
        } else {
            self.emit(line, LineFlags::default(), out)
        }
    }

    /// Hands out the beginning of a line that is too long, counting the
    /// rest as dropped: `line` past the cut, and `beyond` more bytes already
    /// dropped; `rest_unknown`: its end has not arrived yet.
    fn cut(&mut self, line: &[u8], beyond: u64, rest_unknown: bool, out: &mut impl FnMut(&[u8], LineFlags)) {
        let at = cut_point(line, self.settings.max_line_bytes);
        self.discarded += (line.len() - at) as u64;
        self.truncated += 1;
        self.emit(
            &line[..at],
            LineFlags {
                truncated: true,
                dropped: (line.len() - at) as u64 + beyond,
                rest_unknown,
                ..LineFlags::default()
            },
            out,
        )
    }

    fn emit(&mut self, line: &[u8], mut flags: LineFlags, out: &mut impl FnMut(&[u8], LineFlags)) {
        self.lines += 1;
        if self.settings.utf8 == Utf8::Replace && std::str::from_utf8(line).is_err() {
            self.scratch.clear();
            for chunk in line.utf8_chunks() {
                self.scratch.extend_from_slice(chunk.valid().as_bytes());
                if !chunk.invalid().is_empty() {
                    self.scratch.extend_from_slice("\u{FFFD}".as_bytes());
                }
            }
            self.replaced += 1;
            flags.replaced = true;
            out(&self.scratch, flags)
        } else {
            out(line, flags)
        }
    }
}

/// Where to cut a line longer than `max`: at `max`, or before a UTF-8
/// character that would straddle it, so a valid line stays valid.
fn cut_point(line: &[u8], max: usize) -> usize {
    debug_assert!(line.len() > max);
    let lowest = max.saturating_sub(3);
    let Some(start) = (lowest..=max).rev().find(|&i| line[i] & 0xC0 != 0x80) else {
        return max;
    };
    let width = match line[start] {
        b if b < 0x80 => 1,
        b if b & 0xE0 == 0xC0 => 2,
        b if b & 0xF0 == 0xE0 => 3,
        b if b & 0xF8 == 0xF0 => 4,
        _ => 1,
    };
    if start < max && start + width > max {
        start
    } else {
        max
    }
}

/// The first `\n` in `bytes`, through the C library's vectorised `memchr`.
fn find_newline(bytes: &[u8]) -> Option<usize> {
    // SAFETY: the pointer and length describe `bytes`, which outlives the
    // call; memchr only reads within them and returns a pointer into them.
    let found = unsafe { libc::memchr(bytes.as_ptr().cast(), b'\n' as libc::c_int, bytes.len()) };
    (!found.is_null()).then(|| found as usize - bytes.as_ptr() as usize)
}

/// One line the [`Lines`] cog hands to its maker.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// The line, without its ending.
    pub bytes: &'a [u8],
    /// A fresh id for the datum made from it.
    pub id: EventId,
    /// Its number in the stream this cog splits, from 1.
    pub number: u64,
    /// What is special about it.
    pub flags: LineFlags,
}

type Maker<D> = Box<dyn FnMut(&D, Line<'_>) -> D>;

/// Splits the bytes of each datum into lines and emits one datum per line.
///
/// The bytes come from a [`Getter`] (for [`Event`]: its `raw` bytes); each
/// line becomes a datum through a maker closure, given the datum the line
/// came from and the [`Line`] (for [`Event`]: a new event with the line as
/// `raw`, the parent's `origin`, the line number and a fresh id). The data
/// this cog gets are one stream: a line may begin in one datum and end in a
/// later one. The line still open at finish is emitted then.
///
/// **Acknowledgement.** A datum that comes in is finished (reported
/// `event_done`) only once every line cut from it is finished downstream —
/// including a line it only began, which finishes with the datum that ends
/// it. The cog counts each parent's lines in flight and follows
/// `event_done` / `event_rename` of the lines. Renaming the parent to its
/// last line instead would be cheaper but wrong: it reports the parent done
/// when its last line is, while earlier lines may still be held by a cog
/// that does not finish data in order (a batcher, a second drain). Without an
/// id accessor on the train nothing is tracked.
pub struct Lines<D = Event> {
    splitter: LineSplitter,
    bytes: Getter<D, [u8]>,
    make: Maker<D>,
    /// The last datum whose bytes are in the held partial line: what the
    /// line still open at finish is made from.
    template: Option<D>,
    acks: Acks,
    stats: LinesStats,
    place: Place<D>,
    cuts: CutLog,
}

type Place<D> = Box<dyn Fn(&D, u64) -> String>;

/// Counters of a [`Lines`] cog, readable while it runs.
#[derive(Clone, Debug, Default)]
pub struct LinesStats {
    /// Lines emitted.
    pub lines: Counter,
    /// Lines emitted truncated.
    pub truncated: Counter,
    /// Bytes dropped from the ends of lines that were too long.
    pub discarded_bytes: Counter,
    /// Lines whose invalid UTF-8 was replaced.
    pub replaced: Counter,
}

impl<D> fmt::Debug for Lines<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("source", &self.bytes)
            .field("splitter", &self.splitter)
            .finish_non_exhaustive()
    }
}

impl Lines<Event> {
    /// Splits the `raw` bytes of events into events, one per line.
    pub fn new(settings: LinesSettings) -> Result<Self, Error> {
        Lines::with(
            settings,
            Getter::<Event, [u8]>::raw(),
            |parent: &Event, line: Line<'_>| Event {
                id: line.id,
                data: Value::Null,
                raw: line.bytes.to_vec(),
                origin: parent.origin.clone(),
                line: line.number,
            },
        )
        .map(|lines| {
            lines.place(|parent: &Event, n| match &parent.origin {
                Some(o) => format!("{o}:{n}"),
                None => format!("line {n}"),
            })
        })
    }
}

impl<D: 'static> Lines<D> {
    /// Splits the bytes `bytes` reads; `make` builds the datum of each line
    /// from the datum the line came from. It should give the new datum the
    /// line's [`id`](Line::id).
    pub fn with(
        settings: LinesSettings,
        bytes: Getter<D, [u8]>,
        make: impl FnMut(&D, Line<'_>) -> D + 'static,
    ) -> Result<Self, Error> {
        Ok(Lines {
            splitter: LineSplitter::new(&settings)?,
            bytes,
            make: Box::new(make),
            template: None,
            acks: Acks::default(),
            stats: LinesStats::default(),
            place: Box::new(|_, n| format!("line {n}")),
            cuts: CutLog::new(Duration::from_secs(10), settings.max_line_bytes),
        })
    }

    /// How log lines about a cut line name it, from the datum it came
    /// from and its line number (default: `line N`).
    pub fn place(mut self, place: impl Fn(&D, u64) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// Its counters, shared: read them while the train runs.
    pub fn stats(&self) -> LinesStats {
        self.stats.clone()
    }

    fn update_stats(&self) {
        let s = &self.splitter;
        self.stats.lines.set(s.lines());
        self.stats.truncated.set(s.truncated());
        self.stats.discarded_bytes.set(s.discarded_bytes());
        self.stats.replaced.set(s.replaced());
    }
}

impl<D: 'static> Cog<D> for Lines<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let parent = ctx.id_of(&datum);
        let now = ctx.now();
        let Lines {
            splitter,
            bytes,
            make,
            acks,
            place,
            cuts,
            ..
        } = self;
        // Held while splitting, so lines finished meanwhile cannot
        // finish the parent before all its lines are out.
        let ticket = parent.map(|p| acks.hold(p));
        let chunk = bytes.get(&datum).unwrap_or_default();
        // The first line out continues what earlier data left held.
        let mut continues = splitter.partial_len() > 0;
        let mut number = splitter.lines();
        splitter.push(chunk, |bytes, flags| {
            let id = ctx.next_event_id();
            number += 1;
            if flags.truncated {
                cuts.note(place(&datum, number), bytes.len(), flags, now);
            }
            let child = make(
                &datum,
                Line {
                    bytes,
                    id,
                    number,
                    flags,
                },
            );
            if let Some(t) = ticket {
                acks.line(id, t, std::mem::take(&mut continues));
            }
            ctx.emit(child);
        });
        let contributes = !chunk.is_empty() && splitter.partial_len() > 0;
        if let Some(t) = ticket {
            if contributes {
                acks.hold_partial(t);
            }
            if let Some(p) = acks.release(t) {
                ctx.event_done(p);
            }
        }
        if contributes {
            self.template = Some(datum);
        } else if self.splitter.partial_len() == 0 {
            self.template = None;
        }
        self.update_stats();
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        self.acks.done(id, |p| ctx.event_done(p));
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.acks.rename(old, new);
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        let Lines {
            splitter,
            make,
            acks,
            template,
            ..
        } = self;
        if let Some(parent) = template.take() {
            let number = splitter.lines() + 1;
            splitter.take_partial(|bytes, flags| {
                let id = ctx.next_event_id();
                let child = make(
                    &parent,
                    Line {
                        bytes,
                        id,
                        number,
                        flags,
                    },
                );
                acks.held_line(id);
                ctx.emit(child);
            });
        }
        self.cuts.flush(ctx.now());
        self.update_stats();
        Finish::Done
    }

    fn role(&self) -> Role {
        Role::Step
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lines source={} {}", self.bytes, self.splitter.settings())
    }
}

/// Which parents each line in flight finishes: a parent is a payload of
/// the [`Ledger`], owed by each line cut from it, held while it is being
/// split and while its bytes are in the held partial line.
#[derive(Debug, Default)]
struct Acks {
    ledger: Ledger<EventId>,
    /// Parents whose bytes are in the held partial line.
    held: Vec<Ticket>,
}

impl Acks {
    /// Parent `p` is being split: held until [`release`](Acks::release).
    fn hold(&mut self, p: EventId) -> Ticket {
        self.ledger.open(p)
    }

    /// Line `id` was cut from parent `t`; if it `continues` the held
    /// partial line, the parents held there now wait for it instead.
    fn line(&mut self, id: EventId, t: Ticket, continues: bool) {
        if continues {
            self.held_line(id);
        }
        self.ledger.attach(id, t);
    }

    /// Parent `t`'s last bytes are held in the partial line.
    fn hold_partial(&mut self, t: Ticket) {
        self.ledger.hold(t);
        self.held.push(t);
    }

    /// Line `id` is the held partial line (ended, or taken out at finish):
    /// the parents held there wait for it.
    fn held_line(&mut self, id: EventId) {
        for t in std::mem::take(&mut self.held) {
            self.ledger.attach(id, t);
            // Owed by the line now, so never the last reference.
            let none = self.ledger.release(t);
            debug_assert!(none.is_none());
        }
    }

    /// Drops the hold on parent `t`; the parent if it is done.
    fn release(&mut self, t: Ticket) -> Option<EventId> {
        self.ledger.release(t)
    }

    /// Line `id` is done: calls `finished` with each parent that is now done.
    fn done(&mut self, id: EventId, finished: impl FnMut(EventId)) {
        self.ledger.done(id, finished);
    }

    /// Line `old` lives on as `new` (merged into it, or renamed).
    fn rename(&mut self, old: EventId, new: EventId) {
        self.ledger.rename(old, new);
    }
}
