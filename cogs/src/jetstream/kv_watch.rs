//! The `kv_watch` supply: every put, delete and purge of a key-value
//! bucket as an event, the last revision done kept in a state store.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use futures_util::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Semaphore;
use tourbillon::store::{FsyncPolicy, Store, StoreOptions};
use tourbillon::{Cog, CogRemote, Context, Event, EventId, Finish, Fired, Next, Role};

use super::client::Auth;
use super::kv_bucket::{self, BucketSettings};
use crate::access::Access;
use crate::{Counter, Error, LogThrottle, Verdict};

/// Where a watcher without a saved revision starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvDeliver {
    /// Every revision the bucket keeps (up to `history` per key), oldest
    /// first: a late node sees every key and its updates. The default.
    #[default]
    All,
    /// The last revision of each key, then every update.
    LastPerKey,
    /// Only updates made after the watcher starts.
    New,
}

/// Settings of [`KvWatchSupply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvWatchSettings {
    /// NATS servers to connect to. Default `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// Credentials and TLS, by file names. Default none.
    pub auth: Auth,
    /// The bucket to watch. Required.
    pub bucket: String,
    /// The keys to watch: a key, or a pattern with NATS subject wildcards
    /// (`config.*`, `nodes.>`). Default `">"`: every key.
    pub keys: String,
    /// Where the watch starts when no revision is saved: `"all"` (default),
    /// `"last_per_key"`, `"new"`.
    pub deliver: KvDeliver,
    /// A directory (a state store) keeping the last revision whose event is
    /// done: a restart resumes after it, whatever `deliver` says. Default
    /// none: a restart starts as `deliver` says.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub state_dir: Option<PathBuf>,
    /// Create the bucket if it does not exist. Default false.
    pub create_bucket: bool,
    /// Revisions kept per key by a bucket this cog creates (1 to 64). Default 64.
    pub history: i64,
    /// Largest value of a bucket this cog creates; -1: the server's limit. Default -1.
    pub max_value_size: i32,
    /// Entries received and not yet done, at most: the watcher stops
    /// reading beyond it. At least 1. Default 1000.
    pub max_in_flight: usize,
    /// Field of the key. Default `"key"`.
    pub key_field: String,
    /// Field of the value: the JSON it holds, or, when it is not JSON, its
    /// text (invalid UTF-8 replaced, counted and logged); `null` for a
    /// delete or purge. Default `"value"`.
    pub value_field: String,
    /// Field of the revision (the bucket stream's sequence). Default `"revision"`.
    pub revision_field: String,
    /// Field of the operation: `"put"`, `"delete"` or `"purge"`. Default `"operation"`.
    pub operation_field: String,
    /// The client's name, as the server shows it. Default `"tourbillon"`.
    pub name: String,
}

impl Default for KvWatchSettings {
    fn default() -> Self {
        KvWatchSettings {
            servers: super::client::default_servers(),
            auth: Auth::default(),
            bucket: String::new(),
            keys: ">".into(),
            deliver: KvDeliver::All,
            state_dir: None,
            create_bucket: false,
            history: BucketSettings::default().history,
            max_value_size: -1,
            max_in_flight: 1000,
            key_field: "key".into(),
            value_field: "value".into(),
            revision_field: "revision".into(),
            operation_field: "operation".into(),
            name: "tourbillon".into(),
        }
    }
}

impl KvWatchSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        super::client::validate_servers(&self.servers)?;
        self.auth.validate()?;
        kv_bucket::validate_bucket(&self.bucket)?;
        self.bucket_settings().validate()?;
        if !kv_bucket::valid_key(&self.keys, true) {
            return Err(Error::setting(
                "keys",
                format!("`{}`: a key or a pattern (`a.*`, `a.>`, `>`)", self.keys),
            ));
        }
        if self.max_in_flight == 0 {
            return Err(Error::setting("max_in_flight", "must be at least 1"));
        }
        for (key, v) in [
            ("key_field", &self.key_field),
            ("value_field", &self.value_field),
            ("revision_field", &self.revision_field),
            ("operation_field", &self.operation_field),
        ] {
            if v.is_empty() {
                return Err(Error::setting(key, "must not be empty"));
            }
        }
        Ok(())
    }

    fn bucket_settings(&self) -> BucketSettings {
        BucketSettings {
            create_bucket: self.create_bucket,
            history: self.history,
            max_value_size: self.max_value_size,
        }
    }
}

