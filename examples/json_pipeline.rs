//! The standard pipeline: tail a file of JSON lines, drop the debug events,
//! mark the others, write them out.
//!
//! ```sh
//! python3 bench/gen_events.py 1000000 /tmp/events.jsonl
//! cargo run --release --example json_pipeline -- /tmp/events.jsonl /tmp/out.jsonl
//! cargo run --release --example json_pipeline -- --follow /var/log/app.jsonl -
//! ```
//!
//! `IN` is read from its beginning (it may be a glob pattern). Without
//! `--follow` the program exits at the end of the input; with it, it
//! follows `IN` (through rotations) until SIGTERM or SIGINT. `OUT` is a
//! file appended to, or `-` for standard output. `--state DIR` keeps the
//! read positions in `DIR`, so a restart goes on where the last run's
//! output ends. On exit it prints `kept=N bad=M` on standard error: events
//! written, and lines that were not JSON.

use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::Arc;

use serde_json::Value;
use tourbillon::accessor::Encoded;
use tourbillon::logging::{self, LogSettings};
use tourbillon::{Cog, Escapement, Event, Getter, Setter, Train};
use tourbillon_cogs::drain::file::{FileDrain, FileDrainSettings};
use tourbillon_cogs::drain::stdout::StdoutDrain;
use tourbillon_cogs::step::json::{JsonDecode, JsonEncode};
use tourbillon_cogs::supply::tail::{Tail, TailSettings};

const USAGE: &str = "usage: json_pipeline [--follow] [--state DIR] IN OUT   (OUT `-` is stdout)";

struct Args {
    follow: bool,
    state: Option<PathBuf>,
    input: String,
    output: String,
}

fn parse_args() -> Result<Args, String> {
    let mut follow = false;
    let mut state = None;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--follow" => follow = true,
            "--state" => state = Some(args.next().ok_or("--state needs a directory")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            _ => rest.push(arg),
        }
    }
    let [input, output]: [String; 2] = rest.try_into().map_err(|_| USAGE.to_string())?;
    Ok(Args {
        follow,
        state,
        input,
        output,
    })
}

/// Builds the train with `drain` at its end, runs it, returns (kept, bad).
fn run<C: Cog<Event>>(tail: Tail, drain: C) -> Result<(u64, u64), Box<dyn std::error::Error>> {
    let kept = Rc::new(Cell::new(0u64));
    let counted = Rc::clone(&kept);
    let decode = JsonDecode::new(Default::default())?;
    let bad = decode.malformed();
    // Accessors: they read and set fields in place in the bytes the
    // decoder indexed, where `value()` would build the whole tree.
    let level = Getter::<Event, str>::path_str("level");
    let mark = Setter::<Event, Arc<Encoded>>::path_shared("pipeline");
    let tourbillon = Arc::new(Encoded::new(Value::from("tourbillon")));
    let mut esc = Escapement::new()?;
    esc.add_train(
        Train::new("json_pipeline")
            .ids(Event::id_getter())
            .cog(tail)
            .cog(decode)
            .filter(move |e: &Event| level.get(e) != Some("debug"))
            .map(move |e: Event| {
                counted.set(counted.get() + 1);
                mark.set(e, Arc::clone(&tourbillon))
            })
            .cog(JsonEncode::new(Default::default())?)
            .cog(drain),
    );
    log::debug!("{}", esc.listing());
    esc.run()?;
    Ok((kept.get(), bad.get()))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let log = LogSettings {
        level: "warn".into(),
        ..LogSettings::default()
    };
    if let Err(e) = logging::init(&log) {
        eprintln!("json_pipeline: {e}");
    }
    let settings = TailSettings {
        include: vec![args.input],
        batch: !args.follow,
        checkpoint_dir: args.state,
        ..TailSettings::default()
    };
    let result = Tail::new(settings).map_err(Into::into).and_then(|tail| {
        if args.output == "-" {
            run(tail, StdoutDrain::new(Default::default())?)
        } else {
            let out = FileDrainSettings {
                path: args.output.into(),
                ..FileDrainSettings::default()
            };
            run(tail, FileDrain::new(out)?)
        }
    });
    match result {
        Ok((kept, bad)) => {
            eprintln!("kept={kept} bad={bad}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("json_pipeline: {e}");
            ExitCode::FAILURE
        }
    }
}
