//! `GET /v1/inbox`: pull delivery for an organisation with no system to
//! receive with (`deliver = { pull = true }`, docs/api.md "Pull delivery").
//!
//! The courier stores each copy, signed as for a webhook, in `XJ_INBOX`
//! under `xj.inbox.<org>`; it stays there, however long, until collected.
//! A cursor is a stream sequence. Asking with `after=C` acknowledges every
//! delivery up to `C`: each becomes `delivered` (the clocks it starts begin
//! now, not when it was stored) and is then removed. Events first, removal
//! second: a crash in between makes the same `delivered` events again,
//! which their dedupe ids drop.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use xj_bus::events::{self, Delivery, Event, Step};
use xj_bus::{TraceParent, headers as h, subjects};
use xj_model::Problem;

use crate::auth::caller;
use crate::error::ApiError;
use crate::state::{Caller, GatewayState};

/// Longest long-poll (`wait`), in seconds.
pub const MAX_WAIT: u64 = 30;
/// Most deliveries in one answer (`limit`).
pub const MAX_LIMIT: usize = 500;
const DEFAULT_LIMIT: usize = 100;
/// How often a long-poll looks again.
const POLL: Duration = Duration::from_millis(200);

#[derive(Deserialize)]
pub struct InboxQuery {
    after: Option<String>,
    limit: Option<String>,
    wait: Option<String>,
}

/// Organisations with a long-poll waiting: one each, so idle pollers cannot
/// hold more than one request per pull organisation (a second poll while
/// one waits is answered at once). Keyed by gateway (its settings) and
/// organisation: several gateways may share a process (tests, `xj up`).
static WAITING: Mutex<Option<HashSet<String>>> = Mutex::new(None);

struct Waiter(String);

impl Waiter {
    fn take(org: &str) -> Option<Self> {
        let mut w = WAITING.lock().unwrap_or_else(|p| p.into_inner());
        w.get_or_insert_with(HashSet::new).insert(org.to_string()).then(|| Self(org.to_string()))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut w = WAITING.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = w.as_mut() {
            set.remove(&self.0);
        }
    }
}

pub fn cursor(seq: u64) -> String {
    format!("c-{seq}")
}

fn parse_cursor(c: &str) -> Option<u64> {
    c.strip_prefix("c-")?.parse().ok()
}

pub async fn get_inbox(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<InboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let org = match caller(&state, &headers)? {
        Caller::Org(org) => org,
        Caller::Operator => {
            return Err(ApiError::Forbidden(
                "an inbox is an organisation's own: call with its token (operators: GET /v1/admin/inbox)".into(),
            ));
        }
    };
    let channel = state.settings.org(&org).map(|o| o.deliver.channel()).unwrap_or("webhook");
    if channel != "pull" {
        return Err(ApiError::Conflict(format!(
            "{org} receives by {channel}: GET /v1/inbox is for organisations with deliver = {{ pull = true }}"
        )));
    }
    let mut problems = Vec::new();
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => parse_cursor(c).map(Some).unwrap_or_else(|| {
            problems.push(Problem::new(
                "/after",
                format!("{:?} is not a cursor of this inbox (c-<n>)", crate::error::clip(c)),
            ));
            None
        }),
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                problems.push(Problem::new("/limit", format!("limit must be a whole number from 1 to {MAX_LIMIT}")));
                DEFAULT_LIMIT
            }
        },
    };
    let wait = match q.wait.as_deref() {
        None => 0,
        Some(w) => match w.parse::<u64>() {
            Ok(n) if n <= MAX_WAIT => n,
            _ => {
                problems.push(Problem::new(
                    "/wait",
                    format!("wait must be a whole number of seconds from 0 to {MAX_WAIT}"),
                ));
                0
            }
        },
    };
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    if after.is_some() && state.settings.org(&org).is_some_and(|o| o.sign_receipts) {
        return Err(ApiError::Invalid(vec![Problem::new(
            "/after",
            format!(
                "{org} signs its receipts (sign_receipts): acknowledge with POST /v1/inbox/ack and a receipt for each delivery"
            ),
        )]));
    }
    let subject = subjects::inbox(&org);
    let stream = state.bus.js.get_stream(subjects::STREAM_INBOX).await.map_err(ApiError::unavailable)?;
    if let Some(upto) = after {
        acknowledge(&state, &stream, &org, &subject, upto, &[]).await?;
    }
    let from = after.map(|c| c + 1).unwrap_or(1);
    let mut found = list(&stream, &subject, from, limit).await?;
    if found.is_empty()
        && wait > 0
        && let Some(_w) = Waiter::take(&format!("{:p}/{org}", std::sync::Arc::as_ptr(&state.settings)))
    {
        let until = tokio::time::Instant::now() + Duration::from_secs(wait);
        while found.is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(POLL).await;
            found = list(&stream, &subject, from, limit).await?;
        }
    }
    let next = found.last().map(|(seq, _)| cursor(*seq)).or_else(|| after.map(cursor));
    let messages: Vec<Value> = found.into_iter().map(|(_, m)| m).collect();
    metrics::counter!("xj_inbox_collected_total", "org" => org.clone()).increment(messages.len() as u64);
    Ok(Json(json!({ "messages": messages, "cursor": next })))
}

