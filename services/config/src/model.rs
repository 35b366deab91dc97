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
    pub console: ConsoleSettings,
    #[serde(default)]
    pub org: Vec<Org>,
    #[serde(default)]
    pub matter: Vec<Matter>,
    #[serde(default)]
    pub major_penalty: MajorPenaltySettings,
    #[serde(default)]
    pub dispute: DisputeSettings,
    #[serde(default)]
    pub report: ReportSettings,
    #[serde(default)]
    pub print: PrintSettings,
    #[serde(default)]
    pub ledger: LedgerSettings,
    #[serde(default)]
    pub formats: FormatsSettings,
    /// The native formats (built-in and from `[formats] dir`), loaded and
    /// checked with the settings; not a key.
    #[serde(skip)]
    pub mappings: std::sync::Arc<xj_mapping::Formats>,
    /// Where the settings came from, for messages; not a key.
    #[serde(skip)]
    pub source: String,
    /// The files read (main file and includes), watched for reloads.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
}

/// Native formats beyond the built-in ones (docs/writing-a-mapping.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatsSettings {
    /// A folder of `<name>/mapping.toml` files, relative to this file; a
    /// format there replaces a built-in one of the same name.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Absent: `xj up` starts its own nats-server under `[data] dir`.
    pub url: Option<String>,
    /// The services' NATS user (`xj nats-config` puts it in the hub's account).
    pub user: Option<String>,
    /// Its password: inline, or from `password_file` / `password_env`.
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    /// Replicas of every stream and bucket (3 on a cluster).
    #[serde(default = "one")]
    pub replicas: usize,
    /// Largest size in bytes of each intake stream (`XJ_IN`, `XJ_ACCEPTED`);
    /// when full the gateway refuses new messages with 503 instead of
    /// accepting them. Default: no limit but the server's disk.
    pub max_bytes: Option<i64>,
    /// Most messages each intake stream keeps (same refusal when reached).
    pub max_msgs: Option<i64>,
    /// How long a message handed to a service instance stays unacknowledged
    /// before JetStream gives it to another instance (after a crash).
    #[serde(default = "default_ack_wait")]
    pub ack_wait_ms: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: None,
            user: None,
            password: None,
            password_file: None,
            password_env: None,
            replicas: one(),
            max_bytes: None,
            max_msgs: None,
            ack_wait_ms: default_ack_wait(),
        }
    }
}

impl NatsSettings {
    /// The servers of `url`: one URL or several separated by commas (the
    /// nodes of a cluster; the client reconnects to whichever is up).
    pub fn servers(url: &str) -> Vec<String> {
        url.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

fn default_ack_wait() -> u64 {
    30_000
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
    /// Largest evidence attachment (`POST /v1/attachments`); larger ones get 413.
    #[serde(default = "default_attachment_limit")]
    pub max_attachment_bytes: usize,
    /// Largest batch (`POST /v1/messages/batch`, up to 500 messages); larger
    /// ones get 413. Each message in it is held to `max_body_bytes` too.
    #[serde(default = "default_batch_limit")]
    pub max_batch_bytes: usize,
    /// Requests per organisation (and for the operator token): a token
    /// bucket of `burst` requests refilled at `per_second`; beyond it 429.
    /// An `[[org]]` may set its own `rate_limit`.
    #[serde(default)]
    pub rate_limit: RateLimit,
    /// Requests one gateway handles at once; beyond it 503 with
    /// `Retry-After` (nothing accepted), so an overload queues at the
    /// callers, not in the gateway's memory. Health and metrics are exempt.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long a client may take to send a request's headers (measured
    /// from the first byte it may send: an idle keep-alive connection is
    /// closed after it too); then the connection is closed without answer.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// Longest pause while a request body is being sent; then 408 (or the
    /// connection closed) and nothing accepted.
    #[serde(default = "default_body_read_timeout")]
    pub body_read_timeout_ms: u64,
    /// Longest time for a whole request, body and answer included; then 408.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// Open connections from one client address; a connection beyond it is
    /// closed at once (behind a reverse proxy every connection comes from
    /// the proxy: raise it, or let the proxy limit per client).
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Largest request header block the hub reads (431 beyond it).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Addresses of reverse proxies whose `X-Forwarded-Proto` and
    /// `X-Forwarded-For` are believed (the console's Secure cookie, its
    /// origin, the client address of sign-in limits). Nobody else's are.
    #[serde(default)]
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_body_bytes: default_body_limit(),
            max_attachment_bytes: default_attachment_limit(),
            max_batch_bytes: default_batch_limit(),
            rate_limit: RateLimit::default(),
            max_in_flight: default_max_in_flight(),
            header_read_timeout_ms: default_header_read_timeout(),
            body_read_timeout_ms: default_body_read_timeout(),
            request_timeout_ms: default_request_timeout(),
            max_connections_per_client: default_max_connections_per_client(),
            max_header_bytes: default_max_header_bytes(),
            trusted_proxies: Vec::new(),
        }
    }
}

