//! The tracker: keeps one record per case in the `xj_cases` bucket, fed by
//! the router's `routed` events: who the parties are and every message on
//! the case. `GET /v1/cases/{case}` reads it. (Clocks and the case state
//! machine build on this record.)

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use xj_bus::events::Event;
use xj_bus::records::{CaseMessage, CaseRecord};
use xj_bus::{Bus, Shutdown, subjects};
use xj_config::Settings;

const CONSUMER: &str = "tracker";

pub async fn run(_settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    let stream = bus.js.get_stream(subjects::STREAM_EVENTS).await.context("stream XJ_EVENTS")?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                filter_subjects: vec!["xj.evt.*.*.routed".into(), "xj.evt.*.*.unplaced".into()],
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 1024,
                ..Default::default()
            },
        )
        .await
        .context("tracker consumer")?;
    let messages = consumer.messages().await.context("tracker pull")?;
    tracing::info!("tracker running");
    // One at a time keeps each case's message list in event order; the
    // compare-and-set below keeps several tracker instances honest.
    messages
        .take_until(shutdown.cancelled_owned())
        .for_each(|m| {
            let bus = bus.clone();
            async move {
                match m {
                    Ok(m) => handle(&bus, m).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "tracker pull failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await;
    tracing::info!("tracker stopped");
    Ok(())
}

async fn handle(bus: &Bus, m: Message) {
    let ev: Event = match serde_json::from_slice(&m.payload) {
        Ok(ev) => ev,
        Err(e) => {
            tracing::error!(error = %e, "undecodable event");
            let _ = m.ack_with(AckKind::Term).await;
            return;
        }
    };
    match apply(&bus.cases, &ev).await {
        Ok(()) => {
            let _ = m.ack().await;
        }
        Err(e) => {
            tracing::warn!(error = %e, msg_id = %ev.msg_id, "case update failed; will retry");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}

/// Folds one routing event into its case (idempotent: a message already on
/// the case is not added twice).
pub fn fold(record: &mut CaseRecord, ev: &Event) {
    let recipients: Vec<String> = ev.detail["recipients"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let at = ev.at.to_rfc3339();
    if record.opened_at.is_empty() {
        record.opened_at = at.clone();
        record.status = "open".into();
    }
    record.updated_at = at.clone();
    for p in std::iter::once(&ev.sender).chain(recipients.iter()) {
        if !record.is_party(p) {
            record.parties.push(p.clone());
        }
    }
    if record.messages.iter().any(|m| m.id == ev.msg_id && m.sender == ev.sender) {
        return;
    }
    record.messages.push(CaseMessage {
        id: ev.msg_id.clone(),
        msg_type: ev.msg_type.clone().unwrap_or_default(),
        sender: ev.sender.clone(),
        recipients,
        at,
        rule: ev.detail["rule"].as_str().map(str::to_owned),
        rule_version: ev.detail["rule_version"].as_str().map(str::to_owned),
        reply_to: ev.detail["reply_to"].as_str().map(str::to_owned),
        seq: ev.detail["seq"].as_u64(),
    });
}

async fn apply(cases: &kv::Store, ev: &Event) -> anyhow::Result<()> {
    let Some(case) = ev.case.clone().filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    for _ in 0..20 {
        match cases.entry(&case).await? {
            Some(entry) if !entry.value.is_empty() => {
                let mut record: CaseRecord = serde_json::from_slice(&entry.value)?;
                fold(&mut record, ev);
                if cases.update(&case, serde_json::to_vec(&record)?.into(), entry.revision).await.is_ok() {
                    return Ok(());
                }
            }
            _ => {
                let mut record = CaseRecord { case: case.clone(), ..Default::default() };
                fold(&mut record, ev);
                match cases.create(&case, serde_json::to_vec(&record)?.into()).await {
                    Ok(_) => return Ok(()),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    anyhow::bail!("case {case} kept changing under us")
}
