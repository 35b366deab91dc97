//! Who is party to a case, written before anything leaves, so that the
//! gateway's answers never wait for the tracker (docs/architecture.md,
//! "Who owns which record").
//!
//! The tracker's case record is the full story, folded from events and
//! possibly behind by thousands of them under load. The gateway must
//! still accept a message from an organisation on a case it was delivered
//! a millisecond ago, and answer `GET /v1/cases/{case}` as soon as it has
//! answered 202. So the two facts it needs are kept here, each by the
//! service that makes it true, before the step that makes it visible:
//!
//! | key                     | written by                         | before |
//! |-------------------------|------------------------------------|--------|
//! | `<case>` (value: the opener) | gateway, when it opens a case  | the 202 |
//! | `<case>.sent.<org>`     | gateway, for the sender of a message on a case it did not open | the 202 |
//! | `<case>.received.<org>` | router (and the alerts it and the tracker raise), for each recipient of anything but a referral | the copy is published |
//! | `<case>.referred.<org>` | router, for the recipient of a referral | the copy is published |
//!
//! Each key is written once (`create`; a repeat finds it there) and never
//! changes, so there is nothing to compare and set. One key says each
//! fact: the opener is not marked `sent` (the case's key names it), a
//! referral's recipient not `received` (being referred implies it) — a
//! message that opens a case writes one key, a referral one per recipient.

use async_nats::jetstream::kv::{self, CreateErrorKind};

use crate::subjects::token;

/// How an organisation came to be party to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It sent a message on the case.
    Sent,
    /// A message on the case was delivered (or is on its way) to it.
    Received,
    /// It received a referral on the case (and so may not pass it on by
    /// itself, only object).
    Referred,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Received => "received",
            Self::Referred => "referred",
        }
    }
}

pub fn key(case: &str, role: Role, org: &str) -> String {
    format!("{}.{}.{}", token(case), role.as_str(), token(org))
}

/// Records that `org` is party to `case` as `role`.
pub async fn mark(store: &kv::Store, case: &str, role: Role, org: &str) -> anyhow::Result<()> {
    create(store, &key(case, role, org)).await
}

/// Records that `case` exists, opened by `opener`'s message (which makes
/// it party to the case); whether this call wrote it.
pub async fn open(store: &kv::Store, case: &str, opener: &str) -> anyhow::Result<bool> {
    create_with(store, &token(case), bytes::Bytes::copy_from_slice(opener.as_bytes())).await
}

/// Takes back the key of a case opened for a message the bus then refused
/// as a repeat: the repeat is answered with the first message's case, and
/// the one opened for it must not stay, a case nobody was told of with its
/// sender as party.
pub async fn unopen(store: &kv::Store, case: &str) -> anyhow::Result<()> {
    store.purge(token(case)).await?;
    Ok(())
}

async fn create(store: &kv::Store, key: &str) -> anyhow::Result<()> {
    create_with(store, key, bytes::Bytes::new()).await.map(|_| ())
}

/// Writes `key` unless it is there; whether it wrote it.
async fn create_with(store: &kv::Store, key: &str, value: bytes::Bytes) -> anyhow::Result<bool> {
    match store.create(key, value).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn exists(store: &kv::Store, key: &str) -> anyhow::Result<bool> {
    Ok(store.get(key).await?.is_some())
}

/// Whether `org` is party to `case` in `role`.
pub async fn is(store: &kv::Store, case: &str, role: Role, org: &str) -> anyhow::Result<bool> {
    exists(store, &key(case, role, org)).await
}

/// Where `org` stands on `case`, from one read of each key that says it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// The gateway opened the case (whoever it was for).
    pub open: bool,
    /// `org` opened it, sent on it, or received or was referred anything
    /// on it.
    pub party: bool,
    /// `org` received a referral on it.
    pub referred: bool,
}

pub async fn standing(store: &kv::Store, case: &str, org: &str) -> anyhow::Result<Standing> {
    let opener = async { Ok::<_, anyhow::Error>(store.get(token(case)).await?) };
    let (opener, sent, received, referred) = tokio::try_join!(
        opener,
        is(store, case, Role::Sent, org),
        is(store, case, Role::Received, org),
        is(store, case, Role::Referred, org)
    )?;
    let opened = opener.as_ref().is_some_and(|v| v == org.as_bytes());
    Ok(Standing { open: opener.is_some(), party: opened || sent || received || referred, referred })
}

/// Whether `org` sent or received anything on `case` ([`standing`]).
pub async fn is_party(store: &kv::Store, case: &str, org: &str) -> anyhow::Result<bool> {
    Ok(standing(store, case, org).await?.party)
}

/// Whether the gateway opened `case`.
pub async fn is_open(store: &kv::Store, case: &str) -> anyhow::Result<bool> {
    exists(store, &token(case)).await
}
