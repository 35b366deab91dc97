//! `GET /v1/messages/{id}/letter`: a referral, a reply, a hand-off or a
//! receipt as the official letter it stands for (docs/api.md, "Letters"),
//! printed as PDF from the message the hub stored when it accepted it —
//! never from anything the caller sends — with what a reader needs to check
//! the paper against the audit ledger: the SHA-256 of the stored message,
//! its place in `XJ_ACCEPTED` and the hub's signing key.
//!
//! The layouts follow the annexes of
//! 《关于加强乡（镇、街道）与县级行政执法部门协调协作的指导意见》 (附件1
//! 行政案件移送函, 附件2 违法线索移送函, 附件3 接收处理情况的复函) and, for a
//! hand-off, what 《行政执法机关移送涉嫌犯罪案件的规定》 art. 6 says a
//! 涉嫌犯罪案件移送书 carries, with the police's receipt (回执).

use std::collections::HashMap;

use async_nats::jetstream::stream::RawMessageErrorKind;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use xj_bus::events::{Event, Role, Step};
use xj_bus::records::{CaseRecord, RouteEntry};
use xj_bus::{headers as h, subjects};
use xj_config::Settings;
use xj_model::Problem;
use xj_print::{Block, Doc, Printer, Table};

use crate::auth::caller;
use crate::error::{ApiError, clip};
use crate::state::{Caller, GatewayState};

/// The message types that have a letter, and the letter each is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    CaseReferral,
    ClueReferral,
    ReferralReply,
    CriminalHandoff,
    HandoffReceipt,
    PoliceDecision,
    SupervisionNotice,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::CaseReferral,
        Kind::ClueReferral,
        Kind::ReferralReply,
        Kind::CriminalHandoff,
        Kind::HandoffReceipt,
        Kind::PoliceDecision,
        Kind::SupervisionNotice,
    ];

    pub fn of(msg_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.msg_type() == msg_type)
    }

    pub fn msg_type(self) -> &'static str {
        match self {
            Kind::CaseReferral => "case_referral",
            Kind::ClueReferral => "clue_referral",
            Kind::ReferralReply => "referral_reply",
            Kind::CriminalHandoff => "criminal_handoff",
            Kind::HandoffReceipt => "handoff_receipt",
            Kind::PoliceDecision => "police_decision",
            Kind::SupervisionNotice => "supervision_notice",
        }
    }

    /// The letter's name, as its title prints it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::CaseReferral => "行政案件移送函",
            Kind::ClueReferral => "违法线索移送函",
            Kind::ReferralReply => "接收处理情况的复函",
            Kind::CriminalHandoff => "涉嫌犯罪案件移送书",
            Kind::HandoffReceipt => "接受移送回执",
            Kind::PoliceDecision => "公安机关立案审查决定通知",
            Kind::SupervisionNotice => "监督文书",
        }
    }
}

/// The police's decision on a hand-off as its notice is titled (Decree 310
/// art. 8-9; 补正 and 退回 after the Ministry of Public Security's rules).
fn decision_title(decision: &str) -> &'static str {
    match decision {
        "filed" => "立案告知书",
        "not_filed" => "不予立案通知书",
        "transferred" => "移送案件通知书",
        "supplement_requested" => "补充材料通知书",
        "returned" => "退回案件通知书",
        _ => "公安机关立案审查决定通知",
    }
}

/// A supervision notice's title by its kind.
fn notice_title(kind: &str) -> &'static str {
    match kind {
        "explain_not_filing" => "要求说明不立案理由通知书",
        "notify_filing" => "通知立案书",
        "procuratorial_recommendation" => "检察建议书",
        "procuratorial_opinion" => "检察意见书",
        "supervision_order" => "督办通知书",
        "supervision_recommendation" => "监督建议书",
        _ => "监督文书",
    }
}

/// The refusal for a message of a type that has no letter.
fn no_letter(msg_type: &str) -> ApiError {
    let have: Vec<String> = Kind::ALL.iter().map(|k| format!("{} ({})", k.msg_type(), k.name())).collect();
    ApiError::Invalid(vec![Problem::new(
        "/type",
        format!("{} messages have no official letter; letters are printed for {}", clip(msg_type), have.join(", ")),
    )])
}

/// Names of organisations and matters, from the configuration.
#[derive(Debug, Default)]
pub(crate) struct Names {
    pub orgs: HashMap<String, String>,
    pub matters: HashMap<String, String>,
}

impl Names {
    fn of(settings: &Settings) -> Self {
        Self {
            orgs: settings.org.iter().map(|o| (o.id.clone(), o.name.clone())).collect(),
            matters: settings.matter.iter().map(|m| (m.code.clone(), m.name.clone())).collect(),
        }
    }

    /// An organisation no longer configured is printed by its id.
    fn org(&self, id: &str) -> String {
        self.orgs.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }
}

/// Everything a letter is printed from.
pub(crate) struct Letter<'a> {
    pub kind: Kind,
    /// The envelope as the hub stored it (its `case` filled in).
    pub message: &'a Value,
    /// The referral a reply answers, the hand-off a receipt answers, when
    /// the hub still has it.
    pub answered: Option<&'a Value>,
    /// Whom the router addressed it to (`to`) and copied (`copy`).
    pub to: &'a [String],
    pub copies: &'a [String],
    /// Where and how the hub stored it: what the ledger recorded.
    pub seq: u64,
    pub sha256: &'a str,
    pub accepted_at: &'a str,
    /// The hub's current signing key (`GET /v1/keys`).
    pub kid: &'a str,
    pub names: &'a Names,
}

/// The letter as a printable document.
pub(crate) fn build(l: &Letter) -> Doc {
    let m = l.message;
    let body = m.get("body").unwrap_or(&Value::Null);
    let mut b = Vec::new();
    match l.kind {
        Kind::CaseReferral | Kind::ClueReferral => referral(&mut b, l, body),
        Kind::CriminalHandoff => handoff(&mut b, l, body),
        Kind::ReferralReply => reply(&mut b, l, body),
        Kind::HandoffReceipt => receipt(&mut b, l, body),
        Kind::PoliceDecision => police_decision(&mut b, l, body),
        Kind::SupervisionNotice => notice(&mut b, l, body),
    }
    verification(&mut b, l);
    let id = text(m, "/id").unwrap_or_default();
    let number = match l.kind {
        Kind::ReferralReply => text(body, "/case_no"),
        Kind::HandoffReceipt => text(body, "/receipt_no"),
        Kind::PoliceDecision => text(body, "/police_case_no"),
        _ => text(body, "/doc_no"),
    };
    let name = title(l.kind, body);
    Doc {
        title: match number {
            Some(n) => format!("{name} {n}"),
            None => name.to_owned(),
        },
        landscape: false,
        blocks: b,
        footer: format!("message {id} · sha256 {}…", l.sha256.get(..16).unwrap_or(l.sha256)),
    }
}

/// The letter's title: its kind's name, or for a police decision and a
/// supervision notice the name of the document it is.
fn title(kind: Kind, body: &Value) -> &'static str {
    match kind {
        Kind::PoliceDecision => decision_title(text(body, "/decision").unwrap_or_default()),
        Kind::SupervisionNotice => notice_title(text(body, "/kind").unwrap_or_default()),
        k => k.name(),
    }
}

/// 附件1 and 附件2: the referral letter.
fn referral(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    let case = l.kind == Kind::CaseReferral;
    b.push(Block::Title(l.kind.name().into()));
    if let Some(n) = text(body, "/doc_no") {
        b.push(Block::Subtitle(n.into()));
    }
    addressee(b, l);
    let subject = subject(body);
    let reason = text(body, "/reason").unwrap_or_default();
    b.push(Block::Paragraph(if case {
        format!(
            "　　本机关于{}对{subject}一案立案调查，在调查中发现，{}，此案超出本机关管辖范围。",
            date_of(body, "/filed_on"),
            sentence(reason)
        )
    } else {
        format!(
            "　　本机关于{}发现{subject}违法线索，{}，此案超出本机关管辖范围。",
            date_of(body, "/found_on"),
            sentence(reason)
        )
    }));
    let what = if case { "该案" } else { "该线索" };
    b.push(Block::Paragraph(format!("　　{}现将{what}移送你单位处理。", according_to(text(body, "/legal_basis")))));
    if let Some(s) = text(body, "/summary") {
        b.push(Block::Paragraph(format!("　　基本情况：{s}")));
    }
    particulars(b, l, body);
    b.push(Block::Heading(if case { "附件：" } else { "附：" }.into()));
    let mut n = materials(b, body, 1);
    if case && has_items(body, "/seized_items") {
        b.push(Block::Paragraph(format!("{n}.移送案件涉案物品清单（见下表）")));
        seized(b, body);
        n += 1;
    }
    if n == 1 {
        b.push(Block::Paragraph("（无）".into()));
    }
    officers(b, body);
    contact(b, body);
    signature(b, l, text(body, "/signed_on"));
    copies(b, l, body);
}

