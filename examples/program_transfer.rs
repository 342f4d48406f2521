//! A transfer between two accounts as a program: withdraw, deposit,
//! confirm; when a step fails, the steps before it are undone in reverse.
//!
//! The accounts are files holding a balance; `balance_add` is a step
//! function this binary registers. A server runs on a Unix socket in a
//! temporary directory, and a client thread sends three transfers: one that
//! succeeds, one whose confirmation fails on demand (compensated: both
//! balances restored), one that overdraws (failed at its first step).
//!
//! ```text
//! cargo run --example program_transfer
//! ```

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tourbillon::{Escapement, Event, Train};
use tourbillon_cogs::program::{Call, Flow, Functions, ProgramServer, ProgramServerSettings};

/// Adds `amount` (or takes it, with `negate`) to the balance in file
/// `account`; refuses to go below zero. Returns the new balance as `output`.
fn balance_add(call: &mut Call<'_>) -> Flow {
    let run = || -> Result<Value, String> {
        let account = call.str_arg("account")?;
        let mut amount = call.int_arg("amount", 0)?;
        if call.bool_arg("negate", false)? {
            amount = -amount;
        }
        let text = std::fs::read_to_string(account).map_err(|e| format!("{account}: {e}"))?;
        let balance: i64 = text.trim().parse().map_err(|e| format!("{account}: {e}"))?;
        let new = balance + amount;
        if new < 0 {
            return Err(format!("insufficient funds in {account}: {balance} < {}", -amount));
        }
        std::fs::write(account, new.to_string()).map_err(|e| format!("{account}: {e}"))?;
        Ok(json!({ call.str_arg("output")?: new }))
    };
    run().into()
}

fn balances(dir: &Path) -> String {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    format!("alice {}, bob {}", read("alice"), read("bob"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("alice"), "100")?;
    std::fs::write(dir.path().join("bob"), "20")?;
    let socket = dir.path().join("bank.sock");

    let mut functions = Functions::standard();
    functions.add("balance_add", balance_add);
    let settings = ProgramServerSettings {
        listen: format!("unix:{}", socket.display()),
        spec: concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/program_transfer.toml").into(),
        ..ProgramServerSettings::default()
    };
    let server = ProgramServer::new(settings, Arc::new(functions))?;

    let mut esc = Escapement::new()?;
    esc.add_train(Train::new("bank").ids(Event::id_getter()).cog(server));
    let remote = esc.core().remote();
    let accounts = dir.path().to_path_buf();
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        let stream = (0..200)
            .find_map(|_| {
                UnixStream::connect(&socket)
                    .inspect_err(|_| std::thread::sleep(Duration::from_millis(10)))
                    .ok()
            })
            .expect("the server listens");
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut writer = stream;
        println!("before: {}", balances(&accounts));
        for (id, amount, fail) in [("ok", 30, false), ("undone", 50, true), ("overdraft", 500, false)] {
            let data = json!({ "dir": accounts.display().to_string(), "from": "alice", "to": "bob",
                               "amount": amount, "fail": fail });
            writeln!(
                writer,
                "{}",
                json!({ "id": id, "program": "transfer", "data_pool": data })
            )?;
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let response: Value = serde_json::from_str(&line).unwrap_or_default();
            println!(
                "\n{id}: {}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            println!("after {id}: {}", balances(&accounts));
        }
        let _ = remote.send(|core| core.finish());
        Ok(())
    });
    esc.run()?;
    client.join().expect("the client thread")?;
    Ok(())
}
