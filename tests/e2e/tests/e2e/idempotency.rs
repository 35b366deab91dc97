//! Idempotency (docs/api.md): a message id is claimed once per sender; an
//! exact repeat, however the JSON text is laid out, gets the first receipt
//! with 200 and is not delivered again; other content under a used id is a
//! 409; a refused submission does not use its id up.

use futures::TryStreamExt;
use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue};

use crate::common::{WAIT, assert_error, delivered, steps, total_hits, wait_for_step};

/// The same JSON value as text with every object's keys in reverse order
/// and generous whitespace.
fn relaid(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys.reverse();
            let items: Vec<String> =
                keys.iter().map(|k| format!("\n\t{} :  {}", Value::String((*k).clone()), relaid(&map[*k]))).collect();
            format!("{{ {} \n}}", items.join(" ,"))
        }
        Value::Array(a) => format!("[ {} ]", a.iter().map(relaid).collect::<Vec<_>>().join(" , ")),
        other => other.to_string(),
    }
}

async fn post_text(hub: &TestHub, org: &str, text: String) -> anyhow::Result<(u16, Value)> {
    hub.post_raw(&format!("Bearer {}", hub.token(org)), text.into_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exact_repeat_gets_the_first_receipt_and_no_second_delivery() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let msg = sample_clue("I-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, first) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{first}");
    delivered(&hub, "qh-town-dg", "I-1").await?;
    let parties = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?)
        .get_key_value(xj_bus::subjects::KV_PARTIES)
        .await?;
    let keys = || async {
        let mut keys: Vec<String> = parties.keys().await?.try_collect().await?;
        keys.sort();
        anyhow::Ok(keys)
    };
    let known = keys().await?;
    assert!(known.iter().any(|k| first["case"] == k.as_str()), "the case is known: {known:?}");

    // Byte for byte the same.
    let (s, again) = hub.submit("qh-market", &msg).await?;
    assert_eq!((s, &again), (200, &first));
    // Same message, keys in another order, other whitespace.
    let text = relaid(&msg);
    assert_ne!(text.as_bytes(), serde_json::to_vec(&msg)?.as_slice());
    let (s, again) = post_text(&hub, "qh-market", text).await?;
    assert_eq!((s, &again), (200, &first));

    // Other content under the same id: 409, whatever changed.
    let mut other = msg.clone();
    other["body"]["cause"] = "涉嫌无照经营".into();
    let (s, b) = hub.submit("qh-market", &other).await?;
    assert_error(s, &b, 409, "conflict");
    let mut other = msg.clone();
    other["body"]["facts"]["sales_amount"] = json!(1201);
    let (s, b) = hub.submit("qh-market", &other).await?;
    assert_error(s, &b, 409, "conflict");
    // The first receipt still stands.
    let (s, again) = hub.submit("qh-market", &msg).await?;
    assert_eq!((s, &again), (200, &first));
    // No repeat left a case of its own behind, with its sender as party.
    assert_eq!(keys().await?, known);

    // Positive control: a new message to the same town arrives, and the
    // town has had exactly two requests, no duplicate.
    let (s, b) = hub.submit("qh-market", &sample_clue("I-2", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "I-2").await?;
    let town = hub.receiver("qh-town-dg");
    assert_eq!(town.hits(), 2);
    assert_eq!(town.duplicates(), 0);
    assert_eq!(total_hits(&hub), 2);

    // The message was accepted and routed once.
    let t = wait_for_step(&hub, "I-1", "delivered").await?;
    let steps = steps(&t);
    for step in ["accepted", "routed", "delivered"] {
        assert_eq!(steps.iter().filter(|s| *s == step).count(), 1, "one {step:?} hop in {steps:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_repeats_get_one_receipt() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let msg = sample_clue("I-RACE-1", "qh-market", "FOOD-STALL", "990101101");
    let answers = futures::future::join_all((0..8).map(|_| hub.submit("qh-market", &msg)))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let created: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 202).map(|(_, b)| b).collect();
    assert_eq!(created.len(), 1, "exactly one 202: {answers:?}");
    for (s, b) in &answers {
        assert!(*s == 202 || *s == 200, "{s} {b}");
        assert_eq!(b, created[0], "every answer is the first receipt");
    }
    delivered(&hub, "qh-town-dg", "I-RACE-1").await?;
    let (s, b) = hub.submit("qh-market", &sample_clue("I-RACE-2", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "I-RACE-2").await?;
    assert_eq!(total_hits(&hub), 2, "the repeats were not delivered");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_per_sender_and_refusals_do_not_use_them_up() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    // A refused message does not claim its id...
    let mut bad = sample_clue("SAME-1", "qh-market", "FOOD-STALL", "990101101");
    bad["body"].as_object_mut().unwrap().remove("party");
    let (s, b) = hub.submit("qh-market", &bad).await?;
    assert_error(s, &b, 422, "invalid");
    // ...so the corrected one is new.
    let good = sample_clue("SAME-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, market) = hub.submit("qh-market", &good).await?;
    assert_eq!(s, 202, "{market}");
    // Another organisation may use the same id for its own message.
    let eco = sample_clue("SAME-1", "qh-eco", "WASTE-DUMP", "990101102");
    let (s, eco_receipt) = hub.submit("qh-eco", &eco).await?;
    assert_eq!(s, 202, "{eco_receipt}");
    assert_ne!(market["case"], eco_receipt["case"], "two messages, two cases");

    let to_dg = delivered(&hub, "qh-town-dg", "SAME-1").await?;
    let to_xs = delivered(&hub, "qh-town-xs", "SAME-1").await?;
    assert_eq!(to_dg.json["sender"], "qh-market");
    assert_eq!(to_dg.header("xj-case"), market["case"].as_str());
    assert_eq!(to_xs.json["sender"], "qh-eco");
    assert_eq!(to_xs.header("xj-case"), eco_receipt["case"].as_str());
    assert_eq!(total_hits(&hub), 2);
    Ok(())
}

/// Two organisations number a message alike and send it to the same town:
/// two messages, and a receiver that dedupes as docs/api.md says keeps both,
/// because the sender is part of what it dedupes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_from_two_senders_reaches_one_receiver_twice() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    for sender in ["qh-market", "qh-eco"] {
        let msg = sample_clue("TWIN-1", sender, "FOOD-STALL", "990101101");
        let (s, r) = hub.submit(sender, &msg).await?;
        assert_eq!(s, 202, "{r}");
    }
    let got = hub.receiver("qh-town-dg").wait_for(2, WAIT).await?;
    let mut seen: Vec<(String, String)> = got
        .iter()
        .map(|d| {
            assert_eq!(d.header("xj-message-id"), Some("TWIN-1"));
            assert_eq!(d.header("xj-sender"), d.json["sender"].as_str(), "the header names the body's sender");
            (
                d.header("xj-sender").unwrap_or_default().to_string(),
                d.header("webhook-id").unwrap_or_default().to_string(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("qh-eco".to_string(), "qh-eco.TWIN-1.qh-town-dg".to_string()),
            ("qh-market".to_string(), "qh-market.TWIN-1.qh-town-dg".to_string())
        ]
    );
    assert_eq!(hub.receiver("qh-town-dg").duplicates(), 0, "neither was taken for a repeat of the other");
    Ok(())
}

#[test]
fn relaid_text_is_the_same_value() {
    let v = sample_clue("X", "qh-market", "FOOD-STALL", "990101101");
    assert_eq!(serde_json::from_str::<Value>(&relaid(&v)).unwrap(), v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_is_in_flight_is_not_delivered_twice() -> anyhow::Result<()> {
    // Guards the window between the claim and the routed copy: a repeat
    // sent while the first copy is still on its way is not delivered twice.
    let hub = TestHub::start("").await?;
    let msg = sample_clue("I-W-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, first) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{first}");
    let (s, again) = hub.submit("qh-market", &msg).await?;
    assert_eq!((s, &again), (200, &first));
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    let (s, b) = hub.submit("qh-market", &sample_clue("I-W-2", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "I-W-2").await?;
    assert_eq!(hub.receiver("qh-town-dg").hits(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_after_the_duplicate_window_is_not_stored_or_delivered_again() -> anyhow::Result<()> {
    // The streams' duplicate windows (10 minutes) are shrunk here to one
    // second to get past them: an accepted message's claim on its id is
    // its own subject in XJ_ACCEPTED, which keeps one message, however
    // late the repeat.
    let hub = TestHub::start("").await?;
    let js = async_nats::jetstream::new(async_nats::connect(hub.nats.url()).await?);
    for name in ["XJ_ACCEPTED", "XJ_ROUTED", "XJ_EVENTS"] {
        let mut stream = js.get_stream(name).await?;
        let mut cfg = stream.info().await?.config.clone();
        cfg.duplicate_window = std::time::Duration::from_secs(1);
        js.update_stream(&cfg).await?;
    }
    let mut accepted = js.get_stream("XJ_ACCEPTED").await?;

    let msg = sample_clue("I-L-1", "qh-market", "FOOD-STALL", "990101101");
    let (s, first) = hub.submit("qh-market", &msg).await?;
    assert_eq!(s, 202, "{first}");
    delivered(&hub, "qh-town-dg", "I-L-1").await?;
    let stored = accepted.info().await?.state.messages;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;

    let (s, again) = hub.submit("qh-market", &msg).await?;
    assert_eq!((s, &again), (200, &first));
    // Past the window, the stream still refused the repeat.
    assert_eq!(accepted.info().await?.state.messages, stored, "the repeat is not in the intake stream");

    let (s, b) = hub.submit("qh-market", &sample_clue("I-L-2", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "I-L-2").await?;
    // Wait until the router has dealt with everything in the intake stream.
    xj_testkit::eventually(WAIT, "the router to finish the intake stream", || {
        let js = js.clone();
        async move {
            let stream = js.get_stream("XJ_ACCEPTED").await.ok()?;
            let i = stream.consumer_info("router").await.ok()?;
            (i.num_pending == 0 && i.num_ack_pending == 0).then_some(())
        }
    })
    .await?;
    // Let a copy routed by mistake reach the town before counting.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let town = hub.receiver("qh-town-dg");
    assert_eq!(town.duplicates(), 0, "the first message was delivered again");
    assert_eq!(town.hits(), 2);
    Ok(())
}
