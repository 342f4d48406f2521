//! Where to look, at start, for the files the checkpoint knows that no
//! pattern matches any more: rotated, moved or retargeted while the tail
//! was stopped.
//!
//! A file is looked for by device and inode (its first bytes are checked
//! by the caller) in:
//! - the directories the patterns look into, and the directory of the path
//!   it was found under (rotation by rename);
//! - the directory the file itself was in when its position was saved, and
//!   the one the path resolves to now (a symlink's target: the Kubernetes
//!   layout, where `0.log` behind `containers/*.log` is renamed to
//!   `0.log.<timestamp>` beside it; a symlink pointed elsewhere);
//! - the files matching [`rotated_paths`](super::TailSettings::rotated_paths)
//!   (logrotate's `olddir`, archives).
//!
//! Directory entries carry their inode, so a directory is listed, not every
//! file in it opened or even stat'ed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::glob::{Expansion, Pattern};
use super::position::{Position, Positions};

/// What a search found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// Paths that may be each saved file, by device and inode (in the
    /// order looked at: directories, then `rotated_paths`).
    pub(crate) paths: BTreeMap<(u64, u64), Vec<PathBuf>>,
    /// Directories looked into.
    pub(crate) dirs: BTreeSet<PathBuf>,
    /// Directories that could not be listed, and why: a file not found may
    /// be in one of them.
    pub(crate) failed: Vec<(PathBuf, io::Error)>,
}

impl Found {
    /// Says that the file `saved` describes was not found (where it was
    /// looked for, besides `rotated_paths`), and what of it was never
    /// delivered.
    pub(crate) fn warn_lost(&self, saved: &Position, rotated_paths: &[String]) {
        let mut looked: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
        looked.extend(rotated_paths.iter().cloned());
        let mut failed = String::new();
        for (dir, e) in &self.failed {
            failed.push_str(&format!("; {} could not be listed: {e}", dir.display()));
        }
        let never = if saved.size >= saved.pos {
            format!("{} bytes", saved.size - saved.pos)
        } else {
            "an unknown number of bytes (the checkpoint predates sizes)".to_owned()
        };
        log::warn!(
            "{}: in the checkpoint (delivered up to byte {}, {} bytes when last saved) but not found again in {}{}: \
             {never} of it were never delivered, and whatever was written to it after that (rotated away \
             twice, compressed or deleted while stopped? name where rotated files go in `rotated_paths`)",
            saved.path,
            saved.pos,
            saved.size,
            looked.join(", "),
            failed,
        );
    }
}

/// Looks for the files `saved` describes in `watched` (the patterns'
/// directories), the directories each file's saved paths point into, and
/// what `rotated` matches.
pub(crate) fn search(saved: &Positions, watched: impl IntoIterator<Item = PathBuf>, rotated: &[Pattern]) -> Found {
    let mut found = Found::default();
    if saved.is_empty() {
        return found;
    }
    let mut dirs: BTreeSet<PathBuf> = watched.into_iter().collect();
    for p in saved.values() {
        let path = Path::new(&p.path);
        let real = p.real_path.as_deref().map(PathBuf::from);
        let now = std::fs::canonicalize(path).ok();
        for place in [Some(path.to_path_buf()), real, now].into_iter().flatten() {
            if let Some(parent) = place.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
    }
    let mut by_ino: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
    for &(dev, ino) in saved.keys() {
        by_ino.entry(ino).or_default().push((dev, ino));
    }
    for dir in &dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                found.failed.push((dir.clone(), e));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    found.failed.push((dir.clone(), e));
                    break;
                }
            };
            // The entry's inode, not its target's: a symlink is not the file.
            for &key in by_ino.get(&entry.ino()).into_iter().flatten() {
                found.paths.entry(key).or_default().push(entry.path());
            }
        }
    }
    found.dirs = dirs;
    let mut exp = Expansion::default();
    for (i, pattern) in rotated.iter().enumerate() {
        pattern.expand(i, &mut exp);
    }
    for path in exp.files {
        if let Ok(m) = std::fs::metadata(&path) {
            let key = (m.dev(), m.ino());
            if saved.contains_key(&key) {
                let paths = found.paths.entry(key).or_default();
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supply::tail::Position;

    fn saved_as(path: &Path, real: Option<&Path>) -> (Positions, (u64, u64)) {
        let m = std::fs::metadata(path).unwrap();
        let key = (m.dev(), m.ino());
        let p = Position {
            dev: key.0,
            ino: key.1,
            path: "/nowhere/app.log".into(),
            pos: 0,
            line: 0,
            head_len: 0,
            head_crc: 0,
            real_path: real.map(|r| r.to_string_lossy().into_owned()),
            size: 0,
            open: false,
        };
        (Positions::from([(key, p)]), key)
    }

    #[test]
    fn a_file_is_found_beside_where_it_really_was() {
        let dir = tempfile::tempdir().unwrap();
        let pods = dir.path().join("pods");
        std::fs::create_dir(&pods).unwrap();
        std::fs::write(pods.join("0.log"), "x\n").unwrap();
        let (saved, key) = saved_as(&pods.join("0.log"), Some(&pods.join("0.log")));
        std::fs::rename(pods.join("0.log"), pods.join("0.log.20240101")).unwrap();
        let found = search(&saved, [], &[]);
        assert_eq!(found.paths[&key], [pods.join("0.log.20240101")]);
        assert!(found.failed.is_empty());
    }

    #[test]
    fn a_file_is_found_where_rotated_paths_point() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old");
        std::fs::create_dir(&old).unwrap();
        std::fs::write(dir.path().join("app.log"), "x\n").unwrap();
        let (saved, key) = saved_as(&dir.path().join("app.log"), None);
        std::fs::rename(dir.path().join("app.log"), old.join("app.log.1")).unwrap();
        assert!(search(&saved, [], &[]).paths.is_empty(), "not where it was");
        let rotated = Pattern::parse(&format!("{}/*", old.display()), Path::new("/")).unwrap();
        assert_eq!(search(&saved, [], &[rotated]).paths[&key], [old.join("app.log.1")]);
    }
}
