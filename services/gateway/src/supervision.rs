//! `GET /v1/supervision?view=…`: what a supervisor — a justice bureau or a
//! procuratorate — watches over in its county, and the operator in every
//! county (docs/api.md, "Supervision views"). The views are read from the
//! tracker's case records (`xj_cases`), which may be a moment behind the
//! messages.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use xj_bus::records::{CaseRecord, Clock};
use xj_config::{OrgKind, Settings};
use xj_model::{Problem, RegionCode};

use crate::auth::caller;
use crate::error::{ApiError, clip};
use crate::state::{Caller, GatewayState};

/// Items one answer carries at most; beyond, the first ones in the view's
/// order and `truncated: true`.
pub const MAX_ITEMS: usize = 1000;

/// Case records read at once: enough to hide the round trips, few enough
/// that one request does not crowd the bus.
const READ_AHEAD: usize = 8;

/// The clocks of a jurisdiction dispute's steps (docs/clocks.md).
const DISPUTE_CLOCKS: [&str; 4] =
    ["dispute_negotiation", "coordination_decision", "justice_coordination", "leadership_decision"];

/// Statuses of a dispute clock whose step is not settled (an `escalated`
/// step was handed up: the next step's clock is the open one).
const DISPUTE_OPEN: [&str; 3] = ["running", "reminded", "overdue"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Overdue,
    CrimeUnreferred,
    Disputes,
    MajorPenalties,
}

impl View {
    pub const ALL: [View; 4] = [View::Overdue, View::CrimeUnreferred, View::Disputes, View::MajorPenalties];

