//! Listing sessions with their status as it is now, not as last recorded.
//!
//! An agent that reports events (`ao-host hook`) is taken at its word: its state file says what
//! it does, and its screen is not read, except to confirm a wait (refusing a permission fires no
//! event) or an exit its runtime does not confirm. For the others, each runtime is asked once
//! for its live handles and once for all their screens (`Runtime::capture_outputs`, one round
//! trip for the tmux runtime however many sessions there are); runtimes are asked concurrently, and each screen is judged by its agent plugin
//! concurrently. A runtime built before `capture_outputs` existed is asked per session instead,
//! at most [`MAX_CONCURRENT_PROBES`] at a time, so a thousand sessions never start a thousand
//! programs at once.
//!
//! Sessions on other hosts are asked through the runtime built for their host, all hosts at
//! once; a host is first asked whether it answers at all, within its own deadline (see
//! [`super::hosts`]), and when it does not, its sessions are `connecting` or `unreachable`
//! (never `exited`: nothing is known about them), and nothing is recorded. A live feed lists
//! each host's sessions apart ([`Lifecycle::list_lane`]), so one never waits on another.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::Path,
};

use ao_plugin_api::{Activity, PluginError, PluginErrorKind};
use futures_util::future::join_all;
use tokio::sync::Semaphore;

use super::{
    deliver::SCREEN_LINES, events::record_event, hosts::Unanswered, Lifecycle, LifecycleError,
    LISTING_READ_BYTES,
};
use crate::{
    config::validate_project_arg,
    plugins::RuntimePlugin,
    session::{now_ms, AgentEvent, AgentState, ReportedStatus, Session, SessionStatus},
};

/// How long an agent may take to draw a wait it has reported (Claude Code reports a permission
/// prompt ~100 ms before it shows it).
pub(super) const WAIT_DRAWN_WITHIN_MS: u64 = 2000;

/// Screens read at the same time from a runtime that can only be asked one at a time.
const MAX_CONCURRENT_PROBES: usize = 16;

