//! What a Claude Code session used, read from the CLI's own transcripts.
//!
//! Claude Code writes each conversation to `<config>/projects/<folder>/<conversation>.jsonl`
//! (`<config>` is `$CLAUDE_CONFIG_DIR`, else `~/.claude`; `<folder>` is the workspace path with
//! every character but ASCII letters and digits turned into `-`), and each sub-agent's (Task
//! tool) to `<folder>/<conversation>/subagents/…/agent-<id>.jsonl`. Every model reply is an
//! `assistant` line whose `message` holds the API's `id`, `model` and `usage`; a reply of
//! several content blocks is written once per block, with the same `message.id` and usage that
//! may have grown as it streamed, so the last line of a reply counts (observed with 2.1.197).
//!
//! Each transcript is read on from where the last call stopped ([`RecordFile`]), with its own
//! tally, so one that is replaced is counted again alone and one that goes away keeps what was
//! counted from it.

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
};

use ao_plugin_api::{
    abi_stable::std_types::{RString, RVec},
    usage::{ModelUsage, UsageQuery, UsageReport},
    ErrorKind, PluginFailure,
};
use ao_plugin_kit::usage::{rfc3339_secs, RecordFile, Tokens, UsageTally, LONGEST_LINE};
use serde::{Deserialize, Serialize};

/// How many recent replies of a transcript are remembered to tell a repeated line from a new
/// reply: the lines of one reply are written together, at most a few tool results apart.
const RECENT_REPLIES: usize = 32;

/// The longest folder name the CLI makes from a workspace path before it shortens it.
const LONGEST_FOLDER: usize = 200;

/// Where Claude Code keeps its records: the environment the plugin launches sessions with,
/// then this process's.
pub struct ConfigDir(pub PathBuf);

impl ConfigDir {
    /// `CLAUDE_CONFIG_DIR`, else `$HOME/.claude`, each looked up in `env` (the plugin's `env`
    /// setting) first.
    pub fn from_env(env: &BTreeMap<String, String>) -> Option<Self> {
        let var = |name: &str| {
            env.get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .filter(|v| !v.is_empty())
        };
        var("CLAUDE_CONFIG_DIR")
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|home| Path::new(&home).join(".claude")))
            .map(ConfigDir)
    }

    /// The folder of the conversation `id` begun in `workspace`: the one the CLI names after
    /// the workspace's real path (or the path as given), else any project folder holding it.
    fn conversation_folder(&self, workspace: &str, id: &str) -> Option<PathBuf> {
        let projects = self.0.join("projects");
        let file = format!("{id}.jsonl");
        let mut named: Vec<String> = Vec::new();
        if let Ok(real) = std::fs::canonicalize(workspace) {
            named.push(folder_name(&real.to_string_lossy()));
        }
        named.push(folder_name(workspace));
        let listed = || {
            std::fs::read_dir(&projects)
                .into_iter()
                .flatten()
                .flatten()
                .map(|entry| entry.path())
        };
        // The folder listing only when the named folders lack the file (read lazily: listings
        // ask this of every session every time).
        named
            .iter()
            .map(|name| projects.join(name))
            .chain(std::iter::once_with(listed).flatten())
            .find(|folder| folder.join(&file).symlink_metadata().is_ok())
    }
}

