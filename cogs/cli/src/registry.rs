//! Cog kinds by name, for trains built from configuration.
//!
//! Every kind has a settings struct (serde, `deny_unknown_fields`, documented
//! defaults), a check of them that opens nothing, and a constructor;
//! [`Registry::add`] plugs a new kind in:
//!
//! ```
//! use tourbillon::Role;
//! use tourbillon_cogs::registry::{by_building, Registry};
//! use tourbillon_cogs::drain::stdout::StdoutDrain;
//!
//! let mut registry = Registry::empty();
//! registry.add(
//!     "stdout",
//!     "write lines to standard output",
//!     Role::Drain,
//!     by_building(StdoutDrain::new),
//!     |s, _| StdoutDrain::new(s),
//! );
//! assert_eq!(registry.kinds(), ["stdout"]);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use tourbillon::{Cog, DynCog, Event, Role};

use crate::supply::tail::TailSettings;

use crate::config::{deserialize_at, CogConfig, CogSettings, ConfigError, Layered};
use crate::step::stats::metered;
use crate::Error;

/// What a constructor knows about where its cog goes.
#[derive(Clone, Debug)]
pub struct BuildEnv {
    /// The train's name.
    pub train: String,
    /// The cog's position in the train, from 0.
    pub index: usize,
}

/// A cog built from its settings, with what `tourbillon train` prints.
pub struct BuiltCog {
    /// The cog.
    pub cog: Box<dyn DynCog<Event>>,
    /// Its role.
    pub role: Role,
    /// Its effective settings (defaults filled in).
    pub settings: Value,
}

impl fmt::Debug for BuiltCog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuiltCog")
            .field("role", &self.role)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

type Build = Box<dyn Fn(&Layered, &CogConfig, &BuildEnv) -> Result<BuiltCog, ConfigError>>;
type Check = Box<dyn Fn(&Layered, &CogConfig, &BuildEnv) -> Result<Value, ConfigError>>;

struct Kind {
    about: &'static str,
    role: Role,
    check: Check,
    build: Build,
}

/// Cog kinds by name.
pub struct Registry {
    kinds: BTreeMap<&'static str, Kind>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.kinds.keys()).finish()
    }
}

/// The check of a kind whose constructor opens, creates and locks nothing:
/// building the cog and dropping it finds exactly the errors a build finds.
pub fn by_building<S: Clone, C>(build: impl Fn(S) -> Result<C, Error>) -> impl Fn(&S, &BuildEnv) -> Result<(), Error> {
    move |settings, _| build(settings.clone()).map(drop)
}

/// The tail's check: its constructor opens the checkpoint store, so it is
/// built without one (it then opens nothing: files are found when it
/// starts) after the settings' own check of `checkpoint_dir`.
fn check_tail(settings: &TailSettings, _: &BuildEnv) -> Result<(), Error> {
    settings.validate()?;
    crate::supply::tail::Tail::new(TailSettings {
        checkpoint_dir: None,
        ..settings.clone()
    })
    .map(drop)
}

