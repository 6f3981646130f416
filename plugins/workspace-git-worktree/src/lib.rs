//! Workspace plugin `git-worktree`: each session gets a git worktree on its own branch.
//!
//! Every change to a repository's worktrees and branches happens under a per-repository file
//! lock: concurrent `git worktree add` runs otherwise race on `.git/config.lock` and
//! `index.lock`, a known failure of peer tools when many agents start at once.

use std::{
    fs::File,
    path::{Component, Path, PathBuf},
};

use ao_plugin_api::{
    export_plugins, program::Program, validate::validate_id, PluginContext, PluginError,
    PluginResult, Workspace, WorkspaceCreateConfig,
};
use serde::Deserialize;

export_plugins! {
    workspace "git-worktree" => GitWorktree,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where worktrees go: `<root>/<project>/<session>`. Default: `<data_dir>/worktrees`.
    root: Option<String>,
}

pub struct GitWorktree {
    git: Program,
    root: PathBuf,
}

/// A repository's lock, held for as long as this value lives.
struct RepoLock(File);

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl GitWorktree {
    fn git(&self, dir: &Path, args: &[&str]) -> PluginResult<String> {
        self.git.run(Some(dir), args)
    }

    /// Whether a git command succeeds (for questions such as "does this ref exist").
    fn git_ok(&self, dir: &Path, args: &[&str]) -> PluginResult<bool> {
        Ok(self.git.output(Some(dir), args, None)?.status.success())
    }

    fn common_dir(&self, dir: &Path) -> PluginResult<PathBuf> {
        let common = self.git(
            dir,
            &["rev-parse", "--path-format=absolute", "--git-common-dir"],
        )?;
        Ok(PathBuf::from(common.trim()))
    }

    fn lock(&self, repo: &Path) -> PluginResult<RepoLock> {
        let path = self.common_dir(repo)?.join("ao-worktree.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| PluginError::failed(format!("opening lock {}: {e}", path.display())))?;
        file.lock()
            .map_err(|e| PluginError::failed(format!("locking {}: {e}", path.display())))?;
        Ok(RepoLock(file))
    }

    fn validate_branch(&self, repo: &Path, branch: &str) -> PluginResult<()> {
        if branch.starts_with('-')
            || !self.git_ok(repo, &["check-ref-format", "--branch", branch])?
        {
            return Err(PluginError::invalid_input(format!(
                "branch name {branch:?} is not a valid git branch name (see `git check-ref-format`)"
            )));
        }
        Ok(())
    }

    /// `origin/<default>` when the remote has it (so work starts from what was pushed), else the
    /// local branch.
    fn base_ref(&self, repo: &Path, default_branch: &str) -> PluginResult<String> {
        let remote = format!("refs/remotes/origin/{default_branch}");
        if self.git_ok(repo, &["rev-parse", "--verify", "--quiet", &remote])? {
            return Ok(format!("origin/{default_branch}"));
        }
        let local = format!("refs/heads/{default_branch}");
        if self.git_ok(repo, &["rev-parse", "--verify", "--quiet", &local])? {
            return Ok(default_branch.to_string());
        }
        Err(PluginError::invalid_input(format!(
            "default branch `{default_branch}` exists neither locally nor as origin/{default_branch} in {}; set `default_branch` for the project",
            repo.display()
        )))
    }

    /// Whether `branch` points exactly at the base the session would start from.
    fn is_untouched(&self, repo: &Path, branch: &str, default_branch: &str) -> PluginResult<bool> {
        let base = self.base_ref(repo, default_branch)?;
        let tip = |reference: &str| {
            self.git(repo, &["rev-parse", "--verify", "--quiet", reference])
                .map(|sha| sha.trim().to_string())
        };
        Ok(tip(&format!("refs/heads/{branch}"))? == tip(&format!("{base}^{{commit}}"))?)
    }

    fn branch_exists(&self, repo: &Path, branch: &str) -> PluginResult<bool> {
        self.git_ok(
            repo,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ],
        )
    }

    /// Everything after `git worktree add`: the steps whose failure must undo the worktree.
    fn finish(&self, config: &WorkspaceCreateConfig, repo: &Path, path: &Path) -> PluginResult<()> {
        self.git(path, &["reset", "--hard", "--quiet"])?;
        for entry in &config.symlinks {
            link_into(repo, path, entry.as_str())?;
        }
        for command in &config.post_create {
            // post_create commands are the operator's own config, written as shell commands.
            let output = Program::new("sh", "a POSIX shell").output(
                Some(path),
                ["-c", command.as_str()],
                None,
            )?;
            if !output.status.success() {
                let detail = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = detail.trim().lines().rev().take(5).collect();
                return Err(PluginError::failed(format!(
                    "post_create command {command:?} failed ({}): {}",
                    output.status,
                    tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                )));
            }
        }
        Ok(())
    }

    /// Removes a half-made worktree and, if this call created it, its branch. The caller holds
    /// the repository lock (a second lock from this process would wait for itself).
    fn undo_locked(&self, repo: &Path, path: &Path, created_branch: Option<&str>) {
        let path_text = path.display().to_string();
        let _ = self.git(repo, &["worktree", "remove", "--force", &path_text]);
        if path.exists() {
            let _ = std::fs::remove_dir_all(path);
        }
        let _ = self.git(repo, &["worktree", "prune"]);
        if let Some(branch) = created_branch {
            let _ = self.git(repo, &["branch", "-D", "--", branch]);
        }
    }
}

