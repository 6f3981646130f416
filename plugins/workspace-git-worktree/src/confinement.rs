//! What a confined session may write in its repository ([`Workspace::confinement`]), and the
//! checks that keep the host's own git commands in a session's worktree from being redirected
//! by files the agent could change.
//!
//! A commit on the session's branch writes the worktree's admin folder
//! (`<common>/worktrees/<name>`: index, HEAD, its reflog), new loose objects, and the branch's
//! ref and reflog. git writes a ref by creating `<ref>.lock` beside it and renaming it over the
//! ref, so the folder holding the branch must be writable, and must hold no other branch: the
//! session's branch is `session/<id>/work`, alone in `refs/heads/session/<id>/`.
//!
//! Everything else stays read-only — the repository's `config`, `hooks/`, `info/`, every other
//! ref, the packs — and a few files inside the writable admin folder are bound read-only again:
//! `commondir`, `gitdir` and the worktree's `.git` file (rewritten, they would send the
//! operator's git elsewhere), and `config.worktree` (with `extensions.worktreeConfig`, the
//! operator's unconfined git would read `core.fsmonitor` or `core.hooksPath` from it).
//!
//! [`Workspace::confinement`]: ao_plugin_api::Workspace::confinement

use std::path::{Path, PathBuf};

use ao_plugin_api::{
    sandbox::{PathAccess, PathRule, WorkspaceConfinement, WorkspaceConfinementQuery},
    PluginError, PluginResult,
};

use crate::{unanswered, GitWorktree, OWNER_FILE, READY_FILE};

/// A session worktree's git folders, checked against what the plugin recorded when it made the
/// worktree: git run with these (never discovering them from the worktree) runs on the
/// session's repository, whatever the agent wrote in its worktree.
pub(crate) struct SessionGit {
    /// The worktree (canonical).
    pub worktree: PathBuf,
    /// Its admin folder, `<common>/worktrees/<name>` (canonical).
    pub admin: PathBuf,
    /// The repository's common git dir (canonical).
    pub common: PathBuf,
}

/// The advice given with a branch that cannot be confined.
const ALONE: &str = "a confined session needs a branch alone in its folder, e.g. session/<id>/work";

impl GitWorktree {
    /// The git folders of the session worktree at `path`, refused when its `.git` file or its
    /// admin folder's `commondir` no longer name what the plugin made: the admin folder must be
    /// `<common>/worktrees/<name>` of the repository recorded at `create` (the made file, in
    /// the data dir, out of the agent's reach), and name that repository back.
    pub(crate) fn session_git(&self, path: &Path) -> PluginResult<SessionGit> {
        let admin = self.trusted_admin(path)?;
        let canonical = |path: &Path| self.files.canonicalize(path).map_err(unanswered);
        let worktree = canonical(path)?;
        let admin = canonical(&admin)?;
        let refuse = |why: String| {
            Err(PluginError::invalid_input(format!(
                "{why}: something rewrote it, so ao-host runs no git there; check the worktree, \
                 then remove it by hand (`git worktree remove --force {}`)",
                path.display()
            )))
        };
        // A recorded repository gone from there (moved, and its worktrees repaired) records
        // nothing to check against.
        let recorded = self
            .recorded(path)
            .and_then(|(common, _)| self.files.canonicalize(&common).ok());
        if let Some(recorded) = &recorded {
            if admin.parent() != Some(recorded.join("worktrees").as_path()) {
                return refuse(format!(
                    "{} names {}, not an admin folder of the repository {}",
                    path.join(".git").display(),
                    admin.display(),
                    recorded.display()
                ));
            }
        }
        let commondir = admin.join("commondir");
        let named = self
            .files
            .read_to_string(&commondir)
            .map_err(|e| {
                PluginError::invalid_input(format!(
                    "{}: {} cannot be read ({e}); this is not a worktree this plugin made",
                    path.display(),
                    commondir.display()
                ))
            })
            .map(|text| admin.join(text.trim()))?;
        let common = canonical(&named)?;
        if let Some(recorded) = recorded.filter(|recorded| *recorded != common) {
            return refuse(format!(
                "{} names {}, not the repository {}",
                commondir.display(),
                common.display(),
                recorded.display()
            ));
        }
        Ok(SessionGit {
            worktree,
            admin,
            common,
        })
    }

