//! The monthly report (《县行政执法协调监督工作方案》：行政执法信息月报制度) from
//! outside, on the manual clock: the county's enforcement organisations
//! report November to the justice bureau, some in November, some in
//! December before the 10th, one not at all until it is overdue; the edge
//! refuses what the county's form does not allow; the clock tells the
//! late one and its supervisor at 24:00 of the 10th and nobody else; and
//! `GET /v1/reports/monthly` gives the justice bureau the consolidated
//! report as JSON, CSV and a workbook (docs/api.md, "The consolidated
//! monthly report").

use std::collections::BTreeSet;
use std::io::Cursor;
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

use crate::common::{assert_error, pointers};

const T: Duration = Duration::from_secs(30);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

const CASE: &str = "RPT-990101-2026-11";

/// The county's four indicators ([report] indicators, the default).
const INDICATORS: [&str; 4] =
    ["commitment_matters", "four_lists_cases", "impact_assessments", "enterprise_cases_closed"];

/// The county's enforcement organisations in the order of the
/// configuration: the test county's five, then the two added here.
const ENFORCEMENT: [&str; 7] = ["qh-market", "qh-eco", "qh-enforce", "qh-town-dg", "qh-town-xs", "qh-nr", "qh-health"];

/// Friday 27 November 2026, 10:00 in China.
const MANUAL: &str = "[clock]\nmode = \"manual\"\nstart = \"2026-11-27T10:00:00+08:00\"\n";

/// Two bureaus of the sandbox county the test county lacks, with their
/// Chinese names, and the next county, 990102, with a justice bureau and
/// one bureau of its own.
const MORE: [(&str, &str, &str, &str); 4] = [
    ("qh-nr", "清河县自然资源局", "natural_resources", "990101"),
    ("qh-health", "清河县卫生健康局", "health", "990101"),
    ("yl-justice", "榆林县司法局", "justice_bureau", "990102"),
    ("yl-market", "榆林县市场监督管理局", "market_regulation", "990102"),
];

/// What each organisation reports for November: the four indicators
/// (and, from the market bureau, one figure the county does not ask for).
fn figures(org: &str) -> Value {
    let (a, b, c, d) = match org {
        "qh-market" => (12, 3, 2, 9),
        "qh-eco" => (4, 1, 0, 5),
        "qh-enforce" => (20, 6, 1, 14),
        "qh-town-dg" => (7, 0, 0, 3),
        "qh-town-xs" => (2, 1, 0, 1),
        "qh-nr" => (5, 2, 1, 4),
        "qh-health" => (8, 0, 3, 6),
        _ => (1, 1, 1, 1),
    };
    let mut f = json!({ "commitment_matters": a, "four_lists_cases": b, "impact_assessments": c, "enterprise_cases_closed": d });
    if org == "qh-market" {
        f["inspections"] = 41.into();
    }
    f
}

fn report(id: &str, org: &str, sent_at: &str, figures: Value) -> Value {
    json!({ "id": id, "type": "monthly_report", "sender": org, "recipient": "qh-justice", "sent_at": sent_at,
            "classification": "internal",
            "body": { "month": "2026-11", "figures": figures, "doc_no": format!("{org}〔2026〕11号") } })
}

fn id_of(org: &str) -> String {
    format!("MR-{org}-2026-11")
}

async fn send_report(hub: &TestHub, org: &str, sent_at: &str) -> anyhow::Result<()> {
    let (s, receipt) = hub.submit(org, &report(&id_of(org), org, sent_at, figures(org))).await?;
    anyhow::ensure!(s == 202, "{org}'s report refused: {s} {receipt}");
    // Every report of the county's month is on one case, whatever it names.
    anyhow::ensure!(receipt["case"] == CASE, "{org}'s report on {}", receipt["case"]);
    Ok(())
}

async fn advance(hub: &TestHub, by: &str) -> anyhow::Result<()> {
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": by })).await?;
    anyhow::ensure!(s == 200, "advance {by}: {s} {b}");
    Ok(())
}