/// 涉嫌犯罪案件移送书: the hand-off, with what art. 6 says it carries.
fn handoff(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    b.push(Block::Title(Kind::CriminalHandoff.name().into()));
    if let Some(n) = text(body, "/doc_no") {
        b.push(Block::Subtitle(n.into()));
    }
    addressee(b, l);
    let party = text(body, "/party/name").unwrap_or_default();
    let offence = text(body, "/offence").unwrap_or_default();
    let mut first = format!(
        "　　本机关于{}对{}一案立案调查。经查，{party}涉嫌{offence}，{}。",
        date_of(body, "/filed_on"),
        subject(body),
        sentence(text(body, "/reason").unwrap_or_default())
    );
    if let Some(s) = text(body, "/summary") {
        first.push_str(&format!("基本情况：{}。", sentence(s)));
    }
    b.push(Block::Paragraph(first));
    let approver = format!(
        "{}{}",
        text(body, "/approved_by/title").unwrap_or_default(),
        text(body, "/approved_by/name").unwrap_or_default()
    );
    let reported = text(body, "/reported_on")
        .map(|d| format!("本案承办人员于{}提出移送涉嫌犯罪案件的书面报告，", date(d)))
        .unwrap_or_default();
    let basis = match text(body, "/legal_basis") {
        Some(lb) => format!("依照{}和《行政执法机关移送涉嫌犯罪案件的规定》的规定", without_guiding(lb)),
        None => "依照《行政执法机关移送涉嫌犯罪案件的规定》".into(),
    };
    b.push(Block::Paragraph(format!(
        "　　{reported}经本机关{approver}于{}批准，{basis}，现将该案移送你单位审查。请自接受移送之日起3日内作出立案或者不予立案的决定，书面告知本机关；不属于你单位管辖的，请在24小时内转送有管辖权的机关，并书面告知本机关。",
        date_of(body, "/approved_on")
    )));
    particulars(b, l, body);
    b.push(Block::Heading("审批情况".into()));
    if let Some(d) = text(body, "/reported_on") {
        field(b, "书面报告日期", date(d));
    }
    field(b, "批准人", approver);
    field(b, "批准日期", date_of(body, "/approved_on"));
    prior_penalties(b, body);
    b.push(Block::Heading("附件：".into()));
    let reports: Vec<&Value> = items(body, "/reports").iter().collect();
    let (investigations, others): (Vec<&Value>, Vec<&Value>) =
        reports.into_iter().partition(|r| text(r, "/kind") == Some("investigation"));
    let mut n = 1;
    b.push(Block::Paragraph(format!("{n}.涉嫌犯罪案件情况的调查报告")));
    report_lines(b, &investigations);
    n += 1;
    b.push(Block::Paragraph(format!(
        "{n}.涉案物品清单{}",
        if has_items(body, "/seized_items") { "（见下表）" } else { "（无）" }
    )));
    seized(b, body);
    n += 1;
    b.push(Block::Paragraph(format!("{n}.有关检验报告或者鉴定结论")));
    report_lines(b, &others);
    n += 1;
    b.push(Block::Paragraph(format!("{n}.其他有关涉嫌犯罪的材料")));
    materials_lines(b, body);
    officers(b, body);
    contact(b, body);
    signature(b, l, text(body, "/signed_on"));
    copies(b, l, body);
}

/// 附件3: the reply to a referral.
fn reply(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    let original = l.answered.and_then(|o| o.get("body"));
    let what = match l.answered.and_then(|o| text(o, "/type")) {
        Some("case_referral") => ("行政案件", "《行政案件移送函》"),
        Some("clue_referral") => ("违法线索", "《违法线索移送函》"),
        _ => ("行政案件（违法线索）", "《行政案件（违法线索）移送函》"),
    };
    let subject = original.map(subject).unwrap_or_default();
    b.push(Block::Title(format!("{subject}{}", what.0)));
    b.push(Block::Title(Kind::ReferralReply.name().into()));
    if let Some(n) = text(body, "/case_no") {
        b.push(Block::Subtitle(n.into()));
    }
    addressee(b, l);
    let referred_on = text(body, "/referred_on")
        .map(date)
        .or_else(|| l.answered.map(sent_on))
        .unwrap_or_else(|| "　年　月　日".into());
    let letter_no = text(body, "/letter_doc_no").or_else(|| original.and_then(|o| text(o, "/doc_no")));
    let case = if subject.is_empty() { "的".to_owned() } else { format!("的{subject}一案") };
    let mut first = format!("　　贵单位{referred_on}移送{case}{}", what.1);
    if let Some(n) = letter_no {
        first.push_str(&format!("（{n}）"));
    }
    let volumes = number(body, "/received/volumes");
    let pages = number(body, "/received/pages");
    let got = number(body, "/received/items");
    if volumes.is_some() || pages.is_some() {
        first.push_str(&format!("，共{}卷{}页", volumes.as_deref().unwrap_or("　"), pages.as_deref().unwrap_or("　")));
    }
    match got.as_deref() {
        Some("0") | None => first.push_str("收悉。"),
        Some(n) => first.push_str(&format!("及移送涉案物品{n}件收悉。")),
    }
    b.push(Block::Paragraph(first));
    let reason = text(body, "/reason").map(sentence).unwrap_or_default();
    let decision = text(body, "/decision").unwrap_or_default();
    let (label, said) = match decision {
        "accepted" => (
            "予以立案",
            match text(body, "/case_no") {
                Some(no) => {
                    format!("　　本机关经认真研究，决定予以立案查处（立案编号：{no}），案件办结后再反馈处理情况。")
                }
                None => "　　本机关经认真研究，决定予以立案查处，案件办结后再反馈处理情况。".into(),
            },
        ),
        "declined" => ("不予立案", format!("　　本机关经认真研究，决定不予立案查处。不予立案原因是：{reason}。")),
        "objected" => (
            "管辖异议",
            format!(
                "　　本机关经认真研究，认为该案不属于本机关管辖，理由是：{reason}。请与本机关协商解决；协商不成的，报请共同的上一级行政机关指定管辖。"
            ),
        ),
        other => (other, String::new()),
    };
    if !said.is_empty() {
        b.push(Block::Paragraph(said));
    }
    b.push(Block::Heading("处理情况".into()));
    field(b, "处理决定", label.to_owned());
    if let Some(no) = text(body, "/case_no") {
        field(b, "立案编号", no.to_owned());
    }
    if decision != "accepted"
        && let Some(r) = text(body, "/reason")
    {
        field(b, "理由", r.to_owned());
    }
    if let Some(d) = text(body, "/decided_on") {
        field(b, "决定日期", date(d));
    }
    if let Some(n) = letter_no {
        field(b, "移送函文号", n.to_owned());
    }
    if let Some(r) = text(l.message, "/reply_to") {
        field(b, "所复报文", r.to_owned());
    }
    for (label, ptr) in
        [("卷数", "/received/volumes"), ("页数", "/received/pages"), ("涉案物品（件）", "/received/items")]
    {
        if let Some(n) = number(body, ptr) {
            field(b, label, n);
        }
    }
    contact(b, body);
    signature(b, l, text(body, "/decided_on"));
    copies(b, l, body);
}

