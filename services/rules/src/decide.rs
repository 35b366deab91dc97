//! Jurisdiction decisions as a pure function of the rule set and the message,
//! so `xj route --explain` and the service give the same answer.

use serde::Serialize;
use xj_config::{OrgKind, Settings};
use xj_model::{Classification, Envelope, MessageType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub org: String,
    /// `to` for the party that must act, `copy` for those informed (抄送).
    pub role: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub targets: Vec<Target>,
    /// The rule that decided, e.g. `matter:PRODUCT-FAKE/devolved:990101101`.
    pub rule: String,
    pub version: String,
    /// Why, in words an operator can read; for a jurisdiction question, what
    /// was missing or ambiguous.
    pub reasons: Vec<String>,
    /// True when nobody could be placed and the coordination office decides.
    pub question: bool,
}

impl Decision {
    pub fn recipients(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.org.clone()).collect()
    }
}

fn to(org: &str) -> Target {
    Target { org: org.to_string(), role: "to" }
}

/// Decides where `env` goes. `reply_sender` is the sender of the message
/// `env` answers, as the gateway resolved it.
pub fn decide(settings: &Settings, env: &Envelope, reply_sender: Option<&str>) -> Decision {
    let version = settings.ruleset_version();
    let make = |targets: Vec<Target>, rule: String, reasons: Vec<String>| Decision {
        targets,
        rule,
        version: version.clone(),
        reasons,
        question: false,
    };

    let explicit = env.recipients();
    if let Some(rs) = reply_sender {
        let mut targets = vec![to(rs)];
        targets.extend(explicit.iter().filter(|r| r.as_str() != rs).map(|r| to(r)));
        return make(targets, "reply".into(), vec![format!("answers {:?} sent by {rs}", env.reply_to)]);
    }
    if !explicit.is_empty() && env.kind != MessageType::InfoShare {
        return make(
            explicit.iter().map(|r| to(r)).collect(),
            "explicit".into(),
            vec!["recipient named by the sender".into()],
        );
    }
    match env.kind {
        MessageType::ClueReferral | MessageType::CaseReferral => referral(settings, env, make),
        MessageType::CriminalHandoff => handoff(settings, env, make),
        MessageType::InfoShare => share(settings, env, &explicit, make),
        _ => question(settings, env, &version, vec![format!("a {} with no recipient", env.kind)]),
    }
}

fn region_of(env: &Envelope) -> Option<&str> {
    env.body.pointer("/location/region").and_then(|v| v.as_str())
}

fn referral(
    settings: &Settings,
    env: &Envelope,
    make: impl Fn(Vec<Target>, String, Vec<String>) -> Decision,
) -> Decision {
    let version = settings.ruleset_version();
    let Some(code) = env.matter() else {
        return question(settings, env, &version, vec!["the referral names no matter".into()]);
    };
    let Some(matter) = settings.matter(code) else {
        return question(settings, env, &version, vec![format!("matter {code:?} is not in the catalogue")]);
    };
    let Some(region) = region_of(env) else {
        return question(settings, env, &version, vec!["the referral has no location region".into()]);
    };
    // 赋权: a devolved matter located in a town that holds the power.
    if region.len() == 9 && matter.devolved_to.iter().any(|t| t == region) {
        let towns: Vec<&str> = settings
            .org
            .iter()
            .filter(|o| o.kind == OrgKind::TownGovernment && o.region == region)
            .map(|o| o.id.as_str())
            .collect();
        if let [town] = towns.as_slice() {
            return make(
                vec![to(town)],
                format!("matter:{code}/devolved:{region}"),
                vec![format!("{} is devolved to town {region} (赋权事项)", matter.name)],
            );
        }
    }
    // 属地 + 权责清单: the county organisation of the competent kind.
    let county = &region[..6];
    let competent: Vec<&str> = settings
        .org
        .iter()
        .filter(|o| o.kind == matter.competent && o.region == county)
        .map(|o| o.id.as_str())
        .collect();
    match competent.as_slice() {
        [one] if *one == env.sender => question(
            settings,
            env,
            &version,
            vec![format!("the sender {one} is itself the competent organisation for {code} in {county}")],
        ),
        [one] => make(
            vec![to(one)],
            format!("matter:{code}/competent:{}", kind_name(matter.competent)),
            vec![format!("{} is for the county's {} (location {region})", matter.name, kind_name(matter.competent))],
        ),
        [] => question(
            settings,
            env,
            &version,
            vec![format!("no {} organisation is configured for county {county}", kind_name(matter.competent))],
        ),
        many => question(
            settings,
            env,
            &version,
            vec![format!("several organisations are competent for {code} in {county}: {}", many.join(", "))],
        ),
    }
}

