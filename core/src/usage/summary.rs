//! Usage summed over many sessions (`ao-host usage`, and the project and day totals budgets
//! check): grouped by session, project, UTC day or model, from a point in time on. Works on the
//! hour buckets the agent plugins report, so `--since` and days are exact to the hour, in UTC.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    figures::{totals, HourUsage, ModelTotals, SessionUsage, UsageState},
    prices::Prices,
};

/// What sums are grouped by.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Session,
    Project,
    /// The UTC day (`2026-12-07`) the replies were made on.
    Day,
    Model,
}

/// One session's figures, as a summary takes them.
#[derive(Debug, Clone, Copy)]
pub struct SessionFigures<'a> {
    pub id: &'a str,
    pub project_id: &'a str,
    pub usage: &'a SessionUsage,
}

/// The sums of one group.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UsageGroup {
    /// The session id, project id, day (`YYYY-MM-DD`, UTC) or model; `total` for the total.
    pub key: String,
    /// How many sessions have figures in it.
    pub sessions: usize,
    pub models: BTreeMap<String, ModelTotals>,
    /// USD of the priced models; `None` when no model in it has a price.
    pub cost_usd: Option<f64>,
    /// Every model in it has a price.
    pub priced: bool,
    /// Sessions whose figures are not whole (still counting, unknown), said plainly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Sums grouped one way, with their total.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct UsageSummary {
    pub by: GroupBy,
    /// Only replies from this UTC hour on were counted (seconds since the Unix epoch).
    pub since: Option<u64>,
    pub groups: Vec<UsageGroup>,
    pub total: UsageGroup,
}

/// What one group gathers before it is summed.
#[derive(Default)]
struct Gathered<'a> {
    hours: Vec<&'a HourUsage>,
    /// The sessions with figures in it.
    sessions: Vec<&'a str>,
    notes: Vec<String>,
}

