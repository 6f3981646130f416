//! Reading sessions' usage on through their agent plugins (see [`crate::usage`]): a listing
//! reads a bounded amount across all its sessions and shows `counting` for what is left, the
//! watcher reads on in the background, and a kill reads the rest before the agent forgets the
//! session, so its archived record keeps the final figures.

use ao_plugin_api::{
    usage::{UsageQuery, UsageReport},
    AgentSession, PluginErrorKind,
};
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::{Lifecycle, LifecycleError};
use crate::{
    config::validate_project_arg,
    plugins::PluginCallError,
    session::{now_ms, Session, SessionStatus},
    usage::{
        summary::{summarize, GroupBy, SessionFigures, UsageSummary},
        HourUsage, SessionUsage, StoredUsage, UsageDir, UsageState,
    },
};

/// Bytes of agent records one listing reads across all its sessions: a first listing of many
/// sessions with large records answers quickly, with `counting` for the rest.
pub const LISTING_READ_BYTES: u64 = 32 * 1024 * 1024;
/// Bytes the watcher reads on each poll, across all sessions: the background reader.
pub const WATCH_READ_BYTES: u64 = 256 * 1024 * 1024;
/// Bytes a kill reads to settle a session's final figures.
const KILL_READ_BYTES: u64 = 1024 * 1024 * 1024;
/// However many sessions share a budget, each reads at least this much.
const MIN_SESSION_READ_BYTES: u64 = 256 * 1024;
/// Sessions whose plugins are asked at the same time.
const CONCURRENT_READS: usize = 16;

/// What an old record without figures shows.
const NOT_KEPT: &str = "not kept: the session ended before this ao-host kept usage in its record";

impl Lifecycle {
    pub(crate) fn usage_dir(&self) -> UsageDir {
        UsageDir::new(self.store.data_dir())
    }

    /// `session`'s usage so far, read on through its agent plugin from where the last reading
    /// stopped (at most about `max_bytes` of records), and kept for the next one. Never fails:
    /// what cannot be read is `unknown`, or the last figures read marked stale, with the reason.
    pub async fn session_usage(&self, session: &Session, max_bytes: u64) -> SessionUsage {
        self.read_usage(session, self.conversation_of(session), max_bytes)
            .await
    }

    /// A live session's usage as last read, without asking its plugin (`none` when nothing was
    /// read yet), priced at the table in force: what budgets check, and what the live feed
    /// shows (unchanged figures read the same every time, `read_at` included).
    pub fn stored_usage(&self, session: &Session) -> SessionUsage {
        let mut usage = match self.usage_dir().load(&session.project_id, &session.id) {
            Some(stored) => stored.usage,
            None => SessionUsage::new(
                UsageState::None,
                Vec::new(),
                Vec::new(),
                session.created_at,
                &self.config.prices,
            ),
        };
        usage.price(&self.config.prices);
        usage
    }

    /// An ended (archived) session's final usage, from its record, priced at the table in
    /// force. A killed session whose record has none ended before usage was kept: `unknown`.
    pub fn ended_usage(&self, session: &Session) -> SessionUsage {
        let mut usage = match &session.usage {
            Some(kept) => kept.clone(),
            None if session.status == SessionStatus::Killed => {
                SessionUsage::unknown(NOT_KEPT.into(), session.created_at)
            }
            // A spawn undone before its agent ran.
            None => SessionUsage::new(
                UsageState::None,
                Vec::new(),
                Vec::new(),
                session.created_at,
                &self.config.prices,
            ),
        };
        usage.price(&self.config.prices);
        usage
    }

    /// Fills in each live session's usage, read on through its plugin, all of them sharing
    /// `budget` bytes; a session whose host does not answer keeps its last figures, marked
    /// stale.
    pub(crate) async fn attach_usage(&self, sessions: &mut [Session], budget: u64) {
        let unanswered = |s: &Session| {
            matches!(
                s.status,
                SessionStatus::Unreachable | SessionStatus::Connecting
            )
        };
        let readable: Vec<usize> = (0..sessions.len())
            .filter(|&i| !unanswered(&sessions[i]))
            .collect();
        let share = (budget / readable.len().max(1) as u64).max(MIN_SESSION_READ_BYTES);
        let reads = Semaphore::new(CONCURRENT_READS);
        let read = join_all(readable.iter().map(|&i| {
            let session = &sessions[i];
            let reads = &reads;
            async move {
                let _permit = reads.acquire().await;
                (i, self.session_usage(session, share).await)
            }
        }))
        .await;
        for (i, usage) in read {
            sessions[i].usage = Some(usage);
        }
        for session in sessions.iter_mut().filter(|s| unanswered(s)) {
            let mut usage = self.stored_usage(session);
            usage.stale = true;
            usage
                .notes
                .push("its host does not answer: these are the last figures read".into());
            session.usage = Some(usage);
        }
    }

    /// Fills in each live session's usage as last read, without asking any plugin.
    pub(crate) fn attach_stored_usage(&self, sessions: &mut [Session]) {
        for session in sessions {
            session.usage = Some(self.stored_usage(session));
        }
    }

