//! A loopback HTTP/1.1 server for stand-ins of model APIs (Anthropic Messages, OpenAI Responses
//! and Chat Completions, Gemini), so the real agent CLIs complete whole turns offline.
//!
//! std + serde_json only. Every connection is served on its own thread (keep-alive,
//! `Content-Length` or chunked request bodies, `Expect: 100-continue`). Every request is recorded
//! before the stand-in's handler answers it, so a test can check what the CLI sent (byte-exact
//! prompts, how many times) whatever the answer was. A handler writes its answer through a
//! [`Reply`]: one JSON document, or a server-sent-event stream sent as HTTP chunks, with whatever
//! pauses it likes between events (a slow turn).

#![allow(dead_code)] // each stand-in uses a different part of this module

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Without the query string.
    pub path: String,
    /// The query string without `?` (empty when there is none).
    pub query: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub raw_body: Vec<u8>,
    /// The body parsed as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    /// When the request was received (wall clock, to line up with other logs).
    pub received: SystemTime,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Answers one request. Returning an error closes the connection.
pub type Handler = dyn Fn(&RecordedRequest, &mut Reply) -> std::io::Result<()> + Send + Sync;

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    handler: Box<Handler>,
    stopping: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
}

/// The server. Dropping it stops accepting and closes open connections.
pub struct StandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
    conversation: fn(&RecordedRequest) -> bool,
    user_texts: fn(&RecordedRequest) -> Vec<String>,
}

impl StandIn {
    /// Binds 127.0.0.1 on a free port and serves every request with `handler`; `name` names the
    /// server's threads.
    pub fn start(
        name: &str,
        handler: impl Fn(&RecordedRequest, &mut Reply) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> StandIn {
        let listener =
            TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("binding {name}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            handler: Box::new(handler),
            stopping: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            let connection_name = format!("{name}-conn");
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || {
                    for stream in listener.incoming() {
                        if shared.stopping.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(stream) = stream else { continue };
                        if let Ok(clone) = stream.try_clone() {
                            shared.connections.lock().unwrap().push(clone);
                        }
                        let shared = shared.clone();
                        let _ = std::thread::Builder::new()
                            .name(connection_name.clone())
                            .spawn(move || serve_connection(stream, &shared));
                    }
                })
                .unwrap()
        };
        StandIn {
            shared,
            addr,
            acceptor: Some(acceptor),
            conversation: |_| true,
            user_texts: |_| Vec::new(),
        }
    }

    /// Says which requests belong to the conversation (not the CLI's side requests: titles,
    /// summaries) and what the user texts of a request are, for [`StandInApi`].
    pub fn with_conversation(
        mut self,
        conversation: fn(&RecordedRequest) -> bool,
        user_texts: fn(&RecordedRequest) -> Vec<String>,
    ) -> StandIn {
        self.conversation = conversation;
        self.user_texts = user_texts;
        self
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request so far, any path, in the order received.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the recorded requests, or `timeout` passes; returns whether
    /// it held.
    pub fn wait_for(&self, timeout: Duration, done: impl Fn(&[RecordedRequest]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.shared.requests.lock().unwrap()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for stream in self.shared.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// What every model API stand-in offers over its [`StandIn`] (see
/// [`StandIn::with_conversation`]); an implementation names its server.
pub trait StandInApi {
    fn server(&self) -> &StandIn;

    fn port(&self) -> u16 {
        self.server().port()
    }

    /// Every request so far, any path, in the order received.
    fn requests(&self) -> Vec<RecordedRequest> {
        self.server().requests()
    }

    /// The conversation's requests, in order.
    fn conversation_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(self.server().conversation)
            .collect()
    }

    /// The user texts of each conversation request, in order.
    fn prompts_sent(&self) -> Vec<Vec<String>> {
        self.conversation_requests()
            .iter()
            .map(self.server().user_texts)
            .collect()
    }

    /// Waits until `done` holds for the recorded requests, or `timeout` passes; returns whether
    /// it held.
    fn wait_for(&self, timeout: Duration, done: impl Fn(&[RecordedRequest]) -> bool) -> bool {
        self.server().wait_for(timeout, done)
    }

    /// Waits until more than `count` conversation requests were received.
    fn wait_for_more_conversation_requests(&self, count: usize, timeout: Duration) -> bool {
        let conversation = self.server().conversation;
        self.wait_for(timeout, |requests| {
            requests.iter().filter(|r| conversation(r)).count() > count
        })
    }
}

/// The `messages` of a request body (the Messages and Chat Completions APIs).
pub fn messages(body: &Value) -> &[Value] {
    body.get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The texts of one of those messages: its content when that is a string, else its `text`
/// blocks (tool calls and results are not text).
pub fn message_texts(message: &Value) -> Vec<String> {
    match message.get("content") {
        Some(Value::String(text)) => vec![text.clone()],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a request body offers the model tools (a non-empty `tools`): the agent CLIs send their
/// tool list with the conversation's requests, and none with their side requests.
pub fn offers_tools(body: &Value) -> bool {
    body.get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| !tools.is_empty())
}

/// The command an `AO_TOOL:<shell command>` marker in `text` asks for: the rest of that line,
/// trimmed.
pub fn tool_marker(text: &str) -> Option<String> {
    let rest = text.split("AO_TOOL:").nth(1)?;
    Some(rest.lines().next().unwrap_or("").trim().to_string())
}

/// How long an `AO_SLOW:<ms>` marker in `text` asks a reply to take (the digits right after it).
pub fn slow_marker(text: &str) -> Option<Duration> {
    let rest = text.split("AO_SLOW:").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().map(Duration::from_millis)
}

/// How a handler answers: [`Reply::json`] once, or [`Reply::start_events`], any number of
/// [`Reply::event`] / [`Reply::data`], then [`Reply::finish_events`].
pub struct Reply<'a> {
    writer: &'a mut TcpStream,
}

impl Reply<'_> {
    /// One JSON document with `status`.
    pub fn json(&mut self, status: u16, value: &Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(value).unwrap();
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             request-id: req_standin\r\nconnection: keep-alive\r\n\r\n",
            status_text(status),
            body.len()
        );
        self.writer.write_all(head.as_bytes())?;
        self.writer.write_all(&body)?;
        self.writer.flush()
    }

    /// The head of a `text/event-stream` response.
    pub fn start_events(&mut self) -> std::io::Result<()> {
        self.writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n\
              request-id: req_standin\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n\r\n",
        )?;
        self.writer.flush()
    }

    /// One server-sent event (`event:` line only when `name` is given; `data:` the JSON), as
    /// one HTTP chunk.
    pub fn event(&mut self, name: Option<&str>, data: &Value) -> std::io::Result<()> {
        let text = match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        };
        self.chunk(&text)
    }

