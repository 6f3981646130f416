//! A loopback stand-in for the OpenAI Responses API, so the real Codex CLI completes whole turns
//! offline: a Codex provider whose `base_url` is [`ResponsesApi::base_url`] (which ends in
//! `/v1`) and `wire_api = "responses"`.
//!
//! Served by `standin_http` (declare both modules in the test file). Routes:
//! - `POST /v1/responses`: a server-sent-event stream (`response.created`,
//!   `response.output_item.added`, `response.output_text.delta`…, `response.output_item.done`,
//!   `response.completed`), which is all Codex 0.171 asks for (`"stream": true`);
//! - anything else: 404 with an OpenAI-style JSON error (still recorded).
//!
//! Replies to the conversation are scripted by its last input item, when that is a user message:
//! - `AO_TOOL:<shell command>` (to the end of that line): a function call of Codex's
//!   `exec_command` tool running that command with `sandbox_permissions: "require_escalated"`,
//!   which Codex, under the `on-request` approval policy, asks the operator to approve; with
//!   `AO_UNESCALATED` anywhere in the message, without asking for escalation (under the `never`
//!   policy, as an unattended confined Codex runs, an escalated call is refused unrun);
//! - `AO_SLOW:<ms>`: the reply's text held back about that long;
//! - otherwise the text "Done.".
//!
//! After a function call's output (the command ran, or was refused), the reply is "tool done".
//!
//! Every reply ends with `response.completed` carrying its `usage`: 10 input and 5 output
//! tokens, unless a test chose the figures of the conversation's replies
//! ([`ResponsesApi::set_usage`]).
//!
//! Side requests: Codex asks for a title of a new conversation in a request of its own (structured
//! output `{"title": …}`, quoting the user's prompt, so markers show up in it too); it gets a
//! title at once. How they are told apart: see [`ResponsesRequest::is_conversation`].

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use serde_json::{json, Value};

pub use crate::standin_http::RecordedRequest;
use crate::standin_http::{slow_marker, tool_marker, Reply, StandIn, StandInApi};

pub const DEFAULT_REPLY: &str = "Done.";
pub const TOOL_DONE_REPLY: &str = "tool done";
pub const TITLE: &str = "Stand-in title";

/// What the Responses API stand-in tells apart in a recorded request.
pub trait ResponsesRequest {
    fn is_responses(&self) -> bool;
    /// A request of the conversation: Codex's `x-codex-turn-metadata` header says
    /// `"thread_source": "user"` (0.171.0; the title request says `"thread_title"`).
    fn is_conversation(&self) -> bool;
}

impl ResponsesRequest for RecordedRequest {
    fn is_responses(&self) -> bool {
        self.method == "POST" && self.path == "/v1/responses"
    }

    fn is_conversation(&self) -> bool {
        self.is_responses()
            && self
                .header("x-codex-turn-metadata")
                .and_then(|m| serde_json::from_str::<Value>(m).ok())
                .is_some_and(|m| m["thread_source"] == "user")
    }
}