fn default_max_in_flight() -> usize {
    1024
}

fn default_header_read_timeout() -> u64 {
    10_000
}

fn default_body_read_timeout() -> u64 {
    15_000
}

fn default_request_timeout() -> u64 {
    120_000
}

fn default_max_connections_per_client() -> usize {
    256
}

fn default_max_header_bytes() -> usize {
    32 * 1024
}

/// The operator console (docs/operations-console.md, docs/security.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// The console's own origin as browsers see it (`https://hub.example`);
    /// a state-changing request from a page of any other origin is refused.
    /// Absent: the scheme and `Host` of each request.
    pub origin: Option<String>,
    /// `Secure` on the session cookie. Absent: when the console is reached
    /// over https (its `origin`, or a trusted proxy's `X-Forwarded-Proto`).
    pub secure_cookie: Option<bool>,
    /// Failed sign-ins per client address: a token bucket; beyond it 429
    /// with `Retry-After`.
    #[serde(default = "default_sign_in_failures")]
    pub sign_in_failures: RateLimit,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { origin: None, secure_cookie: None, sign_in_failures: default_sign_in_failures() }
    }
}

fn default_sign_in_failures() -> RateLimit {
    RateLimit { per_second: 0.05, burst: 5 }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self { per_second: 50.0, burst: 200 }
    }
}

fn default_attachment_limit() -> usize {
    32 * 1024 * 1024
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_batch_limit() -> usize {
    16 * 1024 * 1024
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
    20
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

/// A signature algorithm: the hub's (`[hub] signature`) or an
/// organisation's key (`[[org]] key_alg`), docs/security.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureAlg {
    /// Ed25519 (RFC 8032).
    #[default]
    Ed25519,
    /// SM2 with SM3 (GB/T 32918, GB/T 35276), distinguishing id
    /// `1234567812345678`.
    Sm2,
}

impl SignatureAlg {
    /// The name in configuration and in `Xj-Signature: alg=…`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Sm2 => "sm2",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSettings {
    /// What the hub signs deliveries, receipts, letters and the ledger's
    /// bundles with: `ed25519` (default) or `sm2`.
    #[serde(default)]
    pub signature: SignatureAlg,
    /// The signing key (32 raw bytes, hex; an SM2 key prefixed `sm2:`).
    /// Default: `<data>/hub_<signature>.key`, created on first start. Every
    /// process of one hub must share it.
    pub signing_key_file: Option<PathBuf>,
    /// Public keys (base64 Ed25519) the hub signed with before a rotation:
    /// still served at `GET /v1/keys` with their key ids so that old
    /// signatures stay verifiable. New signatures use `signing_key_file`.
    #[serde(default)]
    pub previous_public_keys: Vec<String>,
}

/// Which penalty decisions are major (重大行政处罚) and so filed with the
/// justice bureau (《县行政执法协调监督工作方案》（十二）): data, versioned with the rule set.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MajorPenaltySettings {
    /// A fine of at least this many yuan is major (处20万元以上罚款).
    #[serde(default = "default_major_fine")]
    pub min_fine: f64,
    /// `penalty.kind` values that are major whatever the amount.
    #[serde(default = "default_major_kinds")]
    pub kinds: Vec<String>,
    /// Days after the decision within which it must be filed.
    #[serde(default = "default_major_days")]
    pub file_within_days: u32,
    #[serde(default = "default_major_source")]
    pub source: String,
}

impl Default for MajorPenaltySettings {
    fn default() -> Self {
        Self {
            min_fine: default_major_fine(),
            kinds: default_major_kinds(),
            file_within_days: default_major_days(),
            source: default_major_source(),
        }
    }
}

