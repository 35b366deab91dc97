//! Information sharing as a pure decision: who subscribes to what, the
//! region scope (the county sees its towns; a town sees its own region and
//! the county's items about powers devolved to it), explicit narrowing, the
//! sensitive rule, and the major-penalty filing with the justice bureau.

use std::sync::Arc;

use serde_json::{Value, json};
use xj_model::Envelope;
use xj_rules::{Knowledge, RuleSet, check_recipients, decide};

const CONFIG: &str = r#"
[operator]
token = "operator-token-0123456789"

[[org]]
id = "county-market"
name = "市场监管局"
kind = "market_regulation"
region = "990101"
token = "token-county-market-0123"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
subscribe = [{ kind = "penalty_decision", region = "990101" }]

[[org]]
id = "county-eco"
name = "生态环境分局"
kind = "ecology_environment"
region = "990101"
token = "token-county-eco-012345"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
subscribe = [{ kind = "penalty_decision" }, { kind = "licence", matter = "WASTE-DUMP" }]

[[org]]
id = "town-a"
name = "甲镇"
kind = "town_government"
region = "990101101"
token = "token-town-a-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
subscribe = [{ kind = "penalty_decision" }]

[[org]]
id = "town-b"
name = "乙镇"
kind = "town_government"
region = "990101102"
token = "token-town-b-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
subscribe = [{ kind = "penalty_decision", region = "990101102" }]

[[org]]
id = "other-county"
name = "邻县市场监管局"
kind = "market_regulation"
region = "990202"
token = "token-other-county-0123"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
subscribe = [{ kind = "penalty_decision" }]

[[org]]
id = "justice"
name = "司法局"
kind = "justice_bureau"
region = "990101"
token = "token-justice-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }

[[org]]
id = "coord"
name = "指挥中心"
kind = "coordination_office"
region = "990101"
token = "token-coord-0123456789ab"
deliver = { webhook = "http://127.0.0.1:9/inbox" }

[[matter]]
code = "FOOD-STALL"
name = "无证经营食品摊贩"
competent = "market_regulation"
devolved_to = ["990101101"]

[[matter]]
code = "WASTE-DUMP"
name = "违法倾倒固体废物"
competent = "ecology_environment"
"#;

fn rules() -> RuleSet {
    RuleSet::compile(Arc::new(xj_config::load_str(CONFIG, "sharing.toml").unwrap())).unwrap()
}

fn share(sender: &str, body: Value, classification: &str, recipient: Value) -> Envelope {
    serde_json::from_value(json!({
        "id": "S-1", "type": "info_share", "sender": sender, "recipient": recipient,
        "sent_at": "2026-11-20T09:00:00+08:00", "classification": classification, "body": body
    }))
    .unwrap()
}

fn to(rs: &RuleSet, env: &Envelope) -> Vec<String> {
    let mut r = decide(rs, env, &Knowledge::default()).recipients();
    r.sort();
    r
}

fn penalty(region: Option<&str>, matter: Option<&str>, penalty: Value) -> Value {
    let mut b = json!({ "kind": "penalty_decision", "title": "行政处罚决定书", "penalty": penalty,
                        "decided_on": "2026-11-18" });
    if let Some(r) = region {
        b["region"] = json!(r);
    }
    if let Some(m) = matter {
        b["matter"] = json!(m);
    }
    b
}

fn small() -> Value {
    json!({ "kind": "fine", "amount": 5000 })
}

