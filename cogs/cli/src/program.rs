//! `tourbillon call` (a client of a program server) and the configuration
//! `tourbillon serve` runs; the cog kinds that serve programs are in
//! [`kinds::program`](crate::kinds::program).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use tourbillon_cogs::net::Address;
use tourbillon_cogs::program::{status, write_response};

/// Exit status of `tourbillon call` for a response's `status`: `ok` 0,
/// `failed` 1, `compensated` 3, `compensation_failed` 4, `rejected` 5
/// (2 is a usage error; 6 a connection or protocol error).
pub fn exit_status(status: &str) -> i32 {
    match status {
        status::OK => 0,
        status::FAILED => 1,
        status::COMPENSATED => 3,
        status::COMPENSATION_FAILED => 4,
        status::REJECTED => 5,
        _ => 6,
    }
}

/// Sends one request to a program server and returns its response.
pub fn call(
    addr: &str,
    program: &str,
    data: Value,
    metadata: Value,
    id: Value,
    timeout: Duration,
) -> Result<Value, String> {
    let address = Address::parse("ADDR", addr).map_err(|e| e.to_string())?;
    let request = json!({ "id": id, "program": program, "data_pool": data, "metadata": metadata });
    let mut line = serde_json::to_vec(&request).expect("a Value");
    line.push(b'\n');
    let timeout = Some(timeout).filter(|t| !t.is_zero());
    let response = match address {
        Address::Tcp(a) => {
            let s = std::net::TcpStream::connect(a).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
            exchange(s, &line)
        }
        Address::Unix(p) => {
            let s =
                std::os::unix::net::UnixStream::connect(&p).map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
            exchange(s, &line)
        }
        Address::Udp(_) => return Err("programs are served over TCP or a Unix socket".into()),
    }
    .map_err(|e| format!("{addr}: {e}"))?;
    serde_json::from_str(&response).map_err(|e| format!("{addr}: the response is not JSON: {e}"))
}

fn exchange<S: std::io::Read + Write>(mut s: S, line: &[u8]) -> std::io::Result<String> {
    s.write_all(line)?;
    let mut response = String::new();
    BufReader::new(s).read_line(&mut response)?;
    if response.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the server closed the connection without answering",
        ));
    }
    Ok(response)
}

/// `tourbillon call`: prints the response, returns the exit status.
pub fn call_command(addr: &str, program: &str, data: &str, metadata: &str, id: &str, timeout_secs: u64) -> i32 {
    let data: Value = match serde_json::from_str(data) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tourbillon: --data is not valid JSON: {e}");
            return 2;
        }
    };
    let metadata: Value = match serde_json::from_str(metadata) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("tourbillon: --metadata is not valid JSON: {e}");
            return 2;
        }
    };
    let id = serde_json::from_str(id).unwrap_or_else(|_| Value::String(id.to_owned()));
    match call(addr, program, data, metadata, id, Duration::from_secs(timeout_secs)) {
        Ok(response) => {
            let mut line = Vec::new();
            write_response(&mut line, &response);
            print!("{}", String::from_utf8_lossy(&line));
            exit_status(response["status"].as_str().unwrap_or_default())
        }
        Err(e) => {
            eprintln!("tourbillon: {e}");
            6
        }
    }
}

/// If the file at `path` reads as a program spec (a TOML or JSON table
/// with `programs` or `hooks` at the top and no `trains`): how many
/// programs and hooks it names. `tourbillon check` checks such a file as
/// `tourbillon serve` would.
pub fn program_spec_counts(path: &Path) -> Option<(usize, usize)> {
    let text = std::fs::read_to_string(path).ok()?;
    let top: serde_json::Map<String, Value> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).ok()?
    } else {
        toml::from_str(&text).ok()?
    };
    let count = |k: &str| top.get(k).and_then(Value::as_object).map_or(0, |m| m.len());
    let named = top.contains_key("programs") || top.contains_key("hooks");
    (named && !top.contains_key("trains")).then(|| (count("programs"), count("hooks")))
}

/// The configuration `tourbillon serve` runs: one train with a
/// `program_server` cog.
pub fn serve_config(spec: &Path, listen: &str, state_dir: Option<&Path>) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let quote = |s: String| Value::String(s).to_string();
    let mut cog = format!(
        "kind = \"program_server\", spec = {}, listen = {}",
        quote(abs(spec).display().to_string()),
        quote(listen.to_owned())
    );
    if let Some(dir) = state_dir {
        cog.push_str(&format!(", state_dir = {}", quote(abs(dir).display().to_string())));
    }
    format!("[trains.programs]\ncogs = [{{ {cog} }}]\n")
}
