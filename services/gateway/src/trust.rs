//! The gateway's guard, in front of every endpoint (docs/security.md,
//! "HTTP hardening"), in this order, so that nobody who cannot name a token
//! costs the hub more than a digest:
//!
//! 1. [`identify`] (every route): the caller of a known token, rate-limited
//!    per caller (429); unknown callers pass to public pages only.
//! 2. [`require`] (routes that need a caller): 401 at once, before a
//!    permit of `[http] max_in_flight` is taken or a byte of body read.
//! 3. The shed (see `lib.rs`): beyond `max_in_flight` authenticated
//!    requests at once, 503.
//! 4. [`body`]: per-organisation request size (413), the body read within
//!    its time (408), the submission signature of organisations that
//!    registered a key (401).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
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

/// Spends one request of `who`'s rate (`[http] rate_limit`, or the
/// organisation's own): HTTP requests and NATS submissions share it.
pub fn spend(state: &GatewayState, who: &Caller) -> Result<(), ApiError> {
    let (name, org) = match who {
        Caller::Org(id) => (id.as_str(), state.settings.org(id)),
        Caller::Operator => ("operator", None),
    };
    let limit = org.and_then(|o| o.rate_limit).unwrap_or(state.settings.http.rate_limit);
    state.limiter.take(name, limit).map_err(|wait| {
        metrics::counter!("xj_gateway_errors_total", "code" => "rate_limited").increment(1);
        let retry_after = wait.ceil().max(1.0) as u64;
        ApiError::RateLimited {
            message: format!(
                "more than {} requests per second from {name}; retry in {retry_after} s",
                limit.per_second
            ),
            retry_after,
        }
    })
}

/// Largest body `who` may send to `path`.
pub fn body_limit(state: &GatewayState, who: Option<&Caller>, path: &str) -> usize {
    let http = &state.settings.http;
    if path.starts_with("/v1/attachments") {
        return http.max_attachment_bytes;
    }
    if path == crate::batch::PATH {
        return http.max_batch_bytes;
    }
    match who {
        Some(Caller::Org(id)) => state
            .settings
            .org(id)
            .and_then(|o| o.max_body_bytes)
            .map_or(http.max_body_bytes, |m| m.min(http.max_body_bytes)),
        _ => http.max_body_bytes,
    }
}

/// Every route: who is calling, when a known token is given, and one
/// request of its rate spent. A public page serves unknown callers as it
/// serves anyone; [`require`] refuses them elsewhere.
pub async fn identify(State(state): State<GatewayState>, mut req: Request, next: Next) -> Response {
    if let Ok(who) = caller(&state, req.headers()) {
        if let Err(e) = spend(&state, &who) {
            return e.into_response();
        }
        req.extensions_mut().insert(who);
    }
    next.run(req).await
}

/// Routes that need a caller: 401 before anything else is spent on the
/// request (no permit taken, no body read).
pub async fn require(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    if req.extensions().get::<Caller>().is_some() {
        return next.run(req).await;
    }
    match caller(&state, req.headers()) {
        Err(e) => e.into_response(),
        // Known but not identified: its rate was spent (and refused) there.
        Ok(_) => ApiError::unauthorized_by("Authorization", "unknown token").into_response(),
    }
}

/// The body of an authenticated POST, read within its size and time, and
/// the signature over it checked; the handler gets the bytes in full.
pub async fn body(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let who = req.extensions().get::<Caller>().cloned();
    let max = body_limit(&state, who.as_ref(), req.uri().path());
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    if declared.is_some_and(|n: usize| n > max) {
        return ApiError::TooLarge(max).into_response();
    }
    let bytes = match axum::body::to_bytes(body, max).await {
        Ok(b) => b,
        Err(e) => return body_error(&e, max, state.settings.http.body_read_timeout_ms).into_response(),
    };
    if let Some(Caller::Org(org)) = &who {
        let sig = parts.headers.get(h::SIGNATURE).and_then(|v| v.to_str().ok());
        let signed = parts.headers.get(h::SIGNATURE).is_some();
        if let Err(e) = verify_submission(&state, org, sig, &bytes) {
            // A header that is not text is as bad as a wrong one.
            let e = if signed && sig.is_none() {
                ApiError::unauthorized_by(h::SIGNATURE, "Xj-Signature must be visible ASCII")
            } else {
                e
            };
            return e.into_response();
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes))).await
}

