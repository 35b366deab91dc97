//! The hub behind the NATS accounts `xj nats-config` generates: the
//! services connect as their own user, NATS-native organisations as theirs.

use std::sync::Arc;

use xj_bus::embedded::{NatsServer, ServerOptions};

use crate::{TestHub, TestNats, county_config};

/// The services' NATS credentials in [`TestHub::start_secured`].
pub const SERVICE_USER: &str = "xj-services";
pub const SERVICE_PASSWORD: &str = "service-password-0123456789";

impl TestNats {
    /// A nats-server in `dir` whose configuration ends with `extra_config`
    /// (an authorization block, for instance).
    pub fn start_configured(dir: tempfile::TempDir, extra_config: String) -> anyhow::Result<Self> {
        let server = NatsServer::start(ServerOptions {
            store_dir: dir.path().join("js"),
            extra_config: Some(extra_config),
            ..Default::default()
        })?;
        Ok(Self { server, dir })
    }
}

impl TestHub {
    /// The standard county on a nats-server that enforces the generated
    /// authorization block; `extra` TOML is appended (no `[nats]` table).
    pub async fn start_secured(extra: &str) -> anyhow::Result<Self> {
        let extra = extra.to_string();
        Self::start_custom(move |county| format!("{county}\n{extra}"), true).await
    }

    /// The standard county with its configuration text passed through
    /// `edit` first (to give an organisation a key, subscriptions, limits…);
    /// `secured` puts the generated NATS authorization in force.
    pub async fn start_custom(edit: impl FnOnce(String) -> String, secured: bool) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let (receivers, urls) = crate::county_receivers().await?;
        let nats_table = if secured {
            format!("[nats]\nuser = \"{SERVICE_USER}\"\npassword = \"{SERVICE_PASSWORD}\"\n\n")
        } else {
            String::new()
        };
        let county =
            format!("{nats_table}[data]\ndir = \"{}\"\n\n{}", dir.path().join("data").display(), county_config(&urls));
        let text = edit(county);
        let path = dir.path().join("xianjie.toml");
        std::fs::write(&path, &text)?;
        let settings = Arc::new(xj_config::load_file(&path)?);
        let nats = if secured {
            let block = xj::nats_auth::authorization(&settings, 4)?;
            std::fs::write(dir.path().join("authorization.conf"), &block)?;
            TestNats::start_configured(dir, block)?
        } else {
            let server = NatsServer::start(ServerOptions { store_dir: dir.path().join("js"), ..Default::default() })?;
            TestNats { server, dir }
        };
        Self::start_with(nats, settings, receivers).await
    }

    /// Connects to the hub's NATS as an organisation's NATS user (its token
    /// as password; it lands in the organisation's own account), recording
    /// server errors such as permission violations in the returned list.
    pub async fn connect_as(
        &self,
        org: &str,
    ) -> anyhow::Result<(async_nats::Client, Arc<std::sync::Mutex<Vec<String>>>)> {
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = errors.clone();
        let client = async_nats::ConnectOptions::with_user_and_password(org.to_string(), self.token(org))
            .event_callback(move |ev| {
                let seen = seen.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = ev {
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
                    }
                }
            })
            .connect(self.nats.url())
            .await?;
        Ok((client, errors))
    }

    /// Connects as the services' user.
    pub async fn connect_services(&self) -> anyhow::Result<async_nats::Client> {
        Ok(async_nats::ConnectOptions::with_user_and_password(SERVICE_USER.into(), SERVICE_PASSWORD.into())
            .connect(self.nats.url())
            .await?)
    }
}
