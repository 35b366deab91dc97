//! Jurisdiction decisions as a pure function of a rule set, the message and
//! what the hub knows, so `xj route --explain` and the router agree.

use serde::Serialize;
use xj_config::{OrgKind, Settings};
use xj_model::{Classification, Envelope, MessageType, Problem};

use crate::crime::{CrimeFinding, evaluate};
use crate::history::{Holder, PriorPenalty};
use crate::ruleset::RuleSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub org: String,
    /// `to` for the party that must act, `copy` for those informed (抄送).
    pub role: &'static str,
}

/// One rule looked at, and what it said.
#[derive(Debug, Clone, Serialize)]
pub struct Consulted {
    pub rule: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub targets: Vec<Target>,
    /// The rule that decided, e.g. `matter:PRODUCT-FAKE/devolved:990101101`.
    pub rule: String,
    pub version: String,
    /// Why, in words an operator can read.
    pub reasons: Vec<String>,
    /// Every rule consulted on the way, in order.
    pub consulted: Vec<Consulted>,
    /// Nobody could be placed: the coordination office decides.
    pub question: bool,
    /// A criminal threshold the facts meet.
    pub crime: Option<CrimeFinding>,
    /// A condition that could not be evaluated (the message is still placed).
    pub rule_errors: Vec<String>,
    /// A major penalty decision filed with the justice bureau (重大行政处罚备案).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filing: Option<Filing>,
    /// The message sends the case's original on to another organisation
    /// (指定管辖, 移送主管机关).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reroute: Option<Reroute>,
    /// An objection opens a jurisdiction dispute: the path it takes and
    /// who holds each step (docs/rules.md, "Disputes").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<Dispute>,
}

/// The path a jurisdiction dispute takes, step by step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dispute {
    pub path: xj_config::DisputePath,
    /// The referrer and the objector.
    pub between: [String; 2],
    pub steps: Vec<xj_config::HeldStep>,
}

impl Dispute {
    /// `negotiation (a, b) → coordination_office (c) → …`
    pub fn describe(&self) -> String {
        let steps: Vec<String> = self
            .steps
            .iter()
            .map(|s| format!("{} ({}, {} working days)", s.holder.as_str(), s.orgs.join(", "), s.working_days))
            .collect();
        format!("{} path: {}", self.path.as_str(), steps.join(" → "))
    }
}

/// A designation (指定管辖) or a police transfer (移送主管机关, Decree 310
/// art. 7) sends the case's original — the referral, or the hand-off — on to
/// the organisation it names, besides delivering the message itself there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reroute {
    /// `designation` or `transfer`.
    pub why: &'static str,
    /// Who receives the original now.
    pub to: String,
    /// The types of the case's message that is sent on.
    pub original: Vec<&'static str>,
    /// The rule the re-routed copy carries: `<why>:<sender>`.
    pub rule: String,
}

/// 重大行政处罚备案 (《县行政执法协调监督工作方案》（十二）): the hub files a major penalty decision
/// with the county's justice bureau by carrying it there. The routed
/// event carries it as it is, so it is defined with the events.
pub use xj_bus::events::Filing;

impl Decision {
    pub fn recipients(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.org.clone()).collect()
    }
}

/// What the hub knows beyond the message.
#[derive(Debug, Clone, Default)]
pub struct Knowledge {
    /// Sender of the message this one answers (resolved by the gateway).
    pub reply_sender: Option<String>,
    /// Who first opened a case on this party and matter.
    pub holder: Option<Holder>,
    /// The party's administrative penalties carried by the hub.
    pub priors: Vec<PriorPenalty>,
}

fn to(org: &str) -> Target {
    Target { org: org.to_string(), role: "to" }
}

struct Builder<'a> {
    rs: &'a RuleSet,
    env: &'a Envelope,
    consulted: Vec<Consulted>,
}

