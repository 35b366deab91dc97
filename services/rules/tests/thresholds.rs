//! Every criminal threshold of the sandbox county's rule set, at its figure
//! and one unit below (docs/rules.md), and the penalty-history windows.

use std::sync::Arc;

use serde_json::{Value, json};
use xj_model::Envelope;
use xj_rules::{Knowledge, PriorPenalty, RuleSet, decide};

fn rules() -> RuleSet {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/sandbox.toml");
    RuleSet::compile(Arc::new(xj_config::load_file(std::path::Path::new(path)).unwrap())).unwrap()
}

fn referral(matter: &str, facts: Value, party: Value) -> Envelope {
    serde_json::from_value(json!({
        "id": "T-1", "type": "case_referral", "sender": "qh-town-dg", "sent_at": "2026-11-20T09:00:00+08:00",
        "classification": "internal",
        "body": { "matter": matter, "cause": "c", "party": party, "found_on": "2026-11-18", "filed_on": "2026-11-18",
                  "location": { "region": "990101101" }, "reason": "r", "officers": [], "contact": {}, "facts": facts }
    }))
    .unwrap()
}

fn org() -> Value {
    json!({ "name": "某公司", "uscc": "91990101MA0000007H" })
}

fn person() -> Value {
    json!({ "name": "某人", "id_no": "11010519491231002X" })
}

/// Whether the matter's crime condition holds for these facts.
fn fires(rs: &RuleSet, matter: &str, facts: Value, party: Value, priors: &[PriorPenalty]) -> bool {
    let k = Knowledge { priors: priors.to_vec(), ..Default::default() };
    let d = decide(rs, &referral(matter, facts, party), &k);
    assert!(d.rule_errors.is_empty(), "{:?}", d.rule_errors);
    if let Some(c) = &d.crime {
        assert_eq!(c.matter, matter);
        assert!(c.source.is_some() && c.effective.is_some(), "{matter}: source and effective date are data");
    }
    d.crime.is_some()
}

fn check(matter: &str, below: Value, at: Value) {
    let rs = rules();
    for party in [org(), person()] {
        assert!(!fires(&rs, matter, below.clone(), party.clone(), &[]), "{matter} fired below the figure: {below}");
        assert!(fires(&rs, matter, at.clone(), party, &[]), "{matter} did not fire at the figure: {at}");
    }
}

#[test]
fn fake_products_140() {
    check("PRODUCT-FAKE", json!({ "sales_amount": 49999 }), json!({ "sales_amount": 50000 }));
    check("PRODUCT-FAKE", json!({ "unsold_value": 149999 }), json!({ "unsold_value": 150000 }));
    // 3 × sales + unsold at exactly 150,000.
    check(
        "PRODUCT-FAKE",
        json!({ "sales_amount": 40000, "unsold_value": 29999 }),
        json!({ "sales_amount": 40000, "unsold_value": 30000 }),
    );
}

#[test]
fn counterfeit_trademarks_214() {
    check("TRADEMARK-COUNTERFEIT", json!({ "illegal_income": 29999 }), json!({ "illegal_income": 30000 }));
    check("TRADEMARK-COUNTERFEIT", json!({ "sales_amount": 49999 }), json!({ "sales_amount": 50000 }));
    check("TRADEMARK-COUNTERFEIT", json!({ "unsold_value": 149999 }), json!({ "unsold_value": 150000 }));
    check(
        "TRADEMARK-COUNTERFEIT",
        json!({ "sales_amount": 40000, "unsold_value": 109999 }),
        json!({ "sales_amount": 40000, "unsold_value": 110000 }),
    );
}

#[test]
fn illegal_business_225_depends_on_the_party() {
    let rs = rules();
    assert!(!fires(&rs, "ILLEGAL-BUSINESS", json!({ "turnover": 49999 }), person(), &[]));
    assert!(fires(&rs, "ILLEGAL-BUSINESS", json!({ "turnover": 50000 }), person(), &[]));
    assert!(!fires(&rs, "ILLEGAL-BUSINESS", json!({ "illegal_income": 9999 }), person(), &[]));
    assert!(fires(&rs, "ILLEGAL-BUSINESS", json!({ "illegal_income": 10000 }), person(), &[]));
    assert!(!fires(&rs, "ILLEGAL-BUSINESS", json!({ "turnover": 499999 }), org(), &[]));
    assert!(fires(&rs, "ILLEGAL-BUSINESS", json!({ "turnover": 500000 }), org(), &[]));
    assert!(!fires(&rs, "ILLEGAL-BUSINESS", json!({ "illegal_income": 99999 }), org(), &[]));
    assert!(fires(&rs, "ILLEGAL-BUSINESS", json!({ "illegal_income": 100000 }), org(), &[]));
}

