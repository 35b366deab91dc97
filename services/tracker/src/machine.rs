//! The case state machine: folds the hub's events into a case record —
//! parties, messages, state, clocks — and says what must follow (alerts,
//! automatic receipts, statistics). Pure: the service persists and acts.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};
use xj_bus::events::{Event, Role, Routed, Step};
use xj_bus::records::{CaseMessage, CaseRecord, Clock};
use xj_config::{OrgKind, Settings};
use xj_model::MessageType;

use crate::calendar::Calendar;
use crate::clocks::{self, ClockName, OnExpiry, china, end_of_day};

pub struct Ctx<'a> {
    pub settings: &'a Settings,
    pub cal: &'a Calendar,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Alert {
        kind: &'static str,
        about: (String, String),
        recipients: Vec<String>,
        text: String,
        clock: Option<Box<Clock>>,
        discriminator: String,
    },
    /// The police system does not answer: the hub writes its receipt.
    AutoReceipt {
        police: String,
        handoff: String,
        handoff_sender: String,
    },
    Count {
        org: String,
        field: &'static str,
    },
    /// Tell the complaint channel a referral names (`complaint_update`).
    Complaint {
        channel: String,
        /// The referral, and its sender.
        about: (String, String),
        /// `transferred` or `result`.
        stage: &'static str,
        body: Value,
    },
    /// Keep an organisation's monthly figures for the consolidated report.
    Report {
        org: String,
        month: String,
        figures: Value,
        msg_id: String,
        at: DateTime<Utc>,
    },
}

fn count(org: &str, field: &'static str) -> Action {
    Action::Count { org: org.to_string(), field }
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn date(v: &Value, k: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v.get(k)?.as_str()?, "%Y-%m-%d").ok()
}

fn start_of_day(d: NaiveDate) -> DateTime<Utc> {
    china()
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now)
}

fn kind_of(settings: &Settings, org: &str) -> Option<OrgKind> {
    settings.org(org).map(|o| o.kind)
}

/// Applies one event. Returns what must follow; an event already applied
/// changes nothing and asks for nothing.
pub fn apply(rec: &mut CaseRecord, ev: &Event, ctx: &Ctx) -> Vec<Action> {
    match &ev.step {
        Step::Routed(d) | Step::Unplaced(d) => routed(rec, ev, d, ctx),
        Step::Delivered(d) => delivered(rec, ev, &d.recipient, ctx),
        Step::Waiting(d) => waiting(rec, ev, d, ctx),
        _ => Vec::new(),
    }
}

/// A copy stored for a pull organisation waits to be collected: with
/// `pull_alert_hours` configured, that is a clock of its own, overdue to
/// the organisation and its justice bureau when nobody collects in time.
fn waiting(rec: &mut CaseRecord, ev: &Event, d: &xj_bus::events::Delivery, ctx: &Ctx) -> Vec<Action> {
    if !d.waits_for.as_deref().is_some_and(|w| w.starts_with("collection")) {
        return Vec::new();
    }
    let Some(hours) = ctx.settings.org(&d.recipient).and_then(|o| o.deliver.pull_alert_hours) else {
        return Vec::new();
    };
    let id = format!("{}:{}:{}", ClockName::InboxCollection, ev.msg_id, d.recipient);
    let collected = rec
        .messages
        .iter()
        .any(|m| m.id == ev.msg_id && m.sender == ev.sender && m.delivered.iter().any(|(o, _)| o == &d.recipient));
    if collected || rec.clocks.iter().any(|c| c.id == id) {
        return Vec::new();
    }
    let mut c = clocks::start(
        ctx.settings,
        ctx.cal,
        ClockName::InboxCollection,
        (&ev.msg_id, &ev.sender),
        &d.recipient,
        ctx.now,
    );
    c.id = id;
    c.amount = i64::from(hours);
    clocks::set_due(&mut c, ctx.now + chrono::Duration::hours(i64::from(hours)), ctx.settings);
    rec.clocks.push(c);
    Vec::new()
}