    /// Fills in each ended session's final usage from its record.
    pub(crate) fn attach_ended_usage(&self, sessions: &mut [Session]) {
        for session in sessions {
            session.usage = Some(self.ended_usage(session));
        }
    }

    /// Reads every live session's usage on by up to `budget` bytes in all (the watcher's
    /// background reading, so listings find little left to read).
    pub async fn advance_usage(&self, budget: u64) {
        let mut sessions = self.store.list(None, false).sessions;
        self.attach_usage(&mut sessions, budget).await;
    }

    /// Usage of live and ended sessions (of `project`, or all) summed `by` one key, counting
    /// hours from `since` on. Live sessions are read on by up to `read_budget` bytes in all
    /// first; 0 sums only the figures already kept, without asking any plugin (what budgets
    /// check at spawn).
    pub async fn usage_summary(
        &self,
        project: Option<&str>,
        by: GroupBy,
        since: Option<u64>,
        read_budget: u64,
    ) -> Result<(UsageSummary, Vec<String>), LifecycleError> {
        if let Some(project) = project {
            validate_project_arg(project)?;
        }
        let live = self.store.list(project, false);
        let ended = self.store.list(project, true);
        let mut problems: Vec<String> = live.problems.iter().map(ToString::to_string).collect();
        problems.extend(ended.problems.iter().map(ToString::to_string));
        let mut sessions = live.sessions;
        if read_budget > 0 {
            self.attach_usage(&mut sessions, read_budget).await;
        } else {
            self.attach_stored_usage(&mut sessions);
        }
        let mut ended = ended.sessions;
        self.attach_ended_usage(&mut ended);
        let figures: Vec<SessionFigures<'_>> = sessions
            .iter()
            .chain(&ended)
            .filter_map(|session| {
                Some(SessionFigures {
                    id: &session.id,
                    project_id: &session.project_id,
                    usage: session.usage.as_ref()?,
                })
            })
            .collect();
        Ok((
            summarize(&figures, by, since, &self.config.prices),
            problems,
        ))
    }

    /// The final figures of a session being killed: its agent is stopped, and `conversation`
    /// was taken before its state went. A kill finishing an earlier one whose conversation is
    /// gone keeps what was read then.
    pub(super) async fn final_usage(
        &self,
        session: &Session,
        conversation: Option<String>,
    ) -> SessionUsage {
        if conversation.is_none() && session.status == SessionStatus::Killing {
            if let Some(stored) = self.usage_dir().load(&session.project_id, &session.id) {
                let mut usage = stored.usage;
                usage.price(&self.config.prices);
                return usage;
            }
        }
        self.read_usage(session, conversation, KILL_READ_BYTES)
            .await
    }

    async fn read_usage(
        &self,
        session: &Session,
        conversation: Option<String>,
        max_bytes: u64,
    ) -> SessionUsage {
        let dir = self.usage_dir();
        let stored = dir
            .load(&session.project_id, &session.id)
            .filter(|stored| stored.plugin == session.agent);
        let query = UsageQuery {
            session: AgentSession {
                session_id: session.id.as_str().into(),
                project_id: session.project_id.as_str().into(),
                branch: session.branch.as_str().into(),
                workspace_path: session.workspace_path.as_deref().unwrap_or("").into(),
                system_prompt: None.into(),
                agent_config: self
                    .config
                    .projects
                    .get(&session.project_id)
                    .map(|project| project.agent_config.as_str())
                    .unwrap_or("")
                    .into(),
            },
            conversation_id: conversation.map(Into::into).into(),
            cursor: stored
                .as_ref()
                .map(|stored| stored.cursor.as_str())
                .unwrap_or("")
                .into(),
            max_bytes,
        };
        let answer = match self.agent_on(&session.agent, session.host.as_deref()).await {
            Ok(agent) => agent.usage(&query).await.map_err(Failure::Plugin),
            Err(e) => Err(Failure::Unavailable(e.to_string())),
        };
        let now = now_ms();
        let prices = &self.config.prices;
        match answer {
            Ok(report) => {
                let mut usage = self.usage_of_report(&report, now);
                if let Some(stored) = &stored {
                    usage.keep_counted(&stored.usage, prices);
                }
                let keep = StoredUsage {
                    plugin: session.agent.clone(),
                    cursor: report.cursor.to_string(),
                    usage: usage.clone(),
                };
                if stored
                    .as_ref()
                    .is_none_or(|stored| !same_reading(stored, &keep))
                {
                    if let Err(e) = dir.save(&session.project_id, &session.id, &keep) {
                        tracing::warn!(id = %session.id, "keeping its usage: {e}");
                    }
                }
                usage
            }
            Err(Failure::Plugin(e)) if e.kind() == PluginErrorKind::NotFound => match stored {
                Some(stored) if !stored.usage.hours.is_empty() => last_known(
                    stored,
                    format!("its agent's records are gone ({})", e.plugin_message()),
                    prices,
                ),
                _ => SessionUsage::new(UsageState::None, Vec::new(), Vec::new(), now, prices),
            },
            Err(Failure::Plugin(e)) if e.kind() == PluginErrorKind::Unsupported => {
                SessionUsage::unknown(
                    format!(
                        "the {} agent plugin cannot count usage ({})",
                        session.agent,
                        e.plugin_message()
                    ),
                    now,
                )
            }
            Err(failure) => {
                let why = match failure {
                    Failure::Plugin(e) => e.to_string(),
                    Failure::Unavailable(why) => why,
                };
                match stored {
                    Some(stored) => last_known(stored, why, prices),
                    None => SessionUsage::unknown(why, now),
                }
            }
        }
    }

