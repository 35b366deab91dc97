//! The yardstick both benchmarks measure the hub against: raw JetStream on
//! its own nats-server, two hops (publish → consume → republish → consume)
//! of ~1 KiB messages with explicit acks, one connection per role as the
//! hub's services have. The same code for `just bench` and `just bench-load`
//! so that their ratios share a denominator.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;

use crate::TestNats;

/// Bytes per message.
pub const PAYLOAD: usize = 1024;
const PUB_INFLIGHT: usize = 1024;
const RELAY_CONCURRENCY: usize = 128;

/// What one run measured.
pub struct RawRun {
    pub n: usize,
    /// Publishes acknowledged per second.
    pub publish_rate: f64,
    /// Messages through both hops per second, first publish to last arrival.
    pub rate: f64,
    /// First publish to final arrival, microseconds.
    pub latency: Histogram<u64>,
}

/// Wall-clock nanoseconds.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
}

/// A latency histogram in microseconds, 1 µs .. 10 min, 3 significant figures.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

/// Items per second between two [`now_ns`] readings.
pub fn rate(n: usize, from_ns: u64, to_ns: u64) -> f64 {
    let secs = (to_ns.saturating_sub(from_ns)) as f64 / 1e9;
    if secs > 0.0 { n as f64 / secs } else { 0.0 }
}

/// A file-backed stream of the baseline (and of benches that compare with it).
pub fn stream_config(name: &str, subject: &str) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

fn durable(name: &str) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(name.into()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: Duration::from_secs(30),
        max_ack_pending: 4096,
        ..Default::default()
    }
}

/// Runs `n` messages through the two hops on a fresh nats-server.
pub async fn run(n: usize) -> anyhow::Result<RawRun> {
    Ok(run_metered(n, || (), |()| ()).await?.0)
}

/// [`run`], with a meter (CPU…) started once the server and the streams are
/// up and stopped at the last arrival, while the server still runs.
pub async fn run_metered<M, R>(
    n: usize,
    start: impl FnOnce() -> M,
    stop: impl FnOnce(M) -> R,
) -> anyhow::Result<(RawRun, R)> {
    let nats = TestNats::start()?;
    let url = nats.url();
    let producer = jetstream::new(async_nats::connect(&url).await?);
    let relay = jetstream::new(async_nats::connect(&url).await?);
    let sink = jetstream::new(async_nats::connect(&url).await?);
    producer.create_stream(stream_config("BENCH_FIRST", "bench.first.>")).await?;
    producer.create_stream(stream_config("BENCH_SECOND", "bench.second.>")).await?;
    let hop = relay.get_stream("BENCH_FIRST").await?.create_consumer(durable("relay")).await?;
    let fin = sink.get_stream("BENCH_SECOND").await?.create_consumer(durable("sink")).await?;

    // Relay: consume, republish (publish ack awaited), then ack.
    let relay_task = tokio::spawn(async move {
        let messages = hop.messages().await?;
        messages
            .for_each_concurrent(RELAY_CONCURRENCY, |m| {
                let relay = relay.clone();
                async move {
                    let Ok(m) = m else { return };
                    let subject = m.subject.replacen("bench.first.", "bench.second.", 1);
                    let stored = async { relay.publish(subject, m.payload.clone()).await?.into_future().await }.await;
                    if stored.is_ok() {
                        let _ = m.ack().await;
                    }
                }
            })
            .await;
        anyhow::Ok(())
    });

    // Sink: consume and ack; record the latency and the last arrival.
    let total = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<(Histogram<u64>, u64)>();
    let counted = total.clone();
    let sink_task = tokio::spawn(async move {
        let mut messages = fin.messages().await?;
        let mut lat = histogram();
        let mut done = Some(done_tx);
        while let Some(m) = messages.next().await {
            let m = m.map_err(|e| anyhow::anyhow!(e))?;
            let at = now_ns();
            let sent = m.payload.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).unwrap_or(at);
            lat.saturating_record((at.saturating_sub(sent) / 1_000).max(1));
            let _ = m.ack().await;
            if counted.fetch_add(1, Ordering::Relaxed) + 1 == n
                && let Some(tx) = done.take()
            {
                let _ = tx.send((std::mem::replace(&mut lat, histogram()), at));
            }
        }
        anyhow::Ok(())
    });

    let meter = start();
    let t0 = now_ns();
    let mut acks = FuturesUnordered::new();
    let filler = vec![b'x'; PAYLOAD - 8];
    for i in 0..n {
        let mut payload = Vec::with_capacity(PAYLOAD);
        payload.extend_from_slice(&now_ns().to_le_bytes());
        payload.extend_from_slice(&filler);
        let ack = producer.publish(format!("bench.first.{}", i % 16), payload.into()).await?;
        acks.push(ack.into_future());
        while acks.len() >= PUB_INFLIGHT {
            acks.next().await.context("publish ack")??;
        }
    }
    while let Some(a) = acks.next().await {
        a?;
    }
    let published = now_ns();
    let waited = tokio::time::timeout(Duration::from_secs(120), done_rx).await;
    let metered = stop(meter);
    relay_task.abort();
    sink_task.abort();
    let (latency, last) = waited
        .with_context(|| format!("raw pipeline: only {} of {n} arrived in 120 s", total.load(Ordering::Relaxed)))??;
    Ok((RawRun { n, publish_rate: rate(n, t0, published), rate: rate(n, t0, last), latency }, metered))
}