/// One entry as the supply hands it to its maker.
#[derive(Debug)]
pub struct KvEntry<'a> {
    /// The event's id.
    pub id: EventId,
    /// The bucket.
    pub bucket: &'a Arc<str>,
    /// The key.
    pub key: &'a str,
    /// The value's bytes (empty for a delete or purge).
    pub value: &'a [u8],
    /// The revision.
    pub revision: u64,
    /// `"put"`, `"delete"` or `"purge"`.
    pub operation: &'static str,
}

/// Counts of a [`KvWatchSupply`]; clones share them.
#[derive(Clone, Debug, Default)]
pub struct KvWatchStats {
    /// Entries received.
    pub received: Counter,
    /// Values that are not JSON, kept as text.
    pub text_values: Counter,
    /// Values that are not valid UTF-8 either: invalid bytes replaced.
    pub lossy_values: Counter,
    /// The last revision saved in the state store.
    pub saved_revision: Counter,
    /// Saves that failed (tried again at the next).
    pub save_failures: Counter,
}

/// The state store's state and delta: the last revision done.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Saved {
    bucket: String,
    revision: u64,
}

/// Log records between two compacting checkpoints.
const COMPACT_EVERY: usize = 64;
const REMOTE: u64 = 0;
const FLUSH: u64 = 1;

/// Loop to helper.
enum Command {
    /// Events done: room for as many new entries.
    Release(usize),
    Stop,
}

/// Helper to loop.
enum Incoming {
    Entries(Vec<kv::Entry>),
    Fatal(String),
}

type Maker<D> = Box<dyn FnMut(KvEntry<'_>) -> D>;

/// Watches a key-value bucket; see the [module docs](super).
pub struct KvWatchSupply<D = Event> {
    settings: KvWatchSettings,
    make: Maker<D>,
    bucket: Arc<str>,
    store: Option<Store<Saved, Saved>>,
    /// The last revision done and saved (or found at start).
    saved: Option<u64>,
    logged: usize,
    store_failing: bool,
    tx: Option<UnboundedSender<Command>>,
    thread: Option<std::thread::JoinHandle<()>>,
    backlog: VecDeque<kv::Entry>,
    /// Revisions emitted, in order, and whether their event is done.
    order: VecDeque<(u64, bool)>,
    by_id: HashMap<EventId, u64>,
    /// Done since the last flush: permits to give back.
    released: usize,
    /// The last revision whose events, and all before it, are done.
    done_upto: Option<u64>,
    flush_queued: bool,
    waiting: bool,
    finishing: bool,
    stats: KvWatchStats,
}

impl<D> fmt::Debug for KvWatchSupply<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvWatchSupply")
            .field("settings", &self.settings)
            .field("saved", &self.saved)
            .field("in_flight", &self.order.len())
            .finish_non_exhaustive()
    }
}

