//! Demo traffic: referrals a real county would see, sent in turn by the
//! sandbox departments through the gateway, as their own systems would.

use std::sync::Arc;

use serde_json::{Value, json};
use xj_bus::Shutdown;
use xj_config::Settings;

use crate::SandboxOptions;

/// (sender, type, matter, town/county of the location, cause).
const SCENARIOS: &[(&str, &str, &str, &str, &str)] = &[
    ("qh-eco", "clue_referral", "FOOD-STALL", "990101101", "流动摊贩无证销售熟食"),
    ("qh-eco", "clue_referral", "PRODUCT-FAKE", "990101102", "销售掺假白酒"),
    ("qh-market", "clue_referral", "WASTE-DUMP", "990101102", "河道旁倾倒建筑垃圾"),
    ("qh-town-dg", "case_referral", "POLLUTION", "990101101", "废机油非法处置"),
    ("qh-enforce", "clue_referral", "FOOD-STALL", "990101102", "夜市无证经营食品"),
    // The market bureau's JSON hand-off reaches the economic police unit's
    // XML system, which signs a receipt and decides (Decree 310).
    ("qh-market", "criminal_handoff", "PRODUCT-FAKE", "990101101", "销售掺假白酒"),
    // The environment bureau's XML application reaches the court's JSON
    // system, which rules (非诉执行申请).
    ("qh-eco", "assistance_request", "POLLUTION", "990101101", "逾期不缴纳罚款"),
];

/// The `seq`-th demo message (scenarios in turn) and its sender.
pub fn scenario(seq: u64) -> (String, Value) {
    let (sender, kind, matter, region, cause) = SCENARIOS[(seq % SCENARIOS.len() as u64) as usize];
    let stem = format!("91{}MA{:07}", &region[..6], seq % 10_000_000);
    let uscc = format!("{stem}{}", xj_model::ids::uscc_check_char(&stem).unwrap_or('0'));
    let today = chrono::Local::now().date_naive();
    let mut body = json!({
        "doc_no": format!("清{}案移〔2026〕{}号", &sender[3..], seq),
        "matter": matter,
        "cause": cause,
        "party": { "name": format!("清河县示例经营户{seq}"), "uscc": uscc, "address": "清河县人民路88号" },
        "found_on": today.to_string(),
        "location": { "region": region, "address": "清河县" },
        "reason": "经查该事项不属于本机关管辖",
        "legal_basis": "《中华人民共和国行政处罚法》第二十二条",
        "facts": { "sales_amount": 8000 + (seq % 7) * 1000, "hazardous_waste_tonnes": 0.5 },
        "summary": "日常巡查中发现",
        "officers": [ { "name": "赵一", "cert_no": "99010120001" }, { "name": "钱二", "cert_no": "99010120002" } ],
        "materials": [ { "title": "现场检查笔录", "copies": 1 }, { "title": "现场照片", "copies": 6 } ],
        "contact": { "name": "孙三", "phone": "0999-6660001", "address": "清河县人民路8号" }
    });
    if kind == "case_referral" || kind == "criminal_handoff" {
        body["filed_on"] = json!(today.to_string());
        body["seized_items"] = json!([{ "name": "废机油", "quantity": 12, "unit": "桶", "disposed": false }]);
    }
    let mut recipient = Value::Null;
    if kind == "criminal_handoff" {
        body["seized_items"] = json!([{ "name": "白酒（500ml）", "quantity": 240, "unit": "瓶", "disposed": false }]);
        body["facts"] = json!({ "sales_amount": 68000, "unsold_value": 25000 });
        body["offence"] = json!("生产、销售伪劣产品罪（刑法第一百四十条）");
        body["reason"] = json!("销售金额达到刑事立案追诉标准，依法移送公安机关");
        body["approved_by"] = json!({ "name": "吴局长", "title": "局长" });
        body["approved_on"] = json!(today.to_string());
        body["reported_on"] = json!(today.to_string());
        body["reports"] = json!([{ "title": "案件调查终结报告", "kind": "investigation" }]);
    }
    if kind == "assistance_request" {
        recipient = json!("qh-court");
        body = json!({
            "need": format!("申请强制执行清环罚〔2026〕{seq}号行政处罚决定书确定的罚款"),
            "due_basis": "enforcement",
            "matter": matter,
            "party": { "name": format!("清河县示例经营户{seq}"), "uscc": uscc, "address": "清河县人民路88号", "kind": "organisation" },
            "enforcement": {
                "application_doc_no": format!("清环强执申〔2026〕{seq}号"),
                "decision_doc_no": format!("清环罚〔2026〕{seq}号"),
                "decided_on": (today - chrono::Duration::days(120)).to_string(),
                "penalty": { "kind": "fine", "amount": 50000 },
                "unpaid_amount": 50000
            },
            "contact": { "name": "孙三", "phone": "0999-6660001" }
        });
    }
    let msg = json!({
        "recipient": recipient,
        "id": format!("DEMO-{seq:06}"),
        "type": kind,
        "sender": sender,
        "sent_at": chrono::Local::now().to_rfc3339(),
        "classification": "internal",
        "body": body,
    });
    (sender.to_string(), msg)
}

pub async fn run(
    settings: Arc<Settings>,
    http: reqwest::Client,
    opts: SandboxOptions,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    // Ids must not collide with a previous run's on the same store.
    let mut seq = chrono::Utc::now().timestamp() as u64 % 1_000_000 * 10;
    let mut ticker = tokio::time::interval(opts.demo_every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let (sender, msg) = scenario(seq);
        let sender = sender.as_str();
        let msg = &msg;
        seq += 1;
        let Some(org) = settings.org(sender) else {
            continue;
        };
        // Each department submits in its own format (/v1/native, docs/writing-a-mapping.md).
        let res = crate::speak::submit(&http, &opts.gateway, &settings.mappings, org, msg).await;
        match res {
            Ok(r) if r.status().is_success() => {
                tracing::info!(sender, id = %msg["id"], "demo referral sent")
            }
            Ok(r) => {
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                tracing::warn!(sender, %status, %body, "demo referral refused")
            }
            Err(e) => tracing::warn!(sender, error = %e, "demo referral failed"),
        }
    }
}
