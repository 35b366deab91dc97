//! Hostile HTTP clients against a real hub: connections that never finish
//! their request, floods without a token, too many connections from one
//! address, headers and bodies mutated and cut short, a console driven from
//! another site, a digest used to read what it names. Each test says the
//! guarantee it checks (docs/security.md, "HTTP hardening"); none measures
//! time, and the mutations come from a fixed seed, so every run is the same.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xj_testkit::hostile_http::{Rng, address, connect_from, exchange, exchange_from, read_answer, request};
use xj_testkit::{NATS_AGRI, TestHub, eventually, sample_clue};

const WAIT: Duration = Duration::from_secs(20);
/// Long enough for any answer the hub means to give; a request with no
/// answer by then hangs.
const ANSWER: Duration = Duration::from_secs(10);
const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1));
const ELSEWHERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// The county's configuration with `[http]` settings added.
fn with_http(text: String, http: &str) -> String {
    format!("{text}\n[http]\n{http}\n")
}

/// `lines` added to the table of organisation `org`.
fn with_org(text: String, org: &str, lines: &str) -> String {
    let at = format!("id = \"{org}\"\n");
    assert!(text.contains(&at), "no organisation {org}");
    text.replacen(&at, &format!("{at}{lines}\n"), 1)
}

fn bearer(hub: &TestHub, org: &str) -> Vec<u8> {
    format!("Bearer {}", hub.token(org)).into_bytes()
}

