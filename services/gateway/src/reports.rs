//! `GET /v1/reports/monthly`: the consolidated monthly report of a county
//! (docs/api.md, "The consolidated monthly report") — each enforcement
//! organisation's `monthly_report` (《县行政执法协调监督工作方案》：行政执法信息月报制度)
//! beside the hub's own counters for it, as JSON, CSV or a workbook.
//!
//! Read from what the tracker keeps: the report clocks on the month's
//! record `RPT-<county>-<month>` (`xj_cases`), the figures each report gave
//! and the counters (`xj_stats`). Those may be a moment behind the
//! messages, as every read of the tracker's records is.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use serde_json::{Map, Number, Value, json};
use xj_bus::records::{CaseRecord, Clock};
use xj_bus::stats::{Counters, FIELDS, Reported};
use xj_config::{OrgKind, Settings};
use xj_model::{Problem, RegionCode};

use crate::auth::caller;
use crate::error::{ApiError, clip};
use crate::state::{Caller, GatewayState};

pub const PATH: &str = "/v1/reports/monthly";

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The name of the clocks the tracker keeps on a month's report record.
const CLOCK: &str = "monthly_report";

/// Where the county's duty to report comes from, for the workbook's notes.
const PLAN: &str = "《县行政执法协调监督工作方案》：行政执法信息月报制度";

#[derive(Deserialize)]
pub struct MonthlyQuery {
    month: Option<String>,
    format: Option<String>,
    county: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Xlsx,
    Pdf,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            "pdf" => Some(Self::Pdf),
            _ => None,
        }
    }

    /// The format the `Accept` header prefers among the three (by `q`, then
    /// by order); JSON when it names none of them.
    fn negotiate(accept: Option<&str>) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                .next()
                .unwrap_or(1.0);
            let format = match media.as_str() {
                "application/json" => Self::Json,
                "text/csv" => Self::Csv,
                XLSX => Self::Xlsx,
                "application/pdf" => Self::Pdf,
                _ => continue,
            };
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, format));
            }
        }
        best.map_or(Self::Json, |(_, f)| f)
    }
}

/// Where an organisation's report for the month stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    OnTime,
    Late,
    /// The due time passed and the tracker marked the clock overdue.
    Overdue,
    /// The due time passed with no report and no overdue clock to show for
    /// it (the tracker has not got to it, or never opened one).
    Missing,
    /// The clock runs and the due time has not come.
    Pending,
    /// No clock yet (the month has not ended, or the tracker has not got
    /// to it) and no report.
    NotOpen,
}

impl Status {
    pub const ALL: [Status; 6] =
        [Status::OnTime, Status::Late, Status::Overdue, Status::Missing, Status::Pending, Status::NotOpen];

    pub fn name(self) -> &'static str {
        match self {
            Self::OnTime => "on_time",
            Self::Late => "late",
            Self::Overdue => "overdue",
            Self::Missing => "missing",
            Self::Pending => "pending",
            Self::NotOpen => "not_open",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Self::OnTime => "按时报送",
            Self::Late => "逾期报送",
            Self::Overdue => "超期未报",
            Self::Missing => "未报送",
            Self::Pending => "报送期内",
            Self::NotOpen => "未开始",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Self::OnTime => "报送期限前报送（时限 met）",
            Self::Late => "期限过后报送（时限 late，或超期后补报）",
            Self::Overdue => "期限已过未报送，已发出超期监督提示（时限 overdue）",
            Self::Missing => "期限已过未报送，尚无超期记录",
            Self::Pending => "时限计算中，期限未到，尚未报送",
            Self::NotOpen => "本月尚未结束或时限尚未建立，尚未报送",
        }
    }

    fn reported(self) -> bool {
        matches!(self, Self::OnTime | Self::Late)
    }
}

/// An organisation's status, from its clock on the month's record when
/// there is one, and otherwise from its report's time against the due
/// time. An overdue clock stays overdue when the report comes after it
/// (as every clock does), so the report makes the row `late`.
pub fn status_of(clock: Option<&Clock>, report: Option<&Reported>, due: DateTime<Utc>, now: DateTime<Utc>) -> Status {
    let due = clock.map_or(due, |c| c.due);
    let by_time = |r: &Reported| if r.at > due { Status::Late } else { Status::OnTime };
    match (clock.map(|c| c.status.as_str()), report) {
        (Some("met"), _) => Status::OnTime,
        (Some("late"), _) => Status::Late,
        (_, Some(r)) => by_time(r),
        (Some("overdue"), None) => Status::Overdue,
        (_, None) if now > due => Status::Missing,
        (Some(_), None) => Status::Pending,
        (None, None) => Status::NotOpen,
    }
}

/// The county's time: months, days and the due time are China's.
fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}

