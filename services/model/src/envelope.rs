//! The canonical envelope. Field names are fixed by docs/api.md and `schemas/`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    ClueReferral,
    CaseReferral,
    ReferralReply,
    ReferralOutcome,
    CriminalHandoff,
    HandoffReceipt,
    PoliceDecision,
    ReconsiderationRequest,
    ReconsiderationDecision,
    InfoShare,
    AssistanceRequest,
    AssistanceReply,
    JurisdictionDesignation,
    SupervisionAlert,
    /// A procuratorate's or justice bureau's supervision (立案监督, 检察建议,
    /// 督办…) to an organisation, which owes a written reply.
    SupervisionNotice,
    SupervisionReply,
    /// An enforcement organisation's monthly figures to the justice bureau.
    MonthlyReport,
    /// The hub telling a complaint channel (12345) that a complaint was
    /// passed on, and what came of it.
    ComplaintUpdate,
}

impl MessageType {
    pub const ALL: [MessageType; 18] = [
        Self::ClueReferral,
        Self::CaseReferral,
        Self::ReferralReply,
        Self::ReferralOutcome,
        Self::CriminalHandoff,
        Self::HandoffReceipt,
        Self::PoliceDecision,
        Self::ReconsiderationRequest,
        Self::ReconsiderationDecision,
        Self::InfoShare,
        Self::AssistanceRequest,
        Self::AssistanceReply,
        Self::JurisdictionDesignation,
        Self::SupervisionAlert,
        Self::SupervisionNotice,
        Self::SupervisionReply,
        Self::MonthlyReport,
        Self::ComplaintUpdate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClueReferral => "clue_referral",
            Self::CaseReferral => "case_referral",
            Self::ReferralReply => "referral_reply",
            Self::ReferralOutcome => "referral_outcome",
            Self::CriminalHandoff => "criminal_handoff",
            Self::HandoffReceipt => "handoff_receipt",
            Self::PoliceDecision => "police_decision",
            Self::ReconsiderationRequest => "reconsideration_request",
            Self::ReconsiderationDecision => "reconsideration_decision",
            Self::InfoShare => "info_share",
            Self::AssistanceRequest => "assistance_request",
            Self::AssistanceReply => "assistance_reply",
            Self::JurisdictionDesignation => "jurisdiction_designation",
            Self::SupervisionAlert => "supervision_alert",
            Self::SupervisionNotice => "supervision_notice",
            Self::SupervisionReply => "supervision_reply",
            Self::MonthlyReport => "monthly_report",
            Self::ComplaintUpdate => "complaint_update",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Referrals are placed by the matter catalogue; everything else needs an
    /// explicit recipient or a `reply_to`.
    pub fn is_referral(self) -> bool {
        matches!(self, Self::ClueReferral | Self::CaseReferral | Self::CriminalHandoff)
    }
}

impl std::fmt::Display for MessageType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Public,
    Internal,
    Sensitive,
    Secret,
}

/// `recipient`: one org id or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recipients {
    One(String),
    Many(Vec<String>),
}

impl Recipients {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub sender: String,
    #[serde(default)]
    pub recipient: Option<Recipients>,
    #[serde(default)]
    pub case: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    pub sent_at: String,
    pub classification: Classification,
    pub body: Value,
}

impl Envelope {
    pub fn recipients(&self) -> Vec<String> {
        self.recipient.as_ref().map(Recipients::to_vec).unwrap_or_default()
    }

    /// The matter code of a referral-like body, if any.
    pub fn matter(&self) -> Option<&str> {
        self.body.get("matter").and_then(Value::as_str)
    }
}
