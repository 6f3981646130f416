//! Workspace plugin `git-worktree`: each session gets a git worktree on its own branch.
//!
//! Every change to a repository's worktrees and branches happens under a per-repository file
//! lock: concurrent `git worktree add` runs otherwise race on `.git/config.lock` and
//! `index.lock`, a known failure of peer tools when many agents start at once.
//!
//! Each worktree made here records the host's data dir in a file `ao-owner` inside its own admin
//! folder (`<repo>/.git/worktrees/<name>`), and [`Workspace::list_owned`] lists only worktrees
//! whose record is this data dir's: two installations may share a worktree root or a
//! repository, and `ao-host gc` of one must never see the other's worktrees. A record naming one
//! of the data dir's paths before a move ([`PluginContext::owner_aliases`]) is this data dir's
//! too; such worktrees are repaired and re-recorded before anything prunes.
//!
//! A spawn killed (`kill -9`) between `git worktree add` and writing that record would leak the
//! worktree, so `create` first writes an intent file in the data dir naming the path, and removes
//! it once the record exists; `list_owned` lists what intent files name too. A last record,
//! `ao-ready`, marks a worktree whose `create` finished: one without it never had an agent, so
//! its (half checked-out) files are no work to keep, nor is its branch if merged.
//!
//! Once a worktree is made, a record in the data dir (`git-worktree/made/<project>__<session>`)
//! names it, its repository's common git dir and its branch: a worktree removed by hand can then still be
//! forgotten by git (`git worktree prune`) and its branch removed like any other's, which needs
//! the repository the vanished worktree no longer points to.
//!
//! Every file it reads or writes goes through [`Files`], and every program through [`Program`],
//! so the same code works on another host (exported `[remote]`).