/// 回执: the police acknowledge a hand-off.
fn receipt(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    head(b, l, Kind::HandoffReceipt.name(), text(body, "/receipt_no"));
    let original = l.answered.and_then(|o| o.get("body"));
    let received = text(body, "/received_at").map(|t| china_time(t).unwrap_or_else(|| t.to_owned()));
    let mut said = "　　你单位移送的".to_owned();
    if let Some(o) = original {
        said.push_str(&handed_off(o));
    }
    said.push_str("《涉嫌犯罪案件移送书》");
    if let Some(n) = original.and_then(|o| text(o, "/doc_no")) {
        said.push_str(&format!("（{n}）"));
    }
    said.push_str(&format!("及有关材料，本机关已于{}接受。", received.as_deref().unwrap_or("　年　月　日")));
    b.push(Block::Paragraph(said));
    b.push(Block::Heading("接受情况".into()));
    if let Some(t) = &received {
        field(b, "接受时间", t.clone());
    }
    if let Some(n) = text(body, "/receipt_no") {
        field(b, "回执编号", n.to_owned());
    }
    if let Some(n) = original.and_then(|o| text(o, "/doc_no")) {
        field(b, "移送书文号", n.to_owned());
    }
    if let Some(r) = text(l.message, "/reply_to") {
        field(b, "移送书报文", r.to_owned());
    }
    if body.get("auto").and_then(Value::as_bool) == Some(true) {
        b.push(Block::Paragraph("　　本回执由衔接平台在移送书送达本机关时按本机关的设置自动出具（自动回执）。".into()));
    }
    let day = text(body, "/received_at").and_then(china_date);
    b.push(Block::Gap(18.0));
    b.push(Block::Paragraph(format!("{}（印章）", sender_name(l))));
    b.push(Block::Paragraph(day.unwrap_or_else(|| sent_on(l.message))));
    copies(b, l, body);
}

/// The police's decision on a hand-off, as the notice to the organisation
/// that handed it off (Decree 310 art. 8-9).
fn police_decision(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    let decision = text(body, "/decision").unwrap_or_default();
    head(b, l, decision_title(decision), text(body, "/police_case_no"));
    let original = l.answered.and_then(|o| o.get("body"));
    let mut case = "你单位移送的".to_owned();
    if let Some(o) = original {
        case.push_str(&handed_off(o));
        if let Some(n) = text(o, "/doc_no") {
            case.push_str(&format!("（《涉嫌犯罪案件移送书》{n}）"));
        }
    } else {
        case.push_str("涉嫌犯罪案件");
    }
    let reason = text(body, "/reason").map(sentence).unwrap_or_default();
    let said = match decision {
        "filed" => match text(body, "/police_case_no") {
            Some(no) => {
                format!("　　{case}，本机关经审查，认为有犯罪事实，需要追究刑事责任，决定立案侦查（立案编号：{no}）。")
            }
            None => format!("　　{case}，本机关经审查，认为有犯罪事实，需要追究刑事责任，决定立案侦查。"),
        },
        "not_filed" => format!(
            "　　{case}，本机关经审查，决定不予立案，理由是：{reason}。你单位对不予立案决定有异议的，可以自收到本通知书之日起三日内向本机关提请复议，也可以建议人民检察院依法进行立案监督。"
        ),
        "transferred" => format!(
            "　　{case}，本机关经审查，认为不属于本机关管辖，已移送{}，理由是：{reason}。",
            text(body, "/transferred_to").map(|o| l.names.org(o)).unwrap_or_default()
        ),
        "supplement_requested" => {
            format!("　　{case}，本机关经审查，认为移送材料不全，请你单位补充移送以下材料：{reason}。")
        }
        "returned" => format!("　　{case}，本机关经审查，决定退回你单位，理由是：{reason}。"),
        _ => String::new(),
    };
    if !said.is_empty() {
        b.push(Block::Paragraph(said));
    }
    b.push(Block::Heading("决定情况".into()));
    field(b, "决定", format!("{}（{decision}）", decision_title(decision)));
    if let Some(n) = text(body, "/police_case_no") {
        field(b, "立案编号", n.to_owned());
    }
    if let Some(r) = text(body, "/reason") {
        field(b, "理由", r.to_owned());
    }
    if let Some(o) = text(body, "/transferred_to") {
        field(b, "移送至", format!("{}（{o}）", l.names.org(o)));
    }
    let missing: Vec<&str> = items(body, "/missing").iter().filter_map(Value::as_str).collect();
    if !missing.is_empty() {
        field(b, "需补充的材料", missing.join("；"));
    }
    if let Some(d) = text(body, "/decided_on") {
        field(b, "决定日期", date(d));
    }
    if let Some(r) = text(l.message, "/reply_to") {
        field(b, "移送书报文", r.to_owned());
    }
    signature(b, l, text(body, "/decided_on"));
    copies(b, l, body);
}

/// A procuratorate's or justice bureau's supervision notice.
fn notice(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    let kind = text(body, "/kind").unwrap_or_default();
    head(b, l, notice_title(kind), text(body, "/doc_no"));
    let basis = text(body, "/legal_basis");
    let said = text(body, "/text").unwrap_or_default();
    b.push(Block::Paragraph(format!("　　{}{said}", according_to(basis))));
    let answer = match kind {
        "explain_not_filing" => "请你单位自收到本通知书之日起七日内书面说明不立案的理由。",
        "notify_filing" => "请你单位自收到本通知书之日起十五日内立案，并将立案决定书送达本院。",
        "procuratorial_recommendation" | "procuratorial_opinion" => {
            "请你单位自收到之日起两个月内将办理情况书面回复本院。"
        }
        "supervision_order" | "supervision_recommendation" => "请你单位在规定期限内办理并书面回复办理情况。",
        _ => "",
    };
    if !answer.is_empty() {
        b.push(Block::Paragraph(format!("　　{answer}")));
    }
    b.push(Block::Heading("文书情况".into()));
    field(b, "文书种类", format!("{}（{kind}）", notice_title(kind)));
    if let Some(n) = text(body, "/doc_no") {
        field(b, "文号", n.to_owned());
    }
    if let Some(basis) = basis {
        field(b, "法律依据", basis.to_owned());
    }
    field(b, "内容", said.to_owned());
    signature(b, l, None);
    copies(b, l, body);
}

/// What the hub checks a letter against: printed on every letter.
fn verification(b: &mut Vec<Block>, l: &Letter) {
    let m = l.message;
    let get = |p: &str| text(m, p).unwrap_or_default().to_owned();
    b.push(Block::Gap(12.0));
    b.push(Block::Heading("核验信息".into()));
    field(b, "报文编号", get("/id"));
    field(b, "报文类型", format!("{}（{}）", get("/type"), l.kind.name()));
    let sender = get("/sender");
    field(b, "发送机关", format!("{}（{sender}）", l.names.org(&sender)));
    let to: Vec<String> = l.to.iter().map(|o| format!("{}（{o}）", l.names.org(o))).collect();
    if !to.is_empty() {
        field(b, "主送机关", to.join("、"));
    }
    field(b, "案件编号", get("/case"));
    field(b, "发送时间", get("/sent_at"));
    let accepted = match china_time(l.accepted_at) {
        Some(t) => format!("{}（北京时间 {t}）", l.accepted_at),
        None => l.accepted_at.to_owned(),
    };
    field(b, "平台受理时间", accepted);
    field(b, "受理序号", format!("XJ_ACCEPTED {}", l.seq));
    let class = get("/classification");
    let class_cn = match class.as_str() {
        "public" => "公开",
        "internal" => "内部",
        "sensitive" => "敏感",
        _ => "",
    };
    field(b, "报文分类", if class_cn.is_empty() { class } else { format!("{class}（{class_cn}）") });
    field(b, "SHA-256", l.sha256.to_owned());
    field(b, "平台签名密钥", l.kid.to_owned());
    b.push(Block::Paragraph(format!(
        "　　本文书依据衔接平台受理时存储的报文原文生成。SHA-256 为该原文（XJ_ACCEPTED 第 {} 条）的摘要，与平台审计账本中该报文的记录一致：xj audit export --case {} 导出的证据包含原文及其账本记录，xj audit verify 可离线核对。平台签名密钥为平台当前的 Ed25519 密钥编号（公钥见 GET /v1/keys），本文书下载时附该密钥的签名（Xj-Signature）。",
        l.seq,
        get("/case")
    )));
}

/// A letter's head: its title, its number when it has one, the addressee.
fn head(b: &mut Vec<Block>, l: &Letter, title: &str, number: Option<&str>) {
    b.push(Block::Title(title.into()));
    if let Some(n) = number {
        b.push(Block::Subtitle(n.into()));
    }
    addressee(b, l);
}

