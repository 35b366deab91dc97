//! One delivery attempt to one organisation.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use xj_bus::headers::Put;
use xj_bus::signing::HubKey;
use xj_bus::{Bus, TraceParent, headers as h, subjects};
use xj_config::Org;
use xj_mapping::Formats;

/// What a routed message carries that a delivery needs.
pub struct Parcel<'a> {
    pub org: &'a Org,
    /// Who sent the message: message ids are unique per sender only.
    pub sender: &'a str,
    pub msg_id: &'a str,
    pub case: &'a str,
    /// This copy's identity ([`delivery_id`]): its `Nats-Msg-Id` in the
    /// outbox.
    pub delivery: &'a str,
    pub attempt: u64,
    pub trace: TraceParent,
    pub body: Bytes,
    /// `application/json` for canonical, the native format's otherwise.
    pub content_type: &'static str,
}

/// Bytes of a failed answer's body the courier reads for the reason; the
/// rest is left unread and the connection dropped, so a receiver's huge or
/// endless error page costs no more than this.
pub const ERROR_BODY_MAX: usize = 2048;

/// Characters of a receiver's text (error page, `Location`) kept in a
/// reason: enough to recognise it, small enough for a header and a trace.
const REASON_TEXT_MAX: usize = 200;

/// The identity of one copy of a message for one recipient, which the
/// outbox and the dead letters store it under (`Nats-Msg-Id`). It names the
/// recipient: the streams drop a repeated `Nats-Msg-Id` for 10 minutes
/// (docs/architecture.md), and copies of one message to several NATS-native
/// organisations must not pass for repeats of each other. A redelivery of
/// the same routed copy gets the same identity and is dropped, as it should
/// be. A routed copy whose own identity extends this one (an operator's
/// replay, a designation or transfer sending the original on) keeps its
/// own, so that second copy is stored although the first one was.
pub fn delivery_id(routed: Option<&str>, sender: &str, msg_id: &str, org: &str) -> String {
    let base = format!("{sender}:{msg_id}:{org}");
    match routed {
        Some(r) if r.strip_prefix(base.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(':')) => {
            r.to_string()
        }
        _ => base,
    }
}

/// The body an organisation receives: the canonical JSON, or its native
/// form; `Err` says why the message cannot be expressed in its format.
pub fn native_form(mappings: &Formats, org: &Org, canonical: &Bytes) -> Result<(Bytes, &'static str), String> {
    if org.format == xj_mapping::CANONICAL {
        return Ok((canonical.clone(), "application/json"));
    }
    let format = mappings.get(&org.format).map_err(|e| e.to_string())?;
    xj_mapping::outbound::translate(format, canonical)
        .map(|b| (Bytes::from(b), format.content_type()))
        .map_err(|e| format!("not expressible in {}'s format: {e}", org.id))
}

#[derive(Clone)]
pub enum Outcome {
    /// `status`: the webhook's answer; `stored`: the copy's sequence in
    /// `XJ_OUT` for a NATS-native organisation.
    Delivered {
        status: Option<u16>,
        stored: Option<u64>,
        /// A webhook answer's `Xj-Receipt-Signature`, as sent.
        receipt: Option<String>,
        /// Stored for a pull organisation: delivered only once collected.
        held: bool,
        elapsed: Duration,
    },
    Failed {
        reason: String,
        status: Option<u16>,
        elapsed: Duration,
    },
}

/// The HTTP clients webhooks are posted with (`xj conformance` uses them
/// too): kept-alive connections, HTTP/2 where the receiver takes it —
/// offered in the TLS handshake to `https://` receivers, spoken at once
/// (h2c) to an `http://` receiver configured `http2 = true`.
#[derive(Clone)]
pub struct Clients {
    http: reqwest::Client,
    h2c: reqwest::Client,
}

impl Clients {
    pub fn new(c: &xj_config::CourierSettings) -> reqwest::Result<Self> {
        Ok(Self { http: builder(c).build()?, h2c: builder(c).http2_prior_knowledge().build()? })
    }

    /// The client for `org`'s webhook.
    pub fn of(&self, org: &xj_config::Org) -> &reqwest::Client {
        if org.deliver.http2 && org.deliver.webhook.as_deref().is_some_and(|u| u.starts_with("http://")) {
            &self.h2c
        } else {
            &self.http
        }
    }
}

fn builder(c: &xj_config::CourierSettings) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_millis(c.timeout_ms))
        // A redirect is the receiver's answer, not a delivery: following a
        // 301/302/303 re-sends the signed POST as a GET without its body
        // (and a 2xx on that would count as delivered), a 307/308 sends
        // the signed body wherever the receiver points. It fails the
        // attempt with the status and `Location` in the reason.
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(c.concurrency)
}

