//! A loopback stand-in for the Anthropic Messages API, so the real Claude Code CLI completes whole
//! turns offline: point `ANTHROPIC_BASE_URL` at [`MessagesApi::base_url`].
//!
//! Served by `standin_http` (declare both modules in the test file). Routes:
//! - `POST /v1/messages` (any query string, e.g. `?beta=true`): a server-sent-event stream when
//!   the body says `"stream": true` (message_start, content_block_start, ping,
//!   content_block_delta…, content_block_stop, message_delta, message_stop), else one JSON message;
//! - `POST /v1/messages/count_tokens`: `{"input_tokens": N}`;
//! - anything else: 404 with an Anthropic-style JSON error (still recorded).
//!
//! Replies to the main conversation are scripted by the text of its LAST user message (the last
//! message whose role is `user`: the CLI may append a `"role": "system"` message after it):
//! - `AO_TOOL:<shell command>` (to the end of that line): a `tool_use` block for the `Bash` tool
//!   running that command. In the default permission mode the CLI then asks the operator, but
//!   only for commands it does not consider read-only: `echo hi` ran without asking (2.1.197),
//!   `echo hi > file` asked. 2.1.332 defaults to auto mode, which cannot work offline: pass
//!   `--permission-mode default` to get the ordinary prompt;
//! - `AO_SLOW:<ms>`: the reply text is streamed in pieces and `message_stop` held back so the
//!   response takes about that long;
//! - otherwise, a last user message holding a `tool_result`: the text "tool done" (the markers
//!   win because a rejected call's `tool_result` and the operator's next message travel together);
//! - otherwise the default reply ("Done.", see [`MessagesApi::set_default_reply`]).
//!
//! Side requests (2.1.197's session-title generation) always get a short reply at once.
//! How they are told apart: see [`is_conversation_request`].
//!
//! Every reply reports token usage as the real API does: a stream's `message_start` carries the
//! input side (with `output_tokens: 1`), its `message_delta` the final figures. What the main
//! conversation's replies report is settable ([`MessagesApi::queue_usage`]) and recorded
//! ([`MessagesApi::usage_sent`]), so a test can expect exact sums.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub use crate::standin_http::RecordedRequest;
use crate::standin_http::{
    message_texts, messages, offers_tools, slow_marker, tool_marker, Reply, StandIn, StandInApi,
};

/// Reply text for side requests.
pub const SIDE_REPLY: &str = "Ok.";
/// Reply text after a tool result.
pub const TOOL_DONE_REPLY: &str = "tool done";

/// The tokens one reply reports, as the Messages API counts them: `input` excludes what was read
/// from or written to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
}

impl Default for Usage {
    /// What every reply reported before usage was settable: 10 in, 5 out, no cache.
    fn default() -> Self {
        Usage {
            input: 10,
            output: 5,
            cache_read: 0,
            cache_write_5m: 0,
            cache_write_1h: 0,
        }
    }
}

impl Usage {
    /// The `usage` object of a reply, with `output_tokens` as given (a stream's `message_start`
    /// reports 1 before the output is known).
    fn to_json(self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.cache_write_5m + self.cache_write_1h,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_5m,
                "ephemeral_1h_input_tokens": self.cache_write_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": "standard",
        })
    }
}

/// What the Messages API stand-in tells apart in a recorded request.
pub trait MessagesRequest {
    /// A `POST /v1/messages` request (streamed or not).
    fn is_messages(&self) -> bool;
    /// A request of the main conversation, see [`is_conversation_request`].
    fn is_conversation(&self) -> bool;
}

impl MessagesRequest for RecordedRequest {
    fn is_messages(&self) -> bool {
        self.method == "POST" && self.path == "/v1/messages"
    }

    fn is_conversation(&self) -> bool {
        self.is_messages() && is_conversation_request(&self.body)
    }
}

/// Whether a `/v1/messages` body belongs to the main conversation rather than a side request.
///
/// Rule (observed with Claude Code 2.1.197 and 2.1.332, see /tmp/claude-findings.md): the main
/// conversation's requests carry the agent's tool list (`tools` non-empty, `Bash` among them).
/// The only side request observed, 2.1.197's session-title generation (model
/// `claude-haiku-4-5-20251001`, system prompt "Generate a concise, sentence-case title…",
/// structured output `{"title": …}`), sends `"tools": []`; it also embeds the user's prompt, so
/// a marker like `AO_TOOL:` shows up in it too. 2.1.332 sent no side request at all.
pub fn is_conversation_request(body: &Value) -> bool {
    offers_tools(body)
}

