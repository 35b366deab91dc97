//! An organisation's NATS connection, used the way an attacker or a sloppy
//! third-party client would: every `$JS` request it can name, pull requests
//! whose reply subject points into the hub, consumers it tries to make,
//! subscriptions on everything, raw protocol with broken headers, poison
//! payloads. The hub runs behind the accounts `xj nats-config` generates
//! (each NATS-native organisation an account of its own).

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use xj_bus::headers::Put;
use xj_testkit::{NATS_AGRI, NATS_TRANSPORT, TestHub, eventually, sample_clue};

const WAIT: Duration = Duration::from_secs(20);

/// The two NATS-native bureaus every test here starts with.
fn nats_orgs() -> String {
    format!("{NATS_AGRI}{NATS_TRANSPORT}")
}

/// What the hub's account holds: every stream with its message count and
/// consumers, and the ledger's verdict. Nothing an organisation does from
/// its own connection may change it (beyond its own messages' effects).
#[derive(Debug, PartialEq)]
struct HubState {
    streams: Vec<(String, u64, Vec<String>)>,
}

async fn hub_state(svc: &async_nats::Client) -> anyhow::Result<HubState> {
    let js = async_nats::jetstream::new(svc.clone());
    let mut names: Vec<String> = js.stream_names().filter_map(|n| async { n.ok() }).collect().await;
    names.sort();
    let mut streams = Vec::new();
    for name in names {
        let mut s = js.get_stream(&name).await?;
        let messages = s.info().await?.state.messages;
        let mut consumers: Vec<String> = s.consumer_names().filter_map(|n| async { n.ok() }).collect().await;
        consumers.sort();
        streams.push((name, messages, consumers));
    }
    Ok(HubState { streams })
}

/// The hub's state once its own work in flight (events, ledger, case
/// records) has finished: two readings a second apart agree.
async fn settled(svc: &async_nats::Client) -> anyhow::Result<HubState> {
    let mut last = hub_state(svc).await?;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = hub_state(svc).await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    anyhow::bail!("the hub never settled: {last:?}")
}

async fn ledger_intact(svc: &async_nats::Client) -> anyhow::Result<()> {
    let js = async_nats::jetstream::new(svc.clone());
    match xj_ledger::verify_live(&js).await? {
        Ok(_) => Ok(()),
        Err(b) => anyhow::bail!("ledger broken: {b:?}"),
    }
}

/// Publishes `subject` with `reply` (which may be anything) and returns
/// whatever answers within a short while.
async fn raw_request(client: &async_nats::Client, subject: &str, reply: &str, body: Value) -> Option<Vec<u8>> {
    let mut sub = client.subscribe(reply.to_string()).await.ok()?;
    client.publish_with_reply(subject.to_string(), reply.to_string(), body.to_string().into()).await.ok()?;
    client.flush().await.ok()?;
    match tokio::time::timeout(Duration::from_millis(700), sub.next()).await {
        Ok(Some(m)) => Some(m.payload.to_vec()),
        _ => None,
    }
}

/// An organisation's JetStream context: the hub's consumer API under the
/// prefix its account imports it as.
fn org_js(client: &async_nats::Client) -> async_nats::jetstream::Context {
    async_nats::jetstream::with_prefix(client.clone(), xj::nats_auth::ORG_API_PREFIX)
}

/// The organisation's own outbox, through the consumer the hub made for it.
async fn own_outbox(
    js: &async_nats::jetstream::Context,
    org: &str,
) -> anyhow::Result<async_nats::jetstream::consumer::pull::Stream> {
    let consumer: async_nats::jetstream::consumer::PullConsumer = js.get_consumer_from_stream(org, "XJ_OUT").await?;
    Ok(consumer.messages().await?)
}

async fn next(
    out: &mut async_nats::jetstream::consumer::pull::Stream,
) -> anyhow::Result<async_nats::jetstream::Message> {
    let m = tokio::time::timeout(WAIT, out.next()).await?.ok_or_else(|| anyhow::anyhow!("outbox closed"))?;
    let m = m.map_err(anyhow::Error::msg)?;
    m.ack().await.map_err(anyhow::Error::msg)?;
    Ok(m)
}

