//! The dead-letter list (`XJ_DEAD`), shared by the gateway's operator
//! endpoints and the console: read it, and replay an entry — back on
//! `xj.routed.<org>` with fresh attempts, the replay and who asked for it
//! recorded in the trace, the entry removed.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
use chrono::Utc;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::headers::Put;
use crate::otel::{Hop, SpanKind};
use crate::{TraceParent, events, headers as h, subjects};

#[derive(Debug, thiserror::Error)]
pub enum DeadError {
    #[error("no dead letter with sequence {0}")]
    NotFound(u64),
    #[error("the bus is unavailable: {0}")]
    Bus(String),
}

fn bus(e: impl std::fmt::Display) -> DeadError {
    DeadError::Bus(e.to_string())
}

/// Up to `limit` dead letters, oldest first: sequence, organisation, message
/// id, sender, case, reason, attempts, when, and the payload with resident
/// ID numbers masked.
pub async fn list(js: &async_nats::jetstream::Context, limit: usize) -> Result<Vec<Value>, DeadError> {
    let stream = js.get_stream(subjects::STREAM_DEAD).await.map_err(bus)?;
    let mut consumer = stream
        .create_consumer(OrderedConfig { deliver_policy: DeliverPolicy::All, ..Default::default() })
        .await
        .map_err(bus)?;
    let pending = consumer.info().await.map_err(bus)?.num_pending as usize;
    let mut items = Vec::new();
    if pending == 0 {
        return Ok(items);
    }
    let mut msgs = consumer.messages().await.map_err(bus)?;
    while items.len() < pending.min(limit) {
        let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await else {
            break;
        };
        let hd = m.headers.as_ref();
        items.push(json!({
            "seq": m.info().map(|i| i.stream_sequence).unwrap_or(0),
            "at": h::get(hd, h::DEAD_AT),
            "org": m.subject.as_str().trim_start_matches("xj.dead."),
            "id": h::get(hd, h::MESSAGE_ID),
            "sender": h::get(hd, h::SENDER),
            "case": h::get(hd, h::CASE),
            "rule": h::get(hd, h::RULE),
            "reason": h::get(hd, h::DEAD_REASON),
            "attempts": h::get(hd, h::ATTEMPT).and_then(|a| a.parse::<u64>().ok()),
            "payload": masked(&m.payload),
        }));
    }
    Ok(items)
}

/// What a replay did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Replayed {
    pub replayed: u64,
    pub id: String,
    pub org: String,
    pub replayed_by: String,
}

/// Re-delivers dead letter `seq`: it goes back on `xj.routed.<org>` with a
/// fresh attempt count, the replay (and `by`) is recorded as a `replayed`
/// step, and the dead entry is removed.
pub async fn replay(js: &async_nats::jetstream::Context, seq: u64, by: &str) -> Result<Replayed, DeadError> {
    // Before the copy goes out, so the replay precedes its delivery in the trace.
    let at = Utc::now();
    let stream = js.get_stream(subjects::STREAM_DEAD).await.map_err(bus)?;
    let msg = stream.get_raw_message(seq).await.map_err(|_| DeadError::NotFound(seq))?;
    let org = msg.subject.as_str().trim_start_matches("xj.dead.").to_string();
    let get = |name: &str| msg.headers.get(name).map(|v| v.as_str().to_string());
    let (id, sender) = (get(h::MESSAGE_ID).unwrap_or_default(), get(h::SENDER).unwrap_or_default());
    let received = get(h::TRACEPARENT).and_then(|t| TraceParent::parse(&t));
    let trace = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("gateway", "replay", received, trace).kind(SpanKind::Producer);
    hop.attr("xj.message_id", id.clone())
        .attr("xj.sender", sender.clone())
        .attr("xj.recipient", org.clone())
        .attr("xj.replayed_by", by.to_string())
        .attr_opt("xj.case", get(h::CASE))
        .attr_opt("xj.rule", get(h::RULE))
        .attr_opt("xj.rule_version", get(h::RULE_VERSION));
    let mut out = HeaderMap::new();
    for name in [h::MESSAGE_ID, h::SENDER, h::CASE, h::RECIPIENT, h::RULE, h::RULE_VERSION, h::ACCEPTED_AT] {
        if let Some(v) = get(name) {
            out.put(name, v.as_str());
        }
    }
    // The re-delivery continues the trace from the replay. Its identity
    // names the recipient and the dead letter: a copy of its own, so the
    // routed stream and a NATS-native recipient's outbox store it even
    // inside the duplicate window of the copy that died.
    out.put(h::TRACEPARENT, trace.header().as_str());
    out.put(h::NATS_MSG_ID, format!("{sender}:{id}:{org}:replay:{seq}").as_str());
    out.put(h::REPLAYED_BY, by);
    let published = async { js.publish_with_headers(subjects::routed(&org), out, msg.payload.clone()).await?.await };
    if let Err(e) = published.await {
        hop.fail(e.to_string());
        return Err(bus(e));
    }
    let ev = events::Event {
        step: events::Step::Replayed(events::Replayed {
            recipient: org.clone(),
            recipients: vec![org.clone()],
            replayed_by: by.to_string(),
            dead_seq: seq,
        }),
        service: "gateway".into(),
        msg_id: id.clone(),
        sender: sender.clone(),
        case: get(h::CASE),
        msg_type: None,
        at,
        trace_id: trace.trace_id_hex(),
        span_id: trace.span_id_hex(),
    };
    if let Err(e) = events::publish(js, &ev).await {
        tracing::warn!(error = %e, "replay event not recorded");
    }
    stream.delete_message(seq).await.map_err(bus)?;
    hop.finish();
    metrics::counter!("xj_dead_letter_replays_total", "recipient" => org.clone()).increment(1);
    Ok(Replayed { replayed: seq, id, org, replayed_by: by.to_string() })
}

/// A stored message for an operator's screen: resident ID numbers masked.
fn masked(payload: &[u8]) -> Value {
    let mut v = serde_json::from_slice::<Value>(payload).unwrap_or(Value::Null);
    xj_model::mask_id_numbers_in(&mut v);
    v
}
