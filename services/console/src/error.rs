//! The console's JSON errors, in the API's shape.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub enum ConsoleError {
    Unauthorized,
    NotFound(String),
    Invalid(String),
    Unavailable(String),
    /// A body that is not the JSON expected, at this line and column.
    BadBody {
        message: String,
        line: usize,
        column: usize,
    },
    /// A state-changing request from a page of another origin.
    CrossOrigin {
        header: &'static str,
        message: String,
    },
    /// Too many failed sign-ins from one address.
    RateLimited {
        message: String,
        retry_after: u64,
    },
}

impl ConsoleError {
    pub fn bus(e: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %e, "console: bus operation failed");
        Self::Unavailable("the message bus is unavailable; try again".into())
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let mut details = json!([]);
        let mut retry = None;
        let (status, code, message) = match self {
            Self::Unauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized", "sign in with the operator token".to_string())
            }
            Self::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m),
            Self::Invalid(m) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
            Self::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m),
            Self::BadBody { message, line, column } => {
                details = json!([{ "line": line, "column": column, "message": xj_edge::clip(&message) }]);
                (StatusCode::BAD_REQUEST, "malformed", message)
            }
            Self::CrossOrigin { header, message } => {
                details = json!([{ "header": header, "message": message }]);
                (StatusCode::FORBIDDEN, "cross_origin", message)
            }
            Self::RateLimited { message, retry_after } => {
                retry = Some(retry_after);
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            }
        };
        let message = xj_edge::clip(&message);
        let mut r = (status, Json(json!({ "error": code, "message": message, "details": details }))).into_response();
        if let Some(s) = retry {
            r.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        r
    }
}

pub type Result<T> = std::result::Result<T, ConsoleError>;