fn input(body: &Value) -> &[Value] {
    body.get("input")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn is_user_message(item: &Value) -> bool {
    item["type"] == "message" && item["role"] == "user"
}

fn texts(item: &Value) -> Vec<String> {
    item["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "input_text")
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect()
}

/// The texts of every user message of a request body, in order, without the environment
/// context Codex sends as a user message of its own.
pub fn user_texts(body: &Value) -> Vec<String> {
    input(body)
        .iter()
        .filter(|item| is_user_message(item))
        .flat_map(texts)
        .filter(|text| !text.starts_with("<environment_context>"))
        .collect()
}

/// What a reply used, as the Responses API counts it: cached input inside `input_tokens`,
/// reasoning inside `output_tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyUsage {
    pub input_tokens: u64,
    pub cached_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
}

impl ReplyUsage {
    /// `response.completed`'s `usage`.
    fn to_json(self) -> Value {
        json!({
            "input_tokens": self.input_tokens,
            "input_tokens_details": { "cached_tokens": self.cached_tokens },
            "output_tokens": self.output_tokens,
            "output_tokens_details": { "reasoning_tokens": self.reasoning_tokens },
            "total_tokens": self.input_tokens + self.output_tokens,
        })
    }
}

/// The `usage` of a reply whose figures no test chose.
fn default_usage() -> Value {
    json!({
        "input_tokens": 10, "input_tokens_details": null,
        "output_tokens": 5, "output_tokens_details": null, "total_tokens": 15,
    })
}

/// The `usage` a reply to `request` reports: the chosen figures for the conversation's.
fn usage_for(request: &RecordedRequest, chosen: Option<ReplyUsage>) -> Value {
    match chosen.filter(|_| request.is_conversation()) {
        Some(chosen) => chosen.to_json(),
        None => default_usage(),
    }
}

/// The stand-in. Dropping it stops the server.
pub struct ResponsesApi {
    server: StandIn,
    usage: Arc<Mutex<Option<ReplyUsage>>>,
}

impl ResponsesApi {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start() -> ResponsesApi {
        let ids = Arc::new(AtomicU64::new(1));
        let usage = Arc::new(Mutex::new(None));
        let chosen = usage.clone();
        let server = StandIn::start("responses-api", move |request, reply| {
            let usage = *chosen.lock().unwrap();
            respond(request, reply, ids.fetch_add(1, Ordering::SeqCst), usage)
        })
        .with_conversation(RecordedRequest::is_conversation, |r| user_texts(&r.body));
        ResponsesApi { server, usage }
    }

    /// Every conversation reply from now on (text or tool call) reports `usage`; side requests
    /// (titles) keep the default figures.
    pub fn set_usage(&self, usage: ReplyUsage) {
        *self.usage.lock().unwrap() = Some(usage);
    }

    /// `http://127.0.0.1:PORT/v1`, a Codex provider's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.base_url())
    }
}

impl StandInApi for ResponsesApi {
    fn server(&self) -> &StandIn {
        &self.server
    }
}

/// What to answer one request.
enum Answer {
    Text(String, Duration),
    /// The command, and whether the call asks for escalated permissions.
    Tool(String, bool),
}

fn answer_for(request: &RecordedRequest) -> Answer {
    let body = &request.body;
    if !request.is_conversation() {
        return Answer::Text(json!({ "title": TITLE }).to_string(), Duration::ZERO);
    }
    let Some(last) = input(body).last() else {
        return Answer::Text(DEFAULT_REPLY.into(), Duration::ZERO);
    };
    if !is_user_message(last) {
        return Answer::Text(TOOL_DONE_REPLY.into(), Duration::ZERO);
    }
    let text = texts(last).join("\n");
    if let Some(command) = tool_marker(&text) {
        return Answer::Tool(command, !text.contains("AO_UNESCALATED"));
    }
    let delay = slow_marker(&text).unwrap_or(Duration::ZERO);
    Answer::Text(DEFAULT_REPLY.into(), delay)
}

