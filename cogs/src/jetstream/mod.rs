//! NATS JetStream: the `jetstream_publish` drain ([`JetStreamDrain`]) and the
//! `jetstream_consume` supply ([`JetStreamSupply`]), so trains on several
//! hosts exchange events through an existing engine, at least once end to end.
//!
//! # Threads
//!
//! Each cog runs async-nats on one helper thread of its own, with a
//! current-thread tokio runtime, started in [`Cog::start`](tourbillon::Cog::start).
//! The helper hands what it receives (publish acks, messages) into the loop
//! in batches through a [`CogRemote`](tourbillon::CogRemote) (the escapement's
//! waker); the loop hands work back (publishes, acks) through an unbounded
//! channel that never blocks. The loop never waits on the network.
//!
//! # Delivery
//!
//! - The drain reports an event done only once JetStream acknowledged storing
//!   it; a publish that fails or times out is retried with the same
//!   `Nats-Msg-Id`, so a publish that did land is not stored twice (within
//!   the stream's duplicate window, two minutes by default).
//! - The supply acks a message when its event is reported done: written by a
//!   drain, or dropped on purpose (a filter, a discard). A message whose
//!   event is not done within [`ack_wait_ms`](ConsumeSettings::ack_wait_ms) is
//!   delivered again, to this process or another one sharing the consumer.
//! - A cog that fails on an event says so through the supply's [`Rejects`]
//!   handle (or the `jetstream_reject` step in a configuration) before it
//!   reports the event done: the message is nak'd with a delay and comes
//!   back, up to [`max_deliver`](ConsumeSettings::max_deliver) times, then it
//!   is termed (a poison message stops coming back).
//!
//! A process killed with `kill -9` loses nothing: what the supply had not
//! acked is delivered again; what the drain had not seen acknowledged is
//! published again by its own supply after a restart (a tail's checkpoint
//! only advances over events done).
//!
//! # Settings shared by both cogs
//!
//! `servers` (default `["nats://127.0.0.1:4222"]`) and [`auth`](Auth):
//! credentials, token, nkey and TLS are given as names of files, never as
//! secrets in the configuration; logs and listings name the files only.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

mod consume;
mod publish;
mod pull_helper;
mod reject;

pub use consume::{ConsumeSettings, Deliver, Delivery, JetStreamSupply, SupplyStats};
pub use publish::{JetStreamDrain, PublishSettings, PublishStats};
pub use reject::{Reject, RejectSettings, RejectStep, Rejects};

/// How to authenticate and encrypt: names of files only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// A NATS credentials file (`.creds`: a user JWT and its nkey seed). Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub credentials_file: Option<PathBuf>,
    /// A file holding a token (surrounding whitespace is ignored). Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub token_file: Option<PathBuf>,
    /// A file holding an nkey seed (`SU...`). Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub nkey_file: Option<PathBuf>,
    /// A user name, with `password_file`. Default none.
    pub user: Option<String>,
    /// A file holding the password of `user`. Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub password_file: Option<PathBuf>,
    /// PEM file of the certificate authorities to trust (TLS). Default none: the system's.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, with `tls_key_file` (mutual TLS). Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`. Default none.
    #[serde(deserialize_with = "crate::setting::optional_path")]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse to talk without TLS. Default false (TLS when the server asks for it).
    pub tls_required: bool,
}

impl Auth {
    fn validate(&self) -> Result<(), Error> {
        let secrets = [
            self.credentials_file.is_some(),
            self.token_file.is_some(),
            self.nkey_file.is_some(),
            self.user.is_some(),
        ];
        if secrets.iter().filter(|&&s| s).count() > 1 {
            return Err(Error::setting(
                "auth",
                "give one of credentials_file, token_file, nkey_file, user (with password_file)",
            ));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(Error::setting(
                "auth.password_file",
                "user and password_file go together",
            ));
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err(Error::setting(
                "auth.tls_key_file",
                "tls_cert_file and tls_key_file go together",
            ));
        }
        Ok(())
    }
}

