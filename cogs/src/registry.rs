//! Cog kinds by name, for trains built from configuration.
//!
//! Every kind has a settings struct (serde, `deny_unknown_fields`, documented
//! defaults) and a constructor; [`Registry::add`] plugs a new kind in with
//! one line:
//!
//! ```
//! use tourbillon_cogs::registry::Registry;
//! use tourbillon_cogs::stdout::StdoutDrain;
//!
//! let mut registry = Registry::empty();
//! registry.add("stdout", "write lines to standard output", |s, _| StdoutDrain::new(s));
//! assert_eq!(registry.kinds(), ["stdout"]);
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;
use tourbillon::{Cog, DynCog, Event, Role};

use crate::config::{deserialize_at, CogConfig, CogSettings, ConfigError, Layered};
use crate::stats::metered;
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

struct Kind {
    about: &'static str,
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

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry { kinds: BTreeMap::new() }
    }

    /// Every cog kind of this crate.
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        let board = crate::stats::Board::default();
        r.add("stdin", "supply: lines from standard input, until its end", |s, _| {
            crate::stdin::StdinSupply::new(s)
        });
        r.add(
            "tail",
            "supply: follow files and globs through rotation, with checkpoints",
            |s, _| crate::tail::Tail::new(s),
        );
        r.add(
            "listen",
            "supply: frames from TCP or Unix-socket clients, or UDP datagrams",
            |s, _| crate::net::NetSupply::new(s),
        );
        r.add(
            "connect",
            "drain: frames to a TCP or Unix-socket peer, reconnecting",
            |s, _| crate::net::NetDrain::new(s),
        );
        r.add(
            "reverse_dns",
            "add the host name of an address field (worker threads, cache, never blocks)",
            |s, _| crate::rdns::ReverseDns::new(s),
        );
        #[cfg(feature = "nats")]
        crate::jetstream::register(&mut r);
        r.add("lines", "split byte chunks into lines", |s, _| {
            crate::lines::Lines::new(s)
        });
        r.add("json_decode", "parse JSON text into the event's data", |s, _| {
            crate::json::JsonDecode::new(s)
        });
        r.add("json_encode", "render the event's data as JSON text", |s, _| {
            crate::json::JsonEncode::new(s)
        });
        r.add(
            "set",
            "write fixed values, the host name, the receive time into fields",
            |s, _| crate::fields::SetFields::new(s).map(|c| c.place(Event::place)),
        );
        r.add(
            "rename",
            "move fields to new paths",
            metered(&board, "rename", |s, _| crate::fields::Rename::new(s)),
        );
        r.add(
            "remove",
            "remove fields",
            metered(&board, "remove", |s, _| crate::fields::Remove::new(s)),
        );
        r.add(
            "filter",
            "keep or drop by field conditions",
            metered(&board, "filter", |s, _| crate::filter::Filter::new(s)),
        );
        r.add(
            "timestamp",
            "parse a time in a field into RFC 3339 or epoch",
            metered(&board, "timestamp", |s, _| crate::timestamp::Timestamp::new(s)),
        );
        r.add(
            "anonymize",
            "truncate or pseudonymize IP addresses",
            metered(&board, "anonymize", |s, _| crate::anonymize::Anonymize::new(s)),
        );
        r.add(
            "dedup",
            "drop repeats of a key within a time window",
            metered(&board, "dedup", |s, _| crate::window::Dedup::new(s)),
        );
        r.add(
            "aggregate",
            "count and sum by key per time window",
            metered(&board, "aggregate", |s, _| crate::window::Aggregate::new(s)),
        );
        r.add(
            "rate_limit",
            "at most a rate of data per key (token bucket)",
            metered(&board, "rate_limit", |s, _| crate::ratelimit::RateLimit::new(s)),
        );
        r.add(
            "sample",
            "keep one in N, or with a probability",
            metered(&board, "sample", |s, _| crate::sample::Sample::new(s)),
        );
        r.add(
            "stats",
            "log per-cog counters every interval, on SIGUSR1, at the end",
            crate::stats::kind(&board),
        );
        r.add("file", "drain: append lines to a file (reopened on SIGHUP)", |s, _| {
            crate::file::FileDrain::new(s)
        });
        r.add("stdout", "drain: write lines to standard output", |s, _| {
            crate::stdout::StdoutDrain::new(s)
        });
        crate::program::register(&mut r, crate::program::Functions::standard());
        r
    }

    /// Adds (or replaces) a kind: its name, a line about it, and a
    /// constructor from its settings.
    pub fn add<S, C, F>(&mut self, kind: &'static str, about: &'static str, build: F)
    where
        S: CogSettings,
        C: Cog<Event>,
        F: Fn(S, &BuildEnv) -> Result<C, Error> + 'static,
    {
        let build: Build = Box::new(move |layered, config, env| {
            let settings: S = deserialize_at(layered, &config.path, config.settings.clone())?;
            let effective = serde_json::to_value(&settings).unwrap_or(Value::Null);
            match build(settings, env) {
                Ok(cog) => Ok(BuiltCog {
                    role: cog.role(),
                    cog: Box::new(cog),
                    settings: effective,
                }),
                Err(Error::Setting { key, message }) => {
                    let mut path = config.path.clone();
                    for part in key.split('.') {
                        path = path.key(part);
                    }
                    Err(ConfigError {
                        origin: Some(layered.origin(&path)),
                        path: path.to_string(),
                        message,
                    })
                }
                #[allow(unreachable_patterns)]
                Err(e) => Err(ConfigError {
                    origin: Some(layered.origin(&config.path)),
                    path: config.path.to_string(),
                    message: e.to_string(),
                }),
            }
        });
        self.kinds.insert(kind, Kind { about, build });
    }

    /// The kind names, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.kinds.keys().copied().collect()
    }

    /// The line about a kind.
    pub fn about(&self, kind: &str) -> Option<&'static str> {
        self.kinds.get(kind).map(|k| k.about)
    }

    /// Builds one configured cog.
    pub fn build(&self, layered: &Layered, config: &CogConfig, env: &BuildEnv) -> Result<BuiltCog, ConfigError> {
        match self.kinds.get(config.kind.as_str()) {
            Some(k) => (k.build)(layered, config, env),
            None => Err(ConfigError {
                origin: Some(layered.origin(&config.path)),
                path: config.path.key("kind").to_string(),
                message: format!(
                    "unknown cog kind `{}` (known kinds: {})",
                    config.kind,
                    self.kinds().join(", ")
                ),
            }),
        }
    }
}