fn routed(rec: &mut CaseRecord, ev: &Event, d: &Routed, ctx: &Ctx) -> Vec<Action> {
    let now = ctx.now;
    let recipients = &d.recipients;
    if rec.opened_at.is_empty() {
        rec.opened_at = now.to_rfc3339();
        rec.status = "open".into();
    }
    rec.updated_at = now.to_rfc3339();
    for p in std::iter::once(&ev.sender).chain(recipients.iter()) {
        if p != "hub" && !rec.is_party(p) {
            rec.parties.push(p.clone());
        }
    }
    if let Some(m) = rec.messages.iter_mut().find(|m| m.id == ev.msg_id && m.sender == ev.sender) {
        // Seen before (a redelivery, or a re-route by designation): only new
        // recipients are added.
        for r in recipients {
            if !m.recipients.contains(r) {
                m.recipients.push(r.clone());
            }
        }
        return Vec::new();
    }
    let summary = &d.summary;
    let Some(msg_type) = ev.msg_type else {
        // Every routing decision names the message's type; one that does
        // not has nothing the state machine could act on.
        return Vec::new();
    };
    let with_role =
        |role: Role| -> Vec<String> { d.targets.iter().filter(|t| t.role == role).map(|t| t.org.clone()).collect() };
    rec.messages.push(CaseMessage {
        id: ev.msg_id.clone(),
        msg_type: msg_type.as_str().to_string(),
        sender: ev.sender.clone(),
        recipients: recipients.clone(),
        at: now.to_rfc3339(),
        rule: (!d.rule.is_empty()).then(|| d.rule.clone()),
        rule_version: (!d.rule_version.is_empty()).then(|| d.rule_version.clone()),
        reply_to: d.reply_to.clone(),
        seq: d.seq,
        // The state machine reads the whole summary below; the record
        // keeps a bounded copy, so no sender can outgrow a case.
        summary: crate::summary::bounded(summary),
        delivered: Vec::new(),
        copies: with_role(Role::Copy),
    });
    if d.crime.is_some() {
        rec.crime_met = true;
    }
    let mut out = Vec::new();
    if ev.sender != "hub" {
        out.push(count(&ev.sender, "messages"));
    }
    // An event of an earlier version without targets: everyone must act.
    let to: Vec<String> = if d.targets.is_empty() { recipients.clone() } else { with_role(Role::To) };
    let sender = ev.sender.as_str();
    let about = (ev.msg_id.as_str(), sender);
    let reply_to = d.reply_to.clone().unwrap_or_default();
    match msg_type {
        MessageType::ClueReferral | MessageType::CaseReferral => {
            out.push(count(sender, "referrals_sent"));
            out.extend(to.iter().map(|o| count(o, "referrals_received")));
            rec.status = "referred".into();
        }
        MessageType::ReferralReply => {
            let decision = s(summary, "decision");
            out.extend(close(rec, ClockName::ReferralDecision, &reply_to, sender, &ev.msg_id, ctx));
            if let Some(decided_on) = date(summary, "decided_on") {
                // Written notice within 2 working days of deciding.
                let mut c = clocks::start(
                    ctx.settings,
                    ctx.cal,
                    ClockName::ReferralNotice,
                    about,
                    sender,
                    start_of_day(decided_on),
                );
                c.due = end_of_day(ctx.cal.add_working_days(decided_on, 2));
                rec.clocks.retain(|x| x.id != c.id);
                rec.clocks.push(c);
                out.extend(close(rec, ClockName::ReferralNotice, &ev.msg_id, sender, &ev.msg_id, ctx));
            }
            match decision {
                "accepted" => {
                    rec.status = "accepted".into();
                    out.extend(close_all(rec, &clocks::DISPUTE, &ev.msg_id, now));
                }
                "declined" => rec.status = "declined".into(),
                "objected" => {
                    rec.status = "disputed".into();
                    out.push(count(sender, "disputes"));
                    // The dispute's path is the two parties' to decide
                    // (docs/rules.md, "Disputes"); its first step starts now.
                    let referrer = rec.messages.iter().find(|m| m.id == reply_to).map(|m| m.sender.clone());
                    if let Some(referrer) = referrer {
                        dispute_step(rec, ctx, about, &[referrer, sender.to_string()], 0, now);
                    }
                }
                _ => {}
            }
        }
        MessageType::JurisdictionDesignation => {
            rec.status = "designated".into();
            out.extend(close_all(rec, &clocks::DISPUTE, &ev.msg_id, now));
        }
        MessageType::CriminalHandoff => {
            rec.handed_off = true;
            rec.status = "handed_off".into();
            out.push(count(sender, "handoffs_sent"));
            out.extend(to.iter().map(|o| count(o, "handoffs_received")));
            // Decree 310 art. 5, checked from the dates the letter states.
            if let (Some(rep), Some(app)) = (date(summary, "reported_on"), date(summary, "approved_on")) {
                out.extend(after_the_fact(
                    rec,
                    ctx,
                    ClockName::HandoffApproval,
                    about,
                    sender,
                    start_of_day(rep),
                    start_of_day(app),
                ));
            }
            if let Some(app) = date(summary, "approved_on") {
                let mut c =
                    clocks::start(ctx.settings, ctx.cal, ClockName::HandoffTransfer, about, sender, end_of_day(app));
                c.due = end_of_day(app) + chrono::Duration::hours(24);
                out.extend(check_now(rec, c, &ev.msg_id, ctx));
            }
        }
        MessageType::HandoffReceipt => {
            out.extend(close(rec, ClockName::PoliceReceipt, &reply_to, sender, &ev.msg_id, ctx));
            if rec.status == "filed" {
                let handoff = rec
                    .clocks
                    .iter()
                    .find(|c| c.name == ClockName::SeizedHandover && c.is_open())
                    .map(|c| c.about.clone());
                if let Some(h) = handoff {
                    let owner = rec
                        .clocks
                        .iter()
                        .find(|c| c.id.starts_with(&format!("seized_handover:{h}")))
                        .map(|c| c.owner.clone())
                        .unwrap_or_default();
                    out.extend(close(rec, ClockName::SeizedHandover, &h, &owner, &ev.msg_id, ctx));
                }
            } else if rec.status == "handed_off" {
                rec.status = "received".into();
            }
        }
        MessageType::PoliceDecision => {
            out.push(count(sender, "police_decisions"));
            let handoff = handoff_of(rec, &reply_to);
            let decision = s(summary, "decision");
            match decision {
                "supplement_requested" => {
                    if let Some(h) = &handoff
                        && let Some(received) = received_at(rec, h, sender)
                    {
                        let mut c = clocks::start(
                            ctx.settings,
                            ctx.cal,
                            ClockName::SupplementRequest,
                            (h, ""),
                            sender,
                            received,
                        );
                        c.about_sender =
                            rec.messages.iter().find(|m| &m.id == h).map(|m| m.sender.clone()).unwrap_or_default();
                        out.extend(check_now(rec, c, &ev.msg_id, ctx));
                    }
                }
                _ => {
                    if let Some(h) = &handoff {
                        out.extend(close(rec, ClockName::PoliceReceipt, h, sender, &ev.msg_id, ctx));
                        out.extend(close(rec, ClockName::PoliceFiling, h, sender, &ev.msg_id, ctx));
                    }
                    match decision {
                        "filed" => out.push(count(sender, "police_filed")),
                        "not_filed" => out.push(count(sender, "police_not_filed")),
                        _ => {}
                    }
                    // Filing is what a notice to file (通知立案) asks for.
                    if decision == "filed" {
                        out.extend(close_owned(rec, ClockName::NotifyFiling, sender, &ev.msg_id, ctx));
                    }
                    rec.status = decision.to_string();
                }
            }
        }
        MessageType::ReconsiderationRequest => {
            if kind_of(ctx.settings, to.first().map(String::as_str).unwrap_or_default()) == Some(OrgKind::Procuratorate)
            {
                out.extend(close_owned(rec, ClockName::ProcuratorateRequest, sender, &ev.msg_id, ctx));
            } else {
                out.extend(close_owned(rec, ClockName::ReconsiderationWindow, sender, &ev.msg_id, ctx));
                rec.status = "reconsideration".into();
            }
        }
        MessageType::ReconsiderationDecision => {
            out.extend(close(rec, ClockName::ReconsiderationAnswer, &reply_to, sender, &ev.msg_id, ctx));
            rec.status = if s(summary, "decision") == "filed" { "filed".into() } else { "not_filed".into() };
        }
        MessageType::AssistanceReply if kind_of(ctx.settings, sender) == Some(OrgKind::Court) => {
            // 行政强制法 arts. 56-58: accept within 5 days, then rule within
            // 7 (30 when the court hears the parties).
            let applicant =
                rec.messages.iter().find(|m| m.id == reply_to).map(|m| m.sender.clone()).unwrap_or_default();
            match s(summary, "decision") {
                "accepted" => {
                    out.extend(close(rec, ClockName::CourtAcceptance, &reply_to, sender, &ev.msg_id, ctx));
                    let mut c = clocks::start(
                        ctx.settings,
                        ctx.cal,
                        ClockName::CourtRuling,
                        (&reply_to, &applicant),
                        sender,
                        now,
                    );
                    if summary.get("hearing").and_then(Value::as_bool) == Some(true) {
                        clocks::set_due(&mut c, clocks::Span::CalendarDays(30).due(now, ctx.cal), ctx.settings);
                        c.amount = 30;
                    }
                    if !rec.clocks.iter().any(|x| x.id == c.id) {
                        rec.clocks.push(c);
                    }
                    rec.status = "enforcement_accepted".into();
                }
                "executed" => rec.status = "executed".into(),
                _ => {
                    // A ruling (or a refusal to accept) ends what is open.
                    out.extend(close(rec, ClockName::CourtAcceptance, &reply_to, sender, &ev.msg_id, ctx));
                    out.extend(close(rec, ClockName::CourtRuling, &reply_to, sender, &ev.msg_id, ctx));
                    if summary.get("ruling").is_some() {
                        rec.status = "ruled".into();
                    }
                }
            }
            // An application carried before the court's clocks existed.
            out.extend(close(rec, ClockName::AssistanceReply, &reply_to, sender, &ev.msg_id, ctx));
        }
        MessageType::MonthlyReport => {
            out.extend(close_owned(rec, ClockName::MonthlyReport, sender, &ev.msg_id, ctx));
            if let Some(month) = summary.get("month").and_then(Value::as_str) {
                out.push(Action::Report {
                    org: sender.to_string(),
                    month: month.to_string(),
                    figures: summary.get("figures").cloned().unwrap_or_default(),
                    msg_id: ev.msg_id.clone(),
                    at: now,
                });
            }
        }
        MessageType::ReferralOutcome => {
            rec.status = "closed".into();
            // The complaint channel hears what came of it.
            if let Some(referral) = rec.messages.iter().find(|m| m.id == reply_to)
                && let Some(complaint) = referral.summary.get("complaint")
            {
                let channel = s(complaint, "channel").to_string();
                out.push(Action::Complaint {
                    channel,
                    about: (referral.id.clone(), referral.sender.clone()),
                    stage: "result",
                    body: json!({
                        "stage": "result", "to": sender, "ticket": s(complaint, "ticket"), "about": referral.id,
                        "result": s(summary, "result"), "closed_on": summary.get("closed_on"),
                    }),
                });
            }
        }
        MessageType::AssistanceReply => {
            if s(summary, "decision") == "extended" {
                if let Some(c) = rec
                    .clocks
                    .iter_mut()
                    .find(|c| c.name == ClockName::AssistanceReply && c.about == reply_to && c.is_open())
                    && !c.extended
                {
                    c.extended = true;
                    c.due = end_of_day(ctx.cal.add_working_days(c.due.with_timezone(&china()).date_naive(), 5));
                    c.remind_at = Some(c.due - chrono::Duration::hours(ctx.settings.clock.reminder_hours));
                    c.status = "running".into();
                }
            } else {
                out.extend(close(rec, ClockName::AssistanceReply, &reply_to, sender, &ev.msg_id, ctx));
            }
        }
        MessageType::InfoShare if s(summary, "kind") == "penalty_decision" => {
            if rec.crime_met && !rec.handed_off {
                let mut to = clocks::supervisors(ctx.settings, sender, OrgKind::Procuratorate);
                to.extend(clocks::supervisors(ctx.settings, sender, OrgKind::JusticeBureau));
                out.push(Action::Alert {
                    kind: "penalty_instead_of_transfer",
                    about: (ev.msg_id.clone(), sender.to_string()),
                    recipients: to,
                    text:
                        "案件事实已达刑事立案追诉标准，但未移送公安机关即作出行政处罚（以罚代刑：行政处罚法第八条第二款、第二十七条、第八十二条；《行政执法机关移送涉嫌犯罪案件的规定》第十一条）"
                            .into(),
                    clock: None,
                    discriminator: String::new(),
                });
            }
            // What is major is the rules' to say (`[major_penalty]`); the
            // routing that filed the decision says by when.
            if let Some(f) = &d.filing
                && let (Ok(decided), Ok(due)) = (f.decided_on.parse::<NaiveDate>(), f.due.parse::<NaiveDate>())
            {
                let mut c = clocks::start(
                    ctx.settings,
                    ctx.cal,
                    ClockName::MajorPenaltyFiling,
                    about,
                    sender,
                    start_of_day(decided),
                );
                c.due = end_of_day(due);
                if !rec.clocks.iter().any(|x| x.id == c.id) {
                    rec.clocks.push(c);
                }
            }
        }
        MessageType::SupervisionNotice => {
            out.push(count(sender, "supervision_sent"));
            out.extend(to.iter().map(|o| count(o, "supervision_received")));
        }
        MessageType::SupervisionReply => {
            out.push(count(sender, "supervision_answered"));
            let mut closed = Vec::new();
            for name in clocks::SUPERVISION {
                closed.extend(close(rec, name, &reply_to, sender, &ev.msg_id, ctx));
            }
            if closed.iter().any(|a| matches!(a, Action::Count { field: "decisions_late", .. })) {
                out.push(count(sender, "supervision_late"));
            }
            out.extend(closed);
        }
        MessageType::SupervisionAlert => {
            out.extend(recipients.iter().map(|o| count(o, "alerts")));
            // 以罚代刑 counts against whoever penalised instead of handing off.
            if s(summary, "kind") == "penalty_instead_of_transfer"
                && let Some(m) = rec.messages.iter().find(|m| Some(&m.id) == d.about.as_ref())
            {
                out.push(count(&m.sender.clone(), "penalty_instead_of_transfer"));
            }
        }
        _ => {}
    }
    // A message from the hand-off's sender to the police after a supplement
    // request is the supplement: the filing clock starts again.
    if let Some(c) =
        rec.clocks.iter().find(|c| c.name == ClockName::Supplement && c.is_open() && c.owner == sender).cloned()
        && recipients.iter().any(|r| kind_of(ctx.settings, r) == Some(OrgKind::PublicSecurity))
    {
        out.extend(close(rec, ClockName::Supplement, &c.about, sender, &ev.msg_id, ctx));
        for police in recipients.iter().filter(|r| kind_of(ctx.settings, r) == Some(OrgKind::PublicSecurity)) {
            rec.clocks.retain(|x| x.id != format!("police_filing:{}:{police}", c.about));
            let mut f =
                clocks::start(ctx.settings, ctx.cal, ClockName::PoliceFiling, (&c.about, &c.about_sender), police, now);
            f.id = format!("police_filing:{}:{police}", c.about);
            f.basis = format!("{}（补正后重新计算）", f.basis);
            rec.clocks.push(f);
        }
    }
    out
}

