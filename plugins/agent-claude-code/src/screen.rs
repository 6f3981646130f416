//! Reading Claude Code's terminal screen. Every pattern lives here, in [`ScreenPatterns`], and
//! each can be overridden in config (`plugins.config.claude-code.patterns`) when a CLI release
//! changes its wording, without a new plugin build.
//!
//! Facts from Claude Code 2.1.197 and 2.1.332 in tmux (the screens under `tests/screens/`; files
//! without a version suffix are 2.1.197, `-2.1.332` ones the newer release; `-80x24` ones were
//! captured in an 80x24 pane, the turn/prompt screens without a size suffix at 200x50):
//! - idle: a line starting with `❯` + NO-BREAK SPACE between two full-width `─` rules; the footer
//!   under it varies by mode, so it is not relied on;
//! - busy: the input box stays on screen while Claude works. Above it, a live spinner line: a
//!   glyph (`✻`, `✶`, `✢`, `·`, …), a verb ending in `…` and a timer ("✻ Brewing… (3s · ↓ 1
//!   tokens)"), often followed by "⎿ Tip: …" lines; the footer says "esc to interrupt". While the
//!   API is retried the spinner line reads "✻ Unable to connect to API … · Retrying in 2s";
//! - finished turn: the same glyph starts the turn's summary right above the box, but as
//!   "<verb> for <duration>" ("✻ Brewed for 0s", 2.1.332: "✻ Baked for 0s · done 7:16 AM"), and
//!   the footer has no "esc to interrupt";
//! - tool permission prompt: replaces the input box (no `❯` + NO-BREAK SPACE line): a `─` rule,
//!   "Bash command", the command (2.1.332: between `╌` rules) and its description, then "Do you
//!   want to proceed?" and numbered options marked with `❯` + ordinary space;
//! - start-up dialogs ("trust this folder", "Detected a custom API key", the bypass-permissions
//!   warning) sit where the prompt would be and wait for a key.

use serde::Deserialize;

/// The texts the screen is matched against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenPatterns {
    /// Starts the input line.
    pub prompt: String,
    /// The character of the horizontal rules around the input line.
    pub rule: char,
    /// A line starting with one of these means Claude is working.
    pub busy_prefixes: Vec<String>,
    /// Any of these anywhere on screen means Claude is working.
    pub busy_phrases: Vec<String>,
    /// A spinner line whose first word ends with this is live work ("✻ Brewing… (3s)").
    pub busy_word_suffix: String,
    /// A spinner line whose first word is followed by this and a digit is a finished turn's
    /// summary ("✻ Brewed for 0s", "✻ Baked for 0s · done 7:16 AM"), not work in progress.
    pub turn_summary_infix: String,
    /// The question of a tool permission prompt ("Do you want to proceed?"), or the heading of
    /// another prompt that stops a tool call until the operator answers (2.1.332's "Auto mode
    /// can't check actions in this session").
    pub permission_questions: Vec<String>,
    /// The character of the dashed rules around the command in a permission prompt (2.1.332).
    pub command_rule: char,
    /// Lines the idle input box may have under it (its footer); with more, something else is
    /// drawn below it (a prompt of a kind not listed above) and the agent is not idle.
    pub max_footer_lines: usize,
    /// "Do you trust this folder?"
    pub trust_dialog: Vec<String>,
    /// "Detected a custom API key"
    pub api_key_dialog: Vec<String>,
    /// The warning shown before `--dangerously-skip-permissions` takes effect.
    pub bypass_dialog: Vec<String>,
    /// Claude refusing to skip permissions as root.
    pub root_refusal: Vec<String>,
    /// Text shown instead of a large paste (`[Pasted text #1 +4 lines]`).
    pub paste_placeholder: String,
    /// Marks the selected option of a dialog.
    pub selection_marker: String,
    /// The trust dialog's option that trusts the folder (its position differs between releases:
    /// first in 2.1.197, second in 2.1.332).
    pub trust_option: String,
    /// The bypass-permissions warning's option that accepts it.
    pub bypass_option: String,
}

