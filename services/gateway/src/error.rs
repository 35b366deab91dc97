//! Every answer that is not a success: `{"error","message","details"}`
//! (CONTRACT §3). Internal errors are logged, never shown.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
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
}

impl ApiError {
    /// The bus failed: the cause is logged, the caller hears only that the
    /// hub is unavailable (no internal error text in answers).
    pub fn unavailable(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "bus operation failed");
        Self::Unavailable("the hub's message bus is unavailable; retry later".into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Malformed(_) => "malformed",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) => "conflict",
            Self::TooLarge(_) => "too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        let details = match self {
            Self::Invalid(p) => json!(p),
            _ => json!([]),
        };
        json!({ "error": self.code(), "message": self.to_string(), "details": details })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) | Self::Unavailable(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        metrics::counter!("xj_gateway_errors_total", "code" => self.code()).increment(1);
        (self.status(), Json(self.body())).into_response()
    }
}