impl Builder<'_> {
    fn note(&mut self, rule: impl Into<String>, outcome: impl Into<String>) {
        self.consulted.push(Consulted { rule: rule.into(), outcome: outcome.into() });
    }

    fn placed(self, targets: Vec<Target>, rule: String, reasons: Vec<String>) -> Decision {
        Decision {
            targets,
            rule,
            version: self.rs.version.clone(),
            reasons,
            consulted: self.consulted,
            question: false,
            crime: None,
            rule_errors: Vec::new(),
            filing: None,
            reroute: None,
            dispute: None,
        }
    }

    /// Nobody could be placed: the county's coordination office decides
    /// (首接责任: the hub never drops an item).
    fn question(self, reasons: Vec<String>) -> Decision {
        let s = &self.rs.settings;
        let county = region_of(self.env).map(|r| &r[..6]);
        let office = s
            .org
            .iter()
            .filter(|o| o.kind == OrgKind::CoordinationOffice)
            .find(|o| county.is_none_or(|c| o.region[..6] == *c))
            .or_else(|| s.org.iter().find(|o| o.kind == OrgKind::CoordinationOffice));
        let mut d =
            self.placed(office.map(|o| to(&o.id)).into_iter().collect(), "jurisdiction-question".into(), reasons);
        d.question = true;
        d
    }
}

fn region_of(env: &Envelope) -> Option<&str> {
    env.body.pointer("/location/region").and_then(|v| v.as_str()).filter(|r| r.len() >= 6)
}

/// Decides where `env` goes.
pub fn decide(rs: &RuleSet, env: &Envelope, k: &Knowledge) -> Decision {
    let mut d = place(rs, env, k);
    match evaluate(rs, env, &k.priors) {
        Ok(Some(finding)) => {
            d.consulted.push(Consulted { rule: finding.rule.clone(), outcome: format!("met: {}", finding.offence) });
            d.crime = Some(finding);
        }
        Ok(None) => {
            if let Some(m) = env.matter().filter(|m| rs.crimes.contains_key(*m) && crate::crime::applies(env)) {
                d.consulted.push(Consulted { rule: format!("crime:{m}"), outcome: "not met".into() });
            }
        }
        Err(e) => d.rule_errors.push(e.to_string()),
    }
    if let Some(r) = reroute(rs, env) {
        d.consulted.push(Consulted {
            rule: format!("reroute:{}", r.why),
            outcome: format!("the case's {} goes on to {}", r.original.join(" or "), r.to),
        });
        if !d.targets.iter().any(|t| t.org == r.to) {
            d.targets.push(to(&r.to));
        }
        d.reroute = Some(r);
    }
    // 相互抄告: organisations a referral is copied to are told and owe nothing.
    if matches!(env.kind, MessageType::ClueReferral | MessageType::CaseReferral) {
        for org in copy_to(env).filter(|o| rs.settings.org(o).is_some() && *o != env.sender) {
            if !d.targets.iter().any(|t| t.org == org) {
                d.consulted
                    .push(Consulted { rule: "copy_to".into(), outcome: format!("copied to {org} (相互抄告)") });
                d.targets.push(copy(org));
            }
        }
    }
    if let Some(dispute) = dispute(rs, env, k) {
        d.consulted.push(Consulted { rule: format!("dispute:{}", dispute.path.as_str()), outcome: dispute.describe() });
        d.dispute = Some(dispute);
    }
    d
}

/// The organisations a referral names in `copy_to`.
pub fn copy_to(env: &Envelope) -> impl Iterator<Item = &str> {
    env.body.get("copy_to").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_str())
}

/// An objection (管辖异议) opens a dispute between the referrer — the
/// sender of what it answers, or else its first named recipient — and the
/// objector; the two decide its path.
fn dispute(rs: &RuleSet, env: &Envelope, k: &Knowledge) -> Option<Dispute> {
    if env.kind != MessageType::ReferralReply || env.body.get("decision").and_then(|v| v.as_str()) != Some("objected") {
        return None;
    }
    let referrer = k.reply_sender.clone().or_else(|| env.recipients().into_iter().next())?;
    let (path, steps) = rs.settings.dispute_chain(&referrer, &env.sender);
    Some(Dispute { path, between: [referrer, env.sender.clone()], steps })
}

