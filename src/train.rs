//! Trains: ordered lists of cogs, composed at compile time (one static call
//! chain of [`Link`]s ending in [`End`]) or at run time ([`DynChain`] of
//! boxed cogs, for trains built from config); and their plumbing: what the
//! cogs of a train share ([`TrainShared`]), the [`Broadcast`]s, a train's
//! listing ([`CogInfo`]).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use crate::context::{DynContext, TrainShared};
pub use crate::core::Broadcast;
pub use crate::role::CogInfo;

use crate::accessor::IdGetter;
use crate::cog::{Cog, Described, FilterFn, Finish, FlatMap, Map};
use crate::context::{Context, Next};
use crate::core::Core;
use crate::event::EventId;
use crate::graph::{Gauge, Inlet, Reader};
use crate::recorder::Codec;
use crate::role::Role;
use crate::sources::Fired;
use crate::stand_in::{StandIn, Swapped};

/// What an input names (see [`Train::input`]): `TRAIN`, the end of that
/// train, or `TRAIN.OUTPUT`, one of its named outputs. A train's own name
/// wins over a split at the last dot, so a train may have a dot in its
/// name. `is_train` says whether a train of that name exists; the error is
/// the train name that does not.
///
/// ```
/// use tourbillon::train::split_input;
/// let trains = ["parse", "a.b"];
/// let known = |n: &str| trains.contains(&n);
/// assert_eq!(split_input("parse", known), Ok(("parse", None)));
/// assert_eq!(split_input("parse.errors", known), Ok(("parse", Some("errors"))));
/// assert_eq!(split_input("a.b", known), Ok(("a.b", None)));
/// assert_eq!(split_input("nope.x", known), Err("nope"));
/// ```
pub fn split_input(name: &str, is_train: impl Fn(&str) -> bool) -> Result<(&str, Option<&str>), &str> {
    if is_train(name) {
        return Ok((name, None));
    }
    match name.rsplit_once('.') {
        Some((train, output)) if is_train(train) => Ok((train, Some(output))),
        Some((train, _)) => Err(train),
        None => Err(name),
    }
}

/// The cogs of a train, as one chain. Implemented by [`Link`] / [`End`]
/// (static) and [`DynChain`] (run time); users go through [`Train`].
pub trait Chain<D>: Next<D> + 'static {
    /// This chain with `C` appended.
    type Append<C: Cog<D>>: Chain<D>;
    /// Appends a cog at position `index`.
    fn append<C: Cog<D>>(self, cog: C, index: u32) -> Self::Append<C>;
    /// This chain with every supply swapped for a [`StandIn`], for a replay.
    type Replayed: Chain<D>;
    /// Swaps every supply for a [`StandIn`] that renders as it did.
    fn replayed(self) -> Self::Replayed;
    /// Emits `datum` from the place of cog `index`, as if it had emitted it.
    fn inject(&mut self, index: u32, datum: D, core: &mut Core, train: &TrainShared<D>);
    /// Calls `start` on every cog, in order.
    fn start(&mut self, core: &mut Core, train: &TrainShared<D>);
    /// Routes a fired source to cog `index`.
    fn fire(&mut self, index: u32, key: u64, fired: Fired, core: &mut Core, train: &TrainShared<D>);
    /// Delivers a broadcast to every cog, in order.
    fn notify(&mut self, notice: Broadcast, core: &mut Core, train: &TrainShared<D>);
    /// Delivers `event_done` of each of `ids` (in order) to every cog, in
    /// order, as one [`Cog::events_done`] per cog.
    fn notify_done(&mut self, ids: &[EventId], core: &mut Core, train: &TrainShared<D>) {
        for &id in ids {
            self.notify(Broadcast::EventDone(id), core, train)
        }
    }
    /// Delivers `finish` to cog `index`.
    fn finish(&mut self, index: u32, core: &mut Core, train: &TrainShared<D>) -> Finish;
    /// Delivers `done` to every cog, in order.
    fn done(&mut self, core: &mut Core);
    /// Lists the cogs.
    fn describe(&self, out: &mut Vec<CogInfo>);
    /// Lists the named outputs the cogs declare, in order.
    fn outputs(&self, out: &mut Vec<String>);
}

/// The end of a chain: a datum that falls off it is finished.
#[derive(Debug, Default)]
pub struct End;

/// A cog followed by the rest of the chain.
#[derive(Debug)]
pub struct Link<C, R> {
    cog: C,
    index: u32,
    rest: R,
}

