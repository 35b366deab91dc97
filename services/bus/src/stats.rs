//! Monthly statistics per organisation (《县行政执法协调监督工作方案》二), kept as counters in
//! the `xj_stats` bucket under `<YYYY-MM>.<org>`.

use std::collections::BTreeMap;

use async_nats::jetstream::kv;

pub const FIELDS: [&str; 18] = [
    "referrals_sent",
    "referrals_received",
    "decisions_on_time",
    "decisions_late",
    "handoffs_sent",
    "handoffs_received",
    "police_decisions",
    "police_filed",
    "police_not_filed",
    "overdue",
    "alerts",
    "penalty_instead_of_transfer",
    "disputes",
    "supervision_sent",
    "supervision_received",
    "supervision_answered",
    "supervision_late",
    "messages",
];

pub type Counters = BTreeMap<String, u64>;

/// Adds to counters (compare-and-set, so instances can share a month).
pub async fn add(store: &kv::Store, month: &str, org: &str, fields: &[&str]) -> anyhow::Result<()> {
    crate::records::update_json(
        store,
        &format!("{month}.{org}"),
        crate::records::Likely::Existing,
        |c: &mut Counters| {
            for f in fields {
                *c.entry((*f).to_string()).or_default() += 1;
            }
            true
        },
    )
    .await
}

/// Every organisation's counters for `month`.
pub async fn month(store: &kv::Store, month: &str) -> anyhow::Result<BTreeMap<String, Counters>> {
    use futures::StreamExt;
    let mut out = BTreeMap::new();
    let mut keys = store.keys().await?;
    while let Some(k) = keys.next().await {
        let k = k?;
        let Some(org) = k.strip_prefix(&format!("{month}.")) else { continue };
        if let Some(v) = store.get(&k).await? {
            out.insert(org.to_string(), serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}

/// The month's table as CSV, one row per organisation, zeros included.
pub fn csv(month: &str, table: &BTreeMap<String, Counters>) -> String {
    let mut s = format!("month,org,{}\n", FIELDS.join(","));
    for (org, c) in table {
        let row: Vec<String> = FIELDS.iter().map(|f| c.get(*f).copied().unwrap_or(0).to_string()).collect();
        s.push_str(&format!("{month},{org},{}\n", row.join(",")));
    }
    s
}

/// An organisation's own monthly report (`monthly_report`) as the
/// consolidated report shows it: kept beside the counters, under
/// `report.<YYYY-MM>.<org>`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reported {
    pub msg_id: String,
    /// When the hub received it.
    pub at: chrono::DateTime<chrono::Utc>,
    pub figures: BTreeMap<String, serde_json::Value>,
}

/// Keeps `org`'s report for `month`; a later report for the same month
/// replaces it (a correction).
pub async fn put_report(store: &kv::Store, month: &str, org: &str, r: &Reported) -> anyhow::Result<()> {
    store.put(format!("report.{month}.{org}"), serde_json::to_vec(r)?.into()).await?;
    Ok(())
}

/// Every organisation's report for `month`.
pub async fn reports(store: &kv::Store, month: &str) -> anyhow::Result<BTreeMap<String, Reported>> {
    use futures::StreamExt;
    let prefix = format!("report.{month}.");
    let mut out = BTreeMap::new();
    let mut keys = store.keys().await?;
    while let Some(k) = keys.next().await {
        let k = k?;
        let Some(org) = k.strip_prefix(&prefix) else { continue };
        if let Some(v) = store.get(&k).await? {
            out.insert(org.to_string(), serde_json::from_slice(&v)?);
        }
    }
    Ok(out)
}
