//! The gateway's guard, in front of every endpoint (docs/security.md):
//! per-caller rate limits (429), per-organisation request size (413), the
//! submission signature of organisations that registered a key (401), and
//! a last net that turns a panic into a plain 500 — no stack trace, no
//! internal error text ever reaches a caller.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use serde_json::json;
use xj_bus::headers as h;
use xj_config::RateLimit;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

/// Token buckets per caller.
#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// Takes one request from `who`'s bucket; `Err(seconds)` until the next
    /// one is available.
    pub fn take(&self, who: &str, limit: RateLimit) -> Result<(), f64> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (tokens, at) = b.entry(who.to_string()).or_insert((f64::from(limit.burst), now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limit.per_second).min(f64::from(limit.burst));
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((1.0 - *tokens) / limit.per_second)
        }
    }
}

/// The state of the guard layer.
#[derive(Clone)]
pub struct Guard {
    pub state: GatewayState,
    pub limiter: Arc<Limiter>,
}

pub async fn guard(State(g): State<Guard>, req: Request, next: Next) -> Response {
    match AssertUnwindSafe(checked(&g, req, next)).catch_unwind().await {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }
    }
}

async fn checked(g: &Guard, req: Request, next: Next) -> Response {
    let state = &g.state;
    // Unknown callers pass: the endpoint answers 401 (or serves a public page).
    let Ok(who) = caller(state, req.headers()) else { return next.run(req).await };
    let (name, org) = match &who {
        Caller::Org(id) => (id.clone(), state.settings.org(id)),
        Caller::Operator => ("operator".to_string(), None),
    };
    let limit = org.and_then(|o| o.rate_limit).unwrap_or(state.settings.http.rate_limit);
    if let Err(wait) = g.limiter.take(&name, limit) {
        metrics::counter!("xj_gateway_errors_total", "code" => "rate_limited").increment(1);
        let retry = wait.ceil().max(1.0) as u64;
        let body = json!({
            "error": "rate_limited",
            "message": format!("more than {} requests per second from {name}; retry in {retry} s", limit.per_second),
            "details": [],
        });
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", retry.to_string())], axum::Json(body)).into_response();
    }
    let (Some(org), true) = (org, req.method() == Method::POST) else { return next.run(req).await };
    let global = state.settings.http.max_body_bytes;
    let max = if req.uri().path().starts_with("/v1/attachments") {
        state.settings.http.max_attachment_bytes
    } else {
        org.max_body_bytes.map_or(global, |m| m.min(global))
    };
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n: usize| n > max) {
        return ApiError::TooLarge(max).into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        return ApiError::TooLarge(max).into_response();
    };
    let sig = parts.headers.get(h::SIGNATURE).and_then(|v| v.to_str().ok());
    if let Err(e) = verify_submission(state, &org.id, sig, &bytes) {
        return e.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// An organisation that registered a public key signs every submission:
/// `Xj-Signature: keyid=<any>,sig=<base64 Ed25519 over the exact body>`.
pub fn verify_submission(state: &GatewayState, org: &str, header: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let Some(key) = state.settings.org(org).and_then(|o| o.public_key.as_deref()) else { return Ok(()) };
    let Some(header) = header else {
        metrics::counter!("xj_signature_refusals_total", "reason" => "missing").increment(1);
        return Err(ApiError::Unauthorized(format!(
            "{org} has registered a signing key: every submission must carry the header \
             Xj-Signature: keyid=<key id>,sig=<base64 Ed25519 signature over the exact body>"
        )));
    };
    xj_bus::signing::verify_header(key, header, body).map_err(|reason| {
        metrics::counter!("xj_signature_refusals_total", "reason" => "invalid").increment(1);
        tracing::warn!(%org, %reason, "submission signature refused");
        ApiError::Unauthorized(format!("Xj-Signature does not verify against the key {org} registered: {reason}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_configured_rate() {
        let l = Limiter::default();
        let limit = RateLimit { per_second: 1000.0, burst: 2 };
        assert!(l.take("a", limit).is_ok());
        assert!(l.take("a", limit).is_ok());
        assert!(l.take("a", limit).is_err(), "burst spent");
        assert!(l.take("b", limit).is_ok(), "each caller has its own bucket");
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(l.take("a", limit).is_ok(), "refilled");
    }
}
