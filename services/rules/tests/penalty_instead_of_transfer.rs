//! 以罚代刑 by party and matter, on a real nats-server: what the router
//! records (thresholds met, hand-offs) and what a later penalty decision is
//! judged against — the same party and matter within two years, whatever
//! case, and no hand-off since.

use std::sync::Arc;

use serde_json::{Value, json};
use xj_bus::Bus;
use xj_bus::embedded::{NatsServer, ServerOptions};
use xj_model::Envelope;
use xj_rules::knowledge::{penalty_instead_of_transfer, record_crime_met, record_handoff};

fn envelope(id: &str, kind: &str, sender: &str, uscc: &str, matter: &str, date: &str) -> Envelope {
    let body: Value = json!({
        "kind": "penalty_decision", "matter": matter, "found_on": date, "decided_on": date,
        "party": { "name": "某公司", "uscc": uscc },
    });
    serde_json::from_value(json!({
        "id": id, "type": kind, "sender": sender, "recipient": "qh-town-dg",
        "sent_at": format!("{date}T09:00:00+08:00"), "classification": "internal", "body": body,
    }))
    .expect("an envelope")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_penalty_is_judged_by_party_and_matter_within_two_years() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server =
        NatsServer::start(ServerOptions { store_dir: dir.path().join("js"), ..Default::default() }).expect("start");
    let settings = xj_config::load_str(include_str!("../../../deploy/sandbox.toml"), "sandbox").expect("sandbox");
    let bus = Bus::connect(&Arc::new(settings), &server.url()).await.expect("bus");
    let (a, b) = ("91990101MA00000A1X", "91990101MA00000B2Y");

    let met = envelope("REF-1", "case_referral", "qh-town-dg", a, "POLLUTION", "2026-03-01");
    record_crime_met(&bus, &met, "XJ-CASE-1").await.expect("recorded");
    record_crime_met(&bus, &met, "XJ-CASE-1").await.expect("a repeat is harmless");

    // Same party and matter, another case (or none), within two years: the alarm, naming REF-1.
    let fine = envelope("PEN-1", "info_share", "qh-eco", a, "POLLUTION", "2027-02-01");
    let earlier = penalty_instead_of_transfer(&bus, &fine).await.expect("judged").expect("an alarm");
    assert_eq!(
        (earlier.msg_id.as_str(), earlier.sender.as_str(), earlier.case.as_str()),
        ("REF-1", "qh-town-dg", "XJ-CASE-1")
    );
    // Another party, another matter, or more than two years on: none.
    for other in [
        envelope("PEN-2", "info_share", "qh-eco", b, "POLLUTION", "2027-02-01"),
        envelope("PEN-3", "info_share", "qh-eco", a, "ILLEGAL-MINING", "2027-02-01"),
        envelope("PEN-4", "info_share", "qh-eco", a, "POLLUTION", "2028-03-02"),
    ] {
        assert!(penalty_instead_of_transfer(&bus, &other).await.expect("judged").is_none(), "{}", other.id);
    }
    // A penalty that itself met the threshold is not its own earlier message.
    let alone = envelope("PEN-5", "info_share", "qh-eco", b, "POLLUTION", "2027-02-01");
    record_crime_met(&bus, &alone, "XJ-CASE-5").await.expect("recorded");
    assert!(penalty_instead_of_transfer(&bus, &alone).await.expect("judged").is_none());
    // Once the party and matter are handed off, a later penalty raises none.
    let handoff = envelope("HO-1", "criminal_handoff", "qh-eco", a, "POLLUTION", "2026-04-01");
    record_handoff(&bus, &handoff, "XJ-CASE-2").await.expect("recorded");
    assert!(penalty_instead_of_transfer(&bus, &fine).await.expect("judged").is_none());
}
