//! Writing a capture: the writer the loop's core holds, and the tap a
//! captured train's contexts call when a cog emits.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::format::{self, Codec, Head, Write};
use super::{CaptureError, CaptureOptions};
use crate::context::TrainShared;
use crate::store::record::{encode_header, FrameError, Kind, MAX_PAYLOAD};
use crate::{CogInfo, Core, Role};

/// Frames wait in memory until the end of the loop's turn, or until this
/// many bytes are waiting.
const FLUSH_AT: usize = 1 << 20;

/// The capture file being written. Frames are appended to a buffer and
/// written out once per loop turn, so a reader sees whole turns appear.
pub(crate) struct CaptureWriter {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    seq: u64,
    origin: Instant,
    inputs: bool,
    outputs: bool,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("path", &self.path)
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Creates (or truncates) the capture file and writes its header and
    /// `Begin` record.
    pub(crate) fn create(options: &CaptureOptions, now: Instant) -> Result<Self, CaptureError> {
        let path = options.path.clone();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| CaptureError::Io {
                op: "create",
                path: path.clone(),
                source,
            })?;
        let mut writer = CaptureWriter {
            path,
            file,
            buf: encode_header(Kind::Capture, 0).to_vec(),
            seq: 0,
            origin: now,
            inputs: options.inputs,
            outputs: options.outputs,
        };
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let by = concat!("tourbillon ", env!("CARGO_PKG_VERSION"));
        writer.append(&Write::Begin { started_ms, by }, "the header")?;
        writer.flush()?;
        Ok(writer)
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Record times count from `origin`: the loop's clock when it began to run.
    pub(crate) fn set_origin(&mut self, origin: Instant) {
        self.origin = origin;
    }

    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn append(&mut self, record: &Write<'_, ()>, what: &str) -> Result<(), CaptureError> {
        format::append(&mut self.buf, self.seq + 1, record).map_err(|e| CaptureError::Encode {
            what: what.to_owned(),
            reason: frame_error(e),
        })?;
        self.seq += 1;
        Ok(())
    }

    /// Declares train number `tr`, and returns the tap its contexts call,
    /// or `None` if nothing of it is captured.
    pub(crate) fn train<D>(
        &mut self,
        tr: u32,
        name: &str,
        cogs: &[CogInfo],
        codec: Codec<D>,
    ) -> Result<Option<Tap<D>>, CaptureError> {
        let len = cogs.len();
        let inputs: Box<[bool]> = cogs.iter().map(|c| self.inputs && c.role == Role::Supply).collect();
        let drains = cogs.iter().any(|c| c.role == Role::Drain);
        // What an emit of cog i reaches: cog i + 1, or the end of the train
        // (the output of a train without a drain).
        let outputs: Box<[bool]> = (0..len)
            .map(|i| {
                self.outputs
                    && match cogs.get(i + 1) {
                        Some(next) => next.role == Role::Drain,
                        None => !drains,
                    }
            })
            .collect();
        let fingerprint = format::fingerprint(name, cogs);
        let cogs = cogs
            .iter()
            .map(|c| (format::role_name(c.role).to_owned(), c.text.as_str()));
        self.append(
            &Write::Train {
                tr,
                name,
                fingerprint: &fingerprint,
                cogs: cogs.collect(),
            },
            "a train record",
        )?;
        if !inputs.iter().chain(outputs.iter()).any(|&on| on) {
            return Ok(None);
        }
        Ok(Some(Tap {
            record: codec.record,
            name: name.into(),
            train: tr,
            inputs,
            outputs,
        }))
    }

    /// Records that the loop began to finish at `now`.
    pub(crate) fn finish(&mut self, now: Instant) -> Result<(), CaptureError> {
        let t = self.stamp(now);
        self.append(&Write::Finish { t }, "the finish record")
    }

    /// Writes out the frames waiting in memory.
    pub(crate) fn flush(&mut self) -> Result<(), CaptureError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.buf);
        self.buf.clear();
        result.map_err(|source| CaptureError::Io {
            op: "append to",
            path: self.path.clone(),
            source,
        })
    }

    /// Writes out what waits and makes the file durable.
    pub(crate) fn close(&mut self) -> Result<(), CaptureError> {
        self.flush()?;
        self.file.sync_data().map_err(|source| CaptureError::Io {
            op: "fsync",
            path: self.path.clone(),
            source,
        })
    }
}

impl Drop for CaptureWriter {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("capture: {e}");
        }
    }
}

fn frame_error(e: FrameError) -> String {
    match e {
        FrameError::Encode(e) => e.to_string(),
        FrameError::TooLarge(len) => format!("{len} bytes is more than the {MAX_PAYLOAD} byte record limit"),
    }
}

/// What a captured train records when its cogs emit: the emits of its
/// supplies (not what they pass on from upstream), and what reaches its
/// drains.
pub(crate) struct Tap<D> {
    record: fn(&mut Vec<u8>, u64, &Head, &D) -> Result<(), FrameError>,
    name: String,
    train: u32,
    /// By cog: its own emits are recorded as `In`.
    inputs: Box<[bool]>,
    /// By cog: what it emits reaches a drain (or leaves a drainless train),
    /// recorded as `Out`.
    outputs: Box<[bool]>,
}

impl<D> Tap<D> {
    /// Cog `cog` emits `datum`; `relaying` when it passes on what reached
    /// it from upstream. A capture that fails stops, with an error logged:
    /// the run goes on.
    #[inline(never)]
    pub(crate) fn emitted(&self, cog: u32, relaying: bool, datum: &D, train: &TrainShared<D>, core: &mut Core) {
        let i = cog as usize;
        let input = !relaying && self.inputs.get(i) == Some(&true);
        let output = self.outputs.get(i) == Some(&true);
        if !input && !output {
            return;
        }
        let Some(writer) = core.capture.as_mut() else { return };
        let now = core.clock.now();
        let (instant, fired) = core.fired;
        let mut head = Head {
            input: true,
            tr: self.train,
            c: cog,
            t: writer.stamp(now),
            id: train.id_of(datum).map(|id| id.0),
            n: core.next_id,
            k: if instant == now { fired } else { 0 },
        };
        let mut result = Ok(());
        if input {
            result = self.write(writer, &head, datum);
        }
        if output && result.is_ok() {
            head.input = false;
            head.c = cog + 1;
            result = self.write(writer, &head, datum);
        }
        if result.is_ok() && writer.buf.len() >= FLUSH_AT {
            result = writer.flush();
        }
        if let Err(e) = result {
            log::error!("capture to {} stops: {e}", writer.path.display());
            core.capture = None;
        }
    }

    fn write(&self, writer: &mut CaptureWriter, head: &Head, datum: &D) -> Result<(), CaptureError> {
        (self.record)(&mut writer.buf, writer.seq + 1, head, datum).map_err(|e| CaptureError::Encode {
            what: format!("a datum of train {}, cog {}", self.name, head.c + 1),
            reason: frame_error(e),
        })?;
        writer.seq += 1;
        Ok(())
    }
}

impl<D> std::fmt::Debug for Tap<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("train", &self.train)
            .finish_non_exhaustive()
    }
}
