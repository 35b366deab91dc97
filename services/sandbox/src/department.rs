//! One departmental system: its inbox and how it answers.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use xj_bus::Shutdown;
use xj_bus::signing::verify_header;
use xj_config::{Org, OrgKind};

use crate::SandboxOptions;

/// Departments run here only for webhooks on this machine.
pub fn is_local(org: &Org) -> bool {
    org.deliver
        .webhook
        .as_deref()
        .is_some_and(|u| u.starts_with("http://127.0.0.1:") || u.starts_with("http://localhost:"))
}

#[derive(Default)]
struct Inbox {
    seen: HashSet<String>,
    received: Vec<Value>,
    rejected: usize,
    duplicates: usize,
    replies: u64,
}

#[derive(Clone)]
pub struct Department {
    org: Org,
    hub_key: String,
    http: reqwest::Client,
    opts: SandboxOptions,
    inbox: Arc<Mutex<Inbox>>,
    /// Native formats, to write and read the department's own documents.
    formats: Arc<xj_mapping::Formats>,
    /// Who a police decision is copied to (Decree 310 art. 8).
    procuratorate: Option<String>,
    /// Its Standard Webhooks secret, when known: deliveries must then carry
    /// a valid `webhook-signature` too.
    webhook_secret: Option<String>,
}

impl Department {
    pub fn new(
        org: Org,
        hub_key: String,
        http: reqwest::Client,
        opts: SandboxOptions,
        formats: Arc<xj_mapping::Formats>,
        procuratorate: Option<String>,
    ) -> Self {
        Self { org, hub_key, http, opts, inbox: Arc::default(), formats, procuratorate, webhook_secret: None }
    }

    /// Verifies Standard Webhooks signatures with `secret` as well.
    pub fn with_webhook_secret(mut self, secret: Option<String>) -> Self {
        self.webhook_secret = secret;
        self
    }

    fn url(&self) -> &str {
        self.org.deliver.webhook.as_deref().unwrap_or_default()
    }

    pub async fn bind(&self) -> anyhow::Result<tokio::net::TcpListener> {
        let rest = self.url().split_once("://").map(|x| x.1).unwrap_or_default();
        let authority = rest.split('/').next().unwrap_or_default().replace("localhost", "127.0.0.1");
        Ok(tokio::net::TcpListener::bind(&authority).await?)
    }

