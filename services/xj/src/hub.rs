//! Starting services. Each service gets its own NATS connection, as it would
//! in its own process; they share nothing else.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use xj_bus::signing::HubKey;
use xj_bus::{Bus, Shutdown};
use xj_config::Settings;
use xj_model::Schemas;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Gateway,
    Router,
    Courier,
    Tracker,
    /// The audit ledger: the hash chain of everything the hub did.
    Ledger,
    /// The operator console: beside the gateway on its listener when both
    /// run in one process, on `[http] listen` when alone.
    Console,
}

impl Service {
    /// The services that carry messages.
    pub const ALL: [Service; 5] =
        [Service::Gateway, Service::Router, Service::Courier, Service::Tracker, Service::Ledger];
    /// What `xj up` runs: every service and the console.
    pub const UP: [Service; 6] =
        [Service::Gateway, Service::Router, Service::Courier, Service::Tracker, Service::Ledger, Service::Console];

    /// The durable consumers a service reads with (stream, consumer), for
    /// the lag metrics.
    fn consumers(self) -> &'static [(&'static str, &'static str)] {
        use xj_bus::subjects::*;
        match self {
            Service::Gateway => &[(STREAM_IN, "intake")],
            Service::Router => &[(STREAM_ACCEPTED, "router")],
            Service::Courier => &[(STREAM_ROUTED, "courier")],
            Service::Tracker => &[(STREAM_EVENTS, "tracker")],
            Service::Ledger => &[(STREAM_ACCEPTED, "ledger"), (STREAM_EVENTS, "ledger")],
            Service::Console => &[],
        }
    }
}

pub fn key_path(settings: &Settings) -> PathBuf {
    settings.signing_key_path()
}

/// A running set of services.
pub struct Hub {
    pub shutdown: Shutdown,
    pub http_addr: Option<std::net::SocketAddr>,
    tasks: JoinSet<anyhow::Result<()>>,
    /// Which service each task runs (a panicked task has only its id).
    names: std::collections::HashMap<tokio::task::Id, Service>,
}

