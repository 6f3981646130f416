//! Reading OpenCode's terminal screen: the fallback for a session whose status plugin has not
//! reported yet, the host's check of a reported wait, and the "is my message still in the input"
//! question after a typed message. Every pattern can be overridden in config
//! (`plugins.config.opencode.patterns`) when a release changes its drawing.
//!
//! Facts from OpenCode 1.18.33 in tmux (the screens under `tests/screens/`, 120x40 unless the
//! name says 80x24):
//! - starting: nothing at all for a few seconds, then the home screen: the logo and the input
//!   box; there is no start-up dialog (no trust question, no login when a provider is set);
//! - the input box is a block of lines starting with `┃` closed by a `╹▀▀▀…` line; its last `┃`
//!   line names the agent and the model ("Build · Stand-in model"); above it, what is typed, or
//!   on the home screen a placeholder ("Ask anything… \"Fix a TODO in the codebase\"");
//! - under the box, a footer: "esc interrupt" (after a moving `■⬝` bar) while a turn runs,
//!   otherwise only hints ("ctrl+p commands");
//! - in a pane wider than about 160 columns (tmux's default for a detached session is 200x50), a
//!   sidebar fills the right of the screen: the session's title, context, LSP, the folder and
//!   "• OpenCode 1.18.33", on the same lines as the input box; the box's bottom line ends where
//!   the sidebar starts;
//! - a permission prompt replaces the input box: "△ Permission required", the tool ("# Shell
//!   command"), the command, and the answers "Allow once   Allow always   Reject" (Enter picks
//!   the first); in an 80x24 pane the footer is gone.

use serde::Deserialize;

/// The texts the screen is matched against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenPatterns {
    /// The character every line of the input box (and of messages) starts with.
    pub box_side: char,
    /// Starts the line that closes the input box.
    pub box_bottom: String,
    /// Any of these in the footer under the input box means a turn is running.
    pub busy_phrases: Vec<String>,
    /// Any of these on screen (and no input box under it) means OpenCode asks the operator.
    pub question_phrases: Vec<String>,
    /// Starts the placeholder of an empty input box.
    pub placeholder: String,
}

impl Default for ScreenPatterns {
    fn default() -> Self {
        Self {
            box_side: '┃',
            box_bottom: "╹▀".into(),
            busy_phrases: vec!["esc interrupt".into()],
            question_phrases: vec!["Permission required".into()],
            placeholder: "Ask anything".into(),
        }
    }
}

/// The input box at the bottom of the screen.
struct InputBox<'a> {
    /// What is typed in it, line by line, without the box's side.
    typed: Vec<&'a str>,
    /// The first non-blank line under it.
    footer: Option<&'a str>,
}

