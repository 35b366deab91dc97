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
