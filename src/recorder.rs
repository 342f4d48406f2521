//! The recorder interface: what the kernel tells a recorder (a train
//! declared, a datum a supply emitted or a drain got, the loop finishing, a
//! turn ended), and what it asks of a playback (the next recorded datum on
//! the virtual clock). [`capture`](crate::capture) implements both; the
//! kernel knows only these traits, so capture sits on the kernel and never
//! the other way round.
//!
//! What costs per event: a train with no recorder has no [`Tap`], and the
//! check for one is a predicted `None`; only a captured train pays a call.

use std::fmt;
use std::path::Path;
use std::time::{Instant, SystemTime};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::event::EventId;
use crate::role::CogInfo;
use crate::sources::CogAddr;

/// A recorder stopped: it logged why, and the kernel drops it; the run goes on.
#[derive(Debug)]
pub(crate) struct Stopped;

/// What a recorder records of a train it was told of.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wants {
    /// What its supplies emit in their own callbacks.
    pub(crate) inputs: bool,
    /// What reaches its drains.
    pub(crate) outputs: bool,
}

/// One datum, as the kernel reports it to a recorder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen {
    /// Emitted by a supply (else: reached a drain).
    pub(crate) input: bool,
    /// The train's index in the escapement.
    pub(crate) train: u32,
    /// The cog's position in its train.
    pub(crate) cog: u32,
    /// The loop's clock.
    pub(crate) at: Instant,
    /// The datum's id, if the train has an id accessor.
    pub(crate) id: Option<EventId>,
    /// The last event id minted.
    pub(crate) minted: u64,
    /// Timers (not the supplies' own) that fired at `at` before this datum.
    pub(crate) ties: u32,
}

/// Writes a datum, as JSON, at the end of a buffer.
pub(crate) type Encode<'a> = dyn FnMut(&mut Vec<u8>) -> serde_json::Result<()> + 'a;

/// What the kernel tells a recorder.
pub(crate) trait Recorder: fmt::Debug {
    /// The loop begins to run; its clock reads `origin`, the wall clock `wall`.
    fn begin(&mut self, origin: Instant, wall: SystemTime);
    /// Train `index` is placed, named `name`, with these cogs.
    fn train(&mut self, index: u32, name: &str, cogs: &[CogInfo]) -> Result<Wants, Stopped>;
    /// A datum was seen; `encode` writes it.
    fn datum(&mut self, seen: &Seen, encode: &mut Encode<'_>) -> Result<(), Stopped>;
    /// The loop began to finish at `at`.
    fn finish(&mut self, at: Instant) -> Result<(), Stopped>;
    /// A turn of the loop ended.
    fn end_turn(&mut self) -> Result<(), Stopped>;
    /// The loop is done: the last call.
    fn close(&mut self);
}

/// What is due next in a playback.
#[derive(Debug)]
pub(crate) enum Due<'a> {
    /// Emit `json` from the stand-in `cog` of train `train` at `at`, once
    /// `ties` timers fired at `at`, after setting the event id counter to
    /// at least `ids`.
    Datum {
        train: u32,
        cog: u32,
        at: Instant,
        ties: u32,
        ids: u64,
        json: &'a [u8],
    },
    /// Everything is played back: these stand-ins are exhausted.
    End(Vec<CogAddr>),
}

/// What the kernel asks of a playback: recorded data, each due at a time
/// of the virtual clock, to emit from the places of supplies' stand-ins.
pub(crate) trait Playback: fmt::Debug {
    /// The file played back: no recorder may write to it.
    fn path(&self) -> &Path;
    /// Train `index` has stand-ins for its supplies.
    fn add_train(&mut self, index: u32, name: &str, cogs: Vec<CogInfo>);
    /// The run begins: virtual time `now` is the recording's time zero.
    fn begin(&mut self, now: Instant) -> Result<(), Error>;
    /// The wall-clock time the recorded run began at, once [`begin`](Self::begin) read it.
    fn started(&self) -> Option<SystemTime>;
    /// When the next record is due on the virtual clock, which reads `now`;
    /// `None` once everything is played back.
    fn next_time(&mut self, now: Instant) -> Result<Option<Instant>, Error>;
    /// When a paced playback reaches virtual time `at` in real time; `None`
    /// when it runs as fast as it can.
    fn real_time(&self, at: Instant) -> Option<Instant>;
    /// The next record if it is due by `limit`. Call
    /// [`consumed`](Self::consumed) once it is handled.
    fn due(&mut self, limit: Instant) -> Result<Option<Due<'_>>, Error>;
    /// The datum [`due`](Self::due) gave is handled.
    fn consumed(&mut self);
    /// The error for the datum `due` gave, which did not decode.
    fn decode_error(&self, source: serde_json::Error) -> Error;
}

/// Opens a recorder when the escapement is built.
pub(crate) trait OpenRecorder: fmt::Debug + Send + Sync {
    /// Opens it at `now`; `playing` is the playback of the same escapement.
    fn open(&self, now: Instant, playing: Option<&dyn Playback>) -> Result<Box<dyn Recorder>, Error>;
}

/// Opens a playback when the escapement is built.
pub(crate) trait OpenPlayback: fmt::Debug + Send + Sync {
    /// Opens it at `now`.
    fn open(&self, now: Instant) -> Result<Box<dyn Playback>, Error>;
}

/// How a train's data go to and come from a recording: chosen where the
/// data type is known to be serde, called where it is not.
pub(crate) struct Codec<D> {
    pub(crate) encode: fn(&D, &mut Vec<u8>) -> serde_json::Result<()>,
    pub(crate) decode: fn(&[u8]) -> serde_json::Result<D>,
}

impl<D> Clone for Codec<D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<D> Copy for Codec<D> {}

impl<D> fmt::Debug for Codec<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Codec")
    }
}

impl<D: Serialize + DeserializeOwned> Codec<D> {
    pub(crate) fn new() -> Self {
        Codec {
            encode: |d, buf| serde_json::to_writer(buf, d),
            decode: |bytes| serde_json::from_slice(bytes),
        }
    }
}

/// What a recorded train's contexts hold: which train, what the recorder
/// wants of it, and how its data encode.
pub(crate) struct Tap<D> {
    pub(crate) train: u32,
    pub(crate) wants: Wants,
    pub(crate) encode: fn(&D, &mut Vec<u8>) -> serde_json::Result<()>,
}

impl<D> fmt::Debug for Tap<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tap")
            .field("train", &self.train)
            .finish_non_exhaustive()
    }
}
