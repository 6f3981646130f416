//! Workspace plugin `git-worktree`: each session gets a git worktree on its own branch.

use ao_plugin_api::{
    export_plugins, PluginContext, PluginError, PluginResult, Workspace, WorkspaceCreateConfig,
};

export_plugins! {
    workspace "git-worktree" => GitWorktree,
}

pub struct GitWorktree;

impl Workspace for GitWorktree {
    fn new(_context: &PluginContext) -> PluginResult<Self> {
        Ok(Self)
    }
    fn create(&self, _config: &WorkspaceCreateConfig) -> PluginResult<String> {
        Err(PluginError::unsupported(
            "git-worktree: create is not implemented yet",
        ))
    }
    fn destroy(&self, _path: &str) -> PluginResult<()> {
        Ok(())
    }
    fn exists(&self, _path: &str) -> PluginResult<bool> {
        Ok(false)
    }
}
