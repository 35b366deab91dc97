//! `GET /v1/cases/{case}`: the case as the tracker keeps it, for its
//! parties, operators, and the supervisors of its county (a justice bureau
//! or procuratorate, docs/api.md, "Reading"); anyone else gets the same 404
//! as for no case.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use xj_bus::records::CaseRecord;
use xj_config::Settings;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};
use crate::supervision::{concerns_county, supervised_county};

pub async fn get_case(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(case): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let not_found = || ApiError::NotFound(format!("no case {:?} visible to you", crate::error::clip(&case)));
    if case.is_empty() || case.len() > 40 || !case.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(not_found());
    }
    let raw = state.bus.cases.get(&case).await.map_err(ApiError::unavailable)?;
    let org = match &who {
        Caller::Org(org) => Some(org.as_str()),
        Caller::Operator => None,
    };
    let record: CaseRecord = match raw {
        Some(b) => {
            let mut record: CaseRecord = serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?;
            if let Some(org) = org
                && !record.is_party(org)
                && !known(&state, &case, Some(org)).await?
            {
                // Not a party: only a supervisor of a county the case
                // touches reads it, and not what sensitive messages that
                // do not name it say. Another county's case is as absent
                // as no case at all.
                if !supervises(&state.settings, org, &record) {
                    return Err(not_found());
                }
                withhold_sensitive(&mut record, org);
            }
            record
        }
        // Accepted, not yet folded in: the case exists, its record follows.
        // Which county it is of is in the record, so a supervisor that is
        // no party waits for it like everyone else (404 until then).
        None if known(&state, &case, org).await? => {
            CaseRecord { case: case.clone(), status: "opening".into(), ..Default::default() }
        }
        None => return Err(not_found()),
    };
    Ok(Json(serde_json::to_value(record).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// Whether `org` reads `record` as a supervisor: a justice bureau or
/// procuratorate of a county the case touches (docs/api.md, "Supervisors'
/// read access"). Letters ask the same question of a message's case.
pub(crate) fn supervises(settings: &Settings, org: &str, record: &CaseRecord) -> bool {
    supervised_county(settings, org).is_some_and(|county| concerns_county(settings, record, &county))
}

/// What a supervisor reads instead of the summary of a `sensitive` message
/// that does not name it (docs/api.md, "Reading"): that there is one, not
/// what it says.
pub(crate) fn withheld() -> Value {
    json!({ "withheld": "sensitive" })
}

/// Replaces the summary of every `sensitive` message that `org` neither
/// sent nor received. A record written before summaries carried the
/// classification says nothing of it: such a message is not taken for
/// sensitive, as the hub cannot tell.
pub(crate) fn withhold_sensitive(record: &mut CaseRecord, org: &str) {
    for m in &mut record.messages {
        let sensitive = m.summary.get("classification").and_then(Value::as_str) == Some("sensitive");
        let names_it = m.sender == org || m.recipients.iter().any(|r| r == org);
        if sensitive && !names_it {
            m.summary = withheld();
        }
    }
}

/// What the gateway and router recorded before answering and delivering
/// (xj_bus::parties): whether `org` is party to `case` (for an operator,
/// whether the case exists), while the tracker, which writes the record,
/// has not caught up.
async fn known(state: &GatewayState, case: &str, org: Option<&str>) -> Result<bool, ApiError> {
    let parties = &state.bus.parties;
    match org {
        Some(org) => xj_bus::parties::is_party(parties, case, org).await,
        None => xj_bus::parties::is_open(parties, case).await,
    }
    .map_err(ApiError::unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> CaseRecord {
        serde_json::from_value(json!({
            "case": "XJ-1", "status": "referred", "opened_at": "", "updated_at": "",
            "parties": ["qh-market", "qh-town-dg", "qh-justice"],
            "messages": [
                { "id": "S-1", "type": "clue_referral", "sender": "qh-market", "recipients": ["qh-town-dg"], "at": "",
                  "summary": { "matter": "FOOD-STALL", "classification": "sensitive" } },
                { "id": "S-2", "type": "info_share", "sender": "qh-market", "recipients": ["qh-justice"], "at": "",
                  "summary": { "kind": "penalty_decision", "classification": "sensitive" } },
                { "id": "I-1", "type": "referral_reply", "sender": "qh-town-dg", "recipients": ["qh-market"], "at": "",
                  "summary": { "decision": "accepted", "classification": "internal" } },
                { "id": "OLD", "type": "clue_referral", "sender": "qh-market", "recipients": ["qh-town-dg"], "at": "",
                  "summary": { "matter": "FOOD-STALL" } }
            ]
        }))
        .expect("a case record")
    }

    fn summaries(r: &CaseRecord) -> Vec<Value> {
        r.messages.iter().map(|m| m.summary.clone()).collect()
    }

    #[test]
    fn a_supervisor_reads_no_sensitive_summary_that_does_not_name_it() {
        let mut r = record();
        withhold_sensitive(&mut r, "qh-procuratorate");
        let s = summaries(&r);
        assert_eq!(s[0], withheld());
        assert_eq!(s[1], withheld());
        assert_eq!(s[2]["decision"], "accepted");
        assert_eq!(s[3]["matter"], "FOOD-STALL", "a record without classifications is not taken for sensitive");
        // The message is still listed: who sent what, when, is not withheld.
        assert_eq!(r.messages[0].id, "S-1");
        assert_eq!(r.messages[0].recipients, ["qh-town-dg"]);
    }

    #[test]
    fn a_sensitive_message_that_names_the_supervisor_stays_whole() {
        let mut r = record();
        withhold_sensitive(&mut r, "qh-justice");
        let s = summaries(&r);
        assert_eq!(s[0], withheld());
        assert_eq!(s[1]["kind"], "penalty_decision", "sent to the justice bureau");
        let mut r = record();
        withhold_sensitive(&mut r, "qh-market");
        assert!(summaries(&r).iter().all(|s| *s != withheld()), "the sender of both");
    }
}