/// 24:00 (+08:00) of `[report] due_day` of the month after `month`, as the
/// tracker sets the clocks; `None` past the calendar's end.
fn due_of(first: NaiveDate, due_day: u32) -> Option<DateTime<Utc>> {
    let day = first.checked_add_months(chrono::Months::new(1))?.with_day(due_day)?;
    let end = day.and_time(NaiveTime::from_hms_opt(23, 59, 59)?);
    china().from_local_datetime(&end).single().map(|t| t.with_timezone(&Utc))
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&china()).to_rfc3339()
}

/// As a person reads it on the form: minutes, and 24:00 for the end of a day.
fn readable(t: DateTime<Utc>) -> String {
    let t = t.with_timezone(&china());
    if t.format("%H:%M:%S").to_string() == "23:59:59" {
        format!("{} 24:00", t.format("%Y-%m-%d"))
    } else {
        t.format("%Y-%m-%d %H:%M").to_string()
    }
}

pub struct Row {
    pub org: String,
    pub name: String,
    pub kind: OrgKind,
    pub status: Status,
    /// The clock's own status, when there is a clock.
    pub clock_status: Option<String>,
    pub reported_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    /// Each indicator's figure as reported (`None`: not reported).
    pub figures: Vec<Option<Number>>,
    /// The hub's counters for the org, in the order of `FIELDS`.
    pub hub: Vec<u64>,
}

pub struct County {
    pub county: String,
    pub case: String,
    pub due: Option<DateTime<Utc>>,
    pub rows: Vec<Row>,
}

pub struct Report {
    pub month: String,
    pub generated_at: DateTime<Utc>,
    pub indicators: Vec<String>,
    pub counties: Vec<County>,
}

impl County {
    fn count(&self, s: Status) -> usize {
        self.rows.iter().filter(|r| r.status == s).count()
    }

    fn reported(&self) -> usize {
        self.rows.iter().filter(|r| r.status.reported()).count()
    }

    /// The sum of indicator `i` over the rows that report it.
    fn figure_total(&self, i: usize) -> Number {
        let mut whole: Option<i128> = Some(0);
        let mut real = 0f64;
        for n in self.rows.iter().filter_map(|r| r.figures.get(i).cloned().flatten()) {
            real += n.as_f64().unwrap_or(0.0);
            whole = whole.and_then(|w| Some(w + i128::from(n.as_u64()?)));
        }
        // Counts stay integers; a figure with decimals makes the sum one.
        whole
            .and_then(|w| u64::try_from(w).ok())
            .map(Number::from)
            .or_else(|| Number::from_f64(real))
            .unwrap_or_else(|| Number::from(0))
    }

    fn hub_total(&self, i: usize) -> u64 {
        self.rows.iter().map(|r| r.hub.get(i).copied().unwrap_or(0)).fold(0, u64::saturating_add)
    }
}

/// The report of `counties` for `month` from what was read: each county's
/// record (when the tracker has one), every org's counters and reports.
pub fn build(
    settings: &Settings,
    month: &str,
    first: NaiveDate,
    now: DateTime<Utc>,
    counties: Vec<(String, Option<CaseRecord>)>,
    counters: &BTreeMap<String, Counters>,
    reports: &BTreeMap<String, Reported>,
) -> Report {
    let due = due_of(first, settings.report.due_day);
    let indicators = settings.report.indicators.clone();
    let counties = counties
        .into_iter()
        .map(|(county, record)| {
            let clocks: Vec<&Clock> = record.iter().flat_map(|r| r.clocks.iter()).filter(|c| c.name == CLOCK).collect();
            let rows = settings
                .org
                .iter()
                .filter(|o| o.kind.is_enforcement() && o.region.starts_with(county.as_str()))
                .map(|o| {
                    let clock = clocks.iter().copied().find(|c| c.owner == o.id);
                    let report = reports.get(&o.id);
                    let status = match due {
                        Some(d) => status_of(clock, report, d, now),
                        None => Status::NotOpen,
                    };
                    let closing = clock.filter(|c| matches!(c.status.as_str(), "met" | "late"));
                    let c = counters.get(&o.id);
                    Row {
                        org: o.id.clone(),
                        name: o.name.clone(),
                        kind: o.kind,
                        status,
                        clock_status: clock.map(|c| c.status.clone()),
                        reported_at: report.map(|r| r.at).or_else(|| closing.and_then(|c| c.closed_at)),
                        message_id: report
                            .map(|r| r.msg_id.clone())
                            .or_else(|| closing.and_then(|c| c.closed_by.clone())),
                        figures: indicators
                            .iter()
                            .map(|i| report.and_then(|r| r.figures.get(i)).and_then(|v| v.as_number().cloned()))
                            .collect(),
                        hub: FIELDS.iter().map(|f| c.and_then(|c| c.get(*f)).copied().unwrap_or(0)).collect(),
                    }
                })
                .collect();
            County { case: xj_bus::records::monthly_case(&county, month), county, due, rows }
        })
        .collect();
    Report { month: month.to_string(), generated_at: now, indicators, counties }
}

