//! Agent plugin `codex`: launches the OpenAI Codex CLI in a `CODEX_HOME` of the session's own,
//! reads its state from its hooks (the screen as fallback), and resumes its conversations.
//!
//! Facts from Codex CLI 0.171.0 that shape it (see `home.rs` and `screen.rs` for the rest):
//! - Codex chooses its conversation id; the `SessionStart` hook reports it (`session_id`), the
//!   host keeps it, and `codex resume <id>` takes it back. The conversation lives in
//!   `CODEX_HOME/sessions/`, so the home is the session's, kept for restores;
//! - without `--no-daemon` Codex starts a shared app server (`codex app-server`, setsid, copied
//!   under `CODEX_HOME/packages/`) that outlives the terminal: always `--no-daemon`;
//! - keys typed quickly are taken for a paste, and an Enter among them inserts a newline instead
//!   of submitting: `disable_paste_burst = true` makes every Enter submit;
//! - `-c key=value` overrides any setting (its value is TOML); the first message is the prompt
//!   argument, after `--`, and reaches the model byte-exact.

mod home;
mod screen;
mod usage;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ao_plugin_api::{
    export_plugins,
    sandbox::{ConfinedLaunchPlan, ConfinedLaunchRequest},
    usage::{UsageQuery, UsageReport},
    Activity, Agent, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
    PluginError, PluginFailure, PluginResult, Readiness,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{
    confinement::{no_prompt_refused, session_paths},
    files::Files,
    program::Program,
    session_files::SessionFiles,
    uuid::is_uuid,
};
use serde::Deserialize;

use crate::{
    home::{toml_string, HomeContents},
    screen::{Dialog, ScreenPatterns},
};

export_plugins! {
    agent "codex" => Codex,
}

/// `plugins.config.codex`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The CLI to run.
    command: String,
    /// Mark the workspaces ao-host made as trusted, so Codex does not ask at start.
    trust_workspaces: bool,
    /// Extra environment for every session (e.g. the API key a provider's `env_key` names).
    env: BTreeMap<String, String>,
    /// The operator's Codex home, that sessions are seeded from: `$CODEX_HOME`, else `~/.codex`.
    user_home: Option<PathBuf>,
    /// Codex settings for every session, each passed as `-c KEY=VALUE` (the value written as
    /// TOML): `model_provider`, `model_providers.NAME`, `model_reasoning_effort`…
    config: BTreeMap<String, serde_yaml::Value>,
    patterns: ScreenPatterns,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            command: "codex".into(),
            trust_workspaces: false,
            env: BTreeMap::new(),
            user_home: None,
            config: BTreeMap::new(),
            patterns: ScreenPatterns::default(),
        }
    }
}

/// A project's `agent_config` for Codex.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    /// `--model`.
    model: Option<String>,
    /// When Codex asks before running a command: `on-request`, `on-failure`, `never`.
    approval_policy: Option<String>,
    /// `--sandbox`: `read-only`, `workspace-write`, `danger-full-access`.
    sandbox_mode: Option<String>,
    /// `--dangerously-bypass-approvals-and-sandbox`.
    #[serde(default)]
    bypass_approvals_and_sandbox: bool,
}

const PROJECT_KEYS: &str = "model, approval_policy, sandbox_mode, bypass_approvals_and_sandbox";
const APPROVAL_POLICIES: [&str; 3] = ["on-request", "on-failure", "never"];
const SANDBOX_MODES: [&str; 3] = ["read-only", "workspace-write", "danger-full-access"];

