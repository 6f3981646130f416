//! A session's usage as ao-host keeps and shows it: the figures per model and UTC hour that its
//! agent plugin reported, what is known about them (`known`, still `counting`, `unknown`, `none`
//! yet), and their cost at the price table in force.
//!
//! The same value is kept in the usage store while a session lives, in its archived record when
//! it ends, and printed by `session ls --json`, the dashboard and `ao-host usage`: costs are
//! worked out again from the figures whenever they are shown ([`SessionUsage::price`]), so a
//! price changed in the config applies to every session, archived ones too.

use std::collections::BTreeMap;

use ao_plugin_api::usage::ModelUsage;
pub use ao_plugin_kit::usage::Tokens;
use serde::{Deserialize, Serialize};

use super::prices::Prices;

/// What is known of a session's usage.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UsageState {
    /// Every record there is was counted.
    Known,
    /// Counted so far; more records wait to be read (a listing reads a bounded amount).
    Counting,
    /// Its agent plugin cannot count it (too old, or its records cannot be read): `notes` says
    /// why. Figures shown with it are the last ones read.
    Unknown,
    /// No model reply yet.
    None,
}

/// The tokens one model used in one UTC hour of a session (a plugin's [`ModelUsage`]).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct HourUsage {
    pub model: String,
    /// The start of the UTC hour, in seconds since the Unix epoch.
    pub hour: u64,
    pub replies: u64,
    #[serde(flatten)]
    pub tokens: Tokens,
}

impl HourUsage {
    /// Raises each figure to `earlier`'s where it is lower; whether any was.
    fn raise_to(&mut self, earlier: &HourUsage) -> bool {
        let before = self.clone();
        let (now, then) = (&mut self.tokens, &earlier.tokens);
        self.replies = self.replies.max(earlier.replies);
        now.input = now.input.max(then.input);
        now.cache_read = now.cache_read.max(then.cache_read);
        now.cache_write_5m = now.cache_write_5m.max(then.cache_write_5m);
        now.cache_write_1h = now.cache_write_1h.max(then.cache_write_1h);
        now.output = now.output.max(then.output);
        now.reasoning = now.reasoning.max(then.reasoning);
        *self != before
    }
}

impl From<&ModelUsage> for HourUsage {
    fn from(usage: &ModelUsage) -> Self {
        Self {
            model: usage.model.to_string(),
            hour: usage.hour,
            replies: usage.replies,
            tokens: Tokens {
                input: usage.input,
                cache_read: usage.cache_read,
                cache_write_5m: usage.cache_write_5m,
                cache_write_1h: usage.cache_write_1h,
                output: usage.output,
                reasoning: usage.reasoning,
            },
        }
    }
}

/// One model's tokens summed, with their cost.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct ModelTotals {
    pub replies: u64,
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    /// `cache_write_5m + cache_write_1h`.
    pub cache_write: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub reasoning: u64,
    /// `None`: the price table does not know the model.
    pub cost_usd: Option<f64>,
}

impl ModelTotals {
    /// Adds one hour's figures.
    pub fn add(&mut self, replies: u64, tokens: &Tokens) {
        self.replies = self.replies.saturating_add(replies);
        self.input = self.input.saturating_add(tokens.input);
        self.output = self.output.saturating_add(tokens.output);
        self.cache_read = self.cache_read.saturating_add(tokens.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(tokens.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(tokens.cache_write_1h);
        self.cache_write = self.cache_write_5m.saturating_add(self.cache_write_1h);
        self.reasoning = self.reasoning.saturating_add(tokens.reasoning);
    }

    /// The tokens, as priced.
    pub fn tokens(&self) -> Tokens {
        Tokens {
            input: self.input,
            cache_read: self.cache_read,
            cache_write_5m: self.cache_write_5m,
            cache_write_1h: self.cache_write_1h,
            output: self.output,
            reasoning: self.reasoning,
        }
    }

    /// Every token of every kind.
    pub fn total_tokens(&self) -> u64 {
        let t = self.tokens();
        [
            t.input,
            t.cache_read,
            t.cache_write_5m,
            t.cache_write_1h,
            t.output,
            t.reasoning,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n))
    }
}

/// What a set of figures cost: the priced part, and whether every model in it had a price.
#[derive(Serialize, Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    /// USD of the models with a price; `None` when there are tokens and no model has one.
    pub cost_usd: Option<f64>,
    /// Every model with tokens has a price (the total is whole).
    pub priced: bool,
}