/// The text blocks of every user message of a request body, in order. A message whose content is
/// a plain string counts as one block. Tool results are not text blocks and are left out.
pub fn user_texts(body: &Value) -> Vec<String> {
    messages(body)
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .flat_map(message_texts)
        .collect()
}

/// The last message of a request body whose role is `user`. Claude Code (2.1.197 and later)
/// may put a `"role": "system"` message (the `mid-conversation-system` beta: agent types, …)
/// AFTER the user's message, so "the last message" is not necessarily the user's.
pub fn last_user_message(body: &Value) -> Option<&Value> {
    messages(body)
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
}

/// The text blocks of the last user message of a request body (see [`last_user_message`]).
pub fn last_user_texts(body: &Value) -> Vec<String> {
    last_user_message(body)
        .map(message_texts)
        .unwrap_or_default()
}

/// Whether the last user message of a request body holds a `tool_result` block.
pub fn last_message_is_tool_result(body: &Value) -> bool {
    last_user_message(body).is_some_and(|last| {
        last.get("content")
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            })
    })
}

/// What the stand-in's replies depend on.
struct Script {
    default_reply: Mutex<String>,
    ids: AtomicU64,
    /// What the next conversation replies report, first first; then [`Usage::default`].
    usage_queue: Mutex<VecDeque<Usage>>,
    /// What each conversation reply reported: its model and usage.
    usage_sent: Mutex<Vec<(String, Usage)>>,
}

impl Script {
    /// The usage of the next reply to `body`: queued for conversation replies, else the default.
    /// A conversation reply's is recorded.
    fn next_usage(&self, body: &Value, model: &str) -> Usage {
        if !is_conversation_request(body) {
            return Usage::default();
        }
        let usage = self
            .usage_queue
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_default();
        self.usage_sent
            .lock()
            .unwrap()
            .push((model.to_string(), usage));
        usage
    }
}

/// The Messages API stand-in. Dropping it stops the server.
pub struct MessagesApi {
    server: StandIn,
    script: Arc<Script>,
}

impl MessagesApi {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start() -> MessagesApi {
        let script = Arc::new(Script {
            default_reply: Mutex::new("Done.".into()),
            ids: AtomicU64::new(1),
            usage_queue: Mutex::new(VecDeque::new()),
            usage_sent: Mutex::new(Vec::new()),
        });
        let server = {
            let script = script.clone();
            StandIn::start("messages-api", move |request, reply| {
                respond(request, reply, &script)
            })
            .with_conversation(RecordedRequest::is_conversation, MessagesApi::user_texts)
        };
        MessagesApi { server, script }
    }

    /// `http://127.0.0.1:PORT`, for `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The text the main conversation gets when nothing else is scripted.
    pub fn set_default_reply(&self, text: &str) {
        *self.script.default_reply.lock().unwrap() = text.to_string();
    }

    /// The usage the next conversation replies report, one per reply in order; replies after
    /// these report [`Usage::default`]. Side requests always report the default, unrecorded.
    pub fn queue_usage(&self, usage: impl IntoIterator<Item = Usage>) {
        self.script.usage_queue.lock().unwrap().extend(usage);
    }

    /// The model and usage of every conversation reply sent so far, in order.
    pub fn usage_sent(&self) -> Vec<(String, Usage)> {
        self.script.usage_sent.lock().unwrap().clone()
    }

    /// The text blocks of every user message of `request`, in order (see [`user_texts`]).
    pub fn user_texts(request: &RecordedRequest) -> Vec<String> {
        user_texts(&request.body)
    }

    /// Waits until at least `count` conversation requests were received.
    pub fn wait_for_conversation_requests(&self, count: usize, timeout: Duration) -> bool {
        self.wait_for(timeout, |all| {
            all.iter().filter(|r| r.is_conversation()).count() >= count
        })
    }
}

impl StandInApi for MessagesApi {
    fn server(&self) -> &StandIn {
        &self.server
    }
}

/// What to say to one `/v1/messages` request.
enum Answer {
    Text(String),
    Slow(String, Duration),
    Tool(String),
}

