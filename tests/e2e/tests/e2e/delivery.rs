//! Webhook delivery when the receiver fails (docs/api.md, "Delivery"): retried with
//! exponential backoff until it answers 2xx; after the configured attempts
//! the delivery is a dead letter an operator lists and replays.

use std::collections::HashMap;
use xj_bus::headers::Put;

use serde_json::Value;
use xj_testkit::{ORGS, Receiver, TestHub, TestNats, county_config, eventually, sample_clue};

use crate::common::{WAIT, assert_delivery, assert_error, delivered, hub_key, steps, trace, wait_for_step};

/// Fast retries so the tests take milliseconds.
fn courier(max_attempts: u32) -> String {
    format!("[courier]\nmax_attempts = {max_attempts}\nbackoff_initial_ms = 20\nbackoff_max_ms = 100\n")
}

async fn dead_letters(hub: &TestHub, token: &str) -> anyhow::Result<(u16, Value)> {
    hub.get("/v1/admin/dead-letters", token).await
}

async fn replay(hub: &TestHub, seq: u64, token: &str) -> anyhow::Result<(u16, Value)> {
    let r = hub
        .http
        .post(format!("{}/v1/admin/dead-letters/{seq}/replay", hub.base))
        .bearer_auth(token)
        .header("x-operator", "duty-officer-li")
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// Waits until the operator's list has `n` dead letters; returns them.
async fn wait_for_dead(hub: &TestHub, n: usize) -> anyhow::Result<Vec<Value>> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("{n} dead letter(s)"), || async {
        let (s, b) = dead_letters(hub, &op).await.ok()?;
        let list = b["dead_letters"].as_array()?.clone();
        (s == 200 && list.len() >= n).then_some(list)
    })
    .await
}

