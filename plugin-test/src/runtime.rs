//! The runtime checks: a probe agent started, watched, messaged, listed and stopped.

use std::{path::Path, time::Duration};

use ao_plugin_api::{abi_stable::std_types::RVec, EnvVar, PluginErrorKind, RuntimeCreateRequest};

use ao_plugin_host::RuntimePlugin;

use super::{
    delivery::{delivered_intact, submitted_lines},
    eventually,
    probe::{ProbeFiles, READY_LINE},
    terminal::{last_chars, Terminal},
    Kit,
};

/// How long the probe may take to start, draw, or receive a message.
const PATIENCE: Duration = Duration::from_secs(10);

/// Messages a runtime must deliver byte-exact: plain, every kind of whitespace and non-ASCII,
/// and 100 KB (more than one terminal paste or pipe buffer).
fn messages() -> Vec<(&'static str, String)> {
    let mut large = String::new();
    let mut line = 0;
    while large.len() < 100 * 1024 {
        large.push_str(&format!(
            "{line:05}\tünïcødé 🎉 \"quotes\" $(not run) `tick` \\ back\n"
        ));
        line += 1;
    }
    vec![
        ("short", "hello from the conformance kit".to_string()),
        (
            "whitespace and UTF-8",
            "\tleading tab\n  two lines, ünï 🎉\r\nand a CRLF\n-dash last".to_string(),
        ),
        ("100 KB", large),
    ]
}

fn request(session: &str, cwd: &Path, probe: &[String], dir: &Path) -> RuntimeCreateRequest {
    let mut argv: Vec<String> = probe.to_vec();
    argv.push(dir.display().to_string());
    RuntimeCreateRequest {
        session_id: session.into(),
        cwd: cwd.display().to_string().into(),
        launch_command: argv.into_iter().map(Into::into).collect(),
        env: RVec::from(vec![EnvVar::new("AO_SESSION", session)]),
    }
}

pub(super) async fn check(kit: &mut Kit<'_>) {
    let home = kit.data_dir("data");
    let built = kit
        .registry
        .runtime(&kit.plugin, &kit.context(&home), kit.timeout);
    let Some(runtime) = kit.built(built) else {
        return;
    };
    let session = format!("aokit-{}", std::process::id());
    let probe = ProbeFiles::new(&kit.scratch.join("probe"));
    let cwd = kit.scratch.clone();
    let created = runtime
        .create(request(&session, &cwd, &kit.probe, &probe.dir))
        .await
        .map_err(|e| e.to_string());
    match created {
        Ok(handle) => session_lifetime(kit, &runtime, &handle, &probe).await,
        Err(why) => {
            kit.record("create", Err(why));
        }
    }
    let not_found = runtime.capture_output("aokit-no-such-session", 10).await;

    kit.record(
        "unknown handle",
        match not_found {
            Err(e) if e.kind() == PluginErrorKind::NotFound => {
                Ok("capture_output says not-found".into())
            }
            Err(e) => Err(format!("capture_output failed, but not as not-found: {e}")),
            Ok(_) => Err("capture_output answered for a session that does not exist".into()),
        },
    );
    exact_environment(kit, &runtime).await;
    failed_create(kit, &runtime).await;
}

/// Variables a runtime may set for its terminal (and a shell may leave) besides those asked.
const TERMINAL_VARIABLES: [&str; 12] = [
    "TERM",
    "TERM_PROGRAM",
    "TERM_PROGRAM_VERSION",
    "COLORTERM",
    "TMUX",
    "TMUX_PANE",
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "LINES",
    "COLUMNS",
];

