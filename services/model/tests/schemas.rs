//! The schemas are the contract (docs/api.md): every schema compiles, the
//! examples under `schemas/examples/` and a valid sample of each referral
//! type pass, and known-bad documents are refused with the JSON pointers a
//! departmental system needs to fix them — every problem at once, each
//! place named once.

use std::path::PathBuf;

use serde_json::{Value, json};
use xj_model::{MessageType, Schemas, ids::uscc_check_char};

fn schemas() -> Schemas {
    Schemas::load().expect("every schema compiles")
}

fn uscc(stem: &str) -> String {
    format!("{stem}{}", uscc_check_char(stem).expect("credit-code alphabet"))
}

fn envelope(id: &str, kind: &str, body: Value) -> Value {
    json!({
        "id": id,
        "type": kind,
        "sender": "qh-market",
        "recipient": null,
        "case": null,
        "reply_to": null,
        "sent_at": "2026-11-20T09:30:00+08:00",
        "classification": "internal",
        "body": body
    })
}

fn clue() -> Value {
    envelope(
        "MR-2026-000123",
        "clue_referral",
        json!({
            "doc_no": "清市监案移〔2026〕12号",
            "matter": "FOOD-STALL",
            "cause": "涉嫌无证经营",
            "party": { "name": "清河县某食品店", "uscc": uscc("92990101MA0000001"), "address": "东关镇人民路1号" },
            "found_on": "2026-11-18",
            "location": { "region": "990101101", "address": "东关镇人民路1号" },
            "reason": "该事项已赋权乡镇，超出本机关管辖范围",
            "legal_basis": "《行政处罚法》第二十二条",
            "facts": { "sales_amount": 1200, "unsold_value": 300.5 },
            "officers": [ { "name": "张三", "cert_no": "99010100001" }, { "name": "李四", "cert_no": "99010100002" } ],
            "materials": [ { "title": "现场检查笔录", "copies": 1 } ],
            "contact": { "name": "王五", "phone": "0999-1234567", "address": "清河县人民路8号" }
        }),
    )
}

fn case_referral() -> Value {
    let mut m = clue();
    m["id"] = "MR-2026-000124".into();
    m["type"] = "case_referral".into();
    m["body"]["filed_on"] = "2026-11-19".into();
    m["body"]["seized_items"] = json!([
        { "name": "散装熟食", "quantity": 12.5, "unit": "千克", "disposed": true, "proceeds": 0 },
        { "name": "电子秤", "quantity": 1, "unit": "台" }
    ]);
    m
}

fn reply() -> Value {
    let mut m = envelope(
        "DG-2026-0001",
        "referral_reply",
        json!({ "decision": "accepted", "case_no": "东关立〔2026〕3号", "received": { "volumes": 1, "pages": 12, "items": 0 } }),
    );
    m["sender"] = "qh-town-dg".into();
    m["reply_to"] = "MR-2026-000123".into();
    m
}

fn outcome() -> Value {
    let mut m = envelope(
        "DG-2026-0002",
        "referral_outcome",
        json!({ "result": "责令改正并处罚款", "penalty": { "kind": "fine", "amount": 2000 }, "closed_on": "2026-11-20" }),
    );
    m["sender"] = "qh-town-dg".into();
    m["reply_to"] = "MR-2026-000123".into();
    m
}

/// The pointers of the problems found, in the order reported.
fn problems(doc: &Value) -> Vec<String> {
    match schemas().validate(doc) {
        Ok(_) => Vec::new(),
        Err(p) => p.into_iter().map(|p| p.pointer).collect(),
    }
}

/// Asserts the document is refused at exactly these places (any order).
fn refused_at(doc: &Value, want: &[&str]) {
    let mut got = problems(doc);
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "problems of {doc}");
}

#[test]
fn every_schema_compiles_and_every_type_has_one() {
    let s = schemas();
    for t in MessageType::ALL {
        // An empty body fails or passes, but the type's schema is there.
        let _ = s.validate_body(t, &json!({}));
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/messages");
    for t in MessageType::ALL {
        let file = dir.join(format!("{}.schema.json", t.as_str()));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            v["$id"].as_str().is_some_and(|id| id.ends_with(&format!("/{}.schema.json", t.as_str()))),
            "{}: $id names the file",
            file.display()
        );
    }
}