/// `<party>涉嫌<offence>一案`: a hand-off as the police's answers name it.
fn handed_off(handoff: &Value) -> String {
    format!(
        "{}涉嫌{}一案",
        text(handoff, "/party/name").unwrap_or_default(),
        text(handoff, "/offence").unwrap_or_default()
    )
}

/// `主送机关：` — whom the router addressed the message to.
fn addressee(b: &mut Vec<Block>, l: &Letter) {
    let names: Vec<String> = l.to.iter().map(|o| l.names.org(o)).collect();
    b.push(Block::Gap(6.0));
    b.push(Block::Paragraph(format!("{}：", names.join("、"))));
}

/// `抄送：` — copies the router made (a hand-off's procuratorate) and the
/// organisations the sender named for information (`copy_to`).
fn copies(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    let mut names: Vec<String> = l.copies.iter().map(|o| l.names.org(o)).collect();
    for o in items(body, "/copy_to").iter().filter_map(Value::as_str) {
        let name = l.names.org(o);
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if !names.is_empty() {
        b.push(Block::Gap(6.0));
        field(b, "抄送", names.join("、"));
    }
}

/// The party, the matter and where and when, as the body gives them.
fn particulars(b: &mut Vec<Block>, l: &Letter, body: &Value) {
    b.push(Block::Heading("当事人及案件基本情况".into()));
    let p = |ptr: &str| text(body, ptr).map(str::to_owned);
    if let Some(v) = p("/party/name") {
        field(b, "当事人", v);
    }
    if let Some(v) = p("/party/uscc") {
        field(b, "统一社会信用代码", v);
    }
    if let Some(v) = p("/party/id_no") {
        field(b, "公民身份号码", v);
    }
    if let Some(v) = p("/party/legal_representative") {
        field(b, "法定代表人", v);
    }
    if let Some(v) = p("/party/address") {
        field(b, "住所（地址）", v);
    }
    if let Some(v) = p("/cause") {
        field(b, "案由", v);
    }
    if let Some(v) = p("/offence") {
        field(b, "涉嫌罪名", v);
    }
    if let Some(code) = p("/matter") {
        let name = l.names.matters.get(&code).map(|n| format!("{n}（{code}）")).unwrap_or(code);
        field(b, "事项", name);
    }
    let place = match (p("/location/address"), p("/location/region")) {
        (Some(a), Some(r)) => Some(format!("{a}（区划代码 {r}）")),
        (a, r) => a.or(r),
    };
    if let Some(v) = place {
        field(b, "违法行为发生地", v);
    }
    if let Some(d) = p("/found_on") {
        field(b, "发现日期", date(&d));
    }
    if let Some(d) = p("/filed_on") {
        field(b, "立案日期", date(&d));
    }
    if let Some(facts) = body.get("facts").and_then(Value::as_object) {
        for (k, v) in facts {
            field(b, &fact_label(k), number_text(v));
        }
    }
    if let Some(ticket) = p("/complaint/ticket") {
        let channel = p("/complaint/channel").map(|c| l.names.org(&c)).unwrap_or_default();
        let on = p("/complaint/received_on").map(|d| format!("，{}收到", date(&d))).unwrap_or_default();
        field(b, "线索来源", format!("投诉举报（{channel}工单 {ticket}{on}）"));
    }
    if let Some(name) = p("/complainant/name") {
        let phone = p("/complainant/phone").map(|t| format!("，{t}")).unwrap_or_default();
        field(b, "投诉举报人", format!("{name}{phone}"));
    }
}

/// Labels of the facts the county's thresholds read; any other fact is
/// printed by its name.
fn fact_label(key: &str) -> String {
    match key {
        "sales_amount" => "销售金额（元）".into(),
        "unsold_value" => "未销售货值（元）".into(),
        "goods_value" => "货值金额（元）".into(),
        "illegal_income" => "违法所得（元）".into(),
        "hazardous_waste_tonnes" => "危险废物（吨）".into(),
        other => other.to_owned(),
    }
}

/// `1.案件有关材料N份：` and one line per material; the next item's number.
fn materials(b: &mut Vec<Block>, body: &Value, n: usize) -> usize {
    let list = items(body, "/materials");
    if list.is_empty() {
        return n;
    }
    let total: u64 = list.iter().map(|m| m.get("copies").and_then(Value::as_u64).unwrap_or(1)).sum();
    b.push(Block::Paragraph(format!("{n}.案件有关材料{total}份：")));
    materials_lines(b, body);
    n + 1
}

fn materials_lines(b: &mut Vec<Block>, body: &Value) {
    for (i, m) in items(body, "/materials").iter().enumerate() {
        let mut line = format!("（{}）{}", i + 1, text(m, "/title").unwrap_or_default());
        if let Some(c) = m.get("copies").and_then(Value::as_u64) {
            line.push_str(&format!("，{c}份"));
        }
        if let Some(p) = m.get("pages").and_then(Value::as_u64) {
            line.push_str(&format!("，{p}页"));
        }
        if let Some(sha) = text(m, "/attachment/sha256") {
            line.push_str(&format!("（电子件 SHA-256 {sha}）"));
        }
        b.push(Block::Paragraph(format!("　　{line}")));
    }
}

fn report_lines(b: &mut Vec<Block>, reports: &[&Value]) {
    for (i, r) in reports.iter().enumerate() {
        let kind = match text(r, "/kind") {
            Some("investigation") => "调查报告",
            Some("inspection") => "检验报告",
            Some("appraisal") => "鉴定意见",
            _ => "其他材料",
        };
        let mut line = format!("（{}）{}（{kind}）", i + 1, text(r, "/title").unwrap_or_default());
        if let Some(sha) = text(r, "/attachment/sha256") {
            line.push_str(&format!("（电子件 SHA-256 {sha}）"));
        }
        b.push(Block::Paragraph(format!("　　{line}")));
    }
}

/// 移送案件涉案物品清单: one row per item; an item disposed of in advance
/// travels as its proceeds (the guidance, 二、（二）2).
fn seized(b: &mut Vec<Block>, body: &Value) {
    let list = items(body, "/seized_items");
    if list.is_empty() {
        return;
    }
    let rows = list
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let disposed = s.get("disposed").and_then(Value::as_bool) == Some(true);
            vec![
                (i + 1).to_string(),
                text(s, "/name").unwrap_or_default().to_owned(),
                s.get("quantity").map(number_text).unwrap_or_default(),
                text(s, "/unit").unwrap_or_default().to_owned(),
                if disposed { "已先行处置" } else { "随案移送" }.to_owned(),
                s.get("proceeds").map(number_text).unwrap_or_default(),
            ]
        })
        .collect();
    b.push(Block::Table(Table {
        header: ["序号", "物品名称", "数量", "单位", "处置情况", "先行处置所得（元）"].map(String::from).to_vec(),
        rows,
        widths: vec![0.6, 3.0, 1.2, 0.8, 1.5, 1.8],
    }));
}

/// 曾受行政处罚情况 of a hand-off (prior_penalties).
fn prior_penalties(b: &mut Vec<Block>, body: &Value) {
    let list = items(body, "/prior_penalties");
    if list.is_empty() {
        return;
    }
    b.push(Block::Heading("曾受行政处罚情况".into()));
    let rows = list
        .iter()
        .map(|p| {
            vec![
                text(p, "/decision_doc_no").unwrap_or_default().to_owned(),
                text(p, "/decided_on").map(date).unwrap_or_default(),
                text(p, "/penalty/kind").map(penalty_kind).unwrap_or_default().to_owned(),
                p.pointer("/penalty/amount").map(number_text).unwrap_or_default(),
            ]
        })
        .collect();
    b.push(Block::Table(Table {
        header: ["处罚决定书文号", "决定日期", "处罚种类", "罚款金额（元）"].map(String::from).to_vec(),
        rows,
        widths: vec![3.0, 1.6, 1.8, 1.4],
    }));
}

