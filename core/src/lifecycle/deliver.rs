//! Waiting for an agent to accept input and handing it a message, without fixed sleeps: the
//! runtime's screen is polled and the agent plugin says what it shows.

use std::time::{Duration, Instant};

use ao_plugin_api::{Activity, Readiness};

use crate::plugins::{AgentPlugin, PluginCallError, RuntimePlugin};

/// How much screen the agent plugin gets to read.
pub const SCREEN_LINES: u32 = 60;
const FIRST_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_millis(100);
/// How often an agent's own report is looked for while waiting for it.
const CHEAP_POLL: Duration = Duration::from_millis(2);
/// A start-up dialog is answered at most this many times before the spawn gives up.
const MAX_ANSWERS: usize = 5;
/// After answering a dialog, the same dialog is not answered again for this long: the agent may
/// still show it while it redraws, and a second answer could land on the next dialog instead.
const ANSWER_GRACE: Duration = Duration::from_secs(3);
/// A dialog is answered once it has sat unchanged this long: a TUI may draw a dialog before it
/// listens for keys, and a key that arrives too early is read as something else (Claude Code
/// took an early Enter for "don't trust this folder" and exited).
const DIALOG_SETTLE: Duration = Duration::from_millis(300);
/// How long to wait for a dialog to redraw after a key before pressing the next one anyway.
const KEY_REDRAW_LIMIT: Duration = Duration::from_secs(1);
/// How long a pasted message may sit before ao-host decides it is stuck.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the text must sit unchanged in the input before Enter is pressed again: long enough
/// for an agent to react to the first Enter, short enough not to keep the operator waiting.
const RESUBMIT_AFTER: Duration = Duration::from_millis(250);
/// How long an agent that shows its first message taken has to report it before its screen is
/// taken as the proof: its hooks run within milliseconds of the screen when they run at all.
pub(crate) const REPORT_GRACE: Duration = Duration::from_secs(2);
/// How much of a message's first line is looked for on the screen: short enough to fit on one
/// line of a narrow pane after the agent's marker.
const SHOWN_PREFIX_CHARS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    #[error("the agent exited before it was ready; its last output: {output}")]
    Exited { output: String },
    #[error("the agent is waiting for an answer: {reason}")]
    Blocked { reason: String },
    #[error("the agent was not ready after {} ms (defaults.ready_timeout_ms); its last output: {output}", waited.as_millis())]
    NotReady { waited: Duration, output: String },
    #[error("the message was pasted but the agent did not take it within {} s; its last output: {output}", SUBMIT_TIMEOUT.as_secs())]
    NotSubmitted { output: String },
    #[error("stopped by `ao-host session kill` or an interrupt while waiting for the agent")]
    Cancelled,
    #[error("the agent did not report taking its task within {} ms (defaults.ready_timeout_ms), nor showed it taken; its last output: {output}", waited.as_millis())]
    NotTaken { waited: Duration, output: String },
    #[error("the agent's hook could not record that it took its task: {error}; its last output: {output}")]
    HookFailed { error: String, output: String },
    #[error("the agent received its task altered: {difference}")]
    Altered { difference: String },
}

/// What [`wait_until_ready`] waits for.
pub(crate) enum WaitFor<'a> {
    /// The agent accepts input.
    Ready,
    /// The agent took its first message from its command line, as it reports through its
    /// events: `taken` returns the prompt it reported, once it has.
    FirstMessage {
        sent: &'a str,
        taken: &'a (dyn Fn() -> Option<String> + Sync),
    },
}

/// How a wait for the agent ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirmed {
    /// It accepts input ([`WaitFor::Ready`]).
    Ready,
    /// It reported taking its first message, unchanged.
    Reported,
    /// It reported nothing for [`REPORT_GRACE`] while its screen showed the first message
    /// taken (its hooks did not run): the message is delivered, but only the screen says so.
    OnScreen,
}

/// Whether `screen` shows `sent` submitted: a line of the agent's history that starts, after
/// the agent's marker (`❯`, `>`), with the start of the message's first line (whitespace
/// collapsed, as a terminal shows tabs and runs of spaces).
pub(crate) fn shows_message(screen: &str, sent: &str) -> bool {
    let collapsed = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let Some(first) = sent.lines().map(collapsed).find(|l| !l.is_empty()) else {
        return false;
    };
    let wanted: String = first.chars().take(SHOWN_PREFIX_CHARS).collect();
    let wanted = wanted.trim_end();
    screen.lines().any(|line| {
        let line = collapsed(line);
        let after_marker = match line.split_once(' ') {
            Some((marker, rest)) if !marker.chars().any(char::is_alphanumeric) => rest,
            _ => line.as_str(),
        };
        after_marker.starts_with(wanted)
    })
}

pub use ao_plugin_test::first_difference;

