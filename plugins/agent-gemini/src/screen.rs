//! Reading Gemini CLI's terminal screen, the fallback for what its hooks do not say (a session
//! with no event yet, a refused permission prompt, a message left in the input box).
//!
//! Facts from Gemini CLI 0.61.0 in tmux (the screens under `tests/screens/`, 120x40):
//! - the input box: a full-width `─` rule, a mode line ("Shift+Tab to accept edits"), a blank
//!   line, the prompt line, a blank line, drawn on a grey background (with `COLORTERM=truecolor`,
//!   which the plugin sets, between `▄` and `▀` rules instead); then the footer (workspace,
//!   sandbox, model: two lines). The prompt line starts with `>` (`!` in shell mode, `*` in yolo
//!   mode, `(r:)` while searching) and, when empty, shows a placeholder ("Type your message or
//!   @path/to/file"). Text typed or pasted but not submitted stays after the `>`;
//! - busy: above the rule a status line with a braille spinner (`⠋`…`⠏`) and what it does
//!   ("Executing Hook: ao-host", a thought) and "(esc to cancel, 3s)"; the box stays on screen;
//! - a finished turn: the same layout with no spinner (the last hooks' names stay shown for a
//!   second without one);
//! - tool permission prompt: a rounded box replacing the input box, with the tool and command,
//!   the question ("Allow execution of [Shell]?", "Apply this change?", "Do you want to
//!   proceed?", "Allow execution of MCP tool …") and numbered options ("● 1. Allow once");
//! - start-up dialogs also replace the box: "Do you trust the files in this folder?" (options
//!   "1. Trust folder (<name>)", "2. Trust parent folder", "3. Don't trust"; the selected one
//!   marked `●`) and "How would you like to authenticate for this project?".

/// Characters that start the input line.
const PROMPT_GLYPHS: [&str; 4] = [">", "!", "*", "(r:)"];
/// What an empty input line shows.
const PLACEHOLDERS: [&str; 4] = [
    "Type your message",
    "Type your shell command",
    "Press 'Esc' for NORMAL mode",
    "Press 'i' for INSERT mode",
];
/// Lines between the rule and the prompt line (the mode line, a blank line), at most.
const MAX_LINES_ABOVE_PROMPT: usize = 4;
/// Lines the idle input box may have under its prompt line (its footer), at most.
const MAX_FOOTER_LINES: usize = 4;
/// The questions of tool permission prompts, and the option every one of them offers.
const PERMISSION_QUESTIONS: [&str; 3] = [
    "Allow execution of",
    "Apply this change?",
    "Do you want to proceed?",
];
const PERMISSION_OPTION: &str = "Allow once";
const BUSY_PHRASE: &str = "esc to cancel";
/// The banner's title: drawn once the CLI is initialised (the plugin keeps it shown).
const BANNER: &str = "Gemini CLI v";
/// What starts a line of the conversation's history: the operator's message, a reply, a note,
/// a tool's box.
const HISTORY_MARKS: [&str; 4] = [">", "✦", "ℹ", "╭"];
const TRUST_DIALOG: &str = "Do you trust the files in this folder?";
const TRUST_OPTION: &str = "Trust folder";
const AUTH_DIALOG: &str = "How would you like to authenticate";
const SELECTED: char = '●';

/// A start-up dialog in the way of the input box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    TrustFolder { trust_selected: bool },
    Auth,
}

pub struct Screen<'a> {
    lines: Vec<&'a str>,
}

fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.chars().count() >= 10 && line.chars().all(|c| c == '─')
}

/// A braille spinner frame and a space start the line.
fn is_spinner_line(line: &str) -> bool {
    let mut chars = line.trim_start().chars();
    matches!(chars.next(), Some('\u{2801}'..='\u{28ff}')) && chars.next() == Some(' ')
}

impl<'a> Screen<'a> {
    pub fn new(output: &'a str) -> Self {
        Self {
            lines: output.lines().collect(),
        }
    }

    /// The last input box: (index of its rule, index of its prompt line, the prompt line's text
    /// after the glyph).
    fn input_box(&self) -> Option<(usize, usize, &'a str)> {
        let rule = (0..self.lines.len())
            .rev()
            .find(|&i| is_rule(self.lines[i]))?;
        (rule + 1..self.lines.len())
            .take(MAX_LINES_ABOVE_PROMPT)
            .find_map(|i| {
                let line = self.lines[i].trim_start();
                PROMPT_GLYPHS.iter().find_map(|glyph| {
                    let rest = line.strip_prefix(glyph)?;
                    (rest.is_empty() || rest.starts_with(' ')).then_some((rule, i, rest))
                })
            })
    }

