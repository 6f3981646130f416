//! What an OpenCode session used, read from OpenCode's own database.
//!
//! OpenCode (1.18) keeps its conversations in SQLite (`opencode.db` in its data folder): one
//! `message` row per user message and per model reply, the reply's JSON holding what the API
//! reported (`tokens {input, output, reasoning, cache {read, write}}`, `modelID`, `time`).
//! OpenCode already splits the counts the way prices are (its `input` leaves out cache reads, its
//! `output` leaves out reasoning), so they are taken as they are; a cache write of unknown length
//! counts as a 5-minute one. A reply's row is rewritten as it streams, so each is counted once,
//! with its last figures. Sub-agents (the `task` tool) run in conversations whose `parent_id` is
//! this one: they are counted too. OpenCode's side requests (a conversation's title) are not
//! recorded, so they are not counted.
//!
//! Reading is incremental: the cursor remembers each message's `time_updated` and size and what
//! it was counted as, so a call reads only rows that changed since, at most about `max_bytes` of
//! them. The database is opened read-only, never through a link, and only when it is this user's
//! own file.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    time::Duration,
};

use ao_plugin_api::{
    abi_stable::std_types::{RString, RVec},
    usage::{UsageQuery, UsageReport},
    ErrorKind, PluginFailure,
};
use ao_plugin_kit::usage::{check_own_record, Tokens, UsageTally};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The most notes a report carries; more are summed up in one.
const MAX_NOTES: usize = 20;

/// Where OpenCode keeps its database, as it finds it itself: `OPENCODE_DB` (a path, absolute or
/// inside the data folder), else `opencode.db` in `$XDG_DATA_HOME/opencode` (by default
/// `~/.local/share/opencode`). `env` is what the session's environment sets over this process's.
pub fn database_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    let variable = |name: &str| {
        env.get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
            .filter(|value| !value.is_empty())
    };
    let data = match variable("XDG_DATA_HOME") {
        Some(data) => PathBuf::from(data),
        None => PathBuf::from(variable("HOME")?).join(".local/share"),
    }
    .join("opencode");
    Some(match variable("OPENCODE_DB") {
        Some(db) if db == ":memory:" => return None,
        Some(db) => data.join(db),
        None => data.join("opencode.db"),
    })
}

/// What the plugin hands the host as its cursor.
#[derive(Serialize, Deserialize, Default)]
struct Cursor {
    /// The conversation counted; a cursor of another one is not read on.
    conversation: String,
    /// Each message read: how it looked and what it was counted as.
    seen: BTreeMap<String, Seen>,
    tally: UsageTally,
    notes: Notes,
}

/// What could not be counted: the first [`MAX_NOTES`] said, the rest only counted, so a
/// conversation full of garbage keeps its cursor small.
#[derive(Serialize, Deserialize, Default)]
struct Notes {
    said: BTreeSet<String>,
    more: u64,
}

impl Notes {
    fn add(&mut self, note: String) {
        if self.said.len() < MAX_NOTES || self.said.contains(&note) {
            self.said.insert(note);
        } else {
            self.more += 1;
        }
    }

    fn to_report(&self) -> RVec<RString> {
        let mut notes: Vec<RString> = self.said.iter().map(|n| n.as_str().into()).collect();
        if self.more > 0 {
            notes.push(format!("and {} more such notes", self.more).into());
        }
        notes.into()
    }
}

#[derive(Serialize, Deserialize, Clone)]
struct Seen {
    updated: i64,
    size: i64,
    /// `None` for a message that is not a reply with tokens (yet).
    counted: Option<Counted>,
}

#[derive(Serialize, Deserialize, Clone)]
struct Counted {
    model: String,
    at: Option<u64>,
    tokens: Tokens,
}

/// A stored message, as far as usage goes.
#[derive(Deserialize)]
struct Message {
    role: String,
    #[serde(rename = "modelID")]
    model: Option<String>,
    tokens: Option<MessageTokens>,
    time: Option<MessageTime>,
}

#[derive(Deserialize)]
struct MessageTokens {
    input: u64,
    output: u64,
    #[serde(default)]
    reasoning: u64,
    #[serde(default)]
    cache: CacheTokens,
}

