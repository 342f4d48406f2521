//! Reading a capture: front to back, also while it is being written.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::ErrorKind;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use super::format::{self, Read};
use super::CaptureError;
use crate::event::EventId;
use crate::role::CogInfo;
use crate::store::record::{check_header, find_later_frame, Found, FrameReader, HeaderError, HEADER_LEN};

/// A train as a capture describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainInfo {
    /// Its name.
    pub name: String,
    /// A hash of its name and its cogs' roles and descriptions: equal
    /// fingerprints, same train and settings.
    pub fingerprint: String,
    /// Its cogs, in order.
    pub cogs: Vec<CogInfo>,
}

/// One datum a capture recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datum {
    /// The record's sequence number in the capture, from 1.
    pub seq: u64,
    /// The train's name.
    pub train: String,
    /// The position in the train of the supply that emitted it, or of the
    /// drain it reached, from 0.
    pub cog: u32,
    /// That cog's description: the supply's or drain's name.
    pub name: String,
    /// The loop's clock when it was emitted, from when the run began.
    pub at: Duration,
    /// Its event id, if the train has an id accessor.
    pub id: Option<EventId>,
    /// The datum, as serde_json text.
    pub json: String,
}

impl Datum {
    /// The datum as a `D`.
    ///
    /// # Errors
    /// What serde_json says if it is not a `D`.
    pub fn decode<D: DeserializeOwned>(&self) -> serde_json::Result<D> {
        serde_json::from_str(&self.json)
    }
}

/// What [`CaptureReader::next`] finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A supply emitted this datum.
    Input(Datum),
    /// This datum reached a drain.
    Output(Datum),
    /// The loop began to finish, this long after the run began.
    Finish(Duration),
}

/// A record, with its datum left in the reader's buffer.
#[derive(Clone, Debug)]
pub(crate) enum Raw {
    /// Train `tr` was declared; see [`CaptureReader::train`].
    Train(u32),
    In(Rec),
    Out(Rec),
    Finish(u64),
}

/// A record about one datum; [`CaptureReader::datum`] gives the datum's
/// text until the next read.
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
    pub(crate) tr: u32,
    pub(crate) c: u32,
    pub(crate) t: u64,
    pub(crate) id: Option<u64>,
    pub(crate) n: u64,
    pub(crate) k: u32,
    d: Range<usize>,
}

/// Reads a capture front to back.
///
/// The file may still be being written: [`next`](Self::next) returns
/// `Ok(None)` at the end of what is there, torn last record included, and
/// later calls pick up what was appended since. Damage followed by valid
/// records is an error naming the file and offset.
///
/// ```no_run
/// use tourbillon::capture::{CaptureReader, Entry};
///
/// # fn main() -> Result<(), tourbillon::capture::CaptureError> {
/// let mut reader = CaptureReader::open("run.tbcap")?;
/// while let Some(entry) = reader.next()? {
///     if let Entry::Input(datum) = entry {
///         println!("{:?} {} #{}: {}", datum.at, datum.name, datum.seq, datum.json);
///     }
/// }
/// # Ok(()) }
/// ```
pub struct CaptureReader {
    path: PathBuf,
    frames: FrameReader<File>,
    last_seq: u64,
    trains: Vec<Option<TrainInfo>>,
    started: Option<SystemTime>,
    by: Option<String>,
}

