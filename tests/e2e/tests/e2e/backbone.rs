use std::time::Duration;

use xj_testkit::{TestHub, sample_clue};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devolved_matter_reaches_the_town() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let msg = sample_clue("MR-1", "qh-market", "FOOD-STALL", "990101101");
    let (status, receipt) = hub.submit("qh-market", &msg).await?;
    assert_eq!(status, 202, "{receipt}");
    let got = hub.receiver("qh-town-dg").wait_for(1, Duration::from_secs(10)).await?;
    assert_eq!(got[0].header("xj-message-id"), Some("MR-1"));
    assert_eq!(got[0].json["case"], receipt["case"]);
    Ok(())
}

/// Routes are kept as long as the messages they point to (an age limit, so
/// the servers' memory does not grow with every referral ever accepted);
/// case records are kept for good. A bucket made by an earlier version
/// without the limit takes it when the hub starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_expire_with_the_messages_cases_stay() -> anyhow::Result<()> {
    use async_nats::jetstream::{self, kv};
    use xj_bus::streams::{RETENTION, declare};
    let nats = xj_testkit::TestNats::start()?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    js.create_key_value(kv::Config { bucket: "xj_routes".into(), history: 1, ..Default::default() }).await?;
    declare(&js, 1).await?;
    for (stream, want) in [("KV_xj_routes", RETENTION), ("KV_xj_cases", Duration::ZERO), ("XJ_ACCEPTED", RETENTION)] {
        let info = js.get_stream(stream).await?.info().await?.config.clone();
        assert_eq!(info.max_age, want, "{stream}");
    }
    assert_eq!(RETENTION, Duration::from_secs(90 * 24 * 3600));
    Ok(())
}

/// `XJ_ACCEPTED` keeps one message a subject (`xj.accepted.<sender>.<id>`)
/// and refuses a second: storing a message is claiming its id. An empty
/// stream of the earlier layout (one subject per sender) takes the limit
/// when the hub starts; one holding messages is refused with what to do,
/// since the server would keep only the newest message of each sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepted_stream_keeps_one_message_a_subject() -> anyhow::Result<()> {
    use async_nats::jetstream::{self, stream};
    use xj_bus::streams::{declare, subject_taken};
    let old = |js: jetstream::Context| async move {
        js.create_stream(stream::Config {
            name: "XJ_ACCEPTED".into(),
            subjects: vec!["xj.accepted.>".into()],
            discard: stream::DiscardPolicy::New,
            ..Default::default()
        })
        .await
    };
    // An empty stream of the earlier layout is updated.
    let nats = xj_testkit::TestNats::start()?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    old(js.clone()).await?;
    declare(&js, 1).await?;
    let cfg = js.get_stream("XJ_ACCEPTED").await?.info().await?.config.clone();
    assert_eq!((cfg.max_messages_per_subject, cfg.discard_new_per_subject), (1, true));
    let subject = xj_bus::subjects::accepted("qh-market", "M.1:a");
    assert_eq!(subject, "xj.accepted.qh-market.M=2E1=3Aa");
    js.publish(subject.clone(), "first".into()).await?.await?;
    let second = async { js.publish(subject.clone(), "second".into()).await?.await }.await;
    let e = second.expect_err("a second message on the subject is refused");
    assert!(subject_taken(&e), "{e}");
    js.publish(xj_bus::subjects::accepted("qh-market", "M.2"), "other id".into()).await?.await?;
    let mut s = js.get_stream("XJ_ACCEPTED").await?;
    assert_eq!(s.info().await?.state.messages, 2);
    let kept = s.get_last_raw_message_by_subject(&subject).await?;
    assert_eq!(&kept.payload[..], b"first");

    // One holding messages is left as it is, and the hub says why.
    let nats = xj_testkit::TestNats::start()?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    old(js.clone()).await?;
    for i in 0..3 {
        js.publish("xj.accepted.qh-market", format!("m{i}").into()).await?.await?;
    }
    let e = declare(&js, 1).await.expect_err("refused");
    let text = e.to_string();
    assert!(text.contains("XJ_ACCEPTED") && text.contains("3 messages") && text.contains("Upgrading"), "{text}");
    let mut s = js.get_stream("XJ_ACCEPTED").await?;
    assert_eq!(s.info().await?.state.messages, 3, "nothing was lost");
    Ok(())
}
