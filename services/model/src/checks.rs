//! Checks no JSON Schema can express: check characters, region codes,
//! distinct officers, dates that exist and are not in the future.

use chrono::{Duration, NaiveDate, Utc};
use serde_json::Value;

use crate::{IdNo, MessageType, Problem, RegionCode, Uscc};

/// Semantic checks of a body that already passed its schema.
pub fn body(kind: MessageType, body: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(party) = body.get("party") {
        party_ids(party, "/body/party", &mut out);
    }
    for field in ["region"] {
        if let Some(code) = body.get(field).and_then(Value::as_str) {
            region(code, &format!("/body/{field}"), &mut out);
        }
    }
    if let Some(code) = body.pointer("/location/region").and_then(Value::as_str) {
        region(code, "/body/location/region", &mut out);
    }
    if let Some(officers) = body.get("officers").and_then(Value::as_array) {
        distinct_officers(officers, &mut out);
    }
    // A date in the future is a typo, not a plan; one day of slack covers
    // systems whose clocks sit in another time zone.
    let latest = (Utc::now() + Duration::days(1)).date_naive();
    for field in ["found_on", "filed_on", "approved_on", "reported_on", "closed_on", "decided_on"] {
        if let Some(s) = body.get(field).and_then(Value::as_str) {
            match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                Ok(d) if d > latest => out.push(Problem::new(format!("/body/{field}"), "date is in the future")),
                Ok(_) => {}
                Err(_) => out.push(Problem::new(format!("/body/{field}"), "not a calendar date (YYYY-MM-DD)")),
            }
        }
    }
    if kind == MessageType::CriminalHandoff
        && let (Some(rep), Some(app)) = (date(body, "reported_on"), date(body, "approved_on"))
        && app < rep
    {
        out.push(Problem::new("/body/approved_on", "approval cannot precede the officers' report (Decree 310 art. 5)"));
    }
    out
}

fn date(body: &Value, field: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(body.get(field)?.as_str()?, "%Y-%m-%d").ok()
}

fn party_ids(party: &Value, at: &str, out: &mut Vec<Problem>) {
    if let Some(code) = party.get("uscc").and_then(Value::as_str)
        && let Err(e) = Uscc::parse(code)
    {
        out.push(Problem::new(format!("{at}/uscc"), format!("not a valid unified social credit code: {e}")));
    }
    if let Some(code) = party.get("id_no").and_then(Value::as_str)
        && let Err(e) = IdNo::parse(code)
    {
        out.push(Problem::new(format!("{at}/id_no"), format!("not a valid resident ID number: {e}")));
    }
}

fn region(code: &str, at: &str, out: &mut Vec<Problem>) {
    if let Err(e) = RegionCode::parse(code) {
        out.push(Problem::new(at, format!("not a GB/T 2260 county or town code: {e}")));
    }
}

fn distinct_officers(officers: &[Value], out: &mut Vec<Problem>) {
    // A set: a submission may list tens of thousands of officers, and
    // comparing each with every earlier one took seconds.
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, o) in officers.iter().enumerate() {
        if let Some(cert) = o.get("cert_no").and_then(Value::as_str)
            && !seen.insert(cert)
        {
            out.push(Problem::new(
                format!("/body/officers/{i}/cert_no"),
                "the same officer is listed twice: a transfer needs two different officers",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A repeat at the end of 200,000 officers is found, once, in a single
    /// pass (comparing each officer with every earlier one would take
    /// minutes here).
    #[test]
    fn a_repeated_officer_among_many_is_found_in_one_pass() {
        let mut officers: Vec<Value> =
            (0..200_000).map(|i| serde_json::json!({ "name": "张三", "cert_no": format!("C{i}") })).collect();
        officers.push(serde_json::json!({ "name": "李四", "cert_no": "C7" }));
        let mut out = Vec::new();
        distinct_officers(&officers, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].pointer, "/body/officers/200000/cert_no");
    }
}