/// Penalties filed with the justice bureau (《县行政执法协调监督工作方案》（十二）).
fn handoff_of(rec: &CaseRecord, reply_to: &str) -> Option<String> {
    rec.messages
        .iter()
        .find(|m| m.id == reply_to && m.msg_type == "criminal_handoff")
        .or_else(|| rec.messages.iter().rev().find(|m| m.msg_type == "criminal_handoff"))
        .map(|m| m.id.clone())
}

fn received_at(rec: &CaseRecord, handoff: &str, police: &str) -> Option<DateTime<Utc>> {
    let m = rec.messages.iter().find(|m| m.id == handoff)?;
    let at = m.delivered.iter().find(|(o, _)| o == police).map(|(_, t)| t.clone())?;
    DateTime::parse_from_rfc3339(&at).ok().map(|t| t.with_timezone(&Utc))
}

fn delivered(rec: &mut CaseRecord, ev: &Event, org: &str, ctx: &Ctx) -> Vec<Action> {
    let now = ctx.now;
    let org = org.to_string();
    let Some(i) = rec.messages.iter().position(|m| m.id == ev.msg_id && m.sender == ev.sender) else {
        return Vec::new();
    };
    if rec.messages[i].delivered.iter().any(|(o, _)| o == &org) {
        return Vec::new();
    }
    rec.messages[i].delivered.push((org.clone(), now.to_rfc3339()));
    rec.updated_at = now.to_rfc3339();
    let m = rec.messages[i].clone();
    // Collected from a pull inbox: the wait for collection is over.
    let mut out = close(rec, ClockName::InboxCollection, &m.id, &org, &ev.msg_id, ctx);
    let kind = kind_of(ctx.settings, &org);
    let about = (m.id.as_str(), m.sender.as_str());
    // A clock is the addressee's: whichever copy happens to arrive first,
    // a copy for information starts none (the procuratorate's copy of a
    // refusal does not open the bureau's reconsideration window).
    let addressee = !m.copies.contains(&org);
    let start = |rec: &mut CaseRecord, name: ClockName| {
        if !addressee {
            return;
        }
        let mut c = clocks::start(ctx.settings, ctx.cal, name, about, &org, now);
        c.id = format!("{name}:{}:{org}", m.id);
        if !rec.clocks.iter().any(|x| x.id == c.id) {
            rec.clocks.push(c);
        }
    };
    let decision = s(&m.summary, "decision");
    // A complaint passed on (首接责任): its channel hears where it went.
    if addressee
        && matches!(m.msg_type.as_str(), "clue_referral" | "case_referral")
        && let Some(complaint) = m.summary.get("complaint")
    {
        out.push(Action::Complaint {
            channel: s(complaint, "channel").to_string(),
            about: (m.id.clone(), m.sender.clone()),
            stage: "transferred",
            body: json!({
                "stage": "transferred", "to": org, "ticket": s(complaint, "ticket"), "about": m.id,
                "received_on": complaint.get("received_on"),
            }),
        });
    }
    match (MessageType::parse(&m.msg_type), kind) {
        (Some(MessageType::ClueReferral | MessageType::CaseReferral), Some(k)) if k.is_enforcement() => {
            start(rec, ClockName::ReferralDecision)
        }
        (Some(MessageType::CriminalHandoff), Some(OrgKind::PublicSecurity)) => {
            start(rec, ClockName::PoliceReceipt);
            start(rec, ClockName::PoliceFiling);
            if ctx.settings.org(&org).is_some_and(|o| o.auto_receipt) {
                out.push(Action::AutoReceipt {
                    police: org.clone(),
                    handoff: m.id.clone(),
                    handoff_sender: m.sender.clone(),
                });
            }
        }
        (Some(MessageType::PoliceDecision), _) if decision == "not_filed" => {
            start(rec, ClockName::ReconsiderationWindow)
        }
        (Some(MessageType::PoliceDecision), _) if decision == "filed" => start(rec, ClockName::SeizedHandover),
        (Some(MessageType::PoliceDecision), _) if decision == "supplement_requested" => {
            start(rec, ClockName::Supplement)
        }
        (Some(MessageType::ReconsiderationRequest), Some(OrgKind::PublicSecurity)) => {
            start(rec, ClockName::ReconsiderationAnswer)
        }
        (Some(MessageType::ReconsiderationDecision), _) if decision == "not_filed" => {
            start(rec, ClockName::ProcuratorateRequest)
        }
        (Some(MessageType::AssistanceRequest), _) if s(&m.summary, "due_basis") == "joint_inspection" => {
            if addressee && let Some(on) = date(&m.summary, "inspection_on") {
                let mut c =
                    clocks::start(ctx.settings, ctx.cal, ClockName::JointInspectionNotice, about, &m.sender, now);
                c.id = format!("joint_inspection_notice:{}:{org}", m.id);
                c.due = end_of_day(ctx.cal.previous_working_day(on));
                out.extend(check_now(rec, c, &m.id, ctx));
            }
        }
        (Some(MessageType::AssistanceRequest), Some(OrgKind::Court)) if s(&m.summary, "due_basis") == "enforcement" => {
            start(rec, ClockName::CourtAcceptance)
        }
        (Some(MessageType::AssistanceRequest), _) => start(rec, ClockName::AssistanceReply),
        (Some(MessageType::SupervisionNotice), _) => {
            // Each kind of notice has the clock of the same name.
            if let Some(name) = ClockName::parse(s(&m.summary, "kind")).filter(|n| clocks::SUPERVISION.contains(n)) {
                start(rec, name);
            }
        }
        (Some(MessageType::InfoShare), Some(OrgKind::JusticeBureau)) => {
            let id = format!("major_penalty_filing:{}", m.id);
            if let Some(c) = rec.clocks.iter().find(|c| c.id == id && c.is_open()).cloned() {
                out.extend(finish(rec, &c.id, &format!("delivered to {org}"), ctx));
            }
        }
        _ => {}
    }
    out
}

