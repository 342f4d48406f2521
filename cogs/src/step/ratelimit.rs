//! The `rate_limit` cog: at most `rate` data per second per key, with
//! bursts of up to `burst`; what is over the limit is dropped (reported
//! done, counted).
//!
//! Each key has a token bucket: it holds up to `burst` tokens, gains `rate`
//! tokens a second, and a datum passes if it can take one. A key seen for
//! the first time starts with a full bucket. At most `max_keys` buckets are
//! kept: past that, full buckets (keys quiet long enough to have refilled)
//! are forgotten, and if none is, new keys share one overflow bucket until
//! some are — memory stays bounded and the limit still holds, if coarser.
//!
//! The clock is the loop's ([`Context::now`]); [`Buckets`] takes the time
//! as an argument.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tourbillon::{Cog, Context, Event, Next};

use crate::access::{Access, FieldKey};
use crate::meter::{Meter, Metered};
use crate::Error;

/// A token bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Bucket {
        Bucket { tokens: burst, at: now }
    }

    fn refill(&mut self, now: Instant, rate: f64, burst: f64) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * rate).min(burst);
        self.at = now;
    }

    fn take(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        self.refill(now, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The token buckets of every key: the bookkeeping of [`RateLimit`].
///
/// ```
/// use std::time::{Duration, Instant};
/// use tourbillon_cogs::step::ratelimit::Buckets;
///
/// let mut b = Buckets::new(1.0, 2.0, 100); // one a second, bursts of two
/// let t0 = Instant::now();
/// assert!(b.take("k", t0) && b.take("k", t0));
/// assert!(!b.take("k", t0), "the burst is spent");
/// assert!(b.take("k", t0 + Duration::from_secs(1)), "a second refills one");
/// ```
#[derive(Debug)]
pub struct Buckets {
    rate: f64,
    burst: f64,
    max: usize,
    keys: HashMap<Box<str>, Bucket>,
    overflow: Option<Bucket>,
    /// When the buckets were last swept for full ones.
    swept: Option<Instant>,
    overflowed: u64,
}

impl Buckets {
    /// `rate` tokens a second, up to `burst`, for at most `max` keys.
    pub fn new(rate: f64, burst: f64, max: usize) -> Buckets {
        Buckets {
            rate,
            burst,
            max: max.max(1),
            keys: HashMap::new(),
            overflow: None,
            swept: None,
            overflowed: 0,
        }
    }

    /// True if a datum of `key` may pass at `now` (and takes its token).
    pub fn take(&mut self, key: &str, now: Instant) -> bool {
        let (rate, burst) = (self.rate, self.burst);
        if let Some(b) = self.keys.get_mut(key) {
            return b.take(now, rate, burst);
        }
        if self.keys.len() >= self.max {
            self.sweep(now);
        }
        if self.keys.len() >= self.max {
            self.overflowed += 1;
            return self
                .overflow
                .get_or_insert_with(|| Bucket::full(burst, now))
                .take(now, rate, burst);
        }
        let mut b = Bucket::full(burst, now);
        let ok = b.take(now, rate, burst);
        self.keys.insert(key.into(), b);
        ok
    }

    /// Forgets the buckets that are full again, at most once per refill time
    /// (so a flood of new keys does not sweep on every datum).
    fn sweep(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64((self.burst / self.rate).min(86_400.0));
        if self.swept.is_some_and(|t| now.saturating_duration_since(t) < refill) {
            return;
        }
        self.swept = Some(now);
        let (rate, burst) = (self.rate, self.burst);
        self.keys.retain(|_, b| {
            b.refill(now, rate, burst);
            b.tokens < burst
        });
        if self.keys.len() < self.max {
            self.overflow = None;
        }
    }

    /// Keys with a bucket of their own.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True if no key has a bucket.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Data of new keys that went to the shared overflow bucket.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }
}

/// Settings of [`RateLimit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitSettings {
    /// Field paths whose values together are the key (a missing field is a
    /// value of its own). Default none: one limit for everything.
    pub key: Vec<String>,
    /// Data per second per key, on average (`0.5`: one every two seconds).
    /// More than 0. Default 100.
    pub rate: f64,
    /// Data a key may send at once after a pause; at least 1. Default 0:
    /// `rate` (one second's worth), at least 1.
    pub burst: f64,
    /// Keys with a bucket of their own, at most. At least 1. Default 100000.
    pub max_keys: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            key: Vec::new(),
            rate: 100.0,
            burst: 0.0,
            max_keys: 100_000,
        }
    }
}

