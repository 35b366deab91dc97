//! A case's timeline with its clocks and who must act next, and the board
//! of everything overdue across the hub, sorted by lateness.

use axum::Json;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use xj_bus::records::{CaseRecord, Clock};

use crate::auth::Operator;
use crate::error::{ConsoleError, Result};
use crate::mask;
use crate::state::ConsoleState;

/// Overdue: ended unanswered (the tracker fired it), or past its end and
/// not yet fired.
fn is_overdue(c: &Clock, now: DateTime<Utc>) -> bool {
    c.status == "overdue" || (c.is_open() && c.due < now)
}

/// `3天4小时` / `5h 12m`-style lateness for both languages is done in the
/// page; here minutes.
fn minutes(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_minutes()
}

fn clock_json(state: &ConsoleState, c: &Clock, now: DateTime<Utc>) -> Value {
    json!({
        "id": c.id, "name": c.name, "basis": c.basis, "about": c.about, "about_sender": c.about_sender,
        "owner": c.owner, "owner_name": state.org_name(&c.owner),
        "supervisors": c.supervisors,
        "supervisor_names": c.supervisors.iter().map(|s| state.org_name(s)).collect::<Vec<_>>(),
        "unit": c.unit, "amount": c.amount, "started_at": c.started_at, "due": c.due, "status": c.status,
        "closed_at": c.closed_at, "closed_by": c.closed_by, "extended": c.extended,
        "overdue": is_overdue(c, now), "late_minutes": minutes(c.due, now).max(0),
        "left_minutes": minutes(now, c.due).max(0),
    })
}

async fn record(state: &ConsoleState, case: &str) -> Result<Option<CaseRecord>> {
    if case.is_empty() || !case.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Ok(None);
    }
    match state.bus.cases.get(case).await.map_err(ConsoleError::bus)? {
        Some(raw) => Ok(serde_json::from_slice(&raw).ok()),
        None => Ok(None),
    }
}

/// The case's messages and clocks on one timeline, its open clocks, and
/// who must act next (the owners of open or overdue clocks, soonest first).
pub async fn case(_op: Operator, State(state): State<ConsoleState>, Path(case): Path<String>) -> Result<Json<Value>> {
    let rec = record(&state, &case).await?.ok_or_else(|| ConsoleError::NotFound(format!("no case {case:?}")))?;
    let now = state.clock.now();
    let mut timeline: Vec<(String, Value)> = Vec::new();
    for m in &rec.messages {
        timeline.push((
            m.at.clone(),
            json!({
                "kind": "message", "at": m.at, "id": m.id, "type": m.msg_type, "sender": m.sender,
                "sender_name": state.org_name(&m.sender), "recipients": m.recipients,
                "recipient_names": m.recipients.iter().map(|r| state.org_name(r)).collect::<Vec<_>>(),
                "rule": m.rule, "rule_version": m.rule_version, "reply_to": m.reply_to, "delivered": m.delivered,
                "decision": m.summary.get("decision"), "alert": m.summary.get("kind"),
            }),
        ));
    }
    for c in &rec.clocks {
        timeline.push((
            c.started_at.to_rfc3339(),
            json!({ "kind": "clock_started", "at": c.started_at, "clock": clock_json(&state, c, now) }),
        ));
        if let Some(at) = c.closed_at {
            timeline.push((
                at.to_rfc3339(),
                json!({ "kind": "clock_closed", "at": at, "clock": clock_json(&state, c, now) }),
            ));
        } else if is_overdue(c, now) {
            timeline.push((
                c.due.to_rfc3339(),
                json!({ "kind": "clock_overdue", "at": c.due, "clock": clock_json(&state, c, now) }),
            ));
        }
    }
    // Times from different writers differ in format; compare as instants.
    timeline.sort_by_key(|(at, _)| DateTime::parse_from_rfc3339(at).map(|d| d.with_timezone(&Utc)).unwrap_or(now));
    let mut open: Vec<&Clock> = rec.clocks.iter().filter(|c| c.is_open() || c.status == "overdue").collect();
    open.sort_by_key(|c| c.due);
    let next: Vec<Value> = open
        .iter()
        .map(|c| json!({ "org": c.owner, "name": state.org_name(&c.owner), "clock": c.name, "due": c.due, "overdue": is_overdue(c, now) }))
        .collect();
    let mut out = json!({
        "case": rec.case, "status": rec.status, "opened_at": rec.opened_at, "updated_at": rec.updated_at,
        "parties": rec.parties.iter().map(|p| json!({ "id": p, "name": state.org_name(p) })).collect::<Vec<_>>(),
        "crime_met": rec.crime_met, "handed_off": rec.handed_off, "now": now,
        "open_clocks": open.iter().map(|c| clock_json(&state, c, now)).collect::<Vec<_>>(),
        "next": next,
        "timeline": timeline.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    mask::personal(&mut out);
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct OverdueQuery {
    org: Option<String>,
}

/// Every overdue clock on every case, most late first; `org` keeps those
/// the organisation owes or supervises.
pub async fn overdue_board(state: &ConsoleState, org: Option<&str>) -> Result<Vec<Value>> {
    let now = state.clock.now();
    let mut items: Vec<(i64, Value)> = Vec::new();
    let mut keys = state.bus.cases.keys().await.map_err(ConsoleError::bus)?;
    while let Some(k) = keys.next().await {
        let Ok(k) = k else { continue };
        let Ok(Some(raw)) = state.bus.cases.get(&k).await else { continue };
        let Ok(rec) = serde_json::from_slice::<CaseRecord>(&raw) else { continue };
        for c in rec.clocks.iter().filter(|c| is_overdue(c, now)) {
            if org.is_some_and(|o| c.owner != o && !c.supervisors.iter().any(|s| s == o)) {
                continue;
            }
            let mut v = clock_json(state, c, now);
            v["case"] = rec.case.clone().into();
            v["case_status"] = rec.status.clone().into();
            items.push((minutes(c.due, now), v));
        }
    }
    items.sort_by_key(|(late, _)| std::cmp::Reverse(*late));
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

pub async fn overdue(
    _op: Operator,
    State(state): State<ConsoleState>,
    Query(q): Query<OverdueQuery>,
) -> Result<Json<Value>> {
    let org = q.org.as_deref().filter(|o| !o.is_empty());
    let items = overdue_board(&state, org).await?;
    let mut out = json!({ "now": state.clock.now(), "org": org, "items": items });
    mask::personal(&mut out);
    Ok(Json(out))
}