/// The monthly report clocks of `county` for `month` (YYYY-MM), on that
/// month's report record: one per enforcement organisation of the county,
/// due at the end of `[report] due_day` of the next month — opened only
/// before that end. A report that came before its clock existed meets it at
/// once.
pub fn monthly_clocks(rec: &mut CaseRecord, ctx: &Ctx, county: &str, month: &str) -> Vec<Action> {
    let Ok(first) = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d") else { return Vec::new() };
    let Some(next) = first.checked_add_months(chrono::Months::new(1)) else { return Vec::new() };
    let Some(due_day) = next.with_day(ctx.settings.report.due_day) else { return Vec::new() };
    let started = start_of_day(next);
    // A hub that first sees the month after its reports were due (a new
    // deployment, a long outage) does not raise a county's worth of
    // overdue alerts for a period it never watched.
    if ctx.now >= end_of_day(due_day) {
        return Vec::new();
    }
    if rec.opened_at.is_empty() {
        rec.opened_at = ctx.now.to_rfc3339();
        rec.status = "reporting".into();
    }
    let mut out = Vec::new();
    let owners = ctx.settings.org.iter().filter(|o| o.kind.is_enforcement() && o.region.starts_with(county));
    for org in owners {
        let id = format!("monthly_report:{month}:{}", org.id);
        if rec.clocks.iter().any(|c| c.id == id) {
            continue;
        }
        let mut c =
            clocks::start(ctx.settings, ctx.cal, ClockName::MonthlyReport, (&rec.case, "hub"), &org.id, started);
        c.id = id.clone();
        clocks::set_due(&mut c, end_of_day(due_day), ctx.settings);
        rec.clocks.push(c);
        let report = rec.messages.iter().find(|m| m.msg_type == "monthly_report" && m.sender == org.id).cloned();
        if let Some(r) = report {
            let at = DateTime::parse_from_rfc3339(&r.at).map(|t| t.with_timezone(&Utc)).unwrap_or(ctx.now);
            let then = Ctx { settings: ctx.settings, cal: ctx.cal, now: at };
            out.extend(finish(rec, &id, &r.id, &then));
        }
    }
    out
}

