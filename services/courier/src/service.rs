//! The courier's consumer loop and its per-receiver lanes.
//!
//! Deliveries to a receiver that answers go out side by side (up to
//! `[courier] concurrency` at once across all receivers). The first failed
//! attempt to a receiver closes its *lane*: that copy and every later copy
//! for the same receiver wait, unacknowledged and in stream order, while one
//! task retries the oldest with exponential backoff. When it gets through,
//! the waiting copies follow one at a time in order, and the lane opens
//! again. So a receiver that was down gets its backlog in the order the hub
//! accepted it, is not hammered by every waiting copy, and every other
//! receiver keeps being served. Waiting copies stay unacknowledged on the
//! server (kept alive with progress acks), so a courier crash loses nothing:
//! they are redelivered to whichever courier runs next.

use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{AckKind, Message};
use chrono::Utc;
use tracing::Instrument;
use xj_bus::consume::{self, Durable};
use xj_bus::headers::Put;
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::signing::HubKey;
use xj_bus::{Bus, Shutdown, TraceParent, events, headers as h, subjects};
use xj_config::Settings;

use crate::deliver::{Outcome, Parcel, attempt, backoff, delivery_id, native_form};
use xj_bus::signing::check_receipt;

const CONSUMER: &str = "courier";

/// Copies that may wait unacknowledged at once across every receiver (the
/// consumer's `max_ack_pending`): room for a receiver that is down for a
/// long while without holding up the deliveries to every other.
const WAITING: usize = 100_000;

/// Copies one lane keeps in memory, in order. Beyond that a receiver's
/// copies are handed back to JetStream with a delay (nothing lost, but they
/// may then arrive out of order); about 2–3 KiB each.
const HOLD: usize = 10_000;

pub async fn run(settings: Arc<Settings>, bus: Bus, key: HubKey, shutdown: Shutdown) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = &settings.courier;
    let http = crate::deliver::Clients::new(c).context("HTTP client")?;
    // Longer than one webhook request, so no copy is handed to a second
    // courier while the first still waits for the answer.
    let ack_wait = Duration::from_millis(settings.nats.ack_wait_ms.max(c.timeout_ms + 2_000));
    let messages = Durable::new(subjects::STREAM_ROUTED, CONSUMER)
        .ack_wait(ack_wait)
        .max_ack_pending((c.concurrency * 4).max(WAITING) as i64)
        .messages(&bus.js)
        .await?;
    // The mappings are read again with the rule files (on a change or an
    // operator's reload), so a corrected mapping needs no restart.
    let config = xj_rules::RulesHandle::new(xj_rules::RuleSet::compile(settings.clone())?);
    config.spawn_watcher(bus.client.clone(), shutdown.clone(), "courier");
    let courier = Arc::new(Courier {
        config,
        settings: settings.clone(),
        bus,
        key,
        http,
        lanes: Mutex::default(),
        batches: Mutex::default(),
        ack_wait,
        shutdown: shutdown.clone(),
    });
    tracing::info!("courier running");
    consume::run(messages, c.concurrency, shutdown, "courier", |m| {
        let courier = courier.clone();
        async move { courier.handle(m).await }
    })
    .await;
    tracing::info!("courier stopped");
    Ok(())
}

struct Courier {
    /// The configuration as last reloaded: the mappings are taken from it.
    config: xj_rules::RulesHandle,
    settings: Arc<Settings>,
    bus: Bus,
    key: HubKey,
    http: crate::deliver::Clients,
    /// Closed lanes by receiver; a receiver without an entry is served
    /// directly.
    lanes: Mutex<HashMap<String, Lane>>,
    /// Copies gathering for organisations that take batches.
    batches: Mutex<HashMap<String, Batch>>,
    ack_wait: Duration,
    shutdown: Shutdown,
}

/// The copies waiting for a receiver that failed, in the order their
/// messages were accepted (see [`Order`]).
#[derive(Default)]
struct Lane {
    waiting: BTreeMap<Order, Waiting>,
    /// The failure that closed the lane, for the `waiting` events.
    reason: String,
}

