//! Runtime plugin `tmux`: each session is a detached tmux session.

use ao_plugin_api::{
    abi_stable::std_types::RString, export_plugins, PluginContext, PluginError, PluginResult,
    Runtime, RuntimeCreateRequest,
};

export_plugins! {
    runtime "tmux" => TmuxRuntime,
}

pub struct TmuxRuntime;

impl Runtime for TmuxRuntime {
    fn new(_context: &PluginContext) -> PluginResult<Self> {
        Ok(Self)
    }
    fn create(&self, _request: &RuntimeCreateRequest) -> PluginResult<String> {
        Err(PluginError::unsupported(
            "tmux runtime: create is not implemented yet",
        ))
    }
    fn send_message(&self, _handle: &str, _text: &str) -> PluginResult<()> {
        Err(PluginError::unsupported(
            "tmux runtime: send_message is not implemented yet",
        ))
    }
    fn send_keys(&self, _handle: &str, _keys: &[RString]) -> PluginResult<()> {
        Err(PluginError::unsupported(
            "tmux runtime: send_keys is not implemented yet",
        ))
    }
    fn capture_output(&self, _handle: &str, _lines: u32) -> PluginResult<String> {
        Err(PluginError::unsupported(
            "tmux runtime: capture_output is not implemented yet",
        ))
    }
    fn is_alive(&self, _handle: &str) -> PluginResult<bool> {
        Ok(false)
    }
    fn destroy(&self, _handle: &str) -> PluginResult<()> {
        Ok(())
    }
    fn attach_command(&self, handle: &str) -> PluginResult<Vec<String>> {
        Ok(vec![
            "tmux".into(),
            "attach".into(),
            "-t".into(),
            handle.into(),
        ])
    }
}
