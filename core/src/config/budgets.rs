//! `budgets:`: how much (in USD, priced from the agents' own usage records) a session, a
//! project and a UTC day may spend, each with a `warn` (one `notify:` event per threshold) and
//! a `stop` (the session is interrupted and marked `over_budget`).
//!
//! The top-level section sets all three levels; `projects.<id>.budgets` replaces the `session`
//! and `project` levels it names for that project (a day is every project's, so it has no
//! per-project override). Amounts are checked strictly: positive, finite, and `stop` at least
//! `warn` when both are set.

use serde::Deserialize;

/// `budgets:` as written (top level).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BudgetsSection {
    pub session: Option<LimitSection>,
    pub project: Option<LimitSection>,
    pub day: Option<LimitSection>,
}

/// `projects.<id>.budgets` as written: no `day`, which is every project's.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProjectBudgetsSection {
    pub session: Option<LimitSection>,
    pub project: Option<LimitSection>,
}

/// One level as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitSection {
    pub warn: Option<f64>,
    pub stop: Option<f64>,
}

/// One level's amounts in USD; either may be absent.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Limit {
    pub warn: Option<f64>,
    pub stop: Option<f64>,
}

impl Limit {
    fn from_section(field: &str, section: LimitSection) -> Result<Self, String> {
        for (name, value) in [("warn", section.warn), ("stop", section.stop)] {
            if let Some(amount) = value {
                if !amount.is_finite() || amount <= 0.0 {
                    return Err(format!(
                        "{field}.{name}: {amount} is not an amount; give a positive number of US dollars (e.g. 5 or 2.50), or leave the key out"
                    ));
                }
            }
        }
        if let (Some(warn), Some(stop)) = (section.warn, section.stop) {
            if stop < warn {
                return Err(format!(
                    "{field}: stop ({stop}) is below warn ({warn}), so the warning could never come first; raise stop or lower warn"
                ));
            }
        }
        Ok(Self {
            warn: section.warn,
            stop: section.stop,
        })
    }

    fn from_option(field: &str, section: Option<LimitSection>) -> Result<Option<Self>, String> {
        section.map(|s| Self::from_section(field, s)).transpose()
    }
}

/// The budgets that apply to one project's sessions (or, at the top level, to any project
/// without its own).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Budgets {
    pub session: Option<Limit>,
    pub project: Option<Limit>,
    pub day: Option<Limit>,
}

impl Budgets {
    pub(super) fn from_section(section: BudgetsSection) -> Result<Self, String> {
        Ok(Self {
            session: Limit::from_option("budgets.session", section.session)?,
            project: Limit::from_option("budgets.project", section.project)?,
            day: Limit::from_option("budgets.day", section.day)?,
        })
    }

    /// The top-level budgets with the levels `projects.<id>.budgets` names replaced.
    pub(super) fn for_project(
        self,
        id: &str,
        section: Option<ProjectBudgetsSection>,
    ) -> Result<Self, String> {
        let Some(section) = section else {
            return Ok(self);
        };
        Ok(Self {
            session: Limit::from_option(
                &format!("projects.{id}.budgets.session"),
                section.session,
            )?
            .or(self.session),
            project: Limit::from_option(
                &format!("projects.{id}.budgets.project"),
                section.project,
            )?
            .or(self.project),
            day: self.day,
        })
    }

    /// Whether any level is set.
    pub fn any(&self) -> bool {
        self.session.is_some() || self.project.is_some() || self.day.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/ao/ao-rs.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn top_level_budgets_apply_to_every_project_and_a_project_replaces_its_own_levels() {
        let config = parse(
            "budgets:\n  session: { warn: 1, stop: 2.5 }\n  project: { stop: 20 }\n  day: { warn: 30 }\nprojects:\n  app: { repo: /a, budgets: { session: { stop: 5 } } }\n  web: { repo: /w }\n",
        )
        .unwrap();
        let top = Budgets {
            session: Some(Limit {
                warn: Some(1.0),
                stop: Some(2.5),
            }),
            project: Some(Limit {
                warn: None,
                stop: Some(20.0),
            }),
            day: Some(Limit {
                warn: Some(30.0),
                stop: None,
            }),
        };
        assert_eq!(config.budgets, top);
        assert_eq!(config.budgets_of("web"), top);
        assert_eq!(config.budgets_of("detected-elsewhere"), top);
        let app = config.budgets_of("app");
        assert_eq!(
            app.session,
            Some(Limit {
                warn: None,
                stop: Some(5.0)
            })
        );
        assert_eq!((app.project, app.day), (top.project, top.day));
        assert!(!parse("").unwrap().budgets.any());
    }

    #[test]
    fn a_budget_that_cannot_be_meant_names_the_file_the_field_and_the_fix() {
        for (text, want) in [
            (
                "budgets: { session: { warn: 0 } }\n",
                "budgets.session.warn",
            ),
            ("budgets: { day: { stop: -1 } }\n", "budgets.day.stop"),
            ("budgets: { day: { stop: .nan } }\n", "budgets.day.stop"),
            (
                "budgets: { project: { warn: 5, stop: 2 } }\n",
                "budgets.project: stop (2) is below warn (5)",
            ),
            (
                "budgets: { session: { wran: 1 } }\n",
                "unknown field `wran`",
            ),
            ("budgets: { week: { stop: 1 } }\n", "unknown field `week`"),
            ("budgets: { session: { stop: lots } }\n", "stop"),
            (
                "projects:\n  app: { repo: /a, budgets: { session: { stop: 0 } } }\n",
                "projects.app.budgets.session.stop",
            ),
            (
                "projects:\n  app: { repo: /a, budgets: { day: { stop: 1 } } }\n",
                "unknown field `day`",
            ),
        ] {
            let error = parse(text).unwrap_err();
            assert!(
                error.contains(want) && error.contains("/etc/ao/ao-rs.yaml"),
                "{text}: {error}"
            );
        }
    }
}
