//! The operator console (docs/operations-console.md): a web page an operator leaves open.
//! It signs in with the operator token and shows the live flow of messages
//! (server-sent events fed from `XJ_EVENTS`, no polling), each message's
//! trace as a timeline of hops, each case's timeline with its clocks and who
//! must act next, the overdue board, dead letters with replay, health per
//! organisation, monthly statistics with charts, and search by message id,
//! case, party name or credit code. Personal data is masked on the way out.
//!
//! The page is plain HTML, CSS and JavaScript embedded in the binary (no
//! build step). Its JSON lives under `/console/api/*`. `xj up` serves it at
//! `/` beside the API on the same listener; `xj run console` on its own.

mod api;
mod assets;
mod auth;
mod cases;
mod error;
mod feed;
mod guard;
mod index;
mod mask;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use xj_bus::clock::HubClock;
use xj_bus::{Bus, Shutdown};
use xj_config::Settings;

pub use state::ConsoleState;

/// Connects the console's views to the bus: the live feed and the party
/// index start reading here, before the first page is served.
pub async fn start(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> anyhow::Result<ConsoleState> {
    let c = &settings.clock;
    let clock = HubClock::start(c.mode, c.start.as_deref(), bus.clock.clone(), shutdown.clone()).await?;
    let state = ConsoleState::new(settings, bus, clock, shutdown.clone());
    tokio::spawn(feed::run(state.feed.clone(), state.bus.clone(), shutdown.clone()));
    tokio::spawn(index::run(state.index.clone(), state.bus.clone(), shutdown));
    Ok(state)
}

/// The console's routes: the page at `/`, its assets, its JSON.
pub fn app(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/console", get(assets::index))
        .route("/console/app.js", get(assets::script))
        .route("/console/app.css", get(assets::style))
        .route("/console/common.js", get(assets::common))
        .route("/workspace", get(assets::workspace))
        .route("/console/workspace.js", get(assets::workspace_script))
        .route("/console/api/session", post(auth::sign_in).get(auth::who).delete(auth::sign_out))
        .route("/console/api/overview", get(api::overview))
        .route("/console/api/live", get(api::live))
        .route("/console/api/messages/{id}/trace", get(api::trace))
        .route("/console/api/cases/{case}", get(cases::case))
        .route("/console/api/overdue", get(cases::overdue))
        .route("/console/api/dead", get(api::dead))
        .route("/console/api/dead/{seq}/replay", post(api::replay))
        .route("/console/api/health", get(api::health))
        .route("/console/api/stats", get(api::stats))
        .route("/console/api/search", get(api::search))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::same_origin))
        .with_state(state)
}

/// Serves the console alone on `listener` (`xj run console`), on the same
/// hardened server as the API (timeouts, connections per client).
pub async fn run(state: ConsoleState, listener: TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, "console listening");
    let http = state.settings.http.clone();
    let routes = xj_edge::serve::harden(app(state), &http);
    xj_edge::serve::serve(listener, routes, &http, shutdown).await?;
    Ok(())
}
