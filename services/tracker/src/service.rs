//! The tracker service: the event consumer and the clock-firing loop.

use anyhow::Context;
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::kv::CreateErrorKind;
use async_nats::jetstream::{AckKind, Message};
use chrono::{DateTime, Datelike, Utc};
use serde_json::json;
use tracing::Instrument;
use xj_bus::alerts::{Alert, raise};
use xj_bus::clock::HubClock;
use xj_bus::consume::{self, Durable};
use xj_bus::events::{self, CaseRecordFull, Event, Step};
use xj_bus::headers::Put;
use xj_bus::otel::{Hop, SpanKind};
use xj_bus::records::CaseRecord;
use xj_bus::{Bus, Shutdown, TraceParent, headers as h, subjects};
use xj_config::Settings;
use xj_model::MessageType;

use crate::calendar::Calendar;
use crate::machine::{Action, Ctx, apply, clock_json, fire, next_wake};
use xj_bus::stats;

const CONSUMER: &str = "tracker";

/// Room kept below the server's `max_payload` for what travels with a
/// stored record (its subject and headers).
const RECORD_HEADROOM: usize = 4096;

/// A case record that no longer fits in one NATS message. Retrying cannot
/// help (the same events make the same record), so the event is terminated
/// with this as its reason instead of being redelivered for ever.
#[derive(Debug, thiserror::Error)]
#[error("case {case}: its record would be {bytes} bytes, over the {max} bytes one NATS message may hold")]
pub struct RecordFull {
    pub case: String,
    pub bytes: usize,
    pub max: usize,
}

type Schedule = Arc<Mutex<BTreeSet<(DateTime<Utc>, String)>>>;

struct Tracker {
    settings: Arc<Settings>,
    bus: Bus,
    cal: Calendar,
    clock: HubClock,
    schedule: Schedule,
    queues: CaseQueues,
    /// Case workers ([`Tracker::work`]): waited for at shutdown.
    workers: tokio_util::task::TaskTracker,
    /// At most [`CONCURRENCY`] of them fold at once.
    slots: tokio::sync::Semaphore,
    stats: StatsBatch,
}

/// Cases worked on at once. A case's events are applied in the order they
/// arrive (see [`CaseQueues`]); different cases proceed side by side.
const CONCURRENCY: usize = 128;

/// How long a case's first event waits for more of the same case before
/// the record is read: a referral's routed and delivered events, a few
/// milliseconds apart, then cost one read and one write of the case record
/// instead of two each. The wait holds no slot ([`CONCURRENCY`] counts
/// folding only), and case records are off the delivery path.
const GATHER: Duration = Duration::from_millis(20);

pub async fn run(settings: Arc<Settings>, bus: Bus, shutdown: Shutdown) -> anyhow::Result<()> {
    let cal = Calendar::load(settings.clock.holidays.as_deref()).context("holiday table")?;
    let c = &settings.clock;
    let clock = HubClock::start(c.mode, c.start.as_deref(), bus.clock.clone(), shutdown.clone()).await?;
    let t = Arc::new(Tracker {
        settings: settings.clone(),
        bus: bus.clone(),
        cal,
        clock,
        schedule: Schedule::default(),
        queues: CaseQueues::default(),
        workers: tokio_util::task::TaskTracker::new(),
        slots: tokio::sync::Semaphore::new(CONCURRENCY),
        stats: StatsBatch::default(),
    });
    t.rebuild_schedule().await?;
    let firing = tokio::spawn(t.clone().firing_loop(shutdown.clone()));
    let flusher = tokio::spawn(t.clone().stats_flusher());

    // Room for the events gathering per case besides those being folded.
    let messages = Durable::new(subjects::STREAM_EVENTS, CONSUMER)
        .ack_wait(Duration::from_millis(settings.nats.ack_wait_ms))
        .max_ack_pending(4096)
        .filter(&["xj.evt.*.*.routed", "xj.evt.*.*.unplaced", "xj.evt.*.*.delivered", "xj.evt.*.*.waiting"])
        .messages(&bus.js)
        .await?;
    tracing::info!(mode = ?t.clock.mode(), "tracker running");
    // Each case's history is a sequence: its events are folded in the
    // order they arrive, by one worker at a time, many at once when they
    // come together.
    consume::run(messages, CONCURRENCY, shutdown, "tracker", |m| {
        let t = t.clone();
        async move { t.arrive(m).await }
    })
    .await;
    // The events taken in are folded before the tracker stops.
    t.workers.close();
    t.workers.wait().await;
    let _ = firing.await;
    // Every handler has finished (and so had its counts stored).
    t.stats.closed.store(true, std::sync::atomic::Ordering::Relaxed);
    t.stats.wake.notify_one();
    let _ = flusher.await;
    tracing::info!("tracker stopped");
    Ok(())
}

