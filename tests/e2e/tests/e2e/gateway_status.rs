//! Every answer of `POST /v1/messages` (docs/api.md) through real HTTP, each
//! in the documented error shape, and proof that a refused message reaches
//! nobody: after the refusals one valid message is sent, and it is the only
//! thing any receiver ever sees.

use serde_json::{Value, json};
use xj_testkit::{TestHub, sample_clue, sample_uscc};

use crate::common::{WAIT, assert_error, delivered, pointers, total_deliveries, total_hits};

const SMALL_BODY_LIMIT: &str = "[http]\nmax_body_bytes = 4096\n";

/// POST /v1/messages with exactly these headers.
async fn post(hub: &TestHub, auth: Option<&str>, body: Vec<u8>) -> anyhow::Result<(u16, Value)> {
    let mut req =
        hub.http.post(format!("{}/v1/messages", hub.base)).header("content-type", "application/json").body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    Ok((status, r.json().await.unwrap_or(Value::Null)))
}

/// The clue with every kind of problem at once: envelope, body schema,
/// semantic checks and configuration checks.
fn clue_with_many_problems() -> Value {
    let mut m = sample_clue("G-BAD-1", "qh-market", "FOOD-STALL", "990101101");
    // A credit code with the wrong check character (a semantic check).
    let good = sample_uscc("92990101MA0000001");
    let wrong = if good.ends_with('0') { '1' } else { '0' };
    m["body"]["party"]["uscc"] = format!("{}{wrong}", &good[..17]).into();
    // One officer where two are required (schema).
    m["body"]["officers"] = json!([{ "name": "张三", "cert_no": "99010100001" }]);
    // A region that is no county or town code (schema).
    m["body"]["location"]["region"] = "99010".into();
    // No cause (schema).
    m["body"].as_object_mut().unwrap().remove("cause");
    // Envelope problems.
    m["sent_at"] = "yesterday morning".into();
    m["classification"] = "secret".into();
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_delivers_nothing() -> anyhow::Result<()> {
    let hub = TestHub::start(SMALL_BODY_LIMIT).await?;
    let market = format!("Bearer {}", hub.token("qh-market"));
    let valid = sample_clue("G-OK-1", "qh-market", "FOOD-STALL", "990101101");
    let valid_bytes = serde_json::to_vec(&valid)?;
    assert!(valid_bytes.len() < 4096, "the sample fits the small limit");

    // 401: no token, a token nobody has, a credential of another scheme.
    let (s, b) = post(&hub, None, valid_bytes.clone()).await?;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = post(&hub, Some("Bearer not-a-token-0123456789"), valid_bytes.clone()).await?;
    assert_error(s, &b, 401, "unauthorized");
    let (s, b) = post(&hub, Some("Basic cWgtbWFya2V0OnB3"), valid_bytes.clone()).await?;
    assert_error(s, &b, 401, "unauthorized");

    // 403: the sender is another org than the token's; operators do not submit.
    let (s, b) = hub.submit("qh-eco", &valid).await?;
    assert_error(s, &b, 403, "forbidden");
    let (s, b) = post(&hub, Some(&format!("Bearer {}", hub.operator_token())), valid_bytes.clone()).await?;
    assert_error(s, &b, 403, "forbidden");

    // 400: not JSON, not an object, nothing at all.
    for raw in [&b"{\"id\": \"G-1\", "[..], b"[1,2,3]", b"", b"{\"id\":1} trailing"] {
        let (s, b) = post(&hub, Some(&market), raw.to_vec()).await?;
        assert_error(s, &b, 400, "malformed");
    }

    // 413: over [http] max_body_bytes, even though the message is valid.
    let mut big = valid.clone();
    big["id"] = "G-BIG-1".into();
    big["body"]["summary"] = "案情摘要".repeat(600).into();
    let (s, b) = post(&hub, Some(&market), serde_json::to_vec(&big)?).await?;
    assert_error(s, &b, 413, "too_large");

    // 422: schema and check failures.
    let (s, b) = hub.submit("qh-market", &clue_with_many_problems()).await?;
    assert_error(s, &b, 422, "invalid");

    // 404 for a path that does not exist, in the same shape.
    let (s, b) = hub.get("/v1/nothing-here", &hub.token("qh-market")).await?;
    assert_error(s, &b, 404, "not_found");

    // The positive control: one valid message, and it is the only delivery.
    let (s, receipt) = post(&hub, Some(&market), valid_bytes).await?;
    assert_eq!(s, 202, "{receipt}");
    delivered(&hub, "qh-town-dg", "G-OK-1").await?;
    assert_eq!(total_deliveries(&hub), 1);
    assert_eq!(total_hits(&hub), 1, "a refused message was delivered");

    // None of the refused ids was used up: the big one, now small, is new.
    big["body"]["summary"] = "摘要".into();
    let (s, b) = hub.submit("qh-market", &big).await?;
    assert_eq!(s, 202, "{b}");
    delivered(&hub, "qh-town-dg", "G-BIG-1").await?;
    assert_eq!(total_hits(&hub), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprocessable_lists_every_problem_with_its_pointer() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let (s, b) = hub.submit("qh-market", &clue_with_many_problems()).await?;
    assert_error(s, &b, 422, "invalid");
    let got = pointers(&b);
    for want in
        ["/body/party/uscc", "/body/officers", "/body/location/region", "/body/cause", "/sent_at", "/classification"]
    {
        assert!(got.iter().any(|p| p == want), "{want} missing from {b}");
    }
    for d in b["details"].as_array().unwrap() {
        assert!(d["message"].as_str().is_some_and(|m| !m.is_empty()), "{d}");
    }

    // Problems only the checks see, all at once: a future date, the same
    // officer twice, a region code of nowhere, a bad ID number, and a
    // recipient that is not connected.
    let mut m = sample_clue("G-BAD-2", "qh-market", "FOOD-STALL", "990101101");
    m["body"]["found_on"] = "2099-01-01".into();
    m["body"]["officers"][1]["cert_no"] = m["body"]["officers"][0]["cert_no"].clone();
    m["body"]["location"]["region"] = "000101".into();
    m["body"]["party"]["id_no"] = "110105194912310021".into();
    m["recipient"] = json!(["qh-enforce", "qh-nobody"]);
    let (s, b) = hub.submit("qh-market", &m).await?;
    assert_error(s, &b, 422, "invalid");
    let got = pointers(&b);
    for want in
        ["/body/found_on", "/body/officers/1/cert_no", "/body/location/region", "/body/party/id_no", "/recipient/1"]
    {
        assert!(got.iter().any(|p| p == want), "{want} missing from {b}");
    }

    // Schema problems and configuration problems together.
    let mut m = sample_clue("G-BAD-3", "qh-market", "FOOD-STALL", "990101101");
    m["body"].as_object_mut().unwrap().remove("contact");
    m["recipient"] = "qh-nobody".into();
    let (s, b) = hub.submit("qh-market", &m).await?;
    assert_error(s, &b, 422, "invalid");
    let got = pointers(&b);
    for want in ["/body/contact", "/recipient"] {
        assert!(got.iter().any(|p| p == want), "{want} missing from {b}");
    }

    // A message addressed to its own sender.
    let mut m = sample_clue("G-BAD-4", "qh-market", "FOOD-STALL", "990101101");
    m["recipient"] = "qh-market".into();
    let (s, b) = hub.submit("qh-market", &m).await?;
    assert_error(s, &b, 422, "invalid");
    assert_eq!(pointers(&b), vec!["/recipient".to_string()], "{b}");

    // Nothing of this reached anybody; a valid message still does.
    let ok = sample_clue("G-OK-2", "qh-market", "FOOD-STALL", "990101101");
    let (s, b) = hub.submit("qh-market", &ok).await?;
    assert_eq!(s, 202, "{b}");
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    assert_eq!(total_hits(&hub), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_body_limit_is_the_configured_one() -> anyhow::Result<()> {
    let hub = TestHub::start(SMALL_BODY_LIMIT).await?;
    assert_eq!(hub.settings.http.max_body_bytes, 4096);
    // Padding the JSON text with whitespace changes the size, not the
    // message: just under the limit passes, just over does not.
    let msg = serde_json::to_vec(&sample_clue("G-LIM-1", "qh-market", "FOOD-STALL", "990101101"))?;
    let padded = |n: usize| {
        let mut v = msg.clone();
        v.extend(std::iter::repeat_n(b' ', n - msg.len()));
        v
    };
    let auth = format!("Bearer {}", hub.token("qh-market"));
    let (s, b) = post(&hub, Some(&auth), padded(4097)).await?;
    assert_error(s, &b, 413, "too_large");
    // Without a Content-Length (chunked) the limit holds all the same.
    let status = chunked_post(&hub, &auth, &padded(5000)).await?;
    assert_eq!(status, 413);
    let (s, b) = post(&hub, Some(&auth), padded(4096)).await?;
    assert_eq!(s, 202, "{b}");
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    assert_eq!(total_hits(&hub), 1);
    Ok(())
}

/// POSTs `body` with `Transfer-Encoding: chunked` over a plain socket (the
/// HTTP client always sends a length); returns the status code.
async fn chunked_post(hub: &TestHub, auth: &str, body: &[u8]) -> anyhow::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await?;
    // The server may answer and close before it has read everything.
    let mut framed = Vec::new();
    for chunk in body.chunks(1000) {
        framed.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend(chunk);
        framed.extend(b"\r\n");
    }
    framed.extend(b"0\r\n\r\n");
    let _ = sock.write_all(&framed).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, sock.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    status.ok_or_else(|| anyhow::anyhow!("no HTTP answer: {text:?}"))
}