    /// The common git dir and branch the made file of the worktree at `path` records.
    pub(crate) fn recorded(&self, path: &Path) -> Option<(PathBuf, Option<String>)> {
        let name = self.record_name(path)?;
        let text = self.files.read_private(&self.made.join(name)).ok()?;
        let mut lines = text.lines();
        if Path::new(lines.next()?) != path {
            return None;
        }
        let common = PathBuf::from(lines.next()?);
        let branch = lines.next().filter(|b| !b.is_empty()).map(str::to_string);
        Some((common, branch))
    }

    /// git in a session's worktree, with its git folders given explicitly.
    pub(crate) fn git_in(&self, session: &SessionGit, args: &[&str]) -> PluginResult<String> {
        self.git.run(Some(&session.worktree), session.argv(args))
    }

    /// Whether git in a session's worktree succeeds (see [`Self::git_in`]).
    pub(crate) fn git_in_ok(&self, session: &SessionGit, args: &[&str]) -> PluginResult<bool> {
        Ok(self
            .git
            .output(Some(&session.worktree), session.argv(args), None)?
            .status
            .success())
    }

    /// See [`Workspace::confinement`](ao_plugin_api::Workspace::confinement) and the module
    /// docs.
    pub(crate) fn confine(
        &self,
        query: &WorkspaceConfinementQuery,
    ) -> PluginResult<WorkspaceConfinement> {
        let path = Path::new(query.path.as_str());
        let branch = query.branch.as_str();
        let session = self.session_git(path)?;
        let head = self
            .files
            .read_to_string(&session.admin.join("HEAD"))
            .map_err(unanswered)?;
        if head.trim() != format!("ref: refs/heads/{branch}") {
            return Err(PluginError::invalid_input(format!(
                "{} has not checked out branch `{branch}` ({} says {:?}); confine the session on \
                 the branch its worktree was made on",
                path.display(),
                session.admin.join("HEAD").display(),
                head.trim()
            )));
        }
        let Some((folder, _)) = branch.rsplit_once('/') else {
            return Err(PluginError::invalid_input(format!(
                "branch `{branch}` has no folder of its own under refs/heads: {ALONE}"
            )));
        };
        if self.files.is_dir(&session.common.join("reftable")) {
            return Err(PluginError::unsupported(format!(
                "{} keeps its refs in a reftable, and a sandbox can only let a session write \
                 its branch as a file; confine sessions of a repository with files refs",
                session.common.display()
            )));
        }
        let common = |rest: &str| session.common.join(rest);
        let admin = |rest: &str| session.admin.join(rest);
        let listed = self.git.run(
            Some(&session.common),
            [
                &format!("--git-dir={}", session.common.display()),
                "for-each-ref",
                "--format=%(refname)",
                &format!("refs/heads/{folder}/"),
            ],
        )?;
        let own = format!("refs/heads/{branch}");
        if let Some(other) = listed.lines().find(|name| *name != own) {
            return Err(PluginError::invalid_input(format!(
                "branch `{branch}` shares refs/heads/{folder}/ with {other}, which a confined \
                 session could then move: {ALONE}"
            )));
        }
        let refs = common(&format!("refs/heads/{folder}"));
        let logs = common(&format!("logs/refs/heads/{folder}"));
        for dir in [&refs, &logs] {
            self.files
                .create_dir_all(dir, true)
                .map_err(|e| PluginError::failed(format!("creating {}: {e}", dir.display())))?;
        }
        // Made now, empty, so that the agent cannot make it (see the module docs).
        let worktree_config = admin("config.worktree");
        if !self
            .files
            .try_exists(&worktree_config)
            .map_err(unanswered)?
        {
            self.files.write(&worktree_config, b"").map_err(|e| {
                PluginError::failed(format!("creating {}: {e}", worktree_config.display()))
            })?;
        }
        let mut paths: Vec<PathRule> = self
            .other_worktrees(&session)?
            .into_iter()
            .map(|other| rule(&other, PathAccess::Hidden))
            .collect();
        paths.extend([
            rule(&session.admin, PathAccess::Writable),
            rule(&common("objects"), PathAccess::Writable),
            rule(&common("objects/pack"), PathAccess::ReadOnly),
            rule(&common("objects/info"), PathAccess::ReadOnly),
            rule(&refs, PathAccess::Writable),
            rule(&logs, PathAccess::Writable),
            rule(&session.worktree.join(".git"), PathAccess::ReadOnly),
        ]);
        // The plugin's own records too: an agent that could rewrite them would make the host
        // take its worktree for another data dir's, or for one never finished.
        for name in [
            "commondir",
            "gitdir",
            "config.worktree",
            OWNER_FILE,
            READY_FILE,
        ] {
            if self.files.try_exists(&admin(name)).map_err(unanswered)? {
                paths.push(rule(&admin(name), PathAccess::ReadOnly));
            }
        }
        Ok(WorkspaceConfinement {
            paths: paths.into_iter().collect(),
            notes: Default::default(),
        })
    }

