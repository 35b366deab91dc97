//! Cross-field validation: everything that serde alone cannot say.

use std::collections::HashSet;
use std::path::Path;

use xj_model::{RegionCode, ids::IdError};

use crate::load::Unlocated;
use crate::{OrgKind, Settings};

fn bad(key: impl Into<String>, message: impl Into<String>) -> Unlocated {
    Unlocated { key: key.into(), message: message.into() }
}

fn id_ok(id: &str) -> bool {
    (2..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A Standard Webhooks secret: `whsec_` and the base64 of 24 to 64 random
/// bytes (the form the verification libraries take).
fn webhook_secret_ok(secret: &str) -> Result<(), String> {
    use base64::Engine;
    let Some(b64) = secret.strip_prefix("whsec_") else {
        return Err("must start with \"whsec_\" (then the base64 of 24 to 64 random bytes)".into());
    };
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(key) if (24..=64).contains(&key.len()) => Ok(()),
        Ok(key) => Err(format!("is {} bytes after \"whsec_\"; use 24 to 64 random bytes", key.len())),
        Err(e) => Err(format!("is not base64 after \"whsec_\": {e}")),
    }
}

/// Resolves credentials given as files or environment variables.
fn resolve_secret(
    key: &str,
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
    env: &Option<String>,
    base: &Path,
    out: &mut Vec<Unlocated>,
) -> Option<String> {
    let given = [inline.is_some(), file.is_some(), env.is_some()].iter().filter(|b| **b).count();
    if given > 1 {
        let f = key.rsplit('.').next().unwrap_or(key);
        out.push(bad(key, format!("give only one of {f}, {f}_file, {f}_env")));
        return None;
    }
    if let Some(t) = inline {
        return Some(t.clone());
    }
    if let Some(f) = file {
        let path = if f.is_absolute() { f.clone() } else { base.join(f) };
        return match std::fs::read_to_string(&path) {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                out.push(bad(format!("{key}_file"), format!("cannot read {}: {e}", path.display())));
                None
            }
        };
    }
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(t) => Some(t),
            Err(_) => {
                out.push(bad(format!("{key}_env"), format!("environment variable {var} is not set")));
                None
            }
        };
    }
    None
}

