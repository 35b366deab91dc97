//! What stands between a browser and the console's state-changing requests
//! (docs/security.md, "The operator console"):
//!
//! - a request from a page of another origin is refused (403): the browser
//!   says where a request comes from in `Sec-Fetch-Site`, older ones in
//!   `Origin`, and either must name the console itself; a request that
//!   carries neither is not from a browser page, so no cookie rides on it
//!   unbidden;
//! - failed sign-ins are limited per client address (429 with
//!   `Retry-After`);
//! - whether the console is reached over https (the session cookie is then
//!   `Secure`), and the client's address, are taken from a reverse proxy's
//!   `X-Forwarded-Proto` / `X-Forwarded-For` only when the proxy is one of
//!   `[http] trusted_proxies`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use xj_config::RateLimit;

use crate::error::ConsoleError;
use crate::state::ConsoleState;

/// The peer of the connection, when the server recorded it.
pub fn peer(req_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    req_extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

fn trusted(state: &ConsoleState, peer: Option<IpAddr>) -> bool {
    peer.is_some_and(|p| state.settings.http.trusted_proxies.contains(&p))
}

/// The client's address: the peer, or — behind a trusted proxy — the
/// address the proxy says it serves (the last of `X-Forwarded-For`, the
/// one the proxy itself added).
pub fn client(state: &ConsoleState, peer: Option<IpAddr>, headers: &HeaderMap) -> IpAddr {
    let unknown = IpAddr::from([0, 0, 0, 0]);
    if !trusted(state, peer) {
        return peer.unwrap_or(unknown);
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .or(peer)
        .unwrap_or(unknown)
}

/// Whether the browser reached the console over https.
pub fn https(state: &ConsoleState, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
    if state.settings.console.origin.as_deref().is_some_and(|o| o.starts_with("https://")) {
        return true;
    }
    trusted(state, peer)
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The console's own origin: configured, or the scheme and `Host` of this
/// request.
fn own_origin(state: &ConsoleState, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<String> {
    if let Some(o) = &state.settings.console.origin {
        return Some(o.trim_end_matches('/').to_string());
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    let scheme = if https(state, peer, headers) { "https" } else { "http" };
    Some(format!("{scheme}://{host}"))
}

/// Refuses a state-changing request a page of another origin made.
pub async fn same_origin(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    match check_origin(&state, peer(req.extensions()), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            metrics::counter!("xj_console_cross_origin_refusals_total").increment(1);
            e.into_response()
        }
    }
}

fn check_origin(state: &ConsoleState, peer: Option<IpAddr>, headers: &HeaderMap) -> Result<(), ConsoleError> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("(not text)").to_string());
    if let Some(site) = text("sec-fetch-site") {
        return match site.as_str() {
            // "none": typed into the address bar or a bookmark, not a page.
            "same-origin" | "none" => Ok(()),
            other => Err(ConsoleError::CrossOrigin {
                header: "Sec-Fetch-Site",
                message: format!(
                    "the console refuses requests that change something from another site \
                     (Sec-Fetch-Site: {other}); use the console's own page"
                ),
            }),
        };
    }
    let Some(origin) = text("origin") else { return Ok(()) };
    let own = own_origin(state, peer, headers);
    if own.as_deref().is_some_and(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/'))) {
        return Ok(());
    }
    Err(ConsoleError::CrossOrigin {
        header: "Origin",
        message: format!(
            "the console refuses requests that change something from another origin: Origin {origin} is not {}",
            own.unwrap_or_else(|| "this console's origin".into())
        ),
    })
}

/// Failed sign-ins per client address, as token buckets; an attempt takes
/// a token first (so simultaneous attempts cannot all slip through) and a
/// successful one gives it back.
#[derive(Default)]
pub struct SignInLimiter {
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Addresses remembered at most; beyond it those whose buckets are full
/// again are forgotten (a flood of addresses cannot grow the map for ever).
const MAX_ADDRESSES: usize = 10_000;

impl SignInLimiter {
    /// One attempt from `ip`: `Err(seconds to wait)` when its failures are
    /// spent.
    pub fn attempt(&self, ip: IpAddr, limit: RateLimit) -> Result<(), u64> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = f64::from(limit.burst);
        if b.len() >= MAX_ADDRESSES {
            b.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * limit.per_second < burst);
        }
        let (tokens, at) = b.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * limit.per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / limit.per_second).ceil().max(1.0) as u64)
        }
    }

    /// The attempt from `ip` succeeded: it does not count as a failure.
    pub fn succeeded(&self, ip: IpAddr, limit: RateLimit) {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((tokens, _)) = b.get_mut(&ip) {
            *tokens = (*tokens + 1.0).min(f64::from(limit.burst));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_and_successes_are_free() {
        let l = SignInLimiter::default();
        let limit = RateLimit { per_second: 0.001, burst: 2 };
        let a = IpAddr::from([10, 0, 0, 1]);
        let b = IpAddr::from([10, 0, 0, 2]);
        assert!(l.attempt(a, limit).is_ok());
        l.succeeded(a, limit);
        assert!(l.attempt(a, limit).is_ok());
        assert!(l.attempt(a, limit).is_ok());
        let wait = l.attempt(a, limit).err();
        assert!(wait.is_some_and(|w| w >= 1), "{wait:?}");
        assert!(l.attempt(b, limit).is_ok(), "another address is not affected");
    }
}
