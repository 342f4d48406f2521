//! The standard cogs of tourbillon: a library of cogs only. The `tourbillon`
//! binary, which builds trains of these cogs from a configuration file (the
//! registry of cog kinds, the configuration, the daemon), is the
//! `tourbillon-cli` crate in `cogs/cli`; a program that only wants a
//! [`Tail`](supply::tail::Tail) compiles none of it.
//!
//! Each cog has a settings struct (serde, `deny_unknown_fields`, every field
//! defaulted and documented with its unit): the "base insert" a config file
//! fills in. Cogs reach into data through [accessors](tourbillon::accessor),
//! with defaults for [`tourbillon::Event`].
//!
//! The modules follow the roles: [`supply`] brings data in, [`step`] works
//! on it, [`drain`] writes it out; subsystems with cogs in several roles
//! ([`program`], `jetstream`) and the machinery the cogs share ([`net`],
//! [`setting`], [`access`], [`time`], [`meter`]) have modules of their own.
//!
//! | module | cogs | role |
//! |---|---|---|
//! | [`supply::tail`] | [`Tail`](supply::tail::Tail): follows files through rotations, checkpointed | supply |
//! | [`supply::stdin`] | [`StdinSupply`](supply::stdin::StdinSupply): lines of standard input | supply |
//! | [`supply::listen`] | [`NetSupply`](supply::listen::NetSupply): TCP, Unix stream and UDP sockets | supply |
//! | [`step::lines`] | [`Lines`](step::lines::Lines): splits the bytes of each datum into lines (the splitting itself is [`splitter`], which supplies use too) | step |
//! | [`step::json`] | [`JsonDecode`](step::json::JsonDecode), [`JsonEncode`](step::json::JsonEncode) | step |
//! | [`step::fields`] | [`SetFields`](step::fields::SetFields), [`Rename`](step::fields::Rename), [`Remove`](step::fields::Remove) | step |
//! | [`step::filter`] | [`Filter`](step::filter::Filter): keeps or drops by field conditions | step |
//! | [`step::timestamp`] | [`Timestamp`](step::timestamp::Timestamp): parses a time into RFC 3339 or epoch | step |
//! | [`step::anonymize`] | [`Anonymize`](step::anonymize::Anonymize): truncates or pseudonymizes IP addresses | step |
//! | [`step::window`] | [`Dedup`](step::window::Dedup), [`Aggregate`](step::window::Aggregate): per key, per time window | step |
//! | [`step::ratelimit`] | [`RateLimit`](step::ratelimit::RateLimit): token bucket per key | step |
//! | [`step::sample`] | [`Sample`](step::sample::Sample): one in N, or with a probability | step |
//! | [`step::rdns`] | [`ReverseDns`](step::rdns::ReverseDns): host names for addresses | step |
//! | [`step::stats`] | [`Stats`](step::stats::Stats): logs per-cog counters | step |
//! | [`drain::file`] | [`FileDrain`](drain::file::FileDrain): appends lines to a file | drain |
//! | [`drain::stdout`] | [`StdoutDrain`](drain::stdout::StdoutDrain): writes lines to stdout | drain |
//! | [`drain::connect`] | [`NetDrain`](drain::connect::NetDrain): writes to a TCP or Unix stream socket | drain |
//! | [`program`] | [`ProgramCog`](program::ProgramCog), [`ProgramServer`](program::ProgramServer): sequences of steps with rectifiers | step, supply |
//! | `jetstream` (feature `nats`) | `JetStreamSupply`, `JetStreamDrain`, `RejectStep`: NATS JetStream, at least once | supply, drain, step |
//!
//! A tail pipeline by hand: follow files of JSON lines, drop the debug
//! events, write the others out (the tail emits one event per line and keeps
//! its read positions in `checkpoint_dir`; the decoder keeps each object as
//! its bytes and an index, which the `level` getter reads in place):
//!
//! ```no_run
//! use tourbillon::{Escapement, Event, Getter, Train};
//! use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
//! use tourbillon_cogs::step::json::{JsonDecode, JsonEncode};
//! use tourbillon_cogs::supply::tail::{Tail, TailSettings};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tail = TailSettings {
//!     include: vec!["/var/log/app/*.jsonl".into()],
//!     checkpoint_dir: Some("/var/lib/tourbillon/app".into()),
//!     ..Default::default()
//! };
//! let out = FileDrainSettings { path: "/var/log/out.jsonl".into(), ..Default::default() };
//! let level = Getter::<Event, str>::path_str("level");
//! let mut esc = Escapement::new()?;
//! esc.add_train(
//!     Train::new("tail")
//!         .ids(Event::id_getter())
//!         .cog(Tail::new(tail)?)
//!         .cog(JsonDecode::new(Default::default())?)
//!         .filter(move |e: &Event| level.get(e) != Some("debug"))
//!         .cog(JsonEncode::new(Default::default())?)
//!         .cog(FileDrain::new(out)?),
//! );
//! esc.run()?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod access;
pub mod drain;
#[cfg(feature = "nats")]
pub mod jetstream;
pub use tourbillon::ledger;
pub mod meter;
pub mod net;
pub mod program;
pub mod setting;
pub mod splitter;
pub mod step;
pub mod supply;
pub mod throttle;
pub mod time;

/// A cog's error as the runtime's, so that one `?` serves both crates:
///
/// ```no_run
/// use tourbillon::{Escapement, Event, Train};
/// use tourbillon_cogs::drain::stdout::{StdoutDrain, StdoutSettings};
/// use tourbillon_cogs::supply::stdin::{StdinSettings, StdinSupply};
///
/// fn main() -> Result<(), tourbillon::Error> {
///     let mut esc = Escapement::new()?;
///     esc.add_train(
///         Train::<Event>::new("copy")
///             .cog(StdinSupply::new(StdinSettings::default())?)
///             .cog(StdoutDrain::new(StdoutSettings::default())?),
///     );
///     esc.run()?;
///     Ok(())
/// }
/// ```
impl From<Error> for tourbillon::Error {
    fn from(e: Error) -> tourbillon::Error {
        tourbillon::Error::Cog(Box::new(e))
    }
}

/// What can go wrong when building the cogs of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting has a value the cog cannot work with.
    #[error("{key}: {message}")]
    Setting {
        /// The setting's key, as in the settings struct (`max_line_bytes`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The state store that keeps a cog's positions could not be opened or read.
    #[error("state store: {0}")]
    Store(#[from] tourbillon::StoreError),
}

impl Error {
    pub(crate) fn setting(key: &str, message: impl Into<String>) -> Error {
        Error::Setting {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

pub use meter::Counter;
pub use throttle::{LogThrottle, Summary, Verdict};
