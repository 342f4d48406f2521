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
use crate::{CogInfo, Core};

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
    /// Creates (or replaces) the capture file with its header and `Begin`
    /// record. The file appears whole: a reader never finds it empty.
    pub(crate) fn create(options: &CaptureOptions, now: Instant) -> Result<Self, CaptureError> {
        let path = options.path.clone();
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| CaptureError::Io { op, path, source }
        };
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        let mut writer = CaptureWriter {
            path: tmp.clone(),
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
        let begun = writer
            .append(&Write::Begin { started_ms, by }, "the header")
            .and_then(|()| writer.flush())
            .and_then(|()| std::fs::rename(&tmp, &path).map_err(io("rename into place", &path)));
        if let Err(e) = begun {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        writer.path = path;
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
        if !self.inputs && !self.outputs {
            return Ok(None);
        }
        Ok(Some(Tap {
            record: codec.record,
            name: name.into(),
            train: tr,
            inputs: self.inputs,
            outputs: self.outputs,
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

/// What a captured train records: what its supplies emit in their own
/// callbacks (not what they pass on from upstream), and what reaches its
/// drains. Its contexts call it; a capture that fails stops, with an error
/// logged, and the run goes on.
pub(crate) struct Tap<D> {
    record: fn(&mut Vec<u8>, u64, &Head, &D) -> Result<(), FrameError>,
    name: String,
    train: u32,
    inputs: bool,
    outputs: bool,
}

impl<D> Tap<D> {
    /// Supply `cog` emits `datum`.
    #[inline(never)]
    pub(crate) fn input(&self, cog: u32, datum: &D, train: &TrainShared<D>, core: &mut Core) {
        if self.inputs {
            self.write(true, cog, datum, train, core)
        }
    }

    /// `datum` reaches drain `cog`.
    #[inline(never)]
    pub(crate) fn output(&self, cog: u32, datum: &D, train: &TrainShared<D>, core: &mut Core) {
        if self.outputs {
            self.write(false, cog, datum, train, core)
        }
    }

    fn write(&self, input: bool, cog: u32, datum: &D, train: &TrainShared<D>, core: &mut Core) {
        let Some(writer) = core.capture.as_mut() else { return };
        let now = core.clock.now();
        let (instant, fired) = core.fired;
        let head = Head {
            input,
            tr: self.train,
            c: cog,
            t: writer.stamp(now),
            id: train.id_of(datum).map(|id| id.0),
            n: core.next_id,
            k: if input && instant == now { fired } else { 0 },
        };
        let mut result =
            (self.record)(&mut writer.buf, writer.seq + 1, &head, datum).map_err(|e| CaptureError::Encode {
                what: format!("a datum of train {}, cog {}", self.name, cog + 1),
                reason: frame_error(e),
            });
        if result.is_ok() {
            writer.seq += 1;
            if writer.buf.len() >= FLUSH_AT {
                result = writer.flush();
            }
        }
        if let Err(e) = result {
            log::error!("capture to {} stops: {e}", writer.path.display());
            core.capture = None;
        }
    }
}

impl<D> std::fmt::Debug for Tap<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("train", &self.train)
            .finish_non_exhaustive()
    }
}
