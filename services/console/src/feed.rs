//! The live feed: every step event from `XJ_EVENTS` and every acceptance
//! from `XJ_ACCEPTED` (the last day's at start, then as they are written),
//! folded into one summary per message and per-organisation delivery
//! health, and pushed to every open page as a server-sent event. The
//! streams push; nothing here polls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::RwLock;

use async_nats::jetstream::consumer::DeliverPolicy;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;
use xj_bus::events::{Event, Step};
use xj_bus::{Bus, Shutdown, subjects};

/// Messages kept for the live list.
const KEEP: usize = 1000;
/// Latencies kept per organisation for the percentiles.
const LATENCIES: usize = 500;
/// How far back the feed reads when it starts.
const HISTORY_HOURS: i64 = 24;

/// One message as the live list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub id: String,
    pub sender: String,
    #[serde(rename = "type")]
    pub msg_type: Option<String>,
    pub case: Option<String>,
    pub recipients: Vec<String>,
    pub rule: Option<String>,
    pub rule_version: Option<String>,
    /// `accepted`, `routed`, `unplaced`, `retrying`, `waiting`, `delivered`, `dead`, `replayed`.
    pub status: String,
    /// Per recipient: `delivered`, `retrying`, `waiting` (in line behind a
    /// failed copy to the same receiver), `dead`, `replayed`.
    pub deliveries: BTreeMap<String, String>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub trace_id: String,
    pub steps: usize,
    /// No rule placed it: a jurisdiction question.
    pub unplaced: bool,
}

/// Delivery health of one organisation since the feed started reading.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead: u64,
    pub replayed: u64,
    pub sent: u64,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_delivered_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub latencies: VecDeque<u64>,
}

impl Health {
    /// The `p`-th percentile of recent delivery latencies, in ms.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.latencies.is_empty() {
            return None;
        }
        let mut v: Vec<u64> = self.latencies.iter().copied().collect();
        v.sort_unstable();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v.get(i).copied()
    }
}

#[derive(Default)]
struct Inner {
    order: VecDeque<String>,
    msgs: HashMap<String, Summary>,
    health: BTreeMap<String, Health>,
}

pub struct Feed {
    inner: RwLock<Inner>,
    tx: broadcast::Sender<String>,
}

impl Default for Feed {
    fn default() -> Self {
        Self { inner: RwLock::default(), tx: broadcast::channel(1024).0 }
    }
}

impl Feed {
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.tx.subscribe()
    }

    /// The newest `n` messages, newest first.
    pub fn recent(&self, n: usize) -> Vec<Summary> {
        let g = self.inner.read().unwrap_or_else(|p| p.into_inner());
        g.order.iter().rev().take(n).filter_map(|k| g.msgs.get(k).cloned()).collect()
    }

    pub fn health(&self) -> BTreeMap<String, Health> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).health.clone()
    }

    /// Folds one event in and tells the open pages.
    pub fn apply(&self, ev: &Event) {
        let summary = {
            let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
            let key = format!("{}/{}", ev.sender, ev.msg_id);
            if !g.msgs.contains_key(&key) {
                g.order.push_back(key.clone());
                if g.order.len() > KEEP
                    && let Some(old) = g.order.pop_front()
                {
                    g.msgs.remove(&old);
                }
            }
            let s = g.msgs.entry(key).or_insert_with(|| Summary {
                id: ev.msg_id.clone(),
                sender: ev.sender.clone(),
                msg_type: None,
                case: None,
                recipients: Vec::new(),
                rule: None,
                rule_version: None,
                status: ev.step.name().to_string(),
                deliveries: BTreeMap::new(),
                first_at: ev.at,
                last_at: ev.at,
                trace_id: ev.trace_id.clone(),
                steps: 0,
                unplaced: false,
            });
            fold(s, ev);
            let s = s.clone();
            health(&mut g.health, ev);
            s
        };
        let mut live = json!({ "step": ev.step.name(), "service": ev.service, "at": ev.at, "message": summary });
        crate::mask::personal(&mut live);
        let _ = self.tx.send(live.to_string());
    }
}

