//! A loopback stand-in for an OpenAI-compatible Chat Completions API, so the real OpenCode CLI
//! completes whole turns offline: a provider in OpenCode's config with
//! `npm: "@ai-sdk/openai-compatible"` and `options.baseURL` = [`ChatCompletionsApi::base_url`]
//! (which ends in `/v1`).
//!
//! Served by `standin_http` (declare both modules in the test file). Routes:
//! - `POST /v1/chat/completions` (also without `/v1`): with `"stream": true` (OpenCode 1.18
//!   always streams) `data: {chat.completion.chunk}` events, a last chunk with `usage` and no
//!   choices (`stream_options.include_usage`), then `data: [DONE]`; otherwise one
//!   `chat.completion` document;
//! - `GET /v1/models`: the one model, `standin-model`;
//! - anything else: 404 with an OpenAI-style JSON error (still recorded).
//!
//! Replies to the main conversation are scripted by its last message:
//! - a `tool` message (a tool's result): the text "tool done";
//! - otherwise the last user message's text: `AO_TOOL:<shell command>` (to the end of that line)
//!   calls OpenCode's `bash` tool with that command; `AO_SLOW:<ms>` streams the reply in pieces
//!   over about that long; anything else gets "Done.".
//!
//! Each reply ends with its `usage`: by default 10 prompt and 3 completion tokens; a test sets
//! the figures of the conversation's next replies with [`ChatCompletionsApi::queue_usage`] (text
//! and tool-call replies alike, in the order they are made) and reads what each conversation
//! reply sent with [`ChatCompletionsApi::usage_sent`].
//!
//! Side requests get "Stand-in title" at once. OpenCode 1.18 sends one per new conversation,
//! right before the first turn's: the title generator (system prompt "You are a title
//! generator…", the user's first message repeated, no `tools`). The conversation's requests
//! carry OpenCode's tool list; see [`ChatRequest::is_conversation`].

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};

pub use crate::standin_http::RecordedRequest;
use crate::standin_http::{
    message_texts, messages, offers_tools, slow_marker, tool_marker, Reply, StandIn, StandInApi,
};

pub const MODEL: &str = "standin-model";
pub const SIDE_REPLY: &str = "Stand-in title";
pub const TOOL_DONE_REPLY: &str = "tool done";
pub const DEFAULT_REPLY: &str = "Done.";

/// What the stand-in tells apart in a recorded request.
pub trait ChatRequest {
    /// A `POST …/chat/completions` request.
    fn is_chat(&self) -> bool;
    /// A request of the main conversation: it offers tools (OpenCode's title request does not).
    fn is_conversation(&self) -> bool;
    /// The texts of every user message, in order (a message whose content is a list of parts
    /// gives one text per text part).
    fn user_texts(&self) -> Vec<String>;
}

impl ChatRequest for RecordedRequest {
    fn is_chat(&self) -> bool {
        self.method == "POST"
            && (self.path == "/v1/chat/completions" || self.path == "/chat/completions")
    }

    fn is_conversation(&self) -> bool {
        self.is_chat() && offers_tools(&self.body)
    }

    fn user_texts(&self) -> Vec<String> {
        messages(&self.body)
            .iter()
            .filter(|m| m["role"] == "user")
            .flat_map(message_texts)
            .collect()
    }
}

enum Answer {
    Text { text: String, over: Duration },
    Bash(String),
}

fn answer(body: &Value) -> Answer {
    let text = |text: &str| Answer::Text {
        text: text.into(),
        over: Duration::ZERO,
    };
    if !offers_tools(body) {
        return text(SIDE_REPLY);
    }
    let Some(last) = messages(body).last() else {
        return text(DEFAULT_REPLY);
    };
    if last["role"] == "tool" {
        return text(TOOL_DONE_REPLY);
    }
    let texts = message_texts(last);
    if let Some(command) = texts.iter().find_map(|text| tool_marker(text)) {
        return Answer::Bash(command);
    }
    match texts.iter().find_map(|text| slow_marker(text)) {
        Some(over) => Answer::Text {
            text: DEFAULT_REPLY.into(),
            over,
        },
        None => text(DEFAULT_REPLY),
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
    })
}

/// The `usage` of one reply, in the Chat Completions API's words: `prompt` counts the `cached`
/// tokens too, and `completion` the `reasoning` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatUsage {
    pub prompt: u64,
    pub cached: u64,
    pub completion: u64,
    pub reasoning: u64,
}

impl ChatUsage {
    /// What a reply says when no test set its usage.
    pub const DEFAULT: Self = Self {
        prompt: 10,
        cached: 0,
        completion: 3,
        reasoning: 0,
    };

