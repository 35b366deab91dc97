//! Values kept in the hub's KV buckets, shared by the services that write
//! and read them.

use async_nats::jetstream::kv::{self, CreateErrorKind};
use serde::{Deserialize, Serialize};

/// One entry of `xj_routes` (`<recipient>.<msg>`): a message with this id
/// reached the recipient from `sender` on `case`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteEntry {
    pub sender: String,
    pub case: String,
    #[serde(default)]
    pub msg_type: String,
    /// Matter and party key of a referral, so its reply can record who
    /// opened the case (行政处罚法 art. 25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub party: Option<String>,
    /// Where the message itself is: its sequence in `XJ_ACCEPTED`, so a
    /// transfer can send the original on without waiting for the case
    /// record (which the tracker writes later, from the events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// A case as the tracker keeps it in `xj_cases`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case: String,
    pub status: String,
    pub opened_at: String,
    pub updated_at: String,
    pub parties: Vec<String>,
    pub messages: Vec<CaseMessage>,
    /// Statutory clocks, running and closed.
    #[serde(default)]
    pub clocks: Vec<Clock>,
    /// A criminal threshold was met on this case.
    #[serde(default)]
    pub crime_met: bool,
    /// A criminal hand-off was made on this case.
    #[serde(default)]
    pub handed_off: bool,
}

/// A statutory deadline on a case (docs/clocks.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clock {
    /// `<name>:<message id>`.
    pub id: String,
    pub name: String,
    /// The article that sets the deadline.
    pub basis: String,
    /// The message that started it, and its sender.
    pub about: String,
    pub about_sender: String,
    /// Whose move it is.
    pub owner: String,
    /// Told when it is overdue.
    pub supervisors: Vec<String>,
    /// `hours`, `calendar_days`, `working_days` or `months`.
    pub unit: String,
    pub amount: i64,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub due: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub remind_at: Option<chrono::DateTime<chrono::Utc>>,
    /// `running`, `reminded`, `met`, `late`, `overdue`, `lapsed`,
    /// `escalated`, `cancelled`.
    pub status: String,
    #[serde(default)]
    pub closed_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub closed_by: Option<String>,
    #[serde(default)]
    pub extended: bool,
    /// A step of a jurisdiction dispute: where on its path it is, so the
    /// step's end takes the dispute to the next one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<DisputeAt>,
}

/// The case a county's monthly reports for `month` (YYYY-MM) are kept on:
/// the gateway threads every `monthly_report` there and the tracker keeps
/// the report clocks on it.
pub fn monthly_case(county: &str, month: &str) -> String {
    format!("RPT-{county}-{month}")
}

/// Where a dispute stands: its path (`county` or `town_county`), the
/// step's place on it (from 0) and the two organisations in dispute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeAt {
    pub path: String,
    pub step: usize,
    pub between: [String; 2],
}

impl Clock {
    pub fn is_open(&self) -> bool {
        matches!(self.status.as_str(), "running" | "reminded")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseMessage {
    pub id: String,
    #[serde(rename = "type")]
    pub msg_type: String,
    pub sender: String,
    pub recipients: Vec<String>,
    pub at: String,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub rule_version: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Sequence of the message in `XJ_ACCEPTED`, to fetch it again (a
    /// designation re-routes the original referral).
    #[serde(default)]
    pub seq: Option<u64>,
    /// Body fields the state machine reads (decision, kind, dates…).
    #[serde(default)]
    pub summary: serde_json::Value,
    /// Organisations it was delivered to, and when.
    #[serde(default)]
    pub delivered: Vec<(String, String)>,
    /// Recipients that got a copy for their information (the procuratorate
    /// on a police decision…): no clock starts when a copy reaches them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
}

impl CaseRecord {
    pub fn is_party(&self, org: &str) -> bool {
        self.parties.iter().any(|p| p == org)
    }
}

/// Adds `entry` to the route list under `key` (idempotent).
pub async fn remember_route(routes: &kv::Store, key: &str, entry: RouteEntry) -> anyhow::Result<()> {
    // Most route keys are new: a message reaches a recipient once.
    update_json(routes, key, Likely::New, |list: &mut Vec<RouteEntry>| {
        if list.iter().any(|e| e.sender == entry.sender && e.case == entry.case) {
            return false;
        }
        list.push(entry.clone());
        true
    })
    .await
}

/// Whether a key [`update_json`] changes is more likely new or already there:
/// it saves the round trip that would fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likely {
    New,
    Existing,
}

/// Attempts of [`update_json`] before it gives up (a few seconds of
/// contention on one key).
const ATTEMPTS: u32 = 50;

/// Changes the JSON value under `key` (a missing key starts from
/// `T::default()`) and writes it back only if nobody wrote in between, so
/// instances of a service share a key without losing each other's
/// changes. `change` says whether it changed anything; nothing is written
/// when it did not. The one compare-and-set loop of the hub's JSON records.
pub async fn update_json<T, F>(store: &kv::Store, key: &str, likely: Likely, mut change: F) -> anyhow::Result<()>
where
    T: Serialize + serde::de::DeserializeOwned + Default,
    F: FnMut(&mut T) -> bool,
{
    let mut try_create = likely == Likely::New;
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Lost a race: step aside for a random moment, longer each time,
            // so that many writers of one key all get through rather than
            // colliding in step (24 at once do, in the records test).
            let cap = 1u64 << attempt.min(6);
            tokio::time::sleep(std::time::Duration::from_millis(rand::random::<u64>() % (cap + 1))).await;
        }
        if try_create {
            let mut v = T::default();
            if !change(&mut v) {
                return Ok(());
            }
            match store.create(key, serde_json::to_vec(&v)?.into()).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        match store.entry(key).await? {
            Some(e) if !e.value.is_empty() => {
                let mut v: T = serde_json::from_slice(&e.value)?;
                if !change(&mut v) {
                    return Ok(());
                }
                if store.update(key, serde_json::to_vec(&v)?.into(), e.revision).await.is_ok() {
                    return Ok(());
                }
                try_create = false;
            }
            // Missing or deleted: create it (and if someone else just did,
            // read theirs next time round).
            _ => try_create = true,
        }
    }
    anyhow::bail!("{key} kept changing under us")
}
