//! `ao-host doctor`: every check an operator would otherwise do by hand, each `ok` or the fix.

use std::{path::Path, process::ExitCode};

use anyhow::Result;
use ao_host::plugins::PluginStatus;
use ao_plugin_api::PluginKind;

use super::AppContext;

/// Programs the first-party plugins drive, so doctor can look for them on PATH. A third-party
/// plugin's programs are its own business; its constructor reports what is missing.
fn program_of(
    kind: PluginKind,
    plugin: &str,
    context: &AppContext,
) -> Option<(String, &'static str)> {
    match (kind, plugin) {
        (PluginKind::Runtime, "tmux") => Some((
            "tmux".into(),
            "install tmux (apt-get install tmux / brew install tmux)",
        )),
        (PluginKind::Workspace, "git-worktree") => Some((
            "git".into(),
            "install git (apt-get install git / brew install git)",
        )),
        (PluginKind::Agent, "claude-code") => {
            let settings: serde_yaml::Value =
                serde_yaml::from_str(context.config.plugin_settings(plugin)).unwrap_or_default();
            let command = settings
                .get("command")
                .and_then(|c| c.as_str())
                .unwrap_or("claude")
                .to_string();
            Some((command, "install Claude Code (npm install -g @anthropic-ai/claude-code) or set plugins.config.claude-code.command"))
        }
        _ => None,
    }
}

fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let candidate = Path::new(program);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

pub fn run(context: &AppContext) -> Result<ExitCode> {
    let mut failures = 0;
    let mut report = |ok: bool, what: String, detail: String| {
        if ok {
            println!("ok    {what}: {detail}");
        } else {
            failures += 1;
            println!("FIX   {what}: {detail}");
        }
    };
    report(
        true,
        "config".into(),
        context
            .config
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults (no ao-rs.yaml)".into()),
    );
    let data_dir = &context.config.data_dir;
    let writable = std::fs::create_dir_all(data_dir)
        .and_then(|()| tempfile_probe(data_dir))
        .map_err(|e| e.to_string());
    report(
        writable.is_ok(),
        "data dir".into(),
        match writable {
            Ok(()) => format!("{} is writable", data_dir.display()),
            Err(e) => format!(
                "{}: {e}; set data_dir to a writable folder",
                data_dir.display()
            ),
        },
    );

    let registry = context.load_plugins();
    for row in registry
        .rows()
        .iter()
        .filter(|r| r.status == PluginStatus::Error)
    {
        report(
            false,
            "plugin library".into(),
            row.reason.clone().unwrap_or_default(),
        );
    }
    let defaults = &context.config.defaults;
    let mut choices: Vec<(PluginKind, String)> = vec![
        (PluginKind::Runtime, defaults.runtime.clone()),
        (PluginKind::Workspace, defaults.workspace.clone()),
        (PluginKind::Agent, defaults.agent.clone()),
    ];
    for project in context.config.projects.values() {
        choices.push((PluginKind::Runtime, project.plugins.runtime.clone()));
        choices.push((PluginKind::Workspace, project.plugins.workspace.clone()));
        choices.push((PluginKind::Agent, project.plugins.agent.clone()));
    }
    choices.sort();
    choices.dedup();
    for (kind, name) in choices {
        let plugin_context =
            ao_host::plugins::set::plugin_context(&context.config, data_dir, &name);
        let built = registry
            .instantiate(
                kind,
                &name,
                &plugin_context,
                std::time::Duration::from_secs(5),
            )
            .map(drop);
        let what = format!("{kind} plugin `{name}`");
        match built {
            Ok(()) => {
                let library = registry
                    .library_of(kind, &name)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                report(true, what, format!("loaded from {library}"));
            }
            Err(e) => report(false, what, e.to_string()),
        }
        if let Some((program, fix)) = program_of(kind, &name, context) {
            match on_path(&program) {
                Some(path) => report(true, format!("`{program}`"), path.display().to_string()),
                None => report(
                    false,
                    format!("`{program}`"),
                    format!("not found on PATH: {fix}"),
                ),
            }
        }
    }
    if failures == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("ao-host: doctor found {failures} problem(s); see the FIX lines above");
        Ok(ExitCode::FAILURE)
    }
}

fn tempfile_probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    std::fs::write(&probe, b"probe")?;
    std::fs::remove_file(probe)
}
