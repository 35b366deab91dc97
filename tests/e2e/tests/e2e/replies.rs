//! The reply path: a referral reply or outcome names the message it answers
//! (`reply_to`) and no recipient; the hub sends it back to the original
//! sender on the same case. A reply must answer something the replier
//! actually received, and a refusal needs its reason.

use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

use crate::common::{
    WAIT, assert_delivery, assert_error, delivered, hub_key, pointers, routing_hop, sample_reply, total_hits,
    wait_for_case, wait_for_step,
};

/// Market refers a food stall in 东关 to the town; returns the receipt once
/// the town has it.
async fn refer_to_town(hub: &TestHub, id: &str) -> anyhow::Result<Value> {
    let (s, receipt) = hub.submit("qh-market", &sample_clue(id, "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{receipt}");
    delivered(hub, "qh-town-dg", id).await?;
    Ok(receipt)
}

fn ids(case: &Value) -> Vec<String> {
    case["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_goes_back_to_the_original_sender_on_the_same_case() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (kid, pk) = hub_key(&hub).await?;
    let referral = refer_to_town(&hub, "RP-1").await?;
    let case = referral["case"].as_str().unwrap_or_default().to_owned();

    // The town accepts the case: no recipient, only reply_to.
    let reply = sample_reply("DG-RE-1", "qh-town-dg", "RP-1", "accepted", None);
    let (s, receipt) = hub.submit("qh-town-dg", &reply).await?;
    assert_eq!(s, 202, "{receipt}");
    assert_eq!(receipt["case"], case.as_str(), "the reply joins the referral's case");
    let d = delivered(&hub, "qh-market", "DG-RE-1").await?;
    assert_delivery(&d, &receipt, &kid, &pk);
    assert_eq!(d.json["reply_to"], "RP-1");
    assert_eq!(d.json["sender"], "qh-town-dg");
    assert_eq!(d.json["body"]["decision"], "accepted");
    let hop = routing_hop(&wait_for_step(&hub, "DG-RE-1", "routed").await?);
    assert_eq!(hop["detail"]["rule"], "reply", "{hop}");
    assert_eq!(hop["detail"]["recipients"], json!(["qh-market"]), "{hop}");

    // Later the outcome, also by reply_to.
    let outcome = json!({
        "id": "DG-OUT-1",
        "type": "referral_outcome",
        "sender": "qh-town-dg",
        "recipient": null,
        "case": null,
        "reply_to": "RP-1",
        "sent_at": "2026-11-25T16:00:00+08:00",
        "classification": "internal",
        "body": { "result": "责令改正并处罚款", "penalty": { "kind": "fine", "amount": 2000 }, "closed_on": "2026-11-20" }
    });
    let (s, out_receipt) = hub.submit("qh-town-dg", &outcome).await?;
    assert_eq!(s, 202, "{out_receipt}");
    assert_eq!(out_receipt["case"], case.as_str());
    let d = delivered(&hub, "qh-market", "DG-OUT-1").await?;
    assert_eq!(d.header("xj-case"), Some(case.as_str()));

    // The case: three messages between two parties.
    let record = wait_for_case(&hub, &case, 3).await?;
    assert_eq!(ids(&record), vec!["RP-1", "DG-RE-1", "DG-OUT-1"], "{record}");
    let mut parties: Vec<String> = serde_json::from_value(record["parties"].clone())?;
    parties.sort();
    assert_eq!(parties, vec!["qh-market", "qh-town-dg"]);
    let reply_entry = &record["messages"][1];
    assert_eq!(reply_entry["type"], "referral_reply");
    assert_eq!(reply_entry["reply_to"], "RP-1");
    assert_eq!(reply_entry["rule"], "reply");
    assert_eq!(reply_entry["recipients"], json!(["qh-market"]));
    // Both parties and the operator see the case; anybody else does not.
    let path = format!("/v1/cases/{case}");
    for who in [hub.token("qh-market"), hub.token("qh-town-dg"), hub.operator_token()] {
        let (s, b) = hub.get(&path, &who).await?;
        assert_eq!(s, 200, "{b}");
        assert_eq!(ids(&b), ids(&record));
    }
    for outsider in ["qh-town-xs", "qh-eco"] {
        let (s, b) = hub.get(&path, &hub.token(outsider)).await?;
        assert_error(s, &b, 404, "not_found");
    }
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_or_objecting_needs_a_reason() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    refer_to_town(&hub, "RP-2").await?;
    for decision in ["declined", "objected"] {
        let reply = sample_reply(&format!("DG-{decision}"), "qh-town-dg", "RP-2", decision, None);
        let (s, b) = hub.submit("qh-town-dg", &reply).await?;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(pointers(&b), vec!["/body/reason".to_string()], "{b}");
    }
    // An empty reason is no reason either.
    let reply = sample_reply("DG-declined", "qh-town-dg", "RP-2", "declined", Some(""));
    let (s, b) = hub.submit("qh-town-dg", &reply).await?;
    assert_error(s, &b, 422, "invalid");
    assert!(pointers(&b).contains(&"/body/reason".to_string()), "{b}");
    // With its reason the same id goes through.
    let reply = sample_reply("DG-declined", "qh-town-dg", "RP-2", "declined", Some("经核查，该摊点位于西山镇辖区"));
    let (s, b) = hub.submit("qh-town-dg", &reply).await?;
    assert_eq!(s, 202, "{b}");
    let d = delivered(&hub, "qh-market", "DG-declined").await?;
    assert_eq!(d.json["body"]["reason"], "经核查，该摊点位于西山镇辖区");
    assert_eq!(hub.receiver("qh-market").hits(), 1, "the refused replies were not delivered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_must_answer_a_message_the_replier_received() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let referral = refer_to_town(&hub, "RP-3").await?;

    // Nothing with that id ever reached the town.
    let r = sample_reply("DG-RE-3a", "qh-town-dg", "NEVER-SENT", "accepted", None);
    let (s, b) = hub.submit("qh-town-dg", &r).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/reply_to".to_string()], "{b}");
    // RP-3 exists, but went to the other town.
    let r = sample_reply("XS-RE-3", "qh-town-xs", "RP-3", "accepted", None);
    let (s, b) = hub.submit("qh-town-xs", &r).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/reply_to".to_string()], "{b}");
    // The sender cannot answer its own message either.
    let r = sample_reply("MK-RE-3", "qh-market", "RP-3", "accepted", None);
    let (s, b) = hub.submit("qh-market", &r).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/reply_to".to_string()], "{b}");
    // The right message, but a case it does not belong to.
    let mut r = sample_reply("DG-RE-3b", "qh-town-dg", "RP-3", "accepted", None);
    r["case"] = "XJ-20260101-0000000000".into();
    let (s, b) = hub.submit("qh-town-dg", &r).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/case".to_string()], "{b}");
    // Naming the right case is fine; the refused ids are still free.
    r["case"] = referral["case"].clone();
    let (s, b) = hub.submit("qh-town-dg", &r).await?;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["case"], referral["case"]);
    delivered(&hub, "qh-market", "DG-RE-3b").await?;
    let r = sample_reply("DG-RE-3a", "qh-town-dg", "RP-3", "accepted", None);
    let (s, b) = hub.submit("qh-town-dg", &r).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-market", "DG-RE-3a").await?;
    assert_eq!(hub.receiver("qh-market").hits(), 2);
    assert_eq!(hub.receiver("qh-town-xs").hits(), 0);
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_may_copy_others_without_losing_its_thread() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let referral = refer_to_town(&hub, "RP-4").await?;
    // The town objects and copies the coordination office (docs/rules.md, "Disputes").
    let mut r = sample_reply("DG-RE-4", "qh-town-dg", "RP-4", "objected", Some("不属于赋权事项范围"));
    r["recipient"] = json!(["qh-coord", "qh-market"]);
    let (s, b) = hub.submit("qh-town-dg", &r).await?;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["case"], referral["case"]);
    let to_market = delivered(&hub, "qh-market", "DG-RE-4").await?;
    let to_coord = delivered(&hub, "qh-coord", "DG-RE-4").await?;
    for d in [&to_market, &to_coord] {
        assert_eq!(d.header("xj-case"), referral["case"].as_str());
    }
    let case = wait_for_case(&hub, referral["case"].as_str().unwrap_or_default(), 2).await?;
    assert!(case["parties"].as_array().is_some_and(|p| p.contains(&json!("qh-coord"))), "{case}");
    // The office now sees the case; the market is not told twice.
    let (s, _) = hub.get(&format!("/v1/cases/{}", referral["case"].as_str().unwrap()), &hub.token("qh-coord")).await?;
    assert_eq!(s, 200);
    assert_eq!(hub.receiver("qh-market").hits(), 1);
    hub.receiver("qh-coord").wait_for(1, WAIT).await?;
    assert_eq!(total_hits(&hub), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_dots_and_colons_work_end_to_end() -> anyhow::Result<()> {
    // `.` and `:` are allowed in ids but separate NATS subject tokens and KV
    // keys; the hub must keep them apart from the org and step names.
    let hub = TestHub::start("").await?;
    let id = "QH.MR:2026-000.1";
    let receipt = refer_to_town(&hub, id).await?;
    let reply = sample_reply("DG:RE.1", "qh-town-dg", id, "accepted", None);
    let (s, b) = hub.submit("qh-town-dg", &reply).await?;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["case"], receipt["case"]);
    let d = delivered(&hub, "qh-market", "DG:RE.1").await?;
    assert_eq!(d.json["reply_to"], id);
    let t = wait_for_step(&hub, id, "delivered").await?;
    assert_eq!(t["id"], id);
    assert_eq!(t["case"], receipt["case"]);
    // A different id that would collide if `.` were taken literally.
    let (s, t) = crate::common::trace(&hub, "QH.MR", &hub.operator_token()).await?;
    assert_error(s, &t, 404, "not_found");
    let (s, again) = hub.submit("qh-market", &sample_clue(id, "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!((s, &again), (200, &receipt));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_may_join_a_case_only_its_parties_know() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let referral = refer_to_town(&hub, "RP-5").await?;
    let case = referral["case"].clone();
    // The market follows up on its own case with more material.
    let mut more = sample_clue("RP-5b", "qh-market", "FOOD-STALL", "990101101");
    more["case"] = case.clone();
    let (s, b) = hub.submit("qh-market", &more).await?;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["case"], case);
    let d = delivered(&hub, "qh-town-dg", "RP-5b").await?;
    assert_eq!(d.header("xj-case"), case.as_str());
    // An organisation that is not a party cannot attach itself to the case.
    let mut intruder = sample_clue("ECO-5", "qh-eco", "WASTE-DUMP", "990101101");
    intruder["case"] = case.clone();
    let (s, b) = hub.submit("qh-eco", &intruder).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/case".to_string()], "{b}");
    let record = wait_for_case(&hub, case.as_str().unwrap_or_default(), 2).await?;
    assert_eq!(ids(&record), vec!["RP-5", "RP-5b"]);
    assert_eq!(total_hits(&hub), 2);
    Ok(())
}

/// The gateway never waits for the tracker: with no tracker running at all,
/// a case exists for `GET` as soon as its 202 is answered, and the town a
/// referral was just delivered to can send on that case, naming it, at
/// once. An organisation that is no party still sees nothing and cannot
/// join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parties_act_on_a_case_while_the_tracker_is_stopped() -> anyhow::Result<()> {
    use xj::hub::Service;
    let without_tracker = [Service::Gateway, Service::Router, Service::Courier, Service::Ledger];
    let hub = TestHub::start_services("", &without_tracker).await?;
    let (s, receipt) = hub.submit("qh-market", &sample_clue("RYW-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/cases/{case}");
    for caller in [hub.token("qh-market"), hub.operator_token()] {
        let (s, record) = hub.get(&path, &caller).await?;
        assert_eq!(s, 200, "right after the 202: {record}");
        assert_eq!(record["case"], case.as_str());
        assert_eq!(record["status"], "opening", "{record}");
    }
    let (s, b) = hub.get(&path, &hub.token("qh-eco")).await?;
    assert_error(s, &b, 404, "not_found");

    // Delivered to the town: it answers on the case by naming it.
    delivered(&hub, "qh-town-dg", "RYW-1").await?;
    let (s, record) = hub.get(&path, &hub.token("qh-town-dg")).await?;
    assert_eq!((s, &record["status"]), (200, &json!("opening")), "{record}");
    let mut follow = sample_clue("RYW-2", "qh-town-dg", "FOOD-STALL", "990101101");
    follow["type"] = "assistance_request".into();
    follow["recipient"] = "qh-market".into();
    follow["case"] = case.clone().into();
    follow["body"] = json!({ "need": "请协助调取该摊位的营业执照登记信息", "due_basis": "assistance" });
    let (s, b) = hub.submit("qh-town-dg", &follow).await?;
    assert_eq!(s, 202, "the town is party to the case it was delivered: {b}");
    assert_eq!(b["case"], case.as_str());
    delivered(&hub, "qh-market", "RYW-2").await?;
    // Someone else naming the case is still refused.
    let mut intruder = sample_clue("RYW-3", "qh-eco", "WASTE-DUMP", "990101101");
    intruder["case"] = case.clone().into();
    let (s, b) = hub.submit("qh-eco", &intruder).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/case".to_string()], "{b}");
    Ok(())
}

/// The tracker folds a case's events that come together in one read and
/// one write of its record: here each referral's `routed` and `delivered`
/// are stored while no tracker runs, and once it starts every case record
/// is written once, with both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cases_events_that_come_together_are_folded_in_one_write() -> anyhow::Result<()> {
    use xj::hub::Service;
    let without_tracker = [Service::Gateway, Service::Router, Service::Courier, Service::Ledger];
    let hub = TestHub::start_services("", &without_tracker).await?;
    let mut cases = Vec::new();
    for i in 1..=3 {
        let id = format!("FOLD-{i}");
        let (s, r) = hub.submit("qh-market", &sample_clue(&id, "qh-market", "FOOD-STALL", "990101101")).await?;
        assert_eq!(s, 202, "{r}");
        wait_for_step(&hub, &id, "delivered").await?;
        cases.push(r["case"].as_str().unwrap_or_default().to_string());
    }
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let mut records = js.get_stream("KV_xj_cases").await?;
    let before = records.info().await?.state.last_sequence;
    let _tracker = hub.service(Service::Tracker).await?;
    let kv = js.get_key_value("xj_cases").await?;
    for case in &cases {
        xj_testkit::eventually(WAIT, "the case record with its delivery", || async {
            let bytes = kv.get(case).await.ok()??;
            let rec: Value = serde_json::from_slice(&bytes).ok()?;
            let delivered = rec["messages"][0]["delivered"].as_array().is_some_and(|d| !d.is_empty());
            (delivered && rec["messages"][0]["rule"].is_string()).then_some(())
        })
        .await?;
    }
    let after = records.info().await?.state.last_sequence;
    assert_eq!(after - before, 3, "one write per case for its routed and delivered events");
    Ok(())
}