    /// The `usage` object; the `*_details` only when they count something, as before usage
    /// was settable.
    fn to_json(self) -> Value {
        let mut usage = json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        });
        if self.cached > 0 {
            usage["prompt_tokens_details"] = json!({ "cached_tokens": self.cached });
        }
        if self.reasoning > 0 {
            usage["completion_tokens_details"] = json!({ "reasoning_tokens": self.reasoning });
        }
        usage
    }
}

/// The conversation's usage: what its next replies will say, and what its replies said.
#[derive(Default)]
struct Usages {
    queued: VecDeque<ChatUsage>,
    sent: Vec<ChatUsage>,
}

fn stream(reply: &mut Reply, answer: Answer, usage: ChatUsage) -> std::io::Result<()> {
    reply.start_events()?;
    let finish = match answer {
        Answer::Bash(command) => {
            let arguments = json!({ "command": command, "description": "Run the command" });
            reply.event(
                None,
                &chunk(
                    json!({ "role": "assistant", "content": null, "tool_calls": [{
                        "index": 0, "id": "call_standin", "type": "function",
                        "function": { "name": "bash", "arguments": "" },
                    }]}),
                    None,
                ),
            )?;
            reply.event(
                None,
                &chunk(
                    json!({ "tool_calls": [{
                        "index": 0, "function": { "arguments": arguments.to_string() },
                    }]}),
                    None,
                ),
            )?;
            "tool_calls"
        }
        Answer::Text { text, over } => {
            reply.event(
                None,
                &chunk(json!({ "role": "assistant", "content": "" }), None),
            )?;
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            let pause = over / words.len().max(1) as u32;
            for word in words {
                std::thread::sleep(pause);
                reply.event(None, &chunk(json!({ "content": word }), None))?;
            }
            "stop"
        }
    };
    reply.event(None, &chunk(json!({}), Some(finish)))?;
    reply.event(
        None,
        &json!({
            "id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": 0,
            "model": MODEL, "choices": [], "usage": usage.to_json(),
        }),
    )?;
    reply.data("[DONE]")?;
    reply.finish_events()
}

fn whole(reply: &mut Reply, answer: Answer, usage: ChatUsage) -> std::io::Result<()> {
    let (message, finish) = match answer {
        Answer::Bash(command) => (
            json!({ "role": "assistant", "content": null, "tool_calls": [{
                "id": "call_standin", "type": "function",
                "function": {
                    "name": "bash",
                    "arguments": json!({ "command": command, "description": "Run the command" }).to_string(),
                },
            }]}),
            "tool_calls",
        ),
        Answer::Text { text, over } => {
            std::thread::sleep(over);
            (json!({ "role": "assistant", "content": text }), "stop")
        }
    };
    reply.json(
        200,
        &json!({
            "id": "chatcmpl-standin", "object": "chat.completion", "created": 0, "model": MODEL,
            "choices": [{ "index": 0, "message": message, "finish_reason": finish }],
            "usage": usage.to_json(),
        }),
    )
}

/// The running stand-in.
pub struct ChatCompletionsApi {
    server: StandIn,
    usages: Arc<Mutex<Usages>>,
}

impl ChatCompletionsApi {
    pub fn start() -> Self {
        let usages = Arc::new(Mutex::new(Usages::default()));
        let shared = Arc::clone(&usages);
        let server = StandIn::start("chat-completions", move |request, reply| {
            if request.is_chat() {
                let answer = answer(&request.body);
                let conversation = request.is_conversation();
                let usage = match conversation {
                    true => shared.lock().unwrap().queued.pop_front(),
                    false => None,
                }
                .unwrap_or(ChatUsage::DEFAULT);
                if request.body["stream"] == true {
                    stream(reply, answer, usage)?;
                } else {
                    whole(reply, answer, usage)?;
                }
                if conversation {
                    shared.lock().unwrap().sent.push(usage);
                }
                return Ok(());
            }
            if request.method == "GET" && request.path.ends_with("/models") {
                return reply.json(
                    200,
                    &json!({ "object": "list", "data": [{ "id": MODEL, "object": "model" }] }),
                );
            }
            reply.json(
                404,
                &json!({ "error": { "message": format!("no route {}", request.path), "type": "not_found" } }),
            )
        })
        .with_conversation(ChatRequest::is_conversation, ChatRequest::user_texts);
        Self { server, usages }
    }

    /// The usage the conversation's next replies report, one each in order; once they are
    /// used up, [`ChatUsage::DEFAULT`].
    pub fn queue_usage(&self, usages: impl IntoIterator<Item = ChatUsage>) {
        self.usages.lock().unwrap().queued.extend(usages);
    }

