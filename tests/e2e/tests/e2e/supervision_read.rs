//! Supervisors' read access from outside, as a curious integration would
//! try it (docs/api.md, "Reading" and "Supervision views"): the county's
//! justice bureau and procuratorate read every case of their county — a
//! sensitive message that does not name them without its summary — and
//! list what they supervise; the next county's supervisors find nothing;
//! an ordinary bureau is refused; a bad view is located.

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue, sample_uscc};

use crate::common::assert_error;

const T: Duration = Duration::from_secs(30);

/// Thursday 24 September 2026, 10:00 in China (as in the clock tests), and
/// a second county, 990102, with supervisors of its own.
const HUB: &str = r#"
[clock]
mode = "manual"
start = "2026-09-24T10:00:00+08:00"
negotiation_working_days = 3

[[org]]
id = "yl-justice"
name = "榆林县司法局"
kind = "justice_bureau"
region = "990102"
token = "token-yl-justice-0123456789"
deliver = { nats = true }

[[org]]
id = "yl-procuratorate"
name = "榆林县人民检察院"
kind = "procuratorate"
region = "990102"
token = "token-yl-procuratorate-0123456789"
deliver = { nats = true }
"#;

const VIEWS: [&str; 4] = ["overdue", "crime_unreferred", "disputes", "major_penalties"];

/// A clue referral of the sandbox county dated inside the manual clock's
/// week (a date in the future is refused).
fn clue(id: &str, sender: &str, matter: &str) -> Value {
    let mut m = sample_clue(id, sender, matter, "990101101");
    m["sent_at"] = "2026-09-24T10:00:00+08:00".into();
    m["body"]["found_on"] = "2026-09-20".into();
    m
}

async fn submit(hub: &TestHub, org: &str, msg: &Value) -> anyhow::Result<String> {
    let (s, receipt) = hub.submit(org, msg).await?;
    anyhow::ensure!(s == 202, "{} refused: {s} {receipt}", msg["id"]);
    Ok(receipt["case"].as_str().unwrap_or_default().to_owned())
}

async fn case_as(hub: &TestHub, case: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    hub.get(&format!("/v1/cases/{case}"), token).await
}

/// Waits until the operator's record of `case` satisfies `ready`.
async fn wait_case(hub: &TestHub, case: &str, what: &str, ready: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(T, what, || async {
        let (s, c) = case_as(hub, case, &op).await.ok()?;
        (s == 200 && ready(&c)).then_some(c)
    })
    .await
}

async fn view(hub: &TestHub, query: &str, token: &str) -> anyhow::Result<Value> {
    let (s, b) = hub.get(&format!("/v1/supervision?{query}"), token).await?;
    anyhow::ensure!(s == 200, "view {query}: {s} {b}");
    anyhow::ensure!(b["truncated"] == false, "view {query} truncated: {b}");
    Ok(b)
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn message<'a>(record: &'a Value, id: &str) -> &'a Value {
    record["messages"].as_array().and_then(|m| m.iter().find(|m| m["id"] == id)).unwrap_or(&Value::Null)
}

