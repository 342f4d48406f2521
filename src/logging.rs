//! Logging: `log` + `env_logger`, set up by one call from a `[log]` section.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use log::LevelFilter;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Where log lines go.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// Standard error (the default; what systemd collects).
    #[default]
    Stderr,
    /// A file, appended to; reopened by [`LogHandle::reopen`] (on SIGHUP).
    File,
}

/// The `[log]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// Default level: `off`, `error`, `warn`, `info`, `debug` or `trace`. Default `info`.
    pub level: String,
    /// Per-module levels, e.g. `{ "tourbillon_cogs::tail" = "debug" }`. Default none.
    pub filters: BTreeMap<String, String>,
    /// `stderr` (default) or `file`.
    pub target: LogTarget,
    /// The log file when `target = "file"`.
    pub file: Option<PathBuf>,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".into(),
            filters: BTreeMap::new(),
            target: LogTarget::Stderr,
            file: None,
        }
    }
}

fn level(what: &str, text: &str) -> Result<LevelFilter, Error> {
    text.parse().map_err(|_| {
        Error::Logging(format!(
            "{what}: `{text}` is not one of off, error, warn, info, debug, trace"
        ))
    })
}

/// A log file that can be reopened after logrotate moved it away.
#[derive(Clone, Debug)]
struct Reopenable {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for Reopenable {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// What [`init`] set up; keeps what SIGHUP needs to reopen the log file.
#[derive(Clone, Debug, Default)]
pub struct LogHandle {
    file: Option<Reopenable>,
}

impl LogHandle {
    /// Reopens the log file (after logrotate renamed it); no-op for stderr.
    pub fn reopen(&self) -> io::Result<()> {
        if let Some(r) = &self.file {
            let new = open_append(&r.path)?;
            *r.file.lock().unwrap_or_else(|e| e.into_inner()) = new;
        }
        Ok(())
    }
}

/// Sets up the global logger. `RUST_LOG`, when set, overrides the levels.
/// Fails if the settings are wrong (the message names the key) or a logger
/// is already installed.
pub fn init(settings: &LogSettings) -> Result<LogHandle, Error> {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level("log.level", &settings.level)?);
    for (module, lvl) in &settings.filters {
        builder.filter_module(module, level(&format!("log.filters.{module}"), lvl)?);
    }
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    let mut handle = LogHandle::default();
    if settings.target == LogTarget::File {
        let path = settings
            .file
            .clone()
            .ok_or_else(|| Error::Logging("log.file: required when log.target = \"file\"".into()))?;
        let file = open_append(&path).map_err(|e| Error::Logging(format!("log.file: {}: {e}", path.display())))?;
        let r = Reopenable {
            path,
            file: Arc::new(Mutex::new(file)),
        };
        builder.target(env_logger::Target::Pipe(Box::new(r.clone())));
        handle.file = Some(r);
    }
    builder.format_timestamp_micros();
    builder
        .try_init()
        .map_err(|e| Error::Logging(format!("a logger is already installed: {e}")))?;
    Ok(handle)
}

/// Logs a line about one event, prefixed with its id:
/// `event_log!(log::Level::Warn, id, "dropped: {}", why)`.
#[macro_export]
macro_rules! event_log {
    ($level:expr, $id:expr, $($arg:tt)+) => {
        $crate::__log::log!($level, "[{}] {}", $id, format_args!($($arg)+))
    };
}

/// [`event_log!`] at error level.
#[macro_export]
macro_rules! event_error {
    ($id:expr, $($arg:tt)+) => { $crate::event_log!($crate::__log::Level::Error, $id, $($arg)+) };
}

/// [`event_log!`] at warn level.
#[macro_export]
macro_rules! event_warn {
    ($id:expr, $($arg:tt)+) => { $crate::event_log!($crate::__log::Level::Warn, $id, $($arg)+) };
}

/// [`event_log!`] at info level.
#[macro_export]
macro_rules! event_info {
    ($id:expr, $($arg:tt)+) => { $crate::event_log!($crate::__log::Level::Info, $id, $($arg)+) };
}

/// [`event_log!`] at debug level.
#[macro_export]
macro_rules! event_debug {
    ($id:expr, $($arg:tt)+) => { $crate::event_log!($crate::__log::Level::Debug, $id, $($arg)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_level_names_its_key() {
        let mut s = LogSettings::default();
        s.filters.insert("tourbillon".into(), "loud".into());
        let err = init(&s).unwrap_err().to_string();
        assert!(err.contains("log.filters.tourbillon"), "{err}");
        assert!(err.contains("`loud`"), "{err}");
    }
}