fn hops<'a>(t: &'a Value, step: &str) -> Vec<&'a Value> {
    t["hops"].as_array().map(|a| a.iter().filter(|h| h["step"] == step).collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_until_it_answers() -> anyhow::Result<()> {
    let hub = TestHub::start(&courier(6)).await?;
    let (kid, pk) = hub_key(&hub).await?;
    let town = hub.receiver("qh-town-dg");
    town.fail_next(3);
    let msg = sample_clue("D-RETRY-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, receipt) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{receipt}");

    let d = delivered(&hub, "qh-town-dg", "D-RETRY-1").await?;
    assert_eq!(d.header("xj-delivery-attempt"), Some("4"));
    assert_delivery(&d, &receipt, &kid, &pk);
    assert_eq!(town.hits(), 4, "three refusals and one success");
    assert_eq!(town.deliveries().len(), 1);
    assert_eq!(town.duplicates(), 0);

    // The trace shows each failed attempt with the wait before the next,
    // doubling from backoff_initial_ms.
    let t = wait_for_step(&hub, "D-RETRY-1", "delivered").await?;
    assert_eq!(
        steps(&t),
        ["accepted", "routed", "attempt", "attempt", "attempt", "delivered"],
        "hops in the order they happened"
    );
    let attempts = hops(&t, "attempt");
    assert_eq!(attempts.len(), 3, "{}", t["hops"]);
    for (i, (hop, wait)) in attempts.iter().zip([20, 40, 80]).enumerate() {
        assert_eq!(hop["detail"]["attempt"], i as u64 + 1, "{hop}");
        assert_eq!(hop["detail"]["status"], 503, "{hop}");
        assert_eq!(hop["detail"]["retry_in_ms"], wait, "{hop}");
    }
    let done = hops(&t, "delivered");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["detail"]["attempt"], 4);
    assert!(hops(&t, "dead").is_empty());
    let (s, b) = dead_letters(&hub, &hub.operator_token()).await?;
    assert_eq!(s, 200);
    assert_eq!(b["dead_letters"], serde_json::json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_a_dead_letter_is_listed_and_replayed() -> anyhow::Result<()> {
    let hub = TestHub::start(&courier(3)).await?;
    let (kid, pk) = hub_key(&hub).await?;
    let op = hub.operator_token();
    let town = hub.receiver("qh-town-dg");
    town.set_failing(true);
    let msg = sample_clue("D-DEAD-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, receipt) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{receipt}");

    let list = wait_for_dead(&hub, 1).await?;
    assert_eq!(list.len(), 1, "{list:?}");
    let dl = &list[0];
    assert_eq!(dl["org"], "qh-town-dg", "{dl}");
    assert_eq!(dl["id"], "D-DEAD-1");
    assert_eq!(dl["sender"], "qh-market");
    assert_eq!(dl["case"], receipt["case"]);
    assert_eq!(dl["attempts"], 3, "{dl}");
    assert!(dl["reason"].as_str().is_some_and(|r| r.contains("503")), "{dl}");
    assert_eq!(dl["payload"]["id"], "D-DEAD-1");
    assert_eq!(town.hits(), 3, "exactly max_attempts tries");
    assert!(town.deliveries().is_empty());
    let t = wait_for_step(&hub, "D-DEAD-1", "dead").await?;
    assert_eq!(hops(&t, "attempt").len(), 2, "{}", t["hops"]);
    let seq = dl["seq"].as_u64().expect("a sequence number");

    // Only operators see or replay dead letters.
    let (s, b) = dead_letters(&hub, &hub.token("qh-town-dg")).await?;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = dead_letters(&hub, "no-such-token").await?;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = replay(&hub, seq, &hub.token("qh-market")).await?;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = replay(&hub, seq + 1000, &op).await?;
    assert_error(s, &b, 404, "not_found");
    assert_eq!(wait_for_dead(&hub, 1).await?.len(), 1, "refused replays change nothing");

    // The town is back; the operator replays.
    town.set_failing(false);
    let (s, b) = replay(&hub, seq, &op).await?;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["replayed"], seq);
    assert_eq!(b["id"], "D-DEAD-1");
    assert_eq!(b["org"], "qh-town-dg");
    let d = delivered(&hub, "qh-town-dg", "D-DEAD-1").await?;
    assert_delivery(&d, &receipt, &kid, &pk);
    assert_eq!(town.deliveries().len(), 1);
    assert_eq!(town.duplicates(), 0);
    let (s, b) = dead_letters(&hub, &op).await?;
    assert_eq!(s, 200);
    assert_eq!(b["dead_letters"], serde_json::json!([]), "{b}");
    let (s, b) = replay(&hub, seq, &op).await?;
    assert_error(s, &b, 404, "not_found");

    let t = wait_for_step(&hub, "D-DEAD-1", "delivered").await?;
    let st = steps(&t);
    let at = |step: &str| st.iter().position(|s| s == step).unwrap_or(usize::MAX);
    assert!(at("dead") < at("replayed") && at("replayed") < at("delivered"), "{st:?}");
    let replayed = hops(&t, "replayed");
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0]["detail"]["replayed_by"], "duty-officer-li");
    assert_eq!(replayed[0]["trace_id"], receipt["trace_id"], "the replay continues the message's trace");
    // The sender sees the whole story of its message too.
    let (s, t) = trace(&hub, "D-DEAD-1", &hub.token("qh-market")).await?;
    assert_eq!(s, 200);
    assert!(steps(&t).iter().any(|s| s == "replayed"), "{t}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_ends_as_a_dead_letter() -> anyhow::Result<()> {
    // The county as usual, except that nothing listens at the town's URL.
    let nats = TestNats::start()?;
    let mut receivers = HashMap::new();
    for (id, ..) in ORGS {
        if *id != "qh-town-xs" {
            receivers.insert(id.to_string(), Receiver::start().await?);
        }
    }
    let mut urls: HashMap<String, String> = receivers.iter().map(|(k, r)| (k.clone(), r.url())).collect();
    let (_refusing, addr) = xj_testkit::refusing_address()?;
    urls.insert("qh-town-xs".into(), format!("http://{addr}/inbox"));
    let text = format!(
        "{}\n[data]\ndir = \"{}\"\n{}",
        county_config(&urls),
        nats.dir.path().join("data").display(),
        courier(2)
    );
    let settings = std::sync::Arc::new(xj_config::load_str(&text, "test.toml")?);
    let hub = TestHub::start_with(nats, settings, receivers).await?;

    let msg = sample_clue("D-DOWN-1", "qh-market", "WASTE-DUMP", "990101102");
    let (s, b) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{b}");
    let list = wait_for_dead(&hub, 1).await?;
    assert_eq!(list[0]["org"], "qh-town-xs");
    assert_eq!(list[0]["attempts"], 2);
    assert!(list[0]["reason"].as_str().is_some_and(|r| r.contains("connection")), "{}", list[0]);
    Ok(())
}

