//! Information sharing and trust end to end, on a real nats-server: who
//! receives a shared item (subscriptions, region scope, sensitive items,
//! the major-penalty filing), submission signatures and the hub's keys
//! with rotation, the hash-chained ledger and evidence bundles, evidence
//! attachments, and the gateway's limits. (What an organisation's NATS
//! account can reach is tried in the `hostile` tests.)

use std::time::Duration;
use xj_bus::headers::Put;

use base64::Engine;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use xj_bus::signing::{HubKey, sign_with, verify_with_keys};
use xj_testkit::{TestHub, eventually, sample_clue};

const WAIT: Duration = Duration::from_secs(20);

/// Adds TOML lines to one organisation of the standard county.
fn with_org(text: String, org: &str, lines: &str) -> String {
    let at = format!("id = \"{org}\"\n");
    assert!(text.contains(&at), "no organisation {org}");
    text.replacen(&at, &format!("{at}{lines}\n"), 1)
}

fn share(id: &str, sender: &str, body: Value, classification: &str, recipient: Value) -> Value {
    json!({
        "id": id, "type": "info_share", "sender": sender, "recipient": recipient, "case": null, "reply_to": null,
        "sent_at": "2026-11-21T09:00:00+08:00", "classification": classification, "body": body
    })
}

fn penalty(region: &str, penalty: Value, title: &str) -> Value {
    json!({ "kind": "penalty_decision", "title": title, "region": region, "decided_on": "2026-11-18",
            "party": { "name": "某个体户", "id_no": "11010519491231002X" }, "penalty": penalty })
}

/// Waits for the routing hop of `id` (operator's view).
async fn routed(hub: &TestHub, id: &str) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("routing of {id}"), || async {
        let (s, t) = hub.get(&format!("/v1/messages/{id}/trace"), &op).await.ok()?;
        if s != 200 {
            return None;
        }
        t["hops"].as_array()?.iter().find(|h| h["step"] == "routed").cloned()
    })
    .await
}

fn sorted(v: &Value) -> Vec<String> {
    let mut r: Vec<String> = v.as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect();
    r.sort();
    r
}

