//! `ao-host completions SHELL`: the shell's completion script for every command and option.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Command, CommandFactory};
use clap_complete::Shell;

use super::{output::write_stdout, Args};

/// The program's name as the shell sees it.
const BIN_NAME: &str = "ao-host";
/// The name bash's script is generated under, then renamed to [`BIN_NAME`]: clap_complete's
/// bash generator spells a hyphenated program's subcommand functions two different ways
/// (`ao__host__subcmd__spawn` where it dispatches, `ao__subcmd__host__subcmd__spawn` where it
/// completes), so nothing past the first word would complete.
const BASH_BIN_NAME: &str = "ao_host";

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
    let mut command = offered_commands();
    if shell != Shell::Bash {
        clap_complete::generate(shell, &mut command, BIN_NAME, &mut script);
        return script;
    }
    clap_complete::generate(shell, &mut command, BASH_BIN_NAME, &mut script);
    // Only the `complete` lines name the program itself; the rest are function names.
    String::from_utf8_lossy(&script)
        .lines()
        .map(|line| {
            let program = line.trim_start().starts_with("complete ");
            match line.strip_suffix(&format!(" {BASH_BIN_NAME}")) {
                Some(head) if program => format!("{head} {BIN_NAME}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect::<String>()
        .into_bytes()
}

/// The command line without its hidden commands (`hook` is run by agents, not typed): some
/// generators offer every subcommand, hidden or not.
fn offered_commands() -> Command {
    let full = Args::command();
    Command::new(BIN_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned())
        .subcommands(
            full.get_subcommands()
                .filter(|command| !command.is_hide_set())
                .cloned(),
        )
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
            // A word of its own: `--webhook` (of `watch`) is no `hook`.
            let offers_hook = script
                .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
                .any(|word| word == "hook");
            assert!(!offers_hook, "{shell} offers the hidden `hook`");
        }
    }

    /// What real bash completes for `words` with the cursor on the last one, running the
    /// generated script as a shell would.
    fn bash_completes(words: &[&str]) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ao-host.bash");
        std::fs::write(&path, script(Shell::Bash)).unwrap();
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        // How bash calls a completion function: the command, the word, the word before it.
        let call = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\n\
             func=$(complete -p ao-host | sed -E 's/.*-F ([^ ]+) .*/\\1/')\n\
             \"$func\" ao-host '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            path.display(),
            quoted.join(" "),
            words[cword],
            words[cword - 1],
        );
        let output = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &call])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn bash_completes_a_subcommands_flags_and_not_the_hidden_command() {
        let flags = bash_completes(&["ao-host", "spawn", "--t"]);
        assert!(flags.contains(&"--task".to_string()), "{flags:?}");
        let nested = bash_completes(&["ao-host", "session", "ls", "--j"]);
        assert_eq!(nested, ["--json"]);
        let commands = bash_completes(&["ao-host", ""]);
        assert!(commands.contains(&"spawn".to_string()), "{commands:?}");
        assert!(!commands.contains(&"hook".to_string()), "{commands:?}");
    }
}
