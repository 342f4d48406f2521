//! One program run: where it is in its plan, its data pool and trace, and
//! the hook being run with what it waits on. The [engine](super::engine)
//! drives runs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};
use tourbillon::{FdId, TimerId};

use super::function::{Resume, StepFn, StepResult};
use super::spec::{HookSpec, ProgramSpec};

#[derive(Clone, Copy, Debug)]
pub(super) enum Task {
    Step(usize),
    /// Rectifier `.1` of plan step `.0`.
    Rectify(usize, usize),
}

pub(super) enum Waiting {
    Timer(TimerId),
    Fd(FdId),
    Reply,
    Retry(TimerId),
}

/// One hook being run: its attempts, and what it waits on.
pub(super) struct Exec {
    pub(super) task: Task,
    pub(super) hook: Arc<HookSpec>,
    pub(super) func: Option<Arc<StepFn>>,
    pub(super) args: Map<String, Value>,
    pub(super) attempt: u32,
    pub(super) started: Instant,
    pub(super) resume: Option<Resume>,
    pub(super) wait: Option<(u64, Waiting)>,
    pub(super) timeout: Option<(u64, TimerId)>,
    pub(super) result: Option<StepResult>,
}

pub(super) struct Run {
    pub(super) id: u64,
    pub(super) tag: Option<u64>,
    pub(super) request: Value,
    pub(super) program: Arc<ProgramSpec>,
    pub(super) pool: Map<String, Value>,
    /// The request's metadata (a dict, or `null`).
    pub(super) metadata: Value,
    pub(super) trace: Vec<Value>,
    pub(super) lock: Option<String>,
    pub(super) next: usize,
    pub(super) done: Vec<usize>,
    pub(super) compensating: bool,
    pub(super) queue: VecDeque<(usize, usize)>,
    pub(super) failure: Option<(String, String)>,
    pub(super) rect_failure: Option<(String, String)>,
    pub(super) rectified: bool,
    pub(super) abandoned: bool,
    pub(super) exec: Option<Exec>,
}

pub(super) enum Wake {
    Timer,
    Fd,
    Reply(StepResult),
}

/// The value of a program's lock argument, as the lock's name.
pub(super) fn lock_key(program: &ProgramSpec, pool: &Map<String, Value>) -> Option<String> {
    let arg = program.lock.as_ref()?;
    Some(match pool.get(arg)? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}
