//! The administrative-to-criminal hand-off and the statutory clocks, on a
//! real NATS with the manual clock (docs/clocks.md).

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

const T: Duration = Duration::from_secs(30);

/// Thursday 24 September 2026, 10:00 in China: the day before the
/// Mid-Autumn holiday, a week before National Day.
const MANUAL: &str = "[clock]\nmode = \"manual\"\nstart = \"2026-09-24T10:00:00+08:00\"\n";

fn handoff(id: &str) -> Value {
    xj_testkit::sample_handoff(id)
}

/// The environment bureau's penalty decision (a fine) on `party`, with no
/// recipient beyond the town and `case` only when given.
fn eco_fine(id: &str, party: &Value, case: Option<&str>) -> Value {
    let mut m = json!({ "id": id, "type": "info_share", "sender": "qh-eco",
        "recipient": ["qh-town-dg"], "sent_at": "2026-09-24T12:00:00+08:00", "classification": "internal",
        "body": { "kind": "penalty_decision", "title": "行政处罚决定书", "matter": "HAZWASTE", "region": "990101101",
                  "party": party, "decided_on": "2026-09-24",
                  "penalty": { "kind": "fine", "amount": 100000 } } });
    if let Some(case) = case {
        m["case"] = case.into();
    }
    m
}

fn answer(id: &str, kind: &str, sender: &str, reply_to: &str, body: Value) -> Value {
    json!({ "id": id, "type": kind, "sender": sender, "reply_to": reply_to,
            "sent_at": "2026-09-24T12:00:00+08:00", "classification": "internal", "body": body })
}

async fn advance(hub: &TestHub, by: &str) -> anyhow::Result<()> {
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": by })).await?;
    anyhow::ensure!(s == 200, "advance {by}: {s} {b}");
    Ok(())
}

async fn case_of(hub: &TestHub, case: &str) -> anyhow::Result<Value> {
    let (s, v) = hub.get(&format!("/v1/cases/{case}"), &hub.operator_token()).await?;
    anyhow::ensure!(s == 200, "{s} {v}");
    Ok(v)
}

fn clock<'a>(case: &'a Value, name: &str) -> Option<&'a Value> {
    case["clocks"].as_array()?.iter().find(|c| c["name"] == name)
}

async fn wait_clock(hub: &TestHub, case: &str, name: &str, status: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("clock {name} {status}"), || async {
        let c = case_of(hub, case).await.ok()?;
        clock(&c, name).filter(|k| k["status"] == status).cloned()
    })
    .await
}

fn alerts(hub: &TestHub, org: &str, kind: &str) -> Vec<Value> {
    hub.receiver(org)
        .deliveries()
        .into_iter()
        .filter(|d| d.json["type"] == "supervision_alert" && d.json["body"]["kind"] == kind)
        .map(|d| d.json)
        .collect()
}