#[test]
fn a_valid_sample_of_each_referral_type_passes() {
    let s = schemas();
    for (doc, kind) in [
        (clue(), MessageType::ClueReferral),
        (case_referral(), MessageType::CaseReferral),
        (reply(), MessageType::ReferralReply),
        (outcome(), MessageType::ReferralOutcome),
    ] {
        let v = s.validate(&doc).unwrap_or_else(|p| panic!("{kind}: {p:?}"));
        assert_eq!(v.envelope.kind, kind);
        assert_eq!(v.envelope.id, doc["id"].as_str().unwrap());
    }
    // Refusals with their reason, and an objection, are valid replies too.
    for decision in ["declined", "objected"] {
        let mut r = reply();
        r["body"]["decision"] = decision.into();
        r["body"]["reason"] = "不属于本机关管辖".into();
        assert!(s.validate(&r).is_ok(), "{decision} with a reason");
    }
    // A party known by resident ID number instead of credit code.
    let mut c = clue();
    c["body"]["party"] = json!({ "name": "张某", "id_no": "11010519491231002X" });
    assert!(s.validate(&c).is_ok());
    // Several recipients.
    let mut c = clue();
    c["recipient"] = json!(["qh-town-dg", "qh-enforce"]);
    assert!(s.validate(&c).is_ok());
}

