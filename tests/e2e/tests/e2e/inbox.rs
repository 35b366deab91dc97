//! Pull delivery (docs/api.md, "Pull delivery"): a town with no system of
//! its own collects its deliveries at `GET /v1/inbox`, signed as a webhook
//! delivery would be; they wait until acknowledged, and the clocks they
//! start begin when collected.

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::{TestHub, eventually, sample_clue};

use crate::common::hub_key;

const T: Duration = Duration::from_secs(30);

/// Monday 2 November 2026, 10:00 in China; 临水镇 collects by pull.
const EXTRA: &str = "[clock]\nmode = \"manual\"\nstart = \"2026-11-02T10:00:00+08:00\"\n\n\
[[org]]\nid = \"qh-town-ls\"\nname = \"临水镇人民政府\"\nkind = \"town_government\"\nregion = \"990101103\"\n\
token = \"token-qh-town-ls-0123456789\"\ndeliver = { pull = true, pull_alert_hours = 24 }\n";

const TOWN: &str = "token-qh-town-ls-0123456789";

async fn inbox(hub: &TestHub, query: &str, token: &str) -> anyhow::Result<(u16, Value)> {
    hub.get(&format!("/v1/inbox{query}"), token).await
}

fn clue_to_town(id: &str) -> Value {
    let mut clue = sample_clue(id, "qh-market", "FOOD-STALL", "990101103");
    clue["recipient"] = "qh-town-ls".into();
    clue
}

async fn record(hub: &TestHub, case: &str) -> anyhow::Result<Value> {
    let (s, v) = hub.get(&format!("/v1/cases/{case}"), &hub.operator_token()).await?;
    anyhow::ensure!(s == 200, "{s} {v}");
    Ok(v)
}

