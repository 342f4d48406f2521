//! The files and directories a configuration names, each with its key
//! path and what is done with it: what `run` resolves against the
//! directory it was started in (before `daemon.workdir` or `detach`
//! change it), prepares for the user it drops to, and what `check` finds
//! missing, unwritable or unreadable before anything starts.
//!
//! The kinds are those of [`Registry::standard`](crate::registry::Registry::standard);
//! a kind a binary adds itself has its paths taken as they are.

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use crate::app::PlannedTrain;
use crate::config::{Config, ConfigError, KeyPath};
use crate::daemon::Identity;

/// What a configured path is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Use {
    /// A file that is read (a key, credentials, a spec).
    Reads,
    /// A file that is created or appended to: its directory must be writable.
    WritesFile,
    /// A directory that is created if missing, and written in.
    WritesDir,
    /// Glob patterns of files to read (a list).
    Globs,
}

/// The path settings of the standard kinds: kind, key (dotted below the
/// cog), use.
const SETTINGS: &[(&str, &str, Use)] = &[
    ("tail", "include", Use::Globs),
    ("tail", "exclude", Use::Globs),
    ("tail", "rotated_paths", Use::Globs),
    ("tail", "checkpoint_dir", Use::WritesDir),
    ("file", "path", Use::WritesFile),
    ("anonymize", "key_file", Use::Reads),
    ("program", "spec", Use::Reads),
    ("program", "state_dir", Use::WritesDir),
    ("program_server", "spec", Use::Reads),
    ("program_server", "state_dir", Use::WritesDir),
    ("jetstream_consume", "auth.credentials_file", Use::Reads),
    ("jetstream_consume", "auth.token_file", Use::Reads),
    ("jetstream_consume", "auth.nkey_file", Use::Reads),
    ("jetstream_consume", "auth.password_file", Use::Reads),
    ("jetstream_consume", "auth.tls_ca_file", Use::Reads),
    ("jetstream_consume", "auth.tls_cert_file", Use::Reads),
    ("jetstream_consume", "auth.tls_key_file", Use::Reads),
    ("jetstream_publish", "auth.credentials_file", Use::Reads),
    ("jetstream_publish", "auth.token_file", Use::Reads),
    ("jetstream_publish", "auth.nkey_file", Use::Reads),
    ("jetstream_publish", "auth.password_file", Use::Reads),
    ("jetstream_publish", "auth.tls_ca_file", Use::Reads),
    ("jetstream_publish", "auth.tls_cert_file", Use::Reads),
    ("jetstream_publish", "auth.tls_key_file", Use::Reads),
    ("kv_watch", "state_dir", Use::WritesDir),
    ("kv_watch", "auth.credentials_file", Use::Reads),
    ("kv_watch", "auth.token_file", Use::Reads),
    ("kv_watch", "auth.nkey_file", Use::Reads),
    ("kv_watch", "auth.password_file", Use::Reads),
    ("kv_watch", "auth.tls_ca_file", Use::Reads),
    ("kv_watch", "auth.tls_cert_file", Use::Reads),
    ("kv_watch", "auth.tls_key_file", Use::Reads),
    ("kv_put", "auth.credentials_file", Use::Reads),
    ("kv_put", "auth.token_file", Use::Reads),
    ("kv_put", "auth.nkey_file", Use::Reads),
    ("kv_put", "auth.password_file", Use::Reads),
    ("kv_put", "auth.tls_ca_file", Use::Reads),
    ("kv_put", "auth.tls_cert_file", Use::Reads),
    ("kv_put", "auth.tls_key_file", Use::Reads),
];

/// One path a configuration names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigPath {
    /// Its key path (`trains.web.cogs[3].path`).
    pub key: KeyPath,
    /// The cog kind, or the section (`daemon`, `log`).
    pub kind: String,
    /// The path (for [`Use::Globs`], one pattern).
    pub path: PathBuf,
    /// What it is for.
    pub used: Use,
}

fn walk<'a>(mut v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    for part in key.split('.') {
        v = v.get_mut(part)?;
    }
    Some(v)
}