/// Every organisation that got `id`, once the hub has settled.
async fn receivers_of(hub: &TestHub, id: &str, expected: usize) -> anyhow::Result<Vec<String>> {
    let got = || {
        let mut r: Vec<String> = hub
            .receivers
            .iter()
            .filter(|(_, rc)| rc.deliveries().iter().any(|d| d.header("xj-message-id") == Some(id)))
            .map(|(k, _)| k.clone())
            .collect();
        r.sort();
        r
    };
    eventually(WAIT, &format!("{expected} deliveries of {id}"), || async {
        let r = got();
        (r.len() >= expected).then_some(())
    })
    .await?;
    // Anything else would have arrived by now, with the router long done.
    tokio::time::sleep(Duration::from_millis(700)).await;
    Ok(got())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_items_reach_exactly_their_subscribers_and_major_penalties_are_filed() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(
        |t| {
            let t = with_org(t, "qh-market", r#"subscribe = [{ kind = "penalty_decision", region = "990101" }]"#);
            let t = with_org(t, "qh-town-dg", r#"subscribe = [{ kind = "penalty_decision" }]"#);
            let t = with_org(t, "qh-town-xs", r#"subscribe = [{ kind = "penalty_decision", region = "990101102" }]"#);
            with_org(t, "qh-eco", r#"subscribe = [{ kind = "licence" }]"#)
        },
        false,
    )
    .await?;

    // A town's penalty decision: the county subscriber and that town only.
    let title = "行政处罚决定书（当事人 11010519491231002X）";
    let msg = share(
        "PD-1",
        "qh-enforce",
        penalty("990101101", json!({ "kind": "fine", "amount": 5000 }), title),
        "internal",
        Value::Null,
    );
    let (status, receipt) = hub.submit("qh-enforce", &msg).await?;
    assert_eq!(status, 202, "{receipt}");
    assert_eq!(receivers_of(&hub, "PD-1", 2).await?, ["qh-market", "qh-town-dg"]);
    let hop = routed(&hub, "PD-1").await?;
    assert_eq!(sorted(&hop["detail"]["recipients"]), ["qh-market", "qh-town-dg"]);
    assert_eq!(hop["detail"]["major_penalty_filed"], false);
    // The ID number in the title is masked in the trace.
    let text = hop.to_string();
    assert!(!text.contains("11010519491231002X") && text.contains("110105***********X"), "{text}");

    // A major penalty (closure) in the other town: its subscribers, and the
    // justice bureau by filing, with the 15-day clock's dates.
    let msg = share(
        "PD-2",
        "qh-enforce",
        penalty("990101102", json!({ "kind": "closure" }), "责令关闭决定书"),
        "internal",
        Value::Null,
    );
    assert_eq!(hub.submit("qh-enforce", &msg).await?.0, 202);
    assert_eq!(receivers_of(&hub, "PD-2", 3).await?, ["qh-justice", "qh-market", "qh-town-xs"]);
    let hop = routed(&hub, "PD-2").await?;
    assert_eq!(hop["detail"]["major_penalty_filed"], true, "{hop}");
    assert_eq!(hop["detail"]["filing"]["with"], json!(["qh-justice"]));
    assert_eq!(hop["detail"]["filing"]["decided_on"], "2026-11-18");
    assert_eq!(hop["detail"]["filing"]["due"], "2026-12-03");

    // A county-wide fine of 200,000: the county subscriber and the justice
    // bureau; no town (nothing devolved is concerned).
    let msg = share(
        "PD-3",
        "qh-enforce",
        penalty("990101", json!({ "kind": "fine", "amount": 200000 }), "罚款决定书"),
        "public",
        Value::Null,
    );
    assert_eq!(hub.submit("qh-enforce", &msg).await?.0, 202);
    assert_eq!(receivers_of(&hub, "PD-3", 2).await?, ["qh-justice", "qh-market"]);

    // Sensitive: only the named recipient, although others subscribe.
    let msg = share(
        "PD-4",
        "qh-enforce",
        penalty("990101101", json!({ "kind": "warning" }), "警告"),
        "sensitive",
        json!("qh-procuratorate"),
    );
    assert_eq!(hub.submit("qh-enforce", &msg).await?.0, 202);
    assert_eq!(receivers_of(&hub, "PD-4", 1).await?, ["qh-procuratorate"]);

    // Sensitive without a recipient, and secret, are refused at the edge.
    let msg = share(
        "PD-5",
        "qh-enforce",
        penalty("990101101", json!({ "kind": "warning" }), "警告"),
        "sensitive",
        Value::Null,
    );
    let (status, body) = hub.submit("qh-enforce", &msg).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["details"].as_array().unwrap().iter().any(|d| d["pointer"] == "/recipient"), "{body}");
    let msg = share(
        "PD-6",
        "qh-enforce",
        penalty("990101101", json!({ "kind": "warning" }), "警告"),
        "secret",
        json!("qh-market"),
    );
    let (status, body) = hub.submit("qh-enforce", &msg).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["details"].as_array().unwrap().iter().any(|d| d["pointer"] == "/classification"), "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in ["PD-5", "PD-6"] {
        assert!(hub.receivers.values().all(|r| r.deliveries().iter().all(|d| d.header("xj-message-id") != Some(id))));
    }
    Ok(())
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_submissions_signed_deliveries_and_rotated_keys() -> anyhow::Result<()> {
    let org_key = SigningKey::from_bytes(&[7u8; 32]);
    let org_pub = b64(&org_key.verifying_key().to_bytes());
    // A key the hub signed with before a rotation.
    let old = HubKey::from_bytes(&[9u8; 32]);
    let old_signature = old.sign_header(b"a delivery from last year");
    let hub = TestHub::start_custom(
        |t| {
            let t = with_org(t, "qh-market", &format!("public_key = \"{org_pub}\""));
            format!("{t}\n[hub]\nprevious_public_keys = [\"{}\"]\n", old.public_key_b64())
        },
        false,
    )
    .await?;
    let post = |body: Vec<u8>, sig: Option<String>| {
        let mut r = hub
            .http
            .post(format!("{}/v1/messages", hub.base))
            .bearer_auth(hub.token("qh-market"))
            .header("content-type", "application/json");
        if let Some(s) = sig {
            r = r.header("Xj-Signature", s);
        }
        async move {
            let r = r.body(body).send().await?;
            let status = r.status().as_u16();
            let sig = r.headers().get("xj-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let bytes = r.bytes().await?;
            anyhow::Ok((status, sig, bytes))
        }
    };
    let body = serde_json::to_vec(&sample_clue("SIG-1", "qh-market", "FOOD-STALL", "990101101"))?;

    // Unsigned: 401 with the reason.
    let (status, _, answer) = post(body.clone(), None).await?;
    let answer: Value = serde_json::from_slice(&answer)?;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("Xj-Signature"), "{answer}");
    // Forged (another key) and signed over other bytes: 401, does not verify.
    let forger = SigningKey::from_bytes(&[8u8; 32]);
    let (status, _, answer) = post(body.clone(), Some(sign_with(&forger, "k1", &body))).await?;
    assert_eq!(status, 401);
    assert!(String::from_utf8_lossy(&answer).contains("does not verify"), "{}", String::from_utf8_lossy(&answer));
    let mut other = body.clone();
    other.push(b' ');
    let (status, ..) = post(body.clone(), Some(sign_with(&org_key, "k1", &other))).await?;
    assert_eq!(status, 401);
    assert!(hub.receiver("qh-town-dg").deliveries().is_empty());

    // Signed over the exact body: accepted, and the receipt is signed.
    let (status, receipt_sig, receipt) = post(body.clone(), Some(sign_with(&org_key, "k1", &body))).await?;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&receipt));
    let (_, keys) = hub.get("/v1/keys", &hub.token("qh-town-dg")).await?;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "{keys}");
    assert_eq!(keys["keys"][0]["status"], "current");
    assert_eq!(keys["keys"][1]["kid"], old.kid());
    verify_with_keys(&keys, &receipt_sig.expect("signed receipt"), &receipt).map_err(anyhow::Error::msg)?;

    // The delivery verifies with the key /v1/keys publishes (the current
    // one), and the old key still verifies what it signed.
    let d = hub.receiver("qh-town-dg").wait_for(1, WAIT).await?.remove(0);
    let sig = d.header("xj-signature").unwrap_or_default();
    assert_eq!(xj_bus::signing::header_kid(sig), keys["keys"][0]["kid"].as_str());
    verify_with_keys(&keys, sig, &d.body).map_err(anyhow::Error::msg)?;
    let mut tampered = d.body.to_vec();
    tampered[10] ^= 1;
    assert!(verify_with_keys(&keys, sig, &tampered).is_err());
    verify_with_keys(&keys, &old_signature, b"a delivery from last year").map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Where in `text` the body (`"record":{…}`) of the `k`-th record (from 1)
/// after `from` has its first digit: a byte to flip that keeps the JSON valid.
fn digit_in_record(text: &[u8], from: usize, k: usize) -> Option<usize> {
    let find = |needle: &[u8], at: usize| text[at..].windows(needle.len()).position(|w| w == needle).map(|p| at + p);
    let mut at = from;
    for _ in 0..k {
        at = find(b"\"leaf\":\"", at)? + 1;
    }
    let body = find(b"\"record\":{", at)?;
    text[body..].iter().position(u8::is_ascii_digit).map(|p| body + p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_chains_everything_and_names_a_flipped_byte() -> anyhow::Result<()> {
    use xj::hub::Service;
    // The ledger starts after eight referrals went through: it finds them
    // waiting and records many, of several cases, in each entry.
    let mut hub = TestHub::start_services("", &[Service::Gateway, Service::Router, Service::Courier]).await?;
    let mut cases = Vec::new();
    for i in 1..=8 {
        let (status, receipt) =
            hub.submit("qh-eco", &sample_clue(&format!("LG-{i}"), "qh-eco", "FOOD-STALL", "990101101")).await?;
        assert_eq!(status, 202, "{receipt}");
        cases.push(receipt["case"].as_str().unwrap().to_string());
    }
    hub.receiver("qh-town-dg").wait_for(8, WAIT).await?;
    let case = cases[3].clone();
    let services = async_nats::connect(hub.nats.url()).await?;
    let js = async_nats::jetstream::new(services);
    let ledger = hub.service(Service::Ledger).await?;
    // Two more while it runs: the last entries are small ones, after the
    // large ones (nats-server drops a damaged last message on restart,
    // which the flip on disk below must not hit).
    for i in 9..=10 {
        let (status, receipt) =
            hub.submit("qh-eco", &sample_clue(&format!("LG-{i}"), "qh-eco", "FOOD-STALL", "990101101")).await?;
        assert_eq!(status, 202, "{receipt}");
        hub.receiver("qh-town-dg").wait_for(i, WAIT).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Every accepted message and step event is recorded, each once, in
    // fewer entries than records.
    let (dump, sources) = eventually(WAIT, "ledger records of LG-1..LG-10", || async {
        let mut sources = 0;
        for s in [xj_bus::subjects::STREAM_ACCEPTED, xj_bus::subjects::STREAM_EVENTS] {
            sources += js.get_stream(s).await.ok()?.info().await.ok()?.state.messages;
        }
        let text = xj_ledger::dump(&js).await.ok()?;
        let records = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|e| e["records"].as_array().map_or(0, Vec::len) as u64)
            .sum::<u64>();
        // 10 messages, each accepted (the stored message is its
        // acceptance), routed and delivered.
        (sources >= 30 && records >= sources).then_some((text, sources))
    })
    .await?;
    let chain = xj_ledger::verify_live(&js).await?.map_err(anyhow::Error::msg)?;
    assert_eq!(chain.records, sources, "one record per accepted message and step event");
    assert!(chain.entries < chain.records, "{chain:?}");
    assert!(!dump.contains("11010519491231002X"));
    let entries: Vec<Value> = dump.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    let records: Vec<&Value> = entries.iter().flat_map(|e| e["records"].as_array().unwrap()).collect();
    let kinds: Vec<&str> =
        records.iter().filter(|r| r["msg_id"] == "LG-4").filter_map(|r| r["kind"].as_str()).collect();
    for k in ["message", "event:routed", "event:delivered"] {
        assert!(kinds.contains(&k), "LG-4 has no {k} record: {kinds:?}");
    }
    // The message's record holds its exact digest.
    let message = records.iter().find(|r| r["kind"] == "message").unwrap();
    assert_eq!(message["record"]["sha256"].as_str().unwrap().len(), 64);

    // Evidence bundle: verifies offline, holds LG-4's records whole and of
    // the other cases in its entries only their leaf hashes.
    let key = HubKey::load_or_create(&xj::hub::key_path(&hub.settings))?;
    let bundle = xj_ledger::bundle::export_case(&js, &case, &key).await?;
    let ok = xj_ledger::bundle::verify_bundle(&bundle).map_err(anyhow::Error::msg)?;
    assert_eq!(ok.case, case);
    assert!(ok.records >= 3 && ok.messages == 1, "{ok:?}");
    assert!(ok.others >= 1, "LG-4's entries hold other cases' records too: {ok:?}");
    let text = bundle.to_string();
    for (i, other) in cases.iter().enumerate().filter(|(_, c)| **c != case) {
        assert!(!text.contains(other.as_str()), "case {other} shows in {case}'s bundle");
        assert!(!text.contains(&format!("\"LG-{}\"", i + 1)), "LG-{} shows in {case}'s bundle", i + 1);
    }
    let mut forged = bundle.clone();
    let shown = forged["entries"][0]["records"].as_array_mut().unwrap().iter_mut().find(|r| r.get("record").is_some());
    shown.unwrap()["record"]["step"] = json!("forged");
    assert!(xj_ledger::bundle::verify_bundle(&forged).is_err(), "the hub's signature covers the bundle");

    // A dump with one flipped byte in one record: verify names the entry
    // and the record.
    let size = |i: usize| entries[i]["records"].as_array().unwrap().len();
    let target = (0..entries.len()).max_by_key(|&i| (size(i), std::cmp::Reverse(i))).unwrap();
    assert!(size(target) >= 2);
    assert!(target + 1 < entries.len(), "the largest entry is not the last");
    let lines: Vec<&str> = dump.lines().collect();
    let mut bytes = lines[target].as_bytes().to_vec();
    let pos = digit_in_record(&bytes, 0, 2).unwrap();
    bytes[pos] ^= 1;
    let mut bad: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    bad[target] = String::from_utf8(bytes)?;
    let err = xj_ledger::verify_lines(&bad.join("\n")).unwrap_err();
    assert_eq!(err.n, target as u64 + 1, "{err}");
    let at = err.record.as_ref().expect("a record named");
    assert_eq!((at.index, at.seq), (2, entries[target]["records"][1]["source"]["seq"].as_u64()), "{err}");
    assert!(err.to_string().ends_with("leaf hash does not match the record"), "{err}");

    // The stream itself refuses deletes and purges…
    let stream = js.get_stream(xj_ledger::STREAM_LEDGER).await?;
    assert!(stream.delete_message(1).await.is_err());
    assert!(stream.purge().await.is_err());
    // …but whoever may publish on it could append an entry that chains
    // correctly and holds a record that is not what its leaf hash says.
    ledger.stop().await?;
    hub.stop().await?;
    let head = xj_ledger::verify_live(&js).await?.map_err(anyhow::Error::msg)?;
    let mut forged = entries[target].clone();
    forged["n"] = json!(head.entries + 1);
    forged["prev"] = json!(head.head);
    forged["records"][1]["record"]["forged"] = json!(true);
    forged["hash"] = json!(xj_ledger::hash_of(&forged));
    let mut h = async_nats::HeaderMap::new();
    h.put("Nats-Expected-Last-Sequence", head.entries.to_string().as_str());
    js.publish_with_headers(xj_ledger::SUBJECT_LEDGER, h, serde_json::to_vec(&forged)?.into()).await?.await?;
    let broken = xj_ledger::verify_live(&js).await?.expect_err("the chain is broken");
    let source = &forged["records"][1]["source"];
    assert_eq!(
        broken.to_string(),
        format!(
            "entry {}, record 2 ({} seq {}): leaf hash does not match the record",
            head.entries + 1,
            source["stream"].as_str().unwrap(),
            source["seq"]
        )
    );

    // One flipped byte on disk, in a record of an earlier entry: named
    // too (nats-server's own checksum finds it first and leaves the entry
    // out, so the walk finds it missing).
    let flip_n = target as u64 + 1;
    hub.nats.server.stop();
    let dir = hub.nats.dir.path().join("js");
    let blk = find_block(&dir, "XJ_LEDGER").expect("ledger block file");
    let mut raw = std::fs::read(&blk)?;
    let needle = format!("{{\"n\":{flip_n},\"at\":\"");
    let entry = raw.windows(needle.len()).position(|w| w == needle.as_bytes()).expect("entry on disk");
    let at = digit_in_record(&raw, entry, 2).expect("a record on disk");
    raw[at] ^= 1;
    std::fs::write(&blk, raw)?;
    hub.nats.server.restart()?;
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let broken = xj_ledger::verify_live(&js).await?.expect_err("the chain is broken");
    assert_eq!(broken.n, flip_n, "{broken}");
    Ok(())
}

fn find_block(dir: &std::path::Path, stream: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let p = entry.ok()?.path();
        if p.is_dir() {
            if p.ends_with(stream) {
                let msgs = p.join("msgs");
                return std::fs::read_dir(msgs)
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.extension().is_some_and(|e| e == "blk"));
            }
            if let Some(found) = find_block(&p, stream) {
                return Some(found);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_attachments_by_digest_and_gateway_limits() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(
        |t| with_org(t, "qh-procuratorate", "rate_limit = { per_second = 0.2, burst = 3 }\nmax_body_bytes = 300"),
        false,
    )
    .await?;
    let upload = |org: &str, bytes: Vec<u8>, claimed: Option<String>| {
        let mut r = hub.http.post(format!("{}/v1/attachments", hub.base)).bearer_auth(hub.token(org)).body(bytes);
        if let Some(c) = claimed {
            r = r.header("Xj-Content-Sha256", c);
        }
        async move {
            let r = r.send().await?;
            anyhow::Ok((r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)))
        }
    };
    let evidence: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (status, stored) = upload("qh-eco", evidence.clone(), None).await?;
    assert_eq!(status, 201, "{stored}");
    let sha = stored["sha256"].as_str().unwrap().to_string();
    assert_eq!(stored["size"], evidence.len());
    // The same bytes with a wrong claimed digest are refused.
    let (status, body) = upload("qh-eco", b"other bytes".to_vec(), Some(sha.clone())).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["message"].as_str().is_some() && body.to_string().contains("digest mismatch"), "{body}");

    // A message naming a wrong size or an unknown digest is refused.
    let mut clue = sample_clue("AT-1", "qh-eco", "FOOD-STALL", "990101101");
    clue["body"]["materials"] =
        json!([{ "title": "现场照片", "copies": 1, "attachment": { "sha256": sha, "size": 5 } }]);
    let (status, body) = hub.submit("qh-eco", &clue).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["details"].to_string().contains("/body/materials/0/attachment/size"), "{body}");
    clue["body"]["materials"][0]["attachment"] = json!({ "sha256": "ab".repeat(32), "size": 5 });
    let (status, body) = hub.submit("qh-eco", &clue).await?;
    assert_eq!(status, 422, "{body}");
    clue["body"]["materials"][0]["attachment"] = json!({ "sha256": sha, "size": evidence.len() });
    let (status, body) = hub.submit("qh-eco", &clue).await?;
    assert_eq!(status, 202, "{body}");

    // The receiver fetches it intact, signed; an outsider cannot.
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    let fetch = |org: &str| {
        let r = hub.http.get(format!("{}/v1/attachments/{sha}", hub.base)).bearer_auth(hub.token(org));
        async move {
            let r = r.send().await?;
            let sig = r.headers().get("xj-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
            anyhow::Ok((r.status().as_u16(), sig, r.bytes().await?))
        }
    };
    let (status, sig, bytes) = fetch("qh-town-dg").await?;
    assert_eq!(status, 200);
    assert_eq!(bytes.as_ref(), evidence.as_slice());
    let (_, keys) = hub.get("/v1/keys", &hub.token("qh-town-dg")).await?;
    verify_with_keys(&keys, &sig.unwrap_or_default(), &bytes).map_err(anyhow::Error::msg)?;
    assert_eq!(fetch("qh-police-econ").await?.0, 404);

    // Per-organisation limits: size (413), then rate (429 with Retry-After).
    let big = sample_clue("PR-1", "qh-procuratorate", "FOOD-STALL", "990101101");
    let (status, body) = hub.submit("qh-procuratorate", &big).await?;
    assert_eq!(status, 413, "{body}");
    let mut last = 0;
    for _ in 0..4 {
        last = hub.get("/v1/keys", &hub.token("qh-procuratorate")).await?.0;
    }
    assert_eq!(last, 429);
    // Others are not affected.
    assert_eq!(hub.get("/v1/keys", &hub.token("qh-market")).await?.0, 200);
    // Errors carry no internals.
    let (status, body) = hub.get("/v1/attachments/not-a-digest", &hub.token("qh-market")).await?;
    assert_eq!(status, 404, "{body}");
    Ok(())
}

/// Where the test's own installs go (like the embedded nats-server's).
fn tool_cache() -> std::path::PathBuf {
    std::env::var_os("XJ_CACHE_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into())).join(".cache/xianjie")
    })
}

fn run_checked(cmd: &mut std::process::Command, what: &str) -> anyhow::Result<String> {
    let out = cmd.output().map_err(|e| anyhow::anyhow!("{what}: cannot run: {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The unmodified PyPI and npm Standard Webhooks verifiers, installed by
/// the test (pinned; tests/e2e/webhooks), each checking a delivery four
/// ways; returns their verdicts.
fn stock_verdicts(secret: &str, delivery: &xj_testkit::Delivery) -> anyhow::Result<Vec<(&'static str, Value)>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("webhooks");
    let py = tool_cache().join("py-standardwebhooks-1.1.0");
    if !py.join("standardwebhooks").exists() {
        run_checked(
            Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--target"])
                .arg(&py)
                .arg("standardwebhooks==1.1.0"),
            "pip install standardwebhooks",
        )?;
    }
    if !here.join("node_modules/standardwebhooks").exists() {
        run_checked(
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&here),
            "npm ci (tests/e2e/webhooks)",
        )?;
    }
    let wrong = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([42u8; 32]));
    let mut headers = serde_json::Map::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "xj-signature"] {
        if let Some(v) = delivery.header(name) {
            headers.insert(name.into(), v.into());
        }
    }
    let input = json!({
        "secret": secret,
        "wrong_secret": wrong,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&delivery.body),
        "headers": headers,
    })
    .to_string();
    let mut verdicts = Vec::new();
    for (lang, mut cmd) in [
        ("python", {
            let mut c = Command::new("python3");
            c.arg(here.join("verify.py")).env("PYTHONPATH", &py);
            c
        }),
        ("node", {
            let mut c = Command::new("node");
            c.arg(here.join("verify.mjs")).current_dir(&here);
            c
        }),
    ] {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?.write_all(input.as_bytes())?;
        let out = child.wait_with_output()?;
        anyhow::ensure!(out.status.success(), "{lang} verifier: {}", String::from_utf8_lossy(&out.stderr));
        verdicts.push((lang, serde_json::from_slice(&out.stdout)?));
    }
    Ok(verdicts)
}

