//! The engine: every run in flight, driven by the cog that hosts it. A run
//! goes forward through its plan; when a step fails, the rectifiers of the
//! steps done run in reverse. Runs wait on timers, fds and other threads
//! without holding up one another.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tourbillon::{Context, Fired, Interest, Next};

use super::function::{Call, Flow, Functions, Reply, ReplyMsg, StepResult};
use super::journal::{Delta, Journal, Logged, Runs};
use super::run::{lock_key, Exec, Run, Task, Waiting, Wake};
use super::spec::{HookSpec, PlanStep, ProgramSpec, Recovery, Spec};
use super::template::resolve;
use super::wire::{rejection, status, Request};
use crate::Counter;

/// Keys of the bindings the engine makes in its host cog: this bit set.
pub(crate) const ENGINE_KEYS: u64 = 1 << 62;
/// The key replies from other threads arrive with.
const MSG_KEY: u64 = ENGINE_KEYS;

/// What a program host counted; clones share the counts.
#[derive(Clone, Debug, Default)]
pub struct ProgramStats {
    /// Runs begun.
    pub started: Counter,
    /// Runs answered `ok`.
    pub ok: Counter,
    /// Runs answered `failed`.
    pub failed: Counter,
    /// Runs answered `compensated`.
    pub compensated: Counter,
    /// Runs answered `compensation_failed`.
    pub compensation_failed: Counter,
    /// Requests answered `rejected`.
    pub rejected: Counter,
    /// Runs taken up again after a restart.
    pub recovered: Counter,
}

/// A response, and the request it answers (`None`: a run recovered after a
/// restart, whose client is gone).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) tag: Option<u64>,
    pub(crate) response: Value,
}

/// The runs of one host cog.
pub(crate) struct Engine {
    spec: Arc<Spec>,
    functions: Arc<Functions>,
    runs: HashMap<u64, Run>,
    next_run: u64,
    next_token: u64,
    waits: HashMap<u64, u64>,
    locks: HashMap<String, VecDeque<u64>>,
    ready: VecDeque<u64>,
    out: Vec<Answer>,
    journal: Option<Journal>,
    recovered: Runs,
    closed: bool,
    pub(crate) stats: ProgramStats,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("spec", &self.spec.name)
            .field("runs", &self.runs.len())
            .field("journal", &self.journal)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `spec`; with a `state_dir`, runs are journaled there
    /// and the runs a crash interrupted are taken up when it starts.
    pub(crate) fn new(
        spec: Arc<Spec>,
        functions: Arc<Functions>,
        state_dir: Option<&Path>,
        fsync: bool,
    ) -> Result<Engine, tourbillon::StoreError> {
        let (journal, recovered) = match state_dir {
            Some(dir) => {
                let (j, r) = Journal::open(dir, fsync)?;
                (Some(j), r)
            }
            None => (None, Runs::default()),
        };
        let next_run = recovered.0.keys().next_back().map_or(1, |k| k + 1);
        Ok(Engine {
            spec,
            functions,
            runs: HashMap::new(),
            next_run,
            next_token: 0,
            waits: HashMap::new(),
            locks: HashMap::new(),
            ready: VecDeque::new(),
            out: Vec::new(),
            journal,
            recovered,
            closed: false,
            stats: ProgramStats::default(),
        })
    }

    /// Runs in flight (waiting for a lock included).
    pub(crate) fn in_flight(&self) -> usize {
        self.runs.len() + self.ready.len()
    }

    /// Refuses new requests from now on.
    pub(crate) fn close(&mut self) {
        self.closed = true;
    }

    /// The responses ready, in the order the runs ended.
    pub(crate) fn take_answers(&mut self) -> Vec<Answer> {
        std::mem::take(&mut self.out)
    }

    fn log(&mut self, delta: Delta) {
        if let Some(j) = &mut self.journal {
            j.log(delta)
        }
    }

    fn token(&mut self) -> u64 {
        self.next_token += 1;
        self.next_token
    }

