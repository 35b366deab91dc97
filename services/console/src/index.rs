//! Search by party: an index of every party named in an accepted message
//! (business name, unified social credit code, whether a natural person)
//! with the message, sender and case. The console builds it in memory from
//! `XJ_ACCEPTED` when it starts (the stream keeps 90 days) and follows the
//! stream from then on; the case records carry no party data, and a second
//! writer of the tracker's bucket would only be another thing to keep in
//! step. A county's 90 days is tens of thousands of entries.

use std::sync::RwLock;

use async_nats::jetstream::consumer::DeliverPolicy;
use serde::Serialize;
use serde_json::Value;
use xj_bus::{Bus, Shutdown, subjects};

#[derive(Debug, Clone, Serialize)]
pub struct PartyEntry {
    pub name: String,
    pub uscc: Option<String>,
    /// A natural person: the name is shown masked.
    pub natural: bool,
    pub id: String,
    pub sender: String,
    pub case: Option<String>,
    #[serde(rename = "type")]
    pub msg_type: String,
    pub sent_at: Option<String>,
    #[serde(skip)]
    folded: String,
}

#[derive(Default)]
pub struct PartyIndex {
    entries: RwLock<Vec<PartyEntry>>,
}

impl PartyIndex {
    pub fn add(&self, env: &Value) {
        let Some(party) = env.pointer("/body/party").filter(|p| p.is_object()) else { return };
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let Some(name) = s(party, "name") else { return };
        let entry = PartyEntry {
            folded: name.to_lowercase(),
            name,
            uscc: s(party, "uscc").map(|u| u.to_uppercase()),
            natural: party.get("id_no").is_some(),
            id: s(env, "id").unwrap_or_default(),
            sender: s(env, "sender").unwrap_or_default(),
            case: s(env, "case"),
            msg_type: s(env, "type").unwrap_or_default(),
            sent_at: s(env, "sent_at"),
        };
        self.entries.write().unwrap_or_else(|p| p.into_inner()).push(entry);
    }

    /// Entries whose party name contains `q`, or whose credit code starts
    /// with it; newest first, at most `limit`.
    pub fn search(&self, q: &str, limit: usize) -> Vec<PartyEntry> {
        let folded = q.trim().to_lowercase();
        let code = q.trim().to_uppercase();
        if folded.is_empty() {
            return Vec::new();
        }
        let g = self.entries.read().unwrap_or_else(|p| p.into_inner());
        g.iter()
            .rev()
            .filter(|e| e.folded.contains(&folded) || e.uscc.as_deref().is_some_and(|u| u.starts_with(&code)))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Reads `XJ_ACCEPTED` from the start, then follows it, until `shutdown`.
pub async fn run(index: std::sync::Arc<PartyIndex>, bus: Bus, shutdown: Shutdown) {
    xj_bus::consume::follow(
        &bus.js,
        subjects::STREAM_ACCEPTED,
        DeliverPolicy::All,
        shutdown,
        "console party index",
        |m| {
            if let Ok(env) = serde_json::from_slice::<Value>(&m.payload) {
                index.add(&env);
            }
        },
    )
    .await;
}
