//! The program cog kinds: `program` (a request event in, its response
//! out) and `program_server` (serves programs on a socket).

use std::sync::Arc;

use tourbillon::Role;
use tourbillon_cogs::program::{Functions, ProgramCog, ProgramServer, ProgramServerSettings, ProgramSettings};

use crate::registry::{BuildEnv, Registry};

/// Adds (or replaces) the cog kinds `program` (a request event in, its
/// response out) and `program_server` (serves programs on a socket), whose
/// hooks may name `functions`. A binary with its own step functions calls
/// this on its registry before [`app::main`](crate::app::main):
///
/// ```
/// use serde_json::json;
/// use tourbillon_cli::kinds::program;
/// use tourbillon_cli::registry::Registry;
/// use tourbillon_cogs::program::{Flow, Functions};
///
/// let mut functions = Functions::standard();
/// functions.add("charge", |call| Flow::Done(json!({ "charged": call.arg("amount").cloned() })));
/// let mut registry = Registry::standard();
/// program::register(&mut registry, functions);
/// // std::process::exit(tourbillon_cli::app::main(std::env::args_os(), &registry));
/// # assert!(registry.kinds().contains(&"program_server"));
/// ```
pub fn register(registry: &mut Registry, functions: Functions) {
    let functions = Arc::new(functions);
    let f = Arc::clone(&functions);
    let (cf, sf) = (Arc::clone(&functions), Arc::clone(&functions));
    registry.add(
        "program",
        "run programs: request events in, response events out",
        Role::Step,
        move |s: &ProgramSettings, _: &BuildEnv| s.check(&cf),
        move |s, _| ProgramCog::new(s, Arc::clone(&f)),
    );
    registry.add(
        "program_server",
        "supply: serve programs as newline-delimited JSON on a TCP or Unix socket",
        Role::Supply,
        move |s: &ProgramServerSettings, _: &BuildEnv| s.check(&sf),
        move |s, _| ProgramServer::new(s, Arc::clone(&functions)),
    );
}
