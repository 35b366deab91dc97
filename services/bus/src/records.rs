//! Values kept in the hub's KV buckets, shared by the services that write
//! and read them.

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
}

impl CaseRecord {
    pub fn is_party(&self, org: &str) -> bool {
        self.parties.iter().any(|p| p == org)
    }
}
