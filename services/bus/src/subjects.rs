//! Subject and stream names: the bus's public map.
//!
//! | stream        | subjects                                  | written by          | read by            |
//! |---------------|-------------------------------------------|---------------------|--------------------|
//! | `XJ_IN`       | `xj.in.<org>`                             | NATS-native orgs    | gateway (intake)   |
//! | `XJ_ACCEPTED` | `xj.accepted.<sender>.<msg>` (one message each) | gateway, tracker¹ | router, ledger, traces |
//! | `XJ_ROUTED`   | `xj.routed.<recipient>`                   | router, replay, tracker² | courier       |
//! | `XJ_OUT`      | `xj.out.<org>`                            | courier             | NATS-native orgs   |
//! | `XJ_INBOX`    | `xj.inbox.<org>`                          | courier             | gateway (`GET /v1/inbox`) |
//! | `XJ_DEAD`     | `xj.dead.<org>`                           | courier             | operators (replay) |
//! | `XJ_EVENTS`   | `xj.evt.<sender>.<msg>.<step>`            | every service       | tracker, ledger, traces |
//!
//! ¹ automatic police receipts; ² alerts. The buckets and who writes each:
//! docs/architecture.md.

pub const STREAM_IN: &str = "XJ_IN";
/// The object store of signed submissions as their organisations sent
/// them, by SHA-256 (named by `Xj-Submitted-Sha256` on the accepted message).
pub const BUCKET_SUBMISSIONS: &str = "xj_submissions";
pub const STREAM_ACCEPTED: &str = "XJ_ACCEPTED";
pub const STREAM_ROUTED: &str = "XJ_ROUTED";
pub const STREAM_OUT: &str = "XJ_OUT";
/// Deliveries waiting for their pull organisation; kept until collected.
pub const STREAM_INBOX: &str = "XJ_INBOX";
pub const STREAM_DEAD: &str = "XJ_DEAD";
pub const STREAM_EVENTS: &str = "XJ_EVENTS";

/// Where each message went: `<recipient>.<msg>` → [{sender, case}]; lets a
/// reply find its thread long after the routed stream has moved on.
pub const KV_ROUTES: &str = "xj_routes";
/// Case records kept by the tracker.
pub const KV_CASES: &str = "xj_cases";
/// Who is party to a case, written before the gateway answers and before a
/// copy leaves (`crate::parties`).
pub const KV_PARTIES: &str = "xj_parties";
/// Each party's administrative penalties the hub carried: `<party>` → list.
pub const KV_PENALTIES: &str = "xj_penalties";
/// Criminal thresholds met and hand-offs made, by party and matter
/// (`<party>.<matter>`), for the 以罚代刑 alarm across cases.
pub const KV_CRIMES: &str = "xj_crimes";
/// Who first opened a case on a party and matter: `<party>.<matter>`.
pub const KV_HOLDERS: &str = "xj_holders";
/// The hub's time in manual clock mode (`now`), and monthly statistics.
pub const KV_CLOCK: &str = "xj_clock";
pub const KV_STATS: &str = "xj_stats";
/// Control requests to every service instance (core NATS, not stored).
pub const CTL_RELOAD: &str = "xj.ctl.reload";

pub fn inbound(org: &str) -> String {
    format!("xj.in.{org}")
}
/// One subject per accepted message: `XJ_ACCEPTED` keeps one message a
/// subject and refuses a second (`discard_new_per_subject`), so storing
/// the message is claiming its id — no claim of its own is written.
pub fn accepted(sender: &str, msg_id: &str) -> String {
    format!("xj.accepted.{sender}.{}", token(msg_id))
}
/// Every accepted message with one id, whoever sent it.
pub fn accepted_of(msg_id: &str) -> String {
    format!("xj.accepted.*.{}", token(msg_id))
}
pub fn routed(recipient: &str) -> String {
    format!("xj.routed.{recipient}")
}
pub fn outbox(org: &str) -> String {
    format!("xj.out.{org}")
}

/// Where a pull organisation's deliveries wait for `GET /v1/inbox`.
pub fn inbox(org: &str) -> String {
    format!("xj.inbox.{org}")
}
pub fn dead(org: &str) -> String {
    format!("xj.dead.{org}")
}
pub fn event(sender: &str, msg_id: &str, step: &str) -> String {
    format!("xj.evt.{sender}.{}.{step}", token(msg_id))
}
/// Every event about one message id, whoever sent it.
pub fn events_of(msg_id: &str) -> String {
    format!("xj.evt.*.{}.>", token(msg_id))
}

/// Makes a message id (`[A-Za-z0-9._:-]`) one subject token and one KV key
/// token: `.` and `:` (and anything else unexpected) become `=XX`.
pub fn token(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Inverse of [`token`].
pub fn untoken(tok: &str) -> String {
    let bytes = tok.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&tok[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// KV key of a message id for one org.
pub fn key(org: &str, msg_id: &str) -> String {
    format!("{org}.{}", token(msg_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_stay_one_token() {
        for id in ["MR-2026-000123", "a.b:c", "x_y-z.1", "..", "::"] {
            let t = token(id);
            assert!(!t.contains('.') && !t.contains(':'), "{t}");
            assert_eq!(untoken(&t), id);
        }
    }
}
