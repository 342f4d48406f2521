//! What a [`Tail`](super::Tail) is told: [`TailSettings`], their defaults
//! and their checks.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::limits;
use crate::splitter::LinesSettings;
use crate::Error;

/// Where to start reading a file the checkpoint does not know, among those
/// present when the tail starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// From the first byte (the default: nothing is skipped).
    #[default]
    Beginning,
    /// From the end: only lines written from now on (a last line still
    /// being written is read whole).
    End,
}

impl fmt::Display for ReadFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadFrom::Beginning => "beginning",
            ReadFrom::End => "end",
        })
    }
}

/// The largest [`fingerprint_bytes`](TailSettings::fingerprint_bytes).
pub const MAX_FINGERPRINT_BYTES: usize = 1 << 20;

/// Settings of [`Tail`](super::Tail).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TailSettings {
    /// Files to follow: paths or glob patterns (`*`, `?`, `[a-z]`, `[!a-z]`,
    /// `**` for any number of directories, `\` to escape). Relative ones are
    /// taken from the working directory at construction. At least one; no
    /// default.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub include: Vec<String>,
    /// Files not to follow, among those `include` matches: a pattern without
    /// a `/` matches file names (`"*.gz"`), one with a `/` whole paths.
    /// Default none.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub exclude: Vec<String>,
    /// Where to start in a file the checkpoint does not know, if it is
    /// there when the tail starts: `"beginning"` (default) or `"end"`.
    /// Files that appear later are always read from the beginning.
    pub read_from: ReadFrom,
    /// Read every file to its end, then finish (and exit) instead of
    /// following. Default false.
    pub batch: bool,
    /// Milliseconds between two looks at a path that inotify cannot watch
    /// (inotify unavailable or switched off, or out of watches). At least 1.
    /// Default 1000.
    pub poll_interval_ms: u64,
    /// Bytes read from one file before the other files get their turn. At
    /// least 1. Default 262144 (256 KiB).
    pub read_bytes_per_turn: usize,
    /// Milliseconds a last line without its newline waits for more bytes
    /// before it is emitted as it is; 0 waits until finish. Default 0.
    pub partial_line_idle_ms: u64,
    /// Milliseconds a file rotated away or deleted is kept open, in case
    /// its writer still appends; it is closed after that once it is read to
    /// its end and every line of it is delivered. Default 5000.
    pub rotate_wait_ms: u64,
    /// Directory of the state store that keeps the positions across
    /// restarts (created if missing; one tail per directory). Default none:
    /// nothing is kept, every start goes by `read_from`.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Milliseconds between two saves of the positions: what a restart
    /// after a crash may read again. At least 1. Default 1000.
    pub checkpoint_interval_ms: u64,
    /// First bytes of a file whose checksum tells it from another file on
    /// the same inode. At least 1, at most 1048576 (1 MiB). Default 256.
    pub fingerprint_bytes: usize,
    /// Where files rotated away may go besides the directories the
    /// patterns look into: glob patterns (as `include`) of files, such as
    /// logrotate's `olddir` (`["/var/log/app/old/*"]`). Only used at start,
    /// to find the files the checkpoint knows that were rotated there while
    /// the tail was stopped, and read what is left of them; never followed
    /// otherwise. Default none.
    #[serde(deserialize_with = "crate::setting::paths")]
    pub rotated_paths: Vec<String>,
    /// Files held open at once, at most (see [Descriptors](super#descriptors));
    /// more are followed by closing idle ones and opening them again when
    /// they grow. At least 1. Default 1024, but at most half the soft
    /// `RLIMIT_NOFILE` (`ulimit -n`) of the process when the settings are
    /// made, so the rest of the process keeps descriptors of its own.
    pub max_open_files: usize,
    /// How lines are split (maximum length, `\r\n`, UTF-8).
    pub lines: LinesSettings,
}

impl Default for TailSettings {
    fn default() -> Self {
        TailSettings {
            include: Vec::new(),
            exclude: Vec::new(),
            read_from: ReadFrom::Beginning,
            batch: false,
            poll_interval_ms: 1000,
            read_bytes_per_turn: 256 * 1024,
            partial_line_idle_ms: 0,
            rotate_wait_ms: 5000,
            checkpoint_dir: None,
            checkpoint_interval_ms: 1000,
            fingerprint_bytes: 256,
            rotated_paths: Vec::new(),
            max_open_files: limits::default_max_open_files(),
            lines: LinesSettings::default(),
        }
    }
}

impl TailSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        if self.include.is_empty() {
            return Err(Error::setting("include", "required: at least one path or pattern"));
        }
        for (key, value) in [
            ("poll_interval_ms", self.poll_interval_ms),
            ("read_bytes_per_turn", self.read_bytes_per_turn as u64),
            ("checkpoint_interval_ms", self.checkpoint_interval_ms),
            ("fingerprint_bytes", self.fingerprint_bytes as u64),
            ("max_open_files", self.max_open_files as u64),
        ] {
            if value == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        if self.fingerprint_bytes > MAX_FINGERPRINT_BYTES {
            return Err(Error::setting(
                "fingerprint_bytes",
                format!("must be at most {MAX_FINGERPRINT_BYTES} (1 MiB): they are read and kept per file"),
            ));
        }
        self.lines.validate().map_err(|e| match e {
            Error::Setting { key, message } => Error::Setting {
                key: format!("lines.{key}"),
                message,
            },
            other => other,
        })
    }
}

impl fmt::Display for TailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "include=[{}]", self.include.join(", "))?;
        if !self.exclude.is_empty() {
            write!(f, " exclude=[{}]", self.exclude.join(", "))?;
        }
        write!(
            f,
            " read_from={} batch={} poll_interval_ms={} read_bytes_per_turn={} partial_line_idle_ms={} \
             rotate_wait_ms={}",
            self.read_from,
            self.batch,
            self.poll_interval_ms,
            self.read_bytes_per_turn,
            self.partial_line_idle_ms,
            self.rotate_wait_ms
        )?;
        match &self.checkpoint_dir {
            Some(dir) => write!(
                f,
                " checkpoint_dir={} checkpoint_interval_ms={}",
                dir.display(),
                self.checkpoint_interval_ms
            )?,
            None => f.write_str(" checkpoint_dir=none")?,
        }
        if !self.rotated_paths.is_empty() {
            write!(f, " rotated_paths=[{}]", self.rotated_paths.join(", "))?;
        }
        write!(
            f,
            " fingerprint_bytes={} max_open_files={} {}",
            self.fingerprint_bytes, self.max_open_files, self.lines
        )
    }
}
