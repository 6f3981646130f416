//! The path rules of one confined session, in the order the team contract fixes (see
//! `ao_plugin_api::sandbox`: each rule applies over what came before it on its path and below,
//! and what no rule names is read-only):
//!
//! 1. `Hidden` the operator's secrets ([`DEFAULT_HIDDEN`] under the home folder of the machine
//!    the agent runs on) and `sandbox.hidden`;
//! 2. `Hidden` the data dir (this machine's sessions only: another host has none): every other
//!    session's record, state, usage and worktree;
//! 3. `Private` `/tmp`;
//! 4. `Writable` the session's worktree;
//! 5. the workspace plugin's rules (what a commit on the session's own branch writes, what must
//!    stay read-only inside that, the other worktrees hidden);
//! 6. the agent plugin's rules (its per-session config home);
//! 7. `Writable` the session's own agent-state folder, so `ao-host hook` still reports;
//! 8. `ReadOnly` what the hook must read inside the data dir (the config, the plugin folder, the
//!    `ao-host` program, when they live there);
//! 9. `Writable` `sandbox.writable`;
//! 10. `Hidden` what the runtime names of itself (its server's socket, through which a confined
//!     agent could type into every other session), and the operator's agent sockets on this
//!     machine (`$XDG_RUNTIME_DIR`, `$SSH_AUTH_SOCK`: a key never read can still be used through
//!     its agent). Last, so no rule before can open them again.
//!
//! Paths are made canonical on this machine (symlinks resolved: a rule on a link would guard
//! the link, not what it leads to); another host's paths come from that host's own plugins and
//! its `$HOME`, and are taken as given. A configured writable path may neither hold nor lie
//! inside a path the host governs itself (`writable: [~]` would undo every hidden secret).

use std::{
    io,
    path::{Component, Path, PathBuf},
};

use ao_plugin_api::sandbox::{PathAccess, PathRule};

use crate::config::SandboxConfig;

/// What every confined session hides under the home folder: keys, cloud, forge and package
/// registry credentials; the agent CLIs' own homes (each holds every unconfined session's
/// conversations, and a confined agent runs on a seeded copy of its own); the default data
/// dir, for a session of another data dir (its worktrees, its dashboard token).
pub const DEFAULT_HIDDEN: [&str; 22] = [
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".config/hub",
    ".kube",
    ".docker",
    ".git-credentials",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".vault-token",
    ".claude",
    ".claude.json",
    ".codex",
    ".gemini",
    ".local/share/opencode",
    ".ao-rs",
];

/// Why no policy could be built.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{from} gave {path:?}, which is not an absolute path without `..`; a sandbox rule must name one place")]
    NotAbsolute { from: String, path: String },
    #[error("resolving {path} (from {from}): {error}")]
    Resolve {
        from: String,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{from} asked for {path} to be {access:?}; a runtime may only hide its own paths from a confined agent")]
    RuntimeNotHidden {
        from: String,
        path: String,
        access: PathAccess,
    },
    #[error("{from}: {path} does not exist; create it, or take it out of the list")]
    Missing { from: String, path: PathBuf },
    #[error("{from}: {path} {relation} {governed}, which the sandbox keeps {access} itself; name a folder that neither holds nor lies inside it")]
    OverGoverned {
        from: String,
        path: PathBuf,
        relation: &'static str,
        governed: PathBuf,
        access: &'static str,
    },
}

/// This machine's data dir as a confined session sees it.
#[derive(Debug, Clone, Copy)]
pub struct DataDirAccess<'a> {
    pub data_dir: &'a Path,
    /// The session's own agent-state folder (it must exist).
    pub agent_state: &'a Path,
    /// What `ao-host hook` reads (the config file, the plugin folders, the program itself):
    /// made readable again where it lies inside the data dir.
    pub hook_reads: &'a [PathBuf],
}

