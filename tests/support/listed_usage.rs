//! What the usage tests of the real agent CLIs share: the sums a test expects (worked out by
//! hand from the figures it had a stand-in report), and waiting for `session ls --json` and
//! `ao-host usage --json` to show them.

use std::time::Duration;

use serde_json::Value;

use crate::{json, wait_until, Harness};

/// One model's usage as ao-host lists it, normalised (cached input apart from input, reasoning
/// apart from output).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExpectedUsage {
    pub replies: u64,
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
    pub reasoning: u64,
}

/// Prices in USD per million tokens, as the test config's `prices:` sets them.
#[derive(Clone, Copy, Debug)]
pub struct Prices {
    pub input: f64,
    pub cache_read: f64,
    pub output: f64,
}

impl Prices {
    /// The config's `prices:` section giving `model` these prices (cache writes at the input
    /// price: the tests make none).
    pub fn config(&self, model: &str) -> String {
        format!(
            "prices:\n  {model}: {{ input: {}, cache_read: {}, cache_write_5m: {}, \
             cache_write_1h: {}, output: {} }}\n",
            self.input, self.cache_read, self.input, self.input, self.output
        )
    }
}

impl ExpectedUsage {
    /// The cost the price table's arithmetic gives (no cache writes in these tests): reasoning
    /// is priced as output.
    pub fn cost(&self, prices: Prices) -> f64 {
        (self.input as f64 * prices.input
            + self.cache_read as f64 * prices.cache_read
            + (self.output + self.reasoning) as f64 * prices.output)
            / 1e6
    }

    /// Whether a listed per-model object holds exactly these figures.
    pub fn matches(&self, listed: &Value) -> bool {
        let field = |name: &str| listed[name].as_u64();
        field("replies") == Some(self.replies)
            && field("input") == Some(self.input)
            && field("cache_read") == Some(self.cache_read)
            && field("cache_write") == Some(self.cache_write)
            && field("output") == Some(self.output)
            && field("reasoning") == Some(self.reasoning)
    }
}

/// Asserts that `cost` (a listed `cost_usd`) is what `expected` costs at `prices`.
pub fn assert_cost(cost: &Value, expected: &ExpectedUsage, prices: Prices) {
    let want = expected.cost(prices);
    let got = cost.as_f64().unwrap_or(f64::NAN);
    assert!(
        (got - want).abs() < 1e-9,
        "cost_usd {cost}, the price table says {want}"
    );
}

/// Waits for `session ls --json` to list session `id`'s usage as known with exactly `expected`
/// for `model` (and no other model); returns the session's `usage` object.
pub fn wait_for_listed_usage(
    harness: &Harness,
    id: &str,
    model: &str,
    expected: &ExpectedUsage,
    within: Duration,
) -> Value {
    let mut usage = Value::Null;
    let shown = wait_until(within, || {
        usage = harness
            .sessions_json(&[])
            .into_iter()
            .find(|s| s["id"] == id)
            .map(|s| s["usage"].clone())
            .unwrap_or_default();
        usage["state"] == "known"
            && usage["models"].as_object().map(|m| m.len()) == Some(1)
            && expected.matches(&usage["models"][model])
    });
    assert!(
        shown,
        "{id}'s usage never was {expected:?} of {model}: {usage:#}"
    );
    usage
}

/// `ao-host usage --json --by session`'s group of session `id`.
pub fn reported_usage(harness: &Harness, id: &str) -> Value {
    let report = json(&harness.ok(&["usage", "--by", "session", "--json"]));
    report["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|group| group["key"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("`ao-host usage` has no row of {id}: {report:#}"))
}