impl Default for ScreenPatterns {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Self {
            prompt: "❯\u{a0}".into(),
            rule: '─',
            busy_prefixes: strings(&["✻", "✶", "✳", "✢", "✽", "·"]),
            busy_phrases: strings(&["esc to interrupt"]),
            busy_word_suffix: "…".into(),
            turn_summary_infix: " for ".into(),
            // The prompts' own questions, as the 2.1.197 binary spells them.
            max_footer_lines: 4,
            permission_questions: strings(&[
                "Do you want to proceed?",
                "Do you want to make this edit to",
                "Do you want to create",
                "Do you want to allow Claude to fetch this content?",
                "Do you want to allow this connection?",
                "Auto mode can't check actions in this session",
            ]),
            command_rule: '╌',
            trust_dialog: strings(&["trust this folder", "Do you trust the files in this folder"]),
            api_key_dialog: strings(&["Detected a custom API key"]),
            bypass_dialog: strings(&["Bypass Permissions mode"]),
            root_refusal: strings(&["cannot be used with root/sudo privileges"]),
            paste_placeholder: "[Pasted text #".into(),
            selection_marker: "❯".into(),
            trust_option: "Yes, I trust this folder".into(),
            bypass_option: "Yes, I accept".into(),
        }
    }
}

/// A start-up dialog in the way of the prompt. Tool permission prompts are not among them: see
/// [`ScreenPatterns::permission_question`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    TrustFolder,
    ApiKey,
    BypassWarning,
    RootRefusal,
}

impl ScreenPatterns {
    fn contains_any(screen: &str, needles: &[String]) -> bool {
        needles
            .iter()
            .any(|n| !n.is_empty() && screen.contains(n.as_str()))
    }

    fn is_rule_of(line: &str, rule: char) -> bool {
        let line = line.trim();
        line.chars().count() >= 10 && line.chars().all(|c| c == rule)
    }

    fn is_rule(&self, line: &str) -> bool {
        Self::is_rule_of(line, self.rule)
    }

    /// The last input box on screen: (index of its top rule, index of the prompt line).
    fn input_box(&self, lines: &[&str]) -> Option<(usize, usize)> {
        (1..lines.len().saturating_sub(1))
            .rev()
            .find(|&i| {
                lines[i].trim_start().starts_with(self.prompt.as_str())
                    && self.is_rule(lines[i - 1])
                    && lines[i + 1..].iter().take(4).any(|l| self.is_rule(l))
            })
            .map(|i| (i - 1, i))
    }

    /// Whether the input box is the last thing on screen, under it only its footer: what an idle
    /// agent shows. A box with more under it is history above something else.
    pub fn input_box_is_last(&self, screen: &str) -> bool {
        let lines: Vec<&str> = screen.lines().collect();
        let Some((_, prompt)) = self.input_box(&lines) else {
            return false;
        };
        let Some(bottom) = (prompt + 1..lines.len()).find(|&i| self.is_rule(lines[i])) else {
            return false;
        };
        lines[bottom + 1..]
            .iter()
            .filter(|l| !l.trim().is_empty())
            .count()
            <= self.max_footer_lines
    }

