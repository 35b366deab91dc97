//! How a sandbox department speaks: canonical JSON on `POST /v1/messages`,
//! or — for an organisation whose `format` is a native one — its own
//! documents on `POST /v1/native`, and it reads what it receives in that
//! format too. The department writes and reads its documents with its own
//! format's mapping, as a real departmental system has its own exporter.

use serde_json::Value;
use xj_config::Org;
use xj_mapping::{CANONICAL, Formats, inbound, outbound};

/// Sends `msg` (canonical form) as `org` would: in its own format.
pub async fn submit(
    http: &reqwest::Client,
    gateway: &str,
    formats: &Formats,
    org: &Org,
    msg: &Value,
) -> anyhow::Result<reqwest::Response> {
    let req = if org.format == CANONICAL {
        http.post(format!("{gateway}/v1/messages")).json(msg)
    } else {
        let f = formats.get(&org.format)?;
        let body = outbound::translate_value(f, msg)?;
        http.post(format!("{gateway}/v1/native")).header("content-type", f.content_type()).body(body)
    };
    Ok(req.bearer_auth(&org.secret).send().await?)
}

/// Reads a delivery to `org` (its own format) into canonical form.
pub fn read(formats: &Formats, org: &Org, body: &[u8]) -> anyhow::Result<Value> {
    if org.format == CANONICAL {
        return Ok(serde_json::from_slice(body)?);
    }
    let f = formats.get(&org.format)?;
    Ok(inbound::received(f, body, "hub")?.message)
}
