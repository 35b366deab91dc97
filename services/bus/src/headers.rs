//! Header names carried on the bus and on webhooks (CONTRACT §4).

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
/// Set by the gateway when it publishes a message again for an exact repeat
/// (the first publish may have been lost in a crash). Within the intake
/// stream's duplicate window the server drops it; after the window the
/// router drops it if it routed the message before.
pub const REPEAT: &str = "Xj-Repeat";
pub const DEAD_REASON: &str = "Xj-Dead-Reason";
/// When the courier gave up (RFC 3339).
pub const DEAD_AT: &str = "Xj-Dead-At";
pub const REPLAYED_BY: &str = "Xj-Replayed-By";

/// Reads a header as a string.
pub fn get<'a>(h: Option<&'a async_nats::HeaderMap>, name: &str) -> Option<&'a str> {
    h?.get(name).map(|v| v.as_str())
}
