//! `ao-host completions SHELL`: the shell's completion script for every command and option.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::Shell;

use super::{output::write_stdout, Args};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write the script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Writes the script to stdout. It needs no config and no plugins, so it works anywhere.
pub fn run(args: CompletionsArgs) -> Result<ExitCode> {
    write_stdout(&script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}

/// Generated into memory: clap_complete panics when its writer fails, e.g. on a closed pipe.
fn script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "ao-host", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(script(shell)).unwrap();
            for word in ["ao-host", "spawn", "session", "completions", "plugin-dir"] {
                assert!(script.contains(word), "{shell}: no {word}");
            }
        }
    }
}
