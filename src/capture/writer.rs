//! Writing a capture: the kernel's [`Recorder`], writing each train, datum
//! and the finish as records of a capture file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::format::{self, Head, Write};
use super::CaptureOptions;
use crate::error::{CaptureError, Error};
use crate::recorder::{Encode, OpenRecorder, Playback, Recorder, Seen, Stopped, Wants};
use crate::role::CogInfo;
use crate::store::record::{encode_header, FrameError, Kind, MAX_PAYLOAD};

/// Frames wait in memory until the end of the loop's turn, or until this
/// many bytes are waiting.
const FLUSH_AT: usize = 1 << 20;

/// The capture file being written. Frames are appended to a buffer and
/// written out once per loop turn, so a reader sees whole turns appear.
struct CaptureWriter {
    path: PathBuf,
    /// The names of the trains declared, by index, for errors.
    names: Vec<String>,
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
    fn create(options: &CaptureOptions, now: Instant) -> Result<Self, CaptureError> {
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
            names: Vec::new(),
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

    fn stamp(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.origin).as_nanos() as u64
    }

    fn append(&mut self, record: &Write<'_>, what: &str) -> Result<(), CaptureError> {
        format::append(&mut self.buf, self.seq + 1, record).map_err(|e| CaptureError::Encode {
            what: what.to_owned(),
            reason: frame_error(e),
        })?;
        self.seq += 1;
        Ok(())
    }

    /// Writes out the frames waiting in memory.
    fn flush(&mut self) -> Result<(), CaptureError> {
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
    fn sync(&mut self) -> Result<(), CaptureError> {
        self.flush()?;
        self.file.sync_data().map_err(|source| CaptureError::Io {
            op: "fsync",
            path: self.path.clone(),
            source,
        })
    }

    /// Logs that the capture stops because of `e`.
    fn stop(&self, e: CaptureError) -> Stopped {
        log::error!("capture to {} stops: {e}", self.path.display());
        Stopped
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

impl OpenRecorder for CaptureOptions {
    fn open(&self, now: Instant, playing: Option<&dyn Playback>) -> Result<Box<dyn Recorder>, Error> {
        if let Some(replayed) = playing {
            if same_file(replayed.path(), self.path()) {
                let path = self.path().to_path_buf();
                return Err(CaptureError::SameFile { path }.into());
            }
        }
        Ok(Box::new(CaptureWriter::create(self, now)?))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// A captured train records what its supplies emit in their own callbacks
/// (not what they pass on from upstream), and what reaches its drains. A
/// capture that fails stops, with an error logged, and the run goes on.
impl Recorder for CaptureWriter {
    /// Record times count from `origin`: the loop's clock when it began to run.
    /// The wall-clock time of `origin` is recorded again (the header's is
    /// when the file was made): a replay's wall clock starts there.
    fn begin(&mut self, origin: Instant, wall: SystemTime) {
        self.origin = origin;
        let started_ms = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let by = concat!("tourbillon ", env!("CARGO_PKG_VERSION"));
        if let Err(e) = self.append(&Write::Begin { started_ms, by }, "the start time") {
            log::error!("capture: {e}");
        }
    }

    fn train(&mut self, tr: u32, name: &str, cogs: &[CogInfo]) -> Result<Wants, Stopped> {
        let fingerprint = format::fingerprint(name, cogs);
        let cogs = cogs
            .iter()
            .map(|c| (format::role_name(c.role).to_owned(), c.text.as_str()));
        let record = Write::Train {
            tr,
            name,
            fingerprint: &fingerprint,
            cogs: cogs.collect(),
        };
        self.append(&record, "a train record").map_err(|e| self.stop(e))?;
        let slot = tr as usize;
        if self.names.len() <= slot {
            self.names.resize(slot + 1, String::new());
        }
        self.names[slot] = name.to_owned();
        Ok(Wants {
            inputs: self.inputs,
            outputs: self.outputs,
        })
    }

    fn datum(&mut self, seen: &Seen, encode: &mut Encode<'_>) -> Result<(), Stopped> {
        let head = Head {
            input: seen.input,
            tr: seen.train,
            c: seen.cog,
            t: self.stamp(seen.at),
            id: seen.id.map(|id| id.0),
            n: seen.minted,
            k: seen.ties,
        };
        let mut result = format::record(&mut self.buf, self.seq + 1, &head, encode).map_err(|e| {
            let name = self.names.get(seen.train as usize).map_or("", String::as_str);
            CaptureError::Encode {
                what: format!("a datum of train {name}, cog {}", seen.cog + 1),
                reason: frame_error(e),
            }
        });
        if result.is_ok() {
            self.seq += 1;
            if self.buf.len() >= FLUSH_AT {
                result = self.flush();
            }
        }
        result.map_err(|e| self.stop(e))
    }

    /// Records that the loop began to finish at `at`.
    fn finish(&mut self, at: Instant) -> Result<(), Stopped> {
        let t = self.stamp(at);
        self.append(&Write::Finish { t }, "the finish record")
            .map_err(|e| self.stop(e))
    }

    fn end_turn(&mut self) -> Result<(), Stopped> {
        self.flush().map_err(|e| self.stop(e))
    }

    fn close(&mut self) {
        if let Err(e) = self.sync() {
            log::error!("capture to {}: {e}", self.path.display());
        }
    }
}
