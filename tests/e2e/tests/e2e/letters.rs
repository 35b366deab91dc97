//! Official letters (docs/api.md, "Letters"): a case referral, its reply, a
//! criminal hand-off and its receipt, each fetched as PDF by its sender and
//! its recipients and read back as a reader would — poppler's `pdftotext`
//! over a CJK font from Debian's fonts-noto-cjk, both installed by this
//! test when it runs as root and they are missing — finding every field
//! sent, the addressee's name, and the digest and key to check it by, the
//! digest being the one the audit ledger recorded. Who may not read a
//! letter gets the 404 of no message; a type without a letter, and a hub
//! without a font, say so.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_uscc};

use crate::common::{assert_error, delivered, hub_key, pointers};

const T: Duration = Duration::from_secs(30);

/// A second county, 榆林县 (990102), whose organisations have the names a
/// letter prints; its messages name their recipients.
const ORGS: &[(&str, &str, &str, &str)] = &[
    ("yl-market", "榆林县市场监督管理局", "market_regulation", "990102"),
    ("yl-town", "榆林县城关镇人民政府", "town_government", "990102101"),
    ("yl-police", "榆林县公安局经济犯罪侦查大队", "public_security", "990102"),
    ("yl-procuratorate", "榆林县人民检察院", "procuratorate", "990102"),
    ("yl-justice", "榆林县司法局", "justice_bureau", "990102"),
];

/// A valid resident ID number (its check character verified at the edge).
const ID_NO: &str = "11010519491231002X";

fn squeeze(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn assert_fields(what: &str, text: &str, wanted: &[&str]) {
    let missing: Vec<&&str> = wanted.iter().filter(|w| !text.contains(&squeeze(w))).collect();
    assert!(missing.is_empty(), "{what}: {missing:?} missing from the letter's text:\n{text}");
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }
}

async fn letter(hub: &TestHub, path: &str, token: &str) -> anyhow::Result<Got> {
    let r = hub.http.get(format!("{}/v1/messages/{path}", hub.base)).bearer_auth(token).send().await?;
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    Ok(Got { status, headers, body: r.bytes().await?.to_vec() })
}

/// The letter of `id` as `org` reads it (`"operator"`: the operator), once
/// the hub has routed the message; checks the download's headers and
/// signature and returns the letter's text.
async fn read(hub: &TestHub, id: &str, org: &str, file: &str, keys: &(String, String)) -> anyhow::Result<String> {
    let token = if org == "operator" { hub.operator_token() } else { hub.token(org) };
    let got = eventually(T, &format!("the letter of {id} for {org}"), || async {
        letter(hub, &format!("{id}/letter"), &token).await.ok().filter(|g| g.status == 200)
    })
    .await?;
    assert_eq!(got.header("content-type"), "application/pdf");
    assert_eq!(got.header("content-disposition"), format!("attachment; filename=\"{file}\""));
    assert!(got.body.starts_with(b"%PDF-"), "{id} for {org}: not a PDF");
    // Kept for a look (pdftoppm -png): target/tmp/<file>.
    let _ = std::fs::write(Path::new(env!("CARGO_TARGET_TMPDIR")).join(file), &got.body);
    let sig = got.header("xj-signature");
    assert!(sig.contains(&format!("keyid={}", keys.0)), "{sig}");
    xj_bus::signing::verify_header(&keys.1, sig, &got.body).map_err(anyhow::Error::msg)?;
    Ok(crate::common::pdf_text(&got.body))
}

async fn submit(hub: &TestHub, org: &str, msg: &Value) -> anyhow::Result<Value> {
    let (s, receipt) = hub.submit(org, msg).await?;
    anyhow::ensure!(s == 202, "{} refused: {s} {receipt}", msg["id"]);
    Ok(receipt)
}

/// What the audit ledger recorded of `sender`'s message `id`: its SHA-256
/// and its sequence in `XJ_ACCEPTED`.
async fn ledger_record(hub: &TestHub, sender: &str, id: &str) -> anyhow::Result<(String, u64)> {
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    eventually(T, &format!("the ledger's record of {id}"), || async {
        let dump = xj_ledger::dump(&js).await.ok()?;
        dump.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find_map(|e| {
            let r = e["records"]
                .as_array()?
                .iter()
                .find(|r| r["kind"] == "message" && r["msg_id"] == id && r["sender"] == sender)?;
            Some((r["record"]["sha256"].as_str()?.to_owned(), r["source"]["seq"].as_u64()?))
        })
    })
    .await
}