fn penalty_kind(kind: &str) -> &str {
    match kind {
        "warning" => "警告",
        "fine" => "罚款",
        "confiscation" => "没收违法所得、没收非法财物",
        "suspension" => "暂扣许可证件",
        "licence_revocation" => "吊销许可证件",
        "qualification_lowering" => "降低资质等级",
        "production_restriction" => "限制开展生产经营活动",
        "closure" => "责令关闭",
        "practice_ban" => "限制从业",
        "detention" => "行政拘留",
        "other" => "其他",
        k => k,
    }
}

/// The officers who handle the transfer (two at least, the guidance
/// 二、（二）2), with their certificate numbers.
fn officers(b: &mut Vec<Block>, body: &Value) {
    let list = items(body, "/officers");
    if list.is_empty() {
        return;
    }
    b.push(Block::Heading("承办人员".into()));
    let rows = list
        .iter()
        .map(|o| {
            vec![text(o, "/name").unwrap_or_default().to_owned(), text(o, "/cert_no").unwrap_or_default().to_owned()]
        })
        .collect();
    b.push(Block::Table(Table { header: vec!["姓名".into(), "执法证号".into()], rows, widths: vec![1.0, 2.0] }));
}

fn contact(b: &mut Vec<Block>, body: &Value) {
    for (label, ptr) in
        [("联 系 人", "/contact/name"), ("联系电话", "/contact/phone"), ("单位地址", "/contact/address")]
    {
        if let Some(v) = text(body, ptr) {
            field(b, label, v.to_owned());
        }
    }
}

/// `行政机关名称（印章）` and the letter's date: `on`, else the day sent.
fn signature(b: &mut Vec<Block>, l: &Letter, on: Option<&str>) {
    b.push(Block::Gap(18.0));
    b.push(Block::Paragraph(format!("{}（印章）", sender_name(l))));
    b.push(Block::Paragraph(on.map(date).unwrap_or_else(|| sent_on(l.message))));
}

fn sender_name(l: &Letter) -> String {
    l.names.org(text(l.message, "/sender").unwrap_or_default())
}

fn field(b: &mut Vec<Block>, label: &str, value: String) {
    b.push(Block::Field { label: label.to_owned(), value });
}

/// (违法主体+案由): `清河县某食品店涉嫌无证经营`.
fn subject(body: &Value) -> String {
    format!("{}{}", text(body, "/party/name").unwrap_or_default(), text(body, "/cause").unwrap_or_default())
}

/// `依照…规定，` for a legal basis the sender gave, nothing otherwise.
fn according_to(basis: Option<&str>) -> String {
    match basis {
        Some(lb) => format!("依照{}的规定，", without_guiding(lb)),
        None => String::new(),
    }
}

/// A basis written as `依照…规定` already is printed once, not twice.
fn without_guiding(basis: &str) -> &str {
    let b = basis.strip_prefix("依照").or_else(|| basis.strip_prefix("根据")).unwrap_or(basis);
    b.strip_suffix("的规定").or_else(|| b.strip_suffix("规定")).unwrap_or(b)
}

/// A clause to go inside a sentence: its final full stop dropped.
fn sentence(s: &str) -> &str {
    s.trim_end_matches(['。', '；', '，', '.'])
}

fn text<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty())
}

fn items<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn has_items(v: &Value, ptr: &str) -> bool {
    !items(v, ptr).is_empty()
}

fn number(v: &Value, ptr: &str) -> Option<String> {
    v.pointer(ptr).filter(|n| n.is_number()).map(number_text)
}

/// A number as the sender wrote it (`1200`, `1.2`).
fn number_text(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// `2026-11-08` → `2026年11月8日`, as letters write dates.
fn date(d: &str) -> String {
    match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
        Ok(day) => day.format("%Y年%-m月%-d日").to_string(),
        Err(_) => d.to_owned(),
    }
}

fn date_of(body: &Value, ptr: &str) -> String {
    text(body, ptr).map(date).unwrap_or_else(|| "　年　月　日".into())
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// An RFC 3339 time in China's time: `2026年12月2日 15:30`.
fn china_time(t: &str) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&china());
    Some(at.format("%Y年%-m月%-d日 %H:%M").to_string())
}

fn china_date(t: &str) -> Option<String> {
    let at = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&china());
    Some(at.format("%Y年%-m月%-d日").to_string())
}

/// The day a message was sent, in China.
fn sent_on(m: &Value) -> String {
    let body = m.get("body").unwrap_or(&Value::Null);
    if let Some(d) = text(body, "/signed_on") {
        return date(d);
    }
    text(m, "/sent_at").and_then(china_date).unwrap_or_else(|| "　年　月　日".into())
}

// ---------------------------------------------------------------------
// The endpoint.

#[derive(Debug, Deserialize)]
pub struct LetterQuery {
    sender: Option<String>,
}

/// A message of one sender with this id, as the router placed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Routing {
    pub sender: String,
    pub case: Option<String>,
    /// Where the message is in `XJ_ACCEPTED`.
    pub seq: u64,
    pub to: Vec<String>,
    pub copies: Vec<String>,
    pub accepted_at: Option<String>,
}

/// Each sender's message with the id, from its events: the first routing
/// the router wrote for it (a later re-route by a designation or transfer
/// sends the same letter on; it does not re-address it). A message not
/// routed yet has no addressee, and so no letter yet.
pub(crate) fn routings(events: &[Event]) -> Vec<Routing> {
    let mut sorted: Vec<&Event> = events.iter().collect();
    sorted.sort_by_key(|e| e.at);
    let mut out: Vec<Routing> = Vec::new();
    for e in &sorted {
        let Some(r) = e.step.routing() else { continue };
        let Some(seq) = r.seq else { continue };
        if r.rerouted_by.is_some() || out.iter().any(|o| o.sender == e.sender) {
            continue;
        }
        let role = |want: Role| -> Vec<String> {
            r.targets.iter().filter(|t| t.role == want).map(|t| t.org.clone()).collect()
        };
        // Events written before targets carried roles name recipients only.
        let to = if r.targets.is_empty() { r.recipients.clone() } else { role(Role::To) };
        out.push(Routing {
            sender: e.sender.clone(),
            case: e.case.clone(),
            seq,
            to,
            copies: role(Role::Copy),
            accepted_at: None,
        });
    }
    for o in &mut out {
        o.accepted_at = sorted.iter().find_map(|e| match &e.step {
            Step::Accepted(a) if e.sender == o.sender && !a.accepted_at.is_empty() => Some(a.accepted_at.clone()),
            _ => None,
        });
    }
    out
}

/// How a caller may read a message's letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// Its sender or one of its recipients: holds the message already.
    Holder,
    /// The operator. It and supervisors read letters with resident ID
    /// numbers masked, as every screen of the hub shows them.
    Operator,
    /// A supervisor of a county the case touches (not of a sensitive
    /// message, which does not name it).
    Supervisor,
}

/// A message as stored in `XJ_ACCEPTED`.
struct Stored {
    message: Value,
    sha256: String,
    accepted_at: Option<String>,
    reply_sender: Option<String>,
}