/// Whether `env` sends its case's original on, and to whom: a designation
/// names the organisation that takes the referral; a police decision
/// `transferred` names the organ that takes the hand-off. An organisation
/// the hub does not know sends nothing on (the gateway refuses it first).
fn reroute(rs: &RuleSet, env: &Envelope) -> Option<Reroute> {
    let named = |field: &str| {
        env.body.get(field).and_then(|v| v.as_str()).filter(|o| rs.settings.org(o).is_some()).map(str::to_owned)
    };
    let (why, to, original) = match env.kind {
        MessageType::JurisdictionDesignation => {
            ("designation", named("designated")?, vec!["clue_referral", "case_referral"])
        }
        MessageType::PoliceDecision if env.body.get("decision").and_then(|v| v.as_str()) == Some("transferred") => {
            ("transfer", named("transferred_to")?, vec!["criminal_handoff"])
        }
        _ => return None,
    };
    Some(Reroute { why, to, original, rule: format!("{why}:{}", env.sender) })
}

fn place(rs: &RuleSet, env: &Envelope, k: &Knowledge) -> Decision {
    let mut b = Builder { rs, env, consulted: Vec::new() };
    let explicit = env.recipients();
    if let Some(rs_) = &k.reply_sender {
        b.note("reply", format!("answers {:?} from {rs_}", env.reply_to.as_deref().unwrap_or_default()));
        let mut targets = vec![to(rs_)];
        targets.extend(explicit.iter().filter(|r| *r != rs_).map(|r| to(r)));
        // Police decisions are copied to the procuratorate (Decree 310 art. 8, 9).
        if matches!(env.kind, MessageType::PoliceDecision | MessageType::ReconsiderationDecision) {
            for p in procuratorates(rs, env) {
                if !targets.iter().any(|t| t.org == p) {
                    targets.push(copy(&p));
                }
            }
        }
        return b.placed(targets, "reply".into(), vec![format!("a reply goes back to {rs_}, on the same case")]);
    }
    if !explicit.is_empty() && env.kind != MessageType::InfoShare {
        b.note("explicit", format!("recipient named: {}", explicit.join(", ")));
        let reasons = vec!["recipient named by the sender".into()];
        if env.kind == MessageType::CriminalHandoff {
            let mut targets: Vec<Target> = explicit.iter().map(|r| to(r)).collect();
            targets.extend(procuratorates(rs, env).into_iter().filter(|p| !explicit.contains(p)).map(|p| copy(&p)));
            return b.placed(targets, "explicit".into(), reasons);
        }
        return b.placed(explicit.iter().map(|r| to(r)).collect(), "explicit".into(), reasons);
    }
    match env.kind {
        MessageType::ClueReferral | MessageType::CaseReferral => referral(b, k),
        MessageType::CriminalHandoff => handoff(b),
        MessageType::InfoShare => share(b, &explicit),
        _ => b.question(vec![format!("a {} with no recipient", env.kind)]),
    }
}

fn copy(org: &str) -> Target {
    Target { org: org.to_string(), role: "copy" }
}

fn procuratorates(rs: &RuleSet, env: &Envelope) -> Vec<String> {
    let county = region_of(env).map(|r| r[..6].to_string());
    let sender_county = rs.settings.org(&env.sender).map(|o| o.region[..6].to_string());
    let county = county.or(sender_county).unwrap_or_default();
    rs.settings
        .org
        .iter()
        .filter(|o| o.kind == OrgKind::Procuratorate && o.region[..6] == *county)
        .map(|o| o.id.clone())
        .collect()
}

