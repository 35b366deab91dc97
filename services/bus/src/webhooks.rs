//! Standard Webhooks signatures on every webhook delivery, beside
//! `Xj-Signature` (docs/api.md, "Verifying a delivery"): `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` as the specification defines
//! them, so a receiver verifies with a stock library and its secret and
//! also gets replay protection (the timestamp is signed).

use base64::Engine;
use standardwebhooks::Webhook;

pub use standardwebhooks::{HEADER_WEBHOOK_ID, HEADER_WEBHOOK_SIGNATURE, HEADER_WEBHOOK_TIMESTAMP};

#[derive(Debug, thiserror::Error)]
pub enum WebhookSignError {
    #[error("a webhook secret is not \"whsec_\" and base64: {0}")]
    Secret(String),
}

/// The id of one delivery: its sender, message and recipient, the same on
/// every attempt (a receiver dedupes on it). Message ids are unique per
/// sender only, so the sender is part of it: two organisations that both
/// number a message `M-1` send two messages. Organisation ids have no `.`,
/// so the three parts read back unambiguously.
pub fn delivery_id(sender: &str, msg_id: &str, org: &str) -> String {
    format!("{sender}.{msg_id}.{org}")
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp`
/// (seconds): `v1,<base64>` for each secret, space-separated, the current
/// secret first.
pub fn signature(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> Result<String, WebhookSignError> {
    let mut out = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let hook = Webhook::new(secret).map_err(|e| WebhookSignError::Secret(e.to_string()))?;
        let one = match hook.sign(id, timestamp, body) {
            Ok(sig) => sig,
            // The library signs text; a native format may be bytes in
            // another encoding. The scheme is the same over the bytes.
            Err(_) => {
                let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
                let key = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| WebhookSignError::Secret(e.to_string()))?;
                let mut signed = format!("{id}.{timestamp}.").into_bytes();
                signed.extend_from_slice(body);
                let mac = hmac_sha256::HMAC::mac(&signed, &key);
                format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac))
            }
        };
        out.push(one);
    }
    Ok(out.join(" "))
}

/// Checks a delivery as a receiver would, with the library's verifier (the
/// sandbox departments and tests use it).
pub fn verify(secret: &str, body: &[u8], headers: &http::HeaderMap) -> Result<(), String> {
    Webhook::new(secret).map_err(|e| e.to_string())?.verify(body, headers).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, ts: i64, sig: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(HEADER_WEBHOOK_ID, id.parse().expect("id"));
        h.insert(HEADER_WEBHOOK_TIMESTAMP, ts.to_string().parse().expect("ts"));
        h.insert(HEADER_WEBHOOK_SIGNATURE, sig.parse().expect("sig"));
        h
    }

    /// The example of the Standard Webhooks specification.
    #[test]
    fn matches_the_specification_example() {
        let sig = signature(&[SECRET.into()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#)
            .expect("sign");
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_sends_both_and_each_verifies() {
        let old = "whsec_".to_string() + &base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let now = chrono::Utc::now().timestamp();
        let sig = signature(&[SECRET.into(), old.clone()], "M-1.qh-town", now, b"{}").expect("sign");
        assert_eq!(sig.split(' ').count(), 2);
        assert!(verify(SECRET, b"{}", &headers("M-1.qh-town", now, &sig)).is_ok());
        assert!(verify(&old, b"{}", &headers("M-1.qh-town", now, &sig)).is_ok());
        assert!(verify(SECRET, b"{ }", &headers("M-1.qh-town", now, &sig)).is_err(), "tampered body");
        assert!(verify(SECRET, b"{}", &headers("M-2.qh-town", now, &sig)).is_err(), "another delivery's id");
        let late = now - 600;
        let sig = signature(&[SECRET.into()], "M-1.qh-town", late, b"{}").expect("sign");
        assert!(verify(SECRET, b"{}", &headers("M-1.qh-town", late, &sig)).is_err(), "outside the tolerance");
    }

    #[test]
    fn bytes_that_are_not_text_are_signed_too() {
        let body = [0xB9u8, 0xAB, 0xB0, 0xB2]; // GBK, not UTF-8
        let sig = signature(&[SECRET.into()], "M-1.qh-town", 1614265330, &body).expect("sign");
        assert!(sig.starts_with("v1,"));
    }
}