/// Everything one session's policy is built from.
#[derive(Debug, Clone, Copy)]
pub struct PolicyInputs<'a> {
    pub config: &'a SandboxConfig,
    /// Where the settings came from, for messages (`projects.app.sandbox`).
    pub setting: &'a str,
    /// The home folder on the machine the agent runs on.
    pub home: &'a Path,
    /// The agent runs on this machine: paths are resolved here. Another host's are taken as
    /// its plugins gave them.
    pub local: bool,
    pub worktree: &'a str,
    /// [`ao_plugin_api::sandbox::WorkspaceConfinement::paths`].
    pub workspace: &'a [PathRule],
    /// The workspace plugin's name, for messages.
    pub workspace_plugin: &'a str,
    /// [`ao_plugin_api::sandbox::ConfinedLaunchPlan::paths`].
    pub agent: &'a [PathRule],
    pub agent_plugin: &'a str,
    /// `None` on another host.
    pub data_dir: Option<DataDirAccess<'a>>,
    /// [`ao_plugin_api::Runtime::confinement`]: `Hidden` rules only.
    pub runtime: &'a [PathRule],
    pub runtime_plugin: &'a str,
    /// The operator's agent sockets on the agent's machine (`$XDG_RUNTIME_DIR`,
    /// `$SSH_AUTH_SOCK`), hidden last.
    pub sockets: &'a [PathBuf],
    /// The project's repository on this machine: a configured writable path may neither hold
    /// nor lie inside it (`.git/hooks` writable would run the agent's code in the operator's
    /// git). `None` on another host.
    pub repository: Option<&'a Path>,
}

/// The rules being built, each path resolved as it is added.
struct Rules {
    local: bool,
    rules: Vec<PathRule>,
}

impl Rules {
    fn add(&mut self, from: &str, path: &Path, access: PathAccess) -> Result<(), PolicyError> {
        let path = self.place(from, path)?;
        self.rules
            .push(PathRule::new(path.display().to_string(), access));
        Ok(())
    }

    fn add_all(&mut self, from: &str, rules: &[PathRule]) -> Result<(), PolicyError> {
        for rule in rules {
            self.add(from, Path::new(rule.path.as_str()), rule.access)?;
        }
        Ok(())
    }

    /// `path` checked and, on this machine, resolved.
    fn place(&self, from: &str, path: &Path) -> Result<PathBuf, PolicyError> {
        let plain = path.is_absolute()
            && !path.components().any(|c| c == Component::ParentDir)
            && !path.as_os_str().as_encoded_bytes().contains(&0);
        if !plain {
            return Err(PolicyError::NotAbsolute {
                from: from.to_string(),
                path: path.display().to_string(),
            });
        }
        if !self.local {
            return Ok(path.to_path_buf());
        }
        canonical(path).map_err(|error| PolicyError::Resolve {
            from: from.to_string(),
            path: path.to_path_buf(),
            error,
        })
    }
}

/// `path` with every symlink resolved; of a path that does not exist (a secret the operator
/// does not have), its deepest existing folder resolved and the rest as written.
fn canonical(path: &Path) -> io::Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(resolved) => Ok(resolved),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return Err(e);
            };
            Ok(canonical(parent)?.join(name))
        }
        Err(e) => Err(e),
    }
}

