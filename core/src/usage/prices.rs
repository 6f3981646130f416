//! What tokens cost: a table of USD per million tokens per model, built in for the models the
//! supported agent CLIs use (dated and sourced in the README, "Usage and cost"), overridden and
//! extended by `prices:` in `ao-rs.yaml`. Never fetched from the network: a model the table does
//! not know is "price unknown", never a guess.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::figures::Tokens;

/// USD per million tokens of each kind. Reasoning is priced as output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
}

impl Price {
    /// What `tokens` cost at this price, in USD.
    pub fn cost(&self, tokens: &Tokens) -> f64 {
        let per_million = tokens.input as f64 * self.input
            + tokens.cache_read as f64 * self.cache_read
            + tokens.cache_write_5m as f64 * self.cache_write_5m
            + tokens.cache_write_1h as f64 * self.cache_write_1h
            + (tokens.output as f64 + tokens.reasoning as f64) * self.output;
        per_million / 1_000_000.0
    }

    /// An Anthropic price: cache writes at 1.25× (5 minutes) and 2× (1 hour) the input price,
    /// cache reads at `cache_read`, as Anthropic's pricing page lists them.
    const fn anthropic(input: f64, output: f64, cache_read: f64) -> Self {
        Self {
            input,
            output,
            cache_read,
            cache_write_5m: input * 1.25,
            cache_write_1h: input * 2.0,
        }
    }

    /// A price of an API with no cache writes to pay for (OpenAI, Gemini's implicit cache): a
    /// write, should one be reported, costs what input does.
    const fn cached_input(input: f64, output: f64, cache_read: f64) -> Self {
        Self {
            input,
            output,
            cache_read,
            cache_write_5m: input,
            cache_write_1h: input,
        }
    }
}

/// The built-in prices (USD per million tokens), by model name without its date suffix. Dated
/// and sourced in the README; `prices:` in `ao-rs.yaml` replaces any of them.
const BUILT_IN: &[(&str, Price)] = &[
    // Anthropic, platform.claude.com/docs/en/about-claude/pricing (read 2026-12-07).
    ("claude-opus-4-5", Price::anthropic(5.0, 25.0, 0.50)),
    ("claude-opus-4-6", Price::anthropic(5.0, 25.0, 0.50)),
    ("claude-opus-4-7", Price::anthropic(5.0, 25.0, 0.50)),
    ("claude-opus-4-8", Price::anthropic(5.0, 25.0, 0.50)),
    ("claude-opus-5", Price::anthropic(5.0, 25.0, 0.50)),
    ("claude-opus-4-1", Price::anthropic(15.0, 75.0, 1.50)),
    ("claude-opus-4", Price::anthropic(15.0, 75.0, 1.50)),
    ("claude-opus-4-0", Price::anthropic(15.0, 75.0, 1.50)),
    ("claude-sonnet-4", Price::anthropic(3.0, 15.0, 0.30)),
    ("claude-sonnet-4-0", Price::anthropic(3.0, 15.0, 0.30)),
    ("claude-sonnet-4-5", Price::anthropic(3.0, 15.0, 0.30)),
    ("claude-sonnet-4-6", Price::anthropic(3.0, 15.0, 0.30)),
    ("claude-sonnet-5", Price::anthropic(2.0, 10.0, 0.20)),
    ("claude-haiku-4-5", Price::anthropic(1.0, 5.0, 0.10)),
    ("claude-3-5-haiku", Price::anthropic(0.80, 4.0, 0.08)),
    // OpenAI, developers.openai.com/api/docs/models (read 2026-12-07).
    ("gpt-5", Price::cached_input(1.25, 10.0, 0.125)),
    ("gpt-5-codex", Price::cached_input(1.25, 10.0, 0.125)),
    ("gpt-5.1", Price::cached_input(1.25, 10.0, 0.125)),
    ("gpt-5.1-codex", Price::cached_input(1.25, 10.0, 0.125)),
    ("gpt-5-mini", Price::cached_input(0.25, 2.0, 0.025)),
    ("gpt-5.1-codex-mini", Price::cached_input(0.25, 2.0, 0.025)),
    ("gpt-5-nano", Price::cached_input(0.05, 0.40, 0.005)),
    ("gpt-5.2", Price::cached_input(1.75, 14.0, 0.175)),
    ("gpt-5.2-codex", Price::cached_input(1.75, 14.0, 0.175)),
    // Google, ai.google.dev/gemini-api/docs/pricing: prompts up to 200k tokens (an assumption
    // for longer ones, which cost more).
    ("gemini-2.5-pro", Price::cached_input(1.25, 10.0, 0.125)),
    ("gemini-2.5-flash", Price::cached_input(0.30, 2.50, 0.03)),
    (
        "gemini-2.5-flash-lite",
        Price::cached_input(0.10, 0.40, 0.01),
    ),
];

/// The highest price `prices:` takes, in USD per million tokens.
const MAX_PRICE: f64 = 100_000.0;

/// `prices.<model>` as written: every price given, none negative.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSection {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
}

