//! What a real Claude Code session used, as ao-host shows it: the Messages stand-in reports
//! known usage per reply (`MessagesApi::queue_usage`), the CLI writes it to its transcript, the
//! claude-code plugin reads it back. Two turns (a text reply; a Bash call and the reply after
//! it) must show exactly the sums the stand-in sent, per model, priced at the table's
//! arithmetic; a killed session keeps them in its archived record and in `ao-host usage`.
//!
//! Runs when `$AO_TEST_CLAUDE` names the CLI (see `real_claude`); otherwise it skips.

use std::{collections::BTreeMap, time::Duration};

use serde_json::{json, Value};
use support::{
    agent_cli,
    messages_api::{MessagesApi, Usage},
    standin_http::StandInApi,
    wait_until,
};

use crate::real_claude::real_claude;

/// USD per million tokens the test config sets for the stand-in's model.
const PRICE: [(&str, f64); 5] = [
    ("input", 3.0),
    ("output", 15.0),
    ("cache_read", 0.3),
    ("cache_write_5m", 3.75),
    ("cache_write_1h", 6.0),
];

/// What `session ls --json` must show per model for what the stand-in sent.
fn expected(api: &MessagesApi) -> BTreeMap<String, Value> {
    let mut sums: BTreeMap<String, Usage> = BTreeMap::new();
    let mut replies: BTreeMap<String, u64> = BTreeMap::new();
    for (model, usage) in api.usage_sent() {
        let sum = sums.entry(model.clone()).or_insert(Usage {
            input: 0,
            output: 0,
            cache_read: 0,
            cache_write_5m: 0,
            cache_write_1h: 0,
        });
        sum.input += usage.input;
        sum.output += usage.output;
        sum.cache_read += usage.cache_read;
        sum.cache_write_5m += usage.cache_write_5m;
        sum.cache_write_1h += usage.cache_write_1h;
        *replies.entry(model).or_default() += 1;
    }
    let price: BTreeMap<&str, f64> = PRICE.into_iter().collect();
    sums.into_iter()
        .map(|(model, sum)| {
            let cost = (sum.input as f64 * price["input"]
                + sum.output as f64 * price["output"]
                + sum.cache_read as f64 * price["cache_read"]
                + sum.cache_write_5m as f64 * price["cache_write_5m"]
                + sum.cache_write_1h as f64 * price["cache_write_1h"])
                / 1e6;
            let figures = json!({
                "replies": replies[&model],
                "input": sum.input,
                "output": sum.output,
                "cache_read": sum.cache_read,
                "cache_write": sum.cache_write_5m + sum.cache_write_1h,
                "cache_write_5m": sum.cache_write_5m,
                "cache_write_1h": sum.cache_write_1h,
                "reasoning": 0,
                "cost_usd": cost,
            });
            (model, figures)
        })
        .collect()
}

/// Whether `models` (a listing's `usage.models`) holds exactly `expected`, costs to the cent's
/// billionth.
fn matches(models: &Value, expected: &BTreeMap<String, Value>) -> bool {
    let Some(models) = models.as_object() else {
        return false;
    };
    models.len() == expected.len()
        && expected.iter().all(|(model, want)| {
            let Some(got) = models.get(model) else {
                return false;
            };
            want.as_object()
                .unwrap()
                .iter()
                .all(|(key, value)| match key.as_str() {
                    "cost_usd" => got[key]
                        .as_f64()
                        .is_some_and(|cost| (cost - value.as_f64().unwrap()).abs() < 1e-9),
                    _ => &got[key] == value,
                })
        })
}

#[test]
fn the_real_claude_clis_usage_shows_exactly_what_the_api_sent_and_outlives_the_session() {
    let Some((api, harness, _)) = real_claude() else {
        return;
    };
    api.queue_usage([
        Usage {
            input: 1200,
            output: 345,
            cache_read: 5000,
            cache_write_5m: 700,
            cache_write_1h: 90,
        },
        Usage {
            input: 40,
            output: 120,
            cache_read: 6200,
            cache_write_5m: 300,
            cache_write_1h: 0,
        },
        Usage {
            input: 25,
            output: 60,
            cache_read: 6500,
            cache_write_5m: 0,
            cache_write_1h: 50,
        },
    ]);
    harness.ok(&["spawn", "app", "--task", "say hello"]);
    agent_cli::wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));
    assert!(api.wait_for_conversation_requests(1, Duration::from_secs(5)));
    // A read-only command runs without a permission prompt; the reply after its result is the
    // turn's second model request.
    harness.ok(&["send", "app-1", "now AO_TOOL:echo hi"]);
    assert!(
        api.wait_for_conversation_requests(3, Duration::from_secs(60)),
        "the tool turn never reached the model twice: {:#?}",
        api.prompts_sent()
    );
    agent_cli::wait_for_status(&harness, "app-1", "idle", Duration::from_secs(60));

    // The stand-in's model is whatever the CLI asked for: price it for exact arithmetic.
    let sent = api.usage_sent();
    let model = sent[0].0.clone();
    let price: Vec<String> = PRICE.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    harness.append_config(&format!("prices:\n  {model}: {{ {} }}\n", price.join(", ")));

    // Another conversation's transcript in the same folder is not this session's.
    let listed = agent_cli::status_of(&harness, "app-1");
    let conversation = listed["conversation_id"].as_str().unwrap().to_string();
    let projects = harness.home().join("agent-home/.claude/projects");
    let transcript = std::fs::read_dir(&projects)
        .unwrap()
        .map(|entry| entry.unwrap().path().join(format!("{conversation}.jsonl")))
        .find(|path| path.is_file())
        .expect("the CLI wrote the conversation's transcript");
    let other = "0b5e0b5e-0000-4000-8000-000000000000";
    std::fs::write(
        transcript.with_file_name(format!("{other}.jsonl")),
        std::fs::read_to_string(&transcript)
            .unwrap()
            .replace(&conversation, other),
    )
    .unwrap();

    let mut last = Value::Null;
    let shown = wait_until(Duration::from_secs(30), || {
        let want = expected(&api);
        last = agent_cli::status_of(&harness, "app-1")["usage"].clone();
        last["state"] == "known" && matches(&last["models"], &want)
    });
    let want = expected(&api);
    assert!(
        shown,
        "session ls shows {last:#}\nthe stand-in sent {want:#?}"
    );
    assert_eq!(api.usage_sent().len(), 3, "{:#?}", api.usage_sent());
    let total: f64 = want.values().map(|m| m["cost_usd"].as_f64().unwrap()).sum();
    assert!(
        (last["cost_usd"].as_f64().unwrap() - total).abs() < 1e-9,
        "{last:#}"
    );
    assert_eq!(last["priced"], true);

    harness.ok(&["session", "kill", "app-1"]);
    let archived = harness.sessions_json(&["--archived"]);
    let record = archived
        .iter()
        .find(|s| s["id"] == "app-1")
        .expect("app-1 is archived");
    assert!(
        matches(&record["usage"]["models"], &want),
        "the archived record keeps {:#}",
        record["usage"]
    );
    let report = support::json(&harness.ok(&["usage", "--json"]));
    assert!(
        matches(&report["total"]["models"], &want),
        "ao-host usage --json says {report:#}"
    );
    assert_eq!(report["groups"][0]["key"], "app-1", "{report:#}");
}
