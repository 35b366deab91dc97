//! The standard test county: the sandbox's organisations with test tokens
//! and webhooks, and a small matter catalogue.

use std::collections::HashMap;

use serde_json::{Value, json};

/// id, kind, region, unit.
pub const ORGS: &[(&str, &str, &str, &str)] = &[
    ("qh-market", "market_regulation", "990101", ""),
    ("qh-eco", "ecology_environment", "990101", ""),
    ("qh-enforce", "comprehensive_enforcement", "990101", ""),
    ("qh-town-dg", "town_government", "990101101", ""),
    ("qh-town-xs", "town_government", "990101102", ""),
    ("qh-police-econ", "public_security", "990101", "economic"),
    ("qh-police-fde", "public_security", "990101", "food_drug_env"),
    ("qh-procuratorate", "procuratorate", "990101", ""),
    ("qh-justice", "justice_bureau", "990101", ""),
    ("qh-coord", "coordination_office", "990101", ""),
];

pub const MATTERS: &str = r#"
[[matter]]
code = "FOOD-STALL"
name = "无证经营食品摊贩"
competent = "market_regulation"
devolved_to = ["990101101"]

[[matter]]
code = "PRODUCT-FAKE"
name = "生产、销售伪劣产品"
competent = "market_regulation"
[matter.crime]
offence = "生产、销售伪劣产品罪"
police_unit = "economic"
when = "facts.sales_amount >= 50000"

[[matter]]
code = "WASTE-DUMP"
name = "违法倾倒固体废物"
competent = "ecology_environment"
devolved_to = ["990101101", "990101102"]

[[matter]]
code = "HAZWASTE"
name = "非法处置危险废物"
competent = "ecology_environment"
[matter.crime]
offence = "污染环境罪"
police_unit = "food_drug_env"
when = "facts.hazardous_waste_tonnes >= 3"
"#;

/// The county's configuration with each org's webhook at `urls[id]`.
pub fn county_config(urls: &HashMap<String, String>) -> String {
    let mut s = String::from("[operator]\ntoken = \"operator-token-0123456789\"\n\n");
    for (id, kind, region, unit) in ORGS {
        s.push_str(&format!(
            "[[org]]\nid = \"{id}\"\nname = \"{id}\"\nkind = \"{kind}\"\nregion = \"{region}\"\ntoken = \"token-{id}-0123456789\"\ndeliver = {{ webhook = \"{}\" }}\n",
            urls.get(*id).cloned().unwrap_or_else(|| "http://127.0.0.1:9/inbox".into())
        ));
        if !unit.is_empty() {
            s.push_str(&format!("unit = \"{unit}\"\n"));
        }
        s.push('\n');
    }
    s.push_str(MATTERS);
    s
}

/// A valid credit code made from a 17-character stem.
pub fn sample_uscc(stem: &str) -> String {
    let check = xj_model::ids::uscc_check_char(stem).expect("stem uses the credit-code alphabet");
    format!("{stem}{check}")
}

/// A complete, valid clue referral.
pub fn sample_clue(id: &str, sender: &str, matter: &str, region: &str) -> Value {
    json!({
        "id": id,
        "type": "clue_referral",
        "sender": sender,
        "recipient": null,
        "case": null,
        "reply_to": null,
        "sent_at": "2026-11-20T09:30:00+08:00",
        "classification": "internal",
        "body": {
            "doc_no": "清市监案移〔2026〕12号",
            "matter": matter,
            "cause": "涉嫌无证经营",
            "party": { "name": "清河县某食品店", "uscc": sample_uscc("92990101MA0000001"), "address": "东关镇人民路1号" },
            "found_on": "2026-11-18",
            "location": { "region": region, "address": "东关镇人民路1号" },
            "reason": "该事项已赋权乡镇，超出本机关管辖范围",
            "legal_basis": "《行政处罚法》第二十二条",
            "facts": { "sales_amount": 1200 },
            "officers": [ { "name": "张三", "cert_no": "99010100001" }, { "name": "李四", "cert_no": "99010100002" } ],
            "materials": [ { "title": "现场检查笔录", "copies": 1 } ],
            "contact": { "name": "王五", "phone": "0999-1234567", "address": "清河县人民路8号" }
        }
    })
}

/// A criminal hand-off (行刑衔接) of counterfeit liquor by the market bureau:
/// sales of 86,000 yuan, over the PRODUCT-FAKE threshold, so it goes to the
/// economic police and the procuratorate.
pub fn sample_handoff(id: &str) -> Value {
    let mut m = sample_clue(id, "qh-market", "PRODUCT-FAKE", "990101101");
    m["type"] = "criminal_handoff".into();
    let b = &mut m["body"];
    b["cause"] = "销售伪劣白酒".into();
    b["filed_on"] = "2026-09-10".into();
    b["found_on"] = "2026-09-10".into();
    b["facts"] = json!({ "sales_amount": 86000 });
    b["offence"] = "生产、销售伪劣产品罪".into();
    b["reported_on"] = "2026-09-21".into();
    b["approved_on"] = "2026-09-22".into();
    b["approved_by"] = json!({ "name": "刘局长", "title": "局长" });
    b["reports"] =
        json!([{ "title": "案件调查报告", "kind": "investigation" }, { "title": "检验报告", "kind": "inspection" }]);
    b["seized_items"] = json!([{ "name": "白酒", "quantity": 300, "unit": "瓶", "disposed": false }]);
    m
}

/// Two NATS-native bureaus to append to the county (`TestHub::start`,
/// `start_secured`): agriculture, then transport. Each `[[org]]` block ends
/// with its `deliver` line, so a test may append settings to the last one.
pub const NATS_AGRI: &str = r#"
[[org]]
id = "qh-agri"
name = "清河县农业农村局"
kind = "agriculture"
region = "990101"
token = "token-qh-agri-0123456789"
deliver = { nats = true }
"#;

pub const NATS_TRANSPORT: &str = r#"
[[org]]
id = "qh-transport"
name = "清河县交通运输局"
kind = "transport"
region = "990101"
token = "token-qh-transport-0123456789"
deliver = { nats = true }
"#;