impl ProjectSettings {
    fn parse(session: &AgentSession) -> PluginResult<Self> {
        let settings: Self = session.agent_config("codex", PROJECT_KEYS)?;
        let check = |field: &str, value: &Option<String>, allowed: &[&str]| match value {
            Some(value) if !allowed.contains(&value.as_str()) => Err(PluginError::config(format!(
                "projects.{}.agent_config.{field}: {value:?} is not one of {}",
                session.project_id,
                allowed.join(", ")
            ))),
            _ => Ok(()),
        };
        check(
            "approval_policy",
            &settings.approval_policy,
            &APPROVAL_POLICIES,
        )?;
        check("sandbox_mode", &settings.sandbox_mode, &SANDBOX_MODES)?;
        Ok(settings)
    }

    /// The setting, as written, that starts Codex asking nothing with nothing to bound it:
    /// `approval_policy: never` is bounded by Codex's own sandbox unless that is
    /// `danger-full-access`.
    fn no_prompt(&self) -> Option<&'static str> {
        if self.bypass_approvals_and_sandbox {
            Some("bypass_approvals_and_sandbox: true")
        } else if self.approval_policy.as_deref() == Some("never")
            && self.sandbox_mode.as_deref() == Some("danger-full-access")
        {
            Some("approval_policy: never")
        } else {
            None
        }
    }

    /// Refuses [`Self::no_prompt`] unless the launch is unattended (confined).
    fn check_prompts(&self, unattended: bool) -> PluginResult<()> {
        match self.no_prompt() {
            Some(setting) if !unattended => Err(no_prompt_refused(setting, "Codex")),
            _ => Ok(()),
        }
    }
}

/// What a confined Codex needs from the operator's environment besides the variables its
/// configured providers name (`env_key`).
const PASS_ENV: [&str; 5] = [
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENAI_ORG_ID",
    "OPENAI_PROJECT_ID",
    "CODEX_API_KEY",
];

pub struct Codex {
    settings: Settings,
    /// The `-c` overrides from `settings.config`, rendered once.
    config_overrides: Vec<String>,
    user_home: PathBuf,
    session_files: SessionFiles,
    /// The files of the machine sessions run on.
    files: Files,
}

impl Codex {
    /// The session's `CODEX_HOME` (`<session folder>/home`), created, by its canonical path:
    /// Codex keys hook trust by the path it resolves, which must be the one written.
    fn home(&self, session: &AgentSession) -> PluginResult<PathBuf> {
        let home = self.session_files.dir(&session.session_id)?.join("home");
        self.files
            .create_dir_all(&home, true)
            .and_then(|()| self.files.canonicalize(&home))
            .map_err(|e| PluginError::failed(format!("creating {}: {e}", home.display())))
    }

    /// The program and its options: `[resume] --no-daemon`, the `-c` overrides, model and
    /// sandbox; the caller adds `--` and the positional arguments.
    fn options(
        &self,
        session: &AgentSession,
        project: &ProjectSettings,
        resume: Option<&str>,
        unattended: bool,
    ) -> Vec<String> {
        let mut argv = vec![self.settings.command.clone()];
        if resume.is_some() {
            argv.push("resume".into());
        }
        argv.push("--no-daemon".into());
        let mut overrides = vec![
            "disable_paste_burst=true".to_string(),
            "check_for_update_on_startup=false".to_string(),
            // Its background thread fires `SessionStart` with another conversation's id.
            "features.memories=false".to_string(),
            // A login shell's profile resets PATH, which starts with the folder of the
            // `ao-host` that started the session (the orchestrator runs it by name).
            "allow_login_shell=false".to_string(),
        ];
        // A resumed conversation has its instructions in its history already.
        if let (Some(prompt), None) = (session.system_prompt.as_ref().into_option(), resume) {
            overrides.push(format!("developer_instructions={}", toml_string(prompt)));
        }
        if let Some(policy) = &project.approval_policy {
            overrides.push(format!("approval_policy={}", toml_string(policy)));
        }
        overrides.extend(self.config_overrides.iter().cloned());
        for setting in overrides {
            argv.extend(["-c".to_string(), setting]);
        }
        if let Some(model) = &project.model {
            argv.extend(["--model".to_string(), model.clone()]);
        }
        // Unattended, Codex runs inside the host's sandbox, where its own (namespaces again)
        // cannot start, and asks nothing.
        if unattended || project.bypass_approvals_and_sandbox {
            argv.push("--dangerously-bypass-approvals-and-sandbox".into());
        } else if let Some(mode) = &project.sandbox_mode {
            argv.extend(["--sandbox".to_string(), mode.clone()]);
        }
        argv
    }