fn respond(
    request: &RecordedRequest,
    reply: &mut Reply,
    id: u64,
    usage: Option<ReplyUsage>,
) -> std::io::Result<()> {
    if !request.is_responses() {
        return reply.json(
            404,
            &json!({ "error": {
                "type": "invalid_request_error",
                "message": format!("the stand-in does not serve {} {}", request.method, request.path),
            }}),
        );
    }
    let response_id = format!("resp_standin{id:06}");
    reply.start_events()?;
    let event = |reply: &mut Reply, name: &str, mut data: Value| {
        data["type"] = json!(name);
        reply.event(Some(name), &data)
    };
    event(
        reply,
        "response.created",
        json!({ "response": { "id": response_id } }),
    )?;
    let item = match answer_for(request) {
        Answer::Tool(command, escalated) => {
            let arguments = if escalated {
                json!({
                    "cmd": command,
                    "sandbox_permissions": "require_escalated",
                    "justification": "Run the scripted command?",
                })
            } else {
                json!({ "cmd": command })
            };
            let item = json!({
                "type": "function_call",
                "id": format!("fc_standin{id:06}"),
                "call_id": format!("call_standin{id:06}"),
                "name": "exec_command",
                "arguments": arguments.to_string(),
            });
            event(
                reply,
                "response.output_item.added",
                json!({ "output_index": 0, "item": item }),
            )?;
            item
        }
        Answer::Text(text, delay) => {
            let item_id = format!("msg_standin{id:06}");
            event(
                reply,
                "response.output_item.added",
                json!({ "output_index": 0, "item": {
                    "type": "message", "id": item_id, "role": "assistant", "content": [],
                }}),
            )?;
            std::thread::sleep(delay);
            event(
                reply,
                "response.output_text.delta",
                json!({ "item_id": item_id, "output_index": 0, "content_index": 0, "delta": text }),
            )?;
            json!({
                "type": "message", "id": item_id, "role": "assistant",
                "content": [{ "type": "output_text", "text": text, "annotations": [] }],
            })
        }
    };
    event(
        reply,
        "response.output_item.done",
        json!({ "output_index": 0, "item": item }),
    )?;
    event(
        reply,
        "response.completed",
        json!({ "response": { "id": response_id, "usage": usage_for(request, usage) } }),
    )?;
    reply.finish_events()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin_http::{event_data, post};

    fn conversation(text: &str) -> Value {
        json!({ "stream": true, "input": [
            { "type": "message", "role": "user", "content": [
                { "type": "input_text", "text": "<environment_context>x</environment_context>" }] },
            { "type": "message", "role": "user", "content": [{ "type": "input_text", "text": text }] },
        ]})
    }

    #[test]
    fn requests_without_codex_metadata_are_side_requests_answered_with_a_title() {
        let api = ResponsesApi::start();
        let port = api.port();
        let (head, body) = post(port, "/v1/responses", &conversation("AO_TOOL:rm x"));
        assert!(head.contains("text/event-stream"), "{head}");
        let events = event_data(&body);
        let done = events
            .iter()
            .find(|e| e["type"] == "response.output_item.done")
            .unwrap();
        assert_eq!(
            done["item"]["content"][0]["text"],
            json!({ "title": TITLE }).to_string()
        );
        assert_eq!(events.last().unwrap()["type"], "response.completed");
        let recorded = api.requests();
        assert_eq!(user_texts(&recorded[0].body), ["AO_TOOL:rm x"]);
        assert!(!recorded[0].is_conversation());
        let (head, _) = post(port, "/v1/other", &json!({}));
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }

    #[test]
    fn conversation_replies_report_the_usage_a_test_chose_and_side_requests_the_default() {
        let chosen = ReplyUsage {
            input_tokens: 1200,
            cached_tokens: 200,
            output_tokens: 90,
            reasoning_tokens: 30,
        };
        let reported = usage_for(&recorded(conversation("AO_TOOL:echo hi")), Some(chosen));
        assert_eq!(reported["input_tokens"], 1200);
        assert_eq!(reported["input_tokens_details"]["cached_tokens"], 200);
        assert_eq!(reported["output_tokens"], 90);
        assert_eq!(reported["output_tokens_details"]["reasoning_tokens"], 30);
        let mut title = recorded(conversation("title?"));
        title.headers.clear();
        assert_eq!(usage_for(&title, Some(chosen)), default_usage());
        assert_eq!(
            usage_for(&recorded(conversation("hi")), None),
            default_usage()
        );
    }

    fn recorded(body: Value) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: "/v1/responses".into(),
            query: String::new(),
            headers: vec![(
                "x-codex-turn-metadata".into(),
                r#"{"thread_source":"user","request_kind":"turn"}"#.into(),
            )],
            raw_body: body.to_string().into_bytes(),
            body,
            received: std::time::SystemTime::now(),
        }
    }

    #[test]
    fn the_conversation_gets_a_tool_call_a_slow_reply_or_tool_done() {
        match answer_for(&recorded(conversation("run\nAO_TOOL:echo hi > f\nmore"))) {
            Answer::Tool(command, escalated) => {
                assert_eq!(command, "echo hi > f");
                assert!(escalated);
            }
            Answer::Text(..) => panic!("no tool call"),
        }
        match answer_for(&recorded(conversation("AO_SLOW:1500 please"))) {
            Answer::Text(text, delay) => {
                assert_eq!(text, DEFAULT_REPLY);
                assert_eq!(delay, Duration::from_millis(1500));
            }
            Answer::Tool(..) => panic!("a tool call"),
        }
        let mut after_tool = conversation("AO_TOOL:echo hi");
        after_tool["input"].as_array_mut().unwrap().push(json!({
            "type": "function_call_output", "call_id": "call_1", "output": "hi",
        }));
        match answer_for(&recorded(after_tool)) {
            Answer::Text(text, _) => assert_eq!(text, TOOL_DONE_REPLY),
            Answer::Tool(..) => panic!("the tool call again"),
        }
    }
}
