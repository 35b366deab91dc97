//! `xj nats-config`: the nats-server accounts of a deployment
//! (docs/security.md, "NATS tenancy").
//!
//! The services' user lives in the hub's account, [`HUB_ACCOUNT`], the only
//! account with JetStream. Each NATS-native organisation is an account of
//! its own with one user (its token as password, stored as a bcrypt hash,
//! or its nkey). The hub's account exports to that account, and to no
//! other, exactly:
//!
//! - its intake subject `xj.in.<org>` (a JetStream publish; the stream's
//!   acknowledgement comes back as the answer),
//! - its outbox consumer: `$JS.API.CONSUMER.MSG.NEXT.XJ_OUT.<org>` (pull),
//!   `$JS.API.CONSUMER.INFO.XJ_OUT.<org>` (what a client library asks
//!   first), both seen in the organisation's account under the API prefix
//!   [`ORG_API_PREFIX`], and `$JS.ACK.XJ_OUT.<org>.>` (acknowledgements).
//!
//! These are service exports: every request crosses with its reply subject
//! rewritten to one the server maps back into the organisation's own
//! account. So no reply subject, consumer configuration or `$JS` request an
//! organisation sends can make the server write into the hub's streams or
//! buckets, or read another organisation's: its account has no JetStream of
//! its own and sees no hub subject but these four. The durable consumer
//! `<org>` on `XJ_OUT`, filtered to `xj.out.<org>`, is created by the hub
//! (`xj_bus::streams`), never by the organisation.
//!
//! Organisations delivered by webhook have no NATS user at all.

use xj_bus::subjects::STREAM_OUT;
use xj_config::{Org, Settings};

#[derive(Debug, thiserror::Error)]
pub enum NatsConfigError {
    #[error("[nats] user and password (or password_file / password_env) must be set: the services' NATS user")]
    NoServiceUser,
    #[error("cannot hash a password: {0}")]
    Hash(String),
}

/// The services' NATS user: `[nats] user`, default `xj-services`.
pub const DEFAULT_SERVICE_USER: &str = "xj-services";

/// The account the hub's services and its JetStream live in.
pub const HUB_ACCOUNT: &str = "XJ_HUB";

/// The JetStream API prefix an organisation's client uses
/// (`async_nats::jetstream::with_prefix(client, ORG_API_PREFIX)`): the
/// hub's consumer API is imported under it, because in an account without
/// JetStream the server itself answers every `$JS.API` request with "not
/// enabled".
pub const ORG_API_PREFIX: &str = "JS.xj.API";

/// What an organisation's account imports from [`HUB_ACCOUNT`]: the hub's
/// subject, the organisation's local name for it, and whether one request
/// has many answers (a pull).
pub fn org_imports(org: &str) -> Vec<(String, String, bool)> {
    let api = |rest: String| (format!("$JS.API.{rest}"), format!("{ORG_API_PREFIX}.{rest}"));
    let (next, next_local) = api(format!("CONSUMER.MSG.NEXT.{STREAM_OUT}.{org}"));
    let (info, info_local) = api(format!("CONSUMER.INFO.{STREAM_OUT}.{org}"));
    let intake = format!("xj.in.{org}");
    let acks = format!("$JS.ACK.{STREAM_OUT}.{org}.>");
    vec![
        (intake.clone(), intake, false),
        (next, next_local, true),
        (info, info_local, false),
        (acks.clone(), acks, false),
    ]
}

/// The name of an organisation's account.
pub fn org_account(org: &str) -> String {
    format!("org-{org}")
}

/// Organisations that get a NATS account.
pub fn nats_orgs(settings: &Settings) -> impl Iterator<Item = &Org> {
    settings.org.iter().filter(|o| o.deliver.nats || o.nkey.is_some())
}

fn hash(password: &str, cost: u32) -> Result<String, NatsConfigError> {
    bcrypt::hash_with_result(password, cost)
        .map(|h| h.format_for_version(bcrypt::Version::TwoA))
        .map_err(|e| NatsConfigError::Hash(e.to_string()))
}

