//! The `sample` cog: keeps one datum in N, or each with a probability;
//! the others are dropped (reported done, counted).
//!
//! - `one_in = N` keeps the 1st, the N+1st, the 2N+1st datum...
//! - `probability = p` keeps each datum with probability `p`, drawn from a
//!   pseudorandom generator; with a `seed` the same input keeps the same
//!   data in every run.
//! - with `key`, the choice is made per key instead of per datum, from a
//!   hash of the key's values and the seed: every datum of a kept key is
//!   kept (whole sessions, whole traces), the same keys in every run and
//!   on every host that has the same seed.
//!
//! `rate_field` writes the sampling rate (N, or 1/p) into kept data, so
//! what reads them downstream can scale counts back up.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Next, Setter};

use crate::access::{check_path, Access, FieldKey};
use crate::meter::{Meter, Metered};
use crate::Error;

/// Settings of [`Sample`]: give `one_in` or `probability`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleSettings {
    /// Keep one datum in this many (at least 1). Default none.
    pub one_in: Option<u64>,
    /// Keep each datum with this probability (0 to 1). Default none.
    pub probability: Option<f64>,
    /// The seed of the choice, for runs that choose alike. Default none:
    /// a different choice in every run (with `key`: the seed 0).
    pub seed: Option<u64>,
    /// Field paths whose values together are the key: choose per key.
    /// Default none: per datum.
    pub key: Vec<String>,
    /// A field path that gets the sampling rate in kept data. Default none.
    pub rate_field: Option<String>,
}

impl SampleSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        match (self.one_in, self.probability) {
            (None, None) => Err(Error::setting(
                "one_in",
                "give `one_in` (keep 1 in N) or `probability` (0 to 1)",
            )),
            (Some(_), Some(_)) => Err(Error::setting(
                "probability",
                "give `one_in` or `probability`, not both",
            )),
            (Some(0), None) => Err(Error::setting("one_in", "must be at least 1")),
            (None, Some(p)) if !(0.0..=1.0).contains(&p) => Err(Error::setting("probability", "must be from 0 to 1")),
            _ => match &self.rate_field {
                Some(f) => check_path("rate_field", f),
                None => Ok(()),
            },
        }
    }

    /// The sampling rate: N, or 1/p (infinite for p = 0).
    pub fn rate(&self) -> f64 {
        match (self.one_in, self.probability) {
            (Some(n), _) => n as f64,
            (None, Some(p)) => 1.0 / p,
            (None, None) => 1.0,
        }
    }
}

/// SplitMix64: small, fast and well mixed; not for secrets.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable hash of a key and a seed (FNV-1a, then mixed): the same in
/// every run, build and host.
fn key_hash(key: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ splitmix(seed);
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix(h)
}

/// A uniform number in [0, 1) from 64 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn clock_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    splitmix(t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32))
}

/// Keeps a sample of the data; see the [module docs](self).
pub struct Sample<D = Event> {
    settings: SampleSettings,
    key: FieldKey<D>,
    rate_field: Option<Setter<D, Option<Value>>>,
    seen: u64,
    state: u64,
    buf: String,
    access: Access<D>,
    meter: Meter,
}

impl<D> fmt::Debug for Sample<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sample")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Sample<Event> {
    /// A `sample` cog for events.
    pub fn new(settings: SampleSettings) -> Result<Self, Error> {
        Sample::with_access(settings, Access::event())
    }
}

impl<D: 'static> Sample<D> {
    /// A `sample` cog reaching fields through `access`.
    pub fn with_access(settings: SampleSettings, access: Access<D>) -> Result<Self, Error> {
        settings.validate()?;
        let state = match (settings.seed, settings.key.is_empty()) {
            (Some(s), _) => s,
            (None, false) => 0,
            (None, true) => clock_seed(),
        };
        Ok(Sample {
            key: FieldKey::new(&access, "key", &settings.key)?,
            rate_field: settings.rate_field.as_deref().map(|p| access.writer(p)),
            settings,
            seen: 0,
            state,
            buf: String::new(),
            access,
            meter: Meter::default(),
        })
    }

    /// True if `datum` is kept (advances the count or the generator).
    pub fn keeps(&mut self, datum: &D) -> bool {
        let bits = if self.key.is_empty() {
            match self.settings.one_in {
                Some(n) => {
                    let keep = self.seen % n == 0;
                    self.seen += 1;
                    return keep;
                }
                None => {
                    self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    splitmix(self.state)
                }
            }
        } else {
            self.key.render(datum, &mut self.buf);
            key_hash(&self.buf, self.state)
        };
        match (self.settings.one_in, self.settings.probability) {
            (Some(n), _) => bits % n == 0,
            (None, Some(p)) => unit(bits) < p,
            (None, None) => true,
        }
    }
}

impl<D: 'static> Metered for Sample<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}

impl<D: 'static> Cog<D> for Sample<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.meter.took(self.access.size(&datum));
        if !self.keeps(&datum) {
            return self.meter.discard(&datum, ctx);
        }
        let datum = match &self.rate_field {
            Some(put) => put.set(datum, Some(Value::from(self.settings.rate()))),
            None => datum,
        };
        self.meter.emit(datum, ctx)
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.settings.one_in, self.settings.probability) {
            (Some(n), _) => write!(f, "sample one_in={n}")?,
            (_, p) => write!(f, "sample probability={}", p.unwrap_or(1.0))?,
        }
        if !self.key.is_empty() {
            write!(f, " key={}", self.key)?;
        }
        if let Some(s) = self.settings.seed {
            write!(f, " seed={s}")?;
        }
        if let Some(r) = &self.settings.rate_field {
            write!(f, " rate_field={r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(s: SampleSettings) -> Sample<Value> {
        Sample::with_access(s, Access::json()).unwrap()
    }

    #[test]
    fn one_in_n_keeps_the_first_of_every_n() {
        let mut s = sample(SampleSettings {
            one_in: Some(3),
            ..SampleSettings::default()
        });
        let kept: Vec<bool> = (0..7).map(|_| s.keeps(&json!({}))).collect();
        assert_eq!(kept, [true, false, false, true, false, false, true]);
    }

    #[test]
    fn a_seeded_probability_keeps_about_that_share_and_the_same_data_each_run() {
        let settings = SampleSettings {
            probability: Some(0.25),
            seed: Some(42),
            ..SampleSettings::default()
        };
        let run = || {
            let mut s = sample(settings.clone());
            (0..10_000).map(|_| s.keeps(&json!({}))).collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let kept = first.iter().filter(|k| **k).count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }

    #[test]
    fn by_key_every_datum_of_a_key_shares_its_fate() {
        let mut s = sample(SampleSettings {
            probability: Some(0.5),
            key: vec!["user".into()],
            ..SampleSettings::default()
        });
        for user in 0..100 {
            let d = json!({ "user": user });
            let first = s.keeps(&d);
            assert!((0..5).all(|_| s.keeps(&d) == first), "user {user}");
        }
    }

    #[test]
    fn settings_need_exactly_one_of_one_in_and_probability() {
        assert!(SampleSettings::default().validate().is_err());
        let both = SampleSettings {
            one_in: Some(2),
            probability: Some(0.5),
            ..SampleSettings::default()
        };
        assert_eq!(
            both.validate().unwrap_err().to_string(),
            "probability: give `one_in` or `probability`, not both"
        );
    }
}