fn decision_clocks(r: &Value) -> Vec<Value> {
    r["clocks"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["name"] == "referral_decision").cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_town_without_a_system_collects_its_referrals_and_its_clock_starts_then() -> anyhow::Result<()> {
    let hub = TestHub::start(EXTRA).await?;
    let (kid, public_key) = hub_key(&hub).await?;
    let (s, receipt) = hub.submit("qh-market", &clue_to_town("PL-1")).await?;
    assert_eq!(s, 202, "{receipt}");
    let case = receipt["case"].as_str().unwrap_or_default().to_string();

    // It waits in the inbox, signed like a webhook delivery.
    let (s, page) = eventually(T, "the referral in the inbox", || async {
        let (s, p) = inbox(&hub, "", TOWN).await.ok()?;
        (p["messages"].as_array()?.len() == 1).then_some((s, p))
    })
    .await?;
    assert_eq!(s, 200, "{page}");
    let m = &page["messages"][0];
    assert_eq!(m["headers"]["xj-message-id"], "PL-1");
    assert_eq!(m["headers"]["xj-case"], case.as_str());
    assert_eq!(m["headers"]["xj-sender"], "qh-market");
    assert!(m["headers"].get("nats-msg-id").is_none(), "{m}");
    let sig = m["headers"]["xj-signature"].as_str().unwrap_or_default();
    assert!(sig.contains(&format!("keyid={kid}")), "{sig}");
    let body = m["body"].as_str().unwrap_or_default();
    xj_bus::signing::verify_header(&public_key, sig, body.as_bytes()).expect("the signature is over the body's bytes");
    let doc: Value = serde_json::from_str(body)?;
    assert_eq!((doc["id"].as_str(), doc["case"].as_str()), (Some("PL-1"), Some(case.as_str())));
    let c1 = m["cursor"].as_str().unwrap_or_default().to_string();
    assert_eq!(page["cursor"], c1.as_str());

    // Not collected, not delivered: no clock, however long it waits.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(decision_clocks(&record(&hub, &case).await?).is_empty(), "a clock before collection");
    // Uncollected for its pull_alert_hours (24): overdue to the town and
    // its justice bureau — not a minute before.
    let uncollected = || {
        hub.receiver("qh-justice")
            .deliveries()
            .into_iter()
            .filter(|d| d.json["body"]["kind"] == "overdue" && d.json["body"]["clock"]["name"] == "inbox_collection")
            .count()
    };
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": "PT23H59M" })).await?;
    assert_eq!(s, 200, "{b}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(uncollected(), 0, "overdue before its time");
    let (s, b) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": "PT1M" })).await?;
    assert_eq!(s, 200, "{b}");
    eventually(T, "the justice bureau told the town has not collected", || async {
        (uncollected() == 1).then_some(())
    })
    .await?;
    // Asked again without a cursor, it is still there — and the reminder
    // and the overdue alert about it wait behind it in the town's own inbox.
    let again = eventually(T, "the alerts in the town's inbox", || async {
        let (_, p) = inbox(&hub, "", TOWN).await.ok()?;
        (p["messages"].as_array()?.len() == 3).then_some(p)
    })
    .await?;
    assert_eq!(again["messages"][0]["cursor"], c1.as_str());
    let kinds: Vec<(String, String)> = again["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .skip(1)
        .map(|m| {
            let a: Value = serde_json::from_str(m["body"].as_str().unwrap_or_default()).unwrap_or_default();
            let field = |k: &str| a["body"][k].as_str().unwrap_or_default().to_string();
            (field("kind"), field("about"))
        })
        .collect();
    let want = [("reminder", "PL-1"), ("overdue", "PL-1")].map(|(k, a)| (k.to_string(), a.to_string()));
    assert_eq!(kinds, want);
    let (_, status) = hub.get("/v1/admin/inbox", &hub.operator_token()).await?;
    let town = status["orgs"].as_array().and_then(|a| a.iter().find(|o| o["org"] == "qh-town-ls")).cloned();
    // Waiting is measured on the machine's clock: seconds here, not late.
    assert_eq!(
        town.as_ref().map(|t| (t["waiting"].clone(), t["late"].clone(), t["alert_hours"].clone())),
        Some((json!(3), json!(false), json!(24))),
        "{status}"
    );
    assert!(town.as_ref().and_then(|t| t["hours"].as_f64()).is_some_and(|h| (0.0..1.0).contains(&h)), "{status}");

    // Collected on Tuesday: the 5 working days run from then (to Tuesday
    // the 10th), not from Monday when the hub stored it. What follows the
    // cursor comes in the same answer.
    let (s, after) = inbox(&hub, &format!("?after={c1}"), TOWN).await?;
    assert_eq!(s, 200, "{after}");
    assert_eq!(after["messages"].as_array().map(Vec::len), Some(2), "{after}");
    let c2 = after["cursor"].as_str().unwrap_or_default().to_string();
    assert_eq!(after["messages"][1]["cursor"], c2.as_str());
    assert_ne!(c2, c1);
    let clock = eventually(T, "the decision clock after collection", || async {
        decision_clocks(&record(&hub, &case).await.ok()?).into_iter().next()
    })
    .await?;
    assert_eq!((clock["owner"].as_str(), clock["due"].as_str()), (Some("qh-town-ls"), Some("2026-11-10T15:59:59Z")));
    let (_, trace) = hub.get("/v1/messages/PL-1/trace", &hub.token("qh-market")).await?;
    let steps: Vec<&str> = trace["hops"].as_array().into_iter().flatten().filter_map(|h| h["step"].as_str()).collect();
    assert!(steps.contains(&"waiting") && steps.contains(&"delivered"), "{steps:?}");

    // A long poll returns as soon as the next one is stored.
    let poll = {
        let url = format!("{}/v1/inbox?after={c2}&wait=20", hub.base);
        let http = hub.http.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = http.get(url).bearer_auth(TOWN).send().await?;
            let v: Value = r.json().await?;
            anyhow::Ok((v, started.elapsed()))
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.submit("qh-market", &clue_to_town("PL-2")).await?.0, 202);
    let (v, took) = poll.await??;
    assert_eq!(v["messages"][0]["headers"]["xj-message-id"], "PL-2", "{v}");
    assert!(took < Duration::from_secs(20), "the poll waited its whole time: {took:?}");

    // The town answers PL-1 like any receiver; the market bureau gets it.
    let reply = json!({ "id": "LS-R-1", "type": "referral_reply", "sender": "qh-town-ls", "reply_to": "PL-1",
        "sent_at": "2026-11-03T10:00:00+08:00", "classification": "internal",
        "body": { "decision": "accepted", "case_no": "临水立〔2026〕3号" } });
    let r = hub.http.post(format!("{}/v1/messages", hub.base)).bearer_auth(TOWN).json(&reply).send().await?;
    assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap_or_default());
    eventually(T, "the reply at the market bureau", || async {
        hub.receiver("qh-market").deliveries().into_iter().find(|d| d.json["id"] == "LS-R-1")
    })
    .await?;
    Ok(())
}

/// Wrong callers and wrong questions get a clear refusal, and nothing is
/// acknowledged that was not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inbox_refuses_what_it_cannot_answer() -> anyhow::Result<()> {
    let hub = TestHub::start(EXTRA).await?;
    let (s, b) = inbox(&hub, "", &hub.token("qh-market")).await?;
    assert_eq!(s, 409, "a webhook org: {b}");
    assert!(b["message"].as_str().unwrap_or_default().contains("pull = true"), "{b}");
    let (s, b) = inbox(&hub, "", &hub.operator_token()).await?;
    assert_eq!(s, 403, "{b}");
    let (s, b) = inbox(&hub, "?after=yesterday&limit=0&wait=99", TOWN).await?;
    assert_eq!(s, 422, "{b}");
    let pointers: Vec<&str> =
        b["details"].as_array().into_iter().flatten().filter_map(|d| d["pointer"].as_str()).collect();
    assert_eq!(pointers, ["/after", "/limit", "/wait"], "{b}");
    assert_eq!(hub.submit("qh-market", &clue_to_town("PL-9")).await?.0, 202);
    let page = eventually(T, "the referral in the inbox", || async {
        let (_, p) = inbox(&hub, "", TOWN).await.ok()?;
        (p["messages"].as_array()?.len() == 1).then_some(p)
    })
    .await?;
    let seq: u64 = page["cursor"].as_str().and_then(|c| c.strip_prefix("c-")).and_then(|n| n.parse().ok()).unwrap_or(0);
    let (s, b) = inbox(&hub, &format!("?after=c-{}", seq + 1000), TOWN).await?;
    assert_eq!(s, 422, "{b}");
    assert_eq!(b["details"][0]["pointer"], "/after");
    // Nothing was acknowledged by the refused cursor.
    let (_, still) = inbox(&hub, "", TOWN).await?;
    assert_eq!(still["messages"][0]["headers"]["xj-message-id"], "PL-9", "{still}");
    // A second poller while one waits is answered at once.
    let url = format!("{}/v1/inbox?after={}&wait=3", hub.base, page["cursor"].as_str().unwrap_or_default());
    let first = tokio::spawn({
        let (http, url) = (hub.http.clone(), url.clone());
        async move { http.get(url).bearer_auth(TOWN).send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let r = hub.http.get(&url).bearer_auth(TOWN).send().await?;
    assert_eq!(r.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(2), "the second poll waited");
    assert_eq!(first.await??, 200);
    Ok(())
}

/// A pull town that must sign its receipts (docs/security.md, "Signed
/// receipts"): it acknowledges with `POST /v1/inbox/ack` and a receipt for
/// each delivery; a missing, misplaced or forged one refuses the whole
/// acknowledgement at its pointer, and the valid one is in the trace and
/// in the message's evidence package.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_town_that_signs_its_receipts_acknowledges_with_them() -> anyhow::Result<()> {
    use xj_bus::signing::{Alg, HubKey};
    let town_key = HubKey::generate(Alg::Sm2);
    let extra = format!(
        "[[org]]\nid = \"qh-town-sr\"\nname = \"南关镇人民政府\"\nkind = \"town_government\"\nregion = \"990101104\"\n\
         token = \"token-qh-town-sr-0123456789\"\ndeliver = {{ pull = true }}\nkey_alg = \"sm2\"\n\
         public_key = \"{}\"\nsign_receipts = true\n",
        town_key.public_key_b64()
    );
    let token = "token-qh-town-sr-0123456789";
    let hub = TestHub::start(&extra).await?;
    for id in ["SR-1", "SR-2"] {
        let mut clue = sample_clue(id, "qh-market", "FOOD-STALL", "990101104");
        clue["recipient"] = "qh-town-sr".into();
        let (s, r) = hub.submit("qh-market", &clue).await?;
        assert_eq!(s, 202, "{r}");
    }
    let page = eventually(T, "two deliveries in the inbox", || async {
        let (_, p) = inbox(&hub, "", token).await.ok()?;
        (p["messages"].as_array()?.len() == 2).then_some(p)
    })
    .await?;
    let copy = |i: usize| {
        let m = &page["messages"][i];
        (m["cursor"].as_str().unwrap_or_default().to_string(), m["body"].as_str().unwrap_or_default().to_string())
    };
    let ((c1, b1), (c2, b2)) = (copy(0), copy(1));
    let at = chrono::Utc::now().to_rfc3339();
    let sign = |id: &str, body: &str, key: &HubKey| {
        xj_bus::signing::sign_receipt(key, "town-sm2", ("qh-market", id), "qh-town-sr", body.as_bytes(), &at)
    };
    let (hub_ref, key_ref) = (&hub, &town_key);
    // A town with a registered key signs every body it posts.
    let ack = |body: Value| async move {
        let bytes = serde_json::to_vec(&body)?;
        let signature = xj_bus::signing::sign_as(key_ref, "town-sm2", &bytes);
        let r = hub_ref
            .http
            .post(format!("{}/v1/inbox/ack", hub_ref.base))
            .bearer_auth(token)
            .header("xj-signature", signature)
            .header("content-type", "application/json")
            .body(bytes)
            .send()
            .await?;
        anyhow::Ok((r.status().as_u16(), r.json::<Value>().await?))
    };
    let pointers = |v: &Value| -> Vec<String> {
        v["details"].as_array().into_iter().flatten().filter_map(|d| d["pointer"].as_str().map(str::to_owned)).collect()
    };

    // `after=` would acknowledge unsigned: refused for this town.
    let (s, v) = inbox(&hub, &format!("?after={c2}"), token).await?;
    assert_eq!((s, pointers(&v)), (422, vec!["/after".to_string()]), "{v}");
    // A receipt owed and missing, one for the wrong bytes, one for a cursor
    // not acknowledged: each named, nothing acknowledged.
    let (s, v) =
        ack(json!({ "cursor": c2, "receipts": [{ "cursor": c1, "signature": sign("SR-1", &b1, &town_key) }] })).await?;
    assert_eq!(s, 422, "{v}");
    assert_eq!(pointers(&v), vec!["/receipts"], "{v}");
    assert!(v.to_string().contains(&c2), "the delivery without a receipt is named: {v}");
    let forged = HubKey::generate(Alg::Sm2);
    let (s, v) = ack(json!({ "cursor": c2, "receipts": [
        { "cursor": c1, "signature": sign("SR-1", &b1, &town_key) },
        { "cursor": c2, "signature": sign("SR-2", &b2, &forged) },
    ] }))
    .await?;
    assert_eq!((s, pointers(&v)), (422, vec!["/receipts/1/signature".to_string()]), "{v}");
    let (s, v) = ack(json!({ "cursor": c1, "receipts": [
        { "cursor": c1, "signature": sign("SR-1", &b1, &town_key) },
        { "cursor": c2, "signature": sign("SR-2", &b2, &town_key) },
    ] }))
    .await?;
    assert_eq!((s, pointers(&v)), (422, vec!["/receipts/1/cursor".to_string()]), "{v}");
    let (s, v) = ack(json!({ "cursor": c2, "receipt": [] })).await?;
    assert_eq!((s, pointers(&v)), (422, vec!["/receipt".to_string()]), "{v}");
    let (_, p) = inbox(&hub, "", token).await?;
    assert_eq!(p["messages"].as_array().map(Vec::len), Some(2), "nothing was acknowledged: {p}");

    // Both signed: acknowledged, gone from the inbox, receipts recorded.
    let (s, v) = ack(json!({ "cursor": c2, "receipts": [
        { "cursor": c1, "signature": sign("SR-1", &b1, &town_key) },
        { "cursor": c2, "signature": sign("SR-2", &b2, &town_key) },
    ] }))
    .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!((v["acknowledged"].as_u64(), v["receipts"].as_u64()), (Some(2), Some(2)), "{v}");
    let (_, p) = inbox(&hub, "", token).await?;
    assert_eq!(p["messages"].as_array().map(Vec::len), Some(0), "{p}");
    let delivered = eventually(T, "SR-1 delivered with its receipt", || async {
        let (_, t) = hub.get("/v1/messages/SR-1/trace", &hub.token("qh-market")).await.ok()?;
        t["hops"].as_array()?.iter().find(|h| h["step"] == "delivered").cloned()
    })
    .await?;
    let r = &delivered["detail"]["receipt"];
    assert_eq!((r["alg"].as_str(), r["keyid"].as_str()), (Some("sm2"), Some("town-sm2")), "{delivered}");
    assert_eq!(r["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b1.as_bytes())), "{delivered}");

    // The message's package carries the receipt, checked offline.
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    let key = HubKey::load_or_create_as(&hub.settings.signing_key_path(), hub.settings.hub.signature)?;
    let keys = |org: &str| {
        let o = hub.settings.org(org)?;
        Some((o.key_alg.as_str().to_string(), o.public_key.clone()?))
    };
    let scope = xj_ledger::bundle::Scope::Message { sender: "qh-market".into(), id: "SR-1".into() };
    let v = eventually(T, "the receipt in SR-1's package", || async {
        let b = xj_ledger::bundle::export(&js, &scope, &keys, &key).await.ok()?;
        let v = xj_ledger::bundle::verify_package(xj_ledger::bundle::layout(&b).as_bytes()).ok()?;
        (v.receipts == 1).then_some(v)
    })
    .await?;
    assert_eq!(v.messages, 1, "{v:?}");
    Ok(())
}
