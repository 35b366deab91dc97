//! Test harness: a real `nats-server` with JetStream on a free port and a
//! fresh store (killed on drop), the hub's services started in-process as
//! `xj up` starts them, and real HTTP webhook receivers standing in for the
//! departmental systems.

mod cluster;
mod county;
pub mod hostile_http;
pub mod hostile_receiver;
pub mod procs;
pub mod raw;
mod receiver;
mod secure;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use xj_bus::Shutdown;
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_config::Settings;

pub use cluster::{TestCluster, http_get};
pub use county::{NATS_AGRI, NATS_TRANSPORT, ORGS, county_config, sample_clue, sample_handoff, sample_uscc};
pub use receiver::{Delivery, Receiver};
pub use secure::{SERVICE_PASSWORD, SERVICE_USER};

/// A receiver (a departmental system's webhook) for every organisation of
/// the test county, and the webhook URL of each.
pub async fn county_receivers() -> anyhow::Result<(HashMap<String, Receiver>, HashMap<String, String>)> {
    let mut receivers = HashMap::new();
    for (id, ..) in ORGS {
        receivers.insert(id.to_string(), Receiver::start().await?);
    }
    let urls = receivers.iter().map(|(k, r): (&String, &Receiver)| (k.clone(), r.url())).collect();
    Ok((receivers, urls))
}

/// A nats-server in a temporary directory.
pub struct TestNats {
    pub server: NatsServer,
    pub dir: tempfile::TempDir,
}

impl TestNats {
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let server = NatsServer::start(ServerOptions { store_dir: dir.path().join("js"), ..Default::default() })?;
        Ok(Self { server, dir })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}

/// The hub on a real NATS, with one webhook receiver per organisation.
pub struct TestHub {
    pub nats: TestNats,
    pub base: String,
    pub settings: Arc<Settings>,
    pub receivers: HashMap<String, Receiver>,
    pub http: reqwest::Client,
    hub: Option<xj::hub::Hub>,
}

impl TestHub {
    /// Starts the standard test county; `extra` TOML is appended to its
    /// configuration (e.g. `[courier]` settings).
    pub async fn start(extra: &str) -> anyhow::Result<Self> {
        Self::start_services(extra, &xj::hub::Service::ALL).await
    }

    /// Like [`start`](Self::start), with organisations beyond the test
    /// county's — `(id, name, kind, region)`, token `token-<id>-0123456789`
    /// — each with a receiver of its own.
    pub async fn start_with_orgs(extra: &str, orgs: &[(&str, &str, &str, &str)]) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = TestNats::start()?;
        let (mut receivers, mut urls) = crate::county_receivers().await?;
        let mut more = String::new();
        for (id, name, kind, region) in orgs {
            let r = Receiver::start().await?;
            more.push_str(&format!(
                "\n[[org]]\nid = \"{id}\"\nname = \"{name}\"\nkind = \"{kind}\"\nregion = \"{region}\"\ntoken = \"token-{id}-0123456789\"\ndeliver = {{ webhook = \"{}\" }}\n",
                r.url()
            ));
            urls.insert(id.to_string(), r.url());
            receivers.insert(id.to_string(), r);
        }
        let text = format!(
            "{}\n[data]\ndir = \"{}\"\n{}\n{}",
            county_config(&urls),
            nats.dir.path().join("data").display(),
            more,
            extra
        );
        let path = nats.dir.path().join("xianjie.toml");
        std::fs::write(&path, &text)?;
        let settings = Arc::new(xj_config::load_file(&path)?);
        Self::start_with_services(nats, settings, receivers, &xj::hub::Service::ALL).await
    }

    /// Like [`start`](Self::start), running only `services` in the hub;
    /// others can be started (and stopped) with [`service`](Self::service).
    pub async fn start_services(extra: &str, services: &[xj::hub::Service]) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let nats = TestNats::start()?;
        let (receivers, urls) = crate::county_receivers().await?;
        let text = format!(
            "{}\n[data]\ndir = \"{}\"\n{}",
            county_config(&urls),
            nats.dir.path().join("data").display(),
            extra
        );
        // From a file, as a deployment has it: rule reloads read it again.
        let path = nats.dir.path().join("xianjie.toml");
        std::fs::write(&path, &text)?;
        let settings = Arc::new(xj_config::load_file(&path)?);
        Self::start_with_services(nats, settings, receivers, services).await
    }

    pub async fn start_with(
        nats: TestNats,
        settings: Arc<Settings>,
        receivers: HashMap<String, Receiver>,
    ) -> anyhow::Result<Self> {
        Self::start_with_services(nats, settings, receivers, &xj::hub::Service::ALL).await
    }

    pub async fn start_with_services(
        nats: TestNats,
        settings: Arc<Settings>,
        receivers: HashMap<String, Receiver>,
        services: &[xj::hub::Service],
    ) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let hub = xj::hub::start(settings.clone(), &nats.url(), services, Some(listener), Shutdown::new()).await?;
        let base = format!("http://{}", hub.http_addr.expect("gateway address"));
        Ok(Self { nats, base, settings, receivers, http: reqwest::Client::new(), hub: Some(hub) })
    }

    pub fn token(&self, org: &str) -> String {
        self.settings.org(org).map(|o| o.secret.clone()).unwrap_or_default()
    }

    pub fn operator_token(&self) -> String {
        self.settings.operator_token().unwrap_or_default().to_string()
    }

    pub fn receiver(&self, org: &str) -> &Receiver {
        &self.receivers[org]
    }

    /// POSTs a canonical message as `org`; returns status and JSON body.
    pub async fn submit(&self, org: &str, msg: &Value) -> anyhow::Result<(u16, Value)> {
        self.post_raw(&format!("Bearer {}", self.token(org)), serde_json::to_vec(msg)?).await
    }

    pub async fn post_raw(&self, auth: &str, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .post(format!("{}/v1/messages", self.base))
            .header("authorization", auth)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let body = r.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// GET with a bearer token; returns status and JSON body.
    pub async fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        let r = self.http.get(format!("{}{path}", self.base)).bearer_auth(token).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
    }

    /// Starts one more service instance of this hub (stop it with
    /// `Hub::stop`), as `xj run <service>` would.
    pub async fn service(&self, svc: xj::hub::Service) -> anyhow::Result<xj::hub::Hub> {
        xj::hub::start(self.settings.clone(), &self.nats.url(), &[svc], None, Shutdown::new()).await
    }

    /// POST JSON with the operator token.
    pub async fn operator_post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let r =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(self.operator_token()).json(body).send().await?;
        let status = r.status().as_u16();
        Ok((status, r.json::<Value>().await.unwrap_or(Value::Null)))
    }

    /// Stops the hub's services (NATS keeps running).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(hub) = self.hub.take() {
            hub.stop().await?;
        }
        Ok(())
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(hub) = &self.hub {
            hub.shutdown.cancel();
        }
    }
}

/// A loopback address where connections are refused for as long as the
/// returned socket lives: it holds the port without listening. (A port
/// bound and closed again can be taken by another test's server meanwhile,
/// which then answers in its place.)
pub fn refusing_address() -> anyhow::Result<(tokio::net::TcpSocket, std::net::SocketAddr)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.1:0".parse()?)?;
    let addr = socket.local_addr()?;
    Ok((socket, addr))
}

/// Polls `f` until it returns `Some`, or fails after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > limit {
            anyhow::bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
