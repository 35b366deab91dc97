//! Accepting one submitted message: the rules of docs/api.md in one place,
//! shared by the HTTP endpoint and NATS intake.
//!
//! "Nothing lost, nothing twice": storing the message is claiming its id.
//! `XJ_ACCEPTED` keeps one message a subject, `xj.accepted.<sender>.<id>`,
//! and refuses a second; the stored message carries what its receipt said
//! (headers), so a repeat is answered from it with the first receipt, and a
//! reuse of the id for other content is refused. There is no moment where
//! the id is claimed and the message not stored.

use async_nats::HeaderMap;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use axum::http::StatusCode;
use chrono::{SecondsFormat, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xj_bus::headers::Put;
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::parties::Role;
use xj_bus::records::{CaseRecord, RouteEntry};
use xj_bus::{TraceParent, headers as h, subjects};
use xj_config::OrgKind;
use xj_model::{Envelope, MessageType, Problem};
use xj_rules::{Knowledge, RuleSet, check_recipients, decide, knowledge};

use crate::error::ApiError;
use crate::hash::content_digest;
use crate::state::GatewayState;

/// The answer to an accepted submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub id: String,
    pub case: String,
    pub trace_id: String,
    pub accepted_at: String,
    /// Present when no rule places the message: it goes to the coordination
    /// office as a jurisdiction question, and the sender is told so here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<Value>,
}

/// What a stored message says of its acceptance (its headers and case).
#[derive(Debug, Clone)]
struct Claim {
    digest: String,
    receipt: Receipt,
    traceparent: String,
    reply_sender: Option<String>,
}

/// Accepts `raw` from `org`: `202` with a new receipt, `200` with the first
/// receipt for an exact repeat, or the error to answer. `signature` is the
/// `Xj-Signature` of an organisation that signs, already checked over
/// `raw`: both are kept as evidence ([`crate::signed`]).
pub async fn accept(
    state: &GatewayState,
    org: &str,
    raw: &[u8],
    traceparent: Option<&str>,
    signature: Option<&str>,
) -> Result<(StatusCode, Receipt), ApiError> {
    let result = accept_inner(state, org, raw, traceparent, signature).await;
    if let Err(e) = &result {
        // Refusals by type and outcome (accepted and repeats are counted where they happen).
        let doc = serde_json::from_slice::<Value>(raw).ok();
        let kind = doc.as_ref().and_then(|d| d.get("type")).and_then(Value::as_str).unwrap_or("unknown");
        let kind = MessageType::parse(kind).map(|k| k.as_str()).unwrap_or("unknown");
        let code = e.body()["error"].as_str().unwrap_or("error").to_string();
        metrics::counter!("xj_messages_total", "type" => kind, "outcome" => code).increment(1);
    }
    result
}

