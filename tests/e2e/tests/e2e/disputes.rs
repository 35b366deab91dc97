//! Jurisdiction disputes on their two paths (docs/domain.md, "Objection and
//! designation"), on a real NATS with the manual clock: each step's clock at
//! its boundary, the next step's holder told, and designation accepted only
//! from whoever holds the current step.

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

const T: Duration = Duration::from_secs(30);

/// The county's leadership group, which the test county lacks.
const LEADING: &[(&str, &str, &str, &str)] =
    &[("qh-leading", "清河县综合行政执法改革领导小组", "leadership_group", "990101")];

/// Monday 2 November 2026, 10:00 in China.
const MANUAL: &str = "[clock]\nmode = \"manual\"\nstart = \"2026-11-02T10:00:00+08:00\"\n";

async fn advance(hub: &TestHub, by: &str) -> anyhow::Result<()> {
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": by })).await?;
    anyhow::ensure!(s == 200, "advance {by}: {s} {b}");
    Ok(())
}

async fn record(hub: &TestHub, case: &str) -> anyhow::Result<Value> {
    let (s, v) = hub.get(&format!("/v1/cases/{case}"), &hub.operator_token()).await?;
    anyhow::ensure!(s == 200, "{s} {v}");
    Ok(v)
}

fn clocks_named(case: &Value, name: &str) -> Vec<Value> {
    case["clocks"].as_array().map(|a| a.iter().filter(|c| c["name"] == name).cloned().collect()).unwrap_or_default()
}

async fn wait_clock(hub: &TestHub, case: &str, name: &str, status: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("clock {name} {status}"), || async {
        let r = record(hub, case).await.ok()?;
        clocks_named(&r, name).into_iter().find(|c| c["status"] == status)
    })
    .await
}

fn escalations(hub: &TestHub, org: &str) -> Vec<Value> {
    hub.receiver(org)
        .deliveries()
        .into_iter()
        .filter(|d| d.json["type"] == "supervision_alert" && d.json["body"]["kind"] == "dispute_escalated")
        .map(|d| d.json)
        .collect()
}

async fn wait_escalation(hub: &TestHub, org: &str, from_clock: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("dispute_escalated from {from_clock} at {org}"), || async {
        escalations(hub, org).into_iter().find(|a| a["body"]["clock"]["name"] == from_clock)
    })
    .await
}

fn objection(id: &str, sender: &str, reply_to: &str) -> Value {
    json!({ "id": id, "type": "referral_reply", "sender": sender, "reply_to": reply_to,
            "sent_at": "2026-11-02T10:30:00+08:00", "classification": "internal",
            "body": { "decision": "objected", "reason": "现场位于工业园区，不属于本机关管辖" } })
}

fn designation(id: &str, sender: &str, case: &str, to: &[&str]) -> Value {
    json!({ "id": id, "type": "jurisdiction_designation", "sender": sender, "recipient": to, "case": case,
            "sent_at": "2026-11-02T10:30:00+08:00", "classification": "internal",
            "body": { "designated": "qh-enforce", "reason": "综合行政执法局承接该项处罚权" } })
}

