//! Programs: named sequences of steps with rectifiers, run on a data pool,
//! atomic or compensated; served as JSON over a socket.
//!
//! # Spec
//!
//! A spec (TOML, or JSON) follows ryuso's spec table; it names programs
//! and hooks:
//!
//! ```toml
//! name = "bank"                 # letters, digits, spaces, `_`, `-`
//! version = "1"
//!
//! [programs.transfer]
//! description = "move money between two accounts"
//! hooks = ["hooks.debit", "hooks.credit", "programs.audit"]
//! lock = "from"                 # runs with the same `from` wait for each other
//! recovery = "compensate"       # or "complete": what a restart does with an interrupted run
//! args.from = { type = "string", required = true }
//! args.to = { type = "string", required = true }
//! args.amount = { type = "int", required = true }
//! args.fail = { type = "bool", default = false, description = "fail on purpose" }
//! outputs.receipt = { type = "string", required = true }
//!
//! [programs.audit]
//! hooks = ["hooks.log"]
//! outputs = {}
//!
//! [hooks.debit]
//! reference = "append_file"                      # a function registered in Rust
//! args.from = { type = "string", required = true }  # what the data pool must hold
//! params = { path = "/tmp/${from}.ledger", line = "-${amount} by ${metadata.user}" }
//! rectifiers = ["hooks.undo_debit"]
//! timeout_ms = 2000
//! retries = 2
//! retry_delay_ms = 100
//!
//! [hooks.undo_debit]
//! reference = "append_file"
//! params = { path = "/tmp/${from}.ledger", line = "+${amount} (undo)" }
//! # ... credit, log, with `dependencies = [...]` to run other hooks just before
//! ```
//!
//! - `programs.NAME`: `hooks` in order (`hooks.NAME` or a bare `NAME`, or
//!   `programs.OTHER` to run another program nested), `args` and `outputs`
//!   (required; each: `type` in string, int, float, list, dict, bool;
//!   `required`; `default`; `description`), `description`, `lock`, `recovery`.
//! - `hooks.NAME`: `reference` (a registered function), `args` (what the
//!   data pool must hold when the hook runs, after its dependencies and
//!   before its function: `type`, `required`, `description`), `params` (the
//!   function's parameters; strings may hold `${name}` references into the
//!   data pool, or `${metadata.name}` into the request's metadata: a string
//!   that is one reference takes the value as it is, an int stays an int;
//!   `$${` is a literal `${`), `dependencies` (hooks run just before this
//!   one, unless they already ran), `rectifiers` (hooks that undo it, in
//!   order), `outputs` (names it adds to the pool, for reference checking),
//!   `description`, `timeout_ms` (per attempt), `retries`, `retry_delay_ms`.
//!   A hook `args` table written as parameters (a value that is not
//!   `{type, ...}`) is refused with a hint to rename it `params`.
//!
//! [`Spec::load`] checks it all and lists every error with its path:
//! unknown keys and references, dependency and program cycles, bad types,
//! defaults of the wrong type, duplicate names, functions not registered.
//!
//! # Runs
//!
//! A request `{"program": NAME, "data_pool": {...}, "metadata": {...}}`
//! (ryuso's body; an optional `id` is echoed back, `data` is another name
//! for `data_pool`) is checked against the program's `args` (unknown or
//! missing arguments, wrong
//! types: answered `rejected`, nothing runs), defaults filled in, and the
//! data becomes the run's pool. Each step's hook `args` are checked
//! against the pool (a miss fails the step), then its function gets its
//! resolved `params` (and the metadata, [`Call::metadata`]) and returns a
//! dict merged into the pool, or fails. When step
//! *i* fails (after its retries), the rectifiers of the steps done run in
//! reverse, from step *i-1* down to the first. A nested program is
//! inlined: a failure inside it undoes its own steps, then those before
//! it; a failure after it undoes all of its steps, as a unit. At the end,
//! the pool is filtered to the program's `outputs` and checked (a missing
//! required output is a failure, compensated like any other).
//!
//! The response: `{"id", "status", "outputs", "error": {"step", "message"}
//! or null, "trace": [...]}` where `status` is `ok`, `failed` (nothing was
//! undone), `compensated`, `compensation_failed` or `rejected`, and `trace`
//! lists each step run and each rectifier run, in order. `id` and `status`
//! never come from the data pool.
//!
//! Steps may wait without blocking other runs: a function returns
//! [`Flow::After`] (a timer), [`Flow::Readable`] / [`Flow::Writable`] (an
//! fd) or [`Flow::Pending`] with a [`Reply`] answered from another thread.
//! A step's `timeout_ms` ends such waits; a function that blocks the loop
//! thread cannot be cut short, so anything slow belongs on a thread. A
//! function that panics fails its step. `lock` names an argument: runs
//! whose value of it is the same (in any program) take turns, first come
//! first served.
//!
//! When the host finishes (SIGTERM), runs in flight go on with what they
//! wait on until the finish deadline; a wait they cannot begin any more
//! fails the step (compensated), or, with a journal, leaves the run for the
//! next start to take up.
//!
//! # Durability
//!
//! With a `state_dir`, each run logs to a [`Store`](tourbillon::Store):
//! begun, step started, step done (with what it added to the pool), failed,
//! rectifier run, answered. A restarted host takes up the runs a crash
//! interrupted: it runs the rectifiers still due (the step in flight
//! included, so rectifiers must tolerate undoing what did not happen), or,
//! for `recovery = "complete"`, runs the step in flight again and goes on.
//! If the program changed in the spec meanwhile, the run is compensated by
//! the hooks it ran. The response of such a run has no client to go to: it
//! is logged, and sent down the train; its trace begins with
//! `{"restart": true}`.
//!
//! # Hosts
//!
//! - [`ProgramCog`] (kind `program`): a request event in, its response out.
//! - [`ProgramServer`] (kind `program_server`): newline-delimited JSON
//!   over TCP or a Unix socket; `tourbillon serve SPEC --listen ADDR`, and
//!   `tourbillon call ADDR PROGRAM --data JSON --metadata JSON` as the client (both in the
//!   `tourbillon-cli` crate).
//!
//! Functions are registered by name in [`Functions`]; a `tourbillon` binary
//! with its own hands them to `tourbillon_cli::kinds::program::register`.

mod cog;
mod engine;
mod function;
mod journal;
mod run;
mod server;
mod spec;
mod template;
mod wire;

pub use cog::{ProgramCog, ProgramSettings};
pub use engine::ProgramStats;
pub use function::{Call, Flow, Functions, Reply, Resume, StepFn, StepResult};
pub use server::{ProgramServer, ProgramServerSettings, ServerStats};
pub use spec::{ArgSpec, ArgType, Format, HookSpec, PlanStep, ProgramSpec, Recovery, Spec, SpecError, SpecErrors};
pub use wire::{rejection, status, write_response, Request};
