//! The settings of the `jetstream_consume` supply: which stream and durable
//! consumer, where a new consumer starts, batches, in-flight limits, and
//! their check. The supply and its helper thread both read them.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use serde::{Deserialize, Serialize};

use super::client::Auth;
use crate::Error;

/// Where a consumer created by the supply starts reading its stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deliver {
    /// Every message still in the stream. The default.
    #[default]
    All,
    /// Only messages stored after the consumer is created.
    New,
    /// The last message, then the new ones.
    Last,
}

/// Settings of [`JetStreamSupply`](super::JetStreamSupply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumeSettings {
    /// NATS servers to connect to. Default `["nats://127.0.0.1:4222"]`.
    pub servers: Vec<String>,
    /// Credentials and TLS, by file names. Default none.
    pub auth: Auth,
    /// The stream to read. Required.
    pub stream: String,
    /// Create the stream if it does not exist, over `subjects` (file
    /// storage). Default false: it must exist.
    pub create_stream: bool,
    /// The subjects of a stream this supply creates. Default: `[stream + ".>"]`.
    pub subjects: Vec<String>,
    /// The durable pull consumer's name. Processes that name the same
    /// consumer split its messages between them. Required.
    pub consumer: String,
    /// Create the consumer if it does not exist, with the settings below.
    /// Default true. An existing consumer keeps its own settings.
    pub create_consumer: bool,
    /// Only messages on this subject (wildcards allowed) reach a consumer
    /// this supply creates. Default: every subject of the stream.
    pub filter_subject: Option<String>,
    /// Where a created consumer starts: `"all"` (default), `"new"`, `"last"`.
    /// `start_sequence` or `start_time` override it, for replays.
    pub deliver: Deliver,
    /// Start a created consumer at this stream sequence. Default none.
    pub start_sequence: Option<u64>,
    /// Start a created consumer at the first message stored at or after this
    /// time (RFC 3339, `2026-01-02T03:04:05Z`). Default none.
    pub start_time: Option<String>,
    /// Milliseconds the server waits for an ack before delivering a message
    /// again; longer than the train can take with an event. Default 30000.
    pub ack_wait_ms: u64,
    /// Deliveries of a message before it is given up: a message rejected on
    /// its last delivery is termed. 0: no limit. Default 5.
    pub max_deliver: u32,
    /// Messages delivered and not yet acked, for all processes sharing the
    /// consumer: the server's backpressure. At least 1. Default 1000.
    pub max_ack_pending: u32,
    /// Messages asked for per pull request. At least 1. Default 100.
    pub batch: usize,
    /// Messages this process holds unacked at most (in the train and
    /// waiting for it): its own backpressure. At least `batch`. Default 1000.
    pub max_in_flight: usize,
    /// Milliseconds a rejected message waits before it comes back. Default 1000.
    pub nak_delay_ms: u64,
    /// The client's name, as the server shows it. Default `"tourbillon"`.
    pub name: String,
}

impl Default for ConsumeSettings {
    fn default() -> Self {
        ConsumeSettings {
            servers: super::client::default_servers(),
            auth: Auth::default(),
            stream: String::new(),
            create_stream: false,
            subjects: Vec::new(),
            consumer: String::new(),
            create_consumer: true,
            filter_subject: None,
            deliver: Deliver::All,
            start_sequence: None,
            start_time: None,
            ack_wait_ms: 30_000,
            max_deliver: 5,
            max_ack_pending: 1000,
            batch: 100,
            max_in_flight: 1000,
            nak_delay_ms: 1000,
            name: "tourbillon".into(),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['.', ' ', '\t', '*', '>', '/', '\\'])
}

impl ConsumeSettings {
    /// Checks the settings; the error names the key.
    pub fn validate(&self) -> Result<(), Error> {
        super::client::validate_servers(&self.servers)?;
        self.auth.validate()?;
        if !valid_name(&self.stream) {
            return Err(Error::setting(
                "stream",
                "required: a name without `.`, spaces or wildcards",
            ));
        }
        if !valid_name(&self.consumer) {
            return Err(Error::setting(
                "consumer",
                "required: a name without `.`, spaces or wildcards",
            ));
        }
        if self.start_sequence.is_some() && self.start_time.is_some() {
            return Err(Error::setting(
                "start_time",
                "give start_sequence or start_time, not both",
            ));
        }
        if self.start_sequence == Some(0) {
            return Err(Error::setting("start_sequence", "sequences start at 1"));
        }
        self.start_time()?;
        for (key, v) in [
            ("ack_wait_ms", self.ack_wait_ms),
            ("max_ack_pending", u64::from(self.max_ack_pending)),
            ("batch", self.batch as u64),
        ] {
            if v == 0 {
                return Err(Error::setting(key, "must be at least 1"));
            }
        }
        if self.max_in_flight < self.batch {
            return Err(Error::setting("max_in_flight", "must be at least batch"));
        }
        Ok(())
    }

    pub(super) fn start_time(&self) -> Result<Option<time::OffsetDateTime>, Error> {
        self.start_time
            .as_deref()
            .map(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| Error::setting("start_time", format!("`{t}`: {e} (expected RFC 3339)")))
            })
            .transpose()
    }

    pub(super) fn subjects(&self) -> Vec<String> {
        if self.subjects.is_empty() {
            vec![format!("{}.>", self.stream)]
        } else {
            self.subjects.clone()
        }
    }

    pub(super) fn consumer_config(&self) -> pull::Config {
        let deliver_policy = match (self.start_sequence, self.start_time().ok().flatten(), self.deliver) {
            (Some(start_sequence), _, _) => DeliverPolicy::ByStartSequence { start_sequence },
            (_, Some(start_time), _) => DeliverPolicy::ByStartTime { start_time },
            (_, _, Deliver::All) => DeliverPolicy::All,
            (_, _, Deliver::New) => DeliverPolicy::New,
            (_, _, Deliver::Last) => DeliverPolicy::Last,
        };
        pull::Config {
            durable_name: Some(self.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: Duration::from_millis(self.ack_wait_ms),
            max_deliver: if self.max_deliver == 0 {
                -1
            } else {
                i64::from(self.max_deliver)
            },
            max_ack_pending: i64::from(self.max_ack_pending),
            filter_subject: self.filter_subject.clone().unwrap_or_default(),
            deliver_policy,
            ..Default::default()
        }
    }
}