impl Hub {
    /// Cancels every service and waits for them to finish their work in
    /// flight.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.join().await
    }

    /// Waits for the services; the first failure is returned (and stops the
    /// others). A service that panicked is a failure too.
    pub async fn join(&mut self) -> anyhow::Result<()> {
        let mut first_err = None;
        while let Some((svc, res)) = self.any_ended().await {
            if let Err(e) = res {
                tracing::error!(service = ?svc, error = %e, "service failed");
                self.shutdown.cancel();
                first_err.get_or_insert(e.context(format!("{svc:?}")));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Resolves when any service ends (normally only at shutdown), with the
    /// service and how it ended; a panic is an `Err` naming the panic.
    pub async fn any_ended(&mut self) -> Option<(Service, anyhow::Result<()>)> {
        let ended = self.tasks.join_next_with_id().await?;
        let id = match &ended {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let svc = self.names.remove(&id).unwrap_or(Service::Gateway);
        Some(match ended {
            Ok((_, res)) => (svc, res),
            Err(e) => (svc, Err(anyhow::anyhow!("{svc:?} task ended abnormally: {e}"))),
        })
    }

    fn spawn<F>(&mut self, svc: Service, fut: F)
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handle = self.tasks.spawn(fut);
        self.names.insert(handle.id(), svc);
    }
}

/// Starts `services` against the NATS at `nats_url`. The gateway serves on
/// `listener` (bound by the caller, so tests can use port 0).
pub async fn start(
    settings: Arc<Settings>,
    nats_url: &str,
    services: &[Service],
    listener: Option<TcpListener>,
    shutdown: Shutdown,
) -> anyhow::Result<Hub> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Install the recorder before anything counts; spans go out by OTLP
    // when `[telemetry] otlp_endpoint` is set (first start wins).
    let _ = xj_bus::metrics::handle();
    xj_bus::otel::init(settings.telemetry.otlp_endpoint.as_deref());
    let key = HubKey::load_or_create_as(&key_path(&settings), settings.hub.signature)?
        .with_previous(&settings.hub.previous_public_keys)?;
    let mut hub = Hub { shutdown: shutdown.clone(), http_addr: None, tasks: JoinSet::new(), names: Default::default() };
    let mut http_addr = None;
    let mut listener = listener;
    // The console first: with the gateway in this process it is served on
    // the gateway's listener (docs/configuration.md: the API under /v1, the console
    // under /); alone, on its own.
    let mut console = None;
    if services.contains(&Service::Console) {
        let bus = Bus::connect(&settings, nats_url).await?;
        let state = xj_console::start(settings.clone(), bus, shutdown.clone()).await?;
        if services.contains(&Service::Gateway) {
            console = Some(xj_console::app(state));
        } else {
            let l = match listener.take() {
                Some(l) => l,
                None => listen(settings.http.listen)
                    .with_context(|| format!("cannot listen on {} ([http] listen)", settings.http.listen))?,
            };
            http_addr = Some(l.local_addr()?);
            let sd = shutdown.clone();
            hub.spawn(Service::Console, xj_console::run(state, l, sd));
        }
    }
    let mut lag = Vec::new();
    for &svc in services {
        lag.extend_from_slice(svc.consumers());
        if svc == Service::Console {
            continue;
        }
        let bus = Bus::connect(&settings, nats_url).await?;
        let (settings, shutdown, key) = (settings.clone(), shutdown.clone(), key.clone());
        match svc {
            Service::Gateway => {
                let l = match listener.take() {
                    Some(l) => l,
                    None => listen(settings.http.listen)
                        .with_context(|| format!("cannot listen on {} ([http] listen)", settings.http.listen))?,
                };
                http_addr = Some(l.local_addr()?);
                let schemas = Arc::new(Schemas::load()?);
                let rules = xj_rules::RulesHandle::new(xj_rules::RuleSet::compile(settings.clone())?);
                rules.spawn_watcher(bus.client.clone(), shutdown.clone(), "gateway");
                let c = &settings.clock;
                let clock =
                    xj_bus::clock::HubClock::start(c.mode, c.start.as_deref(), bus.clock.clone(), shutdown.clone())
                        .await?;
                let state = xj_gateway::GatewayState::new(settings, bus, schemas, key, rules, clock);
                let extra = console.take().unwrap_or_default();
                hub.spawn(svc, xj_gateway::run_with(state, l, extra, shutdown));
            }
            Service::Router => {
                hub.spawn(svc, xj_router::run(settings, bus, shutdown));
            }
            Service::Courier => {
                hub.spawn(svc, xj_courier::run(settings, bus, key, shutdown));
            }
            Service::Tracker => {
                hub.spawn(svc, xj_tracker::run(settings, bus, shutdown));
            }
            Service::Ledger => {
                hub.spawn(svc, async move { xj_ledger::run(settings, bus, key, shutdown).await.map_err(Into::into) });
            }
            Service::Console => {}
        }
    }
    // A process without the API still shows its metrics.
    let has_http = services.iter().any(|s| matches!(s, Service::Gateway | Service::Console));
    if let (false, Some(addr)) = (has_http, settings.telemetry.metrics_listen) {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} ([telemetry] metrics_listen)"))?;
        let sd = shutdown.clone();
        // Ready while this process is connected to NATS (503 otherwise):
        // what a readiness probe or a load balancer asks.
        let client = Bus::connect(&settings, nats_url).await?.client.clone();
        tokio::spawn(async move {
            let health = move || {
                let (ok, body) = xj_bus::consume::readiness(&client);
                async move {
                    let code =
                        if ok { axum::http::StatusCode::OK } else { axum::http::StatusCode::SERVICE_UNAVAILABLE };
                    (code, axum::Json(body))
                }
            };
            let app = axum::Router::new()
                .route("/metrics", axum::routing::get(|| async { xj_bus::metrics::render() }))
                .route("/healthz", axum::routing::get(health));
            let _ = axum::serve(l, app).with_graceful_shutdown(async move { sd.cancelled().await }).await;
        });
    }
    if !lag.is_empty() {
        let bus = Bus::connect(&settings, nats_url).await?;
        xj_bus::metrics::spawn_lag_sampler(bus.js.clone(), lag, std::time::Duration::from_secs(5), shutdown.clone());
    }
    hub.http_addr = http_addr;
    Ok(hub)
}

/// The API's listening socket, with a deep accept queue: departmental
/// systems that open a connection per request arrive in bursts, and a
/// connection refused by a full queue is retried by the client's kernel
/// after one, three, seven seconds — an overload turned into idle waiting
/// (seen in the load bench: 200,000 listen-queue overflows, the hub idle and
/// latencies of seconds). The kernel caps it at `net.core.somaxconn`.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Connections waiting to be accepted, at most.
pub const BACKLOG: u32 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    fn empty_hub() -> Hub {
        Hub { shutdown: Shutdown::new(), http_addr: None, tasks: JoinSet::new(), names: Default::default() }
    }

    /// A panic in a service is a failure of that service (`xj up` exits
    /// non-zero on it), not a quiet end.
    #[tokio::test]
    async fn a_service_that_panics_is_reported_as_failed() {
        let mut hub = empty_hub();
        hub.spawn(Service::Courier, async { panic!("invalid header value") });
        let (svc, res) = hub.any_ended().await.expect("it ended");
        assert_eq!(svc, Service::Courier);
        let e = res.expect_err("a panic is a failure");
        assert!(e.to_string().contains("Courier"), "{e}");
        let mut hub = empty_hub();
        hub.spawn(Service::Router, async { anyhow::bail!("consumer gone") });
        hub.spawn(Service::Tracker, async { Ok(()) });
        assert!(hub.join().await.is_err(), "join reports the first failure");
    }
}
