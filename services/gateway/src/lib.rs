//! The gateway: the hub's HTTP edge (CONTRACT §3). It authenticates an
//! organisation, validates what it submits (schemas and checks), gives it a
//! receipt exactly once per message id, and publishes the accepted message on
//! `xj.accepted.<sender>`. It also answers the read side: cases, traces, keys,
//! dead letters, health and metrics.

mod accept;
mod admin;
pub mod attachments;
mod auth;
mod cases;
mod clock_stats;
mod error;
mod hash;
mod intake;
mod native;
mod state;
mod submit;
mod trace;
pub mod trust;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

pub use accept::{Receipt, accept};
pub use error::ApiError;
pub use state::GatewayState;

/// The routes, so most HTTP tests can run in-process.
pub fn app(state: GatewayState) -> Router {
    let limit = state.settings.http.max_body_bytes;
    let guard = trust::Guard { state: state.clone(), limiter: Default::default() };
    let attachment_limit = DefaultBodyLimit::max(state.settings.http.max_attachment_bytes);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(state.settings.http.max_in_flight.max(1)));
    Router::new()
        .route("/v1/messages", post(submit::post_message))
        .route("/v1/native", post(native::post_native))
        .route("/v1/messages/{id}/trace", get(trace::get_trace))
        .route("/v1/cases/{case}", get(cases::get_case))
        .route("/v1/keys", get(submit::get_keys))
        .route("/v1/attachments", post(attachments::upload).layer(attachment_limit))
        .route("/v1/attachments/{sha256}", get(attachments::fetch))
        .route("/v1/admin/dead-letters", get(admin::list_dead))
        .route("/v1/admin/dead-letters/{seq}/replay", post(admin::replay_dead))
        .route("/v1/admin/rules/reload", post(admin::reload_rules))
        .route("/v1/admin/clock/advance", post(clock_stats::advance))
        .route("/v1/stats", get(clock_stats::stats))
        .route("/healthz", get(submit::healthz))
        .route("/metrics", get(submit::metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(guard, trust::guard))
        .layer(axum::middleware::from_fn_with_state(gate, shed))
        .with_state(state)
}

/// Beyond `[http] max_in_flight` requests at once: 503 at once (nothing
/// accepted, retry), rather than a queue that grows in memory.
async fn shed(
    axum::extract::State(gate): axum::extract::State<std::sync::Arc<tokio::sync::Semaphore>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if matches!(req.uri().path(), "/healthz" | "/metrics") {
        return next.run(req).await;
    }
    match gate.try_acquire_owned() {
        Ok(permit) => {
            let answer = next.run(req).await;
            drop(permit);
            answer
        }
        Err(_) => {
            // Counted, not logged: an overload would drown the log.
            metrics::counter!("xj_gateway_errors_total", "code" => "overloaded").increment(1);
            let body = serde_json::json!({
                "error": "unavailable",
                "message": "the hub is at capacity; nothing was accepted, retry shortly",
                "details": [],
            });
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], axum::Json(body)).into_response()
        }
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled; requests in
/// flight finish first.
pub async fn run(state: GatewayState, listener: TcpListener, shutdown: xj_bus::Shutdown) -> anyhow::Result<()> {
    run_with(state, listener, Router::new(), shutdown).await
}

/// Like [`run`], with more routes on the same listener (in `xj up`, the
/// operator console at `/`); they are outside the gateway's guard and
/// authenticate themselves.
pub async fn run_with(
    state: GatewayState,
    listener: TcpListener,
    extra: Router,
    shutdown: xj_bus::Shutdown,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    let intake = tokio::spawn(intake::run(state.clone(), shutdown.clone()));
    let routes = app(state).merge(extra);
    axum::serve(listener, routes).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
    intake.await??;
    Ok(())
}
