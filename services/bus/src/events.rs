//! Step events: each service records what it did to a message on
//! `xj.evt.<sender>.<msg>.<step>`. Traces, the tracker, the console and
//! the ledger read them; nothing in the delivery path depends on them.
//! The first step, `accepted`, is the message itself as stored in
//! `XJ_ACCEPTED` ([`Event::of_accepted`], [`story`]).
//!
//! This module is the one definition of what each step says. On the wire
//! an event is one JSON object: the common fields, `step` (its name) and
//! `detail` (what that step says, a shape per step; docs/api.md, "Trace").
//! Every writer builds a [`Step`] and every reader matches on one, so a
//! renamed field is a compile error rather than a silently empty case
//! record.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use xj_model::MessageType;

/// One step of one message (docs/architecture.md, "The picture").
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub step: Step,
    pub service: String,
    pub msg_id: String,
    pub sender: String,
    pub case: Option<String>,
    pub msg_type: Option<MessageType>,
    pub at: DateTime<Utc>,
    pub trace_id: String,
    pub span_id: String,
}

/// What happened, with what that step says about it.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The gateway stored the message (`XJ_ACCEPTED`). Never published:
    /// read from the stored message ([`Event::of_accepted`]).
    Accepted(Accepted),
    /// The router decided who receives it and published one copy each.
    Routed(Routed),
    /// Nobody could be placed: the coordination office was asked.
    Unplaced(Routed),
    /// A copy waits behind an earlier copy to the same receiver.
    Waiting(Delivery),
    /// A delivery attempt failed and will be retried.
    Attempt(Delivery),
    /// The receiver has the copy.
    Delivered(Delivery),
    /// The copy went to `xj.dead.<org>`.
    Dead(Delivery),
    /// A NATS organisation signed its receipt for a copy stored in its
    /// outbox (`outbox_seq`); the receipt is in the detail.
    Receipted(Delivery),
    /// An operator replayed a dead letter.
    Replayed(Replayed),
    /// The tracker could not fold an event into its case record.
    CaseRecordFull(CaseRecordFull),
}

/// `accepted`: when, and the message it answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    #[serde(default)]
    pub accepted_at: String,
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// Whether a recipient must act (`to`) or is informed (`copy`, 抄送).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    To,
    Copy,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::To => "to",
            Self::Copy => "copy",
        }
    }

    /// The rules crate's names for the roles.
    pub fn parse(role: &str) -> Self {
        if role == "copy" { Self::Copy } else { Self::To }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub org: String,
    pub role: Role,
}

/// `routed` / `unplaced`: the decision, as `xj route --explain` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Routed {
    /// Everyone who gets a copy, `to` and `copy` alike.
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub rule: String,
    #[serde(default)]
    pub rule_version: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    /// Every rule looked at and what it said (the rules crate's shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consulted: Vec<Value>,
    /// The criminal threshold the facts met, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crime: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_errors: Vec<String>,
    /// 重大行政处罚备案: whether this routing filed the decision with the
    /// justice bureau (said by every routing of a message; absent from
    /// alerts, re-routes and what a recipient sees).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_penalty_filed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing: Option<Filing>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The message's sequence in `XJ_ACCEPTED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The body fields the tracker's state machine and clocks read.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub summary: Value,
    /// An alert (`supervision_alert` from `hub`): its kind and the message
    /// it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about: Option<String>,
    /// A re-route (designation, transfer): the message that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerouted_by: Option<String>,
}

/// 重大行政处罚备案: the routing carried a major penalty decision to the
/// justice bureau, and by when it had to be filed. The rules decide what is
/// major (`[major_penalty]`); the tracker keeps the clock from this.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filing {
    /// The justice bureau(s) it was filed with.
    pub with: Vec<String>,
    /// Which criteria the decision meets, in words.
    #[serde(default)]
    pub criteria: Vec<String>,
    /// The day of the decision (`body.decided_on`, else the day it was
    /// sent), `YYYY-MM-DD`.
    pub decided_on: String,
    /// The last day to file: `decided_on` + `[major_penalty] file_within_days`.
    pub due: String,
    #[serde(default)]
    pub source: String,
}

