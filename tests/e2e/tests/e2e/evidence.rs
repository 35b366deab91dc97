//! The evidence package of a hand-off (docs/security.md, "Evidence
//! packages"): the police sign their receipt, the ledger's head is signed
//! by the hub and time-stamped by an RFC 3161 authority (OpenSSL's, started
//! here), and the case's package verifies offline — and fails, naming the
//! part, when any byte of it is changed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use xj_bus::signing::{Alg, HubKey};
use xj_testkit::{TestHub, TestNats, county_config, county_receivers, eventually};

const T: Duration = Duration::from_secs(40);

/// `openssl ts -reply` behind HTTP (tests/e2e/tsa/tsa.py), killed on drop.
struct LocalTsa {
    child: Child,
    dir: tempfile::TempDir,
    url: String,
}

impl LocalTsa {
    fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tsa/tsa.py");
        let mut child = Command::new("python3").arg(script).arg(dir.path()).stdout(Stdio::piped()).spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or_else(|| anyhow::anyhow!("no stdout"))?).read_line(&mut line)?;
        let port: u16 = line.trim().parse().map_err(|_| anyhow::anyhow!("tsa.py did not start: {line:?}"))?;
        Ok(Self { child, dir, url: format!("http://127.0.0.1:{port}/") })
    }
}

