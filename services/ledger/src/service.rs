//! The ledger service: one writer appending what the hub's streams record.

use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::{self, AckKind, Message};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::{Bus, Shutdown, TraceParent, headers as h, subjects};
use xj_config::Settings;

use crate::LedgerError;
use crate::chain::{Entry, GENESIS, SourceRef};
use crate::store::{STREAM_LEDGER, SUBJECT_LEDGER, declare};

const CONSUMER: &str = "ledger";

/// The end of the chain as this writer knows it.
struct Tail {
    n: u64,
    hash: String,
}

async fn tail(js: &jetstream::Context) -> Result<Tail, LedgerError> {
    let mut s = js.get_stream(STREAM_LEDGER).await.map_err(LedgerError::bus)?;
    let last = s.info().await.map_err(LedgerError::bus)?.state.last_sequence;
    if last == 0 {
        return Ok(Tail { n: 0, hash: GENESIS.into() });
    }
    let m = s.get_raw_message(last).await.map_err(LedgerError::bus)?;
    let e: Entry = serde_json::from_slice(&m.payload)
        .map_err(|e| LedgerError::Bus(format!("the last ledger entry ({last}) cannot be read: {e}")))?;
    Ok(Tail { n: last, hash: e.hash })
}

/// Runs until `shutdown`: consumes `XJ_EVENTS` and `XJ_ACCEPTED` with
/// durable consumers named `ledger` and appends one entry per message.
pub async fn run(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> Result<(), LedgerError> {
    declare(&bus.js, settings.nats.replicas).await?;
    let mut sources = Vec::new();
    for name in [subjects::STREAM_ACCEPTED, subjects::STREAM_EVENTS] {
        let durable =
            xj_bus::consume::Durable::new(name, CONSUMER).ack_wait(Duration::from_millis(settings.nats.ack_wait_ms));
        sources.push(durable.messages(&bus.js).await.map_err(LedgerError::bus)?);
    }
    let messages = futures::stream::select_all(sources);
    let mut tail = tail(&bus.js).await?;
    tracing::info!(entries = tail.n, "ledger running");
    let mut messages = std::pin::pin!(messages.take_until(shutdown.cancelled_owned()));
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "ledger pull failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let hop = hop_of(&m);
        match append(&bus.js, &mut tail, &m).await {
            Ok(()) => {
                hop.finish();
                let _ = m.double_ack().await;
            }
            Err(e) => {
                hop.fail(e.to_string());
                tracing::warn!(error = %e, "ledger append failed; will retry");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                if let Ok(t) = self::tail(&bus.js).await {
                    tail = t;
                }
            }
        }
    }
    tracing::info!(entries = tail.n, "ledger stopped");
    Ok(())
}

/// The ledger's span for one source message: a child of the hop that wrote
/// it (the `traceparent` of an accepted message, the ids of a step event).
fn hop_of(m: &Message) -> Hop {
    if !xj_bus::otel::enabled() {
        return Hop::start("ledger", "ledger.append", None, TraceParent::new_root());
    }
    let event: Option<Value> =
        m.subject.as_str().starts_with("xj.evt.").then(|| serde_json::from_slice(&m.payload).ok()).flatten();
    let received = match &event {
        Some(ev) => TraceParent::from_hex(ev["trace_id"].as_str().unwrap_or(""), ev["span_id"].as_str().unwrap_or("")),
        None => TraceParent::received(m.headers.as_ref()),
    };
    let own = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("ledger", "ledger.append", received, own).kind(SpanKind::Consumer);
    hop.attr("xj.source", m.subject.to_string());
    if let Some(ev) = &event {
        hop.attr_opt("xj.message_id", ev["msg_id"].as_str().map(str::to_owned))
            .attr_opt("xj.case", ev["case"].as_str().map(str::to_owned))
            .attr_opt("xj.sender", ev["sender"].as_str().map(str::to_owned))
            .attr_opt("xj.step", ev["step"].as_str().map(str::to_owned));
    } else {
        hop.attr_opt("xj.message_id", h::get(m.headers.as_ref(), h::NATS_MSG_ID).map(str::to_owned));
    }
    hop
}

/// What an entry records about a source message: kind, case, message id,
/// sender, record.
type Described = (String, Option<String>, Option<String>, Option<String>, Value);

fn describe(m: &Message) -> Result<Described, LedgerError> {
    let info = m.info().map_err(LedgerError::bus)?;
    if info.stream == subjects::STREAM_ACCEPTED {
        let env: Value = serde_json::from_slice(&m.payload).unwrap_or(Value::Null);
        let s = |k: &str| env.get(k).and_then(Value::as_str).map(str::to_owned);
        let record = json!({
            "sha256": hex::encode(Sha256::digest(&m.payload)),
            "size": m.payload.len(),
            "type": env.get("type"),
            "classification": env.get("classification"),
            "recipient": env.get("recipient"),
            "reply_to": env.get("reply_to"),
            "sent_at": env.get("sent_at"),
            "accepted_at": h::get(m.headers.as_ref(), h::ACCEPTED_AT),
        });
        return Ok(("message".into(), s("case"), s("id"), s("sender"), record));
    }
    let mut ev: Value = serde_json::from_slice(&m.payload).unwrap_or_else(|_| json!({ "undecodable": true }));
    xj_model::mask_id_numbers_in(&mut ev);
    let s = |k: &str| ev.get(k).and_then(Value::as_str).map(str::to_owned);
    let step = s("step").unwrap_or_else(|| m.subject.as_str().rsplit('.').next().unwrap_or("event").to_string());
    Ok((format!("event:{step}"), s("case"), s("msg_id"), s("sender"), ev))
}

/// Appends one entry after `tail`; on a race with another writer reads the
/// new tail and tries again.
async fn append(js: &jetstream::Context, tail: &mut Tail, m: &Message) -> Result<(), LedgerError> {
    let info = m.info().map_err(LedgerError::bus)?;
    let source =
        SourceRef { stream: info.stream.to_string(), seq: info.stream_sequence, subject: m.subject.to_string() };
    let (kind, case, msg_id, sender, record) = describe(m)?;
    for _ in 0..50 {
        let entry = Entry {
            n: tail.n + 1,
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            prev: tail.hash.clone(),
            kind: kind.clone(),
            source: source.clone(),
            case: case.clone(),
            msg_id: msg_id.clone(),
            sender: sender.clone(),
            record: record.clone(),
            hash: String::new(),
        }
        .seal();
        let payload = serde_json::to_vec(&entry).map_err(|e| LedgerError::Bus(e.to_string()))?;
        let mut hd = HeaderMap::new();
        hd.insert(h::NATS_MSG_ID, format!("ledger:{}:{}", source.stream, source.seq).as_str());
        hd.insert("Nats-Expected-Last-Sequence", tail.n.to_string().as_str());
        let published = async { js.publish_with_headers(SUBJECT_LEDGER, hd, payload.into()).await?.await }.await;
        match published {
            Ok(ack) if ack.duplicate => {
                // Another writer (or this one before a crash) recorded it.
                *tail = self::tail(js).await?;
                return Ok(());
            }
            Ok(ack) => {
                *tail = Tail { n: ack.sequence, hash: entry.hash };
                metrics::counter!("xj_ledger_entries_total").increment(1);
                return Ok(());
            }
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                *tail = self::tail(js).await?;
            }
            Err(e) => return Err(LedgerError::bus(e)),
        }
    }
    Err(LedgerError::Bus("the ledger kept moving under this writer".into()))
}