pub async fn attempt(http: &reqwest::Client, bus: &Bus, key: &HubKey, p: &Parcel<'_>) -> Outcome {
    if let Some(url) = &p.org.deliver.webhook {
        // An organisation that takes batches gets every delivery as one,
        // a retry of a single message included.
        if p.org.deliver.batch.is_some() {
            return webhook_batch(http, key, std::slice::from_ref(p), url, chrono::Utc::now().timestamp()).await;
        }
        return webhook(http, key, p, url, chrono::Utc::now().timestamp()).await;
    }
    let started = Instant::now();
    let signature = key.sign_header(&p.body);
    let mut hdr = HeaderMap::new();
    hdr.put(h::NATS_MSG_ID, p.delivery);
    hdr.put(h::MESSAGE_ID, p.msg_id);
    hdr.put(h::SENDER, p.sender);
    hdr.put(h::CASE, p.case);
    hdr.put(h::ATTEMPT, p.attempt.to_string().as_str());
    hdr.put(h::TRACEPARENT, p.trace.header().as_str());
    hdr.put(h::SIGNATURE, signature.as_str());
    // A NATS-native organisation's copy goes to its outbox, a pull
    // organisation's to its inbox, where it waits to be collected.
    let held = p.org.deliver.pull;
    let (outbox, stream) = if held {
        (subjects::inbox(&p.org.id), subjects::STREAM_INBOX)
    } else {
        (subjects::outbox(&p.org.id), subjects::STREAM_OUT)
    };
    let res = async { bus.js.publish_with_headers(outbox.clone(), hdr, p.body.clone()).await?.await }.await;
    let stored = match res {
        // A repeat of this copy's identity: an earlier attempt stored it
        // (its acknowledgement was lost). Said "delivered" only once the
        // stored message is seen to be this copy for this organisation.
        Ok(ack) if ack.duplicate => {
            stored_copy(bus, stream, ack.sequence, &outbox, p.msg_id).await.map(|()| ack.sequence)
        }
        Ok(ack) => Ok(ack.sequence),
        Err(e) => Err(format!("NATS {outbox}: {e}")),
    };
    let elapsed = started.elapsed();
    match stored {
        Ok(seq) => Outcome::Delivered { status: None, stored: Some(seq), receipt: None, held, elapsed },
        Err(reason) => Outcome::Failed { reason, status: None, elapsed },
    }
}

/// The Standard Webhooks signature of `body` as `hook_id` at `now`, with the
/// organisation's secrets in force (or the one derived from the hub's key).
fn hook_signature(key: &HubKey, org: &Org, hook_id: &str, now: i64, body: &[u8]) -> Result<String, String> {
    let derived;
    let secrets = if org.webhook_secrets.is_empty() {
        derived = [key.webhook_secret(&org.id)];
        &derived[..]
    } else {
        &org.webhook_secrets[..]
    };
    xj_bus::webhooks::signature(secrets, hook_id, now, body).map_err(|e| e.to_string())
}

/// What a webhook's answer (or its absence) comes to.
async fn answer(resp: reqwest::Result<reqwest::Response>, started: Instant) -> Outcome {
    match resp {
        Ok(r) if r.status().is_success() => Outcome::Delivered {
            status: Some(r.status().as_u16()),
            stored: None,
            receipt: r
                .headers()
                .get(xj_bus::signing::RECEIPT_HEADER)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).chars().take(1024).collect()),
            held: false,
            elapsed: started.elapsed(),
        },
        Ok(r) => {
            let status = r.status().as_u16();
            let reason = refusal(r).await;
            Outcome::Failed { reason, status: Some(status), elapsed: started.elapsed() }
        }
        Err(e) => Outcome::Failed { reason: describe(&e), status: None, elapsed: started.elapsed() },
    }
}

/// One webhook attempt at `url` at `now` (Unix seconds, signed into
/// `webhook-timestamp`): Standard Webhooks beside `Xj-Signature` — the same
/// id on every attempt, this attempt's time, one signature per secret in
/// force.
pub async fn webhook(http: &reqwest::Client, key: &HubKey, p: &Parcel<'_>, url: &str, now: i64) -> Outcome {
    let started = Instant::now();
    let signature = key.sign_header(&p.body);
    let hook_id = xj_bus::webhooks::delivery_id(p.sender, p.msg_id, &p.org.id);
    let hook_sig = match hook_signature(key, p.org, &hook_id, now, &p.body) {
        Ok(s) => s,
        Err(reason) => return Outcome::Failed { reason, status: None, elapsed: started.elapsed() },
    };
    let resp = http
        .post(url)
        .header("content-type", p.content_type)
        .header(xj_bus::webhooks::HEADER_WEBHOOK_ID, hook_id)
        .header(xj_bus::webhooks::HEADER_WEBHOOK_TIMESTAMP, now.to_string())
        .header(xj_bus::webhooks::HEADER_WEBHOOK_SIGNATURE, hook_sig)
        .header(h::MESSAGE_ID, p.msg_id)
        .header(h::SENDER, p.sender)
        .header(h::CASE, p.case)
        .header(h::ATTEMPT, p.attempt.to_string())
        .header(h::TRACEPARENT, p.trace.header())
        .header(h::SIGNATURE, signature)
        .body(p.body.clone())
        .send()
        .await;
    answer(resp, started).await
}

