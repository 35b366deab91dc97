//! OpenTelemetry spans for each hop, exported by OTLP (HTTP/protobuf) when
//! `[telemetry] otlp_endpoint` is set, and nothing at all when it is not.
//!
//! The hub carries W3C trace context by hand (see [`crate::trace`]): every hop
//! takes the `traceparent` it received, makes a child with a span id of its
//! own and puts that in what it sends on. A [`Hop`] records exactly that span
//! — same trace id, same span id, the received span as its (remote) parent —
//! so the spans a collector receives join into one tree, and the ids in the
//! NATS headers, the step events and the webhooks are the ids of real spans.
//!
//! A hop is recorded when it is finished, with the start time taken when it
//! began: nothing is held across awaits but plain values, and a hub without
//! an endpoint pays for one branch. Each service exports under its own
//! `service.name` (`xj-gateway`, `xj-router`…), one tracer provider each.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, IdGenerator, SdkTracer, SdkTracerProvider};

use crate::TraceParent;

pub use opentelemetry::trace::SpanKind;

/// Where spans go, set once by [`init`]; `None` means "export nothing".
static ENDPOINT: OnceLock<Option<String>> = OnceLock::new();
/// One provider per service name, made on first use.
static PROVIDERS: Mutex<Option<HashMap<&'static str, (SdkTracerProvider, SdkTracer)>>> = Mutex::new(None);

thread_local! {
    /// The ids the next span built on this thread must have (see [`HopIds`]).
    static NEXT_IDS: Cell<Option<([u8; 16], [u8; 8])>> = const { Cell::new(None) };
}

/// Sets the OTLP endpoint (`http://host:4318` or the full `…/v1/traces`).
/// The first call wins; `None` keeps export off.
pub fn init(endpoint: Option<&str>) {
    let endpoint = endpoint.map(str::trim).filter(|e| !e.is_empty()).map(|e| {
        let e = e.trim_end_matches('/');
        if e.ends_with("/v1/traces") { e.to_string() } else { format!("{e}/v1/traces") }
    });
    if ENDPOINT.set(endpoint.clone()).is_ok()
        && let Some(e) = endpoint
    {
        tracing::info!(endpoint = %e, "exporting traces by OTLP");
    }
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENDPOINT.get().is_some_and(Option::is_some)
}

/// Sends what is buffered and stops every exporter (at process end).
pub fn shutdown() {
    let providers = PROVIDERS.lock().unwrap_or_else(|p| p.into_inner()).take();
    for (_, (provider, _)) in providers.unwrap_or_default() {
        let _ = provider.shutdown();
    }
}

/// Sends what is buffered now, without stopping.
pub fn flush() {
    let guard = PROVIDERS.lock().unwrap_or_else(|p| p.into_inner());
    for (provider, _) in guard.iter().flat_map(|m| m.values()) {
        let _ = provider.force_flush();
    }
}

fn tracer(service: &'static str) -> Option<SdkTracer> {
    let endpoint = ENDPOINT.get()?.as_ref()?;
    let mut guard = PROVIDERS.lock().unwrap_or_else(|p| p.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some((_, t)) = map.get(service) {
        return Some(t.clone());
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the OTLP exporter; spans are not exported");
            return None;
        }
    };
    let batch = BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(500)).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batch).build())
        .with_id_generator(HopIds)
        .with_resource(
            Resource::builder()
                .with_service_name(format!("xj-{service}"))
                .with_attribute(KeyValue::new("service.namespace", "xianjie"))
                .build(),
        )
        .build();
    let tracer = provider.tracer("xianjie");
    map.insert(service, (provider, tracer.clone()));
    Some(tracer)
}

/// Gives the span being built the ids the hop already put on the wire;
/// random ones otherwise.
#[derive(Debug)]
struct HopIds;

impl IdGenerator for HopIds {
    fn new_trace_id(&self) -> TraceId {
        match NEXT_IDS.with(Cell::get) {
            Some((t, _)) => TraceId::from_bytes(t),
            None => TraceId::from_bytes(rand::random()),
        }
    }
    fn new_span_id(&self) -> SpanId {
        match NEXT_IDS.with(Cell::get) {
            Some((_, s)) => SpanId::from_bytes(s),
            None => SpanId::from_bytes(rand::random()),
        }
    }
}

/// One hop of one message, recorded when finished.
#[must_use = "a hop is recorded only when finished"]
pub struct Hop {
    service: &'static str,
    name: &'static str,
    parent: Option<TraceParent>,
    own: TraceParent,
    start: SystemTime,
    kind: SpanKind,
    attrs: Vec<KeyValue>,
    on: bool,
}

impl Hop {
    /// Starts a hop of `service` named after its step. `own` is the context
    /// this hop sends on; `parent` the one it received (none: a new trace).
    pub fn start(service: &'static str, name: &'static str, parent: Option<TraceParent>, own: TraceParent) -> Self {
        let on = enabled();
        Self { service, name, parent, own, start: SystemTime::now(), kind: SpanKind::Internal, attrs: Vec::new(), on }
    }

    /// `server` for a hop that received from outside, `client` for one that
    /// calls out, `consumer`/`producer` on the bus.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// When the hop really began (work done before its context was known).
    pub fn since(mut self, start: SystemTime) -> Self {
        self.start = start;
        self
    }

    /// Adds an attribute (ignored when export is off).
    pub fn attr(&mut self, key: &'static str, value: impl Into<Value>) -> &mut Self {
        if self.on {
            self.attrs.push(KeyValue::new(key, value));
        }
        self
    }

    /// Adds an attribute when there is a value.
    pub fn attr_opt<V: Into<Value>>(&mut self, key: &'static str, value: Option<V>) -> &mut Self {
        if let Some(v) = value {
            self.attr(key, v);
        }
        self
    }

    pub fn own(&self) -> TraceParent {
        self.own
    }

    /// Records the hop as done.
    pub fn finish(self) {
        self.end(None);
    }

    /// Records the hop as failed with `reason`.
    pub fn fail(self, reason: impl Into<String>) {
        self.end(Some(reason.into()));
    }

    fn end(self, error: Option<String>) {
        if !self.on {
            return;
        }
        let Some(tracer) = tracer(self.service) else { return };
        let parent_cx = match self.parent {
            Some(p) => Context::new().with_remote_span_context(SpanContext::new(
                TraceId::from_bytes(p.trace_id),
                SpanId::from_bytes(p.span_id),
                if p.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() },
                true,
                TraceState::default(),
            )),
            None => Context::new(),
        };
        let mut attrs = self.attrs;
        attrs.push(KeyValue::new("xj.service", self.service));
        let builder =
            tracer.span_builder(self.name).with_kind(self.kind).with_start_time(self.start).with_attributes(attrs);
        NEXT_IDS.with(|c| c.set(Some((self.own.trace_id, self.own.span_id))));
        let mut span = builder.start_with_context(&tracer, &parent_cx);
        NEXT_IDS.with(|c| c.set(None));
        if let Some(reason) = error {
            // Reasons may quote a document: no ID number leaves the hub.
            span.set_status(Status::error(xj_model::mask_id_numbers(&reason).into_owned()));
        } else {
            span.set_status(Status::Ok);
        }
        span.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hop_without_an_endpoint_costs_nothing() {
        let own = TraceParent::new_root();
        let mut h = Hop::start("test", "nothing", None, own);
        h.attr("xj.message_id", "M-1");
        assert!(h.attrs.is_empty());
        h.finish();
    }
}
