//! NATS intake: organisations with `deliver = { nats = true }` publish
//! canonical messages on `xj.in.<org>` (docs/api.md, "NATS delivery"). They pass through the
//! same [`accept`] as HTTP submissions; the answer — receipt or error, the
//! same JSON as the HTTP body — is published on the org's own `xj.out.<org>`
//! with header `Xj-Answer` = the HTTP status it would have had.

use std::time::Duration;
use xj_bus::headers::Put;

use axum::http::StatusCode;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use xj_bus::consume::{self, Durable};
use xj_bus::{Shutdown, headers as h, subjects};

use crate::accept::accept;
use crate::error::ApiError;
use crate::native::{NativeError, accept_native};
use crate::state::{Caller, GatewayState};

const CONSUMER: &str = "intake";

/// The header of a NATS organisation's receipt: the `XJ_OUT` sequence of
/// the delivery it signs for (its `Xj-Receipt-Signature` beside it).
pub const RECEIPT_FOR: &str = "Xj-Receipt-For";
/// NATS headers are case-sensitive: the receipt's header as documented.
const RECEIPT_SIGNATURE: &str = "Xj-Receipt-Signature";

/// A NATS organisation's signed receipt for the copy at `seq` in its
/// outbox (docs/security.md, "Signed receipts"): checked against the
/// copy's bytes and the organisation's key, and recorded as the copy's
/// `receipted` step. The message id and the answer's body on success.
async fn receipt(
    state: &GatewayState,
    org: &str,
    seq: &str,
    header: Option<&str>,
) -> Result<(String, serde_json::Value), NativeError> {
    let invalid = |header: &'static str, message: String| {
        NativeError::Api(ApiError::Header {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            header,
            message,
        })
    };
    let Some(seq) = seq.trim().parse::<u64>().ok().filter(|s| *s > 0) else {
        return Err(invalid(RECEIPT_FOR, format!("{:?} is not a sequence of your outbox", crate::error::clip(seq))));
    };
    let Some(header) = header else {
        return Err(invalid(
            "Xj-Receipt-Signature",
            "a receipt needs Xj-Receipt-Signature: [alg=sm2,]keyid=…,at=…,sig=…".into(),
        ));
    };
    let Some(o) = state.settings.org(org).filter(|o| o.public_key.is_some()) else {
        return Err(invalid(
            "Xj-Receipt-Signature",
            format!("{org} has no public_key registered to check receipts with"),
        ));
    };
    let outbox =
        state.bus.js.get_stream(subjects::STREAM_OUT).await.map_err(|e| NativeError::Api(ApiError::unavailable(e)))?;
    let copy = match outbox.get_raw_message(seq).await {
        Ok(c) if c.subject.as_str() == subjects::outbox(org) => c,
        Ok(_) | Err(_) => {
            return Err(invalid(RECEIPT_FOR, format!("{seq} is not a delivery in {org}'s outbox (xj.out.{org})")));
        }
    };
    let hd = Some(&copy.headers);
    // The hub's answers in the outbox carry no Xj-Sender: only deliveries do.
    let (Some(id), Some(sender)) = (h::get(hd, h::MESSAGE_ID), h::get(hd, h::SENDER)) else {
        return Err(invalid(RECEIPT_FOR, format!("{seq} is an answer of the hub's, not a delivery")));
    };
    let signed = xj_bus::signing::check_receipt(o, (sender, id), &copy.payload, Some(header))
        .map_err(|e| invalid("Xj-Receipt-Signature", e))?
        .ok_or_else(|| invalid("Xj-Receipt-Signature", "no receipt".into()))?;
    let at = signed.at.clone();
    let stored = crate::inbox::StoredCopy { org, msg: (sender, id), headers: &copy.headers, seq };
    // One receipt per copy: a repeat is the same receipt recorded once.
    let dedup = format!("evt:receipted:{org}:{seq}");
    crate::inbox::copy_step(state, &stored, Some(signed), xj_bus::events::Step::Receipted, &dedup)
        .await
        .map_err(NativeError::Api)?;
    let body = serde_json::json!({ "receipt": "recorded", "for": seq, "sender": sender, "id": id, "at": at });
    Ok((id.to_string(), body))
}

pub async fn run(state: GatewayState, shutdown: Shutdown) -> anyhow::Result<()> {
    let messages = Durable::new(subjects::STREAM_IN, CONSUMER).messages(&state.bus.js).await?;
    consume::run(messages, 64, shutdown, "intake", |m| {
        let state = state.clone();
        async move { handle(&state, m).await }
    })
    .await;
    Ok(())
}

