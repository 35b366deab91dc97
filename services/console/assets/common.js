// What the operator console (app.js) and the organisations' workspace
// (workspace.js) both show: the names of message types, steps and clocks,
// and how text and times are written. Loaded before either page's script.
'use strict';

const TYPES = {
  clue_referral: ['线索移送', 'Clue referral'], case_referral: ['案件移送', 'Case referral'], referral_reply: ['移送回复', 'Referral reply'],
  referral_outcome: ['办理结果', 'Referral outcome'], criminal_handoff: ['涉刑移送', 'Criminal hand-off'], handoff_receipt: ['移送回执', 'Hand-off receipt'],
  police_decision: ['公安立案决定', 'Police decision'], reconsideration_request: ['复议申请', 'Reconsideration request'],
  reconsideration_decision: ['复议决定', 'Reconsideration decision'], info_share: ['信息共享', 'Information share'],
  assistance_request: ['协助请求', 'Assistance request'], assistance_reply: ['协助答复', 'Assistance reply'],
  jurisdiction_designation: ['指定管辖', 'Jurisdiction designation'], supervision_alert: ['监督提醒', 'Supervision alert'],
  supervision_notice: ['监督文书', 'Supervision notice'], supervision_reply: ['监督回复', 'Supervision reply'],
  monthly_report: ['执法工作月报', 'Monthly report'], complaint_update: ['投诉转办告知', 'Complaint update'],
};
const STEPS = {
  accepted: ['已接收', 'accepted'], routed: ['已路由', 'routed'], unplaced: ['待定管辖', 'unplaced'], attempt: ['投递失败，将重试', 'attempt failed, retrying'],
  retrying: ['重试中', 'retrying'], waiting: ['排队等待', 'waiting in line'], delivered: ['已投递', 'delivered'], dead: ['死信', 'dead letter'], replayed: ['已重放', 'replayed'],
  case_record_full: ['案卷超限未记入', 'not recorded: case record full'], receipted: ['已签收（签名回执）', 'receipt signed'],
  running: ['计时中', 'running'], reminded: ['已提醒', 'reminded'], met: ['按时', 'met'], late: ['逾期办结', 'late'], overdue: ['已逾期', 'overdue'],
  lapsed: ['已失效', 'lapsed'], escalated: ['已升级', 'escalated'], cancelled: ['已取消', 'cancelled'], ok: ['正常', 'ok'],
  degraded: ['有失败', 'degraded'], failing: ['异常', 'failing'], clock_started: ['时限开始', 'clock started'],
  clock_closed: ['时限结束', 'clock closed'], clock_overdue: ['时限届满未办', 'clock ended unanswered'],
  open: ['已立卷', 'open'], referred: ['已移送', 'referred'], declined: ['不予受理', 'declined'], disputed: ['管辖争议', 'disputed'],
  closed: ['已办结', 'closed'], designated: ['已指定管辖', 'designated'], handed_off: ['已移送公安', 'handed off'],
  received: ['公安已接收', 'received by police'], filed: ['已立案', 'filed'], not_filed: ['不予立案', 'not filed'],
  reconsideration: ['复议中', 'reconsideration'], transferred: ['已转移管辖', 'transferred'],
};
const CLOCKS = {
  referral_decision: ['立案决定', 'Decision on a referral'], referral_notice: ['书面告知', 'Written notice'],
  dispute_negotiation: ['管辖争议协商', 'Dispute negotiation'], coordination_decision: ['协调决定', 'Coordination decision'],
  handoff_approval: ['移送审批', 'Hand-off approval'], handoff_transfer: ['批准后移送', 'Hand-off transfer'],
  police_receipt: ['公安签收', 'Police receipt'], police_filing: ['公安立案决定', 'Police filing decision'],
  supplement_request: ['告知补正', 'Supplement request'], supplement: ['补正材料', 'Supplement'],
  reconsideration_window: ['申请复议期', 'Reconsideration window'], reconsideration_answer: ['复议答复', 'Reconsideration answer'],
  procuratorate_request: ['提请检察院', 'Request to the procuratorate'], seized_handover: ['涉案物品移交', 'Seized items handover'],
  assistance_reply: ['协助答复', 'Assistance reply'], joint_inspection_notice: ['联合检查通知', 'Joint inspection notice'],
  major_penalty_filing: ['重大处罚备案', 'Major penalty filing'],
  explain_not_filing: ['说明不立案理由', 'Explain not filing'], notify_filing: ['通知立案', 'Notice to file'],
  procuratorial_recommendation: ['检察建议回复', 'Reply to a procuratorial recommendation'],
  procuratorial_opinion: ['检察意见回复', 'Reply to a procuratorial opinion'],
  supervision_order: ['督办回复', 'Reply to a supervision order'], supervision_recommendation: ['监督建议回复', 'Reply to a supervision recommendation'],
  justice_coordination: ['司法局协调', 'Justice bureau coordination'], leadership_decision: ['领导小组决定', 'Leadership group decision'],
  monthly_report: ['执法工作月报', 'Monthly report'], court_acceptance: ['法院受理', 'Court acceptance'],
  court_ruling: ['法院裁定', 'Court ruling'], inbox_collection: ['签收投递', 'Collecting a delivery'],
};

function esc(v) {
  return String(v == null ? '' : v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}
function when(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return esc(iso);
  const p = (n) => String(n).padStart(2, '0');
  // China time, whatever the browser's zone.
  const c = new Date(d.getTime() + 8 * 3600e3);
  return `${c.getUTCFullYear()}-${p(c.getUTCMonth() + 1)}-${p(c.getUTCDate())} ${p(c.getUTCHours())}:${p(c.getUTCMinutes())}:${p(c.getUTCSeconds())}`;
}
