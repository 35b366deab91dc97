//! Connecting to NATS and declaring the streams and buckets. Every service
//! declares them idempotently at start, so any one can start first.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use xj_config::Settings;

use crate::subjects::*;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("cannot declare {what}: {message}")]
    Declare { what: String, message: String },
}

/// A connection with its JetStream context and the hub's buckets. Cheap to
/// clone (one reference count): services clone it for every message they
/// handle and every request they answer.
#[derive(Clone)]
pub struct Bus(std::sync::Arc<BusInner>);

impl std::ops::Deref for Bus {
    type Target = BusInner;
    fn deref(&self) -> &BusInner {
        &self.0
    }
}

/// What a [`Bus`] holds. (A `kv::Store` carries its stream's whole
/// configuration: cloning seven of them per message was the gateway's
/// largest single cost.)
pub struct BusInner {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub routes: kv::Store,
    pub cases: kv::Store,
    pub parties: kv::Store,
    pub penalties: kv::Store,
    pub holders: kv::Store,
    pub crimes: kv::Store,
    pub clock: kv::Store,
    pub stats: kv::Store,
}

impl Bus {
    /// Connects to `url` (credentials from `[nats]`) and declares streams.
    pub async fn connect(settings: &Settings, url: &str) -> Result<Self, BusError> {
        let mut opts = async_nats::ConnectOptions::new()
            .name("xianjie")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5));
        if let (Some(u), Some(p)) = (&settings.nats.user, &settings.nats.password) {
            opts = opts.user_and_password(u.clone(), p.clone());
        }
        // Several servers (a cluster's nodes): the client picks one and
        // reconnects to another when it goes away.
        let servers = xj_config::NatsSettings::servers(url);
        let client = tokio::time::timeout(Duration::from_secs(20), opts.connect(servers))
            .await
            .map_err(|_| BusError::Connect { url: url.into(), message: "timed out".into() })?
            .map_err(|e| BusError::Connect { url: url.into(), message: e.to_string() })?;
        let js = jetstream::new(client.clone());
        let limits = Limits::of(settings);
        if let Err(e) = patiently("the hub's streams", None, || declare_with(&js, &limits)).await {
            // The first connection is retried in the background, so a NATS
            // that never answered shows up here as timed-out requests.
            if !matches!(client.connection_state(), async_nats::connection::State::Connected) {
                return Err(BusError::Connect { url: url.into(), message: "no answer (tried for a minute)".into() });
            }
            return Err(e);
        }
        let orgs: Vec<&str> = settings.org.iter().filter(|o| o.deliver.nats).map(|o| o.id.as_str()).collect();
        patiently("the organisations' outbox consumers", None, || org_consumers(&js, &orgs)).await?;
        let bucket = |name: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(name)
                    .await
                    .map_err(|e| BusError::Declare { what: name.into(), message: e.to_string() })
            }
        };
        Ok(Self(std::sync::Arc::new(BusInner {
            routes: bucket(KV_ROUTES).await?,
            cases: bucket(KV_CASES).await?,
            parties: bucket(KV_PARTIES).await?,
            penalties: bucket(KV_PENALTIES).await?,
            holders: bucket(KV_HOLDERS).await?,
            crimes: bucket(KV_CRIMES).await?,
            clock: bucket(KV_CLOCK).await?,
            stats: bucket(KV_STATS).await?,
            client,
            js,
        })))
    }
}

/// Creates each NATS-native organisation's durable pull consumer `<org>` on
/// `XJ_OUT`, filtered to `xj.out.<org>`. The hub makes them because an
/// organisation's account may only pull from and acknowledge this one
/// consumer (docs/security.md): it cannot create or change any.
pub async fn org_consumers(js: &jetstream::Context, orgs: &[&str]) -> Result<(), BusError> {
    if orgs.is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| BusError::Declare { what: "outbox consumers".into(), message: e.to_string() };
    let stream = js.get_stream(STREAM_OUT).await.map_err(|e| err(&e))?;
    for org in orgs {
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(org.to_string()),
            filter_subject: outbox(org),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 10_000,
            ..Default::default()
        };
        let consumer: jetstream::consumer::PullConsumer =
            stream.get_or_create_consumer(org, config.clone()).await.map_err(|e| err(&e))?;
        // One made by an organisation itself under an earlier version may
        // filter elsewhere; the hub's definition wins.
        if consumer.cached_info().config.filter_subject != config.filter_subject {
            stream.update_consumer(config).await.map_err(|e| err(&e))?;
        }
    }
    Ok(())
}

/// What a deployment sets about the streams: replicas everywhere, and the
/// size of the intake streams (`[nats] max_bytes`, `max_msgs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub replicas: usize,
    /// `-1`: no limit.
    pub intake_max_bytes: i64,
    pub intake_max_msgs: i64,
}

