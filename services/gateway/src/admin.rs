//! Operator endpoints for the dead-letter list: inspect, replay.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use xj_bus::{dead, subjects};

use crate::auth::operator;
use crate::error::ApiError;
use crate::state::GatewayState;

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e)
}

pub async fn list_dead(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let items = dead::list(&state.bus.js, 1000).await.map_err(unavailable)?;
    Ok(Json(json!({ "dead_letters": items })))
}

/// Re-delivers a dead letter: it goes back on `xj.routed.<org>` with a fresh
/// attempt count, the replay is recorded, and the dead entry removed.
pub async fn replay_dead(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(seq): Path<u64>,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let by = headers.get("x-operator").and_then(|v| v.to_str().ok()).unwrap_or("operator").to_string();
    match dead::replay(&state.bus.js, seq, &by).await {
        Ok(r) => Ok(Json(json!(r))),
        Err(e @ dead::DeadError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e) => Err(unavailable(e)),
    }
}

/// Asks every service to read the rule files again (`xj.ctl.reload`); the
/// answer carries the version now in force, or why the new files were
/// refused (the old version stays).
pub async fn reload_rules(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        state.bus.client.request(subjects::CTL_RELOAD, bytes::Bytes::new()),
    )
    .await
    .map_err(|_| ApiError::Unavailable("no service answered the reload request".into()))?
    .map_err(unavailable)?;
    let answer: Value = serde_json::from_slice(&reply.payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    if answer["ok"] == json!(false) {
        return Err(ApiError::Invalid(vec![xj_model::Problem::new(
            "",
            answer["error"].as_str().unwrap_or("the rule files do not load").to_string(),
        )]));
    }
    Ok(Json(answer))
}