    /// The repository's worktrees to hide from a session: all but its own, the main one (it
    /// holds the common git dir the session writes to; the host's policy keeps it read-only),
    /// and any that holds the session's worktree. Canonical; those gone from disk are skipped.
    fn other_worktrees(&self, session: &SessionGit) -> PluginResult<Vec<PathBuf>> {
        let listing = self.git.run(
            Some(&session.common),
            [
                &format!("--git-dir={}", session.common.display()),
                "worktree",
                "list",
                "--porcelain",
                "-z",
            ],
        )?;
        let mut others = Vec::new();
        for (index, path) in listing
            .split('\0')
            .filter_map(|field| field.strip_prefix("worktree "))
            .enumerate()
        {
            let Ok(path) = self.files.canonicalize(Path::new(path)) else {
                continue;
            };
            let keep = index == 0
                || session.worktree.starts_with(&path)
                || session.common.starts_with(&path);
            if !keep {
                others.push(path);
            }
        }
        Ok(others)
    }
}

/// Settings every git call the host makes in a session's worktree runs with, over any the
/// repository or the worktree holds: a confined agent writes the worktree and its index, so it
/// can add a submodule whose own config (which it wrote) names a program, and git would run it
/// unconfined, as the operator, when it looks into that submodule (`core.fsmonitor`, a filter,
/// a hook). `-c` settings reach git's child processes too (through `GIT_CONFIG_PARAMETERS`).
const UNCONFINED_GIT_SETTINGS: [&str; 6] = [
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "submodule.recurse=false",
];

impl SessionGit {
    /// `args` after the [`UNCONFINED_GIT_SETTINGS`], `--git-dir` and `--work-tree`.
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv: Vec<String> = UNCONFINED_GIT_SETTINGS
            .iter()
            .map(|arg| arg.to_string())
            .collect();
        argv.extend([
            format!("--git-dir={}", self.admin.display()),
            format!("--work-tree={}", self.worktree.display()),
        ]);
        argv.extend(args.iter().map(|arg| arg.to_string()));
        argv
    }
}