struct Waiting {
    m: Message,
    /// Attempts already made for this copy.
    attempts: u64,
}

/// What one attempt came to.
enum Step {
    Delivered,
    /// The receiver is not answering (refused connection, timeout, 5xx,
    /// 408, 429): its lane closes; may be retried.
    Failed(String),
    /// The receiver answered and refused this message (another 4xx): its
    /// lane stays open, the copy is retried on its own schedule.
    Refused(String),
    /// Went to the dead letters (cannot be expressed, or the receiver is
    /// no longer configured).
    Dead,
}

/// How long copies for an organisation that takes batches gather before
/// the first batch goes: the copies that arrive together share one `POST`.
const BATCH_LINGER: Duration = Duration::from_millis(5);

/// Copies gathering for one organisation's next batch.
#[derive(Default)]
struct Batch {
    pending: Vec<(Message, Copy, tokio::sync::oneshot::Sender<Step>)>,
    /// A task is sending this organisation's batches.
    flushing: bool,
}

/// A copy ready for an attempt (see [`Courier::prepare`]).
struct Prepared<'a> {
    org: &'a xj_config::Org,
    trace: TraceParent,
    hop: Hop,
    native: Result<(bytes::Bytes, &'static str), String>,
}

impl<'a> Prepared<'a> {
    fn parcel<'b>(&'b self, copy: &'b Copy, attempt: u64, body: bytes::Bytes, content_type: &'static str) -> Parcel<'b>
    where
        'a: 'b,
    {
        Parcel {
            org: self.org,
            sender: &copy.sender,
            msg_id: &copy.msg_id,
            case: &copy.case,
            delivery: &copy.delivery,
            attempt,
            trace: self.trace,
            body,
            content_type,
        }
    }
}

/// What the routing headers say about a copy.
#[derive(Clone)]
struct Copy {
    recipient: String,
    msg_id: String,
    sender: String,
    case: String,
    /// Its identity in the outbox and the dead letters ([`delivery_id`]).
    delivery: String,
    order: Order,
    delivered: u64,
    replayed_by: Option<String>,
}

impl Copy {
    fn of(m: &Message) -> Self {
        let hd = m.headers.as_ref();
        let info = m.info().ok();
        let recipient = h::get(hd, h::RECIPIENT).unwrap_or_default().to_string();
        let msg_id = h::get(hd, h::MESSAGE_ID).unwrap_or_default().to_string();
        let sender = h::get(hd, h::SENDER).unwrap_or_default().to_string();
        Copy {
            delivery: delivery_id(h::get(hd, h::NATS_MSG_ID), &sender, &msg_id, &recipient),
            recipient,
            msg_id,
            sender,
            case: h::get(hd, h::CASE).unwrap_or_default().to_string(),
            order: (
                h::get(hd, h::ACCEPTED_SEQ).and_then(|v| v.parse().ok()).unwrap_or(0),
                info.as_ref().map(|i| i.stream_sequence).unwrap_or(0),
            ),
            delivered: info.map(|i| i.delivered.max(1) as u64).unwrap_or(1),
            replayed_by: h::get(hd, h::REPLAYED_BY).map(str::to_owned),
        }
    }
}

