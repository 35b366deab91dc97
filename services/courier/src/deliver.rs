//! One delivery attempt to one organisation.

use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use xj_bus::signing::HubKey;
use xj_bus::{Bus, TraceParent, headers as h, subjects};
use xj_config::Org;
use xj_mapping::Formats;

/// What a routed message carries that a delivery needs.
pub struct Parcel<'a> {
    pub org: &'a Org,
    pub msg_id: &'a str,
    pub sender: &'a str,
    pub case: &'a str,
    pub attempt: u64,
    pub trace: TraceParent,
    pub body: Bytes,
    /// `application/json` for canonical, the native format's otherwise.
    pub content_type: &'static str,
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

pub enum Outcome {
    Delivered { status: Option<u16>, elapsed: Duration },
    Failed { reason: String, status: Option<u16>, elapsed: Duration },
}

pub async fn attempt(http: &reqwest::Client, bus: &Bus, key: &HubKey, p: &Parcel<'_>) -> Outcome {
    let started = Instant::now();
    let signature = key.sign_header(&p.body);
    if let Some(url) = &p.org.deliver.webhook {
        let resp = http
            .post(url)
            .header("content-type", p.content_type)
            .header(h::MESSAGE_ID, p.msg_id)
            .header(h::CASE, p.case)
            .header(h::ATTEMPT, p.attempt.to_string())
            .header(h::TRACEPARENT, p.trace.header())
            .header(h::SIGNATURE, signature)
            .body(p.body.clone())
            .send()
            .await;
        let elapsed = started.elapsed();
        return match resp {
            Ok(r) if r.status().is_success() => Outcome::Delivered { status: Some(r.status().as_u16()), elapsed },
            Ok(r) => {
                let status = r.status().as_u16();
                let text: String = r.text().await.unwrap_or_default().chars().take(200).collect();
                Outcome::Failed { reason: format!("HTTP {status}: {text}"), status: Some(status), elapsed }
            }
            Err(e) => Outcome::Failed { reason: describe(&e), status: None, elapsed },
        };
    }
    let mut hdr = HeaderMap::new();
    hdr.insert(h::NATS_MSG_ID, format!("{}:{}", p.sender, p.msg_id).as_str());
    hdr.insert(h::MESSAGE_ID, p.msg_id);
    hdr.insert(h::CASE, p.case);
    hdr.insert(h::ATTEMPT, p.attempt.to_string().as_str());
    hdr.insert(h::TRACEPARENT, p.trace.header().as_str());
    hdr.insert(h::SIGNATURE, signature.as_str());
    let res =
        async { bus.js.publish_with_headers(subjects::outbox(&p.org.id), hdr, p.body.clone()).await?.await }.await;
    let elapsed = started.elapsed();
    match res {
        Ok(_) => Outcome::Delivered { status: None, elapsed },
        Err(e) => Outcome::Failed { reason: format!("NATS outbox: {e}"), status: None, elapsed },
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        format!("request failed: {e}")
    }
}

/// Delay before attempt `n + 1`: initial × 2^(n-1), capped.
pub fn backoff(initial_ms: u64, max_ms: u64, attempt: u64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30) as u32;
    Duration::from_millis(initial_ms.saturating_mul(1u64 << exp).min(max_ms))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(100, 1000, 1), Duration::from_millis(100));
        assert_eq!(backoff(100, 1000, 2), Duration::from_millis(200));
        assert_eq!(backoff(100, 1000, 4), Duration::from_millis(800));
        assert_eq!(backoff(100, 1000, 5), Duration::from_millis(1000));
        assert_eq!(backoff(100, 1000, 60), Duration::from_millis(1000));
    }
}
