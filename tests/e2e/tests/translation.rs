//! Translation at the edges, end to end on a real NATS: the market bureau
//! (samr-json-v1), the environment bureau (eco-xml-v1), the economic police
//! unit (police-xml-v1), the court (court-json-v1) and 东关镇 (town-csv-v1)
//! talk to the hub only in their own formats. A referral, a hand-off with
//! its receipt and police decision, and an enforcement application with its
//! ruling each travel between two different native formats and arrive
//! correct field by field; problems are located in the native document;
//! a message a receiver's format cannot express is dead-lettered.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use xj_bus::headers::Put;

use serde_json::Value;
use xj_mapping::{Formats, inbound};
use xj_testkit::{Delivery, ORGS, Receiver, TestHub, TestNats, county_config, eventually};

const WAIT: Duration = Duration::from_secs(20);

/// Which organisation speaks which format.
const NATIVE: &[(&str, &str)] = &[
    ("qh-market", "samr-json-v1"),
    ("qh-eco", "eco-xml-v1"),
    ("qh-police-econ", "police-xml-v1"),
    ("qh-court", "court-json-v1"),
    ("qh-town-dg", "town-csv-v1"),
];

async fn county() -> anyhow::Result<TestHub> {
    county_with(|text, _| text).await
}

/// The county with its configuration text changed by `edit` (given the
/// webhook URLs) before it starts.
async fn county_with(edit: impl Fn(String, &HashMap<String, String>) -> String) -> anyhow::Result<TestHub> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = TestNats::start()?;
    let mut receivers = HashMap::new();
    for (id, ..) in ORGS {
        receivers.insert(id.to_string(), Receiver::start().await?);
    }
    let court = Receiver::start().await?;
    let urls: HashMap<String, String> = receivers.iter().map(|(k, r)| (k.clone(), r.url())).collect();
    let mut text = county_config(&urls);
    text.push_str(&format!(
        "\n[[org]]\nid = \"qh-court\"\nname = \"清河县人民法院\"\nkind = \"court\"\nregion = \"990101\"\ntoken = \"token-qh-court-0123456789\"\ndeliver = {{ webhook = \"{}\" }}\n",
        court.url()
    ));
    receivers.insert("qh-court".into(), court);
    for (org, format) in NATIVE {
        let at = format!("id = \"{org}\"\n");
        anyhow::ensure!(text.contains(&at), "the test county has no {org}");
        text = text.replacen(&at, &format!("{at}format = \"{format}\"\n"), 1);
    }
    let mut text = edit(text, &urls);
    text.push_str(&format!(
        // The examples are of November 2026: the hub's date is theirs, so the
        // court application stays within its three months (行政强制法 art. 53)
        // whenever the tests run.
        "\n[data]\ndir = \"{}\"\n\n[courier]\nmax_attempts = 3\nbackoff_initial_ms = 100\n\n[clock]\nmode = \"manual\"\nstart = \"2026-11-20T16:00:00+08:00\"\n",
        nats.dir.path().join("data").display()
    ));
    // From a file, as a deployment reads it (and reads it again on a reload).
    let file = nats.dir.path().join("translation.toml");
    std::fs::write(&file, &text)?;
    let settings = Arc::new(xj_config::load_file(&file)?);
    TestHub::start_with(nats, settings, receivers).await
}

