//! Receivers that answer badly: redirects, error pages with CR LF, NUL
//! bytes or invalid UTF-8, a 50 MiB or endless body, no answer, a reset
//! connection, one byte a second. For each, every attempt fails with a
//! reason an operator can read (in the message's trace and the dead-letter
//! list), the courier keeps running, and another organisation's deliveries
//! arrive exactly once meanwhile (docs/api.md, Delivery).

use std::time::Duration;

use serde_json::{Value, json};
use xj_testkit::hostile_receiver::{Behaviour, HostileReceiver, NGINX_502};
use xj_testkit::{Receiver, TestHub, eventually, sample_clue};

const WAIT: Duration = Duration::from_secs(30);

/// Attempts per delivery before it is a dead letter.
const ATTEMPTS: u64 = 3;

/// Quick retries, and a webhook timeout short enough for hanging receivers
/// to fail fast.
const COURIER: &str = "[courier]\nmax_attempts = 3\nbackoff_initial_ms = 50\nbackoff_max_ms = 200\ntimeout_ms = 1500\n";

/// The well-behaved organisation whose deliveries must not suffer: a
/// food-stall referral in 东关镇 goes to the town.
const TOWN: &str = "qh-town-dg";

/// What a failed delivery's reason must look like.
type Expect<'a> = &'a dyn Fn(&str) -> bool;

/// The standard county, plus one organisation per `(id, webhook)`.
async fn hub_with(hostile: &[(&str, String)]) -> anyhow::Result<TestHub> {
    let mut extra = String::from(COURIER);
    for (id, url) in hostile {
        extra.push_str(&format!(
            "\n[[org]]\nid = \"{id}\"\nname = \"{id}\"\nkind = \"agriculture\"\nregion = \"990101\"\ntoken = \"token-{id}-0123456789\"\ndeliver = {{ webhook = \"{url}\" }}\n"
        ));
    }
    TestHub::start_custom(move |county| format!("{county}\n{extra}"), false).await
}

/// An assistance request from the market bureau addressed to `org`.
fn request(id: &str, org: &str) -> Value {
    json!({ "id": id, "type": "assistance_request", "sender": "qh-market", "recipient": org,
            "sent_at": "2026-11-20T09:00:00+08:00", "classification": "internal",
            "body": { "need": "协助核查涉案农资来源", "due_basis": "assistance" } })
}

/// Submits `n` referrals for the town, ids `<prefix>-<i>`.
async fn to_the_town(hub: &TestHub, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("{prefix}-{i}");
        let (s, b) = hub.submit("qh-market", &sample_clue(&id, "qh-market", "FOOD-STALL", "990101101")).await?;
        anyhow::ensure!(s == 202, "{id}: {s} {b}");
        ids.push(id);
    }
    Ok(ids)
}

/// Every id in `ids` arrived at the town exactly once, and nothing else
/// did; the town never saw a failed or repeated request.
async fn town_got_each_once(hub: &TestHub, ids: &[String]) -> anyhow::Result<()> {
    let town: &Receiver = hub.receiver(TOWN);
    let got = town.wait_for(ids.len(), WAIT).await?;
    let mut seen: Vec<&str> = got.iter().filter_map(|d| d.header("xj-message-id")).collect();
    seen.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(seen, want, "the town's deliveries");
    assert_eq!(town.duplicates(), 0, "no repeats at the town");
    assert_eq!(town.hits(), ids.len(), "one request per message at the town");
    Ok(())
}

/// The operator's dead letter of message `id`, once there is one.
async fn dead_letter(hub: &TestHub, id: &str) -> anyhow::Result<Value> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("a dead letter of {id}"), || async {
        let (s, b) = hub.get("/v1/admin/dead-letters", &op).await.ok()?;
        (s == 200).then_some(())?;
        b["dead_letters"].as_array()?.iter().find(|d| d["id"] == id).cloned()
    })
    .await
}

/// The operator's trace of `id`, once it shows the `dead` step.
async fn trace_to_dead(hub: &TestHub, id: &str) -> anyhow::Result<Vec<Value>> {
    let op = hub.operator_token();
    eventually(WAIT, &format!("{id} dead in its trace"), || async {
        let (s, t) = hub.get(&format!("/v1/messages/{id}/trace"), &op).await.ok()?;
        let hops = t["hops"].as_array()?.clone();
        (s == 200 && hops.iter().any(|h| h["step"] == "dead")).then_some(hops)
    })
    .await
}

/// A reason an operator can read: one line, no control characters, short.
fn assert_readable(reason: &str, what: &str) {
    assert!(!reason.is_empty(), "{what}: empty reason");
    assert!(!reason.chars().any(char::is_control), "{what}: control characters in {reason:?}");
    assert!(reason.len() <= 1024, "{what}: {} bytes of reason", reason.len());
}