/// Submits on `xj.in.<org>` and returns the hub's answer from its outbox.
async fn submit(
    js: &async_nats::jetstream::Context,
    out: &mut async_nats::jetstream::consumer::pull::Stream,
    org: &str,
    msg: &Value,
) -> anyhow::Result<(String, Value)> {
    js.publish(format!("xj.in.{org}"), serde_json::to_vec(msg)?.into()).await?.await?;
    let answer = next(out).await?;
    let status = answer.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.to_string()).unwrap_or_default();
    Ok((status, serde_json::from_slice(&answer.payload)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_account_reaches_only_its_intake_and_its_own_consumer() -> anyhow::Result<()> {
    let hub = TestHub::start_secured(&nats_orgs()).await?;
    let (transport, _) = hub.connect_as("qh-transport").await?;
    let tjs = org_js(&transport);
    tjs.publish(
        "xj.in.qh-transport",
        serde_json::to_vec(&sample_clue("TR-1", "qh-transport", "FOOD-STALL", "990101101"))?.into(),
    )
    .await?
    .await?;

    let (agri, _) = hub.connect_as("qh-agri").await?;
    let js = org_js(&agri);
    let mut out = own_outbox(&js, "qh-agri").await?;
    let (status, receipt) =
        submit(&js, &mut out, "qh-agri", &sample_clue("AG-1", "qh-agri", "FOOD-STALL", "990101101")).await?;
    assert_eq!((status.as_str(), receipt["id"].as_str()), ("202", Some("AG-1")), "{receipt}");

    let svc = hub.connect_services().await?;
    let before = hub_state(&svc).await?;
    // Another organisation's consumer, any consumer of its own making, the
    // streams themselves: none of it exists for this account.
    assert!(
        js.get_consumer_from_stream::<async_nats::jetstream::consumer::pull::Config, _, _>("qh-transport", "XJ_OUT")
            .await
            .is_err()
    );
    assert!(js.get_stream("XJ_OUT").await.is_err());
    assert!(
        js.create_consumer_on_stream(
            async_nats::jetstream::consumer::pull::Config {
                durable_name: Some("qh-agri-2".into()),
                filter_subject: "xj.out.qh-transport".into(),
                ..Default::default()
            },
            "XJ_OUT",
        )
        .await
        .is_err()
    );
    // Subscriptions see nothing of the hub's traffic, not even with `>`.
    let mut everything = agri.subscribe(">").await?;
    agri.flush().await?;
    tjs.publish(
        "xj.in.qh-transport",
        serde_json::to_vec(&sample_clue("TR-2", "qh-transport", "FOOD-STALL", "990101101"))?.into(),
    )
    .await?
    .await?;
    hub.receiver("qh-town-dg").wait_for(3, WAIT).await?;
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), everything.next()).await {
        panic!("qh-agri's account saw {} ({} bytes)", m.subject, m.payload.len());
    }
    // Publishing as another organisation, or into an outbox, reaches nothing.
    let forged = sample_clue("FORGED-1", "qh-transport", "FOOD-STALL", "990101101");
    assert!(js.publish("xj.in.qh-transport", serde_json::to_vec(&forged)?.into()).await?.await.is_err());
    assert!(js.publish("xj.out.qh-transport", b"{}".to_vec().into()).await?.await.is_err());

    let after = hub_state(&svc).await?;
    let count = |s: &HubState, name: &str| s.streams.iter().find(|(n, ..)| n == name).map(|(_, m, _)| *m);
    assert_eq!(count(&after, "XJ_IN"), Some(3), "only the three genuine submissions reached XJ_IN");
    let consumers = |s: &HubState| s.streams.iter().map(|(n, _, c)| (n.clone(), c.clone())).collect::<Vec<_>>();
    assert_eq!(consumers(&before), consumers(&after), "no consumer was made or removed");
    ledger_intact(&svc).await?;

    // A webhook organisation has no NATS user; a wrong password is refused.
    assert!(
        async_nats::ConnectOptions::with_user_and_password("qh-market".into(), hub.token("qh-market"))
            .connect(hub.nats.url())
            .await
            .is_err()
    );
    assert!(
        async_nats::ConnectOptions::with_user_and_password("qh-agri".into(), "wrong-password".into())
            .connect(hub.nats.url())
            .await
            .is_err()
    );
    Ok(())
}

