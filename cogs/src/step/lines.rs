//! The `lines` step: splits the bytes of each datum it gets into lines
//! with a [`LineSplitter`] and emits one datum per line, done upstream only
//! when every line cut from it is done.

use std::fmt;
use std::time::Duration;

use tourbillon::accessor::Getter;
use tourbillon::{Cog, Context, Event, EventId, Finish, Next, Role};

use crate::ledger::{Ledger, Ticket};
use crate::meter::{Meter, Metered};
use crate::splitter::{CutLog, LineFlags, LineSplitter, LinesSettings};
use crate::{Counter, Error};

/// One line the [`Lines`] cog hands to its maker.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// The line, without its ending.
    pub bytes: &'a [u8],
    /// A fresh id for the datum made from it.
    pub id: EventId,
    /// Its number in the stream this cog splits, from 1.
    pub number: u64,
    /// What is special about it.
    pub flags: LineFlags,
}

type Maker<D> = Box<dyn FnMut(&D, Line<'_>) -> D>;

/// Splits the bytes of each datum into lines and emits one datum per line.
///
/// The bytes come from a [`Getter`] (for [`Event`]: its `raw` bytes); each
/// line becomes a datum through a maker closure, given the datum the line
/// came from and the [`Line`] (for [`Event`]: a new event with the line as
/// `raw`, the parent's `origin`, the line number and a fresh id). The data
/// this cog gets are one stream: a line may begin in one datum and end in a
/// later one. The line still open at finish is emitted then.
///
/// **Acknowledgement.** A datum that comes in is finished (reported
/// `event_done`) only once every line cut from it is finished downstream —
/// including a line it only began, which finishes with the datum that ends
/// it. The cog counts each parent's lines in flight and follows
/// `event_done` / `event_rename` of the lines. Renaming the parent to its
/// last line instead would be cheaper but wrong: it reports the parent done
/// when its last line is, while earlier lines may still be held by a cog
/// that does not finish data in order (a batcher, a second drain). Without an
/// id accessor on the train nothing is tracked.
pub struct Lines<D = Event> {
    splitter: LineSplitter,
    bytes: Getter<D, [u8]>,
    make: Maker<D>,
    /// The last datum whose bytes are in the held partial line: what the
    /// line still open at finish is made from.
    template: Option<D>,
    acks: Acks,
    stats: LinesStats,
    place: Place<D>,
    cuts: CutLog,
    meter: Meter,
}

type Place<D> = Box<dyn Fn(&D, u64) -> String>;

/// Counters of a [`Lines`] cog, readable while it runs.
#[derive(Clone, Debug, Default)]
pub struct LinesStats {
    /// Lines emitted.
    pub lines: Counter,
    /// Lines emitted truncated.
    pub truncated: Counter,
    /// Bytes dropped from the ends of lines that were too long.
    pub discarded_bytes: Counter,
    /// Lines whose invalid UTF-8 was replaced.
    pub replaced: Counter,
}

impl<D> fmt::Debug for Lines<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lines")
            .field("source", &self.bytes)
            .field("splitter", &self.splitter)
            .finish_non_exhaustive()
    }
}

impl Lines<Event> {
    /// Splits the `raw` bytes of events into events, one per line.
    pub fn new(settings: LinesSettings) -> Result<Self, Error> {
        Lines::with(
            settings,
            Getter::<Event, [u8]>::raw(),
            |parent: &Event, line: Line<'_>| {
                Event::from_raw(line.id, line.bytes.to_vec(), parent.origin.clone(), line.number)
            },
        )
        .map(|lines| {
            lines.place(|parent: &Event, n| match &parent.origin {
                Some(o) => format!("{o}:{n}"),
                None => format!("line {n}"),
            })
        })
    }
}

impl<D: 'static> Lines<D> {
    /// Splits the bytes `bytes` reads; `make` builds the datum of each line
    /// from the datum the line came from. It should give the new datum the
    /// line's [`id`](Line::id).
    pub fn with(
        settings: LinesSettings,
        bytes: Getter<D, [u8]>,
        make: impl FnMut(&D, Line<'_>) -> D + 'static,
    ) -> Result<Self, Error> {
        Ok(Lines {
            splitter: LineSplitter::new(&settings)?,
            bytes,
            make: Box::new(make),
            template: None,
            acks: Acks::default(),
            stats: LinesStats::default(),
            place: Box::new(|_, n| format!("line {n}")),
            cuts: CutLog::new(Duration::from_secs(10), settings.max_line_bytes),
            meter: Meter::default(),
        })
    }

    /// How log lines about a cut line name it, from the datum it came
    /// from and its line number (default: `line N`).
    pub fn place(mut self, place: impl Fn(&D, u64) -> String + 'static) -> Self {
        self.place = Box::new(place);
        self
    }

    /// Its counters, shared: read them while the train runs.
    pub fn stats(&self) -> LinesStats {
        self.stats.clone()
    }

    fn update_stats(&self) {
        let s = &self.splitter;
        self.stats.lines.set(s.lines());
        self.stats.truncated.set(s.truncated());
        self.stats.discarded_bytes.set(s.discarded_bytes());
        self.stats.replaced.set(s.replaced());
    }
}

