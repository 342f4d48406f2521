//! The reference for `parse` with `format = "nginx_combined"`: the same work
//! as a hand-written loop with the regex crate and serde_json — read IN line
//! by line, match nginx's combined format, decode its `\xHH` escapes, store
//! `status` and `size` as integers, leave out `-` fields, write compact JSON
//! lines to OUT.
//!
//! ```sh
//! python3 bench/gen_nginx.py 1000000 /tmp/access.log
//! cargo run --release --example nginx_plain -- /tmp/access.log /tmp/plain.jsonl
//! ```
//!
//! Prints `kept=N bad=M` on standard error.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::process::ExitCode;

use regex::Regex;
use serde_json::{Map, Value};

/// `$remote_addr - $remote_user [$time_local] "$request" $status
/// $body_bytes_sent "$http_referer" "$http_user_agent"`.
const COMBINED: &str = r#"^(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d+) (\d+) "([^"]*)" "([^"]*)"$"#;

/// nginx writes a `"` or a byte outside printable ASCII in a variable as
/// `\xHH`; decoded, unless the result is not UTF-8.
fn unescape(s: &str) -> String {
    if !s.contains("\\x") {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' && s.is_char_boundary(i + 4) {
            if let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

fn put(m: &mut Map<String, Value>, key: &str, value: &str) {
    if value != "-" {
        m.insert(key.to_owned(), Value::String(unescape(value)));
    }
}

fn run(input: &str, output: &str) -> io::Result<(u64, u64)> {
    let re = Regex::new(COMBINED).expect("the pattern compiles");
    let mut reader = BufReader::with_capacity(64 * 1024, File::open(input)?);
    let out: Box<dyn Write> = if output == "-" {
        Box::new(io::stdout().lock())
    } else {
        Box::new(File::options().create(true).append(true).open(output)?)
    };
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let (mut kept, mut bad) = (0, 0);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let text = line.trim_end_matches('\n');
        let Some(c) = re.captures(text) else {
            bad += 1;
            continue;
        };
        let mut m = Map::new();
        put(&mut m, "client", &c[1]);
        put(&mut m, "user", &c[2]);
        put(&mut m, "time", &c[3]);
        let request = unescape(&c[4]);
        let mut parts = request.splitn(3, ' ');
        if let (Some(method), Some(path)) = (parts.next(), parts.next()) {
            if !method.is_empty() && method.bytes().all(|b| b.is_ascii_uppercase()) && !path.is_empty() {
                m.insert("method".into(), Value::from(method));
                m.insert("path".into(), Value::from(path));
                if let Some(protocol) = parts.next() {
                    m.insert("protocol".into(), Value::from(protocol));
                }
            }
        }
        if request != "-" {
            m.insert("request".into(), Value::String(request));
        }
        m.insert("status".into(), Value::from(c[5].parse::<i64>().unwrap_or(0)));
        m.insert("size".into(), Value::from(c[6].parse::<i64>().unwrap_or(0)));
        put(&mut m, "referer", &c[7]);
        put(&mut m, "agent", &c[8]);
        serde_json::to_writer(&mut out, &Value::Object(m))?;
        out.write_all(b"\n")?;
        kept += 1;
    }
    out.flush()?;
    Ok((kept, bad))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: nginx_plain IN OUT   (OUT `-` is stdout)");
        return ExitCode::from(2);
    };
    match run(input, output) {
        Ok((kept, bad)) => {
            eprintln!("kept={kept} bad={bad}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nginx_plain: {e}");
            ExitCode::FAILURE
        }
    }
}
