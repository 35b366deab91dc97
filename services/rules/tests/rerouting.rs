//! Re-routing is the rules' decision like any other: a designation
//! (指定管辖) sends the case's referral on to the organisation it names, a
//! police transfer (移送主管机关, Decree 310 art. 7) the hand-off to the organ
//! it names — both in the `Decision`, so `xj route --explain` shows them.

use std::sync::Arc;

use serde_json::{Value, json};
use xj_model::Envelope;
use xj_rules::{Knowledge, RuleSet, decide};

fn rules() -> RuleSet {
    let text = include_str!("../../../deploy/sandbox.toml");
    let settings = xj_config::load_str(text, "sandbox").expect("the sandbox configuration loads");
    RuleSet::compile(Arc::new(settings)).expect("the sandbox rules compile")
}

fn envelope(kind: &str, sender: &str, recipient: &str, body: Value) -> Envelope {
    serde_json::from_value(json!({
        "id": "RR-1", "type": kind, "sender": sender, "recipient": recipient, "case": "XJ-20261203-0000000001",
        "sent_at": "2026-12-03T09:00:00+08:00", "classification": "internal", "body": body,
    }))
    .expect("an envelope")
}

#[test]
fn a_designation_sends_the_referral_on_to_the_designated() {
    let rs = rules();
    let env = envelope(
        "jurisdiction_designation",
        "qh-coord",
        "qh-market",
        json!({ "designated": "qh-town-dg", "reason": "属地管辖" }),
    );
    let d = decide(&rs, &env, &Knowledge::default());
    let r = d.reroute.as_ref().expect("a re-route");
    assert_eq!((r.why, r.to.as_str(), r.rule.as_str()), ("designation", "qh-town-dg", "designation:qh-coord"));
    assert_eq!(r.original, ["clue_referral", "case_referral"]);
    assert!(
        d.targets.iter().any(|t| t.org == "qh-town-dg" && t.role == "to"),
        "the designated gets the designation too"
    );
    assert!(d.consulted.iter().any(|c| c.rule == "reroute:designation" && c.outcome.contains("qh-town-dg")), "{d:?}");
    assert_eq!(serde_json::to_value(&d).expect("json")["reroute"]["to"], "qh-town-dg");
}

#[test]
fn a_transfer_sends_the_handoff_on_to_the_organ_named() {
    let rs = rules();
    let body = json!({ "decision": "transferred", "transferred_to": "qh-police-fde", "reason": "不属于本单位管辖" });
    let d = decide(&rs, &envelope("police_decision", "qh-police-econ", "qh-market", body), &Knowledge::default());
    let r = d.reroute.as_ref().expect("a re-route");
    assert_eq!((r.why, r.to.as_str()), ("transfer", "qh-police-fde"));
    assert_eq!(r.original, ["criminal_handoff"]);
}

#[test]
fn nothing_goes_on_without_a_known_organisation_or_a_transfer() {
    let rs = rules();
    let unknown = envelope("jurisdiction_designation", "qh-coord", "qh-market", json!({ "designated": "qh-nobody" }));
    assert!(decide(&rs, &unknown, &Knowledge::default()).reroute.is_none());
    let filed = envelope("police_decision", "qh-police-econ", "qh-market", json!({ "decision": "filed" }));
    assert!(decide(&rs, &filed, &Knowledge::default()).reroute.is_none());
}
