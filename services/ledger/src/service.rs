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

/// Entries in flight at once: one writer pipelines its appends (each names
/// the entry it follows, see [`append_batch`]) instead of waiting for every
/// acknowledgement in turn.
const BATCH: usize = 256;

/// Runs until `shutdown`: consumes `XJ_EVENTS` and `XJ_ACCEPTED` with
/// durable consumers named `ledger` and appends one entry per message.
pub async fn run(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> Result<(), LedgerError> {
    declare(&bus.js, settings.nats.replicas).await?;
    let mut sources = Vec::new();
    for name in [subjects::STREAM_ACCEPTED, subjects::STREAM_EVENTS] {
        let durable = xj_bus::consume::Durable::new(name, CONSUMER)
            .ack_wait(Duration::from_millis(settings.nats.ack_wait_ms))
            .max_ack_pending(4 * BATCH as i64);
        sources.push(durable.messages(&bus.js).await.map_err(LedgerError::bus)?);
    }
    let messages = futures::stream::select_all(sources);
    let mut tail = tail(&bus.js).await?;
    tracing::info!(entries = tail.n, "ledger running");
    let mut messages = std::pin::pin!(messages.take_until(shutdown.cancelled_owned()));
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(m) = messages.next().await {
        // The first message waits; whatever else has already arrived joins it.
        let mut next = Some(m);
        while let Some(m) = next.take() {
            match m {
                Ok(m) => batch.push(m),
                Err(e) => {
                    tracing::warn!(error = %e, "ledger pull failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            if batch.len() < BATCH {
                next = futures::FutureExt::now_or_never(messages.next()).flatten();
            }
        }
        if batch.is_empty() {
            continue;
        }
        append_batch(&bus.js, &mut tail, std::mem::take(&mut batch)).await;
    }
    tracing::info!(entries = tail.n, "ledger stopped");
    Ok(())
}

/// Appends one entry per message of `batch`, in order, and acknowledges each
/// source once its entry is stored. The first entry names the sequence it
/// follows (`Nats-Expected-Last-Sequence`); each later one also names the
/// message id of the entry before it (`Nats-Expected-Last-Msg-Id`), so an
/// entry is stored only right after its own predecessor: whatever fails
/// (another writer came between, a duplicate was dropped) makes every entry
/// after it fail too, and those are built again from the stored tail.
async fn append_batch(js: &jetstream::Context, tail: &mut Tail, batch: Vec<Message>) {
    let mut rest: std::collections::VecDeque<Message> = batch.into();
    let mut rounds = 0;
    while !rest.is_empty() {
        rounds += 1;
        // Build the entries chained from the tail, and send them all.
        let mut sent = Vec::with_capacity(rest.len());
        let (mut n, mut prev, mut prev_id) = (tail.n, tail.hash.clone(), None::<String>);
        for m in &rest {
            let hop = hop_of(m);
            let built = entry_for(m, n + 1, &prev);
            let (entry, msg_id) = match built {
                Ok(b) => b,
                Err(e) => {
                    sent.push((hop, Err(e)));
                    break;
                }
            };
            let payload = match serde_json::to_vec(&entry) {
                Ok(p) => p,
                Err(e) => {
                    sent.push((hop, Err(LedgerError::Bus(e.to_string()))));
                    break;
                }
            };
            let mut hd = HeaderMap::new();
            hd.insert(h::NATS_MSG_ID, msg_id.as_str());
            hd.insert("Nats-Expected-Last-Sequence", n.to_string().as_str());
            if let Some(p) = &prev_id {
                hd.insert("Nats-Expected-Last-Msg-Id", p.as_str());
            }
            let ack = js.publish_with_headers(SUBJECT_LEDGER, hd, payload.into()).await.map_err(LedgerError::bus);
            (n, prev, prev_id) = (n + 1, entry.hash.clone(), Some(msg_id));
            sent.push((hop, ack.map(|a| (a, entry.hash))));
        }
        // Take the answers in order: stored ones move the tail and are
        // acknowledged at their source; the first refusal ends the round.
        let mut stored = 0;
        let mut broken: Option<LedgerError> = None;
        for (hop, pending) in sent {
            if broken.is_some() {
                // Refused after the break: let the answer arrive, retry next round.
                if let Ok((ack, _)) = pending {
                    let _ = ack.await;
                }
                hop.fail("retried after an earlier entry of its batch");
                continue;
            }
            let outcome = match pending {
                Ok((ack, hash)) => ack.await.map(|a| (a, hash)),
                Err(e) => {
                    broken = Some(e);
                    continue;
                }
            };
            match outcome {
                Ok((ack, hash)) if !ack.duplicate => {
                    *tail = Tail { n: ack.sequence, hash };
                    metrics::counter!("xj_ledger_entries_total").increment(1);
                    hop.finish();
                    stored += 1;
                }
                Ok(_) => {
                    // Another writer (or this one before a crash) recorded
                    // it: done, but what this round built after it is not.
                    hop.finish();
                    stored += 1;
                    broken = Some(LedgerError::Bus("duplicate".into()));
                }
                Err(e) => {
                    if !matches!(e.kind(), PublishErrorKind::WrongLastSequence | PublishErrorKind::WrongLastMessageId) {
                        tracing::warn!(error = %e, "ledger append failed; will retry");
                    }
                    hop.fail(e.to_string());
                    broken = Some(LedgerError::bus(e));
                }
            }
        }
        let done: Vec<Message> = rest.drain(..stored).collect();
        futures::future::join_all(done.iter().map(|m| m.double_ack())).await;
        if let Some(e) = broken {
            match self::tail(js).await {
                Ok(t) => *tail = t,
                Err(e) => tracing::warn!(error = %e, "cannot read the ledger's tail"),
            }
            if stored == 0 && rounds > 50 {
                // Nothing moves: leave the rest to redelivery.
                tracing::warn!(error = %e, left = rest.len(), "ledger append keeps failing; will retry");
                for m in rest.drain(..) {
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            } else if stored == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
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

/// The entry recording `m` at position `n` after `prev`, and its
/// deduplication id.
fn entry_for(m: &Message, n: u64, prev: &str) -> Result<(Entry, String), LedgerError> {
    let info = m.info().map_err(LedgerError::bus)?;
    let source =
        SourceRef { stream: info.stream.to_string(), seq: info.stream_sequence, subject: m.subject.to_string() };
    let (kind, case, msg_id, sender, record) = describe(m)?;
    let dedup = format!("ledger:{}:{}", source.stream, source.seq);
    let entry = Entry {
        n,
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        prev: prev.to_string(),
        kind,
        source,
        case,
        msg_id,
        sender,
        record,
        hash: String::new(),
    }
    .seal();
    Ok((entry, dedup))
}
