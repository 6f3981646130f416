//! What sessions cost, end to end: the claude-code plugin reads a transcript this test writes
//! where Claude Code keeps them (under the harness's `$HOME/.claude`), with figures the test
//! chose; `session ls`, `session kill` (the archived record), `ao-host usage` and `prices:` show
//! exactly those sums and the price table's arithmetic.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;
use support::{fake_messages, json, stderr, stdout, wait_until, Harness};

use crate::dashboard::Dashboard;

const SONNET: &str = "claude-sonnet-4-5-20250929";
/// Anthropic's Sonnet 4.5 prices, USD per million tokens: input, output, cache read, cache
/// write 5m, cache write 1h.
const SONNET_PRICES: [f64; 5] = [3.0, 15.0, 0.30, 3.75, 6.0];

/// One assistant transcript line of `conversation`, as Claude Code writes it.
fn reply(conversation: &str, id: &str, model: &str, usage: [u64; 5]) -> String {
    let [input, output, cache_read, write_5m, write_1h] = usage;
    serde_json::json!({
        "type": "assistant",
        "sessionId": conversation,
        "timestamp": "2026-12-07T10:15:00.000Z",
        "message": {
            "id": id,
            "model": model,
            "role": "assistant",
            "usage": {
                "input_tokens": input,
                "output_tokens": output,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": write_5m + write_1h,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": write_5m,
                    "ephemeral_1h_input_tokens": write_1h,
                },
            },
        },
    })
    .to_string()
}

/// Spawns `app-1` on the fake agent and waits for it to take its task.
fn spawned(harness: &Harness) -> (String, PathBuf) {
    harness.ok(&["spawn", "app", "--task", "count me"]);
    assert!(
        wait_until(Duration::from_secs(10), || fake_messages(
            &harness.log_dir().join("app-1")
        ) == ["count me"]),
        "app-1 never got its task"
    );
    let listed = harness.sessions_json(&[]);
    let conversation = listed[0]["conversation_id"].as_str().unwrap().to_string();
    let worktree = PathBuf::from(listed[0]["workspace_path"].as_str().unwrap());
    (conversation, worktree)
}

/// The transcript file of `conversation` begun in `worktree`, where Claude Code keeps it.
fn transcript(harness: &Harness, worktree: &Path, conversation: &str) -> PathBuf {
    let folder: String = worktree
        .display()
        .to_string()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = harness.home().join(".claude/projects").join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{conversation}.jsonl"))
}

fn append(path: &Path, lines: &[String]) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn cost(usage: [u64; 5], prices: [f64; 5]) -> f64 {
    usage
        .iter()
        .zip(prices)
        .map(|(tokens, price)| *tokens as f64 * price)
        .sum::<f64>()
        / 1e6
}

fn assert_close(got: &Value, want: f64) {
    let got = got.as_f64().unwrap_or_else(|| panic!("{got} is no number"));
    assert!((got - want).abs() < 1e-9, "cost {got}, want {want}");
}

