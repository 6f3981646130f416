//! Agent plugin `opencode`: launches the OpenCode TUI (`opencode-ai` on npm) with a config of
//! the session's own, learns its state from a status plugin loaded into OpenCode, and reads its
//! screen as a fallback.

mod screen;
mod session_config;
mod usage;

use std::{collections::BTreeMap, path::PathBuf};

use ao_plugin_api::{
    export_plugins,
    sandbox::{ConfinedLaunchPlan, ConfinedLaunchRequest},
    usage::{UsageQuery, UsageReport},
    Activity, Agent, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
    PluginError, PluginFailure, PluginResult, Readiness,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{
    confinement::{no_prompt_refused, seed_files, session_paths},
    files::Files,
    program::Program,
    session_files::SessionFiles,
};
use serde::Deserialize;

use crate::{screen::ScreenPatterns, session_config::SessionConfig};

export_plugins! {
    agent "opencode" => OpenCode,
}

/// `plugins.config.opencode`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The CLI to run.
    command: String,
    /// Extra environment for every session.
    env: BTreeMap<String, String>,
    /// Run OpenCode's own start-up install of `@opencode-ai/plugin` into its config folders
    /// offline (`npm_config_offline`): OpenCode waits for that install before it loads any
    /// plugin, and against a registry that does not answer it waits for ever. Offline, the
    /// install is taken from the npm cache or fails at once (OpenCode goes on without it).
    offline_plugin_install: bool,
    patterns: ScreenPatterns,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            command: "opencode".into(),
            env: BTreeMap::new(),
            offline_plugin_install: true,
            patterns: ScreenPatterns::default(),
        }
    }
}

/// A project's `agent_config` for OpenCode.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    /// `--model provider/model`.
    model: Option<String>,
    /// `--agent NAME` (`build`, `plan`, or one of the operator's own).
    agent: Option<String>,
    /// OpenCode's `permission` setting for the session (e.g. `{ bash: ask, edit: allow }`).
    permission: Option<serde_yaml::Value>,
    /// `--auto`: approve every permission not explicitly denied.
    #[serde(default)]
    auto_approve: bool,
}

const ACCEPTED_KEYS: &str = "model, agent, permission, auto_approve";

/// The session's files, in its own folder.
const CONFIG_FILE: &str = "opencode.json";
const STATUS_PLUGIN_FILE: &str = "ao-status.js";
const SYSTEM_PROMPT_FILE: &str = "system-prompt.md";
/// A confined session's own XDG data, state and cache folders, in its folder: OpenCode keeps
/// its database, logs and caches there, and the operator's `~/.local/share` is not writable
/// (nor should a confined agent write the database other sessions use).
const XDG_DIR: &str = "xdg";
/// The XDG variables a confined session gets, with their folders under [`XDG_DIR`].
const XDG: [(&str, &str); 3] = [
    ("XDG_DATA_HOME", "data"),
    ("XDG_STATE_HOME", "state"),
    ("XDG_CACHE_HOME", "cache"),
];

/// What a confined OpenCode needs from the operator's environment: the API keys and endpoints
/// of the providers it is most often used with. Others are named in the project's
/// `sandbox.env`.
const PASS_ENV: [&str; 11] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENERATIVE_AI_API_KEY",
    "GROQ_API_KEY",
    "MISTRAL_API_KEY",
    "DEEPSEEK_API_KEY",
    "XAI_API_KEY",
];

pub struct OpenCode {
    settings: Settings,
    files: SessionFiles,
}

