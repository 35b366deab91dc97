//! The organisations' workspace (docs/workspace.md) in a real browser: a
//! town with no system of its own (`deliver = { pull = true }`) receives a
//! referral, collects it, answers it with the 复函 form generated from the
//! schema — a refused answer shows the problem at its field — and prints the
//! letter; the referring bureau's system receives the signed reply. A
//! procuratorate officer sees the crime-suspected cases of its county and
//! nothing of the next county's, and neither can open another's case by
//! its address. `workspace.mjs` drives Debian's headless Chromium; this
//! side prepares the traffic and checks what left the hub.

mod common;

use std::time::Duration;

use common::{drive, passed, shots_dir, tools};
use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

const T: Duration = Duration::from_secs(30);

/// 临水镇 collects by pull; a second county, 990102, has a market bureau,
/// an enforcement bureau and supervisors of its own.
const EXTRA: &str = r#"
[[org]]
id = "qh-town-ls"
name = "临水镇人民政府"
kind = "town_government"
region = "990101103"
token = "token-qh-town-ls-0123456789"
deliver = { pull = true, pull_alert_hours = 24 }

[[org]]
id = "yl-market"
name = "榆林县市场监督管理局"
kind = "market_regulation"
region = "990102"
token = "token-yl-market-0123456789"
deliver = { nats = true }

[[org]]
id = "yl-enforce"
name = "榆林县综合行政执法局"
kind = "comprehensive_enforcement"
region = "990102"
token = "token-yl-enforce-0123456789"
deliver = { nats = true }

[[org]]
id = "yl-procuratorate"
name = "榆林县人民检察院"
kind = "procuratorate"
region = "990102"
token = "token-yl-procuratorate-0123456789"
deliver = { nats = true }
"#;

const TOWN: &str = "token-qh-town-ls-0123456789";

async fn submit(hub: &TestHub, org: &str, msg: &Value) -> anyhow::Result<String> {
    let (s, r) = hub.submit(org, msg).await?;
    anyhow::ensure!(s == 202, "{} refused: {s} {r}", msg["id"]);
    Ok(r["case"].as_str().unwrap_or_default().to_owned())
}

