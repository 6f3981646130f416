//! Projects: building them from the file with defaults applied, and picking the one a command
//! is about. What a repository is (its root, its default branch) is the workspace plugin's
//! knowledge, asked through a callback: the core reads no repository files itself.

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    path::{Path, PathBuf},
};

use ao_plugin_kit::validate::MAX_ID_LEN;

use super::{
    budgets::Budgets,
    file::ProjectSection,
    reactions::ScmConfig,
    resolve_path,
    sandbox::{SandboxConfig, SandboxSection},
    validate_project_arg, Config, ConfigError,
};

/// Which plugin of each kind a project uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginChoice {
    pub runtime: String,
    pub workspace: String,
    pub agent: String,
}

/// One project, with defaults applied.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub id: String,
    pub repo: PathBuf,
    /// `None` until detected from the repository.
    pub default_branch: Option<String>,
    pub session_prefix: String,
    pub symlinks: Vec<String>,
    pub post_create: Vec<String>,
    /// YAML text of `agent_config`, handed to the agent plugin as is.
    pub agent_config: String,
    pub plugins: PluginChoice,
    /// The project's clone on each host it may run on (a path on that machine).
    pub hosts: BTreeMap<String, String>,
    /// `scm:` with its repository and reactions; `None`: its pull requests are not watched.
    pub scm: Option<ScmConfig>,
    /// `budgets:` with this project's `projects.<id>.budgets` applied.
    pub budgets: Budgets,
    /// `defaults.sandbox` with this project's `sandbox:` applied.
    pub sandbox: SandboxConfig,
}

/// What a project takes from the rest of the file where it says nothing itself.
pub(super) struct Inherited<'a> {
    pub plugins: &'a PluginChoice,
    pub budgets: Budgets,
    /// `defaults.sandbox` as written, which the project's section overrides key by key.
    pub sandbox: &'a SandboxSection,
}

/// What the workspace plugin found for a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryFacts {
    pub root: PathBuf,
    pub default_branch: Option<String>,
    /// The id of the repository's project when none is configured: its folder's name, told
    /// apart from other repositories' of the same name (see `session::project_ids`).
    pub id: String,
}

/// What the workspace plugin said of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovered {
    Repository(RepositoryFacts),
    /// No repository sessions can start from holds it; why, in the plugin's words.
    NotARepository(String),
}

/// Suffix of orchestrator session ids: `<prefix>-orchestrator-N`.
const ORCHESTRATOR_SUFFIX: &str = "-orchestrator";

impl ProjectConfig {
    /// `projects.<id>` of the file, with paths resolved against `base` and plugins defaulted.
    pub(super) fn from_section(
        id: String,
        section: ProjectSection,
        base: &Path,
        inherited: Inherited<'_>,
        invalid: &dyn Fn(String) -> ConfigError,
    ) -> Result<Self, ConfigError> {
        let Inherited {
            plugins: defaults,
            budgets,
            sandbox,
        } = inherited;
        let check = |what: &str, value: &str| {
            ao_plugin_kit::validate::validate_id(what, value)
                .map_err(|e| invalid(format!("projects.{id}: {}", e.message())))
        };
        check("project id", &id)?;
        if let Some(prefix) = &section.session_prefix {
            check("session_prefix", prefix)?;
        }
        let prefix = section.session_prefix.as_deref().unwrap_or(&id);
        if prefix.len() > MAX_PREFIX_LEN {
            return Err(invalid(format!(
                "projects.{id}: session_prefix `{prefix}` is longer than {MAX_PREFIX_LEN} characters, so its session ids (`{prefix}-orchestrator-N`) would be longer than an id may be; set a shorter session_prefix"
            )));
        }
        // Checked fully by the workspace plugin (and `doctor`); what can never name a branch is
        // refused here, where the file and field are known.
        if let Some(branch) = &section.default_branch {
            if branch.trim().is_empty()
                || branch.starts_with('-')
                || branch.contains(char::is_control)
            {
                return Err(invalid(format!(
                    "projects.{id}.default_branch: {branch:?} is not a branch name; set the branch sessions start from (e.g. main), or leave it out to use the repository's own"
                )));
            }
        }
        let agent_config = match &section.agent_config {
            None => String::new(),
            Some(value) => serde_yaml::to_string(value)
                .map_err(|e| invalid(format!("projects.{id}.agent_config: {e}")))?,
        };
        let scm =
            ScmConfig::from_sections(&id, section.scm, section.scm_repository, section.reactions)
                .map_err(invalid)?;
        let budgets = budgets.for_project(&id, section.budgets).map_err(invalid)?;
        let sandbox = SandboxConfig::from_section(
            &format!("projects.{id}.sandbox"),
            sandbox.clone().overlay(section.sandbox),
        )
        .map_err(invalid)?;
        Ok(Self {
            scm,
            budgets,
            sandbox,
            repo: resolve_path(&section.repo, base)?,
            default_branch: section.default_branch,
            session_prefix: section.session_prefix.unwrap_or_else(|| id.clone()),
            symlinks: section.symlinks,
            post_create: section.post_create,
            agent_config,
            hosts: section.hosts,
            plugins: PluginChoice {
                runtime: section.runtime.unwrap_or_else(|| defaults.runtime.clone()),
                workspace: section
                    .workspace
                    .unwrap_or_else(|| defaults.workspace.clone()),
                agent: section.agent.unwrap_or_else(|| defaults.agent.clone()),
            },
            id,
        })
    }

