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

/// Receipts and routes are kept as long as the messages they point to (an
/// age limit, so the servers' memory does not grow with every referral
/// ever accepted); case records are kept for good. A bucket made by an
/// earlier version without the limit takes it when the hub starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_and_routes_expire_with_the_messages_cases_stay() -> anyhow::Result<()> {
    use async_nats::jetstream::{self, kv};
    use xj_bus::streams::{RETENTION, declare};
    let nats = xj_testkit::TestNats::start()?;
    let js = jetstream::new(async_nats::connect(nats.url()).await?);
    js.create_key_value(kv::Config { bucket: "xj_receipts".into(), history: 1, ..Default::default() }).await?;
    declare(&js, 1).await?;
    for (stream, want) in [
        ("KV_xj_receipts", RETENTION),
        ("KV_xj_routes", RETENTION),
        ("KV_xj_cases", Duration::ZERO),
        ("XJ_ACCEPTED", RETENTION),
    ] {
        let info = js.get_stream(stream).await?.info().await?.config.clone();
        assert_eq!(info.max_age, want, "{stream}");
    }
    assert_eq!(RETENTION, Duration::from_secs(90 * 24 * 3600));
    Ok(())
}
