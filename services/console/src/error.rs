//! The console's JSON errors, in the API's shape.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ConsoleError {
    Unauthorized,
    NotFound(String),
    Invalid(String),
    Unavailable(String),
}

impl ConsoleError {
    pub fn bus(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "console: bus operation failed");
        Self::Unavailable("the message bus is unavailable; try again".into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Self::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "sign in with the operator token".to_string())
            }
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            Self::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
        };
        (status, Json(json!({ "error": code, "message": message, "details": [] }))).into_response()
    }
}

pub type Result<T> = std::result::Result<T, ConsoleError>;
