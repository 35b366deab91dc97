//! Routing through real HTTP and real webhooks: devolved matters (赋权) to
//! the town that holds the power, everything else to the county's competent
//! bureau, the jurisdiction question when the sender is itself competent,
//! and explicit recipients. Also what each delivery carries (docs/api.md, "Delivery").

use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

use crate::common::{
    WAIT, assert_delivery, delivered, hub_key, routing_hop, total_deliveries, total_hits, wait_for_case, wait_for_step,
};

/// Submits `msg` as its sender, waits until each org in `to` has it, and
/// checks the routing decision recorded in the trace. Returns the receipt.
async fn expect_route(hub: &TestHub, msg: &Value, to: &[&str], rule: &str) -> anyhow::Result<Value> {
    let sender = msg["sender"].as_str().unwrap_or_default();
    let id = msg["id"].as_str().unwrap_or_default();
    let (status, receipt) = hub.submit(sender, msg).await?;
    assert_eq!(status, 202, "{id}: {receipt}");
    let (kid, pk) = hub_key(hub).await?;
    for org in to {
        let d = delivered(hub, org, id).await?;
        assert_delivery(&d, &receipt, &kid, &pk);
    }
    let step = if rule == "jurisdiction-question" { "unplaced" } else { "routed" };
    let trace = wait_for_step(hub, id, step).await?;
    let hop = routing_hop(&trace);
    assert_eq!(hop["detail"]["rule"], rule, "{id}: {hop}");
    assert_eq!(hop["detail"]["rule_version"], hub.settings.ruleset_version(), "{hop}");
    let mut recipients: Vec<String> = hop["detail"]["recipients"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    recipients.sort();
    let mut want: Vec<String> = to.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(recipients, want, "{id}: {hop}");
    Ok(receipt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devolved_matter_goes_to_the_town_that_holds_the_power() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // FOOD-STALL is devolved to 990101101 (东关) only.
    let in_dg = sample_clue("R-FS-DG", "qh-market", "FOOD-STALL", "990101101");
    expect_route(&hub, &in_dg, &["qh-town-dg"], "matter:FOOD-STALL/devolved:990101101").await?;
    // The same matter in the other town stays with the county bureau.
    let in_xs = sample_clue("R-FS-XS", "qh-town-xs", "FOOD-STALL", "990101102");
    expect_route(&hub, &in_xs, &["qh-market"], "matter:FOOD-STALL/competent:market_regulation").await?;
    assert_eq!(total_deliveries(&hub), 2);
    assert_eq!(total_hits(&hub), 2, "no stray or repeated delivery");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waste_dumping_goes_to_whichever_town_it_happened_in() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // WASTE-DUMP is devolved to both towns; at county level it is the
    // ecology bureau's.
    let dg = sample_clue("R-WD-DG", "qh-market", "WASTE-DUMP", "990101101");
    expect_route(&hub, &dg, &["qh-town-dg"], "matter:WASTE-DUMP/devolved:990101101").await?;
    let xs = sample_clue("R-WD-XS", "qh-market", "WASTE-DUMP", "990101102");
    expect_route(&hub, &xs, &["qh-town-xs"], "matter:WASTE-DUMP/devolved:990101102").await?;
    let county = sample_clue("R-WD-CTY", "qh-market", "WASTE-DUMP", "990101");
    expect_route(&hub, &county, &["qh-eco"], "matter:WASTE-DUMP/competent:ecology_environment").await?;
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matter_not_devolved_goes_to_the_competent_bureau() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // Found in a town, but PRODUCT-FAKE is devolved nowhere.
    let msg = sample_clue("R-PF-1", "qh-town-dg", "PRODUCT-FAKE", "990101101");
    expect_route(&hub, &msg, &["qh-market"], "matter:PRODUCT-FAKE/competent:market_regulation").await?;
    let from_eco = sample_clue("R-PF-2", "qh-eco", "PRODUCT-FAKE", "990101");
    expect_route(&hub, &from_eco, &["qh-market"], "matter:PRODUCT-FAKE/competent:market_regulation").await?;
    assert_eq!(total_hits(&hub), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_competent_sender_raises_a_jurisdiction_question() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // The market bureau refers a matter that is its own: nobody else can be
    // placed, so the coordination office decides (首接责任: never dropped).
    let msg = sample_clue("R-Q-1", "qh-market", "PRODUCT-FAKE", "990101");
    let receipt = expect_route(&hub, &msg, &["qh-coord"], "jurisdiction-question").await?;
    let trace = wait_for_step(&hub, "R-Q-1", "unplaced").await?;
    let reasons = routing_hop(&trace)["detail"]["reasons"].to_string();
    assert!(reasons.contains("competent"), "{reasons}");
    // The case exists and the office is a party to it.
    let case = receipt["case"].as_str().unwrap_or_default();
    let record = wait_for_case(&hub, case, 1).await?;
    assert!(record["parties"].as_array().is_some_and(|p| p.contains(&json!("qh-coord"))), "{record}");
    // The receipt says so, and the office and the sender are both told by a
    // jurisdiction_question alert naming the reasons; the referral itself is
    // not sent back to its sender.
    assert_eq!(receipt["routing"]["status"], "jurisdiction_question", "{receipt}");
    assert_eq!(receipt["routing"]["to"], json!(["qh-coord"]));
    // A repeat is answered from the stored message: the first receipt,
    // its routing preview too.
    let (s, again) = hub.submit("qh-market", &msg).await?;
    assert_eq!((s, &again), (200, &receipt));
    let alerts = hub.receiver("qh-market").wait_for(1, std::time::Duration::from_secs(10)).await?;
    assert_eq!(alerts[0].json["type"], "supervision_alert");
    assert_eq!(alerts[0].json["body"]["kind"], "jurisdiction_question");
    assert_eq!(alerts[0].json["body"]["about"], "R-Q-1");
    assert_eq!(alerts[0].json["body"]["rule"]["version"], json!(hub.settings.ruleset_version()));
    let office = hub.receiver("qh-coord").wait_for(2, std::time::Duration::from_secs(10)).await?;
    let mut kinds: Vec<&str> = office.iter().filter_map(|d| d.json["type"].as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["clue_referral", "supervision_alert"]);
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_recipient_is_honoured() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // The catalogue would pick the town; the sender names the comprehensive
    // enforcement bureau instead.
    let mut one = sample_clue("R-EX-1", "qh-market", "FOOD-STALL", "990101101");
    one["recipient"] = json!("qh-enforce");
    expect_route(&hub, &one, &["qh-enforce"], "explicit").await?;
    let mut many = sample_clue("R-EX-2", "qh-market", "FOOD-STALL", "990101101");
    many["recipient"] = json!(["qh-enforce", "qh-eco"]);
    expect_route(&hub, &many, &["qh-enforce", "qh-eco"], "explicit").await?;
    assert_eq!(hub.receiver("qh-town-dg").hits(), 0);
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_signed_and_continues_the_callers_trace() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (kid, pk) = hub_key(&hub).await?;
    let msg = sample_clue("R-SIG-1", "qh-market", "FOOD-STALL", "990101101");
    // The departmental system sends its own W3C trace context.
    let theirs = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = hub
        .http
        .post(format!("{}/v1/messages", hub.base))
        .bearer_auth(hub.token("qh-market"))
        .header("content-type", "application/json")
        .header("traceparent", theirs)
        .body(serde_json::to_vec(&msg)?)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 202);
    let receipt: Value = r.json().await?;
    assert_eq!(receipt["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(receipt["id"], "R-SIG-1");
    assert!(receipt["case"].as_str().is_some_and(|c| c.starts_with("XJ-")), "{receipt}");
    assert!(receipt["accepted_at"].is_string(), "{receipt}");

    let got = hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    let d = &got[0];
    assert_delivery(d, &receipt, &kid, &pk);
    assert_eq!(d.header("xj-delivery-attempt"), Some("1"));
    let tp = d.header("traceparent").unwrap_or_default();
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
    assert!(!tp.contains("00f067aa0ba902b7"), "each hop has its own span: {tp}");
    // The signature covers the exact body: one changed byte breaks it.
    let mut tampered = d.body.to_vec();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    let sig = d.header("xj-signature").unwrap_or_default();
    assert!(xj_bus::signing::verify_header(&pk, sig, &tampered).is_err());
    // The body is what was sent, plus the case the hub assigned.
    let mut sent = msg.clone();
    sent["case"] = receipt["case"].clone();
    assert_eq!(d.json, sent);
    Ok(())
}
