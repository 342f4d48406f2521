//! The reference for `json_pipeline`: the same work as a hand-written loop
//! with serde_json and nothing else — read IN line by line, parse, drop
//! `level == "debug"`, set `"pipeline"`, write compact JSON lines to OUT.
//!
//! ```sh
//! cargo run --release --example plain_loop -- /tmp/events.jsonl /tmp/plain.jsonl
//! ```
//!
//! Prints `kept=N bad=M` on standard error, like `json_pipeline`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use serde_json::Value;

fn run(input: &str, output: &str) -> io::Result<(u64, u64)> {
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(input)?);
    let out: Box<dyn Write> = if output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::options().create(true).append(true).open(output)?)
    };
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let (mut kept, mut bad) = (0, 0);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let Ok(mut event) = serde_json::from_slice::<Value>(&line) else {
            bad += 1;
            continue;
        };
        if event.get("level").and_then(Value::as_str) == Some("debug") {
            continue;
        }
        if let Some(fields) = event.as_object_mut() {
            fields.insert("pipeline".into(), Value::from("tourbillon"));
        }
        serde_json::to_writer(&mut out, &event)?;
        out.write_all(b"\n")?;
        kept += 1;
    }
    out.flush()?;
    Ok((kept, bad))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: plain_loop IN OUT   (OUT `-` is stdout)");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok((kept, bad)) => {
            eprintln!("kept={kept} bad={bad}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("plain_loop: {e}");
            ExitCode::FAILURE
        }
    }
}
