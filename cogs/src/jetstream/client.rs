//! What both JetStream cogs share: the servers and [`Auth`] settings,
//! connecting, the helper thread's runtime, retry backoff and the run nonce
//! of message ids.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

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
    pub(super) fn validate(&self) -> Result<(), Error> {
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

pub(super) fn default_servers() -> Vec<String> {
    vec!["nats://127.0.0.1:4222".into()]
}

pub(super) fn validate_servers(servers: &[String]) -> Result<(), Error> {
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
pub(super) async fn connect(servers: &[String], auth: &Auth, name: &str) -> Result<async_nats::Client, String> {
    let options = connect_options(auth, name).await?;
    let addrs: Vec<async_nats::ServerAddr> = servers.iter().filter_map(|s| s.parse().ok()).collect();
    options.connect(addrs).await.map_err(|e| e.to_string())
}

/// A current-thread runtime for a helper thread.
pub(super) fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Exponential backoff between retries, 100 ms to 5 s.
#[derive(Debug)]
pub(super) struct Backoff(Duration);

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff(Duration::from_millis(100))
    }
    pub(super) async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }
}

/// 64 random bits for this run of the process: what makes message ids
/// unique across restarts, where event ids start over.
pub(super) fn run_nonce() -> u64 {
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