/// Refers, objects, and waits until the dispute's first clock is on record.
async fn dispute(hub: &TestHub, id: &str, region: &str, objector: &str) -> anyhow::Result<String> {
    let clue = sample_clue(id, "qh-market", "WASTE-DUMP", region);
    let (s, receipt) = hub.submit("qh-market", &clue).await?;
    anyhow::ensure!(s == 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();
    eventually(T, "the referral delivered", || async {
        hub.receiver(objector).deliveries().into_iter().find(|d| d.json["id"] == id)
    })
    .await?;
    let (s, b) = hub.submit(objector, &objection(&format!("{id}-OBJ"), objector, id)).await?;
    anyhow::ensure!(s == 202, "{b}");
    wait_clock(hub, &case, "dispute_negotiation", "running").await?;
    Ok(case)
}

/// Two county bureaus: negotiation, then the justice bureau, then the
/// leadership group, each on its working days; only the step's holder
/// designates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_between_two_county_bureaus_goes_to_the_justice_bureau_then_the_leadership_group()
-> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, LEADING).await?;
    // Not devolved at county level: the environment bureau is competent.
    let case = dispute(&hub, "CD-1", "990101", "qh-eco").await?;
    let neg = clocks_named(&record(&hub, &case).await?, "dispute_negotiation").remove(0);
    assert_eq!(neg["owner"], "qh-market");
    assert_eq!(neg["dispute"]["path"], "county");
    // Five working days after Monday the 2nd: the end of Monday the 9th.
    assert_eq!(neg["due"], "2026-11-09T15:59:59Z");

    // While they negotiate, the first step above them (the justice bureau)
    // may designate; the coordination office may not.
    let (s, b) = hub.submit("qh-coord", &designation("CO-D-1", "qh-coord", &case, &["qh-market", "qh-eco"])).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["details"][0]["pointer"], "/sender", "{b}");
    assert!(b["details"][0]["message"].as_str().unwrap_or_default().contains("qh-justice"), "{b}");

    // A minute before the end: nothing goes up.
    advance(&hub, "P7DT13H58M").await?;
    advance(&hub, "PT1M").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(escalations(&hub, "qh-justice").is_empty(), "escalated before its time");
    assert_eq!(clocks_named(&record(&hub, &case).await?, "dispute_negotiation")[0]["status"], "reminded");
    // At the end: to the justice bureau, which now has its own clock.
    advance(&hub, "PT1M").await?;
    let alert = wait_escalation(&hub, "qh-justice", "dispute_negotiation").await?;
    assert!(alert["body"]["text"].as_str().unwrap_or_default().contains("qh-justice"), "{alert}");
    for party in ["qh-market", "qh-eco"] {
        wait_escalation(&hub, party, "dispute_negotiation").await?;
    }
    assert!(escalations(&hub, "qh-coord").is_empty(), "a county dispute does not go to the coordination office");
    let jc = wait_clock(&hub, &case, "justice_coordination", "running").await?;
    assert_eq!(jc["owner"], "qh-justice");
    assert_eq!(jc["due"], "2026-11-17T15:59:59Z");
    assert!(clocks_named(&record(&hub, &case).await?, "coordination_decision").is_empty());

    // The leadership group does not rule before the dispute reaches it.
    let (s, b) =
        hub.submit("qh-leading", &designation("LG-D-1", "qh-leading", &case, &["qh-market", "qh-eco"])).await?;
    assert_eq!(s, 422, "{b}");
    assert!(b["details"][0]["message"].as_str().unwrap_or_default().contains("justice_bureau"), "{b}");

    // A minute before, then at the justice bureau's end: to the leadership group.
    advance(&hub, "P7DT23H58M").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(escalations(&hub, "qh-leading").is_empty(), "escalated before its time");
    advance(&hub, "PT2M").await?;
    wait_escalation(&hub, "qh-leading", "justice_coordination").await?;
    let lg = wait_clock(&hub, &case, "leadership_decision", "running").await?;
    assert_eq!(lg["owner"], "qh-leading");
    assert_eq!(lg["due"], "2026-11-25T15:59:59Z");

    // Now the justice bureau no longer designates; the leadership group does.
    let (s, b) =
        hub.submit("qh-justice", &designation("JB-D-1", "qh-justice", &case, &["qh-market", "qh-eco"])).await?;
    assert_eq!(s, 422, "{b}");
    let (s, b) =
        hub.submit("qh-leading", &designation("LG-D-2", "qh-leading", &case, &["qh-market", "qh-eco"])).await?;
    assert_eq!(s, 202, "{b}");
    let original = eventually(T, "the referral re-routed to the designated bureau", || async {
        hub.receiver("qh-enforce").deliveries().into_iter().find(|d| d.json["id"] == "CD-1")
    })
    .await?;
    assert_eq!(original.header("xj-case"), Some(case.as_str()));
    wait_clock(&hub, &case, "leadership_decision", "met").await?;
    // Nothing is overdue after the ruling, however long it waits.
    advance(&hub, "P10D").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let overdue: Vec<Value> = hub
        .receiver("qh-leading")
        .deliveries()
        .into_iter()
        .filter(|d| d.json["body"]["kind"] == "overdue")
        .map(|d| d.json)
        .collect();
    assert!(overdue.is_empty(), "{overdue:?}");
    Ok(())
}

/// A town and a county bureau: negotiation, then the coordination office,
/// which designates; the justice bureau is not on this path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispute_between_a_town_and_a_bureau_goes_to_the_coordination_office() -> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, LEADING).await?;
    // Devolved to 东关镇: the town is competent, and objects.
    let case = dispute(&hub, "TC-1", "990101101", "qh-town-dg").await?;
    let neg = clocks_named(&record(&hub, &case).await?, "dispute_negotiation").remove(0);
    assert_eq!(neg["dispute"]["path"], "town_county");
    advance(&hub, "P7DT14H").await?;
    wait_escalation(&hub, "qh-coord", "dispute_negotiation").await?;
    let cd = wait_clock(&hub, &case, "coordination_decision", "running").await?;
    assert_eq!(cd["owner"], "qh-coord");
    assert!(escalations(&hub, "qh-justice").is_empty(), "a town–county dispute does not go to the justice bureau");
    assert!(clocks_named(&record(&hub, &case).await?, "justice_coordination").is_empty());
    let (s, b) =
        hub.submit("qh-justice", &designation("JB-D-2", "qh-justice", &case, &["qh-market", "qh-town-dg"])).await?;
    assert_eq!(s, 422, "{b}");
    let (s, b) =
        hub.submit("qh-coord", &designation("CO-D-2", "qh-coord", &case, &["qh-market", "qh-town-dg"])).await?;
    assert_eq!(s, 202, "{b}");
    // The same designation again is answered as the repeat it is.
    let (s, b) =
        hub.submit("qh-coord", &designation("CO-D-2", "qh-coord", &case, &["qh-market", "qh-town-dg"])).await?;
    assert_eq!(s, 200, "{b}");
    wait_clock(&hub, &case, "coordination_decision", "met").await?;
    eventually(T, "the referral re-routed", || async {
        hub.receiver("qh-enforce").deliveries().into_iter().find(|d| d.json["id"] == "TC-1")
    })
    .await?;
    Ok(())
}
