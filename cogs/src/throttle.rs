//! Logging what happens often without flooding the log: a [`LogThrottle`]
//! lets the first occurrence through, then one line per interval that
//! counts what it held back ([`Summary`]).

use std::time::{Duration, Instant};

/// Occurrences held back by a [`LogThrottle`], to log as one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// How many were held back.
    pub count: u64,
    /// Over how long: since the last line logged about them.
    pub over: Duration,
}

impl Summary {
    /// `" (N more in the last Ss)"` for a log line, or nothing.
    pub fn note(held: Option<Summary>) -> String {
        held.map_or(String::new(), |s| {
            format!(" ({} more in the last {:.0}s)", s.count, s.over.as_secs_f64())
        })
    }
}

/// What to do about one occurrence, says [`LogThrottle::hit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Log this one in full. `held` is what an expired window still held
    /// back: log its summary first.
    Log {
        /// Occurrences held back before this one, not yet summarized.
        held: Option<Summary>,
    },
    /// Held back: counted for a summary that [`LogThrottle::summary`] gives
    /// at `due` (arm a timer for it).
    Hold {
        /// When the summary is due.
        due: Instant,
    },
}

/// Keeps a recurring problem (malformed input, failed writes) to at most one
/// log line per interval: the first occurrence is logged in full at once,
/// the ones that follow within the interval are counted and summarized
/// ("N more ... in the last 10s") when it ends.
///
/// The clock is passed in, so the logic is testable without sleeping.
///
/// ```
/// use std::time::{Duration, Instant};
/// use tourbillon_cogs::{LogThrottle, Summary, Verdict};
///
/// let mut t = LogThrottle::new(Duration::from_secs(10));
/// let t0 = Instant::now();
/// assert_eq!(t.hit(t0), Verdict::Log { held: None });
/// assert!(matches!(t.hit(t0 + Duration::from_secs(1)), Verdict::Hold { .. }));
/// assert_eq!(t.summary(t0 + Duration::from_secs(5)), None, "not due yet");
/// let s = t.summary(t0 + Duration::from_secs(10)).unwrap();
/// assert_eq!(s, Summary { count: 1, over: Duration::from_secs(10) });
/// ```
#[derive(Clone, Debug)]
pub struct LogThrottle {
    interval: Duration,
    /// When the current window opened: the last line logged (in full or as
    /// a summary). `None`: no window, the next occurrence is logged in full.
    opened: Option<Instant>,
    held: u64,
    total: u64,
}

impl LogThrottle {
    /// At most one line per `interval` (at most a century: a longer one
    /// would overflow the clock's arithmetic, and means "never again" anyway).
    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval: interval.min(Duration::from_secs(100 * 365 * 86_400)),
            opened: None,
            held: 0,
            total: 0,
        }
    }

    /// Counts one occurrence at `now` and says whether to log it.
    pub fn hit(&mut self, now: Instant) -> Verdict {
        self.total += 1;
        match self.opened {
            Some(opened) if now < opened + self.interval => {
                self.held += 1;
                Verdict::Hold {
                    due: opened + self.interval,
                }
            }
            _ => {
                let held = self.take(now);
                self.opened = Some(now);
                Verdict::Log { held }
            }
        }
    }

    /// The occurrences held back, once the window that held them is over at
    /// `now`; the summary then counts as the window's line, so the next
    /// occurrence within an interval of it is held back too.
    pub fn summary(&mut self, now: Instant) -> Option<Summary> {
        let opened = self.opened?;
        if self.held == 0 {
            if now >= opened + self.interval {
                self.opened = None;
            }
            return None;
        }
        if now < opened + self.interval {
            return None;
        }
        let s = self.take(now);
        self.opened = Some(now);
        s
    }

    /// The occurrences held back, whatever the time (at finish).
    pub fn flush(&mut self, now: Instant) -> Option<Summary> {
        let s = self.take(now);
        self.opened = None;
        s
    }

    /// When [`summary`](Self::summary) will have something to say, if ever.
    pub fn due(&self) -> Option<Instant> {
        match self.opened {
            Some(opened) if self.held > 0 => Some(opened + self.interval),
            _ => None,
        }
    }

    /// The interval it keeps between log lines.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Every occurrence counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn take(&mut self, now: Instant) -> Option<Summary> {
        let opened = self.opened?;
        let count = std::mem::take(&mut self.held);
        (count > 0).then(|| Summary {
            count,
            over: now.saturating_duration_since(opened),
        })
    }
}