impl<D> Next<D> for End {
    /// A datum falls off the train: to the trains reading its main output,
    /// or done.
    #[inline]
    fn push(&mut self, datum: D, core: &mut Core, train: &TrainShared<D>) {
        train.send(0, datum, core)
    }
    fn congested(&self, train: &TrainShared<D>) -> bool {
        train.outputs_full()
    }
}

impl<D: 'static> Chain<D> for End {
    type Append<C: Cog<D>> = Link<C, End>;
    fn append<C: Cog<D>>(self, cog: C, index: u32) -> Link<C, End> {
        Link { cog, index, rest: End }
    }
    type Replayed = End;
    fn replayed(self) -> End {
        End
    }
    fn inject(&mut self, _: u32, _: D, _: &mut Core, _: &TrainShared<D>) {}
    fn start(&mut self, _: &mut Core, _: &TrainShared<D>) {}
    fn fire(&mut self, _: u32, _: u64, _: Fired, _: &mut Core, _: &TrainShared<D>) {}
    fn notify(&mut self, _: Broadcast, _: &mut Core, _: &TrainShared<D>) {}
    fn notify_done(&mut self, _: &[EventId], _: &mut Core, _: &TrainShared<D>) {}
    fn finish(&mut self, _: u32, _: &mut Core, _: &TrainShared<D>) -> Finish {
        Finish::Done
    }
    fn done(&mut self, _: &mut Core) {}
    fn describe(&self, _: &mut Vec<CogInfo>) {}
    fn outputs(&self, _: &mut Vec<String>) {}
}

impl<D, C: Cog<D>, R: Chain<D>> Next<D> for Link<C, R> {
    #[inline]
    fn push(&mut self, datum: D, core: &mut Core, train: &TrainShared<D>) {
        // `role` is a constant of the cog's type: this vanishes but at drains.
        if self.cog.role() == Role::Drain {
            if let Some(tap) = &train.tap {
                core.tap(tap, false, self.index, &datum, train.ids.as_ref());
            }
        }
        self.cog
            .process(datum, &mut Context::new(core, &mut self.rest, train, self.index))
    }
    fn congested(&self, train: &TrainShared<D>) -> bool {
        self.cog.congested() || self.rest.congested(train)
    }
}

/// Calls one broadcast on a cog.
fn deliver<D, C: Cog<D>, N: Next<D> + ?Sized>(cog: &mut C, notice: Broadcast, ctx: &mut Context<'_, D, N>) {
    match notice {
        Broadcast::EventDone(id) => cog.event_done(id, ctx),
        Broadcast::EventRename(old, new) => cog.event_rename(old, new, ctx),
        Broadcast::Resume => cog.resume(ctx),
    }
}

impl<D: 'static, C: Cog<D>, R: Chain<D>> Chain<D> for Link<C, R> {
    type Append<X: Cog<D>> = Link<C, R::Append<X>>;
    fn append<X: Cog<D>>(self, cog: X, index: u32) -> Self::Append<X> {
        Link {
            cog: self.cog,
            index: self.index,
            rest: self.rest.append(cog, index),
        }
    }
    type Replayed = Link<Swapped<C>, R::Replayed>;
    fn replayed(self) -> Self::Replayed {
        let cog = if self.cog.role() == Role::Supply {
            Swapped::StandIn(StandIn::new(Described(&self.cog, PhantomData::<D>).to_string()))
        } else {
            Swapped::Live(self.cog)
        };
        Link {
            cog,
            index: self.index,
            rest: self.rest.replayed(),
        }
    }
    fn inject(&mut self, index: u32, datum: D, core: &mut Core, train: &TrainShared<D>) {
        if index == self.index {
            Context::callback(core, &mut self.rest, train, self.index, true).emit(datum)
        } else {
            self.rest.inject(index, datum, core, train)
        }
    }
    fn start(&mut self, core: &mut Core, train: &TrainShared<D>) {
        let supply = self.cog.role() == Role::Supply;
        self.cog
            .start(&mut Context::callback(core, &mut self.rest, train, self.index, supply));
        self.rest.start(core, train)
    }
    fn fire(&mut self, index: u32, key: u64, fired: Fired, core: &mut Core, train: &TrainShared<D>) {
        if index == self.index {
            let supply = self.cog.role() == Role::Supply;
            let mut ctx = Context::callback(core, &mut self.rest, train, self.index, supply);
            self.cog.fire(key, fired, &mut ctx)
        } else {
            self.rest.fire(index, key, fired, core, train)
        }
    }
    fn notify(&mut self, notice: Broadcast, core: &mut Core, train: &TrainShared<D>) {
        let supply = self.cog.role() == Role::Supply;
        let mut ctx = Context::callback(core, &mut self.rest, train, self.index, supply);
        deliver(&mut self.cog, notice, &mut ctx);
        self.rest.notify(notice, core, train)
    }
    fn notify_done(&mut self, ids: &[EventId], core: &mut Core, train: &TrainShared<D>) {
        let supply = self.cog.role() == Role::Supply;
        let mut ctx = Context::callback(core, &mut self.rest, train, self.index, supply);
        self.cog.events_done(ids, &mut ctx);
        self.rest.notify_done(ids, core, train)
    }
    fn finish(&mut self, index: u32, core: &mut Core, train: &TrainShared<D>) -> Finish {
        if index == self.index {
            let supply = self.cog.role() == Role::Supply;
            self.cog
                .finish(&mut Context::callback(core, &mut self.rest, train, self.index, supply))
        } else {
            self.rest.finish(index, core, train)
        }
    }
    fn done(&mut self, core: &mut Core) {
        self.cog.done(core);
        self.rest.done(core)
    }
    fn describe(&self, out: &mut Vec<CogInfo>) {
        out.push(CogInfo {
            role: self.cog.role(),
            text: Described(&self.cog, PhantomData::<D>).to_string(),
        });
        self.rest.describe(out)
    }
    fn outputs(&self, out: &mut Vec<String>) {
        out.extend(self.cog.outputs());
        self.rest.outputs(out)
    }
}