    pub fn name(self) -> &'static str {
        match self {
            View::Overdue => "overdue",
            View::CrimeUnreferred => "crime_unreferred",
            View::Disputes => "disputes",
            View::MajorPenalties => "major_penalties",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// The county (6 digits) `org` supervises, if it is a justice bureau or a
/// procuratorate: that of its own region, a town's county for one placed
/// in a town.
pub(crate) fn supervised_county(settings: &Settings, org: &str) -> Option<String> {
    let o = settings.org(org)?;
    if !matches!(o.kind, OrgKind::JusticeBureau | OrgKind::Procuratorate) {
        return None;
    }
    RegionCode::parse(&o.region).ok().map(|r| r.county().to_owned())
}

/// Whether a party of `record` is of `county` (the county or one of its
/// towns). The hub's own alerts (`hub`) and organisations no longer
/// configured place a case nowhere.
pub(crate) fn concerns_county(settings: &Settings, record: &CaseRecord, county: &str) -> bool {
    record.parties.iter().filter_map(|p| settings.org(p)).any(|o| o.region.starts_with(county))
}

#[derive(Deserialize)]
pub struct SupervisionQuery {
    view: Option<String>,
    region: Option<String>,
}

pub async fn get_supervision(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<SupervisionQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = caller(&state, &headers)?;
    let own = match &who {
        Caller::Operator => None,
        Caller::Org(org) => Some(supervised_county(&state.settings, org).ok_or_else(|| {
            ApiError::Forbidden("only a justice bureau, a procuratorate or the operator reads supervision views".into())
        })?),
    };
    let mut problems = Vec::new();
    let view = match q.view.as_deref() {
        Some(v) => View::parse(v).or_else(|| {
            problems.push(Problem::new("/view", format!("{:?} is not a view: {}", clip(v), one_of())));
            None
        }),
        None => {
            problems.push(Problem::new("/view", format!("the query parameter view is required: {}", one_of())));
            None
        }
    };
    let region = match q.region.as_deref() {
        None => None,
        Some(r) => match RegionCode::parse(r) {
            Ok(code) if !code.is_town() => Some(code.as_str().to_owned()),
            _ => {
                problems.push(Problem::new("/region", format!("{:?} is not a 6-digit county code", clip(r))));
                None
            }
        },
    };
    let Some(view) = view.filter(|_| problems.is_empty()) else {
        return Err(ApiError::Invalid(problems));
    };
    let county = match (own, region) {
        (Some(own), Some(r)) if r != own => {
            return Err(ApiError::Forbidden(format!("a supervisor reads its own county only: {own}, not region {r}")));
        }
        (Some(own), _) => Some(own),
        (None, r) => r,
    };
    let (items, truncated) = collect(&state, view, county.as_deref()).await?;
    Ok(Json(json!({ "view": view.name(), "region": county, "items": items, "truncated": truncated })))
}

fn one_of() -> String {
    let names: Vec<&str> = View::ALL.iter().map(|v| v.name()).collect();
    format!("one of {}", names.join(", "))
}

/// Every case record (of `county`, when given) through `view`, the first
/// [`MAX_ITEMS`] items in order, and whether there were more.
async fn collect(state: &GatewayState, view: View, county: Option<&str>) -> Result<(Vec<Value>, bool), ApiError> {
    let now = state.clock.now();
    let mut top = Top::new(MAX_ITEMS);
    scan(state, |record| {
        if county.is_some_and(|c| !concerns_county(&state.settings, &record, c)) {
            return;
        }
        for (key, item) in items(view, &record, now) {
            top.push(key, item);
        }
    })
    .await?;
    Ok(top.finish())
}

/// Calls `each` with every case record the tracker keeps (`xj_cases`), a
/// few read at once. A record deleted since it was listed is skipped, and
/// so is one that does not decode (logged): one bad record must not hide
/// every other case.
pub(crate) async fn scan(state: &GatewayState, mut each: impl FnMut(CaseRecord)) -> Result<(), ApiError> {
    let store = &state.bus.cases;
    let keys = store.keys().await.map_err(ApiError::unavailable)?;
    let mut records = keys
        .map(|key| async move {
            let key = key.map_err(ApiError::unavailable)?;
            let raw = store.get(&key).await.map_err(ApiError::unavailable)?;
            Ok::<_, ApiError>((key, raw))
        })
        .buffer_unordered(READ_AHEAD);
    while let Some(read) = records.next().await {
        let (key, Some(raw)) = read? else { continue };
        match serde_json::from_slice(&raw) {
            Ok(record) => each(record),
            Err(e) => {
                tracing::warn!(case = %key, error = %e, "a case record that does not decode is left out of a listing");
            }
        }
    }
    Ok(())
}

/// Where an item stands in its view: by a time (a due date, else when the
/// case opened), then the case, then the clock.
type SortKey = (DateTime<Utc>, String, String);

/// The items `record` contributes to `view`, each with its place.
pub(crate) fn items(view: View, record: &CaseRecord, now: DateTime<Utc>) -> Vec<(SortKey, Value)> {
    let case = &record.case;
    let clock_key = |c: &Clock| (c.due, case.clone(), c.id.clone());
    match view {
        View::Overdue => record
            .clocks
            .iter()
            // Past due and still open: what the tracker marked overdue, and
            // a clock it has not fired yet (it lags behind the hub's time).
            .filter(|c| c.status == "overdue" || (c.is_open() && c.due < now))
            .map(|c| {
                let item = json!({
                    "case": case, "clock": c.name, "owner": c.owner, "status": c.status, "due": c.due,
                    "basis": c.basis, "about": c.about, "supervisors": c.supervisors,
                });
                (clock_key(c), item)
            })
            .collect(),
        View::CrimeUnreferred if record.crime_met && !record.handed_off => {
            let messages: Vec<Value> =
                record.messages.iter().map(|m| json!({ "id": m.id, "type": m.msg_type, "sender": m.sender })).collect();
            let item = json!({
                "case": case, "status": record.status, "opened_at": record.opened_at,
                "parties": record.parties, "messages": messages,
            });
            vec![((opened(record), case.clone(), String::new()), item)]
        }
        View::CrimeUnreferred => Vec::new(),
        View::Disputes => {
            let clocks: Vec<&Clock> =
                record.clocks.iter().filter(|c| DISPUTE_CLOCKS.contains(&c.name.as_str())).collect();
            let open: Vec<&&Clock> = clocks.iter().filter(|c| DISPUTE_OPEN.contains(&c.status.as_str())).collect();
            if record.status != "disputed" && open.is_empty() {
                return Vec::new();
            }
            let first = open.iter().map(|c| c.due).min().unwrap_or_else(|| opened(record));
            let listed: Vec<Value> = clocks
                .iter()
                .map(|c| json!({ "clock": c.name, "owner": c.owner, "status": c.status, "due": c.due }))
                .collect();
            let item = json!({ "case": case, "status": record.status, "clocks": listed });
            vec![((first, case.clone(), String::new()), item)]
        }
        View::MajorPenalties => record
            .clocks
            .iter()
            .filter(|c| c.name == "major_penalty_filing")
            .map(|c| {
                let item =
                    json!({ "case": case, "owner": c.owner, "status": c.status, "due": c.due, "about": c.about });
                (clock_key(c), item)
            })
            .collect(),
    }
}

/// When the case opened; a record that does not say sorts last.
fn opened(record: &CaseRecord) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&record.opened_at).map(|t| t.with_timezone(&Utc)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The first `cap` items by key, however many are offered: memory stays
/// bounded by the cap, not by the number of cases.
pub(crate) struct Top<K: Ord = SortKey> {
    cap: usize,
    heap: BinaryHeap<Ranked<K>>,
    dropped: bool,
}

struct Ranked<K>(K, Value);

impl<K: Ord> PartialEq for Ranked<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K: Ord> Eq for Ranked<K> {}
impl<K: Ord> PartialOrd for Ranked<K> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<K: Ord> Ord for Ranked<K> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl<K: Ord> Top<K> {
    pub(crate) fn new(cap: usize) -> Self {
        Self { cap, heap: BinaryHeap::new(), dropped: false }
    }

    pub(crate) fn push(&mut self, key: K, item: Value) {
        self.heap.push(Ranked(key, item));
        if self.heap.len() > self.cap {
            // The heap's greatest is the last in order: the one to leave out.
            self.heap.pop();
            self.dropped = true;
        }
    }

    /// The items in order, and whether any were left out.
    pub(crate) fn finish(self) -> (Vec<Value>, bool) {
        (self.heap.into_sorted_vec().into_iter().map(|Ranked(_, v)| v).collect(), self.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(name: &str, about: &str, status: &str, due: &str) -> Value {
        json!({ "id": format!("{name}:{about}"), "name": name, "basis": "依据", "about": about,
                "about_sender": "qh-market", "owner": "qh-town-dg", "supervisors": ["qh-justice"],
                "unit": "working_days", "amount": 5, "started_at": "2026-09-24T02:00:00Z", "due": due,
                "status": status })
    }

    fn record(case: &str, status: &str, clocks: Vec<Value>) -> CaseRecord {
        serde_json::from_value(json!({
            "case": case, "status": status, "opened_at": "2026-09-24T02:00:00+00:00", "updated_at": "",
            "parties": ["qh-market", "qh-town-dg"],
            "messages": [{ "id": "M-1", "type": "clue_referral", "sender": "qh-market",
                           "recipients": ["qh-town-dg"], "at": "", "summary": {} }],
            "clocks": clocks
        }))
        .expect("a case record")
    }

    fn now() -> DateTime<Utc> {
        "2026-10-10T00:00:00Z".parse().expect("a time")
    }

    fn names(items: &[(SortKey, Value)], field: &str) -> Vec<String> {
        items.iter().map(|(_, v)| v[field].as_str().unwrap_or_default().to_owned()).collect()
    }

    #[test]
    fn views_parse_by_their_names_only() {
        for v in View::ALL {
            assert_eq!(View::parse(v.name()), Some(v));
        }
        assert_eq!(View::parse("Overdue"), None);
        assert_eq!(View::parse(""), None);
    }

    #[test]
    fn overdue_lists_clocks_past_due_and_open_or_marked_overdue() {
        let r = record(
            "XJ-1",
            "referred",
            vec![
                clock("referral_decision", "A", "overdue", "2026-10-09T15:59:59Z"),
                clock("assistance_reply", "B", "running", "2026-10-09T15:59:59Z"),
                clock("referral_notice", "C", "running", "2026-10-12T15:59:59Z"),
                clock("police_filing", "D", "late", "2026-10-01T15:59:59Z"),
            ],
        );
        let items = items(View::Overdue, &r, now());
        assert_eq!(names(&items, "clock"), ["referral_decision", "assistance_reply"]);
        assert_eq!(items[0].1["about"], "A");
        assert_eq!(items[0].1["supervisors"], json!(["qh-justice"]));
    }

    #[test]
    fn crime_unreferred_is_a_threshold_met_without_a_handoff() {
        let mut r = record("XJ-2", "referred", vec![]);
        assert!(items(View::CrimeUnreferred, &r, now()).is_empty());
        r.crime_met = true;
        let listed = items(View::CrimeUnreferred, &r, now());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1["messages"], json!([{ "id": "M-1", "type": "clue_referral", "sender": "qh-market" }]));
        r.handed_off = true;
        assert!(items(View::CrimeUnreferred, &r, now()).is_empty());
    }

    #[test]
    fn a_dispute_is_listed_while_disputed_or_a_step_is_open() {
        let settled =
            record("XJ-3", "designated", vec![clock("dispute_negotiation", "O", "met", "2026-09-30T15:59:59Z")]);
        assert!(items(View::Disputes, &settled, now()).is_empty());
        let open = record(
            "XJ-4",
            "designated",
            vec![
                clock("dispute_negotiation", "O", "met", "2026-09-30T15:59:59Z"),
                clock("justice_coordination", "O", "reminded", "2026-10-15T15:59:59Z"),
                clock("referral_decision", "M-1", "overdue", "2026-09-30T15:59:59Z"),
            ],
        );
        let listed = items(View::Disputes, &open, now());
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0.0, "2026-10-15T15:59:59Z".parse::<DateTime<Utc>>().expect("a time"));
        let clocks: Vec<&str> =
            listed[0].1["clocks"].as_array().into_iter().flatten().filter_map(|c| c["clock"].as_str()).collect();
        assert_eq!(clocks, ["dispute_negotiation", "justice_coordination"]);
        let disputed = record("XJ-5", "disputed", vec![]);
        assert_eq!(items(View::Disputes, &disputed, now()).len(), 1);
    }

    #[test]
    fn major_penalties_lists_every_filing_clock() {
        let r = record(
            "XJ-6",
            "open",
            vec![
                clock("major_penalty_filing", "P-1", "met", "2026-10-09T15:59:59Z"),
                clock("major_penalty_filing", "P-2", "running", "2026-10-20T15:59:59Z"),
                clock("referral_decision", "M-1", "running", "2026-10-20T15:59:59Z"),
            ],
        );
        assert_eq!(names(&items(View::MajorPenalties, &r, now()), "about"), ["P-1", "P-2"]);
    }

    #[test]
    fn the_first_items_in_order_are_kept_and_the_rest_reported() {
        let mut top: Top = Top::new(3);
        let at = |d: u32| format!("2026-10-{d:02}T00:00:00Z").parse::<DateTime<Utc>>().expect("a time");
        for (d, case) in [(5, "E"), (1, "A"), (4, "D"), (2, "B2"), (2, "B1"), (3, "C")] {
            top.push((at(d), case.into(), String::new()), json!(case));
        }
        let (items, truncated) = top.finish();
        assert_eq!(items, [json!("A"), json!("B1"), json!("B2")]);
        assert!(truncated);
        let mut few: Top = Top::new(3);
        few.push((at(1), "A".into(), String::new()), json!("A"));
        assert_eq!(few.finish(), (vec![json!("A")], false));
    }
}