async fn accept_inner(
    state: &GatewayState,
    org: &str,
    raw: &[u8],
    traceparent: Option<&str>,
    signature: Option<&str>,
) -> Result<(StatusCode, Receipt), ApiError> {
    let signed = signature.map(|s| (raw, s));
    let started = std::time::SystemTime::now();
    let mut doc: Value = serde_json::from_slice(raw).map_err(|e| ApiError::syntax(&e))?;
    if !doc.is_object() {
        return Err(ApiError::Syntax {
            message: "body must be a JSON object (the canonical envelope)".into(),
            line: 1,
            column: 1,
        });
    }
    if let Some(sender) = doc.get("sender").and_then(Value::as_str)
        && sender != org
    {
        return Err(ApiError::Forbidden(format!(
            "sender {sender:?} is not the organisation this token belongs to ({org:?})"
        )));
    }
    let rules = state.rules.current();
    let env = match state.schemas.validate(&doc) {
        Ok(v) => v.envelope,
        Err(mut problems) => {
            // Every problem at once (docs/api.md, "Errors"): the configuration checks
            // too, whenever the envelope can be read at all.
            if let Ok(env) = serde_json::from_value::<Envelope>(doc.clone())
                && let Err(ApiError::Invalid(more)) = edge_checks(state, &rules, &env)
            {
                for p in more {
                    if !problems.iter().any(|q| q.pointer == p.pointer) {
                        problems.push(p);
                    }
                }
            }
            return Err(ApiError::Invalid(problems));
        }
    };
    edge_checks(state, &rules, &env)?;
    let attachments = crate::attachments::check_references(state, &env).await?;

    let digest = content_digest(&doc);
    // No lookup first: the publish below is refused for an id already
    // stored, and a repeat is answered from there. One round trip less for
    // every new message, a little wasted work for a repeat.
    let (case, reply_sender) = match thread_of(state, org, &env).await {
        Ok(t) => t,
        // A repeat (or a reuse of its id) is answered as such, whatever
        // has happened to its thread since.
        Err(e) => match existing_claim(state, org, &env.id).await? {
            Some(claim) => return repeat(state, &env, claim, &digest, &attachments).await,
            None => return Err(e),
        },
    };
    // A repeat of a designation finds the dispute it settled closed: it is
    // answered as the repeat it is.
    if env.kind == MessageType::JurisdictionDesignation
        && let Err(e) = holds_the_dispute(state, &case, &env.sender).await
    {
        return match existing_claim(state, org, &env.id).await? {
            Some(claim) => repeat(state, &env, claim, &digest, &attachments).await,
            None => Err(e),
        };
    }
    let routing = preview(state, &rules, &env, reply_sender.clone()).await;
    // A departmental system's own trace is continued; otherwise one starts here.
    let received = traceparent.and_then(TraceParent::parse);
    let trace = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let receipt = Receipt {
        id: env.id.clone(),
        case,
        trace_id: trace.trace_id_hex(),
        accepted_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        routing,
    };
    let claim = Claim { digest: digest.clone(), receipt, traceparent: trace.header(), reply_sender };
    let mut hop = Hop::start("gateway", "accept", received, trace).since(started).kind(SpanKind::Server);
    hop.attr("xj.message_id", env.id.clone())
        .attr("xj.case", claim.receipt.case.clone())
        .attr("xj.type", env.kind.as_str())
        .attr("xj.sender", env.sender.clone())
        .attr_opt("xj.reply_to", env.reply_to.clone());
    match publish(state, &mut doc, &env, &claim, signed).await {
        Ok(Stored::New) => {}
        Ok(Stored::Before) => {
            // A repeat, or another request with the same id won the race.
            hop.attr("xj.repeat", true);
            hop.finish();
            let claim = claim_from_leader(state, org, &env.id).await?;
            return repeat(state, &env, claim, &digest, &attachments).await;
        }
        Err(e) => {
            hop.fail(e.to_string());
            return Err(e);
        }
    }
    crate::attachments::record_references(state, &env.sender, &env.id, &attachments).await?;
    hop.finish();
    metrics::counter!("xj_messages_accepted_total", "type" => env.kind.as_str()).increment(1);
    metrics::counter!("xj_messages_total", "type" => env.kind.as_str(), "outcome" => "accepted").increment(1);
    Ok((StatusCode::ACCEPTED, claim.receipt))
}

