//! Personal data never reaches an operator's screen in full (docs/security.md):
//! resident ID numbers are masked wherever they appear, phone numbers keep
//! only their last four digits, and a natural person's name (a party with
//! an ID number) keeps only its first character. Businesses' names and
//! credit codes are public registration data and stay as they are.
//! Receivers' words (why a delivery failed) lose any credential they carry
//! and their control characters (`xj_edge::redact`).

use serde_json::Value;

/// Masks `v` in place.
pub fn personal(v: &mut Value) {
    xj_edge::redact::value(v);
    walk(v);
}

fn walk(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let natural = map.contains_key("id_no");
            for (k, x) in map.iter_mut() {
                match (k.as_str(), &mut *x) {
                    ("phone" | "mobile" | "tel", Value::String(s)) => *s = phone(s),
                    ("name", Value::String(s)) if natural => *s = name(s),
                    _ => walk(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(walk),
        _ => {}
    }
}

/// `0999-1234567` → `0999-***4567`: digits but the last four hidden, the
/// area code kept.
pub fn phone(s: &str) -> String {
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let (area, rest) = match s.split_once('-') {
        Some((a, r)) if a.len() <= 4 => (format!("{a}-"), r),
        _ => (String::new(), s),
    };
    let keep = 4.min(digits);
    let hidden = rest.chars().filter(char::is_ascii_digit).count().saturating_sub(keep);
    let tail: String =
        rest.chars().rev().filter(char::is_ascii_digit).take(keep).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{area}{}{tail}", "*".repeat(hidden.min(8)))
}

/// `张三丰` → `张**`.
pub fn name(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => format!("{first}{}", "*".repeat(c.count().clamp(1, 3))),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn people_are_masked_businesses_are_not() {
        let mut v = json!({
            "party": { "name": "王小明", "id_no": "11010519491231002X", "address": "x" },
            "other": { "name": "清河县某食品店", "uscc": "92990101MA0000001X" },
            "contact": { "name": "王五", "phone": "0999-1234567" },
            "text": "身份证 11010519491231002X 的当事人"
        });
        personal(&mut v);
        assert_eq!(v["party"]["name"], "王**");
        assert!(!v["party"]["id_no"].as_str().unwrap().contains("19491231"));
        assert_eq!(v["other"]["name"], "清河县某食品店");
        assert_eq!(v["contact"]["phone"], "0999-***4567");
        assert!(!v["text"].as_str().unwrap().contains("11010519491231002X"));
        assert_eq!(phone("13812345678"), "*******5678");
    }
}
