//! The `ao-host` command line.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    cli::init_logging(args.verbose, args.quiet);
    match cli::run(args) {
        Ok(code) => code,
        // `ao-host session ls | head -1`: the reader has all it wanted.
        Err(error) if cli::output::stdout_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            // One line: the whole context chain, outermost first, with any control character
            // (a newline in a plugin's message, an escape sequence in a task) made visible.
            errln!(
                "ao-host: {}",
                cli::output::terminal_safe(&format!("{error:#}"))
            );
            ExitCode::FAILURE
        }
    }
}