/// What the stored message of `org`'s `id` says of its acceptance, if the
/// id was accepted.
async fn existing_claim(state: &GatewayState, org: &str, id: &str) -> Result<Option<Claim>, ApiError> {
    let stream = state.bus.js.get_stream_no_info(subjects::STREAM_ACCEPTED).await.map_err(unavailable)?;
    match stream.get_last_raw_message_by_subject(&subjects::accepted(org, id)).await {
        Ok(m) => claim_of(&m).map(Some),
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// The stored message that made a publish fail, read from the stream's
/// leader (a message get is answered by the leader, never by a replica
/// still catching up), a few times while a cluster re-elects one.
async fn claim_from_leader(state: &GatewayState, org: &str, id: &str) -> Result<Claim, ApiError> {
    let mut last = String::new();
    for pause in [0u64, 50, 200, 500] {
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        match existing_claim(state, org, id).await {
            Ok(Some(c)) => return Ok(c),
            Ok(None) => last = "not found".into(),
            Err(e) => last = e.to_string(),
        }
    }
    Err(ApiError::unavailable(format!("message {org}/{id} is stored but cannot be read: {last}")))
}

/// The receipt a stored message was accepted with.
fn claim_of(m: &async_nats::jetstream::message::StreamMessage) -> Result<Claim, ApiError> {
    let hd = Some(&m.headers);
    let doc: Value = serde_json::from_slice(&m.payload).map_err(|e| ApiError::Internal(e.to_string()))?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let traceparent = h::get(hd, h::TRACEPARENT).unwrap_or_default().to_string();
    let trace_id = TraceParent::parse(&traceparent).map(|t| t.trace_id_hex()).unwrap_or_default();
    Ok(Claim {
        digest: h::get(hd, h::CONTENT_DIGEST).unwrap_or_default().to_string(),
        receipt: Receipt {
            id: text("id"),
            case: text("case"),
            trace_id,
            accepted_at: h::get(hd, h::ACCEPTED_AT).unwrap_or_default().to_string(),
            routing: h::get(hd, h::ROUTING).and_then(|r| serde_json::from_str(r).ok()),
        },
        traceparent,
        reply_sender: h::get(hd, h::REPLY_SENDER).map(str::to_owned),
    })
}

/// A second submission of an id: the first receipt for the same content
/// (`200`), a conflict for other content. Nothing is stored again.
async fn repeat(
    state: &GatewayState,
    env: &Envelope,
    claim: Claim,
    digest: &str,
    attachments: &[String],
) -> Result<(StatusCode, Receipt), ApiError> {
    if claim.digest != digest {
        return Err(ApiError::Conflict(format!(
            "message id {:?} was already used for a different message (accepted at {}); use a new id",
            env.id, claim.receipt.accepted_at
        )));
    }
    crate::attachments::record_references(state, &env.sender, &env.id, attachments).await?;
    metrics::counter!("xj_messages_total", "type" => env.kind.as_str(), "outcome" => "repeat").increment(1);
    Ok((StatusCode::OK, claim.receipt))
}

/// Checks that need the configuration: recipients exist, are not the sender
/// and can receive this type; a message that is neither a referral nor a
/// reply names its recipient; only supervisors designate; a receiver does
/// not pass a referral on.
fn edge_checks(state: &GatewayState, rules: &RuleSet, env: &Envelope) -> Result<(), ApiError> {
    let mut problems = check_recipients(rules, env);
    let needs_recipient = !env.kind.is_referral() && env.kind != MessageType::InfoShare;
    if needs_recipient && env.recipient.is_none() && env.reply_to.is_none() {
        problems.push(Problem::new(
            "/recipient",
            format!("a {} needs a recipient or a reply_to; only referrals are placed by the router", env.kind),
        ));
    }
    if env.kind == MessageType::SupervisionAlert {
        problems.push(Problem::new("/type", "supervision alerts are written by the hub itself"));
    }
    if env.kind == MessageType::ComplaintUpdate {
        problems.push(Problem::new("/type", "complaint updates are written by the hub itself"));
    }
    if env.kind == MessageType::MonthlyReport {
        problems.extend(monthly_report_checks(state, env));
    }
    if env.kind == MessageType::AssistanceRequest
        && let Some(p) = enforcement_window(state, env)
    {
        problems.push(p);
    }
    if env.kind.is_referral() && env.reply_to.is_some() {
        problems.push(Problem::new(
            "/reply_to",
            "a receiver may not pass a referral on by itself: answer with a referral_reply whose decision is \"objected\"",
        ));
    }
    if env.kind == MessageType::JurisdictionDesignation {
        let kind = state.settings.org(&env.sender).map(|o| o.kind);
        if !matches!(kind, Some(OrgKind::CoordinationOffice | OrgKind::JusticeBureau | OrgKind::LeadershipGroup)) {
            problems.push(Problem::new(
                "/type",
                "only the coordination office, the justice bureau or the leadership group designates jurisdiction",
            ));
        }
        if let Some(d) = env.body.get("designated").and_then(Value::as_str)
            && state.settings.org(d).is_none_or(|o| !o.kind.is_enforcement())
        {
            problems.push(Problem::new(
                "/body/designated",
                format!("{d:?} is not an enforcement organisation of this hub"),
            ));
        }
    }
    if env.kind == MessageType::SupervisionNotice
        && let Some(kind) = env.body.get("kind").and_then(Value::as_str)
    {
        // 立案监督 and 检察建议/意见 are the procuratorate's; 督办 and
        // 监督建议 the justice bureau's (docs/domain.md, "Supervision").
        let procuratorial = matches!(
            kind,
            "explain_not_filing" | "notify_filing" | "procuratorial_recommendation" | "procuratorial_opinion"
        );
        let needed = if procuratorial { OrgKind::Procuratorate } else { OrgKind::JusticeBureau };
        if state.settings.org(&env.sender).is_none_or(|o| o.kind != needed) {
            let who = if procuratorial { "a procuratorate" } else { "a justice bureau" };
            problems.push(Problem::new("/body/kind", format!("a {kind} notice is sent by {who}")));
        }
    }
    if env.kind == MessageType::SupervisionReply && env.reply_to.is_none() {
        problems
            .push(Problem::new("/reply_to", "a supervision_reply answers the supervision_notice it names in reply_to"));
    }
    if env.kind == MessageType::PoliceDecision
        && let Some(t) = env.body.get("transferred_to").and_then(Value::as_str)
        && state.settings.org(t).is_none()
    {
        problems.push(Problem::new("/body/transferred_to", format!("no organisation {t:?} is connected to this hub")));
    }
    if problems.is_empty() { Ok(()) } else { Err(ApiError::Invalid(problems)) }
}

/// The county's time zone: months and days are China's.
fn china() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// A monthly report comes from an enforcement organisation, about a month
/// that has begun, with every figure the county asks for.
fn monthly_report_checks(state: &GatewayState, env: &Envelope) -> Vec<Problem> {
    let mut out = Vec::new();
    if state.settings.org(&env.sender).is_none_or(|o| !o.kind.is_enforcement()) {
        out.push(Problem::new("/sender", "monthly reports are sent by enforcement organisations"));
    }
    // Its own county's justice bureau: the report is kept on that county's case.
    let county = state.settings.org(&env.sender).map(|o| &o.region[..6]);
    for r in env.recipients() {
        if let (Some(c), Some(o)) = (county, state.settings.org(&r))
            && o.kind == OrgKind::JusticeBureau
            && !o.region.starts_with(c)
        {
            out.push(Problem::new(
                "/recipient",
                format!("{r} is another county's justice bureau: report to your own ({c})"),
            ));
        }
    }
    let this_month = state.clock.now().with_timezone(&china()).format("%Y-%m").to_string();
    if let Some(month) = env.body.get("month").and_then(Value::as_str)
        && month > this_month.as_str()
    {
        out.push(Problem::new("/body/month", format!("{month} has not begun (it is {this_month})")));
    }
    let figures = env.body.get("figures").and_then(Value::as_object);
    for name in &state.settings.report.indicators {
        if figures.is_some_and(|f| !f.contains_key(name)) {
            out.push(Problem::new(
                format!("/body/figures/{name}"),
                format!("the county's report asks for {name} ([report] indicators)"),
            ));
        }
    }
    out
}

/// 行政强制法 art. 53: an organisation without power of its own to enforce
/// may apply to the court within three months of the day the party's
/// periods (to pay, to seek reconsideration, to sue) ran out.
fn enforcement_window(state: &GatewayState, env: &Envelope) -> Option<Problem> {
    if env.body.get("due_basis").and_then(Value::as_str) != Some("enforcement") {
        return None;
    }
    let passed = env.body.pointer("/enforcement/deadline_passed_on").and_then(Value::as_str)?;
    let passed = chrono::NaiveDate::parse_from_str(passed, "%Y-%m-%d").ok()?;
    let last = passed.checked_add_months(chrono::Months::new(3))?;
    let today = state.clock.now().with_timezone(&china()).date_naive();
    (today > last).then(|| {
        Problem::new(
            "/body/enforcement/deadline_passed_on",
            format!(
                "the three months to apply for compulsory enforcement ended on {last} (行政强制法第五十三条: within three months of {passed})"
            ),
        )
    })
}

/// A designation comes from whoever holds the dispute's current step; while
/// the two parties still negotiate, from the first step above them (they
/// report a failed negotiation early). The step is the tracker's record:
/// steps change days apart, by the clock, so its lag does not matter here.
async fn holds_the_dispute(state: &GatewayState, case: &str, sender: &str) -> Result<(), ApiError> {
    let record: Option<CaseRecord> = match state.bus.cases.get(case).await.map_err(unavailable)? {
        Some(b) => Some(serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?),
        None => None,
    };
    let mut holders: Vec<String> = Vec::new();
    let mut steps_seen = Vec::new();
    for c in record.iter().flat_map(|r| r.clocks.iter()).filter(|c| c.is_open()) {
        let Some(d) = &c.dispute else { continue };
        let (_, steps) = state.settings.dispute_chain(&d.between[0], &d.between[1]);
        let Some(here) = steps.get(d.step) else { continue };
        steps_seen.push(here.holder.as_str());
        let held =
            if here.holder == xj_config::DisputeHolder::Negotiation { steps.get(d.step + 1) } else { Some(here) };
        holders.extend(held.into_iter().flat_map(|h| h.orgs.iter().cloned()));
    }
    if holders.iter().any(|h| h == sender) {
        return Ok(());
    }
    let problem = if steps_seen.is_empty() {
        format!("no jurisdiction dispute is open on case {case:?}: a referral_reply that objects opens one")
    } else {
        format!(
            "the dispute on case {case:?} is at the {} step; only {} may designate now",
            steps_seen.join("/"),
            holders.join(", ")
        )
    };
    Err(ApiError::Invalid(vec![Problem::new("/sender", problem)]))
}

/// What the router will do with a message no rule places, for the receipt.
async fn preview(state: &GatewayState, rules: &RuleSet, env: &Envelope, reply_sender: Option<String>) -> Option<Value> {
    if !env.kind.is_referral() || env.recipient.is_some() {
        return None;
    }
    // What the hub knows (an earlier case holder, penalties) can only turn a
    // question into a placement, never the other way round: most referrals
    // are answered without reading the buckets.
    let blind = Knowledge { reply_sender: reply_sender.clone(), ..Default::default() };
    if !decide(rules, env, &blind).question {
        return None;
    }
    let k = match knowledge::gather(rules, &state.bus, env, reply_sender).await {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(error = %e, "routing preview without the hub's knowledge");
            Knowledge::default()
        }
    };
    let d = decide(rules, env, &k);
    d.question.then(|| {
        serde_json::json!({
            "status": "jurisdiction_question",
            "to": d.recipients(),
            "rule": d.rule,
            "rule_version": d.version,
            "reasons": d.reasons,
        })
    })
}

/// Finds the case a message belongs to: the thread of the message it
/// answers, a case it names (the sender must be a party), or a new case.
async fn thread_of(state: &GatewayState, org: &str, env: &Envelope) -> Result<(String, Option<String>), ApiError> {
    if let Some(reply_to) = &env.reply_to {
        let key = subjects::key(org, reply_to);
        let entries: Vec<RouteEntry> = match state.bus.routes.get(&key).await.map_err(unavailable)? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| ApiError::Internal(e.to_string()))?,
            None => Vec::new(),
        };
        let matching: Vec<&RouteEntry> =
            entries.iter().filter(|e| env.case.as_ref().is_none_or(|c| c == &e.case)).collect();
        return match matching.as_slice() {
            [one] => Ok((one.case.clone(), Some(one.sender.clone()))),
            [] if entries.is_empty() => Err(ApiError::Invalid(vec![Problem::new(
                "/reply_to",
                format!("no message with id {reply_to:?} was delivered to {org}"),
            )])),
            [] => Err(ApiError::Invalid(vec![Problem::new(
                "/case",
                format!("message {reply_to:?} you received belongs to another case"),
            )])),
            _ => Err(ApiError::Invalid(vec![Problem::new(
                "/case",
                format!("several messages with id {reply_to:?} reached you; name the case to say which one you answer"),
            )])),
        };
    }
    // A county's monthly reports share one case per month, whatever the
    // report names: the tracker keeps their clocks there.
    if env.kind == MessageType::MonthlyReport
        && let (Some(month), Some(o)) = (env.body.get("month").and_then(Value::as_str), state.settings.org(org))
    {
        return Ok((xj_bus::records::monthly_case(&o.region[..6], month), None));
    }
    if let Some(case) = &env.case {
        // What the gateway and router recorded before anything left
        // (xj_bus::parties) answers at once, however far behind the tracker
        // is; cases from before those records existed fall back to the
        // tracker's record.
        let here = xj_bus::parties::standing(&state.bus.parties, case, org).await.map_err(unavailable)?;
        if env.kind.is_referral() && here.referred {
            return Err(ApiError::Invalid(vec![Problem::new(
                "/case",
                "a receiver may not pass a referral on by itself: answer with a referral_reply whose decision is \"objected\"",
            )]));
        }
        let may = here.party || (supervisor(state, org) && here.open);
        // A referral on a case is also checked against the record: a
        // case begun before these records existed has no `referred` mark.
        if may && !env.kind.is_referral() {
            return Ok((case.clone(), None));
        }
        let record: Option<CaseRecord> = match state.bus.cases.get(case).await.map_err(unavailable)? {
            Some(b) => serde_json::from_slice(&b).ok(),
            None => None,
        };
        return match record {
            Some(r) if env.kind.is_referral() && received_referral(&r, org) => {
                Err(ApiError::Invalid(vec![Problem::new(
                    "/case",
                    "a receiver may not pass a referral on by itself: answer with a referral_reply whose decision is \"objected\"",
                )]))
            }
            Some(r) if r.is_party(org) => Ok((case.clone(), None)),
            // Supervisors step into any case (指定管辖, 协调): they are not
            // parties until they act.
            Some(_) if supervisor(state, org) => Ok((case.clone(), None)),
            // The tracker has not folded the case in yet.
            _ if may => Ok((case.clone(), None)),
            _ => {
                Err(ApiError::Invalid(vec![Problem::new("/case", format!("no case {case:?} that {org} is party to"))]))
            }
        };
    }
    Ok((new_case_id(), None))
}