/// A constructor's error, at its key path under the cog's section.
fn setting_error(layered: &Layered, config: &CogConfig, error: Error) -> ConfigError {
    match error {
        Error::Setting { key, message } => {
            let mut path = config.path.clone();
            for part in key.split('.') {
                path = path.key(part);
            }
            ConfigError {
                origin: Some(layered.origin(&path)),
                path: path.to_string(),
                message,
            }
        }
        #[allow(unreachable_patterns)]
        e => ConfigError {
            origin: Some(layered.origin(&config.path)),
            path: config.path.to_string(),
            message: e.to_string(),
        },
    }
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry { kinds: BTreeMap::new() }
    }

    /// Every cog kind of this crate.
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        let board = crate::step::stats::Board::default();
        r.add(
            "stdin",
            "supply: lines from standard input, until its end",
            Role::Supply,
            by_building(crate::supply::stdin::StdinSupply::new),
            |s, _| crate::supply::stdin::StdinSupply::new(s),
        );
        r.add(
            "tail",
            "supply: follow files and globs through rotation, with checkpoints",
            Role::Supply,
            check_tail,
            |s, _| crate::supply::tail::Tail::new(s),
        );
        r.add(
            "listen",
            "supply: frames from TCP or Unix-socket clients, or UDP datagrams",
            Role::Supply,
            by_building(crate::supply::listen::NetSupply::new),
            |s, _| crate::supply::listen::NetSupply::new(s),
        );
        r.add(
            "connect",
            "drain: frames to a TCP or Unix-socket peer, reconnecting",
            Role::Drain,
            by_building(crate::drain::connect::NetDrain::new),
            |s, _| crate::drain::connect::NetDrain::new(s),
        );
        r.add(
            "reverse_dns",
            "add the host name of an address field (worker threads, cache, never blocks)",
            Role::Step,
            by_building(crate::step::rdns::ReverseDns::<Event>::new),
            |s, _| crate::step::rdns::ReverseDns::new(s),
        );
        #[cfg(feature = "nats")]
        crate::jetstream::register(&mut r);
        r.add(
            "lines",
            "split byte chunks into lines",
            Role::Step,
            by_building(crate::step::lines::Lines::new),
            |s, _| crate::step::lines::Lines::new(s),
        );
        r.add(
            "json_decode",
            "parse JSON text into the event's data",
            Role::Step,
            by_building(crate::step::json::JsonDecode::new),
            |s, _| crate::step::json::JsonDecode::new(s),
        );
        r.add(
            "json_encode",
            "render the event's data as JSON text",
            Role::Step,
            by_building(crate::step::json::JsonEncode::new),
            |s, _| crate::step::json::JsonEncode::new(s),
        );
        r.add(
            "set",
            "write fixed values, the host name, the receive time into fields",
            Role::Step,
            by_building(crate::step::fields::SetFields::<Event>::new),
            |s, _| crate::step::fields::SetFields::new(s).map(|c| c.place(Event::place)),
        );
        r.add(
            "rename",
            "move fields to new paths",
            Role::Step,
            by_building(crate::step::fields::Rename::new),
            metered(&board, "rename", |s, _| crate::step::fields::Rename::new(s)),
        );
        r.add(
            "remove",
            "remove fields",
            Role::Step,
            by_building(crate::step::fields::Remove::new),
            metered(&board, "remove", |s, _| crate::step::fields::Remove::new(s)),
        );
        r.add(
            "filter",
            "keep or drop by field conditions",
            Role::Step,
            by_building(crate::step::filter::Filter::new),
            metered(&board, "filter", |s, _| crate::step::filter::Filter::new(s)),
        );
        r.add(
            "timestamp",
            "parse a time in a field into RFC 3339 or epoch",
            Role::Step,
            by_building(crate::step::timestamp::Timestamp::new),
            metered(&board, "timestamp", |s, _| crate::step::timestamp::Timestamp::new(s)),
        );
        r.add(
            "anonymize",
            "truncate or pseudonymize IP addresses",
            Role::Step,
            by_building(crate::step::anonymize::Anonymize::new),
            metered(&board, "anonymize", |s, _| crate::step::anonymize::Anonymize::new(s)),
        );
        r.add(
            "dedup",
            "drop repeats of a key within a time window",
            Role::Step,
            by_building(crate::step::window::Dedup::new),
            metered(&board, "dedup", |s, _| crate::step::window::Dedup::new(s)),
        );
        r.add(
            "aggregate",
            "count and sum by key per time window",
            Role::Step,
            by_building(crate::step::window::Aggregate::new),
            metered(&board, "aggregate", |s, _| crate::step::window::Aggregate::new(s)),
        );
        r.add(
            "rate_limit",
            "at most a rate of data per key (token bucket)",
            Role::Step,
            by_building(crate::step::ratelimit::RateLimit::new),
            metered(&board, "rate_limit", |s, _| crate::step::ratelimit::RateLimit::new(s)),
        );
        r.add(
            "sample",
            "keep one in N, or with a probability",
            Role::Step,
            by_building(crate::step::sample::Sample::new),
            metered(&board, "sample", |s, _| crate::step::sample::Sample::new(s)),
        );
        r.add(
            "stats",
            "log per-cog counters every interval, on SIGUSR1, at the end",
            Role::Step,
            by_building(crate::step::stats::Stats::new),
            crate::step::stats::kind(&board),
        );
        r.add(
            "file",
            "drain: append lines to a file (reopened on SIGHUP)",
            Role::Drain,
            by_building(crate::drain::file::FileDrain::new),
            |s, _| crate::drain::file::FileDrain::new(s),
        );
        r.add(
            "stdout",
            "drain: write lines to standard output",
            Role::Drain,
            by_building(crate::drain::stdout::StdoutDrain::new),
            |s, _| crate::drain::stdout::StdoutDrain::new(s),
        );
        crate::program::register(&mut r, crate::program::Functions::standard());
        r
    }

    /// Adds (or replaces) a kind: its name, a line about it, its role, a
    /// check of its settings and a constructor from them. The check is what
    /// `tourbillon check` and `train` run, and what `run` runs before it
    /// daemonizes: it must find every error the constructor would find
    /// without opening, creating or locking anything (constructors call it
    /// too); the constructor runs once, in the process that runs the trains.
    pub fn add<S, C, V, F>(&mut self, kind: &'static str, about: &'static str, role: Role, check: V, build: F)
    where
        S: CogSettings,
        C: Cog<Event>,
        V: Fn(&S, &BuildEnv) -> Result<(), Error> + 'static,
        F: Fn(S, &BuildEnv) -> Result<C, Error> + 'static,
    {
        let check: Check = Box::new(move |layered, config, env| {
            let settings: S = deserialize_at(layered, &config.path, config.settings.clone())?;
            check(&settings, env).map_err(|e| setting_error(layered, config, e))?;
            Ok(serde_json::to_value(&settings).unwrap_or(Value::Null))
        });
        let build: Build = Box::new(move |layered, config, env| {
            let settings: S = deserialize_at(layered, &config.path, config.settings.clone())?;
            let effective = serde_json::to_value(&settings).unwrap_or(Value::Null);
            match build(settings, env) {
                Ok(cog) => Ok(BuiltCog {
                    role: cog.role(),
                    cog: Box::new(cog),
                    settings: effective,
                }),
                Err(e) => Err(setting_error(layered, config, e)),
            }
        });
        self.kinds.insert(
            kind,
            Kind {
                about,
                role,
                check,
                build,
            },
        );
    }

    /// The kind names, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// The line about a kind.
    pub fn about(&self, kind: &str) -> Option<&'static str> {
        self.kinds.get(kind).map(|k| k.about)
    }

    /// The role of a kind's cogs.
    pub fn role(&self, kind: &str) -> Option<Role> {
        self.kinds.get(kind).map(|k| k.role)
    }

    /// Checks one configured cog's settings without building it (nothing
    /// is opened, created or locked); its effective settings.
    pub fn check(&self, layered: &Layered, config: &CogConfig, env: &BuildEnv) -> Result<Value, ConfigError> {
        match self.kinds.get(config.kind.as_str()) {
            Some(k) => (k.check)(layered, config, env),
            None => Err(self.unknown(layered, config)),
        }
    }

    fn unknown(&self, layered: &Layered, config: &CogConfig) -> ConfigError {
        ConfigError {
            origin: Some(layered.origin(&config.path)),
            path: config.path.key("kind").to_string(),
            message: format!(
                "unknown cog kind `{}` (known kinds: {})",
                config.kind,
                self.kinds().join(", ")
            ),
        }
    }

    /// Builds one configured cog.
    pub fn build(&self, layered: &Layered, config: &CogConfig, env: &BuildEnv) -> Result<BuiltCog, ConfigError> {
        match self.kinds.get(config.kind.as_str()) {
            Some(k) => (k.build)(layered, config, env),
            None => Err(self.unknown(layered, config)),
        }
    }
}
