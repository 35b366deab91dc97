//! `POST /v1/messages/batch` (docs/api.md, "Batches"): each message gets
//! exactly the answer `POST /v1/messages` would have given it, in order;
//! one bad message refuses only itself; a batch that cannot be read as one
//! is refused whole, saying where; messages naming one case keep their order.

use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

use crate::common::{WAIT, assert_error, delivered, pointers, total_hits, wait_for_case};

async fn post_batch(hub: &TestHub, org: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value, Option<String>)> {
    let r = hub
        .http
        .post(format!("{}/v1/messages/batch", hub.base))
        .bearer_auth(hub.token(org))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let sig = r.headers().get("xj-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok((status, r.json().await.unwrap_or(Value::Null), sig))
}

fn batch_of(messages: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "messages": messages })).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_gets_the_answer_it_would_get_alone() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let good = sample_clue("B-1", "qh-market", "FOOD-STALL", "990101101");
    let mut bad = sample_clue("B-2", "qh-market", "FOOD-STALL", "990101101");
    bad["body"].as_object_mut().map(|b| b.remove("party"));
    let foreign = sample_clue("B-3", "qh-eco", "WASTE-DUMP", "990101102");
    let other = sample_clue("B-4", "qh-market", "FOOD-STALL", "990101101");
    let body = batch_of(&[good.clone(), bad.clone(), foreign.clone(), json!("not an envelope"), other.clone()]);
    let (s, answer, sig) = post_batch(&hub, "qh-market", body.clone()).await?;
    assert_eq!(s, 207, "{answer}");
    assert!(sig.is_some_and(|s| s.contains("sig=")), "the answer is signed like a receipt");
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<u64> = results.iter().filter_map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [202, 422, 403, 400, 202], "{answer}");
    assert_eq!(results[0]["body"]["id"], "B-1");
    assert!(results[0]["body"]["case"].as_str().is_some_and(|c| c.starts_with("XJ-")), "{answer}");
    assert_error(422, &results[1]["body"], 422, "invalid");
    assert!(pointers(&results[1]["body"]).iter().any(|p| p.contains("party")), "{answer}");
    assert_error(403, &results[2]["body"], 403, "forbidden");
    assert_eq!(results[4]["body"]["id"], "B-4");

    // Exactly what the single endpoint says about the same messages.
    let (s, alone) = hub.submit("qh-market", &bad).await?;
    assert_eq!((s, &alone), (422, &results[1]["body"]));
    let (s, alone) = hub.submit("qh-market", &good).await?;
    assert_eq!((s, &alone), (200, &results[0]["body"]), "a repeat of B-1 gets its first receipt");

    delivered(&hub, "qh-town-dg", "B-1").await?;
    delivered(&hub, "qh-town-dg", "B-4").await?;
    // The same batch again: repeats answered with their first receipts,
    // nothing delivered twice.
    let (s, again, _) = post_batch(&hub, "qh-market", body).await?;
    assert_eq!(s, 207);
    assert_eq!(again["results"][0], json!({ "status": 200, "body": results[0]["body"] }));
    assert_eq!(again["results"][4]["status"], 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(total_hits(&hub), 2, "two messages, two deliveries");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_is_not_one_is_refused_whole() -> anyhow::Result<()> {
    let hub = TestHub::start("[http]\nmax_batch_bytes = 20000\n").await?;
    let (s, b, _) = post_batch(&hub, "qh-market", b"{\"messages\": [".to_vec()).await?;
    assert_error(s, &b, 400, "malformed");
    assert!(b["details"][0]["line"].is_number(), "{b}");
    for body in [json!({}), json!({ "messages": {} }), json!({ "messages": [] }), json!([1, 2])] {
        let (s, b, _) = post_batch(&hub, "qh-market", serde_json::to_vec(&body)?).await?;
        assert_error(s, &b, 422, "invalid");
        assert_eq!(pointers(&b), vec!["/messages".to_string()], "{body}: {b}");
    }
    let many: Vec<Value> = (0..501).map(|i| json!({ "id": format!("N-{i}") })).collect();
    let (s, b, _) = post_batch(&hub, "qh-market", batch_of(&many)).await?;
    assert_error(s, &b, 422, "invalid");
    assert!(b["details"][0]["message"].as_str().is_some_and(|m| m.contains("501")), "{b}");
    let big: Vec<Value> =
        (0..40).map(|i| sample_clue(&format!("BIG-{i}"), "qh-market", "FOOD-STALL", "990101101")).collect();
    let (s, b, _) = post_batch(&hub, "qh-market", batch_of(&big)).await?;
    assert_error(s, &b, 413, "too_large");
    // Operators do not submit; nobody without a token does either.
    let r = hub
        .http
        .post(format!("{}/v1/messages/batch", hub.base))
        .bearer_auth(hub.operator_token())
        .body(batch_of(&[sample_clue("OP-1", "qh-market", "FOOD-STALL", "990101101")]))
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    let r = hub.http.post(format!("{}/v1/messages/batch", hub.base)).body("{}").send().await?;
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(total_hits(&hub), 0, "nothing was accepted");
    Ok(())
}

/// Messages naming one case are accepted in the batch's order: their
/// sequences in `XJ_ACCEPTED` (each message's `seq` in the case record)
/// follow the batch. (Delivery order to a receiver is not promised: two
/// copies in flight at once may cross, docs/api.md.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_on_one_case_keep_the_batch_order() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (s, first) = hub.submit("qh-market", &sample_clue("ORD-0", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{first}");
    let ids: Vec<String> = (1..=12).map(|i| format!("ORD-{i}")).collect();
    let follow: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut m = sample_clue(id, "qh-market", "FOOD-STALL", "990101101");
            m["case"] = first["case"].clone();
            m
        })
        .collect();
    let (s, answer, _) = post_batch(&hub, "qh-market", batch_of(&follow)).await?;
    assert_eq!(s, 207, "{answer}");
    assert!(answer["results"].as_array().is_some_and(|r| r.iter().all(|r| r["status"] == 202)), "{answer}");
    hub.receiver("qh-town-dg").wait_for(13, WAIT).await?;
    let record = wait_for_case(&hub, first["case"].as_str().unwrap_or_default(), 13).await?;
    let seq_of = |id: &str| {
        record["messages"].as_array().and_then(|m| m.iter().find(|m| m["id"] == id)).and_then(|m| m["seq"].as_u64())
    };
    let seqs: Vec<Option<u64>> = ids.iter().map(|id| seq_of(id)).collect();
    assert!(seqs.iter().all(Option::is_some), "{record}");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "accepted out of the batch's order: {seqs:?}");
    Ok(())
}

