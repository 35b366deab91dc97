//! `GET /v1/messages/{id}/trace`: every step the hub took with a message,
//! read back by subject: its acceptance from `XJ_ACCEPTED`, the rest from
//! the events stream.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde_json::{Value, json};
use xj_bus::events::{Event, Routed, Step};

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

/// Every step of the messages with id `id` (xj_bus::events::story).
pub async fn read_events(state: &GatewayState, id: &str) -> Result<Vec<Event>, ApiError> {
    xj_bus::events::story(&state.bus.js, id).await.map_err(ApiError::unavailable)
}

pub async fn get_trace(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let not_found = || ApiError::NotFound(format!("no message {:?} visible to you", crate::error::clip(&id)));
    // A message id as the envelope schema has it; nothing else names one.
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(not_found());
    }
    let events = read_events(&state, &id).await?;
    let mut visible: Vec<Event> = match &who {
        Caller::Operator => events,
        Caller::Org(org) => {
            let others: Vec<&str> = state.settings.org.iter().map(|o| o.id.as_str()).filter(|o| o != org).collect();
            visible_to(org, &events, &others)
        }
    };
    if visible.is_empty() {
        return Err(not_found());
    }
    // The stream holds events in the order they were written, which is not
    // always the order things happened (the courier can report an attempt
    // before the router has written its decision); each event's time is.
    visible.sort_by_key(|e| e.at);
    let first = &visible[0];
    let mut trace = json!({
        "id": id,
        "sender": first.sender,
        "case": visible.iter().find_map(|e| e.case.clone()),
        "type": first.msg_type,
        "trace_id": first.trace_id,
        "hops": visible,
    });
    // Personal ID numbers never reach a screen, nor the credentials or
    // control characters a receiver's error may carry (docs/security.md).
    crate::redact::value(&mut trace);
    Ok(Json(trace))
}

/// What `org` may see of the events of one message id (each sender's
/// message with that id is a message of its own): all of a message it
/// sent; of a message it received, the acceptance, the routing to it (with
/// itself as the only recipient) and its own delivery attempts — never
/// whom else the message reached, nor how their deliveries went. `others`
/// are the ids of every other organisation.
fn visible_to(org: &str, events: &[Event], others: &[&str]) -> Vec<Event> {
    let about = |e: &Event| e.step.recipients().contains(&org);
    let mut senders: Vec<&str> = events.iter().map(|e| e.sender.as_str()).collect();
    senders.sort();
    senders.dedup();
    let mut out = Vec::new();
    for sender in senders {
        let of_message = events.iter().filter(|e| e.sender == sender);
        if sender == org {
            out.extend(of_message.cloned());
            continue;
        }
        if !events.iter().any(|e| e.sender == sender && about(e)) {
            continue;
        }
        for e in of_message {
            match &e.step {
                Step::Accepted(_) => out.push(e.clone()),
                Step::Routed(_) | Step::Unplaced(_) if about(e) => out.push(routing_for(org, e, others)),
                step if step.recipient() == Some(org) => out.push(e.clone()),
                _ => {}
            }
        }
    }
    out
}

/// A routing hop as one of its recipients sees it: the rule that sent the
/// message to it, itself as the recipient, and the reasons that name no
/// other organisation. The rules consulted, crime finding, filings and the
/// body's summary concern the others.
fn routing_for(org: &str, e: &Event, others: &[&str]) -> Event {
    let Some(d) = e.step.routing() else { return e.clone() };
    let seen = Routed {
        recipients: vec![org.to_string()],
        targets: d.targets.iter().filter(|t| t.org == org).cloned().collect(),
        reasons: d.reasons.iter().filter(|r| !others.iter().any(|o| mentions(r, o))).cloned().collect(),
        rule: d.rule.clone(),
        rule_version: d.rule_version.clone(),
        reply_to: d.reply_to.clone(),
        alert: d.alert.clone(),
        about: d.about.clone(),
        rerouted_by: d.rerouted_by.clone(),
        ..Default::default()
    };
    let step = if matches!(e.step, Step::Unplaced(_)) { Step::Unplaced(seen) } else { Step::Routed(seen) };
    Event { step, ..e.clone() }
}

/// Whether `text` names the organisation `id` (as a whole id: `qh-town`
/// is not named by `qh-town-dg`).
fn mentions(text: &str, id: &str) -> bool {
    let part_of_id = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    text.match_indices(id)
        .any(|(at, _)| !part_of_id(text[..at].chars().next_back()) && !part_of_id(text[at + id.len()..].chars().next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(step: &str, sender: &str, detail: Value) -> Event {
        serde_json::from_value(json!({
            "step": step, "service": "test", "msg_id": "M-1", "sender": sender, "case": "XJ-1",
            "msg_type": "info_share", "at": chrono::Utc::now(), "trace_id": "", "span_id": "", "detail": detail,
        }))
        .expect("a valid event")
    }

    #[test]
    fn a_recipient_sees_its_own_hops_only() {
        let events = vec![
            ev("accepted", "qh-a", json!({})),
            ev(
                "routed",
                "qh-a",
                json!({ "recipients": ["qh-b", "qh-c"], "targets": [{"org": "qh-b", "role": "to"}, {"org": "qh-c", "role": "to"}], "rule": "r",
                        "reasons": ["narrowed to qh-b, qh-c", "devolved to the town qh-b"], "consulted": [1] }),
            ),
            ev("attempt", "qh-a", json!({ "recipient": "qh-c", "recipients": ["qh-c"], "error": "qh-c is down" })),
            ev("delivered", "qh-a", json!({ "recipient": "qh-b", "recipients": ["qh-b"] })),
            ev("delivered", "qh-a", json!({ "recipient": "qh-c", "recipients": ["qh-c"] })),
        ];
        let b = visible_to("qh-b", &events, &["qh-a", "qh-c", "qh-d"]);
        let steps: Vec<&str> = b.iter().map(|e| e.step.name()).collect();
        assert_eq!(steps, ["accepted", "routed", "delivered"]);
        let text = serde_json::to_string(&b).unwrap_or_default();
        assert!(!text.contains("qh-c"), "{text}");
        let routed = b[1].step.routing().expect("the routing hop");
        assert_eq!(routed.rule, "r");
        assert_eq!(routed.reasons, ["devolved to the town qh-b"]);
        assert!(routed.consulted.is_empty(), "the rules consulted concern the others");
        assert_eq!(visible_to("qh-a", &events, &["qh-b", "qh-c", "qh-d"]).len(), 5, "the sender sees every hop");
        assert!(visible_to("qh-d", &events, &["qh-a", "qh-b", "qh-c"]).is_empty(), "an outsider sees nothing");
    }

    #[test]
    fn an_id_is_named_only_whole() {
        assert!(mentions("narrowed to qh-c, qh-d", "qh-c"));
        assert!(!mentions("narrowed to qh-cc", "qh-c"));
        assert!(!mentions("filed with qh-b-x", "qh-b"));
    }
}