/// The folder name Claude Code gives a workspace path: each UTF-16 unit that is not an ASCII
/// letter or digit becomes `-`; a name longer than 200 is cut there and given a hash of the
/// path (the CLI's `$E`).
pub fn folder_name(path: &str) -> String {
    let units: Vec<u16> = path.encode_utf16().collect();
    let name: String = units
        .iter()
        .map(|&unit| match char::from_u32(unit.into()) {
            Some(c) if c.is_ascii_alphanumeric() => c,
            _ => '-',
        })
        .collect();
    if name.len() <= LONGEST_FOLDER {
        return name;
    }
    let hash = units.iter().fold(0i32, |hash, &unit| {
        hash.wrapping_shl(5)
            .wrapping_sub(hash)
            .wrapping_add(i32::from(unit))
    });
    format!(
        "{}-{}",
        &name[..LONGEST_FOLDER],
        base36(i64::from(hash).unsigned_abs())
    )
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// What the plugin hands the host as its cursor: each transcript read so far, by path.
#[derive(Serialize, Deserialize, Default)]
struct Cursor {
    transcripts: BTreeMap<PathBuf, Transcript>,
}

/// How far one transcript was read, and what it counted.
#[derive(Serialize, Deserialize, Default)]
struct Transcript {
    record: RecordFile,
    tally: UsageTally,
    /// The last replies counted, to revise rather than count again when a line repeats one.
    recent: VecDeque<Counted>,
    /// Lines that mention usage but could not be read as a record.
    unreadable: u64,
    /// Lines passed over unread as longer than any record ([`LONGEST_LINE`]).
    too_long: u64,
}

/// One reply as counted.
#[derive(Serialize, Deserialize, Clone)]
struct Counted {
    id: String,
    model: String,
    at: Option<u64>,
    tokens: Tokens,
}

/// The parts of a transcript line usage is read from.
#[derive(Deserialize)]
struct Line {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
    #[serde(rename = "requestId")]
    request_id: Option<String>,
    timestamp: Option<String>,
    message: Option<Message>,
}

#[derive(Deserialize)]
struct Message {
    id: Option<String>,
    model: Option<String>,
    usage: Option<ApiUsage>,
}

/// A reply's `usage` as the Messages API reports it.
#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
    cache_creation: Option<CacheCreation>,
}

#[derive(Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

impl ApiUsage {
    /// Anthropic's input excludes the cache already; a write not split by duration (or more
    /// than its split says) is priced as the 5-minute kind.
    fn tokens(&self) -> Tokens {
        let (split_5m, split_1h) = self.cache_creation.as_ref().map_or((0, 0), |c| {
            (c.ephemeral_5m_input_tokens, c.ephemeral_1h_input_tokens)
        });
        let unsplit = self
            .cache_creation_input_tokens
            .saturating_sub(split_5m.saturating_add(split_1h));
        Tokens {
            input: self.input_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_write_5m: split_5m.saturating_add(unsplit),
            cache_write_1h: split_1h,
            output: self.output_tokens,
            reasoning: 0,
        }
    }
}

impl Transcript {
    /// Counts one line of conversation `conversation`; false for a line that mentions usage but
    /// is not a record.
    fn count(&mut self, line: &str, conversation: &str) -> bool {
        // Only assistant lines carry usage; the rest (tool output, prompts) is not parsed.
        if !line.contains("\"usage\"") {
            return true;
        }
        let Ok(line) = serde_json::from_str::<Line>(line) else {
            return false;
        };
        // A reply counts only when it names this conversation (sub-agents' lines name their
        // parent's): a line naming none cannot be told from another conversation's.
        if line.kind.as_deref() != Some("assistant")
            || line.session_id.as_deref() != Some(conversation)
        {
            return true;
        }
        let Some(message) = line.message else {
            return true;
        };
        let (Some(model), Some(usage)) = (message.model, message.usage) else {
            return true;
        };
        let tokens = usage.tokens();
        // `<synthetic>`: the CLI's own stand-in message (an API error, an interruption).
        if model.starts_with('<') || tokens == Tokens::default() {
            return true;
        }
        let at = line.timestamp.as_deref().and_then(rfc3339_secs);
        let Some(id) = message.id.or(line.request_id) else {
            self.tally.add_reply(&model, at, &tokens);
            return true;
        };
        if let Some(earlier) = self.recent.iter_mut().find(|c| c.id == id) {
            self.tally
                .revise_reply(&earlier.model, earlier.at, &earlier.tokens, &tokens);
            earlier.tokens = tokens;
            return true;
        }
        self.tally.add_reply(&model, at, &tokens);
        if self.recent.len() == RECENT_REPLIES {
            self.recent.pop_front();
        }
        self.recent.push_back(Counted {
            id,
            model,
            at,
            tokens,
        });
        true
    }
}

