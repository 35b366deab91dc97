//! The court's enforcement periods (行政强制法 arts. 53, 56-58), complaints
//! passed on with their channel told, and copies that owe nothing — on a
//! real NATS with the manual clock (docs/domain.md).

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

const T: Duration = Duration::from_secs(30);

/// Organisations of the sandbox county the test county lacks.
const MORE: &[(&str, &str, &str, &str)] = &[
    ("qh-court", "清河县人民法院", "court", "990101"),
    ("qh-nr", "清河县自然资源局", "natural_resources", "990101"),
    ("qh-12345", "清河县12345政务服务便民热线", "hotline", "990101"),
];

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

fn clock(case: &Value, name: &str) -> Option<Value> {
    case["clocks"].as_array()?.iter().find(|c| c["name"] == name).cloned()
}

async fn wait_clock(hub: &TestHub, case: &str, name: &str, status: &str) -> anyhow::Result<Value> {
    eventually(T, &format!("clock {name} {status}"), || async {
        clock(&record(hub, case).await.ok()?, name).filter(|c| c["status"] == status)
    })
    .await
}

fn overdue(hub: &TestHub, org: &str, clock_name: &str) -> Vec<Value> {
    hub.receiver(org)
        .deliveries()
        .into_iter()
        .filter(|d| d.json["type"] == "supervision_alert" && d.json["body"]["kind"] == "overdue")
        .filter(|d| d.json["body"]["clock"]["name"] == clock_name)
        .map(|d| d.json)
        .collect()
}

fn application(id: &str, deadline_passed_on: &str) -> Value {
    json!({ "id": id, "type": "assistance_request", "sender": "qh-eco", "recipient": "qh-court",
            "sent_at": "2026-11-02T10:00:00+08:00", "classification": "internal",
            "body": { "need": "申请强制执行行政处罚决定", "due_basis": "enforcement", "matter": "HAZWASTE",
                      "party": { "name": "清河县某化工有限公司", "uscc": xj_testkit::sample_uscc("91990101MA0000404") },
                      "enforcement": { "application_doc_no": "清环强执申〔2026〕9号", "decision_doc_no": "清环罚〔2026〕21号",
                                       "decided_on": "2026-05-06", "deadline_passed_on": deadline_passed_on,
                                       "penalty": { "kind": "fine", "amount": 100000 }, "unpaid_amount": 100000 } } })
}

fn court_reply(id: &str, reply_to: &str, body: Value) -> Value {
    json!({ "id": id, "type": "assistance_reply", "sender": "qh-court", "reply_to": reply_to,
            "sent_at": "2026-11-02T11:00:00+08:00", "classification": "internal", "body": body })
}

