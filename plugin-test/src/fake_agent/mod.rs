//! The fake agent: a stand-in for an agent CLI, for tests that need a real program in a real
//! terminal without a model. The same code is the conformance kit's [`probe`](crate::probe) (it
//! records every byte it receives) and, by default, a stand-in for the Claude Code CLI, run by
//! the `ao-fake-agent` program (`cargo build -p ao-plugin-test --bin ao-fake-agent`) wherever a
//! test or benchmark needs an agent.
//!
//! As Claude Code, where ao-host relies on it: it switches the terminal to raw mode, enables
//! bracketed paste, draws an input box whose line starts with "❯" + NO-BREAK SPACE between two
//! "─" rules, shows a paste placeholder until Enter, and a "✻" busy line for 300 ms after a
//! submission. A prompt argument (after `--`) is its first message. With `--settings FILE`, it
//! runs that file's hooks as Claude Code does (`sh -c COMMAND`, the event as JSON on stdin,
//! matchers against the tool name): SessionStart (`source` `resume` with `--resume ID`, else
//! `startup`), UserPromptSubmit, PreToolUse, PermissionRequest, PostToolUse, Stop (when a turn
//! ends), SessionEnd (on C-c or SIGHUP). `--session-id ID` or `--resume ID` is the events'
//! `session_id`. `--version` prints a version line. It records what it was started with, every
//! byte it read and every message it took under `$FAKE_AGENT_LOG/$AO_SESSION` (a folder; just
//! `$FAKE_AGENT_LOG` outside ao-host sessions; nothing without `FAKE_AGENT_LOG`):
//!
//! - `start.json`: `{"argv": [...], "cwd": "...", "env": {...}}` of the latest start;
//! - `messages.jsonl`: one JSON string per submitted message, byte-exact;
//! - `received`, `inherited`, `pid`: every byte read, the descriptors it inherited, its pid.
//!
//! Optional behaviour, by environment variable (each on when `1`):
//!
//! | variable | behaviour |
//! |---|---|
//! | `FAKE_AGENT_TRUST_DIALOG` | a "trust this folder" dialog first; Enter accepts it |
//! | `FAKE_AGENT_DROP_FIRST_ENTER` | ignore the first Enter after the first paste (a slow TUI) |
//! | `FAKE_AGENT_NEVER_READY` | never draw the input box |
//! | `FAKE_AGENT_EXIT_AT_ONCE` | print an error and exit with status 3 |
//! | `FAKE_AGENT_ASK_PERMISSION` | after each message, ask permission for a Bash command; Enter grants it ("1. Yes"), Down then Enter refuses it (no hook fires) |
//! | `FAKE_AGENT_ALTER_PROMPT` | report a prompt argument with its tabs turned into spaces |
//! | `FAKE_AGENT_NO_HOOKS` | run no hooks at all, as under a managed `disableAllHooks` policy |
//! | `FAKE_AGENT_CORRUPT_STATE` | before the first hook, overwrite the session's agent-state file with garbage, so the hook fails to record |
//! | `FAKE_AGENT_NO_ECHO` | never show a submitted message above the input box |
//!
//! And `FAKE_ORCHESTRATOR_SCRIPT=S`: in an orchestrator session (`AO_CALLER_TYPE=orchestrator`),
//! once started, run S with `sh -c` in the background, as an agent's Bash tool would (output in
//! `script.log` of its folder).

mod claude;
mod hooks;
pub(crate) mod record;
pub(crate) mod terminal;

use std::{
    ffi::OsString,
    path::PathBuf,
    process::{Command, Stdio},
};

/// The version line `--version` prints.
pub const VERSION_LINE: &str = "0.0.0 (fake Claude Code)";
/// The status it exits with when `FAKE_AGENT_EXIT_AT_ONCE` is on.
pub const EXIT_AT_ONCE_STATUS: i32 = 3;

/// The behaviour switches, read from the environment once.
struct Switches {
    trust_dialog: bool,
    drop_first_enter: bool,
    never_ready: bool,
    exit_at_once: bool,
    ask_permission: bool,
    alter_prompt: bool,
    no_hooks: bool,
    corrupt_state: bool,
    no_echo: bool,
}

