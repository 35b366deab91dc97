//! The router's consumer loop: durable, explicit acks, bounded concurrency.

use std::sync::Arc;
use std::time::Duration;
use xj_bus::headers::Put;

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use serde_json::json;
use tracing::Instrument;
use xj_bus::consume::{self, Durable};
use xj_bus::records::{CaseRecord, RouteEntry};
use xj_bus::{Bus, Shutdown, TraceParent, events, headers as h, parties, subjects};
use xj_config::{OrgKind, Settings};
use xj_model::{Envelope, MessageType};
use xj_rules::knowledge::{self, designate_holder, record_holder, record_penalty};
use xj_rules::{Decision, Holder, Reroute, RuleSet, RulesHandle, Target, decide, party_key};

use xj_bus::alerts::{Alert, raise};
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::records::remember_route as remember;

const CONSUMER: &str = "router";

/// Runs until `shutdown`; messages in flight are finished and acked first.
pub async fn run(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    let ack_wait = Duration::from_millis(settings.nats.ack_wait_ms);
    let rules = RulesHandle::new(RuleSet::compile(settings)?);
    rules.spawn_watcher(bus.client.clone(), shutdown.clone(), "router");
    let messages = Durable::new(subjects::STREAM_ACCEPTED, CONSUMER)
        .ack_wait(ack_wait)
        .max_ack_pending(4096)
        .messages(&bus.js)
        .await?;
    tracing::info!(version = %rules.current().version, "router running");
    consume::run(messages, 128, shutdown, "router", |m| {
        let (rules, bus) = (rules.clone(), bus.clone());
        async move { handle(&rules, &bus, m).await }
    })
    .await;
    tracing::info!("router stopped");
    Ok(())
}

