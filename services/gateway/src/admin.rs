//! Operator endpoints for the dead-letter list: inspect, replay.

use std::time::Duration;

use async_nats::HeaderMap as NatsHeaders;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};
use xj_bus::{TraceParent, events, headers as h, subjects};

use crate::auth::operator;
use crate::error::ApiError;
use crate::state::GatewayState;

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e)
}

pub async fn list_dead(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    operator(&state, &headers)?;
    let stream = state.bus.js.get_stream(subjects::STREAM_DEAD).await.map_err(unavailable)?;
    let mut consumer = stream
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
        .await
        .map_err(unavailable)?;
    let pending = consumer.info().await.map_err(unavailable)?.num_pending as usize;
    let mut items = Vec::new();
    if pending > 0 {
        let mut msgs = consumer.messages().await.map_err(unavailable)?;
        while items.len() < pending.min(1000) {
            let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await else {
                break;
            };
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            let hd = m.headers.as_ref();
            items.push(json!({
                "seq": seq,
                "org": m.subject.as_str().trim_start_matches("xj.dead."),
                "id": h::get(hd, h::MESSAGE_ID),
                "sender": h::get(hd, h::SENDER),
                "case": h::get(hd, h::CASE),
                "reason": h::get(hd, h::DEAD_REASON),
                "attempts": h::get(hd, h::ATTEMPT).and_then(|a| a.parse::<u64>().ok()),
                "payload": masked(&m.payload),
            }));
        }
    }
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
    // Before the copy goes out, so the replay precedes its delivery in the trace.
    let at = Utc::now();
    let by = headers.get("x-operator").and_then(|v| v.to_str().ok()).unwrap_or("operator").to_string();
    let stream = state.bus.js.get_stream(subjects::STREAM_DEAD).await.map_err(unavailable)?;
    let msg = stream
        .get_raw_message(seq)
        .await
        .map_err(|_| ApiError::NotFound(format!("no dead letter with sequence {seq}")))?;
    let org = msg.subject.as_str().trim_start_matches("xj.dead.").to_string();
    let get = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_string());
    let (id, sender) = (get(h::MESSAGE_ID).unwrap_or_default(), get(h::SENDER).unwrap_or_default());
    let mut out = NatsHeaders::new();
    for name in
        [h::MESSAGE_ID, h::SENDER, h::CASE, h::RECIPIENT, h::RULE, h::RULE_VERSION, h::TRACEPARENT, h::ACCEPTED_AT]
    {
        if let Some(v) = get(name) {
            out.insert(name, v.as_str());
        }
    }
    out.insert(h::NATS_MSG_ID, format!("{sender}:{id}:{org}:replay:{seq}").as_str());
    out.insert(h::REPLAYED_BY, by.as_str());
    state
        .bus
        .js
        .publish_with_headers(subjects::routed(&org), out, msg.payload.clone())
        .await
        .map_err(unavailable)?
        .await
        .map_err(unavailable)?;
    let trace = get(h::TRACEPARENT)
        .and_then(|t| TraceParent::parse(&t))
        .map(|t| t.child())
        .unwrap_or_else(TraceParent::new_root);
    let ev = events::Event {
        step: "replayed".into(),
        service: "gateway".into(),
        msg_id: id.clone(),
        sender: sender.clone(),
        case: get(h::CASE),
        msg_type: None,
        at,
        trace_id: trace.trace_id_hex(),
        span_id: trace.span_id_hex(),
        detail: json!({ "recipient": org, "replayed_by": by, "dead_seq": seq, "recipients": [org] }),
    };
    if let Err(e) = events::publish(&state.bus.js, &ev).await {
        tracing::warn!(error = %e, "replay event not recorded");
    }
    stream.delete_message(seq).await.map_err(unavailable)?;
    Ok(Json(json!({ "replayed": seq, "id": id, "org": org, "replayed_by": by })))
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

/// A stored message for an operator's screen: resident ID numbers masked.
fn masked(payload: &[u8]) -> Value {
    let mut v = serde_json::from_slice::<Value>(payload).unwrap_or(Value::Null);
    xj_model::mask_id_numbers_in(&mut v);
    v
}
