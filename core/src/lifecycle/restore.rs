//! `session restore`: brings back a session whose runtime is gone (a reboot, `tmux
//! kill-server`) in the workspace it had, with the agent resuming its own conversation.
//!
//! Only the runtime is new: same id, branch, workspace, `AO_*` environment and record. A restore
//! that fails half-way destroys the runtime it started and leaves the session `exited`, as it was.

use std::time::Duration;

use ao_plugin_api::PluginErrorKind;
use serde::Serialize;

use super::{
    deliver::{wait_until_ready, WaitFor},
    spawn::AgentStart,
    Lifecycle, LifecycleError,
};
use crate::session::{now_ms, Session, SessionStatus};

/// One line of `session restore --all`.
#[derive(Debug, Serialize)]
pub struct RestoreOutcome {
    pub id: String,
    /// The restored session, or why it was not.
    #[serde(flatten)]
    pub result: RestoreResult,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum RestoreResult {
    Restored { session: Box<Session> },
    Failed { error: String },
}

impl Lifecycle {
    /// Relaunches exited session `id`, resuming its agent's conversation.
    pub async fn restore(
        &self,
        id: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Session, LifecycleError> {
        self.restore_exited(id, progress).await?.ok_or_else(|| {
            LifecycleError::Refused(format!(
                "cannot restore {id}: it is still running (`ao-host attach {id}` shows it)"
            ))
        })
    }

    /// [`Lifecycle::restore`]; `None` when the session is running (already restored, perhaps
    /// by another `restore` that got its lock first).
    async fn restore_exited(
        &self,
        id: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Option<Session>, LifecycleError> {
        let refused = |why: String| LifecycleError::Refused(format!("cannot restore {id}: {why}"));
        let (mut session, old_handle, _lock) = self.live_locked(id, progress).await?;
        let plugins = self.plugins_of(&session).await?;
        if plugins.runtime.is_alive(&old_handle).await? {
            return Ok(None);
        }
        let Some(conversation) = self.conversation_of(&session) else {
            return Err(refused(format!(
                "its agent `{}` reported no conversation id, so there is nothing to resume; `ao-host session kill {id}` archives it",
                session.agent
            )));
        };
        let Some(path) = session.workspace_path.clone() else {
            return Err(refused("it has no workspace".into()));
        };
        let present = match plugins.workspace.exists(&path).await {
            Err(e) if e.kind() == PluginErrorKind::InvalidInput => {
                return Err(refused(e.to_string()))
            }
            present => present?,
        };
        if !present {
            return Err(refused(format!(
                "its workspace {path} is gone; `ao-host session kill {id}` archives it"
            )));
        }
        // Whatever is left of the old runtime session (a kept pane) goes first: the new one
        // takes the same name.
        plugins.runtime.destroy(&old_handle).await?;

        progress("starting the agent");
        let agent_config = self
            .config
            .projects
            .get(&session.project_id)
            .map(|project| project.agent_config.clone())
            .unwrap_or_default();
        let started = self
            .start_agent::<LifecycleError>(
                &session,
                &plugins,
                AgentStart {
                    workspace_path: &path,
                    agent_config: &agent_config,
                    // The agent keeps what it was given at spawn.
                    system_prompt: None,
                    first_message: None,
                    resume: Some(conversation.clone()),
                },
            )
            .await?;
        let handle = started.handle;
        session.runtime_handle = Some(handle.clone());
        session.conversation_id = started.conversation_id.or(Some(conversation));
        session.reports_events = started.reports_events;
        session.status = SessionStatus::Idle;
        session.activity_at = Some(now_ms());
        session.waiting_for = None;
        session.note = None;
        if let Err(e) = self.store.save(&session) {
            let _ = plugins.runtime.destroy(&handle).await;
            return Err(e.into());
        }

        progress("waiting for the agent");
        let ready = wait_until_ready(
            &plugins.runtime,
            &plugins.agent,
            &handle,
            WaitFor::Ready,
            Duration::from_millis(self.config.ready_timeout_ms),
            &|| false,
        )
        .await;
        if let Err(e) = ready {
            // Back to how it was: exited, with the reason.
            let _ = plugins.runtime.destroy(&handle).await;
            session.status = SessionStatus::Exited;
            session.note = Some(format!("restore failed: {e}"));
            let _ = self.store.save(&session);
            return Err(refused(e.to_string()));
        }
        Ok(Some(session))
    }

    /// Restores every exited session that can be resumed, one by one.
    pub async fn restore_all(
        &self,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<Vec<RestoreOutcome>, LifecycleError> {
        let listing = self.list(None, false).await?;
        let mut outcomes = Vec::new();
        for session in listing.sessions {
            if session.status != SessionStatus::Exited || self.conversation_of(&session).is_none() {
                continue;
            }
            progress(&format!("restoring {}", session.id));
            let result = match self.restore_exited(&session.id, progress).await {
                Ok(Some(session)) => RestoreResult::Restored {
                    session: Box::new(session),
                },
                // Another restore got there first.
                Ok(None) => continue,
                Err(e) => RestoreResult::Failed {
                    error: e.to_string(),
                },
            };
            outcomes.push(RestoreOutcome {
                id: session.id,
                result,
            });
        }
        Ok(outcomes)
    }
}