impl fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture and checks its header.
    ///
    /// # Errors
    /// [`CaptureError::Io`] if it cannot be read; [`CaptureError::Corrupt`]
    /// if it is not a capture or its header is damaged;
    /// [`CaptureError::Version`] if it is of another format version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CaptureError> {
        let path = path.as_ref().to_path_buf();
        let io = |op, source| CaptureError::Io {
            op,
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(|e| io("open", e))?;
        let mut header = [0; HEADER_LEN];
        let mut filled = 0;
        while filled < HEADER_LEN {
            match file.read_at(&mut header[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(io("read", e)),
            }
        }
        check_header(crate::store::record::Kind::Capture, &header[..filled]).map_err(|e| match e {
            HeaderError::Corrupt(reason) => CaptureError::Corrupt {
                path: path.clone(),
                offset: 0,
                reason,
            },
            HeaderError::Version { version, encoding } => CaptureError::Version {
                path: path.clone(),
                version,
                encoding,
            },
        })?;
        let len = file.metadata().map_err(|e| io("stat", e))?.len();
        Ok(CaptureReader {
            frames: FrameReader::new(file, HEADER_LEN as u64, len),
            path,
            last_seq: 0,
            trains: Vec::new(),
            started: None,
            by: None,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When the capture was begun, once its first record was read.
    pub fn started(&self) -> Option<SystemTime> {
        self.started
    }

    /// What wrote it (`tourbillon VERSION`), once its first record was read.
    pub fn written_by(&self) -> Option<&str> {
        self.by.as_deref()
    }

    /// The trains declared so far, in the order they were added to the
    /// escapement.
    pub fn trains(&self) -> impl Iterator<Item = &TrainInfo> {
        self.trains.iter().flatten()
    }

    /// The next datum or finish, skipping the capture's own records;
    /// `Ok(None)` at the end of what has been written so far.
    ///
    /// # Errors
    /// [`CaptureError::Corrupt`] for damage before the end;
    /// [`CaptureError::Decode`] for a record this build cannot read;
    /// [`CaptureError::Io`] if reading fails.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Entry>, CaptureError> {
        loop {
            let entry = match self.next_raw()? {
                None => return Ok(None),
                Some(Raw::Train(_)) => continue,
                Some(Raw::Finish(t)) => Entry::Finish(Duration::from_nanos(t)),
                Some(Raw::In(rec)) => Entry::Input(self.owned(&rec)),
                Some(Raw::Out(rec)) => Entry::Output(self.owned(&rec)),
            };
            return Ok(Some(entry));
        }
    }

    fn owned(&self, rec: &Rec) -> Datum {
        let (train, name) = match self.train(rec.tr) {
            Some(info) => (
                info.name.clone(),
                info.cogs
                    .get(rec.c as usize)
                    .map_or_else(String::new, |c| c.text.clone()),
            ),
            None => (String::new(), String::new()),
        };
        Datum {
            seq: rec.seq,
            train,
            cog: rec.c,
            name,
            at: Duration::from_nanos(rec.t),
            id: rec.id.map(EventId),
            json: String::from_utf8_lossy(self.datum(rec)).into_owned(),
        }
    }

    /// Train number `tr`, if it was declared.
    pub(crate) fn train(&self, tr: u32) -> Option<&TrainInfo> {
        self.trains.get(tr as usize).and_then(Option::as_ref)
    }

    /// The datum of the record last read.
    pub(crate) fn datum(&self, rec: &Rec) -> &[u8] {
        &self.frames.payload()[rec.d.clone()]
    }

    /// Reads the next record. `Ok(None)` at the end of what is written.
    pub(crate) fn next_raw(&mut self) -> Result<Option<Raw>, CaptureError> {
        let (offset, seq) = loop {
            let next = self.frames.next().map_err(|e| self.io("read", e))?;
            match next {
                Found::Frame { offset, seq } => break (offset, seq),
                Found::End => {
                    if !self.grew(self.frames.offset())? {
                        return Ok(None);
                    }
                }
                Found::Bad { offset, reason } => {
                    let len = self.len()?;
                    if let Some(later) = find_later_frame(self.frames.file(), offset + 1, len, self.last_seq)
                        .map_err(|e| self.io("read", e))?
                    {
                        return Err(self.corrupt(
                            offset,
                            format!("{reason}, yet a valid record follows at byte {later}: not a torn tail"),
                        ));
                    }
                    // A record being written, or the torn tail of a writer
                    // that died: read it again once there is more.
                    let end = self.frames.end();
                    self.frames.rewind(offset, len).map_err(|e| self.io("read", e))?;
                    if len <= end {
                        return Ok(None);
                    }
                }
            }
        };
        if seq != self.last_seq + 1 {
            return Err(self.corrupt(
                offset,
                format!("record {seq} where record {} should be", self.last_seq + 1),
            ));
        }
        self.last_seq = seq;
        let payload = self.frames.payload();
        let read: Read<'_> = serde_json::from_slice(payload).map_err(|source| CaptureError::Decode {
            path: self.path.clone(),
            offset,
            seq,
            source,
        })?;
        let range = |d: &serde_json::value::RawValue| {
            let start = d.get().as_ptr() as usize - payload.as_ptr() as usize;
            start..start + d.get().len()
        };
        let raw = match read {
            Read::Begin { started_ms, by } => {
                self.started = Some(UNIX_EPOCH + Duration::from_millis(started_ms));
                self.by = Some(by);
                return self.next_raw();
            }
            Read::Train {
                tr,
                name,
                fingerprint,
                cogs,
            } => {
                let mut infos = Vec::with_capacity(cogs.len());
                for (role, text) in cogs {
                    let Some(role) = format::parse_role(&role) else {
                        return Err(self.corrupt(offset, format!("train {name} has a cog of unknown role {role:?}")));
                    };
                    infos.push(CogInfo { role, text });
                }
                let slot = tr as usize;
                if self.trains.len() <= slot {
                    self.trains.resize(slot + 1, None);
                }
                self.trains[slot] = Some(TrainInfo {
                    name,
                    fingerprint,
                    cogs: infos,
                });
                Raw::Train(tr)
            }
            Read::In { tr, c, t, id, n, k, d } => Raw::In(Rec {
                seq,
                offset,
                tr,
                c,
                t,
                id,
                n,
                k,
                d: range(d),
            }),
            Read::Out { tr, c, t, id, d } => Raw::Out(Rec {
                seq,
                offset,
                tr,
                c,
                t,
                id,
                n: 0,
                k: 0,
                d: range(d),
            }),
            Read::Finish { t } => Raw::Finish(t),
        };
        if let Raw::In(Rec { tr, .. }) | Raw::Out(Rec { tr, .. }) = raw {
            if self.train(tr).is_none() {
                return Err(self.corrupt(offset, format!("record {seq} is about train {tr}, never declared")));
            }
        }
        Ok(Some(raw))
    }

    /// True if the file grew past what the reader looks at; it then reads
    /// on from `offset`.
    fn grew(&mut self, offset: u64) -> Result<bool, CaptureError> {
        let len = self.len()?;
        if len <= self.frames.end() {
            return Ok(false);
        }
        self.frames.rewind(offset, len).map_err(|e| self.io("read", e))?;
        Ok(true)
    }

    fn len(&self) -> Result<u64, CaptureError> {
        Ok(self.frames.file().metadata().map_err(|e| self.io("stat", e))?.len())
    }

    fn io(&self, op: &'static str, source: std::io::Error) -> CaptureError {
        CaptureError::Io {
            op,
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, offset: u64, reason: String) -> CaptureError {
        CaptureError::Corrupt {
            path: self.path.clone(),
            offset,
            reason,
        }
    }
}

/// What [`compare`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// Every drain got the same data, byte for byte, in the same order:
    /// this many in all.
    Same {
        /// How many data were compared.
        outputs: u64,
    },
    /// The first difference.
    Different(Difference),
}

