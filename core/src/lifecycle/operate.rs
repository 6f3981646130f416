//! Acting on one existing session: kill, send, attach.

use std::time::Duration;

use ao_plugin_api::PluginErrorKind;

use super::{
    deliver::{deliver, REPORT_GRACE},
    request::{validate_message, RequestError},
    Lifecycle, LifecycleError,
};
use crate::{
    plugins::{PluginCallError, PluginSet, RuntimePlugin},
    session::{now_ms, ReportedStatus, Session, SessionLock, SessionStatus, StoreError},
};

/// How a kill ended.
#[derive(Debug)]
pub enum KillOutcome {
    /// The runtime and (unless kept) the workspace are gone; the record is archived.
    Killed(Box<Session>),
    /// The session was still spawning: its spawn stopped and undid itself, so nothing is left.
    SpawnUndone,
}

/// How long a kill waits before it asks a spawn in progress to stop.
const POLITE_WAIT: Duration = Duration::from_millis(300);

/// The pauses before a kill tries again to remove a workspace whose host did not answer (a
/// connection lost, or refused by a busy sshd, for a moment).
const WORKSPACE_RETRIES: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(2),
];

impl Lifecycle {
    /// The longest a spawn can take to notice a cancel request and undo itself: the plugin call
    /// in flight (making the workspace, `post_create` included, is the longest), then the undo's
    /// destroy calls.
    fn spawn_stop_patience(&self) -> Duration {
        Duration::from_millis(self.config.workspace_timeout_ms)
            + self.call_timeout() * 3
            + Duration::from_secs(5)
    }