async fn handle(rules: &RulesHandle, bus: &Bus, m: Message) {
    let env: Envelope = match serde_json::from_slice(&m.payload) {
        Ok(e) => e,
        Err(e) => {
            // Only the gateway writes here, after validation: this is a bug,
            // and retrying cannot fix it. Keep it visible, stop redelivery.
            tracing::error!(error = %e, subject = %m.subject, "undecodable accepted message");
            let _ = m.ack_with(AckKind::Term).await;
            return;
        }
    };
    let case = env.case.clone().unwrap_or_default();
    let span = tracing::info_span!("route", msg_id = %env.id, case = %case, sender = %env.sender);
    async {
        // One version decides the whole message.
        let rs = rules.current();
        match route(&rs, bus, &m, &env, &case).await {
            Ok(()) => {
                // A plain ack, not a confirmed one: an ack that is lost only
                // routes the message again, which changes nothing (the event,
                // the copies and the route carry deduplication ids).
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, "ack failed; the message will be routed again (idempotent)");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "routing failed; will retry");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
    .instrument(span)
    .await
}

/// How many times a designation or transfer is tried again (a second
/// apart) while the case record does not show the message to send on.
const RECORD_WAITS: u64 = 30;

fn route_entry(env: &Envelope, case: &str, seq: Option<u64>) -> RouteEntry {
    RouteEntry {
        sender: env.sender.clone(),
        case: case.to_string(),
        msg_type: env.kind.as_str().into(),
        matter: env.matter().map(str::to_owned),
        party: env.body.get("party").and_then(party_key),
        seq,
    }
}

async fn route(rs: &RuleSet, bus: &Bus, m: &Message, env: &Envelope, case: &str) -> anyhow::Result<()> {
    let hd = m.headers.as_ref();
    let received = TraceParent::received(hd);
    let trace = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("router", "route", received, trace).kind(SpanKind::Consumer);
    hop.attr("xj.message_id", env.id.clone())
        .attr("xj.case", case.to_string())
        .attr("xj.type", env.kind.as_str())
        .attr("xj.sender", env.sender.clone());
    let info = m.info().ok();
    let seq = info.as_ref().map(|i| i.stream_sequence);
    let attempt = info.as_ref().map_or(1, |i| i.delivered as u64);
    let reply_sender = h::get(hd, h::REPLY_SENDER).map(str::to_owned);
    let k = knowledge::gather(rs, bus, env, reply_sender).await?;
    let decision = decide(rs, env, &k);
    let decided_at = Utc::now();
    // A designation or a transfer (移送主管机关, Decree 310 art. 7): the
    // rules said which original goes on to whom.
    if let Some(r) = &decision.reroute {
        reroute(rs, bus, env, case, &trace, r, attempt).await?;
    }
    metrics::counter!("xj_routing_decisions_total", "rule" => rule_family(&decision.rule)).increment(1);
    if decision.targets.is_empty() && !matches!(env.kind, MessageType::InfoShare) {
        // No coordination office is configured at all (config validation
        // forbids this); keep the message rather than drop it.
        anyhow::bail!("no recipient and no coordination office for {}", env.id);
    }
    let routed = events::Routed {
        recipients: decision.recipients(),
        targets: decision
            .targets
            .iter()
            .map(|t| events::Target { org: t.org.clone(), role: events::Role::parse(t.role) })
            .collect(),
        rule: decision.rule.clone(),
        rule_version: decision.version.clone(),
        reasons: decision.reasons.clone(),
        consulted: decision.consulted.iter().filter_map(|c| serde_json::to_value(c).ok()).collect(),
        crime: decision.crime.as_ref().and_then(|c| serde_json::to_value(c).ok()),
        rule_errors: decision.rule_errors.clone(),
        major_penalty_filed: Some(decision.filing.is_some()),
        filing: decision.filing.clone(),
        reply_to: env.reply_to.clone(),
        seq,
        summary: summary(env),
        ..Default::default()
    };
    let ev = events::Event {
        step: if decision.question { events::Step::Unplaced(routed) } else { events::Step::Routed(routed) },
        service: "router".into(),
        msg_id: env.id.clone(),
        sender: env.sender.clone(),
        case: Some(case.to_string()),
        msg_type: Some(env.kind),
        at: decided_at,
        trace_id: trace.trace_id_hex(),
        span_id: trace.span_id_hex(),
    };
    // The decision is recorded before any copy leaves, so every delivery
    // event comes after it in the stream.
    // The routes (which a reply is threaded by) and the recipients' part in
    // the case (which the gateway checks a message naming the case against)
    // are stored before any copy leaves too; the writes do not depend on
    // each other.
    let dedup = format!("evt:routed:{}:{}", env.sender, env.id);
    let routes = futures::future::try_join_all(decision.targets.iter().map(|t| async {
        let key = subjects::key(&t.org, &env.id);
        tokio::try_join!(
            remember(&bus.routes, &key, route_entry(env, case, seq)),
            mark_recipient(bus, env, case, &t.org)
        )
    }));
    let (recorded, remembered) = tokio::join!(events::publish_once(&bus.js, &ev, &dedup), routes);
    recorded?;
    remembered?;
    let accepted_at = h::get(hd, h::ACCEPTED_AT);
    for t in &decision.targets {
        publish_copy(bus, &m.payload, env, case, &t.org, &decision, &trace, (accepted_at, seq), None).await?;
    }
    side_effects(rs, bus, env, case, &decision, &trace).await?;
    hop.attr("xj.rule", decision.rule.clone())
        .attr("xj.rule_version", decision.version.clone())
        .attr("xj.recipient", decision.recipients().join(","))
        .attr("xj.unplaced", decision.question);
    if let Some(c) = &decision.crime {
        hop.attr("xj.crime_rule", c.rule.clone());
    }
    hop.finish();
    tracing::info!(rule = %decision.rule, version = %decision.version, recipients = ?decision.recipients(), "routed");
    Ok(())
}

/// Records `org` as party to `case` (xj_bus::parties): it received a
/// message, or, for a clue or case referral, a referral it may not pass on
/// by itself (police who got a hand-off may still hand a case back, art.
/// 13) — which makes it party as well, so one key says both.
async fn mark_recipient(bus: &Bus, env: &Envelope, case: &str, org: &str) -> anyhow::Result<()> {
    let role = if matches!(env.kind, MessageType::ClueReferral | MessageType::CaseReferral) {
        parties::Role::Referred
    } else {
        parties::Role::Received
    };
    parties::mark(&bus.parties, case, role, org).await
}

/// What `xj_routes` holds for message `msg_id` routed to `org` (empty when
/// nothing was).
async fn route_record(bus: &Bus, org: &str, msg_id: &str) -> anyhow::Result<Vec<RouteEntry>> {
    let bytes = bus.routes.get(subjects::key(org, msg_id)).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
}

#[allow(clippy::too_many_arguments)]
async fn publish_copy(
    bus: &Bus,
    payload: &bytes::Bytes,
    env: &Envelope,
    case: &str,
    org: &str,
    decision: &Decision,
    trace: &TraceParent,
    (accepted_at, accepted_seq): (Option<&str>, Option<u64>),
    suffix: Option<&str>,
) -> anyhow::Result<()> {
    let mut out = HeaderMap::new();
    let dedup = format!("{}:{}:{org}{}", env.sender, env.id, suffix.map(|s| format!(":{s}")).unwrap_or_default());
    out.put(h::NATS_MSG_ID, dedup.as_str());
    out.put(h::TRACEPARENT, trace.header().as_str());
    out.put(h::MESSAGE_ID, env.id.as_str());
    out.put(h::SENDER, env.sender.as_str());
    out.put(h::CASE, case);
    out.put(h::RECIPIENT, org);
    out.put(h::RULE, decision.rule.as_str());
    out.put(h::RULE_VERSION, decision.version.as_str());
    if let Some(at) = accepted_at {
        out.put(h::ACCEPTED_AT, at);
    }
    if let Some(seq) = accepted_seq {
        out.put(h::ACCEPTED_SEQ, seq.to_string().as_str());
    }
    bus.js.publish_with_headers(subjects::routed(org), out, payload.clone()).await?.await?;
    Ok(())
}

/// What follows from a decision beyond delivering the message itself.
async fn side_effects(
    rs: &RuleSet,
    bus: &Bus,
    env: &Envelope,
    case: &str,
    d: &Decision,
    trace: &TraceParent,
) -> anyhow::Result<()> {
    let version = d.version.clone();
    if d.question {
        let mut to = d.recipients();
        to.push(env.sender.clone());
        raise(
            bus,
            Alert {
                kind: "jurisdiction_question",
                about: (&env.id, &env.sender),
                at: Utc::now(),
                discriminator: String::new(),
                case,
                recipients: to,
                text: format!("无法确定管辖：{}", d.reasons.join("；")),
                rule: Some((d.rule.clone(), version.clone())),
                reasons: d.reasons.clone(),
                extra: json!({}),
            },
            trace,
        )
        .await?;
    }
    if let Some(crime) = &d.crime {
        let mut to = vec![env.sender.clone()];
        to.extend(d.recipients());
        to.extend(procuratorates(&rs.settings, env));
        raise(
            bus,
            Alert {
                kind: "crime_suspected",
                about: (&env.id, &env.sender),
                at: Utc::now(),
                discriminator: String::new(),
                case,
                recipients: to,
                text: format!("涉嫌{}：事实达到刑事立案追诉标准，应依法移送公安机关（不得以罚代刑）", crime.offence),
                rule: Some((crime.rule.clone(), version.clone())),
                reasons: vec![format!("{} — {}", crime.condition, crime.source.clone().unwrap_or_default())],
                extra: json!({ "offence": crime.offence, "police_unit": crime.police_unit, "facts": crime.facts,
                               "prior_penalties": crime.prior_penalties, "source": crime.source, "effective": crime.effective }),
            },
            trace,
        )
        .await?;
    }
    if d.crime.is_some() {
        knowledge::record_crime_met(bus, env, case).await?;
    }
    if env.kind == MessageType::CriminalHandoff {
        knowledge::record_handoff(bus, env, case).await?;
    }
    if env.kind == MessageType::InfoShare && env.body.get("kind").and_then(|v| v.as_str()) == Some("penalty_decision") {
        record_penalty(bus, env).await?;
        // 以罚代刑 by party and matter, whatever case either message names
        // (a bureau's penalty system does not know the hub's case ids).
        if let Some(earlier) = knowledge::penalty_instead_of_transfer(bus, env).await? {
            let county = rs.settings.org(&env.sender).map(|o| o.region[..6].to_string()).unwrap_or_default();
            let to: Vec<String> = rs
                .settings
                .org
                .iter()
                .filter(|o| {
                    matches!(o.kind, OrgKind::Procuratorate | OrgKind::JusticeBureau) && o.region[..6] == *county
                })
                .map(|o| o.id.clone())
                .collect();
            raise(
                bus,
                Alert {
                    kind: "penalty_instead_of_transfer",
                    about: (&env.id, &env.sender),
                    at: Utc::now(),
                    discriminator: String::new(),
                    case,
                    recipients: to,
                    text: format!(
                        "当事人同一事项的案件事实已达刑事立案追诉标准（{} 的 {}，{}），未移送公安机关即作出行政处罚（以罚代刑：行政处罚法第八条第二款、第二十七条、第八十二条；《行政执法机关移送涉嫌犯罪案件的规定》第十一条）",
                        earlier.sender, earlier.msg_id, earlier.on
                    ),
                    rule: Some(("penalty-instead-of-transfer:party".into(), version.clone())),
                    reasons: vec![format!(
                        "{} met a criminal threshold on {} for this party and matter (case {}); no hand-off since",
                        earlier.msg_id, earlier.on, earlier.case
                    )],
                    extra: json!({ "earlier": earlier }),
                },
                trace,
            )
            .await?;
        }
    }
    // 予以立案: the receiver opened a case on the referral's party and matter.
    if env.kind == MessageType::ReferralReply
        && env.body.get("decision").and_then(|v| v.as_str()) == Some("accepted")
        && let Some(reply_to) = &env.reply_to
    {
        let entries = route_record(bus, &env.sender, reply_to).await?;
        if let Some(e) = entries.iter().find(|e| e.case == case)
            && let (Some(party), Some(matter)) = (&e.party, &e.matter)
        {
            let holder = Holder { org: env.sender.clone(), case: case.into(), since: Utc::now().to_rfc3339() };
            record_holder(bus, party, matter, holder).await?;
        }
    }
    Ok(())
}

fn procuratorates(s: &Settings, env: &Envelope) -> Vec<String> {
    let region = env.body.pointer("/location/region").or_else(|| env.body.get("region")).and_then(|v| v.as_str());
    let county = region
        .filter(|r| r.len() >= 6)
        .map(|r| r[..6].to_string())
        .or_else(|| s.org(&env.sender).map(|o| o.region[..6].to_string()))
        .unwrap_or_default();
    s.org
        .iter()
        .filter(|o| o.kind == OrgKind::Procuratorate && o.region[..6] == *county)
        .map(|o| o.id.clone())
        .collect()
}

/// Where the message `env` answers is in `XJ_ACCEPTED`, if it is one of
/// `types` on `case` (from the route record the router wrote for it).
async fn answered_seq(bus: &Bus, env: &Envelope, case: &str, types: &[&str]) -> anyhow::Result<Option<u64>> {
    let Some(reply_to) = &env.reply_to else { return Ok(None) };
    let entries = route_record(bus, &env.sender, reply_to).await?;
    Ok(entries.into_iter().filter(|e| e.case == case && types.contains(&e.msg_type.as_str())).find_map(|e| e.seq))
}

/// Where the case's first message of one of `types` is in `XJ_ACCEPTED`, as
/// far as the tracker's case record shows yet.
async fn recorded_seq(bus: &Bus, case: &str, types: &[&str]) -> anyhow::Result<Option<u64>> {
    let Some(b) = bus.cases.get(case).await? else { return Ok(None) };
    let record: Option<CaseRecord> = serde_json::from_slice(&b).ok();
    Ok(record.and_then(|r| r.messages.iter().filter(|m| types.contains(&m.msg_type.as_str())).find_map(|m| m.seq)))
}

/// 指定管辖 and 移送主管机关: the organisation named receives the case's
/// original referral or hand-off, becomes its holder, and the message that
/// named it reaches it too.
#[allow(clippy::too_many_arguments)]
async fn reroute(
    rs: &RuleSet,
    bus: &Bus,
    env: &Envelope,
    case: &str,
    trace: &TraceParent,
    r: &Reroute,
    attempt: u64,
) -> anyhow::Result<()> {
    let (designated, types, why) = (r.to.as_str(), &r.original[..], r.why);
    // A transfer answers the hand-off it sends on: the router's own route
    // record finds it at once. Otherwise the case record, which the tracker
    // writes from the events and so may not show a message routed a moment
    // ago: then this message waits (redelivered) until it does.
    let seq = match answered_seq(bus, env, case, types).await? {
        Some(seq) => Some(seq),
        None => recorded_seq(bus, case, types).await?,
    };
    let Some(seq) = seq else {
        if attempt < RECORD_WAITS {
            anyhow::bail!("case {case} does not show a {} to re-route yet (attempt {attempt})", types.join(" or "));
        }
        tracing::warn!(case, why, attempt, "nothing on record to re-route");
        return Ok(());
    };
    let stream = bus.js.get_stream(subjects::STREAM_ACCEPTED).await?;
    let raw = stream.get_raw_message(seq).await?;
    let orig: Envelope = serde_json::from_slice(&raw.payload)?;
    let rule = r.rule.clone();
    let d = Decision {
        targets: vec![Target { org: designated.into(), role: "to" }],
        rule: rule.clone(),
        version: rs.version.clone(),
        reasons: vec![format!("{case}: {why} to {designated} by {} ({})", env.sender, env.id)],
        consulted: Vec::new(),
        question: false,
        crime: None,
        rule_errors: Vec::new(),
        filing: None,
        reroute: None,
        dispute: None,
    };
    remember(&bus.routes, &subjects::key(designated, &orig.id), route_entry(&orig, case, Some(seq))).await?;
    mark_recipient(bus, &orig, case, designated).await?;
    publish_copy(bus, &raw.payload, &orig, case, designated, &d, trace, (None, Some(seq)), Some(why)).await?;
    if why == "designation"
        && let (Some(party), Some(matter)) = (orig.body.get("party").and_then(party_key), orig.matter())
    {
        let holder = Holder { org: designated.into(), case: case.into(), since: Utc::now().to_rfc3339() };
        designate_holder(bus, &party, matter, holder).await?;
    }
    let ev = events::Event {
        step: events::Step::Routed(events::Routed {
            recipients: vec![designated.to_string()],
            targets: vec![events::Target { org: designated.to_string(), role: events::Role::To }],
            rule,
            rule_version: rs.version.clone(),
            reasons: d.reasons,
            rerouted_by: Some(env.id.clone()),
            ..Default::default()
        }),
        service: "router".into(),
        msg_id: orig.id.clone(),
        sender: orig.sender.clone(),
        case: Some(case.into()),
        msg_type: Some(orig.kind),
        at: Utc::now(),
        trace_id: trace.trace_id_hex(),
        span_id: trace.child().span_id_hex(),
    };
    events::publish(&bus.js, &ev).await?;
    Ok(())
}

/// The body fields the tracker's state machine and clocks read, so it does
/// not have to fetch every message.
fn summary(env: &Envelope) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for f in [
        "decision",
        "kind",
        "due_basis",
        "decided_on",
        "approved_on",
        "reported_on",
        "inspection_on",
        "designated",
        "penalty",
        "received_at",
        "transferred_to",
        "items",
        "matter",
        "title",
        "complaint",
        "result",
        "closed_on",
        "ruling",
        "hearing",
        "month",
        "figures",
    ] {
        if let Some(v) = env.body.get(f) {
            out.insert(f.to_string(), v.clone());
        }
    }
    out.insert("sent_at".into(), env.sent_at.clone().into());
    // Supervisors read every case of their county, but not the bodies of
    // sensitive messages that do not name them: the record must say which.
    if let Ok(c) = serde_json::to_value(env.classification) {
        out.insert("classification".into(), c);
    }
    serde_json::Value::Object(out)
}

fn rule_family(rule: &str) -> String {
    rule.split([':', '/']).next().unwrap_or(rule).to_string()
}