impl Switches {
    fn from_env() -> Self {
        let on = |name: &str| std::env::var_os(name).is_some_and(|v| v == "1");
        Self {
            trust_dialog: on("FAKE_AGENT_TRUST_DIALOG"),
            drop_first_enter: on("FAKE_AGENT_DROP_FIRST_ENTER"),
            never_ready: on("FAKE_AGENT_NEVER_READY"),
            exit_at_once: on("FAKE_AGENT_EXIT_AT_ONCE"),
            ask_permission: on("FAKE_AGENT_ASK_PERMISSION"),
            alter_prompt: on("FAKE_AGENT_ALTER_PROMPT"),
            no_hooks: on("FAKE_AGENT_NO_HOOKS"),
            corrupt_state: on("FAKE_AGENT_CORRUPT_STATE"),
            no_echo: on("FAKE_AGENT_NO_ECHO"),
        }
    }
}

/// Runs the Claude Code stand-in with `args` (the program's, its name first) until its input
/// ends, C-c or a hangup; returns the status to exit with.
pub fn run(args: impl IntoIterator<Item = OsString>) -> i32 {
    let argv: Vec<String> = args
        .into_iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    match run_claude(&argv) {
        Ok(status) => status,
        Err(why) => {
            eprintln!("fake agent: {why}");
            1
        }
    }
}

fn run_claude(argv: &[String]) -> Result<i32, String> {
    let args = argv.get(1..).unwrap_or_default();
    if args == ["--version"] {
        println!("{VERSION_LINE}");
        return Ok(0);
    }
    let dir = std::env::var_os("FAKE_AGENT_LOG")
        .map(|log| PathBuf::from(log).join(std::env::var_os("AO_SESSION").unwrap_or_default()));
    let record = record::Record::new(dir).map_err(|e| format!("its log folder: {e}"))?;
    record
        .started(argv)
        .map_err(|e| format!("recording its start: {e}"))?;
    // Options come before `--`; the argument after it is the first message.
    let (options, inline_prompt) = match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], args.get(at + 1).cloned()),
        None => (args, None),
    };
    let option = |name: &str| {
        options
            .iter()
            .position(|a| a == name)
            .and_then(|at| options.get(at + 1))
            .map(String::as_str)
    };
    let session_id = option("--session-id")
        .or(option("--resume"))
        .unwrap_or("00000000-0000-4000-8000-000000000000");
    let hooks = hooks::Hooks::load(option("--settings"), session_id.to_string())?;
    let switches = Switches::from_env();
    if switches.exit_at_once {
        terminal::draw("fatal: the fake agent was told to fail\n");
        return Ok(EXIT_AT_ONCE_STATUS);
    }
    // Catches SIGHUP before the terminal can close under it.
    let reader = terminal::Reader::new().map_err(|e| format!("watching for SIGHUP: {e}"))?;
    terminal::make_raw();
    terminal::draw(terminal::BRACKETED_PASTE_ON);
    start_orchestrator_script(record.dir());
    let agent = claude::Agent::new(
        switches,
        hooks,
        record,
        option("--resume").is_some(),
        inline_prompt,
    );
    agent.run(reader);
    Ok(0)
}

/// `FAKE_ORCHESTRATOR_SCRIPT`, in an orchestrator session: started in the background, its
/// output in `script.log` of `dir` (else of the current folder).
fn start_orchestrator_script(dir: Option<&std::path::Path>) {
    let Some(script) = std::env::var_os("FAKE_ORCHESTRATOR_SCRIPT") else {
        return;
    };
    if std::env::var_os("AO_CALLER_TYPE").is_none_or(|caller| caller != "orchestrator") {
        return;
    }
    let log = dir.unwrap_or(std::path::Path::new(".")).join("script.log");
    let Ok(output) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
    else {
        eprintln!("fake agent: cannot open {}", log.display());
        return;
    };
    let errors = output.try_clone().map(Stdio::from).unwrap_or(Stdio::null());
    if let Err(e) = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .spawn()
    {
        eprintln!("fake agent: starting FAKE_ORCHESTRATOR_SCRIPT: {e}");
    }
}
