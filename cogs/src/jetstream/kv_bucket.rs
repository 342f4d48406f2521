//! What `kv_watch` and `kv_put` share: the bucket settings, checking a
//! bucket name and a key, and binding (or creating) the bucket on the
//! helper thread.

use std::time::Duration;

use async_nats::jetstream::kv;
use serde::{Deserialize, Serialize};

use super::client::Backoff;
use crate::Error;

/// How a bucket is made when `create_bucket` is set; an existing bucket
/// keeps its own configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BucketSettings {
    /// Create the bucket (file storage) if it does not exist. Default false:
    /// it must exist (`nats kv add NAME`).
    pub create_bucket: bool,
    /// Revisions kept per key by a bucket this cog creates (1 to 64): a
    /// watcher that resumes after more updates of one key than this sees
    /// only the ones kept. Default 64.
    pub history: i64,
    /// Largest value a created bucket takes, in bytes; -1: the server's
    /// `max_payload` (1 MiB unless configured). Default -1.
    pub max_value_size: i32,
}

impl Default for BucketSettings {
    fn default() -> Self {
        BucketSettings {
            create_bucket: false,
            history: 64,
            max_value_size: -1,
        }
    }
}

impl BucketSettings {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(1..=64).contains(&self.history) {
            return Err(Error::setting("history", "from 1 to 64 revisions per key"));
        }
        if self.max_value_size == 0 || self.max_value_size < -1 {
            return Err(Error::setting(
                "max_value_size",
                "-1 (the server's limit) or at least 1",
            ));
        }
        Ok(())
    }
}

/// A bucket name: letters, digits, `-` and `_`.
pub(super) fn validate_bucket(bucket: &str) -> Result<(), Error> {
    if bucket.is_empty()
        || !bucket
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::setting(
            "bucket",
            format!("`{bucket}`: required, letters, digits, `-` and `_` only"),
        ));
    }
    Ok(())
}

/// A key as the server takes it: `[-/_=.a-zA-Z0-9]+`, not starting or
/// ending with `.`; with `wildcards`, `*` and `>` tokens too (a pattern).
pub(crate) fn valid_key(key: &str, wildcards: bool) -> bool {
    if key.is_empty() || key.starts_with('.') || key.ends_with('.') {
        return false;
    }
    if wildcards {
        let tokens: Vec<&str> = key.split('.').collect();
        return tokens.iter().enumerate().all(|(i, t)| match *t {
            "*" => true,
            ">" => i + 1 == tokens.len(),
            t => valid_key(t, false),
        });
    }
    key.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '_' | '=' | '.'))
}

/// The stream of a bucket, as `nats kv add` makes it. Made here rather
/// than by the client's `create_key_value`, which asks the server for
/// account details that servers before 2.10 do not give in its format.
fn stream_config(bucket: &str, s: &BucketSettings) -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
    Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: s.history,
        max_message_size: s.max_value_size,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        duplicate_window: Duration::from_secs(120),
        num_replicas: 1,
        ..Default::default()
    }
}

/// Binds the bucket (creating it if asked), retrying while the server is
/// away; `who` names the cog in log lines.
pub(super) async fn bind(
    js: &async_nats::jetstream::Context,
    bucket: &str,
    s: &BucketSettings,
    who: &str,
) -> kv::Store {
    let mut backoff = Backoff::new();
    let mut throttle = crate::LogThrottle::new(Duration::from_secs(10));
    loop {
        let attempt = match js.get_key_value(bucket).await {
            Ok(store) => Ok(store),
            Err(e) if s.create_bucket => match js.get_or_create_stream(stream_config(bucket, s)).await {
                Ok(_) => js
                    .get_key_value(bucket)
                    .await
                    .map_err(|e| format!("bucket {bucket}: {e}")),
                Err(c) => Err(format!("bucket {bucket}: {e}; creating it: {c}")),
            },
            Err(e) => Err(format!("bucket {bucket}: {e} (create it, or set create_bucket = true)")),
        };
        match attempt {
            Ok(store) => {
                log::info!("{who}: bound to bucket {bucket}");
                return store;
            }
            Err(e) => {
                if let crate::Verdict::Log { held } = throttle.hit(std::time::Instant::now()) {
                    log::warn!("{who}: {e}; retrying{}", crate::Summary::note(held));
                }
            }
        }
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_patterns() {
        assert!(valid_key("counter", false));
        assert!(valid_key("a.b-c/d_e=f", false));
        assert!(!valid_key("", false));
        assert!(!valid_key(".a", false));
        assert!(!valid_key("a b", false));
        assert!(!valid_key("a.*", false));
        assert!(valid_key("a.*", true));
        assert!(valid_key(">", true));
        assert!(valid_key("a.>", true));
        assert!(!valid_key("a.>.b", true));
        assert!(!valid_key("a*", true));
    }

    #[test]
    fn bucket_names_and_settings_are_checked() {
        assert!(validate_bucket("shared_1-a").is_ok());
        assert!(validate_bucket("a.b").unwrap_err().to_string().starts_with("bucket:"));
        let s = BucketSettings {
            history: 65,
            ..BucketSettings::default()
        };
        assert!(s.validate().unwrap_err().to_string().starts_with("history:"));
    }
}