/// A value as a field: its JSON, else its text.
fn decode_value(bytes: &[u8], stats: &KvWatchStats, key: &str, log: &mut LogThrottle) -> Value {
    if let Ok(v) = serde_json::from_slice(bytes) {
        return v;
    }
    stats.text_values.add(1);
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => {
            stats.lossy_values.add(1);
            if let Verdict::Log { held } = log.hit(std::time::Instant::now()) {
                log::warn!(
                    "kv_watch: key {key}: the value is neither JSON nor UTF-8: invalid bytes replaced with U+FFFD{}",
                    crate::Summary::note(held)
                );
            }
            Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

impl KvWatchSupply<Event> {
    /// Events with the key, value, revision and operation in the fields
    /// the settings name, the value's bytes as `raw`, `kv:BUCKET` as origin
    /// and the revision as line.
    pub fn new(settings: KvWatchSettings) -> Result<Self, Error> {
        let access = Access::<Event>::event();
        let key = access.writer(&settings.key_field);
        let value = access.writer(&settings.value_field);
        let revision = access.writer(&settings.revision_field);
        let operation = access.writer(&settings.operation_field);
        let stats = KvWatchStats::default();
        let counts = stats.clone();
        let mut log = LogThrottle::new(Duration::from_secs(10));
        let origin: Arc<str> = Arc::from(format!("kv:{}", settings.bucket));
        let mut supply = KvWatchSupply::with_maker(settings, move |e: KvEntry<'_>| {
            let v = if e.operation == "put" {
                decode_value(e.value, &counts, e.key, &mut log)
            } else {
                Value::Null
            };
            let mut ev = Event::new(e.id, Value::Object(serde_json::Map::new()));
            ev.raw = e.value.to_vec();
            ev.origin = Some(Arc::clone(&origin));
            ev.line = e.revision;
            let ev = key.set(ev, Some(Value::String(e.key.to_owned())));
            let ev = value.set(ev, Some(v));
            let ev = revision.set(ev, Some(Value::from(e.revision)));
            operation.set(ev, Some(Value::String(e.operation.to_owned())))
        })?;
        supply.stats = stats;
        Ok(supply)
    }
}

impl<D: 'static> KvWatchSupply<D> {
    /// Data made by `make` from each entry. Opens the state store (an
    /// error names it).
    pub fn with_maker(settings: KvWatchSettings, make: impl FnMut(KvEntry<'_>) -> D + 'static) -> Result<Self, Error> {
        settings.validate()?;
        let (store, saved) = match &settings.state_dir {
            Some(dir) => {
                let store = Store::<Saved, Saved>::open(dir, StoreOptions::new().fsync(FsyncPolicy::Always))?;
                let saved = store.recover(Saved::default, |s, d| *s = d)?;
                let revision = if saved.revision == 0 {
                    None
                } else if saved.bucket != settings.bucket {
                    log::warn!(
                        "kv_watch: {}: the revision saved there ({}) is of bucket {}, not {}: not used",
                        dir.display(),
                        saved.revision,
                        saved.bucket,
                        settings.bucket
                    );
                    None
                } else {
                    log::info!(
                        "kv_watch: bucket {}: resuming after revision {}",
                        settings.bucket,
                        saved.revision
                    );
                    Some(saved.revision)
                };
                (Some(store), revision)
            }
            None => (None, None),
        };
        let stats = KvWatchStats::default();
        stats.saved_revision.set(saved.unwrap_or(0));
        Ok(KvWatchSupply {
            bucket: Arc::from(settings.bucket.as_str()),
            settings,
            make: Box::new(make),
            store,
            saved,
            logged: 0,
            store_failing: false,
            tx: None,
            thread: None,
            backlog: VecDeque::new(),
            order: VecDeque::new(),
            by_id: HashMap::new(),
            released: 0,
            done_upto: saved,
            flush_queued: false,
            waiting: false,
            finishing: false,
            stats,
        })
    }

    /// Its counters.
    pub fn stats(&self) -> KvWatchStats {
        self.stats.clone()
    }

    fn send(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(c);
        }
    }

    fn pump<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while !self.backlog.is_empty() {
            if ctx.congested() {
                self.waiting = true;
                return;
            }
            let Some(e) = self.backlog.pop_front() else { break };
            let id = ctx.next_event_id();
            let operation = match e.operation {
                Operation::Put => "put",
                Operation::Delete => "delete",
                Operation::Purge => "purge",
            };
            let datum = (self.make)(KvEntry {
                id,
                bucket: &self.bucket,
                key: &e.key,
                value: &e.value,
                revision: e.revision,
                operation,
            });
            match ctx.id_of(&datum) {
                Some(id) => {
                    self.order.push_back((e.revision, false));
                    self.by_id.insert(id, e.revision);
                }
                // Nothing will say it is done: done now.
                None => {
                    self.order.push_back((e.revision, true));
                    self.advance(ctx);
                }
            }
            ctx.emit(datum);
        }
    }

    /// Moves `done_upto` over the events done in order; gives their room back.
    fn advance<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        while let Some(&(rev, true)) = self.order.front() {
            self.order.pop_front();
            self.done_upto = Some(rev);
            self.released += 1;
        }
        if self.released > 0 && !self.flush_queued {
            if ctx.enqueue(FLUSH).is_ok() {
                self.flush_queued = true;
            } else {
                self.flush();
            }
        }
    }

    /// Saves the last revision done (one record per turn at most) and
    /// gives the helper its room back.
    fn flush(&mut self) {
        if self.released > 0 {
            let n = std::mem::take(&mut self.released);
            self.send(Command::Release(n));
        }
        self.save(false);
    }

    fn save(&mut self, compact: bool) {
        let Some(rev) = self.done_upto else { return };
        if self.saved == Some(rev) && !compact {
            return;
        }
        let Some(store) = self.store.as_mut() else {
            self.saved = Some(rev);
            return;
        };
        let state = Saved {
            bucket: self.settings.bucket.clone(),
            revision: rev,
        };
        let result = if compact || self.logged >= COMPACT_EVERY {
            store.checkpoint(&state).map(|_| self.logged = 0)
        } else {
            store.log(&state).map(|_| self.logged += 1)
        };
        match result {
            Ok(()) => {
                self.saved = Some(rev);
                self.stats.saved_revision.set(rev);
                if std::mem::take(&mut self.store_failing) {
                    log::info!("kv_watch: revisions saved again");
                }
            }
            Err(e) => {
                self.stats.save_failures.add(1);
                if !std::mem::replace(&mut self.store_failing, true) {
                    log::error!(
                        "kv_watch: cannot save revision {rev}: {e}; trying again at the next (a restart now sees the updates after {} again)",
                        self.saved.unwrap_or(0)
                    );
                }
            }
        }
    }
}