    pub async fn serve(self, listener: tokio::net::TcpListener, shutdown: Shutdown) -> anyhow::Result<()> {
        let path = self.url().split_once("://").and_then(|x| x.1.find('/').map(|i| x.1[i..].to_string()));
        let path = path.unwrap_or_else(|| "/".into());
        tracing::info!(org = %self.org.id, url = %self.url(), "sandbox department listening");
        let app = Router::new()
            .route(&path, post(receive))
            .route(if path == "/" { "/received" } else { "/" }, get(list))
            .with_state(self);
        axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await?;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How this kind of organisation answers what it received: a bureau or
    /// town replies to a referral; a police unit signs a receipt for a
    /// hand-off and then decides; a court rules on an application for
    /// compulsory enforcement. Each answer goes out in the department's own
    /// format.
    async fn answer(&self, msg: Value) {
        let kind = msg["type"].as_str().unwrap_or_default();
        let n = {
            let mut g = self.lock();
            g.replies += 1;
            g.replies
        };
        let today = chrono::Local::now().date_naive().to_string();
        let replies: Vec<Value> = match (self.org.kind, kind) {
            (k, "clue_referral" | "case_referral") if k.is_enforcement() => vec![json!({
                "type": "referral_reply",
                "body": {
                    "decision": "accepted",
                    "case_no": format!("{}-2026-{n:04}", self.org.id),
                    "letter_doc_no": msg["body"]["doc_no"],
                    "decided_on": today,
                    "received": { "volumes": 1, "pages": 12, "items": msg["body"]["seized_items"].as_array().map_or(0, |a| a.len()) },
                }
            })],
            (OrgKind::PublicSecurity, "criminal_handoff") => vec![
                json!({
                    "type": "handoff_receipt",
                    "body": { "received_at": chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false), "receipt_no": format!("{}-HZ-{n:04}", self.org.id) }
                }),
                json!({
                    "type": "police_decision",
                    "recipient": self.procuratorate,
                    "body": { "decision": "filed", "police_case_no": format!("A990101{n:06}"), "decided_on": today }
                }),
            ],
            (OrgKind::Court, "assistance_request") if msg["body"]["due_basis"] == "enforcement" => vec![json!({
                "type": "assistance_reply",
                "body": {
                    "decision": "granted",
                    "result": format!("准予强制执行{}", msg["body"]["enforcement"]["decision_doc_no"].as_str().unwrap_or("行政决定")),
                    "ruling": { "kind": "enforce", "doc_no": format!("（2026）清0101行审{n}号"), "ruled_on": today, "enforcement_case_no": format!("（2026）清0101执{n}号") }
                }
            })],
            _ => Vec::new(),
        };
        for (i, mut reply) in replies.into_iter().enumerate() {
            tokio::time::sleep(self.opts.reply_after).await;
            let id = format!("{}-R{}-{}", self.org.id, i + 1, msg["id"].as_str().unwrap_or_default());
            reply["id"] = id.clone().into();
            reply["sender"] = self.org.id.clone().into();
            reply["reply_to"] = msg["id"].clone();
            reply["case"] = msg["case"].clone();
            reply["sent_at"] = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false).into();
            reply["classification"] = "internal".into();
            if reply.get("recipient").is_some_and(Value::is_null) {
                reply.as_object_mut().map(|o| o.remove("recipient"));
            }
            match crate::speak::submit(&self.http, &self.opts.gateway, &self.formats, &self.org, &reply).await {
                Ok(r) if r.status().is_success() => {
                    tracing::info!(org = %self.org.id, %id, format = %self.org.format, "sandbox replied")
                }
                Ok(r) => {
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    tracing::warn!(org = %self.org.id, %status, %body, "sandbox reply refused")
                }
                Err(e) => tracing::warn!(org = %self.org.id, error = %e, "sandbox reply failed"),
            }
        }
    }
}

async fn receive(State(dept): State<Department>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get("xj-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Err(e) = verify_header(&dept.hub_key, sig, &body) {
        tracing::warn!(org = %dept.org.id, error = %e, "sandbox rejected an unsigned or forged delivery");
        dept.lock().rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    // The same delivery checked the way a receiver with a stock Standard
    // Webhooks library would (its secret; the timestamp within tolerance).
    if let Some(secret) = &dept.webhook_secret
        && let Err(e) = xj_bus::webhooks::verify(secret, &body, &headers)
    {
        tracing::warn!(org = %dept.org.id, error = %e, "sandbox rejected a delivery whose webhook-signature does not verify");
        dept.lock().rejected += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    // Ids are unique per sender: two senders' `M-1` are two messages.
    let id = format!("{}\n{}", header("xj-sender"), header("xj-message-id"));
    // Read in the department's own format, as its system would.
    let msg = match crate::speak::read(&dept.formats, &dept.org, &body) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(org = %dept.org.id, error = %e, "sandbox cannot read a delivery in its own format");
            return StatusCode::BAD_REQUEST;
        }
    };
    {
        let mut g = dept.lock();
        if !g.seen.insert(id) {
            g.duplicates += 1;
            return StatusCode::OK;
        }
        let mut kept = msg.clone();
        if dept.org.format != xj_mapping::CANONICAL {
            kept["native"] = Value::String(String::from_utf8_lossy(&body).into_owned());
        }
        g.received.push(kept);
        if g.received.len() > 500 {
            g.received.remove(0);
        }
    }
    if dept.org.kind != OrgKind::CoordinationOffice {
        let d = dept.clone();
        tokio::spawn(async move { d.answer(msg).await });
    }
    StatusCode::OK
}

async fn list(State(dept): State<Department>) -> axum::Json<Value> {
    let g = dept.lock();
    axum::Json(json!({
        "org": dept.org.id,
        "name": dept.org.name,
        "received": g.received.len(),
        "duplicates": g.duplicates,
        "rejected_signatures": g.rejected,
        "messages": g.received.iter().rev().take(50).collect::<Vec<_>>(),
    }))
}