impl ScreenPatterns {
    /// The last input box on screen: its bottom line, the agent line above it, and the typed
    /// lines above that up to the first line that is not part of the box.
    fn input_box<'a>(&self, output: &'a str) -> Option<InputBox<'a>> {
        let lines: Vec<&str> = output.lines().collect();
        let bottom = lines
            .iter()
            .rposition(|line| line.trim_start().starts_with(self.box_bottom.as_str()))?;
        let side = |line: &&str| line.trim_start().starts_with(self.box_side);
        let agent_line = bottom.checked_sub(1).filter(|&i| side(&lines[i]))?;
        let top = lines[..agent_line]
            .iter()
            .rposition(|line| !side(line))
            .map_or(0, |i| i + 1);
        // In a wide pane a sidebar (the session's title, context, LSP, the folder) shares the
        // box's lines, right of where the box's bottom line ends.
        let width = lines[bottom].trim_end().chars().count();
        let typed = lines[top..agent_line]
            .iter()
            .map(|line| {
                let inside = line
                    .char_indices()
                    .nth(width)
                    .map_or(*line, |(at, _)| &line[..at]);
                inside.trim_start()[self.box_side.len_utf8()..].trim()
            })
            .filter(|text| !text.is_empty())
            .collect();
        let footer = lines[bottom + 1..]
            .iter()
            .map(|line| line.trim())
            .find(|line| !line.is_empty());
        Some(InputBox { typed, footer })
    }

    /// A question to the operator (a permission prompt) in place of the input box.
    pub fn asks(&self, output: &str) -> bool {
        let after_box = match self.input_box(output) {
            // A question drawn in the message history above a live input box is answered.
            Some(_) => return false,
            None => output,
        };
        self.question_phrases
            .iter()
            .any(|phrase| after_box.contains(phrase.as_str()))
    }

    /// The input box is on screen: OpenCode takes a message.
    pub fn has_input_box(&self, output: &str) -> bool {
        self.input_box(output).is_some()
    }

    /// A turn is running: the footer under the input box says how to interrupt it.
    pub fn is_busy(&self, output: &str) -> bool {
        self.input_box(output)
            .and_then(|input| input.footer)
            .is_some_and(|footer| {
                self.busy_phrases
                    .iter()
                    .any(|phrase| footer.contains(phrase.as_str()))
            })
    }

    /// Text typed into the input box and not sent (the home screen's placeholder is not).
    pub fn has_pending_input(&self, output: &str) -> bool {
        self.input_box(output)
            .is_some_and(|input| match input.typed.as_slice() {
                [] => false,
                [only] => !only.starts_with(&self.placeholder),
                _ => true,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/screens")
            .join(format!("{name}.txt"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn nothing_drawn_yet_is_no_input_box() {
        let patterns = ScreenPatterns::default();
        let blank = screen("starting");
        assert!(!patterns.has_input_box(&blank));
        assert!(!patterns.asks(&blank));
        assert!(!patterns.has_pending_input(&blank));
    }

    #[test]
    fn the_home_screen_takes_input_and_its_placeholder_is_not_typed_text() {
        let patterns = ScreenPatterns::default();
        let home = screen("home");
        assert!(patterns.has_input_box(&home));
        assert!(!patterns.is_busy(&home));
        assert!(!patterns.has_pending_input(&home));
        assert!(patterns.has_pending_input(&screen("home-typed")));
    }

    #[test]
    fn a_running_turn_is_busy_and_a_finished_one_is_not() {
        let patterns = ScreenPatterns::default();
        let busy = screen("busy");
        assert!(patterns.has_input_box(&busy) && patterns.is_busy(&busy));
        assert!(!patterns.has_pending_input(&busy));
        for idle in ["idle", "after-first-turn", "rejected-80x24"] {
            let idle = screen(idle);
            assert!(patterns.has_input_box(&idle) && !patterns.is_busy(&idle));
            assert!(!patterns.has_pending_input(&idle));
            assert!(!patterns.asks(&idle));
        }
    }

    #[test]
    fn text_typed_under_history_is_pending_and_earlier_messages_are_not() {
        let patterns = ScreenPatterns::default();
        assert!(patterns.has_pending_input(&screen("typed-80x24")));
        // Earlier messages are drawn with the same side, above the box.
        assert!(!patterns.has_pending_input(&screen("idle")));
    }

    #[test]
    fn the_sidebar_of_a_wide_pane_is_not_typed_text() {
        let patterns = ScreenPatterns::default();
        for busy in ["wide-first-turn", "wide-busy"] {
            let busy = screen(busy);
            assert!(patterns.is_busy(&busy) && !patterns.has_pending_input(&busy));
        }
        let idle = screen("wide-idle");
        assert!(patterns.has_input_box(&idle) && !patterns.is_busy(&idle));
        assert!(!patterns.has_pending_input(&idle));
        assert!(patterns.has_pending_input(&screen("wide-typed")));
        let prompt = screen("wide-permission");
        assert!(patterns.asks(&prompt) && !patterns.has_pending_input(&prompt));
    }

    #[test]
    fn a_permission_prompt_asks_in_place_of_the_input_box() {
        let patterns = ScreenPatterns::default();
        for name in ["permission", "permission-80x24"] {
            let prompt = screen(name);
            assert!(patterns.asks(&prompt), "{name}");
            assert!(!patterns.has_input_box(&prompt), "{name}");
            assert!(!patterns.has_pending_input(&prompt), "{name}");
        }
    }
}