impl Limits {
    pub fn of(settings: &Settings) -> Self {
        let n = &settings.nats;
        Self {
            replicas: n.replicas.max(1),
            intake_max_bytes: n.max_bytes.unwrap_or(-1),
            intake_max_msgs: n.max_msgs.unwrap_or(-1),
        }
    }

    pub fn replicas(replicas: usize) -> Self {
        Self { replicas: replicas.max(1), intake_max_bytes: -1, intake_max_msgs: -1 }
    }
}

/// How long the hub keeps messages, events and what points to them.
pub const RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

fn stream_cfg(name: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_bytes: -1,
        max_messages: -1,
        // Long enough that a republish after a crash is recognised; an
        // accepted message's own subject (one message each) covers longer.
        duplicate_window: Duration::from_secs(600),
        max_age: RETENTION,
        // A full stream refuses new messages instead of dropping old ones:
        // the gateway then answers 503 and loses nothing already accepted.
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    }
}

/// Runs `declare` again, every half second for up to a minute (or until
/// `stop`), while it fails: a cluster that has just started or lost its
/// meta leader answers JetStream requests only once it has elected one,
/// and one that has just formed may have no room yet for three copies.
/// Keep asking rather than fail the service.
pub async fn patiently<T, E, Fut>(
    what: &str,
    stop: Option<&crate::Shutdown>,
    mut declare: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: std::fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let started = std::time::Instant::now();
    loop {
        match declare().await {
            Ok(v) => return Ok(v),
            Err(e) if started.elapsed() < Duration::from_secs(60) && !stop.is_some_and(|s| s.is_cancelled()) => {
                tracing::warn!(error = %e, "cannot declare {what} yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Declares every stream and bucket of the hub (idempotent).
pub async fn declare(js: &jetstream::Context, replicas: usize) -> Result<(), BusError> {
    declare_with(js, &Limits::replicas(replicas)).await
}

/// Declares every stream and bucket with `limits`. A stream that exists with
/// other replicas or intake limits is updated to them (scaling R1 to R3 when
/// a hub moves onto a cluster, raising a full intake stream's limit).
pub async fn declare_with(js: &jetstream::Context, limits: &Limits) -> Result<(), BusError> {
    let replicas = limits.replicas;
    let streams = [
        (STREAM_IN, "xj.in.>", true),
        (STREAM_ACCEPTED, "xj.accepted.>", true),
        (STREAM_ROUTED, "xj.routed.>", false),
        (STREAM_OUT, "xj.out.>", false),
        (STREAM_INBOX, "xj.inbox.>", false),
        (STREAM_DEAD, "xj.dead.>", false),
        (STREAM_EVENTS, "xj.evt.>", false),
    ];
    for (name, subject, intake) in streams {
        let mut cfg = stream_cfg(name, subject, replicas);
        if intake {
            cfg.max_bytes = limits.intake_max_bytes;
            cfg.max_messages = limits.intake_max_msgs;
        }
        if name == STREAM_ACCEPTED {
            // The message's subject is its claim on the id: one message a
            // subject, a second refused by the server (a repeat or a reuse
            // of the id; the gateway reads the first back to say which).
            cfg.max_messages_per_subject = 1;
            cfg.discard_new_per_subject = true;
        }
        if name == STREAM_INBOX {
            // A delivery waits for its organisation however long that takes:
            // collecting it removes it, age never does.
            cfg.max_age = Duration::ZERO;
        }
        let err =
            |e: &dyn std::fmt::Display| BusError::Declare { what: format!("stream {name}"), message: e.to_string() };
        let mut stream = js.get_or_create_stream(cfg.clone()).await.map_err(|e| err(&e))?;
        let have = &stream.cached_info().config;
        if name == STREAM_ACCEPTED && have.max_messages_per_subject != 1 {
            one_message_a_subject(js, &mut stream).await.map_err(|e| err(&e))?;
        }
        let have = &stream.cached_info().config;
        let unlimited = |v: i64| if v <= 0 { -1 } else { v };
        let differs = have.num_replicas.max(1) != cfg.num_replicas
            || unlimited(have.max_bytes) != unlimited(cfg.max_bytes)
            || unlimited(have.max_messages) != unlimited(cfg.max_messages);
        if differs {
            let mut update = have.clone();
            update.num_replicas = cfg.num_replicas;
            update.max_bytes = cfg.max_bytes;
            update.max_messages = cfg.max_messages;
            js.update_stream(&update).await.map_err(|e| err(&e))?;
            tracing::info!(
                stream = name,
                replicas,
                max_bytes = cfg.max_bytes,
                max_msgs = cfg.max_messages,
                "stream updated"
            );
        }
    }
    // Stores created on first use (the evidence attachments): scaled too
    // once they exist.
    for stream in ["OBJ_xj_evidence", "KV_xj_evidence_refs"] {
        if js.get_stream(stream).await.is_ok() {
            scale(js, stream, replicas).await?;
        }
    }
    // Routes (for threading replies) are kept as long as the messages
    // they point to; without an age every
    // referral ever accepted would stay indexed in the servers' memory.
    // Case records, penalties, holders, statistics are kept for good.
    let forever = Duration::ZERO;
    for (bucket, max_age) in [
        (KV_ROUTES, RETENTION),
        (KV_CASES, forever),
        (KV_PARTIES, forever),
        (KV_PENALTIES, forever),
        (KV_HOLDERS, forever),
        (KV_CRIMES, forever),
        (KV_CLOCK, forever),
        (KV_STATS, forever),
    ] {
        if js.get_key_value(bucket).await.is_ok() {
            let name = format!("KV_{bucket}");
            scale(js, &name, replicas).await?;
            age(js, &name, max_age).await?;
            continue;
        }
        js.create_key_value(kv::Config {
            bucket: bucket.into(),
            history: 1,
            max_age,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::Declare { what: format!("bucket {bucket}"), message: e.to_string() })?;
    }
    Ok(())
}

/// Gives an `XJ_ACCEPTED` of an earlier version (one subject per sender,
/// ids claimed in a bucket) one message a subject. Only an empty one: on a
/// stream that holds messages the server would keep just the newest of
/// each sender's, so the service refuses to start instead
/// (docs/operations.md, "Upgrading").
async fn one_message_a_subject(js: &jetstream::Context, stream: &mut stream::Stream) -> Result<(), String> {
    let info = stream.info().await.map_err(|e| e.to_string())?;
    if info.state.messages > 0 {
        return Err(format!(
            "it holds {} messages stored one subject per sender (an earlier version's layout); this version stores one \
             subject per message and cannot take them over in place: see docs/operations.md, \"Upgrading\"",
            info.state.messages
        ));
    }
    let mut update = info.config.clone();
    update.max_messages_per_subject = 1;
    update.discard_new_per_subject = true;
    js.update_stream(&update).await.map_err(|e| e.to_string())?;
    *stream = js.get_stream(STREAM_ACCEPTED).await.map_err(|e| e.to_string())?;
    tracing::info!("XJ_ACCEPTED now keeps one message a subject");
    Ok(())
}

/// Whether a publish to `XJ_ACCEPTED` was refused because the message's
/// subject already holds its one message: the id was accepted before.
pub fn subject_taken(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("maximum messages per subject")
}

/// Stores an accepted message on its own subject of `XJ_ACCEPTED`
/// ([`crate::subjects::accepted`]): `true` when stored now, `false` when
/// the subject held it already — the id was accepted before, and nothing
/// is stored twice.
pub async fn store_once(
    js: &jetstream::Context,
    subject: String,
    headers: async_nats::HeaderMap,
    payload: bytes::Bytes,
) -> Result<bool, jetstream::context::PublishError> {
    match async { js.publish_with_headers(subject, headers, payload).await?.await }.await {
        Ok(ack) => Ok(!ack.duplicate),
        Err(e) if subject_taken(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives an existing bucket's stream the age limit of this version.
async fn age(js: &jetstream::Context, stream: &str, max_age: Duration) -> Result<(), BusError> {
    let err =
        |e: &dyn std::fmt::Display| BusError::Declare { what: format!("stream {stream}"), message: e.to_string() };
    let s = js.get_stream(stream).await.map_err(|e| err(&e))?;
    let have = &s.cached_info().config;
    if have.max_age != max_age {
        let mut update = have.clone();
        update.max_age = max_age;
        js.update_stream(&update).await.map_err(|e| err(&e))?;
        tracing::info!(stream, ?max_age, "bucket age limit updated");
    }
    Ok(())
}

/// Gives an existing stream (a bucket's, an object store's) `replicas`.
pub async fn scale(js: &jetstream::Context, stream: &str, replicas: usize) -> Result<(), BusError> {
    let err =
        |e: &dyn std::fmt::Display| BusError::Declare { what: format!("stream {stream}"), message: e.to_string() };
    let s = js.get_stream(stream).await.map_err(|e| err(&e))?;
    let have = &s.cached_info().config;
    if have.num_replicas.max(1) != replicas.max(1) {
        let mut update = have.clone();
        update.num_replicas = replicas.max(1);
        js.update_stream(&update).await.map_err(|e| err(&e))?;
        tracing::info!(stream, replicas, "stream scaled");
    }
    Ok(())
}