    /// The session's lock, waiting for whoever holds it. A session that is still spawning is
    /// asked to stop when `cancel_spawn` (its spawn then undoes itself); otherwise the wait is
    /// for a spawn to finish (it holds the lock until the agent has its task).
    async fn acquire(
        &self,
        session: &Session,
        cancel_spawn: bool,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(SessionLock, bool), LifecycleError> {
        let locks = self.store.locks();
        let (project, id) = (session.project_id.as_str(), session.id.as_str());
        if let Some(lock) = locks.try_lock(project, id)? {
            return Ok((lock, false));
        }
        if let Ok(lock) = locks.lock(project, id, POLITE_WAIT).await {
            return Ok((lock, false));
        }
        let spawning = matches!(
            self.store.reread(project, id),
            Ok(Some(Session {
                status: SessionStatus::Spawning,
                ..
            }))
        );
        let cancelled = cancel_spawn && spawning;
        let patience = if cancelled {
            locks.request_cancel(project, id)?;
            progress("stopping its spawn");
            self.spawn_stop_patience()
        } else if spawning {
            progress("waiting for its spawn to finish");
            Duration::from_millis(self.config.ready_timeout_ms) + self.spawn_stop_patience()
        } else {
            progress("waiting for another ao-host command on it");
            self.lock_patience()
        };
        Ok((locks.lock(project, id, patience).await?, cancelled))
    }

    /// Stops a session: destroys its runtime and (unless `keep_workspace`) its workspace, and
    /// archives its record as `killed`. The branch stays while it holds the agent's work. A session
    /// that is still spawning is stopped by its own spawn, which undoes itself. A workspace
    /// holding uncommitted changes is not destroyed unless `force`: the kill is refused first,
    /// with the ways out. A kill that stops the runtime but cannot remove the workspace keeps
    /// the record as `killing` (see [`SessionStatus::Killing`]); killing it again finishes it.
    pub async fn kill(
        &self,
        id: &str,
        keep_workspace: bool,
        force: bool,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<KillOutcome, LifecycleError> {
        let found = self.store.find(id)?;
        let (lock, cancelled) = self.acquire(&found, true, progress).await?;
        let outcome = self
            .kill_locked(&found, keep_workspace, force, cancelled)
            .await;
        self.store.locks().clear_cancel(&found.project_id, id);
        // Over, so its lock file goes; one that is not over keeps it.
        match outcome {
            Ok(_) => lock.remove(),
            Err(_) => drop(lock),
        }
        outcome
    }

    /// The kill of `found`, whose lock the caller holds; `gc` finishes half-done kills with it.
    pub(super) async fn kill_locked(
        &self,
        found: &Session,
        keep_workspace: bool,
        force: bool,
        cancelled: bool,
    ) -> Result<KillOutcome, LifecycleError> {
        // The session this kill was asked for: the same record, not a later one that might have
        // been given the same id while the kill waited.
        let now = self
            .store
            .reread(&found.project_id, &found.id)?
            .filter(|now| now.created_at == found.created_at && now.task == found.task);
        let Some(session) = now else {
            return if cancelled {
                Ok(KillOutcome::SpawnUndone)
            } else {
                Err(StoreError::NotFound {
                    id: found.id.clone(),
                }
                .into())
            };
        };
        let plugins = self.plugins_of(&session).await?;
        if let (Some(path), false) = (&session.workspace_path, keep_workspace) {
            self.check_workspace_claim(&session, path, &plugins).await?;
        }
        // A kill that stopped half-way was asked (and checked, or forced) already, and nothing
        // has run in the workspace since its agent stopped.
        let finishing = session.status == SessionStatus::Killing;
        if let (Some(path), false, false) = (&session.workspace_path, keep_workspace, finishing) {
            // Asked before anything is destroyed, so a refusal leaves the session whole. A
            // plugin that cannot tell (or a workspace already gone) does not stop the kill; one
            // that refuses to act on the workspace (its git admin folder others could edit)
            // stops it, forced or not.
            let id = &session.id;
            match plugins.workspace.has_unsaved_work(path).await {
                Ok(true) if !force => {
                    return Err(LifecycleError::Refused(format!(
                        "{id}'s workspace {path} holds uncommitted changes or commits not pushed; commit and push them, keep the workspace with `ao-host session kill {id} --keep-workspace`, or discard them with `--force`"
                    )));
                }
                Err(e) if e.kind() == PluginErrorKind::InvalidInput => {
                    return Err(LifecycleError::Refused(format!(
                        "{id}: {e}; nothing was stopped or removed"
                    )));
                }
                _ => {}
            }
        }
        // Marked before anything is destroyed: a kill cut off from here on (`kill -9`, a host
        // lost) leaves a session that lists as `killing` and that `kill` again or `gc`
        // finishes, never one that looks `exited` with its workspace left.
        if !finishing {
            let mut marked = session.clone();
            marked.status = SessionStatus::Killing;
            marked.note = Some("being killed".into());
            self.store.save(&marked)?;
        }
        // Taken before the agent's state goes with its runtime: the conversation its final
        // usage is read from.
        let conversation = self.conversation_of(&session);
        if let Err(e) = self.stop_runtime(&session, &plugins).await {
            // Nothing was destroyed: the session is as it was.
            if !finishing {
                self.store.save(&session)?;
            }
            return Err(e);
        }
        // Read now that the agent writes no more, before its workspace and its records go, so
        // the archived record keeps what the session cost.
        let mut ended = session.clone();
        ended.usage = Some(self.final_usage(&session, conversation).await);
        if let (Some(path), false) = (&session.workspace_path, keep_workspace) {
            self.remove_killed_workspace(&session, path, &plugins)
                .await?;
        }
        let archived = self.store.archive(&ended, SessionStatus::Killed, None)?;
        self.forget_session_files(&session, &plugins).await;
        Ok(KillOutcome::Killed(Box::new(archived)))
    }

    /// Removes the workspace of a session whose runtime a kill has stopped, trying again while
    /// its host does not answer. If it still cannot, the record is saved as `killing` with what
    /// is left: never archived as done, and never left to look `exited` with its workspace there.
    async fn remove_killed_workspace(
        &self,
        session: &Session,
        path: &str,
        plugins: &PluginSet,
    ) -> Result<(), LifecycleError> {
        let mut pauses = WORKSPACE_RETRIES.iter();
        let error = loop {
            match plugins.workspace.destroy(path, false).await {
                Ok(()) => return Ok(()),
                Err(e) => match pauses.next() {
                    Some(pause) if may_pass(&e) => {
                        tracing::info!(id = %session.id, "removing its workspace: {e}; trying again");
                        tokio::time::sleep(*pause).await;
                    }
                    _ => break e,
                },
            }
        };
        let mut left = session.clone();
        left.status = SessionStatus::Killing;
        left.runtime_handle = None;
        left.note = Some(format!(
            "killed half-way: its agent is stopped, its workspace {path} is left ({error})"
        ));
        self.store.save(&left)?;
        Err(LifecycleError::KillUnfinished {
            id: session.id.clone(),
            path: path.to_string(),
            error: Box::new(error),
        })
    }

    /// Destroys the session's runtime, then forgets its agent's state. The state is kept until
    /// the runtime is gone, so a destroy that fails leaves a session whose later events still
    /// count; meanwhile it is marked stopping, so the agent's last events, fired as its runtime
    /// goes, notify nobody: an operator's kill is no news.
    pub(super) async fn stop_runtime(
        &self,
        session: &Session,
        plugins: &PluginSet,
    ) -> Result<(), LifecycleError> {
        let (project, id) = (&session.project_id, &session.id);
        if let Some(handle) = &session.runtime_handle {
            if let Err(e) = self.agent_states.set_stopping(project, id, true) {
                tracing::warn!(%id, "marking its agent's state stopping: {e}");
            }
            if let Err(e) = plugins.runtime.destroy(handle).await {
                if let Err(e) = self.agent_states.set_stopping(project, id, false) {
                    tracing::warn!(%id, "unmarking its agent's state stopping: {e}");
                }
                return Err(e.into());
            }
        }
        self.agent_states.remove(project, id);
        Ok(())
    }

    /// Refuses, before anything is destroyed, to remove a workspace that the record names but
    /// the workspace plugin does not list as this data dir's, or that another session's record
    /// names too: a record can be edited, what the plugin recorded itself is the proof. A path
    /// with nothing at it (removed by hand) has nothing to remove, and a plugin built before
    /// `list_owned` keeps its own checks in `destroy`.
    async fn check_workspace_claim(
        &self,
        session: &Session,
        path: &str,
        plugins: &PluginSet,
    ) -> Result<(), LifecycleError> {
        let id = &session.id;
        let refuse = |why: String| {
            Err(LifecycleError::Refused(format!(
                "{id}'s record names the workspace {path}, but {why}: nothing was stopped or \
                 removed. If the record was edited, check it; `ao-host session kill {id} \
                 --keep-workspace` stops the session and leaves that folder alone"
            )))
        };
        let others: Vec<String> = self
            .store
            .list(None, false)
            .sessions
            .into_iter()
            .filter(|other| {
                other.id != session.id
                    && other.host == session.host
                    && other.workspace_path.as_deref() == Some(path)
            })
            .map(|other| other.id)
            .collect();
        if !others.is_empty() {
            return refuse(format!("the record of {} names it too", others.join(", ")));
        }
        let present = match session.host {
            None => std::path::Path::new(path).symlink_metadata().is_ok(),
            Some(_) => plugins.workspace.exists(path).await.unwrap_or(true),
        };
        if !present {
            return Ok(());
        }
        match plugins.workspace.list_owned().await {
            Ok(owned) if owned.iter().any(|owned| owned == path) => Ok(()),
            Ok(_) => refuse(format!(
                "the {} plugin does not list it as a workspace of this data dir",
                plugins.workspace.name()
            )),
            Err(e) if e.kind() == PluginErrorKind::Unsupported => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A live session, locked, with its runtime handle.
    pub(super) async fn live_locked(
        &self,
        id: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(Session, String, SessionLock), LifecycleError> {
        let found = self.store.find(id)?;
        let (lock, _) = self.acquire(&found, false, progress).await?;
        let session = self
            .store
            .reread(&found.project_id, id)?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
        if session.status == SessionStatus::Spawning {
            // Still `spawning` although its spawn let go of the lock: the spawn died half-way.
            return Err(LifecycleError::Refused(format!(
                "{id}'s spawn was interrupted, so it never got its task; `ao-host session kill {id}` or `ao-host gc` cleans it up"
            )));
        }
        let handle = session.runtime_handle.clone().ok_or_else(|| {
            LifecycleError::Refused(format!(
                "{id} has no runtime (its spawn did not get that far); `ao-host gc` cleans it up"
            ))
        })?;
        Ok((session, handle, lock))
    }

    /// Delivers `text` to the session's agent byte-exact and submits it once.
    pub async fn send(
        &self,
        id: &str,
        text: &str,
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<(), LifecycleError> {
        validate_message(text).map_err(RequestError::from)?;
        let (session, handle, _lock) = self.live_locked(id, progress).await?;
        let plugins = self.plugins_of(&session).await?;
        if !plugins.runtime.is_alive(&handle).await? {
            let way_out = if self.conversation_of(&session).is_some() {
                format!("`ao-host session restore {id}` brings it back")
            } else {
                format!("`ao-host session kill {id}` archives it")
            };
            return Err(LifecycleError::Refused(format!(
                "{id} is not running any more; {way_out}"
            )));
        }
        // Reported but perhaps not drawn yet: the screen would not show it.
        if let Ok(Some(state)) = self.agent_states.read(&session.project_id, id) {
            let fresh = now_ms().saturating_sub(state.at) < super::status::WAIT_DRAWN_WITHIN_MS;
            if state.status == Some(ReportedStatus::WaitingInput) && fresh {
                return Err(LifecycleError::Refused(format!(
                    "{id} is waiting for an answer ({}); a message typed now would answer it, so nothing was sent: answer it in the session (`ao-host attach {id}`), then send again",
                    state.waiting_for.as_deref().unwrap_or("a prompt")
                )));
            }
        }
        let taken_before = self.prompts_taken(&session);
        deliver(&plugins.runtime, &plugins.agent, &handle, text).await?;
        self.confirm_taken(&session, taken_before, text).await;
        Ok(())
    }

    /// How many prompts an agent that reports events has taken; `None` for one read from its
    /// screen.
    fn prompts_taken(&self, session: &Session) -> Option<u64> {
        if !session.reports_events {
            return None;
        }
        match self
            .agent_states
            .last_prompt(&session.project_id, &session.id)
        {
            Ok(last) => Some(last.map_or(0, |(count, _)| count)),
            Err(_) => None,
        }
    }

    /// Confirms a message the screen showed taken the way a spawn confirms its task: an agent
    /// that reports events reports taking it (byte-exact) within [`REPORT_GRACE`]; one whose
    /// report does not come (its hooks did not run) is taken at its screen's word, which is
    /// logged.
    async fn confirm_taken(&self, session: &Session, before: Option<u64>, text: &str) {
        let Some(before) = before else {
            return;
        };
        let id = &session.id;
        let deadline = std::time::Instant::now() + REPORT_GRACE;
        loop {
            if let Ok(Some((count, prompt))) =
                self.agent_states.last_prompt(&session.project_id, id)
            {
                if count > before {
                    if prompt != text {
                        tracing::warn!(%id, "the agent reported taking the message altered: {}", super::deliver::first_difference(text, &prompt));
                    }
                    return;
                }
            }
            if std::time::Instant::now() >= deadline {
                tracing::info!(%id, "the agent did not report taking the message; its screen showed it taken");
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// An active session's runtime and handle, for calls that only look at it.
    async fn runtime_of(&self, id: &str) -> Result<(RuntimePlugin, String), LifecycleError> {
        self.session_runtime(&self.store.find(id)?).await
    }

    /// The runtime of `session` (on its host) and its handle.
    async fn session_runtime(
        &self,
        session: &Session,
    ) -> Result<(RuntimePlugin, String), LifecycleError> {
        let handle = session.runtime_handle.clone().ok_or_else(|| {
            LifecycleError::Refused(format!(
                "{} has no runtime yet (it is still spawning, or its spawn did not get that far)",
                session.id
            ))
        })?;
        let runtime = self
            .runtime_on(&session.runtime, session.host.as_deref())
            .await?;
        Ok((runtime, handle))
    }

    /// The argv that attaches an operator's terminal to the session: the runtime's own, run
    /// over ssh with a terminal for a session on another host.
    pub async fn attach_command(&self, id: &str) -> Result<Vec<String>, LifecycleError> {
        let session = self.store.find(id)?;
        let (runtime, handle) = self.session_runtime(&session).await?;
        let argv = runtime.attach_command(&handle).await?;
        if argv.is_empty() {
            return Err(LifecycleError::Refused(format!(
                "the {} runtime gave no attach command",
                runtime.name()
            )));
        }
        match &session.host {
            Some(host) => Ok(self.attach_on(host, &argv)?),
            None => Ok(argv),
        }
    }

    /// The last `lines` lines the session's agent shows; `styled` keeps their colours as ANSI
    /// SGR sequences (see `Runtime::capture_styled`).
    pub async fn screen(
        &self,
        id: &str,
        lines: u32,
        styled: bool,
    ) -> Result<String, LifecycleError> {
        let (runtime, handle) = self.runtime_of(id).await?;
        Ok(if styled {
            runtime.capture_styled(&handle, lines).await?
        } else {
            runtime.capture_output(&handle, lines).await?
        })
    }
}

/// Whether a plugin call's failure may pass if tried again: the host did not answer (a lost or
/// refused connection) or did not in time.
fn may_pass(error: &PluginCallError) -> bool {
    matches!(error, PluginCallError::Timeout { .. }) || error.kind() == PluginErrorKind::Unavailable
}
