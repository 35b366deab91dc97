//! Supervision alerts the hub raises (`supervision_alert`, docs/api.md;
//! sender `"hub"`): delivered like any message, on the case they concern.

use crate::headers::Put;
use crate::records::{RouteEntry, remember_route};
use crate::{Bus, TraceParent, events, headers as h, subjects};
use async_nats::HeaderMap;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub struct Alert<'a> {
    pub kind: &'static str,
    /// The message the alert is about: its id and sender.
    pub about: (&'a str, &'a str),
    pub case: &'a str,
    pub recipients: Vec<String>,
    pub text: String,
    pub rule: Option<(String, String)>,
    pub reasons: Vec<String>,
    pub extra: Value,
    /// The hub's time (manual in drills).
    pub at: chrono::DateTime<Utc>,
    /// Distinguishes alerts of one kind about one message (e.g. the clock).
    pub discriminator: String,
}

/// Id of an alert: the same alert about the same message always gets the
/// same id, so a router redelivery cannot raise it twice.
fn alert_id(kind: &str, about: (&str, &str), discriminator: &str) -> String {
    let d = Sha256::digest(format!("{kind}|{}|{}|{discriminator}", about.1, about.0).as_bytes());
    format!("XJA-{}", hex::encode_upper(&d[..8]))
}

impl Alert<'_> {
    fn summary_for_tracker(&self) -> Value {
        json!({ "kind": self.kind, "clock": self.extra.get("clock") })
    }
}

/// Publishes the alert to each recipient (through the courier, like any
/// message) and records it as a routed event on its case.
pub async fn raise(bus: &Bus, a: Alert<'_>, trace: &TraceParent) -> anyhow::Result<String> {
    let id = alert_id(a.kind, a.about, &a.discriminator);
    let mut body = json!({
        "kind": a.kind,
        "about": a.about.0,
        "case": a.case,
        "text": a.text,
    });
    if let Some((rule, version)) = &a.rule {
        body["rule"] = json!({ "id": rule, "version": version });
    }
    if !a.reasons.is_empty() {
        body["reasons"] = json!(a.reasons);
    }
    if let (Value::Object(b), Value::Object(extra)) = (&mut body, &a.extra) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    let mut recipients = a.recipients.clone();
    recipients.sort();
    recipients.dedup();
    let msg = json!({
        "id": id,
        "type": "supervision_alert",
        "sender": "hub",
        "recipient": recipients,
        "case": a.case,
        "reply_to": a.about.0,
        "sent_at": a.at.to_rfc3339(),
        "classification": "internal",
        "body": body,
    });
    let payload = bytes::Bytes::from(serde_json::to_vec(&msg)?);
    let (rule, version) = a.rule.clone().unwrap_or_else(|| (format!("alert:{}", a.kind), String::new()));
    // The alert is a hop of its own, child of whoever raised it; its copies
    // carry its context.
    let own = trace.child();
    let mut hop = crate::otel::Hop::start("hub", "alert", Some(*trace), own);
    hop.attr("xj.message_id", id.clone())
        .attr("xj.case", a.case.to_string())
        .attr("xj.type", "supervision_alert")
        .attr("xj.sender", "hub")
        .attr("xj.alert", a.kind)
        .attr("xj.about", a.about.0.to_string())
        .attr("xj.recipient", recipients.join(","))
        .attr("xj.rule", rule.clone())
        .attr("xj.rule_version", version.clone());
    let ev = events::Event {
        step: events::Step::Routed(events::Routed {
            recipients: recipients.clone(),
            rule: rule.clone(),
            rule_version: version.clone(),
            alert: Some(a.kind.to_string()),
            about: Some(a.about.0.to_string()),
            reply_to: Some(a.about.0.to_string()),
            summary: a.summary_for_tracker(),
            ..Default::default()
        }),
        service: "router".into(),
        msg_id: id.clone(),
        sender: "hub".into(),
        case: Some(a.case.to_string()),
        msg_type: Some(xj_model::MessageType::SupervisionAlert),
        at: a.at,
        trace_id: trace.trace_id_hex(),
        span_id: own.span_id_hex(),
    };
    events::publish_once(&bus.js, &ev, &format!("evt:routed:hub:{id}")).await?;
    for org in &recipients {
        remember_route(
            &bus.routes,
            &subjects::key(org, &id),
            RouteEntry {
                sender: "hub".into(),
                case: a.case.into(),
                msg_type: "supervision_alert".into(),
                matter: None,
                party: None,
                seq: None,
            },
        )
        .await?;
        // The recipient may answer on the case at once (crate::parties).
        crate::parties::mark(&bus.parties, a.case, crate::parties::Role::Received, org).await?;
        let mut hd = HeaderMap::new();
        hd.put(h::NATS_MSG_ID, format!("hub:{id}:{org}").as_str());
        hd.put(h::TRACEPARENT, own.header().as_str());
        hd.put(h::MESSAGE_ID, id.as_str());
        hd.put(h::SENDER, "hub");
        hd.put(h::CASE, a.case);
        hd.put(h::RECIPIENT, org.as_str());
        hd.put(h::RULE, rule.as_str());
        hd.put(h::RULE_VERSION, version.as_str());
        bus.js.publish_with_headers(subjects::routed(org), hd, payload.clone()).await?.await?;
    }
    hop.finish();
    metrics::counter!("xj_alerts_total", "kind" => a.kind).increment(1);
    tracing::info!(alert = a.kind, %id, about = %a.about.0, "alert raised");
    Ok(id)
}