#[test]
fn a_town_item_reaches_the_county_and_that_town_only() {
    let rs = rules();
    let env = share("county-eco", penalty(Some("990101101"), None, small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["county-market", "town-a"]);
    let env = share("county-eco", penalty(Some("990101102"), None, small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["county-market", "town-b"]);
}

#[test]
fn a_county_wide_item_reaches_towns_only_for_their_devolved_powers() {
    let rs = rules();
    let env = share("county-market", penalty(Some("990101"), None, small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["county-eco"], "no town sees the county's other business");
    let env = share("county-market", penalty(Some("990101"), Some("FOOD-STALL"), small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["county-eco", "town-a"], "FOOD-STALL is devolved to town-a, not town-b");
    // No region: the sender's own region (the county).
    let env = share("county-market", penalty(None, None, small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["county-eco"]);
}

#[test]
fn a_subscription_without_region_covers_its_own_region_only() {
    let rs = rules();
    let env = share("county-market", penalty(Some("990202"), None, small()), "internal", Value::Null);
    assert_eq!(to(&rs, &env), ["other-county"]);
}

#[test]
fn kind_and_matter_must_match() {
    let rs = rules();
    let licence = |m: &str| json!({ "kind": "licence", "title": "许可", "region": "990101", "matter": m });
    assert_eq!(to(&rs, &share("county-market", licence("WASTE-DUMP"), "public", Value::Null)), ["county-eco"]);
    assert!(to(&rs, &share("county-market", licence("FOOD-STALL"), "public", Value::Null)).is_empty());
}

#[test]
fn an_explicit_list_narrows_the_subscribers() {
    let rs = rules();
    let env = share("county-eco", penalty(Some("990101101"), None, small()), "internal", json!(["town-a", "town-b"]));
    assert_eq!(to(&rs, &env), ["town-a"], "town-b is named but does not subscribe to town-a's region");
}

#[test]
fn sensitive_goes_only_to_the_named_recipient() {
    let rs = rules();
    let env = share("county-eco", penalty(Some("990101101"), None, small()), "sensitive", json!("town-b"));
    let d = decide(&rs, &env, &Knowledge::default());
    assert_eq!(d.recipients(), ["town-b"]);
    assert_eq!(d.rule, "share:sensitive-explicit-only");
    // Without a recipient it is refused at the edge, with the pointer.
    let env = share("county-eco", penalty(Some("990101101"), None, small()), "sensitive", Value::Null);
    let problems = check_recipients(&rs, &env);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].pointer, "/recipient");
}

#[test]
fn major_penalties_are_filed_with_the_justice_bureau() {
    let rs = rules();
    let at = |p: Value| {
        let env = share("county-market", penalty(Some("990101101"), None, p), "internal", Value::Null);
        decide(&rs, &env, &Knowledge::default())
    };
    let d = at(json!({ "kind": "fine", "amount": 199999.99 }));
    assert!(d.filing.is_none());
    assert!(!d.recipients().contains(&"justice".to_string()));

    let d = at(json!({ "kind": "fine", "amount": 200000 }));
    let f = d.filing.clone().expect("a fine of 200,000 is major");
    assert_eq!(f.with, ["justice"]);
    assert_eq!(f.decided_on, "2026-11-18");
    assert_eq!(f.due, "2026-12-03");
    let mut r = d.recipients();
    r.sort();
    assert_eq!(r, ["county-eco", "justice", "town-a"]);

    for kind in [
        "confiscation",
        "suspension",
        "licence_revocation",
        "qualification_lowering",
        "production_restriction",
        "closure",
        "practice_ban",
    ] {
        assert!(at(json!({ "kind": kind })).filing.is_some(), "{kind} is major");
    }
    for kind in ["warning", "detention", "other"] {
        assert!(at(json!({ "kind": kind, "amount": 100 })).filing.is_none(), "{kind} is not major");
    }
    assert!(at(json!({ "kind": "fine", "amount": 1000, "confiscated_value": 500 })).filing.is_some());

    // Filed even when sensitive: the justice bureau is entitled by law.
    let env = share(
        "county-market",
        penalty(Some("990101"), None, json!({ "kind": "closure" })),
        "sensitive",
        json!("county-eco"),
    );
    let mut r = decide(&rs, &env, &Knowledge::default()).recipients();
    r.sort();
    assert_eq!(r, ["county-eco", "justice"]);
}

#[test]
fn a_town_subscribing_beyond_its_region_is_a_configuration_error() {
    let bad = CONFIG.replace(
        r#"subscribe = [{ kind = "penalty_decision", region = "990101102" }]"#,
        r#"subscribe = [{ kind = "penalty_decision", region = "990101" }]"#,
    );
    let e = xj_config::load_str(&bad, "bad.toml").unwrap_err();
    assert!(e.problems().iter().any(|p| p.key.ends_with("subscribe[0].region")), "{e}");
}