fn clock_of<'a>(case: &'a Value, org: &str) -> Option<&'a Value> {
    let id = format!("monthly_report:2026-11:{org}");
    case["clocks"].as_array()?.iter().find(|c| c["id"] == id.as_str())
}

/// Waits until the operator sees `org`'s November clock with `status`.
async fn wait_clock(hub: &TestHub, org: &str, status: &str) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(T, &format!("{org}'s report clock {status}"), || async {
        let (s, c) = hub.get(&format!("/v1/cases/{CASE}"), &op).await.ok()?;
        (s == 200).then_some(())?;
        clock_of(&c, org).filter(|k| k["status"] == status).cloned()
    })
    .await
}

/// `(receiver, case, clock owner)` of every `overdue` alert about a
/// November report clock, over every receiver of the test.
fn november_overdue(hub: &TestHub) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (org, r) in &hub.receivers {
        for a in r.deliveries().into_iter().map(|d| d.json) {
            let case = a["case"].as_str().unwrap_or_default();
            let clock = &a["body"]["clock"];
            if a["type"] == "supervision_alert"
                && a["body"]["kind"] == "overdue"
                && clock["name"] == "monthly_report"
                && case.starts_with("RPT-")
                && case.ends_with("-2026-11")
            {
                let owner = clock["owner"].as_str().unwrap_or_default();
                out.insert((org.clone(), case.to_string(), owner.to_string()));
            }
        }
    }
    out
}

/// GET the report with `query` as `token`, with `accept` when given:
/// status, headers and body bytes.
async fn fetch(
    hub: &TestHub,
    query: &str,
    token: &str,
    accept: Option<&str>,
) -> anyhow::Result<(u16, reqwest::header::HeaderMap, Vec<u8>)> {
    let mut req = hub.http.get(format!("{}/v1/reports/monthly?{query}", hub.base)).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Ok((status, headers, r.bytes().await?.to_vec()))
}

async fn json_report(hub: &TestHub, query: &str, token: &str) -> anyhow::Result<Value> {
    let (s, h, body) = fetch(hub, query, token, None).await?;
    let v: Value = serde_json::from_slice(&body)?;
    anyhow::ensure!(s == 200, "report {query}: {s} {v}");
    anyhow::ensure!(h.get("content-type").is_some_and(|c| c == "application/json"), "content type {h:?}");
    Ok(v)
}

/// The row of `org` in the report's only county.
fn row<'a>(report: &'a Value, org: &str) -> &'a Value {
    report["counties"][0]["orgs"].as_array().and_then(|a| a.iter().find(|r| r["org"] == org)).unwrap_or(&Value::Null)
}