fn penalty(days_before: i64, matter: &str, n: u32) -> PriorPenalty {
    let on = chrono::NaiveDate::from_ymd_opt(2026, 11, 18).unwrap() - chrono::Duration::days(days_before);
    PriorPenalty {
        msg_id: format!("P-{n}"),
        sender: "qh-market".into(),
        matter: Some(matter.into()),
        decided_on: on,
        kind: Some("fine".into()),
        amount: Some(5000.0),
    }
}

#[test]
fn two_penalties_within_two_years_and_a_repeat() {
    let rs = rules();
    for matter in ["ILLEGAL-BUSINESS", "POLLUTION", "ILLEGAL-MINING"] {
        let one = [penalty(100, matter, 1)];
        let two = [penalty(100, matter, 1), penalty(730, matter, 2)];
        let old = [penalty(100, matter, 1), penalty(731, matter, 2)];
        let other = [penalty(100, matter, 1), penalty(200, "PRODUCT-FAKE", 2)];
        assert!(!fires(&rs, matter, json!({}), org(), &one), "{matter}: one prior penalty");
        assert!(fires(&rs, matter, json!({}), org(), &two), "{matter}: two within 730 days");
        assert!(!fires(&rs, matter, json!({}), org(), &old), "{matter}: the second is 731 days old");
        assert!(!fires(&rs, matter, json!({}), org(), &other), "{matter}: penalties for other conduct");
    }
}

#[test]
fn pollution_338() {
    check("POLLUTION", json!({ "hazardous_waste_tonnes": 2.999 }), json!({ "hazardous_waste_tonnes": 3 }));
    check("POLLUTION", json!({ "heavy_metal_multiple": 2.99 }), json!({ "heavy_metal_multiple": 3 }));
    check("POLLUTION", json!({ "other_heavy_metal_multiple": 9.99 }), json!({ "other_heavy_metal_multiple": 10 }));
    check("POLLUTION", json!({ "illegal_income": 299999 }), json!({ "illegal_income": 300000 }));
    check("POLLUTION", json!({ "loss_amount": 299999 }), json!({ "loss_amount": 300000 }));
    check("POLLUTION", json!({ "hidden_discharge": 0 }), json!({ "hidden_discharge": 1 }));
    check("POLLUTION", json!({ "monitoring_tampered": 1 }), json!({ "monitoring_tampered": 1, "key_polluter": 1 }));
    check("POLLUTION", json!({ "water_intake_shut_hours": 11.9 }), json!({ "water_intake_shut_hours": 12 }));
}

#[test]
fn farmland_342() {
    check("FARMLAND-OCCUPY", json!({ "basic_farmland_mu": 4.99 }), json!({ "basic_farmland_mu": 5 }));
    check("FARMLAND-OCCUPY", json!({ "farmland_mu": 9.99 }), json!({ "farmland_mu": 10 }));
    check("FARMLAND-OCCUPY", json!({ "protective_forest_mu": 4.99 }), json!({ "protective_forest_mu": 5 }));
    check("FARMLAND-OCCUPY", json!({ "forest_mu": 9.99 }), json!({ "forest_mu": 10 }));
}

#[test]
fn mining_343_halves_in_protected_areas() {
    check("ILLEGAL-MINING", json!({ "mineral_value": 99999 }), json!({ "mineral_value": 100000 }));
    check(
        "ILLEGAL-MINING",
        json!({ "mineral_value": 49999, "protected_area": 1 }),
        json!({ "mineral_value": 50000, "protected_area": 1 }),
    );
}

#[test]
fn illegal_medical_practice_336_after_two_penalties() {
    let rs = rules();
    let m = "MEDICAL-ILLEGAL";
    assert!(!fires(&rs, m, json!({}), person(), &[penalty(3000, m, 1)]));
    assert!(fires(&rs, m, json!({}), person(), &[penalty(3000, m, 1), penalty(20, m, 2)]));
}

#[test]
fn substandard_food_143_turns_on_test_results() {
    for flag in [
        "pathogen_exceeded",
        "residue_seriously_exceeded",
        "heavy_metal_seriously_exceeded",
        "sick_dead_animal_meat",
        "banned_food",
    ] {
        check("FOOD-SUBSTANDARD", json!({ flag: 0 }), json!({ flag: 1 }));
    }
}

#[test]
fn a_penalty_is_not_its_own_prior() {
    let rs = rules();
    let mut p = penalty(10, "POLLUTION", 1);
    p.msg_id = "T-1".into();
    p.sender = "qh-town-dg".into();
    assert!(!fires(&rs, "POLLUTION", json!({}), org(), &[p, penalty(20, "POLLUTION", 2)]));
}
