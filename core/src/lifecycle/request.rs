//! A spawn request, built and checked once: front ends fill [`SpawnParams`] from their own input
//! (arguments, a JSON body) and [`Lifecycle::spawn_request`] resolves the project, applies the
//! plugin overrides and checks everything, so no front end checks anything itself and every
//! front end refuses the same requests with the same words. Messages name what is wrong in the
//! request's own terms (the task, the agent plugin), never a front end's (a flag, a JSON field):
//! a front end that wants to name its own input matches the typed [`RequestError`].

use std::{
    path::PathBuf,
    sync::{atomic::AtomicBool, Arc},
};

use ao_plugin_api::InterfaceKind;

use super::{errors::ErrorClass, hosts::HostChoice, Lifecycle, LifecycleError};
use crate::{
    config::{ProjectConfig, SANDBOX_OFF},
    session::{SessionRole, SessionSandbox, MAX_TASK_BYTES},
};

/// What a front end asks to spawn, as given.
#[derive(Debug, Clone)]
pub struct SpawnParams {
    /// The project's id; `None`: the project of the repository holding `folder`.
    pub project: Option<String>,
    /// Where the project of a request without one is found.
    pub folder: PathBuf,
    pub role: SessionRole,
    /// The worker's task, delivered byte-exact as its first message.
    pub task: Option<String>,
    /// Start the agent without a first message (the task, or the orchestrator's prompt).
    pub no_prompt: bool,
    /// Plugins to use instead of the project's.
    pub agent: Option<String>,
    pub runtime: Option<String>,
    pub workspace: Option<String>,
    /// Another host to run on; `None`: this machine.
    pub host: Option<HostChoice>,
    /// The sandbox plugin to confine the agent with, over the project's `sandbox.plugin`, or
    /// [`SANDBOX_OFF`] for none; `None`: as the project says.
    pub sandbox: Option<String>,
    /// Set by the caller to stop the spawn (an operator's Ctrl-C, a dashboard closing): it is
    /// checked where a `session kill`'s request is, and the spawn undoes itself the same way.
    pub stop: Arc<AtomicBool>,
}

impl SpawnParams {
    /// A request of `role` for the project of `folder`, with nothing else given.
    pub fn new(role: SessionRole, folder: PathBuf) -> Self {
        Self {
            project: None,
            folder,
            role,
            task: None,
            no_prompt: false,
            agent: None,
            runtime: None,
            workspace: None,
            host: None,
            sandbox: None,
            stop: Arc::default(),
        }
    }
}

/// A checked spawn request: only [`Lifecycle::spawn_request`] makes one.
#[derive(Debug, Clone)]
pub struct SpawnRequest {
    /// The project, its plugins overridden as asked.
    pub(super) project: ProjectConfig,
    /// The branch sessions start from.
    pub(super) default_branch: String,
    pub(super) role: SessionRole,
    pub(super) task: Option<String>,
    pub(super) no_prompt: bool,
    pub(super) host: Option<HostChoice>,
    /// How the agent is confined; `None`: it is not.
    pub(super) sandbox: Option<SessionSandbox>,
    pub(super) stop: Arc<AtomicBool>,
}

