//! Agent plugin `claude-code`: launches the Claude Code CLI and reads its screen.

mod hooks;
mod policy;
mod screen;
mod usage;

use std::{collections::BTreeMap, path::Path};

use ao_plugin_api::{
    export_plugins,
    usage::{UsageQuery, UsageReport},
    Activity, Agent, AgentSession, DoctorCheck, EnvVar, LaunchPlan, LaunchRequest, PluginContext,
    PluginError, PluginFailure, PluginResult, Readiness,
};
use ao_plugin_kit::prelude::*;
use ao_plugin_kit::{program::Program, session_files::SessionFiles, uuid};
use serde::Deserialize;

use crate::screen::{Dialog, ScreenPatterns};

/// The folder name Claude Code keeps a workspace's transcripts under (for the benchmarks, which
/// write transcripts where the CLI would).
pub use crate::usage::folder_name as transcript_folder_name;

export_plugins! {
    agent "claude-code" => ClaudeCode [remote],
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

/// The system prompt's file in the session's folder, written at spawn and read again on resume.
const SYSTEM_PROMPT_FILE: &str = "system-prompt.md";

pub struct ClaudeCode {
    settings: Settings,
    /// Each session's system prompt and hook settings.
    files: SessionFiles,
}

impl ClaudeCode {
    fn project_settings(session: &AgentSession) -> PluginResult<ProjectSettings> {
        session.agent_config("claude-code", "model, permission_mode, skip_permissions")
    }

    /// The options every launch shares: model, permissions, and the system prompt, from a file
    /// of its own so it reaches the CLI whole however long it is. A resumed session gets the
    /// file written at spawn again (`resuming`).
    fn common_arguments(
        &self,
        session: &AgentSession,
        resuming: bool,
    ) -> PluginResult<Vec<String>> {
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
        let prompt_file = match session.system_prompt.as_ref().into_option() {
            Some(prompt) => Some(self.files.write(
                &session.session_id,
                SYSTEM_PROMPT_FILE,
                prompt.as_bytes(),
            )?),
            None if resuming && self.files.exists(&session.session_id, SYSTEM_PROMPT_FILE)? => {
                Some(
                    self.files
                        .path(&session.session_id)?
                        .join(SYSTEM_PROMPT_FILE),
                )
            }
            None => None,
        };
        if let Some(file) = prompt_file {
            argv.extend([
                "--append-system-prompt-file".to_string(),
                file.display().to_string(),
            ]);
        }
        Ok(argv)
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
            files: SessionFiles::new(context),
        })
    }

    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>> {
        self.common_arguments(session, false)
    }

    /// A new conversation under an id chosen here (`--session-id`), or the stored one resumed
    /// (`--resume`); the session's own hook settings (`--settings`); and the first message as
    /// the prompt argument, where it reaches the model byte-exact (the input box rewrites
    /// pasted tabs).
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        let session = &request.session;
        let mut argv = self.common_arguments(session, request.resume.is_some())?;
        let (conversation_id, resumed) = uuid::resume_or_new(
            request.resume.as_ref().into_option().map(|r| r.as_str()),
            "Claude Code",
        )?;
        let flag = if resumed { "--resume" } else { "--session-id" };
        argv.extend([flag.to_string(), conversation_id.clone()]);
        let reports_events = !request.event_command.is_empty();
        let allowed = request.allowed_programs();
        if reports_events || !allowed.is_empty() {
            let settings = hooks::settings(&request.event_argv(), &allowed)?.to_string();
            let file =
                self.files
                    .write(&session.session_id, "settings.json", settings.as_bytes())?;
            argv.extend(["--settings".to_string(), file.display().to_string()]);
        }
        let first = request.inline_first_message();
        if let Some(message) = first {
            // After `--`, a message starting with `-` is not read as an option.
            argv.extend(["--".to_string(), message.to_string()]);
        }
        Ok(LaunchPlan {
            argv: argv.into_iter().map(Into::into).collect(),
            takes_first_message: first.is_some(),
            conversation_id: Some(conversation_id.into()).into(),
            reports_events,
        })
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
            // A first message given at launch can go straight to a permission prompt: the
            // agent is up, and the prompt is the operator's to answer.
            None if patterns.input_line(output).is_some()
                || patterns.permission_question(output).is_some() =>
            {
                Readiness::Ready
            }
            None => Readiness::Starting,
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        let patterns = &self.settings.patterns;
        // A permission prompt first: the screen behind it may still show the turn's spinner.
        Ok(
            if patterns.dialog(output).is_some() || patterns.permission_question(output).is_some() {
                Activity::WaitingInput
            } else if patterns.is_busy(output) {
                Activity::Working
            } else if patterns.input_box_is_last(output) {
                Activity::Idle
            } else {
                Activity::Working
            },
        )
    }

    /// Never while a permission prompt shows: the message was taken and the agent went on to a
    /// tool, and the host's extra Enter would answer the prompt.
    fn input_pending(&self, output: &str) -> PluginResult<bool> {
        let patterns = &self.settings.patterns;
        Ok(patterns.permission_question(output).is_none() && patterns.has_pending_input(output))
    }

    /// The session's folder: its settings, seeded copies, prompt.
    fn forget(&self, session_id: &str) -> PluginResult<()> {
        self.files.remove(session_id)
    }

    /// The configured command, found on PATH (or at the path given) and answering `--version`;
    /// and no managed policy that keeps Claude Code from running ao-host's hooks.
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let cli = Program::npm_cli(
            &self.settings.command,
            "@anthropic-ai/claude-code",
            "claude-code",
        );
        Ok(vec![
            cli.version_check(&["--version"]),
            hooks_allowed_check(),
        ])
    }

    fn silent_events_hint(&self) -> PluginResult<String> {
        Ok(policy::silent_hooks_hint(Path::new(policy::MANAGED_DIR)))
    }

    /// From the conversation's transcripts, where the sessions' environment (`env`, then
    /// ao-host's own) tells the CLI to keep them.
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        usage::usage(
            usage::ConfigDir::from_env(&self.settings.env).as_ref(),
            query,
        )
    }
}

/// Whether Claude Code's managed settings (those readable here) let it run ao-host's hooks.
fn hooks_allowed_check() -> DoctorCheck {
    let what = "Claude Code runs ao-host's hooks";
    let found = policy::hook_policies_in(Path::new(policy::MANAGED_DIR));
    if found.is_empty() {
        return DoctorCheck::passed(
            what,
            format!("no managed policy in {} forbids them", policy::MANAGED_DIR),
        );
    }
    let found: Vec<String> = found.iter().map(ToString::to_string).collect();
    DoctorCheck::failed(
        what,
        format!(
            "{}: sessions still work, but each spawn confirms its task from the screen after a \
             grace time and status is read from screens; to have hooks again, ask the \
             administrator to lift the setting",
            found.join("; ")
        ),
    )
}