    /// Takes up the runs a crash interrupted: compensated, or completed if
    /// their program says so.
    pub(crate) fn start<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let recovered = std::mem::take(&mut self.recovered);
        for (id, logged) in recovered.0 {
            match self.spec.program(&logged.program).cloned() {
                Some(program) => {
                    self.stats.recovered.add(1);
                    log::info!("program run {id} ({}) was interrupted: taking it up", program.name);
                    let run = self.recover(id, program, logged);
                    self.admit(run);
                }
                None => {
                    log::error!(
                        "program run {id}: program `{}` is no longer in the spec; its effects stay",
                        logged.program
                    );
                    self.log(Delta::End { run: id });
                }
            }
        }
        self.pump(ctx);
    }

    fn recover(&mut self, id: u64, mut program: Arc<ProgramSpec>, logged: Logged) -> Run {
        let planned: Vec<&str> = program.plan.iter().map(|s| s.hook.as_str()).collect();
        let changed = !logged.plan.is_empty() && logged.plan != planned;
        if changed {
            // The spec changed since the run began: undo what was done, by
            // the hooks it ran then; going on with another plan makes no sense.
            log::warn!(
                "program run {id}: program `{}` changed since the run began; compensating it by its old plan",
                program.name
            );
            let mut old = (*program).clone();
            old.recovery = Recovery::Compensate;
            old.plan = logged
                .plan
                .iter()
                .map(|h| PlanStep {
                    hook: h.clone(),
                    program: program.name.clone(),
                    enter: h.strip_prefix("programs.").map(str::to_owned),
                })
                .collect();
            program = Arc::new(old);
        }
        let mut run = Run {
            id,
            tag: None,
            request: logged.request,
            lock: None,
            pool: logged.pool,
            metadata: logged.metadata,
            trace: vec![json!({ "restart": true })],
            next: 0,
            done: logged.done,
            compensating: false,
            queue: VecDeque::new(),
            failure: logged.failed.clone(),
            rect_failure: None,
            rectified: !logged.rectified.is_empty(),
            abandoned: false,
            exec: None,
            program,
        };
        run.lock = lock_key(&run.program, &run.pool);
        if logged.failed.is_none() && run.program.recovery == Recovery::Complete {
            run.next = logged
                .in_flight
                .or_else(|| run.done.iter().max().map(|d| d + 1))
                .unwrap_or(0);
            return run;
        }
        if logged.failed.is_none() {
            // The step in flight may have taken effect: undo it too (and
            // say so in the journal, should this start be cut short too).
            if let Some(s) = logged.in_flight {
                run.done.push(s);
                self.log(Delta::Done {
                    run: id,
                    step: s,
                    set: Map::new(),
                });
            }
            let at = logged
                .in_flight
                .or_else(|| run.done.last().copied())
                .and_then(|s| run.program.plan.get(s))
                .map_or_else(|| "-".to_owned(), |s| s.hook.clone());
            let message = "interrupted by a restart".to_owned();
            self.log(Delta::Failed {
                run: id,
                step: at.clone(),
                message: message.clone(),
            });
            run.failure = Some((at, message));
        }
        run.compensating = true;
        run.queue = self.rect_queue(&run.program, &run.done);
        run.queue.retain(|item| !logged.rectified.contains(item));
        run
    }

    /// Starts a run for `request`, or answers it `rejected`. `tag` comes
    /// back with the answer.
    pub(crate) fn submit<D, N: Next<D> + ?Sized>(&mut self, request: Request, tag: u64, ctx: &mut Context<'_, D, N>) {
        let reject = |this: &mut Engine, message: String| {
            this.stats.rejected.add(1);
            this.out.push(Answer {
                tag: Some(tag),
                response: rejection(request.id.clone(), message),
            });
        };
        if self.closed {
            return reject(self, "the server is shutting down".into());
        }
        let Some(program) = self.spec.program(&request.program).cloned() else {
            let known: Vec<&str> = self.spec.programs.keys().map(String::as_str).collect();
            return reject(
                self,
                format!("unknown program `{}` (programs: {})", request.program, known.join(", ")),
            );
        };
        let pool = match program.check_input(&request.data) {
            Ok(pool) => pool,
            Err(errors) => return reject(self, format!("invalid input: {}", errors.join("; "))),
        };
        let id = self.next_run;
        self.next_run += 1;
        self.stats.started.add(1);
        self.log(Delta::Begin {
            run: id,
            program: program.name.clone(),
            request: request.id.clone(),
            pool: pool.clone(),
            metadata: request.metadata.clone(),
            plan: program.plan.iter().map(|s| s.hook.clone()).collect(),
        });
        let run = Run {
            id,
            tag: Some(tag),
            request: request.id,
            lock: lock_key(&program, &pool),
            program,
            pool,
            metadata: request.metadata,
            trace: Vec::new(),
            next: 0,
            done: Vec::new(),
            compensating: false,
            queue: VecDeque::new(),
            failure: None,
            rect_failure: None,
            rectified: false,
            abandoned: false,
            exec: None,
        };
        self.admit(run);
        self.pump(ctx);
    }

    /// Queues a run behind the holders of its lock, or to go now.
    fn admit(&mut self, run: Run) {
        let id = run.id;
        let first = match &run.lock {
            Some(key) => {
                let q = self.locks.entry(key.clone()).or_default();
                q.push_back(id);
                q.len() == 1
            }
            None => true,
        };
        self.runs.insert(id, run);
        if first {
            self.ready.push_back(id);
        }
    }

    fn pump<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while let Some(id) = self.ready.pop_front() {
            if let Some(run) = self.runs.remove(&id) {
                self.drive(run, ctx);
            }
        }
    }

    /// A binding of the engine fired (a key with [`ENGINE_KEYS`] set).
    pub(crate) fn fire<D, N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        match fired {
            Fired::Message(m) if key == MSG_KEY => {
                if let Ok(msg) = m.downcast::<ReplyMsg>() {
                    let ReplyMsg { token, result } = *msg;
                    self.wake(token, Wake::Reply(result), ctx);
                }
            }
            Fired::Timer(_) => self.wake(key & !ENGINE_KEYS, Wake::Timer, ctx),
            Fired::Ready(..) => self.wake(key & !ENGINE_KEYS, Wake::Fd, ctx),
            _ => {}
        }
        self.pump(ctx);
    }

    fn wake<D, N: Next<D> + ?Sized>(&mut self, token: u64, wake: Wake, ctx: &mut Context<'_, D, N>) {
        let Some(run_id) = self.waits.remove(&token) else {
            return;
        };
        let Some(mut run) = self.runs.remove(&run_id) else {
            return;
        };
        let Some(exec) = run.exec.as_mut() else {
            self.runs.insert(run_id, run);
            return;
        };
        if exec.timeout.as_ref().is_some_and(|t| t.0 == token) {
            exec.timeout = None;
            if let Some((t, waiting)) = exec.wait.take() {
                self.waits.remove(&t);
                match waiting {
                    Waiting::Timer(id) | Waiting::Retry(id) => {
                        ctx.cancel(id);
                    }
                    Waiting::Fd(id) => {
                        ctx.unregister(id);
                    }
                    Waiting::Reply => {}
                }
            }
            exec.resume = None;
            let ms = exec.hook.timeout.map_or(0, |t| t.as_millis());
            self.settle(&mut run, Err(format!("timed out after {ms} ms")), ctx);
        } else if exec.wait.as_ref().is_some_and(|w| w.0 == token) {
            let waiting = exec.wait.take().map(|w| w.1);
            match (waiting, wake) {
                (Some(Waiting::Reply), Wake::Reply(result)) => self.settle(&mut run, result, ctx),
                (Some(Waiting::Retry(_)), _) => {
                    exec.started = ctx.now();
                    self.invoke(&mut run, ctx)
                }
                (Some(Waiting::Fd(id)), _) => {
                    ctx.unregister(id);
                    self.invoke(&mut run, ctx)
                }
                _ => self.invoke(&mut run, ctx),
            }
        }
        self.drive(run, ctx)
    }

    /// Moves a run on until it waits or ends.
    fn drive<D, N: Next<D> + ?Sized>(&mut self, mut run: Run, ctx: &mut Context<'_, D, N>) {
        loop {
            if run.abandoned {
                log::warn!("program run {}: left for the next start to take up", run.id);
                return self.release(run.id, run.lock);
            }
            if let Some(exec) = &mut run.exec {
                match exec.result.take() {
                    None => {
                        self.runs.insert(run.id, run);
                        return;
                    }
                    Some(result) => {
                        let exec = run.exec.take().expect("checked above");
                        self.complete(&mut run, exec, result);
                        continue;
                    }
                }
            }
            if run.compensating {
                let Some(&(s, r)) = run.queue.front() else {
                    return self.answer(run);
                };
                let hook = self
                    .spec
                    .hook(&run.program.plan[s].hook)
                    .and_then(|h| h.rectifiers.get(r))
                    .and_then(|n| self.spec.hook(n))
                    .cloned();
                match hook {
                    Some(hook) => self.begin(&mut run, Task::Rectify(s, r), hook, ctx),
                    None => {
                        run.queue.pop_front();
                    }
                }
                continue;
            }
            let plan = &run.program.plan;
            if run.next >= plan.len() {
                match run.program.outputs_of(&run.pool) {
                    Ok(outputs) => return self.answer_ok(run, outputs),
                    Err(errors) => {
                        self.fail_run(&mut run, "outputs".into(), errors.join("; "));
                        continue;
                    }
                }
            }
            let i = run.next;
            let step = plan[i].clone();
            if let Some(q) = &step.enter {
                let nested = self.spec.program(q).cloned().expect("validated");
                let before = run.pool.clone();
                match nested.apply_args(&mut run.pool) {
                    Ok(()) => {
                        let set: Map<String, Value> = run
                            .pool
                            .iter()
                            .filter(|(k, _)| !before.contains_key(*k))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        self.log(Delta::Done {
                            run: run.id,
                            step: i,
                            set,
                        });
                        run.trace
                            .push(json!({ "step": step.hook, "program": step.program, "status": "ok" }));
                        run.done.push(i);
                        run.next = i + 1;
                    }
                    Err(errors) => {
                        let message = format!("invalid input: {}", errors.join("; "));
                        run.trace.push(json!({
                            "step": step.hook, "program": step.program, "status": "failed", "error": message,
                        }));
                        self.fail_run(&mut run, step.hook.clone(), message);
                    }
                }
                continue;
            }
            let hook = self.spec.hook(&step.hook).cloned().expect("validated");
            self.log(Delta::Started { run: run.id, step: i });
            self.begin(&mut run, Task::Step(i), hook, ctx);
        }
    }

    fn begin<D, N: Next<D> + ?Sized>(
        &mut self,
        run: &mut Run,
        task: Task,
        hook: Arc<HookSpec>,
        ctx: &mut Context<'_, D, N>,
    ) {
        // What the hook requires of the pool is checked now: after its
        // dependencies ran (they are earlier steps of the plan), before
        // its function. Hook args have no defaults, so the pool is not changed.
        let checked = super::spec::apply_args(&hook.args, &mut run.pool).map_err(|errors| {
            format!(
                "the data pool does not meet hooks.{}.args: {}",
                hook.name,
                errors.join("; ")
            )
        });
        let (args, result) = match checked.and_then(|()| resolve(&hook.params, &run.pool, &run.metadata)) {
            Ok(args) => (args, None),
            Err(e) => (Map::new(), Some(Err(e))),
        };
        let func = self.functions.get(&hook.reference);
        let result = match (&func, result) {
            (_, Some(r)) => Some(r),
            (None, None) => Some(Err(format!("function `{}` is not registered", hook.reference))),
            _ => None,
        };
        let ready = result.is_some();
        run.exec = Some(Exec {
            task,
            hook,
            func,
            args,
            attempt: 1,
            started: ctx.now(),
            resume: None,
            wait: None,
            timeout: None,
            result,
        });
        if !ready {
            self.invoke(run, ctx);
        }
    }

    /// Calls the hook's function (or what it resumes with) and follows its answer.
    fn invoke<D, N: Next<D> + ?Sized>(&mut self, run: &mut Run, ctx: &mut Context<'_, D, N>) {
        let Run {
            exec, pool, metadata, ..
        } = run;
        let Some(exec) = exec.as_mut() else { return };
        let mut token = None;
        let flow = {
            let next_token = &mut self.next_token;
            let ctx_ref = &*ctx;
            let mut reply = || {
                *next_token += 1;
                token = Some(*next_token);
                Reply::new(ctx_ref.remote(MSG_KEY), *next_token)
            };
            let mut call = Call {
                hook: &exec.hook.name,
                args: &exec.args,
                pool,
                metadata,
                attempt: exec.attempt,
                reply: &mut reply,
            };
            // A step that panics fails; it does not take the host and
            // every other run down with it.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                match (exec.resume.take(), &exec.func) {
                    (Some(resume), _) => resume(&mut call),
                    (None, Some(func)) => func(&mut call),
                    (None, None) => Flow::Fail("no function".into()),
                }
            }));
            outcome.unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Flow::Fail(format!("the step panicked: {what}"))
            })
        };
        self.follow(run, flow, token, ctx)
    }

    fn follow<D, N: Next<D> + ?Sized>(
        &mut self,
        run: &mut Run,
        flow: Flow,
        reply: Option<u64>,
        ctx: &mut Context<'_, D, N>,
    ) {
        let wait = match flow {
            Flow::Done(v) => return self.settle(run, Ok(v), ctx),
            Flow::Fail(m) => return self.settle(run, Err(m), ctx),
            Flow::After(delay, resume) => {
                let t = self.token();
                ctx.after(delay, ENGINE_KEYS | t)
                    .map(|id| (t, Waiting::Timer(id), Some(resume)))
            }
            Flow::Readable(fd, resume) => {
                let t = self.token();
                ctx.register(&fd, Interest::READABLE, ENGINE_KEYS | t)
                    .map(|id| (t, Waiting::Fd(id), Some(resume)))
            }
            Flow::Writable(fd, resume) => {
                let t = self.token();
                ctx.register(&fd, Interest::WRITABLE, ENGINE_KEYS | t)
                    .map(|id| (t, Waiting::Fd(id), Some(resume)))
            }
            Flow::Pending => match reply {
                Some(t) => Ok((t, Waiting::Reply, None)),
                None => {
                    return self.settle(run, Err("answered Pending without taking a Reply".into()), ctx);
                }
            },
        };
        match wait {
            Ok((t, waiting, resume)) => {
                self.waits.insert(t, run.id);
                let exec = run.exec.as_mut().expect("a step is running");
                exec.resume = resume;
                exec.wait = Some((t, waiting));
                self.arm_timeout(run, ctx);
            }
            Err(e) => {
                if self.abandons(&e) {
                    run.abandoned = true;
                } else {
                    self.settle(run, Err(format!("cannot wait: {e}")), ctx)
                }
            }
        }
    }

    /// The host is finishing and refuses new waits: a journaled run is left
    /// for the next start to take up, rather than failed for a reason that
    /// has nothing to do with it.
    fn abandons(&self, e: &tourbillon::Error) -> bool {
        matches!(e, tourbillon::Error::Finishing) && self.journal.is_some()
    }

    fn arm_timeout<D, N: Next<D> + ?Sized>(&mut self, run: &mut Run, ctx: &mut Context<'_, D, N>) {
        let Some(exec) = run.exec.as_mut() else { return };
        let Some(limit) = exec.hook.timeout else { return };
        if exec.timeout.is_some() {
            return;
        }
        self.next_token += 1;
        let t = self.next_token;
        if let Ok(id) = ctx.at(exec.started + limit, ENGINE_KEYS | t) {
            self.waits.insert(t, run.id);
            exec.timeout = Some((t, id));
        }
    }

    /// An attempt ended: retry it, or record the hook's result.
    fn settle<D, N: Next<D> + ?Sized>(&mut self, run: &mut Run, result: StepResult, ctx: &mut Context<'_, D, N>) {
        let id = run.id;
        let Some(exec) = run.exec.as_mut() else { return };
        if let Some((t, timer)) = exec.timeout.take() {
            self.waits.remove(&t);
            ctx.cancel(timer);
        }
        match result {
            Err(message) if exec.attempt <= exec.hook.retries => {
                log::info!(
                    "program run {id}: `{}` attempt {} failed: {message}; retrying",
                    exec.hook.name,
                    exec.attempt
                );
                exec.attempt += 1;
                exec.resume = None;
                if exec.hook.retry_delay.is_zero() {
                    exec.started = ctx.now();
                    return self.invoke(run, ctx);
                }
                self.next_token += 1;
                let t = self.next_token;
                match ctx.after(exec.hook.retry_delay, ENGINE_KEYS | t) {
                    Ok(timer) => {
                        self.waits.insert(t, id);
                        exec.wait = Some((t, Waiting::Retry(timer)));
                    }
                    Err(e) if self.abandons(&e) => run.abandoned = true,
                    Err(e) => exec.result = Some(Err(format!("{message}; cannot retry: {e}"))),
                }
            }
            result => exec.result = Some(result),
        }
    }

    /// A hook is through (after its attempts): record it and go on.
    fn complete(&mut self, run: &mut Run, exec: Exec, result: StepResult) {
        let result = match result {
            Ok(Value::Object(m)) => Ok(m),
            Ok(Value::Null) => Ok(Map::new()),
            Ok(other) => Err(format!("returned {other}, not a dict of values for the data pool")),
            Err(e) => Err(e),
        };
        let name = exec.hook.name.clone();
        match exec.task {
            Task::Step(i) => {
                let program = run.program.plan[i].program.clone();
                match result {
                    Ok(set) => {
                        run.pool.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                        self.log(Delta::Done {
                            run: run.id,
                            step: i,
                            set,
                        });
                        run.trace.push(
                            json!({ "step": name, "program": program, "status": "ok", "attempts": exec.attempt }),
                        );
                        run.done.push(i);
                        run.next = i + 1;
                    }
                    Err(message) => {
                        run.trace.push(json!({
                            "step": name, "program": program, "status": "failed",
                            "attempts": exec.attempt, "error": message,
                        }));
                        self.fail_run(run, name, message);
                    }
                }
            }
            Task::Rectify(s, r) => {
                let step = &run.program.plan[s];
                let mut entry = json!({
                    "rectifier": name, "for": step.hook, "program": step.program, "attempts": exec.attempt,
                });
                match result {
                    Ok(_) => {
                        entry["status"] = "ok".into();
                        run.rectified = true;
                    }
                    Err(message) => {
                        log::warn!("program run {}: rectifier `{name}` failed: {message}", run.id);
                        entry["status"] = "failed".into();
                        entry["error"] = message.clone().into();
                        run.rect_failure.get_or_insert((name, message));
                    }
                }
                run.trace.push(entry);
                self.log(Delta::Rectified {
                    run: run.id,
                    step: s,
                    rectifier: r,
                });
                run.queue.pop_front();
            }
        }
    }

    /// The rectifiers of the steps done, last step first.
    fn rect_queue(&self, program: &ProgramSpec, done: &[usize]) -> VecDeque<(usize, usize)> {
        let mut q = VecDeque::new();
        for &s in done.iter().rev() {
            if let Some(hook) = program.plan.get(s).and_then(|step| self.spec.hook(&step.hook)) {
                q.extend((0..hook.rectifiers.len()).map(|r| (s, r)));
            }
        }
        q
    }

    fn fail_run(&mut self, run: &mut Run, step: String, message: String) {
        self.log(Delta::Failed {
            run: run.id,
            step: step.clone(),
            message: message.clone(),
        });
        run.failure = Some((step, message));
        run.compensating = true;
        run.queue = self.rect_queue(&run.program, &run.done);
    }

    fn answer_ok(&mut self, run: Run, outputs: Map<String, Value>) {
        self.stats.ok.add(1);
        let response = json!({
            "id": run.request, "status": status::OK, "outputs": outputs, "error": null, "trace": run.trace,
        });
        self.end(run.id, run.tag, run.lock, response);
    }

    fn answer(&mut self, run: Run) {
        let (status, error) = match (&run.failure, &run.rect_failure) {
            (Some((step, message)), Some((rect, rect_message))) => {
                self.stats.compensation_failed.add(1);
                let message = format!("{message}; then rectifier `{rect}` failed: {rect_message}");
                (status::COMPENSATION_FAILED, json!({ "step": step, "message": message }))
            }
            (Some((step, message)), None) => {
                let status = if run.rectified {
                    self.stats.compensated.add(1);
                    status::COMPENSATED
                } else {
                    self.stats.failed.add(1);
                    status::FAILED
                };
                (status, json!({ "step": step, "message": message }))
            }
            (None, _) => (
                status::FAILED,
                json!({ "step": null, "message": "no failure recorded" }),
            ),
        };
        let response = json!({
            "id": run.request, "status": status, "outputs": {}, "error": error, "trace": run.trace,
        });
        self.end(run.id, run.tag, run.lock, response);
    }

    /// Lets the next run waiting for `lock` go.
    fn release(&mut self, id: u64, lock: Option<String>) {
        let Some(key) = lock else { return };
        if let Some(q) = self.locks.get_mut(&key) {
            q.retain(|r| *r != id);
            match q.front() {
                Some(next) => self.ready.push_back(*next),
                None => {
                    self.locks.remove(&key);
                }
            }
        }
    }

    fn end(&mut self, id: u64, tag: Option<u64>, lock: Option<String>, response: Value) {
        self.log(Delta::End { run: id });
        self.release(id, lock);
        if tag.is_none() {
            log::info!("program run {id} (taken up after a restart) ended: {response}");
        }
        self.out.push(Answer { tag, response });
    }
}