fn orgs_of(report: &Value) -> Vec<String> {
    report["counties"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["orgs"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["org"].as_str().map(str::to_owned))
        .collect()
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

fn number(d: Option<&Data>) -> Option<f64> {
    match d? {
        Data::Float(f) => Some(*f),
        Data::Int(i) => Some(*i as f64),
        _ => None,
    }
}

fn text(d: Option<&Data>) -> String {
    match d {
        Some(Data::String(s)) => s.clone(),
        Some(Data::Empty) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_justice_bureau_gets_the_county_report_with_the_late_and_the_overdue() -> anyhow::Result<()> {
    let hub = TestHub::start_with_orgs(MANUAL, &MORE).await?;
    let now = "2026-11-27T10:00:00+08:00";

    // The edge refuses what the county's form does not allow, each at its place.
    let mut short = figures("qh-market");
    if let Some(f) = short.as_object_mut() {
        f.remove("impact_assessments");
    }
    let (s, b) = hub.submit("qh-market", &report("MR-SHORT", "qh-market", now, short)).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), ["/body/figures/impact_assessments"], "{b}");
    let (s, b) =
        hub.submit("qh-police-econ", &report("MR-POLICE", "qh-police-econ", now, figures("qh-police-econ"))).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), ["/sender"], "a police unit is not an enforcement organisation: {b}");
    let mut to_procuratorate = report("MR-PRO", "qh-market", now, figures("qh-market"));
    to_procuratorate["recipient"] = "qh-procuratorate".into();
    let (s, b) = hub.submit("qh-market", &to_procuratorate).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), ["/recipient"], "reports go to the justice bureau: {b}");
    let mut december = report("MR-DEC", "qh-market", now, figures("qh-market"));
    december["body"]["month"] = "2026-12".into();
    let (s, b) = hub.submit("qh-market", &december).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), ["/body/month"], "December has not begun: {b}");

    // November's business: the market bureau refers a clue to 东关镇.
    let (s, b) = hub.submit("qh-market", &sample_clue("MR-CLUE-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    eventually(T, "the clue at 东关镇", || async {
        hub.receiver("qh-town-dg").deliveries().into_iter().find(|d| d.json["id"] == "MR-CLUE-1")
    })
    .await?;

    // Three report before the month is out; the justice bureau receives them.
    for org in ["qh-market", "qh-eco", "qh-enforce"] {
        send_report(&hub, org, now).await?;
    }
    let got = eventually(T, "three reports at the justice bureau", || async {
        let d: Vec<_> = hub
            .receiver("qh-justice")
            .deliveries()
            .into_iter()
            .filter(|d| d.json["type"] == "monthly_report")
            .collect();
        (d.len() == 3).then_some(d)
    })
    .await?;
    assert!(got.iter().all(|d| d.header("xj-case") == Some(CASE)), "delivered on the month's case");
    let justice = hub.token("qh-justice");
    // Before the month ends there are no clocks: who reported is on time,
    // the others not open yet.
    let early = eventually(T, "three reports in the consolidated report", || async {
        let r = json_report(&hub, "month=2026-11", &justice).await.ok()?;
        (r["counties"][0]["totals"]["reported"] == 3).then_some(r)
    })
    .await?;
    for org in ENFORCEMENT {
        let status = if ["qh-market", "qh-eco", "qh-enforce"].contains(&org) { "on_time" } else { "not_open" };
        assert_eq!(row(&early, org)["status"], status, "{org}: {early}");
        assert_eq!(row(&early, org)["clock_status"], Value::Null, "{org}: {early}");
    }

    // December: the tracker opens November's clocks; the reports already in
    // meet theirs at once. Two more report on 2 December.
    advance(&hub, "P5D").await?;
    for org in ["qh-market", "qh-eco", "qh-enforce"] {
        let c = wait_clock(&hub, org, "met").await?;
        assert_eq!(c["closed_by"], id_of(org));
    }
    let xs = wait_clock(&hub, "qh-town-xs", "running").await?;
    assert_eq!(xs["due"], "2026-12-10T15:59:59Z", "24:00 +08:00 of 10 December");
    assert_eq!(xs["supervisors"], json!(["qh-justice"]));
    assert_eq!(xs["about"], CASE);
    let dec2 = "2026-12-02T10:00:00+08:00";
    for org in ["qh-town-dg", "qh-nr"] {
        send_report(&hub, org, dec2).await?;
        wait_clock(&hub, org, "met").await?;
    }
    let r = json_report(&hub, "month=2026-11", &justice).await?;
    assert_eq!(row(&r, "qh-town-xs")["status"], "pending", "{r}");
    assert_eq!(row(&r, "qh-health")["status"], "pending", "{r}");

    // The evening of the 10th: the health bureau reports just in time.
    advance(&hub, "P8DT10H").await?;
    send_report(&hub, "qh-health", "2026-12-10T20:00:00+08:00").await?;
    wait_clock(&hub, "qh-health", "met").await?;
    // 23:59 on the 10th: 西山镇 is reminded, not yet overdue.
    advance(&hub, "PT3H59M").await?;
    wait_clock(&hub, "qh-town-xs", "reminded").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(november_overdue(&hub).is_empty(), "overdue before 24:00: {:?}", november_overdue(&hub));
    assert_eq!(wait_clock(&hub, "qh-town-xs", "reminded").await?["status"], "reminded");
    let r = json_report(&hub, "month=2026-11", &justice).await?;
    assert_eq!(row(&r, "qh-town-xs")["status"], "pending", "{r}");

    // Past 24:00: 西山镇 and the justice bureau are told, and nobody else
    // of this county; the next county's bureau, which never reported, and
    // its own justice bureau hear of theirs.
    advance(&hub, "PT2M").await?;
    let alert = eventually(T, "the overdue alert at 西山镇", || async {
        hub.receiver("qh-town-xs").deliveries().into_iter().map(|d| d.json).find(|a| {
            a["type"] == "supervision_alert"
                && a["body"]["kind"] == "overdue"
                && a["body"]["clock"]["name"] == "monthly_report"
        })
    })
    .await?;
    assert_eq!(alert["case"], CASE);
    assert_eq!(alert["body"]["clock"]["owner"], "qh-town-xs");
    assert_eq!(alert["body"]["clock"]["due"], "2026-12-10T15:59:59+00:00");
    let told = |org: &str, case: &str, owner: &str| (org.to_string(), case.to_string(), owner.to_string());
    let expected: BTreeSet<(String, String, String)> = [
        told("qh-town-xs", CASE, "qh-town-xs"),
        told("qh-justice", CASE, "qh-town-xs"),
        told("yl-market", "RPT-990102-2026-11", "yl-market"),
        told("yl-justice", "RPT-990102-2026-11", "yl-market"),
    ]
    .into();
    eventually(T, "the four overdue alerts", || async { (november_overdue(&hub) == expected).then_some(()) }).await?;
    wait_clock(&hub, "qh-town-xs", "overdue").await?;
    let r = json_report(&hub, "month=2026-11", &justice).await?;
    assert_eq!(row(&r, "qh-town-xs")["status"], "overdue", "{r}");
    assert_eq!(row(&r, "qh-town-xs")["reported_at"], Value::Null, "{r}");

    // 西山镇 reports late: the row says late, and nobody is told again.
    send_report(&hub, "qh-town-xs", "2026-12-11T00:01:00+08:00").await?;
    let r = eventually(T, "西山镇's late report", || async {
        let r = json_report(&hub, "month=2026-11", &justice).await.ok()?;
        (row(&r, "qh-town-xs")["status"] == "late").then_some(r)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(november_overdue(&hub), expected, "told once");
    let op = hub.operator_token();
    let (_, case) = hub.get(&format!("/v1/cases/{CASE}"), &op).await?;
    assert_eq!(clock_of(&case, "qh-town-xs").map(|c| c["status"].clone()), Some("overdue".into()));

    // The JSON report, exactly.
    assert_eq!(r["month"], "2026-11");
    assert_eq!(r["generated_at"], "2026-12-11T00:01:00+08:00");
    assert_eq!(r["indicators"], json!(INDICATORS));
    assert_eq!(r["hub_fields"].as_array().map(Vec::len), Some(xj_bus::stats::FIELDS.len()));
    assert_eq!(r["counties"].as_array().map(Vec::len), Some(1), "the justice bureau's own county only: {r}");
    let county = &r["counties"][0];
    assert_eq!(county["county"], "990101");
    assert_eq!(county["case"], CASE);
    assert_eq!(county["due"], "2026-12-10T23:59:59+08:00");
    assert_eq!(orgs_of(&r), ENFORCEMENT, "one row per enforcement organisation, in the configuration's order");
    let when = |org: &str| match org {
        "qh-market" | "qh-eco" | "qh-enforce" => "2026-11-27T10:00:00+08:00",
        "qh-town-dg" | "qh-nr" => "2026-12-02T10:00:00+08:00",
        "qh-health" => "2026-12-10T20:00:00+08:00",
        _ => "2026-12-11T00:01:00+08:00",
    };
    for org in ENFORCEMENT {
        let row = row(&r, org);
        let (status, clock) = if org == "qh-town-xs" { ("late", "overdue") } else { ("on_time", "met") };
        assert_eq!(row["status"], status, "{org}");
        assert_eq!(row["clock_status"], clock, "{org}");
        assert_eq!(row["reported_at"], when(org), "{org}");
        assert_eq!(row["message_id"], id_of(org).as_str(), "{org}");
        let mut want = figures(org);
        if let Some(f) = want.as_object_mut() {
            f.remove("inspections");
        }
        assert_eq!(row["figures"], want, "{org}: only the county's indicators");
    }
    assert_eq!(row(&r, "qh-nr")["name"], "清河县自然资源局");
    assert_eq!(row(&r, "qh-nr")["kind"], "natural_resources");
    // The hub's own figures for November.
    let hub_of = |org: &str, f: &str| row(&r, org)["hub"][f].clone();
    assert_eq!(hub_of("qh-market", "referrals_sent"), 1);
    assert_eq!(hub_of("qh-market", "referrals_received"), 0);
    assert_eq!(hub_of("qh-market", "messages"), 2, "the clue and the report");
    assert_eq!(hub_of("qh-town-dg", "referrals_received"), 1);
    assert_eq!(hub_of("qh-town-dg", "referrals_sent"), 0);
    assert_eq!(hub_of("qh-eco", "messages"), 1);
    assert_eq!(hub_of("qh-town-xs", "messages"), 0, "its report came in December");
    // Every counter is the one `GET /v1/stats` shows for the month.
    let (s, stats) = hub.get("/v1/stats?month=2026-11", &op).await?;
    assert_eq!(s, 200, "{stats}");
    for org in ENFORCEMENT {
        for f in xj_bus::stats::FIELDS {
            let want = stats["orgs"][org][f].as_u64().unwrap_or(0);
            assert_eq!(hub_of(org, f), want, "{org} {f}");
        }
    }
    let totals = &county["totals"];
    assert_eq!(totals["orgs"], 7);
    assert_eq!(totals["reported"], 7);
    assert_eq!(
        totals["statuses"],
        json!({ "on_time": 6, "late": 1, "overdue": 0, "missing": 0, "pending": 0, "not_open": 0 })
    );
    assert_eq!(
        totals["figures"],
        json!({ "commitment_matters": 58, "four_lists_cases": 13, "impact_assessments": 7, "enterprise_cases_closed": 42 })
    );
    assert_eq!(totals["hub"]["referrals_sent"], 1);
    assert_eq!(totals["hub"]["referrals_received"], 1);
    let messages: u64 = ENFORCEMENT.iter().map(|o| hub_of(o, "messages").as_u64().unwrap_or(0)).sum();
    assert_eq!(totals["hub"]["messages"], messages);

    // CSV: a header, a row per organisation, the totals.
    let (s, h, body) = fetch(&hub, "month=2026-11&format=csv", &justice, None).await?;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-type"), "text/csv; charset=utf-8");
    assert_eq!(header(&h, "content-disposition"), "attachment; filename=\"monthly-990101-2026-11.csv\"");
    let mut csv = csv::Reader::from_reader(body.as_slice());
    let head: Vec<String> = csv.headers()?.iter().map(str::to_owned).collect();
    let mut want_head: Vec<String> =
        ["county", "month", "due", "org", "name", "status", "reported_at", "message_id"].map(String::from).to_vec();
    want_head.extend(INDICATORS.map(String::from));
    want_head.extend(xj_bus::stats::FIELDS.map(String::from));
    assert_eq!(head, want_head);
    let rows: Vec<Vec<String>> =
        csv.records().map(|r| r.map(|r| r.iter().map(str::to_owned).collect())).collect::<Result<_, csv::Error>>()?;
    assert_eq!(rows.len(), 8, "seven organisations and the totals");
    let at = |name: &str| head.iter().position(|h| h == name).unwrap_or(usize::MAX);
    for (i, org) in ENFORCEMENT.iter().enumerate() {
        assert_eq!(rows[i][at("org")], *org);
        assert_eq!(rows[i][at("county")], "990101");
        assert_eq!(rows[i][at("due")], "2026-12-10T23:59:59+08:00");
        assert_eq!(rows[i][at("status")], if *org == "qh-town-xs" { "late" } else { "on_time" });
        assert_eq!(rows[i][at("reported_at")], when(org));
        for ind in INDICATORS {
            assert_eq!(rows[i][at(ind)], figures(org)[ind].to_string(), "{org} {ind}");
        }
    }
    assert_eq!(rows[5][at("name")], "清河县自然资源局");
    assert_eq!(rows[6][at("name")], "清河县卫生健康局");
    assert_eq!(rows[0][at("message_id")], "MR-qh-market-2026-11");
    assert_eq!(rows[0][at("referrals_sent")], "1");
    assert_eq!(rows[0][at("messages")], "2");
    assert_eq!(rows[3][at("referrals_received")], "1");
    let total = &rows[7];
    assert_eq!((total[at("org")].as_str(), total[at("name")].as_str()), ("total", "合计"));
    assert_eq!(total[at("status")], "7/7");
    assert_eq!(
        INDICATORS.map(|i| total[at(i)].clone()),
        ["58", "13", "7", "42"].map(String::from),
        "the indicators' sums"
    );
    assert_eq!(total[at("referrals_sent")], "1");
    assert_eq!(total[at("messages")], messages.to_string());
    // By Accept, the same.
    let (s, h, again) = fetch(&hub, "month=2026-11", &justice, Some("text/csv")).await?;
    assert_eq!((s, header(&h, "content-type")), (200, "text/csv; charset=utf-8"));
    assert_eq!(again, body);

    // The workbook, asked for by Accept.
    let (s, h, book) = fetch(&hub, "month=2026-11", &justice, Some(XLSX)).await?;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-type"), XLSX);
    assert_eq!(header(&h, "content-disposition"), "attachment; filename=\"monthly-990101-2026-11.xlsx\"");
    let mut wb: Xlsx<_> = Xlsx::new(Cursor::new(book))?;
    assert_eq!(wb.sheet_names(), ["月报汇总", "说明"]);
    let sheet = wb.worksheet_range("月报汇总")?;
    let cell = |r: u32, c: u32| sheet.get_value((r, c));
    let title = text(cell(0, 0));
    assert!(title.contains("990101") && title.contains("2026-11") && title.contains("月报汇总"), "{title}");
    assert!(text(cell(1, 0)).contains("2026-12-10 24:00"), "{}", text(cell(1, 0)));
    assert_eq!(text(cell(2, 0)), "单位代码\norg");
    assert_eq!(text(cell(2, 2)), "报送状态\nstatus");
    assert_eq!(text(cell(2, 5)), "告知承诺制事项\ncommitment_matters");
    assert_eq!(text(cell(2, 9)), "移送线索/案件\nreferrals_sent");
    for (i, org) in ENFORCEMENT.iter().enumerate() {
        let r = 3 + i as u32;
        assert_eq!(text(cell(r, 0)), *org);
        assert_eq!(text(cell(r, 2)), if *org == "qh-town-xs" { "逾期报送" } else { "按时报送" }, "{org}");
        assert_eq!(text(cell(r, 4)), id_of(org));
        for (k, ind) in INDICATORS.iter().enumerate() {
            assert_eq!(number(cell(r, 5 + k as u32)), figures(org)[*ind].as_f64(), "{org} {ind}");
        }
    }
    assert_eq!(text(cell(8, 1)), "清河县自然资源局");
    assert_eq!(text(cell(3, 3)), "2026-11-27 10:00");
    assert_eq!(number(cell(3, 9)), Some(1.0), "the market bureau's referral");
    assert_eq!(number(cell(6, 10)), Some(1.0), "东关镇 received it");
    assert_eq!(text(cell(10, 0)), "合计");
    assert_eq!(text(cell(10, 2)), "已报 7/7");
    assert_eq!([5, 6, 7, 8].map(|c| number(cell(10, c))), [Some(58.0), Some(13.0), Some(7.0), Some(42.0)]);
    assert_eq!(number(cell(10, 9)), Some(1.0));
    assert_eq!(cell(11, 0), None, "nothing after the totals");
    let notes = wb.worksheet_range("说明")?;
    let described: Vec<String> = (3..3 + 27).map(|r| text(notes.get_value((r, 1)))).collect();
    assert_eq!(&described[..5], ["org", "name", "status", "reported_at", "message_id"]);
    assert_eq!(&described[5..9], INDICATORS);
    assert_eq!(&described[9..], xj_bus::stats::FIELDS);
    assert!(text(notes.get_value((8, 3))).contains("行政执法信息月报制度"), "an indicator's source");
    assert!(text(notes.get_value((12, 3))).contains("xj_stats"), "a counter's source");

    // Who may read it: not a bureau; the next county's justice bureau its
    // own county only; the operator every county, or one.
    let (s, _, b) = fetch(&hub, "month=2026-11", &hub.token("qh-market"), None).await?;
    let b: Value = serde_json::from_slice(&b)?;
    assert_error(s, &b, 403, "forbidden");
    assert!(b["message"].as_str().is_some_and(|m| m.contains("justice bureau")), "{b}");
    let yl = hub.token("yl-justice");
    let theirs = json_report(&hub, "month=2026-11", &yl).await?;
    assert_eq!(theirs["counties"].as_array().map(Vec::len), Some(1));
    assert_eq!(theirs["counties"][0]["county"], "990102");
    assert_eq!(orgs_of(&theirs), ["yl-market"], "no row of 990101: {theirs}");
    assert_eq!(theirs["counties"][0]["orgs"][0]["status"], "overdue");
    assert_eq!(theirs["counties"][0]["orgs"][0]["figures"]["commitment_matters"], Value::Null);
    assert_eq!(theirs["counties"][0]["totals"]["figures"]["commitment_matters"], 0);
    let (s, _, b) = fetch(&hub, "month=2026-11&county=990101", &yl, None).await?;
    assert_error(s, &serde_json::from_slice(&b)?, 403, "forbidden");
    let all = json_report(&hub, "month=2026-11", &op).await?;
    let counties: Vec<&str> =
        all["counties"].as_array().into_iter().flatten().filter_map(|c| c["county"].as_str()).collect();
    assert_eq!(counties, ["990101", "990102"]);
    let one = json_report(&hub, "month=2026-11&county=990102", &op).await?;
    assert_eq!(orgs_of(&one), ["yl-market"]);
    let (s, h, _) = fetch(&hub, "month=2026-11&format=xlsx", &op, None).await?;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "content-disposition"), "attachment; filename=\"monthly-all-2026-11.xlsx\"");

    // The printable report, read back as a reader would: every
    // organisation, its status and figures, the hub's figures and totals.
    crate::common::ensure_debian("fonts-noto-cjk", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc");
    let (s, h, pdf) = fetch(&hub, "month=2026-11&format=pdf", &justice, None).await?;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(header(&h, "content-type"), "application/pdf");
    assert_eq!(header(&h, "content-disposition"), "attachment; filename=\"monthly-990101-2026-11.pdf\"");
    let text = crate::common::pdf_text(&pdf);
    let mut wanted: Vec<String> = [
        "行政执法工作月报汇总",
        "（990101）",
        "2026年11月",
        "2026-12-1024:00",
        "应报7家，已报7家（按时6，逾期1）",
        "RPT-990101-2026-11",
        "告知承诺制事项",
        "以罚代刑预警",
        "逾期报送",
    ]
    .map(String::from)
    .to_vec();
    wanted.extend(["清河县自然资源局", "清河县卫生健康局"].map(String::from));
    for ind in INDICATORS {
        wanted.push(figures("qh-nr")[ind].to_string());
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !text.contains(w.as_str())).collect();
    assert!(missing.is_empty(), "{missing:?} missing from the printed report:\n{text}");
    assert!(!text.contains("990102"), "another county's rows in 990101's report");

    // Parameters that do not parse are located.
    for (query, pointer) in [
        ("", "/month"),
        ("month=2026-13", "/month"),
        ("month=2026-1", "/month"),
        ("month=2026-11&format=docx", "/format"),
        ("month=2026-11&county=99010", "/county"),
        ("month=2026-11&county=880101", "/county"),
    ] {
        let (s, _, b) = fetch(&hub, query, &op, None).await?;
        let b: Value = serde_json::from_slice(&b)?;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(pointers(&b), [pointer], "{query}: {b}");
    }
    Ok(())
}
