//! A loopback stand-in for the Gemini API (`generativelanguage.googleapis.com`), so the real
//! Gemini CLI completes whole turns offline: point `GOOGLE_GEMINI_BASE_URL` at
//! [`GeminiApi::base_url`] (with any `GEMINI_API_KEY`, and a pinned model: Gemini CLI's "auto"
//! model first asks the API to route the prompt).
//!
//! Served by `standin_http` (declare both modules in the test file). Routes, as Gemini CLI 0.61
//! calls them:
//! - `POST /v1beta/models/<model>:streamGenerateContent?alt=sse`: the conversation. Server-sent
//!   events, each `data: <GenerateContentResponse>` (`candidates[0].content.parts` with `text`
//!   or `functionCall {name, args}`, `finishReason` on the last, `usageMetadata`);
//! - `POST /v1beta/models/<model>:generateContent`: side requests (on resume the CLI asks a
//!   flash-lite model for a one-line summary of the conversation, which it embeds whole): a
//!   short text at once;
//! - `POST /v1beta/models/<model>:countTokens`: `{"totalTokens": N}`;
//! - anything else: 404 with a Google-style JSON error (still recorded).
//!
//! Conversation replies are scripted by the text parts of the LAST `user` content:
//! - `AO_TOOL:<shell command>` (to the end of that line): a `run_shell_command` function call,
//!   which Gemini CLI asks the operator to approve in its default approval mode;
//! - `AO_SLOW:<ms>`: the reply streamed in pieces over about that long;
//! - a last content holding a `functionResponse` (a tool ran): "tool done";
//! - otherwise "Done.".
//!
//! The last chunk of every reply carries `usageMetadata`: 10 prompt and 5 candidate tokens,
//! unless a test chose the figures of the conversation's replies ([`GeminiApi::set_usage`]).

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::{json, Value};

pub use crate::standin_http::RecordedRequest;
use crate::standin_http::{offers_tools, slow_marker, tool_marker, Reply, StandIn, StandInApi};

/// Reply text for side requests.
pub const SIDE_REPLY: &str = "Ok.";
/// Reply text after a tool ran.
pub const TOOL_DONE_REPLY: &str = "tool done";
/// Reply text when nothing else is scripted.
pub const DEFAULT_REPLY: &str = "Done.";

/// What the stand-in tells apart in a recorded request.
pub trait GeminiRequest {
    /// A request of the main conversation: streamed, with the agent's tools.
    fn is_conversation(&self) -> bool;
}

impl GeminiRequest for RecordedRequest {
    fn is_conversation(&self) -> bool {
        self.method == "POST"
            && self.path.ends_with(":streamGenerateContent")
            && offers_tools(&self.body)
    }
}

/// The text parts of every `user` content of a request body, in order (function responses
/// left out). Gemini CLI sends its session context as the first part of the first one.
pub fn user_texts(body: &Value) -> Vec<String> {
    contents(body)
        .iter()
        .filter(|c| c["role"] == "user")
        .flat_map(text_parts)
        .collect()
}

