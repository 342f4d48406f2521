//! Checks shared by the settings of every cog, made while a value is read so
//! that the error names its key path (`trains.web.cogs[4].path: …`) like
//! every other configuration error.
//!
//! Use them on settings fields with `#[serde(deserialize_with = "…")]`:
//!
//! ```
//! use std::path::PathBuf;
//! use serde::Deserialize;
//!
//! #[derive(Debug, Deserialize)]
//! struct Settings {
//!     #[serde(deserialize_with = "tourbillon_cogs::setting::path")]
//!     path: PathBuf,
//!     #[serde(default, deserialize_with = "tourbillon_cogs::setting::optional_path")]
//!     state: Option<PathBuf>,
//! }
//!
//! let err = serde_json::from_str::<Settings>(r#"{"path": ""}"#).unwrap_err();
//! assert!(err.to_string().starts_with("an empty path"));
//! let ok: Settings = serde_json::from_str(r#"{"path": "/tmp/x"}"#).unwrap();
//! assert_eq!(ok.state, None);
//! ```

use std::path::PathBuf;

use serde::{de, Deserialize, Deserializer};

use crate::Error;

const EMPTY: &str = "an empty path: name a file or directory, or leave the key out";

/// A path that is not empty (`""` would mean the working directory to some
/// calls and nothing to others).
pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    let p = PathBuf::deserialize(d)?;
    if p.as_os_str().is_empty() {
        return Err(de::Error::custom(EMPTY));
    }
    Ok(p)
}

/// An optional path that, when given, is not empty.
pub fn optional_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    match Option::<PathBuf>::deserialize(d)? {
        Some(p) if p.as_os_str().is_empty() => Err(de::Error::custom(EMPTY)),
        p => Ok(p),
    }
}

/// A list of paths or patterns none of which is empty.
pub fn paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let all = Vec::<String>::deserialize(d)?;
    if let Some(i) = all.iter().position(String::is_empty) {
        return Err(de::Error::custom(format_args!("item {i}: {EMPTY}")));
    }
    Ok(all)
}

/// The largest write buffer a drain takes: it is allocated whole at start.
pub const MAX_BUFFER_BYTES: usize = 1 << 30;

/// Checks a drain's `buffer_bytes`: at least 1, at most [`MAX_BUFFER_BYTES`].
pub fn buffer_bytes(value: usize) -> Result<(), Error> {
    if value == 0 {
        return Err(Error::setting("buffer_bytes", "must be at least 1"));
    }
    if value > MAX_BUFFER_BYTES {
        return Err(Error::setting(
            "buffer_bytes",
            format!("must be at most {MAX_BUFFER_BYTES} (1 GiB): the buffer is allocated at start"),
        ));
    }
    Ok(())
}
