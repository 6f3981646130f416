//! Budgets: what a session, a project and a day have spent against `budgets:` (see
//! [`crate::config::Budgets`]), decided on plain numbers so every place that enforces them
//! (the hook, listings, the watcher, spawn, send) decides alike.
//!
//! Who enforces which level, and when:
//! - **session**: `ao-host hook`, on turn boundaries (the agent went idle, or reports work
//!   between model requests), but only for a session with a budget snapshot
//!   ([`ledger::Snapshot`], written at spawn and refreshed by every command that loads the
//!   config): without one the hook does nothing new. Listings and the watcher check it too, so
//!   a raised budget is seen without an agent event.
//! - **project** and **day**: where usage is summed: listings, the watcher, and spawn (which
//!   refuses a session whose project or day has reached `stop`).
//!
//! `warn` runs `notify:` once per threshold ([`ledger::Ledger::claim_warning`]); `stop` marks
//! the session over budget ([`ledger::OverBudget`]), which listings show as `over_budget`,
//! `send` refuses unless forced and the watcher leaves alone, and interrupts its agent through
//! its runtime (the `Escape` key, which every supported agent CLI takes as "stop this turn").

pub mod ledger;

use crate::config::Limit;

/// A level a budget is set at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Session,
    Project,
    Day,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Project => "project",
            Self::Day => "day",
        }
    }
}

/// What `spent` means against one level's `limit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// The `warn` threshold reached, if any (warned once per threshold).
    pub warn: Option<f64>,
    /// The `stop` threshold reached, if any.
    pub stop: Option<f64>,
}

/// Judges `spent` (USD) against `limit`: a threshold is reached when spent is at or above it.
pub fn judge(limit: &Limit, spent: f64) -> Judgement {
    let reached = |threshold: Option<f64>| threshold.filter(|t| spent >= *t);
    Judgement {
        warn: reached(limit.warn),
        stop: reached(limit.stop),
    }
}

/// A budget that has run out: which, whose, how much was spent and what the limit is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exhausted {
    pub level: Level,
    /// The session id, project id or UTC day (`YYYY-MM-DD`) the budget is of.
    pub scope: String,
    pub spent: f64,
    pub limit: f64,
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.level {
            Level::Session => format!("session {}", self.scope),
            Level::Project => format!("project {}", self.scope),
            Level::Day => format!("the day {} (UTC, all projects)", self.scope),
        };
        write!(
            f,
            "{whose} has spent {} of its {} {} budget ({} over)",
            usd(self.spent),
            usd(self.limit),
            self.level.as_str(),
            usd((self.spent - self.limit).max(0.0)),
        )
    }
}

/// An amount as listings and messages show it: dollars and cents, finer below a cent.
pub fn usd(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 {
        format!("${amount:.4}")
    } else {
        format!("${amount:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_is_reached_at_its_amount_and_each_is_judged_alone() {
        let limit = Limit {
            warn: Some(1.0),
            stop: Some(2.0),
        };
        assert_eq!(
            judge(&limit, 0.99),
            Judgement {
                warn: None,
                stop: None
            }
        );
        assert_eq!(
            judge(&limit, 1.0),
            Judgement {
                warn: Some(1.0),
                stop: None
            }
        );
        assert_eq!(
            judge(&limit, 2.5),
            Judgement {
                warn: Some(1.0),
                stop: Some(2.0)
            }
        );
        let stop_only = Limit {
            warn: None,
            stop: Some(2.0),
        };
        assert_eq!(judge(&stop_only, 3.0).warn, None);
        assert_eq!(judge(&Limit::default(), 1e9).stop, None);
    }

    #[test]
    fn an_exhausted_budget_says_whose_what_and_by_how_much() {
        let over = Exhausted {
            level: Level::Project,
            scope: "app".into(),
            spent: 12.345,
            limit: 10.0,
        };
        assert_eq!(
            over.to_string(),
            "project app has spent $12.35 of its $10.00 project budget ($2.35 over)"
        );
        assert_eq!(usd(0.0012), "$0.0012");
    }
}