async fn wait_alert(hub: &TestHub, org: &str, kind: &str, clock_name: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("{kind} {clock_name} at {org}"), || async {
        alerts(hub, org, kind).into_iter().find(|a| a["body"]["clock"]["name"] == clock_name)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_reaches_police_and_procuratorate_and_the_filing_clock_goes_overdue_at_three_days()
-> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let (s, receipt) = hub.submit("qh-market", &handoff("HO-1")).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap().to_string();
    // The economic-crime unit and, copied, the procuratorate.
    let police = hub.receiver("qh-police-econ").wait_for(1, T).await?;
    let pro = hub.receiver("qh-procuratorate").wait_for(1, T).await?;
    assert_eq!(police[0].json["id"], "HO-1");
    assert_eq!(pro[0].json["id"], "HO-1");
    assert!(hub.receiver("qh-police-fde").deliveries().is_empty());
    let filing = wait_clock(&hub, &case, "police_filing", "running").await?;
    assert_eq!(filing["owner"], "qh-police-econ");
    assert_eq!(filing["unit"], "calendar_days");
    assert!(filing["basis"].as_str().unwrap().contains("第八条"));
    // Three days from Thursday the 24th, the day of delivery not counted:
    // the last, the 27th, is in the Mid-Autumn holiday (25th–27th), so the
    // period runs to the end of Monday the 28th (刑事诉讼法 art. 105).
    assert_eq!(filing["due"], "2026-09-28T15:59:59Z", "to 24:00 +08:00 of the first working day after the holiday");
    // Decree 310 art. 5 from the letter's dates: reported 21st, approved 22nd: on time.
    let c = case_of(&hub, &case).await?;
    assert_eq!(clock(&c, "handoff_approval").unwrap()["status"], "met");
    // The police sign the receipt.
    let r = answer(
        "PO-R-1",
        "handoff_receipt",
        "qh-police-econ",
        "HO-1",
        json!({ "received_at": "2026-09-24T10:05:00+08:00" }),
    );
    assert_eq!(hub.submit("qh-police-econ", &r).await?.0, 202);
    wait_clock(&hub, &case, "police_receipt", "met").await?;
    // A day before the end, a reminder to the police; at the end, overdue,
    // and the procuratorate is told.
    advance(&hub, "P3DT14H").await?;
    wait_alert(&hub, "qh-police-econ", "reminder", "police_filing").await?;
    assert!(alerts(&hub, "qh-procuratorate", "overdue").is_empty());
    advance(&hub, "PT23H59M").await?;
    wait_clock(&hub, &case, "police_filing", "reminded").await?;
    assert!(alerts(&hub, "qh-procuratorate", "overdue").is_empty(), "not overdue before 24:00 of the 28th");
    advance(&hub, "PT1M").await?;
    let overdue = wait_alert(&hub, "qh-procuratorate", "overdue", "police_filing").await?;
    assert_eq!(overdue["body"]["about"], "HO-1");
    assert_eq!(overdue["case"], case.as_str());
    wait_alert(&hub, "qh-police-econ", "overdue", "police_filing").await?;
    wait_clock(&hub, &case, "police_filing", "overdue").await?;

    // A refusal without reasons is refused; with reasons it opens the
    // reconsideration window for the market bureau.
    let bare = answer("PO-D-1", "police_decision", "qh-police-econ", "HO-1", json!({ "decision": "not_filed" }));
    let (s, b) = hub.submit("qh-police-econ", &bare).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["details"][0]["pointer"], "/body/reason");
    let reasoned = answer(
        "PO-D-2",
        "police_decision",
        "qh-police-econ",
        "HO-1",
        json!({ "decision": "not_filed", "reason": "现有证据不足以证明销售金额达到追诉标准" }),
    );
    assert_eq!(hub.submit("qh-police-econ", &reasoned).await?.0, 202);
    let window = wait_clock(&hub, &case, "reconsideration_window", "running").await?;
    assert_eq!(window["owner"], "qh-market");
    let decision = eventually(T, "decision at the bureau", || async {
        hub.receiver("qh-market").deliveries().into_iter().find(|d| d.json["id"] == "PO-D-2")
    })
    .await?;
    assert_eq!(decision.header("xj-case"), Some(case.as_str()));
    // Filing the decision late closes the clock as late, once; no second overdue.
    let c = case_of(&hub, &case).await?;
    assert_eq!(clock(&c, "police_filing").unwrap()["status"], "overdue");
    assert_eq!(alerts(&hub, "qh-procuratorate", "overdue").len(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_delivered_the_thursday_before_the_holidays_is_due_on_the_ninth_of_october() -> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let (_, receipt) = hub.submit("qh-market", &sample_clue("HD-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    let c = wait_clock(&hub, &case, "referral_decision", "running").await?;
    assert_eq!(c["owner"], "qh-town-dg");
    assert_eq!(c["unit"], "working_days");
    // 25–27 Sep and 1–7 Oct are holidays: the fifth working day is Friday 9 Oct.
    assert_eq!(c["due"], "2026-10-09T15:59:59Z");
    // Nothing by then: the town and the justice bureau hear of it.
    // At 10:00 on the 9th it is still running (the day is not over)…
    advance(&hub, "P15D").await?;
    wait_alert(&hub, "qh-town-dg", "reminder", "referral_decision").await?;
    // The alert goes out before the case record is stored (so that a crash
    // between the two repeats the alert, with the same id, rather than lose it).
    wait_clock(&hub, &case, "referral_decision", "reminded").await?;
    // …at 00:00 on the 10th it is overdue.
    advance(&hub, "PT14H").await?;
    wait_alert(&hub, "qh-justice", "overdue", "referral_decision").await?;
    wait_alert(&hub, "qh-town-dg", "overdue", "referral_decision").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fine_on_a_case_that_met_a_crime_threshold_raises_the_penalty_instead_of_transfer_alarm() -> anyhow::Result<()>
{
    let hub = TestHub::start(MANUAL).await?;
    let mut referral = sample_clue("PW-1", "qh-town-dg", "HAZWASTE", "990101101");
    referral["type"] = "case_referral".into();
    referral["body"]["filed_on"] = "2026-09-20".into();
    referral["body"]["facts"] = json!({ "hazardous_waste_tonnes": 3.5 });
    let (_, receipt) = hub.submit("qh-town-dg", &referral).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    eventually(T, "crime alert", || async { alerts(&hub, "qh-procuratorate", "crime_suspected").into_iter().next() })
        .await?;
    hub.receiver("qh-eco").wait_for(1, T).await?;
    // The bureau fines the company instead of handing the case to the police.
    let fine = eco_fine("ECO-PEN-1", &referral["body"]["party"], Some(&case));
    let (s, b) = hub.submit("qh-eco", &fine).await?;
    assert_eq!(s, 202, "{b}");
    for org in ["qh-procuratorate", "qh-justice"] {
        let a = eventually(T, "以罚代刑 alarm", || async {
            alerts(&hub, org, "penalty_instead_of_transfer").into_iter().next()
        })
        .await?;
        assert_eq!(a["body"]["about"], "ECO-PEN-1");
        assert_eq!(a["case"], case.as_str());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_clock_survives_a_tracker_restart_and_fires_once() -> anyhow::Result<()> {
    use xj::hub::Service;
    let hub = TestHub::start_services(MANUAL, &[Service::Gateway, Service::Router, Service::Courier]).await?;
    let tracker = hub.service(Service::Tracker).await?;
    let (_, receipt) = hub.submit("qh-market", &sample_clue("RS-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    wait_clock(&hub, &case, "referral_decision", "running").await?;
    // The tracker stops; time passes the deadline while it is down.
    tracker.stop().await?;
    advance(&hub, "P20D").await?;
    let tracker = hub.service(Service::Tracker).await?;
    wait_alert(&hub, "qh-justice", "overdue", "referral_decision").await?;
    wait_clock(&hub, &case, "referral_decision", "overdue").await?;
    // Another restart and more time: the alert is not sent again.
    tracker.stop().await?;
    let _tracker = hub.service(Service::Tracker).await?;
    advance(&hub, "P1D").await?;
    let c = case_of(&hub, &case).await?;
    assert_eq!(clock(&c, "referral_decision").unwrap()["status"], "overdue");
    let marker = sample_clue("RS-2", "qh-market", "FOOD-STALL", "990101101");
    hub.submit("qh-market", &marker).await?;
    hub.receiver("qh-town-dg").wait_for(2, T).await?;
    wait_clock(&hub, hub_case(&hub, "RS-2").await?.as_str(), "referral_decision", "running").await?;
    assert_eq!(alerts(&hub, "qh-justice", "overdue").len(), 1);
    Ok(())
}

async fn hub_case(hub: &TestHub, id: &str) -> anyhow::Result<String> {
    let (_, t) = hub.get(&format!("/v1/messages/{id}/trace"), &hub.operator_token()).await?;
    Ok(t["case"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_advance_endpoint_exists_only_in_manual_mode_and_stats_count_the_month() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (s, _) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": "P1D" })).await?;
    assert_eq!(s, 404);
    let manual = TestHub::start(MANUAL).await?;
    let (s, b) = manual.operator_post("/v1/admin/clock/advance", &json!({ "by": "P1M" })).await?;
    assert_eq!(s, 422, "{b}");
    let r = manual
        .http
        .post(format!("{}/v1/admin/clock/advance", manual.base))
        .bearer_auth(manual.token("qh-market"))
        .json(&json!({ "by": "P1D" }))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    manual.submit("qh-market", &sample_clue("ST-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    let stats = eventually(T, "statistics", || async {
        let (s, v) = manual.get("/v1/stats?month=2026-09", &manual.operator_token()).await.ok()?;
        (s == 200 && v["orgs"]["qh-town-dg"]["referrals_received"] == 1).then_some(v)
    })
    .await?;
    assert_eq!(stats["orgs"]["qh-market"]["referrals_sent"], 1);
    // An org sees its own row only; CSV on request.
    let (_, own) = manual.get("/v1/stats?month=2026-09", &manual.token("qh-market")).await?;
    assert_eq!(own["orgs"].as_object().unwrap().len(), 1);
    let csv = manual
        .http
        .get(format!("{}/v1/stats?month=2026-09&format=csv", manual.base))
        .bearer_auth(manual.operator_token())
        .send()
        .await?
        .text()
        .await?;
    assert!(csv.starts_with("month,org,referrals_sent"), "{csv}");
    assert!(csv.contains("2026-09,qh-town-dg,0,1,"), "{csv}");
    Ok(())
}

/// A transfer that arrives before the tracker has recorded the hand-off
/// (it lags under load; here it is not running at all) still sends the
/// hand-off on: before, the router looked for it only in the case record,
/// found nothing and dropped the re-route with a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_does_not_wait_for_the_case_record() -> anyhow::Result<()> {
    use xj::hub::Service;
    let hub = TestHub::start_services(MANUAL, &[Service::Gateway, Service::Router, Service::Courier]).await?;
    transfer_to_fde(&hub, "HO-9", "PE-D-9").await?;
    let fde = hub.receiver("qh-police-fde").deliveries();
    assert!(fde.iter().any(|d| d.json["id"] == "PE-D-9"), "and the decision that names the unit");
    Ok(())
}

/// Hand-off `handoff_id` from the market bureau to the economic unit, which
/// transfers it (decision `decision_id`) to the food-drug-environment unit;
/// returns the case once the hand-off itself has reached that unit.
async fn transfer_to_fde(hub: &TestHub, handoff_id: &str, decision_id: &str) -> anyhow::Result<String> {
    let (s, receipt) = hub.submit("qh-market", &handoff(handoff_id)).await?;
    anyhow::ensure!(s == 202, "hand-off refused: {receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();
    hub.receiver("qh-police-econ").wait_for(1, T).await?;
    // Not theirs: the economic unit transfers it to the food-drug-environment unit.
    let t = answer(
        decision_id,
        "police_decision",
        "qh-police-econ",
        handoff_id,
        json!({ "decision": "transferred", "transferred_to": "qh-police-fde", "reason": "涉及食品安全，属食药环侦管辖" }),
    );
    assert_eq!(hub.submit("qh-police-econ", &t).await?.0, 202);
    let fde = hub.receiver("qh-police-fde").wait_for(2, T).await?;
    let original = fde.iter().find(|d| d.json["id"] == handoff_id).expect("the hand-off itself");
    assert_eq!(original.header("xj-case"), Some(case.as_str()));
    Ok(case)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_reconsideration_and_the_reverse_handoff() -> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let case = transfer_to_fde(&hub, "HO-2", "PE-D-1").await?;
    eventually(T, "fde filing clock", || async {
        let c = case_of(&hub, &case).await.ok()?;
        c["clocks"].as_array()?.iter().find(|k| k["name"] == "police_filing" && k["owner"] == "qh-police-fde").cloned()
    })
    .await?;
    // The procuratorate is copied on police decisions.
    eventually(T, "decision copied", || async {
        hub.receiver("qh-procuratorate").deliveries().into_iter().find(|d| d.json["id"] == "PE-D-1")
    })
    .await?;
    // Refused; the bureau asks for reconsideration; refused again.
    let refuse = answer(
        "PF-D-1",
        "police_decision",
        "qh-police-fde",
        "HO-2",
        json!({ "decision": "not_filed", "reason": "不构成犯罪" }),
    );
    assert_eq!(hub.submit("qh-police-fde", &refuse).await?.0, 202);
    wait_clock(&hub, &case, "reconsideration_window", "running").await?;
    let ask = json!({ "id": "MR-RC-1", "type": "reconsideration_request", "sender": "qh-market", "reply_to": "PF-D-1",
        "sent_at": "2026-09-25T09:00:00+08:00", "classification": "internal",
        "body": { "reason": "销售金额经审计已达8.6万元" } });
    let (s, b) = hub.submit("qh-market", &ask).await?;
    assert_eq!(s, 202, "{b}");
    wait_clock(&hub, &case, "reconsideration_window", "met").await?;
    wait_clock(&hub, &case, "reconsideration_answer", "running").await?;
    let again = answer(
        "PF-RD-1",
        "reconsideration_decision",
        "qh-police-fde",
        "MR-RC-1",
        json!({ "decision": "not_filed", "reason": "维持原决定" }),
    );
    assert_eq!(hub.submit("qh-police-fde", &again).await?.0, 202);
    wait_clock(&hub, &case, "reconsideration_answer", "met").await?;
    wait_clock(&hub, &case, "procuratorate_request", "running").await?;
    // Art. 13: no crime, but a violation: the police hand it back.
    let mut back = sample_clue("PF-BACK-1", "qh-police-fde", "PRODUCT-FAKE", "990101101");
    back["type"] = "case_referral".into();
    back["recipient"] = "qh-market".into();
    back["case"] = case.clone().into();
    back["body"]["filed_on"] = "2026-09-24".into();
    back["body"]["reason"] = "不构成犯罪，但涉嫌行政违法，依第十三条移送行政执法机关".into();
    let (s, b) = hub.submit("qh-police-fde", &back).await?;
    assert_eq!(s, 202, "{b}");
    eventually(T, "reverse hand-off", || async {
        hub.receiver("qh-market").deliveries().into_iter().find(|d| d.json["id"] == "PF-BACK-1")
    })
    .await?;
    // Transferring to an organ the hub does not know is refused at the edge.
    let bad = answer(
        "PE-D-2",
        "police_decision",
        "qh-police-econ",
        "HO-2",
        json!({ "decision": "transferred", "transferred_to": "qh-nowhere", "reason": "x" }),
    );
    let (s, b) = hub.submit("qh-police-econ", &bad).await?;
    assert_eq!(s, 422, "{b}");
    Ok(())
}

const AUTO: &str = r#"
[[org]]
id = "qh-police-land"
name = "清河县公安局治安大队"
kind = "public_security"
region = "990101"
unit = "land"
token = "token-qh-police-land-0123456789"
deliver = { nats = true }
auto_receipt = true

[[matter]]
code = "LAND-FILL"
name = "非法占用农用地"
competent = "market_regulation"
[matter.crime]
offence = "非法占用农用地罪"
police_unit = "land"
when = "facts.farmland_mu >= 10"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_police_system_without_receipts_gets_one_written_on_delivery() -> anyhow::Result<()> {
    let hub = TestHub::start(&format!("{MANUAL}{AUTO}")).await?;
    let mut h = handoff("HO-3");
    h["body"]["matter"] = "LAND-FILL".into();
    h["body"]["facts"] = json!({ "farmland_mu": 12 });
    let (_, receipt) = hub.submit("qh-market", &h).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    let r = eventually(T, "automatic receipt at the bureau", || async {
        hub.receiver("qh-market").deliveries().into_iter().find(|d| d.json["type"] == "handoff_receipt")
    })
    .await?;
    assert_eq!(r.json["sender"], "qh-police-land");
    assert_eq!(r.json["body"]["auto"], true);
    assert_eq!(r.json["reply_to"], "HO-3");
    wait_clock(&hub, &case, "police_receipt", "met").await?;
    wait_clock(&hub, &case, "police_filing", "running").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// A town–county dispute goes to the coordination office; the test county
/// has no leadership group, so that step is skipped and the office's clock
/// is the last: overdue there, with the justice bureau told.
async fn an_unsettled_objection_escalates_to_the_coordination_office_then_is_overdue_there() -> anyhow::Result<()> {
    let hub = TestHub::start(&format!("{MANUAL}negotiation_working_days = 3\ncoordination_working_days = 2\n")).await?;
    let (_, receipt) = hub.submit("qh-market", &sample_clue("DS-1", "qh-market", "WASTE-DUMP", "990101101")).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    hub.receiver("qh-town-dg").wait_for(1, T).await?;
    let objection = answer(
        "DG-OBJ-1",
        "referral_reply",
        "qh-town-dg",
        "DS-1",
        json!({ "decision": "objected", "reason": "非本镇辖区" }),
    );
    assert_eq!(hub.submit("qh-town-dg", &objection).await?.0, 202);
    let n = wait_clock(&hub, &case, "dispute_negotiation", "running").await?;
    assert_eq!(n["owner"], "qh-market");
    // Thursday 24 Sep + 3 working days = Wednesday 30 Sep (holidays between).
    assert_eq!(n["due"], "2026-09-30T15:59:59Z");
    wait_clock(&hub, &case, "referral_decision", "met").await?;
    advance(&hub, "P7D").await?;
    let up = eventually(T, "escalation to the office", || async {
        hub.receiver("qh-coord").deliveries().into_iter().find(|d| d.json["body"]["kind"] == "dispute_escalated")
    })
    .await?;
    assert_eq!(up.json["body"]["about"], "DG-OBJ-1");
    wait_clock(&hub, &case, "coordination_decision", "running").await?;
    advance(&hub, "P10D").await?;
    eventually(T, "the office overdue, the justice bureau told", || async {
        hub.receiver("qh-justice")
            .deliveries()
            .into_iter()
            .find(|d| d.json["body"]["kind"] == "overdue" && d.json["body"]["clock"]["name"] == "coordination_decision")
    })
    .await?;
    wait_clock(&hub, &case, "coordination_decision", "overdue").await?;
    assert!(
        hub.receiver("qh-justice").deliveries().iter().all(|d| d.json["body"]["kind"] != "dispute_escalated"),
        "the justice bureau is not a step of a town–county dispute"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assistance_is_answered_in_five_working_days_extendable_once() -> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let req = json!({ "id": "AS-1", "type": "assistance_request", "sender": "qh-town-dg", "recipient": "qh-eco",
        "sent_at": "2026-09-24T10:00:00+08:00", "classification": "internal",
        "body": { "need": "对涉案土壤样品进行检测", "due_basis": "assistance" } });
    let (_, receipt) = hub.submit("qh-town-dg", &req).await?;
    let case = receipt["case"].as_str().unwrap().to_string();
    let c = wait_clock(&hub, &case, "assistance_reply", "running").await?;
    assert_eq!(c["due"], "2026-10-09T15:59:59Z");
    let ext = answer(
        "ECO-AS-1",
        "assistance_reply",
        "qh-eco",
        "AS-1",
        json!({ "decision": "extended", "reason": "检测周期长" }),
    );
    assert_eq!(hub.submit("qh-eco", &ext).await?.0, 202);
    let c = eventually(T, "extended", || async {
        let c = case_of(&hub, &case).await.ok()?;
        clock(&c, "assistance_reply").filter(|k| k["extended"] == true).cloned()
    })
    .await?;
    // Five more working days after 9 Oct: 10 (Sat, make-up day), 12, 13, 14, 15.
    assert_eq!(c["due"], "2026-10-15T15:59:59Z");
    // A joint inspection asked for on its own day is late (1 working day ahead).
    let late = json!({ "id": "JI-1", "type": "assistance_request", "sender": "qh-town-dg", "recipient": "qh-market",
        "sent_at": "2026-09-24T10:00:00+08:00", "classification": "internal",
        "body": { "need": "联合检查农贸市场", "due_basis": "joint_inspection", "inspection_on": "2026-09-24" } });
    let (_, r2) = hub.submit("qh-town-dg", &late).await?;
    let c2 = r2["case"].as_str().unwrap().to_string();
    wait_clock(&hub, &c2, "joint_inspection_notice", "late").await?;
    eventually(T, "late notice reported", || async {
        alerts(&hub, "qh-justice", "overdue")
            .into_iter()
            .find(|a| a["body"]["clock"]["name"] == "joint_inspection_notice")
    })
    .await?;
    Ok(())
}

/// 立案监督 (刑事诉讼法 art. 113): the procuratorate, copied on a refusal to
/// file, asks the police to explain (7 days, counted as the law counts:
/// from Thursday 24 September 2026 the 7th day falls in the National Day
/// holiday, so the end of Thursday 8 October); their reply meets it. It then
/// notifies them to file (15 days); unanswered, both are told it is
/// overdue, and the filing decision closes it, late. A justice bureau cannot
/// send a procuratorate's notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_procuratorate_supervises_a_refusal_to_file() -> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let (s, receipt) = hub.submit("qh-market", &handoff("HO-S")).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();
    hub.receiver("qh-police-econ").wait_for(1, T).await?;
    let refusal = json!({ "decision": "not_filed", "reason": "现有证据不足以证明销售金额达到追诉标准" });
    let (s, b) =
        hub.submit("qh-police-econ", &answer("PD-S", "police_decision", "qh-police-econ", "HO-S", refusal)).await?;
    assert_eq!(s, 202, "{b}");
    eventually(T, "the refusal copied to the procuratorate", || async {
        hub.receiver("qh-procuratorate").deliveries().into_iter().find(|d| d.json["id"] == "PD-S")
    })
    .await?;

    let notice = |id: &str, kind: &str, sender: &str| {
        answer(
            id,
            "supervision_notice",
            sender,
            "PD-S",
            json!({ "kind": kind, "text": "请依法处理", "doc_no": "检〔2026〕1号" }),
        )
    };
    let (s, b) = hub.submit("qh-justice", &notice("SN-X", "explain_not_filing", "qh-justice")).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["details"][0]["pointer"], "/body/kind", "{b}");

    let (s, b) = hub.submit("qh-procuratorate", &notice("SN-1", "explain_not_filing", "qh-procuratorate")).await?;
    assert_eq!(s, 202, "{b}");
    assert_eq!(b["case"], case.as_str(), "the notice is on the refusal's case");
    let explain = wait_clock(&hub, &case, "explain_not_filing", "running").await?;
    assert_eq!(explain["owner"], "qh-police-econ");
    assert_eq!(explain["due"], "2026-10-08T15:59:59Z");
    assert!(explain["basis"].as_str().is_some_and(|t| t.contains("第一百一十三条")), "{explain}");
    let explained = json!({ "result": "explained", "text": "经审查，销售金额证据不足" });
    let (s, b) =
        hub.submit("qh-police-econ", &answer("SR-1", "supervision_reply", "qh-police-econ", "SN-1", explained)).await?;
    assert_eq!(s, 202, "{b}");
    wait_clock(&hub, &case, "explain_not_filing", "met").await?;
    eventually(T, "the reply at the procuratorate", || async {
        hub.receiver("qh-procuratorate").deliveries().into_iter().find(|d| d.json["id"] == "SR-1")
    })
    .await?;

    let (s, b) = hub.submit("qh-procuratorate", &notice("SN-2", "notify_filing", "qh-procuratorate")).await?;
    assert_eq!(s, 202, "{b}");
    wait_clock(&hub, &case, "notify_filing", "running").await?;
    advance(&hub, "P20D").await?;
    let overdue = wait_alert(&hub, "qh-procuratorate", "overdue", "notify_filing").await?;
    assert_eq!(overdue["body"]["about"], "SN-2");
    wait_alert(&hub, "qh-police-econ", "overdue", "notify_filing").await?;
    wait_clock(&hub, &case, "notify_filing", "overdue").await?;
    let filed = json!({ "decision": "filed", "police_case_no": "公（经）立字〔2026〕88号" });
    let (s, b) =
        hub.submit("qh-police-econ", &answer("PD-S2", "police_decision", "qh-police-econ", "HO-S", filed)).await?;
    assert_eq!(s, 202, "{b}");
    // The filing comes late: the clock stays overdue, told once.
    eventually(T, "the case filed", || async {
        let record = case_of(&hub, &case).await.ok()?;
        (record["status"] == "filed").then_some(())
    })
    .await?;
    let record = case_of(&hub, &case).await?;
    assert_eq!(clock(&record, "notify_filing").map(|c| c["status"].clone()), Some(json!("overdue")));
    let told = alerts(&hub, "qh-procuratorate", "overdue");
    assert_eq!(told.iter().filter(|a| a["body"]["clock"]["name"] == "notify_filing").count(), 1);
    Ok(())
}

/// 以罚代刑 by party and matter: a town's referral whose facts met the
/// pollution threshold, then the environment bureau's penalty system shares
/// a penalty decision on the same company and matter without any case id
/// (it does not know the hub's): the procuratorate and the justice bureau
/// get the alarm, and it names the referral.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_penalty_on_a_party_that_met_a_threshold_raises_the_alarm_whatever_its_case() -> anyhow::Result<()> {
    let hub = TestHub::start(MANUAL).await?;
    let mut referral = sample_clue("PW-2", "qh-town-dg", "HAZWASTE", "990101101");
    referral["type"] = "case_referral".into();
    referral["body"]["found_on"] = "2026-09-15".into();
    referral["body"]["filed_on"] = "2026-09-20".into();
    referral["body"]["facts"] = json!({ "hazardous_waste_tonnes": 3.5 });
    let (s, receipt) = hub.submit("qh-town-dg", &referral).await?;
    assert_eq!(s, 202, "{receipt}");
    eventually(T, "crime alert", || async { alerts(&hub, "qh-procuratorate", "crime_suspected").into_iter().next() })
        .await?;
    let fine = eco_fine("ECO-PEN-2", &referral["body"]["party"], None);
    let (s, b) = hub.submit("qh-eco", &fine).await?;
    assert_eq!(s, 202, "{b}");
    assert_ne!(b["case"], receipt["case"], "a case of its own: the bureau named none");
    for org in ["qh-procuratorate", "qh-justice"] {
        let a = eventually(T, "以罚代刑 alarm", || async {
            alerts(&hub, org, "penalty_instead_of_transfer").into_iter().find(|a| a["body"]["about"] == "ECO-PEN-2")
        })
        .await?;
        assert_eq!(a["body"]["earlier"]["msg_id"], "PW-2", "{a}");
        assert_eq!(a["body"]["earlier"]["case"], receipt["case"], "{a}");
        assert!(a["body"]["text"].as_str().is_some_and(|t| t.contains("PW-2")), "{a}");
    }
    Ok(())
}
