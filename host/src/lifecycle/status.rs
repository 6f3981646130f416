//! Listing sessions with their status as it is now, not as last recorded.
//!
//! Each runtime is asked once for its live handles; then every live session's screen is read
//! and judged by its agent plugin, concurrently (each call is a blocking plugin call on tokio's
//! blocking pool), at most [`MAX_CONCURRENT_PROBES`] at a time so that a thousand sessions do not
//! start a thousand `tmux` processes at once.

use std::collections::{BTreeSet, HashMap, HashSet};

use ao_plugin_api::Activity;
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::{deliver::SCREEN_LINES, Lifecycle, LifecycleError};
use crate::{
    config::validate_project_arg,
    session::{Session, SessionStatus},
};

/// Screens read at the same time.
const MAX_CONCURRENT_PROBES: usize = 16;

/// Sessions and the records that could not be read (reported, never fatal).
#[derive(Debug, Default)]
pub struct SessionListing {
    pub sessions: Vec<Session>,
    pub problems: Vec<String>,
}

/// Each runtime's live handles, or why it could not say.
type AliveByRuntime = HashMap<String, Result<HashSet<String>, String>>;

impl Lifecycle {
    /// Active sessions (or archived ones) of one project or all, with live status.
    pub async fn list(
        &self,
        project: Option<&str>,
        archived: bool,
    ) -> Result<SessionListing, LifecycleError> {
        if let Some(project) = project {
            validate_project_arg(project)?;
        }
        let listing = self.store.list(project, archived);
        let problems = listing.problems.iter().map(ToString::to_string).collect();
        if archived {
            return Ok(SessionListing {
                sessions: listing.sessions,
                problems,
            });
        }
        let runtimes: BTreeSet<&str> = listing
            .sessions
            .iter()
            .filter(|s| s.runtime_handle.is_some())
            .map(|s| s.runtime.as_str())
            .collect();
        let alive: AliveByRuntime = join_all(runtimes.into_iter().map(|name| async move {
            let handles = match self.runtime(name).await {
                Ok(runtime) => runtime
                    .alive_handles()
                    .await
                    .map(|h| h.into_iter().collect())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            (name.to_string(), handles)
        }))
        .await
        .into_iter()
        .collect();
        let probes = Semaphore::new(MAX_CONCURRENT_PROBES);
        let sessions = join_all(
            listing
                .sessions
                .into_iter()
                .map(|session| self.live(session, &alive, &probes)),
        )
        .await;
        Ok(SessionListing { sessions, problems })
    }

    /// One session's status now.
    async fn live(&self, session: Session, alive: &AliveByRuntime, probes: &Semaphore) -> Session {
        let mut session = session;
        if session.status == SessionStatus::Spawning {
            match self.spawn_state(&session) {
                SpawnState::InProgress => return session,
                SpawnState::Finished(now) => session = *now,
                SpawnState::Interrupted(note) => {
                    session.status = SessionStatus::Errored;
                    session.note = Some(note);
                    return session;
                }
            }
        }
        let Some(handle) = session.runtime_handle.clone() else {
            return session;
        };
        match alive.get(&session.runtime) {
            Some(Ok(handles)) if !handles.contains(&handle) => {
                session.status = SessionStatus::Exited;
                return session;
            }
            Some(Ok(_)) => {}
            Some(Err(reason)) => {
                session.note = Some(format!("status not checked: {reason}"));
                return session;
            }
            None => return session,
        }
        let _permit = probes.acquire().await;
        let activity = async {
            let runtime = self.runtime(&session.runtime).await?;
            let agent = self.agent(&session.agent).await?;
            let screen = runtime.capture_output(&handle, SCREEN_LINES).await?;
            Ok::<_, LifecycleError>(agent.activity(&screen).await?)
        };
        match activity.await {
            Ok(Activity::Idle) => session.status = SessionStatus::Idle,
            Ok(Activity::Working) => session.status = SessionStatus::Working,
            Ok(Activity::WaitingInput) => session.status = SessionStatus::WaitingInput,
            Ok(Activity::Exited) => session.status = SessionStatus::Exited,
            Err(e) => session.note = Some(format!("status not checked: {e}")),
        }
        session
    }

    /// Whether a record that says `spawning` is being spawned right now. The lock is probed
    /// first and the record read again after: a spawn saves its final record before it lets go
    /// of the lock, so a free lock and a record still `spawning` prove the spawner died.
    pub(super) fn spawn_state(&self, session: &Session) -> SpawnState {
        let locks = self.store.locks();
        match locks.is_held(&session.project_id, &session.id) {
            Ok(true) => return SpawnState::InProgress,
            Ok(false) => {}
            Err(e) => return SpawnState::Interrupted(format!("its lock cannot be checked: {e}")),
        }
        match self.store.reread(&session.project_id, &session.id) {
            Ok(Some(now)) if now.status != SessionStatus::Spawning => {
                SpawnState::Finished(Box::new(now))
            }
            Ok(_) => SpawnState::Interrupted(
                "its spawn was interrupted (the ao-host process spawning it is gone); `ao-host gc` cleans it up".into(),
            ),
            Err(e) => SpawnState::Interrupted(e.to_string()),
        }
    }
}

/// What became of a record that said `spawning` when it was read.
pub(super) enum SpawnState {
    InProgress,
    Finished(Box<Session>),
    Interrupted(String),
}