/// The price table in force: the built-in one with `prices:` laid over it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    by_model: BTreeMap<String, Price>,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            by_model: BUILT_IN
                .iter()
                .map(|(model, price)| (model.to_string(), *price))
                .collect(),
        }
    }
}

impl Prices {
    /// The built-in table with `sections` (`prices:` of the config) laid over it; a negative or
    /// not-finite price is refused naming its field.
    pub fn with_overrides(sections: BTreeMap<String, PriceSection>) -> Result<Self, String> {
        let mut prices = Self::default();
        for (model, section) in sections {
            let fields = [
                ("input", section.input),
                ("output", section.output),
                ("cache_read", section.cache_read),
                ("cache_write_5m", section.cache_write_5m),
                ("cache_write_1h", section.cache_write_1h),
            ];
            for (field, value) in fields {
                // A cap far above any model's, so a cost never overflows to infinity.
                if !value.is_finite() || !(0.0..=MAX_PRICE).contains(&value) {
                    return Err(format!(
                        "prices.{model}.{field}: {value} is not a price; give USD per million tokens, from 0 to {MAX_PRICE} (e.g. 3.0)"
                    ));
                }
            }
            if model.trim().is_empty() {
                return Err("prices: a model name is empty; give it as the API names it (e.g. claude-sonnet-4-5)".into());
            }
            prices.by_model.insert(
                base_model(&model).to_string(),
                Price {
                    input: section.input,
                    output: section.output,
                    cache_read: section.cache_read,
                    cache_write_5m: section.cache_write_5m,
                    cache_write_1h: section.cache_write_1h,
                },
            );
        }
        Ok(prices)
    }

    /// The price of `model` as an API names it (`claude-sonnet-4-5-20250929`: its date suffix
    /// is not part of its price's name); `None` when the table does not know it.
    pub fn of(&self, model: &str) -> Option<&Price> {
        self.by_model
            .get(model)
            .or_else(|| self.by_model.get(base_model(model)))
    }
}

/// `model` without a trailing date (`-20250929`, `-2025-09-29`), or a provider prefix
/// (`anthropic/claude-…`, as OpenCode names models).
fn base_model(model: &str) -> &str {
    let model = model.rsplit('/').next().unwrap_or(model);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((rest, date)) = model.rsplit_once('-') {
        if digits(date, 8) {
            return rest;
        }
    }
    // `-YYYY-MM-DD`
    let parts: Vec<&str> = model.rsplitn(4, '-').collect();
    if parts.len() == 4 && digits(parts[0], 2) && digits(parts[1], 2) && digits(parts[2], 4) {
        return parts[3];
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(input: f64) -> PriceSection {
        PriceSection {
            input,
            output: 2.0,
            cache_read: 0.5,
            cache_write_5m: 1.5,
            cache_write_1h: 3.0,
        }
    }

    #[test]
    fn a_dated_or_prefixed_model_has_its_base_models_price() {
        let prices = Prices::default();
        let sonnet = prices.of("claude-sonnet-4-5").copied();
        assert!(sonnet.is_some());
        assert_eq!(prices.of("claude-sonnet-4-5-20250929").copied(), sonnet);
        assert_eq!(prices.of("anthropic/claude-sonnet-4-5").copied(), sonnet);
        assert!(prices.of("gemini-2.5-pro").is_some());
        assert!(prices.of("gpt-4o-2024-08-06").is_none());
        assert_eq!(base_model("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(base_model("gpt-5-codex"), "gpt-5-codex");
        assert!(prices.of("some-model-nobody-knows").is_none());
    }

    #[test]
    fn cost_is_the_price_tables_arithmetic() {
        let price = Price {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write_5m: 3.75,
            cache_write_1h: 6.0,
        };
        let tokens = Tokens {
            input: 1_000_000,
            cache_read: 2_000_000,
            cache_write_5m: 100_000,
            cache_write_1h: 10_000,
            output: 50_000,
            reasoning: 50_000,
        };
        let expected = 3.0 + 0.6 + 0.375 + 0.06 + 1.5;
        assert!((price.cost(&tokens) - expected).abs() < 1e-9);
    }

    #[test]
    fn the_config_overrides_and_extends_the_table() {
        let prices = Prices::with_overrides(BTreeMap::from([
            ("claude-sonnet-4-5".to_string(), section(9.0)),
            ("my-local-model".to_string(), section(0.0)),
        ]))
        .unwrap();
        assert_eq!(prices.of("claude-sonnet-4-5-20250929").unwrap().input, 9.0);
        assert_eq!(prices.of("my-local-model").unwrap().input, 0.0);
    }

    #[test]
    fn a_negative_or_absurd_price_is_refused_naming_the_field() {
        for bad in [-1.0, 1e308, f64::NAN] {
            let error = Prices::with_overrides(BTreeMap::from([("m".to_string(), section(bad))]))
                .unwrap_err();
            assert!(error.contains("prices.m.input"), "{error}");
            assert!(error.contains("from 0 to 100000"), "{error}");
        }
    }
}
