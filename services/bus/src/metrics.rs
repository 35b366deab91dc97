//! Prometheus metrics, one recorder per process, rendered at `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (first call) and returns the handle to render.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

pub fn render() -> String {
    handle().map(|h| h.render()).unwrap_or_default()
}

/// Samples how far each durable consumer is behind its stream, every
/// `every`, as `xj_consumer_pending{stream,consumer}` (messages not yet
/// delivered) and `xj_consumer_ack_pending` (delivered, not yet acked).
pub fn spawn_lag_sampler(
    js: async_nats::jetstream::Context,
    consumers: Vec<(&'static str, &'static str)>,
    every: std::time::Duration,
    shutdown: crate::Shutdown,
) {
    tokio::spawn(async move {
        loop {
            for (stream, name) in &consumers {
                let info = async {
                    let s = js.get_stream(*stream).await.ok()?;
                    let mut c = s.get_consumer::<async_nats::jetstream::consumer::pull::Config>(name).await.ok()?;
                    c.info().await.ok().map(|i| (i.num_pending, i.num_ack_pending))
                }
                .await;
                if let Some((pending, ack_pending)) = info {
                    let labels = [("stream", stream.to_string()), ("consumer", name.to_string())];
                    metrics::gauge!("xj_consumer_pending", &labels).set(pending as f64);
                    metrics::gauge!("xj_consumer_ack_pending", &labels).set(ack_pending as f64);
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    });
}