impl OpenCode {
    /// [`Agent::launch`], approving every permission not denied when `unattended`.
    fn plan(&self, request: &LaunchRequest, unattended: bool) -> PluginResult<LaunchPlan> {
        if let Some(task) = request.first_message.as_ref().into_option() {
            refuse_untakeable(task)?;
        }
        let session = &request.session;
        let id = session.session_id.as_str();
        let project: ProjectSettings = session.agent_config("opencode", ACCEPTED_KEYS)?;
        let field = |key: &str| format!("projects.{}.agent_config.{key}", session.project_id);
        let mut argv = vec![self.settings.command.clone()];
        if let Some(model) = &project.model {
            argv.push(format!("--model={}", option_value(&field("model"), model)?));
        }
        if let Some(agent) = &project.agent {
            argv.push(format!("--agent={}", option_value(&field("agent"), agent)?));
        }
        if project.auto_approve && !unattended {
            return Err(no_prompt_refused("auto_approve: true", "OpenCode"));
        }
        if unattended {
            argv.push("--auto".into());
        }
        let conversation_id = match request.resume.as_ref().into_option() {
            Some(conversation) if is_session_id(conversation) => {
                argv.push(format!("--session={conversation}"));
                Some(conversation.to_string())
            }
            Some(conversation) => {
                return Err(PluginError::invalid_input(format!(
                    "{conversation:?} is not an OpenCode session id (ses_…)"
                )))
            }
            None => None,
        };

        let (event_command, allowed) = (request.event_argv(), request.allowed_programs());
        let plugin_source = session_config::status_plugin(&event_command, self.sets_npm_offline())?;
        let status_plugin = self
            .files
            .write(id, STATUS_PLUGIN_FILE, plugin_source.as_bytes())?;
        let instructions = self.instructions(session)?;
        let config = SessionConfig {
            status_plugin: &status_plugin,
            instructions: instructions.as_deref(),
            permission: project.permission.as_ref(),
            allowed_commands: &allowed,
        }
        .to_json(&session.project_id)?;
        self.files.write(id, CONFIG_FILE, config.as_bytes())?;

        let first = request
            .inline_first_message()
            .filter(|message| !message.is_empty());
        if let Some(message) = first {
            // One argument `--prompt=…`: a message starting with `-` stays the value.
            argv.push(format!("--prompt={message}"));
        }
        Ok(LaunchPlan {
            argv: argv.into_iter().map(Into::into).collect(),
            takes_first_message: first.is_some(),
            conversation_id: conversation_id.map(Into::into).into(),
            reports_events: !event_command.is_empty(),
        })
    }

    /// The operator's OpenCode data folder (`$XDG_DATA_HOME/opencode`, by default
    /// `~/.local/share/opencode`), as the plugin's `env` and this process's environment say.
    fn operator_data(&self) -> Option<PathBuf> {
        let variable = |name: &str| {
            self.settings
                .env
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        };
        let data =
            variable("XDG_DATA_HOME").or_else(|| Some(variable("HOME")?.join(".local/share")))?;
        Some(data.join("opencode"))
    }

    /// The session's environment as far as it decides where OpenCode keeps its database: the
    /// plugin's `env`, and a confined session's own data folder over it.
    fn database_env(&self, session_id: &str) -> BTreeMap<String, String> {
        let mut env = self.settings.env.clone();
        if let Ok(folder) = self.files.path(session_id) {
            let data = folder.join(XDG_DIR).join("data");
            if data.is_dir() {
                env.insert("XDG_DATA_HOME".into(), data.display().to_string());
            }
        }
        env
    }

    /// Whether ao-host sets `npm_config_offline` for the session (not when the operator set it
    /// themselves in `env`: then it is theirs to keep).
    fn sets_npm_offline(&self) -> bool {
        self.settings.offline_plugin_install && !self.settings.env.contains_key(NPM_OFFLINE)
    }

    fn session_file(&self, session: &AgentSession, name: &str) -> PluginResult<PathBuf> {
        Ok(self.files.path(&session.session_id)?.join(name))
    }

    /// The system prompt's file: written when the host gives one; at a resume (the host gives
    /// none) the one written at spawn, if any.
    fn instructions(&self, session: &AgentSession) -> PluginResult<Option<PathBuf>> {
        match session.system_prompt.as_ref().into_option() {
            Some(prompt) => self
                .files
                .write(&session.session_id, SYSTEM_PROMPT_FILE, prompt.as_bytes())
                .map(Some),
            None => {
                Ok(Some(self.session_file(session, SYSTEM_PROMPT_FILE)?).filter(|p| p.is_file()))
            }
        }
    }
}

const NPM_OFFLINE: &str = "npm_config_offline";

