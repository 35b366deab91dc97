//! The JSON Schemas of `schemas/`, embedded at build time and compiled once.
//!
//! Body schemas refer to `common.schema.json#/$defs/...`; rather than wire a
//! resolver, the shared definitions are inlined into each body schema when it
//! is compiled, so one compiled validator per type answers on its own.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::{Envelope, MessageType, Problem, checks};

const ENVELOPE: &str = include_str!("../../../schemas/envelope.schema.json");
const COMMON: &str = include_str!("../../../schemas/messages/common.schema.json");

fn body_source(t: MessageType) -> &'static str {
    match t {
        MessageType::ClueReferral => {
            include_str!("../../../schemas/messages/clue_referral.schema.json")
        }
        MessageType::CaseReferral => {
            include_str!("../../../schemas/messages/case_referral.schema.json")
        }
        MessageType::ReferralReply => {
            include_str!("../../../schemas/messages/referral_reply.schema.json")
        }
        MessageType::ReferralOutcome => {
            include_str!("../../../schemas/messages/referral_outcome.schema.json")
        }
        MessageType::CriminalHandoff => {
            include_str!("../../../schemas/messages/criminal_handoff.schema.json")
        }
        MessageType::HandoffReceipt => {
            include_str!("../../../schemas/messages/handoff_receipt.schema.json")
        }
        MessageType::PoliceDecision => {
            include_str!("../../../schemas/messages/police_decision.schema.json")
        }
        MessageType::ReconsiderationRequest => {
            include_str!("../../../schemas/messages/reconsideration_request.schema.json")
        }
        MessageType::ReconsiderationDecision => {
            include_str!("../../../schemas/messages/reconsideration_decision.schema.json")
        }
        MessageType::InfoShare => include_str!("../../../schemas/messages/info_share.schema.json"),
        MessageType::AssistanceRequest => {
            include_str!("../../../schemas/messages/assistance_request.schema.json")
        }
        MessageType::AssistanceReply => {
            include_str!("../../../schemas/messages/assistance_reply.schema.json")
        }
        MessageType::JurisdictionDesignation => {
            include_str!("../../../schemas/messages/jurisdiction_designation.schema.json")
        }
        MessageType::SupervisionAlert => {
            include_str!("../../../schemas/messages/supervision_alert.schema.json")
        }
        MessageType::SupervisionNotice => {
            include_str!("../../../schemas/messages/supervision_notice.schema.json")
        }
        MessageType::SupervisionReply => {
            include_str!("../../../schemas/messages/supervision_reply.schema.json")
        }
        MessageType::MonthlyReport => {
            include_str!("../../../schemas/messages/monthly_report.schema.json")
        }
        MessageType::ComplaintUpdate => {
            include_str!("../../../schemas/messages/complaint_update.schema.json")
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} is not valid JSON: {source}")]
    Json { name: String, source: serde_json::Error },
    #[error("schema {name} does not compile: {message}")]
    Compile { name: String, message: String },
}

/// A message that passed the envelope schema, its body schema and the
/// semantic checks.
#[derive(Debug, Clone)]
pub struct Validated {
    pub envelope: Envelope,
}

pub struct Schemas {
    envelope: Validator,
    bodies: HashMap<MessageType, Validator>,
}

impl Schemas {
    /// Compiles every embedded schema. Fails only if a schema file in the
    /// repository is broken, which the tests catch.
    pub fn load() -> Result<Self, SchemaError> {
        let common: Value =
            serde_json::from_str(COMMON).map_err(|source| SchemaError::Json { name: "common".into(), source })?;
        let envelope = compile("envelope", &parse("envelope", ENVELOPE)?)?;
        let mut bodies = HashMap::new();
        for t in MessageType::ALL {
            let mut schema = parse(t.as_str(), body_source(t))?;
            inline_common(&mut schema, &common);
            bodies.insert(t, compile(t.as_str(), &schema)?);
        }
        Ok(Self { envelope, bodies })
    }

