//! Operator endpoints for the dead-letter list: inspect, replay.

use futures::StreamExt;
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
    let mut items = dead::list(&state.bus.js, 1000).await.map_err(unavailable)?;
    // Reasons are receivers' words (error pages, echoed requests): masked
    // like everything else an operator's screen shows.
    for item in &mut items {
        crate::redact::value(item);
    }
    Ok(Json(json!({ "dead_letters": items })))
}

/// Re-delivers a dead letter: it goes back on `xj.routed.<org>` with a fresh
/// attempt count, the replay is recorded, and the dead entry removed.
pub async fn replay_dead(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(seq): Path<String>,
) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    // Not a sequence number: no such dead letter, as for one long replayed.
    let seq: u64 = seq
        .parse()
        .map_err(|_| ApiError::NotFound(format!("no dead letter with sequence {:?}", crate::error::clip(&seq))))?;
    // The name is recorded in the trace and a NATS header: short and plain.
    let by: String = headers
        .get("x-operator")
        .and_then(|v| v.to_str().ok())
        .map(|n| n.chars().filter(|c| !c.is_control()).take(40).collect())
        .filter(|n: &String| !n.trim().is_empty())
        .unwrap_or_else(|| "operator".into());
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
    // Every router and gateway instance answers; gather them all, so the
    // answer says the new version is in force everywhere (or where not).
    let client = &state.bus.client;
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await.map_err(unavailable)?;
    client.publish_with_reply(subjects::CTL_RELOAD, inbox, bytes::Bytes::new()).await.map_err(unavailable)?;
    let mut answers: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        // After the first answer, wait until the others have had their say.
        let wait = if answers.is_empty() { deadline - tokio::time::Instant::now() } else { Duration::from_millis(750) };
        match tokio::time::timeout(wait, replies.next()).await {
            Ok(Some(m)) => answers.push(serde_json::from_slice(&m.payload).unwrap_or(Value::Null)),
            _ => break,
        }
    }
    if answers.is_empty() {
        return Err(ApiError::Unavailable("no service answered the reload request".into()));
    }
    let refused: Vec<xj_model::Problem> = answers
        .iter()
        .filter(|a| a["ok"] != json!(true))
        .map(|a| {
            xj_model::Problem::new(
                "",
                format!(
                    "{}: {}",
                    a["service"].as_str().unwrap_or("?"),
                    a["error"].as_str().unwrap_or("the rule files do not load")
                ),
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(ApiError::Invalid(refused));
    }
    let mut versions: Vec<&str> = answers.iter().filter_map(|a| a["version"].as_str()).collect();
    versions.sort();
    versions.dedup();
    Ok(Json(json!({ "version": versions.first(), "consistent": versions.len() == 1, "answers": answers })))
}
