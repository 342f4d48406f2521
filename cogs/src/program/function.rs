//! Step functions: registered in Rust by name, called with a hook's
//! arguments, answering at once or after waiting on a timer, an fd or
//! another thread.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::io::RawFd;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tourbillon::CogRemote;

/// What a finished step gives: the values to merge into the data pool (a
/// dict, or `null` for nothing), or why it failed.
pub type StepResult = Result<Value, String>;

/// How a step goes on after a wait: called on the loop thread with the same
/// [`Call`], it answers with what happens next.
pub type Resume = Box<dyn FnOnce(&mut Call<'_>) -> Flow>;

/// What a step function answers: it is done, it failed, or what it waits
/// for. Waiting never blocks the loop: other runs go on meanwhile.
pub enum Flow {
    /// Succeeded; a dict is merged into the data pool (`null`: nothing).
    Done(Value),
    /// Failed, with a message for the response.
    Fail(String),
    /// Call `Resume` after this long.
    After(Duration, Resume),
    /// Call `Resume` once the fd is readable. The fd must stay open until
    /// then (let the `Resume` own what holds it). Readiness can be
    /// spurious: on `WouldBlock`, answer `Readable` again.
    Readable(RawFd, Resume),
    /// Call `Resume` once the fd is writable.
    Writable(RawFd, Resume),
    /// The answer comes through the [`Reply`] taken with [`Call::reply`],
    /// typically from a worker thread.
    Pending,
}

impl fmt::Debug for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Flow::Done(v) => f.debug_tuple("Done").field(v).finish(),
            Flow::Fail(m) => f.debug_tuple("Fail").field(m).finish(),
            Flow::After(d, _) => f.debug_tuple("After").field(d).finish(),
            Flow::Readable(fd, _) => f.debug_tuple("Readable").field(fd).finish(),
            Flow::Writable(fd, _) => f.debug_tuple("Writable").field(fd).finish(),
            Flow::Pending => f.write_str("Pending"),
        }
    }
}

impl From<StepResult> for Flow {
    fn from(r: StepResult) -> Flow {
        match r {
            Ok(v) => Flow::Done(v),
            Err(m) => Flow::Fail(m),
        }
    }
}

/// A step's answer sent from another thread.
pub(crate) struct ReplyMsg {
    pub(crate) token: u64,
    pub(crate) result: StepResult,
}

/// Answers a step that returned [`Flow::Pending`], from any thread. An
/// answer that comes after the step timed out is ignored; a `Reply`
/// dropped without answering fails the step.
#[derive(Debug)]
pub struct Reply {
    remote: Option<CogRemote>,
    token: u64,
}

impl Reply {
    pub(crate) fn new(remote: CogRemote, token: u64) -> Reply {
        Reply {
            remote: Some(remote),
            token,
        }
    }

    /// Sends the step's result.
    pub fn send(mut self, result: StepResult) {
        if let Some(remote) = self.remote.take() {
            // The loop may be gone (shutting down): nobody waits any more.
            let _ = remote.send(ReplyMsg {
                token: self.token,
                result,
            });
        }
    }

    /// The step succeeded with these values.
    pub fn ok(self, values: Value) {
        self.send(Ok(values))
    }

    /// The step failed.
    pub fn fail(self, message: impl Into<String>) {
        self.send(Err(message.into()))
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(remote) = self.remote.take() {
            let _ = remote.send(ReplyMsg {
                token: self.token,
                result: Err("the step dropped its reply without answering".into()),
            });
        }
    }
}

/// What a step function gets: the hook's resolved arguments, the data pool
/// (read only: a step changes it by what it returns), the attempt number,
/// and a way to answer later.
pub struct Call<'a> {
    pub(crate) hook: &'a str,
    pub(crate) args: &'a Map<String, Value>,
    pub(crate) pool: &'a Map<String, Value>,
    pub(crate) metadata: &'a Value,
    pub(crate) attempt: u32,
    pub(crate) reply: &'a mut dyn FnMut() -> Reply,
}

impl fmt::Debug for Call<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("hook", &self.hook)
            .field("args", &self.args)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl Call<'_> {
    /// The hook being run.
    pub fn hook(&self) -> &str {
        self.hook
    }

    /// The hook's `params`, `${...}` references resolved.
    pub fn args(&self) -> &Map<String, Value> {
        self.args
    }

    /// One argument.
    pub fn arg(&self, name: &str) -> Option<&Value> {
        self.args.get(name)
    }

    /// A string argument, or a message saying what is wrong.
    pub fn str_arg(&self, name: &str) -> Result<&str, String> {
        match self.args.get(name) {
            Some(Value::String(s)) => Ok(s),
            Some(other) => Err(format!("argument `{name}` must be a string, not {other}")),
            None => Err(format!("argument `{name}` is missing")),
        }
    }

    /// An int argument, or `default` when absent.
    pub fn int_arg(&self, name: &str, default: i64) -> Result<i64, String> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| format!("argument `{name}` must be an int, not {v}")),
        }
    }

    /// A bool argument, or `default` when absent.
    pub fn bool_arg(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.args.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(format!("argument `{name}` must be a bool, not {v}")),
        }
    }

    /// The run's data pool.
    pub fn pool(&self) -> &Map<String, Value> {
        self.pool
    }

    /// The request's `metadata` (a dict, or `null` when it had none).
    pub fn metadata(&self) -> &Value {
        self.metadata
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A handle to answer later, from any thread; return [`Flow::Pending`].
    pub fn reply(&mut self) -> Reply {
        (self.reply)()
    }
}