/// The session's usage so far, read on from `query.cursor` in `config`.
pub fn usage(config: Option<&ConfigDir>, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
    if ao_plugin_api::transport::current().is_some() {
        return Err(PluginFailure::new(
            ErrorKind::Unsupported,
            "Claude Code's usage is read from its transcripts on this machine only; a session \
             on another host shows usage unknown",
        ));
    }
    let Some(config) = config else {
        return Err(PluginFailure::new(
            ErrorKind::Failed,
            "neither CLAUDE_CONFIG_DIR nor HOME is set (in plugins.config.claude-code.env or \
             the environment), so Claude Code's transcripts cannot be found",
        ));
    };
    let conversation = query.conversation_id.as_ref().into_option();
    let mut cursor: Cursor = serde_json::from_str(&query.cursor).unwrap_or_default();
    if let Some(id) = conversation {
        if let Some(folder) = config.conversation_folder(&query.session.workspace_path, id) {
            for path in conversation_files(&folder, id) {
                cursor.transcripts.entry(path).or_default();
            }
        }
    }
    if cursor.transcripts.is_empty() {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            match conversation {
                Some(id) => format!(
                    "no transcript of conversation {id} under {} yet",
                    config.0.join("projects").display()
                ),
                None => "the session's conversation is not known yet".to_string(),
            },
        ));
    }
    let conversation = conversation.map_or("", |id| id.as_str());
    let mut budget = query.max_bytes;
    let mut pending_bytes = 0u64;
    let mut notes: Vec<String> = Vec::new();
    for (path, transcript) in &mut cursor.transcripts {
        match transcript.record.read_on(path, &mut budget) {
            Ok(read) => {
                if read.restarted {
                    *transcript = Transcript {
                        record: std::mem::take(&mut transcript.record),
                        ..Transcript::default()
                    };
                }
                transcript.too_long += read.too_long;
                for line in &read.lines {
                    if !transcript.count(line, conversation) {
                        transcript.unreadable += 1;
                    }
                }
                pending_bytes = pending_bytes.saturating_add(read.pending_bytes);
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => notes.push(format!(
                "{} is gone; what was counted from it before is kept",
                path.display()
            )),
            Err(err) => notes.push(format!(
                "{} could not be read ({err}); what was counted from it before is kept",
                path.display()
            )),
        }
        if transcript.too_long > 0 {
            notes.push(format!(
                "{} line(s) of {} are longer than {} MiB and were passed over unread; a reply \
                 among them is not counted",
                transcript.too_long,
                path.display(),
                LONGEST_LINE >> 20
            ));
        }
        if transcript.unreadable > 0 {
            notes.push(format!(
                "{} line(s) of {} are not records Claude Code writes; they are not counted",
                transcript.unreadable,
                path.display()
            ));
        }
    }
    Ok(UsageReport {
        usage: merged(cursor.transcripts.values().map(|t| &t.tally)),
        cursor: serde_json::to_string(&cursor)
            .map_err(|err| PluginFailure::new(ErrorKind::Failed, err.to_string()))?
            .into(),
        pending_bytes,
        notes: notes.into_iter().map(RString::from).collect(),
    })
}

/// The conversation's transcript and its sub-agents', those there now.
fn conversation_files(folder: &Path, id: &str) -> Vec<PathBuf> {
    let mut files = vec![folder.join(format!("{id}.jsonl"))];
    let mut folders = vec![folder.join(id).join("subagents")];
    while let Some(dir) = folders.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|e| e == "jsonl") {
                files.push(path);
            }
        }
    }
    files
}

