//! Reading Claude Code's terminal screen. Every pattern lives here, in [`ScreenPatterns`], and
//! each can be overridden in config (`plugins.config.claude-code.patterns`) when a CLI release
//! changes its wording, without a new plugin build.
//!
//! Facts from Claude Code 2.1.197 in tmux (the screens under `tests/screens/`):
//! - idle: a line starting with `❯` + NO-BREAK SPACE between two full-width `─` rules; the footer
//!   under it varies by mode, so it is not relied on;
//! - busy: a line starting with a spinner glyph (`✻`, `✶`, …) or "esc to interrupt" in the footer;
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

/// A dialog in the way of the prompt.
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

    fn is_rule(&self, line: &str) -> bool {
        let line = line.trim();
        line.chars().count() >= 10 && line.chars().all(|c| c == self.rule)
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

    fn is_spinner_line(&self, line: &str) -> bool {
        let line = line.trim_start();
        self.busy_prefixes
            .iter()
            .any(|p| !p.is_empty() && line.starts_with(&format!("{p} ")))
    }

    /// Whether Claude is working: "esc to interrupt" in the footer, or a spinner line right
    /// above the input box. Only the live part of the screen counts: scrollback holds finished
    /// turns' spinner summaries ("✻ Worked for 12s").
    pub fn is_busy(&self, screen: &str) -> bool {
        let lines: Vec<&str> = screen.lines().collect();
        match self.input_box(&lines) {
            Some((top, prompt)) => {
                let footer = lines[prompt + 1..].join("\n");
                Self::contains_any(&footer, &self.busy_phrases)
                    || lines[..top]
                        .iter()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .is_some_and(|l| self.is_spinner_line(l))
            }
            None => {
                let recent = &lines[lines.len().saturating_sub(10)..];
                recent.iter().any(|l| self.is_spinner_line(l))
                    || Self::contains_any(&recent.join("\n"), &self.busy_phrases)
            }
        }
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
}