/// Why a body could not be read: too large (413), stalled (408), or cut
/// off by the client (400; nobody is waiting for the answer then).
pub fn body_error(e: &(dyn std::error::Error + 'static), max: usize, timeout_ms: u64) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return ApiError::TooLarge(max);
        }
        if c.is::<tower_http::timeout::TimeoutError>() {
            metrics::counter!("xj_gateway_errors_total", "code" => "body_timeout").increment(1);
            return ApiError::Timeout(format!(
                "the request body stalled for more than {} ms; nothing was accepted",
                timeout_ms
            ));
        }
        cause = c.source();
    }
    ApiError::Malformed(format!("the request body could not be read ({e}); nothing was accepted"))
}

/// Whether `org` registered a key, so that its submissions are signed.
pub fn signs(state: &GatewayState, org: &str) -> bool {
    state.settings.org(org).is_some_and(|o| o.public_key.is_some())
}

/// An organisation that registered a public key signs every submission:
/// `Xj-Signature: [alg=sm2,]keyid=<any>,sig=<base64 signature over the exact
/// body>` with the algorithm it registered (`key_alg`).
pub fn verify_submission(state: &GatewayState, org: &str, header: Option<&str>, body: &[u8]) -> Result<(), ApiError> {
    let Some((alg, key)) = state.settings.org(org).and_then(|o| Some((o.key_alg, o.public_key.as_deref()?))) else {
        return Ok(());
    };
    let Some(header) = header else {
        metrics::counter!("xj_signature_refusals_total", "reason" => "missing").increment(1);
        return Err(ApiError::unauthorized_by(
            h::SIGNATURE,
            format!(
                "{org} has registered a signing key: every submission must carry the header \
                 Xj-Signature: {}keyid=<key id>,sig=<base64 {} signature over the exact body>",
                if alg == xj_bus::signing::Alg::Sm2 { "alg=sm2," } else { "" },
                if alg == xj_bus::signing::Alg::Sm2 { "SM2 (r‖s)" } else { "Ed25519" }
            ),
        ));
    };
    xj_bus::signing::verify_header_as(alg, key, header, body).map_err(|reason| {
        metrics::counter!("xj_signature_refusals_total", "reason" => "invalid").increment(1);
        tracing::warn!(%org, %reason, "submission signature refused");
        ApiError::unauthorized_by(
            h::SIGNATURE,
            format!("Xj-Signature does not verify against the key {org} registered: {reason}"),
        )
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

    #[tokio::test]
    async fn body_errors_say_what_happened() {
        use axum::http::StatusCode;
        let stalled = futures::stream::pending::<Result<hyper::body::Frame<bytes::Bytes>, std::io::Error>>();
        let body = tower_http::timeout::TimeoutBody::new(
            std::time::Duration::from_millis(1),
            http_body_util::StreamBody::new(stalled),
        );
        let Err(e) = axum::body::to_bytes(Body::new(body), 10).await else { panic!("a stalled body was read") };
        assert_eq!(body_error(&e, 10, 5).status(), StatusCode::REQUEST_TIMEOUT);
        let Err(e) = axum::body::to_bytes(Body::from("more than ten bytes"), 10).await else { panic!("too long") };
        assert_eq!(body_error(&e, 10, 5).status(), StatusCode::PAYLOAD_TOO_LARGE);
        let other = std::io::Error::other("reset");
        assert_eq!(body_error(&other, 10, 5).status(), StatusCode::BAD_REQUEST);
    }
}