#[derive(Deserialize, Default)]
struct CacheTokens {
    #[serde(default)]
    read: u64,
    #[serde(default)]
    write: u64,
}

#[derive(Deserialize)]
struct MessageTime {
    /// Milliseconds since the epoch.
    created: Option<u64>,
}

/// A message row that changed since the cursor.
struct Changed {
    id: String,
    updated: i64,
    size: i64,
}

/// The session's usage so far, read on from `query.cursor` in the database at `database`.
pub fn read(database: Option<&Path>, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
    let Some(conversation) = query
        .conversation_id
        .as_ref()
        .map(|c| c.as_str())
        .into_option()
    else {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            "OpenCode has not said which conversation is the session's yet",
        ));
    };
    let Some(database) = database else {
        return Err(PluginFailure::new(
            ErrorKind::Unsupported,
            "OPENCODE_DB is :memory:, so OpenCode keeps no records to count",
        ));
    };
    let connection = open(database)?;
    let failed = |e: rusqlite::Error| {
        PluginFailure::new(
            ErrorKind::Failed,
            format!("reading {}: {e}", database.display()),
        )
    };
    // One read transaction: the listing and the rows read agree.
    let transaction = connection.unchecked_transaction().map_err(failed)?;
    let changed_rows = list_messages(&transaction, conversation).map_err(failed)?;

    let mut cursor: Cursor = serde_json::from_str(&query.cursor).unwrap_or_default();
    if cursor.conversation != conversation {
        cursor = Cursor {
            conversation: conversation.to_string(),
            ..Cursor::default()
        };
    }
    if changed_rows.is_empty() && cursor.seen.is_empty() {
        return Err(PluginFailure::new(
            ErrorKind::NotFound,
            format!(
                "{} holds no message of conversation {conversation} yet",
                database.display()
            ),
        ));
    }
    let changed: Vec<Changed> = changed_rows
        .into_iter()
        .filter(|row| {
            cursor
                .seen
                .get(&row.id)
                .is_none_or(|seen| seen.updated != row.updated || seen.size != row.size)
        })
        .collect();

    let mut budget = query.max_bytes;
    let mut pending_bytes = 0u64;
    let mut data = transaction
        .prepare("SELECT data FROM message WHERE id = ?1")
        .map_err(failed)?;
    for row in changed {
        let size = u64::try_from(row.size).unwrap_or(0);
        if budget == 0 {
            pending_bytes = pending_bytes.saturating_add(size);
            continue;
        }
        budget = budget.saturating_sub(size);
        let text: Option<String> = data
            .query_row([&row.id], |r| r.get(0))
            .optional()
            .map_err(failed)?;
        let counted = match text.as_deref().map(serde_json::from_str::<Message>) {
            // Gone since the listing (the conversation was deleted meanwhile): what it counted
            // stays counted.
            None => continue,
            Some(Ok(message)) => counted(&message, &row.id, &mut cursor.notes),
            Some(Err(e)) => {
                cursor.notes.add(format!(
                    "message {} of OpenCode conversation {conversation} is not a message OpenCode \
                     writes ({e}); it is not counted",
                    row.id
                ));
                None
            }
        };
        let before = cursor
            .seen
            .get(&row.id)
            .and_then(|seen| seen.counted.clone());
        match (&before, &counted) {
            (Some(before), Some(now)) => {
                cursor
                    .tally
                    .revise_reply(&before.model, before.at, &before.tokens, &now.tokens)
            }
            (None, Some(now)) => cursor.tally.add_reply(&now.model, now.at, &now.tokens),
            // A reply once counted that no longer reads as one keeps its last figures.
            (Some(_), None) | (None, None) => {}
        }
        cursor.seen.insert(
            row.id,
            Seen {
                updated: row.updated,
                size: row.size,
                counted: counted.or(before),
            },
        );
    }
    drop(data);
    drop(transaction);

    let notes = cursor.notes.to_report();
    Ok(UsageReport {
        usage: cursor.tally.to_usage(),
        cursor: serde_json::to_string(&cursor)
            .map_err(|e| PluginFailure::new(ErrorKind::Failed, format!("the cursor: {e}")))?
            .into(),
        pending_bytes,
        notes,
    })
}

