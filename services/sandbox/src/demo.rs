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
    if kind == "case_referral" {
        body["filed_on"] = json!(today.to_string());
        body["seized_items"] = json!([{ "name": "废机油", "quantity": 12, "unit": "桶", "disposed": false }]);
    }
    let msg = json!({
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
        let res = http.post(format!("{}/v1/messages", opts.gateway)).bearer_auth(&org.secret).json(msg).send().await;
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
