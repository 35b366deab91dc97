//! Typed settings. Doc comments here are the user documentation of each key
//! (see docs/configuration.md).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Other TOML files merged before this one, relative to it.
    #[serde(default)]
    pub include: Vec<PathBuf>,
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub data: DataSettings,
    #[serde(default)]
    pub operator: OperatorSettings,
    #[serde(default)]
    pub courier: CourierSettings,
    #[serde(default)]
    pub hub: HubSettings,
    #[serde(default)]
    pub clock: ClockSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub org: Vec<Org>,
    #[serde(default)]
    pub matter: Vec<Matter>,
    /// Where the settings came from, for messages; not a key.
    #[serde(skip)]
    pub source: String,
    /// The files read (main file and includes), watched for reloads.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Absent: `xj up` starts its own nats-server under `[data] dir`.
    pub url: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Replicas of every stream and bucket (3 on a cluster).
    #[serde(default = "one")]
    pub replicas: usize,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self { url: None, user: None, password: None, replicas: one() }
    }
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest accepted request body; larger ones get 413.
    #[serde(default = "default_body_limit")]
    pub max_body_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { listen: default_listen(), max_body_bytes: default_body_limit() }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_body_limit() -> usize {
    1024 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    #[serde(default = "default_data_dir")]
    pub dir: PathBuf,
}

impl Default for DataSettings {
    fn default() -> Self {
        Self { dir: default_data_dir() }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

/// A credential given inline, from a file, or from an environment variable.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TokenSource {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorSettings {
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierSettings {
    /// Delivery attempts before a message goes to the dead-letter list.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt up to `backoff_max_ms`.
    #[serde(default = "default_backoff")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Timeout of one webhook request.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Deliveries in flight at once per courier instance.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

impl Default for CourierSettings {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff_initial_ms: default_backoff(),
            backoff_max_ms: default_backoff_max(),
            timeout_ms: default_timeout(),
            concurrency: default_concurrency(),
        }
    }
}

fn default_attempts() -> u32 {
    8
}
fn default_backoff() -> u64 {
    1000
}
fn default_backoff_max() -> u64 {
    300_000
}
fn default_timeout() -> u64 {
    10_000
}
fn default_concurrency() -> usize {
    256
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// Ed25519 signing key (32 raw bytes, hex). Default: `<data>/hub_ed25519.key`,
    /// created on first start. Every process of one hub must share it.
    pub signing_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    /// `system` (default) or `manual`: time moves only by
    /// `POST /v1/admin/clock/advance`.
    #[serde(default)]
    pub mode: ClockMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockMode {
    #[default]
    System,
    Manual,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    /// OTLP/HTTP endpoint for traces; none when absent.
    pub otlp_endpoint: Option<String>,
    /// `tracing` filter, e.g. `info,xj_router=debug`.
    pub log: Option<String>,
    /// `json` for one JSON object per line.
    pub log_format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    MarketRegulation,
    EcologyEnvironment,
    ComprehensiveEnforcement,
    NaturalResources,
    Agriculture,
    Transport,
    Emergency,
    Health,
    CultureMarket,
    TownGovernment,
    PublicSecurity,
    Procuratorate,
    Court,
    JusticeBureau,
    CoordinationOffice,
}

impl OrgKind {
    /// Organisations that enforce administrative law and so send and
    /// receive referrals.
    pub fn is_enforcement(self) -> bool {
        !matches!(
            self,
            Self::PublicSecurity | Self::Procuratorate | Self::Court | Self::JusticeBureau | Self::CoordinationOffice
        )
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Org {
    /// `[a-z0-9-]{2,40}`; one NATS subject token.
    pub id: String,
    pub name: String,
    pub kind: OrgKind,
    /// 6-digit county or 9-digit town code.
    pub region: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub token_env: Option<String>,
    pub deliver: Deliver,
    #[serde(default = "canonical")]
    pub format: String,
    /// For organisations with several units (police): which unit this is.
    pub unit: Option<String>,
    #[serde(default)]
    pub subscribe: Vec<Subscription>,
    /// Police systems that do not send receipts: the hub writes the
    /// `handoff_receipt` when delivery succeeds.
    #[serde(default)]
    pub auto_receipt: bool,
    /// The credential, resolved from token / token_file / token_env.
    #[serde(skip)]
    pub secret: String,
}

fn canonical() -> String {
    "canonical".into()
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Deliver {
    pub webhook: Option<String>,
    #[serde(default)]
    pub nats: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub kind: String,
    pub region: Option<String>,
    pub matter: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matter {
    pub code: String,
    pub name: String,
    pub competent: OrgKind,
    #[serde(default)]
    pub devolved_to: Vec<String>,
    pub legal_basis: Option<String>,
    pub crime: Option<Crime>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Crime {
    pub offence: String,
    pub police_unit: String,
    pub when: String,
    /// The document the threshold comes from, its version and effective date.
    pub source: Option<String>,
    pub effective: Option<String>,
}

impl Settings {
    pub fn org(&self, id: &str) -> Option<&Org> {
        self.org.iter().find(|o| o.id == id)
    }

    pub fn matter(&self, code: &str) -> Option<&Matter> {
        self.matter.iter().find(|m| m.code == code)
    }

    pub fn operator_token(&self) -> Option<&str> {
        self.operator.token.as_deref()
    }

    /// Version of the rule set: a digest of everything that decides
    /// routing (the matter catalogue and the organisation directory), so two
    /// hubs with the same rules report the same version.
    pub fn ruleset_version(&self) -> String {
        use sha2::{Digest, Sha256};
        let orgs: Vec<_> =
            self.org.iter().map(|o| serde_json::json!([o.id, o.kind, o.region, o.unit, o.subscribe])).collect();
        let doc = serde_json::json!({ "matters": self.matter, "orgs": orgs });
        format!("r-{}", &hex::encode(Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default()))[..12])
    }
}