/// The database, read-only, never through a link, and only when it is this user's own file.
fn open(database: &Path) -> Result<Connection, PluginFailure> {
    let meta = match std::fs::symlink_metadata(database) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PluginFailure::new(
                ErrorKind::NotFound,
                format!("no OpenCode database at {} yet", database.display()),
            ))
        }
        Err(e) => {
            return Err(PluginFailure::new(
                ErrorKind::Failed,
                format!("{}: {e}", database.display()),
            ))
        }
    };
    check_own_record(database, &meta)
        .map_err(|e| PluginFailure::new(ErrorKind::Failed, e.to_string()))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let connection = Connection::open_with_flags(database, flags).map_err(|e| {
        PluginFailure::new(
            ErrorKind::Failed,
            format!("opening {}: {e}", database.display()),
        )
    })?;
    // OpenCode may be writing; a reader waits a moment rather than fail a listing.
    connection
        .busy_timeout(Duration::from_secs(2))
        .map_err(|e| PluginFailure::new(ErrorKind::Failed, e.to_string()))?;
    Ok(connection)
}

/// Every message of `conversation` and of its sub-agents' conversations: id, when it was last
/// written, and its size in bytes (`octet_length` reads it from the row's header, not its text).
fn list_messages(connection: &Connection, conversation: &str) -> rusqlite::Result<Vec<Changed>> {
    let mut statement = connection.prepare(
        "WITH RECURSIVE tree(id) AS (
             SELECT ?1
             UNION SELECT session.id FROM session JOIN tree ON session.parent_id = tree.id
         )
         SELECT message.id, message.time_updated, octet_length(message.data)
         FROM message JOIN tree ON message.session_id = tree.id
         ORDER BY message.time_created, message.id",
    )?;
    let rows = statement.query_map([conversation], |row| {
        Ok(Changed {
            id: row.get(0)?,
            updated: row.get(1)?,
            size: row.get(2)?,
        })
    })?;
    rows.collect()
}

