//! Agent plugin `gemini`: launches Google's Gemini CLI (`@google/gemini-cli`), reports its state
//! from the CLI's own hooks and reads its screen as a fallback.
//!
//! Each session gets a Gemini home of its own (`GEMINI_CLI_HOME`, see [`home`]): its settings
//! (the operator's, with the session's hooks added), its credentials (copied from the
//! operator's), its chats. Nothing is written into the operator's `~/.gemini`.

mod home;
mod hooks;
mod screen;
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
    confinement::{no_prompt_refused, session_paths},
    files::Files,
    program::Program,
    session_files::SessionFiles,
    uuid,
};
use serde::Deserialize;

use crate::{
    home::SessionHome,
    screen::{Dialog, Screen},
};

export_plugins! {
    agent "gemini" => Gemini,
}

/// `plugins.config.gemini`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The CLI to run.
    command: String,
    /// Trust the workspaces ao-host made itself (`--skip-trust`): without it Gemini CLI asks
    /// at start, and runs no hooks in a folder it does not trust.
    trust_workspaces: bool,
    /// `security.auth.selectedType` in the sessions' settings (`gemini-api-key`,
    /// `oauth-personal`, `vertex-ai`, …), for an operator whose own settings chose none.
    auth_type: Option<String>,
    /// The folder whose `.gemini/` holds the operator's own settings and credentials, copied
    /// into each session's home. Default: `$GEMINI_CLI_HOME`, else `$HOME`.
    user_home: Option<PathBuf>,
    /// Extra environment for every session (e.g. `GEMINI_API_KEY`).
    env: BTreeMap<String, String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            command: "gemini".into(),
            trust_workspaces: false,
            auth_type: None,
            user_home: None,
            env: BTreeMap::new(),
        }
    }
}

/// A project's `agent_config` for Gemini CLI.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectSettings {
    /// `--model`. Pin one: Gemini CLI's default ("auto") asks the model API to route each
    /// prompt first.
    model: Option<String>,
    /// `--approval-mode`: `default` (ask for tools), `auto_edit`, `yolo` or `plan`.
    approval_mode: Option<String>,
}

const ACCEPTED_PROJECT_KEYS: &str = "model, approval_mode";
const APPROVAL_MODES: [&str; 4] = ["default", "auto_edit", "yolo", "plan"];
/// The approval mode that asks for nothing.
const YOLO: &str = "yolo";

/// What a confined Gemini CLI needs from the operator's environment: its API key, endpoint and
/// model. `GOOGLE_APPLICATION_CREDENTIALS` is not among them: it names a key file, and
/// `~/.config/gcloud` is hidden.
const PASS_ENV: [&str; 7] = [
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GEMINI_MODEL",
];

pub struct Gemini {
    settings: Settings,
    files: SessionFiles,
    /// Where the operator's own `.gemini/` is.
    user_home: Option<PathBuf>,
}