/// Sessions and the records that could not be read (reported, never fatal).
#[derive(Debug, Default)]
pub struct SessionListing {
    pub sessions: Vec<Session>,
    pub problems: Vec<String>,
}

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
        let mut sessions = listing.sessions;
        if archived {
            self.attach_ended_usage(&mut sessions);
        } else {
            self.refresh(&mut sessions).await;
            self.attach_usage(&mut sessions, LISTING_READ_BYTES).await;
        }
        Ok(SessionListing { sessions, problems })
    }

    /// The active sessions of one lane (see [`Lifecycle::lanes`]) with live status; the records
    /// that could not be read come with this machine's lane.
    pub(crate) async fn list_lane(&self, lane: Option<&str>) -> SessionListing {
        let listing = self.store.list(None, false);
        let problems = match lane {
            None => listing.problems.iter().map(ToString::to_string).collect(),
            Some(_) => Vec::new(),
        };
        let mut sessions: Vec<Session> = listing
            .sessions
            .into_iter()
            .filter(|session| self.in_lane(session, lane))
            .collect();
        self.refresh(&mut sessions).await;
        SessionListing { sessions, problems }
    }

    /// Replaces each session's recorded status with what its runtime and agent say now.
    async fn refresh(&self, sessions: &mut [Session]) {
        for session in sessions.iter_mut() {
            if session.status == SessionStatus::Spawning {
                match self.spawn_state(session) {
                    SpawnState::InProgress => {}
                    SpawnState::Unknown(note) => session.note = Some(note),
                    SpawnState::Finished(now) => *session = *now,
                    SpawnState::Interrupted(note) => {
                        session.status = SessionStatus::Errored;
                        session.note = Some(note);
                    }
                }
            }
        }
        // Which sessions have state at all, one folder listing per project.
        let mut with_state: HashMap<&str, HashSet<String>> = HashMap::new();
        for session in sessions.iter() {
            with_state
                .entry(session.project_id.as_str())
                .or_insert_with(|| self.agent_states.sessions_with_state(&session.project_id));
        }
        let has_state =
            |session: &Session| with_state[session.project_id.as_str()].contains(&session.id);
        // What the agents that report events said last. What this listing sees for itself is
        // recorded for them only if nothing newer arrived since this read.
        let read: Vec<Option<AgentState>> = sessions
            .iter()
            .map(|session| {
                if !session.reads_events() || !has_state(session) {
                    return None;
                }
                match self.agent_states.read(&session.project_id, &session.id) {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::warn!(id = %session.id, "{e}; reading its screen instead");
                        None
                    }
                }
            })
            .collect();
        let recordable: Vec<bool> = sessions.iter().map(has_state).collect();
        drop(with_state);
        // The sessions whose own reports are taken; the others' screens are read.
        let states: Vec<Option<AgentState>> = sessions
            .iter_mut()
            .zip(&read)
            .map(|(session, state)| {
                let state = state.as_ref().filter(|s| session.reads_events() && s.status.is_some())?;
                if let Some(program) = state.program.as_deref().filter(|p| !Path::new(p).exists()) {
                    session.note = Some(format!(
                        "its agent's hooks run {program}, which is gone, so its status is read from its screen; sessions spawned or restored from now on report again"
                    ));
                    return None;
                }
                Some(state.clone())
            })
            .collect();
        // The sessions whose runtime is to be asked, by runtime and host: (index, handle, screen
        // wanted).
        let mut by_runtime: BTreeMap<(String, Option<String>), Vec<Probe>> = BTreeMap::new();
        for (i, session) in sessions.iter().enumerate() {
            // A session being killed is what its record says until the kill finishes: its
            // runtime going away is the kill's doing, not an exit.
            if matches!(
                session.status,
                SessionStatus::Spawning | SessionStatus::Errored | SessionStatus::Killing
            ) {
                continue;
            }
            if let Some(handle) = &session.runtime_handle {
                by_runtime
                    .entry((session.runtime.clone(), session.host.clone()))
                    .or_default()
                    .push(Probe {
                        index: i,
                        handle: handle.clone(),
                        screen: states[i].as_ref().is_none_or(|state| match state.status {
                            // A wait the operator ended by refusing fires no event, so a
                            // session that has said for a while that it waits is checked
                            // against its screen. Not at once: the agent may report the wait
                            // before it draws it.
                            Some(ReportedStatus::WaitingInput) => {
                                now_ms().saturating_sub(state.at) >= WAIT_DRAWN_WITHIN_MS
                            }
                            // An agent that said it exited is gone only if its runtime says
                            // so; one still running (an end event that was not one) is judged
                            // by its screen, so it is not `exited` forever.
                            Some(ReportedStatus::Exited) => true,
                            _ => false,
                        }),
                    });
            }
        }
        // Every host once, all at once, each within its own deadline: does it answer?
        let hosts: HashSet<String> = by_runtime.keys().filter_map(|(_, h)| h.clone()).collect();
        let answers: HashMap<String, Option<Unanswered>> =
            join_all(hosts.into_iter().map(|host| async move {
                let unanswered = self.answer(&host).await.err();
                (host, unanswered)
            }))
            .await
            .into_iter()
            .collect();
        let screens = join_all(by_runtime.into_iter().map(|((name, host), wanted)| {
            let unanswered = host.as_ref().and_then(|h| answers[h].clone());
            async move {
                match unanswered {
                    Some(why) => wanted
                        .into_iter()
                        .map(|probe| (probe.index, Screen::Unanswered(why.clone())))
                        .collect(),
                    None => self.screens_of(name, host, wanted).await,
                }
            }
        }))
        .await;
        let mut judged = Vec::new();
        let mut observed: Vec<(usize, ReportedStatus, Option<String>)> = Vec::new();
        for (i, screen) in screens.into_iter().flatten() {
            match screen {
                Screen::Gone => observed.push((i, ReportedStatus::Exited, None)),
                Screen::Unknown(reason) => {
                    sessions[i].note = Some(format!("status not checked: {reason}"))
                }
                Screen::Unanswered(why) => why.mark(&mut sessions[i]),
                Screen::Alive => {
                    let state = states[i]
                        .as_ref()
                        .expect("only sessions with state skip the screen");
                    let session = &mut sessions[i];
                    session.status = state.status.expect("filtered above").into();
                    session.activity_at = Some(state.at);
                    session.waiting_for = state.waiting_for.clone();
                }
                Screen::Shown(text) => judged.push((i, text)),
            }
        }
        let activities = join_all(judged.into_iter().map(|(i, screen)| {
            let agent = sessions[i].agent.clone();
            async move {
                let activity = match self.agent(&agent).await {
                    Ok(agent) => agent.activity(&screen).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (i, activity)
            }
        }))
        .await;
        for (i, activity) in activities {
            let reported_wait = states[i]
                .as_ref()
                .filter(|state| state.status == Some(ReportedStatus::WaitingInput));
            if let (Some(state), false) = (reported_wait, matches!(activity, Ok(Activity::Idle))) {
                // Only a screen that positively shows the agent idle overrides its own report
                // of a wait (a prompt of a kind the screen reader does not know is no proof).
                let session = &mut sessions[i];
                session.status = SessionStatus::WaitingInput;
                session.activity_at = Some(state.at);
                session.waiting_for = state.waiting_for.clone();
                continue;
            }
            let status = match activity {
                Ok(Activity::Idle) => ReportedStatus::Idle,
                Ok(Activity::Working) => ReportedStatus::Working,
                Ok(Activity::WaitingInput) => ReportedStatus::WaitingInput,
                Ok(Activity::Exited) => ReportedStatus::Exited,
                Err(e) => {
                    sessions[i].note = Some(format!("status not checked: {e}"));
                    continue;
                }
            };
            observed.push((i, status, None));
        }
        // What this listing saw for itself (a screen, a runtime gone) is recorded like an
        // agent's event, so the change notifies once and later listings know since when.
        for (i, status, waiting_for) in observed {
            let session = &mut sessions[i];
            session.status = status.into();
            if !recordable[i] {
                continue;
            }
            let event = AgentEvent {
                status,
                waiting_for,
                prompt: None,
                conversation: None,
            };
            // Only an agent's hooks write besides listings; for the others, no race to lose.
            let seen = read[i].as_ref().map(|state| state.changes);
            match record_event(
                self.store.data_dir(),
                &session.project_id,
                &session.id,
                event,
                seen,
                self.config.notify.as_ref(),
            ) {
                Ok(Some(change)) => session.activity_at = Some(change.at),
                Ok(None) => {}
                Err(e) => tracing::warn!(id = %session.id, "recording its status: {e}"),
            }
        }
    }

    /// The screens of `wanted` sessions of runtime `name` on `host`: one `alive_handles` call,
    /// then one `capture_outputs` call for the live ones.
    async fn screens_of(
        &self,
        name: String,
        host: Option<String>,
        wanted: Vec<Probe>,
    ) -> Vec<(usize, Screen)> {
        let unknown = |reason: String| {
            wanted
                .iter()
                .map(|probe| (probe.index, Screen::Unknown(reason.clone())))
                .collect()
        };
        let runtime = match self.runtime_on(&name, host.as_deref()).await {
            Ok(runtime) => runtime,
            Err(e) => return unknown(e.to_string()),
        };
        let alive: HashSet<String> = match runtime.alive_handles().await {
            Ok(handles) => handles.into_iter().collect(),
            Err(e) => return unknown(e.to_string()),
        };
        // A live session whose agent reports events is not looked at.
        let (unseen, wanted): (Vec<Probe>, Vec<Probe>) = wanted
            .into_iter()
            .partition(|probe| !probe.screen && alive.contains(&probe.handle));
        let mut screens: Vec<(usize, Screen)> = unseen
            .into_iter()
            .map(|probe| (probe.index, Screen::Alive))
            .collect();
        // Every other session's screen is asked for, the ones not listed alive too: a runtime
        // answers "not found" for a session that is gone, but an error for one it cannot
        // reach (a tmux session on another server), which must not pass for `exited`.
        let handles: Vec<String> = wanted.iter().map(|probe| probe.handle.clone()).collect();
        if handles.is_empty() {
            return screens;
        }
        let captured = match runtime.capture_outputs(handles.clone(), SCREEN_LINES).await {
            Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                let live: Vec<String> = handles
                    .iter()
                    .filter(|h| alive.contains(*h))
                    .cloned()
                    .collect();
                let mut screens = one_by_one(&runtime, &live).await.into_iter();
                handles
                    .iter()
                    .map(|h| {
                        if alive.contains(h) {
                            screens.next().expect("one screen per live handle")
                        } else {
                            Err(PluginError::not_found("not alive"))
                        }
                    })
                    .collect()
            }
            Err(e) => {
                let reason = e.to_string();
                screens.extend(
                    wanted
                        .iter()
                        .map(|probe| (probe.index, Screen::Unknown(reason.clone()))),
                );
                return screens;
            }
            Ok(captured) => captured,
        };
        screens.extend(wanted.into_iter().zip(captured).map(|(probe, screen)| {
            let screen = match screen {
                Ok(text) if alive.contains(&probe.handle) => Screen::Shown(text),
                // A pane kept after its agent exited, or a session gone meanwhile.
                Ok(_) => Screen::Gone,
                Err(e) if e.kind == PluginErrorKind::NotFound => Screen::Gone,
                Err(e) => Screen::Unknown(e.to_string()),
            };
            (probe.index, screen)
        }));
        screens
    }

    /// Whether a record that says `spawning` is being spawned right now. The lock is probed
    /// first and the record read again after: a spawn saves its final record before it lets go
    /// of the lock, so a free lock and a record still `spawning` prove the spawner died.
    pub(super) fn spawn_state(&self, session: &Session) -> SpawnState {
        let locks = self.store.locks();
        match locks.is_held(&session.project_id, &session.id) {
            Ok(true) => return SpawnState::InProgress,
            Ok(false) => {}
            Err(e) => return SpawnState::Unknown(format!("its lock cannot be checked: {e}")),
        }
        match self.store.reread(&session.project_id, &session.id) {
            Ok(Some(now)) if now.status != SessionStatus::Spawning => {
                SpawnState::Finished(Box::new(now))
            }
            Ok(_) => SpawnState::Interrupted(
                "its spawn was interrupted (the ao-host process spawning it is gone); `ao-host gc` cleans it up".into(),
            ),
            Err(e) => SpawnState::Unknown(e.to_string()),
        }
    }
}

