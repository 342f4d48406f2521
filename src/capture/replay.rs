//! Replaying a capture: the driver that plays the recorded data back to
//! the escapement on the recorded clock (the kernel's [`Playback`]).

use std::path::Path;
use std::time::{Instant, SystemTime};

use log::warn;

use super::format;
use super::reader::{CaptureReader, Raw, Rec, TrainInfo};
use super::{Pace, ReplayOptions};
use crate::error::{CaptureError, Error};
use crate::recorder::{Due, OpenPlayback, Playback};
use crate::role::{CogInfo, Role};
use crate::sources::CogAddr;

impl OpenPlayback for ReplayOptions {
    fn open(&self, now: Instant) -> Result<Box<dyn Playback>, Error> {
        Ok(Box::new(Driver::open(self, now)?))
    }
}

/// A train of this escapement whose supplies are stand-ins.
#[derive(Debug)]
struct Replayed {
    index: u32,
    name: String,
    cogs: Vec<CogInfo>,
    claimed: bool,
}

impl Replayed {
    fn supplies(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.cogs.len() as u32).filter(|&i| self.cogs[i as usize].role == Role::Supply)
    }
}

/// Where the records of one captured train go: the train here, and per
/// captured cog, the stand-in here.
#[derive(Debug)]
struct Route {
    train: u32,
    cogs: Vec<Option<u32>>,
}

#[derive(Debug)]
enum Pending {
    Datum(Rec, u32, u32),
    Finish(u64),
    End,
}

/// Feeds a capture to the escapement: reads records one ahead, says when
/// the next is due on the virtual clock, and hands it over.
#[derive(Debug)]
struct Driver {
    reader: CaptureReader,
    pace: Pace,
    strict: bool,
    trains: Vec<Replayed>,
    routes: Vec<Option<Route>>,
    pending: Option<Pending>,
    /// Past the `Finish` record: what supplies emitted while finishing is
    /// due at once.
    finishing: bool,
    ended: bool,
    /// Real and virtual time when the run began.
    origin: (Instant, Instant),
}

impl Driver {
    fn open(options: &ReplayOptions, now: Instant) -> Result<Driver, CaptureError> {
        if let Pace::Recorded(speed) = options.pace {
            if !(speed.is_finite() && speed > 0.0) {
                return Err(CaptureError::Speed(speed));
            }
        }
        Ok(Driver {
            reader: CaptureReader::open(&options.path)?,
            pace: options.pace,
            strict: options.strict,
            trains: Vec::new(),
            routes: Vec::new(),
            pending: None,
            finishing: false,
            ended: false,
            origin: (Instant::now(), now),
        })
    }

    /// Reads up to the next record to replay.
    fn peek(&mut self) -> Result<Option<&Pending>, CaptureError> {
        if self.ended {
            return Ok(None);
        }
        while self.pending.is_none() {
            self.pending = match self.reader.next_raw()? {
                None => Some(Pending::End),
                Some(Raw::Finish(t)) if !self.finishing => Some(Pending::Finish(t)),
                Some(Raw::Train(tr)) => {
                    self.route(tr)?;
                    None
                }
                Some(Raw::In(rec)) => {
                    let to = self.routes.get(rec.tr as usize).and_then(Option::as_ref);
                    to.and_then(|r| Some((r.train, (*r.cogs.get(rec.c as usize)?)?)))
                        .map(|(train, cog)| Pending::Datum(rec, train, cog))
                }
                Some(Raw::Out(_) | Raw::Finish(_)) => None,
            };
        }
        Ok(self.pending.as_ref())
    }

    /// Finds the train that replays captured train `tr`, and checks it is
    /// the same.
    fn route(&mut self, tr: u32) -> Result<(), CaptureError> {
        let Some(info) = self.reader.train(tr).cloned() else {
            return Ok(());
        };
        let slot = tr as usize;
        if self.routes.len() <= slot {
            self.routes.resize_with(slot + 1, || None);
        }
        let Some(here) = self.trains.iter_mut().find(|t| !t.claimed && t.name == info.name) else {
            self.routes[slot] = None;
            return self.mismatch(
                &info.name,
                "no capturable train of that name is replayed here: its records are skipped".into(),
            );
        };
        here.claimed = true;
        let supplies: Vec<u32> = here.supplies().collect();
        let mut cogs = vec![None; info.cogs.len()];
        let captured = (0..info.cogs.len()).filter(|&i| info.cogs[i].role == Role::Supply);
        for (from, to) in captured.zip(&supplies) {
            cogs[from] = Some(*to);
        }
        self.routes[slot] = Some(Route {
            train: here.index,
            cogs,
        });
        let fingerprint = format::fingerprint(&here.name, &here.cogs);
        // Supplies are swapped for what they recorded: their settings (a
        // checkpoint directory, a replay's own) change nothing replayed.
        let only_supplies = info.cogs.len() == here.cogs.len()
            && info
                .cogs
                .iter()
                .zip(&here.cogs)
                .all(|(a, b)| a == b || (a.role == Role::Supply && b.role == Role::Supply));
        if fingerprint != info.fingerprint && !only_supplies {
            let reason = difference(&info, &here.cogs, &fingerprint);
            return self.mismatch(&info.name, reason);
        }
        Ok(())
    }

