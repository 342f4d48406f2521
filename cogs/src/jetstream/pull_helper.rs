//! The helper thread of the `jetstream_consume` supply: binds the durable
//! pull consumer, pulls messages into the loop and sends the acks the loop
//! gathers.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::AckKind;
use async_nats::Subject;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Semaphore;
use tourbillon::CogRemote;

use super::client::Backoff;
use super::consume_settings::ConsumeSettings;

/// Loop to helper.
pub(super) enum Command {
    /// Acknowledge (or nak, or term) messages; gives their permits back.
    Acks(Vec<(Subject, AckKind)>),
    /// Stop pulling (finish).
    Stop,
}

/// Helper to loop.
pub(super) enum Incoming {
    Messages(Vec<Received>),
    Fatal(String),
}

pub(super) struct Received {
    pub(super) payload: bytes::Bytes,
    pub(super) subject: Subject,
    pub(super) reply: Subject,
    pub(super) stream_sequence: u64,
    pub(super) delivered: u64,
}

pub(super) fn helper(settings: ConsumeSettings, rx: UnboundedReceiver<Command>, remote: CogRemote) {
    let rt = match super::client::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = remote.send(Incoming::Fatal(format!("cannot start its runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, run(settings, rx, remote));
}

/// Binds (or creates) the stream and the consumer, retrying while the
/// server is away; a configuration the server refuses is fatal.
async fn bind(js: &async_nats::jetstream::Context, s: &ConsumeSettings) -> Result<pull::Stream, String> {
    let mut backoff = Backoff::new();
    // A stream not made yet is retried quietly: one line per 10 s.
    let mut throttle = crate::LogThrottle::new(Duration::from_secs(10));
    loop {
        let attempt = async {
            let stream = if s.create_stream {
                js.get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: s.stream.clone(),
                    subjects: s.subjects(),
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("stream {}: {e}", s.stream))?
            } else {
                js.get_stream(&s.stream)
                    .await
                    .map_err(|e| format!("stream {}: {e}", s.stream))?
            };
            let consumer: async_nats::jetstream::consumer::PullConsumer = if s.create_consumer {
                stream
                    .get_or_create_consumer(&s.consumer, s.consumer_config())
                    .await
                    .map_err(|e| format!("consumer {}: {e}", s.consumer))?
            } else {
                stream
                    .get_consumer(&s.consumer)
                    .await
                    .map_err(|e| format!("consumer {}: {e}", s.consumer))?
            };
            consumer
                .stream()
                .max_messages_per_batch(s.batch)
                .heartbeat(Duration::from_secs(5))
                .expires(Duration::from_secs(30))
                .messages()
                .await
                .map_err(|e| format!("consumer {}: {e}", s.consumer))
        };
        match attempt.await {
            Ok(messages) => {
                log::info!(
                    "jetstream_consume: bound to stream {} consumer {}",
                    s.stream,
                    s.consumer
                );
                return Ok(messages);
            }
            Err(e) => {
                if let crate::Verdict::Log { held } = throttle.hit(std::time::Instant::now()) {
                    log::warn!("jetstream_consume: {e}; retrying{}", crate::Summary::note(held));
                }
            }
        }
        backoff.wait().await;
    }
}

async fn run(settings: ConsumeSettings, mut rx: UnboundedReceiver<Command>, remote: CogRemote) {
    let client = match super::client::connect(&settings.servers, &settings.auth, &settings.name).await {
        Ok(c) => c,
        Err(e) => {
            let _ = remote.send(Incoming::Fatal(format!("cannot connect: {e}")));
            return;
        }
    };
    let js = async_nats::jetstream::new(client.clone());
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let stop = Arc::new(tokio::sync::Notify::new());

    // Pulls, while the loop has room (permits), until told to stop.
    let pull = {
        let (permits, stop, remote) = (Arc::clone(&permits), Arc::clone(&stop), remote.clone());
        let settings = settings.clone();
        tokio::task::spawn_local(async move {
            let mut messages = tokio::select! {
                m = bind(&js, &settings) => match m {
                    Ok(m) => m,
                    Err(e) => return drop(remote.send(Incoming::Fatal(e))),
                },
                _ = stop.notified() => return,
            };
            let mut errors = 0u64;
            let mut pull_log = crate::LogThrottle::new(Duration::from_secs(10));
            loop {
                let next = tokio::select! {
                    p = permits.acquire() => match p {
                        Ok(p) => { p.forget(); messages.next() }
                        Err(_) => return,
                    },
                    _ = stop.notified() => return,
                };
                let first = tokio::select! {
                    m = next => m,
                    _ = stop.notified() => { permits.add_permits(1); return }
                };
                let mut batch = Vec::new();
                let mut item = first;
                loop {
                    match item {
                        Some(Ok(m)) => {
                            if let Some(r) = received(m) {
                                batch.push(r);
                            } else {
                                permits.add_permits(1);
                            }
                        }
                        Some(Err(e)) => {
                            permits.add_permits(1);
                            errors += 1;
                            if let crate::Verdict::Log { held } = pull_log.hit(std::time::Instant::now()) {
                                log::warn!(
                                    "jetstream_consume: pulling: {e} ({errors} so far){}",
                                    crate::Summary::note(held)
                                );
                            }
                        }
                        None => {
                            permits.add_permits(1);
                            let _ = remote.send(Incoming::Messages(batch));
                            // The consumer is gone; bind again.
                            log::warn!("jetstream_consume: the message stream ended; binding again");
                            messages = match bind(&js, &settings).await {
                                Ok(m) => m,
                                Err(e) => return drop(remote.send(Incoming::Fatal(e))),
                            };
                            batch = Vec::new();
                            break;
                        }
                    }
                    // Take what is already here without waiting, up to a batch.
                    if batch.len() >= settings.batch {
                        break;
                    }
                    let Ok(p) = permits.try_acquire() else { break };
                    match messages.next().now_or_never() {
                        Some(m) => {
                            p.forget();
                            item = m;
                        }
                        None => break,
                    }
                }
                if !batch.is_empty() && remote.send(Incoming::Messages(batch)).is_err() {
                    return;
                }
            }
        })
    };

    // Acks from the loop, until it lets go.
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        for c in batch.drain(..) {
            match c {
                Command::Acks(acks) => {
                    let n = acks.len();
                    for (reply, kind) in acks {
                        if let Err(e) = client.publish(reply, kind.into()).await {
                            log::warn!("jetstream_consume: cannot send an ack: {e}");
                        }
                    }
                    permits.add_permits(n);
                }
                Command::Stop => {
                    stop.notify_one();
                    permits.close();
                }
            }
        }
    }
    stop.notify_one();
    pull.abort();
    // Bounded: with the server away, the process still ends; the acks
    // lost make the server deliver those messages again.
    match tokio::time::timeout(Duration::from_secs(2), client.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("jetstream_consume: acks may be lost: {e}"),
        Err(_) => log::warn!("jetstream_consume: acks may be lost: the server did not answer in time"),
    }
}

fn received(m: async_nats::jetstream::Message) -> Option<Received> {
    let (stream_sequence, delivered) = match m.info() {
        Ok(i) => (i.stream_sequence, i.delivered.max(1) as u64),
        Err(e) => {
            log::warn!("jetstream_consume: a message without JetStream metadata: {e}");
            return None;
        }
    };
    let m = m.message;
    let reply = m.reply?;
    Some(Received {
        payload: m.payload,
        subject: m.subject,
        reply,
        stream_sequence,
        delivered,
    })
}