impl Courier {
    async fn handle(self: Arc<Self>, m: Message) {
        let copy = Copy::of(&m);
        // Behind a failed delivery to the same receiver: wait in line.
        let held = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            match lanes.get_mut(&copy.recipient) {
                Some(lane) => hold(lane, m, copy.order, copy.delivered.saturating_sub(1)),
                None => Held::Free(m),
            }
        };
        match held {
            Held::InLine(reason) => self.waiting_event(&copy, &reason).await,
            Held::Overflow(m) => {
                let delay = Duration::from_millis(self.settings.courier.backoff_max_ms);
                if let Err(e) = m.ack_with(AckKind::Nak(Some(delay))).await {
                    tracing::warn!(error = %e, "cannot hand a waiting copy back; it is redelivered after ack_wait");
                }
            }
            Held::Free(m) => match self.clone().deliver_now(&m, &copy).await {
                Step::Failed(reason) | Step::Refused(reason)
                    if copy.delivered >= self.settings.courier.max_attempts as u64 =>
                {
                    self.bury(&m, &copy, &reason, copy.delivered).await;
                }
                Step::Failed(reason) => self.close_lane(m, &copy, copy.delivered, reason),
                Step::Refused(_) => self.retry_alone(&m, copy.delivered).await,
                Step::Delivered | Step::Dead => {}
            },
        }
    }

    /// Delivers a copy whose receiver's lane is open: alone, or with the
    /// others waiting for the same organisation when it takes batches.
    async fn deliver_now(self: Arc<Self>, m: &Message, copy: &Copy) -> Step {
        let batch = self.settings.org(&copy.recipient).and_then(|o| o.deliver.batch).unwrap_or(1) as usize;
        if batch <= 1 {
            return self.deliver(m, copy, copy.delivered).await;
        }
        // The batch's task takes its own handle; this one stays with the
        // lane should the batch fail.
        let m = m.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let start = {
            let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
            let b = batches.entry(copy.recipient.clone()).or_default();
            b.pending.push((m, copy.clone(), tx));
            !std::mem::replace(&mut b.flushing, true)
        };
        if start {
            tokio::spawn(self.clone().flush(copy.recipient.clone(), batch));
        }
        rx.await.unwrap_or_else(|_| Step::Failed("the courier stopped before the batch was sent".into()))
    }

    /// Sends what waits for `org` in batches of up to `size`, after a short
    /// pause for the copies arriving together to join, until none is left.
    async fn flush(self: Arc<Self>, org: String, size: usize) {
        tokio::time::sleep(BATCH_LINGER).await;
        loop {
            let taken: Vec<(Message, Copy, tokio::sync::oneshot::Sender<Step>)> = {
                let mut batches = self.batches.lock().unwrap_or_else(|p| p.into_inner());
                let Some(b) = batches.get_mut(&org) else { return };
                if b.pending.is_empty() {
                    batches.remove(&org);
                    return;
                }
                // Oldest first, as the lane would keep them.
                b.pending.sort_by_key(|(_, c, _)| c.order);
                let n = b.pending.len().min(size);
                b.pending.drain(..n).collect()
            };
            let (items, replies): (Vec<(Message, Copy)>, Vec<_>) =
                taken.into_iter().map(|(m, c, tx)| ((m, c), tx)).unzip();
            metrics::histogram!("xj_delivery_batch_size").record(items.len() as f64);
            let span = tracing::info_span!("deliver_batch", recipient = %org, size = items.len());
            let steps = self.deliver_batch(&items).instrument(span).await;
            for (tx, step) in replies.into_iter().zip(steps) {
                let _ = tx.send(step);
            }
        }
    }

    /// A copy the receiver refused goes back to JetStream for a later
    /// attempt of its own; the copies behind it are not held up by it.
    async fn retry_alone(&self, m: &Message, attempts: u64) {
        let c = &self.settings.courier;
        let delay = backoff(c.backoff_initial_ms, c.backoff_max_ms, attempts);
        if let Err(e) = m.ack_with(AckKind::Nak(Some(delay))).await {
            tracing::warn!(error = %e, "cannot schedule the retry; the copy is redelivered after ack_wait");
        }
    }

    /// The first failure for a receiver: its lane closes and a task retries
    /// the oldest waiting copy until the receiver answers.
    fn close_lane(self: &Arc<Self>, m: Message, copy: &Copy, attempts: u64, reason: String) {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        let new = !lanes.contains_key(&copy.recipient);
        let lane = lanes.entry(copy.recipient.clone()).or_default();
        lane.reason = reason;
        // The copy failed once already, so it is never an overflow here:
        // a full lane takes it beyond the limit rather than reorder it.
        lane.waiting.insert(copy.order, Waiting { m, attempts });
        if new {
            tracing::warn!(recipient = %copy.recipient, "delivery failed: copies for this receiver wait in order");
            tokio::spawn(self.clone().drain(copy.recipient.clone()));
        }
    }

    /// Retries the oldest waiting copy of `recipient` with backoff; once it
    /// is delivered, the others follow in order; the lane opens when none
    /// is left. Stops (leaving the copies to redelivery) on shutdown.
    async fn drain(self: Arc<Self>, recipient: String) {
        let c = &self.settings.courier;
        let mut last_progress = Instant::now();
        let tried = {
            let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes.get(&recipient).and_then(|l| l.waiting.first_key_value()).map(|(_, w)| w.attempts).unwrap_or(1)
        };
        let mut pause = backoff(c.backoff_initial_ms, c.backoff_max_ms, tried.max(1));
        loop {
            // Wait for the next retry, keeping every waiting copy alive on
            // the server meanwhile.
            let until = Instant::now() + pause;
            loop {
                if last_progress.elapsed() >= self.ack_wait / 3 {
                    self.keep_alive(&recipient).await;
                    last_progress = Instant::now();
                }
                let now = Instant::now();
                if now >= until {
                    break;
                }
                let nap = (until - now).min(self.ack_wait / 3);
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(nap) => {}
                }
            }
            if self.shutdown.is_cancelled() {
                return;
            }
            let head = {
                let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
                lanes
                    .get(&recipient)
                    .and_then(|l| l.waiting.first_key_value())
                    .map(|(&seq, w)| (seq, w.m.clone(), w.attempts))
            };
            let Some((seq, m, attempts)) = head else {
                return;
            };
            let copy = Copy::of(&m);
            let attempt_no = (attempts + 1).max(copy.delivered);
            let step = self.deliver(&m, &copy, attempt_no).await;
            // What follows, decided under the lock and done after it.
            enum Next {
                Retry,
                RetryAlone,
                BuryAlone(String),
                BuryAll(Vec<Waiting>, String),
            }
            let next = {
                let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
                let Some(lane) = lanes.get_mut(&recipient) else {
                    return;
                };
                let exhausted = attempt_no >= c.max_attempts as u64;
                let next = match step {
                    Step::Delivered | Step::Dead => None,
                    // The receiver answers but refuses this copy: it goes on
                    // alone (or, out of attempts, to the dead letters) and
                    // the next is tried now.
                    Step::Refused(reason) if exhausted => Some(Next::BuryAlone(reason)),
                    Step::Refused(_) => Some(Next::RetryAlone),
                    // The receiver stayed away through every attempt of the
                    // oldest copy: it and everything behind it go to the
                    // dead letters, in order, for an operator to replay.
                    Step::Failed(reason) if exhausted => {
                        Some(Next::BuryAll(std::mem::take(&mut lane.waiting).into_values().collect(), reason))
                    }
                    Step::Failed(reason) => {
                        if let Some(w) = lane.waiting.get_mut(&seq) {
                            w.attempts = attempt_no;
                        }
                        lane.reason = reason;
                        pause = backoff(c.backoff_initial_ms, c.backoff_max_ms, attempt_no);
                        Some(Next::Retry)
                    }
                };
                if !matches!(next, Some(Next::Retry)) {
                    lane.waiting.remove(&seq);
                    pause = Duration::ZERO;
                }
                // The lane opens when nothing waits; a failure after that
                // closes a new one with a task of its own, so this one ends.
                let done = lane.waiting.is_empty();
                if done {
                    lanes.remove(&recipient);
                }
                (next, done)
            };
            let (next, done) = next;
            match next {
                None | Some(Next::Retry) => {}
                Some(Next::RetryAlone) => self.retry_alone(&m, attempt_no).await,
                Some(Next::BuryAlone(reason)) => self.bury(&m, &copy, &reason, attempt_no).await,
                Some(Next::BuryAll(rest, reason)) => {
                    let head_id = m_id(&m);
                    for (i, w) in rest.into_iter().enumerate() {
                        let copy = Copy::of(&w.m);
                        let (why, n) = if i == 0 {
                            (reason.clone(), attempt_no)
                        } else {
                            (format!("waited behind {head_id}, whose attempts ran out: {reason}"), w.attempts)
                        };
                        self.bury(&w.m, &copy, &why, n).await;
                    }
                }
            }
            if done {
                tracing::info!(recipient = %recipient, "lane open again");
                return;
            }
        }
    }

    async fn keep_alive(&self, recipient: &str) {
        let waiting: Vec<Message> = {
            let lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
            lanes.get(recipient).map(|l| l.waiting.values().map(|w| w.m.clone()).collect()).unwrap_or_default()
        };
        for m in waiting {
            if let Err(e) = m.ack_with(AckKind::Progress).await {
                tracing::warn!(error = %e, "progress ack failed; the copy may be redelivered (receivers dedupe)");
            }
        }
    }

    /// One attempt of `m`: delivered (acknowledged), dead-lettered
    /// (acknowledged) or failed (left unacknowledged for the lane).
    async fn deliver(&self, m: &Message, copy: &Copy, attempt_no: u64) -> Step {
        let span = tracing::info_span!("deliver", msg_id = %copy.msg_id, case = %copy.case, recipient = %copy.recipient, attempt = attempt_no);
        self.deliver_inner(m, copy, attempt_no).instrument(span).await
    }

    async fn deliver_inner(&self, m: &Message, copy: &Copy, attempt_no: u64) -> Step {
        let Some(p) = self.prepare(m, copy, attempt_no).await else { return Step::Dead };
        let org = p.org;
        let (outcome, untranslatable) = match &p.native {
            Ok((body, content_type)) => {
                let parcel = p.parcel(copy, attempt_no, body.clone(), content_type);
                let outcome = attempt(self.http.of(org), &self.bus, &self.key, &parcel).await;
                // A webhook's receipt is checked over the bytes delivered: a
                // receipt that does not verify (or is owed and missing) is no
                // delivery. NATS and pull organisations sign theirs later,
                // for the copy stored (the gateway checks those).
                let outcome = match outcome {
                    Outcome::Delivered { status, stored, receipt, held, elapsed } if org.deliver.webhook.is_some() => {
                        let message = (copy.sender.as_str(), copy.msg_id.as_str());
                        match check_receipt(org, message, &parcel.body, receipt.as_deref()) {
                            Ok(signed) => {
                                let delivered = Outcome::Delivered { status, stored, receipt, held, elapsed };
                                return self
                                    .finish(m, copy, attempt_no, p.hop, p.trace, &delivered, false, signed)
                                    .await;
                            }
                            Err(reason) => Outcome::Failed { reason, status: None, elapsed },
                        }
                    }
                    other => other,
                };
                (outcome, false)
            }
            Err(reason) => (Outcome::Failed { reason: reason.clone(), status: None, elapsed: Duration::ZERO }, true),
        };
        self.finish(m, copy, attempt_no, p.hop, p.trace, &outcome, untranslatable, None).await
    }

    /// Several copies for one organisation that takes batches, in one
    /// `POST`: each copy's step, in order. A copy that cannot be delivered
    /// at all (its organisation removed) is buried alone.
    async fn deliver_batch(&self, items: &[(Message, Copy)]) -> Vec<Step> {
        // Each copy's preparation and, below, its step (an event stored, an
        // acknowledgement) are round trips of its own: made side by side, a
        // batch costs a few round trips, not a few per copy.
        let prepared =
            futures::future::join_all(items.iter().map(|(m, copy)| self.prepare(m, copy, copy.delivered))).await;
        let mut steps: Vec<Option<Step>> = Vec::with_capacity(items.len());
        let mut ready = Vec::new();
        for (i, p) in prepared.into_iter().enumerate() {
            match p {
                Some(p) => {
                    steps.push(None);
                    ready.push((i, p));
                }
                None => steps.push(Some(Step::Dead)),
            }
        }
        let parcels: Vec<Parcel<'_>> = ready
            .iter()
            .filter_map(|(i, p)| {
                let (body, content_type) = p.native.as_ref().ok()?;
                Some(p.parcel(&items[*i].1, items[*i].1.delivered, body.clone(), content_type))
            })
            .collect();
        let outcome = match (parcels.first(), parcels.len() == ready.len()) {
            (Some(first), true) => match &first.org.deliver.webhook {
                Some(url) => {
                    let now = Utc::now().timestamp();
                    crate::deliver::webhook_batch(self.http.of(first.org), &self.key, &parcels, url, now).await
                }
                None => attempt(self.http.of(first.org), &self.bus, &self.key, first).await,
            },
            // Canonical JSON is never untranslatable; should a copy be, the
            // batch is tried one by one.
            _ => Outcome::Failed {
                reason: "a batch that cannot be sent whole".into(),
                status: None,
                elapsed: Duration::ZERO,
            },
        };
        drop(parcels);
        let outcome = &outcome;
        let finished = futures::future::join_all(ready.into_iter().map(|(i, p)| async move {
            let (m, copy) = &items[i];
            (i, self.finish(m, copy, copy.delivered, p.hop, p.trace, outcome, false, None).await)
        }))
        .await;
        for (i, step) in finished {
            steps[i] = Some(step);
        }
        steps.into_iter().map(|s| s.unwrap_or(Step::Dead)).collect()
    }

    /// What an attempt of a copy needs: its organisation (a copy for one no
    /// longer configured is buried, `None`), its trace and hop, and its body
    /// in the organisation's format.
    async fn prepare<'a>(&'a self, m: &Message, copy: &Copy, attempt_no: u64) -> Option<Prepared<'a>> {
        let hd = m.headers.as_ref();
        let Some(org) = self.settings.org(&copy.recipient) else {
            // The org was removed from the configuration after routing: an
            // operator must decide, so it goes to the dead letters at once.
            let reason = format!("organisation {:?} is no longer configured", copy.recipient);
            self.bury(m, copy, &reason, attempt_no).await;
            return None;
        };
        let received = TraceParent::received(hd);
        let trace = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
        let mut hop = Hop::start("courier", "deliver", received, trace).kind(SpanKind::Client);
        hop.attr("xj.message_id", copy.msg_id.clone())
            .attr("xj.case", copy.case.clone())
            .attr("xj.sender", copy.sender.clone())
            .attr("xj.recipient", copy.recipient.clone())
            .attr("xj.attempt", attempt_no as i64)
            .attr_opt("xj.rule", h::get(hd, h::RULE).map(str::to_owned))
            .attr_opt("xj.rule_version", h::get(hd, h::RULE_VERSION).map(str::to_owned))
            .attr_opt("xj.replayed_by", copy.replayed_by.clone())
            .attr("xj.channel", org.deliver.channel());
        // The translation into the receiver's format is a hop of its own.
        let adapter = (org.format != xj_mapping::CANONICAL).then(|| {
            let mut a = Hop::start("courier", "translate.outbound", Some(trace), trace.child());
            a.attr("xj.format", org.format.clone())
                .attr("xj.message_id", copy.msg_id.clone())
                .attr("xj.recipient", copy.recipient.clone());
            a
        });
        // An organisation with a native format gets the message translated;
        // one its format cannot express goes to the dead letters at once
        // with the reason, never half-empty.
        let native = native_form(&self.config.current().settings.mappings, org, &m.payload);
        match (adapter, &native) {
            (Some(a), Ok(_)) => a.finish(),
            (Some(a), Err(reason)) => a.fail(reason.clone()),
            (None, _) => {}
        }
        Some(Prepared { org, trace, hop, native })
    }

    /// Records what an attempt came to — the event, the metrics, the hop —
    /// and acknowledges a delivered or buried copy: the copy's step.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        m: &Message,
        copy: &Copy,
        attempt_no: u64,
        mut hop: Hop,
        trace: TraceParent,
        outcome: &Outcome,
        untranslatable: bool,
        receipt_checked: Option<xj_bus::signing::SignedReceipt>,
    ) -> Step {
        let settings = &self.settings;
        let mut receipt_checked = receipt_checked;
        let c = &settings.courier;
        let mut held_copy = false;
        let mut detail = events::Delivery::to(&copy.recipient, attempt_no);
        detail.replayed_by = copy.replayed_by.clone();
        let (step, result) = match &outcome {
            Outcome::Delivered { status, stored, held, elapsed, .. } => {
                metrics::histogram!("xj_delivery_seconds", "outcome" => "delivered").record(elapsed.as_secs_f64());
                detail.status = *status;
                detail.receipt = receipt_checked.take();
                detail.ms = Some(elapsed.as_millis() as u64);
                // Where the copy of a NATS-native organisation is: the
                // trace says delivered only for a copy the outbox holds.
                if let Some(seq) = stored {
                    detail.outbox_seq = Some(*seq);
                    detail.delivery = Some(copy.delivery.clone());
                }
                if *held {
                    // Delivered when the organisation collects it
                    // (GET /v1/inbox): that is when its clocks start.
                    detail.waits_for = Some(format!("collection by {} (GET /v1/inbox)", copy.recipient));
                    held_copy = true;
                }
                ("delivered", Step::Delivered)
            }
            Outcome::Failed { reason, status, elapsed } => {
                metrics::histogram!("xj_delivery_seconds", "outcome" => "failed").record(elapsed.as_secs_f64());
                detail.status = *status;
                detail.error = Some(reason.clone());
                detail.ms = Some(elapsed.as_millis() as u64);
                if untranslatable {
                    ("dead", Step::Dead)
                } else {
                    if attempt_no < c.max_attempts as u64 {
                        let delay = backoff(c.backoff_initial_ms, c.backoff_max_ms, attempt_no);
                        detail.retry_in_ms = Some(delay.as_millis() as u64);
                    }
                    let step = match status {
                        // About this message, from a receiver that answers.
                        Some(s) if (400..500).contains(s) && !matches!(s, 408 | 429) => Step::Refused(reason.clone()),
                        _ => Step::Failed(reason.clone()),
                    };
                    ("attempt", step)
                }
            }
        };
        metrics::counter!("xj_delivery_attempts_total", "outcome" => step, "recipient" => copy.recipient.clone())
            .increment(1);
        hop.attr("xj.step", step);
        if let Some(s) = detail.status {
            hop.attr("http.response.status_code", i64::from(s));
        }
        match &outcome {
            Outcome::Delivered { .. } => hop.finish(),
            Outcome::Failed { reason, .. } => hop.fail(reason.clone()),
        }
        if let (Step::Dead, Outcome::Failed { reason, .. }) = (&result, &outcome) {
            self.bury(m, copy, reason, attempt_no).await;
            return result;
        }
        // The last attempt's story is told by the `dead` step that follows.
        let last = matches!(result, Step::Failed(_) | Step::Refused(_)) && attempt_no >= c.max_attempts as u64;
        // The step is stored before the copy is acknowledged: a courier
        // that dies in between delivers again rather than leave a delivery
        // the trace and the case's clocks never hear of.
        if !last {
            let step = if held_copy {
                events::Step::Waiting(detail)
            } else if matches!(result, Step::Delivered) {
                events::Step::Delivered(detail)
            } else {
                events::Step::Attempt(detail)
            };
            self.event(copy, step, trace).await;
        }
        if matches!(result, Step::Delivered)
            && let Err(e) = m.double_ack().await
        {
            tracing::warn!(error = %e, "ack failed; the delivery may repeat (receivers dedupe)");
        }
        tracing::debug!(step, "delivery step");
        result
    }

    /// Records a step of a copy on `XJ_EVENTS`.
    async fn event(&self, copy: &Copy, step: events::Step, trace: TraceParent) {
        let ev = events::Event {
            step,
            service: "courier".into(),
            msg_id: copy.msg_id.clone(),
            sender: copy.sender.clone(),
            case: Some(copy.case.clone()),
            msg_type: None,
            at: Utc::now(),
            trace_id: trace.trace_id_hex(),
            span_id: trace.span_id_hex(),
        };
        if let Err(e) = events::publish(&self.bus.js, &ev).await {
            tracing::warn!(error = %e, "delivery event not recorded");
        }
    }

    /// A copy put in line behind an earlier failure: the trace says why it
    /// has not been attempted.
    async fn waiting_event(&self, copy: &Copy, reason: &str) {
        let mut detail = events::Delivery::to(&copy.recipient, 0);
        detail.replayed_by = copy.replayed_by.clone();
        detail.error = Some(reason.to_string());
        detail.waits_for = Some("an earlier copy to the same receiver".into());
        self.event(copy, events::Step::Waiting(detail), TraceParent::new_root()).await;
    }

    /// Parks a copy on `xj.dead.<org>` (retried until stored, so it is never
    /// acknowledged away unrecorded), records the step, acknowledges.
    async fn bury(&self, m: &Message, copy: &Copy, reason: &str, attempts: u64) {
        dead(&self.bus, m, copy, reason, attempts).await;
        let mut detail = events::Delivery::to(&copy.recipient, attempts);
        detail.replayed_by = copy.replayed_by.clone();
        detail.error = Some(reason.to_string());
        let trace = TraceParent::received(m.headers.as_ref()).unwrap_or_else(TraceParent::new_root);
        self.event(copy, events::Step::Dead(detail), trace).await;
        if let Err(e) = m.double_ack().await {
            tracing::warn!(error = %e, "ack failed; the dead letter may repeat");
        }
    }
}