/// A cog behind a pointer, for trains whose cogs are chosen at run time.
/// Every [`Cog`] is a `DynCog`.
pub trait DynCog<D>: 'static {
    /// [`Cog::process`].
    fn process_dyn(&mut self, datum: D, ctx: &mut DynContext<'_, D>);
    /// [`Cog::start`].
    fn start_dyn(&mut self, ctx: &mut DynContext<'_, D>);
    /// [`Cog::fire`].
    fn fire_dyn(&mut self, key: u64, fired: Fired, ctx: &mut DynContext<'_, D>);
    /// [`Cog::event_done`], [`Cog::event_rename`], [`Cog::resume`].
    fn notify_dyn(&mut self, notice: Broadcast, ctx: &mut DynContext<'_, D>);
    /// [`Cog::events_done`].
    fn events_done_dyn(&mut self, ids: &[EventId], ctx: &mut DynContext<'_, D>) {
        for &id in ids {
            self.notify_dyn(Broadcast::EventDone(id), ctx)
        }
    }
    /// [`Cog::finish`].
    fn finish_dyn(&mut self, ctx: &mut DynContext<'_, D>) -> Finish;
    /// [`Cog::done`].
    fn done_dyn(&mut self, core: &mut Core);
    /// [`Cog::congested`].
    fn congested_dyn(&self) -> bool;
    /// [`Cog::outputs`].
    fn outputs_dyn(&self) -> Vec<String>;
    /// [`Cog::role`].
    fn role_dyn(&self) -> Role;
    /// [`Cog::describe`].
    fn describe_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

impl<D, C: Cog<D>> DynCog<D> for C {
    fn process_dyn(&mut self, datum: D, ctx: &mut DynContext<'_, D>) {
        self.process(datum, ctx)
    }
    fn start_dyn(&mut self, ctx: &mut DynContext<'_, D>) {
        self.start(ctx)
    }
    fn fire_dyn(&mut self, key: u64, fired: Fired, ctx: &mut DynContext<'_, D>) {
        self.fire(key, fired, ctx)
    }
    fn notify_dyn(&mut self, notice: Broadcast, ctx: &mut DynContext<'_, D>) {
        deliver(self, notice, ctx)
    }
    fn events_done_dyn(&mut self, ids: &[EventId], ctx: &mut DynContext<'_, D>) {
        self.events_done(ids, ctx)
    }
    fn finish_dyn(&mut self, ctx: &mut DynContext<'_, D>) -> Finish {
        self.finish(ctx)
    }
    fn done_dyn(&mut self, core: &mut Core) {
        self.done(core)
    }
    fn congested_dyn(&self) -> bool {
        self.congested()
    }
    fn outputs_dyn(&self) -> Vec<String> {
        self.outputs()
    }
    fn role_dyn(&self) -> Role {
        self.role()
    }
    fn describe_dyn(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(f)
    }
}

/// The cogs of a train built at run time.
pub struct DynChain<D> {
    cogs: Vec<Box<dyn DynCog<D>>>,
}

impl<D> fmt::Debug for DynChain<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynChain({} cogs)", self.cogs.len())
    }
}

/// Renders a boxed cog through [`DynCog::describe_dyn`].
struct Show<'a, D>(&'a dyn DynCog<D>);

impl<D: 'static> fmt::Display for Show<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.describe_dyn(f)
    }
}

