//! The read side through real HTTP: a message's trace (each hop with its
//! rule and delivery), a case's record, and who may see them — the parties
//! and operators, while anybody else gets the same 404 as for nothing at
//! all. Also the public key, liveness and metrics.

use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

use crate::common::{WAIT, assert_error, delivered, hub_key, steps, trace, wait_for_case, wait_for_step};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_shows_each_hop_to_the_parties_only() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let msg = sample_clue("T-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, receipt) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{receipt}");
    delivered(&hub, "qh-town-dg", "T-1").await?;
    wait_for_step(&hub, "T-1", "delivered").await?;

    for who in ["qh-market", "qh-town-dg"] {
        let (s, t) = trace(&hub, "T-1", &hub.token(who)).await?;
        assert_eq!(s, 200, "{who}: {t}");
        assert_eq!(steps(&t), ["accepted", "routed", "delivered"], "{who}: {t}");
        assert_eq!(t["id"], "T-1");
        assert_eq!(t["sender"], "qh-market");
        assert_eq!(t["case"], receipt["case"]);
        assert_eq!(t["type"], "clue_referral");
        assert_eq!(t["trace_id"], receipt["trace_id"]);
        let hops = t["hops"].as_array().unwrap();
        let mut last = String::new();
        for h in hops {
            assert_eq!(h["trace_id"], receipt["trace_id"], "one trace end to end: {h}");
            assert_eq!(h["msg_id"], "T-1");
            let at = h["at"].as_str().unwrap_or_default().to_owned();
            assert!(at >= last, "hops in time order: {t}");
            last = at;
        }
        let spans: std::collections::HashSet<&str> = hops.iter().filter_map(|h| h["span_id"].as_str()).collect();
        assert_eq!(spans.len(), hops.len(), "each hop has its own span: {t}");
        let accepted = &hops[0];
        assert_eq!(accepted["service"], "gateway");
        assert_eq!(accepted["detail"]["accepted_at"], receipt["accepted_at"]);
        let routed = &hops[1];
        assert_eq!(routed["service"], "router");
        assert_eq!(routed["detail"]["rule"], "matter:FOOD-STALL/devolved:990101101");
        assert_eq!(routed["detail"]["rule_version"], hub.settings.ruleset_version());
        assert!(routed["detail"]["reasons"].as_array().is_some_and(|r| !r.is_empty()), "{routed}");
        let done = &hops[2];
        assert_eq!(done["service"], "courier");
        assert_eq!(done["detail"]["recipient"], "qh-town-dg");
        assert_eq!(done["detail"]["attempt"], 1);
        assert_eq!(done["detail"]["status"], 200);
    }
    let (s, t) = trace(&hub, "T-1", &hub.operator_token()).await?;
    assert_eq!(s, 200, "{t}");
    assert_eq!(steps(&t), ["accepted", "routed", "delivered"]);

    // Not a party: the same answer as for a message that does not exist.
    let (s, not_party) = trace(&hub, "T-1", &hub.token("qh-eco")).await?;
    assert_error(s, &not_party, 404, "not_found");
    let (s, nothing) = trace(&hub, "T-NONE", &hub.token("qh-eco")).await?;
    assert_error(s, &nothing, 404, "not_found");
    let (s, b) = trace(&hub, "T-NONE", &hub.operator_token()).await?;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = trace(&hub, "T-1", "wrong-token").await?;
    assert_error(s, &b, 401, "unauthorized");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sender_sees_only_its_own_message_under_a_shared_id() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (s, a) = hub.submit("qh-market", &sample_clue("T-SAME", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{a}");
    let (s, b) = hub.submit("qh-eco", &sample_clue("T-SAME", "qh-eco", "WASTE-DUMP", "990101102")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "T-SAME").await?;
    delivered(&hub, "qh-town-xs", "T-SAME").await?;
    let op = hub.operator_token();
    crate::common::eventually_steps(&hub, "T-SAME", &op, 6).await?;

    for (who, sender, case) in [
        ("qh-market", "qh-market", &a["case"]),
        ("qh-town-dg", "qh-market", &a["case"]),
        ("qh-eco", "qh-eco", &b["case"]),
        ("qh-town-xs", "qh-eco", &b["case"]),
    ] {
        let (s, t) = trace(&hub, "T-SAME", &hub.token(who)).await?;
        assert_eq!(s, 200, "{who}: {t}");
        assert_eq!(t["sender"], sender, "{who}: {t}");
        assert_eq!(&t["case"], case, "{who}: {t}");
        for h in t["hops"].as_array().unwrap() {
            assert_eq!(h["sender"], sender, "{who} sees only its message: {t}");
        }
    }
    let (s, t) = trace(&hub, "T-SAME", &hub.token("qh-police-econ")).await?;
    assert_error(s, &t, 404, "not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_is_visible_to_its_parties_and_operators_only() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (s, receipt) = hub.submit("qh-market", &sample_clue("C-1", "qh-market", "WASTE-DUMP", "990101102")).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_owned();
    let record = wait_for_case(&hub, &case, 1).await?;
    assert_eq!(record["case"], case.as_str());
    assert!(record["status"].as_str().is_some_and(|s| !s.is_empty()), "{record}");
    assert!(record["opened_at"].as_str().is_some_and(|s| !s.is_empty()), "{record}");
    assert_eq!(record["parties"], json!(["qh-market", "qh-town-xs"]));
    let m = &record["messages"][0];
    assert_eq!(m["id"], "C-1");
    assert_eq!(m["type"], "clue_referral");
    assert_eq!(m["sender"], "qh-market");
    assert_eq!(m["recipients"], json!(["qh-town-xs"]));
    assert_eq!(m["rule"], "matter:WASTE-DUMP/devolved:990101102");
    assert_eq!(m["rule_version"], hub.settings.ruleset_version());

    let path = format!("/v1/cases/{case}");
    for party in ["qh-market", "qh-town-xs"] {
        let (s, b) = hub.get(&path, &hub.token(party)).await?;
        assert_eq!(s, 200, "{party}: {b}");
        // The same case (the tracker may have added to it meanwhile, e.g.
        // that the message was delivered).
        assert_eq!(b["case"], record["case"], "{party}: {b}");
        assert_eq!(b["parties"], record["parties"], "{party}: {b}");
        assert_eq!(b["messages"][0]["id"], "C-1", "{party}: {b}");
    }
    // Another town, another bureau, the police: not parties.
    for outsider in ["qh-town-dg", "qh-eco", "qh-police-econ"] {
        let (s, b) = hub.get(&path, &hub.token(outsider)).await?;
        assert_error(s, &b, 404, "not_found");
    }
    let (s, b) = hub.get("/v1/cases/XJ-20260101-0000000000", &hub.operator_token()).await?;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = hub.get("/v1/cases/..%2F..%2Fetc", &hub.operator_token()).await?;
    assert_error(s, &b, 404, "not_found");
    let (s, b) = hub.get(&path, "").await?;
    assert_error(s, &b, 401, "unauthorized");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_health_and_metrics_are_served() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (kid, pk) = hub_key(&hub).await?;
    assert_eq!(kid.len(), 16, "{kid}");
    // 32 bytes (Ed25519) or the 65-byte SM2 point, in base64.
    let want = if hub.settings.hub.signature == xj_bus::signing::Alg::Sm2 { 88 } else { 44 };
    assert_eq!(pk.len(), want, "{pk}");

    let (s, b) = hub.get("/healthz", "").await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "ok");

    let (s, receipt) = hub.submit("qh-market", &sample_clue("M-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{receipt}");
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    wait_for_step(&hub, "M-1", "delivered").await?;
    let text = hub.http.get(format!("{}/metrics", hub.base)).send().await?.text().await?;
    for name in ["xj_messages_accepted_total", "xj_routing_decisions_total", "xj_delivery_attempts_total"] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("xj_gateway_submit_seconds")
            && l.contains("format=\"canonical\"")
            && l.contains("status=\"202\"")),
        "submission latency by status and format missing from /metrics:\n{text}"
    );
    // The receipt itself is signed by the same key.
    let r = hub
        .http
        .post(format!("{}/v1/messages", hub.base))
        .bearer_auth(hub.token("qh-market"))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&sample_clue("M-1", "qh-market", "FOOD-STALL", "990101101"))?)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    let sig = r.headers().get("xj-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = r.bytes().await?;
    xj_bus::signing::verify_header(&pk, &sig, &body).map_err(anyhow::Error::msg)?;
    assert_eq!(serde_json::from_slice::<Value>(&body)?, receipt);
    Ok(())
}