impl Drop for LocalTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The economic police's system: stores what it gets and signs a receipt.
#[derive(Clone)]
struct Police {
    key: HubKey,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn receive(
    axum::extract::State(p): axum::extract::State<Police>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, HeaderMap, &'static str) {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    p.got.lock().unwrap_or_else(|e| e.into_inner()).push(body.to_vec());
    let at = chrono::Utc::now().to_rfc3339();
    let receipt = xj_bus::signing::sign_receipt(
        &p.key,
        "econ-2026",
        (&h("xj-sender"), &h("xj-message-id")),
        "qh-police-econ",
        &body,
        &at,
    );
    let mut out = HeaderMap::new();
    if let Ok(v) = receipt.parse() {
        out.insert("xj-receipt-signature", v);
    }
    (StatusCode::OK, out, "收到")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_package_is_chained_to_a_time_stamped_head_and_any_changed_byte_is_named() -> anyhow::Result<()> {
    let tsa = LocalTsa::start()?;
    let police = Police { key: HubKey::generate(Alg::Ed25519), got: Arc::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let police_url = format!("http://{}/inbox", listener.local_addr()?);
    let app = axum::Router::new().fallback(receive).with_state(police.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The test county, with the economic police signing their receipts.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = TestNats::start()?;
    let (receivers, mut urls) = county_receivers().await?;
    urls.insert("qh-police-econ".into(), police_url);
    // The market bureau signs its submissions with SM2.
    let market = HubKey::generate(Alg::Sm2);
    let county = county_config(&urls).replacen(
        "token = \"token-qh-market-0123456789\"\n",
        &format!(
            "token = \"token-qh-market-0123456789\"\nkey_alg = \"sm2\"\npublic_key = \"{}\"\n",
            market.public_key_b64()
        ),
        1,
    );
    let county = county.replacen(
        "unit = \"economic\"\n",
        &format!("unit = \"economic\"\npublic_key = \"{}\"\nsign_receipts = true\n", police.key.public_key_b64()),
        1,
    );
    let text = format!(
        "{county}\n[data]\ndir = \"{}\"\n\n[ledger]\nhead_every_s = 1\ntimestamp_url = \"{}\"\n",
        nats.dir.path().join("data").display(),
        tsa.url
    );
    let path = nats.dir.path().join("xianjie.toml");
    std::fs::write(&path, &text)?;
    let settings = Arc::new(xj_config::load_file(&path)?);
    let hub = TestHub::start_with(nats, settings, receivers).await?;

    let sent = serde_json::to_vec(&xj_testkit::sample_handoff("HO-EV-1"))?;
    let answer = hub
        .http
        .post(format!("{}/v1/messages", hub.base))
        .bearer_auth(hub.token("qh-market"))
        .header("content-type", "application/json")
        .header("xj-signature", xj_bus::signing::sign_as(&market, "market-sm2", &sent))
        .body(sent.clone())
        .send()
        .await?;
    let s = answer.status().as_u16();
    let r: Value = answer.json().await?;
    assert_eq!(s, 202, "{r}");
    let case = r["case"].as_str().unwrap_or_default().to_string();

    // The case's package once a time-stamped head covers the receipt.
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let key = HubKey::load_or_create_as(&hub.settings.signing_key_path(), hub.settings.hub.signature)?;
    let keys = |org: &str| {
        let o = hub.settings.org(org)?;
        Some((o.key_alg.as_str().to_string(), o.public_key.clone()?))
    };
    let scope = xj_ledger::bundle::Scope::Case(case.clone());
    let package = eventually(T, "a package with the police's receipt under a time-stamped head", || async {
        let b = xj_ledger::bundle::export(&js, &scope, &keys, &key).await.ok()?;
        let receipted = b["entries"].to_string().contains("econ-2026");
        (receipted && b["signed_head"]["timestamp"].is_object()).then_some(b)
    })
    .await?;
    let file = xj_ledger::bundle::layout(&package).into_bytes();
    let v = xj_ledger::bundle::verify_package(&file).map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(v.case, case);
    assert!(v.receipts >= 1 && v.messages >= 1, "{v:?}");
    // The market bureau's own signature over the very bytes it sent.
    assert_eq!(v.submissions, 1, "{v:?}");
    let m = package["messages"].as_array().into_iter().flatten().find(|m| m.get("submitted_b64").is_some());
    let submitted = B64.decode(m.and_then(|m| m["submitted_b64"].as_str()).unwrap_or_default())?;
    assert_eq!(submitted, sent, "the package holds the bytes the bureau signed");
    let head = v.head.clone().ok_or_else(|| anyhow::anyhow!("no signed head in {v:?}"))?;
    let stamped = head.stamped.ok_or_else(|| anyhow::anyhow!("the head is not time-stamped"))?;
    assert!(stamped.tsa.contains("Test TSA"), "{stamped:?}");
    // The certificate named is the TSA's own.
    let pem = std::fs::read_to_string(tsa.dir.path().join("tsa.pem"))?;
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let cert_sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(B64.decode(der)?));
    assert_eq!(stamped.cert_sha256, cert_sha);

    // OpenSSL, knowing nothing of the hub, verifies the same token over
    // the signed head's imprint against the TSA's root.
    let h: xj_ledger::heads::SignedHead = serde_json::from_value(package["signed_head"].clone())?;
    let token = B64.decode(h.timestamp.as_ref().map(|t| t.token_b64.clone()).unwrap_or_default())?;
    let token_file = tsa.dir.path().join("token.der");
    std::fs::write(&token_file, &token)?;
    let out = Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-in"])
        .arg(&token_file)
        .args(["-digest", &hex::encode(h.imprint()), "-CAfile"])
        .arg(tsa.dir.path().join("ca.pem"))
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("Verification: OK"), "{said}");

    // Any byte changed: refused. Every position in the parts that matter,
    // and every seventh elsewhere.
    let text = String::from_utf8(file.clone())?;
    let region = |needle: &str| text.find(needle).map(|at| at..(at + needle.len()).min(text.len())).unwrap_or(0..0);
    let token_b64 = h.timestamp.as_ref().map(|t| t.token_b64.clone()).unwrap_or_default();
    let must: Vec<std::ops::Range<usize>> =
        vec![region(&token_b64), region(&h.hash), region(&h.signature), region("econ-2026")];
    let mut tried = 0;
    for i in 0..file.len() {
        if i % 7 != 0 && !must.iter().any(|r| r.contains(&i)) {
            continue;
        }
        let mut changed = file.clone();
        changed[i] = match file[i] {
            b' ' => b'\t',
            c if c.is_ascii_alphanumeric() => c ^ 0x01,
            b'x' => b'y',
            _ => b'x',
        };
        tried += 1;
        assert!(
            xj_ledger::bundle::verify_package(&changed).is_err(),
            "byte {i} ({:?}) changed and the package still verified",
            file[i] as char
        );
    }
    assert!(tried > 500, "{tried}");

    // Each part is named when it is the one changed.
    let named = |mut b: Value, edit: &dyn Fn(&mut Value)| {
        edit(&mut b);
        let bytes = xj_ledger::bundle::layout(&b).into_bytes();
        xj_ledger::bundle::verify_package(&bytes).map(|_| ()).unwrap_err().to_string()
    };
    let flip = |s: &str| {
        let mut c: Vec<char> = s.chars().collect();
        let i = c.len() / 2;
        c[i] = if c[i] == 'A' { 'B' } else { 'A' };
        c.into_iter().collect::<String>()
    };
    let e = named(package.clone(), &|b| b["signed_head"]["timestamp"]["token_b64"] = flip(&token_b64).into());
    assert!(e.contains(&format!("the signed head of entry {}", h.n)), "{e}");
    let e = named(package.clone(), &|b| b["signed_head"]["hash"] = flip(&h.hash).into());
    assert!(e.contains("the signed head") && e.contains("signature on it does not verify"), "{e}");
    let e = named(package.clone(), &|b| {
        let body = b["messages"][0]["body_b64"].as_str().unwrap_or_default().to_string();
        b["messages"][0]["body_b64"] = flip(&body).into();
    });
    assert!(e.contains("the message does not match the digest") || e.contains("not base64"), "{e}");
    let e = named(package.clone(), &|b| {
        for m in b["messages"].as_array_mut().into_iter().flatten() {
            if let Some(raw) = m["submitted_b64"].as_str().and_then(|t| B64.decode(t).ok()) {
                let changed = String::from_utf8_lossy(&raw).replacen("86000", "86001", 1);
                m["submitted_b64"] = B64.encode(changed).into();
            }
        }
    });
    assert!(e.contains("the submission does not match the digest of what qh-market signed"), "{e}");
    let e = named(package.clone(), &|b| {
        b["party_keys"]["qh-market"]["public_key"] = HubKey::generate(Alg::Sm2).public_key_b64().into()
    });
    assert!(e.contains("qh-market's signature over its submission does not verify"), "{e}");
    let e = named(package.clone(), &|b| b["exported_at"] = "2020-01-01T00:00:00Z".into());
    assert!(e.contains("the hub's signature over the package does not verify"), "{e}");
    let e = named(package.clone(), &|b| {
        b["party_keys"]["qh-police-econ"]["public_key"] = HubKey::generate(Alg::Ed25519).public_key_b64().into()
    });
    assert!(e.contains("qh-police-econ's signed receipt does not verify"), "{e}");
    Ok(())
}
