//! Helpers shared by the end-to-end modules: reading the hub's answers
//! (error pointers, traces, cases), checking what a receiver got, and the
//! messages the tests send besides `sample_clue`.

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{Delivery, TestHub, eventually};

/// How long anything asynchronous may take before a test fails. Generous:
/// the machine is small and tests run in parallel.
pub const WAIT: Duration = Duration::from_secs(15);

/// Every request any receiver got, failed and duplicate ones included.
pub fn total_hits(hub: &TestHub) -> usize {
    hub.receivers.values().map(|r| r.hits()).sum()
}

/// Unique deliveries over all receivers.
pub fn total_deliveries(hub: &TestHub) -> usize {
    hub.receivers.values().map(|r| r.deliveries().len()).sum()
}

/// Waits until `org` has a delivery of message `id`; returns it.
pub async fn delivered(hub: &TestHub, org: &str, id: &str) -> anyhow::Result<Delivery> {
    let r = hub.receiver(org);
    eventually(WAIT, &format!("{id} at {org}"), || async {
        r.deliveries().into_iter().find(|d| d.header("xj-message-id") == Some(id))
    })
    .await
}

/// The `pointer` of each entry of an error body's `details`.
pub fn pointers(err: &Value) -> Vec<String> {
    err["details"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["pointer"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Asserts the error shape of docs/api.md and the code; returns the body.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "unexpected answer: {body}");
    assert_eq!(body["error"], want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "error without a message: {body}");
    assert!(body["details"].is_array(), "error without details: {body}");
}

/// The hub's public key and key id, from `GET /v1/keys`.
pub async fn hub_key(hub: &TestHub) -> anyhow::Result<(String, String)> {
    let (status, keys) = hub.get("/v1/keys", &hub.token("qh-market")).await?;
    assert_eq!(status, 200, "{keys}");
    let key = &keys["keys"][0];
    // The suite runs with either algorithm (XJ_HUB__SIGNATURE=sm2, docs/development.md).
    let alg = match hub.settings.hub.signature {
        xj_bus::signing::Alg::Ed25519 => "Ed25519",
        xj_bus::signing::Alg::Sm2 => "SM2",
    };
    assert_eq!(key["alg"], alg, "{keys}");
    Ok((key["kid"].as_str().unwrap_or_default().to_owned(), key["public_key"].as_str().unwrap_or_default().to_owned()))
}

/// Checks the headers (docs/api.md, "Delivery") of a webhook delivery against the receipt
/// the sender got, and the signature against the served key.
pub fn assert_delivery(d: &Delivery, receipt: &Value, kid: &str, public_key: &str) {
    let id = receipt["id"].as_str().unwrap_or_default();
    assert_eq!(d.header("xj-message-id"), Some(id));
    assert_eq!(d.header("xj-case"), receipt["case"].as_str());
    assert!(
        d.header("xj-delivery-attempt").and_then(|a| a.parse::<u32>().ok()).is_some_and(|a| a >= 1),
        "attempt header: {:?}",
        d.header("xj-delivery-attempt")
    );
    let tp = d.header("traceparent").unwrap_or_default();
    let trace_id = receipt["trace_id"].as_str().unwrap_or_default();
    assert_eq!(trace_id.len(), 32, "receipt trace id {trace_id:?}");
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "traceparent {tp:?}");
    assert_eq!(parts[1], trace_id, "traceparent {tp:?} continues the trace");
    let sig = d.header("xj-signature").unwrap_or_default();
    assert!(sig.split(',').any(|p| p.trim() == format!("keyid={kid}")), "signature header {sig:?} names key {kid}");
    xj_bus::signing::verify_header(public_key, sig, &d.body)
        .unwrap_or_else(|e| panic!("Xj-Signature does not verify: {e}"));
    // The body is the canonical message with the hub's case filled in.
    assert_eq!(d.json["id"], receipt["id"]);
    assert_eq!(d.json["case"], receipt["case"]);
}