/// The attack that broke the ledger: a pull request whose reply subject is
/// a hub subject. The pulled message goes to that subject in the
/// organisation's own account (where it can read it), never into the hub's
/// streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_request_cannot_aim_its_reply_into_the_hub() -> anyhow::Result<()> {
    let hub = TestHub::start_secured(&nats_orgs()).await?;
    let (agri, _) = hub.connect_as("qh-agri").await?;
    let js = org_js(&agri);
    // Three answers wait in qh-agri's outbox.
    for i in 1..=3 {
        js.publish(
            "xj.in.qh-agri",
            serde_json::to_vec(&sample_clue(&format!("AG-{i}"), "qh-agri", "FOOD-STALL", "990101101"))?.into(),
        )
        .await?
        .await?;
    }
    let svc = hub.connect_services().await?;
    hub.receiver("qh-town-dg").wait_for(3, WAIT).await?;
    let sjs = async_nats::jetstream::new(svc.clone());
    eventually(WAIT, "three answers in XJ_OUT", || async {
        let mut s = sjs.get_stream("XJ_OUT").await.ok()?;
        (s.info().await.ok()?.state.messages >= 3).then_some(())
    })
    .await?;
    let before = settled(&svc).await?;
    let ledger_before = before.streams.iter().find(|(n, ..)| n == "XJ_LEDGER").map(|(_, m, _)| *m);

    let mut pulled = 0;
    for reply in ["xj.ledger", "xj.accepted.qh-transport.EVIL-1", "xj.routed.qh-town-dg"] {
        let got = raw_request(
            &agri,
            &format!("{}.CONSUMER.MSG.NEXT.XJ_OUT.qh-agri", xj::nats_auth::ORG_API_PREFIX),
            reply,
            json!({ "batch": 1, "expires": 500_000_000 }),
        )
        .await;
        // The message arrived on the organisation's own subject of that name.
        if got.as_deref().is_some_and(|b| serde_json::from_slice::<Value>(b).is_ok_and(|v| v["id"].is_string())) {
            pulled += 1;
        }
    }
    assert!(pulled >= 1, "the pulls reached qh-agri's own account");
    // A push consumer delivering onto a hub subject cannot be made at all.
    for (subject, config) in [
        (
            "$JS.API.CONSUMER.CREATE.XJ_OUT.evil",
            json!({ "stream_name": "XJ_OUT", "config": { "name": "evil", "deliver_subject": "xj.ledger", "filter_subject": "xj.out.qh-agri" } }),
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.XJ_OUT.evil",
            json!({ "stream_name": "XJ_OUT", "config": { "durable_name": "evil", "deliver_subject": "xj.accepted.qh-agri.EVIL-2" } }),
        ),
    ] {
        let answer = raw_request(&agri, subject, "_INBOX.agri.create", config).await;
        if let Some(a) = answer {
            let v: Value = serde_json::from_slice(&a).unwrap_or(Value::Null);
            assert!(v.get("error").is_some(), "{subject} answered without an error: {v}");
        }
    }
    let after = settled(&svc).await?;
    let ledger_after = after.streams.iter().find(|(n, ..)| n == "XJ_LEDGER").map(|(_, m, _)| *m);
    for (name, messages, consumers) in &after.streams {
        let (_, m0, c0) = before.streams.iter().find(|(n, ..)| n == name).expect("no stream appeared");
        assert_eq!(consumers, c0, "{name}: consumers changed");
        assert_eq!(messages, m0, "{name}: something was written into it");
    }
    assert!(ledger_after >= ledger_before);
    ledger_intact(&svc).await?;
    // The ledger keeps appending: a later message is recorded.
    js.publish("xj.in.qh-agri", serde_json::to_vec(&sample_clue("AG-9", "qh-agri", "FOOD-STALL", "990101101"))?.into())
        .await?
        .await?;
    hub.receiver("qh-town-dg").wait_for(4, WAIT).await?;
    eventually(WAIT, "a new ledger entry", || async {
        let s = hub_state(&svc).await.ok()?;
        let n = s.streams.iter().find(|(n, ..)| n == "XJ_LEDGER").map(|(_, m, _)| *m)?;
        (Some(n) > ledger_after).then_some(())
    })
    .await?;
    ledger_intact(&svc).await?;
    Ok(())
}

