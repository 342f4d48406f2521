//! Splitting byte streams into lines, for every cog that reads bytes (the
//! tail, `stdin`, the [`lines`](crate::step::lines) step): [`LineSplitter`]
//! and its [`LinesSettings`].
//!
//! A line ends at `\n` (with `strip_cr`, an `\r` before it is part of the
//! ending). A line longer than `max_line_bytes` is cut: its first bytes go
//! out as one line flagged [`truncated`](LineFlags::truncated) and the rest,
//! up to the next newline, is counted and dropped, so memory stays bounded
//! whatever the input. Bytes after the last newline are held until more
//! arrive, or until they are taken out with
//! [`take_partial`](LineSplitter::take_partial) (at finish, or when a file
//! has been idle). Invalid UTF-8 is kept as it is or replaced with U+FFFD;
//! it never stops anything. Every cut is counted and logged ([`CutLog`]).

use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

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
/// [`Lines`](crate::step::lines::Lines) cog.
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
/// use tourbillon_cogs::splitter::{CutLog, LineSplitter, LinesSettings};
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
/// use tourbillon_cogs::splitter::{LineSplitter, LinesSettings};
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