    /// Validates a submitted document and returns **every** problem found,
    /// each with its JSON pointer: envelope, then body, then semantic checks.
    pub fn validate(&self, doc: &Value) -> Result<Validated, Vec<Problem>> {
        let mut problems = collect(&self.envelope, doc, "");
        let kind = doc.get("type").and_then(Value::as_str).and_then(MessageType::parse);
        if let (Some(kind), Some(body)) = (kind, doc.get("body").filter(|b| b.is_object())) {
            let body_problems = collect(&self.bodies[&kind], body, "/body");
            // Every problem at once (docs/api.md, "Errors"): the checks run even when
            // the schema found problems (they only read what has the right
            // shape), but say nothing more about a place the schema already
            // flagged.
            let checked: Vec<Problem> = checks::body(kind, body)
                .into_iter()
                .filter(|c| !body_problems.iter().any(|s| overlaps(&s.pointer, &c.pointer)))
                .collect();
            problems.extend(body_problems);
            problems.extend(checked);
        }
        if doc.get("classification").and_then(Value::as_str) == Some("secret") {
            problems.push(Problem::new(
                "/classification",
                "secret information is never carried by the hub (保密: not shareable)",
            ));
        }
        if let Some(sent_at) = doc.get("sent_at").and_then(Value::as_str)
            && chrono::DateTime::parse_from_rfc3339(sent_at).is_err()
            && !problems.iter().any(|p| p.pointer == "/sent_at")
        {
            problems.push(Problem::new("/sent_at", "must be an RFC 3339 date-time with a UTC offset"));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        // Read from the document in place: no copy of the whole of it.
        match <Envelope as serde::Deserialize>::deserialize(doc) {
            Ok(envelope) => Ok(Validated { envelope }),
            Err(e) => Err(vec![Problem::new("", format!("envelope does not decode: {e}"))]),
        }
    }

    /// Validates a body alone (used for messages the hub itself writes).
    pub fn validate_body(&self, kind: MessageType, body: &Value) -> Vec<Problem> {
        collect(&self.bodies[&kind], body, "/body")
    }
}

fn parse(name: &str, src: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(src).map_err(|source| SchemaError::Json { name: name.into(), source })
}

fn compile(name: &str, schema: &Value) -> Result<Validator, SchemaError> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| SchemaError::Compile { name: name.into(), message: e.to_string() })
}

fn collect(validator: &Validator, instance: &Value, prefix: &str) -> Vec<Problem> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let mut out: Vec<Problem> = validator
        .iter_errors(instance)
        .flat_map(|e| {
            let pointer = format!("{prefix}{}", e.instance_path());
            match e.kind() {
                // A missing property is best located where it should have been.
                Kind::Required { property } if property.is_string() => {
                    let p = property.as_str().unwrap_or_default();
                    vec![Problem::new(format!("{pointer}/{}", escape_pointer(p)), "is required")]
                }
                // An unexpected one, where it is.
                Kind::AdditionalProperties { unexpected } if !unexpected.is_empty() => unexpected
                    .iter()
                    .map(|p| Problem::new(format!("{pointer}/{}", escape_pointer(p)), "is not an allowed property"))
                    .collect(),
                _ => vec![Problem::new(pointer, e.to_string())],
            }
        })
        .collect();
    out.dedup();
    out
}

/// True when one pointer is the other or lies inside it.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner == outer || inner.strip_prefix(outer).is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

fn inline_common(schema: &mut Value, common: &Value) {
    rewrite_refs(schema);
    let defs = common.get("$defs").cloned().unwrap_or(Value::Object(Map::new()));
    if let Value::Object(root) = schema {
        let target = root.entry("$defs").or_insert_with(|| Value::Object(Map::new()));
        if let (Value::Object(target), Value::Object(defs)) = (target, defs) {
            for (k, v) in defs {
                target.entry(k).or_insert(v);
            }
        }
    }
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get_mut("$ref")
                && let Some(rest) = r.strip_prefix("common.schema.json")
            {
                *r = rest.to_string();
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
