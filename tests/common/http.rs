//! A minimal HTTP/1.1 client for tests (one request per connection).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn request(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Reply {
    try_request(addr, method, path, content_type, body).unwrap_or_else(|| panic!("no HTTP answer to {method} {path}"))
}

/// The reply, or None when the connection fails or closes without a whole answer.
pub fn try_request(addr: SocketAddr, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Option<Reply> {
    try_request_within(addr, method, path, content_type, body, None)
}

/// Like [`try_request`], but gives up (None) when no whole answer came within `timeout`.
pub fn try_request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    timeout: Option<std::time::Duration>,
) -> Option<Reply> {
    let mut stream = match timeout {
        Some(t) => TcpStream::connect_timeout(&addr, t).ok()?,
        None => TcpStream::connect(addr).ok()?,
    };
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) and close before reading a large body: a failed write is fine then.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    // A body cut short (the server died mid-answer) is no answer.
    let length = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).and_then(|(_, v)| v.parse().ok());
    if length.is_some_and(|n: usize| n != body.len()) {
        return None;
    }
    Some(Reply { status, headers, body: body.to_string() })
}

pub fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, None, b"")
}

pub fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> Reply {
    request(addr, "POST", path, Some("application/json"), body.to_string().as_bytes())
}

/// An open SSE stream: reads `(id, data)` events as they arrive.
pub struct Sse {
    stream: TcpStream,
    buffer: String,
    pending_id: Option<String>,
    pub status: u16,
}

impl Sse {
    pub fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut stream = TcpStream::connect(addr).expect("connect");
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_millis(100))).unwrap();
        let mut sse = Sse { stream, buffer: String::new(), pending_id: None, status: 0 };
        while !sse.buffer.contains("\r\n\r\n") {
            sse.fill();
        }
        let (head, rest) = sse.buffer.split_once("\r\n\r\n").unwrap();
        sse.status = head.split(' ').nth(1).unwrap().parse().unwrap();
        sse.buffer = rest.to_string();
        sse
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk) {
            Ok(0) => false,
            Ok(n) => {
                self.buffer.push_str(&String::from_utf8_lossy(&chunk[..n]));
                true
            }
            Err(_) => true, // read timeout: nothing yet
        }
    }

    /// Reads up to `n` events, waiting at most `timeout` for them; fewer means the stream went quiet.
    pub fn take(&mut self, n: usize, timeout: std::time::Duration) -> Vec<(String, serde_json::Value)> {
        let deadline = std::time::Instant::now() + timeout;
        let mut events = Vec::new();
        while events.len() < n && std::time::Instant::now() < deadline {
            while let Some(end) = self.buffer.find('\n') {
                let line: String = self.buffer.drain(..=end).collect();
                let line = line.trim_end_matches(['\r', '\n']);
                if let Some(id) = line.strip_prefix("id: ") {
                    self.pending_id = Some(id.to_string());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    let id = self.pending_id.take().expect("id before data");
                    events.push((id, serde_json::from_str(data).expect("JSON data")));
                    if events.len() == n {
                        return events;
                    }
                }
            }
            if !self.fill() {
                break;
            }
        }
        events
    }
}
