//! The console's JSON: overview, the live stream, traces, dead letters and
//! replay, health per organisation, monthly statistics, search.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use xj_bus::dead;
use xj_bus::events::{Event, Step};

use crate::auth::Operator;
use crate::error::{ConsoleError, Result};
use crate::mask;
use crate::state::ConsoleState;

/// What the page needs first: who is signed in, the hub's time, the
/// organisations and the newest messages.
pub async fn overview(op: Operator, State(state): State<ConsoleState>) -> Json<Value> {
    let orgs: Vec<Value> =
        state.settings.org.iter().map(|o| json!({ "id": o.id, "name": o.name, "kind": o.kind })).collect();
    let mut recent = serde_json::to_value(state.feed.recent(200)).unwrap_or_default();
    mask::personal(&mut recent);
    Json(json!({
        "operator": op.name,
        "now": state.clock.now(),
        "clock_mode": format!("{:?}", state.clock.mode()).to_lowercase(),
        "orgs": orgs,
        "recent": recent,
    }))
}

/// Server-sent events: one `step` event per step any service records; a
/// `resync` event when this page fell behind and should reload its list.
pub async fn live(
    _op: Operator,
    State(state): State<ConsoleState>,
) -> Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>> {
    metrics::gauge!("xj_console_live_streams").increment(1.0);
    let rx = state.feed.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(data) => Some((Ok(SseEvent::default().event("step").data(data)), rx)),
            Err(RecvError::Lagged(_)) => Some((Ok(SseEvent::default().event("resync").data("{}")), rx)),
            Err(RecvError::Closed) => None,
        }
    })
    .take_until(state.shutdown.clone().cancelled_owned())
    .chain(futures::stream::once(async {
        metrics::gauge!("xj_console_live_streams").decrement(1.0);
        Ok(SseEvent::default().event("bye").data("{}"))
    }));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Every step of the messages with id `id` (xj_bus::events::story).