/// Whether `id` looks like an OpenCode session id (`ses_` and letters and digits), the only
/// thing `--session` is ever given.
fn is_session_id(id: &str) -> bool {
    id.strip_prefix("ses_").is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A value for an option given as `--name=value`, so that one starting with `-` is never read
/// as an option; refused when empty.
fn option_value(field: &str, value: &str) -> PluginResult<String> {
    if value.trim().is_empty() {
        return Err(PluginError::config(format!("{field} is empty")));
    }
    Ok(value.to_string())
}

/// Refuses a first message OpenCode would not take as it is, before anything starts: it never
/// submits a prompt holding a carriage return, runs one starting with `/` as its own command,
/// and adds a space to a message too long for its argument, which is pasted.
fn refuse_untakeable(task: &str) -> PluginResult<()> {
    let problem = if task.contains('\r') {
        Some("holds a carriage return, which OpenCode never submits; use line feeds")
    } else if task.trim_start().starts_with('/') {
        Some("starts with `/`, which OpenCode runs as one of its own commands; start it with something else")
    } else if task.len() > LaunchRequest::MAX_INLINE_MESSAGE_BYTES {
        Some("is too long for OpenCode's --prompt argument, and OpenCode adds a space to a message that long when it is pasted; put the details in a file in the repository and point the task at it")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PluginError::invalid_input(format!("the task {problem}"))),
        None => Ok(()),
    }
}

