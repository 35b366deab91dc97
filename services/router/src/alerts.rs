//! Supervision alerts the router raises (CONTRACT §2 `supervision_alert`,
//! sender `"hub"`): delivered like any message, on the case they concern.

use async_nats::HeaderMap;
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use xj_bus::records::RouteEntry;
use xj_bus::{Bus, TraceParent, events, headers as h, subjects};
use xj_model::Envelope;

pub struct Alert<'a> {
    pub kind: &'static str,
    pub about: &'a Envelope,
    pub case: &'a str,
    pub recipients: Vec<String>,
    pub text: String,
    pub rule: Option<(String, String)>,
    pub reasons: Vec<String>,
    pub extra: Value,
}

/// Id of an alert: the same alert about the same message always gets the
/// same id, so a router redelivery cannot raise it twice.
fn alert_id(kind: &str, about: &Envelope) -> String {
    let d = Sha256::digest(format!("{kind}|{}|{}", about.sender, about.id).as_bytes());
    format!("XJA-{}", hex::encode_upper(&d[..8]))
}

pub async fn raise(bus: &Bus, a: Alert<'_>, trace: &TraceParent) -> anyhow::Result<String> {
    let id = alert_id(a.kind, a.about);
    let mut body = json!({
        "kind": a.kind,
        "about": a.about.id,
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
        "reply_to": a.about.id,
        "sent_at": Utc::now().to_rfc3339(),
        "classification": "internal",
        "body": body,
    });
    let payload = bytes::Bytes::from(serde_json::to_vec(&msg)?);
    let (rule, version) = a.rule.clone().unwrap_or_else(|| (format!("alert:{}", a.kind), String::new()));
    for org in &recipients {
        crate::service::remember(
            &bus.routes,
            &subjects::key(org, &id),
            RouteEntry {
                sender: "hub".into(),
                case: a.case.into(),
                msg_type: "supervision_alert".into(),
                matter: None,
                party: None,
            },
        )
        .await?;
        let mut hd = HeaderMap::new();
        hd.insert(h::NATS_MSG_ID, format!("hub:{id}:{org}").as_str());
        hd.insert(h::TRACEPARENT, trace.child().header().as_str());
        hd.insert(h::MESSAGE_ID, id.as_str());
        hd.insert(h::SENDER, "hub");
        hd.insert(h::CASE, a.case);
        hd.insert(h::RECIPIENT, org.as_str());
        hd.insert(h::RULE, rule.as_str());
        hd.insert(h::RULE_VERSION, version.as_str());
        bus.js.publish_with_headers(subjects::routed(org), hd, payload.clone()).await?.await?;
    }
    let ev = events::Event {
        step: "routed".into(),
        service: "router".into(),
        msg_id: id.clone(),
        sender: "hub".into(),
        case: Some(a.case.to_string()),
        msg_type: Some("supervision_alert".into()),
        at: Utc::now(),
        trace_id: trace.trace_id_hex(),
        span_id: trace.child().span_id_hex(),
        detail: json!({
            "recipients": recipients,
            "rule": rule,
            "rule_version": version,
            "alert": a.kind,
            "about": a.about.id,
            "reply_to": a.about.id,
        }),
    };
    events::publish(&bus.js, &ev).await?;
    metrics::counter!("xj_alerts_total", "kind" => a.kind).increment(1);
    tracing::info!(alert = a.kind, %id, about = %a.about.id, "alert raised");
    Ok(id)
}