pub async fn read_events(state: &ConsoleState, id: &str) -> Result<Vec<Event>> {
    xj_bus::events::story(&state.bus.js, id).await.map_err(ConsoleError::bus)
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// A message's path: each hop with its time from the first, the routing
/// decision, and every delivery attempt.
pub async fn trace(_op: Operator, State(state): State<ConsoleState>, Path(id): Path<String>) -> Result<Json<Value>> {
    if !valid_id(&id) {
        return Err(ConsoleError::NotFound(format!("no message {id:?}")));
    }
    let mut events = read_events(&state, &id).await?;
    if events.is_empty() {
        return Err(ConsoleError::NotFound(format!("no message {id:?}")));
    }
    events.sort_by_key(|e| e.at);
    let first = events[0].at;
    let hops: Vec<Value> = events
        .iter()
        .map(|e| {
            let r = e.step.routing();
            let d = e.step.delivery();
            let recipients = e.step.recipients();
            let error = match &e.step {
                Step::CaseRecordFull(f) => Some(&f.error),
                _ => d.and_then(|d| d.error.as_ref()),
            };
            let replayed_by = match &e.step {
                Step::Replayed(p) => Some(&p.replayed_by),
                _ => d.and_then(|d| d.replayed_by.as_ref()),
            };
            json!({
                "step": e.step.name(), "service": e.service, "sender": e.sender, "at": e.at,
                "offset_ms": (e.at - first).num_milliseconds(),
                "span_id": e.span_id, "trace_id": e.trace_id,
                "recipient": e.step.recipient(), "recipients": (!recipients.is_empty()).then_some(recipients),
                "attempt": d.map(|d| d.attempt), "status": d.and_then(|d| d.status), "ms": d.and_then(|d| d.ms),
                "error": error, "retry_in_ms": d.and_then(|d| d.retry_in_ms),
                "rule": r.map(|r| &r.rule), "rule_version": r.map(|r| &r.rule_version), "reasons": r.map(|r| &r.reasons),
                "replayed_by": replayed_by, "crime": r.and_then(|r| r.crime.as_ref()),
                "alert": r.and_then(|r| r.alert.as_ref()),
            })
        })
        .collect();
    let routing = events.iter().find_map(|e| e.step.routing().map(|r| (e.step.name(), r))).map(|(step, r)| {
        json!({
            "step": step, "rule": r.rule, "rule_version": r.rule_version,
            "recipients": r.recipients, "reasons": r.reasons,
            "consulted": r.consulted, "crime": r.crime,
        })
    });
    let attempts: Vec<&Value> =
        hops.iter().filter(|h| matches!(h["step"].as_str(), Some("attempt" | "delivered" | "dead"))).collect();
    let mut out = json!({
        "id": id,
        "sender": events[0].sender,
        "case": events.iter().find_map(|e| e.case.clone().filter(|c| !c.is_empty())),
        "type": events.iter().find_map(|e| e.msg_type.map(|t| t.as_str())),
        "trace_id": events[0].trace_id,
        "total_ms": (events[events.len() - 1].at - first).num_milliseconds(),
        "routing": routing,
        "attempts": attempts,
        "hops": hops,
    });
    mask::personal(&mut out);
    Ok(Json(out))
}

pub async fn dead(_op: Operator, State(state): State<ConsoleState>) -> Result<Json<Value>> {
    let mut items = dead::list(&state.bus.js, 500).await.map_err(ConsoleError::bus)?;
    for it in &mut items {
        if let Some(org) = it["org"].as_str() {
            it["org_name"] = state.org_name(org).into();
        }
    }
    let mut out = json!({ "dead_letters": items });
    mask::personal(&mut out);
    Ok(Json(out))
}

/// Re-delivers a dead letter; the signed-in operator is recorded as the one
/// who replayed it.
pub async fn replay(op: Operator, State(state): State<ConsoleState>, Path(seq): Path<String>) -> Result<Json<Value>> {
    let Ok(seq) = seq.parse::<u64>() else {
        return Err(ConsoleError::NotFound(format!("no dead letter with sequence {:?}", xj_edge::clip(&seq))));
    };
    match dead::replay(&state.bus.js, seq, &op.name).await {
        Ok(r) => {
            tracing::info!(seq, id = %r.id, org = %r.org, by = %op.name, "dead letter replayed from the console");
            Ok(Json(json!(r)))
        }
        Err(e @ dead::DeadError::NotFound(_)) => Err(ConsoleError::NotFound(e.to_string())),
        Err(e) => Err(ConsoleError::bus(e)),
    }
}

/// Delivery health per organisation: deliveries, failed attempts, dead
/// letters (since the console started reading, a day back) with latency
/// percentiles, and the dead letters waiting now.
pub async fn health(_op: Operator, State(state): State<ConsoleState>) -> Result<Json<Value>> {
    let feed = state.feed.health();
    let waiting = dead::list(&state.bus.js, 5000).await.map_err(ConsoleError::bus)?;
    let mut orgs = Vec::new();
    for o in &state.settings.org {
        let h = feed.get(&o.id).cloned().unwrap_or_default();
        let dead_now = waiting.iter().filter(|d| d["org"] == o.id.as_str()).count();
        let tried = h.delivered + h.failed_attempts + h.dead;
        let failure_rate = if tried == 0 { 0.0 } else { (h.failed_attempts + h.dead) as f64 / tried as f64 };
        let health = if dead_now > 0 || failure_rate > 0.5 {
            "failing"
        } else if failure_rate > 0.0 {
            "degraded"
        } else {
            "ok"
        };
        orgs.push(json!({
            "id": o.id, "name": o.name, "kind": o.kind,
            "channel": o.deliver.channel(), "format": o.format,
            "sent": h.sent, "delivered": h.delivered, "failed_attempts": h.failed_attempts, "dead": h.dead,
            "replayed": h.replayed, "dead_now": dead_now, "failure_rate": failure_rate,
            "p50_ms": h.percentile(0.5), "p95_ms": h.percentile(0.95),
            "last_failure": h.last_failure, "last_failure_at": h.last_failure_at,
            "last_delivered_at": h.last_delivered_at, "health": health,
        }));
    }
    let mut out = json!({ "orgs": orgs });
    mask::personal(&mut out);
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct MonthQuery {
    month: Option<String>,
}

/// A month's statistics (default: this month on the hub's clock, China
/// time) and the months that have any.
pub async fn stats(
    _op: Operator,
    State(state): State<ConsoleState>,
    Query(q): Query<MonthQuery>,
) -> Result<Json<Value>> {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    let month = match q.month {
        Some(m) if chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok() => m,
        Some(m) => return Err(ConsoleError::Invalid(format!("{m:?} is not a month (YYYY-MM)"))),
        None => state.clock.now().with_timezone(&china).format("%Y-%m").to_string(),
    };
    let table = xj_bus::stats::month(&state.bus.stats, &month).await.map_err(ConsoleError::bus)?;
    let mut months = std::collections::BTreeSet::new();
    if let Ok(mut keys) = state.bus.stats.keys().await {
        while let Some(Ok(k)) = keys.next().await {
            if let Some((m, _)) = k.split_once('.') {
                months.insert(m.to_string());
            }
        }
    }
    months.insert(month.clone());
    let names: serde_json::Map<String, Value> =
        table.keys().map(|k| (k.clone(), Value::String(state.org_name(k)))).collect();
    Ok(Json(json!({
        "month": month, "months": months, "fields": xj_bus::stats::FIELDS, "orgs": table, "names": names,
    })))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: String,
}

/// By message id, case id, party name or credit code.
pub async fn search(
    _op: Operator,
    State(state): State<ConsoleState>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>> {
    let q = q.q.trim().to_string();
    let mut messages = Vec::new();
    let mut cases = Vec::new();
    if valid_id(&q) {
        let events = read_events(&state, &q).await?;
        let mut seen = std::collections::BTreeSet::new();
        for e in &events {
            if seen.insert(e.sender.clone()) {
                messages.push(json!({
                    "id": e.msg_id, "sender": e.sender, "case": e.case,
                    "type": events.iter().find(|x| x.sender == e.sender).and_then(|x| x.msg_type),
                    "at": e.at,
                }));
            }
        }
        if q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && let Ok(Some(raw)) = state.bus.cases.get(&q).await
            && let Ok(rec) = serde_json::from_slice::<xj_bus::records::CaseRecord>(&raw)
        {
            cases.push(
                json!({ "case": rec.case, "status": rec.status, "parties": rec.parties, "opened_at": rec.opened_at }),
            );
        }
    }
    let parties: Vec<Value> = if q.chars().count() >= 2 {
        state
            .index
            .search(&q, 50)
            .into_iter()
            .map(|e| {
                let name = if e.natural { mask::name(&e.name) } else { e.name.clone() };
                json!({ "name": name, "uscc": e.uscc, "natural": e.natural, "id": e.id, "sender": e.sender,
                        "case": e.case, "type": e.msg_type, "sent_at": e.sent_at })
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut out = json!({ "q": q, "messages": messages, "cases": cases, "parties": parties });
    mask::personal(&mut out);
    Ok(Json(out))
}
