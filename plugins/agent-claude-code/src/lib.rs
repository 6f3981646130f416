//! Agent plugin `claude-code`: launches the Claude Code CLI and reads its screen.

use ao_plugin_api::{
    export_plugins, Activity, Agent, AgentSession, EnvVar, PluginContext, PluginResult, Readiness,
};

export_plugins! {
    agent "claude-code" => ClaudeCode,
}

pub struct ClaudeCode;

impl Agent for ClaudeCode {
    fn new(_context: &PluginContext) -> PluginResult<Self> {
        Ok(Self)
    }
    fn launch_command(&self, _session: &AgentSession) -> PluginResult<Vec<String>> {
        Ok(vec!["claude".into()])
    }
    fn environment(&self, _session: &AgentSession) -> PluginResult<Vec<EnvVar>> {
        Ok(Vec::new())
    }
    fn is_ready(&self, _output: &str) -> PluginResult<Readiness> {
        Ok(Readiness::Starting)
    }
    fn activity(&self, _output: &str) -> PluginResult<Activity> {
        Ok(Activity::Working)
    }
}