fn contents(body: &Value) -> &[Value] {
    body["contents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text_parts(content: &Value) -> Vec<String> {
    content["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|part| part["text"].as_str())
        .map(str::to_string)
        .collect()
}

/// What a reply used, as the Gemini API counts it: cached tokens inside `promptTokenCount`,
/// thoughts apart from the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyUsage {
    pub prompt: u64,
    pub cached: u64,
    pub candidates: u64,
    pub thoughts: u64,
}

impl ReplyUsage {
    /// `usageMetadata`.
    fn to_json(self) -> Value {
        json!({
            "promptTokenCount": self.prompt,
            "cachedContentTokenCount": self.cached,
            "candidatesTokenCount": self.candidates,
            "thoughtsTokenCount": self.thoughts,
            "totalTokenCount": self.prompt + self.candidates + self.thoughts,
        })
    }
}

/// The Gemini API stand-in. Dropping it stops the server.
pub struct GeminiApi {
    server: StandIn,
    usage: Arc<Mutex<Option<ReplyUsage>>>,
}

impl GeminiApi {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub fn start() -> GeminiApi {
        let usage = Arc::new(Mutex::new(None));
        let chosen = usage.clone();
        let server = StandIn::start("gemini-api", move |request, reply| {
            let usage = *chosen.lock().unwrap();
            respond(request, reply, usage)
        })
        .with_conversation(RecordedRequest::is_conversation, |r| user_texts(&r.body));
        GeminiApi { server, usage }
    }

    /// Every conversation reply from now on (text or function call) reports `usage` on its
    /// last chunk; side requests keep the default figures.
    pub fn set_usage(&self, usage: ReplyUsage) {
        *self.usage.lock().unwrap() = Some(usage);
    }

    /// `http://127.0.0.1:PORT`, for `GOOGLE_GEMINI_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }
}

impl StandInApi for GeminiApi {
    fn server(&self) -> &StandIn {
        &self.server
    }
}

/// What to say to one conversation request.
enum Answer {
    Text(String, Duration),
    Tool(String),
}

fn answer_for(body: &Value) -> Answer {
    let last = contents(body).iter().rev().find(|c| c["role"] == "user");
    let text = last.map(text_parts).unwrap_or_default().join("\n");
    if let Some(command) = tool_marker(&text) {
        return Answer::Tool(command);
    }
    if let Some(over) = slow_marker(&text) {
        return Answer::Text(DEFAULT_REPLY.into(), over);
    }
    let ran_tool = last
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    let reply = if ran_tool {
        TOOL_DONE_REPLY
    } else {
        DEFAULT_REPLY
    };
    Answer::Text(reply.into(), Duration::ZERO)
}

/// The `usageMetadata` of a reply whose figures no test chose.
fn default_usage() -> Value {
    json!({ "promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15 })
}

/// The `usageMetadata` a reply to `request` reports: the chosen figures for the
/// conversation's.
fn usage_for(request: &RecordedRequest, chosen: Option<ReplyUsage>) -> Value {
    match chosen.filter(|_| request.is_conversation()) {
        Some(chosen) => chosen.to_json(),
        None => default_usage(),
    }
}

/// One `GenerateContentResponse` with `parts`; the last of a reply (`usage` given) is
/// finished and says what the reply used.
fn response(model: &str, parts: Value, usage: Option<&Value>) -> Value {
    let mut candidate = json!({ "content": { "role": "model", "parts": parts }, "index": 0 });
    let mut response = json!({ "modelVersion": model });
    if let Some(usage) = usage {
        candidate["finishReason"] = json!("STOP");
        response["usageMetadata"] = usage.clone();
    }
    response["candidates"] = json!([candidate]);
    response
}

fn respond(
    request: &RecordedRequest,
    reply: &mut Reply,
    usage: Option<ReplyUsage>,
) -> std::io::Result<()> {
    let usage = usage_for(request, usage);
    let model = request
        .path
        .strip_prefix("/v1beta/models/")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or("gemini-stand-in")
        .to_string();
    let method = request.path.rsplit(':').next().unwrap_or_default();
    match (request.method.as_str(), method) {
        ("POST", "streamGenerateContent") => {
            reply.start_events()?;
            match answer_for(&request.body) {
                Answer::Tool(command) => {
                    let call = json!([{ "functionCall": {
                        "name": "run_shell_command",
                        "args": { "command": command, "description": "Run the scripted command" },
                    } }]);
                    reply.event(None, &response(&model, call, Some(&usage)))?;
                }
                Answer::Text(text, total) => {
                    let started = Instant::now();
                    let pieces: Vec<&str> = text.split_inclusive(' ').collect();
                    let step = total / (pieces.len() as u32 + 1);
                    for (i, piece) in pieces.iter().enumerate() {
                        std::thread::sleep(step);
                        let last = i + 1 == pieces.len();
                        if last {
                            std::thread::sleep(total.saturating_sub(started.elapsed()));
                        }
                        let usage = last.then_some(&usage);
                        reply.event(None, &response(&model, json!([{ "text": piece }]), usage))?;
                    }
                }
            }
            reply.finish_events()
        }
        ("POST", "generateContent") => reply.json(
            200,
            &response(&model, json!([{ "text": SIDE_REPLY }]), Some(&usage)),
        ),
        ("POST", "countTokens") => reply.json(
            200,
            &json!({ "totalTokens": (request.raw_body.len() / 4).max(1) }),
        ),
        _ => reply.json(
            404,
            &json!({ "error": {
                "code": 404,
                "status": "NOT_FOUND",
                "message": format!(
                    "the stand-in does not serve {} {}",
                    request.method, request.path
                ),
            } }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin_http::{event_data, post};

    fn conversation(text: &str) -> Value {
        json!({
            "contents": [
                { "role": "user", "parts": [{ "text": "<session_context>…" }, { "text": "first" }] },
                { "role": "model", "parts": [{ "text": "Done." }] },
                { "role": "user", "parts": [{ "text": text }] },
            ],
            "tools": [{ "functionDeclarations": [{ "name": "run_shell_command" }] }],
        })
    }

    const STREAM: &str = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse";

    #[test]
    fn a_tool_marker_becomes_a_shell_function_call_and_is_recorded() {
        let api = GeminiApi::start();
        let port = api.port();
        let (head, body) = post(port, STREAM, &conversation("run AO_TOOL:echo hi > x"));
        assert!(head.contains("text/event-stream"), "{head}");
        let events = event_data(&body);
        assert_eq!(events.len(), 1, "{body}");
        let part = &events[0]["candidates"][0]["content"]["parts"][0];
        assert_eq!(part["functionCall"]["name"], "run_shell_command");
        assert_eq!(part["functionCall"]["args"]["command"], "echo hi > x");
        assert_eq!(events[0]["candidates"][0]["finishReason"], "STOP");
        let recorded = api.conversation_requests();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].query, "alt=sse");
        assert_eq!(
            user_texts(&recorded[0].body),
            ["<session_context>…", "first", "run AO_TOOL:echo hi > x"]
        );
    }

    #[test]
    fn the_last_chunk_of_a_conversation_reply_reports_the_usage_a_test_chose() {
        let api = GeminiApi::start();
        api.set_usage(ReplyUsage {
            prompt: 1500,
            cached: 400,
            candidates: 70,
            thoughts: 20,
        });
        let port = api.port();
        for text in ["run AO_TOOL:echo hi", "hello there"] {
            let (_, body) = post(port, STREAM, &conversation(text));
            let events = event_data(&body);
            let (last, rest) = events.split_last().unwrap();
            assert!(rest.iter().all(|e| e.get("usageMetadata").is_none()));
            let usage = &last["usageMetadata"];
            assert_eq!(usage["promptTokenCount"], 1500);
            assert_eq!(usage["cachedContentTokenCount"], 400);
            assert_eq!(usage["candidatesTokenCount"], 70);
            assert_eq!(usage["thoughtsTokenCount"], 20);
        }
        let (_, side) = post(
            port,
            "/v1beta/models/gemini-3.5-flash-lite:generateContent",
            &json!({ "contents": [] }),
        );
        let side: Value = serde_json::from_str(&side).unwrap();
        assert_eq!(side["usageMetadata"], default_usage());
    }

    #[test]
    fn a_slow_reply_takes_its_time_and_side_requests_do_not() {
        let api = GeminiApi::start();
        let port = api.port();
        let started = Instant::now();
        let (_, body) = post(port, STREAM, &conversation("AO_SLOW:600"));
        assert!(started.elapsed() >= Duration::from_millis(600));
        let text: String = event_data(&body)
            .iter()
            .map(|e| {
                e["candidates"][0]["content"]["parts"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(text, DEFAULT_REPLY);
        let (_, side) = post(
            port,
            "/v1beta/models/gemini-3.5-flash-lite:generateContent",
            &json!({ "contents": [] }),
        );
        let side: Value = serde_json::from_str(&side).unwrap();
        assert_eq!(
            side["candidates"][0]["content"]["parts"][0]["text"],
            SIDE_REPLY
        );
        assert!(api.conversation_requests().len() == 1);
    }
}