/// The cogs after position `index` of a [`DynChain`].
struct DynRest<'a, D> {
    cogs: &'a mut [Box<dyn DynCog<D>>],
    index: u32,
}

impl<D: 'static> DynRest<'_, D> {
    /// Splits off cog `index` and runs `f` on it with a context over the rest.
    fn with<R>(
        cogs: &mut [Box<dyn DynCog<D>>],
        index: u32,
        core: &mut Core,
        train: &TrainShared<D>,
        f: impl FnOnce(&mut dyn DynCog<D>, &mut DynContext<'_, D>) -> R,
    ) -> Option<R> {
        let (cog, rest) = cogs.get_mut(index as usize..)?.split_first_mut()?;
        let mut rest = DynRest {
            cogs: rest,
            index: index + 1,
        };
        let supply = train.tap.is_some() && cog.role_dyn() == Role::Supply;
        let mut ctx: DynContext<'_, D> = Context::callback(core, &mut rest, train, index, supply);
        Some(f(cog.as_mut(), &mut ctx))
    }
}

impl<D: 'static> Next<D> for DynRest<'_, D> {
    fn push(&mut self, datum: D, core: &mut Core, train: &TrainShared<D>) {
        match self.cogs.split_first_mut() {
            Some((cog, rest)) => {
                let mut rest = DynRest {
                    cogs: rest,
                    index: self.index + 1,
                };
                if let Some(tap) = &train.tap {
                    if cog.role_dyn() == Role::Drain {
                        core.tap(tap, false, self.index, &datum, train.ids.as_ref());
                    }
                }
                cog.process_dyn(datum, &mut Context::new(core, &mut rest, train, self.index))
            }
            None => End.push(datum, core, train),
        }
    }
    fn congested(&self, train: &TrainShared<D>) -> bool {
        self.cogs.iter().any(|c| c.congested_dyn()) || train.outputs_full()
    }
}

impl<D: 'static> Next<D> for DynChain<D> {
    fn push(&mut self, datum: D, core: &mut Core, train: &TrainShared<D>) {
        DynRest {
            cogs: &mut self.cogs,
            index: 0,
        }
        .push(datum, core, train)
    }
    fn congested(&self, train: &TrainShared<D>) -> bool {
        self.cogs.iter().any(|c| c.congested_dyn()) || train.outputs_full()
    }
}

impl<D: 'static> Chain<D> for DynChain<D> {
    type Append<C: Cog<D>> = DynChain<D>;
    fn append<C: Cog<D>>(mut self, cog: C, _: u32) -> DynChain<D> {
        self.cogs.push(Box::new(cog));
        self
    }
    type Replayed = DynChain<D>;
    fn replayed(mut self) -> DynChain<D> {
        for cog in &mut self.cogs {
            if cog.role_dyn() == Role::Supply {
                *cog = Box::new(StandIn::new(Show(cog.as_ref()).to_string()));
            }
        }
        self
    }
    fn inject(&mut self, index: u32, datum: D, core: &mut Core, train: &TrainShared<D>) {
        DynRest::with(&mut self.cogs, index, core, train, |_, ctx| ctx.emit(datum));
    }
    fn start(&mut self, core: &mut Core, train: &TrainShared<D>) {
        for i in 0..self.cogs.len() as u32 {
            DynRest::with(&mut self.cogs, i, core, train, |cog, ctx| cog.start_dyn(ctx));
        }
    }
    fn fire(&mut self, index: u32, key: u64, fired: Fired, core: &mut Core, train: &TrainShared<D>) {
        DynRest::with(&mut self.cogs, index, core, train, |cog, ctx| {
            cog.fire_dyn(key, fired, ctx)
        });
    }
    fn notify(&mut self, notice: Broadcast, core: &mut Core, train: &TrainShared<D>) {
        for i in 0..self.cogs.len() as u32 {
            DynRest::with(&mut self.cogs, i, core, train, |cog, ctx| cog.notify_dyn(notice, ctx));
        }
    }
    fn notify_done(&mut self, ids: &[EventId], core: &mut Core, train: &TrainShared<D>) {
        for i in 0..self.cogs.len() as u32 {
            DynRest::with(&mut self.cogs, i, core, train, |cog, ctx| cog.events_done_dyn(ids, ctx));
        }
    }
    fn finish(&mut self, index: u32, core: &mut Core, train: &TrainShared<D>) -> Finish {
        DynRest::with(&mut self.cogs, index, core, train, |cog, ctx| cog.finish_dyn(ctx)).unwrap_or(Finish::Done)
    }
    fn done(&mut self, core: &mut Core) {
        for cog in &mut self.cogs {
            cog.done_dyn(core)
        }
    }
    fn describe(&self, out: &mut Vec<CogInfo>) {
        for cog in &self.cogs {
            out.push(CogInfo {
                role: cog.role_dyn(),
                text: Show(cog.as_ref()).to_string(),
            })
        }
    }
    fn outputs(&self, out: &mut Vec<String>) {
        for cog in &self.cogs {
            out.extend(cog.outputs_dyn())
        }
    }
}

