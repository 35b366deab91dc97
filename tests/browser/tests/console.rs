//! The operator console in a real browser: the hub with a manual clock,
//! traffic through real webhooks (one organisation failing, so a dead
//! letter waits), then `console.mjs` drives Debian's headless Chromium with
//! playwright-core and checks what an operator sees — the live list
//! updating, a trace with its hops, a case with who acts next, statistics,
//! search, replay of the dead letter, health, the overdue board after the
//! clock advances, English labels.
//!
//! Nothing is skipped: a missing Chromium or Node.js is installed with
//! apt-get when this runs as root, `npm ci` installs playwright-core from
//! the committed lock file, and otherwise the test fails saying what to
//! install. Screenshots go to the target folder, or to docs/screenshots
//! with `UPDATE_SCREENSHOTS=1` (not `XJ_`: that prefix is the hub's configuration).

mod common;

use std::time::Duration;

use common::{drive, passed, shots_dir, tools};

use serde_json::json;
use xj_testkit::{TestHub, eventually, sample_clue, sample_uscc};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_hub_at_work() -> anyhow::Result<()> {
    let chromium = tools()?;
    let extra = "[clock]\nmode = \"manual\"\n\n[courier]\nmax_attempts = 1\nbackoff_initial_ms = 100\n";
    let hub = TestHub::start_services(extra, &xj::hub::Service::UP).await?;
    let market = hub.token("qh-market");

    // Traffic before the operator arrives: a referral placed by the matter
    // catalogue, and one to an organisation whose system is down.
    let (s, r) = hub.submit("qh-market", &sample_clue("EARLY-1", "qh-market", "FOOD-STALL", "990101101")).await?;
    assert_eq!(s, 202, "{r}");
    hub.receiver("qh-enforce").set_failing(true);
    let mut dead = sample_clue("DEAD-1", "qh-market", "FOOD-STALL", "990101101");
    dead["recipient"] = json!("qh-enforce");
    let (s, r) = hub.submit("qh-market", &dead).await?;
    assert_eq!(s, 202, "{r}");
    let operator = hub.operator_token();
    eventually(Duration::from_secs(20), "the dead letter", || {
        let hub = &hub;
        let operator = operator.clone();
        async move {
            let (_, d) = hub.get("/v1/admin/dead-letters", &operator).await.ok()?;
            d["dead_letters"].as_array()?.iter().any(|x| x["id"] == "DEAD-1").then_some(())
        }
    })
    .await?;
    // The system is back: a replay will get through.
    hub.receiver("qh-enforce").set_failing(false);

    let profile = tempfile::tempdir()?;
    let shots = shots_dir()?;
    let base = hub.base.clone();
    let env = [
        ("XJ_BASE", base),
        ("XJ_OPERATOR_TOKEN", operator),
        ("XJ_ORG_TOKEN", market),
        ("XJ_CHROMIUM", chromium.display().to_string()),
        ("XJ_SHOTS", shots.display().to_string()),
        ("XJ_PROFILE", profile.path().display().to_string()),
        ("XJ_DEAD_ID", "DEAD-1".to_string()),
        ("XJ_USCC", sample_uscc("92990101MA0000002")),
    ];
    let stdout = drive("console.mjs", &env, Duration::from_secs(100)).await?;
    passed(&stdout, &["live list updates", "trace shows its hops", "overdue item appears", "replay delivers it"]);
    println!("screenshots in {}", shots.display());
    Ok(())
}