/// Art. 53: three months from the day the party's periods ran out; art. 56:
/// accepted within 5 days, overdue at its end with the procuratorate told;
/// arts. 57-58: ruled within 7 days of accepting, 30 with a hearing; the
/// execution result closes the story.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_court_accepts_in_five_days_and_rules_in_seven_or_thirty() -> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, MORE).await?;
    // Periods ran out on 1 July: the three months ended on 1 October.
    let (s, b) = hub.submit("qh-eco", &application("ENF-LATE", "2026-07-01")).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["details"][0]["pointer"], "/body/enforcement/deadline_passed_on", "{b}");
    assert!(b["details"][0]["message"].as_str().unwrap_or_default().contains("2026-10-01"), "{b}");
    // On 2 August they end today: still in time.
    let (s, r1) = hub.submit("qh-eco", &application("ENF-1", "2026-08-02")).await?;
    assert_eq!(s, 202, "{r1}");
    let case1 = r1["case"].as_str().unwrap_or_default().to_string();
    let (s, r2) = hub.submit("qh-eco", &application("ENF-2", "2026-10-20")).await?;
    assert_eq!(s, 202, "{r2}");
    let case2 = r2["case"].as_str().unwrap_or_default().to_string();

    let acc = wait_clock(&hub, &case1, "court_acceptance", "running").await?;
    assert_eq!(acc["owner"], "qh-court");
    assert_eq!(acc["supervisors"], json!(["qh-procuratorate"]));
    // Five days from Monday the 2nd end on Saturday the 7th: moved to Monday the 9th.
    assert_eq!(acc["due"], "2026-11-09T15:59:59Z");
    assert!(clock(&record(&hub, &case1).await?, "assistance_reply").is_none(), "not the general assistance clock");

    wait_clock(&hub, &case2, "court_acceptance", "running").await?;
    // The second application is accepted at once, with a hearing: 30 days.
    let accepted = court_reply("CT-ACC-2", "ENF-2", json!({ "decision": "accepted", "hearing": true }));
    let (s, b) = hub.submit("qh-court", &accepted).await?;
    assert_eq!(s, 202, "{b}");
    wait_clock(&hub, &case2, "court_acceptance", "met").await?;
    let ruling = wait_clock(&hub, &case2, "court_ruling", "running").await?;
    // Thirty days from 2 November end on Wednesday 2 December.
    assert_eq!(ruling["due"], "2026-12-02T15:59:59Z");
    assert_eq!(ruling["amount"], 30);

    // A minute before the acceptance period ends: not overdue.
    advance(&hub, "P7DT13H59M").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(overdue(&hub, "qh-procuratorate", "court_acceptance").is_empty(), "overdue before its time");
    advance(&hub, "PT1M").await?;
    for org in ["qh-court", "qh-procuratorate"] {
        eventually(T, &format!("court_acceptance overdue at {org}"), || async {
            overdue(&hub, org, "court_acceptance").into_iter().next()
        })
        .await?;
    }
    assert!(overdue(&hub, "qh-justice", "court_acceptance").is_empty(), "the justice bureau does not supervise courts");

    // The ruling, then the execution result, on the second application.
    let ruled = court_reply(
        "CT-RUL-2",
        "ENF-2",
        json!({ "decision": "granted", "ruling": { "kind": "enforce", "doc_no": "（2026）清0101行审12号", "ruled_on": "2026-11-10" } }),
    );
    let (s, b) = hub.submit("qh-court", &ruled).await?;
    assert_eq!(s, 202, "{b}");
    wait_clock(&hub, &case2, "court_ruling", "met").await?;
    let no_result = court_reply("CT-EXE-0", "ENF-2", json!({ "decision": "executed" }));
    let (s, b) = hub.submit("qh-court", &no_result).await?;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("execution"), "{b}");
    let executed = court_reply(
        "CT-EXE-2",
        "ENF-2",
        json!({ "decision": "executed", "execution": { "result": "罚款已全额划缴", "executed_on": "2026-11-10", "amount_collected": 100000 } }),
    );
    let (s, b) = hub.submit("qh-court", &executed).await?;
    assert_eq!(s, 202, "{b}");
    eventually(T, "the case executed", || async {
        let r = record(&hub, &case2).await.ok()?;
        (r["status"] == "executed").then_some(())
    })
    .await?;
    eventually(T, "the applicant has the execution result", || async {
        hub.receiver("qh-eco").deliveries().into_iter().find(|d| d.json["id"] == "CT-EXE-2")
    })
    .await?;
    Ok(())
}

/// A referral from a complaint: the 12345 hotline is told when it reaches
/// the town and what came of it; the organisation it is copied to receives
/// it, owes nothing and starts no clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complaint_channel_hears_where_a_referral_went_and_its_result() -> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, MORE).await?;
    let mut clue = sample_clue("CMP-1", "qh-market", "FOOD-STALL", "990101101");
    clue["body"]["complaint"] =
        json!({ "channel": "qh-12345", "ticket": "12345-2026-000123", "received_on": "2026-11-01" });
    clue["body"]["copy_to"] = json!(["qh-nr"]);

    // The channel must be a hotline, and a copy must go somewhere real.
    let mut bad = clue.clone();
    bad["id"] = "CMP-BAD".into();
    bad["body"]["complaint"]["channel"] = "qh-justice".into();
    bad["body"]["copy_to"] = json!(["qh-nowhere"]);
    let (s, b) = hub.submit("qh-market", &bad).await?;
    assert_eq!(s, 422, "{b}");
    let pointers: Vec<&str> =
        b["details"].as_array().into_iter().flatten().filter_map(|d| d["pointer"].as_str()).collect();
    assert!(pointers.contains(&"/body/complaint/channel") && pointers.contains(&"/body/copy_to/0"), "{b}");

    let (s, receipt) = hub.submit("qh-market", &clue).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();
    let transferred = eventually(T, "the hotline told it was passed on", || async {
        hub.receiver("qh-12345").deliveries().into_iter().find(|d| d.json["type"] == "complaint_update")
    })
    .await?;
    let body = &transferred.json["body"];
    assert_eq!(transferred.json["sender"], "hub");
    assert_eq!(
        (body["stage"].as_str(), body["to"].as_str(), body["ticket"].as_str(), body["about"].as_str()),
        (Some("transferred"), Some("qh-town-dg"), Some("12345-2026-000123"), Some("CMP-1"))
    );
    // The copy arrives; only the addressee's clock runs.
    eventually(T, "the copy at the natural resources bureau", || async {
        hub.receiver("qh-nr").deliveries().into_iter().find(|d| d.json["id"] == "CMP-1")
    })
    .await?;
    let r = eventually(T, "both deliveries on record", || async {
        let r = record(&hub, &case).await.ok()?;
        let m = r["messages"].as_array()?.iter().find(|m| m["id"] == "CMP-1")?.clone();
        (m["delivered"].as_array()?.len() == 2).then_some(r)
    })
    .await?;
    let owners: Vec<&str> = r["clocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"] == "referral_decision")
        .filter_map(|c| c["owner"].as_str())
        .collect();
    assert_eq!(owners, ["qh-town-dg"]);

    let outcome = json!({ "id": "DG-OUT-1", "type": "referral_outcome", "sender": "qh-town-dg", "reply_to": "CMP-1",
        "sent_at": "2026-11-05T10:00:00+08:00", "classification": "internal",
        "body": { "result": "已责令停止经营并处罚款2000元", "closed_on": "2026-11-05", "notify_complainant": true } });
    let (s, b) = hub.submit("qh-town-dg", &outcome).await?;
    assert_eq!(s, 202, "{b}");
    let result = eventually(T, "the hotline told the result", || async {
        hub.receiver("qh-12345")
            .deliveries()
            .into_iter()
            .find(|d| d.json["type"] == "complaint_update" && d.json["body"]["stage"] == "result")
    })
    .await?;
    assert_eq!(result.json["body"]["result"], "已责令停止经营并处罚款2000元");
    assert_eq!(result.json["body"]["to"], "qh-town-dg");
    assert_eq!(result.json["case"], case.as_str());
    // Nobody may write a complaint update but the hub.
    let mut forged = result.json.clone();
    forged["sender"] = "qh-market".into();
    forged["id"] = "FORGED-1".into();
    let (s, b) = hub.submit("qh-market", &forged).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(hub.receiver("qh-12345").deliveries().len(), 2, "two updates, no more");
    Ok(())
}

