//! The statutory clocks (docs/clocks.md): what each one is, its basis, its
//! length in hours, calendar days or working days (distinct types), whom it
//! answers to, and what happens when it ends.

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Utc};
use xj_bus::records::Clock;
use xj_config::{OrgKind, Settings};

use crate::calendar::Calendar;

/// A clock's length. Days (日) are counted as the law counts a period: the
/// day of the event is not counted, the period ends at 24:00 (+08:00) of
/// its last day, and a last day that is a rest day or public holiday moves
/// to the next working day (刑事诉讼法 art. 105; 民法典 arts. 201, 203).
/// Working days (工作日) count only working days and end at 24:00 of the
/// last one. Hours are hours from the event (docs/clocks.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    Hours(i64),
    CalendarDays(i64),
    WorkingDays(i64),
    /// 月: to the same day of the month `n` months on (the month's last day
    /// when it has no such day), moved off a rest day like days are
    /// (民法典 arts. 202, 203).
    Months(u32),
}

pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).expect("valid offset")
}

impl Span {
    pub fn due(self, start: DateTime<Utc>, cal: &Calendar) -> DateTime<Utc> {
        match self {
            Self::Hours(h) => start + Duration::hours(h),
            Self::CalendarDays(d) => {
                let mut last = start.with_timezone(&china()).date_naive() + Duration::days(d);
                while !cal.is_working_day(last) {
                    last = last.succ_opt().unwrap_or(last);
                }
                end_of_day(last)
            }
            Self::WorkingDays(n) => {
                let day = cal.add_working_days(start.with_timezone(&china()).date_naive(), n);
                end_of_day(day)
            }
            Self::Months(n) => {
                let from = start.with_timezone(&china()).date_naive();
                let mut last = from.checked_add_months(chrono::Months::new(n)).unwrap_or(from);
                while !cal.is_working_day(last) {
                    last = last.succ_opt().unwrap_or(last);
                }
                end_of_day(last)
            }
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Self::Hours(_) => "hours",
            Self::CalendarDays(_) => "calendar_days",
            Self::WorkingDays(_) => "working_days",
            Self::Months(_) => "months",
        }
    }

    pub fn amount(self) -> i64 {
        match self {
            Self::Hours(n) | Self::CalendarDays(n) | Self::WorkingDays(n) => n,
            Self::Months(n) => i64::from(n),
        }
    }
}

/// The last instant of a day in China.
pub fn end_of_day(day: chrono::NaiveDate) -> DateTime<Utc> {
    let t = day.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("valid time"));
    china().from_local_datetime(&t).single().map(|d| d.with_timezone(&Utc)).unwrap_or_else(Utc::now)
}

/// What the end of a clock means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpiry {
    /// A duty not done: `overdue` to the owner and the supervisor.
    Overdue,
    /// A right not used: the clock lapses quietly.
    Lapse,
    /// A dispute not settled: it goes up a level.
    Escalate,
}

pub struct Def {
    pub basis: String,
    pub span: Span,
    pub supervisor: OrgKind,
    pub on_expiry: OnExpiry,
}