fn kind_name(k: OrgKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn in_deployment(s: &Settings, county: &str) -> bool {
    s.org.iter().any(|o| &o.region[..6] == county)
}

fn referral(mut b: Builder<'_>, k: &Knowledge) -> Decision {
    let (rs, env) = (b.rs, b.env);
    let s = &rs.settings;
    let Some(code) = env.matter() else {
        b.note("matter", "none named");
        return b.question(vec!["the referral names no matter".into()]);
    };
    let Some(matter) = rs.matter(code) else {
        b.note(format!("matter:{code}"), "not in the catalogue");
        return b.question(vec![format!("matter {code:?} is not in the catalogue")]);
    };
    let Some(region) = region_of(env) else {
        b.note("territory", "no location region");
        return b.question(vec!["the referral has no location region".into()]);
    };
    let county = &region[..6];
    if !in_deployment(s, county) {
        b.note("territory", format!("{region} is outside this deployment"));
        return b.question(vec![format!("the location {region} is outside the counties this hub serves")]);
    }
    // 行政处罚法 art. 25: the organisation that opened a case first keeps it.
    if let Some(h) = &k.holder {
        if h.org != env.sender {
            b.note("art25:first-opened", format!("{} opened case {} first", h.org, h.case));
            return b.placed(
                vec![to(&h.org)],
                format!("art25:first-opened/{}", h.org),
                vec![format!(
                    "{} already opened a case on this party and matter ({}); the first to open keeps it (行政处罚法第二十五条)",
                    h.org, h.case
                )],
            );
        }
        b.note("art25:first-opened", format!("the sender {} holds it", h.org));
    } else {
        b.note("art25:first-opened", "no earlier case on this party and matter");
    }
    // 赋权: a devolved matter located in a town that holds the power.
    let devolved = region.len() == 9 && matter.devolved_to.iter().any(|t| t == region);
    b.note(
        format!("matter:{code}/devolved"),
        if devolved { format!("devolved to {region}") } else { format!("not devolved to {region}") },
    );
    if devolved {
        let towns: Vec<&str> = s
            .org
            .iter()
            .filter(|o| o.kind == OrgKind::TownGovernment && o.region == region)
            .map(|o| o.id.as_str())
            .collect();
        match towns.as_slice() {
            [town] if *town == env.sender => {
                return b.question(vec![format!(
                    "{town} holds the devolved power for {code} in {region} and cannot refer it to itself"
                )]);
            }
            [town] => {
                return b.placed(
                    vec![to(town)],
                    format!("matter:{code}/devolved:{region}"),
                    vec![format!("{} is devolved to the town {region} (赋权事项)", matter.name)],
                );
            }
            [] => {
                return b
                    .question(vec![format!("{code} is devolved to {region} but no town government has that region")]);
            }
            many => return b.question(vec![format!("several town governments for {region}: {}", many.join(", "))]),
        }
    }
    // 属地 + 权责清单: the county organisation of the competent kind.
    let competent: Vec<&str> =
        s.org.iter().filter(|o| o.kind == matter.competent && o.region == county).map(|o| o.id.as_str()).collect();
    let kind = kind_name(matter.competent);
    b.note(
        format!("matter:{code}/competent"),
        format!("{kind} in {county}: {}", if competent.is_empty() { "none".into() } else { competent.join(", ") }),
    );
    match competent.as_slice() {
        [one] if *one == env.sender => {
            b.question(vec![format!("the sender {one} is itself the competent organisation for {code} in {county}")])
        }
        [one] => b.placed(
            vec![to(one)],
            format!("matter:{code}/competent:{kind}"),
            vec![format!("{} is for the county's {kind} (location {region}, 属地管辖)", matter.name)],
        ),
        [] => b.question(vec![format!("no {kind} organisation is configured for county {county}")]),
        many => {
            b.question(vec![format!("several organisations are competent for {code} in {county}: {}", many.join(", "))])
        }
    }
}

/// 行刑衔接: the police unit the matter names, in the case's county, with a
/// copy to the same-level procuratorate (Decree 310 art. 6).
fn handoff(mut b: Builder<'_>) -> Decision {
    let (rs, env) = (b.rs, b.env);
    let s = &rs.settings;
    let matter = env.matter().and_then(|c| rs.matter(c));
    let (Some(matter), Some(region)) = (matter, region_of(env)) else {
        return b.question(vec!["hand-off without a known matter or location".into()]);
    };
    let Some(crime) = &matter.crime else {
        b.note(format!("matter:{}/crime", matter.code), "no criminal threshold");
        return b.question(vec![format!("matter {} has no criminal threshold and no police unit", matter.code)]);
    };
    let county = &region[..6];
    let police: Vec<&str> = s
        .org
        .iter()
        .filter(|o| o.kind == OrgKind::PublicSecurity && o.region[..6] == *county)
        .filter(|o| o.unit.as_deref() == Some(crime.police_unit.as_str()))
        .map(|o| o.id.as_str())
        .collect();
    b.note(
        format!("matter:{}/crime:{}", matter.code, crime.police_unit),
        format!("police units: {}", police.join(", ")),
    );
    let [police] = police.as_slice() else {
        return b.question(vec![format!("no single police unit {:?} in county {county}", crime.police_unit)]);
    };
    let mut targets = vec![to(police)];
    targets.extend(procuratorates(rs, env).iter().map(|p| copy(p)));
    b.placed(
        targets,
        format!("matter:{}/crime:{}", matter.code, crime.police_unit),
        vec![format!(
            "{}: to the {} police unit, copied to the procuratorate (Decree 310 art. 6)",
            crime.offence, crime.police_unit
        )],
    )
}

/// Information sharing (信息互通): the organisations whose `subscribe`
/// entries match the item's kind, region and matter; an explicit recipient
/// list narrows that; a sensitive item goes only to the recipients named.
/// A major penalty decision is also filed with the justice bureau.
fn share(mut b: Builder<'_>, explicit: &[String]) -> Decision {
    let env = b.env;
    let s = &b.rs.settings;
    let kind = env.body.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    // An item without a region concerns its sender's region.
    let region = env
        .body
        .get("region")
        .and_then(|v| v.as_str())
        .or_else(|| s.org(&env.sender).map(|o| o.region.as_str()))
        .unwrap_or_default();
    let matter = env.body.get("matter").and_then(|v| v.as_str());
    let filing = major_penalty(&mut b, region);
    let mut d = if env.classification == Classification::Sensitive {
        b.note("share:sensitive", "only the recipients named");
        b.placed(
            explicit.iter().map(|r| to(r)).collect(),
            "share:sensitive-explicit-only".into(),
            vec!["sensitive information goes only to the recipients named, never to subscribers".into()],
        )
    } else {
        let targets: Vec<Target> = s
            .org
            .iter()
            .filter(|o| o.id != env.sender)
            .filter(|o| explicit.is_empty() || explicit.contains(&o.id))
            .filter(|o| o.subscribe.iter().any(|sub| subscribed(s, o, sub, kind, region, matter)))
            .map(|o| to(&o.id))
            .collect();
        let narrowed =
            if explicit.is_empty() { String::new() } else { format!(", narrowed to {}", explicit.join(", ")) };
        b.note(format!("share:{kind}"), format!("{} subscriber(s) for region {region}{narrowed}", targets.len()));
        b.placed(targets, format!("share:{kind}"), vec![format!("subscribers of {kind} for region {region}{narrowed}")])
    };
    if let Some(f) = filing {
        for org in &f.with {
            if !d.targets.iter().any(|t| &t.org == org) {
                d.targets.push(to(org));
            }
        }
        d.reasons.push(format!(
            "a major penalty decision ({}) is filed with {} (重大行政处罚备案, due {})",
            f.criteria.join("; "),
            f.with.join(", "),
            f.due
        ));
        d.filing = Some(f);
    }
    d
}

/// Does `sub` of organisation `o` take an item of `kind` about `region`?
/// The subscription's region defaults to the organisation's own. A county
/// region covers the county and all its towns (the county sees its towns);
/// a town region covers that town only, plus county-wide items about a
/// matter devolved to that town (it exercises that power, 赋权), so a town
/// never sees its neighbours' items nor the county's other business.
fn subscribed(
    s: &xj_config::Settings,
    o: &xj_config::Org,
    sub: &xj_config::Subscription,
    kind: &str,
    region: &str,
    matter: Option<&str>,
) -> bool {
    if sub.kind != kind || sub.matter.as_deref().is_some_and(|m| Some(m) != matter) {
        return false;
    }
    let scope = sub.region.as_deref().unwrap_or(o.region.as_str());
    if region.starts_with(scope) {
        return true;
    }
    scope.len() == 9
        && region == &scope[..6]
        && matter.and_then(|m| s.matter(m)).is_some_and(|m| m.devolved_to.iter().any(|t| t == scope))
}

/// Whether a `penalty_decision` share is a major penalty (《县行政执法协调监督工作方案》（十二）),
/// and with whom it is filed: the justice bureau of the item's county.
fn major_penalty(b: &mut Builder<'_>, region: &str) -> Option<Filing> {
    let env = b.env;
    if env.body.get("kind").and_then(|v| v.as_str()) != Some("penalty_decision") {
        return None;
    }
    let rules = &b.rs.settings.major_penalty;
    let penalty = env.body.get("penalty");
    let kind = penalty.and_then(|p| p.get("kind")).and_then(|v| v.as_str()).unwrap_or_default();
    let amount = penalty.and_then(|p| p.get("amount")).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let confiscated = penalty.and_then(|p| p.get("confiscated_value")).and_then(|v| v.as_f64()).unwrap_or(0.0);
    let mut criteria = Vec::new();
    if amount >= rules.min_fine {
        criteria.push(format!("fine of {amount} yuan ≥ {}", rules.min_fine));
    }
    if rules.kinds.iter().any(|k| k == kind) {
        criteria.push(format!("penalty kind {kind}"));
    }
    if confiscated > 0.0 && rules.kinds.iter().any(|k| k == "confiscation") && kind != "confiscation" {
        criteria.push(format!("confiscation of {confiscated} yuan"));
    }
    if criteria.is_empty() {
        b.note("filing:major-penalty", "not a major penalty");
        return None;
    }
    let county = region.get(..6).unwrap_or_default();
    let with: Vec<String> =
        b.rs.settings
            .org
            .iter()
            .filter(|o| o.kind == OrgKind::JusticeBureau && o.region.get(..6) == Some(county) && o.id != env.sender)
            .map(|o| o.id.clone())
            .collect();
    if with.is_empty() {
        b.note("filing:major-penalty", format!("major ({}), but no justice bureau in {county}", criteria.join("; ")));
        return None;
    }
    let decided = crate::history::reference_date(&env.body, &env.sent_at);
    let due = decided + chrono::Duration::days(i64::from(rules.file_within_days));
    b.note("filing:major-penalty", format!("major ({}): filed with {}", criteria.join("; "), with.join(", ")));
    Some(Filing { with, criteria, decided_on: decided.to_string(), due: due.to_string(), source: rules.source.clone() })
}

/// Explicit recipients must be plausible for the message type (checked at
/// the edge, so the sender hears it at once).
pub fn check_recipients(rs: &RuleSet, env: &Envelope) -> Vec<Problem> {
    let mut out = Vec::new();
    if env.kind == MessageType::InfoShare
        && env.classification == Classification::Sensitive
        && env.recipients().is_empty()
    {
        out.push(Problem::new(
            "/recipient",
            "sensitive information goes only to recipients named here, never to subscribers: name them",
        ));
    }
    let many = matches!(env.recipient, Some(xj_model::Recipients::Many(_)));
    for (i, r) in env.recipients().iter().enumerate() {
        let at = if many { format!("/recipient/{i}") } else { "/recipient".to_string() };
        let Some(org) = rs.settings.org(r) else {
            out.push(Problem::new(at, format!("no organisation {r:?} is connected to this hub")));
            continue;
        };
        if r == &env.sender {
            out.push(Problem::new(at, "an organisation cannot send a message to itself"));
            continue;
        }
        let plausible = match env.kind {
            MessageType::ClueReferral | MessageType::CaseReferral => {
                org.kind.is_enforcement() || org.kind == OrgKind::CoordinationOffice
            }
            MessageType::CriminalHandoff => matches!(org.kind, OrgKind::PublicSecurity | OrgKind::Procuratorate),
            MessageType::MonthlyReport => org.kind == OrgKind::JusticeBureau,
            _ => true,
        };
        if !plausible {
            out.push(Problem::new(at, format!("{r} is a {} and cannot receive a {}", kind_name(org.kind), env.kind)));
        }
    }
    for (i, r) in copy_to(env).enumerate() {
        let at = format!("/body/copy_to/{i}");
        match rs.settings.org(r) {
            None => out.push(Problem::new(at, format!("no organisation {r:?} is connected to this hub"))),
            Some(_) if r == env.sender => {
                out.push(Problem::new(at, "an organisation cannot copy a referral to itself"))
            }
            Some(_) => {}
        }
    }
    if let Some(channel) = env.body.pointer("/complaint/channel").and_then(|v| v.as_str()) {
        match rs.settings.org(channel) {
            Some(o) if o.kind == OrgKind::Hotline => {}
            Some(o) => out.push(Problem::new(
                "/body/complaint/channel",
                format!("{channel} is a {}, not a complaint channel (kind hotline)", kind_name(o.kind)),
            )),
            None => out.push(Problem::new(
                "/body/complaint/channel",
                format!("no organisation {channel:?} is connected to this hub"),
            )),
        }
    }
    out
}
