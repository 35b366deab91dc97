//! One value on its way in or out: code tables, date and time patterns in
//! the format's zone, units, and types. Each step is the exact inverse of
//! the other direction, so a value survives a round trip.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone};
use serde_json::{Number, Value};

use crate::format::{Field, Format};
use crate::spec::ValueType;

/// A native value as text (numbers and booleans as JSON writes them).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_string(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A JSON number, integral when it is a whole number (so `1200` and
/// `0.12 × 10000` compare equal), rounded to 6 decimals against float noise.
pub fn number(x: f64) -> Option<Value> {
    if !x.is_finite() {
        return None;
    }
    let r = (x * 1e6).round() / 1e6;
    if r.fract() == 0.0 && r.abs() < 9.0e15 {
        return Some(Value::Number(Number::from(r as i64)));
    }
    Number::from_f64(r).map(Value::Number)
}

fn parse_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().replace(',', "").parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().and_then(|i| match i {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }),
        Value::String(s) => match s.trim() {
            "true" | "1" | "是" | "Y" | "y" => Some(true),
            "false" | "0" | "否" | "N" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Native → canonical.
pub fn inbound(f: &Field, fmt: &Format, raw: &Value) -> Result<Value, String> {
    let s = text(raw);
    if let Some(table) = &f.codes {
        let codes = fmt.codes.get(table).ok_or_else(|| format!("no code table {table:?}"))?;
        return codes.get(&s).cloned().ok_or_else(|| {
            let known: Vec<&str> = codes.keys().map(String::as_str).take(12).collect();
            format!("{s:?} is not a code of table {table} (known: {})", known.join(", "))
        });
    }
    if let Some(p) = &f.date {
        let d =
            NaiveDate::parse_from_str(&s, p).map_err(|_| format!("{s:?} is not a date in the form {}", human(p)))?;
        return Ok(Value::String(d.format("%Y-%m-%d").to_string()));
    }
    if let Some(p) = &f.datetime {
        let local = NaiveDateTime::parse_from_str(&s, p)
            .or_else(|_| NaiveDate::parse_from_str(&s, p).map(|d| d.and_time(chrono::NaiveTime::MIN)))
            .map_err(|_| format!("{s:?} is not a date and time in the form {}", human(p)))?;
        let at = fmt
            .zone
            .from_local_datetime(&local)
            .single()
            .ok_or_else(|| format!("{s:?} does not exist in zone {}", fmt.zone))?;
        return Ok(Value::String(at.to_rfc3339_opts(SecondsFormat::Secs, false)));
    }
    if f.scale.is_some() || f.kind == Some(ValueType::Number) {
        let x = parse_number(raw).ok_or_else(|| format!("{s:?} is not a number"))?;
        return number(x * f.scale.unwrap_or(1.0)).ok_or_else(|| format!("{s:?} is out of range"));
    }
    match f.kind {
        Some(ValueType::Integer) => {
            let x = parse_number(raw).filter(|x| x.fract() == 0.0 && x.abs() < 9.0e15);
            x.map(|x| Value::Number(Number::from(x as i64))).ok_or_else(|| format!("{s:?} is not a whole number"))
        }
        Some(ValueType::Bool) => parse_bool(raw).map(Value::Bool).ok_or_else(|| format!("{s:?} is not yes or no")),
        _ => Ok(Value::String(s)),
    }
}

/// Canonical → native. The error says why the value has no native form.
pub fn outbound(f: &Field, fmt: &Format, v: &Value) -> Result<Value, String> {
    let native = if let Some(table) = &f.codes {
        let codes = fmt.codes.get(table).ok_or_else(|| format!("no code table {table:?}"))?;
        let code = codes.iter().find(|(_, c)| *c == v).map(|(k, _)| k.clone());
        Value::String(code.ok_or_else(|| format!("{v} has no code in table {table}"))?)
    } else if let Some(p) = &f.date {
        let s = v.as_str().unwrap_or_default();
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{v} is not an ISO date"))?;
        Value::String(d.format(p).to_string())
    } else if let Some(p) = &f.datetime {
        let s = v.as_str().unwrap_or_default();
        let at = DateTime::parse_from_rfc3339(s).map_err(|_| format!("{v} is not an RFC 3339 date-time"))?;
        Value::String(at.with_timezone(&fmt.zone).format(p).to_string())
    } else if let Some(scale) = f.scale {
        let x = parse_number(v).ok_or_else(|| format!("{v} is not a number"))?;
        number(x / scale).ok_or_else(|| format!("{v} is out of range"))?
    } else {
        v.clone()
    };
    Ok(match f.native_type {
        Some(ValueType::String) => Value::String(text(&native)),
        Some(ValueType::Number) | Some(ValueType::Integer) => {
            parse_number(&native).and_then(number).ok_or_else(|| format!("{v} is not a number"))?
        }
        Some(ValueType::Bool) => Value::Bool(parse_bool(&native).ok_or_else(|| format!("{v} is not yes or no"))?),
        None => native,
    })
}

/// `%Y%m%d` → `yyyyMMdd`, for messages to the people who write documents.
fn human(p: &str) -> String {
    p.replace("%Y", "yyyy")
        .replace("%m", "MM")
        .replace("%d", "dd")
        .replace("%H", "HH")
        .replace("%M", "mm")
        .replace("%S", "ss")
        .replace("%%", "%")
}
