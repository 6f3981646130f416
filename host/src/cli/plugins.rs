//! `ao-host plugins list` and `ao-host plugins check`.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Result;
use ao_host::plugins::{set::plugin_context, PluginRegistry, PluginRow, PluginStatus};
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
        #[arg(long)]
        json: bool,
    },
    /// Load one library, build its plugins with the configured settings, and report.
    /// Exits 0 only if every plugin in it is usable.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(context: &AppContext, command: PluginsCommand) -> Result<ExitCode> {
    match command {
        PluginsCommand::List { json } => list(context, json),
        PluginsCommand::Check { file, json } => check(context, file, json),
    }
}

fn list(context: &AppContext, json: bool) -> Result<ExitCode> {
    let dirs = context.search_dirs();
    let listing = context.load_plugins().listing(&dirs);
    if json {
        print_json(&listing)?;
    } else {
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
    let registry =
        PluginRegistry::load_pinned(std::slice::from_ref(&file), &context.config.plugin_pins);
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
            PluginStatus::Ok => "ok",
            PluginStatus::Shadowed => "shadowed",
            PluginStatus::Error => "error",
        };
        outln!(
            "{:<10} {:<16} {:<8} api {:<8} {:<8} {}",
            dash(&row.kind),
            dash(&row.name),
            dash(&row.version),
            dash(&row.api_version),
            status,
            terminal_safe(&row.path.display().to_string())
        );
        if let Some(reason) = &row.reason {
            outln!("    {}", terminal_safe(reason));
        }
        if let Some(digest) = &row.digest {
            outln!("    {digest}");
        }
    }
    Ok(())
}