/// The last few non-blank lines of a screen, on one line, for error messages.
pub fn screen_tail(screen: &str) -> String {
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = &lines[lines.len().saturating_sub(4)..];
    if tail.is_empty() {
        "(nothing)".into()
    } else {
        tail.join(" | ")
    }
}

/// Sleeps a little longer each time, from 10 ms up to 100 ms: fast agents are noticed at once,
/// slow ones are not polled needlessly.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(FIRST_POLL)
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 3 / 2).min(MAX_POLL);
    }

    /// [`Backoff::wait`], ending early once `done` says so. `done` is asked every
    /// [`CHEAP_POLL`]: for what costs a file read (an agent's report) between screen polls,
    /// which cost runtime processes.
    async fn wait_or(&mut self, done: &(dyn Fn() -> bool + Sync)) {
        let until = Instant::now() + self.0;
        while Instant::now() < until && !done() {
            tokio::time::sleep(CHEAP_POLL).await;
        }
        self.0 = (self.0 * 3 / 2).min(MAX_POLL);
    }
}

/// Waits until the agent accepts input, or took its first message (`until`), answering start-up
/// dialogs the agent plugin knows the answer to. `cancelled` is asked on every poll: a kill must
/// not wait for a slow agent.
///
/// A first message the agent shows taken but never reports (hooks forbidden by a policy, or
/// failing) is confirmed from the screen after [`REPORT_GRACE`]: the agent has its task, and
/// a missing report must not cost it. Nothing is ever sent again either way.
pub(crate) async fn wait_until_ready(
    runtime: &RuntimePlugin,
    agent: &AgentPlugin,
    handle: &str,
    until: WaitFor<'_>,
    timeout: Duration,
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Result<Confirmed, DeliverError> {
    let started = Instant::now();
    let mut backoff = Backoff::new();
    let mut answers = 0;
    let mut last_answer: Option<(String, Instant)> = None;
    let mut unchanged: Option<(String, Instant)> = None;
    let mut seen_ready = false;
    // Since when the screen has shown the first message taken, unreported.
    let mut shown_since: Option<Instant> = None;
    loop {
        if cancelled() {
            return Err(DeliverError::Cancelled);
        }
        if let WaitFor::FirstMessage { sent, taken } = &until {
            if let Some(received) = taken() {
                return if received == *sent {
                    Ok(Confirmed::Reported)
                } else {
                    Err(DeliverError::Altered {
                        difference: first_difference(sent, &received),
                    })
                };
            }
        }
        if !runtime.is_alive(handle).await? {
            let output = runtime
                .capture_output(handle, SCREEN_LINES)
                .await
                .unwrap_or_default();
            return Err(DeliverError::Exited {
                output: screen_tail(&output),
            });
        }
        let screen = runtime.capture_output(handle, SCREEN_LINES).await?;
        let since = match &unchanged {
            Some((previous, since)) if *previous == screen => *since,
            _ => Instant::now(),
        };
        unchanged = Some((screen.clone(), since));
        match agent.is_ready(&screen).await? {
            Readiness::Ready => match &until {
                WaitFor::Ready => return Ok(Confirmed::Ready),
                WaitFor::FirstMessage { sent, .. } => {
                    seen_ready = true;
                    // Taken: shown submitted, or a question about a tool on screen, which
                    // only an agent at work on a message asks.
                    if shown_since.is_none()
                        && (shows_message(&screen, sent) && !agent.input_pending(&screen).await?
                            || agent.activity(&screen).await? == Activity::WaitingInput)
                    {
                        shown_since = Some(Instant::now());
                    }
                    if shown_since.is_some_and(|since| since.elapsed() >= REPORT_GRACE) {
                        return Ok(Confirmed::OnScreen);
                    }
                }
            },
            Readiness::Starting => {}
            Readiness::Blocked { reason, answer } => {
                if answer.is_empty() || answers >= MAX_ANSWERS {
                    return Err(DeliverError::Blocked {
                        reason: reason.into(),
                    });
                }
                let reason = reason.to_string();
                let just_answered = last_answer
                    .as_ref()
                    .is_some_and(|(r, at)| *r == reason && at.elapsed() < ANSWER_GRACE);
                if !just_answered && since.elapsed() >= DIALOG_SETTLE {
                    tracing::info!("answering start-up dialog with {answer:?}: {reason}");
                    let keys: Vec<&str> = answer.iter().map(|k| k.as_str()).collect();
                    press_one_by_one(runtime, handle, &keys, &screen).await?;
                    answers += 1;
                    last_answer = Some((reason, Instant::now()));
                }
            }
        }
        if started.elapsed() >= timeout {
            let output = screen_tail(&screen);
            // An agent that showed it was up but never reported its task is another problem
            // than one that never came up.
            return Err(if seen_ready {
                DeliverError::NotTaken {
                    waited: timeout,
                    output,
                }
            } else {
                DeliverError::NotReady {
                    waited: timeout,
                    output,
                }
            });
        }
        match &until {
            WaitFor::FirstMessage { taken, .. } => {
                backoff.wait_or(&|| cancelled() || taken().is_some()).await
            }
            WaitFor::Ready => backoff.wait().await,
        }
    }
}

/// Presses `keys` one at a time, waiting for the screen to change after each but the last: a
/// TUI that gets "Down" and "Enter" in one burst may confirm the option that was selected before
/// the Down was applied.
async fn press_one_by_one(
    runtime: &RuntimePlugin,
    handle: &str,
    keys: &[&str],
    screen: &str,
) -> Result<(), DeliverError> {
    let mut current = screen.to_string();
    for (i, key) in keys.iter().enumerate() {
        runtime.send_keys(handle, &[key]).await?;
        if i + 1 == keys.len() {
            break;
        }
        let started = Instant::now();
        let mut backoff = Backoff::new();
        while started.elapsed() < KEY_REDRAW_LIMIT {
            backoff.wait().await;
            let now = runtime.capture_output(handle, SCREEN_LINES).await?;
            if now != current {
                current = now;
                break;
            }
        }
    }
    Ok(())
}

/// Sends `text` and confirms the agent took it: if the text still sits in the input once the
/// screen has settled, Enter is pressed once more (never the text pasted twice). Refused while
/// the agent waits for an answer (a permission prompt, a question): the message's Enter would
/// answer it, and the message would be lost.
pub(crate) async fn deliver(
    runtime: &RuntimePlugin,
    agent: &AgentPlugin,
    handle: &str,
    text: &str,
) -> Result<(), DeliverError> {
    let before = runtime.capture_output(handle, SCREEN_LINES).await?;
    if agent.activity(&before).await? == Activity::WaitingInput {
        return Err(DeliverError::Blocked {
            reason: format!(
                "it shows a prompt or question ({}); a message typed now would answer it, so \
                 nothing was sent: answer it in the session (`ao-host attach`), then send again",
                screen_tail(&before)
            ),
        });
    }
    runtime.send_message(handle, text).await?;
    let started = Instant::now();
    let mut backoff = Backoff::new();
    // The pending screen and since when it has looked like that.
    let mut unchanged: Option<(String, Instant)> = None;
    let mut resubmitted = false;
    loop {
        let screen = runtime.capture_output(handle, SCREEN_LINES).await?;
        if !agent.input_pending(&screen).await? {
            return Ok(());
        }
        let since = match &unchanged {
            Some((previous, since)) if *previous == screen => *since,
            _ => Instant::now(),
        };
        if since.elapsed() >= RESUBMIT_AFTER && !resubmitted {
            tracing::info!("message still in the agent's input; pressing Enter again");
            runtime.send_keys(handle, &["Enter"]).await?;
            resubmitted = true;
        }
        if started.elapsed() >= SUBMIT_TIMEOUT {
            return Err(DeliverError::NotSubmitted {
                output: screen_tail(&screen),
            });
        }
        unchanged = Some((screen, since));
        backoff.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_difference_is_shown_where_it_starts() {
        let shown = first_difference("a\tb 🎉 rest", "a    b 🎉 rest");
        assert!(
            shown.starts_with("13 bytes sent, 16 received, first difference at byte 1"),
            "{shown}"
        );
        assert!(shown.contains(r#"sent "a\tb"#), "{shown}");
        // Cut on character boundaries, never inside the emoji.
        first_difference("🎉🎉🎉🎉🎉", "🎉🎉🎉🎉x");
    }

    #[test]
    fn a_message_shows_as_submitted_after_the_agents_marker_only() {
        let task = "\tfix the Makefile:\n\tcc -o app app.c\n";
        let history =
            "╭─── Claude Code ───╮\n\n❯ fix   the Makefile:\n    cc -o app app.c\n\n✻ Brewing…\n";
        assert!(shows_message(history, task));
        // Not the first line; not mid-sentence; not an empty task.
        assert!(!shows_message("❯ cc -o app app.c\n", task));
        assert!(!shows_message("❯ please fix the Makefile:\n", task));
        assert!(!shows_message("❯ anything\n", " \n"));
        // A long first line is looked for by its start, as a narrow pane wraps it.
        let long = format!("{} and more", "word ".repeat(20));
        assert!(shows_message(&format!("> {}\n", &long[..45]), &long));
    }

    #[test]
    fn screen_tail_keeps_the_last_four_non_blank_lines() {
        assert_eq!(screen_tail("a\n\nb\n c \nd\ne\n\n"), "b | c | d | e");
        assert_eq!(screen_tail("\n \n"), "(nothing)");
    }
}
