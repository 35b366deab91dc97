//! An organisation that speaks NATS natively (docs/api.md, "NATS delivery"): it publishes on
//! `xj.in.<org>`, reads its answers and deliveries on `xj.out.<org>`.

use std::time::Duration;
use xj_bus::headers::Put;

use async_nats::jetstream::consumer::{AckPolicy, pull};
use futures::StreamExt;
use serde_json::{Value, json};
use xj_testkit::{NATS_AGRI, TestHub, sample_clue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_org_submits_on_its_inbound_subject_and_receives_on_its_outbox() -> anyhow::Result<()> {
    let hub = TestHub::start(NATS_AGRI).await?;
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

/// Three NATS-native organisations that subscribe to inspection results.
const THREE_SUBSCRIBERS: &str = r#"
[[org]]
id = "qh-agri"
name = "清河县农业农村局"
kind = "agriculture"
region = "990101"
token = "token-qh-agri-0123456789"
deliver = { nats = true }
subscribe = [{ kind = "inspection" }]

[[org]]
id = "qh-transport"
name = "清河县交通运输局"
kind = "transport"
region = "990101"
token = "token-qh-transport-0123456789"
deliver = { nats = true }
subscribe = [{ kind = "inspection" }]

[[org]]
id = "qh-health"
name = "清河县卫生健康委员会"
kind = "health"
region = "990101"
token = "token-qh-health-0123456789"
deliver = { nats = true }
subscribe = [{ kind = "inspection" }]
"#;

/// Every copy of message `id` in `org`'s outbox, read (and acknowledged)
/// through the consumer the hub made for it.
async fn outbox_copies(
    js: &async_nats::jetstream::Context,
    org: &str,
    id: &str,
) -> anyhow::Result<Vec<async_nats::jetstream::Message>> {
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream(org, "XJ_OUT").await.map_err(anyhow::Error::msg)?;
    let mut batch = consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_secs(1))
        .messages()
        .await
        .map_err(anyhow::Error::msg)?;
    let mut copies = Vec::new();
    while let Some(m) = batch.next().await {
        let m = m.map_err(anyhow::Error::msg)?;
        m.ack().await.map_err(anyhow::Error::msg)?;
        if m.headers.as_ref().and_then(|h| h.get("Xj-Message-Id")).map(|v| v.as_str()) == Some(id) {
            copies.push(m);
        }
    }
    Ok(copies)
}

/// Waits until the operator's trace of `id` says delivered to each of
/// `orgs`; returns those hops by recipient.
async fn delivered_hops(hub: &TestHub, id: &str, orgs: &[&str]) -> anyhow::Result<Vec<(String, Value)>> {
    let op = hub.operator_token();
    xj_testkit::eventually(Duration::from_secs(20), &format!("{id} delivered to {orgs:?}"), || async {
        let (s, t) = hub.get(&format!("/v1/messages/{id}/trace"), &op).await.ok()?;
        let hops: Vec<(String, Value)> = t["hops"]
            .as_array()?
            .iter()
            .filter(|h| h["step"] == "delivered")
            .map(|h| (h["detail"]["recipient"].as_str().unwrap_or_default().to_string(), h.clone()))
            .collect();
        (s == 200 && orgs.iter().all(|o| hops.iter().any(|(r, _)| r == o))).then_some(hops)
    })
    .await
}

/// Each of `orgs` holds exactly one copy of `id`, stored under an identity
/// naming it, and the trace's `delivered` hop for it points at that copy.
async fn one_copy_each(hub: &TestHub, id: &str, sender: &str, orgs: &[&str]) -> anyhow::Result<()> {
    let hops = delivered_hops(hub, id, orgs).await?;
    let client = async_nats::connect(hub.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("XJ_OUT").await?;
    for org in orgs {
        let mine: Vec<&Value> = hops.iter().filter(|(r, _)| r == org).map(|(_, h)| h).collect();
        assert_eq!(mine.len(), 1, "{org}: one delivered hop: {hops:?}");
        // The trace says delivered for a copy the outbox really holds.
        let seq = mine[0]["detail"]["outbox_seq"].as_u64().expect("the delivered hop names the stored copy");
        let stored = stream.get_raw_message(seq).await?;
        assert_eq!(stored.subject.as_str(), format!("xj.out.{org}"));
        assert_eq!(stored.headers.get("Xj-Message-Id").map(|v| v.as_str()), Some(id));
        let copies = outbox_copies(&js, org, id).await?;
        assert_eq!(copies.len(), 1, "{org} got {} copies of {id}", copies.len());
        let hd = copies[0].headers.clone().unwrap_or_default();
        assert_eq!(hd.get("Nats-Msg-Id").map(|v| v.to_string()), Some(format!("{sender}:{id}:{org}")));
        assert!(hd.get("Xj-Signature").is_some(), "{org}: signed");
        let body: Value = serde_json::from_slice(&copies[0].payload)?;
        assert_eq!(body["id"], id);
    }
    Ok(())
}

/// One information share reaches three NATS-native subscribers: each gets
/// its copy. (Copies stored as `<sender>:<id>` alone were repeats of each
/// other to the outbox stream: the second and third were dropped inside
/// the 10-minute duplicate window while the trace said delivered.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_reaches_three_nats_native_recipients_once_each() -> anyhow::Result<()> {
    let hub = TestHub::start(THREE_SUBSCRIBERS).await?;
    let share = json!({
        "id": "INSP-3", "type": "info_share", "sender": "qh-market", "sent_at": "2026-11-20T09:00:00+08:00",
        "classification": "internal",
        "body": { "kind": "inspection", "title": "2026年第四季度双随机抽查结果", "region": "990101" }
    });
    let (status, receipt) = hub.submit("qh-market", &share).await?;
    assert_eq!(status, 202, "{receipt}");
    one_copy_each(&hub, "INSP-3", "qh-market", &["qh-agri", "qh-transport", "qh-health"]).await?;
    // The stream holds those three and no other copy of the message.
    let client = async_nats::connect(hub.nats.url()).await?;
    let mut out = async_nats::jetstream::new(client).get_stream("XJ_OUT").await?;
    assert_eq!(out.info().await?.state.messages, 3, "three copies in the outbox stream");
    Ok(())
}

/// The issue's own case: a criminal hand-off to a NATS-native police unit
/// with the procuratorate, NATS-native too, copied. Both get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_reaches_a_nats_native_police_unit_and_procuratorate() -> anyhow::Result<()> {
    let native = ["qh-police-econ", "qh-procuratorate"];
    let hub = TestHub::start_custom(
        |county| {
            let mut org = String::new();
            let mut out = String::new();
            for line in county.lines() {
                if let Some(id) = line.strip_prefix("id = ") {
                    org = id.trim_matches('"').to_string();
                }
                if line.starts_with("deliver = ") && native.contains(&org.as_str()) {
                    out.push_str("deliver = { nats = true }\n");
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
            out
        },
        false,
    )
    .await?;
    let handoff = xj_testkit::sample_handoff("HO-NATS-1");
    let (status, receipt) = hub.submit("qh-market", &handoff).await?;
    assert_eq!(status, 202, "{receipt}");
    one_copy_each(&hub, "HO-NATS-1", "qh-market", &native).await?;
    Ok(())
}

/// A NATS organisation signs its receipt for a delivery by publishing it on
/// `xj.in.<org>` with `Xj-Receipt-For` (the copy's `XJ_OUT` sequence) and
/// `Xj-Receipt-Signature` (docs/security.md, "Signed receipts"): checked
/// against the copy's bytes and its key, answered on its outbox, recorded
/// as the copy's `receipted` step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_org_signs_its_receipt_on_its_inbound_subject() -> anyhow::Result<()> {
    use xj_bus::signing::{Alg, HubKey};
    let key = HubKey::generate(Alg::Ed25519);
    let extra = format!(
        "[[org]]\nid = \"qh-agri\"\nname = \"清河县农业农村局\"\nkind = \"agriculture\"\nregion = \"990101\"\n\
         token = \"token-qh-agri-0123456789\"\ndeliver = {{ nats = true }}\npublic_key = \"{}\"\nsign_receipts = true\n",
        key.public_key_b64()
    );
    let hub = TestHub::start(&extra).await?;
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream("qh-agri", "XJ_OUT").await.map_err(anyhow::Error::msg)?;
    let mut out = consumer.messages().await?;
    let mut clue = sample_clue("NR-1", "qh-market", "FOOD-STALL", "990101101");
    clue["recipient"] = "qh-agri".into();
    let (s, r) = hub.submit("qh-market", &clue).await?;
    assert_eq!(s, 202, "{r}");
    let copy = next(&mut out).await?;
    let seq = copy.info().map_err(anyhow::Error::msg)?.stream_sequence;
    let at = chrono::Utc::now().to_rfc3339();
    let sign =
        |k: &HubKey| xj_bus::signing::sign_receipt(k, "agri-1", ("qh-market", "NR-1"), "qh-agri", &copy.payload, &at);
    let send = |for_seq: String, sig: String| {
        let js = js.clone();
        async move {
            let mut h = async_nats::HeaderMap::new();
            h.put("Xj-Receipt-For", for_seq.as_str());
            h.put("Xj-Receipt-Signature", sig.as_str());
            js.publish_with_headers("xj.in.qh-agri", h, Vec::new().into()).await?.await?;
            anyhow::Ok(())
        }
    };
    let answer = |m: &async_nats::jetstream::Message| {
        let status = m.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.to_string()).unwrap_or_default();
        (status, String::from_utf8_lossy(&m.payload).to_string())
    };

    // Forged: refused, naming the header.
    send(seq.to_string(), sign(&HubKey::generate(Alg::Ed25519))).await?;
    let (status, body) = answer(&next(&mut out).await?);
    assert_eq!(status, "422", "{body}");
    assert!(body.contains("Xj-Receipt-Signature") && body.contains("does not verify"), "{body}");
    // For something that is not its delivery (the answer just read): refused.
    send((seq + 1).to_string(), sign(&key)).await?;
    let (status, body) = answer(&next(&mut out).await?);
    assert_eq!(status, "422", "{body}");
    assert!(body.contains("Xj-Receipt-For"), "{body}");
    // Its own, for its copy: recorded.
    send(seq.to_string(), sign(&key)).await?;
    let (status, body) = answer(&next(&mut out).await?);
    assert_eq!(status, "202", "{body}");
    let receipted = xj_testkit::eventually(Duration::from_secs(20), "the receipted step", || async {
        let (_, t) = hub.get("/v1/messages/NR-1/trace", &hub.token("qh-market")).await.ok()?;
        t["hops"].as_array()?.iter().find(|h| h["step"] == "receipted").cloned()
    })
    .await?;
    let r = &receipted["detail"]["receipt"];
    assert_eq!((r["keyid"].as_str(), r["alg"].as_str()), (Some("agri-1"), Some("ed25519")), "{receipted}");
    assert_eq!(receipted["detail"]["outbox_seq"], seq);
    assert_eq!(r["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&copy.payload)));
    Ok(())
}