pub(crate) fn validate(s: &mut Settings, base: &Path) -> Vec<Unlocated> {
    let mut out = Vec::new();

    if !(1..=86_400).contains(&s.ledger.head_every_s) {
        out.push(bad("ledger.head_every_s", "must be 1 to 86400 seconds"));
    }
    if let Some(url) = &s.ledger.timestamp_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        out.push(bad("ledger.timestamp_url", format!("{url:?} must be an http:// or https:// URL")));
    }
    if !(100..=120_000).contains(&s.ledger.timestamp_timeout_ms) {
        out.push(bad("ledger.timestamp_timeout_ms", "must be 100 to 120000 ms"));
    }

    let op = s.operator.clone();
    match resolve_secret("operator.token", &op.token, &op.token_file, &op.token_env, base, &mut out) {
        Some(t) if t.len() >= 16 => s.operator.token = Some(t),
        Some(_) => out.push(bad("operator.token", "must be at least 16 characters")),
        None => out.push(bad("operator.token", "an operator credential is required (token, token_file or token_env)")),
    }
    if s.nats.replicas == 0 || s.nats.replicas > 5 {
        out.push(bad("nats.replicas", "must be between 1 and 5"));
    }
    for (key, v) in [("nats.max_bytes", s.nats.max_bytes), ("nats.max_msgs", s.nats.max_msgs)] {
        if v.is_some_and(|v| v < 1) {
            out.push(bad(key, "must be at least 1 (leave it out for no limit)"));
        }
    }
    if s.http.max_in_flight == 0 {
        out.push(bad("http.max_in_flight", "must be at least 1"));
    }
    for (key, ms) in [
        ("http.header_read_timeout_ms", s.http.header_read_timeout_ms),
        ("http.body_read_timeout_ms", s.http.body_read_timeout_ms),
        ("http.request_timeout_ms", s.http.request_timeout_ms),
    ] {
        if !(100..=3_600_000).contains(&ms) {
            out.push(bad(key, "must be between 100 and 3600000 (an hour)"));
        }
    }
    if s.http.max_connections_per_client == 0 {
        out.push(bad("http.max_connections_per_client", "must be at least 1"));
    }
    if !(1024..=262_144).contains(&s.http.max_header_bytes) {
        out.push(bad("http.max_header_bytes", "must be between 1024 and 262144"));
    }
    if let Some(origin) = &s.console.origin
        && !origin_ok(origin)
    {
        out.push(bad(
            "console.origin",
            format!("{origin:?} is not an origin: scheme and host (and port), e.g. \"https://hub.example.gov.cn\""),
        ));
    }
    rate_ok(&s.console.sign_in_failures, "console.sign_in_failures", &mut out);
    if s.nats.ack_wait_ms < 1000 {
        out.push(bad("nats.ack_wait_ms", "must be at least 1000"));
    }
    let n = s.nats.clone();
    if let Some(p) = resolve_secret("nats.password", &n.password, &n.password_file, &n.password_env, base, &mut out) {
        s.nats.password = Some(p);
    }
    rate_ok(&s.http.rate_limit, "http.rate_limit", &mut out);
    for (i, key) in s.hub.previous_public_keys.iter().enumerate() {
        if let Err(e) = any_public_key(key) {
            out.push(bad(format!("hub.previous_public_keys[{i}]"), e));
        }
    }
    const PENALTIES: [&str; 11] = [
        "warning",
        "fine",
        "confiscation",
        "suspension",
        "licence_revocation",
        "qualification_lowering",
        "production_restriction",
        "closure",
        "practice_ban",
        "detention",
        "other",
    ];
    for (i, kind) in s.major_penalty.kinds.iter().enumerate() {
        if !PENALTIES.contains(&kind.as_str()) {
            out.push(bad(format!("major_penalty.kinds[{i}]"), format!("{kind:?} is not a penalty kind")));
        }
    }
    for (name, steps) in [("county", &s.dispute.county), ("town_county", &s.dispute.town_county)] {
        let Some(steps) = steps else { continue };
        if !steps.iter().any(|st| st.holder != crate::DisputeHolder::Negotiation) {
            out.push(bad(format!("dispute.{name}"), "needs at least one step held by a supervisor, who designates"));
        }
        for (i, st) in steps.iter().enumerate() {
            if st.holder == crate::DisputeHolder::Negotiation && i > 0 {
                out.push(bad(format!("dispute.{name}[{i}].holder"), "negotiation can only be the first step"));
            }
            if !(1..=60).contains(&st.working_days) {
                out.push(bad(format!("dispute.{name}[{i}].working_days"), "must be between 1 and 60"));
            }
        }
    }
    for (i, name) in s.report.indicators.iter().enumerate() {
        let ok = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !ok {
            out.push(bad(format!("report.indicators[{i}]"), format!("{name:?} is not a name like four_lists_cases")));
        }
    }
    if !(1..=28).contains(&s.report.due_day) {
        out.push(bad("report.due_day", "must be a day between 1 and 28 (every month has it)"));
    }
    if s.courier.max_attempts == 0 {
        out.push(bad("courier.max_attempts", "must be at least 1"));
    }

    let dir = s.formats.dir.as_ref().map(|d| if d.is_absolute() { d.clone() } else { base.join(d) });
    match xj_mapping::Formats::load(dir.as_deref()) {
        Ok(f) => s.mappings = std::sync::Arc::new(f),
        Err(e) => out.push(bad("formats.dir", e.to_string())),
    }

    let mut ids = HashSet::new();
    let mut tokens = HashSet::new();
    let op_token = s.operator.token.clone();
    for (i, org) in s.org.iter_mut().enumerate() {
        let k = |f: &str| format!("org[{i}].{f}");
        if !id_ok(&org.id) {
            out.push(bad(k("id"), format!("{:?} must match [a-z0-9-]{{2,40}}", org.id)));
        }
        if org.id == "hub" {
            out.push(bad(k("id"), "\"hub\" is reserved for messages the hub itself sends"));
        }
        if !ids.insert(org.id.clone()) {
            out.push(bad(k("id"), format!("duplicate organisation id {:?}", org.id)));
        }
        match RegionCode::parse(&org.region) {
            Ok(r) if org.kind == OrgKind::TownGovernment && !r.is_town() => {
                out.push(bad(k("region"), "a town government needs a 9-digit town code"))
            }
            Ok(_) => {}
            Err(e) => out.push(bad(k("region"), format!("{:?} is not a region code: {}", org.region, msg(&e)))),
        }
        match resolve_secret(&k("token"), &org.token, &org.token_file, &org.token_env, base, &mut out) {
            Some(t) if t.len() < 16 => out.push(bad(k("token"), "must be at least 16 characters")),
            Some(t) => {
                if !tokens.insert(t.clone()) || Some(&t) == op_token.as_ref() {
                    out.push(bad(k("token"), "the same token is used twice: each credential must be unique"));
                }
                org.secret = t;
            }
            None => out.push(bad(k("token"), "a credential is required (token, token_file or token_env)")),
        }
        let current = resolve_secret(
            &k("webhook_secret"),
            &org.webhook_secret,
            &org.webhook_secret_file,
            &org.webhook_secret_env,
            base,
            &mut out,
        );
        if current.is_none() && !org.previous_webhook_secrets.is_empty() {
            out.push(bad(k("previous_webhook_secrets"), "a rotation needs the new webhook_secret as well"));
        }
        org.webhook_secrets = current.into_iter().chain(org.previous_webhook_secrets.iter().cloned()).collect();
        for (i, w) in org.webhook_secrets.iter().enumerate() {
            if let Err(why) = webhook_secret_ok(w) {
                let key = if i == 0 { k("webhook_secret") } else { k("previous_webhook_secrets") };
                out.push(bad(key, why));
            }
        }
        let d = &org.deliver;
        match [d.webhook.is_some(), d.nats, d.pull].iter().filter(|x| **x).count() {
            0 => out.push(bad(k("deliver"), "give { webhook = \"http://…\" }, { nats = true } or { pull = true }")),
            1 => {}
            _ => out.push(bad(k("deliver"), "choose one of webhook, nats and pull")),
        }
        if let Some(n) = d.batch {
            if d.webhook.is_none() {
                out.push(bad(k("deliver"), "batch is for webhook delivery: { webhook = \"…\", batch = N }"));
            } else if !(1..=500).contains(&n) {
                out.push(bad(k("deliver"), format!("batch = {n}: give 1 to 500 messages a POST")));
            }
            if org.format != "canonical" {
                out.push(bad(
                    k("deliver"),
                    "batches carry canonical JSON: an organisation with a native format receives one document a POST",
                ));
            }
            if org.sign_receipts {
                out.push(bad(
                    k("sign_receipts"),
                    "a batch has no per-message receipt: batched delivery and sign_receipts do not go together",
                ));
            }
        }
        if d.http2 && d.webhook.is_none() {
            out.push(bad(k("deliver"), "http2 is for webhook delivery: { webhook = \"http://…\", http2 = true }"));
        }
        if let Some(url) = &d.webhook
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            out.push(bad(k("deliver"), format!("webhook {url:?} must be an http:// or https:// URL")));
        }
        if d.pull_alert_hours.is_some() && !d.pull {
            out.push(bad(k("deliver"), "pull_alert_hours is for { pull = true } organisations"));
        }
        trust_checks(org, &k, &mut out);
        if !s.mappings.knows(&org.format) {
            let known = s.mappings.names().join(", ");
            out.push(bad(k("format"), format!("unknown format {:?}; known: canonical, {known}", org.format)));
        }
    }

    if !s.org.is_empty() && !s.org.iter().any(|o| o.kind == OrgKind::CoordinationOffice) {
        out.push(bad(
            "org",
            "no coordination_office organisation: items no rule can place must go somewhere (docs/rules.md)",
        ));
    }

    let towns: HashSet<&str> =
        s.org.iter().filter(|o| o.kind == OrgKind::TownGovernment).map(|o| o.region.as_str()).collect();
    let units: HashSet<&str> = s.org.iter().filter_map(|o| o.unit.as_deref()).collect();
    let mut codes = HashSet::new();
    for (i, m) in s.matter.iter().enumerate() {
        let k = |f: &str| format!("matter[{i}].{f}");
        if m.code.is_empty() || !m.code.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
            out.push(bad(k("code"), format!("{:?} must match [A-Za-z0-9_.-]+", m.code)));
        }
        if !codes.insert(m.code.clone()) {
            out.push(bad(k("code"), format!("duplicate matter code {:?}", m.code)));
        }
        if !m.competent.is_enforcement() {
            out.push(bad(k("competent"), "the competent organisation must be an administrative enforcement kind"));
        }
        for (j, t) in m.devolved_to.iter().enumerate() {
            if !towns.contains(t.as_str()) {
                out.push(bad(
                    format!("matter[{i}].devolved_to[{j}]"),
                    format!("matter {}: no town government with region {t:?} is configured", m.code),
                ));
            }
        }
        if let Some(c) = &m.crime
            && let Err(e) = crate::condition::compile(&c.when)
        {
            out.push(bad(
                format!("matter[{i}].crime.when"),
                format!("matter {}: the condition does not compile: {e}", m.code),
            ));
        }
        if let Some(c) = &m.crime
            && !units.contains(c.police_unit.as_str())
        {
            out.push(bad(
                format!("matter[{i}].crime.police_unit"),
                format!("matter {}: no organisation has unit {:?}", m.code, c.police_unit),
            ));
        }
    }
    out
}

