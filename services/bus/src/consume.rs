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
        let consumer = stream
            .get_or_create_consumer(
                self.name,
                pull::Config {
                    durable_name: Some(self.name.into()),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_ack_pending: self.max_ack_pending,
                    filter_subjects: self.filter_subjects.clone(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(&e))?;
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