/// An ordered list of cogs through which data flows.
///
/// Built with [`Train::new`] and [`cog`](Train::cog) (or the closure
/// shorthands), each cog is a link of one static chain, so a datum passes
/// through the whole train by direct, inlinable calls. [`Train::dynamic`]
/// builds one from boxed cogs chosen at run time instead.
///
/// ```
/// use tourbillon::Train;
///
/// let train = Train::<u64>::new("numbers")
///     .filter(|n| n % 2 == 0)
///     .map(|n| n * 10)
///     .cog(|n: u64| (n < 1000).then_some(n));
/// assert_eq!(train.len(), 3);
/// println!("{train}");
/// ```
pub struct Train<D, C = End> {
    name: String,
    chain: C,
    ids: Option<IdGetter<D>>,
    codec: Option<Codec<D>>,
    len: u32,
    wiring: Wiring<D>,
}

/// Where a train takes its data from, besides its supplies.
pub(crate) struct Wiring<D> {
    /// Outputs of other trains it reads (`TRAIN` or `TRAIN.OUTPUT`).
    pub(crate) inputs: Vec<String>,
    /// Its input queue's capacity, if not the escapement's default.
    pub(crate) queue: Option<usize>,
    /// How a datum is copied for a second reader.
    pub(crate) clone: Option<fn(&D) -> D>,
}

impl<D> Default for Wiring<D> {
    fn default() -> Self {
        Wiring {
            inputs: Vec::new(),
            queue: None,
            clone: None,
        }
    }
}

impl<D: 'static> Train<D, End> {
    /// An empty train.
    pub fn new(name: impl Into<String>) -> Self {
        Train {
            name: name.into(),
            chain: End,
            ids: None,
            codec: None,
            len: 0,
            wiring: Wiring::default(),
        }
    }
}

impl<D: 'static> Train<D, DynChain<D>> {
    /// An empty train whose cogs are added at run time with [`push`](Self::push).
    pub fn dynamic(name: impl Into<String>) -> Self {
        Train {
            name: name.into(),
            chain: DynChain { cogs: Vec::new() },
            ids: None,
            codec: None,
            len: 0,
            wiring: Wiring::default(),
        }
    }

    /// Appends a boxed cog.
    pub fn push(&mut self, cog: Box<dyn DynCog<D>>) {
        self.chain.cogs.push(cog);
        self.len += 1;
    }
}

