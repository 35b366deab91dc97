//! deploy/ as shipped: every file checked by deploy/validate.py (Kubernetes
//! schemas, chart values, compose references, systemd-analyze, nats-server
//! -t, xj check), and the three-node cluster configuration run for real on
//! loopback: the nodes route to each other with the credentials of
//! routes.conf and a server without them cannot join; the hub declares
//! every stream and bucket on three replicas in the accounts of the
//! generated auth.conf, and keeps publishing when a node dies.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use xj_bus::embedded::{ensure_binary, free_port};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

#[test]
fn deploy_folder_validates() {
    let nats = ensure_binary().expect("nats-server");
    let out = Command::new("python3")
        .arg(deploy_dir().join("validate.py"))
        .arg("--xj")
        .arg(env!("CARGO_BIN_EXE_xj"))
        .arg("--nats-server")
        .arg(nats)
        .output()
        .expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("deploy: ok"), "{text}");
}

struct Node {
    child: Option<Child>,
    client: u16,
    monitor: u16,
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// deploy/cluster/nats-<i>.conf with its hosts and ports moved to loopback
/// and its store to `dir`; everything else as shipped (monitoring already
/// on loopback, the routes and their credentials in routes.conf).
fn localise(i: usize, ports: &[(u16, u16, u16)], dir: &Path) -> String {
    let text = std::fs::read_to_string(deploy_dir().join(format!("cluster/nats-{i}.conf"))).expect("node config");
    let (client, route, monitor) = ports[i - 1];
    assert!(text.contains("\nhttp: 127.0.0.1:8222\n"), "monitoring is bound to loopback:\n{text}");
    assert!(text.contains("  include ./routes.conf\n"), "the cluster block includes routes.conf:\n{text}");
    let t = text
        .replace("listen: 0.0.0.0:4222", &format!("listen: 127.0.0.1:{client}"))
        .replace("http: 127.0.0.1:8222", &format!("http: 127.0.0.1:{monitor}"))
        .replace("listen: 0.0.0.0:6222", &format!("listen: 127.0.0.1:{route}"))
        .replace("store_dir: /var/lib/nats", &format!("store_dir: \"{}\"", dir.join(format!("n{i}")).display()))
        .replace("max_file_store: 200GB", "max_file_store: 1GB");
    assert!(
        !t.contains("0.0.0.0") && !t.contains(":8222") && !t.contains("nats-route://"),
        "every host and port was moved:\n{t}"
    );
    t
}

/// deploy/cluster/routes.conf with the nodes' route ports on loopback; the
/// route user and password as shipped.
fn localise_routes(ports: &[(u16, u16, u16)]) -> String {
    let mut t = std::fs::read_to_string(deploy_dir().join("cluster/routes.conf")).expect("routes.conf");
    assert!(t.contains("authorization {"), "routes.conf has the route authorization:\n{t}");
    for (j, (_, r, _)) in ports.iter().enumerate() {
        let shipped = format!("@nats-{}:6222", j + 1);
        assert!(t.contains(&shipped), "the route to nats-{} carries credentials:\n{t}", j + 1);
        t = t.replace(&shipped, &format!("@127.0.0.1:{r}"));
    }
    assert!(!t.contains(":6222"), "every route was moved:\n{t}");
    t
}

/// The server names a node has routes to (/routez).
fn routed_to(monitor: u16) -> Option<std::collections::BTreeSet<String>> {
    let v: serde_json::Value = serde_json::from_str(&xj_testkit::http_get(monitor, "/routez")?).ok()?;
    Some(v["routes"].as_array()?.iter().filter_map(|r| r["remote_name"].as_str().map(str::to_owned)).collect())
}

fn healthy(port: u16) -> bool {
    xj_testkit::http_get(port, "/healthz").is_some_and(|b| b.contains("ok"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_cluster_configuration_runs_and_survives_a_node() -> anyhow::Result<()> {
    let bin = ensure_binary()?;
    let dir = tempfile::tempdir()?;
    std::fs::copy(deploy_dir().join("cluster/auth.conf"), dir.path().join("auth.conf"))?;
    let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
    std::fs::write(dir.path().join("routes.conf"), localise_routes(&ports))?;
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let conf = dir.path().join(format!("nats-{i}.conf"));
        std::fs::write(&conf, localise(i, &ports, dir.path()))?;
        let log = std::fs::File::create(dir.path().join(format!("nats-{i}.log")))?;
        let child = Command::new(&bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(log).spawn()?;
        nodes.push(Node { child: Some(child), client: ports[i - 1].0, monitor: ports[i - 1].2 });
    }
    let start = Instant::now();
    while !nodes.iter().all(|n| healthy(n.monitor)) {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "the cluster did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // With the credentials of routes.conf, every node routes to the two others.
    let names = |skip: usize| -> std::collections::BTreeSet<String> {
        (1..=3).filter(|&j| j != skip).map(|j| format!("nats-{j}")).collect()
    };
    let start = Instant::now();
    while !nodes.iter().enumerate().all(|(k, n)| routed_to(n.monitor) == Some(names(k + 1))) {
        let seen: Vec<_> = nodes.iter().map(|n| routed_to(n.monitor)).collect();
        anyhow::ensure!(start.elapsed() < Duration::from_secs(60), "the nodes did not route to each other: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A server that knows the cluster's name and a node's route port but not
    // the route credentials is refused: its log shows node 1 answering its
    // route "Authorization Violation", and no node has a route to it.
    let (rogue_client, rogue_route, rogue_monitor) = (free_port(), free_port(), free_port());
    let rogue_conf = dir.path().join("rogue.conf");
    std::fs::write(
        &rogue_conf,
        format!(
            "server_name: rogue\nlisten: 127.0.0.1:{rogue_client}\nhttp: 127.0.0.1:{rogue_monitor}\n\
             cluster {{\n  name: xianjie\n  listen: 127.0.0.1:{rogue_route}\n  routes: [ nats-route://127.0.0.1:{} ]\n}}\n",
            ports[0].1
        ),
    )?;
    let rogue_log = dir.path().join("rogue.log");
    let child = Command::new(&bin)
        .arg("-c")
        .arg(&rogue_conf)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&rogue_log)?)
        .spawn()?;
    let mut rogue = Node { child: Some(child), client: rogue_client, monitor: rogue_monitor };
    let refused = format!("127.0.0.1:{} - rid:", ports[0].1);
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&rogue_log).unwrap_or_default();
        if log.lines().any(|l| l.contains(&refused) && l.contains("Authorization Violation")) {
            break;
        }
        let joined = routed_to(rogue.monitor).unwrap_or_default();
        anyhow::ensure!(joined.is_empty(), "a server without the route credentials joined, routes to {joined:?}");
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(60),
            "the server without route credentials was never refused by node 1:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rogue_routes = routed_to(rogue.monitor).ok_or_else(|| anyhow::anyhow!("no /routez from the rogue server"))?;
    assert!(rogue_routes.is_empty(), "the server without credentials has routes: {rogue_routes:?}");
    for (k, n) in nodes.iter().enumerate() {
        assert_eq!(routed_to(n.monitor), Some(names(k + 1)), "nats-{} routes only to the cluster's nodes", k + 1);
    }
    rogue.kill();
    // The services' user and password of the example auth.conf; three replicas.
    let url: Vec<String> = nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.client)).collect();
    let text = format!(
        "{}\n[nats]\nurl = \"{}\"\nuser = \"xj-services\"\npassword = \"example-password-change-me\"\nreplicas = 3\n",
        xj_testkit::county_config(&Default::default()),
        url.join(",")
    );
    // First as a hub that ran on one replica (streams, buckets, the ledger
    // and the evidence store at R1)…
    let single = xj_config::load_str(&text.replace("replicas = 3", "replicas = 1"), "deploy cluster test")?;
    let url = single.nats.url.clone().unwrap_or_default();
    let bus = xj_bus::Bus::connect(&single, &url).await?;
    xj_ledger::declare(&bus.js, 1).await?;
    bus.js
        .create_object_store(async_nats::jetstream::object_store::Config {
            bucket: "xj_evidence".into(),
            num_replicas: 1,
            ..Default::default()
        })
        .await?;
    let mut s = bus.js.get_stream("XJ_ACCEPTED").await?;
    assert_eq!(s.info().await?.config.num_replicas, 1);
    // …then started with `replicas = 3`: everything is scaled to three.
    let settings = xj_config::load_str(&text, "deploy cluster test")?;
    let bus = xj_bus::Bus::connect(&settings, &url).await?;
    // As the hub's own declaration does, ask again while a cluster that
    // has just formed has no room for three copies yet ("no suitable peers").
    let start = Instant::now();
    while let Err(e) = xj_ledger::declare(&bus.js, 3).await {
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "the ledger never scaled to three: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for name in ["XJ_ACCEPTED", "XJ_ROUTED", "XJ_EVENTS", "XJ_LEDGER", "KV_xj_routes", "OBJ_xj_evidence"] {
        let mut s = bus.js.get_stream(name).await?;
        assert_eq!(s.info().await?.config.num_replicas, 3, "{name}");
    }
    // Anyone else is refused.
    assert!(
        async_nats::ConnectOptions::with_user_and_password("xj-services".into(), "wrong".into())
            .connect(url.split(',').next().unwrap_or_default())
            .await
            .is_err()
    );
    bus.js.publish("xj.accepted.qh-market.M-1", "one".into()).await?.await?;
    // A node can be lost once the two other copies are current: scaling a
    // stream from one copy to three takes a moment, and a node killed
    // before its followers caught up may take the only full copy with it.
    let start = Instant::now();
    loop {
        let info = bus.js.get_stream("XJ_ACCEPTED").await?.info().await?.clone();
        let peers = info.cluster.map(|c| c.replicas).unwrap_or_default();
        if peers.len() == 2 && peers.iter().all(|p| p.current && !p.offline) {
            break;
        }
        anyhow::ensure!(start.elapsed() < Duration::from_secs(30), "the replicas never caught up: {peers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    nodes[0].kill();
    // Within an election, publishing goes on on the two nodes left.
    let start = Instant::now();
    loop {
        match async { bus.js.publish("xj.accepted.qh-market.M-2", "two".into()).await?.await }.await {
            Ok(_) => break,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("no publish after losing a node: {e}"),
        }
    }
    let mut s = bus.js.get_stream("XJ_ACCEPTED").await?;
    assert_eq!(s.info().await?.state.messages, 2);
    Ok(())
}