/// Why a text (a task, a message) cannot be delivered as one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the {what} is empty; {fill_it}")]
    Empty {
        what: &'static str,
        fill_it: &'static str,
    },
    #[error("the {what} is {len} bytes, larger than the {MAX_TASK_BYTES} a {what} may have; put the details in a file in the repository and point the {what} at it")]
    TooLarge { what: &'static str, len: usize },
    #[error("the {what} contains a NUL byte")]
    Nul { what: &'static str },
}

/// Why a request was refused before anything was made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("say what the agent should do: give it a task, or ask for no first message")]
    NoTask,
    #[error("a task was given, but the agent was asked to start without a first message, so the task would never reach it; give one or the other")]
    TaskWithoutPrompt,
    #[error("an orchestrator takes no task (it is given its own prompt)")]
    OrchestratorTask,
    #[error(transparent)]
    Text(#[from] TextError),
    /// The request asked for a plugin that is not loaded: the request's fault.
    #[error("no {kind} plugin named `{name}` is loaded (loaded {kind} plugins: {loaded}); check the name asked for, or run `ao-host plugins list`")]
    UnknownPlugin {
        kind: InterfaceKind,
        name: String,
        loaded: String,
    },
    /// The project's config names a plugin that is not loaded: nothing the request can mend.
    #[error("no {kind} plugin named `{name}` is loaded (loaded {kind} plugins: {loaded}); check the name in {config} (project `{project}`) or run `ao-host plugins list`")]
    ProjectPluginMissing {
        kind: InterfaceKind,
        name: String,
        loaded: String,
        project: String,
        config: String,
    },
    #[error("project `{project}` has no default branch, and none could be found in its repository; set `default_branch` for it in {config}")]
    NoDefaultBranch { project: String, config: String },
    /// The agent's no-prompt mode was configured, and the request asked for no sandbox.
    #[error("project `{project}` starts its agents unattended (`unattended: true` in its `sandbox:` in {config}), which is allowed only inside a sandbox; keep the sandbox, or set `unattended: false`")]
    UnattendedUnconfined { project: String, config: String },
}

impl RequestError {
    pub(super) fn class(&self) -> ErrorClass {
        match self {
            Self::Text(TextError::TooLarge { .. }) => ErrorClass::TooLarge,
            Self::UnknownPlugin { .. } => ErrorClass::NotFound,
            Self::ProjectPluginMissing { .. } => ErrorClass::Unavailable,
            // The project's, not the request's: as any other refusal of a state.
            Self::NoDefaultBranch { .. } => ErrorClass::Conflict,
            Self::UnattendedUnconfined { .. } => ErrorClass::BadRequest,
            Self::NoTask | Self::TaskWithoutPrompt | Self::OrchestratorTask | Self::Text(_) => {
                ErrorClass::BadRequest
            }
        }
    }
}

/// Refuses tasks that cannot be delivered as one message.
pub fn validate_task(task: &str) -> Result<(), TextError> {
    validate_text("task", task, "say what the agent should do")
}

/// Refuses messages that cannot be delivered as one message.
pub fn validate_message(text: &str) -> Result<(), TextError> {
    validate_text("message", text, "say something")
}

fn validate_text(what: &'static str, text: &str, fill_it: &'static str) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty { what, fill_it });
    }
    if text.len() > MAX_TASK_BYTES {
        return Err(TextError::TooLarge {
            what,
            len: text.len(),
        });
    }
    if text.contains('\0') {
        return Err(TextError::Nul { what });
    }
    Ok(())
}

/// The task a request of `role` carries, checked against what else it asks.
fn checked_task(
    role: SessionRole,
    task: Option<String>,
    no_prompt: bool,
) -> Result<Option<String>, RequestError> {
    match (role, task, no_prompt) {
        (SessionRole::Orchestrator, Some(_), _) => Err(RequestError::OrchestratorTask),
        (SessionRole::Worker, Some(_), true) => Err(RequestError::TaskWithoutPrompt),
        (SessionRole::Worker, None, false) => Err(RequestError::NoTask),
        (_, Some(task), _) => {
            validate_task(&task)?;
            Ok(Some(task))
        }
        (_, None, _) => Ok(None),
    }
}

impl Lifecycle {
    /// Checks `params` and resolves what they name: the task first (nothing is looked up for a
    /// request that cannot be delivered), then the project and its default branch, then the
    /// plugins, overridden as asked, each of which must be loaded.
    pub async fn spawn_request(&self, params: SpawnParams) -> Result<SpawnRequest, LifecycleError> {
        let task = checked_task(params.role, params.task, params.no_prompt)?;
        let mut project = self
            .resolve_project(params.project.as_deref(), &params.folder)
            .await?;
        self.check_spawn_budgets(&project).await?;
        let default_branch =
            project
                .default_branch
                .clone()
                .ok_or_else(|| RequestError::NoDefaultBranch {
                    project: project.id.clone(),
                    config: self.config.file_for_messages(),
                })?;
        let sandbox = self.requested_sandbox(&project, params.role, params.sandbox)?;
        let choice = &mut project.plugins;
        for (kind, field, chosen) in [
            (InterfaceKind::Agent, &mut choice.agent, params.agent),
            (InterfaceKind::Runtime, &mut choice.runtime, params.runtime),
            (
                InterfaceKind::Workspace,
                &mut choice.workspace,
                params.workspace,
            ),
        ] {
            let asked = chosen.is_some();
            if let Some(name) = chosen {
                *field = name;
            }
            if self.registry.library_of(kind, field).is_some() {
                continue;
            }
            let name = field.clone();
            let loaded = match self.registry.names(kind) {
                names if names.is_empty() => "none".into(),
                names => names.join(", "),
            };
            return Err(if asked {
                RequestError::UnknownPlugin { kind, name, loaded }
            } else {
                RequestError::ProjectPluginMissing {
                    kind,
                    name,
                    loaded,
                    project: project.id.clone(),
                    config: self.config.file_for_messages(),
                }
            }
            .into());
        }
        Ok(SpawnRequest {
            project,
            default_branch,
            role: params.role,
            task,
            no_prompt: params.no_prompt,
            host: params.host,
            sandbox,
            stop: params.stop,
        })
    }

