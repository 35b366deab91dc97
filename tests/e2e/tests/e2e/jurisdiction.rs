//! Jurisdiction by law over a real NATS: criminal thresholds raise alerts,
//! penalties carried for one bureau count for another's referral, the first
//! to open a case keeps it, unplaceable items reach the coordination office,
//! an objection ends in a designation and a re-route, rules reload.

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue, sample_uscc};

const T: Duration = Duration::from_secs(30);

const REPEAT_RULE: &str = r#"
[[matter]]
code = "ILLEGAL-BUSINESS"
name = "非法经营"
competent = "market_regulation"
[matter.crime]
offence = "非法经营罪"
police_unit = "economic"
when = 'facts.turnover >= 50000 || prior_penalties(duration("730d"), "ILLEGAL-BUSINESS") >= 2'
source = "test"
effective = "2010-05-07"
"#;

fn with_facts(mut m: Value, facts: Value) -> Value {
    m["body"]["facts"] = facts;
    m
}

fn penalty(id: &str, sender: &str, uscc: &str, decided_on: &str) -> Value {
    json!({
        "id": id, "type": "info_share", "sender": sender, "sent_at": "2026-11-20T09:00:00+08:00",
        "classification": "internal",
        "body": { "kind": "penalty_decision", "title": "行政处罚决定书", "matter": "ILLEGAL-BUSINESS",
                  "party": { "name": "某商行", "uscc": uscc }, "region": "990101",
                  "decided_on": decided_on, "penalty": { "kind": "fine", "amount": 5000 } }
    })
}

/// Deliveries of supervision alerts of `kind` at `org`.
fn alerts(hub: &TestHub, org: &str, kind: &str) -> Vec<Value> {
    hub.receiver(org)
        .deliveries()
        .into_iter()
        .filter(|d| d.json["type"] == "supervision_alert" && d.json["body"]["kind"] == kind)
        .map(|d| d.json)
        .collect()
}