impl<D: 'static, C: Chain<D>> Train<D, C> {
    /// Appends a cog.
    pub fn cog<X: Cog<D>>(self, cog: X) -> Train<D, C::Append<X>> {
        Train {
            chain: self.chain.append(cog, self.len),
            name: self.name,
            ids: self.ids,
            codec: self.codec,
            len: self.len + 1,
            wiring: self.wiring,
        }
    }

    /// Appends a cog that maps every datum.
    pub fn map<F: FnMut(D) -> D + 'static>(self, f: F) -> Train<D, C::Append<Map<F>>> {
        self.cog(Map(f))
    }

    /// Appends a cog that keeps the data `f` accepts (the others are reported done).
    pub fn filter<F: FnMut(&D) -> bool + 'static>(self, f: F) -> Train<D, C::Append<FilterFn<F>>> {
        self.cog(FilterFn(f))
    }

    /// Appends a cog that yields any number of data per datum through `emit`.
    pub fn flat_map<F: FnMut(D, &mut dyn FnMut(D)) + 'static>(self, f: F) -> Train<D, C::Append<FlatMap<F>>> {
        self.cog(FlatMap(f))
    }

    /// Sets the id accessor: then data that leave the train (fall off its
    /// end, or are discarded) are broadcast as `event_done`.
    pub fn ids(mut self, ids: IdGetter<D>) -> Self {
        self.ids = Some(ids);
        self
    }

    pub(crate) fn take_ids(&mut self) -> Option<IdGetter<D>> {
        self.ids.take()
    }

    pub(crate) fn take_codec(&mut self) -> Option<Codec<D>> {
        self.codec.take()
    }

    /// This train with every supply swapped for a [`StandIn`].
    pub(crate) fn replayed(self) -> Train<D, C::Replayed> {
        Train {
            chain: self.chain.replayed(),
            name: self.name,
            ids: self.ids,
            codec: self.codec,
            len: self.len,
            wiring: self.wiring,
        }
    }

    /// The train's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How many cogs it has.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when it has no cog.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its cogs, in order, as they render themselves.
    pub fn cogs(&self) -> Vec<CogInfo> {
        let mut out = Vec::with_capacity(self.len as usize);
        self.chain.describe(&mut out);
        out
    }

    /// The named outputs its cogs declare (each once, in order); its main
    /// output, the end of the train, is not listed.
    pub fn outputs(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.chain.outputs(&mut out);
        let mut seen = std::collections::HashSet::new();
        out.retain(|o| seen.insert(o.clone()));
        out
    }

    /// The outputs of other trains it reads.
    pub fn inputs(&self) -> &[String] {
        &self.wiring.inputs
    }

    /// The capacity of its input queue (when it reads other trains): from
    /// there on the trains that feed it are congested. The default is the
    /// escapement's ([`Builder::queue_capacity`](crate::Builder::queue_capacity)).
    pub fn queue(mut self, capacity: usize) -> Self {
        self.wiring.queue = Some(capacity.max(1));
        self
    }

    pub(crate) fn take_wiring(&mut self) -> Wiring<D> {
        std::mem::take(&mut self.wiring)
    }
}

impl<D: Clone + 'static, C: Chain<D>> Train<D, C> {
    /// Reads another train's output: `"parse"` is what falls off the end
    /// of train `parse`, `"parse.errors"` its output named `errors` (a
    /// cog's, see [`Cog::outputs`]). Every train
    /// reading an output gets every datum sent there (a copy each, hence
    /// `Clone`); a train reading several outputs gets them all, in the
    /// order they come. A datum is done in the train that sent it once
    /// every copy is done. Names are resolved when the escapement runs:
    /// an unknown one, or a cycle, is an [`Error::Graph`](crate::Error::Graph).
    ///
    /// ```
    /// use std::cell::Cell;
    /// use std::rc::Rc;
    /// use tourbillon::{from_iter, Escapement, Train};
    /// # fn main() -> Result<(), tourbillon::Error> {
    /// let mut esc = Escapement::builder().graceful_signals(false).build()?;
    /// let (evens, all) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    /// let (e, a) = (evens.clone(), all.clone());
    /// esc.add_train(Train::<u64>::new("numbers").cog(from_iter(1..=10)));
    /// esc.add_train(Train::<u64>::new("evens").input("numbers").filter(|n| n % 2 == 0).map(move |n| { e.set(e.get() + 1); n }));
    /// esc.add_train(Train::<u64>::new("all").input("numbers").map(move |n| { a.set(a.get() + 1); n }));
    /// esc.run()?;
    /// assert_eq!((evens.get(), all.get()), (5, 10));
    /// # Ok(()) }
    /// ```
    pub fn input(mut self, output: impl Into<String>) -> Self {
        self.wiring.inputs.push(output.into());
        self.wiring.clone = Some(|d: &D| d.clone());
        self
    }
}

impl<D: Serialize + DeserializeOwned + 'static, C: Chain<D>> Train<D, C> {
    /// Lets the escapement [capture](crate::capture) this train (what its
    /// supplies emit, what reaches its drains) and replay it: in an
    /// escapement built with [`Builder::replay`](crate::Builder::replay),
    /// its supplies are swapped for the capture. Without either, this
    /// changes nothing.
    pub fn capturable(mut self) -> Self {
        self.codec = Some(Codec::new());
        self
    }
}

impl<D: 'static, C: Chain<D>> fmt::Display for Train<D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "train {}:", self.name)?;
        if !self.wiring.inputs.is_empty() {
            writeln!(f, "  reads {}", self.wiring.inputs.join(", "))?;
        }
        for (i, cog) in self.cogs().iter().enumerate() {
            writeln!(f, "  {:>2}. {:<6}  {}", i + 1, cog.role, cog.text)?;
        }
        Ok(())
    }
}

