//! A departmental system's webhook, for tests: a real HTTP server that
//! records every delivery, dedupes on `Xj-Message-Id` as CONTRACT §4 asks of
//! receivers, and can be told to fail.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
}

impl Delivery {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
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
}

#[derive(Clone)]
pub struct Receiver {
    addr: std::net::SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> anyhow::Result<Self> {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new()
            .route("/inbox", post(inbox))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, inner })
    }

    pub fn url(&self) -> String {
        format!("http://{}/inbox", self.addr)
    }

    /// Answer 503 to the next `n` requests.
    pub fn fail_next(&self, n: usize) {
        self.lock().fail_next = n;
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
        crate::eventually(
            limit,
            &format!("{n} deliveries at {}", self.url()),
            || async {
                let d = self.deliveries();
                (d.len() >= n).then_some(d)
            },
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn inbox(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
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
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let id = headers.get("xj-message-id").cloned().unwrap_or_default();
    if !g.seen.insert(id) {
        g.duplicates += 1;
        return StatusCode::OK;
    }
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    g.unique.push(Delivery {
        headers,
        body,
        json,
    });
    StatusCode::OK
}