/// Real deliveries from the hub verify with the unmodified Python and npm
/// Standard Webhooks libraries, with a configured secret (and, during a
/// rotation, the old one too) and with the secret the hub derives; a
/// tampered body, a wrong secret and a replay ten minutes late do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_stock_standard_webhooks_libraries() -> anyhow::Result<()> {
    let new = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([1u8; 32]));
    let old = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([2u8; 32]));
    let lines = format!("webhook_secret = \"{new}\"\nprevious_webhook_secrets = [\"{old}\"]");
    let hub = TestHub::start_custom(move |t| with_org(t, "qh-town-dg", &lines), false).await?;
    let (status, _) = hub.submit("qh-market", &sample_clue("SW-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, 202);
    let town = hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    assert_eq!(town[0].header("webhook-id"), Some("qh-market.SW-1.qh-town-dg"), "sender, message id and recipient");
    assert_eq!(town[0].header("webhook-signature").map(|s| s.split(' ').count()), Some(2), "both secrets sign");
    // The town answers; the market bureau has no secret configured and
    // verifies with the one the hub derives (`xj webhook-secret`).
    let reply = json!({ "id": "SW-R-1", "type": "referral_reply", "sender": "qh-town-dg", "reply_to": "SW-1",
        "sent_at": "2026-11-21T10:00:00+08:00", "classification": "internal",
        "body": { "decision": "accepted", "case_no": "东关立〔2026〕9号" } });
    assert_eq!(hub.submit("qh-town-dg", &reply).await?.0, 202);
    let market = hub.receiver("qh-market").wait_for(1, WAIT).await?;
    let derived = HubKey::load_or_create(&xj::hub::key_path(&hub.settings))?.webhook_secret("qh-market");
    for (secret, delivery) in [(&new, &town[0]), (&old, &town[0]), (&derived, &market[0])] {
        for (lang, v) in stock_verdicts(secret, delivery)? {
            assert_eq!(v["as_received"], "ok", "{lang}: {v}");
            for refused in ["tampered", "wrong_secret", "late"] {
                assert!(v[refused].is_string() && v[refused] != "ok", "{lang} accepted it {refused}: {v}");
            }
        }
    }
    Ok(())
}
