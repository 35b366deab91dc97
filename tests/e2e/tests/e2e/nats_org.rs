//! An organisation that speaks NATS natively (CONTRACT §4): it publishes on
//! `xj.in.<org>`, reads its answers and deliveries on `xj.out.<org>`.

use xj_bus::headers::Put;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

const AGRI: &str = r#"
[[org]]
id = "qh-agri"
name = "清河县农业农村局"
kind = "agriculture"
region = "990101"
token = "token-qh-agri-0123456789"
deliver = { nats = true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_org_submits_on_its_inbound_subject_and_receives_on_its_outbox() -> anyhow::Result<()> {
    let hub = TestHub::start(AGRI).await?;
    let client = async_nats::connect(hub.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let outbox = js.get_stream("XJ_OUT").await?;
    let consumer = outbox
        .create_consumer(pull::Config {
            durable_name: Some("qh-agri".into()),
            filter_subject: "xj.out.qh-agri".into(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut out = consumer.messages().await?;

    // A referral published on NATS is accepted, answered with a receipt…
    let clue = sample_clue("AG-1", "qh-agri", "FOOD-STALL", "990101101");
    let mut h = async_nats::HeaderMap::new();
    h.put("Nats-Msg-Id", "AG-1");
    js.publish_with_headers("xj.in.qh-agri", h, serde_json::to_vec(&clue)?.into()).await?.await?;
    let answer = next(&mut out).await?;
    let hd = answer.headers.clone().unwrap_or_default();
    assert_eq!(hd.get("Xj-Answer").map(|v| v.as_str()), Some("202"));
    let receipt: Value = serde_json::from_slice(&answer.payload)?;
    assert_eq!(receipt["id"], "AG-1");
    // …and delivered to the town like any other.
    let town = hub.receiver("qh-town-dg").wait_for(1, Duration::from_secs(10)).await?;
    assert_eq!(town[0].json["case"], receipt["case"]);

    // A bad one gets the same located problems as over HTTP, and goes nowhere.
    let mut bad = sample_clue("AG-2", "qh-agri", "FOOD-STALL", "990101101");
    bad["body"]["officers"] = json!([{ "name": "张三", "cert_no": "1" }]);
    js.publish("xj.in.qh-agri", serde_json::to_vec(&bad)?.into()).await?.await?;
    let answer = next(&mut out).await?;
    assert_eq!(answer.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.as_str()), Some("422"));
    let err: Value = serde_json::from_slice(&answer.payload)?;
    assert!(err["details"].as_array().unwrap().iter().any(|d| d["pointer"] == "/body/officers"), "{err}");

    // The town's reply comes back on the outbox, signed, on the same case.
    let reply = json!({
        "id": "DG-R-1", "type": "referral_reply", "sender": "qh-town-dg", "reply_to": "AG-1",
        "sent_at": "2026-11-21T10:00:00+08:00", "classification": "internal",
        "body": { "decision": "accepted", "case_no": "东关立〔2026〕1号" }
    });
    let (status, _) = hub.submit("qh-town-dg", &reply).await?;
    assert_eq!(status, 202);
    let delivered = next(&mut out).await?;
    let hd = delivered.headers.clone().unwrap_or_default();
    assert_eq!(hd.get("Xj-Message-Id").map(|v| v.as_str()), Some("DG-R-1"));
    assert_eq!(hd.get("Xj-Case").map(|v| v.as_str()), receipt["case"].as_str());
    assert!(hd.get("Xj-Signature").is_some());
    let body: Value = serde_json::from_slice(&delivered.payload)?;
    assert_eq!(body["reply_to"], "AG-1");
    assert_eq!(hub.receiver("qh-town-dg").deliveries().len(), 1, "the bad message reached nobody");
    Ok(())
}

async fn next(
    out: &mut async_nats::jetstream::consumer::pull::Stream,
) -> anyhow::Result<async_nats::jetstream::Message> {
    let m = tokio::time::timeout(Duration::from_secs(10), out.next())
        .await?
        .expect("stream open")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(m)
}