impl Tracker {
    fn ctx(&self) -> Ctx<'_> {
        Ctx { settings: &self.settings, cal: &self.cal, now: self.clock.now() }
    }

    /// An event arrives: it joins its case's queue; the first of a case to
    /// arrive starts the case's worker.
    async fn arrive(self: &Arc<Self>, m: Message) {
        let ev: Event = match serde_json::from_slice(&m.payload) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::error!(error = %e, "undecodable event");
                let _ = m.ack_with(AckKind::Term).await;
                return;
            }
        };
        let Some(case) = ev.case.clone().filter(|c| !c.is_empty()) else {
            let _ = m.ack().await;
            return;
        };
        if self.queues.join(&case, m, ev) {
            let t = self.clone();
            self.workers.spawn(async move { t.work(case).await });
        }
    }

    /// Works `case`'s queue until it is empty: waits [`GATHER`] for the
    /// events that come together, then folds what is queued, and again.
    async fn work(&self, case: String) {
        let worker = Worker { queues: &self.queues, case, freed: std::sync::atomic::AtomicBool::new(false) };
        tokio::time::sleep(GATHER).await;
        let Ok(_slot) = self.slots.acquire().await else { return };
        while let Some(batch) = worker.next() {
            // The consumer loop's guard does not reach this task: a panic
            // answers the batch's messages here (poison after a few).
            let fold = std::panic::AssertUnwindSafe(self.fold(&worker.case, &batch));
            if let Err(panic) = futures::FutureExt::catch_unwind(fold).await {
                let text = consume::panic_text(panic.as_ref());
                drop(panic);
                consume::answer_panicked("tracker", batch.iter().map(message_of), &text).await;
            }
        }
    }

    /// Folds a case's queued events into its record in one update; should
    /// the record then not fit, one at a time, so that only the event that
    /// overflows it is refused.
    async fn fold(&self, case: &str, batch: &[(Message, Event)]) {
        if let [(m, ev)] = batch {
            self.handle(case, m, ev).await;
            return;
        }
        let span = tracing::info_span!("track", case = %case, events = batch.len());
        let hops: Vec<Hop> = batch.iter().map(|(_, ev)| hop(case, ev)).collect();
        let result = self
            .update(case, |rec, ctx| batch.iter().flat_map(|(_, ev)| apply(rec, ev, ctx)).collect())
            .instrument(span)
            .await;
        match result {
            Ok(()) => {
                for ((m, _), hop) in batch.iter().zip(hops) {
                    hop.finish();
                    let _ = m.ack().await;
                }
            }
            Err(e) if e.downcast_ref::<RecordFull>().is_some() => {
                drop(hops);
                for (m, ev) in batch {
                    self.handle(case, m, ev).await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "case update failed; will retry");
                for ((m, _), hop) in batch.iter().zip(hops) {
                    hop.fail(e.to_string());
                    let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
                }
            }
        }
    }

    async fn handle(&self, case: &str, m: &Message, ev: &Event) {
        let span = tracing::info_span!("track", msg_id = %ev.msg_id, case = %case, step = ev.step.name());
        let hop = hop(case, ev);
        match self.update(case, |rec, ctx| apply(rec, ev, ctx)).instrument(span).await {
            Ok(()) => {
                hop.finish();
                let _ = m.ack().await;
            }
            Err(e) if e.downcast_ref::<RecordFull>().is_some() => {
                hop.fail(e.to_string());
                self.record_full(m, ev, &e.to_string()).await;
            }
            Err(e) => {
                hop.fail(e.to_string());
                tracing::warn!(error = %e, "case update failed; will retry");
                let _ = m.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }

    /// Load, change, act, store (compare-and-set; a conflict starts over).
    /// Alerts go out before the store, so a crash in between repeats them
    /// with the same ids (dropped as duplicates) rather than losing them.
    async fn update<F>(&self, case: &str, mut change: F) -> anyhow::Result<()>
    where
        F: FnMut(&mut CaseRecord, &Ctx) -> Vec<Action>,
    {
        let cases = &self.bus.cases;
        for _ in 0..20 {
            let entry = cases.entry(case).await?;
            let (mut rec, revision) = match &entry {
                Some(e) if !e.value.is_empty() => (serde_json::from_slice::<CaseRecord>(&e.value)?, Some(e.revision)),
                _ => (CaseRecord { case: case.to_string(), ..Default::default() }, None),
            };
            let before = serde_json::to_vec(&rec)?;
            let before_clocks = clock_states(&rec);
            let ctx = self.ctx();
            let actions = change(&mut rec, &ctx);
            let after = serde_json::to_vec(&rec)?;
            if before == after && actions.is_empty() {
                return Ok(());
            }
            // Checked before acting: nothing is raised for a change that
            // cannot be stored.
            let max = (self.bus.client.server_info().max_payload).saturating_sub(RECORD_HEADROOM);
            if after.len() > max {
                return Err(RecordFull { case: case.to_string(), bytes: after.len(), max }.into());
            }
            let mut counts = Vec::new();
            for a in actions {
                match a {
                    Action::Count { org, field } => counts.push((org, field)),
                    other => self.act(case, other, ctx.now).await?,
                }
            }
            let stored = match revision {
                Some(r) => cases.update(case, after.into(), r).await.map(|_| ()).map_err(|e| e.to_string()),
                None => match cases.create(case, after.into()).await {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err("exists".into()),
                    Err(e) => return Err(e.into()),
                },
            };
            if stored.is_err() {
                continue;
            }
            count_clocks(&before_clocks, 1.0);
            count_clocks(&clock_states(&rec), -1.0);
            let month = ctx.now.with_timezone(&crate::clocks::china()).format("%Y-%m").to_string();
            if !counts.is_empty() && !self.stats.add(&month, counts).await {
                tracing::warn!("statistics not counted");
            }
            if let Some(next) = next_wake(&rec) {
                self.schedule.lock().unwrap_or_else(|p| p.into_inner()).insert((next, case.to_string()));
            }
            return Ok(());
        }
        anyhow::bail!("case {case} kept changing under us")
    }

    /// An event that cannot be folded into its case because the record
    /// would not fit: said once, loudly — a metric, an error, a
    /// `case_record_full` step in the message's trace — and the event is
    /// terminated with the reason rather than redelivered for ever.
    async fn record_full(&self, m: &Message, ev: &Event, reason: &str) {
        metrics::counter!("xj_case_records_full_total").increment(1);
        tracing::error!(msg_id = %ev.msg_id, step = ev.step.name(), reason, "event not folded into its case");
        let own =
            TraceParent::from_hex(&ev.trace_id, &ev.span_id).map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
        let note = Event {
            step: Step::CaseRecordFull(CaseRecordFull {
                error: reason.to_string(),
                event: ev.step.name().to_string(),
                recipient: ev.step.recipient().map(str::to_owned),
            }),
            service: "tracker".into(),
            msg_id: ev.msg_id.clone(),
            sender: ev.sender.clone(),
            case: ev.case.clone(),
            msg_type: ev.msg_type,
            at: self.clock.now(),
            trace_id: own.trace_id_hex(),
            span_id: own.span_id_hex(),
        };
        let recipient = ev.step.recipient().unwrap_or_default();
        let dedup = format!("evt:case_record_full:{}:{}:{}:{recipient}", ev.sender, ev.msg_id, ev.step.name());
        if let Err(e) = events::publish_once(&self.bus.js, &note, &dedup).await {
            tracing::warn!(error = %e, "case_record_full step not recorded");
        }
        terminate(m, reason).await;
    }

    async fn act(&self, case: &str, action: Action, now: DateTime<Utc>) -> anyhow::Result<()> {
        match action {
            Action::Alert { kind, about, recipients, text, clock, discriminator } => {
                let clock_name = clock.as_ref().map(|c| c.name.clone());
                let extra = clock.as_ref().map(|c| json!({ "clock": clock_json(c) })).unwrap_or_else(|| json!({}));
                let alert = Alert {
                    kind,
                    about: (&about.0, &about.1),
                    case,
                    recipients,
                    text,
                    rule: clock.as_ref().map(|c| (format!("clock:{}", c.name), c.basis.clone())),
                    reasons: Vec::new(),
                    extra,
                    at: now,
                    discriminator,
                };
                // A clock's alert starts a trace of its own: the firing is its root span.
                let root = TraceParent::new_root();
                let mut hop = Hop::start("tracker", "clock", None, root);
                hop.attr("xj.case", case.to_string()).attr("xj.alert", kind).attr_opt("xj.clock", clock_name);
                hop.finish();
                raise(&self.bus, alert, &root).await?;
            }
            Action::AutoReceipt { police, handoff, handoff_sender } => {
                let id = format!("AUTO-RCPT-{handoff}");
                let msg = json!({
                    "id": id, "type": "handoff_receipt", "sender": police, "recipient": null, "case": case,
                    "reply_to": handoff, "sent_at": now.to_rfc3339(), "classification": "internal",
                    "body": { "received_at": now.to_rfc3339(), "auto": true }
                });
                let mut hd = HeaderMap::new();
                hd.put(h::TRACEPARENT, TraceParent::new_root().header().as_str());
                hd.put(h::ACCEPTED_AT, now.to_rfc3339().as_str());
                hd.put(h::REPLY_SENDER, handoff_sender.as_str());
                // Its subject is its id's claim: a second firing (the event
                // redelivered) finds it stored and leaves it.
                let subject = subjects::accepted(&police, &id);
                xj_bus::streams::store_once(&self.bus.js, subject, hd, serde_json::to_vec(&msg)?.into()).await?;
            }
            Action::Complaint { channel, about, stage, body } => {
                let id = xj_bus::alerts::hub_message_id("XJC", "complaint_update", (&about.0, &about.1), stage);
                let m = xj_bus::alerts::HubMessage {
                    id,
                    msg_type: MessageType::ComplaintUpdate,
                    recipients: vec![channel],
                    case,
                    about: (&about.0, &about.1),
                    at: now,
                    body,
                    rule: format!("complaint:{stage}"),
                    version: String::new(),
                    alert: None,
                    summary: json!({ "stage": stage }),
                };
                xj_bus::alerts::send(&self.bus, m, &TraceParent::new_root()).await?;
            }
            Action::Report { org, month, figures, msg_id, at } => {
                let figures = match figures {
                    serde_json::Value::Object(f) => f.into_iter().collect(),
                    _ => Default::default(),
                };
                let r = stats::Reported { msg_id, at, figures };
                stats::put_report(&self.bus.stats, &month, &org, &r).await?;
            }
            Action::Count { .. } => {}
        }
        Ok(())
    }

    /// The monthly report clocks: once a month has begun, every county's
    /// record of the month before has its clocks (idempotent, so a restart
    /// or a second tracker does no harm).
    async fn monthly(&self, now: DateTime<Utc>, done: &mut String) {
        let previous = now.with_timezone(&crate::clocks::china()).date_naive().with_day(1).and_then(|d| d.pred_opt());
        let Some(previous) = previous else { return };
        let month = previous.format("%Y-%m").to_string();
        if *done == month {
            return;
        }
        let mut counties: Vec<&str> = self.settings.org.iter().map(|o| &o.region[..6]).collect();
        counties.sort();
        counties.dedup();
        for county in counties {
            let case = xj_bus::records::monthly_case(county, &month);
            if let Err(e) =
                self.update(&case, |rec, ctx| crate::machine::monthly_clocks(rec, ctx, county, &month)).await
            {
                tracing::warn!(%case, error = %e, "monthly report clocks not set; will retry");
                return;
            }
        }
        *done = month;
    }

    async fn rebuild_schedule(&self) -> anyhow::Result<()> {
        let mut keys = match self.bus.cases.keys().await {
            Ok(k) => k,
            Err(_) => return Ok(()),
        };
        let mut n = 0;
        while let Some(k) = keys.next().await {
            let k = k?;
            let Some(v) = self.bus.cases.get(&k).await? else { continue };
            let Ok(rec) = serde_json::from_slice::<CaseRecord>(&v) else { continue };
            count_clocks(&clock_states(&rec), -1.0);
            if let Some(next) = next_wake(&rec) {
                self.schedule.lock().unwrap_or_else(|p| p.into_inner()).insert((next, k));
                n += 1;
            }
        }
        tracing::info!(cases = n, "clocks scheduled");
        Ok(())
    }

    /// Stores the statistics counted since the last round: one
    /// compare-and-set per organisation and month for however many events
    /// counted there, and only then lets those events be acknowledged.
    async fn stats_flusher(self: Arc<Self>) {
        loop {
            let (counts, waiters) = {
                let mut p = self.stats.pending.lock().unwrap_or_else(|p| p.into_inner());
                (std::mem::take(&mut p.0), std::mem::take(&mut p.1))
            };
            if waiters.is_empty() {
                if self.stats.closed.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                tokio::select! {
                    _ = self.stats.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                continue;
            }
            let mut ok = true;
            for ((month, org), fields) in counts {
                if let Err(e) = stats::add(&self.bus.stats, &month, &org, &fields).await {
                    tracing::warn!(error = %e, %org, "statistics not counted");
                    ok = false;
                }
            }
            for w in waiters {
                let _ = w.send(ok);
            }
        }
    }

    async fn firing_loop(self: Arc<Self>, shutdown: Shutdown) {
        let mut changes = self.clock.changes();
        let mut month_done = String::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let now = self.clock.now();
            self.monthly(now, &mut month_done).await;
            let due: Vec<String> = {
                let mut s = self.schedule.lock().unwrap_or_else(|p| p.into_inner());
                let mut due = Vec::new();
                while let Some(first) = s.first().cloned() {
                    if first.0 > now {
                        break;
                    }
                    s.pop_first();
                    due.push(first.1);
                }
                due
            };
            for case in due {
                match self.update(&case, fire).await {
                    Ok(()) => {}
                    // Firing again would fail again; the case's next event
                    // tells its story (see `record_full`).
                    Err(e) if e.downcast_ref::<RecordFull>().is_some() => {
                        metrics::counter!("xj_case_records_full_total").increment(1);
                        tracing::error!(%case, error = %e, "clock firing cannot be stored: the case record is full");
                    }
                    Err(e) => {
                        tracing::warn!(%case, error = %e, "clock firing failed; will retry");
                        self.schedule.lock().unwrap_or_else(|p| p.into_inner()).insert((now, case));
                    }
                }
            }
        }
    }
}

/// The message of a queued event (a function, not a closure: the spawned
/// worker's future must hold for any lifetime).
fn message_of((m, _): &(Message, Event)) -> &Message {
    m
}

/// The tracker's span for folding `ev` in: it continues the trace of the
/// step.
fn hop(case: &str, ev: &Event) -> Hop {
    let received = TraceParent::from_hex(&ev.trace_id, &ev.span_id);
    let own = received.map(|t| t.child()).unwrap_or_else(TraceParent::new_root);
    let mut hop = Hop::start("tracker", "track", received, own).kind(SpanKind::Consumer);
    hop.attr("xj.message_id", ev.msg_id.clone())
        .attr("xj.case", case.to_string())
        .attr("xj.sender", ev.sender.clone())
        .attr("xj.step", ev.step.name())
        .attr_opt("xj.type", ev.msg_type.map(MessageType::as_str))
        .attr_opt("xj.rule", ev.step.routing().map(|r| r.rule.clone()))
        .attr_opt("xj.rule_version", ev.step.routing().map(|r| r.rule_version.clone()))
        .attr_opt("xj.recipient", ev.step.recipient().map(str::to_owned));
    hop
}

/// Tells the server not to deliver `m` again, and why (the reason shows in
/// the server's advisory). One line: the reason is the hub's own text.
async fn terminate(m: &Message, reason: &str) {
    let Some(reply) = m.reply.clone() else {
        return;
    };
    let line: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if let Err(e) = m.context.client().publish(reply, format!("+TERM {line}").into()).await {
        tracing::warn!(error = %e, "cannot terminate the event; it will be delivered again");
    }
}

/// Clocks of a case by state.
fn clock_states(rec: &CaseRecord) -> std::collections::BTreeMap<String, f64> {
    let mut m = std::collections::BTreeMap::new();
    for c in &rec.clocks {
        *m.entry(c.status.clone()).or_default() += 1.0;
    }
    m
}

/// `xj_clocks{state}`: takes `sign × counts` away (−1 adds them).
fn count_clocks(counts: &std::collections::BTreeMap<String, f64>, sign: f64) {
    for (state, n) in counts {
        metrics::gauge!("xj_clocks", "state" => state.clone()).decrement(sign * n);
    }
}

/// Events waiting per case, in the order they arrived. The first event
/// of a case with nothing queued starts the case's worker; every event's
/// handler returns at once, its message unacknowledged until the worker
/// has folded it in.
#[derive(Default)]
struct CaseQueues(Mutex<std::collections::HashMap<String, Vec<(Message, Event)>>>);

impl CaseQueues {
    /// Queues the event; true when the case has no worker yet.
    fn join(&self, case: &str, m: Message, ev: Event) -> bool {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiting) = q.get_mut(case) {
            waiting.push((m, ev));
            return false;
        }
        q.insert(case.to_string(), vec![(m, ev)]);
        true
    }
}