async fn wait_alert(hub: &TestHub, org: &str, kind: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("{kind} alert at {org}"), || async { alerts(hub, org, kind).into_iter().next() }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_met_alerts_sender_receiver_and_procuratorate() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let below =
        with_facts(sample_clue("C-49999", "qh-town-dg", "PRODUCT-FAKE", "990101101"), json!({ "sales_amount": 49999 }));
    let at =
        with_facts(sample_clue("C-50000", "qh-town-xs", "PRODUCT-FAKE", "990101102"), json!({ "sales_amount": 50000 }));
    assert_eq!(hub.submit("qh-town-dg", &below).await?.0, 202);
    assert_eq!(hub.submit("qh-town-xs", &at).await?.0, 202);
    let to_pro = wait_alert(&hub, "qh-procuratorate", "crime_suspected").await?;
    assert_eq!(to_pro["body"]["about"], "C-50000");
    assert_eq!(to_pro["body"]["rule"]["id"], "crime:PRODUCT-FAKE");
    assert_eq!(to_pro["body"]["rule"]["version"], json!(hub.settings.ruleset_version()));
    assert!(to_pro["body"]["text"].as_str().unwrap().contains("生产、销售伪劣产品罪"), "{to_pro}");
    let to_sender = wait_alert(&hub, "qh-town-xs", "crime_suspected").await?;
    let to_receiver = wait_alert(&hub, "qh-market", "crime_suspected").await?;
    assert_eq!(to_sender["id"], to_receiver["id"]);
    assert_eq!(to_sender["case"], to_pro["case"]);
    // Both referrals reached the market bureau; only one raised an alert.
    hub.receiver("qh-market").wait_for(3, T).await?;
    assert_eq!(alerts(&hub, "qh-market", "crime_suspected").len(), 1);
    assert!(alerts(&hub, "qh-town-dg", "crime_suspected").is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn penalties_imposed_by_other_bureaus_make_a_repeat_offender() -> anyhow::Result<()> {
    let hub = TestHub::start(REPEAT_RULE).await?;
    let uscc = sample_uscc("91990101MA0000123");
    // Two bureaus each fined the same shop once within two years…
    assert_eq!(hub.submit("qh-eco", &penalty("P-1", "qh-eco", &uscc, "2025-06-01")).await?.0, 202);
    assert_eq!(hub.submit("qh-town-dg", &penalty("P-2", "qh-town-dg", &uscc, "2026-03-01")).await?.0, 202);
    // …(each penalty is recorded once its share is routed; wait for both)
    for id in ["P-1", "P-2"] {
        eventually(T, "penalty routed", || async {
            let (s, t) = hub.get(&format!("/v1/messages/{id}/trace"), &hub.operator_token()).await.ok()?;
            (s == 200 && t["hops"].as_array()?.iter().any(|h| h["step"] == "routed")).then_some(())
        })
        .await?;
    }
    // …so a third bureau's referral about a small turnover crosses the line.
    let mut clue =
        with_facts(sample_clue("IB-1", "qh-town-xs", "ILLEGAL-BUSINESS", "990101102"), json!({ "turnover": 100 }));
    clue["body"]["party"]["uscc"] = uscc.clone().into();
    clue["body"]["found_on"] = "2026-11-18".into();
    assert_eq!(hub.submit("qh-town-xs", &clue).await?.0, 202);
    let alert = wait_alert(&hub, "qh-procuratorate", "crime_suspected").await?;
    assert_eq!(alert["body"]["about"], "IB-1");
    assert_eq!(alert["body"]["prior_penalties"], 2);
    // The same referral about another party does not.
    let mut other = clue.clone();
    other["id"] = "IB-2".into();
    other["body"]["party"]["uscc"] = sample_uscc("91990101MA0000456").into();
    assert_eq!(hub.submit("qh-town-xs", &other).await?.0, 202);
    hub.receiver("qh-market").wait_for(3, T).await?; // IB-1, its alert, IB-2
    assert_eq!(alerts(&hub, "qh-procuratorate", "crime_suspected").len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_outside_the_deployment_goes_to_the_coordination_office() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let clue = sample_clue("OUT-1", "qh-market", "FOOD-STALL", "880202101");
    let (status, receipt) = hub.submit("qh-market", &clue).await?;
    assert_eq!(status, 202);
    assert_eq!(receipt["routing"]["status"], "jurisdiction_question");
    assert!(receipt["routing"]["reasons"].to_string().contains("outside"), "{receipt}");
    let alert = wait_alert(&hub, "qh-coord", "jurisdiction_question").await?;
    assert!(alert["body"]["reasons"].to_string().contains("880202101"), "{alert}");
    hub.receiver("qh-coord").wait_for(2, T).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_to_open_a_case_keeps_it() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // A food stall in 西山 (not devolved there) goes to the market bureau,
    // which opens a case (予以立案).
    let first = sample_clue("A25-1", "qh-eco", "FOOD-STALL", "990101102");
    let (_, r1) = hub.submit("qh-eco", &first).await?;
    hub.receiver("qh-market").wait_for(1, T).await?;
    let reply = json!({ "id": "MR-R-1", "type": "referral_reply", "sender": "qh-market", "reply_to": "A25-1",
        "sent_at": "2026-11-21T10:00:00+08:00", "classification": "internal",
        "body": { "decision": "accepted", "case_no": "清市监立〔2026〕8号" } });
    assert_eq!(hub.submit("qh-market", &reply).await?.0, 202);
    hub.receiver("qh-eco").wait_for(1, T).await?;
    // The same stall is then found in 东关, where the power is devolved: the
    // town would be competent, but the market bureau opened first.
    let second = sample_clue("A25-2", "qh-enforce", "FOOD-STALL", "990101101");
    let (_, r2) = hub.submit("qh-enforce", &second).await?;
    let got = eventually(T, "second referral at the market bureau", || async {
        hub.receiver("qh-market").deliveries().into_iter().find(|d| d.json["id"] == "A25-2")
    })
    .await?;
    assert_eq!(got.header("xj-message-id"), Some("A25-2"));
    assert!(hub.receiver("qh-town-dg").deliveries().is_empty(), "the town did not get it");
    let (_, trace) = hub.get("/v1/messages/A25-2/trace", &hub.token("qh-enforce")).await?;
    let routed = trace["hops"].as_array().unwrap().iter().find(|h| h["step"] == "routed").cloned().unwrap();
    assert_eq!(routed["detail"]["rule"], "art25:first-opened/qh-market", "{routed}");
    assert!(routed["detail"]["reasons"].to_string().contains(r1["case"].as_str().unwrap()));
    assert_ne!(r1["case"], r2["case"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objection_ends_in_a_designation_and_a_reroute() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let clue = sample_clue("OBJ-1", "qh-market", "WASTE-DUMP", "990101101");
    let (_, receipt) = hub.submit("qh-market", &clue).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    hub.receiver("qh-town-dg").wait_for(1, T).await?;
    // The town may not pass it on by itself…
    let mut onward = sample_clue("DG-FWD", "qh-town-dg", "WASTE-DUMP", "990101101");
    onward["case"] = case.clone().into();
    onward["recipient"] = "qh-enforce".into();
    let (status, body) = hub.submit("qh-town-dg", &onward).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["pointer"], "/case");
    // …it objects, and the sender is told.
    let objection = json!({ "id": "DG-OBJ", "type": "referral_reply", "sender": "qh-town-dg", "reply_to": "OBJ-1",
        "sent_at": "2026-11-21T10:00:00+08:00", "classification": "internal",
        "body": { "decision": "objected", "reason": "现场位于工业园区，属县级管辖" } });
    assert_eq!(hub.submit("qh-town-dg", &objection).await?.0, 202);
    let told = hub.receiver("qh-market").wait_for(1, T).await?;
    assert_eq!(told[0].json["body"]["decision"], "objected");
    // Only a supervisor designates.
    let designation = json!({ "id": "CO-D-1", "type": "jurisdiction_designation", "sender": "qh-coord",
        "recipient": ["qh-market", "qh-town-dg"], "case": case,
        "sent_at": "2026-11-22T10:00:00+08:00", "classification": "internal",
        "body": { "designated": "qh-enforce", "reason": "综合行政执法局承接该项处罚权" } });
    let mut forged = designation.clone();
    forged["sender"] = "qh-market".into();
    forged["recipient"] = json!(["qh-town-dg"]);
    let (status, body) = hub.submit("qh-market", &forged).await?;
    assert_eq!(status, 422, "{body}");
    // The coordination office designates once the dispute is on record (it
    // holds the step above the parties' negotiation); wait for the tracker.
    eventually(T, "dispute on record", || async {
        let (s, r) = hub.get(&format!("/v1/cases/{case}"), &hub.token("qh-market")).await.ok()?;
        let open = r["clocks"].as_array()?.iter().any(|c| c["name"] == "dispute_negotiation");
        (s == 200 && open).then_some(())
    })
    .await?;
    let (status, body) = hub.submit("qh-coord", &designation).await?;
    assert_eq!(status, 202, "{body}");
    // The designated bureau receives the original referral on the same case,
    // with the designation as the rule, and the designation itself.
    let got = hub.receiver("qh-enforce").wait_for(2, T).await?;
    let original = got.iter().find(|d| d.json["id"] == "OBJ-1").expect("original referral re-routed");
    assert_eq!(original.header("xj-case"), Some(case.as_str()));
    assert_eq!(original.json["body"]["matter"], "WASTE-DUMP");
    assert!(got.iter().any(|d| d.json["type"] == "jurisdiction_designation"));
    // The tracker folds the re-route into the record in its own time.
    eventually(T, "the designated bureau a party of the record", || async {
        let (_, record) = hub.get(&format!("/v1/cases/{case}"), &hub.token("qh-enforce")).await.ok()?;
        record["parties"].as_array()?.contains(&json!("qh-enforce")).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_reload_without_a_restart() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let before = hub.settings.ruleset_version();
    let path = hub.nats.dir.path().join("xianjie.toml");
    let mut text = std::fs::read_to_string(&path)?;
    text = text.replace("devolved_to = [\"990101101\"]\n", "devolved_to = [\"990101101\", \"990101102\"]\n");
    std::fs::write(&path, &text)?;
    let (status, answer) = hub_post(&hub, "/v1/admin/rules/reload").await?;
    assert_eq!(status, 200, "{answer}");
    let after = answer["version"].as_str().unwrap().to_string();
    assert_ne!(after, before);
    assert_eq!(answer["consistent"], true, "{answer}");
    let services: Vec<&str> =
        answer["answers"].as_array().unwrap().iter().filter_map(|a| a["service"].as_str()).collect();
    assert!(services.contains(&"router") && services.contains(&"gateway"), "{answer}");
    // FOOD-STALL is now devolved to 西山 too.
    let clue = sample_clue("RL-1", "qh-eco", "FOOD-STALL", "990101102");
    assert_eq!(hub.submit("qh-eco", &clue).await?.0, 202);
    let got = hub.receiver("qh-town-xs").wait_for(1, T).await?;
    assert_eq!(got[0].json["id"], "RL-1");
    let (_, trace) = hub.get("/v1/messages/RL-1/trace", &hub.operator_token()).await?;
    let routed = trace["hops"].as_array().unwrap().iter().find(|h| h["step"] == "routed").cloned().unwrap();
    assert_eq!(routed["detail"]["rule_version"], after.as_str());
    // A broken file is refused and the version in force stays.
    std::fs::write(&path, text.replace("competent = \"market_regulation\"", "competent = \"no_such_kind\""))?;
    let (status, answer) = hub_post(&hub, "/v1/admin/rules/reload").await?;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["details"].to_string().contains("no_such_kind"), "{answer}");
    Ok(())
}

async fn hub_post(hub: &TestHub, path: &str) -> anyhow::Result<(u16, Value)> {
    let r = hub.http.post(format!("{}{path}", hub.base)).bearer_auth(hub.operator_token()).send().await?;
    let s = r.status().as_u16();
    Ok((s, r.json().await.unwrap_or(Value::Null)))
}
