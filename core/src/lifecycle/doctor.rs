//! `doctor`: every check an operator would otherwise do by hand, each `ok` or the fix.
//!
//! The core checks only what it owns (config, data dir, plugin libraries, whether each host
//! answers and lets this user in); what a plugin needs on a machine (tmux, git, an agent CLI,
//! their versions) each plugin says itself, on this machine and on every host it may run on.

use std::path::Path;

use ao_plugin_api::{DoctorCheck, InterfaceKind, PluginErrorKind};
use ao_plugin_kit::private;
use serde::Serialize;

use super::{Lifecycle, LifecycleError};
use crate::config::ProjectConfig;
use crate::plugins::{PluginCallError, PluginStatus};

/// One line of `doctor` output.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorLine {
    pub what: String,
    pub ok: bool,
    /// What was found, or the fix.
    pub detail: String,
}

impl DoctorLine {
    fn new(what: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// Whether a new file can be made in `dir` (exclusively, under a name nobody can plant a link
/// at beforehand).
fn writable_probe(dir: &Path) -> std::io::Result<()> {
    let (probe, _file) = private::create_temp(&dir.join("doctor"))?;
    std::fs::remove_file(probe)
}

/// The most files named in one `doctor` line about the data dir's privacy.
const MAX_NAMED: usize = 20;

/// Whether the data dir is the user's own: everything in it tightened to owner-only where it
/// is ours, and what cannot be (links, other users' files, files others may write) named with
/// the fix. Worktrees' contents are git's checkouts and keep their modes.
fn privacy_check(data_dir: &Path) -> DoctorLine {
    let what = "data dir is private";
    let problems = private::tighten_tree(data_dir, 16, true);
    if problems.is_empty() {
        return DoctorLine::new(
            what,
            true,
            format!(
                "{} and everything in it are this user's own (0700/0600)",
                data_dir.display()
            ),
        );
    }
    let mut detail: Vec<String> = problems
        .iter()
        .take(MAX_NAMED)
        .map(ToString::to_string)
        .collect();
    if problems.len() > MAX_NAMED {
        detail.push(format!("and {} more", problems.len() - MAX_NAMED));
    }
    DoctorLine::new(what, false, detail.join("; "))
}

impl Lifecycle {
    /// Runs every check.
    pub async fn doctor(&self) -> Vec<DoctorLine> {
        let mut lines = vec![DoctorLine::new(
            "config",
            true,
            self.config
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "built-in defaults (no ao-rs.yaml)".into()),
        )];
        let data_dir = &self.config.data_dir;
        lines.push(match writable_probe(data_dir) {
            Ok(()) => DoctorLine::new(
                "data dir",
                true,
                format!("{} is writable", data_dir.display()),
            ),
            Err(e) if e.raw_os_error() == Some(libc::EROFS) => DoctorLine::new(
                "data dir",
                false,
                format!(
                    "{} is on a read-only file system: `session ls` and `doctor` work, every \
                     command that changes a session fails; remount it read-write, or set \
                     data_dir to a writable folder",
                    data_dir.display()
                ),
            ),
            Err(e) => DoctorLine::new(
                "data dir",
                false,
                format!(
                    "{}: {e}; set data_dir to a writable folder",
                    data_dir.display()
                ),
            ),
        });
        lines.push(privacy_check(data_dir));
        for row in self.registry.rows() {
            if row.status == PluginStatus::Error {
                lines.push(DoctorLine::new(
                    format!("plugin library {}", row.path.display()),
                    false,
                    row.reason.unwrap_or_default(),
                ));
            }
        }
        let mut choices: Vec<(InterfaceKind, String)> = Vec::new();
        for choice in std::iter::once(&self.config.defaults)
            .chain(self.config.projects.values().map(|p| &p.plugins))
        {
            choices.push((InterfaceKind::Runtime, choice.runtime.clone()));
            choices.push((InterfaceKind::Workspace, choice.workspace.clone()));
            choices.push((InterfaceKind::Agent, choice.agent.clone()));
        }
        // Every sandbox plugin a project confines its agents with: that it works here (the
        // tool installed, user namespaces on), each failure with its fix, before a spawn meets
        // it.
        choices.extend(
            std::iter::once(&self.config.sandbox)
                .chain(self.config.projects.values().map(|p| &p.sandbox))
                .filter_map(|sandbox| sandbox.plugin.clone())
                .map(|name| (InterfaceKind::Sandbox, name)),
        );
        // Every loaded scm plugin: what it needs (a token, its forge answering) before a
        // watcher depends on it.
        choices.extend(
            self.registry
                .names(InterfaceKind::Scm)
                .into_iter()
                .map(|name| (InterfaceKind::Scm, name.to_string())),
        );
        choices.sort();
        choices.dedup();
        for (kind, name) in choices {
            let what = format!("{kind} plugin `{name}`");
            match self.plugin_checks(kind, &name).await {
                Err(e) => lines.push(DoctorLine::new(what, false, e.to_string())),
                Ok(checks) => {
                    let library = self
                        .registry
                        .library_of(kind, &name)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    lines.push(DoctorLine::new(
                        what.clone(),
                        true,
                        format!("loaded from {library}"),
                    ));
                    match checks {
                        Ok(checks) => lines.extend(checks.into_iter().map(|c| {
                            DoctorLine::new(
                                format!("{what}: {}", c.what),
                                c.ok,
                                c.detail.to_string(),
                            )
                        })),
                        Err(e) if e.kind() == PluginErrorKind::Unsupported => {
                            lines.push(DoctorLine::new(
                                what,
                                true,
                                "it has no checks of its own (built before doctor checks existed)",
                            ))
                        }
                        Err(e) => lines.push(DoctorLine::new(what, false, e.to_string())),
                    }
                }
            }
        }
        for project in self.config.projects.values() {
            lines.push(self.project_check(project).await);
        }
        for host in self.hosts.keys() {
            lines.extend(self.host_checks(host).await);
        }
        lines
    }

    /// One configured project: its repo is there, is a repository with a commit, and its
    /// default branch is known — the first problem named with its fix, as a spawn would meet it.
    async fn project_check(&self, project: &ProjectConfig) -> DoctorLine {
        let what = format!("project `{}`", project.id);
        let file = self.config.file_for_messages();
        let repo = project.repo.display();
        if !project.repo.is_dir() {
            return DoctorLine::new(
                what,
                false,
                format!(
                    "its repo {repo} is not a folder; clone the repository there, or fix `projects.{}.repo` in {file}",
                    project.id
                ),
            );
        }
        let workspace = match self.workspace(&project.plugins.workspace).await {
            Ok(workspace) => workspace,
            Err(e) => return DoctorLine::new(what, false, e.to_string()),
        };
        let info = match workspace.discover_repository(&repo.to_string()).await {
            Ok(info) => info,
            Err(e) => {
                return DoctorLine::new(
                    what,
                    false,
                    format!(
                        "{} (its repo is `projects.{}.repo` in {file})",
                        self.config.name_file_in(&e.plugin_message()),
                        project.id
                    ),
                );
            }
        };
        let found = info.default_branch.into_option().map(|b| b.to_string());
        match project.default_branch.clone().or(found) {
            Some(branch) => match workspace.base_of(&repo.to_string(), &branch).await {
                Ok(base) => DoctorLine::new(
                    what,
                    true,
                    format!("{repo}: sessions branch from `{base}`"),
                ),
                Err(e) if e.kind() == PluginErrorKind::Unsupported => DoctorLine::new(
                    what,
                    true,
                    format!(
                        "{repo}: sessions branch from `{branch}` (not checked: {})",
                        e.plugin_message()
                    ),
                ),
                Err(e) => DoctorLine::new(
                    what,
                    false,
                    format!(
                        "{} (`projects.{}.default_branch` in {file})",
                        e.plugin_message(),
                        project.id
                    ),
                ),
            },
            None => DoctorLine::new(
                what,
                false,
                format!(
                    "cannot tell the default branch of {repo} (no origin HEAD, nothing checked out); set `projects.{}.default_branch` in {file}",
                    project.id
                ),
            ),
        }
    }

    /// One host: does it answer, and what the plugins its projects use there say of it.
    async fn host_checks(&self, host: &str) -> Vec<DoctorLine> {
        let what = format!("host `{host}`");
        let reached = match self.reach(host).await {
            Ok(reached) => reached,
            Err(e) => return vec![DoctorLine::new(what, false, e.to_string())],
        };
        let mut lines = vec![DoctorLine::new(
            what.clone(),
            true,
            format!(
                "answers over ssh (host key known); this data dir's folder there: {}",
                reached.data_dir
            ),
        )];
        let mut choices: Vec<(InterfaceKind, String)> = Vec::new();
        for project in self
            .config
            .projects
            .values()
            .filter(|p| p.hosts.contains_key(host))
        {
            choices.push((InterfaceKind::Runtime, project.plugins.runtime.clone()));
            choices.push((InterfaceKind::Workspace, project.plugins.workspace.clone()));
            choices.push((InterfaceKind::Agent, project.plugins.agent.clone()));
        }
        choices.sort();
        choices.dedup();
        for (kind, name) in choices {
            let plugin = format!("{what}: {kind} plugin `{name}`");
            match self.plugin_checks_on(kind, &name, Some(host)).await {
                Err(e) => lines.push(DoctorLine::new(plugin, false, e.to_string())),
                Ok(Ok(checks)) => lines.extend(checks.into_iter().map(|c| {
                    DoctorLine::new(format!("{plugin}: {}", c.what), c.ok, c.detail.to_string())
                })),
                Ok(Err(e)) => lines.push(DoctorLine::new(plugin, false, e.to_string())),
            }
        }
        lines
    }

    /// Builds the plugin, then asks for its own checks.
    async fn plugin_checks(
        &self,
        kind: InterfaceKind,
        name: &str,
    ) -> Result<Result<Vec<DoctorCheck>, PluginCallError>, LifecycleError> {
        self.plugin_checks_on(kind, name, None).await
    }

    async fn plugin_checks_on(
        &self,
        kind: InterfaceKind,
        name: &str,
        host: Option<&str>,
    ) -> Result<Result<Vec<DoctorCheck>, PluginCallError>, LifecycleError> {
        Ok(match kind {
            InterfaceKind::Runtime => self.runtime_on(name, host).await?.doctor().await,
            InterfaceKind::Agent => self.agent_on(name, host).await?.doctor().await,
            InterfaceKind::Workspace => self.workspace_on(name, host).await?.doctor().await,
            InterfaceKind::Scm => self.scm_plugin(name).await?.doctor().await,
            InterfaceKind::Sandbox => {
                self.sandbox(name, host, "sandbox.plugin")
                    .await?
                    .doctor()
                    .await
            }
            // A kind this build adds after these has no checks to ask for yet.
            _ => Ok(Vec::new()),
        })
    }
}
