//! A loopback HTTP/1.1 server for stand-ins of model APIs (Anthropic Messages, OpenAI Responses
//! and Chat Completions, Gemini), so the real agent CLIs complete whole turns offline.
//!
//! hyper serves the connections (keep-alive, chunked request bodies, `Expect: 100-continue`), on
//! a runtime of the server's own. Every request is recorded before the stand-in's handler
//! answers it, so a test can check what the CLI sent (byte-exact prompts, how many times)
//! whatever the answer was. A handler is plain blocking code, run on a thread of its own per
//! request, and writes its answer through a [`Reply`]: one JSON document, or a server-sent-event
//! stream sent as HTTP chunks, with whatever pauses it likes between events (a slow turn).

#![allow(dead_code)] // each stand-in uses a different part of this module

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime},
};

use http_body_util::BodyExt;
use hyper::{
    body::{Body, Bytes, Frame, Incoming, SizeHint},
    header::{HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE},
    Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

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

/// Answers one request. Returning an error before answering closes the connection; during an
/// event stream, it cuts the stream off.
pub type Handler = dyn Fn(&RecordedRequest, &mut Reply) -> std::io::Result<()> + Send + Sync;

struct Shared {
    requests: Mutex<Vec<RecordedRequest>>,
    handler: Box<Handler>,
    /// Names the handlers' threads.
    name: String,
}

/// The server. Dropping it stops accepting and closes open connections.
pub struct StandIn {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// Accepts and serves; shut down on drop, which drops every connection.
    runtime: Option<tokio::runtime::Runtime>,
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
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{name}-server"))
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime for {name}: {e}"));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap_or_else(|e| panic!("binding {name}: {e}"));
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            handler: Box::new(handler),
            name: format!("{name}-conn"),
        });
        runtime.spawn(accept(listener, shared.clone()));
        StandIn {
            shared,
            addr,
            runtime: Some(runtime),
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
        if let Some(runtime) = self.runtime.take() {
            // Drops the accept loop and every connection; a handler still running finds its
            // reply's receiver gone and stops.
            runtime.shutdown_background();
        }
    }
}

async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| serve(request, shared.clone()));
            // A connection's error (the client went away) ends only that connection.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Records `request`, then has the handler answer it on a thread of its own.
async fn serve(
    request: Request<Incoming>,
    shared: Arc<Shared>,
) -> Result<Response<ReplyBody>, std::io::Error> {
    let (head, body) = request.into_parts();
    let raw_body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes()
        .to_vec();
    let recorded = RecordedRequest {
        method: head.method.to_string(),
        path: head.uri.path().to_string(),
        query: head.uri.query().unwrap_or_default().to_string(),
        headers: head
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: serde_json::from_slice(&raw_body).unwrap_or(Value::Null),
        raw_body,
        received: SystemTime::now(),
    };
    shared.requests.lock().unwrap().push(recorded.clone());
    let (answer, answered) = oneshot::channel();
    let name = shared.name.clone();
    std::thread::Builder::new().name(name).spawn(move || {
        let mut reply = Reply {
            answer: Some(answer),
            events: None,
        };
        if let Err(error) = (shared.handler)(&recorded, &mut reply) {
            if let Some(events) = reply.events.take() {
                let _ = events.send(Err(error));
            }
        }
    })?;
    answered.await.map_err(|_| {
        std::io::Error::other("the stand-in's handler failed before answering; connection closed")
    })
}

/// A response body: one document, or the chunks a handler sends while it runs.
pub enum ReplyBody {
    Whole(Option<Bytes>),
    Chunks(mpsc::UnboundedReceiver<std::io::Result<Bytes>>),
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ReplyBody::Whole(body) => Poll::Ready(body.take().map(|body| Ok(Frame::data(body)))),
            ReplyBody::Chunks(chunks) => chunks
                .poll_recv(context)
                .map(|chunk| chunk.map(|chunk| chunk.map(Frame::data))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            // Exact: hyper sends it with a `content-length`.
            ReplyBody::Whole(body) => {
                SizeHint::with_exact(body.as_ref().map_or(0, |body| body.len() as u64))
            }
            ReplyBody::Chunks(_) => SizeHint::default(),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, ReplyBody::Whole(None))
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
pub struct Reply {
    /// Where the response head goes; taken by the first answer.
    answer: Option<oneshot::Sender<Response<ReplyBody>>>,
    /// The open event stream's chunks.
    events: Option<mpsc::UnboundedSender<std::io::Result<Bytes>>>,
}

impl Reply {
    /// One JSON document with `status`.
    pub fn json(&mut self, status: u16, value: &Value) -> std::io::Result<()> {
        let body = serde_json::to_vec(value).unwrap();
        let mut response = Response::new(ReplyBody::Whole(Some(body.into())));
        *response.status_mut() = StatusCode::from_u16(status).map_err(std::io::Error::other)?;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        self.send_head(response)
    }

