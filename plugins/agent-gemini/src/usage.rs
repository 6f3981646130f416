//! What a session's Gemini CLI replies used, from its chat recordings:
//! `$GEMINI_CLI_HOME/.gemini/tmp/<project>/chats/session-<time>-<first 8 of the id>.jsonl`.
//!
//! Facts from Gemini CLI 0.61.0 (run against the Gemini API stand-in):
//! - a recording is JSON lines: its first line names the conversation (`sessionId`); then
//!   each message is a line of its own (`id`, `timestamp`, `type`: `user` | `gemini`, and for a
//!   model reply `model` and `tokens {input, output, cached, thoughts, tool, total}` from the
//!   API's `usageMetadata`), and `{"$set": {…}}` lines update the document;
//! - a reply is written again when it changes (its tool calls' results added), with the same
//!   id; a resumed conversation writes `{"$set": {"messages": [the whole history]}}` into its
//!   recording and may start a second recording under the same `sessionId`: each reply is
//!   counted once, by its id, with its last figures;
//! - `input` is the API's `promptTokenCount`, which holds the cached tokens (`cached`); the
//!   tool-use prompt (`tool`) is counted apart from it by the API and priced as input;
//!   `thoughts` are counted apart from `output`.

use std::{
    io::{BufRead, BufReader, Read},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use ao_plugin_api::{
    abi_stable::std_types::RVec,
    usage::{ModelUsage, UsageQuery, UsageReport},
    ErrorKind, PluginFailure,
};
use ao_plugin_kit::{
    usage::{read_conversation, rfc3339_secs, LineCounter, RepliesById, Tokens},
    uuid::is_uuid,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The model named when a reply says none (it has no price, so no cost is made up).
const UNKNOWN_MODEL: &str = "unknown";
/// How much of a recording's first line is read to learn its conversation.
const FIRST_LINE_LIMIT: u64 = 64 * 1024;

/// What the chat recordings under `gemini_home` (the session's `GEMINI_CLI_HOME`) of the
/// query's conversation say the session used.
pub fn usage(gemini_home: &Path, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
    let Some(conversation) = query.conversation_id.as_ref().into_option() else {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            "the session has no Gemini conversation yet",
        ));
    };
    if !is_uuid(conversation) {
        return Err(PluginFailure::new(
            ErrorKind::Failed,
            format!("{conversation:?} is not a Gemini CLI session id (a UUID)"),
        ));
    }
    let files = recordings(&gemini_home.join(".gemini/tmp"), conversation);
    read_conversation::<Recording>(&query.cursor, &files, query.max_bytes)
}

/// The recordings of `conversation` under `tmp` (`<project>/chats/`), oldest first: those
/// named after it whose first line says it is theirs (another conversation may share the
/// first 8 characters of its id).
fn recordings(tmp: &Path, conversation: &str) -> Vec<PathBuf> {
    let suffix = format!("-{}.jsonl", &conversation[..8]);
    let mut found: Vec<PathBuf> = std::fs::read_dir(tmp)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|project| std::fs::read_dir(project.path().join("chats")).ok())
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("session-") && name.ends_with(&suffix)
        })
        .map(|entry| entry.path())
        .filter(|path| conversation_of(path).as_deref() == Some(conversation))
        .collect();
    found.sort_by_key(|path| path.file_name().map(ToOwned::to_owned));
    found
}

/// The `sessionId` a recording's first line names, not following a link.
fn conversation_of(path: &Path) -> Option<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let mut first = String::new();
    BufReader::new(file.take(FIRST_LINE_LIMIT))
        .read_line(&mut first)
        .ok()?;
    let head: Value = serde_json::from_str(&first).ok()?;
    head["sessionId"].as_str().map(str::to_string)
}

/// What the recording lines read so far counted.
#[derive(Serialize, Deserialize, Default)]
struct Recording {
    replies: RepliesById,
    /// Lines about replies that could not be read.
    unreadable: u64,
}

/// A reply's `tokens`, as Gemini CLI records the API's `usageMetadata`.
#[derive(Deserialize)]
struct RecordedTokens {
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cached: u64,
    #[serde(default)]
    thoughts: u64,
    #[serde(default)]
    tool: u64,
}

impl RecordedTokens {
    fn tokens(&self) -> Tokens {
        Tokens {
            input: self
                .input
                .saturating_sub(self.cached)
                .saturating_add(self.tool),
            cache_read: self.cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            output: self.output,
            reasoning: self.thoughts,
        }
    }
}

impl Recording {
    /// Counts `message` when it is a model reply with tokens; `None` when it is one whose
    /// tokens cannot be read.
    fn count_message(&mut self, message: &Value) -> Option<()> {
        if message["type"] != "gemini" || message.get("tokens").is_none() {
            return Some(());
        }
        let id = message["id"].as_str()?;
        let tokens = RecordedTokens::deserialize(&message["tokens"]).ok()?;
        let model = message["model"].as_str().unwrap_or(UNKNOWN_MODEL);
        let at = message["timestamp"].as_str().and_then(rfc3339_secs);
        self.replies.count(id, model, at, &tokens.tokens());
        Some(())
    }
}

