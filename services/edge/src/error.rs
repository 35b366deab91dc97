//! Every answer that is not a success: `{"error","message","details"}`
//! (docs/api.md, "Errors"). Internal errors are logged, never shown. Each
//! refusal says where the problem is: a JSON pointer into the body, a line
//! and column of a body that is not JSON, or the header at fault.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use xj_model::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the message has {} problem(s)", .0.len())]
    Invalid(Vec<Problem>),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
    /// A problem with one request header (`details: [{"header", "message"}]`).
    #[error("{message}")]
    Header { status: StatusCode, code: &'static str, header: &'static str, message: String },
    /// A body that is not JSON (or not a JSON object), located by line and
    /// column.
    #[error("{message}")]
    Syntax { message: String, line: usize, column: usize },
    /// Beyond the caller's rate: retry after `retry_after` seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// `[http] max_in_flight` requests are being handled: nothing was
    /// accepted, retry shortly.
    #[error("the hub is at capacity; nothing was accepted, retry shortly")]
    Overloaded,
    /// The request (its body, or all of it) took too long.
    #[error("{0}")]
    Timeout(String),
}

/// Longest message or detail text an answer carries: a refusal may quote
/// what was sent, and what was sent may be a megabyte.
const MAX_TEXT: usize = 1000;

/// `text` cut to 1,000 characters (`MAX_TEXT`), control characters escaped, so an
/// answer never carries back a sender's megabyte or its terminal escapes.
pub fn clip(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n >= MAX_TEXT {
            out.push('…');
            break;
        }
        xj_model::push_visible(&mut out, c);
    }
    out
}

impl ApiError {
    /// The bus failed: the cause is logged, the caller hears only that the
    /// hub is unavailable (no internal error text in answers).
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "bus operation failed");
        Self::Unavailable("the hub's message bus is unavailable; retry later".into())
    }

    /// 401 because of `header` (Authorization, Xj-Signature).
    pub fn unauthorized_by(header: &'static str, message: impl Into<String>) -> Self {
        Self::Header { status: StatusCode::UNAUTHORIZED, code: "unauthorized", header, message: message.into() }
    }

    /// A JSON syntax error from serde_json, with its line and column.
    pub fn syntax(e: &serde_json::Error) -> Self {
        Self::Syntax { message: format!("body is not JSON: {e}"), line: e.line(), column: e.column() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Malformed(_) | Self::Syntax { .. } => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Header { status, .. } => *status,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Malformed(_) | Self::Syntax { .. } => "malformed",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too_large",
            Self::Unavailable(_) | Self::Overloaded => "unavailable",
            Self::Internal(_) => "internal",
            Self::Header { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Timeout(_) => "timeout",
        }
    }

    /// Seconds a client should wait before trying again, when that is known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Overloaded => Some(1),
            _ => None,
        }
    }

    pub fn body(&self) -> Value {
        let details = match self {
            Self::Invalid(p) => {
                json!(
                    p.iter().map(|p| json!({ "pointer": p.pointer, "message": clip(&p.message) })).collect::<Vec<_>>()
                )
            }
            Self::Header { header, message, .. } => json!([{ "header": header, "message": clip(message) }]),
            Self::Syntax { message, line, column } => {
                json!([{ "line": line, "column": column, "message": clip(message) }])
            }
            _ => json!([]),
        };
        json!({ "error": self.code(), "message": clip(&self.to_string()), "details": details })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) | Self::Unavailable(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let label = if matches!(self, Self::Overloaded) { "overloaded" } else { self.code() };
        metrics::counter!("xj_gateway_errors_total", "code" => label).increment(1);
        let mut r = (self.status(), Json(self.body())).into_response();
        if let Some(s) = self.retry_after() {
            r.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(s));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_never_carry_a_megabyte_or_control_characters() {
        let long = "x".repeat(100_000);
        let e = ApiError::Invalid(vec![Problem::new("/id", format!("{long}\u{1b}[2J"))]);
        let body = e.body().to_string();
        assert!(body.len() < 3 * MAX_TEXT, "{}", body.len());
        assert_eq!(clip("a\u{1b}b\n"), "a\\u{1B}b\\u{0A}");
    }

    #[test]
    fn header_problems_name_the_header() {
        let e = ApiError::unauthorized_by("Xj-Signature", "missing");
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(e.body()["details"][0]["header"], "Xj-Signature");
    }
}