fn example(format: &str, file: &str) -> String {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats").join(format).join("examples").join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `POST /v1/native` as `org`.
async fn native(hub: &TestHub, org: &str, body: impl Into<Vec<u8>>) -> anyhow::Result<(u16, Value)> {
    let r =
        hub.http.post(format!("{}/v1/native", hub.base)).bearer_auth(hub.token(org)).body(body.into()).send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
}

async fn delivered(hub: &TestHub, org: &str, id: &str) -> anyhow::Result<Delivery> {
    let r = hub.receiver(org);
    eventually(WAIT, &format!("{id} at {org}"), || async {
        r.deliveries().into_iter().find(|d| d.header("xj-message-id") == Some(id))
    })
    .await
}

/// The hub's public key from `GET /v1/keys`.
async fn hub_key(hub: &TestHub) -> anyhow::Result<String> {
    let (_, keys) = hub.get("/v1/keys", &hub.token("qh-market")).await?;
    Ok(keys["keys"][0]["public_key"].as_str().unwrap_or_default().to_string())
}

/// A delivery read back into canonical form with the receiver's own mapping.
fn canonical_of(d: &Delivery, format: &str, org: &str) -> Value {
    let formats = Formats::builtin().expect("formats");
    let f = formats.get(format).expect("format");
    inbound::translate(f, &d.body, org)
        .unwrap_or_else(|e| {
            panic!("the delivery to {org} is not valid {format}: {e}\n{}", String::from_utf8_lossy(&d.body))
        })
        .message
}

fn text(d: &Delivery) -> String {
    String::from_utf8_lossy(&d.body).into_owned()
}

/// The value of `column` in a one-row CSV delivery.
fn csv_cell(d: &Delivery, column: &str) -> String {
    let mut r = csv::Reader::from_reader(&d.body[..]);
    let headers = r.headers().expect("header").clone();
    let row = r.records().next().expect("a row").expect("row parses");
    let i = headers.iter().position(|h| h == column).unwrap_or_else(|| panic!("no column {column} in {headers:?}"));
    row[i].to_string()
}

/// Asserts every leaf of `want` equals the same leaf of `got`, for the
/// canonical paths given.
fn same(want: &Value, got: &Value, paths: &[&str]) {
    for p in paths {
        assert_eq!(got.pointer(p), want.pointer(p), "{p} differs:\nsent {want:#}\nreceived {got:#}");
        assert!(want.pointer(p).is_some(), "{p} is not in the sent message");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referral_market_json_to_town_csv_and_reply_back() -> anyhow::Result<()> {
    let hub = county().await?;
    let key = hub_key(&hub).await?;
    let doc = example("samr-json-v1", "clue_referral.json");
    let (status, receipt) = native(&hub, "qh-market", doc.clone()).await?;
    assert_eq!(status, 202, "{receipt}");
    let id = "SJ-XS-2026-0031";
    assert_eq!(receipt["id"], id);

    // 东关镇 receives the referral as a CSV row, signed over those bytes.
    let d = delivered(&hub, "qh-town-dg", id).await?;
    assert!(d.header("content-type").is_some_and(|c| c.starts_with("text/csv")), "{:?}", d.header("content-type"));
    xj_bus::signing::verify_header(&key, d.header("xj-signature").unwrap_or_default(), &d.body)
        .unwrap_or_else(|e| panic!("signature over the CSV: {e}"));
    assert_eq!(csv_cell(&d, "文书类型"), "线索移送函");
    assert_eq!(csv_cell(&d, "编号"), id);
    assert_eq!(csv_cell(&d, "平台案件号"), receipt["case"].as_str().unwrap_or_default());
    assert_eq!(csv_cell(&d, "发送单位"), "qh-market");
    assert_eq!(csv_cell(&d, "发送时间"), "2026/11/20 09:30:00");
    assert_eq!(csv_cell(&d, "事项编码"), "FOOD-STALL");
    assert_eq!(csv_cell(&d, "发生地"), "东关镇");
    assert_eq!(csv_cell(&d, "发现日期"), "2026/11/18");
    assert_eq!(csv_cell(&d, "当事人类型"), "个人");
    assert_eq!(csv_cell(&d, "销售金额(元)"), "1200", "0.12 万元 in the market's system");
    assert_eq!(csv_cell(&d, "执法人员"), "赵明:99010120001;钱亮:99010120002");
    assert_eq!(csv_cell(&d, "材料清单"), "现场检查笔录×1;现场照片×6");
    assert_eq!(csv_cell(&d, "联系人及电话"), "孙丽/0999-6660001");
    // Field by field against what the market sent, in canonical terms.
    let formats = Formats::builtin()?;
    let sent = inbound::translate(formats.get("samr-json-v1")?, doc.as_bytes(), "qh-market")?.message;
    let got = canonical_of(&d, "town-csv-v1", "qh-market");
    same(
        &sent,
        &got,
        &[
            "/id",
            "/type",
            "/sent_at",
            "/body/doc_no",
            "/body/matter",
            "/body/cause",
            "/body/party/name",
            "/body/party/id_no",
            "/body/party/address",
            "/body/party/kind",
            "/body/found_on",
            "/body/location",
            "/body/reason",
            "/body/legal_basis",
            "/body/facts/sales_amount",
            "/body/summary",
            "/body/officers",
            "/body/contact",
        ],
    );
    assert_eq!(got["body"]["materials"][1]["title"], "现场照片");
    assert_eq!(got["body"]["materials"][1]["copies"], 6);

    // The town answers in CSV; the market gets the reply in its JSON.
    let reply = example("town-csv-v1", "referral_reply.csv");
    let (status, r) = native(&hub, "qh-town-dg", reply).await?;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["case"], receipt["case"], "the reply joins the referral's case");
    let d = delivered(&hub, "qh-market", "DG-HF-2026-0031").await?;
    assert!(d.header("content-type").is_some_and(|c| c.starts_with("application/json")));
    let j: Value = serde_json::from_slice(&d.body)?;
    assert_eq!(j["xxlx"], "YSHF", "{j}");
    assert_eq!(j["hfbh"], id);
    assert_eq!(j["ptajh"], receipt["case"]);
    assert_eq!(j["fssj"], "2026-11-21 10:00:00");
    assert_eq!(j["hfxx"]["clyj"], "1", "予以立案");
    assert_eq!(j["hfxx"]["ajbh"], "东关综执立〔2026〕3号");
    assert_eq!(j["hfxx"]["ysws"], "清市监线移〔2026〕31号");
    assert_eq!(j["hfxx"]["jdrq"], "20261121");
    assert_eq!(
        (j["hfxx"]["js"].as_i64(), j["hfxx"]["ys"].as_i64(), j["hfxx"]["wpjs"].as_i64()),
        (Some(1), Some(12), Some(0))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handoff_market_json_to_police_xml_with_receipt_and_decision_back() -> anyhow::Result<()> {
    let hub = county().await?;
    let doc = example("samr-json-v1", "criminal_handoff.json");
    let (status, receipt) = native(&hub, "qh-market", doc.clone()).await?;
    assert_eq!(status, 202, "{receipt}");
    let id = "SJ-SX-2026-0003";
    let case = receipt["case"].as_str().unwrap_or_default().to_string();

    let d = delivered(&hub, "qh-police-econ", id).await?;
    assert!(d.header("content-type").is_some_and(|c| c.starts_with("application/xml")));
    let xml = text(&d);
    for want in [
        "<BWLX>YSS</BWLX>",
        &format!("<BWBH>{id}</BWBH>"),
        &format!("<PTAJH>{case}</PTAJH>"),
        "<FSDW>qh-market</FSDW>",
        "<MJ>MG</MJ>",
        "<AJLB>0140</AJLB>",
        "<XYR LX=\"GT\">",
        "<FXRQ>20261102</FXRQ>",
        "<XSJE>68000</XSJE>",
        "<WXSHZ>25000</WXSHZ>",
        "<BG LX=\"JYBG\">白酒检验报告（清检字〔2026〕88号）</BG>",
        "<RY>",
    ] {
        assert!(xml.contains(want), "{want} not in the police system's XML:\n{xml}");
    }
    let formats = Formats::builtin()?;
    let sent = inbound::translate(formats.get("samr-json-v1")?, doc.as_bytes(), "qh-market")?.message;
    let got = canonical_of(&d, "police-xml-v1", "qh-market");
    same(
        &sent,
        &got,
        &[
            "/id",
            "/type",
            "/classification",
            "/sent_at",
            "/body/doc_no",
            "/body/matter",
            "/body/cause",
            "/body/offence",
            "/body/party",
            "/body/found_on",
            "/body/filed_on",
            "/body/location",
            "/body/reason",
            "/body/legal_basis",
            "/body/summary",
            "/body/facts",
            "/body/officers",
            "/body/materials",
            "/body/seized_items",
            "/body/reports",
            "/body/approved_by",
            "/body/approved_on",
            "/body/reported_on",
            "/body/contact",
        ],
    );
    // The procuratorate is copied, in canonical form.
    let copy = delivered(&hub, "qh-procuratorate", id).await?;
    assert_eq!(copy.json["body"]["facts"]["sales_amount"], 68000);

    // The police system signs a receipt, then decides; both in its XML.
    let hz = example("police-xml-v1", "handoff_receipt.xml");
    let (status, r) = native(&hub, "qh-police-econ", hz).await?;
    assert_eq!(status, 202, "{r}");
    let jd = example("police-xml-v1", "police_decision.xml");
    let (status, r) = native(&hub, "qh-police-econ", jd).await?;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["case"], case.as_str());

    let d = delivered(&hub, "qh-market", "JZ-HZ-2026-0017").await?;
    let j: Value = serde_json::from_slice(&d.body)?;
    assert_eq!(j["xxlx"], "GAHZ", "{j}");
    assert_eq!(j["hfbh"], id);
    assert_eq!(j["hzxx"]["jssj"], "2026-11-20 16:00:00");
    assert_eq!(j["hzxx"]["hzbh"], "清公经回〔2026〕17号");
    assert_eq!(j["fsdw"], "qh-police-econ");

    let d = delivered(&hub, "qh-market", "JZ-JD-2026-0009").await?;
    let j: Value = serde_json::from_slice(&d.body)?;
    assert_eq!(j["xxlx"], "GAJD", "{j}");
    assert_eq!(j["hfbh"], id);
    assert_eq!(j["ptajh"], case.as_str());
    assert_eq!(j["mj"], "3", "sensitive");
    assert_eq!(j["jdxx"]["jd"], "LA", "立案");
    assert_eq!(j["jdxx"]["gaajh"], "A9901010500002026110021");
    assert_eq!(j["jdxx"]["jdrq"], "20261121");
    // Copied to the procuratorate as the police system asked (CSDW).
    let copy = delivered(&hub, "qh-procuratorate", "JZ-JD-2026-0009").await?;
    assert_eq!(copy.json["body"]["decision"], "filed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_application_eco_xml_to_court_json_and_ruling_back() -> anyhow::Result<()> {
    let hub = county().await?;
    let doc = example("eco-xml-v1", "assistance_request.xml");
    let (status, receipt) = native(&hub, "qh-eco", doc.clone()).await?;
    assert_eq!(status, 202, "{receipt}");
    let id = "HB-ZX-2026-0002";

    let d = delivered(&hub, "qh-court", id).await?;
    let j: Value = serde_json::from_slice(&d.body)?;
    assert_eq!(j["docType"], "ENF_APPLICATION", "{j}");
    assert_eq!(j["serialNo"], id);
    assert_eq!(j["applicantOrg"], "qh-eco");
    assert_eq!(j["hubCaseNo"], receipt["case"]);
    assert_eq!(j["submittedAt"], "2026/11/20 16:00:00");
    let a = &j["application"];
    assert_eq!(a["applicationNo"], "清环强执申〔2026〕2号");
    assert_eq!(a["matterCode"], "HAZWASTE");
    assert_eq!(a["respondent"]["type"], "LEGAL_PERSON");
    assert_eq!(a["respondent"]["creditCode"], "91990101MA0000404Y");
    assert_eq!(a["decision"]["docNo"], "清环罚〔2026〕21号");
    assert_eq!(a["decision"]["decidedOn"], "20260506");
    assert_eq!(a["decision"]["deadlinePassedOn"], "20261109");
    assert_eq!(a["decision"]["penaltyType"], "FINE");
    assert_eq!(a["decision"]["amountYuan"], 100000);
    let formats = Formats::builtin()?;
    let sent = inbound::translate(formats.get("eco-xml-v1")?, doc.as_bytes(), "qh-eco")?.message;
    let got = canonical_of(&d, "court-json-v1", "qh-eco");
    same(
        &sent,
        &got,
        &[
            "/id",
            "/type",
            "/sent_at",
            "/body/need",
            "/body/due_basis",
            "/body/matter",
            "/body/party",
            "/body/enforcement",
        ],
    );

    // The court rules in its JSON; the bureau gets the ruling in its XML.
    let ruling = example("court-json-v1", "assistance_reply.json");
    let (status, r) = native(&hub, "qh-court", ruling).await?;
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["case"], receipt["case"]);
    let d = delivered(&hub, "qh-eco", "FY-CD-2026-0009").await?;
    let xml = text(&d);
    for want in [
        "<MsgType>EnforcementRuling</MsgType>",
        &format!("<ReplyTo>{id}</ReplyTo>"),
        "<From>qh-court</From>",
        "<SendTime>2026-11-21 15:30:00</SendTime>",
        "result=\"approve\"",
        "kind=\"enforce\"",
        "<EnforcementCaseNo>（2026）清0101执1088号</EnforcementCaseNo>",
        "<Date>2026-11-21</Date>",
    ] {
        assert!(xml.contains(want), "{want} not in the bureau's XML:\n{xml}");
    }
    Ok(())
}

/// `(source, pointer)` of each detail of an error body.
fn details(body: &Value) -> Vec<(String, String)> {
    body["details"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| (d["source"].as_str().unwrap_or("").into(), d["pointer"].as_str().unwrap_or("").into()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_submissions_answer_like_canonical_ones_with_native_locations() -> anyhow::Result<()> {
    let hub = county().await?;
    let doc = example("samr-json-v1", "case_referral.json");

    // Malformed JSON: 400, with line and column.
    let (status, body) = native(&hub, "qh-market", &doc.as_bytes()[..40]).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "malformed");
    assert_eq!(body["details"][0]["source"], "syntax");
    assert!(body["details"][0]["line"].as_u64().is_some(), "{body}");

    // The mapping's problems, every one, at their JSON pointers.
    let bad = doc.replace("\"fxrq\": \"20261112\"", "\"fxrq\": \"2026-11-12\"").replace("\"HJ0301\"", "\"ZZ9999\"");
    let (status, body) = native(&hub, "qh-market", bad).await?;
    assert_eq!(status, 422, "{body}");
    let d = details(&body);
    assert!(d.contains(&("mapping".into(), "/ajxx/fxrq".into())), "{body}");
    assert!(d.contains(&("mapping".into(), "/ajxx/aydm".into())), "{body}");
    let missing = doc.replace("\"ysly\"", "\"ysly_old\"");
    let (status, body) = native(&hub, "qh-market", missing).await?;
    assert_eq!(status, 422, "{body}");
    assert!(details(&body).contains(&("mapping".into(), "/ajxx/ysly".into())), "{body}");

    // The canonical schema's problems, placed in the native document.
    let bad = doc.replace("91990101MA0000101L", "91990101MA0000101K");
    let (status, body) = native(&hub, "qh-market", bad).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["source"], "canonical", "{body}");
    assert_eq!(body["details"][0]["pointer"], "/ajxx/dsr/tyshxydm", "{body}");
    assert_eq!(body["details"][0]["canonical"], "/body/party/uscc", "{body}");

    // XML: the path and line; CSV: the row and column.
    let xml = example("police-xml-v1", "handoff_receipt.xml")
        .replace("<JSSJ>2026-11-20 16:00:00</JSSJ>", "<JSSJ>昨天</JSSJ>");
    let (status, body) = native(&hub, "qh-police-econ", xml).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["pointer"], "/GAXX/HZ/JSSJ", "{body}");
    assert_eq!(body["details"][0]["line"], 11, "{body}");
    let broken = example("police-xml-v1", "handoff_receipt.xml").replace("</HZBH>", "</HZ>");
    let (status, body) = native(&hub, "qh-police-econ", broken).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["details"][0]["line"], 12, "{body}");
    let csv = example("town-csv-v1", "referral_reply.csv").replace(",予以立案,", ",同意,");
    let (status, body) = native(&hub, "qh-town-dg", csv).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (body["details"][0]["row"].as_u64(), body["details"][0]["column"].as_u64()),
        (Some(2), Some(6)),
        "{body}"
    );

    // Exactly once, as on the canonical endpoint: 202, 200 with the same receipt, 409.
    let (s1, r1) = native(&hub, "qh-market", doc.clone()).await?;
    assert_eq!(s1, 202, "{r1}");
    let (s2, r2) = native(&hub, "qh-market", doc.clone()).await?;
    assert_eq!((s2, &r2), (200, &r1));
    let (s3, body) = native(&hub, "qh-market", doc.replace("运输车辆行驶证复印件", "运输车辆照片")).await?;
    assert_eq!(s3, 409, "{body}");

    // Who may use it.
    let r = hub.http.post(format!("{}/v1/native", hub.base)).body(doc.clone()).send().await?;
    assert_eq!(r.status().as_u16(), 401);
    let (status, body) = native(&hub, "qh-enforce", doc.clone()).await?;
    assert_eq!(status, 400, "a canonical organisation uses /v1/messages: {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_receivers_format_cannot_express_is_dead_lettered_with_the_reason() -> anyhow::Result<()> {
    let hub = county().await?;
    // A canonical organisation asks the police unit for assistance: the
    // police system's format has no such document.
    let msg = serde_json::json!({
        "id": "ENF-ASSIST-1", "type": "assistance_request", "sender": "qh-enforce",
        "recipient": "qh-police-econ", "sent_at": "2026-11-21T09:00:00+08:00", "classification": "internal",
        "body": { "need": "协助调取监控录像", "due_basis": "assistance" }
    });
    let (status, body) = hub.submit("qh-enforce", &msg).await?;
    assert_eq!(status, 202, "{body}");
    let op = hub.operator_token();
    let dead = eventually(WAIT, "the dead letter", || async {
        let (_, list) = hub.get("/v1/admin/dead-letters", &op).await.ok()?;
        list["dead_letters"].as_array()?.iter().find(|d| d["id"] == "ENF-ASSIST-1").cloned()
    })
    .await?;
    assert_eq!(dead["org"], "qh-police-econ");
    let reason = dead["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("police-xml-v1") && reason.contains("assistance_request"), "{reason}");
    assert_eq!(dead["attempts"], 1, "not retried: it would never succeed");
    assert_eq!(hub.receiver("qh-police-econ").hits(), 0, "nothing half-empty was sent");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_native_police_system_speaks_its_xml_on_nats() -> anyhow::Result<()> {
    use async_nats::jetstream::consumer::{AckPolicy, pull};
    use futures::StreamExt;
    // The food, drug and environment police unit is connected by NATS and
    // speaks the police XML: the hub is its adapter both ways.
    let hub = county_with(|text, urls| {
        let webhook = format!("deliver = {{ webhook = \"{}\" }}\n", urls["qh-police-fde"]);
        text.replacen(&webhook, "deliver = { nats = true }\nformat = \"police-xml-v1\"\n", 1)
    })
    .await?;
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let consumer = js
        .get_stream("XJ_OUT")
        .await?
        .create_consumer(pull::Config {
            durable_name: Some("qh-police-fde".into()),
            filter_subject: "xj.out.qh-police-fde".into(),
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        })
        .await?;
    let mut out = consumer.messages().await?;
    let mut next = async || -> anyhow::Result<async_nats::jetstream::Message> {
        let m = tokio::time::timeout(WAIT, out.next()).await?.ok_or_else(|| anyhow::anyhow!("outbox closed"))??;
        m.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(m)
    };

    // A hazardous-waste hand-off from the market bureau's JSON arrives as XML.
    let doc = example("samr-json-v1", "criminal_handoff.json")
        .replace("SJ-SX-2026-0003", "SJ-SX-2026-0004")
        .replace("\"SC0101\"", "\"HJ0302\"");
    let (status, receipt) = native(&hub, "qh-market", doc).await?;
    assert_eq!(status, 202, "{receipt}");
    let m = next().await?;
    let hd = m.headers.clone().unwrap_or_default();
    assert_eq!(hd.get("Xj-Message-Id").map(|v| v.as_str()), Some("SJ-SX-2026-0004"));
    assert!(hd.get("Xj-Signature").is_some());
    let xml = String::from_utf8_lossy(&m.payload).into_owned();
    assert!(xml.contains("<BWLX>YSS</BWLX>") && xml.contains("<AJLB>0338</AJLB>"), "{xml}");

    // Its receipt, published in XML on its inbound subject, is answered and
    // reaches the market bureau in its JSON.
    let hz = example("police-xml-v1", "handoff_receipt.xml")
        .replace("SJ-SX-2026-0003", "SJ-SX-2026-0004")
        .replace("JZ-HZ-2026-0017", "FDE-HZ-1");
    let mut h = async_nats::HeaderMap::new();
    h.put("Nats-Msg-Id", "FDE-HZ-1");
    js.publish_with_headers("xj.in.qh-police-fde", h, hz.into_bytes().into()).await?.await?;
    let answer = next().await?;
    assert_eq!(answer.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.as_str()), Some("202"));
    let r: Value = serde_json::from_slice(&answer.payload)?;
    assert_eq!(r["case"], receipt["case"]);
    let d = delivered(&hub, "qh-market", "FDE-HZ-1").await?;
    let j: Value = serde_json::from_slice(&d.body)?;
    assert_eq!((j["xxlx"].as_str(), j["hfbh"].as_str()), (Some("GAHZ"), Some("SJ-SX-2026-0004")), "{j}");

    // Broken XML on NATS: the same located answer as over HTTP.
    let mut h = async_nats::HeaderMap::new();
    h.put("Nats-Msg-Id", "FDE-BAD-1");
    js.publish_with_headers("xj.in.qh-police-fde", h, "<GAXX>\n<BWT>\n</GAXX>".as_bytes().to_vec().into())
        .await?
        .await?;
    let answer = next().await?;
    assert_eq!(answer.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.as_str()), Some("400"));
    let err: Value = serde_json::from_slice(&answer.payload)?;
    assert_eq!(err["details"][0]["source"], "syntax", "{err}");
    assert_eq!(err["details"][0]["line"], 3, "{err}");
    Ok(())
}

/// What a sandbox department received: `(type, native document)` pairs.
async fn received(hub: &TestHub, port: u16) -> Vec<(String, String)> {
    let Ok(r) = hub.http.get(format!("http://127.0.0.1:{port}/")).send().await else { return Vec::new() };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| (m["type"].as_str().unwrap_or("").to_string(), m["native"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_received(hub: &TestHub, port: u16, kind: &str, native: &str) -> anyhow::Result<()> {
    eventually(WAIT, &format!("a {kind} containing {native:?} at port {port}"), || async {
        received(hub, port).await.into_iter().find(|(k, n)| k == kind && n.contains(native)).map(|_| ())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_departments_answer_in_their_own_formats() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Every organisation is a sandbox department on a port of its own.
    let nats = TestNats::start()?;
    let mut ports: HashMap<String, u16> = HashMap::new();
    for (id, ..) in ORGS {
        ports.insert(id.to_string(), xj_bus::embedded::free_port());
    }
    ports.insert("qh-court".into(), xj_bus::embedded::free_port());
    let urls: HashMap<String, String> =
        ports.iter().map(|(k, p)| (k.clone(), format!("http://127.0.0.1:{p}/inbox"))).collect();
    let mut text = county_config(&urls);
    text.push_str(&format!(
        "\n[[org]]\nid = \"qh-court\"\nname = \"清河县人民法院\"\nkind = \"court\"\nregion = \"990101\"\ntoken = \"token-qh-court-0123456789\"\ndeliver = {{ webhook = \"{}\" }}\n",
        urls["qh-court"]
    ));
    for (org, format) in NATIVE {
        let at = format!("id = \"{org}\"\n");
        text = text.replacen(&at, &format!("{at}format = \"{format}\"\n"), 1);
    }
    text.push_str(&format!("\n[data]\ndir = \"{}\"\n", nats.dir.path().join("data").display()));
    let settings = Arc::new(xj_config::load_str(&text, "sandbox-native.toml")?);
    let hub = TestHub::start_with(nats, settings.clone(), HashMap::new()).await?;
    let opts = xj_sandbox::SandboxOptions {
        gateway: hub.base.clone(),
        demo_every: Duration::ZERO,
        reply_after: Duration::from_millis(20),
    };
    let shutdown = xj_bus::Shutdown::new();
    let sandbox = tokio::spawn(xj_sandbox::run(settings, opts, shutdown.clone()));
    let port = |org: &str| ports[org];

    // The police unit's system receives the hand-off in its XML, signs a
    // receipt and files a case; the market bureau's system gets both in its JSON.
    let (status, body) = native(&hub, "qh-market", example("samr-json-v1", "criminal_handoff.json")).await?;
    assert_eq!(status, 202, "{body}");
    wait_received(&hub, port("qh-police-econ"), "criminal_handoff", "<BWLX>YSS</BWLX>").await?;
    wait_received(&hub, port("qh-market"), "handoff_receipt", "\"xxlx\":\"GAHZ\"").await?;
    wait_received(&hub, port("qh-market"), "police_decision", "\"jd\":\"LA\"").await?;
    // The hub's alert on the hand-off (facts past the threshold) is read too.
    wait_received(&hub, port("qh-market"), "supervision_alert", "\"xxlx\":\"JDTS\"").await?;
    wait_received(&hub, port("qh-procuratorate"), "police_decision", "").await?;

    // The court's system rules on the environment bureau's XML application
    // in its JSON; the bureau's system reads the ruling in its XML.
    let (status, body) = native(&hub, "qh-eco", example("eco-xml-v1", "assistance_request.xml")).await?;
    assert_eq!(status, 202, "{body}");
    wait_received(&hub, port("qh-court"), "assistance_request", "\"docType\":\"ENF_APPLICATION\"").await?;
    wait_received(&hub, port("qh-eco"), "assistance_reply", "<MsgType>EnforcementRuling</MsgType>").await?;

    // 东关镇's system answers the market bureau's referral from its CSV.
    let (status, body) = native(&hub, "qh-market", example("samr-json-v1", "clue_referral.json")).await?;
    assert_eq!(status, 202, "{body}");
    wait_received(&hub, port("qh-town-dg"), "clue_referral", "线索移送函,SJ-XS-2026-0031").await?;
    wait_received(&hub, port("qh-market"), "referral_reply", "\"xxlx\":\"YSHF\"").await?;

    shutdown.cancel();
    let _ = sandbox.await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_mapping_is_used_without_a_restart() -> anyhow::Result<()> {
    // 东关镇's mapping from the hub's formats folder, then renamed a column.
    let formats = tempfile::tempdir()?;
    let town = formats.path().join("town-csv-v1");
    std::fs::create_dir_all(&town)?;
    let builtin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/formats/town-csv-v1/mapping.toml");
    let mapping = std::fs::read_to_string(&builtin)?;
    let mapping_file = town.join("mapping.toml");
    std::fs::write(&mapping_file, &mapping)?;
    let dir = formats.path().display().to_string();
    let hub = county_with(move |text, _| format!("{text}\n[formats]\ndir = \"{dir}\"\n")).await?;

    let renamed = mapping.replace("from = \"编号\"", "from = \"文书编号\"");
    assert_ne!(renamed, mapping);
    let row = example("town-csv-v1", "case_referral.csv");
    let new_row = row.replacen(",编号,", ",文书编号,", 1);
    assert_ne!(new_row, row);
    // Before the change the town's new header is refused…
    let (status, b) = native(&hub, "qh-town-dg", new_row.clone()).await?;
    assert_eq!(status, 422, "{b}");

    // …after it (no restart, no request: the gateway notices the file) it is accepted.
    std::fs::write(&mapping_file, &renamed)?;
    let (status, receipt) = eventually(WAIT, "the gateway to read the changed mapping", || async {
        native(&hub, "qh-town-dg", new_row.clone()).await.ok().filter(|(s, _)| *s == 202)
    })
    .await?;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receipt["id"], "DG-AJ-2026-0011");

    // An operator's reload is answered by the courier too, and what it
    // delivers to the town uses the new column.
    let r =
        hub.http.post(format!("{}/v1/admin/rules/reload", hub.base)).bearer_auth(hub.operator_token()).send().await?;
    let answer: Value = r.json().await?;
    let services: Vec<&str> =
        answer["answers"].as_array().into_iter().flatten().filter_map(|a| a["service"].as_str()).collect();
    assert!(services.contains(&"courier") && services.contains(&"gateway"), "{answer}");
    let doc = example("samr-json-v1", "clue_referral.json").replace("SJ-XS-2026-0031", "SJ-XS-2026-0032");
    let (status, b) = native(&hub, "qh-market", doc).await?;
    assert_eq!(status, 202, "{b}");
    let d = delivered(&hub, "qh-town-dg", "SJ-XS-2026-0032").await?;
    assert_eq!(csv_cell(&d, "文书编号"), "SJ-XS-2026-0032");

    // A mapping that does not load is refused, naming the file; the one in
    // use stays.
    std::fs::write(&mapping_file, renamed.replace("syntax = \"csv\"", "syntax = \"xlsx\""))?;
    let r =
        hub.http.post(format!("{}/v1/admin/rules/reload", hub.base)).bearer_auth(hub.operator_token()).send().await?;
    assert_eq!(r.status().as_u16(), 422);
    let answer: Value = r.json().await?;
    assert!(answer["details"].to_string().contains("mapping.toml"), "{answer}");
    let again = new_row.replace("DG-AJ-2026-0011", "DG-AJ-2026-0012");
    let (status, b) = native(&hub, "qh-town-dg", again).await?;
    assert_eq!(status, 202, "{b}");
    Ok(())
}