/// A receiver that answers but refuses one message (400: the message, not
/// the receiver, is the problem) does not hold up the ones after it: they
/// arrive at once, while the refused one is retried on its own and arrives
/// when the receiver takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_does_not_hold_up_the_next() -> anyhow::Result<()> {
    let hub = TestHub::start(&courier(1000)).await?;
    let town = hub.receiver("qh-town-dg");
    town.refuse("RF-1", true);
    for id in ["RF-1", "RF-2", "RF-3"] {
        let (s, b) = hub.submit("qh-market", &sample_clue(id, "qh-market", "FOOD-STALL", "990101101")).await?;
        assert_eq!(s, 202, "{b}");
    }
    let got = town.wait_for(2, WAIT).await?;
    let mut ids: Vec<&str> = got.iter().filter_map(|d| d.header("xj-message-id")).collect();
    ids.sort();
    assert_eq!(ids, ["RF-2", "RF-3"], "the two after the refused one arrive without waiting for it");
    let t = wait_for_step(&hub, "RF-1", "attempt").await?;
    assert!(steps(&t).iter().all(|s| s != "waiting"), "nothing waited behind a refusal: {:?}", steps(&t));
    town.refuse("RF-1", false);
    let got = town.wait_for(3, WAIT).await?;
    assert_eq!(got[2].header("xj-message-id"), Some("RF-1"));
    assert!(got[2].header("xj-delivery-attempt").and_then(|a| a.parse::<u32>().ok()).is_some_and(|a| a > 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_goes_out_in_the_order_the_messages_were_accepted() -> anyhow::Result<()> {
    // The router routes many messages at once, so on a busy hub copies can
    // be stored in another order than their messages were accepted. Here
    // three copies for a town that is down are stored in the order 30, 10,
    // 20 of acceptance; when the town is back they arrive as 10, 20, 30.
    // The courier starts once all three are stored, so it takes them
    // together: on a busy machine a running courier could take (and try)
    // the first alone, which then heads the line.
    use xj::hub::Service;
    let hub = TestHub::start_services(
        &courier(1000),
        &[Service::Gateway, Service::Router, Service::Tracker, Service::Ledger],
    )
    .await?;
    let town = hub.receiver("qh-town-dg");
    town.go_down();
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    for accepted in [30u64, 10, 20] {
        let id = format!("D-ORDER-{accepted}");
        let mut msg = sample_clue(&id, "qh-market", "FOOD-STALL", "990101101");
        msg["case"] = format!("XJ-20261121-ORDER{accepted}").into();
        let mut hd = async_nats::HeaderMap::new();
        hd.put("Nats-Msg-Id", format!("qh-market:{id}:qh-town-dg").as_str());
        hd.put("Xj-Message-Id", id.as_str());
        hd.put("Xj-Sender", "qh-market");
        hd.put("Xj-Case", msg["case"].as_str().unwrap_or_default());
        hd.put("Xj-Recipient", "qh-town-dg");
        hd.put("Xj-Rule", "test");
        hd.put("Xj-Rule-Version", "test");
        hd.put("Xj-Accepted-Seq", accepted.to_string().as_str());
        js.publish_with_headers("xj.routed.qh-town-dg", hd, serde_json::to_vec(&msg)?.into()).await?.await?;
    }
    let _courier = hub.service(Service::Courier).await?;
    // All three reached the courier and wait (none acknowledged).
    eventually(WAIT, "three copies waiting at the courier", || {
        let js = js.clone();
        async move {
            let i = js.get_stream("XJ_ROUTED").await.ok()?.consumer_info("courier").await.ok()?;
            (i.num_pending == 0 && i.num_ack_pending == 3).then_some(())
        }
    })
    .await?;
    town.come_back().await?;
    let got = town.wait_for(3, WAIT).await?;
    let order: Vec<&str> = got.iter().filter_map(|d| d.header("xj-message-id")).collect();
    assert_eq!(order, ["D-ORDER-10", "D-ORDER-20", "D-ORDER-30"]);

    // The router writes the header on the copies it makes.
    let (s, b) = hub.submit("qh-market", &sample_clue("D-ORDER-R", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "D-ORDER-R").await?;
    let accepted =
        js.get_stream("XJ_ACCEPTED").await?.get_last_raw_message_by_subject("xj.accepted.qh-market.D-ORDER-R").await?;
    let copy = js.get_stream("XJ_ROUTED").await?.get_last_raw_message_by_subject("xj.routed.qh-town-dg").await?;
    let header = copy.headers.get("Xj-Accepted-Seq").map(|v| v.as_str().to_string());
    assert_eq!(header, Some(accepted.sequence.to_string()));
    Ok(())
}

/// A receiver that speaks HTTP/2 without TLS (`deliver = { webhook =
/// "http://…", http2 = true }`) gets its deliveries over HTTP/2 — many at
/// once on one connection — signed over the exact body as ever; receivers
/// without the key still get HTTP/1.1 with kept-alive connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_receiver_gets_its_deliveries_over_http2() -> anyhow::Result<()> {
    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::Version, axum::http::HeaderMap, bytes::Bytes)>>>;
    let seen: Seen = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/h2", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(
            |axum::extract::State(seen): axum::extract::State<Seen>,
             version: axum::http::Version,
             headers: axum::http::HeaderMap,
             body: bytes::Bytes| async move {
                seen.lock().unwrap_or_else(|p| p.into_inner()).push((version, headers, body));
                axum::http::StatusCode::OK
            },
        )
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let extra = format!(
        "[[org]]\nid = \"qh-town-nb\"\nname = \"南关镇人民政府\"\nkind = \"town_government\"\nregion = \"990101104\"\n\
         token = \"token-qh-town-nb-0123456789\"\ndeliver = {{ webhook = \"{url}\", http2 = true }}\n"
    );
    let hub = TestHub::start(&extra).await?;
    let ids: Vec<String> = (1..=8).map(|i| format!("H2-{i}")).collect();
    let mut receipts = Vec::new();
    for id in &ids {
        let mut m = sample_clue(id, "qh-market", "FOOD-STALL", "990101104");
        m["recipient"] = "qh-town-nb".into();
        let (s, r) = hub.submit("qh-market", &m).await?;
        assert_eq!(s, 202, "{r}");
        receipts.push(r);
    }
    // And one for a town without the key.
    let (s, r) = hub.submit("qh-market", &sample_clue("H1-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{r}");
    let got = eventually(WAIT, "eight deliveries over HTTP/2", || async {
        let got = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (got.len() >= ids.len()).then_some(got)
    })
    .await?;
    let (kid, public_key) = hub_key(&hub).await?;
    let mut arrived = Vec::new();
    for (version, headers, body) in &got {
        assert_eq!(*version, axum::http::Version::HTTP_2, "{headers:?}");
        let sig = headers.get("xj-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(sig.contains(&format!("keyid={kid}")), "{sig}");
        xj_bus::signing::verify_header(&public_key, sig, body).expect("Xj-Signature is over the exact body");
        arrived.push(headers.get("xj-message-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string());
    }
    arrived.sort();
    assert_eq!(arrived, ids, "each once");
    let plain = delivered(&hub, "qh-town-dg", "H1-1").await?;
    assert_eq!(plain.version, axum::http::Version::HTTP_11);
    Ok(())
}
