//! Reading Codex's terminal screen: the fallback when no hook has reported yet, and the check
//! the host makes on a session that has said for a while that it waits (refusing a command
//! fires no hook). Every pattern lives in [`ScreenPatterns`] and can be overridden in config
//! (`plugins.config.codex.patterns`) when a release changes its wording.
//!
//! Facts from Codex CLI 0.171.0 in tmux (the screens under `tests/screens/`, 120x40 and 80x24):
//! - the composer is the last line starting with `›` and a space; under it, only the continuation
//!   lines of a multi-line text, then a blank line and the footer (model · folder, and the key
//!   hints). Sent messages stay above it in the history, with the same `›`. An empty composer
//!   shows a placeholder ("Ask Codex to do anything"), which a plain capture cannot tell from
//!   typed text but by its wording;
//! - busy: "• Working (3s • esc to interrupt)" above the composer, which stays on screen;
//! - a finished turn: "Worked for 4s • 12:07" above an idle composer;
//! - a command approval: "Would you like to run the following command?", the command after `$`,
//!   numbered options (the selected one marked with `›`, so it looks like a composer line) and
//!   "Press enter to confirm or esc to cancel" at the bottom. Refusing it (Esc) ends the turn
//!   ("Conversation interrupted") and returns to an idle composer, with no hook at all;
//! - start-up dialogs: "Trust this folder?" (option 1 "Trust and continue" selected), "Hooks need
//!   review" (hooks whose trust is not recorded), and the sign-in chooser of a home without
//!   credentials.

use serde::Deserialize;

/// The texts the screen is matched against.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScreenPatterns {
    /// Starts the composer line (and a dialog's selected option): `›` and a space.
    pub prompt: String,
    /// What an empty composer shows.
    pub placeholders: Vec<String>,
    /// Any of these on screen means Codex is working on a turn.
    pub busy_phrases: Vec<String>,
    /// The question or instructions of an approval prompt (a command, an edit, a permission).
    pub approval_questions: Vec<String>,
    /// The most lines the idle composer may have under it (a blank line and the footer); with
    /// more, something else is drawn below it and Codex is not idle.
    pub max_footer_lines: usize,
    /// "Trust this folder?"
    pub trust_dialog: Vec<String>,
    /// The trust dialog's option that trusts the folder.
    pub trust_option: String,
    /// "Hooks need review"
    pub hooks_review: Vec<String>,
    /// The sign-in chooser of a home without credentials.
    pub sign_in: Vec<String>,
}

impl Default for ScreenPatterns {
    fn default() -> Self {
        let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Self {
            prompt: "\u{203a} ".into(),
            placeholders: strings(&["Ask Codex to do anything", "Ask a follow-up question"]),
            busy_phrases: strings(&["esc to interrupt"]),
            approval_questions: strings(&[
                "Would you like to run the following command?",
                "Would you like to make the following edits?",
                "Press enter to confirm or esc to cancel",
            ]),
            max_footer_lines: 4,
            trust_dialog: strings(&["Trust this folder?"]),
            trust_option: "Trust and continue".into(),
            hooks_review: strings(&["Hooks need review"]),
            sign_in: strings(&["Sign in with ChatGPT"]),
        }
    }
}

/// A start-up dialog in the way of the composer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialog {
    TrustFolder,
    HooksReview,
    SignIn,
}

impl ScreenPatterns {
    fn contains_any(screen: &str, needles: &[String]) -> bool {
        needles
            .iter()
            .any(|n| !n.is_empty() && screen.contains(n.as_str()))
    }

    pub fn dialog(&self, screen: &str) -> Option<Dialog> {
        if Self::contains_any(screen, &self.trust_dialog) {
            Some(Dialog::TrustFolder)
        } else if Self::contains_any(screen, &self.hooks_review) {
            Some(Dialog::HooksReview)
        } else if Self::contains_any(screen, &self.sign_in) {
            Some(Dialog::SignIn)
        } else {
            None
        }
    }

    /// The selected option of the trust dialog is the one that trusts the folder: Enter
    /// answers it.
    pub fn trust_option_selected(&self, screen: &str) -> bool {
        screen.lines().any(|line| {
            line.trim_start()
                .strip_prefix(self.prompt.as_str())
                .is_some_and(|option| option.contains(self.trust_option.as_str()))
        })
    }

    /// Whether an approval prompt is on screen: Codex waits for the operator.
    pub fn is_approval(&self, screen: &str) -> bool {
        Self::contains_any(screen, &self.approval_questions)
    }

    pub fn is_busy(&self, screen: &str) -> bool {
        Self::contains_any(screen, &self.busy_phrases)
    }