async fn handle(state: &GatewayState, m: Message) {
    let org = m.subject.as_str().trim_start_matches("xj.in.").to_string();
    if state.settings.org(&org).is_none_or(|o| !o.deliver.nats) {
        tracing::warn!(%org, "message on xj.in from an organisation not configured for NATS; dropped by policy");
        let _ = m.ack_with(AckKind::Term).await;
        return;
    }
    if let Some(seq) = h::get(m.headers.as_ref(), RECEIPT_FOR) {
        // Receipts spend from the organisation's one bucket like submissions.
        let result = match crate::trust::spend(state, &Caller::Org(org.clone())) {
            Err(e) => Err(NativeError::Api(e)),
            Ok(()) => receipt(state, &org, seq, h::get(m.headers.as_ref(), RECEIPT_SIGNATURE)).await,
        };
        return answer(state, &org, m, result.map(|(id, body)| (StatusCode::ACCEPTED, id, body)), None).await;
    }
    let tp = h::get(m.headers.as_ref(), h::TRACEPARENT);
    // An organisation with a native format publishes native documents: the
    // same translation as `POST /v1/native` (the adapter for NATS systems).
    let native = state.settings.org(&org).is_some_and(|o| o.format != xj_mapping::CANONICAL);
    // An organisation with a registered key signs what it publishes too.
    let signature = h::get(m.headers.as_ref(), h::SIGNATURE);
    // The limits of `POST /v1/messages` hold here too, in the same order:
    // the organisation's rate (one bucket for both ways in), then its size.
    let who = Caller::Org(org.clone());
    let max = crate::trust::body_limit(state, Some(&who), "/v1/messages");
    let result = if let Err(e) = crate::trust::spend(state, &who) {
        Err(NativeError::Api(e))
    } else if m.payload.len() > max {
        Err(NativeError::Api(ApiError::TooLarge(max)))
    } else if let Err(e) = crate::trust::verify_submission(state, &org, signature, &m.payload) {
        Err(NativeError::Api(e))
    } else if native {
        accept_native(state, &org, &m.payload, tp).await
    } else {
        let signed = crate::trust::signs(state, &org).then_some(signature).flatten();
        accept(state, &org, &m.payload, tp, signed).await.map_err(NativeError::Api)
    };
    let retry_after = match &result {
        Err(NativeError::Api(e)) => e.retry_after(),
        _ => None,
    };
    let result = result.map(|(status, receipt)| {
        let id = receipt.id.clone();
        (status, id, serde_json::to_value(&receipt).unwrap_or_default())
    });
    answer(state, &org, m, result, retry_after).await;
}

/// Publishes the answer to an inbound message on the organisation's outbox
/// and acknowledges it (or, the bus unavailable, asks for it again).
async fn answer(
    state: &GatewayState,
    org: &str,
    m: Message,
    result: Result<(StatusCode, String, serde_json::Value), NativeError>,
    retry_after: Option<u64>,
) {
    let (status, body, id) = match result {
        Ok((status, id, body)) => (status.as_u16(), serde_json::to_vec(&body).unwrap_or_default(), id),
        Err(NativeError::Api(ApiError::Unavailable(reason))) => {
            tracing::warn!(%org, %reason, "intake: bus unavailable, will retry");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            return;
        }
        Err(e) => {
            let id = serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .or_else(|| h::get(m.headers.as_ref(), h::NATS_MSG_ID).map(str::to_owned))
                .unwrap_or_default();
            (e.status().as_u16(), serde_json::to_vec(&e.body()).unwrap_or_default(), id)
        }
    };
    let mut hdr = HeaderMap::new();
    hdr.put("Xj-Answer", status.to_string().as_str());
    hdr.put(h::MESSAGE_ID, id.as_str());
    hdr.put(h::SIGNATURE, state.key.sign_header(&body).as_str());
    if let Some(seconds) = retry_after {
        hdr.put("Retry-After", seconds.to_string().as_str());
    }
    let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
    hdr.put(h::NATS_MSG_ID, format!("answer:{org}:{seq}").as_str());
    let res = async { state.bus.js.publish_with_headers(subjects::outbox(org), hdr, body.into()).await?.await }.await;
    match res {
        Ok(_) => {
            let _ = m.double_ack().await;
        }
        Err(e) => {
            tracing::warn!(%org, error = %e, "intake answer not stored; will retry");
            let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
        }
    }
}