    /// The usage each conversation reply reported, in order (side requests left out: OpenCode
    /// keeps no record of them).
    pub fn usage_sent(&self) -> Vec<ChatUsage> {
        self.usages.lock().unwrap().sent.clone()
    }

    /// `http://127.0.0.1:PORT/v1`, OpenCode's `options.baseURL`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.base_url())
    }
}

impl StandInApi for ChatCompletionsApi {
    fn server(&self) -> &StandIn {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standin_http::{event_data, post};

    fn conversation(last: Value) -> Value {
        json!({
            "model": MODEL, "stream": true,
            "tools": [{ "type": "function", "function": { "name": "bash" } }],
            "messages": [{ "role": "system", "content": "sys" }, last],
        })
    }

    #[test]
    fn markers_script_the_conversation_and_side_requests_get_a_title() {
        let api = ChatCompletionsApi::start();
        let port = api.port();
        let (head, body) = post(
            port,
            "/v1/chat/completions",
            &conversation(json!({ "role": "user", "content": "go\nAO_TOOL:echo hi > f.txt\n" })),
        );
        assert!(head.contains("text/event-stream"), "{head}");
        let events = event_data(&body);
        assert_eq!(
            events[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            json!({ "command": "echo hi > f.txt", "description": "Run the command" }).to_string()
        );
        assert_eq!(events[2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(events.last().unwrap(), &Value::String("[DONE]".into()));

        let (_, body) = post(
            port,
            "/v1/chat/completions",
            &conversation(json!({ "role": "tool", "tool_call_id": "call_standin", "content": "" })),
        );
        let text: String = event_data(&body)
            .iter()
            .filter_map(|e| {
                e["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        assert_eq!(text, TOOL_DONE_REPLY);

        let started = std::time::Instant::now();
        post(
            port,
            "/chat/completions",
            &conversation(
                json!({ "role": "user", "content": [{ "type": "text", "text": "AO_SLOW:300" }] }),
            ),
        );
        assert!(started.elapsed() >= Duration::from_millis(300));

        let (head, body) = post(
            port,
            "/v1/chat/completions",
            &json!({ "model": MODEL, "messages": [{ "role": "user", "content": "AO_TOOL:x" }] }),
        );
        assert!(head.contains("application/json"), "{head}");
        let reply: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(reply["choices"][0]["message"]["content"], SIDE_REPLY);

        let requests = api.requests();
        assert_eq!(requests.len(), 4);
        assert_eq!(api.conversation_requests().len(), 3);
        assert_eq!(requests[0].user_texts(), ["go\nAO_TOOL:echo hi > f.txt\n"]);
    }

    #[test]
    fn queued_usage_ends_the_conversations_replies_and_side_requests_keep_the_default() {
        let api = ChatCompletionsApi::start();
        let port = api.port();
        let set = [
            ChatUsage {
                prompt: 1200,
                cached: 200,
                completion: 50,
                reasoning: 8,
            },
            ChatUsage {
                prompt: 1500,
                cached: 0,
                completion: 9,
                reasoning: 0,
            },
        ];
        api.queue_usage(set);
        let usage_of = |body: &str| event_data(body).iter().rev().nth(1).unwrap()["usage"].clone();
        let (_, title) = post(
            port,
            "/v1/chat/completions",
            &json!({ "model": MODEL, "stream": true, "messages": [{ "role": "user", "content": "x" }] }),
        );
        assert_eq!(
            usage_of(&title),
            json!({ "prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13 })
        );
        let (_, tool) = post(
            port,
            "/v1/chat/completions",
            &conversation(json!({ "role": "user", "content": "AO_TOOL:true" })),
        );
        assert_eq!(
            usage_of(&tool),
            json!({
                "prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
                "prompt_tokens_details": { "cached_tokens": 200 },
                "completion_tokens_details": { "reasoning_tokens": 8 },
            })
        );
        let (_, text) = post(
            port,
            "/v1/chat/completions",
            &conversation(json!({ "role": "tool", "tool_call_id": "call_standin", "content": "" })),
        );
        assert_eq!(usage_of(&text)["prompt_tokens"], 1500);
        let (_, after) = post(
            port,
            "/v1/chat/completions",
            &conversation(json!({ "role": "user", "content": "more" })),
        );
        assert_eq!(usage_of(&after)["prompt_tokens"], 10);
        assert_eq!(api.usage_sent(), [set[0], set[1], ChatUsage::DEFAULT]);
    }
}