fn default_major_fine() -> f64 {
    200_000.0
}
fn default_major_kinds() -> Vec<String> {
    [
        "confiscation",
        "suspension",
        "licence_revocation",
        "qualification_lowering",
        "production_restriction",
        "closure",
        "practice_ban",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
fn default_major_days() -> u32 {
    15
}
fn default_major_source() -> String {
    "《县行政执法协调监督工作方案》（十二）重大行政处罚备案".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSettings {
    /// `system` (default) or `manual`: time moves only by
    /// `POST /v1/admin/clock/advance`.
    #[serde(default)]
    pub mode: ClockMode,
    /// Manual mode: the hub's time when it first starts (RFC 3339); default
    /// the machine's time. For drills on a given date.
    pub start: Option<String>,
    /// Hours before a deadline that the party whose move it is gets a
    /// reminder (at most a third of the clock's length).
    #[serde(default = "default_reminder")]
    pub reminder_hours: i64,
    /// Working days the parties of a jurisdiction dispute negotiate before
    /// it goes to the coordination office (docs/rules.md, "Disputes").
    #[serde(default = "default_negotiation")]
    pub negotiation_working_days: i64,
    /// Working days the coordination office has before an unresolved dispute
    /// goes to the justice bureau (docs/rules.md, "Disputes").
    #[serde(default = "default_negotiation")]
    pub coordination_working_days: i64,
    /// Working days an organisation has to answer a justice bureau's
    /// supervision order (督办) or recommendation (监督建议); no statute sets
    /// it (docs/domain.md, "Supervision").
    #[serde(default = "default_supervision")]
    pub supervision_working_days: i64,
    /// Holiday table (JSON, see schemas/calendar/cn-holidays.json); default
    /// the built-in one.
    pub holidays: Option<PathBuf>,
}

impl Default for ClockSettings {
    fn default() -> Self {
        Self {
            mode: ClockMode::default(),
            start: None,
            reminder_hours: default_reminder(),
            negotiation_working_days: default_negotiation(),
            coordination_working_days: default_negotiation(),
            supervision_working_days: default_supervision(),
            holidays: None,
        }
    }
}

fn default_reminder() -> i64 {
    24
}
fn default_negotiation() -> i64 {
    5
}
fn default_supervision() -> i64 {
    10
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
    /// Where a process without the HTTP API (`xj run router`, `courier`,
    /// `tracker`, `ledger`) serves `/metrics` and `/healthz`; none when absent.
    /// The gateway and `xj up` serve them on `[http] listen`.
    pub metrics_listen: Option<SocketAddr>,
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
    /// 综合行政执法改革领导小组 (or the county government): the last word on
    /// a jurisdiction dispute.
    LeadershipGroup,
    /// 12345 政务服务便民热线: the complaint channel, told when a complaint
    /// is passed on and what came of it.
    Hotline,
}

impl OrgKind {
    /// Organisations that enforce administrative law and so send and
    /// receive referrals.
    pub fn is_enforcement(self) -> bool {
        !matches!(
            self,
            Self::PublicSecurity
                | Self::Procuratorate
                | Self::Court
                | Self::JusticeBureau
                | Self::CoordinationOffice
                | Self::LeadershipGroup
                | Self::Hotline
        )
    }
}

/// The digest the audit ledger chains its entries with (docs/security.md,
/// "The audit ledger").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerHash {
    #[default]
    Sha256,
    /// SM3 (GB/T 32905): entries written with it say `"alg": "sm3"`.
    Sm3,
}

/// The audit ledger.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// `sha256` (default) or `sm3`: the digest of new entries and their
    /// records' leaves. A change starts a new segment linked to the old
    /// head; entries already written keep theirs.
    #[serde(default)]
    pub hash: LedgerHash,
    /// Seconds between signed heads: the ledger signs its last entry (when
    /// it moved) with the hub's key into `XJ_LEDGER_HEADS`, and an evidence
    /// package chains its records to the first head after them.
    #[serde(default = "default_head_every_s")]
    pub head_every_s: u64,
    /// An RFC 3161 time-stamping authority: each signed head is sent to it
    /// (off every message's path) and its token kept with the head.
    #[serde(default)]
    pub timestamp_url: Option<String>,
    /// How long the time-stamping authority may take to answer.
    #[serde(default = "default_timestamp_timeout_ms")]
    pub timestamp_timeout_ms: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            hash: LedgerHash::default(),
            head_every_s: default_head_every_s(),
            timestamp_url: None,
            timestamp_timeout_ms: default_timestamp_timeout_ms(),
        }
    }
}

fn default_head_every_s() -> u64 {
    60
}

fn default_timestamp_timeout_ms() -> u64 {
    10_000
}

/// Printed documents (PDF).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PrintSettings {
    /// A CJK font file (TTF/OTF/TTC) to print with; default the system's
    /// (Debian's fonts-noto-cjk, or fonts-wqy-microhei).
    pub font: Option<PathBuf>,
}

/// The monthly report to the justice bureau (《县行政执法协调监督工作方案》二).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Figures every `monthly_report` must give (the county's form); the
    /// default is the four the county's supervision plan asks for.
    #[serde(default = "default_indicators")]
    pub indicators: Vec<String>,
    /// Day of the next month by whose end (24:00) the report is due.
    #[serde(default = "default_report_day")]
    pub due_day: u32,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self { indicators: default_indicators(), due_day: default_report_day() }
    }
}