    /// How a session of `role` in `project` is confined: as asked (a sandbox plugin, or
    /// [`SANDBOX_OFF`]), else as the project says (orchestrators only with
    /// `sandbox.orchestrator`). The plugin must be loaded; `unattended` refuses no sandbox.
    fn requested_sandbox(
        &self,
        project: &ProjectConfig,
        role: SessionRole,
        asked: Option<String>,
    ) -> Result<Option<SessionSandbox>, RequestError> {
        let config = &project.sandbox;
        let (name, asked) = match asked {
            Some(name) if name == SANDBOX_OFF => {
                if config.unattended {
                    return Err(RequestError::UnattendedUnconfined {
                        project: project.id.clone(),
                        config: self.config.file_for_messages(),
                    });
                }
                return Ok(None);
            }
            Some(name) => (name, true),
            None => match &config.plugin {
                Some(_) if role == SessionRole::Orchestrator && !config.orchestrator => {
                    return Ok(None)
                }
                Some(name) => (name.clone(), false),
                None => return Ok(None),
            },
        };
        let kind = InterfaceKind::Sandbox;
        if self.registry.library_of(kind, &name).is_none() {
            let loaded = match self.registry.names(kind) {
                names if names.is_empty() => "none".into(),
                names => names.join(", "),
            };
            return Err(if asked {
                RequestError::UnknownPlugin { kind, name, loaded }
            } else {
                RequestError::ProjectPluginMissing {
                    kind,
                    name,
                    loaded,
                    project: project.id.clone(),
                    config: self.config.file_for_messages(),
                }
            });
        }
        Ok(Some(SessionSandbox {
            plugin: name,
            network: config.network,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn empty_huge_and_nul_tasks_are_refused() {
        assert!(matches!(
            validate_task("  \n"),
            Err(TextError::Empty { what: "task", .. })
        ));
        let huge = "x".repeat(MAX_TASK_BYTES + 1);
        assert_eq!(
            validate_task(&huge),
            Err(TextError::TooLarge {
                what: "task",
                len: MAX_TASK_BYTES + 1
            })
        );
        assert_eq!(validate_task("a\0b"), Err(TextError::Nul { what: "task" }));
        validate_task("fix the flaky test\nin `ci.yml`").unwrap();
    }

    #[test]
    fn a_task_must_match_the_role_and_the_first_message_asked_for() {
        use SessionRole::{Orchestrator, Worker};
        let task = || Some("fix it".to_string());
        assert_eq!(checked_task(Worker, task(), false), Ok(task()));
        assert_eq!(checked_task(Worker, None, true), Ok(None));
        assert_eq!(checked_task(Orchestrator, None, false), Ok(None));
        assert_eq!(checked_task(Orchestrator, None, true), Ok(None));
        assert_eq!(checked_task(Worker, None, false), Err(RequestError::NoTask));
        assert_eq!(
            checked_task(Worker, task(), true),
            Err(RequestError::TaskWithoutPrompt)
        );
        assert_eq!(
            checked_task(Orchestrator, task(), false),
            Err(RequestError::OrchestratorTask)
        );
        assert!(matches!(
            checked_task(Worker, Some(" ".into()), false),
            Err(RequestError::Text(TextError::Empty { .. }))
        ));
    }

    /// The messages say what is wrong in the request's terms: no front end's flag or field.
    #[test]
    fn messages_name_no_front_end() {
        let errors = [
            RequestError::NoTask,
            RequestError::TaskWithoutPrompt,
            RequestError::OrchestratorTask,
            RequestError::Text(validate_task("").unwrap_err()),
            RequestError::Text(validate_message("").unwrap_err()),
        ];
        for error in errors {
            let message = error.to_string();
            for front_end_word in ["--", "`task`", "no_prompt", "json"] {
                assert!(
                    !message.contains(front_end_word),
                    "{message:?} names {front_end_word:?}"
                );
            }
        }
    }

    fn lifecycle(dir: &std::path::Path, yaml: &str) -> Lifecycle {
        let mut config = Config::parse(yaml, &dir.join("ao-rs.yaml")).unwrap();
        config.data_dir = dir.join("data");
        Lifecycle::open(config, &[]).unwrap()
    }

    fn params(project: &str, task: &str) -> SpawnParams {
        SpawnParams {
            project: Some(project.into()),
            task: Some(task.into()),
            ..SpawnParams::new(SessionRole::Worker, PathBuf::from("/"))
        }
    }

    /// `unattended` needs a sandbox: a request for none is refused, and one for a sandbox that
    /// is not loaded names it (a name no library here has: the workspace builds bubblewrap).
    #[tokio::test]
    async fn a_sandbox_asked_for_must_be_loaded_and_unattended_refuses_none() {
        let dir = tempfile::tempdir().unwrap();
        let lifecycle = lifecycle(
            dir.path(),
            "projects:\n  app: { repo: /nonexistent/app, default_branch: main, sandbox: { plugin: no-such-box, unattended: true } }\n",
        );
        let project = lifecycle.config().projects["app"].clone();
        let error = lifecycle
            .requested_sandbox(&project, SessionRole::Worker, Some(SANDBOX_OFF.into()))
            .unwrap_err();
        assert_eq!(error.class(), ErrorClass::BadRequest);
        let message = error.to_string();
        assert!(
            message.contains("unattended: true") && message.contains("sandbox:"),
            "{message}"
        );
        let error = lifecycle
            .requested_sandbox(&project, SessionRole::Worker, None)
            .unwrap_err();
        assert!(
            matches!(&error, RequestError::ProjectPluginMissing { kind: InterfaceKind::Sandbox, name, .. } if name == "no-such-box"),
            "{error}"
        );
        // An orchestrator is not confined unless the project says so.
        assert_eq!(
            lifecycle
                .requested_sandbox(&project, SessionRole::Orchestrator, None)
                .unwrap(),
            None
        );
        let error = lifecycle
            .requested_sandbox(&project, SessionRole::Worker, Some("firejail".into()))
            .unwrap_err();
        assert!(
            matches!(&error, RequestError::UnknownPlugin { name, .. } if name == "firejail"),
            "{error}"
        );
    }

    const ONE_PROJECT: &str =
        "projects:\n  app: { repo: /nonexistent/app, default_branch: main }\n";

    /// No plugin is loaded here: the request names the first one it would use, as overridden.
    #[tokio::test]
    async fn a_request_names_the_project_and_the_plugin_it_cannot_find() {
        let dir = tempfile::tempdir().unwrap();
        let lifecycle = lifecycle(dir.path(), ONE_PROJECT);
        let unknown = lifecycle
            .spawn_request(params("nope", "x"))
            .await
            .unwrap_err();
        assert_eq!(unknown.class(), ErrorClass::NotFound, "{unknown}");
        assert!(
            unknown.to_string().contains("no project \"nope\""),
            "{unknown}"
        );

        let overridden = SpawnParams {
            agent: Some("nobody".into()),
            ..params("app", "x")
        };
        let error = lifecycle.spawn_request(overridden).await.unwrap_err();
        assert_eq!(error.class(), ErrorClass::NotFound);
        assert!(
            matches!(
                &error,
                LifecycleError::Request(RequestError::UnknownPlugin { kind: InterfaceKind::Agent, name, .. })
                    if name == "nobody"
            ),
            "{error}"
        );
    }

    /// The task is checked before anything is looked up: a bad one is refused as such even for
    /// a project that does not exist.
    #[tokio::test]
    async fn a_bad_task_is_refused_before_the_project_is_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let lifecycle = lifecycle(dir.path(), ONE_PROJECT);
        let huge = "x".repeat(MAX_TASK_BYTES + 1);
        let error = lifecycle
            .spawn_request(params("nope", &huge))
            .await
            .unwrap_err();
        assert_eq!(error.class(), ErrorClass::TooLarge, "{error}");
        let error = lifecycle
            .spawn_request(params("nope", " "))
            .await
            .unwrap_err();
        assert_eq!(error.class(), ErrorClass::BadRequest, "{error}");
        assert!(error.to_string().contains("task is empty"), "{error}");
    }
}