    /// The project of a repository nobody configured: named after its folder.
    fn detected(
        facts: RepositoryFacts,
        plugins: PluginChoice,
        budgets: Budgets,
        sandbox: SandboxConfig,
    ) -> Self {
        let id = facts.id;
        Self {
            repo: facts.root,
            default_branch: facts.default_branch,
            session_prefix: id.clone(),
            symlinks: Vec::new(),
            post_create: Vec::new(),
            agent_config: String::new(),
            plugins,
            hosts: BTreeMap::new(),
            scm: None,
            budgets,
            sandbox,
            id,
        }
    }
}

/// The longest prefix whose every session id (`<prefix>-orchestrator-10000` at most) is still a
/// valid id.
const MAX_PREFIX_LEN: usize = ao_plugin_kit::validate::MAX_ID_LEN - "-orchestrator-10000".len();

/// Refuses two projects whose session ids could be the same (`<prefix>-N`,
/// `<prefix>-orchestrator-N`): each would wait forever for ids the other holds.
pub(super) fn check_prefixes(projects: &BTreeMap<String, ProjectConfig>) -> Result<(), String> {
    let mut owners: HashMap<&str, &str> = HashMap::new();
    for project in projects.values() {
        if let Some(other) = owners.insert(&project.session_prefix, &project.id) {
            return Err(format!(
                "projects `{other}` and `{}` both use session_prefix `{}`, so their sessions would get the same ids; give one of them another session_prefix",
                project.id, project.session_prefix
            ));
        }
    }
    for project in projects.values() {
        let orchestrators = format!("{}{ORCHESTRATOR_SUFFIX}", project.session_prefix);
        if let Some(other) = owners.get(orchestrators.as_str()) {
            return Err(format!(
                "project `{other}`'s session_prefix `{orchestrators}` is what project `{}`'s orchestrator sessions start with, so their sessions could get the same ids; give one of them another session_prefix",
                project.id
            ));
        }
    }
    Ok(())
}

/// The folder name, made into a valid id (`[A-Za-z0-9_-]`, not starting with `-`): accented
/// Latin letters lose their accents (`ünï` → `uni`), any other character becomes `-`.
pub fn folder_id(root: &Path) -> String {
    let name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut id = String::new();
    for c in name.chars() {
        match plain_letters(c) {
            Some(letters) => id.push_str(letters),
            None if c.is_ascii_alphanumeric() || c == '_' || c == '-' => id.push(c),
            None => id.push('-'),
        }
    }
    let id: String = id
        .trim_start_matches('-')
        .chars()
        .take(MAX_ID_LEN)
        .collect();
    if id.is_empty() {
        "project".into()
    } else {
        id
    }
}