/// Every `$JS` and `$KV` request an organisation's connection could name,
/// with plausible bodies: none is answered with success, none changes what
/// the hub's account holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_js_request_from_an_org_changes_the_hub() -> anyhow::Result<()> {
    let hub = TestHub::start_secured(&nats_orgs()).await?;
    let (agri, _) = hub.connect_as("qh-agri").await?;
    let ajs = org_js(&agri);
    let mut out = own_outbox(&ajs, "qh-agri").await?;
    submit(&ajs, &mut out, "qh-agri", &sample_clue("AG-1", "qh-agri", "FOOD-STALL", "990101101")).await?;
    let svc = hub.connect_services().await?;
    let before = settled(&svc).await?;
    let stream = json!({ "name": "XJ_LEDGER", "subjects": ["xj.ledger"], "deny_delete": false });
    let requests: Vec<(&str, Value)> = vec![
        ("$JS.API.INFO", json!({})),
        ("$JS.API.STREAM.NAMES", json!({})),
        ("$JS.API.STREAM.LIST", json!({})),
        ("$JS.API.STREAM.CREATE.EVIL", json!({ "name": "EVIL", "subjects": ["xj.>"] })),
        ("$JS.API.STREAM.UPDATE.XJ_LEDGER", stream),
        ("$JS.API.STREAM.UPDATE.XJ_IN", json!({ "name": "XJ_IN", "subjects": ["xj.in.>", "xj.ledger"] })),
        ("$JS.API.STREAM.DELETE.XJ_OUT", json!({})),
        ("$JS.API.STREAM.PURGE.XJ_ACCEPTED", json!({})),
        ("$JS.API.STREAM.MSG.DELETE.XJ_LEDGER", json!({ "seq": 1 })),
        ("$JS.API.STREAM.MSG.GET.XJ_OUT", json!({ "last_by_subj": "xj.out.qh-transport" })),
        ("$JS.API.DIRECT.GET.KV_xj_cases", json!({ "seq": 1 })),
        ("$JS.API.DIRECT.GET.XJ_OUT", json!({ "seq": 1 })),
        ("$JS.API.STREAM.INFO.XJ_OUT", json!({})),
        ("$JS.API.CONSUMER.NAMES.XJ_OUT", json!({})),
        ("$JS.API.CONSUMER.INFO.XJ_OUT.qh-transport", json!({})),
        ("$JS.API.CONSUMER.DELETE.XJ_OUT.qh-transport", json!({})),
        ("$JS.API.CONSUMER.DELETE.XJ_OUT.qh-agri", json!({})),
        ("$JS.API.CONSUMER.MSG.NEXT.XJ_OUT.qh-transport", json!({ "batch": 10 })),
        ("$JS.API.CONSUMER.MSG.NEXT.XJ_ROUTED.courier", json!({ "batch": 10 })),
        (
            "$JS.API.CONSUMER.CREATE.XJ_OUT.qh-agri",
            json!({ "stream_name": "XJ_OUT", "config": { "durable_name": "qh-agri", "filter_subject": "xj.out.>" } }),
        ),
        (
            "$JS.API.CONSUMER.CREATE.XJ_OUT.qh-agri.xj.out.qh-agri",
            json!({ "stream_name": "XJ_OUT", "config": { "durable_name": "qh-agri", "filter_subject": "xj.out.qh-agri", "deliver_subject": "xj.ledger" } }),
        ),
        ("$JS.API.CONSUMER.LEADER.STEPDOWN.XJ_OUT.qh-agri", json!({})),
        ("$JS.API.ACCOUNT.PURGE.XJ_HUB", json!({})),
        ("$JS.API.META.LEADER.STEPDOWN", json!({})),
        ("$KV.xj_cases.C-1", json!({ "forged": true })),
        ("$KV.xj_routes.qh-transport.X", json!({ "forged": true })),
        ("xj.accepted.qh-transport.FORGED-1", json!({ "id": "FORGED-1" })),
        ("$O.xj_evidence.C.x", json!({})),
        ("$JS.ACK.XJ_OUT.qh-transport.1.1.1.0.0", json!("+ACK")),
        ("$JS.ACK.XJ_ROUTED.courier.1.1.1.0.0", json!("+TERM")),
        (
            "JS.xj.API.CONSUMER.CREATE.XJ_OUT.qh-agri",
            json!({ "stream_name": "XJ_OUT", "config": { "durable_name": "qh-agri", "deliver_subject": "xj.ledger" } }),
        ),
        ("JS.xj.API.CONSUMER.MSG.NEXT.XJ_OUT.qh-transport", json!({ "batch": 10 })),
        ("JS.xj.API.CONSUMER.DELETE.XJ_OUT.qh-agri", json!({})),
        ("JS.xj.API.STREAM.INFO.XJ_OUT", json!({})),
        ("xj.ledger", json!({ "n": 1 })),
        ("xj.accepted.qh-agri.X", json!({ "id": "X" })),
        ("xj.routed.qh-town-dg", json!({ "id": "X" })),
        ("xj.evt.qh-agri.X.routed", json!({})),
        ("xj.ctl.reload", json!({})),
    ];
    for (subject, body) in &requests {
        if let Some(answer) = raw_request(&agri, subject, "_INBOX.agri.probe", body.clone()).await {
            let v: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            // An empty answer is a status (no responders); the one import
            // that answers with data: its own consumer's info.
            let harmless = answer.is_empty()
                || v.get("error").is_some()
                || v.get("type").and_then(Value::as_str) == Some("io.nats.jetstream.api.v1.consumer_info_response");
            assert!(harmless, "{subject} answered {v}");
        }
    }
    assert_eq!(before, settled(&svc).await?, "the hub's account changed");
    ledger_intact(&svc).await?;
    // And the organisation still gets its answers.
    let (status, _) =
        submit(&ajs, &mut out, "qh-agri", &sample_clue("AG-2", "qh-agri", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, "202");
    Ok(())
}