/// `start`: the agent gets exactly the variables asked (and its terminal's), nothing of the
/// host's or the runtime's own environment. A runtime that does not offer `start` passes with a
/// note: its agents get its own environment.
async fn exact_environment(kit: &mut Kit<'_>, runtime: &RuntimePlugin) {
    let probe = ProbeFiles::new(&kit.scratch.join("exact-probe"));
    let session = format!("aokit-exact-{}", std::process::id());
    let mark = format!("aokit-{}", std::process::id());
    let mut asked = request(&session, &kit.scratch, &kit.probe, &probe.dir);
    // What the probe (`ao-host` itself) needs to run.
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            asked.env.push(EnvVar::new(name, value));
        }
    }
    asked.env.push(EnvVar::new("AO_KIT_MARK", mark.as_str()));
    let names: Vec<String> = asked.env.iter().map(|v| v.name.to_string()).collect();
    let outcome = match runtime.start_exactly(asked).await {
        Err(e) if e.kind() == PluginErrorKind::Unsupported => Ok(format!(
            "not offered, so agents get the runtime's own environment and only the plugins' \
             variables of the host's ({e})"
        )),
        Err(e) => Err(e.to_string()),
        Ok(handle) => {
            let written = eventually(PATIENCE, || !probe.environment().is_empty()).await;
            let environment = probe.environment();
            let _ = runtime.destroy(&handle).await;
            let _ = eventually(PATIENCE, || !probe.running()).await;
            let extra: Vec<&str> = environment
                .iter()
                .filter_map(|entry| entry.split_once('=').map(|(name, _)| name))
                .filter(|name| !names.iter().any(|n| n == name))
                .filter(|name| !TERMINAL_VARIABLES.contains(name))
                .collect();
            let marked = format!("AO_KIT_MARK={mark}");
            if !written {
                Err("the probe agent never started".into())
            } else if !environment.contains(&marked) {
                Err("the agent lacks a variable it was given".into())
            } else if !extra.is_empty() {
                Err(format!(
                    "the agent got variables it was not given (from the host's or the \
                     runtime's own environment): {}; start it with exactly `request.env` (see \
                     ao_plugin_kit::launch)",
                    extra.join(", ")
                ))
            } else {
                Ok("the agent got exactly the variables given".into())
            }
        }
    };
    kit.record("start: exactly the given environment", outcome);
}

/// Everything done with the session `create` made, through to destroying it twice.
async fn session_lifetime(
    kit: &mut Kit<'_>,
    runtime: &RuntimePlugin,
    handle: &str,
    probe: &ProbeFiles,
) {
    let started = eventually(PATIENCE, || probe.running()).await;
    kit.record(
        "create",
        if started {
            Ok(format!("handle {handle}; the probe agent runs"))
        } else {
            Err(format!(
                "handle {handle}, but the probe agent never started"
            ))
        },
    );
    if started {
        let leaked: Vec<String> = probe
            .inherited()
            .lines()
            .filter(|line| {
                line.split_once(" -> ")
                    .is_some_and(|(_, target)| !kit.baseline.iter().any(|b| b == target))
            })
            .map(str::to_owned)
            .collect();
        kit.record(
            "create: nothing of the host inherited",
            if leaked.is_empty() {
                Ok("the agent got no descriptor the host or the plugin opened".into())
            } else {
                Err(format!(
                    "the agent inherited descriptors the host or the plugin opened (mark them close-on-exec): {}",
                    leaked.join("; ")
                ))
            },
        );
        session_checks(kit, runtime, handle, probe).await;
        foreign_checks(kit, runtime, handle).await;
    } else {
        kit.record(
            "the session's checks",
            Err("not run: they need the agent that `create` did not start".into()),
        );
    }

    let destroyed = runtime.destroy(handle).await.map_err(|e| e.to_string());
    let stopped = eventually(PATIENCE, || !probe.running()).await;
    let gone = matches!(runtime.is_alive(handle).await, Ok(false))
        || matches!(runtime.is_alive(handle).await, Err(e) if e.kind() == PluginErrorKind::NotFound);
    kit.record(
        "destroy",
        match (destroyed, stopped, gone) {
            (Err(e), _, _) => Err(e),
            (Ok(()), false, _) => Err("the agent process is still running".into()),
            (Ok(()), true, false) => Err("is_alive still says true".into()),
            (Ok(()), true, true) => Ok("the agent process is gone; is_alive says false".into()),
        },
    );
    kit.record(
        "destroy twice",
        runtime
            .destroy(handle)
            .await
            .map(|()| "destroying what is gone succeeds".into())
            .map_err(|e| format!("the second destroy failed: {e}")),
    );
}