/// 行刑衔接: the police unit the matter names, in the case's county, with a
/// copy to the same-level procuratorate (Decree 310 art. 6).
fn handoff(
    settings: &Settings,
    env: &Envelope,
    make: impl Fn(Vec<Target>, String, Vec<String>) -> Decision,
) -> Decision {
    let version = settings.ruleset_version();
    let matter = env.matter().and_then(|c| settings.matter(c));
    let (Some(matter), Some(region)) = (matter, region_of(env)) else {
        return question(settings, env, &version, vec!["hand-off without a known matter or location".into()]);
    };
    let Some(crime) = &matter.crime else {
        return question(settings, env, &version, vec![format!("matter {} has no criminal threshold", matter.code)]);
    };
    let county = &region[..6];
    let in_county = |kind: OrgKind| settings.org.iter().filter(move |o| o.kind == kind && o.region[..6] == *county);
    let police: Vec<&str> = in_county(OrgKind::PublicSecurity)
        .filter(|o| o.unit.as_deref() == Some(crime.police_unit.as_str()))
        .map(|o| o.id.as_str())
        .collect();
    let [police] = police.as_slice() else {
        return question(
            settings,
            env,
            &version,
            vec![format!("no single police unit {:?} in county {county}", crime.police_unit)],
        );
    };
    let mut targets = vec![to(police)];
    targets.extend(in_county(OrgKind::Procuratorate).map(|o| Target { org: o.id.clone(), role: "copy" }));
    make(
        targets,
        format!("matter:{}/crime:{}", matter.code, crime.police_unit),
        vec![format!("{}: to the {} police unit, copied to the procuratorate", crime.offence, crime.police_unit)],
    )
}

/// Information sharing: subscribers by kind, region and matter; a
/// sensitive item goes only to the recipients named.
fn share(
    settings: &Settings,
    env: &Envelope,
    explicit: &[String],
    make: impl Fn(Vec<Target>, String, Vec<String>) -> Decision,
) -> Decision {
    if env.classification == Classification::Sensitive {
        return make(
            explicit.iter().map(|r| to(r)).collect(),
            "share:sensitive-explicit-only".into(),
            vec!["sensitive information goes only to the recipients named".into()],
        );
    }
    let kind = env.body.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    let region = env.body.get("region").and_then(|v| v.as_str()).unwrap_or_default();
    let matter = env.body.get("matter").and_then(|v| v.as_str());
    let targets: Vec<Target> = settings
        .org
        .iter()
        .filter(|o| o.id != env.sender)
        .filter(|o| explicit.is_empty() || explicit.contains(&o.id))
        .filter(|o| {
            o.subscribe.iter().any(|s| {
                s.kind == kind
                    && s.region.as_deref().is_none_or(|r| region.starts_with(r))
                    && s.matter.as_deref().is_none_or(|m| Some(m) == matter)
            })
        })
        .map(|o| to(&o.id))
        .collect();
    make(targets, format!("share:{kind}"), vec![format!("subscribers of {kind} for region {region}")])
}

/// Nobody could be placed: the coordination office decides (首接责任: the
/// hub never drops an item).
fn question(settings: &Settings, env: &Envelope, version: &str, reasons: Vec<String>) -> Decision {
    let county = region_of(env).map(|r| &r[..6]);
    let offices: Vec<&str> = settings
        .org
        .iter()
        .filter(|o| o.kind == OrgKind::CoordinationOffice)
        .filter(|o| county.is_none_or(|c| o.region[..6] == *c))
        .map(|o| o.id.as_str())
        .collect();
    let office = offices
        .first()
        .copied()
        .or_else(|| settings.org.iter().find(|o| o.kind == OrgKind::CoordinationOffice).map(|o| o.id.as_str()));
    Decision {
        targets: office.map(to).into_iter().collect(),
        rule: "jurisdiction-question".into(),
        version: version.to_string(),
        reasons,
        question: true,
    }
}

fn kind_name(k: OrgKind) -> String {
    serde_json::to_value(k).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
