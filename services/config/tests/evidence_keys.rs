//! The keys of batched delivery, HTTP/2 to receivers, signed receipts and
//! the ledger's signed heads: what each refuses, named by its key.

fn config(org_extra: &str, deliver: &str, rest: &str) -> String {
    format!(
        "[operator]\ntoken = \"operator-token-0123456789\"\n\n[[org]]\nid = \"qh-town\"\nname = \"镇\"\n\
         kind = \"town_government\"\nregion = \"990101101\"\ntoken = \"token-qh-town-0123456789\"\n\
         deliver = {deliver}\n{org_extra}\n\n[[org]]\nid = \"qh-coord\"\nname = \"协调\"\n         kind = \"coordination_office\"\nregion = \"990101\"\ntoken = \"token-qh-coord-0123456789\"\n         deliver = {{ nats = true }}\n\n{rest}"
    )
}

fn refusal(text: &str) -> String {
    match xj_config::load_str(text, "test.toml") {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const KEY: &str = "public_key = \"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\"\n";

#[test]
fn batches_are_for_canonical_webhooks_without_receipts() {
    let ok = config("", "{ webhook = \"http://127.0.0.1:1/in\", batch = 50 }", "");
    assert_eq!(refusal(&ok), "");
    let e = refusal(&config("", "{ nats = true, batch = 5 }", ""));
    assert!(e.contains("org[0].deliver") && e.contains("batch is for webhook delivery"), "{e}");
    let e = refusal(&config("", "{ webhook = \"http://127.0.0.1:1/in\", batch = 501 }", ""));
    assert!(e.contains("1 to 500"), "{e}");
    let e = refusal(&config(
        &format!("{KEY}sign_receipts = true"),
        "{ webhook = \"http://127.0.0.1:1/in\", batch = 5 }",
        "",
    ));
    assert!(e.contains("sign_receipts") && e.contains("do not go together"), "{e}");
}

#[test]
fn http2_is_for_webhooks() {
    assert_eq!(refusal(&config("", "{ webhook = \"http://127.0.0.1:1/in\", http2 = true }", "")), "");
    assert_eq!(refusal(&config("", "{ webhook = \"http://127.0.0.1:1/in\", http2 = true, batch = 9 }", "")), "");
    let e = refusal(&config("", "{ pull = true, http2 = true }", ""));
    assert!(e.contains("org[0].deliver") && e.contains("http2 is for webhook delivery"), "{e}");
}

#[test]
fn receipts_need_a_key_but_any_channel() {
    assert_eq!(refusal(&config(&format!("{KEY}sign_receipts = true"), "{ pull = true }", "")), "");
    assert_eq!(refusal(&config(&format!("{KEY}sign_receipts = true"), "{ nats = true }", "")), "");
    let e = refusal(&config("sign_receipts = true", "{ pull = true }", ""));
    assert!(e.contains("needs the organisation's public_key"), "{e}");
}

#[test]
fn signed_heads_and_the_time_stamping_authority_are_checked() {
    let d = "{ pull = true }";
    assert_eq!(refusal(&config("", d, "[ledger]\nhead_every_s = 1\ntimestamp_url = \"http://127.0.0.1:9/\"\n")), "");
    let e = refusal(&config("", d, "[ledger]\nhead_every_s = 0\n"));
    assert!(e.contains("ledger.head_every_s"), "{e}");
    let e = refusal(&config("", d, "[ledger]\ntimestamp_url = \"ftp://tsa\"\n"));
    assert!(e.contains("ledger.timestamp_url"), "{e}");
    let e = refusal(&config("", d, "[ledger]\ntimestamp_timeout_ms = 5\n"));
    assert!(e.contains("ledger.timestamp_timeout_ms"), "{e}");
    let s = xj_config::load_str(&config("", d, ""), "test.toml").expect("defaults");
    assert_eq!((s.ledger.head_every_s, s.ledger.timestamp_url.as_deref()), (60, None));
}