/// Where two captures' outputs first differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The train's name.
    pub train: String,
    /// The drain's position in the train, from 0.
    pub drain: u32,
    /// The drain's description.
    pub name: String,
    /// How many data that drain got alike before this one.
    pub index: u64,
    /// The datum in the first capture, if it has one there.
    pub left: Option<String>,
    /// The datum in the second capture, if it has one there.
    pub right: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "nothing".into());
        write!(
            f,
            "train {} drain {} ({}), datum {}: {} vs {}",
            self.train,
            self.drain + 1,
            self.name,
            self.index + 1,
            show(&self.left),
            show(&self.right)
        )
    }
}

type Outputs = BTreeMap<(String, u32), (String, Vec<String>)>;

fn outputs(path: &Path) -> Result<Outputs, CaptureError> {
    let mut reader = CaptureReader::open(path)?;
    let mut out = Outputs::new();
    while let Some(entry) = reader.next()? {
        if let Entry::Output(d) = entry {
            out.entry((d.train, d.cog))
                .or_insert_with(|| (d.name, Vec::new()))
                .1
                .push(d.json);
        }
    }
    Ok(out)
}

/// One drain's data in two captures, as [`compare_drains`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainComparison {
    /// The train's name.
    pub train: String,
    /// The drain's position in the train, from 0.
    pub drain: u32,
    /// The drain's description.
    pub name: String,
    /// How many data it got in the first capture.
    pub left: u64,
    /// How many data it got in the second capture.
    pub right: u64,
    /// Where they first differ, if they do.
    pub difference: Option<Difference>,
}

