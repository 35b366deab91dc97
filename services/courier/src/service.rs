//! The courier's consumer loop. Retries use JetStream itself: a failed
//! attempt is nak'ed with the backoff delay, so a courier crash loses
//! nothing and the attempt count is the stream's delivery count.

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use tracing::Instrument;
use xj_bus::consume::{self, Durable};
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::signing::HubKey;
use xj_bus::{Bus, Shutdown, TraceParent, events, headers as h, subjects};
use xj_config::Settings;

use crate::deliver::{Outcome, Parcel, attempt, backoff, native_form};

const CONSUMER: &str = "courier";

/// Copies that may wait for their retry at once (with a backoff of up to
/// `[courier] backoff_max_ms`), across every receiver.
const WAITING: usize = 100_000;

pub async fn run(settings: Arc<Settings>, bus: Bus, key: HubKey, shutdown: Shutdown) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = &settings.courier;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(c.timeout_ms))
        .pool_max_idle_per_host(c.concurrency)
        .build()
        .context("HTTP client")?;
    let messages = Durable::new(subjects::STREAM_ROUTED, CONSUMER)
        // Longer than one webhook request, so no copy is handed to a second
        // courier while the first still waits for the answer.
        .ack_wait(Duration::from_millis(settings.nats.ack_wait_ms.max(c.timeout_ms + 2_000)))
        // Copies waiting for a retry (a receiver down) stay unacknowledged
        // on the server until then: room for many, so one receiver that is
        // down does not hold up the deliveries to every other.
        .max_ack_pending((c.concurrency * 4).max(WAITING) as i64)
        .messages(&bus.js)
        .await?;
    tracing::info!("courier running");
    consume::run(messages, c.concurrency, shutdown, "courier", |m| {
        let (settings, bus, key, http) = (settings.clone(), bus.clone(), key.clone(), http.clone());
        async move { handle(&settings, &bus, &key, &http, m).await }
    })
    .await;
    tracing::info!("courier stopped");
    Ok(())
}