impl<D: 'static> Cog<D> for Lines<D> {
    fn process<N: Next<D> + ?Sized>(&mut self, datum: D, ctx: &mut Context<'_, D, N>) {
        let parent = ctx.id_of(&datum);
        let now = ctx.now();
        let Lines {
            splitter,
            bytes,
            make,
            acks,
            place,
            cuts,
            meter,
            ..
        } = self;
        // Held while splitting, so lines finished meanwhile cannot
        // finish the parent before all its lines are out.
        let ticket = parent.map(|p| acks.hold(p));
        let chunk = bytes.get(&datum).unwrap_or_default();
        meter.took(chunk.len());
        // The first line out continues what earlier data left held.
        let mut continues = splitter.partial_len() > 0;
        let mut number = splitter.lines();
        splitter.push(chunk, |bytes, flags| {
            let id = ctx.next_event_id();
            number += 1;
            if flags.truncated {
                cuts.note(place(&datum, number), bytes.len(), flags, now);
            }
            let child = make(
                &datum,
                Line {
                    bytes,
                    id,
                    number,
                    flags,
                },
            );
            if let Some(t) = ticket {
                acks.line(id, t, std::mem::take(&mut continues));
            }
            meter.emit(child, ctx);
        });
        let contributes = !chunk.is_empty() && splitter.partial_len() > 0;
        if let Some(t) = ticket {
            if contributes {
                acks.hold_partial(t);
            }
            if let Some(p) = acks.release(t) {
                ctx.event_done(p);
            }
        }
        if contributes {
            self.template = Some(datum);
        } else if self.splitter.partial_len() == 0 {
            self.template = None;
        }
        self.update_stats();
    }

    fn event_done<N: Next<D> + ?Sized>(&mut self, id: EventId, ctx: &mut Context<'_, D, N>) {
        self.acks.done(id, |p| ctx.event_done(p));
    }

    fn event_rename<N: Next<D> + ?Sized>(&mut self, old: EventId, new: EventId, _: &mut Context<'_, D, N>) {
        self.acks.rename(old, new);
    }

    fn finish<N: Next<D> + ?Sized>(&mut self, ctx: &mut Context<'_, D, N>) -> Finish {
        let Lines {
            splitter,
            make,
            acks,
            template,
            meter,
            ..
        } = self;
        if let Some(parent) = template.take() {
            let number = splitter.lines() + 1;
            splitter.take_partial(|bytes, flags| {
                let id = ctx.next_event_id();
                let child = make(
                    &parent,
                    Line {
                        bytes,
                        id,
                        number,
                        flags,
                    },
                );
                acks.held_line(id);
                meter.emit(child, ctx);
            });
        }
        self.cuts.flush(ctx.now());
        self.update_stats();
        Finish::Done
    }

    fn role(&self) -> Role {
        Role::Step
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lines source={} {}", self.bytes, self.splitter.settings())
    }
}

/// Which parents each line in flight finishes: a parent is a payload of
/// the [`Ledger`], owed by each line cut from it, held while it is being
/// split and while its bytes are in the held partial line.
#[derive(Debug, Default)]
struct Acks {
    ledger: Ledger<EventId>,
    /// Parents whose bytes are in the held partial line.
    held: Vec<Ticket>,
}

impl Acks {
    /// Parent `p` is being split: held until [`release`](Acks::release).
    fn hold(&mut self, p: EventId) -> Ticket {
        self.ledger.open(p)
    }

    /// Line `id` was cut from parent `t`; if it `continues` the held
    /// partial line, the parents held there now wait for it instead.
    fn line(&mut self, id: EventId, t: Ticket, continues: bool) {
        if continues {
            self.held_line(id);
        }
        self.ledger.attach(id, t);
    }

    /// Parent `t`'s last bytes are held in the partial line.
    fn hold_partial(&mut self, t: Ticket) {
        self.ledger.hold(t);
        self.held.push(t);
    }

    /// Line `id` is the held partial line (ended, or taken out at finish):
    /// the parents held there wait for it.
    fn held_line(&mut self, id: EventId) {
        for t in std::mem::take(&mut self.held) {
            self.ledger.attach(id, t);
            // Owed by the line now, so never the last reference.
            let none = self.ledger.release(t);
            debug_assert!(none.is_none());
        }
    }

    /// Drops the hold on parent `t`; the parent if it is done.
    fn release(&mut self, t: Ticket) -> Option<EventId> {
        self.ledger.release(t)
    }

    /// Line `id` is done: calls `finished` with each parent that is now done.
    fn done(&mut self, id: EventId, finished: impl FnMut(EventId)) {
        self.ledger.done(id, finished);
    }

    /// Line `old` lives on as `new` (merged into it, or renamed).
    fn rename(&mut self, old: EventId, new: EventId) {
        self.ledger.rename(old, new);
    }
}

/// In: chunks, with their bytes; out: lines.
impl<D: 'static> Metered for Lines<D> {
    fn meter(&self) -> Meter {
        self.meter.clone()
    }
}
