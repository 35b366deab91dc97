//! NATS intake: organisations with `deliver = { nats = true }` publish
//! canonical messages on `xj.in.<org>` (docs/api.md, "NATS delivery"). They pass through the
//! same [`accept`] as HTTP submissions; the answer — receipt or error, the
//! same JSON as the HTTP body — is published on the org's own `xj.out.<org>`
//! with header `Xj-Answer` = the HTTP status it would have had.

use std::time::Duration;
use xj_bus::headers::Put;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use xj_bus::consume::{self, Durable};
use xj_bus::{Shutdown, headers as h, subjects};

use crate::accept::accept;
use crate::error::ApiError;
use crate::native::{NativeError, accept_native};
use crate::state::{Caller, GatewayState};

const CONSUMER: &str = "intake";

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
        accept(state, &org, &m.payload, tp).await.map_err(NativeError::Api)
    };
    let retry_after = match &result {
        Err(NativeError::Api(e)) => e.retry_after(),
        _ => None,
    };
    let (status, body, id) = match result {
        Ok((status, receipt)) => (status.as_u16(), serde_json::to_vec(&receipt).unwrap_or_default(), receipt.id),
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
    let res = async { state.bus.js.publish_with_headers(subjects::outbox(&org), hdr, body.into()).await?.await }.await;
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