/// Up to `limit` deliveries of `subject` from sequence `from` on, as the
/// inbox answers them.
async fn list(
    stream: &async_nats::jetstream::stream::Stream,
    subject: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Value)>, ApiError> {
    let mut out = Vec::new();
    let mut seq = from;
    while out.len() < limit {
        let m = match stream.raw_message_builder().sequence(seq).next_by_subject(subject.to_string()).send().await {
            Ok(m) => m,
            Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(ApiError::unavailable(e)),
        };
        seq = m.sequence + 1;
        out.push((m.sequence, render(&m)));
    }
    Ok(out)
}

/// One delivery: its cursor, the headers a webhook would have had, and the
/// exact bytes the signature is over.
fn render(m: &async_nats::jetstream::message::StreamMessage) -> Value {
    let mut headers = Map::new();
    for (name, values) in m.headers.iter() {
        let name = name.to_string().to_ascii_lowercase();
        // The stream's own dedupe key is the hub's business, not the reader's.
        if name == h::NATS_MSG_ID.to_ascii_lowercase() {
            continue;
        }
        if let Some(v) = values.first() {
            headers.insert(name, Value::String(v.as_str().to_string()));
        }
    }
    let mut out = json!({ "cursor": cursor(m.sequence), "headers": headers });
    match std::str::from_utf8(&m.payload) {
        Ok(text) => out["body"] = Value::String(text.to_string()),
        // Every format the hub speaks is text; should one not be, its bytes
        // still reach the reader whole.
        Err(_) => out["body_base64"] = base64::engine::general_purpose::STANDARD.encode(&m.payload).into(),
    }
    out
}