impl Gemini {
    fn project_settings(session: &AgentSession) -> PluginResult<ProjectSettings> {
        let project: ProjectSettings = session.agent_config("gemini", ACCEPTED_PROJECT_KEYS)?;
        if let Some(mode) = &project.approval_mode {
            if !APPROVAL_MODES.contains(&mode.as_str()) {
                return Err(PluginError::config(format!(
                    "projects.{}.agent_config.approval_mode: {mode:?} is not one of Gemini CLI's \
                     approval modes ({})",
                    session.project_id,
                    APPROVAL_MODES.join(", ")
                )));
            }
        }
        if project
            .model
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            return Err(PluginError::config(format!(
                "projects.{}.agent_config.model is empty; name a model (e.g. gemini-2.5-pro) or \
                 leave it out",
                session.project_id
            )));
        }
        Ok(project)
    }

    /// [`Agent::launch`], asking no approval when `unattended`.
    fn plan(&self, request: &LaunchRequest, unattended: bool) -> PluginResult<LaunchPlan> {
        let session = &request.session;
        let project = Self::project_settings(session)?;
        if project.approval_mode.as_deref() == Some(YOLO) && !unattended {
            return Err(no_prompt_refused("approval_mode: yolo", "Gemini CLI"));
        }

        let first = request
            .inline_first_message()
            // Gemini CLI trims every prompt, and its hook reports the trimmed one: the host would
            // fail the launch as an altered message (the orchestrator's prompt ends with a
            // newline). Typed in, it is trimmed just the same, but nothing compares it.
            .filter(|message| !has_surrounding_whitespace(message));
        if request
            .first_message
            .as_ref()
            .into_option()
            .is_some_and(|message| is_slash_command(message))
        {
            return Err(PluginError::invalid_input(
                "Gemini CLI runs a message that starts with `/` as one of its own commands \
                 (/quit, /clear, …) instead of giving it to the model: start the task with \
                 something else",
            ));
        }
        let mut argv = vec![self.settings.command.clone()];
        if let Some(model) = &project.model {
            argv.extend(["--model".to_string(), model.clone()]);
        }
        if unattended {
            argv.extend(["--approval-mode".to_string(), YOLO.to_string()]);
        } else if let Some(mode) = &project.approval_mode {
            argv.extend(["--approval-mode".to_string(), mode.clone()]);
        }
        if self.settings.trust_workspaces {
            argv.push("--skip-trust".into());
        }
        let (conversation_id, resumed) = uuid::resume_or_new(
            request.resume.as_ref().into_option().map(|r| r.as_str()),
            "Gemini CLI",
        )?;
        let flag = if resumed { "--resume" } else { "--session-id" };
        argv.extend([flag.to_string(), conversation_id.clone()]);
        let (event_command, allowed) = (request.event_argv(), request.allowed_programs());
        let home = self.session_home(session)?;
        let additions = home::Additions {
            hooks: if event_command.is_empty() {
                None
            } else {
                Some(hooks::hooks(
                    &event_command,
                    &home.hook_log(),
                    // A SessionStart hook's "idle" would race the first turn's "working".
                    first.is_none(),
                )?)
            },
            policy: hooks::policy(&allowed)?,
            auth_type: self.settings.auth_type.clone(),
            system_prompt: session
                .system_prompt
                .as_ref()
                .into_option()
                .map(|p| p.to_string()),
        };
        home.prepare(
            &self.files,
            &session.session_id,
            self.user_home.as_deref(),
            request.resume.is_some(),
            &additions,
        )?;
        if let Some(message) = first {
            // One argument with `=`: as two, a message starting with `-` would be read as options
            // (and after `--` the CLI ignores it).
            argv.push(format!("--prompt-interactive={message}"));
        }
        Ok(LaunchPlan {
            argv: argv.into_iter().map(Into::into).collect(),
            takes_first_message: first.is_some(),
            conversation_id: Some(conversation_id.into()).into(),
            reports_events: additions.hooks.is_some(),
        })
    }

    fn session_home(&self, session: &AgentSession) -> PluginResult<SessionHome> {
        Ok(SessionHome::new(self.files.path(&session.session_id)?))
    }
}