/// What an organisation gives to be trusted: its signature key, NATS nkey,
/// limits and subscriptions (docs/security.md).
fn trust_checks(org: &crate::Org, k: &dyn Fn(&str) -> String, out: &mut Vec<Unlocated>) {
    if let Some(key) = &org.public_key
        && let Err(e) = public_key(org.key_alg, key)
    {
        out.push(bad(k("public_key"), e));
    }
    if org.sign_receipts && org.public_key.is_none() {
        out.push(bad(k("sign_receipts"), "needs the organisation's public_key to check its receipts with"));
    }
    if let Some(nkey) = &org.nkey
        && !(nkey.len() == 56
            && nkey.starts_with('U')
            && nkey.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()))
    {
        out.push(bad(k("nkey"), "must be a user's public nkey: 56 characters starting with U"));
    }
    if org.max_body_bytes == Some(0) {
        out.push(bad(k("max_body_bytes"), "must be at least 1"));
    }
    if let Some(r) = &org.rate_limit {
        rate_ok(r, &k("rate_limit"), out);
    }
    const KINDS: [&str; 6] =
        ["licence", "penalty_decision", "inspection", "complaint_result", "statistics", "normative_document"];
    for (j, sub) in org.subscribe.iter().enumerate() {
        let at = k(&format!("subscribe[{j}]"));
        if !KINDS.contains(&sub.kind.as_str()) {
            out.push(bad(
                format!("{at}.kind"),
                format!("{:?} is not an info_share kind; known: {}", sub.kind, KINDS.join(", ")),
            ));
        }
        let Some(r) = &sub.region else { continue };
        if let Err(e) = RegionCode::parse(r) {
            out.push(bad(format!("{at}.region"), format!("{r:?} is not a region code: {}", msg(&e))));
        } else if org.kind == OrgKind::TownGovernment && *r != org.region {
            // 信息共享按属地: a town sees its own region, not its neighbours'
            // nor the whole county's.
            out.push(bad(
                format!("{at}.region"),
                format!("a town government subscribes only to its own region {:?}", org.region),
            ));
        }
    }
}