/// `sessions` summed by `by`, counting only hours from `since` on, priced at `prices`.
pub fn summarize(
    sessions: &[SessionFigures<'_>],
    by: GroupBy,
    since: Option<u64>,
    prices: &Prices,
) -> UsageSummary {
    let counted = |hour: &HourUsage| since.is_none_or(|since| hour.hour >= since);
    let mut groups: BTreeMap<String, Gathered<'_>> = BTreeMap::new();
    let mut all_notes = Vec::new();
    for session in sessions {
        let note = match session.usage.state {
            UsageState::Counting => Some(format!(
                "{}: still counting ({} bytes of records not read yet); its figures will grow",
                session.id, session.usage.pending_bytes
            )),
            UsageState::Unknown => Some(format!(
                "{}: usage unknown{}",
                session.id,
                session
                    .usage
                    .notes
                    .first()
                    .map(|why| format!(" ({why})"))
                    .unwrap_or_default()
            )),
            UsageState::Known | UsageState::None => None,
        };
        all_notes.extend(note.clone());
        let hours: Vec<&HourUsage> = session.usage.hours.iter().filter(|h| counted(h)).collect();
        if by == GroupBy::Session || by == GroupBy::Project {
            let key = if by == GroupBy::Session {
                session.id
            } else {
                session.project_id
            };
            let group = groups.entry(key.to_string()).or_default();
            group.hours.extend(hours);
            group.sessions.push(session.id);
            group.notes.extend(note);
            continue;
        }
        for hour in hours {
            let key = match by {
                GroupBy::Day => day_of(hour.hour),
                _ => hour.model.clone(),
            };
            let group = groups.entry(key).or_default();
            group.hours.push(hour);
            if group.sessions.last() != Some(&session.id) {
                group.sessions.push(session.id);
            }
        }
    }
    let group = |key: String, hours: Vec<&HourUsage>, sessions: usize, notes: Vec<String>| {
        let (models, cost) = totals(hours, prices);
        UsageGroup {
            key,
            sessions,
            models,
            cost_usd: cost.cost_usd,
            priced: cost.priced,
            notes,
        }
    };
    let all_hours: Vec<&HourUsage> = sessions
        .iter()
        .flat_map(|s| s.usage.hours.iter().filter(|h| counted(h)))
        .collect();
    let total = group("total".into(), all_hours, sessions.len(), all_notes);
    UsageSummary {
        by,
        since,
        groups: groups
            .into_iter()
            .map(|(key, gathered)| {
                group(key, gathered.hours, gathered.sessions.len(), gathered.notes)
            })
            .collect(),
        total,
    }
}

/// `secs` since the Unix epoch as its UTC day, `YYYY-MM-DD`.
pub fn day_of(secs: u64) -> String {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Where a `--since` starts counting (seconds since the Unix epoch): `2h`, `30m`, `3d`, `1w`
/// before `now_secs`, from the start of that UTC hour (figures are kept per hour), or a date
/// `YYYY-MM-DD`, from its UTC midnight. The message says what is accepted.
pub fn parse_since(text: &str, now_secs: u64) -> Result<u64, String> {
    let text = text.trim();
    let refused = || {
        format!(
            "--since {text:?}: give a duration back from now (30m, 2h, 3d, 1w) or a UTC date (2026-12-01)"
        )
    };
    if let Some((year, rest)) = text.split_once('-') {
        let mut parts = rest.splitn(2, '-');
        let number = |s: Option<&str>, len: usize| {
            s.filter(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<i64>().ok())
        };
        let (Some(year), Some(month), Some(day)) = (
            number(Some(year), 4),
            number(parts.next(), 2),
            number(parts.next(), 2),
        ) else {
            return Err(refused());
        };
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(refused());
        }
        let days = days_from_civil(year, month as u32, day as u32);
        return u64::try_from(days * 86_400).map_err(|_| refused());
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(refused)?;
    let (count, unit) = text.split_at(split);
    let count: u64 = count.parse().map_err(|_| refused())?;
    let unit_secs = match unit {
        "m" | "min" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(refused()),
    };
    Ok(ao_plugin_kit::usage::hour_of(
        now_secs.saturating_sub(count.saturating_mul(unit_secs)),
    ))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = month as i64;
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of `days` since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::figures::Tokens;

    const DEC_7_2026: u64 = 1_796_601_600;

    fn usage(hours: &[(&str, u64, u64)]) -> SessionUsage {
        let hours = hours
            .iter()
            .map(|(model, hour, input)| HourUsage {
                model: model.to_string(),
                hour: *hour,
                replies: 1,
                tokens: Tokens {
                    input: *input,
                    ..Tokens::default()
                },
            })
            .collect();
        SessionUsage::new(UsageState::Known, hours, Vec::new(), 0, &Prices::default())
    }

    #[test]
    fn dates_convert_both_ways() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(DEC_7_2026 + 86_399), "2026-12-07");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(parse_since("2026-12-07", 0), Ok(DEC_7_2026));
        assert_eq!(parse_since("2000-02-29", 0), Ok(951_782_400));
    }

    #[test]
    fn since_takes_durations_and_dates_and_refuses_the_rest() {
        let now = DEC_7_2026 + 5 * 3_600 + 1_000;
        assert_eq!(parse_since("2h", now), Ok(DEC_7_2026 + 3 * 3_600));
        assert_eq!(
            parse_since("3d", now),
            Ok(DEC_7_2026 + 5 * 3_600 - 3 * 86_400)
        );
        assert_eq!(parse_since("30m", now), Ok(DEC_7_2026 + 4 * 3_600));
        for bad in [
            "",
            "2",
            "h",
            "2y",
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "-2h",
        ] {
            let error = parse_since(bad, 10_000).unwrap_err();
            assert!(error.contains("2h"), "{bad}: {error}");
        }
    }

    #[test]
    fn sums_group_by_each_key_with_a_total() {
        let (a, b, c) = (
            usage(&[
                ("gpt-5", DEC_7_2026, 1_000_000),
                ("gpt-5", DEC_7_2026 + 86_400, 1_000_000),
            ]),
            usage(&[("claude-haiku-4-5", DEC_7_2026 + 3_600, 1_000_000)]),
            usage(&[("mystery", DEC_7_2026, 10)]),
        );
        let sessions = [
            SessionFigures {
                id: "app-1",
                project_id: "app",
                usage: &a,
            },
            SessionFigures {
                id: "app-2",
                project_id: "app",
                usage: &b,
            },
            SessionFigures {
                id: "web-1",
                project_id: "web",
                usage: &c,
            },
        ];
        let prices = Prices::default();
        let by_project = summarize(&sessions, GroupBy::Project, None, &prices);
        let keys: Vec<&str> = by_project.groups.iter().map(|g| g.key.as_str()).collect();
        assert_eq!(keys, ["app", "web"]);
        assert_eq!(by_project.groups[0].sessions, 2);
        assert!((by_project.groups[0].cost_usd.unwrap() - 3.5).abs() < 1e-9);
        assert!(by_project.groups[0].priced);
        assert_eq!(by_project.groups[1].cost_usd, None);
        assert!((by_project.total.cost_usd.unwrap() - 3.5).abs() < 1e-9);
        assert!(!by_project.total.priced);

        let by_day = summarize(&sessions, GroupBy::Day, None, &prices);
        let days: Vec<(&str, usize)> = by_day
            .groups
            .iter()
            .map(|g| (g.key.as_str(), g.sessions))
            .collect();
        assert_eq!(days, [("2026-12-07", 3), ("2026-12-08", 1)]);

        let by_model = summarize(&sessions, GroupBy::Model, None, &prices);
        assert_eq!(by_model.groups[0].key, "claude-haiku-4-5");

        let since = summarize(
            &sessions,
            GroupBy::Session,
            Some(DEC_7_2026 + 3_600),
            &prices,
        );
        assert!((since.total.cost_usd.unwrap() - 2.25).abs() < 1e-9);
        assert_eq!(since.groups[2].models.len(), 0);
    }
}