/// `waiting` / `attempt` / `delivered` / `dead`: one copy, one receiver.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub recipient: String,
    /// `[recipient]`: every step names its receivers the same way.
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub attempt: u64,
    #[serde(default)]
    pub replayed_by: Option<String>,
    /// The receiver's HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_ms: Option<u64>,
    /// Where a NATS-native organisation's copy is stored in `XJ_OUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waits_for: Option<String>,
    /// The recipient's signed receipt, checked against its key
    /// (docs/security.md, "Signed receipts").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::signing::SignedReceipt>,
}

impl Delivery {
    pub fn to(recipient: &str, attempt: u64) -> Self {
        Self { recipient: recipient.into(), recipients: vec![recipient.into()], attempt, ..Default::default() }
    }
}

/// `replayed`: which dead letter, by whom.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Replayed {
    pub recipient: String,
    #[serde(default)]
    pub recipients: Vec<String>,
    #[serde(default)]
    pub replayed_by: String,
    #[serde(default)]
    pub dead_seq: u64,
}

/// `case_record_full`: which event did not fit, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CaseRecordFull {
    pub error: String,
    /// The step that was not folded.
    pub event: String,
    #[serde(default)]
    pub recipient: Option<String>,
}

impl Step {
    /// Every step's name, as [`Step::name`] gives it.
    pub const NAMES: [&'static str; 10] = [
        "accepted",
        "routed",
        "unplaced",
        "waiting",
        "attempt",
        "delivered",
        "dead",
        "receipted",
        "replayed",
        "case_record_full",
    ];

    /// The step's name: the last token of its subject and `step` on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Accepted(_) => "accepted",
            Self::Routed(_) => "routed",
            Self::Unplaced(_) => "unplaced",
            Self::Waiting(_) => "waiting",
            Self::Attempt(_) => "attempt",
            Self::Delivered(_) => "delivered",
            Self::Dead(_) => "dead",
            Self::Receipted(_) => "receipted",
            Self::Replayed(_) => "replayed",
            Self::CaseRecordFull(_) => "case_record_full",
        }
    }

    /// The routing decision of a `routed` or `unplaced` step.
    pub fn routing(&self) -> Option<&Routed> {
        match self {
            Self::Routed(r) | Self::Unplaced(r) => Some(r),
            _ => None,
        }
    }

    /// The copy a delivery step is about.
    pub fn delivery(&self) -> Option<&Delivery> {
        match self {
            Self::Waiting(d) | Self::Attempt(d) | Self::Delivered(d) | Self::Dead(d) | Self::Receipted(d) => Some(d),
            _ => None,
        }
    }

    /// The one receiver a step is about (delivery steps, replays, a full record).
    pub fn recipient(&self) -> Option<&str> {
        match self {
            Self::Waiting(d) | Self::Attempt(d) | Self::Delivered(d) | Self::Dead(d) | Self::Receipted(d) => {
                Some(&d.recipient)
            }
            Self::Replayed(r) => Some(&r.recipient),
            Self::CaseRecordFull(f) => f.recipient.as_deref(),
            _ => None,
        }
    }

    /// Every receiver a step names.
    pub fn recipients(&self) -> Vec<&str> {
        match self {
            Self::Routed(r) | Self::Unplaced(r) => r.recipients.iter().map(String::as_str).collect(),
            _ => self.recipient().into_iter().collect(),
        }
    }

    fn detail(&self) -> Result<Value, serde_json::Error> {
        match self {
            Self::Accepted(d) => serde_json::to_value(d),
            Self::Routed(d) | Self::Unplaced(d) => serde_json::to_value(d),
            Self::Waiting(d) | Self::Attempt(d) | Self::Delivered(d) | Self::Dead(d) | Self::Receipted(d) => {
                serde_json::to_value(d)
            }
            Self::Replayed(d) => serde_json::to_value(d),
            Self::CaseRecordFull(d) => serde_json::to_value(d),
        }
    }

    fn from_parts(name: &str, detail: Value) -> Result<Self, String> {
        let d = detail;
        let parsed = match name {
            "accepted" => serde_json::from_value(d).map(Self::Accepted),
            "routed" => serde_json::from_value(d).map(Self::Routed),
            "unplaced" => serde_json::from_value(d).map(Self::Unplaced),
            "waiting" => serde_json::from_value(d).map(Self::Waiting),
            "attempt" => serde_json::from_value(d).map(Self::Attempt),
            "delivered" => serde_json::from_value(d).map(Self::Delivered),
            "dead" => serde_json::from_value(d).map(Self::Dead),
            "receipted" => serde_json::from_value(d).map(Self::Receipted),
            "replayed" => serde_json::from_value(d).map(Self::Replayed),
            "case_record_full" => serde_json::from_value(d).map(Self::CaseRecordFull),
            other => return Err(format!("unknown step {other:?}")),
        };
        parsed.map_err(|e| format!("the detail of a {name} step: {e}"))
    }
}