/// Screen, messages and keys of the live probe session.
async fn session_checks(
    kit: &mut Kit<'_>,
    runtime: &RuntimePlugin,
    handle: &str,
    probe: &ProbeFiles,
) {
    let alive = runtime.is_alive(handle).await;
    kit.record(
        "is_alive",
        match alive {
            Ok(true) => Ok("true".into()),
            Ok(false) => Err("false for the session just created".into()),
            Err(e) => Err(e.to_string()),
        },
    );
    let mut screen = String::new();
    let mut drawn = false;
    for _ in 0..(PATIENCE.as_millis() / 100) {
        match runtime.capture_output(handle, 50).await {
            Ok(text) if text.contains(READY_LINE) => {
                drawn = true;
                break;
            }
            Ok(text) => screen = text,
            Err(e) => screen = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kit.record(
        "capture_output",
        if drawn {
            Ok("shows what the agent drew".into())
        } else {
            Err(format!(
                "never showed the probe's `{READY_LINE}` line; last: {:?}",
                screen.chars().take(200).collect::<String>()
            ))
        },
    );
    for (name, text) in messages() {
        let before = probe.received().len();
        let sent = runtime.send_message(handle, &text).await;
        let check = format!("send_message: {name}");
        let outcome = match sent {
            Err(e) => Err(e.to_string()),
            Ok(()) => {
                // Wait until the bytes stop coming, then judge what came.
                let mut seen = before;
                let mut quiet = 0;
                let _ = eventually(PATIENCE, || {
                    let now = probe.received().len();
                    quiet = if now == seen && now > before {
                        quiet + 1
                    } else {
                        0
                    };
                    seen = now;
                    quiet >= 6
                })
                .await;
                let received = probe.received();
                delivered_intact(&received[before.min(received.len())..], &text)
                    .map(|()| format!("{} bytes arrived byte-exact, submitted once", text.len()))
            }
        };
        kit.record(&check, outcome);
    }
    let before = probe.received().len();
    let keys = runtime.send_keys(handle, &["x", "Enter"]).await;
    let arrived = eventually(PATIENCE, || probe.received().len() >= before + 2).await;
    let received = probe.received();
    let got = &received[before.min(received.len())..];
    kit.record(
        "send_keys",
        match keys {
            Err(e) => Err(e.to_string()),
            Ok(()) if arrived && (got == b"x\r" || got == b"x\n") => {
                Ok("a literal key and Enter arrived".into())
            }
            Ok(()) => Err(format!("sent `x` and Enter, the agent got {got:?}")),
        },
    );
    back_to_back(kit, runtime, handle, probe).await;
    rapid_fire(kit, runtime, handle, probe).await;
    attach(kit, runtime, handle).await;
    kit.record(
        "alive_handles",
        match runtime.alive_handles().await {
            Ok(handles) if handles.iter().any(|h| h == handle) => Ok("lists the session".into()),
            Ok(handles) => Err(format!("does not list {handle}: {handles:?}")),
            Err(e) => Err(e.to_string()),
        },
    );
}

/// Waits until the probe has received at least `bytes` more than `before`, or [`PATIENCE`]
/// passes, then until nothing more comes; what came after `before`.
async fn received_after(probe: &ProbeFiles, before: usize, bytes: usize) -> Vec<u8> {
    let _ = eventually(PATIENCE, || probe.received().len() >= before + bytes).await;
    let mut seen = 0;
    let mut quiet = 0;
    let _ = eventually(PATIENCE, || {
        let now = probe.received().len();
        quiet = if now == seen { quiet + 1 } else { 0 };
        seen = now;
        quiet >= 6
    })
    .await;
    let received = probe.received();
    received[before.min(received.len())..].to_vec()
}

/// Text, then Enter in a second call at once, as a spawn types a first message: a runtime
/// that drops or reorders an input sent while the previous one is still on its way fails a
/// real spawn, though each call alone works.
async fn back_to_back(
    kit: &mut Kit<'_>,
    runtime: &RuntimePlugin,
    handle: &str,
    probe: &ProbeFiles,
) {
    const CHECK: &str = "back-to-back: text, then Enter at once";
    let text = "back to back";
    let before = probe.received().len();
    let sent = async {
        runtime.send_keys(handle, &[text]).await?;
        runtime.send_keys(handle, &["Enter"]).await
    }
    .await;
    let outcome = match sent {
        Err(e) => Err(e.to_string()),
        Ok(()) => {
            let got = received_after(probe, before, text.len() + 1).await;
            if got == format!("{text}\r").as_bytes() || got == format!("{text}\n").as_bytes() {
                Ok("both inputs arrived, in order".into())
            } else {
                Err(format!(
                    "sent `{text}` then Enter in two calls at once, the agent got {:?}: the \
                     second input was dropped or changed; deliver each call's input in full \
                     before returning, whatever came just before",
                    String::from_utf8_lossy(&got)
                ))
            }
        }
    };
    kit.record(CHECK, outcome);
}

/// How many messages [`rapid_fire`] sends in a row.
const RAPID_FIRE: usize = 20;

/// Messages in a row, none waited for: all arrive, in order, byte-exact.
async fn rapid_fire(kit: &mut Kit<'_>, runtime: &RuntimePlugin, handle: &str, probe: &ProbeFiles) {
    let check = format!("rapid fire: {RAPID_FIRE} messages in a row");
    let sent: Vec<String> = (1..=RAPID_FIRE)
        .map(|n| format!("rapid fire {n} of {RAPID_FIRE} ünï"))
        .collect();
    let before = probe.received().len();
    let mut failed = None;
    for message in &sent {
        if let Err(e) = runtime.send_message(handle, message).await {
            failed = Some(format!("sending `{message}`: {e}"));
            break;
        }
    }
    let outcome = match failed {
        Some(why) => Err(why),
        None => {
            let total: usize = sent.iter().map(|m| m.len() + 1).sum();
            let got = received_after(probe, before, total).await;
            let lines = submitted_lines(&got);
            if lines == sent {
                Ok(format!("all {RAPID_FIRE} arrived in order, byte-exact"))
            } else {
                let first_wrong = sent
                    .iter()
                    .zip(&lines)
                    .position(|(s, l)| s != l)
                    .unwrap_or(lines.len().min(sent.len()));
                Err(format!(
                    "{} of {RAPID_FIRE} messages arrived; the first one missing or changed is \
                     number {} (got {:?}): every message must arrive whole and in order, \
                     however fast they come",
                    lines.len(),
                    first_wrong + 1,
                    lines.get(first_wrong)
                ))
            }
        }
    };
    kit.record(&check, outcome);
}

/// `attach_command` runs under a terminal and shows the session: what `capture_output` shows
/// last appears there.
async fn attach(kit: &mut Kit<'_>, runtime: &RuntimePlugin, handle: &str) {
    const CHECK: &str = "attach_command";
    let argv = match runtime.attach_command(handle).await {
        Err(e) if e.kind() == PluginErrorKind::Unsupported => {
            kit.skip(CHECK, format!("not offered: {e}"));
            return;
        }
        Err(e) => {
            kit.record(CHECK, Err(e.to_string()));
            return;
        }
        Ok(argv) => argv,
    };
    let screen = runtime.capture_output(handle, 50).await.unwrap_or_default();
    let Some(needle) = last_word(&screen) else {
        kit.record(
            CHECK,
            Err("capture_output shows nothing to look for".into()),
        );
        return;
    };
    let cwd = kit.scratch.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let shown = argv.join(" ");
        let mut terminal = Terminal::start(&argv, &cwd, &[])
            .map_err(|e| format!("`{shown}` does not run: {e}"))?;
        if terminal.wait_for(PATIENCE, |text| text.contains(&needle)) {
            return Ok(format!("`{shown}` shows the session under a terminal"));
        }
        Err(format!(
            "`{shown}` ran under a terminal but never showed the session (`{needle}`, the last \
             line capture_output shows){}; it drew: {:?}",
            if terminal.running() { "" } else { " and ended" },
            last_chars(&terminal.text(), 200)
        ))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the kit's terminal failed: {e}")));
    kit.record(CHECK, outcome);
}

/// The longest word of the last line of `screen` that has one: what a terminal showing the
/// same session shows too, whichever way it draws the spaces between words.
fn last_word(screen: &str) -> Option<String> {
    screen
        .lines()
        .rev()
        .find_map(|line| line.split_whitespace().max_by_key(|word| word.len()))
        .map(str::to_owned)
}

/// A session made by the same plugin for another data dir is not this one's to list or own.
async fn foreign_checks(kit: &mut Kit<'_>, runtime: &RuntimePlugin, handle: &str) {
    let other_home = kit.data_dir("other-data");
    let other = match kit
        .registry
        .runtime(&kit.plugin, &kit.context(&other_home), kit.timeout)
    {
        Ok(other) => other,
        Err(e) => {
            kit.record("alive_handles: foreign sessions", Err(e.to_string()));
            return;
        }
    };
    let probe = ProbeFiles::new(&kit.scratch.join("foreign-probe"));
    let session = format!("aokit-foreign-{}", std::process::id());
    let created = other
        .create(request(&session, &kit.scratch, &kit.probe, &probe.dir))
        .await;
    let outcome = match created {
        Err(e) => Err(format!("could not make another data dir's session: {e}")),
        Ok(foreign) => {
            let _ = eventually(PATIENCE, || probe.running()).await;
            let listed = runtime.alive_handles().await;
            let owned = runtime.owned_handles().await;
            let _ = other.destroy(&foreign).await;
            let _ = eventually(PATIENCE, || !probe.running()).await;
            match (listed, owned) {
                (Err(e), _) => Err(e.to_string()),
                (Ok(listed), _) if listed.contains(&foreign) => Err(format!(
                    "lists {foreign}, a session of another data dir, as its own"
                )),
                (_, Ok(owned)) if owned.contains(&foreign) => Err(format!(
                    "owned_handles lists {foreign}, a session of another data dir: gc would remove it"
                )),
                (Ok(listed), _) if !listed.iter().any(|h| h == handle) => {
                    Err(format!("no longer lists its own {handle}"))
                }
                _ => Ok("another data dir's session is not listed".into()),
            }
        }
    };
    kit.record("alive_handles: foreign sessions", outcome);
}

/// A `create` that fails (its folder does not exist) must leave no process behind.
async fn failed_create(kit: &mut Kit<'_>, runtime: &RuntimePlugin) {
    let probe = ProbeFiles::new(&kit.scratch.join("failed-probe"));
    let missing = kit.scratch.join("no-such-folder");
    let session = format!("aokit-failed-{}", std::process::id());
    let before = descendants();
    let created = runtime
        .create(request(&session, &missing, &kit.probe, &probe.dir))
        .await;
    // Give a leaked process time to start (and the probe to write its pid).
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Ok(handle) = &created {
        let _ = runtime.destroy(handle).await;
    }
    // The probe, wherever the runtime started it; and anything else the plugin started under
    // this process (or its isolated child) that is still running.
    let mut left: Vec<(u32, String)> = descendants()
        .into_iter()
        .filter(|process| !before.contains(process))
        .collect();
    if let Some(pid) = probe.pid().filter(|_| probe.running()) {
        if !left.iter().any(|(p, _)| *p == pid) {
            left.push((pid, "the probe agent".into()));
        }
    }
    kit.record(
        "create in a missing folder",
        match created {
            Ok(handle) => Err(format!(
                "succeeded ({handle}) in a folder that does not exist"
            )),
            Err(_) if !left.is_empty() => Err(format!(
                "failed, but left the agent process running: a create that fails must stop what it started (left: {})",
                left.iter()
                    .map(|(pid, what)| format!("{pid} {what}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Err(e) if e.kind() == PluginErrorKind::Unavailable => {
                Err(format!("could not be checked: {e}"))
            }
            Err(e) => Ok(format!("refused, nothing left running ({e})")),
        },
    );
    for (pid, _) in left {
        // SAFETY: stopping what the plugin left running under the kit.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
}

/// The processes below this one (its isolated plugin children's included, but not those
/// children themselves), as (pid, command line).
fn descendants() -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (state, parent) of a process; a zombie has ended, only not been reaped yet.
    let stat_of = |pid: u32| -> Option<(char, u32)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
        Some((fields.next()?.chars().next()?, fields.next()?.parse().ok()?))
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            if matches!(stat_of(*pid), Some(('Z' | 'X', _)) | None) {
                return false;
            }
            let mut at = *pid;
            for _ in 0..64 {
                match stat_of(at) {
                    Some((_, parent)) if parent == me => return true,
                    Some((_, parent)) if parent > 1 => at = parent,
                    _ => return false,
                }
            }
            false
        })
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let serving = cmdline.ends_with(b"plugins\0serve\0");
            let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (!serving).then(|| (pid, shown.trim().to_string()))
        })
        .collect()
}
