//! The agent checks: how it starts, and that reading any screen is safe.
//!
//! An agent plugin drives a real CLI the kit cannot assume is installed: the launch plan must
//! be sound, and the screen readers must answer for empty, hostile and huge screens without
//! failing or hanging (the host calls them on every screen it reads). Where the CLI is
//! installed, a whole launch runs under a terminal until `is_ready` says ready; where it is
//! not, the report says readiness went unchecked. An agent that says it reports events must have wired the event command
//! somewhere the CLI will find it (its argv, or a file it wrote under the data dir). With
//! `--screens DIR`, screens recorded from the real CLI must read as what the CLI was doing.

use std::{
    collections::BTreeMap,
    os::unix::fs::PermissionsExt,
    path::{Component, Path},
    time::{Duration, Instant},
};

use ao_plugin_api::{
    abi_stable::std_types::ROption,
    sandbox::{ConfinedLaunchPlan, ConfinedLaunchRequest},
    Activity, AgentSession, LaunchPlan, LaunchRequest, Readiness,
};

use super::{
    terminal::{last_chars, Terminal},
    Kit,
};
use ao_plugin_host::AgentPlugin;

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
        let confined = agent
            .launch_confined(&ConfinedLaunchRequest {
                launch: request.clone(),
                unattended: false,
            })
            .await;
        kit.record("launch_confined", confined_like_plain(plan, confined));
    }
    if launched.is_ok() {
        request.first_message = ROption::RNone;
        readiness(kit, &agent, &request).await;
    }
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
                (Ok(Readiness::Ready), Ok(_), Ok(_)) if screen.is_empty() => Err(
                    "is_ready says ready for an empty screen: a CLI that has drawn nothing yet would get its first message before it can take it; say `Starting` until its input box shows"
                        .into(),
                ),
                (Ok(_), Ok(_), Ok(_)) => Ok("is_ready, activity and input_pending answer".into()),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e.to_string()),
            },
        );
    }
    super::usage::check(kit, &agent, &request.session).await;
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

/// A confined launch without `unattended` must run what the plain launch runs (the sandbox
/// bounds it; it changes nothing of the agent's own), its conversation id aside (a fresh
/// launch may pick a new one each time), and name only absolute paths for the sandbox.
fn confined_like_plain(
    plain: &LaunchPlan,
    confined: Result<ConfinedLaunchPlan, ao_plugin_host::PluginCallError>,
) -> Result<String, String> {
    let confined = confined.map_err(|e| e.to_string())?;
    let argv = |plan: &LaunchPlan| -> Vec<String> {
        let id = plan
            .conversation_id
            .as_ref()
            .into_option()
            .map(|id| id.as_str());
        plan.argv
            .iter()
            .map(|a| match id {
                Some(id) if !id.is_empty() => a.as_str().replace(id, "<conversation>"),
                _ => a.to_string(),
            })
            .collect()
    };
    let (plain_argv, confined_argv) = (argv(plain), argv(&confined.plan));
    if plain_argv != confined_argv {
        return Err(format!(
            "without `unattended` the argv differs from launch's: {confined_argv:?} instead of {plain_argv:?}; only `unattended` may change how the agent runs"
        ));
    }
    if let Some(rule) = confined
        .paths
        .iter()
        .find(|r| !Path::new(r.path.as_str()).is_absolute())
    {
        return Err(format!(
            "names the relative path `{}` for the sandbox; name absolute paths only",
            rule.path
        ));
    }
    Ok(format!(
        "launch's argv; {} path(s) for the sandbox, {} variable(s) passed, {} set",
        confined.paths.len(),
        confined.pass_env.len(),
        confined.env.len()
    ))
}

/// The readiness check's name.
const READINESS: &str = "readiness: a whole launch";

/// A whole launch, where the CLI is installed: the plan (without a first message, so nothing
/// is asked of a model) runs under a terminal of the kit's own until `is_ready` reads its
/// screen as ready. Without the CLI the report says readiness went unchecked.
async fn readiness(kit: &mut Kit<'_>, agent: &AgentPlugin, request: &LaunchRequest) {
    let plan = match agent.launch(request).await {
        Ok(plan) => plan,
        Err(e) => {
            kit.record(
                READINESS,
                Err(format!("launch without a first message: {e}")),
            );
            return;
        }
    };
    let argv: Vec<String> = plan.argv.iter().map(ToString::to_string).collect();
    let Some(program) = argv.first().filter(|p| installed(p)) else {
        kit.skip(
            READINESS,
            format!(
                "readiness not checked: no CLI (`{}` is not installed here)",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
        );
        return;
    };
    let program = program.clone();
    let env: Vec<(String, String)> = match agent.environment(&request.session).await {
        Ok(vars) => vars
            .iter()
            .map(|v| (v.name.to_string(), v.value.to_string()))
            .collect(),
        Err(e) => {
            kit.record(READINESS, Err(format!("environment: {e}")));
            return;
        }
    };
    let mut terminal = match Terminal::start(&argv, &kit.scratch, &env) {
        Ok(terminal) => terminal,
        Err(e) => {
            kit.record(READINESS, Err(e));
            return;
        }
    };
    let patience = kit.settings.ready_timeout;
    let deadline = Instant::now() + patience;
    let outcome = loop {
        let screen = terminal.text();
        match agent.is_ready(&screen).await {
            Ok(Readiness::Ready) => {
                break Ok(format!(
                    "`{program}` started and is_ready read its screen as ready"
                ))
            }
            Ok(_) if !terminal.running() => {
                break Err(format!(
                    "`{program}` ended before is_ready said ready; its screen: {:?}",
                    last_chars(&screen, 300)
                ))
            }
            Ok(_) if Instant::now() >= deadline => {
                break Err(format!(
                    "`{program}` ran {} s and is_ready never said ready: it must answer Ready once \
                     the CLI takes input, or every spawn waits for ever; its screen: {:?}",
                    patience.as_secs_f32(),
                    last_chars(&screen, 300)
                ))
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => break Err(format!("is_ready: {e}")),
        }
    };
    drop(terminal);
    kit.record(READINESS, outcome);
}

/// Whether `program` runs here: a path to an executable file, or a name found in `PATH`.
fn installed(program: &str) -> bool {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        return executable(Path::new(program));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(program))))
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