fn fold(s: &mut Summary, ev: &Event) {
    s.steps += 1;
    s.first_at = s.first_at.min(ev.at);
    s.last_at = s.last_at.max(ev.at);
    if s.msg_type.is_none() {
        s.msg_type = ev.msg_type.map(|t| t.as_str().to_string());
    }
    if s.case.is_none() {
        s.case = ev.case.clone().filter(|c| !c.is_empty());
    }
    match &ev.step {
        Step::Routed(d) | Step::Unplaced(d) => {
            s.unplaced |= matches!(ev.step, Step::Unplaced(_));
            for org in &d.recipients {
                if !s.recipients.contains(org) {
                    s.recipients.push(org.clone());
                }
            }
            if !d.rule.is_empty() {
                s.rule = Some(d.rule.clone());
            }
            if !d.rule_version.is_empty() {
                s.rule_version = Some(d.rule_version.clone());
            }
        }
        Step::Attempt(_) | Step::Waiting(_) | Step::Delivered(_) | Step::Dead(_) | Step::Replayed(_) => {
            if let Some(r) = ev.step.recipient() {
                let state = if matches!(ev.step, Step::Attempt(_)) { "retrying" } else { ev.step.name() };
                // A late report of an earlier attempt does not undo a delivery.
                let done = s.deliveries.get(r).is_some_and(|x| x == "delivered");
                if !done || matches!(ev.step, Step::Delivered(_)) {
                    s.deliveries.insert(r.to_string(), state.to_string());
                }
            }
        }
        Step::Accepted(_) | Step::CaseRecordFull(_) | Step::Receipted(_) => {}
    }
    s.status = status(s);
}

fn status(s: &Summary) -> String {
    let has = |x: &str| s.deliveries.values().any(|v| v == x);
    let all_delivered =
        !s.recipients.is_empty() && s.recipients.iter().all(|r| s.deliveries.get(r).is_some_and(|x| x == "delivered"));
    let status = if has("dead") {
        "dead"
    } else if has("retrying") {
        "retrying"
    } else if has("waiting") {
        "waiting"
    } else if has("replayed") {
        "replayed"
    } else if all_delivered {
        "delivered"
    } else if s.unplaced {
        "unplaced"
    } else if !s.recipients.is_empty() {
        "routed"
    } else {
        "accepted"
    };
    status.to_string()
}

fn health(h: &mut BTreeMap<String, Health>, ev: &Event) {
    if matches!(ev.step, Step::Accepted(_)) {
        h.entry(ev.sender.clone()).or_default().sent += 1;
        return;
    }
    let Some(org) = ev.step.recipient() else { return };
    let e = h.entry(org.to_string()).or_default();
    match &ev.step {
        Step::Delivered(d) => {
            e.delivered += 1;
            e.last_delivered_at = Some(ev.at);
            if let Some(ms) = d.ms {
                e.latencies.push_back(ms);
                if e.latencies.len() > LATENCIES {
                    e.latencies.pop_front();
                }
            }
        }
        Step::Attempt(d) | Step::Dead(d) => {
            if matches!(ev.step, Step::Dead(_)) {
                e.dead += 1;
            } else {
                e.failed_attempts += 1;
            }
            e.last_failure = d.error.clone();
            e.last_failure_at = Some(ev.at);
        }
        Step::Replayed(_) => e.replayed += 1,
        _ => {}
    }
}

/// Reads `XJ_EVENTS` and `XJ_ACCEPTED` (each message's acceptance, which
/// has no event of its own) from a day back, then follows them, until
/// `shutdown`.
pub async fn run(feed: std::sync::Arc<Feed>, bus: Bus, shutdown: Shutdown) {
    let since = Utc::now() - chrono::Duration::hours(HISTORY_HOURS);
    let start = match async_nats::datetime::parse_rfc3339(&since.to_rfc3339()) {
        Ok(start_time) => DeliverPolicy::ByStartTime { start_time },
        Err(_) => DeliverPolicy::All,
    };
    let steps =
        xj_bus::consume::follow(&bus.js, subjects::STREAM_EVENTS, start, shutdown.clone(), "console feed", |m| {
            if let Ok(ev) = serde_json::from_slice::<Event>(&m.payload) {
                feed.apply(&ev);
            }
        });
    let accepted = xj_bus::consume::follow(&bus.js, subjects::STREAM_ACCEPTED, start, shutdown, "console feed", |m| {
        if let Some(ev) = Event::of_accepted(m.headers.as_ref(), &m.payload) {
            feed.apply(&ev);
        }
    });
    tokio::join!(steps, accepted);
}