impl<D: 'static> Cog<D> for KvWatchSupply<D> {
    fn role(&self) -> Role {
        Role::Supply
    }

    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let (tx, rx) = unbounded_channel();
        let remote = ctx.remote(REMOTE);
        let settings = self.settings.clone();
        let after = self.saved;
        match std::thread::Builder::new()
            .name("kv-watch".into())
            .spawn(move || helper(settings, after, rx, remote))
        {
            Ok(t) => {
                self.tx = Some(tx);
                self.thread = Some(t);
            }
            Err(e) => {
                log::error!("kv_watch: cannot start its thread: {e}");
                ctx.exhausted();
            }
        }
    }

    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }

    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        if key == FLUSH {
            self.flush_queued = false;
            return self.flush();
        }
        let Fired::Message(m) = fired else { return };
        let Ok(incoming) = m.downcast::<Incoming>() else { return };
        match *incoming {
            Incoming::Entries(batch) => {
                self.stats.received.add(batch.len() as u64);
                if self.finishing {
                    return;
                }
                self.backlog.extend(batch);
                if !self.waiting {
                    self.pump(ctx);
                }
            }
            Incoming::Fatal(why) => {
                log::error!("kv_watch: {why}; this supply stops");
                ctx.exhausted();
            }
        }
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        let Some(rev) = self.by_id.remove(&id) else { return };
        // Revisions go out in increasing order: found by bisection.
        if let Ok(i) = self.order.binary_search_by_key(&rev, |&(r, _)| r) {
            self.order[i].1 = true;
        }
        self.advance(ctx);
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        if let Some(rev) = self.by_id.remove(&old) {
            self.by_id.insert(new, rev);
        }
    }

    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if self.waiting && !ctx.congested() {
            self.waiting = false;
            self.pump(ctx);
        }
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, _: &mut Context<'_, D, N>) -> Finish {
        self.finishing = true;
        self.send(Command::Stop);
        // Not emitted: not saved either, so the next run sees them.
        self.backlog.clear();
        self.flush_queued = false;
        self.flush();
        Finish::Done
    }

    fn done(&mut self, _: &mut tourbillon::Core) {
        if !self.order.is_empty() {
            log::info!(
                "kv_watch: {} entries not done at the end: the next run sees them again",
                self.order.len()
            );
        }
        self.save(true);
        if let Some(store) = self.store.take() {
            if let Err(e) = store.close() {
                log::error!("kv_watch: cannot close its state store: {e}");
            }
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        write!(
            f,
            "kv_watch servers={} {} bucket={} keys={} deliver={:?} state_dir={} max_in_flight={}",
            s.servers.join(","),
            s.auth,
            s.bucket,
            s.keys,
            s.deliver,
            s.state_dir
                .as_ref()
                .map_or_else(|| "none".into(), |d| d.display().to_string()),
            s.max_in_flight
        )
    }
}