/// A refusal as docs/api.md promises it: JSON with a code and a sentence,
/// never a 5xx; where the request itself is at fault in a place that can be
/// named (400, 401, 422, 431), the details name it — a JSON pointer, a
/// line, a header, a path or query parameter.
fn assert_located(status: u16, body: &Value, what: &str) {
    assert!(status < 500, "{what}: {status} {body}");
    if status < 400 {
        return;
    }
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: {status} {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {status} {body}");
    if matches!(status, 400 | 401 | 422 | 431) {
        let details = body["details"].as_array().cloned().unwrap_or_default();
        let located =
            |d: &Value| ["pointer", "line", "row", "column", "header", "parameter"].iter().any(|k| d.get(k).is_some());
        assert!(!details.is_empty() && details.iter().all(located), "{what}: {status} {body}");
    }
}

/// Every message id delivered to any receiver (hub alerts aside).
fn delivered_ids(hub: &TestHub) -> BTreeSet<String> {
    hub.receivers
        .values()
        .flat_map(|r| r.deliveries())
        .filter_map(|d| d.header("xj-message-id").map(str::to_owned))
        .filter(|id| !id.starts_with("XJA-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_uploads_without_a_token_take_nothing_from_authenticated_callers() -> anyhow::Result<()> {
    // The cap per address would refuse most of them at once; lifted, so
    // what is tried here is that nobody without a token takes a permit.
    let hub = TestHub::start_custom(|t| with_http(t, "max_connections_per_client = 5000"), false).await?;
    let addr = address(&hub.base)?;
    let head =
        request("POST", "/v1/attachments", &[("Content-Type", b"application/octet-stream")], Some(33_000_000), b"");
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(&head).await?;
        idle.push(s);
    }
    // All 1,100 are still open on this side, none sent its body.
    let (status, body) = hub.submit("qh-eco", &sample_clue("IDLE-1", "qh-eco", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, 202, "{body}");
    let (status, _) = hub.get("/v1/cases/XJ-NONE", &hub.operator_token()).await?;
    assert_eq!(status, 404, "an operator's read goes through too");
    // They were answered at once, without their bodies being waited for.
    for s in idle.iter_mut().take(50) {
        let a = read_answer(s, ANSWER).await;
        assert_eq!(a.status, Some(401), "{a:?}");
        assert_eq!(a.json()["details"][0]["header"], "Authorization", "{a:?}");
    }
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_floods_never_take_a_permit() -> anyhow::Result<()> {
    // Two requests at once at most: one permit held by a flood would show.
    let hub =
        TestHub::start_custom(|t| with_http(t, "max_in_flight = 2\nmax_connections_per_client = 5000"), false).await?;
    let addr = address(&hub.base)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flood = Vec::new();
    for n in 0..200usize {
        let stop = stop.clone();
        flood.push(tokio::spawn(async move {
            let mut answered = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Wrong tokens, no tokens, bodies announced and never sent.
                let auth: &[u8] = if n % 2 == 0 { b"Bearer not-a-token-of-this-hub" } else { b"Basic Zm9vOmJhcg==" };
                let path = ["/v1/messages", "/v1/native", "/v1/attachments", "/v1/admin/rules/reload"][n % 4];
                let req = request("POST", path, &[("Authorization", auth)], Some(1_000), b"{\"id\":");
                match exchange(addr, &req, ANSWER).await {
                    Ok(a) => {
                        assert_eq!(a.status, Some(401), "{a:?}");
                        answered += 1;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            answered
        }));
    }
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = format!("FLOOD-{i}");
        let (status, body) = hub.submit("qh-eco", &sample_clue(&id, "qh-eco", "FOOD-STALL", "990101101")).await?;
        assert_eq!(status, 202, "{id} during the flood: {body}");
        ids.push(id);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut answered = 0;
    for f in flood {
        answered += f.await?;
    }
    assert!(answered > 0, "the flood was answered (401)");
    hub.receiver("qh-town-dg").wait_for(ids.len(), WAIT).await?;
    Ok(())
}

/// Writes `bytes` one at a time, `pause` apart, until the server closes the
/// connection; returns how many were written and what the server sent.
async fn trickle(stream: TcpStream, bytes: &[u8], pause: Duration) -> anyhow::Result<(usize, Vec<u8>)> {
    let (mut r, mut w) = stream.into_split();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        let _ = r.read_to_end(&mut got).await;
        got
    });
    let mut sent = 0;
    for b in bytes {
        if reader.is_finished() || w.write_all(&[*b]).await.is_err() {
            break;
        }
        sent += 1;
        tokio::time::sleep(pause).await;
    }
    let got = tokio::time::timeout(WAIT, reader).await??;
    Ok((sent, got))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(|t| with_http(t, "header_read_timeout_ms = 500"), false).await?;
    let addr = address(&hub.base)?;
    let padding = vec![b'a'; 600];
    let head = request("GET", "/healthz", &[("X-Padding", &padding)], None, b"");
    let (sent, got) = trickle(TcpStream::connect(addr).await?, &head, Duration::from_millis(20)).await?;
    assert!(sent < head.len(), "the whole header block got through ({sent} bytes)");
    let text = String::from_utf8_lossy(&got);
    assert!(!text.starts_with("HTTP/1.1 2"), "{text}");
    // Others are served meanwhile and after.
    let (status, _) = hub.get("/healthz", "").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off_and_nothing_is_accepted() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(
        |t| with_http(t, "body_read_timeout_ms = 400\nrequest_timeout_ms = 2000\nheader_read_timeout_ms = 60000"),
        false,
    )
    .await?;
    let addr = address(&hub.base)?;
    let auth = bearer(&hub, "qh-eco");

    // Half a body, then nothing.
    let stalled = serde_json::to_vec(&sample_clue("STALL-1", "qh-eco", "FOOD-STALL", "990101101"))?;
    let req = request(
        "POST",
        "/v1/messages",
        &[("Authorization", &auth)],
        Some(stalled.len()),
        &stalled[..stalled.len() / 2],
    );
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&req).await?;
    let a = read_answer(&mut s, WAIT).await;
    assert!(!a.timed_out, "no answer and no close: {a:?}");
    match a.status {
        Some(status) => {
            assert_eq!(status, 408, "{a:?}");
            assert_eq!(a.json()["error"], "timeout", "{a:?}");
        }
        None => assert!(a.closed, "{a:?}"),
    }

    // A body that keeps coming, a byte at a time, past the request's time.
    let slow = serde_json::to_vec(&sample_clue("STALL-2", "qh-eco", "FOOD-STALL", "990101101"))?;
    let head = request("POST", "/v1/messages", &[("Authorization", &auth)], Some(slow.len()), b"");
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&head).await?;
    let (sent, got) = trickle(s, &slow, Duration::from_millis(50)).await?;
    assert!(sent < slow.len(), "the whole body got through");
    let text = String::from_utf8_lossy(&got);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    if let Some((_, body)) = text.split_once("\r\n\r\n") {
        let body: Value = serde_json::from_str(body)?;
        assert_eq!(body["error"], "timeout", "{body}");
    }

    // Nothing was claimed, routed or delivered: the same ids are new.
    for id in ["STALL-1", "STALL-2"] {
        let (status, _) = hub.get(&format!("/v1/messages/{id}/trace"), &hub.operator_token()).await?;
        assert_eq!(status, 404, "{id} left a trace");
    }
    assert!(hub.receiver("qh-town-dg").deliveries().is_empty());
    for id in ["STALL-1", "STALL-2"] {
        let (status, body) = hub.submit("qh-eco", &sample_clue(id, "qh-eco", "FOOD-STALL", "990101101")).await?;
        assert_eq!(status, 202, "{id} sent whole: {body}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_per_address_are_refused_others_still_work() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(
        |t| with_http(t, "max_connections_per_client = 8\nheader_read_timeout_ms = 60000"),
        false,
    )
    .await?;
    let addr = address(&hub.base)?;
    let health = request("GET", "/healthz", &[], None, b"");
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_from(HOME, addr).await?);
    }
    // The ninth from the same address: closed without an answer.
    let ninth = exchange_from(HOME, addr, &health, ANSWER).await?;
    assert_eq!(ninth.status, None, "{ninth:?}");
    assert!(ninth.closed, "{ninth:?}");
    // Another address is served.
    let other = exchange_from(ELSEWHERE, addr, &health, ANSWER).await?;
    assert_eq!(other.status, Some(200), "{other:?}");
    // The eight held ones are served too.
    let first = &mut held[0];
    first.write_all(&health).await?;
    assert_eq!(read_answer(first, ANSWER).await.status, Some(200));
    // One closes, and the address may open another.
    held.truncate(7);
    eventually(WAIT, "a place for one more connection from 127.0.0.1", || async {
        let a = exchange_from(HOME, addr, &health, ANSWER).await.ok()?;
        (a.status == Some(200)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_alone_reads_nothing_and_says_nothing() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    let upload = |org: &str, bytes: Vec<u8>| {
        let r = hub.http.post(format!("{}/v1/attachments", hub.base)).bearer_auth(hub.token(org)).body(bytes);
        async move {
            let r = r.send().await?;
            anyhow::Ok((r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)))
        }
    };
    let fetch = |org: &str, sha: &str| {
        let r = hub.http.get(format!("{}/v1/attachments/{sha}", hub.base)).bearer_auth(hub.token(org));
        async move { anyhow::Ok(r.send().await?.status().as_u16()) }
    };
    let evidence: Vec<u8> = (0..54_321u32).map(|i| (i % 253) as u8).collect();
    let (status, stored) = upload("qh-eco", evidence.clone()).await?;
    assert_eq!(status, 201, "{stored}");
    let sha = stored["sha256"].as_str().unwrap_or_default().to_string();
    let size = evidence.len();
    let with_attachment = |id: &str, org: &str, sha: &str, size: usize| {
        let mut clue = sample_clue(id, org, "FOOD-STALL", "990101101");
        clue["body"]["materials"] =
            json!([{ "title": "现场照片", "copies": 1, "attachment": { "sha256": sha, "size": size } }]);
        clue
    };

    // An outsider who learnt the digest names it in a message refused for
    // something else: the refusal records nothing it could read with.
    let mut refused = with_attachment("LEAK-1", "qh-enforce", &sha, size);
    refused["body"]["officers"] = json!([]);
    let (status, body) = hub.submit("qh-enforce", &refused).await?;
    assert_eq!(status, 422, "{body}");
    assert_eq!(fetch("qh-enforce", &sha).await?, 404);

    // In a valid message the digest is refused exactly as one nobody
    // uploaded; a wrong size too: nothing says the bytes exist, or how many.
    let answer = |body: &Value| body["details"].to_string();
    let (status, known) = hub.submit("qh-enforce", &with_attachment("LEAK-2", "qh-enforce", &sha, size)).await?;
    assert_eq!(status, 422, "{known}");
    let (_, unknown) =
        hub.submit("qh-enforce", &with_attachment("LEAK-3", "qh-enforce", &"ab".repeat(32), size)).await?;
    assert_eq!(answer(&known), answer(&unknown));
    assert!(answer(&known).contains("/body/materials/0/attachment/sha256"), "{known}");
    let (_, resized) = hub.submit("qh-enforce", &with_attachment("LEAK-4", "qh-enforce", &sha, 5)).await?;
    assert_eq!(answer(&resized), answer(&unknown));
    assert_eq!(fetch("qh-enforce", &sha).await?, 404);

    // The uploader itself is told a size is wrong, not what it is.
    let (status, body) = hub.submit("qh-eco", &with_attachment("OWN-1", "qh-eco", &sha, 5)).await?;
    assert_eq!(status, 422, "{body}");
    assert!(body["details"].to_string().contains("/body/materials/0/attachment/size"), "{body}");
    assert!(!body.to_string().contains(&size.to_string()), "the stored size is in {body}");

    // Uploading the same bytes says nothing of who else has: 201 to a new
    // uploader, 200 to one that uploaded before.
    assert_eq!(upload("qh-eco", evidence.clone()).await?.0, 200);
    assert_eq!(upload("qh-market", evidence.clone()).await?.0, 201);

    // The genuine path still works: accepted, then the recipient reads it.
    let (status, body) = hub.submit("qh-eco", &with_attachment("OWN-2", "qh-eco", &sha, size)).await?;
    assert_eq!(status, 202, "{body}");
    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    assert_eq!(fetch("qh-town-dg", &sha).await?, 200);
    assert_eq!(fetch("qh-enforce", &sha).await?, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_other_origins_and_limits_failed_sign_ins() -> anyhow::Result<()> {
    let hub = TestHub::start_up(|t| {
        format!(
            "{t}\n[http]\ntrusted_proxies = [\"127.0.0.1\"]\n\n[console]\n\
             sign_in_failures = {{ per_second = 0.001, burst = 3 }}\n"
        )
    })
    .await?;
    let url = format!("{}/console/api/session", hub.base);
    let host = hub.base.trim_start_matches("http://").to_string();
    let home = reqwest::Client::builder().local_address(HOME).build()?;
    let elsewhere = reqwest::Client::builder().local_address(ELSEWHERE).build()?;
    let good = json!({ "token": hub.operator_token(), "name": "值班员" });
    let bad = json!({ "token": "not-the-operator-token-0000" });
    let post = |client: &reqwest::Client, body: &Value, headers: &[(&str, String)]| {
        let mut r = client.post(&url).json(body);
        for (k, v) in headers {
            r = r.header(*k, v.as_str());
        }
        async move {
            let r = r.send().await?;
            let status = r.status().as_u16();
            let cookie = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
            anyhow::Ok((status, cookie, retry, r.json::<Value>().await.unwrap_or(Value::Null)))
        }
    };

    // From another origin, by either header a browser sends: 403 naming it.
    let (status, _, _, body) = post(&home, &good, &[("Origin", "https://evil.example".into())]).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!((body["error"].as_str(), body["details"][0]["header"].as_str()), (Some("cross_origin"), Some("Origin")));
    let (status, _, _, body) = post(&home, &good, &[("Sec-Fetch-Site", "cross-site".into())]).await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["details"][0]["header"], "Sec-Fetch-Site");

    // From the console's own page, over plain http: no Secure.
    let (status, cookie, _, body) = post(&home, &good, &[("Origin", hub.base.clone())]).await?;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap_or_default();
    assert!(cookie.contains("HttpOnly") && !cookie.contains("Secure"), "{cookie}");
    // Behind the trusted proxy that terminated https: Secure.
    let proxied = [("X-Forwarded-Proto", "https".to_string()), ("Origin", format!("https://{host}"))];
    let (status, secure, _, body) = post(&home, &good, &proxied).await?;
    assert_eq!(status, 200, "{body}");
    assert!(secure.unwrap_or_default().contains("; Secure"));
    // Anyone else saying so is not believed.
    let spoofed = [("X-Forwarded-Proto", "https".to_string()), ("Origin", hub.base.clone())];
    let (status, plain, _, body) = post(&elsewhere, &good, &spoofed).await?;
    assert_eq!(status, 200, "{body}");
    assert!(!plain.unwrap_or_default().contains("Secure"));

    // A signed-in browser tricked by another site into replaying: refused
    // before anything is looked up.
    let session = cookie.split(';').next().unwrap_or_default().to_string();
    let r = home
        .post(format!("{}/console/api/dead/1/replay", hub.base))
        .header("Cookie", &session)
        .header("Origin", "https://evil.example")
        .body("{}")
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);

    // Failed sign-ins from one address: three, then 429 with Retry-After —
    // even for the right token — while another address signs in.
    for _ in 0..3 {
        assert_eq!(post(&elsewhere, &bad, &[]).await?.0, 401);
    }
    let (status, _, retry, body) = post(&elsewhere, &bad, &[]).await?;
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    assert_eq!(body["error"], "rate_limited");
    assert_eq!(post(&elsewhere, &good, &[]).await?.0, 429);
    assert_eq!(post(&home, &good, &[]).await?.0, 200);

    // Sign-ins that are not the JSON expected are located refusals, and
    // count as failures.
    let third = reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 3])).build()?;
    for body in [&b"{\"token\":"[..], b"[]", b"{\"token\":5}", b"\xff\xfe", b""] {
        let r = third.post(&url).header("content-type", "text/plain").body(body.to_vec()).send().await?;
        let status = r.status().as_u16();
        let answer: Value = r.json().await.unwrap_or(Value::Null);
        if status == 429 {
            continue;
        }
        assert_located(status, &answer, &format!("sign-in {}", String::from_utf8_lossy(body)));
        assert_eq!(status, 400, "{answer}");
    }
    assert_eq!(post(&third, &good, &[]).await?.0, 429, "five failed sign-ins from 127.0.0.3");
    Ok(())
}