impl<D: 'static, C: Chain<D>> fmt::Debug for Train<D, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Train")
            .field("name", &self.name)
            .field("cogs", &self.cogs())
            .finish()
    }
}

/// A train with its data type erased, as the escapement holds it.
pub(crate) trait AnyTrain {
    fn name(&self) -> &str;
    fn len(&self) -> u32;
    fn listing(&self) -> String;
    fn cogs(&self) -> Vec<CogInfo>;
    fn start(&mut self, core: &mut Core);
    fn fire(&mut self, cog: u32, key: u64, fired: Fired, core: &mut Core);
    fn notify(&mut self, notice: Broadcast, core: &mut Core);
    /// `event_done` of each of `ids`, in order, one batch per cog.
    fn notify_done(&mut self, ids: &[EventId], core: &mut Core);
    fn finish(&mut self, cog: u32, core: &mut Core) -> Finish;
    fn done(&mut self, core: &mut Core);
    /// Decodes a captured datum and emits it from the place of cog `cog`.
    fn inject(&mut self, cog: u32, json: &[u8], core: &mut Core) -> serde_json::Result<()>;
    /// The outputs of other trains it reads.
    fn inputs(&self) -> &[String];
    /// Its outputs: the main one (`""`) first, then the named ones.
    fn output_names(&self) -> Vec<String>;
    /// Gives it an input queue (once); a handle to it, for the trains it
    /// reads ([`attach`](Self::attach)), as a `Box<Feed<D>>`.
    fn feed(&mut self, capacity: usize) -> Box<dyn Any>;
    /// Makes `feed` (another train's [`feed`](Self::feed)) a reader of
    /// output `output`; false if its data type is not this train's.
    fn attach(&mut self, output: usize, feed: Box<dyn Any>) -> bool;
    /// Moves up to `budget` data from its input queue into the train,
    /// while it is not congested; true if some are left that it could take.
    fn pump(&mut self, core: &mut Core, budget: usize) -> bool;
    /// True if nothing waits in its input queue.
    fn drained(&self) -> bool;
    /// Its input queue's counters, if it has one.
    fn gauge(&self) -> Option<Rc<Gauge>>;
    /// How many trains read output `output`.
    fn readers(&self, output: usize) -> usize;
    /// Marks output `output` as read by one train that reads nothing else.
    fn set_exclusive(&mut self, output: usize, exclusive: bool);
}

/// What a reading train hands the trains it reads: its way in and how to
/// copy a datum.
pub(crate) struct Feed<D> {
    reader: Reader<D>,
    clone: Option<fn(&D) -> D>,
}

/// A train's cogs and what they share: what a datum sent to the train
/// goes through, reached from the escapement and, directly, from the trains
/// it reads.
pub(crate) struct Body<D, C> {
    train: Train<D, C>,
    shared: TrainShared<D>,
}

/// The way into a train for the trains it reads, its type erased.
pub(crate) trait Entry<D> {
    /// Sends `datum` down the train from its start, unless a cog of the
    /// train, or a train it feeds, is congested: then it is handed back.
    fn offer(&mut self, datum: D, core: &mut Core) -> Option<D>;
}

impl<D: 'static, C: Chain<D>> Body<D, C> {
    #[inline]
    fn take(&mut self, datum: D, core: &mut Core) {
        self.train.chain.push(datum, core, &self.shared)
    }
    #[inline]
    fn busy(&self) -> bool {
        self.train.chain.congested(&self.shared)
    }
}

impl<D: 'static, C: Chain<D>> Entry<D> for Body<D, C> {
    fn offer(&mut self, datum: D, core: &mut Core) -> Option<D> {
        if self.busy() {
            return Some(datum);
        }
        self.take(datum, core);
        None
    }
}

/// A train placed in an escapement.
pub(crate) struct Placed<D, C> {
    name: String,
    len: u32,
    index: u32,
    body: Rc<RefCell<Body<D, C>>>,
    codec: Option<Codec<D>>,
    wiring: Wiring<D>,
    inlet: Option<Inlet<D>>,
}

impl<D: 'static, C: Chain<D>> Placed<D, C> {
    pub(crate) fn new(train: Train<D, C>, shared: TrainShared<D>, codec: Option<Codec<D>>, wiring: Wiring<D>) -> Self {
        Placed {
            name: train.name.clone(),
            len: train.len,
            index: shared.index,
            body: Rc::new(RefCell::new(Body { train, shared })),
            codec,
            wiring,
            inlet: None,
        }
    }
}