/// Starts step `step` of the dispute `between` the referrer and the
/// objector: one clock per organisation holding it (for negotiation, the
/// referrer's, whose move it is). False when the path has no such step.
fn dispute_step(
    rec: &mut CaseRecord,
    ctx: &Ctx,
    about: (&str, &str),
    between: &[String; 2],
    step: usize,
    at: DateTime<Utc>,
) -> bool {
    let (path, steps) = ctx.settings.dispute_chain(&between[0], &between[1]);
    let Some(held) = steps.get(step) else { return false };
    let name = clocks::dispute_clock(held.holder);
    let owners =
        if held.holder == xj_config::DisputeHolder::Negotiation { vec![between[0].clone()] } else { held.orgs.clone() };
    for owner in owners {
        let mut c = clocks::start(ctx.settings, ctx.cal, name, about, &owner, at);
        c.id = format!("{name}:{}:{owner}", about.0);
        clocks::set_due(&mut c, clocks::Span::WorkingDays(held.working_days).due(at, ctx.cal), ctx.settings);
        c.dispute =
            Some(xj_bus::records::DisputeAt { path: path.as_str().to_string(), step, between: between.clone() });
        if !rec.clocks.iter().any(|x| x.id == c.id) {
            rec.clocks.push(c);
        }
    }
    true
}