    /// [`Agent::launch`], without approvals when `unattended`.
    fn plan(&self, request: &LaunchRequest, unattended: bool) -> PluginResult<LaunchPlan> {
        let session = &request.session;
        let project = ProjectSettings::parse(session)?;
        project.check_prompts(unattended)?;
        let resume = match request.resume.as_ref().into_option() {
            Some(id) if is_uuid(id) => Some(id.to_string()),
            Some(id) => {
                return Err(PluginError::invalid_input(format!(
                    "{id:?} is not a Codex conversation id (a UUID)"
                )))
            }
            None => None,
        };
        let (event_command, allowed) = (request.event_argv(), request.allowed_programs());
        let workspaces = self.workspace_paths(session);
        home::write(
            &self.files,
            &self.home(session)?,
            &HomeContents {
                user_home: &self.user_home,
                trusted_workspaces: if self.settings.trust_workspaces {
                    &workspaces
                } else {
                    &[]
                },
                event_command: &event_command,
                allowed_commands: &allowed,
            },
        )?;

        let mut argv = self.options(session, &project, resume.as_deref(), unattended);
        // After `--`, nothing the task starts with is read as an option.
        argv.push("--".into());
        argv.extend(resume.clone());
        let first = request.inline_first_message();
        if let Some(message) = first {
            argv.push(message.to_string());
        }
        Ok(LaunchPlan {
            argv: argv.into_iter().map(Into::into).collect(),
            takes_first_message: first.is_some(),
            conversation_id: resume.map(Into::into).into(),
            reports_events: !event_command.is_empty(),
        })
    }

    /// The workspace as given and, when it differs, as resolved: Codex may compare either.
    fn workspace_paths(&self, session: &AgentSession) -> Vec<String> {
        let given = session.workspace_path.to_string();
        let mut paths = vec![given.clone()];
        if let Ok(real) = self.files.canonicalize(Path::new(&given)) {
            let real = real.display().to_string();
            if real != given {
                paths.push(real);
            }
        }
        paths
    }
}

/// The variables the configured providers read their keys from (`env_key`, at any depth of
/// `plugins.config.codex.config`), added to `names`.
fn env_keys(value: &serde_yaml::Value, names: &mut Vec<String>) {
    if let serde_yaml::Value::Mapping(map) = value {
        for (key, value) in map {
            match (key.as_str(), value.as_str()) {
                (Some("env_key"), Some(name)) if !names.iter().any(|n| n == name) => {
                    names.push(name.to_string())
                }
                _ => env_keys(value, names),
            }
        }
    }
}