fn helper(settings: KvWatchSettings, after: Option<u64>, rx: UnboundedReceiver<Command>, remote: CogRemote) {
    let rt = match super::client::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = remote.send(Incoming::Fatal(format!("cannot start its runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(settings, after, rx, remote));
}

/// Opens a watch after revision `after`, or as `deliver` says; retries
/// while the server is away.
async fn watch(js: &async_nats::jetstream::Context, s: &KvWatchSettings, after: &mut Option<u64>) -> kv::Watch {
    let mut throttle = LogThrottle::new(Duration::from_secs(10));
    let mut backoff = super::client::Backoff::new();
    loop {
        let store = kv_bucket::bind(js, &s.bucket, &s.bucket_settings(), "kv_watch").await;
        let last = store.stream.cached_info().state.last_sequence;
        if let Some(a) = *after {
            if a > last {
                // The bucket was made again: its revisions start over.
                log::warn!(
                    "kv_watch: bucket {}: revision {a} saved, but the bucket's last is {last} (made again?): watching from its first",
                    s.bucket
                );
                *after = Some(0);
            }
        }
        let w = match (*after, s.deliver) {
            (Some(a), _) => store.watch_from_revision(&s.keys, a + 1).await,
            (None, KvDeliver::All) => store.watch_from_revision(&s.keys, 1).await,
            (None, KvDeliver::LastPerKey) => store.watch_with_history(&s.keys).await,
            (None, KvDeliver::New) => {
                // From the bucket's end now, so that a watch opened again
                // later misses nothing in between.
                *after = Some(last);
                store.watch_from_revision(&s.keys, last + 1).await
            }
        };
        match w {
            Ok(w) => return w,
            Err(e) => {
                if let Verdict::Log { held } = throttle.hit(std::time::Instant::now()) {
                    log::warn!(
                        "kv_watch: bucket {}: cannot watch: {e}; retrying{}",
                        s.bucket,
                        crate::Summary::note(held)
                    );
                }
            }
        }
        backoff.wait().await;
    }
}

async fn run(settings: KvWatchSettings, after: Option<u64>, mut rx: UnboundedReceiver<Command>, remote: CogRemote) {
    let client = match super::client::connect(&settings.servers, &settings.auth, &settings.name).await {
        Ok(c) => c,
        Err(e) => {
            let _ = remote.send(Incoming::Fatal(format!("cannot connect: {e}")));
            return;
        }
    };
    let js = async_nats::jetstream::new(client);
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let stop = Arc::new(tokio::sync::Notify::new());
    let reader = {
        let (permits, stop) = (Arc::clone(&permits), Arc::clone(&stop));
        tokio::task::spawn_local(async move {
            let mut after = after;
            let mut errors = LogThrottle::new(Duration::from_secs(10));
            'bind: loop {
                let mut w = tokio::select! {
                    w = watch(&js, &settings, &mut after) => w,
                    _ = stop.notified() => return,
                };
                loop {
                    let next = tokio::select! {
                        p = permits.acquire() => match p {
                            Ok(p) => { p.forget(); w.next() }
                            Err(_) => return,
                        },
                        _ = stop.notified() => return,
                    };
                    let first = tokio::select! {
                        m = next => m,
                        _ = stop.notified() => return,
                    };
                    let mut batch = Vec::new();
                    let mut item = first;
                    loop {
                        match item {
                            Some(Ok(e)) => {
                                after = Some(e.revision);
                                batch.push(e);
                            }
                            Some(Err(e)) => {
                                permits.add_permits(1);
                                if let Verdict::Log { held } = errors.hit(std::time::Instant::now()) {
                                    log::warn!(
                                        "kv_watch: bucket {}: {e}; watching again after revision {}{}",
                                        settings.bucket,
                                        after.unwrap_or(0),
                                        crate::Summary::note(held)
                                    );
                                }
                                if !batch.is_empty() && remote.send(Incoming::Entries(batch)).is_err() {
                                    return;
                                }
                                continue 'bind;
                            }
                            None => {
                                permits.add_permits(1);
                                if !batch.is_empty() && remote.send(Incoming::Entries(batch)).is_err() {
                                    return;
                                }
                                log::warn!(
                                    "kv_watch: bucket {}: the watch ended; watching again after revision {}",
                                    settings.bucket,
                                    after.unwrap_or(0)
                                );
                                continue 'bind;
                            }
                        }
                        if batch.len() >= 256 {
                            break;
                        }
                        let Ok(p) = permits.try_acquire() else { break };
                        match w.next().now_or_never() {
                            Some(m) => {
                                p.forget();
                                item = m;
                            }
                            None => break,
                        }
                    }
                    if remote.send(Incoming::Entries(batch)).is_err() {
                        return;
                    }
                }
            }
        })
    };
    while let Some(c) = rx.recv().await {
        match c {
            Command::Release(n) => permits.add_permits(n),
            Command::Stop => {
                stop.notify_one();
                permits.close();
            }
        }
    }
    stop.notify_one();
    reader.abort();
}