fn answer_for(body: &Value, script: &Script) -> Answer {
    if !is_conversation_request(body) {
        return Answer::Text(side_reply(body));
    }
    let last = last_user_texts(body).join("\n");
    if let Some(command) = tool_marker(&last) {
        return Answer::Tool(command);
    }
    let reply = script.default_reply.lock().unwrap().clone();
    if let Some(over) = slow_marker(&last) {
        return Answer::Slow(reply, over);
    }
    // After the text markers: when the operator rejects a tool call, the CLI sends the rejected
    // call's tool_result and the operator's next message together in one user message.
    if last_message_is_tool_result(body) {
        return Answer::Text(TOOL_DONE_REPLY.into());
    }
    Answer::Text(reply)
}

/// A side request's reply: [`SIDE_REPLY`], or, when the request asks for structured output
/// (`output_config.format` of type `json_schema`, as the session-title request does), a JSON
/// object with every required property filled in (strings with [`SIDE_REPLY`]).
fn side_reply(body: &Value) -> String {
    let format = &body["output_config"]["format"];
    if format["type"] != "json_schema" {
        return SIDE_REPLY.into();
    }
    let schema = &format["schema"];
    let mut object = serde_json::Map::new();
    for name in schema["required"].as_array().into_iter().flatten() {
        let Some(name) = name.as_str() else { continue };
        let value = match schema["properties"][name]["type"].as_str() {
            Some("boolean") => json!(false),
            Some("number") | Some("integer") => json!(0),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => json!(SIDE_REPLY),
        };
        object.insert(name.to_string(), value);
    }
    Value::Object(object).to_string()
}

fn respond(request: &RecordedRequest, reply: &mut Reply, script: &Script) -> std::io::Result<()> {
    let body = &request.body;
    let id = script.ids.fetch_add(1, Ordering::SeqCst);
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/messages") => {
            let answer = answer_for(body, script);
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("claude-stand-in")
                .to_string();
            let usage = script.next_usage(body, &model);
            if body.get("stream").and_then(Value::as_bool) == Some(true) {
                stream_message(reply, id, &model, &answer, usage)
            } else {
                reply.json(200, &plain_message(id, &model, &answer, usage))
            }
        }
        ("POST", "/v1/messages/count_tokens") => {
            let tokens = (request.raw_body.len() / 4).max(1);
            reply.json(200, &json!({ "input_tokens": tokens }))
        }
        _ => reply.json(
            404,
            &json!({
                "type": "error",
                "error": {
                    "type": "not_found_error",
                    "message": format!(
                        "the stand-in does not serve {} {}",
                        request.method, request.path
                    ),
                },
            }),
        ),
    }
}

fn tool_input(command: &str) -> Value {
    json!({ "command": command, "description": "Run the scripted command" })
}

