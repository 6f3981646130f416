//! Enforcing `budgets:` (the decisions are [`crate::budget`]'s): keeping each session's budget
//! snapshot in step with the config, warning once per threshold, stopping a session whose
//! budget ran out (the mark, then `Escape` through its runtime), lifting the mark when the
//! budget is raised, and refusing what an exhausted budget forbids (a message, a spawn).

use std::collections::HashMap;

use super::{events::run_notify, Lifecycle, LifecycleError, LISTING_READ_BYTES};
use crate::{
    budget::{
        judge,
        ledger::{Ledger, OverBudget, Snapshot},
        usd, Exhausted, Level,
    },
    config::{Limit, ProjectConfig, BUDGET_WARN_EVENT},
    session::{now_ms, Session, SessionStatus},
    usage::summary::{day_of, GroupBy},
};

/// What has been spent (USD, the priced part of the usage each agent recorded).
#[derive(Debug, Clone, Default)]
pub struct Spending {
    /// Per session id, live and archived.
    pub sessions: HashMap<String, f64>,
    /// Per project id: every session it ever had.
    pub projects: HashMap<String, f64>,
    /// Today (UTC), every project's sessions.
    pub today: f64,
}

/// What an exhausted budget refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BudgetRefusal {
    #[error("{id} is over budget and gets no messages: {exhausted}; raise {field} in {config} to let it continue, or force the message", exhausted = over.exhausted, field = over.field)]
    Send {
        id: String,
        over: Box<OverBudget>,
        config: String,
    },
    #[error("no session started: {exhausted}; raise {field} in {config} to start more")]
    Spawn {
        exhausted: Exhausted,
        field: String,
        config: String,
    },
}

/// Today, UTC, as usage sums name days.
fn today() -> String {
    day_of(now_ms() / 1000)
}

/// The interrupt every supported agent CLI takes as "stop this turn".
const INTERRUPT_KEY: &str = "Escape";

impl Lifecycle {
    fn ledger(&self) -> Ledger {
        Ledger::new(self.store.data_dir())
    }

    /// The snapshot of `project_id`'s session budget (`None`: it has none).
    fn budget_snapshot(&self, project_id: &str) -> Option<Snapshot> {
        let limit = self.config.budgets_of(project_id).session?;
        Some(Snapshot {
            limit,
            field: self.field_of(project_id, Level::Session),
        })
    }

    /// The config field setting `level` for `project_id`'s sessions, without `.warn`/`.stop`.
    fn field_of(&self, project_id: &str, level: Level) -> String {
        let (top, own) = (self.config.budgets, self.config.budgets_of(project_id));
        let overridden = match level {
            Level::Session => own.session != top.session,
            Level::Project => own.project != top.project,
            Level::Day => false,
        };
        if overridden {
            format!("projects.{project_id}.budgets.{}", level.as_str())
        } else {
            format!("budgets.{}", level.as_str())
        }
    }

    /// Writes (or removes) the session's budget snapshot so the hook, which reads no config,
    /// knows whether it has a budget to check. Called at spawn and by every listing.
    pub(crate) fn keep_budget_snapshot(&self, session: &Session) {
        let snapshot = self.budget_snapshot(&session.project_id);
        if let Err(e) =
            self.ledger()
                .keep_snapshot(&session.project_id, &session.id, snapshot.as_ref())
        {
            tracing::warn!(id = %session.id, "keeping its budget snapshot: {e}");
        }
    }

    /// Forgets a session's snapshot and mark (killed, or its spawn undone).
    pub(crate) fn forget_budget(&self, session: &Session) {
        self.ledger().forget(&session.project_id, &session.id);
    }

    /// Whether `session` has a budget snapshot: the hook's cheap question.
    pub fn has_budget_snapshot(data_dir: &std::path::Path, project_id: &str, id: &str) -> bool {
        matches!(Ledger::new(data_dir).snapshot(project_id, id), Ok(Some(_)))
    }