/// The `accounts { … }` block. `cost` is the bcrypt cost (10 or more for a
/// deployment; tests use the minimum, 4).
pub fn authorization(settings: &Settings, cost: u32) -> Result<String, NatsConfigError> {
    let user = settings.nats.user.as_deref().unwrap_or(DEFAULT_SERVICE_USER);
    let password = settings.nats.password.as_deref().ok_or(NatsConfigError::NoServiceUser)?;
    let mut exports = String::new();
    let mut org_accounts = String::new();
    for org in nats_orgs(settings) {
        let account = org_account(&org.id);
        let who = match &org.nkey {
            Some(nkey) => format!("nkey: \"{nkey}\""),
            None => format!("user: \"{}\", password: \"{}\"", org.id, hash(&org.secret, cost)?),
        };
        let mut imports = String::new();
        for (subject, local, stream) in org_imports(&org.id) {
            let response = if stream { ", response_type: stream" } else { "" };
            exports.push_str(&format!("      {{ service: \"{subject}\", accounts: [\"{account}\"]{response} }}\n"));
            imports.push_str(&format!(
                "      {{ service: {{ account: \"{HUB_ACCOUNT}\", subject: \"{subject}\" }}, to: \"{local}\" }}\n"
            ));
        }
        org_accounts.push_str(&format!(
            "  # {} ({}): no JetStream, nothing but its own intake and outbox consumer\n  \"{account}\": {{\n    users: [ {{ {who} }} ]\n    imports: [\n{imports}    ]\n  }}\n",
            org.name.replace(['\n', '\r'], " "),
            org.id
        ));
    }
    let mut out = String::from(
        "# Generated by `xj nats-config` from the hub's configuration: the hub's\n\
         # account (the services' user, JetStream), and an account of its own for\n\
         # each NATS-native organisation, importing only its intake subject and\n\
         # its outbox consumer (docs/security.md).\n\
         accounts {\n",
    );
    out.push_str(&format!(
        "  \"{HUB_ACCOUNT}\": {{\n    jetstream: enabled\n    users: [ {{ user: \"{user}\", password: \"{}\" }} ]\n    exports: [\n{exports}    ]\n  }}\n",
        hash(password, cost)?
    ));
    out.push_str(&org_accounts);
    out.push_str("}\n");
    Ok(out)
}

/// File under `[data] dir` keeping the services' NATS password that `xj up`
/// generated for its embedded server (mode 0600), so that `xj audit` and a
/// restart find it again.
pub fn services_password_file(settings: &Settings) -> std::path::PathBuf {
    settings.data.dir.join("nats-services.password")
}

/// The settings the services of `xj up` use with the embedded server: the
/// `[nats]` user and password when configured, else `xj-services` with a
/// password generated once and kept in [`services_password_file`].
pub fn with_service_credentials(settings: &Settings) -> std::io::Result<Settings> {
    let mut s = settings.clone();
    if s.nats.password.is_none() {
        let path = services_password_file(settings);
        let password = match std::fs::read_to_string(&path) {
            Ok(p) if !p.trim().is_empty() => p.trim().to_string(),
            _ => {
                use rand::RngCore;
                let mut raw = [0u8; 24];
                rand::thread_rng().fill_bytes(&mut raw);
                let p = hex::encode(raw);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(&path, &p)?;
                p
            }
        };
        s.nats.password = Some(password);
    }
    if s.nats.user.is_none() {
        s.nats.user = Some(DEFAULT_SERVICE_USER.to_string());
    }
    Ok(s)
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_nats_org_gets_only_its_own_subjects() {
        let toml = r#"
[nats]
user = "xj-services"
password = "service-password-0123456789"
[operator]
token = "operator-token-0123456789"
[[org]]
id = "qh-agri"
name = "农业农村局"
kind = "agriculture"
region = "990101"
token = "token-qh-agri-0123456789"
deliver = { nats = true }
[[org]]
id = "qh-web"
name = "web"
kind = "market_regulation"
region = "990101"
token = "token-qh-web-01234567890"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
[[org]]
id = "qh-coord"
name = "指挥中心"
kind = "coordination_office"
region = "990101"
token = "token-qh-coord-0123456789"
deliver = { webhook = "http://127.0.0.1:9/inbox" }
"#;
        let s = xj_config::load_str(toml, "t.toml").unwrap();
        let block = authorization(&s, 4).unwrap();
        assert!(block.contains("user: \"qh-agri\""), "{block}");
        assert!(!block.contains("qh-web"), "webhook orgs have no NATS user: {block}");
        assert!(!block.contains("token-qh-agri"), "no clear-text credential: {block}");
        assert!(block.contains("{ service: \"xj.in.qh-agri\", accounts: [\"org-qh-agri\"] }"), "{block}");
        assert!(block.contains(
            "\"$JS.API.CONSUMER.MSG.NEXT.XJ_OUT.qh-agri\", accounts: [\"org-qh-agri\"], response_type: stream"
        ));
        assert!(!block.contains("CONSUMER.CREATE"), "organisations create no consumers: {block}");
        assert_eq!(block.matches("jetstream: enabled").count(), 1, "only the hub's account has JetStream");
        assert!(block.contains("$2a$04$"));
    }
}