#[test]
fn the_examples_in_the_repository_are_valid() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas/examples");
    let s = schemas();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("schemas/examples") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        assert_eq!(doc["type"], name.as_str(), "{}: the file is named after its type", path.display());
        if let Err(p) = s.validate(&doc) {
            panic!("{} is not valid: {p:?}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 4, "examples of the four referral types at least ({seen} found)");
}

#[test]
fn a_referral_with_problems_names_each_one() {
    let mut m = clue();
    m["body"].as_object_mut().unwrap().remove("cause");
    refused_at(&m, &["/body/cause"]);

    let mut m = clue();
    m["body"]["officers"] = json!([{ "name": "张三", "cert_no": "99010100001" }]);
    refused_at(&m, &["/body/officers"]);

    let mut m = clue();
    m["body"]["officers"][1]["cert_no"] = "99010100001".into();
    refused_at(&m, &["/body/officers/1/cert_no"]);

    let mut m = clue();
    m["body"]["officers"][0].as_object_mut().unwrap().remove("cert_no");
    refused_at(&m, &["/body/officers/0/cert_no"]);

    let mut m = clue();
    let good = m["body"]["party"]["uscc"].as_str().unwrap().to_owned();
    let wrong = if good.ends_with('0') { '1' } else { '0' };
    m["body"]["party"]["uscc"] = format!("{}{wrong}", &good[..17]).into();
    refused_at(&m, &["/body/party/uscc"]);

    let mut m = clue();
    m["body"]["party"]["id_no"] = "110105194912310021".into();
    refused_at(&m, &["/body/party/id_no"]);

    let mut m = clue();
    m["body"]["contact"]["phone"] = "call me".into();
    refused_at(&m, &["/body/contact/phone"]);

    let mut m = clue();
    m["body"]["facts"]["sales_amount"] = "a lot".into();
    refused_at(&m, &["/body/facts/sales_amount"]);

    let mut m = clue();
    m["body"]["found_on"] = "2099-01-01".into();
    refused_at(&m, &["/body/found_on"]);

    let mut m = clue();
    m["body"]["location"]["region"] = "000101".into();
    refused_at(&m, &["/body/location/region"]);

    let mut m = case_referral();
    m["body"].as_object_mut().unwrap().remove("filed_on");
    refused_at(&m, &["/body/filed_on"]);

    let mut m = case_referral();
    m["body"]["seized_items"][0]["quantity"] = json!(-1);
    refused_at(&m, &["/body/seized_items/0/quantity"]);
}

#[test]
fn a_place_the_schema_flags_is_not_flagged_again_by_the_checks() {
    // A malformed credit code breaks the pattern and the check character:
    // one problem, where it is.
    let mut m = clue();
    m["body"]["party"]["uscc"] = "not-a-credit-code".into();
    refused_at(&m, &["/body/party/uscc"]);
    // A region of the wrong length: the pattern and the region check.
    let mut m = clue();
    m["body"]["location"]["region"] = "99010".into();
    refused_at(&m, &["/body/location/region"]);
    // A date that does not exist: the format and the calendar check.
    let mut m = clue();
    m["body"]["found_on"] = "2026-02-30".into();
    refused_at(&m, &["/body/found_on"]);
}

#[test]
fn schema_and_check_problems_are_reported_together() {
    let mut m = clue();
    m["body"].as_object_mut().unwrap().remove("cause");
    m["body"]["officers"] = json!([{ "name": "张三", "cert_no": "99010100001" }]);
    m["body"]["location"]["region"] = "99010".into();
    let good = m["body"]["party"]["uscc"].as_str().unwrap().to_owned();
    let wrong = if good.ends_with('0') { '1' } else { '0' };
    m["body"]["party"]["uscc"] = format!("{}{wrong}", &good[..17]).into();
    m["body"]["found_on"] = "2099-12-31".into();
    m["classification"] = "secret".into();
    m["sent_at"] = "2026-11-20 09:30".into();
    refused_at(
        &m,
        &[
            "/body/cause",
            "/body/officers",
            "/body/location/region",
            "/body/party/uscc",
            "/body/found_on",
            "/classification",
            "/sent_at",
        ],
    );
}

#[test]
fn replies_and_outcomes_with_problems_name_each_one() {
    for decision in ["declined", "objected"] {
        let mut r = reply();
        r["body"]["decision"] = decision.into();
        refused_at(&r, &["/body/reason"]);
    }
    let mut r = reply();
    r["body"]["decision"] = "maybe".into();
    refused_at(&r, &["/body/decision"]);
    let mut r = reply();
    r["body"].as_object_mut().unwrap().remove("decision");
    refused_at(&r, &["/body/decision"]);
    let mut r = reply();
    r["body"]["received"]["pages"] = json!(-3);
    refused_at(&r, &["/body/received/pages"]);

    let mut o = outcome();
    o["body"].as_object_mut().unwrap().remove("result");
    refused_at(&o, &["/body/result"]);
    let mut o = outcome();
    o["body"]["penalty"]["kind"] = "lashes".into();
    o["body"]["penalty"]["amount"] = json!(-5);
    refused_at(&o, &["/body/penalty/kind", "/body/penalty/amount"]);
    let mut o = outcome();
    o["body"]["closed_on"] = "21.11.2026".into();
    refused_at(&o, &["/body/closed_on"]);
}

#[test]
fn envelope_problems_name_each_field() {
    let mut m = clue();
    m["id"] = "MR 2026/1".into();
    m["sender"] = "QH_Market".into();
    m["type"] = "gossip".into();
    m["classification"] = "secret".into();
    m["reply_to"] = json!(7);
    refused_at(&m, &["/id", "/sender", "/type", "/classification", "/reply_to"]);

    let mut m = clue();
    m.as_object_mut().unwrap().remove("sent_at");
    m.as_object_mut().unwrap().remove("body");
    refused_at(&m, &["/sent_at", "/body"]);

    let mut m = clue();
    m["recipient"] = json!([]);
    refused_at(&m, &["/recipient"]);

    let mut m = clue();
    m["priority"] = "urgent".into();
    refused_at(&m, &["/priority"]);
}

#[test]
fn a_missing_decision_is_one_problem_not_three() {
    // "reason required unless accepted/filed" must not fire when there is
    // no decision at all.
    let s = schemas();
    for t in [
        MessageType::ReferralReply,
        MessageType::PoliceDecision,
        MessageType::ReconsiderationDecision,
        MessageType::AssistanceReply,
    ] {
        let got: Vec<String> = s.validate_body(t, &json!({})).into_iter().map(|p| p.pointer).collect();
        assert_eq!(got, ["/body/decision"], "{t}");
    }
    let got: Vec<String> = s
        .validate_body(MessageType::PoliceDecision, &json!({ "decision": "transferred" }))
        .into_iter()
        .map(|p| p.pointer)
        .collect();
    assert_eq!(got, ["/body/reason", "/body/transferred_to"]);
}