impl RateLimitSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(Error::setting("rate", "must be a number above 0"));
        }
        if !(self.burst == 0.0 || (self.burst.is_finite() && self.burst >= 1.0)) {
            return Err(Error::setting(
                "burst",
                "must be at least 1 (or 0 for one second's worth)",
            ));
        }
        if self.max_keys == 0 {
            return Err(Error::setting("max_keys", "must be at least 1"));
        }
        Ok(())
    }

    /// The burst in effect.
    pub fn effective_burst(&self) -> f64 {
        if self.burst == 0.0 {
            self.rate.max(1.0)
        } else {
            self.burst
        }
    }
}

/// Limits the rate of data per key; see the [module docs](self).
pub struct RateLimit<D = Event> {
    settings: RateLimitSettings,
    key: FieldKey<D>,
    buckets: Buckets,
    buf: String,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for RateLimit<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("settings", &self.settings)
            .field("keys", &self.buckets.len())
            .finish_non_exhaustive()
    }
}

impl RateLimit<Event> {
    /// A `rate_limit` cog for events.
    pub fn new(settings: RateLimitSettings) -> Result<Self, Error> {
        RateLimit::with_access(settings, Access::event())
    }
}

impl<D: 'static> RateLimit<D> {
    /// A `rate_limit` cog reaching fields through `access`.
    pub fn with_access(settings: RateLimitSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        Ok(RateLimit {
            key: FieldKey::new(&access, "key", &settings.key)?,
            buckets: Buckets::new(settings.rate, settings.effective_burst(), settings.max_keys),
            settings,
            buf: String::new(),
            access,
            meter: Meter::default(),
        })
    }
}

impl<D: 'static> Metered for RateLimit<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for RateLimit<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        self.key.render(&datum, &mut self.buf);
        let keep = self.buckets.take(&self.buf, ctx.now());
        self.meter.keep_or_drop(keep, datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rate_limit key={} rate={}/s burst={} max_keys={}",
            self.key,
            self.settings.rate,
            self.settings.effective_burst(),
            self.settings.max_keys
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refills_at_the_rate_and_never_above_the_burst() {
        let mut b = Buckets::new(2.0, 3.0, 10);
        let t = Instant::now();
        assert_eq!((0..5).filter(|_| b.take("k", t)).count(), 3);
        let later = t + Duration::from_millis(500);
        assert_eq!((0..5).filter(|_| b.take("k", later)).count(), 1, "half a second at 2/s");
        let much_later = t + Duration::from_secs(3600);
        assert_eq!(
            (0..5).filter(|_| b.take("k", much_later)).count(),
            3,
            "capped at the burst"
        );
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let mut b = Buckets::new(1.0, 1.0, 10);
        let t = Instant::now();
        assert!(b.take("a", t));
        assert!(!b.take("a", t));
        assert!(b.take("b", t));
    }

    #[test]
    fn past_the_bound_full_buckets_are_forgotten_else_new_keys_share_one() {
        let mut b = Buckets::new(1.0, 1.0, 2);
        let t = Instant::now();
        assert!(b.take("a", t) && b.take("b", t));
        assert!(b.take("c", t), "the overflow bucket starts full");
        assert!(!b.take("d", t), "and is shared");
        assert_eq!((b.len(), b.overflowed()), (2, 2));
        let later = t + Duration::from_secs(5);
        assert!(b.take("e", later), "a and b refilled and were forgotten");
        assert_eq!(b.len(), 1);
    }
}
