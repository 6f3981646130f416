//! What a session's Codex replies used, from its rollout files:
//! `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<conversation id>.jsonl`.
//!
//! Facts from Codex CLI 0.171.0 (run against the Responses API stand-in):
//! - after each model reply Codex appends a `token_usage_record` line whose
//!   `payload.response_id` is the API's id of the reply and `payload.usage` its figures as the
//!   API sent them (`input_tokens` with `cached_input_tokens` inside it, `output_tokens` with
//!   `reasoning_output_tokens` inside it, `cache_write_input_tokens`); `turn_token_usage` and
//!   `thread_token_usage` are running sums, and the `token_count` event that follows repeats
//!   them (`total_token_usage` is the thread's sum, `last_token_usage` the reply's), so only the
//!   record is counted, once per response id — a resumed or copied conversation that repeats a
//!   record never counts it twice;
//! - the model is not in the record: it is the `model` of the `turn_context` line that starts
//!   each turn.

use std::path::{Path, PathBuf};

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

/// The model named when no `turn_context` said which (it has no price, so no cost is made up).
const UNKNOWN_MODEL: &str = "unknown";

/// What `home`'s rollout files of the query's conversation say the session used.
pub fn usage(home: &Path, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
    let Some(conversation) = query.conversation_id.as_ref().into_option() else {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            "Codex has not reported the session's conversation yet",
        ));
    };
    if !is_uuid(conversation) {
        return Err(PluginFailure::new(
            ErrorKind::Failed,
            format!("{conversation:?} is not a Codex conversation id (a UUID)"),
        ));
    }
    let files = rollout_files(&home.join("sessions"), conversation);
    read_conversation::<Rollout>(&query.cursor, &files, query.max_bytes)
}