/// The JSON an event is on the wire.
#[derive(Serialize, Deserialize)]
struct Wire {
    step: String,
    service: String,
    msg_id: String,
    sender: String,
    #[serde(default)]
    case: Option<String>,
    #[serde(default)]
    msg_type: Option<MessageType>,
    at: DateTime<Utc>,
    trace_id: String,
    span_id: String,
    #[serde(default)]
    detail: Value,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let detail = self.step.detail().map_err(serde::ser::Error::custom)?;
        Wire {
            step: self.step.name().into(),
            service: self.service.clone(),
            msg_id: self.msg_id.clone(),
            sender: self.sender.clone(),
            case: self.case.clone(),
            msg_type: self.msg_type,
            at: self.at,
            trace_id: self.trace_id.clone(),
            span_id: self.span_id.clone(),
            detail,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let step = Step::from_parts(&w.step, w.detail).map_err(serde::de::Error::custom)?;
        Ok(Event {
            step,
            service: w.service,
            msg_id: w.msg_id,
            sender: w.sender,
            case: w.case,
            msg_type: w.msg_type,
            at: w.at,
            trace_id: w.trace_id,
            span_id: w.span_id,
        })
    }
}

impl Event {
    pub fn subject(&self) -> String {
        crate::subjects::event(&self.sender, &self.msg_id, self.step.name())
    }

    /// The `accepted` step of a message as `XJ_ACCEPTED` stores it: the
    /// stored message is its acceptance, so no event of its own is written
    /// (one stored message less per message). `None` for what is not a
    /// message the hub accepted.
    pub fn of_accepted(headers: Option<&async_nats::HeaderMap>, payload: &[u8]) -> Option<Event> {
        let doc: Value = serde_json::from_slice(payload).ok()?;
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let accepted_at = crate::headers::get(headers, crate::headers::ACCEPTED_AT)?.to_string();
        let at = DateTime::parse_from_rfc3339(&accepted_at).ok()?.with_timezone(&Utc);
        let trace = crate::TraceParent::received(headers);
        Some(Event {
            step: Step::Accepted(Accepted { accepted_at, reply_to: text("reply_to") }),
            service: "gateway".into(),
            msg_id: text("id")?,
            sender: text("sender")?,
            case: text("case"),
            msg_type: text("type").and_then(|t| MessageType::parse(&t)),
            at,
            trace_id: trace.map(|t| t.trace_id_hex()).unwrap_or_default(),
            span_id: trace.map(|t| t.span_id_hex()).unwrap_or_default(),
        })
    }
}

