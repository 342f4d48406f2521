//! # tourbillon
//!
//! An event-loop runtime for daemons that process streams of events.
//!
//! One process has one [`Escapement`]: the event loop, over mio. It
//! multiplexes immediate events, fd readiness, inotify watches, POSIX
//! signals, timers and work handed in from other threads, and drives
//! [`Train`]s of [`Cog`]s. A cog takes one datum and yields none, one or
//! many; supplies bring data in, drains write it out. Cogs reach into data
//! only through [accessors](accessor), so one cog works on any data shape.
//!
//! Trains make a graph: a train may read another train's output instead of
//! (or as well as) having supplies of its own ([`Train::input`]), several
//! trains reading one output each get every datum, and a cog may send data
//! to named outputs ([`Cog::outputs`], [`Context::emit_to`]). A datum that
//! crossed to several trains is done where it came from only when every
//! copy is done ([`ledger`]); a congested train slows the trains feeding it
//! through a bounded queue ([`Core::queues`]).
//!
//! Shutdown follows the finish/done protocol: `finish` goes through each
//! train in order, a train after the trains it reads (every cog flushes
//! what it holds down the train and releases its bindings), then every cog
//! gets `done`, then [`Escapement::run`] returns.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tourbillon::{Cog, Context, Escapement, Next, Role, Train};
//!
//! /// A supply that emits 1..=n on the loop's first turn, then is exhausted.
//! struct Count(u64);
//! impl Cog<u64> for Count {
//!     fn role(&self) -> Role { Role::Supply }
//!     fn start<N: Next<u64> + ?Sized>(&mut self, ctx: &mut Context<'_, u64, N>) {
//!         ctx.enqueue(0).unwrap();
//!     }
//!     fn fire<N: Next<u64> + ?Sized>(&mut self, _: u64, _: tourbillon::Fired, ctx: &mut Context<'_, u64, N>) {
//!         for n in 1..=self.0 { ctx.emit(n) }
//!         ctx.exhausted();
//!     }
//!     fn process<N: Next<u64> + ?Sized>(&mut self, n: u64, ctx: &mut Context<'_, u64, N>) { ctx.emit(n) }
//! }
//!
//! # fn main() -> Result<(), tourbillon::Error> {
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let mut esc = Escapement::builder().graceful_signals(false).build()?;
//! esc.add_train(
//!     Train::new("demo")
//!         .cog(Count(5))
//!         .filter(|n| n % 2 == 1)
//!         .map(move |n| { sink.lock().unwrap().push(n); n }),
//! );
//! esc.run()?;
//! assert_eq!(*seen.lock().unwrap(), vec![1, 3, 5]);
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! The crate root holds what a cog author and a `main.rs` author use: the
//! [`Escapement`] and its [`Builder`], [`Train`], [`Cog`] and its
//! [`Context`], the closure helpers, [`Event`], the [`Store`], the ids of
//! bindings and [`Error`]. The public modules:
//!
//! - [`accessor`]: getters and setters that let a cog reach into any data shape.
//! - [`train`]: trains and their plumbing: the chains of cogs (static
//!   [`Link`](train::Link)s or a run-time [`DynChain`](train::DynChain)),
//!   what a train's cogs share, the broadcasts, a train's listing.
//! - [`sources`]: what a cog or closure binds to: fds, timers, signals,
//!   inotify watches (or polling), immediate events; and what fired.
//! - [`store`]: the state store durable cogs keep their checkpoints in.
//! - [`capture`]: capture a run's input and output, replay it on a virtual
//!   clock, compare runs. It sits on the kernel's recorder interface: the
//!   loop tells a recorder of trains, data, turns and the finish, and takes
//!   a playback's data in place of supplies; the kernel never names capture.
//! - [`ledger`]: the in-flight ledger: what a datum owes when it is done,
//!   through splits, merges, renames and fan-out (cogs and junctions).
//! - [`logging`]: the daemon's logger.
//!
//! Inside, lowest first: `token` (generational slabs), `event`, `ledger`,
//! `role`, `error`, `accessor`, `store`, `logging`, `sources`, `recorder`
//! (the recorder interface), `graph` (the junctions between trains: input
//! queues, outputs, the copies in flight), `core` (the loop's state and
//! closure bindings), `remote` (the cross-thread handles), `context` (a
//! cog's handle), `cog`, `stand_in` (what replaces a supply in a playback),
//! `train`, `escapement` (the loop; its `builder`, `junction`s, `finish`
//! protocol and `pacing`), then `capture`, which implements the recorder
//! interface.
#![warn(missing_docs, missing_debug_implementations)]

pub mod accessor;
pub mod capture;
mod cog;
mod context;
mod core;
mod error;
mod escapement;
mod event;
mod graph;
pub mod lazy;
pub mod ledger;
pub mod logging;
pub mod pool;
mod recorder;
mod remote;
mod role;
pub mod sources;
mod stand_in;
pub mod store;
mod token;
pub mod train;

pub use crate::accessor::{Getter, IdGetter, IdSetter, Setter};
pub use crate::cog::{from_iter, named, Cog, FilterFn, Finish, FlatMap, FromIter, Map, Named};
pub use crate::context::{Context, Next};
pub use crate::core::{Core, LoopGauges, Phase};
pub use crate::error::Error;
pub use crate::escapement::{Builder, Escapement, Exit};
pub use crate::event::{Event, EventId};
pub use crate::graph::{Output, QueueFill};
pub use crate::remote::{CogRemote, Remote};
pub use crate::role::Role;
pub use crate::sources::{CogAddr, FdId, Fired, ImmediateId, Ready, SignalId, TimerId, WatchEvent, WatchId};
pub use crate::store::{FsyncPolicy, Store, StoreError, StoreOptions};
pub use crate::train::{DynCog, Train};
pub use inotify::{EventMask, WatchMask};
pub use mio::Interest;

#[doc(hidden)]
pub use log as __log;

/// The README's examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
