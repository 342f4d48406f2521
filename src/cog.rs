//! Cogs: what a train is made of.

use std::fmt;

use crate::context::{Context, Next};
use crate::core::Core;
use crate::event::EventId;
use crate::role::Role;
use crate::sources::Fired;

/// How a cog answers `finish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Everything is flushed down the train and released: go on with the next cog.
    Done,
    /// Work is still in flight (bytes to write, acks to wait for); the cog
    /// calls [`Context::finished`] when it is through. The bindings it holds
    /// stay until then (new ones are refused); the finish deadline bounds
    /// the wait, and the cogs after it get `finish` only once it is through.
    Pending,
}

/// One gear of a train: takes one datum and yields none, one or many through
/// [`Context::emit`], and may bind to loop events through its [`Context`].
///
/// Every method but [`process`](Cog::process) has a default that does
/// nothing, so a cog implements only the broadcasts it handles. Methods are
/// generic over what follows the cog (`N`) so that a train built at compile
/// time is one static call chain the compiler can inline; the same cog also
/// works in a train built at run time (see [`DynCog`](crate::DynCog)).
///
/// A plain closure `FnMut(D) -> Option<D>` is a cog.
///
/// ```
/// use tourbillon::{Cog, Context, Next};
///
/// /// Doubles every number, and says so when printed.
/// struct Double;
///
/// impl Cog<u64> for Double {
///     fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, ctx: &mut Context<'_, u64, N>) {
///         ctx.emit(n * 2)
///     }
///     fn describe(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("double")
///     }
/// }
/// ```
pub trait Cog<D>: 'static {
    /// Takes one datum; yields through `ctx.emit`, or drops with `ctx.discard`.
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>);

    /// Called once, in train order, when the loop starts: bind sources here.
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let _ = ctx;
    }

    /// A source this cog bound fired; `key` is what the cog gave when binding.
    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        let _ = (key, fired, ctx);
    }

    /// Broadcast: event `id` is finished (written by a drain, or dropped).
    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        let _ = (id, ctx);
    }

    /// Broadcast: the events `ids` are finished, in this order: the
    /// runtime hands the `event_done`s that follow one another in a train
    /// to each cog at once. The default calls
    /// [`event_done`](Cog::event_done) for each; a cog that acts once per
    /// batch (moves a checkpoint, acks upstream) overrides this to do it
    /// once. A rename, or any other broadcast, between two dones splits
    /// the batch, so it is seen between them.
    fn events_done<N: Next<D> + ?Sized>(&mut self, ids: &[EventId], ctx: &mut Context<'_, D, N>) {
        for &id in ids {
            self.event_done(id, ctx)
        }
    }

    /// Broadcast: event `old` lives on as `new` (merged or split).
    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, ctx: &mut Context<'_, D, N>) {
        let _ = (old, new, ctx);
    }

    /// Broadcast: a congested cog downstream has room again.
    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        let _ = ctx;
    }

    /// Flush what you hold down the train and release your bindings. From
    /// this call on, new bindings are refused ([`Error::Finishing`](crate::Error::Finishing));
    /// what the cog holds stays usable while it answers [`Finish::Pending`],
    /// and the runtime releases it all once the cog is through.
    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        let _ = ctx;
        Finish::Done
    }

    /// The last call a cog gets, after every cog of every train finished.
    fn done(&mut self, core: &mut Core) {
        let _ = core;
    }

    /// True while this cog cannot take more data; supplies stop reading and
    /// wait for `resume`. Never drop data instead.
    fn congested(&self) -> bool {
        false
    }

    /// What this cog is for.
    fn role(&self) -> Role {
        Role::Step
    }

    /// The named outputs this cog sends data to with
    /// [`Context::emit_to`] (a route's branches, a decoder's errors):
    /// other trains read them as `TRAIN.NAME`. Asked once, when the train
    /// is placed.
    fn outputs(&self) -> Vec<String> {
        Vec::new()
    }

    /// Renders the cog with its settings, for `Display` of a train.
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(short_type_name::<Self>())
    }
}

/// `std::any::type_name` without the module paths.
pub(crate) fn short_type_name<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    match base.rfind("::") {
        Some(i) => &full[i + 2..],
        None => full,
    }
}

impl<D: 'static, F> Cog<D> for F
where
    F: FnMut(D) -> Option<D> + 'static,
{
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let id = ctx.id_of(&datum);
        match self(datum) {
            Some(d) => ctx.emit(d),
            None => {
                if let Some(id) = id {
                    ctx.event_done(id)
                }
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closure")
    }
}

/// Renders a cog through [`Cog::describe`].
pub(crate) struct Described<'a, D, C: ?Sized>(pub(crate) &'a C, pub(crate) std::marker::PhantomData<D>);

impl<D, C: Cog<D>> fmt::Display for Described<'_, D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe(f)
    }
}

/// A cog with a name of your choosing in the train's listing.
#[derive(Debug)]
pub struct Named<C> {
    name: String,
    cog: C,
}