/// Whether `message` starts or ends with what Gemini CLI trims from every prompt (JavaScript's
/// `String.prototype.trim`: Unicode's whitespace and U+FEFF, but not U+0085).
fn has_surrounding_whitespace(message: &str) -> bool {
    let trimmed =
        message.trim_matches(|c: char| (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}');
    trimmed.len() != message.len()
}

/// Whether Gemini CLI would run `message` as one of its own commands instead of giving it to the
/// model: a prompt starting with `/` (but not `//` or `/*`) is a slash command (`/quit`, …).
fn is_slash_command(message: &str) -> bool {
    // Gemini CLI trims a prompt before it looks at it.
    let message = message.trim_start();
    message.starts_with('/') && !message.starts_with("//") && !message.starts_with("/*")
}

impl Agent for Gemini {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if settings.command.trim().is_empty() {
            return Err(PluginError::config(
                "plugins.config.gemini.command is empty; name the Gemini CLI (e.g. gemini)",
            ));
        }
        if settings.env.contains_key(home::HOME_VARIABLE) {
            return Err(PluginError::config(format!(
                "plugins.config.gemini.env sets {}, which the plugin points at each session's own \
                 home; to seed sessions from another Gemini home, set plugins.config.gemini.user_home",
                home::HOME_VARIABLE
            )));
        }
        if settings
            .auth_type
            .as_deref()
            .is_some_and(|a| a.trim().is_empty())
        {
            return Err(PluginError::config(
                "plugins.config.gemini.auth_type is empty; name an auth type (e.g. gemini-api-key) \
                 or leave it out",
            ));
        }
        let home = std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let user_home = match (&settings.user_home, &home) {
            (Some(path), Some(home)) if path.starts_with("~") => {
                Some(home.join(path.strip_prefix("~").expect("starts with ~")))
            }
            (Some(path), _) => Some(path.clone()),
            (None, _) => None,
        };
        let user_home = user_home.or_else(|| {
            [home::HOME_VARIABLE, "HOME"]
                .into_iter()
                .find_map(|name| std::env::var_os(name).filter(|v| !v.is_empty()))
                .map(PathBuf::from)
        });
        Ok(Self {
            settings,
            files: SessionFiles::new(context),
            user_home,
        })
    }

    fn launch_command(&self, session: &AgentSession) -> PluginResult<Vec<String>> {
        let plan = self.launch(&LaunchRequest {
            session: session.clone(),
            first_message: None.into(),
            event_command: Default::default(),
            resume: None.into(),
            allowed_commands: Default::default(),
        })?;
        Ok(plan.argv.into_iter().map(Into::into).collect())
    }

    /// The session's home written (settings with its hooks, credentials, the system prompt as
    /// global memory); a new conversation under an id chosen here (`--session-id`) or the stored
    /// one resumed (`--resume`); and the first message as `--prompt-interactive=…`, which starts
    /// the turn and stays interactive (a pasted message is submitted by an Enter the CLI may
    /// drop), and reaches the model byte-exact. Gemini CLI trims the whitespace around every
    /// prompt, however it comes: a message with some is typed in by the host.
    fn launch(&self, request: &LaunchRequest) -> PluginResult<LaunchPlan> {
        self.plan(request, false)
    }

    /// As [`Agent::launch`]: the session's own home writable (and the log its hooks append
    /// to), the rest of its folder read-only; unattended, `--approval-mode yolo`.
    fn launch_confined(
        &self,
        request: &ConfinedLaunchRequest,
    ) -> Result<ConfinedLaunchPlan, PluginFailure> {
        let session = &request.launch.session;
        let plan = self.plan(&request.launch, request.unattended)?;
        let home = self.session_home(session)?;
        // Made now: inside a read-only folder, the hooks could not create it.
        let log = home.hook_log();
        let files = Files::here();
        if !files.try_exists(&log).unwrap_or(false) {
            files
                .write(&log, b"")
                .map_err(|e| PluginError::failed(format!("creating {}: {e}", log.display())))?;
        }
        let folder = self.files.path(&session.session_id)?;
        let operator = self.user_home.as_ref().map(|home| home.join(".gemini"));
        Ok(ConfinedLaunchPlan {
            plan,
            paths: session_paths(
                operator.as_deref(),
                &folder,
                [home.path().as_path(), log.as_path()],
            ),
            pass_env: PASS_ENV.iter().map(|name| (*name).into()).collect(),
            env: Default::default(),
        })
    }

    /// The configured environment and the session's own Gemini home, and unless configured:
    /// - `GEMINI_CLI_NO_RELAUNCH=true`: otherwise the CLI runs itself again as a child and the
    ///   parent ignores SIGHUP, so both outlive their terminal (`tmux kill-server`, a crashed
    ///   runtime) and a restored session would run beside them; alone it exits with it. (The
    ///   relaunch only raised node's heap limit to half the memory, and restarted the CLI when
    ///   it asked to, which now ends the session instead.)
    /// - `COLORTERM=truecolor`: otherwise the CLI shows a warning about colours that goes away
    ///   at the first key, and that change on screen passes for the message the host pastes, so
    ///   its Enter is pressed before the CLI has taken the text (tmux maps 24-bit colours to what
    ///   the terminal it draws on can show).
    fn environment(&self, session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        let home = self.session_home(session)?;
        let mut env: Vec<EnvVar> = self
            .settings
            .env
            .iter()
            .map(|(name, value)| EnvVar::new(name.clone(), value.clone()))
            .collect();
        // Gemini CLI takes a set `CI` (ao-host run by a CI job hands it on through tmux) for a
        // headless run: it then wants its prompt on stdin and exits. `false` is what its check
        // reads as "not in CI".
        for (name, value) in [
            ("GEMINI_CLI_NO_RELAUNCH", "true"),
            ("COLORTERM", "truecolor"),
            ("CI", "false"),
        ] {
            if !self.settings.env.contains_key(name) {
                env.push(EnvVar::new(name, value));
            }
        }
        env.push(EnvVar::new(
            home::HOME_VARIABLE,
            home.path().display().to_string(),
        ));
        Ok(env)
    }

    fn is_ready(&self, output: &str) -> PluginResult<Readiness> {
        let screen = Screen::new(output);
        let blocked = |reason: String, answer: &[&str]| Readiness::Blocked {
            reason: reason.into(),
            answer: answer.iter().map(|k| (*k).into()).collect(),
        };
        Ok(match screen.dialog() {
            Some(Dialog::TrustFolder { trust_selected }) if self.settings.trust_workspaces => {
                if trust_selected {
                    blocked(
                        "Gemini CLI asks whether to trust the workspace".into(),
                        &["Enter"],
                    )
                } else {
                    blocked(
                        "Gemini CLI asks whether to trust the workspace, but its option \"Trust \
                         folder\" is not selected: answer it in the session (ao-host attach)"
                            .into(),
                        &[],
                    )
                }
            }
            Some(Dialog::TrustFolder { .. }) => blocked(
                "Gemini CLI asks whether to trust the workspace folder (it runs no hooks in an \
                 untrusted one): answer it in the session (ao-host attach), or set \
                 `trust_workspaces: true` under plugins.config.gemini"
                    .into(),
                &[],
            ),
            Some(Dialog::Auth) => blocked(
                "Gemini CLI asks how to authenticate: run `gemini` once yourself and choose (the \
                 sessions copy your ~/.gemini settings), or set `auth_type` under \
                 plugins.config.gemini (e.g. gemini-api-key, with GEMINI_API_KEY in its env)"
                    .into(),
                &[],
            ),
            // A first message given at launch can go straight to a permission prompt: the agent
            // is up, and the prompt is the operator's to answer.
            None if screen.is_settled() || screen.permission_question().is_some() => {
                Readiness::Ready
            }
            None => Readiness::Starting,
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        let screen = Screen::new(output);
        // A prompt first: the turn's spinner may still show behind it.
        Ok(
            if screen.dialog().is_some() || screen.permission_question().is_some() {
                Activity::WaitingInput
            } else if screen.is_busy() {
                Activity::Working
            } else if screen.input_box_is_last() {
                Activity::Idle
            } else {
                Activity::Working
            },
        )
    }

    /// Text left in the input box: Gemini CLI drops an Enter that arrives right after a paste,
    /// so the host presses it again. Never while a permission prompt shows: that Enter would
    /// answer it.
    fn input_pending(&self, output: &str) -> PluginResult<bool> {
        let screen = Screen::new(output);
        Ok(screen.permission_question().is_none() && screen.has_pending_input())
    }

    /// The session's folder: its settings, seeded copies, prompt.
    fn forget(&self, session_id: &str) -> PluginResult<()> {
        self.files.remove(session_id)
    }

    /// From the chat recordings in the session's Gemini home (see [`usage`]).
    fn usage(&self, query: &UsageQuery) -> Result<UsageReport, PluginFailure> {
        usage::usage(&self.session_home(&query.session)?.path(), query)
    }

    /// The configured command, found on PATH (or at the path given) and answering `--version`;
    /// and an authentication chosen for the sessions (else each stops on Gemini CLI's dialog).
    fn doctor(&self) -> PluginResult<Vec<DoctorCheck>> {
        let cli = Program::npm_cli(&self.settings.command, "@google/gemini-cli", "gemini");
        let chosen = match &self.settings.auth_type {
            Some(auth) => Some(format!("{auth} (plugins.config.gemini.auth_type)")),
            None => home::chosen_auth(self.user_home.as_deref())
                .map(|auth| format!("{auth} (from your ~/.gemini/settings.json)")),
        };
        let auth = match chosen {
            Some(found) => DoctorCheck::passed("gemini authentication", found),
            None => DoctorCheck::failed(
                "gemini authentication",
                "none chosen: run `gemini` once and pick one (sessions copy your ~/.gemini), or set \
                 plugins.config.gemini.auth_type (e.g. gemini-api-key, with GEMINI_API_KEY in its env)",
            ),
        };
        Ok(vec![cli.version_check(&["--version"]), auth])
    }
}

#[cfg(test)]
mod tests {
    use ao_plugin_api::sandbox::{PathAccess, PathRule};

    use super::*;

    #[test]
    fn what_gemini_trims_is_told_apart() {
        for trimmed in [
            "\tx",
            "x\n",
            " x",
            "x\r\n",
            "x\u{a0}",
            "\u{feff}x",
            "x\u{2028}",
        ] {
            assert!(has_surrounding_whitespace(trimmed), "{trimmed:?}");
        }
        for kept in ["x", "-x\n\ty", "x\u{85}", "ünï 🎉"] {
            assert!(!has_surrounding_whitespace(kept), "{kept:?}");
        }
    }

    #[test]
    fn slash_commands_are_told_apart() {
        for command in ["/quit", "/fix it"] {
            assert!(is_slash_command(command), "{command:?}");
        }
        for prompt in ["x", "-x\n\ty", "// a comment", "/* c */", "a /b"] {
            assert!(!is_slash_command(prompt), "{prompt:?}");
        }
        for padded in [" /about", "\n\t/quit"] {
            assert!(is_slash_command(padded), "{padded:?}");
        }
    }

    /// A plugin whose data dir and operator's home are in `dir`.
    fn gemini(dir: &std::path::Path) -> Gemini {
        std::fs::create_dir_all(dir.join("user/.gemini")).unwrap();
        Gemini::new(&PluginContext {
            plugin_name: "gemini".into(),
            data_dir: dir.join("data").display().to_string().into(),
            config_yaml: format!("user_home: {}\n", dir.join("user").display()).into(),
        })
        .unwrap()
    }

    fn request(dir: &std::path::Path, agent_config: &str) -> LaunchRequest {
        LaunchRequest {
            session: AgentSession {
                session_id: "app-1".into(),
                project_id: "app".into(),
                branch: "session/app-1/work".into(),
                workspace_path: dir.display().to_string().into(),
                system_prompt: None.into(),
                agent_config: agent_config.into(),
            },
            first_message: Some("fix it".into()).into(),
            event_command: vec!["/bin/ao-host".into(), "hook".into()].into(),
            resume: None.into(),
            allowed_commands: Default::default(),
        }
    }

    fn argv(plan: &LaunchPlan) -> Vec<String> {
        plan.argv.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_confined_session_writes_its_home_and_hook_log_and_unattended_is_yolo() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = gemini(dir.path());
        let plan = plugin
            .launch_confined(&ConfinedLaunchRequest {
                launch: request(dir.path(), "approval_mode: auto_edit"),
                unattended: true,
            })
            .unwrap();
        let unattended = argv(&plan.plan);
        let mode = unattended
            .iter()
            .position(|a| a == "--approval-mode")
            .unwrap();
        assert_eq!(unattended[mode + 1], "yolo");
        let folder = dir.path().join("data/gemini/sessions/app-1");
        assert!(folder.join("hooks.log").is_file(), "made for the hooks");
        assert_eq!(
            plan.paths.to_vec(),
            [
                // The operator's `.gemini/` (every unconfined session's chats) is hidden.
                PathRule::new(
                    dir.path().join("user/.gemini").display().to_string(),
                    PathAccess::Hidden
                ),
                PathRule::new(folder.display().to_string(), PathAccess::ReadOnly),
                PathRule::new(
                    folder.join("home").display().to_string(),
                    PathAccess::Writable
                ),
                PathRule::new(
                    folder.join("hooks.log").display().to_string(),
                    PathAccess::Writable
                ),
            ]
        );
        let pass: Vec<&str> = plan.pass_env.iter().map(|n| n.as_str()).collect();
        assert!(pass.contains(&"GEMINI_API_KEY"));
        assert!(!pass.contains(&"GOOGLE_APPLICATION_CREDENTIALS"));

        let attended = plugin
            .launch_confined(&ConfinedLaunchRequest {
                launch: request(dir.path(), "approval_mode: auto_edit"),
                unattended: false,
            })
            .unwrap();
        assert!(argv(&attended.plan).contains(&"auto_edit".to_string()));
    }

    #[test]
    fn yolo_is_refused_outside_a_sandbox() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = gemini(dir.path());
        let err = plugin
            .launch(&request(dir.path(), "approval_mode: yolo"))
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`approval_mode: yolo` runs Gemini CLI"),
            "{message}"
        );
        assert!(message.contains("`unattended: true`") && message.contains("`sandbox:`"));
        plugin
            .launch_confined(&ConfinedLaunchRequest {
                launch: request(dir.path(), "approval_mode: yolo"),
                unattended: true,
            })
            .unwrap();
    }
}