/// Closes the open clock `name` about `about` owned by `owner`.
fn close(rec: &mut CaseRecord, name: ClockName, about: &str, owner: &str, by: &str, ctx: &Ctx) -> Vec<Action> {
    let ids: Vec<String> = rec
        .clocks
        .iter()
        .filter(|c| c.name == name && c.about == about && c.owner == owner && c.is_open())
        .map(|c| c.id.clone())
        .collect();
    ids.iter().flat_map(|id| finish(rec, id, by, ctx)).collect()
}

/// Closes the open clocks `name` owned by `owner`, whatever they are about.
fn close_owned(rec: &mut CaseRecord, name: ClockName, owner: &str, by: &str, ctx: &Ctx) -> Vec<Action> {
    let ids: Vec<String> =
        rec.clocks.iter().filter(|c| c.name == name && c.owner == owner && c.is_open()).map(|c| c.id.clone()).collect();
    ids.iter().flat_map(|id| finish(rec, id, by, ctx)).collect()
}

fn close_all(rec: &mut CaseRecord, names: &[ClockName], by: &str, now: DateTime<Utc>) -> Vec<Action> {
    for c in rec.clocks.iter_mut().filter(|c| names.iter().any(|n| c.name == *n) && c.is_open()) {
        c.status = "met".into();
        c.closed_at = Some(now);
        c.closed_by = Some(by.to_string());
    }
    Vec::new()
}

/// Ends a clock because its party acted: on time, or late (and then the
/// supervisor hears of it, if the clock had not already fired).
fn finish(rec: &mut CaseRecord, id: &str, by: &str, ctx: &Ctx) -> Vec<Action> {
    let Some(c) = rec.clocks.iter_mut().find(|c| c.id == id) else { return Vec::new() };
    let late = ctx.now > c.due;
    c.status = if late { "late".into() } else { "met".into() };
    c.closed_at = Some(ctx.now);
    c.closed_by = Some(by.to_string());
    let c = c.clone();
    let mut out = vec![count(&c.owner, if late { "decisions_late" } else { "decisions_on_time" })];
    if late {
        out.push(overdue_alert(&c));
        out.push(count(&c.owner, "overdue"));
    }
    out
}

/// A deadline that can only be judged when the act arrives (dates in a
/// letter, a notice that had to come a day ahead): start and close at once.
fn check_now(rec: &mut CaseRecord, c: Clock, by: &str, ctx: &Ctx) -> Vec<Action> {
    let id = c.id.clone();
    rec.clocks.retain(|x| x.id != id);
    rec.clocks.push(c);
    finish(rec, &id, by, ctx)
}

#[allow(clippy::too_many_arguments)]
fn after_the_fact(
    rec: &mut CaseRecord,
    ctx: &Ctx,
    name: ClockName,
    about: (&str, &str),
    owner: &str,
    started: DateTime<Utc>,
    done: DateTime<Utc>,
) -> Vec<Action> {
    let c = clocks::start(ctx.settings, ctx.cal, name, about, owner, started);
    let late_ctx = Ctx { settings: ctx.settings, cal: ctx.cal, now: done };
    check_now(rec, c, about.0, &late_ctx)
}

pub fn overdue_alert(c: &Clock) -> Action {
    let mut to = vec![c.owner.clone()];
    to.extend(c.supervisors.iter().cloned());
    Action::Alert {
        kind: "overdue",
        about: (c.about.clone(), c.about_sender.clone()),
        recipients: to,
        text: format!(
            "{} 已超过期限（{}，应于 {} 前完成）",
            c.owner,
            c.basis,
            c.due.with_timezone(&china()).format("%Y-%m-%d %H:%M")
        ),
        clock: Some(Box::new(c.clone())),
        discriminator: c.id.clone(),
    }
}

/// Clocks whose reminder or end has come: what to send, and the new state.
pub fn fire(rec: &mut CaseRecord, ctx: &Ctx) -> Vec<Action> {
    let mut out = Vec::new();
    let mut started = Vec::new();
    for c in rec.clocks.iter_mut().filter(|c| c.is_open()) {
        // A name this version does not know (a record written by a later
        // one) is left alone rather than guessed at.
        let Some(def) = ClockName::parse(&c.name).map(|n| clocks::def(n, ctx.settings)) else { continue };
        if ctx.now >= c.due {
            match def.on_expiry {
                OnExpiry::Overdue => {
                    c.status = "overdue".into();
                    out.push(overdue_alert(c));
                    out.push(count(&c.owner, "overdue"));
                }
                OnExpiry::Lapse => c.status = "lapsed".into(),
                OnExpiry::Escalate => {
                    // Where the dispute stands; a negotiation clock of an
                    // earlier version is step 0 between its owner and the
                    // objector.
                    let at = c.dispute.clone().or_else(|| {
                        (c.name == ClockName::DisputeNegotiation).then(|| {
                            let between = [c.owner.clone(), c.about_sender.clone()];
                            let path = ctx.settings.dispute_path(&between[0], &between[1]);
                            xj_bus::records::DisputeAt { path: path.as_str().into(), step: 0, between }
                        })
                    });
                    let next = at.as_ref().and_then(|d| {
                        let (_, steps) = ctx.settings.dispute_chain(&d.between[0], &d.between[1]);
                        steps.get(d.step + 1).cloned().map(|h| (d.clone(), h))
                    });
                    let Some((d, next)) = next else {
                        // The last step has nobody to go up to: its holder
                        // is late like any other.
                        c.status = "overdue".into();
                        out.push(overdue_alert(c));
                        out.push(count(&c.owner, "overdue"));
                        continue;
                    };
                    c.status = "escalated".into();
                    let mut to = next.orgs.clone();
                    for o in d.between.iter().chain(std::iter::once(&c.owner)) {
                        if !to.contains(o) {
                            to.push(o.clone());
                        }
                    }
                    out.push(Action::Alert {
                        kind: "dispute_escalated",
                        about: (c.about.clone(), c.about_sender.clone()),
                        recipients: to,
                        text: format!(
                            "管辖争议未在期限内解决，提交{}（{}）",
                            next.orgs.join("、"),
                            clocks::def(clocks::dispute_clock(next.holder), ctx.settings).basis
                        ),
                        clock: Some(Box::new(c.clone())),
                        discriminator: c.id.clone(),
                    });
                    started.push((c.about.clone(), c.about_sender.clone(), d));
                }
            }
            continue;
        }
        if c.status == "running" && c.remind_at.is_some_and(|r| ctx.now >= r) {
            c.status = "reminded".into();
            out.push(Action::Alert {
                kind: "reminder",
                about: (c.about.clone(), c.about_sender.clone()),
                recipients: vec![c.owner.clone()],
                text: format!("请于 {} 前完成（{}）", c.due.with_timezone(&china()).format("%Y-%m-%d %H:%M"), c.basis),
                clock: Some(Box::new(c.clone())),
                discriminator: c.id.clone(),
            });
        }
    }
    // The next step's holders now have their own clock to settle it.
    for (about, about_sender, d) in started {
        dispute_step(rec, ctx, (&about, &about_sender), &d.between, d.step + 1, ctx.now);
    }
    out
}

