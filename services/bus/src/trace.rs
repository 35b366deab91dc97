//! W3C Trace Context (`traceparent`) carried in NATS headers on every hop.
//!
//! Each hop continues the trace: same trace id, a fresh span id of its own,
//! the previous hop's span as parent.

use rand::RngCore;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

impl TraceParent {
    pub fn new_root() -> Self {
        let mut rng = rand::thread_rng();
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        rng.fill_bytes(&mut trace_id);
        rng.fill_bytes(&mut span_id);
        Self { trace_id, span_id, sampled: true }
    }

    /// Parses `00-<32 hex>-<16 hex>-<2 hex>`; anything else is `None` (the
    /// spec says: start a new trace rather than fail).
    pub fn parse(s: &str) -> Option<Self> {
        let parts: Vec<&str> = s.trim().split('-').collect();
        if parts.len() < 4 || parts[0].len() != 2 || parts[0] == "ff" {
            return None;
        }
        let mut trace_id = [0u8; 16];
        let mut span_id = [0u8; 8];
        hex::decode_to_slice(parts[1], &mut trace_id).ok()?;
        hex::decode_to_slice(parts[2], &mut span_id).ok()?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        let flags = u8::from_str_radix(parts[3], 16).ok()?;
        Some(Self { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// The next hop: same trace, new span.
    pub fn child(&self) -> Self {
        let mut span_id = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut span_id);
        Self { span_id, ..*self }
    }

    /// Continues the trace in `headers`, or starts one.
    pub fn from_headers(headers: Option<&async_nats::HeaderMap>) -> Self {
        crate::headers::get(headers, crate::headers::TRACEPARENT)
            .and_then(Self::parse)
            .map(|p| p.child())
            .unwrap_or_else(Self::new_root)
    }

    /// The context a hop received in `headers`, as it was (the parent of
    /// the hop's own span); `None` when there was none or it was invalid.
    pub fn received(headers: Option<&async_nats::HeaderMap>) -> Option<Self> {
        crate::headers::get(headers, crate::headers::TRACEPARENT).and_then(Self::parse)
    }

    /// The context recorded in a step event (`trace_id`, `span_id` in hex).
    pub fn from_hex(trace_id: &str, span_id: &str) -> Option<Self> {
        Self::parse(&format!("00-{trace_id}-{span_id}-01"))
    }

    pub fn trace_id_hex(&self) -> String {
        hex::encode(self.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex::encode(self.span_id)
    }

    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id_hex(), self.span_id_hex(), u8::from(self.sampled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_example_and_continues_it() {
        let p = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let c = p.child();
        assert_eq!(c.trace_id, p.trace_id);
        assert_ne!(c.span_id, p.span_id);
        assert_eq!(TraceParent::parse(&c.header()).unwrap(), c);
        assert!(TraceParent::parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(TraceParent::parse("garbage").is_none());
    }
}