/// Every step of every message with id `msg_id` (each sender's message of
/// that id is a message of its own): the acceptance read from
/// `XJ_ACCEPTED`, the other steps from `XJ_EVENTS`; in the order stored,
/// acceptances first. The one reader of a message's story (traces,
/// letters, the console).
pub async fn story(js: &async_nats::jetstream::Context, msg_id: &str) -> Result<Vec<Event>, crate::streams::BusError> {
    use crate::subjects;
    let (accepted, steps) = tokio::try_join!(
        matching(js, subjects::STREAM_ACCEPTED, subjects::accepted_of(msg_id)),
        matching(js, subjects::STREAM_EVENTS, subjects::events_of(msg_id)),
    )?;
    let mut out: Vec<Event> =
        accepted.iter().filter_map(|m| Event::of_accepted(m.headers.as_ref(), &m.payload)).collect();
    out.extend(steps.iter().filter_map(|m| serde_json::from_slice::<Event>(&m.payload).ok()));
    Ok(out)
}

/// Every message of `stream` whose subject matches `filter`, oldest first.
async fn matching(
    js: &async_nats::jetstream::Context,
    stream: &str,
    filter: String,
) -> Result<Vec<async_nats::Message>, crate::streams::BusError> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt;
    let err = |e: &dyn std::fmt::Display| crate::streams::BusError::Declare {
        what: format!("a reader of {stream}"),
        message: e.to_string(),
    };
    let stream = js.get_stream(stream).await.map_err(|e| err(&e))?;
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| err(&e))?;
    let pending = consumer.info().await.map_err(|e| err(&e))?.num_pending as usize;
    let mut out = Vec::with_capacity(pending);
    if pending == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(|e| err(&e))?;
    while out.len() < pending {
        match tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await {
            Ok(Some(Ok(m))) => out.push(m.message),
            _ => break,
        }
    }
    Ok(out)
}

/// Publishes an event and waits for the stream to store it.
pub async fn publish(js: &async_nats::jetstream::Context, ev: &Event) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(ev)?;
    js.publish(ev.subject(), payload.into()).await?.await?;
    Ok(())
}