fn notice(id: &str, sender: &str, to: &str, kind: &str) -> Value {
    json!({ "id": id, "type": "supervision_notice", "sender": sender, "recipient": to,
            "sent_at": "2026-11-02T10:00:00+08:00", "classification": "internal",
            "body": { "kind": kind, "text": "请依法书面回复", "doc_no": format!("{id}号") } })
}

/// The supervisors' notices, each at its boundary: the police's 7 days to
/// explain a refusal to file, a justice bureau's supervision order (10
/// working days), and the procuratorate's opinion after a non-prosecution
/// (2 months, moved off the New Year holiday) — not overdue a minute
/// before, overdue at the end, the notice's sender told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervision_notices_are_overdue_exactly_at_their_end() -> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, MORE).await?;
    let mut cases = Vec::new();
    for (id, sender, to, kind) in [
        ("SN-E", "qh-procuratorate", "qh-police-econ", "explain_not_filing"),
        ("SN-O", "qh-justice", "qh-market", "supervision_order"),
        ("SN-P", "qh-procuratorate", "qh-eco", "procuratorial_opinion"),
    ] {
        let (s, r) = hub.submit(sender, &notice(id, sender, to, kind)).await?;
        assert_eq!(s, 202, "{r}");
        let case = r["case"].as_str().unwrap_or_default().to_string();
        let c = wait_clock(&hub, &case, kind, "running").await?;
        assert_eq!(c["owner"], to);
        cases.push((case, kind, sender, to, c["due"].as_str().unwrap_or_default().to_string()));
    }
    let due: Vec<&str> = cases.iter().map(|c| c.4.as_str()).collect();
    // Monday 9 November; Monday 16 November; 2 January 2027 is a Saturday
    // after New Year's Day: Monday 4 January.
    assert_eq!(due, ["2026-11-09T15:59:59Z", "2026-11-16T15:59:59Z", "2027-01-04T15:59:59Z"]);

    // From Monday 2 November 10:00 to a minute before each end, then to it.
    let steps = [("P7DT13H59M", "PT1M"), ("P6DT23H59M", "PT1M"), ("P48DT23H59M", "PT1M")];
    for ((case, kind, sender, to, _), (before, at)) in cases.iter().zip(steps) {
        advance(&hub, before).await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(overdue(&hub, sender, kind).is_empty(), "{kind} overdue before its end");
        assert_eq!(clock(&record(&hub, case).await?, kind).map(|c| c["status"].clone()), Some(json!("reminded")));
        advance(&hub, at).await?;
        for org in [*sender, *to] {
            eventually(T, &format!("{kind} overdue at {org}"), || async {
                overdue(&hub, org, kind).into_iter().next()
            })
            .await?;
        }
        wait_clock(&hub, case, kind, "overdue").await?;
    }
    // Each was told once.
    for (_, kind, sender, ..) in &cases {
        assert_eq!(overdue(&hub, sender, kind).len(), 1, "{kind}");
    }
    Ok(())
}
