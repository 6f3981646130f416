//! The agent checks: how it starts, and that reading any screen is safe.
//!
//! An agent plugin drives a real CLI the kit cannot assume is installed, so these checks stop
//! short of running it: the launch plan must be sound, and the screen readers must answer for
//! empty, hostile and huge screens without failing or hanging (the host calls them on every
//! screen it reads). An agent that says it reports events must have wired the event command
//! somewhere the CLI will find it (its argv, or a file it wrote under the data dir). With
//! `--screens DIR`, screens recorded from the real CLI must read as what the CLI was doing.

use std::{
    collections::BTreeMap,
    path::{Component, Path},
};

use ao_plugin_api::{
    abi_stable::std_types::ROption, Activity, AgentSession, LaunchPlan, LaunchRequest, Readiness,
};

use super::Kit;
use crate::plugins::AgentPlugin;

/// The event command the kit hands the agent: a program that does not exist, so nothing runs
/// it, under a name the kit can find wherever the plugin wired it.
const EVENT_PROGRAM: &str = "/nonexistent/ao-kit-event-program";
/// The file of a screens folder that says what each screen shows.
const SCREENS_MANIFEST: &str = "activity.yaml";

fn session(kit: &Kit<'_>) -> AgentSession {
    AgentSession {
        session_id: SESSION_ID.into(),
        project_id: "aokit".into(),
        branch: "session/aokit-1".into(),
        workspace_path: kit.scratch.display().to_string().into(),
        system_prompt: ROption::RSome("You are checked by the ao-host conformance kit.".into()),
        agent_config: String::new().into(),
    }
}

/// The session every agent check is about.
const SESSION_ID: &str = "aokit-1";

/// A first message with everything that a terminal or a shell would change.
const FIRST_MESSAGE: &str = "-starts with a dash\n\ttab, \"quotes\", $(not run), ünï 🎉\r\n";
/// [`FIRST_MESSAGE`] without the carriage return, for a CLI that refuses one.
const PLAIN_MESSAGE: &str = "-starts with a dash\n\ttab, \"quotes\", $(not run), ünï 🎉";

pub(super) async fn check(kit: &mut Kit<'_>) {
    let home = kit.data_dir("data");
    let built = kit
        .registry
        .agent(&kit.plugin, &kit.context(&home), kit.timeout);
    let Some(agent) = kit.built(built) else {
        return;
    };
    let session = session(kit);
    kit.record(
        "launch_command",
        match agent.launch_command(&session).await {
            Ok(argv) if argv.first().is_some_and(|p| !p.is_empty()) => {
                Ok(format!("starts `{}`", argv[0]))
            }
            Ok(argv) => Err(format!("no program to run: {argv:?}")),
            Err(e) => Err(e.to_string()),
        },
    );
    kit.record(
        "environment",
        match agent.environment(&session).await {
            Ok(vars) => match vars.iter().find(|v| v.name.as_str().starts_with("AO_")) {
                Some(var) => Err(format!(
                    "sets {}: the AO_* variables are the host's to set",
                    var.name
                )),
                None => Ok(format!("{} variable(s)", vars.len())),
            },
            Err(e) => Err(e.to_string()),
        },
    );
    let mut request = LaunchRequest {
        session,
        first_message: ROption::RSome(FIRST_MESSAGE.into()),
        event_command: vec![EVENT_PROGRAM.into(), "hook".into()].into(),
        resume: ROption::RNone,
        allowed_commands: Vec::new().into(),
    };
    let mut message = FIRST_MESSAGE;
    let mut launched = agent.launch(&request).await;
    // A CLI that cannot take a carriage return may say so instead (that is no failure): the
    // rest is checked with a message it can take.
    let mut refusal = None;
    if let Err(e) = &launched {
        if e.kind() == ao_plugin_api::PluginErrorKind::InvalidInput {
            refusal = Some(e.to_string());
            message = PLAIN_MESSAGE;
            request.first_message = ROption::RSome(message.into());
            launched = agent.launch(&request).await;
        }
    }
    kit.record(
        "launch",
        match &launched {
            Ok(plan) if plan.argv.is_empty() => Err("an empty argv".into()),
            Ok(plan)
                if plan.takes_first_message
                    && !plan
                        .argv
                        .iter()
                        .any(|a| carries_message(a.as_str(), message)) =>
            {
                Err(
                    "says it takes the first message, but no argument is the message byte-exact \
                     (alone, or as the value of one `--option=`)"
                        .into(),
                )
            }
            Ok(plan) => Ok(format!(
                "argv of {} argument(s); first message {}; events {}{}",
                plan.argv.len(),
                if plan.takes_first_message {
                    "in the argv"
                } else {
                    "typed in"
                },
                if plan.reports_events {
                    "reported"
                } else {
                    "read from the screen"
                },
                refusal
                    .as_deref()
                    .map(|why| format!(" (a message with a carriage return refused: {why})"))
                    .unwrap_or_default()
            )),
            Err(e) => Err(e.to_string()),
        },
    );
    if let Ok(plan) = &launched {
        let wiring = event_wiring(plan, &home);
        kit.record("event wiring", wiring);
        let forgotten = match agent.forget(SESSION_ID).await {
            Err(e) => Err(e.to_string()),
            Ok(()) => match path_naming(&home, SESSION_ID, 8) {
                Some(left) => Err(format!(
                    "forget left {} behind: a killed session's files would pile up",
                    left.display()
                )),
                None => Ok("nothing of the session is left under the data dir".into()),
            },
        };
        kit.record("forget", forgotten);
    }
    let huge = "\u{1b}[31m█ ❯ ".repeat(100_000);
    for (name, screen) in [
        ("an empty screen", String::new()),
        (
            "a hostile screen",
            "\u{0}\u{1b}]0;title\u{7}\r\n❯\u{a0}".repeat(100),
        ),
        ("a 1 MB screen", huge),
    ] {
        let answers = (
            agent.is_ready(&screen).await,
            agent.activity(&screen).await,
            agent.input_pending(&screen).await,
        );
        kit.record(
            &format!("reading {name}"),
            match answers {
                (Ok(_), Ok(_), Ok(_)) => Ok("is_ready, activity and input_pending answer".into()),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e.to_string()),
            },
        );
    }
    if let Some(dir) = kit.screens.clone() {
        recorded_screens(kit, &agent, &dir).await;
    }
    kit.record(
        "doctor",
        agent
            .doctor()
            .await
            .map(|checks| format!("{} check(s)", checks.len()))
            .map_err(|e| e.to_string()),
    );
}