fn rule(path: &Path, access: PathAccess) -> PathRule {
    PathRule::new(path.display().to_string(), access)
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    use ao_plugin_api::{PluginContext, PluginErrorKind, Workspace, WorkspaceCreateConfig};

    use super::*;

    /// A repository with one commit on `main`, a plugin whose data dir (and worktree root) is
    /// beside it, and two sessions' worktrees on `session/<id>/work`.
    struct Setup {
        _dir: tempfile::TempDir,
        repo: PathBuf,
        plugin: GitWorktree,
        s1: PathBuf,
        s2: PathBuf,
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let repo = root.join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["config", "user.name", "Op"]);
        git(&repo, &["config", "user.email", "op@example.com"]);
        std::fs::write(repo.join("README"), "hello\n").unwrap();
        git(&repo, &["add", "README"]);
        git(&repo, &["commit", "-q", "-m", "first"]);
        let data = root.join("data");
        std::fs::create_dir(&data).unwrap();
        let plugin = GitWorktree::new(&PluginContext {
            plugin_name: "git-worktree".into(),
            data_dir: data.display().to_string().into(),
            config_yaml: Default::default(),
        })
        .unwrap();
        let create = |session: &str| {
            PathBuf::from(
                plugin
                    .create(&WorkspaceCreateConfig {
                        project_id: "app".into(),
                        session_id: session.into(),
                        branch: format!("session/{session}/work").into(),
                        repo_path: repo.display().to_string().into(),
                        default_branch: "main".into(),
                        symlinks: Default::default(),
                        post_create: Default::default(),
                        reuse_branch: false,
                    })
                    .unwrap(),
            )
        };
        let (s1, s2) = (create("s1"), create("s2"));
        Setup {
            _dir: dir,
            repo,
            plugin,
            s1,
            s2,
        }
    }

    fn query(path: &Path, branch: &str) -> WorkspaceConfinementQuery {
        WorkspaceConfinementQuery {
            path: path.display().to_string().into(),
            branch: branch.into(),
        }
    }

    /// `script` run by `sh` in `cwd` under real bubblewrap, confined as the host would: the
    /// whole system read-only, the worktree writable, then the plugin's rules in order.
    fn confined(worktree: &Path, rules: &[PathRule], script: &str) -> Output {
        let mut bwrap = Command::new("bwrap");
        bwrap.args(["--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev"]);
        bwrap.arg("--bind").arg(worktree).arg(worktree);
        for rule in rules {
            let path = rule.path.as_str();
            match rule.access {
                PathAccess::Writable => bwrap.args(["--bind", path, path]),
                PathAccess::ReadOnly => bwrap.args(["--ro-bind", path, path]),
                PathAccess::Hidden if Path::new(path).is_dir() => {
                    bwrap.args(["--tmpfs", path, "--remount-ro", path])
                }
                PathAccess::Hidden => bwrap.args(["--ro-bind", "/dev/null", path]),
                PathAccess::Private => bwrap.args(["--tmpfs", path]),
            };
        }
        bwrap
            .arg("--chdir")
            .arg(worktree)
            .args(["--", "sh", "-c", script])
            .output()
            .unwrap()
    }

    #[test]
    fn a_confined_commit_on_its_own_branch_succeeds_and_nothing_else_moves() {
        let s = setup();
        let rules = s
            .plugin
            .confine(&query(&s.s1, "session/s1/work"))
            .unwrap()
            .paths;
        let main_before = git(&s.repo, &["rev-parse", "main"]);
        let s2_before = git(&s.repo, &["rev-parse", "session/s2/work"]);

        let commit = confined(
            &s.s1,
            &rules,
            "echo work > f && git add f && git commit -q -m confined",
        );
        assert!(commit.status.success(), "{commit:?}");
        assert_eq!(
            git(&s.repo, &["log", "-1", "--format=%s", "session/s1/work"]),
            "confined"
        );

        let common = s.repo.join(".git");
        for (what, script) in [
            (
                "move main",
                "git update-ref refs/heads/main HEAD".to_string(),
            ),
            (
                "move another session's branch",
                "git update-ref refs/heads/session/s2/work HEAD".into(),
            ),
            (
                "write main's ref file",
                format!("git rev-parse HEAD > {}/refs/heads/main", common.display()),
            ),
            (
                "write the repository's config",
                format!("echo '[core]fsmonitor=x' >> {}/config", common.display()),
            ),
            (
                "plant a hook",
                format!("echo x > {}/hooks/post-checkout", common.display()),
            ),
            (
                "write info/",
                format!("echo x > {}/info/exclude", common.display()),
            ),
            ("rewrite .git", "echo 'gitdir: /tmp' > .git".into()),
            (
                "read another session's worktree",
                format!("cat {}/README", s.s2.display()),
            ),
            (
                "write the main checkout",
                format!("echo x > {}/README", s.repo.display()),
            ),
        ] {
            let output = confined(&s.s1, &rules, &script);
            assert!(!output.status.success(), "{what} succeeded: {output:?}");
        }
        assert_eq!(git(&s.repo, &["rev-parse", "main"]), main_before);
        assert_eq!(git(&s.repo, &["rev-parse", "session/s2/work"]), s2_before);
        assert_eq!(
            std::fs::read_to_string(s.repo.join("README")).unwrap(),
            "hello\n"
        );
    }

    #[test]
    fn the_rules_bind_the_worktree_config_read_only_and_hide_other_worktrees() {
        let s = setup();
        let rules = s
            .plugin
            .confine(&query(&s.s1, "session/s1/work"))
            .unwrap()
            .paths;
        let admin = s.repo.join(".git/worktrees/s1");
        let config = admin.join("config.worktree");
        assert!(config.is_file(), "config.worktree is made so no agent can");
        assert!(rules.contains(&rule(&config, PathAccess::ReadOnly)));
        assert!(rules.contains(&rule(&s.s2, PathAccess::Hidden)));
        assert!(!rules.iter().any(|r| Path::new(r.path.as_str()) == s.repo));
        for dir in ["refs/heads/session/s1", "logs/refs/heads/session/s1"] {
            let meta = std::fs::metadata(s.repo.join(".git").join(dir)).unwrap();
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o077, 0, "{dir} owner-only");
        }
    }

    #[test]
    fn a_branch_not_alone_in_its_folder_is_refused() {
        let s = setup();
        git(&s.repo, &["branch", "session/s1/other", "main"]);
        let err = s
            .plugin
            .confine(&query(&s.s1, "session/s1/work"))
            .unwrap_err();
        assert_eq!(err.kind, PluginErrorKind::InvalidInput);
        assert!(err.message().contains("session/<id>/work"), "{err}");
        assert!(
            err.message().contains("refs/heads/session/s1/other"),
            "{err}"
        );

        let flat = setup();
        git(&flat.s1, &["checkout", "-q", "-b", "flat"]);
        let err = flat.plugin.confine(&query(&flat.s1, "flat")).unwrap_err();
        assert!(err.message().contains("alone in its folder"), "{err}");
    }

    #[test]
    fn a_packed_ref_in_the_branch_folder_is_refused() {
        let s = setup();
        git(&s.repo, &["branch", "session/s1/packed", "main"]);
        git(&s.repo, &["pack-refs", "--all"]);
        let err = s
            .plugin
            .confine(&query(&s.s1, "session/s1/work"))
            .unwrap_err();
        assert!(err.message().contains("session/s1/packed"), "{err}");
    }

    #[test]
    fn a_rewritten_dot_git_does_not_redirect_the_hosts_git() {
        let s = setup();
        let crafted = s._dir.path().join("crafted");
        std::fs::create_dir(&crafted).unwrap();
        git(&crafted, &["init", "-q"]);
        let marker = s._dir.path().join("fsmonitor-ran");
        let hook = crafted.join("monitor");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
        git(
            &crafted,
            &["config", "core.fsmonitor", hook.to_str().unwrap()],
        );
        let head = git(&s.repo, &["rev-parse", "main"]);
        std::fs::write(
            s.s1.join(".git"),
            format!("gitdir: {}\n", crafted.join(".git").display()),
        )
        .unwrap();

        let path = s.s1.display().to_string();
        let err = s.plugin.has_unsaved_work(&path).unwrap_err();
        assert!(err.message().contains("something rewrote it"), "{err}");
        assert!(s.plugin.commits_since(&path, &head).is_err());
        assert!(s.plugin.destroy(&path, true).is_err());
        assert!(!marker.exists(), "the crafted fsmonitor ran");

        // What the check prevents: git discovering the folders itself runs the crafted hook.
        let _ = Command::new("git")
            .current_dir(&s.s1)
            .arg("status")
            .output()
            .unwrap();
        assert!(marker.exists(), "the crafted fsmonitor is a real threat");
    }

    /// An agent writes its worktree and index: a submodule it adds, whose own config it wrote,
    /// must not run a program when the host asks about the worktree (found by an adversary:
    /// `session kill` ran it as the operator).
    #[test]
    fn a_submodule_an_agent_planted_runs_nothing_when_the_host_looks() {
        let s = setup();
        let marker = s._dir.path().join("submodule-monitor-ran");
        let hook = s._dir.path().join("monitor");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\ntouch {}\nexit 1\n", marker.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o700)).unwrap();
        let sub = s.s1.join("sub");
        std::fs::create_dir(&sub).unwrap();
        git(&sub, &["init", "-q"]);
        git(
            &sub,
            &[
                "-c",
                "user.name=a",
                "-c",
                "user.email=a@b",
                "commit",
                "-q",
                "--allow-empty",
                "-m",
                "s",
            ],
        );
        git(&sub, &["config", "core.fsmonitor", hook.to_str().unwrap()]);
        git(&s.s1, &["add", "sub"]);

        let path = s.s1.display().to_string();
        let head = git(&s.repo, &["rev-parse", "main"]);
        s.plugin.has_unsaved_work(&path).unwrap();
        s.plugin.commits_since(&path, &head).unwrap();
        s.plugin.destroy(&path, true).unwrap();
        assert!(!marker.exists(), "the planted submodule's fsmonitor ran");
    }

    #[test]
    fn a_rewritten_commondir_is_refused() {
        let s = setup();
        let elsewhere = s._dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        git(&elsewhere, &["init", "-q"]);
        std::fs::write(
            s.repo.join(".git/worktrees/s1/commondir"),
            format!("{}\n", elsewhere.join(".git").display()),
        )
        .unwrap();
        let err = s
            .plugin
            .has_unsaved_work(&s.s1.display().to_string())
            .unwrap_err();
        assert!(err.message().contains("commondir"), "{err}");
    }

    #[test]
    fn destroy_deletes_the_recorded_branch_not_the_one_head_names() {
        let s = setup();
        std::fs::write(
            s.repo.join(".git/worktrees/s1/HEAD"),
            "ref: refs/heads/main\n",
        )
        .unwrap();
        s.plugin.destroy(&s.s1.display().to_string(), true).unwrap();
        git(&s.repo, &["rev-parse", "--verify", "main"]);
        let gone = Command::new("git")
            .current_dir(&s.repo)
            .args(["rev-parse", "--verify", "--quiet", "session/s1/work"])
            .status()
            .unwrap();
        assert!(!gone.success(), "the session's branch is deleted");
    }
}
