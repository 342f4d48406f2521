//! The `tourbillon` command: trains from config sections, validated,
//! printed, daemonized and run. The binary is a thin `main` over [`main`].

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use tourbillon::{Escapement, Event, Exit, Train};

use crate::config::{self, Config, ConfigErrors, KeyPath, Sources, TrainConfig};

use crate::daemon::{self, Pidfile, Ready};
use crate::registry::{BuildEnv, BuiltCog, Registry};

const EXAMPLES: &str = "\
Examples:
  tourbillon run --input /var/log/app.json     follow a file: JSON lines out on stdout
  some-command | tourbillon run                 the same for standard input
  tourbillon check /etc/tourbillon.toml         validate, listing every error
  tourbillon train /etc/tourbillon.toml         print the trains with effective settings
  tourbillon train --dot /etc/tourbillon.toml | dot -Tsvg > trains.svg
  TOURBILLON__LOG__LEVEL=debug tourbillon run /etc/tourbillon.toml
  tourbillon run /etc/tourbillon.toml --set trains.web.cogs[0].batch=true";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "tourbillon", version, about = "Run trains of cogs over streams of events", after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by the commands that read a configuration.
#[derive(Debug, clap::Args)]
pub struct Overrides {
    /// Override one setting, after the file and the environment
    /// (`--set trains.web.cogs[2].fsync=true`, `--set log.level=debug`); repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build and run the trains of CONFIG; without CONFIG, the built-in
    /// default: follow the --input files (standard input when none), decode
    /// JSON lines (other lines become {"message": ...}), add `host` and
    /// `received_at`, write JSON lines to standard output.
    Run {
        /// The configuration file (TOML; `.json` for JSON).
        config: Option<PathBuf>,
        /// A file or glob for the built-in default to follow; repeatable.
        #[arg(long, value_name = "PATH")]
        input: Vec<String>,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Validate CONFIG without running it: exit 0, or 1 with every error listed.
    Check {
        /// The configuration file.
        config: PathBuf,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print each train of CONFIG: its cogs in order with their effective
    /// settings and where each came from (default, file, env, flag).
    Train {
        /// The configuration file.
        config: PathBuf,
        /// Print Graphviz `dot` instead.
        #[arg(long)]
        dot: bool,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
}

/// The built-in default train, for `tourbillon run` without a file.
pub fn default_config(inputs: &[String]) -> String {
    let supply = if inputs.is_empty() {
        "{ kind = \"stdin\" }".to_owned()
    } else {
        let list: Vec<String> = inputs.iter().map(|p| Value::String(p.clone()).to_string()).collect();
        format!("{{ kind = \"tail\", include = [{}] }}", list.join(", "))
    };
    format!(
        "[trains.main]\ncogs = [\n    {supply},\n    {{ kind = \"json_decode\", on_error = \"wrap\" }},\n    \
         {{ kind = \"set\", host = \"host\", received_at = \"received_at\" }},\n    {{ kind = \"json_encode\" }},\n    \
         {{ kind = \"stdout\" }},\n]\n"
    )
}

/// A train's cogs, built.
#[derive(Debug)]
pub struct BuiltTrain {
    /// Its section.
    pub config: TrainConfig,
    /// Its cogs, in order.
    pub cogs: Vec<BuiltCog>,
}

/// Reads and checks a configuration, and builds its cogs: every error, not
/// only the first.
pub fn load_and_build(sources: &Sources, registry: &Registry) -> Result<(Config, Vec<BuiltTrain>), ConfigErrors> {
    let layered = config::load(sources)?;
    let (mut config, mut errors) = Config::checked(layered, &registry.kinds());
    match build(&mut config, registry) {
        Ok(trains) if errors.is_empty() => Ok((config, trains)),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(more) => {
            errors.extend(more.0);
            Err(ConfigErrors(errors))
        }
    }
}

/// Builds every cog of every train, collecting all errors.
pub fn build(config: &mut Config, registry: &Registry) -> Result<Vec<BuiltTrain>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut trains = Vec::new();
    for train in std::mem::take(&mut config.trains) {
        let mut cogs = Vec::new();
        for (index, cog) in train.cogs.iter().enumerate() {
            let env = BuildEnv {
                train: train.name.clone(),
                index,
            };
            match registry.build(&config.layered, cog, &env) {
                Ok(b) => cogs.push(b),
                Err(e) => errors.push(e),
            }
        }
        if cogs.len() == train.cogs.len() && !cogs.iter().any(|c| c.role == tourbillon::Role::Supply) {
            let p = KeyPath::default().key("trains").key(&train.name).key("cogs");
            errors.push(config::ConfigError {
                origin: config.layered.file.clone().map(config::Origin::File),
                path: p.to_string(),
                message: format!(
                    "no supply in this train: nothing would ever reach it (supplies: {})",
                    supply_kinds(registry).join(", ")
                ),
            });
        }
        trains.push(BuiltTrain { config: train, cogs });
    }
    if errors.is_empty() {
        Ok(trains)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn supply_kinds(registry: &Registry) -> Vec<&'static str> {
    registry
        .kinds()
        .into_iter()
        .filter(|k| registry.about(k).is_some_and(|a| a.starts_with("supply")))
        .collect()
}

/// Renders the trains as `tourbillon train` prints them.
pub fn listing(config: &Config, trains: &[BuiltTrain]) -> String {
    let mut out = String::new();
    for t in trains {
        let _ = writeln!(out, "train {} ({} cogs)", t.config.name, t.cogs.len());
        for (i, (c, b)) in t.config.cogs.iter().zip(&t.cogs).enumerate() {
            let _ = writeln!(out, "  {i}. {:<6} {}    [{}]", b.role.to_string(), c.kind, c.path);
            let rows = config::describe_settings(&config.layered, c, &b.settings);
            let width = rows.iter().map(|(k, v, _)| k.len() + v.len() + 3).max().unwrap_or(0);
            for (k, v, origin) in rows {
                let kv = format!("{k} = {v}");
                let _ = writeln!(out, "       {kv:<width$}   ({origin})");
            }
        }
    }
    out
}

/// Renders the trains as Graphviz `dot`.
pub fn dot(trains: &[BuiltTrain]) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::from("digraph tourbillon {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];\n");
    for (ti, t) in trains.iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{ti} {{\n    label=\"train {}\";",
            esc(&t.config.name)
        );
        for (i, (c, b)) in t.config.cogs.iter().zip(&t.cogs).enumerate() {
            let shape = match b.role {
                tourbillon::Role::Supply => "invhouse",
                tourbillon::Role::Drain => "house",
                tourbillon::Role::Step => "box",
            };
            let _ = writeln!(
                out,
                "    t{ti}c{i} [label=\"{}\\n{}\", shape={shape}];",
                esc(&c.kind),
                esc(&b.cog_description())
            );
            if i > 0 {
                let _ = writeln!(out, "    t{ti}c{} -> t{ti}c{i};", i - 1);
            }
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

impl BuiltCog {
    /// The cog as it renders itself.
    pub fn cog_description(&self) -> String {
        struct D<'a>(&'a dyn tourbillon::DynCog<Event>);
        impl std::fmt::Display for D<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.describe_dyn(f)
            }
        }
        D(self.cog.as_ref()).to_string()
    }
}

fn sources(config: Option<PathBuf>, inputs: &[String], overrides: Overrides) -> Sources {
    Sources {
        embedded: config.is_none().then(|| default_config(inputs)),
        file: config,
        env: std::env::vars().collect(),
        sets: overrides.sets,
    }
}

fn report(errors: &ConfigErrors) {
    let n = errors.0.len();
    eprintln!(
        "tourbillon: the configuration has {n} error{}:",
        if n == 1 { "" } else { "s" }
    );
    for e in &errors.0 {
        eprintln!("  {e}");
    }
}

/// Runs the command line; returns the process exit status.
pub fn main(args: impl IntoIterator<Item = impl Into<OsString> + Clone>, registry: &Registry) -> i32 {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Check { config, overrides } => {
            let s = sources(Some(config.clone()), &[], overrides);
            match load_and_build(&s, registry) {
                Ok((_, trains)) => {
                    let cogs: usize = trains.iter().map(|t| t.cogs.len()).sum();
                    println!("{}: ok ({} trains, {cogs} cogs)", config.display(), trains.len());
                    0
                }
                Err(e) => {
                    report(&e);
                    1
                }
            }
        }
        Command::Train {
            config,
            dot: as_dot,
            overrides,
        } => {
            let s = sources(Some(config), &[], overrides);
            match load_and_build(&s, registry) {
                Ok((c, trains)) => {
                    print!("{}", if as_dot { dot(&trains) } else { listing(&c, &trains) });
                    0
                }
                Err(e) => {
                    report(&e);
                    1
                }
            }
        }
        Command::Run {
            config,
            input,
            overrides,
        } => {
            if config.is_some() && !input.is_empty() {
                eprintln!("tourbillon: --input is for the built-in default; with CONFIG, list the files in a tail cog");
                return 2;
            }
            run(sources(config, &input, overrides), registry)
        }
    }
}

fn run(sources: Sources, registry: &Registry) -> i32 {
    // Everything that can be wrong with the configuration is found before
    // anything happens, while errors still reach the terminal.
    let (config, trains) = match load_and_build(&sources, registry) {
        Ok((c, t)) => (c, t.iter().map(|t| t.config.name.clone()).collect::<Vec<_>>()),
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    let identity = match daemon::identity(&config.daemon) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("tourbillon: {e}");
            return 1;
        }
    };
    let mut ready = if config.daemon.detach {
        match daemon::detach() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("tourbillon: {e}");
                return 1;
            }
        }
    } else {
        Ready::none()
    };
    let fail = |ready: &mut Ready, message: String| {
        log::error!("{message}");
        ready.fail(&message);
        1
    };
    if let Err(e) = daemon::apply_process_settings(&config.daemon) {
        return fail(&mut ready, format!("tourbillon: {e}"));
    }
    let log = match tourbillon::logging::init(&config.log) {
        Ok(h) => h,
        Err(e) => return fail(&mut ready, format!("tourbillon: log: {e}")),
    };
    let _pidfile = match config.daemon.pidfile.clone().map(|p| Pidfile::create(&p)).transpose() {
        Ok(p) => p,
        Err(e) => return fail(&mut ready, format!("tourbillon: {e}")),
    };
    // Built again, after the fork and in the working directory: cogs may
    // hold fds, and relative paths are taken from `daemon.workdir`.
    let built = match load_and_build(&sources, registry) {
        Ok((_, t)) => t,
        Err(e) => return fail(&mut ready, e.to_string()),
    };
    let mut esc = match Escapement::builder()
        .finish_deadline(Duration::from_secs(config.daemon.finish_deadline_secs))
        .build()
    {
        Ok(e) => e,
        Err(e) => return fail(&mut ready, format!("tourbillon: {e}")),
    };
    for t in built {
        let mut train = Train::dynamic(t.config.name.clone()).ids(Event::id_getter());
        for c in t.cogs {
            train.push(c.cog);
        }
        esc.add_train(train);
    }
    let reopen = log.clone();
    if let Err(e) = esc.core().on_signal(libc::SIGHUP, move |_, _| {
        if let Err(e) = reopen.reopen() {
            log::error!("log file: cannot reopen after SIGHUP: {e}");
        }
    }) {
        return fail(&mut ready, format!("tourbillon: SIGHUP: {e}"));
    }
    if let Some(id) = identity {
        // On the first turn, after every cog has started (and bound what
        // needs root, such as low ports).
        let _ = esc.core().enqueue(move |core| {
            if let Err(e) = daemon::drop_privileges(id) {
                log::error!("daemon: cannot drop privileges: {e}; finishing");
                core.finish();
            } else {
                log::info!("daemon: running as uid {} gid {}", id.uid, id.gid);
            }
        });
    }
    log::info!("running trains: {}", trains.join(", "));
    ready.report(true);
    match esc.run() {
        Ok(Exit::Clean) => 0,
        Ok(exit) => {
            log::error!("stopped: {exit:?}");
            1
        }
        Err(e) => {
            log::error!("stopped: {e}");
            1
        }
    }
}