/// The plain letters of an accented Latin letter (Latin-1 and Latin Extended-A).
fn plain_letters(c: char) -> Option<&'static str> {
    const TABLE: &[(&str, &str)] = &[
        ("ÀÁÂÃÄÅĀĂĄ", "A"),
        ("àáâãäåāăą", "a"),
        ("ÇĆĈĊČ", "C"),
        ("çćĉċč", "c"),
        ("ĎĐÐ", "D"),
        ("ďđð", "d"),
        ("ÈÉÊËĒĔĖĘĚ", "E"),
        ("èéêëēĕėęě", "e"),
        ("ĜĞĠĢ", "G"),
        ("ĝğġģ", "g"),
        ("ĤĦ", "H"),
        ("ĥħ", "h"),
        ("ÌÍÎÏĨĪĬĮİ", "I"),
        ("ìíîïĩīĭįı", "i"),
        ("Ĵ", "J"),
        ("ĵ", "j"),
        ("Ķ", "K"),
        ("ķĸ", "k"),
        ("ĹĻĽĿŁ", "L"),
        ("ĺļľŀł", "l"),
        ("ÑŃŅŇŊ", "N"),
        ("ñńņňŉŋ", "n"),
        ("ÒÓÔÕÖØŌŎŐ", "O"),
        ("òóôõöøōŏő", "o"),
        ("ŔŖŘ", "R"),
        ("ŕŗř", "r"),
        ("ŚŜŞŠ", "S"),
        ("śŝşš", "s"),
        ("ŢŤŦ", "T"),
        ("ţťŧ", "t"),
        ("ÙÚÛÜŨŪŬŮŰŲ", "U"),
        ("ùúûüũūŭůűų", "u"),
        ("Ŵ", "W"),
        ("ŵ", "w"),
        ("ÝŶŸ", "Y"),
        ("ýÿŷ", "y"),
        ("ŹŻŽ", "Z"),
        ("źżž", "z"),
        ("Æ", "AE"),
        ("æ", "ae"),
        ("Œ", "OE"),
        ("œ", "oe"),
        ("ß", "ss"),
        ("Þ", "TH"),
        ("þ", "th"),
    ];
    TABLE
        .iter()
        .find(|(accented, _)| accented.contains(c))
        .map(|(_, plain)| *plain)
}

impl Config {
    /// The project a command is about: the one named, else the configured project whose
    /// repository holds `cwd`, else the only configured project, else — with no projects
    /// configured — the repository holding `cwd` (id = its folder name).
    ///
    /// `discover(dir)` asks the workspace plugin about `dir`: `Err` when the plugin could not
    /// tell. It is also how a configured project without `default_branch` gets one, or learns
    /// that its `repo` is no repository (said before anything about the branch).
    pub async fn resolve_project<F, Fut>(
        &self,
        name: Option<&str>,
        cwd: &Path,
        discover: F,
    ) -> Result<ProjectConfig, ConfigError>
    where
        F: Fn(PathBuf) -> Fut,
        Fut: Future<Output = Result<Discovered, String>>,
    {
        let facts = |dir: PathBuf| {
            let asked = dir.clone();
            let answer = discover(dir);
            async move {
                answer.await.map_err(|message| ConfigError::Discovery {
                    dir: asked,
                    message,
                })
            }
        };
        let detect = || async {
            match facts(cwd.to_path_buf()).await? {
                Discovered::Repository(facts) => Ok(ProjectConfig::detected(
                    facts,
                    self.defaults.clone(),
                    self.budgets,
                    self.sandbox.clone(),
                )),
                // The plugin's reason names the folder and what to do.
                Discovered::NotARepository(why) => Err(ConfigError::NoProject {
                    message: format!("no project is configured, and {}", self.name_file_in(&why)),
                }),
            }
        };
        let mut project = if let Some(name) = name {
            validate_project_arg(name)?;
            if let Some(project) = self.projects.get(name) {
                project.clone()
            } else if self.projects.is_empty() {
                let detected = detect().await?;
                if detected.id != name {
                    return Err(ConfigError::UnknownProject {
                        name: name.into(),
                        config: self.describe_source(),
                        known: format!("none; the current repository is `{}`", detected.id),
                    });
                }
                detected
            } else {
                return Err(ConfigError::UnknownProject {
                    name: name.into(),
                    config: self.describe_source(),
                    known: self.project_ids(),
                });
            }
        } else if self.projects.is_empty() {
            detect().await?
        } else if let Some(project) = self.projects.values().find(|p| {
            let repo = p.repo.canonicalize().unwrap_or_else(|_| p.repo.clone());
            cwd.canonicalize().is_ok_and(|cwd| cwd.starts_with(&repo))
        }) {
            project.clone()
        } else if let [project] = self.projects.values().collect::<Vec<_>>()[..] {
            project.clone()
        } else {
            return Err(ConfigError::NoProject {
                message: format!(
                    "several projects are configured in {} ({}); name one",
                    self.describe_source(),
                    self.project_ids()
                ),
            });
        };
        if project.default_branch.is_none() {
            match facts(project.repo.clone()).await? {
                Discovered::Repository(facts) => project.default_branch = facts.default_branch,
                Discovered::NotARepository(why) => {
                    return Err(ConfigError::NoProject {
                        message: format!(
                        "project `{}` cannot be used: {} (its repo is `projects.{}.repo` in {})",
                        project.id,
                        self.name_file_in(&why),
                        project.id,
                        self.file_for_messages()
                    ),
                    })
                }
            }
        }
        if project.default_branch.is_none() {
            return Err(ConfigError::NoProject {
                message: format!(
                    "cannot tell the default branch of {}; set `default_branch` for project `{}`",
                    project.repo.display(),
                    project.id
                ),
            });
        }
        Ok(project)
    }

