//! A three-node (or n-node) nats-server cluster on loopback, each node a real
//! process with its own store, for the hub's cluster and fault tests: kill a
//! node with SIGKILL, start it again on the same ports and store.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use xj_bus::embedded::{EmbeddedError, NatsServer, ServerOptions, free_port};

/// The nodes of a cluster named `xj`; node `i` is `n<i+1>`.
pub struct TestCluster {
    pub nodes: Vec<NatsServer>,
    pub dir: tempfile::TempDir,
}

impl TestCluster {
    /// Starts `n` nodes routed to each other and waits until JetStream has a
    /// meta leader.
    pub fn start(n: usize) -> anyhow::Result<Self> {
        Self::start_with(n, "")
    }

    /// Like [`start`](Self::start), with `extra` nats-server configuration
    /// on every node (an `authorization` block, limits…).
    pub fn start_with(n: usize, extra: &str) -> anyhow::Result<Self> {
        // The route ports are written into every node's configuration, so
        // when another process takes one first the whole cluster is started
        // again on other ports.
        let mut attempt = 1;
        loop {
            match Self::start_once(n, extra) {
                Err(e) if attempt < 5 && matches!(e.downcast_ref(), Some(EmbeddedError::PortTaken(_))) => {
                    eprintln!("cluster start, attempt {attempt}: {e}; trying other ports");
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(n: usize, extra: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, (client, route)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, r))| format!("\"nats-route://127.0.0.1:{r}\""))
                .collect();
            let cluster = format!(
                "cluster {{\n  name: \"xj\"\n  listen: \"127.0.0.1:{route}\"\n  routes: [{}]\n}}\n{extra}\n",
                routes.join(", ")
            );
            let opts = ServerOptions {
                store_dir: dir.path().join(format!("n{}", i + 1)),
                port: *client,
                server_name: Some(format!("n{}", i + 1)),
                extra_config: Some(cluster),
                sync_always: false,
            };
            nodes.push(NatsServer::start(opts)?);
        }
        let c = Self { nodes, dir };
        c.wait_healthy(Duration::from_secs(30))?;
        Ok(c)
    }

    /// Every node's client URL, comma-separated: `[nats] url` for the hub.
    pub fn url(&self) -> String {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect::<Vec<_>>().join(",")
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its ports and store, and waits until it has
    /// caught up with the others.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].restart()?;
        self.wait_node_healthy(i, Duration::from_secs(60))
    }

    /// Waits until every node reports itself healthy (JetStream current).
    pub fn wait_healthy(&self, limit: Duration) -> anyhow::Result<()> {
        for i in 0..self.nodes.len() {
            self.wait_node_healthy(i, limit)?;
        }
        Ok(())
    }

    fn wait_node_healthy(&self, i: usize, limit: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let port = self.nodes[i].monitor_port;
        loop {
            if let Some(body) = http_get(port, "/healthz")
                && body.contains("\"ok\"")
                && meta_leader(port).is_some()
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                anyhow::bail!("node n{} not healthy after {limit:?}: {:?}", i + 1, http_get(port, "/healthz"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The JetStream meta leader as node `i` sees it.
    pub fn meta_leader(&self, i: usize) -> Option<String> {
        meta_leader(self.nodes[i].monitor_port)
    }

    /// The node index leading stream `stream` (as the monitoring port of a
    /// live node reports it).
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        for n in &self.nodes {
            let Some(body) = http_get(n.monitor_port, "/jsz?streams=true&raft=true") else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else { continue };
            for acc in v["account_details"].as_array().into_iter().flatten() {
                for s in acc["stream_detail"].as_array().into_iter().flatten() {
                    if s["name"] == stream
                        && let Some(leader) = s["cluster"]["leader"].as_str()
                    {
                        return leader.strip_prefix('n').and_then(|d| d.parse::<usize>().ok()).map(|d| d - 1);
                    }
                }
            }
        }
        None
    }
}

fn meta_leader(port: u16) -> Option<String> {
    let body = http_get(port, "/jsz")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["meta_cluster"]["leader"].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A GET on a monitoring port: the body of a 200 answer.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    let (head, body) = buf.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200")).then(|| body.to_string())
}
