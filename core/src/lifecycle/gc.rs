//! `gc`: reconcile session records with what the plugins own, after crashes, `kill -9`s and
//! hand-made messes — acting only on what it can prove.
//!
//! What is proof:
//! - a record it can read *and lock* that still says `spawning`: its spawner died (a live
//!   spawner holds the lock). Undone — runtime, workspace and branch destroyed — and archived as
//!   `errored`, so its id and branch name are never handed out again;
//! - a record it can read and lock whose runtime handle the runtime no longer lists: `exited`;
//! - a record it can read and lock that says `killing`: a kill stopped half-way, after its
//!   agent was stopped. Finished as the kill would have: workspace removed, archived `killed`;
//! - an archived (killed) session's branch that its workspace plugin finds merged and checked
//!   out nowhere: kills by releases up to v0.1.2 kept every branch;
//! - a runtime session or workspace that the plugin says belongs to *this* data dir (plugins tag
//!   what they make with it) and that no record names. Nothing of that kind is removed while any
//!   record is unreadable (it might name it) or a spawn in progress has not saved its handle or
//!   path yet;
//! - a lock file it can lock whose session has no active record: the session is over (lock
//!   takers check they hold the file still at the path, so removing it under the lock is safe);
//! - a temporary file whose writer (the pid in its name) is gone, or that is older than any
//!   write takes.
//!
//! Ordering makes the orphan rule sound against concurrent spawns: the plan asks plugins for what
//! they own *before* it reads records, and apply reads records again before it destroys. A spawn
//! reserves its record before it creates anything, so anything listed was made by a spawn whose
//! record (or lock) the later read sees.
//!
//! `gc --dry-run` prints the plan; `gc` applies it, checking each step again under the session's
//! lock, so a step whose reason went away meanwhile is skipped, not forced.
//!
//! Each configured host is reconciled like this machine, through the plugins built for it, and
//! only for what this data dir made there. A host that does not answer is skipped whole: its
//! sessions are never marked `exited`, and nothing there is removed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
};

use ao_plugin_api::{InterfaceKind, PluginErrorKind};
use serde::Serialize;

use super::{status::SpawnState, Lifecycle};
use crate::{
    config::PluginChoice,
    session::{Session, SessionStatus},
};

/// One line of `gc` output.
#[derive(Debug, Clone, Serialize)]
pub struct GcAction {
    /// What was (or, with --dry-run, would be) done.
    pub action: &'static str,
    pub target: String,
    /// Why, or why it was skipped or failed.
    pub detail: String,
    /// Whether it was, will be (a plan's step) or will not be done.
    pub outcome: GcOutcome,
    /// `outcome == Done`, kept for readers of `--json` from before `outcome`.
    pub done: bool,
}

/// What became (or, in a plan, will become) of one `gc` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcOutcome {
    /// In a plan: `gc` will do it (checking its reason again first).
    Planned,
    Done,
    /// Left alone: `detail` says why.
    Skipped,
    /// Tried, and it failed: `detail` says how (and `gc` exits with an error).
    Failed,
}

impl GcAction {
    fn new(
        action: &'static str,
        target: impl Into<String>,
        detail: impl Into<String>,
        outcome: GcOutcome,
    ) -> Self {
        Self {
            action,
            target: target.into(),
            detail: detail.into(),
            outcome,
            done: outcome == GcOutcome::Done,
        }
    }
}

/// Where a plugin's things are: this machine (`None`) or a host.
type Place = Option<String>;

/// Sessions a runtime no longer lists alive, by runtime and place: (project, id, handle).
type ExitCandidates = HashMap<(String, Place), Vec<(String, String, String)>>;

/// " on host `NAME`" for a place on another host, for messages.
fn on(place: &Place) -> String {
    place
        .as_ref()
        .map(|host| format!(" on host `{host}`"))
        .unwrap_or_default()
}

