//! The gateway: the hub's HTTP edge (docs/api.md). It authenticates an
//! organisation, validates what it submits (schemas and checks), gives it a
//! receipt exactly once per message id, and publishes the accepted message on
//! `xj.accepted.<sender>`. It also answers the read side: cases, traces, keys,
//! dead letters, health and metrics.

mod accept;
mod admin;
pub mod attachments;
mod auth;
mod batch;
mod cases;
mod clock_stats;
pub mod contract;
mod hash;
mod inbox;
mod intake;
mod letters;
mod me;
mod native;
mod reports;
pub mod signed;
mod state;
mod submit;
mod supervision;
mod trace;
pub mod trust;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use accept::{Receipt, accept};
pub use xj_edge::{ApiError, clip, redact, serve};
/// The edge's error shape, under the name the gateway's modules use.
mod error {
    pub use xj_edge::error::*;
}
pub use state::GatewayState;

/// The API's routes without the server's layers (see [`app`]).
///
/// Order of work for a request that needs a caller (docs/security.md): who
/// it is and its rate, then 401 for nobody, then a permit of `[http]
/// max_in_flight` (503 beyond it), then its body. Public pages — keys,
/// health, metrics, unknown paths — take no permit.
pub fn routes(state: GatewayState) -> Router {
    let http = &state.settings.http;
    let attachment_limit = DefaultBodyLimit::max(http.max_attachment_bytes);
    let batch_limit = DefaultBodyLimit::max(http.max_batch_bytes);
    let request_timeout = std::time::Duration::from_millis(http.request_timeout_ms);
    // One semaphore for every route: axum layers each route on its own, and
    // a plain concurrency limit would count each endpoint separately.
    let permits = Arc::new(tokio::sync::Semaphore::new(http.max_in_flight.max(1)));
    let shed = tower::ServiceBuilder::new()
        .layer(HandleErrorLayer::new(move |e: tower::BoxError| async move { serve::layer_error(e, request_timeout) }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::with_semaphore(permits));
    let private = Router::new()
        .route("/v1/messages", post(submit::post_message))
        .route(batch::PATH, post(batch::post_batch).layer(batch_limit))
        .route("/v1/native", post(native::post_native))
        .route("/v1/messages/{id}/trace", get(trace::get_trace))
        .route("/v1/messages/{id}/letter", get(letters::get_letter))
        .route("/v1/cases", get(cases::list_cases))
        .route("/v1/cases/{case}", get(cases::get_case))
        .route("/v1/me", get(me::get_me))
        .route("/v1/supervision", get(supervision::get_supervision))
        .route("/v1/inbox", get(inbox::get_inbox))
        .route("/v1/inbox/ack", post(inbox::post_ack))
        .route("/v1/admin/inbox", get(inbox::admin_inbox))
        .route("/v1/attachments", post(attachments::upload).layer(attachment_limit))
        .route("/v1/attachments/{sha256}", get(attachments::fetch))
        .route("/v1/admin/dead-letters", get(admin::list_dead))
        .route("/v1/admin/dead-letters/{seq}/replay", post(admin::replay_dead))
        .route("/v1/admin/rules/reload", post(admin::reload_rules))
        .route("/v1/admin/clock/advance", post(clock_stats::advance))
        .route("/v1/stats", get(clock_stats::stats))
        .route(reports::PATH, get(reports::monthly))
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(state.clone(), trust::body))
        .layer(shed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), trust::require));
    let public = Router::new()
        .route("/v1/keys", get(submit::get_keys))
        .route("/healthz", get(submit::healthz))
        .route("/metrics", get(submit::metrics))
        .route("/v1/openapi.json", get(contract::openapi))
        .route("/v1/asyncapi.json", get(contract::asyncapi))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) });
    private.merge(public).layer(axum::middleware::from_fn_with_state(state.clone(), trust::identify)).with_state(state)
}

/// The routes with the layers of the server (timeouts, panics, JSON
/// refusals), so most HTTP tests can run in-process.
pub fn app(state: GatewayState) -> Router {
    let http = state.settings.http.clone();
    serve::harden(routes(state), &http)
}

/// Serves `app` on `listener` until `shutdown` is cancelled; requests in
/// flight finish first.
pub async fn run(state: GatewayState, listener: TcpListener, shutdown: xj_bus::Shutdown) -> anyhow::Result<()> {
    run_with(state, listener, Router::new(), shutdown).await
}

/// Like [`run`], with more routes on the same listener (in `xj up`, the
/// operator console at `/`); they are outside the gateway's guard and
/// authenticate themselves, but share the server's limits and timeouts.
pub async fn run_with(
    state: GatewayState,
    listener: TcpListener,
    extra: Router,
    shutdown: xj_bus::Shutdown,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    // The store of signed submissions exists before the first one, so the
    // first does not pay for making it (and a failure here is only logged:
    // a submission asks again).
    if let Err(e) = signed::ready(&state).await {
        tracing::warn!(error = %e, "the store of signed submissions is not ready yet");
    }
    let intake = tokio::spawn(intake::run(state.clone(), shutdown.clone()));
    let http = state.settings.http.clone();
    let app = serve::harden(routes(state).merge(extra), &http);
    serve::serve(listener, app, &http, shutdown).await?;
    intake.await??;
    Ok(())
}