/// Poison on NATS intake: ids and payloads that once panicked the gateway
/// (a newline in the id), garbage, truncated JSON, huge values, binary.
/// Each is answered with a located error; the next genuine message, from
/// this organisation and from another, is answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_on_nats_intake_is_answered_and_stops_nobody() -> anyhow::Result<()> {
    let hub = TestHub::start_secured(&nats_orgs()).await?;
    let (agri, _) = hub.connect_as("qh-agri").await?;
    let js = org_js(&agri);
    let mut out = own_outbox(&js, "qh-agri").await?;
    let mut newline = sample_clue("AG-\r\nX", "qh-agri", "FOOD-STALL", "990101101");
    newline["body"]["facts"] = json!("line one\r\nline two\u{0}");
    let good = sample_clue("AG-1", "qh-agri", "FOOD-STALL", "990101101");
    let text = serde_json::to_string(&good)?;
    let poisons: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&newline)?,
        b"not json at all".to_vec(),
        text.as_bytes()[..text.len() / 2].to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80, 0x0a, 0x0d],
        Vec::new(),
        serde_json::to_vec(&json!({ "id": "x".repeat(100_000), "type": "clue_referral" }))?,
        serde_json::to_vec(&json!([1, 2, 3]))?,
        format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
    ];
    for (i, p) in poisons.iter().enumerate() {
        let mut h = async_nats::HeaderMap::new();
        h.put("Nats-Msg-Id", &format!("poison-{i}"));
        js.publish_with_headers("xj.in.qh-agri", h, p.clone().into()).await?.await?;
        let answer = next(&mut out).await?;
        let status =
            answer.headers.as_ref().and_then(|h| h.get("Xj-Answer")).map(|v| v.to_string()).unwrap_or_default();
        assert!(matches!(status.as_str(), "400" | "413" | "422"), "poison {i}: answered {status}");
        let err: Value = serde_json::from_slice(&answer.payload)?;
        assert!(err["message"].is_string(), "poison {i}: {err}");
    }
    let (status, receipt) = submit(&js, &mut out, "qh-agri", &good).await?;
    assert_eq!((status.as_str(), receipt["id"].as_str()), ("202", Some("AG-1")));
    let (transport, _) = hub.connect_as("qh-transport").await?;
    let tjs = org_js(&transport);
    let mut tout = own_outbox(&tjs, "qh-transport").await?;
    let (status, _) =
        submit(&tjs, &mut tout, "qh-transport", &sample_clue("TR-1", "qh-transport", "FOOD-STALL", "990101101"))
            .await?;
    assert_eq!(status, "202");
    hub.receiver("qh-town-dg").wait_for(2, WAIT).await?;
    Ok(())
}

