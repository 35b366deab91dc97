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
    hub_message_id("XJA", kind, about, discriminator)
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
    let (rule, version) = a.rule.clone().unwrap_or_else(|| (format!("alert:{}", a.kind), String::new()));
    send(
        bus,
        HubMessage {
            id: id.clone(),
            msg_type: xj_model::MessageType::SupervisionAlert,
            recipients: a.recipients.clone(),
            case: a.case,
            about: a.about,
            at: a.at,
            body,
            rule,
            version,
            alert: Some(a.kind),
            summary: a.summary_for_tracker(),
        },
        trace,
    )
    .await?;
    metrics::counter!("xj_alerts_total", "kind" => a.kind).increment(1);
    tracing::info!(alert = a.kind, %id, about = %a.about.0, "alert raised");
    Ok(id)
}

/// A message the hub itself writes (sender `"hub"`): an alert, a complaint
/// update.
pub struct HubMessage<'a> {
    /// The same message always gets the same id, so a redelivery of what
    /// caused it cannot send it twice.
    pub id: String,
    pub msg_type: xj_model::MessageType,
    pub recipients: Vec<String>,
    pub case: &'a str,
    /// The message it is about: its id and sender.
    pub about: (&'a str, &'a str),
    pub at: chrono::DateTime<Utc>,
    pub body: Value,
    pub rule: String,
    pub version: String,
    pub alert: Option<&'static str>,
    /// What the tracker's state machine reads of it.
    pub summary: Value,
}

/// Id of a hub message of `kind` about `about`: stable across redeliveries.
pub fn hub_message_id(prefix: &str, kind: &str, about: (&str, &str), discriminator: &str) -> String {
    let d = Sha256::digest(format!("{kind}|{}|{}|{discriminator}", about.1, about.0).as_bytes());
    format!("{prefix}-{}", hex::encode_upper(&d[..8]))
}

/// Publishes a hub message to each recipient (through the courier, like
/// any message) and records it as a routed event on its case.
pub async fn send(bus: &Bus, m: HubMessage<'_>, trace: &TraceParent) -> anyhow::Result<()> {
    let mut recipients = m.recipients.clone();
    recipients.sort();
    recipients.dedup();
    let id = m.id.clone();
    let msg = json!({
        "id": id,
        "type": m.msg_type.as_str(),
        "sender": "hub",
        "recipient": recipients,
        "case": m.case,
        "reply_to": m.about.0,
        "sent_at": m.at.to_rfc3339(),
        "classification": "internal",
        "body": m.body,
    });
    let payload = bytes::Bytes::from(serde_json::to_vec(&msg)?);
    let (rule, version) = (m.rule, m.version);
    // The message is a hop of its own, child of whoever raised it; its
    // copies carry its context.
    let own = trace.child();
    let mut hop = crate::otel::Hop::start("hub", "alert", Some(*trace), own);
    hop.attr("xj.message_id", id.clone())
        .attr("xj.case", m.case.to_string())
        .attr("xj.type", m.msg_type.as_str())
        .attr("xj.sender", "hub")
        .attr_opt("xj.alert", m.alert)
        .attr("xj.about", m.about.0.to_string())
        .attr("xj.recipient", recipients.join(","))
        .attr("xj.rule", rule.clone())
        .attr("xj.rule_version", version.clone());
    let ev = events::Event {
        step: events::Step::Routed(events::Routed {
            recipients: recipients.clone(),
            rule: rule.clone(),
            rule_version: version.clone(),
            alert: m.alert.map(str::to_owned),
            about: Some(m.about.0.to_string()),
            reply_to: Some(m.about.0.to_string()),
            summary: m.summary,
            ..Default::default()
        }),
        service: "router".into(),
        msg_id: id.clone(),
        sender: "hub".into(),
        case: Some(m.case.to_string()),
        msg_type: Some(m.msg_type),
        at: m.at,
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
                case: m.case.into(),
                msg_type: m.msg_type.as_str().into(),
                matter: None,
                party: None,
                seq: None,
            },
        )
        .await?;
        // The recipient may answer on the case at once (crate::parties).
        crate::parties::mark(&bus.parties, m.case, crate::parties::Role::Received, org).await?;
        let mut hd = HeaderMap::new();
        hd.put(h::NATS_MSG_ID, format!("hub:{id}:{org}").as_str());
        hd.put(h::TRACEPARENT, own.header().as_str());
        hd.put(h::MESSAGE_ID, id.as_str());
        hd.put(h::SENDER, "hub");
        hd.put(h::CASE, m.case);
        hd.put(h::RECIPIENT, org.as_str());
        hd.put(h::RULE, rule.as_str());
        hd.put(h::RULE_VERSION, version.as_str());
        bus.js.publish_with_headers(subjects::routed(org), hd, payload.clone()).await?.await?;
    }
    hop.finish();
    Ok(())
}