/// Calls `f` on every path value (each pattern of a list) of the cogs'
/// settings as configured, with its key path.
fn each_cog_path(plan: &mut [PlannedTrain], mut f: impl FnMut(KeyPath, &str, &str, Use, &mut String)) {
    for t in plan {
        for c in &mut t.config.cogs {
            for (kind, key, used) in SETTINGS {
                if *kind != c.kind {
                    continue;
                }
                let mut p = c.path.clone();
                for part in key.split('.') {
                    p = p.key(part);
                }
                match walk(&mut c.settings, key) {
                    Some(Value::String(s)) => f(p, kind, key, *used, s),
                    Some(Value::Array(list)) => {
                        for (i, v) in list.iter_mut().enumerate() {
                            if let Value::String(s) = v {
                                f(p.index(i), kind, key, *used, s);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Every path the configuration names, cogs' (as configured: a default
/// names none) and `daemon.pidfile`, `log.file`.
pub fn list(config: &Config, plan: &mut [PlannedTrain]) -> Vec<ConfigPath> {
    let mut out = Vec::new();
    let root = KeyPath::default();
    if let Some(p) = &config.daemon.pidfile {
        out.push(ConfigPath {
            key: root.key("daemon").key("pidfile"),
            kind: "daemon".into(),
            path: p.clone(),
            used: Use::WritesFile,
        });
    }
    if let Some(p) = &config.log.file {
        out.push(ConfigPath {
            key: root.key("log").key("file"),
            kind: "log".into(),
            path: p.clone(),
            used: Use::WritesFile,
        });
    }
    each_cog_path(plan, |key, kind, _, used, s| {
        out.push(ConfigPath {
            key,
            kind: kind.into(),
            path: PathBuf::from(&*s),
            used,
        })
    });
    out
}

/// Makes every relative path of the configuration absolute against
/// `start` (the directory `tourbillon` was started in), so that
/// `daemon.workdir` and `detach` (which change to `/`) do not change what
/// they name: the cogs' paths and globs, `daemon.pidfile`,
/// `daemon.workdir`, `log.file`.
pub fn resolve(config: &mut Config, plan: &mut [PlannedTrain], start: &Path) {
    for p in [
        &mut config.daemon.pidfile,
        &mut config.daemon.workdir,
        &mut config.log.file,
    ]
    .into_iter()
    .flatten()
    {
        if p.is_relative() {
            *p = start.join(&*p);
        }
    }
    each_cog_path(plan, |_, _, key, used, s| {
        if s.is_empty() || Path::new(s.as_str()).is_absolute() {
            return;
        }
        if used != Use::Globs {
            *s = start.join(&*s).to_string_lossy().into_owned();
        } else if key != "exclude" || s.contains('/') {
            // An exclude without a `/` matches file names anywhere: it stays.
            *s = format!("{}/{s}", escape_glob(&start.to_string_lossy()));
        }
    });
}

/// `text` as a glob pattern that matches it literally (the tail's globs
/// escape with `\`).
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The nearest existing ancestor of `path` (itself if it exists); none
/// past a `..` (what it names depends on directories not there yet).
pub fn existing_ancestor(path: &Path) -> Option<&Path> {
    let mut p = Some(path);
    while let Some(q) = p {
        if q.as_os_str().is_empty() {
            return Some(Path::new("."));
        }
        if q.exists() {
            return Some(q);
        }
        if matches!(q.components().next_back(), Some(Component::ParentDir)) {
            return None;
        }
        p = q.parent();
    }
    None
}

/// Makes the directories the cogs will write belong to `id` before the
/// privilege drop (run as root): a `checkpoint_dir` (or program
/// `state_dir`) is created with its missing parents, and it and what is
/// in it are given to `id`; the missing directory of an output file or
/// of the pidfile is created when its parent exists, and given to `id`.
/// A directory that was there already and holds other things (`/var/log`)
/// is left as it is: `check` says when `id` cannot write it.
pub fn prepare(paths: &[ConfigPath], id: Identity) -> Result<(), String> {
    for p in paths {
        let fail = |what: &str, path: &Path, e: io::Error| format!("{}: {what} {}: {e}", p.key, path.display());
        match p.used {
            Use::WritesDir => {
                let mut missing = Vec::new();
                let mut q = p.path.as_path();
                while !q.as_os_str().is_empty() && !q.exists() {
                    missing.push(q.to_owned());
                    match q.parent() {
                        Some(up) => q = up,
                        None => break,
                    }
                }
                std::fs::create_dir_all(&p.path).map_err(|e| fail("cannot create", &p.path, e))?;
                for dir in missing.iter().rev() {
                    chown(dir, id).map_err(|e| fail("cannot chown", dir, e))?;
                }
                chown(&p.path, id).map_err(|e| fail("cannot chown", &p.path, e))?;
                let entries = std::fs::read_dir(&p.path).map_err(|e| fail("cannot list", &p.path, e))?;
                for entry in entries.flatten() {
                    chown(&entry.path(), id).map_err(|e| fail("cannot chown", &entry.path(), e))?;
                }
            }
            Use::WritesFile => {
                let Some(dir) = p.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
                    continue;
                };
                if dir.exists() || !dir.parent().is_some_and(Path::exists) {
                    continue;
                }
                match std::fs::create_dir(dir) {
                    Ok(()) => chown(dir, id).map_err(|e| fail("cannot chown", dir, e))?,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(fail("cannot create", dir, e)),
                }
            }
            Use::Reads | Use::Globs => {}
        }
    }
    Ok(())
}

fn chown(path: &Path, id: Identity) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: lchown on a NUL-terminated path; a symlink itself is given,
    // not what it points to.
    if unsafe { libc::lchown(c.as_ptr(), id.uid, id.gid) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Who writes after the start: the user dropped to, or the current one.
struct Writer {
    uid: libc::uid_t,
    gids: Vec<libc::gid_t>,
    /// The user dropped to (its name), if any.
    name: Option<String>,
}

impl Writer {
    fn who(&self) -> String {
        match &self.name {
            Some(n) => format!("user `{n}` (uid {})", self.uid),
            None => format!("the current user (uid {})", self.uid),
        }
    }

    /// Whether this user may create entries in the directory `dir`.
    fn may_write(&self, dir: &Path) -> bool {
        if self.name.is_none() {
            return access(dir, libc::W_OK | libc::X_OK);
        }
        use std::os::unix::fs::MetadataExt;
        let Ok(m) = std::fs::metadata(dir) else { return false };
        let mode = m.mode();
        let bits = if self.uid == 0 {
            return true;
        } else if m.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&m.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o3 == 0o3
    }
}

fn access(path: &Path, mode: libc::c_int) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: access on a NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), mode) == 0 }
}

/// The groups of user `name` (primary `gid`).
fn groups_of(name: &str, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let Ok(c) = std::ffi::CString::new(name) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: the buffer holds `n` gids; getgrouplist says how many it needs.
        if unsafe { libc::getgrouplist(c.as_ptr(), gid, groups.as_mut_ptr(), &mut n) } >= 0 {
            groups.truncate(n as usize);
            return groups;
        }
        if n <= before {
            return vec![gid];
        }
    }
}

/// What would fail at start for want of a user, a group, a directory or a
/// readable file, each with its key path: what `tourbillon check` adds to
/// the settings' own checks. Creates, changes and locks nothing.
pub fn check(config: &Config, plan: &mut [PlannedTrain]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let daemon = KeyPath::default().key("daemon");
    // SAFETY: these have no failure mode.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let identity = match crate::daemon::identity(&config.daemon) {
        Ok(i) => i,
        Err(crate::daemon::DaemonError::Setting { key, message }) => {
            errors.push(config.layered.error(&daemon.key(key), message));
            return errors;
        }
        Err(e) => {
            errors.push(config.layered.error(&daemon, e.to_string()));
            return errors;
        }
    };
    let writer = match (identity, &config.daemon.user) {
        (Some(id), Some(name)) => Writer {
            uid: id.uid,
            gids: groups_of(name, id.gid).into_iter().chain([id.gid]).collect(),
            name: Some(name.clone()),
        },
        _ => Writer {
            uid: euid,
            gids: vec![egid],
            name: None,
        },
    };
    // Root with a user to drop to gives the user what it will write (prepare).
    let prepared = identity.is_some();
    for p in list(config, plan) {
        let file_dir = |path: &Path| path.parent().filter(|d| !d.as_os_str().is_empty()).map(Path::to_owned);
        let (dir, created_by_cog) = match p.used {
            Use::Reads => {
                if let Err(e) = std::fs::File::open(&p.path) {
                    errors.push(
                        config
                            .layered
                            .error(&p.key, format!("cannot read {}: {e}", p.path.display())),
                    );
                }
                continue;
            }
            Use::Globs => continue,
            _ if p.kind == "log" => continue,
            Use::WritesDir => (p.path.clone(), true),
            Use::WritesFile => {
                let create_dirs = p.kind == "file" && create_dirs_of(plan, &p.key);
                (file_dir(&p.path).unwrap_or_else(|| PathBuf::from(".")), create_dirs)
            }
        };
        if dir.is_dir() {
            let given = prepared && p.used == Use::WritesDir;
            if !given && !writer.may_write(&dir) {
                errors.push(config.layered.error(
                    &p.key,
                    format!("the directory {} is not writable by {}", dir.display(), writer.who()),
                ));
            }
            continue;
        }
        let by_prepare = prepared && dir.parent().is_some_and(Path::is_dir);
        if !(created_by_cog || by_prepare) {
            errors.push(
                config
                    .layered
                    .error(&p.key, format!("the directory {} does not exist", dir.display())),
            );
            continue;
        }
        // Created at start, before the drop: by the current user.
        match existing_ancestor(&dir) {
            Some(up) if up.is_dir() && access(up, libc::W_OK | libc::X_OK) => {}
            Some(up) => errors.push(config.layered.error(
                &p.key,
                format!(
                    "the directory {} cannot be created: {} is not a writable directory",
                    dir.display(),
                    up.display()
                ),
            )),
            None => errors.push(
                config
                    .layered
                    .error(&p.key, format!("the directory {} cannot be created", dir.display())),
            ),
        }
    }
    errors
}

/// Whether the `file` cog at `key` (its `path`) creates missing directories.
fn create_dirs_of(plan: &[PlannedTrain], key: &KeyPath) -> bool {
    plan.iter()
        .flat_map(|t| t.config.cogs.iter().zip(&t.cogs))
        .find(|(c, _)| c.path.key("path") == *key)
        .is_some_and(|(_, planned)| planned.settings.get("create_dirs") == Some(&Value::Bool(true)))
}