    /// Any answer: `status`, `headers` (name, value) and `body` as given (no `content-type`
    /// unless `headers` has one).
    pub fn raw(
        &mut self,
        status: u16,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> std::io::Result<()> {
        let mut response = Response::new(ReplyBody::Whole(Some(body.into())));
        *response.status_mut() = StatusCode::from_u16(status).map_err(std::io::Error::other)?;
        for (name, value) in headers {
            let name = hyper::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(std::io::Error::other)?;
            let value = HeaderValue::from_str(value).map_err(std::io::Error::other)?;
            response.headers_mut().append(name, value);
        }
        self.send_head(response)
    }

    /// The head of a `text/event-stream` response.
    pub fn start_events(&mut self) -> std::io::Result<()> {
        let (events, chunks) = mpsc::unbounded_channel();
        let mut response = Response::new(ReplyBody::Chunks(chunks));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.events = Some(events);
        self.send_head(response)
    }

    /// One server-sent event (`event:` line only when `name` is given; `data:` the JSON), as
    /// one HTTP chunk.
    pub fn event(&mut self, name: Option<&str>, data: &Value) -> std::io::Result<()> {
        let text = match name {
            Some(name) => format!("event: {name}\ndata: {data}\n\n"),
            None => format!("data: {data}\n\n"),
        };
        self.chunk(text)
    }

    /// One event whose data is `text` as is (`[DONE]`).
    pub fn data(&mut self, text: &str) -> std::io::Result<()> {
        self.chunk(format!("data: {text}\n\n"))
    }

    /// Ends the stream.
    pub fn finish_events(&mut self) -> std::io::Result<()> {
        self.events = None;
        Ok(())
    }

    /// Sends the response head (and a whole body), with the headers every answer has.
    fn send_head(&mut self, mut response: Response<ReplyBody>) -> std::io::Result<()> {
        let headers = response.headers_mut();
        headers.insert("request-id", HeaderValue::from_static("req_standin"));
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        let answer = self
            .answer
            .take()
            .ok_or_else(|| std::io::Error::other("a reply answers once"))?;
        answer.send(response).map_err(|_| gone())
    }

    fn chunk(&mut self, text: String) -> std::io::Result<()> {
        let events = self
            .events
            .as_ref()
            .ok_or_else(|| std::io::Error::other("an event outside an event stream"))?;
        events.send(Ok(Bytes::from(text))).map_err(|_| gone())
    }
}

/// The client went away (or the stand-in stopped): nobody reads the reply.
fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A server whose handler answers `{"n": <body length>}`, or streams two events and then
    /// fails for a body `fail`.
    fn server() -> StandIn {
        StandIn::start("standin-test", |request, reply| {
            if request.raw_body == b"fail" {
                reply.start_events()?;
                reply.data("one")?;
                return Err(std::io::Error::other("the handler gave up"));
            }
            reply.json(200, &serde_json::json!({ "n": request.raw_body.len() }))
        })
    }

    /// Reads one response with a `content-length` body from `stream`: (head, body).
    fn read_response(stream: &mut TcpStream) -> (String, String) {
        let mut received = Vec::new();
        let mut byte = [0u8; 1];
        while !received.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            received.push(byte[0]);
        }
        let head = String::from_utf8(received).unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length: "))
            .expect("a content-length")
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0; length];
        stream.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    }

    #[test]
    fn a_chunked_body_after_100_continue_is_recorded_whole_and_the_connection_kept() {
        let server = server();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST /v1/x?beta=true HTTP/1.1\r\nhost: localhost\r\nexpect: 100-continue\r\n\
             transfer-encoding: chunked\r\n\r\n"
        )
        .unwrap();
        let mut continued = [0u8; 25];
        stream.read_exact(&mut continued).unwrap();
        assert_eq!(&continued, b"HTTP/1.1 100 Continue\r\n\r\n");
        stream
            .write_all(b"3\r\n{\"a\r\n5\r\n\": 1}\r\n0\r\n\r\n")
            .unwrap();
        let (head, body) = read_response(&mut stream);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(head.contains("request-id: req_standin"), "{head}");
        assert_eq!(body, r#"{"n":8}"#);
        // The same connection serves the next request.
        write!(
            stream,
            "POST /second HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{{}}"
        )
        .unwrap();
        let (_, body) = read_response(&mut stream);
        assert_eq!(body, r#"{"n":2}"#);
        let requests = server.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            (requests[0].path.as_str(), requests[0].query.as_str()),
            ("/v1/x", "beta=true")
        );
        assert_eq!(requests[0].body, serde_json::json!({ "a": 1 }));
        assert_eq!(requests[0].header("Transfer-Encoding"), Some("chunked"));
    }

    #[test]
    fn a_handler_failing_mid_stream_cuts_the_stream_off() {
        let server = server();
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "POST / HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\n\r\nfail"
        )
        .unwrap();
        let mut received = String::new();
        // The connection is closed without the stream's last chunk (what was sent before may
        // not have left the server's buffer either).
        stream.read_to_string(&mut received).unwrap();
        assert!(!received.ends_with("0\r\n\r\n"), "{received}");
        assert_eq!(server.requests().len(), 1);
    }
}