/// Publishes an event once: a repeat with the same `dedup` key inside the
/// stream's duplicate window is dropped (a redelivered message re-records
/// its step without doubling it).
pub async fn publish_once(js: &async_nats::jetstream::Context, ev: &Event, dedup: &str) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(ev)?;
    let mut h = async_nats::HeaderMap::new();
    crate::headers::Put::put(&mut h, crate::headers::NATS_MSG_ID, dedup);
    js.publish_with_headers(ev.subject(), h, payload.into()).await?.await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(step: &str, detail: Value) -> Value {
        json!({ "step": step, "service": "s", "msg_id": "M-1", "sender": "qh-a", "case": "XJ-1",
                "msg_type": "clue_referral", "at": "2026-01-05T01:00:00Z", "trace_id": "t", "span_id": "p",
                "detail": detail })
    }

    /// Events stored by earlier versions (hand-built JSON) still read, and
    /// read back to the same JSON.
    #[test]
    fn the_json_of_every_step_reads_and_writes_back_the_same() {
        let cases = [
            wire("accepted", json!({ "accepted_at": "2026-01-05T01:00:00.000Z", "reply_to": null })),
            wire(
                "routed",
                json!({ "recipients": ["qh-b", "qh-p"], "targets": [{"org": "qh-b", "role": "to"}, {"org": "qh-p", "role": "copy"}],
                        "rule": "matter:X", "rule_version": "v1", "reasons": ["r"], "consulted": [{"rule": "x"}],
                        "crime": {"offence": "o"}, "rule_errors": ["e"], "major_penalty_filed": true,
                        "filing": {"with": ["qh-j"], "criteria": ["c"], "decided_on": "2026-01-02", "due": "2026-01-17", "source": "s"}, "reply_to": "M-0", "seq": 7, "summary": {"decision": "accepted"} }),
            ),
            wire(
                "delivered",
                json!({ "recipient": "qh-b", "recipients": ["qh-b"], "attempt": 1, "replayed_by": null, "status": 200, "ms": 3 }),
            ),
            wire(
                "attempt",
                json!({ "recipient": "qh-b", "recipients": ["qh-b"], "attempt": 2, "replayed_by": null, "status": 503,
                        "error": "down", "ms": 9, "retry_in_ms": 400 }),
            ),
            wire(
                "replayed",
                json!({ "recipient": "qh-b", "recipients": ["qh-b"], "replayed_by": "operator", "dead_seq": 4 }),
            ),
            wire("case_record_full", json!({ "error": "too big", "event": "routed", "recipient": null })),
        ];
        for v in cases {
            let ev: Event = serde_json::from_value(v.clone()).expect("reads");
            assert_eq!(serde_json::to_value(&ev).expect("writes"), v);
        }
    }

    #[test]
    fn every_name_is_a_step_the_wire_reads() {
        for name in Step::NAMES {
            let e = Step::from_parts(name, json!({})).err().unwrap_or_default();
            assert!(!e.contains("unknown step"), "{name}: {e}");
        }
    }

    #[test]
    fn a_missing_field_or_an_unknown_step_is_an_error_naming_it() {
        let e = serde_json::from_value::<Event>(wire("delivered", json!({ "attempt": 1 }))).expect_err("no recipient");
        assert!(e.to_string().contains("delivered") && e.to_string().contains("recipient"), "{e}");
        let e = serde_json::from_value::<Event>(wire("teleported", json!({}))).expect_err("unknown");
        assert!(e.to_string().contains("teleported"), "{e}");
    }

    /// The stored message is its acceptance: the step read from it says
    /// what the gateway's `accepted` event said.
    #[test]
    fn the_accepted_step_is_read_from_the_stored_message() {
        let tp = crate::TraceParent::new_root();
        let mut hd = async_nats::HeaderMap::new();
        crate::headers::Put::put(&mut hd, crate::headers::ACCEPTED_AT, "2026-01-05T01:00:00.123Z");
        crate::headers::Put::put(&mut hd, crate::headers::TRACEPARENT, tp.header().as_str());
        let msg = json!({ "id": "M-1", "sender": "qh-a", "type": "clue_referral", "case": "XJ-1", "reply_to": "M-0",
                          "body": {} });
        let ev = Event::of_accepted(Some(&hd), &serde_json::to_vec(&msg).unwrap()).expect("an acceptance");
        assert_eq!(
            ev.step,
            Step::Accepted(Accepted { accepted_at: "2026-01-05T01:00:00.123Z".into(), reply_to: Some("M-0".into()) })
        );
        assert_eq!((ev.msg_id.as_str(), ev.sender.as_str(), ev.case.as_deref()), ("M-1", "qh-a", Some("XJ-1")));
        assert_eq!(ev.msg_type, Some(MessageType::ClueReferral));
        assert_eq!((ev.trace_id.clone(), ev.span_id.clone()), (tp.trace_id_hex(), tp.span_id_hex()));
        assert_eq!(ev.at.to_rfc3339(), "2026-01-05T01:00:00.123+00:00");
        // Without its acceptance time, or not a message, it is no acceptance.
        assert!(Event::of_accepted(None, &serde_json::to_vec(&msg).unwrap()).is_none());
        assert!(Event::of_accepted(Some(&hd), b"not json").is_none());
        assert!(Event::of_accepted(Some(&hd), br#"{"id": "M-1"}"#).is_none());
    }

    #[test]
    fn the_subject_and_the_receivers_come_from_the_step() {
        let ev: Event =
            serde_json::from_value(wire("dead", json!({ "recipient": "qh-b", "error": "gone" }))).expect("reads");
        assert_eq!(ev.subject(), "xj.evt.qh-a.M-1.dead");
        assert_eq!(ev.step.recipients(), ["qh-b"]);
        assert!(ev.step.routing().is_none());
    }
}