impl fmt::Display for Auth {
    /// Names the files, never what they hold.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        let mut item = |f: &mut fmt::Formatter<'_>, k: &str, v: &dyn fmt::Display| {
            let sep = if any { " " } else { "" };
            any = true;
            write!(f, "{sep}{k}={v}")
        };
        if let Some(p) = &self.credentials_file {
            item(f, "credentials_file", &p.display())?;
        }
        if let Some(p) = &self.token_file {
            item(f, "token_file", &p.display())?;
        }
        if let Some(p) = &self.nkey_file {
            item(f, "nkey_file", &p.display())?;
        }
        if let Some(u) = &self.user {
            item(f, "user", u)?;
        }
        if let Some(p) = &self.tls_ca_file {
            item(f, "tls_ca_file", &p.display())?;
        }
        if let Some(p) = &self.tls_cert_file {
            item(f, "tls_cert_file", &p.display())?;
        }
        if self.tls_required {
            item(f, "tls_required", &true)?;
        }
        if !any {
            f.write_str("auth=none")?;
        }
        Ok(())
    }
}

fn default_servers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".into()]
}

fn validate_servers(servers: &[String]) -> Result<(), Error> {
    if servers.is_empty() {
        return Err(Error::setting("servers", "at least one server (nats://HOST:PORT)"));
    }
    for s in servers {
        if let Err(e) = s.parse::<async_nats::ServerAddr>() {
            return Err(Error::setting("servers", format!("`{s}`: {e}")));
        }
    }
    Ok(())
}

/// Builds the connect options: secrets are read from their files here, on
/// the helper thread, and go nowhere else.
async fn connect_options(auth: &Auth, name: &str) -> Result<async_nats::ConnectOptions, String> {
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut o = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5));
    if let Some(p) = &auth.credentials_file {
        o = o
            .credentials_file(p)
            .await
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &auth.token_file {
        o = o.token(read(p)?.trim().to_owned());
    }
    if let Some(p) = &auth.nkey_file {
        o = o.nkey(read(p)?.trim().to_owned());
    }
    if let (Some(u), Some(p)) = (&auth.user, &auth.password_file) {
        o = o.user_and_password(u.clone(), read(p)?.trim_end_matches(['\r', '\n']).to_owned());
    }
    if let Some(p) = &auth.tls_ca_file {
        o = o.add_root_certificates(p.clone());
    }
    if let (Some(c), Some(k)) = (&auth.tls_cert_file, &auth.tls_key_file) {
        o = o.add_client_certificate(c.clone(), k.clone());
    }
    if auth.tls_required {
        o = o.require_tls(true);
    }
    Ok(o)
}

/// Connects; with `retry_on_initial_connect` this returns at once and the
/// client connects (and reconnects) in the background, holding publishes.
async fn connect(servers: &[String], auth: &Auth, name: &str) -> Result<async_nats::Client, String> {
    let options = connect_options(auth, name).await?;
    let addrs: Vec<async_nats::ServerAddr> = servers.iter().filter_map(|s| s.parse().ok()).collect();
    options.connect(addrs).await.map_err(|e| e.to_string())
}

/// A current-thread runtime for a helper thread.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Exponential backoff between retries, 100 ms to 5 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// 64 random bits for this run of the process: what makes message ids
/// unique across restarts, where event ids start over.
fn run_nonce() -> u64 {
    use std::io::Read;
    let mut b = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
    {
        return u64::from_le_bytes(b);
    }
    // No urandom: the clock and the pid, mixed.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (t ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_display_names_files_not_secrets() {
        let a = Auth {
            token_file: Some("/etc/nats/token".into()),
            ..Auth::default()
        };
        assert_eq!(a.to_string(), "token_file=/etc/nats/token");
        assert_eq!(Auth::default().to_string(), "auth=none");
    }

    #[test]
    fn auth_refuses_two_kinds_of_secret() {
        let a = Auth {
            token_file: Some("t".into()),
            nkey_file: Some("n".into()),
            ..Auth::default()
        };
        assert!(a.validate().unwrap_err().to_string().starts_with("auth:"));
        let a = Auth {
            user: Some("u".into()),
            ..Auth::default()
        };
        assert!(a.validate().unwrap_err().to_string().starts_with("auth.password_file"));
    }

    #[test]
    fn servers_are_checked() {
        assert!(validate_servers(&[]).is_err());
        assert!(validate_servers(&["nats://127.0.0.1:4222".into()]).is_ok());
        assert!(validate_servers(&["http://[bad".into()]).is_err());
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(run_nonce(), run_nonce());
    }
}