    /// What has been spent, from the usage each agent recorded: `sessions`' own figures (as
    /// a listing just read them; the stored ones for a session without), and, only when a
    /// project or day budget is set, every project's and today's sums of the figures kept
    /// (live and archived sessions; no plugin is asked). What is not priced is not counted.
    pub(crate) async fn spending(&self, sessions: &[Session]) -> Spending {
        let mut spending = Spending::default();
        for session in sessions {
            let cost = match &session.usage {
                Some(usage) => usage.cost(),
                None => self.stored_usage(session).cost(),
            };
            if let Some(cost) = cost.cost_usd {
                spending.sessions.insert(session.id.clone(), cost);
            }
        }
        let budgets = &self.config.budgets;
        let summed = budgets.project.is_some()
            || budgets.day.is_some()
            || self
                .config
                .projects
                .values()
                .any(|p| p.budgets.project.is_some());
        if !summed {
            return spending;
        }
        match self.usage_summary(None, GroupBy::Project, None, 0).await {
            Ok((summary, _)) => {
                spending.projects = summary
                    .groups
                    .into_iter()
                    .filter_map(|group| Some((group.key, group.cost_usd?)))
                    .collect();
            }
            Err(e) => tracing::warn!("summing projects' usage for their budgets: {e}"),
        }
        let midnight = now_ms() / 1000 / 86_400 * 86_400;
        match self
            .usage_summary(None, GroupBy::Day, Some(midnight), 0)
            .await
        {
            Ok((summary, _)) => spending.today = summary.total.cost_usd.unwrap_or(0.0),
            Err(e) => tracing::warn!("summing today's usage for its budget: {e}"),
        }
        spending
    }

    /// Checks every level for `sessions` (a listing's, live): keeps their snapshots, warns,
    /// stops, lifts marks of budgets raised since, and shows the marked ones `over_budget`.
    pub(crate) async fn enforce_budgets(&self, sessions: &mut [Session], spending: &Spending) {
        let today = today();
        for session in sessions.iter_mut() {
            if matches!(
                session.status,
                SessionStatus::Spawning
                    | SessionStatus::Errored
                    | SessionStatus::Killing
                    | SessionStatus::Unreachable
                    | SessionStatus::Connecting
            ) {
                continue;
            }
            self.keep_budget_snapshot(session);
            let exhausted = self.judge_session(session, spending, &today);
            self.settle(session, exhausted).await;
        }
    }

    /// Warns where a threshold of `session`'s levels is newly reached, and returns the first
    /// exhausted level (session, then project, then day).
    fn judge_session(
        &self,
        session: &Session,
        spending: &Spending,
        today: &str,
    ) -> Option<(Exhausted, String)> {
        let budgets = self.config.budgets_of(&session.project_id);
        let levels: [(Level, Option<Limit>, &str, Option<f64>); 3] = [
            (
                Level::Session,
                budgets.session,
                &session.id,
                spending.sessions.get(&session.id).copied(),
            ),
            (
                Level::Project,
                budgets.project,
                &session.project_id,
                spending.projects.get(&session.project_id).copied(),
            ),
            (Level::Day, budgets.day, today, Some(spending.today)),
        ];
        let mut first = None;
        for (level, limit, scope, spent) in levels {
            let (Some(limit), Some(spent)) = (limit, spent) else {
                continue;
            };
            let judged = judge(&limit, spent);
            if let Some(threshold) = judged.warn {
                self.warn_once(session, level, scope, threshold, spent);
            }
            if let (Some(stop), None) = (judged.stop, &first) {
                first = Some((
                    Exhausted {
                        level,
                        scope: scope.to_string(),
                        spent,
                        limit: stop,
                    },
                    format!("{}.stop", self.field_of(&session.project_id, level)),
                ));
            }
        }
        first
    }