/// A third-party client speaking the NATS protocol by hand: header blocks
/// no library would send (bare CR, a NUL, a header line without a colon,
/// a huge header value), on its own intake subject. The hub answers each
/// without a panic and keeps consuming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_protocol_headers_do_not_break_intake() -> anyhow::Result<()> {
    let hub = TestHub::start_secured(&nats_orgs()).await?;
    let url = hub.nats.url();
    let addr = url.trim_start_matches("nats://").to_string();
    let stream = tokio::net::TcpStream::connect(&addr).await?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut info = String::new();
    r.read_line(&mut info).await?;
    assert!(info.starts_with("INFO"), "{info}");
    let connect = json!({ "user": "qh-agri", "pass": hub.token("qh-agri"), "headers": true, "verbose": false, "pedantic": false, "protocol": 1 });
    w.write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes()).await?;
    let body = serde_json::to_vec(&sample_clue("AG-RAW", "qh-agri", "FOOD-STALL", "990101101"))?;
    let big = "v".repeat(60_000);
    let header_blocks = [
        "NATS/1.0\r\ntraceparent: 00-\u{0}bad\r\nXj-Signature: keyid=x,sig=\u{7}\r\n\r\n".to_string(),
        "NATS/1.0\r\nno colon here\r\nNats-Msg-Id: raw-2\r\n\r\n".to_string(),
        format!("NATS/1.0\r\ntraceparent: {big}\r\nNats-Msg-Id: raw-3\r\n\r\n"),
        "NATS/1.0\r\nNats-Msg-Id: raw-4\rinjected: yes\r\n\r\n".to_string(),
    ];
    for hdr in &header_blocks {
        let total = hdr.len() + body.len();
        let mut frame = format!("HPUB xj.in.qh-agri {} {total}\r\n{hdr}", hdr.len()).into_bytes();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\r\n");
        w.write_all(&frame).await?;
    }
    w.write_all(b"PING\r\n").await?;
    w.flush().await?;
    // The server may refuse a frame and close this connection; that is its
    // right. What matters is the hub afterwards.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(w);
    let (agri, _) = hub.connect_as("qh-agri").await?;
    let js = org_js(&agri);
    let mut out = own_outbox(&js, "qh-agri").await?;
    // Answers to whatever the server let through, then a genuine message.
    let good = sample_clue("AG-AFTER", "qh-agri", "FOOD-STALL", "990101101");
    js.publish("xj.in.qh-agri", serde_json::to_vec(&good)?.into()).await?.await?;
    let mut seen_after = false;
    for _ in 0..6 {
        let Ok(answer) = next(&mut out).await else { break };
        let v: Value = serde_json::from_slice(&answer.payload).unwrap_or(Value::Null);
        if v["id"] == "AG-AFTER" {
            seen_after = true;
            break;
        }
    }
    assert!(seen_after, "the genuine message after the raw frames was answered");
    Ok(())
}