/// Gives `cog` a name for the train's listing (closures print as `closure`).
pub fn named<C>(name: impl Into<String>, cog: C) -> Named<C> {
    Named { name: name.into(), cog }
}

impl<D: 'static, C: Cog<D>> Cog<D> for Named<C> {
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        self.cog.process(datum, ctx)
    }
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.cog.start(ctx)
    }
    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        self.cog.fire(key, fired, ctx)
    }
    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        self.cog.event_done(id, ctx)
    }
    fn events_done<N: Next<D> + ?Sized>(&mut self, ids: &[EventId], ctx: &mut Context<'_, D, N>) {
        self.cog.events_done(ids, ctx)
    }
    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, ctx: &mut Context<'_, D, N>) {
        self.cog.event_rename(old, new, ctx)
    }
    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.cog.resume(ctx)
    }
    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        self.cog.finish(ctx)
    }
    fn done(&mut self, core: &mut Core) {
        self.cog.done(core)
    }
    fn congested(&self) -> bool {
        self.cog.congested()
    }
    fn role(&self) -> Role {
        self.cog.role()
    }
    fn outputs(&self) -> Vec<String> {
        self.cog.outputs()
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Applies a function to every datum.
pub struct Map<F>(pub(crate) F);
/// Keeps the data a predicate accepts; the others are reported done.
pub struct FilterFn<F>(pub(crate) F);
/// Yields any number of data for each datum.
pub struct FlatMap<F>(pub(crate) F);

impl<F> fmt::Debug for Map<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("map")
    }
}
impl<F> fmt::Debug for FilterFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("filter")
    }
}
impl<F> fmt::Debug for FlatMap<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flat_map")
    }
}

impl<D: 'static, F: FnMut(D) -> D + 'static> Cog<D> for Map<F> {
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit((self.0)(datum))
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("map")
    }
}

impl<D: 'static, F: FnMut(&D) -> bool + 'static> Cog<D> for FilterFn<F> {
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        if (self.0)(&datum) {
            ctx.emit(datum)
        } else {
            ctx.discard(&datum)
        }
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("filter")
    }
}

impl<D: 'static, F: FnMut(D, &mut dyn FnMut(D)) + 'static> Cog<D> for FlatMap<F> {
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let id = ctx.id_of(&datum);
        let mut yielded = false;
        (self.0)(datum, &mut |d| {
            yielded = true;
            ctx.emit(d)
        });
        if let (false, Some(id)) = (yielded, id) {
            ctx.event_done(id)
        }
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("flat_map")
    }
}

/// A supply that emits the items of an iterator, a batch per loop turn, then
/// says it is exhausted. Made by [`from_iter`].
pub struct FromIter<I> {
    items: I,
    batch: usize,
    emitted: u64,
    waiting: bool,
}

/// A supply over any iterator: it emits up to 1024 items per loop turn (so
/// timers, signals and fds are served in between), pauses while the train is
/// congested, and reports itself exhausted at the end, which lets the
/// escapement finish when it is the last supply.
///
/// ```
/// use tourbillon::{from_iter, Escapement, Train};
/// # fn main() -> Result<(), tourbillon::Error> {
/// let mut esc = Escapement::builder().graceful_signals(false).build()?;
/// let mut sum = 0;
/// esc.add_train(Train::new("sum").cog(from_iter(1..=100u64)).map(move |n| { sum += n; n }));
/// esc.run()?;
/// # Ok(()) }
/// ```
pub fn from_iter<I: IntoIterator>(items: I) -> FromIter<I::IntoIter> {
    FromIter {
        items: items.into_iter(),
        batch: 1024,
        emitted: 0,
        waiting: false,
    }
}

impl<I> FromIter<I> {
    /// Sets how many items go out per loop turn (at least one).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    fn schedule<D, N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if ctx.enqueue(0).is_err() {
            // The escapement is finishing: nothing more goes out.
            ctx.exhausted();
        }
    }
}

impl<I> fmt::Debug for FromIter<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FromIter")
            .field("batch", &self.batch)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl<D: 'static, I: Iterator<Item = D> + 'static> Cog<D> for FromIter<I> {
    fn role(&self) -> Role {
        Role::Supply
    }
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        self.schedule(ctx)
    }
    fn fire<N: Next<D> + ?Sized>(&mut self, _: u64, _: Fired, ctx: &mut Context<'_, D, N>) {
        for _ in 0..self.batch {
            if ctx.congested() {
                self.waiting = true;
                return;
            }
            match self.items.next() {
                Some(d) => {
                    self.emitted += 1;
                    ctx.emit(d)
                }
                None => return ctx.exhausted(),
            }
        }
        self.schedule(ctx)
    }
    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        if std::mem::take(&mut self.waiting) {
            self.schedule(ctx)
        }
    }
    #[inline]
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from_iter (batch {})", self.batch)
    }
}