#[derive(Debug, Clone)]
enum Step {
    UndoInterruptedSpawn {
        project: String,
        id: String,
    },
    MarkExited {
        project: String,
        id: String,
    },
    /// A kill that stopped half-way (the record says `killing`).
    FinishKill {
        project: String,
        id: String,
    },
    DestroyOrphanRuntime {
        runtime: String,
        place: Place,
        handle: String,
    },
    RemoveOrphanWorkspace {
        workspace: String,
        place: Place,
        path: String,
    },
    RemoveTempFile(PathBuf),
    RemoveMergedBranch {
        workspace: String,
        repo: String,
        branch: String,
    },
    /// The lock file of a session that is over (no active record).
    RemoveLock {
        project: String,
        id: String,
    },
    /// What the watcher stored of a session that is over (no active record), its view and its
    /// ledger: they would otherwise linger in the watch folder.
    RemoveWatchFile {
        project: String,
        id: String,
    },
}

impl Step {
    fn describe(&self) -> (&'static str, String, String) {
        match self {
            Self::UndoInterruptedSpawn { id, .. } => (
                "undo interrupted spawn",
                id.clone(),
                "its spawn was interrupted (the ao-host process spawning it is gone)".into(),
            ),
            Self::MarkExited { id, .. } => (
                "mark exited",
                id.clone(),
                "its runtime session is gone".into(),
            ),
            Self::FinishKill { id, .. } => (
                "finish kill",
                id.clone(),
                "a kill stopped half-way: its workspace is left".into(),
            ),
            Self::DestroyOrphanRuntime {
                runtime,
                place,
                handle,
            } => (
                "destroy orphan runtime session",
                handle.clone(),
                format!(
                    "a {runtime} session of this data dir{} that no record names",
                    on(place)
                ),
            ),
            Self::RemoveOrphanWorkspace {
                workspace,
                place,
                path,
            } => (
                "remove orphan workspace",
                path.clone(),
                format!(
                    "a {workspace} workspace of this data dir{} that no record names",
                    on(place)
                ),
            ),
            Self::RemoveTempFile(path) => (
                "remove temporary file",
                path.display().to_string(),
                "left by a writer that died".into(),
            ),
            Self::RemoveMergedBranch { repo, branch, .. } => (
                "remove merged branch",
                branch.clone(),
                format!("of a killed session, merged in {repo} and checked out nowhere"),
            ),
            Self::RemoveLock { project, id } => (
                "remove lock file",
                format!("{project}/{id}"),
                "its session is over".into(),
            ),
            Self::RemoveWatchFile { project, id } => (
                "remove watch files",
                format!("{project}/{id}"),
                "its session is over".into(),
            ),
        }
    }
}

/// What `gc` would do: steps, and what it leaves alone and why.
#[derive(Debug, Default)]
pub struct GcPlan {
    steps: Vec<Step>,
    skipped: Vec<GcAction>,
}

impl GcPlan {
    /// The plan as `gc --dry-run` prints it.
    pub fn actions(&self) -> Vec<GcAction> {
        let mut actions: Vec<GcAction> = self
            .steps
            .iter()
            .map(|step| {
                let (action, target, detail) = step.describe();
                GcAction::new(action, target, detail, GcOutcome::Planned)
            })
            .collect();
        actions.extend(self.skipped.iter().cloned());
        actions
    }
}

fn skip(action: &'static str, target: impl Into<String>, detail: impl Into<String>) -> GcAction {
    GcAction::new(action, target, detail, GcOutcome::Skipped)
}

/// What the records say, read after the plugins were asked what they own.
#[derive(Default)]
struct Known {
    handles: HashSet<String>,
    paths: HashSet<String>,
    /// Why orphans must not be removed now (unreadable records, spawns without a handle yet).
    blockers: Vec<String>,
}