enum Held {
    /// The receiver's lane is open: deliver now.
    Free(Message),
    /// Waiting in line; the lane's reason.
    InLine(String),
    /// The lane is full: hand it back.
    Overflow(Message),
}

/// Where a copy stands in its receiver's line: its message's sequence in
/// `XJ_ACCEPTED` (the router may store copies in another order than it
/// took their messages in), then its own in `XJ_ROUTED`. A copy without
/// the header (routed before it existed) goes first, in stream order.
type Order = (u64, u64);

fn hold(lane: &mut Lane, m: Message, order: Order, attempts: u64) -> Held {
    if lane.waiting.len() >= HOLD && !lane.waiting.contains_key(&order) {
        return Held::Overflow(m);
    }
    // A copy the server handed out again replaces the one held.
    let attempts = lane.waiting.get(&order).map(|w| w.attempts.max(attempts)).unwrap_or(attempts);
    lane.waiting.insert(order, Waiting { m, attempts });
    Held::InLine(lane.reason.clone())
}

fn m_id(m: &Message) -> String {
    h::get(m.headers.as_ref(), h::MESSAGE_ID).unwrap_or_default().to_string()
}

/// Headers of a routed copy that its dead letter keeps (for the list and
/// a replay); the copy's own `Nats-Msg-Id` is replaced.
const KEPT: [&str; 10] = [
    h::TRACEPARENT,
    h::MESSAGE_ID,
    h::SENDER,
    h::CASE,
    h::RECIPIENT,
    h::RULE,
    h::RULE_VERSION,
    h::ACCEPTED_AT,
    h::ACCEPTED_SEQ,
    h::REPLAYED_BY,
];

