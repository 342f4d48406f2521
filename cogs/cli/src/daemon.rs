//! Running as a well-behaved *nix daemon: detach, pidfile, umask, working
//! directory, privilege drop, standard streams to `/dev/null`.
//!
//! The order matters, and `tourbillon run` keeps it: [`detach`] forks
//! before any thread, poll or signal registration exists; the [`Pidfile`] is
//! created (exclusively, locked) while still privileged; the privilege drop
//! ([`drop_privileges`]) comes after what needs root is open.

use std::ffi::CString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The `[daemon]` section.
///
/// Relative paths, here and in the cogs' settings, are taken from the
/// directory `tourbillon` was started in, before `workdir` or `detach`
/// change it (see [`paths::resolve`](crate::paths::resolve)).
///
/// Under systemd's `User=` (the shipped `dist/tourbillon.service`), set
/// neither `user` nor `detach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Detach from the terminal (fork, setsid, fork again) and send the
    /// standard streams to `/dev/null`. Default false: stay in the
    /// foreground, as systemd wants.
    pub detach: bool,
    /// A pidfile: created exclusively and locked while the daemon runs,
    /// removed at exit. A stale one (its process is gone) is replaced; a
    /// live one is an error that names the pid. Default none.
    #[serde(deserialize_with = "tourbillon_cogs::setting::optional_path")]
    pub pidfile: Option<PathBuf>,
    /// The file mode creation mask, in octal (`"027"`). Default: unchanged.
    pub umask: Option<String>,
    /// Change to this directory, once the relative paths of the
    /// configuration are resolved. Default: unchanged (`/` when detached).
    #[serde(deserialize_with = "tourbillon_cogs::setting::optional_path")]
    pub workdir: Option<PathBuf>,
    /// Run as this user (name or uid) once what needs root is open. Default: unchanged.
    pub user: Option<String>,
    /// Run as this group (name or gid); default: the user's primary group.
    pub group: Option<String>,
    /// Seconds the trains have to finish after SIGTERM before the exit is
    /// forced. Default 60.
    pub finish_deadline_secs: u64,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            detach: false,
            pidfile: None,
            umask: None,
            workdir: None,
            user: None,
            group: None,
            finish_deadline_secs: 60,
        }
    }
}

/// What went wrong while becoming a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another instance holds the pidfile.
    #[error("pidfile {path}: another instance is running as pid {pid}")]
    Running {
        /// The pidfile.
        path: PathBuf,
        /// The pid it names.
        pid: i32,
    },
    /// A setting is wrong.
    #[error("daemon.{key}: {message}")]
    Setting {
        /// The key in `[daemon]`.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

fn check(rc: libc::c_int, what: &str) -> Result<(), DaemonError> {
    if rc < 0 {
        Err(DaemonError::Io {
            what: what.to_owned(),
            source: io::Error::last_os_error(),
        })
    } else {
        Ok(())
    }
}

/// A held pidfile: locked while it lives, removed when dropped.
pub struct Pidfile {
    path: PathBuf,
    file: File,
}

impl fmt::Debug for Pidfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pidfile").field("path", &self.path).finish()
    }
}

impl Pidfile {
    /// Creates `path` with our pid, exclusively, and locks it. A pidfile
    /// left by a dead process is replaced; a live one is
    /// [`DaemonError::Running`].
    pub fn create(path: &Path) -> Result<Pidfile, DaemonError> {
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).mode(0o644).open(path) {
                Ok(file) => {
                    lock(&file).map_err(io_err(format!("pidfile {}: lock", path.display())))?;
                    let mut p = Pidfile {
                        path: path.to_owned(),
                        file,
                    };
                    p.write_pid()?;
                    return Ok(p);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let mut existing = match File::open(path) {
                        Ok(f) => f,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err(format!("pidfile {}", path.display()))(e)),
                    };
                    let mut text = String::new();
                    let _ = existing.read_to_string(&mut text);
                    let pid: Option<i32> = text.trim().parse().ok();
                    // A live holder keeps its lock; a process that died lost it.
                    let locked = lock(&existing).is_err();
                    let alive = pid.is_some_and(|pid| pid > 0 && unsafe { libc::kill(pid, 0) } == 0);
                    if locked || alive {
                        return Err(DaemonError::Running {
                            path: path.to_owned(),
                            pid: pid.unwrap_or(0),
                        });
                    }
                    log::warn!(
                        "pidfile {}: replacing a stale pidfile of pid {}",
                        path.display(),
                        text.trim()
                    );
                    std::fs::remove_file(path).map_err(io_err(format!("pidfile {}: remove stale", path.display())))?;
                }
                Err(e) => return Err(io_err(format!("pidfile {}: create", path.display()))(e)),
            }
        }
        Err(DaemonError::Io {
            what: format!("pidfile {}", path.display()),
            source: io::Error::other("it keeps appearing and disappearing"),
        })
    }

    /// Writes our (current) pid: after a fork the pid changes.
    pub fn write_pid(&mut self) -> Result<(), DaemonError> {
        let what = format!("pidfile {}: write", self.path.display());
        self.file.set_len(0).map_err(io_err(&what))?;
        self.file.rewind().map_err(io_err(&what))?;
        writeln!(self.file, "{}", std::process::id()).map_err(io_err(&what))?;
        self.file.sync_all().map_err(io_err(what))
    }

    /// The pidfile's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Pidfile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // After a privilege drop, the directory may no longer be ours.
            Err(e) => log::warn!("pidfile {}: cannot remove it: {e}", self.path.display()),
        }
    }
}