/// Whether `arg` is the first message byte-exact: the whole argument, or the value of one
/// `--option=` (a CLI whose parser takes a value starting with `-` for an option only that way).
fn carries_message(arg: &str, message: &str) -> bool {
    arg == message
        || arg.split_once('=').is_some_and(|(option, value)| {
            option.starts_with("--") && !option.contains(char::is_whitespace) && value == message
        })
}

/// Where the plan's events will come from: the event command in the argv, or in a file the
/// plugin wrote under its data dir (a hook settings file, a config home, a CLI plugin).
fn event_wiring(plan: &LaunchPlan, data_dir: &Path) -> Result<String, String> {
    if !plan.reports_events {
        return Ok("none: the host reads the screen".into());
    }
    if plan.argv.iter().any(|a| a.as_str().contains(EVENT_PROGRAM)) {
        return Ok("the event command is in the argv".into());
    }
    match file_naming(data_dir, EVENT_PROGRAM.as_bytes(), 8) {
        Some(file) => Ok(format!(
            "the event command is in {}",
            file.strip_prefix(data_dir).unwrap_or(&file).display()
        )),
        None => Err(
            "says it reports events, but the event command is neither in its argv nor in any \
             file it wrote under the data dir: the host would never hear from the agent"
                .into(),
        ),
    }
}

/// The first path under `dir` (at most `depth` folders down, links not followed) that
/// `matches`.
fn first_under(
    dir: &Path,
    depth: usize,
    matches: &dyn Fn(&std::fs::DirEntry) -> bool,
) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.filter_map(Result::ok) {
        if matches(&entry) {
            return Some(entry.path());
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) && depth > 0 {
            if let Some(found) = first_under(&entry.path(), depth - 1, matches) {
                return Some(found);
            }
        }
    }
    None
}

/// The first path under `dir` with a component naming `name`.
fn path_naming(dir: &Path, name: &str, depth: usize) -> Option<std::path::PathBuf> {
    first_under(dir, depth, &|entry| {
        entry.file_name().to_string_lossy().contains(name)
    })
}

/// The first file under `dir` (files up to 4 MiB) that holds `needle`.
fn file_naming(dir: &Path, needle: &[u8], depth: usize) -> Option<std::path::PathBuf> {
    first_under(dir, depth, &|entry| {
        entry.file_type().is_ok_and(|t| t.is_file())
            && entry.metadata().is_ok_and(|m| m.len() <= 4 << 20)
            && std::fs::read(entry.path())
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

/// One check per recorded screen: `activity` says what `activity.yaml` says; a permission
/// prompt has no input pending (the host's extra Enter would answer it); an idle agent is ready.
async fn recorded_screens(kit: &mut Kit<'_>, agent: &AgentPlugin, dir: &Path) {
    let manifest = dir.join(SCREENS_MANIFEST);
    let expected: BTreeMap<String, String> = match std::fs::read_to_string(&manifest)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_yaml::from_str(&text).map_err(|e| e.to_string()))
    {
        Ok(expected) => expected,
        Err(e) => {
            kit.record(
                "recorded screens",
                Err(format!(
                    "{}: {e}; it maps each screen file to idle, working, waiting_input or exited",
                    manifest.display()
                )),
            );
            return;
        }
    };
    for (file, activity) in expected {
        let outcome = check_screen(agent, dir, &file, &activity).await;
        kit.record(&format!("screen {file}"), outcome);
    }
}

async fn check_screen(
    agent: &AgentPlugin,
    dir: &Path,
    file: &str,
    expected: &str,
) -> Result<String, String> {
    let want = [
        Activity::Idle,
        Activity::Working,
        Activity::WaitingInput,
        Activity::Exited,
    ]
    .into_iter()
    .find(|a| a.as_str() == expected)
    .ok_or_else(|| {
        format!("{SCREENS_MANIFEST} says {expected:?}: use idle, working, waiting_input or exited")
    })?;
    if !Path::new(file)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(format!("{file:?} is not a file inside the screens folder"));
    }
    let screen = std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
    let got = agent.activity(&screen).await.map_err(|e| e.to_string())?;
    if got != want {
        return Err(format!("reads as {}, recorded as {expected}", got.as_str()));
    }
    if want == Activity::WaitingInput
        && agent
            .input_pending(&screen)
            .await
            .map_err(|e| e.to_string())?
    {
        return Err(
            "a permission prompt reads as text waiting in the input box: the host's \
                    extra Enter would answer the prompt"
                .into(),
        );
    }
    if want == Activity::Idle {
        let ready = agent.is_ready(&screen).await.map_err(|e| e.to_string())?;
        if ready != Readiness::Ready {
            return Err(format!("idle, but is_ready says {ready:?}"));
        }
    }
    Ok(format!("reads as {expected}"))
}
