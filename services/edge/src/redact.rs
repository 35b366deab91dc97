//! Text from outside shown to operators — a receiver's error page, a reason
//! a delivery failed — may carry what no screen should: resident ID numbers,
//! the credentials in a webhook URL (user and password, a token in its
//! query string), a bearer token a receiver echoed back, and control
//! characters that rewrite a terminal. [`text`] takes them out
//! (docs/security.md, "Personal data" and "HTTP hardening").

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// A URL: scheme, optional userinfo, host, path, optional query and
/// fragment. Quotes, brackets and whitespace end it, as they end a URL
/// quoted in an error message.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/?#@"'<>()\[\]]*@)?([^\s/?#"'<>()\[\]]*)([^\s?#"'<>()\[\]]*)(\?[^\s#"'<>()\[\]]*)?(#[^\s"'<>()\[\]]*)?"#,
    )
    .unwrap_or_else(|e| unreachable!("the URL pattern is valid: {e}"))
});

/// `Bearer <token>`, `Basic <credentials>`.
static SCHEME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)\b(bearer|basic)(\s+)([^\s,;"'<>()\[\]]+)"#)
        .unwrap_or_else(|e| unreachable!("the scheme pattern is valid: {e}"))
});

/// `token=…`, `password: …` and the like.
static PAIR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(token|access[_-]?token|api[_-]?key|apikey|secret|password|passwd|pwd|signature|sig)(\s*[=:]\s*)([^\s,;&"'<>()\[\]]+)"#,
    )
    .unwrap_or_else(|e| unreachable!("the pair pattern is valid: {e}"))
});

/// `s` fit for an operator's screen.
pub fn text(s: &str) -> String {
    let masked = xj_model::mask_id_numbers(s);
    let urls = URL.replace_all(&masked, |c: &regex::Captures<'_>| {
        let mut out = String::new();
        out.push_str(&c[1]);
        if c.get(2).is_some() {
            out.push_str("***@");
        }
        out.push_str(&c[3]);
        out.push_str(&c[4]);
        if c.get(5).is_some() {
            out.push_str("?***");
        }
        if c.get(6).is_some() {
            out.push_str("#***");
        }
        out
    });
    let hide = |c: &regex::Captures<'_>| format!("{}{}***", &c[1], &c[2]);
    let schemes = SCHEME.replace_all(&urls, hide);
    let creds = PAIR.replace_all(&schemes, hide);
    let mut out = String::with_capacity(creds.len());
    for ch in creds.chars() {
        xj_model::push_visible(&mut out, ch);
    }
    out
}

/// Every string in `v` through [`text`].
pub fn value(v: &mut Value) {
    match v {
        Value::String(s) => {
            let t = text(s);
            if t != *s {
                *s = t;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(value),
        Value::Object(map) => map.values_mut().for_each(value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_and_headers_are_hidden() {
        let r = text(
            "error sending request for url (https://hook:s3cret@town.example/inbox?token=abc&x=1#frag): \
             401 {\"echo\":\"Authorization: Bearer eyJhbGciOi.payload.sig\"}",
        );
        assert!(!r.contains("s3cret") && !r.contains("abc") && !r.contains("eyJhbGciOi"), "{r}");
        assert!(r.contains("https://***@town.example/inbox?***#***"), "{r}");
        assert!(r.contains("Bearer ***"), "{r}");
        assert_eq!(text("password=hunter2; next"), "password=***; next");
        assert_eq!(text("plain reason: 503 Service Unavailable"), "plain reason: 503 Service Unavailable");
        assert_eq!(text("the token was refused"), "the token was refused");
    }

    #[test]
    fn id_numbers_and_control_characters_are_masked() {
        let r = text("party 11010519491231002X\r\n\u{1b}[2J");
        assert!(!r.contains("19491231"), "{r}");
        assert!(!r.chars().any(char::is_control), "{r}");
        assert!(r.contains("\\u{0D}\\u{0A}\\u{1B}"), "{r}");
    }
}
