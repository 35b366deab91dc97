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

/// A connection with its JetStream context and the hub's buckets.
#[derive(Clone)]
pub struct Bus {
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
        let client = tokio::time::timeout(Duration::from_secs(20), opts.connect(url))
            .await
            .map_err(|_| BusError::Connect { url: url.into(), message: "timed out".into() })?
            .map_err(|e| BusError::Connect { url: url.into(), message: e.to_string() })?;
        let js = jetstream::new(client.clone());
        declare(&js, settings.nats.replicas).await?;
        let bucket = |name: &'static str| {
            let js = js.clone();
            async move {
                js.get_key_value(name)
                    .await
                    .map_err(|e| BusError::Declare { what: name.into(), message: e.to_string() })
            }
        };
        Ok(Self {
            receipts: bucket(KV_RECEIPTS).await?,
            routes: bucket(KV_ROUTES).await?,
            cases: bucket(KV_CASES).await?,
            penalties: bucket(KV_PENALTIES).await?,
            holders: bucket(KV_HOLDERS).await?,
            clock: bucket(KV_CLOCK).await?,
            stats: bucket(KV_STATS).await?,
            client,
            js,
        })
    }
}

fn stream_cfg(name: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
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
    let streams = [
        (STREAM_IN, "xj.in.>"),
        (STREAM_ACCEPTED, "xj.accepted.>"),
        (STREAM_ROUTED, "xj.routed.>"),
        (STREAM_OUT, "xj.out.>"),
        (STREAM_DEAD, "xj.dead.>"),
        (STREAM_EVENTS, "xj.evt.>"),
    ];
    for (name, subject) in streams {
        let cfg = stream_cfg(name, subject, replicas);
        js.get_or_create_stream(cfg)
            .await
            .map_err(|e| BusError::Declare { what: format!("stream {name}"), message: e.to_string() })?;
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
