//! `ao-host gc`: reconcile session records with what the plugins actually own, after crashes,
//! `kill -9`s and hand-made messes.
//!
//! - a record whose spawn was interrupted: its runtime and workspace (and branch: no work was
//!   done on it) are destroyed and the record removed, as the spawn itself would have;
//! - a record whose runtime is gone: marked `exited`;
//! - a runtime session ao-host made that no record names: destroyed;
//! - a workspace a plugin made that no record (active or archived) names: removed, unless it
//!   holds uncommitted work (then only with `--force`), and never while a spawn is in progress;
//! - temporary files of writers that died: removed.

use std::{collections::HashSet, process::ExitCode};

use anyhow::Result;
use ao_host::{
    plugins::PluginSet,
    session::{SessionStatus, SessionStore},
};
use serde::Serialize;

use super::{
    print_json,
    session::{open_store, PluginCache},
    AppContext,
};

#[derive(Debug, Serialize)]
struct GcAction {
    /// What was (or, with --dry-run, would be) done.
    action: &'static str,
    target: String,
    /// Why, or why it was skipped or failed.
    detail: String,
    /// False for a skipped or failed action, and for everything under --dry-run.
    done: bool,
}

struct Gc<'a> {
    dry_run: bool,
    actions: Vec<GcAction>,
    plugins: PluginCache<'a>,
}

impl Gc<'_> {
    /// Records an action, running it unless this is a dry run.
    async fn act<F>(&mut self, action: &'static str, target: String, detail: String, run: F)
    where
        F: std::future::Future<Output = Result<()>>,
    {
        let (done, detail) = if self.dry_run {
            (false, detail)
        } else {
            match run.await {
                Ok(()) => (true, detail),
                Err(e) => (false, format!("{detail}; failed: {e:#}")),
            }
        };
        self.actions.push(GcAction {
            action,
            target,
            detail,
            done,
        });
    }

    fn skip(&mut self, action: &'static str, target: String, detail: String) {
        self.actions.push(GcAction {
            action,
            target,
            detail,
            done: false,
        });
    }
}

