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
}

impl CaseRecord {
    pub fn is_party(&self, org: &str) -> bool {
        self.parties.iter().any(|p| p == org)
    }
}