/// What a message counts for: a reply with its model and tokens; `None` for anything else (a
/// user message, a reply that has no tokens yet).
fn counted(message: &Message, id: &str, notes: &mut Notes) -> Option<Counted> {
    if message.role != "assistant" {
        return None;
    }
    let tokens = message.tokens.as_ref()?;
    let tokens = Tokens {
        input: tokens.input,
        cache_read: tokens.cache.read,
        cache_write_5m: tokens.cache.write,
        cache_write_1h: 0,
        output: tokens.output,
        reasoning: tokens.reasoning,
    };
    if tokens == Tokens::default() {
        return None;
    }
    let Some(model) = message.model.as_deref().filter(|m| !m.is_empty()) else {
        notes.add(format!(
            "reply {id} has tokens but names no model; it is not counted"
        ));
        return None;
    };
    Some(Counted {
        model: model.to_string(),
        at: message
            .time
            .as_ref()
            .and_then(|t| t.created)
            .map(|ms| ms / 1000),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use ao_plugin_api::{usage::ModelUsage, Agent, PluginContext};

    use super::*;
    use crate::OpenCode;

    /// `session` and `message` of a real OpenCode 1.18.33 database after two turns against a
    /// stand-in: a shell-tool turn (two replies) and a `task`-tool turn (two replies, and one of
    /// the sub-agent's conversation).
    const RECORDED: &str = include_str!("../tests/usage/two-turns.sql");
    const CONVERSATION: &str = "ses_dad5615c1ffeSno8mbxf4U3aXC";
    /// The hour all the recorded replies were made in.
    const HOUR: u64 = 1_796_680_800;

    /// What the stand-in sent for the five replies (its `prompt_tokens` less
    /// `cached_tokens`, its `completion_tokens` less `reasoning_tokens`), summed.
    fn recorded_usage() -> ModelUsage {
        ModelUsage {
            model: "standin-model".into(),
            hour: HOUR,
            replies: 5,
            input: 18_055,
            cache_read: 2_000,
            output: 205,
            reasoning: 20,
            ..ModelUsage::default()
        }
    }

    struct Recorded {
        _dir: tempfile::TempDir,
        path: PathBuf,
        plugin: OpenCode,
    }

    impl Recorded {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("opencode.db");
            Connection::open(&path)
                .unwrap()
                .execute_batch(RECORDED)
                .unwrap();
            let plugin = OpenCode::new(&PluginContext {
                plugin_name: "opencode".into(),
                data_dir: dir.path().join("data").display().to_string().into(),
                config_yaml: format!("env: {{ OPENCODE_DB: {:?} }}", path.display().to_string())
                    .into(),
            })
            .unwrap();
            Self {
                _dir: dir,
                path,
                plugin,
            }
        }

        fn sql(&self, sql: &str) {
            // The recorded tables only: no `project` for the foreign keys to find.
            Connection::open(&self.path)
                .unwrap()
                .execute_batch(&format!("PRAGMA foreign_keys = OFF; {sql}"))
                .unwrap();
        }

        fn usage(
            &self,
            conversation: Option<&str>,
            cursor: &str,
        ) -> Result<UsageReport, PluginFailure> {
            self.plugin.usage(&query(conversation, cursor))
        }
    }

    fn query(conversation: Option<&str>, cursor: &str) -> UsageQuery {
        ao_plugin_test::usage_query("/tmp/ocx/proj2", conversation, cursor, u64::MAX)
    }

    fn kind(error: &PluginFailure) -> ErrorKind {
        *error.kind.as_enum().unwrap()
    }

    /// A reply of `conversation` with `input` and `output` tokens, made at `created` ms.
    fn reply(id: &str, conversation: &str, created: u64, input: u64, output: u64) -> String {
        let data = serde_json::json!({
            "role": "assistant", "modelID": "standin-model", "providerID": "standin",
            "tokens": { "input": input, "output": output, "reasoning": 0,
                        "cache": { "read": 0, "write": 0 } },
            "time": { "created": created },
        });
        format!(
            "INSERT OR REPLACE INTO message VALUES('{id}', '{conversation}', {created}, {created} + \
             {input} + {output}, '{data}');"
        )
    }

    #[test]
    fn the_recorded_turns_count_each_reply_once_with_the_sub_agents_and_no_other_conversation() {
        let recorded = Recorded::new();
        // Another conversation of the same folder, and one of its sub-agents.
        recorded.sql(&format!(
            "INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, \
             time_created, time_updated) VALUES ('ses_other', 'global', NULL, 's', '/tmp/ocx/proj2', \
             't', '1.18.33', 0, 0), ('ses_other_child', 'global', 'ses_other', 's', \
             '/tmp/ocx/proj2', 't', '1.18.33', 0, 0); {} {}",
            reply("msg_other", "ses_other", 1_796_683_300_000, 7, 7),
            reply("msg_other_child", "ses_other_child", 1_796_683_300_000, 9, 9),
        ));
        let report = ao_plugin_test::check_usage_records(
            &recorded.plugin,
            &query(Some(CONVERSATION), ""),
            &[recorded_usage()],
        )
        .unwrap();
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }

    #[test]
    fn a_reply_rewritten_as_it_streams_is_counted_once_with_its_last_figures() {
        let recorded = Recorded::new();
        let first = recorded.usage(Some(CONVERSATION), "").unwrap();
        // A new reply, still streaming: no tokens yet, so no reply counted.
        let at = 1_796_683_400_000;
        recorded.sql(&reply("msg_new", CONVERSATION, at, 0, 0));
        let streaming = recorded.usage(Some(CONVERSATION), &first.cursor).unwrap();
        assert_eq!(streaming.usage.as_slice(), [recorded_usage()]);
        // Its figures as they grow, then its last ones.
        recorded.sql(&reply("msg_new", CONVERSATION, at, 100, 1));
        let growing = recorded
            .usage(Some(CONVERSATION), &streaming.cursor)
            .unwrap();
        recorded.sql(&reply("msg_new", CONVERSATION, at, 100, 40));
        let last = recorded.usage(Some(CONVERSATION), &growing.cursor).unwrap();
        let mut expected = recorded_usage();
        expected.replies += 1;
        expected.input += 100;
        expected.output += 40;
        assert_eq!(last.usage.as_slice(), [expected.clone()]);
        // Nothing changed since: the same, and nothing was read again.
        let again = recorded.usage(Some(CONVERSATION), &last.cursor).unwrap();
        assert_eq!(again.usage.as_slice(), [expected]);
        assert_eq!(again.cursor, last.cursor);
    }

    #[test]
    fn a_row_that_is_no_message_is_noted_and_the_rest_counted() {
        let recorded = Recorded::new();
        let no_model = reply("msg_no_model", CONVERSATION, 1_796_683_400_000, 5, 5)
            .replace(r#""modelID":"standin-model","#, "");
        recorded.sql(&format!(
            "INSERT INTO message VALUES('msg_garbage', '{CONVERSATION}', 1, 1, '{{\"role\": \
             \"assist'); {no_model}"
        ));
        let report = recorded.usage(Some(CONVERSATION), "").unwrap();
        assert_eq!(report.usage.as_slice(), [recorded_usage()]);
        let notes: Vec<&str> = report.notes.iter().map(RString::as_str).collect();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("msg_garbage")), "{notes:?}");
        assert!(
            notes.iter().any(|n| n.contains("msg_no_model")),
            "{notes:?}"
        );
        // Notes stay with the cursor, reported again when nothing new is read.
        let again = recorded.usage(Some(CONVERSATION), &report.cursor).unwrap();
        assert_eq!(again.notes, report.notes);
    }

    #[test]
    fn the_budget_is_kept_and_what_is_left_is_pending() {
        let recorded = Recorded::new();
        let mut small = query(Some(CONVERSATION), "");
        small.max_bytes = 0;
        let nothing = recorded.plugin.usage(&small).unwrap();
        assert!(nothing.usage.is_empty());
        let sizes: i64 = Connection::open(&recorded.path)
            .unwrap()
            .query_row(
                "SELECT sum(length(CAST(data AS BLOB))) FROM message",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(nothing.pending_bytes, u64::try_from(sizes).unwrap());
        small.max_bytes = 1;
        let one = recorded.plugin.usage(&small).unwrap();
        assert!(one.pending_bytes > 0 && one.pending_bytes < nothing.pending_bytes);
    }

    #[test]
    fn no_database_no_conversation_or_an_unreadable_database_is_not_a_number() {
        let recorded = Recorded::new();
        assert_eq!(
            kind(&recorded.usage(None, "").unwrap_err()),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(&recorded.usage(Some("ses_unknown"), "").unwrap_err()),
            ErrorKind::NotFound
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("opencode.db");
        let error = read(Some(&missing), &query(Some(CONVERSATION), "")).unwrap_err();
        assert_eq!(kind(&error), ErrorKind::NotFound, "{error}");

        std::fs::write(&missing, vec![0x5a; 10_000]).unwrap();
        let error = read(Some(&missing), &query(Some(CONVERSATION), "")).unwrap_err();
        assert_eq!(kind(&error), ErrorKind::Failed, "{error}");
        assert!(error.message().contains("opencode.db"), "{error}");

        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&recorded.path, &link).unwrap();
        let error = read(Some(&link), &query(Some(CONVERSATION), "")).unwrap_err();
        assert_eq!(
            kind(&error),
            ErrorKind::Failed,
            "a link was followed: {error}"
        );

        std::fs::set_permissions(&recorded.path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let error = recorded.usage(Some(CONVERSATION), "").unwrap_err();
        assert!(error.message().contains("others may write"), "{error}");
    }

    #[test]
    fn the_database_is_found_where_opencode_looks() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            database_path(&env(&[("HOME", "/h"), ("XDG_DATA_HOME", "/x")])),
            Some(PathBuf::from("/x/opencode/opencode.db"))
        );
        assert_eq!(
            database_path(&env(&[("XDG_DATA_HOME", "/x"), ("OPENCODE_DB", "mine.db")])),
            Some(PathBuf::from("/x/opencode/mine.db"))
        );
        assert_eq!(
            database_path(&env(&[
                ("XDG_DATA_HOME", "/x"),
                ("OPENCODE_DB", "/abs/o.db")
            ])),
            Some(PathBuf::from("/abs/o.db"))
        );
        assert_eq!(
            database_path(&env(&[
                ("XDG_DATA_HOME", "/x"),
                ("OPENCODE_DB", ":memory:")
            ])),
            None
        );
    }
}
