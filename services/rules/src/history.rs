//! What the hub remembers across bureaus: each party's administrative
//! penalties (from every `penalty_decision` it carried) and who first opened
//! a case on a party and matter.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One administrative penalty of a party, as the hub saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorPenalty {
    pub msg_id: String,
    pub sender: String,
    pub matter: Option<String>,
    pub decided_on: NaiveDate,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub amount: Option<f64>,
}

/// The organisation that opened a case first on a party and matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Holder {
    pub org: String,
    pub case: String,
    pub since: String,
}

/// Key of a party in the hub's buckets: a digest of its credit code or ID
/// number, so personal ID numbers are never a key anyone can list.
pub fn party_key(party: &Value) -> Option<String> {
    let id = party
        .get("uscc")
        .and_then(Value::as_str)
        .map(|u| format!("uscc:{u}"))
        .or_else(|| party.get("id_no").and_then(Value::as_str).map(|i| format!("id:{i}")))?;
    Some(hex::encode(&Sha256::digest(id.as_bytes())[..16]))
}

/// The date a message's facts refer to: when the violation was found, the
/// case filed or the penalty decided; else the day it was sent.
pub fn reference_date(body: &Value, sent_at: &str) -> NaiveDate {
    for f in ["decided_on", "found_on", "filed_on"] {
        if let Some(d) = body.get(f).and_then(Value::as_str).and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        {
            return d;
        }
    }
    chrono::DateTime::parse_from_rfc3339(sent_at)
        .map(|t| t.date_naive())
        .unwrap_or_else(|_| chrono::Utc::now().date_naive())
}