impl Agent for OpenCode {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::config(
                "plugins.config.opencode.command is empty; name the OpenCode CLI (e.g. opencode)",
            ));
        }
        if let Some(key) = ["OPENCODE_CONFIG", "OPENCODE_CONFIG_CONTENT"]
            .into_iter()
            .find(|key| settings.env.contains_key(*key))
        {
            return Err(PluginError::config(format!(
                "plugins.config.opencode.env.{key}: each session has a config of its own (its \
                 status plugin is in it); put your settings in ~/.config/opencode, which OpenCode \
                 merges under it"
            )));
        }
        Ok(Self {
            settings,
            files: SessionFiles::new(context),
        })
    }

    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>> {
        let request = LaunchRequest {
            session: session.clone(),
            first_message: None.into(),
            event_command: Default::default(),
            resume: None.into(),
            allowed_commands: Default::default(),
        };
        Ok(self
            .launch(&request)?
            .argv
            .into_iter()
            .map(Into::into)
            .collect())
    }

    /// OpenCode with the session's config (its status plugin, the system prompt, permission
    /// rules), the project's model and agent, the stored conversation resumed (`--session`),
    /// and the first message as `--prompt`, where it reaches the model byte-exact. OpenCode
    /// chooses a new conversation's id itself: the status plugin reports it with each event.
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        self.plan(request, false)
    }

    /// As [`Agent::launch`], with XDG data, state and cache folders of the session's own
    /// (writable; its sign-in, `auth.json`, copied from the operator's), the rest of its folder
    /// read-only; unattended, `--auto`.
    fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginFailure> {
        let session = &request.launch.session;
        let plan = self.plan(&request.launch, request.unattended)?;
        let xdg = self.files.dir(&session.session_id)?.join(XDG_DIR);
        let files = Files::here();
        let mut env = Vec::new();
        for (name, folder) in XDG {
            let dir = xdg.join(folder);
            files
                .create_dir_all(&dir, true)
                .map_err(|e| PluginError::failed(format!("creating {}: {e}", dir.display())))?;
            env.push(EnvVar::new(name, dir.display().to_string()));
        }
        let own = xdg.join("data/opencode");
        files
            .create_dir_all(&own, true)
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", own.display())))?;
        let operator = self.operator_data();
        if let Some(operator) = &operator {
            seed_files(&files, operator, &own, &["auth.json"])?;
        }
        let folder = self.files.path(&session.session_id)?;
        Ok(ConfinedLaunchPlan {
            plan,
            paths: session_paths(operator.as_deref(), &folder, [xdg.as_path()]),
            pass_env: PASS_ENV.iter().map(|name| (*name).into()).collect(),
            env: env.into(),
        })
    }

    /// The session's config (`OPENCODE_CONFIG`, merged over the operator's own), no
    /// self-update in the middle of a session, OpenCode's start-up install offline (see
    /// `offline_plugin_install`), and the operator's `env`.
    fn environment(&self, session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        let config = self.session_file(session, CONFIG_FILE)?;
        let mut env = vec![
            EnvVar::new("OPENCODE_CONFIG", config.display().to_string()),
            EnvVar::new("OPENCODE_DISABLE_AUTOUPDATE", "1"),
        ];
        if self.sets_npm_offline() {
            env.push(EnvVar::new(NPM_OFFLINE, "true"));
        }
        env.extend(
            self.settings
                .env
                .iter()
                .map(|(name, value)| EnvVar::new(name.clone(), value.clone())),
        );
        Ok(env)
    }

    /// OpenCode has no start-up dialog: it is ready once its input box is drawn, or straight
    /// away on a permission prompt when the first message went to a tool at once.
    fn is_ready(&self, output: &str) -> PluginResult<Readiness> {
        let patterns = &self.settings.patterns;
        Ok(if patterns.has_input_box(output) || patterns.asks(output) {
            Readiness::Ready
        } else {
            Readiness::Starting
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        let patterns = &self.settings.patterns;
        Ok(if patterns.asks(output) {
            Activity::WaitingInput
        } else if patterns.has_input_box(output) && !patterns.is_busy(output) {
            Activity::Idle
        } else {
            Activity::Working
        })
    }

    /// Never while a permission prompt shows (it has no input box, so no typed text either):
    /// the host's extra Enter would answer it.
    fn input_pending(&self, output: &str) -> PluginResult<bool> {
        Ok(self.settings.patterns.has_pending_input(output))
    }

    /// The session's folder: its settings, seeded copies, prompt.
    fn forget(&self, session_id: &str) -> PluginResult<()> {
        self.files.remove(session_id)
    }

    /// The replies of the session's conversation and its sub-agents', from OpenCode's database
    /// (see [`usage`]).
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        let env = self.database_env(&query.session.session_id);
        usage::read(usage::database_path(&env).as_deref(), query)
    }

    /// The configured command, found on PATH (or at the path given) and answering `--version`.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let cli = Program::npm_cli(&self.settings.command, "opencode-ai", "opencode");
        Ok(vec![cli.version_check(&["--version"])])
    }
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::abi_stable::std_types::RString;

    use ao_plugin_api::sandbox::{PathAccess, PathRule};

    use super::*;

    fn plugin(data_dir: &std::path::Path, config: &str) -> OpenCode {
        OpenCode::new(&PluginContext {
            plugin_name: "opencode".into(),
            data_dir: data_dir.display().to_string().into(),
            config_yaml: config.into(),
        })
        .unwrap()
    }

    fn request(agent_config: &str) -> LaunchRequest {
        LaunchRequest {
            session: AgentSession {
                session_id: "app-1".into(),
                project_id: "app".into(),
                branch: "session/app-1".into(),
                workspace_path: "/work/app-1".into(),
                system_prompt: Some(RString::from("You are worker app-1.")).into(),
                agent_config: agent_config.into(),
            },
            first_message: Some(RString::from("-x\t$(rm -rf /) 'q' \"d\"\nü 🎉")).into(),
            event_command: vec!["/bin/ao-host".into(), "hook".into()].into(),
            resume: None.into(),
            allowed_commands: Default::default(),
        }
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ao-opencode-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn tasks_opencode_would_not_take_as_they_are_are_refused_before_anything_starts() {
        let data = temp("refused");
        let opencode = plugin(&data, "");
        for (task, why) in [
            ("line\rreturn".to_string(), "carriage return"),
            ("  /quit".to_string(), "starts with `/`"),
            (
                "x".repeat(LaunchRequest::MAX_INLINE_MESSAGE_BYTES + 1),
                "too long",
            ),
        ] {
            let mut refused = request("");
            refused.first_message = Some(RString::from(task)).into();
            let err = opencode.launch(&refused).unwrap_err();
            assert!(err.message().contains(why), "{err}");
        }
        assert!(!data.exists(), "a refused launch wrote its config");
        let err = OpenCode::new(&PluginContext {
            plugin_name: "opencode".into(),
            data_dir: data.display().to_string().into(),
            config_yaml: "env: { OPENCODE_CONFIG: /tmp/evil.json }".into(),
        })
        .err()
        .unwrap();
        assert!(err.message().contains("env.OPENCODE_CONFIG"), "{err}");
    }

    #[test]
    fn the_first_message_is_one_argument_and_the_session_config_is_its_own() {
        let data = temp("launch");
        let opencode = plugin(&data, "");
        let plan = opencode
            .launch(&request(
                "{ model: standin/m, agent: plan, permission: { bash: ask } }",
            ))
            .unwrap();
        let argv: Vec<String> = plan.argv.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            argv,
            [
                "opencode",
                "--model=standin/m",
                "--agent=plan",
                "--prompt=-x\t$(rm -rf /) 'q' \"d\"\nü 🎉"
            ]
        );
        assert!(plan.takes_first_message && plan.reports_events);
        assert!(plan.conversation_id.is_none());

        let folder = data.join("opencode/sessions/app-1");
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(folder.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(
            config["plugin"][0],
            folder.join(STATUS_PLUGIN_FILE).display().to_string()
        );
        assert_eq!(config["permission"]["bash"], "ask");
        assert_eq!(
            std::fs::read_to_string(folder.join(SYSTEM_PROMPT_FILE)).unwrap(),
            "You are worker app-1."
        );
        let env = opencode.environment(&request("").session).unwrap();
        let value = |name: &str| {
            env.iter()
                .find(|v| v.name == name)
                .map(|v| v.value.to_string())
        };
        assert_eq!(
            value("OPENCODE_CONFIG"),
            Some(folder.join(CONFIG_FILE).display().to_string())
        );
        assert_eq!(value(NPM_OFFLINE).as_deref(), Some("true"));
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn a_resume_takes_only_an_opencode_session_id_and_keeps_the_system_prompt() {
        let data = temp("resume");
        let opencode = plugin(&data, "");
        opencode.launch(&request("")).unwrap();
        let mut resume = request("");
        resume.first_message = None.into();
        resume.session.system_prompt = None.into();
        resume.resume = Some(RString::from("ses_de840a123ffeEIX24sB5mi5p5V")).into();
        let plan = opencode.launch(&resume).unwrap();
        assert_eq!(
            plan.argv.last().unwrap().as_str(),
            "--session=ses_de840a123ffeEIX24sB5mi5p5V"
        );
        assert_eq!(
            plan.conversation_id
                .as_ref()
                .into_option()
                .map(|s| s.as_str()),
            Some("ses_de840a123ffeEIX24sB5mi5p5V")
        );
        assert!(!plan.takes_first_message);
        let config =
            std::fs::read_to_string(data.join("opencode/sessions/app-1").join(CONFIG_FILE))
                .unwrap();
        assert!(config.contains(SYSTEM_PROMPT_FILE), "{config}");
        for bad in ["", "ses_", "ses_a b", "-s", "ses_../x", "abc"] {
            resume.resume = Some(RString::from(bad)).into();
            assert!(opencode.launch(&resume).is_err(), "{bad:?}");
        }
        std::fs::remove_dir_all(&data).unwrap();
    }

    #[test]
    fn settings_errors_name_the_field_and_the_fix() {
        let data = temp("errors");
        let opencode = plugin(&data, "");
        let error = opencode.launch(&request("{ modle: x }")).err().unwrap();
        assert!(
            error.message().contains("projects.app.agent_config")
                && error.message().contains(ACCEPTED_KEYS),
            "{error:?}"
        );
        let error = opencode.launch(&request("{ model: '' }")).err().unwrap();
        assert!(error.message().contains("agent_config.model"), "{error:?}");
        let refused = OpenCode::new(&PluginContext {
            plugin_name: "opencode".into(),
            data_dir: data.display().to_string().into(),
            config_yaml: "{ comand: x }".into(),
        });
        assert!(refused
            .err()
            .unwrap()
            .message()
            .contains("plugins.config.opencode"));
        // The operator's own npm_config_offline is theirs: the plugin neither sets nor removes it.
        let own = plugin(&data, "{ env: { npm_config_offline: 'false' } }");
        assert!(!own.sets_npm_offline());
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn screens_read_as_the_agent_shows_them() {
        let opencode = plugin(&temp("screens"), "");
        let screen = |name: &str| {
            std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/screens")
                    .join(format!("{name}.txt")),
            )
            .unwrap()
        };
        assert_eq!(
            opencode.is_ready(&screen("starting")).unwrap(),
            Readiness::Starting
        );
        for ready in ["home", "idle", "permission"] {
            assert_eq!(
                opencode.is_ready(&screen(ready)).unwrap(),
                Readiness::Ready,
                "{ready}"
            );
        }
        let activity = |name: &str| opencode.activity(&screen(name)).unwrap();
        assert_eq!(activity("home"), Activity::Idle);
        assert_eq!(activity("idle"), Activity::Idle);
        assert_eq!(activity("busy"), Activity::Working);
        assert_eq!(activity("starting"), Activity::Working);
        assert_eq!(activity("permission"), Activity::WaitingInput);
        assert_eq!(activity("permission-80x24"), Activity::WaitingInput);
        assert!(opencode.input_pending(&screen("typed-80x24")).unwrap());
        assert!(!opencode.input_pending(&screen("permission")).unwrap());
    }

    #[test]
    fn a_confined_session_keeps_its_state_in_folders_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let operator = dir.path().join("share/opencode");
        std::fs::create_dir_all(&operator).unwrap();
        std::fs::write(operator.join("auth.json"), r#"{"anthropic":{}}"#).unwrap();
        let opencode = plugin(
            &dir.path().join("data"),
            &format!(
                "env: {{ XDG_DATA_HOME: {} }}",
                dir.path().join("share").display()
            ),
        );
        let plan = opencode
            .launch_confined(&ConfinedLaunchRequest {
                launch: request(""),
                unattended: true,
            })
            .unwrap();
        assert!(plan.plan.argv.iter().any(|a| a.as_str() == "--auto"));
        let folder = dir.path().join("data/opencode/sessions/app-1");
        let xdg = folder.join("xdg");
        assert_eq!(
            plan.paths.to_vec(),
            [
                // The operator's database (every unconfined session's conversation) is hidden.
                PathRule::new(operator.display().to_string(), PathAccess::Hidden),
                PathRule::new(folder.display().to_string(), PathAccess::ReadOnly),
                PathRule::new(xdg.display().to_string(), PathAccess::Writable),
            ]
        );
        let env: Vec<(String, String)> = plan
            .env
            .iter()
            .map(|v| (v.name.to_string(), v.value.to_string()))
            .collect();
        assert!(env.contains(&(
            "XDG_DATA_HOME".into(),
            xdg.join("data").display().to_string()
        )));
        let seeded = xdg.join("data/opencode/auth.json");
        assert_eq!(
            std::fs::read_to_string(&seeded).unwrap(),
            r#"{"anthropic":{}}"#
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&seeded).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner-only: {mode:o}");
        assert_eq!(
            usage::database_path(&opencode.database_env("app-1")),
            Some(xdg.join("data/opencode/opencode.db")),
            "usage reads the session's own database"
        );

        let attended = opencode
            .launch_confined(&ConfinedLaunchRequest {
                launch: request(""),
                unattended: false,
            })
            .unwrap();
        assert!(!attended.plan.argv.iter().any(|a| a.as_str() == "--auto"));
    }

    #[test]
    fn auto_approve_is_refused_outside_a_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let opencode = plugin(dir.path(), "");
        let message = opencode
            .launch(&request("{ auto_approve: true }"))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("`auto_approve: true` runs OpenCode"),
            "{message}"
        );
        assert!(message.contains("`unattended: true`") && message.contains("`sandbox:`"));
        opencode
            .launch_confined(&ConfinedLaunchRequest {
                launch: request("{ auto_approve: true }"),
                unattended: true,
            })
            .unwrap();
    }
}