/// A referral reply answering `reply_to`; `reason` omitted when `None`.
pub fn sample_reply(id: &str, sender: &str, reply_to: &str, decision: &str, reason: Option<&str>) -> Value {
    let mut body = json!({
        "decision": decision,
        "case_no": "东关综执立〔2026〕3号",
        "received": { "volumes": 1, "pages": 12, "items": 0 }
    });
    if let Some(r) = reason {
        body["reason"] = r.into();
    }
    json!({
        "id": id,
        "type": "referral_reply",
        "sender": sender,
        "recipient": null,
        "case": null,
        "reply_to": reply_to,
        "sent_at": "2026-11-21T10:00:00+08:00",
        "classification": "internal",
        "body": body
    })
}

/// `GET /v1/messages/{id}/trace` as `token`.
pub async fn trace(hub: &TestHub, id: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    hub.get(&format!("/v1/messages/{id}/trace"), token).await
}

/// The steps of a trace, in order.
pub fn steps(trace: &Value) -> Vec<String> {
    trace["hops"]
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["step"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// Waits until the operator's trace of `id` has a hop with `step`; returns
/// the trace.
pub async fn wait_for_step(hub: &TestHub, id: &str, step: &str) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("a {step:?} hop on {id}"), || async {
        let (status, t) = trace(hub, id, &op).await.ok()?;
        (status == 200 && steps(&t).iter().any(|s| s == step)).then_some(t)
    })
    .await
}

/// The routing hop (`routed` or `unplaced`) of a trace.
pub fn routing_hop(trace: &Value) -> Value {
    trace["hops"]
        .as_array()
        .and_then(|a| a.iter().find(|h| h["step"] == "routed" || h["step"] == "unplaced").cloned())
        .unwrap_or(Value::Null)
}

/// Waits until the operator sees `case` with at least `messages` messages.
pub async fn wait_for_case(hub: &TestHub, case: &str, messages: usize) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("case {case} with {messages} message(s)"), || async {
        let (status, c) = hub.get(&format!("/v1/cases/{case}"), &op).await.ok()?;
        (status == 200 && c["messages"].as_array().is_some_and(|m| m.len() >= messages)).then_some(c)
    })
    .await
}

/// Waits until the trace of `id`, as `token` sees it, has `n` hops.
pub async fn eventually_steps(hub: &TestHub, id: &str, token: &str, n: usize) -> anyhow::Result<Value> {
    eventually(WAIT, &format!("{n} hops on {id}"), || async {
        let (status, t) = trace(hub, id, token).await.ok()?;
        (status == 200 && steps(&t).len() >= n).then_some(t)
    })
    .await
}

/// Installs Debian's `package` when `file` (something it provides) is
/// missing — as root, as CI runs; otherwise says what to install.
pub fn ensure_debian(package: &str, file: &str) {
    use std::process::Command;
    if std::path::Path::new(file).exists() {
        return;
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(root, "this test needs {file} (Debian: apt-get install -y {package}); install it and run again");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=600"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if apt(&["install", "-y", "-qq", package]) {
        return;
    }
    assert!(apt(&["update", "-qq"]), "apt-get update failed");
    assert!(apt(&["install", "-y", "-qq", package]), "apt-get install {package} failed");
}

/// The text of a PDF as poppler's `pdftotext` reads it (installed when
/// missing), whitespace removed: a table cell or a paragraph wraps wherever
/// its line is full, even inside a name.
pub fn pdf_text(pdf: &[u8]) -> String {
    ensure_debian("poppler-utils", "/usr/bin/pdftotext");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("doc.pdf");
    std::fs::write(&path, pdf).expect("written");
    let out = std::process::Command::new("pdftotext").args(["-layout", "-enc", "UTF-8"]).arg(&path).arg("-").output();
    let out = out.expect("pdftotext runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).chars().filter(|c| !c.is_whitespace()).collect()
}