/// `POST /v1/inbox/ack`: acknowledges every delivery up to `cursor`, as
/// `GET /v1/inbox?after=` does, with the organisation's signed receipts
/// (`receipts: [{cursor, signature}]`, docs/security.md "Signed receipts").
/// Each receipt is checked against the bytes of the delivery at its cursor
/// and the organisation's registered key, and recorded in that delivery's
/// `delivered` step; an organisation with `sign_receipts = true` owes one
/// for every delivery it acknowledges. Any problem refuses the whole
/// acknowledgement, each at its JSON pointer: nothing is acknowledged.
pub async fn post_ack(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let org = match caller(&state, &headers)? {
        Caller::Org(org) => org,
        Caller::Operator => {
            return Err(ApiError::Forbidden("an inbox is acknowledged with its organisation's token".into()));
        }
    };
    let channel = state.settings.org(&org).map(|o| o.deliver.channel()).unwrap_or("webhook");
    if channel != "pull" {
        return Err(ApiError::Conflict(format!(
            "{org} receives by {channel}: POST /v1/inbox/ack is for organisations with deliver = {{ pull = true }}"
        )));
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::syntax(&e))?;
    let mut problems = Vec::new();
    let Some(obj) = v.as_object() else {
        return Err(ApiError::Invalid(vec![Problem::new(
            "",
            "give an object: {\"cursor\": \"c-…\", \"receipts\": […]}",
        )]));
    };
    for k in obj.keys().filter(|k| !["cursor", "receipts"].contains(&k.as_str())) {
        problems.push(Problem::new(
            format!("/{}", crate::error::clip(k)),
            "not a field of an acknowledgement (cursor, receipts)",
        ));
    }
    let upto = match v["cursor"].as_str() {
        Some(c) => parse_cursor(c).or_else(|| {
            problems.push(Problem::new(
                "/cursor",
                format!("{:?} is not a cursor of this inbox (c-<n>)", crate::error::clip(c)),
            ));
            None
        }),
        None => {
            problems.push(Problem::new("/cursor", "the cursor to acknowledge up to is required (c-<n>)"));
            None
        }
    };
    let mut receipts = Vec::new();
    match &v["receipts"] {
        Value::Null => {}
        Value::Array(list) if list.len() <= MAX_LIMIT => {
            for (i, r) in list.iter().enumerate() {
                let cursor = r["cursor"].as_str().and_then(parse_cursor);
                let signature = r["signature"].as_str().filter(|s| !s.is_empty() && s.len() <= 1024);
                match (cursor, signature) {
                    (Some(c), Some(sig)) => receipts.push((i, c, sig.to_string())),
                    (None, _) => problems.push(Problem::new(format!("/receipts/{i}/cursor"), "the cursor of the delivery received (c-<n>)")),
                    (_, None) => problems.push(Problem::new(
                        format!("/receipts/{i}/signature"),
                        "the receipt, as an Xj-Receipt-Signature header: [alg=sm2,]keyid=…,at=…,sig=… (at most 1024 characters)",
                    )),
                }
            }
        }
        Value::Array(_) => problems.push(Problem::new("/receipts", format!("at most {MAX_LIMIT} receipts at once"))),
        _ => problems.push(Problem::new("/receipts", "a list of {cursor, signature}")),
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let upto = upto.unwrap_or_default();
    let subject = subjects::inbox(&org);
    let stream = state.bus.js.get_stream(subjects::STREAM_INBOX).await.map_err(ApiError::unavailable)?;
    let (acknowledged, signed) = acknowledge(&state, &stream, &org, &subject, upto, &receipts).await?;
    Ok(Json(json!({ "cursor": cursor(upto), "acknowledged": acknowledged, "receipts": signed })))
}

/// Marks every delivery of `subject` up to `upto` delivered, with the
/// receipts given for them (`(index in the request, cursor, header)`), then
/// removes them: how many were acknowledged, and with a receipt. A cursor
/// the inbox never gave (beyond its last delivery) is refused: nothing is
/// acknowledged unseen. So is a receipt that does not verify, one for a
/// delivery not acknowledged, and a missing one that is owed.
async fn acknowledge(
    state: &GatewayState,
    stream: &async_nats::jetstream::stream::Stream,
    org: &str,
    subject: &str,
    upto: u64,
    receipts: &[(usize, u64, String)],
) -> Result<(usize, usize), ApiError> {
    let last = match stream.get_last_raw_message_by_subject(subject).await {
        Ok(m) => Some(m.sequence),
        Err(e) if e.kind() == async_nats::jetstream::stream::LastRawMessageErrorKind::NoMessageFound => None,
        Err(e) => return Err(ApiError::unavailable(e)),
    };
    let beyond = match last {
        Some(l) => upto > l,
        None => false,
    };
    if beyond {
        return Err(ApiError::Invalid(vec![Problem::new(
            "/after",
            format!("cursor {} is beyond the last delivery of this inbox", cursor(upto)),
        )]));
    }
    let mut copies = Vec::new();
    let mut seq = 1;
    loop {
        let m = match stream.raw_message_builder().sequence(seq).next_by_subject(subject.to_string()).send().await {
            Ok(m) if m.sequence <= upto => m,
            Ok(_) => break,
            Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(ApiError::unavailable(e)),
        };
        seq = m.sequence + 1;
        copies.push(m);
    }
    // Every receipt is checked before anything is acknowledged.
    let o = state.settings.org(org);
    let mut checked = std::collections::HashMap::new();
    let mut problems = Vec::new();
    for (i, c, header) in receipts {
        let Some(m) = copies.iter().find(|m| m.sequence == *c) else {
            problems.push(Problem::new(
                format!("/receipts/{i}/cursor"),
                format!("{} is not a delivery waiting in this inbox up to {}", cursor(*c), cursor(upto)),
            ));
            continue;
        };
        let hd = Some(&m.headers);
        let message = (h::get(hd, h::SENDER).unwrap_or_default(), h::get(hd, h::MESSAGE_ID).unwrap_or_default());
        let Some(o) = o.filter(|o| o.public_key.is_some()) else {
            problems.push(Problem::new(
                format!("/receipts/{i}/signature"),
                format!("{org} has no public_key registered to check its receipts with"),
            ));
            continue;
        };
        match xj_bus::signing::check_receipt(o, message, &m.payload, Some(header)) {
            Ok(r) => {
                checked.insert(*c, r);
            }
            Err(e) => problems.push(Problem::new(format!("/receipts/{i}/signature"), e)),
        }
    }
    if o.is_some_and(|o| o.sign_receipts) {
        let owed: Vec<String> = copies
            .iter()
            .filter(|m| !receipts.iter().any(|(_, c, _)| *c == m.sequence))
            .map(|m| cursor(m.sequence))
            .collect();
        if !owed.is_empty() {
            problems.push(Problem::new(
                "/receipts",
                format!("{org} must sign its receipts (sign_receipts): none for {}", owed.join(", ")),
            ));
        }
    }
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let signed = checked.values().filter(|r| r.is_some()).count();
    for m in &copies {
        delivered(state, org, m, checked.remove(&m.sequence).flatten()).await?;
    }
    if last.is_some() {
        stream.purge().filter(subject).sequence(upto + 1).await.map_err(ApiError::unavailable)?;
    }
    Ok((copies.len(), signed))
}

/// The `delivered` step of a collected copy, as the courier records one for
/// a webhook's 2xx.
async fn delivered(
    state: &GatewayState,
    org: &str,
    m: &async_nats::jetstream::message::StreamMessage,
    receipt: Option<xj_bus::signing::SignedReceipt>,
) -> Result<(), ApiError> {
    let hd = Some(&m.headers);
    let (Some(msg_id), Some(sender)) = (h::get(hd, h::MESSAGE_ID), h::get(hd, h::SENDER)) else {
        tracing::warn!(seq = m.sequence, "an inbox message without its id or sender: removed unrecorded");
        return Ok(());
    };
    let copy = StoredCopy { org, msg: (sender, msg_id), headers: &m.headers, seq: m.sequence };
    let dedup = format!("evt:collected:{org}:{}", m.sequence);
    copy_step(state, &copy, receipt, Step::Delivered, &dedup).await
}

/// A copy the courier stored for `org` (in its inbox or outbox): the
/// message it is (sender, id), its headers and its sequence.
pub(crate) struct StoredCopy<'a> {
    pub org: &'a str,
    pub msg: (&'a str, &'a str),
    pub headers: &'a async_nats::HeaderMap,
    pub seq: u64,
}

