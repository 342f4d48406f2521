//! Helpers of the tests that drive the `tourbillon` binary; with them,
//! every helper of the other tests (`tests/common`).
#![allow(dead_code)] // each test file uses its own share

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

#[path = "../../../../tests/common/mod.rs"]
mod shared;
#[allow(unused_imports)] // each test file uses its own share
pub use shared::*;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tourbillon");

/// The binary with `args`, run in `dir`, with no `RUST_LOG` and no
/// `TOURBILLON*` variable of the caller's leaking into its configuration.
pub fn tourbillon(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    // The default job's checkpoints go under the test's directory.
    c.args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .env_remove("STATE_DIRECTORY")
        .env("XDG_STATE_HOME", dir.join(".state"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TOURBILLON") {
            c.env_remove(k);
        }
    }
    c
}

/// Runs `c` with `input` on its standard input; its output and log.
pub fn run_with_stdin(mut c: Command, input: &[u8]) -> Output {
    c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}