impl<D: 'static, C: Chain<D>> AnyTrain for Placed<D, C> {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u32 {
        self.len
    }
    fn listing(&self) -> String {
        let body = self.body.borrow();
        let mut text = body.train.to_string();
        if !self.wiring.inputs.is_empty() {
            let at = text.find('\n').map_or(text.len(), |i| i + 1);
            text.insert_str(at, &format!("  reads {}\n", self.wiring.inputs.join(", ")));
        }
        text
    }
    fn cogs(&self) -> Vec<CogInfo> {
        self.body.borrow().train.cogs()
    }
    fn start(&mut self, core: &mut Core) {
        let body = &mut *self.body.borrow_mut();
        body.train.chain.start(core, &body.shared)
    }
    fn fire(&mut self, cog: u32, key: u64, fired: Fired, core: &mut Core) {
        let body = &mut *self.body.borrow_mut();
        body.train.chain.fire(cog, key, fired, core, &body.shared)
    }
    fn notify(&mut self, notice: Broadcast, core: &mut Core) {
        let body = &mut *self.body.borrow_mut();
        body.train.chain.notify(notice, core, &body.shared)
    }
    fn notify_done(&mut self, ids: &[EventId], core: &mut Core) {
        let body = &mut *self.body.borrow_mut();
        body.train.chain.notify_done(ids, core, &body.shared)
    }
    fn finish(&mut self, cog: u32, core: &mut Core) -> Finish {
        let body = &mut *self.body.borrow_mut();
        body.train.chain.finish(cog, core, &body.shared)
    }
    fn done(&mut self, core: &mut Core) {
        self.body.borrow_mut().train.chain.done(core)
    }
    fn inject(&mut self, cog: u32, json: &[u8], core: &mut Core) -> serde_json::Result<()> {
        if let Some(codec) = self.codec {
            let datum = (codec.decode)(json)?;
            let body = &mut *self.body.borrow_mut();
            body.train.chain.inject(cog, datum, core, &body.shared);
        }
        Ok(())
    }
    fn inputs(&self) -> &[String] {
        &self.wiring.inputs
    }
    fn output_names(&self) -> Vec<String> {
        self.body
            .borrow()
            .shared
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .collect()
    }
    fn feed(&mut self, capacity: usize) -> Box<dyn Any> {
        let capacity = self.wiring.queue.unwrap_or(capacity);
        let name = self.name.clone();
        let inlet = self.inlet.get_or_insert_with(|| Inlet::new(name, capacity)).clone();
        let entry: Rc<RefCell<dyn Entry<D>>> = self.body.clone();
        Box::new(Feed {
            reader: Reader {
                train: self.index,
                inlet,
                entry,
            },
            clone: self.wiring.clone,
        })
    }
    fn attach(&mut self, output: usize, feed: Box<dyn Any>) -> bool {
        let Ok(feed) = feed.downcast::<Feed<D>>() else {
            return false;
        };
        let shared = &mut self.body.borrow_mut().shared;
        let Some(out) = shared.outputs.get_mut(output) else {
            return false;
        };
        feed.reader.inlet.fed_by(self.index);
        out.readers.push(feed.reader);
        shared.read = true;
        shared.clone = shared.clone.or(feed.clone);
        true
    }
    fn pump(&mut self, core: &mut Core, budget: usize) -> bool {
        let Some(inlet) = &self.inlet else { return false };
        let body = &mut *self.body.borrow_mut();
        for _ in 0..budget {
            if body.busy() {
                return false;
            }
            let Some(datum) = inlet.pop(&mut core.notices) else {
                return false;
            };
            body.take(datum, core);
        }
        !inlet.is_empty()
    }
    fn drained(&self) -> bool {
        self.inlet.as_ref().map_or(true, |i| i.is_empty())
    }
    fn gauge(&self) -> Option<Rc<Gauge>> {
        self.inlet.as_ref().map(|i| i.gauge.clone())
    }
    fn readers(&self, output: usize) -> usize {
        self.body
            .borrow()
            .shared
            .outputs
            .get(output)
            .map_or(0, |o| o.readers.len())
    }
    fn set_exclusive(&mut self, output: usize, exclusive: bool) {
        if let Some(o) = self.body.borrow_mut().shared.outputs.get_mut(output) {
            o.exclusive = exclusive;
        }
    }
}