/// The figures of `model` in a `usage` object, in [`reply`]'s order, and its reply count.
fn figures(usage: &Value, model: &str) -> ([u64; 5], u64) {
    let m = &usage["models"][model];
    let n = |key: &str| {
        m[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {usage}"))
    };
    assert_eq!(n("cache_write"), n("cache_write_5m") + n("cache_write_1h"));
    (
        [
            n("input"),
            n("output"),
            n("cache_read"),
            n("cache_write_5m"),
            n("cache_write_1h"),
        ],
        n("replies"),
    )
}

#[test]
fn usage_is_listed_kept_when_killed_and_summed_at_the_price_tables_cost() {
    let harness = Harness::new(&[], "");
    let (conversation, worktree) = spawned(&harness);
    let usage = &harness.sessions_json(&[])[0]["usage"];
    assert_eq!(usage["state"], "none", "{usage}");
    assert_close(&usage["cost_usd"], 0.0);

    // Two replies; the first written once per content block with its output growing, as
    // Claude Code does. Another conversation's lines, in the same file and beside it, are not
    // this session's.
    let path = transcript(&harness, &worktree, &conversation);
    let other = "00000000-0000-4000-8000-000000000000";
    append(
        &path,
        &[
            reply(&conversation, "msg_1", SONNET, [10, 5, 1000, 200, 100]),
            reply(&conversation, "msg_1", SONNET, [10, 40, 1000, 200, 100]),
            reply(other, "msg_x", SONNET, [999, 999, 999, 999, 999]),
            reply(&conversation, "msg_2", SONNET, [7, 30, 1200, 0, 50]),
        ],
    );
    append(
        &path.with_file_name(format!("{other}.jsonl")),
        &[reply(other, "msg_y", SONNET, [5_000, 5_000, 0, 0, 0])],
    );
    let two_turns = [17, 70, 2200, 200, 150];
    let usage = harness.sessions_json(&[])[0]["usage"].clone();
    assert_eq!(usage["state"], "known", "{usage}");
    assert_eq!(figures(&usage, SONNET), (two_turns, 2));
    assert_close(
        &usage["models"][SONNET]["cost_usd"],
        cost(two_turns, SONNET_PRICES),
    );
    assert_close(&usage["cost_usd"], cost(two_turns, SONNET_PRICES));
    assert_eq!(usage["priced"], true);
    let text = stdout(&harness.ok(&["session", "ls"]));
    assert!(text.contains("COST"), "{text}");
    let shown = format!("${:.2}", cost(two_turns, SONNET_PRICES));
    assert!(text.contains(&shown), "{shown} not in:\n{text}");

    // Read on, not again: a third reply adds only itself. A model the table does not know
    // shows its tokens, its cost unknown, and the total says it is partial.
    append(
        &path,
        &[
            reply(&conversation, "msg_3", SONNET, [3, 3, 0, 0, 0]),
            reply(&conversation, "msg_4", "mystery-model-1", [1, 2, 0, 0, 0]),
        ],
    );
    let three_turns = [20, 73, 2200, 200, 150];
    let usage = harness.sessions_json(&[])[0]["usage"].clone();
    assert_eq!(figures(&usage, SONNET), (three_turns, 3));
    assert_eq!(figures(&usage, "mystery-model-1"), ([1, 2, 0, 0, 0], 1));
    assert_eq!(usage["models"]["mystery-model-1"]["cost_usd"], Value::Null);
    assert_eq!(usage["priced"], false);
    assert_close(&usage["cost_usd"], cost(three_turns, SONNET_PRICES));
    let kept = harness.data_dir().join("usage/app/app-1.json");
    let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", kept.display());
    // What is kept damaged: counted again from the start, never a wrong figure.
    std::fs::write(&kept, b"{\"plugin\": \"claude-co").unwrap();
    let usage = harness.sessions_json(&[])[0]["usage"].clone();
    assert_eq!(figures(&usage, SONNET), (three_turns, 3), "{usage}");

    // `prices:` prices the unknown model and overrides a built-in one (date suffix ignored).
    harness.append_config(
        "prices:\n  claude-sonnet-4-5: { input: 1, output: 2, cache_read: 0.5, cache_write_5m: 1.5, cache_write_1h: 3 }\n  mystery-model-1: { input: 1000, output: 1000, cache_read: 0, cache_write_5m: 0, cache_write_1h: 0 }\n",
    );
    let overridden = [1.0, 2.0, 0.5, 1.5, 3.0];
    let mystery = 3.0 * 1000.0 / 1e6;
    let usage = harness.sessions_json(&[])[0]["usage"].clone();
    assert_eq!(usage["priced"], true, "{usage}");
    assert_close(&usage["cost_usd"], cost(three_turns, overridden) + mystery);

    // The dashboard's API carries the same object.
    let dashboard = Dashboard::start(&harness, &[], &[]);
    let api = dashboard.get("/api/sessions").json();
    assert_eq!(figures(&api[0]["usage"], SONNET), (three_turns, 3), "{api}");
    assert_close(
        &api[0]["usage"]["cost_usd"],
        cost(three_turns, overridden) + mystery,
    );
    dashboard.stop();

    // A kill keeps the final figures in the archived record: the listing of ended sessions
    // and `ao-host usage` still show them, and what the store kept for the live session goes.
    harness.ok(&["session", "kill", "app-1"]);
    assert!(!kept.exists());
    let archived = harness.sessions_json(&["--archived"]);
    let usage = &archived[0]["usage"];
    assert_eq!(figures(usage, SONNET), (three_turns, 3), "{usage}");
    let record = std::fs::read_to_string(harness.record("app-1", true)).unwrap();
    assert!(record.contains("usage:"), "{record}");
    let summed = json(&harness.ok(&["usage", "--json"]));
    assert_eq!(summed["groups"][0]["key"], "app-1", "{summed}");
    assert_eq!(figures(&summed["total"], SONNET), (three_turns, 3));
    assert_close(
        &summed["total"]["cost_usd"],
        cost(three_turns, overridden) + mystery,
    );
    let by_day = json(&harness.ok(&["usage", "app", "--by", "day", "--json"]));
    assert_eq!(by_day["groups"][0]["key"], "2026-12-07", "{by_day}");
    let by_model = json(&harness.ok(&["usage", "--by", "model", "--json"]));
    let models: Vec<&str> = by_model["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(models, [SONNET, "mystery-model-1"]);
    // Replies made before `--since` are left out.
    let since = json(&harness.ok(&["usage", "--since", "2026-12-08", "--json"]));
    assert_eq!(since["total"]["models"], serde_json::json!({}), "{since}");
    let text = stdout(&harness.ok(&["usage", "--by", "project"]));
    assert!(text.contains("app") && text.contains("total"), "{text}");
    let mistyped = harness.ao(&["usage", "apq"]);
    assert!(!mistyped.status.success());
    assert!(
        stderr(&mistyped).contains("no project `apq`"),
        "{}",
        stderr(&mistyped)
    );
}

#[test]
fn a_first_listing_of_a_huge_transcript_answers_counting_and_reads_on_later() {
    let harness = Harness::new(&[], "");
    let (conversation, worktree) = spawned(&harness);
    let path = transcript(&harness, &worktree, &conversation);
    // ~34 MB of replies: more than a listing reads at once (32 MiB).
    let line = reply(&conversation, "msg_0", SONNET, [1, 1, 0, 0, 0]);
    let lines = 34 * 1024 * 1024 / line.len() + 1;
    let mut text = String::with_capacity(lines * (line.len() + 1));
    for n in 0..lines {
        text.push_str(&reply(
            &conversation,
            &format!("msg_{n}"),
            SONNET,
            [1, 1, 0, 0, 0],
        ));
        text.push('\n');
    }
    append(&path, &[text.trim_end().to_string()]);
    let text = stdout(&harness.ok(&["session", "ls"]));
    assert!(text.contains("counting…"), "{text}");
    // Each listing reads on from where the last stopped, until every reply is counted once.
    let mut listings = 1;
    let usage = loop {
        let usage = harness.sessions_json(&[])[0]["usage"].clone();
        listings += 1;
        if usage["state"] != "counting" || listings > 10 {
            break usage;
        }
    };
    assert_eq!(usage["state"], "known", "after {listings} listings");
    assert_eq!(
        figures(&usage, SONNET),
        ([lines as u64, lines as u64, 0, 0, 0], lines as u64)
    );
}

#[test]
fn a_bad_prices_entry_is_refused_naming_the_field_and_the_fix() {
    let harness = Harness::new(&[], "");
    harness.append_config(
        "prices:\n  my-model: { input: -1, output: 2, cache_read: 0, cache_write_5m: 0, cache_write_1h: 0 }\n",
    );
    let output = harness.ao(&["session", "ls"]);
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("prices.my-model.input") && error.contains("from 0 to"),
        "{error}"
    );
    harness.rewrite_config(|text| {
        let edited = text.replace("input: -1, ", "inptu: 1, ");
        assert_ne!(edited, text);
        edited
    });
    let error = stderr(&harness.ao(&["session", "ls"]));
    assert!(error.contains("inptu"), "{error}");
}
