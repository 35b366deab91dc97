//! The HTTP server under the API and the console (docs/security.md, "HTTP
//! hardening"): hyper-util's server instead of `axum::serve`, because
//! only there can a header read timeout be set; per client address a cap on
//! open connections; and, as tower layers around every route, a time limit
//! for each request and for each pause in its body, a size limit for its
//! headers, panics answered as a plain 500, and every refusal in JSON.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;
use xj_config::HttpSettings;

use crate::error::ApiError;

/// The layers every route is served through (outermost first): refusals in
/// JSON, panics caught, the whole request within `request_timeout_ms`, the
/// header block within `max_header_bytes`, no pause in the body longer than
/// `body_read_timeout_ms`.
pub fn harden(routes: Router, http: &HttpSettings) -> Router {
    let request_timeout = Duration::from_millis(http.request_timeout_ms);
    let max_header = http.max_header_bytes;
    routes
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(Duration::from_millis(http.body_read_timeout_ms)))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| header_size(max_header, req, next)))
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |e: tower::BoxError| async move { layer_error(e, request_timeout) }))
                .timeout(request_timeout),
        )
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .layer(axum::middleware::map_response(json_errors))
}

/// What the tower layers refuse with: a request over its time, or the
/// gateway at capacity.
pub fn layer_error(e: tower::BoxError, request_timeout: Duration) -> Response {
    if e.is::<tower::timeout::error::Elapsed>() {
        metrics::counter!("xj_gateway_errors_total", "code" => "request_timeout").increment(1);
        return ApiError::Timeout(format!(
            "the request took longer than {} s and was abandoned; a submission may still have been accepted: \
             send it again with the same id (a repeat is answered 200 with its receipt)",
            request_timeout.as_secs_f64()
        ))
        .into_response();
    }
    if e.is::<tower::load_shed::error::Overloaded>() {
        // Counted, not logged: an overload would drown the log.
        return ApiError::Overloaded.into_response();
    }
    ApiError::Internal(e.to_string()).into_response()
}

/// 431 for a header block over the limit, naming the largest header (hyper
/// itself refuses only blocks of hundreds of kilobytes, and without a word).
async fn header_size(max: usize, req: Request, next: Next) -> Response {
    let size: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if size <= max {
        return next.run(req).await;
    }
    let largest = req.headers().iter().max_by_key(|(_, v)| v.len()).map(|(k, _)| k.as_str().to_string());
    let name = largest.unwrap_or_default();
    (
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        axum::Json(serde_json::json!({
            "error": "headers_too_large",
            "message": format!("the request's headers take {size} bytes, more than the limit of {max}"),
            "details": [{ "header": name, "message": "the largest header" }],
        })),
    )
        .into_response()
}

/// Any refusal that is not JSON yet — axum's own (a path parameter that does
/// not parse, a method not allowed, a body limit) — becomes the API's JSON
/// error, with the original text as the message.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("refused").to_lowercase()
    } else {
        crate::error::clip(text.trim())
    };
    let code = match status {
        StatusCode::BAD_REQUEST => "malformed",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        s if s.is_server_error() => "internal",
        _ => "refused",
    };
    // axum's own refusals of a path or query parameter say which in words;
    // the details say it for a program.
    let details = if message.starts_with("Invalid URL") {
        serde_json::json!([{ "parameter": "path", "message": message }])
    } else if message.starts_with("Failed to deserialize query string") {
        serde_json::json!([{ "parameter": "query", "message": message }])
    } else {
        serde_json::json!([])
    };
    let mut out = (status, axum::Json(serde_json::json!({ "error": code, "message": message, "details": details })))
        .into_response();
    for name in [header::ALLOW, header::RETRY_AFTER, header::SET_COOKIE] {
        for v in parts.headers.get_all(&name) {
            out.headers_mut().append(name.clone(), v.clone());
        }
    }
    out
}

/// Open connections per client: an IPv4 address, or an IPv6 /64 (one
/// subscriber's whole range, which a single client can move about in).
#[derive(Default)]
struct Clients {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of a client, given back when dropped.
struct Slot {
    clients: Arc<Clients>,
    key: IpAddr,
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Clients {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<Slot> {
        let key = client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Slot { clients: self.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.clients.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Serves `app` on `listener` (bound by the caller, with the deep accept
/// queue of `xj::hub::listen`) until `shutdown` is cancelled; then stops
/// accepting and waits for the requests in flight, as `axum::serve` with
/// graceful shutdown did. Only HTTP/1.1: the header read timeout is an
/// HTTP/1 setting, and nothing the hub talks to needs cleartext HTTP/2.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    http: &HttpSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_millis(http.header_read_timeout_ms));
    let graceful = GracefulShutdown::new();
    let clients = Arc::new(Clients::default());
    let cap = http.max_connections_per_client.max(1);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Some(slot) = clients.take(peer.ip(), cap) else {
            // Closed at once: the cheapest answer, and it costs the client
            // its connection attempt rather than the hub a task.
            metrics::counter!("xj_gateway_connections_refused_total", "reason" => "per_client_cap").increment(1);
            tracing::debug!(%peer, cap, "connection refused: too many open connections from this client");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let svc = app.clone().map_request(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            req
        });
        let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc)).into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// A failed accept: a connection reset before it was taken is the client's
/// business; anything else (out of file descriptors) is waited out, as
/// `axum::serve` does, rather than spun on.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_capped_per_client_and_given_back() {
        let clients = Arc::new(Clients::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap_or(IpAddr::from([10, 0, 0, 1]));
        let b: IpAddr = IpAddr::from([10, 0, 0, 2]);
        let first = clients.take(a, 2);
        let second = clients.take(a, 2);
        assert!(first.is_some() && second.is_some());
        assert!(clients.take(a, 2).is_none(), "a third from the same address");
        assert!(clients.take(b, 2).is_some(), "another address is not affected");
        drop(first);
        assert!(clients.take(a, 2).is_some(), "a closed connection gives its place back");
    }

    #[test]
    fn an_ipv6_client_is_its_64() {
        let one: IpAddr = IpAddr::V6("2001:db8:1:2::1".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST));
        let two: IpAddr = IpAddr::V6("2001:db8:1:2:ffff::9".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST));
        assert_eq!(client_key(one), client_key(two));
        let mapped: IpAddr = IpAddr::V6(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(client_key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
