//! Cog kinds by name, for trains built from configuration.
//!
//! Every kind has a settings struct (serde, `deny_unknown_fields`, documented
//! defaults), a check of them that opens nothing, and a constructor;
//! [`Registry::add`] plugs a new kind in ([`Registry::standard`], in
//! [`kinds`](crate::kinds), has every kind of `tourbillon-cogs`):
//!
//! ```
//! use tourbillon::Role;
//! use tourbillon_cli::registry::{by_building, Registry};
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
use std::rc::Rc;

use serde_json::Value;
use tourbillon::{Cog, DynCog, Event, Role};
use tourbillon_cogs::meter::Board;
use tourbillon_cogs::Error;

use crate::config::{deserialize_all_at, deserialize_at, CogConfig, CogSettings, ConfigError, Layered};

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
type Check = Box<dyn Fn(&Layered, &CogConfig, &BuildEnv) -> Result<Value, Vec<ConfigError>>>;

struct Kind {
    about: &'static str,
    role: Role,
    check: Check,
    build: Build,
}

/// Cog kinds by name; clones share the kinds.
#[derive(Clone)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Rc<Kind>>,
    board: Board,
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
        Registry {
            kinds: BTreeMap::new(),
            board: Board::default(),
        }
    }

    /// The board the metered cogs it builds put their meters on: what
    /// `stats` logs and `/metrics` serves.
    pub fn board(&self) -> &Board {
        &self.board
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
            let settings: S = deserialize_all_at(layered, &config.path, config.settings.clone())?;
            check(&settings, env).map_err(|e| vec![setting_error(layered, config, e)])?;
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
            Rc::new(Kind {
                about,
                role,
                check,
                build,
            }),
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
    pub fn check(&self, layered: &Layered, config: &CogConfig, env: &BuildEnv) -> Result<Value, Vec<ConfigError>> {
        match self.kinds.get(config.kind.as_str()) {
            Some(k) => (k.check)(layered, config, env),
            None => Err(vec![self.unknown(layered, config)]),
        }
    }

    fn unknown(&self, layered: &Layered, config: &CogConfig) -> ConfigError {
        ConfigError {
            origin: Some(layered.origin(&config.path)),
            path: config.path.key("kind").to_string(),
            message: format!(
                "unknown cog kind `{}`{} (known kinds: {})",
                config.kind,
                crate::config::nearest(&config.kind, self.kinds())
                    .map_or(String::new(), |k| format!(": did you mean `{k}`?")),
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