fn default_indicators() -> Vec<String> {
    ["commitment_matters", "four_lists_cases", "impact_assessments", "enterprise_cases_closed"]
        .map(String::from)
        .to_vec()
}

fn default_report_day() -> u32 {
    10
}

/// Who holds a step of a jurisdiction dispute (docs/rules.md, "Disputes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeHolder {
    /// The two organisations themselves (协商).
    Negotiation,
    CoordinationOffice,
    JusticeBureau,
    LeadershipGroup,
}

impl DisputeHolder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Negotiation => "negotiation",
            Self::CoordinationOffice => "coordination_office",
            Self::JusticeBureau => "justice_bureau",
            Self::LeadershipGroup => "leadership_group",
        }
    }

    /// The kind of organisation that holds the step; none for negotiation.
    pub fn kind(self) -> Option<OrgKind> {
        match self {
            Self::Negotiation => None,
            Self::CoordinationOffice => Some(OrgKind::CoordinationOffice),
            Self::JusticeBureau => Some(OrgKind::JusticeBureau),
            Self::LeadershipGroup => Some(OrgKind::LeadershipGroup),
        }
    }
}

/// One step of a dispute path: who holds it and how many working days it
/// has before the dispute goes up to the next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeStep {
    pub holder: DisputeHolder,
    pub working_days: i64,
}

/// The paths a jurisdiction dispute takes (《县“大综合一体化”行政执法统筹协调指挥工作机制实施意见》二、10;
/// 《关于加强乡（镇、街道）与县级行政执法部门协调协作的指导意见》二、（二）3).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DisputeSettings {
    /// Between two county organisations; default negotiation → justice
    /// bureau → leadership group.
    pub county: Option<Vec<DisputeStep>>,
    /// Between a town and a county organisation (or two towns); default
    /// negotiation → coordination office → leadership group.
    pub town_county: Option<Vec<DisputeStep>>,
}

/// Which path a dispute is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputePath {
    County,
    TownCounty,
}

impl DisputePath {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::County => "county",
            Self::TownCounty => "town_county",
        }
    }
}

/// A step of a dispute path with the organisations that hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldStep {
    pub holder: DisputeHolder,
    pub working_days: i64,
    /// The organisations at this step: the two parties for negotiation,
    /// otherwise the organisations of the holder's kind in their county.
    pub orgs: Vec<String>,
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
    /// Its system signs a receipt for every webhook delivery
    /// (`Xj-Receipt-Signature` with its `public_key`): a delivery answered
    /// without a valid one is not delivered, and retried.
    #[serde(default)]
    pub sign_receipts: bool,
    /// The organisation's Ed25519 public key (base64, 32 bytes): when set,
    /// every submission must carry `Xj-Signature` over the exact body.
    pub public_key: Option<String>,
    /// The algorithm of `public_key`: `ed25519` (default) or `sm2` (base64
    /// of the 65-byte uncompressed point); its `Xj-Signature` says
    /// `alg=sm2`.
    #[serde(default)]
    pub key_alg: SignatureAlg,
    /// The organisation's NATS nkey (public, `U…`): `xj nats-config` gives
    /// its NATS user this nkey instead of the token as password.
    pub nkey: Option<String>,
    /// Its own request-size limit (bytes), below `[http] max_body_bytes`.
    pub max_body_bytes: Option<usize>,
    /// Its own request rate, instead of `[http] rate_limit`.
    pub rate_limit: Option<RateLimit>,
    /// The credential, resolved from token / token_file / token_env.
    #[serde(skip)]
    pub secret: String,
    /// The Standard Webhooks secret (`whsec_` + base64 of 24 to 64 bytes)
    /// its webhook deliveries are signed with (`webhook-signature`, beside
    /// `Xj-Signature`). Absent, the hub derives one from its signing key:
    /// `xj webhook-secret --org <id>` prints it (docs/api.md).
    pub webhook_secret: Option<String>,
    pub webhook_secret_file: Option<PathBuf>,
    pub webhook_secret_env: Option<String>,
    /// Secrets being rotated out: deliveries carry a signature for each,
    /// after the current one's, until they are removed.
    #[serde(default)]
    pub previous_webhook_secrets: Vec<String>,
    /// The configured secrets, current first (empty: derived by the hub).
    #[serde(skip)]
    pub webhook_secrets: Vec<String>,
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
    /// No system to receive with: deliveries wait at `GET /v1/inbox` until
    /// the organisation collects them (docs/api.md, "Pull delivery").
    #[serde(default)]
    pub pull: bool,
    /// Pull: hours a delivery may wait uncollected before the operator's
    /// view flags the organisation (`GET /v1/admin/inbox`).
    pub pull_alert_hours: Option<u32>,
    /// Webhook: up to this many messages in one `POST` as
    /// `{"messages": […]}`, signed as a whole (`Xj-Batch-Signature`); its
    /// 2xx acknowledges all of them (docs/api.md, "Batched delivery").
    pub batch: Option<u32>,
    /// Webhook over plain `http://`: the receiver speaks HTTP/2 without TLS
    /// (h2c, prior knowledge), so every delivery shares one connection. An
    /// `https://` receiver is offered HTTP/2 in the TLS handshake anyway.
    #[serde(default)]
    pub http2: bool,
}