/// Declares the clock names once: the enum, its wire names, and the list
/// of all of them (which the docs check walks, so a clock added here and
/// not described in docs/clocks.md fails the tests).
macro_rules! clock_names {
    ($($variant:ident = $wire:literal),* $(,)?) => {
        /// A statutory clock the tracker runs (docs/clocks.md).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ClockName {
            $($variant),*
        }

        impl ClockName {
            pub const ALL: &'static [ClockName] = &[$(ClockName::$variant),*];

            /// The name on the wire: in case records, alerts and docs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ClockName::$variant => $wire),*
                }
            }

            pub fn parse(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some(ClockName::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

clock_names! {
    ReferralDecision = "referral_decision",
    ReferralNotice = "referral_notice",
    DisputeNegotiation = "dispute_negotiation",
    CoordinationDecision = "coordination_decision",
    HandoffApproval = "handoff_approval",
    HandoffTransfer = "handoff_transfer",
    PoliceReceipt = "police_receipt",
    PoliceFiling = "police_filing",
    SupplementRequest = "supplement_request",
    Supplement = "supplement",
    ReconsiderationWindow = "reconsideration_window",
    ReconsiderationAnswer = "reconsideration_answer",
    ProcuratorateRequest = "procuratorate_request",
    SeizedHandover = "seized_handover",
    AssistanceReply = "assistance_reply",
    JointInspectionNotice = "joint_inspection_notice",
    MajorPenaltyFiling = "major_penalty_filing",
    ExplainNotFiling = "explain_not_filing",
    NotifyFiling = "notify_filing",
    ProcuratorialRecommendation = "procuratorial_recommendation",
    ProcuratorialOpinion = "procuratorial_opinion",
    SupervisionOrder = "supervision_order",
    SupervisionRecommendation = "supervision_recommendation",
    JusticeCoordination = "justice_coordination",
    LeadershipDecision = "leadership_decision",
    MonthlyReport = "monthly_report",
    CourtAcceptance = "court_acceptance",
    CourtRuling = "court_ruling",
    InboxCollection = "inbox_collection",
}

/// The clock of each step of a dispute path.
pub fn dispute_clock(holder: xj_config::DisputeHolder) -> ClockName {
    use xj_config::DisputeHolder as H;
    match holder {
        H::Negotiation => ClockName::DisputeNegotiation,
        H::CoordinationOffice => ClockName::CoordinationDecision,
        H::JusticeBureau => ClockName::JusticeCoordination,
        H::LeadershipGroup => ClockName::LeadershipDecision,
    }
}

/// Every clock a dispute step may have: a designation or an acceptance
/// ends them all.
pub const DISPUTE: [ClockName; 4] = [
    ClockName::DisputeNegotiation,
    ClockName::CoordinationDecision,
    ClockName::JusticeCoordination,
    ClockName::LeadershipDecision,
];

/// The clocks a `supervision_notice` starts, one per kind of notice (the
/// clock has the kind's name); a `supervision_reply` closes them.
pub const SUPERVISION: [ClockName; 6] = [
    ClockName::ExplainNotFiling,
    ClockName::NotifyFiling,
    ClockName::ProcuratorialRecommendation,
    ClockName::ProcuratorialOpinion,
    ClockName::SupervisionOrder,
    ClockName::SupervisionRecommendation,
];

impl std::fmt::Display for ClockName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored clock's name compared with a typed one.
impl PartialEq<ClockName> for String {
    fn eq(&self, other: &ClockName) -> bool {
        self == other.as_str()
    }
}

const D310: &str = "《行政执法机关移送涉嫌犯罪案件的规定》";
/// The county's own documents the county-practice clocks come from (their
/// texts and what the hub takes from each: docs/clocks.md).
const COUNTY_COORDINATION: &str = "《县“大综合一体化”行政执法统筹协调指挥工作机制实施意见》";
const TOWN_COUNTY: &str = "《关于加强乡（镇、街道）与县级行政执法部门协调协作的指导意见》";
const SUPERVISION_PLAN: &str = "《县行政执法协调监督工作方案》";
const POLICE_RULES: &str = "《公安机关办理刑事案件程序规定》";
const PROCURATORATE_RULES: &str = "《人民检察院刑事诉讼规则》";

pub fn def(name: ClockName, settings: &Settings) -> Def {
    let c = &settings.clock;
    let (basis, span, supervisor, on_expiry): (String, Span, OrgKind, OnExpiry) = match name {
        ClockName::ReferralDecision => (
            format!("接收机关5个工作日内决定是否立案（{COUNTY_COORDINATION}二、6 实施案件移送抄告）"),
            Span::WorkingDays(5),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::ReferralNotice => (
            format!("决定后2个工作日内书面告知移送机关（{COUNTY_COORDINATION}二、6 实施案件移送抄告）"),
            Span::WorkingDays(2),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::DisputeNegotiation => (
            format!(
                "管辖争议先行协商，协商不成报请协调、指定管辖（{COUNTY_COORDINATION}二、10 健全争议协调机制；{TOWN_COUNTY}二、（二）3 异议处理）"
            ),
            Span::WorkingDays(c.negotiation_working_days),
            OrgKind::JusticeBureau,
            OnExpiry::Escalate,
        ),
        ClockName::CoordinationDecision => (
            format!(
                "乡镇与县级行政执法部门对执法职责有争议的，由县综合行政执法指导机构协调处理；协调不成的，报综合行政执法改革领导小组裁定（{COUNTY_COORDINATION}二、10 健全争议协调机制）"
            ),
            Span::WorkingDays(c.coordination_working_days),
            OrgKind::JusticeBureau,
            OnExpiry::Escalate,
        ),
        ClockName::MonthlyReport => (
            format!(
                "各行政执法单位于次月{}日前向县司法局报送上月行政执法工作月报（{SUPERVISION_PLAN}：行政执法信息月报制度）",
                settings.report.due_day
            ),
            Span::CalendarDays(i64::from(settings.report.due_day)),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::CourtAcceptance => (
            "《行政强制法》第五十六条：人民法院接到行政机关强制执行的申请，应当在五日内受理".into(),
            Span::CalendarDays(5),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::CourtRuling => (
            "《行政强制法》第五十七条：人民法院对行政机关强制执行的申请进行书面审查，应当自受理之日起七日内作出执行裁定（需要听取意见的，第五十八条：三十日内作出是否执行的裁定）".into(),
            Span::CalendarDays(7),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::InboxCollection => (
            format!(
                "以拉取方式接收的机关应及时签收送达的文书（法律未规定期限，本系统按 [org.deliver] pull_alert_hours 配置；参照{COUNTY_COORDINATION}二、6 实施案件移送抄告）"
            ),
            Span::Hours(24),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::JusticeCoordination => (
            format!(
                "部门间争议协商不成的，由司法行政部门牵头，会同纪检监察机关、编制部门、综合行政执法指导机构协调；协调不成的，报综合行政执法改革领导小组裁定（{COUNTY_COORDINATION}二、10 健全争议协调机制）"
            ),
            Span::WorkingDays(c.coordination_working_days),
            OrgKind::LeadershipGroup,
            OnExpiry::Escalate,
        ),
        ClockName::LeadershipDecision => (
            format!(
                "协调不成的，报综合行政执法改革领导小组裁定（{COUNTY_COORDINATION}二、10 健全争议协调机制；期限未作规定，本系统按配置）"
            ),
            Span::WorkingDays(c.coordination_working_days),
            OrgKind::JusticeBureau,
            OnExpiry::Escalate,
        ),
        ClockName::HandoffApproval => (
            format!("{D310}第五条：负责人自接到报告之日起3日内作出批准移送或者不批准移送的决定"),
            Span::CalendarDays(3),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::HandoffTransfer => (
            format!("{D310}第五条：决定批准的，应当在24小时内向同级公安机关移送"),
            Span::Hours(24),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::PoliceReceipt => (
            format!("{D310}第七条：公安机关在回执上签字；不属于本机关管辖的，24小时内移送主管机关"),
            Span::Hours(24),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::PoliceFiling => (
            format!("{D310}第八条：自接受案件之日起3日内作出立案或者不予立案的决定"),
            Span::CalendarDays(3),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::SupplementRequest => (
            "《公安机关办理刑事案件程序规定》第一百八十条：材料不全的，24小时内书面告知移送机关补正".into(),
            Span::Hours(24),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::Supplement => (
            "《公安机关办理刑事案件程序规定》第一百八十条：移送机关3日内补正".into(),
            Span::CalendarDays(3),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::ReconsiderationWindow => (
            format!("{D310}第九条：自接到不予立案通知书之日起3日内可以提请复议"),
            Span::CalendarDays(3),
            OrgKind::Procuratorate,
            OnExpiry::Lapse,
        ),
        ClockName::ReconsiderationAnswer => (
            format!("{D310}第九条：公安机关应当自收到提请复议的文件之日起3日内作出复议决定"),
            Span::CalendarDays(3),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::ProcuratorateRequest => (
            format!("{D310}第九条：对复议决定仍有异议的，自收到复议决定之日起3日内建议人民检察院立案监督"),
            Span::CalendarDays(3),
            OrgKind::Procuratorate,
            OnExpiry::Lapse,
        ),
        ClockName::SeizedHandover => (
            format!("{D310}第十二条：公安机关决定立案的，移送机关3日内移交涉案物品以及与案件有关的其他材料"),
            Span::CalendarDays(3),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::AssistanceReply => (
            format!(
                "执法协助：被请求机关5个工作日内答复，情况复杂的可延长5个工作日（{COUNTY_COORDINATION}二、5 加强部门执法协作；{TOWN_COUNTY}二、（四）未定期限，本系统一并适用）"
            ),
            Span::WorkingDays(5),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::JointInspectionNotice => (
            format!("联合检查：至少提前1个工作日通知参加机关（{COUNTY_COORDINATION}二、5 加强部门执法协作）"),
            Span::WorkingDays(1),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::MajorPenaltyFiling => (
            format!(
                "重大行政处罚决定之日起{}日内报司法局备案（{SUPERVISION_PLAN}（十二）落实重大行政处罚备案制度）",
                settings.major_penalty.file_within_days
            ),
            Span::CalendarDays(i64::from(settings.major_penalty.file_within_days)),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::ExplainNotFiling => (
            format!(
                "《刑事诉讼法》第一百一十三条；{POLICE_RULES}：公安机关应当在收到要求说明不立案理由通知书后7日内书面说明理由"
            ),
            Span::CalendarDays(7),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::NotifyFiling => (
            format!(
                "《刑事诉讼法》第一百一十三条；{POLICE_RULES}：公安机关应当在收到通知立案书后15日内立案，并将立案决定书送达人民检察院"
            ),
            Span::CalendarDays(15),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::ProcuratorialRecommendation => (
            "《人民检察院检察建议工作规定》：被建议单位在收到检察建议书后2个月内书面回复办理情况".into(),
            Span::Months(2),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::ProcuratorialOpinion => (
            format!(
                "{PROCURATORATE_RULES}第三百七十三条：不起诉后需给予行政处罚的，有关主管机关在2个月内回复处理情况（行刑反向衔接）"
            ),
            Span::Months(2),
            OrgKind::Procuratorate,
            OnExpiry::Overdue,
        ),
        ClockName::SupervisionOrder => (
            format!(
                "行政执法监督督办：{}个工作日内书面回复（{COUNTY_COORDINATION}二、12 完善监督评议机制；法律未规定期限，本系统按配置）",
                c.supervision_working_days
            ),
            Span::WorkingDays(c.supervision_working_days),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
        ClockName::SupervisionRecommendation => (
            format!(
                "行政执法监督书面建议：{}个工作日内书面回复（{COUNTY_COORDINATION}二、12 完善监督评议机制；法律未规定期限，本系统按配置）",
                c.supervision_working_days
            ),
            Span::WorkingDays(c.supervision_working_days),
            OrgKind::JusticeBureau,
            OnExpiry::Overdue,
        ),
    };
    Def { basis, span, supervisor, on_expiry }
}

/// The supervisors of `kind` in the owner's county.
pub fn supervisors(settings: &Settings, owner: &str, kind: OrgKind) -> Vec<String> {
    let county = settings.org(owner).map(|o| o.region[..6].to_string()).unwrap_or_default();
    settings.org.iter().filter(|o| o.kind == kind && o.region[..6] == *county).map(|o| o.id.clone()).collect()
}

/// Moves a clock's end, and its reminder with it.
pub fn set_due(c: &mut Clock, due: DateTime<Utc>, settings: &Settings) {
    c.due = due;
    let lead = Duration::hours(settings.clock.reminder_hours).min((due - c.started_at) / 3);
    c.remind_at = (lead > Duration::zero()).then(|| due - lead);
}

/// A new running clock.
pub fn start(
    settings: &Settings,
    cal: &Calendar,
    name: ClockName,
    about: (&str, &str),
    owner: &str,
    started_at: DateTime<Utc>,
) -> Clock {
    let d = def(name, settings);
    let due = d.span.due(started_at, cal);
    let lead = Duration::hours(settings.clock.reminder_hours).min((due - started_at) / 3);
    Clock {
        id: format!("{name}:{}", about.0),
        name: name.to_string(),
        basis: d.basis,
        about: about.0.to_string(),
        about_sender: about.1.to_string(),
        owner: owner.to_string(),
        supervisors: supervisors(settings, owner, d.supervisor),
        unit: d.span.unit().into(),
        amount: d.span.amount(),
        started_at,
        due,
        remind_at: (lead > Duration::zero()).then(|| due - lead),
        status: "running".into(),
        closed_at: None,
        closed_by: None,
        extended: false,
        dispute: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).expect("a time")
    }

    /// 日 as the law counts them: not the day of the event, to 24:00 of the
    /// last day, a last day off moved to the next working day.
    #[test]
    fn days_run_to_the_end_of_their_last_working_day() {
        let cal = Calendar::load(None).expect("calendar");
        // Tuesday 10:00 + 3 days: the end of Friday.
        assert_eq!(Span::CalendarDays(3).due(at("2026-11-03T10:00:00+08:00"), &cal), at("2026-11-06T23:59:59+08:00"));
        // Wednesday + 3 days ends on Saturday: moved to the end of Monday.
        assert_eq!(Span::CalendarDays(3).due(at("2026-11-04T23:30:00+08:00"), &cal), at("2026-11-09T23:59:59+08:00"));
        // Thursday before Mid-Autumn (25th–27th September 2026): Monday the 28th.
        assert_eq!(Span::CalendarDays(3).due(at("2026-09-24T10:00:00+08:00"), &cal), at("2026-09-28T23:59:59+08:00"));
        // A make-up working day (Saturday 10 October 2026) ends a period.
        assert_eq!(Span::CalendarDays(3).due(at("2026-10-07T09:00:00+08:00"), &cal), at("2026-10-10T23:59:59+08:00"));
        // The day is China's: 23:30 UTC on the 2nd is already the 3rd there.
        assert_eq!(Span::CalendarDays(1).due(at("2026-11-02T23:30:00Z"), &cal), at("2026-11-04T23:59:59+08:00"));
        // Months: to the same day (2 months from 31 July: 30 September,
        // the month having no 31st), moved off a rest day (31 October 2026
        // is a Saturday: Monday 2 November).
        assert_eq!(Span::Months(2).due(at("2026-07-31T10:00:00+08:00"), &cal), at("2026-09-30T23:59:59+08:00"));
        assert_eq!(Span::Months(2).due(at("2026-08-31T10:00:00+08:00"), &cal), at("2026-11-02T23:59:59+08:00"));
        // Hours stay hours.
        assert_eq!(Span::Hours(24).due(at("2026-09-24T10:00:00+08:00"), &cal), at("2026-09-25T10:00:00+08:00"));
    }
}