use std::{
    collections::HashSet,
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use ao_plugin_api::{
    export_plugins,
    sandbox::{WorkspaceConfinement, WorkspaceConfinementQuery},
    DoctorCheck, ErrorKind, PluginContext, PluginError, PluginFailure, PluginResult,
    RepositoryInfo, Workspace, WorkspaceCreateConfig,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{
    files::{FileLock, Files},
    program::Program,
    remote,
    validate::validate_id,
};
use serde::Deserialize;

mod confinement;

export_plugins! {
    workspace "git-worktree" => GitWorktree [remote],
}

/// The file in a worktree's admin folder that names the data dir it belongs to.
const OWNER_FILE: &str = "ao-owner";
/// The file in a worktree's admin folder written once `create` fully succeeded.
const READY_FILE: &str = "ao-ready";
/// An intent file younger than this may belong to a `create` still between writing it and
/// `git worktree add`, so listing does not remove it for naming no worktree yet.
const PENDING_GRACE: Duration = Duration::from_secs(60);
/// Below the host's default `defaults.call_timeout_ms` (60000), so that a slow post_create is
/// stopped and cleaned up here before the host stops waiting for `create`.
const DEFAULT_POST_CREATE_TIMEOUT_MS: u64 = 45_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Where worktrees go: `<root>/<project>/<session>`. Default: `<data_dir>/worktrees`.
    root: Option<String>,
    /// How long all of a project's `post_create` commands together may run before they (and
    /// every process they started) are stopped and the worktree removed. Keep it below
    /// `defaults.call_timeout_ms`, or the host gives up on `create` first and nothing cleans up
    /// in time. Default: 45000.
    post_create_timeout_ms: Option<u64>,
}

pub struct GitWorktree {
    git: Program,
    /// The files of the machine the repositories are on.
    files: Files,
    root: PathBuf,
    /// The host's data dir, recorded on each worktree as its owner.
    owner: String,
    /// Earlier paths of this data dir ([`PluginContext::owner_aliases`]): worktrees made before
    /// it was moved are still its own.
    aliases: Vec<String>,
    /// `<data_dir>/git-worktree/pending`: one intent file per `create` not yet past writing the
    /// owner record, named `<project>__<session>` and holding the worktree's path.
    pending: PathBuf,
    /// `<data_dir>/git-worktree/made`: one file per worktree made, named like an intent file and
    /// holding its path, its repository's common git dir and its branch, one a line.
    made: PathBuf,
    post_create_timeout: Duration,
}

/// One entry of `git worktree list`.
struct WorktreeEntry {
    path: PathBuf,
    /// The branch checked out there (short name), if any.
    branch: Option<String>,
}

/// What is left of a worktree of this data dir removed by hand (see [`GitWorktree::vanished`]).
struct Vanished {
    /// Its made file.
    made: PathBuf,
    /// Its repository's common git dir.
    common: PathBuf,
    /// Its admin folder, while git keeps it.
    admin: Option<PathBuf>,
    /// The branch it was made on.
    branch: Option<String>,
}

/// The name of the intent and made files of `config`'s worktree.
fn intent_name(config: &WorkspaceCreateConfig) -> String {
    format!("{}__{}", config.project_id, config.session_id)
}

/// A repository's lock, held for as long as this value lives.
struct RepoLock(#[allow(dead_code)] FileLock);

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

    /// The worktrees of the repository holding `dir`, the main worktree first.
    fn worktrees(&self, dir: &Path) -> PluginResult<Vec<WorktreeEntry>> {
        let listing = self.git(dir, &["worktree", "list", "--porcelain"])?;
        Ok(listing
            .split("\n\n")
            .filter_map(|record| {
                let mut lines = record.lines();
                let path = lines.next()?.strip_prefix("worktree ")?;
                let branch = lines
                    .find_map(|line| line.strip_prefix("branch refs/heads/"))
                    .map(str::to_string);
                Some(WorktreeEntry {
                    path: PathBuf::from(path),
                    branch,
                })
            })
            .collect())
    }

    /// A worktree's own admin folder, `<common dir>/worktrees/<name>`: read from the
    /// worktree's `.git` file (`gitdir: <path>`, git's documented format) when it has one, which
    /// spares a `git` process per worktree in every `gc` listing; asked of git otherwise.
    fn admin_dir(&self, worktree: &Path) -> PluginResult<PathBuf> {
        let linked = self
            .files
            .read_to_string(&worktree.join(".git"))
            .ok()
            .and_then(|text| Some(PathBuf::from(text.strip_prefix("gitdir:")?.trim())))
            .filter(|dir| dir.is_absolute());
        if let Some(dir) = linked {
            return Ok(dir);
        }
        let dir = self.git(
            worktree,
            &["rev-parse", "--path-format=absolute", "--git-dir"],
        )?;
        Ok(PathBuf::from(dir.trim()))
    }

    /// Why git no longer knows the linked worktree at `path`, if it does not: its `.git` file
    /// must name an admin folder, and that folder must name the worktree back (what `git
    /// worktree list` reads; a worktree that fails this is `prunable` there).
    fn unknown_to_git(&self, path: &Path) -> Option<String> {
        let dot_git = path.join(".git");
        let Some(admin) = self
            .files
            .read_to_string(&dot_git)
            .ok()
            .and_then(|text| Some(PathBuf::from(text.strip_prefix("gitdir:")?.trim())))
        else {
            return Some(format!("{} names no git admin folder", dot_git.display()));
        };
        let named_back = self
            .files
            .read_to_string(&admin.join("gitdir"))
            .ok()
            .and_then(|gitdir| self.files.canonicalize(Path::new(gitdir.trim())).ok());
        let real = self.files.canonicalize(&dot_git).ok();
        match named_back {
            Some(named) if Some(&named) == real.as_ref() => None,
            Some(named) => Some(format!(
                "its git admin folder {} names {} instead",
                admin.display(),
                named.display()
            )),
            None => Some(format!("its git admin folder {} is gone", admin.display())),
        }
    }

    /// Writes `contents` to record `name` in a worktree's admin folder `admin`.
    fn write_record(&self, admin: &Path, name: &str, contents: &str) -> PluginResult<()> {
        let file = admin.join(name);
        self.files
            .write(&file, contents.as_bytes())
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", file.display())))
    }

    /// `git` with the umask 077: what `worktree add --no-checkout` makes (the worktree's admin
    /// folder and its files, `.git/worktrees` when missing) is owner-only from its first
    /// instant, so no other user can open a file of it for writing and keep the handle.
    fn git_private(&self, dir: &Path, args: &[&str]) -> PluginResult<String> {
        let mut argv = vec!["-c", "umask 077 && exec git \"$@\"", "git"];
        argv.extend_from_slice(args);
        Program::new("sh", "a POSIX shell").run(Some(dir), argv)
    }

    /// Refuses this plugin's root unless it is this user's (another user could rename or
    /// replace the worktrees in it); tightened if others may write it. A root not made yet is
    /// made owner-only by `create`.
    fn check_root(&self) -> PluginResult<()> {
        let real = match self.files.canonicalize(&self.root) {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(unanswered(e)),
        };
        self.files.own_dir(&real, false).map_err(|e| {
            PluginError::config(format!(
                "worktree root (plugins.config.git-worktree.root): {e}; or set the root to \
                 a folder of yours"
            ))
        })
    }

    /// A worktree's admin folder, refused unless it and everything in it are this user's and
    /// nobody else may write them: its files (`commondir`, `config.worktree`, …) decide what
    /// git run there does, `core.fsmonitor` and hooks included. Read from the worktree's `.git`
    /// file only: no git runs before the check.
    fn trusted_admin(&self, worktree: &Path) -> PluginResult<PathBuf> {
        let dot_git = worktree.join(".git");
        let admin = self
            .files
            .read_to_string(&dot_git)
            .ok()
            .and_then(|text| Some(PathBuf::from(text.strip_prefix("gitdir:")?.trim())))
            .filter(|dir| dir.is_absolute())
            .ok_or_else(|| {
                PluginError::invalid_input(format!(
                    "{} is not a linked worktree ({} names no git admin folder); remove it by \
                     hand if it is stale",
                    worktree.display(),
                    dot_git.display()
                ))
            })?;
        self.files.check_trusted_tree(&admin).map_err(|e| {
            PluginError::invalid_input(format!(
                "{}: its git admin folder {} cannot be trusted, so ao-host runs no git there: \
                 {e}",
                worktree.display(),
                admin.display()
            ))
        })?;
        Ok(admin)
    }

    /// The owner record of a worktree (`None` when it has none); `Err` when `worktree` is not
    /// a worktree.
    fn owner_of(&self, worktree: &Path) -> PluginResult<Option<String>> {
        if !self
            .files
            .try_is_file(&worktree.join(".git"))
            .map_err(unanswered)?
        {
            return Err(PluginError::not_found(format!(
                "{} is not a linked worktree",
                worktree.display()
            )));
        }
        match self
            .files
            .read_to_string(&self.admin_dir(worktree)?.join(OWNER_FILE))
        {
            Ok(owner) => Ok(Some(owner)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(unanswered(e)),
        }
    }

    /// Whether a worktree's owner record names this data dir, at its present path or one it
    /// was moved from.
    fn owns(&self, owner: &str) -> bool {
        owner == self.owner || self.aliases.iter().any(|alias| alias == owner)
    }

    /// Re-points the worktrees this data dir made before it was moved: git's admin folder of
    /// each still names the old location (`git worktree repair`, run inside the worktree, fixes
    /// that) and its owner record the old path (rewritten to the present one). Done before
    /// anything prunes, since `git worktree prune` drops an admin folder whose worktree it
    /// cannot find.
    fn repair_moved(&self) {
        if self.aliases.is_empty() {
            return;
        }
        let Ok(projects) = self.files.read_dir(&self.root) else {
            return;
        };
        for project in projects {
            let project = self.root.join(project);
            for session in self.files.read_dir(&project).unwrap_or_default() {
                let path = project.join(session);
                let moved = matches!(self.owner_of(&path), Ok(Some(owner))
                    if owner != self.owner && self.owns(&owner));
                if !moved {
                    continue;
                }
                // One that fails stays as it is: `check_ours` then refuses to remove it,
                // naming its admin folder.
                let repaired = self
                    .git(&path, &["worktree", "repair"])
                    .and_then(|_| self.admin_dir(&path))
                    .and_then(|admin| self.write_record(&admin, OWNER_FILE, &self.owner));
                if repaired.is_ok() {
                    self.repoint_made(&path);
                }
            }
        }
    }

    /// Rewrites the made file of a worktree moved with its data dir to name where it is now,
    /// so a later removal by hand is still recognised (see [`Self::vanished`]).
    fn repoint_made(&self, path: &Path) {
        let Some(made) = self.record_name(path).map(|name| self.made.join(name)) else {
            return;
        };
        let Ok(text) = self.files.read_private(&made) else {
            return;
        };
        let rest: Vec<&str> = text.lines().skip(1).collect();
        let text = format!("{}\n{}\n", path.display(), rest.join("\n"));
        let _ = self.files.write(&made, text.as_bytes());
    }

    /// `git worktree prune` in `repo`, once the worktrees of a moved data dir are repaired:
    /// prune drops the admin folder of every worktree it cannot find where git last saw it.
    fn prune(&self, repo: &Path) -> PluginResult<String> {
        if self.check_root().is_ok() {
            self.repair_moved();
        }
        self.git(repo, &["worktree", "prune"])
    }

    /// Whether `create` finished for a worktree (see [`READY_FILE`]).
    fn is_ready(&self, worktree: &Path) -> PluginResult<bool> {
        self.files
            .try_exists(&self.admin_dir(worktree)?.join(READY_FILE))
            .map_err(unanswered)
    }

    /// Whether a worktree holds a session's work: its `create` finished, or v0.1.2 made it
    /// (which marked none finished).
    fn finished(&self, worktree: &Path) -> PluginResult<bool> {
        Ok(self.is_ready(worktree)?
            || self
                .files
                .canonicalize(worktree)
                .is_ok_and(|real| self.made_by_v0_1_2(worktree, &real)))
    }

    /// The intent file of `create` for `config`.
    fn pending_file(&self, config: &WorkspaceCreateConfig) -> PathBuf {
        self.pending.join(intent_name(config))
    }

    /// The name of the intent and made files of the worktree at `path` (`<project>__<session>`),
    /// when it is one of this root's session folders.
    fn record_name(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<&str> = relative
            .components()
            .map(|part| match part {
                Component::Normal(part) => part.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        match &parts[..] {
            [project, session]
                if validate_id("project id", project).is_ok()
                    && validate_id("session id", session).is_ok() =>
            {
                Some(format!("{project}__{session}"))
            }
            _ => None,
        }
    }

    /// What is left of a worktree of this data dir removed by hand: its made file (naming it,
    /// its repository's common dir and its branch) and, while git keeps it, its admin folder
    /// (the one naming `path` back and owned by this data dir).
    fn vanished(&self, path: &Path) -> Option<Vanished> {
        let name = self.record_name(path)?;
        let made = self.made.join(&name);
        let text = self.files.read_private(&made).ok()?;
        let mut lines = text.lines();
        // Another root's worktree of the same session (the root setting changed) is not this.
        if Path::new(lines.next()?) != path {
            return None;
        }
        let common = PathBuf::from(lines.next()?);
        let branch = lines.next().filter(|b| !b.is_empty()).map(str::to_string);
        // As git wrote it: the path as made, or with the root's links resolved.
        let dot_git = [
            Some(path.join(".git")),
            self.files
                .canonicalize(&self.root)
                .ok()
                .zip(path.strip_prefix(&self.root).ok())
                .map(|(root, relative)| root.join(relative).join(".git")),
        ];
        // None left at all once git pruned the last one.
        let admin = self
            .files
            .read_dir(&common.join("worktrees"))
            .unwrap_or_default()
            .into_iter()
            .map(|entry| common.join("worktrees").join(entry))
            .find(|admin| {
                let names_it =
                    self.files
                        .read_to_string(&admin.join("gitdir"))
                        .is_ok_and(|gitdir| {
                            dot_git
                                .iter()
                                .flatten()
                                .any(|dot_git| Path::new(gitdir.trim()) == dot_git)
                        });
                names_it
                    && self
                        .files
                        .read_to_string(&admin.join(OWNER_FILE))
                        .is_ok_and(|owner| owner == self.owner)
            });
        Some(Vanished {
            made,
            common,
            admin,
            branch,
        })
    }

    /// Makes git forget a worktree of this data dir removed by hand, and removes its branch as
    /// [`Workspace::destroy`] would have. Nothing is done for a worktree this data dir has no
    /// made file for (made by an older version, or by another data dir).
    fn forget_vanished(&self, path: &Path, delete_branch: bool) -> PluginResult<()> {
        let Some(vanished) = self.vanished(path) else {
            return Ok(());
        };
        // Gone too (the repository moved or was removed): nothing left to forget.
        if !self.files.is_dir(&vanished.common) {
            let _ = self.files.remove_file(&vanished.made);
            return Ok(());
        }
        let _lock = self.lock_at(&vanished.common)?;
        if vanished.admin.is_some() {
            self.prune(&vanished.common)?;
        }
        // Whether or not git still kept the worktree (any prune forgets every vanished one).
        if let Some(branch) = &vanished.branch {
            self.remove_branch(&vanished.common, branch, delete_branch)?;
        }
        let _ = self.files.remove_file(&vanished.made);
        Ok(())
    }

    /// Removes a session's branch: always when `delete_branch`, else only while it holds no
    /// work of its own (`-d` refuses one not merged into the checked-out branch, and one
    /// checked out in any worktree, another data dir's included).
    fn remove_branch(&self, repo: &Path, branch: &str, delete_branch: bool) -> PluginResult<()> {
        if delete_branch {
            self.git(repo, &["branch", "-D", "--", branch])?;
        } else {
            let _ = self.git(repo, &["branch", "-d", "--", branch]);
        }
        Ok(())
    }

    /// Records that `create` is about to make a worktree at `path` (see the module docs).
    fn write_pending(&self, file: &Path, path: &str) -> PluginResult<()> {
        self.files
            .create_dir_all(&self.pending, true)
            .and_then(|()| self.files.write(file, path.as_bytes()))
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", file.display())))
    }

    /// Worktrees named by this data dir's intent files, removing the files that name no
    /// worktree of this data dir any more (past [`PENDING_GRACE`]).
    fn pending_worktrees(&self) -> Vec<String> {
        let Ok(entries) = self.files.read_dir(&self.pending) else {
            return Vec::new();
        };
        let mut paths = Vec::new();
        for name in entries {
            let file = self.pending.join(&name);
            // Another user's file, or one others could edit, never names what gc removes; nor
            // does one naming anything but the worktree its name says, in this root.
            let Some(path) = self
                .files
                .read_private(&file)
                .ok()
                .filter(|path| self.intent_names(&name, Path::new(path)))
            else {
                continue;
            };
            match self.owner_of(Path::new(&path)) {
                Ok(None) => paths.push(path),
                Ok(Some(owner)) if self.owns(&owner) => paths.push(path),
                _ => {
                    if self.files.older_than(&file, PENDING_GRACE) {
                        let _ = self.files.remove_file(&file);
                    }
                }
            }
        }
        paths
    }

    /// Worktrees of this data dir removed by hand, from the made files: `gc` takes them for
    /// orphans when no record names them, and their `destroy` prunes what git keeps of them
    /// and removes their branch.
    fn vanished_worktrees(&self) -> Vec<String> {
        let Ok(names) = self.files.read_dir(&self.made) else {
            return Vec::new();
        };
        let mut paths = Vec::new();
        for name in names {
            let Some(path) = self
                .files
                .read_private(&self.made.join(&name))
                .ok()
                .and_then(|text| text.lines().next().map(PathBuf::from))
            else {
                continue;
            };
            if self.record_name(&path).as_deref() != Some(name.as_str())
                || self.files.is_present(&path).unwrap_or(true)
            {
                continue;
            }
            if self.vanished(&path).is_some() {
                paths.push(path.display().to_string());
            }
        }
        paths
    }

    /// Whether `path` is the worktree the intent file `name` (`<project>__<session>`) is for:
    /// `<root>/<project>/<session>`.
    fn intent_names(&self, name: &str, path: &Path) -> bool {
        self.record_name(path).as_deref() == Some(name)
    }

    /// Whether a worktree without an owner record is one v0.1.2 made for this data dir. That
    /// release recorded neither an owner nor readiness, but put each worktree in the data dir's
    /// own `worktrees` folder, at `<project>/<session>`, on the session's branch. One made by
    /// hand there (on another branch), or by a later release whose owner record was lost (it
    /// has `ao-ready`), is no one's. `real` is its canonical path.
    fn made_by_v0_1_2(&self, path: &Path, real: &Path) -> bool {
        let Ok(root) = self
            .files
            .canonicalize(&Path::new(&self.owner).join("worktrees"))
        else {
            return false;
        };
        let Some(session) = real
            .strip_prefix(&root)
            .ok()
            .filter(|relative| relative.components().count() == 2)
            .and_then(|relative| relative.file_name()?.to_str())
        else {
            return false;
        };
        if self.is_ready(path).unwrap_or(true) || !matches!(self.owner_of(path), Ok(None)) {
            return false;
        }
        let head = self
            .admin_dir(path)
            .and_then(|admin| {
                self.files
                    .read_to_string(&admin.join("HEAD"))
                    .map_err(unanswered)
            })
            .unwrap_or_default();
        ["session", "orchestrator"]
            .iter()
            .any(|namespace| head.trim() == format!("ref: refs/heads/{namespace}/{session}"))
    }

    /// Refuses to remove `path` unless this data dir made it: a worktree directly under this
    /// root (`<root>/<project>/<session>`, links resolved) whose owner record, in its admin
    /// folder, names this data dir and whose admin folder names it back; or, for a `create`
    /// cut short before that record, one this data dir's own intent file names. A session
    /// record says which path to remove, and records can be edited: this is what the plugin
    /// itself wrote, or what v0.1.2 wrote before owner records existed (see
    /// [`GitWorktree::made_by_v0_1_2`]).
    fn check_ours(&self, path: &Path) -> PluginResult<()> {
        let refuse = |why: String| {
            Err(PluginError::invalid_input(format!(
                "{}: {why}, so this ao-host (data dir {}) does not remove it; if it is stale, \
                 remove it by hand (`git worktree remove {}`)",
                path.display(),
                self.owner,
                path.display()
            )))
        };
        let real = self.files.canonicalize(path).map_err(unanswered)?;
        let root = self
            .files
            .canonicalize(&self.root)
            .unwrap_or_else(|_| self.root.clone());
        let session_folder = real
            .strip_prefix(&root)
            .is_ok_and(|relative| relative.components().count() == 2);
        if !session_folder {
            return refuse(format!(
                "it is not a worktree folder of this plugin's root {}",
                self.root.display()
            ));
        }
        if let Some(why) = self.unknown_to_git(path) {
            return refuse(why);
        }
        match self.owner_of(path)? {
            Some(owner) if self.owns(&owner) => Ok(()),
            Some(owner) => refuse(format!("it belongs to the ao-host data dir {owner}")),
            None if self.made_by_v0_1_2(path, &real) => Ok(()),
            None => {
                let relative = real.strip_prefix(&root).unwrap_or(&real);
                let name = relative
                    .iter()
                    .map(|part| part.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("__");
                let intent = self.pending.join(&name);
                let named = self
                    .files
                    .read_private(&intent)
                    .is_ok_and(|named| self.intent_names(&name, Path::new(&named)));
                if named {
                    Ok(())
                } else {
                    refuse(format!(
                        "it has no owner record ({}) and no intent file of this data dir",
                        self.admin_dir(path)?.join(OWNER_FILE).display()
                    ))
                }
            }
        }
    }

    /// Refuses a branch that is checked out in another worktree (`git worktree add` would fail
    /// with less to go on), naming where.
    fn refuse_branch_in_use(&self, repo: &Path, branch: &str) -> PluginResult<()> {
        let worktrees = self.worktrees(repo)?;
        let Some(index) = worktrees
            .iter()
            .position(|w| w.branch.as_deref() == Some(branch))
        else {
            return Ok(());
        };
        let path = worktrees[index].path.display();
        Err(PluginError::invalid_input(if index == 0 {
            format!(
                "branch `{branch}` is checked out in the repository's main worktree {path}; \
                 switch that worktree to another branch first"
            )
        } else {
            format!(
                "branch `{branch}` is checked out in worktree {path}, which belongs to another \
                 session (perhaps of another ao-host data dir using the same repository and \
                 session_prefix); give this project another session_prefix in ao-rs.yaml, or \
                 remove that worktree if it is stale (`git worktree remove {path}`)"
            )
        }))
    }

    /// origin's HEAD branch (`main` for `origin/main`), when the clone recorded it.
    fn origin_head(&self, dir: &Path) -> PluginResult<Option<String>> {
        let output = self.git.output(
            Some(dir),
            [
                "symbolic-ref",
                "--quiet",
                "--short",
                "refs/remotes/origin/HEAD",
            ],
            None,
        )?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
            .and_then(|head| head.strip_prefix("origin/").map(str::to_string))
            .filter(|branch| !branch.is_empty()))
    }

    /// Whether the worktree root is a folder this user can write (it is made if missing).
    fn root_check(&self) -> DoctorCheck {
        let what = "worktree root";
        match self.files.check_writable(&self.root) {
            Ok(()) => DoctorCheck::passed(what, format!("{} is writable", self.root.display())),
            Err(e) => DoctorCheck::failed(
                what,
                format!(
                    "{} is not writable ({e}): fix its permissions, or set \
                     plugins.config.git-worktree.root to a writable folder",
                    self.root.display()
                ),
            ),
        }
    }

    fn lock(&self, repo: &Path) -> PluginResult<RepoLock> {
        self.lock_at(&self.common_dir(repo)?)
    }

    /// [`Self::lock`] of the repository whose common git dir is `common_dir`.
    fn lock_at(&self, common_dir: &Path) -> PluginResult<RepoLock> {
        let path = common_dir.join("ao-worktree.lock");
        let lock = self
            .files
            .lock(&path)
            .map_err(|e| PluginError::failed(format!("locking {}: {e}", path.display())))?;
        Ok(RepoLock(lock))
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
        let refs = self.existing_refs(
            repo,
            &[
                &format!("refs/remotes/origin/{default_branch}"),
                &format!("refs/heads/{default_branch}"),
            ],
        )?;
        base_among(&refs, default_branch, repo)
    }

    /// Which of the full ref names `wanted` exist, in one git process (a spawn asks for three).
    fn existing_refs(&self, repo: &Path, wanted: &[&str]) -> PluginResult<HashSet<String>> {
        let mut args = vec!["for-each-ref", "--format=%(refname)", "--"];
        args.extend_from_slice(wanted);
        let listed = self.git(repo, &args)?;
        // A pattern also matches refs below it (`refs/heads/main/x`): only exact names count.
        Ok(listed
            .lines()
            .filter(|name| wanted.contains(name))
            .map(str::to_string)
            .collect())
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

    /// Everything after `git worktree add`: the steps whose failure must undo the worktree.
    fn finish(&self, config: &WorkspaceCreateConfig, repo: &Path, path: &Path) -> PluginResult<()> {
        // Asked once: on another host each question is a round trip.
        let admin = self.admin_dir(path)?;
        self.restrict_admin(&admin)?;
        self.write_record(&admin, OWNER_FILE, &self.owner)?;
        let made = self.made.join(intent_name(config));
        self.files
            .create_dir_all(&self.made, true)
            .and_then(|()| {
                let common = admin.parent().and_then(Path::parent).unwrap_or(&admin);
                let text = format!(
                    "{}\n{}\n{}\n",
                    path.display(),
                    common.display(),
                    config.branch
                );
                self.files.write(&made, text.as_bytes())
            })
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", made.display())))?;
        // The record now says whose it is. An intent file left by a failed removal is harmless:
        // it names a worktree of this data dir, and listing drops it once that is gone.
        let _ = self.files.remove_file(&self.pending_file(config));
        self.git(path, &["reset", "--hard", "--quiet"])?;
        for entry in &config.symlinks {
            self.link_into(repo, path, entry.as_str())?;
        }
        let deadline = Instant::now() + self.post_create_timeout;
        let sh = Program::new("sh", "a POSIX shell");
        for command in &config.post_create {
            // post_create commands are the operator's own config, written as shell commands.
            // Run in a process group of their own, so a hung one is stopped with everything it
            // started rather than left running after this call gives up.
            let output = sh
                .run_with_deadline(
                    Some(path),
                    ["-c", command.as_str()],
                    deadline.saturating_duration_since(Instant::now()),
                )
                .map_err(|error| {
                    PluginError::new(
                        error.kind,
                        format!(
                            "post_create command {command:?}: {error}; the new worktree was \
                             removed. If it needs longer, raise \
                             plugins.config.git-worktree.post_create_timeout_ms (now {} ms, for \
                             all post_create commands together) and keep it below \
                             defaults.call_timeout_ms (60000 by default), or make the command \
                             finish sooner",
                            self.post_create_timeout.as_millis()
                        ),
                    )
                })?;
            if !output.status.success() {
                let during = format!("post_create command {command:?}");
                if let Some(lost) = sh.lost_connection(&output, &during) {
                    return Err(lost);
                }
                let detail = String::from_utf8_lossy(&output.stderr);
                let tail: Vec<&str> = detail.trim().lines().rev().take(5).collect();
                let said = match tail.is_empty() {
                    true => "it printed nothing on stderr".to_string(),
                    false => tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
                };
                return Err(PluginError::failed(format!(
                    "post_create command {command:?} failed ({}): {said}; the new worktree was \
                     removed. Fix the command under post_create in the project's config",
                    output.status,
                )));
            }
        }
        // The checkout rewrote the index under the operator's umask (inside a folder only
        // this user can reach).
        self.restrict_admin(&admin)?;
        self.write_record(&admin, READY_FILE, "")
    }

    /// Makes a worktree's admin folder owner-only (see [`Self::trusted_admin`]).
    fn restrict_admin(&self, admin: &Path) -> PluginResult<()> {
        self.files
            .restrict_tree(admin)
            .map_err(|e| PluginError::failed(format!("making {} owner-only: {e}", admin.display())))
    }

    /// Removes a half-made worktree and, if this call created it, its branch. The caller holds
    /// the repository lock (a second lock from this process would wait for itself).
    fn undo_locked(&self, repo: &Path, path: &Path, created_branch: Option<&str>) {
        let path_text = path.display().to_string();
        let _ = self.git(repo, &["worktree", "remove", "--force", &path_text]);
        if self.files.exists(path) {
            let _ = self.files.remove_dir_all(path);
        }
        let _ = self.prune(repo);
        if let Some(branch) = created_branch {
            let _ = self.git(repo, &["branch", "-D", "--", branch]);
        }
    }
    /// Symlinks `<repo>/<entry>` to `<workspace>/<entry>`. Entries must pass
    /// [`check_symlink_entry`], and an entry whose parent folder in the workspace resolves
    /// outside it (through a symlink the repository itself contains) is refused too.
    fn link_into(&self, repo: &Path, workspace: &Path, entry: &str) -> PluginResult<()> {
        let relative = check_symlink_entry(entry)?;
        let source = repo.join(relative);
        if !self.files.exists(&source) {
            return Err(PluginError::invalid_input(format!(
                "symlinks entry {entry:?}: {} does not exist",
                source.display()
            )));
        }
        let link = workspace.join(relative);
        let parent = link.parent().unwrap_or(workspace);
        self.files
            .create_dir_all(parent, false)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", parent.display())))?;
        let inside = self
            .files
            .canonicalize(parent)
            .ok()
            .zip(self.files.canonicalize(workspace).ok())
            .is_some_and(|(p, w)| p.starts_with(w));
        if !inside {
            return Err(PluginError::invalid_input(format!(
                "symlinks entry {entry:?} resolves outside the workspace"
            )));
        }
        // A link is removed, not followed; a folder with everything in it.
        self.files
            .remove_dir_all(&link)
            .map_err(|e| PluginError::failed(format!("replacing {}: {e}", link.display())))?;
        self.files
            .symlink(&source, &link)
            .map_err(|e| PluginError::failed(format!("linking {}: {e}", link.display())))
    }

    /// Kills (SIGKILL) every process whose working folder is inside `dir`, as `/proc` shows
    /// them (on the machine the worktree is on); elsewhere than Linux, nothing.
    fn stop_processes_in(&self, dir: &Path) {
        const SCRIPT: &str = r#"d=$(cd -P -- "$1" 2>/dev/null && pwd -P) || exit 0
for p in /proc/[0-9]*; do
  c=$(readlink "$p/cwd" 2>/dev/null) || continue
  case "$c" in "$d"|"$d"/*) [ "${p#/proc/}" != "$$" ] && kill -KILL "${p#/proc/}" 2>/dev/null;; esac
done
exit 0"#;
        if self.files.is_remote() {
            let _ = Program::new("sh", "a POSIX shell")
                .run(None, ["-c", SCRIPT, "sh", &dir.display().to_string()]);
            return;
        }
        stop_local_processes_in(dir);
    }
}

/// Refuses a `symlinks` entry that is not a relative path inside the repository (absolute, or
/// with `..`), or that names a `.git` folder: a linked `.git` is the main repository's, so the
/// agent's commits would move the main checkout's branches instead of its own.
fn check_symlink_entry(entry: &str) -> PluginResult<&Path> {
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
    let names_git = relative.components().any(|c| match c {
        Component::Normal(name) => name.as_encoded_bytes().eq_ignore_ascii_case(b".git"),
        _ => false,
    });
    if names_git {
        return Err(PluginError::invalid_input(format!(
            "symlinks entry {entry:?} names a `.git` folder: linking it would let the session's \
             commits change the main repository; remove it from the project's symlinks"
        )));
    }
    Ok(relative)
}

impl Workspace for GitWorktree {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        let files = Files::here();
        let root = match settings.root {
            Some(root) => expand_home(&root, files.is_remote())?,
            None => Path::new(context.data_dir.as_str()).join("worktrees"),
        };
        let timeout_ms = settings
            .post_create_timeout_ms
            .unwrap_or(DEFAULT_POST_CREATE_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(PluginError::config(
                "plugins.config.git-worktree.post_create_timeout_ms must be above 0 (and below \
                 defaults.call_timeout_ms); fix the setting in ao-rs.yaml",
            ));
        }
        Ok(Self {
            git: Program::new("git", "e.g. `apt-get install git` or `brew install git`"),
            files,
            pending: Path::new(context.data_dir.as_str()).join("git-worktree/pending"),
            made: Path::new(context.data_dir.as_str()).join("git-worktree/made"),
            root,
            owner: context.data_dir.to_string(),
            aliases: context.owner_aliases(),
            post_create_timeout: Duration::from_millis(timeout_ms),
        })
    }

    fn create(&self, config: &WorkspaceCreateConfig) -> PluginResult<String> {
        validate_id("project id", &config.project_id)?;
        validate_id("session id", &config.session_id)?;
        let repo = Path::new(config.repo_path.as_str());
        let setting = repo_setting(&config.project_id);
        if !self.files.is_dir(repo) {
            return Err(PluginError::invalid_input(format!(
                "repository {} does not exist{}; fix {setting}",
                repo.display(),
                place()
            )));
        }
        // Asked first: every later git command would fail on it with a less telling message.
        // Its answer (the common git dir) is where the repository's worktree lock lives.
        let probe = self.git.output(
            Some(repo),
            ["rev-parse", "--path-format=absolute", "--git-common-dir"],
            None,
        )?;
        if !probe.status.success() {
            // git missing there, or the connection lost, is no fault of the setting.
            if let Some(error) = self.git.host_failure(&probe, "the repository check") {
                return Err(error);
            }
            return Err(PluginError::invalid_input(format!(
                "{} is not a git repository{} (git: {}); fix {setting}",
                repo.display(),
                place(),
                String::from_utf8_lossy(&probe.stderr).trim()
            )));
        }
        let common_dir = PathBuf::from(String::from_utf8_lossy(&probe.stdout).trim());
        self.check_root()?;
        // Where git makes the new admin folder: never a folder others may write.
        let admin_parent = common_dir.join("worktrees");
        match self.files.own_dir(&admin_parent, false) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => other.map_err(|e| {
                PluginError::invalid_input(format!(
                    "{}: {e}; git keeps the worktrees' admin folders there",
                    admin_parent.display()
                ))
            })?,
        }
        for entry in &config.symlinks {
            check_symlink_entry(entry)?;
        }
        let branch = config.branch.as_str();
        self.validate_branch(repo, branch)?;
        let refs = self.existing_refs(
            repo,
            &[
                &format!("refs/heads/{branch}"),
                &format!("refs/remotes/origin/{}", config.default_branch),
                &format!("refs/heads/{}", config.default_branch),
            ],
        )?;
        let path = self
            .root
            .join(config.project_id.as_str())
            .join(config.session_id.as_str());
        let path_text = path.display().to_string();
        let pending = self.pending_file(config);

        // Read-only questions are answered before taking the lock (`worktree add -b` itself
        // refuses an existing branch, so nothing is lost if one appears in between).
        let reuse = refs.contains(&format!("refs/heads/{branch}"));
        if reuse {
            self.refuse_branch_in_use(repo, branch)?;
        }
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
            Some(base_among(&refs, &config.default_branch, repo)?)
        };
        // Only registering the worktree holds the lock: concurrent `git worktree add` runs read
        // each other's half-written `.git/worktrees/*` and fail. Checking the files out,
        // symlinks and post_create (which may run for minutes) happen outside it.
        let created_branch = {
            let _lock = self.lock_at(&common_dir)?;
            if self.files.is_present(&path).map_err(unanswered)? {
                return Err(PluginError::invalid_input(format!(
                    "workspace {path_text} already exists; remove it or use another session id"
                )));
            }
            // Owner-only: each project's folder, and the root when it is made here (a root of
            // the operator's own choosing keeps its modes). The checkouts inside keep git's
            // modes: nobody else can reach them.
            self.files
                .create_dir_all(path.parent().unwrap_or(&self.root), true)
                .map_err(|e| {
                    PluginError::failed(format!("creating {}: {e}", self.root.display()))
                })?;
            self.write_pending(&pending, &path_text)?;
            match &base {
                None => {
                    let args = ["worktree", "add", "--no-checkout", "--", &path_text, branch];
                    self.git_private(repo, &args).inspect_err(|_| {
                        let _ = self.files.remove_file(&pending);
                    })?;
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
                    self.git_private(repo, &args).inspect_err(|_| {
                        self.undo_locked(repo, &path, None);
                        let _ = self.files.remove_file(&pending);
                    })?;
                    Some(branch)
                }
            }
        };
        if let Err(error) = self.finish(config, repo, &path) {
            let _lock = self.lock(repo);
            self.undo_locked(repo, &path, created_branch);
            let _ = self.files.remove_file(&pending);
            let _ = self.files.remove_file(&self.made.join(intent_name(config)));
            return Err(error);
        }
        Ok(path_text)
    }

    /// A worktree whose `create` never finished (no `ao-ready`) also loses its branch when the
    /// branch holds nothing (`git branch -d` refuses one with unmerged commits, and that is kept):
    /// otherwise interrupted spawns would leave a branch each.
    fn destroy(&self, path: &str, delete_branch: bool) -> PluginResult<()> {
        let path = Path::new(path);
        if !self.files.try_exists(path).map_err(unanswered)? {
            return self.forget_vanished(path, delete_branch);
        }
        self.check_root()?;
        self.repair_moved();
        let session = self.session_git(path)?;
        let repo = session
            .common
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| session.common.clone());
        // The branch recorded when the worktree was made: the worktree's HEAD is the agent's
        // to change (a confined agent can point it at `main`), and the branch is deleted.
        let branch = match self.recorded(path) {
            Some((_, Some(branch))) => Some(branch),
            _ => self
                .git_in(&session, &["symbolic-ref", "--quiet", "--short", "HEAD"])
                .ok()
                .map(|b| b.trim().to_string()),
        };
        // Only what this data dir made, whatever a record says (records can be copied or
        // edited).
        self.check_ours(path)?;
        let ready = self.finished(path).unwrap_or(true);
        if !ready {
            // A create cut short (its `ao-host` killed during post_create) leaves post_create's
            // processes running in the worktree; nothing else runs in a worktree whose agent
            // never started.
            self.stop_processes_in(path);
        }
        let _lock = self.lock(&repo)?;
        let path_text = path.display().to_string();
        self.git(&repo, &["worktree", "remove", "--force", "--", &path_text])?;
        self.prune(&repo)?;
        if let Some(branch) = branch {
            self.remove_branch(&repo, &branch, delete_branch)?;
        }
        if let Some(name) = self.record_name(path) {
            let _ = self.files.remove_file(&self.made.join(name));
        }
        Ok(())
    }

    /// An error, with the fix, for a worktree still there that its repository no longer knows
    /// (the repository moved): an agent started in it would find git broken.
    fn exists(&self, path: &str) -> PluginResult<bool> {
        let path = Path::new(path);
        if !self
            .files
            .try_exists(&path.join(".git"))
            .map_err(unanswered)?
        {
            return Ok(false);
        }
        match self.unknown_to_git(path) {
            None => Ok(true),
            Some(why) => Err(PluginError::invalid_input(format!(
                "{} is a worktree its repository no longer knows ({why}); if the repository \
                 moved, run `git worktree repair {}` in it, then try again",
                path.display(),
                path.display()
            ))),
        }
    }

    /// Every `<root>/<project>/<session>` worktree whose owner record is this data dir, and
    /// every worktree an intent file of this data dir names (its `create` was cut short before
    /// writing the record). Worktrees without an owner record (made by hand, by an older
    /// version, or by another data dir's interrupted spawn) are never listed, so never removed
    /// by `gc`.
    fn list_owned(&self) -> PluginResult<Vec<String>> {
        self.check_root()?;
        self.repair_moved();
        let mut owned = self.pending_worktrees();
        if let Ok(projects) = self.files.read_dir(&self.root) {
            for project in projects {
                let project = self.root.join(project);
                let Ok(sessions) = self.files.read_dir(&project) else {
                    continue;
                };
                for session in sessions {
                    let path = project.join(session);
                    let ours = match self.owner_of(&path) {
                        Ok(Some(owner)) => self.owns(&owner),
                        Ok(None) => self
                            .files
                            .canonicalize(&path)
                            .is_ok_and(|real| self.made_by_v0_1_2(&path, &real)),
                        Err(_) => false,
                    };
                    if ours {
                        owned.push(path.display().to_string());
                    }
                }
            }
        }
        owned.extend(self.vanished_worktrees());
        owned.sort();
        owned.dedup();
        Ok(owned)
    }

    /// Uncommitted changes, including untracked files (ignored files do not count). A worktree
    /// whose `create` never finished holds none: no agent ran there, and its half-done checkout
    /// would show every file deleted.
    fn has_unsaved_work(&self, path: &str) -> PluginResult<bool> {
        let path = Path::new(path);
        // A worktree already gone (removed by its data dir's own kill, seen from a copy of that
        // data dir, or by hand) holds nothing.
        if !self.files.try_exists(path).map_err(unanswered)? {
            return Ok(false);
        }
        let session = self.session_git(path)?;
        if !self.finished(path)? {
            return Ok(false);
        }
        // Never into submodules: one an agent added runs its own config's programs there
        // (see `UNCONFINED_GIT_SETTINGS`), and its changes are the session's commits anyway.
        let status = self.git_in(
            &session,
            &[
                "status",
                "--porcelain",
                "--untracked-files=normal",
                "--ignore-submodules=all",
            ],
        )?;
        if !status.trim().is_empty() {
            return Ok(true);
        }
        // Commits made after the branch was last pushed: removing the worktree keeps them on
        // the branch, but an operator (or a merged pull request's clean-up) that expects the
        // work to be on the forge would lose track of them. A branch never pushed has no
        // upstream, and nothing to compare.
        if !self.git_in_ok(
            &session,
            &["rev-parse", "--verify", "--quiet", "@{upstream}"],
        )? {
            return Ok(false);
        }
        let ahead = self.git_in(&session, &["rev-list", "--count", "@{upstream}..HEAD"])?;
        Ok(ahead.trim() != "0")
    }

    fn commits_since(&self, path: &str, commit: &str) -> Result<Option<u32>, PluginFailure> {
        let object_id =
            matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit());
        if !object_id {
            return Err(PluginFailure::new(
                ErrorKind::InvalidInput,
                format!("{commit:?} is not a commit id (40 or 64 hexadecimal digits)"),
            ));
        }
        let path = Path::new(path);
        if !self.files.try_exists(path).map_err(unanswered)? {
            return Ok(None);
        }
        let session = self.session_git(path)?;
        // Known here, a commit, and in the checkout's history: another clone's commit that
        // merely sits on a branch of the same name is none of these.
        let in_history = self.git_in_ok(
            &session,
            &["cat-file", "-e", &format!("{commit}^{{commit}}")],
        )? && self
            .git_in_ok(&session, &["merge-base", "--is-ancestor", commit, "HEAD"])?;
        if !in_history {
            return Ok(None);
        }
        let count = self.git_in(
            &session,
            &["rev-list", "--count", &format!("{commit}..HEAD")],
        )?;
        count.trim().parse().map(Some).map_err(|_| {
            PluginFailure::new(
                ErrorKind::Failed,
                format!("`git rev-list --count` answered {count:?}, not a count"),
            )
        })
    }

    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        Ok(vec![
            self.git.version_check(&["--version"]),
            self.root_check(),
        ])
    }

    fn confinement(
        &self,
        query: &WorkspaceConfinementQuery,
    ) -> Result<WorkspaceConfinement, PluginFailure> {
        Ok(self.confine(query)?)
    }

    fn base_of(&self, repo: &str, default_branch: &str) -> PluginResult<String> {
        self.base_ref(Path::new(repo), default_branch)
    }

    /// Only sessions' branches (`session/…`, `orchestrator/…`) are ever considered, whatever a
    /// record names; `git branch -d` decides "merged" (into the checked-out branch), as a kill
    /// does.
    fn remove_merged_branches(
        &self,
        repo: &str,
        branches: &[String],
        dry_run: bool,
    ) -> PluginResult<Vec<String>> {
        let repo = Path::new(repo);
        let merged = self.git(
            repo,
            &[
                "for-each-ref",
                "--merged",
                "HEAD",
                "--format=%(refname:short)",
                "refs/heads/session/",
                "refs/heads/orchestrator/",
            ],
        )?;
        let checked_out: Vec<String> = self
            .worktrees(repo)?
            .into_iter()
            .filter_map(|worktree| worktree.branch)
            .collect();
        let candidates: Vec<String> = merged
            .lines()
            .filter(|branch| branches.iter().any(|b| b == branch))
            .filter(|branch| !checked_out.iter().any(|b| b == branch))
            .map(str::to_string)
            .collect();
        if dry_run || candidates.is_empty() {
            return Ok(candidates);
        }
        let _lock = self.lock(repo)?;
        Ok(candidates
            .into_iter()
            .filter(|branch| self.git(repo, &["branch", "-d", "--", branch]).is_ok())
            .collect())
    }

    /// The main worktree of the repository around `dir` (from any of its worktrees) and origin's
    /// HEAD branch, else the branch checked out there. A repository without a commit is not
    /// found: nothing can start from it.
    fn discover_repository(&self, dir: &str) -> PluginResult<RepositoryInfo> {
        let dir = Path::new(dir);
        if !self.files.is_dir(dir) {
            return Err(PluginError::not_found(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        if !self.git_ok(dir, &["rev-parse", "--git-dir"])? {
            return Err(PluginError::not_found(format!(
                "{} is not inside a git repository; run ao-host from one, or configure a project \
                 (`projects:` in ao-rs.yaml)",
                dir.display()
            )));
        }
        // A worktree branches from a commit: without one, every spawn would fail half-way.
        if !self.git_ok(dir, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"])? {
            return Err(PluginError::not_found(format!(
                "the git repository at {} has no commit yet, and sessions start from one; make \
                 the first commit (`git commit --allow-empty -m \"first commit\"`)",
                dir.display()
            )));
        }
        let main = self.worktrees(dir)?.into_iter().next().ok_or_else(|| {
            PluginError::failed(format!(
                "`git worktree list` in {} listed no worktree",
                dir.display()
            ))
        })?;
        let default_branch = self.origin_head(dir)?.or(main.branch);
        Ok(RepositoryInfo {
            root: main.path.display().to_string().into(),
            default_branch: default_branch.map(Into::into).into(),
        })
    }
}

/// The error for a question about files that could not be answered (the machine they are on
/// does not answer): never taken for "not there".
fn unanswered(error: std::io::Error) -> PluginError {
    PluginError::unavailable(error.to_string())
}

/// [`GitWorktree::stop_processes_in`] on this machine.
fn stop_local_processes_in(dir: &Path) {
    let Ok(dir) = dir.canonicalize() else {
        return;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    let me = std::process::id();
    for entry in entries.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let inside =
            std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(&dir));
        if inside && pid != me {
            // SAFETY: kill only sends a signal.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// `raw` with a leading `~/` replaced by the home folder of the machine the worktrees are on
/// (asked of its shell, on another host).
fn expand_home(raw: &str, remote: bool) -> PluginResult<PathBuf> {
    let Some(rest) = raw.strip_prefix("~/") else {
        return Ok(PathBuf::from(raw));
    };
    let home = if remote {
        Some(Program::new("sh", "a POSIX shell").run(None, ["-c", "printf %s \"$HOME\""])?)
            .filter(|home| !home.is_empty())
    } else {
        std::env::var("HOME").ok()
    };
    home.map(|home| PathBuf::from(home).join(rest))
        .ok_or_else(|| {
            PluginError::config("plugins.config.git-worktree.root uses `~` but $HOME is not set")
        })
}

/// The base a new session's branch starts from, among the refs known to exist: `origin/<default>`
/// when the remote has it (so work starts from what was pushed), else the local branch.
fn base_among(refs: &HashSet<String>, default_branch: &str, repo: &Path) -> PluginResult<String> {
    if refs.contains(&format!("refs/remotes/origin/{default_branch}")) {
        return Ok(format!("origin/{default_branch}"));
    }
    if refs.contains(&format!("refs/heads/{default_branch}")) {
        return Ok(default_branch.to_string());
    }
    Err(PluginError::invalid_input(format!(
        "default branch `{default_branch}` exists neither locally nor as origin/{default_branch} in {}; set `default_branch` for the project",
        repo.display()
    )))
}

/// The setting that names a project's repository where this instance works: `repo` on this
/// machine, `projects.P.hosts.H` (the clone's path there) on another.
fn repo_setting(project: &str) -> String {
    match remote::current() {
        Some(transport) => format!(
            "`projects.{project}.hosts.{}` (where the project's clone is on that host)",
            transport.host
        ),
        None => format!("`repo` for project `{project}`"),
    }
}

/// " on host `H`" on another machine, else nothing: for messages.
fn place() -> String {
    remote::current()
        .map(|transport| transport.on_host())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_entries_that_leave_the_tree_are_refused() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        for entry in ["/etc/passwd", "../outside", "a/../../b", ""] {
            let err = plugin()
                .link_into(repo.path(), workspace.path(), entry)
                .unwrap_err();
            assert!(err.message().contains("relative path"), "{entry}: {err}");
        }
    }

    #[test]
    fn symlink_entries_naming_a_git_folder_are_refused() {
        for entry in [".git", "sub/.GIT", "./.Git/config", "a/.git/b"] {
            let err = check_symlink_entry(entry).unwrap_err();
            assert!(err.message().contains("`.git` folder"), "{entry}: {err}");
        }
        for entry in [".gitignore", "sub/.github", "git", ".env"] {
            check_symlink_entry(entry).unwrap();
        }
    }

    /// The plugin as built on this machine (its folders are made only when used).
    fn plugin() -> GitWorktree {
        GitWorktree::new(&PluginContext {
            plugin_name: "git-worktree".into(),
            data_dir: std::env::temp_dir().display().to_string().into(),
            config_yaml: Default::default(),
        })
        .unwrap()
    }

    #[test]
    fn a_symlinked_parent_that_points_outside_is_refused() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join("conf")).unwrap();
        std::fs::write(repo.path().join("conf/.env"), "X=1").unwrap();
        std::os::unix::fs::symlink(outside.path(), workspace.path().join("conf")).unwrap();
        let err = plugin()
            .link_into(repo.path(), workspace.path(), "conf/.env")
            .unwrap_err();
        assert!(err.message().contains("outside the workspace"), "{err}");
        assert!(!outside.path().join(".env").exists());
    }

    #[test]
    fn a_plain_entry_links_to_the_repository_copy() {
        let repo = tempfile::tempdir().unwrap();
        let workspace = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join(".env"), "X=1").unwrap();
        plugin()
            .link_into(repo.path(), workspace.path(), ".env")
            .unwrap();
        let link = workspace.path().join(".env");
        assert!(link.is_symlink());
        assert_eq!(std::fs::read_to_string(link).unwrap(), "X=1");
    }
}