/// qh-agri on NATS, with a small body limit and a rate of two messages.
const NATS_AGRI_LIMITS: &str = "max_body_bytes = 4000\nrate_limit = { per_second = 0.001, burst = 2 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_intake_applies_the_size_and_rate_limits_of_http() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(|t| format!("{t}\n{NATS_AGRI}{NATS_AGRI_LIMITS}"), false).await?;
    let client = async_nats::connect(hub.nats.url()).await?;
    let js = async_nats::jetstream::new(client);
    let outbox = js.get_stream("XJ_OUT").await?;
    let mut answers = outbox
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "xj.out.qh-agri".into(),
            ..Default::default()
        })
        .await?
        .messages()
        .await?;
    let mut submit = async |msg: &Value| -> anyhow::Result<(String, Option<String>, Value)> {
        js.publish("xj.in.qh-agri", serde_json::to_vec(msg)?.into()).await?.await?;
        let m = tokio::time::timeout(WAIT, answers.next()).await?.ok_or_else(|| anyhow::anyhow!("no answer"))??;
        let header = |n: &str| m.headers.as_ref().and_then(|h| h.get(n)).map(|v| v.to_string());
        Ok((header("Xj-Answer").unwrap_or_default(), header("Retry-After"), serde_json::from_slice(&m.payload)?))
    };

    let mut big = sample_clue("AG-BIG", "qh-agri", "FOOD-STALL", "990101101");
    big["body"]["cause"] = json!("涉嫌无证经营".repeat(400));
    let (status, _, body) = submit(&big).await?;
    assert_eq!(status, "413", "{body}");
    assert_eq!(body["error"], "too_large");
    assert!(body["message"].as_str().unwrap_or_default().contains("4000"), "{body}");

    let (status, _, body) = submit(&sample_clue("AG-1", "qh-agri", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, "202", "{body}");
    let (status, retry, body) = submit(&sample_clue("AG-2", "qh-agri", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, "429", "{body}");
    assert_eq!(body["error"], "rate_limited");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    // The HTTP side spends the same bucket.
    let (status, body) = hub.submit("qh-agri", &sample_clue("AG-3", "qh-agri", "FOOD-STALL", "990101101")).await?;
    assert_eq!(status, 429, "{body}");

    hub.receiver("qh-town-dg").wait_for(1, WAIT).await?;
    let ids = delivered_ids(&hub);
    assert_eq!(ids, BTreeSet::from(["AG-1".to_string()]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_clock_advance_is_refused_not_a_panic() -> anyhow::Result<()> {
    let hub = TestHub::start_custom(
        |t| format!("{t}\n[clock]\nmode = \"manual\"\nstart = \"2026-11-20T00:00:00Z\"\n"),
        false,
    )
    .await?;
    for by in ["P9999999999999999D", "PT99999999999999999999999S", "P99999999999W", "P3661D"] {
        let (status, body) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": by })).await?;
        assert_eq!(status, 422, "{by}: {body}");
        assert_eq!(body["details"][0]["pointer"], "/by", "{body}");
    }
    let (status, body) = hub.operator_post("/v1/admin/clock/advance", &json!({ "by": "P1D" })).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["now"].as_str().unwrap_or_default().starts_with("2026-11-21"), "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_sees_only_its_own_hops_of_a_trace() -> anyhow::Result<()> {
    let hub = TestHub::start("").await?;
    hub.receiver("qh-enforce").set_failing(true);
    let share = json!({
        "id": "SH-1", "type": "info_share", "sender": "qh-market", "recipient": ["qh-eco", "qh-enforce"],
        "case": null, "reply_to": null, "sent_at": "2026-11-20T09:00:00+08:00", "classification": "sensitive",
        "body": { "kind": "penalty_decision", "title": "行政处罚决定书", "matter": "FOOD-STALL", "region": "990101",
                  "decided_on": "2026-11-18", "party": { "name": "某商行", "uscc": xj_testkit::sample_uscc("92990101MA0000001") },
                  "penalty": { "kind": "fine", "amount": 5000 } }
    });
    let (status, body) = hub.submit("qh-market", &share).await?;
    assert_eq!(status, 202, "{body}");
    hub.receiver("qh-eco").wait_for(1, WAIT).await?;
    // The operator sees the failed attempt at qh-enforce, the sender too.
    let failed = |t: &Value| {
        t["hops"]
            .as_array()
            .is_some_and(|h| h.iter().any(|h| h["step"] == "attempt" && h["detail"]["recipient"] == "qh-enforce"))
    };
    eventually(WAIT, "a failed attempt at qh-enforce in the trace", || async {
        let (_, t) = hub.get("/v1/messages/SH-1/trace", &hub.operator_token()).await.ok()?;
        failed(&t).then_some(())
    })
    .await?;
    let (status, sender) = hub.get("/v1/messages/SH-1/trace", &hub.token("qh-market")).await?;
    assert_eq!(status, 200);
    assert!(failed(&sender), "{sender}");
    // qh-eco: its routing and its delivery, nothing of qh-enforce.
    let (status, eco) = hub.get("/v1/messages/SH-1/trace", &hub.token("qh-eco")).await?;
    assert_eq!(status, 200, "{eco}");
    assert!(!eco.to_string().contains("qh-enforce"), "{eco}");
    let steps: Vec<&str> = eco["hops"].as_array().into_iter().flatten().filter_map(|h| h["step"].as_str()).collect();
    assert!(steps.contains(&"routed") && steps.contains(&"delivered"), "{steps:?}");
    // An organisation it did not reach sees nothing at all.
    assert_eq!(hub.get("/v1/messages/SH-1/trace", &hub.token("qh-town-dg")).await?.0, 404);
    Ok(())
}

/// A receiver that refuses every delivery with an error page quoting
/// credentials back, as some gateways' error pages do.
async fn tattling_receiver() -> anyhow::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let page = "invalid credentials: Authorization: Bearer s3cret-token; \
                sign in at https://hook:s3cret-pw@idp.example/login?session=s3cret-session \
                for 11010519491231002X\u{1b}[2J";
    let app = axum::Router::new().fallback(move || async move { (axum::http::StatusCode::UNAUTHORIZED, page) });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_reasons_show_no_credentials() -> anyhow::Result<()> {
    let tattler = tattling_receiver().await?;
    let hub = TestHub::start_custom(
        |t| {
            let mut out = String::new();
            let mut in_town = false;
            for line in t.lines() {
                if line.starts_with("id = ") {
                    in_town = line == "id = \"qh-town-xs\"";
                }
                if in_town && line.starts_with("deliver = ") {
                    out.push_str(&format!(
                        "deliver = {{ webhook = \"http://hook:s3cret-pw@{tattler}/inbox?token=s3cret-query\" }}\n"
                    ));
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
            format!("{out}\n[courier]\nmax_attempts = 1\n")
        },
        false,
    )
    .await?;
    let (status, body) = hub.submit("qh-eco", &sample_clue("DL-1", "qh-eco", "WASTE-DUMP", "990101102")).await?;
    assert_eq!(status, 202, "{body}");
    let list = eventually(WAIT, "a dead letter", || async {
        let (_, l) = hub.get("/v1/admin/dead-letters", &hub.operator_token()).await.ok()?;
        (l["dead_letters"].as_array().is_some_and(|d| !d.is_empty())).then_some(l)
    })
    .await?;
    let reason = list["dead_letters"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("401"), "the receiver's answer is kept: {reason}");
    assert!(reason.contains("Bearer ***") && reason.contains("https://***@idp.example/login?***"), "{reason}");
    let text = list.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(!text.contains("19491231"), "{text}");
    assert!(!reason.chars().any(char::is_control), "{reason:?}");
    // The sender's view of the trace masks the same way.
    let (_, trace) = hub.get("/v1/messages/DL-1/trace", &hub.token("qh-eco")).await?;
    assert!(!trace.to_string().contains("s3cret"), "{trace}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Mutated requests. A fixed seed: the same few hundred requests every run.

const SEED: u64 = 0x5EED_0FC0_FFEE;

/// Strings no field expects.
fn nasty(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => String::new(),
        1 => "\u{0}\u{1}\u{7}\u{1b}[2J\r\n".into(),
        2 => "x".repeat(20_000),
        3 => "*.>".into(),
        4 => "../../etc/passwd".into(),
        5 => "\u{202e}٠١٢𝕏\u{fffd}".into(),
        6 => "99999999999999999999999999999".into(),
        _ => (0..rng.below(64)).map(|_| char::from(rng.byte() % 128)).collect(),
    }
}

/// `doc` with one mutation: cut, a byte changed, a control byte put in, a
/// line dropped or repeated.
fn mutate_bytes(rng: &mut Rng, doc: &[u8]) -> Vec<u8> {
    let mut d = doc.to_vec();
    let at = rng.below(d.len().max(1));
    match rng.below(5) {
        0 => d.truncate(at),
        1 => {
            if let Some(b) = d.get_mut(at) {
                *b = rng.byte();
            }
        }
        2 => d.insert(at, rng.byte() % 32),
        3 => {
            let lines: Vec<&[u8]> = doc.split(|b| *b == b'\n').collect();
            let drop = rng.below(lines.len());
            d = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .flat_map(|(_, l)| l.iter().chain(b"\n"))
                .copied()
                .collect();
        }
        _ => {
            let lines: Vec<&[u8]> = doc.split(|b| *b == b'\n').collect();
            let twice = rng.below(lines.len());
            d = lines
                .iter()
                .enumerate()
                .flat_map(|(i, l)| if i == twice { vec![*l, *l] } else { vec![*l] })
                .flat_map(|l| l.iter().chain(b"\n"))
                .copied()
                .collect();
        }
    }
    d
}

/// A canonical message with one mutation of its structure or values.
fn mutate_canonical(rng: &mut Rng, msg: &Value) -> Vec<u8> {
    const POINTERS: [&str; 12] = [
        "/id",
        "/sender",
        "/type",
        "/sent_at",
        "/classification",
        "/case",
        "/reply_to",
        "/recipient",
        "/body/matter",
        "/body/party/uscc",
        "/body/location/region",
        "/body/officers/0/cert_no",
    ];
    let mut m = msg.clone();
    match rng.below(6) {
        0 | 1 => return mutate_bytes(rng, &serde_json::to_vec_pretty(msg).unwrap_or_default()),
        2 => {
            let at = *rng.pick(&POINTERS);
            if let Some(v) = m.pointer_mut(at) {
                *v = Value::String(nasty(rng));
            }
        }
        3 => {
            let at = *rng.pick(&POINTERS);
            if let Some(v) = m.pointer_mut(at) {
                *v = rng.pick(&[json!(null), json!(7), json!([]), json!({}), json!(true), json!(-1e308)]).clone();
            }
        }
        4 => {
            let key = rng.pick(&["id", "type", "sender", "sent_at", "body", "classification"]).to_string();
            if let Some(o) = m.as_object_mut() {
                o.remove(&key);
            }
        }
        _ => {
            return rng
                .pick(&[
                    b"[]".to_vec(),
                    b"null".to_vec(),
                    b"\"a string\"".to_vec(),
                    "[".repeat(5000).into_bytes(),
                    b"{\"id\":1,\"id\":2}".to_vec(),
                    vec![0xff, 0xfe, 0x00],
                ])
                .clone();
        }
    }
    serde_json::to_vec(&m).unwrap_or_default()
}

fn example(format: &str, file: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../schemas/formats")
        .join(format)
        .join("examples")
        .join(file);
    Ok(std::fs::read_to_string(path)?)
}

struct Fuzz<'a> {
    hub: &'a TestHub,
    rng: Rng,
    accepted: BTreeSet<String>,
    tried: usize,
    /// How many of each status, printed: a run that refuses everything at
    /// the first check would try little.
    statuses: std::collections::BTreeMap<u16, usize>,
}

impl Fuzz<'_> {
    /// Sends one request and checks its answer; an accepted message is
    /// remembered as one that may be delivered.
    async fn send(&mut self, what: &str, r: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        self.tried += 1;
        let r =
            tokio::time::timeout(ANSWER, r.send()).await.map_err(|_| anyhow::anyhow!("{what}: no answer (hang)"))??;
        let status = r.status().as_u16();
        *self.statuses.entry(status).or_default() += 1;
        let json = r.headers().get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.contains("json"));
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status >= 400 {
            assert!(json, "{what}: a {status} that is not JSON");
        }
        assert_located(status, &body, what);
        if matches!(status, 200 | 202)
            && let Some(id) = body["id"].as_str()
        {
            self.accepted.insert(id.to_string());
        }
        Ok((status, body))
    }

    fn post(&self, path: &str, org: &str) -> reqwest::RequestBuilder {
        self.hub.http.post(format!("{}{path}", self.hub.base)).bearer_auth(self.hub.token(org))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_get_located_json_refusals_and_deliver_nothing() -> anyhow::Result<()> {
    use base64::Engine;
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().as_bytes());
    let hub = TestHub::start_custom(
        |t| {
            let t = with_org(t, "qh-market", "format = \"samr-json-v1\"");
            let t = with_org(t, "qh-eco", "format = \"eco-xml-v1\"");
            let t = with_org(t, "qh-town-dg", "format = \"town-csv-v1\"");
            let t = with_org(t, "qh-town-xs", &format!("public_key = \"{public}\""));
            format!(
                "{t}\n[http]\nmax_header_bytes = 8192\n\n[http.rate_limit]\nper_second = 100000.0\nburst = 100000\n\n\
                 [clock]\nmode = \"manual\"\n\n\
                 [[org]]\nid = \"qh-town-hp\"\nname = \"临水镇\"\nkind = \"town_government\"\nregion = \"990101103\"\n\
                 token = \"token-qh-town-hp-0123456789\"\ndeliver = {{ pull = true }}\n"
            )
        },
        false,
    )
    .await?;
    let mut f =
        Fuzz { hub: &hub, rng: Rng::new(SEED), accepted: BTreeSet::new(), tried: 0, statuses: Default::default() };

    // Acknowledgements of a pull inbox: cut, odd, huge, another's cursors.
    let long = "9".repeat(5000);
    let acks: Vec<Vec<u8>> = vec![
        b"{\"cursor\":".to_vec(),
        b"[]".to_vec(),
        b"{\"cursor\":\"c-\\u0000\"}".to_vec(),
        format!("{{\"cursor\":\"c-{long}\"}}").into_bytes(),
        b"{\"cursor\":\"c-1\",\"receipts\":{}}".to_vec(),
        b"{\"cursor\":\"c-1\",\"receipts\":[{\"cursor\":\"c-1\",\"signature\":5}]}".to_vec(),
        format!("{{\"cursor\":\"c-1\",\"receipts\":[{{\"cursor\":\"c-1\",\"signature\":\"{long}\"}}]}}").into_bytes(),
        format!("{{\"cursor\":\"c-1\",\"receipts\":[{}]}}", vec!["{}"; 501].join(",")).into_bytes(),
        b"{\"cursor\":\"c-1\",\"other\\u0007\":1}".to_vec(),
        b"\xff\xfe".to_vec(),
    ];
    for (i, body) in acks.into_iter().enumerate() {
        for org in ["qh-town-hp", "qh-enforce"] {
            let r = f.post("/v1/inbox/ack", org).header("content-type", "application/json").body(body.clone());
            let (status, answer) = f.send(&format!("ack #{i} as {org}"), r).await?;
            assert!(status >= 400, "ack #{i} as {org}: {status} {answer}");
        }
    }

    // Canonical bodies.
    for i in 0..160 {
        let msg = sample_clue(&format!("FZC-{i}"), "qh-enforce", "FOOD-STALL", "990101101");
        let body = mutate_canonical(&mut f.rng, &msg);
        let r = f.post("/v1/messages", "qh-enforce").body(body);
        f.send(&format!("canonical #{i}"), r).await?;
    }
    // Native documents: JSON, XML, CSV, each with its own id.
    let natives = [
        ("qh-market", example("samr-json-v1", "clue_referral.json")?, "SJ-XS-2026-0031", "FZM"),
        ("qh-eco", example("eco-xml-v1", "clue_referral.xml")?, "HB-XS-2026-0019", "FZE"),
        ("qh-town-dg", example("town-csv-v1", "clue_referral.csv")?, "DG-XS-2026-0040", "FZT"),
    ];
    for (org, doc, id, prefix) in &natives {
        for i in 0..60 {
            let doc = doc.replace(id, &format!("{prefix}-{i}"));
            let body = mutate_bytes(&mut f.rng, doc.as_bytes());
            let r = f.post("/v1/native", org).body(body);
            f.send(&format!("native {org} #{i}"), r).await?;
        }
    }
    // Attachments: bytes of any kind, digests claimed right and wrong.
    for i in 0..30 {
        let bytes: Vec<u8> = (0..f.rng.below(3000)).map(|_| f.rng.byte()).collect();
        let claims: [&[u8]; 5] = [
            b"",
            b"00",
            b"zz-not-hex",
            &[0xC3, 0xA9, 0xFF],
            b"0000000000000000000000000000000000000000000000000000000000000000",
        ];
        let claim = f.rng.pick(&claims).to_vec();
        let mut r = f.post("/v1/attachments", "qh-enforce").body(bytes);
        if i % 3 != 0 {
            r = r.header("Xj-Content-Sha256", reqwest::header::HeaderValue::from_bytes(&claim)?);
        }
        f.send(&format!("attachment #{i}"), r).await?;
    }
    // Ids and parameters in paths and queries.
    let odd = ["%00", "%0A%0D", "%E2%80%AE", "..", "*", "%3E", &"9".repeat(3000), "%FF%FE", "a%20b", "-1"];
    let op = hub.operator_token();
    for (i, x) in odd.iter().enumerate() {
        for path in [
            format!("/v1/messages/{x}/trace"),
            format!("/v1/cases/{x}"),
            format!("/v1/attachments/{x}"),
            format!("/v1/stats?month={x}"),
            format!("/v1/supervision?view={x}&region={x}"),
            format!("/v1/inbox?after={x}&limit={x}&wait={x}"),
            format!("/v1/admin/inbox?{x}"),
            format!("/v1/cases?role={x}&limit={x}"),
            format!("/v1/me?{x}"),
            format!("/v1/messages/{x}/letter?sender={x}"),
            format!("/v1/reports/monthly?month={x}&format={x}&county={x}"),
        ] {
            let r = hub.http.get(format!("{}{path}", hub.base)).bearer_auth(&op);
            f.send(&format!("GET {path} #{i}"), r).await?;
        }
        let r = hub.http.post(format!("{}/v1/admin/dead-letters/{x}/replay", hub.base)).bearer_auth(&op);
        f.send(&format!("replay {x}"), r).await?;
    }
    for body in [
        &b"{\"by\":"[..],
        b"{\"by\":5}",
        b"{\"by\":\"P\"}",
        b"{\"by\":\"P1Y\"}",
        b"{\"by\":\"PT-5S\"}",
        b"[]",
        b"{\"by\":\"P99999999999999999999D\"}",
        b"\xff",
    ] {
        let r = hub
            .http
            .post(format!("{}/v1/admin/clock/advance", hub.base))
            .bearer_auth(&op)
            .header("content-type", "application/json")
            .body(body.to_vec());
        f.send(&format!("clock {}", String::from_utf8_lossy(body)), r).await?;
    }
    // Headers: credentials, trace context, signatures and types that are
    // cut, too long, or not text.
    for i in 0..80 {
        let id = format!("FZH-{i}");
        let msg = serde_json::to_vec(&sample_clue(&id, "qh-town-xs", "WASTE-DUMP", "990101102"))?;
        let junk: Vec<u8> = (0..f.rng.below(40)).map(|_| 0x80 | f.rng.byte()).collect();
        let long = vec![b'A'; 9000];
        let token = format!("Bearer {}", hub.token("qh-town-xs"));
        let signature =
            format!("keyid=k,sig={}", base64::engine::general_purpose::STANDARD.encode(key.sign(&msg).to_bytes()));
        let values: [Vec<u8>; 6] = [
            junk.clone(),
            long.clone(),
            b"".to_vec(),
            b"Bearer".to_vec(),
            [token.as_bytes(), &junk].concat(),
            format!("{token}, {token}").into_bytes(),
        ];
        let name = *f.rng.pick(&["authorization", "traceparent", "xj-signature", "content-type", "x-anything"]);
        let value = f.rng.pick(&values).clone();
        let mut r = hub.http.post(format!("{}/v1/messages", hub.base)).body(msg.clone());
        let header = reqwest::header::HeaderValue::from_bytes(&value)?;
        if name != "authorization" {
            r = r.header("authorization", &token);
        }
        if name != "xj-signature" {
            r = r.header("xj-signature", &signature);
        }
        r = r.header(name, header);
        f.send(&format!("header {name} #{i}"), r).await?;
    }
    // What no HTTP library sends: control characters in a header, lengths
    // that disagree, a header block of half a megabyte. hyper refuses these
    // before any route sees them (a bare 400 or 431, and the connection
    // closed): never a 5xx, never a hang.
    let addr = address(&hub.base)?;
    let auth = bearer(&hub, "qh-enforce");
    let mut raw: Vec<Vec<u8>> = vec![
        request("GET", "/healthz", &[("X-Evil", b"a\x01b")], None, b""),
        request("POST", "/v1/messages", &[("Authorization", &auth), ("Content-Length", b"abc")], None, b"{}"),
        request("POST", "/v1/messages", &[("Authorization", &auth), ("Content-Length", b"5")], Some(2), b"{}"),
        request("GET", "/healthz", &[("X-Big", &vec![b'b'; 500_000])], None, b""),
        b"GET /v1/keys\x07 HTTP/1.1\r\nHost: hub\r\n\r\n".to_vec(),
    ];
    for name in ["Authorization", "traceparent", "Xj-Signature", "Content-Type", "Idempotency-Key"] {
        for control in [&b"\x00"[..], b"\x1b", b"\x7f", b"\r"] {
            let value =
                if name == "Authorization" { [&auth[..], control].concat() } else { [&b"x"[..], control].concat() };
            let mut headers = vec![(name, value.as_slice())];
            if name != "Authorization" {
                headers.push(("Authorization", auth.as_slice()));
            }
            raw.push(request("POST", "/v1/messages", &headers, Some(2), b"{}"));
        }
    }
    for (i, req) in raw.iter().enumerate() {
        let a = exchange(addr, req, ANSWER).await?;
        assert!(!a.timed_out, "raw #{i}: no answer and no close");
        assert!(a.status.is_none_or(|s| (400..500).contains(&s)), "raw #{i}: {a:?}");
        f.tried += 1;
    }

    // Nothing refused was delivered: a last message to the same receivers
    // and, once it arrived, every delivery is of an accepted message.
    let sentinel = sample_clue("FZ-LAST", "qh-enforce", "FOOD-STALL", "990101101");
    let (status, body) = f.send("sentinel", f.post("/v1/messages", "qh-enforce").json(&sentinel)).await?;
    assert_eq!(status, 202, "{body}");
    eventually(WAIT, "the sentinel at qh-town-dg", || async { delivered_ids(&hub).contains("FZ-LAST").then_some(()) })
        .await?;
    let stray: Vec<String> = delivered_ids(&hub).difference(&f.accepted).cloned().collect();
    assert!(stray.is_empty(), "delivered without being accepted: {stray:?}");
    eprintln!("{} requests, answered {:?}, {} accepted", f.tried, f.statuses, f.accepted.len());
    assert!(f.tried > 500, "{} requests", f.tried);
    Ok(())
}
