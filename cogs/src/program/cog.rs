//! The `program` cog: a request event in, its response event out, later.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tourbillon::{Cog, Context, Event, Finish, Fired, Next};

use super::engine::{Answer, Engine, ProgramStats, ENGINE_KEYS};
use super::function::Functions;
use super::spec::Spec;
use super::wire::{rejection, Request};
use crate::Error;

/// Settings of [`ProgramCog`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramSettings {
    /// The spec file: TOML, or JSON if its name ends in `.json`. Required.
    #[serde(deserialize_with = "crate::setting::path")]
    pub spec: PathBuf,
    /// Directory of the run journal (a state store): with it, runs a crash
    /// interrupted are compensated (or completed) when the cog starts
    /// again. Default: none, runs are not durable.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub state_dir: Option<PathBuf>,
    /// Journal records are written without fsync: they survive the process
    /// dying, not the machine. Default false (fsync each record).
    pub no_fsync: bool,
}

impl ProgramSettings {
    /// Every error the cog's constructor finds, without opening the state
    /// directory (the spec is read and checked against `functions`).
    pub fn check(&self, functions: &Functions) -> Result<(), Error> {
        load_spec(&self.spec, functions).map(drop)
    }
}

/// Loads the spec and opens the journal named by settings.
pub(crate) fn engine(
    spec: &std::path::Path,
    state_dir: Option<&std::path::Path>,
    no_fsync: bool,
    functions: Arc<Functions>,
) -> Result<Engine, Error> {
    let loaded = load_spec(spec, &functions)?;
    Ok(Engine::new(Arc::new(loaded), functions, state_dir, !no_fsync)?)
}

/// Reads and checks the spec (it only reads: the state directory is
/// opened by [`engine`]).
pub(crate) fn load_spec(spec: &std::path::Path, functions: &Functions) -> Result<Spec, Error> {
    if spec.as_os_str().is_empty() {
        return Err(Error::setting("spec", "required: the program spec file"));
    }
    Spec::load(spec, functions).map_err(|e| Error::setting("spec", e.to_string()))
}

/// Runs programs: each event's data is a request (`{"id", "program",
/// "data_pool", "metadata"}`; if the event's data is null, `raw` is decoded); when the run ends, the
/// same event goes on with the response as its data. Many runs are in
/// flight at once; the order of responses is the order runs end.
pub struct ProgramCog {
    engine: Engine,
    held: HashMap<u64, Event>,
    next_tag: u64,
    finishing: bool,
}

impl fmt::Debug for ProgramCog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramCog")
            .field("engine", &self.engine)
            .field("held", &self.held.len())
            .finish()
    }
}

impl ProgramCog {
    /// The cog from its settings and the functions hooks may name.
    pub fn new(settings: ProgramSettings, functions: Arc<Functions>) -> Result<ProgramCog, Error> {
        let engine = engine(
            &settings.spec,
            settings.state_dir.as_deref(),
            settings.no_fsync,
            functions,
        )?;
        Ok(ProgramCog::with_engine(engine))
    }

    /// The cog for a spec already loaded; with `state_dir`, runs are journaled there.
    pub fn from_spec(
        spec: Spec,
        functions: Arc<Functions>,
        state_dir: Option<&std::path::Path>,
    ) -> Result<ProgramCog, Error> {
        Ok(ProgramCog::with_engine(Engine::new(
            Arc::new(spec),
            functions,
            state_dir,
            true,
        )?))
    }

    fn with_engine(engine: Engine) -> ProgramCog {
        ProgramCog {
            engine,
            held: HashMap::new(),
            next_tag: 0,
            finishing: false,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> ProgramStats {
        self.engine.stats.clone()
    }

    fn flush<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        for Answer { tag, response } in self.engine.take_answers() {
            let mut event = match tag.and_then(|t| self.held.remove(&t)) {
                Some(e) => e,
                None => Event::new(ctx.next_event_id(), Value::Null),
            };
            event.set_data(response);
            event.raw.clear();
            ctx.emit(event);
        }
        if self.finishing && self.engine.in_flight() == 0 {
            self.finishing = false;
            ctx.finished();
        }
    }
}

impl Cog<Event> for ProgramCog {
    fn start<N: Next<Event> + ?Sized>(&mut self, ctx: &mut Context<'_, Event, N>) {
        self.engine.start(ctx);
        self.flush(ctx);
    }

    fn process<N: Next<Event> + ?Sized>(&mut self, mut event: Event, ctx: &mut Context<'_, Event, N>) {
        let decoded = if event.value().is_null() {
            Request::decode(&event.raw)
        } else {
            Request::from_value(event.take_data())
        };
        match decoded {
            Ok(request) => {
                self.next_tag += 1;
                self.held.insert(self.next_tag, event);
                self.engine.submit(request, self.next_tag, ctx);
            }
            Err((id, message)) => {
                self.engine.stats.rejected.add(1);
                event.set_data(rejection(id, message));
                event.raw.clear();
                ctx.emit(event);
            }
        }
        self.flush(ctx);
    }

    fn fire<N: Next<Event> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, Event, N>) {
        if key & ENGINE_KEYS != 0 {
            self.engine.fire(key, fired, ctx);
            self.flush(ctx);
        }
    }

    fn finish<N: Next<Event> + ?Sized>(&mut self, _ctx: &mut Context<'_, Event, N>) -> Finish {
        self.engine.close();
        if self.engine.in_flight() == 0 {
            Finish::Done
        } else {
            self.finishing = true;
            Finish::Pending
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program ({:?})", self.engine)
    }
}