/// The ordered rules of one session (see the module docs).
pub fn build(inputs: &PolicyInputs<'_>) -> Result<Vec<PathRule>, PolicyError> {
    let setting = inputs.setting;
    let mut rules = Rules {
        local: inputs.local,
        rules: Vec::new(),
    };
    for secret in DEFAULT_HIDDEN {
        rules.add(
            "the sandbox's secrets",
            &inputs.home.join(secret),
            PathAccess::Hidden,
        )?;
    }
    let hidden_from = format!("{setting}.hidden");
    for path in &inputs.config.hidden {
        rules.add(&hidden_from, &path.on(inputs.home), PathAccess::Hidden)?;
    }
    if let Some(data) = &inputs.data_dir {
        rules.add("the data dir", data.data_dir, PathAccess::Hidden)?;
    }
    rules.add("the private /tmp", Path::new("/tmp"), PathAccess::Private)?;
    rules.add(
        "the workspace",
        Path::new(inputs.worktree),
        PathAccess::Writable,
    )?;
    let from = format!("the {} workspace plugin", inputs.workspace_plugin);
    rules.add_all(&from, inputs.workspace)?;
    let from = format!("the {} agent plugin", inputs.agent_plugin);
    rules.add_all(&from, inputs.agent)?;
    if let Some(data) = &inputs.data_dir {
        rules.add(
            "the session's agent state",
            data.agent_state,
            PathAccess::Writable,
        )?;
        let data_dir = rules.place("the data dir", data.data_dir)?;
        for read in data.hook_reads {
            let placed = rules.place("what the hook reads", read)?;
            if placed.starts_with(&data_dir) {
                rules.add("what the hook reads", &placed, PathAccess::ReadOnly)?;
            }
        }
    }
    let writable_from = format!("{setting}.writable");
    for path in &inputs.config.writable {
        let placed = rules.place(&writable_from, &path.on(inputs.home))?;
        if rules.local && !placed.exists() {
            return Err(PolicyError::Missing {
                from: writable_from,
                path: placed,
            });
        }
        check_not_over_governed(&writable_from, &placed, &rules.rules)?;
        if let Some(repository) = inputs.repository {
            let repository = rules.place("the repository", repository)?;
            let relation = if placed == repository {
                Some("is")
            } else if repository.starts_with(&placed) {
                Some("holds")
            } else if placed.starts_with(&repository) {
                Some("lies inside")
            } else {
                None
            };
            if let Some(relation) = relation {
                return Err(PolicyError::OverGoverned {
                    from: writable_from,
                    path: placed,
                    relation,
                    governed: repository,
                    access: "read-only but for what a commit on the session's own branch writes",
                });
            }
        }
        rules.rules.push(PathRule::new(
            placed.display().to_string(),
            PathAccess::Writable,
        ));
    }
    let from = format!("the {} runtime plugin", inputs.runtime_plugin);
    for rule in inputs.runtime {
        if rule.access != PathAccess::Hidden {
            return Err(PolicyError::RuntimeNotHidden {
                from,
                path: rule.path.to_string(),
                access: rule.access,
            });
        }
        rules.add(&from, Path::new(rule.path.as_str()), PathAccess::Hidden)?;
    }
    for socket in inputs.sockets {
        rules.add("the operator's agent sockets", socket, PathAccess::Hidden)?;
    }
    Ok(rules.rules)
}

