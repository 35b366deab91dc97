//! Header names carried on the bus and on webhooks (docs/api.md, "Delivery").

pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
pub const TRACEPARENT: &str = "traceparent";
pub const MESSAGE_ID: &str = "Xj-Message-Id";
pub const CASE: &str = "Xj-Case";
pub const ATTEMPT: &str = "Xj-Delivery-Attempt";
pub const SIGNATURE: &str = "Xj-Signature";
pub const SENDER: &str = "Xj-Sender";
pub const RECIPIENT: &str = "Xj-Recipient";
pub const RULE: &str = "Xj-Rule";
pub const RULE_VERSION: &str = "Xj-Rule-Version";
pub const ACCEPTED_AT: &str = "Xj-Accepted-At";
/// On a copy: the message's sequence in `XJ_ACCEPTED`. The router routes
/// many messages at once, so copies can be stored in another order than
/// their messages were accepted; a receiver's backlog goes out in this one.
pub const ACCEPTED_SEQ: &str = "Xj-Accepted-Seq";
/// Set by the gateway on a reply: the org that sent the message answered.
pub const REPLY_SENDER: &str = "Xj-Reply-Sender";
/// On an accepted message: the content digest of what its organisation
/// submitted (key order and whitespace aside). The message's own subject
/// is its claim on the id; a second submission of the id is told a repeat
/// (the first receipt again) or a reuse for other content by this.
pub const CONTENT_DIGEST: &str = "Xj-Content-Digest";
/// On an accepted referral no rule places: the routing preview its receipt
/// gave (JSON), given again with the first receipt to a repeat.
pub const ROUTING: &str = "Xj-Routing";
/// On an accepted message its organisation signed: the SHA-256 of the bytes
/// it submitted (kept in the object store `xj_submissions`) and its
/// `Xj-Signature` over them — what an evidence package shows of the sender.
pub const SUBMITTED_SHA256: &str = "Xj-Submitted-Sha256";
pub const SUBMITTED_SIGNATURE: &str = "Xj-Submitted-Signature";
pub const DEAD_REASON: &str = "Xj-Dead-Reason";
/// A batched webhook delivery: the hub's signature over the whole body
/// (`Xj-Signature`'s form) and how many messages it holds.
pub const BATCH_SIGNATURE: &str = "Xj-Batch-Signature";
pub const BATCH_SIZE: &str = "Xj-Batch-Size";
/// When the courier gave up (RFC 3339).
pub const DEAD_AT: &str = "Xj-Dead-At";
pub const REPLAYED_BY: &str = "Xj-Replayed-By";

/// Reads a header as a string.
pub fn get<'a>(h: Option<&'a async_nats::HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.as_str())
}

/// Makes any text a header value that cannot break a NATS or HTTP header:
/// a receiver's error page, an id from a departmental system or a reason
/// from anywhere may carry CR, LF or other control characters, which
/// async-nats refuses with a panic. Control characters become `\u{XX}`
/// escapes (so nothing is silently lost from a reason), and the value is cut
/// at [`MAX_VALUE`] bytes on a character boundary.
pub fn value(text: &str) -> async_nats::HeaderValue {
    // Nearly every value is a plain id or time: taken as it is.
    if text.len() <= MAX_VALUE && !text.chars().any(char::is_control) {
        return text.parse().unwrap_or_default();
    }
    let mut out = String::with_capacity(text.len().min(MAX_VALUE));
    for c in text.chars() {
        let before = out.len();
        xj_model::push_visible(&mut out, c);
        if out.len() > MAX_VALUE {
            out.truncate(before);
            break;
        }
    }
    // `value` only ever returns text without CR or LF, so this cannot fail.
    out.parse().unwrap_or_default()
}

/// Longest header value the hub writes (a reason, an id); NATS headers
/// travel with every message and its redeliveries.
pub const MAX_VALUE: usize = 1024;

/// The one way the hub sets a NATS header: names are the constants of this
/// module, values go through [`value`].
pub trait Put {
    fn put(&mut self, name: &'static str, text: &str);
}

impl Put for async_nats::HeaderMap {
    #[allow(clippy::disallowed_methods)]
    fn put(&mut self, name: &'static str, text: &str) {
        self.insert(name, value(text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_not_kept() {
        let v = value("<html>\r\n<h1>502 Bad Gateway</h1>\r\n\0\t");
        assert_eq!(v.as_str(), "<html>\\u{0D}\\u{0A}<h1>502 Bad Gateway</h1>\\u{0D}\\u{0A}\\u{00}\\u{09}");
        let mut h = async_nats::HeaderMap::new();
        h.put(MESSAGE_ID, "id\nwith\rbreaks");
        assert_eq!(get(Some(&h), MESSAGE_ID), Some("id\\u{0A}with\\u{0D}breaks"));
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let v = value(&"断".repeat(2000));
        assert!(v.as_str().len() <= MAX_VALUE);
        assert!(v.as_str().chars().all(|c| c == '断'));
    }
}
