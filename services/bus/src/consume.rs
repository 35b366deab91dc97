//! The one way services consume the bus: a durable pull consumer with
//! explicit acks, its messages handled at most `concurrency` at a time until
//! shutdown (work in flight finishes; anything pulled but unacked is
//! redelivered to whoever runs next).

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, Message};
use futures::StreamExt;

use crate::Shutdown;
use crate::streams::BusError;

/// A durable consumer on a stream.
#[derive(Debug, Clone)]
pub struct Durable {
    pub stream: &'static str,
    pub name: &'static str,
    pub filter_subjects: Vec<String>,
    pub ack_wait: Duration,
    pub max_ack_pending: i64,
}

impl Durable {
    pub fn new(stream: &'static str, name: &'static str) -> Self {
        Self { stream, name, filter_subjects: Vec::new(), ack_wait: Duration::from_secs(30), max_ack_pending: 1024 }
    }

    pub fn filter(mut self, subjects: &[&str]) -> Self {
        self.filter_subjects = subjects.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn ack_wait(mut self, d: Duration) -> Self {
        self.ack_wait = d;
        self
    }

    pub fn max_ack_pending(mut self, n: i64) -> Self {
        self.max_ack_pending = n;
        self
    }

    /// Creates (or binds to) the consumer and opens its message stream.
    pub async fn messages(&self, js: &jetstream::Context) -> Result<pull::Stream, BusError> {
        let err = |e: &dyn std::fmt::Display| BusError::Declare {
            what: format!("consumer {} on {}", self.name, self.stream),
            message: e.to_string(),
        };
        let stream = js.get_stream(self.stream).await.map_err(|e| err(&e))?;
        let config = pull::Config {
            durable_name: Some(self.name.into()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: self.max_ack_pending,
            filter_subjects: self.filter_subjects.clone(),
            ..Default::default()
        };
        let mut consumer = stream.get_or_create_consumer(self.name, config.clone()).await.map_err(|e| err(&e))?;
        // A consumer made by an earlier version keeps its position; its
        // acknowledgement settings follow this one.
        let have = &consumer.cached_info().config;
        if have.ack_wait != self.ack_wait || have.max_ack_pending != self.max_ack_pending {
            consumer = stream.update_consumer(config).await.map_err(|e| err(&e))?;
            tracing::info!(consumer = self.name, stream = self.stream, "consumer settings updated");
        }
        consumer.messages().await.map_err(|e| err(&e))
    }
}

/// Handles every message of `messages` (at most `concurrency` at once; 1
/// keeps stream order) until `shutdown`.
pub async fn run<S, F, Fut>(messages: S, concurrency: usize, shutdown: Shutdown, label: &'static str, handle: F)
where
    S: futures::Stream<Item = Result<Message, async_nats::error::Error<jetstream::consumer::pull::MessagesErrorKind>>>,
    F: Fn(Message) -> Fut,
    Fut: Future<Output = ()>,
{
    messages
        .take_until(shutdown.cancelled_owned())
        .for_each_concurrent(concurrency.max(1), |m| {
            let fut = m.map(&handle);
            async move {
                match fut {
                    Ok(f) => f.await,
                    Err(e) => {
                        tracing::warn!(service = label, error = %e, "pull failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await;
}

/// Reads `stream` from `start` and then follows it until `shutdown`, calling
/// `each` for every message; a broken connection resumes after the last
/// message seen. For in-memory views (the console's feed and indexes) that
/// keep no durable state on the bus.
pub async fn follow<F>(
    js: &jetstream::Context,
    stream: &'static str,
    start: jetstream::consumer::DeliverPolicy,
    shutdown: Shutdown,
    label: &'static str,
    mut each: F,
) where
    F: FnMut(&Message),
{
    use jetstream::consumer::DeliverPolicy;
    use jetstream::consumer::pull::OrderedConfig;
    let mut next_seq: Option<u64> = None;
    loop {
        let policy = match next_seq {
            Some(seq) => DeliverPolicy::ByStartSequence { start_sequence: seq },
            None => start,
        };
        let result = async {
            let s = js.get_stream(stream).await?;
            let consumer = s.create_consumer(OrderedConfig { deliver_policy: policy, ..Default::default() }).await?;
            let mut messages = consumer.messages().await?;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok::<bool, anyhow::Error>(true),
                    m = messages.next() => match m {
                        Some(Ok(m)) => {
                            if let Ok(info) = m.info() {
                                next_seq = Some(info.stream_sequence + 1);
                            }
                            each(&m);
                        }
                        Some(Err(e)) => return Err(e.into()),
                        None => return Ok(false),
                    }
                }
            }
        }
        .await;
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => tracing::warn!(view = label, error = %e, "reading the stream was interrupted; resuming"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
