//! What a run logs to the state store, and the state recovery rebuilds:
//! the runs a crash interrupted.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tourbillon::{FsyncPolicy, Store, StoreError, StoreOptions};

/// One change to the runs in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Delta {
    /// A run began, with its checked data pool.
    Begin {
        run: u64,
        program: String,
        request: Value,
        pool: Map<String, Value>,
        /// The request's metadata, which the hooks' `params` may read.
        #[serde(default)]
        metadata: Value,
        /// The hooks of the plan, so a restart with a changed spec still
        /// undoes what was done.
        #[serde(default)]
        plan: Vec<String>,
    },
    /// A step of the plan began.
    Started { run: u64, step: usize },
    /// A step succeeded; `set` is what it merged into the data pool.
    Done {
        run: u64,
        step: usize,
        set: Map<String, Value>,
    },
    /// A step failed: compensation begins.
    Failed { run: u64, step: String, message: String },
    /// Rectifier `rectifier` of plan step `step` ran (well or not).
    Rectified { run: u64, step: usize, rectifier: usize },
    /// The run was answered.
    End { run: u64 },
}

/// A run as the journal knows it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Logged {
    pub(crate) program: String,
    pub(crate) request: Value,
    pub(crate) pool: Map<String, Value>,
    #[serde(default)]
    pub(crate) metadata: Value,
    #[serde(default)]
    pub(crate) plan: Vec<String>,
    pub(crate) done: Vec<usize>,
    pub(crate) in_flight: Option<usize>,
    pub(crate) failed: Option<(String, String)>,
    pub(crate) rectified: Vec<(usize, usize)>,
}

/// The runs not answered yet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Runs(pub(crate) BTreeMap<u64, Logged>);

pub(crate) fn apply(runs: &mut Runs, delta: Delta) {
    match delta {
        Delta::Begin {
            run,
            program,
            request,
            pool,
            metadata,
            plan,
        } => {
            runs.0.insert(
                run,
                Logged {
                    program,
                    request,
                    pool,
                    metadata,
                    plan,
                    ..Logged::default()
                },
            );
        }
        Delta::Started { run, step } => {
            if let Some(r) = runs.0.get_mut(&run) {
                r.in_flight = Some(step);
            }
        }
        Delta::Done { run, step, set } => {
            if let Some(r) = runs.0.get_mut(&run) {
                r.pool.extend(set);
                r.done.push(step);
                r.in_flight = None;
            }
        }
        Delta::Failed { run, step, message } => {
            if let Some(r) = runs.0.get_mut(&run) {
                r.failed = Some((step, message));
                r.in_flight = None;
            }
        }
        Delta::Rectified { run, step, rectifier } => {
            if let Some(r) = runs.0.get_mut(&run) {
                r.rectified.push((step, rectifier));
            }
        }
        Delta::End { run } => {
            runs.0.remove(&run);
        }
    }
}

/// Records written between checkpoints before the state is compacted.
const CHECKPOINT_EVERY: u64 = 4096;

/// The store and the state it holds, kept in step.
pub(crate) struct Journal {
    store: Store<Runs, Delta>,
    runs: Runs,
    since_checkpoint: u64,
    failed: bool,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("store", &self.store)
            .field("runs", &self.runs.0.len())
            .finish()
    }
}

impl Journal {
    /// Opens the store in `dir`; returns the journal and the runs a crash
    /// interrupted. The state is compacted at once.
    pub(crate) fn open(dir: &Path, fsync: bool) -> Result<(Journal, Runs), StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            op: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        let policy = if fsync { FsyncPolicy::Always } else { FsyncPolicy::Never };
        let mut store = Store::open(dir, StoreOptions::new().fsync(policy))?;
        let runs = store.recover(Runs::default, apply)?;
        store.checkpoint(&runs)?;
        let journal = Journal {
            store,
            runs: runs.clone(),
            since_checkpoint: 0,
            failed: false,
        };
        Ok((journal, runs))
    }

    pub(crate) fn log(&mut self, delta: Delta) {
        if let Err(e) = self.store.log(&delta) {
            if !std::mem::replace(&mut self.failed, true) {
                log::error!(
                    "program journal {}: {e}; runs are no longer durable",
                    self.store.dir().display()
                );
            }
            return;
        }
        apply(&mut self.runs, delta);
        self.since_checkpoint += 1;
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.since_checkpoint = 0;
            if let Err(e) = self.store.checkpoint(&self.runs) {
                log::error!("program journal {}: checkpoint: {e}", self.store.dir().display());
            }
        }
    }
}