/// The tallies of several transcripts as one report: entries of the same model and hour added.
fn merged<'a>(tallies: impl Iterator<Item = &'a UsageTally>) -> RVec<ModelUsage> {
    let mut sums: BTreeMap<(RString, u64), ModelUsage> = BTreeMap::new();
    for entry in tallies.flat_map(UsageTally::to_usage) {
        let sum = sums
            .entry((entry.model.clone(), entry.hour))
            .or_insert_with(|| ModelUsage {
                model: entry.model.clone(),
                hour: entry.hour,
                ..ModelUsage::default()
            });
        // Saturating: a transcript may claim any figure, and adding must never panic.
        sum.replies = sum.replies.saturating_add(entry.replies);
        sum.input = sum.input.saturating_add(entry.input);
        sum.cache_read = sum.cache_read.saturating_add(entry.cache_read);
        sum.cache_write_5m = sum.cache_write_5m.saturating_add(entry.cache_write_5m);
        sum.cache_write_1h = sum.cache_write_1h.saturating_add(entry.cache_write_1h);
        sum.output = sum.output.saturating_add(entry.output);
        sum.reasoning = sum.reasoning.saturating_add(entry.reasoning);
    }
    sums.into_values().collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::Value;

    use super::*;

    /// Claude Code 2.1.197's transcript of two turns against the Messages stand-in: a text
    /// reply, then a Bash call and the text after it, each reply's usage set apart.
    const TWO_TURNS: &str = include_str!("../tests/fixtures/two-turns.jsonl");
    const CONVERSATION: &str = "11111111-2222-4333-8444-555555555555";
    /// What the stand-in sent for TWO_TURNS' three replies (usage i = 1, 2, 3:
    /// input 100i, output 10i + 7, cache read 1000i, 5-minute write 20i, 1-hour write 3i).
    const SENT: ModelUsage = ModelUsage {
        model: RString::new(),
        hour: 0,
        replies: 3,
        input: 600,
        cache_read: 6000,
        cache_write_5m: 120,
        cache_write_1h: 18,
        output: 81,
        reasoning: 0,
    };

    struct Setup {
        home: tempfile::TempDir,
        workspace: PathBuf,
    }

    impl Setup {
        fn new() -> Self {
            let home = tempfile::tempdir().unwrap();
            let workspace = home.path().join("work space");
            std::fs::create_dir_all(&workspace).unwrap();
            Setup { home, workspace }
        }

        fn config(&self) -> ConfigDir {
            ConfigDir(self.home.path().join(".claude"))
        }

        fn folder(&self) -> PathBuf {
            let real = std::fs::canonicalize(&self.workspace).unwrap();
            let folder = self
                .config()
                .0
                .join("projects")
                .join(folder_name(&real.to_string_lossy()));
            std::fs::create_dir_all(&folder).unwrap();
            folder
        }

        fn transcript(&self) -> PathBuf {
            self.folder().join(format!("{CONVERSATION}.jsonl"))
        }

        fn append(&self, path: &Path, text: &str) {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap();
            file.write_all(text.as_bytes()).unwrap();
        }

        fn query(&self, cursor: &str, max_bytes: u64) -> UsageQuery {
            ao_plugin_test::usage_query(
                &self.workspace.to_string_lossy(),
                Some(CONVERSATION),
                cursor,
                max_bytes,
            )
        }

        fn read(&self, cursor: &str) -> UsageReport {
            usage(Some(&self.config()), &self.query(cursor, u64::MAX)).unwrap()
        }
    }

    /// The report's counts summed over hours, per model.
    fn per_model(report: &UsageReport) -> BTreeMap<String, ModelUsage> {
        let mut models = BTreeMap::new();
        for entry in report.usage.iter() {
            let sum: &mut ModelUsage =
                models
                    .entry(entry.model.to_string())
                    .or_insert_with(|| ModelUsage {
                        model: entry.model.clone(),
                        ..ModelUsage::default()
                    });
            sum.replies += entry.replies;
            sum.input += entry.input;
            sum.cache_read += entry.cache_read;
            sum.cache_write_5m += entry.cache_write_5m;
            sum.cache_write_1h += entry.cache_write_1h;
            sum.output += entry.output;
            sum.reasoning += entry.reasoning;
        }
        models
    }

    fn expect(report: &UsageReport, expected: &[(&str, ModelUsage)]) {
        let expected: BTreeMap<String, ModelUsage> = expected
            .iter()
            .map(|(model, usage)| {
                (
                    model.to_string(),
                    ModelUsage {
                        model: (*model).into(),
                        hour: 0,
                        ..usage.clone()
                    },
                )
            })
            .collect();
        let mut got = per_model(report);
        got.values_mut().for_each(|u| u.hour = 0);
        assert_eq!(got, expected, "notes: {:?}", report.notes);
    }

    /// TWO_TURNS' assistant lines, parsed.
    fn replies() -> Vec<Value> {
        TWO_TURNS
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|l| l["type"] == "assistant")
            .collect()
    }

    fn line(value: &Value) -> String {
        format!("{value}\n")
    }

    #[test]
    fn a_real_transcript_counts_each_reply_once_with_the_sums_the_api_sent() {
        let setup = Setup::new();
        setup.append(&setup.transcript(), TWO_TURNS);
        let report = setup.read("");
        expect(&report, &[("claude-opus-4-8", SENT)]);
        assert_eq!(report.usage[0].hour, 1_796_680_800, "22:00 UTC that day");
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!(report.pending_bytes, 0);

        let again = setup.read(&report.cursor);
        assert_eq!(again.usage, report.usage, "nothing new, nothing added");
        let mut more = replies()[0].clone();
        more["message"]["id"] = "msg_new".into();
        setup.append(&setup.transcript(), &line(&more));
        let grown = setup.read(&again.cursor);
        expect(
            &grown,
            &[(
                "claude-opus-4-8",
                ModelUsage {
                    replies: 4,
                    input: 700,
                    cache_read: 7000,
                    cache_write_5m: 140,
                    cache_write_1h: 21,
                    output: 98,
                    ..SENT
                },
            )],
        );
    }

    #[test]
    fn a_reply_repeated_per_content_block_counts_once_with_its_last_figures_across_calls() {
        let setup = Setup::new();
        let reply = &replies()[1];
        let mut first_block = reply.clone();
        first_block["message"]["usage"]["output_tokens"] = 1.into();
        first_block["message"]["content"] =
            serde_json::json!([{ "type": "text", "text": "Running it." }]);
        setup.append(&setup.transcript(), &line(&first_block));
        let early = setup.read("");
        expect(
            &early,
            &[(
                "claude-opus-4-8",
                ModelUsage {
                    replies: 1,
                    input: 200,
                    cache_read: 2000,
                    cache_write_5m: 40,
                    cache_write_1h: 6,
                    output: 1,
                    ..SENT
                },
            )],
        );
        // The reply's tool_use block, written after the first call read the text block.
        setup.append(&setup.transcript(), &line(reply));
        let report = setup.read(&early.cursor);
        expect(
            &report,
            &[(
                "claude-opus-4-8",
                ModelUsage {
                    replies: 1,
                    input: 200,
                    cache_read: 2000,
                    cache_write_5m: 40,
                    cache_write_1h: 6,
                    output: 27,
                    ..SENT
                },
            )],
        );
    }

    #[test]
    fn another_conversation_synthetic_replies_and_garbage_are_not_counted() {
        let setup = Setup::new();
        let other = setup
            .folder()
            .join("99999999-2222-4333-8444-555555555555.jsonl");
        setup.append(&other, TWO_TURNS);
        let mut foreign = replies()[0].clone();
        foreign["sessionId"] = "99999999-2222-4333-8444-555555555555".into();
        foreign["message"]["id"] = "msg_foreign".into();
        let mut synthetic = replies()[0].clone();
        synthetic["message"]["id"] = "msg_synthetic".into();
        synthetic["message"]["model"] = "<synthetic>".into();
        synthetic["message"]["usage"] = serde_json::json!({
            "input_tokens": 0, "output_tokens": 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        });
        let cut = line(&replies()[0]);
        let text = format!(
            "{}{}{}not json at all, but \"usage\" in it\n{}\n{}{{\"type\":\"assistant\",\"usage\"",
            line(&foreign),
            line(&synthetic),
            TWO_TURNS,
            &cut[..cut.len() / 2],
            "\u{0}\u{1}garbage without usage\n",
        );
        setup.append(&setup.transcript(), &text);
        let report = setup.read("");
        expect(&report, &[("claude-opus-4-8", SENT)]);
        assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
        assert!(
            report.notes[0].starts_with("2 line(s) of ") && report.notes[0].contains(CONVERSATION),
            "{:?}",
            report.notes
        );
        // The unfinished last line waits for its end.
        assert_eq!(report.pending_bytes, 0);
        let again = setup.read(&report.cursor);
        assert_eq!(again.usage, report.usage);
        assert_eq!(again.notes, report.notes, "the note stays with the count");
    }

    #[test]
    fn a_huge_line_is_passed_over_with_a_note_and_the_rest_counted() {
        let setup = Setup::new();
        let huge = format!(
            "{{\"type\":\"user\",\"usage\":\"{}\"}}\n",
            "x".repeat(LONGEST_LINE as usize)
        );
        setup.append(&setup.transcript(), &format!("{huge}{TWO_TURNS}"));
        let report = setup.read("");
        expect(&report, &[("claude-opus-4-8", SENT)]);
        assert!(
            report.notes.len() == 1 && report.notes[0].contains("longer than 64 MiB"),
            "{:?}",
            report.notes
        );
    }

    #[test]
    fn sub_agent_transcripts_are_counted_in() {
        let setup = Setup::new();
        setup.append(&setup.transcript(), TWO_TURNS);
        let mut sub = replies()[0].clone();
        sub["isSidechain"] = true.into();
        sub["agentId"] = "a1b2c3".into();
        sub["message"]["id"] = "msg_sub".into();
        sub["message"]["model"] = "claude-haiku-4-5-20251001".into();
        let agents = setup.folder().join(CONVERSATION).join("subagents");
        setup.append(&agents.join("agent-a1b2c3.jsonl"), &line(&sub));
        setup.append(&agents.join("workflows/run1/agent-d4.jsonl"), &line(&sub));
        setup.append(&agents.join("notes.txt"), &line(&sub));
        let report = setup.read("");
        let haiku = ModelUsage {
            replies: 2,
            input: 200,
            cache_read: 2000,
            cache_write_5m: 40,
            cache_write_1h: 6,
            output: 34,
            ..SENT
        };
        expect(
            &report,
            &[
                ("claude-opus-4-8", SENT),
                ("claude-haiku-4-5-20251001", haiku),
            ],
        );
    }

    #[test]
    fn a_small_budget_reads_on_in_steps_to_the_same_sums() {
        let setup = Setup::new();
        setup.append(&setup.transcript(), TWO_TURNS);
        let mut cursor = RString::new();
        let mut steps = 0;
        let report = loop {
            let report = usage(Some(&setup.config()), &setup.query(&cursor, 2000)).unwrap();
            steps += 1;
            if report.pending_bytes == 0 {
                break report;
            }
            assert!(report.pending_bytes < TWO_TURNS.len() as u64);
            cursor = report.cursor;
        };
        assert!(steps > 3, "{steps} steps");
        expect(&report, &[("claude-opus-4-8", SENT)]);
    }

    #[test]
    fn a_replaced_transcript_is_counted_again_not_added_and_a_gone_one_keeps_its_count() {
        let setup = Setup::new();
        setup.append(&setup.transcript(), TWO_TURNS);
        let first = setup.read("");
        std::fs::remove_file(setup.transcript()).unwrap();
        let gone = setup.read(&first.cursor);
        expect(&gone, &[("claude-opus-4-8", SENT)]);
        assert!(gone.notes[0].contains("is gone"), "{:?}", gone.notes);
        setup.append(&setup.transcript(), &line(&replies()[0]));
        let replaced = setup.read(&gone.cursor);
        expect(
            &replaced,
            &[(
                "claude-opus-4-8",
                ModelUsage {
                    replies: 1,
                    input: 100,
                    cache_read: 1000,
                    cache_write_5m: 20,
                    cache_write_1h: 3,
                    output: 17,
                    ..SENT
                },
            )],
        );
    }

    #[test]
    fn no_transcript_yet_is_not_found_and_a_garbage_cursor_counts_from_the_start() {
        let setup = Setup::new();
        let err = usage(Some(&setup.config()), &setup.query("", 1 << 20)).unwrap_err();
        assert_eq!(
            err.kind.as_enum().ok(),
            Some(&ErrorKind::NotFound),
            "{}",
            err.message()
        );
        setup.append(&setup.transcript(), TWO_TURNS);
        let report = setup.read("{\"transcripts\": 12, garbage");
        expect(&report, &[("claude-opus-4-8", SENT)]);
    }

    #[test]
    fn folders_are_named_as_the_cli_names_them() {
        // As 2.1.197 named the folder of the fixture's workspace.
        assert_eq!(folder_name("/tmp/cs/work"), "-tmp-cs-work");
        assert_eq!(folder_name("/a/b_c.d/ü"), "-a-b-c-d--");
        // As 2.1.197 named a workspace path of 238 characters.
        let long = format!("/tmp/cs/{}", "x".repeat(230));
        assert_eq!(
            folder_name(&long),
            format!("-tmp-cs-{}-yz3k20", "x".repeat(192))
        );
    }
}
