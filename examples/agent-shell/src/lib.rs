//! Agent plugin `shell`: runs any configured command line (an interactive `bash` by default) as
//! the "agent", so the whole spawn path can be watched without Claude Code installed. Written
//! as a third party would, against `ao-plugin-api` alone.
//!
//! The shell is given a fixed prompt (`PS1`), which is how the plugin tells that it is ready
//! and idle: the last line of output ends with the prompt.

use ao_plugin_api::{
    export_plugins, Activity, Agent, AgentSession, EnvVar, PluginContext, PluginError,
    PluginResult, Readiness,
};
use ao_plugin_kit::prelude::*;
use serde::Deserialize;

export_plugins! {
    agent "shell" => ShellAgent,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settings {
    /// The program and its arguments.
    command: Vec<String>,
    /// The prompt the shell is given, and waited for.
    prompt: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            command: vec![
                "bash".into(),
                "--norc".into(),
                "--noprofile".into(),
                "-i".into(),
            ],
            prompt: "ao-shell$ ".into(),
        }
    }
}

pub struct ShellAgent {
    settings: Settings,
}

impl ShellAgent {
    fn at_prompt(&self, output: &str) -> bool {
        let prompt = self.settings.prompt.trim_end();
        output
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .is_some_and(|line| line.trim_end().ends_with(prompt))
    }
}

impl Agent for ShellAgent {
    fn new(context: &PluginContext) -> PluginResult<Self> {
        let settings: Settings = context.parse_config()?;
        if settings.command.is_empty() {
            return Err(PluginError::config(
                "plugins.config.shell.command is empty; give a program, e.g. [bash, -i]",
            ));
        }
        Ok(Self { settings })
    }

    fn launch_command(&self, _session: &AgentSession) -> PluginResult<Vec<String>> {
        Ok(self.settings.command.clone())
    }

    fn environment(&self, _session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        Ok(vec![EnvVar::new("PS1", self.settings.prompt.clone())])
    }

    fn is_ready(&self, output: &str) -> PluginResult<Readiness> {
        Ok(if self.at_prompt(output) {
            Readiness::Ready
        } else {
            Readiness::Starting
        })
    }

    fn activity(&self, output: &str) -> PluginResult<Activity> {
        Ok(if self.at_prompt(output) {
            Activity::Idle
        } else {
            Activity::Working
        })
    }

    /// A shell shows no input box to read: a line is taken as submitted once sent.
    fn input_pending(&self, _output: &str) -> PluginResult<bool> {
        Ok(false)
    }
}
