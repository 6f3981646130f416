//! Agent plugin `claude-code`: launches the Claude Code CLI and reads its screen.

mod screen;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use ao_plugin_api::{
    export_plugins, program::Program, validate::validate_id, Activity, Agent, AgentSession,
    DoctorCheck, EnvVar, PluginContext, PluginError, PluginResult, Readiness,
};
use serde::Deserialize;

use crate::screen::{Dialog, ScreenPatterns};

export_plugins! {
    agent "claude-code" => ClaudeCode,
}

/// `plugins.config.claude-code`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The CLI to run.
    command: String,
    /// Answer "trust this folder" for the workspaces ao-host made itself.
    trust_workspaces: bool,
    /// Accept the warning `--dangerously-skip-permissions` shows at start.
    accept_bypass_warning: bool,
    /// Extra environment for every session (e.g. `IS_SANDBOX: "1"`).
    env: BTreeMap<String, String>,
    patterns: ScreenPatterns,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            command: "claude".into(),
            trust_workspaces: false,
            accept_bypass_warning: false,
            env: BTreeMap::new(),
            patterns: ScreenPatterns::default(),
        }
    }
}

/// A project's `agent_config` for Claude Code.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    model: Option<String>,
    /// `--permission-mode` (`default`, `acceptEdits`, `plan`, `bypassPermissions`, …).
    permission_mode: Option<String>,
    /// `--dangerously-skip-permissions`.
    #[serde(default)]
    skip_permissions: bool,
}

pub struct ClaudeCode {
    settings: Settings,
    prompt_dir: PathBuf,
}

impl ClaudeCode {
    fn project_settings(session: &AgentSession) -> PluginResult<ProjectSettings> {
        let text = session.agent_config.as_str();
        if text.trim().is_empty() {
            return Ok(ProjectSettings::default());
        }
        serde_yaml::from_str::<Option<ProjectSettings>>(text)
            .map(Option::unwrap_or_default)
            .map_err(|e| {
                PluginError::config(format!(
                    "projects.{}.agent_config: {e}; claude-code accepts model, permission_mode, skip_permissions",
                    session.project_id
                ))
            })
    }

    /// Writes the system prompt to a file of its own, so it reaches the CLI whole through
    /// `--append-system-prompt-file` however long it is.
    fn write_prompt(&self, session: &AgentSession, prompt: &str) -> PluginResult<PathBuf> {
        validate_id("session id", &session.session_id)?;
        std::fs::create_dir_all(&self.prompt_dir).map_err(|e| {
            PluginError::failed(format!("creating {}: {e}", self.prompt_dir.display()))
        })?;
        let path = self.prompt_dir.join(format!("{}.md", session.session_id));
        let temp = self.prompt_dir.join(format!(
            ".{}.{}.tmp",
            session.session_id,
            std::process::id()
        ));
        std::fs::write(&temp, prompt)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(|e| PluginError::failed(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }
}

impl Agent for ClaudeCode {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::config(
                "plugins.config.claude-code.command is empty; name the Claude Code CLI (e.g. claude)",
            ));
        }
        Ok(Self {
            settings,
            prompt_dir: Path::new(context.data_dir.as_str())
                .join("claude-code")
                .join("prompts"),
        })
    }

    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>> {
        let project = Self::project_settings(session)?;
        let mut argv = vec![self.settings.command.clone()];
        if let Some(model) = &project.model {
            argv.extend(["--model".to_string(), model.clone()]);
        }
        if project.skip_permissions {
            argv.push("--dangerously-skip-permissions".into());
        } else if let Some(mode) = &project.permission_mode {
            argv.extend(["--permission-mode".to_string(), mode.clone()]);
        }
        if let Some(prompt) = session.system_prompt.as_ref().into_option() {
            let file = self.write_prompt(session, prompt)?;
            argv.extend([
                "--append-system-prompt-file".to_string(),
                file.display().to_string(),
            ]);
        }
        Ok(argv)
    }

    fn environment(&self, _session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        Ok(self
            .settings
            .env
            .iter()
            .map(|(name, value)| EnvVar::new(name.clone(), value.clone()))
            .collect())
    }

    fn is_ready(&self, output: &str) -> PluginResult<Readiness> {
        let patterns = &self.settings.patterns;
        let blocked = |reason: &str, answer: &[&str]| Readiness::Blocked {
            reason: reason.into(),
            answer: answer.iter().map(|k| (*k).into()).collect(),
        };
        let choosing = |reason: &str, option: &str| match patterns.choose_option(output, option) {
            Some(keys) => Readiness::Blocked {
                reason: reason.into(),
                answer: keys.into_iter().map(Into::into).collect(),
            },
            None => Readiness::Blocked {
                reason: format!(
                    "{reason}, but its option {option:?} is not on screen: answer it in the \
                     session (ao-host attach)"
                )
                .into(),
                answer: Default::default(),
            },
        };
        Ok(match patterns.dialog(output) {
            Some(Dialog::RootRefusal) => blocked(
                "Claude Code refuses --dangerously-skip-permissions when run as root unless \
                 IS_SANDBOX=1 is set: add `env: { IS_SANDBOX: \"1\" }` under \
                 plugins.config.claude-code (only inside a sandbox), or drop skip_permissions",
                &[],
            ),
            Some(Dialog::TrustFolder) if self.settings.trust_workspaces => choosing(
                "Claude Code asks whether to trust the workspace",
                &patterns.trust_option,
            ),
            Some(Dialog::TrustFolder) => blocked(
                "Claude Code asks whether to trust the workspace folder: answer it in the \
                 session (ao-host attach), or set `trust_workspaces: true` under \
                 plugins.config.claude-code",
                &[],
            ),
            Some(Dialog::ApiKey) => blocked(
                "Claude Code asks whether to use the ANTHROPIC_API_KEY from the environment: \
                 answer it in the session (ao-host attach) once; it remembers the answer",
                &[],
            ),
            Some(Dialog::BypassWarning) if self.settings.accept_bypass_warning => choosing(
                "Claude Code shows the bypass-permissions warning",
                &patterns.bypass_option,
            ),
            Some(Dialog::BypassWarning) => blocked(
                "Claude Code asks to accept bypass-permissions mode: answer it in the session \
                 (ao-host attach), or set `accept_bypass_warning: true` under \
                 plugins.config.claude-code",
                &[],
            ),
            None if patterns.input_line(output).is_some() => Readiness::Ready,
            None => Readiness::Starting,
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        let patterns = &self.settings.patterns;
        Ok(if patterns.dialog(output).is_some() {
            Activity::WaitingInput
        } else if patterns.is_busy(output) {
            Activity::Working
        } else if patterns.input_line(output).is_some() {
            Activity::Idle
        } else {
            Activity::Working
        })
    }

    fn input_pending(&self, output: &str) -> PluginResult<bool> {
        Ok(self.settings.patterns.has_pending_input(output))
    }

    /// The configured command, found on PATH (or at the path given) and answering `--version`.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let cli = Program::new(
            self.settings.command.as_str(),
            "`npm install -g @anthropic-ai/claude-code`, or set plugins.config.claude-code.command \
             to where it is",
        );
        Ok(vec![cli.version_check(&["--version"])])
    }
}