impl Lifecycle {
    /// Every handle and path the records name, and what stops orphan removal.
    fn known(&self) -> (Known, Vec<Session>) {
        let mut known = Known::default();
        known
            .blockers
            .extend(self.store.records_replaced().map(str::to_string));
        let active = self.store.list(None, false);
        for problem in &active.problems {
            known.blockers.push(format!("record unreadable: {problem}"));
        }
        for session in &active.sessions {
            known.handles.extend(session.runtime_handle.clone());
            known.paths.extend(session.workspace_path.clone());
            if session.status == SessionStatus::Spawning
                && (session.runtime_handle.is_none() || session.workspace_path.is_none())
            {
                match self.spawn_state(session) {
                    SpawnState::InProgress => known
                        .blockers
                        .push(format!("{} is being spawned right now", session.id)),
                    SpawnState::Unknown(why) => known
                        .blockers
                        .push(format!("{} cannot be checked ({why})", session.id)),
                    SpawnState::Interrupted(_) | SpawnState::Finished(_) => {}
                }
            }
        }
        let archived = self.store.list(None, true);
        for problem in &archived.problems {
            known.blockers.push(format!("record unreadable: {problem}"));
        }
        for session in &archived.sessions {
            // A killed session's workspace may be kept on purpose (`--keep-workspace`); an
            // errored one's is what its undo could not remove.
            // One removed by hand since is kept no more: what git still keeps of it is gc's.
            if session.status == SessionStatus::Killed {
                known
                    .paths
                    .extend(session.workspace_path.clone().filter(|path| {
                        session.host.is_some() || Path::new(path).symlink_metadata().is_ok()
                    }));
            }
        }
        (known, active.sessions)
    }

    /// Every plugin choice that may own something: the records', the defaults, the projects'.
    fn choices(&self, sessions: &[Session]) -> Vec<PluginChoice> {
        let mut choices = vec![self.config.defaults.clone()];
        choices.extend(self.config.projects.values().map(|p| p.plugins.clone()));
        choices.extend(sessions.iter().map(|s| PluginChoice {
            runtime: s.runtime.clone(),
            agent: s.agent.clone(),
            workspace: s.workspace.clone(),
        }));
        choices
    }

