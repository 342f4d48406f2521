//! The `tourbillon` binary, as a library for binaries of its kind: trains
//! of the standard cogs of [`tourbillon_cogs`] built from a configuration
//! file, checked, printed, daemonized and run.
//!
//! - [`app`]: the command line (`run`, `check`, `train`, `kinds`, `replay`,
//!   `serve`, `call`) and [`app::main`], which the binary calls.
//! - [`config`]: the configuration's layers (defaults, file, environment,
//!   `--set`), the trains in it, errors that name their key and origin.
//! - [`registry`]: cog kinds by name, each with a check of its settings and
//!   a constructor; [`kinds`]: every kind of `tourbillon-cogs` on it.
//! - [`graph`]: which train reads which (`inputs`), checked, drawn in
//!   text and as Graphviz `dot`.
//! - [`daemon`]: detaching, the pidfile, dropping privileges.
//! - [`metrics`]: `[api]`, `/metrics` and `/health` over HTTP, and
//!   `tourbillon top`.
//! - [`systemd`]: `Type=notify` readiness, stopping, reload and watchdog
//!   notifications.
//! - [`paths`]: the files a configuration names, resolved against the
//!   start directory, prepared and checked.
//! - [`program`]: `tourbillon call` and the configuration `tourbillon serve`
//!   runs.
//!
//! A binary with cog kinds (or program step functions) of its own builds its
//! registry and hands it to [`app::main`]:
//!
//! ```no_run
//! use tourbillon_cli::registry::Registry;
//!
//! let registry = Registry::standard();
//! // registry.add("my_kind", ...);
//! std::process::exit(tourbillon_cli::app::main(std::env::args_os(), &registry));
//! ```
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod daemon;
pub mod graph;
pub mod kinds;
pub mod metrics;
pub mod paths;
pub mod program;
pub mod registry;
pub mod reload;
pub mod systemd;
