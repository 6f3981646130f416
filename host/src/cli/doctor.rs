//! `ao-host doctor`: the lifecycle's checks, each `ok` or the fix.

use std::process::ExitCode;

use anyhow::Result;
use ao_core::lifecycle::Lifecycle;

use super::output::{print_json, terminal_safe};
use crate::{errln, outln};

pub async fn run(lifecycle: &Lifecycle, json: bool) -> Result<ExitCode> {
    let lines = lifecycle.doctor().await;
    let failures = lines.iter().filter(|l| !l.ok).count();
    if json {
        print_json(&lines)?;
    } else {
        for line in &lines {
            let mark = if line.ok { "ok" } else { "FIX" };
            outln!(
                "{mark:<5} {}: {}",
                terminal_safe(&line.what),
                terminal_safe(&line.detail)
            );
        }
    }
    if failures == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        errln!("ao-host: doctor found {failures} problem(s); see the FIX lines above");
        Ok(ExitCode::FAILURE)
    }
}