/// The one worker of a case. Dropped — done, or its task cancelled — it
/// frees the case: events still queued are left unacknowledged, so the
/// server delivers them again.
struct Worker<'a> {
    queues: &'a CaseQueues,
    case: String,
    /// The case was freed by [`Worker::next`]: a later event may have made
    /// a new worker of it, whose queue is not this one's to remove.
    freed: std::sync::atomic::AtomicBool,
}

impl Worker<'_> {
    /// Everything queued for the case, or `None` when nothing is (and the
    /// case is free again).
    fn next(&self) -> Option<Vec<(Message, Event)>> {
        let mut q = self.queues.0.lock().unwrap_or_else(|p| p.into_inner());
        match q.get_mut(&self.case) {
            Some(waiting) if !waiting.is_empty() => Some(std::mem::take(waiting)),
            _ => {
                q.remove(&self.case);
                self.freed.store(true, std::sync::atomic::Ordering::Relaxed);
                None
            }
        }
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        if !self.freed.load(std::sync::atomic::Ordering::Relaxed) {
            self.queues.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.case);
        }
    }
}

/// Statistics waiting to be stored, and the events waiting on them.
#[derive(Default)]
struct StatsBatch {
    #[allow(clippy::type_complexity)]
    pending: Mutex<(
        std::collections::BTreeMap<(String, String), Vec<&'static str>>,
        Vec<tokio::sync::oneshot::Sender<bool>>,
    )>,
    wake: tokio::sync::Notify,
    /// Set when no handler can count any more: the flusher may stop.
    closed: std::sync::atomic::AtomicBool,
}

impl StatsBatch {
    /// Counts `counts` in `month`; true once stored.
    async fn add(&self, month: &str, counts: Vec<(String, &'static str)>) -> bool {
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for (org, field) in counts {
                p.0.entry((month.to_string(), org)).or_default().push(field);
            }
            p.1.push(tx);
        }
        self.wake.notify_one();
        rx.await.unwrap_or(false)
    }
}