/// Symlinks `<repo>/<entry>` to `<workspace>/<entry>`. Entries are relative paths that must stay
/// inside both trees: absolute paths and `..` are refused, and so is an entry whose parent folder
/// in the workspace resolves outside it (through a symlink the repository itself contains).
fn link_into(repo: &Path, workspace: &Path, entry: &str) -> PluginResult<()> {
    let relative = Path::new(entry);
    let escapes = entry.is_empty()
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(PluginError::invalid_input(format!(
            "symlinks entry {entry:?} must be a relative path inside the repository (no `/` at the start, no `..`)"
        )));
    }
    let source = repo.join(relative);
    if !source.exists() {
        return Err(PluginError::invalid_input(format!(
            "symlinks entry {entry:?}: {} does not exist",
            source.display()
        )));
    }
    let link = workspace.join(relative);
    let parent = link.parent().unwrap_or(workspace);
    std::fs::create_dir_all(parent)
        .map_err(|e| PluginError::failed(format!("creating {}: {e}", parent.display())))?;
    let inside = parent
        .canonicalize()
        .ok()
        .zip(workspace.canonicalize().ok())
        .is_some_and(|(p, w)| p.starts_with(w));
    if !inside {
        return Err(PluginError::invalid_input(format!(
            "symlinks entry {entry:?} resolves outside the workspace"
        )));
    }
    if link.symlink_metadata().is_ok() {
        let removed = if link.is_dir() && !link.is_symlink() {
            std::fs::remove_dir_all(&link)
        } else {
            std::fs::remove_file(&link)
        };
        removed.map_err(|e| PluginError::failed(format!("replacing {}: {e}", link.display())))?;
    }
    symlink(&source, &link)
        .map_err(|e| PluginError::failed(format!("linking {}: {e}", link.display())))
}

#[cfg(unix)]
fn symlink(source: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(source, link)
}

#[cfg(windows)]
fn symlink(source: &Path, link: &Path) -> std::io::Result<()> {
    if source.is_dir() {
        std::os::windows::fs::symlink_dir(source, link)
    } else {
        std::os::windows::fs::symlink_file(source, link)
    }
}