/// `http(s)://host[:port]`, nothing after: what a browser sends as `Origin`.
fn origin_ok(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://")) else {
        return false;
    };
    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

fn rate_ok(r: &crate::RateLimit, key: &str, out: &mut Vec<Unlocated>) {
    if !(r.per_second > 0.0 && r.per_second.is_finite()) || r.burst == 0 {
        out.push(bad(key, "per_second must be above 0 and burst at least 1"));
    }
}

/// Checks a base64 Ed25519 public key (32 bytes, a valid curve point).
pub fn ed25519_public_key(b64: &str) -> Result<[u8; 32], String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| format!("not base64: {e}"))?;
    let raw: [u8; 32] = raw.try_into().map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
    ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| "not a valid Ed25519 public key".to_string())?;
    Ok(raw)
}

/// Checks a base64 SM2 public key: the 65-byte uncompressed point
/// (`04‖x‖y`), on the curve.
pub fn sm2_public_key(b64: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|e| format!("not base64: {e}"))?;
    if raw.len() != 65 || raw[0] != 4 {
        return Err("an SM2 public key is the 65-byte uncompressed point 04‖x‖y".into());
    }
    sm2::PublicKey::from_sec1_bytes(&raw).map_err(|_| "not a point of the SM2 curve".to_string())?;
    Ok(raw)
}

/// Checks a public key of `alg`.
pub fn public_key(alg: crate::SignatureAlg, b64: &str) -> Result<(), String> {
    match alg {
        crate::SignatureAlg::Ed25519 => ed25519_public_key(b64).map(|_| ()),
        crate::SignatureAlg::Sm2 => sm2_public_key(b64).map(|_| ()),
    }
}

/// Checks a public key of either algorithm, told apart by length (32 bytes
/// Ed25519, 65 SM2): the keys of earlier rotations may be of both.
pub fn any_public_key(b64: &str) -> Result<(), String> {
    use base64::Engine;
    let len = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map(|r| r.len()).unwrap_or(0);
    match len {
        65 => sm2_public_key(b64).map(|_| ()),
        _ => ed25519_public_key(b64).map(|_| ()).map_err(|e| format!("{e} (or an SM2 key of 65 bytes)")),
    }
}

fn msg(e: &IdError) -> String {
    e.to_string()
}
