//! HTTP as a hostile client speaks it: raw bytes on a TCP connection (so a
//! request can stop half-way, or carry what an HTTP library would refuse to
//! send), from a chosen loopback address, and a small fixed-seed generator so
//! that a run of mutations is the same every time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// splitmix64: small, fast, and the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn byte(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// A connection to `to` from the loopback address `from` (127.0.0.2 is
/// another client than 127.0.0.1 as far as the server can tell).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// What came back on a raw connection.
#[derive(Debug, Default)]
pub struct RawAnswer {
    /// The status, when a response (or its start) arrived.
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The server closed the connection (or reset it).
    pub closed: bool,
    /// Nothing at all within the time allowed: the connection hangs.
    pub timed_out: bool,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one response: its head, then a `Content-Length` or chunked body;
/// or whatever arrives before the server closes, or `limit` passes.
pub async fn read_answer(stream: &mut TcpStream, limit: Duration) -> RawAnswer {
    let mut answer = RawAnswer::default();
    let mut buf = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(head_end) = find(&buf, b"\r\n\r\n") {
            parse_head(&buf[..head_end], &mut answer);
            let rest = buf[head_end + 4..].to_vec();
            if let Some(done) = body_complete(&answer, &rest) {
                answer.body = done;
                return answer;
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                answer.closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {
                answer.timed_out = buf.is_empty();
                break;
            }
        }
    }
    if let Some(head_end) = find(&buf, b"\r\n\r\n") {
        parse_head(&buf[..head_end], &mut answer);
        answer.body = buf[head_end + 4..].to_vec();
    }
    answer
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &[u8], answer: &mut RawAnswer) {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    answer.status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok());
    answer.headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
}

/// The body, once all of it is in `rest`.
fn body_complete(answer: &RawAnswer, rest: &[u8]) -> Option<Vec<u8>> {
    if answer.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let line_end = at + find(&rest[at..], b"\r\n")?;
            let size = usize::from_str_radix(String::from_utf8_lossy(&rest[at..line_end]).trim(), 16).ok()?;
            let start = line_end + 2;
            if size == 0 {
                return Some(out);
            }
            if rest.len() < start + size + 2 {
                return None;
            }
            out.extend_from_slice(&rest[start..start + size]);
            at = start + size + 2;
        }
    }
    let length: usize = answer.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    (rest.len() >= length).then(|| rest[..length].to_vec())
}

/// Sends `request` on a new connection from `from` and reads the answer.
pub async fn exchange_from(
    from: IpAddr,
    to: SocketAddr,
    request: &[u8],
    limit: Duration,
) -> std::io::Result<RawAnswer> {
    let mut stream = connect_from(from, to).await?;
    stream.write_all(request).await?;
    Ok(read_answer(&mut stream, limit).await)
}

/// Sends `request` on a new connection and reads the answer.
pub async fn exchange(to: SocketAddr, request: &[u8], limit: Duration) -> std::io::Result<RawAnswer> {
    exchange_from(IpAddr::from([127, 0, 0, 1]), to, request, limit).await
}

/// The hub's address from its base URL (`http://127.0.0.1:port`).
pub fn address(base: &str) -> anyhow::Result<SocketAddr> {
    Ok(base.trim_start_matches("http://").trim_end_matches('/').parse()?)
}

/// A request head and body as raw bytes, `Content-Length` set to `declared`
/// (which may be a lie).
pub fn request(method: &str, path: &str, headers: &[(&str, &[u8])], declared: Option<usize>, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: hub\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(n) = declared {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

impl crate::TestHub {
    /// The standard county with its configuration passed through `edit`,
    /// running everything `xj up` runs — the console too, on the API's
    /// listener.
    pub async fn start_up(edit: impl FnOnce(String) -> String) -> anyhow::Result<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let (receivers, urls) = crate::county_receivers().await?;
        let county =
            format!("[data]\ndir = \"{}\"\n\n{}", dir.path().join("data").display(), crate::county_config(&urls));
        let path = dir.path().join("xianjie.toml");
        std::fs::write(&path, edit(county))?;
        let settings = std::sync::Arc::new(xj_config::load_file(&path)?);
        let server = xj_bus::embedded::NatsServer::start(xj_bus::embedded::ServerOptions {
            store_dir: dir.path().join("js"),
            ..Default::default()
        })?;
        let nats = crate::TestNats { server, dir };
        Self::start_with_services(nats, settings, receivers, &xj::hub::Service::UP).await
    }
}