impl Workspace for GitWorktree {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        let root = match settings.root {
            Some(root) => expand_home(&root)?,
            None => Path::new(context.data_dir.as_str()).join("worktrees"),
        };
        Ok(Self {
            git: Program::new("git", "e.g. `apt-get install git` or `brew install git`"),
            root,
        })
    }

    fn create(&self, config: &WorkspaceCreateConfig) -> PluginResult<String> {
        validate_id("project id", &config.project_id)?;
        validate_id("session id", &config.session_id)?;
        let repo = Path::new(config.repo_path.as_str());
        if !repo.is_dir() {
            return Err(PluginError::invalid_input(format!(
                "repository {} does not exist; fix `repo` for project `{}`",
                repo.display(),
                config.project_id
            )));
        }
        let branch = config.branch.as_str();
        self.validate_branch(repo, branch)?;
        let path = self
            .root
            .join(config.project_id.as_str())
            .join(config.session_id.as_str());
        let path_text = path.display().to_string();

        // Read-only questions are answered before taking the lock (`worktree add -b` itself
        // refuses an existing branch, so nothing is lost if one appears in between).
        let reuse = self.branch_exists(repo, branch)?;
        // A branch left by a spawn that died before any work was done (it still points at the
        // base commit) is taken over; one that holds commits is never reused silently.
        if reuse
            && !config.reuse_branch
            && !self.is_untouched(repo, branch, &config.default_branch)?
        {
            return Err(PluginError::invalid_input(format!(
                "branch `{branch}` already exists in {} and holds commits; if you do not need them, delete it (`git branch -D {branch}`)",
                repo.display()
            )));
        }
        let base = if reuse {
            None
        } else {
            Some(self.base_ref(repo, &config.default_branch)?)
        };
        // Only registering the worktree holds the lock: concurrent `git worktree add` runs read
        // each other's half-written `.git/worktrees/*` and fail. Checking the files out,
        // symlinks and post_create (which may run for minutes) happen outside it.
        let created_branch = {
            let _lock = self.lock(repo)?;
            if path.exists() {
                return Err(PluginError::invalid_input(format!(
                    "workspace {path_text} already exists; remove it or use another session id"
                )));
            }
            std::fs::create_dir_all(path.parent().unwrap_or(&self.root)).map_err(|e| {
                PluginError::failed(format!("creating {}: {e}", self.root.display()))
            })?;
            match &base {
                None => {
                    let args = ["worktree", "add", "--no-checkout", "--", &path_text, branch];
                    self.git(repo, &args)?;
                    None
                }
                Some(base) => {
                    let args = [
                        "worktree",
                        "add",
                        "--no-checkout",
                        "--no-track",
                        "-b",
                        branch,
                        "--",
                        &path_text,
                        base,
                    ];
                    self.git(repo, &args)
                        .inspect_err(|_| self.undo_locked(repo, &path, None))?;
                    Some(branch)
                }
            }
        };
        if let Err(error) = self.finish(config, repo, &path) {
            let _lock = self.lock(repo);
            self.undo_locked(repo, &path, created_branch);
            return Err(error);
        }
        Ok(path_text)
    }

    fn destroy(&self, path: &str, delete_branch: bool) -> PluginResult<()> {
        let path = Path::new(path);
        if !path.exists() {
            return Ok(());
        }
        let common = self.common_dir(path).map_err(|e| {
            PluginError::invalid_input(format!(
                "{} is not a git worktree ({e}); remove it by hand if it is stale",
                path.display()
            ))
        })?;
        let repo = common.parent().map(Path::to_path_buf).unwrap_or(common);
        let branch = self
            .git(path, &["symbolic-ref", "--quiet", "--short", "HEAD"])
            .ok()
            .map(|b| b.trim().to_string());
        let _lock = self.lock(&repo)?;
        let path_text = path.display().to_string();
        self.git(&repo, &["worktree", "remove", "--force", "--", &path_text])?;
        self.git(&repo, &["worktree", "prune"])?;
        if let Some(branch) = branch.filter(|_| delete_branch) {
            self.git(&repo, &["branch", "-D", "--", &branch])?;
        }
        Ok(())
    }

    fn exists(&self, path: &str) -> PluginResult<bool> {
        Ok(Path::new(path).join(".git").exists())
    }

    /// Every `<root>/<project>/<session>` folder that is a git worktree.
    fn list_owned(&self) -> PluginResult<Vec<String>> {
        let mut owned = Vec::new();
        let Ok(projects) = std::fs::read_dir(&self.root) else {
            return Ok(owned);
        };
        for project in projects.filter_map(Result::ok) {
            let Ok(sessions) = std::fs::read_dir(project.path()) else {
                continue;
            };
            for session in sessions.filter_map(Result::ok) {
                if session.path().join(".git").is_file() {
                    owned.push(session.path().display().to_string());
                }
            }
        }
        owned.sort();
        Ok(owned)
    }

    /// Uncommitted changes, including untracked files (ignored files do not count).
    fn has_unsaved_work(&self, path: &str) -> PluginResult<bool> {
        let status = self.git(
            Path::new(path),
            &["status", "--porcelain", "--untracked-files=normal"],
        )?;
        Ok(!status.trim().is_empty())
    }
}

fn expand_home(raw: &str) -> PluginResult<PathBuf> {
    match raw.strip_prefix("~/") {
        Some(rest) => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(rest))
            .ok_or_else(|| {
                PluginError::config(
                    "plugins.config.git-worktree.root uses `~` but $HOME is not set",
                )
            }),
        None => Ok(PathBuf::from(raw)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_entries_that_leave_the_tree_are_refused() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        for entry in ["/etc/passwd", "../outside", "a/../../b", ""] {
            let err = link_into(repo.path(), workspace.path(), entry).unwrap_err();
            assert!(err.message().contains("relative path"), "{entry}: {err}");
        }
    }

    #[test]
    fn a_symlinked_parent_that_points_outside_is_refused() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("conf")).unwrap();
        std::fs::write(repo.path().join("conf/.env"), "X=1").unwrap();
        std::os::unix::fs::symlink(outside.path(), workspace.path().join("conf")).unwrap();
        let err = link_into(repo.path(), workspace.path(), "conf/.env").unwrap_err();
        assert!(err.message().contains("outside the workspace"), "{err}");
        assert!(!outside.path().join(".env").exists());
    }

    #[test]
    fn a_plain_entry_links_to_the_repository_copy() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join(".env"), "X=1").unwrap();
        link_into(repo.path(), workspace.path(), ".env").unwrap();
        let link = workspace.path().join(".env");
        assert!(link.is_symlink());
        assert_eq!(std::fs::read_to_string(link).unwrap(), "X=1");
    }
}