    /// The composer, when it is the last thing on screen but its footer: its text (the first
    /// line after the prompt, then its continuation lines, joined by newlines).
    pub fn composer(&self, screen: &str) -> Option<String> {
        let lines: Vec<&str> = screen.lines().collect();
        let at = lines
            .iter()
            .rposition(|line| line.starts_with(self.prompt.as_str()))?;
        let mut text = vec![lines[at][self.prompt.len()..].trim_end()];
        let mut rest = lines[at + 1..].iter();
        for line in rest.by_ref() {
            // Continuation lines are indented by the prompt's width; a blank line ends the text.
            match line.strip_prefix("  ") {
                Some(more) if !line.trim().is_empty() => text.push(more.trim_end()),
                _ => break,
            }
        }
        let below = rest.filter(|line| !line.trim().is_empty()).count();
        (below <= self.max_footer_lines).then(|| text.join("\n"))
    }

    /// Whether the idle composer is the last thing on screen: no approval, no dialog, no work.
    pub fn is_idle(&self, screen: &str) -> bool {
        self.dialog(screen).is_none()
            && !self.is_approval(screen)
            && !self.is_busy(screen)
            && self.composer(screen).is_some()
    }

    /// Text typed or pasted into the composer and not submitted.
    pub fn has_pending_input(&self, screen: &str) -> bool {
        if self.is_approval(screen) || self.dialog(screen).is_some() {
            return false;
        }
        self.composer(screen).is_some_and(|text| {
            let text = text.trim();
            !text.is_empty() && !self.placeholders.iter().any(|p| p == text)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(name: &str) -> String {
        let path = format!("{}/tests/screens/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    const SIZES: [&str; 2] = ["", "-80x24"];

    #[test]
    fn a_finished_turn_and_a_fresh_start_are_idle_with_an_empty_composer() {
        let p = ScreenPatterns::default();
        for name in [
            "fresh-start.txt",
            "finished-turn.txt",
            "finished-turn-80x24.txt",
        ] {
            let s = screen(name);
            assert!(p.is_idle(&s), "{name}");
            assert!(!p.has_pending_input(&s), "{name}");
            assert_eq!(
                p.composer(&s).as_deref(),
                Some("Ask Codex to do anything"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_slow_reply_is_busy_although_the_composer_shows() {
        let p = ScreenPatterns::default();
        for size in SIZES {
            let s = screen(&format!("busy-slow-reply{size}.txt"));
            assert!(p.is_busy(&s), "{size}");
            assert!(!p.is_idle(&s), "{size}");
            assert!(!p.has_pending_input(&s), "{size}");
            assert!(!p.is_approval(&s), "{size}");
        }
    }

    #[test]
    fn typed_or_pasted_text_in_the_composer_is_pending() {
        let p = ScreenPatterns::default();
        for size in SIZES {
            let typed = screen(&format!("pending-input{size}.txt"));
            assert!(p.has_pending_input(&typed), "{size}");
            assert_eq!(
                p.composer(&typed).as_deref(),
                Some("typed but not submitted")
            );
            let pasted = screen(&format!("pending-paste{size}.txt"));
            assert!(p.has_pending_input(&pasted), "{size}");
            assert_eq!(
                p.composer(&pasted).as_deref(),
                Some("pasted\nmultiline text")
            );
        }
    }

    #[test]
    fn an_approval_prompt_waits_and_is_never_pending_input() {
        let p = ScreenPatterns::default();
        for size in SIZES {
            let s = screen(&format!("permission-prompt{size}.txt"));
            assert!(p.is_approval(&s), "{size}");
            assert!(!p.is_idle(&s), "{size}");
            // Its selected option starts like a composer line; Enter would answer the prompt.
            assert!(!p.has_pending_input(&s), "{size}");
            assert_eq!(p.dialog(&s), None);
        }
    }

    #[test]
    fn a_refused_approval_returns_to_an_idle_composer() {
        let p = ScreenPatterns::default();
        for size in SIZES {
            let s = screen(&format!("permission-refused{size}.txt"));
            assert!(p.is_idle(&s), "{size}");
            assert!(!p.is_approval(&s), "{size}");
        }
    }

    #[test]
    fn each_start_up_dialog_is_recognised_and_none_is_idle() {
        let p = ScreenPatterns::default();
        let trust = screen("trust-dialog.txt");
        assert_eq!(p.dialog(&trust), Some(Dialog::TrustFolder));
        assert!(p.trust_option_selected(&trust));
        assert_eq!(
            p.dialog(&screen("hooks-review.txt")),
            Some(Dialog::HooksReview)
        );
        assert_eq!(p.dialog(&screen("login.txt")), Some(Dialog::SignIn));
        for name in ["trust-dialog.txt", "hooks-review.txt", "login.txt"] {
            let s = screen(name);
            assert!(!p.is_idle(&s), "{name}");
            assert!(!p.has_pending_input(&s), "{name}");
        }
        assert!(!p.trust_option_selected(&screen("hooks-review.txt")));
    }

    #[test]
    fn empty_and_foreign_screens_are_neither_idle_nor_pending() {
        let p = ScreenPatterns::default();
        for s in ["", "\n\n", "$ ls\nfoo\n", "› \n", "\u{203a}"] {
            assert!(!p.has_pending_input(s), "{s:?}");
            assert!(!p.is_approval(s));
        }
        // A history line with a long screen under it is not the composer.
        let history = format!("› old message\n{}", "output line\n".repeat(10));
        assert_eq!(p.composer(&history), None);
    }
}
