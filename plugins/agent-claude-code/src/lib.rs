//! Agent plugin `claude-code`: launches the Claude Code CLI and reads its screen.

mod config_home;
mod hooks;
mod policy;
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
    program::Program,
    session_files::SessionFiles,
    uuid,
};
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

/// What a confined Claude Code needs from the operator's environment: its API key or token, its
/// endpoint and models. The rest (`AWS_*`, `GITHUB_TOKEN`, …) stays outside unless the
/// project's `sandbox.env` names it.
const PASS_ENV: [&str; 9] = [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_SMALL_FAST_MODEL",
    "ANTHROPIC_DEFAULT_OPUS_MODEL",
    "ANTHROPIC_DEFAULT_SONNET_MODEL",
    "ANTHROPIC_DEFAULT_HAIKU_MODEL",
    "CLAUDE_CODE_OAUTH_TOKEN",
];

/// The permission mode that asks for nothing.
const BYPASS: &str = "bypassPermissions";

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
    /// file written at spawn again (`resuming`). No permission prompts only when `unattended`
    /// (confined, as the operator asked): the project's own settings for it are refused
    /// otherwise.
    fn common_arguments(
        &self,
        session: &AgentSession,
        resuming: bool,
        unattended: bool,
    ) -> PluginResult<Vec<String>> {
        let project = Self::project_settings(session)?;
        let mut argv = vec![self.settings.command.clone()];
        if let Some(model) = &project.model {
            argv.extend(["--model".to_string(), model.clone()]);
        }
        let no_prompt = if project.skip_permissions {
            Some("skip_permissions: true".to_string())
        } else {
            project
                .permission_mode
                .as_deref()
                .filter(|mode| *mode == BYPASS)
                .map(|mode| format!("permission_mode: {mode}"))
        };
        if let Some(setting) = no_prompt.filter(|_| !unattended) {
            return Err(no_prompt_refused(&setting, "Claude Code"));
        }
        if unattended {
            argv.extend(["--permission-mode".to_string(), BYPASS.to_string()]);
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

    /// [`Agent::launch`], without permission prompts when `unattended`.
    fn plan(&self, request: &LaunchRequest, unattended: bool) -> PluginResult<LaunchPlan> {
        let session = &request.session;
        let mut argv = self.common_arguments(session, request.resume.is_some(), unattended)?;
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
        self.common_arguments(session, false, false)
    }

    /// A new conversation under an id chosen here (`--session-id`), or the stored one resumed
    /// (`--resume`); the session's own hook settings (`--settings`); and the first message as
    /// the prompt argument, where it reaches the model byte-exact (the input box rewrites
    /// pasted tabs).
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        self.plan(request, false)
    }

    /// As [`Agent::launch`], in a config home of the session's own (see [`config_home`]),
    /// seeing its session folder (hook settings, system prompt) read-only and writing only that
    /// home.
    fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginFailure> {
        let session_id = request.launch.session.session_id.as_str();
        let plan = self.plan(&request.launch, request.unattended)?;
        let operator = config_home::Operator::from_env(&self.settings.env);
        let home = config_home::prepare(
            &self.files,
            session_id,
            operator.as_ref(),
            request.unattended,
        )?;
        let home_text = home.display().to_string();
        let mut env = vec![EnvVar::new("CLAUDE_CONFIG_DIR", home_text.clone())];
        if request.unattended {
            // As root the CLI refuses bypass mode unless told it runs in a sandbox; it does.
            env.push(EnvVar::new("IS_SANDBOX", "1"));
        }
        let folder = self.files.path(session_id)?;
        let shared: Vec<PathBuf> = operator
            .iter()
            .flat_map(config_home::Operator::shared_paths)
            .collect();
        Ok(ConfinedLaunchPlan {
            plan,
            paths: session_paths(
                shared.iter().map(PathBuf::as_path),
                &folder,
                [home.as_path()],
            ),
            pass_env: PASS_ENV.iter().map(|name| (*name).into()).collect(),
            env: env.into(),
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

    /// From the conversation's transcripts, where the CLI keeps them: a confined session's own
    /// config home, else where the sessions' environment (`env`, then ao-host's own) says.
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        let config = config_home::existing(&self.files, &query.session.session_id)
            .map(usage::ConfigDir)
            .or_else(|| usage::ConfigDir::from_env(&self.settings.env));
        usage::usage(config.as_ref(), query)
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

#[cfg(test)]
mod confined_tests {
    use std::{os::unix::fs::PermissionsExt, path::PathBuf};

    use ao_plugin_api::abi_stable::std_types::RString;
    use serde_json::Value;

    use super::*;
    use ao_plugin_api::sandbox::{PathAccess, PathRule};

    /// A plugin whose data dir and operator's HOME (through its `env` setting) are in `dir`.
    struct Setup {
        dir: tempfile::TempDir,
        plugin: ClaudeCode,
    }

    impl Setup {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let home = dir.path().join("home");
            std::fs::create_dir_all(home.join(".claude")).unwrap();
            std::fs::create_dir_all(dir.path().join("ws")).unwrap();
            let plugin = ClaudeCode::new(&PluginContext {
                plugin_name: "claude-code".into(),
                data_dir: dir.path().join("data").display().to_string().into(),
                config_yaml: format!("env: {{ HOME: {} }}\n", home.display()).into(),
            })
            .unwrap();
            Self { dir, plugin }
        }

        fn home(&self) -> PathBuf {
            self.dir.path().join("home")
        }

        fn session_home(&self) -> PathBuf {
            self.dir
                .path()
                .join("data/claude-code/sessions/app-1/config-home")
        }

        fn request(&self, agent_config: &str, unattended: bool) -> ConfinedLaunchRequest {
            ConfinedLaunchRequest {
                launch: LaunchRequest {
                    session: AgentSession {
                        session_id: "app-1".into(),
                        project_id: "app".into(),
                        branch: "session/app-1/work".into(),
                        workspace_path: self.dir.path().join("ws").display().to_string().into(),
                        system_prompt: None.into(),
                        agent_config: agent_config.into(),
                    },
                    first_message: Some(RString::from("fix it")).into(),
                    event_command: vec![RString::from("/bin/ao-host"), RString::from("hook")]
                        .into(),
                    resume: None.into(),
                    allowed_commands: Default::default(),
                },
                unattended,
            }
        }
    }

    fn argv(plan: &LaunchPlan) -> Vec<String> {
        plan.argv.iter().map(|a| a.to_string()).collect()
    }

    fn env(plan: &ConfinedLaunchPlan) -> Vec<(String, String)> {
        plan.env
            .iter()
            .map(|var| (var.name.to_string(), var.value.to_string()))
            .collect()
    }

    #[test]
    fn an_unattended_session_bypasses_prompts_in_a_config_home_of_its_own() {
        let s = Setup::new();
        let plan = s.plugin.launch_confined(&s.request("", true)).unwrap();
        let argv = argv(&plan.plan);
        let mode = argv.iter().position(|a| a == "--permission-mode").unwrap();
        assert_eq!(argv[mode + 1], "bypassPermissions");
        assert!(argv.ends_with(&["--".into(), "fix it".into()]), "{argv:?}");
        let home = s.session_home().display().to_string();
        assert_eq!(
            env(&plan),
            [
                ("CLAUDE_CONFIG_DIR".to_string(), home.clone()),
                ("IS_SANDBOX".into(), "1".into())
            ]
        );
        let folder = s.dir.path().join("data/claude-code/sessions/app-1");
        // The operator's own home and `.claude.json` (every unconfined session's transcripts,
        // its hooks) are hidden: the session runs on its seeded copy.
        let hidden = |path: PathBuf| PathRule::new(path.display().to_string(), PathAccess::Hidden);
        assert_eq!(
            plan.paths.to_vec(),
            [
                hidden(s.home().join(".claude")),
                hidden(s.home().join(".claude.json")),
                PathRule::new(folder.display().to_string(), PathAccess::ReadOnly),
                PathRule::new(home, PathAccess::Writable),
            ]
        );
        let pass: Vec<&str> = plan.pass_env.iter().map(|n| n.as_str()).collect();
        assert!(pass.contains(&"ANTHROPIC_API_KEY") && pass.contains(&"ANTHROPIC_BASE_URL"));
        assert!(!pass
            .iter()
            .any(|n| n.starts_with("AWS_") || *n == "GITHUB_TOKEN"));
        let settings: Value = serde_json::from_str(
            &std::fs::read_to_string(s.session_home().join("settings.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(settings["skipDangerousModePermissionPrompt"], true);
    }

    #[test]
    fn an_attended_confined_session_keeps_its_prompts() {
        let s = Setup::new();
        let plan = s
            .plugin
            .launch_confined(&s.request("permission_mode: acceptEdits", false))
            .unwrap();
        let argv = argv(&plan.plan);
        assert!(!argv
            .iter()
            .any(|a| a == "bypassPermissions" || a.contains("dangerously")));
        assert!(argv.iter().any(|a| a == "acceptEdits"), "{argv:?}");
        assert!(!env(&plan).iter().any(|(name, _)| name == "IS_SANDBOX"));
    }

    #[test]
    fn no_prompt_settings_are_refused_unless_unattended_in_a_sandbox() {
        let s = Setup::new();
        for config in [
            "skip_permissions: true",
            "permission_mode: bypassPermissions",
        ] {
            let plain = s
                .plugin
                .launch(&s.request(config, false).launch)
                .unwrap_err();
            let message = plain.to_string();
            assert!(message.contains(config), "{message}");
            assert!(message.contains("`unattended: true`"), "{message}");
            assert!(message.contains("`sandbox:`"), "{message}");
            assert!(s.plugin.launch_confined(&s.request(config, false)).is_err());
            s.plugin.launch_confined(&s.request(config, true)).unwrap();
        }
    }

    #[test]
    fn the_home_is_seeded_owner_only_and_the_operators_hooks_stay_out() {
        let s = Setup::new();
        let claude = s.home().join(".claude");
        std::fs::write(claude.join(".credentials.json"), r#"{"token":"t"}"#).unwrap();
        std::fs::write(
            claude.join("settings.json"),
            r#"{"model":"opus","hooks":{"Stop":[{"hooks":[{"type":"command","command":"notify"}]}]}}"#,
        )
        .unwrap();
        std::fs::write(
            s.home().join(".claude.json"),
            r#"{"hasCompletedOnboarding":true}"#,
        )
        .unwrap();
        s.plugin.launch_confined(&s.request("", false)).unwrap();
        let home = s.session_home();
        for name in [".credentials.json", "settings.json", ".claude.json"] {
            let mode = std::fs::metadata(home.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{name} is owner-only: {mode:o}");
        }
        assert_eq!(
            std::fs::read_to_string(home.join(".credentials.json")).unwrap(),
            r#"{"token":"t"}"#
        );
        let settings: Value =
            serde_json::from_str(&std::fs::read_to_string(home.join("settings.json")).unwrap())
                .unwrap();
        assert_eq!(settings["model"], "opus");
        assert!(settings.get("hooks").is_none(), "{settings}");
        assert!(settings.get("skipDangerousModePermissionPrompt").is_none());

        // The session's own `.claude.json` (its trust answers) is kept on restore.
        std::fs::write(home.join(".claude.json"), r#"{"session":"own"}"#).unwrap();
        s.plugin.launch_confined(&s.request("", false)).unwrap();
        assert_eq!(
            std::fs::read_to_string(home.join(".claude.json")).unwrap(),
            r#"{"session":"own"}"#
        );

        s.plugin.forget("app-1").unwrap();
        assert!(!home.exists(), "forget removes the config home");
    }

    #[test]
    fn a_planted_link_in_the_operators_folder_is_never_followed() {
        let s = Setup::new();
        let ssh = s.home().join(".ssh");
        std::fs::create_dir_all(&ssh).unwrap();
        std::fs::write(ssh.join("id_ed25519"), "PRIVATE KEY").unwrap();
        std::os::unix::fs::symlink(
            ssh.join("id_ed25519"),
            s.home().join(".claude/.credentials.json"),
        )
        .unwrap();
        let err = s.plugin.launch_confined(&s.request("", false)).unwrap_err();
        assert!(err.message().contains(".credentials.json"), "{err}");
        assert!(!s.session_home().join(".credentials.json").exists());
    }

    #[test]
    fn usage_is_read_from_a_confined_sessions_own_home() {
        let s = Setup::new();
        s.plugin.launch_confined(&s.request("", false)).unwrap();
        let workspace = s.dir.path().join("ws");
        let real = workspace.canonicalize().unwrap();
        let conversation = "11111111-2222-4333-8444-555555555555";
        let folder = s
            .session_home()
            .join("projects")
            .join(usage::folder_name(&real.to_string_lossy()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("{conversation}.jsonl")),
            include_str!("../tests/fixtures/two-turns.jsonl"),
        )
        .unwrap();
        let query = ao_plugin_test::usage_query(
            &workspace.to_string_lossy(),
            Some(conversation),
            "",
            u64::MAX,
        );
        let report = s.plugin.usage(&query).unwrap();
        assert!(
            !report.usage.is_empty(),
            "the transcript in the home is read"
        );
    }
}
