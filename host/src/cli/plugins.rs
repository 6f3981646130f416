//! `ao-host plugins list` and `ao-host plugins check`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::{Context, Result};
use ao_core::plugins::{library::host_abi_summary, set::plugin_context, PluginRow, PluginStatus};
use ao_plugin_api::InterfaceKind;
use ao_plugin_test as conformance;
use clap::Subcommand;

use super::{
    output::{print_json, terminal_safe},
    AppContext,
};
use crate::{errln, outln};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Every candidate library in the search path, with its status.
    List {
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Load one library, build its plugins with the configured settings, and report.
    /// Exits 0 only if every plugin in it is usable.
    Check {
        /// The plugin library (`.so`).
        file: PathBuf,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The conformance kit: drive every plugin of one library through its contract on scratch
    /// resources (a probe agent, a scratch repository), one line per check. Exits 0 only if
    /// every check passes.
    Test {
        /// The plugin library (`.so`).
        file: PathBuf,
        /// Only the plugins of this kind (runtime, agent, workspace, scm, sandbox).
        #[arg(long, value_parser = parse_kind)]
        kind: Option<InterfaceKind>,
        /// Load the library into this process instead of an isolated child process.
        #[arg(long)]
        in_process: bool,
        /// An agent's recorded screens: a folder with `activity.yaml` mapping each screen file
        /// in it to what the agent was doing (idle, working, waiting_input or exited).
        #[arg(long, value_name = "DIR")]
        screens: Option<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The conformance kit's probe agent (started by `plugins test` inside a runtime).
    #[command(hide = true)]
    ProbeAgent { dir: PathBuf },
    /// Runs one isolated plugin for a parent ao-host (`plugins.isolate`), over stdin/stdout.
    #[command(hide = true)]
    Serve,
}

fn parse_kind(text: &str) -> Result<InterfaceKind, String> {
    InterfaceKind::parse(text).ok_or_else(|| {
        let kinds: Vec<&str> = InterfaceKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("`{text}` is not a plugin kind: {}", kinds.join(", "))
    })
}

pub fn run(context: &AppContext, command: PluginsCommand) -> Result<ExitCode> {
    match command {
        PluginsCommand::List { json } => list(context, json),
        PluginsCommand::Check { file, json } => check(context, file, json),
        PluginsCommand::Test {
            file,
            kind,
            in_process,
            screens,
            json,
        } => test(context, &file, kind, in_process, screens.as_deref(), json),
        PluginsCommand::Serve => {
            ao_core::plugins::isolated::serve::serve().map_err(anyhow::Error::msg)?;
            Ok(ExitCode::SUCCESS)
        }
        PluginsCommand::ProbeAgent { dir } => {
            conformance::probe::run(&dir)
                .with_context(|| format!("probe agent in {}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn test(
    context: &AppContext,
    file: &std::path::Path,
    kind: Option<InterfaceKind>,
    in_process: bool,
    screens: Option<&std::path::Path>,
    json: bool,
) -> Result<ExitCode> {
    let config = &context.config;
    let settings = conformance::KitSettings {
        plugin_settings: config.plugin_config.clone(),
        pins: config.plugin_pins.clone(),
        isolate: !in_process,
        call_timeout: std::time::Duration::from_millis(config.call_timeout_ms),
        create_timeout: std::time::Duration::from_millis(config.workspace_timeout_ms),
        ready_timeout: std::time::Duration::from_millis(config.ready_timeout_ms),
        watch_stdout: true,
    };
    let exe =
        std::env::current_exe().context("finding this program, to run it as the probe agent")?;
    let probe = vec![
        exe.display().to_string(),
        "plugins".to_string(),
        "probe-agent".to_string(),
    ];
    let reactor = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results = reactor.block_on(conformance::test_library(
        file, kind, &settings, probe, screens,
    ));
    // A plugin call that timed out may still hold a blocking thread; do not wait for it.
    reactor.shutdown_background();
    let results = results?;
    let failed = results.iter().filter(|r| !r.ok).count();
    if json {
        print_json(&results)?;
    } else {
        for r in &results {
            outln!(
                "{:<5} {} {}: {} — {}",
                r.verdict(),
                r.kind,
                terminal_safe(&r.plugin),
                r.check,
                terminal_safe(&r.detail)
            );
        }
    }
    if failed == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!(
            "ao-host: {failed} of {} checks failed for {}",
            results.len(),
            terminal_safe(&file.display().to_string())
        );
        Ok(ExitCode::FAILURE)
    }
}

fn list(context: &AppContext, json: bool) -> Result<ExitCode> {
    let dirs = context.search_dirs();
    let listing = context.load_plugins().listing(&dirs);
    if json {
        print_json(&listing)?;
    } else {
        outln!(
            "ao-host {} accepts: {}",
            env!("CARGO_PKG_VERSION"),
            host_abi_summary()
        );
        print_table(&listing.plugins)?;
        if listing.plugins.is_empty() {
            outln!("no plugin libraries found; searched:");
            for dir in &dirs {
                outln!(
                    "  {} ({})",
                    terminal_safe(&dir.path.display().to_string()),
                    dir.origin
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(context: &AppContext, file: PathBuf, json: bool) -> Result<ExitCode> {
    let registry = ao_core::plugins::load_configured(std::slice::from_ref(&file), &context.config);
    let mut rows = registry.rows_with_digests();
    let constructed = registry.try_construct_all(
        &file,
        |name| plugin_context(&context.config, &context.config.data_dir, name),
        std::time::Duration::from_millis(context.config.call_timeout_ms),
    );
    for (name, outcome) in constructed {
        if let Err(error) = outcome {
            for row in rows.iter_mut().filter(|r| r.name.as_deref() == Some(&name)) {
                row.status = PluginStatus::Error;
                row.reason = Some(error.to_string());
            }
        }
    }
    let usable = !rows.is_empty() && rows.iter().all(|r| r.status == PluginStatus::Ok);
    if json {
        print_json(&rows)?;
    } else {
        print_table(&rows)?;
    }
    if usable {
        Ok(ExitCode::SUCCESS)
    } else {
        let reason = rows
            .iter()
            .find_map(|r| r.reason.clone())
            .unwrap_or_else(|| format!("{}: no plugins", file.display()));
        errln!("ao-host: {}", terminal_safe(&reason));
        Ok(ExitCode::FAILURE)
    }
}

fn print_table(rows: &[PluginRow]) -> Result<()> {
    let dash = |v: &Option<String>| terminal_safe(v.as_deref().unwrap_or("-")).into_owned();
    for row in rows {
        let status = match row.status {
            PluginStatus::Ok if row.isolated => "isolated",
            PluginStatus::Ok => "ok",
            PluginStatus::Shadowed => "shadowed",
            PluginStatus::Error => "error",
        };
        let level = row.abi_level.map_or("-".into(), |level| level.to_string());
        outln!(
            "{:<10} {:<16} {:<8} abi {level} api {:<8} {:<8} {:<6} {}",
            dash(&row.kind),
            dash(&row.name),
            dash(&row.version),
            dash(&row.api_version),
            status,
            if row.remote { "remote" } else { "local" },
            terminal_safe(&row.path.display().to_string())
        );
        if !row.needs.is_empty() {
            outln!("    needs {}", terminal_safe(&row.needs.join(", ")));
        }
        if let Some(kit) = &row.kit_version {
            outln!("    kit {}", terminal_safe(kit));
        }
        if let Some(reason) = &row.reason {
            outln!("    {}", terminal_safe(reason));
        }
        if let Some(digest) = &row.digest {
            outln!("    {digest}");
        }
    }
    Ok(())
}
