//! Receipts signed by the recipient (docs/security.md, "Signed receipts"):
//! an organisation with `sign_receipts = true` answers each webhook
//! delivery with `Xj-Receipt-Signature` over the message, itself, the
//! digest of the bytes it got and the time. An answer without one, or with
//! one that does not verify against its registered key, is no delivery (the
//! courier retries); a valid one is recorded in the trace and the ledger,
//! and verifies offline against the bytes delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use xj_bus::signing::{Alg, HubKey};
use xj_testkit::{TestHub, eventually, sample_clue};

const T: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Answers 200 without a receipt.
    Unsigned,
    /// Signs with a key that is not the one registered.
    WrongKey,
    Signed,
}

#[derive(Clone)]
struct Police {
    mode: Arc<Mutex<Mode>>,
    key: HubKey,
    wrong: HubKey,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn receive(
    axum::extract::State(p): axum::extract::State<Police>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (sender, id) = (h("xj-sender"), h("xj-message-id"));
    p.got.lock().unwrap_or_else(|e| e.into_inner()).push(body.to_vec());
    let mode = *p.mode.lock().unwrap_or_else(|e| e.into_inner());
    let at = chrono::Utc::now().to_rfc3339();
    let mut out = HeaderMap::new();
    let signer = match mode {
        Mode::Unsigned => None,
        Mode::WrongKey => Some(&p.wrong),
        Mode::Signed => Some(&p.key),
    };
    if let Some(k) = signer {
        let receipt = xj_bus::signing::sign_receipt(k, "police-1", (&sender, &id), "qh-rcpt", &body, &at);
        if let Ok(v) = receipt.parse() {
            out.insert("xj-receipt-signature", v);
        }
    }
    (StatusCode::OK, out, "stored")
}

/// The steps of `id`'s trace as its sender sees them.
async fn hops(hub: &TestHub, id: &str) -> Vec<Value> {
    match hub.get(&format!("/v1/messages/{id}/trace"), &hub.token("qh-market")).await {
        Ok((200, t)) => t["hops"].as_array().cloned().unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_owed_is_checked_recorded_and_verifies_offline() -> anyhow::Result<()> {
    let police = Police {
        mode: Arc::new(Mutex::new(Mode::Unsigned)),
        key: HubKey::generate(Alg::Ed25519),
        wrong: HubKey::generate(Alg::Ed25519),
        got: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/inbox", listener.local_addr()?);
    let app = axum::Router::new().fallback(receive).with_state(police.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let public = police.key.public_key_b64();
    let extra = format!(
        "[courier]\nmax_attempts = 20\nbackoff_initial_ms = 100\nbackoff_max_ms = 200\n\n\
         [[org]]\nid = \"qh-rcpt\"\nname = \"清河县南关镇人民政府\"\nkind = \"town_government\"\nregion = \"990101104\"\n\
         token = \"token-qh-rcpt-0123456789\"\ndeliver = {{ webhook = \"{url}\" }}\n\
         public_key = \"{public}\"\nsign_receipts = true\n"
    );
    let hub = TestHub::start(&extra).await?;
    let mut clue = sample_clue("RCPT-1", "qh-market", "FOOD-STALL", "990101101");
    clue["recipient"] = json!("qh-rcpt");
    let (s, r) = hub.submit("qh-market", &clue).await?;
    assert_eq!(s, 202, "{r}");

    // Answered without a receipt: an attempt, not a delivery.
    let missing = eventually(T, "an attempt refused for its missing receipt", || async {
        hops(&hub, "RCPT-1").await.into_iter().find(|h| {
            h["step"] == "attempt"
                && h["detail"]["error"].as_str().is_some_and(|e| e.contains("must sign its receipts"))
        })
    })
    .await?;
    assert!(missing["detail"]["error"].as_str().unwrap_or_default().contains("Xj-Receipt-Signature"), "{missing}");
    assert!(!hops(&hub, "RCPT-1").await.iter().any(|h| h["step"] == "delivered"));

    // Signed with another key: refused too.
    *police.mode.lock().unwrap_or_else(|e| e.into_inner()) = Mode::WrongKey;
    eventually(T, "an attempt refused for a receipt that does not verify", || async {
        hops(&hub, "RCPT-1").await.into_iter().find(|h| {
            h["step"] == "attempt" && h["detail"]["error"].as_str().is_some_and(|e| e.contains("does not verify"))
        })
    })
    .await?;
    assert!(!hops(&hub, "RCPT-1").await.iter().any(|h| h["step"] == "delivered"));

    // Signed with its key: delivered, the receipt in the trace.
    *police.mode.lock().unwrap_or_else(|e| e.into_inner()) = Mode::Signed;
    let delivered = eventually(T, "the delivery with its receipt", || async {
        hops(&hub, "RCPT-1").await.into_iter().find(|h| h["step"] == "delivered")
    })
    .await?;
    let receipt: xj_bus::signing::SignedReceipt = serde_json::from_value(delivered["detail"]["receipt"].clone())
        .map_err(|e| anyhow::anyhow!("no receipt in {delivered}: {e}"))?;
    assert_eq!((receipt.alg.as_str(), receipt.keyid.as_str()), ("ed25519", "police-1"), "{delivered}");
    let signature = receipt.header();
    let body = police.got.lock().unwrap_or_else(|e| e.into_inner()).last().cloned().unwrap_or_default();
    assert_eq!(receipt.sha256, hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)), "{receipt:?}");
    // Offline, with nothing but the recipient's key, the receipt and the bytes.
    let checked = xj_bus::signing::verify_receipt(
        Alg::Ed25519,
        &public,
        &signature,
        ("qh-market", "RCPT-1"),
        "qh-rcpt",
        &body,
        chrono::Utc::now(),
    )
    .map_err(anyhow::Error::msg)?;
    assert_eq!(checked, receipt, "the trace shows the receipt as checked");
    let mut changed = body.clone();
    changed[5] ^= 1;
    assert!(
        xj_bus::signing::verify_receipt(
            Alg::Ed25519,
            &public,
            &signature,
            ("qh-market", "RCPT-1"),
            "qh-rcpt",
            &changed,
            chrono::Utc::now()
        )
        .is_err(),
        "the receipt is for the bytes delivered"
    );
    // And the ledger recorded it.
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    eventually(T, "the receipt in the ledger", || async {
        xj_ledger::dump(&js).await.ok()?.contains(&receipt.sig).then_some(())
    })
    .await?;

    // The message's evidence package: verifies offline with the receipt,
    // and names what was changed.
    let key = HubKey::load_or_create_as(&hub.settings.signing_key_path(), hub.settings.hub.signature)?;
    let scope = xj_ledger::bundle::Scope::Message { sender: "qh-market".into(), id: "RCPT-1".into() };
    let keys = |org: &str| {
        let o = hub.settings.org(org)?;
        Some((o.key_alg.as_str().to_string(), o.public_key.clone()?))
    };
    let package = xj_ledger::bundle::export(&js, &scope, &keys, &key).await?;
    assert_eq!(package["message"]["id"], "RCPT-1");
    assert_eq!(package["party_keys"]["qh-rcpt"]["public_key"], public.as_str());
    let v = xj_ledger::bundle::verify_bundle(&package).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!((v.receipts, v.messages), (1, 1), "{v:?}");
    // A changed receipt: named as its record.
    let text = package.to_string();
    let other = if receipt.sig.starts_with('Z') { "Y" } else { "Z" };
    let flipped = text.replacen(&receipt.sig, &format!("{other}{}", &receipt.sig[1..]), 1);
    assert_ne!(flipped, text);
    let e = xj_ledger::bundle::verify_bundle(&serde_json::from_str(&flipped)?).unwrap_err().to_string();
    assert!(e.contains("leaf hash does not match the record"), "{e}");
    // Re-signed by the hub (so the inner checks speak): the part is named.
    let resign = |mut b: Value| {
        if let Some(m) = b.as_object_mut() {
            m.remove("signature");
        }
        let sig = key.sign_header(xj_ledger::canonical(&b).as_bytes());
        b["signature"] = sig.into();
        b
    };
    let mut forged = package.clone();
    for e in forged["entries"].as_array_mut().into_iter().flatten() {
        for r in e["records"].as_array_mut().into_iter().flatten() {
            if let Some(at) = r.pointer_mut("/record/detail/receipt/at") {
                *at = "2026-12-03T00:00:00Z".into();
            }
        }
    }
    let e = xj_ledger::bundle::verify_bundle(&resign(forged)).unwrap_err().to_string();
    assert!(e.contains("leaf hash does not match"), "a changed receipt changes its record: {e}");
    let mut keyless = package.clone();
    keyless["party_keys"] = json!({});
    let e = xj_ledger::bundle::verify_bundle(&resign(keyless)).unwrap_err().to_string();
    assert!(e.contains("qh-rcpt") && e.contains("key"), "{e}");
    let mut other_key = package.clone();
    other_key["party_keys"]["qh-rcpt"]["public_key"] = police.wrong.public_key_b64().into();
    let e = xj_ledger::bundle::verify_bundle(&resign(other_key)).unwrap_err().to_string();
    assert!(e.contains("signed receipt does not verify"), "{e}");
    let mut body = package.clone();
    if let Some(b) = body["messages"][0]["body_b64"].as_str() {
        let mut raw = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b)?;
        raw[3] ^= 1;
        body["messages"][0]["body_b64"] =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw).into();
    }
    let e = xj_ledger::bundle::verify_bundle(&resign(body)).unwrap_err().to_string();
    assert!(e.contains("does not match the digest"), "{e}");
    Ok(())
}
