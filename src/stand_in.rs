//! What takes a supply's place when a train is played back: a
//! [`StandIn`] that binds nothing, from whose place the escapement emits the
//! recorded data.

use std::fmt;

use crate::cog::{Cog, Finish};
use crate::context::{Context, Next};
use crate::core::Core;
use crate::event::EventId;
use crate::role::Role;
use crate::sources::Fired;

/// What a replay puts in the place of a supply: it renders as the supply
/// did, binds nothing, and passes on what reaches it from upstream; the
/// escapement emits the recorded data from its place.
#[derive(Debug)]
pub struct StandIn {
    text: String,
}

impl StandIn {
    /// The stand-in of a supply that renders as `text`.
    pub(crate) fn new(text: String) -> Self {
        StandIn { text }
    }
}

impl<D: 'static> Cog<D> for StandIn {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        ctx.emit(datum)
    }
    fn role(&self) -> Role {
        Role::Supply
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A cog of a replayed train: the cog itself, or a supply's stand-in.
#[derive(Debug)]
pub enum Swapped<C> {
    /// Not a supply: the cog runs as it would live.
    Live(C),
    /// A supply, replaced.
    StandIn(StandIn),
}

macro_rules! swapped {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            Swapped::Live($c) => $call,
            Swapped::StandIn($c) => $call,
        }
    };
}

impl<D: 'static, C: Cog<D>> Cog<D> for Swapped<C> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::process(c, datum, ctx))
    }
    fn start<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::start(c, ctx))
    }
    fn fire<N: Next<D> + ?Sized>(&mut self, key: u64, fired: Fired, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::fire(c, key, fired, ctx))
    }
    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::event_done(c, id, ctx))
    }
    fn events_done<N: Next<D> + ?Sized>(&mut self, ids: &[EventId], ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::events_done(c, ids, ctx))
    }
    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::event_rename(c, old, new, ctx))
    }
    fn resume<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) {
        swapped!(self, c => Cog::<D>::resume(c, ctx))
    }
    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        swapped!(self, c => Cog::<D>::finish(c, ctx))
    }
    fn done(&mut self, core: &mut Core) {
        swapped!(self, c => Cog::<D>::done(c, core))
    }
    fn congested(&self) -> bool {
        swapped!(self, c => Cog::<D>::congested(c))
    }
    fn role(&self) -> Role {
        swapped!(self, c => Cog::<D>::role(c))
    }
    fn outputs(&self) -> Vec<String> {
        swapped!(self, c => Cog::<D>::outputs(c))
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        swapped!(self, c => Cog::<D>::describe(c, f))
    }
}