/// Screens asked one session at a time, a bounded number at once (runtimes built before
/// `capture_outputs` existed).
async fn one_by_one(
    runtime: &RuntimePlugin,
    handles: &[String],
) -> Vec<Result<String, PluginError>> {
    let probes = Semaphore::new(MAX_CONCURRENT_PROBES);
    join_all(handles.iter().map(|handle| async {
        let _permit = probes.acquire().await;
        runtime
            .capture_output(handle, SCREEN_LINES)
            .await
            .map_err(|e| PluginError::new(e.kind(), e.to_string()))
    }))
    .await
}

/// One session a runtime is asked about.
struct Probe {
    index: usize,
    handle: String,
    /// Its screen is wanted (its agent reports no events, or none yet).
    screen: bool,
}

/// What a runtime showed of one session.
enum Screen {
    Shown(String),
    /// Alive; its screen was not read (its agent reports events).
    Alive,
    /// The runtime no longer has it.
    Gone,
    /// The runtime could not say, and why.
    Unknown(String),
    /// Its host does not answer (yet), and why.
    Unanswered(Unanswered),
}

/// What became of a record that said `spawning` when it was read.
pub(super) enum SpawnState {
    InProgress,
    Finished(Box<Session>),
    Interrupted(String),
    /// Cannot tell (the lock or the record cannot be read): treated as in progress, so nothing
    /// acts on it, and reported.
    Unknown(String),
}