pub async fn monthly(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    Query(q): Query<MonthlyQuery>,
) -> Result<Response, ApiError> {
    let who = caller(&state, &headers)?;
    let own = match &who {
        Caller::Operator => None,
        Caller::Org(org) => Some(justice_county(&state.settings, org)?),
    };
    let mut problems = Vec::new();
    let month = match q.month.as_deref() {
        None => {
            problems.push(Problem::new("/month", "the query parameter month is required (YYYY-MM)"));
            None
        }
        Some(m) => match parse_month(m) {
            Some(first) if first.checked_add_months(chrono::Months::new(1)).is_some() => Some((m.to_string(), first)),
            _ => {
                problems.push(Problem::new("/month", format!("{:?} is not a month (YYYY-MM)", clip(m))));
                None
            }
        },
    };
    let format = match q.format.as_deref() {
        None => Some(Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))),
        Some(f) => Format::parse(f).or_else(|| {
            problems
                .push(Problem::new("/format", format!("{:?} is not a format: one of json, csv, xlsx, pdf", clip(f))));
            None
        }),
    };
    let all = counties(&state.settings);
    let county = match q.county.as_deref() {
        None => None,
        Some(c) => match RegionCode::parse(c) {
            // A justice bureau naming another county is refused below, as
            // not its to read, whether or not that county exists.
            Ok(code) if !code.is_town() && own.is_none() && !all.iter().any(|a| a == c) => {
                problems.push(Problem::new(
                    "/county",
                    format!("no enforcement organisation of this hub is in county {c}: one of {}", all.join(", ")),
                ));
                None
            }
            Ok(code) if !code.is_town() => Some(c.to_string()),
            _ => {
                problems.push(Problem::new("/county", format!("{:?} is not a 6-digit county code", clip(c))));
                None
            }
        },
    };
    let (Some((month, first)), Some(format)) = (month, format) else {
        return Err(ApiError::Invalid(problems));
    };
    if !problems.is_empty() {
        return Err(ApiError::Invalid(problems));
    }
    let chosen = match (own, county) {
        (Some(own), Some(c)) if c != own => {
            return Err(ApiError::Forbidden(format!(
                "a justice bureau reads the monthly report of its own county only: {own}, not {c}"
            )));
        }
        (Some(own), _) => vec![own],
        (None, Some(c)) => vec![c],
        (None, None) => all,
    };
    let report = read(&state, &month, first, chosen).await?;
    let name = match report.counties.as_slice() {
        [one] => format!("monthly-{}-{month}", one.county),
        _ => format!("monthly-all-{month}"),
    };
    let mut response = match format {
        Format::Json => axum::Json(to_json(&report)).into_response(),
        Format::Csv => {
            let mut r = ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], to_csv(&report)).into_response();
            attach(&mut r, &format!("{name}.csv"));
            r
        }
        Format::Xlsx => {
            let bytes = to_xlsx(&report).map_err(|e| ApiError::Internal(format!("workbook not written: {e}")))?;
            let mut r = ([(header::CONTENT_TYPE, XLSX)], bytes).into_response();
            attach(&mut r, &format!("{name}.xlsx"));
            r
        }
        Format::Pdf => {
            let printer = crate::letters::printer(&state).await?;
            let doc = to_doc(&report, &state.settings);
            // Laying out and subsetting a CJK font is CPU work: off the
            // request threads.
            let pdf = tokio::task::spawn_blocking(move || printer.render(&doc))
                .await
                .map_err(|e| ApiError::Internal(format!("printing stopped: {e}")))?
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let mut r = ([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response();
            attach(&mut r, &format!("{name}.pdf"));
            r
        }
    };
    // The same URL answers in three formats.
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept"));
    Ok(response)
}

fn attach(r: &mut Response, filename: &str) {
    // Org and county ids and months only: ASCII, nothing to quote.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
}

/// The county a justice bureau reads; anyone else is refused with why.
fn justice_county(settings: &Settings, org: &str) -> Result<String, ApiError> {
    let refused = |what: String| {
        ApiError::Forbidden(format!(
            "the consolidated monthly report is read by a county's justice bureau and the operator; {org} is {what}"
        ))
    };
    let o = settings.org(org).ok_or_else(|| refused("not configured".into()))?;
    if o.kind != OrgKind::JusticeBureau {
        return Err(refused(format!("a {}", kind_name(o.kind))));
    }
    RegionCode::parse(&o.region)
        .map(|r| r.county().to_owned())
        .map_err(|_| refused(format!("configured with region {:?}, which names no county", o.region)))
}