/// What an organisation's failed delivery of `id` left: the dead letter
/// and each attempt in the trace, all with readable reasons that satisfy
/// `expect`. Returns the dead letter's reason.
async fn failed_readably(hub: &TestHub, id: &str, org: &str, expect: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let dl = dead_letter(hub, id).await?;
    assert_eq!(dl["org"], org, "{dl}");
    assert_eq!(dl["attempts"], ATTEMPTS, "{dl}");
    let reason = dl["reason"].as_str().unwrap_or_default().to_string();
    assert_readable(&reason, &format!("{org}'s dead letter"));
    assert!(expect(&reason), "{org}'s dead letter: {reason:?}");
    let hops = trace_to_dead(hub, id).await?;
    let failures: Vec<&Value> = hops.iter().filter(|h| h["step"] == "attempt" || h["step"] == "dead").collect();
    assert_eq!(failures.len() as u64, ATTEMPTS, "{org}: attempts then dead: {hops:?}");
    for h in failures {
        let error = h["detail"]["error"].as_str().unwrap_or_default();
        assert_readable(error, &format!("{org}'s {} hop", h["step"]));
        assert!(expect(error), "{org}'s {} hop: {error:?}", h["step"]);
    }
    assert!(!hops.iter().any(|h| h["step"] == "delivered"), "{org}: never delivered: {hops:?}");
    Ok(reason)
}

/// The hub still answers healthy: no consumer loop of it has stopped.
async fn healthy(hub: &TestHub) -> anyhow::Result<()> {
    let r = hub.http.get(format!("{}/healthz", hub.base)).send().await?;
    let s = r.status().as_u16();
    let b = r.text().await.unwrap_or_default();
    assert_eq!(s, 200, "healthz: {b}");
    Ok(())
}

/// Runs one scenario: `hostile` receivers each get one message; the town
/// gets referrals before, while and after those fail; each hostile
/// delivery must fail readably as `expect` says.
async fn scenario(prefix: &str, hostile: Vec<(&str, &HostileReceiver, Expect<'_>)>) -> anyhow::Result<TestHub> {
    let urls: Vec<(&str, String)> = hostile.iter().map(|(org, r, _)| (*org, r.url())).collect();
    let hub = hub_with(&urls).await?;
    let mut town = to_the_town(&hub, &format!("{prefix}-BEFORE"), 3).await?;
    for (org, ..) in &hostile {
        let (s, b) = hub.submit("qh-market", &request(&format!("{prefix}-{org}"), org)).await?;
        anyhow::ensure!(s == 202, "{org}: {s} {b}");
    }
    town.extend(to_the_town(&hub, &format!("{prefix}-DURING"), 5).await?);
    for (org, receiver, expect) in &hostile {
        failed_readably(&hub, &format!("{prefix}-{org}"), org, expect).await?;
        let requests = receiver.requests();
        assert_eq!(requests.len() as u64, ATTEMPTS, "{org}: one request per attempt");
        for r in &requests {
            assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/inbox"), "{org}");
            assert!(r.body_len > 0 && r.header("xj-signature").is_some(), "{org}: a signed body");
        }
    }
    town.extend(to_the_town(&hub, &format!("{prefix}-AFTER"), 3).await?);
    town_got_each_once(&hub, &town).await?;
    healthy(&hub).await?;
    Ok(hub)
}

/// A redirect is the receiver's answer, not a delivery: the signed POST is
/// not re-sent elsewhere (307/308) nor turned into a GET without its body
/// (301/302), and the attempt fails naming the status and the Location.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() -> anyhow::Result<()> {
    // Where the redirects point: a receiver that takes anything, whatever
    // the method (a followed 301 arrives as a GET).
    let trap = HostileReceiver::start(Behaviour::page(200, "ok")).await?;
    let mut receivers = Vec::new();
    for status in [301u16, 302, 307, 308] {
        receivers.push((status, HostileReceiver::start(Behaviour::redirect(status, &trap.url())).await?));
    }
    let orgs = ["qh-r301", "qh-r302", "qh-r307", "qh-r308"];
    // A Location no header or trace should carry whole: 3,000 characters
    // with a tab in them.
    let long = format!("{}/next\t{}", trap.url(), "a".repeat(3000));
    let sprawling = HostileReceiver::start(Behaviour::redirect(303, &long)).await?;
    let sprawling_ok = |r: &str| {
        r.starts_with("HTTP 303 See Other: redirects are not followed (Location: ")
            && r.contains(&format!("{}/next aaa", trap.url()))
            && r.len() < 400
    };
    let to_trap = format!("redirects are not followed (Location: {})", trap.url());
    let redirected = |r: &str| r.starts_with("HTTP 30") && r.contains(&to_trap);
    let mut hostile: Vec<(&str, &HostileReceiver, Expect)> =
        orgs.iter().zip(&receivers).map(|(org, (_, r))| (*org, r, &redirected as Expect)).collect();
    hostile.push(("qh-r303", &sprawling, &sprawling_ok as Expect));
    let hub = scenario("REDIR", hostile).await?;
    // Each names its own status.
    for (org, (status, _)) in orgs.iter().zip(&receivers) {
        let dl = dead_letter(&hub, &format!("REDIR-{org}")).await?;
        let reason = dl["reason"].as_str().unwrap_or_default();
        assert!(reason.starts_with(&format!("HTTP {status} ")), "{org}: {reason}");
    }
    assert!(trap.requests().is_empty(), "a redirect was followed: {:?}", trap.requests());
    Ok(())
}