fn officers() -> Value {
    json!([{ "name": "周八", "cert_no": "99010200011" }, { "name": "吴九", "cert_no": "99010200012" }])
}

fn case_referral() -> Value {
    json!({
        "id": "YL-CASE-1", "type": "case_referral", "sender": "yl-market", "recipient": "yl-town",
        "sent_at": "2026-12-01T09:30:00+08:00", "classification": "internal",
        "body": {
            "doc_no": "榆市监案移〔2026〕21号", "matter": "PRODUCT-FAKE", "cause": "涉嫌销售不合格电热水壶",
            "party": { "name": "榆林县某电器商行", "uscc": sample_uscc("92990102MA0000002"),
                       "address": "城关镇解放路18号", "legal_representative": "孙七", "kind": "organisation" },
            "found_on": "2026-11-16", "filed_on": "2026-11-17",
            "location": { "region": "990102101", "address": "城关镇解放路20号" },
            "reason": "该事项已赋权城关镇", "legal_basis": "《中华人民共和国行政处罚法》第二十二条",
            "facts": { "sales_amount": 3650 }, "summary": "日常检查中发现无3C认证电热水壶",
            "officers": officers(),
            "materials": [ { "title": "现场检查笔录", "copies": 1, "pages": 3 },
                           { "title": "抽样检验报告", "copies": 2, "pages": 8 } ],
            "contact": { "name": "郑十", "phone": "0912-7654321", "address": "榆林县解放路2号" },
            "signed_on": "2026-11-30",
            "seized_items": [ { "name": "电热水壶", "quantity": 46, "unit": "台", "disposed": false },
                              { "name": "过期包装盒", "quantity": 12, "unit": "个", "disposed": true, "proceeds": 180 } ]
        }
    })
}

fn reply() -> Value {
    json!({
        "id": "YL-REPLY-1", "type": "referral_reply", "sender": "yl-town", "reply_to": "YL-CASE-1",
        "sent_at": "2026-12-02T10:00:00+08:00", "classification": "sensitive",
        "body": { "decision": "accepted", "case_no": "城关综执立〔2026〕5号", "letter_doc_no": "榆市监案移〔2026〕21号",
                  "referred_on": "2026-11-30", "decided_on": "2026-12-02",
                  "received": { "volumes": 1, "pages": 11, "items": 58 },
                  "contact": { "name": "冯十一", "phone": "0912-5550001" } }
    })
}

fn handoff() -> Value {
    json!({
        "id": "YL-HO-1", "type": "criminal_handoff", "sender": "yl-market", "recipient": "yl-police",
        "sent_at": "2026-12-01T11:00:00+08:00", "classification": "internal",
        "body": {
            "doc_no": "榆市监刑移〔2026〕3号", "matter": "PRODUCT-FAKE", "cause": "销售伪劣白酒",
            "party": { "name": "榆林县某酒类经营部", "id_no": ID_NO, "kind": "individual_business",
                       "address": "城关镇东大街7号" },
            "found_on": "2026-11-10", "filed_on": "2026-11-12",
            "location": { "region": "990102101", "address": "城关镇东大街7号" },
            "reason": "销售金额已达刑事立案追诉标准", "legal_basis": "《中华人民共和国刑法》第一百四十条",
            "facts": { "sales_amount": 86000 },
            "officers": officers(),
            "materials": [ { "title": "询问笔录", "copies": 3, "pages": 15 } ],
            "contact": { "name": "郑十", "phone": "0912-7654321" },
            "offence": "生产、销售伪劣产品罪", "reported_on": "2026-11-27", "approved_on": "2026-11-28",
            "approved_by": { "name": "钱局长", "title": "局长" },
            "reports": [ { "title": "涉嫌犯罪案件调查报告", "kind": "investigation" },
                         { "title": "白酒质量检验报告", "kind": "inspection" } ],
            "prior_penalties": [ { "decision_doc_no": "榆市监罚〔2025〕17号", "decided_on": "2025-08-12",
                                   "penalty": { "kind": "fine", "amount": 15000 } } ],
            "seized_items": [ { "name": "伪劣白酒", "quantity": 320, "unit": "瓶", "disposed": false } ]
        }
    })
}

