//! Two instances of each service share the work through their durable
//! consumers; a three-node cluster loses a node under load.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use xj_testkit::TestCluster;
use xj_testkit::procs::cpu_secs;

use crate::common::*;

/// Two routers and two couriers: each does a real share, no referral is
/// delivered twice, and every reply reaches the sender after the referral
/// it answers reached the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_of_each_service_share_the_work() -> anyhow::Result<()> {
    let _g = serial().await;
    let nats = xj_testkit::TestNats::start()?;
    let services = [
        ("gateway", "gateway"),
        ("router-1", "router"),
        ("router-2", "router"),
        ("courier-1", "courier"),
        ("courier-2", "courier"),
    ];
    let mut hub = ProcHub::start(&nats.url(), Options::default(), &services).await?;
    let cpu = |hub: &mut ProcHub, name: &str| hub.proc(name).pid().and_then(cpu_secs).unwrap_or_default();
    let names = ["router-1", "router-2", "courier-1", "courier-2"];
    let before: Vec<f64> = names.iter().map(|n| cpu(&mut hub, n)).collect();
    let n = 2000;
    let (_, task) = load(hub.http.clone(), hub.base.clone(), "HS", n, 32);
    let sent = task.await??;
    let dups = all_delivered(&hub, &sent, Duration::from_secs(120)).await?;
    let used: Vec<f64> = names.iter().zip(&before).map(|(n, b)| cpu(&mut hub, n) - b).collect();
    println!(
        "CPU seconds while {n} referrals flowed: {:?}; {dups} repeats",
        names.iter().zip(&used).collect::<Vec<_>>()
    );
    for pair in used.chunks(2) {
        let total = pair[0] + pair[1];
        assert!(
            pair.iter().all(|u| *u >= 0.2 * total),
            "both instances of a service take a share of the work: {names:?} {used:?}"
        );
    }
    assert_eq!(dups, 0, "two instances never deliver the same copy twice");

    // Replies: 东关镇 answers 100 of the referrals it got; each answer goes
    // back to the market bureau, after the referral it answers.
    let dg = hub.receiver(TOWN_DG).clone();
    let referrals: HashMap<String, Instant> =
        dg.deliveries().into_iter().filter_map(|d| Some((d.header("xj-message-id")?.to_string(), d.at))).collect();
    let answered: Vec<String> = referrals.keys().take(100).cloned().collect();
    let replies = futures::future::join_all(answered.iter().map(|id| {
        let (http, base) = (hub.http.clone(), hub.base.clone());
        let reply = json!({ "id": format!("R-{id}"), "type": "referral_reply", "sender": TOWN_DG, "reply_to": id,
            "sent_at": "2026-11-21T10:00:00+08:00", "classification": "internal",
            "body": { "decision": "accepted", "case_no": "东关立〔2026〕1号" } });
        async move { submit_retrying(&http, &base, TOWN_DG, &reply, Duration::from_secs(60)).await }
    }))
    .await;
    for r in replies {
        r?;
    }
    let market = hub.receiver(SENDER).wait_for(answered.len(), Duration::from_secs(60)).await?;
    for d in &market {
        let id = d.header("xj-message-id").unwrap_or_default();
        let answers = id.strip_prefix("R-").unwrap_or_default();
        assert_eq!(d.json["reply_to"], answers);
        assert!(d.at > referrals[answers], "the reply {id} arrived before the referral it answers");
    }
    assert_eq!(hub.receiver(SENDER).duplicates(), 0);
    Ok(())
}

/// Three nodes, every stream and bucket on three replicas; the node leading
/// the intake stream is killed with SIGKILL while referrals flow. The
/// gateway answers 503 while a new leader is elected (clients retry, the
/// receipt makes that harmless); every referral arrives once; the node,
/// started again, catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_cluster_survives_losing_a_node_under_load() -> anyhow::Result<()> {
    let _g = serial().await;
    let mut cluster = TestCluster::start(3)?;
    let opts = Options { nats: "replicas = 3\nack_wait_ms = 2000\n".into(), ..Default::default() };
    let services = [
        ("gateway", "gateway"),
        ("router", "router"),
        ("courier", "courier"),
        ("tracker", "tracker"),
        ("ledger", "ledger"),
    ];
    let hub = ProcHub::start(&cluster.url(), opts, &services).await?;
    let victim = cluster.stream_leader(xj_bus::subjects::STREAM_ACCEPTED).unwrap_or(0);
    let n = 2000;
    let (accepted, task) = load(hub.http.clone(), hub.base.clone(), "CL", n, 32);
    until(&accepted, n / 3, Duration::from_secs(180)).await?;
    cluster.kill(victim);
    let killed_at = accepted.load(Ordering::Relaxed);
    let sent = task.await??;
    let dups = all_delivered(&hub, &sent, Duration::from_secs(180)).await?;
    println!(
        "cluster: killed n{} (leader of XJ_ACCEPTED) at {killed_at} accepted; {n} delivered once each; {dups} repeats",
        victim + 1
    );
    // Every stream still has three replicas' worth of data once the node is back.
    cluster.restart(victim)?;
    let js = async_nats::jetstream::new(async_nats::connect(cluster.url().split(',').collect::<Vec<_>>()).await?);
    let mut accepted_stream = js.get_stream(xj_bus::subjects::STREAM_ACCEPTED).await?;
    let info = accepted_stream.info().await?;
    assert_eq!(info.config.num_replicas, 3);
    assert!(info.state.messages >= n as u64, "{} messages in XJ_ACCEPTED", info.state.messages);
    Ok(())
}