/// Parks a copy on `xj.dead.<org>`; retried until stored, so it is never
/// acked away unrecorded. Stored under the copy's identity (recipient
/// included) and its place in `XJ_ROUTED`: a courier that dies before
/// acknowledging parks the same copy again and the stream drops the repeat,
/// while a replayed copy that dies again is a dead letter of its own.
async fn dead(bus: &Bus, m: &Message, copy: &Copy, reason: &str, attempts: u64) {
    let org = copy.recipient.as_str();
    let mut out = HeaderMap::new();
    for name in KEPT {
        if let Some(v) = h::get(m.headers.as_ref(), name) {
            out.put(name, v);
        }
    }
    let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
    out.put(h::NATS_MSG_ID, format!("dead:{}:{seq}", copy.delivery).as_str());
    out.put(h::DEAD_REASON, reason);
    out.put(h::DEAD_AT, Utc::now().to_rfc3339().as_str());
    out.put(h::ATTEMPT, attempts.to_string().as_str());
    loop {
        let res =
            async { bus.js.publish_with_headers(subjects::dead(org), out.clone(), m.payload.clone()).await?.await }
                .await;
        match res {
            Ok(_) => break,
            Err(e) => {
                tracing::error!(error = %e, "cannot store dead letter; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    metrics::counter!("xj_dead_letters_total").increment(1);
    tracing::warn!(org, reason, attempts, "delivery dead-lettered");
}