/// Refuses a configured writable path that would undo a rule of the host's: one that holds a
/// governed path (`~` holds `~/.ssh`), or lies inside a hidden one (the data dir).
fn check_not_over_governed(
    from: &str,
    path: &Path,
    governed: &[PathRule],
) -> Result<(), PolicyError> {
    for rule in governed {
        let other = Path::new(rule.path.as_str());
        let relation = if other.starts_with(path) {
            if other == path {
                "is"
            } else {
                "holds"
            }
        } else if rule.access == PathAccess::Hidden && path.starts_with(other) {
            "lies inside"
        } else {
            continue;
        };
        return Err(PolicyError::OverGoverned {
            from: from.to_string(),
            path: path.to_path_buf(),
            relation,
            governed: other.to_path_buf(),
            access: match rule.access {
                PathAccess::Hidden => "hidden",
                PathAccess::ReadOnly => "read-only",
                PathAccess::Writable => "writable for the session alone",
                PathAccess::Private => "private",
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::config::SandboxPath;

    struct Scene {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    impl Scene {
        /// A home with a data dir, a repository and a worktree in it; `root` is resolved (a
        /// temp dir may lie behind a symlink).
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let root = std::fs::canonicalize(dir.path()).unwrap();
            for folder in [
                "home/.ssh",
                "home/.ao-rs/agent-state/app/app-1",
                "home/.ao-rs/plugins",
                "home/.ao-rs/worktrees/app/app-1",
                "home/src/app/.git/objects",
                "home/src/app/.git/hooks",
                "home/cache",
            ] {
                std::fs::create_dir_all(root.join(folder)).unwrap();
            }
            Self { _dir: dir, root }
        }

        fn path(&self, rest: &str) -> PathBuf {
            self.root.join(rest)
        }
    }

    fn rule(path: PathBuf, access: PathAccess) -> PathRule {
        PathRule::new(path.display().to_string(), access)
    }

    fn build_in(scene: &Scene, config: &SandboxConfig) -> Result<Vec<PathRule>, PolicyError> {
        let home = scene.path("home");
        let data_dir = scene.path("home/.ao-rs");
        let agent_state = data_dir.join("agent-state/app/app-1");
        let worktree = data_dir.join("worktrees/app/app-1").display().to_string();
        let hook_reads = [data_dir.join("plugins"), scene.path("home/ao-rs.yaml")];
        let workspace = [rule(
            scene.path("home/src/app/.git/objects"),
            PathAccess::Writable,
        )];
        let repository = scene.path("home/src/app");
        let agent = [rule(
            data_dir.join("agent-home/app-1"),
            PathAccess::Writable,
        )];
        build(&PolicyInputs {
            config,
            setting: "projects.app.sandbox",
            home: &home,
            local: true,
            worktree: &worktree,
            workspace: &workspace,
            workspace_plugin: "git-worktree",
            agent: &agent,
            agent_plugin: "claude-code",
            runtime: &[],
            runtime_plugin: "tmux",
            sockets: &[],
            repository: Some(&repository),
            data_dir: Some(DataDirAccess {
                data_dir: &data_dir,
                agent_state: &agent_state,
                hook_reads: &hook_reads,
            }),
        })
    }

    #[test]
    fn rules_come_in_the_contracts_order() {
        let scene = Scene::new();
        let config = SandboxConfig {
            plugin: Some("bubblewrap".into()),
            hidden: vec![SandboxPath::UnderHome(".private".into())],
            writable: vec![SandboxPath::Absolute(scene.path("home/cache"))],
            ..SandboxConfig::default()
        };
        let rules = build_in(&scene, &config).unwrap();
        let home = scene.path("home");
        let mut want: Vec<PathRule> = DEFAULT_HIDDEN
            .iter()
            .map(|secret| rule(home.join(secret), PathAccess::Hidden))
            .collect();
        let data = home.join(".ao-rs");
        want.extend([
            rule(home.join(".private"), PathAccess::Hidden),
            rule(data.clone(), PathAccess::Hidden),
            rule(PathBuf::from("/tmp"), PathAccess::Private),
            rule(data.join("worktrees/app/app-1"), PathAccess::Writable),
            rule(home.join("src/app/.git/objects"), PathAccess::Writable),
            rule(data.join("agent-home/app-1"), PathAccess::Writable),
            rule(data.join("agent-state/app/app-1"), PathAccess::Writable),
            // The config outside the data dir is readable anyway: no rule.
            rule(data.join("plugins"), PathAccess::ReadOnly),
            rule(home.join("cache"), PathAccess::Writable),
        ]);
        assert_eq!(rules, want);
    }

    #[test]
    fn symlinks_are_resolved_so_a_rule_guards_what_a_link_leads_to() {
        let scene = Scene::new();
        let keys = scene.path("keys");
        std::fs::create_dir(&keys).unwrap();
        std::fs::remove_dir(scene.path("home/.ssh")).unwrap();
        symlink(&keys, scene.path("home/.ssh")).unwrap();
        symlink(scene.path("home/cache"), scene.path("home/cache-link")).unwrap();
        let config = SandboxConfig {
            writable: vec![SandboxPath::UnderHome("cache-link".into())],
            ..SandboxConfig::default()
        };
        let rules = build_in(&scene, &config).unwrap();
        assert_eq!(rules[0], rule(keys, PathAccess::Hidden));
        assert_eq!(
            rules.last().unwrap(),
            &rule(scene.path("home/cache"), PathAccess::Writable)
        );
    }

    #[test]
    fn a_writable_path_may_not_undo_the_hosts_rules() {
        let scene = Scene::new();
        for (writable, want) in [
            (SandboxPath::UnderHome(PathBuf::new()), "holds"),
            (SandboxPath::UnderHome(".ssh".into()), "is"),
            (
                SandboxPath::UnderHome(".ao-rs/agent-state/app".into()),
                "lies inside",
            ),
            // "is" the private /tmp, or "holds" the test's home when it lies under /tmp.
            (SandboxPath::Absolute("/tmp".into()), "the sandbox keeps"),
            (SandboxPath::UnderHome("src/app".into()), "holds"),
            // Hooks the operator's git would run, the repository's own config.
            (
                SandboxPath::UnderHome("src/app/.git/hooks".into()),
                "lies inside",
            ),
        ] {
            let config = SandboxConfig {
                writable: vec![writable.clone()],
                ..SandboxConfig::default()
            };
            let error = build_in(&scene, &config).unwrap_err().to_string();
            assert!(
                error.starts_with("projects.app.sandbox.writable: ") && error.contains(want),
                "{writable:?}: {error}"
            );
        }
        let config = SandboxConfig {
            writable: vec![SandboxPath::UnderHome("nowhere".into())],
            ..SandboxConfig::default()
        };
        let error = build_in(&scene, &config).unwrap_err().to_string();
        assert!(error.contains("does not exist"), "{error}");
    }

    #[test]
    fn a_plugins_rule_must_name_one_place() {
        let scene = Scene::new();
        let config = SandboxConfig::default();
        let home = scene.path("home");
        let worktree = scene.path("home/.ao-rs/worktrees/app/app-1");
        for bad in ["relative/objects", "/a/../etc", "/a\0b"] {
            let workspace = [PathRule::new(bad, PathAccess::Writable)];
            let error = build(&PolicyInputs {
                config: &config,
                setting: "defaults.sandbox",
                home: &home,
                local: true,
                worktree: &worktree.display().to_string(),
                workspace: &workspace,
                workspace_plugin: "git-worktree",
                agent: &[],
                agent_plugin: "claude-code",
                data_dir: None,
                runtime: &[],
                runtime_plugin: "tmux",
                sockets: &[],
                repository: None,
            })
            .unwrap_err()
            .to_string();
            assert!(
                error.contains("the git-worktree workspace plugin") && error.contains("absolute"),
                "{bad:?}: {error}"
            );
        }
    }

    /// Another host's paths are its plugins' and its home's: nothing of this machine is read.
    #[test]
    fn another_hosts_paths_are_taken_as_given_and_no_data_dir_is_named() {
        let config = SandboxConfig {
            writable: vec![SandboxPath::UnderHome("cache".into())],
            ..SandboxConfig::default()
        };
        let rules = build(&PolicyInputs {
            config: &config,
            setting: "defaults.sandbox",
            home: Path::new("/home/remote"),
            local: false,
            worktree: "/home/remote/wt/app-1",
            workspace: &[],
            workspace_plugin: "git-worktree",
            agent: &[],
            agent_plugin: "claude-code",
            data_dir: None,
            runtime: &[],
            runtime_plugin: "tmux",
            sockets: &[],
            repository: None,
        })
        .unwrap();
        assert_eq!(rules[0].path.as_str(), "/home/remote/.ssh");
        assert_eq!(
            rules.last().unwrap(),
            &PathRule::new("/home/remote/cache", PathAccess::Writable)
        );
        assert_eq!(rules.len(), DEFAULT_HIDDEN.len() + 3);
    }

    /// The runtime's server and the operator's agent sockets are hidden after every other rule,
    /// so a configured writable folder that holds them cannot open them again; a runtime may
    /// only hide.
    #[test]
    fn the_runtimes_server_and_agent_sockets_are_hidden_last_and_a_runtime_may_only_hide() {
        let config = SandboxConfig {
            writable: vec![SandboxPath::UnderHome("cache".into())],
            ..SandboxConfig::default()
        };
        let sockets = [PathBuf::from("/run/user/1000")];
        let inputs = |runtime: &[PathRule]| {
            build(&PolicyInputs {
                config: &config,
                setting: "defaults.sandbox",
                home: Path::new("/home/remote"),
                local: false,
                worktree: "/home/remote/wt/app-1",
                workspace: &[],
                workspace_plugin: "git-worktree",
                agent: &[],
                agent_plugin: "claude-code",
                data_dir: None,
                runtime,
                runtime_plugin: "tmux",
                sockets: &sockets,
                repository: None,
            })
        };
        let rules = inputs(&[PathRule::new(
            "/home/remote/cache/tmux-7",
            PathAccess::Hidden,
        )])
        .unwrap();
        assert_eq!(
            rules[rules.len() - 3..],
            [
                PathRule::new("/home/remote/cache", PathAccess::Writable),
                PathRule::new("/home/remote/cache/tmux-7", PathAccess::Hidden),
                PathRule::new("/run/user/1000", PathAccess::Hidden),
            ]
        );
        let error = inputs(&[PathRule::new("/home/remote", PathAccess::Writable)])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("the tmux runtime plugin") && error.contains("may only hide"),
            "{error}"
        );
    }
}
