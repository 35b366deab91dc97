//! `POST /v1/messages/batch`: up to [`MAX`] messages in one request
//! (docs/api.md, "Batches"). Each message is accepted exactly as
//! `POST /v1/messages` would accept it and gets the answer that endpoint
//! would have given; one bad message refuses only itself. The batch as a
//! whole is refused only when it cannot be read as a batch.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use xj_model::Problem;

use crate::accept::accept;
use crate::error::ApiError;
use crate::state::GatewayState;

pub const PATH: &str = "/v1/messages/batch";

/// Most messages in one batch.
pub const MAX: usize = 500;

/// Messages of one batch accepted at once. Messages naming the same case
/// are accepted one after another, in the batch's order, so the order of a
/// case is the order its sender gave.
const CONCURRENCY: usize = 16;

pub async fn post_batch(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let answer = batch(&state, &headers, body).await;
    let status = match &answer {
        Ok(_) => StatusCode::MULTI_STATUS,
        Err(e) => e.status(),
    };
    metrics::histogram!("xj_gateway_submit_seconds", "status" => status.as_u16().to_string(), "format" => "batch")
        .record(started.elapsed().as_secs_f64());
    match answer {
        Ok(results) => {
            // Signed like a single receipt: a sender may keep the answer.
            let body = serde_json::to_vec(&json!({ "results": results })).unwrap_or_default();
            let sig = state.key.sign_header(&body);
            (
                StatusCode::MULTI_STATUS,
                [("content-type", "application/json"), (xj_bus::headers::SIGNATURE, sig.as_str())],
                body,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn batch(
    state: &GatewayState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Vec<Value>, ApiError> {
    let body = body.map_err(|e| crate::submit::unreadable(e, state.settings.http.max_batch_bytes))?;
    let (org, _, traceparent) = crate::submit::submission(state, headers, Ok(Bytes::new()))?;
    let doc: Value = serde_json::from_slice(&body).map_err(|e| ApiError::syntax(&e))?;
    let messages = match doc.get("messages") {
        Some(Value::Array(m)) => m,
        _ => {
            return Err(ApiError::Invalid(vec![Problem::new(
                "/messages",
                "a batch is {\"messages\": [ … ]}: an array of canonical envelopes",
            )]));
        }
    };
    if messages.is_empty() || messages.len() > MAX {
        return Err(ApiError::Invalid(vec![Problem::new(
            "/messages",
            format!("a batch holds 1 to {MAX} messages; this one holds {}", messages.len()),
        )]));
    }
    let per_message = state
        .settings
        .org(&org)
        .and_then(|o| o.max_body_bytes)
        .map_or(state.settings.http.max_body_bytes, |m| m.min(state.settings.http.max_body_bytes));
    // Messages that name the same case go in one lane, in order; the others
    // each in a lane of their own.
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    let mut by_case: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        match m.get("case").and_then(Value::as_str) {
            Some(case) => match by_case.get(case) {
                Some(&lane) => lanes[lane].push(i),
                None => {
                    by_case.insert(case, lanes.len());
                    lanes.push(vec![i]);
                }
            },
            None => lanes.push(vec![i]),
        }
    }
    let org = org.as_str();
    let answered: Vec<Vec<(usize, Value)>> = futures::stream::iter(lanes)
        .map(|lane| async move {
            let mut out = Vec::with_capacity(lane.len());
            for i in lane {
                out.push((i, one(state, org, &messages[i], per_message, traceparent).await));
            }
            out
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut results = vec![Value::Null; messages.len()];
    for (i, answer) in answered.into_iter().flatten() {
        results[i] = answer;
    }
    Ok(results)
}

/// What `POST /v1/messages` would have answered for `message`:
/// `{"status", "body"}`.
async fn one(state: &GatewayState, org: &str, message: &Value, limit: usize, traceparent: Option<&str>) -> Value {
    let raw = serde_json::to_vec(message).unwrap_or_default();
    let result = if raw.len() > limit {
        Err(ApiError::TooLarge(limit))
    } else {
        accept(state, org, &raw, traceparent, None).await
    };
    match result {
        Ok((status, receipt)) => json!({ "status": status.as_u16(), "body": receipt }),
        Err(e) => {
            if let ApiError::Internal(detail) | ApiError::Unavailable(detail) = &e {
                tracing::error!(error = %detail, "a message of a batch failed");
            }
            match e.retry_after() {
                // What the single endpoint says in `Retry-After`.
                Some(after) => json!({ "status": e.status().as_u16(), "body": e.body(), "retry_after": after }),
                None => json!({ "status": e.status().as_u16(), "body": e.body() }),
            }
        }
    }
}