/// The operator's record of `case` once a criminal threshold is on it.
async fn crime_recorded(hub: &TestHub, case: &str) -> anyhow::Result<()> {
    let op = hub.operator_token();
    eventually(T, "the criminal threshold recorded", || async {
        let (s, c) = hub.get(&format!("/v1/cases/{case}"), &op).await.ok()?;
        (s == 200 && c["crime_met"] == true && c["handed_off"] == false).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_without_a_system_answers_in_its_workspace_and_supervisors_see_their_county() -> anyhow::Result<()> {
    let chromium = tools()?;
    let hub = TestHub::start_services(EXTRA, &xj::hub::Service::UP).await?;

    // The market bureau refers a clue to the town, which has no system.
    let mut referral = sample_clue("WS-REF-1", "qh-market", "FOOD-STALL", "990101103");
    referral["recipient"] = json!("qh-town-ls");
    let ref_case = submit(&hub, "qh-market", &referral).await?;
    // A crime suspected in this county, and one in the next.
    let mut crime = sample_clue("WS-CRIME-1", "qh-eco", "PRODUCT-FAKE", "990101101");
    crime["body"]["facts"] = json!({ "sales_amount": 86000 });
    let qh_crime = submit(&hub, "qh-eco", &crime).await?;
    let mut far = sample_clue("WS-CRIME-YL", "yl-market", "PRODUCT-FAKE", "990102101");
    far["recipient"] = json!("yl-enforce");
    far["body"]["facts"] = json!({ "sales_amount": 86000 });
    far["body"]["location"]["region"] = json!("990102101");
    let yl_crime = submit(&hub, "yl-market", &far).await?;
    crime_recorded(&hub, &qh_crime).await?;
    crime_recorded(&hub, &yl_crime).await?;
    // The referral waits in the town's inbox (the page collects it).
    eventually(T, "the referral waiting for the town", || async {
        let (s, v) = hub.get("/v1/inbox", TOWN).await.ok()?;
        (s == 200
            && v["messages"].as_array()?.iter().any(|m| m["body"].as_str().is_some_and(|b| b.contains("WS-REF-1"))))
        .then_some(())
    })
    .await?;

    let profile = tempfile::tempdir()?;
    let downloads = tempfile::tempdir()?;
    let shots = shots_dir()?;
    let env = [
        ("XJ_BASE", hub.base.clone()),
        ("XJ_CHROMIUM", chromium.display().to_string()),
        ("XJ_SHOTS", shots.display().to_string()),
        ("XJ_PROFILE", profile.path().display().to_string()),
        ("XJ_DOWNLOADS", downloads.path().display().to_string()),
        ("XJ_TOWN_TOKEN", TOWN.to_string()),
        ("XJ_PROCURATORATE_TOKEN", hub.token("qh-procuratorate")),
        ("XJ_REFERRAL", "WS-REF-1".to_string()),
        ("XJ_REFERRAL_CASE", ref_case.clone()),
        ("XJ_CRIME_CASE", qh_crime.clone()),
        ("XJ_FAR_CASE", yl_crime.clone()),
    ];
    let stdout = drive("workspace.mjs", &env, Duration::from_secs(150)).await?;
    passed(
        &stdout,
        &[
            "the pull inbox lists the referral",
            "the problem shows at its field",
            "the reply is sent",
            "the letter downloads",
            "another organisation's case stays closed",
            "the county's crime-suspected cases",
            "nothing of another county",
        ],
    );
    let reply_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("reply "))
        .map(str::trim)
        .ok_or_else(|| anyhow::anyhow!("the driver did not say which reply it sent:\n{stdout}"))?
        .to_owned();

    // The referring bureau's system received the town's reply, signed by
    // the hub, once.
    let market = hub.receiver("qh-market");
    let got = eventually(T, "the reply delivered to the market bureau", || async {
        market.deliveries().into_iter().find(|d| d.json["id"] == reply_id.as_str())
    })
    .await?;
    assert_eq!(got.json["type"], "referral_reply");
    assert_eq!(got.json["sender"], "qh-town-ls");
    assert_eq!(got.json["reply_to"], "WS-REF-1");
    assert_eq!(got.json["case"], ref_case.as_str());
    assert_eq!(got.json["body"]["decision"], "accepted");
    assert_eq!(got.json["body"]["received"]["pages"], 12);
    let (_, keys) = hub.get("/v1/keys", &hub.operator_token()).await?;
    let key = keys["keys"]
        .as_array()
        .and_then(|k| k.iter().find(|k| k["status"] == "current"))
        .and_then(|k| k["public_key"].as_str())
        .ok_or_else(|| anyhow::anyhow!("no current key: {keys}"))?;
    let sig = got.header("xj-signature").unwrap_or_default();
    xj_bus::signing::verify_header(key, sig, &got.body).map_err(|e| anyhow::anyhow!("Xj-Signature: {e}"))?;
    let copies = market.deliveries().iter().filter(|d| d.json["id"] == reply_id.as_str()).count();
    assert_eq!(copies, 1);

    // The letter the town printed is the 复函 of its reply.
    let pdf = std::fs::read(downloads.path().join("letter.pdf"))?;
    assert!(pdf.starts_with(b"%PDF"), "the download is no PDF");
    let path = downloads.path().join("letter.pdf");
    let out = std::process::Command::new("pdftotext").args(["-enc", "UTF-8"]).arg(&path).arg("-").output()?;
    anyhow::ensure!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
    let text: String = String::from_utf8_lossy(&out.stdout).chars().filter(|c| !c.is_whitespace()).collect();
    for want in ["接收处理情况的复函", reply_id.as_str(), "临水镇人民政府", "12"] {
        assert!(text.contains(want), "the letter has no {want:?}:\n{text}");
    }
    println!("screenshots in {}", shots.display());
    Ok(())
}
