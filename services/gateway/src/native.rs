//! `POST /v1/native` (docs/writing-a-mapping.md): a submission in the organisation's own
//! format (its `format`), translated by its mapping and then accepted
//! exactly as a canonical one — same status codes, same receipt. Problems
//! are located in the native document (JSON pointer, XML path and line, CSV
//! row and column) and say whose rule they broke: `syntax` (400), `mapping`
//! or `canonical` (422, with the canonical pointer too). NATS intake uses
//! the same path for NATS-native organisations with a native format.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use xj_bus::TraceParent;
use xj_bus::otel::{Hop, SpanKind};
use xj_mapping::report::{Detail, inbound_details};
use xj_mapping::{CANONICAL, InboundError, inbound};

use crate::accept::{Receipt, accept};
use crate::error::ApiError;
use crate::state::GatewayState;
use crate::submit::{respond, submission};

/// Why a native submission was not accepted.
#[derive(Debug)]
pub enum NativeError {
    /// Answered as on the canonical endpoint (401, 403, 409, 413, 503…).
    Api(ApiError),
    /// Problems located in the native document.
    Located { status: StatusCode, code: &'static str, message: String, details: Vec<Detail> },
}

impl NativeError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status(),
            Self::Located { status, .. } => *status,
        }
    }

    pub fn body(&self) -> Value {
        match self {
            Self::Api(e) => e.body(),
            Self::Located { code, message, details, .. } => {
                json!({ "error": code, "message": message, "details": details })
            }
        }
    }
}

impl From<ApiError> for NativeError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for NativeError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::Located { status, code, .. } => {
                metrics::counter!("xj_gateway_errors_total", "code" => code).increment(1);
                (status, axum::Json(self.body())).into_response()
            }
        }
    }
}

/// Translates `raw` from `org`'s format and accepts the canonical message.
pub async fn accept_native(
    state: &GatewayState,
    org: &str,
    raw: &[u8],
    traceparent: Option<&str>,
) -> Result<(StatusCode, Receipt), NativeError> {
    let name = state.settings.org(org).map(|o| o.format.as_str()).unwrap_or(CANONICAL);
    if name == CANONICAL {
        return Err(ApiError::Malformed(format!(
            "{org} submits canonical messages (its format is \"canonical\"): use POST /v1/messages"
        ))
        .into());
    }
    // The mappings as last (re)loaded with the rule files.
    let format =
        state.rules.current().settings.mappings.get(name).cloned().map_err(|e| ApiError::Internal(e.to_string()))?;
    // The adapter is a hop of its own: the acceptance continues its span.
    let received = traceparent.and_then(TraceParent::parse);
    let own = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("gateway", "translate.inbound", received, own).kind(SpanKind::Server);
    hop.attr("xj.format", name.to_string()).attr("xj.sender", org.to_string());
    let translated = match inbound::translate(&format, raw, org) {
        Ok(t) => {
            hop.attr_opt("xj.message_id", t.message.get("id").and_then(Value::as_str).map(str::to_owned))
                .attr_opt("xj.type", t.message.get("type").and_then(Value::as_str).map(str::to_owned));
            hop.finish();
            t
        }
        Err(e) => {
            hop.fail(e.to_string());
            let details = inbound_details(&e);
            let (status, code) = match e {
                InboundError::Syntax { .. } => (StatusCode::BAD_REQUEST, "malformed"),
                InboundError::Mapping { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            };
            let message = match &e {
                InboundError::Syntax { syntax, .. } => format!("the document is not well-formed {syntax}"),
                InboundError::Mapping { problems, .. } => {
                    format!("the document has {} problem(s) for format {name}", problems.len())
                }
            };
            return Err(NativeError::Located { status, code, message, details });
        }
    };
    let canonical = serde_json::to_vec(&translated.message).map_err(|e| ApiError::Internal(e.to_string()))?;
    let traceparent = own.header();
    match accept(state, org, &canonical, Some(&traceparent), None).await {
        Ok(ok) => Ok(ok),
        Err(ApiError::Invalid(problems)) => Err(NativeError::Located {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: format!("the message made of the document has {} problem(s)", problems.len()),
            details: problems.iter().map(|p| Detail::canonical(p, &translated.provenance)).collect(),
        }),
        Err(e) => Err(e.into()),
    }
}

pub async fn post_native(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = std::time::Instant::now();
    let result = async {
        let (org, body, tp) = submission(&state, &headers, body)?;
        accept_native(&state, &org, &body, tp).await
    }
    .await;
    respond(&state, started, "native", result)
}
