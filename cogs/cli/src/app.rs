//! The `tourbillon` command: trains from config sections, validated,
//! printed, daemonized and run. The binary is a thin `main` over [`main`].

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use tourbillon::capture::{CaptureOptions, CaptureReader, Entry, Pace, ReplayOptions};
use tourbillon::{Escapement, Event, Exit, Role, Train};

use crate::config::{self, Config, ConfigErrors, KeyPath, Sources, TrainConfig};

use crate::daemon::{self, Pidfile, Ready};
use crate::graph;
use crate::registry::{BuildEnv, BuiltCog, Registry};
use crate::reload;

const EXAMPLES: &str = "\
Examples:
  tourbillon run --input /var/log/app.json     follow a file: JSON lines out on stdout
  some-command | tourbillon run                 the same for standard input
  tourbillon check /etc/tourbillon.toml         validate, listing every error
  tourbillon train /etc/tourbillon.toml         print the trains with effective settings
  tourbillon train --dot /etc/tourbillon.toml | dot -Tsvg > trains.svg
  TOURBILLON__LOG__LEVEL=debug tourbillon run /etc/tourbillon.toml
  tourbillon run /etc/tourbillon.toml --set trains.web.cogs[0].batch=true
  tourbillon run /etc/tourbillon.toml --capture today.tbcap
  tourbillon replay today.tbcap /etc/tourbillon.toml --compare";

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
    /// JSON lines (other lines become {"message": ...}, values that are not
    /// objects {"value": ...}), add `host` and
    /// `received_at`, write JSON lines to standard output.
    Run {
        /// The configuration file (TOML; `.json` for JSON).
        config: Option<PathBuf>,
        /// A file or glob for the built-in default to follow; repeatable.
        #[arg(long, value_name = "PATH")]
        input: Vec<String>,
        /// For the built-in default: keep no checkpoint, so that a second
        /// run reads the --input files again from where `read_from` says.
        #[arg(long)]
        no_state: bool,
        /// Record what the supplies emit and what reaches the drains into
        /// this capture file, for `tourbillon replay`.
        #[arg(long, value_name = "FILE")]
        capture: Option<PathBuf>,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the trains of CONFIG (or the built-in default) again on a
    /// capture: supplies are replaced by what they recorded, timers follow
    /// the recorded clock. Prints a summary; with --compare, exit 1 if the
    /// drains got anything different.
    Replay {
        /// The capture file (from `tourbillon run --capture`).
        capture: PathBuf,
        /// The configuration the capture was made with (default: the built-in one).
        config: Option<PathBuf>,
        /// For the built-in default: the --input given when it was captured.
        #[arg(long, value_name = "PATH")]
        input: Vec<String>,
        /// `fastest` (default), `recorded`, or a multiple of the recorded speed (`10`).
        #[arg(long, default_value = "fastest")]
        pace: String,
        /// Refuse trains whose cogs or settings differ from the captured ones
        /// (default: warn and go on).
        #[arg(long)]
        strict: bool,
        /// Capture the replay too, into this file.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Compare what reached the drains with the capture (implies a record
        /// of the replay, in a temporary file unless --record is given).
        #[arg(long)]
        compare: bool,
        /// Where the file drains write (as `TRAIN.N.NAME`, N the drain's
        /// position): default `CAPTURE.replay/` beside the capture, never the
        /// live outputs.
        #[arg(long, value_name = "DIR", conflicts_with = "in_place")]
        output_dir: Option<PathBuf>,
        /// Write to the configured output paths, appending to the live
        /// files, and let network drains (connect, jetstream_publish) send.
        #[arg(long)]
        in_place: bool,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// List the cog kinds a config can use, with what each does.
    Kinds,
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
        /// The configuration file (default: the built-in default job).
        config: Option<PathBuf>,
        /// For the built-in default: a file or glob it follows; repeatable.
        #[arg(long, value_name = "PATH")]
        input: Vec<String>,
        /// For the built-in default: keep no checkpoint.
        #[arg(long)]
        no_state: bool,
        /// Print Graphviz `dot` instead.
        #[arg(long)]
        dot: bool,
        /// `--set` overrides.
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Serve the programs of SPEC as newline-delimited JSON on a socket
    /// (the same as a train with one `program_server` cog).
    Serve {
        /// The program spec (TOML; `.json` for JSON).
        spec: PathBuf,
        /// Where to listen: `tcp:HOST:PORT`, `HOST:PORT` or `unix:PATH`.
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Journal runs here; interrupted runs are taken up at start.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// `--set` overrides (`--set log.level=debug`).
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Show the metrics of a running `tourbillon` (its `[api] listen`
    /// address) in the terminal, refreshed every second: rates per cog and
    /// the tail's lag.
    Top {
        /// The address of its `[api]`: `HOST:PORT`.
        addr: String,
        /// Print one table (two scrapes a second apart) and exit.
        #[arg(long)]
        once: bool,
    },
    /// Run PROGRAM on a program server and print the response; the exit
    /// status follows its `status`: ok 0, failed 1, compensated 3,
    /// compensation_failed 4, rejected 5, no answer 6.
    Call {
        /// The server: `tcp:HOST:PORT`, `HOST:PORT` or `unix:PATH`.
        addr: String,
        /// The program to run.
        program: String,
        /// The program's arguments (the request's `data_pool`), a JSON object.
        #[arg(long, default_value = "{}")]
        data: String,
        /// The request's `metadata`, a JSON object the hooks read as
        /// `${metadata.NAME}`.
        #[arg(long, default_value = "{}")]
        metadata: String,
        /// The request id (JSON, or taken as a string).
        #[arg(long, default_value = "1")]
        id: String,
        /// Seconds to wait for the answer; 0 waits forever.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

/// The built-in default train, for `tourbillon run` without a file; with
/// `--input` files, their tail keeps its checkpoints in `state` if given.
pub fn default_config(inputs: &[String], state: Option<&std::path::Path>) -> String {
    let supply = if inputs.is_empty() {
        "{ kind = \"stdin\" }".to_owned()
    } else {
        let list: Vec<String> = inputs.iter().map(|p| Value::String(p.clone()).to_string()).collect();
        let checkpoint = state.map_or(String::new(), |d| {
            format!(", checkpoint_dir = {}", Value::String(d.display().to_string()))
        });
        format!("{{ kind = \"tail\", include = [{}]{checkpoint} }}", list.join(", "))
    };
    format!(
        "[trains.main]\ncogs = [\n    {supply},\n    {{ kind = \"json_decode\", on_error = \"wrap\", non_object = \"wrap\" }},\n    \
         {{ kind = \"set\", host = \"host\", received_at = \"received_at\" }},\n    {{ kind = \"json_encode\" }},\n    \
         {{ kind = \"stdout\" }},\n]\n"
    )
}

/// Where the built-in default job keeps the checkpoints of `inputs`:
/// `$STATE_DIRECTORY` (systemd's `StateDirectory=`, its first entry), else
/// `$XDG_STATE_HOME/tourbillon`, else `$HOME/.local/state/tourbillon`; in
/// it, a directory per set of inputs (named by a hash of their absolute
/// paths), so that two default jobs on different files do not share a
/// store. `None` when none of those variables is set.
pub fn default_state_dir(inputs: &[String], var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let base = match var("STATE_DIRECTORY").filter(|v| !v.is_empty()) {
        Some(v) => PathBuf::from(v.to_string_lossy().split(':').next().unwrap_or_default()),
        None => match var("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(x) => PathBuf::from(x).join("tourbillon"),
            None => PathBuf::from(var("HOME").filter(|v| !v.is_empty())?).join(".local/state/tourbillon"),
        },
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut paths: Vec<String> = inputs.iter().map(|i| cwd.join(i).display().to_string()).collect();
    paths.sort();
    paths.dedup();
    // FNV-1a: stable across runs and builds, unlike the std hasher.
    let hash = paths.join("\n").bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(base.join(format!("default-{hash:016x}")))
}

/// A train of a checked configuration: each cog's role and effective
/// settings, nothing built (nothing opened, created or locked).
#[derive(Clone, Debug)]
pub struct PlannedTrain {
    /// Its section.
    pub config: TrainConfig,
    /// Its cogs, in order.
    pub cogs: Vec<PlannedCog>,
}

/// A cog of a [`PlannedTrain`].
#[derive(Clone, Debug)]
pub struct PlannedCog {
    /// Its role.
    pub role: Role,
    /// Its effective settings (defaults filled in).
    pub settings: Value,
}

/// A train's cogs, built.
#[derive(Debug)]
pub struct BuiltTrain {
    /// Its section.
    pub config: TrainConfig,
    /// Its cogs, in order.
    pub cogs: Vec<BuiltCog>,
}

/// Reads and checks a configuration and every cog's settings, building
/// nothing: every error, not only the first.
pub fn load_and_plan(sources: &Sources, registry: &Registry) -> Result<(Config, Vec<PlannedTrain>), ConfigErrors> {
    let layered = config::load(sources)?;
    let (mut config, mut errors) = Config::checked(layered, &registry.kinds());
    match plan(&mut config, registry) {
        Ok(trains) if errors.is_empty() => Ok((config, trains)),
        Ok(_) => Err(ConfigErrors(errors)),
        Err(more) => {
            errors.extend(more.0);
            Err(ConfigErrors(errors))
        }
    }
}

/// Checks every cog of every train without building it, collecting all errors.
pub fn plan(config: &mut Config, registry: &Registry) -> Result<Vec<PlannedTrain>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut trains = Vec::new();
    for train in std::mem::take(&mut config.trains) {
        let mut cogs = Vec::new();
        for (index, cog) in train.cogs.iter().enumerate() {
            let env = BuildEnv {
                train: train.name.clone(),
                index,
            };
            match registry.check(&config.layered, cog, &env) {
                Ok(settings) => cogs.push(PlannedCog {
                    role: registry.role(&cog.kind).unwrap_or(Role::Step),
                    settings,
                }),
                Err(e) => errors.extend(e),
            }
        }
        if cogs.len() == train.cogs.len() && train.inputs.is_none() && !cogs.iter().any(|c| c.role == Role::Supply) {
            let p = KeyPath::default().key("trains").key(&train.name).key("cogs");
            errors.push(config::ConfigError {
                origin: config.layered.file.clone().map(config::Origin::File),
                path: p.to_string(),
                message: format!(
                    "no supply and no `inputs` in this train: nothing would ever reach it (begin it with a \
                     supply: {}; or read other trains with `inputs = [\"TRAIN\"]`)",
                    supply_kinds(registry).join(", ")
                ),
            });
        }
        trains.push(PlannedTrain { config: train, cogs });
    }
    let (edges, graph_errors) = graph::check(&config.layered, &trains);
    errors.extend(graph_errors);
    config.warnings = graph::warnings(&config.layered, &trains, &edges);
    if errors.is_empty() {
        Ok(trains)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Builds the cogs of a plan, each once: what the checks cannot know
/// (a store locked by another process, a directory that cannot be
/// created) is found here, collecting all errors.
pub fn build(config: &Config, plan: Vec<PlannedTrain>, registry: &Registry) -> Result<Vec<BuiltTrain>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut trains = Vec::new();
    for train in plan {
        let mut cogs = Vec::new();
        for (index, cog) in train.config.cogs.iter().enumerate() {
            let env = BuildEnv {
                train: train.config.name.clone(),
                index,
            };
            match registry.build(&config.layered, cog, &env) {
                Ok(b) => cogs.push(b),
                Err(e) => errors.push(e),
            }
        }
        trains.push(BuiltTrain {
            config: train.config,
            cogs,
        });
    }
    if errors.is_empty() {
        Ok(trains)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Places built trains on the escapement, each after the trains it reads.
pub fn place(esc: &mut Escapement, built: Vec<BuiltTrain>) {
    for t in built {
        let mut train = Train::dynamic(t.config.name.clone())
            .ids(Event::id_getter())
            .capturable();
        for input in t.config.inputs.iter().flatten() {
            train = train.input(input.clone());
        }
        if let Some(q) = t.config.queue {
            train = train.queue(q);
        }
        for c in t.cogs {
            train.push(c.cog);
        }
        esc.add_train(train);
    }
}

fn supply_kinds(registry: &Registry) -> Vec<&'static str> {
    registry
        .kinds()
        .into_iter()
        .filter(|k| registry.role(k) == Some(Role::Supply))
        .collect()
}

/// Renders the trains as `tourbillon train` prints them: the graph drawn,
/// then every cog's settings with their origins.
pub fn listing(config: &Config, trains: &[PlannedTrain]) -> String {
    let (edges, _) = graph::check(&config.layered, trains);
    let mut out = graph::draw(trains, &edges);
    out.push('\n');
    for t in trains {
        let _ = write!(out, "train {} ({} cogs)", t.config.name, t.cogs.len());
        if let Some(inputs) = &t.config.inputs {
            let _ = write!(out, ", reads {}", inputs.join(", "));
        }
        if let Some(q) = t.config.queue {
            let _ = write!(out, ", queue {q}");
        }
        out.push('\n');
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
pub fn dot(config: &Config, trains: &[PlannedTrain]) -> String {
    let (edges, _) = graph::check(&config.layered, trains);
    graph::dot(trains, &edges)
}

/// The sources of a command; `state`: the built-in default keeps its
/// checkpoints in [`default_state_dir`].
fn sources(config: Option<PathBuf>, inputs: &[String], state: bool, overrides: Overrides) -> Sources {
    let state_dir = (config.is_none() && state && !inputs.is_empty())
        .then(|| default_state_dir(inputs, |k| std::env::var_os(k)))
        .flatten();
    Sources {
        embedded: config.is_none().then(|| default_config(inputs, state_dir.as_deref())),
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

/// `serve`'s errors: the spec's by the spec's own key paths
/// (`file bank.toml: hooks.deposit.reference: …`), the rest as `run` says them.
fn report_spec(spec: &std::path::Path, errors: &ConfigErrors) {
    let mut lines = Vec::new();
    for e in &errors.0 {
        // The program_server cog's `spec` setting holds the spec's errors,
        // one per line after a heading.
        match e.path.ends_with(".spec").then(|| e.message.split_once('\n')).flatten() {
            Some((_, rest)) => lines.extend(rest.lines().map(|l| format!("file {}: {}", spec.display(), l.trim()))),
            None => lines.push(e.to_string()),
        }
    }
    let n = lines.len();
    eprintln!("tourbillon: the spec has {n} error{}:", if n == 1 { "" } else { "s" });
    for l in lines {
        eprintln!("  {l}");
    }
}

/// `tourbillon check` of a program spec: checked as `tourbillon serve`
/// would load it, every error listed with its key path in the spec.
fn check_spec(spec: &std::path::Path, counts: (usize, usize), overrides: Overrides, registry: &Registry) -> i32 {
    let mut s = sources(None, &[], false, overrides);
    // The address is only there to make the server's settings whole: the
    // check binds nothing.
    s.embedded = Some(crate::program::serve_config(spec, "127.0.0.1:0", None));
    match load_and_plan(&s, registry) {
        Ok(_) => {
            println!(
                "{}: ok (a program spec: {} programs, {} hooks)",
                spec.display(),
                counts.0,
                counts.1
            );
            0
        }
        Err(e) => {
            report_spec(spec, &e);
            1
        }
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
        Command::Kinds => {
            let width = registry.kinds().iter().map(|k| k.len()).max().unwrap_or(0);
            for k in registry.kinds() {
                println!("{k:<width$}  {}", registry.about(k).unwrap_or(""));
            }
            println!("\n`tourbillon train CONFIG` shows every setting of the cogs a config uses, with its default.");
            0
        }
        Command::Check { config, overrides } => {
            if let Some(counts) = crate::program::program_spec_counts(&config) {
                return check_spec(&config, counts, overrides, registry);
            }
            let s = sources(Some(config.clone()), &[], false, overrides);
            let checked = load_and_plan(&s, registry).and_then(|(c, mut trains)| {
                // What would fail at start: users, directories, files.
                match crate::paths::check(&c, &mut trains) {
                    errors if errors.is_empty() => Ok((c, trains)),
                    errors => Err(ConfigErrors(errors)),
                }
            });
            match checked {
                Ok((c, trains)) => {
                    for w in &c.warnings {
                        eprintln!("tourbillon: warning: {w}");
                    }
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
            input,
            no_state,
            dot: as_dot,
            overrides,
        } => {
            let s = sources(config, &input, !no_state, overrides);
            match load_and_plan(&s, registry) {
                Ok((c, trains)) => {
                    print!("{}", if as_dot { dot(&c, &trains) } else { listing(&c, &trains) });
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
            no_state,
            capture,
            overrides,
        } => {
            if config.is_some() && !input.is_empty() {
                eprintln!("tourbillon: --input is for the built-in default; with CONFIG, list the files in a tail cog");
                return 2;
            }
            let mode = Mode {
                capture: capture.map(CaptureOptions::new),
                ..Mode::default()
            };
            run(sources(config, &input, !no_state, overrides), registry, mode)
        }
        Command::Replay {
            capture,
            config,
            input,
            pace,
            strict,
            record,
            compare,
            output_dir,
            in_place,
            overrides,
        } => {
            let pace = match pace.as_str() {
                "fastest" => Pace::Fastest,
                "recorded" => Pace::Recorded(1.0),
                n => match n.parse::<f64>() {
                    Ok(x) if x > 0.0 && x.is_finite() => Pace::Recorded(x),
                    _ => {
                        eprintln!("tourbillon: --pace `{n}`: expected fastest, recorded or a positive multiple");
                        return 2;
                    }
                },
            };
            replay(
                sources(config, &input, true, overrides),
                registry,
                ReplayArgs {
                    outputs: (!in_place).then(|| output_dir.unwrap_or_else(|| replay_dir(&capture))),
                    capture,
                    pace,
                    strict,
                    record,
                    compare,
                },
            )
        }
        Command::Serve {
            spec,
            listen,
            state_dir,
            overrides,
        } => {
            let mut s = sources(None, &[], false, overrides);
            s.embedded = Some(crate::program::serve_config(&spec, &listen, state_dir.as_deref()));
            if let Err(e) = load_and_plan(&s, registry) {
                report_spec(&spec, &e);
                return 1;
            }
            run(s, registry, Mode::default())
        }
        Command::Call {
            addr,
            program,
            data,
            metadata,
            id,
            timeout,
        } => crate::program::call_command(&addr, &program, &data, &metadata, &id, timeout),
        Command::Top { addr, once } => crate::metrics::top(&addr, once),
    }
}

/// Capture or replay, for [`run`].
#[derive(Default)]
struct Mode {
    capture: Option<CaptureOptions>,
    replay: Option<ReplayOptions>,
    /// A replay's own directory for the file drains' outputs.
    outputs: Option<PathBuf>,
}

/// `CAPTURE.replay`, beside the capture.
fn replay_dir(capture: &std::path::Path) -> PathBuf {
    let mut name = capture.file_name().unwrap_or_default().to_os_string();
    name.push(".replay");
    capture.with_file_name(name)
}

/// A replay's trains leave the live state and outputs alone: tails keep no
/// checkpoint (they are swapped for what they recorded anyway), file
/// drains write into `dir`, and a drain that sends to the network is an
/// error (`--in-place` allows it).
fn redirect_outputs(plan: &mut [PlannedTrain], dir: &std::path::Path) -> Result<(), String> {
    for t in plan.iter_mut() {
        for (i, cog) in t.config.cogs.iter_mut().enumerate() {
            let Some(settings) = cog.settings.as_object_mut() else {
                continue;
            };
            match cog.kind.as_str() {
                "tail" => {
                    settings.remove("checkpoint_dir");
                }
                "file" => {
                    let live = settings.get("path").and_then(Value::as_str).unwrap_or_default();
                    let name = std::path::Path::new(live).file_name().unwrap_or_default();
                    let to = dir.join(format!("{}.{}.{}", t.config.name, i + 1, name.to_string_lossy()));
                    settings.insert("path".into(), Value::String(to.display().to_string()));
                }
                "connect" | "jetstream_publish" => {
                    return Err(format!(
                        "{}: a `{}` drain sends to live peers; replay with --in-place to let it",
                        cog.path, cog.kind
                    ))
                }
                _ => {}
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("replay outputs: cannot create {}: {e}", dir.display()))
}

struct ReplayArgs {
    /// Where the file drains write; `None`: where they are configured to.
    outputs: Option<PathBuf>,
    capture: PathBuf,
    pace: Pace,
    strict: bool,
    record: Option<PathBuf>,
    compare: bool,
}

/// What a capture holds, for the progress line and the summary.
fn survey(path: &std::path::Path) -> Result<(u64, u64, Duration), String> {
    let mut reader = CaptureReader::open(path).map_err(|e| e.to_string())?;
    let (mut inputs, mut outputs, mut span) = (0, 0, Duration::ZERO);
    while let Some(entry) = reader.next().map_err(|e| e.to_string())? {
        match entry {
            Entry::Input(d) => {
                inputs += 1;
                span = span.max(d.at);
            }
            Entry::Output(d) => {
                outputs += 1;
                span = span.max(d.at);
            }
            Entry::Finish(at) => span = span.max(at),
        }
    }
    Ok((inputs, outputs, span))
}

fn replay(sources: Sources, registry: &Registry, args: ReplayArgs) -> i32 {
    let (inputs, outputs, span) = match survey(&args.capture) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tourbillon: {e}");
            return 1;
        }
    };
    let tmp = tempfile_path(&args.capture);
    let record = args.record.clone().or_else(|| args.compare.then(|| tmp.clone()));
    let mode = Mode {
        capture: record.clone().map(CaptureOptions::new),
        replay: Some(ReplayOptions::new(&args.capture).pace(args.pace).strict(args.strict)),
        outputs: args.outputs.clone(),
    };
    let started = std::time::Instant::now();
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr()).then_some(span);
    let code = run_with(sources, registry, mode, progress);
    let took = started.elapsed();
    eprintln!(
        "replayed {} ({inputs} inputs, {outputs} outputs over {:.1}s recorded) in {:.2}s",
        args.capture.display(),
        span.as_secs_f64(),
        took.as_secs_f64()
    );
    if code != 0 {
        return code;
    }
    let mut code = 0;
    if let (true, Some(r)) = (args.compare, &record) {
        match tourbillon::capture::compare_drains(&args.capture, r) {
            Ok(drains) => {
                // One line per drain of each train, then the verdict: a
                // graph's branches are told apart.
                for d in &drains {
                    println!("{d}");
                }
                let differ = drains.iter().filter(|d| d.difference.is_some()).count();
                let data: u64 = drains.iter().map(|d| d.left).sum();
                if differ == 0 {
                    println!(
                        "same: every drain got the same data ({data} in {} drains)",
                        drains.len()
                    );
                } else {
                    println!("different: {differ} of {} drains got other data", drains.len());
                    code = 1;
                }
            }
            Err(e) => {
                eprintln!("tourbillon: compare: {e}");
                code = 1;
            }
        }
    }
    if args.record.is_none() {
        let _ = std::fs::remove_file(&tmp);
    }
    code
}

fn tempfile_path(capture: &std::path::Path) -> PathBuf {
    let name = format!(
        ".{}.replay-{}",
        capture.file_name().and_then(|n| n.to_str()).unwrap_or("capture"),
        std::process::id()
    );
    std::env::temp_dir().join(name)
}

fn run(sources: Sources, registry: &Registry, mode: Mode) -> i32 {
    run_with(sources, registry, mode, None)
}

fn run_with(sources: Sources, registry: &Registry, mode: Mode, progress: Option<Duration>) -> i32 {
    // Everything that can be wrong with the configuration is found before
    // anything happens, while errors still reach the terminal.
    // Nothing is opened, created or locked yet: the cogs are built once,
    // below, in the process that runs them.
    let (mut config, mut plan) = match load_and_plan(&sources, registry) {
        Ok(p) => p,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    if let Some(dir) = &mode.outputs {
        if let Err(e) = redirect_outputs(&mut plan, dir) {
            eprintln!("tourbillon: {e}");
            return 1;
        }
        eprintln!("replay: file drains write into {}", dir.display());
    }
    // Before any chdir (`daemon.workdir`, `detach`): relative paths name
    // what they named where the command was typed.
    let start = match std::env::current_dir() {
        Ok(start) => start,
        Err(e) => {
            eprintln!("tourbillon: the current directory: {e}");
            return 1;
        }
    };
    crate::paths::resolve(&mut config, &mut plan, &start);
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
    // Still root: what the cogs will write must be the user's after the drop.
    let written = identity.map(|_| crate::paths::list(&config, &mut plan));
    if let (Some(id), Some(written)) = (identity, &written) {
        if let Err(e) = crate::paths::prepare(written, id) {
            return fail(&mut ready, format!("tourbillon: {e}"));
        }
    }
    let _pidfile = match config.daemon.pidfile.clone().map(|p| Pidfile::create(&p)).transpose() {
        Ok(p) => p,
        Err(e) => return fail(&mut ready, format!("tourbillon: {e}")),
    };
    // Built after the fork: cogs may hold fds and locks.
    let trains: Vec<String> = plan.iter().map(|t| t.config.name.clone()).collect();
    let reloadable = mode.capture.is_none() && mode.replay.is_none();
    let running = reload::Running::new(&start, sources.clone(), registry.clone(), config.clone(), plan.clone());
    let built = match build(&config, plan, registry) {
        Ok(t) => t,
        Err(e) => return fail(&mut ready, e.to_string()),
    };
    if let (Some(id), Some(written)) = (identity, written) {
        // What the cogs just created as root in their directories (a
        // checkpoint store) is the user's too.
        if let Err(e) = crate::paths::prepare(&written, id) {
            return fail(&mut ready, format!("tourbillon: {e}"));
        }
    }
    let mut builder = Escapement::builder().finish_deadline(Duration::from_secs(config.daemon.finish_deadline_secs));
    if let Some(c) = mode.capture {
        builder = builder.capture(c);
    }
    if let Some(r) = mode.replay {
        builder = builder.replay(r);
    }
    let mut esc = match builder.build() {
        Ok(e) => e,
        Err(e) => return fail(&mut ready, format!("tourbillon: {e}")),
    };
    place(&mut esc, built);
    // SIGUSR1 asks `stats` cogs for a report; without one it must not end
    // the process (its default action).
    if let Err(e) = esc.core().on_signal(libc::SIGUSR1, |_, _| {}) {
        return fail(&mut ready, format!("tourbillon: SIGUSR1: {e}"));
    }
    let reopen = log.clone();
    if let Err(e) = esc.core().on_signal(libc::SIGHUP, move |core, _| {
        if let Err(e) = reopen.reopen() {
            log::error!("log file: cannot reopen after SIGHUP: {e}");
        }
        if reloadable {
            reload::reload(core, &running);
        }
    }) {
        return fail(&mut ready, format!("tourbillon: SIGHUP: {e}"));
    }
    if let Err(e) = crate::metrics::start(&config.api, registry, esc.core()) {
        return fail(&mut ready, format!("tourbillon: api: {e}"));
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
    if let Err(e) = crate::systemd::install(esc.core()) {
        return fail(&mut ready, format!("tourbillon: systemd: {e}"));
    }
    if let Some(span) = progress {
        // A progress line on the terminal, from a thread that asks the loop
        // for its (virtual) clock: nothing of it is bound on the loop.
        let remote = esc.core().remote();
        let t0 = esc.core().now();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_millis(250));
            let sent = remote.send(move |core| {
                let at = core.now().saturating_duration_since(t0);
                let pct = if span.is_zero() {
                    100.0
                } else {
                    100.0 * at.as_secs_f64() / span.as_secs_f64()
                };
                eprint!(
                    "\rreplay: {:5.1}%  ({:.1}s of {:.1}s recorded)",
                    pct.min(100.0),
                    at.as_secs_f64(),
                    span.as_secs_f64()
                );
            });
            if sent.is_err() {
                eprintln!();
                return;
            }
        });
    }
    for w in &config.warnings {
        log::warn!("{w}");
    }
    log::info!("running trains: {}", trains.join(", "));
    ready.report(true);
    match esc.run() {
        Ok(Exit::Clean) => 0,
        Ok(Exit::Failed(why)) => {
            log::error!("stopped: failed: {}", why.join("; "));
            1
        }
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
