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
    pub receipts: kv::Store,
    pub routes: kv::Store,
    pub cases: kv::Store,
    pub penalties: kv::Store,
    pub holders: kv::Store,
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
        // A cluster that has just started (or lost its meta leader) answers
        // JetStream requests only once it has elected one: keep asking for
        // a while rather than fail the service.
        let limits = Limits::of(settings);
        let started = std::time::Instant::now();
        loop {
            match declare_with(&js, &limits).await {
                Ok(()) => break,
                Err(e) if started.elapsed() < Duration::from_secs(60) => {
                    tracing::warn!(error = %e, "JetStream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        let bucket = |name: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(name)
                    .await
                    .map_err(|e| BusError::Declare { what: name.into(), message: e.to_string() })
            }
        };
        Ok(Self(std::sync::Arc::new(BusInner {
            receipts: bucket(KV_RECEIPTS).await?,
            routes: bucket(KV_ROUTES).await?,
            cases: bucket(KV_CASES).await?,
            penalties: bucket(KV_PENALTIES).await?,
            holders: bucket(KV_HOLDERS).await?,
            clock: bucket(KV_CLOCK).await?,
            stats: bucket(KV_STATS).await?,
            client,
            js,
        })))
    }
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

fn stream_cfg(name: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        max_bytes: -1,
        max_messages: -1,
        // Long enough that a client retrying after a long outage is still
        // recognised; the receipts bucket covers anything older.
        duplicate_window: Duration::from_secs(600),
        max_age: Duration::from_secs(90 * 24 * 3600),
        // A full stream refuses new messages instead of dropping old ones:
        // the gateway then answers 503 and loses nothing already accepted.
        discard: stream::DiscardPolicy::New,
        ..Default::default()
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
        (STREAM_DEAD, "xj.dead.>", false),
        (STREAM_EVENTS, "xj.evt.>", false),
    ];
    for (name, subject, intake) in streams {
        let mut cfg = stream_cfg(name, subject, replicas);
        if intake {
            cfg.max_bytes = limits.intake_max_bytes;
            cfg.max_messages = limits.intake_max_msgs;
        }
        let err =
            |e: &dyn std::fmt::Display| BusError::Declare { what: format!("stream {name}"), message: e.to_string() };
        let stream = js.get_or_create_stream(cfg.clone()).await.map_err(|e| err(&e))?;
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
    for (bucket, history) in [
        (KV_RECEIPTS, 1),
        (KV_ROUTES, 1),
        (KV_CASES, 1),
        (KV_PENALTIES, 1),
        (KV_HOLDERS, 1),
        (KV_CLOCK, 1),
        (KV_STATS, 1),
    ] {
        if js.get_key_value(bucket).await.is_ok() {
            scale(js, &format!("KV_{bucket}"), replicas).await?;
            continue;
        }
        js.create_key_value(kv::Config {
            bucket: bucket.into(),
            history,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| BusError::Declare { what: format!("bucket {bucket}"), message: e.to_string() })?;
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