/// When this record next needs the firing loop.
pub fn next_wake(rec: &CaseRecord) -> Option<DateTime<Utc>> {
    rec.clocks
        .iter()
        .filter(|c| c.is_open())
        .map(|c| match (c.status.as_str(), c.remind_at) {
            ("running", Some(r)) if r < c.due => r,
            _ => c.due,
        })
        .min()
}

/// The clock as alerts carry it.
pub fn clock_json(c: &Clock) -> Value {
    json!({ "name": c.name, "due": c.due.to_rfc3339(), "basis": c.basis, "owner": c.owner, "status": c.status })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: &str, msg: &str, sender: &str, detail: serde_json::Value) -> Event {
        event_of(step, msg, sender, "police_decision", detail)
    }

    fn event_of(step: &str, msg: &str, sender: &str, msg_type: &str, detail: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "step": step, "service": "test", "msg_id": msg, "sender": sender, "case": "XJ-1",
            "msg_type": msg_type, "at": Utc::now(), "trace_id": "", "span_id": "", "detail": detail,
        }))
        .expect("a valid event")
    }

    fn sandbox() -> (Settings, Calendar) {
        let settings = xj_config::load_str(include_str!("../../../deploy/sandbox.toml"), "sandbox").expect("sandbox");
        (settings, Calendar::load(None).expect("calendar"))
    }

    /// Monday 2 November 2026, 10:00 in China.
    fn monday() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).single().expect("a time")
    }

    fn named(rec: &CaseRecord, name: ClockName) -> Vec<&Clock> {
        rec.clocks.iter().filter(|c| c.name == name).collect()
    }

    /// A referral: no clock until it is delivered; then the receiver's 5
    /// working days; its reply meets the clock and settles the case's
    /// status. The same event again changes nothing and asks for nothing.
    #[test]
    fn a_referral_clock_runs_from_delivery_to_the_reply() {
        let (settings, cal) = sandbox();
        let ctx = Ctx { settings: &settings, cal: &cal, now: monday() };
        let mut rec = CaseRecord::default();
        let referral = event_of(
            "routed",
            "R-1",
            "qh-market",
            "clue_referral",
            json!({ "recipients": ["qh-town-dg"], "targets": [{ "org": "qh-town-dg", "role": "to" }] }),
        );
        apply(&mut rec, &referral, &ctx);
        assert!(rec.clocks.is_empty(), "no clock before delivery");
        assert_eq!(rec.status, "referred");
        assert_eq!(rec.parties, ["qh-market", "qh-town-dg"]);
        let before = serde_json::to_value(&rec).expect("json");
        assert!(apply(&mut rec, &referral, &ctx).is_empty(), "a repeat asks for nothing");
        assert_eq!(serde_json::to_value(&rec).expect("json"), before, "a repeat changes nothing");

        let delivered = json!({ "recipient": "qh-town-dg" });
        apply(&mut rec, &event_of("delivered", "R-1", "qh-market", "clue_referral", delivered), &ctx);
        let c = named(&rec, ClockName::ReferralDecision);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].owner.as_str(), c[0].status.as_str()), ("qh-town-dg", "running"));
        // Five working days after Monday the 2nd: the end of Monday the 9th.
        assert_eq!(c[0].due, Utc.with_ymd_and_hms(2026, 11, 9, 15, 59, 59).single().expect("a time"));
        assert_eq!(c[0].supervisors, ["qh-justice"]);

        let reply = json!({ "recipients": ["qh-market"], "targets": [{ "org": "qh-market", "role": "to" }],
                            "reply_to": "R-1", "summary": { "decision": "accepted" } });
        let actions = apply(&mut rec, &event_of("routed", "RR-1", "qh-town-dg", "referral_reply", reply), &ctx);
        assert_eq!(named(&rec, ClockName::ReferralDecision)[0].status, "met");
        assert_eq!(rec.status, "accepted");
        assert!(
            actions.iter().any(
                |a| matches!(a, Action::Count { org, field } if org == "qh-town-dg" && *field == "decisions_on_time")
            ),
            "the decision counts as on time"
        );
    }

    /// A hand-off: the police's receipt and filing clocks start on delivery
    /// to them (not to the procuratorate's copy); the receipt and the
    /// decision meet them; a filing starts the sender's 3 days to hand over
    /// the seized items once the decision reaches it.
    #[test]
    fn a_handoff_runs_the_police_clocks_and_then_the_senders() {
        let (settings, cal) = sandbox();
        let ctx = Ctx { settings: &settings, cal: &cal, now: monday() };
        let mut rec = CaseRecord::default();
        let handoff = json!({ "recipients": ["qh-police-econ", "qh-procuratorate"],
                              "targets": [{ "org": "qh-police-econ", "role": "to" }, { "org": "qh-procuratorate", "role": "copy" }] });
        apply(&mut rec, &event_of("routed", "HO-1", "qh-market", "criminal_handoff", handoff), &ctx);
        assert_eq!(rec.status, "handed_off");
        assert!(rec.handed_off);
        for org in ["qh-procuratorate", "qh-police-econ"] {
            apply(
                &mut rec,
                &event_of("delivered", "HO-1", "qh-market", "criminal_handoff", json!({ "recipient": org })),
                &ctx,
            );
        }
        let (receipt, filing) = (named(&rec, ClockName::PoliceReceipt), named(&rec, ClockName::PoliceFiling));
        assert_eq!((receipt.len(), filing.len()), (1, 1), "the copy starts none");
        assert_eq!(receipt[0].due, monday() + chrono::Duration::hours(24));
        // Three days, the day of delivery not counted: the end of Thursday the 5th.
        assert_eq!(filing[0].due, Utc.with_ymd_and_hms(2026, 11, 5, 15, 59, 59).single().expect("a time"));
        assert_eq!(filing[0].supervisors, ["qh-procuratorate"]);

        let to_market = |summary: Value| {
            json!({ "recipients": ["qh-market"], "targets": [{ "org": "qh-market", "role": "to" }],
                    "reply_to": "HO-1", "summary": summary })
        };
        apply(&mut rec, &event_of("routed", "PR-1", "qh-police-econ", "handoff_receipt", to_market(json!({}))), &ctx);
        assert_eq!(named(&rec, ClockName::PoliceReceipt)[0].status, "met");
        assert_eq!(rec.status, "received");
        let filed = to_market(json!({ "decision": "filed" }));
        apply(&mut rec, &event_of("routed", "PD-1", "qh-police-econ", "police_decision", filed), &ctx);
        assert_eq!(named(&rec, ClockName::PoliceFiling)[0].status, "met");
        assert_eq!(rec.status, "filed");
        assert!(named(&rec, ClockName::SeizedHandover).is_empty(), "not before the decision reaches the bureau");
        apply(
            &mut rec,
            &event_of("delivered", "PD-1", "qh-police-econ", "police_decision", json!({ "recipient": "qh-market" })),
            &ctx,
        );
        let seized = named(&rec, ClockName::SeizedHandover);
        assert_eq!(seized.len(), 1);
        assert_eq!(seized[0].owner, "qh-market");
    }

    /// What is major is the rules' to say (`[major_penalty]`): a routing that
    /// filed a penalty decision starts the filing clock, due at the end of
    /// the day the filing names, and the delivery to the justice bureau
    /// meets it. A penalty the rules did not file starts none, however large.
    #[test]
    fn the_filing_clock_follows_the_routing_that_filed() {
        let settings = xj_config::load_str(include_str!("../../../deploy/sandbox.toml"), "sandbox").expect("sandbox");
        let cal = Calendar::load(None).expect("calendar");
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).single().expect("a time");
        let ctx = Ctx { settings: &settings, cal: &cal, now };
        let share = |id: &str, filing: Value| {
            event_of(
                "routed",
                id,
                "qh-market",
                "info_share",
                json!({
                    "recipients": ["qh-justice"], "targets": [{ "org": "qh-justice", "role": "to" }],
                    "summary": { "kind": "penalty_decision", "penalty": { "kind": "fine", "amount": 900000 } },
                    "filing": filing,
                }),
            )
        };
        let mut rec = CaseRecord::default();
        apply(&mut rec, &share("PEN-1", Value::Null), &ctx);
        assert!(rec.clocks.is_empty(), "not filed by the routing: no clock");
        let filing = json!({ "with": ["qh-justice"], "decided_on": "2026-03-01", "due": "2026-03-16" });
        apply(&mut rec, &share("PEN-2", filing), &ctx);
        let c = rec.clocks.iter().find(|c| c.name == ClockName::MajorPenaltyFiling).expect("the filing clock");
        assert_eq!(c.due, end_of_day(NaiveDate::from_ymd_opt(2026, 3, 16).expect("a date")));
        assert_eq!(c.owner, "qh-market");
        assert!(c.basis.contains(&format!("{}日内", settings.major_penalty.file_within_days)), "{}", c.basis);
        let delivered = json!({ "recipient": "qh-justice" });
        apply(&mut rec, &event_of("delivered", "PEN-2", "qh-market", "info_share", delivered), &ctx);
        assert_eq!(rec.clocks.len(), 1);
        assert_eq!(rec.clocks[0].status, "met");
    }

    /// The procuratorate's copy of a refusal may arrive before the bureau's
    /// own: the reconsideration window is the bureau's either way.
    #[test]
    fn a_copy_arriving_first_starts_no_clock_for_its_reader() {
        let settings = xj_config::load_str(include_str!("../../../deploy/sandbox.toml"), "sandbox").expect("sandbox");
        let cal = Calendar::load(None).expect("calendar");
        let ctx = Ctx { settings: &settings, cal: &cal, now: Utc::now() };
        let mut rec = CaseRecord::default();
        let routed = event(
            "routed",
            "PD-1",
            "qh-police-econ",
            json!({
                "recipients": ["qh-market", "qh-procuratorate"],
                "targets": [{ "org": "qh-market", "role": "to" }, { "org": "qh-procuratorate", "role": "copy" }],
                "reply_to": "HO-1",
                "summary": { "decision": "not_filed" },
            }),
        );
        apply(&mut rec, &routed, &ctx);
        for org in ["qh-procuratorate", "qh-market"] {
            apply(&mut rec, &event("delivered", "PD-1", "qh-police-econ", json!({ "recipient": org })), &ctx);
            let owners: Vec<&str> = rec
                .clocks
                .iter()
                .filter(|c| c.name == ClockName::ReconsiderationWindow)
                .map(|c| c.owner.as_str())
                .collect();
            let want: &[&str] = if org == "qh-market" { &["qh-market"] } else { &[] };
            assert_eq!(owners, want, "after the delivery to {org}");
        }
    }
}
