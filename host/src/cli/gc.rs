//! `ao-host gc`: print the lifecycle's plan (`--dry-run`) or apply it.

use std::process::ExitCode;

use anyhow::{bail, Result};
use ao_core::lifecycle::{gc::GcOutcome, Lifecycle};

use super::output::{print_json, terminal_safe};
use crate::{errln, outln};

pub async fn run(
    lifecycle: &Lifecycle,
    dry_run: bool,
    force: bool,
    skip_plugins: &[String],
    json: bool,
) -> Result<ExitCode> {
    // A misspelt name would skip nothing and call the plugin it meant to avoid.
    let known: Vec<&str> = lifecycle
        .registry()
        .reports()
        .iter()
        .filter_map(|report| report.manifest.as_ref())
        .flat_map(|manifest| manifest.plugins.iter().map(|p| p.name.as_str()))
        .collect();
    if let Some(unknown) = skip_plugins.iter().find(|n| !known.contains(&n.as_str())) {
        bail!(
            "--skip-plugin {unknown}: no plugin library provides a plugin of that name (found: {})",
            known.join(", ")
        );
    }
    let plan = lifecycle.gc_plan(force, skip_plugins).await;
    let actions = if dry_run {
        plan.actions()
    } else {
        lifecycle.gc_apply(plan).await
    };
    if json {
        print_json(&actions)?;
    } else if actions.is_empty() {
        errln!("nothing to clean up");
    } else {
        for a in &actions {
            let mark = match a.outcome {
                GcOutcome::Planned => "would",
                GcOutcome::Done => "done",
                GcOutcome::Skipped => "skip",
                GcOutcome::Failed => "FAIL",
            };
            outln!(
                "{mark:<5} {}: {} — {}",
                a.action,
                terminal_safe(&a.target),
                terminal_safe(&a.detail)
            );
        }
    }
    let failed = actions
        .iter()
        .filter(|a| a.outcome == GcOutcome::Failed)
        .count();
    if failed > 0 {
        bail!("{failed} gc step(s) failed; each says why above");
    }
    Ok(ExitCode::SUCCESS)
}
