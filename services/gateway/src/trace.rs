//! `GET /v1/messages/{id}/trace`: every step the hub took with a message,
//! read back from the events stream by subject.

use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use futures::StreamExt;
use serde_json::{Value, json};
use xj_bus::events::Event;
use xj_bus::subjects;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

/// All events whose subject matches `filter`, oldest first.
pub async fn read_events(state: &GatewayState, filter: String) -> Result<Vec<Event>, ApiError> {
    let unavailable = |e: &dyn std::fmt::Display| ApiError::unavailable(e);
    let stream = state.bus.js.get_stream(subjects::STREAM_EVENTS).await.map_err(|e| unavailable(&e))?;
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable(&e))?;
    let pending = consumer.info().await.map_err(|e| unavailable(&e))?.num_pending as usize;
    let mut out = Vec::with_capacity(pending);
    if pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| unavailable(&e))?;
    while out.len() < pending {
        match tokio::time::timeout(Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(m))) => {
                if let Ok(ev) = serde_json::from_slice::<Event>(&m.payload) {
                    out.push(ev);
                }
            }
            _ => break,
        }
    }
    Ok(out)
}

pub async fn get_trace(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let events = read_events(&state, subjects::events_of(&id)).await?;
    // An org sees the trace of messages it sent or that were routed to it.
    let mut visible: Vec<&Event> = match &who {
        Caller::Operator => events.iter().collect(),
        Caller::Org(org) => {
            let senders: Vec<&str> = events
                .iter()
                .filter(|e| {
                    e.sender == *org || e.detail["recipients"].as_array().is_some_and(|r| r.iter().any(|x| x == org))
                })
                .map(|e| e.sender.as_str())
                .collect();
            events.iter().filter(|e| senders.contains(&e.sender.as_str())).collect()
        }
    };
    if visible.is_empty() {
        return Err(ApiError::NotFound(format!("no message {id:?} visible to you")));
    }
    // The stream holds events in the order they were written, which is not
    // always the order things happened (the courier can report an attempt
    // before the router has written its decision); each event's time is.
    visible.sort_by_key(|e| e.at);
    let first = visible[0];
    let mut trace = json!({
        "id": id,
        "sender": first.sender,
        "case": visible.iter().find_map(|e| e.case.clone()),
        "type": first.msg_type,
        "trace_id": first.trace_id,
        "hops": visible,
    });
    // Personal ID numbers never reach a screen (DOMAIN §5).
    xj_model::mask_id_numbers_in(&mut trace);
    Ok(Json(trace))
}
