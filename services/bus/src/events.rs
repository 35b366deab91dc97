//! Step events: each service records what it did to a message on
//! `xj.evt.<sender>.<msg>.<step>`. Traces, the tracker and (later) the ledger
//! read them; nothing in the delivery path depends on them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// `accepted`, `routed`, `unroutable`, `attempt`, `delivered`, `dead`, `replayed`.
    pub step: String,
    pub service: String,
    pub msg_id: String,
    pub sender: String,
    #[serde(default)]
    pub case: Option<String>,
    #[serde(default)]
    pub msg_type: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
    pub trace_id: String,
    pub span_id: String,
    /// Step-specific details (rule, recipients, attempt, status, error…).
    #[serde(default)]
    pub detail: Value,
}

impl Event {
    pub fn subject(&self) -> String {
        crate::subjects::event(&self.sender, &self.msg_id, &self.step)
    }
}

/// Publishes an event and waits for the stream to store it.
pub async fn publish(js: &async_nats::jetstream::Context, ev: &Event) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(ev)?;
    js.publish(ev.subject(), payload.into()).await?.await?;
    Ok(())
}

/// Publishes an event once: a repeat with the same `dedup` key inside the
/// stream's duplicate window is dropped (a redelivered message re-records
/// its step without doubling it).
pub async fn publish_once(js: &async_nats::jetstream::Context, ev: &Event, dedup: &str) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(ev)?;
    let mut h = async_nats::HeaderMap::new();
    crate::headers::Put::put(&mut h, crate::headers::NATS_MSG_ID, dedup);
    js.publish_with_headers(ev.subject(), h, payload.into()).await?.await?;
    Ok(())
}