pub async fn run(context: &AppContext, dry_run: bool, force: bool, json: bool) -> Result<ExitCode> {
    let store = open_store(context)?;
    let mut gc = Gc {
        dry_run,
        actions: Vec::new(),
        plugins: PluginCache::new(context),
    };
    let listing = store.list(None, false);
    let archived = store.list(None, true);
    let mut sets: Vec<PluginSet> = Vec::new();
    let mut spawn_in_progress = false;
    let mut known_handles = HashSet::new();
    let mut known_paths = HashSet::new();
    for session in archived.sessions.iter() {
        known_paths.extend(session.workspace_path.clone());
    }

    for session in listing.sessions {
        let set = match gc.plugins.for_session(&session) {
            Ok(set) => set,
            Err(reason) => {
                gc.skip("check session", session.id.clone(), reason);
                continue;
            }
        };
        if !sets.iter().any(|s| {
            s.runtime.name() == set.runtime.name() && s.workspace.name() == set.workspace.name()
        }) {
            sets.push(set.clone());
        }
        if let Some(pid) = session.interrupted_spawner() {
            let detail = format!("its spawn was interrupted (ao-host process {pid} is gone)");
            gc.act(
                "remove interrupted spawn",
                session.id.clone(),
                detail,
                async {
                    if let Some(handle) = &session.runtime_handle {
                        set.runtime.destroy(handle).await?;
                    }
                    if let Some(path) = &session.workspace_path {
                        set.workspace.destroy(path, true).await?;
                    }
                    store.delete(&session.project_id, &session.id)?;
                    Ok(())
                },
            )
            .await;
            continue;
        }
        // Known, so never an orphan, even mid-spawn (its handle and path may not be saved yet).
        known_handles.insert(session.id.clone());
        known_handles.extend(session.runtime_handle.clone());
        known_paths.extend(session.workspace_path.clone());
        if session.spawned_by_pid.is_some() {
            spawn_in_progress = true;
        }
        let Some(handle) = session.runtime_handle.clone() else {
            continue;
        };
        let alive = gc.plugins.is_alive(&set, &handle).await;
        match alive {
            Ok(false) if session.status != SessionStatus::Exited => {
                let detail = "its runtime session is gone".to_string();
                let store: &SessionStore = &store;
                gc.act("mark exited", session.id.clone(), detail, async {
                    let mut exited = session.clone();
                    exited.status = SessionStatus::Exited;
                    store.save(&exited)?;
                    Ok(())
                })
                .await;
            }
            Err(reason) => gc.skip("check session", session.id.clone(), reason),
            _ => {}
        }
    }
    for problem in &listing.problems {
        gc.skip("read record", String::new(), problem.to_string());
    }

    // Plugins the config would use, so orphans of a runtime no record names are found too.
    if let Ok(set) = context.plugin_set(&context.config.defaults) {
        if !sets.iter().any(|s| {
            s.runtime.name() == set.runtime.name() && s.workspace.name() == set.workspace.name()
        }) {
            sets.push(set);
        }
    }
    let mut seen_runtimes = HashSet::new();
    let mut seen_workspaces = HashSet::new();
    for set in &sets {
        if seen_runtimes.insert(set.runtime.name().to_string()) {
            match set.runtime.alive_handles().await {
                Ok(handles) => {
                    for handle in handles.into_iter().filter(|h| !known_handles.contains(h)) {
                        let detail = format!("{} session no record names", set.runtime.name());
                        gc.act(
                            "destroy orphan runtime session",
                            handle.clone(),
                            detail,
                            async { Ok(set.runtime.destroy(&handle).await?) },
                        )
                        .await;
                    }
                }
                Err(e) => gc.skip(
                    "list runtime sessions",
                    set.runtime.name().to_string(),
                    e.to_string(),
                ),
            }
        }
        if seen_workspaces.insert(set.workspace.name().to_string()) {
            if spawn_in_progress {
                gc.skip(
                    "list workspaces",
                    set.workspace.name().to_string(),
                    "a spawn is in progress; run gc again when it is done".into(),
                );
                continue;
            }
            match set.workspace.list_owned().await {
                Ok(paths) => {
                    for path in paths.into_iter().filter(|p| !known_paths.contains(p)) {
                        let unsaved = set.workspace.has_unsaved_work(&path).await;
                        match unsaved {
                            Ok(true) if !force => gc.skip(
                                "remove orphan workspace",
                                path,
                                "no record names it, but it holds uncommitted changes; `ao-host gc --force` removes it".into(),
                            ),
                            Err(e) if !force => gc.skip("remove orphan workspace", path, e.to_string()),
                            _ => {
                                let detail = "no record names it".to_string();
                                gc.act("remove orphan workspace", path.clone(), detail, async {
                                    Ok(set.workspace.destroy(&path, false).await?)
                                })
                                .await;
                            }
                        }
                    }
                }
                Err(e) => gc.skip(
                    "list workspaces",
                    set.workspace.name().to_string(),
                    e.to_string(),
                ),
            }
        }
    }

    for temp in store.stale_temp_files() {
        let detail = "left by a writer that died".to_string();
        gc.act(
            "remove temporary file",
            temp.display().to_string(),
            detail,
            async {
                std::fs::remove_file(&temp)?;
                Ok(())
            },
        )
        .await;
    }

    if json {
        print_json(&gc.actions)?;
    } else if gc.actions.is_empty() {
        eprintln!("nothing to clean up");
    } else {
        for a in &gc.actions {
            let mark = match (a.done, dry_run) {
                (true, _) => "done",
                (false, true) => "would",
                (false, false) => "skip",
            };
            println!("{mark:<5} {}: {} — {}", a.action, a.target, a.detail);
        }
    }
    Ok(ExitCode::SUCCESS)
}
