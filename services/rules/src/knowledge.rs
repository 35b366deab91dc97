//! Reading and writing what the hub knows about parties: penalty history and
//! case holders, kept in NATS KV buckets.

use async_nats::jetstream::kv::{self, CreateErrorKind};
use serde::de::DeserializeOwned;
use xj_bus::Bus;
use xj_bus::records::{Likely, update_json};
use xj_bus::subjects::token;
use xj_model::{Envelope, MessageType};

use crate::history::{Holder, PriorPenalty, party_key, reference_date};
use crate::{Knowledge, RuleSet};

pub fn holder_key(party: &str, matter: &str) -> String {
    format!("{party}.{}", token(matter))
}

/// Gathers what the rules may ask about `env`.
pub async fn gather(
    rs: &RuleSet,
    bus: &Bus,
    env: &Envelope,
    reply_sender: Option<String>,
) -> anyhow::Result<Knowledge> {
    let mut k = Knowledge { reply_sender, ..Default::default() };
    let party = env.body.get("party").and_then(party_key);
    let matter = env.matter();
    if let (Some(p), Some(m)) = (&party, matter) {
        // Two reads that do not depend on each other: side by side.
        let holder = async {
            if env.kind.is_referral() && env.kind != MessageType::CriminalHandoff {
                get(&bus.holders, &holder_key(p, m)).await
            } else {
                Ok(None)
            }
        };
        let priors =
            async { if rs.crimes.contains_key(m) { get::<Vec<_>>(&bus.penalties, p).await } else { Ok(None) } };
        let (holder, priors) = tokio::try_join!(holder, priors)?;
        k.holder = holder;
        k.priors = priors.unwrap_or_default();
    }
    Ok(k)
}

async fn get<T: DeserializeOwned>(store: &kv::Store, key: &str) -> anyhow::Result<Option<T>> {
    Ok(match store.get(key).await? {
        Some(b) if !b.is_empty() => Some(serde_json::from_slice(&b)?),
        _ => None,
    })
}

/// Remembers a `penalty_decision` in its party's history (idempotent).
pub async fn record_penalty(bus: &Bus, env: &Envelope) -> anyhow::Result<bool> {
    let Some(party) = env.body.get("party").and_then(party_key) else { return Ok(false) };
    let p = PriorPenalty {
        msg_id: env.id.clone(),
        sender: env.sender.clone(),
        matter: env.matter().map(str::to_owned),
        decided_on: reference_date(&env.body, &env.sent_at),
        kind: env.body.pointer("/penalty/kind").and_then(|v| v.as_str()).map(str::to_owned),
        amount: env.body.pointer("/penalty/amount").and_then(|v| v.as_f64()),
    };
    update_json(&bus.penalties, &party, Likely::Existing, |list: &mut Vec<PriorPenalty>| {
        if list.iter().any(|q| q.msg_id == p.msg_id && q.sender == p.sender) {
            return false;
        }
        list.push(p.clone());
        true
    })
    .await?;
    Ok(true)
}

/// Records the first organisation to open a case on a party and matter; a
/// later claim does not replace it.
pub async fn record_holder(bus: &Bus, party: &str, matter: &str, holder: Holder) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec(&holder)?;
    match bus.holders.create(holder_key(party, matter), bytes.into()).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Overwrites the holder (a designation decides).
pub async fn designate_holder(bus: &Bus, party: &str, matter: &str, holder: Holder) -> anyhow::Result<()> {
    bus.holders.put(holder_key(party, matter), serde_json::to_vec(&holder)?.into()).await?;
    Ok(())
}

/// What the hub has seen of a party and matter with criminal weight: the
/// messages whose facts met a threshold, and the hand-offs made
/// (`xj_crimes`, `<party>.<matter>`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CrimeRecord {
    #[serde(default)]
    pub met: Vec<Seen>,
    #[serde(default)]
    pub handed_off: Vec<Seen>,
}

/// One message of a [`CrimeRecord`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    pub msg_id: String,
    pub sender: String,
    pub case: String,
    /// The date its facts refer to (`found_on`, `filed_on`, …).
    pub on: chrono::NaiveDate,
}

fn seen(env: &Envelope, case: &str) -> Seen {
    Seen {
        msg_id: env.id.clone(),
        sender: env.sender.clone(),
        case: case.to_string(),
        on: reference_date(&env.body, &env.sent_at),
    }
}

fn party_and_matter(env: &Envelope) -> Option<String> {
    let party = env.body.get("party").and_then(party_key)?;
    Some(holder_key(&party, env.matter()?))
}

/// Records that `env`'s facts met a criminal threshold (idempotent).
pub async fn record_crime_met(bus: &Bus, env: &Envelope, case: &str) -> anyhow::Result<()> {
    record_seen(bus, env, case, Likely::New, |r| &mut r.met).await
}

/// Records a hand-off of the party and matter to the police (idempotent).
pub async fn record_handoff(bus: &Bus, env: &Envelope, case: &str) -> anyhow::Result<()> {
    record_seen(bus, env, case, Likely::Existing, |r| &mut r.handed_off).await
}

async fn record_seen(
    bus: &Bus,
    env: &Envelope,
    case: &str,
    likely: Likely,
    list: fn(&mut CrimeRecord) -> &mut Vec<Seen>,
) -> anyhow::Result<()> {
    let Some(key) = party_and_matter(env) else { return Ok(()) };
    let s = seen(env, case);
    update_json(&bus.crimes, &key, likely, |r: &mut CrimeRecord| {
        let l = list(r);
        if l.iter().any(|m| m.msg_id == s.msg_id && m.sender == s.sender) {
            return false;
        }
        l.push(s.clone());
        true
    })
    .await
}

/// 以罚代刑 by party and matter: the message whose facts met a criminal
/// threshold within the two years before this penalty decision, on the same
/// party and matter, with no hand-off for them since — whatever case either
/// names.
pub async fn penalty_instead_of_transfer(bus: &Bus, env: &Envelope) -> anyhow::Result<Option<Seen>> {
    let Some(key) = party_and_matter(env) else { return Ok(None) };
    let Some(r) = get::<CrimeRecord>(&bus.crimes, &key).await? else { return Ok(None) };
    let decided = reference_date(&env.body, &env.sent_at);
    let since = decided.checked_sub_months(chrono::Months::new(24)).unwrap_or(decided);
    if r.handed_off.iter().any(|h| h.on >= since) {
        return Ok(None);
    }
    let earlier =
        r.met.iter().filter(|m| m.on >= since && m.on <= decided && !(m.msg_id == env.id && m.sender == env.sender));
    Ok(earlier.max_by_key(|m| m.on).cloned())
}