    fn usage_of_report(&self, report: &UsageReport, now: u64) -> SessionUsage {
        let state = if report.pending_bytes > 0 {
            UsageState::Counting
        } else {
            UsageState::Known
        };
        let mut usage = SessionUsage::new(
            state,
            report.usage.iter().map(HourUsage::from).collect(),
            report.notes.iter().map(ToString::to_string).collect(),
            now,
            &self.config.prices,
        );
        usage.pending_bytes = report.pending_bytes;
        usage
    }
}

/// Why a plugin gave no report.
enum Failure {
    Plugin(PluginCallError),
    /// The plugin could not be built (or its host reached).
    Unavailable(String),
}

/// Whether `stored` already says what `read` says (only the time differs): nothing to write.
fn same_reading(stored: &StoredUsage, read: &StoredUsage) -> bool {
    let (a, b) = (&stored.usage, &read.usage);
    stored.plugin == read.plugin
        && stored.cursor == read.cursor
        && a.state == b.state
        && a.hours == b.hours
        && a.notes == b.notes
        && a.pending_bytes == b.pending_bytes
}

/// The last figures read, marked stale, saying why they were not read on now.
fn last_known(stored: StoredUsage, why: String, prices: &crate::usage::Prices) -> SessionUsage {
    let mut usage = stored.usage;
    usage.stale = true;
    usage.notes.push(why);
    usage.price(prices);
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        config::Config,
        session::{SessionRole, SessionStore},
        usage::Tokens,
    };

    fn lifecycle(dir: &std::path::Path) -> Lifecycle {
        let mut config = Config::parse("", &dir.join("ao-rs.yaml")).unwrap();
        config.data_dir = dir.join("data");
        Lifecycle::open(config, &[]).unwrap()
    }

    /// An idle session of agent `agent` with no runtime to ask.
    fn idle_session(store: &SessionStore, agent: &str) -> Session {
        let template = Session {
            id: String::new(),
            project_id: "app".into(),
            role: SessionRole::Worker,
            status: SessionStatus::Spawning,
            agent: agent.into(),
            runtime: "tmux".into(),
            workspace: "git-worktree".into(),
            branch: String::new(),
            workspace_path: None,
            runtime_handle: None,
            task: Some("x".into()),
            created_at: now_ms(),
            host: None,
            activity_at: None,
            waiting_for: None,
            conversation_id: None,
            reports_events: false,
            status_from_screen: false,
            usage: None,
            unreachable_since: None,
            sandbox: None,
            note: None,
        };
        let (mut session, _lock) = store.reserve("app", SessionRole::Worker, template).unwrap();
        session.status = SessionStatus::Idle;
        store.save(&session).unwrap();
        session
    }

    fn listed_usage(lifecycle: &Lifecycle) -> SessionUsage {
        let reactor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listing = reactor.block_on(lifecycle.list(None, false)).unwrap();
        listing.sessions[0]
            .usage
            .clone()
            .expect("listed with usage")
    }

    #[test]
    fn a_plugin_that_cannot_answer_leaves_usage_unknown_with_the_reason_and_the_listing_whole() {
        let dir = tempfile::tempdir().unwrap();
        let lifecycle = lifecycle(dir.path());
        let session = idle_session(lifecycle.store(), "no-such-agent");
        let usage = listed_usage(&lifecycle);
        assert_eq!(usage.state, UsageState::Unknown);
        assert_eq!(usage.cost().cost_usd, None);
        assert!(
            usage.notes[0].contains("no-such-agent"),
            "{:?}",
            usage.notes
        );

        // Figures read before are shown, marked stale, never dropped nor made up.
        let hours = vec![HourUsage {
            model: "gpt-5".into(),
            hour: 0,
            replies: 2,
            tokens: Tokens {
                input: 1_000_000,
                ..Tokens::default()
            },
        }];
        let prices = &lifecycle.config().prices;
        let kept = StoredUsage {
            plugin: "no-such-agent".into(),
            cursor: "{}".into(),
            usage: SessionUsage::new(UsageState::Known, hours.clone(), Vec::new(), 1, prices),
        };
        lifecycle
            .usage_dir()
            .save(&session.project_id, &session.id, &kept)
            .unwrap();
        let usage = listed_usage(&lifecycle);
        assert_eq!((usage.state, usage.stale), (UsageState::Known, true));
        assert_eq!(usage.hours, hours);
        assert!((usage.cost().cost_usd.unwrap() - 1.25).abs() < 1e-9);
        assert!(usage.notes.last().unwrap().contains("no-such-agent"));
        // What budgets read, without asking the plugin.
        assert_eq!(lifecycle.stored_usage(&session).hours, hours);
    }
}