/// A step function.
pub type StepFn = dyn Fn(&mut Call<'_>) -> Flow + Send + Sync;

/// Step functions by name: what a hook's `reference` names.
///
/// ```
/// use serde_json::json;
/// use tourbillon_cogs::program::{Flow, Functions};
///
/// let mut functions = Functions::standard();
/// functions.add("greet", |call| match call.str_arg("who") {
///     Ok(who) => Flow::Done(json!({ "greeting": format!("hello, {who}") })),
///     Err(e) => Flow::Fail(e),
/// });
/// assert!(functions.contains("greet") && functions.contains("sleep"));
/// ```
#[derive(Clone, Default)]
pub struct Functions {
    map: BTreeMap<String, Arc<StepFn>>,
}

impl fmt::Debug for Functions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

impl Functions {
    /// No functions.
    pub fn empty() -> Functions {
        Functions::default()
    }

    /// The built-ins, for demos and tests:
    ///
    /// | name | arguments | does |
    /// |---|---|---|
    /// | `set` | any | merges its arguments into the data pool |
    /// | `sleep` | `ms`, `thread` (bool) | waits on a timer, or on a worker thread |
    /// | `fail` | `message`, `when` (bool, default true), `attempts` (int) | fails (only the first `attempts` attempts, if given) |
    /// | `write_file` | `path`, `content` | writes a file |
    /// | `append_file` | `path`, `line` | appends a line to a file |
    /// | `remove_file` | `path` | removes a file (missing is fine) |
    pub fn standard() -> Functions {
        let mut f = Functions::empty();
        f.add("set", |call| Flow::Done(Value::Object(call.args().clone())));
        f.add("sleep", sleep);
        f.add("fail", fail);
        f.add("write_file", |call| {
            let run = || -> StepResult {
                let path = call.str_arg("path")?;
                let content = match call.arg("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                std::fs::write(path, content).map_err(|e| format!("{path}: {e}"))?;
                Ok(Value::Null)
            };
            run().into()
        });
        f.add("append_file", |call| {
            let run = || -> StepResult {
                let path = call.str_arg("path")?;
                let line = match call.arg("line") {
                    Some(Value::String(s)) => s.clone(),
                    Some(v) => v.to_string(),
                    None => String::new(),
                };
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("{path}: {e}"))?;
                file.write_all(format!("{line}\n").as_bytes())
                    .map_err(|e| format!("{path}: {e}"))?;
                Ok(Value::Null)
            };
            run().into()
        });
        f.add("remove_file", |call| {
            let run = || -> StepResult {
                let path = call.str_arg("path")?;
                match std::fs::remove_file(path) {
                    Ok(()) => Ok(json!({})),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Null),
                    Err(e) => Err(format!("{path}: {e}")),
                }
            };
            run().into()
        });
        f
    }

    /// Adds (or replaces) a function.
    pub fn add(&mut self, name: &str, f: impl Fn(&mut Call<'_>) -> Flow + Send + Sync + 'static) -> &mut Self {
        self.map.insert(name.to_owned(), Arc::new(f));
        self
    }

    /// True if `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.map.keys().map(String::as_str).collect()
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<StepFn>> {
        self.map.get(name).cloned()
    }
}

fn sleep(call: &mut Call<'_>) -> Flow {
    let ms = match call.int_arg("ms", 0) {
        Ok(ms) => ms.max(0) as u64,
        Err(e) => return Flow::Fail(e),
    };
    match call.bool_arg("thread", false) {
        Ok(true) => {
            let reply = call.reply();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                reply.ok(Value::Null);
            });
            Flow::Pending
        }
        Ok(false) => Flow::After(Duration::from_millis(ms), Box::new(|_| Flow::Done(Value::Null))),
        Err(e) => Flow::Fail(e),
    }
}

fn fail(call: &mut Call<'_>) -> Flow {
    let run = || -> StepResult {
        let message = call.str_arg("message").unwrap_or("failed on purpose").to_owned();
        if !call.bool_arg("when", true)? {
            return Ok(Value::Null);
        }
        let attempts = call.int_arg("attempts", i64::MAX)?;
        if i64::from(call.attempt()) > attempts {
            return Ok(Value::Null);
        }
        Err(message)
    };
    run().into()
}