/// The body of a batched delivery: the messages' exact bytes, in order, as
/// `{"messages": [ … ]}`.
pub fn batch_body(parcels: &[Parcel<'_>]) -> Bytes {
    let mut body = Vec::with_capacity(parcels.iter().map(|p| p.body.len() + 1).sum::<usize>() + 16);
    body.extend_from_slice(b"{\"messages\":[");
    for (i, p) in parcels.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&p.body);
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// One `POST` of several messages to an organisation with `deliver = {
/// webhook, batch = N }` (docs/api.md, "Batched delivery"): the body is
/// [`batch_body`], signed as a whole in `Xj-Batch-Signature` and with
/// Standard Webhooks (its `webhook-id` names the batch by the copies in it,
/// the same on every attempt of the same copies); a 2xx acknowledges them
/// all, anything else fails them all.
pub async fn webhook_batch(
    http: &reqwest::Client,
    key: &HubKey,
    parcels: &[Parcel<'_>],
    url: &str,
    now: i64,
) -> Outcome {
    let started = Instant::now();
    let Some(first) = parcels.first() else {
        return Outcome::Failed { reason: "an empty batch".into(), status: None, elapsed: started.elapsed() };
    };
    let body = batch_body(parcels);
    let signature = key.sign_header(&body);
    let ids: Vec<&str> = parcels.iter().map(|p| p.delivery).collect();
    let digest = <sha2::Sha256 as sha2::Digest>::digest(ids.join("\n").as_bytes());
    let hook_id = format!("batch.{}.{}", first.org.id, &hex::encode(digest)[..32]);
    let hook_sig = match hook_signature(key, first.org, &hook_id, now, &body) {
        Ok(s) => s,
        Err(reason) => return Outcome::Failed { reason, status: None, elapsed: started.elapsed() },
    };
    let attempt = parcels.iter().map(|p| p.attempt).max().unwrap_or(1);
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header(xj_bus::webhooks::HEADER_WEBHOOK_ID, hook_id)
        .header(xj_bus::webhooks::HEADER_WEBHOOK_TIMESTAMP, now.to_string())
        .header(xj_bus::webhooks::HEADER_WEBHOOK_SIGNATURE, hook_sig)
        .header(h::BATCH_SIZE, parcels.len().to_string())
        .header(h::ATTEMPT, attempt.to_string())
        .header(h::TRACEPARENT, first.trace.header())
        .header(h::BATCH_SIGNATURE, signature)
        .body(body)
        .send()
        .await;
    // A batch has no per-message receipt (configuration refuses the pair):
    // a receipt header on its answer is not one.
    match answer(resp, started).await {
        Outcome::Delivered { status, stored, held, elapsed, .. } => {
            Outcome::Delivered { status, stored, receipt: None, held, elapsed }
        }
        failed => failed,
    }
}

/// Checks that `stream` holds message `msg_id` for `outbox` at `seq`.
async fn stored_copy(bus: &Bus, stream: &str, seq: u64, outbox: &str, msg_id: &str) -> Result<(), String> {
    let unseen = |e: &dyn std::fmt::Display| {
        format!("NATS outbox: a repeat of this copy, but its original is not readable: {e}")
    };
    let stream = bus.js.get_stream(stream).await.map_err(|e| unseen(&e))?;
    let m = stream.get_raw_message(seq).await.map_err(|e| unseen(&e))?;
    let id = m.headers.get(h::MESSAGE_ID).map(|v| v.as_str());
    if m.subject.as_str() == outbox && id == Some(msg_id) {
        Ok(())
    } else {
        Err(format!(
            "NATS outbox: this copy's identity is already taken by {:?} on {} (sequence {seq}); not stored",
            id.unwrap_or_default(),
            m.subject
        ))
    }
}

/// Why a receiver's answer other than 2xx failed the attempt: the status,
/// and where a redirect points (redirects are not followed: a `301` would
/// turn the signed POST into a GET without body, a `307` send the signed
/// body wherever the receiver says), or the start of its error page.
async fn refusal(r: reqwest::Response) -> String {
    let status = r.status();
    let head = match status.canonical_reason() {
        Some(text) => format!("HTTP {} {text}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    };
    if status.is_redirection() {
        let location = r
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|v| readable(&String::from_utf8_lossy(v.as_bytes()), REASON_TEXT_MAX));
        return match location {
            Some(to) => format!("{head}: redirects are not followed (Location: {to})"),
            None => format!("{head}: redirects are not followed (no Location)"),
        };
    }
    let (body, broken) = body_prefix(r, ERROR_BODY_MAX).await;
    let text = readable(&String::from_utf8_lossy(&body), REASON_TEXT_MAX);
    let mut reason = if text.is_empty() { head } else { format!("{head}: {text}") };
    if let Some(why) = broken {
        reason.push_str(&format!(" (answer broke off: {why})"));
    }
    reason
}

/// At most `max` bytes of an answer's body, read chunk by chunk; the rest
/// stays unread and goes with the connection when the response is dropped.
/// A read that fails says why beside what arrived.
async fn body_prefix(mut r: reqwest::Response, max: usize) -> (Vec<u8>, Option<String>) {
    let mut out = Vec::new();
    while out.len() < max {
        match r.chunk().await {
            Ok(Some(chunk)) => {
                let room = max - out.len();
                out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) => break,
            Err(e) => return (out, Some(describe(&e))),
        }
    }
    (out, None)
}

/// A receiver's text as one readable line of at most `max` characters:
/// runs of white space (the CR LF of an error page) become one space,
/// other control characters (NUL…) `\u{XX}` escapes; bytes that were not
/// UTF-8 arrive here as U+FFFD.
pub fn readable(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        let before = out.len();
        if space {
            out.push(' ');
            space = false;
        }
        xj_model::push_visible(&mut out, c);
        let width = out[before..].chars().count();
        if count + width > max {
            out.truncate(before);
            out.push('…');
            return out;
        }
        count += width;
    }
    out
}

/// Why a request got no answer, with the innermost cause (a reset
/// connection, a closed one) and never the URL, which may carry a secret.
fn describe(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let cause = readable(&cause.to_string(), REASON_TEXT_MAX);
    if e.is_timeout() {
        "timed out: no complete answer within [courier] timeout_ms".into()
    } else if e.is_connect() {
        format!("connection refused or unreachable: {cause}")
    } else if e.is_body() || e.is_decode() {
        format!("the answer broke off: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}

/// Delay before attempt `n + 1`: initial × 2^(n-1), capped.
pub fn backoff(initial_ms: u64, max_ms: u64, attempt: u64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30) as u32;
    Duration::from_millis(initial_ms.saturating_mul(1u64 << exp).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::{backoff, delivery_id, readable};
    use std::time::Duration;

    #[test]
    fn every_copy_is_stored_under_its_recipient() {
        let id = |routed| delivery_id(routed, "qh-market", "M-1", "qh-agri");
        assert_eq!(id(None), "qh-market:M-1:qh-agri");
        assert_eq!(id(Some("qh-market:M-1:qh-agri")), "qh-market:M-1:qh-agri");
        // A replay or a re-route is a copy of its own.
        assert_eq!(id(Some("qh-market:M-1:qh-agri:replay:17")), "qh-market:M-1:qh-agri:replay:17");
        assert_eq!(id(Some("qh-market:M-1:qh-agri:designation")), "qh-market:M-1:qh-agri:designation");
        // Anything else (an older copy without the recipient, another
        // organisation whose id merely starts alike) gets the recipient.
        assert_eq!(id(Some("qh-market:M-1")), "qh-market:M-1:qh-agri");
        assert_eq!(id(Some("qh-market:M-1:qh-agri2")), "qh-market:M-1:qh-agri");
        assert_ne!(delivery_id(None, "qh-market", "M-1", "qh-transport"), id(None));
    }

    #[test]
    fn a_receivers_text_becomes_one_short_readable_line() {
        let nginx = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n</body>\r\n</html>\r\n";
        assert_eq!(readable(nginx, 200), "<html> <head><title>502 Bad Gateway</title></head> <body> </body> </html>");
        assert_eq!(readable("a\0b\x07c", 200), "a\\u{00}b\\u{07}c");
        assert_eq!(readable(&String::from_utf8_lossy(b"ok \xff\xfe end"), 200), "ok \u{FFFD}\u{FFFD} end");
        let long = readable(&"断".repeat(500), 10);
        assert_eq!(long, format!("{}…", "断".repeat(10)));
        assert!(!readable("x\ny\rz\0", 200).contains(['\r', '\n', '\0']));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(100, 1000, 1), Duration::from_millis(100));
        assert_eq!(backoff(100, 1000, 2), Duration::from_millis(200));
        assert_eq!(backoff(100, 1000, 4), Duration::from_millis(800));
        assert_eq!(backoff(100, 1000, 5), Duration::from_millis(1000));
        assert_eq!(backoff(100, 1000, 60), Duration::from_millis(1000));
    }
}