fn parties(record: &Value) -> Vec<String> {
    let mut p: Vec<String> =
        record["parties"].as_array().into_iter().flatten().filter_map(|p| p.as_str().map(str::to_owned)).collect();
    p.sort();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisors_read_their_countys_cases_and_what_they_supervise_and_nothing_of_another_county()
-> anyhow::Result<()> {
    let hub = TestHub::start(HUB).await?;
    let justice = hub.token("qh-justice");
    let procuratorate = hub.token("qh-procuratorate");
    let others = [hub.token("yl-justice"), hub.token("yl-procuratorate")];

    // The environment bureau refers fake liquor sold for 86,000 yuan to the
    // market bureau: over the PRODUCT-FAKE threshold, and nobody hands it
    // to the police. The crime alert makes the procuratorate a party.
    let mut crime = clue("SV-CRIME", "qh-eco", "PRODUCT-FAKE");
    crime["body"]["facts"] = json!({ "sales_amount": 86000 });
    let crime_case = submit(&hub, "qh-eco", &crime).await?;
    let record = wait_case(&hub, &crime_case, "the threshold and its alert recorded", |c| {
        c["crime_met"] == true && c["messages"].as_array().is_some_and(|m| m.len() >= 2)
    })
    .await?;
    assert_eq!(parties(&record), ["qh-eco", "qh-market", "qh-procuratorate"], "{record}");

    // A sensitive referral from the market bureau to the town names no supervisor.
    let mut sensitive = clue("SV-SENS", "qh-market", "FOOD-STALL");
    sensitive["classification"] = "sensitive".into();
    let sens_case = submit(&hub, "qh-market", &sensitive).await?;
    let full = wait_case(&hub, &sens_case, "the sensitive referral recorded", |c| {
        message(c, "SV-SENS")["summary"]["classification"] == "sensitive"
    })
    .await?;
    assert_eq!(parties(&full), ["qh-market", "qh-town-dg"], "{full}");

    // The justice bureau, party to neither, reads both; what the sensitive
    // referral says is withheld from it, and from the procuratorate.
    let (s, c) = case_as(&hub, &crime_case, &justice).await?;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["case"], crime_case.as_str());
    assert_eq!(c["crime_met"], true);
    assert_eq!(message(&c, "SV-CRIME")["summary"]["matter"], "PRODUCT-FAKE", "an internal message is read whole");
    for token in [&justice, &procuratorate] {
        let (s, c) = case_as(&hub, &sens_case, token).await?;
        assert_eq!(s, 200, "{c}");
        assert_eq!(parties(&c), ["qh-market", "qh-town-dg"], "{c}");
        let m = message(&c, "SV-SENS");
        assert_eq!(m["summary"], json!({ "withheld": "sensitive" }), "{c}");
        assert_eq!(m["sender"], "qh-market", "that it was sent, and by whom, is not withheld: {c}");
        assert_eq!(m["recipients"], json!(["qh-town-dg"]), "{c}");
    }
    // Its parties read it whole.
    for party in ["qh-market", "qh-town-dg"] {
        let (s, c) = case_as(&hub, &sens_case, &hub.token(party)).await?;
        assert_eq!(s, 200, "{party}: {c}");
        let summary = &message(&c, "SV-SENS")["summary"];
        assert_eq!(summary["matter"], "FOOD-STALL", "{party}: {c}");
        assert_eq!(summary["classification"], "sensitive", "{party}: {c}");
    }
    // The next county's supervisors and an ordinary bureau get the answer
    // for no case at all.
    let (s, nothing) = case_as(&hub, "XJ-20260924-0000000000", &justice).await?;
    assert_error(s, &nothing, 404, "not_found");
    for token in others.iter().chain([&hub.token("qh-enforce")]) {
        for case in [&crime_case, &sens_case] {
            let (s, b) = case_as(&hub, case, token).await?;
            assert_error(s, &b, 404, "not_found");
            assert_eq!(
                b["message"],
                nothing["message"].as_str().unwrap_or_default().replace("XJ-20260924-0000000000", case)
            );
        }
    }

    // The threshold met and not handed off is in both supervisors' view,
    // the justice bureau being no party to it.
    for token in [&justice, &procuratorate] {
        let v = view(&hub, "view=crime_unreferred", token).await?;
        assert_eq!(v["view"], "crime_unreferred");
        assert_eq!(v["region"], "990101");
        let listed = items(&v);
        assert_eq!(listed.len(), 1, "{v}");
        assert_eq!(listed[0]["case"], crime_case.as_str(), "{v}");
        assert_eq!(listed[0]["status"], "referred", "{v}");
        assert_eq!(listed[0]["messages"][0], json!({ "id": "SV-CRIME", "type": "clue_referral", "sender": "qh-eco" }));
        let senders: Vec<&str> =
            listed[0]["messages"].as_array().into_iter().flatten().filter_map(|m| m["sender"].as_str()).collect();
        assert_eq!(senders, ["qh-eco", "hub"], "the referral, then its crime alert: {v}");
    }
    let nothing_due = view(&hub, "view=overdue", &justice).await?;
    assert_eq!(items(&nothing_due), Vec::<Value>::new(), "nothing is late yet");
    // The operator sees every county, or the one it names.
    let all = view(&hub, "view=crime_unreferred", &hub.operator_token()).await?;
    assert_eq!(all["region"], Value::Null);
    assert_eq!(items(&all).len(), 1, "{all}");
    let next = view(&hub, "view=crime_unreferred&region=990102", &hub.operator_token()).await?;
    assert_eq!(next["region"], "990102");
    assert_eq!(items(&next), Vec::<Value>::new());

    // Both referrals go unanswered past their five working days (to the
    // end of Friday 9 October, the holidays between).
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": "P16D" })).await?;
    assert_eq!(s, 200, "{b}");
    let late = eventually(T, "both referral decisions marked overdue", || async {
        let v = view(&hub, "view=overdue", &procuratorate).await.ok()?;
        let listed = items(&v);
        (listed.len() == 2 && listed.iter().all(|i| i["status"] == "overdue")).then_some(listed)
    })
    .await?;
    let mut want = vec![(crime_case.clone(), "qh-market", "SV-CRIME"), (sens_case.clone(), "qh-town-dg", "SV-SENS")];
    want.sort();
    for (item, (case, owner, about)) in late.iter().zip(&want) {
        assert_eq!(item["case"], case.as_str(), "sorted by due, then case: {late:?}");
        assert_eq!(item["clock"], "referral_decision", "{item}");
        assert_eq!(item["owner"], *owner, "{item}");
        assert_eq!(item["about"], *about, "{item}");
        assert_eq!(item["due"], "2026-10-09T15:59:59Z", "{item}");
        assert_eq!(item["supervisors"], json!(["qh-justice"]), "{item}");
        assert!(item["basis"].as_str().is_some_and(|b| !b.is_empty()), "{item}");
    }
    let by_justice = view(&hub, "view=overdue", &justice).await?;
    assert_eq!(items(&by_justice), late);

    // The other county supervises none of it.
    for token in &others {
        for name in VIEWS {
            let v = view(&hub, &format!("view={name}"), token).await?;
            assert_eq!(v["region"], "990102", "{v}");
            assert_eq!(items(&v), Vec::<Value>::new(), "{name}: {v}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disputes_and_major_penalties_are_listed_and_wrong_callers_and_views_refused() -> anyhow::Result<()> {
    let hub = TestHub::start(HUB).await?;
    let procuratorate = hub.token("qh-procuratorate");

    // Who may ask, and how.
    for org in ["qh-market", "qh-police-econ", "qh-coord"] {
        let (s, b) = hub.get("/v1/supervision?view=overdue", &hub.token(org)).await?;
        assert_error(s, &b, 403, "forbidden");
        assert!(b["message"].as_str().is_some_and(|m| m.contains("only a justice bureau, a procuratorate")), "{b}");
    }
    let (s, b) = hub.get("/v1/supervision?view=overdue", "").await?;
    assert_error(s, &b, 401, "unauthorized");
    for query in ["view=everything", "view=Overdue", "", "region=990101"] {
        let (s, b) = hub.get(&format!("/v1/supervision?{query}"), &procuratorate).await?;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(b["details"].as_array().map(Vec::len), Some(1), "{query}: {b}");
        assert_eq!(b["details"][0]["pointer"], "/view", "{query}: {b}");
        assert!(b["details"][0]["message"].as_str().is_some_and(|m| m.contains("crime_unreferred")), "{b}");
    }
    let (s, b) = hub.get("/v1/supervision?view=bogus&region=9901", &hub.operator_token()).await?;
    assert_error(s, &b, 422, "invalid");
    let at: Vec<&str> = b["details"].as_array().into_iter().flatten().filter_map(|d| d["pointer"].as_str()).collect();
    assert_eq!(at, ["/view", "/region"], "every problem at once: {b}");
    let (s, b) = hub.get("/v1/supervision?view=overdue&region=990102", &procuratorate).await?;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = hub.get("/v1/supervision?view=overdue&region=990101", &procuratorate).await?;
    assert_eq!(s, 200, "its own county, named: {b}");

    // The town objects to a referral: a jurisdiction dispute.
    let dispute_case = submit(&hub, "qh-market", &clue("SV-DSP", "qh-market", "WASTE-DUMP")).await?;
    hub.receiver("qh-town-dg").wait_for(1, T).await?;
    let objection = json!({ "id": "SV-OBJ", "type": "referral_reply", "sender": "qh-town-dg", "reply_to": "SV-DSP",
        "sent_at": "2026-09-24T12:00:00+08:00", "classification": "internal",
        "body": { "decision": "objected", "reason": "非本镇辖区" } });
    submit(&hub, "qh-town-dg", &objection).await?;
    let listed = eventually(T, "the dispute in the view", || async {
        let listed = items(&view(&hub, "view=disputes", &procuratorate).await.ok()?);
        listed.iter().any(|i| i["clocks"].as_array().is_some_and(|c| !c.is_empty())).then_some(listed)
    })
    .await?;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["case"], dispute_case.as_str());
    assert_eq!(listed[0]["status"], "disputed");
    let negotiation = &listed[0]["clocks"][0];
    assert_eq!(negotiation["clock"], "dispute_negotiation", "{listed:?}");
    assert_eq!(negotiation["owner"], "qh-market");
    assert_eq!(negotiation["status"], "running");
    // Thursday 24 Sep + 3 working days = Wednesday 30 Sep (holidays between).
    assert_eq!(negotiation["due"], "2026-09-30T15:59:59Z");

    // A closure order is a major penalty, filed with the justice bureau.
    let closure = json!({ "id": "SV-PEN", "type": "info_share", "sender": "qh-market", "recipient": ["qh-town-dg"],
        "sent_at": "2026-09-24T12:00:00+08:00", "classification": "internal",
        "body": { "kind": "penalty_decision", "title": "行政处罚决定书", "matter": "FOOD-STALL", "region": "990101101",
                  "party": { "name": "清河县某酒行", "uscc": sample_uscc("91990101MA0000777") },
                  "decided_on": "2026-09-24", "penalty": { "kind": "closure" } } });
    let penalty_case = submit(&hub, "qh-market", &closure).await?;
    let filed = eventually(T, "the filing met on delivery to the justice bureau", || async {
        let listed = items(&view(&hub, "view=major_penalties", &procuratorate).await.ok()?);
        (listed.len() == 1 && listed[0]["status"] == "met").then_some(listed)
    })
    .await?;
    assert_eq!(filed[0]["case"], penalty_case.as_str());
    assert_eq!(filed[0]["owner"], "qh-market");
    assert_eq!(filed[0]["about"], "SV-PEN");
    assert!(filed[0]["due"].as_str().is_some_and(|d| d.starts_with("2026-10-09")), "{filed:?}");

    for token in [hub.token("yl-justice"), hub.token("yl-procuratorate")] {
        for name in ["disputes", "major_penalties"] {
            let v = view(&hub, &format!("view={name}"), &token).await?;
            assert_eq!(items(&v), Vec::<Value>::new(), "{name}: {v}");
        }
    }
    Ok(())
}