fn lock(file: &File) -> io::Result<()> {
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A user and group to become.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The uid.
    pub uid: libc::uid_t,
    /// The gid.
    pub gid: libc::gid_t,
}

/// Looks up `[daemon] user` / `group`, without changing anything.
pub fn identity(settings: &DaemonSettings) -> Result<Option<Identity>, DaemonError> {
    let Some(user) = &settings.user else {
        if settings.group.is_some() {
            return Err(DaemonError::Setting {
                key: "group",
                message: "set `user` too: the group is dropped to with the user".into(),
            });
        }
        return Ok(None);
    };
    let (uid, primary) = lookup_user(user)?;
    let gid = match &settings.group {
        Some(g) => lookup_group(g)?,
        None => primary,
    };
    // SAFETY: these have no failure mode.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        return Ok(Some(Identity { uid, gid }));
    }
    // Not root (systemd's User=, a user's shell): nothing can be dropped
    // to, and nothing needs to be if it is who we are already.
    if uid != euid {
        return Err(DaemonError::Setting {
            key: "user",
            message: format!(
                "`{user}` is set but the process already runs as uid {euid} (systemd's User=?): \
                 drop daemon.user, or run as root"
            ),
        });
    }
    if gid != egid {
        return Err(DaemonError::Setting {
            key: "group",
            message: format!(
                "gid {gid} is asked but the process already runs as gid {egid} (systemd's Group=?): \
                 drop daemon.group, or run as root"
            ),
        });
    }
    Ok(None)
}

fn lookup_user(user: &str) -> Result<(libc::uid_t, libc::gid_t), DaemonError> {
    let c = CString::new(user).map_err(|_| DaemonError::Setting {
        key: "user",
        message: "contains a NUL byte".into(),
    })?;
    // SAFETY: getpwnam/getpwuid return a pointer into static storage that we
    // read at once, before any other call; no threads exist yet.
    let pw = unsafe {
        match user.parse::<libc::uid_t>() {
            Ok(uid) => libc::getpwuid(uid),
            Err(_) => libc::getpwnam(c.as_ptr()),
        }
    };
    if pw.is_null() {
        return Err(DaemonError::Setting {
            key: "user",
            message: format!("no such user `{user}`"),
        });
    }
    // SAFETY: checked non-null above.
    unsafe { Ok(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn lookup_group(group: &str) -> Result<libc::gid_t, DaemonError> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let c = CString::new(group).map_err(|_| DaemonError::Setting {
        key: "group",
        message: "contains a NUL byte".into(),
    })?;
    // SAFETY: as in lookup_user.
    let gr = unsafe { libc::getgrnam(c.as_ptr()) };
    if gr.is_null() {
        return Err(DaemonError::Setting {
            key: "group",
            message: format!("no such group `{group}`"),
        });
    }
    // SAFETY: checked non-null above.
    Ok(unsafe { (*gr).gr_gid })
}

/// Becomes `id`: supplementary groups, gid, then uid (in that order, or
/// the later calls would no longer be allowed).
pub fn drop_privileges(id: Identity) -> Result<(), DaemonError> {
    // SAFETY: plain system calls on our own process.
    unsafe {
        check(libc::setgroups(1, &id.gid), "setgroups")?;
        check(libc::setgid(id.gid), "setgid")?;
        check(libc::setuid(id.uid), "setuid")?;
        // Dropping must be permanent: getting root back must fail.
        if id.uid != 0 && libc::setuid(0) == 0 {
            return Err(DaemonError::Io {
                what: "setuid".into(),
                source: io::Error::other("root could be regained after the drop"),
            });
        }
    }
    Ok(())
}

/// Parses an octal umask (`"027"`).
pub fn parse_umask(text: &str) -> Result<libc::mode_t, DaemonError> {
    libc::mode_t::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| DaemonError::Setting {
            key: "umask",
            message: format!("`{text}` is not an octal mode between 000 and 777"),
        })
}

/// Forks into the background: fork, setsid, fork again (so the daemon can
/// never reacquire a terminal), standard streams to `/dev/null`. Returns in
/// the grandchild only; the original process exits 0 once the daemon has
/// written its readiness byte (or 1 if it failed to start), so a shell or
/// init script sees the outcome.
///
/// Call before any thread, poll or signal registration exists.
pub fn detach() -> Result<Ready, DaemonError> {
    let mut fds = [0; 2];
    // SAFETY: system calls on our own process; no threads exist yet (the
    // caller's contract), so fork is safe.
    unsafe {
        check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), "pipe")?;
        match libc::fork() {
            -1 => return Err(io_err("fork")(io::Error::last_os_error())),
            0 => {}
            _ => {
                // The starter: wait for the daemon's word, relay its error.
                libc::close(fds[1]);
                let mut reader = File::from_raw_fd(fds[0]);
                let mut word = Vec::new();
                let _ = reader.read_to_end(&mut word);
                if word.first() == Some(&b'0') {
                    libc::_exit(0);
                }
                let message = String::from_utf8_lossy(word.get(1..).unwrap_or_default());
                let message = if message.is_empty() {
                    "the daemon exited before it was ready"
                } else {
                    &message
                };
                let _ = writeln!(io::stderr(), "{message}");
                libc::_exit(1);
            }
        }
        libc::close(fds[0]);
        check(libc::setsid(), "setsid")?;
        match libc::fork() {
            -1 => return Err(io_err("fork")(io::Error::last_os_error())),
            0 => {}
            _ => libc::_exit(0),
        }
        let null = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(io_err("/dev/null"))?;
        for fd in 0..3 {
            check(libc::dup2(null.as_raw_fd(), fd), "dup2 /dev/null")?;
        }
    }
    Ok(Ready(Some(fds[1])))
}