impl LineCounter for Recording {
    fn count_line(&mut self, line: &str) {
        // Most lines are messages without tokens or updates of the time: not parsed.
        if !line.contains("\"tokens\"") {
            return;
        }
        let Ok(parsed) = serde_json::from_str::<Value>(line) else {
            self.unreadable += 1;
            return;
        };
        let messages = match parsed["$set"]["messages"].as_array() {
            Some(history) => history.iter().collect(),
            None => vec![&parsed],
        };
        for message in messages {
            if self.count_message(message).is_none() {
                self.unreadable += 1;
            }
        }
    }

    fn to_usage(&self) -> RVec<ModelUsage> {
        self.replies.to_usage()
    }

    fn notes(&self) -> Vec<String> {
        (self.unreadable > 0)
            .then(|| {
                format!(
                    "{} recorded reply(s) could not be read and are not counted",
                    self.unreadable
                )
            })
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversation of `tests/fixtures/gemini-home`, recorded from Gemini CLI 0.61.0
    /// against the stand-in: a turn with a tool call (two replies), then, resumed, a turn with
    /// text (the resumption rewrote the history into the recording and began a second one).
    /// Beside it, a recording of another conversation whose id starts alike.
    const CONVERSATION: &str = "83837d8f-7503-427d-9bbe-616d2d54efe7";

    fn fixture_home() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemini-home")
    }

    fn query(conversation: Option<&str>, cursor: &str, max_bytes: u64) -> UsageQuery {
        ao_plugin_test::usage_query("/nonexistent", conversation, cursor, max_bytes)
    }

    fn only(report: &UsageReport) -> &ModelUsage {
        assert_eq!(report.usage.len(), 1, "{report:#?}");
        &report.usage[0]
    }

    #[test]
    fn each_reply_is_counted_once_with_cached_input_taken_out_and_thoughts_apart() {
        let report = usage(&fixture_home(), &query(Some(CONVERSATION), "", 1 << 20)).unwrap();
        let used = only(&report);
        // Prompts of 1003, 1004 and 1006 tokens, each with 300 cached; 200 output and 50
        // thoughts each. The other conversation's reply (9999 input) is not counted.
        assert_eq!(used.model.as_str(), "gemini-2.5-pro");
        assert_eq!(used.replies, 3);
        assert_eq!(used.input, 1003 + 1004 + 1006 - 3 * 300);
        assert_eq!(used.cache_read, 900);
        assert_eq!((used.output, used.reasoning), (600, 150));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!(report.pending_bytes, 0);
    }

    #[test]
    fn a_small_budget_reads_on_across_calls_to_the_same_sums() {
        let whole = usage(&fixture_home(), &query(Some(CONVERSATION), "", 1 << 20)).unwrap();
        let mut cursor = String::new();
        let mut calls = 0;
        let last = loop {
            let report = usage(&fixture_home(), &query(Some(CONVERSATION), &cursor, 2048)).unwrap();
            calls += 1;
            cursor = report.cursor.to_string();
            if report.pending_bytes == 0 {
                break report;
            }
        };
        assert!(calls > 2, "read in {calls} calls");
        assert_eq!(last.usage, whole.usage);
    }

    #[test]
    fn no_conversation_or_no_recording_is_not_found_and_a_bad_id_fails() {
        for conversation in [None, Some("83837d8f-0000-4000-8000-000000000000")] {
            let err = usage(&fixture_home(), &query(conversation, "", 1 << 20)).unwrap_err();
            assert_eq!(err.kind.as_enum().ok(), Some(&ErrorKind::NotFound));
        }
        let err = usage(&fixture_home(), &query(Some("83837d8f/../x"), "", 1 << 20)).unwrap_err();
        assert_eq!(err.kind.as_enum().ok(), Some(&ErrorKind::Failed));
    }

    #[test]
    fn a_garbled_reply_is_left_out_with_a_note() {
        let mut recording = Recording::default();
        recording.count_line(r#"{"id":"a","type":"gemini","tokens":{"input":"many"}}"#);
        recording.count_line(r#"{"id":"b","type":"gemini","tokens":{"input":7,"#);
        recording.count_line(
            r#"{"id":"c","type":"gemini","model":"m","tokens":{"input":7,"cached":2,"tool":1}}"#,
        );
        let usage = recording.to_usage();
        assert_eq!(usage.len(), 1);
        assert_eq!((usage[0].input, usage[0].cache_read), (6, 2));
        assert_eq!(recording.notes().len(), 1, "{:?}", recording.notes());
    }
}