fn kind_name(kind: OrgKind) -> String {
    serde_json::to_value(kind).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// `YYYY-MM`, exactly: the first day of that month.
fn parse_month(m: &str) -> Option<NaiveDate> {
    let first = NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").ok()?;
    (first.format("%Y-%m").to_string() == m).then_some(first)
}

/// Every county with an enforcement organisation of this hub, in order.
fn counties(settings: &Settings) -> Vec<String> {
    let mut out: Vec<String> = settings
        .org
        .iter()
        .filter(|o| o.kind.is_enforcement())
        .filter_map(|o| RegionCode::parse(&o.region).ok().map(|r| r.county().to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

async fn read(state: &GatewayState, month: &str, first: NaiveDate, counties: Vec<String>) -> Result<Report, ApiError> {
    let stats = &state.bus.stats;
    let records = futures::future::try_join_all(counties.iter().map(|c| async move {
        let case = xj_bus::records::monthly_case(c, month);
        let raw = state.bus.cases.get(&case).await.map_err(ApiError::unavailable)?;
        let record = raw
            .map(|b| serde_json::from_slice::<CaseRecord>(&b))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("case record {case} does not parse: {e}")))?;
        Ok::<_, ApiError>((c.clone(), record))
    }));
    let (records, counters, reports) = tokio::try_join!(
        records,
        async { xj_bus::stats::month(stats, month).await.map_err(ApiError::unavailable) },
        async { xj_bus::stats::reports(stats, month).await.map_err(ApiError::unavailable) },
    )?;
    Ok(build(&state.settings, month, first, state.clock.now(), records, &counters, &reports))
}

pub fn to_json(r: &Report) -> Value {
    let counties: Vec<Value> = r
        .counties
        .iter()
        .map(|c| {
            let orgs: Vec<Value> = c
                .rows
                .iter()
                .map(|row| {
                    let figures: Map<String, Value> = r
                        .indicators
                        .iter()
                        .zip(&row.figures)
                        .map(|(i, f)| (i.clone(), f.clone().map_or(Value::Null, Value::Number)))
                        .collect();
                    let hub: Map<String, Value> =
                        FIELDS.iter().zip(&row.hub).map(|(f, n)| ((*f).into(), json!(n))).collect();
                    json!({
                        "org": row.org, "name": row.name, "kind": row.kind, "status": row.status.name(),
                        "clock_status": row.clock_status, "reported_at": row.reported_at.map(local),
                        "message_id": row.message_id, "figures": figures, "hub": hub,
                    })
                })
                .collect();
            let statuses: Map<String, Value> =
                Status::ALL.iter().map(|s| (s.name().into(), json!(c.count(*s)))).collect();
            let figures: Map<String, Value> =
                r.indicators.iter().enumerate().map(|(i, n)| (n.clone(), Value::Number(c.figure_total(i)))).collect();
            let hub: Map<String, Value> =
                FIELDS.iter().enumerate().map(|(i, f)| ((*f).into(), json!(c.hub_total(i)))).collect();
            json!({
                "county": c.county, "case": c.case, "due": c.due.map(local), "orgs": orgs,
                "totals": { "orgs": c.rows.len(), "reported": c.reported(), "statuses": statuses,
                            "figures": figures, "hub": hub },
            })
        })
        .collect();
    json!({
        "month": r.month, "generated_at": local(r.generated_at), "indicators": r.indicators,
        "hub_fields": FIELDS, "counties": counties,
    })
}

/// A CSV field, quoted when it must be (RFC 4180).
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub fn to_csv(r: &Report) -> String {
    let mut head: Vec<String> =
        ["county", "month", "due", "org", "name", "status", "reported_at", "message_id"].map(String::from).to_vec();
    head.extend(r.indicators.iter().cloned());
    head.extend(FIELDS.iter().map(|f| (*f).to_string()));
    let mut out = head.iter().map(|h| field(h)).collect::<Vec<_>>().join(",");
    out.push('\n');
    for c in &r.counties {
        let due = c.due.map(local).unwrap_or_default();
        let mut line = |cells: Vec<String>| {
            out.push_str(&cells.iter().map(|s| field(s)).collect::<Vec<_>>().join(","));
            out.push('\n');
        };
        for row in &c.rows {
            let mut cells = vec![
                c.county.clone(),
                r.month.clone(),
                due.clone(),
                row.org.clone(),
                row.name.clone(),
                row.status.name().to_string(),
                row.reported_at.map(local).unwrap_or_default(),
                row.message_id.clone().unwrap_or_default(),
            ];
            cells.extend(row.figures.iter().map(|f| f.as_ref().map(Number::to_string).unwrap_or_default()));
            cells.extend(row.hub.iter().map(u64::to_string));
            line(cells);
        }
        let mut cells = vec![
            c.county.clone(),
            r.month.clone(),
            due.clone(),
            "total".to_string(),
            "合计".to_string(),
            format!("{}/{}", c.reported(), c.rows.len()),
            String::new(),
            String::new(),
        ];
        cells.extend((0..r.indicators.len()).map(|i| c.figure_total(i).to_string()));
        cells.extend((0..FIELDS.len()).map(|i| c.hub_total(i).to_string()));
        line(cells);
    }
    out
}

/// The Chinese label of an indicator the county's plan names; others go by
/// their configured name.
fn indicator_label(name: &str) -> &str {
    match name {
        "commitment_matters" => "告知承诺制事项",
        "four_lists_cases" => "包容审慎“四张清单”案件",
        "impact_assessments" => "涉企案件经济影响评估",
        "enterprise_cases_closed" => "涉企行政执法案件办结",
        other => other,
    }
}

/// The Chinese label and meaning of each of the hub's counters.
fn hub_label(field: &str) -> (&'static str, &'static str) {
    match field {
        "referrals_sent" => ("移送线索/案件", "本单位通过本系统发出的违法线索移送函、行政案件移送函"),
        "referrals_received" => ("接收移送", "移送给本单位的线索和案件"),
        "decisions_on_time" => ("按期办理", "本单位在时限内完成的事项（各时限 met）"),
        "decisions_late" => ("逾期办理", "本单位超过时限后完成的事项（各时限 late）"),
        "handoffs_sent" => ("移送涉嫌犯罪案件", "本单位发出的涉嫌犯罪案件移送书"),
        "handoffs_received" => ("接收涉嫌犯罪案件", "移送给本单位（公安、检察）的涉嫌犯罪案件"),
        "police_decisions" => ("公安决定", "本单位（公安）作出的立案、不予立案、移送等决定"),
        "police_filed" => ("立案", "本单位（公安）决定立案"),
        "police_not_filed" => ("不予立案", "本单位（公安）决定不予立案"),
        "overdue" => ("超期", "本单位超过时限的次数（超期监督提示）"),
        "alerts" => ("监督提示", "本单位收到的监督提示（supervision_alert）"),
        "penalty_instead_of_transfer" => ("以罚代刑预警", "本单位的处罚决定触发的以罚代刑预警"),
        "disputes" => ("管辖异议", "本单位对移送提出的异议（管辖争议）"),
        "supervision_sent" => ("发出监督文书", "本单位发出的监督文书"),
        "supervision_received" => ("收到监督文书", "本单位收到的监督文书"),
        "supervision_answered" => ("回复监督文书", "本单位对监督文书的回复"),
        "supervision_late" => ("逾期回复监督文书", "本单位超过时限回复的监督文书"),
        "messages" => ("报文", "本单位通过本系统发出的报文总数"),
        _ => ("", ""),
    }
}

/// Columns of the workbook: the Chinese label, the field name, what it
/// means and where it comes from (the notes sheet lists them).
fn columns(r: &Report) -> Vec<(String, String, String, String)> {
    let plan = format!("各单位报送的行政执法工作月报（monthly_report；{PLAN}）");
    let hub = "本系统按月统计（xj_stats 计数器，同 GET /v1/stats）".to_string();
    let tracker = "本系统报送时限（月报记录 RPT-<县>-<月> 上的 monthly_report 时限）".to_string();
    let config = "本系统配置（[[org]]）".to_string();
    let mut out = vec![
        ("单位代码".into(), "org".into(), "本系统中的单位标识".into(), config.clone()),
        ("单位名称".into(), "name".into(), "单位全称".into(), config),
        (
            "报送状态".into(),
            "status".into(),
            Status::ALL
                .iter()
                .map(|s| format!("{}（{}）：{}", s.label(), s.name(), s.meaning()))
                .collect::<Vec<_>>()
                .join("；"),
            tracker,
        ),
        ("报送时间".into(), "reported_at".into(), "本系统收到所列月报的时间（北京时间）".into(), plan.clone()),
        ("报文编号".into(), "message_id".into(), "所列月报的报文编号（更正后为最后一份）".into(), plan.clone()),
    ];
    for i in &r.indicators {
        out.push((
            indicator_label(i).to_string(),
            i.clone(),
            format!("月报指标 {i}（[report] indicators）；未报为空"),
            plan.clone(),
        ));
    }
    for f in FIELDS {
        let (label, meaning) = hub_label(f);
        let label = if label.is_empty() { f } else { label };
        out.push((label.to_string(), f.to_string(), meaning.to_string(), hub.clone()));
    }
    out
}

/// Width of `s` in the units of a column width: a Chinese character takes two.
fn width(s: &str) -> f64 {
    s.chars().map(|c| if c.is_ascii() { 1.0 } else { 2.0 }).sum()
}

pub fn to_xlsx(r: &Report) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format as Style, FormatAlign, FormatBorder, Workbook};
    let cols = columns(r);
    let last = u16::try_from(cols.len().saturating_sub(1)).unwrap_or(u16::MAX);
    let title = Style::new().set_bold().set_font_size(14);
    let head = Style::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Center)
        .set_align(FormatAlign::VerticalCenter)
        .set_border(FormatBorder::Thin)
        .set_background_color("#DDEBF7");
    let cell = Style::new().set_border(FormatBorder::Thin);
    let total = Style::new().set_bold().set_border(FormatBorder::Thin).set_background_color("#F2F2F2");
    let mut widths: Vec<f64> = cols.iter().map(|(label, name, ..)| width(label).max(width(name)) + 2.0).collect();
    let mut grow = |col: usize, s: &str| {
        if let Some(w) = widths.get_mut(col) {
            *w = w.max(width(s) + 2.0);
        }
    };
    let mut wb = Workbook::new();
    let sheet = wb.add_worksheet();
    sheet.set_name("月报汇总")?;
    let mut row: u32 = 0;
    for (n, c) in r.counties.iter().enumerate() {
        if n > 0 {
            row += 1;
        }
        let text = format!("行政执法工作月报汇总 · 县（区划代码）{} · {}", c.county, r.month);
        sheet.merge_range(row, 0, row, last, &text, &title)?;
        sheet.set_row_height(row, 22)?;
        row += 1;
        let due = c.due.map(readable).unwrap_or_else(|| "—".into());
        let info = format!(
            "报送期限：{due}（北京时间）；应报 {}，已报 {}（按时 {}，逾期 {}）；生成于 {}；字段含义见“说明”",
            c.rows.len(),
            c.reported(),
            c.count(Status::OnTime),
            c.count(Status::Late),
            readable(r.generated_at)
        );
        sheet.merge_range(row, 0, row, last, &info, &Style::new())?;
        row += 1;
        for (i, (label, name, ..)) in cols.iter().enumerate() {
            sheet.write_string_with_format(row, col(i), format!("{label}\n{name}"), &head)?;
        }
        sheet.set_row_height(row, 32)?;
        if n == 0 {
            sheet.set_freeze_panes(row + 1, 2)?;
        }
        row += 1;
        for o in &c.rows {
            let texts = [
                o.org.clone(),
                o.name.clone(),
                o.status.label().to_string(),
                o.reported_at.map(readable).unwrap_or_default(),
                o.message_id.clone().unwrap_or_default(),
            ];
            for (i, t) in texts.iter().enumerate() {
                sheet.write_string_with_format(row, col(i), t, &cell)?;
                grow(i, t);
            }
            let numbers = o.figures.iter().map(|f| f.as_ref().and_then(Number::as_f64));
            let hub = o.hub.iter().map(|n| Some(*n as f64));
            for (i, v) in numbers.chain(hub).enumerate() {
                match v {
                    Some(v) => sheet.write_number_with_format(row, col(texts.len() + i), v, &cell)?,
                    None => sheet.write_blank(row, col(texts.len() + i), &cell)?,
                };
            }
            row += 1;
        }
        let texts = [
            "合计".to_string(),
            String::new(),
            format!("已报 {}/{}", c.reported(), c.rows.len()),
            String::new(),
            String::new(),
        ];
        for (i, t) in texts.iter().enumerate() {
            sheet.write_string_with_format(row, col(i), t, &total)?;
        }
        let sums = (0..r.indicators.len())
            .map(|i| c.figure_total(i).as_f64().unwrap_or(0.0))
            .chain((0..FIELDS.len()).map(|i| c.hub_total(i) as f64));
        for (i, v) in sums.enumerate() {
            sheet.write_number_with_format(row, col(texts.len() + i), v, &total)?;
        }
        row += 1;
    }
    for (i, w) in widths.iter().enumerate() {
        sheet.set_column_width(col(i), w.min(40.0))?;
    }

    let notes = wb.add_worksheet();
    notes.set_name("说明")?;
    let wrap = Style::new().set_text_wrap().set_align(FormatAlign::Top).set_border(FormatBorder::Thin);
    notes.merge_range(0, 0, 0, 3, &format!("行政执法工作月报汇总 {} · 说明", r.month), &title)?;
    let basis = format!(
        "依据：{PLAN}。各行政执法单位于次月 {} 日 24:00 前通过本系统向县司法局报送上月月报（monthly_report）；“合计”行为各列之和，报送状态列为已报单位数/应报单位数。",
        due_day(r)
    );
    notes.merge_range(1, 0, 1, 3, &basis, &wrap)?;
    notes.set_row_height(1, 48)?;
    for (i, h) in ["列（表头第一行）", "字段（表头第二行）", "含义", "来源"].iter().enumerate() {
        notes.write_string_with_format(2, col(i), *h, &head)?;
    }
    for (n, (label, name, meaning, source)) in cols.iter().enumerate() {
        let at = 3 + u32::try_from(n).unwrap_or(u32::MAX - 3);
        for (i, t) in [label, name, meaning, source].iter().enumerate() {
            notes.write_string_with_format(at, col(i), t.as_str(), &wrap)?;
        }
    }
    for (i, w) in [24.0, 30.0, 60.0, 48.0].iter().enumerate() {
        notes.set_column_width(col(i), *w)?;
    }
    wb.save_to_buffer()
}

