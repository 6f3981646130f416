//! Usage (issue #28): `session ls --json` over 100 live sessions, each with a 20 MB Claude Code
//! transcript: the first listing (bounded by the listing's read budget), how many listings it
//! takes until every session is counted, a warm listing (nothing new: incremental reading), and
//! a listing after every transcript grew by one turn.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{json, Value};

use crate::{
    measure::{median, ms},
    setup::{ao_host, spawn_ok, spawn_setup, SpawnSetup},
    support::wait_until,
};

const SESSIONS: usize = 100;
const TRANSCRIPT_BYTES: usize = 20 << 20;

/// One turn of a Claude Code 2.1.197 transcript, as it writes them: the operator's prompt, a
/// reply of two content blocks (text, then a Bash call: two lines of one `message.id`, the
/// first with the usage streamed so far), the tool's result (8 KB of output, as a file read
/// makes), and the reply after it. `n` makes the message ids unique.
fn turn(conversation: &str, cwd: &str, n: usize, time: &str) -> String {
    let common = |kind: &str, uuid: String| {
        json!({
            "parentUuid": null, "isSidechain": false, "userType": "external",
            "entrypoint": "cli", "cwd": cwd, "sessionId": conversation,
            "version": "2.1.197", "gitBranch": "session/app-1", "type": kind,
            "uuid": uuid, "timestamp": time,
        })
    };
    let usage = |output: u64| {
        json!({
            "input_tokens": 4, "cache_creation_input_tokens": 1200,
            "cache_read_input_tokens": 48000, "output_tokens": output,
            "server_tool_use": { "web_search_requests": 0, "web_fetch_requests": 0 },
            "service_tier": "standard",
            "cache_creation": { "ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 1200 },
        })
    };
    let assistant = |id: String, content: Value, output: u64, uuid: String| {
        let mut line = common("assistant", uuid);
        line["requestId"] = format!("req_{id}").into();
        line["message"] = json!({
            "id": id, "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5-20250929", "content": content,
            "stop_reason": null, "stop_sequence": null, "usage": usage(output),
        });
        line
    };
    let mut prompt = common("user", format!("u{n}a"));
    prompt["message"] = json!({ "role": "user", "content": format!("step {n}: read the parser and fix the off-by-one") });
    let call = format!("msg_{n:08}a");
    let tool = format!("toolu_{n:08}");
    let mut result = common("user", format!("u{n}b"));
    let output = "    let x = parse(&line[start..end]);\n".repeat(8192 / 38);
    result["message"] = json!({ "role": "user", "content": [
        { "type": "tool_result", "tool_use_id": tool, "content": output, "is_error": false }] });
    result["toolUseResult"] =
        json!({ "stdout": output, "stderr": "", "interrupted": false, "isImage": false });
    let lines = [
        prompt,
        assistant(
            call.clone(),
            json!([{ "type": "text", "text": "I'll read the parser first." }]),
            1,
            format!("a{n}a"),
        ),
        assistant(
            call,
            json!([{ "type": "tool_use", "id": tool, "name": "Bash",
                     "input": { "command": "cat src/parser.rs", "description": "Read the parser" } }]),
            84,
            format!("a{n}b"),
        ),
        result,
        assistant(
            format!("msg_{n:08}b"),
            json!([{ "type": "text", "text": "Fixed: the end index was inclusive." }]),
            212,
            format!("a{n}c"),
        ),
    ];
    lines.iter().map(|line| format!("{line}\n")).collect()
}

/// A transcript of at least `bytes`, and how many turns it holds.
fn transcript(conversation: &str, cwd: &str, bytes: usize, time: &str) -> (String, usize) {
    let mut text = String::with_capacity(bytes + 32 * 1024);
    let mut turns = 0;
    while text.len() < bytes {
        turns += 1;
        text.push_str(&turn(conversation, cwd, turns, time));
    }
    (text, turns)
}

fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date of a day count (Howard Hinnant's `civil_from_days`).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// `session ls --json`: its time and the usage states it shows.
fn listing(setup: &SpawnSetup) -> (f64, Vec<Value>) {
    let started = Instant::now();
    let output = ao_host(setup, &["session", "ls", "--json"])
        .output()
        .unwrap();
    let elapsed = ms(started.elapsed());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let listed = listed.as_array().unwrap().clone();
    assert_eq!(listed.len(), SESSIONS);
    (elapsed, listed)
}

fn counted(listed: &[Value]) -> usize {
    listed
        .iter()
        .filter(|s| s["usage"]["state"] == "known")
        .count()
}

pub(crate) fn usage(plugins: &[PathBuf], work: &Path) {
    let setup = spawn_setup(plugins, work, "usage");
    let claude_dir = setup.dir.join("claude-config");
    let config = std::fs::read_to_string(&setup.config).unwrap();
    let config = config.replace(
        "claude-code: { command: ",
        &format!(
            "claude-code: {{ env: {{ CLAUDE_CONFIG_DIR: {:?} }}, command: ",
            claude_dir.display().to_string()
        ),
    );
    std::fs::write(&setup.config, config).unwrap();
    for n in 0..SESSIONS {
        spawn_ok(&setup, &format!("usage {n}"));
    }
    let states = setup.dir.join("data").join("agent-state").join("app");
    let idle = |n: &usize| {
        std::fs::read_to_string(states.join(format!("app-{n}.json")))
            .is_ok_and(|state| state.contains("\"status\":\"idle\""))
    };
    // Idle agents report their state, so the listing reads no screen: what is left is usage.
    // A loaded machine may take long to get there; the figures say how many were.
    wait_until(Duration::from_secs(180), || {
        (1..=SESSIONS).all(|n| idle(&n))
    });
    let idle_count = (1..=SESSIONS).filter(idle).count();

    // Each session's transcript, where Claude Code would write it for its workspace.
    let time = now_rfc3339();
    let (_, listed) = listing(&setup);
    let mut transcripts = Vec::new();
    let mut turns = 0;
    for session in &listed {
        let workspace = session["workspace_path"].as_str().unwrap();
        let conversation = session["conversation_id"].as_str().unwrap();
        let real = std::fs::canonicalize(workspace).unwrap();
        let folder =
            claude_dir
                .join("projects")
                .join(ao_agent_claude_code::transcript_folder_name(
                    &real.to_string_lossy(),
                ));
        std::fs::create_dir_all(&folder).unwrap();
        let (text, made) = transcript(conversation, workspace, TRANSCRIPT_BYTES, &time);
        turns = made;
        let path = folder.join(format!("{conversation}.jsonl"));
        std::fs::write(&path, text).unwrap();
        transcripts.push((path, conversation.to_string(), workspace.to_string()));
    }

    let (first, listed) = listing(&setup);
    let first_counted = counted(&listed);
    let mut until_counted = vec![first];
    let mut done = first_counted == SESSIONS;
    while !done {
        assert!(
            until_counted.len() < 10_000,
            "the listings never finish counting"
        );
        let (elapsed, listed) = listing(&setup);
        until_counted.push(elapsed);
        done = counted(&listed) == SESSIONS;
    }
    let to_count: f64 = until_counted.iter().sum();
    let (_, listed) = listing(&setup);
    let replies = listed[0]["usage"]["models"]["claude-sonnet-4-5-20250929"]["replies"].clone();
    assert_eq!(replies, json!(turns * 2), "each reply counted once");

    let warm = median((0..9).map(|_| listing(&setup).0).collect());
    for (path, conversation, workspace) in &transcripts {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(turn(conversation, workspace, turns + 1, &time).as_bytes())
            .unwrap();
    }
    let (grown, listed) = listing(&setup);
    assert_eq!(counted(&listed), SESSIONS);

    println!("## Usage (issue #28)\n");
    println!(
        "{SESSIONS} live sessions ({idle_count} reporting idle: the fake agent under the claude-code plugin), each with a \
         Claude Code transcript of {} MB ({turns} turns of 2.1.197-shaped lines: a prompt, a \
         reply of two content blocks, an 8 KB tool result, a reply after it).\n",
        TRANSCRIPT_BYTES >> 20
    );
    println!("| operation | median | target |");
    println!("|---|---|---|");
    println!(
        "| first `ao-host session ls --json` after the transcripts appeared (nothing read yet; bounded by the listing's read budget; {first_counted} of {SESSIONS} counted, the rest `counting`) | {first:.0} ms | |"
    );
    println!(
        "| listings until every session is counted: {} listings, {:.0} ms in all ({:.0} MB/s) | | |",
        until_counted.len(),
        to_count,
        (SESSIONS * TRANSCRIPT_BYTES) as f64 / 1e6 / (to_count / 1000.0)
    );
    println!(
        "| warm `ao-host session ls --json` (every transcript read, nothing new) | {warm:.0} ms | <= 60 ms |"
    );
    println!(
        "| `ao-host session ls --json` after each transcript grew by one turn | {grown:.0} ms | |"
    );
    println!();
}