    /// What the input line holds (empty or a placeholder when nothing was typed), if the input
    /// box is on screen.
    pub fn input_line(&self) -> Option<&'a str> {
        self.input_box().map(|(_, _, text)| text.trim())
    }

    /// Text typed or pasted into the input box and not submitted.
    pub fn has_pending_input(&self) -> bool {
        self.input_line().is_some_and(|text| {
            !text.is_empty() && !PLACEHOLDERS.iter().any(|p| text.starts_with(p))
        })
    }

    /// Whether the input box is the last thing on screen, under it only its footer: what an idle
    /// agent shows.
    pub fn input_box_is_last(&self) -> bool {
        let Some((_, prompt, _)) = self.input_box() else {
            return false;
        };
        self.lines[prompt + 1..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .count()
            <= MAX_FOOTER_LINES
    }

    /// A turn in progress: a spinner line or "esc to cancel" above the input box.
    pub fn is_busy(&self) -> bool {
        let end = self
            .input_box()
            .map_or(self.lines.len(), |(rule, _, _)| rule);
        self.lines[..end]
            .iter()
            .rev()
            .take(6)
            .any(|line| is_spinner_line(line) || line.contains(BUSY_PHRASE))
    }

    /// Whether the CLI is done starting: the input box shows under the banner or a conversation,
    /// and no turn runs. Before its configuration is loaded the CLI draws the input box alone,
    /// and a paste it takes then shows late, after the host looked for it.
    pub fn is_settled(&self) -> bool {
        let Some((rule, _, _)) = self.input_box() else {
            return false;
        };
        let above = &self.lines[..rule];
        let drawn = above.iter().any(|line| {
            let line = line.trim_start();
            line.contains(BANNER) || HISTORY_MARKS.iter().any(|mark| line.starts_with(mark))
        });
        drawn && !self.is_busy()
    }

    /// The question of a tool permission prompt on screen. Such a prompt replaces the input box,
    /// so with a box on screen, a question above it is history.
    pub fn permission_question(&self) -> Option<&'a str> {
        if self.input_box().is_some() {
            return None;
        }
        let find = |needles: &[&str]| {
            self.lines.iter().rev().find_map(|line| {
                needles
                    .iter()
                    .any(|needle| line.contains(needle))
                    .then(|| line.trim().trim_matches('│').trim())
            })
        };
        find(&PERMISSION_QUESTIONS).or_else(|| find(&[PERMISSION_OPTION]))
    }

    pub fn dialog(&self) -> Option<Dialog> {
        if self.input_box().is_some() {
            return None;
        }
        if self.lines.iter().any(|l| l.contains(TRUST_DIALOG)) {
            let trust_selected = self
                .lines
                .iter()
                .any(|l| l.contains(SELECTED) && l.contains(TRUST_OPTION));
            Some(Dialog::TrustFolder { trust_selected })
        } else if self.lines.iter().any(|l| l.contains(AUTH_DIALOG)) {
            Some(Dialog::Auth)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(name: &str) -> String {
        let path = format!("{}/tests/screens/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// (activity, pending input, dialog, permission question) as the readers see `name`.
    fn read(name: &str) -> (&'static str, bool, Option<Dialog>, Option<String>) {
        let text = screen(name);
        let screen = Screen::new(&text);
        let activity = if screen.dialog().is_some() || screen.permission_question().is_some() {
            "waiting_input"
        } else if screen.is_busy() {
            "working"
        } else if screen.input_box_is_last() {
            "idle"
        } else {
            "working"
        };
        (
            activity,
            screen.has_pending_input(),
            screen.dialog(),
            screen.permission_question().map(str::to_string),
        )
    }

    #[test]
    fn idle_screens() {
        for name in [
            "idle.txt",
            "finished-turn.txt",
            "refused-permission.txt",
            "after-tool.txt",
            "idle-truecolor.txt",
            "finished-turn-truecolor.txt",
        ] {
            let (activity, pending, dialog, question) = read(name);
            assert_eq!(activity, "idle", "{name}");
            assert!(!pending && dialog.is_none() && question.is_none(), "{name}");
        }
    }

    #[test]
    fn the_cli_is_settled_once_initialised_and_idle() {
        // The last hooks' names stay shown a moment after a turn (finished-turn.txt).
        for name in [
            "idle.txt",
            "finished-turn.txt",
            "refused-permission.txt",
            "pasted.txt",
        ] {
            assert!(Screen::new(&screen(name)).is_settled(), "{name}");
        }
        // The input box alone, before the configuration is loaded; a turn.
        for name in ["starting.txt", "busy-hooks.txt", "busy.txt"] {
            assert!(!Screen::new(&screen(name)).is_settled(), "{name}");
        }
        assert_eq!(read("starting.txt").0, "idle");
    }

    #[test]
    fn busy_screens() {
        for name in ["busy.txt", "busy-hooks.txt", "busy-truecolor.txt"] {
            let (activity, pending, _, _) = read(name);
            assert_eq!(activity, "working", "{name}");
            assert!(!pending, "{name}");
        }
    }

    #[test]
    fn a_pasted_message_whose_enter_was_dropped_is_pending() {
        let (_, pending, dialog, question) = read("pasted.txt");
        assert!(pending && dialog.is_none() && question.is_none());
        assert!(read("pasted-truecolor.txt").1);
        let text = screen("pasted.txt");
        assert!(Screen::new(&text)
            .input_line()
            .unwrap()
            .starts_with("now run"));
    }

    #[test]
    fn a_shell_command_permission_prompt_waits_and_takes_no_enter() {
        assert_eq!(read("permission-prompt-truecolor.txt").0, "waiting_input");
        let (activity, pending, dialog, question) = read("permission-prompt.txt");
        assert_eq!(activity, "waiting_input");
        assert!(!pending && dialog.is_none());
        assert_eq!(question.as_deref(), Some("Allow execution of [Shell]?"));
    }

    #[test]
    fn start_up_dialogs() {
        assert_eq!(
            read("trust-dialog.txt").2,
            Some(Dialog::TrustFolder {
                trust_selected: true
            })
        );
        assert_eq!(read("auth-dialog.txt").2, Some(Dialog::Auth));
    }

    #[test]
    fn hostile_and_empty_screens_are_read_without_panicking() {
        for text in [
            "",
            "\n\n",
            "─",
            ">",
            "│ Allow once",
            "⠋",
            "──────────\n>",
            "──────────\n> x",
        ] {
            let screen = Screen::new(text);
            let _ = (
                screen.is_busy(),
                screen.input_box_is_last(),
                screen.has_pending_input(),
                screen.dialog(),
                screen.permission_question(),
            );
        }
        let huge = format!("{}\n──────────\n > x\n", "⠋ y\n".repeat(100_000));
        assert!(Screen::new(&huge).has_pending_input());
    }
}
