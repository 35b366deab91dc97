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
///
/// A handler that panics does not take the consumer down with it: the panic
/// is caught, the message is answered (`nak` with a delay while it has been
/// delivered fewer than [`POISON_AFTER`] times, then `term` with the panic's
/// text as the reason, so one poisonous message cannot loop for ever) and
/// the next message is handled. While this loop runs, `label` counts as a
/// running consumer in [`health`].
pub async fn run<S, F, Fut>(messages: S, concurrency: usize, shutdown: Shutdown, label: &'static str, handle: F)
where
    S: futures::Stream<Item = Result<Message, async_nats::error::Error<jetstream::consumer::pull::MessagesErrorKind>>>,
    F: Fn(Message) -> Fut,
    Fut: Future<Output = ()>,
{
    use futures::FutureExt;
    let _running = health::running(label);
    messages
        .take_until(shutdown.cancelled_owned())
        .for_each_concurrent(concurrency.max(1), |m| {
            let answer = m.as_ref().ok().map(|m| (m.context.client(), m.reply.clone(), m.info().map(|i| i.delivered).ok()));
            let fut = m.map(&handle);
            async move {
                match fut {
                    Ok(f) => {
                        if let Err(panic) = std::panic::AssertUnwindSafe(f).catch_unwind().await {
                            let text = panic_text(&panic);
                            metrics::counter!("xj_handler_panics_total", "service" => label).increment(1);
                            if let Some((client, Some(reply), delivered)) = answer {
                                let poison = delivered.unwrap_or(i64::MAX) >= POISON_AFTER;
                                tracing::error!(service = label, panic = %text, poison, "handler panicked; message answered, consuming on");
                                let body = if poison {
                                    format!("+TERM handler panicked: {text}")
                                } else {
                                    "+NAK {\"delay\": 5000000000}".to_string()
                                };
                                let _ = client.publish(reply, body.into()).await;
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(service = label, error = %e, "pull failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await;
}

/// Deliveries of one message that may end in a panic before it is
/// terminated as poison.
pub const POISON_AFTER: i64 = 3;

/// Answers `messages` whose handling panicked outside [`run`]'s own guard
/// (work a handler handed to a task of its own), as [`run`] does: a
/// delayed `nak` while delivered fewer than [`POISON_AFTER`] times, then
/// `term`.
pub async fn answer_panicked<'a>(label: &'static str, messages: impl IntoIterator<Item = &'a Message>, text: &str) {
    metrics::counter!("xj_handler_panics_total", "service" => label).increment(1);
    for m in messages {
        let poison = m.info().map(|i| i.delivered).unwrap_or(i64::MAX) >= POISON_AFTER;
        tracing::error!(service = label, panic = %text, poison, "handler panicked; message answered, consuming on");
        let kind =
            if poison { jetstream::AckKind::Term } else { jetstream::AckKind::Nak(Some(Duration::from_secs(5))) };
        let _ = m.ack_with(kind).await;
    }
}

/// A panic's message, for logs and a terminated message's reason.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// Which consumer loops of this process are running: `/healthz` answers
/// 503 while one that was started is not.
pub mod health {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, OnceLock};

    /// Running loops per label; a label once seen stays, so one with none
    /// running is down. Per process: a hub runs one set of services in a
    /// process (tests that start several hubs in one process share it).
    fn table() -> &'static Mutex<BTreeMap<&'static str, usize>> {
        static T: OnceLock<Mutex<BTreeMap<&'static str, usize>>> = OnceLock::new();
        T.get_or_init(Default::default)
    }

    /// Marks `label` running until the guard is dropped.
    pub fn running(label: &'static str) -> Running {
        if let Ok(mut t) = table().lock() {
            *t.entry(label).or_default() += 1;
        }
        Running(label)
    }

    /// Marks `label` as expected: it counts as down until a loop for it runs.
    pub fn expect(label: &'static str) {
        if let Ok(mut t) = table().lock() {
            t.entry(label).or_default();
        }
    }

    pub struct Running(&'static str);

    impl Drop for Running {
        fn drop(&mut self) {
            if let Ok(mut t) = table().lock()
                && let Some(n) = t.get_mut(self.0)
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// The consumers expected (started once) that are not running now.
    pub fn stopped() -> Vec<&'static str> {
        table().lock().map(|t| t.iter().filter(|(_, n)| **n == 0).map(|(k, _)| *k).collect()).unwrap_or_default()
    }
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

/// What `/healthz` answers for a process: ready while it is connected to
/// NATS and every consumer loop it started is running.
pub fn readiness(client: &async_nats::Client) -> (bool, serde_json::Value) {
    let nats = client.connection_state();
    let stopped = health::stopped();
    let ok = matches!(nats, async_nats::connection::State::Connected) && stopped.is_empty();
    let mut body = serde_json::json!({ "status": if ok { "ok" } else { "degraded" }, "nats": format!("{nats:?}") });
    if !stopped.is_empty() {
        body["stopped"] = serde_json::json!(stopped);
    }
    (ok, body)
}