async fn handle(settings: &Settings, bus: &Bus, key: &HubKey, http: &reqwest::Client, m: Message) {
    let hd = m.headers.as_ref();
    let recipient = h::get(hd, h::RECIPIENT).unwrap_or_default().to_string();
    let msg_id = h::get(hd, h::MESSAGE_ID).unwrap_or_default().to_string();
    let sender = h::get(hd, h::SENDER).unwrap_or_default().to_string();
    let case = h::get(hd, h::CASE).unwrap_or_default().to_string();
    let attempt_no = m.info().map(|i| i.delivered.max(1) as u64).unwrap_or(1);
    let span =
        tracing::info_span!("deliver", msg_id = %msg_id, case = %case, recipient = %recipient, attempt = attempt_no);
    async {
        let Some(org) = settings.org(&recipient) else {
            // The org was removed from the configuration after routing: an
            // operator must decide, so it goes to the dead letters at once.
            dead(bus, &m, &recipient, &format!("organisation {recipient:?} is no longer configured"), attempt_no).await;
            return;
        };
        let received = TraceParent::received(hd);
        let trace = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
        let mut hop = Hop::start("courier", "deliver", received, trace).kind(SpanKind::Client);
        hop.attr("xj.message_id", msg_id.clone())
            .attr("xj.case", case.clone())
            .attr("xj.sender", sender.clone())
            .attr("xj.recipient", recipient.clone())
            .attr("xj.attempt", attempt_no as i64)
            .attr_opt("xj.rule", h::get(hd, h::RULE).map(str::to_owned))
            .attr_opt("xj.rule_version", h::get(hd, h::RULE_VERSION).map(str::to_owned))
            .attr_opt("xj.replayed_by", h::get(hd, h::REPLAYED_BY).map(str::to_owned))
            .attr("xj.channel", if org.deliver.webhook.is_some() { "webhook" } else { "nats" });
        // The translation into the receiver's format is a hop of its own.
        let adapter = (org.format != xj_mapping::CANONICAL).then(|| {
            let mut a = Hop::start("courier", "translate.outbound", Some(trace), trace.child());
            a.attr("xj.format", org.format.clone()).attr("xj.message_id", msg_id.clone()).attr("xj.recipient", recipient.clone());
            a
        });
        // An organisation with a native format gets the message translated;
        // one its format cannot express goes to the dead letters at once
        // with the reason, never half-empty.
        let native = native_form(settings, org, &m.payload);
        match (adapter, &native) {
            (Some(a), Ok(_)) => a.finish(),
            (Some(a), Err(reason)) => a.fail(reason.clone()),
            (None, _) => {}
        }
        let (outcome, untranslatable) = match native {
            Ok((body, content_type)) => {
                let parcel = Parcel { org, msg_id: &msg_id, sender: &sender, case: &case, attempt: attempt_no, trace, body, content_type };
                (attempt(http, bus, key, &parcel).await, false)
            }
            Err(reason) => (Outcome::Failed { reason, status: None, elapsed: Duration::ZERO }, true),
        };
        let c = &settings.courier;
        let (step, detail, ack) = match &outcome {
            Outcome::Delivered { status, elapsed } => {
                metrics::histogram!("xj_delivery_seconds", "outcome" => "delivered").record(elapsed.as_secs_f64());
                ("delivered", serde_json::json!({ "status": status, "ms": elapsed.as_millis() as u64 }), AckKind::Ack)
            }
            Outcome::Failed { reason, status, elapsed } => {
                metrics::histogram!("xj_delivery_seconds", "outcome" => "failed").record(elapsed.as_secs_f64());
                if untranslatable || attempt_no >= c.max_attempts as u64 {
                    dead(bus, &m, &recipient, reason, attempt_no).await;
                    ("dead", serde_json::json!({ "status": status, "error": reason, "ms": elapsed.as_millis() as u64 }), AckKind::Ack)
                } else {
                    let delay = backoff(c.backoff_initial_ms, c.backoff_max_ms, attempt_no);
                    (
                        "attempt",
                        serde_json::json!({ "status": status, "error": reason, "retry_in_ms": delay.as_millis() as u64, "ms": elapsed.as_millis() as u64 }),
                        AckKind::Nak(Some(delay)),
                    )
                }
            }
        };
        metrics::counter!("xj_delivery_attempts_total", "outcome" => step, "recipient" => recipient.clone()).increment(1);
        hop.attr("xj.step", step);
        if let Some(s) = detail["status"].as_u64() {
            hop.attr("http.response.status_code", s as i64);
        }
        match &outcome {
            Outcome::Delivered { .. } => hop.finish(),
            Outcome::Failed { reason, .. } => hop.fail(reason.clone()),
        }
        let mut detail = detail;
        detail["recipient"] = recipient.clone().into();
        detail["recipients"] = serde_json::json!([recipient]);
        detail["attempt"] = attempt_no.into();
        detail["replayed_by"] = h::get(hd, h::REPLAYED_BY).into();
        let ev = events::Event {
            step: step.into(),
            service: "courier".into(),
            msg_id: msg_id.clone(),
            sender: sender.clone(),
            case: Some(case.clone()),
            msg_type: None,
            at: Utc::now(),
            trace_id: trace.trace_id_hex(),
            span_id: trace.span_id_hex(),
            detail,
        };
        if let Err(e) = events::publish(&bus.js, &ev).await {
            tracing::warn!(error = %e, "delivery event not recorded");
        }
        let acked = match ack {
            AckKind::Ack => m.double_ack().await,
            other => m.ack_with(other).await,
        };
        if let Err(e) = acked {
            tracing::warn!(error = %e, "ack failed; the delivery may repeat (receivers dedupe)");
        }
        tracing::debug!(step, "delivery step");
    }
    .instrument(span)
    .await
}

/// Parks a message on `xj.dead.<org>`; retried until stored, so it is
/// never acked away unrecorded.
async fn dead(bus: &Bus, m: &Message, org: &str, reason: &str, attempts: u64) {
    let mut out = HeaderMap::new();
    if let Some(src) = m.headers.as_ref() {
        for (name, values) in src.iter() {
            let name: &str = name.as_ref();
            if name == h::NATS_MSG_ID {
                continue;
            }
            for v in values {
                out.append(name, v.as_str());
            }
        }
    }
    let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
    out.insert(h::NATS_MSG_ID, format!("dead:{org}:{seq}").as_str());
    out.insert(h::DEAD_REASON, reason);
    out.insert(h::DEAD_AT, Utc::now().to_rfc3339().as_str());
    out.insert(h::ATTEMPT, attempts.to_string().as_str());
    loop {
        let res =
            async { bus.js.publish_with_headers(subjects::dead(org), out.clone(), m.payload.clone()).await?.await }
                .await;
        match res {
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "cannot store dead letter; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    metrics::counter!("xj_dead_letters_total").increment(1);
    tracing::warn!(org, reason, attempts, "delivery dead-lettered");
}