/// The case: nginx's own 502 page, CR LF and all. Its text goes
/// into the trace and a NATS header (the dead letter) as one readable
/// line; the courier, which once died putting it in a header, keeps
/// delivering to the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nginx_502_page_is_retried_then_dead_lettered_readably() -> anyhow::Result<()> {
    let nginx = HostileReceiver::start(Behaviour::page(502, NGINX_502)).await?;
    let expect = |r: &str| r.starts_with("HTTP 502 Bad Gateway: <html> <head><title>502 Bad Gateway</title>");
    let hub = scenario("NGINX", vec![("qh-nginx", &nginx, &expect as Expect)]).await?;
    // The attempts before the last say when the next one comes.
    let hops = trace_to_dead(&hub, "NGINX-qh-nginx").await?;
    let attempts: Vec<&Value> = hops.iter().filter(|h| h["step"] == "attempt").collect();
    assert_eq!(attempts.len() as u64, ATTEMPTS - 1, "{hops:?}");
    for a in attempts {
        assert_eq!(a["detail"]["status"], 502, "{a}");
        assert!(a["detail"]["retry_in_ms"].as_u64().is_some(), "{a}");
    }
    Ok(())
}

/// Error pages no header or log line should carry as they are: NUL bytes,
/// bytes that are not UTF-8, 50 MiB, a chunked body that never ends. Only
/// a small prefix is read; the rest goes with the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_error_bodies_fail_with_a_readable_reason() -> anyhow::Result<()> {
    const HUGE: usize = 50 << 20;
    let nul = HostileReceiver::start(Behaviour::page(500, &b"boom\0\0\0 at line 1\r\n\x07"[..])).await?;
    let latin = HostileReceiver::start(Behaviour::page(500, &b"Fehler: \xe4\xf6\xfc \xff\xfe\r\n"[..])).await?;
    let huge = HostileReceiver::start(Behaviour::Huge { status: 503, size: HUGE, fill: b'x' }).await?;
    let endless = HostileReceiver::start(Behaviour::Endless { status: 502 }).await?;
    let nul_ok = |r: &str| r.starts_with("HTTP 500 Internal Server Error: boom\\u{00}\\u{00}\\u{00} at line 1");
    let latin_ok = |r: &str| r.starts_with("HTTP 500 Internal Server Error: Fehler: \u{FFFD}");
    // The reason holds a short prefix of the page, not the page.
    let huge_ok = |r: &str| r.starts_with("HTTP 503 Service Unavailable: xxxx") && r.len() < 400;
    let endless_ok = |r: &str| {
        r.starts_with("HTTP 502 Bad Gateway: upstream still thinking") && r.len() < 400 && !r.contains("timed out")
    };
    let _hub = scenario(
        "ODD",
        vec![
            ("qh-nul", &nul, &nul_ok as Expect),
            ("qh-latin", &latin, &latin_ok as Expect),
            ("qh-huge", &huge, &huge_ok as Expect),
            ("qh-endless", &endless, &endless_ok as Expect),
        ],
    )
    .await?;
    // No attempt took the 50 MiB: what the socket buffers held, at most.
    let taken = huge.body_bytes_taken();
    assert_eq!(huge.completed(), 0, "a 50 MiB page was read to its end ({taken} bytes taken)");
    assert!(taken < ATTEMPTS * HUGE as u64 / 2, "{taken} bytes of the 50 MiB pages were taken");
    Ok(())
}

/// Connections that go wrong below HTTP: no answer at all, a reset right
/// after the request, a 200 one byte a second (which never completes
/// within the timeout, so it is not a delivery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_reset_and_crawling_connections_fail_with_a_readable_reason() -> anyhow::Result<()> {
    let hang = HostileReceiver::start(Behaviour::Hang).await?;
    let reset = HostileReceiver::start(Behaviour::Reset).await?;
    let crawl = HostileReceiver::start(Behaviour::Dribble).await?;
    let timed_out = |r: &str| r.starts_with("timed out");
    let broken = |r: &str| r.starts_with("request failed: ") || r.starts_with("the answer broke off: ");
    let _hub = scenario(
        "CONN",
        vec![
            ("qh-hang", &hang, &timed_out as Expect),
            ("qh-reset", &reset, &broken as Expect),
            ("qh-crawl", &crawl, &timed_out as Expect),
        ],
    )
    .await?;
    Ok(())
}