fn col(i: usize) -> u16 {
    u16::try_from(i).unwrap_or(u16::MAX)
}

/// The day of the next month reports are due, as the report shows it.
fn due_day(r: &Report) -> String {
    r.counties
        .iter()
        .find_map(|c| c.due)
        .map(|d| d.with_timezone(&china()).day().to_string())
        .unwrap_or_else(|| "—".into())
}

/// The hub's counters the printed report shows beside the organisations'
/// own figures (the rest are in the workbook).
const PRINTED_HUB: [&str; 10] = [
    "referrals_sent",
    "referrals_received",
    "handoffs_sent",
    "police_filed",
    "police_not_filed",
    "overdue",
    "penalty_instead_of_transfer",
    "disputes",
    "supervision_received",
    "supervision_late",
];

/// The report as a printable document: per county, the organisations'
/// reports (status, time, figures) and the hub's own figures, with totals;
/// A4 landscape.
pub fn to_doc(r: &Report, settings: &Settings) -> xj_print::Doc {
    use xj_print::{Block, Table};
    let mut blocks = Vec::new();
    let (year, month) = r.month.split_once('-').unwrap_or((r.month.as_str(), ""));
    for (n, c) in r.counties.iter().enumerate() {
        if n > 0 {
            blocks.push(Block::Gap(24.0));
        }
        let county_name = settings
            .org
            .iter()
            .find(|o| o.kind == OrgKind::JusticeBureau && o.region == c.county)
            .map(|o| o.name.trim_end_matches("司法局").to_string())
            .unwrap_or_default();
        blocks.push(Block::Title("行政执法工作月报汇总".into()));
        blocks.push(Block::Subtitle(format!(
            "{county_name}（{}）　{year}年{}月",
            c.county,
            month.trim_start_matches('0')
        )));
        blocks
            .push(Block::Field {
                label: "报送期限".into(), value: c.due.map(readable).unwrap_or_else(|| "—".into())
            });
        blocks.push(Block::Field {
            label: "报送情况".into(),
            value: format!(
                "应报 {} 家，已报 {} 家（按时 {}，逾期 {}），超期未报 {} 家",
                c.rows.len(),
                c.reported(),
                c.count(Status::OnTime),
                c.count(Status::Late),
                c.count(Status::Overdue) + c.count(Status::Missing)
            ),
        });
        blocks.push(Block::Field { label: "月报记录".into(), value: c.case.clone() });
        blocks.push(Block::Heading("一、各单位报送的月报".into()));
        let mut header = vec!["单位".to_string(), "报送状态".into(), "报送时间".into()];
        header.extend(r.indicators.iter().map(|i| indicator_label(i).to_string()));
        let mut rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![
                    row.name.clone(),
                    row.status.label().to_string(),
                    row.reported_at.map(readable).unwrap_or_default(),
                ];
                cells.extend(row.figures.iter().map(|f| f.as_ref().map(Number::to_string).unwrap_or_default()));
                cells
            })
            .collect();
        let mut total = vec!["合计".to_string(), format!("{}/{}", c.reported(), c.rows.len()), String::new()];
        total.extend((0..r.indicators.len()).map(|i| c.figure_total(i).to_string()));
        rows.push(total);
        let mut widths = vec![3.0, 1.4, 2.2];
        widths.extend(r.indicators.iter().map(|_| 1.5));
        blocks.push(Block::Table(Table { header, rows, widths }));
        blocks.push(Block::Heading("二、本系统记录的协作与监督情况".into()));
        let index: Vec<usize> = PRINTED_HUB.iter().filter_map(|f| FIELDS.iter().position(|x| x == f)).collect();
        let mut header = vec!["单位".to_string()];
        header.extend(index.iter().map(|i| hub_label(FIELDS[*i]).0.to_string()));
        let mut rows: Vec<Vec<String>> = c
            .rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.name.clone()];
                cells.extend(index.iter().map(|i| row.hub.get(*i).copied().unwrap_or(0).to_string()));
                cells
            })
            .collect();
        let mut total = vec!["合计".to_string()];
        total.extend(index.iter().map(|i| c.hub_total(*i).to_string()));
        rows.push(total);
        let mut widths = vec![3.0];
        widths.extend(index.iter().map(|_| 1.0));
        blocks.push(Block::Table(Table { header, rows, widths }));
    }
    blocks.push(Block::Paragraph(format!(
        "说明：第一部分为各单位报送的月报（{PLAN}）；第二部分为本系统按月统计的记录（同 GET /v1/stats）。生成时间 {}。",
        readable(r.generated_at)
    )));
    xj_print::Doc {
        title: format!("行政执法工作月报汇总 {}", r.month),
        landscape: true,
        blocks,
        footer: format!("xianjie 月报汇总 {}", r.month),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).expect("a time")
    }

    fn clock(status: &str) -> Clock {
        Clock {
            id: "monthly_report:2026-11:qh-market".into(),
            name: CLOCK.into(),
            basis: String::new(),
            about: "RPT-990101-2026-11".into(),
            about_sender: "hub".into(),
            owner: "qh-market".into(),
            supervisors: vec!["qh-justice".into()],
            unit: "calendar_days".into(),
            amount: 10,
            started_at: t("2026-12-01T00:00:00+08:00"),
            due: t("2026-12-10T23:59:59+08:00"),
            remind_at: None,
            status: status.into(),
            closed_at: None,
            closed_by: None,
            extended: false,
            dispute: None,
        }
    }

    fn report(at: &str) -> Reported {
        Reported { msg_id: "MR-1".into(), at: t(at), figures: BTreeMap::new() }
    }

    #[test]
    fn the_status_follows_the_clock_and_the_report() {
        let due = t("2026-12-10T23:59:59+08:00");
        let before = t("2026-12-05T10:00:00+08:00");
        let after = t("2026-12-11T00:01:00+08:00");
        let early = report("2026-11-27T10:00:00+08:00");
        let late = report("2026-12-11T09:00:00+08:00");
        assert_eq!(status_of(Some(&clock("met")), Some(&early), due, after), Status::OnTime);
        assert_eq!(status_of(Some(&clock("late")), Some(&late), due, after), Status::Late);
        // An overdue clock stays overdue when the report comes after it.
        assert_eq!(status_of(Some(&clock("overdue")), Some(&late), due, after), Status::Late);
        assert_eq!(status_of(Some(&clock("overdue")), None, due, after), Status::Overdue);
        assert_eq!(status_of(Some(&clock("running")), None, due, before), Status::Pending);
        assert_eq!(status_of(Some(&clock("reminded")), None, due, before), Status::Pending);
        assert_eq!(status_of(Some(&clock("reminded")), None, due, after), Status::Missing);
        // Before the month's clocks exist: by the report's time, or not open.
        assert_eq!(status_of(None, Some(&early), due, before), Status::OnTime);
        assert_eq!(status_of(None, None, due, before), Status::NotOpen);
        assert_eq!(status_of(None, None, due, after), Status::Missing);
    }

    #[test]
    fn the_due_time_is_the_end_of_the_day_in_china() {
        let first = parse_month("2026-11").expect("a month");
        assert_eq!(due_of(first, 10).map(local).as_deref(), Some("2026-12-10T23:59:59+08:00"));
        let dec = parse_month("2026-12").expect("a month");
        assert_eq!(due_of(dec, 10).map(local).as_deref(), Some("2027-01-10T23:59:59+08:00"));
        assert_eq!(due_of(first, 10).map(readable).as_deref(), Some("2026-12-10 24:00"));
    }

    #[test]
    fn months_are_exactly_yyyy_mm() {
        assert!(parse_month("2026-11").is_some());
        for bad in ["2026-1", "2026-13", "2026-11-01", "26-11", "november", "", "2026-00"] {
            assert!(parse_month(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn the_format_comes_from_accept_by_preference() {
        assert_eq!(Format::negotiate(None), Format::Json);
        assert_eq!(Format::negotiate(Some("text/html")), Format::Json);
        assert_eq!(Format::negotiate(Some("text/csv")), Format::Csv);
        assert_eq!(Format::negotiate(Some(XLSX)), Format::Xlsx);
        assert_eq!(Format::negotiate(Some("application/json;q=0.5, text/csv")), Format::Csv);
        assert_eq!(Format::negotiate(Some("text/csv;q=0, application/json")), Format::Json);
        assert_eq!(Format::negotiate(Some(&format!("{XLSX}, text/csv"))), Format::Xlsx);
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        assert_eq!(field("清河县市场监督管理局"), "清河县市场监督管理局");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn sums_stay_whole_unless_a_figure_has_decimals() {
        let row = |figures: Vec<Option<Number>>| Row {
            org: "o".into(),
            name: "o".into(),
            kind: OrgKind::Health,
            status: Status::OnTime,
            clock_status: None,
            reported_at: None,
            message_id: None,
            figures,
            hub: vec![1; FIELDS.len()],
        };
        let c = County {
            county: "990101".into(),
            case: "RPT-990101-2026-11".into(),
            due: None,
            rows: vec![
                row(vec![Some(3.into()), Number::from_f64(1.5)]),
                row(vec![Some(4.into()), None]),
                row(vec![None, Number::from_f64(2.0)]),
            ],
        };
        assert_eq!(c.figure_total(0).to_string(), "7");
        assert_eq!(c.figure_total(1).as_f64(), Some(3.5));
        assert_eq!(c.hub_total(0), 3);
    }
}
