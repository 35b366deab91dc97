//! OpenTelemetry export against a real OTLP/HTTP receiver: this test runs a
//! small collector on loopback that accepts `POST /v1/traces` with protobuf
//! bodies and decodes every span (it refuses anything that does not decode).
//! A referral sent with a departmental system's own `traceparent` must reach
//! it as one connected trace across gateway, router, courier and tracker
//! (and the ledger), with the ids the webhook carried.
//!
//! Its own test binary: the exporter is process-wide, set once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;
use xj_testkit::{TestHub, eventually, sample_clue};

#[derive(Debug, Clone)]
struct Span {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attrs: HashMap<String, String>,
}

type Spans = Arc<Mutex<Vec<Span>>>;

async fn traces(State(spans): State<Spans>, body: Bytes) -> StatusCode {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut out = spans.lock().unwrap();
    for rs in req.resource_spans {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .map(text)
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attrs = s
                    .attributes
                    .iter()
                    .filter_map(|kv| Some((kv.key.clone(), text(kv.value.as_ref()?.value.as_ref()?))))
                    .collect();
                out.push(Span {
                    service: service.clone(),
                    name: s.name,
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    attrs,
                });
            }
        }
    }
    StatusCode::OK
}

fn text(v: &Any) -> String {
    match v {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_reaches_the_collector_as_one_connected_trace() -> anyhow::Result<()> {
    let spans: Spans = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let collector = listener.local_addr()?;
    let app = Router::new().route("/v1/traces", post(traces)).with_state(spans.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hub = TestHub::start(&format!("[telemetry]\notlp_endpoint = \"http://{collector}\"\n")).await?;
    // The environment bureau's system already has a trace going.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let theirs = "00f067aa0ba902b7";
    let msg = sample_clue("OT-1", "qh-market", "FOOD-STALL", "990101101");
    let r = hub
        .http
        .post(format!("{}/v1/messages", hub.base))
        .bearer_auth(hub.token("qh-market"))
        .header("traceparent", format!("00-{trace_id}-{theirs}-01"))
        .json(&msg)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 202);
    let receipt: serde_json::Value = r.json().await?;
    assert_eq!(receipt["trace_id"], trace_id, "the incoming trace is honoured");

    let town = hub.receiver("qh-town-dg").clone();
    let delivery = eventually(Duration::from_secs(20), "delivery", || {
        let town = town.clone();
        async move { town.deliveries().into_iter().find(|d| d.header("xj-message-id") == Some("OT-1")) }
    })
    .await?;
    let webhook_tp = delivery.header("traceparent").unwrap_or_default().to_string();
    assert!(webhook_tp.starts_with(&format!("00-{trace_id}-")), "the webhook carries the trace: {webhook_tp}");
    let webhook_span = webhook_tp.split('-').nth(2).unwrap_or_default().to_string();

    let wanted = ["xj-gateway", "xj-router", "xj-courier", "xj-tracker", "xj-ledger"];
    let got = eventually(Duration::from_secs(30), "spans from every service", || {
        let spans = spans.clone();
        async move {
            let all: Vec<Span> = spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect();
            wanted.iter().all(|w| all.iter().any(|s| s.service == *w)).then_some(all)
        }
    })
    .await?;

    let one = |service: &str, name: &str| -> Span {
        got.iter()
            .find(|s| s.service == service && s.name == name)
            .unwrap_or_else(|| panic!("no {name} span from {service}: {got:#?}"))
            .clone()
    };
    let accept = one("xj-gateway", "accept");
    let route = one("xj-router", "route");
    let deliver = one("xj-courier", "deliver");
    let track: Vec<&Span> = got.iter().filter(|s| s.service == "xj-tracker").collect();

    // Their span → gateway → router → courier → (webhook) and tracker.
    assert_eq!(accept.parent, theirs, "the gateway continues the departmental system's span");
    assert_eq!(route.parent, accept.span_id, "the router continues the gateway");
    assert_eq!(deliver.parent, route.span_id, "the courier continues the router");
    assert_eq!(webhook_span, deliver.span_id, "the webhook carries the courier's span");
    let hops = [&route.span_id, &deliver.span_id];
    assert!(track.iter().all(|t| hops.contains(&&t.parent)), "the tracker continues router and courier: {track:#?}");
    // Connected: every span's parent is another span of the trace, or theirs.
    let ids: Vec<&str> = got.iter().map(|s| s.span_id.as_str()).collect();
    for s in &got {
        assert!(
            s.parent == theirs || ids.contains(&s.parent.as_str()),
            "{} of {} hangs loose: {got:#?}",
            s.name,
            s.service
        );
    }

    // Named after the step, with what an operator searches by.
    assert_eq!(accept.attrs["xj.message_id"], "OT-1");
    assert_eq!(accept.attrs["xj.case"], receipt["case"].as_str().unwrap());
    assert_eq!(accept.attrs["xj.type"], "clue_referral");
    assert_eq!(accept.attrs["xj.sender"], "qh-market");
    assert_eq!(route.attrs["xj.rule"], "matter:FOOD-STALL/devolved:990101101");
    assert_eq!(route.attrs["xj.rule_version"], hub.settings.ruleset_version());
    assert_eq!(route.attrs["xj.recipient"], "qh-town-dg");
    assert_eq!(deliver.attrs["xj.recipient"], "qh-town-dg");
    assert_eq!(deliver.attrs["xj.attempt"], "1");
    assert_eq!(deliver.attrs["xj.rule"], route.attrs["xj.rule"]);
    Ok(())
}
