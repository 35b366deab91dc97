//! `GET /v1/cases/{case}`: the case as the tracker keeps it, for its
//! parties, operators, and the supervisors of its county (a justice bureau
//! or procuratorate, docs/api.md, "Reading"); anyone else gets the same 404
//! as for no case.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};
use xj_bus::records::CaseRecord;
use xj_config::Settings;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};
use crate::supervision::{Top, concerns_county, scan, supervised_county};

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

/// Cases one answer lists at most (`limit`), and by default.
const LIST_MAX: usize = 1000;
const LIST_DEFAULT: usize = 100;

#[derive(Deserialize)]
pub struct ListQuery {
    role: Option<String>,
    limit: Option<String>,
}

/// How the caller reads a case: as a party, as a supervisor of its county,
/// or as the operator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Party,
    Supervisor,
    Operator,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Party => "party",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
        }
    }
}

/// `GET /v1/cases[?role=party|supervisor][&limit=]`: the cases the token
/// reads (those `GET /v1/cases/{case}` answers for it), most recently
/// updated first. Read from the tracker's records, so a case accepted a
/// moment ago may not be listed yet (`GET /v1/cases/{case}` answers it).
pub async fn list_cases(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let mut problems = Vec::new();
    let wanted = match q.role.as_deref() {
        None => None,
        Some("party") => Some(Role::Party),
        Some("supervisor") => Some(Role::Supervisor),
        Some(r) => {
            problems.push(xj_model::Problem::new(
                "/role",
                format!("{:?} is not a role: one of party, supervisor", crate::error::clip(r)),
            ));
            None
        }
    };
    let limit = match q.limit.as_deref() {
        None => LIST_DEFAULT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=LIST_MAX).contains(&n) => n,
            _ => {
                problems.push(xj_model::Problem::new(
                    "/limit",
                    format!("{:?} is not a number from 1 to {LIST_MAX}", crate::error::clip(l)),
                ));
                LIST_DEFAULT
            }
        },
    };
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let org = match &who {
        Caller::Org(org) => Some(org.as_str()),
        Caller::Operator => None,
    };
    let mut top: Top<(std::cmp::Reverse<String>, String)> = Top::new(limit);
    scan(&state, |mut record| {
        let role = match org {
            None => Role::Operator,
            Some(org) if record.is_party(org) => Role::Party,
            Some(org) if supervises(&state.settings, org, &record) => {
                withhold_sensitive(&mut record, org);
                Role::Supervisor
            }
            Some(_) => return,
        };
        if wanted.is_some_and(|w| w != role) {
            return;
        }
        // RFC 3339 in UTC throughout, so the text sorts as the time does.
        let key = (std::cmp::Reverse(record.updated_at.clone()), record.case.clone());
        top.push(key, listed(&record, role, org));
    })
    .await?;
    let (cases, truncated) = top.finish();
    Ok(Json(json!({ "cases": cases, "truncated": truncated })))
}

/// A case as `GET /v1/cases` lists it: who is in it, its messages without
/// their summaries, the clocks still open, and those whose move is the
/// caller's (`act`).
fn listed(record: &CaseRecord, role: Role, org: Option<&str>) -> Value {
    let messages: Vec<Value> = record
        .messages
        .iter()
        .map(|m| {
            json!({ "id": m.id, "type": m.msg_type, "sender": m.sender, "recipients": m.recipients,
                    "at": m.at, "reply_to": m.reply_to })
        })
        .collect();
    // Overdue is still owed: the workspace shows it first, not never.
    let open: Vec<&xj_bus::records::Clock> =
        record.clocks.iter().filter(|c| c.is_open() || c.status == "overdue").collect();
    let clock = |c: &&xj_bus::records::Clock| {
        json!({ "id": c.id, "name": c.name, "owner": c.owner, "due": c.due, "status": c.status,
                "about": c.about, "basis": c.basis })
    };
    let act: Vec<Value> = open.iter().filter(|c| org.is_some_and(|o| c.owner == o)).map(clock).collect();
    json!({
        "case": record.case, "status": record.status, "role": role.name(),
        "opened_at": record.opened_at, "updated_at": record.updated_at, "parties": record.parties,
        "crime_met": record.crime_met, "handed_off": record.handed_off,
        "messages": messages, "clocks": open.iter().map(clock).collect::<Vec<_>>(), "act": act,
    })
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
