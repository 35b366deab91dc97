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
        if env.kind.is_referral() && env.kind != MessageType::CriminalHandoff {
            k.holder = get(&bus.holders, &holder_key(p, m)).await?;
        }
        if rs.crimes.contains_key(m) {
            k.priors = get(&bus.penalties, p).await?.unwrap_or_default();
        }
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