    /// A runtime's live handles (to tell which sessions exited) and every handle it owns, live
    /// or dead (orphans to remove: a dead pane kept for its last screen is one too). A runtime
    /// built before `owned_handles` existed owns what it lists as alive.
    async fn runtime_listing(
        &self,
        name: &str,
        place: &Place,
    ) -> Result<(HashSet<String>, Vec<String>), String> {
        let runtime = self
            .runtime_on(name, place.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        let alive = runtime.alive_handles().await.map_err(|e| e.to_string())?;
        let owned = match runtime.owned_handles().await {
            Ok(owned) => owned,
            Err(e) if e.kind() == PluginErrorKind::Unsupported => alive.clone(),
            Err(e) => return Err(e.to_string()),
        };
        Ok((alive.into_iter().collect(), owned))
    }

    /// Works out what `gc` would do, changing nothing. Plugins named in `skip` are never called
    /// (one that crashes the process must not stop the rest from being reconciled): what they
    /// own, and the sessions that use them, are left alone.
    pub async fn gc_plan(&self, force: bool, skip_plugins: &[String]) -> GcPlan {
        let mut plan = GcPlan::default();
        let skipped = |name: &String| skip_plugins.contains(name);
        // 1. What the plugins own, asked before the records that decide anything are read (see
        // the module docs). This first read only says which plugins to ask.
        let listing = self.store.list(None, false);
        let choices = self.choices(&listing.sessions);
        let runtimes: BTreeSet<String> = choices.iter().map(|c| c.runtime.clone()).collect();
        let workspaces: BTreeSet<String> = choices.iter().map(|c| c.workspace.clone()).collect();
        for name in runtimes.iter().chain(&workspaces).filter(|n| skipped(n)) {
            plan.skipped.push(skip(
                "ask plugin",
                name.clone(),
                "skipped (--skip-plugin): what it owns is left alone",
            ));
        }
        let runtimes: BTreeSet<String> = runtimes.into_iter().filter(|n| !skipped(n)).collect();
        let workspaces: BTreeSet<String> = workspaces.into_iter().filter(|n| !skipped(n)).collect();
        // This machine, and every host that answers; the others are left alone whole.
        let mut places: Vec<Place> = vec![None];
        let mut unanswered: HashMap<String, String> = HashMap::new();
        let mut hosts: BTreeSet<String> = self.hosts.keys().cloned().collect();
        hosts.extend(listing.sessions.iter().filter_map(|s| s.host.clone()));
        for host in hosts {
            match self.reach(&host).await {
                Ok(_) => places.push(Some(host)),
                Err(e) => {
                    plan.skipped.push(skip(
                        "reconcile host",
                        host.clone(),
                        format!(
                            "{e}; its sessions, and what this data dir made there, are left alone"
                        ),
                    ));
                    unanswered.insert(host, e.to_string());
                }
            }
        }
        let mut owned_handles = Vec::new();
        // Live handles of each runtime that could answer, by runtime and place.
        let mut alive_by_runtime: HashMap<(String, Place), HashSet<String>> = HashMap::new();
        for place in &places {
            for name in &runtimes {
                if place.is_some() && !self.registry.is_remote(InterfaceKind::Runtime, name) {
                    continue;
                }
                match self.runtime_listing(name, place).await {
                    Ok((alive, owned)) => {
                        alive_by_runtime.insert((name.clone(), place.clone()), alive);
                        owned_handles
                            .extend(owned.into_iter().map(|h| (name.clone(), place.clone(), h)));
                    }
                    Err(e) => plan.skipped.push(skip(
                        "list runtime sessions",
                        format!("{name}{}", on(place)),
                        e,
                    )),
                }
            }
        }
        let mut owned_paths = Vec::new();
        for place in &places {
            for name in &workspaces {
                if place.is_some() && !self.registry.is_remote(InterfaceKind::Workspace, name) {
                    continue;
                }
                let listed = match self.workspace_on(name, place.as_deref()).await {
                    Ok(workspace) => workspace.list_owned().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match listed {
                    Ok(paths) => owned_paths
                        .extend(paths.into_iter().map(|p| (name.clone(), place.clone(), p))),
                    Err(e) => plan.skipped.push(skip(
                        "list workspaces",
                        format!("{name}{}", on(place)),
                        e,
                    )),
                }
            }
        }

        // 2. The records.
        let (known, sessions) = self.known();
        let mut exit_candidates = ExitCandidates::new();
        for session in &sessions {
            let (project, id) = (session.project_id.clone(), session.id.clone());
            if let Some(why) = session.host.as_ref().and_then(|h| unanswered.get(h)) {
                plan.skipped.push(skip("check session", id, why.clone()));
                continue;
            }
            if let Some(name) = [&session.runtime, &session.workspace, &session.agent]
                .into_iter()
                .find(|name| skipped(name))
            {
                plan.skipped.push(skip(
                    "check session",
                    id,
                    format!("uses the skipped plugin `{name}`"),
                ));
                continue;
            }
            if session.status == SessionStatus::Spawning {
                match self.spawn_state(session) {
                    SpawnState::Interrupted(_) => {
                        plan.steps.push(Step::UndoInterruptedSpawn { project, id })
                    }
                    SpawnState::Unknown(why) => plan.skipped.push(skip("check session", id, why)),
                    SpawnState::InProgress | SpawnState::Finished(_) => {}
                }
                continue;
            }
            if session.status == SessionStatus::Killing {
                plan.steps.push(Step::FinishKill { project, id });
                continue;
            }
            let Some(handle) = &session.runtime_handle else {
                continue;
            };
            if session.status == SessionStatus::Exited {
                continue;
            }
            let key = (session.runtime.clone(), session.host.clone());
            if alive_by_runtime
                .get(&key)
                .is_some_and(|alive| !alive.contains(handle))
            {
                exit_candidates
                    .entry(key)
                    .or_default()
                    .push((project, id, handle.clone()));
            }
        }
        // Not listed alive is not yet gone: a runtime answers "not found" for a session that is
        // gone, but an error for one it cannot reach from here (a tmux session on another
        // server), which is left alone.
        for ((runtime, place), candidates) in exit_candidates {
            let handles = candidates.iter().map(|(_, _, h)| h.clone()).collect();
            let answers: Vec<Result<(), String>> =
                match self.runtime_on(&runtime, place.as_deref()).await {
                    Err(e) => vec![Err(e.to_string()); candidates.len()],
                    Ok(plugin) => match plugin.capture_outputs(handles, 1).await {
                        // Built before `capture_outputs`: not listed alive is all it can say.
                        Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                            vec![Ok(()); candidates.len()]
                        }
                        Err(e) => vec![Err(e.to_string()); candidates.len()],
                        Ok(screens) => screens
                            .into_iter()
                            .map(|screen| match screen {
                                Ok(_) => Ok(()),
                                Err(e) if e.kind == PluginErrorKind::NotFound => Ok(()),
                                Err(e) => Err(e.to_string()),
                            })
                            .collect(),
                    },
                };
            for ((project, id, _), answer) in candidates.into_iter().zip(answers) {
                match answer {
                    Ok(()) => plan.steps.push(Step::MarkExited { project, id }),
                    Err(why) => plan.skipped.push(skip("mark exited", id, why)),
                }
            }
        }

        // 3. Orphans.
        let orphan_runtimes: Vec<_> = owned_handles
            .into_iter()
            .filter(|(_, _, h)| !known.handles.contains(h))
            .collect();
        let orphan_paths: Vec<_> = owned_paths
            .into_iter()
            .filter(|(_, _, p)| !known.paths.contains(p))
            .collect();
        let any_orphan = !orphan_runtimes.is_empty() || !orphan_paths.is_empty();
        if any_orphan && !known.blockers.is_empty() {
            let why = format!(
                "not removed while {}; run gc again when that is resolved",
                known.blockers.join("; ")
            );
            for (_, _, handle) in orphan_runtimes {
                plan.skipped
                    .push(skip("destroy orphan runtime session", handle, why.clone()));
            }
            for (_, _, path) in orphan_paths {
                plan.skipped
                    .push(skip("remove orphan workspace", path, why.clone()));
            }
        } else {
            for (runtime, place, handle) in orphan_runtimes {
                plan.steps.push(Step::DestroyOrphanRuntime {
                    runtime,
                    place,
                    handle,
                });
            }
            for (workspace, place, path) in orphan_paths {
                if !force {
                    let unsaved = match self.workspace_on(&workspace, place.as_deref()).await {
                        Ok(plugin) => plugin
                            .has_unsaved_work(&path)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match unsaved {
                        Ok(false) => {}
                        Ok(true) => {
                            plan.skipped.push(skip(
                                "remove orphan workspace",
                                path,
                                "no record names it, but it holds uncommitted changes; `ao-host gc --force` removes it",
                            ));
                            continue;
                        }
                        Err(e) => {
                            plan.skipped.push(skip("remove orphan workspace", path, e));
                            continue;
                        }
                    }
                }
                plan.steps.push(Step::RemoveOrphanWorkspace {
                    workspace,
                    place,
                    path,
                });
            }
        }
        plan.steps.extend(
            self.store
                .stale_temp_files()
                .into_iter()
                .chain(self.agent_states.stale_temp_files())
                .map(Step::RemoveTempFile),
        );
        self.plan_merged_branches(&mut plan, skip_plugins).await;
        plan.steps.extend(
            self.store
                .locks()
                .locked_sessions()
                .into_iter()
                .filter(|(project, id)| matches!(self.store.reread(project, id), Ok(None)))
                .map(|(project, id)| Step::RemoveLock { project, id }),
        );
        plan.steps.extend(
            self.watch_dir()
                .stored_sessions()
                .into_iter()
                .filter(|(project, id)| matches!(self.store.reread(project, id), Ok(None)))
                .map(|(project, id)| Step::RemoveWatchFile { project, id }),
        );
        plan
    }

    /// Step 4 of a plan: killed sessions' branches that are merged, asked once per workspace
    /// plugin and project (kills by releases up to v0.1.2 kept them all).
    async fn plan_merged_branches(&self, plan: &mut GcPlan, skip_plugins: &[String]) {
        let mut branches: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for session in self.store.list(None, true).sessions {
            if session.status == SessionStatus::Killed
                && session.host.is_none()
                && !skip_plugins.contains(&session.workspace)
            {
                branches
                    .entry((session.workspace, session.project_id))
                    .or_default()
                    .push(session.branch);
            }
        }
        for ((workspace, project), branches) in branches {
            let Some(repo) = self
                .config
                .projects
                .get(&project)
                .map(|p| p.repo.display().to_string())
            else {
                continue;
            };
            let merged = match self.workspace_on(&workspace, None).await {
                Ok(plugin) => plugin.remove_merged_branches(&repo, branches, true).await,
                Err(e) => {
                    plan.skipped
                        .push(skip("remove merged branches", project, e.to_string()));
                    continue;
                }
            };
            match merged {
                Ok(merged) => {
                    plan.steps
                        .extend(merged.into_iter().map(|branch| Step::RemoveMergedBranch {
                            workspace: workspace.clone(),
                            repo: repo.clone(),
                            branch,
                        }))
                }
                Err(e) if e.kind() == PluginErrorKind::Unsupported => {}
                Err(e) => plan
                    .skipped
                    .push(skip("remove merged branches", project, e.to_string())),
            }
        }
    }

    /// Carries out `plan`, checking each step again first.
    pub async fn gc_apply(&self, plan: GcPlan) -> Vec<GcAction> {
        let mut actions = Vec::new();
        let (known, _) = self.known();
        for step in plan.steps {
            let (action, target, detail) = step.describe();
            let outcome = self.apply_step(&step, &known).await;
            actions.push(match outcome {
                Ok(None) => GcAction::new(action, target, detail, GcOutcome::Done),
                Ok(Some(reason)) => skip(action, target, reason),
                Err(e) => {
                    GcAction::new(action, target, format!("{detail}; {e}"), GcOutcome::Failed)
                }
            });
        }
        actions.extend(plan.skipped);
        actions
    }

    /// Runs one step; `Ok(Some(reason))` when its reason no longer holds.
    async fn apply_step(&self, step: &Step, known: &Known) -> Result<Option<String>, String> {
        let orphan_blocked = || {
            (!known.blockers.is_empty())
                .then(|| format!("not removed while {}", known.blockers.join("; ")))
        };
        match step {
            Step::UndoInterruptedSpawn { project, id }
            | Step::MarkExited { project, id }
            | Step::FinishKill { project, id } => {
                let Some(lock) = self
                    .store
                    .locks()
                    .try_lock(project, id)
                    .map_err(|e| e.to_string())?
                else {
                    return Ok(Some(format!(
                        "busy: {} is acting on it",
                        self.store.locks().holder(project, id)
                    )));
                };
                let Some(session) = self.store.reread(project, id).map_err(|e| e.to_string())?
                else {
                    return Ok(Some("the record is gone".into()));
                };
                match step {
                    Step::UndoInterruptedSpawn { .. } => {
                        if session.status != SessionStatus::Spawning {
                            return Ok(Some("its spawn finished after all".into()));
                        }
                        self.undo_interrupted(&session).await?;
                        lock.remove();
                        Ok(None)
                    }
                    Step::FinishKill { .. } => {
                        if session.status != SessionStatus::Killing {
                            return Ok(Some("its kill was finished meanwhile".into()));
                        }
                        self.kill_locked(&session, false, false, false)
                            .await
                            .map_err(|e| e.to_string())?;
                        lock.remove();
                        Ok(None)
                    }
                    _ => self.mark_exited(&session).await,
                }
            }
            Step::DestroyOrphanRuntime {
                runtime,
                place,
                handle,
            } => {
                if let Some(reason) = orphan_blocked() {
                    return Ok(Some(reason));
                }
                if known.handles.contains(handle) {
                    return Ok(Some("a record names it now".into()));
                }
                let plugin = self
                    .runtime_on(runtime, place.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                plugin.destroy(handle).await.map_err(|e| e.to_string())?;
                Ok(None)
            }
            Step::RemoveOrphanWorkspace {
                workspace,
                place,
                path,
            } => {
                if let Some(reason) = orphan_blocked() {
                    return Ok(Some(reason));
                }
                if known.paths.contains(path) {
                    return Ok(Some("a record names it now".into()));
                }
                let plugin = self
                    .workspace_on(workspace, place.as_deref())
                    .await
                    .map_err(|e| e.to_string())?;
                plugin
                    .destroy(path, false)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(None)
            }
            Step::RemoveMergedBranch {
                workspace,
                repo,
                branch,
            } => {
                let plugin = self
                    .workspace_on(workspace, None)
                    .await
                    .map_err(|e| e.to_string())?;
                let removed = plugin
                    .remove_merged_branches(repo, vec![branch.clone()], false)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(removed
                    .is_empty()
                    .then(|| "no longer merged, or checked out now".into()))
            }
            Step::RemoveLock { project, id } => {
                let locks = self.store.locks();
                let Some(lock) = locks.try_lock(project, id).map_err(|e| e.to_string())? else {
                    return Ok(Some(format!(
                        "busy: {} is acting on it",
                        locks.holder(project, id)
                    )));
                };
                match self.store.reread(project, id) {
                    Ok(None) => {
                        lock.remove();
                        Ok(None)
                    }
                    Ok(Some(_)) => Ok(Some("a record names it now".into())),
                    Err(e) => Ok(Some(e.to_string())),
                }
            }
            // No lock taken: an id without an active record is never handed out again, so
            // nothing can come to own this file meanwhile.
            Step::RemoveWatchFile { project, id } => match self.store.reread(project, id) {
                Ok(None) => {
                    let watch = self.watch_dir();
                    watch
                        .remove_session(project, id)
                        .and_then(|()| watch.remove_ledger(project, id))
                        .map(|()| None)
                        .map_err(|e| e.to_string())
                }
                Ok(Some(_)) => Ok(Some("a record names it now".into())),
                Err(e) => Ok(Some(e.to_string())),
            },
            Step::RemoveTempFile(path) => match std::fs::remove_file(path) {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(Some("already gone".into()))
                }
                Err(e) => Err(e.to_string()),
            },
        }
    }

    /// Destroys what an interrupted spawn made (its branch too: no work was done on it) and
    /// archives the record as `errored`. The caller holds the lock.
    async fn undo_interrupted(&self, session: &Session) -> Result<(), String> {
        let plugins = self.plugins_of(session).await.map_err(|e| e.to_string())?;
        self.stop_runtime(session, &plugins)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(path) = &session.workspace_path {
            plugins
                .workspace
                .destroy(path, true)
                .await
                .map_err(|e| e.to_string())?;
        }
        self.forget_session_files(session, &plugins).await;
        let note = "its spawn was interrupted; `ao-host gc` removed what it had made".to_string();
        self.store
            .archive(session, SessionStatus::Errored, Some(note))
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Marks a session `exited` if its runtime still says it is gone. The caller holds the lock.
    async fn mark_exited(&self, session: &Session) -> Result<Option<String>, String> {
        let Some(handle) = &session.runtime_handle else {
            return Ok(Some("it has no runtime".into()));
        };
        let runtime = self
            .runtime_on(&session.runtime, session.host.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        if runtime.is_alive(handle).await.map_err(|e| e.to_string())? {
            return Ok(Some("its runtime is alive after all".into()));
        }
        let mut exited = session.clone();
        exited.status = SessionStatus::Exited;
        exited.activity_at = Some(crate::session::now_ms());
        self.store.save(&exited).map_err(|e| e.to_string())?;
        Ok(None)
    }
}
