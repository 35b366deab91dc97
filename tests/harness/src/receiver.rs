//! A departmental system's webhook, for tests: a real HTTP server that
//! records every delivery (with the time it arrived), dedupes on
//! `Xj-Sender` and `Xj-Message-Id` as docs/api.md asks of receivers, and can be told to
//! fail, to answer slowly, or to go down altogether (connection refused)
//! and come back on the same port.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    pub json: Value,
    /// When it arrived (the first copy).
    pub at: Instant,
    /// The HTTP version it came by.
    pub version: axum::http::Version,
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    unique: Vec<Delivery>,
    seen: HashSet<String>,
    hits: usize,
    duplicates: usize,
    fail_next: usize,
    failing: bool,
    /// Message ids answered 400 (this message, not the receiver, is the problem).
    refused: HashSet<String>,
    delay: Duration,
    down: bool,
}

#[derive(Clone)]
pub struct Receiver {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
    server: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        // A port from below the ephemeral range: while the receiver is
        // down, no outgoing connection can be given it as its local port,
        // and no other server of this process is given it either.
        let mut listener = None;
        for _ in 0..20 {
            if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", xj_bus::embedded::free_port())).await {
                listener = Some(l);
                break;
            }
        }
        let listener = match listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
        };
        let addr = listener.local_addr()?;
        let r = Self { addr, inner, server: Arc::default() };
        r.serve(listener);
        Ok(r)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new().route("/inbox", post(inbox)).with_state(self.inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Stops listening: deliveries find the connection refused, as when a
    /// departmental system is down.
    pub fn go_down(&self) {
        // Connections kept alive by a client get 503 and are closed.
        self.lock().down = true;
        if let Some(task) = self.server.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() > Duration::from_secs(10) => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.lock().down = false;
        self.serve(listener);
        Ok(())
    }

    /// Answer every request only after `d` (a slow departmental system).
    pub fn set_delay(&self, d: Duration) {
        self.lock().delay = d;
    }

    pub fn url(&self) -> String {
        format!("http://{}/inbox", self.addr)
    }

    /// Answer 503 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
    }

    /// Answer 400 to deliveries of message `id` (`false`: accept it again).
    pub fn refuse(&self, id: &str, refuse: bool) {
        let mut g = self.lock();
        if refuse {
            g.refused.insert(id.to_string());
        } else {
            g.refused.remove(id);
        }
    }

    /// Answer 503 to every request until set back.
    pub fn set_failing(&self, failing: bool) {
        self.lock().failing = failing;
    }

    /// Deliveries accepted, first copy of each message id only.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.lock().unique.clone()
    }

    /// Every request received, successful or not, duplicates included.
    pub fn hits(&self) -> usize {
        self.lock().hits
    }

    pub fn duplicates(&self) -> usize {
        self.lock().duplicates
    }

    /// Waits until at least `n` unique deliveries arrived.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> anyhow::Result<Vec<Delivery>> {
        crate::eventually(limit, &format!("{n} deliveries at {}", self.url()), || async {
            let d = self.deliveries();
            (d.len() >= n).then_some(d)
        })
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn inbox(
    State(inner): State<Arc<Mutex<Inner>>>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if inner.lock().unwrap_or_else(|p| p.into_inner()).down {
        return (StatusCode::SERVICE_UNAVAILABLE, [("connection", "close")]).into_response();
    }
    record(&inner, version, headers, body).await.into_response()
}

async fn record(
    inner: &Arc<Mutex<Inner>>,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let delay = inner.lock().unwrap_or_else(|p| p.into_inner()).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut g = inner.lock().unwrap_or_else(|p| p.into_inner());
    g.hits += 1;
    if g.failing {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    if g.fail_next > 0 {
        g.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let id = headers.get("xj-message-id").cloned().unwrap_or_default();
    if g.refused.contains(&id) {
        return StatusCode::BAD_REQUEST;
    }
    // Ids are unique per sender: two senders' `M-1` are two messages.
    let sender = headers.get("xj-sender").cloned().unwrap_or_default();
    if !g.seen.insert(format!("{sender}\n{id}")) {
        g.duplicates += 1;
        return StatusCode::OK;
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    g.unique.push(Delivery { headers, body, json, at: Instant::now(), version });
    StatusCode::OK
}