impl fmt::Display for DrainComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format!("train {} drain {} ({})", self.train, self.drain + 1, self.name);
        match &self.difference {
            None => write!(f, "same       {at}: {} data", self.left),
            Some(d) => {
                let show = |d: &Option<String>| d.clone().unwrap_or_else(|| "nothing".into());
                write!(
                    f,
                    "different  {at}: {} vs {} data; first at datum {}: {} vs {}",
                    self.left,
                    self.right,
                    d.index + 1,
                    show(&d.left),
                    show(&d.right)
                )
            }
        }
    }
}

/// Compares what reached each drain in two captures (say, of a live run
/// and of its replay): the same data, byte for byte, in the same order, per
/// drain of each train (so a graph's branches are told apart). Times are
/// not compared. Drains in either capture, in train and position order.
///
/// # Errors
/// As [`CaptureReader::next`], for either capture.
pub fn compare_drains(left: impl AsRef<Path>, right: impl AsRef<Path>) -> Result<Vec<DrainComparison>, CaptureError> {
    let mut left = outputs(left.as_ref())?;
    let mut right = outputs(right.as_ref())?;
    let keys: std::collections::BTreeSet<(String, u32)> = left.keys().chain(right.keys()).cloned().collect();
    let mut out = Vec::with_capacity(keys.len());
    for (train, drain) in keys {
        let key = (train.clone(), drain);
        let (name, ours) = left.remove(&key).unwrap_or_default();
        let (their_name, theirs) = right.remove(&key).unwrap_or_default();
        let name = if name.is_empty() { their_name } else { name };
        let alike = ours.iter().zip(&theirs).take_while(|(a, b)| a == b).count();
        let difference = (alike < ours.len().max(theirs.len())).then(|| Difference {
            train: train.clone(),
            drain,
            name: name.clone(),
            index: alike as u64,
            left: ours.get(alike).cloned(),
            right: theirs.get(alike).cloned(),
        });
        out.push(DrainComparison {
            train,
            drain,
            name,
            left: ours.len() as u64,
            right: theirs.len() as u64,
            difference,
        });
    }
    Ok(out)
}

/// Compares what reached the drains in two captures: [`compare_drains`],
/// summed up as the first difference or the number of data alike.
///
/// # Errors
/// As [`CaptureReader::next`], for either capture.
pub fn compare(left: impl AsRef<Path>, right: impl AsRef<Path>) -> Result<Comparison, CaptureError> {
    let mut compared = 0;
    for d in compare_drains(left, right)? {
        if let Some(diff) = d.difference {
            return Ok(Comparison::Different(diff));
        }
        compared += d.left;
    }
    Ok(Comparison::Same { outputs: compared })
}
