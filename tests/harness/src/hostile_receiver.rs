//! Departmental systems that answer badly, for tests: a raw TCP server
//! (no HTTP library between the test and the bytes) that reads each
//! request and then does one chosen bad thing — redirects, error pages with
//! CR LF, NUL bytes or invalid UTF-8, a body of 50 MiB or one that never
//! ends, no answer at all, a reset connection, one byte a second. It counts
//! what it was sent, so a test can tell whether a redirect was followed or
//! a body cut short.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// nginx's default error page for a 502, as it sends it: CR LF line ends.
pub const NGINX_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";

/// What the receiver does with every request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// Answers `status` with `headers` and `body` (Content-Length set).
    Answer { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// Answers `status` with a body of `size` bytes of `fill`, written as
    /// fast as the client takes it.
    Huge { status: u16, size: usize, fill: u8 },
    /// Answers `status` with a chunked body that never ends.
    Endless { status: u16 },
    /// Reads the request and never answers, keeping the connection open.
    Hang,
    /// Reads the request and resets the connection (RST, no answer).
    Reset,
    /// Sends a whole `200` answer one byte a second.
    Dribble,
}

impl Behaviour {
    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Self::Answer { status, headers: vec![("Location".into(), location.into())], body: Vec::new() }
    }

    /// `status` with `body` as `text/html`.
    pub fn page(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self::Answer { status, headers: vec![("Content-Type".into(), "text/html".into())], body: body.into() }
    }
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Seen {
    requests: Vec<Request>,
    /// Bytes of answer body the peer accepted before it went away.
    body_bytes_taken: u64,
    /// Answers written to the end.
    completed: usize,
}

/// A receiver that misbehaves as told; stops when dropped.
pub struct HostileReceiver {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostileReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HostileReceiver {
    pub async fn start(behaviour: Behaviour) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(conn, behaviour.clone(), state.clone()));
            }
        });
        Ok(Self { addr, seen, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/inbox", self.addr)
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Bytes of the answers' bodies written before the client went away.
    pub fn body_bytes_taken(&self) -> u64 {
        self.lock().body_bytes_taken
    }

    /// Answers written to their end (a client that stops reading and
    /// closes leaves a long one unfinished).
    pub fn completed(&self) -> usize {
        self.lock().completed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn serve(mut conn: TcpStream, behaviour: Behaviour, seen: Arc<Mutex<Seen>>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    seen.lock().unwrap_or_else(|p| p.into_inner()).requests.push(req);
    let taken = |n: u64| seen.lock().unwrap_or_else(|p| p.into_inner()).body_bytes_taken += n;
    let completed = || seen.lock().unwrap_or_else(|p| p.into_inner()).completed += 1;
    match behaviour {
        Behaviour::Answer { status, headers, body } => {
            let mut head = status_line(status);
            for (k, v) in &headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()));
            if conn.write_all(head.as_bytes()).await.is_ok() && conn.write_all(&body).await.is_ok() {
                taken(body.len() as u64);
                completed();
            }
            let _ = conn.shutdown().await;
        }
        Behaviour::Huge { status, size, fill } => {
            let head = format!("{}Content-Length: {size}\r\nConnection: close\r\n\r\n", status_line(status));
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![fill; 64 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                if conn.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
                taken(n as u64);
                left -= n;
            }
            completed();
        }
        Behaviour::Endless { status } => {
            let head = format!("{}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n", status_line(status));
            if conn.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let data = "upstream still thinking… ".repeat(40);
            let chunk = format!("{:x}\r\n{data}\r\n", data.len());
            loop {
                if conn.write_all(chunk.as_bytes()).await.is_err() {
                    return;
                }
                taken(data.len() as u64);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Behaviour::Hang => {
            // Holds the connection open until the client gives up.
            let mut buf = [0u8; 1024];
            while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
        }
        Behaviour::Reset => {
            let _ = conn.set_zero_linger();
            drop(conn);
        }
        Behaviour::Dribble => {
            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            for b in answer {
                if conn.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn status_line(status: u16) -> String {
    let reason = match status {
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    format!("HTTP/1.1 {status} {reason}\r\n")
}

/// Reads one request: its head and as much body as `Content-Length` says.
async fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let want: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut have = buf.len() - (end + 4);
    while have < want {
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        have += n;
    }
    Some(Request { method, path, headers, body_len: have })
}