/// Per-model totals of `hours` priced at `prices`, and what they cost together.
pub fn totals<'a>(
    hours: impl IntoIterator<Item = &'a HourUsage>,
    prices: &Prices,
) -> (BTreeMap<String, ModelTotals>, Cost) {
    let mut models: BTreeMap<String, ModelTotals> = BTreeMap::new();
    for hour in hours {
        models
            .entry(hour.model.clone())
            .or_default()
            .add(hour.replies, &hour.tokens);
    }
    let (mut sum, mut any_priced, mut priced) = (0.0, false, true);
    for (model, totals) in models.iter_mut() {
        totals.cost_usd = prices.of(model).map(|price| price.cost(&totals.tokens()));
        match totals.cost_usd {
            Some(cost) => {
                sum += cost;
                any_priced = true;
            }
            None => priced = false,
        }
    }
    let cost_usd = (any_priced || models.is_empty()).then_some(sum);
    (models, Cost { cost_usd, priced })
}

/// A session's usage, as kept and as shown.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SessionUsage {
    pub state: UsageState,
    /// Per model, summed over the session, with its cost ([`SessionUsage::price`]).
    pub models: BTreeMap<String, ModelTotals>,
    /// USD of the priced models; `None` when nothing is priced (or nothing is known).
    pub cost_usd: Option<f64>,
    /// Every model has a price: `cost_usd` is the whole cost.
    pub priced: bool,
    /// What could not be counted, and why, said plainly.
    pub notes: Vec<String>,
    /// When the figures were read (ms since the Unix epoch).
    pub read_at: u64,
    /// Bytes of records not read yet, while `counting`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pending_bytes: u64,
    /// The figures are the last ones read: the session's host or plugin did not answer now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// The figures per model and UTC hour, as the plugin reported them (what `ao-host usage`
    /// groups by day and filters by `--since`).
    #[serde(default)]
    pub hours: Vec<HourUsage>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SessionUsage {
    /// Figures read at `read_at`, priced at `prices`.
    pub fn new(
        state: UsageState,
        hours: Vec<HourUsage>,
        notes: Vec<String>,
        read_at: u64,
        prices: &Prices,
    ) -> Self {
        let mut usage = Self {
            state,
            models: BTreeMap::new(),
            cost_usd: None,
            priced: true,
            notes,
            read_at,
            pending_bytes: 0,
            stale: false,
            hours,
        };
        usage.price(prices);
        usage
    }

    /// Nothing known, and why.
    pub fn unknown(why: String, read_at: u64) -> Self {
        Self {
            state: UsageState::Unknown,
            models: BTreeMap::new(),
            cost_usd: None,
            priced: false,
            notes: vec![why],
            read_at,
            pending_bytes: 0,
            stale: false,
            hours: Vec::new(),
        }
    }

    /// Works out the per-model totals and the cost again at `prices`.
    pub fn price(&mut self, prices: &Prices) {
        let (models, cost) = totals(&self.hours, prices);
        self.models = models;
        if self.state == UsageState::Unknown && self.hours.is_empty() {
            self.cost_usd = None;
            self.priced = false;
        } else {
            self.cost_usd = cost.cost_usd;
            self.priced = cost.priced;
        }
    }

    /// Keeps every figure `earlier` counted: a session's usage never goes down, whatever its
    /// records say now (a transcript cut short or replaced, by accident or by an agent that
    /// would slip out of its budget so). Says so in a note when it had to, once counting is
    /// done.
    pub fn keep_counted(&mut self, earlier: &SessionUsage, prices: &Prices) {
        let mut kept = false;
        for then in &earlier.hours {
            match (self.hours.iter_mut()).find(|h| h.model == then.model && h.hour == then.hour) {
                Some(now) => kept |= now.raise_to(then),
                None => {
                    self.hours.push(then.clone());
                    kept = true;
                }
            }
        }
        if kept {
            if self.pending_bytes == 0 {
                self.notes.push(
                    "its records now say less than was counted before (cut short or replaced): \
                     the figures counted before are kept"
                        .into(),
                );
            }
            self.price(prices);
        }
    }

    /// What the session cost so far, from the figures as they are (budgets check this).
    pub fn cost(&self) -> Cost {
        Cost {
            cost_usd: self.cost_usd,
            priced: self.priced,
        }
    }

    /// Every token of every model.
    pub fn total_tokens(&self) -> u64 {
        self.models
            .values()
            .fold(0u64, |sum, m| sum.saturating_add(m.total_tokens()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(model: &str, hour: u64, input: u64, output: u64) -> HourUsage {
        HourUsage {
            model: model.into(),
            hour,
            replies: 1,
            tokens: Tokens {
                input,
                output,
                ..Tokens::default()
            },
        }
    }

    #[test]
    fn totals_sum_hours_per_model_and_price_them() {
        let usage = SessionUsage::new(
            UsageState::Known,
            vec![
                hour("claude-sonnet-4-5-20250929", 0, 1_000_000, 0),
                hour("claude-sonnet-4-5-20250929", 3600, 0, 1_000_000),
                hour("gpt-5", 3600, 1_000_000, 0),
            ],
            Vec::new(),
            0,
            &Prices::default(),
        );
        let sonnet = &usage.models["claude-sonnet-4-5-20250929"];
        assert_eq!(
            (sonnet.replies, sonnet.input, sonnet.output),
            (2, 1_000_000, 1_000_000)
        );
        assert!((sonnet.cost_usd.unwrap() - 18.0).abs() < 1e-9);
        assert!((usage.cost_usd.unwrap() - 19.25).abs() < 1e-9);
        assert!(usage.priced);
    }

    #[test]
    fn usage_never_goes_down_when_records_say_less_than_was_counted() {
        let prices = Prices::default();
        let earlier = SessionUsage::new(
            UsageState::Known,
            vec![
                hour("gpt-5", 0, 1_000_000, 500),
                hour("gpt-5", 3600, 10, 10),
            ],
            Vec::new(),
            0,
            &prices,
        );
        // The transcript was emptied and one smaller reply written: nothing counted is lost.
        let mut now = SessionUsage::new(
            UsageState::Known,
            vec![hour("gpt-5", 0, 5, 900)],
            Vec::new(),
            1,
            &prices,
        );
        now.keep_counted(&earlier, &prices);
        let gpt = &now.models["gpt-5"];
        assert_eq!((gpt.input, gpt.output), (1_000_010, 910));
        assert!(now.cost_usd.unwrap() >= earlier.cost_usd.unwrap());
        assert_eq!(now.notes.len(), 1, "{:?}", now.notes);

        // Records that grew are taken as they are, without a note.
        let mut grown = SessionUsage::new(
            UsageState::Known,
            vec![
                hour("gpt-5", 0, 2_000_000, 600),
                hour("gpt-5", 3600, 10, 10),
            ],
            Vec::new(),
            2,
            &prices,
        );
        grown.keep_counted(&earlier, &prices);
        assert_eq!(grown.models["gpt-5"].input, 2_000_010);
        assert!(grown.notes.is_empty(), "{:?}", grown.notes);
    }

    #[test]
    fn an_unpriced_model_leaves_its_cost_unknown_and_the_total_partial() {
        let usage = SessionUsage::new(
            UsageState::Known,
            vec![hour("gpt-5", 0, 1_000_000, 0), hour("mystery-1", 0, 5, 5)],
            Vec::new(),
            0,
            &Prices::default(),
        );
        assert_eq!(usage.models["mystery-1"].cost_usd, None);
        assert!(!usage.priced);
        assert!((usage.cost_usd.unwrap() - 1.25).abs() < 1e-9);
        let only_unpriced = SessionUsage::new(
            UsageState::Known,
            vec![hour("mystery-1", 0, 5, 5)],
            Vec::new(),
            0,
            &Prices::default(),
        );
        assert_eq!(
            only_unpriced.cost(),
            Cost {
                cost_usd: None,
                priced: false
            }
        );
        assert_eq!(only_unpriced.total_tokens(), 10);
    }

    #[test]
    fn no_reply_yet_costs_nothing_and_unknown_costs_unknown() {
        let none = SessionUsage::new(
            UsageState::None,
            Vec::new(),
            Vec::new(),
            0,
            &Prices::default(),
        );
        assert_eq!(
            none.cost(),
            Cost {
                cost_usd: Some(0.0),
                priced: true
            }
        );
        let unknown = SessionUsage::unknown("no".into(), 0);
        assert_eq!(
            unknown.cost(),
            Cost {
                cost_usd: None,
                priced: false
            }
        );
    }

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let usage = SessionUsage::new(
            UsageState::Known,
            vec![hour("gpt-5", 0, 10, 20)],
            Vec::new(),
            7,
            &Prices::default(),
        );
        let json = serde_json::to_value(&usage).unwrap();
        assert_eq!(json["state"], "known");
        for key in [
            "replies",
            "input",
            "output",
            "cache_read",
            "cache_write",
            "cache_write_5m",
            "cache_write_1h",
            "reasoning",
            "cost_usd",
        ] {
            assert!(json["models"]["gpt-5"].get(key).is_some(), "{key}");
        }
        assert_eq!(json["read_at"], 7);
        assert!(json["priced"].as_bool().unwrap());
        let back: SessionUsage = serde_json::from_value(json).unwrap();
        assert_eq!(back, usage);
    }
}