pub async fn get_letter(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<LetterQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "no message {:?} visible to you (a message has its letter once the hub has routed it)",
            clip(&id)
        ))
    };
    // A message id as the envelope schema has it; nothing else names one.
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) {
        return Err(not_found());
    }
    let events = crate::trace::read_events(&state, &id).await?;
    let mut readable = Vec::new();
    for r in routings(&events).into_iter().filter(|r| q.sender.as_deref().is_none_or(|s| s == r.sender)) {
        let Some(reader) = reader(&state, &who, &id, &r).await? else { continue };
        let Some(stored) = stored(&state, r.seq, &r.sender, &id).await? else { continue };
        // A supervisor does not read what a sensitive message that does not
        // name it says (docs/api.md, "Supervisors' read access").
        if reader == Reader::Supervisor && text(&stored.message, "/classification") == Some("sensitive") {
            continue;
        }
        readable.push((r, reader, stored));
    }
    let (r, reader, mut stored) = match readable.len() {
        0 => return Err(not_found()),
        1 => readable.remove(0),
        _ => {
            let senders: Vec<&str> = readable.iter().map(|(r, _, _)| r.sender.as_str()).collect();
            return Err(ApiError::Invalid(vec![Problem::new(
                "/sender",
                format!(
                    "messages with id {:?} from {} are visible to you: name the sender with ?sender=<org>",
                    clip(&id),
                    senders.join(" and ")
                ),
            )]));
        }
    };
    let msg_type = text(&stored.message, "/type").unwrap_or_default().to_owned();
    let Some(kind) = Kind::of(&msg_type) else { return Err(no_letter(&msg_type)) };
    let mut answered = match kind {
        Kind::ReferralReply | Kind::HandoffReceipt | Kind::PoliceDecision => answered(&state, &r, &stored).await?,
        _ => None,
    };
    if reader != Reader::Holder {
        xj_model::mask_id_numbers_in(&mut stored.message);
        if let Some(a) = answered.as_mut() {
            xj_model::mask_id_numbers_in(a);
        }
    }
    let names = Names::of(&state.settings);
    let accepted_at = stored.accepted_at.clone().or(r.accepted_at.clone()).unwrap_or_default();
    let doc = build(&Letter {
        kind,
        message: &stored.message,
        answered: answered.as_ref(),
        to: &r.to,
        copies: &r.copies,
        seq: r.seq,
        sha256: &stored.sha256,
        accepted_at: &accepted_at,
        kid: state.key.kid(),
        names: &names,
    });
    let printer = printer(&state).await?;
    let pdf = tokio::task::spawn_blocking(move || printer.render(&doc))
        .await
        .map_err(|e| ApiError::Internal(format!("printing the letter stopped: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let file = format!("{}-{}.pdf", kind.msg_type(), ascii_file_name(&id));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let signature =
        HeaderValue::from_str(&state.key.sign_header(&pdf)).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = (StatusCode::OK, pdf).into_response();
    let hd = response.headers_mut();
    hd.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/pdf"));
    hd.insert(header::CONTENT_DISPOSITION, disposition);
    hd.insert(h::SIGNATURE, signature);
    Ok(response)
}

/// An id as a file name every system accepts (`:` is not one of them).
fn ascii_file_name(id: &str) -> String {
    id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Whether `who` may read the letter of `r`'s message: its sender, an
/// organisation it was routed to, the operator, a supervisor of a county
/// its case touches (as `GET /v1/cases` decides).
async fn reader(state: &GatewayState, who: &Caller, id: &str, r: &Routing) -> Result<Option<Reader>, ApiError> {
    let org = match who {
        Caller::Operator => return Ok(Some(Reader::Operator)),
        Caller::Org(org) => org.as_str(),
    };
    if org == r.sender {
        return Ok(Some(Reader::Holder));
    }
    let routed: Vec<RouteEntry> =
        match state.bus.routes.get(&subjects::key(org, id)).await.map_err(ApiError::unavailable)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
            None => Vec::new(),
        };
    if routed.iter().any(|e| e.sender == r.sender && r.case.as_ref().is_none_or(|c| *c == e.case)) {
        return Ok(Some(Reader::Holder));
    }
    if crate::supervision::supervised_county(&state.settings, org).is_none() {
        return Ok(None);
    }
    let Some(case) = &r.case else { return Ok(None) };
    let record: CaseRecord = match state.bus.cases.get(case).await.map_err(ApiError::unavailable)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
        None => return Ok(None),
    };
    Ok(crate::cases::supervises(&state.settings, org, &record).then_some(Reader::Supervisor))
}

/// The message at `seq` of `XJ_ACCEPTED`, if it is `sender`'s `id` (the
/// stream keeps 90 days).
async fn stored(state: &GatewayState, seq: u64, sender: &str, id: &str) -> Result<Option<Stored>, ApiError> {
    let stream = state.bus.js.get_stream(subjects::STREAM_ACCEPTED).await.map_err(ApiError::unavailable)?;
    let raw = match stream.get_raw_message(seq).await {
        Ok(m) => m,
        Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => return Ok(None),
        Err(e) => return Err(ApiError::unavailable(e)),
    };
    let message: Value = serde_json::from_slice(&raw.payload)
        .map_err(|e| ApiError::Internal(format!("XJ_ACCEPTED {seq} is not JSON: {e}")))?;
    if raw.subject.as_str() != subjects::accepted(sender, id)
        || text(&message, "/id") != Some(id)
        || text(&message, "/sender") != Some(sender)
    {
        return Err(ApiError::Internal(format!(
            "XJ_ACCEPTED {seq} is not the message {sender}/{id} its routing names"
        )));
    }
    let headers = Some(&raw.headers);
    Ok(Some(Stored {
        sha256: hex::encode(Sha256::digest(&raw.payload)),
        accepted_at: h::get(headers, h::ACCEPTED_AT).map(str::to_owned),
        reply_sender: h::get(headers, h::REPLY_SENDER).map(str::to_owned),
        message,
    }))
}

/// The referral a reply answers, or the hand-off a receipt answers: found
/// as the gateway threaded the reply, by the replier's route record.
async fn answered(state: &GatewayState, r: &Routing, reply: &Stored) -> Result<Option<Value>, ApiError> {
    let (Some(reply_to), Some(original_sender)) = (text(&reply.message, "/reply_to"), reply.reply_sender.as_deref())
    else {
        return Ok(None);
    };
    let key = subjects::key(&r.sender, reply_to);
    let entries: Vec<RouteEntry> = match state.bus.routes.get(&key).await.map_err(ApiError::unavailable)? {
        Some(b) => serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
        None => return Ok(None),
    };
    let Some(seq) = entries
        .iter()
        .find(|e| e.sender == original_sender && r.case.as_ref().is_none_or(|c| *c == e.case))
        .and_then(|e| e.seq)
    else {
        return Ok(None);
    };
    Ok(stored(state, seq, original_sender, reply_to).await?.map(|s| s.message))
}

/// The gateway's printer, its font read once (`[print] font`); without a
/// font, 503 with what to install.
pub(crate) async fn printer(state: &GatewayState) -> Result<Printer, ApiError> {
    let font = state.settings.print.font.clone();
    let printer = state
        .printer
        .get_or_try_init(|| async move {
            tokio::task::spawn_blocking(move || Printer::load(font.as_deref()))
                .await
                .map_err(|e| ApiError::Internal(format!("loading the font stopped: {e}")))?
                .map_err(|e| ApiError::Unavailable(e.to_string()))
        })
        .await?;
    Ok(printer.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

    fn names() -> Names {
        Names {
            orgs: [
                ("qh-market", "清河县市场监督管理局"),
                ("qh-town-dg", "清河县东关镇人民政府"),
                ("qh-police-econ", "清河县公安局经济犯罪侦查大队"),
                ("qh-procuratorate", "清河县人民检察院"),
                ("qh-eco", "清河县生态环境分局"),
            ]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
            matters: [("PRODUCT-FAKE".to_owned(), "生产、销售伪劣产品".to_owned())].into(),
        }
    }

    fn referral(kind: &str) -> Value {
        json!({
            "id": "CR-1", "type": kind, "sender": "qh-market", "case": "XJ-20261203-ABCDEF0123",
            "sent_at": "2026-12-01T09:30:00+08:00", "classification": "internal",
            "body": {
                "doc_no": "清市监案移〔2026〕12号", "matter": "PRODUCT-FAKE", "cause": "涉嫌销售伪劣白酒",
                "party": { "name": "清河县某酒行", "uscc": "92990101MA00000011", "address": "东关镇人民路1号",
                           "legal_representative": "赵六", "id_no": "110105194912310021" },
                "found_on": "2026-11-18", "filed_on": "2026-11-20",
                "location": { "region": "990101101", "address": "东关镇人民路1号" },
                "reason": "该事项已赋权乡镇。", "legal_basis": "依照《行政处罚法》第二十二条规定",
                "facts": { "sales_amount": 1200, "hazardous_waste_tonnes": 1.5 },
                "summary": "巡查中发现",
                "officers": [ { "name": "张三", "cert_no": "99010100001" }, { "name": "李四", "cert_no": "99010100002" } ],
                "materials": [ { "title": "现场检查笔录", "copies": 2, "pages": 3 }, { "title": "现场照片", "copies": 4 } ],
                "contact": { "name": "王五", "phone": "0999-1234567", "address": "清河县人民路8号" },
                "seized_items": [ { "name": "白酒", "quantity": 300, "unit": "瓶", "disposed": true, "proceeds": 4500 } ],
                "copy_to": ["qh-eco"]
            }
        })
    }

    fn letter_of(kind: Kind, message: &Value, answered: Option<&Value>, names: &Names) -> Doc {
        let to = vec!["qh-town-dg".to_owned()];
        let copies = vec!["qh-procuratorate".to_owned()];
        build(&Letter {
            kind,
            message,
            answered,
            to: &to,
            copies: &copies,
            seq: 42,
            sha256: SHA,
            accepted_at: "2026-12-01T01:30:00.123Z",
            kid: "3f9c0a1b2c3d4e5f",
            names,
        })
    }

    /// The document's text as printed, in order (labels with their values).
    fn printed(doc: &Doc) -> String {
        let mut out = String::new();
        for b in &doc.blocks {
            match b {
                Block::Title(t) | Block::Subtitle(t) | Block::Heading(t) | Block::Paragraph(t) => out.push_str(t),
                Block::Field { label, value } => out.push_str(&format!("{label}：{value}")),
                Block::Table(t) => {
                    out.push_str(&t.header.join("|"));
                    for r in &t.rows {
                        out.push_str(&r.join("|"));
                    }
                }
                Block::Gap(_) => {}
            }
            out.push('\n');
        }
        out.push_str(&doc.footer);
        out
    }

    fn assert_has(text: &str, wanted: &[&str]) {
        for w in wanted {
            assert!(text.contains(w), "{w:?} missing from:\n{text}");
        }
    }

    #[test]
    fn a_case_referral_is_the_annex_1_letter_filled_from_the_message() {
        let n = names();
        let doc = letter_of(Kind::CaseReferral, &referral("case_referral"), None, &n);
        let t = printed(&doc);
        assert!(matches!(&doc.blocks[0], Block::Title(t) if t == "行政案件移送函"), "{t}");
        assert_has(
            &t,
            &[
                "清市监案移〔2026〕12号",
                "清河县东关镇人民政府：",
                "本机关于2026年11月20日对清河县某酒行涉嫌销售伪劣白酒一案立案调查，在调查中发现，该事项已赋权乡镇，此案超出本机关管辖范围。",
                "依照《行政处罚法》第二十二条的规定，现将该案移送你单位处理。",
                "统一社会信用代码：92990101MA00000011",
                "公民身份号码：110105194912310021",
                "法定代表人：赵六",
                "生产、销售伪劣产品（PRODUCT-FAKE）",
                "东关镇人民路1号（区划代码 990101101）",
                "发现日期：2026年11月18日",
                "销售金额（元）：1200",
                "危险废物（吨）：1.5",
                "1.案件有关材料6份：",
                "（1）现场检查笔录，2份，3页",
                "2.移送案件涉案物品清单",
                "1|白酒|300|瓶|已先行处置|4500",
                "张三|99010100001",
                "李四|99010100002",
                "联 系 人：王五",
                "联系电话：0999-1234567",
                "单位地址：清河县人民路8号",
                "清河县市场监督管理局（印章）",
                "2026年12月1日",
                "抄送：清河县人民检察院、清河县生态环境分局",
                "报文编号：CR-1",
                "案件编号：XJ-20261203-ABCDEF0123",
                "受理序号：XJ_ACCEPTED 42",
                "2026-12-01T01:30:00.123Z（北京时间 2026年12月1日 09:30）",
                &format!("SHA-256：{SHA}"),
                "平台签名密钥：3f9c0a1b2c3d4e5f",
                "message CR-1 · sha256 0f1e2d3c4b5a6978…",
            ],
        );
        assert!(!t.contains("规定的规定") && !t.contains("依照依照"), "{t}");
        assert_eq!(doc.title, "行政案件移送函 清市监案移〔2026〕12号");
    }

    #[test]
    fn a_clue_referral_is_the_annex_2_letter_without_a_filing_or_items() {
        let n = names();
        let mut m = referral("clue_referral");
        if let Some(b) = m["body"].as_object_mut() {
            b.remove("filed_on");
        }
        m["body"]["legal_basis"] = Value::Null;
        let t = printed(&letter_of(Kind::ClueReferral, &m, None, &n));
        assert_has(
            &t,
            &[
                "违法线索移送函",
                "本机关于2026年11月18日发现清河县某酒行涉嫌销售伪劣白酒违法线索",
                "现将该线索移送你单位处理。",
                "附：",
            ],
        );
        assert!(!t.contains("涉案物品清单") && !t.contains("立案日期") && !t.contains("依照"), "{t}");
    }

    #[test]
    fn a_reply_names_the_referral_it_answers_and_its_decision() {
        let n = names();
        let original = referral("case_referral");
        let reply = json!({
            "id": "RR-1", "type": "referral_reply", "sender": "qh-town-dg", "reply_to": "CR-1",
            "case": "XJ-20261203-ABCDEF0123", "sent_at": "2026-12-02T10:00:00+08:00", "classification": "internal",
            "body": { "decision": "declined", "reason": "当事人已于移送前注销", "decided_on": "2026-12-02",
                      "received": { "volumes": 2, "pages": 37, "items": 1 } }
        });
        let t = printed(&letter_of(Kind::ReferralReply, &reply, Some(&original), &n));
        assert_has(
            &t,
            &[
                "清河县某酒行涉嫌销售伪劣白酒行政案件",
                "接收处理情况的复函",
                "贵单位2026年12月1日移送的清河县某酒行涉嫌销售伪劣白酒一案《行政案件移送函》（清市监案移〔2026〕12号），共2卷37页及移送涉案物品1件收悉。",
                "决定不予立案查处。不予立案原因是：当事人已于移送前注销。",
                "处理决定：不予立案",
                "决定日期：2026年12月2日",
                "清河县东关镇人民政府（印章）",
            ],
        );
        let accepted = json!({ "id": "RR-2", "type": "referral_reply", "sender": "qh-town-dg", "case": "X",
            "sent_at": "2026-12-02T10:00:00+08:00", "classification": "internal",
            "body": { "decision": "accepted", "case_no": "东关立〔2026〕3号", "letter_doc_no": "清市监案移〔2026〕12号" } });
        let t = printed(&letter_of(Kind::ReferralReply, &accepted, None, &n));
        assert_has(
            &t,
            &["予以立案查处（立案编号：东关立〔2026〕3号）", "处理决定：予以立案", "（清市监案移〔2026〕12号）收悉。"],
        );
    }

    #[test]
    fn a_handoff_carries_what_decree_310_asks_and_its_receipt_answers_it() {
        let n = names();
        let mut h = referral("criminal_handoff");
        let b = &mut h["body"];
        b["offence"] = "生产、销售伪劣产品罪".into();
        b["reported_on"] = "2026-11-25".into();
        b["approved_on"] = "2026-11-26".into();
        b["approved_by"] = json!({ "name": "刘局长", "title": "局长" });
        b["reports"] = json!([{ "title": "案件调查报告", "kind": "investigation" }, { "title": "白酒检验报告", "kind": "inspection" }]);
        b["prior_penalties"] = json!([{ "decision_doc_no": "清市监罚〔2025〕8号", "decided_on": "2025-06-01",
                                         "penalty": { "kind": "fine", "amount": 20000 } }]);
        let t = printed(&letter_of(Kind::CriminalHandoff, &h, None, &n));
        assert_has(
            &t,
            &[
                "涉嫌犯罪案件移送书",
                "清河县某酒行涉嫌生产、销售伪劣产品罪",
                "本案承办人员于2026年11月25日提出移送涉嫌犯罪案件的书面报告，经本机关局长刘局长于2026年11月26日批准",
                "《行政执法机关移送涉嫌犯罪案件的规定》",
                "涉嫌罪名：生产、销售伪劣产品罪",
                "1.涉嫌犯罪案件情况的调查报告",
                "（1）案件调查报告（调查报告）",
                "（1）白酒检验报告（检验报告）",
                "清市监罚〔2025〕8号|2025年6月1日|罚款|20000",
                "抄送：清河县人民检察院",
            ],
        );
        let receipt = json!({ "id": "HR-1", "type": "handoff_receipt", "sender": "qh-police-econ", "reply_to": "CR-1",
            "case": "X", "sent_at": "2026-12-02T15:31:00+08:00", "classification": "internal",
            "body": { "received_at": "2026-12-02T15:30:00+08:00", "receipt_no": "清公经受〔2026〕9号", "auto": true } });
        let t = printed(&letter_of(Kind::HandoffReceipt, &receipt, Some(&h), &n));
        assert_has(
            &t,
            &[
                "接受移送回执",
                "清公经受〔2026〕9号",
                "你单位移送的清河县某酒行涉嫌生产、销售伪劣产品罪一案《涉嫌犯罪案件移送书》（清市监案移〔2026〕12号）及有关材料，本机关已于2026年12月2日 15:30接受。",
                "自动回执",
                "清河县公安局经济犯罪侦查大队（印章）",
                "2026年12月2日",
            ],
        );
    }

    #[test]
    fn only_the_letter_types_have_letters_and_the_refusal_names_them() {
        assert_eq!(Kind::of("case_referral"), Some(Kind::CaseReferral));
        assert_eq!(Kind::of("info_share"), None);
        let body = no_letter("info_share").body();
        assert_eq!(body["error"], "invalid");
        assert_eq!(body["details"][0]["pointer"], "/type");
        let said = body["details"][0]["message"].as_str().unwrap_or_default();
        for k in Kind::ALL {
            assert!(said.contains(k.msg_type()) && said.contains(k.name()), "{said}");
        }
    }

    fn ev(step: &str, sender: &str, minute: u32, detail: Value) -> Event {
        serde_json::from_value(json!({
            "step": step, "service": "test", "msg_id": "M-1", "sender": sender, "case": "XJ-1",
            "msg_type": "criminal_handoff", "at": format!("2026-12-01T01:{minute:02}:00Z"), "trace_id": "", "span_id": "",
            "detail": detail,
        }))
        .expect("a valid event")
    }

    #[test]
    fn the_first_routing_of_each_sender_addresses_its_letter() {
        let events = vec![
            ev(
                "routed",
                "qh-a",
                5,
                json!({ "recipients": ["qh-c"], "targets": [{"org": "qh-c", "role": "to"}],
                                            "rerouted_by": "D-1", "seq": 7 }),
            ),
            ev(
                "routed",
                "qh-a",
                1,
                json!({ "recipients": ["qh-p", "qh-pr"], "seq": 7,
                "targets": [{"org": "qh-p", "role": "to"}, {"org": "qh-pr", "role": "copy"}] }),
            ),
            ev("accepted", "qh-a", 0, json!({ "accepted_at": "2026-12-01T01:00:00.000Z" })),
            ev("accepted", "qh-b", 2, json!({ "accepted_at": "2026-12-01T01:02:00.000Z" })),
            ev("routed", "qh-b", 3, json!({ "recipients": ["qh-a"], "seq": 9 })),
            ev("accepted", "qh-d", 4, json!({ "accepted_at": "2026-12-01T01:04:00.000Z" })),
        ];
        let r = routings(&events);
        assert_eq!(r.len(), 2, "qh-d's message is not routed yet: {r:?}");
        assert_eq!((r[0].sender.as_str(), r[0].seq), ("qh-a", 7));
        assert_eq!(r[0].to, ["qh-p"]);
        assert_eq!(r[0].copies, ["qh-pr"], "the re-route does not re-address the letter");
        assert_eq!(r[0].accepted_at.as_deref(), Some("2026-12-01T01:00:00.000Z"));
        assert_eq!(r[1].to, ["qh-a"], "recipients stand for targets in older events");
        assert!(r[1].copies.is_empty());
    }

    #[test]
    fn a_police_decision_is_the_notice_of_its_decision_about_the_handoff() {
        let n = names();
        let mut h = referral("criminal_handoff");
        h["body"]["offence"] = "生产、销售伪劣产品罪".into();
        let decision = |body: Value| {
            json!({ "id": "PD-1", "type": "police_decision", "sender": "qh-police-econ", "reply_to": "CR-1",
                    "case": "XJ-20261203-ABCDEF0123", "sent_at": "2026-12-05T10:00:00+08:00",
                    "classification": "internal", "body": body })
        };
        let filed = decision(
            json!({ "decision": "filed", "police_case_no": "清公经立〔2026〕21号", "decided_on": "2026-12-05" }),
        );
        let doc = letter_of(Kind::PoliceDecision, &filed, Some(&h), &n);
        let t = printed(&doc);
        assert_has(
            &t,
            &[
                "立案告知书",
                "清公经立〔2026〕21号",
                "你单位移送的清河县某酒行涉嫌生产、销售伪劣产品罪一案（《涉嫌犯罪案件移送书》清市监案移〔2026〕12号）",
                "决定立案侦查（立案编号：清公经立〔2026〕21号）",
                "决定：立案告知书（filed）",
                "决定日期：2026年12月5日",
                "移送书报文：CR-1",
                "清河县公安局经济犯罪侦查大队（印章）",
                "报文编号：PD-1",
            ],
        );
        assert_eq!(doc.title, "立案告知书 清公经立〔2026〕21号");
        let refused = decision(json!({ "decision": "not_filed", "reason": "情节显著轻微，不认为是犯罪。" }));
        let t = printed(&letter_of(Kind::PoliceDecision, &refused, None, &n));
        assert_has(
            &t,
            &[
                "不予立案通知书",
                "你单位移送的涉嫌犯罪案件，本机关经审查，决定不予立案，理由是：情节显著轻微，不认为是犯罪。",
                "三日内向本机关提请复议",
                "理由：情节显著轻微，不认为是犯罪。",
            ],
        );
        let more = decision(
            json!({ "decision": "supplement_requested", "reason": "缺少检验报告", "missing": ["检验报告", "询问笔录"] }),
        );
        let t = printed(&letter_of(Kind::PoliceDecision, &more, None, &n));
        assert_has(&t, &["补充材料通知书", "需补充的材料：检验报告；询问笔录"]);
    }

    #[test]
    fn a_supervision_notice_is_titled_by_its_kind_and_says_what_is_owed() {
        let n = names();
        let notice = json!({ "id": "SN-1", "type": "supervision_notice", "sender": "qh-procuratorate",
            "case": "XJ-20261203-ABCDEF0123", "sent_at": "2026-12-06T09:00:00+08:00", "classification": "internal",
            "body": { "kind": "explain_not_filing", "text": "你局对清河县某酒行一案决定不予立案，请说明理由。",
                      "legal_basis": "《人民检察院刑事诉讼规则》第五百五十九条", "doc_no": "清检立监〔2026〕2号" } });
        let doc = letter_of(Kind::SupervisionNotice, &notice, None, &n);
        let t = printed(&doc);
        assert_has(
            &t,
            &[
                "要求说明不立案理由通知书",
                "清检立监〔2026〕2号",
                "依照《人民检察院刑事诉讼规则》第五百五十九条的规定，你局对清河县某酒行一案决定不予立案，请说明理由。",
                "七日内书面说明不立案的理由",
                "文书种类：要求说明不立案理由通知书（explain_not_filing）",
                "法律依据：《人民检察院刑事诉讼规则》第五百五十九条",
                "清河县人民检察院（印章）",
                "2026年12月6日",
            ],
        );
        assert_eq!(doc.title, "要求说明不立案理由通知书 清检立监〔2026〕2号");
        for (kind, title) in [
            ("notify_filing", "通知立案书"),
            ("procuratorial_recommendation", "检察建议书"),
            ("procuratorial_opinion", "检察意见书"),
            ("supervision_order", "督办通知书"),
            ("supervision_recommendation", "监督建议书"),
        ] {
            let mut m = notice.clone();
            m["body"]["kind"] = kind.into();
            assert!(printed(&letter_of(Kind::SupervisionNotice, &m, None, &n)).starts_with(title), "{kind}");
        }
    }

    #[test]
    fn helpers_write_dates_and_names_as_letters_do() {
        assert_eq!(date("2026-01-08"), "2026年1月8日");
        assert_eq!(date("not a date"), "not a date");
        assert_eq!(china_time("2026-12-01T16:05:00Z").as_deref(), Some("2026年12月2日 00:05"));
        assert_eq!(without_guiding("根据《行政处罚法》第二十二条的规定"), "《行政处罚法》第二十二条");
        assert_eq!(ascii_file_name("MR:2026/1"), "MR_2026_1");
        assert_eq!(Names::default().org("qh-gone"), "qh-gone");
    }
}