fn plain_message(id: u64, model: &str, answer: &Answer, usage: Usage) -> Value {
    let (content, stop_reason) = match answer {
        Answer::Text(text) | Answer::Slow(text, _) => {
            (json!([{ "type": "text", "text": text }]), "end_turn")
        }
        Answer::Tool(command) => (
            json!([{
                "type": "tool_use",
                "id": format!("toolu_standin{id:06}"),
                "name": "Bash",
                "input": tool_input(command),
            }]),
            "tool_use",
        ),
    };
    json!({
        "id": format!("msg_standin{id:06}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage.to_json(usage.output),
    })
}

fn stream_message(
    reply: &mut Reply,
    id: u64,
    model: &str,
    answer: &Answer,
    usage: Usage,
) -> std::io::Result<()> {
    reply.start_events()?;
    reply.event(
        Some("message_start"),
        &json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_standin{id:06}"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage.to_json(1),
            },
        }),
    )?;
    let stop_reason = match answer {
        Answer::Tool(command) => {
            reply.event(
                Some("content_block_start"),
                &json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {
                        "type": "tool_use",
                        "id": format!("toolu_standin{id:06}"),
                        "name": "Bash",
                        "input": {},
                    },
                }),
            )?;
            reply.event(Some("ping"), &json!({ "type": "ping" }))?;
            let input = tool_input(command).to_string();
            // Two pieces, as the real API splits partial JSON arbitrarily.
            let cut = input
                .char_indices()
                .nth(input.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for piece in [&input[..cut], &input[cut..]] {
                reply.event(
                    Some("content_block_delta"),
                    &json!({
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": { "type": "input_json_delta", "partial_json": piece },
                    }),
                )?;
            }
            "tool_use"
        }
        Answer::Text(text) | Answer::Slow(text, _) => {
            let started = Instant::now();
            reply.event(
                Some("content_block_start"),
                &json!({
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": { "type": "text", "text": "" },
                }),
            )?;
            reply.event(Some("ping"), &json!({ "type": "ping" }))?;
            let pieces: Vec<String> = match answer {
                Answer::Slow(..) => text.split_inclusive(' ').map(str::to_string).collect(),
                _ => vec![text.clone()],
            };
            let total = match answer {
                Answer::Slow(_, duration) => *duration,
                _ => Duration::ZERO,
            };
            // Spread the pieces over the first half, then hold the rest before message_stop.
            let step = total / 2 / (pieces.len() as u32).max(1);
            for piece in &pieces {
                reply.event(
                    Some("content_block_delta"),
                    &json!({
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": { "type": "text_delta", "text": piece },
                    }),
                )?;
                std::thread::sleep(step);
            }
            // Keep the stream alive with pings while holding.
            while started.elapsed() < total {
                let left = total - started.elapsed();
                std::thread::sleep(left.min(Duration::from_millis(500)));
                if started.elapsed() < total {
                    reply.event(Some("ping"), &json!({ "type": "ping" }))?;
                }
            }
            "end_turn"
        }
    };
    reply.event(
        Some("content_block_stop"),
        &json!({ "type": "content_block_stop", "index": 0 }),
    )?;
    reply.event(
        Some("message_delta"),
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": usage.to_json(usage.output),
        }),
    )?;
    reply.event(Some("message_stop"), &json!({ "type": "message_stop" }))?;
    reply.finish_events()
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Read, Write},
        net::TcpStream,
    };

    use super::*;
    use crate::standin_http::event_data;

    fn post(api: &MessagesApi, path: &str, body: &Value) -> (String, String) {
        crate::standin_http::post(api.port(), path, body)
    }

    fn conversation(text: &str) -> Value {
        json!({
            "model": "claude-test",
            "stream": true,
            "tools": [{ "name": "Bash", "input_schema": { "type": "object" } }],
            "messages": [{ "role": "user", "content": [{ "type": "text", "text": text }] }],
        })
    }

    fn events(body: &str) -> Vec<String> {
        body.lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn a_streamed_reply_is_a_well_formed_event_stream() {
        let api = MessagesApi::start();
        let (head, body) = post(&api, "/v1/messages?beta=true", &conversation("hello"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("text/event-stream"), "{head}");
        assert_eq!(
            events(&body),
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(body.contains(r#""text":"Done.""#), "{body}");
        assert!(body.contains(r#""stop_reason":"end_turn""#), "{body}");
        let requests = api.conversation_requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].query, "beta=true");
        assert_eq!(MessagesApi::user_texts(&requests[0]), ["hello"]);
    }

    #[test]
    fn queued_usage_is_reported_at_the_end_of_a_stream_and_recorded() {
        let api = MessagesApi::start();
        let first = Usage {
            input: 3,
            output: 70,
            cache_read: 1000,
            cache_write_5m: 200,
            cache_write_1h: 30,
        };
        api.queue_usage([first]);
        let usage_of = |body: &str, event: &str| {
            event_data(body)
                .into_iter()
                .find(|e| e["type"] == event)
                .map(|e| match event {
                    "message_start" => e["message"]["usage"].clone(),
                    _ => e["usage"].clone(),
                })
                .unwrap()
        };
        let (_, body) = post(&api, "/v1/messages", &conversation("AO_TOOL:echo hi"));
        let start = usage_of(&body, "message_start");
        let end = usage_of(&body, "message_delta");
        assert_eq!(
            (
                start["input_tokens"].as_u64(),
                start["output_tokens"].as_u64()
            ),
            (Some(3), Some(1))
        );
        assert_eq!(start["cache_creation_input_tokens"], 230);
        assert_eq!(start["cache_creation"]["ephemeral_1h_input_tokens"], 30);
        assert_eq!(end["output_tokens"], 70);
        assert_eq!(end["cache_read_input_tokens"], 1000);

        let mut side = conversation("title please");
        side["tools"] = json!([]);
        let (_, body) = post(&api, "/v1/messages", &side);
        assert_eq!(usage_of(&body, "message_delta")["output_tokens"], 5);
        let (_, body) = post(&api, "/v1/messages", &conversation("hello"));
        assert_eq!(usage_of(&body, "message_delta")["output_tokens"], 5);
        assert_eq!(
            api.usage_sent(),
            [
                ("claude-test".to_string(), first),
                ("claude-test".to_string(), Usage::default())
            ]
        );
    }

    #[test]
    fn scripted_tool_use_slow_replies_and_side_requests() {
        let api = MessagesApi::start();
        let (_, body) = post(
            &api,
            "/v1/messages",
            &conversation("run AO_TOOL:echo hi\nthanks"),
        );
        assert!(body.contains(r#""name":"Bash""#), "{body}");
        assert!(body.contains("input_json_delta"), "{body}");
        assert!(body.contains(r#""stop_reason":"tool_use""#), "{body}");
        let partial: String = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_string))
            .collect();
        let input: Value = serde_json::from_str(&partial).unwrap();
        assert_eq!(input["command"], "echo hi");

        api.set_default_reply("slow one");
        let started = Instant::now();
        let (_, body) = post(&api, "/v1/messages", &conversation("AO_SLOW:300"));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(body.contains("message_stop"));

        let mut side = conversation("AO_TOOL:rm -rf /");
        side["tools"] = json!([]);
        side["stream"] = json!(false);
        let (head, body) = post(&api, "/v1/messages", &side);
        assert!(head.contains("application/json"), "{head}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["content"][0]["text"], SIDE_REPLY);

        let (head, body) = post(&api, "/v1/messages/count_tokens", &conversation("x"));
        assert!(head.starts_with("HTTP/1.1 200"));
        assert!(body.contains("input_tokens"));
        let (head, _) = post(&api, "/v1/other", &json!({}));
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
        assert_eq!(api.requests().len(), 5);
        assert_eq!(api.conversation_requests().len(), 2);
    }

    #[test]
    fn a_tool_result_gets_tool_done_and_chunked_bodies_are_read() {
        let api = MessagesApi::start();
        let body = json!({
            "model": "m",
            "tools": [{ "name": "Bash" }],
            "messages": [
                { "role": "user", "content": "AO_TOOL:ls" },
                { "role": "assistant", "content": [{ "type": "tool_use", "id": "t", "name": "Bash", "input": {} }] },
                { "role": "user", "content": [{ "type": "tool_result", "tool_use_id": "t", "content": "x" }] },
            ],
        })
        .to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", api.port())).unwrap();
        let (a, b) = body.split_at(body.len() / 2);
        write!(
            stream,
            "POST /v1/messages HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
             {:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while reader.read_line(&mut head).unwrap() > 2 {}
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut reply = vec![0; length];
        reader.read_exact(&mut reply).unwrap();
        let reply: Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["content"][0]["text"], TOOL_DONE_REPLY);
        assert_eq!(
            api.requests()[0].body["messages"].as_array().unwrap().len(),
            3
        );
        assert_eq!(MessagesApi::user_texts(&api.requests()[0]), ["AO_TOOL:ls"]);
    }

    #[test]
    fn markers_win_over_a_rejected_calls_tool_result_and_the_last_user_message_counts() {
        let api = MessagesApi::start();
        let script = &api.script;
        let body = json!({
            "tools": [{ "name": "Bash" }],
            "messages": [
                { "role": "user", "content": "AO_TOOL:ls" },
                { "role": "assistant", "content": [{ "type": "tool_use", "id": "t", "name": "Bash", "input": {} }] },
                { "role": "user", "content": [
                    { "type": "tool_result", "tool_use_id": "t", "content": "rejected", "is_error": true },
                    { "type": "text", "text": "[Request interrupted by user for tool use]\n" },
                    { "type": "text", "text": "again AO_TOOL:pwd" },
                ] },
                { "role": "system", "content": "Available agent types: AO_SLOW:5" },
            ],
        });
        assert!(matches!(answer_for(&body, script), Answer::Tool(c) if c == "pwd"));
        let mut side = body.clone();
        side["tools"] = json!([]);
        assert!(matches!(answer_for(&side, script), Answer::Text(t) if t == SIDE_REPLY));
        side["output_config"] = json!({ "format": { "type": "json_schema", "schema": {
            "type": "object", "properties": { "title": { "type": "string" } }, "required": ["title"] } } });
        assert!(matches!(answer_for(&side, script), Answer::Text(t) if t == r#"{"title":"Ok."}"#));
    }
}