/// Records a step of a stored copy — its collection, a signed receipt for
/// it — from the copy's own headers, once (`dedup`).
pub(crate) async fn copy_step(
    state: &GatewayState,
    copy: &StoredCopy<'_>,
    receipt: Option<xj_bus::signing::SignedReceipt>,
    step: fn(Delivery) -> Step,
    dedup: &str,
) -> Result<(), ApiError> {
    let hd = Some(copy.headers);
    let trace = TraceParent::received(hd).map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut detail = Delivery::to(copy.org, h::get(hd, h::ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(1));
    detail.outbox_seq = Some(copy.seq);
    detail.receipt = receipt;
    let ev = Event {
        step: step(detail),
        service: "gateway".into(),
        msg_id: copy.msg.1.to_string(),
        sender: copy.msg.0.to_string(),
        case: h::get(hd, h::CASE).map(str::to_owned),
        msg_type: None,
        at: state.clock.now(),
        trace_id: trace.trace_id_hex(),
        span_id: trace.span_id_hex(),
    };
    events::publish_once(&state.bus.js, &ev, dedup).await.map_err(|e| ApiError::unavailable(e.to_string()))
}

/// `GET /v1/admin/inbox`: each pull organisation, how many deliveries wait
/// for it and since when — and whether that is longer than its
/// `pull_alert_hours`.
pub async fn admin_inbox(State(state): State<GatewayState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    if caller(&state, &headers)? != Caller::Operator {
        return Err(ApiError::Forbidden("the inboxes' state is for operators".into()));
    }
    let stream = state.bus.js.get_stream(subjects::STREAM_INBOX).await.map_err(ApiError::unavailable)?;
    // The stream stamps a copy with the machine's time, so waiting is
    // measured on that clock too (in a drill on the manual clock, the
    // overdue alert of the `inbox_collection` clock follows the hub's time).
    let now = chrono::Utc::now();
    let mut orgs = Vec::new();
    for o in state.settings.org.iter().filter(|o| o.deliver.pull) {
        let subject = subjects::inbox(&o.id);
        let first = match stream.raw_message_builder().sequence(1).next_by_subject(subject.clone()).send().await {
            Ok(m) => Some(m),
            Err(e) if e.kind() == async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => None,
            Err(e) => return Err(ApiError::unavailable(e)),
        };
        let waiting = match &first {
            Some(_) => list(&stream, &subject, 1, MAX_LIMIT).await?.len(),
            None => 0,
        };
        let since = first
            .as_ref()
            .map(|m| chrono::DateTime::from_timestamp(m.time.unix_timestamp(), m.time.nanosecond()).unwrap_or(now));
        let hours = since.map(|s| (now - s).num_minutes() as f64 / 60.0);
        let late = match (hours, o.deliver.pull_alert_hours) {
            (Some(h), Some(limit)) => h >= f64::from(limit),
            _ => false,
        };
        orgs.push(json!({
            "org": o.id, "name": o.name, "waiting": waiting, "more": waiting >= MAX_LIMIT,
            "oldest_since": since.map(|s| s.to_rfc3339()), "hours": hours,
            "alert_hours": o.deliver.pull_alert_hours, "late": late,
        }));
    }
    Ok(Json(json!({ "orgs": orgs })))
}
