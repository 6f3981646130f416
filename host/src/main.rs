//! The `ao-host` command line.

mod cli;

use clap::Parser;

use std::process::ExitCode;

fn main() {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        // An agent's hook must never fail (a failing hook can stop the agent's tool call),
        // not even on arguments from a newer plugin.
        Err(error) if cli::is_hook_invocation(std::env::args_os().skip(1)) => {
            cli::discard_hook_event();
            errln!("{}", error.render().to_string().trim_end());
            cli::output::exit(ExitCode::SUCCESS);
        }
        Err(error) => error.exit(),
    };
    if args.command.writes_through_own_stdout() {
        if let Err(error) = cli::output::take_stdout() {
            errln!("ao-host: setting up its output: {error}");
            cli::output::exit(ExitCode::FAILURE);
        }
    }
    cli::init_logging(args.verbose, args.quiet);
    let outcome = cli::run(args);
    // Isolated plugins' processes never outlive the command (a call abandoned at its timeout
    // may still hold one).
    ao_core::plugins::isolated::stop_children();
    let code = match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line: the whole context chain, outermost first, with any control character
            // (a newline in a plugin's message, an escape sequence in a task) made visible.
            errln!(
                "ao-host: {}",
                cli::output::terminal_safe(&format!("{error:#}"))
            );
            ExitCode::FAILURE
        }
    };
    cli::output::exit(code)
}
