//! `ao-host usage`: what sessions cost, live and ended, summed by session, project, UTC day or
//! model; and the cost cell `session ls` shows per session. Printing only: the sums are the
//! lifecycle's.

use std::process::ExitCode;

use anyhow::Result;
use ao_core::{
    lifecycle::{Lifecycle, LISTING_READ_BYTES},
    session::now_ms,
    usage::{
        summary::{parse_since, GroupBy, UsageGroup},
        SessionUsage, UsageState,
    },
};
use clap::{Args as ClapArgs, ValueEnum};

use super::{
    output::{print_json, terminal_safe},
    session,
};
use crate::{errln, outln};

#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Figures are kept per UTC hour: --since counts from the start of the \
hour it names (a date: from its UTC midnight), and --by day groups by UTC day. Killed sessions \
count with the figures their archived records keep. Costs are USD from the built-in price table \
and `prices:` in ao-rs.yaml; a model with no price shows its tokens and \"price unknown\", and a \
total that leaves one out says so."
)]
pub struct UsageArgs {
    /// Only this project's sessions.
    pub project: Option<String>,
    /// Count only replies from then on: a duration back from now (30m, 2h, 3d, 1w) or a UTC
    /// date (2026-12-01).
    #[arg(long, value_name = "DURATION|DATE")]
    pub since: Option<String>,
    /// What to sum by.
    #[arg(long, value_enum, default_value_t = By::Session)]
    pub by: By,
    /// Print one JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum By {
    Session,
    Project,
    /// The UTC day.
    Day,
    Model,
}

impl From<By> for GroupBy {
    fn from(by: By) -> Self {
        match by {
            By::Session => Self::Session,
            By::Project => Self::Project,
            By::Day => Self::Day,
            By::Model => Self::Model,
        }
    }
}

pub async fn run(lifecycle: &Lifecycle, args: UsageArgs) -> Result<ExitCode> {
    let since = args
        .since
        .as_deref()
        .map(|text| parse_since(text, now_ms() / 1000))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    let (summary, problems) = lifecycle
        .usage_summary(
            args.project.as_deref(),
            args.by.into(),
            since,
            LISTING_READ_BYTES,
        )
        .await?;
    session::refuse_unknown_project(lifecycle, args.project.as_deref(), &problems)?;
    for problem in &problems {
        errln!("ao-host: {}", terminal_safe(problem));
    }
    if args.json {
        print_json(&summary)?;
    } else {
        let heading = match args.by {
            By::Session => "SESSION",
            By::Project => "PROJECT",
            By::Day => "DAY (UTC)",
            By::Model => "MODEL",
        };
        outln!(
            "{:<28} {:>12} {:>12} {:>8}  MODELS",
            heading,
            "COST",
            "TOKENS",
            "REPLIES"
        );
        for group in summary.groups.iter().chain([&summary.total]) {
            print_group(group)?;
        }
    }
    if problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "ao-host: {} record(s) or folder(s) could not be read, so these sums may be incomplete; fix or move them aside",
            problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn print_group(group: &UsageGroup) -> Result<()> {
    // Saturating: figures come from files an agent can write, and must never crash a listing.
    let tokens = (group.models.values()).fold(0u64, |sum, m| sum.saturating_add(m.total_tokens()));
    let replies = (group.models.values()).fold(0u64, |sum, m| sum.saturating_add(m.replies));
    let models: Vec<String> = group
        .models
        .iter()
        .map(|(model, totals)| match totals.cost_usd {
            Some(_) => terminal_safe(model).into_owned(),
            None => format!("{} (price unknown)", terminal_safe(model)),
        })
        .collect();
    outln!(
        "{:<28} {:>12} {:>12} {:>8}  {}",
        terminal_safe(&group.key),
        cost_text(group.cost_usd, group.priced, tokens),
        short_count(tokens),
        replies,
        models.join(", ")
    );
    for note in &group.notes {
        outln!("    {}", terminal_safe(note));
    }
    Ok(())
}

/// A cost as listings print it: `$0.42`; `$0.42+?` when a model in it has no price; its tokens
/// when none has.
fn cost_text(cost_usd: Option<f64>, priced: bool, tokens: u64) -> String {
    match (cost_usd, priced) {
        (Some(cost), true) => format!("${cost:.2}"),
        (Some(cost), false) => format!("${cost:.2}+?"),
        (None, _) => format!("{} tok", short_count(tokens)),
    }
}

/// The COST cell of `session ls`: the cost, `counting…` while records wait to be read, `?` when
/// unknown, `-` before the first reply.
pub fn cost_cell(usage: Option<&SessionUsage>) -> String {
    let Some(usage) = usage else {
        return "-".into();
    };
    match usage.state {
        UsageState::Counting => "counting…".into(),
        UsageState::None => "-".into(),
        UsageState::Unknown if usage.hours.is_empty() => "?".into(),
        UsageState::Known | UsageState::Unknown => {
            cost_text(usage.cost_usd, usage.priced, usage.total_tokens())
        }
    }
}

/// `1234` as `1.2k`, `1234567` as `1.2M`.
fn short_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_read_the_way_the_readme_says() {
        assert_eq!(cost_text(Some(0.4249), true, 10), "$0.42");
        assert_eq!(cost_text(Some(0.4249), false, 10), "$0.42+?");
        assert_eq!(cost_text(None, false, 12_345), "12.3k tok");
        assert_eq!(short_count(999), "999");
        assert_eq!(short_count(2_500_000), "2.5M");
        assert_eq!(cost_cell(None), "-");
    }
}
