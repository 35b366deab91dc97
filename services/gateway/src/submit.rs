//! `POST /v1/messages` and the small public endpoints.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::accept::{Receipt, accept};
use crate::auth::caller;
use crate::error::ApiError;
use crate::native::NativeError;
use crate::state::{Caller, GatewayState};

pub async fn post_message(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let result = async {
        let (org, body, tp) = submission(&state, &headers, body)?;
        // Checked over these bytes already (crate::trust::body) when the
        // organisation has a key: kept with the message as evidence.
        let signed = crate::trust::signs(&state, &org)
            .then(|| headers.get(xj_bus::headers::SIGNATURE).and_then(|v| v.to_str().ok()))
            .flatten();
        accept(&state, &org, &body, tp, signed).await
    }
    .await;
    respond(&state, started, "canonical", result.map_err(NativeError::Api))
}

/// The answer to a submission in either format, timed in
/// `xj_gateway_submit_seconds` by status and format.
pub(crate) fn respond(
    state: &GatewayState,
    started: std::time::Instant,
    format: &'static str,
    result: Result<(StatusCode, Receipt), NativeError>,
) -> Response {
    let status = match &result {
        Ok((s, _)) => *s,
        Err(e) => e.status(),
    };
    metrics::histogram!("xj_gateway_submit_seconds", "status" => status.as_u16().to_string(), "format" => format)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok((status, receipt)) => receipt_response(state, status, &receipt),
        Err(e) => e.into_response(),
    }
}

/// Who submits (an organisation, never the operator), the body within the
/// size limit, and the caller's `traceparent`: shared by the canonical and
/// the native endpoint.
pub(crate) fn submission<'h>(
    state: &GatewayState,
    headers: &'h HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, Bytes, Option<&'h str>), ApiError> {
    let org = match caller(state, headers)? {
        Caller::Org(org) => org,
        Caller::Operator => {
            return Err(ApiError::Forbidden("operators do not submit messages; use an organisation's token".into()));
        }
    };
    let body = body.map_err(|e| unreadable(e, state.settings.http.max_body_bytes))?;
    Ok((org, body, headers.get("traceparent").and_then(|v| v.to_str().ok())))
}

/// Why a request's body could not be read: over `limit`, or broken off.
pub(crate) fn unreadable(e: BytesRejection, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(limit)
    } else {
        ApiError::Malformed(e.body_text())
    }
}

/// A receipt, signed by the hub like every answer a sender may keep.
pub(crate) fn receipt_response(state: &GatewayState, status: StatusCode, receipt: &Receipt) -> Response {
    let body = serde_json::to_vec(receipt).unwrap_or_default();
    let sig = state.key.sign_header(&body);
    (status, [("content-type", "application/json"), (xj_bus::headers::SIGNATURE, sig.as_str())], body).into_response()
}

pub async fn get_keys(State(state): State<GatewayState>) -> Json<serde_json::Value> {
    Json(state.key.jwks())
}

pub async fn healthz(State(state): State<GatewayState>) -> Response {
    let (ok, body) = xj_bus::consume::readiness(&state.bus.client);
    let code = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(body)).into_response()
}

pub async fn metrics() -> Response {
    ([("content-type", "text/plain; version=0.0.4")], xj_bus::metrics::render()).into_response()
}