    /// One event whose data is `text` as is (`[DONE]`).
    pub fn data(&mut self, text: &str) -> std::io::Result<()> {
        self.chunk(&format!("data: {text}\n\n"))
    }

    /// Ends the stream.
    pub fn finish_events(&mut self) -> std::io::Result<()> {
        self.writer.write_all(b"0\r\n\r\n")?;
        self.writer.flush()
    }

    fn chunk(&mut self, text: &str) -> std::io::Result<()> {
        write!(self.writer, "{:x}\r\n{text}\r\n", text.len())?;
        self.writer.flush()
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<String>> {
    let mut line = Vec::new();
    if reader.read_until(b'\n', &mut line)? == 0 {
        return Ok(None);
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let start = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue, // tolerate stray CRLF between requests
            Some(line) => break line,
        }
    };
    let mut parts = start.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(reader)? else {
            return Ok(None);
        };
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let Some(size_line) = read_line(reader)? else {
                return Ok(None);
            };
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("chunk size: {e}"))
            })?;
            if size == 0 {
                // Trailers up to the empty line.
                while let Some(line) = read_line(reader)? {
                    if line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            request.body.extend_from_slice(&chunk);
            read_line(reader)?; // the CRLF after the chunk
        }
    } else if let Some(length) = request
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        request.body = vec![0; length];
        reader.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

fn serve_connection(stream: TcpStream, shared: &Shared) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            _ => return,
        };
        if request
            .header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
        {
            // Only reached once the body was read; harmless for clients that do not wait.
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let (path, query) = match request.target.split_once('?') {
            Some((path, query)) => (path.to_string(), query.to_string()),
            None => (request.target.clone(), String::new()),
        };
        let recorded = RecordedRequest {
            method: request.method,
            path,
            query,
            headers: request.headers,
            body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
            raw_body: request.body,
            received: SystemTime::now(),
        };
        shared.requests.lock().unwrap().push(recorded.clone());
        let answered = (shared.handler)(
            &recorded,
            &mut Reply {
                writer: &mut writer,
            },
        );
        if answered.is_err() || close {
            let _ = writer.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Sends one JSON `POST` on a fresh connection and reads the whole response: (head, body as
/// received, chunk framing included). For the stand-ins' own tests.
pub fn post(port: u16, path: &str, body: &Value) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    (head.to_string(), rest.to_string())
}

/// The `data:` payloads of a server-sent-event body, parsed as JSON where they are JSON.
pub fn event_data(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_string())))
        .collect()
}