fn receipt() -> Value {
    json!({
        "id": "YL-RCPT-1", "type": "handoff_receipt", "sender": "yl-police", "reply_to": "YL-HO-1",
        "sent_at": "2026-12-02T16:45:00+08:00", "classification": "internal",
        "body": { "received_at": "2026-12-02T16:40:00+08:00", "receipt_no": "榆公经受〔2026〕12号" }
    })
}

/// What every letter of `sender`'s `id` shows to check it by.
async fn checks(hub: &TestHub, sender: &str, id: &str, case: &str, kid: &str) -> anyhow::Result<Vec<String>> {
    let (sha, seq) = ledger_record(hub, sender, id).await?;
    anyhow::ensure!(sha.len() == 64, "ledger digest {sha:?}");
    Ok(vec![
        format!("报文编号：{id}"),
        format!("案件编号：{case}"),
        format!("SHA-256：{sha}"),
        format!("受理序号：XJ_ACCEPTED {seq}"),
        format!("平台签名密钥：{kid}"),
        format!("message {id} · sha256 {}…", &sha[..16]),
    ])
}

#[tokio::test]
async fn letters_read_back_whole_by_those_entitled_to_them() -> anyhow::Result<()> {
    crate::common::ensure_debian("fonts-noto-cjk", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc");
    let hub = TestHub::start_with_orgs("", ORGS).await?;
    let keys = hub_key(&hub).await?;
    let kid = keys.0.clone();

    // 行政案件移送函, read by its sender and its addressee.
    let case = submit(&hub, "yl-market", &case_referral()).await?["case"].as_str().unwrap_or_default().to_owned();
    let mut want: Vec<String> = [
        "行政案件移送函",
        "榆市监案移〔2026〕21号",
        "榆林县城关镇人民政府：",
        "本机关于2026年11月17日对榆林县某电器商行涉嫌销售不合格电热水壶一案立案调查",
        "在调查中发现，该事项已赋权城关镇，此案超出本机关管辖范围。",
        "依照《中华人民共和国行政处罚法》第二十二条的规定，现将该案移送你单位处理。",
        "日常检查中发现无3C认证电热水壶",
        "当事人：榆林县某电器商行",
        "法定代表人：孙七",
        "住所（地址）：城关镇解放路18号",
        "案由：涉嫌销售不合格电热水壶",
        "生产、销售伪劣产品（PRODUCT-FAKE）",
        "城关镇解放路20号（区划代码990102101）",
        "发现日期：2026年11月16日",
        "立案日期：2026年11月17日",
        "销售金额（元）：3650",
        "1.案件有关材料3份：",
        "（1）现场检查笔录，1份，3页",
        "（2）抽样检验报告，2份，8页",
        "2.移送案件涉案物品清单",
        "1 电热水壶 46 台 随案移送",
        "2 过期包装盒 12 个 已先行处置 180",
        "周八 99010200011",
        "吴九 99010200012",
        "联系人：郑十",
        "联系电话：0912-7654321",
        "单位地址：榆林县解放路2号",
        "榆林县市场监督管理局（印章）",
        "2026年11月30日",
        "发送机关：榆林县市场监督管理局（yl-market）",
        "主送机关：榆林县城关镇人民政府（yl-town）",
    ]
    .map(String::from)
    .to_vec();
    want.push(format!("统一社会信用代码：{}", case_referral()["body"]["party"]["uscc"].as_str().unwrap_or("?")));
    want.extend(checks(&hub, "yl-market", "YL-CASE-1", &case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-market", "yl-town"] {
        let text = read(&hub, "YL-CASE-1", org, "case_referral-YL-CASE-1.pdf", &keys).await?;
        assert_fields(&format!("case referral for {org}"), &text, &wanted);
    }

    // 接收处理情况的复函: the town's answer, titled by the referral it answers.
    delivered(&hub, "yl-town", "YL-CASE-1").await?;
    submit(&hub, "yl-town", &reply()).await?;
    let mut want: Vec<String> = [
        "榆林县某电器商行涉嫌销售不合格电热水壶行政案件",
        "接收处理情况的复函",
        "城关综执立〔2026〕5号",
        "榆林县市场监督管理局：",
        "贵单位2026年11月30日移送的榆林县某电器商行涉嫌销售不合格电热水壶一案《行政案件移送函》（榆市监案移〔2026〕21号），共1卷11页及移送涉案物品58件收悉。",
        "决定予以立案查处（立案编号：城关综执立〔2026〕5号），案件办结后再反馈处理情况。",
        "处理决定：予以立案",
        "决定日期：2026年12月2日",
        "所复报文：YL-CASE-1",
        "联系人：冯十一",
        "联系电话：0912-5550001",
        "榆林县城关镇人民政府（印章）",
        "报文分类：sensitive（敏感）",
    ]
    .map(String::from)
    .to_vec();
    want.extend(checks(&hub, "yl-town", "YL-REPLY-1", &case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-town", "yl-market"] {
        let text = read(&hub, "YL-REPLY-1", org, "referral_reply-YL-REPLY-1.pdf", &keys).await?;
        assert_fields(&format!("reply for {org}"), &text, &wanted);
    }

    // 涉嫌犯罪案件移送书 to the police, copied to the procuratorate, and
    // the police's receipt.
    let ho_case = submit(&hub, "yl-market", &handoff()).await?["case"].as_str().unwrap_or_default().to_owned();
    let mut want: Vec<String> = [
        "涉嫌犯罪案件移送书",
        "榆市监刑移〔2026〕3号",
        "榆林县公安局经济犯罪侦查大队：",
        "本机关于2026年11月12日对榆林县某酒类经营部销售伪劣白酒一案立案调查",
        "榆林县某酒类经营部涉嫌生产、销售伪劣产品罪，销售金额已达刑事立案追诉标准。",
        "本案承办人员于2026年11月27日提出移送涉嫌犯罪案件的书面报告，经本机关局长钱局长于2026年11月28日批准",
        "依照《中华人民共和国刑法》第一百四十条和《行政执法机关移送涉嫌犯罪案件的规定》的规定",
        "涉嫌罪名：生产、销售伪劣产品罪",
        "住所（地址）：城关镇东大街7号",
        "发现日期：2026年11月10日",
        "销售金额（元）：86000",
        "批准人：局长钱局长",
        "书面报告日期：2026年11月27日",
        "榆市监罚〔2025〕17号 2025年8月12日 罚款 15000",
        "（1）涉嫌犯罪案件调查报告（调查报告）",
        "（1）白酒质量检验报告（检验报告）",
        "1 伪劣白酒 320 瓶 随案移送",
        "（1）询问笔录，3份，15页",
        "周八 99010200011",
        "吴九 99010200012",
        "抄送：榆林县人民检察院",
        "2026年12月1日",
    ]
    .map(String::from)
    .to_vec();
    want.extend(checks(&hub, "yl-market", "YL-HO-1", &ho_case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-market", "yl-police", "yl-procuratorate"] {
        let text = read(&hub, "YL-HO-1", org, "criminal_handoff-YL-HO-1.pdf", &keys).await?;
        assert_fields(&format!("hand-off for {org}"), &text, &wanted);
        assert!(text.contains(&format!("公民身份号码：{ID_NO}")), "{org} holds the message and reads it whole");
    }
    // The operator and the county's supervisor read it with the party's
    // ID number masked, as every screen of the hub shows it.
    for org in ["operator", "yl-justice"] {
        let text = read(&hub, "YL-HO-1", org, "criminal_handoff-YL-HO-1.pdf", &keys).await?;
        assert_fields(&format!("hand-off for {org}"), &text, &wanted);
        assert!(!text.contains(ID_NO), "{org} reads the ID number masked");
        assert!(text.contains(&squeeze(&xj_model::ids::mask_id_no(ID_NO))), "{org}: {text}");
    }

    delivered(&hub, "yl-police", "YL-HO-1").await?;
    submit(&hub, "yl-police", &receipt()).await?;
    let mut want: Vec<String> = [
        "接受移送回执",
        "榆公经受〔2026〕12号",
        "榆林县市场监督管理局：",
        "你单位移送的榆林县某酒类经营部涉嫌生产、销售伪劣产品罪一案《涉嫌犯罪案件移送书》（榆市监刑移〔2026〕3号）及有关材料，本机关已于2026年12月2日16:40接受。",
        "接受时间：2026年12月2日16:40",
        "移送书报文：YL-HO-1",
        "榆林县公安局经济犯罪侦查大队（印章）",
    ]
    .map(String::from)
    .to_vec();
    want.extend(checks(&hub, "yl-police", "YL-RCPT-1", &ho_case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-police", "yl-market"] {
        let text = read(&hub, "YL-RCPT-1", org, "handoff_receipt-YL-RCPT-1.pdf", &keys).await?;
        assert_fields(&format!("receipt for {org}"), &text, &wanted);
    }

    // 不予立案通知书: the police's decision, addressed to the hand-off's
    // sender; then the procuratorate's 要求说明不立案理由通知书 to the police.
    let decision = json!({
        "id": "YL-PD-1", "type": "police_decision", "sender": "yl-police", "reply_to": "YL-HO-1",
        "sent_at": "2026-12-03T09:00:00+08:00", "classification": "internal",
        "body": { "decision": "not_filed", "reason": "现有证据不足以证明销售金额达到追诉标准", "decided_on": "2026-12-03" }
    });
    submit(&hub, "yl-police", &decision).await?;
    let mut want: Vec<String> = [
        "不予立案通知书",
        "榆林县市场监督管理局：",
        "你单位移送的榆林县某酒类经营部涉嫌生产、销售伪劣产品罪一案（《涉嫌犯罪案件移送书》榆市监刑移〔2026〕3号），本机关经审查，决定不予立案，理由是：现有证据不足以证明销售金额达到追诉标准。",
        "三日内向本机关提请复议",
        "决定：不予立案通知书（not_filed）",
        "决定日期：2026年12月3日",
        "移送书报文：YL-HO-1",
        "榆林县公安局经济犯罪侦查大队（印章）",
    ]
    .map(String::from)
    .to_vec();
    want.extend(checks(&hub, "yl-police", "YL-PD-1", &ho_case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-police", "yl-market"] {
        let text = read(&hub, "YL-PD-1", org, "police_decision-YL-PD-1.pdf", &keys).await?;
        assert_fields(&format!("police decision for {org}"), &text, &wanted);
    }
    let notice = json!({
        "id": "YL-SN-1", "type": "supervision_notice", "sender": "yl-procuratorate", "recipient": "yl-police",
        "case": ho_case, "sent_at": "2026-12-03T15:00:00+08:00", "classification": "internal",
        "body": { "kind": "explain_not_filing", "text": "你队对榆林县某酒类经营部一案决定不予立案，请说明理由。",
                  "legal_basis": "《人民检察院刑事诉讼规则》第五百五十九条", "doc_no": "榆检立监〔2026〕4号" }
    });
    submit(&hub, "yl-procuratorate", &notice).await?;
    let mut want: Vec<String> = [
        "要求说明不立案理由通知书",
        "榆检立监〔2026〕4号",
        "榆林县公安局经济犯罪侦查大队：",
        "依照《人民检察院刑事诉讼规则》第五百五十九条的规定，你队对榆林县某酒类经营部一案决定不予立案，请说明理由。",
        "七日内书面说明不立案的理由",
        "榆林县人民检察院（印章）",
        "2026年12月3日",
    ]
    .map(String::from)
    .to_vec();
    want.extend(checks(&hub, "yl-procuratorate", "YL-SN-1", &ho_case, &kid).await?);
    let wanted: Vec<&str> = want.iter().map(String::as_str).collect();
    for org in ["yl-procuratorate", "yl-police"] {
        let text = read(&hub, "YL-SN-1", org, "supervision_notice-YL-SN-1.pdf", &keys).await?;
        assert_fields(&format!("supervision notice for {org}"), &text, &wanted);
    }

    // Supervisors of the case's county read its letters; not a sensitive
    // one that does not name them, nor another county's.
    read(&hub, "YL-CASE-1", "yl-procuratorate", "case_referral-YL-CASE-1.pdf", &keys).await?;
    read(&hub, "YL-CASE-1", "operator", "case_referral-YL-CASE-1.pdf", &keys).await?;
    let no_such = |got: &Got, who: &str| {
        assert_error(got.status, &got.json(), 404, "not_found");
        assert!(got.json()["message"].as_str().is_some_and(|m| m.contains("no message")), "{who}: {}", got.json());
    };
    for (id, org) in [
        ("YL-REPLY-1", "yl-justice"),
        ("YL-CASE-1", "qh-justice"),
        ("YL-CASE-1", "qh-market"),
        ("YL-CASE-1", "yl-police"),
        ("YL-HO-1", "yl-town"),
        ("YL-RCPT-1", "qh-procuratorate"),
    ] {
        let got = letter(&hub, &format!("{id}/letter"), &hub.token(org)).await?;
        no_such(&got, &format!("{org} on {id}"));
    }
    let got = letter(&hub, "YL-NOPE/letter", &hub.operator_token()).await?;
    no_such(&got, "an unknown id");

    // A type without a letter; and a second message with the referral's id,
    // from another sender, which the referral's sender also received.
    let ask = json!({
        "id": "YL-CASE-1", "type": "assistance_request", "sender": "yl-town", "recipient": "yl-market",
        "reply_to": null, "sent_at": "2026-12-02T11:00:00+08:00", "classification": "internal",
        "body": { "need": "协助对涉案电热水壶进行检验", "due_basis": "assistance" }
    });
    submit(&hub, "yl-town", &ask).await?;
    delivered(&hub, "yl-market", "YL-CASE-1").await?;
    let market = hub.token("yl-market");
    let got = eventually(T, "the second YL-CASE-1 routed", || async {
        letter(&hub, "YL-CASE-1/letter", &market).await.ok().filter(|g| g.status != 200)
    })
    .await?;
    assert_error(got.status, &got.json(), 422, "invalid");
    assert_eq!(pointers(&got.json()), ["/sender"], "{}", got.json());
    let said = got.json()["details"][0]["message"].as_str().unwrap_or_default().to_owned();
    assert!(said.contains("yl-market") && said.contains("yl-town") && said.contains("?sender="), "{said}");
    let got = letter(&hub, "YL-CASE-1/letter?sender=yl-town", &market).await?;
    assert_error(got.status, &got.json(), 422, "invalid");
    assert_eq!(pointers(&got.json()), ["/type"], "{}", got.json());
    let said = got.json()["details"][0]["message"].as_str().unwrap_or_default().to_owned();
    for t in [
        "assistance_request",
        "case_referral",
        "clue_referral",
        "referral_reply",
        "criminal_handoff",
        "handoff_receipt",
        "police_decision",
        "supervision_notice",
    ] {
        assert!(said.contains(t), "{t} missing from {said:?}");
    }
    let got = letter(&hub, "YL-CASE-1/letter?sender=yl-market", &market).await?;
    assert_eq!(got.status, 200, "{}", got.json());
    // The town, which sent one and received the other, names the sender too.
    let got = letter(&hub, "YL-CASE-1/letter?sender=yl-market", &hub.token("yl-town")).await?;
    assert_eq!(got.status, 200, "{}", got.json());
    Ok(())
}

#[tokio::test]
async fn a_hub_without_its_font_says_what_to_install() -> anyhow::Result<()> {
    let hub =
        TestHub::start_with_orgs("[print]\nfont = \"/nonexistent/fonts/NotoSansCJK-Regular.ttc\"\n", ORGS).await?;
    submit(&hub, "yl-market", &case_referral()).await?;
    let token = hub.token("yl-market");
    let got = eventually(T, "a letter answered", || async {
        letter(&hub, "YL-CASE-1/letter", &token).await.ok().filter(|g| g.status != 404)
    })
    .await?;
    assert_error(got.status, &got.json(), 503, "unavailable");
    let said = got.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(said.contains("fonts-noto-cjk") && said.contains("/nonexistent/fonts/NotoSansCJK-Regular.ttc"), "{said}");
    // Who may not read it learns nothing, font or not.
    let got = letter(&hub, "YL-CASE-1/letter", &hub.token("qh-market")).await?;
    assert_error(got.status, &got.json(), 404, "not_found");
    Ok(())
}