    /// Replayed trains the capture never mentioned.
    fn unclaimed(&self) -> Result<(), CaptureError> {
        for train in self.trains.iter().filter(|t| !t.claimed) {
            self.mismatch(&train.name, "not in the capture: its supplies bring nothing".into())?;
        }
        Ok(())
    }

    fn mismatch(&self, train: &str, reason: String) -> Result<(), CaptureError> {
        let err = CaptureError::Mismatch {
            path: self.reader.path().to_path_buf(),
            train: train.to_owned(),
            reason,
        };
        if self.strict {
            return Err(err);
        }
        warn!("{err}");
        Ok(())
    }
}

impl Playback for Driver {
    /// The capture replayed.
    fn path(&self) -> &Path {
        self.reader.path()
    }

    /// Train `index` of the escapement has stand-ins for supplies.
    fn add_train(&mut self, index: u32, name: &str, cogs: Vec<CogInfo>) {
        self.trains.push(Replayed {
            index,
            name: name.to_owned(),
            cogs,
            claimed: false,
        });
    }

    /// The run begins: virtual time `now` is the capture's time zero.
    /// Reads the capture's header records, so a strict replay refuses a
    /// mismatch before any cog starts.
    fn begin(&mut self, now: Instant) -> Result<(), Error> {
        self.origin = (Instant::now(), now);
        Ok(self.peek().map(drop)?)
    }

    fn started(&self) -> Option<SystemTime> {
        self.reader.started()
    }

    /// When the next record is due on the virtual clock, which reads `now`;
    /// `None` once the capture is replayed.
    fn next_time(&mut self, now: Instant) -> Result<Option<Instant>, Error> {
        let origin = self.origin.1;
        let at = |t: u64| origin + std::time::Duration::from_nanos(t);
        let finishing = self.finishing;
        Ok(match self.peek()? {
            None => None,
            Some(Pending::Datum(rec, ..)) if !finishing => Some(at(rec.t)),
            Some(Pending::Finish(t)) => Some(at(*t)),
            Some(Pending::Datum(..) | Pending::End) => Some(now),
        })
    }

    /// When a paced replay reaches virtual time `at` in real time; `None`
    /// when it runs as fast as it can.
    fn real_time(&self, at: Instant) -> Option<Instant> {
        match self.pace {
            Pace::Fastest => None,
            Pace::Recorded(speed) => {
                let span = at.saturating_duration_since(self.origin.1);
                Some(self.origin.0 + span.div_f64(speed))
            }
        }
    }

    /// The next record if it is due by `limit` (or at once, for what was
    /// emitted while finishing). Call [`consumed`](Self::consumed) once it
    /// is handled.
    fn due(&mut self, limit: Instant) -> Result<Option<Due<'_>>, Error> {
        loop {
            let Some(next) = self.next_time(limit)? else {
                return Ok(None);
            };
            if next > limit {
                return Ok(None);
            }
            match &self.pending {
                Some(Pending::Datum(rec, train, cog)) => {
                    return Ok(Some(Due::Datum {
                        train: *train,
                        cog: *cog,
                        at: next,
                        ties: rec.k,
                        ids: rec.n,
                        json: self.reader.datum(rec),
                    }));
                }
                Some(Pending::Finish(_)) => {
                    self.pending = None;
                    self.finishing = true;
                }
                Some(Pending::End) => {
                    self.pending = None;
                    self.ended = true;
                    self.unclaimed()?;
                    let stand_ins = self
                        .trains
                        .iter()
                        .flat_map(|t| t.supplies().map(|cog| CogAddr { train: t.index, cog }))
                        .collect();
                    return Ok(Some(Due::End(stand_ins)));
                }
                None => {}
            }
        }
    }

    /// The datum [`due`](Self::due) gave is handled.
    fn consumed(&mut self) {
        if let Some(Pending::Datum(..)) = self.pending {
            self.pending = None;
        }
    }

    /// The error for the datum [`due`](Self::due) gave, which did not
    /// decode as its train's data.
    fn decode_error(&self, source: serde_json::Error) -> Error {
        let err = match &self.pending {
            Some(Pending::Datum(rec, ..)) => CaptureError::Decode {
                path: self.reader.path().to_path_buf(),
                offset: rec.offset,
                seq: rec.seq,
                source,
            },
            _ => self.reader.corrupt(0, source.to_string()),
        };
        err.into()
    }
}

/// Says how the train replayed differs from the one captured.
fn difference(captured: &TrainInfo, here: &[CogInfo], fingerprint: &str) -> String {
    let show = |c: Option<&CogInfo>| c.map_or_else(|| "nothing".to_owned(), |c| format!("{} `{}`", c.role, c.text));
    let first = (0..captured.cogs.len().max(here.len())).find(|&i| captured.cogs.get(i) != here.get(i));
    let what = match first {
        Some(i) => format!(
            "cog {} was {}, is {}",
            i + 1,
            show(captured.cogs.get(i)),
            show(here.get(i))
        ),
        None => "its cogs render alike".to_owned(),
    };
    format!(
        "captured with another train (fingerprint {}, this one {fingerprint}): {what}",
        captured.fingerprint
    )
}