impl Deliver {
    /// How the organisation receives: `webhook`, `nats` or `pull`.
    pub fn channel(&self) -> &'static str {
        if self.pull {
            "pull"
        } else if self.nats {
            "nats"
        } else {
            "webhook"
        }
    }
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
    /// Where the hub's signing key is: `[hub] signing_key_file`, or
    /// `hub_ed25519.key` (or `hub_sm2.key`) under `[data] dir`.
    pub fn signing_key_path(&self) -> PathBuf {
        self.hub
            .signing_key_file
            .clone()
            .unwrap_or_else(|| self.data.dir.join(format!("hub_{}.key", self.hub.signature.as_str())))
    }

    pub fn org(&self, id: &str) -> Option<&Org> {
        self.org.iter().find(|o| o.id == id)
    }

    pub fn matter(&self, code: &str) -> Option<&Matter> {
        self.matter.iter().find(|m| m.code == code)
    }

    /// The steps of `path` as configured, or the defaults of the county's
    /// documents (docs/rules.md, "Disputes").
    pub fn dispute_steps(&self, path: DisputePath) -> Vec<DisputeStep> {
        let c = &self.clock;
        let step = |holder, working_days| DisputeStep { holder, working_days };
        match path {
            DisputePath::County => self.dispute.county.clone().unwrap_or_else(|| {
                vec![
                    step(DisputeHolder::Negotiation, c.negotiation_working_days),
                    step(DisputeHolder::JusticeBureau, c.coordination_working_days),
                    step(DisputeHolder::LeadershipGroup, c.coordination_working_days),
                ]
            }),
            DisputePath::TownCounty => self.dispute.town_county.clone().unwrap_or_else(|| {
                vec![
                    step(DisputeHolder::Negotiation, c.negotiation_working_days),
                    step(DisputeHolder::CoordinationOffice, c.coordination_working_days),
                    step(DisputeHolder::LeadershipGroup, c.coordination_working_days),
                ]
            }),
        }
    }

    /// The path a dispute between `a` and `b` (organisation ids) takes: a
    /// town on either side makes it a town–county dispute.
    pub fn dispute_path(&self, a: &str, b: &str) -> DisputePath {
        let town = |id: &str| self.org(id).is_some_and(|o| o.kind == OrgKind::TownGovernment);
        if town(a) || town(b) { DisputePath::TownCounty } else { DisputePath::County }
    }

    /// The steps of the dispute between `a` and `b` with who holds each: the
    /// organisations of the step's kind in `a`'s county (the parties for
    /// negotiation). A step nobody in the county holds is left out, so a
    /// dispute never waits on an organisation that is not there.
    pub fn dispute_chain(&self, a: &str, b: &str) -> (DisputePath, Vec<HeldStep>) {
        let path = self.dispute_path(a, b);
        let county = self.org(a).or_else(|| self.org(b)).map(|o| &o.region[..6]).unwrap_or_default();
        let steps = self
            .dispute_steps(path)
            .into_iter()
            .map(|st| {
                let orgs = match st.holder.kind() {
                    None => vec![a.to_string(), b.to_string()],
                    Some(kind) => self
                        .org
                        .iter()
                        .filter(|o| o.kind == kind && o.region.starts_with(county))
                        .map(|o| o.id.clone())
                        .collect(),
                };
                HeldStep { holder: st.holder, working_days: st.working_days, orgs }
            })
            .filter(|h| !h.orgs.is_empty())
            .collect();
        (path, steps)
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
        let doc = serde_json::json!({ "matters": self.matter, "orgs": orgs, "major_penalty": self.major_penalty });
        format!("r-{}", &hex::encode(Sha256::digest(serde_json::to_vec(&doc).unwrap_or_default()))[..12])
    }
}
