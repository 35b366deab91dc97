//! The router's consumer loop: durable, explicit acks, bounded concurrency.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use futures::StreamExt;
use tracing::Instrument;
use xj_bus::records::RouteEntry;
use xj_bus::{Bus, Shutdown, TraceParent, events, headers as h, subjects};
use xj_config::Settings;
use xj_model::Envelope;

use crate::decide::decide;

const CONSUMER: &str = "router";

/// Runs until `shutdown`; messages in flight are finished and acked first.
pub async fn run(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    let stream = bus.js.get_stream(subjects::STREAM_ACCEPTED).await.context("stream XJ_ACCEPTED")?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 4096,
                ..Default::default()
            },
        )
        .await
        .context("router consumer")?;
    let messages = consumer.messages().await.context("router pull")?;
    tracing::info!(version = %settings.ruleset_version(), "router running");
    messages
        .take_until(shutdown.cancelled_owned())
        .for_each_concurrent(128, |m| {
            let (settings, bus) = (settings.clone(), bus.clone());
            async move {
                match m {
                    Ok(m) => handle(&settings, &bus, m).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "router pull failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        })
        .await;
    tracing::info!("router stopped");
    Ok(())
}

async fn handle(settings: &Settings, bus: &Bus, m: Message) {
    let env: Envelope = match serde_json::from_slice(&m.payload) {
        Ok(e) => e,
        Err(e) => {
            // Only the gateway writes here, after validation: this is a bug,
            // and retrying cannot fix it. Keep it visible, stop redelivery.
            tracing::error!(error = %e, subject = %m.subject, "undecodable accepted message");
            let _ = m.ack_with(AckKind::Term).await;
            return;
        }
    };
    let case = env.case.clone().unwrap_or_default();
    let span = tracing::info_span!("route", msg_id = %env.id, case = %case, sender = %env.sender);
    async {
        match route(settings, bus, &m, &env, &case).await {
            Ok(()) => {
                if let Err(e) = m.double_ack().await {
                    tracing::warn!(error = %e, "ack failed; the message will be routed again (idempotent)");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "routing failed; will retry");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
    .instrument(span)
    .await
}

async fn route(settings: &Settings, bus: &Bus, m: &Message, env: &Envelope, case: &str) -> anyhow::Result<()> {
    let hd = m.headers.as_ref();
    let reply_sender = h::get(hd, h::REPLY_SENDER);
    // The decision's time, not the time its copies were stored: the courier
    // may act on a copy before this event is written (traces sort by time).
    let at = Utc::now();
    let decision = decide(settings, env, reply_sender);
    let trace = TraceParent::from_headers(hd);
    metrics::counter!("xj_routing_decisions_total", "rule" => rule_family(&decision.rule)).increment(1);
    if decision.targets.is_empty() {
        // No coordination office is configured at all (config validation
        // forbids this); keep the message rather than drop it.
        anyhow::bail!("no recipient and no coordination office for {}", env.id);
    }
    for t in &decision.targets {
        remember(
            &bus.routes,
            &subjects::key(&t.org, &env.id),
            RouteEntry { sender: env.sender.clone(), case: case.to_string(), msg_type: env.kind.as_str().into() },
        )
        .await?;
        let mut out = HeaderMap::new();
        out.insert(h::NATS_MSG_ID, format!("{}:{}:{}", env.sender, env.id, t.org).as_str());
        out.insert(h::TRACEPARENT, trace.header().as_str());
        out.insert(h::MESSAGE_ID, env.id.as_str());
        out.insert(h::SENDER, env.sender.as_str());
        out.insert(h::CASE, case);
        out.insert(h::RECIPIENT, t.org.as_str());
        out.insert(h::RULE, decision.rule.as_str());
        out.insert(h::RULE_VERSION, decision.version.as_str());
        if let Some(at) = h::get(hd, h::ACCEPTED_AT) {
            out.insert(h::ACCEPTED_AT, at);
        }
        bus.js.publish_with_headers(subjects::routed(&t.org), out, m.payload.clone()).await?.await?;
    }
    let ev = events::Event {
        step: if decision.question { "unplaced".into() } else { "routed".into() },
        service: "router".into(),
        msg_id: env.id.clone(),
        sender: env.sender.clone(),
        case: Some(case.to_string()),
        msg_type: Some(env.kind.as_str().into()),
        at,
        trace_id: trace.trace_id_hex(),
        span_id: trace.span_id_hex(),
        detail: serde_json::json!({
            "recipients": decision.recipients(),
            "targets": decision.targets,
            "rule": decision.rule,
            "rule_version": decision.version,
            "reasons": decision.reasons,
            "reply_to": env.reply_to,
        }),
    };
    events::publish(&bus.js, &ev).await?;
    tracing::info!(rule = %decision.rule, recipients = ?decision.recipients(), "routed");
    Ok(())
}

fn rule_family(rule: &str) -> String {
    rule.split([':', '/']).next().unwrap_or(rule).to_string()
}

/// Adds `entry` to the list under `key` (compare-and-set; idempotent).
async fn remember(routes: &kv::Store, key: &str, entry: RouteEntry) -> anyhow::Result<()> {
    let first = serde_json::to_vec(&vec![&entry])?;
    match routes.create(key, first.into()).await {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    for _ in 0..10 {
        let Some(current) = routes.entry(key).await? else {
            continue;
        };
        let mut list: Vec<RouteEntry> = serde_json::from_slice(&current.value).unwrap_or_default();
        if list.contains(&entry) {
            return Ok(());
        }
        list.push(entry.clone());
        if routes.update(key, serde_json::to_vec(&list)?.into(), current.revision).await.is_ok() {
            return Ok(());
        }
    }
    anyhow::bail!("could not record route {key} after 10 attempts")
}