fn supervisor(state: &GatewayState, org: &str) -> bool {
    state.settings.org(org).is_some_and(|o| {
        matches!(o.kind, OrgKind::CoordinationOffice | OrgKind::JusticeBureau | OrgKind::LeadershipGroup)
    })
}

fn received_referral(r: &CaseRecord, org: &str) -> bool {
    r.messages.iter().any(|m| {
        matches!(m.msg_type.as_str(), "clue_referral" | "case_referral") && m.recipients.iter().any(|x| x == org)
    })
}

/// `XJ-<yyyymmdd>-<10 hex>`: readable on the phone, unique without
/// coordination between gateway instances.
fn new_case_id() -> String {
    let mut r = [0u8; 5];
    rand::thread_rng().fill_bytes(&mut r);
    format!("XJ-{}-{}", Utc::now().format("%Y%m%d"), hex::encode_upper(r))
}

/// Whether [`publish`] stored the message or found its id stored before.
#[derive(PartialEq)]
enum Stored {
    New,
    Before,
}

/// Stores `doc` with the hub's case written into it (the digest and the
/// checks are done: the document is not read again).
async fn publish(
    state: &GatewayState,
    doc: &mut Value,
    env: &Envelope,
    claim: &Claim,
    signed: Option<(&[u8], &str)>,
) -> Result<Stored, ApiError> {
    // The organisation's signed bytes are kept before the message is
    // accepted: the ledger's record of it names them.
    let kept = match signed {
        Some((raw, sig)) => Some((crate::signed::keep(state, raw).await?, sig)),
        None => None,
    };
    doc["case"] = Value::String(claim.receipt.case.clone());
    let payload = serde_json::to_vec(doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut hdr = HeaderMap::new();
    hdr.put(h::TRACEPARENT, claim.traceparent.as_str());
    hdr.put(h::ACCEPTED_AT, claim.receipt.accepted_at.as_str());
    hdr.put(h::CONTENT_DIGEST, claim.digest.as_str());
    if let Some(r) = &claim.receipt.routing {
        hdr.put(h::ROUTING, r.to_string().as_str());
    }
    if let Some(rs) = &claim.reply_sender {
        hdr.put(h::REPLY_SENDER, rs.as_str());
    }
    if let Some((sha256, sig)) = kept {
        hdr.put(h::SUBMITTED_SHA256, sha256.as_str());
        hdr.put(h::SUBMITTED_SIGNATURE, sig);
    }
    let js = &state.bus.js;
    // The case exists, and its sender is party to it, before the 202: a GET
    // of the case or the sender's next message on it must not depend on
    // how far behind the tracker is (xj_bus::parties). Written beside the
    // message: a refused repeat leaves at most a mark that is true anyway
    // (its sender sent on that case), and the case opened for it is taken
    // back.
    let case = claim.receipt.case.as_str();
    let parties = &state.bus.parties;
    // Only a message that names no case and answers none opens one; the
    // case's key names its opener as party.
    let opens = env.case.is_none() && env.reply_to.is_none();
    let (main, known) = tokio::join!(
        xj_bus::streams::store_once(js, subjects::accepted(&env.sender, &env.id), hdr, payload.into()),
        async {
            if opens {
                xj_bus::parties::open(parties, case, &env.sender).await
            } else {
                xj_bus::parties::mark(parties, case, Role::Sent, &env.sender).await.map(|()| false)
            }
        },
    );
    let stored = if main.map_err(unavailable)? { Stored::New } else { Stored::Before };
    let opened = known.map_err(unavailable)?;
    if opened && stored == Stored::Before {
        // A failure here leaves only the unused key: the answer stands.
        if let Err(e) = xj_bus::parties::unopen(parties, case).await {
            tracing::warn!(error = %e, case, "could not take back the case opened for a repeat");
        }
    }
    Ok(stored)
}

fn unavailable(e: impl std::fmt::Display) -> ApiError {
    let text = e.to_string();
    if text.contains("maximum messages")
        || text.contains("maximum bytes")
        || text.contains("resource limits")
        || text.contains("insufficient resources")
    {
        tracing::warn!(error = %text, "store full: refusing new messages");
        metrics::counter!("xj_store_full_refusals_total").increment(1);
        ApiError::Unavailable("the hub's store is full; nothing was accepted, retry later".into())
    } else {
        tracing::warn!(error = %text, "bus operation failed");
        ApiError::Unavailable("the message bus is unavailable; nothing was accepted, retry later".into())
    }
}