/// `value` as a TOML value for `-c`: strings quoted and escaped, tables inline.
fn toml_value(value: &serde_yaml::Value) -> Result<String, String> {
    use serde_yaml::Value;
    Ok(match value {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => toml_string(s),
        Value::Sequence(items) => format!(
            "[{}]",
            items
                .iter()
                .map(toml_value)
                .collect::<Result<Vec<_>, _>>()?
                .join(", ")
        ),
        Value::Mapping(map) => {
            let entries = map
                .iter()
                .map(|(key, value)| match key {
                    Value::String(key) => {
                        Ok(format!("{} = {}", toml_string(key), toml_value(value)?))
                    }
                    other => Err(format!("a key that is not a string ({other:?})")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            format!("{{{}}}", entries.join(", "))
        }
        Value::Null => return Err("an empty value (null)".into()),
        Value::Tagged(tagged) => return Err(format!("a tagged value ({})", tagged.tag)),
    })
}

/// A `-c` key: dotted names of letters, digits, `_` and `-`, as Codex's own settings are.
fn is_config_key(key: &str) -> bool {
    key.split('.').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

impl Agent for Codex {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::config(
                "plugins.config.codex.command is empty; name the Codex CLI (e.g. codex)",
            ));
        }
        let config_overrides = settings
            .config
            .iter()
            .map(|(key, value)| {
                if !is_config_key(key) {
                    return Err(PluginError::config(format!(
                        "plugins.config.codex.config: {key:?} is not a Codex setting name \
                         (dotted names like model_providers.local)"
                    )));
                }
                let value = toml_value(value).map_err(|e| {
                    PluginError::config(format!(
                        "plugins.config.codex.config.{key}: {e} cannot be a Codex setting; \
                         give a string, number, boolean, list or mapping"
                    ))
                })?;
                Ok(format!("{key}={value}"))
            })
            .collect::<PluginResult<Vec<_>>>()?;
        if settings.env.contains_key("CODEX_HOME") {
            return Err(PluginError::config(
                "plugins.config.codex.env.CODEX_HOME: each session has a Codex home of its own; \
                 set plugins.config.codex.user_home to seed sessions from another one",
            ));
        }
        let home = || PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        let user_home = match &settings.user_home {
            Some(path) => match path.strip_prefix("~") {
                Ok(rest) => home().join(rest),
                Err(_) => path.clone(),
            },
            None => match std::env::var_os("CODEX_HOME").filter(|v| !v.is_empty()) {
                Some(path) => PathBuf::from(path),
                None => home().join(".codex"),
            },
        };
        if !user_home.is_absolute() {
            return Err(PluginError::config(format!(
                "plugins.config.codex.user_home: {:?} is not an absolute path (nor `~/…`); name your Codex home (e.g. ~/.codex)",
                user_home.display().to_string()
            )));
        }
        Ok(Self {
            settings,
            config_overrides,
            user_home,
            session_files: SessionFiles::new(context),
            files: Files::here(),
        })
    }

    /// The argv alone, writing nothing: [`Agent::launch`] prepares the home.
    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>> {
        let project = ProjectSettings::parse(session)?;
        project.check_prompts(false)?;
        let mut argv = self.options(session, &project, None, false);
        argv.push("--".into());
        Ok(argv)
    }

    /// `codex [resume] --no-daemon -c …` in the session's own home (hooks, trust, rules written
    /// there first), the first message as the prompt argument after `--`; a restore resumes the
    /// conversation the `SessionStart` hook reported.
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        self.plan(request, false)
    }

    /// As [`Agent::launch`]: the session's own home writable, its folder read-only, the API
    /// variables of OpenAI and of the configured providers passed; unattended, no approvals and
    /// no sandbox of Codex's own.
    fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginFailure> {
        let session = &request.launch.session;
        let plan = self.plan(&request.launch, request.unattended)?;
        let folder = self.session_files.path(&session.session_id)?;
        let home = self.home(session)?;
        let mut pass_env: Vec<String> = PASS_ENV.iter().map(|name| name.to_string()).collect();
        for value in self.settings.config.values() {
            env_keys(value, &mut pass_env);
        }
        Ok(ConfinedLaunchPlan {
            plan,
            paths: session_paths([self.user_home.as_path()], &folder, [home.as_path()]),
            pass_env: pass_env.into_iter().map(Into::into).collect(),
            env: Default::default(),
        })
    }

    fn environment(&self, session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        let home = self.home(session)?;
        let mut env = vec![
            EnvVar::new("CODEX_HOME", home.display().to_string()),
            // Codex is a Rust program: a failed start (a config.toml it cannot read) then shows
            // its message on the last lines, which the host quotes, not a backtrace's frames.
            EnvVar::new("RUST_BACKTRACE", "0"),
        ];
        env.extend(
            self.settings
                .env
                .iter()
                .map(|(name, value)| EnvVar::new(name.clone(), value.clone())),
        );
        Ok(env)
    }

    fn is_ready(&self, output: &str) -> PluginResult<Readiness> {
        let patterns = &self.settings.patterns;
        let blocked = |reason: &str, answer: &[&str]| Readiness::Blocked {
            reason: reason.into(),
            answer: answer.iter().map(|k| (*k).into()).collect(),
        };
        Ok(match patterns.dialog(output) {
            Some(Dialog::TrustFolder)
                if self.settings.trust_workspaces && patterns.trust_option_selected(output) =>
            {
                blocked("Codex asks whether to trust the workspace", &["Enter"])
            }
            Some(Dialog::TrustFolder) => blocked(
                "Codex asks whether to trust the workspace folder: answer it in the session \
                 (ao-host attach), or set `trust_workspaces: true` under plugins.config.codex",
                &[],
            ),
            Some(Dialog::HooksReview) => blocked(
                "Codex asks to review hooks it does not know as trusted: the workspace's own \
                 .codex/hooks.json or hooks in your config.toml (or a Codex release that records \
                 hook trust differently from 0.171): review them in the session (ao-host attach)",
                &[],
            ),
            Some(Dialog::SignIn) => blocked(
                "Codex is not signed in: run `codex login` once (each session gets a copy of \
                 ~/.codex/auth.json), or configure a provider under plugins.config.codex.config",
                &[],
            ),
            // A first message given at launch can go straight to an approval prompt: the agent
            // is up, and the prompt is the operator's to answer.
            None if patterns.composer(output).is_some() || patterns.is_approval(output) => {
                Readiness::Ready
            }
            None => Readiness::Starting,
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        let patterns = &self.settings.patterns;
        // An approval first: the screen behind it may still say it works.
        Ok(
            if patterns.dialog(output).is_some() || patterns.is_approval(output) {
                Activity::WaitingInput
            } else if patterns.is_idle(output) {
                Activity::Idle
            } else {
                Activity::Working
            },
        )
    }

    /// Never while an approval prompt shows: its selected option looks like composer text, and
    /// the host's extra Enter would answer it.
    fn input_pending(&self, output: &str) -> PluginResult<bool> {
        Ok(self.settings.patterns.has_pending_input(output))
    }

    /// The session's folder: its settings, seeded copies, prompt.
    fn forget(&self, session_id: &str) -> PluginResult<()> {
        self.session_files.remove(session_id)
    }

    /// From the rollout files in the session's `CODEX_HOME` (see [`usage`]).
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        let folder = self.session_files.path(&query.session.session_id)?;
        usage::usage(&folder.join("home"), query)
    }

    /// The configured command answering `--version`, and credentials to seed sessions with.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let cli = Program::npm_cli(&self.settings.command, "@openai/codex", "codex");
        let auth = self.user_home.join("auth.json");
        let credentials = if self.files.is_file(&auth) {
            DoctorCheck::passed("codex credentials", auth.display().to_string())
        } else if self.settings.config.contains_key("model_provider") {
            DoctorCheck::passed(
                "codex credentials",
                "a provider of its own (plugins.config.codex.config.model_provider)",
            )
        } else {
            DoctorCheck::failed(
                "codex credentials",
                format!(
                    "no {}: run `codex login` (each session gets a copy), or configure a \
                     provider under plugins.config.codex.config",
                    auth.display()
                ),
            )
        };
        Ok(vec![cli.version_check(&["--version"]), credentials])
    }
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::abi_stable::std_types::RString;

    use ao_plugin_api::sandbox::{PathAccess, PathRule};

    use super::*;

    fn codex(data_dir: &Path, config_yaml: &str) -> PluginResult<Codex> {
        Codex::new(&PluginContext {
            plugin_name: RString::from("codex"),
            data_dir: RString::from(data_dir.display().to_string()),
            config_yaml: RString::from(config_yaml),
        })
    }

    fn session(workspace: &Path, agent_config: &str) -> AgentSession {
        AgentSession {
            session_id: "app-1".into(),
            project_id: "app".into(),
            branch: "session/app-1".into(),
            workspace_path: workspace.display().to_string().into(),
            system_prompt: Some(RString::from("You are \"app-1\".")).into(),
            agent_config: agent_config.into(),
        }
    }

    fn request(session: AgentSession, first: Option<&str>, resume: Option<&str>) -> LaunchRequest {
        LaunchRequest {
            session,
            first_message: first.map(RString::from).into(),
            event_command: vec![RString::from("/bin/ao-host"), RString::from("hook")].into(),
            resume: resume.map(RString::from).into(),
            allowed_commands: Default::default(),
        }
    }

    fn argv(plan: &LaunchPlan) -> Vec<String> {
        plan.argv.iter().map(|a| a.to_string()).collect()
    }

    struct Temp(PathBuf);
    impl Temp {
        fn new(tag: &str) -> Self {
            let path = std::env::temp_dir().join(format!("ao-codex-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(path.join("ws")).unwrap();
            Self(path)
        }
    }
    impl Drop for Temp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_new_session_takes_its_task_after_dashes_in_a_home_of_its_own() {
        let temp = Temp::new("new");
        let codex = codex(
            &temp.0,
            "command: /opt/codex\ntrust_workspaces: true\nuser_home: /nonexistent\n\
             config: { model_provider: local, model_providers.local: { base_url: 'http://x/v1', wire_api: responses } }\n",
        )
        .unwrap();
        let task = "-rf \"$(x)\"\t\n🎉";
        let plan = codex
            .launch(&request(
                session(
                    &temp.0.join("ws"),
                    "{ model: gpt-x, approval_policy: never }",
                ),
                Some(task),
                None,
            ))
            .unwrap();
        let argv = argv(&plan);
        assert_eq!(argv[..2], ["/opt/codex", "--no-daemon"]);
        assert_eq!(argv[argv.len() - 2..], ["--", task]);
        assert!(plan.takes_first_message && plan.reports_events);
        assert!(plan.conversation_id.is_none());
        for setting in [
            "disable_paste_burst=true",
            "developer_instructions=\"You are \\\"app-1\\\".\"",
            "approval_policy=\"never\"",
            "model_provider=\"local\"",
            "model_providers.local={\"base_url\" = \"http://x/v1\", \"wire_api\" = \"responses\"}",
        ] {
            assert!(
                argv.windows(2).any(|w| w == ["-c", setting]),
                "{setting}: {argv:?}"
            );
        }
        assert!(argv.windows(2).any(|w| w == ["--model", "gpt-x"]));
        let env = codex.environment(&session(&temp.0.join("ws"), "")).unwrap();
        let home = temp
            .0
            .canonicalize()
            .unwrap()
            .join("codex/sessions/app-1/home");
        assert_eq!(
            env[0],
            EnvVar::new("CODEX_HOME", home.display().to_string())
        );
        let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
        assert!(config.contains(&format!("[projects.\"{}\"]", temp.0.join("ws").display())));
        assert!(home.join("hooks.json").is_file());
    }

    #[test]
    fn a_restore_resumes_the_reported_conversation_and_refuses_anything_else() {
        let temp = Temp::new("resume");
        let codex = codex(&temp.0, "user_home: /nonexistent").unwrap();
        let id = "01a217be-7b23-76d2-84c0-5deb4a1ec915";
        let plan = codex
            .launch(&request(session(&temp.0.join("ws"), ""), None, Some(id)))
            .unwrap();
        let argv = argv(&plan);
        assert_eq!(argv[..3], ["codex", "resume", "--no-daemon"]);
        assert_eq!(argv[argv.len() - 2..], ["--", id]);
        assert!(!argv.iter().any(|a| a.starts_with("developer_instructions")));
        assert_eq!(plan.conversation_id.as_ref().into_option().unwrap(), id);
        assert!(!plan.takes_first_message);
        for bad in ["--last", "", "../x"] {
            let error = codex
                .launch(&request(session(&temp.0.join("ws"), ""), None, Some(bad)))
                .unwrap_err();
            assert!(error.message().contains("UUID"), "{bad:?}");
        }
    }

    #[test]
    fn settings_errors_name_the_field_and_the_fix() {
        let temp = Temp::new("errors");
        let error = |yaml: &str| codex(&temp.0, yaml).err().unwrap().message().to_string();
        assert!(error("comand: x").contains("unknown field `comand`"));
        assert!(error("command: ''").contains("plugins.config.codex.command"));
        assert!(error("config: { 'a b': 1 }").contains("not a Codex setting name"));
        assert!(error("config: { model: null }").contains("plugins.config.codex.config.model"));
        assert!(error("env: { CODEX_HOME: /x }").contains("user_home"));
        for relative in ["\"\"", "relative/dir"] {
            let message = error(&format!("user_home: {relative}"));
            assert!(message.contains("not an absolute path"), "{message}");
        }
        let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
        assert_eq!(
            codex(&temp.0, "user_home: ~/my-codex").unwrap().user_home,
            home.join("my-codex")
        );
        let codex = codex(&temp.0, "").unwrap();
        for (agent_config, want) in [
            (
                "{ approval_policy: untrusted }",
                "agent_config.approval_policy",
            ),
            ("{ sandbox_mode: open }", "agent_config.sandbox_mode"),
            (
                "{ permission_mode: x }",
                "codex accepts model, approval_policy",
            ),
        ] {
            let error = codex
                .launch(&request(
                    session(&temp.0.join("ws"), agent_config),
                    None,
                    None,
                ))
                .unwrap_err();
            assert!(
                error.message().contains(want),
                "{agent_config}: {}",
                error.message()
            );
        }
    }

    #[test]
    fn a_long_task_is_typed_in_and_the_bare_command_writes_nothing() {
        let temp = Temp::new("long");
        let codex = codex(&temp.0, "user_home: /nonexistent").unwrap();
        let long = "x".repeat(LaunchRequest::MAX_INLINE_MESSAGE_BYTES + 1);
        let bare = codex
            .launch_command(&session(&temp.0.join("ws"), ""))
            .unwrap();
        assert_eq!(bare.last().map(String::as_str), Some("--"));
        assert!(
            !temp.0.join("codex").exists(),
            "launch_command wrote the session's home"
        );
        let plan = codex
            .launch(&request(session(&temp.0.join("ws"), ""), Some(&long), None))
            .unwrap();
        assert!(!plan.takes_first_message);
        assert_eq!(argv(&plan).last().map(String::as_str), Some("--"));
    }

    #[test]
    fn the_trust_dialog_is_answered_only_when_allowed() {
        let temp = Temp::new("ready");
        let screen = |name: &str| {
            std::fs::read_to_string(format!(
                "{}/tests/screens/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
        };
        let trusting = codex(&temp.0, "trust_workspaces: true").unwrap();
        let asking = codex(&temp.0, "").unwrap();
        let trust = screen("trust-dialog.txt");
        match trusting.is_ready(&trust).unwrap() {
            Readiness::Blocked { answer, .. } => assert_eq!(answer.len(), 1),
            other => panic!("{other:?}"),
        }
        match asking.is_ready(&trust).unwrap() {
            Readiness::Blocked { answer, reason } => {
                assert!(answer.is_empty());
                assert!(reason.contains("trust_workspaces"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            asking.is_ready(&screen("fresh-start.txt")).unwrap(),
            Readiness::Ready
        );
        assert_eq!(
            asking.is_ready(&screen("permission-prompt.txt")).unwrap(),
            Readiness::Ready
        );
        assert_eq!(asking.is_ready("").unwrap(), Readiness::Starting);
        assert_eq!(
            asking.activity(&screen("permission-prompt.txt")).unwrap(),
            Activity::WaitingInput
        );
        assert_eq!(
            asking.activity(&screen("busy-slow-reply.txt")).unwrap(),
            Activity::Working
        );
        assert_eq!(
            asking.activity(&screen("finished-turn.txt")).unwrap(),
            Activity::Idle
        );
    }

    fn confined(session: AgentSession, unattended: bool) -> ConfinedLaunchRequest {
        ConfinedLaunchRequest {
            launch: request(session, Some("fix it"), None),
            unattended,
        }
    }

    #[test]
    fn a_confined_session_writes_only_its_home_and_unattended_asks_nothing() {
        let temp = Temp::new("confined");
        let codex = codex(
            &temp.0,
            "command: /opt/codex\nuser_home: /nonexistent\n\
             config: { model_providers.local: { base_url: 'http://x/v1', env_key: LOCAL_KEY } }\n",
        )
        .unwrap();
        let plan = codex
            .launch_confined(&confined(session(&temp.0.join("ws"), ""), true))
            .unwrap();
        let unattended = argv(&plan.plan);
        assert!(unattended.contains(&"--dangerously-bypass-approvals-and-sandbox".to_string()));
        assert!(
            unattended.ends_with(&["--".into(), "fix it".into()]),
            "{unattended:?}"
        );
        let folder = temp.0.join("codex/sessions/app-1");
        let home = folder.canonicalize().unwrap().join("home");
        assert_eq!(
            plan.paths.to_vec(),
            [
                // The operator's Codex home (every unconfined session's rollouts) is hidden.
                PathRule::new("/nonexistent", PathAccess::Hidden),
                PathRule::new(folder.display().to_string(), PathAccess::ReadOnly),
                PathRule::new(home.display().to_string(), PathAccess::Writable),
            ]
        );
        let pass: Vec<&str> = plan.pass_env.iter().map(|n| n.as_str()).collect();
        assert!(
            pass.contains(&"OPENAI_API_KEY") && pass.contains(&"LOCAL_KEY"),
            "{pass:?}"
        );
        assert!(!pass
            .iter()
            .any(|n| n.starts_with("AWS_") || *n == "GITHUB_TOKEN"));

        let attended = codex
            .launch_confined(&confined(session(&temp.0.join("ws"), ""), false))
            .unwrap();
        assert!(!argv(&attended.plan)
            .iter()
            .any(|a| a.contains("dangerously")));
    }

    #[test]
    fn no_prompt_settings_are_refused_outside_a_sandbox() {
        let temp = Temp::new("refused");
        let codex = codex(&temp.0, "command: /opt/codex\nuser_home: /nonexistent\n").unwrap();
        for (config, setting) in [
            (
                "{ bypass_approvals_and_sandbox: true }",
                "bypass_approvals_and_sandbox",
            ),
            (
                "{ approval_policy: never, sandbox_mode: danger-full-access }",
                "approval_policy: never",
            ),
        ] {
            let ws = temp.0.join("ws");
            let err = codex
                .launch(&request(session(&ws, config), None, None))
                .unwrap_err();
            let message = err.to_string();
            assert!(message.contains(setting), "{message}");
            assert!(message.contains("`unattended: true`") && message.contains("`sandbox:`"));
            assert!(codex.launch_command(&session(&ws, config)).is_err());
            codex
                .launch_confined(&confined(session(&ws, config), true))
                .unwrap();
        }
        // Bounded by Codex's own sandbox: no refusal.
        codex
            .launch(&request(
                session(&temp.0.join("ws"), "{ approval_policy: never }"),
                None,
                None,
            ))
            .unwrap();
    }
}
