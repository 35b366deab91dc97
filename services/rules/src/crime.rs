//! Criminal thresholds: does this message's matter, facts and the party's
//! history meet the condition of the matter's `[matter.crime]`?

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::extractors::Arguments;
use cel::{Context, ExecutionError, Value as Cel};
use serde::Serialize;
use serde_json::Value;
use xj_model::{Envelope, MessageType};

use crate::history::{PriorPenalty, reference_date};
use crate::ruleset::{RuleError, RuleSet};

/// A threshold met: what an alert names.
#[derive(Debug, Clone, Serialize)]
pub struct CrimeFinding {
    pub matter: String,
    pub offence: String,
    pub police_unit: String,
    /// `crime:<matter>`: the rule id alerts carry with the version.
    pub rule: String,
    pub condition: String,
    pub source: Option<String>,
    pub effective: Option<String>,
    /// The facts the condition read, as evaluated (absent ones as 0).
    pub facts: BTreeMap<String, f64>,
    pub prior_penalties: usize,
}

/// Messages whose facts are checked against thresholds.
pub(crate) fn applies(env: &Envelope) -> bool {
    match env.kind {
        MessageType::ClueReferral | MessageType::CaseReferral => true,
        MessageType::InfoShare => env.body.get("kind").and_then(Value::as_str) == Some("penalty_decision"),
        _ => false,
    }
}

pub(crate) fn evaluate(
    rs: &RuleSet,
    env: &Envelope,
    priors: &[PriorPenalty],
) -> Result<Option<CrimeFinding>, RuleError> {
    if !applies(env) {
        return Ok(None);
    }
    let Some(code) = env.matter() else { return Ok(None) };
    let Some(compiled) = rs.crimes.get(code) else { return Ok(None) };
    let err = |message: String| RuleError::Eval { matter: code.to_string(), message };

    let mut facts: HashMap<String, f64> = compiled.condition.facts.iter().map(|f| (f.clone(), 0.0)).collect();
    if let Some(given) = env.body.get("facts").and_then(Value::as_object) {
        for (k, v) in given {
            if let Some(n) = v.as_f64() {
                facts.insert(k.clone(), n);
            }
        }
    }
    let party = env.body.get("party").cloned().unwrap_or(Value::Null);
    let party_kind = party
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| if party.get("uscc").is_some() { "organisation".into() } else { "individual".into() });
    let mut party_map: HashMap<String, String> = HashMap::new();
    party_map.insert("kind".into(), party_kind);
    party_map.insert("name".into(), party.get("name").and_then(Value::as_str).unwrap_or_default().into());
    let region = env
        .body
        .pointer("/location/region")
        .or_else(|| env.body.get("region"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();

    let own: Vec<PriorPenalty> =
        priors.iter().filter(|p| p.msg_id != env.id || p.sender != env.sender).cloned().collect();
    let own = Arc::new(own);
    let on = reference_date(&env.body, &env.sent_at);
    let mut ctx = Context::default();
    ctx.add_variable("facts", facts.clone()).map_err(|e| err(e.to_string()))?;
    ctx.add_variable("party", party_map).map_err(|e| err(e.to_string()))?;
    ctx.add_variable("matter", code.to_string()).map_err(|e| err(e.to_string()))?;
    ctx.add_variable("region", region).map_err(|e| err(e.to_string()))?;
    ctx.add_variable("type", env.kind.as_str().to_string()).map_err(|e| err(e.to_string()))?;
    let history = own.clone();
    ctx.add_function("prior_penalties", move |args: Arguments| -> Result<f64, ExecutionError> {
        let window = match args.0.first() {
            Some(Cel::Duration(d)) => *d,
            _ => return Err(ExecutionError::function_error("prior_penalties", "first argument must be a duration")),
        };
        let matter = match args.0.get(1) {
            Some(Cel::String(s)) => Some(s.to_string()),
            None => None,
            _ => {
                return Err(ExecutionError::function_error("prior_penalties", "second argument must be a matter code"));
            }
        };
        let from = on - chrono::Duration::days(window.num_days());
        Ok(history
            .iter()
            .filter(|p| p.decided_on >= from && p.decided_on <= on)
            .filter(|p| matter.as_deref().is_none_or(|m| p.matter.as_deref() == Some(m)))
            .count() as f64)
    })
    .map_err(|e| err(e.to_string()))?;
    let holds = match compiled.condition.program.execute(&ctx) {
        Ok(Cel::Bool(b)) => b,
        Ok(other) => return Err(err(format!("gave {other:?}, not true or false"))),
        Err(e) => return Err(err(e.to_string())),
    };
    if !holds {
        return Ok(None);
    }
    let c = &compiled.crime;
    Ok(Some(CrimeFinding {
        matter: code.to_string(),
        offence: c.offence.clone(),
        police_unit: c.police_unit.clone(),
        rule: format!("crime:{code}"),
        condition: c.when.clone(),
        source: c.source.clone(),
        effective: c.effective.clone(),
        facts: facts.into_iter().filter(|(k, _)| compiled.condition.facts.contains(k)).collect(),
        prior_penalties: own.len(),
    }))
}