/// Tells the process that started the daemon whether it came up.
#[derive(Debug)]
pub struct Ready(Option<libc::c_int>);

impl Ready {
    /// Not detached: nobody waits.
    pub fn none() -> Ready {
        Ready(None)
    }

    /// Reports success (or failure) to the waiting starter, once.
    pub fn report(&mut self, ok: bool) {
        self.send(if ok { b"0" } else { b"1" });
    }

    /// Reports a failure with its message, which the starter prints.
    pub fn fail(&mut self, message: &str) {
        self.send(format!("1{message}").as_bytes());
    }

    fn send(&mut self, word: &[u8]) {
        if let Some(fd) = self.0.take() {
            // SAFETY: we own the pipe's write end; File closes it.
            let mut w = unsafe { File::from_raw_fd(fd) };
            let _ = w.write_all(word);
        }
    }
}

impl Drop for Ready {
    fn drop(&mut self) {
        self.report(false)
    }
}

/// Applies umask and working directory.
pub fn apply_process_settings(settings: &DaemonSettings) -> Result<(), DaemonError> {
    if let Some(mask) = &settings.umask {
        let m = parse_umask(mask)?;
        // SAFETY: umask has no failure mode.
        unsafe { libc::umask(m) };
    }
    let dir = settings
        .workdir
        .clone()
        .or_else(|| settings.detach.then(|| PathBuf::from("/")));
    if let Some(dir) = dir {
        std::env::set_current_dir(&dir).map_err(|e| DaemonError::Setting {
            key: "workdir",
            message: format!("{}: {e}", dir.display()),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn umask_is_octal() {
        assert_eq!(parse_umask("027").unwrap(), 0o27);
        assert_eq!(parse_umask("0o777").unwrap(), 0o777);
        assert!(parse_umask("999").is_err());
        assert!(parse_umask("1000").is_err());
    }

    #[test]
    fn a_pidfile_is_exclusive_and_a_stale_one_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.pid");
        let held = Pidfile::create(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        let err = Pidfile::create(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("running as pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(!path.exists(), "the pidfile is removed on drop");
        // A pid that cannot be alive (beyond pid_max) and no lock: stale.
        std::fs::write(&path, "2147483646\n").unwrap();
        let again = Pidfile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn unknown_users_are_named() {
        let s = DaemonSettings {
            user: Some("no-such-user-tourbillon".into()),
            ..DaemonSettings::default()
        };
        assert_eq!(
            identity(&s).unwrap_err().to_string(),
            "daemon.user: no such user `no-such-user-tourbillon`"
        );
        let s = DaemonSettings {
            user: Some("root".into()),
            group: Some("0".into()),
            ..DaemonSettings::default()
        };
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(identity(&s).unwrap(), Some(Identity { uid: 0, gid: 0 }));
        } else {
            let e = identity(&s).unwrap_err().to_string();
            assert!(
                e.starts_with("daemon.user: `root` is set but the process already runs as uid"),
                "{e}"
            );
        }
    }
}