    /// Marks `session` over budget (interrupting and notifying once) or lifts its mark, as
    /// `exhausted` says; shows it `over_budget` while marked.
    async fn settle(&self, session: &mut Session, exhausted: Option<(Exhausted, String)>) {
        let ledger = self.ledger();
        let (project, id) = (session.project_id.clone(), session.id.clone());
        match exhausted {
            Some((exhausted, field)) => {
                let over = OverBudget {
                    exhausted,
                    field,
                    at: now_ms(),
                };
                match ledger.mark_over(&project, &id, &over) {
                    Ok(true) => self.stop_over_budget(session, &over).await,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(%id, "marking it over budget: {e}");
                        return;
                    }
                }
                if session.status != SessionStatus::Exited {
                    session.status = SessionStatus::OverBudget;
                    session.note = ledger
                        .over_budget(&project, &id)
                        .ok()
                        .flatten()
                        .map(|over| over.to_string());
                }
            }
            None => match ledger.clear_over(&project, &id) {
                Ok(true) => tracing::info!(%id, "its budget was raised; it may continue"),
                Ok(false) => {}
                Err(e) => tracing::warn!(%id, "lifting its over-budget mark: {e}"),
            },
        }
    }

    /// Interrupts a session that just ran out of budget through its runtime, and notifies.
    async fn stop_over_budget(&self, session: &Session, over: &OverBudget) {
        self.interrupt(session, over).await;
        if let Some(notify) = self.config.notify.as_ref().filter(|n| n.over_budget) {
            run_notify(
                notify,
                &session.project_id,
                &session.id,
                SessionStatus::OverBudget.as_str(),
                &format!("{} was stopped: {over}", session.id),
            );
        }
    }

    /// Sends the interrupt key through the session's runtime.
    async fn interrupt(&self, session: &Session, over: &OverBudget) {
        let id = &session.id;
        tracing::info!(%id, "interrupting it: {over}");
        if let Some(handle) = &session.runtime_handle {
            let interrupted = match self.plugins_of(session).await {
                Ok(plugins) => plugins
                    .runtime
                    .send_keys(handle, &[INTERRUPT_KEY])
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = interrupted {
                tracing::warn!(%id, "interrupting it (over budget): {e}");
            }
        }
    }

    /// Runs `notify:` with `AO_EVENT=budget_warn` the first time `threshold` of `scope`'s
    /// `level` budget is reached.
    fn warn_once(&self, session: &Session, level: Level, scope: &str, threshold: f64, spent: f64) {
        let Some(notify) = self.config.notify.as_ref().filter(|n| n.budget_warn) else {
            return;
        };
        match self.ledger().claim_warning(level, scope, threshold) {
            Ok(true) => run_notify(
                notify,
                &session.project_id,
                &session.id,
                BUDGET_WARN_EVENT,
                &format!(
                    "the {} budget of {scope} reached its warning: {} spent (warn {})",
                    level.as_str(),
                    usd(spent),
                    usd(threshold)
                ),
            ),
            Ok(false) => {}
            Err(e) => tracing::warn!(id = %session.id, "remembering a budget warning: {e}"),
        }
    }

    /// The lifecycle the hook's budget check needs for session `id`: `config` loading only the
    /// libraries of the session's own plugins (its agent's, to read its usage, its runtime's,
    /// to interrupt it), so a hook event costs one library, not every plugin installed.
    pub fn open_for_session(
        mut config: crate::config::Config,
        project_id: &str,
        id: &str,
    ) -> Result<Lifecycle, LifecycleError> {
        let store = crate::session::SessionStore::open(&config.data_dir)?;
        if let Some(session) = store.reread(project_id, id)? {
            config.plugin_only = Some(vec![session.agent, session.runtime, session.workspace]);
        }
        Lifecycle::open(config, &[])
    }

    /// The session-level check the hook makes on a turn boundary, for a session with a budget
    /// snapshot: the same as a listing's, for that one session. An agent still `working` while
    /// over budget (an interrupt went astray, or it carries on by itself) is interrupted again
    /// at each such event, unless it is taking a turn a forced message started; `idle` ends
    /// that turn.
    pub async fn check_budget_of(
        &self,
        project_id: &str,
        id: &str,
        working: bool,
    ) -> Result<(), LifecycleError> {
        let Some(mut session) = self.store.reread(project_id, id)? else {
            return Ok(());
        };
        // Its agent just reported: it runs, even if its spawn has not saved its record yet.
        if session.status == SessionStatus::Spawning {
            session.status = SessionStatus::Working;
        }
        session.usage = Some(self.session_usage(&session, LISTING_READ_BYTES).await);
        let spending = self.spending(std::slice::from_ref(&session)).await;
        let was_over = matches!(self.ledger().over_budget(project_id, id), Ok(Some(_)));
        self.enforce_budgets(std::slice::from_mut(&mut session), &spending)
            .await;
        let ledger = self.ledger();
        if !working {
            ledger.end_forced_turn(project_id, id);
        } else if was_over && !ledger.in_forced_turn(project_id, id) {
            if let Ok(Some(over)) = ledger.over_budget(project_id, id) {
                self.interrupt(&session, &over).await;
            }
        }
        Ok(())
    }

    /// Refuses a message to an over-budget session unless `force`d; a forced one lets the
    /// agent take the turn it starts without being interrupted again.
    pub(crate) fn check_send_budget(
        &self,
        session: &Session,
        force: bool,
    ) -> Result<(), LifecycleError> {
        let ledger = self.ledger();
        match ledger.over_budget(&session.project_id, &session.id) {
            Ok(Some(_)) if force => Ok(ledger.allow_forced_turn(&session.project_id, &session.id)?),
            Ok(Some(over)) => Err(BudgetRefusal::Send {
                id: session.id.clone(),
                over: Box::new(over),
                config: self.config.file_for_messages(),
            }
            .into()),
            Ok(None) => Ok(()),
            Err(_) if force => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a spawn in `project` when its project or day budget has reached `stop` (what
    /// was spent is summed only when one of them is set).
    pub(crate) async fn check_spawn_budgets(
        &self,
        project: &ProjectConfig,
    ) -> Result<(), LifecycleError> {
        if project.budgets.project.is_none() && project.budgets.day.is_none() {
            return Ok(());
        }
        self.check_spawn_budget(project, &self.spending(&[]).await)
    }

    /// Refuses a spawn in `project` when its project or day budget has reached `stop`.
    pub(crate) fn check_spawn_budget(
        &self,
        project: &ProjectConfig,
        spending: &Spending,
    ) -> Result<(), LifecycleError> {
        let levels = [
            (
                Level::Project,
                project.budgets.project,
                project.id.clone(),
                spending.projects.get(&project.id).copied().unwrap_or(0.0),
            ),
            (Level::Day, project.budgets.day, today(), spending.today),
        ];
        for (level, limit, scope, spent) in levels {
            let Some(stop) = limit.and_then(|l| judge(&l, spent).stop) else {
                continue;
            };
            return Err(BudgetRefusal::Spawn {
                exhausted: Exhausted {
                    level,
                    scope,
                    spent,
                    limit: stop,
                },
                field: format!("{}.stop", self.field_of(&project.id, level)),
                config: self.config.file_for_messages(),
            }
            .into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{path::Path, time::Duration};

    use super::*;
    use crate::{
        config::Config,
        session::{SessionRole, SessionStatus},
    };

    /// A lifecycle on a data dir of its own whose `notify:` appends `AO_EVENT AO_SESSION` to
    /// `dir/notified`.
    fn lifecycle(dir: &Path, budgets: &str) -> Lifecycle {
        let log = dir.join("notified");
        let text = format!(
            "data_dir: {}\nnotify:\n  command: [sh, -c, 'echo \"$AO_EVENT $AO_SESSION\" >> {}']\n{budgets}",
            dir.join("data").display(),
            log.display()
        );
        let config = Config::parse(&text, &dir.join("ao-rs.yaml")).unwrap();
        Lifecycle::open(config, &[]).unwrap()
    }

    fn session() -> Session {
        Session {
            id: "app-1".into(),
            project_id: "app".into(),
            role: SessionRole::Worker,
            status: SessionStatus::Idle,
            agent: "claude-code".into(),
            runtime: "tmux".into(),
            workspace: "git-worktree".into(),
            branch: "session/app-1".into(),
            workspace_path: None,
            runtime_handle: None,
            task: None,
            created_at: now_ms(),
            host: None,
            activity_at: None,
            waiting_for: None,
            conversation_id: None,
            reports_events: true,
            status_from_screen: false,
            unreachable_since: None,
            sandbox: None,
            note: None,
            usage: None,
        }
    }

    fn spent(session: f64, project: f64, today: f64) -> Spending {
        Spending {
            sessions: [("app-1".to_string(), session)].into(),
            projects: [("app".to_string(), project)].into(),
            today,
        }
    }

    /// The notifications so far, sorted (they run detached, in any order), once `want` lines
    /// have arrived.
    fn notified(dir: &Path, want: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(dir.join("notified"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            if lines.len() >= want || std::time::Instant::now() > deadline {
                let mut lines = lines;
                lines.sort();
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[tokio::test]
    async fn a_session_warns_once_stops_at_its_limit_and_continues_when_the_budget_is_raised() {
        let dir = tempfile::tempdir().unwrap();
        let budgets = "budgets: { session: { warn: 1, stop: 2 } }\n";
        let lifecycle = lifecycle(dir.path(), budgets);
        let data = lifecycle.store.data_dir().to_path_buf();
        let mut sessions = [session()];
        lifecycle
            .enforce_budgets(&mut sessions, &spent(0.5, 0.5, 0.5))
            .await;
        assert_eq!(sessions[0].status, SessionStatus::Idle);
        assert!(Lifecycle::has_budget_snapshot(&data, "app", "app-1"));
        for figure in [1.2, 1.3] {
            lifecycle
                .enforce_budgets(&mut sessions, &spent(figure, figure, figure))
                .await;
            assert_eq!(sessions[0].status, SessionStatus::Idle);
        }
        lifecycle
            .enforce_budgets(&mut sessions, &spent(2.1, 2.1, 2.1))
            .await;
        assert_eq!(sessions[0].status, SessionStatus::OverBudget);
        let note = sessions[0].note.clone().unwrap();
        assert!(note.contains("$2.10 of its $2.00 session budget"), "{note}");
        let refused = lifecycle
            .check_send_budget(&sessions[0], false)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("app-1 is over budget")
                && refused.contains("raise budgets.session.stop in")
                && refused.contains("ao-rs.yaml"),
            "{refused}"
        );
        assert_eq!(
            lifecycle.check_send_budget(&sessions[0], true).ok(),
            Some(())
        );
        // Seen again by another listing: still over, and told once.
        let mut again = [session()];
        lifecycle
            .enforce_budgets(&mut again, &spent(2.2, 2.2, 2.2))
            .await;
        assert_eq!(again[0].status, SessionStatus::OverBudget);
        assert_eq!(
            notified(dir.path(), 2),
            ["budget_warn app-1", "over_budget app-1"]
        );
        // The operator raises the budget: the next command that loads the config lifts it.
        let raised = self::lifecycle(dir.path(), "budgets: { session: { warn: 1, stop: 5 } }\n");
        let mut continued = [session()];
        raised
            .enforce_budgets(&mut continued, &spent(2.2, 2.2, 2.2))
            .await;
        assert_eq!(continued[0].status, SessionStatus::Idle);
        assert!(raised.check_send_budget(&continued[0], false).is_ok());
        assert_eq!(notified(dir.path(), 3).len(), 2);
    }

    #[tokio::test]
    async fn a_session_without_budgets_has_no_snapshot_and_is_never_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let lifecycle = lifecycle(dir.path(), "");
        let mut sessions = [session()];
        lifecycle
            .enforce_budgets(&mut sessions, &spent(1e6, 1e6, 1e6))
            .await;
        assert_eq!(sessions[0].status, SessionStatus::Idle);
        let data = lifecycle.store.data_dir().to_path_buf();
        assert!(!Lifecycle::has_budget_snapshot(&data, "app", "app-1"));
    }

    #[tokio::test]
    async fn project_and_day_budgets_stop_their_sessions_and_refuse_a_spawn_saying_by_how_much() {
        let dir = tempfile::tempdir().unwrap();
        let budgets = "budgets: { day: { stop: 10 } }\nprojects:\n  app: { repo: /r, budgets: { project: { warn: 1, stop: 3 } } }\n";
        let lifecycle = lifecycle(dir.path(), budgets);
        let project = lifecycle.config.projects["app"].clone();
        lifecycle
            .check_spawn_budget(&project, &spent(0.0, 2.9, 2.9))
            .unwrap();
        let refused = lifecycle
            .check_spawn_budget(&project, &spent(0.0, 3.5, 3.5))
            .unwrap_err();
        assert_eq!(refused.class(), super::super::ErrorClass::Conflict);
        let message = refused.to_string();
        assert!(
            message
                .contains("project app has spent $3.50 of its $3.00 project budget ($0.50 over)")
                && message.contains("raise projects.app.budgets.project.stop in"),
            "{message}"
        );
        let day = lifecycle
            .check_spawn_budget(&project, &spent(0.0, 2.0, 12.0))
            .unwrap_err()
            .to_string();
        assert!(
            day.contains("(UTC, all projects) has spent $12.00 of its $10.00 day budget")
                && day.contains("raise budgets.day.stop"),
            "{day}"
        );
        let mut sessions = [session()];
        lifecycle
            .enforce_budgets(&mut sessions, &spent(0.1, 3.5, 3.5))
            .await;
        assert_eq!(sessions[0].status, SessionStatus::OverBudget);
        assert_eq!(
            notified(dir.path(), 2),
            ["budget_warn app-1", "over_budget app-1"]
        );
    }
}
