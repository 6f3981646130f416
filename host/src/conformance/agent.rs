//! The agent checks: how it starts, and that reading any screen is safe.
//!
//! An agent plugin drives a real CLI the kit cannot assume is installed, so these checks stop
//! short of running it: the launch plan must be sound, and the screen readers must answer for
//! empty, hostile and huge screens without failing or hanging (the host calls them on every
//! screen it reads).

use ao_plugin_api::{abi_stable::std_types::ROption, AgentSession, LaunchRequest};

use super::Kit;

fn session(kit: &Kit<'_>) -> AgentSession {
    AgentSession {
        session_id: "aokit-1".into(),
        project_id: "aokit".into(),
        branch: "session/aokit-1".into(),
        workspace_path: kit.scratch.display().to_string().into(),
        system_prompt: ROption::RSome("You are checked by the ao-host conformance kit.".into()),
        agent_config: String::new().into(),
    }
}

/// A first message with everything that a terminal or a shell would change.
const FIRST_MESSAGE: &str = "-starts with a dash\n\ttab, \"quotes\", $(not run), ünï 🎉\r\n";

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
    let request = LaunchRequest {
        session,
        first_message: ROption::RSome(FIRST_MESSAGE.into()),
        event_command: vec!["/nonexistent/ao-host".into(), "hook".into()].into(),
        resume: ROption::RNone,
        allowed_commands: Vec::new().into(),
    };
    kit.record(
        "launch",
        match agent.launch(&request).await {
            Ok(plan) if plan.argv.is_empty() => Err("an empty argv".into()),
            Ok(plan)
                if plan.takes_first_message
                    && !plan.argv.iter().any(|a| a.as_str() == FIRST_MESSAGE) =>
            {
                Err(
                    "says it takes the first message, but no argument is the message byte-exact"
                        .into(),
                )
            }
            Ok(plan) => Ok(format!(
                "argv of {} argument(s); first message {}; events {}",
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
                }
            )),
            Err(e) => Err(e.to_string()),
        },
    );
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
    kit.record(
        "doctor",
        agent
            .doctor()
            .await
            .map(|checks| format!("{} check(s)", checks.len()))
            .map_err(|e| e.to_string()),
    );
}