    fn project_ids(&self) -> String {
        self.projects.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/ao/ao-rs.yaml"))
    }

    /// A workspace plugin that knows one repository at `root`, with default branch `trunk`,
    /// and records what it was asked.
    fn one_repository<'a>(
        root: &Path,
        asked: &'a RefCell<Vec<PathBuf>>,
    ) -> impl Fn(PathBuf) -> std::future::Ready<Result<Discovered, String>> + 'a {
        let root = root.to_path_buf();
        move |dir: PathBuf| {
            asked.borrow_mut().push(dir.clone());
            std::future::ready(Ok(if dir.starts_with(&root) {
                Discovered::Repository(RepositoryFacts {
                    root: root.clone(),
                    default_branch: Some("trunk".into()),
                    id: folder_id(&root),
                })
            } else {
                no_repository()
            }))
        }
    }

    fn no_repository() -> Discovered {
        Discovered::NotARepository("not a git repository".into())
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn with_no_projects_the_enclosing_repository_is_the_project() {
        let config = parse("").unwrap();
        let asked = RefCell::new(Vec::new());
        let discover = one_repository(Path::new("/src/my.app"), &asked);
        let project =
            block_on(config.resolve_project(None, Path::new("/src/my.app/src"), &discover))
                .unwrap();
        assert_eq!(project.id, "my-app");
        assert_eq!(project.repo, Path::new("/src/my.app"));
        assert_eq!(project.session_prefix, "my-app");
        assert_eq!(project.default_branch.as_deref(), Some("trunk"));
        assert_eq!(project.plugins, config.defaults);
        assert_eq!(*asked.borrow(), [PathBuf::from("/src/my.app/src")]);
        let err =
            block_on(config.resolve_project(Some("other"), Path::new("/src/my.app"), &discover))
                .unwrap_err();
        assert!(err.to_string().contains("my-app"), "{err}");
        let outside =
            block_on(config.resolve_project(None, Path::new("/tmp"), &discover)).unwrap_err();
        assert!(
            outside
                .to_string()
                .contains("no project is configured, and not a git repository"),
            "{outside}"
        );
    }

    #[test]
    fn a_failed_discovery_is_reported_with_its_message() {
        let config = parse("").unwrap();
        let err = block_on(config.resolve_project(None, Path::new("/x"), |_| async {
            Err("the workspace plugin crashed".to_string())
        }))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/x") && err.contains("the workspace plugin crashed"),
            "{err}"
        );
    }

    #[test]
    fn a_configured_project_without_default_branch_asks_about_its_repo() {
        let config = parse("projects:\n  app: { repo: /src/app }\n").unwrap();
        let asked = RefCell::new(Vec::new());
        let discover = one_repository(Path::new("/src/app"), &asked);
        let project =
            block_on(config.resolve_project(Some("app"), Path::new("/"), &discover)).unwrap();
        assert_eq!(project.default_branch.as_deref(), Some("trunk"));
        assert_eq!(*asked.borrow(), [PathBuf::from("/src/app")]);
        let no_branch = |_| async {
            Ok(Discovered::Repository(RepositoryFacts {
                root: "/src/app".into(),
                default_branch: None,
                id: "app".into(),
            }))
        };
        let err =
            block_on(config.resolve_project(Some("app"), Path::new("/"), no_branch)).unwrap_err();
        assert!(
            err.to_string()
                .contains("set `default_branch` for project `app`"),
            "{err}"
        );
        // A repo that is no repository is said first, naming the setting and the file.
        let err = block_on(
            config.resolve_project(Some("app"), Path::new("/"), |_| async {
                Ok(no_repository())
            }),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("not a git repository")
                && err.contains("projects.app.repo")
                && err.contains("/etc/ao/ao-rs.yaml")
                && !err.contains("default_branch"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_project_lists_the_configured_ones() {
        let config = parse("projects:\n  app: { repo: /r, default_branch: main }\n  web: { repo: /w, default_branch: main }\n").unwrap();
        let nothing = |_| async { Ok(no_repository()) };
        let err =
            block_on(config.resolve_project(Some("api"), Path::new("/"), nothing)).unwrap_err();
        assert!(err.to_string().contains("app, web"), "{err}");
        let web = block_on(config.resolve_project(Some("web"), Path::new("/"), nothing)).unwrap();
        assert_eq!(web.id, "web");
        let err = block_on(config.resolve_project(None, Path::new("/"), nothing)).unwrap_err();
        assert!(err.to_string().contains("name one"), "{err}");
        let err =
            block_on(config.resolve_project(Some("../x"), Path::new("/"), nothing)).unwrap_err();
        assert!(err.to_string().contains("\"../x\""), "{err}");
    }

    #[test]
    fn folder_names_become_ids() {
        assert_eq!(folder_id(Path::new("/a/my.app")), "my-app");
        assert_eq!(folder_id(Path::new("/a/.hidden")), "hidden");
        assert_eq!(folder_id(Path::new("/a/ünï")), "uni");
        assert_eq!(folder_id(Path::new("/a/Straße-Œuvre")), "Strasse-OEuvre");
        assert_eq!(folder_id(Path::new("/a/项目")), "project");
        assert_eq!(folder_id(Path::new("/")), "project");
        assert_eq!(folder_id(Path::new(&"x".repeat(300))).len(), MAX_ID_LEN);
    }

    #[test]
    fn projects_whose_session_ids_could_collide_are_refused() {
        for (projects, names) in [
            ("  app: { repo: /a }\n  web: { repo: /w, session_prefix: app }\n", "`app` and `web`"),
            ("  a: { repo: /a, session_prefix: x }\n  b: { repo: /b, session_prefix: x }\n", "`a` and `b`"),
            ("  app: { repo: /a }\n  app-orchestrator: { repo: /o }\n", "`app-orchestrator`"),
            ("  a: { repo: /a, session_prefix: y-orchestrator }\n  b: { repo: /b, session_prefix: y }\n", "project `b`"),
        ] {
            let err = parse(&format!("projects:\n{projects}")).unwrap_err().to_string();
            assert!(err.contains("/etc/ao/ao-rs.yaml"), "{err}");
            assert!(err.contains(names), "{err}");
            assert!(err.contains("give one of them another session_prefix"), "{err}");
        }
        parse("projects:\n  app: { repo: /a }\n  app-web: { repo: /w }\n  orchestrator: { repo: /o }\n").unwrap();
    }
}