/// The rollout files of `conversation` under `sessions` (`YYYY/MM/DD/`), oldest day first.
fn rollout_files(sessions: &Path, conversation: &str) -> Vec<PathBuf> {
    let suffix = format!("-{conversation}.jsonl");
    let mut found = Vec::new();
    let mut folders = vec![(sessions.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if depth < 3 && kind.is_dir() {
                folders.push((entry.path(), depth + 1));
            } else if depth == 3 && name.starts_with("rollout-") && name.ends_with(&suffix) {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

/// What the rollout lines read so far counted.
#[derive(Serialize, Deserialize, Default)]
struct Rollout {
    replies: RepliesById,
    /// The model of the turn under way.
    model: Option<String>,
    /// Usage records that could not be read.
    unreadable: u64,
    /// `token_count` events seen: a Codex that writes them but no `token_usage_record` is one
    /// this plugin cannot count.
    token_counts: u64,
}

/// One reply's figures, as the Responses API reported them.
#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    cache_write_input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    reasoning_output_tokens: u64,
}

impl ApiUsage {
    /// OpenAI counts cached (and cache-written) input inside `input_tokens` and reasoning
    /// inside `output_tokens`: they are taken out, to be priced apart.
    fn tokens(&self) -> Tokens {
        Tokens {
            input: self
                .input_tokens
                .saturating_sub(self.cached_input_tokens)
                .saturating_sub(self.cache_write_input_tokens),
            cache_read: self.cached_input_tokens,
            cache_write_5m: self.cache_write_input_tokens,
            cache_write_1h: 0,
            output: self
                .output_tokens
                .saturating_sub(self.reasoning_output_tokens),
            reasoning: self.reasoning_output_tokens,
        }
    }
}

impl Rollout {
    fn count_record(&mut self, line: &Value) -> Option<()> {
        let payload = &line["payload"];
        let id = payload["response_id"].as_str()?;
        let usage = ApiUsage::deserialize(&payload["usage"]).ok()?;
        let at = line["timestamp"].as_str().and_then(rfc3339_secs);
        let model = self.model.as_deref().unwrap_or(UNKNOWN_MODEL);
        self.replies.count(id, model, at, &usage.tokens());
        Some(())
    }
}

impl LineCounter for Rollout {
    fn count_line(&mut self, line: &str) {
        // Most lines are the conversation itself: only those that may matter are parsed.
        let record = line.contains("\"token_usage_record\"");
        if !record && !line.contains("\"turn_context\"") {
            self.token_counts += u64::from(line.contains("\"token_count\""));
            return;
        }
        let parsed: Option<Value> = serde_json::from_str(line).ok();
        match parsed.as_ref().map(|l| (l, l["type"].as_str())) {
            Some((l, Some("turn_context"))) => {
                if let Some(model) = l["payload"]["model"].as_str() {
                    self.model = Some(model.to_string());
                }
            }
            Some((l, Some("token_usage_record"))) => {
                if self.count_record(l).is_none() {
                    self.unreadable += 1;
                }
            }
            Some(_) => {}
            None => self.unreadable += u64::from(record),
        }
    }

    fn to_usage(&self) -> RVec<ModelUsage> {
        self.replies.to_usage()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if self.unreadable > 0 {
            notes.push(format!(
                "{} usage record(s) of the rollout could not be read and are not counted",
                self.unreadable
            ));
        }
        if self.replies.is_empty() && self.token_counts > 0 {
            notes.push(
                "this Codex writes no token_usage_record lines (written since 0.171): its \
                 token_count events are not counted"
                    .to_string(),
            );
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conversation of `tests/fixtures/codex-home`: a turn with a tool call (two replies)
    /// then a turn with text, recorded from Codex 0.171.0 against the stand-in.
    const CONVERSATION: &str = "01a252a6-c754-7e93-b7d8-dbaaf2e70e40";

    fn fixture_home() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/codex-home")
    }

    fn query(conversation: Option<&str>, cursor: &str, max_bytes: u64) -> UsageQuery {
        ao_plugin_test::usage_query("/nonexistent", conversation, cursor, max_bytes)
    }

    /// The one model's entry of a report.
    fn only(report: &UsageReport) -> &ModelUsage {
        assert_eq!(report.usage.len(), 1, "{report:#?}");
        &report.usage[0]
    }

    #[test]
    fn each_reply_is_counted_once_with_cached_input_and_reasoning_taken_out() {
        let report = usage(&fixture_home(), &query(Some(CONVERSATION), "", 1 << 20)).unwrap();
        let used = only(&report);
        // Replies of 1001, 1002 and 1005 input tokens, each 300 cached, 200 output of which 50
        // reasoning; the token_count events repeat them and are not counted again.
        assert_eq!(used.model.as_str(), "gpt-test");
        assert_eq!(used.replies, 3);
        assert_eq!(used.input, 1001 + 1002 + 1005 - 3 * 300);
        assert_eq!(used.cache_read, 900);
        assert_eq!((used.output, used.reasoning), (450, 150));
        assert_eq!((used.cache_write_5m, used.cache_write_1h), (0, 0));
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!(report.pending_bytes, 0);
    }

    #[test]
    fn a_small_budget_reads_on_across_calls_to_the_same_sums() {
        let whole = usage(&fixture_home(), &query(Some(CONVERSATION), "", 1 << 20)).unwrap();
        let mut cursor = String::new();
        let mut calls = 0;
        let last = loop {
            let report = usage(&fixture_home(), &query(Some(CONVERSATION), &cursor, 4096)).unwrap();
            calls += 1;
            cursor = report.cursor.to_string();
            if report.pending_bytes == 0 {
                break report;
            }
        };
        assert!(calls > 3, "read in {calls} calls");
        assert_eq!(last.usage, whole.usage);
        let again = usage(&fixture_home(), &query(Some(CONVERSATION), &cursor, 0)).unwrap();
        assert_eq!(again.usage, whole.usage, "nothing new is nothing added");
    }

    #[test]
    fn another_conversation_a_garbage_cursor_and_no_conversation() {
        let other = usage(
            &fixture_home(),
            &query(Some("11111111-2222-4333-8444-555555555555"), "", 1 << 20),
        )
        .unwrap_err();
        assert_eq!(other.kind.as_enum().ok(), Some(&ErrorKind::NotFound));
        let none = usage(&fixture_home(), &query(None, "", 1 << 20)).unwrap_err();
        assert_eq!(none.kind.as_enum().ok(), Some(&ErrorKind::NotFound));
        let garbage = usage(
            &fixture_home(),
            &query(Some(CONVERSATION), "{not a cursor", 1 << 20),
        )
        .unwrap();
        assert_eq!(only(&garbage).replies, 3);
        let bad = usage(&fixture_home(), &query(Some("../x"), "", 1 << 20)).unwrap_err();
        assert_eq!(bad.kind.as_enum().ok(), Some(&ErrorKind::Failed));
    }

    #[test]
    fn a_garbled_record_is_left_out_with_a_note_and_a_replaced_file_is_counted_again() {
        let temp = std::env::temp_dir().join(format!("ao-codex-usage-{}", std::process::id()));
        let day = temp.join("sessions/2026/12/07");
        std::fs::create_dir_all(&day).unwrap();
        let source = std::fs::read_dir(fixture_home().join("sessions/2026/12/07"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let rollout = day.join(source.file_name().unwrap());
        let text = std::fs::read_to_string(&source).unwrap();
        let (first, rest) = text.split_at(text.find("{\"timestamp\"").unwrap() + 1);
        let garbled = format!(
            "{first}{rest}{{\"type\":\"token_usage_record\",\"payload\":{{\"usage\":\n\0\u{1}garbage\n"
        );
        std::fs::write(&rollout, &garbled).unwrap();
        let report = usage(&temp, &query(Some(CONVERSATION), "", 1 << 20)).unwrap();
        assert_eq!(only(&report).replies, 3);
        assert_eq!(report.notes.len(), 1, "{:?}", report.notes);

        // Replaced by its first part only: counted again, not kept from before.
        let cut = &text[..text.find("\"response_id\":\"resp_2\"").unwrap()];
        let cut = &cut[..cut.rfind('\n').unwrap() + 1];
        std::fs::remove_file(&rollout).unwrap();
        std::fs::write(&rollout, cut).unwrap();
        let recount = usage(&temp, &query(Some(CONVERSATION), &report.cursor, 1 << 20)).unwrap();
        assert_eq!(only(&recount).replies, 1);
        std::fs::remove_dir_all(&temp).unwrap();
    }
}