/// One POST: its headers and body.
type Post = (axum::http::HeaderMap, Vec<u8>);

/// What the batching town's system got: each POST's headers and body.
#[derive(Clone, Default)]
struct Posts {
    got: std::sync::Arc<std::sync::Mutex<Vec<Post>>>,
    /// Answers 503 to this many POSTs first.
    fail_first: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn take_batch(
    axum::extract::State(p): axum::extract::State<Posts>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    use std::sync::atomic::Ordering;
    if p.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    p.got.lock().unwrap_or_else(|e| e.into_inner()).push((headers, body.to_vec()));
    axum::http::StatusCode::OK
}

/// `deliver = { webhook, batch = 10 }` (docs/api.md, "Batched delivery"):
/// a backlog of 25 referrals reaches the town in POSTs of up to 10 as
/// `{"messages": […]}`, each signed whole (`Xj-Batch-Signature`) and with
/// Standard Webhooks; a batch answered 503 is retried and nothing is lost
/// or delivered twice; every message's trace says delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_that_takes_batches_gets_its_backlog_in_signed_batches() -> anyhow::Result<()> {
    use xj::hub::Service;
    let posts = Posts::default();
    posts.fail_first.store(1, std::sync::atomic::Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/batch", listener.local_addr()?);
    let app = axum::Router::new().fallback(take_batch).with_state(posts.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let extra = format!(
        "[courier]\nbackoff_initial_ms = 100\nbackoff_max_ms = 300\n\n\
         [[org]]\nid = \"qh-town-nb\"\nname = \"南关镇人民政府\"\nkind = \"town_government\"\nregion = \"990101104\"\n\
         token = \"token-qh-town-nb-0123456789\"\ndeliver = {{ webhook = \"{url}\", batch = 10 }}\n\
         webhook_secret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n"
    );
    // The courier starts once the backlog is routed, so copies are there together.
    let hub = TestHub::start_services(&extra, &[Service::Gateway, Service::Router, Service::Tracker, Service::Ledger])
        .await?;
    let ids: Vec<String> = (1..=25).map(|i| format!("NB-{i:02}")).collect();
    let messages: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut m = sample_clue(id, "qh-market", "FOOD-STALL", "990101104");
            m["recipient"] = "qh-town-nb".into();
            m
        })
        .collect();
    let (s, answer, _) = post_batch(&hub, "qh-market", batch_of(&messages)).await?;
    assert_eq!(s, 207, "{answer}");
    for id in &ids {
        xj_testkit::eventually(WAIT, "routed", || async {
            let (_, t) = hub.get(&format!("/v1/messages/{id}/trace"), &hub.operator_token()).await.ok()?;
            t["hops"].as_array()?.iter().any(|h| h["step"] == "routed").then_some(())
        })
        .await?;
    }
    let _courier = hub.service(Service::Courier).await?;
    let seen = xj_testkit::eventually(WAIT, "all 25 delivered", || async {
        let got = posts.got.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let n: usize = got
            .iter()
            .filter_map(|(_, b)| serde_json::from_slice::<Value>(b).ok())
            .map(|v| v["messages"].as_array().map_or(0, Vec::len))
            .sum();
        (n >= 25).then_some(got)
    })
    .await?;
    let (kid, public_key) = crate::common::hub_key(&hub).await?;
    let mut delivered_ids = std::collections::BTreeSet::new();
    let mut largest = 0;
    for (headers, body) in &seen {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
        let sig = h("xj-batch-signature");
        assert!(sig.contains(&format!("keyid={kid}")), "{sig}");
        xj_bus::signing::verify_header(&public_key, &sig, body).expect("Xj-Batch-Signature is over the exact body");
        xj_bus::webhooks::verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", body, headers)
            .expect("Standard Webhooks verifies the batch too");
        let v: Value = serde_json::from_slice(body)?;
        let list = v["messages"].as_array().cloned().unwrap_or_default();
        assert!((1..=10).contains(&list.len()), "{} messages in one POST", list.len());
        assert_eq!(h("xj-batch-size"), list.len().to_string());
        largest = largest.max(list.len());
        for m in list {
            assert_eq!(m["sender"], "qh-market");
            assert!(m["case"].as_str().is_some_and(|c| c.starts_with("XJ-")), "{m}");
            assert!(delivered_ids.insert(m["id"].as_str().unwrap_or_default().to_string()), "{m} delivered twice");
        }
    }
    assert_eq!(delivered_ids.into_iter().collect::<Vec<_>>(), ids, "every message once");
    assert!(largest > 1, "a backlog goes in batches, not one by one");
    for id in &ids {
        xj_testkit::eventually(WAIT, "delivered in the trace", || async {
            let (_, t) = hub.get(&format!("/v1/messages/{id}/trace"), &hub.token("qh-market")).await.ok()?;
            t["hops"]
                .as_array()?
                .iter()
                .any(|h| h["step"] == "delivered" && h["detail"]["recipient"] == "qh-town-nb")
                .then_some(())
        })
        .await?;
    }
    Ok(())
}