    /// The text after the prompt marker on the input line, if the input box is on screen.
    pub fn input_line<'a>(&self, screen: &'a str) -> Option<&'a str> {
        let lines: Vec<&str> = screen.lines().collect();
        let (_, prompt) = self.input_box(&lines)?;
        lines[prompt]
            .trim_start()
            .strip_prefix(self.prompt.as_str())
    }

    /// A dialog waiting for a key. Dialogs replace the input box, so with a box on screen any
    /// dialog text above it is scrollback and does not count.
    pub fn dialog(&self, screen: &str) -> Option<Dialog> {
        let lines: Vec<&str> = screen.lines().collect();
        if self.input_box(&lines).is_some() {
            return None;
        }
        if Self::contains_any(screen, &self.root_refusal) {
            Some(Dialog::RootRefusal)
        } else if Self::contains_any(screen, &self.trust_dialog) {
            Some(Dialog::TrustFolder)
        } else if Self::contains_any(screen, &self.api_key_dialog) {
            Some(Dialog::ApiKey)
        } else if Self::contains_any(screen, &self.bypass_dialog) {
            Some(Dialog::BypassWarning)
        } else {
            None
        }
    }

    /// What follows the spinner glyph and its space, if `line` starts with one.
    fn after_spinner<'a>(&self, line: &'a str) -> Option<&'a str> {
        let line = line.trim_start();
        self.busy_prefixes
            .iter()
            .filter(|p| !p.is_empty())
            .find_map(|p| line.strip_prefix(p.as_str())?.strip_prefix(' '))
    }

    fn is_spinner_line(&self, line: &str) -> bool {
        self.after_spinner(line).is_some()
    }

    /// "✻ Brewed for 0s": one word, the infix, a digit.
    fn is_turn_summary(&self, line: &str) -> bool {
        let infix = self.turn_summary_infix.as_str();
        let Some(rest) = self.after_spinner(line) else {
            return false;
        };
        !infix.is_empty()
            && rest.find(infix).is_some_and(|at| {
                !rest[..at].contains(char::is_whitespace)
                    && rest[at + infix.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
    }

    /// "✻ Brewing… (3s · ↓ 1 tokens)": the first word ends with the busy suffix.
    fn is_live_spinner(&self, line: &str) -> bool {
        let suffix = self.busy_word_suffix.as_str();
        self.after_spinner(line).is_some_and(|rest| {
            !suffix.is_empty()
                && rest
                    .split_whitespace()
                    .next()
                    .is_some_and(|word| word.ends_with(suffix))
        })
    }

    /// A spinner line that is not a finished turn's summary.
    fn is_working_line(&self, line: &str) -> bool {
        self.is_spinner_line(line) && !self.is_turn_summary(line)
    }

    /// Whether Claude is working: "esc to interrupt" in the footer, a spinner line (not a
    /// finished turn's "✻ Brewed for 0s") right above the input box, or a live "✻ Brewing…"
    /// spinner among the few lines above it (tips and notices come between). Only the live part
    /// of the screen counts: scrollback holds finished turns' summaries ("✻ Worked for 12s").
    pub fn is_busy(&self, screen: &str) -> bool {
        /// Non-empty lines above the box searched for a live spinner.
        const LIVE_LINES: usize = 6;
        let lines: Vec<&str> = screen.lines().collect();
        match self.input_box(&lines) {
            Some((top, prompt)) => {
                let footer = lines[prompt + 1..].join("\n");
                let above = lines[..top].iter().rev().filter(|l| !l.trim().is_empty());
                Self::contains_any(&footer, &self.busy_phrases)
                    || above
                        .clone()
                        .next()
                        .is_some_and(|l| self.is_working_line(l))
                    || above
                        .take(LIVE_LINES)
                        .take_while(|l| !l.trim_start().starts_with(self.selection_marker.as_str()))
                        .any(|l| self.is_live_spinner(l))
            }
            None => {
                let recent = &lines[lines.len().saturating_sub(10)..];
                recent.iter().any(|l| self.is_working_line(l))
                    || Self::contains_any(&recent.join("\n"), &self.busy_phrases)
            }
        }
    }

    /// The question of a tool permission prompt waiting for the operator, with the tool and
    /// command it is about: "Do you want to proceed? (Bash command: echo hi > out.txt)". `None`
    /// when the input box is on screen (the prompt replaces it) or no question is below the last
    /// `─` rule. Also answers for 2.1.332's "Auto mode can't check actions in this session"
    /// choice, which likewise holds a tool call until the operator answers. Start-up dialogs are
    /// [`Self::dialog`]'s.
    pub fn permission_question(&self, screen: &str) -> Option<String> {
        let lines: Vec<&str> = screen.lines().collect();
        let start = lines
            .iter()
            .rposition(|l| self.is_rule(l))
            .map_or(0, |i| i + 1);
        let at = start
            + lines[start..]
                .iter()
                .rposition(|l| Self::contains_any(l, &self.permission_questions))?;
        // An input box below the question means it was answered; one above it is scrollback
        // (a terminal that keeps cleared screens in its history).
        if self.input_box(&lines).is_some_and(|(top, _)| top > at) {
            return None;
        }
        let question = lines[at].trim();
        // Above the question: the tool ("Bash command"), then its command and description.
        let body: Vec<&str> = lines[start..at]
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        let Some((&title, rest)) = body.split_first() else {
            return Some(question.to_string());
        };
        let dashed: Vec<usize> = (0..rest.len())
            .filter(|&i| Self::is_rule_of(rest[i], self.command_rule))
            .collect();
        let command = match dashed[..] {
            // 2.1.332: the command between two dashed rules.
            [first, second, ..] => rest[first + 1..second].join("\n"),
            // 2.1.197: the command first, its description under it.
            _ => rest
                .iter()
                .find(|l| !Self::is_rule_of(l, self.command_rule))
                .map_or(String::new(), |l| l.to_string()),
        };
        Some(if command.is_empty() {
            format!("{question} ({title})")
        } else {
            format!("{question} ({title}: {command})")
        })
    }

    /// Keys that move a dialog's selection onto the option containing `wanted` and confirm it,
    /// read off the screen rather than assumed, since releases reorder options. `None` when the
    /// option or the selection is not on screen.
    pub fn choose_option(&self, screen: &str, wanted: &str) -> Option<Vec<String>> {
        const MAX_MOVES: usize = 8;
        let lines: Vec<&str> = screen.lines().collect();
        let target = lines.iter().rposition(|l| l.contains(wanted))?;
        let selected = lines
            .iter()
            .rposition(|l| l.trim_start().starts_with(self.selection_marker.as_str()))?;
        let (key, moves) = if target >= selected {
            ("Down", target - selected)
        } else {
            ("Up", selected - target)
        };
        if moves > MAX_MOVES {
            return None;
        }
        let mut keys = vec![key.to_string(); moves];
        keys.push("Enter".into());
        Some(keys)
    }

    /// Whether the input line holds text (typed, pasted, or a paste placeholder).
    pub fn has_pending_input(&self, screen: &str) -> bool {
        self.input_line(screen)
            .is_some_and(|rest| !rest.trim().is_empty() || rest.contains(&self.paste_placeholder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(name: &str) -> String {
        let path = format!("{}/tests/screens/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn idle_screen_has_an_empty_input_line_and_no_busy_marker() {
        let p = ScreenPatterns::default();
        let idle = screen("idle.txt");
        assert_eq!(p.input_line(&idle).map(str::trim), Some(""));
        assert!(!p.is_busy(&idle));
        assert!(!p.has_pending_input(&idle));
        assert_eq!(p.dialog(&idle), None);
    }

    #[test]
    fn a_pasted_but_unsubmitted_message_is_pending_input() {
        let p = ScreenPatterns::default();
        let pasted = screen("pasted.txt");
        assert!(p.has_pending_input(&pasted));
        assert!(!p.is_busy(&pasted));
    }

    #[test]
    fn a_submitted_message_makes_the_screen_busy_even_though_a_prompt_shows() {
        let p = ScreenPatterns::default();
        let busy = screen("busy.txt");
        assert!(p.is_busy(&busy));
        assert!(!p.has_pending_input(&busy));
    }

    #[test]
    fn each_start_up_dialog_is_recognised() {
        let p = ScreenPatterns::default();
        assert_eq!(
            p.dialog(&screen("trust-dialog.txt")),
            Some(Dialog::TrustFolder)
        );
        assert_eq!(
            p.dialog(&screen("api-key-dialog.txt")),
            Some(Dialog::ApiKey)
        );
        assert_eq!(
            p.dialog(&screen("bypass-dialog.txt")),
            Some(Dialog::BypassWarning)
        );
        assert_eq!(
            p.dialog(&screen("root-refusal.txt")),
            Some(Dialog::RootRefusal)
        );
        for name in [
            "trust-dialog.txt",
            "api-key-dialog.txt",
            "bypass-dialog.txt",
        ] {
            assert_eq!(p.input_line(&screen(name)), None, "{name}");
        }
    }

    #[test]
    fn the_trust_option_is_chosen_wherever_the_release_puts_it() {
        let p = ScreenPatterns::default();
        let old = screen("trust-dialog.txt");
        assert_eq!(
            p.choose_option(&old, &p.trust_option),
            Some(vec!["Enter".to_string()])
        );
        let new = screen("trust-dialog-2.1.332.txt");
        assert_eq!(p.dialog(&new), Some(Dialog::TrustFolder));
        assert_eq!(
            p.choose_option(&new, &p.trust_option),
            Some(vec!["Down".to_string(), "Enter".to_string()])
        );
        let bypass = screen("bypass-dialog.txt");
        assert_eq!(
            p.choose_option(&bypass, &p.bypass_option),
            Some(vec!["Down".to_string(), "Enter".to_string()])
        );
        assert_eq!(p.choose_option(&screen("idle.txt"), "Yes, I trust"), None);
    }

    #[test]
    fn the_newer_release_idle_screen_is_ready() {
        let p = ScreenPatterns::default();
        let idle = screen("idle-2.1.332.txt");
        assert_eq!(p.input_line(&idle).map(str::trim), Some(""));
        assert!(!p.is_busy(&idle));
    }

    #[test]
    fn scrollback_does_not_count_once_the_input_box_is_back() {
        let p = ScreenPatterns::default();
        let idle = screen("idle.txt");
        let history = format!(
            "{}\n✻ Worked for 12s\nSome answer text.\n{idle}",
            screen("trust-dialog.txt")
        );
        assert_eq!(p.dialog(&history), None);
        assert!(!p.is_busy(&history));
        assert!(p.is_busy(&screen("busy.txt")));
    }

    #[test]
    fn a_prompt_outside_the_input_box_is_not_the_input_line() {
        let p = ScreenPatterns::default();
        assert_eq!(p.input_line("❯\u{a0}hello\nplain text\n"), None);
    }

    const FINISHED: [&str; 4] = [
        "finished-turn.txt",
        "finished-turn-80x24.txt",
        "finished-turn-2.1.332.txt",
        "finished-turn-80x24-2.1.332.txt",
    ];
    const BUSY: [&str; 4] = [
        "busy-slow-reply.txt",
        "busy-slow-reply-80x24.txt",
        "busy-slow-reply-2.1.332.txt",
        "busy-slow-reply-80x24-2.1.332.txt",
    ];
    const PERMISSION: [&str; 4] = [
        "permission-prompt.txt",
        "permission-prompt-80x24.txt",
        "permission-prompt-2.1.332.txt",
        "permission-prompt-80x24-2.1.332.txt",
    ];

    #[test]
    fn a_finished_turn_is_idle_although_its_summary_starts_with_a_spinner_glyph() {
        let p = ScreenPatterns::default();
        for name in FINISHED
            .iter()
            .chain(&["interrupted-turn.txt", "interrupted-turn-2.1.332.txt"])
        {
            let finished = screen(name);
            assert!(!p.is_busy(&finished), "{name}");
            assert_eq!(p.input_line(&finished).map(str::trim), Some(""), "{name}");
            assert!(!p.has_pending_input(&finished), "{name}");
            assert_eq!(p.dialog(&finished), None, "{name}");
            assert_eq!(p.permission_question(&finished), None, "{name}");
        }
        assert!(p.is_turn_summary("✻ Brewed for 0s"));
        assert!(p.is_turn_summary("✻ Baked for 0s · done 7:16 AM"));
        assert!(p.is_turn_summary("✻ Sautéed for 1m 12s"));
        assert!(!p.is_turn_summary("✻ Brewing… (3s · ↓ 1 tokens)"));
        assert!(!p.is_turn_summary(
            "✻ Unable to connect to API (ConnectionRefused) · Retrying in 2s · attempt 2/10"
        ));
    }

    #[test]
    fn a_slow_reply_is_busy_with_the_input_box_on_screen() {
        let p = ScreenPatterns::default();
        for name in BUSY {
            let busy = screen(name);
            assert!(p.is_busy(&busy), "{name}");
            assert_eq!(p.input_line(&busy).map(str::trim), Some(""), "{name}");
            assert_eq!(p.dialog(&busy), None, "{name}");
            assert_eq!(p.permission_question(&busy), None, "{name}");
        }
    }

    #[test]
    fn the_live_spinner_counts_even_without_the_footer_phrase() {
        let p = ScreenPatterns {
            busy_phrases: Vec::new(),
            ..ScreenPatterns::default()
        };
        for name in BUSY {
            assert!(p.is_busy(&screen(name)), "{name}");
        }
        for name in FINISHED {
            assert!(!p.is_busy(&screen(name)), "{name}");
        }
    }

    #[test]
    fn a_permission_prompt_is_a_question_not_work_nor_a_start_up_dialog() {
        let p = ScreenPatterns::default();
        for name in PERMISSION {
            let prompt = screen(name);
            assert_eq!(
                p.permission_question(&prompt).as_deref(),
                Some(
                    "Do you want to proceed? (Bash command: echo fixture-tool-ran > \
                     /tmp/research/fixture-out.txt)"
                ),
                "{name}"
            );
            assert_eq!(p.dialog(&prompt), None, "{name}");
            assert_eq!(p.input_line(&prompt), None, "{name}");
            assert!(!p.is_busy(&prompt), "{name}");
        }
        assert_eq!(
            p.choose_option(&screen("permission-prompt.txt"), "3. No"),
            Some(vec!["Down".into(), "Down".into(), "Enter".into()])
        );
    }

    /// As `session ls` reads it: with history above, where the task was echoed.
    #[test]
    fn a_permission_prompt_under_history_is_still_the_question() {
        let p = ScreenPatterns::default();
        let prompt = screen("permission-prompt-with-history-2.1.332.txt");
        assert_eq!(
            p.permission_question(&prompt).as_deref(),
            Some("Do you want to proceed? (Bash command: echo granted > approved.txt)")
        );
    }

    #[test]
    fn an_idle_box_is_last_on_screen_and_one_under_history_is_not() {
        let p = ScreenPatterns::default();
        for name in [
            "idle.txt",
            "idle-2.1.332.txt",
            "finished-turn.txt",
            "finished-turn-2.1.332.txt",
            // A refused permission prompt: the turn is over, the box is back.
            "interrupted-turn.txt",
            "interrupted-turn-2.1.332.txt",
        ] {
            assert!(p.input_box_is_last(&screen(name)), "{name}");
        }
        // An unknown prompt drawn under an old box (a terminal keeping cleared screens).
        let under = format!(
            "{}\n Edit file\n src/main.rs\n  1 - old\n  1 + new\n Do you like it?\n ❯ 1. Yes\n   2. No\n",
            screen("idle.txt")
        );
        assert!(!p.input_box_is_last(&under));
        assert!(!p.input_box_is_last(&screen("permission-prompt.txt")));
    }

    #[test]
    fn the_newer_releases_auto_mode_prompts_are_questions_too() {
        let p = ScreenPatterns::default();
        let fallback = screen("permission-prompt-auto-mode-2.1.332.txt");
        assert_eq!(
            p.permission_question(&fallback).as_deref(),
            Some(
                "Do you want to proceed? (Bash command: echo hello-332 > \
                 /tmp/research/tool-ran-332.txt)"
            )
        );
        assert!(!p.is_busy(&fallback));
        let dialog = screen("auto-mode-dialog-2.1.332.txt");
        assert_eq!(
            p.permission_question(&dialog).as_deref(),
            Some("Auto mode can't check actions in this session")
        );
        assert_eq!(p.dialog(&dialog), None);
        assert!(!p.is_busy(&dialog));
    }

    #[test]
    fn start_up_dialogs_and_idle_screens_are_no_permission_question() {
        let p = ScreenPatterns::default();
        for name in [
            "idle.txt",
            "idle-2.1.332.txt",
            "busy.txt",
            "pasted.txt",
            "trust-dialog.txt",
            "trust-dialog-2.1.332.txt",
            "api-key-dialog.txt",
            "bypass-dialog.txt",
            "root-refusal.txt",
        ] {
            assert_eq!(p.permission_question(&screen(name)), None, "{name}");
        }
    }

    #[test]
    fn the_new_patterns_can_be_overridden_in_config() {
        let p: ScreenPatterns = serde_yaml::from_str(
            "permission_questions: [\"Proceed?\"]\nturn_summary_infix: \" took \"\nbusy_word_suffix: \"...\"\ncommand_rule: \"=\"\n",
        )
        .unwrap();
        assert_eq!(p.permission_questions, ["Proceed?"]);
        assert_eq!(
            p.permission_question(&screen("permission-prompt.txt")),
            None
        );
        assert!(p.is_turn_summary("✻ Brewed took 3s"));
        assert!(!p.is_turn_summary("✻ Brewed for 3s"));
        assert!(p.is_live_spinner("✻ Brewing... (3s)"));
        assert_eq!(p.command_rule, '=');
        assert_eq!(p.prompt, ScreenPatterns::default().prompt);
    }
}
